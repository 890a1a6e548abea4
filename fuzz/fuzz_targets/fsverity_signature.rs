//! PKCS#7 builtin-signature parsing and key/certificate PEM reading: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fsverity::{certificate_from_pem, parse_signature, SigningKey};

fuzz_target!(|data: &[u8]| {
    let _ = parse_signature(data);
    let _ = SigningKey::from_pkcs8_der(data);
    let _ = SigningKey::from_pem(data);
    let _ = certificate_from_pem(data);
});
