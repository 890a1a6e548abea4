//! `vigil digest | sign | verify-sig | measure | enable | dump-metadata`: fs-verity
//! file digests, Merkle trees, builtin signatures and the kernel's verity ioctls.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rayon::prelude::*;
use vigil_fsverity::{sys, HashAlg, Params, Tree, TreeBuilder};
use vigil_ima::keys::{read_at_most, MAX_KEY_FILE};

#[derive(Subcommand)]
pub enum Command {
    /// Compute fs-verity file digests in userspace.
    ///
    /// The digest is what `FS_IOC_MEASURE_VERITY` reports once verity is enabled with
    /// the same parameters. One line per file, as `fsverity digest` prints: `sha256:<hex> <path>`. With
    /// `-r`, directories are walked and their regular files digested in parallel (a
    /// progress bar is shown when stderr is a terminal). Pipes and other non-regular
    /// inputs are read to EOF. Exit status 0, or 2 if any input could not be read.
    ///
    /// Example: `vigil digest --hash-alg sha512 -r /usr/bin`
    Digest(DigestArgs),
    /// Sign a file's fs-verity digest (PKCS#7 builtin signature).
    ///
    /// As `fsverity sign` does; the DER signature can be passed to `vigil enable
    /// --signature`. RSA signatures are byte-identical to fsverity-utils'.
    ///
    /// Prints `Signed file '<path>' (sha256:<hex>)`. Exit status 0, or 2 on bad
    /// input (unreadable file, key or certificate, key not matching the certificate).
    Sign(SignArgs),
    /// Verify a file's builtin fs-verity signature against a certificate.
    ///
    /// The signature may come from `vigil sign` or `fsverity sign`; it is checked as the
    /// kernel would when enabling verity.
    ///
    /// Exit status 0 if the signature is valid, 1 if it is not, 2 on unreadable input.
    VerifySig(VerifySigArgs),
    /// Print the fs-verity digest of verity files, as the kernel measures it.
    ///
    /// Uses `FS_IOC_MEASURE_VERITY`. Where the kernel or file system lacks fs-verity, or
    /// the file has no verity, the digest is computed in userspace with the given tree
    /// parameters and a note saying so goes to stderr.
    Measure(MeasureArgs),
    /// Enable fs-verity on a file.
    ///
    /// `FS_IOC_ENABLE_VERITY`: the kernel builds and stores the Merkle tree and the file
    /// becomes read-only. Needs kernel and file
    /// system support; reports clearly when it is missing (exit status 2).
    Enable(EnableArgs),
    /// Dump a verity file's Merkle tree, descriptor or builtin signature.
    ///
    /// Raw bytes to stdout, read with `FS_IOC_READ_VERITY_METADATA` (Linux 5.12+).
    DumpMetadata(DumpArgs),
}

/// Merkle tree parameters, shared by the subcommands that build trees.
#[derive(Args, Clone)]
pub struct TreeOpts {
    /// Hash algorithm of the Merkle tree: `sha256` (default) or `sha512`, or their
    /// fs-verity numbers 1 and 2.
    #[arg(long, value_name = "ALG", default_value = "sha256", value_parser = parse_alg)]
    hash_alg: HashAlg,
    /// Merkle tree block size in bytes: a power of two from 1024 to 65536 (default
    /// 4096, what kernels accept); see --allow-small-blocks.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    block_size: u32,
    /// Salt, as hex (at most 32 bytes); hashed in front of every tree block. Empty
    /// means no salt.
    #[arg(long, value_name = "HEX", default_value = "")]
    salt: String,
    /// Also accept block sizes no kernel can enable but fsverity-utils computes
    /// digests for: any power of two from twice the digest size (64 for SHA-256, 128
    /// for SHA-512) up to 2^30.
    #[arg(long)]
    allow_small_blocks: bool,
}

fn parse_alg(s: &str) -> Result<HashAlg, String> {
    match s.parse::<u32>() {
        Ok(n) => HashAlg::from_id(n).map_err(|e| e.to_string()),
        Err(_) => HashAlg::from_name(s).map_err(|e| e.to_string()),
    }
}

impl TreeOpts {
    pub fn params(&self) -> anyhow::Result<Params> {
        let salt = hex::decode(&self.salt).context("--salt is not a valid hex string")?;
        let p = if self.allow_small_blocks {
            Params::new_userspace(self.hash_alg, self.block_size, &salt)
        } else {
            Params::new(self.hash_alg, self.block_size, &salt)
        };
        Ok(p?)
    }
}

