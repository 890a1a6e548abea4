//! DSSE envelopes with keys made by openssl: ECDSA P-256/P-384 (Keylime's `ecdsa` and
//! `x509` backends) and RSA.

use std::path::Path;
use std::process::Command;

use vigil_attest::dsse::{self, PrivateKey, PublicKey, Signer, KEYLIME_PAYLOAD_TYPE};
use vigil_attest::{Error, RuntimePolicy};

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

/// (private key PEM, public key PEM) for `kind`.
fn keypair(dir: &Path, kind: &str) -> (Vec<u8>, Vec<u8>) {
    let key = format!("{kind}.key");
    let pubk = format!("{kind}.pub");
    match kind {
        "p256" => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        ),
        "p384" => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                &key,
            ],
        ),
        "sec1" => openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        ),
        "rsa" => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key,
            ],
        ),
        _ => unreachable!(),
    }
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-out", &pubk]);
    (
        std::fs::read(dir.join(key)).unwrap(),
        std::fs::read(dir.join(pubk)).unwrap(),
    )
}

fn policy_text() -> Vec<u8> {
    let mut p = RuntimePolicy::default();
    p.digests
        .push("/usr/bin/true", "0123456789abcdef0123456789abcdef01234567");
    p.to_json().into_bytes()
}

#[test]
fn sign_and_verify_each_key_type() {
    let dir = tempfile::tempdir().unwrap();
    let payload = policy_text();
    let (_, other_pub) = keypair(dir.path(), "p384");
    let other = PublicKey::from_pem_or_cert(&other_pub, "other").unwrap();
    for kind in ["p256", "p384", "sec1", "rsa"] {
        let (sk, pk) = keypair(dir.path(), kind);
        let key = PrivateKey::from_pem(&sk, kind).unwrap();
        let public = PublicKey::from_pem_or_cert(&pk, kind).unwrap();
        // Our PEM of the public key is openssl's, byte for byte (Keylime's keyid hashes it).
        assert_eq!(public.to_pem().as_bytes(), &pk[..], "{kind}");
        let text = Signer::new(key)
            .sign(KEYLIME_PAYLOAD_TYPE, &payload)
            .unwrap();
        assert!(text.starts_with(r#"{"payload": ""#), "{text}");
        assert!(dsse::is_envelope(text.as_bytes()));
        // The key spelled with JSON escapes is still the `payload` key.
        let escaped = text.replace(r#""payload"#, r#""p\u0061yload"#);
        assert!(!escaped.contains("payload"), "{escaped}");
        assert!(dsse::is_envelope(escaped.as_bytes()));
        let env = dsse::parse(text.as_bytes()).unwrap();
        assert_eq!(env.payload_type, KEYLIME_PAYLOAD_TYPE);
        assert_eq!(
            env.signatures[0].keyid.as_deref(),
            Some(public.keyid().as_str())
        );
        assert_eq!(
            dsse::verify(&env, std::slice::from_ref(&public)).unwrap(),
            payload
        );
        assert!(matches!(
            dsse::verify(&env, std::slice::from_ref(&other)),
            Err(Error::DsseNoValidSignature)
        ));
        // Any change of payload or type breaks it.
        let mut bad = env.clone();
        bad.payload = base64_of(&[&payload[..], b" "].concat());
        assert!(dsse::verify(&bad, std::slice::from_ref(&public)).is_err());
        let mut bad = env.clone();
        bad.payload_type = "application/json".into();
        assert!(dsse::verify(&bad, &[public]).is_err());
    }
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn x509_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, _) = keypair(dir.path(), "p256");
    openssl(
        dir.path(),
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "p256.key",
            "-subj",
            "/CN=dsse_lib",
            "-days",
            "30",
            "-out",
            "cert.pem",
        ],
    );
    let cert = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let key = PrivateKey::from_pem(&sk, "key").unwrap();
    let text = Signer::with_certificate(key, &cert)
        .unwrap()
        .sign(KEYLIME_PAYLOAD_TYPE, b"{}")
        .unwrap();
    let env = dsse::parse(text.as_bytes()).unwrap();
    // keyid = base64 of the certificate PEM.
    assert_eq!(
        env.signatures[0].keyid.as_deref(),
        Some(base64_of(&cert).as_str())
    );
    let (payload, certs) = dsse::verify_with_embedded_certs(&env).unwrap();
    assert_eq!(payload, b"{}");
    assert_eq!(certs.len(), 1);
    // The certificate also works as the trusted key.
    let pk = PublicKey::from_pem_or_cert(&cert, "cert").unwrap();
    dsse::verify(&env, &[pk]).unwrap();
    // A certificate for another key is refused when signing.
    let (sk2, _) = keypair(dir.path(), "p384");
    assert!(Signer::with_certificate(PrivateKey::from_pem(&sk2, "k").unwrap(), &cert).is_err());
}

#[test]
fn keylime_b64dec_quirk_and_bad_envelopes() {
    // A payload that is valid hex is decoded as hex, as Keylime's b64dec does.
    assert_eq!(dsse::b64dec("7b7d").unwrap(), b"{}");
    assert_eq!(dsse::b64dec("e30=").unwrap(), b"{}");
    assert!(dsse::b64dec("e30_").is_ok());
    assert!(dsse::b64dec("!!").is_err());
    assert!(matches!(
        dsse::parse(b"{\"payload\": 1}"),
        Err(Error::Json { .. })
    ));
    assert!(!dsse::is_envelope(b"{\"payload\": \"\"}"));
    assert!(!dsse::is_envelope(&policy_text()));
    assert!(PrivateKey::from_pem(b"garbage", "k").is_err());
    assert!(PublicKey::from_pem_or_cert(b"-----BEGIN FOO-----\n-----END FOO-----\n", "k").is_err());
}
