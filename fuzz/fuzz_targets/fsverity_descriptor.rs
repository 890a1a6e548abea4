//! Descriptor and formatted-digest parsing: never panics; what parses re-encodes to
//! the same bytes and yields a consistent tree geometry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fsverity::{parse_formatted_digest, Descriptor, Geometry};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Descriptor::parse(data) {
        assert_eq!(&d.to_bytes()[..], data);
        let _ = d.digest();
        if let Ok(g) = Geometry::new(d.params(), d.data_size()) {
            let _ = g.tree_size();
        }
    }
    if let Ok(f) = parse_formatted_digest(data) {
        assert_eq!(f.formatted(), data);
    }
});
