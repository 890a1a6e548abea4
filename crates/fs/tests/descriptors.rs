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
    walk_over_files(true);
}

/// As kernels without `FUSE_NOTIFY_PRUNE` allow: files' dentries dropped by name.
#[test]
fn a_walk_over_more_files_than_the_budget_stays_within_it_without_prune() {
    walk_over_files(false);
}

fn walk_over_files(prune: bool) {
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
        prune,
        ..MountOptions::new(&src, &mnt, guard)
    };
    let bg = Mount::new(opts).unwrap().spawn().unwrap();
    assert!(!bg.forgets_directories() || prune);
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

#[test]
fn a_walk_over_more_directories_than_the_budget_stays_within_it() {
    if !common::can_mount() {
        return;
    }
    const BUDGET: usize = 400;
    let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
    for d in 0..10 {
        for s in 0..300 {
            fs::create_dir_all(src.join(format!("d{d}/s{s}"))).unwrap();
        }
    }
    fs::write(src.join("d0/s0/f"), b"0/0").unwrap();
    fs::create_dir(src.join("mounted-on")).unwrap();
    fs::create_dir(dir.path().join("bound")).unwrap();
    fs::write(dir.path().join("bound/inside"), b"bound").unwrap();
    let guard = Guard::new(Config::default(), dir.path().join("state")).unwrap();
    let opts = MountOptions {
        max_nodes: Some(BUDGET),
        ..MountOptions::new(&src, &mnt, guard)
    };
    let bg = Mount::new(opts).unwrap().spawn().unwrap();
    if !bg.forgets_directories() {
        eprintln!("skipped: the kernel cannot be asked to forget directories (FUSE 7.45)");
        bg.unmount().unwrap();
        return;
    }
    // What the kernel uses stays: a working directory (getcwd must still name it) and
    // a directory something is mounted on.
    let cwd = mnt.join("d0/s0");
    let mut inside = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys; sys.stdin.readline(); print(os.getcwd()); print(open('f').read())",
        ])
        .current_dir(&cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
        for s in 0..300 {
            // Empty directories: nothing but the directories themselves to forget.
            let p = mnt.join(format!("d{d}/s{s}"));
            assert!(fs::metadata(&p).unwrap().is_dir());
            most = most.max(bg.nodes());
        }
    }
    assert!(most < 2 * BUDGET, "{most} nodes for a budget of {BUDGET}");
    let t0 = Instant::now();
    while bg.nodes() > BUDGET && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(bg.nodes() <= BUDGET, "{} nodes", bg.nodes());
    use std::io::Write;
    inside.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = inside.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n0/0\n", cwd.display())
    );
    assert_eq!(
        fs::read(target.join("inside")).unwrap(),
        b"bound",
        "the bind mount was detached"
    );
    run("umount", &[&target]);
    bg.unmount().unwrap();
}
