//! Differential tests: vigil run as `evmctl` against the installed evmctl 1.4, on
//! files and keys generated here, using `user.*` xattrs.

mod ima_support;
use ima_support::*;
use std::path::Path;

const HASH_ALGOS: &[&str] = &[
    "md5", "sha1", "rmd160", "sha224", "sha256", "sha384", "sha512", "sm3",
];

#[test]
fn ima_hash_output_and_xattr_identical() {
    let d = scratch();
    let p = d.path();
    let files = [
        ("empty", data(0, 0)),
        ("abc", b"abc".to_vec()),
        ("big", data(300_000, 7)),
    ];
    for (name, content) in &files {
        std::fs::write(p.join(name), content).unwrap();
    }
    for algo in HASH_ALGOS {
        for (name, _) in &files {
            let r = evmctl(&["ima_hash", "--xattr-user", "-a", algo, name], p);
            ok(&r, "evmctl ima_hash");
            let ref_x = get_xattr(&p.join(name), "user.ima");
            std::fs::remove_file(p.join(name)).ok();
            std::fs::write(
                p.join(name),
                &files.iter().find(|f| f.0 == *name).unwrap().1,
            )
            .unwrap();
            let v = vevmctl(&["ima_hash", "--xattr-user", "-a", algo, name], p);
            ok(&v, "vigil evmctl ima_hash");
            assert_eq!(stdout(&v), stdout(&r), "ima_hash -a {algo} {name}");
            assert_eq!(
                get_xattr(&p.join(name), "user.ima"),
                ref_x,
                "user.ima -a {algo} {name}"
            );
            assert_eq!(hex::encode(&ref_x) + "\n", stdout(&r));
            // -n prints the same value and writes nothing.
            let n = vevmctl(&["ima_hash", "-n", "-a", algo, name], p);
            assert_eq!(stdout(&n), stdout(&r));
            // The native command agrees.
            let nat = vigil(&["ima", "hash", "-n", "-a", algo, name], p);
            ok(&nat, "vigil ima hash");
            assert_eq!(stdout(&nat), format!("{}  {name}\n", hex::encode(&ref_x)));
        }
    }
    // Unknown and wrongly-cased names fail like evmctl does.
    for bad in ["SHA256", "sha512-224", "nope"] {
        let r = evmctl(&["ima_hash", "-n", "-a", bad, "abc"], p);
        let v = vevmctl(&["ima_hash", "-n", "-a", bad, "abc"], p);
        assert_eq!(code(&v), code(&r), "-a {bad}");
        assert!(
            all_text(&v).contains("Unknown hash algo"),
            "{}",
            all_text(&v)
        );
    }
}

/// vigil signs → evmctl verifies, and the reverse, for every key type and several
/// hash algorithms; RSA values are byte-identical.
#[test]
fn sign_verify_both_ways() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), data(5000, 3)).unwrap();
    let f = p.join("f");
    for (name, _) in KEYS {
        let (k, c) = (key(name), cert(name));
        for algo in ["sha1", "sha256", "sha384", "sha512"] {
            let what = format!("{name} {algo}");
            let r = evmctl(
                &["ima_sign", "--xattr-user", "-a", algo, "--key", &k, "f"],
                p,
            );
            ok(&r, &format!("evmctl ima_sign {what}"));
            let ref_value = get_xattr(&f, "user.ima");
            let v = vevmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
            ok(&v, &format!("vigil verifies evmctl's {what}"));
            let n = vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p);
            ok(&n, &format!("vigil ima verify of evmctl's {what}"));

            let v = vevmctl(
                &["ima_sign", "--xattr-user", "-a", algo, "--key", &k, "f"],
                p,
            );
            ok(&v, &format!("vigil ima_sign {what}"));
            let ours = get_xattr(&f, "user.ima");
            assert_eq!(stdout(&v), format!("{}\n", hex::encode(&ours)));
            let r = evmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
            ok(&r, &format!("evmctl verifies vigil's {what}"));
            assert_eq!(ours[..7], ref_value[..7], "header {what}");
            if name.starts_with("rsa") {
                assert_eq!(ours, ref_value, "RSA value must be byte-identical ({what})");
            }

            let n = vigil(
                &["ima", "sign", "--xattr-user", "-a", algo, "--key", &k, "f"],
                p,
            );
            ok(&n, &format!("vigil ima sign {what}"));
            let r = evmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
            ok(&r, &format!("evmctl verifies vigil ima sign {what}"));
        }
    }
}

