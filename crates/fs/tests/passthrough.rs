//! Real FUSE mounts of the passthrough (no enforcement): every ordinary operation,
//! compared with the backing directory. Needs root and /dev/fuse; skipped otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use common::can_mount;
use vigil_fs::Background;

struct Fixture {
    _dir: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
    bg: Option<Background>,
}

impl Fixture {
    fn new() -> Fixture {
        let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
        Fixture {
            _dir: dir,
            src,
            mnt,
            bg: None,
        }
    }
    /// A fixture whose source directory any user may create files in (and reach).
    fn open_to_all() -> Fixture {
        let f = Fixture::new();
        fs::set_permissions(f._dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&f.src, fs::Permissions::from_mode(0o777)).unwrap();
        f
    }
    fn mount(&mut self) {
        // No policy: nothing is measured or appraised (a plain passthrough with writer
        // accounting and seals).
        let cfg = Default::default();
        self.bg = Some(common::mount(&self.src, &self.mnt, self._dir.path(), cfg));
    }
    fn m(&self, p: &str) -> PathBuf {
        self.mnt.join(p)
    }
    fn s(&self, p: &str) -> PathBuf {
        self.src.join(p)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(bg) = self.bg.take() {
            bg.unmount().unwrap();
        }
    }
}

/// Tests that drop the kernel's caches (a global action) and count the nodes the
/// kernel keeps hold this, so they do not disturb one another.
static CACHES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn caches_lock() -> std::sync::MutexGuard<'static, ()> {
    CACHES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drop the kernel's dentries and inodes until the mount holds `want` nodes (the
/// caller holds [`caches_lock`]). Repeated: an inode still pinned at one drop (by a
/// RELEASE or FORGET in flight, under load) is dropped by a later one.
fn drop_caches_until(bg: &Background, want: usize) -> usize {
    let t0 = std::time::Instant::now();
    loop {
        fs::write("/proc/sys/vm/drop_caches", b"2").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let live = bg.live_nodes();
        if live <= want || t0.elapsed() > std::time::Duration::from_secs(10) {
            return live;
        }
    }
}

#[test]
fn files_dirs_links_and_attributes() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("pre"), b"existing").unwrap();
    fs::create_dir(f.s("d")).unwrap();
    fs::write(f.s("d/inner"), b"inner").unwrap();
    f.mount();

    assert_eq!(fs::read(f.m("pre")).unwrap(), b"existing");
    assert_eq!(fs::read(f.m("d/inner")).unwrap(), b"inner");

    // create + write + read back, visible in the source
    fs::write(f.m("new"), b"hello world").unwrap();
    assert_eq!(fs::read(f.s("new")).unwrap(), b"hello world");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.m("new"))
        .unwrap();
    file.write_all_at(b"WORLD", 6).unwrap();
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello WORLD");
    // truncate through the handle and by path
    file.set_len(5).unwrap();
    drop(file);
    assert_eq!(fs::read(f.s("new")).unwrap(), b"hello");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(f.m("new"))
        .unwrap();
    assert_eq!(fs::metadata(f.s("new")).unwrap().len(), 0);

    // append
    fs::write(f.m("app"), b"a").unwrap();
    OpenOptions::new()
        .append(true)
        .open(f.m("app"))
        .unwrap()
        .write_all(b"bc")
        .unwrap();
    assert_eq!(fs::read(f.m("app")).unwrap(), b"abc");

    // mkdir / rename / link / symlink / readlink / unlink / rmdir
    fs::create_dir(f.m("sub")).unwrap();
    assert!(f.s("sub").is_dir());
    fs::rename(f.m("app"), f.m("sub/moved")).unwrap();
    assert_eq!(fs::read(f.s("sub/moved")).unwrap(), b"abc");
    fs::hard_link(f.m("sub/moved"), f.m("hard")).unwrap();
    assert_eq!(fs::metadata(f.m("hard")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(f.m("hard")).unwrap().ino(),
        fs::metadata(f.m("sub/moved")).unwrap().ino()
    );
    std::os::unix::fs::symlink("sub/moved", f.m("sym")).unwrap();
    assert_eq!(fs::read_link(f.m("sym")).unwrap(), Path::new("sub/moved"));
    assert_eq!(fs::read_link(f.s("sym")).unwrap(), Path::new("sub/moved"));
    assert_eq!(fs::read(f.m("sym")).unwrap(), b"abc");
    fs::remove_file(f.m("hard")).unwrap();
    assert!(!f.s("hard").exists());
    assert_eq!(
        common::errno(fs::remove_dir(f.m("sub")).unwrap_err()),
        libc::ENOTEMPTY
    );
    fs::remove_file(f.m("sub/moved")).unwrap();
    fs::remove_dir(f.m("sub")).unwrap();
    assert!(!f.s("sub").exists());

    // chmod / utimens
    fs::set_permissions(f.m("pre"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(f.s("pre")).unwrap().mode() & 0o7777, 0o640);
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 123_456_789);
    File::options()
        .write(true)
        .open(f.m("pre"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    assert_eq!(fs::metadata(f.s("pre")).unwrap().modified().unwrap(), t);
    assert_eq!(fs::metadata(f.m("pre")).unwrap().modified().unwrap(), t);

    // chown (root may give files away)
    std::os::unix::fs::chown(f.m("pre"), Some(1234), Some(4321)).unwrap();
    let md = fs::metadata(f.s("pre")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 4321));

    // rename flags: RENAME_NOREPLACE refuses an existing target
    fs::write(f.m("x"), b"x").unwrap();
    assert_eq!(
        common::rename2(&f.m("x"), &f.m("pre"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );

    // readdir sees the backing entries plus .vigil
    let mut names: Vec<String> = fs::read_dir(&f.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".vigil", "d", "new", "pre", "sym", "x"]);

    // statfs answers from the backing filesystem
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(f.mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }, 0);
    assert!(sv.f_blocks > 0);
}

#[test]
fn xattrs_fallocate_and_fifo() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("a"), b"data").unwrap();
    f.mount();
    let p = std::ffi::CString::new(f.m("a").into_os_string().into_encoded_bytes()).unwrap();
    let n = c"user.vigil-test";
    // SAFETY: valid strings and buffers throughout.
    unsafe {
        assert_eq!(
            libc::setxattr(p.as_ptr(), n.as_ptr(), b"v1".as_ptr().cast(), 2, 0),
            0
        );
        let mut buf = [0u8; 16];
        assert_eq!(
            libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 16),
            2
        );
        assert_eq!(&buf[..2], b"v1");
        assert_eq!(
            libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0),
            2
        );
        assert_eq!(
            libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 1),
            -1
        );
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ERANGE)
        );
        let len = libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), 16);
        assert_eq!(&buf[..len as usize], b"user.vigil-test\0");
        assert_eq!(libc::removexattr(p.as_ptr(), n.as_ptr()), 0);
        assert_eq!(
            libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 16),
            -1
        );
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENODATA)
        );
    }
    let file = OpenOptions::new().write(true).open(f.m("a")).unwrap();
    // SAFETY: plain syscall.
    assert_eq!(
        unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, 1 << 16) },
        0
    );
    drop(file);
    assert_eq!(fs::metadata(f.s("a")).unwrap().len(), 1 << 16);

    let c = std::ffi::CString::new(f.m("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(f.s("fifo")).unwrap().file_type()
    ));
}

