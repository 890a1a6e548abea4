//! The `fsverity` front door: vigil started as `fsverity` (through a link of that name)
//! accepts fsverity-utils 1.5's command line (`digest`, `sign`, `enable`, `measure`,
//! `dump_metadata`, `--help`, `--version`) and prints the same output with the same
//! exit status (0 ok, 1 runtime failure, 2 usage error).
//!
//! Deliberate differences: inputs are read to EOF instead of trusting `st_size`, so a
//! pipe digests its contents rather than as an empty file; OpenSSL's own error-queue
//! lines after a key or certificate error are not reproduced; PKCS#11 is not supported.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;

use vigil_fsverity::{sys, HashAlg, Params, Tree, TreeBuilder};

use crate::getopt::{self, HasArg, Opt};

const VERSION: &str = "fsverity v1.5";

struct Cmd {
    name: &'static str,
    desc: &'static str,
    usage: &'static str,
}

const COMMANDS: [Cmd; 5] = [
    Cmd {
        name: "digest",
        desc: "Compute the fs-verity digest of the given file(s), for offline signing",
        usage: "    fsverity digest FILE...\n               [--hash-alg=HASH_ALG] [--block-size=BLOCK_SIZE] [--salt=SALT]\n               [--out-merkle-tree=FILE] [--out-descriptor=FILE]\n               [--compact] [--for-builtin-sig]\n",
    },
    Cmd {
        name: "dump_metadata",
        desc: "Dump the fs-verity metadata of the given file",
        usage: "    fsverity dump_metadata TYPE FILE [--offset=OFFSET] [--length=LENGTH]\n",
    },
    Cmd {
        name: "enable",
        desc: "Enable fs-verity on a file",
        usage: "    fsverity enable FILE\n               [--hash-alg=HASH_ALG] [--block-size=BLOCK_SIZE] [--salt=SALT]\n               [--signature=SIGFILE]\n",
    },
    Cmd {
        name: "measure",
        desc: "Display the fs-verity digest of the given verity file(s)",
        usage: "    fsverity measure FILE...\n",
    },
    Cmd {
        name: "sign",
        desc: "Sign a file for fs-verity built-in signature verification",
        usage: "    fsverity sign FILE OUT_SIGFILE\n               [--key=KEYFILE] [--cert=CERTFILE] [--pkcs11-engine=SOFILE]\n               [--pkcs11-module=SOFILE] [--pkcs11-keyid=KEYID]\n               [--hash-alg=HASH_ALG] [--block-size=BLOCK_SIZE] [--salt=SALT]\n               [--out-merkle-tree=FILE] [--out-descriptor=FILE]\n",
    },
];

fn usage_all() -> String {
    let mut s = String::from("Usage:\n");
    for c in &COMMANDS {
        s += &format!("  {}:\n{}\n", c.desc, c.usage);
    }
    s += "  Standard options:\n    fsverity --help\n    fsverity --version\n\n";
    s += "Available hash algorithms: sha256 sha512\n";
    s
}

fn usage_cmd(cmd: &Cmd) -> String {
    format!("Usage:\n{}", cmd.usage)
}

/// A failure: what to print on stderr and the exit status.
struct Fail {
    msg: String,
    code: u8,
}

type Res<T> = Result<T, Fail>;

/// `ERROR: ...` lines, exit status 1.
fn runtime(msg: impl Into<String>) -> Fail {
    Fail {
        msg: msg.into(),
        code: 1,
    }
}

/// Usage failure: optional `ERROR:` lines, then the command's usage, exit status 2.
fn usage_err(cmd: &Cmd, msg: &str) -> Fail {
    Fail {
        msg: format!("{msg}{}", usage_cmd(cmd)),
        code: 2,
    }
}

/// The C library's message for an errno (what `strerror` prints).
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (out, err, code) = run(&args);
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stderr().write_all(err.as_bytes());
    ExitCode::from(code)
}

