//! File identity: inode-number reuse never hits a stale entry; handles, fallbacks,
//! stale handles and mount purges.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use common::*;
use vigil_guard::{identity, Error, OpenRequest};

const EXT4_MAGIC: u64 = 0xef53;

/// Delete + create in a loop; every incarnation must get a fresh identity and a
/// measurement of its own content, even when the inode number comes back.
fn reuse_loop(dir: &Path, rounds: usize) -> (usize, u64) {
    let state = scratch();
    let g = guard(state.path(), measure_all());
    let p = dir.join("reused");
    let mut ids = HashSet::new();
    let mut inos = HashSet::new();
    let mut reused = 0;
    let mut magic = 0;
    for i in 0..rounds {
        let content = format!("incarnation {i}");
        std::fs::write(&p, &content).unwrap();
        let f = File::open(&p).unwrap();
        let id = g.identify(f.as_fd()).unwrap();
        magic = id.attrs.fs_magic;
        if !inos.insert(id.attrs.ino) {
            reused += 1;
        }
        assert!(
            ids.insert(id.id.clone()),
            "identity reused at round {i}: {:?}",
            id.id
        );
        let dec = g
            .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
            .unwrap();
        assert_eq!(
            hex::encode(&dec.measurement.unwrap().digest),
            sha256_hex(content.as_bytes()),
            "stale entry hit at round {i}"
        );
        drop(f);
        std::fs::remove_file(&p).unwrap();
    }
    (reused, magic)
}

#[test]
fn inode_reuse_on_this_filesystem() {
    let d = scratch();
    let (reused, magic) = reuse_loop(d.path(), 200);
    if magic == EXT4_MAGIC {
        // ext4 hands the same inode number back at once: the test is meaningful here.
        assert!(reused > 100, "ext4 reused only {reused} inode numbers");
    }
}

#[test]
fn inode_reuse_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm; skipping tmpfs round");
        return;
    }
    let d = tempfile::tempdir_in(shm).unwrap();
    let (_, magic) = reuse_loop(d.path(), 200);
    assert_eq!(magic, 0x0102_1994, "/dev/shm is not tmpfs");
}

#[test]
fn handle_identity_is_stable_across_rename_and_detects_stale() {
    let d = scratch();
    let a = write_file(&d.path().join("a"), b"x");
    let before = identity::identify_path(&a).unwrap();
    assert!(before.id.has_handle());
    let b = d.path().join("b");
    std::fs::rename(&a, &b).unwrap();
    let after = identity::identify_path(&b).unwrap();
    assert_eq!(before.id, after.id, "rename changed the identity");

    // Reopen by handle works while the file exists, is stale once it is gone.
    let dirfd = File::open(d.path()).unwrap();
    let f = identity::reopen(dirfd.as_fd(), &after.id).unwrap();
    assert_eq!(identity::identify_fd(f.as_fd()).unwrap().id, after.id);
    drop(f);
    std::fs::remove_file(&b).unwrap();
    assert!(matches!(
        identity::reopen(dirfd.as_fd(), &after.id),
        Err(Error::Stale)
    ));
}

#[test]
fn attrs_detect_same_size_rewrite() {
    let d = scratch();
    let p = write_file(&d.path().join("c"), b"1111");
    let a1 = identity::identify_path(&p).unwrap();
    std::fs::write(&p, b"2222").unwrap();
    let a2 = identity::identify_path(&p).unwrap();
    assert_eq!(a1.id, a2.id);
    assert!(
        !a1.attrs.same_version(&a2.attrs),
        "same-size rewrite not detected by ctime"
    );
}

#[test]
fn fallback_without_handles() {
    // procfs cannot encode file handles: the inode key is used instead.
    let id = identity::identify_path(Path::new("/proc/self/status")).unwrap();
    assert!(!id.id.has_handle());
    let again = identity::identify_path(Path::new("/proc/self/status")).unwrap();
    assert_eq!(id.id, again.id);
}

#[test]
fn purge_mount_and_forget() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("p"), b"purge me");
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap();
    assert_eq!(g.tracked_files(), 1);
    g.forget(&id.id);
    assert_eq!(g.tracked_files(), 0);
    g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap();
    assert_eq!(g.tracked_files(), 1);
    g.purge_mount(id.id.mount());
    assert_eq!(g.tracked_files(), 0);
    assert!(g.cached(&id.id).is_none());
}

#[test]
fn refresh_is_cheap_and_catches_changes() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("r"), b"one");
    let f = File::open(&p).unwrap();
    let known = g.identify(f.as_fd()).unwrap();
    let again = g.refresh(&known, f.as_fd()).unwrap();
    assert_eq!(again.id, known.id);
    assert_eq!(again.attrs, known.attrs);
    std::fs::write(&p, b"two").unwrap();
    let changed = g.refresh(&known, f.as_fd()).unwrap();
    assert!(!known.attrs.same_version(&changed.attrs));
    let dec = g
        .on_open(&changed, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap();
    assert_eq!(
        hex::encode(&dec.measurement.unwrap().digest),
        sha256_hex(b"two")
    );
}
