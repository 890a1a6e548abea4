//! `vigil ima …`: IMA file hashes and signatures in `security.ima` (or `user.ima`),
//! plus the file-system side shared with the `evmctl` front door: reading files,
//! xattrs, `.sig` files and EVM metadata.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rayon::prelude::*;
use serde::Serialize;
use vigil_ima::evm::{self, EvmKind, EvmMeta, MiscLayout};
use vigil_ima::keys::{read_at_most, read_key_file};
use vigil_ima::{HashAlgo, ImaXattr, KeyId, KeyRing, PrivateKey, Signature, XattrType};

/// Default signing key of evmctl.
pub(crate) const DEFAULT_PRIVATE_KEY: &str = "/etc/keys/privkey_evm.pem";
/// Default verification certificate of evmctl.
pub(crate) const DEFAULT_CERT: &str = "/etc/keys/x509_evm.der";

#[derive(Subcommand)]
pub enum Command {
    /// IMA file hashes and signatures: compute, sign, verify and explain
    /// `security.ima` values (byte-compatible with the kernel and evmctl).
    #[command(subcommand)]
    Ima(ImaCommand),
}

#[derive(Subcommand)]
pub enum ImaCommand {
    /// Hash files and store the IMA hash value (type 0x01 for md4/md5/sha1, else
    /// 0x04 + algorithm id) in `security.ima`.
    ///
    /// Prints `VALUE-HEX  PATH` per file. Exit status 0, or 2 if a file could not
    /// be read or its xattr not written.
    Hash(HashArgs),
    /// Sign files: v2 signature over the file hash (type 0x03), or v3 over the hash
    /// of an `ima_file_id` with `--v3`. Stores it in `security.ima` and/or a
    /// `FILE.sig` file.
    ///
    /// Prints `VALUE-HEX  PATH` per file. Directories given with `-r` are signed in
    /// parallel. Exit status 0, or 2 on unreadable input or a bad key.
    Sign(SignArgs),
    /// Verify files against their `security.ima` value (or `FILE.sig`): signatures
    /// with the given keys, hash values by rehashing.
    ///
    /// Prints `PATH: OK …` or `PATH: FAILED: reason` per file. Exit status 0 if all
    /// verify, 1 if any does not, 2 on bad usage or unreadable keys.
    Verify(VerifyArgs),
    /// Sign digests read from standard input, one `HEX  PATH` line each (sha*sum
    /// output), or `ALG:HEX PATH` (`fsverity digest` output) with `--veritysig`.
    ///
    /// Prints each input line followed by a space and the signature value in hex,
    /// exactly as `evmctl sign_hash`.
    SignHash(SignHashArgs),
    /// Decode and explain an IMA/EVM value: a file's `security.ima`/`security.evm`,
    /// a `.sig` file (`--sigfile`), or a hex string (`--hex`).
    Show(ShowArgs),
}

/// Where IMA/EVM values live.
#[derive(Args, Clone, Copy)]
pub struct XattrOpts {
    /// Use `user.ima`/`user.evm` instead of `security.ima`/`security.evm` (testing
    /// without CAP_SYS_ADMIN).
    #[arg(long)]
    pub xattr_user: bool,
}

impl XattrOpts {
    pub(crate) fn names(self) -> XattrNames {
        XattrNames::new(self.xattr_user)
    }
}

/// How to compute fs-verity digests for `--verity` (when the file does not have
/// fs-verity enabled; otherwise the kernel's digest is used).
#[derive(Args, Clone)]
pub struct VerityOpts {
    /// Merkle tree block size for computing a file's fs-verity digest.
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    pub block_size: u32,
    /// Salt (hex) for computing a file's fs-verity digest.
    #[arg(long, value_name = "HEX")]
    pub salt: Option<String>,
}

impl VerityOpts {
    pub(crate) fn params(&self) -> anyhow::Result<VerityParams> {
        let salt = match &self.salt {
            Some(h) => hex::decode(h).context("--salt: bad hex")?,
            None => Vec::new(),
        };
        Ok(VerityParams {
            block_size: self.block_size,
            salt,
        })
    }
}

/// Merkle tree parameters for fs-verity digests computed in userspace.
#[derive(Clone, Debug)]
pub(crate) struct VerityParams {
    pub block_size: u32,
    pub salt: Vec<u8>,
}

impl Default for VerityParams {
    fn default() -> Self {
        VerityParams {
            block_size: 4096,
            salt: Vec::new(),
        }
    }
}