/// Several verification keys at once (comma-separated), the right one picked by
/// key id; a key list without the signer fails.
#[test]
fn key_lists_and_wrong_keys() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"key list test").unwrap();
    let list = format!("{},{},{}", cert("rsa1024"), cert("p256"), cert("rsa2048"));
    let wrong = format!("{},{}", cert("rsa1024"), cert("p384"));
    for signer in ["rsa2048", "p256"] {
        ok(
            &vevmctl(&["ima_sign", "--xattr-user", "--key", &key(signer), "f"], p),
            "sign",
        );
        ok(
            &evmctl(&["ima_verify", "--xattr-user", "--key", &list, "f"], p),
            "evmctl list",
        );
        ok(
            &vevmctl(&["ima_verify", "--xattr-user", "--key", &list, "f"], p),
            "vigil list",
        );
        let r = evmctl(&["ima_verify", "--xattr-user", "--key", &wrong, "f"], p);
        let v = vevmctl(&["ima_verify", "--xattr-user", "--key", &wrong, "f"], p);
        assert_eq!(code(&r), 1);
        assert_eq!(code(&v), 1, "{}", all_text(&v));
        assert!(all_text(&v).contains("unknown keyid"), "{}", all_text(&v));
        assert_eq!(all_text(&v), all_text(&r));
        // Verbose: the file is named; an id already reported is not numbered again.
        std::fs::copy(p.join("f"), p.join("g")).unwrap();
        set_xattr(
            &p.join("g"),
            "user.ima",
            &get_xattr(&p.join("f"), "user.ima"),
        );
        let args = [
            "-v",
            "ima_verify",
            "--xattr-user",
            "--key",
            &wrong,
            "f",
            "g",
        ];
        let text = all_text(&vevmctl(&args, p));
        assert_eq!(text.matches("(unknown keyid)").count(), 1, "{text}");
        assert!(
            text.contains("f: verification failed: unknown keyid"),
            "{text}"
        );
        assert!(
            text.contains("g: verification failed: unknown keyid"),
            "{text}"
        );
    }
    // A changed file: evmctl's "0 (reason)" form.
    std::fs::write(p.join("f"), b"changed").unwrap();
    let args = ["ima_verify", "--xattr-user", "--key", &list, "f"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    assert_eq!((code(&v), code(&r)), (1, 1));
    assert!(all_text(&r).contains("f: verification failed: 0 ("));
    assert!(
        all_text(&v).contains("f: verification failed: 0 ("),
        "{}",
        all_text(&v)
    );
}

/// `--sigfile` writes `FILE.sig` equal to the xattr; `ima_setxattr` copies it back;
/// `ima_verify --sigfile` reads it.
#[test]
fn sigfile_and_setxattr() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"sigfile").unwrap();
    std::fs::write(p.join("g"), b"sigfile").unwrap();
    let k = key("rsa2048");
    let c = cert("rsa2048");
    ok(
        &vevmctl(
            &["ima_sign", "--xattr-user", "--sigfile", "--key", &k, "f"],
            p,
        ),
        "sign",
    );
    let sig = std::fs::read(p.join("f.sig")).unwrap();
    assert_eq!(sig, get_xattr(&p.join("f"), "user.ima"));
    let mode = |f: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p.join(f)).unwrap().permissions().mode()
    };
    let ours = mode("f.sig");
    ok(
        &evmctl(&["ima_verify", "--sigfile", "--key", &c, "f"], p),
        "evmctl --sigfile",
    );
    ok(
        &vevmctl(&["ima_verify", "--sigfile", "--key", &c, "f"], p),
        "vigil --sigfile",
    );
    ok(
        &vevmctl(
            &["ima_setxattr", "--xattr-user", "--sigfile", "f.sig", "g"],
            p,
        ),
        "setxattr",
    );
    assert_eq!(get_xattr(&p.join("g"), "user.ima"), sig);
    ok(
        &evmctl(&["ima_verify", "--xattr-user", "--key", &c, "g"], p),
        "evmctl verifies g",
    );
    // evmctl's .sig is the same bytes (RSA is deterministic), made with the same mode
    // (0666 less the umask).
    std::fs::remove_file(p.join("f.sig")).unwrap();
    ok(
        &evmctl(&["ima_sign", "-n", "--sigfile", "--key", &k, "f"], p),
        "evmctl sigfile",
    );
    assert_eq!(std::fs::read(p.join("f.sig")).unwrap(), sig);
    assert_eq!(format!("{:o}", mode("f.sig")), format!("{ours:o}"));
}

/// `sign_hash` output is identical for RSA, for sha*sum input.
#[test]
fn sign_hash_identical() {
    let d = scratch();
    let p = d.path();
    let input = format!(
        "{}  abc.txt\n{}  other file\n",
        hex::encode(vigil_sha256(b"abc")),
        hex::encode(vigil_sha256(b"other"))
    );
    let k = key("rsa2048");
    let r = evmctl_stdin(&["sign_hash", "--key", &k], p, input.as_bytes());
    let v = vevmctl_stdin(&["sign_hash", "--key", &k], p, input.as_bytes());
    ok(&r, "evmctl sign_hash");
    ok(&v, "vigil sign_hash");
    assert_eq!(stdout(&v), stdout(&r));
    assert_eq!(stdout(&v).lines().count(), 2);
    // stderr: `hash(…)` and the signature size per line, as evmctl prints them.
    assert_eq!(
        String::from_utf8_lossy(&v.stderr),
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        v.stderr
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"hash("))
            .count(),
        2
    );
    // No input: "Parameters missing", before the key is looked at.
    let (r, v) = (
        evmctl_stdin(&["sign_hash", "--key", "nokey.pem"], p, b""),
        vevmctl_stdin(&["sign_hash", "--key", "nokey.pem"], p, b""),
    );
    assert_eq!((code(&v), code(&r)), (125, 125));
    assert!(
        all_text(&v).contains("Parameters missing"),
        "{}",
        all_text(&v)
    );
    assert!(!all_text(&v).contains("keyfile"), "{}", all_text(&v));
}

fn vigil_sha256(data: &[u8]) -> Vec<u8> {
    use std::process::Command;
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(data).unwrap();
    }
    let o = c.wait_with_output().unwrap();
    hex::decode(
        String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap(),
    )
    .unwrap()
}

