//! The `evmctl` front door: vigil run under the name `evmctl` accepts evmctl's
//! command line (ima-evm-utils 1.4, plus the 1.6 option names), prints what evmctl
//! prints on stdout and exits as it does: 0 on success, 1 when a verification
//! fails (and on command-line errors), 125 on other errors.

use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use vigil_ima::evm::{self, EvmMeta, MiscLayout};
use vigil_ima::keys::{read_at_most, MAX_KEY_FILE};
use vigil_ima::{HashAlgo, ImaXattr, KeyId, KeyRing, PrivateKey, Signature, XattrType};

use crate::getopt::{self, HasArg, Opt};
use crate::ima::{self, EvmParams, XattrNames};

/// The version string `evmctl --version` prints.
const VERSION: &str = concat!("evmctl 1.4 (vigil ", env!("CARGO_PKG_VERSION"), ")");

const OPTS: &[Opt] = &[
    Opt::new(Some('h'), Some("help"), HasArg::No, "help"),
    Opt::new(Some('v'), None, HasArg::No, "v"),
    Opt::new(Some('n'), None, HasArg::No, "n"),
    Opt::new(Some('s'), Some("imasig"), HasArg::No, "imasig"),
    Opt::new(Some('d'), Some("imahash"), HasArg::No, "imahash"),
    Opt::new(Some('a'), Some("hashalgo"), HasArg::Required, "hashalgo"),
    Opt::new(Some('p'), Some("pass"), HasArg::Optional, "pass"),
    Opt::new(Some('f'), Some("sigfile"), HasArg::No, "sigfile"),
    Opt::new(Some('u'), Some("uuid"), HasArg::Optional, "uuid"),
    Opt::new(None, Some("rsa"), HasArg::No, "rsa"),
    Opt::new(Some('k'), Some("key"), HasArg::Required, "key"),
    Opt::new(Some('t'), Some("type"), HasArg::Required, "type"),
    Opt::new(Some('r'), Some("recursive"), HasArg::No, "recursive"),
    Opt::new(Some('i'), None, HasArg::No, "immutable"),
    Opt::new(None, Some("m32"), HasArg::No, "m32"),
    Opt::new(None, Some("m64"), HasArg::No, "m64"),
    Opt::new(Some('o'), Some("portable"), HasArg::No, "portable"),
    Opt::new(None, Some("smack"), HasArg::No, "smack"),
    Opt::new(None, Some("version"), HasArg::No, "version"),
    Opt::new(None, Some("inode"), HasArg::Required, "inode"),
    Opt::new(None, Some("uid"), HasArg::Required, "uid"),
    Opt::new(None, Some("gid"), HasArg::Required, "gid"),
    Opt::new(None, Some("mode"), HasArg::Required, "mode"),
    Opt::new(None, Some("generation"), HasArg::Required, "generation"),
    Opt::new(None, Some("ima"), HasArg::Required, "ima"),
    Opt::new(None, Some("selinux"), HasArg::Required, "selinux"),
    Opt::new(None, Some("caps"), HasArg::Optional, "caps"),
    Opt::new(None, Some("verify-sig"), HasArg::No, "verify-sig"),
    Opt::new(None, Some("engine"), HasArg::Required, "engine"),
    Opt::new(None, Some("provider"), HasArg::Required, "provider"),
    Opt::new(None, Some("xattr-user"), HasArg::No, "xattr-user"),
    Opt::new(
        None,
        Some("ignore-violations"),
        HasArg::No,
        "ignore-violations",
    ),
    Opt::new(None, Some("pcrs"), HasArg::Required, "pcrs"),
    Opt::new(None, Some("verify-bank"), HasArg::Optional, "verify-bank"),
    Opt::new(None, Some("keyid"), HasArg::Required, "keyid"),
    Opt::new(
        None,
        Some("keyid-from-cert"),
        HasArg::Required,
        "keyid-from-cert",
    ),
    Opt::new(None, Some("veritysig"), HasArg::No, "veritysig"),
    Opt::new(None, Some("hwtpm"), HasArg::No, "hwtpm"),
    Opt::new(None, Some("hmackey"), HasArg::Required, "hmackey"),
    Opt::new(None, Some("v2"), HasArg::No, "v2"),
    Opt::new(None, Some("v3"), HasArg::No, "v3"),
];

/// evmctl's parsed options, for every command (including those implemented in
/// other modules, which take `&EvmctlOpts`).
#[derive(Debug, Clone)]
pub struct EvmctlOpts {
    /// `-v` count.
    pub verbose: usize,
    /// `-a/--hashalgo` as given (default `sha256`); see [`EvmctlOpts::algo`].
    pub hash_algo: String,
    /// `-k/--key`: a key file, or a comma-separated list for verification.
    pub keys: Option<String>,
    /// `-p/--pass` (attached value only) or `EVMCTL_KEY_PASSWORD`.
    pub pass: Option<String>,
    /// `-p` given without a value: prompt for the password.
    pub pass_prompt: bool,
    /// `--keyid HEX`.
    pub keyid: Option<KeyId>,
    /// `--keyid-from-cert FILE`.
    pub keyid_from_cert: Option<PathBuf>,
    /// `-n`: print only, do not set xattrs.
    pub no_xattr: bool,
    /// `-f/--sigfile`.
    pub sigfile: bool,
    /// `--xattr-user`: `user.ima`/`user.evm`.
    pub xattr_user: bool,
    /// `-r/--recursive`.
    pub recursive: bool,
    /// `-t/--type`.
    pub search_type: Option<String>,
    /// `-s/--imasig`.
    pub imasig: bool,
    /// `-d/--imahash`.
    pub imahash: bool,
    /// `-i`: immutable EVM signature (not supported by vigil).
    pub immutable: bool,
    /// EVM hash parameters (`--portable`, `-u`, `--m32/--m64`, `--smack`, overrides).
    pub evm: EvmParams,
    /// `--pcrs [ALG,]FILE`, in order.
    pub pcrs: Vec<String>,
    /// `--ignore-violations`.
    pub ignore_violations: bool,
    /// `--verify-sig`.
    pub verify_sig: bool,
    /// `--verify-bank[=ALG]`: `Some(None)` when given without a value.
    pub verify_bank: Option<Option<String>>,
    /// `--veritysig`.
    pub veritysig: bool,
    /// `--hwtpm`.
    pub hwtpm: bool,
    /// `--engine` / `--provider` (accepted; vigil has no OpenSSL engines).
    pub engine: Option<String>,
    /// `--hmackey FILE`: the raw EVM HMAC key for `hmac` (default
    /// `/etc/keys/evm-key-plain`).
    pub hmackey: Option<PathBuf>,
    /// `--rsa` (legacy v1 signatures and keys: ignored, but `import` refuses it).
    pub rsa: bool,
    /// `--v3` (upstream 2026): sigv3 over `ima_file_id` for IMA (type 0x03) and
    /// EVM (type 0x03/0x05) signatures; `--v2` switches back.
    pub v3: bool,
}

