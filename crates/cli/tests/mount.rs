//! `vigil mount` / `umount` / `status` / `seal` / `unseal` end to end, with real FUSE
//! mounts served by the detached daemon. Needs root and /dev/fuse; skipped otherwise.

use std::fs;
use std::os::unix::ffi::OsStringExt;
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

fn vigil_command(args: &[&dyn AsRef<std::ffi::OsStr>], run: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    for a in args {
        c.arg(a);
    }
    c.env("VIGIL_RUN_DIR", run);
    c
}

fn vigil(args: &[&dyn AsRef<std::ffi::OsStr>], run: &Path) -> Output {
    vigil_command(args, run).output().unwrap()
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

    /// `vigil mount OPTIONS… --state STATE SRC MNT`, which must succeed.
    fn mount(&self, options: &[&dyn AsRef<std::ffi::OsStr>]) {
        let state = self.state();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"mount"];
        args.extend_from_slice(options);
        args.extend([
            &"--state" as &dyn AsRef<std::ffi::OsStr>,
            &state,
            &self.src,
            &self.mnt,
        ]);
        let o = vigil(&args, &self.run);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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

/// Whether every thread of `pid` has exited (a zombie leader counts as gone). The
/// leader turns zombie while other threads may still be exiting with the state
/// directory's lock held, so all of `/proc/PID/task` is checked.
fn wait_gone(pid: i32) -> bool {
    let zombie = |stat: &str| {
        stat.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return true;
        };
        let alive = tasks.flatten().any(|task| {
            fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| !zombie(&stat))
        });
        if !alive {
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
    let policy = d.state().with_file_name("policy");
    fs::write(
        &policy,
        "# measure what is read\nmeasure mask=MAY_READ  func=FILE_CHECK\ndont_appraise fsmagic=0x9fa0\n",
    )
    .unwrap();
    d.mount(&[&"--policy", &policy, &"--builtin", &"critical_data"]);
    assert_eq!(fs::read(d.mnt.join("f")).unwrap(), b"content");
    // Two read-only handles open on `f` share a descriptor (counted once the handle of
    // the read above is gone: the kernel sends RELEASE after the close returns).
    let read_status = || fs::read_to_string(d.mnt.join(".vigil/status")).unwrap();
    let released = "\nfile_handles: 0\nfile_handle_descriptors: 0\n";
    let all_released = || {
        let t0 = Instant::now();
        while !read_status().contains(released) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        read_status()
    };
    all_released();
    let held = [
        fs::File::open(d.mnt.join("f")).unwrap(),
        fs::File::open(d.mnt.join("f")).unwrap(),
    ];
    let o = vigil(&[&"status", &d.mnt], &d.run);
    drop(held);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("handles:      2 open on files, holding 1 descriptor of the backing files"),
        "{out}"
    );
    assert!(out.contains("violations:   0"), "{out}");
    assert!(out.contains("policy:       3 rules"), "{out}");
    let src = fs::canonicalize(&d.src).unwrap();
    assert!(
        out.contains(&format!("source:       {}\n", src.display())),
        "{out}"
    );
    assert!(
        out.contains("appraisal:    enforce (IMA values from security.ima)"),
        "{out}"
    );
    assert!(
        out.contains(
            "reads:        verified against Merkle trees; 0 read directly from the disk \
             (uncached data)"
        ),
        "{out}"
    );
    assert!(
        out.contains("measurements: 1 records (") && out.contains("sha256, template ima-ng)"),
        "{out}"
    );
    assert!(
        out.contains("files:        1 tracked, 1 contents hashed"),
        "{out}"
    );
    // The root and `f`; the budget is 3/4 of the daemon's open-file limit.
    assert!(
        out.contains("nodes:        2 known to the kernel, one descriptor each (past "),
        "{out}"
    );
    // `.vigil/status`, one `key: value` per line, is where those come from.
    let status = read_status();
    assert!(
        status.starts_with(&format!(
            "source: {}\nstate: {}\nappraise: enforce\nima_value: security.ima\n\
             verify_reads: yes\nhash: sha256\ntemplate: ima-ng\nrecords: 1\n",
            src.display(),
            fs::canonicalize(d.state()).unwrap().display()
        )),
        "{status}"
    );
    assert!(status.contains("\nnodes: 2\nnode_budget: "), "{status}");
    let status = all_released();
    assert!(status.contains(released), "{status}");
    // `.vigil/policy` shows the rules in force as securityfs would: built-in rules
    // first, each in the kernel's normalised form (the same as `vigil policy print`).
    let shown = fs::read_to_string(d.mnt.join(".vigil/policy")).unwrap();
    assert_eq!(
        shown,
        "measure func=CRITICAL_DATA \n\
         measure func=FILE_CHECK mask=MAY_READ \n\
         dont_appraise fsmagic=0x9fa0 \n"
    );
    let printed = vigil(&[&"policy", &"print", &policy], &d.run);
    assert!(
        String::from_utf8_lossy(&printed.stdout).ends_with(&shown[shown.find('\n').unwrap() + 1..])
    );
    let o = vigil(&[&"status", &"--json", &d.mnt], &d.run);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["policy"][1], "measure func=FILE_CHECK mask=MAY_READ");
    assert_eq!(v["records"], 1, "{v}");
    assert_eq!(v["status"]["appraise"], "enforce", "{v}");
    assert_eq!(v["status"]["tracked_files"], 1, "{v}");
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
    d.mount(&[]);
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