#[derive(Args)]
pub struct HashArgs {
    /// Hash algorithm: a kernel name (sha256, sha3-256, sm3, streebog256, …) or an
    /// OpenSSL alias (md_gost12_256, ripemd160).
    #[arg(short = 'a', long, default_value = "sha256")]
    pub hash_algo: HashAlgo,
    #[command(flatten)]
    pub xattr: XattrOpts,
    /// Only print the values; do not write xattrs.
    #[arg(short = 'n', long)]
    pub no_xattr: bool,
    #[command(flatten)]
    pub walk: WalkOpts,
    /// Print a JSON array of `{path, value, algo, digest}` instead of text.
    #[arg(long)]
    pub json: bool,
    /// Files (or directories with `-r`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Options selecting and unlocking a signing key.
#[derive(Args)]
pub struct KeyArgs {
    /// Private key: PEM or DER, PKCS#1, SEC1, PKCS#8 or encrypted PKCS#8. A
    /// certificate in the same PEM file supplies the key id.
    #[arg(short = 'k', long, default_value = DEFAULT_PRIVATE_KEY)]
    pub key: PathBuf,
    /// Password of an encrypted key.
    #[arg(short = 'p', long, env = "EVMCTL_KEY_PASSWORD", hide_env_values = true)]
    pub pass: Option<String>,
    /// Key id to put in the signature header (8 hex digits), overriding the one
    /// derived from the key.
    #[arg(long, value_name = "HEX")]
    pub keyid: Option<KeyId>,
    /// Take the key id from the subject key identifier of this certificate.
    #[arg(long, value_name = "CERT", conflicts_with = "keyid")]
    pub keyid_from_cert: Option<PathBuf>,
}

impl KeyArgs {
    pub(crate) fn load(&self) -> anyhow::Result<PrivateKey> {
        load_signing_key(
            &self.key,
            self.pass.as_deref(),
            self.keyid,
            self.keyid_from_cert.as_deref(),
        )
    }
}

#[derive(Args)]
pub struct SignArgs {
    /// Hash algorithm of the file hash and the signature.
    #[arg(short = 'a', long, default_value = "sha256")]
    pub hash_algo: HashAlgo,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub xattr: XattrOpts,
    /// Also write the value to `FILE.sig`.
    #[arg(short = 'f', long)]
    pub sigfile: bool,
    /// Only print (and with --sigfile, write `.sig` files); do not write xattrs.
    #[arg(short = 'n', long)]
    pub no_xattr: bool,
    /// Make a v3 signature (over `H(ima_file_id)` with type 0x03) instead of v2.
    /// Needs a kernel or verifier with sigv3 support for regular file hashes.
    #[arg(long, conflicts_with = "verity")]
    pub v3: bool,
    /// Sign the file's fs-verity digest: a v3 signature of type 0x06
    /// (IMA_VERITY_DIGSIG) over `H(ima_file_id{0x06, algo, digest})`, for
    /// `appraise_type=sigv3` rules on files with fs-verity enabled. `-a` must be
    /// sha256 or sha512. The digest is the kernel's if the file has fs-verity
    /// enabled, else computed with --block-size/--salt.
    #[arg(long)]
    pub verity: bool,
    #[command(flatten)]
    pub verity_opts: VerityOpts,
    #[command(flatten)]
    pub walk: WalkOpts,
    /// Print a JSON array of `{path, value, keyid, algo}` instead of text.
    #[arg(long)]
    pub json: bool,
    /// Files (or directories with `-r`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Verification keys, comma-separated: X.509 certificates (DER or PEM), public
    /// keys, or private keys. Matched by key id (certificate SKID, else computed).
    /// Default: /etc/keys/x509_evm.der, needed only by files that carry a signature.
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    #[command(flatten)]
    pub xattr: XattrOpts,
    /// Read the value from `FILE.sig` instead of the xattr.
    #[arg(short = 'f', long)]
    pub sigfile: bool,
    /// Fail files that carry only a hash value, not a signature (like
    /// `appraise_type=imasig`).
    #[arg(long)]
    pub require_signature: bool,
    #[command(flatten)]
    pub verity_opts: VerityOpts,
    #[command(flatten)]
    pub walk: WalkOpts,
    /// Print a JSON array of `{path, ok, kind, keyid, algo, error}` instead of text.
    #[arg(long)]
    pub json: bool,
    /// Files (or directories with `-r`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct SignHashArgs {
    /// Hash algorithm of the digests on standard input (ignored with --veritysig,
    /// where each line names its algorithm).
    #[arg(short = 'a', long, default_value = "sha256")]
    pub hash_algo: HashAlgo,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Input lines are `fsverity digest` output (`ALG:HEX PATH`); make v3 type-0x06
    /// signatures over their `ima_file_id`.
    #[arg(long)]
    pub veritysig: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub xattr: XattrOpts,
    /// Treat each argument as a `.sig` file (or a file holding a raw value).
    #[arg(short = 'f', long, conflicts_with = "hex")]
    pub sigfile: bool,
    /// Decode this hex string instead of reading files.
    #[arg(long, value_name = "HEX")]
    pub hex: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Files whose `security.ima` and `security.evm` to show.
    #[arg(required_unless_present = "hex")]
    pub files: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Ima(cmd) = cmd;
    match cmd {
        ImaCommand::Hash(a) => cmd_hash(a),
        ImaCommand::Sign(a) => cmd_sign(a),
        ImaCommand::Verify(a) => cmd_verify(a),
        ImaCommand::SignHash(a) => cmd_sign_hash(a),
        ImaCommand::Show(a) => cmd_show(a),
    }
}

// ---------------------------------------------------------------------------------
// File-system side shared with the evmctl front door.

/// The xattr names in use: `security.*`, or `user.*` with `--xattr-user`.
#[derive(Clone, Copy)]
pub(crate) struct XattrNames {
    pub ima: &'static str,
    pub evm: &'static str,
}

impl XattrNames {
    pub(crate) fn new(user: bool) -> XattrNames {
        if user {
            XattrNames {
                ima: "user.ima",
                evm: "user.evm",
            }
        } else {
            XattrNames {
                ima: "security.ima",
                evm: "security.evm",
            }
        }
    }
}

/// Extended attributes and the inode generation, on the path itself (no symlink
/// following), as evmctl uses them.
pub(crate) mod sys {
    use std::io;
    use std::path::Path;

