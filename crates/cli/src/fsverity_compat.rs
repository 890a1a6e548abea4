//! The `fsverity` front door: vigil started as `fsverity` (through a link of that name)
//! accepts fsverity-utils 1.5's command line (`digest`, `sign`, `enable`, `measure`,
//! `dump_metadata`, `--help`, `--version`) and prints the same output with the same
//! exit status (0 ok, 1 runtime failure, 2 usage error).
//!
//! Arguments are taken byte for byte (file names need not be UTF-8) and printed as given.
//!
//! Deliberate differences: regular files and pipes are read to EOF instead of trusting
//! `st_size`, so a pipe digests its contents rather than as an empty file (devices, whose
//! `st_size` is 0, are read as fsverity-utils reads them); OpenSSL's own error-queue lines
//! after a key or certificate error are not reproduced; PKCS#11 is not supported.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use vigil_fsverity::{sys, HashAlg, Params, Tree, TreeBuilder};

use crate::getopt::{self, HasArg, Opt};
use crate::strerror;

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

/// A piece of a message: text, or a file name printed byte for byte as the C tool does.
trait Piece {
    fn piece(&self) -> &[u8];
}

impl Piece for str {
    fn piece(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Piece for String {
    fn piece(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Piece for OsStr {
    fn piece(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Piece for OsString {
    fn piece(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Piece for [u8] {
    fn piece(&self) -> &[u8] {
        self
    }
}

impl Piece for Vec<u8> {
    fn piece(&self) -> &[u8] {
        self
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn piece(&self) -> &[u8] {
        (**self).piece()
    }
}

/// Concatenate text and file names into the bytes of a message.
macro_rules! msg {
    ($($p:expr),+ $(,)?) => {{
        let mut v: Vec<u8> = Vec::new();
        $(v.extend_from_slice(Piece::piece(&$p));)+
        v
    }};
}

/// A failure: what to print on stderr and the exit status.
struct Fail {
    msg: Vec<u8>,
    code: u8,
}

type Res<T> = Result<T, Fail>;

/// `ERROR: ...` lines, exit status 1.
fn runtime(msg: impl Into<Vec<u8>>) -> Fail {
    Fail {
        msg: msg.into(),
        code: 1,
    }
}

/// Usage failure: optional `ERROR:` lines, then the command's usage, exit status 2.
fn usage_err(cmd: &Cmd, msg: impl Into<Vec<u8>>) -> Fail {
    let mut msg = msg.into();
    msg.extend_from_slice(usage_cmd(cmd).as_bytes());
    Fail { msg, code: 2 }
}

/// fsverity-utils' message for an option given twice.
fn repeated(key: &str) -> String {
    format!("ERROR: --{key} can only be specified once\n")
}

/// Set a once-only option, or fail as fsverity-utils does when it is repeated.
fn once(cmd: &Cmd, slot: &mut Option<OsString>, key: &str, value: &OsStr) -> Res<()> {
    if slot.is_some() {
        return Err(usage_err(cmd, repeated(key)));
    }
    *slot = Some(value.to_owned());
    Ok(())
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let (out, err, code) = run(&args);
    let _ = std::io::stdout().write_all(&out);
    let _ = std::io::stderr().write_all(&err);
    ExitCode::from(code)
}

/// Run with `args` (without `argv[0]`); returns (stdout, stderr, exit status). Binary
/// output (dump_metadata) goes straight to stdout.
fn run(args: &[OsString]) -> (Vec<u8>, Vec<u8>, u8) {
    if args.is_empty() {
        return (
            Vec::new(),
            msg!("ERROR: no command specified\n", usage_all()),
            2,
        );
    }
    let cmd = COMMANDS.iter().find(|c| args[0] == c.name);
    for a in args {
        if a == "--help" {
            let text = cmd.map(usage_cmd).unwrap_or_else(usage_all);
            return (text.into_bytes(), Vec::new(), 0);
        } else if a == "--version" {
            return (format!("{VERSION}\n").into_bytes(), Vec::new(), 0);
        } else if a == "--" {
            break;
        }
    }
    let Some(cmd) = cmd else {
        return (
            Vec::new(),
            msg!(
                "ERROR: unrecognized command: '",
                args[0],
                "'\n",
                usage_all()
            ),
            2,
        );
    };
    let mut out = Vec::new();
    let result = match cmd.name {
        "digest" => digest(cmd, &args[1..], &mut out),
        "sign" => sign(cmd, &args[1..], &mut out),
        "enable" => enable(cmd, &args[1..]),
        "measure" => measure(cmd, &args[1..], &mut out),
        _ => dump_metadata(cmd, &args[1..]),
    };
    match result {
        Ok(()) => (out, Vec::new(), 0),
        Err(f) => (out, f.msg, f.code),
    }
}

type Parsed = getopt::Parsed<OsString>;

/// glibc's `getopt_long`, which stops at the first operand when `POSIXLY_CORRECT` is set.
fn parse(cmd: &Cmd, spec: &[Opt], args: &[OsString]) -> Res<Parsed> {
    let posix = std::env::var_os("POSIXLY_CORRECT").is_some();
    getopt::parse_os(spec, args, posix).map_err(|e| {
        let text = match e {
            getopt::GetoptError::Ambiguous(name) => {
                let cands: String = spec
                    .iter()
                    .filter_map(|o| o.long)
                    .filter(|l| l.starts_with(name.strip_prefix("--").unwrap_or(&name)))
                    .map(|l| format!(" '--{l}'"))
                    .collect();
                msg!(
                    "option '",
                    whole_arg(args, &name),
                    "' is ambiguous; possibilities:",
                    cands
                )
            }
            getopt::GetoptError::Unrecognized(name) if name.starts_with("--") => {
                msg!("unrecognized option '", whole_arg(args, &name), "'")
            }
            other => other.to_string().into_bytes(),
        };
        usage_err(cmd, msg!(cmd.name, ": ", text, "\n"))
    })
}

/// The argument that long option `name` (as getopt reported it, without any `=VALUE`)
/// came from: glibc quotes it whole.
fn whole_arg<'a>(args: &'a [OsString], name: &'a str) -> &'a [u8] {
    args.iter()
        .map(|a| a.as_bytes())
        .take_while(|a| *a != b"--")
        .find(|a| {
            let opt = a.split(|&b| b == b'=').next().unwrap_or(a);
            String::from_utf8_lossy(opt) == name
        })
        .unwrap_or(name.as_bytes())
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

/// C `strtoull(s, &end, 10)` with `*end == '\0'` required: leading blanks and a sign
/// allowed, a negative value wraps, an empty string is 0 (no digits, but `*end` is the
/// terminator), and a value beyond 64 bits (`ERANGE`) is invalid.
fn strtoul(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    let start = s.iter().position(|b| !b" \t\n\r\x0b\x0c".contains(b))?;
    let t = &s[start..];
    let (neg, digits) = match t.first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

impl RawParams {
    /// Handle one tree option in command-line order, as fsverity-utils does.
    fn take(&mut self, key: &str, value: &OsStr) -> Result<(), Vec<u8>> {
        let v = value.as_bytes();
        match key {
            "hash-alg" => {
                if self.alg.is_some() {
                    return Err(repeated(key).into_bytes());
                }
                let by_name = value.to_str().and_then(|n| HashAlg::from_name(n).ok());
                if let Some(n) = strtoul(v).filter(|&n| n > 0 && n < i32::MAX as u64) {
                    self.alg = Some(n as u32);
                } else if let Some(a) = by_name {
                    self.alg = Some(a.id() as u32);
                } else {
                    return Err(msg!(
                        "ERROR: unknown hash algorithm: '",
                        value,
                        "'\nAvailable hash algorithms: sha256 sha512\n"
                    ));
                }
            }
            "block-size" => {
                if self.block_size.is_some() {
                    return Err(repeated(key).into_bytes());
                }
                match strtoul(v).filter(|&n| n > 0 && n < i32::MAX as u64 && n.is_power_of_two()) {
                    Some(n) => self.block_size = Some(n as u32),
                    None => {
                        return Err(msg!(
                            "ERROR: Invalid block size: ",
                            value,
                            ".  Must be power of 2\n"
                        ))
                    }
                }
            }
            _ => {
                if self.salt.is_some() {
                    return Err(repeated(key).into_bytes());
                }
                match hex::decode(v) {
                    Ok(s) => self.salt = Some(s),
                    Err(_) => return Err(b"ERROR: salt is not a valid hex string\n".to_vec()),
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

    /// libfsverity's parameter checks, in its order and with its messages.
    fn params(&self) -> Result<Params, String> {
        if self.salt().len() > 32 {
            return Err(format!("unsupported salt size ({})", self.salt().len()));
        }
        let alg = HashAlg::from_id(self.alg())
            .map_err(|_| format!("unknown hash algorithm: {}", self.alg()))?;
        let bs = self.block_size();
        if bs < 2 * alg.digest_size() as u32 {
            return Err(format!(
                "block size ({bs}) too small for hash algorithm {alg}"
            ));
        }
        Params::new_userspace(alg, bs, self.salt()).map_err(|e| e.to_string())
    }
}

/// Open an output file as fsverity-utils does (created, truncated, mode 0644 & ~umask).
fn open_out(path: &OsStr) -> Result<File, Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            msg!(
                "ERROR: can't open '",
                path,
                "' for writing: ",
                strerror(&e),
                "\n"
            )
        })
}

fn open_in(path: &OsStr) -> Res<File> {
    File::open(path).map_err(|e| {
        runtime(msg!(
            "ERROR: can't open '",
            path,
            "' for reading: ",
            strerror(&e),
            "\n"
        ))
    })
}

fn write_err(path: &OsStr, e: std::io::Error) -> Fail {
    runtime(msg!(
        "ERROR: write error on '",
        path,
        "': ",
        strerror(&e),
        "\n"
    ))
}

/// Write `bytes` at `offset` of an output file (a descriptor, a tree or a signature),
/// as fsverity-utils' callbacks write them; a failure is reported as libfsverity
/// reports the step it failed in (`step`), if any.
fn write_out(file: &File, path: &OsStr, bytes: &[u8], offset: Option<u64>, step: &str) -> Res<()> {
    use std::os::unix::fs::FileExt;
    let written = match offset {
        Some(at) => file.write_all_at(bytes, at),
        None => (&*file).write_all(bytes),
    };
    written.map_err(|e| {
        runtime(msg!(
            "ERROR: writing to '",
            path,
            "': ",
            strerror(&e),
            "\n",
            step
        ))
    })?;
    sync_if_regular(file).map_err(|e| write_err(path, e))
}

/// Make a written output file durable; a pipe or device (`/dev/stdout`) has nothing
/// to sync (and fsync fails there with EINVAL).
fn sync_if_regular(file: &File) -> std::io::Result<()> {
    match file.metadata()?.is_file() {
        true => file.sync_all(),
        false => Ok(()),
    }
}

/// The `--out-merkle-tree` and `--out-descriptor` files of `digest` and `sign`, each
/// with its name for messages.
#[derive(Default)]
struct TreeOutputs {
    tree: Option<(File, OsString)>,
    desc: Option<(File, OsString)>,
}

impl TreeOutputs {
    /// Open the file of option `key` when it is parsed, as fsverity-utils does; each
    /// may be given once.
    fn open(&mut self, key: &str, path: &OsStr) -> Result<(), Vec<u8>> {
        let slot = if key == "out-merkle-tree" {
            &mut self.tree
        } else {
            &mut self.desc
        };
        if slot.is_some() {
            return Err(repeated(key).into_bytes());
        }
        *slot = Some((open_out(path)?, path.to_owned()));
        Ok(())
    }

    /// Write the Merkle tree and the descriptor of `tree` where asked, as libfsverity's
    /// callbacks do: the tree file preallocated to the tree's size first (which fails
    /// on a pipe or device), the tree written from offset 0 (with several input files
    /// each tree overwrites the start of the previous one), then the descriptor.
    fn write(&mut self, tree: &Tree) -> Res<()> {
        const FAILED: &str = "ERROR: failed to compute digest\n";
        if let Some((f, p)) = &self.tree {
            let bytes = tree.merkle_tree();
            if !bytes.is_empty() {
                use std::os::fd::AsRawFd;
                // SAFETY: posix_fallocate on our own descriptor.
                let res = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, bytes.len() as i64) };
                if res != 0 && res != libc::EOPNOTSUPP {
                    return Err(runtime(msg!(
                        "ERROR: preallocating ",
                        bytes.len().to_string(),
                        "-byte file '",
                        p,
                        "'\nERROR: error processing Merkle tree size\n",
                        FAILED
                    )));
                }
            }
            let step = format!("ERROR: error processing Merkle tree block\n{FAILED}");
            write_out(f, p, bytes, Some(0), &step)?;
        }
        if let Some((f, p)) = &self.desc {
            let step = format!("ERROR: error processing fs-verity descriptor\n{FAILED}");
            write_out(f, p, &tree.descriptor_bytes(), None, &step)?;
        }
        Ok(())
    }
}

/// Compute the tree of `path`, with fsverity-utils' error messages. Regular files and
/// pipes are read to EOF; a device is read up to its `st_size` as fsverity-utils reads
/// it (0 for `/dev/zero`, which would otherwise never end).
fn compute(path: &OsStr, raw: &RawParams, keep_tree: bool) -> Res<Tree> {
    use std::os::unix::fs::FileTypeExt;
    let file = open_in(path)?;
    let meta = file.metadata().map_err(|e| {
        runtime(msg!(
            "ERROR: can't stat file '",
            path,
            "': ",
            strerror(&e),
            "\n"
        ))
    })?;
    let params = raw
        .params()
        .map_err(|m| runtime(format!("ERROR: {m}\nERROR: failed to compute digest\n")))?;
    let kind = meta.file_type();
    let limit = if kind.is_char_device() || kind.is_block_device() {
        meta.len()
    } else {
        u64::MAX
    };
    let mut b = TreeBuilder::new(&params).keep_tree(keep_tree);
    b.read_from(&mut file.take(limit)).map_err(|e| {
        runtime(msg!(
            "ERROR: reading from '",
            path,
            "': ",
            strerror(&e),
            "\nERROR: error reading file\nERROR: failed to compute digest\n"
        ))
    })?;
    Ok(b.finish())
}

fn digest(cmd: &Cmd, args: &[OsString], out: &mut Vec<u8>) -> Res<()> {
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
        let v = value.as_deref().unwrap_or_default();
        match *key {
            "compact" => compact = true,
            "for-builtin-sig" => builtin = true,
            "out-merkle-tree" | "out-descriptor" => {
                outs.open(key, v).map_err(|m| usage_err(cmd, m))?
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, m))?,
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
        // The outputs are written while the digest is computed, before it is printed.
        outs.write(&tree)?;
        if compact {
            out.extend(msg!(hex, "\n"));
        } else if builtin {
            out.extend(msg!(hex, " ", path, "\n"));
        } else {
            out.extend(msg!(d.alg().to_string(), ":", hex, " ", path, "\n"));
        }
    }
    Ok(())
}

/// Read a key or certificate file as OpenSSL's `BIO_new_file` + PEM reader do: only
/// failing to open it is an I/O error; an unreadable file (a directory) just holds
/// no PEM data.
fn read_pem(path: &OsStr) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    let mut data = Vec::new();
    // A read error leaves what was read so far, which then fails to parse.
    let _ = f.read_to_end(&mut data);
    Some(data)
}

fn sign(cmd: &Cmd, args: &[OsString], out: &mut Vec<u8>) -> Res<()> {
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
    let (mut engine, mut module, mut keyid) = (None, None, None);
    let mut outs = TreeOutputs::default();
    for (k, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or_default();
        match *k {
            "key" => once(cmd, &mut key, k, v)?,
            "cert" => once(cmd, &mut cert, k, v)?,
            "pkcs11-engine" => once(cmd, &mut engine, k, v)?,
            "pkcs11-module" => once(cmd, &mut module, k, v)?,
            "pkcs11-keyid" => once(cmd, &mut keyid, k, v)?,
            "out-merkle-tree" | "out-descriptor" => {
                outs.open(k, v).map_err(|m| usage_err(cmd, m))?
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, m))?,
        }
    }
    if parsed.operands.len() != 2 {
        return Err(usage_err(cmd, ""));
    }
    let (path, sig_path) = (&parsed.operands[0], &parsed.operands[1]);
    let tree = compute(path, &raw, outs.tree.is_some())?;
    // libfsverity writes the tree and descriptor while computing the digest, so they
    // are complete even when signing fails.
    outs.write(&tree)?;
    let failed = |m: Vec<u8>| runtime(msg!(m, "ERROR: failed to sign digest\n"));
    // libfsverity's order: certificate, then the key (file or token).
    let Some(cert_path) = cert.as_ref().or(key.as_ref()) else {
        return Err(failed(b"ERROR: no certificate specified\n".to_vec()));
    };
    let cert_pem = read_pem(cert_path)
        .ok_or_else(|| failed(msg!("ERROR: can't open '", cert_path, "' for reading\n")))?;
    let crt = vigil_fsverity::certificate_from_pem(&cert_pem).map_err(|_| {
        failed(msg!(
            "ERROR: Failed to parse X.509 certificate file '",
            cert_path,
            "'.\n       Note: it must be in PEM format.\n"
        ))
    })?;
    let token = engine.is_some() || module.is_some() || keyid.is_some();
    let key_path = match (&key, token) {
        (Some(_), true) => return Err(failed(
            b"ERROR: private key must be specified either by file or by PKCS#11 token, not both\n"
                .to_vec(),
        )),
        (Some(k), false) => k,
        (None, false) => return Err(failed(b"ERROR: no private key specified\n".to_vec())),
        (None, true) => {
            let m: &[u8] = if engine.is_none() {
                b"ERROR: no PKCS#11 engine specified\n"
            } else if module.is_none() {
                b"ERROR: no PKCS#11 module specified\n"
            } else {
                b"ERROR: PKCS#11 tokens are not supported by this implementation\n"
            };
            return Err(failed(m.to_vec()));
        }
    };
    let key_pem = read_pem(key_path)
        .ok_or_else(|| failed(msg!("ERROR: can't open '", key_path, "' for reading\n")))?;
    let sk = vigil_fsverity::SigningKey::from_pem(&key_pem).map_err(|e| {
        failed(msg!(
            "ERROR: Failed to parse private key file '",
            key_path,
            "'.\n       Note: it must be in PEM PKCS#8 format.\n",
            key_note(&e)
        ))
    })?;
    // The one way signing fails once key and certificate are read: they do not match.
    let sig = vigil_fsverity::sign(&tree.digest(), &sk, &crt).map_err(|_| {
        failed(b"ERROR: failed to add signer to PKCS#7 signature object\n".to_vec())
    })?;
    let f = open_out(sig_path).map_err(runtime)?;
    write_out(&f, sig_path, &sig, None, "")?;
    out.extend(msg!(
        "Signed file '",
        path,
        "' (",
        tree.digest().to_string(),
        ")\n"
    ));
    Ok(())
}

/// An extra line for a key vigil cannot sign with (fsverity-utils may).
fn key_note(e: &vigil_fsverity::Error) -> String {
    match e {
        vigil_fsverity::Error::UnsupportedKey(_) => format!("ERROR: {e}\n"),
        _ => String::new(),
    }
}

/// Read the `--signature` file as fsverity-utils does: `st_size` bytes, which must be
/// between 1 and 1,000,000.
fn read_signature(path: &OsStr) -> Res<Vec<u8>> {
    let file = open_in(path)?;
    let size = file
        .metadata()
        .map_err(|e| {
            runtime(msg!(
                "ERROR: can't stat file '",
                path,
                "': ",
                strerror(&e),
                "\n"
            ))
        })?
        .len();
    if size == 0 {
        return Err(runtime(msg!(
            "ERROR: signature file '",
            path,
            "' is empty\n"
        )));
    }
    if size > 1_000_000 {
        return Err(runtime(msg!(
            "ERROR: signature file '",
            path,
            "' is too large\n"
        )));
    }
    let mut sig = Vec::new();
    file.take(size).read_to_end(&mut sig).map_err(|e| {
        runtime(msg!(
            "ERROR: reading from '",
            path,
            "': ",
            strerror(&e),
            "\n"
        ))
    })?;
    if (sig.len() as u64) < size {
        return Err(runtime(msg!(
            "ERROR: unexpected end-of-file on '",
            path,
            "'\n"
        )));
    }
    Ok(sig)
}

fn enable(cmd: &Cmd, args: &[OsString]) -> Res<()> {
    const SPEC: &[Opt] = &[
        HASH_ALG,
        BLOCK_SIZE,
        SALT,
        Opt::new(None, Some("signature"), HasArg::Required, "signature"),
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let mut raw = RawParams::default();
    let mut sig = None;
    for (k, value) in &parsed.opts {
        let v = value.as_deref().unwrap_or_default();
        match *k {
            // Read when the option is parsed, as fsverity-utils does.
            "signature" => {
                if sig.is_some() {
                    return Err(usage_err(cmd, repeated(k)));
                }
                sig = Some(read_signature(v)?);
            }
            k => raw.take(k, v).map_err(|m| usage_err(cmd, m))?,
        }
    }
    if parsed.operands.len() != 1 {
        return Err(usage_err(cmd, ""));
    }
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
        runtime(msg!(
            "ERROR: FS_IOC_ENABLE_VERITY failed on '",
            path,
            "': ",
            strerror(&e),
            "\n"
        ))
    })
}

fn measure(cmd: &Cmd, args: &[OsString], out: &mut Vec<u8>) -> Res<()> {
    // fsverity-utils 1.5 takes every argument of `measure` as a file name.
    if args.is_empty() {
        return Err(usage_err(cmd, ""));
    }
    for path in args {
        let file = open_in(path)?;
        let d = sys::measure_raw(&file).map_err(|e| {
            runtime(msg!(
                "ERROR: FS_IOC_MEASURE_VERITY failed on '",
                path,
                "': ",
                strerror(&e),
                "\n"
            ))
        })?;
        let name = HashAlg::from_id(d.0 as u32)
            .map(|a| a.name().to_owned())
            .unwrap_or_else(|_| format!("ALG_{}", d.0));
        out.extend(msg!(name, ":", hex::encode(&d.1), " ", path, "\n"));
    }
    Ok(())
}

fn dump_metadata(cmd: &Cmd, args: &[OsString]) -> Res<()> {
    const SPEC: &[Opt] = &[
        Opt::new(None, Some("offset"), HasArg::Required, "offset"),
        Opt::new(None, Some("length"), HasArg::Required, "length"),
    ];
    let parsed = parse(cmd, SPEC, args)?;
    let (mut offset, mut length) = (None, None);
    for (k, value) in &parsed.opts {
        let slot = if *k == "offset" {
            &mut offset
        } else {
            &mut length
        };
        if slot.is_some() {
            return Err(usage_err(cmd, repeated(k)));
        }
        let v = value.as_deref().unwrap_or_default();
        let n = strtoul(v.as_bytes())
            .ok_or_else(|| usage_err(cmd, format!("ERROR: invalid value for --{k}\n")))?;
        *slot = Some(n);
    }
    if parsed.operands.len() != 2 {
        return Err(usage_err(cmd, ""));
    }
    let kind = match parsed.operands[0].to_str() {
        Some("merkle_tree") => sys::Metadata::MerkleTree,
        Some("descriptor") => sys::Metadata::Descriptor,
        Some("signature") => sys::Metadata::Signature,
        _ => {
            return Err(usage_err(
                cmd,
                msg!(
                    "ERROR: unknown metadata type: ",
                    parsed.operands[0],
                    "\n       Expected \"merkle_tree\", \"descriptor\", or \"signature\"\n"
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
    // The kernel is asked at least once, even for `--length=0`, as fsverity-utils does.
    loop {
        let want = (buf.len() as u64).min(left) as usize;
        let n = sys::read_metadata_raw(&file, kind, pos, &mut buf[..want]).map_err(|e| {
            runtime(msg!(
                "ERROR: FS_IOC_READ_VERITY_METADATA failed on '",
                path,
                "': ",
                strerror(&e),
                "\n"
            ))
        })?;
        if n == 0 {
            break;
        }
        so.write_all(&buf[..n])
            .map_err(|e| runtime(format!("ERROR: write error: {}\n", strerror(&e))))?;
        pos = pos.wrapping_add(n as u64);
        left -= n as u64;
        if left == 0 {
            break;
        }
    }
    Ok(())
}
