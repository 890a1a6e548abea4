//! Builtin signatures against fsverity-utils and OpenSSL, with keys generated at test
//! time by `openssl`: RSA signatures byte-identical to `fsverity sign`, ECDSA ones
//! accepted both ways.

use std::path::Path;
use std::process::Command;

use vigil_fsverity::{
    build_tree_from_slice, certificate_from_pem, parse_signature, sign, verify, HashAlg, Params,
    SigningKey,
};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Make a key and self-signed certificate with openssl; `kind` is an openssl
/// `-newkey` argument (`rsa:2048`, `ec`).
fn keypair(dir: &Path, name: &str, newkey: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "7",
            "-subj",
            "/CN=vigil test/O=vigil",
        ])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (key, cert)
}

fn fsverity_sign(file: &Path, key: &Path, cert: &Path, out: &Path, extra: &[&str]) -> Vec<u8> {
    run(Command::new("fsverity")
        .arg("sign")
        .arg(file)
        .arg(out)
        .arg(format!("--key={}", key.display()))
        .arg(format!("--cert={}", cert.display()))
        .args(extra));
    std::fs::read(out).unwrap()
}

#[test]
fn rsa_signatures_are_byte_identical_to_fsverity_sign() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path(), "rsa", &["-newkey", "rsa:2048"]);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("data");
    std::fs::write(&file, &data).unwrap();
    let sk = SigningKey::from_pem(&std::fs::read(&key).unwrap()).unwrap();
    let crt = certificate_from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    // A PKCS#1 ("BEGIN RSA PRIVATE KEY") copy of the same key signs identically.
    let pkcs1 = dir.path().join("rsa1.key");
    run(Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pkcs1));
    let sk1 = SigningKey::from_pem(&std::fs::read(&pkcs1).unwrap()).unwrap();
    for (alg, bs, salt, extra) in [
        (HashAlg::Sha256, 4096, &b""[..], &[][..]),
        (
            HashAlg::Sha512,
            1024,
            b"\x12\x34\x56\x78",
            &["--hash-alg=sha512", "--block-size=1024", "--salt=12345678"][..],
        ),
    ] {
        let params = Params::new(alg, bs, salt).unwrap();
        let digest = build_tree_from_slice(&data, &params).digest();
        let want = fsverity_sign(&file, &key, &cert, &dir.path().join("sig"), extra);
        let ours = sign(&digest, &sk, &crt).unwrap();
        assert_eq!(ours, want, "{alg}");
        assert_eq!(sign(&digest, &sk1, &crt).unwrap(), want);
        verify(&digest, &want, &crt).unwrap();
        // Another file's digest does not verify.
        let other = build_tree_from_slice(&data[1..], &params).digest();
        assert!(verify(&other, &want, &crt).is_err());
        parse_signature(&want).unwrap();
    }
}

#[test]
fn ecdsa_round_trips_with_fsverity_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for (name, curve) in [("p256", "prime256v1"), ("p384", "secp384r1")] {
        let (key, cert) = keypair(
            dir.path(),
            name,
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
        );
        let data = vec![0x5a; 12345];
        let file = dir.path().join("data");
        std::fs::write(&file, &data).unwrap();
        let sk = SigningKey::from_pem(&std::fs::read(&key).unwrap()).unwrap();
        let crt = certificate_from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let digest = build_tree_from_slice(&data, &Params::default()).digest();
        // fsverity-utils' signature verifies with vigil.
        let theirs = fsverity_sign(&file, &key, &cert, &dir.path().join("sig"), &[]);
        verify(&digest, &theirs, &crt).unwrap();
        // Also over a SHA-512 tree (message digest SHA-512, truncated for the curve).
        let p512 = Params::new(HashAlg::Sha512, 4096, b"").unwrap();
        let d512 = build_tree_from_slice(&data, &p512).digest();
        let theirs = fsverity_sign(
            &file,
            &key,
            &cert,
            &dir.path().join("sig"),
            &["--hash-alg=sha512"],
        );
        verify(&d512, &theirs, &crt).unwrap();
        verify(&d512, &sign(&d512, &sk, &crt).unwrap(), &crt).unwrap();
        assert!(verify(&digest, &theirs, &crt).is_err());
        // vigil's signature verifies with OpenSSL (what the kernel's PKCS#7 code accepts).
        let ours = sign(&digest, &sk, &crt).unwrap();
        verify(&digest, &ours, &crt).unwrap();
        let sig = dir.path().join("ours.sig");
        let content = dir.path().join("formatted");
        std::fs::write(&sig, &ours).unwrap();
        std::fs::write(&content, digest.formatted()).unwrap();
        run(Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-noverify",
                "-in",
            ])
            .arg(&sig)
            .arg("-content")
            .arg(&content)
            .arg("-certfile")
            .arg(&cert)
            .args(["-out", "/dev/null"]));
        let mut tampered = ours.clone();
        let n = tampered.len();
        tampered[n - 3] ^= 1;
        assert!(verify(&digest, &tampered, &crt).is_err());
    }
}

#[test]
fn signed_attributes_are_checked() {
    // `openssl cms -sign` without -noattr adds contentType, signingTime, messageDigest.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keypair(dir.path(), "rsa", &["-newkey", "rsa:2048"]);
    let crt = certificate_from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let digest = build_tree_from_slice(b"abc", &Params::default()).digest();
    let content = dir.path().join("formatted");
    std::fs::write(&content, digest.formatted()).unwrap();
    let sig = dir.path().join("attr.sig");
    run(Command::new("openssl")
        .args([
            "cms", "-sign", "-binary", "-outform", "DER", "-nocerts", "-md", "sha256", "-in",
        ])
        .arg(&content)
        .arg("-signer")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-out")
        .arg(&sig));
    let der = std::fs::read(&sig).unwrap();
    verify(&digest, &der, &crt).unwrap();
    let other = build_tree_from_slice(b"abd", &Params::default()).digest();
    assert!(verify(&other, &der, &crt).is_err());
}

#[test]
fn key_must_match_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (key_a, _) = keypair(dir.path(), "a", &["-newkey", "rsa:2048"]);
    let (_, cert_b) = keypair(dir.path(), "b", &["-newkey", "rsa:2048"]);
    let sk = SigningKey::from_pem(&std::fs::read(key_a).unwrap()).unwrap();
    let crt = certificate_from_pem(&std::fs::read(cert_b).unwrap()).unwrap();
    let digest = build_tree_from_slice(b"x", &Params::default()).digest();
    assert!(sign(&digest, &sk, &crt).is_err());
    assert!(SigningKey::from_pem(b"not a key").is_err());
    assert!(parse_signature(b"\x30\x03\x02\x01\x01").is_err());
}
