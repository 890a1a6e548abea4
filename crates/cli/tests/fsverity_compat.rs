//! Differential tests: vigil run as `fsverity` against the installed fsverity-utils
//! (`/usr/bin/fsverity`) on generated files — stdout, stderr, exit status, and the
//! files written (`--out-merkle-tree`, `--out-descriptor`, signatures), byte for byte.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const REFERENCE: &str = "/usr/bin/fsverity";

struct Env {
    dir: tempfile::TempDir,
    ours: PathBuf,
}

fn env() -> Env {
    assert!(
        Path::new(REFERENCE).exists(),
        "{REFERENCE} missing: run scripts/install-deps.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("bin/fsverity");
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vigil"), &ours).unwrap();
    Env { dir, ours }
}

/// `hay` with every `from` replaced by `to`, on bytes (names need not be UTF-8).
fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        if !from.is_empty() && hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Bytes shown with non-printable ones escaped, for assertion messages.
fn esc(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

impl Env {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// The path of `name` in the test directory, as bytes that need not be UTF-8.
    fn path_os(&self, name: &[u8]) -> OsString {
        self.dir
            .path()
            .join(OsStr::from_bytes(name))
            .into_os_string()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.path(name)
    }

    /// Run `prog` with `args` after the shell commands `setup` (e.g. `umask 000;`),
    /// killed after a minute so that a tool that never ends fails the test.
    fn run(&self, setup: &str, prog: &Path, args: &[OsString]) -> (Vec<u8>, Vec<u8>, i32) {
        let out = Command::new("timeout")
            .args(["60", "sh", "-c"])
            .arg(format!("{setup} exec \"$0\" \"$@\""))
            .arg(prog)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
    }

    /// Run both tools with `args`, in which `{tree}`, `{desc}` and `{sig}` stand for output
    /// file names that differ between the two runs; compare everything and the output
    /// files (bytes and mode).
    fn same<A: AsRef<OsStr>>(&self, args: &[A]) {
        self.same_after("", args)
    }

    /// [`same`](Env::same), both tools started after the shell commands `setup`.
    fn same_after<A: AsRef<OsStr>>(&self, setup: &str, args: &[A]) {
        let outs = ["tree", "desc", "sig"];
        let subst = |who: &str| -> Vec<OsString> {
            args.iter()
                .map(|a| {
                    let mut a = a.as_ref().as_bytes().to_vec();
                    for o in outs {
                        let to = self.path(&format!("{who}.{o}"));
                        a = replace(&a, format!("{{{o}}}").as_bytes(), to.as_bytes());
                    }
                    OsString::from_vec(a)
                })
                .collect()
        };
        let (theirs, ours) = (subst("ref"), subst("vigil"));
        let r = self.run(setup, Path::new(REFERENCE), &theirs);
        let v = self.run(setup, &self.ours, &ours);
        // Output file names differ between the runs; compare with them masked.
        let mask = |b: &[u8], who: &str| {
            let mut s = replace(b, self.path("").as_bytes(), b"");
            for o in outs {
                s = replace(
                    &s,
                    format!("{who}.{o}").as_bytes(),
                    format!("OUT.{o}").as_bytes(),
                );
            }
            s
        };
        let shown: Vec<String> = args.iter().map(|a| esc(a.as_ref().as_bytes())).collect();
        let (vo, ro) = (mask(&v.0, "vigil"), mask(&r.0, "ref"));
        assert!(
            vo == ro,
            "stdout of {shown:?}:\n{}\n---- fsverity:\n{}",
            esc(&vo),
            esc(&ro)
        );
        let (ve, re) = (
            drop_openssl_queue(&mask(&v.1, "vigil")),
            drop_openssl_queue(&mask(&r.1, "ref")),
        );
        assert!(
            ve == re,
            "stderr of {shown:?}:\n{}\n---- fsverity:\n{}",
            esc(&ve),
            esc(&re)
        );
        assert_eq!(v.2, r.2, "exit status of {shown:?}");
        for o in outs {
            let (a, b) = (
                self.path(&format!("ref.{o}")),
                self.path(&format!("vigil.{o}")),
            );
            let (da, db) = (std::fs::read(&a).ok(), std::fs::read(&b).ok());
            assert_eq!(
                da.is_some(),
                db.is_some(),
                "{o} written by one tool only, {shown:?}"
            );
            assert!(da == db, "{o} file differs for {shown:?}");
            let mode = |p: &str| {
                std::fs::metadata(p)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .ok()
            };
            assert_eq!(mode(&b), mode(&a), "mode of {o} for {shown:?}");
            let _ = std::fs::remove_file(a);
            let _ = std::fs::remove_file(b);
        }
    }
}

/// OpenSSL's error-queue dump (thread ids, source lines) is not reproduced; drop it.
fn drop_openssl_queue(s: &[u8]) -> Vec<u8> {
    s.split(|&b| b == b'\n')
        .filter(|l| {
            !l.is_empty()
                && *l != b"ERROR: OpenSSL library errors:"
                && !l.windows(7).any(|w| w == b":error:")
        })
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + seed) % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

#[test]
fn digest_trees_and_descriptors_match() {
    let e = env();
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        128 * 4096,
        128 * 4096 + 1,
        300_000,
        2 << 20,
    ];
    let files: Vec<String> = sizes
        .iter()
        .map(|&n| e.write(&format!("f{n}"), &pattern(n, n)))
        .collect();
    let param_sets: &[&[&str]] = &[
        &[],
        &["--hash-alg=sha512"],
        &["--block-size=1024"],
        &["--block-size=65536", "--salt=00112233"],
        &[
            "--hash-alg=2",
            "--block-size=1024",
            "--salt=deadbeefDEADBEEF",
        ],
        &["--block-size=512", "--salt="],
        &["--block-size=64"],
    ];
    for f in &files {
        for p in param_sets {
            let mut args = vec![
                "digest",
                f.as_str(),
                "--out-merkle-tree={tree}",
                "--out-descriptor={desc}",
            ];
            args.extend_from_slice(p);
            e.same(&args);
        }
    }
    let all: Vec<&str> = std::iter::once("digest")
        .chain(files.iter().map(|s| s.as_str()))
        .collect();
    e.same(&all);
    // Several files into one tree/descriptor file: trees overwrite from offset 0,
    // descriptors are appended.
    let mut several = all.clone();
    several.extend(["--out-merkle-tree={tree}", "--out-descriptor={desc}"]);
    e.same(&several);
    for flags in [
        &["--compact"][..],
        &["--for-builtin-sig"],
        &["--compact", "--for-builtin-sig"],
        &["--hash=sha512", "--for-builtin-sig"],
    ] {
        let mut args = all.clone();
        args.extend_from_slice(flags);
        e.same(&args);
    }
}

#[test]
fn usage_errors_and_messages_match() {
    let e = env();
    let f = e.write("hw", b"hello world");
    let f = f.as_str();
    let cases: &[&[&str]] = &[
        &[],
        &["--help"],
        &["--version"],
        &["digest", "--help"],
        &["sign", "--help"],
        &["bogus"],
        &["bogus", "--help"],
        &["digest"],
        &["digest", f, "--bogus"],
        &["digest", f, "-x"],
        &["digest", f, "--out=x"],
        &["digest", f, "--compact=yes"],
        &["digest", f, "--hash-alg"],
        &["digest", f, "--hash-alg=sha1"],
        &["digest", f, "--hash-alg=3"],
        &["digest", f, "--hash-alg=sha256", "--hash-alg=sha512"],
        &["digest", f, "--block-size=0"],
        &["digest", f, "--block-size=3000"],
        &["digest", f, "--block-size=32"],
        &["digest", f, "--block-size=2147483648"],
        &["digest", f, "--salt=abc"],
        &["digest", f, "--salt=zz"],
        &[
            "digest",
            f,
            "--salt=000000000000000000000000000000000000000000000000000000000000000000",
        ],
        &["digest", "/nonexistent"],
        &["digest", f, "/nonexistent"],
        &["digest", "/"],
        &["digest", f, "--out-merkle-tree=/nonexistent/x"],
        &["measure"],
        &["measure", f],
        &["measure", "/nonexistent"],
        &["enable"],
        &["enable", f],
        &["enable", f, "--bogus"],
        &["enable", f, "--signature=/nonexistent"],
        &["dump_metadata"],
        &["dump_metadata", "bogus", f],
        &["dump_metadata", "merkle_tree", f],
        &["dump_metadata", "descriptor", f, "--offset=1"],
        &["dump_metadata", "signature", f, "--length=1"],
        &["dump_metadata", "signature", f, "--length=x", "--offset=1"],
        &["sign"],
        &["sign", f],
        &["sign", f, "{sig}"],
    ];
    for c in cases {
        e.same(c);
    }
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl").args(args).output().unwrap();
    assert!(
        st.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn sign_matches_byte_for_byte_with_rsa_keys() {
    let e = env();
    let (key, cert) = (e.path("k.pem"), e.path("c.pem"));
    openssl(&[
        "req",
        "-x509",
        "-nodes",
        "-days",
        "3",
        "-subj",
        "/CN=fsverity test",
        "-newkey",
        "rsa:3072",
        "-keyout",
        &key,
        "-out",
        &cert,
    ]);
    let other_key = e.path("other.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &other_key,
    ]);
    let combined = e.path("both.pem");
    let mut both = std::fs::read(&key).unwrap();
    both.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&combined, both).unwrap();
    let k = format!("--key={key}");
    let c = format!("--cert={cert}");
    let kc = format!("--key={combined}");
    for (name, n) in [("small", 1000usize), ("big", 700_000)] {
        let f = e.write(name, &pattern(n, 7));
        let f = f.as_str();
        e.same(&["sign", f, "{sig}", &k, &c]);
        e.same(&["sign", f, "{sig}", &kc]);
        e.same(&[
            "sign",
            f,
            "{sig}",
            &k,
            &c,
            "--hash-alg=sha512",
            "--block-size=1024",
            "--salt=abcd",
            "--out-merkle-tree={tree}",
            "--out-descriptor={desc}",
        ]);
        e.same(&["sign", f, "{sig}", &k]);
        e.same(&["sign", f, "{sig}", &c]);
        e.same(&["sign", f, "{sig}", &format!("--key={cert}"), &c]);
        e.same(&["sign", f, "/nonexistent/sig", &k, &c]);
        e.same(&[
            "sign",
            f,
            "{sig}",
            &format!("--key={cert}"),
            &format!("--cert={key}"),
        ]);
        e.same(&["sign", f, "{sig}", &k, &c, "--pkcs11-engine=x.so"]);
        e.same(&["sign", f, "{sig}", &c, "--pkcs11-engine=x.so"]);
        e.same(&["sign", f, "{sig}", &c, "--pkcs11-module=x.so"]);
        e.same(&["sign", f, "{sig}", &format!("--key={other_key}"), &c]);
    }
}

#[test]
fn vigil_digest_matches_fsverity_digest_and_reads_pipes() {
    let e = env();
    let f = e.write("data", &pattern(1 << 20, 3));
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let theirs = Command::new(REFERENCE)
        .args(["digest", &f, "--hash-alg=sha512", "--block-size=1024"])
        .output()
        .unwrap();
    let ours = Command::new(vigil)
        .args(["digest", &f, "--hash-alg", "sha512", "--block-size", "1024"])
        .output()
        .unwrap();
    assert!(ours.status.success());
    assert_eq!(ours.stdout, theirs.stdout);
    // A pipe is read to EOF (fsverity-utils would digest it as an empty file).
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{f}' | '{vigil}' digest --compact /dev/stdin"))
        .output()
        .unwrap();
    let want = Command::new(REFERENCE)
        .args(["digest", "--compact", &f])
        .output()
        .unwrap();
    assert_eq!(out.stdout, want.stdout);
}

/// A self-signed certificate and its key, made by `openssl req` with `newkey`
/// (e.g. `["-newkey", "rsa:2048"]`): (key file, certificate file).
fn keypair(e: &Env, name: &str, newkey: &[&str]) -> (String, String) {
    let (key, cert) = (
        e.path(&format!("{name}.key")),
        e.path(&format!("{name}.crt")),
    );
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "3",
        "-subj",
        "/CN=fsverity test",
        "-keyout",
        &key,
        "-out",
        &cert,
    ];
    args.extend_from_slice(newkey);
    openssl(&args);
    (key, cert)
}

