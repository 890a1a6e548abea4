//! [`Guard`]: per-file state, the open/write/release hooks, deferred re-measurement,
//! seals and sealed memfds.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_ima::{HashAlgo, XattrType};

use crate::appraise::{self, AppraiseMode, SignatureVerifier, Verdict, XattrSource};
use crate::evm::{self, EvmFile, EvmKeys, EvmNames, EvmStatus};
use crate::genstate::GenState;
use crate::identity::{self, FileAttrs, FileId, Identified};
use crate::log::{LogConfig, MeasurementLog, IMA_PCR};
use crate::policy::{
    Access, Actions, AppraiseAction, FixedPolicy, FsInfo, Hook, MeasureAction, PolicyEngine,
    MAY_APPEND, MAY_READ, MAY_WRITE,
};
use crate::queue::{DedupQueue, Push};
use crate::store::{TreeRef, TreeStore};
use crate::sys;
use crate::template::{self, DigestType, Event, InodeFields, Template};
use crate::{Error, Result};

/// An fs-verity Merkle tree and the file digest it yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityTree {
    /// Hash algorithm of the tree.
    pub algo: HashAlgo,
    /// The fs-verity file digest (the digest of the descriptor).
    pub digest: Vec<u8>,
    /// The tree bytes, as stored after the data. In a [`Measurement`] whose tree is
    /// in the tree store this is empty (see [`Measurement::tree_bytes`]): a tree is
    /// 1/128 of its file, too much to keep for every file measured.
    pub tree: Vec<u8>,
}

/// Builds fs-verity trees from content.
pub trait TreeBuilder: Send + Sync {
    /// A tree to feed a file's content to, from its start.
    fn start(&self) -> Box<dyn TreeBuild>;
}

/// One tree being built. The guard reads the content once and feeds each chunk both to
/// the content hash and, in parallel, to the tree.
pub trait TreeBuild: Send {
    /// The next bytes of the content.
    fn update(&mut self, data: &[u8]);
    /// The tree of everything fed.
    fn finish(self: Box<Self>) -> std::result::Result<VerityTree, String>;
}

/// Where a failed deferred re-measurement is reported: the file's path, and why.
pub type JobFailureReport = dyn Fn(&OsStr, &Error) + Send + Sync;

/// Settings of a [`Guard`].
#[derive(Clone)]
pub struct Config {
    /// `ima_hash`: the algorithm of file digests in the log and of refreshed hash values.
    pub hash_algo: HashAlgo,
    /// Default template of measurement records.
    pub template: Template,
    /// PCR banks and group commit of the measurement log.
    pub log: LogConfig,
    /// Appraisal mode.
    pub appraise_mode: AppraiseMode,
    /// Where IMA values are read and written.
    pub xattr: XattrSource,
    /// The policy.
    pub policy: Arc<dyn PolicyEngine>,
    /// The key ring for signature values (none: every signature fails with `no-keys`).
    pub verifier: Option<Arc<dyn SignatureVerifier>>,
    /// EVM's keys (none: EVM does not take part in appraisal).
    pub evm: EvmKeys,
    /// The fs-verity tree builder (none: no trees, no verity digests).
    pub tree_builder: Option<Arc<dyn TreeBuilder>>,
    /// Worker threads for deferred jobs.
    pub workers: usize,
    /// Capacity of the deferred-job queue (distinct files).
    pub queue_capacity: usize,
    /// Uids allowed to unseal (root always is).
    pub seal_admins: Vec<u32>,
    /// Told of each deferred re-measurement that failed: the file's path (found then
    /// by the `find_path` of its last writer's release) and why (none: only counted,
    /// [`GuardStats::jobs_failed`]).
    pub job_failures: Option<Arc<JobFailureReport>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hash_algo: HashAlgo::Sha256,
            template: Template::ImaNg,
            log: LogConfig::default(),
            appraise_mode: AppraiseMode::Enforce,
            xattr: XattrSource::Security,
            policy: Arc::new(FixedPolicy::default()),
            verifier: None,
            evm: EvmKeys::default(),
            tree_builder: None,
            workers: 2,
            queue_capacity: 4096,
            seal_admins: Vec::new(),
            job_failures: None,
        }
    }
}

/// The result of measuring one version of a file.
#[derive(Debug)]
pub struct Measurement {
    /// Generation of the file the measurement belongs to.
    pub generation: u64,
    /// Attributes when the measurement began; in an unpublished measurement of a file
    /// that changed while it was read, the size is that of the bytes read.
    pub attrs: FileAttrs,
    /// Content digest algorithm (`ima_hash`).
    pub algo: HashAlgo,
    /// Content digest.
    pub digest: Vec<u8>,
    /// fs-verity digest and stored tree, if a tree builder is configured. A file of
    /// at most one block has an empty tree (its root hash is the block's hash), which
    /// is not stored; a stored tree is not held in memory.
    pub verity: Option<(VerityTree, Option<TreeRef>)>,
    /// The IMA value (`security.ima` or configured source) read with the content.
    pub ima_value: Option<Vec<u8>>,
    /// Why the hash value this measurement should have written (fix mode, a `hash`
    /// rule, the refresh after writes) could not be: a read-only or full file system,
    /// no xattr support. Not retried for this version of the file; a failed appraisal
    /// names it.
    pub value_error: Option<String>,
    /// PCRs this version was logged to (bit n = PCR n).
    logged: AtomicU64,
    /// Appraisal verdicts, by the appraise options that asked. A leaf lock: held only
    /// to look up or add a verdict, never across I/O or with another lock.
    verdicts: Mutex<Vec<(AppraiseAction, Verdict)>>,
}

impl Measurement {
    /// The verity tree reference (for block verification of reads).
    pub fn tree(&self) -> Option<&TreeRef> {
        self.verity.as_ref().and_then(|(_, r)| r.as_ref())
    }

    /// The Merkle tree bytes (fs-verity layout), read back from the tree store when
    /// the tree is stored there (checked against its checksum; the store keeps the
    /// file for as long as this measurement exists). `None` without a tree builder.
    pub fn tree_bytes(&self) -> Result<Option<Vec<u8>>> {
        match &self.verity {
            None => Ok(None),
            Some((_, Some(stored))) => crate::store::load_tree(&stored.path).map(Some),
            Some((tree, None)) => Ok(Some(tree.tree.clone())),
        }
    }
}

const MAPS_SHIFT: u32 = 24;
const COUNT_MASK: u64 = (1 << 24) - 1;
/// Writers or writable mappings are counted.
const BUSY: u64 = COUNT_MASK | (COUNT_MASK << MAPS_SHIFT);
/// The file passed its latest appraisal (IMA's `ima_file_status == INTEGRITY_PASS`).
const PASSED: u64 = 1 << 61;
/// Its content was changed through the mount since its hash value was last brought
/// up to date.
const WRITTEN: u64 = 1 << 62;
const SEALED: u64 = 1 << 63;

/// Per-file state. Its two locks (outer measurement lock, inner result slot) live in
/// [`GenState`], whose documentation gives their order (and that of the EVM locks,
/// [`Shared::evm_lock`]); everything else here is atomic.
pub(crate) struct FileState {
    gen: GenState<Arc<Measurement>>,
    /// writers (bits 0–23) | writable mappings (bits 24–47) | PASSED (bit 61) |
    /// WRITTEN (bit 62) | SEALED (bit 63).
    acct: AtomicU64,
    readers: AtomicU32,
    may_emit_tomtou: AtomicBool,
    emitted_open_writers: AtomicBool,
    /// The last writer's uid (high half) and gid: the subject of its re-measurement.
    last_writer: AtomicU64,
    /// Metadata changes in progress ([`MetadataChange`]).
    metadata_changes: AtomicU32,
    /// Changes of the guard's own (content and metadata) begun so far: a judgement
    /// against the version the latest one left holds only if none began while it was
    /// made.
    own_changes_begun: AtomicU64,
    /// The file's version right after the latest change known as the guard's own (a
    /// content or metadata change through it, or its own hash-value write). While no
    /// published measurement stands for the content — from a write through the guard
    /// until the file is measured again — a change behind the guard is told apart by
    /// this. A leaf lock (see the lock order in `genstate`).
    own_version: Mutex<Option<FileAttrs>>,
}

impl FileState {
    fn new(sealed: bool) -> Self {
        FileState {
            gen: GenState::new(),
            acct: AtomicU64::new(if sealed { SEALED } else { 0 }),
            readers: AtomicU32::new(0),
            may_emit_tomtou: AtomicBool::new(false),
            emitted_open_writers: AtomicBool::new(false),
            last_writer: AtomicU64::new(0),
            metadata_changes: AtomicU32::new(0),
            own_changes_begun: AtomicU64::new(0),
            own_version: Mutex::new(None),
        }
    }

    /// A change of the guard's own left the file (open as `fd`, any descriptor of it)
    /// as it is now. The version is read with the lock held, so of changes noting
    /// theirs out of order the last to note reads the latest version: two versions may
    /// share a ctime (a write that began before a truncate's version was read takes the
    /// truncate's ctime, and extends the file after), so the versions cannot be ordered
    /// by ctime.
    fn note_own(&self, fd: BorrowedFd<'_>) {
        let mut own = self.own_version.lock().unwrap_or_else(|e| e.into_inner());
        *own = identity::version_fd(fd).ok();
    }

    /// A change of the guard's own left a version it does not know.
    fn forget_own(&self) {
        *self.own_version.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn own_version(&self) -> Option<FileAttrs> {
        *self.own_version.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writers(&self) -> u32 {
        (self.acct.load(Ordering::Acquire) & COUNT_MASK) as u32
    }

    fn maps(&self) -> u32 {
        ((self.acct.load(Ordering::Acquire) >> MAPS_SHIFT) & COUNT_MASK) as u32
    }

    fn sealed(&self) -> bool {
        self.acct.load(Ordering::Acquire) & SEALED != 0
    }

    /// Count one more writer (shift 0) or writable mapping (shift 24), unless sealed.
    fn acquire(&self, shift: u32) -> Result<()> {
        self.acct
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a & SEALED == 0).then_some(a + (1 << shift))
            })
            .map(|_| ())
            .map_err(|_| Error::Sealed)
    }

    /// Drop one writer/mapping; returns the count before.
    fn release(&self, shift: u32) -> u32 {
        let prev = self.acct.fetch_sub(1 << shift, Ordering::AcqRel);
        ((prev >> shift) & COUNT_MASK) as u32
    }

    fn set(&self, bit: u64, on: bool) {
        if on {
            self.acct.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.acct.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Whether the file's hash value is to follow its content: it passed appraisal
    /// and was written through the mount since. The kernel trusts the writes it
    /// carries out on a file that passed: until its last writer closes it keeps the
    /// verdict, and then rewrites the hash value (`ima_update_xattr`, only for a file
    /// whose status is PASS).
    fn trusts_changes(&self) -> bool {
        self.acct.load(Ordering::Acquire) & (PASSED | WRITTEN) == PASSED | WRITTEN
    }

    /// The file was changed behind the guard: its measurement no longer stands, and the
    /// trust in its writes ends — the appraisal it passed was not of this content, so
    /// writes through the guard from now on do not bring it back either (the next open
    /// appraises the file as it is).
    fn changed_behind(&self) {
        self.gen.invalidate();
        self.set(PASSED | WRITTEN, false);
    }

    /// A measurement made with its hash value brought up to date: if the value now
    /// matches `m`, `m` is still current and no writer remains, the file no longer
    /// counts as written.
    fn value_brought_up_to_date(&self, m: &Arc<Measurement>) {
        let current = || self.gen.lookup().is_some_and(|cur| Arc::ptr_eq(&cur, m));
        if needs_value_refresh(m) || !current() {
            return;
        }
        let cleared = self
            .acct
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a & BUSY == 0).then_some(a & !WRITTEN)
            })
            .is_ok();
        // A change that began and ended between the two tests: written again.
        if cleared && !current() {
            self.set(WRITTEN, true);
        }
    }
}