/// Run with `args` (without argv[0]); returns (stdout, stderr, exit status). Binary
/// output (dump_metadata) goes straight to stdout.
fn run(args: &[String]) -> (String, String, u8) {
    if args.is_empty() {
        return (
            String::new(),
            format!("ERROR: no command specified\n{}", usage_all()),
            2,
        );
    }
    let cmd = COMMANDS.iter().find(|c| c.name == args[0]);
    for a in args {
        match a.as_str() {
            "--help" => {
                let text = cmd.map(usage_cmd).unwrap_or_else(usage_all);
                return (text, String::new(), 0);
            }
            "--version" => return (format!("{VERSION}\n"), String::new(), 0),
            "--" => break,
            _ => {}
        }
    }
    let Some(cmd) = cmd else {
        return (
            String::new(),
            format!(
                "ERROR: unrecognized command: '{}'\n{}",
                args[0],
                usage_all()
            ),
            2,
        );
    };
    let mut out = String::new();
    let result = match cmd.name {
        "digest" => digest(cmd, &args[1..], &mut out),
        "sign" => sign(cmd, &args[1..], &mut out),
        "enable" => enable(cmd, &args[1..]),
        "measure" => measure(cmd, &args[1..], &mut out),
        _ => dump_metadata(cmd, &args[1..]),
    };
    match result {
        Ok(()) => (out, String::new(), 0),
        Err(f) => (out, f.msg, f.code),
    }
}

fn parse(cmd: &Cmd, spec: &[Opt], args: &[String]) -> Res<getopt::Parsed> {
    getopt::parse(spec, args).map_err(|e| {
        let msg = match e {
            getopt::GetoptError::Ambiguous(_) => ambiguous(spec, args),
            other => other.to_string(),
        };
        usage_err(cmd, &format!("{}: {msg}\n", cmd.name))
    })
}

/// glibc's wording for an ambiguous long option, which lists the candidates.
fn ambiguous(spec: &[Opt], args: &[String]) -> String {
    for arg in args.iter().take_while(|a| *a != "--") {
        let Some(body) = arg.strip_prefix("--") else {
            continue;
        };
        let name = body.split('=').next().unwrap_or(body);
        let cands: Vec<&str> = spec
            .iter()
            .filter_map(|o| o.long)
            .filter(|l| l.starts_with(name))
            .collect();
        if cands.len() > 1 && !cands.contains(&name) {
            let list: Vec<String> = cands.iter().map(|c| format!(" '--{c}'")).collect();
            return format!(
                "option '{arg}' is ambiguous; possibilities:{}",
                list.concat()
            );
        }
    }
    "ambiguous option".into()
}

const HASH_ALG: Opt = Opt::new(None, Some("hash-alg"), HasArg::Required, "hash-alg");
const BLOCK_SIZE: Opt = Opt::new(None, Some("block-size"), HasArg::Required, "block-size");
const SALT: Opt = Opt::new(None, Some("salt"), HasArg::Required, "salt");
const OUT_TREE: Opt = Opt::new(
    None,
    Some("out-merkle-tree"),
    HasArg::Required,
    "out-merkle-tree",
);
const OUT_DESC: Opt = Opt::new(
    None,
    Some("out-descriptor"),
    HasArg::Required,
    "out-descriptor",
);

/// Tree parameters as given on the command line, before the library checks them.
#[derive(Default)]
struct RawParams {
    alg: Option<u32>,
    block_size: Option<u32>,
    salt: Option<Vec<u8>>,
}

/// C `strtoul(s, &end, 10)` with `*end == '\0'` required: leading blanks and a sign
/// allowed; out-of-range values saturate.
fn strtoul(s: &str) -> Option<u64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

impl RawParams {
    /// Handle one tree option in command-line order, as fsverity-utils does.
    fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "hash-alg" => {
                if self.alg.is_some() {
                    return Err("ERROR: --hash-alg can only be specified once\n".into());
                }
                if let Some(n) = strtoul(value).filter(|&n| n > 0 && n < i32::MAX as u64) {
                    self.alg = Some(n as u32);
                } else if let Ok(a) = HashAlg::from_name(value) {
                    self.alg = Some(a.id() as u32);
                } else {
                    return Err(format!(
                        "ERROR: unknown hash algorithm: '{value}'\nAvailable hash algorithms: sha256 sha512\n"
                    ));
                }
            }
            "block-size" => {
                if self.block_size.is_some() {
                    return Err("ERROR: --block-size can only be specified once\n".into());
                }
                match strtoul(value)
                    .filter(|&n| n > 0 && n < i32::MAX as u64 && n.is_power_of_two())
                {
                    Some(n) => self.block_size = Some(n as u32),
                    None => {
                        return Err(format!(
                            "ERROR: Invalid block size: {value}.  Must be power of 2\n"
                        ))
                    }
                }
            }
            _ => {
                if self.salt.is_some() {
                    return Err("ERROR: --salt can only be specified once\n".into());
                }
                match hex::decode(value) {
                    Ok(s) => self.salt = Some(s),
                    Err(_) => return Err("ERROR: salt is not a valid hex string\n".into()),
                }
            }
        }
        Ok(())
    }

    fn alg(&self) -> u32 {
        self.alg.unwrap_or(1)
    }
    fn block_size(&self) -> u32 {
        self.block_size.unwrap_or(4096)
    }
    fn salt(&self) -> &[u8] {
        self.salt.as_deref().unwrap_or(&[])
    }

    /// libfsverity's parameter checks, with its messages.
    fn params(&self) -> Result<Params, String> {
        let alg = HashAlg::from_id(self.alg())
            .map_err(|_| format!("unknown hash algorithm: {}", self.alg()))?;
        let bs = self.block_size();
        if self.salt().len() > 32 {
            return Err(format!("unsupported salt size ({})", self.salt().len()));
        }
        if bs < 2 * alg.digest_size() as u32 {
            return Err(format!(
                "block size ({bs}) too small for hash algorithm {alg}"
            ));
        }
        Params::new_userspace(alg, bs, self.salt()).map_err(|e| e.to_string())
    }
}