#[test]
fn vigil_dir_is_read_only_and_hides_backing_entry() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::create_dir(f.s(".vigil")).unwrap();
    fs::write(f.s(".vigil/secret"), b"backing").unwrap();
    f.mount();
    let mut names: Vec<String> = fs::read_dir(f.m(".vigil"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ascii_runtime_measurements",
            "binary_runtime_measurements",
            "pcrs",
            "policy",
            "status",
            "violations"
        ]
    );
    assert_eq!(fs::read(f.m(".vigil/violations")).unwrap(), b"0\n");
    // A policy that is not written in the policy language shows no rules.
    assert_eq!(fs::read(f.m(".vigil/policy")).unwrap(), b"");
    assert_eq!(
        fs::metadata(f.m(".vigil/pcrs"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o444
    );
    assert_eq!(
        common::errno(fs::write(f.m(".vigil/pcrs"), b"x").unwrap_err()),
        libc::EACCES
    );
    assert_eq!(
        common::errno(fs::write(f.m(".vigil/new"), b"x").unwrap_err()),
        libc::EACCES
    );
    assert_eq!(
        common::errno(fs::remove_dir_all(f.m(".vigil")).unwrap_err()),
        libc::EACCES
    );
    fs::create_dir(f.m("y")).unwrap();
    assert_eq!(
        common::errno(fs::rename(f.m("y"), f.m(".vigil")).unwrap_err()),
        libc::EACCES
    );
    assert_eq!(
        common::errno(fs::rename(f.m(".vigil"), f.m("z")).unwrap_err()),
        libc::EACCES
    );
    assert!(!f.m(".vigil/secret").exists());
    assert_eq!(fs::read(f.s(".vigil/secret")).unwrap(), b"backing");
}

#[test]
fn permissions_are_enforced_for_other_users() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("private"), b"secret").unwrap();
    fs::set_permissions(f.s("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&f.src, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(f._dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    f.mount();
    let mnt = f.mnt.clone();
    // A child that drops to uid/gid 65534 and tries to read, then creates its own file.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg("cat private 2>/dev/null && echo READ; echo mine > own && stat -c '%u:%g' own")
        .current_dir(&mnt)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("READ"), "{stdout}");
    assert_eq!(stdout.trim(), "65534:65534");
    let md = fs::metadata(f.s("own")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
}

#[test]
fn large_sequential_io_and_parallel_readers() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(f.s("big"), &data).unwrap();
    f.mount();
    assert_eq!(fs::read(f.m("big")).unwrap(), data);
    let path = f.m("big");
    let data = Arc::new(data);
    let ts: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let file = File::open(&path).unwrap();
                let mut buf = vec![0u8; 300_000];
                for k in 0..20u64 {
                    let off = (k * 389_017 + t * 77_777) % (data.len() as u64 - buf.len() as u64);
                    file.read_exact_at(&mut buf, off).unwrap();
                    assert_eq!(&buf[..], &data[off as usize..off as usize + buf.len()]);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    // Large write through the mount.
    fs::write(f.m("copy"), &*data).unwrap();
    assert_eq!(fs::read(f.s("copy")).unwrap(), *data);
}

#[test]
fn mmap_writes_reach_the_backing_file() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("m"), vec![0u8; 8192]).unwrap();
    f.mount();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.m("m"))
        .unwrap();
    let mut map = common::SharedMap::new(&file, 8192, true);
    map[4096..4103].copy_from_slice(b"mapped!");
    drop(file);
    drop(map);
    // The page-cache writeback (pid 0) precedes RELEASE; wait for it to be served.
    let mut ok = false;
    for _ in 0..100 {
        if fs::read(f.s("m")).unwrap()[4096..4103] == *b"mapped!" {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ok, "mmap store never reached the backing file");
}

#[test]
fn mount_over_the_source_hides_it_and_lookups_are_released() {
    if !can_mount() {
        return;
    }
    let _serial = caches_lock();
    let f = Fixture::new();
    fs::write(f.s("file"), b"content").unwrap();
    let bg = common::mount(&f.src, &f.src, f._dir.path(), Default::default());
    // The mount covers the source; writes land in the (hidden) backing directory.
    assert_eq!(fs::read(f.s("file")).unwrap(), b"content");
    fs::write(f.s("made-through-mount"), b"m").unwrap();
    let before = bg.live_nodes();
    assert!(before >= 2);
    // Dropping the kernel's caches forgets every node but the root.
    assert_eq!(drop_caches_until(&bg, 1), 1, "forget did not release nodes");
    assert_eq!(bg.open_handles(), 0);
    bg.unmount().unwrap();
    assert_eq!(fs::read(f.s("made-through-mount")).unwrap(), b"m");
}

/// The backing descriptors never carry O_APPEND: the kernel places appends, and a
/// handle opened O_APPEND also carries writes at other offsets.
#[test]
fn append_semantics() {
    use std::os::fd::AsRawFd;
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    f.mount();
    let p = f.m("app");

    // fcntl(F_SETFL) clears O_APPEND: a pwrite at 0 lands at 0.
    fs::write(&p, b"0123456789").unwrap();
    let file = OpenOptions::new().read(true).append(true).open(&p).unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_APPEND), 0);
    }
    file.write_all_at(b"AB", 0).unwrap();
    drop(file);
    assert_eq!(fs::read(&p).unwrap(), b"AB23456789");
    assert_eq!(fs::read(f.s("app")).unwrap(), b"AB23456789");

    // A shared writable mapping of an O_RDWR|O_APPEND descriptor: the store's
    // writeback goes to its page, the file does not grow.
    let data: Vec<u8> = b"0123456789".repeat(500);
    fs::write(&p, &data).unwrap();
    let file = OpenOptions::new().read(true).append(true).open(&p).unwrap();
    let mut map = common::SharedMap::new(&file, 4096, true);
    map[..4].copy_from_slice(b"MMAP");
    map.sync().unwrap();
    drop(map);
    drop(file);
    let mut want = data.clone();
    want[..4].copy_from_slice(b"MMAP");
    assert_eq!(fs::read(f.s("app")).unwrap(), want);
    assert_eq!(fs::read(&p).unwrap(), want);

    // Plain appends from two descriptors still append, interleaved.
    fs::write(&p, b"").unwrap();
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    let mut b = OpenOptions::new().append(true).open(&p).unwrap();
    for _ in 0..3 {
        a.write_all(b"a").unwrap();
        b.write_all(b"bb").unwrap();
    }
    // pwrite on an O_APPEND descriptor appends too (Linux ignores the offset).
    a.write_all_at(b"c", 0).unwrap();
    drop((a, b));
    assert_eq!(fs::read(f.s("app")).unwrap(), b"abbabbabbc");
}