impl Default for EvmctlOpts {
    fn default() -> Self {
        EvmctlOpts {
            verbose: 0,
            hash_algo: "sha256".into(),
            keys: None,
            pass: None,
            pass_prompt: false,
            keyid: None,
            keyid_from_cert: None,
            no_xattr: false,
            sigfile: false,
            xattr_user: false,
            recursive: false,
            search_type: None,
            imasig: false,
            imahash: false,
            immutable: false,
            evm: EvmParams::default(),
            pcrs: Vec::new(),
            ignore_violations: false,
            verify_sig: false,
            verify_bank: None,
            veritysig: false,
            hwtpm: false,
            engine: None,
            hmackey: None,
            rsa: false,
            v3: false,
        }
    }
}

impl EvmctlOpts {
    /// The `-a` algorithm; evmctl's error wording when unknown.
    pub fn algo(&self) -> anyhow::Result<HashAlgo> {
        HashAlgo::from_name(&self.hash_algo)
            .map_err(|_| anyhow!("Unknown hash algo: {}", self.hash_algo))
    }

    /// The xattr names in use.
    pub(crate) fn names(&self) -> XattrNames {
        XattrNames::new(self.xattr_user)
    }

    /// The verification keys (`--key` list, default `/etc/keys/x509_evm.der`).
    pub fn keyring(&self) -> anyhow::Result<KeyRing> {
        let list = self.keys.as_deref().unwrap_or(ima::DEFAULT_CERT);
        let ring = KeyRing::load_list(list)?;
        for (i, k) in ring.keys().iter().enumerate() {
            // evmctl prints key ids with `%x` here and `%04x` for --keyid-from-cert.
            eprintln!("key {}: {:x} {}", i + 1, k.keyid().0, k.source());
        }
        Ok(ring)
    }

    /// The `-k` signing key (default `/etc/keys/privkey_evm.pem`). evmctl reads its
    /// key when it signs, after it has printed the hash, so a failure is reported
    /// there, for each file.
    fn signing_key(&self) -> Result<PrivateKey, Failure> {
        let path = self.keys.as_deref().unwrap_or(ima::DEFAULT_PRIVATE_KEY);
        if let Err(e) = std::fs::File::open(path) {
            return Err(Failure::new(
                format!("Failed to open keyfile: {path}"),
                Some(&e),
            ));
        }
        let failure = |e: anyhow::Error| Failure::new(crate::error_text(&e), None);
        let pass = if self.pass_prompt && self.pass.is_none() {
            Some(ima::prompt_password().map_err(failure)?)
        } else {
            self.pass.clone()
        };
        let load =
            |pass: Option<&str>| ima::load_signing_key(Path::new(path), pass, self.keyid, None);
        match load(pass.as_deref()) {
            // An encrypted key and no password given: OpenSSL asks for one, as -p does.
            Err(e)
                if pass.is_none()
                    && matches!(e.downcast_ref(), Some(vigil_ima::Error::KeyPassword { .. })) =>
            {
                load(Some(&ima::prompt_password().map_err(failure)?))
            }
            r => r,
        }
        .map_err(failure)
    }
}

/// A failure in evmctl's words, with the errno line evmctl ends the command with
/// when a system call failed.
struct Failure {
    what: String,
    errno: Option<String>,
}

impl Failure {
    fn new(what: String, e: Option<&std::io::Error>) -> Failure {
        Failure {
            what,
            errno: e.map(errno_line),
        }
    }

    /// Append it to a file's report in `err` (inside a `-r` walk, which goes on to
    /// the next file, without the errno line).
    fn report(&self, opts: &EvmctlOpts, err: &mut String) -> anyhow::Error {
        err.push_str(&format!("{}\n", self.what));
        if let (Some(errno), false) = (&self.errno, opts.recursive) {
            err.push_str(&format!("{errno}\n"));
        }
        anyhow!("{}", self.what).context(Reported)
    }

    /// Print it now: the words, then `more` (the caller's own line), then the errno
    /// line.
    fn print(self, more: Option<String>) -> anyhow::Error {
        eprintln!("{}", self.what);
        if let Some(more) = more {
            eprintln!("{more}");
        }
        if let Some(errno) = &self.errno {
            eprintln!("{errno}");
        }
        anyhow!("{}", self.what).context(Reported)
    }
}