#[test]
fn non_utf8_names_are_used_byte_for_byte() {
    let e = env();
    // vigil used to open "bad\u{fffd}" for "bad\xff".
    let bad = e.path_os(b"bad\xff");
    std::fs::write(&bad, b"AAAA").unwrap();
    std::fs::write(e.path_os(b"bad\xef\xbf\xbd"), b"BBBB").unwrap();
    e.same(&[OsStr::new("digest"), &bad]);
    std::fs::remove_file(e.path_os(b"bad\xef\xbf\xbd")).unwrap();
    e.same(&[OsStr::new("digest"), &bad, &e.path_os(b"missing\xfe")]);
    e.same(&[OsStr::new("measure"), &bad]);
    e.same(&[OsStr::new("enable"), &bad]);
    e.same(&[
        OsStr::new("dump_metadata"),
        OsStr::from_bytes(b"\xff"),
        &bad,
    ]);
    e.same(&[OsStr::from_bytes(b"\xff")]);
    for opt in [
        &b"--hash-alg=\xff"[..],
        b"--block-size=\xff",
        b"--salt=\xff",
        b"--\xff=1",
    ] {
        e.same(&[OsStr::new("digest"), &bad, OsStr::from_bytes(opt)]);
    }
    // Key, certificate and output names that are not UTF-8.
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let (k, c) = (e.path_os(b"k\xff"), e.path_os(b"c\xfe"));
    std::fs::rename(key, &k).unwrap();
    std::fs::rename(cert, &c).unwrap();
    let mut key_opt = OsString::from("--key=");
    key_opt.push(&k);
    let mut cert_opt = OsString::from("--cert=");
    cert_opt.push(&c);
    e.same(&[
        OsStr::new("sign"),
        &bad,
        OsStr::new("{sig}"),
        &key_opt,
        &cert_opt,
    ]);
    e.same(&[OsStr::new("sign"), &bad, OsStr::new("{sig}"), &key_opt]);
    e.same(&[
        OsStr::new("sign"),
        &bad,
        OsStr::new("{sig}"),
        OsStr::from_bytes(b"--key=nokey\xfd"),
        &cert_opt,
    ]);
    e.same(&[
        OsStr::new("digest"),
        &bad,
        OsStr::from_bytes(b"--out-descriptor={desc}\xff"),
    ]);
    let desc = |who: &str| std::fs::read(e.path_os(&[who.as_bytes(), b".desc\xff"].concat()));
    let (r, v) = (desc("ref").unwrap(), desc("vigil").unwrap());
    assert!(
        r == v && r.len() == 256,
        "descriptor written under a non-UTF-8 name"
    );
}