/// `pwritev2` with one flag, returning the byte count or the common::errno.
fn pwritev2(fd: i32, data: &[u8], offset: i64, flags: i32) -> Result<usize, i32> {
    let iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: one iovec describing `data`, which outlives the call.
    let n = unsafe { libc::pwritev2(fd, &iov, 1, offset, flags) };
    if n < 0 {
        Err(last_errno())
    } else {
        Ok(n as usize)
    }
}

fn tell(fd: i32) -> i64 {
    // SAFETY: lseek on a descriptor the caller owns.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

/// Every WRITE lands at the offset the kernel chose, whatever the descriptor's flags:
/// RWF_NOAPPEND on an O_APPEND descriptor writes at its offset, RWF_APPEND on a plain
/// descriptor appends. A file that grew behind the mount before an open is appended
/// to at its real end, and the descriptor's offset is the file's size afterwards.
#[test]
fn appends_follow_the_kernel_offset() {
    use std::os::fd::AsRawFd;
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    f.mount();
    let p = f.m("k");

    // RWF_NOAPPEND (Linux 6.9) on an O_APPEND descriptor: at the given offset.
    fs::write(&p, b"0123456789").unwrap();
    let a = OpenOptions::new().read(true).append(true).open(&p).unwrap();
    const RWF_NOAPPEND: i32 = 0x20;
    match pwritev2(a.as_raw_fd(), b"AB", 0, RWF_NOAPPEND) {
        Ok(2) => {
            drop(a);
            assert_eq!(fs::read(f.s("k")).unwrap(), b"AB23456789");
            assert_eq!(fs::read(&p).unwrap(), b"AB23456789");
        }
        Err(e) if e == libc::EOPNOTSUPP || e == libc::EINVAL => {
            eprintln!("RWF_NOAPPEND not supported by this kernel: skipped");
        }
        r => panic!("pwritev2(RWF_NOAPPEND): {r:?}"),
    }

    // A file grown behind the mount: once the kernel's cached attributes have expired
    // and been fetched again (here by a stat), appends go to the real end — with
    // RWF_APPEND on a plain descriptor and with O_APPEND, whose offset is then the size.
    let grow_behind = |tail: &[u8]| {
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 10);
        let mut b = OpenOptions::new().append(true).open(f.s("k")).unwrap();
        b.write_all(tail).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(fs::metadata(&p).unwrap().len(), 10 + tail.len() as u64);
    };
    grow_behind(b"BEHIND");
    let a = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    assert_eq!(pwritev2(a.as_raw_fd(), b"APP", 0, libc::RWF_APPEND), Ok(3));
    drop(a);
    assert_eq!(fs::read(f.s("k")).unwrap(), b"0123456789BEHINDAPP");

    grow_behind(b"XYZ");
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    a.write_all(b"d").unwrap();
    assert_eq!(fs::read(f.s("k")).unwrap(), b"0123456789XYZd");
    assert_eq!(tell(a.as_raw_fd()), 14);
    a.write_all(b"e").unwrap();
    assert_eq!(tell(a.as_raw_fd()), 15);
    drop(a);
    assert_eq!(fs::read(f.s("k")).unwrap(), b"0123456789XYZde");
    assert_eq!(fs::metadata(&p).unwrap().len(), 15);
}

/// O_CREAT without O_EXCL on a name that root's file takes behind the mount between
/// the kernel's LOOKUP (nothing there) and its CREATE opens that file as any open
/// would: with the opener's permissions (none on root's 0600 file), never as the
/// opener's new file (which made it theirs).
#[test]
fn create_racing_a_creator_behind_the_mount() {
    use std::sync::atomic::{AtomicI64, Ordering};
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::create_dir(f.s("shared")).unwrap();
    fs::set_permissions(f.s("shared"), fs::Permissions::from_mode(0o1777)).unwrap();
    f.mount();
    const NAMES: i64 = 5000;
    // SAFETY: a fresh shared anonymous page, shared with the forked child.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: the page is zeroed, aligned and lives until the end of the test.
    let position: &'static AtomicI64 = unsafe { &*(page as *const AtomicI64) };
    // Root makes n0, n1, … behind the mount, one about every 50 µs, and tells how far
    // it got; the user opens names just ahead of it.
    let creator = {
        let dir = f.s("shared");
        std::thread::spawn(move || {
            use std::os::unix::fs::OpenOptionsExt;
            let mut made = Vec::new();
            for i in 0..NAMES + 4 {
                let new = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dir.join(format!("n{i}")));
                if new.is_ok() {
                    made.push(i);
                }
                position.store(i, Ordering::Release);
                let t = std::time::Instant::now();
                while t.elapsed() < std::time::Duration::from_micros(50) {}
            }
            made
        })
    };
    let names: Vec<_> = (0..NAMES + 4)
        .map(|i| cpath(&f.m(&format!("shared/n{i}"))))
        .collect();
    let status = as_user(NOBODY, NOBODY, 0o022, || {
        let mut ahead = 0;
        loop {
            let at = position.load(Ordering::Acquire);
            if at >= NAMES {
                return 0;
            }
            ahead = ahead % 3 + 1;
            // SAFETY: plain system calls on a valid C string.
            unsafe {
                let fd = libc::open(
                    names[(at + ahead) as usize].as_ptr(),
                    libc::O_CREAT | libc::O_RDWR,
                    0o644,
                );
                if fd >= 0 {
                    let mut st: libc::stat = std::mem::zeroed();
                    libc::fstat(fd, &mut st);
                    libc::close(fd);
                    if st.st_uid == 0 {
                        return 1;
                    }
                }
            }
        }
    });
    let made = creator.join().unwrap();
    assert_eq!(status, 0, "root's 0600 file opened by another user");
    let taken = made
        .iter()
        .filter(|i| fs::metadata(f.s(&format!("shared/n{i}"))).unwrap().uid() != 0)
        .count();
    assert_eq!(
        taken,
        0,
        "of {} files root made, {taken} changed owner",
        made.len()
    );
    // SAFETY: the page mapped above; nothing uses it any more.
    unsafe { libc::munmap(page, 4096) };
}

/// Run `f` in a child process with the given ids (no supplementary groups) and umask;
/// returns `f`'s result as the child's exit status. `f` must only make plain system
/// calls: it runs between fork and _exit in a threaded process.
fn as_user(uid: u32, gid: u32, umask: libc::mode_t, f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork; the child makes only system calls and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                libc::_exit(200);
            }
            libc::umask(umask);
            libc::_exit(f());
        }
        let mut st = 0;
        assert_eq!(libc::waitpid(pid, &mut st, 0), pid);
        assert!(libc::WIFEXITED(st), "child died: {st:#x}");
        libc::WEXITSTATUS(st)
    }
}

const NOBODY: u32 = 65534;

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(255)
}

/// open(2) and close: 0, or the common::errno.
fn try_open(p: &std::ffi::CStr, flags: i32, mode: libc::mode_t) -> i32 {
    // SAFETY: plain system calls on a valid C string.
    unsafe {
        let fd = libc::open(p.as_ptr(), flags, mode);
        if fd < 0 {
            return last_errno();
        }
        libc::close(fd);
        0
    }
}

/// An ACL in the kernel's xattr form: (tag, perm, id) entries, sorted.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}
const USER_OBJ: u16 = 1;
const USER: u16 = 2;
const GROUP_OBJ: u16 = 4;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;

