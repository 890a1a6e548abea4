//! The daemon holds a descriptor for every file the kernel knows through the mount;
//! past its budget it asks the kernel to forget some, so that a walk over more files
//! than the limit of open files allows does not fail with EMFILE.
//!
//! Needs root and /dev/fuse; skipped otherwise.

use std::fs;
use std::time::{Duration, Instant};

mod common;

use vigil_fs::{Mount, MountOptions};
use vigil_guard::{Config, Guard};

#[test]
fn a_walk_over_more_files_than_the_budget_stays_within_it() {
    if !common::can_mount() {
        return;
    }
    const BUDGET: usize = 400;
    let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
    for d in 0..10 {
        let sub = src.join(format!("d{d}"));
        fs::create_dir(&sub).unwrap();
        for i in 0..300 {
            fs::write(sub.join(format!("f{i}")), format!("{d}/{i}")).unwrap();
        }
    }
    let guard = Guard::new(Config::default(), dir.path().join("state")).unwrap();
    let opts = MountOptions {
        max_nodes: Some(BUDGET),
        ..MountOptions::new(&src, &mnt, guard)
    };
    let bg = Mount::new(opts).unwrap().spawn().unwrap();
    // A file something is mounted on keeps its dentry (dropping it would detach the
    // mount).
    fs::write(src.join("mounted-on"), b"under").unwrap();
    fs::write(dir.path().join("bound"), b"bound").unwrap();
    let target = mnt.join("mounted-on");
    let run = |cmd: &str, args: &[&std::path::Path]| {
        let ok = std::process::Command::new(cmd).args(args).status().unwrap();
        assert!(ok.success(), "{cmd} {args:?}");
    };
    run(
        "mount",
        &["--bind".as_ref(), &dir.path().join("bound"), &target],
    );
    let mut most = 0;
    for d in 0..10 {
        for i in 0..300 {
            let p = mnt.join(format!("d{d}/f{i}"));
            // A lookup, an open and a read of each: none may fail.
            assert_eq!(fs::read_to_string(&p).unwrap(), format!("{d}/{i}"));
            most = most.max(bg.nodes());
        }
    }
    // The kernel forgets asynchronously: lookups may run ahead of it for a while,
    // but not by thousands.
    assert!(most < 2 * BUDGET, "{most} nodes for a budget of {BUDGET}");
    let t0 = Instant::now();
    while bg.nodes() > BUDGET && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(bg.nodes() <= BUDGET, "{} nodes", bg.nodes());
    assert_eq!(
        fs::read(&target).unwrap(),
        b"bound",
        "the bind mount was detached"
    );
    run("umount", &[&target]);
    assert_eq!(fs::read(&target).unwrap(), b"under");
    bg.unmount().unwrap();
}
