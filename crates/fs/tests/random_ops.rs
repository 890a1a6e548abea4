//! Random operations through a measuring mount, mirrored natively (fsx-style
//! differential tests), that must give the same results on both sides:
//! * on three files at once, each with its own sequence: writes, reads, truncation,
//!   fallocate modes, mmap reads and writes, appends, copy_file_range, O_DIRECT reads
//!   and writes, SEEK_DATA/SEEK_HOLE, dropped page caches and reopenings (each last
//!   writer's close re-measures; each later read is verified against the new tree);
//! * on a small tree, with the mount beside its source and over it: create, rewrite,
//!   mkdir, rmdir, unlink, rename (with its flags), link, symlink, chmod, utimens,
//!   truncate, xattrs (set, list, remove), stat, listings, and reads through
//!   descriptors held across all of these.
//!
//! Needs root and /dev/fuse; skipped otherwise.
//!
//! `VIGIL_RANDOM_OPS=N` and `VIGIL_RANDOM_SEED=S` run longer or other sequences.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use vigil_fs::Background;
use vigil_guard::Config;

const MAX_SIZE: u64 = 3 << 20;

/// splitmix64: a small, seedable generator, so that a failing sequence can be re-run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An offset or length, often near a 4 KiB block boundary.
    fn span(&mut self, limit: u64) -> u64 {
        let v = self.below(limit + 1);
        match self.below(3) {
            0 => v & !4095,
            1 => ((v & !4095) + self.below(3)).saturating_sub(1).min(limit),
            _ => v,
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let seed = self.next() as u8;
        (0..n)
            .map(|i| seed.wrapping_add((i * 7 + i / 4096) as u8))
            .collect()
    }
}

/// The file under test through the mount and its native twin, each with a read-write
/// descriptor (closed and reopened from time to time) and a read-only one.
struct Pair {
    paths: [PathBuf; 2],
    rw: Option<[File; 2]>,
    ro: [File; 2],
}

impl Pair {
    fn writable(&mut self) -> &[File; 2] {
        if self.rw.is_none() {
            let open = |p: &Path| OpenOptions::new().read(true).write(true).open(p).unwrap();
            self.rw = Some([open(&self.paths[0]), open(&self.paths[1])]);
        }
        self.rw.as_ref().unwrap()
    }
    fn both(&mut self, what: &str, mut op: impl FnMut(&File) -> i64) {
        let [m, n] = self.writable();
        let (a, b) = (op(m), op(n));
        assert_eq!(a, b, "{what} {:?}: mount and native disagree", self.paths);
    }
    fn size(&self) -> u64 {
        fs::metadata(&self.paths[1]).unwrap().len()
    }
}

fn sys(r: i64) -> i64 {
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

fn fallocate(f: &File, mode: i32, off: u64, len: u64) -> i64 {
    // SAFETY: fallocate on a descriptor we hold.
    sys(unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) } as i64)
}

fn mmap_write(f: &File, off: u64, data: &[u8]) -> i64 {
    let size = f.metadata().unwrap().len();
    let end = (off + data.len() as u64).min(size);
    if off >= end {
        return 0;
    }
    let len = end as usize;
    if let Err(e) = fault_free(f, len) {
        return -(e as i64);
    }
    // The file's first `len` bytes, all within its size.
    let mut map = common::SharedMap::new(f, len, true);
    map[off as usize..].copy_from_slice(&data[..len - off as usize]);
    map.sync().unwrap();
    (end - off) as i64
}

/// Read the first `len` bytes of `f` once, so that touching them through a mapping
/// cannot fault to a failing read: that would be SIGBUS, killing the test process,
/// whose exiting threads would then wait forever on its own (dead) FUSE daemon. A
/// failure shows here, as the read's error, instead.
fn fault_free(f: &File, len: usize) -> Result<(), i32> {
    read_at(f, 0, len).map(drop)
}