fn set_xattr(p: &Path, name: &std::ffi::CStr, v: &[u8]) -> i32 {
    let c = cpath(p);
    // SAFETY: valid C strings and buffer.
    if unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) } < 0 {
        return last_errno();
    }
    0
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// What an unprivileged user sees as on ext4: `trusted.*` attributes are not listed to
/// it, and the measurement lists and policy in `.vigil/` are root's (as securityfs
/// has them), while the counters, PCRs and status are anyone's.
#[test]
fn unprivileged_users_see_what_they_would_natively() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::set_permissions(f._dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&f.src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(f.s("x"), b"x").unwrap();
    fs::set_permissions(f.s("x"), fs::Permissions::from_mode(0o644)).unwrap();
    f.mount();
    let x = cpath(&f.m("x"));
    for (name, value) in [(c"trusted.vigil-test", b"t"), (c"user.vigil-test", b"u")] {
        // SAFETY: valid C strings and buffer.
        let r = unsafe { libc::setxattr(x.as_ptr(), name.as_ptr(), value.as_ptr().cast(), 1, 0) };
        assert_eq!(r, 0, "{name:?}: {}", std::io::Error::last_os_error());
    }
    let list = |p: &std::ffi::CStr| {
        let mut buf = [0u8; 256];
        // SAFETY: valid C string and buffer.
        let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        // The size query agrees with the list.
        // SAFETY: as above.
        let size = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        match n == size && n >= 0 {
            true => {
                buf[..n as usize]
                    .split(|&b| b == 0)
                    .filter(|n| n.starts_with(b"trusted."))
                    .count() as i32
                    + 10 * buf[..n as usize]
                        .split(|&b| b == 0)
                        .filter(|n| n.starts_with(b"user."))
                        .count() as i32
            }
            false => -1,
        }
    };
    assert_eq!(list(&x), 11, "root lists both");
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || list(&x)),
        10,
        "nobody lists user.* only"
    );

    let vigil = f.mnt.join(".vigil");
    for (name, readable) in [
        ("ascii_runtime_measurements", false),
        ("binary_runtime_measurements", false),
        ("policy", false),
        ("violations", true),
        ("pcrs", true),
        ("status", true),
    ] {
        let p = cpath(&vigil.join(name));
        assert_eq!(try_open(&p, libc::O_RDONLY, 0), 0, "root reads {name}");
        let want = if readable { 0 } else { libc::EACCES };
        assert_eq!(
            as_user(NOBODY, NOBODY, 0o022, || try_open(&p, libc::O_RDONLY, 0)),
            want,
            "{name}"
        );
    }
}

/// A set-group-ID bit without group execute permission is cleared, as natively, when
/// a process outside the file's group (without CAP_FSETID) writes, truncates or
/// extends the file, and kept when root or a member of the group does.
#[test]
fn set_group_id_is_cleared_by_writes_of_non_members() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::open_to_all();
    f.mount();
    fn write(p: &std::ffi::CStr, flags: i32) -> i32 {
        // SAFETY: plain system calls on a valid C string.
        unsafe {
            let fd = libc::open(p.as_ptr(), flags);
            if fd < 0 || libc::write(fd, b"x".as_ptr().cast(), 1) != 1 {
                return last_errno();
            }
            libc::close(fd);
        }
        0
    }
    type Change = fn(&std::ffi::CStr) -> i32;
    let cases: [(&str, u32, Change, u32); 5] = [
        (
            "append",
            NOBODY,
            |p| write(p, libc::O_WRONLY | libc::O_APPEND),
            0o666,
        ),
        (
            "truncate",
            NOBODY,
            |p| unsafe { libc::truncate(p.as_ptr(), 1) },
            0o666,
        ),
        (
            "fallocate",
            NOBODY,
            |p| unsafe {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                libc::fallocate(fd, 0, 0, 8192)
            },
            0o666,
        ),
        (
            "root append",
            0,
            |p| write(p, libc::O_WRONLY | libc::O_APPEND),
            0o2666,
        ),
        (
            "member append",
            NOBODY,
            |p| write(p, libc::O_WRONLY | libc::O_APPEND),
            0o2666,
        ),
    ];
    for (name, uid, change, want) in cases {
        let m = f.m(name);
        fs::write(&m, b"0").unwrap();
        let group = if name == "member append" { NOBODY } else { 0 };
        std::os::unix::fs::chown(&m, None, Some(group)).unwrap();
        fs::set_permissions(&m, fs::Permissions::from_mode(0o2666)).unwrap();
        let p = cpath(&m);
        assert_eq!(as_user(uid, uid, 0o022, || change(&p)), 0, "{name}");
        assert_eq!(mode_of(&m), want, "{name}: through the mount");
        assert_eq!(mode_of(&f.s(name)), want, "{name}: backing file");
    }
}

/// An open's O_TRUNC clears set-user-ID and set-group-ID as a truncate does natively
/// (FUSE_ATOMIC_O_TRUNC truncates in OPEN, where the kernel clears nothing): for
/// callers without CAP_FSETID, set-group-ID without group execute only for
/// non-members.
#[test]
fn open_truncate_clears_set_id_bits() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::open_to_all();
    f.mount();
    // name, file's group, mode, opener, open flags, mode after
    let trunc = libc::O_WRONLY | libc::O_TRUNC;
    let cases = [
        ("suid", NOBODY, 0o4755, NOBODY, trunc, 0o755),
        ("both", NOBODY, 0o6775, NOBODY, trunc, 0o775),
        (
            "create",
            NOBODY,
            0o6755,
            NOBODY,
            trunc | libc::O_CREAT,
            0o755,
        ),
        (
            "read-only",
            NOBODY,
            0o4777,
            NOBODY,
            libc::O_RDONLY | libc::O_TRUNC,
            0o777,
        ),
        ("non-member", 0, 0o2666, NOBODY, trunc, 0o666),
        ("member", NOBODY, 0o2666, NOBODY, trunc, 0o2666),
        ("root", NOBODY, 0o6755, 0, trunc, 0o6755),
        (
            "no truncate",
            NOBODY,
            0o4755,
            NOBODY,
            libc::O_WRONLY,
            0o4755,
        ),
    ];
    for (name, group, mode, uid, flags, want) in cases {
        let m = f.m(name);
        fs::write(&m, b"content").unwrap();
        std::os::unix::fs::chown(&m, Some(NOBODY), Some(group)).unwrap();
        fs::set_permissions(&m, fs::Permissions::from_mode(mode)).unwrap();
        let p = cpath(&m);
        assert_eq!(
            as_user(uid, uid, 0o022, || try_open(&p, flags, 0o644)),
            0,
            "{name}"
        );
        assert_eq!(mode_of(&f.s(name)), want, "{name}: backing file");
        assert_eq!(mode_of(&m), want, "{name}: through the mount");
    }
}

