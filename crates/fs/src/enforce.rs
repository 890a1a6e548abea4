//! Where enforcement plugs into the filesystem: the FUSE handlers call these hooks of
//! [`Enforcer`] (over a [`vigil_guard::Guard`]) at fixed points and nowhere else:
//!
//! * [`Enforcer::open`] — after the backing file is open and before the reply: policy,
//!   measurement, appraisal, writer accounting, violations; an error is the errno the
//!   opener gets (EACCES denied, EPERM sealed). On a worker thread, or on the loop thread
//!   when [`Enforcer::open_is_cached`] says no hashing is needed.
//! * [`Enforcer::check_read`] — on a worker thread, before data leaves the daemon:
//!   verification of the range against the Merkle tree built at measurement time; a
//!   mismatch is EIO (and a log line), never wrong bytes.
//! * [`Enforcer::modify`] / [`Enforcer::change_metadata`] — on the loop thread, around
//!   every change made through the mount; they only invalidate (never hash, never wait).
//! * [`Enforcer::release`] — at RELEASE; the last writer's release only queues a
//!   deferred re-measurement.
//! * [`Enforcer::export`] — contents of the `.vigil/` files.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fuser::Errno;
use vigil_guard::policy::{MAY_APPEND, MAY_EXEC, MAY_READ, MAY_WRITE};
use vigil_guard::{
    FileAttrs, Guard, Hook, Identified, LogPath, Measurement, MetadataChange, Modification,
    OpenDecision, OpenHandle, OpenRequest, Verdict,
};

use crate::control::ControlFile;
use crate::inode::Node;
use crate::verity::ReadCheck;

/// `__FMODE_EXEC`: the kernel sets it in the flags of the open that `execve(2)` (and
/// `uselib(2)`) makes, and FUSE passes it on in OPEN. `open(2)` masks it off and
/// `openat2(2)` refuses it, so no process can forge it.
const FMODE_EXEC: i32 = 0x20;

/// Who asked (from the FUSE request header).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// The enforcement state of one open file handle.
pub struct Opened {
    handle: Mutex<Option<OpenHandle>>,
    /// How reads are verified (None: not measured, or measured without a tree).
    pub check: Option<Arc<ReadCheck>>,
    /// The file's attributes at the open.
    pub attrs: FileAttrs,
}

/// A line of the daemon's log (its stderr, or its `--log` file). Written after the
/// reply it concerns was sent or decided, never while holding a lock.
pub fn audit(msg: std::fmt::Arguments<'_>) {
    eprintln!("vigil-fs: {msg}");
}

/// The path of `node` in the mount on `mnt`, for the measurement log, as the kernel's
/// `ima_d_path` gives it: the path of the dentry it was reached by (so a file unlinked
/// while open keeps its path), or, for a path too long to resolve (`PATH_MAX` bytes with
/// its NUL), the file's own name.
fn path_in(mnt: &Path, node: &Node) -> PathBuf {
    let fits =
        |rel: &Path| mnt.as_os_str().len() + 1 + rel.as_os_str().len() < libc::PATH_MAX as usize;
    match node.dentry_path() {
        Some(rel) if rel.as_os_str().is_empty() => mnt.to_owned(),
        Some(rel) if fits(&rel) => mnt.join(rel),
        _ => node.name().into(),
    }
}

/// The `MAY_*` mask IMA derives from `open(2)` flags (an exec's open asks `MAY_EXEC`
/// alone, as the kernel's `open_exec_flags` do).
pub fn open_mask(flags: i32) -> u32 {
    if flags & FMODE_EXEC != 0 {
        return MAY_EXEC;
    }
    let mut m = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => MAY_WRITE,
        libc::O_RDWR => MAY_READ | MAY_WRITE,
        _ => MAY_READ,
    };
    if flags & libc::O_APPEND != 0 {
        m |= MAY_APPEND;
    }
    if flags & libc::O_TRUNC != 0 {
        m |= MAY_WRITE;
    }
    m
}

