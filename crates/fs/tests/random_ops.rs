//! Random operations on a file through a measuring mount, mirrored on a native file
//! (an fsx-style differential test): writes, reads, truncation, fallocate modes, mmap
//! writes, appends, copy_file_range, dropped page caches and reopenings (each last
//! writer's close re-measures; each later read is verified against the new tree) must
//! leave the two files byte for byte alike. Needs root and /dev/fuse; skipped otherwise.
//!
//! `VIGIL_RANDOM_OPS=N` and `VIGIL_RANDOM_SEED=S` run longer or other sequences.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil_fs::{Mount, MountOptions};
use vigil_guard::{Config, Guard};

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
        assert_eq!(a, b, "{what}: mount and native disagree");
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
    // SAFETY: a shared mapping of the file's first `len` bytes (all within its size),
    // written inside those bounds, flushed and unmapped before it is let go.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        let dst = std::slice::from_raw_parts_mut(p as *mut u8, len);
        dst[off as usize..].copy_from_slice(&data[..len - off as usize]);
        assert_eq!(libc::msync(p, len, libc::MS_SYNC), 0);
        libc::munmap(p, len);
    }
    (end - off) as i64
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

fn drop_cached(f: &File) {
    // SAFETY: fadvise on a descriptor we hold.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[test]
fn random_operations_agree_with_a_native_file() {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: FUSE mounts need root and /dev/fuse");
        return;
    }
    let ops: u64 = std::env::var("VIGIL_RANDOM_OPS").map_or(1500, |v| v.parse().unwrap());
    let seed: u64 = std::env::var("VIGIL_RANDOM_SEED").map_or(0x5eed, |v| v.parse().unwrap());
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fs-tests");
    fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    let (src, mnt, native) = (
        dir.path().join("src"),
        dir.path().join("mnt"),
        dir.path().join("native"),
    );
    for d in [&src, &mnt, &native] {
        fs::create_dir(d).unwrap();
    }
    let start: Vec<u8> = Rng(seed).bytes(300_000);
    fs::write(src.join("f"), &start).unwrap();
    fs::write(native.join("f"), &start).unwrap();

    let policy = vigil_ima::policy::parse("measure func=FILE_CHECK\n")
        .unwrap()
        .compile();
    let cfg = Config {
        policy: Arc::new(policy),
        tree_builder: Some(vigil_fs::verity::tree_builder()),
        ..Default::default()
    };
    let guard = Guard::new(cfg, dir.path().join("state")).unwrap();
    let bg = Mount::new(MountOptions::new(&src, &mnt, guard))
        .unwrap()
        .spawn()
        .unwrap();

    let paths = [mnt.join("f"), native.join("f")];
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
        let op = rng.below(14);
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
                let (m, n) = (
                    read_at(&pair.ro[0], off, len),
                    read_at(&pair.ro[1], off, len),
                );
                assert!(
                    m == n,
                    "step {step}: read {off}+{len}: mount {:?} native {:?}\n{}",
                    m.as_ref().map(|v| v.len()),
                    n.as_ref().map(|v| v.len()),
                    trail.join("\n")
                );
                format!("read {off}+{len}")
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
                drop_cached(&pair.ro[0]);
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
                drop_cached(&pair.ro[0]);
                "reopen".to_string()
            }
            _ => {
                let n = read_at(&pair.ro[1], 0, MAX_SIZE as usize).unwrap();
                let m = read_at(&File::open(&pair.paths[0]).unwrap(), 0, MAX_SIZE as usize);
                assert!(
                    m.as_ref() == Ok(&n),
                    "step {step}: whole file: mount {:?} native {} bytes{}\n{}",
                    m.as_ref().map(|v| v.len()),
                    n.len(),
                    m.as_ref()
                        .ok()
                        .and_then(|m| m.iter().zip(&n).position(|(a, b)| a != b))
                        .map_or(String::new(), |i| format!(", first difference at {i}")),
                    trail.join("\n")
                );
                "compare whole".to_string()
            }
        };
        trail.push(format!("{step}: {what}"));
        if trail.len() > 40 {
            trail.remove(0);
        }
    }

    // Everything closed and re-measured: mount, backing file and native file agree, and
    // the mount's last measurement is of the final content.
    pair.rw = None;
    drop(pair.ro);
    let t0 = std::time::Instant::now();
    while bg.open_handles() > 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    bg.guard().wait_idle();
    let want = fs::read(native.join("f")).unwrap();
    assert!(
        fs::read(src.join("f")).unwrap() == want,
        "backing file differs"
    );
    let f = File::open(mnt.join("f")).unwrap();
    drop_cached(&f);
    assert!(
        read_at(&f, 0, MAX_SIZE as usize).unwrap() == want,
        "mount differs"
    );
    let digest = hex::encode(vigil_ima::HashAlgo::Sha256.digest(&want).unwrap());
    let ascii = fs::read_to_string(mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    let last = ascii.lines().rev().find(|l| l.ends_with("/f")).unwrap();
    assert!(
        last.contains(&digest),
        "last measurement {last} is not of {digest}"
    );
    drop(f);
    bg.unmount().unwrap();
}