/// POSIX ACLs are enforced by the kernel (FUSE_POSIX_ACL), both ways, and set through
/// the mount with the effects they have natively.
#[test]
fn posix_acls_are_enforced() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::open_to_all();
    fs::write(f.s("secret"), b"secret\n").unwrap();
    fs::set_permissions(f.s("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(f.s("grant"), b"").unwrap();
    fs::set_permissions(f.s("grant"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(f.s("sgid"), b"").unwrap();
    std::os::unix::fs::chown(f.s("sgid"), Some(NOBODY), Some(0)).unwrap();
    fs::set_permissions(f.s("sgid"), fs::Permissions::from_mode(0o2755)).unwrap();
    f.mount();
    let acl_access = c"system.posix_acl_access";

    // user:nobody:--- on a world-readable file: nobody may not read it.
    let deny = acl(&[
        (USER_OBJ, 6, NO_ID),
        (USER, 0, NOBODY),
        (GROUP_OBJ, 4, NO_ID),
        (MASK, 4, NO_ID),
        (OTHER, 4, NO_ID),
    ]);
    assert_eq!(set_xattr(&f.m("secret"), acl_access, &deny), 0);
    // user:nobody:rw- on a file whose mode gives others nothing: nobody may write it.
    let grant = acl(&[
        (USER_OBJ, 6, NO_ID),
        (USER, 6, NOBODY),
        (GROUP_OBJ, 4, NO_ID),
        (MASK, 6, NO_ID),
        (OTHER, 0, NO_ID),
    ]);
    assert_eq!(set_xattr(&f.m("grant"), acl_access, &grant), 0);
    // The mask became the group class bits.
    assert_eq!(mode_of(&f.s("grant")), 0o660);
    assert_eq!(mode_of(&f.m("grant")), 0o660);

    let (secret, granted) = (cpath(&f.m("secret")), cpath(&f.m("grant")));
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &secret,
            libc::O_RDONLY,
            0
        )),
        libc::EACCES,
        "an ACL entry denying nobody was bypassed"
    );
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &granted,
            libc::O_WRONLY | libc::O_APPEND,
            0
        )),
        0,
        "an ACL entry granting nobody was ignored"
    );
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &granted,
            libc::O_RDONLY,
            0
        )),
        0
    );
    // Removing the ACL takes effect at once.
    let c = cpath(&f.m("grant"));
    // SAFETY: valid C strings.
    assert_eq!(
        unsafe { libc::removexattr(c.as_ptr(), acl_access.as_ptr()) },
        0
    );
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &granted,
            libc::O_RDONLY,
            0
        )),
        libc::EACCES
    );

    // chmod moves the ACL's mask: the grant is gone at once.
    assert_eq!(set_xattr(&f.m("grant"), acl_access, &grant), 0);
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &granted,
            libc::O_RDONLY,
            0
        )),
        0
    );
    fs::set_permissions(f.m("grant"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || try_open(
            &granted,
            libc::O_RDONLY,
            0
        )),
        libc::EACCES
    );

    // The owner sets an ACL on its set-group-ID file of a group it is not in: the
    // set-group-ID bit goes, as natively.
    let plain = acl(&[
        (USER_OBJ, 7, NO_ID),
        (GROUP_OBJ, 5, NO_ID),
        (OTHER, 5, NO_ID),
    ]);
    let sgid = f.m("sgid");
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o022, || set_xattr(
            &sgid, acl_access, &plain
        )),
        0
    );
    assert_eq!(mode_of(&f.s("sgid")), 0o755);

    // A directory's default ACL, not the umask, decides the mode of new files.
    fs::create_dir(f.m("dacl")).unwrap();
    let dflt = acl(&[
        (USER_OBJ, 7, NO_ID),
        (GROUP_OBJ, 6, NO_ID),
        (OTHER, 4, NO_ID),
    ]);
    assert_eq!(
        set_xattr(&f.m("dacl"), c"system.posix_acl_default", &dflt),
        0
    );
    let (in_dacl, sub_dacl) = (cpath(&f.m("dacl/new")), cpath(&f.m("dacl/sub")));
    assert_eq!(
        as_user(0, 0, 0o077, || {
            // SAFETY: plain system call.
            if unsafe { libc::mkdir(sub_dacl.as_ptr(), 0o777) } < 0 {
                return last_errno();
            }
            try_open(&in_dacl, libc::O_CREAT | libc::O_WRONLY, 0o666)
        }),
        0
    );
    assert_eq!(mode_of(&f.s("dacl/new")), 0o664);
    assert_eq!(mode_of(&f.s("dacl/sub")), 0o764);
    // Elsewhere the umask applies.
    let plain_new = cpath(&f.m("umasked"));
    assert_eq!(
        as_user(NOBODY, NOBODY, 0o027, || try_open(
            &plain_new,
            libc::O_CREAT | libc::O_WRONLY,
            0o666
        )),
        0
    );
    assert_eq!(mode_of(&f.s("umasked")), 0o640);
}

/// A sealed file keeps its content at its names: no rename over it, no exchange from
/// either side, no moving it away, no unlink (any of which lets other content take
/// its name). A new hard link is allowed, and is the sealed file too.
#[test]
fn sealed_files_keep_their_names() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("sx"), b"sealed-content").unwrap();
    fs::write(f.s("other"), b"evil").unwrap();
    f.mount();
    let (sx, other) = (f.m("sx"), f.m("other"));
    assert_eq!(common::mount_ioctl(&sx, vigil_fs::ioctl::SEAL), 0);

    assert_eq!(
        common::rename2(&other, &sx, libc::RENAME_EXCHANGE),
        libc::EPERM
    );
    assert_eq!(
        common::rename2(&sx, &other, libc::RENAME_EXCHANGE),
        libc::EPERM
    );
    assert_eq!(common::rename2(&other, &sx, 0), libc::EPERM);
    assert_eq!(common::rename2(&sx, &f.m("moved"), 0), libc::EPERM);
    assert_eq!(
        common::errno(fs::remove_file(&sx).unwrap_err()),
        libc::EPERM
    );
    fs::hard_link(&sx, f.m("sx2")).unwrap();
    assert_eq!(
        common::errno(fs::remove_file(f.m("sx2")).unwrap_err()),
        libc::EPERM
    );
    assert_eq!(common::rename2(&other, &f.m("sx2"), 0), libc::EPERM);
    assert_eq!(fs::read(&sx).unwrap(), b"sealed-content");
    assert_eq!(fs::read(f.s("sx")).unwrap(), b"sealed-content");
    assert_eq!(fs::read(f.s("other")).unwrap(), b"evil");

    // Other files are not affected.
    assert_eq!(common::rename2(&other, &f.m("o2"), 0), 0);
    fs::remove_file(f.m("o2")).unwrap();

    // Unsealed, the file's names are free again.
    assert_eq!(common::mount_ioctl(&sx, vigil_fs::ioctl::UNSEAL), 0);
    fs::remove_file(f.m("sx2")).unwrap();
    assert_eq!(common::rename2(&sx, &f.m("moved"), 0), 0);
    fs::remove_file(f.m("moved")).unwrap();
    assert!(!f.s("moved").exists());
}