#[derive(Args)]
pub struct DigestArgs {
    /// Files (or, with -r, directories) to digest.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    tree: TreeOpts,
    /// Print only the hex digest (or formatted digest), no algorithm or path.
    #[arg(long)]
    compact: bool,
    /// Print the `fsverity_formatted_digest` (the bytes a builtin signature signs:
    /// "FSVerity", algorithm, size, digest) in hex instead of the digest.
    #[arg(long)]
    for_builtin_sig: bool,
    /// Write the Merkle tree in the kernel's stored layout (root level first) to FILE;
    /// empty for files of at most one block. Only with a single input file.
    #[arg(long, value_name = "FILE")]
    out_merkle_tree: Option<PathBuf>,
    /// Write the 256-byte fs-verity descriptor to FILE. Only with a single input file.
    #[arg(long, value_name = "FILE")]
    out_descriptor: Option<PathBuf>,
    /// Print one JSON object per file and line: path, size, algorithm, block_size,
    /// salt, digest, formatted_digest.
    #[arg(long)]
    json: bool,
    /// Digest the regular files below each directory, in parallel (symbolic links
    /// are not followed). Output is sorted by path.
    #[arg(short, long)]
    recursive: bool,
}

#[derive(Args)]
pub struct SignArgs {
    /// The file to sign.
    file: PathBuf,
    /// Where to write the DER PKCS#7 signature.
    sig_file: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC P-256/P-384), unencrypted.
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// PEM X.509 certificate of the key; defaults to the key file (which must then hold
    /// both).
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    #[command(flatten)]
    tree: TreeOpts,
    /// Also write the Merkle tree (kernel layout) to FILE.
    #[arg(long, value_name = "FILE")]
    out_merkle_tree: Option<PathBuf>,
    /// Also write the 256-byte descriptor to FILE.
    #[arg(long, value_name = "FILE")]
    out_descriptor: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifySigArgs {
    /// The signed file.
    file: PathBuf,
    /// The DER PKCS#7 signature.
    sig_file: PathBuf,
    /// PEM X.509 certificate of the signer.
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    #[command(flatten)]
    tree: TreeOpts,
}

#[derive(Args)]
pub struct MeasureArgs {
    /// Files to measure.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Tree parameters for the userspace fallback.
    #[command(flatten)]
    tree: TreeOpts,
}

#[derive(Args)]
pub struct EnableArgs {
    /// The file to enable verity on (opened read-only; no writer may hold it open).
    file: PathBuf,
    #[command(flatten)]
    tree: TreeOpts,
    /// DER PKCS#7 builtin signature to store with the file (see `vigil sign`).
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MetadataType {
    /// The stored Merkle tree.
    MerkleTree,
    /// The 256-byte descriptor.
    Descriptor,
    /// The builtin signature.
    Signature,
}

#[derive(Args)]
pub struct DumpArgs {
    /// What to dump.
    #[arg(value_name = "TYPE")]
    kind: MetadataType,
    /// The verity file.
    file: PathBuf,
    /// Start at this byte offset (default 0).
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Dump at most this many bytes (default: to the end).
    #[arg(long)]
    length: Option<u64>,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Digest(a) => digest(a),
        Command::Sign(a) => sign(a),
        Command::VerifySig(a) => verify_sig(a),
        Command::Measure(a) => measure(a),
        Command::Enable(a) => enable(a),
        Command::DumpMetadata(a) => dump_metadata(a),
    }
}

/// Build the tree of the file at `path`, reading it to EOF (pipes included).
pub fn tree_of_path(path: &Path, params: &Params, keep_tree: bool) -> anyhow::Result<Tree> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut b = TreeBuilder::new(params).keep_tree(keep_tree);
    b.read_from(&mut file)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(b.finish())
}

/// Write `bytes` to `path` safely: a temporary file in the same directory, fsynced,
/// then renamed over `path`. Non-regular targets (`/dev/stdout`, FIFOs) are written
/// directly.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let ctx = || format!("writing {}", path.display());
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return std::fs::write(path, bytes).with_context(ctx);
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(ctx)
}