/// The whole file as a shared read-only mapping shows it (the pages the read calls
/// filled, mapped).
fn mmap_read(f: &File) -> Result<Vec<u8>, i32> {
    let len = f.metadata().unwrap().len() as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    fault_free(f, len)?;
    // Nothing else changes the file while it is copied out.
    Ok(common::SharedMap::new(f, len, false).to_vec())
}

fn copy_range(f: &File, from: u64, to: u64, len: u64) -> i64 {
    let (mut i, mut o) = (from as i64, to as i64);
    // SAFETY: copy_file_range within one descriptor we hold, with our own offsets.
    sys(unsafe {
        libc::copy_file_range(
            f.as_raw_fd(),
            &mut i,
            f.as_raw_fd(),
            &mut o,
            len as usize,
            0,
        )
    } as i64)
}

fn read_at(f: &File, off: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.raw_os_error().unwrap_or(0)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// `(operations, seed)` from the environment, or `None` (the test is skipped) without
/// root or /dev/fuse.
fn settings(default_ops: u64) -> Option<(u64, u64)> {
    if !common::can_mount() {
        return None;
    }
    // A mount sets the (process-wide) umask to 0, as the daemon applies each caller's
    // own: set it first, so files made here beside another test's mount starting up
    // get the same modes in both trees.
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0) };
    let ops = std::env::var("VIGIL_RANDOM_OPS").map_or(default_ops, |v| v.parse().unwrap());
    let seed = std::env::var("VIGIL_RANDOM_SEED").map_or(0x5eed, |v| v.parse().unwrap());
    Some((ops, seed))
}

/// A source directory, the mount point over it and a native directory to mirror.
struct Fixture {
    dir: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
    native: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let (dir, [src, mnt, native]) = common::scratch(["src", "mnt", "native"]);
        Fixture {
            dir,
            src,
            mnt,
            native,
        }
    }

    /// Mount the source, measuring every file opened (so reads are verified).
    fn mount(&self) -> Background {
        self.mount_at(&self.mnt, None)
    }

    /// As [`Fixture::mount`], on `mnt` (which may be the source itself), with at most
    /// `max_nodes` nodes before the kernel is asked to forget some.
    fn mount_at(&self, mnt: &Path, max_nodes: Option<usize>) -> Background {
        let policy = vigil_ima::policy::parse("measure func=FILE_CHECK\n")
            .unwrap()
            .compile();
        let cfg = Config {
            policy: Arc::new(policy),
            ..Default::default()
        };
        common::mount_with(&self.src, mnt, self.dir.path(), cfg, |o| {
            o.max_nodes = max_nodes.or(o.max_nodes)
        })
    }
}

