//! The inputs of `vigil runtime-policy create` from untrusted bytes: a measurement
//! list read as Keylime reads it (`-m`, with keyring and ima-buf digests) and a
//! `sha256sum` allowlist (`-a`). Reading and building a policy never panic, and a
//! policy built from them serialises to JSON that parses back to the same policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_attest::generate::{self, CreateInputs, MeasurementList};
use vigil_attest::RuntimePolicy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut map = Default::default();
        let _ = vigil_attest::policy::read_allowlist(text, "fuzz", &mut map);
    }
    let Ok(list) = MeasurementList::read(data, "fuzz") else {
        return;
    };
    let inputs = CreateInputs {
        list: Some(list),
        keyrings: true,
        ima_buf: true,
        ..Default::default()
    };
    if let Ok(policy) = generate::create(inputs, None) {
        let text = policy.to_json();
        let back = RuntimePolicy::from_json(text.as_bytes()).expect("re-parse of own output");
        assert_eq!(back.to_json(), text);
    }
});