#[test]
fn enable_reads_and_checks_the_signature_file_first() {
    let e = env();
    let f = e.write("f", &pattern(4097, 1));
    let f = f.as_str();
    let empty = e.write("empty", b"");
    let dir = e.path("");
    let mut cases: Vec<Vec<String>> = vec![
        vec![f.into(), format!("--signature={empty}")],
        vec![f.into(), "--signature=/dev/null".into()],
        vec![format!("--signature={empty}")],
        vec![format!("--signature={dir}")],
        vec!["--signature=/nonexistent".into()],
        vec![
            f.into(),
            "--signature=/nonexistent".into(),
            "--signature=b".into(),
        ],
        vec![
            f.into(),
            format!("--signature={empty}"),
            "--signature=b".into(),
        ],
        vec![
            "--signature=/nonexistent".into(),
            "--hash-alg=bad".into(),
            f.into(),
        ],
        vec![
            "--hash-alg=bad".into(),
            "--signature=/nonexistent".into(),
            f.into(),
        ],
    ];
    // fsverity-utils takes at most 1,000,000 bytes.
    for n in [1usize, 16384, 1_000_000, 1_000_001, 1 << 20] {
        let sig = e.write(&format!("sig{n}"), &pattern(n, 2));
        cases.push(vec![f.into(), format!("--signature={sig}")]);
    }
    let sig = e.write("sig", &pattern(100, 2));
    cases.push(vec![
        f.into(),
        format!("--signature={sig}"),
        format!("--signature={sig}"),
    ]);
    for c in cases {
        let mut args = vec!["enable".to_string()];
        args.extend(c);
        e.same(&args);
    }
}