/// The path a log record or an error names, found only when one is written: most
/// opens write none, and finding the path has a cost. Kept as the bytes the file
/// system gave (the kernel logs names as they are, UTF-8 or not).
#[derive(Clone)]
pub struct LogPath<'a> {
    found: OnceLock<OsString>,
    find: Option<&'a (dyn Fn() -> OsString + Sync)>,
}

impl<'a> LogPath<'a> {
    /// The path `find` returns, called at most once and only if the path is needed.
    pub fn lazy(find: &'a (dyn Fn() -> OsString + Sync)) -> Self {
        LogPath {
            found: OnceLock::new(),
            find: Some(find),
        }
    }

    /// The path.
    pub fn get(&self) -> &OsStr {
        self.found
            .get_or_init(|| self.find.map_or_else(OsString::new, |find| find()))
    }

    /// The path for messages (bytes that are not UTF-8 shown as U+FFFD).
    pub fn display(&self) -> std::path::Display<'_> {
        Path::new(self.get()).display()
    }
}

impl<T: Into<OsString>> From<T> for LogPath<'_> {
    fn from(path: T) -> Self {
        LogPath {
            found: OnceLock::from(path.into()),
            find: None,
        }
    }
}

impl std::fmt::Debug for LogPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.found.get() {
            Some(p) => p.fmt(f),
            None => f.write_str("<not yet resolved>"),
        }
    }
}

/// One access being opened.
#[derive(Clone)]
pub struct OpenRequest<'a> {
    /// Hook (open, exec mmap, execve).
    pub hook: Hook,
    /// `MAY_*` bits.
    pub mask: u32,
    /// Real uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// The path to log.
    pub path: LogPath<'a>,
    /// The opener created the file (`O_CREAT` that made it).
    pub created: bool,
    /// Whether the opener has gone (say, killed while it waited). Asked now and then
    /// while the open waits for a measurement, which is then given up
    /// ([`Error::Interrupted`]): a long measurement need not outlive the one waiting.
    pub gone: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl<'a> OpenRequest<'a> {
    /// A read open by root of `path`.
    pub fn read(path: impl Into<LogPath<'a>>) -> Self {
        OpenRequest {
            hook: Hook::FileCheck,
            mask: MAY_READ,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            path: path.into(),
            created: false,
            gone: None,
        }
    }

    /// A write open by root of `path`.
    pub fn write(path: impl Into<LogPath<'a>>) -> Self {
        OpenRequest {
            mask: MAY_WRITE,
            ..Self::read(path)
        }
    }

    fn is_write(&self) -> bool {
        self.mask & (MAY_WRITE | MAY_APPEND) != 0
    }
}

/// A counted open. Keep it for as long as the file is open (a FUSE file handle) and
/// give it back with [`Guard::on_release`]; dropping it without does the accounting
/// but queues no re-measurement.
pub struct OpenHandle {
    id: FileId,
    state: Arc<FileState>,
    write: bool,
    released: bool,
}

impl OpenHandle {
    /// The file.
    pub fn id(&self) -> &FileId {
        &self.id
    }

    /// Whether this open counts as a writer.
    pub fn is_writer(&self) -> bool {
        self.write
    }

    /// Returns true if this was the last writer.
    fn release_counts(&mut self) -> bool {
        if self.released {
            return false;
        }
        self.released = true;
        if self.write {
            let last = self.state.release(0) == 1;
            if last {
                self.state
                    .emitted_open_writers
                    .store(false, Ordering::Release);
            }
            last
        } else {
            self.state.readers.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }
}

impl Drop for OpenHandle {
    fn drop(&mut self) {
        self.release_counts();
    }
}

/// The answer to an open.
pub struct OpenDecision {
    /// The counted open.
    pub handle: OpenHandle,
    /// The measurement used, if the policy asked for any action.
    pub measurement: Option<Arc<Measurement>>,
    /// The appraisal verdict, if appraised (in log/fix mode it may be a failure that
    /// did not deny).
    pub verdict: Option<Verdict>,
}

/// What [`Guard::on_release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// A reader, or a writer that was not the last.
    Counted,
    /// The last writer: a re-measurement job was queued.
    Queued,
    /// The last writer: merged into a job already waiting for this file.
    Merged,
    /// The last writer, but the queue is full: no job queued (the file stays dirty and
    /// is measured at its next open).
    QueueFull,
}

/// A counted writable shared mapping; dropping it uncounts it.
pub struct MapToken {
    state: Arc<FileState>,
}

impl Drop for MapToken {
    fn drop(&mut self) {
        self.state.release(MAPS_SHIFT);
    }
}

/// A content change in progress (write, truncate, fallocate, size change): the file
/// is dirty, and counted as having a writer, from its creation until after it is
/// dropped.
pub struct Modification {
    state: Arc<FileState>,
    begin: u64,
    done: bool,
}

impl Modification {
    /// The (in-flight) generation the change began.
    pub fn begin_generation(&self) -> u64 {
        self.begin
    }

    /// End the change now; returns the generation of the new content. The version it
    /// left is not known (see [`Modification::done_at`]): until a change notes one,
    /// changes behind the guard are told apart by measurements only.
    pub fn finish(mut self) -> u64 {
        self.state.forget_own();
        self.end()
    }

    /// End the change made to the file open as `fd` (any descriptor of it, `O_PATH`
    /// too), noting the version it left as the guard's own; returns the generation of
    /// the new content.
    pub fn done_at(mut self, fd: BorrowedFd<'_>) -> u64 {
        self.state.note_own(fd);
        self.end()
    }

    fn end(&mut self) -> u64 {
        self.done = true;
        let generation = self.state.gen.end_modify();
        if self.state.release(0) == 1 {
            self.state
                .emitted_open_writers
                .store(false, Ordering::Release);
        }
        generation
    }
}

impl Drop for Modification {
    fn drop(&mut self) {
        if !self.done {
            self.state.forget_own();
            self.end();
        }
    }
}

/// A metadata change in progress ([`Guard::change_metadata`]): the file's ctime moves
/// on while its content does not. Dropping it, once the change is done, invalidates the
/// file's measurement.
pub struct MetadataChange {
    shared: Arc<Shared>,
    id: FileId,
    /// The file's state, if it had one when the change began.
    state: Option<Arc<FileState>>,
    /// The file, where the caller had it and the guard has state for it: the version
    /// the change leaves is noted as the guard's own.
    file: Option<OwnedFd>,
}

impl Drop for MetadataChange {
    fn drop(&mut self) {
        if let (Some(st), Some(fd)) = (&self.state, &self.file) {
            st.note_own(fd.as_fd());
        }
        // Invalidated before the count goes down: one who then finds no change in
        // progress also finds the measurement that predates it gone.
        if let Some(st) = self.shared.existing(&self.id) {
            st.gen.invalidate();
        }
        if let Some(st) = &self.state {
            st.metadata_changes.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A recorded seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRecord {
    /// Content digest algorithm.
    pub algo: HashAlgo,
    /// Content digest when sealed.
    pub digest: Vec<u8>,
    /// fs-verity digest when sealed (algorithm, digest), if trees are built.
    pub verity: Option<(HashAlgo, Vec<u8>)>,
}

/// The accounting state of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStatus {
    /// Open-for-write handles.
    pub writers: u32,
    /// Writable shared mappings.
    pub writable_maps: u32,
    /// Read-only handles.
    pub readers: u32,
    /// Sealed.
    pub sealed: bool,
    /// Current generation.
    pub generation: u64,
    /// No valid published measurement.
    pub dirty: bool,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Measurements performed (file content read and hashed).
    pub measurements: u64,
    /// Opens answered from a published measurement.
    pub cache_hits: u64,
    /// Measurements whose result was discarded because the file changed meanwhile.
    pub publish_refused: u64,
    /// Violation records (ToMToU, open_writers).
    pub violations: u64,
    /// Deferred jobs queued / merged / refused (queue full).
    pub jobs_queued: u64,
    /// Jobs merged into a waiting job.
    pub jobs_merged: u64,
    /// Jobs refused because the queue was full.
    pub jobs_refused: u64,
    /// Jobs finished.
    pub jobs_done: u64,
    /// Jobs that failed (no mount registered, I/O error). A job whose file was
    /// deleted meanwhile has nothing to do and counts as finished.
    pub jobs_failed: u64,
}

#[derive(Default)]
struct Counters {
    measurements: AtomicU64,
    cache_hits: AtomicU64,
    publish_refused: AtomicU64,
    violations: AtomicU64,
    jobs_queued: AtomicU64,
    jobs_merged: AtomicU64,
    jobs_refused: AtomicU64,
    jobs_done: AtomicU64,
    jobs_failed: AtomicU64,
}

struct JobInfo {
    uid: u32,
    gid: u32,
    /// Finds the file's path, for the report of a failure (none: made up for at
    /// shutdown).
    find_path: Option<FindPath>,
}

/// Finds a file's path when it is needed (see [`Guard::on_release`]).
pub type FindPath = Box<dyn FnOnce() -> OsString + Send>;

/// The exclusive lock on `<state>/lock`, held for the guard's lifetime and released
/// explicitly when dropped: a child process forked meanwhile by any thread shares the
/// open file description until it execs, and closing the descriptor alone would leave
/// the directory locked until then (a restart on it refused, now and then).
struct StateLock(File);

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock);
    }
}

struct Shared {
    _lock: StateLock,
    state_dir: PathBuf,
    config: Config,
    files: RwLock<HashMap<FileId, Arc<FileState>>>,
    mounts: RwLock<HashMap<u64, Arc<OwnedFd>>>,
    /// File-system facts for policy conditions, by mount id. A leaf lock, never held
    /// across I/O.
    filesystems: RwLock<HashMap<u64, Arc<FsInfo>>>,
    queue: DedupQueue<FileId, JobInfo>,
    log: MeasurementLog,
    trees: TreeStore,
    seals: Mutex<BTreeMap<String, SealRecord>>,
    seals_path: PathBuf,
    counters: Counters,
    /// Set by [`Guard::abandon_measurements`].
    abandoned: AtomicBool,
    /// See [`Shared::evm_lock`].
    evm_locks: [Mutex<()>; EVM_LOCKS],
}