/// Parse evmctl's options (everything after `argv[0]`) into options and operands.
pub fn parse_args(args: &[String]) -> Result<(EvmctlOpts, Vec<String>), ParseExit> {
    let parsed = getopt::parse(OPTS, args).map_err(|e| {
        eprintln!("evmctl: {e}");
        ParseExit(ExitCode::from(1))
    })?;
    let mut o = EvmctlOpts::default();
    if parsed.has("help") {
        usage();
        return Err(ParseExit(ExitCode::SUCCESS));
    }
    o.verbose = parsed.count("v");
    o.pcrs = parsed.values("pcrs").map(str::to_owned).collect();
    if let Some(a) = parsed.value("hashalgo") {
        o.hash_algo = a.to_owned();
    }
    for (key, value) in &parsed.opts {
        let v = value.clone();
        match *key {
            "version" => {
                println!("{VERSION}");
                return Err(ParseExit(ExitCode::SUCCESS));
            }
            "help" | "v" | "pcrs" | "hashalgo" => {}
            "n" => o.no_xattr = true,
            "imasig" => o.imasig = true,
            "imahash" => o.imahash = true,
            "pass" => match v {
                Some(p) => o.pass = Some(p),
                None => o.pass_prompt = true,
            },
            "sigfile" => o.sigfile = true,
            // evmctl: `-u` without a value sets HMAC_FLAG_NO_UUID for good; a later
            // `--uuid=U` only names the UUID that flag then leaves unused.
            "uuid" if o.evm.uuid == Some(None) => {}
            "uuid" => o.evm.uuid = Some(v),
            "rsa" => o.rsa = true,
            "key" => o.keys = v,
            "type" => o.search_type = v,
            "recursive" => o.recursive = true,
            "immutable" => {
                if o.evm.portable {
                    eprintln!(
                        "Portable and immutable options are exclusive, ignoring immutable option."
                    );
                } else {
                    o.immutable = true;
                }
            }
            "portable" => {
                if o.immutable {
                    eprintln!(
                        "Portable and immutable options are exclusive, ignoring portable option."
                    );
                } else {
                    o.evm.portable = true;
                }
            }
            "m32" => o.evm.layout = MiscLayout::M32,
            "m64" => o.evm.layout = MiscLayout::M64,
            "smack" => o.evm.smack = true,
            "inode" => o.evm.ino = v,
            "uid" => o.evm.uid = v,
            "gid" => o.evm.gid = v,
            "mode" => o.evm.mode = v,
            "generation" => o.evm.generation = v,
            "ima" => o.evm.ima = v,
            "selinux" => o.evm.selinux = v,
            "caps" => o.evm.caps = Some(v),
            "verify-sig" => o.verify_sig = true,
            "engine" | "provider" => o.engine = v,
            "xattr-user" => o.xattr_user = true,
            "ignore-violations" => o.ignore_violations = true,
            "verify-bank" => o.verify_bank = Some(v),
            "keyid" => match v.as_deref().unwrap_or_default().parse::<KeyId>() {
                Ok(k) => o.keyid = Some(k),
                Err(_) => {
                    eprintln!("Invalid keyid value.");
                    return Err(ParseExit(ExitCode::from(1)));
                }
            },
            "keyid-from-cert" => {
                let cert = PathBuf::from(v.unwrap_or_default());
                let read = match read_at_most(&cert, MAX_KEY_FILE) {
                    Err(e) => Err(format!(
                        "Cannot open {}: {}",
                        cert.display(),
                        crate::strerror(&e)
                    )),
                    Ok(d) => vigil_ima::keys::keyid_from_cert(&d, &cert.display().to_string())
                        .map_err(|e| e.to_string()),
                };
                match read {
                    Ok(k) => {
                        eprintln!("keyid {:04x} (from {})", k.0, cert.display());
                        o.keyid = Some(k);
                    }
                    Err(why) => {
                        eprintln!("{why}\nError reading keyid.");
                        return Err(ParseExit(ExitCode::from(1)));
                    }
                }
                o.keyid_from_cert = Some(cert);
            }
            "veritysig" => o.veritysig = true,
            "hwtpm" => o.hwtpm = true,
            "hmackey" => o.hmackey = v.map(PathBuf::from),
            "v2" => o.v3 = false,
            "v3" => o.v3 = true,
            other => unreachable!("option key {other} has no handler"),
        }
    }
    if o.pass.is_none() {
        o.pass = std::env::var("EVMCTL_KEY_PASSWORD").ok();
    }
    Ok((o, parsed.operands))
}

/// An early exit while parsing (`--help`, `--version`, a bad option).
#[derive(Debug)]
pub struct ParseExit(pub ExitCode);

/// One evmctl command: name, argument synopsis, description.
struct Cmd {
    name: &'static str,
    arg: &'static str,
    msg: &'static str,
}

const CMDS: &[Cmd] = &[
    Cmd {
        name: "--version",
        arg: "",
        msg: "",
    },
    Cmd {
        name: "help",
        arg: "<command>",
        msg: "",
    },
    Cmd {
        name: "import",
        arg: "[--rsa] pubkey keyring",
        msg: "Import public key into the keyring.\n",
    },
    Cmd {
        name: "sign",
        arg: "[-r] [--imahash | --imasig ] [--key key] [--pass [password] file",
        msg: "Sign file metadata.\n",
    },
    Cmd {
        name: "verify",
        arg: "file",
        msg: "Verify EVM signature (for debugging).\n",
    },
    Cmd {
        name: "ima_sign",
        arg: "[--sigfile] [--key key] [--pass [password] file",
        msg: "Make file content signature.\n",
    },
    Cmd {
        name: "ima_verify",
        arg: "file",
        msg: "Verify IMA signature (for debugging).\n",
    },
    Cmd {
        name: "ima_setxattr",
        arg: "[--sigfile file]",
        msg: "Set IMA signature from sigfile\n",
    },
    Cmd {
        name: "ima_hash",
        arg: "file",
        msg: "Make file content hash.\n",
    },
    Cmd {
        name: "ima_measurement",
        arg: "[--ignore-violations] [--verify-sig [--key key1, key2, ...]] [--pcrs [hash-algorithm,]file [--pcrs hash-algorithm,file] ...] [--verify-bank hash-algorithm] file",
        msg: "Verify measurement list (experimental).\n",
    },
    Cmd {
        name: "ima_boot_aggregate",
        arg: "[--pcrs hash-algorithm,file] [TPM 1.2 BIOS event log]",
        msg: "Calculate per TPM bank boot_aggregate digests\n",
    },
    Cmd {
        name: "ima_fix",
        arg: "[-t fdsxm] path",
        msg: "Recursively fix IMA/EVM xattrs in fix mode.\n",
    },
    Cmd {
        name: "ima_clear",
        arg: "[-t fdsxm] path",
        msg: "Recursively remove IMA/EVM xattrs.\n",
    },
    Cmd {
        name: "sign_hash",
        arg: "[--veritysig] [--key key] [--pass [password]",
        msg: "Sign hashes from either shaXsum or \"fsverity digest\" output.\n",
    },
    Cmd {
        name: "hmac",
        arg: "[--imahash | --imasig ] file",
        msg: "Sign file metadata with HMAC using symmetric key (for testing purpose).\n",
    },
];