    fn errno(e: rustix::io::Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }

    /// The value of xattr `name`.
    pub fn get_xattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        loop {
            match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(rustix::io::Errno::RANGE) if buf.len() < 65536 => buf.resize(65536, 0),
                Err(e) => return Err(errno(e)),
            }
        }
    }

    /// Set xattr `name` to `value`.
    pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).map_err(errno)
    }

    /// Remove xattr `name`.
    pub fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
        rustix::fs::lremovexattr(path, name).map_err(errno)
    }

    /// Add `payload` to the kernel keyring `ring` as a key of type `key_type`
    /// (`add_key(2)`, no description: the key type derives one) and return its serial.
    pub fn add_key(key_type: &std::ffi::CStr, payload: &[u8], ring: i32) -> io::Result<i32> {
        // SAFETY: add_key reads the NUL-terminated type, no description (NULL) and
        // `payload.len()` bytes of the payload; it keeps no pointer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                key_type.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                payload.as_ptr(),
                payload.len(),
                ring,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as i32)
    }

    /// Names of the xattrs of `path`.
    pub fn list_xattrs(path: &Path) -> io::Result<Vec<String>> {
        let mut buf = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(path, &mut buf[..]).map_err(errno)?;
        Ok(buf[..n]
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// The inode generation (`FS_IOC_GETVERSION`).
    pub fn generation(path: &Path) -> io::Result<u32> {
        file_generation(&std::fs::File::open(path)?)
    }

    /// The inode generation of an open file.
    pub fn file_generation(f: &std::fs::File) -> io::Result<u32> {
        use std::os::fd::AsRawFd;
        const IOC_READ: libc::c_ulong = 2;
        const FS_IOC_GETVERSION: libc::c_ulong = (IOC_READ << 30)
            | ((std::mem::size_of::<libc::c_long>() as libc::c_ulong) << 16)
            | ((b'v' as libc::c_ulong) << 8)
            | 1;
        let mut v: libc::c_long = 0;
        // SAFETY: FS_IOC_GETVERSION writes at most a `long` to the pointer given.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETVERSION as _, &mut v) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v as u32)
    }
}

/// Hash a regular file's contents. Anything but a regular file is refused, as
/// evmctl 1.4 does ("Unsupported file type").
pub(crate) fn file_digest(path: &Path, algo: HashAlgo) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!(
            "{}: unsupported file type (0x{:x}): only regular files have IMA hashes",
            path.display(),
            meta.mode() & libc::S_IFMT
        );
    }
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = vigil_ima::Hasher::new(algo)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

/// Load a signing key with evmctl's key id rules.
pub(crate) fn load_signing_key(
    path: &Path,
    pass: Option<&str>,
    keyid: Option<KeyId>,
    keyid_from_cert: Option<&Path>,
) -> anyhow::Result<PrivateKey> {
    let mut key = PrivateKey::load(path, pass)?;
    if let Some(cert) = keyid_from_cert {
        let data = read_key_file(cert)?;
        key.set_keyid(vigil_ima::keys::keyid_from_cert(
            &data,
            &cert.display().to_string(),
        )?);
    }
    if let Some(id) = keyid {
        key.set_keyid(id);
    }
    Ok(key)
}

/// Sign a file's hash: v2, or v3 over `ima_file_id` (type 0x03).
pub(crate) fn sign_file(
    path: &Path,
    key: &PrivateKey,
    algo: HashAlgo,
    v3: bool,
    verity: Option<&VerityParams>,
) -> anyhow::Result<Signature> {
    if let Some(vp) = verity {
        let digest = verity_digest(path, algo, vp)?;
        return Ok(vigil_ima::sign_v3(
            key,
            XattrType::ImaVeritySig,
            algo,
            &digest,
        )?);
    }
    let digest = file_digest(path, algo)?;
    let sig = if v3 {
        vigil_ima::sign_v3(key, XattrType::DigSig, algo, &digest)?
    } else {
        vigil_ima::sign_digest(key, algo, &digest)?
    };
    Ok(sig)
}

/// The fs-verity digest of a regular file with `algo` (sha256 or sha512): the
/// kernel's measurement if the file has fs-verity enabled, else computed with `vp`.
pub(crate) fn verity_digest(
    path: &Path,
    algo: HashAlgo,
    vp: &VerityParams,
) -> anyhow::Result<Vec<u8>> {
    use vigil_fsverity::HashAlg;
    let alg = match algo {
        HashAlgo::Sha256 => HashAlg::Sha256,
        HashAlgo::Sha512 => HashAlg::Sha512,
        other => bail!("fs-verity digests are sha256 or sha512, not {other}"),
    };
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("{}: not a regular file", path.display());
    }
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    if let Ok(Some(d)) = vigil_fsverity::sys::measure(&f) {
        if d.alg() != alg {
            bail!(
                "{}: fs-verity is enabled with {}, not {alg}",
                path.display(),
                d.alg().name()
            );
        }
        return Ok(d.as_bytes().to_vec());
    }
    let params = vigil_fsverity::Params::new(alg, vp.block_size, &vp.salt)
        .map_err(|e| anyhow!("fs-verity parameters: {e}"))?;
    let tree = vigil_fsverity::compute_digest(std::io::BufReader::new(f), &params)
        .with_context(|| format!("{}: read", path.display()))?;
    Ok(tree.digest().as_bytes().to_vec())
}