/// `sign_hash --veritysig` (evmctl ≥ 1.5) reproduces the §3.3 vector with the
/// test-only RSA key.
#[test]
fn sign_hash_veritysig_vector() {
    let d = scratch();
    let p = d.path();
    let k = concat!(env!("CARGO_MANIFEST_DIR"), "/../ima/tests/data/rsa2048.pem");
    let line = "sha256:700b6bd8510f0b4f9bac8b9cf0459151a1c4a99f467892bb4bd289a67df8e19c abc";
    let v = vevmctl_stdin(
        &["sign_hash", "--veritysig", "--key", k],
        p,
        format!("{line}\n").as_bytes(),
    );
    ok(&v, "sign_hash --veritysig");
    let out = stdout(&v);
    assert!(
        out.starts_with(&format!(
            "{line} 060304967db47201003f3e9b411256ea47dd591dd24d1606cc99f3fa"
        )),
        "{out}"
    );
    let n = std::process::Command::new(vigil_bin())
        .args(["ima", "sign-hash", "--veritysig", "--key", k])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{line}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(stdout(&n), out);
}

/// EVM signatures: portable (with --imasig) and inode-bound (no UUID, a given UUID,
/// and both options), signed by one and verified by the other; a metadata change
/// fails both.
#[test]
fn evm_sign_verify_both_ways() {
    let d = scratch();
    let p = d.path();
    let k = key("rsa2048");
    let c = cert("p256");
    let kc = cert("rsa2048");
    let ek = key("p256");
    let uuid = "--uuid=01234567-89ab-cdef-0123-456789abcdef";
    for (signer, verifier, sk, vc) in [
        ("vigil", "evmctl", &k, &kc),
        ("evmctl", "vigil", &k, &kc),
        ("vigil", "evmctl", &ek, &c),
        ("evmctl", "vigil", &ek, &c),
    ] {
        // `-u` before `--uuid=U` still means no UUID, as in evmctl.
        let modes = [
            &["--portable", "--imasig"][..],
            &["-u"],
            &[uuid],
            &["-u", uuid],
        ];
        for mode in modes {
            let f = p.join("e");
            std::fs::write(&f, b"evm test").unwrap();
            let mut args = vec!["sign", "--xattr-user", "--key", sk.as_str()];
            args.extend_from_slice(mode);
            args.push("e");
            let s = if signer == "vigil" {
                vevmctl(&args, p)
            } else {
                evmctl(&args, p)
            };
            ok(&s, &format!("{signer} sign {mode:?}"));
            let vmode: Vec<&str> = mode
                .iter()
                .copied()
                .filter(|m| *m != "--imasig" && *m != "--portable")
                .collect();
            let mut vargs = vec!["verify", "--xattr-user", "--key", vc.as_str()];
            vargs.extend_from_slice(&vmode);
            vargs.push("e");
            let v = if verifier == "vigil" {
                vevmctl(&vargs, p)
            } else {
                evmctl(&vargs, p)
            };
            ok(&v, &format!("{verifier} verifies {signer}'s EVM {mode:?}"));
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let r = evmctl(&vargs, p);
            let v = vevmctl(&vargs, p);
            assert_eq!(code(&r), 1, "evmctl after chmod {mode:?}: {}", all_text(&r));
            assert_eq!(code(&v), 1, "vigil after chmod {mode:?}: {}", all_text(&v));
            std::fs::remove_file(&f).unwrap();
        }
    }
}

/// Recursive signing signs every regular file below the directory.
#[test]
fn recursive_sign() {
    let d = scratch();
    let p = d.path();
    std::fs::create_dir_all(p.join("tree/a/b")).unwrap();
    let names = ["tree/x", "tree/a/y", "tree/a/b/z"];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(p.join(n), data(100 + i, i as u32)).unwrap();
    }
    std::os::unix::fs::symlink("x", p.join("tree/link")).unwrap();
    let k = key("p384");
    let c = cert("p384");
    let v = vevmctl(&["ima_sign", "-r", "--xattr-user", "--key", &k, "tree"], p);
    ok(&v, "evmctl -r");
    assert_eq!(stdout(&v).lines().count(), 3);
    for n in names {
        ok(
            &evmctl(&["ima_verify", "--xattr-user", "--key", &c, n], p),
            n,
        );
    }
    let v = vigil(
        &[
            "ima",
            "sign",
            "-r",
            "--xattr-user",
            "--key",
            &key("rsa1024"),
            "tree",
        ],
        p,
    );
    ok(&v, "vigil ima sign -r");
    for n in names {
        ok(
            &evmctl(
                &["ima_verify", "--xattr-user", "--key", &cert("rsa1024"), n],
                p,
            ),
            n,
        );
    }
    let v = vigil(
        &[
            "ima",
            "verify",
            "-r",
            "--xattr-user",
            "--key",
            &cert("rsa1024"),
            "tree",
        ],
        p,
    );
    ok(&v, "vigil ima verify -r");
    assert_eq!(stdout(&v).matches(": OK").count(), 3);
}

/// A tmpfs mounted for a test, unmounted when dropped (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `-x` keeps a recursive walk on each operand's file system, as `find -xdev` and
/// evmctl's `-t m` do: a tmpfs mounted inside the tree is left out.
#[test]
fn one_file_system_walks() {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let d = scratch();
    let p = d.path();
    std::fs::create_dir_all(p.join("tree/mnt")).unwrap();
    std::fs::write(p.join("tree/x"), b"on the tree's file system").unwrap();
    let mnt = p.join("tree/mnt");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "vigil-test"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success());
    let _tmpfs = Tmpfs(mnt.clone());
    std::fs::write(mnt.join("y"), b"on a tmpfs").unwrap();
    let listed = |args: &[&str]| {
        let o = vigil(args, p);
        ok(&o, "vigil ima hash -r");
        let mut names: Vec<_> = stdout(&o)
            .lines()
            .map(|l| l.split_once("  ").unwrap().1.to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        listed(&["ima", "hash", "-n", "-r", "tree"]),
        ["tree/mnt/y", "tree/x"]
    );
    assert_eq!(
        listed(&["ima", "hash", "-n", "-r", "-x", "tree"]),
        ["tree/x"]
    );
    // The evmctl front door's -t m, against evmctl's.
    let theirs = evmctl(&["ima_hash", "-n", "-r", "-t", "fm", "tree"], p);
    let ours = vevmctl(&["ima_hash", "-n", "-r", "-t", "fm", "tree"], p);
    assert_eq!(stdout(&ours), stdout(&theirs));
    assert_eq!(stdout(&ours).lines().count(), 1);
    assert_eq!(
        stdout(&vevmctl(&["ima_hash", "-n", "-r", "tree"], p))
            .lines()
            .count(),
        2
    );
}

