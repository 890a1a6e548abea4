//! Shared helpers for the IMA/evmctl integration tests: a scratch directory on a
//! file system with user xattrs, keys and certificates made with `openssl` at test
//! time, and runners for vigil, vigil-as-evmctl and the installed evmctl.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const REF_EVMCTL: &str = "/usr/bin/evmctl";

/// A directory under which user xattrs work (tmpfs/overlay may refuse them).
fn xattr_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let candidates = [
            std::env::temp_dir(),
            PathBuf::from("/var/tmp"),
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        ];
        for c in candidates {
            let Ok(d) = tempfile::tempdir_in(&c) else {
                continue;
            };
            let f = d.path().join("probe");
            std::fs::write(&f, b"x").unwrap();
            let ok = Command::new("setfattr")
                .args(["-n", "user.probe", "-v", "1"])
                .arg(&f)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return c;
            }
        }
        panic!("no directory with user xattr support (need setfattr from the attr package)");
    })
}

/// A fresh scratch directory with user xattr support.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vigil-ima-test")
        .tempdir_in(xattr_base())
        .unwrap()
}

pub fn vigil_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vigil"))
}

/// A directory holding an `evmctl` symlink to the vigil binary.
pub fn evmctl_link() -> &'static Path {
    static LINK: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &LINK
        .get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let link = d.path().join("evmctl");
            std::os::unix::fs::symlink(vigil_bin(), &link).unwrap();
            (d, link)
        })
        .1
}

/// `prog ARGS…` in `cwd`, with `stdin` if given, capturing stdout and stderr.
pub fn run(prog: &Path, args: &[&str], cwd: &Path, stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("EVMCTL_KEY_PASSWORD")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", prog.display()));
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `vigil ARGS…`
pub fn vigil(args: &[&str], cwd: &Path) -> Output {
    run(vigil_bin(), args, cwd, None)
}

/// vigil started as `evmctl`.
pub fn vevmctl(args: &[&str], cwd: &Path) -> Output {
    run(evmctl_link(), args, cwd, None)
}

/// vigil as `evmctl`, with standard input.
pub fn vevmctl_stdin(args: &[&str], cwd: &Path, stdin: &[u8]) -> Output {
    run(evmctl_link(), args, cwd, Some(stdin))
}

/// The installed reference evmctl.
pub fn evmctl(args: &[&str], cwd: &Path) -> Output {
    assert!(
        Path::new(REF_EVMCTL).exists(),
        "{REF_EVMCTL} is missing: run scripts/install-deps.sh (ima-evm-utils)"
    );
    run(Path::new(REF_EVMCTL), args, cwd, None)
}

pub fn evmctl_stdin(args: &[&str], cwd: &Path, stdin: &[u8]) -> Output {
    run(Path::new(REF_EVMCTL), args, cwd, Some(stdin))
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn all_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Assert success, showing the output otherwise.
#[track_caller]
pub fn ok(o: &Output, what: &str) {
    assert_eq!(code(o), 0, "{what} failed:\n{}", all_text(o));
}

pub fn get_xattr(path: &Path, name: &str) -> Vec<u8> {
    let o = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "getfattr {name} {}", path.display());
    o.stdout
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let o = Command::new("setfattr")
        .args(["-n", name, "-v", &format!("0x{}", hex::encode(value))])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "setfattr {name} {}", path.display());
}

fn openssl(args: &[&str], cwd: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const CERT_CNF: &str = "[ req ]
distinguished_name = dn
prompt = no
string_mask = utf8only
x509_extensions = v3
[ dn ]
O = vigil test
CN = vigil test key
[ v3 ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
";

/// Key kinds generated for the tests: name and `openssl genpkey` options.
pub const KEYS: &[(&str, &[&str])] = &[
    (
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    ),
    (
        "rsa2048",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    ),
    (
        "p192",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime192v1",
        ],
    ),
    (
        "p224",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp224r1",
        ],
    ),
    (
        "p256",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ],
    ),
    (
        "p384",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp384r1",
        ],
    ),
    (
        "p521",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp521r1",
        ],
    ),
];

/// The keys: for each name, `NAME.pem` (PKCS#8) and `NAME.der` (X.509, DER), made
/// once per test binary.
pub fn keys() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("cert.cnf"), CERT_CNF).unwrap();
        for (name, gen) in KEYS {
            let pem = format!("{name}.pem");
            let mut args = vec!["genpkey"];
            args.extend_from_slice(gen);
            args.extend_from_slice(&["-out", &pem]);
            openssl(&args, p);
            make_cert(p, &pem, &format!("{name}.der"), None);
        }
        d
    })
    .path()
}

/// Make a DER certificate for `key` in `dir`, optionally with a fixed SKID (hex).
pub fn make_cert(dir: &Path, key: &str, out: &str, skid: Option<&str>) {
    let cnf = match skid {
        None => CERT_CNF.to_string(),
        Some(s) => CERT_CNF.replace(
            "subjectKeyIdentifier=hash",
            &format!("subjectKeyIdentifier={s}"),
        ),
    };
    let cnf_path = dir.join(format!("{out}.cnf"));
    std::fs::write(&cnf_path, cnf).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-utf8",
            "-sha256",
            "-days",
            "3650",
            "-batch",
            "-config",
            cnf_path.to_str().unwrap(),
            "-set_serial",
            "1",
            "-outform",
            "DER",
            "-out",
            out,
        ],
        dir,
    );
}

pub fn key(name: &str) -> String {
    keys().join(format!("{name}.pem")).display().to_string()
}

pub fn cert(name: &str) -> String {
    keys().join(format!("{name}.der")).display().to_string()
}

/// Run openssl with args in `dir` (for tests that make extra key formats).
pub fn openssl_in(dir: &Path, args: &[&str]) {
    openssl(args, dir);
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