#[test]
fn sign_checks_key_and_pkcs11_options_as_fsverity_does() {
    let e = env();
    let f = e.write("f", &pattern(4097, 3));
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let (k, c) = (format!("--key={key}"), format!("--cert={cert}"));
    let token: &[&[&str]] = &[
        &["--pkcs11-keyid=1"],
        &["--pkcs11-k=1"],
        &["--pkcs11-keyid="],
        &["--pkcs11-keyid=1", "--pkcs11-module=m.so"],
        &["--pkcs11-keyid=1", "--pkcs11-engine=e.so"],
        &["--pkcs11-engine=e.so"],
        &["--pkcs11-module=m.so"],
    ];
    for t in token {
        for key_cert in [
            &[k.as_str(), c.as_str()][..],
            &[c.as_str()],
            &[k.as_str()],
            &[],
        ] {
            let mut args = vec!["sign", &f, "{sig}"];
            args.extend_from_slice(key_cert);
            args.extend_from_slice(t);
            e.same(&args);
        }
    }
}

#[test]
fn once_only_options_given_twice_are_usage_errors() {
    let e = env();
    let f = e.write("f", &pattern(4097, 4));
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let (k, c) = (format!("--key={key}"), format!("--cert={cert}"));
    let twice: &[&[&str]] = &[
        &["--key=a", "--key=b"],
        &["--cert=a", "--cert=b"],
        &["--pkcs11-engine=a", "--pkcs11-engine=b"],
        &["--pkcs11-module=a", "--pkcs11-module=b"],
        &["--pkcs11-keyid=a", "--pkcs11-keyid=b"],
        &["--out-merkle-tree={tree}", "--out-merkle-tree={desc}"],
        &["--out-descriptor={desc}", "--out-descriptor={tree}"],
        &["--hash-alg=sha256", "--hash-alg=sha256"],
        &["--block-size=4096", "--block-size=4096"],
        &["--salt=00", "--salt=00"],
    ];
    for t in twice {
        let mut args = vec!["sign", &f, "{sig}", &k, &c];
        args.extend_from_slice(t);
        e.same(&args);
        if t[0].starts_with("--out") {
            let mut args = vec!["digest", &f];
            args.extend_from_slice(t);
            e.same(&args);
        }
    }
    for t in [
        ["--offset=1", "--offset=2", "--length=5"],
        ["--offset=0", "--length=1", "--length=2"],
        ["--offset=1", "--offset=x", "--length=1"],
        ["--offset=x", "--offset=1", "--length=1"],
    ] {
        let mut args = vec!["dump_metadata", "merkle_tree", &f];
        args.extend_from_slice(&t);
        e.same(&args);
    }
}