/// Command-line behaviour scripts depend on.
#[test]
fn cli_conventions() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"x").unwrap();
    // No command: usage, exit 0. Unknown command and missing operand: 125.
    let v = vevmctl(&[], p);
    assert_eq!(code(&v), 0);
    assert!(stdout(&v).starts_with("Usage: evmctl"));
    let v = vevmctl(&["frobnicate"], p);
    assert_eq!((code(&v), code(&evmctl(&["frobnicate"], p))), (125, 125));
    assert!(stdout(&v).contains("Invalid command: frobnicate"));
    assert_eq!(
        code(&vevmctl(&["ima_hash"], p)),
        code(&evmctl(&["ima_hash"], p))
    );
    // A bad option exits 1, as getopt in evmctl does.
    assert_eq!(code(&vevmctl(&["-Z", "ima_hash", "f"], p)), 1);
    // --version and help.
    assert!(stdout(&vevmctl(&["--version"], p)).starts_with("evmctl "));
    let h = vevmctl(&["help", "ima_sign"], p);
    assert_eq!(stdout(&h), stdout(&evmctl(&["help", "ima_sign"], p)));
    // Options after operands (GNU permutation), long-option prefixes, clustered -n.
    let a = vevmctl(&["ima_hash", "f", "--hashal=sha1", "-n"], p);
    let b = evmctl(&["ima_hash", "f", "--hashal=sha1", "-n"], p);
    assert_eq!(stdout(&a), stdout(&b));
    // Missing file: 125 with the file named.
    let v = vevmctl(&["ima_hash", "-n", "nonexistent"], p);
    assert_eq!(code(&v), 125);
    assert!(all_text(&v).contains("nonexistent"));
    // Only regular files.
    std::fs::create_dir(p.join("dir")).unwrap();
    let v = vevmctl(&["ima_hash", "-n", "dir"], p);
    assert_eq!(
        (code(&v), code(&evmctl(&["ima_hash", "-n", "dir"], p))),
        (125, 125)
    );
}

/// SM2 keys with sm3 digests, both ways.
#[test]
fn sm2_both_ways() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), data(3000, 13)).unwrap();
    openssl_in(p, &["genpkey", "-algorithm", "SM2", "-out", "sm2.pem"]);
    std::fs::write(
        p.join("sm2.cnf"),
        "[ req ]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3\n[ dn ]\nCN = sm2\n[ v3 ]\nsubjectKeyIdentifier=hash\n",
    )
    .unwrap();
    openssl_in(
        p,
        &[
            "req", "-x509", "-new", "-key", "sm2.pem", "-sm3", "-batch", "-config", "sm2.cnf",
            "-outform", "DER", "-out", "sm2.der",
        ],
    );
    ok(
        &evmctl(
            &[
                "ima_sign",
                "--xattr-user",
                "-a",
                "sm3",
                "--key",
                "sm2.pem",
                "f",
            ],
            p,
        ),
        "evmctl sm2",
    );
    let theirs = get_xattr(&p.join("f"), "user.ima");
    ok(
        &vevmctl(&["ima_verify", "--xattr-user", "--key", "sm2.der", "f"], p),
        "vigil verifies sm2",
    );
    ok(
        &vevmctl(
            &[
                "ima_sign",
                "--xattr-user",
                "-a",
                "sm3",
                "--key",
                "sm2.pem",
                "f",
            ],
            p,
        ),
        "vigil sm2",
    );
    let ours = get_xattr(&p.join("f"), "user.ima");
    assert_eq!(ours[..7], theirs[..7]);
    ok(
        &evmctl(&["ima_verify", "--xattr-user", "--key", "sm2.der", "f"], p),
        "evmctl verifies sm2",
    );
    std::fs::write(p.join("f"), b"tampered").unwrap();
    assert_eq!(
        code(&vevmctl(
            &["ima_verify", "--xattr-user", "--key", "sm2.der", "f"],
            p
        )),
        1
    );
    let v = vevmctl(
        &["ima_sign", "-n", "-a", "sha512", "--key", "sm2.pem", "f"],
        p,
    );
    assert_eq!(code(&v), 125);
    assert!(all_text(&v).contains("SM2 signs 32-byte digests"));
}

