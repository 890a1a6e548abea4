//! Key formats, passwords and key ids, compared with the installed evmctl.

mod ima_support;
use ima_support::*;

/// The value evmctl and vigil-as-evmctl write for `f` with `extra` options.
fn both(p: &std::path::Path, extra: &[&str]) -> (std::process::Output, std::process::Output) {
    let mut args = vec!["ima_sign", "-n"];
    args.extend_from_slice(extra);
    args.push("f");
    (evmctl(&args, p), vevmctl(&args, p))
}

#[test]
fn private_key_formats() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"key formats").unwrap();
    // RSA: PKCS#1 PEM, PKCS#8 PEM, PKCS#8 DER, encrypted PKCS#8.
    openssl_in(p, &["genrsa", "-traditional", "-out", "pkcs1.pem", "2048"]);
    openssl_in(p, &["pkey", "-in", "pkcs1.pem", "-out", "pkcs8.pem"]);
    openssl_in(
        p,
        &[
            "pkey",
            "-in",
            "pkcs1.pem",
            "-outform",
            "DER",
            "-out",
            "pkcs8.der",
        ],
    );
    openssl_in(
        p,
        &[
            "pkey",
            "-in",
            "pkcs1.pem",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "enc.pem",
        ],
    );
    let (r, v) = both(p, &["--key", "pkcs1.pem"]);
    ok(&r, "evmctl pkcs1");
    ok(&v, "vigil pkcs1");
    let reference = stdout(&r);
    assert_eq!(stdout(&v), reference);
    assert!(stdout(&v).starts_with("030204"));
    for k in ["pkcs8.pem", "pkcs8.der"] {
        let v = vevmctl(&["ima_sign", "-n", "--key", k, "f"], p);
        ok(&v, k);
        assert_eq!(stdout(&v), reference, "{k}");
    }
    // The password must be attached: -psecret, --pass=secret, or the environment.
    for pass in ["-psecret", "--pass=secret"] {
        let (r, v) = both(p, &["--key", "enc.pem", pass]);
        ok(&r, pass);
        ok(&v, pass);
        assert_eq!(stdout(&v), reference, "{pass}");
    }
    let v = std::process::Command::new(vigil_bin())
        .args(["ima", "sign", "-n", "--key", "enc.pem", "f"])
        .env("EVMCTL_KEY_PASSWORD", "secret")
        .current_dir(p)
        .output()
        .unwrap();
    ok(&v, "EVMCTL_KEY_PASSWORD");
    assert_eq!(stdout(&v), format!("{}  f\n", reference.trim_end()));
    // `-p` alone reads the password from standard input.
    let r = evmctl_stdin(
        &["ima_sign", "-n", "-p", "--key", "enc.pem", "f"],
        p,
        b"secret\n",
    );
    let v = vevmctl_stdin(
        &["ima_sign", "-n", "-p", "--key", "enc.pem", "f"],
        p,
        b"secret\n",
    );
    ok(&v, "-p from stdin");
    assert_eq!(stdout(&v), stdout(&r));
    assert_eq!(stdout(&v), reference);
    // No password at all: the key being encrypted, it is asked for (OpenSSL's prompt).
    let args = ["ima_sign", "-n", "--key", "enc.pem", "f"];
    let r = evmctl_stdin(&args, p, b"secret\n");
    let v = vevmctl_stdin(&args, p, b"secret\n");
    ok(&r, "evmctl, password asked for");
    ok(&v, "password asked for");
    assert_eq!(stdout(&v), reference);
    let v = vevmctl(
        &["ima_sign", "-n", "--key", "enc.pem", "--pass=wrong", "f"],
        p,
    );
    assert_eq!(code(&v), 125);
    assert!(all_text(&v).contains("wrong password"), "{}", all_text(&v));
    let v = vigil(&["ima", "sign", "-n", "--key", "enc.pem", "f"], p);
    assert_eq!(code(&v), 2);
    assert!(all_text(&v).contains("encrypted"), "{}", all_text(&v));

    // EC: SEC1 with an EC PARAMETERS block (what `openssl ecparam -genkey` writes).
    openssl_in(
        p,
        &[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-out",
            "sec1.pem",
        ],
    );
    make_cert(p, "sec1.pem", "sec1.der", None);
    let v = vevmctl(&["ima_sign", "--xattr-user", "--key", "sec1.pem", "f"], p);
    ok(&v, "sec1");
    ok(
        &evmctl(&["ima_verify", "--xattr-user", "--key", "sec1.der", "f"], p),
        "evmctl verifies sec1",
    );
    let (r, v) = both(p, &["--key", "sec1.pem"]);
    assert_eq!(stdout(&v)[..14], stdout(&r)[..14], "EC header incl. keyid");

    // Garbage key file.
    std::fs::write(p.join("junk.pem"), b"not a key").unwrap();
    let v = vevmctl(&["ima_sign", "-n", "--key", "junk.pem", "f"], p);
    assert_eq!(code(&v), 125);
    assert!(all_text(&v).contains("junk.pem"));
}

