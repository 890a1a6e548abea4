//! `vigil mount` / `umount` / `status` / `seal` / `unseal` end to end, with real FUSE
//! mounts served by the detached daemon. Needs root and /dev/fuse; skipped otherwise.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn can_mount() -> bool {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: FUSE mounts need root and /dev/fuse");
        return false;
    }
    true
}

fn vigil(args: &[&dyn AsRef<std::ffi::OsStr>], run: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    for a in args {
        c.arg(a);
    }
    c.env("VIGIL_RUN_DIR", run).output().unwrap()
}

struct Dirs {
    _t: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
    run: PathBuf,
}

impl Dirs {
    fn state(&self) -> PathBuf {
        self._t.path().join("state")
    }
}

fn dirs() -> Dirs {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/cli-mount-tests");
    fs::create_dir_all(base).unwrap();
    let t = tempfile::tempdir_in(base).unwrap();
    let (src, mnt, run) = (
        t.path().join("src"),
        t.path().join("mnt"),
        t.path().join("run"),
    );
    for d in [&src, &mnt, &run, &t.path().join("state")] {
        fs::create_dir(d).unwrap();
    }
    Dirs {
        _t: t,
        src,
        mnt,
        run,
    }
}

fn mounted(mnt: &Path) -> bool {
    let m = fs::canonicalize(mnt).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(m.to_str().unwrap()))
}

fn daemon_pid(d: &Dirs) -> i32 {
    let entry = fs::read_dir(&d.run)
        .unwrap()
        .next()
        .expect("pid file")
        .unwrap();
    fs::read_to_string(entry.path())
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_gone(pid: i32) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty()
            || stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

#[test]
fn mount_status_and_three_ways_to_unmount() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"content").unwrap();

    // vigil umount; busy first while a file is open.
    let o = vigil(&[&"mount", &"--state", &d.state(), &d.src, &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(d.mnt.join("f")).unwrap(), b"content");
    let o = vigil(&[&"status", &d.mnt], &d.run);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("violations:   0"), "{out}");
    let pid = daemon_pid(&d);
    let held = fs::File::open(d.mnt.join("f")).unwrap();
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(held);
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!mounted(&d.mnt));
    assert!(wait_gone(pid), "daemon still running after vigil umount");
    assert_eq!(vigil(&[&"status", &d.mnt], &d.run).status.code(), Some(2));

    // SIGTERM, with the mount over its own source.
    let o = vigil(&[&"mount", &"--state", &d.state(), &d.src, &d.src], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.src.join(".vigil").is_dir());
    let pid = daemon_pid(&d);
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(wait_gone(pid), "daemon ignored SIGTERM");
    assert!(!mounted(&d.src));
    assert!(!d.src.join(".vigil").exists());

    // fusermount3 -u
    let o = vigil(&[&"mount", &"--state", &d.state(), &d.src, &d.mnt], &d.run);
    assert!(o.status.success());
    let pid = daemon_pid(&d);
    assert!(Command::new("fusermount3")
        .arg("-u")
        .arg(&d.mnt)
        .status()
        .unwrap()
        .success());
    assert!(wait_gone(pid), "daemon still running after fusermount3 -u");
    assert!(
        fs::read_dir(&d.run).unwrap().next().is_none(),
        "pid file left behind"
    );
}

#[test]
fn mount_failures_are_reported() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    let o = vigil(&[&"mount", &d.src.join("missing"), &d.mnt], &d.run);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a vigil mount"));
}

#[test]
fn seal_and_unseal() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"sealed content").unwrap();
    fs::set_permissions(d.src.join("f"), fs::Permissions::from_mode(0o666)).unwrap();
    let o = vigil(&[&"mount", &"--state", &d.state(), &d.src, &d.mnt], &d.run);
    assert!(o.status.success());
    let f = d.mnt.join("f");

    // A writer is open: EBUSY until the timeout, exit 1.
    let w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    let o = vigil(&[&"seal", &"--timeout", &"0.2", &f], &d.run);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("busy: 1 writer"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Writer closes while seal is retrying: it succeeds.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(w);
    });
    let o = vigil(&[&"seal", &"--timeout", &"5", &f], &d.run);
    closer.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Sealed: write opens, truncation and O_TRUNC get EPERM; reads work.
    let e = fs::OpenOptions::new().write(true).open(&f).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let e = fs::OpenOptions::new().append(true).open(&f).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 0) }, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
    fs::write(d.mnt.join("other"), b"x").unwrap();
    let e = fs::rename(d.mnt.join("other"), &f).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    assert_eq!(fs::read(&f).unwrap(), b"sealed content");

    // Only root may unseal; after it writes work again.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg("unseal")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = vigil(&[&"unseal", &f], &d.run);
    assert!(o.status.success());
    fs::write(&f, b"new").unwrap();
    assert_eq!(fs::read(d.src.join("f")).unwrap(), b"new");

    // Not on a vigil mount.
    let o = vigil(&[&"seal", &d.src.join("other")], &d.run);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not on a vigil mount"));
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
}