/// The most a detached signature file (`--sigfile`) may hold: more than any value the
/// kernel accepts in an xattr.
const MAX_SIGFILE: u64 = 65536;

/// `PATH.sig`.
pub(crate) fn sigfile_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// The IMA value of a file: from its xattr, or from `FILE.sig`.
pub(crate) fn read_ima_value(
    path: &Path,
    sigfile: bool,
    names: XattrNames,
) -> anyhow::Result<Vec<u8>> {
    if sigfile {
        let p = sigfile_path(path);
        let data = read_at_most(&p, MAX_SIGFILE)
            .with_context(|| format!("{}: signature file", p.display()))?;
        Ok(data)
    } else {
        sys::get_xattr(path, names.ima)
            .with_context(|| format!("{}: {}", path.display(), names.ima))
    }
}

/// What a successful IMA verification found.
pub(crate) struct Verified {
    /// `None` for a hash value.
    pub keyid: Option<KeyId>,
    pub algo: HashAlgo,
    pub value: ImaXattr,
}

/// Verify a file against an IMA value (hash or signature).
pub(crate) fn verify_ima_value(
    path: &Path,
    value: &[u8],
    ring: &KeyRing,
    verity: &VerityParams,
) -> anyhow::Result<Verified> {
    let x = ImaXattr::decode(value).context("invalid IMA value")?;
    match &x {
        ImaXattr::Digest { algo, digest } | ImaXattr::DigestNg { algo, digest } => {
            let actual = file_digest(path, *algo)?;
            if &actual != digest {
                bail!("{algo} hash does not match the file (file was changed)");
            }
            Ok(Verified {
                keyid: None,
                algo: *algo,
                value: x,
            })
        }
        ImaXattr::Hmac(_) => bail!("an EVM HMAC is not an IMA value"),
        ImaXattr::Signature(sig) => {
            if sig.xattr_type == XattrType::EvmPortableDigSig {
                bail!("an EVM portable signature (type 0x05) is not an IMA file signature");
            }
            let digest = if sig.xattr_type == XattrType::ImaVeritySig {
                verity_digest(path, sig.hash_algo, verity)?
            } else {
                file_digest(path, sig.hash_algo)?
            };
            let keyid = ring.verify_signature(sig, &digest)?;
            Ok(Verified {
                keyid: Some(keyid),
                algo: sig.hash_algo,
                value: x,
            })
        }
    }
}

/// How operands that are directories are walked.
#[derive(Args, Clone, Copy)]
pub struct WalkOpts {
    /// Recurse into directories, in name order: regular files only, symbolic links
    /// not followed. The files are done in parallel.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// With -r, stay on each operand's file system: directories that are mount points
    /// of another one (/proc, /sys, a separate /home) are skipped, as `find -xdev` does.
    #[arg(short = 'x', long, requires = "recursive")]
    pub one_file_system: bool,
}

/// Regular files under each operand (the operand itself if not recursing).
pub(crate) fn expand(files: &[PathBuf], how: WalkOpts) -> anyhow::Result<Vec<PathBuf>> {
    if !how.recursive {
        return Ok(files.to_vec());
    }
    let mut out = Vec::new();
    for f in files {
        let meta = std::fs::symlink_metadata(f).with_context(|| format!("{}", f.display()))?;
        let dev = how.one_file_system.then_some(meta.dev());
        walk(f, meta, dev, &mut out)?;
    }
    Ok(out)
}

