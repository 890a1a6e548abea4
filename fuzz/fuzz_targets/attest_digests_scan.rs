//! The fast `digests` scanner against serde: whenever the scanner takes a text, serde
//! reads the same map from it; the policy reader's fast path gives exactly the general
//! path's policy or error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_attest::fastjson::scan_digest_map;
use vigil_attest::policy::{DigestMap, RuntimePolicy};

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = scan_digest_map(data) {
        let general: DigestMap =
            serde_json::from_slice(data).expect("the scanner took a text serde rejects");
        assert_eq!(fast, general);
    }
    // The same bytes as the digests value of an otherwise valid policy.
    let mut text = br#"{"meta": {"version": 1, "generator": 3}, "release": 0, "digests": "#.to_vec();
    text.extend_from_slice(data);
    text.extend_from_slice(br#", "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}"#);
    for t in [&text[..], data] {
        match (RuntimePolicy::from_json(t), RuntimePolicy::from_json_general(t)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("fast {a:?} general {b:?}"),
        }
    }
});
