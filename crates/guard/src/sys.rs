//! Kernel interfaces behind safe functions: statx, file handles, xattrs, memfd seals,
//! fsync of directories.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, StatxFlags};

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): the 64-bit mount id that is never reused.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
/// Longest handle the kernel hands out (`MAX_HANDLE_SZ`).
pub const MAX_HANDLE_SZ: usize = 128;

/// The attributes vigil reads with one `statx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub ctime_ns: i128,
    /// Birth time in ns, if the filesystem records one.
    pub btime_ns: Option<i128>,
    /// Mount id and whether it is the unique (never reused) kind.
    pub mnt_id: u64,
    pub mnt_id_unique: bool,
}

fn ts_ns(t: rustix::fs::StatxTimestamp) -> i128 {
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

/// `statx(dirfd, path)` (`path` empty = the descriptor itself), with btime, ctime (ns)
/// and the unique mount id where the kernel has it.
pub fn statx(dirfd: BorrowedFd<'_>, path: &Path) -> io::Result<Stat> {
    let flags = if path.as_os_str().is_empty() {
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let want = StatxFlags::BASIC_STATS
        | StatxFlags::BTIME
        | StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE);
    let st = rustix::fs::statx(dirfd, path, flags, want)?;
    let got = st.stx_mask;
    let unique = got & STATX_MNT_ID_UNIQUE != 0;
    Ok(Stat {
        dev: (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor),
        ino: st.stx_ino,
        mode: u32::from(st.stx_mode),
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: st.stx_size,
        ctime_ns: ts_ns(st.stx_ctime),
        btime_ns: (got & StatxFlags::BTIME.bits() != 0).then(|| ts_ns(st.stx_btime)),
        mnt_id: st.stx_mnt_id,
        mnt_id_unique: unique,
    })
}

/// A file handle as `name_to_handle_at` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

#[repr(C)]
struct HandleBuf {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `name_to_handle_at(dirfd, path, AT_EMPTY_PATH when path is empty)`.
/// `Ok(None)` when the filesystem cannot encode handles (EOPNOTSUPP).
pub fn name_to_handle(dirfd: BorrowedFd<'_>, path: &Path) -> io::Result<Option<RawHandle>> {
    let c = cpath(path)?;
    let flags = if path.as_os_str().is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    let mut buf = HandleBuf {
        handle_bytes: MAX_HANDLE_SZ as u32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` is a `struct file_handle` with MAX_HANDLE_SZ bytes of room, as
    // `handle_bytes` says; `c` is NUL-terminated; `mount_id` is a valid int.
    let rc = unsafe {
        libc::name_to_handle_at(
            dirfd.as_raw_fd(),
            c.as_ptr(),
            (&mut buf as *mut HandleBuf).cast(),
            &mut mount_id,
            flags,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(err),
        };
    }
    let n = (buf.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok(Some(RawHandle {
        handle_type: buf.handle_type,
        bytes: buf.f_handle[..n].to_vec(),
    }))
}

/// Whether `handle` still names a file on the file system of `mount_fd` (`ESTALE`:
/// the file is gone). Opens nothing but an `O_PATH` descriptor, closed at once.
pub fn handle_names_a_file(mount_fd: BorrowedFd<'_>, handle: &RawHandle) -> io::Result<bool> {
    match open_by_handle_flags(mount_fd, handle, libc::O_PATH) {
        Ok(fd) => {
            // SAFETY: the kernel just returned this descriptor to us; closed here.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::ESTALE) => Ok(false),
        Err(e) => Err(e),
    }
}

fn open_by_handle_flags(
    mount_fd: BorrowedFd<'_>,
    handle: &RawHandle,
    flags: i32,
) -> io::Result<i32> {
    if handle.bytes.len() > MAX_HANDLE_SZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut buf = HandleBuf {
        handle_bytes: handle.bytes.len() as u32,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    buf.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `buf` is a valid `struct file_handle` of `handle_bytes` bytes.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&mut buf as *mut HandleBuf).cast(),
            libc::O_CLOEXEC | flags,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// `open_by_handle_at(mount_fd, handle, O_RDONLY|O_CLOEXEC|O_NOATIME)`; needs
/// CAP_DAC_READ_SEARCH.
pub fn open_by_handle(mount_fd: BorrowedFd<'_>, handle: &RawHandle) -> io::Result<File> {
    let open = |flags: i32| open_by_handle_flags(mount_fd, handle, libc::O_RDONLY | flags);
    // Reading a file to re-measure it is nobody's access, so its atime stays (O_NOATIME
    // needs the file's owner or CAP_FOWNER; without, the file is opened as is).
    let fd = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        r => r?,
    };
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `FS_IOC_GETVERSION` (inode generation), where the filesystem has it.
pub fn inode_generation(fd: BorrowedFd<'_>) -> Option<u32> {
    let mut v: libc::c_long = 0;
    // FS_IOC_GETVERSION = _IOR('v', 1, long)
    const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
    // SAFETY: the ioctl writes one `long` into `v`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETVERSION as _, &mut v) };
    (rc == 0).then_some(v as u32)
}

/// The legacy mount id of `fd`'s mount (the one mountinfo lists).
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(st.stx_mnt_id)
}

/// `FS_IOC_GETFSUUID` (Linux 6.7): the file system's UUID; `None` when it has none or
/// the kernel is older.
pub fn fs_uuid(fd: BorrowedFd<'_>) -> Option<[u8; 16]> {
    /// `struct fsuuid2`.
    #[repr(C)]
    struct FsUuid2 {
        len: u8,
        uuid: [u8; 16],
    }
    /// `_IOR(0x15, 0, struct fsuuid2)`.
    const FS_IOC_GETFSUUID: libc::c_ulong = 0x8011_1500;
    let mut v = FsUuid2 {
        len: 0,
        uuid: [0; 16],
    };
    // SAFETY: the kernel writes at most size_of::<FsUuid2>() bytes into `v`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFSUUID as _, &mut v) };
    if rc != 0 {
        return None;
    }
    let mut uuid = [0u8; 16];
    let n = usize::from(v.len).min(16);
    uuid[..n].copy_from_slice(&v.uuid[..n]);
    Some(uuid)
}

/// The filesystem magic (`statfs.f_type`) of the file.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(fs_magic_and_id(fd)?.0)
}

/// The file system's magic number and its id (`f_fsid`, as one number; 0 when the
/// file system gives none). Local file systems derive the id from what identifies the
/// file system itself (ext4, XFS, btrfs: its UUID), so it is the same at every mount.
pub fn fs_magic_and_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::statfs64>::zeroed();
    // SAFETY: fstatfs64 fills the buffer on success; on failure it is not read.
    if unsafe { libc::fstatfs64(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: filled above.
    let st = unsafe { st.assume_init() };
    // SAFETY: `fsid_t` is two C ints (its fields are private in `libc`).
    let [a, b]: [libc::c_int; 2] = unsafe { std::mem::transmute(st.f_fsid) };
    let id = u64::from(a as u32) | u64::from(b as u32) << 32;
    Ok((st.f_type as u64, id))
}

/// Read an xattr; `Ok(None)` when absent or unsupported.
pub fn get_xattr(fd: BorrowedFd<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::OPNOTSUPP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 65536 => {
                let want = rustix::fs::fgetxattr_query(fd, name)?;
                buf.resize(want.max(buf.len() * 2).min(65536), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write an xattr.
pub fn set_xattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// fsync a directory, so that a rename or unlink in it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Seals requested for a memfd.
pub use rustix::fs::SealFlags;

/// Create a memfd that allows sealing; `exec` picks `MFD_EXEC`, else `MFD_NOEXEC_SEAL`.
/// Kernels before 6.3 do not know either flag: retry with plain `MFD_ALLOW_SEALING`.
pub fn memfd(name: &str, exec: bool) -> io::Result<OwnedFd> {
    use rustix::fs::MemfdFlags as M;
    let extra = if exec { M::EXEC } else { M::NOEXEC_SEAL };
    match rustix::fs::memfd_create(name, M::CLOEXEC | M::ALLOW_SEALING | extra) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::INVAL) => Ok(rustix::fs::memfd_create(
            name,
            M::CLOEXEC | M::ALLOW_SEALING,
        )?),
        Err(e) => Err(e.into()),
    }
}

/// `F_ADD_SEALS`.
pub fn add_seals(fd: BorrowedFd<'_>, seals: SealFlags) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(fd, seals)?)
}

/// `F_GET_SEALS`.
pub fn get_seals(fd: impl AsFd) -> io::Result<SealFlags> {
    Ok(rustix::fs::fcntl_get_seals(fd)?)
}