#[test]
fn dump_metadata_numbers_are_read_as_fsverity_reads_them() {
    let e = env();
    let f = e.write("f", &pattern(4097, 5));
    for (offset, length) in [
        ("0", "0"),
        ("", ""),
        ("1", ""),
        ("18446744073709551616", "5"),
        ("5", "18446744073709551616"),
        ("-18446744073709551616", "5"),
        ("18446744073709551615", "1"),
        ("-1", "1"),
        (" 7", "+1"),
        (" ", "1"),
        ("1", "+"),
    ] {
        e.same(&[
            "dump_metadata",
            "descriptor",
            &f,
            &format!("--offset={offset}"),
            &format!("--length={length}"),
        ]);
    }
}

#[test]
fn failed_sign_still_writes_tree_and_descriptor() {
    let e = env();
    let f = e.write("f", &pattern(300_000, 6));
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let (_, other) = keypair(&e, "other", &["-newkey", "rsa:2048"]);
    let outs = ["--out-merkle-tree={tree}", "--out-descriptor={desc}"];
    for k in [
        vec![format!("--key={key}"), format!("--cert={other}")],
        vec![format!("--key=/nonexistent"), format!("--cert={cert}")],
        vec![format!("--cert={cert}")],
        vec![],
    ] {
        let mut args = vec!["sign".to_string(), f.clone(), "{sig}".into()];
        args.extend(k);
        args.extend(outs.map(String::from));
        e.same(&args);
    }
}