fn walk(
    path: &Path,
    meta: std::fs::Metadata,
    dev: Option<u64>,
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    if meta.is_dir() {
        if dev.is_some_and(|d| d != meta.dev()) {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}", path.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
            walk(&p, meta, dev, out)?;
        }
    } else if meta.file_type().is_file() {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Run `f` over `files` in parallel (with a progress bar on a terminal), keeping
/// the input order in the results.
pub(crate) fn par_map<T: Send>(files: &[PathBuf], f: impl Fn(&Path) -> T + Sync + Send) -> Vec<T> {
    let bar = if files.len() > 1 {
        indicatif::ProgressBar::with_draw_target(
            Some(files.len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let out = files
        .par_iter()
        .map(|p| {
            let r = f(p);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    out
}

// ---------------------------------------------------------------------------------
// vigil ima commands.

#[derive(Serialize)]
struct ValueJson {
    path: String,
    value: String,
    algo: &'static str,
    /// The file's digest (hex): `vigil ima hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
}

/// Print per-file results; report failures; exit 2 if any file failed.
fn finish_values(
    files: &[PathBuf],
    results: Vec<anyhow::Result<ValueJson>>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut out = crate::stdout();
    let mut ok = Vec::new();
    let mut failed = 0;
    for (p, r) in files.iter().zip(results) {
        match r {
            Ok(v) if json => ok.push(v),
            Ok(v) => writeln!(out, "{}  {}", v.value, p.display())?,
            Err(e) => {
                failed += 1;
                eprintln!("vigil: {}", crate::error_text(&e));
            }
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut out, &ok)?;
        writeln!(out)?;
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn set_value(path: &Path, name: &str, value: &[u8]) -> anyhow::Result<()> {
    sys::set_xattr(path, name, value).with_context(|| format!("{}: set {name}", path.display()))
}

fn cmd_hash(a: HashArgs) -> anyhow::Result<ExitCode> {
    let files = expand(&a.files, a.walk)?;
    let names = a.xattr.names();
    let results = par_map(&files, |p| {
        let digest = file_digest(p, a.hash_algo)?;
        let digest_hex = hex::encode(&digest);
        let value = ImaXattr::from_digest(a.hash_algo, digest)?.encode();
        if !a.no_xattr {
            set_value(p, names.ima, &value)?;
        }
        Ok(ValueJson {
            path: p.display().to_string(),
            value: hex::encode(value),
            algo: a.hash_algo.name(),
            digest: Some(digest_hex),
            keyid: None,
        })
    });
    finish_values(&files, results, a.json)
}

fn cmd_sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let key = a.key.load()?;
    let verity = if a.verity {
        Some(a.verity_opts.params()?)
    } else {
        None
    };
    let files = expand(&a.files, a.walk)?;
    let names = a.xattr.names();
    let results = par_map(&files, |p| {
        let value = sign_file(p, &key, a.hash_algo, a.v3, verity.as_ref())?.encode();
        if a.sigfile {
            crate::write_atomic(&sigfile_path(p), &value)?;
        }
        if !a.no_xattr {
            set_value(p, names.ima, &value)?;
        }
        Ok(ValueJson {
            path: p.display().to_string(),
            value: hex::encode(value),
            algo: a.hash_algo.name(),
            digest: None,
            keyid: Some(key.keyid().to_string()),
        })
    });
    finish_values(&files, results, a.json)
}

#[derive(Serialize)]
struct VerifyJson {
    path: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    algo: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn cmd_verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    // Without -k a missing default certificate fails only the files with signatures.
    let (ring, no_key) = match &a.key {
        Some(k) => (
            KeyRing::load_list(k).context("loading verification keys")?,
            None,
        ),
        None => match KeyRing::load_list(DEFAULT_CERT) {
            Ok(ring) => (ring, None),
            Err(e) => (KeyRing::new(), Some(e)),
        },
    };
    let verity = a.verity_opts.params()?;
    let files = expand(&a.files, a.walk)?;
    let names = a.xattr.names();
    let results = par_map(&files, |p| {
        let value = read_ima_value(p, a.sigfile, names)?;
        if let (Some(e), Ok(ImaXattr::Signature(_))) = (&no_key, ImaXattr::decode(&value)) {
            bail!("no verification key (-k): {e}");
        }
        let v = verify_ima_value(p, &value, &ring, &verity)?;
        if a.require_signature && v.keyid.is_none() {
            bail!("has a hash value, not a signature");
        }
        Ok(v)
    });
    let mut out = crate::stdout();
    let mut rows = Vec::new();
    let mut failed = 0;
    for (p, r) in files.iter().zip(results) {
        let row = match r {
            Ok(v) => VerifyJson {
                path: p.display().to_string(),
                ok: true,
                kind: Some(match &v.value {
                    ImaXattr::Signature(s) if s.xattr_type == XattrType::ImaVeritySig => {
                        "fs-verity signature v3"
                    }
                    ImaXattr::Signature(s) if s.version == 3 => "signature v3",
                    ImaXattr::Signature(_) => "signature v2",
                    _ => "hash",
                }),
                keyid: v.keyid.map(|k| k.to_string()),
                algo: Some(v.algo.name()),
                error: None,
            },
            Err(e) => {
                failed += 1;
                // The path starts the line already.
                let text = crate::error_text(&e);
                let prefix = format!("{}: ", p.display());
                VerifyJson {
                    path: p.display().to_string(),
                    ok: false,
                    kind: None,
                    keyid: None,
                    algo: None,
                    error: Some(text.strip_prefix(&prefix).unwrap_or(&text).to_owned()),
                }
            }
        };
        if !a.json {
            match (&row.error, &row.keyid) {
                (Some(e), _) => writeln!(out, "{}: FAILED: {e}", row.path)?,
                (None, Some(k)) => writeln!(
                    out,
                    "{}: OK ({}, {}, keyid {k})",
                    row.path,
                    row.kind.unwrap_or_default(),
                    row.algo.unwrap_or_default()
                )?,
                (None, None) => writeln!(
                    out,
                    "{}: OK ({} {})",
                    row.path,
                    row.algo.unwrap_or_default(),
                    row.kind.unwrap_or_default()
                )?,
            }
        }
        rows.push(row);
    }
    if a.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One parsed `sign_hash` input line: the digest, its algorithm and whether it is
/// an fs-verity digest.
pub(crate) struct HashLine<'a> {
    pub line: &'a str,
    pub algo: HashAlgo,
    pub digest: Vec<u8>,
}

/// Parse a `sign_hash` line: `HEX  PATH` (sha*sum, algorithm given) or, for
/// `veritysig`, `ALG:HEX PATH` (`fsverity digest`).
pub(crate) fn parse_hash_line<'a>(
    line: &'a str,
    algo: HashAlgo,
    veritysig: bool,
    lineno: usize,
) -> vigil_ima::Result<HashLine<'a>> {
    let err = |reason: String| vigil_ima::Error::HashLine {
        line: lineno,
        reason,
    };
    let (algo, rest) = if veritysig {
        let (alg, rest) = line
            .split_once(':')
            .ok_or_else(|| err("missing fs-verity hash algorithm (ALG:HEX PATH)".into()))?;
        (
            HashAlgo::from_name(alg).map_err(|e| err(e.to_string()))?,
            rest,
        )
    } else {
        (algo, line)
    };
    let hex_part = rest.split([' ', '\t']).next().unwrap_or("");
    let digest = hex::decode(hex_part).map_err(|e| err(format!("bad hex digest: {e}")))?;
    if digest.len() != algo.digest_len() {
        return Err(err(format!(
            "{algo} digest must be {} hex digits, got {}",
            2 * algo.digest_len(),
            hex_part.len()
        )));
    }
    Ok(HashLine { line, algo, digest })
}

/// Sign one parsed line: v2 type 0x03, or v3 type 0x06 for fs-verity digests.
pub(crate) fn sign_hash_line(
    key: &PrivateKey,
    l: &HashLine,
    veritysig: bool,
) -> vigil_ima::Result<Signature> {
    if veritysig {
        vigil_ima::sign_v3(key, XattrType::ImaVeritySig, l.algo, &l.digest)
    } else {
        vigil_ima::sign_digest(key, l.algo, &l.digest)
    }
}

fn cmd_sign_hash(a: SignHashArgs) -> anyhow::Result<ExitCode> {
    let key = a.key.load()?;
    let stdin = std::io::stdin().lock();
    let mut out = crate::stdout();
    let mut n = 0;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.is_empty() {
            continue;
        }
        let parsed = parse_hash_line(&line, a.hash_algo, a.veritysig, i + 1)?;
        let sig = sign_hash_line(&key, &parsed, a.veritysig)?;
        writeln!(out, "{} {}", parsed.line, hex::encode(sig.encode()))?;
        n += 1;
    }
    if n == 0 {
        bail!("no `HEX  PATH` lines on standard input");
    }
    Ok(ExitCode::SUCCESS)
}

/// `sig` is exactly a DER `SEQUENCE { INTEGER r, INTEGER s }`: an ECDSA signature.
fn is_der_ecdsa(sig: &[u8]) -> bool {
    /// The content of the DER element with `tag` at the start of `b`, and the rest.
    fn element(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, b) = b.split_first()?;
        let (&l, b) = b.split_first()?;
        let (len, b) = match l {
            0..=0x7f => (l as usize, b),
            0x81 => b.split_first().map(|(&n, b)| (n as usize, b))?,
            _ => return None,
        };
        (t == tag && b.len() >= len).then(|| b.split_at(len))
    }
    let Some((seq, &[])) = element(sig, 0x30) else {
        return false;
    };
    let r_s = element(seq, 0x02).and_then(|(_, rest)| element(rest, 0x02));
    matches!(r_s, Some((s, &[])) if !s.is_empty())
}

/// A human explanation of a value, one fact per line.
pub(crate) fn explain(value: &[u8]) -> Vec<String> {
    let mut lines = vec![format!(
        "value: {} ({} bytes)",
        hex::encode(value),
        value.len()
    )];
    match ImaXattr::decode(value) {
        Err(e) => lines.push(format!("invalid: {e}")),
        Ok(x) => {
            let t = x.xattr_type();
            lines.push(format!("type: 0x{:02x} {}", t as u8, t.kernel_name()));
            match &x {
                ImaXattr::Digest { algo, digest } | ImaXattr::DigestNg { algo, digest } => {
                    lines.push(format!("algorithm: {algo}"));
                    lines.push(format!("digest: {}", hex::encode(digest)));
                }
                ImaXattr::Hmac(h) => lines.push(format!("hmac-sha1: {}", hex::encode(h))),
                ImaXattr::Signature(s) => {
                    lines.push(format!("version: {}", s.version));
                    lines.push(format!("algorithm: {}", s.hash_algo));
                    lines.push(format!("keyid: {}", s.keyid));
                    lines.push(format!("sig_size: {}", s.sig.len()));
                    // An RSA signature is as long as the key's modulus and may start
                    // with any byte; an ECDSA one is a DER SEQUENCE of two INTEGERs.
                    let kind = match s.sig.len() {
                        _ if is_der_ecdsa(&s.sig) => "ECDSA (DER r,s)".to_owned(),
                        n if n >= 64 => format!("RSA PKCS#1 v1.5 ({}-bit key)", 8 * n),
                        _ => "raw".to_owned(),
                    };
                    lines.push(format!("signature: {kind} {}", hex::encode(&s.sig)));
                    lines.push(
                        match (s.xattr_type, s.version) {
                            (XattrType::ImaVeritySig, _) => {
                                "signs: H(ima_file_id{0x06, algo, fs-verity digest})"
                            }
                            (XattrType::EvmPortableDigSig, 2) => {
                                "signs: the EVM portable metadata hash"
                            }
                            (_, 3) => "signs: H(ima_file_id{type, algo, digest})",
                            _ => "signs: the file (or EVM metadata) digest directly",
                        }
                        .to_string(),
                    );
                }
            }
        }
    }
    lines
}

fn cmd_show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let names = a.xattr.names();
    let mut items: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(h) = &a.hex {
        items.push((
            "hex".into(),
            hex::decode(h.trim()).context("--hex: bad hex")?,
        ));
    }
    // The worst outcome: 1 a file without a value (or an invalid one), 2 unreadable.
    let mut code = 0u8;
    for f in &a.files {
        match show_values(f, a.sigfile, names) {
            Ok(v) if v.is_empty() => {
                eprintln!("vigil: {}: no {} or {}", f.display(), names.ima, names.evm);
                code = code.max(1);
            }
            Ok(v) => items.extend(v),
            Err(e) => {
                eprintln!("vigil: {}", crate::error_text(&e));
                code = 2;
            }
        }
    }
    let mut out = crate::stdout();
    if a.json {
        let v: Vec<_> = items
            .iter()
            .map(|(what, value)| serde_json::json!({ "source": what, "explain": explain(value) }))
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        for (what, value) in &items {
            writeln!(out, "{what}:")?;
            for l in explain(value) {
                writeln!(out, "  {l}")?;
            }
        }
    }
    if items.iter().any(|(_, v)| ImaXattr::decode(v).is_err()) {
        code = code.max(1);
    }
    Ok(ExitCode::from(code))
}

/// The values `vigil ima show` explains for `f`: its `.sig` file, or its IMA and EVM
/// xattrs (none if it has neither).
fn show_values(
    f: &Path,
    sigfile: bool,
    names: XattrNames,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if sigfile {
        let data = read_at_most(f, MAX_SIGFILE)
            .with_context(|| format!("{}: signature file", f.display()))?;
        return Ok(vec![(f.display().to_string(), data)]);
    }
    let mut values = Vec::new();
    for name in [names.ima, names.evm] {
        match sys::get_xattr(f, name) {
            Ok(v) => values.push((format!("{} {name}", f.display()), v)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e).with_context(|| format!("{}: {name}", f.display())),
        }
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------
// EVM (used by the evmctl front door's `sign` and `verify`).

/// How to build the EVM metadata hash (evmctl's EVM options).
#[derive(Debug, Default, Clone)]
pub struct EvmParams {
    pub portable: bool,
    /// `Some(None)`: `-u` without a value (no UUID); `Some(Some(u))`: this UUID;
    /// `None`: the file system's UUID from blkid.
    pub uuid: Option<Option<String>>,
    pub layout: MiscLayout,
    pub smack: bool,
    pub ino: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<String>,
    pub generation: Option<String>,
    /// `--ima HEX`: use this value for security.ima.
    pub ima: Option<String>,
    /// `--selinux LABEL`.
    pub selinux: Option<String>,
    /// `--caps[=VALUE]`: `Some(None)` leaves capabilities out.
    pub caps: Option<Option<String>>,
}

impl EvmParams {
    /// The xattrs EVM covers, in order: evmctl's list, or its longer `--smack` one.
    pub fn xattr_list(&self) -> &'static [&'static str] {
        if self.smack {
            evm::EVM_XATTRS_SMACK
        } else {
            evm::EVM_XATTRS
        }
    }
}

/// C `strtoul(s, NULL, 10)`, as evmctl parses `--ino`, `--uid`, `--mode` and the
/// like: leading blanks, an optional sign (a minus negates modulo 2^64), the longest
/// run of digits (none: 0), saturating at `u64::MAX` on overflow.
fn strtoul(s: &str) -> u64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: u64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(v) => n = v,
            None => return u64::MAX,
        }
    }
    if negative {
        n.wrapping_neg()
    } else {
        n
    }
}

