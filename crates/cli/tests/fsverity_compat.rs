//! Differential tests: vigil run as `fsverity` against the installed fsverity-utils
//! (`/usr/bin/fsverity`) on generated files — stdout, stderr, exit status, and the
//! files written (`--out-merkle-tree`, `--out-descriptor`, signatures), byte for byte.

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

impl Env {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.path(name)
    }

    fn run(&self, prog: &Path, args: &[String]) -> (Vec<u8>, Vec<u8>, i32) {
        let out = Command::new(prog)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
    }

    /// Run both tools with `args`, in which `{out}` stands for an output file name that
    /// differs between the two runs; compare everything and the output files.
    fn same(&self, args: &[&str]) {
        let outs = ["tree", "desc", "sig"];
        let subst = |who: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    let mut a = a.to_string();
                    for o in outs {
                        a = a.replace(&format!("{{{o}}}"), &self.path(&format!("{who}.{o}")));
                    }
                    a
                })
                .collect()
        };
        let (theirs, ours) = (subst("ref"), subst("vigil"));
        let r = self.run(Path::new(REFERENCE), &theirs);
        let v = self.run(&self.ours, &ours);
        let show = |b: &[u8]| String::from_utf8_lossy(b).replace(&self.path(""), "");
        // Output file names differ between the runs; compare with them masked.
        let mask = |b: &[u8], who: &str| {
            let mut s = show(b);
            for o in outs {
                s = s.replace(&format!("{who}.{o}"), &format!("OUT.{o}"));
            }
            s
        };
        assert_eq!(mask(&v.0, "vigil"), mask(&r.0, "ref"), "stdout of {args:?}");
        assert_eq!(
            drop_openssl_queue(&mask(&v.1, "vigil")),
            drop_openssl_queue(&mask(&r.1, "ref")),
            "stderr of {args:?}"
        );
        assert_eq!(v.2, r.2, "exit status of {args:?}");
        for o in outs {
            let a = std::fs::read(self.path(&format!("ref.{o}"))).ok();
            let b = std::fs::read(self.path(&format!("vigil.{o}"))).ok();
            assert_eq!(
                a.is_some(),
                b.is_some(),
                "{o} written by one tool only, {args:?}"
            );
            assert!(a == b, "{o} file differs for {args:?}");
            let _ = std::fs::remove_file(self.path(&format!("ref.{o}")));
            let _ = std::fs::remove_file(self.path(&format!("vigil.{o}")));
        }
    }
}

/// OpenSSL's error-queue dump (thread ids, source lines) is not reproduced; drop it.
fn drop_openssl_queue(s: &str) -> String {
    s.lines()
        .filter(|l| {
            !l.is_empty() && *l != "ERROR: OpenSSL library errors:" && !l.contains(":error:")
        })
        .map(|l| format!("{l}\n"))
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