/// Stripes of the EVM lock: one per file would need state for every file whose
/// metadata changes.
const EVM_LOCKS: usize = 64;

/// The enforcement core. Cheap to share (`Arc` inside); dropping the last copy stops
/// the workers after they finish the queued jobs.
pub struct Guard {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Reads of content to hash: 1 MiB keeps the per-chunk hand-offs of [`hash_content`]
/// negligible (measured faster than 256 KiB).
const READ_CHUNK: usize = 1 << 20;
const MEASURE_ATTEMPTS: usize = 3;
/// How often an open waiting for a measurement asks whether its opener has gone.
const GONE_POLL: Duration = Duration::from_millis(50);

impl Guard {
    /// Start a guard keeping its state (measurement log `measurements.bin`, Merkle trees
    /// `trees/`, seals `seals`) in `state_dir`. A torn log tail and partial trees left
    /// by a crash are removed here.
    pub fn new(config: Config, state_dir: impl AsRef<Path>) -> Result<Guard> {
        let dir = state_dir.as_ref();
        crate::store::private_dir(dir)?;
        // One guard per state directory: the log, trees and seals have one writer.
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io("create", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| match e {
                rustix::io::Errno::WOULDBLOCK => Error::Config(format!(
                    "{}: in use by another guard (a mount on this state directory, \
                         or one still shutting down)",
                    dir.display()
                )),
                e => Error::io("flock", &lock_path, e),
            },
        )?;
        let mut logcfg = config.log.clone();
        logcfg.ima_hash = config.hash_algo;
        let log = MeasurementLog::open(dir.join("measurements.bin"), logcfg)?;
        let (trees, _) = TreeStore::open(dir.join("trees"))?;
        let seals_path = dir.join("seals");
        let seals = load_seals(&seals_path)?;
        let shared = Arc::new(Shared {
            _lock: StateLock(lock),
            state_dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            queue: DedupQueue::new(config.queue_capacity),
            config,
            files: RwLock::new(HashMap::new()),
            mounts: RwLock::new(HashMap::new()),
            log,
            trees,
            seals: Mutex::new(seals),
            seals_path,
            filesystems: RwLock::default(),
            counters: Counters::default(),
            abandoned: AtomicBool::new(false),
            evm_locks: std::array::from_fn(|_| Mutex::new(())),
        });
        let workers = (0..shared.config.workers.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("vigil-guard-{i}"))
                    .spawn(move || s.worker())
                    .map_err(|e| Error::io("spawn", "worker thread", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Guard { shared, workers })
    }

    /// Identify the file open as `fd`.
    pub fn identify(&self, fd: BorrowedFd<'_>) -> Result<Identified> {
        identity::identify_fd(fd)
    }

    /// Fresh attributes for a file already identified: `fd` must be the file `known`
    /// names (opened from the same FUSE node, say). One `statx` instead of the three
    /// system calls of [`Guard::identify`]; falls back to a full identification when
    /// `fd` is on another mount.
    pub fn refresh(&self, known: &Identified, fd: BorrowedFd<'_>) -> Result<Identified> {
        match identity::refresh_fd(&known.id, fd, known.attrs.fs_magic)? {
            Some(i) => Ok(i),
            None => identity::identify_fd(fd),
        }
    }

    /// Identify `path` under `dirfd` (symlinks not followed).
    pub fn identify_at(&self, dirfd: BorrowedFd<'_>, path: &Path) -> Result<Identified> {
        identity::identify_at(dirfd, path)
    }

    /// Register a descriptor on a mount (for example the backing directory), so
    /// deferred jobs can reopen that mount's files by handle. Returns the mount id.
    /// This is the only descriptor the guard keeps, one per mount.
    pub fn register_mount(&self, fd: OwnedFd) -> Result<u64> {
        let st = sys::statx(fd.as_fd(), Path::new(""))
            .map_err(|e| Error::io("statx", "<mount fd>", e))?;
        let (_, fsid) =
            sys::fs_magic_and_id(fd.as_fd()).map_err(|e| Error::io("fstatfs", "<mount fd>", e))?;
        self.shared.rekey_seals(st.mnt_id, fsid)?;
        self.shared.sweep_gone(st.mnt_id, fsid, fd.as_fd())?;
        self.shared
            .mounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(st.mnt_id, Arc::new(fd));
        Ok(st.mnt_id)
    }

    /// Drop every entry of a mount that went away (and its registered descriptor).
    pub fn purge_mount(&self, mount: u64) {
        self.shared
            .files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| id.mount() != mount);
        self.shared
            .mounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&mount);
        self.shared
            .filesystems
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&mount);
    }

    /// Drop what is kept for one file that is gone (deleted, or its handle went
    /// stale): its state, its trees and its seal. Handles still open keep their own
    /// reference to the state, so releasing them later counts as it should.
    pub fn forget(&self, id: &FileId) {
        self.shared.forget(id);
    }

    /// Number of files with state.
    pub fn tracked_files(&self) -> usize {
        self.shared
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// An open: measure and/or appraise as the policy says, count writers and readers,
    /// and emit ToMToU / open_writers violations as IMA does. `fd` is the opened file
    /// (if opened write-only it is reopened read-only through /proc for measuring).
    /// Errors: [`Error::Sealed`] for a write open of a sealed file, [`Error::Denied`]
    /// when appraisal fails in enforce mode or a signed file is opened for write.
    pub fn on_open(
        &self,
        file: &Identified,
        fd: BorrowedFd<'_>,
        req: &OpenRequest,
    ) -> Result<OpenDecision> {
        let s = &self.shared;
        let st = s.state_for(&file.id);
        let write = req.is_write();
        let actions = s.config.policy.actions(&Access {
            hook: req.hook,
            mask: req.mask,
            uid: req.uid,
            euid: req.euid,
            gid: req.gid,
            egid: req.egid,
            fowner: file.attrs.uid,
            fgroup: file.attrs.gid,
            fsmagic: file.attrs.fs_magic,
            fs: &s.filesystem(&file.id, fd),
        });
        if write {
            st.acquire(0)?;
            st.last_writer.store(
                u64::from(req.uid) << 32 | u64::from(req.gid),
                Ordering::Relaxed,
            );
        } else {
            st.readers.fetch_add(1, Ordering::AcqRel);
        }
        if req.created {
            st.set(PASSED | WRITTEN, true);
        }
        let handle = OpenHandle {
            id: file.id.clone(),
            state: Arc::clone(&st),
            write,
            // Only a writer's release queues a job.
            released: false,
        };
        // ima_rdwr_violation_check
        if write {
            if st.readers.load(Ordering::Acquire) > 0
                && st.may_emit_tomtou.swap(false, Ordering::AcqRel)
            {
                s.violation(req.path.get(), fd, &file.attrs)?;
            }
        } else if actions.measure.is_some()
            && st.writers() > 0
            && !st.emitted_open_writers.swap(true, Ordering::AcqRel)
        {
            s.violation(req.path.get(), fd, &file.attrs)?;
        }
        let appraise = actions
            .appraise
            .as_ref()
            .filter(|_| s.config.appraise_mode != AppraiseMode::Off);
        // mmap_violation_check: an executable mapping of an appraised file that is
        // mapped writable somewhere is refused (audit cause `mmapped_writers`).
        if req.hook == Hook::MmapCheck
            && appraise.is_some()
            && s.config.appraise_mode == AppraiseMode::Enforce
            && st.maps() > 0
        {
            return Err(Error::TextBusy);
        }
        if actions.measure.is_none() && appraise.is_none() && !actions.hash {
            return Ok(OpenDecision {
                handle,
                measurement: None,
                verdict: None,
            });
        }
        // A file written through the mount since it passed has its hash value brought
        // up to date before it is appraised, so that it passes while being written and
        // right after (the last writer's RELEASE only queues the rewrite).
        let purpose = Purpose::Open { gone: req.gone };
        s.catch_change_behind(&st, &file.attrs, fd, purpose)?;
        let may_trust = appraise.is_some() && !req.created;
        let mut trusted = may_trust && st.trusts_changes();
        let fix = appraise.is_some() && s.config.appraise_mode == AppraiseMode::Fix;
        let mut m = s.measurement(
            &file.id,
            &st,
            Some(&file.attrs),
            fd,
            trusted || fix,
            purpose,
        )?;
        if may_trust && !trusted && st.trusts_changes() {
            // A write through the mount came in while the file was measured, which
            // then may hold it: the file is trusted, as it would be a moment later.
            trusted = true;
            m = s.measurement(&file.id, &st, None, fd, true, purpose)?;
        }
        if trusted || fix {
            st.value_brought_up_to_date(&m);
        }
        if let Some(ma) = &actions.measure {
            if !write && req.mask & MAY_READ != 0 {
                st.may_emit_tomtou.store(true, Ordering::Release);
            }
            let bit = 1u64 << ma.pcr.min(63);
            if m.logged.load(Ordering::Acquire) & bit == 0 {
                s.log_measurement(
                    &m,
                    fd,
                    ma,
                    ma.template.unwrap_or(s.config.template),
                    req.path.get(),
                )?;
                m.logged.fetch_or(bit, Ordering::AcqRel);
            }
        }
        let mut verdict = None;
        if let Some(a) = appraise {
            let v = s.verdict(&file.id, &m, a, req.created, trusted, fd)?;
            st.set(PASSED, v.passed());
            if s.config.appraise_mode == AppraiseMode::Enforce {
                if let Verdict::Fail(cause) = &v {
                    return Err(Error::Denied(cause.clone()));
                }
                if write && v == Verdict::PassSignature {
                    return Err(Error::Denied("signed file is immutable".into()));
                }
            }
            verdict = Some(v);
        }
        Ok(OpenDecision {
            handle,
            measurement: Some(m),
            verdict,
        })
    }

    /// `file` was just created: like the kernel's `IMA_NEW_FILE`, it passes appraisal
    /// for every opener until its last writer closes. Its creating open (`created` in
    /// [`OpenRequest`]) says so too; this, called as soon as the file exists, also
    /// covers another opener that comes first.
    pub fn on_create(&self, file: &Identified) {
        self.shared.state_for(&file.id).set(PASSED | WRITTEN, true);
    }

    /// The owner, group or mode of `fd`'s file is about to change through the
    /// frontend (`mode`, `uid`, `gid`: what is asked for). As the kernel's
    /// `evm_inode_setattr`: [`Error::MetadataProtected`] (EPERM) where EVM vouches for
    /// the file with a portable signature (unless nothing changes) or its EVM value
    /// is invalid. Without EVM keys, always `Ok`.
    pub fn protect_attrs(
        &self,
        fd: BorrowedFd<'_>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        self.protect_metadata(fd, |a| {
            mode.is_some_and(|m| m & 0o7777 != a.mode & 0o7777)
                || uid.is_some_and(|u| u != a.uid)
                || gid.is_some_and(|g| g != a.gid)
        })
    }

    /// The xattr `name` of `fd`'s file is about to be set to `value` (`None`:
    /// removed) through the frontend. As the kernel's `evm_inode_setxattr`: for the
    /// xattrs EVM covers, the rules of [`Guard::protect_attrs`]; the EVM value itself
    /// may only be set to a signature (types 0x03, 0x05), never an HMAC. `Ok(true)`:
    /// call [`Guard::metadata_changed`] after the change (not after a change of the
    /// EVM value itself, nor of an xattr EVM does not cover).
    pub fn protect_xattr(
        &self,
        fd: BorrowedFd<'_>,
        name: &str,
        value: Option<&[u8]>,
    ) -> Result<bool> {
        if !self.covers_xattr(name) {
            return Ok(false);
        }
        let evm_value = self.shared.evm_names().is_some_and(|n| n.evm == name);
        if let (true, Some(v)) = (evm_value, value) {
            if !matches!(v.first(), Some(0x03 | 0x05)) {
                return Err(Error::MetadataProtected(format!(
                    "{name}: only a signature may be set"
                )));
            }
        }
        let current = sys::get_xattr(fd, name).map_err(|e| Error::io("getxattr", name, e))?;
        self.protect_metadata(fd, |_| current.as_deref() != value)?;
        Ok(!evm_value)
    }

    /// Whether EVM takes part in appraisal (it has keys).
    pub fn evm_in_use(&self) -> bool {
        self.shared.config.evm.loaded()
    }

    /// Whether EVM takes part and covers the xattr `name` (or is kept in it).
    pub fn covers_xattr(&self, name: &str) -> bool {
        let Some(names) = self.shared.evm_names() else {
            return false;
        };
        self.shared.config.evm.loaded()
            && (name == names.ima
                || name == names.evm
                || (name != "security.ima" && vigil_ima::evm::EVM_XATTRS.contains(&name)))
    }

    fn protect_metadata(
        &self,
        fd: BorrowedFd<'_>,
        changes: impl FnOnce(&FileAttrs) -> bool,
    ) -> Result<()> {
        let keys = &self.shared.config.evm;
        self.with_evm_file(fd, |f, value| {
            let status = evm::verify(keys, f, value);
            evm::may_change_metadata(keys, &status, changes(f.attrs))
                .map_err(Error::MetadataProtected)
        })
    }

    /// After a change of metadata EVM covers (owner, group, mode, a covered xattr):
    /// the HMAC follows it, as the kernel's `evm_inode_post_setattr` and
    /// `evm_inode_post_setxattr` keep it (only with an HMAC key).
    pub fn metadata_changed(&self, fd: BorrowedFd<'_>) -> Result<()> {
        let keys = &self.shared.config.evm;
        if keys.hmac_key.is_none() {
            return Ok(());
        }
        self.with_evm_file(fd, |f, value| {
            evm::update_hmac(keys, f, value)
                .map_err(|e| Error::io("update EVM HMAC", f.names.evm, std::io::Error::other(e)))
        })
    }

    /// `job` on `fd`'s file as EVM sees it, with its IMA value; nothing where EVM
    /// does not take part.
    fn with_evm_file(
        &self,
        fd: BorrowedFd<'_>,
        job: impl FnOnce(&EvmFile<'_>, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        let s = &self.shared;
        if !s.config.evm.loaded() {
            return Ok(());
        }
        let _evm = s.evm_lock(&self.identify(fd)?.id);
        // Looked at under the lock: a hash value being written with its HMAC is seen
        // before or after, never between, and of two metadata changes the HMAC
        // written last covers the later.
        let file = self.identify(fd)?;
        match s.evm_file(&file.id, fd, &file.attrs) {
            Some(f) => job(&f, s.read_value(&file.id, fd)?.as_deref()),
            None => Ok(()),
        }
    }

    /// The content of `id` (open as `fd`, `O_PATH` will do, if the caller has it) is
    /// about to change (write, truncate, fallocate, copy_file_range into it,
    /// size-changing setattr, O_TRUNC): keep the returned guard until the change is
    /// done. Never blocks; [`Error::Sealed`] if sealed.
    pub fn modify(&self, id: &FileId, fd: Option<BorrowedFd<'_>>) -> Result<Modification> {
        let st = self.shared.state_for(id);
        if let Some(fd) = fd {
            self.shared.catch_change_behind_now(&st, fd);
        }
        // Counted as a writer while it lasts (as truncate(2) takes write access), so
        // a seal cannot slip in between this check and the change.
        st.acquire(0)?;
        st.set(WRITTEN, true);
        let begin = st.gen.begin_modify();
        // Counted after the change shows as in progress (see catch_change_behind_own).
        st.own_changes_begun.fetch_add(1, Ordering::SeqCst);
        Ok(Modification {
            state: st,
            begin,
            done: false,
        })
    }

    /// A metadata change (chmod/chown, setxattr/removexattr, a link of the file made,
    /// moved or removed) is about to be made: keep the returned guard until it is done,
    /// EVM's HMAC update included. Until then the new ctime is not taken for a change
    /// behind the guard (which would end the trust in writes made through it); when
    /// the guard is dropped, the measurement is invalidated (the next open measures
    /// again). Never blocks, never hashes.
    pub fn change_metadata(&self, id: &FileId, fd: Option<BorrowedFd<'_>>) -> MetadataChange {
        let state = self.shared.existing(id);
        if let Some(st) = &state {
            if let Some(fd) = fd {
                self.shared.catch_change_behind_now(st, fd);
            }
            st.metadata_changes.fetch_add(1, Ordering::SeqCst);
            st.own_changes_begun.fetch_add(1, Ordering::SeqCst);
        }
        let file = fd
            .filter(|_| state.is_some())
            .and_then(|fd| fd.try_clone_to_owned().ok());
        MetadataChange {
            shared: Arc::clone(&self.shared),
            id: id.clone(),
            state,
            file,
        }
    }

    /// Count a writable shared mapping of `id` ([`Error::Sealed`] if sealed).
    pub fn map_writable(&self, id: &FileId) -> Result<MapToken> {
        let st = self.shared.state_for(id);
        st.acquire(MAPS_SHIFT)?;
        Ok(MapToken { state: st })
    }

    /// A file handle is released (FUSE RELEASE). The last writer's release only queues a
    /// re-measurement job (never blocks, holds no lock while queueing); `find_path`
    /// names the file, called only if that job fails.
    pub fn on_release(
        &self,
        mut handle: OpenHandle,
        find_path: impl FnOnce() -> OsString + Send + 'static,
    ) -> ReleaseOutcome {
        if !handle.release_counts() {
            return ReleaseOutcome::Counted;
        }
        let s = &self.shared;
        match s.push_job(&handle.id, &handle.state, Some(Box::new(find_path))) {
            Push::Queued => ReleaseOutcome::Queued,
            Push::Merged => ReleaseOutcome::Merged,
            Push::Full | Push::Closed => {
                s.counters.jobs_refused.fetch_add(1, Ordering::Relaxed);
                ReleaseOutcome::QueueFull
            }
        }
    }

    /// Block until the deferred queue is empty and no job runs.
    pub fn wait_idle(&self) {
        self.shared.queue.wait_idle();
    }

    /// Re-measure, and bring up to date the hash values of, the files written through
    /// the mount whose re-measurement a full queue refused ([`ReleaseOutcome::QueueFull`]:
    /// they would otherwise wait for their next open, which after a restart no longer
    /// trusts those writes), then wait until every job has run. For shutdown.
    pub fn finish_jobs(&self) {
        let s = &self.shared;
        let waiting: Vec<(FileId, Arc<FileState>)> = s
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, st)| st.trusts_changes() && st.writers() == 0)
            .map(|(id, st)| (id.clone(), Arc::clone(st)))
            .collect();
        for (id, st) in waiting {
            while s.push_job(&id, &st, None) == Push::Full {
                s.queue.wait_idle();
            }
        }
        s.queue.wait_idle();
    }

    /// Give up every measurement in progress and every one to come
    /// ([`Error::Interrupted`]), deferred re-measurements included: for a daemon that
    /// has to stop now. Files whose re-measurement is given up stay dirty (measured
    /// again at their next open), and their hash values are not brought up to date.
    pub fn abandon_measurements(&self) {
        self.shared.abandoned.store(true, Ordering::Relaxed);
    }

    /// Seal a file: refused with [`Error::Busy`] while writers or writable mappings are
    /// counted; otherwise later writes, truncation and size changes get
    /// [`Error::Sealed`] until [`Guard::unseal`]. Records the digests of the content
    /// sealed (persisted in the state directory). `gone` is as in [`OpenRequest`]: the
    /// sealer may go while the file is measured.
    pub fn seal(
        &self,
        file: &Identified,
        fd: BorrowedFd<'_>,
        gone: Option<&(dyn Fn() -> bool + Sync)>,
    ) -> Result<SealRecord> {
        let s = &self.shared;
        let st = s.state_for(&file.id);
        st.acct
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a & BUSY == 0).then_some(a | SEALED)
            })
            .map_err(|a| Error::Busy {
                writers: (a & COUNT_MASK) as u32,
                writable_maps: ((a >> MAPS_SHIFT) & COUNT_MASK) as u32,
            })?;
        let purpose = Purpose::Open { gone };
        let m = match s.measurement(&file.id, &st, Some(&file.attrs), fd, false, purpose) {
            Ok(m) => m,
            Err(e) => {
                st.acct.fetch_and(!SEALED, Ordering::AcqRel);
                return Err(e);
            }
        };
        let rec = SealRecord {
            algo: m.algo,
            digest: m.digest.clone(),
            verity: m.verity.as_ref().map(|(t, _)| (t.algo, t.digest.clone())),
        };
        let mut seals = s.seals.lock().unwrap_or_else(|e| e.into_inner());
        seals.insert(file.id.to_hex(), rec.clone());
        save_seals(&s.seals_path, &seals)?;
        Ok(rec)
    }

    /// Remove a seal; only root and the configured seal admins may.
    pub fn unseal(&self, id: &FileId, uid: u32) -> Result<()> {
        let s = &self.shared;
        if uid != 0 && !s.config.seal_admins.contains(&uid) {
            return Err(Error::NotAuthorised { uid });
        }
        let mut seals = s.seals.lock().unwrap_or_else(|e| e.into_inner());
        seals.remove(&id.to_hex());
        save_seals(&s.seals_path, &seals)?;
        if let Some(st) = s.existing(id) {
            st.acct.fetch_and(!SEALED, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Whether any file is sealed (a cheap test before identifying a file to ask
    /// [`Guard::seal_of`]).
    pub fn any_seals(&self) -> bool {
        !self
            .shared
            .seals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The seal of `id`, if sealed.
    pub fn seal_of(&self, id: &FileId) -> Option<SealRecord> {
        let seals = self.shared.seals.lock().unwrap_or_else(|e| e.into_inner());
        seals.get(&id.to_hex()).cloned()
    }

    /// Verified content in a memfd sealed with WRITE, SHRINK, GROW and SEAL (created
    /// `MFD_EXEC` when `exec`, else `MFD_NOEXEC_SEAL`). The copy is hashed as it is made
    /// and must equal `decided` — the measurement the caller's open decisions were made
    /// on, so that what is handed out is exactly what was appraised — or, without one,
    /// the file's current measurement; and the file's seal, if sealed. Else
    /// [`Error::Changed`].
    pub fn sealed_memfd(
        &self,
        file: &Identified,
        fd: BorrowedFd<'_>,
        exec: bool,
        decided: Option<&Arc<Measurement>>,
    ) -> Result<OwnedFd> {
        let s = &self.shared;
        let m = match decided {
            Some(m) => Arc::clone(m),
            None => {
                let st = s.state_for(&file.id);
                let purpose = Purpose::Open { gone: None };
                s.measurement(&file.id, &st, Some(&file.attrs), fd, false, purpose)?
            }
        };
        if let Some(seal) = self.seal_of(&file.id) {
            if seal.algo != m.algo || seal.digest != m.digest {
                return Err(Error::Changed);
            }
        }
        let rfd = readable(fd)?;
        let mem = sys::memfd("vigil-verified", exec)
            .map_err(|e| Error::io("memfd_create", "vigil-verified", e))?;
        let mut h = vigil_ima::Hasher::new(m.algo)?;
        let mut buf = vec![0u8; READ_CHUNK];
        let mut off = 0u64;
        // The measured bytes, no more (a file grown since would be copied for good).
        loop {
            let want = m.attrs.size.saturating_sub(off).min(buf.len() as u64) as usize;
            let n = rustix::io::pread(rfd.as_fd(), &mut buf[..want], off)
                .map_err(|e| Error::io("pread", &*file_label(file), e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            let mut w = 0;
            while w < n {
                w += rustix::io::write(&mem, &buf[w..n])
                    .map_err(|e| Error::io("write", "memfd", e))?;
            }
            off += n as u64;
        }
        if h.finalize() != m.digest {
            return Err(Error::Changed);
        }
        let want = sys::SealFlags::WRITE
            | sys::SealFlags::SHRINK
            | sys::SealFlags::GROW
            | sys::SealFlags::SEAL;
        sys::add_seals(mem.as_fd(), want).map_err(|e| Error::io("F_ADD_SEALS", "memfd", e))?;
        let got = sys::get_seals(&mem).map_err(|e| Error::io("F_GET_SEALS", "memfd", e))?;
        if !got.contains(want) {
            return Err(Error::io(
                "F_GET_SEALS",
                "memfd",
                std::io::Error::other("seals missing"),
            ));
        }
        Ok(mem)
    }

    /// Whether the file `id` (open as `fd`) was changed behind the guard since the
    /// guard's own latest change, while no measurement stands for its content (it is
    /// being written through the guard, or was and is not measured again yet). Such a
    /// change ends the trust in its writes, as at an open.
    pub fn changed_behind(&self, id: &FileId, fd: BorrowedFd<'_>) -> bool {
        let s = &self.shared;
        s.existing(id)
            .filter(|st| st.gen.lookup().is_none())
            .is_some_and(|st| s.catch_change_behind_now(&st, fd))
    }

    /// Writers, writable mappings, readers, seal and cache state of `id`.
    pub fn status(&self, id: &FileId) -> Option<FileStatus> {
        let st = self.shared.existing(id)?;
        Some(FileStatus {
            writers: st.writers(),
            writable_maps: st.maps(),
            readers: st.readers.load(Ordering::Acquire),
            sealed: st.sealed(),
            generation: st.gen.generation(),
            dirty: st.gen.is_dirty(),
        })
    }

    /// The published measurement of `id` if it is clean (no I/O).
    pub fn cached(&self, id: &FileId) -> Option<Arc<Measurement>> {
        self.shared.existing(id)?.gen.lookup()
    }

    /// The policy in force, as the kernel's securityfs `policy` file would show it.
    pub fn policy_text(&self) -> &str {
        self.shared.config.policy.text()
    }

    /// The measurement log.
    pub fn log(&self) -> &MeasurementLog {
        &self.shared.log
    }

    /// The software PCR banks.
    pub fn pcrs(&self) -> vigil_ima::list::PcrBanks {
        self.shared.log.pcrs()
    }

    /// The Merkle tree store.
    pub fn trees(&self) -> &TreeStore {
        &self.shared.trees
    }

    /// Record a buffer measurement (`ima-buf`), e.g. a key or a command line.
    pub fn measure_buffer(&self, name: &str, buf: &[u8], pcr: u32) -> Result<()> {
        let s = &self.shared;
        let digest = s.config.hash_algo.digest(buf)?;
        let rec = template::record(
            Template::ImaBuf,
            &Event {
                algo: s.config.hash_algo,
                digest: Some(&digest),
                digest_type: DigestType::Ima,
                name: name.as_bytes(),
                sig: &[],
                buf,
                inode: None,
            },
            pcr,
        )?;
        s.log.append(&rec)?;
        Ok(())
    }

    /// The configuration the guard was started with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Deferred jobs (re-measurements after a last writer) waiting for a worker.
    pub fn pending_jobs(&self) -> usize {
        self.shared.queue.len()
    }

    /// The state directory (log, trees, seals).
    pub fn state_dir(&self) -> &Path {
        &self.shared.state_dir
    }

    /// Counters.
    pub fn stats(&self) -> GuardStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GuardStats {
            measurements: l(&c.measurements),
            cache_hits: l(&c.cache_hits),
            publish_refused: l(&c.publish_refused),
            violations: l(&c.violations),
            jobs_queued: l(&c.jobs_queued),
            jobs_merged: l(&c.jobs_merged),
            jobs_refused: l(&c.jobs_refused),
            jobs_done: l(&c.jobs_done),
            jobs_failed: l(&c.jobs_failed),
        }
    }

    /// Test hook: run a measurement of `fd` for `id` now, with the outer lock, as an open
    /// would on a cache miss; returns whether the result was published.
    #[doc(hidden)]
    pub fn measure_now(&self, id: &FileId, fd: BorrowedFd<'_>) -> Result<(Arc<Measurement>, bool)> {
        let s = &self.shared;
        let st = s.state_for(id);
        let _outer = st.gen.measure_lock();
        let reading = Reading {
            limit: read_limit(fd)?,
            abandon_on_change: true,
        };
        s.measure_once(id, &st, fd, reading, false, Purpose::Open { gone: None })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.queue.close();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn file_label(file: &Identified) -> String {
    format!("{:?}", file.id)
}

/// `fd` if it is readable, else a read-only reopen of it through /proc/self/fd.
fn readable(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    let fl = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::io("fcntl", "<fd>", e))?;
    if fl & rustix::fs::OFlags::RWMODE != rustix::fs::OFlags::WRONLY {
        return fd
            .try_clone_to_owned()
            .map_err(|e| Error::io("dup", "<fd>", e));
    }
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let f = File::open(&p).map_err(|e| Error::io("open", p, e))?;
    Ok(f.into())
}

impl Shared {
    /// The file system of `id` (open as `fd`), looked up once per mount: its UUID
    /// (`FS_IOC_GETFSUUID`) and its type and subtype (mountinfo). What cannot be learnt
    /// stays empty, so `fsuuid=`/`fsname=` rules do not match, as IMA's do not on a
    /// file system without a UUID.
    fn filesystem(&self, id: &FileId, fd: BorrowedFd<'_>) -> Arc<FsInfo> {
        let key = id.mount();
        if let Some(fs) = self
            .filesystems
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return fs.clone();
        }
        let mut fs = FsInfo {
            uuid: sys::fs_uuid(fd).unwrap_or_default(),
            ..FsInfo::default()
        };
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Ok(mount) = sys::mount_id(fd) {
            if let Some(m) = vigil_ima::mountinfo::parse(&text).find(|m| m.mount_id == mount) {
                fs.name = m.fs_name().to_owned();
                fs.subtype = m.fs_subtype().map(str::to_owned);
            }
        }
        let fs = Arc::new(fs);
        self.filesystems
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, fs.clone());
        fs
    }

    fn existing(&self, id: &FileId) -> Option<Arc<FileState>> {
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The EVM lock of `id`: held while the xattrs EVM covers are checked or rewritten
    /// (an IMA value and its HMAC are written as one, as the kernel does under the
    /// inode lock). Striped: a lock may be shared by several files, so no other is
    /// ever taken under it.
    fn evm_lock(&self, id: &FileId) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        self.evm_locks[h.finish() as usize % EVM_LOCKS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Queue the re-measurement of `id` (counted), for its last writer.
    fn push_job(&self, id: &FileId, st: &FileState, find_path: Option<FindPath>) -> Push {
        let w = st.last_writer.load(Ordering::Relaxed);
        let info = JobInfo {
            uid: (w >> 32) as u32,
            gid: w as u32,
            find_path,
        };
        let pushed = self.queue.push(id.clone(), st.gen.generation(), info);
        match pushed {
            Push::Queued => &self.counters.jobs_queued,
            Push::Merged => &self.counters.jobs_merged,
            Push::Full | Push::Closed => return pushed,
        }
        .fetch_add(1, Ordering::Relaxed);
        pushed
    }

    fn state_for(&self, id: &FileId) -> Arc<FileState> {
        if let Some(st) = self.existing(id) {
            return st;
        }
        let sealed = self
            .seals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id.to_hex());
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            files
                .entry(id.clone())
                .or_insert_with(|| Arc::new(FileState::new(sealed))),
        )
    }

    /// Seal records an earlier vigil kept by the mount id of this run's mount `mount`
    /// are carried over to the key by file system id, which outlives the mount.
    fn rekey_seals(&self, mount: u64, fsid: u64) -> Result<()> {
        let mut seals = self.seals.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<(String, String)> = seals
            .keys()
            .filter_map(|k| Some((k.clone(), FileId::rekey_mount_keyed(k, mount, fsid)?)))
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        for (from, to) in old {
            if let Some(rec) = seals.remove(&from) {
                seals.insert(to, rec);
            }
        }
        save_seals(&self.seals_path, &seals)
    }

    /// Drop the trees and seal records of files that are gone from the file system of
    /// `mount` (id `fsid`): deleted while no mount showed them, or after the kernel had
    /// forgotten them. One `open_by_handle_at` per file with a tree or seal. Trees an
    /// earlier vigil named by this mount's id are dropped too (they are stored again,
    /// under the file system's id, at the next measurement).
    fn sweep_gone(&self, mount: u64, fsid: u64, mount_fd: BorrowedFd<'_>) -> Result<()> {
        let gone = |key: &str| match FileId::handle_in_key(key, fsid) {
            Some(h) => matches!(sys::handle_names_a_file(mount_fd, &h), Ok(false)),
            None => FileId::rekey_mount_keyed(key, mount, fsid).is_some(),
        };
        for key in self.trees.keys() {
            if gone(&key) {
                self.trees.remove_for(&key, None)?;
            }
        }
        let mut seals = self.seals.lock().unwrap_or_else(|e| e.into_inner());
        let before = seals.len();
        seals.retain(|key, _| !gone(key));
        if seals.len() != before {
            save_seals(&self.seals_path, &seals)?;
        }
        Ok(())
    }

    /// Whether `st` is the state kept for `id` (not forgotten meanwhile).
    fn tracks(&self, id: &FileId, st: &FileState) -> bool {
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some_and(|kept| std::ptr::eq(Arc::as_ptr(kept), st))
    }

    fn forget(&self, id: &FileId) {
        // Dropped outside the lock: dropping a measurement may delete its tree.
        let state = self
            .files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        drop(state);
        let key = id.to_hex();
        // Best effort: what cannot be removed now only takes space (a later file with
        // the same handle gets a state of its own, without that seal).
        if self.config.tree_builder.is_some() {
            let _ = self.trees.remove_for(&key, None);
        }
        let mut seals = self.seals.lock().unwrap_or_else(|e| e.into_inner());
        if seals.remove(&key).is_some() {
            let _ = save_seals(&self.seals_path, &seals);
        }
    }

    fn violation(&self, path: &OsStr, fd: BorrowedFd<'_>, attrs: &FileAttrs) -> Result<()> {
        self.counters.violations.fetch_add(1, Ordering::Relaxed);
        let t = self.config.template;
        let inode = (t == Template::EvmSig).then(|| self.inode_fields(fd, attrs));
        let rec = template::record(
            t,
            &Event {
                algo: self.config.hash_algo,
                digest: None,
                digest_type: DigestType::Ima,
                name: path.as_bytes(),
                sig: &[],
                buf: &[],
                inode: inode.as_ref(),
            },
            IMA_PCR,
        )?;
        self.log.append(&rec)?;
        Ok(())
    }

    fn log_measurement(
        &self,
        m: &Measurement,
        fd: BorrowedFd<'_>,
        ma: &MeasureAction,
        t: Template,
        path: &OsStr,
    ) -> Result<()> {
        // `digest_type=verity` logs the fs-verity digest (labelled as such only by the
        // v2 templates); without a tree the content hash is logged, labelled `ima`.
        let (pcr, verity) = (ma.pcr, ma.verity);
        let (algo, digest, dt) = match (&m.verity, verity) {
            (Some((v, _)), true) => (v.algo, &v.digest[..], DigestType::Verity),
            _ => (m.algo, &m.digest[..], DigestType::Ima),
        };
        // ima_eventsig_init: an IMA signature, else an EVM portable signature.
        let evm_sig;
        let sig = match &m.ima_value {
            Some(v) if matches!(v.first(), Some(0x03 | 0x06)) => &v[..],
            _ if t.has_sig() => {
                evm_sig = self.portable_evm_sig(fd);
                &evm_sig[..]
            }
            _ => &[][..],
        };
        let inode = (t == Template::EvmSig).then(|| self.inode_fields(fd, &m.attrs));
        let rec = template::record(
            t,
            &Event {
                algo,
                digest: Some(digest),
                digest_type: dt,
                name: path.as_bytes(),
                sig,
                buf: &[],
                inode: inode.as_ref(),
            },
            pcr,
        )?;
        self.log.append(&rec)?;
        Ok(())
    }

    /// The current measurement: the published one if it is valid for `attrs`, else a
    /// fresh one under the outer lock (published if nothing changed meanwhile). With
    /// `refresh_value`, the file's hash value is brought up to date with it (see
    /// [`FileState::value_brought_up_to_date`]).
    fn measurement(
        &self,
        id: &FileId,
        st: &FileState,
        attrs: Option<&FileAttrs>,
        fd: BorrowedFd<'_>,
        refresh_value: bool,
        purpose: Purpose<'_>,
    ) -> Result<Arc<Measurement>> {
        let valid = |m: &Measurement| attrs.is_none_or(|a| m.attrs.same_version(a));
        if let Some(m) = st.gen.lookup() {
            if valid(&m) && !(refresh_value && needs_value_refresh(&m)) {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(m);
            }
            if !valid(&m) {
                // Changed behind our back (a write that did not pass through us).
                st.gen.invalidate();
            }
        }
        let _outer = self.outer_lock(st, purpose)?;
        if let Some(m) = st.gen.lookup() {
            if valid(&m) && !(refresh_value && needs_value_refresh(&m)) {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(m);
            }
        }
        // Attempts overtaken by a change are abandoned and retried; an open's last
        // attempt reads to the end whatever happens, so that it gets an answer. If the
        // file kept changing, that answer is the (unpublished) measurement of the bytes
        // actually read, as IMA measures a file that is being written; the file stays
        // dirty and the next open measures it again. No attempt reads much past the
        // size the file had before the first: one that keeps growing (a truncate to a
        // larger size grows it at no cost) would otherwise keep every attempt reading.
        let limit = read_limit(fd)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= MEASURE_ATTEMPTS;
            let to_the_end = last && matches!(purpose, Purpose::Open { .. });
            let reading = Reading {
                limit,
                abandon_on_change: !to_the_end,
            };
            match self.measure_once(id, st, fd, reading, refresh_value, purpose) {
                Ok((m, published)) if published || to_the_end => return Ok(m),
                Ok(_) | Err(Error::Changed) if !last => {}
                Ok(_) => return Err(Error::Changed),
                Err(e) => return Err(e),
            }
        }
    }

    /// A file changed behind our back since its current measurement (a write that did
    /// not pass through us), or since the guard's own latest change while no
    /// measurement stands, is dirty, and no longer counts as written through us: that
    /// change is not to be taken into its hash value. `attrs` may be older than the
    /// measurement, so the file is looked at again before it is judged.
    fn catch_change_behind(
        &self,
        st: &FileState,
        attrs: &FileAttrs,
        fd: BorrowedFd<'_>,
        purpose: Purpose<'_>,
    ) -> Result<()> {
        if st.gen.lookup().is_some_and(|m| m.attrs.same_version(attrs)) {
            return Ok(());
        }
        // The guard's own hash-value writes change the ctime too. They are made, and
        // the measurement they belong to published (and their version noted), under
        // the outer lock: judge only once no measurement is in progress.
        let _outer = self.outer_lock(st, purpose)?;
        self.catch_change_behind_locked(st, fd).map(drop)
    }

    /// [`Self::catch_change_behind`] with the outer lock held; returns whether it
    /// found such a change.
    fn catch_change_behind_locked(&self, st: &FileState, fd: BorrowedFd<'_>) -> Result<bool> {
        let Some(m) = st.gen.lookup() else {
            return self.catch_change_behind_own(st, fd);
        };
        if m.attrs.same_version(&identity::identify_fd(fd)?.attrs) {
            return Ok(false);
        }
        // Looked at after the file: a metadata change through the guard that made the
        // difference is either still in progress or has invalidated `m` (see
        // `MetadataChange::drop`).
        let through_guard = st.metadata_changes.load(Ordering::SeqCst) > 0
            || !st.gen.lookup().is_some_and(|now| Arc::ptr_eq(&now, &m));
        if !through_guard {
            st.changed_behind();
        }
        Ok(!through_guard)
    }

    /// [`Self::catch_change_behind`] without waiting: where a measurement is being
    /// made the file is not judged (as an open would wait for it to be). Before a
    /// change of the guard's own (the version it leaves would take a change behind
    /// in, and the re-measurement then write it into the hash value), and for reads.
    fn catch_change_behind_now(&self, st: &FileState, fd: BorrowedFd<'_>) -> bool {
        let unchanged = || {
            st.gen
                .lookup()
                .is_some_and(|m| identity::version_fd(fd).is_ok_and(|v| m.attrs.same_version(&v)))
        };
        if unchanged() {
            return false;
        }
        st.gen
            .try_measure_lock()
            .is_some_and(|_outer| self.catch_change_behind_locked(st, fd).unwrap_or(false))
    }

    /// [`Self::catch_change_behind_locked`] while no measurement stands for the
    /// content (it was changed through the guard since): judged against the version the
    /// guard's own latest change left, if it knows one, and only while no change of its
    /// own is in progress. Returns whether it found such a change.
    fn catch_change_behind_own(&self, st: &FileState, fd: BorrowedFd<'_>) -> Result<bool> {
        let begun = || st.own_changes_begun.load(Ordering::SeqCst);
        let ours_in_progress =
            || st.gen.in_flight() || st.metadata_changes.load(Ordering::SeqCst) > 0;
        let before = begun();
        if ours_in_progress() {
            return Ok(false);
        }
        // Every change of ours begun so far has ended, and noted its version.
        let Some(own) = st.own_version() else {
            return Ok(false);
        };
        let now = identity::version_fd(fd)?;
        // Looked at again after the file: a change of ours that began meanwhile (and
        // may have ended, noting a later version) explains the difference.
        if own.same_version(&now) || begun() != before {
            return Ok(false);
        }
        st.changed_behind();
        Ok(true)
    }

    fn give_up<'a>(&'a self, purpose: Purpose<'a>) -> GiveUp<'a> {
        GiveUp {
            abandoned: &self.abandoned,
            gone: match purpose {
                Purpose::Open { gone } => gone,
                Purpose::Job => None,
            },
            next_ask: Cell::new(Instant::now()),
        }
    }

    /// The outer lock of `st`. An open whose opener may go waits for it in short naps,
    /// asking between them; anyone else simply blocks (the holder gives up when the
    /// guard abandons its measurements).
    fn outer_lock<'s>(
        &self,
        st: &'s FileState,
        purpose: Purpose<'_>,
    ) -> Result<MutexGuard<'s, ()>> {
        let give_up = self.give_up(purpose);
        // An open queued behind others may find its opener gone before it starts.
        give_up.check()?;
        if give_up.gone.is_none() {
            let lock = st.gen.measure_lock();
            give_up.check()?;
            return Ok(lock);
        }
        let mut nap = Duration::from_micros(50);
        loop {
            if let Some(lock) = st.gen.try_measure_lock() {
                return Ok(lock);
            }
            give_up.check()?;
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// One measurement, read as `reading` says; the caller holds the outer lock.
    /// Returns the measurement and whether it was published (only if the file did not
    /// change while it was read and the generation it started from is still current).
    fn measure_once(
        &self,
        id: &FileId,
        st: &FileState,
        fd: BorrowedFd<'_>,
        reading: Reading,
        refresh_value: bool,
        purpose: Purpose<'_>,
    ) -> Result<(Arc<Measurement>, bool)> {
        let Reading {
            limit,
            abandon_on_change,
        } = reading;
        self.counters.measurements.fetch_add(1, Ordering::Relaxed);
        let t = st.gen.ticket();
        let rfd = readable(fd)?;
        let attrs = identity::identify_fd(rfd.as_fd())?.attrs;
        let algo = self.config.hash_algo;
        let keep = || st.gen.still_current(t);
        let unlinked = || {
            matches!(purpose, Purpose::Job)
                && rustix::fs::fstat(rfd.as_fd()).is_ok_and(|s| s.st_nlink == 0)
        };
        let give_up = self.give_up(purpose);
        let read_on = || {
            give_up.check()?;
            match !abandon_on_change || (keep() && !unlinked()) {
                true => Ok(()),
                false => Err(Error::Changed),
            }
        };
        let mut tree = self.config.tree_builder.as_ref().map(|b| b.start());
        let upto = attrs.size.min(limit);
        let mut feed_tree = tree.as_mut().map(|t| move |chunk: &[u8]| t.update(chunk));
        let feed = feed_tree.as_mut().map(|f| f as &mut Feed<'_>);
        let (digest, hashed) = hash_content(rfd.as_fd(), algo, feed, upto, &read_on)?;
        // A change behind our back while the file was read (no generation tells of
        // it): the digest and tree are of the bytes read, not of the version `attrs`
        // names. Retried; on the last attempt kept, sized as what was read (so the
        // tree checks reads of exactly those bytes), and not published.
        let steady = hashed == attrs.size
            && identity::identify_fd(rfd.as_fd())?
                .attrs
                .same_version(&attrs);
        let mut attrs = attrs;
        if !steady {
            if abandon_on_change {
                return Err(Error::Changed);
            }
            attrs.size = hashed;
        }
        let verity = match tree.map(|t| t.finish()) {
            None => None,
            Some(Ok(mut tree)) => {
                let key = id.to_hex();
                let stored = if tree.tree.is_empty() {
                    None
                } else {
                    let body = &mut std::iter::once(tree.tree.clone());
                    match self.trees.store(&key, &tree.digest, body, &keep) {
                        Ok(r) => Some(r),
                        Err(Error::Changed) => None,
                        Err(e) => return Err(e),
                    }
                };
                if stored.is_some() || tree.tree.is_empty() {
                    // Trees of earlier contents of this file are of no use now; none is,
                    // if the file was forgotten (deleted, and let go of by the kernel)
                    // while it was measured: the forgetting removed its trees before
                    // this one was stored. (Forgotten from here on, it finds this one.)
                    let kept = stored.as_ref().map(|r| &r.digest[..]);
                    let kept = kept.filter(|_| self.tracks(id, st));
                    self.trees.remove_for(&key, kept)?;
                }
                if stored.is_some() {
                    tree.tree = Vec::new();
                }
                Some((tree, stored))
            }
            Some(Err(e)) => {
                return Err(Error::io(
                    "build tree",
                    format!("{id:?}"),
                    std::io::Error::other(e),
                ))
            }
        };
        let mut ima_value = self.read_value(id, rfd.as_fd())?;
        let mut value_error = None;
        if refresh_value
            && steady
            && st.gen.still_current(t)
            && ima_value
                .as_deref()
                .is_none_or(|v| !appraise::is_signature(v))
        {
            let v = appraise::hash_value(algo, &digest);
            if ima_value.as_deref() != Some(&v[..]) {
                // As the kernel's ima_fix_xattr: a value that cannot be written leaves
                // the appraisal to fail (allowed in fix mode), not the open.
                match self.write_value(id, rfd.as_fd(), &v) {
                    Ok(()) => {
                        // Our own xattr write changed ctime: that version is the
                        // guard's own, and the measurement's, unless a change through
                        // the guard began meanwhile (its size, its ctime, would be of
                        // content never read).
                        st.note_own(rfd.as_fd());
                        let after = identity::identify_fd(rfd.as_fd())?.attrs;
                        if st.gen.still_current(t) {
                            attrs = after;
                        }
                        ima_value = Some(v);
                    }
                    Err(e) => value_error = Some(e.to_string()),
                }
            }
        }
        let m = Arc::new(Measurement {
            generation: t.generation(),
            attrs,
            algo,
            digest,
            verity,
            ima_value,
            value_error,
            logged: AtomicU64::new(0),
            verdicts: Mutex::new(Vec::new()),
        });
        let published = steady && st.gen.publish(t, Arc::clone(&m));
        if !published {
            self.counters
                .publish_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok((m, published))
    }

    fn value_name(&self) -> Option<&'static str> {
        self.evm_names().map(|n| n.ima)
    }

    /// The xattrs of IMA and EVM values; `None` for a sidecar store.
    fn evm_names(&self) -> Option<EvmNames> {
        match &self.config.xattr {
            XattrSource::Security => Some(EvmNames::new(false)),
            XattrSource::User => Some(EvmNames::new(true)),
            XattrSource::Sidecar(_) => None,
        }
    }

    /// `fd`'s EVM value if it is a portable signature, else empty (for log records:
    /// a value that cannot be read is left out).
    fn portable_evm_sig(&self, fd: BorrowedFd<'_>) -> Vec<u8> {
        self.evm_names()
            .and_then(|n| sys::get_xattr(fd, n.evm).ok().flatten())
            .filter(|v| v.first() == Some(&(XattrType::EvmPortableDigSig as u8)))
            .unwrap_or_default()
    }

    /// What an `evm-sig` record shows of `fd`'s file (the kernel's
    /// `ima_eventevmsig_init`, `ima_eventinodexattr*_init`, `ima_eventinodedac_init`,
    /// `ima_eventinodemode_init`): xattrs that cannot be read are left out.
    fn inode_fields(&self, fd: BorrowedFd<'_>, attrs: &FileAttrs) -> InodeFields {
        let names = self.evm_names();
        let xattrs = vigil_ima::evm::EVM_XATTRS
            .iter()
            .map(|&n| match names {
                Some(names) if n == "security.ima" => names.ima,
                _ => n,
            })
            .filter_map(|n| Some((n.to_owned(), sys::get_xattr(fd, n).ok()??)))
            .collect();
        InodeFields {
            evm_sig: self.portable_evm_sig(fd),
            xattrs,
            uid: attrs.uid,
            gid: attrs.gid,
            mode: attrs.mode as u16,
        }
    }

    /// `fd` (of `id`, with `attrs`) as EVM sees it; `None` where EVM does not take
    /// part (no EVM keys, or values kept in a sidecar store).
    fn evm_file<'a>(
        &self,
        id: &FileId,
        fd: BorrowedFd<'a>,
        attrs: &'a FileAttrs,
    ) -> Option<EvmFile<'a>> {
        let names = self.evm_names().filter(|_| self.config.evm.loaded())?;
        Some(EvmFile {
            fd,
            attrs,
            fs_uuid: self.filesystem(id, fd).uuid,
            names,
        })
    }

    fn read_value(&self, id: &FileId, fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>> {
        match (&self.config.xattr, self.value_name()) {
            (_, Some(name)) => sys::get_xattr(fd, name).map_err(|e| Error::io("getxattr", name, e)),
            (XattrSource::Sidecar(dir), None) => {
                let p = dir.join(format!("{}.ima", id.to_hex()));
                match std::fs::read(&p) {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("read", p, e)),
                }
            }
            _ => Ok(None),
        }
    }

    /// The HMAC follows the IMA value `v`, over the file's metadata as it is now; the
    /// caller holds the EVM lock of `id`.
    fn rewrite_hmac(
        &self,
        id: &FileId,
        fd: BorrowedFd<'_>,
        v: &[u8],
    ) -> std::result::Result<(), String> {
        let attrs = identity::identify_fd(fd).map_err(|e| e.to_string())?.attrs;
        match self.evm_file(id, fd, &attrs) {
            Some(f) => evm::update_hmac(&self.config.evm, &f, Some(v)),
            None => Ok(()),
        }
    }

    fn write_value(&self, id: &FileId, fd: BorrowedFd<'_>, v: &[u8]) -> Result<()> {
        match (&self.config.xattr, self.value_name()) {
            (_, Some(name)) => {
                let _evm = self.evm_lock(id);
                evm::set_through_proc(fd, name, v).map_err(|e| Error::io("setxattr", name, e))?;
                // The kernel's evm_inode_post_setxattr: the HMAC follows the new value.
                if self.config.evm.hmac_key.is_some() {
                    self.rewrite_hmac(id, fd, v).map_err(|e| {
                        Error::io("update EVM HMAC", name, std::io::Error::other(e))
                    })?;
                }
                Ok(())
            }
            (XattrSource::Sidecar(dir), None) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
                // Readable as the xattr it stands for is; written by root only.
                crate::store::write_atomic(&dir.join(format!("{}.ima", id.to_hex())), v, 0o644)
            }
            _ => Ok(()),
        }
    }

    /// The verdict on `m` for `action`. A `trusted` file (written through the mount
    /// since it passed) is judged by the hash value it is being given: while it is
    /// written, that value may lag behind the content measured.
    fn verdict(
        &self,
        id: &FileId,
        m: &Measurement,
        action: &AppraiseAction,
        created: bool,
        trusted: bool,
        fd: BorrowedFd<'_>,
    ) -> Result<Verdict> {
        let cache = !created && !trusted;
        if cache {
            let cached = m.verdicts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, v)) = cached.iter().find(|(a, _)| a == action) {
                return Ok(v.clone());
            }
        }
        let mut file_digest = |algo: HashAlgo| -> std::result::Result<Vec<u8>, String> {
            if algo == m.algo {
                return Ok(m.digest.clone());
            }
            let rfd = readable(fd).map_err(|e| e.to_string())?;
            digest_as_measured(rfd.as_fd(), algo, m.algo, &m.digest, m.attrs.size)
        };
        let verity = m.verity.as_ref().map(|(t, _)| (t.algo, &t.digest[..]));
        // EVM judges the value on disk; a trusted file keeps the verdict it had, as
        // the kernel keeps a passing one while the file is written.
        let evm_file = self.evm_file(id, fd, &m.attrs).filter(|_| !trusted);
        let fix = self.config.appraise_mode == AppraiseMode::Fix;
        let mut evm_status = |v: &[u8]| {
            let Some(f) = &evm_file else {
                return EvmStatus::Unknown;
            };
            let status = evm::verify(&self.config.evm, f, Some(v));
            // Fix mode rewrites a hash value, and with it the HMAC (ima_fix_xattr),
            // over the file's metadata as it is now (under the EVM lock: a metadata
            // change may have come since the measurement).
            let fixable = matches!(status, EvmStatus::NoLabel | EvmStatus::Fail(_));
            if fix && fixable && !appraise::is_signature(v) && self.config.evm.hmac_key.is_some() {
                let _evm = self.evm_lock(id);
                return match self.rewrite_hmac(id, fd, v) {
                    Ok(()) => EvmStatus::Pass,
                    Err(e) => EvmStatus::Fail(e),
                };
            }
            status
        };
        let given = match m.ima_value.as_deref() {
            Some(v) if appraise::is_signature(v) => None,
            _ if trusted => Some(appraise::hash_value(m.algo, &m.digest)),
            _ => None,
        };
        let v = appraise::appraise(
            action,
            given.as_deref().or(m.ima_value.as_deref()),
            &mut evm_status,
            created,
            m.attrs.size,
            self.config.verifier.as_deref(),
            &mut file_digest,
            verity,
        );
        let v = match (v, &m.value_error) {
            (Verdict::Fail(cause), Some(e)) => {
                Verdict::Fail(format!("{cause}; writing the hash value failed: {e}"))
            }
            (v, _) => v,
        };
        if cache {
            m.verdicts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((action.clone(), v.clone()));
        }
        Ok(v)
    }

    fn worker(self: Arc<Self>) {
        while let Some((id, _gen, info)) = self.queue.pop() {
            let c = match self.run_job(&id, &info) {
                Ok(()) => &self.counters.jobs_done,
                Err(e) => {
                    if let Some(report) = &self.config.job_failures {
                        let name = match info.find_path {
                            Some(find) => find(),
                            None => format!("file {}", id.to_hex()).into(),
                        };
                        report(&name, &e);
                    }
                    &self.counters.jobs_failed
                }
            };
            c.fetch_add(1, Ordering::Relaxed);
            self.queue.done();
        }
    }

    /// Re-measure after the last writer: refresh the hash value where the policy asks,
    /// rebuild the tree. Runs on a worker with no lock held while waiting.
    fn run_job(&self, id: &FileId, info: &JobInfo) -> Result<()> {
        let Some(st) = self.existing(id) else {
            return Ok(());
        };
        let mount = self
            .mounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.mount())
            .cloned()
            .ok_or_else(|| {
                Error::Config(format!("no descriptor registered for mount {}", id.mount()))
            })?;
        // A file deleted since leaves nothing to do.
        let f = match identity::reopen(mount.as_fd(), id) {
            Ok(f) => f,
            Err(Error::Stale) => {
                self.forget(id);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let now = identity::identify_fd(f.as_fd())?;
        if &now.id != id {
            self.forget(id);
            return Ok(());
        }
        let actions: Actions = self.config.policy.actions(&Access {
            hook: Hook::FileCheck,
            mask: MAY_READ,
            uid: info.uid,
            euid: info.uid,
            gid: info.gid,
            egid: info.gid,
            fowner: now.attrs.uid,
            fgroup: now.attrs.gid,
            fsmagic: now.attrs.fs_magic,
            fs: &self.filesystem(id, f.as_fd()),
        });
        let appraised =
            actions.appraise.is_some() && self.config.appraise_mode != AppraiseMode::Off;
        if actions.measure.is_none()
            && !appraised
            && !actions.hash
            && self.config.tree_builder.is_none()
        {
            return Ok(());
        }
        self.catch_change_behind(&st, &now.attrs, f.as_fd(), Purpose::Job)?;
        let refresh = actions.hash || (appraised && st.trusts_changes());
        let m = match self.measurement(id, &st, Some(&now.attrs), f.as_fd(), refresh, Purpose::Job)
        {
            Err(Error::Changed) => return Ok(()),
            m => m?,
        };
        if refresh {
            st.value_brought_up_to_date(&m);
        }
        Ok(())
    }
}

