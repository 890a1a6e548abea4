//! What the mount tests share (each test file uses a part of it).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_fs::{Background, Mount, MountOptions};
use vigil_guard::{Config, Guard};

/// FUSE mounts need root and /dev/fuse; without them the tests say so and pass.
pub fn can_mount() -> bool {
    // SAFETY: trivial getter.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: FUSE mounts need root and /dev/fuse");
        return false;
    }
    true
}

/// A scratch directory beside the build (on the disk's file system, not /tmp) holding
/// the given subdirectories, empty; it goes when the returned handle is dropped.
pub fn scratch<const N: usize>(subdirs: [&str; N]) -> (tempfile::TempDir, [PathBuf; N]) {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fs-tests");
    fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(fs::canonicalize(base).unwrap()).unwrap();
    let paths = subdirs.map(|n| dir.path().join(n));
    for p in &paths {
        fs::create_dir(p).unwrap();
    }
    (dir, paths)
}

/// Mount `src` on `mnt` in the background, through a guard with `cfg` (which gets the
/// real Merkle tree builder) and its state in `scratch`/state.
pub fn mount(src: &Path, mnt: &Path, scratch: &Path, cfg: Config) -> Background {
    mount_with(src, mnt, scratch, cfg, |_| {})
}

/// As [`mount`], with the mount options changed by `edit`.
pub fn mount_with(
    src: &Path,
    mnt: &Path,
    scratch: &Path,
    cfg: Config,
    edit: impl FnOnce(&mut MountOptions),
) -> Background {
    let cfg = Config {
        tree_builder: Some(vigil_fs::verity::tree_builder()),
        ..cfg
    };
    let guard = Guard::new(cfg, scratch.join("state")).unwrap();
    let mut opts = MountOptions::new(src, mnt, guard);
    edit(&mut opts);
    Mount::new(opts).unwrap().spawn().unwrap()
}

/// Wait until the kernel has released every handle (RELEASE is asynchronous) and the
/// guard's deferred work (re-measurements, hash refreshes) is done.
pub fn settle(bg: &Background) {
    let t0 = Instant::now();
    while bg.open_handles() > 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    bg.guard().wait_idle();
}

/// A zeroed buffer at a 4 KiB-aligned address, as O_DIRECT needs.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + 4096];
        let start = storage.as_ptr().align_offset(4096);
        AlignedBuf {
            storage,
            start,
            len,
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A shared mapping of a file's first `len` bytes, unmapped when dropped. Touch only
/// bytes within the file's size (beyond it is SIGBUS).
pub struct SharedMap {
    ptr: *mut libc::c_void,
    len: usize,
    writable: bool,
}

impl SharedMap {
    pub fn new(file: &fs::File, len: usize, writable: bool) -> SharedMap {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks; nothing else uses it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(file),
                0,
            )
        };
        assert_ne!(
            ptr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        SharedMap { ptr, len, writable }
    }

    /// `msync(MS_SYNC)` of the whole mapping: the stores' writeback and its error.
    pub fn sync(&self) -> std::io::Result<()> {
        // SAFETY: our mapping, whole.
        match unsafe { libc::msync(self.ptr, self.len, libc::MS_SYNC) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
}

impl std::ops::Deref for SharedMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` mapped bytes, alive until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl std::ops::DerefMut for SharedMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        assert!(self.writable, "store into a read-only mapping");
        // SAFETY: `len` mapped writable bytes, alive until drop, borrowed mutably once.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our mapping; no slice of it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Unmounts a tmpfs (lazily) when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, options: &str) -> Tmpfs {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs -o {options} {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = vigil_fs::detach(&self.0);
    }
}

/// The errno of an I/O error (0 if it has none).
pub fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// One of the mount's argument-less ioctls (`vigil_fs::ioctl`) on `p`: 0 or the errno.
pub fn mount_ioctl(p: &Path, cmd: u32) -> i32 {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(p).unwrap();
    // SAFETY: an argument-less ioctl on our descriptor.
    if unsafe { libc::ioctl(f.as_raw_fd(), cmd as libc::c_ulong) } < 0 {
        return errno(std::io::Error::last_os_error());
    }
    0
}

/// Drop the kernel's cached pages of `f`, so its next reads go through the daemon.
pub fn drop_cached(f: &std::fs::File) {
    // SAFETY: fadvise on a descriptor we hold.
    unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(f),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
}

/// Whether the file system of `path` reads directly (`O_DIRECT`) at 4 KiB alignment,
/// as `statx` reports it.
pub fn reads_directly(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a zeroed statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and statx to write.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    let fits = |a: u32| a != 0 && 4096 % a == 0;
    r == 0
        && stx.stx_mask & libc::STATX_DIOALIGN != 0
        && fits(stx.stx_dio_mem_align)
        && fits(stx.stx_dio_offset_align)
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(vigil_ima::HashAlgo::Sha256.digest(data).unwrap())
}

/// Write 96 KiB at a time into a new file until the file system is full: the bytes
/// taken and the error that stopped it.
pub fn fill(path: &Path) -> (u64, i32) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 96 * 1024];
    let mut total = 0;
    loop {
        match std::io::Write::write(&mut f, &chunk) {
            Ok(n) => total += n as u64,
            Err(e) => return (total, errno(e)),
        }
    }
}

/// renameat2(2): 0, or the errno.
pub fn rename2(a: &Path, b: &Path, flags: u32) -> i32 {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: two NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if r < 0 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(255)
    } else {
        0
    }
}