/// Times before 1970 with a fraction of a second are set as given (the kernel sends
/// them as a negative second plus a positive fraction).
#[test]
fn times_before_1970() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::write(f.s("old"), b"o").unwrap();
    f.mount();
    let p = cpath(&f.m("old"));
    for (sec, nsec) in [
        (-1, 250_000_000),
        (-1, 999_999_999),
        (-2, 1),
        (-300_000_000, 500_000_000),
        (-5, 0),
    ] {
        let times = [libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        }; 2];
        // SAFETY: valid C string and two timespecs.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        for q in [f.m("old"), f.s("old")] {
            let md = fs::metadata(&q).unwrap();
            assert_eq!((md.atime(), md.atime_nsec()), (sec, nsec), "{q:?}");
            assert_eq!((md.mtime(), md.mtime_nsec()), (sec, nsec), "{q:?}");
        }
    }
}

/// The times of a symbolic link itself can be set (utimensat(AT_SYMLINK_NOFOLLOW)),
/// so `touch -h`, `cp -a` and `rsync -a` keep them.
#[test]
fn symlink_times() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::create_dir(f.s("s")).unwrap();
    fs::write(f.s("s/target"), b"t").unwrap();
    std::os::unix::fs::symlink("target", f.s("s/l")).unwrap();
    f.mount();
    let target_mtime = fs::metadata(f.s("s/target")).unwrap().mtime();

    let l = cpath(&f.m("s/l"));
    let times = [
        libc::timespec {
            tv_sec: 978_307_200,
            tv_nsec: 5,
        },
        libc::timespec {
            tv_sec: 978_307_201,
            tv_nsec: 7,
        },
    ];
    // SAFETY: valid C string and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            l.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    for p in [f.m("s/l"), f.s("s/l")] {
        let md = fs::symlink_metadata(&p).unwrap();
        assert_eq!((md.atime(), md.atime_nsec()), (978_307_200, 5));
        assert_eq!((md.mtime(), md.mtime_nsec()), (978_307_201, 7));
    }
    assert_eq!(fs::metadata(f.s("s/target")).unwrap().mtime(), target_mtime);

    let run = |cmd: &mut std::process::Command| {
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(std::process::Command::new("touch")
        .arg("-h")
        .arg(f.m("s/l")));
    assert!(fs::symlink_metadata(f.s("s/l")).unwrap().mtime() > 978_307_201);
    // An old link time, kept by copies into the mount.
    run(std::process::Command::new("touch")
        .args(["-h", "-d", "2001-01-01 00:00:00"])
        .arg(f.s("s/l")));
    run(std::process::Command::new("cp")
        .arg("-a")
        .arg(f.s("s"))
        .arg(f.m("cp")));
    assert_eq!(
        fs::symlink_metadata(f.s("cp/l")).unwrap().mtime(),
        fs::symlink_metadata(f.s("s/l")).unwrap().mtime()
    );
    if std::path::Path::new("/usr/bin/rsync").exists() {
        run(std::process::Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", f.s("s").display()))
            .arg(f.m("rs")));
        assert_eq!(
            fs::symlink_metadata(f.s("rs/l")).unwrap().mtime(),
            fs::symlink_metadata(f.s("s/l")).unwrap().mtime()
        );
    }
}

/// Inode numbers are the backing files' own, so they stay the same after the kernel
/// forgets a node; file handles are not offered (they could not be resolved once the
/// kernel dropped the inode) rather than going stale.
#[test]
fn inode_numbers_are_stable() {
    if !can_mount() {
        return;
    }
    let _serial = caches_lock();
    let mut f = Fixture::new();
    fs::write(f.s("a"), b"a").unwrap();
    fs::create_dir(f.s("d")).unwrap();
    fs::write(f.s("d/b"), b"b").unwrap();
    f.mount();
    let inos = |f: &Fixture| -> Vec<u64> {
        ["a", "d", "d/b"]
            .iter()
            .map(|p| fs::metadata(f.m(p)).unwrap().ino())
            .collect()
    };
    let before = inos(&f);
    let backing: Vec<u64> = ["a", "d", "d/b"]
        .iter()
        .map(|p| fs::metadata(f.s(p)).unwrap().ino())
        .collect();
    assert_eq!(before, backing);
    // readdir's d_ino agrees with stat.
    let listed: Vec<(String, u64)> = fs::read_dir(f.m("d"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.ino())
        })
        .collect();
    assert_eq!(listed, [("b".to_string(), backing[2])]);

    let live = f.bg.as_ref().unwrap();
    assert_eq!(drop_caches_until(live, 1), 1, "the kernel kept its nodes");
    assert_eq!(inos(&f), before);

    // name_to_handle_at: refused, or the handle still opens after the kernel dropped
    // the inode.
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        f_handle: [u8; 128],
    }
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        f_handle: [0; 128],
    };
    let mut mount_id = 0;
    let c = cpath(&f.m("a"));
    // SAFETY: valid C string and a handle buffer of the size it says.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    if r < 0 {
        assert_eq!(last_errno(), libc::EOPNOTSUPP);
    } else {
        fs::write("/proc/sys/vm/drop_caches", b"2").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let m = File::open(&f.mnt).unwrap();
        // SAFETY: the handle filled in above.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                std::os::fd::AsRawFd::as_raw_fd(&m),
                &mut h as *mut Handle,
                libc::O_RDONLY,
            )
        };
        assert!(
            fd >= 0,
            "open_by_handle_at: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the descriptor just opened.
        unsafe { libc::close(fd as i32) };
    }
}

/// A non-root user's new files keep the set-user-ID and set-group-ID bits it asked
/// for (the daemon's chown to the creator would clear them), as natively.
#[test]
fn new_files_keep_setid_bits() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::open_to_all();
    // A set-group-ID directory of a group nobody is not in.
    fs::create_dir(f.s("g")).unwrap();
    fs::set_permissions(f.s("g"), fs::Permissions::from_mode(0o2777)).unwrap();
    f.mount();
    let (suid, sgid, dir, fifo, in_g) = (
        cpath(&f.m("suid")),
        cpath(&f.m("sgid")),
        cpath(&f.m("dir")),
        cpath(&f.m("fifo")),
        cpath(&f.m("g/f")),
    );
    let r = as_user(NOBODY, NOBODY, 0o002, || {
        let flags = libc::O_CREAT | libc::O_WRONLY;
        // SAFETY: plain system calls on valid C strings.
        unsafe {
            for r in [
                try_open(&suid, flags, 0o4755),
                try_open(&sgid, flags, 0o2775),
                try_open(&in_g, flags, 0o2775),
            ] {
                if r != 0 {
                    return r;
                }
            }
            if libc::mkdir(dir.as_ptr(), 0o3777) < 0 || libc::mkfifo(fifo.as_ptr(), 0o4666) < 0 {
                return last_errno();
            }
        }
        0
    });
    assert_eq!(r, 0);
    let owner = |p: &str| {
        let md = fs::metadata(f.s(p)).unwrap();
        (md.uid(), md.gid(), md.mode() & 0o7777)
    };
    assert_eq!(owner("suid"), (NOBODY, NOBODY, 0o4755));
    assert_eq!(owner("sgid"), (NOBODY, NOBODY, 0o2775));
    assert_eq!(owner("dir"), (NOBODY, NOBODY, 0o1775));
    assert_eq!(owner("fifo"), (NOBODY, NOBODY, 0o4664));
    // In the set-group-ID directory the group is the directory's, and the kernel drops
    // set-group-ID for a creator outside that group.
    assert_eq!(owner("g/f"), (NOBODY, 0, 0o775));
    assert_eq!(fs::metadata(f.m("suid")).unwrap().mode() & 0o7777, 0o4755);
}