#[test]
fn key_ids() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"key ids").unwrap();
    let k = key("rsa2048");
    // --keyid overrides; evmctl rejects zero and non-hex values.
    let (r, v) = both(p, &["--keyid", "aabbccdd", "--key", &k]);
    assert_eq!(stdout(&v), stdout(&r));
    assert!(stdout(&v).starts_with("030204aabbccdd"));
    for bad in ["0", "xyz", "123456789"] {
        let (r, v) = both(p, &["--keyid", bad, "--key", &k]);
        assert_eq!(code(&v), code(&r), "--keyid {bad}");
        assert_eq!(code(&v), 1);
    }
    // A certificate with a custom SKID: --keyid-from-cert, and appended to the key.
    make_cert(p, &k, "skid.der", Some("1122334412345678"));
    let (r, v) = both(p, &["--keyid-from-cert", "skid.der", "--key", &k]);
    assert_eq!(stdout(&v), stdout(&r));
    assert!(stdout(&v).starts_with("03020412345678"));
    openssl_in(
        p,
        &[
            "x509", "-inform", "DER", "-in", "skid.der", "-out", "skid.crt",
        ],
    );
    let mut with_cert = std::fs::read(&k).unwrap();
    with_cert.extend(std::fs::read(p.join("skid.crt")).unwrap());
    std::fs::write(p.join("with_cert.pem"), with_cert).unwrap();
    let (r, v) = both(p, &["--key", "with_cert.pem"]);
    assert_eq!(stdout(&v), stdout(&r));
    assert!(stdout(&v).starts_with("03020412345678"));
    // Verification matches the certificate's SKID, as the kernel (and evmctl 1.6)
    // do; evmctl 1.4 recomputes the id from the public key and cannot.
    ok(
        &vevmctl(
            &["ima_sign", "--xattr-user", "--key", "with_cert.pem", "f"],
            p,
        ),
        "sign",
    );
    ok(
        &vevmctl(&["ima_verify", "--xattr-user", "--key", "skid.der", "f"], p),
        "SKID match",
    );
    assert_eq!(
        code(&evmctl(
            &["ima_verify", "--xattr-user", "--key", "skid.der", "f"],
            p
        )),
        1
    );
}

/// Key ids with leading zero digits print as evmctl prints them: `%04x` for
/// `--keyid-from-cert`, `%x` in the verification key list (a random key has a
/// one-in-sixteen chance of such an id, so this is pinned with chosen SKIDs).
#[test]
fn key_ids_with_leading_zeros() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"leading zeros").unwrap();
    let k = key("rsa2048");
    make_cert(p, &k, "short.der", Some("1122334400000abc"));
    let (r, v) = both(p, &["--keyid-from-cert", "short.der", "--key", &k]);
    ok(&r, "evmctl --keyid-from-cert");
    ok(&v, "vigil --keyid-from-cert");
    assert_eq!(all_text(&v), all_text(&r));
    assert!(all_text(&v).contains("keyid 0abc (from short.der)"));
    assert!(stdout(&v).starts_with("03020400000abc"));

    // evmctl 1.4 lists the id it computes from the public key, not the SKID, so
    // the list line is checked against the format rather than against evmctl.
    make_cert(p, &k, "zero.der", Some("1122334400abcdef"));
    let v = vevmctl(&["ima_verify", "--xattr-user", "--key", "zero.der", "f"], p);
    assert!(
        all_text(&v).contains("key 1: abcdef zero.der\n"),
        "{}",
        all_text(&v)
    );
}

