//! Validation of an ASCII list through the prepared, parallel path
//! (`PreparedAscii` + `Validator::validate_ascii`) gives exactly the report of the
//! general path (`list::ascii_items` + `Validator::validate`), for any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_attest::list::{ascii_items, PreparedAscii};
use vigil_attest::policy::RuntimePolicy;
use vigil_attest::validate::ListInfo;
use vigil_attest::{Options, Validator};
use vigil_ima::HashAlgo;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let mut p = RuntimePolicy::default();
    p.digests.push("/a", "ab".repeat(32));
    p.digests.push("/b", "00".repeat(20));
    p.digests.push("boot_aggregate", "00".repeat(32));
    p.digests.push("/u", "AB".repeat(32));
    p.excludes = vec!["/tmp/.*".into()];
    if sel & 4 != 0 {
        p.ima.log_hash_alg = "sha256".into();
    }
    let v = Validator::new(&p, Options::default()).unwrap();
    let bank = if sel & 1 != 0 { HashAlgo::Sha256 } else { HashAlgo::Sha1 };
    let quote = vec![sel; bank.digest_len()];
    let skip = (sel >> 4) as usize;
    let prepared = PreparedAscii::new(text, bank);
    let skip = skip.min(prepared.len());
    let info = ListInfo {
        first_entry: skip as u64,
        boottime: None,
    };
    let q = (sel & 2 != 0).then_some(&quote[..]);
    let general = v.validate(ascii_items(text, skip), bank, q, None, info);
    let fast = v.validate_ascii(&prepared, skip, q, None, info);
    match (general, fast) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("general {a:?} fast {b:?}"),
    }
});
