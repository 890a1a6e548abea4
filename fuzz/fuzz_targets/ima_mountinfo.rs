//! mountinfo lines: parsing never panics; every parsed entry's fields come from its line
//! (an unescaped field is never longer than the escaped one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::ffi::OsStrExt;
use vigil_ima::mountinfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for m in mountinfo::parse(text) {
        assert!(m.mount_point.as_os_str().as_bytes().len() <= text.len());
        assert!(m.fs_name().len() <= m.fs_type.len());
        let _ = m.fs_subtype();
    }
    assert!(mountinfo::unescape(text).len() <= text.len());
});