/// The EVM digest of `path` with `algo`, as evmctl's `calc_evm_hash()`, which also
/// tells at its default level what it hashed (`generation: N`, `no xattr: NAME`,
/// `name: NAME, size: N`): those lines are appended to `log`.
pub(crate) fn evm_file_digest(
    path: &Path,
    names: XattrNames,
    p: &EvmParams,
    algo: HashAlgo,
    log: &mut String,
) -> anyhow::Result<Vec<u8>> {
    use std::fmt::Write as _;
    let st = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    let mut meta = EvmMeta {
        ino: st.ino(),
        generation: 0,
        uid: st.uid(),
        gid: st.gid(),
        mode: st.mode(),
    };
    if let Some(v) = &p.ino {
        meta.ino = strtoul(v);
    }
    if let Some(v) = &p.uid {
        meta.uid = strtoul(v) as u32;
    }
    if let Some(v) = &p.gid {
        meta.gid = strtoul(v) as u32;
    }
    if let Some(v) = &p.mode {
        meta.mode = strtoul(v) as u32;
    }
    if let Some(v) = &p.generation {
        meta.generation = strtoul(v) as u32;
    } else if matches!(meta.mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFDIR) {
        // evmctl decides from the mode after `--mode` is applied: `--mode 644` (no
        // file type bits) means generation 0 even for a regular file. A portable
        // signature leaves the generation out (evm_digest zeroes it), so there it is
        // only shown, and a file system without generations is no error.
        match sys::generation(path) {
            Ok(g) => meta.generation = g,
            Err(_) if p.portable => {}
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("{}: reading the inode generation", path.display())))
            }
        }
    }
    let _ = writeln!(log, "generation: {}", meta.generation);
    let present =
        sys::list_xattrs(path).with_context(|| format!("{}: listxattr", path.display()))?;
    let mut values: Vec<Vec<u8>> = Vec::new();
    for &name in p.xattr_list() {
        let mut shown = name;
        let v = if name == "security.selinux" && p.selinux.is_some() {
            let mut v = p.selinux.clone().unwrap_or_default().into_bytes();
            v.push(0);
            v
        } else if name == "security.ima" && p.ima.is_some() {
            hex::decode(p.ima.as_deref().unwrap_or_default()).context("--ima: bad hex")?
        } else if name == "security.ima" && p.portable {
            shown = names.ima;
            sys::get_xattr(path, names.ima).with_context(|| {
                format!(
                    "{}: EVM portable signature: {} required",
                    path.display(),
                    names.ima
                )
            })?
        } else if name == "security.capability" && p.caps.is_some() {
            match p.caps.as_ref().and_then(|c| c.as_deref()) {
                None => continue,
                Some(c) => c.as_bytes().to_vec(),
            }
        } else {
            match evm_xattr(path, name, &present, log) {
                Some(v) => v,
                None => continue,
            }
        };
        let _ = writeln!(log, "name: {shown}, size: {}", v.len());
        values.push(v);
    }
    let kind = if p.portable {
        EvmKind::Portable
    } else {
        EvmKind::Bound
    };
    let uuid = match (&p.uuid, kind) {
        (_, EvmKind::Portable) | (Some(None), _) => None,
        (Some(Some(u)), _) => {
            Some(evm::parse_uuid(u).ok_or_else(|| anyhow!("wrong UUID format: {u:?}"))?)
        }
        (None, _) => Some(fs_uuid(st.dev())?),
    };
    if let Some(u) = &uuid {
        let _ = writeln!(log, "uuid: {}", hex::encode(u));
    }
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    Ok(evm::evm_digest(
        algo,
        &refs,
        &meta,
        kind,
        p.layout,
        uuid.as_ref(),
    )?)
}

