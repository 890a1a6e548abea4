//! Key and certificate parsing (PEM and DER, private and public, encrypted PKCS#8):
//! never panics. Keys that parse can sign and verify their own signature.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ima::{HashAlgo, PrivateKey, PublicKey};

fuzz_target!(|data: &[u8]| {
    let _ = PublicKey::from_bytes(data, "fuzz");
    let _ = vigil_ima::keys::keyid_from_cert(data, "fuzz");
    if let Ok(k) = PrivateKey::from_bytes(data, Some(b"pw"), "fuzz") {
        let digest = HashAlgo::Sha256.digest(b"fuzz").unwrap();
        if let Ok(sig) = k.sign_raw(HashAlgo::Sha256, &digest) {
            k.public_key()
                .verify_digest(HashAlgo::Sha256, &digest, &sig)
                .expect("a key verifies its own signature");
        }
    }
});