pub struct Enforcer {
    guard: Guard,
    mnt: Arc<Path>,
    /// The source directory, for `.vigil/status`.
    source: PathBuf,
    /// Reads of measured files are checked against their Merkle tree.
    verify_reads: bool,
    /// The connection has ended: no opener waits for an answer any more.
    ended: AtomicBool,
}

/// A `.vigil/` file as opened, so that reads at any offset agree.
pub enum ControlData {
    /// Made at the open.
    Bytes(Vec<u8>),
    /// The binary list, read from the state's log file (which is that list) up to the
    /// length it had at the open.
    BinaryList(u64),
    /// The ASCII list, formatted from the log file as it is read, up to the length the
    /// log had at the open.
    AsciiList(Mutex<vigil_guard::log::AsciiReader>),
}

fn errno_of(e: &vigil_guard::Error) -> Errno {
    Errno::from_i32(e.errno())
}

impl Enforcer {
    /// An enforcer for the mount on `mnt` (canonical path). `root` is the source
    /// directory's descriptor; a readable descriptor of it is registered with the guard
    /// so its deferred jobs can reopen files by handle.
    pub fn new(
        guard: Guard,
        mnt: &Path,
        source: &Path,
        root: BorrowedFd<'_>,
        verify_reads: bool,
    ) -> std::io::Result<Enforcer> {
        // open_by_handle_at needs a real (not O_PATH) descriptor on the mount.
        let dir = crate::sys::openat(root, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        guard.register_mount(dir).map_err(std::io::Error::other)?;
        Ok(Enforcer {
            guard,
            mnt: mnt.into(),
            source: source.to_owned(),
            verify_reads,
            ended: AtomicBool::new(false),
        })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Where the mount is.
    pub fn mountpoint(&self) -> &Path {
        &self.mnt
    }

    /// The path of `node` in the mount, for the measurement log, as the kernel's
    /// `ima_d_path` gives it (see `path_in`).
    pub fn path_of(&self, node: &Node) -> PathBuf {
        path_in(&self.mnt, node)
    }

    /// Whether a read-only OPEN of `node` is decided from memory: the guard holds a
    /// clean measurement of exactly the version the backing file has now (one `statx`
    /// tells), so answering it needs no hashing and may stay on the loop thread. Gives
    /// the file's identification for [`Enforcer::open`].
    pub fn open_is_cached(&self, node: &Node) -> Option<Identified> {
        let id = node.ident.get()?;
        let m = self.guard.cached(id)?;
        // Reading a stored tree back is work for a worker, not the loop thread.
        if !self.has_read_check(node, &m) {
            return None;
        }
        let known = Identified {
            id: id.clone(),
            attrs: m.attrs,
        };
        let now = self.guard.refresh(&known, node.fd()).ok()?;
        m.attrs.same_version(&now.attrs).then_some(now)
    }

    /// The backing file of a node the kernel forgot has no links left: drop the
    /// guard's state, tree and seal for it.
    pub fn forget_deleted(&self, id: &vigil_guard::FileId) {
        self.guard.forget(id);
    }

    /// The attributes of the open `file` now.
    pub fn attrs(&self, file: &File) -> Result<FileAttrs, Errno> {
        let ident = self.guard.identify(file.as_fd());
        Ok(ident.map_err(|e| errno_of(&e))?.attrs)
    }

    fn file_id(&self, node: &Node) -> Result<vigil_guard::FileId, Errno> {
        if let Some(id) = node.ident.get() {
            return Ok(id.clone());
        }
        let id = self.guard.identify(node.fd()).map_err(|e| errno_of(&e))?.id;
        Ok(node.ident.get_or_init(|| id).clone())
    }

    /// OPEN of a regular file: `file` is the backing file opened with the caller's mode;
    /// `known` its identification if the caller already has it (same inode).
    pub fn open(
        &self,
        node: &Node,
        file: &File,
        flags: i32,
        who: Caller,
        created: bool,
        known: Option<Identified>,
    ) -> Result<Opened, Errno> {
        let ident = match known {
            Some(i) => i,
            None => self
                .guard
                .identify(file.as_fd())
                .map_err(|e| errno_of(&e))?,
        };
        let _ = node.ident.set(ident.id.clone());
        let find_path = || self.path_of(node).into_os_string();
        let gone = || self.gone(who);
        let mut req = OpenRequest {
            hook: Hook::FileCheck,
            mask: open_mask(flags),
            uid: who.uid,
            euid: who.uid,
            gid: who.gid,
            egid: who.gid,
            path: LogPath::lazy(&find_path),
            created,
            gone: Some(&gone),
        };
        let mut d = self.decide(&ident, file, &req, who)?;
        if flags & FMODE_EXEC != 0 {
            // An execve: the kernel checks FILE_CHECK at the open, then BPRM_CHECK, both
            // with MAY_EXEC. The open is counted once (`d`); the second handle is
            // released as it is dropped here.
            req.hook = Hook::BprmCheck;
            let bprm = self.decide(&ident, file, &req, who)?;
            d.measurement = d.measurement.or(bprm.measurement);
            d.verdict = match (d.verdict, bprm.verdict) {
                (Some(Verdict::Fail(c)), _) | (_, Some(Verdict::Fail(c))) => Some(Verdict::Fail(c)),
                (a, b) => a.or(b),
            };
        }
        if let Some(Verdict::Fail(cause)) = &d.verdict {
            // Log/fix mode: allowed, but recorded.
            audit(format_args!(
                "open {} by uid {}: appraisal failed ({cause}), allowed",
                req.path.display(),
                who.uid
            ));
        }
        let check = match (&d.measurement, self.verify_reads) {
            (Some(m), true) => self.read_check(node, m)?,
            _ => None,
        };
        Ok(Opened {
            handle: Mutex::new(Some(d.handle)),
            check,
            attrs: ident.attrs,
        })
    }

    /// The guard's answer to `req`; a refusal is audited and becomes the opener's errno.
    /// A file being written is measured as found (the guard retries internally and
    /// never fails an open because the content changed while it was read).
    fn decide(
        &self,
        ident: &Identified,
        file: &File,
        req: &OpenRequest,
        who: Caller,
    ) -> Result<OpenDecision, Errno> {
        self.guard.on_open(ident, file.as_fd(), req).map_err(|e| {
            let errno = errno_of(&e);
            let what = if req.hook == Hook::BprmCheck {
                "exec"
            } else {
                "open"
            };
            audit(format_args!(
                "{what} {} by uid {} pid {}: {e} ({})",
                req.path.display(),
                who.uid,
                who.pid,
                std::io::Error::from_raw_os_error(errno.code())
            ));
            errno
        })
    }

    /// Whether `node` holds the read check of measurement `m` (or `m` needs none that
    /// would have to be read from the tree store). Never waits: the lock may be held
    /// by a worker reading a tree.
    fn has_read_check(&self, node: &Node, m: &Arc<Measurement>) -> bool {
        if !self.verify_reads || m.tree().is_none() {
            return true;
        }
        match node.check.try_lock() {
            Ok(slot) => slot.as_ref().is_some_and(|(held, _)| Arc::ptr_eq(held, m)),
            Err(_) => false,
        }
    }

    /// The read check of the file's latest measurement while it is published, that is
    /// while it is of the content as it has been since the last change through the
    /// mount (a change begins by withdrawing it). For handles opened before such a
    /// change, once the file was measured again.
    pub fn current_check(&self, node: &Node) -> Option<Arc<ReadCheck>> {
        if !self.verify_reads {
            return None;
        }
        let m = self.guard.cached(node.ident.get()?)?;
        self.read_check(node, &m).ok().flatten()
    }

    /// Whether the file behind `node` was changed behind the mount while no measurement
    /// stands for its content (see [`Guard::changed_behind`](vigil_guard::Guard::changed_behind)).
    pub fn changed_behind(&self, node: &Node) -> bool {
        node.ident
            .get()
            .is_some_and(|id| self.guard.changed_behind(id, node.fd()))
    }

    /// The read check of measurement `m`, built once per measurement and kept on the
    /// node. A stored tree that cannot be read back, or does not fit the measurement,
    /// fails the open (EIO): reads are never served unverified for want of it.
    fn read_check(
        &self,
        node: &Node,
        m: &Arc<Measurement>,
    ) -> Result<Option<Arc<ReadCheck>>, Errno> {
        let mut slot = node.check.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((held, check)) = slot.as_ref() {
            if Arc::ptr_eq(held, m) {
                return Ok(Some(check.clone()));
            }
        }
        let built = match m.tree_bytes() {
            Ok(None) => return Ok(None),
            Ok(Some(tree)) => {
                ReadCheck::new(m.attrs.size, Arc::new(tree), m.algo, m.digest.clone())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match built {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some((m.clone(), c.clone()));
                Ok(Some(c))
            }
            Err(e) => {
                drop(slot);
                let path = self.path_of(node);
                audit(format_args!("{}: Merkle tree: {e}: EIO", path.display()));
                Err(Errno::EIO)
            }
        }
    }

    /// Verify `data`, read at `offset` over the check's span; on mismatch log and EIO.
    pub fn check_read(
        &self,
        node: &Node,
        check: &ReadCheck,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Errno> {
        check.verify(offset, data).map_err(|e| {
            audit(format_args!(
                "read {} [{offset}, {}): {e}: EIO",
                self.path_of(node).display(),
                offset + data.len() as u64
            ));
            Errno::EIO
        })
    }

    /// `file` has just been created through the mount. Gives its identification for
    /// [`Enforcer::open`].
    pub fn created(&self, file: BorrowedFd<'_>) -> Result<Identified, Errno> {
        let ident = self.guard.identify(file).map_err(|e| errno_of(&e))?;
        self.guard.on_create(&ident);
        Ok(ident)
    }

    /// A content change through the mount is about to happen (write, truncate,
    /// fallocate): keep the result until it is done. EPERM if sealed.
    pub fn modify(&self, node: &Node) -> Result<Modification, Errno> {
        let id = self.file_id(node)?;
        self.guard
            .modify(&id, Some(node.fd()))
            .map_err(|e| errno_of(&e))
    }

    /// The owner, group or mode of `node` is about to change through the mount
    /// (`mode`, `uid`, `gid`: what is asked for): EPERM where EVM vouches for it (see
    /// [`Guard::protect_attrs`]). Hand the result to [`Enforcer::metadata_changed`]
    /// once the change is made.
    pub fn protect_attrs(
        &self,
        node: &Node,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<Option<OwnedFd>, Errno> {
        let Some(fd) = self.evm_subject(node)? else {
            return Ok(None);
        };
        self.guard
            .protect_attrs(fd.as_fd(), mode, uid, gid)
            .map_err(|e| self.metadata_refused(node, &e))?;
        Ok(Some(fd))
    }

    /// The xattr `name` of `node` is about to be set to `value` (`None`: removed)
    /// through the mount: as [`Enforcer::protect_attrs`], for the xattrs EVM covers.
    pub fn protect_xattr(
        &self,
        node: &Node,
        name: &std::ffi::OsStr,
        value: Option<&[u8]>,
    ) -> Result<Option<OwnedFd>, Errno> {
        use std::os::unix::ffi::OsStrExt;
        let name = std::str::from_utf8(name.as_bytes()).unwrap_or("");
        if !self.guard.covers_xattr(name) {
            return Ok(None);
        }
        let Some(fd) = self.evm_subject(node)? else {
            return Ok(None);
        };
        let follow = self
            .guard
            .protect_xattr(fd.as_fd(), name, value)
            .map_err(|e| self.metadata_refused(node, &e))?;
        Ok(follow.then_some(fd))
    }

    /// After a change [`Enforcer::protect_attrs`] or [`Enforcer::protect_xattr`]
    /// allowed: EVM's HMAC follows it. Like the kernel's post-change hooks, a failure
    /// does not undo the change; it is reported.
    pub fn metadata_changed(&self, node: &Node, subject: Option<OwnedFd>) {
        if let Some(fd) = subject {
            if let Err(e) = self.guard.metadata_changed(fd.as_fd()) {
                audit(format_args!("{}: {e}", self.path_of(node).display()));
            }
        }
    }

    /// A readable descriptor of `node` for EVM's checks, if EVM takes part and the node
    /// is a regular file.
    fn evm_subject(&self, node: &Node) -> Result<Option<OwnedFd>, Errno> {
        if !self.guard.evm_in_use() || node.kind != fuser::FileType::RegularFile {
            return Ok(None);
        }
        crate::sys::reopen(node.fd(), libc::O_RDONLY)
            .map(Some)
            .map_err(|e| Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    fn metadata_refused(&self, node: &Node, e: &vigil_guard::Error) -> Errno {
        audit(format_args!(
            "change of {} refused: {e}",
            self.path_of(node).display()
        ));
        errno_of(e)
    }

    /// A metadata change through the mount (chmod, chown, xattrs, links) is about to
    /// be made: keep the returned guard until it is done (see
    /// [`Guard::change_metadata`](vigil_guard::Guard::change_metadata)).
    pub fn change_metadata(&self, node: &Node) -> Option<MetadataChange> {
        let id = self.file_id(node).ok()?;
        Some(self.guard.change_metadata(&id, Some(node.fd())))
    }

    /// [`Enforcer::change_metadata`] for a file the kernel has no node of.
    pub fn change_metadata_fd(&self, fd: BorrowedFd<'_>) -> Option<MetadataChange> {
        let i = self.guard.identify(fd).ok()?;
        Some(self.guard.change_metadata(&i.id, Some(fd)))
    }

    /// RELEASE of a handle: the last writer's only queues a re-measurement.
    pub fn release(&self, node: &Arc<Node>, opened: &Opened) {
        let h = opened
            .handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = h {
            let (mnt, n) = (self.mnt.clone(), node.clone());
            let find_path = move || path_in(&mnt, &n).into_os_string();
            if self.guard.on_release(h, find_path) == vigil_guard::ReleaseOutcome::QueueFull {
                audit(format_args!(
                    "{}: re-measurement queue full; measured at its next open or at unmount",
                    self.path_of(node).display()
                ));
            }
        }
    }

    /// Is the file behind `node` sealed?
    pub fn sealed(&self, node: &Node) -> bool {
        if !self.guard.any_seals() {
            return false;
        }
        self.file_id(node)
            .ok()
            .and_then(|id| {
                self.guard
                    .status(&id)
                    .map(|s| s.sealed)
                    .or_else(|| self.guard.seal_of(&id).map(|_| true))
            })
            .unwrap_or(false)
    }

    /// Is the file behind `fd` (a file the mount holds no node for) sealed?
    pub fn sealed_fd(&self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        self.guard.any_seals()
            && self
                .guard
                .identify(fd)
                .is_ok_and(|i| self.guard.seal_of(&i.id).is_some())
    }

    /// Seal (EBUSY while writers exist).
    pub fn seal(&self, node: &Node, file: &File, who: Caller) -> Result<(), Errno> {
        let ident = self
            .guard
            .identify(file.as_fd())
            .map_err(|e| errno_of(&e))?;
        self.guard
            .seal(&ident, file.as_fd(), Some(&|| self.gone(who)))
            .map(drop)
            .map_err(|e| errno_of(&e))?;
        audit(format_args!("sealed {}", self.path_of(node).display()));
        Ok(())
    }

    pub fn unseal(&self, node: &Node, uid: u32) -> Result<(), Errno> {
        let id = self.file_id(node)?;
        self.guard.unseal(&id, uid).map_err(|e| errno_of(&e))?;
        audit(format_args!(
            "unsealed {} by uid {uid}",
            self.path_of(node).display()
        ));
        Ok(())
    }

    /// Writers (open handles and writable maps) and the seal of `node`.
    pub fn status(&self, node: &Node) -> (u32, bool) {
        match self
            .file_id(node)
            .ok()
            .and_then(|id| self.guard.status(&id))
        {
            Some(s) => (s.writers + s.writable_maps, s.sealed),
            None => (0, self.sealed(node)),
        }
    }

    /// A `.vigil/` file as it is at its open.
    pub fn open_control(&self, f: ControlFile) -> ControlData {
        let log = self.guard.log();
        let text = |s: String| ControlData::Bytes(s.into_bytes());
        match f {
            ControlFile::BinaryMeasurements => ControlData::BinaryList(log.durable_len()),
            ControlFile::AsciiMeasurements => {
                ControlData::AsciiList(Mutex::new(log.ascii_reader()))
            }
            ControlFile::Violations => text(format!("{}\n", log.stats().violations)),
            ControlFile::Pcrs => text(format_pcrs(&self.guard.pcrs())),
            ControlFile::Policy => text(self.guard.policy_text().to_owned()),
            ControlFile::Status => text(self.status_text()),
        }
    }

    /// Up to `size` bytes at `offset` of a `.vigil/` file opened as `d`.
    pub fn read_control(&self, d: &ControlData, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let log = self.guard.log();
        let listed = match d {
            ControlData::Bytes(data) => {
                let start = (offset as usize).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                return Ok(data[start..end].to_vec());
            }
            ControlData::BinaryList(end) => log.read_binary(*end, offset, size as usize),
            ControlData::AsciiList(reader) => {
                let mut reader = reader.lock().unwrap_or_else(|e| e.into_inner());
                log.read_ascii(&mut reader, offset, size as usize)
            }
        };
        listed.map_err(|e| errno_of(&e))
    }

    /// At unmount: every re-measurement owed is made (also those a full queue
    /// refused), so that hash values follow the writes made through the mount.
    pub fn shutdown(&self) {
        self.guard.finish_jobs();
    }

    /// Whether `who` no longer waits for the answer to its request: it was killed, or
    /// the connection ended (an abort fails every request in flight).
    fn gone(&self, who: Caller) -> bool {
        self.ended.load(Ordering::Relaxed) || crate::sys::killed(who.pid)
    }

    /// The connection to the kernel has ended: measurements that opens wait for are
    /// given up. Deferred re-measurements still run to their end ([`Self::shutdown`]).
    pub fn connection_ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Give up every measurement, deferred ones included, to stop now.
    pub fn abandon_measurements(&self) {
        self.guard.abandon_measurements();
    }
}

/// `<alg> PCR-NN: <hex>` lines (as `vigil log replay` prints them) for every PCR of
/// every bank that is not all zero.
impl Enforcer {
    /// `.vigil/status`: what the mount was started with and what it has done.
    fn status_text(&self) -> String {
        let g = &self.guard;
        let cfg = g.config();
        let stats = g.stats();
        let log = g.log().stats();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let lines: [(&str, String); 14] = [
            ("source", self.source.display().to_string()),
            ("state", g.state_dir().display().to_string()),
            ("appraise", cfg.appraise_mode.name().to_owned()),
            ("ima_value", cfg.xattr.to_string()),
            ("verify_reads", yes_no(self.verify_reads).to_owned()),
            ("hash", cfg.hash_algo.name().to_owned()),
            ("template", cfg.template.name().to_owned()),
            ("records", log.records.to_string()),
            ("violations", log.violations.to_string()),
            ("tracked_files", g.tracked_files().to_string()),
            ("contents_hashed", stats.measurements.to_string()),
            ("cache_hits", stats.cache_hits.to_string()),
            ("jobs_pending", g.pending_jobs().to_string()),
            ("jobs_failed", stats.jobs_failed.to_string()),
        ];
        lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }
}

pub fn format_pcrs(banks: &vigil_ima::list::PcrBanks) -> String {
    let mut s = String::new();
    for b in &banks.banks {
        for (i, v) in b.pcrs.iter().enumerate() {
            if v.iter().any(|&x| x != 0) {
                s.push_str(&format!("{} PCR-{i:02}: {}\n", b.algo, hex::encode(v)));
            }
        }
    }
    s
}