fn usage() {
    println!("Usage: evmctl [-v] <command> [OPTIONS]");
    println!("commands:");
    for c in CMDS {
        println!(" {} {}", c.name, c.arg);
    }
    print!(
        "
  -a, --hashalgo     sha1, sha224, sha256, sha384, sha512, streebog256, streebog512 (default: sha256)
  -s, --imasig       make IMA signature
      --veritysig    sign an fs-verity file digest hash
  -d, --imahash      make IMA hash
  -f, --sigfile      store IMA signature in .sig file instead of xattr
      --xattr-user   store xattrs in user namespace (for testing purposes)
  -k, --key          path to signing key (default: /etc/keys/{{privkey,pubkey}}_evm.pem)
      --hmackey      path to symmetric key (default: /etc/keys/evm-key-plain)
      --keyid n      overwrite signature keyid with a 32-bit value in hex (for signing)
      --keyid-from-cert file
                     read keyid value from SKID of a x509 cert file
  -o, --portable     generate portable EVM signatures
  -p, --pass         password for encrypted signing key
  -r, --recursive    recurse into directories (sign)
  -t, --type         file types to fix 'fxm' (f: file)
                     x - skip fixing if both ima and evm xattrs exist (use with caution)
                     m - stay on the same filesystem (like 'find -xdev')
  -n                 print result to stdout instead of setting xattr
  -u, --uuid         use custom FS UUID for EVM (unspecified: from FS, empty: do not use)
      --smack        use extra SMACK xattrs for EVM
      --m32          force EVM hmac/signature for 32 bit target system
      --m64          force EVM hmac/signature for 64 bit target system
      --ino          use custom inode for EVM
      --uid          use custom UID for EVM
      --gid          use custom GID for EVM
      --mode         use custom Mode for EVM
      --generation   use custom Generation for EVM(unspecified: from FS, empty: use 0)
      --ima          use custom IMA signature for EVM
      --selinux      use custom Selinux label for EVM
      --caps         use custom Capabilities for EVM(unspecified: from FS, empty: do not use)
      --verify-sig   verify measurement list signatures
      --ignore-violations ignore ToMToU measurement violations
  -v                 increase verbosity level
  -h, --help         display this help and exit

Environment variables:

EVMCTL_KEY_PASSWORD  : Private key password to use; do not use --pass option

"
    );
}

/// Run as `evmctl` with `args` (without `argv[0]`).
pub fn main(args: Vec<String>) -> ExitCode {
    let (opts, operands) = match parse_args(&args) {
        Ok(x) => x,
        Err(ParseExit(code)) => return code,
    };
    let Some((command, rest)) = operands.split_first() else {
        usage();
        return ExitCode::SUCCESS;
    };
    let result = match command.to_ascii_lowercase().as_str() {
        "--version" => {
            println!("{VERSION}");
            Ok(0)
        }
        "help" => cmd_help(rest),
        "ima_hash" => cmd_ima_hash(&opts, rest),
        "ima_sign" => cmd_ima_sign(&opts, rest),
        "ima_verify" => cmd_ima_verify(&opts, rest),
        "ima_setxattr" => cmd_ima_setxattr(&opts, rest),
        "sign_hash" => cmd_sign_hash(&opts),
        "ima_fix" => cmd_ima_fix(&opts, rest),
        "ima_clear" => cmd_ima_clear(&opts, rest),
        "import" => cmd_import(&opts, rest),
        "hmac" => cmd_hmac(&opts, rest),
        "convert" => Err(anyhow!(
            "convert: not supported by vigil (it converts RSA keys for v1 signatures, \
             which vigil does not make)"
        )),
        "sign" => cmd_sign(&opts, rest),
        "verify" => cmd_verify(&opts, rest),
        "ima_measurement" => {
            let Some(file) = rest.first() else {
                usage();
                return ExitCode::from(125);
            };
            let bank = opts
                .verify_bank
                .as_ref()
                .map(|b| b.as_deref().unwrap_or(&opts.hash_algo));
            return crate::log::evmctl_ima_measurement(
                Path::new(file),
                &opts.pcrs,
                opts.ignore_violations,
                bank,
                opts.verbose as u32,
                opts.verify_sig,
                opts.keys.as_deref(),
            );
        }
        "ima_boot_aggregate" => {
            return crate::log::evmctl_ima_boot_aggregate(
                &opts.pcrs,
                rest.first().map(Path::new),
                opts.verbose as u32,
            );
        }
        _ => {
            println!("Invalid command: {command}");
            Err(anyhow!("unknown command {command:?}")).map_err(|e| e.context(Reported))
        }
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.downcast_ref::<Reported>().is_none() {
                eprintln!("{}", crate::error_text(&e));
            }
            ExitCode::from(125)
        }
    }
}

/// Marks an error whose message was already printed.
#[derive(Debug)]
struct Reported;
impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

fn cmd_help(rest: &[String]) -> anyhow::Result<u8> {
    match rest.first() {
        None => {
            println!("usage: help <command>");
            Ok(0)
        }
        Some(name) => match CMDS.iter().find(|c| c.name == name) {
            Some(c) => {
                println!("usage: {} {}", c.name, c.arg);
                print!("{}", c.msg);
                Ok(0)
            }
            None => {
                println!("invalid command: {name}");
                Err(anyhow!("invalid command").context(Reported))
            }
        },
    }
}

fn missing(cmd: &str) -> anyhow::Error {
    let c = CMDS.iter().find(|c| c.name == cmd);
    eprintln!("Parameters missing");
    if let Some(c) = c {
        println!("usage: {} {}", c.name, c.arg);
    }
    anyhow!("parameters missing").context(Reported)
}

/// The line evmctl ends a failed command with: `errno: No such file or directory (2)`.
pub(crate) fn errno_line(e: &std::io::Error) -> String {
    format!(
        "errno: {} ({})",
        crate::strerror(e),
        e.raw_os_error().unwrap_or(0)
    )
}

