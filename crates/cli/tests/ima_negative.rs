//! Verification failures: tampered files, wrong keys and corrupt values exit 1 with a
//! message naming the problem, in `vigil ima verify` and in the evmctl front door
//! (whose exit status is compared with the installed evmctl).

mod ima_support;
use ima_support::*;

struct Case {
    name: &'static str,
    /// Make the bad state from a good signed file.
    corrupt: fn(&std::path::Path, Vec<u8>),
    /// Text the diagnostic must contain.
    message: &'static str,
    /// What the evmctl front door says instead, in evmctl's words, if different.
    evmctl_message: Option<&'static str>,
    /// Whether evmctl 1.4 rejects it too. It ignores `sig_size` for RSA, which the
    /// kernel (`asymmetric_verify`) checks.
    ref_fails: bool,
}

fn set(p: &std::path::Path, v: &[u8]) {
    set_xattr(p, "user.ima", v);
}

const CASES: &[Case] = &[
    Case {
        name: "tampered file",
        corrupt: |p, _| std::fs::write(p, b"tampered contents").unwrap(),
        message: "does not match",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "flipped signature byte",
        corrupt: |p, mut v| {
            let n = v.len() - 1;
            v[n] ^= 0x40;
            set(p, &v)
        },
        message: "does not match",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "unknown keyid",
        corrupt: |p, mut v| {
            v[3..7].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            set(p, &v)
        },
        message: "unknown keyid",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "truncated signature",
        corrupt: |p, v| set(p, &v[..6]),
        message: "truncated signature",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "short signature body",
        corrupt: |p, v| set(p, &v[..v.len() - 10]),
        message: "bad sig_size",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "bad sig_size",
        corrupt: |p, mut v| {
            v[7] = 0x7f;
            set(p, &v)
        },
        message: "bad sig_size",
        ref_fails: false,
        evmctl_message: None,
    },
    Case {
        name: "unknown hash algorithm",
        corrupt: |p, mut v| {
            v[2] = 0x30;
            set(p, &v)
        },
        message: "unknown hash algorithm id 48",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "wrong hash algorithm",
        corrupt: |p, mut v| {
            v[2] = 2;
            set(p, &v)
        },
        message: "does not match",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "unsupported version",
        corrupt: |p, mut v| {
            v[1] = 1;
            set(p, &v)
        },
        message: "unsupported signature version 1",
        ref_fails: true,
        evmctl_message: None,
    },
    Case {
        name: "garbage xattr",
        corrupt: |p, _| set(p, b"\x99garbage"),
        message: "unknown xattr type 0x99",
        ref_fails: true,
        evmctl_message: Some("f: xattr ima has no signature"),
    },
];

#[test]
fn corrupt_values_fail_with_named_problem() {
    let d = scratch();
    let p = d.path();
    for signer in ["rsa2048", "p256"] {
        let c = cert(signer);
        for case in CASES {
            let f = p.join("f");
            std::fs::write(&f, data(777, 5)).unwrap();
            ok(
                &vevmctl(&["ima_sign", "--xattr-user", "--key", &key(signer), "f"], p),
                "sign",
            );
            let good = get_xattr(&f, "user.ima");
            (case.corrupt)(&f, good);
            let what = format!("{signer}: {}", case.name);

            let r = evmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
            if case.ref_fails {
                assert_eq!(code(&r), 1, "{what}: reference evmctl should fail too");
            }
            let v = vevmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
            assert_eq!(code(&v), 1, "{what}: {}", all_text(&v));
            assert!(
                all_text(&v).contains(case.evmctl_message.unwrap_or(case.message)),
                "{what}: {}",
                all_text(&v)
            );

            let n = vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p);
            assert_eq!(code(&n), 1, "{what}: {}", all_text(&n));
            let out = stdout(&n);
            assert!(
                out.contains("f: FAILED") && out.contains(case.message),
                "{what}: {out}"
            );
            std::fs::remove_file(&f).unwrap();
        }
    }
}

