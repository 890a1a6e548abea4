//! Runtime policies, DSSE envelopes and exclude patterns from untrusted bytes: parsing
//! never panics, and a policy that parses re-serialises to text that parses to the same
//! policy; the fast path (copying or pointing into the text) and the general one give
//! the same policy or error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_attest::{dsse, exclude, RuntimePolicy};

fuzz_target!(|data: &[u8]| {
    // The fast path (scanner for `digests`) and the general one agree exactly.
    let general = RuntimePolicy::from_json_general(data);
    let shared: vigil_attest::policy::Source = std::sync::Arc::new(data.to_vec());
    for fast in [RuntimePolicy::from_json(data), RuntimePolicy::from_json_shared(shared)] {
        match (&fast, &general) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("fast {a:?} general {b:?}"),
        }
    }
    if let Ok(p) = RuntimePolicy::from_json(data) {
        let _ = p.validate_schema();
        let text = p.to_json();
        let q = RuntimePolicy::from_json(text.as_bytes()).expect("re-parse of own output");
        assert_eq!(q.to_json(), text);
        if let Ok(e) = exclude::Excludes::new(&p.excludes) {
            for (name, _) in p.digests.iter() {
                let _ = e.matches(name.as_bytes());
            }
        }
    }
    if dsse::is_envelope(data) {
        if let Ok(env) = dsse::parse(data) {
            let _ = dsse::payload_unverified(&env);
            let _ = dsse::verify_with_embedded_certs(&env);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(line) = s.lines().next() {
            let _ = exclude::translate(line);
            let _ = exclude::Excludes::new(&[line.to_owned()]);
        }
    }
});