/// `--uid`, `--generation` and `--mode` values are read as C's `strtoul` reads them
/// (a sign, wrap-around), and the inode generation is hashed only when the mode
/// evmctl ends up with, after `--mode`, says regular file or directory.
#[test]
fn evm_metadata_overrides_as_evmctl() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"metadata").unwrap();
    // A portable signature covers the IMA value as it is (`user.ima` here).
    ok(&evmctl(&["ima_hash", "--xattr-user", "f"], p), "ima_hash");
    let k = key("rsa2048");
    for extra in [
        &["--mode", "644"][..],
        &["--mode", "0x1ff"][..],
        &["--mode", "33188"][..],
        &["--uid=-1"][..],
        &["--uid=+5"][..],
        &["--gid= 7"][..],
        &["--generation=+7"][..],
        &["--generation=-2"][..],
        &["--inode=99999999999999999999999"][..],
        &["--selinux=foo", "--ima=0401", "--caps="][..],
        &["--portable"][..],
    ] {
        let mut args = vec!["sign", "-n", "-u", "--xattr-user", "--key", &k];
        args.extend_from_slice(extra);
        args.push("f");
        let r = evmctl(&args, p);
        ok(&r, &format!("evmctl {extra:?}"));
        let v = vevmctl(&args, p);
        ok(&v, &format!("vigil {extra:?}"));
        assert_eq!(stdout(&v), stdout(&r), "sign {extra:?}");
        // stderr too: what was hashed (`generation: N`, `no xattr: NAME`, `name: NAME,
        // size: N`), then the hash and the signature size.
        assert_eq!(all_text(&v), all_text(&r), "sign {extra:?}");
    }
    // verify tells the same before its verdict.
    ok(
        &evmctl(&["sign", "-u", "--xattr-user", "--key", &k, "f"], p),
        "evmctl sign",
    );
    let args = [
        "verify",
        "-u",
        "--xattr-user",
        "--key",
        &cert("rsa2048"),
        "f",
    ];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    ok(&v, "vigil verify");
    assert_eq!(all_text(&v), all_text(&r));
    assert!(all_text(&v).contains("\ngeneration: "), "{}", all_text(&v));
}

/// `-r` walks as evmctl's `find()`: directory order, a file that fails is reported
/// and the walk goes on with exit status 0, and the operand must be a directory.
#[test]
fn recursive_walk_as_evmctl() {
    let d = scratch();
    let p = d.path();
    std::fs::create_dir_all(p.join("t/sub")).unwrap();
    for (i, n) in ["t/b", "t/a", "t/sub/c", "t/z", "t/sub/a"]
        .iter()
        .enumerate()
    {
        std::fs::write(p.join(n), data(50 + i, i as u32)).unwrap();
    }
    // Both tools on the same tree: same files in the same order.
    let args = ["ima_hash", "-n", "-r", "t"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    ok(&r, "evmctl -r");
    assert_eq!(stdout(&v), stdout(&r));
    assert_eq!(stdout(&v).lines().count(), 5);

    let chattr = |flag: &str| {
        let s = std::process::Command::new("chattr")
            .args([flag, "t/z"])
            .current_dir(p)
            .status()
            .unwrap();
        assert!(s.success(), "chattr {flag} (needs root on ext4)");
    };
    chattr("+i");
    let args = ["ima_hash", "--xattr-user", "-r", "t"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    chattr("-i");
    assert_eq!((code(&v), code(&r)), (0, 0), "{}", all_text(&v));
    // Every value is printed, the one that could not be stored too.
    assert_eq!(stdout(&v), stdout(&r));
    assert_eq!(stdout(&v).lines().count(), 5);
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("xattr failed: t/z"),
        "{}",
        all_text(&v)
    );

    for operand in ["t/a", "missing"] {
        let args = ["ima_hash", "-n", "-r", operand];
        let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
        assert_eq!((code(&v), code(&r)), (125, 125), "-r {operand}");
        assert!(all_text(&v).contains(&format!("Failed to open directory {operand}")));
        assert_eq!(stdout(&v), "");
    }
}

/// `ima_sign -r -f` over a tree that already holds `.sig` files signs one file at
/// a time in walk order, so the `.sig` files it signs are the bytes evmctl signs.
#[test]
fn recursive_sigfiles_as_evmctl() {
    let k = key("rsa2048");
    let run = |tool: fn(&[&str], &Path) -> std::process::Output| {
        let d = scratch();
        let p = d.path();
        std::fs::create_dir(p.join("t")).unwrap();
        for i in 0..6 {
            std::fs::write(p.join(format!("t/f{i}")), data(100_000, i)).unwrap();
            std::fs::write(p.join(format!("t/f{i}.sig")), b"old").unwrap();
        }
        ok(
            &tool(&["ima_sign", "-n", "-f", "-r", "--key", &k, "t"], p),
            "-r -f",
        );
        let mut sigs: Vec<_> = std::fs::read_dir(p.join("t"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), std::fs::read(e.path()).unwrap())
            })
            .collect();
        sigs.sort();
        sigs
    };
    let theirs = run(evmctl);
    assert_eq!(theirs.len(), 18);
    assert_eq!(run(vevmctl), theirs);
}

/// Verification messages are evmctl's default (info) output; a malformed
/// `security.evm` fails verification (1) rather than being an error.
#[test]
fn verify_messages_and_malformed_evm() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"verify").unwrap();
    let (k, c) = (key("rsa2048"), cert("rsa2048"));
    ok(
        &evmctl(&["ima_sign", "--xattr-user", "--key", &k, "f"], p),
        "sign",
    );
    let args = ["ima_verify", "--xattr-user", "--key", &c, "f"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    ok(&v, "ima_verify");
    assert_eq!(all_text(&v), all_text(&r));

    let s = evmctl(&["sign", "-n", "-u", "--xattr-user", "--key", &k, "f"], p);
    ok(&s, "evm sign");
    let good = hex::decode(stdout(&s).trim()).unwrap();
    let mut long = good.clone();
    long.push(0);
    for value in [long, good[..100].to_vec(), good[..8].to_vec()] {
        set_xattr(&p.join("f"), "user.evm", &value);
        let args = ["verify", "-u", "--xattr-user", "--key", &c, "f"];
        let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
        assert_eq!((code(&v), code(&r)), (1, 1), "{}", all_text(&v));
        assert!(all_text(&v).contains("f: verification failed"));
    }
}

