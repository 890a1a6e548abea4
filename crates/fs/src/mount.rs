//! Mounting, serving and unmounting.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionACL};

use vigil_ima::mountinfo;

use crate::enforce::Enforcer;
use crate::fs::{Shared, VigilFs, READ_AHEAD};
use crate::sys;

/// How to mount.
pub struct MountOptions {
    /// The directory whose content the mount shows.
    pub source: PathBuf,
    /// Where to mount (may be `source` itself: its descriptor is opened first).
    pub mountpoint: PathBuf,
    /// FUSE event-loop threads, each with its own /dev/fuse descriptor.
    pub loop_threads: usize,
    /// Worker threads for opens, fsync and other slow requests.
    pub workers: usize,
    /// Worker threads for reads.
    pub read_workers: usize,
    /// Abort the FUSE connection if one request runs longer than this.
    pub watchdog: Option<Duration>,
    /// Readahead window for the mount, in KiB (the kernel's default is 128).
    pub read_ahead_kb: u32,
    /// The enforcement core: policy, appraisal, measurement log, seals, trees.
    pub guard: vigil_guard::Guard,
    /// Verify every read of a measured file against its Merkle tree (the guard must
    /// have been configured with [`crate::verity::tree_builder`]).
    pub verify_reads: bool,
    /// Mount flags beyond the fixed `nosuid,nodev`.
    pub flags: MountFlags,
    /// Files and directories the daemon keeps open for the kernel (one descriptor each)
    /// before it asks the kernel to forget some; `None`: 3/4 of the open-file limit.
    pub max_nodes: Option<usize>,
    /// Have the kernel forget unused files and directories with `FUSE_NOTIFY_PRUNE`
    /// where it takes that (default). Off, only what older kernels allow is done:
    /// dropping unused files' dentries by name.
    pub prune: bool,
}

/// The kernel's mount flags a user may choose (`nosuid` and `nodev` always hold).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    /// Mount read-only (`MS_RDONLY`): the kernel refuses every change with EROFS
    /// before it reaches the daemon.
    pub read_only: bool,
    /// Do not allow programs on the mount to be executed (`MS_NOEXEC`).
    pub no_exec: bool,
    /// Do not update access times (`MS_NOATIME`).
    pub no_atime: bool,
}

impl MountFlags {
    fn options(self) -> impl Iterator<Item = MountOption> {
        [
            (self.read_only, MountOption::RO),
            (self.no_exec, MountOption::NoExec),
            (self.no_atime, MountOption::NoAtime),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
    }
}

impl MountOptions {
    pub fn new(
        source: impl Into<PathBuf>,
        mountpoint: impl Into<PathBuf>,
        guard: vigil_guard::Guard,
    ) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        MountOptions {
            source: source.into(),
            mountpoint: mountpoint.into(),
            // More loops than CPUs: an OPEN need not wait behind the RELEASE and LOOKUP
            // requests of the same close/open cycle (4 loops on 2 CPUs halved the cost of
            // an open+close against 2).
            loop_threads: (cpus * 2).clamp(4, 16),
            workers: (cpus * 2).clamp(4, 32),
            read_workers: cpus.clamp(1, 32),
            watchdog: Some(Duration::from_secs(120)),
            read_ahead_kb: READ_AHEAD / 1024,
            guard,
            verify_reads: true,
            flags: MountFlags::default(),
            max_nodes: None,
            prune: true,
        }
    }
}

/// A mounted filesystem, not yet serving (the kernel queues requests until `run`).
pub struct Mount {
    session: Session<VigilFs>,
    shared: Arc<Shared>,
    mountpoint: PathBuf,
    conn: Option<String>,
    watchdog: Option<Duration>,
}

fn io_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Block the termination signals in the calling thread and every thread it creates
/// afterwards, so that [`Mount::run`] can wait for them in one place. Call before
/// [`Mount::new`].
pub fn block_signals() {
    // SAFETY: sigset manipulation on a local set, then pthread_sigmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The FUSE connection id ("device minor") of the mount at `mnt`, from mountinfo.
fn connection_of(mnt: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo::parse(&info)
        .filter(|m| m.mount_point == mnt && m.fs_name() == "fuse")
        .last()
        .map(|m| ((u64::from(m.major) << 20) | u64::from(m.minor)).to_string())
}

/// Abort the FUSE connection `conn` (all pending and future requests fail with
/// ENOTCONN), mounting fusectl if needed.
pub fn abort_connection(conn: &str) -> io::Result<()> {
    let dir = Path::new("/sys/fs/fuse/connections");
    if !dir.join(conn).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"])
            .status();
    }
    std::fs::write(dir.join(conn).join("abort"), b"1")
}