#[test]
fn verification_key_formats() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"pubkeys").unwrap();
    let k = key("p256");
    ok(
        &vevmctl(&["ima_sign", "--xattr-user", "--key", &k, "f"], p),
        "sign",
    );
    openssl_in(
        p,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            &cert("p256"),
            "-out",
            "cert.pem",
        ],
    );
    openssl_in(p, &["pkey", "-in", &k, "-pubout", "-out", "pub.pem"]);
    openssl_in(
        p,
        &[
            "pkey", "-in", &k, "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
    );
    for vk in [
        cert("p256"),
        "cert.pem".into(),
        "pub.pem".into(),
        "pub.der".into(),
        k.clone(),
    ] {
        ok(
            &vigil(&["ima", "verify", "--xattr-user", "--key", &vk, "f"], p),
            &vk,
        );
        ok(
            &vevmctl(&["ima_verify", "--xattr-user", "--key", &vk, "f"], p),
            &vk,
        );
    }
}

/// `security.ima` (no `--xattr-user`): vigil succeeds exactly when evmctl does (as
/// root with CAP_SYS_ADMIN on a file system with security xattrs), and then both
/// write and read the same value.
#[test]
fn security_namespace() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"security.ima").unwrap();
    let k = key("rsa2048");
    let c = cert("rsa2048");
    let r = evmctl(&["ima_sign", "--key", &k, "f"], p);
    let v = vevmctl(&["ima_sign", "--key", &k, "f"], p);
    assert_eq!(code(&v), code(&r), "{}", all_text(&v));
    if code(&r) == 0 {
        assert_eq!(stdout(&r), stdout(&v));
        assert_eq!(
            hex::encode(get_xattr(&p.join("f"), "security.ima")) + "\n",
            stdout(&v)
        );
        ok(
            &evmctl(&["ima_verify", "--key", &c, "f"], p),
            "evmctl reads security.ima",
        );
        ok(
            &vigil(&["ima", "verify", "--key", &c, "f"], p),
            "vigil reads security.ima",
        );
    } else {
        assert!(
            all_text(&v).contains("Setting IMA sig xattr failed"),
            "{}",
            all_text(&v)
        );
    }
}

/// Key errors name the file once, with the cause once, and call an algorithm vigil
/// lacks by its name rather than "not a certificate".
#[test]
fn key_error_messages() {
    let d = scratch();
    let p = d.path();
    std::fs::write(p.join("f"), b"x").unwrap();
    openssl_in(p, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    openssl_in(
        p,
        &[
            "req", "-new", "-x509", "-key", "ed.pem", "-subj", "/CN=ed", "-outform", "DER", "-out",
            "ed.der",
        ],
    );
    openssl_in(
        p,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-out",
            "k1.pem",
        ],
    );
    let v = vevmctl(&["ima_sign", "-n", "--key", "missing.pem", "f"], p);
    let text = all_text(&v);
    assert_eq!(code(&v), 125);
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );
    assert!(text.contains("missing.pem"), "{text}");
    let v = vevmctl(&["ima_verify", "--key", "ed.der", "f"], p);
    assert!(
        all_text(&v).contains("ed.der: public key algorithm Ed25519"),
        "{}",
        all_text(&v)
    );
    let v = vevmctl(&["ima_sign", "-n", "--key", "k1.pem", "f"], p);
    assert!(
        all_text(&v).contains("k1.pem: elliptic curve secp256k1"),
        "{}",
        all_text(&v)
    );
}

/// A keyring of this test's own, linked into the user keyring and dropped at the end.
struct TestKeyring(i32);

impl TestKeyring {
    const USER_KEYRING: i32 = -4;