/// Open an output file as fsverity-utils does (created, truncated, mode 0644).
fn open_out(path: &str) -> Result<File, String> {
    File::create(path)
        .map_err(|e| format!("ERROR: can't open '{path}' for writing: {}\n", strerror(&e)))
}

fn open_in(path: &str) -> Res<File> {
    File::open(path).map_err(|e| {
        runtime(format!(
            "ERROR: can't open '{path}' for reading: {}\n",
            strerror(&e)
        ))
    })
}

fn write_out(file: &mut File, path: &str, bytes: &[u8]) -> Res<()> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            runtime(format!(
                "ERROR: write error on '{path}': {}\n",
                strerror(&e)
            ))
        })
}

/// The tree is written with `pwrite` from offset 0, as libfsverity does, so with several
/// input files each tree overwrites the start of the previous one.
fn write_tree(file: &mut File, path: &str, bytes: &[u8]) -> Res<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            runtime(format!(
                "ERROR: write error on '{path}': {}\n",
                strerror(&e)
            ))
        })
}

/// The `--out-merkle-tree` and `--out-descriptor` files of `digest` and `sign`, each
/// with its name for messages.
#[derive(Default)]
struct TreeOutputs {
    tree: Option<(File, String)>,
    desc: Option<(File, String)>,
}

impl TreeOutputs {
    /// Open the file of option `key` when it is parsed, as fsverity-utils does.
    fn open(&mut self, key: &str, path: &str) -> Result<(), String> {
        let slot = if key == "out-merkle-tree" {
            &mut self.tree
        } else {
            &mut self.desc
        };
        *slot = Some((open_out(path)?, path.to_owned()));
        Ok(())
    }

    /// Write the Merkle tree and the descriptor of `tree` where asked.
    fn write(&mut self, tree: &Tree) -> Res<()> {
        if let Some((f, p)) = &mut self.tree {
            write_tree(f, p, tree.merkle_tree())?;
        }
        if let Some((f, p)) = &mut self.desc {
            write_out(f, p, &tree.descriptor_bytes())?;
        }
        Ok(())
    }
}

/// Compute the tree of `path` (read to EOF), with fsverity-utils' error messages.
fn compute(path: &str, raw: &RawParams, keep_tree: bool) -> Res<Tree> {
    let mut file = open_in(path)?;
    let params = raw
        .params()
        .map_err(|m| runtime(format!("ERROR: {m}\nERROR: failed to compute digest\n")))?;
    let mut b = TreeBuilder::new(&params).keep_tree(keep_tree);
    b.read_from(&mut file).map_err(|e| {
        runtime(format!(
            "ERROR: reading from '{path}': {}\nERROR: error reading file\nERROR: failed to compute digest\n",
            strerror(&e)
        ))
    })?;
    Ok(b.finish())
}

fn digest(cmd: &Cmd, args: &[String], out: &mut String) -> Res<()> {
    const SPEC: &[Opt] = &[
        HASH_ALG,
        BLOCK_SIZE,
        SALT,
        OUT_TREE,
        OUT_DESC,
        Opt::new(None, Some("compact"), HasArg::No, "compact"),
        Opt::new(None, Some("for-builtin-sig"), HasArg::No, "for-builtin-sig"),
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let mut raw = RawParams::default();
    let (mut compact, mut builtin) = (false, false);
    let mut outs = TreeOutputs::default();
    for (key, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or("");
        match *key {
            "compact" => compact = true,
            "for-builtin-sig" => builtin = true,
            "out-merkle-tree" | "out-descriptor" => {
                outs.open(key, v).map_err(|m| usage_err(cmd, &m))?
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, &m))?,
        }
    }
    if parsed.operands.is_empty() {
        return Err(usage_err(cmd, ""));
    }
    for path in &parsed.operands {
        let tree = compute(path, &raw, outs.tree.is_some())?;
        let d = tree.digest();
        let hex = if builtin {
            hex::encode(d.formatted())
        } else {
            d.to_hex()
        };
        if compact {
            *out += &format!("{hex}\n");
        } else if builtin {
            *out += &format!("{hex} {path}\n");
        } else {
            *out += &format!("{}:{hex} {path}\n", d.alg());
        }
        outs.write(&tree)?;
    }
    Ok(())
}