/// `vigil mount` of `d` started with the limit of open files `limit` makes of the
/// current one.
fn mount_with_file_limit(d: &Dirs, limit: fn(&mut libc::rlimit)) {
    use std::os::unix::process::CommandExt;
    let mut c = vigil_command(&[&"mount", &"--state", &d.state(), &d.src, &d.mnt], &d.run);
    // SAFETY: only getrlimit and setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
            limit(&mut l);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    };
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every file the kernel has looked up holds a descriptor in the daemon: started with
/// the common default soft limit of open files, it raises its own and serves many more.
#[test]
fn many_files_under_a_low_open_file_limit() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    for i in 0..1500 {
        fs::write(d.src.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    // A soft limit of 1024 below a higher hard one, as systemd and most logins start
    // processes.
    mount_with_file_limit(&d, |l| l.rlim_cur = 1024);
    for i in 0..1500 {
        let got = fs::read(d.mnt.join(format!("f{i}")));
        assert_eq!(got.unwrap(), format!("file {i}").as_bytes(), "f{i}");
    }
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Directories held open by the hundred use up the daemon's descriptors (their nodes
/// cannot be forgotten while in use), so opens fail with EMFILE; once they are closed,
/// the mount recovers at the next failing lookup instead of failing for good.
#[test]
fn mount_recovers_once_descriptors_held_by_open_directories_are_let_go() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    for i in 0..600 {
        fs::create_dir_all(d.src.join(format!("dirs/d{i}"))).unwrap();
    }
    fs::write(d.src.join("fresh"), b"fresh").unwrap();
    mount_with_file_limit(&d, |l| (l.rlim_cur, l.rlim_max) = (400, 400));
    let held: Vec<_> = (0..600)
        .filter_map(|i| fs::File::open(d.mnt.join(format!("dirs/d{i}"))).ok())
        .collect();
    assert!(held.len() < 600, "the daemon's limit was not reached");
    assert_eq!(
        fs::read(d.mnt.join("fresh")).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EMFILE))
    );
    drop(held);
    let since = Instant::now();
    let read = loop {
        match fs::read(d.mnt.join("fresh")) {
            Err(e) if since.elapsed() < Duration::from_secs(10) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                std::thread::sleep(Duration::from_millis(50));
            }
            r => break r,
        }
    };
    assert_eq!(read.unwrap(), b"fresh", "after {:?}", since.elapsed());
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The mount helper as mount(8) runs it (`mount -t vigil`, an fstab line): in a private
/// mount namespace whose /sbin holds only `mount.vigil`, a read-only, noexec mount with
/// its policy and state directory given as -o options, then the same from an fstab.
#[test]
fn mount_t_vigil_runs_the_helper_with_fstab_options() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"content").unwrap();
    let policy = d._t.path().join("policy");
    fs::write(&policy, "measure func=FILE_CHECK mask=MAY_READ\n").unwrap();
    let script = r#"
        set -e
        mount -t tmpfs none /sbin
        ln -s "$VIGIL" /sbin/mount.vigil
        mount -t vigil -o "ro,noexec,noatime,policy=$POLICY,state=$STATE,x-systemd.automount" "$SRC" "$MNT"
        cat "$MNT/f"; echo
        if echo x > "$MNT/f"; then echo "write allowed"; fi
        if touch "$MNT/new"; then echo "create allowed"; fi
        awk -v m="$MNT" '$5 == m { print "options " $6; print "type " $(NF-2) }' /proc/self/mountinfo
        cat "$MNT/.vigil/ascii_runtime_measurements"
        umount "$MNT"
        printf '%s %s vigil policy=%s,state=%s,nofail 0 0\n' "$SRC" "$MNT" "$POLICY" "$STATE" > "$FSTAB"
        mount -a -T "$FSTAB"
        mount -a -T "$FSTAB"
        echo "mounts $(awk -v m="$MNT" '$5 == m' /proc/self/mountinfo | wc -l)"
        echo written > "$MNT/g"; cat "$SRC/g"
        umount "$MNT"
    "#;
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("VIGIL", env!("CARGO_BIN_EXE_vigil"))
        .env("VIGIL_RUN_DIR", &d.run)
        .env("POLICY", &policy)
        .env("STATE", d.state())
        .env("SRC", fs::canonicalize(&d.src).unwrap())
        .env("MNT", fs::canonicalize(&d.mnt).unwrap())
        .env("FSTAB", d._t.path().join("fstab"))
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.starts_with("content\n"), "{out}");
    assert!(!out.contains("allowed"), "{out}");
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    let options = out
        .lines()
        .find_map(|l| l.strip_prefix("options "))
        .unwrap();
    for flag in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "{flag} not in {options}"
        );
    }
    assert!(out.contains("type fuse.vigil"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("10 ") && l.ends_with("/mnt/f")),
        "f not measured:\n{out}"
    );
    // From fstab, read-write; `mount -a` again finds it mounted.
    assert!(out.contains("mounts 1\nwritten\n"), "{out}");
    assert!(!mounted(&d.mnt));
}