#[test]
fn random_operations_agree_with_a_native_file() {
    let Some((ops, seed)) = settings(1500) else {
        return;
    };
    let fx = Fixture::new();
    let names = ["f0", "f1", "f2"];
    for (i, name) in names.iter().enumerate() {
        let start = Rng(seed + i as u64).bytes(300_000);
        fs::write(fx.src.join(name), &start).unwrap();
        fs::write(fx.native.join(name), &start).unwrap();
    }
    let bg = fx.mount();
    // Each file gets its own sequence, all at once, so the files' writes, re-measurements
    // and verified reads interleave in the daemon.
    std::thread::scope(|s| {
        for (i, name) in names.iter().enumerate() {
            let (bg, paths) = (&bg, [fx.mnt.join(name), fx.native.join(name)]);
            s.spawn(move || mirror_random_ops(bg, paths, ops, seed + i as u64));
        }
    });

    // Everything closed and re-measured: mount, backing file and native file agree, and
    // the mount's last measurement of each file (at the latest by the open here) is of
    // its final content.
    common::settle(&bg);
    for name in names {
        let want = fs::read(fx.native.join(name)).unwrap();
        let backing = fs::read(fx.src.join(name)).unwrap();
        assert!(backing == want, "{name}: backing file differs");
        let f = File::open(fx.mnt.join(name)).unwrap();
        common::drop_cached(&f);
        let got = read_at(&f, 0, MAX_SIZE as usize).unwrap();
        assert!(got == want, "{name}: mount differs");
    }
    let ascii = fs::read_to_string(fx.mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    for name in names {
        let digest = common::sha256_hex(&fs::read(fx.native.join(name)).unwrap());
        let suffix = format!("/{name}");
        // Violation records (all-zero template hash) measure nothing.
        let last = ascii
            .lines()
            .rev()
            .find(|l| l.ends_with(&suffix) && !l.starts_with(&format!("10 {}", "0".repeat(40))))
            .unwrap();
        assert!(
            last.contains(&digest),
            "last measurement {last} is not of {digest}"
        );
    }
    bg.unmount().unwrap();
}

/// Run `ops` random operations on `paths` (a file through the mount and its native
/// twin), checking that each gives the same result on both.
fn mirror_random_ops(bg: &Background, paths: [PathBuf; 2], ops: u64, seed: u64) {
    let name = paths[1].file_name().unwrap().to_string_lossy().into_owned();
    let mut pair = Pair {
        ro: [
            File::open(&paths[0]).unwrap(),
            File::open(&paths[1]).unwrap(),
        ],
        rw: None,
        paths,
    };
    let mut rng = Rng(seed ^ 0xa5a5);
    let mut trail: Vec<String> = Vec::new();
    for step in 0..ops {
        let size = pair.size();
        let op = rng.below(18);
        let what = match op {
            0..=2 => {
                let off = rng.span(size + 70_000).min(MAX_SIZE - 1);
                let len = rng.span(200_000).clamp(1, MAX_SIZE - off);
                let data = rng.bytes(len as usize);
                pair.both("pwrite", |f| {
                    f.write_all_at(&data, off).unwrap();
                    len as i64
                });
                format!("pwrite {off}+{len}")
            }
            3..=5 => {
                let off = rng.span(size + 4096);
                let len = rng.span(1 << 20) as usize;
                let what = format!("read {off}+{len}");
                let m = read_at(&pair.ro[0], off, len);
                let n = read_at(&pair.ro[1], off, len);
                same_bytes(&what, &m, &n, &trail);
                what
            }
            6 => {
                let len = rng.span(MAX_SIZE);
                pair.both("truncate", |f| {
                    f.set_len(len).unwrap();
                    0
                });
                format!("truncate {len}")
            }
            7 => {
                let modes = [
                    0,
                    libc::FALLOC_FL_KEEP_SIZE,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    libc::FALLOC_FL_ZERO_RANGE,
                ];
                let mode = modes[rng.below(4) as usize];
                let off = rng.span(size + 10_000).min(MAX_SIZE - 1);
                let len = rng.span(300_000).clamp(1, MAX_SIZE - off);
                pair.both("fallocate", |f| fallocate(f, mode, off, len));
                format!("fallocate mode {mode} {off}+{len}")
            }
            8 => {
                let off = rng.span(size);
                let len = rng.span(100_000) as usize;
                let data = rng.bytes(len);
                pair.both("mmap write", |f| mmap_write(f, off, &data));
                format!("mmap write {off}+{}", data.len())
            }
            9 => {
                let len = rng.span(50_000).min(MAX_SIZE - size) as usize;
                let data = rng.bytes(len);
                for p in &pair.paths {
                    let mut f = OpenOptions::new().append(true).open(p).unwrap();
                    std::io::Write::write_all(&mut f, &data).unwrap();
                }
                format!("append {}", data.len())
            }
            10 => {
                let from = rng.span(size);
                let len = rng.span(200_000);
                let to = rng.span(size).min(MAX_SIZE - len.min(MAX_SIZE));
                pair.both("copy_file_range", |f| copy_range(f, from, to, len));
                format!("copy_file_range {from}->{to} {len}")
            }
            11 => {
                common::drop_cached(&pair.ro[0]);
                "drop cached pages".to_string()
            }
            12 => {
                // The last writer goes: the file is re-measured; reopened read-only,
                // its next reads are checked against the new tree.
                pair.rw = None;
                if rng.below(2) == 0 {
                    bg.guard().wait_idle();
                }
                pair.ro = [
                    File::open(&pair.paths[0]).unwrap(),
                    File::open(&pair.paths[1]).unwrap(),
                ];
                common::drop_cached(&pair.ro[0]);
                "reopen".to_string()
            }
            13 => {
                // O_DIRECT bypasses the page cache: written straight through the daemon,
                // after which the kernel drops the range from every cached view.
                let off = rng.span(size + 8192).min(MAX_SIZE - 4096) & !4095;
                let len = (rng.span(200_000) & !4095).clamp(4096, MAX_SIZE - off);
                let mut buf = common::AlignedBuf::new(len as usize);
                buf.copy_from_slice(&rng.bytes(len as usize));
                for p in &pair.paths {
                    let f = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(p)
                        .unwrap();
                    f.write_all_at(&buf, off).unwrap();
                }
                format!("direct write {off}+{len}")
            }
            14 => {
                // An O_DIRECT read is served (and verified) by the daemon every time.
                let off = rng.span(size + 4096) & !4095;
                let len = (rng.span(1 << 20) & !4095).max(4096) as usize;
                let read = |p: &Path| {
                    let f = OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(p)
                        .unwrap();
                    let mut buf = common::AlignedBuf::new(len);
                    let n = f.read_at(&mut buf, off).map_err(common::errno)?;
                    Ok::<_, i32>(buf[..n].to_vec())
                };
                let what = format!("direct read {off}+{len}");
                same_bytes(&what, &read(&pair.paths[0]), &read(&pair.paths[1]), &trail);
                what
            }
            15 => {
                let (m, n) = (mmap_read(&pair.ro[0]), mmap_read(&pair.ro[1]));
                same_bytes("mapped read", &m, &n, &trail);
                "mapped read".to_string()
            }
            16 => {
                // Holes left by truncation, fallocate and writes past the end, as
                // lseek(SEEK_DATA/SEEK_HOLE) reports them (`cp --sparse`, backup tools).
                // Where a file system puts the boundaries depends on how the bytes were
                // written (the daemon writes a direct write through the page cache)
                // and on what is cached, so the answer is checked against the content:
                // a range reported as a hole reads as zeros, and the end is a hole.
                let off = rng.span(size + 4096);
                let whence = [libc::SEEK_DATA, libc::SEEK_HOLE][rng.below(2) as usize];
                // SAFETY: lseek on a descriptor we hold.
                let r = sys(unsafe { libc::lseek(pair.ro[0].as_raw_fd(), off as i64, whence) });
                let content = read_at(&pair.ro[1], 0, MAX_SIZE as usize).unwrap();
                let len = content.len() as i64;
                let zeros = |from: i64, to: i64| {
                    content[from as usize..to as usize].iter().all(|&b| b == 0)
                };
                let o = off as i64;
                let ok = match (whence, r) {
                    (_, r) if o >= len => r == -(libc::ENXIO as i64),
                    (libc::SEEK_DATA, r) if r == -(libc::ENXIO as i64) => zeros(o, len),
                    (libc::SEEK_DATA, d) => o <= d && d < len && zeros(o, d),
                    (_, h) => o <= h && h <= len && zeros(h, (h + 1).min(len)),
                };
                let what = format!("lseek {off} whence {whence} -> {r} (size {len})");
                assert!(
                    ok,
                    "{name}: {what}: not the content's\n{}",
                    trail.join("\n")
                );
                what
            }
            _ => {
                let m = read_at(&File::open(&pair.paths[0]).unwrap(), 0, MAX_SIZE as usize);
                let n = read_at(&pair.ro[1], 0, MAX_SIZE as usize);
                same_bytes("whole file", &m, &n, &trail);
                "compare whole".to_string()
            }
        };
        trail.push(format!("{name} {step}: {what}"));
        if trail.len() > 40 {
            trail.remove(0);
        }
    }
}

/// Panics, with the latest operations, unless the mount's bytes (or error) are the
/// native ones.
fn same_bytes(what: &str, m: &Result<Vec<u8>, i32>, n: &Result<Vec<u8>, i32>, trail: &[String]) {
    if m == n {
        return;
    }
    let first_difference = match (m, n) {
        (Ok(m), Ok(n)) => m.iter().zip(n).position(|(a, b)| a != b),
        _ => None,
    };
    panic!(
        "{what}: mount {:?} native {:?} bytes, first difference at {first_difference:?}\n\
         after:\n{}",
        m.as_ref().map(Vec::len),
        n.as_ref().map(Vec::len),
        trail.join("\n")
    );
}

/// Names the namespace test works on: any of them may at any time be a file, a
/// directory, a symlink or nothing, so every operation meets every kind of target.
/// The tree starts with the directories `d` and `d/e` and a file in each directory.
const NAMES: [&str; 10] = [
    "x", "y", "z", "d", "d/x", "d/y", "d/z", "d/e", "d/e/x", "d/e/y",
];

fn c(root: &Path, rel: &str) -> CString {
    CString::new(root.join(rel).into_os_string().into_vec()).unwrap()
}

fn ret(r: libc::c_int) -> Result<i64, i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i64)
    }
}