/// An ioctl the mount does not know is "inappropriate ioctl" (ENOTTY) on any kind of
/// file; the seal ioctls on a directory are invalid. O_TMPFILE is not supported.
#[test]
fn unknown_ioctls_and_tmpfile() {
    use std::os::fd::AsRawFd;
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::create_dir(f.s("d")).unwrap();
    fs::write(f.s("r"), b"r").unwrap();
    f.mount();
    let ioctl = |p: &Path, cmd: libc::c_ulong| -> i32 {
        let file = File::open(p).unwrap();
        let mut arg = 0u64;
        // SAFETY: the argument points at 8 writable bytes, enough for these commands.
        if unsafe { libc::ioctl(file.as_raw_fd(), cmd, &mut arg) } < 0 {
            return last_errno();
        }
        0
    };
    // _IO('v', 0xff): no such ioctl.
    let unknown = ((b'v' as libc::c_ulong) << 8) | 0xff;
    assert_eq!(ioctl(&f.m("d"), unknown), libc::ENOTTY);
    assert_eq!(ioctl(&f.m("r"), unknown), libc::ENOTTY);
    // lsattr's FS_IOC_GETFLAGS: the same answer on a directory as on a file.
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    let on_file = ioctl(&f.m("r"), FS_IOC_GETFLAGS);
    assert_ne!(on_file, libc::EINVAL);
    assert_eq!(ioctl(&f.m("d"), FS_IOC_GETFLAGS), on_file);
    assert_eq!(
        ioctl(&f.m("d"), vigil_fs::ioctl::SEAL as libc::c_ulong),
        libc::EINVAL
    );
    assert_eq!(
        ioctl(&f.m("r"), vigil_fs::ioctl::STATUS as libc::c_ulong),
        0
    );

    let c = cpath(&f.mnt);
    assert_eq!(
        try_open(&c, libc::O_TMPFILE | libc::O_RDWR, 0o600),
        libc::EOPNOTSUPP
    );
}

/// A source whose inode numbers are small (tmpfs numbers from 1, as an ext4
/// filesystem's root directory has lost+found at 11): its files' ids are stable across
/// cache eviction, the backing numbers from [`vigil_fs::inode::FIRST_DYNAMIC_INO`] on.
/// Every listing's `d_ino` is the entry's `st_ino`, on the source's filesystem and on
/// one mounted inside it (counted ids), also past the first READDIRPLUS buffer.
#[test]
fn small_inode_numbers_and_listings_agree_with_stat() {
    use vigil_fs::inode::{FIRST_DYNAMIC_INO, LOW_INO_BASE};
    if !can_mount() {
        return;
    }
    let _serial = caches_lock();
    let mut f = Fixture::new();
    let outer = common::Tmpfs::mount(&f.src, "defaults");
    for i in 0..12 {
        fs::write(f.s(&format!("f{i}")), b"x").unwrap();
    }
    fs::create_dir(f.s("d")).unwrap();
    fs::write(f.s("d/inner"), b"y").unwrap();
    fs::create_dir(f.s("nest")).unwrap();
    let inner = common::Tmpfs::mount(&f.s("nest"), "defaults");
    fs::create_dir(f.s("nest/big")).unwrap();
    for i in 0..3000 {
        File::create(f.s(&format!("nest/big/n{i}"))).unwrap();
    }
    f.mount();

    let source_files: Vec<String> = (0..12)
        .map(|i| format!("f{i}"))
        .chain(["d".into(), "d/inner".into()])
        .collect();
    let ids = |f: &Fixture| -> Vec<u64> {
        source_files
            .iter()
            .map(|p| fs::metadata(f.m(p)).unwrap().ino())
            .collect()
    };
    let before = ids(&f);
    let mut low = 0;
    for (p, id) in source_files.iter().zip(&before) {
        let own = fs::metadata(f.s(p)).unwrap().ino();
        if own < FIRST_DYNAMIC_INO {
            low += 1;
            assert_eq!(*id, LOW_INO_BASE + own, "{p}");
        } else {
            assert_eq!(*id, own, "{p}");
        }
    }
    assert!(
        low > 0,
        "tmpfs gave no inode number below {FIRST_DYNAMIC_INO}"
    );
    let bg = f.bg.as_ref().unwrap();
    assert_eq!(drop_caches_until(bg, 1), 1, "the kernel kept its nodes");
    assert_eq!(
        ids(&f),
        before,
        "ids changed after the kernel forgot the nodes"
    );

    // Listings first (no entry known to the kernel), then stat each entry.
    assert_eq!(drop_caches_until(bg, 1), 1, "the kernel kept its nodes");
    for dir in ["", "d", "nest", "nest/big"] {
        let listed: Vec<(std::ffi::OsString, u64)> = fs::read_dir(f.m(dir))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), e.ino())
            })
            .collect();
        assert!(!listed.is_empty());
        let mut wrong = Vec::new();
        for (name, d_ino) in &listed {
            // A mount point's entry names the directory it covers, natively too.
            if dir.is_empty() && (name == "nest" || name == ".vigil") {
                continue;
            }
            let st_ino = fs::symlink_metadata(f.m(dir).join(name)).unwrap().ino();
            if st_ino != *d_ino {
                wrong.push((name.clone(), *d_ino, st_ino));
            }
        }
        assert!(
            wrong.is_empty(),
            "{dir}: {} of {} entries with d_ino != st_ino, e.g. {:?}",
            wrong.len(),
            listed.len(),
            &wrong[..wrong.len().min(3)]
        );
    }
    f.bg.take().unwrap().unmount().unwrap();
    drop((inner, outer));
}

#[test]
fn a_full_backing_file_system_gives_a_short_write_then_enospc() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    let native = f._dir.path().join("native");
    fs::create_dir(&native).unwrap();
    // Both 1 MiB: the mount's backing store and a native twin.
    let _tmpfs = [
        common::Tmpfs::mount(&f.src, "size=1m,mode=755"),
        common::Tmpfs::mount(&native, "size=1m,mode=755"),
    ];
    f.mount();
    let want = common::fill(&native.join("big"));
    assert_eq!(want.1, libc::ENOSPC);
    assert_eq!(want.0 % (96 * 1024), 64 * 1024, "no short write natively");
    // The write that fills the file system lands partly and says how much; the next
    // one fails. What the writer counted is what the file holds.
    assert_eq!(common::fill(&f.m("big")), want);
    assert_eq!(fs::metadata(f.s("big")).unwrap().len(), want.0);
    assert_eq!(fs::metadata(f.m("big")).unwrap().len(), want.0);
    let data = fs::read(f.m("big")).unwrap();
    assert!(data.iter().all(|&b| b == 0x5a));
    f.bg.take().unwrap().unmount().unwrap();
}

