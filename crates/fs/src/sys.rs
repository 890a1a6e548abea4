//! Small safe wrappers over the system calls the passthrough needs that neither std nor
//! rustix offers in the form used here (operations on `O_PATH` descriptors, directory
//! streams with offsets).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

thread_local! {
    /// Whether this thread has its own umask (`unshare(CLONE_FS)`): Some(ok) once tried.
    static OWN_UMASK: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Create something with `make(mode)` as a process whose umask is `umask` would: the
/// calling thread takes that umask for the call (it has its own umask, unshared from
/// the process once), so the backing filesystem applies either the umask or, where
/// the directory has one, its default ACL, exactly as for a native creation. Without
/// a umask of its own the thread applies the umask to `mode` itself.
pub(crate) fn with_umask<R>(
    umask: u32,
    mode: u32,
    make: impl FnOnce(libc::mode_t) -> io::Result<R>,
) -> io::Result<R> {
    let umask = umask & 0o777;
    if umask == 0 {
        return make(mode);
    }
    let own = OWN_UMASK.with(|c| match c.get() {
        Some(ok) => ok,
        None => {
            // SAFETY: unshares only this thread's cwd/root/umask from the process's.
            let ok = unsafe { libc::unshare(libc::CLONE_FS) } == 0;
            c.set(Some(ok));
            ok
        }
    });
    if !own {
        return make(mode & !umask);
    }
    // SAFETY: umask of this thread only (its fs_struct is its own); restored below.
    let old = unsafe { libc::umask(umask) };
    let r = make(mode);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r
}

/// `/proc/self/fd/N`: reopens an `O_PATH` descriptor with real access modes.
pub(crate) fn proc_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a decimal number")
}

pub(crate) fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `openat(dirfd, name, flags, mode)` returning an owned descriptor.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall on a valid C string; the result is a fresh descriptor we own.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode,
        )
    })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reopen an `O_PATH` descriptor with the given flags (through `/proc/self/fd`).