/// What `lstat` shows of a name that both trees must agree on. (Directory sizes and
/// times depend on the filesystem's history, so they are left out.)
fn shape(root: &Path, rel: &str) -> Result<(u32, u32, u64, u64), i32> {
    let m = fs::symlink_metadata(root.join(rel)).map_err(common::errno)?;
    let size = if m.is_dir() { 0 } else { m.len() };
    Ok((m.mode(), m.nlink() as u32, size, m.uid() as u64))
}

fn listing(root: &Path, rel: &str) -> Result<Vec<String>, i32> {
    let mut names: Vec<String> = fs::read_dir(root.join(rel))
        .map_err(common::errno)?
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !(rel.is_empty() && n == ".vigil"))
        .collect();
    names.sort();
    Ok(names)
}

/// Every name in the tree with what it is and holds (content, link target or listing),
/// and which names are hard links of one another (grouped by inode number).
fn snapshot(root: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut out = Vec::new();
    let mut by_ino: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        for name in listing(root, &dir).unwrap() {
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let m = fs::symlink_metadata(root.join(&rel)).unwrap();
            let what = if m.is_dir() {
                todo.push(rel.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {:?}", fs::read_link(root.join(&rel)).unwrap())
            } else {
                let data = fs::read(root.join(&rel)).unwrap();
                format!("{} bytes, sha256 {}", data.len(), common::sha256_hex(&data))
            };
            out.push(format!("{rel}: {:?} {what}", shape(root, &rel)));
            by_ino.entry(m.ino()).or_default().push(rel);
        }
    }
    out.sort();
    let mut links: Vec<Vec<String>> = by_ino.into_values().filter(|v| v.len() > 1).collect();
    for l in &mut links {
        l.sort();
    }
    links.sort();
    (out, links)
}

