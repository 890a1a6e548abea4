//! The measurement-log recovery scan: never panics, never over-allocates, and what it
//! accepts re-encodes to exactly the prefix it claimed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((recs, len)) = vigil_guard::log::scan(data) {
        assert!(len <= data.len());
        let mut again = Vec::new();
        for r in &recs {
            let _ = vigil_guard::log::ascii_line(r);
            vigil_ima::list::binary::encode_record(r, vigil_ima::list::Endian::Little, &mut again);
        }
        assert_eq!(&again[..], &data[..len]);
    }
});