pub(crate) fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = proc_path(fd.as_raw_fd());
    // SAFETY: as in `openat`.
    let raw = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`: works on `O_PATH` descriptors.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    statat(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
}

pub(crate) fn statat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer of the right type.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: fstatat succeeded and filled `st`.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub(crate) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    rdev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, rdev) }).map(drop)
}

pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub(crate) fn renameat2(
    olddir: BorrowedFd<'_>,
    old: &CStr,
    newdir: BorrowedFd<'_>,
    new: &CStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            old.as_ptr(),
            newdir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Hard-link the file behind an `O_PATH` descriptor (needs `CAP_DAC_READ_SEARCH`, which
/// the mounting root has; falls back to the `/proc` path otherwise).
pub(crate) fn link_fd(fd: BorrowedFd<'_>, newdir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall.
    let r = unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            newdir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOENT) && err.raw_os_error() != Some(libc::EPERM) {
        return Err(err);
    }
    let path = proc_path(fd.as_raw_fd());
    // SAFETY: plain syscall.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            path.as_ptr(),
            newdir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

pub(crate) fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer pointer and length describe `buf`.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Change the owner of the file behind an `O_PATH` descriptor, without following it.
pub(crate) fn chown_fd(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let uid = uid.unwrap_or(u32::MAX);
    let gid = gid.unwrap_or(u32::MAX);
    // SAFETY: plain syscall.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub(crate) fn chmod_fd(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    let path = proc_path(fd.as_raw_fd());
    // SAFETY: plain syscall.
    check(unsafe { libc::chmod(path.as_ptr(), mode) }).map(drop)
}

pub(crate) fn utimens_fd(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    let path = proc_path(fd.as_raw_fd());
    // SAFETY: `times` points at two timespecs as utimensat requires.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

/// Set the times of the symbolic link behind an `O_PATH | O_NOFOLLOW` descriptor, not
/// of what it points to (`utimensat` with `AT_EMPTY_PATH`, Linux 5.8 and later).
pub(crate) fn utimens_link(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: `times` points at two timespecs as utimensat requires.
    let r = check(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    });
    match r {
        // Kernels without AT_EMPTY_PATH for utimensat.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        }
        r => r.map(drop),
    }
}

pub(crate) fn statvfs_fd(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: out-pointer of the right type; fstatvfs accepts O_PATH descriptors.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: filled by the successful call.
    Ok(unsafe { st.assume_init() })
}

/// Close a duplicate of `fd`: gives the backing filesystem the `close()` a FLUSH stands for
/// (POSIX lock release, NFS close-to-open) without closing the handle itself.
pub(crate) fn close_dup(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup of a descriptor we hold, closed at once.
    let d = check(unsafe { libc::dup(fd.as_raw_fd()) })?;
    // SAFETY: `d` is ours.
    check(unsafe { libc::close(d) }).map(drop)
}

/// `FUSE_NOTIFY_PRUNE` (protocol 7.45): the kernel drops the dentries of these nodes
/// that nothing uses (no open file, working directory, mount or cached child holds
/// them), and with the last one the inode, which it then forgets. Unknown ids are
/// skipped. fuser has no call for this notification, so it is written to the FUSE
/// device here: `fuse_out_header` (length, the code in `error`, unique 0), then
/// `fuse_notify_prune_out` (count, padding, spare) and the ids.
pub(crate) fn notify_prune(device: BorrowedFd<'_>, ids: &[u64]) -> io::Result<()> {
    const FUSE_NOTIFY_PRUNE: i32 = 9;
    let len = 16 + 16 + 8 * ids.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&FUSE_NOTIFY_PRUNE.to_ne_bytes());
    msg.extend_from_slice(&0u64.to_ne_bytes());
    msg.extend_from_slice(&(ids.len() as u32).to_ne_bytes());
    msg.extend_from_slice(&[0; 12]);
    for id in ids {
        msg.extend_from_slice(&id.to_ne_bytes());
    }
    // SAFETY: the buffer pointer/length describe `msg`.
    let n = unsafe { libc::write(device.as_raw_fd(), msg.as_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != len {
        return Err(io::Error::other("short write of a FUSE notification"));
    }
    Ok(())
}

pub(crate) fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: libc::c_int) -> io::Result<i64> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A directory stream with telldir offsets (for FUSE READDIR's resumable offsets).
pub(crate) struct DirStream {
    dir: *mut libc::DIR,
    /// Offset the stream is positioned at (to avoid needless seekdir calls).
    pos: i64,
}

// SAFETY: the DIR pointer is only ever used under the owning handle's mutex.
unsafe impl Send for DirStream {}

pub(crate) struct DirEntry {
    pub ino: u64,
    pub next_off: i64,
    pub dtype: u8,
    pub name: Vec<u8>,
}

impl DirStream {
    pub(crate) fn open(fd: BorrowedFd<'_>) -> io::Result<DirStream> {
        let dfd = openat(fd, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dfd);
        // SAFETY: `raw` is an open directory descriptor whose ownership passes to the DIR.
        let dir = unsafe { libc::fdopendir(raw) };
        if dir.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so we still own `raw`.
            unsafe { libc::close(raw) };
            return Err(err);
        }
        Ok(DirStream { dir, pos: 0 })
    }

    /// The next entry at or after `offset` (0 = start), or None at the end.
    pub(crate) fn next_at(&mut self, offset: i64) -> io::Result<Option<DirEntry>> {
        if offset != self.pos {
            // SAFETY: valid DIR; offsets come from earlier telldir/d_off values or 0.
            unsafe { libc::seekdir(self.dir, offset as libc::c_long) };
            self.pos = offset;
        }
        // readdir reports errors only through errno, which must be cleared first.
        // SAFETY: errno location is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: valid DIR.
        let ent = unsafe { libc::readdir64(self.dir) };
        if ent.is_null() {
            // SAFETY: as above.
            let e = unsafe { *libc::__errno_location() };
            return if e == 0 {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(e))
            };
        }
        // SAFETY: readdir returned a valid entry that stays valid until the next call.
        let ent = unsafe { &*ent };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) }
            .to_bytes()
            .to_vec();
        self.pos = ent.d_off;
        Ok(Some(DirEntry {
            ino: ent.d_ino,
            next_off: ent.d_off,
            dtype: ent.d_type,
            name,
        }))
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: the DIR is valid and closed exactly once.
        unsafe { libc::closedir(self.dir) };
    }
}

pub(crate) fn dtype_kind(d: u8) -> FileType {
    match d {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub(crate) fn mode_kind(mode: libc::mode_t) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub(crate) fn systime(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::from_nanos(nsec as u64)
    }
}

pub(crate) fn to_attr(ino: u64, st: &libc::stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: systime(st.st_atime, st.st_atime_nsec),
        mtime: systime(st.st_mtime, st.st_mtime_nsec),
        ctime: systime(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: mode_kind(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

pub(crate) fn timespec(t: Option<fuser::TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(fuser::TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(fuser::TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as i64,
            },
            // fuser 0.18 turns the kernel's (tv_sec < 0, tv_nsec) into the epoch minus
            // |tv_sec| s minus tv_nsec ns (its `system_time_from_time`), so the two are
            // read back from that distance as they came, not as the time it names:
            // 23:59:59.25 on 1969-12-31 arrives as (-1, 250000000).
            Err(e) => libc::timespec {
                tv_sec: -(e.duration().as_secs() as i64),
                tv_nsec: e.duration().subsec_nanos() as i64,
            },
        },
    }
}

/// errno of an I/O error, EIO if it carries none.
pub(crate) fn errno(e: &io::Error) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The value of the `name` line (`"CapEff:"`) of process `pid`'s `/proc/PID/status`.
pub(crate) fn proc_status(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
}

/// Whether thread `tid` has been killed: a SIGKILL is pending for it, as for every
/// thread of a process that a fatal signal ends, while it still waits in a system
/// call (a FUSE request, once sent to the daemon, holds its caller until answered).
/// False if that cannot be told (`tid` 0: a caller outside the daemon's PID
/// namespace, or page-cache writeback).
pub(crate) fn killed(tid: u32) -> bool {
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    if tid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    // The thread's own pending signals and its process's.
    status.lines().any(|l| {
        l.strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"))
            .and_then(|set| u64::from_str_radix(set.trim(), 16).ok())
            .is_some_and(|set| set & SIGKILL_BIT != 0)
    })
}

/// ioctl `cmd` on `fd` with a pointer to `arg` (read from and/or written to).
pub(crate) fn ioctl_buf(fd: BorrowedFd<'_>, cmd: u32, arg: &mut [u8]) -> io::Result<()> {
    // SAFETY: `arg` is a live buffer of the size the ioctl's argument has (the caller's
    // contract); the kernel reads or writes only that much.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg.as_mut_ptr()) }).map(drop)
}