/// Print `what` and the errno line for `e`, as evmctl ends a command that failed on
/// it; the error returned is marked as reported.
fn reported_io(what: std::fmt::Arguments<'_>, e: std::io::Error) -> anyhow::Error {
    Failure::new(what.to_string(), Some(&e)).print(None)
}

/// Print `what`, as evmctl ends a command that failed without an errno; the error
/// returned is marked as reported.
fn reported(what: std::fmt::Arguments<'_>) -> anyhow::Error {
    Failure::new(what.to_string(), None).print(None)
}

/// evmctl's `file2bin`: say `Reading to PATH`, then read as many bytes as the
/// file's size says, and fail on a file that is empty, as evmctl does. Opened
/// without blocking, a FIFO or device gives nothing instead of hanging or flooding.
fn file2bin(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    eprintln!("Reading to {}", path.display());
    let failed = |e| Failure::new(format!("Failed to open: {}", path.display()), Some(&e));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(failed)?;
    let size = file.metadata().map_err(failed)?.len();
    if size == 0 {
        return Err(Failure::new(
            format!("Failed to fread 0 bytes: {}", path.display()),
            None,
        ));
    }
    let mut data = Vec::new();
    file.take(size).read_to_end(&mut data).map_err(|e| {
        Failure::new(
            format!("Failed to fread {size} bytes: {}", path.display()),
            Some(&e),
        )
    })?;
    Ok(data)
}

/// evmctl's `do_cmd`: the first operand only, walked recursively with `-r`.
fn operand_targets(opts: &EvmctlOpts, rest: &[String], cmd: &str) -> anyhow::Result<Vec<PathBuf>> {
    let path = PathBuf::from(rest.first().ok_or_else(|| missing(cmd))?);
    if opts.recursive {
        walk(opts, &path)
    } else {
        Ok(vec![path])
    }
}

/// [`operand_targets`], where an operand given without `-r` must exist (`Failed to
/// stat`), as for the commands that hash and sign.
fn targets(opts: &EvmctlOpts, rest: &[String], cmd: &str) -> anyhow::Result<Vec<PathBuf>> {
    let files = operand_targets(opts, rest, cmd)?;
    if !opts.recursive {
        if let Err(e) = std::fs::symlink_metadata(&files[0]) {
            return Err(reported_io(
                format_args!("Failed to stat: {}", files[0].display()),
                e,
            ));
        }
    }
    Ok(files)
}

/// What a `-r` walk hands to the command, from `-t` as evmctl 1.4 reads it: regular
/// files if `-t` holds `f` or is not given; with `m`, only directories on the
/// operand's file system are entered. (`x` is `ima_fix`'s; `d` and `s` do nothing.)
struct Walk {
    regular: bool,
    dev: Option<u64>,
}

/// The regular files below the operand directory that `-t` selects.
fn walk(opts: &EvmctlOpts, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let types = opts.search_type.as_deref();
    let mut how = Walk {
        regular: types.is_none_or(|t| t.contains('f')),
        dev: None,
    };
    if types.is_some_and(|t| t.contains('m')) {
        let st = std::fs::symlink_metadata(dir)
            .map_err(|e| reported_io(format_args!("Failed to stat: {}", dir.display()), e))?;
        how.dev = Some(st.dev());
    }
    let mut files = Vec::new();
    find(dir, &how, &mut files).context(Reported)?;
    Ok(files)
}

/// evmctl's `find()`: depth first in directory (readdir) order. The operand must be
/// a directory; a subdirectory that cannot be read is reported and skipped.
fn find(dir: &Path, how: &Walk, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if let Some(dev) = how.dev {
        match std::fs::symlink_metadata(dir) {
            Ok(st) if st.dev() != dev => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("Failed to stat: {}", dir.display());
                return Err(e);
            }
        }
    }
    let entries = std::fs::read_dir(dir).inspect_err(|e| {
        eprintln!("Failed to open directory {}", dir.display());
        eprintln!("{}", errno_line(e));
    })?;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let _ = find(&entry.path(), how, files);
        } else if kind.is_file() && how.regular {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// How evmctl names a file in its messages: as given, or, inside a `-r` walk, which
/// works in each directory, by its bare name.
fn shown<'a>(opts: &EvmctlOpts, p: &'a Path) -> &'a Path {
    match p.file_name() {
        Some(name) if opts.recursive => Path::new(name),
        _ => p,
    }
}

/// What one file printed: evmctl's diagnostics (stderr) and values (stdout). A
/// value is printed even when storing it then fails, as evmctl prints first.
#[derive(Default)]
struct Report {
    err: String,
    out: String,
}