/// Who a measurement is for, which decides what it gives up for. Any measurement is
/// given up once the guard abandons them ([`Guard::abandon_measurements`]).
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// An open (or a seal), which needs an answer: attempts overtaken by a change are
    /// retried, and the last one reads to the end whatever happens, unless `gone`
    /// tells that no one waits for the answer any more.
    Open {
        gone: Option<&'a (dyn Fn() -> bool + Sync)>,
    },
    /// A deferred re-measurement: given up ([`Error::Changed`]) when the file keeps
    /// changing or loses its last name while it is read; a later job, or the next
    /// open, measures what it becomes.
    Job,
}

/// How one measurement attempt reads the file.
#[derive(Clone, Copy)]
struct Reading {
    /// Bytes read at most ([`read_limit`]).
    limit: u64,
    /// A change noticed while reading (for a job, also the loss of the file's last
    /// name) stops it with [`Error::Changed`]; else it reads on to the end or the
    /// limit (and does not publish).
    abandon_on_change: bool,
}

/// How far a measurement of `fd` beginning now may read: a file appended to meanwhile
/// is read to its end, one that keeps growing is not chased (twice its size now and
/// 64 MiB more at most).
fn read_limit(fd: BorrowedFd<'_>) -> Result<u64> {
    let size = identity::version_fd(fd)?.size;
    Ok(size.saturating_mul(2).saturating_add(64 << 20))
}

