//! `vigil digest | sign | verify-sig | measure | enable | dump-metadata` on real files,
//! checked against fsverity-utils where it has the same function.

use std::path::Path;
use std::process::{Command, Output};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).output().unwrap()
}

fn fsverity(args: &[&str]) -> Output {
    Command::new("/usr/bin/fsverity")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn make_tree(root: &Path) -> Vec<String> {
    let files = [
        ("a/empty", 0usize),
        ("a/b/one", 1),
        ("a/b/block", 4096),
        ("a/c/big", 700_000),
        ("z", 12_345),
    ];
    for (name, n) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, (0..n).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>()).unwrap();
    }
    std::os::unix::fs::symlink(root.join("z"), root.join("a/link")).unwrap();
    let mut names: Vec<String> = files
        .iter()
        .map(|(n, _)| root.join(n).to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn recursive_digest_matches_fsverity_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_tree(dir.path());
    let root = dir.path().to_str().unwrap();
    let out = vigil(&[
        "digest",
        "-r",
        root,
        "--hash-alg",
        "sha512",
        "--block-size",
        "1024",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Sorted by path, symlinks not followed, progress bar not drawn when not a terminal.
    let mut args = vec!["digest", "--hash-alg=sha512", "--block-size=1024"];
    args.extend(files.iter().map(|s| s.as_str()));
    let want = fsverity(&args);
    assert_eq!(text(&out.stdout), text(&want.stdout));
    assert!(out.stderr.is_empty());
    // Without -r a directory is an error (exit 2).
    let out = vigil(&["digest", root]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is a directory"));
}

#[test]
fn json_and_output_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, vec![9u8; 300_000]).unwrap();
    let f = f.to_str().unwrap();
    let out = vigil(&["digest", "--json", "--salt", "abcd", f]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = text(&fsverity(&["digest", "--salt=abcd", f]).stdout);
    assert_eq!(format!("{} {f}\n", v["digest"].as_str().unwrap()), want);
    assert_eq!(v["size"], 300_000);
    assert_eq!(v["salt"], "abcd");
    let builtin =
        text(&fsverity(&["digest", "--salt=abcd", "--for-builtin-sig", "--compact", f]).stdout);
    assert_eq!(
        format!("{}\n", v["formatted_digest"].as_str().unwrap()),
        builtin
    );

    let (t1, d1) = (dir.path().join("t1"), dir.path().join("d1"));
    let (t2, d2) = (dir.path().join("t2"), dir.path().join("d2"));
    let ours = vigil(&[
        "digest",
        f,
        "--block-size",
        "1024",
        "--out-merkle-tree",
        t1.to_str().unwrap(),
        "--out-descriptor",
        d1.to_str().unwrap(),
    ]);
    assert!(ours.status.success());
    fsverity(&[
        "digest",
        f,
        "--block-size=1024",
        &format!("--out-merkle-tree={}", t2.display()),
        &format!("--out-descriptor={}", d2.display()),
    ]);
    assert_eq!(std::fs::read(t1).unwrap(), std::fs::read(t2).unwrap());
    assert_eq!(std::fs::read(d1).unwrap(), std::fs::read(d2).unwrap());
    // Small blocks only with the flag.
    assert_eq!(
        vigil(&["digest", f, "--block-size", "512"]).status.code(),
        Some(2)
    );
    let small = vigil(&["digest", f, "--block-size", "512", "--allow-small-blocks"]);
    assert_eq!(
        text(&small.stdout),
        text(&fsverity(&["digest", f, "--block-size=512"]).stdout)
    );
}

#[test]
fn sign_then_verify_sig() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=t", "-newkey", "rsa:2048",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(st.status.success());
    let f = dir.path().join("f");
    std::fs::write(&f, b"some content").unwrap();
    let sig = dir.path().join("f.sig");
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let out = vigil(&[
        "sign",
        &p(&f),
        &p(&sig),
        "--key",
        &p(&key),
        "--cert",
        &p(&cert),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Signed file '"));
    let ok = vigil(&["verify-sig", &p(&f), &p(&sig), "--cert", &p(&cert)]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    // Different tree parameters give a different digest: the signature fails (exit 1).
    let bad = vigil(&[
        "verify-sig",
        &p(&f),
        &p(&sig),
        "--cert",
        &p(&cert),
        "--hash-alg",
        "sha512",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    std::fs::write(&f, b"some content!").unwrap();
    let bad = vigil(&["verify-sig", &p(&f), &p(&sig), "--cert", &p(&cert)]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stdout).starts_with("FAILED"));
}

#[test]
fn kernel_interfaces_without_fs_verity() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"hello world").unwrap();
    let f = f.to_str().unwrap();
    let measured = vigil(&["measure", f]);
    assert!(measured.status.success());
    assert_eq!(
        text(&measured.stdout),
        format!("sha256:1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64 {f}\n")
    );
    // Whether the kernel has fs-verity or not, this file has none: the fallback says so.
    assert!(
        text(&measured.stderr).contains("computed in userspace"),
        "{}",
        text(&measured.stderr)
    );
    if fsverity(&["measure", f]).status.code() == Some(1)
        && text(&fsverity(&["enable", f]).stderr).contains("not supported")
    {
        let en = vigil(&["enable", f]);
        assert_eq!(en.status.code(), Some(2));
        assert!(
            text(&en.stderr).contains("not supported"),
            "{}",
            text(&en.stderr)
        );
        let dm = vigil(&["dump-metadata", "descriptor", f]);
        assert_eq!(dm.status.code(), Some(2));
        assert!(text(&dm.stderr).contains("not supported"));
    }
}