/// The helper's own command line: -f checks without mounting, -s tolerates unknown
/// options, and its exit status is mount(8)'s (1 bad usage, 32 mount failure).
#[test]
fn mount_helper_flags_and_exit_status() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    let helper = d._t.path().join("mount.vigil");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vigil"), &helper).unwrap();
    let run = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = Command::new(&helper);
        for a in args {
            c.arg(a);
        }
        c.env("VIGIL_RUN_DIR", &d.run).output().unwrap()
    };
    let state = format!("state={}", d.state().display());

    let o = run(&[&d.src, &d.mnt, &"-f", &"-o", &"ro,frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-o frobnicate: unknown mount option"));
    let o = run(&[&d.src, &d.mnt, &"-sf", &"-o", &"ro,frobnicate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!mounted(&d.mnt));
    let o = run(&[&d.src, &d.mnt, &"-f", &"-opolicy=/nonexistent/policy"]);
    assert_eq!(o.status.code(), Some(32));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/policy"));
    let o = run(&[&d.src, &d.mnt, &"-f", &"-okeys=/nonexistent/key.der"]);
    assert_eq!(o.status.code(), Some(32));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    let o = run(&[&d.src]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected SOURCE and MOUNTPOINT"));
    let o = run(&[&d.src.join("missing"), &d.mnt, &"-o", &state]);
    assert_eq!(o.status.code(), Some(32));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
    // -f checks the state directory as the mount does (not inside MNT, even one that
    // does not exist yet), and long options are named.
    let inside = format!("state={}", d.mnt.join("x/st").display());
    for args in [&["-f"][..], &[]] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&d.src, &d.mnt, &"-o", &inside];
        a.extend(args.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
        let o = run(&a);
        assert_eq!(o.status.code(), Some(32), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("is inside the mount point"));
    }
    assert!(!d.mnt.join("x").exists() && !mounted(&d.mnt));
    let o = run(&[&d.src, &d.mnt, &"--policy", &"x", &"-f"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown option --policy"));
    // Generic mount options of fstab lines.
    let generic = "defaults,noatime,nodiratime,lazytime,async,strictatime,relatime,_netdev";
    let o = run(&[&d.src, &d.mnt, &"-f", &"-o", &generic]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = run(&[&d.src, &d.mnt, &"-nv", &"-o", &state, &"-t", &"vigil"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mounted on"));
    assert!(mounted(&d.mnt));
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `vigil mount -f` as a systemd `Type=notify` service: READY=1 reaches the socket in
/// NOTIFY_SOCKET (a path, or `@name` for an abstract one) once the mount is usable.
#[test]
fn foreground_mount_notifies_systemd_when_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"content").unwrap();
    let path = d._t.path().join("notify");
    let name = format!("vigil-test-notify-{}", std::process::id());
    let sockets = [
        (UnixDatagram::bind(&path).unwrap(), path.into_os_string()),
        (
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap(),
            format!("@{name}").into(),
        ),
    ];
    for (sock, env) in sockets {
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut child = vigil_command(
            &[&"mount", &"-f", &"--state", &d.state(), &d.src, &d.mnt],
            &d.run,
        )
        .env("NOTIFY_SOCKET", &env)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("no notification");
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.starts_with("READY=1\nSTATUS=serving "), "{msg}");
        assert_eq!(fs::read(d.mnt.join("f")).unwrap(), b"content");
        let o = vigil(&[&"umount", &d.mnt], &d.run);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(child.wait().unwrap().success());
    }
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

    // Where the daemon would wait on its own mount, or its state would be reachable
    // through it, or its log could not be written: refused before anything is mounted.
    let inner = d.src.join("inner");
    fs::create_dir(&inner).unwrap();
    let state = d.state();
    let in_src = d.src.join("st");
    let log_in_mnt = d.mnt.join("log");
    let no_dir_log = d.src.join("no/such/dir/log");
    let cases: [(&[&dyn AsRef<std::ffi::OsStr>], &str, &Path); 6] = [
        (
            &[&"--builtin", &"", &d.src, &d.mnt],
            "names no policy",
            &d.mnt,
        ),
        (
            &[&"--keys", &",", &d.src, &d.mnt],
            "an empty file name",
            &d.mnt,
        ),
        (
            &[&"--state", &state, &d.src, &inner],
            "is inside the source directory",
            &inner,
        ),
        (
            &[&"--state", &in_src, &d.src, &d.mnt],
            "is inside the source directory",
            &d.mnt,
        ),
        (
            &[&"--state", &state, &"--log", &log_in_mnt, &d.src, &d.mnt],
            "is inside the mount point",
            &d.mnt,
        ),
        (
            &[&"--state", &state, &"--log", &no_dir_log, &d.src, &d.mnt],
            "log file",
            &d.mnt,
        ),
    ];
    for (args, want, mnt) in cases {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"mount"];
        a.extend_from_slice(args);
        let o = vigil(&a, &d.run);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!mounted(mnt), "{err}");
    }
    assert!(!in_src.exists());
}

#[test]
fn seal_and_unseal() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"sealed content").unwrap();
    fs::set_permissions(d.src.join("f"), fs::Permissions::from_mode(0o666)).unwrap();
    d.mount(&[]);
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

/// Seal records outlive the mount their files were reached through: the source's
/// mount is a new one at every boot (here: a bind mount made again), its file system
/// is the same.
#[test]
fn seals_outlive_the_source_mount() {
    if !can_mount() {
        return;
    }
    struct Bind(PathBuf);
    impl Drop for Bind {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let d = dirs();
    let data = d.src.with_file_name("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), b"sealed").unwrap();
    let bind = || {
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(&data)
            .arg(&d.src)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount --bind");
        Bind(d.src.clone())
    };
    let f = d.mnt.join("f");
    {
        let _source = bind();
        d.mount(&[]);
        assert!(vigil(&[&"seal", &f], &d.run).status.success());
        assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
    }
    let _source = bind();
    d.mount(&[]);
    let e = fs::OpenOptions::new().append(true).open(&f).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "seal lost");
    assert!(vigil(&[&"unseal", &f], &d.run).status.success());
    fs::write(&f, b"changed").unwrap();
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
    assert_eq!(fs::read(data.join("f")).unwrap(), b"changed");
}

/// `vigil ARGS`, killed (and the test failed) if it takes longer than `limit`.
fn vigil_within(args: &[&dyn AsRef<std::ffi::OsStr>], run: &Path, limit: Duration) -> Output {
    use std::process::Stdio;
    let mut child = vigil_command(args, run)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "vigil {:?} did not return within {limit:?}",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn seal_refuses_what_is_not_a_regular_file() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::create_dir(d.src.join("dir")).unwrap();
    d.mount(&[]);
    let fifo = d.mnt.join("fifo");
    let outside = d._t.path().join("fifo");
    for p in [&fifo, &outside] {
        assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
    }
    // A FIFO (on the mount and off it) is never opened: that would block until a
    // writer came. A directory and a device are refused the same way.
    for p in [
        &fifo,
        &outside,
        &d.mnt.join("dir"),
        &PathBuf::from("/dev/zero"),
    ] {
        let seal: [&dyn AsRef<std::ffi::OsStr>; 4] = [&"seal", &"--timeout", &"1", p];
        let unseal: [&dyn AsRef<std::ffi::OsStr>; 2] = [&"unseal", p];
        for (cmd, args) in [("seal", &seal[..]), ("unseal", &unseal[..])] {
            let o = vigil_within(args, &d.run, Duration::from_secs(10));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{cmd} {}: {err}", p.display());
            assert!(
                err.contains("not a regular file: seals apply to regular files"),
                "{cmd} {}: {err}",
                p.display()
            );
        }
    }
    // The .vigil/ files say why, not a bare EINVAL.
    let o = vigil(&[&"seal", &d.mnt.join(".vigil/pcrs")], &d.run);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("read-only exports and cannot be sealed"),
        "{err}"
    );
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

/// Make `file` executable and owned by uid 4242 (which `fowner=4242` rules select).
fn give(file: &Path) {
    fs::set_permissions(file, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(file, Some(4242), None).unwrap();
}

#[test]
fn exec_runs_verified_code_from_a_sealed_memfd() {
    if !can_mount() || !have("evmctl") || !have("openssl") || !have("python3") {
        return;
    }
    let d = dirs();
    let (k, c) = key(d._t.path());
    let pol = d._t.path().join("exec.policy");
    // Only the test's own files (owner 4242) are appraised, not their interpreters.
    fs::write(
        &pol,
        "measure func=BPRM_CHECK\nappraise func=BPRM_CHECK fowner=4242 appraise_type=imasig\n",
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
    give(&script);
    sign(&k, &script);
    let o = common(&[&script, &"world"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "verified world\n");

    // A binary (a signed copy of echo).
    let echo = d.src.join("echo");
    fs::copy("/bin/echo", &echo).unwrap();
    give(&echo);
    sign(&k, &echo);
    let o = common(&[&echo, &"-n", &"binary ok"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "binary ok");
    // Everything after FILE is the program's, vigil's own options and --help too.
    let o = common(&[&echo, &"--appraise", &"off", &"--help"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "--appraise off --help\n"
    );

    // The running script checks the seals of what it is read from.
    let py = d.src.join("seals.py");
    fs::write(
        &py,
        "#!/usr/bin/python3\nimport fcntl, sys\nf = open(sys.argv[0], 'rb')\nprint(sys.argv[0].startswith('/dev/fd/'), fcntl.fcntl(f.fileno(), 1034) & 0xf)\n",
    )
    .unwrap();
    give(&py);
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
    give(&unsigned);
    let o = common(&[&unsigned]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

/// `vigil exec ARGS`: (exit status, stdout, stderr).
fn exec(args: &[&dyn AsRef<std::ffi::OsStr>], run: &Path) -> (Option<i32>, String, String) {
    let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"exec"];
    a.extend_from_slice(args);
    let o = vigil(&a, run);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

#[test]
fn exec_refuses_what_execve_refuses() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    // No execute permission (root too needs one x bit): EACCES, 126 as in a shell.
    let f = d.src.join("true");
    fs::copy("/bin/true", &f).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = exec(&[&f], &d.run);
    assert_eq!(code, Some(126), "{err}");
    assert!(err.contains("no execute permission"), "{err}");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o744)).unwrap();
    assert_eq!(exec(&[&f], &d.run).0, Some(0));
    // Other errors: 2, the OS error once (not again as the error's source).
    let (code, _, err) = exec(&[&"--state", &"/proc/nonexistent/x", &f], &d.run);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    // A directory and a FIFO (not opened: it would block).
    for (p, make) in [(d.mnt.clone(), None), (d.src.join("fifo"), Some("mkfifo"))] {
        if let Some(tool) = make {
            assert!(Command::new(tool).arg(&p).status().unwrap().success());
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (code, _, err) = exec(&[&p], &d.run);
        assert_eq!(code, Some(126), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    // No binary format and no #! line, or a #! line naming nothing: ENOEXEC, 126 too.
    for (name, text, why) in [
        ("plain", &b"echo x\n"[..], "Exec format error"),
        (
            "junk",
            &b"\x00\x01\x02\x03 not a binary"[..],
            "Exec format error",
        ),
        (
            "empty-shebang",
            &b"#!  \necho x\n"[..],
            "no interpreter named",
        ),
    ] {
        let p = d.src.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let (code, out, err) = exec(&[&p], &d.run);
        assert_eq!(code, Some(126), "{name}: {err}");
        assert!(out.is_empty(), "{name}: {out}");
        assert!(err.contains(why), "{name}: {err}");
    }
    // A noexec mount.
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec", "tmpfs"])
        .arg(&d.mnt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = d.mnt.join("true");
    fs::copy("/bin/true", &f).unwrap();
    let (code, _, err) = exec(&[&f], &d.run);
    let _ = Command::new("umount").arg(&d.mnt).status();
    assert_eq!(code, Some(126), "{err}");
    assert!(err.contains("noexec"), "{err}");
}

#[test]
fn exec_warns_that_set_user_id_programs_run_without_privileges() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    let id = d.src.join("id");
    fs::copy("/usr/bin/id", &id).unwrap();
    std::os::unix::fs::chown(&id, Some(65534), Some(65534)).unwrap();
    // Set-user-ID and set-group-ID for nobody: execve would make root nobody; the
    // memfd runs with the caller's credentials, and vigil says so.
    for (mode, what) in [
        (0o4755, "is set-user-ID;"),
        (0o2755, "is set-group-ID;"),
        (0o6755, "is set-user-ID and set-group-ID;"),
    ] {
        fs::set_permissions(&id, fs::Permissions::from_mode(mode)).unwrap();
        let (code, out, err) = exec(&[&id, &"-u"], &d.run);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out, "0\n");
        assert_eq!(
            err,
            format!(
                "vigil exec: {} {what} it runs without those privileges\n",
                fs::canonicalize(&id).unwrap().display()
            )
        );
    }
    // File capabilities, for a caller that is not root.
    if have("setcap") {
        fs::set_permissions(&id, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Command::new("setcap")
            .arg("cap_net_raw+ep")
            .arg(&id)
            .status()
            .unwrap()
            .success());
        for dir in [d._t.path(), &d.src] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .arg("exec")
            .arg(&id)
            .arg("-u")
            .env("VIGIL_RUN_DIR", &d.run)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "65534\n");
        assert!(
            err.ends_with(" has file capabilities; it runs without those privileges\n"),
            "{err}"
        );
    }
    // Nothing to lose: set-user-ID to the caller itself, set-group-ID without group
    // execute permission (mandatory locking, not set-group-ID), a plain program.
    std::os::unix::fs::chown(&id, Some(0), None).unwrap();
    for mode in [0o4755, 0o2745, 0o755] {
        fs::set_permissions(&id, fs::Permissions::from_mode(mode)).unwrap();
        let (code, _, err) = exec(&[&id], &d.run);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(err, "", "{mode:o}");
    }
}

#[test]
fn exec_evaluates_file_check_and_bprm_check_for_program_and_interpreter() {
    if !can_mount() || !have("evmctl") || !have("openssl") {
        return;
    }
    let d = dirs();
    let t = d._t.path();
    let (k, c) = key(t);
    let policy = |name: &str, text: &str| {
        let p = t.join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let run = |pol: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--policy", &pol, &"--keys", &c, &"--xattr", &"user"];
        a.extend_from_slice(extra);
        exec(&a, &d.run)
    };
    let unsigned = d.src.join("unsigned");
    let signed = d.src.join("signed");
    for f in [&unsigned, &signed] {
        fs::copy("/bin/true", f).unwrap();
    }
    sign(&k, &signed);

    // The exec's open is FILE_CHECK with MAY_EXEC.
    let fc = policy(
        "fc.policy",
        "appraise func=FILE_CHECK mask=MAY_EXEC appraise_type=imasig\n",
    );
    let (code, _, err) = run(&fc, &[&unsigned]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("IMA-signature-required"), "{err}");
    let name = unsigned.file_name().unwrap().to_str().unwrap();
    assert_eq!(err.matches(name).count(), 1, "the file named once: {err}");
    assert_eq!(run(&fc, &[&signed]).0, Some(0));

    // Measured by FILE_CHECK and BPRM_CHECK rules: one record per file version, also
    // across runs on the same state directory.
    let state = d.state();
    let m = policy(
        "m.policy",
        "measure func=FILE_CHECK mask=MAY_EXEC\nmeasure func=BPRM_CHECK\n",
    );
    let records = || {
        let o = vigil(&[&"log", &"show", &state.join("measurements.bin")], &d.run);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for _ in 0..2 {
        assert_eq!(run(&m, &[&"--state", &state, &unsigned]).0, Some(0));
    }
    let log = records();
    assert_eq!(log.lines().count(), 1, "{log}");
    let logged = |f: &Path| fs::canonicalize(f).unwrap().to_str().unwrap().to_owned();
    assert!(log.contains(&logged(&unsigned)), "{log}");
    let fco = policy("fco.policy", "measure func=FILE_CHECK mask=MAY_EXEC\n");
    assert_eq!(run(&fco, &[&"--state", &state, &signed]).0, Some(0));
    assert_eq!(records().lines().count(), 2);

    // A script's interpreter is appraised too (BPRM_CHECK of the next binfmt round).
    let bprm = policy(
        "bprm.policy",
        "appraise func=BPRM_CHECK appraise_type=imasig\n",
    );
    let script = d.src.join("s.sh");
    fs::write(&script, "#!/bin/sh\necho \"$0 $*\"; exit 7\n").unwrap();
    give(&script);
    sign(&k, &script);
    let (code, out, err) = run(&bprm, &[&script, &"a"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("interpreter /bin/sh"), "{err}");
    let sh = d.src.join("sh");
    fs::copy("/bin/sh", &sh).unwrap();
    sign(&k, &sh);
    fs::write(
        &script,
        format!("#!{} -e\necho \"$0 $*\"; exit 7\n", sh.display()),
    )
    .unwrap();
    sign(&k, &script);
    let (code, out, err) = run(&bprm, &[&script, &"a"]);
    assert_eq!(code, Some(7), "{err}");
    assert!(
        out.starts_with("/dev/fd/") && out.ends_with(" a\n"),
        "{out}"
    );
    // … and measured by FILE_CHECK MAY_EXEC (the open of the interpreter).
    assert_eq!(run(&fco, &[&"--state", &state, &script]).0, Some(7));
    assert!(records().contains(&logged(&sh)));
    // `#!/usr/bin/env NAME`: the interpreter the kernel sees is env.
    fs::write(&script, "#!/usr/bin/env sh\nexit 0\n").unwrap();
    sign(&k, &script);
    let (code, _, err) = run(&bprm, &[&script]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("interpreter /usr/bin/env"), "{err}");
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

/// `sha256sum` lines of `names` (relative to `src`), as the files would be logged through
/// the mount at `logged` (the mount point as the measurement list names it).
fn allowlist(src: &Path, names: &[&str], logged: &Path) -> String {
    let o = Command::new("sha256sum")
        .args(names)
        .current_dir(src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (digest, name) = l.split_once("  ").expect("sha256sum line");
            format!("{digest}  {}\n", logged.join(name).display())
        })
        .collect()
}

/// The PCR 10 value of `bank` in an exported `.vigil/pcrs`.
fn pcr10(pcrs: &str, bank: &str) -> String {
    pcrs.lines()
        .find_map(|l| l.strip_prefix(&format!("{bank} PCR-10: ")))
        .unwrap_or_else(|| panic!("no {bank} PCR 10 in\n{pcrs}"))
        .to_owned()
}

/// A tree signed with evmctl, mounted in enforce mode: signed files open, unsigned or
/// tampered ones get EACCES, and the exported ASCII list attests with `vigil attest`
/// (replaying to the exported PCRs) against a Keylime runtime policy of the source
/// files; a policy that lacks a measured file or has a stale digest fails, naming it.
#[test]
fn signed_tree_in_enforce_mode_attests() {
    if !can_mount() || !have("evmctl") || !have("openssl") || !have("sha256sum") {
        return;
    }
    let d = dirs();
    let (k, c) = key(d._t.path());
    fs::create_dir(d.src.join("bin")).unwrap();
    fs::write(d.src.join("bin/tool"), "#!/bin/sh\necho signed tool\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(d.src.join("big"), &big).unwrap();
    fs::write(d.src.join("unsigned"), "nobody signed me").unwrap();
    fs::write(d.src.join("tampered"), "original content").unwrap();
    for f in ["bin/tool", "big", "tampered"] {
        sign(&k, &d.src.join(f));
    }
    let names = ["bin/tool", "big", "tampered", "unsigned"];
    let logged = fs::canonicalize(&d.mnt).unwrap();
    // What a policy made before the tampering would hold.
    let stale = allowlist(&d.src, &names, &logged);
    fs::write(d.src.join("tampered"), "modified content").unwrap();

    let pol = d._t.path().join("appraise.policy");
    fs::write(
        &pol,
        "measure func=FILE_CHECK\nappraise func=FILE_CHECK appraise_type=imasig\n",
    )
    .unwrap();
    d.mount(&[
        &"--policy",
        &pol,
        &"--appraise",
        &"enforce",
        &"--keys",
        &c,
        &"--xattr",
        &"user",
    ]);
    assert_eq!(
        fs::read(d.mnt.join("bin/tool")).unwrap(),
        b"#!/bin/sh\necho signed tool\n"
    );
    assert_eq!(fs::read(d.mnt.join("big")).unwrap(), big);
    for refused in ["unsigned", "tampered"] {
        let e = fs::read(d.mnt.join(refused)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{refused}: {e}");
    }
    // A signed file is immutable: every write open is refused before anything changes,
    // O_TRUNC with O_RDONLY too (it truncates, so IMA counts it as a write).
    for (how, flags) in [
        ("O_WRONLY", libc::O_WRONLY),
        ("O_RDWR|O_APPEND", libc::O_RDWR | libc::O_APPEND),
        ("O_WRONLY|O_TRUNC", libc::O_WRONLY | libc::O_TRUNC),
        ("O_RDONLY|O_TRUNC", libc::O_RDONLY | libc::O_TRUNC),
    ] {
        let path = std::ffi::CString::new(d.mnt.join("big").into_os_string().into_vec());
        let fd = unsafe { libc::open(path.unwrap().as_ptr(), flags | libc::O_CLOEXEC) };
        let e = std::io::Error::last_os_error();
        assert_eq!(fd, -1, "{how} opened");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{how}: {e}");
    }
    assert_eq!(fs::read(d.mnt.join("big")).unwrap(), big);

    let list = d.mnt.join(".vigil/ascii_runtime_measurements");
    let ascii = fs::read_to_string(&list).unwrap();
    for name in names {
        let want = format!(" {}", logged.join(name).display());
        assert!(
            ascii.lines().any(|l| l.ends_with(&want)),
            "{name} not measured:\n{ascii}"
        );
    }
    let pcrs = fs::read_to_string(d.mnt.join(".vigil/pcrs")).unwrap();
    let policy_of = |allow: &str, name: &str| {
        let (a, p) = (
            d._t.path().join(format!("{name}.txt")),
            d._t.path().join(format!("{name}.json")),
        );
        fs::write(&a, allow).unwrap();
        let o = vigil(
            &[&"runtime-policy", &"create", &"-a", &a, &"-o", &p],
            &d.run,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        p
    };
    let attest = |policy: &Path, pcr: &str| {
        let o = vigil(
            &[
                &"attest",
                &"--policy",
                &policy,
                &"--list",
                &list,
                &"--pcr",
                &pcr,
            ],
            &d.run,
        );
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), report)
    };

    // The policy of the source tree as it is now: attested, on either PCR bank.
    let good = policy_of(&allowlist(&d.src, &names, &logged), "good");
    for bank in ["sha1", "sha256"] {
        let (code, report) = attest(&good, &format!("{bank}:{}", pcr10(&pcrs, bank)));
        assert_eq!(code, Some(0), "{bank}: {report}\nlist:\n{ascii}");
        assert!(report.contains("4 entries, 4 passed"), "{report}");
    }
    // A quote the list does not replay to.
    let sha1 = pcr10(&pcrs, "sha1");
    let wrong = format!(
        "sha1:{}{}",
        &sha1[..39],
        if sha1.ends_with('0') { '1' } else { '0' }
    );
    let (code, report) = attest(&good, &wrong);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("PCR mismatch"), "{report}");

    let quote = format!("sha1:{sha1}");
    // A measured file missing from the policy.
    let without_big: String = allowlist(&d.src, &names, &logged)
        .lines()
        .filter(|l| !l.ends_with("/big"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, report) = attest(&policy_of(&without_big, "without-big"), &quote);
    assert_eq!(code, Some(1), "{report}");
    let want = format!("{}: not in policy", logged.join("big").display());
    assert!(report.contains(&want), "no `{want}` in\n{report}");
    // A policy made before the tampering: the tampered file's digest does not match.
    let (code, report) = attest(&policy_of(&stale, "stale"), &quote);
    assert_eq!(code, Some(1), "{report}");
    let want = format!("{}: digest mismatch", logged.join("tampered").display());
    assert!(report.contains(&want), "no `{want}` in\n{report}");

    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
}

/// `vigil umount --lazy` detaches at once even with files open, and returns without
/// waiting for the daemon, which exits once they are closed.
#[test]
fn lazy_umount_returns_at_once() {
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"content").unwrap();
    d.mount(&[]);
    let pid = daemon_pid(&d);
    let held = fs::File::open(d.mnt.join("f")).unwrap();
    let t = Instant::now();
    let o = vigil(&[&"umount", &"--lazy", &"--wait", &"10", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(!mounted(&d.mnt));
    // The open file still reads; the daemon serves it until it is closed.
    let mut s = String::new();
    std::io::Read::read_to_string(&mut &held, &mut s).unwrap();
    assert_eq!(s, "content");
    drop(held);
    assert!(
        wait_gone(pid),
        "daemon still running after its last file closed"
    );
}

/// `evmctl -r ima_fix` — vigil run as evmctl — through a mount in fix mode labels a
/// whole tree, as it does on a kernel booted with `ima_appraise=fix`: each file it
/// opens gets the hash value evmctl's `ima_hash` computes. `ima_clear` removes them.
#[test]
fn evmctl_ima_fix_labels_a_tree_through_a_fix_mode_mount() {
    if !can_mount() || !have("evmctl") || !have("getfattr") {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.src.join("etc/sub")).unwrap();
    let files = ["etc/passwd", "etc/sub/conf", "big"];
    for (i, f) in files.iter().enumerate() {
        let content: Vec<u8> = (0..(1000 + i * 150_000)).map(|b| (b % 241) as u8).collect();
        fs::write(d.src.join(f), content).unwrap();
    }
    let link = d._t.path().join("evmctl");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vigil"), &link).unwrap();
    let evmctl_as = |tool: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = Command::new(tool);
        for a in args {
            c.arg(a);
        }
        c.output().unwrap()
    };
    let label = |f: &str| {
        let o = Command::new("getfattr")
            .args(["--only-values", "-n", "user.ima"])
            .arg(d.src.join(f))
            .output()
            .unwrap();
        o.status.success().then(|| hex::encode(o.stdout))
    };

    let pol = d._t.path().join("fix.policy");
    fs::write(&pol, "appraise func=FILE_CHECK\n").unwrap();
    d.mount(&[
        &"--policy",
        &pol,
        &"--appraise",
        &"fix",
        &"--xattr",
        &"user",
    ]);
    let o = evmctl_as(&link, &[&"-r", &"ima_fix", &d.mnt]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let named = String::from_utf8_lossy(&o.stderr);
    for f in ["passwd", "conf", "big"] {
        assert!(named.lines().any(|l| l == f), "{f} not visited:\n{named}");
    }
    let o = vigil(&[&"umount", &d.mnt], &d.run);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in files {
        let want = evmctl_as(Path::new("evmctl"), &[&"ima_hash", &"-n", &d.src.join(f)]);
        assert!(want.status.success());
        let got = label(f).unwrap_or_else(|| panic!("{f} has no user.ima"));
        assert_eq!(got, String::from_utf8_lossy(&want.stdout).trim(), "{f}");
    }

    let o = evmctl_as(&link, &[&"--xattr-user", &"-r", &"ima_clear", &d.src]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in files {
        assert_eq!(label(f), None, "{f} still labelled");
    }
}

/// fio writes files through a fix-mode mount in every way programs write (positional
/// writes, vectored `pwritev2`, libaio, stores through shared mappings), at random and
/// in sequence, all at once, and reads every block back to check it. At each file's
/// last close the mount records the hash of what fio left in it, which is what
/// `evmctl ima_hash` computes from the backing file. Remounted in enforce mode, the
/// files pass appraisal and fio checks every block once more, now through reads
/// verified against their Merkle trees.
#[test]
fn fio_writes_and_verifies_through_the_mount() {
    if !can_mount() || !have("fio") || !have("evmctl") || !have("getfattr") {
        return;
    }
    let d = dirs();
    let jobs: [(&str, &[&str]); 5] = [
        ("psync", &["--ioengine=psync", "--rw=randrw", "--bs=4k"]),
        (
            "pvsync2",
            &["--ioengine=pvsync2", "--rw=randrw", "--bs=16k"],
        ),
        (
            "libaio",
            &["--ioengine=libaio", "--iodepth=8", "--rw=randwrite"],
        ),
        ("mmap", &["--ioengine=mmap", "--rw=randrw", "--bs=4k"]),
        ("mmap-seq", &["--ioengine=mmap", "--rw=write", "--bs=64k"]),
    ];
    let fio = |extra: &[&str]| {
        let mut c = Command::new("fio");
        c.current_dir(&d.mnt).args([
            "--size=8M",
            "--bs=4k",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--verify_state_save=0",
        ]);
        c.args(extra);
        for (name, args) in jobs {
            c.arg(format!("--name={name}"))
                .arg(format!("--filename={name}"))
                .args(args);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.matches("err= 0").count() == jobs.len(),
            "fio {extra:?}:\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };

    let pol = d._t.path().join("appraise.policy");
    fs::write(&pol, "measure func=FILE_CHECK\nappraise func=FILE_CHECK\n").unwrap();
    let options: [&dyn AsRef<std::ffi::OsStr>; 4] = [&"--policy", &pol, &"--xattr", &"user"];
    d.mount(&[&options[..], &[&"--appraise", &"fix"]].concat());
    fio(&[]);
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
    for (name, _) in jobs {
        let backing = d.src.join(name);
        assert_eq!(fs::metadata(&backing).unwrap().len(), 8 << 20, "{name}");
        let (want, has) = hash_values(&backing);
        assert_eq!(has, want, "{name}");
    }

    d.mount(&[&options[..], &[&"--appraise", &"enforce"]].concat());
    fio(&["--verify_only"]);
    let status = vigil(&[&"status", &d.mnt], &d.run);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["violations:", "0"]),
        "{status}"
    );
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
}

/// The user.ima value `evmctl ima_hash` computes for `file`, in hex, and the one it has.
fn hash_values(file: &Path) -> (String, String) {
    let want = Command::new("evmctl")
        .args(["ima_hash", "-n"])
        .arg(file)
        .output()
        .unwrap();
    assert!(want.status.success());
    let has = Command::new("getfattr")
        .args(["--only-values", "-n", "user.ima"])
        .arg(file)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&want.stdout).trim().to_owned(),
        hex::encode(has.stdout),
    )
}

/// In enforce mode, as under the kernel's IMA, a hash-appraised file written through
/// the mount by openers that passed stays open to everyone while it is written and
/// after (the kernel keeps the verdict until the last writer closes, then rewrites
/// the hash value; a new file passes until then): threads that open, write, truncate
/// and read two files at once, one labelled beforehand and one they create, are never
/// refused, and both files end with evmctl's hash value. A change behind the mount is
/// still refused.
#[test]
fn enforce_mode_trusts_writes_through_the_mount() {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    if !can_mount() || !have("evmctl") || !have("getfattr") {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("labelled"), b"labelled beforehand\n").unwrap();
    let o = Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(d.src.join("labelled"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let pol = d._t.path().join("appraise.policy");
    fs::write(&pol, "measure func=FILE_CHECK\nappraise func=FILE_CHECK\n").unwrap();
    let log = d._t.path().join("daemon.log");
    d.mount(&[
        &"--policy",
        &pol,
        &"--xattr",
        &"user",
        &"--appraise",
        &"enforce",
        &"--log",
        &log,
    ]);

    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (mnt, refused) = (&d.mnt, &refused);
            s.spawn(move || {
                for i in 0..150u64 {
                    for name in ["labelled", "created"] {
                        let f = match fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .mode(0o644)
                            .open(mnt.join(name))
                        {
                            Ok(f) => f,
                            Err(e) => {
                                eprintln!("thread {t}: open {name} for writing: {e}");
                                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                continue;
                            }
                        };
                        let at = (t * 7919 + i * 104_729) % 60_000;
                        f.write_all_at(format!("{t}:{i};").as_bytes(), at).unwrap();
                        if i % 40 == 39 {
                            f.set_len(at).unwrap();
                        }
                    }
                    for name in ["labelled", "created"] {
                        if let Err(e) = fs::read(mnt.join(name)) {
                            eprintln!("thread {t}: read {name}: {e}");
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        refused.into_inner(),
        0,
        "opens refused (see stderr); the daemon's log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    // The last writer's refresh is brought about by the next open at the latest.
    for name in ["labelled", "created"] {
        fs::read(d.mnt.join(name)).unwrap();
        let (want, has) = hash_values(&d.src.join(name));
        assert_eq!(has, want, "{name}");
    }

    fs::OpenOptions::new()
        .append(true)
        .open(d.src.join("labelled"))
        .unwrap()
        .write_all_at(b"tampered", 0)
        .unwrap();
    let e = fs::read(d.mnt.join("labelled")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    assert!(vigil(&[&"umount", &d.mnt], &d.run).status.success());
}

/// The value of the xattr `name` of `file` (empty if it has none).
fn xattr_of(file: &Path, name: &str) -> Vec<u8> {
    Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(file)
        .output()
        .unwrap()
        .stdout
}

/// With EVM keys, the mount keeps what EVM vouches for as the kernel does: a file
/// created through it gets an HMAC with its hash value, a chmod through the mount
/// carries the HMAC along while one behind it is refused at the next open; metadata
/// under a portable signature (evmctl) cannot be changed through the mount (EPERM),
/// and nobody can set an HMAC by hand.
#[test]
fn evm_keys_protect_metadata_through_the_mount() {
    if !can_mount() || !have("evmctl") || !have("getfattr") || !have("setfattr") {
        return;
    }
    let d = dirs();
    let (k, c) = key(d._t.path());
    let hmac_key = d._t.path().join("evm-key");
    fs::write(&hmac_key, b"the EVM key of this test").unwrap();
    let portable = d.src.join("portable");
    fs::write(&portable, b"signed with its metadata\n").unwrap();
    fs::set_permissions(&portable, fs::Permissions::from_mode(0o644)).unwrap();
    let o = Command::new("evmctl")
        .args([
            "sign",
            "--portable",
            "--imahash",
            "--xattr-user",
            "-a",
            "sha256",
        ])
        .arg("--key")
        .arg(&k)
        .arg(&portable)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pol = d._t.path().join("appraise.policy");
    fs::write(&pol, "measure func=FILE_CHECK\nappraise func=FILE_CHECK\n").unwrap();
    d.mount(&[
        &"--policy",
        &pol,
        &"--xattr",
        &"user",
        &"--evm-keys",
        &c,
        &"--evm-hmac-key",
        &hmac_key,
    ]);
    let (m_new, m_portable) = (d.mnt.join("new"), d.mnt.join("portable"));
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m));

    // Created and written through the mount: the deferred refresh after the last
    // close writes the hash value and the HMAC over it.
    fs::write(&m_new, b"written through the mount\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while xattr_of(&d.src.join("new"), "user.evm").first() != Some(&0x02) {
        assert!(Instant::now() < deadline, "no HMAC written");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(&m_new).unwrap(), b"written through the mount\n");
    mode(&m_new, 0o600).unwrap();
    assert_eq!(fs::read(&m_new).unwrap(), b"written through the mount\n");
    // Behind the mount, the HMAC does not follow.
    mode(&d.src.join("new"), 0o640).unwrap();
    let e = fs::read(&m_new).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    mode(&d.src.join("new"), 0o600).unwrap();
    assert!(fs::read(&m_new).is_ok());

    // A portable signature: readable, immutable, metadata fixed (a no-op is fine).
    assert_eq!(
        fs::read(&m_portable).unwrap(),
        b"signed with its metadata\n"
    );
    let e = mode(&m_portable, 0o600).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    mode(&m_portable, 0o644).unwrap();
    let e = fs::OpenOptions::new()
        .append(true)
        .open(&m_portable)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    assert_eq!(
        fs::metadata(d.src.join("portable"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );

    // Only signatures may be set as EVM values.
    let o = Command::new("setfattr")
        .args([
            "-n",
            "user.evm",
            "-v",
            "0x020102030405060708090a0b0c0d0e0f1011121314",
        ])
        .arg(&m_new)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not permitted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(fs::read(&m_new).is_ok());
}

/// The FUSE connection of the mount at `mnt` is aborted (as
/// `echo 1 > /sys/fs/fuse/connections/N/abort` does): every request fails at once.
fn abort_connection(mnt: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(mnt).unwrap().dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let conn = Path::new("/sys/fs/fuse/connections").join((major << 20 | minor).to_string());
    if !conn.exists() {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"])
            .status();
    }
    fs::write(conn.join("abort"), "1").unwrap();
}

/// Daemon `pid` exits within five seconds of `since`.
fn exits_soon(pid: i32, since: Instant) {
    assert!(wait_gone(pid), "daemon still running");
    let took = since.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A 64 GiB sparse file: measuring it reads and hashes zeros for a minute or more.
fn huge_file(path: &Path) {
    fs::File::create(path).unwrap().set_len(64 << 30).unwrap();
}

/// A source holding a [`huge_file`] `big`, mounted with the `tcb` policy (which
/// measures root's reads); the daemon's pid.
fn mounted_with_huge_file() -> (Dirs, i32) {
    let d = dirs();
    huge_file(&d.src.join("big"));
    d.mount(&[&"--builtin", &"tcb"]);
    let pid = daemon_pid(&d);
    (d, pid)
}

/// An aborted connection fails the open that waits for the measurement of a huge
/// file, and the daemon exits at once: no one waits for that measurement any more,
/// and the re-measurements it owes are given up too.
#[test]
fn an_aborted_connection_gives_up_the_measurements() {
    if !can_mount() {
        return;
    }
    let (d, pid) = mounted_with_huge_file();
    let mnt = fs::canonicalize(&d.mnt).unwrap();
    // Made through the mount: its re-measurement is owed.
    huge_file(&mnt.join("written"));
    let mut cat = Command::new("cat")
        .arg(mnt.join("big"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(cat.try_wait().unwrap().is_none(), "the open is measuring");
    let t = Instant::now();
    abort_connection(&mnt);
    assert!(!cat.wait().unwrap().success());
    exits_soon(pid, t);
}

/// A SIGTERM unmounts; the daemon then finishes the re-measurement of a file written
/// through the mount before it exits. A second SIGTERM gives that up and it exits at
/// once.
#[test]
fn a_second_sigterm_gives_up_the_re_measurements() {
    if !can_mount() {
        return;
    }
    let (d, pid) = mounted_with_huge_file();
    // Written through the mount: its last close queues a re-measurement.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.mnt.join("big"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"x", 0).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(300));
    let term = || {
        // SAFETY: plain kill(2).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    };
    term();
    let t = Instant::now();
    while mounted(&d.mnt) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!mounted(&d.mnt), "SIGTERM unmounts");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the daemon finishes the re-measurement first"
    );
    let t = Instant::now();
    term();
    exits_soon(pid, t);
}

/// `vigil exec ./prog` runs from a working directory whose path is longer than
/// PATH_MAX, as execve does.
#[test]
fn exec_runs_from_a_working_directory_deeper_than_path_max() {
    let d = dirs();
    let deep = "d".repeat(200);
    let script = format!(
        "set -e; cd \"$1\"; for i in $(seq 25); do mkdir {deep}; cd -P {deep}; done; \
         cp /bin/echo .; exec \"$2\" exec ./echo deep ok"
    );
    let o = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(&d.src)
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .env("VIGIL_RUN_DIR", &d.run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "deep ok\n");
}

/// Once `vigil umount` returns, the daemon is gone, state lock and all: the same state
/// directory mounts again at once. Its pid file is root's.
#[test]
fn umount_returns_once_the_daemon_is_gone() {
    use std::os::unix::fs::MetadataExt;
    if !can_mount() {
        return;
    }
    let d = dirs();
    fs::write(d.src.join("f"), b"content").unwrap();
    for _ in 0..4 {
        d.mount(&[]);
        let pid = daemon_pid(&d);
        let pid_file = fs::read_dir(&d.run)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(fs::metadata(&pid_file).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::read(d.mnt.join("f")).unwrap(), b"content");
        let o = vigil(&[&"umount", &d.mnt], &d.run);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let alive: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("stat")).ok())
            .filter(|stat| {
                !stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .collect();
        assert!(alive.is_empty(), "threads still running: {alive:?}");
    }
}
