//! What the mount tests share.

use std::fs;
use std::path::{Path, PathBuf};

/// FUSE mounts need root and /dev/fuse; without them the tests say so and pass.
pub fn can_mount() -> bool {
    // SAFETY: trivial getter.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: FUSE mounts need root and /dev/fuse");
        return false;
    }
    true
}

/// A scratch directory beside the build (on the disk's file system, not /tmp) holding
/// the given subdirectories, empty; it goes when the returned handle is dropped.
pub fn scratch<const N: usize>(subdirs: [&str; N]) -> (tempfile::TempDir, [PathBuf; N]) {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fs-tests");
    fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(fs::canonicalize(base).unwrap()).unwrap();
    let paths = subdirs.map(|n| dir.path().join(n));
    for p in &paths {
        fs::create_dir(p).unwrap();
    }
    (dir, paths)
}