/// Run `f` over the targets, print their reports in order and then any failure.
/// With `-r` a failed file does not stop the walk nor change the exit status, as
/// evmctl's `find()` ignores its callback's result. Files are done in parallel,
/// except for `-r -f`, where `F.sig` may itself be a target that another target
/// rewrites: there evmctl's one-at-a-time order decides what is signed.
fn for_each_target(
    opts: &EvmctlOpts,
    files: &[PathBuf],
    f: impl Fn(&Path, &mut Report) -> anyhow::Result<()> + Sync + Send,
) -> anyhow::Result<u8> {
    let one = |p: &Path| {
        let mut report = Report::default();
        let r = f(p, &mut report);
        (report, r)
    };
    let results: Vec<_> = if opts.recursive && opts.sigfile {
        files.iter().map(|p| one(p)).collect()
    } else {
        ima::par_map(files, one)
    };
    let mut out = std::io::stdout().lock();
    for (report, r) in results {
        eprint!("{}", report.err);
        out.write_all(report.out.as_bytes())?;
        match r {
            Ok(()) => {}
            Err(e) if opts.recursive => {
                out.flush()?;
                if e.downcast_ref::<Reported>().is_none() {
                    eprintln!("{}", crate::error_text(&e));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(0)
}

/// Store an IMA or EVM value in its xattr unless `-n`.
fn store(opts: &EvmctlOpts, p: &Path, name: &str, value: &[u8], what: &str) -> anyhow::Result<()> {
    if !opts.no_xattr {
        ima::sys::set_xattr(p, name, value)
            .with_context(|| format!("Setting {what} xattr failed: {}", p.display()))?;
    }
    Ok(())
}

/// evmctl's `hash_ima`.
fn ima_hash_one(opts: &EvmctlOpts, algo: HashAlgo, p: &Path, r: &mut Report) -> anyhow::Result<()> {
    let value = ImaXattr::from_digest(algo, ima::file_digest(p, algo)?)?.encode();
    r.err.push_str(&format!("hash({}): ", opts.hash_algo));
    r.out.push_str(&format!("{}\n", hex::encode(&value)));
    store(opts, p, opts.names().ima, &value, "IMA hash")
}

fn cmd_ima_hash(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let algo = opts.algo()?;
    let files = targets(opts, rest, "ima_hash")?;
    for_each_target(opts, &files, |p, r| ima_hash_one(opts, algo, p, r))
}

/// evmctl's `sign_ima`: sign one file's content and store the value.
fn ima_sign_one(
    opts: &EvmctlOpts,
    key: &Result<PrivateKey, Failure>,
    algo: HashAlgo,
    p: &Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    let digest = ima::file_digest(p, algo)?;
    r.err.push_str(&format!(
        "hash({}): {}\n",
        opts.hash_algo,
        hex::encode(&digest)
    ));
    let key = key.as_ref().map_err(|f| f.report(opts, &mut r.err))?;
    let value = if opts.v3 {
        vigil_ima::sign_v3(key, XattrType::DigSig, algo, &digest)?
    } else {
        vigil_ima::sign_digest(key, algo, &digest)?
    }
    .encode();
    r.err
        .push_str(&format!("evm/ima signature: {} bytes\n", value.len() - 1));
    r.out.push_str(&format!("{}\n", hex::encode(&value)));
    if opts.sigfile {
        let sig = ima::sigfile_path(p);
        r.err
            .push_str(&format!("Writing to {}\n", shown(opts, &sig).display()));
        crate::write_atomic(&sig, &value)?;
    }
    store(opts, p, opts.names().ima, &value, "IMA sig")
}

fn cmd_ima_sign(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let algo = opts.algo()?;
    let files = targets(opts, rest, "ima_sign")?;
    let key = opts.signing_key();
    for_each_target(opts, &files, |p, r| ima_sign_one(opts, &key, algo, p, r))
}

fn cmd_ima_verify(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let ring = opts.keyring()?;
    if rest.is_empty() {
        return Err(missing("ima_verify"));
    }
    let names = opts.names();
    let mut report = FailureReport::new(opts, &ring);
    let mut fails = 0;
    // evmctl reports the errno of the last failed read once, at the end.
    let mut read_error = None;
    for f in rest {
        let p = Path::new(f);
        let value = if opts.sigfile {
            file2bin(&ima::sigfile_path(p)).map_err(|failure| {
                eprintln!("{}\nFailed reading: {f}", failure.what);
                failure.errno
            })
        } else {
            ima::sys::get_xattr(p, names.ima).map_err(|e| {
                eprintln!("getxattr failed: {f}");
                Some(errno_line(&e))
            })
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                fails += 1;
                read_error = e.or(read_error);
                continue;
            }
        };
        let signed = [XattrType::DigSig as u8, XattrType::ImaVeritySig as u8];
        if !value.first().is_some_and(|t| signed.contains(t)) {
            fails += 1;
            eprintln!("{f}: xattr ima has no signature");
            continue;
        }
        match ima::verify_ima_value(p, &value, &ring, &ima::VerityParams::default()) {
            Ok(_) => eprintln!("{f}: verification is OK"),
            Err(e) => {
                fails += 1;
                report.failed(f, &e);
            }
        }
    }
    if let Some(errno) = read_error {
        eprintln!("{errno}");
    }
    Ok(u8::from(fails > 0))
}

/// Verification failures worded as evmctl words them: an unknown key id is
/// numbered after the loaded keys, once per id (the file is named only with
/// `-v`); a signature that does not verify is `verification failed: 0 (why)`.
struct FailureReport {
    verbose: bool,
    loaded: usize,
    unknown: Vec<KeyId>,
}

impl FailureReport {
    fn new(opts: &EvmctlOpts, ring: &KeyRing) -> FailureReport {
        FailureReport {
            verbose: opts.verbose > 0,
            loaded: ring.keys().len(),
            unknown: Vec::new(),
        }
    }

    fn failed(&mut self, file: &str, e: &anyhow::Error) {
        match e.downcast_ref::<vigil_ima::Error>() {
            Some(vigil_ima::Error::UnknownKeyId(k)) => {
                if !self.unknown.contains(k) {
                    self.unknown.push(*k);
                    let n = self.loaded + self.unknown.len();
                    eprintln!("key {n}: {:x} (unknown keyid)", k.0);
                }
                if self.verbose {
                    eprintln!("{file}: verification failed: unknown keyid {:x}", k.0);
                }
            }
            Some(sig @ vigil_ima::Error::BadSignature { .. }) => {
                eprintln!("{file}: verification failed: 0 ({sig})")
            }
            _ => eprintln!("{file}: verification failed: {e:#}"),
        }
    }
}

fn cmd_ima_setxattr(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let (sig, file) = if opts.sigfile {
        (rest.first().map(PathBuf::from), rest.get(1))
    } else {
        (None, rest.first())
    };
    let file = Path::new(file.ok_or_else(|| missing("ima_setxattr"))?);
    let sig = sig.unwrap_or_else(|| ima::sigfile_path(file));
    let value = file2bin(&sig).map_err(|f| f.print(None))?;
    ima::sys::set_xattr(file, opts.names().ima, &value)
        .with_context(|| format!("Setting IMA sig xattr failed: {}", file.display()))?;
    Ok(0)
}

/// A failure evmctl reports with `log_errno` (`WHAT: errno: REASON (N)`), and
/// outside a walk once more when the command ends.
fn errno_failure(
    opts: &EvmctlOpts,
    r: &mut Report,
    what: String,
    e: std::io::Error,
) -> anyhow::Error {
    r.err.push_str(&format!("{what}: {}\n", errno_line(&e)));
    if !opts.recursive {
        r.err.push_str(&format!("{}\n", errno_line(&e)));
    }
    anyhow::Error::from(e).context(Reported)
}

/// `ima_fix`: open each file for reading, so that IMA appraisal in fix mode (the
/// kernel's `ima_appraise=fix`, or a `vigil mount --appraise fix`) measures it and
/// writes its `security.ima`. With `-r -t x`, files that have both `security.ima`
/// and `security.evm` are skipped.
fn cmd_ima_fix(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let files = operand_targets(opts, rest, "ima_fix")?;
    let skip_labelled =
        opts.recursive && opts.search_type.as_deref().is_some_and(|t| t.contains('x'));
    let names = opts.names();
    for_each_target(opts, &files, |p, r| {
        let shown = shown(opts, p);
        r.err.push_str(&format!("{}\n", shown.display()));
        if skip_labelled {
            let present = ima::sys::list_xattrs(p).map_err(|e| {
                let what = format!("Failed to read xattrs (llistxattr): {}", shown.display());
                errno_failure(opts, r, what, e)
            })?;
            let has = |name: &str| present.iter().any(|x| x == name);
            if has(names.ima) && has(names.evm) {
                return Ok(());
            }
        }
        // Non-blocking, so that a FIFO named on the command line cannot hang the run.
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .map(drop)
            .map_err(|e| {
                let what = format!("Failed to open file: {}", shown.display());
                errno_failure(opts, r, what, e)
            })
    })
}

/// `ima_clear`: remove `security.ima` and `security.evm`; a name without them, or
/// one that does not exist, is no error, as in evmctl.
fn cmd_ima_clear(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let files = operand_targets(opts, rest, "ima_clear")?;
    let names = opts.names();
    for_each_target(opts, &files, |p, r| {
        r.err.push_str(&format!("{}\n", shown(opts, p).display()));
        let _ = ima::sys::remove_xattr(p, names.ima);
        let _ = ima::sys::remove_xattr(p, names.evm);
        Ok(())
    })
}

/// Where `hmac` reads the EVM key without `--hmackey`.
const DEFAULT_HMAC_KEY: &str = "/etc/keys/evm-key-plain";

/// `hmac`, evmctl's testing command: compute FILE's EVM HMAC with the raw key in
/// `--hmackey` and store it as `security.evm` type 0x02 (unless `-n`); `-s`/`-d`
/// first sign or hash FILE's content into `security.ima`, as `sign` does. The HMAC
/// uses the `-a` algorithm (default sha256); the kernel checks HMAC-SHA1 (`-a sha1`).
/// Only FILE's own metadata goes in (no `--uid`-style overrides, no UUID), and only
/// regular files have a generation.
fn cmd_hmac(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    // One file: evmctl's hmac ignores -r.
    let opts = &EvmctlOpts {
        recursive: false,
        ..opts.clone()
    };
    let algo = opts.algo()?;
    if opts.imasig || opts.imahash {
        let files = targets(opts, rest, "hmac")?;
        let key = opts.imasig.then(|| opts.signing_key());
        for_each_target(opts, &files, |p, r| {
            if let Some(key) = &key {
                ima_sign_one(opts, key, algo, p, r)?;
            }
            if opts.imahash {
                ima_hash_one(opts, algo, p, r)?;
            }
            Ok(())
        })?;
    }
    let file = Path::new(rest.first().ok_or_else(|| missing("hmac"))?);
    let keyfile = opts
        .hmackey
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_HMAC_KEY));
    let key = file2bin(keyfile)
        .map_err(|f| f.print(Some(format!("Failed to read a key: {}", keyfile.display()))))?;
    if key.len() > evm::EVM_KEY_LEN {
        return Err(reported(format_args!("key is too long: {}", key.len())));
    }
    let st = std::fs::symlink_metadata(file)
        .map_err(|e| reported_io(format_args!("Failed to stat: {}", file.display()), e))?;
    let mut generation = 0;
    if st.file_type().is_file() {
        let f = std::fs::File::open(file)
            .map_err(|e| reported_io(format_args!("Failed to open {}", file.display()), e))?;
        generation = ima::sys::file_generation(&f)
            .map_err(|e| reported_io(format_args!("ioctl() failed"), e))?;
    }
    eprintln!("generation: {generation}");
    let present = match ima::sys::list_xattrs(file) {
        Ok(names) if !names.is_empty() => names,
        Ok(_) => {
            return Err(reported(format_args!(
                "llistxattr() failed: {}",
                file.display()
            )))
        }
        Err(e) => {
            return Err(reported_io(
                format_args!("llistxattr() failed: {}", file.display()),
                e,
            ))
        }
    };
    let mut log = String::new();
    let mut values = Vec::new();
    for name in opts.evm.xattr_list() {
        if let Some(v) = ima::evm_xattr(file, name, &present, &mut log) {
            log.push_str(&format!("name: {name}, size: {}\n", v.len()));
            values.push(v);
        }
    }
    eprint!("{log}");
    let meta = EvmMeta {
        ino: st.ino(),
        generation,
        uid: st.uid(),
        gid: st.gid(),
        mode: st.mode(),
    };
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let mac = evm::evm_hmac(algo, &key, &refs, &meta, opts.evm.layout, None)?;
    eprintln!("hmac: {}", hex::encode(&mac));
    if !opts.no_xattr {
        let value = [&[XattrType::EvmHmac as u8][..], &mac].concat();
        ima::sys::set_xattr(file, opts.names().evm, &value)
            .map_err(|e| reported_io(format_args!("setxattr failed: {}", file.display()), e))?;
    }
    Ok(0)
}

/// `KEY_SPEC_USER_KEYRING`, where `import` adds keys unless told otherwise.
const USER_KEYRING: i32 = -4;

/// `add_key(2)`'s special keyring ids, by evmctl's (and keyctl's) names.
const KEYRINGS: &[(&str, i32)] = &[
    ("@t", -1),
    ("@p", -2),
    ("@s", -3),
    ("@u", USER_KEYRING),
    ("@us", -5),
    ("@g", -6),
];

/// A keyring operand: a special name or a key serial (decimal, or hex with `0x`).
fn keyring_id(ring: &str) -> anyhow::Result<i32> {
    if let Some(&(_, id)) = KEYRINGS.iter().find(|(name, _)| *name == ring) {
        return Ok(id);
    }
    let serial = match ring.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok().map(|v| v as i32),
        None => ring.parse::<i32>().ok(),
    };
    serial.ok_or_else(|| {
        anyhow!("keyring {ring:?}: not @t, @p, @s, @u, @us, @g or a key serial number")
    })
}

