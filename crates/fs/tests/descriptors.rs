//! The daemon holds a descriptor for every file the kernel knows through the mount;
//! past its budget it asks the kernel to forget some, so that a walk over more files
//! and directories than the limit of open files allows does not fail with EMFILE.
//!
//! Needs root and /dev/fuse; skipped otherwise.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use vigil_fs::{Background, Mount, MountOptions};
use vigil_guard::{Config, Guard};

const BUDGET: usize = 400;

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
    let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
    for d in 0..10 {
        let sub = src.join(format!("d{d}"));
        fs::create_dir(&sub).unwrap();
        for i in 0..300 {
            fs::write(sub.join(format!("f{i}")), format!("d{d}/f{i}")).unwrap();
        }
    }
    // A file something is mounted on keeps its dentry (dropping it would detach the
    // mount).
    fs::write(src.join("mounted-on"), b"under").unwrap();
    fs::write(dir.path().join("bound"), b"bound").unwrap();
    let bg = mount(dir.path(), &src, &mnt, prune);
    assert!(!bg.forgets_directories() || prune);
    let target = bind_mount(&dir.path().join("bound"), &mnt.join("mounted-on"));
    let files = (0..10).flat_map(|d| (0..300).map(move |i| format!("d{d}/f{i}")));
    within_budget(&bg, files, |name| {
        // A lookup, an open and a read of each: none may fail.
        assert_eq!(fs::read_to_string(mnt.join(name)).unwrap(), name);
    });
    still_bound_then_unbind(&target, &target);
    assert_eq!(fs::read(&target).unwrap(), b"under");
    bg.unmount().unwrap();
}

#[test]
fn a_walk_over_more_directories_than_the_budget_stays_within_it() {
    if !common::can_mount() {
        return;
    }
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
    let bg = mount(dir.path(), &src, &mnt, true);
    if !bg.forgets_directories() {
        eprintln!("skipped: the kernel cannot be asked to forget directories (FUSE 7.45)");
        bg.unmount().unwrap();
        return;
    }
    // What the kernel uses stays: a working directory (getcwd must still name it) and
    // a directory something is mounted on.
    let cwd = mnt.join("d0/s0");
    let mut inside = Command::new("python3")
        .args([
            "-c",
            "import os, sys; sys.stdin.readline(); print(os.getcwd()); print(open('f').read())",
        ])
        .current_dir(&cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let target = bind_mount(&dir.path().join("bound"), &mnt.join("mounted-on"));
    // Empty directories: nothing but the directories themselves to forget.
    let dirs = (0..10).flat_map(|d| (0..300).map(move |s| format!("d{d}/s{s}")));
    within_budget(&bg, dirs, |name| {
        assert!(fs::metadata(mnt.join(name)).unwrap().is_dir());
    });
    inside.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = inside.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n0/0\n", cwd.display())
    );
    still_bound_then_unbind(&target, &target.join("inside"));
    bg.unmount().unwrap();
}

/// Read-only handles of a file share the daemon's descriptor of it, so a file held open
/// by many at once (a library every process maps) costs one descriptor, not one per
/// handle; a writable handle has its own.
#[test]
fn read_only_handles_of_a_file_share_one_descriptor() {
    if !common::can_mount() {
        return;
    }
    let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
    let backing = src.join("lib");
    fs::write(&backing, b"0123456789").unwrap();
    let bg = mount(dir.path(), &src, &mnt, true);
    // The daemon runs in this process: its descriptors of the backing file are this
    // process's descriptors that name it (the node's O_PATH one among them).
    let daemon_fds = || {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .filter(|target| *target == backing)
            .count()
    };
    let settles_at = |want: usize| {
        let t0 = Instant::now();
        while daemon_fds() != want && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon_fds()
    };
    let readers: Vec<fs::File> = (0..200)
        .map(|_| fs::File::open(mnt.join("lib")).unwrap())
        .collect();
    assert_eq!(daemon_fds(), 2, "node + one shared read-only descriptor");
    use std::os::unix::fs::FileExt;
    for (i, f) in readers.iter().enumerate().step_by(37) {
        let mut b = [0u8; 3];
        f.read_exact_at(&mut b, (i % 8) as u64).unwrap();
        assert_eq!(&b, &b"0123456789"[i % 8..i % 8 + 3]);
    }
    let writer = fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("lib"))
        .unwrap();
    assert_eq!(daemon_fds(), 3, "a writable handle has its own");
    drop(writer);
    drop(readers);
    assert_eq!(
        settles_at(1),
        1,
        "the shared descriptor closes with its last handle"
    );
    bg.unmount().unwrap();
}

/// Mount `src` on `mnt` with room for [`BUDGET`] nodes.
fn mount(scratch: &Path, src: &Path, mnt: &Path, prune: bool) -> Background {
    let guard = Guard::new(Config::default(), scratch.join("state")).unwrap();
    let opts = MountOptions {
        max_nodes: Some(BUDGET),
        prune,
        ..MountOptions::new(src, mnt, guard)
    };
    Mount::new(opts).unwrap().spawn().unwrap()
}

/// Visit each of `names` and check that the mount's nodes stayed within its budget.
fn within_budget(bg: &Background, names: impl Iterator<Item = String>, visit: impl Fn(&str)) {
    let mut most = 0;
    for name in names {
        visit(&name);
        most = most.max(bg.nodes());
    }
    // The kernel forgets asynchronously: lookups may run ahead of it for a while,
    // but not by thousands.
    assert!(most < 2 * BUDGET, "{most} nodes for a budget of {BUDGET}");
    let t0 = Instant::now();
    while bg.nodes() > BUDGET && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(bg.nodes() <= BUDGET, "{} nodes", bg.nodes());
}

/// Bind-mount `what` on `target`; gives `target`.
fn bind_mount(what: &Path, target: &Path) -> std::path::PathBuf {
    run("mount", &["--bind".as_ref(), what, target]);
    target.to_owned()
}

/// Check that the bind mount on `target` is still there (`file`, inside it, reads
/// "bound"), then take it down.
fn still_bound_then_unbind(target: &Path, file: &Path) {
    assert_eq!(
        fs::read(file).unwrap(),
        b"bound",
        "the bind mount was detached"
    );
    run("umount", &[target]);
}

fn run(cmd: &str, args: &[&Path]) {
    let ok = Command::new(cmd).args(args).status().unwrap();
    assert!(ok.success(), "{cmd} {args:?}");
}
