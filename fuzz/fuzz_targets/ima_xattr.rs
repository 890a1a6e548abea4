//! `security.ima`/`security.evm` values and signature headers: decoding never
//! panics, and what decodes re-encodes to the same bytes (except a type-0x01 md5
//! digest padded to sha1 size, whose canonical form is 17 bytes). Signature values are also
//! run through key-ring verification (empty ring: a clean "unknown keyid" error).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_ima::{ImaXattr, KeyRing, Signature};

fuzz_target!(|data: &[u8]| {
    if let Ok(x) = ImaXattr::decode(data) {
        let padded_md5 = data.len() == 21 && x.hash_algo() == vigil_ima::HashAlgo::Md5;
        if padded_md5 {
            assert_eq!(ImaXattr::decode(&x.encode()).unwrap(), x);
        } else {
            assert_eq!(x.encode(), data);
        }
        let _ = x.hash_algo();
        if let ImaXattr::Signature(s) = &x {
            assert_eq!(&Signature::decode(data).unwrap(), s);
            let digest = vec![0u8; s.hash_algo.digest_len()];
            assert!(KeyRing::new().verify(data, &digest).is_err());
        }
    }
});