/// `sign_hash` stops at the first line it cannot sign, as evmctl does.
#[test]
fn sign_hash_stops_at_bad_line() {
    let d = scratch();
    let p = d.path();
    let k = key("rsa2048");
    let good = format!("{}  a\n", "ab".repeat(32));
    let input = format!("{good}{}  short\n{good}", "ab".repeat(20));
    let args = ["sign_hash", "-a", "sha256", "--key", &k];
    let r = evmctl_stdin(&args, p, input.as_bytes());
    let v = vevmctl_stdin(&args, p, input.as_bytes());
    assert_eq!(code(&v), code(&r));
    assert_eq!(stdout(&v), stdout(&r));
    assert_eq!(stdout(&v).lines().count(), 1);
}

/// What cannot be read is reported in evmctl's words, with its closing `errno:` line:
/// no xattr, a hash instead of a signature, a missing `.sig` file, no
/// `security.evm`, a missing measurement list, file, signing key or PCR file.
#[test]
fn read_failures_worded_as_evmctl() {
    let d = scratch();
    let p = d.path();
    for f in ["bare", "hashed", "signed"] {
        std::fs::write(p.join(f), f.as_bytes()).unwrap();
    }
    ok(
        &evmctl(&["ima_hash", "--xattr-user", "hashed"], p),
        "ima_hash",
    );
    ok(
        &evmctl(
            &[
                "ima_sign",
                "--xattr-user",
                "--key",
                &key("rsa2048"),
                "signed",
            ],
            p,
        ),
        "ima_sign",
    );
    let c = cert("rsa2048");
    let k = key("rsa2048");
    let cases: [&[&str]; 10] = [
        &[
            "ima_verify",
            "--xattr-user",
            "--key",
            &c,
            "hashed",
            "bare",
            "signed",
        ],
        &["ima_verify", "--xattr-user", "--key", &c, "bare", "hashed"],
        &["ima_verify", "--sigfile", "--key", &c, "bare"],
        &["verify", "--xattr-user", "--key", &c, "bare"],
        &["ima_measurement", "missing-list"],
        &["ima_hash", "missing"],
        &["ima_sign", "--key", &k, "missing"],
        &["sign", "-n", "--key", &k, "missing"],
        &["ima_boot_aggregate", "--pcrs", "sha256,missing"],
        &["ima_setxattr", "--xattr-user", "signed"],
    ];
    std::fs::write(
        p.join("signed.sig"),
        get_xattr(&p.join("signed"), "user.ima"),
    )
    .unwrap();
    for args in cases {
        let (r, v) = (evmctl(args, p), vevmctl(args, p));
        assert_eq!(code(&v), code(&r), "{args:?}: {}", all_text(&v));
        assert_eq!(all_text(&v), all_text(&r), "{args:?}");
    }
    // A missing signing key is found when signing, after the hash is printed (and,
    // for `sign --imahash`, stored); in a `-r` walk once per file, exit status 0.
    std::fs::create_dir(p.join("dir")).unwrap();
    std::fs::write(p.join("dir/one"), b"one").unwrap();
    std::fs::write(p.join("dir/two"), b"two").unwrap();
    let key_cases: [&[&str]; 5] = [
        &["ima_sign", "-n", "--key", "missing.pem", "bare"],
        &[
            "sign",
            "-u",
            "--imahash",
            "--xattr-user",
            "--key",
            "missing.pem",
            "bare",
        ],
        &["-r", "ima_sign", "-n", "--key", "missing.pem", "dir"],
        &["-r", "sign", "-n", "-u", "--key", "missing.pem", "dir"],
        &["ima_sign", "-n", "--key", "bare", "bare"],
    ];
    for args in key_cases {
        let (r, v) = (evmctl(args, p), vevmctl(args, p));
        assert_eq!(code(&v), code(&r), "{args:?}: {}", all_text(&v));
        assert_eq!(stdout(&v), stdout(&r), "{args:?}");
        let (r_err, v_err) = (
            String::from_utf8_lossy(&r.stderr),
            String::from_utf8_lossy(&v.stderr),
        );
        if args.contains(&"missing.pem") {
            assert_eq!(v_err, r_err, "{args:?}");
        } else {
            // A file that is no key: vigil's reason instead of OpenSSL's.
            let hash_line = r_err.lines().next().unwrap();
            assert!(hash_line.starts_with("hash(sha256): "), "{r_err}");
            assert!(v_err.starts_with(hash_line), "{v_err}");
        }
    }
    let stored = get_xattr(&p.join("bare"), "user.ima");
    assert_eq!(
        stored[0], 4,
        "sign --imahash stores the hash before the key fails"
    );
    // A missing .sig file: evmctl's words; vigil then fails (125) where evmctl says 0.
    let args = ["ima_setxattr", "--xattr-user", "bare"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    assert_eq!((code(&v), code(&r)), (125, 0));
    assert!(all_text(&v).starts_with(&all_text(&r)), "{}", all_text(&v));
    // An empty one (or a FIFO, which has no size): the same, and nothing is written.
    std::fs::write(p.join("unsigned"), b"unsigned").unwrap();
    std::fs::write(p.join("unsigned.sig"), b"").unwrap();
    let args = ["ima_setxattr", "--xattr-user", "unsigned"];
    let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
    assert_eq!((code(&v), code(&r)), (125, 0));
    assert_eq!(
        all_text(&v),
        "Reading to unsigned.sig\nFailed to fread 0 bytes: unsigned.sig\n"
    );
    assert_eq!(all_text(&v), all_text(&r));
    let verify = ["ima_verify", "--sigfile", "--key", &c, "unsigned"];
    let (rv, vv) = (evmctl(&verify, p), vevmctl(&verify, p));
    assert_eq!((code(&vv), all_text(&vv)), (code(&rv), all_text(&rv)));
    assert!(all_text(&vv).contains("Failed to fread 0 bytes"));
    std::fs::remove_file(p.join("unsigned.sig")).unwrap();
    mkfifo(&p.join("unsigned.sig"));
    assert_eq!(all_text(&vevmctl(&args, p)), all_text(&v));
    let listed = run(
        Path::new("getfattr"),
        &["-d", "-m", "^user\\.", "unsigned"],
        p,
        None,
    );
    assert_eq!(stdout(&listed), "", "no user.ima written");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// What `ima_clear`/`ima_fix` leave and print, run by `tool` on a fresh tree: the
/// `user.*` xattrs of each file, then exit status and output.
fn fix_clear_run(tool: fn(&[&str], &Path) -> std::process::Output, args: &[&str]) -> String {
    let d = scratch();
    let p = d.path();
    std::fs::create_dir_all(p.join("t/sub")).unwrap();
    for f in ["t/a", "t/sub/b", "t/sub/c"] {
        std::fs::write(p.join(f), f).unwrap();
        set_xattr(&p.join(f), "user.ima", b"\x04\x01");
    }
    for f in ["t/a", "t/sub/c"] {
        set_xattr(&p.join(f), "user.evm", b"\x05\x02");
    }
    std::os::unix::fs::symlink("a", p.join("t/link")).unwrap();
    mkfifo(&p.join("t/fifo"));
    let o = tool(args, p);
    let mut state = String::new();
    for f in ["t/a", "t/sub/b", "t/sub/c"] {
        let names = std::process::Command::new("getfattr")
            .args(["--absolute-names", "-d", "-m", "^user\\."])
            .arg(p.join(f))
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&names.stdout);
        let kept: Vec<_> = listed.lines().filter(|l| l.starts_with("user.")).collect();
        state += &format!("{f}: {kept:?}\n");
    }
    format!(
        "{state}exit {}\nstdout:\n{}stderr:\n{}",
        code(&o),
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `ima_clear` and `ima_fix` as evmctl runs them: what `-r` visits and what `-t`
/// selects (`f` files, `m` one file system, `x` skip labelled files; without `f`
/// nothing), what is removed, the names printed, and failures with their exit status.
#[test]
fn ima_clear_and_ima_fix_as_evmctl() {
    let cases: &[&[&str]] = &[
        &["ima_clear", "--xattr-user", "-r", "t"],
        &["ima_clear", "--xattr-user", "t/sub/b"],
        &["ima_clear", "--xattr-user", "t/missing"],
        &["ima_clear", "--xattr-user", "-r", "-t", "m", "t"],
        &["ima_clear", "--xattr-user", "-r", "-t", "fm", "t"],
        &["ima_clear", "-r", "t"],
        &["ima_clear", "--xattr-user", "-r", "t/a"],
        &["ima_clear"],
        &["ima_fix", "--xattr-user", "-r", "t"],
        &["ima_fix", "--xattr-user", "-r", "-t", "fx", "t"],
        &["ima_fix", "-r", "-t", "x", "t"],
        &["ima_fix", "t/sub/b"],
        &["ima_fix", "t/missing"],
        &["ima_fix", "-r", "t/missing"],
    ];
    for args in cases {
        let theirs = fix_clear_run(evmctl, args);
        assert_eq!(fix_clear_run(vevmctl, args), theirs, "{args:?}");
    }
    // A FIFO named on the command line: evmctl blocks in open(2), vigil does not.
    let d = scratch();
    mkfifo(&d.path().join("fifo"));
    ok(&vevmctl(&["ima_fix", "fifo"], d.path()), "ima_fix FIFO");
    // -t selects for the other commands' walks too.
    let d = scratch();
    let p = d.path();
    std::fs::create_dir(p.join("t")).unwrap();
    std::fs::write(p.join("t/f"), b"f").unwrap();
    for t in ["m", "fm", "x"] {
        let args = ["ima_hash", "-n", "-r", "-t", t, "t"];
        let (r, v) = (evmctl(&args, p), vevmctl(&args, p));
        assert_eq!((stdout(&v), code(&v)), (stdout(&r), code(&r)), "-t {t}");
    }
    // The command evmctl has that vigil does not take says so.
    let v = vevmctl(&["convert", "t/f"], p);
    assert_eq!(code(&v), 125);
    assert!(
        all_text(&v).contains("not supported by vigil"),
        "{}",
        all_text(&v)
    );
}

/// `/etc/keys`, made for a test if missing and removed again if still empty.
struct EtcKeys(bool);

impl EtcKeys {
    fn ensure() -> EtcKeys {
        EtcKeys(std::fs::create_dir("/etc/keys").is_ok())
    }
}

impl Drop for EtcKeys {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::fs::remove_dir("/etc/keys");
        }
    }
}

/// `tool ARGS…` in `cwd` with the directory `keys` over `/etc/keys`, in a mount
/// namespace of its own: evmctl 1.4 reads the HMAC key from
/// `/etc/keys/evm-key-plain` only.
fn with_keys(keys: &Path, tool: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
    let script = r#"mount --bind "$0" /etc/keys && exec "$@""#;
    let (keys, tool) = (keys.to_str().unwrap(), tool.to_str().unwrap());
    let mut argv = vec![
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        keys,
        tool,
    ];
    argv.extend_from_slice(args);
    run(Path::new("unshare"), &argv, cwd, None)
}

/// `hmac`, evmctl's testing command, as evmctl 1.4 runs it: the HMAC printed and
/// stored for files, directories and symlinks, each `-a`, `--m32`, `--smack`,
/// `--xattr-user`, `-n`, `-d`/`-s` first, keys of 1–128 bytes, and every failure
/// with its words and exit status; `--hmackey` reads the key from elsewhere.
#[test]
fn hmac_as_evmctl() {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: security.* xattrs and a mount namespace need root");
        return;
    }
    let _etc_keys = EtcKeys::ensure();
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"measured file").unwrap();
    set_xattr(&p.join("f"), "security.ima", b"\x04\x04abc");
    set_xattr(&p.join("f"), "security.apparmor", b"profile\0");
    set_xattr(&p.join("f"), "security.SMACK64EXEC", b"label");
    std::fs::create_dir(p.join("d")).unwrap();
    set_xattr(&p.join("d"), "user.x", b"1");
    std::os::unix::fs::symlink("f", p.join("l")).unwrap();
    let o = run(
        Path::new("setfattr"),
        &["-h", "-n", "security.ima", "-v", "0x0401", "l"],
        p,
        None,
    );
    ok(&o, "setfattr -h");
    std::fs::write(p.join("bare"), b"no xattrs").unwrap();
    let shm = p.join("shm");
    std::fs::create_dir(&shm).unwrap();
    let mounted = run(
        Path::new("mount"),
        &["-t", "tmpfs", "vigil-test", shm.to_str().unwrap()],
        p,
        None,
    );
    ok(&mounted, "mount tmpfs");
    let _tmpfs = Tmpfs(shm.clone());
    std::fs::write(shm.join("g"), b"on a tmpfs: no generation").unwrap();
    set_xattr(&shm.join("g"), "user.x", b"1");
    let signing_key = key("rsa2048");

    let keys = |name: &str, content: &[u8]| {
        let dir = p.join(name);
        std::fs::create_dir(&dir).unwrap();
        if name != "no-key" {
            std::fs::write(dir.join("evm-key-plain"), content).unwrap();
        }
        dir
    };
    let key32 = keys("key32", &data(32, 1));
    let cases: &[(&Path, &[&str])] = &[
        (&key32, &["hmac", "f"]),
        (&key32, &["-a", "sha1", "hmac", "f"]),
        (&key32, &["-a", "sha1", "--m32", "hmac", "f"]),
        (&key32, &["-n", "-a", "sha512", "hmac", "f"]),
        (&key32, &["--smack", "-a", "sha1", "hmac", "f"]),
        (&key32, &["--xattr-user", "-a", "sha1", "hmac", "f"]),
        (&key32, &["-a", "sha1", "hmac", "d"]),
        (&key32, &["-a", "sha1", "hmac", "l"]),
        (&key32, &["-a", "sha1", "hmac", "bare"]),
        (&key32, &["hmac", "shm/g"]),
        (&key32, &["hmac", "missing"]),
        (&key32, &["hmac"]),
        (&key32, &["-d", "hmac", "missing"]),
        (&key32, &["-d", "-a", "sha1", "hmac", "f"]),
        (&key32, &["-r", "-d", "-a", "sha1", "hmac", "f"]),
        (&key32, &["-s", "--key", &signing_key, "hmac", "f"]),
        (&key32, &["-s", "-d", "--key", &signing_key, "hmac", "f"]),
        (&key32, &["-s", "--key", "missing.pem", "hmac", "f"]),
        (&keys("key128", &data(128, 2)), &["-a", "sha1", "hmac", "f"]),
        (&keys("key129", &data(129, 3)), &["-a", "sha1", "hmac", "f"]),
        (&keys("empty", b""), &["-a", "sha1", "hmac", "f"]),
        (&keys("no-key", b""), &["hmac", "f"]),
    ];
    let evm_values = || {
        ["f", "d", "l"].map(|f| {
            let o = run(
                Path::new("getfattr"),
                &[
                    "-h",
                    "-e",
                    "hex",
                    "-d",
                    "-m",
                    "^(security|user)\\.(evm|ima)$",
                    f,
                ],
                p,
                None,
            );
            stdout(&o)
        })
    };
    for (keys, args) in cases {
        let theirs = with_keys(keys, Path::new(REF_EVMCTL), args, p);
        let their_values = evm_values();
        let ours = with_keys(keys, evmctl_link(), args, p);
        let what = format!("{} {args:?}", keys.display());
        assert_eq!(code(&ours), code(&theirs), "{what}: {}", all_text(&ours));
        assert_eq!(stdout(&ours), stdout(&theirs), "{what}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr),
            "{what}"
        );
        assert_eq!(evm_values(), their_values, "{what}");
    }
    // The value stored: type 0x02 and the HMAC printed, which `--hmackey` finds
    // from a key anywhere.
    let o = vevmctl(
        &[
            "-a",
            "sha1",
            "--hmackey",
            key32.join("evm-key-plain").to_str().unwrap(),
            "hmac",
            "f",
        ],
        p,
    );
    ok(&o, "hmac --hmackey");
    let printed = all_text(&o);
    let mac = printed
        .lines()
        .last()
        .unwrap()
        .strip_prefix("hmac: ")
        .unwrap();
    assert_eq!(
        hex::encode(get_xattr(&p.join("f"), "security.evm")),
        format!("02{mac}")
    );
    assert_eq!(mac.len(), 40);
    // A key file is read as far as its size says: a device gives nothing, at once.
    let o = vevmctl(&["--hmackey", "/dev/zero", "hmac", "f"], p);
    assert_eq!(code(&o), 125);
    assert!(
        all_text(&o).contains("Failed to fread 0 bytes: /dev/zero\n"),
        "{}",
        all_text(&o)
    );
}
