//! Runtime-policy generation as `keylime-policy create runtime` (and the older
//! `keylime_create_policy`) does it: digests of a root file system (hashed in
//! parallel), of a measurement list and of a plain allowlist, merged into an optional
//! base policy, with excludes, ignored keyrings, keyring and `ima-buf` digests from the
//! list, and IMA signature verification keys.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};
use vigil_fsverity::sha256;
use vigil_ima::{HashAlgo, Hasher};

use crate::keys::Keyrings;
use crate::policy::{generator, is_policy_digest, DigestMap, RuntimePolicy, VerificationKeys};
use crate::{Error, Result};

/// Directories (relative to the root file system) Keylime never hashes.
pub const BASE_EXCLUDE_DIRS: &[&str] = &[
    "/sys",
    "/run",
    "/proc",
    "/lost+found",
    "/dev",
    "/media",
    "/snap",
    "/mnt",
    "/var",
    "/tmp",
];

/// The file-digest algorithms Keylime's generator offers (`--algo`).
pub const GENERATOR_ALGOS: &[HashAlgo] = &[
    HashAlgo::Sha1,
    HashAlgo::Sha256,
    HashAlgo::Sha384,
    HashAlgo::Sha512,
    HashAlgo::Sm3,
];

/// Keylime's name for a generator algorithm (`sm3_256` for SM3).
pub fn keylime_algo_name(a: HashAlgo) -> &'static str {
    match a {
        HashAlgo::Sm3 => "sm3_256",
        other => other.name(),
    }
}

/// What an input says about the file-digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoHint {
    /// Nothing (input absent or empty).
    None,
    /// This algorithm.
    Algo(HashAlgo),
    /// 64 hex digits: SHA-256 or SM3.
    Sha256OrSm3,
    /// The input's digests fit no algorithm: generation must abort.
    Invalid,
}

/// Keylime's `_get_digest_algorithm_from_map_list`: guess from the length of the first
/// digest of the first entry.
pub fn hint_from_map(map: &DigestMap) -> AlgoHint {
    let Some((_, list)) = map.iter().next() else {
        return AlgoHint::None;
    };
    let Some(d) = list.first() else {
        return AlgoHint::None;
    };
    if d.is_empty() {
        return AlgoHint::None;
    }
    match d.len() {
        40 => AlgoHint::Algo(HashAlgo::Sha1),
        64 => AlgoHint::Sha256OrSm3,
        96 => AlgoHint::Algo(HashAlgo::Sha384),
        128 => AlgoHint::Algo(HashAlgo::Sha512),
        _ => AlgoHint::Invalid,
    }
}

/// Keylime's `boot_aggregate_from_file` (`process_ima_sig_ima_ng_line`): the algorithm
/// of the list's first line, which must split on single spaces into at least 5 pieces,
/// template `ima`/`ima-ng`/`ima-sig`, a digest `alg:hex` of a generator algorithm and
/// its length (or bare hex of a known length) and the name `boot_aggregate`. The
/// template-hash column and any further pieces are not looked at.
fn hint_from_first_line(line: &str) -> AlgoHint {
    let pieces: Vec<&str> = line.split(' ').collect();
    if pieces.len() < 5 || !["ima-sig", "ima-ng", "ima"].contains(&pieces[2]) {
        return AlgoHint::Invalid;
    }
    let digest: Vec<&str> = pieces[3].split(':').collect();
    let algo = match digest[..] {
        [name, hex] => GENERATOR_ALGOS
            .iter()
            .copied()
            .find(|a| keylime_algo_name(*a) == name)
            .filter(|a| a.digest_len() * 2 == hex.len()),
        // Bare hex, by length: the first of Keylime's algorithms with that hex size.
        _ => GENERATOR_ALGOS
            .iter()
            .copied()
            .find(|a| a.digest_len() * 2 == digest[0].len()),
    };
    match algo {
        Some(a) if pieces[4] == "boot_aggregate" => AlgoHint::Algo(a),
        _ => AlgoHint::Invalid,
    }
}

/// An ASCII measurement list as `keylime-policy create runtime -m` reads it: as text
/// (CR, LF and CRLF all end a line), each line split on single spaces.
#[derive(Debug)]
pub struct MeasurementList {
    /// The algorithm of the first line's `boot_aggregate` (see `hint_from_first_line`).
    pub hint: AlgoHint,
    /// Keylime's `get_hashes_from_measurement_list`: for lines of at least 5 pieces
    /// with template `ima-ng` or `ima-sig`, piece 4 (the name up to its first space)
    /// → the part of piece 3 after its first `:`.
    pub digests: DigestMap,
    /// Keylime's `process_ima_buf_in_measurement_list` entries, or why it fails.
    bufs: Result<Vec<BufEntry>>,
    /// The file, for messages.
    file: String,
}

