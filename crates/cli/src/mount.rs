//! `vigil mount`, `umount`, `status`, `seal`, `unseal`: the verified FUSE mount.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use vigil_fs::{ioctl, Mount, MountOptions, Passthrough};

#[derive(Subcommand)]
pub enum Command {
    /// Mount SRC on MNT through vigil: every file opened through MNT is measured,
    /// appraised, verified block by block as it is read, and protected against change.
    ///
    /// MNT may be SRC itself: the source is opened before mounting, so the mount then
    /// hides the backing files from writes that would bypass it. By default vigil
    /// returns once the mount is ready and keeps serving it in the background; it stops
    /// at `vigil umount MNT`, `fusermount3 -u MNT`, `umount MNT` or SIGTERM.
    ///
    /// Exit status: 0 mounted (or, with --foreground, unmounted cleanly), 2 on bad
    /// usage or when the mount fails.
    Mount(MountArgs),
    /// Unmount a vigil mount and wait for its daemon to finish writing its state.
    ///
    /// Exit status: 0 unmounted, 1 busy (files still open; see --lazy), 2 not a
    /// mount or other error.
    Umount(UmountArgs),
    /// Summarise a vigil mount: measurement records, violations and PCR values, read
    /// from MNT/.vigil/.
    ///
    /// Exit status: 0, or 2 if MNT is not a vigil mount.
    Status(StatusArgs),
    /// Seal a file on a vigil mount: from then on, write opens, writes, truncation and
    /// fallocate fail with EPERM until `vigil unseal`. Refused (EBUSY) while any
    /// writer or writable mapping exists; vigil retries until --timeout.
    ///
    /// Exit status: 0 sealed, 1 still busy at the timeout, 2 other errors.
    Seal(SealArgs),
    /// Remove the seal of a file on a vigil mount (root only).
    ///
    /// Exit status: 0 unsealed, 2 on error.
    Unseal(UnsealArgs),
}

#[derive(Args)]
pub struct MountArgs {
    /// The source directory.
    pub source: PathBuf,
    /// The mount point (an existing directory; may be SOURCE).
    pub mountpoint: PathBuf,
    /// Stay in the foreground (logs go to stderr) instead of detaching.
    #[arg(short, long)]
    pub foreground: bool,
    /// FUSE event-loop threads (default: CPUs, 2 to 8).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Worker threads for reads, opens and fsync (default: 2 × CPUs, 4 to 32).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Abort the FUSE connection when one request takes longer than SECS, so no
    /// process hangs on the mount (0 disables).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub watchdog: u64,
    /// Write the daemon's log lines (audit records of refused opens, tampered blocks)
    /// to FILE instead of discarding them when detached.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

#[derive(Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach now even if files are open (they keep working until closed).
    #[arg(short, long)]
    pub lazy: bool,
    /// Seconds to wait for the daemon to exit after unmounting.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub wait: u64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SealArgs {
    /// Files on a vigil mount.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Seconds to keep retrying while the file has writers (a writer's close reaches
    /// the daemon asynchronously).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// Files on a vigil mount.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Mount(a) => mount(a),
        Command::Umount(a) => umount(a),
        Command::Status(a) => status(a),
        Command::Seal(a) => seal(a),
        Command::Unseal(a) => unseal(a),
    }
}

/// Where the daemon of the mount at `mnt` records its pid.
fn pid_file(mnt: &Path) -> PathBuf {
    let dir = std::env::var_os("VIGIL_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/vigil".into());
    let name: String = mnt
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("mount{name}.pid"))
}

fn check_dir(p: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let c = std::fs::canonicalize(p).with_context(|| format!("{what} {}", p.display()))?;
    if !c.is_dir() {
        bail!("{what} {}: not a directory", p.display());
    }
    Ok(c)
}

fn mount(a: MountArgs) -> anyhow::Result<ExitCode> {
    let src = check_dir(&a.source, "source")?;
    let mnt = check_dir(&a.mountpoint, "mount point")?;
    if vigil_fs::is_vigil_mount(&mnt) && src != mnt {
        bail!("{}: already a vigil mount", mnt.display());
    }
    let mut opts = MountOptions::new(&src, &mnt, Arc::new(Passthrough));
    if let Some(n) = a.threads {
        opts.loop_threads = n.max(1);
    }
    if let Some(n) = a.workers {
        opts.workers = n.max(1);
    }
    opts.watchdog = (a.watchdog > 0).then(|| Duration::from_secs(a.watchdog));

    if a.foreground {
        vigil_fs::block_signals();
        let m = Mount::new(opts)
            .with_context(|| format!("mounting {} on {}", src.display(), mnt.display()))?;
        let pidf = write_pid(&mnt);
        eprintln!("vigil: {} mounted on {}", src.display(), mnt.display());
        let r = m.run(true);
        if let Some(p) = pidf {
            let _ = std::fs::remove_file(p);
        }
        r.context("serving the mount")?;
        return Ok(ExitCode::SUCCESS);
    }

    // Detach: fork before any thread exists; the child mounts and reports back
    // through a pipe, so the parent returns only once the mount is usable.
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: fresh descriptors.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(rd);
            let code = daemon(opts, &src, &mnt, wr, a.log.as_deref());
            std::process::exit(code);
        }
        _child => {
            drop(wr);
            let mut msg = String::new();
            std::fs::File::from(rd)
                .read_to_string(&mut msg)
                .context("waiting for the mount")?;
            match msg.strip_prefix("ok") {
                Some(_) => Ok(ExitCode::SUCCESS),
                None if msg.is_empty() => bail!("the mount daemon died before the mount was ready"),
                None => bail!("{}", msg.trim_end()),
            }
        }
    }
}