fn needs_value_refresh(m: &Measurement) -> bool {
    if m.value_error.is_some() {
        return false;
    }
    match m.ima_value.as_deref() {
        Some(v) if appraise::is_signature(v) => false,
        Some(v) => v != appraise::hash_value(m.algo, &m.digest),
        None => true,
    }
}

/// When a measurement is given up ([`Error::Interrupted`]): the guard abandons its
/// measurements, or the opener it is for has gone. The opener is asked at most every
/// [`GONE_POLL`], not after every chunk: asking may cost a read of /proc.
struct GiveUp<'a> {
    abandoned: &'a AtomicBool,
    gone: Option<&'a (dyn Fn() -> bool + Sync)>,
    next_ask: Cell<Instant>,
}

impl GiveUp<'_> {
    fn check(&self) -> Result<()> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if let Some(gone) = self.gone {
            let now = Instant::now();
            if now >= self.next_ask.get() {
                self.next_ask.set(now + GONE_POLL);
                if gone() {
                    return Err(Error::Interrupted);
                }
            }
        }
        Ok(())
    }
}

/// What else a read's chunks are given to, in order, while they are hashed (a tree
/// being built, a second hash).
type Feed<'a> = dyn FnMut(&[u8]) + Send + 'a;

/// Hash the content of `fd` from offset 0 up to `size` at most (and feed it to `also`,
/// if any), asking `keep_going` between chunks (whose error ends it). One read of the
/// file: while a chunk is hashed (content hash and `also` side by side), the next one
/// is read. Gives the digest and the number of bytes hashed.
fn hash_content(
    fd: BorrowedFd<'_>,
    algo: HashAlgo,
    mut also: Option<&mut Feed<'_>>,
    size: u64,
    keep_going: &dyn Fn() -> Result<()>,
) -> Result<(Vec<u8>, u64)> {
    let mut h = vigil_ima::Hasher::new(algo)?;
    let (mut cur, mut next) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
    let upto = |off: u64| size.saturating_sub(off).min(READ_CHUNK as u64) as usize;
    let mut n = pread_full(fd, &mut cur[..upto(0)], 0)?;
    let mut off = 0u64;
    while n > 0 {
        let chunk = &cur[..n];
        let (read, ()) = rayon::join(
            || pread_full(fd, &mut next[..upto(off + n as u64)], off + n as u64),
            || match also.as_mut() {
                Some(f) => {
                    rayon::join(|| h.update(chunk), || f(chunk));
                }
                None => h.update(chunk),
            },
        );
        off += n as u64;
        n = read?;
        std::mem::swap(&mut cur, &mut next);
        keep_going()?;
    }
    Ok((h.finalize(), off))
}