/// An `ima-buf` line: name, digest and buffer (`None` if not hex).
#[derive(Debug)]
struct BufEntry {
    name: String,
    digest: String,
    buf: Option<Vec<u8>>,
}

impl MeasurementList {
    /// Read the list `text` of `file` (named in errors with the line). Lines Keylime
    /// would crash on (no `:` in the digest) and digests its schema check would refuse
    /// are errors here.
    pub fn read(text: &[u8], file: &str) -> Result<MeasurementList> {
        let line_err = |line: usize, message: String| Error::Line {
            file: file.to_owned(),
            line,
            message,
        };
        let text = std::str::from_utf8(text).map_err(|e| {
            let line = 1 + text[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            line_err(line, "not UTF-8 text".into())
        })?;
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let lines = || {
            text.split_inclusive('\n')
                .enumerate()
                .map(|(i, l)| (i + 1, l))
        };
        let hint = hint_from_first_line(text.split('\n').next().unwrap_or_default());
        let checked = |line: usize, name: &str, digest: &str| {
            if is_policy_digest(digest) {
                Ok(())
            } else {
                Err(line_err(
                    line,
                    format!("digest {digest:?} of {name:?} does not match '^[0-9a-f]{{40,128}}$'"),
                ))
            }
        };
        fn after_colon(field: &str) -> std::result::Result<&str, String> {
            field
                .split(':')
                .nth(1)
                .ok_or_else(|| format!("digest field {field:?} has no ':'"))
        }
        let mut digests = DigestMap::new();
        for (n, line) in lines() {
            let pieces: Vec<&str> = line.split(' ').collect();
            if pieces.len() < 5 || !["ima-sig", "ima-ng"].contains(&pieces[2]) {
                continue;
            }
            let digest = after_colon(pieces[3]).map_err(|m| line_err(n, m))?;
            let name = pieces[4].trim_end_matches('\n');
            checked(n, name, digest)?;
            digests.push(name, digest);
        }
        let bufs = lines()
            .filter_map(|(n, line)| {
                let pieces: Vec<&str> = line.split(' ').collect();
                // Keylime tests `pieces[2] not in ("ima-buf")`: a substring test.
                (pieces.len() == 6 && "ima-buf".contains(pieces[2])).then_some((n, pieces))
            })
            .map(|(n, pieces)| {
                let digest = after_colon(pieces[3]).map_err(|m| line_err(n, m))?;
                checked(n, pieces[4], digest)?;
                Ok(BufEntry {
                    name: pieces[4].to_owned(),
                    digest: digest.to_owned(),
                    buf: hex::decode(pieces[5].trim()).ok(),
                })
            })
            .collect();
        Ok(MeasurementList {
            hint,
            digests,
            bufs,
            file: file.to_owned(),
        })
    }
}

/// Keylime's algorithm choice: sources in priority order (`--algo`, base policy,
/// allowlist, measurement list) must agree; `Sha256OrSm3` is resolved by a later
/// source; default SHA-256.
pub fn choose_algo(hints: &[(AlgoHint, &str)]) -> Result<HashAlgo> {
    let mut chosen: Option<AlgoHint> = None;
    let mut problems = Vec::new();
    for &(hint, source) in hints {
        match hint {
            AlgoHint::None => continue,
            AlgoHint::Invalid => {
                problems.push(format!("invalid digest algorithm found in the {source}"));
                continue;
            }
            _ => {}
        }
        match chosen {
            None => chosen = Some(hint),
            Some(c) if c == hint => {}
            Some(AlgoHint::Sha256OrSm3)
                if matches!(hint, AlgoHint::Algo(HashAlgo::Sha256 | HashAlgo::Sm3)) =>
            {
                chosen = Some(hint)
            }
            Some(_) => problems.push(format!(
                "the digest algorithm in the {source} does not match the one chosen before"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Generate(problems.join("; ")));
    }
    Ok(match chosen {
        Some(AlgoHint::Algo(a)) => a,
        _ => HashAlgo::Sha256,
    })
}

/// Keylime's `process_ima_buf_in_measurement_list`: `ima-buf` entries whose buffer is
/// an X.509 certificate give `keyrings` digests (unless the keyring is ignored or
/// `keyrings` is false); the others give `ima-buf` digests (if `ima_buf`).
fn keyrings_from_list(
    bufs: &[BufEntry],
    ignored: &[String],
    keyrings: bool,
    ima_buf: bool,
    keyring_map: &mut DigestMap,
    ima_buf_map: &mut DigestMap,
) {
    for e in bufs {
        let is_cert = {
            use der::Decode;
            e.buf
                .as_ref()
                .is_some_and(|b| !b.is_empty() && x509_cert::Certificate::from_der(b).is_ok())
        };
        if is_cert {
            if !keyrings || ignored.contains(&e.name) {
                continue;
            }
            keyring_map.push(&e.name, &e.digest);
        } else if ima_buf {
            ima_buf_map.push(&e.name, &e.digest);
        }
    }
}

/// Hash one file.
pub fn hash_file(path: &Path, algo: HashAlgo) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    hash_fd(&f, algo, &mut vec![0u8; READ_LEN])
}

/// Hash what `fd` reads, through `buf`.
fn hash_fd(fd: impl AsFd, algo: HashAlgo, buf: &mut [u8]) -> std::io::Result<Vec<u8>> {
    let mut h = Hasher::new(algo).map_err(std::io::Error::other)?;
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(h.finalize())
}

/// Bytes asked for by one `read` of a file being hashed. Small enough that the
/// buffers of a thread's lanes stay in the CPU's L2 cache: reading from the page cache
/// is a copy, and copying into buffers that are not cached cost more than the
/// syscalls saved (measured with 16 KiB to 256 KiB).
const READ_LEN: usize = 32 << 10;

/// Mount points whose file system type differs from that of `/` (Keylime's
/// `exclude_dirs_based_on_rootfs`), not already covered by `excluded`.
fn foreign_mounts(excluded: &[String]) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mounts: Vec<(String, &str)> = vigil_ima::mountinfo::parse(&text)
        .map(|m| (m.mount_point.to_string_lossy().into_owned(), m.fs_type))
        .collect();
    let Some(root_fs) = mounts.iter().find(|(mp, _)| mp == "/").map(|(_, t)| *t) else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|(_, t)| *t != root_fs)
        .map(|(mp, _)| mp.clone())
        .filter(|mp| !excluded.iter().any(|e| mp.starts_with(e.as_str())))
        .collect()
}