#[test]
fn output_files_get_mode_0644_less_umask() {
    let e = env();
    let f = e.write("f", &pattern(5000, 7));
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    for umask in ["000", "027"] {
        let setup = format!("umask {umask};");
        e.same_after(
            &setup,
            &[
                "digest",
                &f,
                "--out-merkle-tree={tree}",
                "--out-descriptor={desc}",
            ],
        );
        e.same_after(
            &setup,
            &[
                "sign",
                &f,
                "{sig}",
                &format!("--key={key}"),
                &format!("--cert={cert}"),
                "--out-merkle-tree={tree}",
            ],
        );
    }
}

#[test]
fn posixly_correct_stops_options_at_the_first_operand() {
    let e = env();
    let f = e.write("f", &pattern(5000, 8));
    let (key, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let (k, c) = (format!("--key={key}"), format!("--cert={cert}"));
    let posix = "POSIXLY_CORRECT=1; export POSIXLY_CORRECT;";
    let cases: &[&[&str]] = &[
        &["digest", &f, "--compact"],
        &["digest", "--compact", &f, "--for-builtin-sig"],
        &["digest", "--compact", "--", &f],
        &["sign", &f, "{sig}", &k, &c],
        &["sign", &k, &c, &f, "{sig}"],
        &["enable", &f, "--hash-alg=bad"],
        &["dump_metadata", "descriptor", &f, "--offset=1"],
    ];
    for args in cases {
        e.same_after(posix, args);
        e.same(args);
    }
}

#[test]
fn devices_are_digested_as_fsverity_digests_them() {
    let e = env();
    // /dev/zero never ends: fsverity-utils takes its st_size (0), and so does vigil.
    for dev in ["/dev/zero", "/dev/null", "/dev/urandom"] {
        e.same(&[
            "digest",
            dev,
            "--out-descriptor={desc}",
            "--out-merkle-tree={tree}",
        ]);
    }
}

/// Outputs that are not files, such as `/dev/stdout` on a pipe, are written as
/// fsverity-utils writes them (there is nothing to sync), and fail as they fail there:
/// a tree file that cannot be preallocated, a descriptor that cannot be written, with
/// no digest printed.
#[test]
fn outputs_to_pipes_and_devices() {
    let e = env();
    std::fs::write(e.path("f"), pattern(5000, 3)).unwrap();
    let f = e.path("f");
    e.same(&["digest", &f, "--out-descriptor=/dev/stdout"]);
    e.same(&["digest", &f, "--out-descriptor=/dev/null"]);
    e.same(&["digest", &f, "--out-merkle-tree=/dev/null"]);
    e.same(&["digest", &f, "--out-merkle-tree=/dev/stdout"]);
    e.same(&["digest", &f, "--out-descriptor=/dev/full"]);
}

#[test]
fn small_differences_in_wording_and_precedence() {
    let e = env();
    let f = e.write("f", &pattern(100, 9));
    let (_, cert) = keypair(&e, "rsa", &["-newkey", "rsa:2048"]);
    let salt33 = format!("--salt={}", "00".repeat(33));
    let cases: &[&[&str]] = &[
        &["digest", &f, "--foo=bar"],
        &["digest", &f, "--help=1"],
        &["digest", &f, &salt33, "--hash-alg=3"],
        &[
            "sign",
            &f,
            "{sig}",
            &format!("--key={}", e.path("")),
            &format!("--cert={cert}"),
        ],
        &[
            "sign",
            &f,
            "{sig}",
            "--key=/nonexistent",
            &format!("--cert={}", e.path("")),
        ],
    ];
    for args in cases {
        e.same(args);
    }
}

#[test]
fn ec_keys_sign_or_fail_clearly() {
    let e = env();
    let f = e.write("f", &pattern(5000, 10));
    let sig = |who: &str| e.path(&format!("{who}.sig"));
    // P-256 and P-384, PKCS#8 and SEC1: both tools sign (ECDSA is randomised, so the
    // signatures are checked with OpenSSL rather than compared).
    for curve in ["P-256", "P-384"] {
        let (key, cert) = keypair(
            &e,
            curve,
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
        );
        let sec1 = e.path(&format!("{curve}.sec1"));
        openssl(&["ec", "-in", &key, "-out", &sec1]);
        for k in [&key, &sec1] {
            for alg in ["sha256", "sha512"] {
                let args = |who: &str| -> Vec<String> {
                    vec![
                        "sign".into(),
                        f.clone(),
                        sig(who),
                        format!("--key={k}"),
                        format!("--cert={cert}"),
                        format!("--hash-alg={alg}"),
                    ]
                };
                let r = e.run(
                    "",
                    Path::new(REFERENCE),
                    &args("ref").iter().map(OsString::from).collect::<Vec<_>>(),
                );
                let v = e.run(
                    "",
                    &e.ours,
                    &args("vigil").iter().map(OsString::from).collect::<Vec<_>>(),
                );
                assert_eq!((&v.0, v.2), (&r.0, r.2), "{curve} {k} {alg}");
                let formatted = e.path("formatted");
                let d = Command::new(REFERENCE)
                    .args([
                        "digest",
                        "--compact",
                        "--for-builtin-sig",
                        &f,
                        &format!("--hash-alg={alg}"),
                    ])
                    .output()
                    .unwrap();
                let hex = String::from_utf8(d.stdout).unwrap();
                std::fs::write(&formatted, hex::decode(hex.trim()).unwrap()).unwrap();
                for who in ["ref", "vigil"] {
                    openssl(&[
                        "smime",
                        "-verify",
                        "-binary",
                        "-inform",
                        "DER",
                        "-in",
                        &sig(who),
                        "-content",
                        &formatted,
                        "-certfile",
                        &cert,
                        "-CAfile",
                        &cert,
                        "-out",
                        "/dev/null",
                    ]);
                }
            }
        }
    }
    // Keys fsverity-utils signs with but vigil does not: a clear error, exit status 1,
    // no signature.
    let (p521, p521_cert) = keypair(
        &e,
        "p521",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
    );
    let (k1, k1_cert) = keypair(
        &e,
        "k1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
    );
    let (p256, p256_cert) = keypair(
        &e,
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let explicit = e.path("explicit.key");
    openssl(&[
        "ec",
        "-in",
        &p256,
        "-param_enc",
        "explicit",
        "-out",
        &explicit,
    ]);
    let encrypted = e.path("encrypted.key");
    openssl(&[
        "pkey", "-in", &p256, "-aes256", "-passout", "pass:x", "-out", &encrypted,
    ]);
    for (key, cert, why) in [
        (&p521, &p521_cert, "EC curve P-521 is not supported"),
        (&k1, &k1_cert, "EC curve secp256k1 is not supported"),
        (
            &explicit,
            &p256_cert,
            "explicit curve parameters are not supported",
        ),
        (
            &encrypted,
            &p256_cert,
            "encrypted private keys are not supported",
        ),
    ] {
        let args: Vec<OsString> = [
            "sign",
            &f,
            &sig("vigil"),
            &format!("--key={key}"),
            &format!("--cert={cert}"),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let _ = std::fs::remove_file(sig("vigil"));
        let (out, err, rc) = e.run("", &e.ours, &args);
        let err = String::from_utf8_lossy(&err);
        assert_eq!(rc, 1, "{key}: {err}");
        assert!(out.is_empty() && err.contains(why), "{key}: {err}");
        assert!(
            !Path::new(&sig("vigil")).exists(),
            "{key}: signature written"
        );
    }
}