fn write_pid(mnt: &Path) -> Option<PathBuf> {
    let p = pid_file(mnt);
    std::fs::create_dir_all(p.parent()?).ok()?;
    std::fs::write(&p, format!("{}\n", std::process::id())).ok()?;
    Some(p)
}

/// The detached daemon: mount, report, serve. Returns the exit code.
fn daemon(opts: MountOptions, src: &Path, mnt: &Path, report: OwnedFd, log: Option<&Path>) -> i32 {
    // SAFETY: setsid in the freshly forked child.
    unsafe { libc::setsid() };
    vigil_fs::block_signals();
    let mut report = std::fs::File::from(report);
    let m = match Mount::new(opts) {
        Ok(m) => m,
        Err(e) => {
            let _ = write!(
                report,
                "mounting {} on {}: {e}",
                src.display(),
                mnt.display()
            );
            return 2;
        }
    };
    let pidf = write_pid(mnt);
    // Detach from the terminal: stdin from /dev/null, stdout/stderr to the log file.
    let out = log
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .or_else(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok()
        });
    if let (Ok(null), Some(out)) = (std::fs::File::open("/dev/null"), out) {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(out.as_raw_fd(), 2);
        }
    }
    let _ = report.write_all(b"ok");
    drop(report);
    let r = m.run(true);
    if let Some(p) = pidf {
        let _ = std::fs::remove_file(p);
    }
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vigil: serving {}: {e}", mnt.display());
            2
        }
    }
}

fn umount(a: UmountArgs) -> anyhow::Result<ExitCode> {
    let mnt = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("{}", a.mountpoint.display()))?;
    if !vigil_fs::is_vigil_mount(&mnt) {
        bail!("{}: not a vigil mount", mnt.display());
    }
    let pid = std::fs::read_to_string(pid_file(&mnt))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let r = if a.lazy {
        vigil_fs::detach(&mnt)
    } else {
        vigil_fs::unmount(&mnt)
    };
    if let Err(e) = r {
        if e.raw_os_error() == Some(libc::EBUSY) {
            eprintln!(
                "vigil: {}: busy (files are open); retry, or use --lazy",
                mnt.display()
            );
            return Ok(ExitCode::from(1));
        }
        return Err(e).with_context(|| format!("unmounting {}", mnt.display()));
    }
    if let Some(pid) = pid {
        let deadline = Instant::now() + Duration::from_secs(a.wait);
        // SAFETY: signal 0 only probes for the process.
        while unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
            if Instant::now() > deadline {
                eprintln!(
                    "vigil: {}: unmounted, but daemon {pid} is still running",
                    mnt.display()
                );
                return Ok(ExitCode::from(1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let mnt = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("{}", a.mountpoint.display()))?;
    if !vigil_fs::is_vigil_mount(&mnt) {
        bail!("{}: not a vigil mount", mnt.display());
    }
    let dir = mnt.join(vigil_fs::control::DIR_NAME);
    let read = |name: &str| {
        std::fs::read(dir.join(name)).with_context(|| format!("{}", dir.join(name).display()))
    };
    let ascii = String::from_utf8_lossy(&read("ascii_runtime_measurements")?).into_owned();
    let binary = read("binary_runtime_measurements")?;
    let violations = String::from_utf8_lossy(&read("violations")?)
        .trim()
        .to_owned();
    let pcrs = String::from_utf8_lossy(&read("pcrs")?).into_owned();
    let records = ascii.lines().filter(|l| !l.trim().is_empty()).count();
    if a.json {
        let v = serde_json::json!({
            "mountpoint": mnt,
            "records": records,
            "binary_list_bytes": binary.len(),
            "violations": violations.parse::<u64>().unwrap_or(0),
            "pcrs": pcrs.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("mount:        {}", mnt.display());
        println!(
            "measurements: {records} records ({} bytes binary)",
            binary.len()
        );
        println!("violations:   {violations}");
        for l in pcrs.lines().filter(|l| !l.trim().is_empty()) {
            println!("{l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Issue one of the mount's ioctls on `path`.
fn file_ioctl(path: &Path, cmd: u32) -> std::io::Result<i32> {
    let f = std::fs::File::open(path)?;
    // SAFETY: an argument-less ioctl on our descriptor.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as libc::c_ulong) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

fn explain(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENOTTY) || e.raw_os_error() == Some(libc::ENOSYS) {
        anyhow::anyhow!("{}: not on a vigil mount", path.display())
    } else {
        anyhow::Error::new(e).context(path.display().to_string())
    }
}

fn seal(a: SealArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for p in &a.files {
        let deadline = Instant::now() + Duration::from_secs_f64(a.timeout.max(0.0));
        let mut wait = Duration::from_millis(5);
        loop {
            match file_ioctl(p, ioctl::SEAL) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if Instant::now() >= deadline {
                        let writers = file_ioctl(p, ioctl::STATUS)
                            .map(|s| s & !ioctl::STATUS_SEALED)
                            .unwrap_or(-1);
                        eprintln!(
                            "vigil: {}: busy: {writers} writer(s) still open",
                            p.display()
                        );
                        failed = true;
                        break;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(explain(p, e)),
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn unseal(a: UnsealArgs) -> anyhow::Result<ExitCode> {
    for p in &a.files {
        file_ioctl(p, ioctl::UNSEAL).map_err(|e| explain(p, e))?;
    }
    Ok(ExitCode::SUCCESS)
}