/// Options of a root-file-system scan.
#[derive(Debug, Clone, Default)]
pub struct TreeOptions {
    /// Directories to skip (`--skip-path`), absolute or relative to the current
    /// directory; those not under the root are ignored, as Keylime does.
    pub skip_paths: Vec<PathBuf>,
    /// Also hash files not owned by root (Keylime hashes only uid 0 files).
    pub all_owners: bool,
}

/// The files of a root file system to hash, found by [`collect_tree`]: each with its
/// policy key and the directory it is in, which stays open so that hashing opens the
/// file relative to it.
#[derive(Debug)]
pub struct RootfsTree {
    root: PathBuf,
    dirs: Vec<TreeDir>,
    /// Sorted by key.
    files: Vec<TreeFile>,
}

#[derive(Debug)]
struct TreeDir {
    /// Kept open while the process has file descriptors to spare; otherwise files in it
    /// are opened by `rel` from the root.
    fd: Option<OwnedFd>,
    /// Path relative to the root (empty for the root).
    rel: Vec<u8>,
}

#[derive(Debug)]
struct TreeFile {
    key: String,
    dir: usize,
    name: CString,
    /// Size when the tree was read, if it was looked at.
    size: Option<u64>,
}

impl RootfsTree {
    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The policy keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.key.as_str())
    }

    /// The path of file `i` (the root joined with the path relative to it).
    pub fn path(&self, i: usize) -> PathBuf {
        let f = &self.files[i];
        let mut p = self.root.clone();
        p.push(OsStr::from_bytes(&self.dirs[f.dir].rel));
        p.push(OsStr::from_bytes(f.name.to_bytes()));
        p
    }

    /// Open file `i` for reading.
    fn open(&self, i: usize) -> rustix::io::Result<OwnedFd> {
        let f = &self.files[i];
        let d = &self.dirs[f.dir];
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        match &d.fd {
            Some(fd) => openat(fd, f.name.as_c_str(), flags, Mode::empty()),
            None => {
                let root = self.dirs[0].fd.as_ref().ok_or(rustix::io::Errno::BADF)?;
                let mut rel = d.rel.clone();
                rel.push(b'/');
                rel.extend_from_slice(f.name.to_bytes());
                openat(root, OsStr::from_bytes(&rel), flags, Mode::empty())
            }
        }
    }
}

/// How many directories [`collect_tree`] keeps open: the file-descriptor limit
/// (raised to the hard limit) less a reserve for the hashing threads and the rest of
/// the process.
fn dir_fd_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max {
            let want = max.min(1 << 20);
            let raised = rustix::process::Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                lim.current = Some(want);
            }
        }
    }
    let cur = lim
        .current
        .map_or(usize::MAX, |c| c.min(usize::MAX as u64) as usize);
    cur.saturating_sub(256)
}

