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

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A fresh RSA key and certificate; files signed into user.ima with evmctl.
fn key(dir: &Path) -> (PathBuf, PathBuf) {
    let (k, c) = (dir.join("priv.pem"), dir.join("cert.pem"));
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=vigil-test",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-keyout",
        ])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (k, c)
}

fn sign(key: &Path, file: &Path) {
    let o = Command::new("evmctl")
        .args(["ima_sign", "--xattr-user", "-a", "sha256", "--key"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn exec_runs_verified_code_from_a_sealed_memfd() {
    if !can_mount() || !have("evmctl") || !have("openssl") || !have("python3") {
        return;
    }
    let d = dirs();
    let (k, c) = key(d._t.path());
    let pol = d._t.path().join("exec.policy");
    fs::write(
        &pol,
        "measure func=BPRM_CHECK\nappraise func=BPRM_CHECK appraise_type=imasig\n",
    )
    .unwrap();
    let common = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"exec",
            &"--policy",
            &pol,
            &"--keys",
            &c,
            &"--xattr",
            &"user",
        ];
        a.extend_from_slice(extra);
        vigil(&a, &d.run)
    };

    // A shell script: the interpreter reads it from the memfd.
    let script = d.src.join("hello.sh");
    fs::write(&script, "#!/bin/sh\necho \"verified $1\"\n").unwrap();
    sign(&k, &script);
    let o = common(&[&script, &"world"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "verified world\n");

    // A binary (a signed copy of echo).
    let echo = d.src.join("echo");
    fs::copy("/bin/echo", &echo).unwrap();
    sign(&k, &echo);
    let o = common(&[&echo, &"-n", &"binary ok"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "binary ok");

    // The running script checks the seals of what it is read from.
    let py = d.src.join("seals.py");
    fs::write(
        &py,
        "#!/usr/bin/python3\nimport fcntl, sys\nf = open(sys.argv[0], 'rb')\nprint(sys.argv[0].startswith('/dev/fd/'), fcntl.fcntl(f.fileno(), 1034) & 0xf)\n",
    )
    .unwrap();
    sign(&k, &py);
    let o = common(&[&py]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // WRITE | SHRINK | GROW | SEAL = 0xf
    assert_eq!(String::from_utf8_lossy(&o.stdout), "True 15\n");

    // Tampered after signing, and unsigned: refused, exit 1, nothing runs.
    fs::write(&script, "#!/bin/sh\necho \"tampered $1\"\n").unwrap();
    let o = common(&[&script, &"x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid-signature"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let unsigned = d.src.join("unsigned.sh");
    fs::write(&unsigned, "#!/bin/sh\necho nope\n").unwrap();
    fs::set_permissions(&unsigned, fs::Permissions::from_mode(0o755)).unwrap();
    let o = common(&[&unsigned]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn kill_9_under_load_then_restart_continues_the_log() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    for i in 0..200 {
        fs::write(
            d.src.join(format!("f{i}")),
            format!("file {i}\n").repeat(50),
        )
        .unwrap();
    }
    let pol = d._t.path().join("measure.policy");
    fs::write(&pol, "measure func=FILE_CHECK mask=MAY_READ\n").unwrap();
    let mount = || {
        let o = vigil(
            &[
                &"mount",
                &"--policy",
                &pol,
                &"--state",
                &d.state(),
                &d.src,
                &d.mnt,
            ],
            &d.run,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    mount();
    for i in 0..20 {
        fs::read(d.mnt.join(format!("f{i}"))).unwrap();
    }
    let before = fs::read_to_string(d.mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    assert_eq!(before.lines().count(), 20);
    // Load: readers opening files while the daemon dies.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|t| {
            let (mnt, stop) = (d.mnt.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 20 + t;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200 {
                    let _ = fs::read(mnt.join(format!("f{i}")));
                    i += 3;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    let pid = daemon_pid(&d);
    // SAFETY: killing the daemon we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_gone(pid));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        l.join().unwrap();
    }
    // The dead mount answers ENOTCONN; clear it and mount again on the same state.
    assert!(Command::new("umount")
        .arg("-l")
        .arg(&d.mnt)
        .status()
        .unwrap()
        .success());
    for e in fs::read_dir(&d.run).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    mount();
    for i in 0..200 {
        fs::read(d.mnt.join(format!("f{i}"))).unwrap();
    }
    let after = fs::read_to_string(d.mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    assert!(
        after.starts_with(&before),
        "records from before the crash lost"
    );
    // Every file was measured once across both runs (no duplicates, nothing half-written).
    let mut names: Vec<&str> = after
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert!(
        names.len() == 200 && n >= 200,
        "{n} records for {} files",
        names.len()
    );
    // The exported list replays to the exported PCRs.
    let o = vigil(
        &[
            &"log",
            &"replay",
            &d.mnt.join(".vigil/binary_runtime_measurements"),
        ],
        &d.run,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        fs::read_to_string(d.mnt.join(".vigil/pcrs")).unwrap()
    );
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
}