/// The `algo` digest of the first `size` bytes of `fd`, for a signature over another
/// algorithm than the measurement's. That takes a second read, so it hashes with the
/// measurement's algorithm too: only if it read the bytes measured (`measured`, their
/// `measured_algo` digest, which the tree lets through) does its digest speak for them.
fn digest_as_measured(
    fd: BorrowedFd<'_>,
    algo: HashAlgo,
    measured_algo: HashAlgo,
    measured: &[u8],
    size: u64,
) -> std::result::Result<Vec<u8>, String> {
    let mut again = vigil_ima::Hasher::new(measured_algo).map_err(|e| e.to_string())?;
    let mut feed = |chunk: &[u8]| again.update(chunk);
    let (digest, _) =
        hash_content(fd, algo, Some(&mut feed), size, &|| Ok(())).map_err(|e| e.to_string())?;
    if again.finalize() != measured {
        return Err("the file changed while its signature was checked".into());
    }
    Ok(digest)
}

/// Fill `buf` from `off` (short only at end of file).
fn pread_full(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::pread(fd, &mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("pread", "<fd>", e)),
        }
    }
    Ok(n)
}

fn load_seals(path: &Path) -> Result<BTreeMap<String, SealRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut out = BTreeMap::new();
    let mut off = 0u64;
    for line in text.lines() {
        let bad = |what: &str| Error::Corrupt {
            path: path.to_owned(),
            offset: off,
            what: what.to_owned(),
        };
        let mut it = line.split(' ');
        let (Some(id), Some(d)) = (it.next(), it.next()) else {
            return Err(bad("seal line needs an identity and a digest"));
        };
        let parse = |s: &str| -> Option<(HashAlgo, Vec<u8>)> {
            let (a, h) = s.split_once(':')?;
            let a = HashAlgo::from_name(a).ok()?;
            let h = hex::decode(h).ok()?;
            (h.len() == a.digest_len()).then_some((a, h))
        };
        let (algo, digest) = parse(d).ok_or_else(|| bad("bad seal digest"))?;
        let verity = match it.next() {
            Some(v) => Some(parse(v).ok_or_else(|| bad("bad seal verity digest"))?),
            None => None,
        };
        if hex::decode(id).is_err() {
            return Err(bad("bad seal identity"));
        }
        out.insert(
            id.to_owned(),
            SealRecord {
                algo,
                digest,
                verity,
            },
        );
        off += line.len() as u64 + 1;
    }
    Ok(out)
}