#[test]
fn random_namespace_operations_agree_with_a_native_tree() {
    mirror_random_namespace_ops(false, None);
}

/// As above with the mount over its own source, so every operation reaches the hidden
/// backing directory through the descriptor opened before mounting.
#[test]
fn random_namespace_operations_on_a_mount_over_its_source() {
    mirror_random_namespace_ops(true, None);
}

/// As above with room for two nodes: at every lookup past them the kernel is asked to
/// forget all it does not use, so files and directories are forgotten and looked up
/// again between (and during) the operations. (That the budget holds is tested in
/// `descriptors.rs`; here, that nothing changes meaning when nodes come and go.)
#[test]
fn random_namespace_operations_with_nodes_forgotten_all_the_time() {
    mirror_random_namespace_ops(false, Some(2));
}

fn mirror_random_namespace_ops(over_source: bool, max_nodes: Option<usize>) {
    let Some((ops, seed)) = settings(3000) else {
        return;
    };
    let fx = Fixture::new();
    for root in [&fx.src, &fx.native] {
        fs::create_dir_all(root.join("d/e")).unwrap();
        for f in ["x", "d/x", "d/e/x"] {
            fs::write(root.join(f), Rng(seed).bytes(10_000)).unwrap();
        }
    }
    let mnt = if over_source { &fx.src } else { &fx.mnt };
    let bg = fx.mount_at(mnt, max_nodes);
    let roots = [mnt.clone(), fx.native.clone()];
    let mut rng = Rng(seed ^ 0x5a5a);
    // Read-only descriptors held open across renames, unlinks and rewrites: each pair
    // (mount, native) must keep reading alike.
    let mut held: Vec<[File; 2]> = Vec::new();
    let mut trail: Vec<String> = Vec::new();
    for step in 0..ops {
        let p = NAMES[rng.below(NAMES.len() as u64) as usize];
        let q = NAMES[rng.below(NAMES.len() as u64) as usize];
        let len = rng.span(40_000) as usize;
        let data = rng.bytes(len);
        let mode = [0o600, 0o644, 0o755, 0o400][rng.below(4) as usize];
        // Weighted so that the tree keeps files, links and directories alike.
        let op = [
            0, 0, 0, 1, 2, 2, 4, 5, 5, 6, 7, 7, 7, 9, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ][rng.below(26) as usize];
        // Each operation runs on both trees; its results must be equal.
        let run = |root: &Path| -> Result<String, i32> {
            // SAFETY (all calls below): libc calls on NUL-terminated paths we own.
            unsafe {
                match op {
                    0 | 1 => {
                        let flags = if op == 0 {
                            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY
                        } else {
                            libc::O_WRONLY | libc::O_TRUNC
                        };
                        let fd = ret(libc::open(c(root, p).as_ptr(), flags, 0o644))?;
                        let f = File::from_raw_fd(fd as i32);
                        f.write_all_at(&data, 0).map_err(common::errno)?;
                        Ok(format!("wrote {}", data.len()))
                    }
                    2 => fs::read(root.join(p))
                        .map(|d| common::sha256_hex(&d))
                        .map_err(common::errno),
                    4 => ret(libc::mkdir(c(root, p).as_ptr(), 0o755)).map(|_| String::new()),
                    5 => ret(libc::rmdir(c(root, p).as_ptr())).map(|_| String::new()),
                    6 => ret(libc::unlink(c(root, p).as_ptr())).map(|_| String::new()),
                    7 => {
                        let flags = [0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][len % 3];
                        ret(libc::renameat2(
                            libc::AT_FDCWD,
                            c(root, p).as_ptr(),
                            libc::AT_FDCWD,
                            c(root, q).as_ptr(),
                            flags,
                        ))
                        .map(|_| String::new())
                    }
                    9 => ret(libc::link(c(root, p).as_ptr(), c(root, q).as_ptr()))
                        .map(|_| String::new()),
                    10 => {
                        let target = CString::new(q).unwrap();
                        ret(libc::symlink(target.as_ptr(), c(root, p).as_ptr()))
                            .map(|_| String::new())
                    }
                    11 => fs::read_link(root.join(p))
                        .map(|t| format!("{t:?}"))
                        .map_err(common::errno),
                    12 => ret(libc::chmod(c(root, p).as_ptr(), mode)).map(|_| String::new()),
                    13 => {
                        ret(libc::truncate(c(root, p).as_ptr(), len as i64)).map(|_| String::new())
                    }
                    14 => {
                        let name = CString::new("user.t").unwrap();
                        ret(libc::lsetxattr(
                            c(root, p).as_ptr(),
                            name.as_ptr(),
                            data.as_ptr().cast(),
                            data.len().min(200),
                            0,
                        ))?;
                        let mut buf = [0u8; 256];
                        let n = ret(libc::lgetxattr(
                            c(root, p).as_ptr(),
                            name.as_ptr(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                        ) as libc::c_int)?;
                        Ok(hex::encode(&buf[..n as usize]))
                    }
                    15 => shape(root, p).map(|s| format!("{s:?}")),
                    16 => listing(root, p).map(|l| l.join(",")),
                    19 => {
                        // Times set explicitly (of the link itself, for a symlink) are
                        // what stat shows. The atime lies ahead, so no access after
                        // (resolving a symlink reads it) moves it under relatime.
                        let at = |sec: i64, nsec: i64| libc::timespec {
                            tv_sec: sec,
                            tv_nsec: nsec,
                        };
                        let l = len as i64;
                        let times = [at(4_000_000_000 + l, l), at(2_000_000 - l, 7)];
                        ret(libc::utimensat(
                            libc::AT_FDCWD,
                            c(root, p).as_ptr(),
                            times.as_ptr(),
                            libc::AT_SYMLINK_NOFOLLOW,
                        ))?;
                        let m = fs::symlink_metadata(root.join(p)).map_err(common::errno)?;
                        let (a, am) = (m.atime(), m.atime_nsec());
                        Ok(format!("{a}.{am} {}.{}", m.mtime(), m.mtime_nsec()))
                    }
                    20 => {
                        let name = CString::new(["user.t", "user.u"][len % 2]).unwrap();
                        let removed = ret(libc::lremovexattr(c(root, p).as_ptr(), name.as_ptr()));
                        let mut buf = [0u8; 1024];
                        let n = ret(libc::llistxattr(
                            c(root, p).as_ptr(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                        ) as libc::c_int)?;
                        let mut names: Vec<&[u8]> = buf[..n as usize]
                            .split(|&b| b == 0)
                            .filter(|n| !n.is_empty())
                            .collect();
                        names.sort();
                        Ok(format!("removed {removed:?}, left {names:?}"))
                    }
                    _ => {
                        let d = ret(libc::open(c(root, p).as_ptr(), libc::O_RDONLY, 0))?;
                        libc::close(d as i32);
                        Ok(String::new())
                    }
                }
            }
        };
        let what = match op {
            17 if held.len() < 6 => {
                let open = |r: &PathBuf| File::open(r.join(p)).map_err(common::errno);
                let (m, n) = (open(&roots[0]), open(&roots[1]));
                assert_eq!(m.is_ok(), n.is_ok(), "step {step}: hold {p}: {m:?} {n:?}");
                if let (Ok(m), Ok(n)) = (m, n) {
                    held.push([m, n]);
                }
                format!("hold {p}")
            }
            18 if !held.is_empty() => {
                let i = rng.below(held.len() as u64) as usize;
                let [m, n] = &held[i];
                let (a, b) = (read_at(m, 0, 1 << 20), read_at(n, 0, 1 << 20));
                assert!(
                    a == b,
                    "step {step}: held read: mount {:?} native {:?}\n{}",
                    a.as_ref().map(|v| v.len()),
                    b.as_ref().map(|v| v.len()),
                    trail.join("\n")
                );
                if rng.below(3) == 0 {
                    held.swap_remove(i);
                }
                "read held".to_string()
            }
            _ => {
                let (a, b) = (run(&roots[0]), run(&roots[1]));
                assert_eq!(
                    a,
                    b,
                    "step {step}: op {op} {p} {q}: mount vs native\n{}",
                    trail.join("\n")
                );
                format!("op {op} {p} {q} len {len} -> {a:?}")
            }
        };
        trail.push(format!("{step}: {what}"));
        if trail.len() > 40 {
            trail.remove(0);
        }
    }

    drop(held);
    common::settle(&bg);
    let (m, n) = (snapshot(&roots[0]), snapshot(&roots[1]));
    assert_eq!(m, n, "mount and native trees differ");
    // Every file's final content was measured (now, at the snapshot's read, or earlier
    // and unchanged since).
    common::settle(&bg);
    let ascii = fs::read_to_string(mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    for line in n.0.iter().filter(|l| l.contains("sha256 ")) {
        let digest = line.rsplit(' ').next().unwrap();
        assert!(ascii.contains(digest), "{line}: content never measured");
    }
    bg.unmount().unwrap();
    assert_eq!(snapshot(&fx.src), n, "backing and native trees differ");
}