    fn new(name: &str) -> Option<TestKeyring> {
        let name = std::ffi::CString::new(format!("{name}-{}", std::process::id())).unwrap();
        // SAFETY: add_key(2) with a NUL-terminated type and description, no payload.
        let serial = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                c"keyring".as_ptr(),
                name.as_ptr(),
                std::ptr::null::<u8>(),
                0usize,
                Self::USER_KEYRING,
            )
        };
        (serial > 0).then_some(TestKeyring(serial as i32))
    }

    /// The `/proc/keys` line of the key with this serial (as printed in decimal).
    fn key_line(&self, serial: &str) -> String {
        let serial: i32 = serial.trim().parse().expect("a key serial on stdout");
        let id = format!("{serial:08x} ");
        std::fs::read_to_string("/proc/keys")
            .unwrap()
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("key {id} not in /proc/keys"))
            .to_owned()
    }
}

impl Drop for TestKeyring {
    fn drop(&mut self) {
        const KEYCTL_INVALIDATE: libc::c_long = 21;
        // SAFETY: keyctl(2) on a keyring this test made.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, self.0) };
    }
}

/// `import` adds a certificate to a kernel keyring as an `asymmetric` key, as evmctl
/// does: the same key (the kernel names it by subject, SKID and key id) from both
/// tools, by decimal and by `0x` serial; vigil also takes PEM, which evmctl does not.
#[test]
fn import_into_a_kernel_keyring() {
    let Some(ring) = TestKeyring::new("vigil-import-test") else {
        eprintln!("skipping: this kernel has no keyrings");
        return;
    };
    let d = scratch();
    let p = d.path();
    let der = cert("rsa2048");
    openssl_in(p, &["x509", "-inform", "DER", "-in", &der, "-out", "c.pem"]);
    let by_decimal = ring.0.to_string();
    let by_hex = format!("0x{:x}", ring.0);

    let r = evmctl(&["import", &der, &by_decimal], p);
    ok(&r, "evmctl import");
    let theirs = ring.key_line(&stdout(&r));
    assert!(theirs.contains(" asymmetri "), "{theirs}");
    for (file, ring_arg) in [
        (der.as_str(), &by_decimal),
        (&der, &by_hex),
        ("c.pem", &by_hex),
    ] {
        let v = vevmctl(&["import", file, ring_arg], p);
        ok(&v, "vigil import");
        let ours = ring.key_line(&stdout(&v));
        // Same type and description; serial and timeout fields differ.
        assert_eq!(
            ours.split_once(" asymmetri ").unwrap().1,
            theirs.split_once(" asymmetri ").unwrap().1
        );
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(err.contains(&format!("into keyring {}", ring.0)), "{err}");
    }
    // What evmctl prints, but for the serial.
    let serial_free = |o: &std::process::Output| {
        let text = all_text(o);
        text.replace(stdout(o).trim(), "SERIAL")
    };
    let v = vevmctl(&["import", &der, &by_decimal], p);
    let r = evmctl(&["import", &der, &by_decimal], p);
    assert_eq!(serial_free(&v), serial_free(&r));
    // The key id without leading zeros (`%x`), as evmctl prints it.
    make_cert(p, &key("rsa2048"), "short.der", Some("1122334400000abc"));
    let v = vevmctl(&["import", "short.der", &by_decimal], p);
    ok(&v, "vigil import short.der");
    assert!(
        all_text(&v).contains("Importing public key abc from file short.der"),
        "{}",
        all_text(&v)
    );

    // A keyring that does not exist, a missing file, a file that is no certificate.
    for args in [
        vec!["import", der.as_str(), "12345"],
        vec!["import", "missing.der", &by_decimal],
        vec!["import", &key("rsa2048"), &by_decimal],
    ] {
        let (v, r) = (vevmctl(&args, p), evmctl(&args, p));
        assert_eq!(code(&v), code(&r), "{args:?}: {}", all_text(&v));
        assert_ne!(code(&v), 0);
        assert_eq!(stdout(&v), "");
    }
    // Refused before anything is added: a keyring name evmctl would have taken as the
    // user keyring, and v1 keys.
    let v = vevmctl(&["import", &der, "@bogus"], p);
    assert_eq!(code(&v), 125);
    assert!(
        all_text(&v).contains("keyring \"@bogus\""),
        "{}",
        all_text(&v)
    );
    let v = vevmctl(&["import", "--rsa", &der, &by_decimal], p);
    assert_eq!(code(&v), 125);
    assert!(all_text(&v).contains("v1"), "{}", all_text(&v));
}