/// Stores through a shared mapping reach the backing file at writeback, where no writer
/// can take a short count: when the backing file system has room for only part of
/// them, msync reports the error rather than losing the rest silently.
#[test]
fn writeback_that_does_not_fit_is_an_error_at_msync() {
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    let _tmpfs = common::Tmpfs::mount(&f.src, "size=1m,mode=755");
    const LEN: usize = 256 * 1024;
    File::create(f.s("m")).unwrap().set_len(LEN as u64).unwrap();
    // Fill the file system, then free two pages: room for a part of the mapping.
    let (taken, _) = common::fill(&f.s("filler"));
    File::options()
        .write(true)
        .open(f.s("filler"))
        .unwrap()
        .set_len(taken - 8192)
        .unwrap();
    f.mount();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.m("m"))
        .unwrap();
    let mut map = common::SharedMap::new(&file, LEN, true);
    map.fill(0x77);
    let synced = map.sync();
    drop(map);
    let e = synced.expect_err("msync reported success for stores that did not fit");
    assert!(
        matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EIO)),
        "{e:?}"
    );
    drop(file);
    f.bg.take().unwrap().unmount().unwrap();
}

/// An inode-flag ioctl on `p`: FS_IOC_GETFLAGS (`set` None) gives the flags, or
/// FS_IOC_SETFLAGS sets them and gives 0; a failure gives `-errno`.
fn inode_flags(p: &Path, set: Option<i32>) -> i32 {
    let c = cpath(p);
    // SAFETY: plain system calls with an int argument.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK);
        if fd < 0 {
            return -last_errno();
        }
        let mut v = set.unwrap_or(0);
        let cmd = match set {
            Some(_) => libc::FS_IOC_SETFLAGS,
            None => libc::FS_IOC_GETFLAGS,
        };
        let r = libc::ioctl(fd, cmd, &mut v);
        let e = last_errno();
        libc::close(fd);
        match (r, set) {
            (0, None) => v,
            (0, Some(_)) => 0,
            _ => -e,
        }
    }
}

/// struct fsxattr's first word (fsx_xflags) of `p` through FS_IOC_FSGETXATTR, or with
/// `set`, FS_IOC_FSSETXATTR of the attributes read with that word replaced.
fn xflags(p: &Path, set: Option<u32>) -> i32 {
    let c = cpath(p);
    let (get_cmd, set_cmd) = (
        libc::_IOR::<[u8; 28]>(b'X' as u32, 31),
        libc::_IOW::<[u8; 28]>(b'X' as u32, 32),
    );
    // SAFETY: plain system calls with a 28-byte struct fsxattr.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK);
        if fd < 0 {
            return -last_errno();
        }
        let mut fsx = [0u32; 7];
        let mut r = libc::ioctl(fd, get_cmd, fsx.as_mut_ptr());
        if r == 0 {
            if let Some(x) = set {
                fsx[0] = x;
                r = libc::ioctl(fd, set_cmd, fsx.as_mut_ptr());
            }
        }
        let e = last_errno();
        libc::close(fd);
        match (r, set) {
            (0, None) => fsx[0] as i32,
            (0, Some(_)) => 0,
            _ => -e,
        }
    }
}

/// `lsattr`/`chattr` (and `xfs_io`'s fsxattr ioctls) act on the backing files, with
/// the kernel's rules: the owner or CAP_FOWNER changes flags, and only
/// CAP_LINUX_IMMUTABLE the immutable and append-only ones.
#[test]
fn inode_flags_are_the_backing_files() {
    const IMMUTABLE: i32 = 0x10;
    const APPEND: i32 = 0x20;
    const NODUMP: i32 = 0x40;
    const XFLAG_IMMUTABLE: u32 = 0x8;
    if !can_mount() {
        return;
    }
    let mut f = Fixture::new();
    fs::set_permissions(f._dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&f.src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(f.s("f"), b"f").unwrap();
    fs::write(f.s("mine"), b"nobody's").unwrap();
    std::os::unix::fs::chown(f.s("mine"), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::create_dir(f.s("d")).unwrap();
    f.mount();
    for name in ["f", "d"] {
        let native = inode_flags(&f.s(name), None);
        assert!(native >= 0, "{name}: {native}");
        assert_eq!(inode_flags(&f.m(name), None), native, "{name}");
        assert_eq!(xflags(&f.m(name), None), xflags(&f.s(name), None), "{name}");
    }

    // chattr +i through the mount: the backing file is immutable, writes are refused.
    let flags = inode_flags(&f.s("f"), None);
    assert_eq!(inode_flags(&f.m("f"), Some(flags | IMMUTABLE)), 0);
    assert_eq!(inode_flags(&f.s("f"), None), flags | IMMUTABLE);
    assert_eq!(try_open(&cpath(&f.m("f")), libc::O_WRONLY, 0), libc::EPERM);
    assert_eq!(inode_flags(&f.m("f"), Some(flags)), 0);
    assert_eq!(try_open(&cpath(&f.m("f")), libc::O_WRONLY, 0), 0);
    // The same through struct fsxattr.
    let x = xflags(&f.m("f"), None) as u32;
    assert_eq!(xflags(&f.m("f"), Some(x | XFLAG_IMMUTABLE)), 0);
    assert_eq!(inode_flags(&f.s("f"), None), flags | IMMUTABLE);
    assert_eq!(xflags(&f.m("f"), Some(x)), 0);
    assert_eq!(inode_flags(&f.s("f"), None), flags);
    // chattr +a: appends work, other writes do not, as natively.
    assert_eq!(inode_flags(&f.m("f"), Some(flags | APPEND)), 0);
    let mut log = fs::OpenOptions::new().append(true).open(f.m("f")).unwrap();
    std::io::Write::write_all(&mut log, b" and more").unwrap();
    drop(log);
    assert_eq!(fs::read(f.s("f")).unwrap(), b"f and more");
    assert_eq!(try_open(&cpath(&f.m("f")), libc::O_WRONLY, 0), libc::EPERM);
    assert_eq!(inode_flags(&f.m("f"), Some(flags)), 0);
    // chattr +a on a directory.
    let dflags = inode_flags(&f.s("d"), None);
    assert_eq!(inode_flags(&f.m("d"), Some(dflags | APPEND)), 0);
    assert_eq!(inode_flags(&f.s("d"), None), dflags | APPEND);
    assert_eq!(inode_flags(&f.m("d"), Some(dflags)), 0);

    // Another user: not on a file it does not own; on its own, not +i.
    let set_as_nobody =
        |p: PathBuf, v: i32| as_user(NOBODY, NOBODY, 0o022, || -inode_flags(&p, Some(v)));
    assert_eq!(set_as_nobody(f.m("f"), flags | NODUMP), libc::EPERM);
    let mine = inode_flags(&f.s("mine"), None);
    assert_eq!(set_as_nobody(f.m("mine"), mine | NODUMP), 0);
    assert_eq!(inode_flags(&f.s("mine"), None), mine | NODUMP);
    assert_eq!(set_as_nobody(f.m("mine"), mine | IMMUTABLE), libc::EPERM);
    assert_eq!(inode_flags(&f.s("mine"), None), mine | NODUMP);
}