fn sign(cmd: &Cmd, args: &[String], out: &mut String) -> Res<()> {
    const SPEC: &[Opt] = &[
        Opt::new(None, Some("key"), HasArg::Required, "key"),
        Opt::new(None, Some("cert"), HasArg::Required, "cert"),
        Opt::new(
            None,
            Some("pkcs11-engine"),
            HasArg::Required,
            "pkcs11-engine",
        ),
        Opt::new(
            None,
            Some("pkcs11-module"),
            HasArg::Required,
            "pkcs11-module",
        ),
        Opt::new(None, Some("pkcs11-keyid"), HasArg::Required, "pkcs11-keyid"),
        HASH_ALG,
        BLOCK_SIZE,
        SALT,
        OUT_TREE,
        OUT_DESC,
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let mut raw = RawParams::default();
    let (mut key, mut cert) = (None, None);
    let mut outs = TreeOutputs::default();
    let (mut engine, mut module) = (false, false);
    for (k, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or("");
        match *k {
            "key" => key = Some(v.to_owned()),
            "cert" => cert = Some(v.to_owned()),
            "pkcs11-engine" => engine = true,
            "pkcs11-module" => module = true,
            "pkcs11-keyid" => {}
            "out-merkle-tree" | "out-descriptor" => {
                outs.open(k, v).map_err(|m| usage_err(cmd, &m))?
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, &m))?,
        }
    }
    if parsed.operands.len() != 2 {
        return Err(usage_err(cmd, ""));
    }
    let (path, sig_path) = (&parsed.operands[0], &parsed.operands[1]);
    let tree = compute(path, &raw, outs.tree.is_some())?;
    let failed = |m: String| runtime(format!("{m}ERROR: failed to sign digest\n"));
    // libfsverity's order: certificate, then the key (file or token).
    let Some(cert_path) = cert.as_ref().or(key.as_ref()) else {
        return Err(failed("ERROR: no certificate specified\n".into()));
    };
    let cert_pem = std::fs::read(cert_path)
        .map_err(|_| failed(format!("ERROR: can't open '{cert_path}' for reading\n")))?;
    let crt = vigil_fsverity::certificate_from_pem(&cert_pem).map_err(|_| {
        failed(format!(
            "ERROR: Failed to parse X.509 certificate file '{cert_path}'.\n       Note: it must be in PEM format.\n"
        ))
    })?;
    let key_path = match (&key, engine || module) {
        (Some(_), true) => return Err(failed(
            "ERROR: private key must be specified either by file or by PKCS#11 token, not both\n"
                .into(),
        )),
        (Some(k), false) => k,
        (None, true) if !engine => {
            return Err(failed("ERROR: no PKCS#11 engine specified\n".into()))
        }
        (None, true) if !module => {
            return Err(failed("ERROR: no PKCS#11 module specified\n".into()))
        }
        (None, true) => {
            return Err(failed(
                "ERROR: PKCS#11 tokens are not supported by this implementation\n".into(),
            ))
        }
        (None, false) => return Err(failed("ERROR: no private key specified\n".into())),
    };
    let key_pem = std::fs::read(key_path)
        .map_err(|_| failed(format!("ERROR: can't open '{key_path}' for reading\n")))?;
    let sk = vigil_fsverity::SigningKey::from_pem(&key_pem).map_err(|_| {
        failed(format!(
            "ERROR: Failed to parse private key file '{key_path}'.\n       Note: it must be in PEM PKCS#8 format.\n"
        ))
    })?;
    // The one way signing fails once key and certificate are read: they do not match.
    let sig = vigil_fsverity::sign(&tree.digest(), &sk, &crt)
        .map_err(|_| failed("ERROR: failed to add signer to PKCS#7 signature object\n".into()))?;
    let mut f = open_out(sig_path).map_err(runtime)?;
    write_out(&mut f, sig_path, &sig)?;
    outs.write(&tree)?;
    *out += &format!("Signed file '{path}' ({})\n", tree.digest());
    Ok(())
}