fn collect_inputs(paths: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            if !recursive {
                bail!(
                    "{}: is a directory (use -r to digest the files below it)",
                    p.display()
                );
            }
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&entry.path(), out)?;
        } else if ty.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn digest(a: DigestArgs) -> anyhow::Result<ExitCode> {
    let params = a.tree.params()?;
    let inputs = collect_inputs(&a.paths, a.recursive)?;
    let keep = a.out_merkle_tree.is_some();
    if (keep || a.out_descriptor.is_some()) && inputs.len() != 1 {
        bail!("--out-merkle-tree and --out-descriptor need exactly one input file");
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = (inputs.len() > 1).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(format!("{} files", inputs.len()));
        bar
    });
    let results: Vec<anyhow::Result<Tree>> = inputs
        .par_iter()
        .map(|p| {
            let r = tree_of_path(p, &params, keep);
            if let (Some(bar), Ok(t)) = (&bar, &r) {
                bar.inc(t.data_size());
            }
            r
        })
        .collect();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0;
    for (path, r) in inputs.iter().zip(results) {
        let tree = match r {
            Ok(t) => t,
            Err(e) => {
                eprintln!("vigil: {e:#}");
                failed += 1;
                continue;
            }
        };
        let d = tree.digest();
        if a.json {
            let v = serde_json::json!({
                "path": path.to_string_lossy(),
                "size": tree.data_size(),
                "algorithm": d.alg().name(),
                "block_size": params.block_size(),
                "salt": hex::encode(params.salt()),
                "digest": d.to_string(),
                "formatted_digest": hex::encode(d.formatted()),
            });
            writeln!(out, "{v}")?;
        } else {
            let shown = if a.for_builtin_sig {
                hex::encode(d.formatted())
            } else {
                d.to_hex()
            };
            match (a.compact, a.for_builtin_sig) {
                (true, _) => writeln!(out, "{shown}")?,
                (false, true) => writeln!(out, "{shown} {}", path.display())?,
                (false, false) => writeln!(out, "{}:{shown} {}", d.alg(), path.display())?,
            }
        }
        if let Some(p) = &a.out_merkle_tree {
            write_file(p, tree.merkle_tree())?;
        }
        if let Some(p) = &a.out_descriptor {
            write_file(p, &tree.descriptor_bytes())?;
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {} inputs could not be digested", inputs.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Read a key, certificate or signature file (bounded: see `MAX_KEY_FILE`).
fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    read_at_most(path, MAX_KEY_FILE).with_context(|| format!("reading {}", path.display()))
}

fn sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let params = a.tree.params()?;
    let key_pem = read(&a.key)?;
    let key = vigil_fsverity::SigningKey::from_pem(&key_pem)
        .with_context(|| format!("{}", a.key.display()))?;
    let cert_path = a.cert.as_ref().unwrap_or(&a.key);
    let cert = vigil_fsverity::certificate_from_pem(&read(cert_path)?)
        .with_context(|| format!("{}", cert_path.display()))?;
    let tree = tree_of_path(&a.file, &params, a.out_merkle_tree.is_some())?;
    let sig = vigil_fsverity::sign(&tree.digest(), &key, &cert)?;
    write_file(&a.sig_file, &sig)?;
    if let Some(p) = &a.out_merkle_tree {
        write_file(p, tree.merkle_tree())?;
    }
    if let Some(p) = &a.out_descriptor {
        write_file(p, &tree.descriptor_bytes())?;
    }
    println!("Signed file '{}' ({})", a.file.display(), tree.digest());
    Ok(ExitCode::SUCCESS)
}

fn verify_sig(a: VerifySigArgs) -> anyhow::Result<ExitCode> {
    let params = a.tree.params()?;
    let cert = vigil_fsverity::certificate_from_pem(&read(&a.cert)?)
        .with_context(|| format!("{}", a.cert.display()))?;
    let sig = read(&a.sig_file)?;
    let digest = tree_of_path(&a.file, &params, false)?.digest();
    match vigil_fsverity::verify(&digest, &sig, &cert) {
        Ok(()) => {
            println!("Verified '{}' ({digest})", a.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED '{}' ({digest}): {e}", a.file.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn measure(a: MeasureArgs) -> anyhow::Result<ExitCode> {
    let params = a.tree.params()?;
    let mut out = crate::stdout();
    for path in &a.files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let why = match sys::measure(&file) {
            Ok(Some(d)) => {
                writeln!(out, "{d} {}", path.display())?;
                continue;
            }
            Ok(None) => "the file does not have fs-verity enabled".to_owned(),
            Err(vigil_fsverity::Error::NotSupported(e)) => {
                format!("no fs-verity support here ({e})")
            }
            Err(e) => return Err(anyhow!("{}: {e}", path.display())),
        };
        let d = tree_of_path(path, &params, false)?.digest();
        eprintln!(
            "vigil: {}: {why}; digest computed in userspace ({}, {}-byte blocks, {})",
            path.display(),
            params.hash_alg(),
            params.block_size(),
            if params.salt().is_empty() {
                "no salt".to_owned()
            } else {
                format!("salt {}", hex::encode(params.salt()))
            }
        );
        writeln!(out, "{d} {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn enable(a: EnableArgs) -> anyhow::Result<ExitCode> {
    let params = a.tree.params()?;
    let sig = a.signature.as_deref().map(read).transpose()?;
    let file = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    sys::enable(&file, &params, sig.as_deref())
        .with_context(|| format!("enabling fs-verity on {}", a.file.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn dump_metadata(a: DumpArgs) -> anyhow::Result<ExitCode> {
    let kind = match a.kind {
        MetadataType::MerkleTree => sys::Metadata::MerkleTree,
        MetadataType::Descriptor => sys::Metadata::Descriptor,
        MetadataType::Signature => sys::Metadata::Signature,
    };
    let file = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let mut offset = a.offset;
    let mut left = a.length.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 32768];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = sys::read_metadata(&file, kind, offset, &mut buf[..want])
            .with_context(|| format!("reading fs-verity metadata of {}", a.file.display()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
        left -= n as u64;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