/// Every node the kernel knows holds a descriptor of its backing file, so the usual
/// default soft limit of 1024 open files would fail lookups and opens with EMFILE after
/// about a thousand files: raise it to the kernel's ceiling (`fs.nr_open`) where the
/// process may (root), else to the hard limit. Returns the limit.
fn raise_open_file_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let now = getrlimit(Resource::Nofile);
    if let Some(c) = ceiling.filter(|&c| now.maximum.is_some_and(|h| h < c)) {
        let lifted = Rlimit {
            current: Some(c),
            maximum: Some(c),
        };
        if setrlimit(Resource::Nofile, lifted).is_ok() {
            return c as usize;
        }
    }
    let soft = match (now.maximum, ceiling) {
        (Some(h), Some(c)) => Some(h.min(c)),
        (h, c) => h.or(c),
    };
    if now.current.is_some() && soft > now.current {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: soft,
                maximum: now.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| n as usize)
}

impl Mount {
    /// Open the source, then mount over the mount point. Raises the process's limit
    /// of open files (each file the kernel has looked up holds one).
    pub fn new(opts: MountOptions) -> io::Result<Mount> {
        let open_files = raise_open_file_limit();
        let src = CString::new(opts.source.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: plain open of a C string path.
        let raw = unsafe {
            libc::open(
                src.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io_context(
                io::Error::last_os_error(),
                format!("{}", opts.source.display()),
            ));
        }
        // SAFETY: fresh descriptor.
        let root = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let mountpoint = std::fs::canonicalize(&opts.mountpoint)
            .map_err(|e| io_context(e, format!("{}", opts.mountpoint.display())))?;
        // Files are created with exactly the mode the kernel sends (it applied the
        // caller's umask already).
        // SAFETY: trivial.
        unsafe { libc::umask(0) };
        let source = std::fs::canonicalize(&opts.source).unwrap_or_else(|_| opts.source.clone());
        let enforcer = Enforcer::new(
            opts.guard,
            &mountpoint,
            &source,
            root.as_fd(),
            opts.verify_reads,
        )?;
        // The rest is for open files, the state directory and the guard's work.
        let max_nodes = opts.max_nodes.unwrap_or(open_files / 4 * 3);
        let fs = VigilFs::new(
            root,
            Arc::new(enforcer),
            opts.workers,
            opts.read_workers,
            max_nodes,
        )?;
        let shared = fs.shared.clone();
        let mut config = Config::default();
        config.mount_options = vec![
            // The source as fstab names it, so `mount -a` sees the mount is there.
            MountOption::FSName(opts.source.display().to_string()),
            // The type shows as `fuse.vigil` (fuser hands `Subtype` to fusermount only;
            // the kernel takes it as a mount parameter too).
            MountOption::CUSTOM("subtype=vigil".into()),
            MountOption::DefaultPermissions,
            MountOption::NoSuid,
            MountOption::NoDev,
        ];
        config.mount_options.extend(opts.flags.options());
        // SAFETY: trivial getter.
        if unsafe { libc::geteuid() } == 0 {
            config.acl = SessionACL::All;
        }
        config.n_threads = Some(opts.loop_threads.max(1));
        config.clone_fd = true;
        let session = Session::new(fs, &mountpoint, &config)
            .map_err(|e| io_context(e, format!("mounting on {}", mountpoint.display())))?;
        let _ = shared.notifier.set(session.notifier());
        if opts.prune {
            if let Ok(device) = session.as_fd().try_clone_to_owned() {
                let _ = shared.device.set(device);
            }
        }
        let conn = connection_of(&mountpoint);
        if let Some(c) = &conn {
            // Larger readahead means fewer, bigger READs (each is a round trip).
            let bdi = format!(
                "/sys/class/bdi/{}:{}/read_ahead_kb",
                c.parse::<u64>().unwrap_or(0) >> 20,
                c.parse::<u64>().unwrap_or(0) & 0xfffff
            );
            let _ = std::fs::write(bdi, opts.read_ahead_kb.to_string());
        }
        Ok(Mount {
            session,
            shared,
            mountpoint,
            conn,
            watchdog: opts.watchdog,
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Serve requests until the filesystem is unmounted (`umount`, `fusermount3 -u`,
    /// `vigil umount`) or, with `signals`, a SIGTERM/SIGINT/SIGHUP arrives (which
    /// detaches the mount; open files keep working until closed). Requires
    /// [`block_signals`] to have been called first when `signals` is set.
    pub fn run(self, signals: bool) -> io::Result<()> {
        let Mount {
            session,
            shared,
            mountpoint,
            conn,
            watchdog,
        } = self;
        if let (Some(limit), Some(conn)) = (watchdog, conn.clone()) {
            let mnt = mountpoint.clone();
            let pools = [
                &shared.pool,
                &shared.measuring,
                &shared.readers,
                &shared.direct_io,
                &shared.prefetch,
            ];
            crate::pool::watchdog(&pools, limit, move |age| {
                eprintln!(
                    "vigil-fs: a request on {} has run for {:?}; aborting the connection so no process hangs",
                    mnt.display(),
                    age
                );
                if abort_connection(&conn).is_err() {
                    let _ = detach(&mnt);
                }
            });
        }
        if signals {
            // Weak: the guard, whose drop releases the state directory's lock, goes when
            // the session ends, not when the process does.
            let (mnt, shared) = (mountpoint.clone(), Arc::downgrade(&shared));
            std::thread::Builder::new()
                .name("vigil-fs-signals".into())
                .spawn(move || {
                    // SAFETY: local sigset, sigwait on signals blocked in every thread.
                    let wait = || unsafe {
                        let mut set: libc::sigset_t = std::mem::zeroed();
                        libc::sigemptyset(&mut set);
                        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                            libc::sigaddset(&mut set, s);
                        }
                        let mut sig = 0;
                        libc::sigwait(&set, &mut sig);
                    };
                    wait();
                    if let Err(e) = detach(&mnt) {
                        eprintln!("vigil-fs: unmounting {}: {e}", mnt.display());
                    }
                    // The daemon ends once the mount's last user is gone and the
                    // deferred re-measurements are done; a second signal stops those.
                    wait();
                    eprintln!(
                        "vigil-fs: second signal: giving up the measurements in progress on {}",
                        mnt.display()
                    );
                    if let Some(shared) = shared.upgrade() {
                        shared.enforce.abandon_measurements();
                    }
                })?;
        }
        // An aborted connection makes fuser 0.18 return the ECONNABORTED of its read of
        // /dev/fuse (FUSE_ABORT_ERROR; an unmount reads ENODEV) as an error (fuser#212).
        // The session is over either way: fuser later treats both alike (fuser#708).
        let r = session.run();
        let aborted = matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED));
        shared.shutdown_workers();
        // The re-measurements owed to files written through the mount are made, so
        // that their hash values follow those writes; after an abort (by the watchdog
        // or by hand: something is wrong, and the daemon is to go) they are given up.
        if aborted {
            shared.enforce.abandon_measurements();
        }
        shared.enforce.shutdown();
        if aborted {
            Ok(())
        } else {
            r
        }
    }

    /// Serve from a background thread (for embedding and tests).
    pub fn spawn(self) -> io::Result<Background> {
        let mountpoint = self.mountpoint.clone();
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-fs".into())
            .spawn(move || self.run(false))?;
        Ok(Background {
            thread: Some(thread),
            mountpoint,
            shared,
        })
    }
}

/// Lazily detach the mount at `mnt` (`umount -l`).
pub fn detach(mnt: &Path) -> io::Result<()> {
    let c = CString::new(mnt.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmount the mount at `mnt` (fails with EBUSY while it is in use).
pub fn unmount(mnt: &Path) -> io::Result<()> {
    let c = CString::new(mnt.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EPERM) {
        // Not root: the setuid helper may unmount mounts this user owns.
        let st = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(mnt)
            .status()?;
        if st.success() {
            return Ok(());
        }
    }
    Err(err)
}

/// A mount served from a background thread; unmounted when dropped.
pub struct Background {
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
    mountpoint: PathBuf,
    shared: Arc<Shared>,
}

impl Background {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Number of nodes the kernel currently holds (for tests of lookup accounting).
    pub fn live_nodes(&self) -> usize {
        self.shared.inodes.len()
    }

    /// Whether the kernel can be asked to forget unused directories too
    /// (`FUSE_NOTIFY_PRUNE`, protocol 7.45); without it only other files are dropped.
    pub fn forgets_directories(&self) -> bool {
        self.shared.forgets_directories()
    }

    /// The enforcement core serving the mount.
    pub fn guard(&self) -> &vigil_guard::Guard {
        self.shared.enforce.guard()
    }

    /// Open handles (files and directories).
    pub fn open_handles(&self) -> usize {
        self.shared.handles.len()
    }

    /// Files and directories the kernel knows through the mount (each holds a
    /// descriptor of its backing file).
    pub fn nodes(&self) -> usize {
        self.shared.inodes.len()
    }

    /// Unmount (lazily if busy) and wait for the serving threads to end.
    pub fn unmount(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        if unmount(&self.mountpoint).is_err() {
            detach(&self.mountpoint)?;
        }
        t.join()
            .map_err(|_| io::Error::other("filesystem thread panicked"))?
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Whether `path` is a mount point of a vigil mount (checked in mountinfo, without
/// touching the mount itself).
pub fn is_vigil_mount(path: &Path) -> bool {
    let Ok(p) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // Daemons of earlier versions mounted type `fuse` with source `vigil:SRC`.
    let found = mountinfo::parse(&info).any(|m| {
        m.mount_point == p
            && (m.fs_type == "fuse.vigil"
                || (m.fs_type == "fuse" && m.source.starts_with("vigil:")))
    });
    found
}

#[allow(dead_code)]
fn _assert_send() {
    fn s<T: Send>() {}
    s::<sys::DirStream>();
}