fn save_seals(path: &Path, seals: &BTreeMap<String, SealRecord>) -> Result<()> {
    let mut s = String::new();
    for (id, r) in seals {
        s.push_str(&format!("{id} {}:{}", r.algo, hex::encode(&r.digest)));
        if let Some((a, d)) = &r.verity {
            s.push_str(&format!(" {a}:{}", hex::encode(d)));
        }
        s.push('\n');
    }
    crate::store::write_atomic(path, s.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A second read for a signature's algorithm that finds other bytes than were
    /// measured refuses to give a digest (it would vouch for bytes never served).
    #[test]
    fn second_read_must_see_the_measured_bytes() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"signed content A").unwrap();
        let fd = f.as_fd();
        let a = HashAlgo::Sha256.digest(b"signed content A").unwrap();
        let b = HashAlgo::Sha256.digest(b"served content B").unwrap();
        let sha1 = HashAlgo::Sha1.digest(b"signed content A").unwrap();
        assert_eq!(
            digest_as_measured(fd, HashAlgo::Sha1, HashAlgo::Sha256, &a, 16),
            Ok(sha1)
        );
        let e = digest_as_measured(fd, HashAlgo::Sha1, HashAlgo::Sha256, &b, 16).unwrap_err();
        assert!(e.contains("changed"), "{e}");
    }
}