/// The value of the EVM-protected xattr `name` of `path` if it has one that
/// `present` (its xattr list) also names; otherwise `None`, and why in `log`
/// (`no xattr: NAME`, or `skipping xattr: NAME` when only a read finds it), as
/// evmctl's `calc_evm_hash()` and `calc_evm_hmac()` say.
pub(crate) fn evm_xattr(
    path: &Path,
    name: &str,
    present: &[String],
    log: &mut String,
) -> Option<Vec<u8>> {
    use std::fmt::Write as _;
    match sys::get_xattr(path, name) {
        Ok(v) if present.iter().any(|n| n == name) => Some(v),
        Ok(_) => {
            let _ = writeln!(log, "skipping xattr: {name}");
            None
        }
        Err(_) => {
            let _ = writeln!(log, "no xattr: {name}");
            None
        }
    }
}

/// The UUID of the file system on device `dev`, via `blkid` as evmctl does.
fn fs_uuid(dev: u64) -> anyhow::Result<[u8; 16]> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let out = std::process::Command::new("blkid")
        .args([
            "-s",
            "UUID",
            "-o",
            "value",
            &format!("/dev/block/{major}:{minor}"),
        ])
        .output()
        .context("running blkid")?;
    let text = String::from_utf8_lossy(&out.stdout);
    evm::parse_uuid(text.trim()).ok_or_else(|| {
        anyhow!("failed to read the file system UUID of /dev/block/{major}:{minor} (give -u UUID, or -u for none)")
    })
}