/// Collect the files Keylime's `get_rootfs_digests` would hash: regular files (no
/// symlinks) owned by root, outside [`BASE_EXCLUDE_DIRS`], the skipped directories and
/// mount points of another file-system type. The key of a file is its path relative
/// to `rootfs` (absolute when `rootfs` is `/`) with spaces turned into `_` as IMA
/// renders them; files are sorted by key.
///
/// The tree is read with `getdents` and `fstatat`/`openat` relative to each
/// directory's descriptor: no path is looked up from the root per file. The
/// directories stay open in the returned tree (the soft `RLIMIT_NOFILE` is raised to
/// the hard limit for them; beyond it files are opened by their path from the root).
pub fn collect_tree(rootfs: &Path, opts: &TreeOptions) -> Result<RootfsTree> {
    collect_tree_with_budget(rootfs, opts, dir_fd_budget())
}

/// [`collect_tree`], keeping at most `budget` directories open.
fn collect_tree_with_budget(
    rootfs: &Path,
    opts: &TreeOptions,
    budget: usize,
) -> Result<RootfsTree> {
    let abs_root = std::path::absolute(rootfs).map_err(|e| Error::io(rootfs, e))?;
    let meta = std::fs::metadata(&abs_root).map_err(|e| Error::io(&abs_root, e))?;
    if !meta.is_dir() {
        return Err(Error::Generate(format!(
            "{} is not a directory",
            abs_root.display()
        )));
    }
    let mut tree = RootfsTree {
        root: abs_root.clone(),
        dirs: Vec::new(),
        files: Vec::new(),
    };
    let root_str = abs_root.to_string_lossy().into_owned();
    let is_slash = root_str == "/";
    let mut excluded: Vec<String> = Vec::new();
    for d in &opts.skip_paths {
        let abs_d = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
        if abs_root.starts_with(&abs_d) {
            return Ok(tree);
        }
        if let Ok(rel) = abs_d.strip_prefix(&abs_root) {
            excluded.push(if is_slash {
                abs_d.to_string_lossy().into_owned()
            } else {
                format!("/{}", rel.to_string_lossy())
            });
        }
    }
    excluded.extend(BASE_EXCLUDE_DIRS.iter().map(|s| s.to_string()));
    let foreign = foreign_mounts(&excluded);
    excluded.extend(foreign);
    let excluded: HashSet<String> = excluded.into_iter().collect();

    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let root_fd = openat(CWD, &abs_root, dir_flags & !OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| Error::io(&abs_root, e.into()))?;
    tree.dirs.push(TreeDir {
        fd: Some(root_fd),
        rel: Vec::new(),
    });
    let mut kept = 1usize;
    // Directories still to read.
    let mut stack: Vec<usize> = vec![0];
    let mut path = Vec::new();
    while let Some(di) = stack.pop() {
        // A directory not kept open is opened from the root to be read, then closed.
        let transient;
        let fd = match &tree.dirs[di].fd {
            Some(fd) => fd,
            None => {
                let Some(root) = &tree.dirs[0].fd else {
                    continue;
                };
                let rel = OsStr::from_bytes(&tree.dirs[di].rel);
                let Ok(fd) = openat(root, rel, dir_flags, Mode::empty()) else {
                    continue;
                };
                transient = fd;
                &transient
            }
        };
        let Ok(dup) = rustix::io::fcntl_dupfd_cloexec(fd, 0) else {
            continue;
        };
        let Ok(mut dir) = Dir::new(dup) else {
            continue;
        };
        let rel = tree.dirs[di].rel.clone();
        let mut subdirs: Vec<TreeDir> = Vec::new();
        while let Some(Ok(ent)) = dir.read() {
            let name = ent.file_name();
            let nb = name.to_bytes();
            if nb == b"." || nb == b".." {
                continue;
            }
            let mut ft = ent.file_type();
            let mut stat = None;
            if ft == FileType::Unknown {
                match statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => {
                        ft = FileType::from_raw_mode(st.st_mode);
                        stat = Some((st.st_uid, st.st_size as u64));
                    }
                    Err(_) => continue,
                }
            }
            // "/" + path relative to the root: the key, and what excludes match.
            path.clear();
            path.push(b'/');
            path.extend_from_slice(&rel);
            if !rel.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(nb);
            match ft {
                FileType::RegularFile => {
                    if !opts.all_owners && stat.is_none() {
                        match statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => stat = Some((st.st_uid, st.st_size as u64)),
                            Err(_) => continue,
                        }
                    }
                    if !opts.all_owners && !matches!(stat, Some((0, _))) {
                        continue;
                    }
                    tree.files.push(TreeFile {
                        key: String::from_utf8_lossy(&path).replace(' ', "_"),
                        dir: di,
                        name: name.to_owned(),
                        size: stat.map(|(_, size)| size),
                    });
                }
                FileType::Directory => {
                    if excluded.contains(&*String::from_utf8_lossy(&path)) {
                        continue;
                    }
                    let keep = if kept < budget {
                        let Ok(child) = openat(fd, name, dir_flags, Mode::empty()) else {
                            continue;
                        };
                        kept += 1;
                        Some(child)
                    } else {
                        None
                    };
                    stack.push(tree.dirs.len() + subdirs.len());
                    subdirs.push(TreeDir {
                        fd: keep,
                        rel: path[1..].to_vec(),
                    });
                }
                _ => {}
            }
        }
        tree.dirs.append(&mut subdirs);
    }
    tree.files
        .sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| a.name.cmp(&b.name)));
    Ok(tree)
}