/// `import [CERT [KEYRING]]`: add an X.509 certificate (DER, or PEM, which vigil
/// converts) to a kernel keyring as an `asymmetric` key — for instance to `_ima`, whose
/// keys the kernel appraises signatures with — and print the new key's serial.
fn cmd_import(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    if opts.rsa {
        bail!("import --rsa: v1 (RSA-only, `user` type) keys are not supported; import an X.509 certificate");
    }
    let (file, ring) = match rest.split_first() {
        None => (ima::DEFAULT_CERT, None),
        Some((file, more)) => (file.as_str(), more.first()),
    };
    let ring = ring.map_or(Ok(USER_KEYRING), |r| keyring_id(r))?;
    let data = match read_at_most(Path::new(file), MAX_KEY_FILE) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("Failed to open keyfile: {file}\n{}", errno_line(&e));
            return Ok(1);
        }
    };
    let (der, key) = match vigil_ima::keys::cert_der(&data, file) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    eprintln!("Reading to {file}");
    // `%x`, as evmctl prints it.
    eprintln!(
        "Importing public key {:x} from file {file} into keyring {ring}",
        key.keyid().0
    );
    let serial = ima::sys::add_key(c"asymmetric", &der, ring)
        .map_err(|e| reported_io(format_args!("add_key failed"), e))?;
    eprintln!("keyid: {serial}");
    println!("{serial}");
    Ok(0)
}

