//! What the mount tests share.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_fs::{Background, Mount, MountOptions};
use vigil_guard::{Config, Guard};

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

/// Mount `src` on `mnt` in the background, through a guard with `cfg` (which gets the
/// real Merkle tree builder) and its state in `scratch`/state.
pub fn mount(src: &Path, mnt: &Path, scratch: &Path, cfg: Config) -> Background {
    let cfg = Config {
        tree_builder: Some(vigil_fs::verity::tree_builder()),
        ..cfg
    };
    let guard = Guard::new(cfg, scratch.join("state")).unwrap();
    Mount::new(MountOptions::new(src, mnt, guard))
        .unwrap()
        .spawn()
        .unwrap()
}