/// Hash the files of `tree` into a digest map (files that cannot be read are skipped,
/// as Keylime does); `progress` is advanced once per file.
///
/// Twice as many threads as CPUs (so that one waiting for the disk leaves the CPU to
/// another) take files in turn. For SHA-256 each keeps [`LANES`] files in flight and
/// hashes them side by side with [`vigil_fsverity::sha256::update_lanes`], which
/// interleaves the SHA-NI rounds of independent messages.
pub fn hash_tree(
    tree: &RootfsTree,
    algo: HashAlgo,
    progress: Option<&indicatif::ProgressBar>,
) -> DigestMap {
    let n = tree.files.len();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |p| p.get() * 2)
        .min(n.max(1));
    let mut digests: Vec<Option<String>> = vec![None; n];
    let parts: Vec<Vec<(usize, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    if algo == HashAlgo::Sha256 {
                        hash_worker_sha256(tree, &next, progress)
                    } else {
                        hash_worker(tree, algo, &next, progress)
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (i, d) in parts.into_iter().flatten() {
        digests[i] = Some(d);
    }
    let mut map = DigestMap::new();
    for (f, d) in tree.files.iter().zip(digests) {
        if let Some(d) = d {
            map.push(&f.key, d);
        }
    }
    map
}

/// Files one SHA-256 hashing thread keeps in flight.
pub const LANES: usize = sha256::MAX_LANES;

fn hash_worker(
    tree: &RootfsTree,
    algo: HashAlgo,
    next: &AtomicUsize,
    progress: Option<&indicatif::ProgressBar>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; READ_LEN];
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= tree.files.len() {
            return out;
        }
        if let Ok(fd) = tree.open(i) {
            if let Ok(d) = hash_fd(&fd, algo, &mut buf) {
                out.push((i, hex::encode(d)));
            }
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
}

/// One file being hashed by [`hash_worker_sha256`].
struct Lane {
    /// Index of the file and its descriptor.
    file: Option<(usize, OwnedFd)>,
    /// Bytes read of it so far.
    read: u64,
    /// The last read ended at the size the tree scan saw: no read is needed to see
    /// the end of the file.
    at_end: bool,
    hasher: sha256::Sha256,
    buf: Vec<u8>,
    /// Read but not yet hashed: `buf[start..end]`.
    start: usize,
    end: usize,
}

fn hash_worker_sha256(
    tree: &RootfsTree,
    next: &AtomicUsize,
    progress: Option<&indicatif::ProgressBar>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lanes: Vec<Lane> = (0..LANES)
        .map(|_| Lane {
            file: None,
            read: 0,
            at_end: false,
            hasher: sha256::Sha256::new(),
            buf: vec![0u8; READ_LEN],
            start: 0,
            end: 0,
        })
        .collect();
    let mut exhausted = false;
    let done = |out: &mut Vec<(usize, String)>, i: usize, d: Option<&[u8; 32]>| {
        if let Some(d) = d {
            out.push((i, hex::encode(d)));
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    };
    loop {
        // Give every lane data to hash: read more of its file, or finish it and start
        // the next one. Finished hashers are finalized together.
        let mut finished: Vec<(usize, sha256::Sha256)> = Vec::new();
        for lane in lanes.iter_mut() {
            while lane.start == lane.end {
                let Some((i, fd)) = &lane.file else {
                    if exhausted {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tree.files.len() {
                        exhausted = true;
                        break;
                    }
                    match tree.open(i) {
                        Ok(fd) => {
                            lane.file = Some((i, fd));
                            lane.hasher.reset();
                            lane.read = 0;
                            lane.at_end = false;
                        }
                        Err(_) => done(&mut out, i, None),
                    }
                    continue;
                };
                if lane.at_end {
                    finished.push((*i, std::mem::take(&mut lane.hasher)));
                    lane.file = None;
                    continue;
                }
                match rustix::io::read(fd, &mut lane.buf[..]) {
                    Ok(0) => {
                        finished.push((*i, std::mem::take(&mut lane.hasher)));
                        lane.file = None;
                    }
                    Ok(n) => {
                        lane.start = 0;
                        lane.end = n;
                        lane.read += n as u64;
                        // A short read that reaches the size the scan saw is the end
                        // of the file; a file that grew since is read on to its end.
                        lane.at_end = n < lane.buf.len() && tree.files[*i].size == Some(lane.read);
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => {
                        done(&mut out, *i, None);
                        lane.file = None;
                    }
                }
            }
        }
        if !finished.is_empty() {
            let refs: Vec<&sha256::Sha256> = finished.iter().map(|(_, h)| h).collect();
            let mut digests = vec![[0u8; 32]; refs.len()];
            sha256::finalize_lanes(&refs, &mut digests);
            for ((i, _), d) in finished.iter().zip(&digests) {
                done(&mut out, *i, Some(d));
            }
        }
        // One step of every lane with data: as far as the lane with the least data
        // (at least a block), so that the lanes that run dry are refilled and the
        // others go on side by side.
        let step = lanes
            .iter()
            .filter(|l| l.start < l.end)
            .map(|l| l.end - l.start)
            .min()
            .unwrap_or(0)
            .max(sha256::BLOCK_LEN);
        let mut hashers: Vec<&mut sha256::Sha256> = Vec::with_capacity(LANES);
        let mut chunks: Vec<&[u8]> = Vec::with_capacity(LANES);
        for lane in lanes.iter_mut() {
            if lane.start < lane.end {
                let end = lane.end.min(lane.start + step);
                chunks.push(&lane.buf[lane.start..end]);
                lane.start = end;
                hashers.push(&mut lane.hasher);
            }
        }
        if hashers.is_empty() {
            return out;
        }
        sha256::update_lanes(&mut hashers, &chunks);
    }
}

/// Inputs of a policy generation (`vigil runtime-policy create`).
#[derive(Debug, Default)]
pub struct CreateInputs {
    /// `--algo`.
    pub algo: Option<HashAlgo>,
    /// `--base-policy`.
    pub base: Option<RuntimePolicy>,
    /// `--allowlist` (already read).
    pub allowlist: Option<DigestMap>,
    /// `--ima-measurement-list` (already read).
    pub list: Option<MeasurementList>,
    /// `--rootfs` files (from [`collect_tree`]); hashed once the algorithm is known.
    pub rootfs: Option<RootfsTree>,
    /// `--excludelist` patterns.
    pub excludes: Vec<String>,
    /// `--ignored-keyrings`.
    pub ignored_keyrings: Vec<String>,
    /// `--keyrings`: take keyring digests from the list.
    pub keyrings: bool,
    /// `--ima-buf`: take other ima-buf digests from the list.
    pub ima_buf: bool,
    /// `--add-ima-signature-verification-key` contents.
    pub verification_keys: Vec<(String, Vec<u8>)>,
    /// Extra `boot_aggregate` digests (e.g. computed from a TCG2 event log).
    pub boot_aggregates: Vec<String>,
    /// `meta.timestamp`.
    pub timestamp: String,
}

/// Build a policy the way Keylime's `create_runtime_policy` does.
pub fn create(
    inputs: CreateInputs,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<RuntimePolicy> {
    let mut policy = RuntimePolicy::default();
    let mut base_hint = AlgoHint::None;
    if let Some(base) = &inputs.base {
        // update_base_policy: cherry-pick the supported parts into a fresh policy.
        policy.digests.merge(&base.digests);
        policy.excludes.extend(base.excludes.iter().cloned());
        policy.keyrings.merge(&base.keyrings);
        policy.ima_buf.merge(&base.ima_buf);
        policy.ima.log_hash_alg = base.ima.log_hash_alg.clone();
        policy
            .ima
            .ignored_keyrings
            .extend(base.ima.ignored_keyrings.iter().cloned());
        policy.verification_keys = base.verification_keys.clone();
        base_hint = hint_from_map(&policy.digests);
    }
    let allow_hint = inputs
        .allowlist
        .as_ref()
        .map(hint_from_map)
        .unwrap_or(AlgoHint::None);
    let list_hint = inputs.list.as_ref().map_or(AlgoHint::None, |l| l.hint);
    let list_name = inputs.list.as_ref().map_or(String::new(), |l| {
        format!(
            "IMA measurement list {} (its first line is no boot_aggregate entry of a known algorithm)",
            l.file
        )
    });
    let algo = choose_algo(&[
        (
            inputs.algo.map(AlgoHint::Algo).unwrap_or(AlgoHint::None),
            "--algo option",
        ),
        (base_hint, "base policy"),
        (allow_hint, "allowlist"),
        (list_hint, &list_name),
    ])?;

    let list_digests = inputs.list.as_ref().map(|l| &l.digests);
    let rootfs_digests = inputs
        .rootfs
        .as_ref()
        .map(|tree| hash_tree(tree, algo, progress));
    for d in [
        inputs.allowlist.as_ref(),
        list_digests,
        rootfs_digests.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        policy.digests.merge(d);
    }
    for b in &inputs.boot_aggregates {
        policy.digests.push("boot_aggregate", b.clone());
    }
    policy.excludes.extend(inputs.excludes.iter().cloned());
    policy
        .ima
        .ignored_keyrings
        .extend(inputs.ignored_keyrings.iter().cloned());
    if inputs.keyrings || inputs.ima_buf {
        if let Some(list) = inputs.list {
            let ignored = policy.ima.ignored_keyrings.clone();
            keyrings_from_list(
                &list.bufs?,
                &ignored,
                inputs.keyrings,
                inputs.ima_buf,
                &mut policy.keyrings,
                &mut policy.ima_buf,
            );
        }
    }
    if !inputs.verification_keys.is_empty() {
        let mut vk = policy.verification_keys()?.unwrap_or_default();
        for (name, data) in &inputs.verification_keys {
            let key = Keyrings::parse_key(data)
                .map_err(|m| Error::Key {
                    what: name.clone(),
                    message: m,
                })?
                .ok_or_else(|| Error::Key {
                    what: name.clone(),
                    message: "not a file with a key".into(),
                })?;
            add_verification_key(&mut vk, key.pubkey, key.keyid);
        }
        policy.set_verification_keys(&vk);
    }
    policy.normalize();
    policy.meta.generator = generator::LEGACY_ALLOWLIST as u64;
    policy.meta.timestamp = Some(inputs.timestamp);
    policy.validate_schema()?;
    Ok(policy)
}

/// Add a key to `verification-keys` as Keylime's `ImaKeyring.add_pubkey` does (one key
/// per keyid; the last one wins).
pub fn add_verification_key(vk: &mut VerificationKeys, pubkey: String, keyid: u32) {
    if vk.keyids.len() == vk.pubkeys.len() {
        if let Some(i) = vk.keyids.iter().position(|k| *k == keyid) {
            vk.pubkeys[i] = pubkey;
            return;
        }
    }
    vk.pubkeys.push(pubkey);
    vk.keyids.push(keyid);
}

/// Python's `str(datetime.datetime.now())` for the current local time, in UTC
/// (`YYYY-MM-DD HH:MM:SS.ffffff`).
pub fn python_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algo_choice() {
        use AlgoHint::*;
        assert_eq!(choose_algo(&[]).unwrap(), HashAlgo::Sha256);
        assert_eq!(
            choose_algo(&[(Sha256OrSm3, "a"), (Algo(HashAlgo::Sm3), "b")]).unwrap(),
            HashAlgo::Sm3
        );
        assert_eq!(
            choose_algo(&[(Sha256OrSm3, "a"), (Sha256OrSm3, "b")]).unwrap(),
            HashAlgo::Sha256
        );
        assert!(choose_algo(&[(Algo(HashAlgo::Sha1), "a"), (Sha256OrSm3, "b")]).is_err());
        assert!(choose_algo(&[(Invalid, "a")]).is_err());
    }

    /// A tree with files of sizes around block and read boundaries, nested and
    /// excluded directories, a symlink, a FIFO, spaces in names.
    fn sample_tree(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
        let files: Vec<(&str, usize)> = vec![
            ("empty", 0),
            ("a", 1),
            ("usr/b55", 55),
            ("usr/b64", 64),
            ("usr/lib/b65", 65),
            ("usr/lib/x/y/z/deep", 4097),
            ("usr/lib/big", READ_LEN * 2 + 3),
            ("usr/lib/step", READ_LEN + 64),
            ("usr/with space/file name", 1000),
            ("etc/f1", 130_000),
            ("etc/f2", 2),
            ("etc/f3", 3),
            ("etc/f4", 700_001),
        ];
        let mut out = Vec::new();
        for (i, (f, len)) in files.into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (j * 7 + i * 13) as u8).collect();
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &data).unwrap();
            out.push((f, data));
        }
        for f in ["var/lib/db", "tmp/x", "usr/lib/skipme/s"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"excluded").unwrap();
        }
        std::os::unix::fs::symlink("a", root.join("usr/link")).unwrap();
        std::os::unix::fs::symlink("../usr", root.join("etc/dirlink")).unwrap();
        let fifo = std::ffi::CString::new(root.join("usr/fifo").as_os_str().as_bytes()).unwrap();
        rustix::fs::mkfifoat(CWD, fifo.as_c_str(), Mode::from_raw_mode(0o600)).unwrap();
        out
    }

    #[test]
    fn tree_scan_and_hash_match_plain_hashing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let files = sample_tree(root);
        let opts = TreeOptions {
            skip_paths: vec![root.join("usr/lib/skipme")],
            all_owners: true,
        };
        let mut want_keys: Vec<String> = files
            .iter()
            .map(|(f, _)| format!("/{f}").replace(' ', "_"))
            .collect();
        want_keys.sort();
        // All directories kept open, only the root, and none but the root while reading.
        for budget in [usize::MAX, 1, 2] {
            let tree = collect_tree_with_budget(root, &opts, budget).unwrap();
            let keys: Vec<&str> = tree.keys().collect();
            assert_eq!(keys, want_keys, "budget {budget}");
            for (i, k) in keys.iter().enumerate() {
                let p = tree.path(i);
                assert!(p.starts_with(root));
                assert_eq!(
                    format!("/{}", p.strip_prefix(root).unwrap().display()).replace(' ', "_"),
                    *k
                );
            }
            for algo in [HashAlgo::Sha256, HashAlgo::Sha1, HashAlgo::Sha512] {
                let map = hash_tree(&tree, algo, None);
                let got: Vec<(String, Vec<String>)> = map
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect();
                let mut want: Vec<(String, Vec<String>)> = files
                    .iter()
                    .map(|(f, d)| {
                        (
                            format!("/{f}").replace(' ', "_"),
                            vec![hex::encode(algo.digest(d).unwrap())],
                        )
                    })
                    .collect();
                want.sort();
                assert_eq!(got, want, "{algo} budget {budget}");
            }
        }
        // A trailing slash or a relative root gives the same keys.
        let mut slash = root.as_os_str().to_owned();
        slash.push("/");
        let tree = collect_tree(Path::new(&slash), &opts).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), want_keys);
        // A root inside a skipped directory gives nothing.
        let none = TreeOptions {
            skip_paths: vec![root.to_path_buf()],
            all_owners: true,
        };
        assert!(collect_tree(root, &none).unwrap().is_empty());
    }

    #[test]
    fn files_changed_after_the_scan_are_hashed_as_they_are_then() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let sizes = [10usize, 100, READ_LEN - 1, READ_LEN, READ_LEN + 5];
        for (i, n) in sizes.iter().enumerate() {
            std::fs::write(root.join(format!("grow{i}")), vec![1u8; *n]).unwrap();
            std::fs::write(root.join(format!("shrink{i}")), vec![2u8; *n]).unwrap();
        }
        // Owner checks make the scan record sizes (tests run as root or not: both).
        for all_owners in [false, true] {
            let opts = TreeOptions {
                all_owners,
                ..Default::default()
            };
            let tree = collect_tree(root, &opts).unwrap();
            if tree.is_empty() {
                continue; // not root, and the files are not root's
            }
            let mut want = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let g: Vec<u8> = [vec![1u8; *n], vec![3u8; 70]].concat();
                std::fs::write(root.join(format!("grow{i}")), &g).unwrap();
                let t = vec![2u8; n / 2];
                std::fs::write(root.join(format!("shrink{i}")), &t).unwrap();
                want.push((format!("/grow{i}"), g));
                want.push((format!("/shrink{i}"), t));
            }
            let map = hash_tree(&tree, HashAlgo::Sha256, None);
            for (k, data) in &want {
                let d = hex::encode(HashAlgo::Sha256.digest(data).unwrap());
                assert_eq!(map.get(k).map(|v| v.to_vec()), Some(vec![d]), "{k}");
            }
            // Back to the original contents for the next round.
            for (i, n) in sizes.iter().enumerate() {
                std::fs::write(root.join(format!("grow{i}")), vec![1u8; *n]).unwrap();
                std::fs::write(root.join(format!("shrink{i}")), vec![2u8; *n]).unwrap();
            }
        }
    }

    #[test]
    fn tree_skips_files_not_owned_by_root() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join("mine"), b"m").unwrap();
        std::fs::write(root.join("nobody"), b"n").unwrap();
        std::os::unix::fs::chown(root.join("nobody"), Some(65534), None).unwrap();
        let tree = collect_tree(root, &TreeOptions::default()).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["/mine"]);
        let all = TreeOptions {
            all_owners: true,
            ..Default::default()
        };
        let tree = collect_tree(root, &all).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["/mine", "/nobody"]);
    }

    #[test]
    fn tree_errors_name_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let e = collect_tree(&missing, &TreeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = collect_tree(&file, &TreeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }

    #[test]
    fn python_timestamp_shape() {
        let t = python_now();
        assert_eq!(t.len(), 26, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
        assert_eq!(&t[19..20], ".");
    }
}