fn enable(cmd: &Cmd, args: &[String]) -> Res<()> {
    const SPEC: &[Opt] = &[
        HASH_ALG,
        BLOCK_SIZE,
        SALT,
        Opt::new(None, Some("signature"), HasArg::Required, "signature"),
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let mut raw = RawParams::default();
    let mut sig_path = None;
    for (k, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or("");
        match *k {
            "signature" => {
                if sig_path.is_some() {
                    return Err(usage_err(
                        cmd,
                        "ERROR: --signature can only be specified once\n",
                    ));
                }
                sig_path = Some(v.to_owned());
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, &m))?,
        }
    }
    if parsed.operands.len() != 1 {
        return Err(usage_err(cmd, ""));
    }
    let sig = match &sig_path {
        Some(p) => {
            let mut f = open_in(p)?;
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut buf)
                .map_err(|e| runtime(format!("ERROR: reading from '{p}': {}\n", strerror(&e))))?;
            Some(buf)
        }
        None => None,
    };
    let path = &parsed.operands[0];
    let file = open_in(path)?;
    sys::enable_raw(
        &file,
        raw.alg(),
        raw.block_size(),
        raw.salt(),
        sig.as_deref(),
    )
    .map_err(|e| {
        runtime(format!(
            "ERROR: FS_IOC_ENABLE_VERITY failed on '{path}': {}\n",
            strerror(&e)
        ))
    })
}

fn measure(cmd: &Cmd, args: &[String], out: &mut String) -> Res<()> {
    // fsverity-utils 1.5 takes every argument of `measure` as a file name.
    if args.is_empty() {
        return Err(usage_err(cmd, ""));
    }
    for path in args {
        let file = open_in(path)?;
        let d = sys::measure_raw(&file).map_err(|e| {
            runtime(format!(
                "ERROR: FS_IOC_MEASURE_VERITY failed on '{path}': {}\n",
                strerror(&e)
            ))
        })?;
        let name = HashAlg::from_id(d.0 as u32)
            .map(|a| a.name().to_owned())
            .unwrap_or_else(|_| format!("ALG_{}", d.0));
        *out += &format!("{name}:{} {path}\n", hex::encode(&d.1));
    }
    Ok(())
}

fn dump_metadata(cmd: &Cmd, args: &[String]) -> Res<()> {
    const SPEC: &[Opt] = &[
        Opt::new(None, Some("offset"), HasArg::Required, "offset"),
        Opt::new(None, Some("length"), HasArg::Required, "length"),
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let (mut offset, mut length) = (None, None);
    for (k, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or("");
        let n = strtoul(v)
            .ok_or_else(|| usage_err(cmd, &format!("ERROR: invalid value for --{k}\n")))?;
        if *k == "offset" {
            offset = Some(n);
        } else {
            length = Some(n);
        }
    }
    if parsed.operands.len() != 2 {
        return Err(usage_err(cmd, ""));
    }
    let kind = match parsed.operands[0].as_str() {
        "merkle_tree" => sys::Metadata::MerkleTree,
        "descriptor" => sys::Metadata::Descriptor,
        "signature" => sys::Metadata::Signature,
        other => {
            return Err(usage_err(
                cmd,
                &format!(
                    "ERROR: unknown metadata type: {other}\n       Expected \"merkle_tree\", \"descriptor\", or \"signature\"\n"
                ),
            ))
        }
    };
    match (offset, length) {
        (Some(_), None) => {
            return Err(usage_err(
                cmd,
                "ERROR: --offset specified without --length\n",
            ))
        }
        (None, Some(_)) => {
            return Err(usage_err(
                cmd,
                "ERROR: --length specified without --offset\n",
            ))
        }
        _ => {}
    }
    let path = &parsed.operands[1];
    let file = open_in(path)?;
    let mut pos = offset.unwrap_or(0);
    let mut left = length.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 32768];
    let stdout = std::io::stdout();
    let mut so = stdout.lock();
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = sys::read_metadata_raw(&file, kind, pos, &mut buf[..want]).map_err(|e| {
            runtime(format!(
                "ERROR: FS_IOC_READ_VERITY_METADATA failed on '{path}': {}\n",
                strerror(&e)
            ))
        })?;
        if n == 0 {
            break;
        }
        so.write_all(&buf[..n])
            .map_err(|e| runtime(format!("ERROR: write error: {}\n", strerror(&e))))?;
        pos += n as u64;
        left -= n as u64;
    }
    Ok(())
}