fn cmd_sign_hash(opts: &EvmctlOpts) -> anyhow::Result<u8> {
    let algo = opts.algo()?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    // Loaded at the first line, as evmctl does: no input is "Parameters missing".
    let mut key = None;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading standard input")?;
        // evmctl stops at the first line it cannot sign.
        let parsed = ima::parse_hash_line(&line, algo, opts.veritysig, i + 1)?;
        // What is signed: the digest itself, or for fs-verity its `ima_file_id` hash.
        let (algo_name, signed) = if opts.veritysig {
            let id = vigil_ima::ImaFileId {
                hash_type: XattrType::ImaVeritySig,
                hash_algo: parsed.algo,
                hash: &parsed.digest,
            };
            (parsed.algo.to_string(), id.digest()?)
        } else {
            (opts.hash_algo.clone(), parsed.digest.clone())
        };
        eprintln!("hash({algo_name}): {}", hex::encode(signed));
        let key = match &mut key {
            Some(k) => k,
            None => key.insert(opts.signing_key().map_err(|f| f.print(None))?),
        };
        let sig = ima::sign_hash_line(key, &parsed, opts.veritysig)?.encode();
        eprintln!("evm/ima signature: {} bytes", sig.len() - 1);
        writeln!(out, "{} {}", parsed.line, hex::encode(sig))?;
    }
    out.flush()?;
    if key.is_none() {
        return Err(missing("sign_hash"));
    }
    Ok(0)
}

fn cmd_sign(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    if opts.immutable {
        bail!("immutable EVM signatures (-i) are not supported");
    }
    let algo = opts.algo()?;
    let files = targets(opts, rest, "sign")?;
    let key = opts.signing_key();
    let names = opts.names();
    for_each_target(opts, &files, |p, r| {
        if opts.imasig {
            ima_sign_one(opts, &key, algo, p, r)?;
        }
        if opts.imahash {
            ima_hash_one(opts, algo, p, r)?;
        }
        let digest = ima::evm_file_digest(p, names, &opts.evm, algo, &mut r.err)?;
        r.err.push_str(&format!(
            "hash({}): {}\n",
            opts.hash_algo,
            hex::encode(&digest)
        ));
        let key = key.as_ref().map_err(|f| f.report(opts, &mut r.err))?;
        let kind = if opts.evm.portable {
            XattrType::EvmPortableDigSig
        } else {
            XattrType::DigSig
        };
        let value = if opts.v3 {
            vigil_ima::sign_v3(key, kind, algo, &digest)?
        } else {
            vigil_ima::sig::sign_digest_as(key, kind, algo, &digest)?
        }
        .encode();
        r.err
            .push_str(&format!("evm/ima signature: {} bytes\n", value.len() - 1));
        r.out.push_str(&format!("{}\n", hex::encode(&value)));
        store(opts, p, names.evm, &value, "EVM")
    })
}

fn cmd_verify(opts: &EvmctlOpts, rest: &[String]) -> anyhow::Result<u8> {
    let file = Path::new(rest.first().ok_or_else(|| missing("verify"))?);
    let ring = opts.keyring()?;
    let names = opts.names();
    let value = ima::sys::get_xattr(file, names.evm)
        .map_err(|e| reported_io(format_args!("getxattr failed: {}", file.display()), e))?;
    let sig = match value.first() {
        // A malformed signature is a failed verification, as in evmctl.
        Some(3) | Some(5) => match Signature::decode(&value) {
            Ok(sig) => sig,
            Err(e) => {
                eprintln!(
                    "{}: verification failed: invalid {}: {e}",
                    file.display(),
                    names.evm
                );
                return Ok(1);
            }
        },
        _ => bail!("{} has no signature", names.evm),
    };
    let mut evm = opts.evm.clone();
    if sig.xattr_type == XattrType::EvmPortableDigSig {
        if sig.version != 2 && sig.version != 3 {
            bail!("Portable sig: invalid type");
        }
        evm.portable = true;
    }
    let mut log = String::new();
    let digest = ima::evm_file_digest(file, names, &evm, sig.hash_algo, &mut log);
    eprint!("{log}");
    let digest = digest?;
    match ring.verify_signature(&sig, &digest) {
        Ok(_) => {
            eprintln!("{}: verification is OK", file.display());
            Ok(0)
        }
        Err(e) => {
            FailureReport::new(opts, &ring).failed(&file.display().to_string(), &e.into());
            Ok(1)
        }
    }
}