/// Read a password from standard input (evmctl's `-p` without value): on a terminal
/// after a prompt and with echo off, else silently (for scripts piping it in).
pub(crate) fn prompt_password() -> anyhow::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it or fails (not a terminal).
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let is_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if is_tty {
        print!("PEM password: ");
        std::io::stdout().flush()?;
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a valid termios for this terminal.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut s = String::new();
    let read = std::io::stdin().lock().read_line(&mut s);
    if is_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    read?;
    Ok(s.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::explain;

    /// The `signature:` line of a v2 RSA/ECDSA value (sha256) carrying `sig`.
    fn kind(sig: &[u8]) -> String {
        let mut v = vec![0x03, 2, 4, 1, 2, 3, 4];
        v.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        v.extend_from_slice(sig);
        let lines = explain(&v);
        let l = lines.iter().find(|l| l.starts_with("signature: ")).unwrap();
        l["signature: ".len()..l.rfind(' ').unwrap()].to_owned()
    }

    #[test]
    fn signature_kind_from_the_encoding_not_the_first_byte() {
        // RSA signatures of any key size, also ones that start with 0x30.
        let mut rsa = vec![0x5a; 256];
        assert_eq!(kind(&rsa), "RSA PKCS#1 v1.5 (2048-bit key)");
        rsa[0] = 0x30;
        rsa[1] = 0x82;
        assert_eq!(kind(&rsa), "RSA PKCS#1 v1.5 (2048-bit key)");
        assert_eq!(kind(&[0x30; 384]), "RSA PKCS#1 v1.5 (3072-bit key)");
        // ECDSA: DER SEQUENCE { INTEGER r, INTEGER s } (P-256, and P-521 with a long
        // length form).
        let mut ec = vec![0x30, 0x45, 0x02, 0x21, 0x00];
        ec.extend([0x81; 32]);
        ec.extend([0x02, 0x20]);
        ec.extend([0x11; 32]);
        assert_eq!(kind(&ec), "ECDSA (DER r,s)");
        let mut ec = vec![0x30, 0x81, 0x86, 0x02, 0x41];
        ec.extend([0x01; 65]);
        ec.extend([0x02, 0x41]);
        ec.extend([0x01; 65]);
        assert_eq!(kind(&ec), "ECDSA (DER r,s)");
        ec.push(0);
        assert_ne!(kind(&ec), "ECDSA (DER r,s)");
    }
}