#[test]
fn missing_and_hash_values() {
    let d = scratch();
    let p = d.path();
    let c = cert("rsa2048");
    std::fs::write(p.join("f"), b"no xattr").unwrap();
    let v = vevmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
    assert_eq!(code(&v), 1);
    assert!(
        all_text(&v).contains("getxattr failed: f\nerrno: No data available (61)\n"),
        "{}",
        all_text(&v)
    );
    let n = vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p);
    assert_eq!(code(&n), 1);
    // The path once, at the start of the line.
    assert!(
        stdout(&n).starts_with("f: FAILED: user.ima: "),
        "{}",
        stdout(&n)
    );

    // A hash value verifies as a hash in vigil, but is no signature for evmctl.
    ok(&vevmctl(&["ima_hash", "--xattr-user", "f"], p), "ima_hash");
    let v = vevmctl(&["ima_verify", "--xattr-user", "--key", &c, "f"], p);
    assert_eq!(
        code(&v),
        code(&evmctl(
            &["ima_verify", "--xattr-user", "--key", &c, "f"],
            p
        ))
    );
    assert_eq!(code(&v), 1);
    assert!(all_text(&v).contains("has no signature"));
    let n = vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p);
    ok(&n, "hash value verifies");
    assert!(stdout(&n).contains("OK (sha256 hash)"), "{}", stdout(&n));
    let n = vigil(
        &[
            "ima",
            "verify",
            "--require-signature",
            "--xattr-user",
            "--key",
            &c,
            "f",
        ],
        p,
    );
    assert_eq!(code(&n), 1);
    std::fs::write(p.join("f"), b"changed").unwrap();
    let n = vigil(&["ima", "verify", "--xattr-user", "--key", &c, "f"], p);
    assert_eq!(code(&n), 1);
    assert!(stdout(&n).contains("hash does not match"), "{}", stdout(&n));

    // Without -k, a missing default certificate fails only signed files.
    if !std::path::Path::new("/etc/keys/x509_evm.der").exists() {
        std::fs::write(p.join("g"), b"hashed").unwrap();
        std::fs::write(p.join("s"), b"signed").unwrap();
        ok(&vevmctl(&["ima_hash", "--xattr-user", "g"], p), "ima_hash");
        let k = key("rsa2048");
        ok(
            &vevmctl(&["ima_sign", "--xattr-user", "--key", &k, "s"], p),
            "ima_sign",
        );
        let n = vigil(&["ima", "verify", "--xattr-user", "g"], p);
        ok(&n, "hash value without a key");
        let n = vigil(&["ima", "verify", "--xattr-user", "g", "s"], p);
        assert_eq!(code(&n), 1);
        assert!(stdout(&n).contains("g: OK (sha256 hash)"), "{}", stdout(&n));
        assert!(
            stdout(&n).contains("s: FAILED: no verification key (-k): /etc/keys/x509_evm.der"),
            "{}",
            stdout(&n)
        );
    }

    // Unreadable keys are a usage error (2), not a verification failure.
    let n = vigil(
        &[
            "ima",
            "verify",
            "--xattr-user",
            "--key",
            "/nonexistent.der",
            "f",
        ],
        p,
    );
    assert_eq!(code(&n), 2);
    assert!(all_text(&n).contains("/nonexistent.der"));
    // The OS error once, although the key error also gives it as its source.
    assert_eq!(
        all_text(&n).matches("os error 2").count(),
        1,
        "{}",
        all_text(&n)
    );
}

#[test]
fn show_explains_and_flags_garbage() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"abc").unwrap();
    ok(
        &vevmctl(
            &["ima_sign", "--xattr-user", "--key", &key("rsa2048"), "f"],
            p,
        ),
        "sign",
    );
    let s = vigil(&["ima", "show", "--xattr-user", "f"], p);
    ok(&s, "show");
    let out = stdout(&s);
    assert!(out.contains("type: 0x03 EVM_IMA_XATTR_DIGSIG"), "{out}");
    assert!(
        out.contains("version: 2") && out.contains("algorithm: sha256"),
        "{out}"
    );
    let s = vigil(
        &[
            "ima",
            "show",
            "--hex",
            "0404ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ],
        p,
    );
    ok(&s, "show --hex");
    assert!(stdout(&s).contains("digest: ba7816bf"));
    let s = vigil(&["ima", "show", "--hex", "030204aabbccdd0005aa"], p);
    assert_eq!(code(&s), 1);
    assert!(
        stdout(&s).contains("invalid: bad sig_size"),
        "{}",
        stdout(&s)
    );
}

#[test]
fn show_goes_on_after_a_file_without_values() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("none"), b"x").unwrap();
    std::fs::write(p.join("f"), b"abc").unwrap();
    ok(&vevmctl(&["ima_hash", "--xattr-user", "f"], p), "ima_hash");
    let s = vigil(&["ima", "show", "--xattr-user", "none", "f"], p);
    assert_eq!(code(&s), 1);
    assert!(stdout(&s).contains("f user.ima:"), "{}", stdout(&s));
    assert!(
        all_text(&s).contains("none: no user.ima or user.evm"),
        "{}",
        all_text(&s)
    );
    // An unreadable file: 2, the others still shown.
    let s = vigil(&["ima", "show", "--xattr-user", "missing", "f"], p);
    assert_eq!(code(&s), 2);
    assert!(stdout(&s).contains("f user.ima:"), "{}", stdout(&s));
}

#[test]
fn hash_json_has_the_digest() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("abc"), b"abc").unwrap();
    let o = vigil(&["ima", "hash", "-n", "--json", "abc"], p);
    ok(&o, "hash --json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sha256_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(v[0]["digest"], sha256_abc);
    assert_eq!(v[0]["value"], format!("0404{sha256_abc}"));
    assert_eq!(v[0]["algo"], "sha256");
}

#[test]
fn endless_key_and_signature_files_are_refused() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"data").unwrap();
    // /dev/zero never ends: every reader of a key, certificate or signature file must
    // stop at its limit and name the file, not fill memory.
    for args in [
        &["ima", "verify", "--key", "/dev/zero", "f"][..],
        &["ima", "sign", "--key", "/dev/zero", "f"],
        &[
            "sign",
            "f",
            "f.sig",
            "--key",
            "/dev/zero",
            "--cert",
            "/dev/zero",
        ],
    ] {
        let o = vigil(args, p);
        assert_eq!(code(&o), 2, "{args:?}: {}", all_text(&o));
        assert!(
            all_text(&o).contains("/dev/zero") && all_text(&o).contains("larger than"),
            "{args:?}: {}",
            all_text(&o)
        );
    }
    let v = vevmctl(&["ima_verify", "--key", "/dev/zero", "f"], p);
    assert_ne!(code(&v), 0, "{}", all_text(&v));
    // A detached signature file larger than any xattr value.
    std::fs::write(p.join("f.sig"), vec![3u8; 70_000]).unwrap();
    let o = vigil(
        &["ima", "verify", "--sigfile", "--key", &cert("rsa2048"), "f"],
        p,
    );
    assert_eq!(code(&o), 1, "{}", all_text(&o));
    assert!(
        all_text(&o).contains("f: FAILED: f.sig: signature file: larger than 65536 bytes"),
        "{}",
        all_text(&o)
    );
}
