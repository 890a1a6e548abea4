//! The FUSE filesystem: a passthrough over the source directory's descriptor, with the
//! enforcement hooks of [`crate::enforce`] at open, read, change and last close.

use std::cell::RefCell;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use vigil_guard::MetadataChange;

use crate::control::{self, ControlFile};
use crate::direct;
use crate::enforce::{Caller, ControlData, Enforcer};
use crate::inode::{Handle, HandleKind, HandleTable, InodeTable, Node, Stamp, ROOT_INO};
use crate::ioctl;
use crate::pool::Pool;
use crate::sys::{self, errno};

/// Largest READ/WRITE the kernel is asked to send.
pub const MAX_IO: u32 = 1 << 20;

/// The mount's readahead window: sixteen READs. The kernel sends the next window when
/// the reader reaches the current one, so a window must cover the time the reader takes
/// to be scheduled, allocate the next window's pages and send it, or the workers idle.
pub const READ_AHEAD: u32 = 16 * MAX_IO;

/// READs (and other background requests) the kernel may have in flight: two readahead
/// windows, and room for others. At the congestion threshold (3/4 of this) the kernel
/// skips asynchronous readahead.
const MAX_BACKGROUND: u16 = (2 * READ_AHEAD / MAX_IO + 16) as u16;

/// Files from this size on take long to measure (some 50 ms at 1.4 GB/s), more for
/// every byte: see [`Shared::measuring`].
const LARGE_FILE: u64 = 64 << 20;

/// Direct reads in flight at most: half a readahead window.
const DIRECT_IO_THREADS: usize = (READ_AHEAD / MAX_IO / 2) as usize;

/// State shared by the loop threads, the workers and the mount's owner.
pub struct Shared {
    pub inodes: InodeTable,
    pub handles: HandleTable,
    /// Workers for opens (which may measure), fsync and other slow requests.
    pub pool: Arc<Pool>,
    /// Workers for the opens and seals of large files ([`LARGE_FILE`]) whose measurement
    /// is not cached: measuring reads all of a file, which for a huge one takes minutes,
    /// so they must not hold up the opens of other files. As many workers as `pool`,
    /// taking the users' jobs in turn, so that one user's many opens of huge files make
    /// no other user's wait behind them all. Its queue has no bound: a loop thread,
    /// which hands it the jobs, must never wait for a place (every request of the
    /// mount would wait with it), and each job is a caller blocked in open(2).
    pub measuring: Arc<Pool>,
    /// Workers for READs, one per CPU by default: more would share the CPUs and finish
    /// a readahead window's READs all at once, late, instead of the first ones first
    /// (the reader needs the first to ask for the next window).
    pub readers: Arc<Pool>,
    /// Threads that read READs' data from the disk directly ([`crate::direct`]) before a
    /// READ worker verifies it: they wait on the disk, not the CPU, so there are enough
    /// of them to keep a readahead window's reads in flight at once.
    pub direct_io: Arc<Pool>,
    /// Buffers of finished direct reads, for the next ones (a fresh buffer's pages cost
    /// a fault each on first touch). A leaf lock.
    spare_buffers: Mutex<Vec<direct::AlignedBuf>>,
    /// One worker that reads the backing files of sequential readers ahead
    /// ([`crate::prefetch`]).
    pub prefetch: Arc<Pool>,
    pub enforce: Arc<Enforcer>,
    pub notifier: OnceLock<Notifier>,
    /// The FUSE device (a duplicate of the session's descriptor), for the notification
    /// fuser has no call for ([`sys::notify_prune`]).
    pub device: OnceLock<OwnedFd>,
    /// The kernel takes `FUSE_NOTIFY_PRUNE` (protocol 7.45 and later).
    prune: AtomicBool,
    /// Nodes (each holds a descriptor) beyond which the kernel is asked to forget
    /// some ([`Shared::relieve_descriptors`]); set while it is being asked.
    max_nodes: usize,
    forgetting: AtomicBool,
    me: Weak<Shared>,
    pub ttl: Duration,
    /// The daemon runs as root: new files are given to the requesting user.
    chown_new: bool,
    /// FUSE_POSIX_ACL was negotiated: the kernel enforces ACLs it reads with GETXATTR.
    posix_acl: AtomicBool,
    /// READs whose data was read from the disk directly ([`crate::direct`]).
    direct_reads: AtomicU64,
}

pub struct VigilFs {
    pub(crate) shared: Arc<Shared>,
}

thread_local! {
    static READ_BUF: RefCell<crate::direct::AlignedBuf> = RefCell::default();
}

/// The part of the file a READ of `size` bytes at `offset` reads: whole Merkle blocks
/// when it is verified with `check`.
fn read_span(check: Option<&crate::verity::ReadCheck>, offset: u64, size: u32) -> (u64, u64) {
    match check {
        Some(c) => c.span(offset, size as u64),
        None => (offset, offset.saturating_add(size as u64)),
    }
}

/// A READ's data read from the disk directly ([`Shared::read_direct`]): `n` bytes of
/// the file at `start`.
struct DirectRead {
    start: u64,
    n: usize,
    buf: direct::AlignedBuf,
}

/// A regular file found by name (see [`Shared::regular_at`]).
enum FileAt {
    Node(Arc<Node>),
    Fd(OwnedFd),
}

/// One directory entry of a listing snapshot.
pub struct Entry {
    name: Vec<u8>,
    kind: FileType,
    backing_ino: u64,
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// Write `data` at `offset`, as much of it as the backing file takes: an error after
/// some bytes landed (ENOSPC, EFBIG, EDQUOT) is a short write, as pwrite(2) reports it,
/// so the writer learns how much is in the file and gets the error on its next write.
fn write_at_most(file: &File, data: &[u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match file.write_at(&data[done..], offset + done as u64) {
            Ok(0) if done == 0 => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if done > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The access ACL's xattr.
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl VigilFs {
    pub fn new(
        root: std::os::fd::OwnedFd,
        enforce: Arc<Enforcer>,
        workers: usize,
        read_workers: usize,
        max_nodes: usize,
    ) -> io::Result<VigilFs> {
        let inodes = InodeTable::new(root)?;
        // SAFETY: trivial getter.
        let chown_new = unsafe { libc::geteuid() } == 0;
        Ok(VigilFs {
            shared: Arc::new_cyclic(|me| Shared {
                me: me.clone(),
                inodes,
                handles: HandleTable::new(),
                pool: Pool::new("vigil-fs-w", workers, Some(workers * 16)),
                measuring: Pool::new("vigil-fs-m", workers, None),
                readers: Pool::new("vigil-fs-r", read_workers, Some(MAX_BACKGROUND.into())),
                direct_io: Pool::new(
                    "vigil-fs-io",
                    DIRECT_IO_THREADS,
                    Some(MAX_BACKGROUND.into()),
                ),
                spare_buffers: Mutex::new(Vec::new()),
                prefetch: Pool::new("vigil-fs-ra", 1, Some(4)),
                enforce,
                notifier: OnceLock::new(),
                device: OnceLock::new(),
                prune: AtomicBool::new(false),
                max_nodes,
                forgetting: AtomicBool::new(false),
                ttl: Duration::from_secs(1),
                chown_new,
                posix_acl: AtomicBool::new(false),
                direct_reads: AtomicU64::new(0),
            }),
        })
    }
}

/// Unwrap a result, or answer the request `$reply` with the error and return.
macro_rules! tri {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $reply.error(e.into()),
        }
    };
}

impl Shared {
    /// Stop the worker pools, letting queued requests finish.
    pub fn shutdown_workers(&self) {
        // Direct reads hand their READs on to the READ workers: stop them first.
        self.direct_io.shutdown();
        self.readers.shutdown();
        self.prefetch.shutdown();
        self.measuring.shutdown();
        self.pool.shutdown();
    }

    /// The pool for a request on `node` that may measure it.
    fn pool_for(&self, node: &Node) -> &Pool {
        let large = node.kind == FileType::RegularFile
            && node.stat().is_ok_and(|st| st.st_size as u64 >= LARGE_FILE);
        if large {
            &self.measuring
        } else {
            &self.pool
        }
    }

    fn node(&self, ino: INodeNo) -> Result<Arc<Node>, Errno> {
        self.inodes.get(ino.0).ok_or(Errno::ESTALE)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        self.handles.get(fh.0).ok_or(Errno::EBADF)
    }

    /// Run `f` on the open directory `fh` and its listing, which is taken afresh when a
    /// read starts at offset 0 (opendir or rewinddir) and kept for the reads continuing it.
    fn with_dir_listing<R>(
        &self,
        fh: FileHandle,
        offset: u64,
        f: impl FnOnce(&Handle, &[Entry]) -> R,
    ) -> Result<R, Errno> {
        let h = self.handle(fh)?;
        let HandleKind::Dir(list) = &h.kind else {
            return Err(Errno::EBADF);
        };
        let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
        if offset == 0 {
            *list = match &h.node {
                Some(n) => self.list_dir(n).map_err(|e| errno(&e))?,
                None => Shared::control_listing(),
            };
        }
        Ok(f(&h, &list))
    }

    fn control_dir_attr(&self) -> FileAttr {
        let root = self.inodes.get(ROOT_INO).and_then(|n| n.stat().ok());
        let t = root
            .map(|st| sys::systime(st.st_mtime, st.st_mtime_nsec))
            .unwrap_or(UNIX_EPOCH);
        FileAttr {
            ino: INodeNo(control::DIR_INO),
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn control_file_attr(&self, f: ControlFile) -> FileAttr {
        // Size 0 as in securityfs: readers read to EOF (the handle is direct I/O).
        FileAttr {
            ino: INodeNo(f.ino()),
            kind: FileType::RegularFile,
            perm: f.perm(),
            nlink: 1,
            ..self.control_dir_attr()
        }
    }

    fn control_attr(&self, ino: u64) -> Option<FileAttr> {
        if ino == control::DIR_INO {
            Some(self.control_dir_attr())
        } else {
            ControlFile::from_ino(ino).map(|f| self.control_file_attr(f))
        }
    }

    /// Refuse any change naming the control directory.
    fn check_name(&self, parent: INodeNo, name: &OsStr) -> Result<(), Errno> {
        if parent.0 == control::DIR_INO
            || (parent.0 == ROOT_INO && name.as_bytes() == control::DIR_NAME.as_bytes())
        {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// Look `name` up in the backing directory of `parent`; one kernel lookup.
    fn do_lookup(&self, parent: &Arc<Node>, name: &[u8]) -> io::Result<(Arc<Node>, libc::stat)> {
        if is_dot(name) || name.contains(&b'/') {
            return Err(einval());
        }
        let c = CString::new(name).map_err(|_| einval())?;
        let fd = sys::openat(parent.fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0)
            .inspect_err(|e| self.out_of_descriptors(e))?;
        let st = sys::fstat(fd.as_fd())?;
        Ok(self.add_lookup(fd, st, parent, name))
    }

    /// An open failed for want of descriptors (nodes of files no longer in use hold
    /// them, say, once the processes that held many directories open have gone): let
    /// the kernel forget some, as when a lookup passes the budget. Else the failing
    /// lookups, which never reach the budget check, would keep the mount failing.
    fn out_of_descriptors(&self, e: &io::Error) {
        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            self.relieve_descriptors();
        }
    }

    /// Register one kernel lookup of `name` in `parent` (see [`InodeTable::lookup`]),
    /// keeping the number of nodes within budget; gives the node and `st`.
    fn add_lookup(
        &self,
        fd: OwnedFd,
        st: libc::stat,
        parent: &Arc<Node>,
        name: &[u8],
    ) -> (Arc<Node>, libc::stat) {
        let node = self.inodes.lookup(fd, &st, parent, OsStr::from_bytes(name));
        if self.inodes.len() > self.max_nodes {
            self.relieve_descriptors();
        }
        (node, st)
    }

    /// Too many nodes, each holding a descriptor of its backing file (past the limit
    /// of open files, lookups would fail with EMFILE): ask the kernel to forget some,
    /// down to 3/4 of the budget; FORGET then closes their descriptors. From a thread of
    /// its own, as a notification must not be sent from a request handler (the kernel
    /// may wait on that very request).
    fn relieve_descriptors(&self) {
        let Some(s) = self.me.upgrade() else { return };
        if self.forgetting.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("vigil-fs-forget".into())
            .spawn(move || {
                let target = s.max_nodes / 4 * 3;
                if !s.forgets_directories() || s.prune_unused(target).is_err() {
                    s.prune.store(false, Ordering::Release);
                    s.invalidate_unused_files(target);
                }
                s.forgetting.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.forgetting.store(false, Ordering::Release);
        }
    }

    /// The `.vigil/status` lines on the descriptors held for the kernel's nodes and
    /// handles, and on how READs were read.
    fn node_status(&self) -> String {
        let directories = if self.forgets_directories() {
            "yes"
        } else {
            "no"
        };
        let (file_handles, descriptors) = self.handles.files();
        format!(
            "nodes: {}\nnode_budget: {}\nforgets_directories: {directories}\n\
             file_handles: {file_handles}\nfile_handle_descriptors: {descriptors}\n\
             direct_reads: {}\n",
            self.inodes.len(),
            self.max_nodes,
            self.direct_reads.load(Ordering::Relaxed),
        )
    }

    /// Whether unused directories are forgotten too ([`Self::prune_unused`]).
    pub fn forgets_directories(&self) -> bool {
        self.prune.load(Ordering::Acquire) && self.device.get().is_some()
    }

    /// Have the kernel prune unused nodes, directories included, until the table is
    /// down to `target`. The kernel keeps whatever is in use — an open file, a working
    /// directory, a mount point, a directory with cached children (it goes with its
    /// last child) — so any unused node may be named.
    fn prune_unused(&self, target: usize) -> io::Result<()> {
        const BATCH: usize = 512;
        let device = self.device.get().ok_or(io::ErrorKind::NotConnected)?;
        let nodes = self.inodes.unused();
        for batch in nodes.chunks(BATCH) {
            if self.inodes.len() <= target {
                break;
            }
            let ids: Vec<u64> = batch.iter().map(|n| n.ino).collect();
            sys::notify_prune(device.as_fd(), &ids)?;
            // The loop threads take the FORGETs the pruning queued before the table's
            // size is looked at again.
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// [`Self::prune_unused`] for kernels without `FUSE_NOTIFY_PRUNE`: drop the dentries
    /// of unused files by name (`FUSE_NOTIFY_INVAL_ENTRY`), which the kernel does even
    /// where they are in use. So directories are left alone (one may be a process's
    /// working directory, whose getcwd would fail while its dentry is dropped), and so
    /// are files something is mounted on (dropping the dentry detaches the mounts on it;
    /// only this mount namespace's are known).
    fn invalidate_unused_files(&self, target: usize) {
        let Some(n) = self.notifier.get() else { return };
        let excess = self.inodes.len().saturating_sub(target);
        let mounted = self.mount_points_within();
        let files = self.inodes.unused().into_iter();
        for node in files.filter(|n| n.kind != FileType::Directory).take(excess) {
            if !mounted.is_empty() && mounted.contains(&self.enforce.path_of(&node)) {
                continue;
            }
            if let Some((parent, name)) = node.entry() {
                let _ = n.inval_entry(INodeNo(parent), &name);
            }
        }
    }

    /// Create `name` in `parent` with `make`, give it to the requesting user, and answer
    /// with its entry (mknod, mkdir, symlink).
    fn make_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(&Node, &CString) -> io::Result<()>,
    ) {
        tri!(reply, self.check_name(parent, name));
        let p = tri!(reply, self.node(parent));
        let c = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        let r = make(&p, &c).and_then(|()| self.new_entry(&p, &c, req));
        self.entry(reply, r);
    }

    fn entry(&self, reply: ReplyEntry, r: io::Result<(Arc<Node>, libc::stat)>) {
        match r {
            Ok((node, st)) => reply.entry(&self.ttl, &sys::to_attr(node.ino, &st), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Take a just-created entry: give it to the requesting user (the daemon creates as
    /// root), and register one kernel lookup of it.
    fn new_entry(
        &self,
        parent: &Arc<Node>,
        name: &CString,
        req: &Request,
    ) -> io::Result<(Arc<Node>, libc::stat)> {
        let fd = sys::openat(parent.fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let mut st = sys::fstat(fd.as_fd())?;
        if self.chown_new && (req.uid() != 0 || req.gid() != 0) {
            // In a set-group-ID directory the group comes from the directory.
            let gid = if parent.stat()?.st_mode & libc::S_ISGID != 0 {
                None
            } else {
                Some(req.gid())
            };
            sys::chown_fd(fd.as_fd(), Some(req.uid()), gid)?;
            // chown cleared set-user-ID and set-group-ID of a non-directory; the creator
            // asked for them (the kernel already dropped set-group-ID where the creator
            // may not have it), so they are put back, as a native creation keeps them.
            let kept = st.st_mode & (libc::S_ISUID | libc::S_ISGID);
            if kept != 0 && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                sys::chmod_fd(fd.as_fd(), st.st_mode & 0o7777)?;
            }
            st = sys::fstat(fd.as_fd())?;
        }
        Ok(self.add_lookup(fd, st, parent, name.as_bytes()))
    }

    /// Record a change made through the mount (inner invalidation only): the node's
    /// generation moves on (so handles opened before stop verifying against the old
    /// tree) and the kernel's cached pages are not kept at the next open.
    fn changed(&self, node: &Node) {
        node.state.bump();
        *node.state.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A metadata change through the mount (begun with [`Enforcer::change_metadata`])
    /// is done: EVM's HMAC follows it (`evm`, from the check before it), then the
    /// change ends in the guard (the new ctime, HMAC write included, is the mount's
    /// own; the measurement is dropped), and the kernel's cached pages go at the next
    /// open.
    fn metadata_changed(&self, node: &Node, evm: Option<OwnedFd>, change: Option<MetadataChange>) {
        self.enforce.metadata_changed(node, evm);
        drop(change);
        self.changed(node);
    }

    fn list_dir(&self, node: &Node) -> io::Result<Vec<Entry>> {
        let mut stream = sys::DirStream::open(node.fd())?;
        let mut out = Vec::new();
        let mut off = 0i64;
        let is_root = node.ino == ROOT_INO;
        while let Some(e) = stream.next_at(off)? {
            off = e.next_off;
            if is_root && e.name == control::DIR_NAME.as_bytes() {
                continue;
            }
            out.push(Entry {
                kind: sys::dtype_kind(e.dtype),
                backing_ino: e.ino,
                name: e.name,
            });
        }
        if is_root {
            out.push(Entry {
                name: control::DIR_NAME.as_bytes().to_vec(),
                kind: FileType::Directory,
                backing_ino: 0,
            });
        }
        Ok(out)
    }

    fn control_listing() -> Vec<Entry> {
        let mut v = vec![
            Entry {
                name: b".".to_vec(),
                kind: FileType::Directory,
                backing_ino: 0,
            },
            Entry {
                name: b"..".to_vec(),
                kind: FileType::Directory,
                backing_ino: 0,
            },
        ];
        v.extend(ControlFile::ALL.iter().map(|f| Entry {
            name: f.name().as_bytes().to_vec(),
            kind: FileType::RegularFile,
            backing_ino: 0,
        }));
        v
    }

    /// Node id to show for a listing entry: the id a lookup of it gives.
    fn entry_ino(&self, dir: &Node, e: &Entry) -> u64 {
        if e.name == control::DIR_NAME.as_bytes() && dir.ino == ROOT_INO {
            return control::DIR_INO;
        }
        if e.name == b"." {
            return dir.ino;
        }
        // The same mapping as lookups use. (A mount point's entry names the directory
        // it covers, as a native listing does.)
        self.inodes.id_of((dir.key.0, e.backing_ino))
    }

    fn open_file(
        &self,
        node: Arc<Node>,
        flags: i32,
        who: Caller,
        created: bool,
        known: Option<vigil_guard::Identified>,
    ) -> Result<(u64, FopenFlags), Errno> {
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        // Never O_APPEND: WRITEs go to the offset the kernel chose (it places appends at
        // its cached size; see `write`), and a handle that was opened O_APPEND also
        // carries page-cache writebacks of shared mappings, RWF_NOAPPEND writes and the
        // writes made after `fcntl(F_SETFL)` cleared O_APPEND, which must land at their
        // own offsets. pwrite on an O_APPEND descriptor would append them.
        let oflags = flags
            & !(libc::O_CREAT
                | libc::O_EXCL
                | libc::O_NOCTTY
                | libc::O_DIRECT
                | libc::O_NOFOLLOW
                | libc::O_TRUNC
                | libc::O_APPEND);
        // The generation before measuring: a change through the mount from here on
        // (even one racing with the measurement) turns this handle's checks off.
        let opened_gen = node.state.generation();
        let reopen = |extra| sys::reopen(node.fd(), oflags | extra).map(File::from);
        let file = match writable {
            // An append-only file (`chattr +a`) opens for writing only with O_APPEND,
            // and then takes every write at its end, whatever offset the write names.
            true => match reopen(0) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) && flags & libc::O_APPEND != 0 => {
                    reopen(libc::O_APPEND)
                }
                r => r,
            }
            .map(Arc::new),
            false => node.state.reader(oflags, || reopen(0)),
        }
        .map_err(|e| {
            self.out_of_descriptors(&e);
            errno(&e)
        })?;
        let opened = self
            .enforce
            .open(&node, &file, flags, who, created, known)?;
        let mut attrs = opened.attrs;
        if flags & libc::O_TRUNC != 0 {
            self.drop_privileges_before_change(&node, who, false);
            // FUSE_ATOMIC_O_TRUNC: truncate once the open was allowed (an O_RDONLY
            // handle truncates through a descriptor of its own, as the kernel does).
            let m = self.enforce.modify(&node)?;
            self.changed(&node);
            let truncated = match acc {
                libc::O_RDONLY => {
                    sys::reopen(node.fd(), libc::O_WRONLY).and_then(|fd| File::from(fd).set_len(0))
                }
                _ => file.set_len(0),
            };
            self.changed(&node);
            m.done_at(node.fd());
            truncated.map_err(|e| errno(&e))?;
            attrs = self.enforce.attrs(&file)?;
        }
        // A read-only handle has nothing to flush (locks are the kernel's own): spare
        // the FLUSH round trip at every close.
        let mut fopen = if writable {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_NOFLUSH
        };
        // Keep the kernel's cached pages only if the backing file is what it was when
        // they were read (they were verified as they were served); otherwise the kernel
        // drops them at this open.
        {
            let now = Stamp::of(&attrs);
            let mut cached = node.state.cached.lock().unwrap_or_else(|e| e.into_inner());
            if *cached == Some(now) {
                fopen |= FopenFlags::FOPEN_KEEP_CACHE;
            }
            *cached = Some(now);
        }
        node.state.opens.fetch_add(1, Ordering::AcqRel);
        let fh = self.handles.insert(Handle {
            node: Some(node),
            kind: HandleKind::File(file, Default::default(), OnceLock::new()),
            writable,
            opened_gen,
            opened: Some(opened),
        });
        Ok((fh, fopen))
    }

    /// The backing file of `h` opened for direct reads (opened at the first call), if
    /// its file system reads directly.
    fn direct_file<'h>(&self, h: &'h Handle) -> Option<&'h File> {
        let (HandleKind::File(file, _, direct), Some(node)) = (&h.kind, &h.node) else {
            return None;
        };
        direct
            .get_or_init(|| node.state.direct(|| direct::open(file)))
            .as_deref()
    }

    /// The read check that applies to `h`'s READs now, and the node's generation it
    /// holds for: the handle's own while the file is unchanged through the mount since
    /// the open; after a change, that of the file's latest measurement once the file
    /// was measured again (the re-measurement after its last writer closed, or a later
    /// open's); none in between, while the content is the writers' to change.
    fn read_check(&self, h: &Handle) -> Option<(Arc<crate::verity::ReadCheck>, u64)> {
        let node = h.node.as_ref()?;
        // Read before the check is looked up: a change through the mount bumps the
        // generation before it changes the data.
        let generation = node.state.generation();
        let check = match generation == h.opened_gen {
            true => h.opened.as_ref()?.check.clone(),
            false => self.enforce.current_check(node),
        };
        check.map(|c| (c, generation))
    }

    /// Read a READ's data from the disk directly, if it is large, aligned and wholly
    /// absent from the page cache; [`Self::read_into`] then verifies and serves it.
    fn read_direct(&self, h: &Handle, offset: u64, size: u32) -> Option<DirectRead> {
        let (file, d) = (h.file()?, self.direct_file(h)?);
        let check = self.read_check(h);
        let check = check.as_ref().map(|(c, _)| &**c);
        // Past the measured size: left to read_into, which checks the file's size.
        if check.is_some_and(|c| offset.saturating_add(size as u64) > c.size()) {
            return None;
        }
        let (start, end) = read_span(check, offset, size);
        let len = (end - start) as usize;
        if len < direct::MIN_LEN
            || !start.is_multiple_of(direct::ALIGN as u64)
            || !direct::uncached(file, start, len)
        {
            return None;
        }
        let spare = self
            .spare_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut buf = spare.unwrap_or_default();
        match direct::read_at(d, buf.get(len.next_multiple_of(direct::ALIGN)), start) {
            Ok(n) => {
                self.direct_reads.fetch_add(1, Ordering::Relaxed);
                Some(DirectRead {
                    start,
                    n: n.min(len),
                    buf,
                })
            }
            // The page cache path tries again (and reports the error).
            Err(_) => {
                self.spare(buf);
                None
            }
        }
    }

    fn spare(&self, buf: direct::AlignedBuf) {
        let mut spare = self.spare_buffers.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < DIRECT_IO_THREADS {
            spare.push(buf);
        }
    }

    /// READ on a READ worker: `data` (read directly, if it was) and the rest read
    /// through the page cache, verified against the measurement's tree when the handle
    /// has one and the file has not been changed through the mount since it was opened.
    fn read_into(
        &self,
        h: &Handle,
        offset: u64,
        size: u32,
        reply: ReplyData,
        data: Option<DirectRead>,
    ) {
        let (Some(node), Some(file)) = (h.node.as_ref(), h.file()) else {
            return reply.error(Errno::EBADF);
        };
        let checked = self.read_check(h);
        let check = checked.as_ref().map(|(c, _)| &**c);
        // A handle that was verified, whose tree no longer fits (the file is written
        // through the mount) and for which no new measurement stands yet: its reads
        // cannot be checked, but a change behind the mount meanwhile still refuses them.
        let was_checked = h.opened.as_ref().is_some_and(|o| o.check.is_some());
        if check.is_none() && was_checked && self.enforce.changed_behind(node) {
            crate::enforce::audit(format_args!(
                "read {}: changed behind the mount while written through it: EIO",
                self.enforce.path_of(node).display()
            ));
            return reply.error(Errno::EIO);
        }
        // A write through the mount bumps the generation before it changes the data: a
        // mismatch seen after such a bump is that write, not tampering.
        let racing = || {
            checked
                .as_ref()
                .is_some_and(|(_, generation)| node.state.generation() != *generation)
        };
        let want_end = offset.saturating_add(size as u64);
        if let Some(c) = check.filter(|c| want_end > c.size() && offset < want_end) {
            // Beyond the measured size: anything the backing file has there now was
            // never measured.
            match sys::fstat(file.as_fd()) {
                Ok(st) if st.st_size as u64 == c.size() || racing() => {}
                Ok(st) => {
                    crate::enforce::audit(format_args!(
                        "read {}: file is {} bytes, measured {}: EIO",
                        self.enforce.path_of(node).display(),
                        st.st_size,
                        c.size()
                    ));
                    return reply.error(Errno::EIO);
                }
                Err(e) => return reply.error(errno(&e)),
            }
        }
        let (start, end) = read_span(check, offset, size);
        let len = (end - start) as usize;
        let serve = |buf: &mut [u8], mut n: usize| {
            while n < len {
                match file.read_at(&mut buf[n..len], start + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return reply.error(errno(&e)),
                }
            }
            if let Some((c, _)) = &checked {
                // The file ends before the measured size (truncated behind the mount):
                // the blocks that are gone are not served as an end of file either.
                if n < len && !racing() {
                    crate::enforce::audit(format_args!(
                        "read {}: file ends at {}, measured {}: EIO",
                        self.enforce.path_of(node).display(),
                        start + n as u64,
                        c.size()
                    ));
                    return reply.error(Errno::EIO);
                }
                if c.verify(start, &buf[..n]).is_err() && !racing() {
                    if let Err(e) = self.enforce.check_read(node, c, start, &buf[..n]) {
                        return reply.error(e);
                    }
                }
            }
            let from = ((offset.max(start) - start) as usize).min(n);
            let to = ((want_end.min(end) - start) as usize).clamp(from, n);
            reply.data(&buf[from..to]);
        };
        match data.filter(|d| d.start == start) {
            Some(mut d) => {
                serve(d.buf.get(len), d.n);
                self.spare(d.buf);
            }
            None => READ_BUF.with(|b| serve(b.borrow_mut().get(len), 0)),
        }
    }

    /// Before `who` writes, truncates or extends `node`: clear its set-user-ID and
    /// set-group-ID bits as the kernel would (setattr_should_drop_suidgid) unless `who`
    /// holds CAP_FSETID. FUSE's kernel side clears set-user-ID, and set-group-ID with
    /// group execute, before writes and truncates (`kernel_cleared`), but not before
    /// an open's O_TRUNC; set-group-ID without group execute goes only if `who` is not
    /// in the file's group.
    fn drop_privileges_before_change(&self, node: &Node, who: Caller, kernel_cleared: bool) {
        if who.pid == 0 {
            return;
        }
        let Ok(st) = node.stat() else { return };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return;
        }
        let sgid = st.st_mode & (libc::S_ISGID | libc::S_IXGRP);
        let mut drop = 0;
        if !kernel_cleared {
            drop |= st.st_mode & libc::S_ISUID;
            if sgid == libc::S_ISGID | libc::S_IXGRP {
                drop |= libc::S_ISGID;
            }
        }
        if sgid == libc::S_ISGID
            && !(who.gid == st.st_gid || groups_of(who.pid).contains(&st.st_gid))
        {
            drop |= libc::S_ISGID;
        }
        if drop == 0 || has_capability(who.pid, who.uid, CAP_FSETID) {
            return;
        }
        let mode = st.st_mode & 0o7777 & !drop;
        if self
            .do_setattr(node, Some(mode), None, None, None, None, None, None)
            .is_ok()
        {
            // The kernel's cached mode is stale now (a WRITE's reply carries no
            // attributes); offset -1 drops the attributes only, taking no page lock.
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(INodeNo(node.ino), -1, 0);
            }
        }
    }

    fn release_handle(&self, fh: FileHandle) {
        let Some(h) = self.handles.remove(fh.0) else {
            return;
        };
        let Some(node) = h.node.as_ref() else { return };
        node.state.opens.fetch_sub(1, Ordering::AcqRel);
        if let Some(o) = &h.opened {
            self.enforce.release(node, o);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        node: &Node,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<libc::stat, Errno> {
        if let Some(size) = size {
            let m = self.enforce.modify(node)?;
            self.changed(node);
            let handle = fh.and_then(|fh| self.handles.get(fh.0));
            let res = match handle
                .as_ref()
                .and_then(|h| h.file().filter(|_| h.writable))
            {
                Some(f) => f.set_len(size),
                None => sys::reopen(node.fd(), libc::O_WRONLY)
                    .and_then(|fd| File::from(fd).set_len(size)),
            };
            self.changed(node);
            m.done_at(node.fd());
            res.map_err(|e| errno(&e))?;
        }
        let owner_or_mode = mode.is_some() || uid.is_some() || gid.is_some();
        if owner_or_mode || atime.is_some() || mtime.is_some() {
            let evm = match owner_or_mode {
                true => self.enforce.protect_attrs(node, mode, uid, gid)?,
                false => None,
            };
            let change = self.enforce.change_metadata(node);
            let changed = Self::change_attrs(node, mode, uid, gid, atime, mtime);
            // Also after a failure part-way (mode set, owner refused): what did change
            // is covered again and invalidates.
            self.metadata_changed(node, evm, change);
            changed?;
        }
        node.stat().map_err(|e| errno(&e))
    }

    /// Set what SETATTR asks for besides the size.
    fn change_attrs(
        node: &Node,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<(), Errno> {
        if let Some(mode) = mode {
            if node.kind == FileType::Symlink {
                return Err(Errno::EOPNOTSUPP);
            }
            sys::chmod_fd(node.fd(), mode & 0o7777).map_err(|e| errno(&e))?;
        }
        if uid.is_some() || gid.is_some() {
            sys::chown_fd(node.fd(), uid, gid).map_err(|e| errno(&e))?;
        }
        if atime.is_some() || mtime.is_some() {
            let times = [sys::timespec(atime), sys::timespec(mtime)];
            if node.kind == FileType::Symlink {
                // The link itself (utimensat(AT_SYMLINK_NOFOLLOW)): never followed.
                sys::utimens_link(node.fd(), &times).map_err(|e| errno(&e))?;
            } else {
                sys::utimens_fd(node.fd(), &times).map_err(|e| errno(&e))?;
            }
        }
        Ok(())
    }

    /// After an access ACL was set by `req`: clear set-group-ID unless the caller is in
    /// the file's group or is root, as the kernel's `posix_acl_update_mode` does (the
    /// daemon set it as root, so the backing filesystem kept the bit).
    fn acl_kill_sgid(&self, node: &Node, req: &Request) -> io::Result<()> {
        let st = node.stat()?;
        if st.st_mode & libc::S_ISGID == 0
            || req.uid() == 0
            || req.gid() == st.st_gid
            || groups_of(req.pid()).contains(&st.st_gid)
        {
            return Ok(());
        }
        sys::chmod_fd(node.fd(), st.st_mode & 0o7777 & !libc::S_ISGID)
    }

    /// The regular file `name` in `dir`, if it is one, as an unlink or rename is about
    /// to find it: its node (the kernel holds the entries it unlinks or renames, so it
    /// is normally in the table), else a descriptor.
    fn regular_at(&self, dir: &Node, name: &std::ffi::CStr) -> Option<FileAt> {
        let st = sys::statat(dir.fd(), name, libc::AT_SYMLINK_NOFOLLOW).ok()?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        match self
            .inodes
            .peek_key((st.st_dev, st.st_ino))
            .and_then(|i| self.inodes.get(i))
        {
            Some(n) => Some(FileAt::Node(n)),
            None => sys::openat(dir.fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                .ok()
                .map(FileAt::Fd),
        }
    }

    /// Whether `file` is sealed: its names and content stay (it may not be unlinked,
    /// moved away, replaced or exchanged).
    fn sealed(&self, file: Option<&FileAt>) -> bool {
        match file {
            Some(FileAt::Node(n)) => self.enforce.sealed(n),
            Some(FileAt::Fd(fd)) => self.enforce.sealed_fd(fd.as_fd()),
            None => false,
        }
    }

    /// A link of `file` is about to be made, moved or removed through the mount: its
    /// ctime moves on, its content does not. Keep the returned guard until the change
    /// is done, and drop it before the reply (the caller's next open, served by another
    /// thread, may otherwise find the old measurement).
    fn change_links(&self, file: &FileAt) -> Option<MetadataChange> {
        match file {
            FileAt::Node(n) => self.enforce.change_metadata(n),
            FileAt::Fd(fd) => self.enforce.change_metadata_fd(fd.as_fd()),
        }
    }

    /// Mount points below this mount (in this mount namespace).
    fn mount_points_within(&self) -> std::collections::HashSet<std::path::PathBuf> {
        let mnt = self.enforce.mountpoint();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        vigil_ima::mountinfo::parse(&info)
            .map(|m| m.mount_point)
            .filter(|p| p != mnt && p.starts_with(mnt))
            .collect()
    }

    /// The entry `name` in `dir` was just renamed there: its node (if the kernel knows
    /// it) takes the new place, as the kernel moves its dentry without a new lookup.
    fn renamed(&self, dir: &Arc<Node>, name: &OsStr) {
        let Ok(c) = sys::cstr(name) else { return };
        if let Ok(st) = sys::statat(dir.fd(), &c, libc::AT_SYMLINK_NOFOLLOW) {
            let key = (st.st_dev, st.st_ino);
            if let Some(n) = self.inodes.peek_key(key).and_then(|i| self.inodes.get(i)) {
                n.set_link(dir, name);
            }
        }
    }

    fn xattr_path(&self, node: &Node) -> Result<CString, Errno> {
        if node.kind == FileType::Symlink {
            // Only the link itself could carry them, and /proc cannot name it.
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(sys::proc_path(node.fd().as_raw_fd()))
    }

    fn ioctl_seal(&self, who: Caller, node: &Node, cmd: u32) -> Result<i32, Errno> {
        let uid = who.uid;
        if node.kind != FileType::RegularFile {
            // Only regular files are sealed.
            return Err(Errno::EINVAL);
        }
        let st = node.stat().map_err(|e| errno(&e))?;
        match cmd {
            ioctl::SEAL => {
                if uid != 0 && uid != st.st_uid {
                    return Err(Errno::EPERM);
                }
                let file =
                    File::from(sys::reopen(node.fd(), libc::O_RDONLY).map_err(|e| errno(&e))?);
                self.enforce.seal(node, &file, who)?;
                Ok(0)
            }
            ioctl::UNSEAL => {
                self.enforce.unseal(node, uid)?;
                Ok(0)
            }
            ioctl::STATUS => {
                let (writers, sealed) = self.enforce.status(node);
                Ok((writers.min(ioctl::STATUS_SEALED as u32 - 1)) as i32
                    | if sealed { ioctl::STATUS_SEALED } else { 0 })
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// The inode-flag ioctls (`lsattr`/`chattr`: FS_IOC_GETFLAGS/SETFLAGS; `xfs_io`:
/// FS_IOC_FSGETXATTR/FSSETXATTR). The kernel's VFS answers them for every file system
/// and asks FUSE only after its own checks; it sends them on a handle it opens for the
/// purpose (a read-only FUSE OPEN, measured like any other).
#[derive(Clone, Copy)]
struct FileAttrIoctl {
    /// The ioctl that reads the attribute.
    get: u32,
    /// The one that sets it.
    set: u32,
    /// The size of its argument.
    size: usize,
    /// The bits of its first word that only CAP_LINUX_IMMUTABLE may change (immutable,
    /// append-only).
    guarded: u32,
}

impl FileAttrIoctl {
    const FLAGS: FileAttrIoctl = FileAttrIoctl {
        get: libc::FS_IOC_GETFLAGS as u32,
        set: libc::FS_IOC_SETFLAGS as u32,
        // The kernel passes an int, whatever the ioctl's number says.
        size: 4,
        guarded: 0x10 | 0x20, // FS_IMMUTABLE_FL | FS_APPEND_FL
    };
    const XATTR: FileAttrIoctl = FileAttrIoctl {
        get: libc::_IOR::<[u8; 28]>(b'X' as u32, 31) as u32,
        set: libc::_IOW::<[u8; 28]>(b'X' as u32, 32) as u32,
        size: 28,            // struct fsxattr
        guarded: 0x8 | 0x10, // FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND
    };

    fn of(cmd: u32) -> Option<FileAttrIoctl> {
        [Self::FLAGS, Self::XATTR]
            .into_iter()
            .find(|a| cmd == a.get || cmd == a.set)
    }
}

impl Shared {
    /// A [`FileAttrIoctl`] on `node`, made on its backing file. The kernel checked a
    /// change already (owner or CAP_FOWNER, CAP_LINUX_IMMUTABLE for the guarded bits);
    /// the daemon, which may do anything, checks again against the backing file.
    fn file_attr_ioctl(
        &self,
        who: Caller,
        node: &Node,
        cmd: u32,
        input: &[u8],
        out_size: u32,
    ) -> Result<Vec<u8>, Errno> {
        let attr = FileAttrIoctl::of(cmd).ok_or(Errno::ENOTTY)?;
        let flags = match node.kind {
            FileType::RegularFile => libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            FileType::Directory => libc::O_RDONLY | libc::O_DIRECTORY,
            _ => return Err(Errno::ENOTTY),
        };
        let fd = sys::reopen(node.fd(), flags).map_err(|e| errno(&e))?;
        let mut now = vec![0u8; attr.size];
        sys::ioctl_buf(fd.as_fd(), attr.get, &mut now).map_err(|e| errno(&e))?;
        if cmd == attr.get {
            now.truncate(out_size as usize);
            return Ok(now);
        }
        let mut new = input.get(..attr.size).ok_or(Errno::EINVAL)?.to_vec();
        let owner = node.stat().map_err(|e| errno(&e))?.st_uid;
        if who.uid != owner && !has_capability(who.pid, who.uid, CAP_FOWNER) {
            return Err(Errno::EPERM);
        }
        let first_word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        if (first_word(&now) ^ first_word(&new)) & attr.guarded != 0
            && !has_capability(who.pid, who.uid, CAP_LINUX_IMMUTABLE)
        {
            return Err(Errno::EPERM);
        }
        // The ctime changes: a change through the mount, not behind it.
        let change = self.enforce.change_metadata(node);
        let r = sys::ioctl_buf(fd.as_fd(), attr.set, &mut new);
        self.metadata_changed(node, None, change);
        r.map(|()| Vec::new()).map_err(|e| errno(&e))
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32, r: io::Result<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

enum Xattr {
    Size(u32),
    Data(Vec<u8>),
}

/// GETXATTR as the kernel asks it: the value's size when `size` is 0, else the value
/// if it fits in `size` bytes (ERANGE otherwise); one system call either way.
fn get_xattr(path: &CString, name: &OsStr, size: u32) -> io::Result<Xattr> {
    let name = sys::cstr(name)?;
    let mut buf = vec![0u8; size as usize];
    let ptr = if size == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: `ptr` is null with length 0, or describes `buf`.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), ptr, buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if size == 0 {
        return Ok(Xattr::Size(n as u32));
    }
    buf.truncate(n as usize);
    Ok(Xattr::Data(buf))
}

/// The supplementary groups of process `pid` (empty if it cannot be read).
fn groups_of(pid: u32) -> Vec<u32> {
    sys::proc_status(pid, "Groups:")
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

const CAP_FOWNER: u32 = 3;
const CAP_FSETID: u32 = 4;
const CAP_LINUX_IMMUTABLE: u32 = 9;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether process `pid` has capability `cap` in effect; if its status cannot be read,
/// whether `uid` is root.
fn has_capability(pid: u32, uid: u32, cap: u32) -> bool {
    sys::proc_status(pid, "CapEff:")
        .and_then(|caps| u64::from_str_radix(&caps, 16).ok())
        .map_or(uid == 0, |caps| caps >> cap & 1 == 1)
}

/// The `trusted.*` names removed from a `listxattr` list (NUL-terminated names), as
/// ext4 lists them to processes without CAP_SYS_ADMIN.
fn without_trusted(list: Vec<u8>) -> Vec<u8> {
    list.split_inclusive(|&b| b == 0)
        .filter(|name| !name.starts_with(b"trusted."))
        .flatten()
        .copied()
        .collect()
}

fn list_xattr(path: &CString) -> io::Result<Vec<u8>> {
    loop {
        // SAFETY: size query.
        let n = unsafe { libc::listxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; n as usize];
        // SAFETY: buffer pointer/length describe `buf`.
        let m = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if m < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(m as usize);
        return Ok(buf);
    }
}

impl Filesystem for VigilFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config
            .set_max_readahead(MAX_IO)
            .or_else(|max| config.set_max_readahead(max));
        let _ = config.set_max_background(MAX_BACKGROUND);
        // No FUSE_WRITEBACK_CACHE: kernels that cache FUSE data in large folios
        // (up to min(max_write, max_pages)) do so only without it.
        // No FUSE_EXPORT_SUPPORT: a file handle names a node id, and a node the kernel
        // has forgotten cannot be found again from its id (LOOKUP of "."), so handles
        // would go stale (ESTALE) once the kernel drops its inode. FUSE_NO_EXPORT_SUPPORT
        // makes name_to_handle_at fail with EOPNOTSUPP at once instead (Linux 6.10+).
        //
        // FUSE_POSIX_ACL: the kernel enforces the backing files' POSIX ACLs (with
        // default_permissions), reading them with GETXATTR and caching them until the
        // attributes are refreshed. It then leaves the umask to the filesystem
        // (FUSE_DONT_MASK, also asked for in case the kernel has only that): each
        // creation runs under the caller's umask, so the backing filesystem applies the
        // directory's default ACL or the umask, as it does natively. Setting an access
        // ACL updates the mode in the backing filesystem itself.
        //
        // FUSE_ATOMIC_O_TRUNC: O_TRUNC arrives in OPEN, so the open is judged as the
        // write it is (IMA's MAY_WRITE: a signed file refuses it, a sealed one is
        // EPERM) before anything is truncated. Without it the kernel opens with the
        // access mode alone and truncates with a SETATTR that names no handle, so an
        // O_RDONLY|O_TRUNC open would pass as a read and truncate(2) the file.
        //
        // FUSE_ABORT_ERROR: after an abort the device reads ECONNABORTED, not the
        // ENODEV of an unmount, so the daemon tells the two apart (see `Mount::run`).
        let wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_ABORT_ERROR
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DONT_MASK
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_NO_EXPORT_SUPPORT;
        for flag in wanted.iter() {
            let _ = config.add_capabilities(flag);
        }
        let abi = config.kernel_abi();
        if (abi.0, abi.1) >= (7, 45) {
            self.shared.prune.store(true, Ordering::Release);
        }
        if config.capabilities().contains(InitFlags::FUSE_POSIX_ACL) {
            self.shared.posix_acl.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// At the end of the session (fuser calls it after an abort too). The owed
    /// re-measurements are made afterwards, by `Mount::run`.
    fn destroy(&mut self) {
        self.shared.enforce.connection_ended();
        self.shared.shutdown_workers();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = &self.shared;
        if parent.0 == ROOT_INO && name.as_bytes() == control::DIR_NAME.as_bytes() {
            return reply.entry(&s.ttl, &s.control_dir_attr(), Generation(0));
        }
        if parent.0 == control::DIR_INO {
            return match ControlFile::from_name(name.as_bytes()) {
                Some(f) => reply.entry(&s.ttl, &s.control_file_attr(f), Generation(0)),
                None => reply.error(Errno::ENOENT),
            };
        }
        let p = tri!(reply, s.node(parent));
        s.entry(reply, s.do_lookup(&p, name.as_bytes()));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let Some(node) = self.shared.inodes.forget(ino.0, nlookup) else {
            return;
        };
        // The kernel forgets an inode only once nothing has it open or mapped; if the
        // backing file has no links left either, no open can reach it again, and the
        // guard drops its state, tree and seal. Done here rather than queued (a full
        // queue would drop the job for good): a map removal and at most one unlink
        // in the state directory, never on this mount.
        let Some(id) = node.ident.get() else {
            return;
        };
        if node.kind == FileType::RegularFile && node.stat().is_ok_and(|st| st.st_nlink == 0) {
            self.shared.enforce.forget_deleted(id);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = &self.shared;
        if let Some(a) = s.control_attr(ino.0) {
            return reply.attr(&s.ttl, &a);
        }
        let node = tri!(reply, s.node(ino));
        match node.stat() {
            Ok(st) => reply.attr(&s.ttl, &sys::to_attr(node.ino, &st)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let s = &self.shared;
        if control::is_control(ino.0) {
            return reply.error(Errno::EACCES);
        }
        let node = tri!(reply, s.node(ino));
        if size.is_some() {
            s.drop_privileges_before_change(&node, caller(req), true);
        }
        match s.do_setattr(&node, mode, uid, gid, size, atime, mtime, fh) {
            Ok(st) => reply.attr(&s.ttl, &sys::to_attr(node.ino, &st)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let node = tri!(reply, self.shared.node(ino));
        match sys::readlink_fd(node.fd()) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.shared.make_entry(req, parent, name, reply, |p, c| {
            sys::with_umask(umask, mode, |mode| {
                sys::mknodat(p.fd(), c, mode, rdev as libc::dev_t)
            })
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.shared.make_entry(req, parent, name, reply, |p, c| {
            sys::with_umask(umask, mode & 0o7777, |mode| sys::mkdirat(p.fd(), c, mode))
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let s = &self.shared;
        tri!(reply, s.check_name(parent, name));
        let p = tri!(reply, s.node(parent));
        let c = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        // Removing a sealed file's name would let other content take it.
        let file = s.regular_at(&p, &c);
        if s.sealed(file.as_ref()) {
            return reply.error(Errno::EPERM);
        }
        let change = file.as_ref().and_then(|f| s.change_links(f));
        let unlinked = sys::unlinkat(p.fd(), &c, 0);
        drop(change);
        match unlinked {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let s = &self.shared;
        tri!(reply, s.check_name(parent, name));
        let p = tri!(reply, s.node(parent));
        let c = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        match sys::unlinkat(p.fd(), &c, libc::AT_REMOVEDIR) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let t = tri!(reply, sys::cstr(target.as_os_str()).map_err(|e| errno(&e)));
        self.shared
            .make_entry(req, parent, link_name, reply, |p, c| {
                sys::symlinkat(&t, p.fd(), c)
            });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let s = &self.shared;
        tri!(reply, s.check_name(parent, name));
        tri!(reply, s.check_name(newparent, newname));
        let p = tri!(reply, s.node(parent));
        let np = tri!(reply, s.node(newparent));
        let a = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        let b = tri!(reply, sys::cstr(newname).map_err(|e| errno(&e)));
        // A sealed file keeps its names and content: it may not be moved away (which
        // frees its name for other content), replaced by a rename over it, or swapped
        // with RENAME_EXCHANGE from either side.
        let files = [s.regular_at(&p, &a), s.regular_at(&np, &b)];
        if files.iter().any(|f| s.sealed(f.as_ref())) {
            return reply.error(Errno::EPERM);
        }
        // Both files (the one moved, and the one replaced or exchanged) have their
        // links changed.
        let changes: Vec<_> = files
            .iter()
            .flatten()
            .filter_map(|f| s.change_links(f))
            .collect();
        let renamed = sys::renameat2(p.fd(), &a, np.fd(), &b, flags.bits());
        drop(changes);
        match renamed {
            Ok(()) => {
                s.renamed(&np, newname);
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    s.renamed(&p, name);
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let s = &self.shared;
        tri!(reply, s.check_name(newparent, newname));
        if control::is_control(ino.0) {
            return reply.error(Errno::EACCES);
        }
        let node = tri!(reply, s.node(ino));
        let np = tri!(reply, s.node(newparent));
        let c = tri!(reply, sys::cstr(newname).map_err(|e| errno(&e)));
        let change = (node.kind == FileType::RegularFile)
            .then(|| s.enforce.change_metadata(&node))
            .flatten();
        let linked = sys::link_fd(node.fd(), np.fd(), &c);
        drop(change);
        s.entry(
            reply,
            linked.and_then(|()| s.do_lookup(&np, newname.as_bytes())),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.shared;
        if let Some(f) = ControlFile::from_ino(ino.0) {
            if flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
                return reply.error(Errno::EACCES);
            }
            let mut data = s.enforce.open_control(f);
            if let (ControlFile::Status, ControlData::Bytes(text)) = (f, &mut data) {
                text.extend_from_slice(s.node_status().as_bytes());
            }
            let fh = s.handles.insert(Handle {
                node: None,
                kind: HandleKind::Control(data),
                writable: false,
                opened_gen: 0,
                opened: None,
            });
            return reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
        }
        let node = tri!(reply, s.node(ino));
        let who = caller(req);
        let flags = flags.0;
        let answer = move |s: &Shared, node, reply: ReplyOpen, known| match s
            .open_file(node, flags, who, false, known)
        {
            Ok((fh, fl)) => reply.opened(FileHandle(fh), fl),
            Err(e) => reply.error(e),
        };
        // Reopening a measured, unchanged file is the common case and costs a few system
        // calls: answered here, it spares the two thread switches of a hand-off.
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_TRUNC == 0;
        if read_only {
            if let Some(known) = s.enforce.open_is_cached(&node) {
                return answer(s, node, reply, Some(known));
            }
        }
        let shared = self.shared.clone();
        s.pool_for(&node)
            .run_for(who.uid, move || answer(&shared, node, reply, None));
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = &self.shared;
        let h = tri!(reply, s.handle(fh));
        if let HandleKind::Control(data) = &h.kind {
            return match s.enforce.read_control(data, offset, size) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            };
        }
        // Large READs of a file that can be read directly go by the I/O threads.
        let direct = size as usize >= direct::MIN_LEN && s.direct_file(&h).is_some();
        if let HandleKind::File(_, stream, _) = &h.kind {
            // Only a file read through the page cache gains from filling it ahead.
            let ahead = stream.read(offset, size, MAX_IO);
            if let Some(r) = ahead.filter(|_| !direct) {
                let h = h.clone();
                s.prefetch.try_run(move || {
                    if let Some(f) = h.file() {
                        crate::prefetch::fetch(f, r)
                    }
                });
            }
        }
        let shared = self.shared.clone();
        if direct {
            s.direct_io.run(move || {
                let data = shared.read_direct(&h, offset, size);
                let s = shared.clone();
                shared
                    .readers
                    .run(move || s.read_into(&h, offset, size, reply, data));
            });
        } else {
            s.readers
                .run(move || shared.read_into(&h, offset, size, reply, None));
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let s = &self.shared;
        let h = tri!(reply, s.handle(fh));
        let (Some(node), Some(file)) = (h.node.as_ref(), h.file()) else {
            return reply.error(Errno::EBADF);
        };
        // The kernel placed the write: an O_APPEND descriptor's write, or a
        // pwritev2(RWF_APPEND), comes at the kernel's cached size; RWF_NOAPPEND, a write
        // after fcntl(F_SETFL) cleared O_APPEND and the writeback of a shared mapping
        // come at their own offsets. `flags` (the file's status flags) cannot tell these
        // apart, so every WRITE goes exactly where the kernel sent it. (A file grown
        // behind the mount is appended to at the size the kernel has cached until its
        // attributes expire: those bytes were never measured, and the protocol has no
        // size check per write without a writeback cache.)
        // Page-cache writeback arrives here too, on some writable handle of the file: it
        // is counted like any other write (with no writer to judge: pid 0).
        if !write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            s.drop_privileges_before_change(node, caller(req), true);
        }
        let m = tri!(reply, s.enforce.modify(node));
        // Bumped before the data changes (readers' checks stand down) and after (the
        // page cache is not kept at the next open).
        s.changed(node);
        // Page-cache writeback (a shared mapping's stores) has no writer to take a short
        // count, and the kernel would drop the rest silently: only an error reaches
        // msync/fsync.
        let r = if write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            file.write_all_at(data, offset).map(|()| data.len())
        } else {
            write_at_most(file, data, offset)
        };
        s.changed(node);
        m.done_at(node.fd());
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let h = tri!(reply, self.shared.handle(fh));
        match h.file().map(|f| sys::close_dup(f.as_fd())) {
            Some(Err(e)) => reply.error(errno(&e)),
            _ => reply.ok(),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
        self.shared.release_handle(fh);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let h = tri!(reply, self.shared.handle(fh));
        self.shared.pool.run(move || {
            let r = match h.file() {
                Some(f) if datasync => f.sync_data(),
                Some(f) => f.sync_all(),
                None => Ok(()),
            };
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.shared;
        if ino.0 == control::DIR_INO {
            let fh = s.handles.insert(Handle {
                node: None,
                kind: HandleKind::Dir(Mutex::new(Vec::new())),
                writable: false,
                opened_gen: 0,
                opened: None,
            });
            return reply.opened(FileHandle(fh), FopenFlags::empty());
        }
        let node = tri!(reply, s.node(ino));
        if node.kind != FileType::Directory {
            return reply.error(Errno::ENOTDIR);
        }
        let fh = s.handles.insert(Handle {
            node: Some(node),
            kind: HandleKind::Dir(Mutex::new(Vec::new())),
            writable: false,
            opened_gen: 0,
            opened: None,
        });
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = &self.shared;
        let listed = s.with_dir_listing(fh, offset, |h, list| {
            for (i, e) in list.iter().enumerate().skip(offset as usize) {
                let eino = match &h.node {
                    Some(n) => s.entry_ino(n, e),
                    None if e.name == b"." => ino.0,
                    None if e.name == b".." => ROOT_INO,
                    None => ControlFile::from_name(&e.name)
                        .map(|f| f.ino())
                        .unwrap_or(1),
                };
                if reply.add(
                    INodeNo(eino),
                    i as u64 + 1,
                    e.kind,
                    OsStr::from_bytes(&e.name),
                ) {
                    break;
                }
            }
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let s = &self.shared;
        let listed = s.with_dir_listing(fh, offset, |h, list| {
            for (i, e) in list.iter().enumerate().skip(offset as usize) {
                let off = i as u64 + 1;
                let name = OsStr::from_bytes(&e.name);
                // "." and ".." take no lookup count; the kernel ignores their attributes.
                let (attr, counted) = if is_dot(&e.name) {
                    let a = s.control_attr(ino.0).or_else(|| {
                        h.node
                            .as_ref()
                            .and_then(|n| n.stat().ok().map(|st| sys::to_attr(n.ino, &st)))
                    });
                    let Some(a) = a else { continue };
                    (a, None)
                } else {
                    match &h.node {
                        None => match ControlFile::from_name(&e.name) {
                            Some(f) => (s.control_file_attr(f), None),
                            None => continue,
                        },
                        Some(n) if n.ino == ROOT_INO && e.name == control::DIR_NAME.as_bytes() => {
                            (s.control_dir_attr(), None)
                        }
                        Some(n) => match s.do_lookup(n, &e.name) {
                            Ok((node, st)) => (sys::to_attr(node.ino, &st), Some(node.ino)),
                            // Gone since the listing was taken.
                            Err(_) => continue,
                        },
                    }
                };
                if reply.add(attr.ino, off, name, &s.ttl, &attr, Generation(0)) {
                    if let Some(ino) = counted {
                        s.inodes.forget(ino, 1);
                    }
                    break;
                }
            }
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.handles.remove(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let node = tri!(reply, self.shared.node(ino));
        self.shared.pool.run(move || {
            match sys::openat(node.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .and_then(|fd| File::from(fd).sync_all())
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = tri!(reply, self.shared.node(INodeNo(ROOT_INO)));
        match sys::statvfs_fd(root.fd()) {
            Ok(v) => reply.statfs(
                v.f_blocks,
                v.f_bfree,
                v.f_bavail,
                v.f_files,
                v.f_ffree,
                v.f_bsize as u32,
                v.f_namemax as u32,
                v.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let s = &self.shared;
        if control::is_control(ino.0) {
            return reply.error(Errno::EACCES);
        }
        let node = tri!(reply, s.node(ino));
        let path = tri!(reply, s.xattr_path(&node));
        let n = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        let evm = tri!(reply, s.enforce.protect_xattr(&node, name, Some(value)));
        let change = s.enforce.change_metadata(&node);
        // SAFETY: valid C strings and a buffer of `value.len()` bytes.
        let r = unsafe {
            libc::setxattr(
                path.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        };
        if r < 0 {
            return reply.error(errno(&io::Error::last_os_error()));
        }
        let killed_sgid = if name.as_bytes() == ACL_ACCESS && s.posix_acl.load(Ordering::Relaxed) {
            // The backing filesystem updated the mode from the ACL as root; the kernel
            // would also drop set-group-ID for a caller outside the file's group.
            s.acl_kill_sgid(&node, req)
        } else {
            Ok(())
        };
        s.metadata_changed(&node, evm, change);
        match killed_sgid {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let s = &self.shared;
        if control::is_control(ino.0) {
            return reply.error(Errno::NO_XATTR);
        }
        let node = tri!(reply, s.node(ino));
        let path = tri!(reply, s.xattr_path(&node));
        match get_xattr(&path, name, size) {
            Ok(Xattr::Size(n)) => reply.size(n),
            Ok(Xattr::Data(v)) => reply.data(&v),
            // The kernel reads ACLs to check permissions: on a backing filesystem
            // without ACLs it must see "no ACL", not an error.
            Err(e)
                if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                    && name.as_bytes().starts_with(b"system.posix_acl_")
                    && s.posix_acl.load(Ordering::Relaxed) =>
            {
                reply.error(Errno::NO_XATTR)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let s = &self.shared;
        if control::is_control(ino.0) {
            return reply_xattr(reply, size, Ok(Vec::new()));
        }
        let node = tri!(reply, s.node(ino));
        if node.kind == FileType::Symlink {
            return reply_xattr(reply, size, Ok(Vec::new()));
        }
        let path = tri!(reply, s.xattr_path(&node));
        let list = match list_xattr(&path) {
            Ok(l) if !has_capability(req.pid(), req.uid(), CAP_SYS_ADMIN) => Ok(without_trusted(l)),
            l => l,
        };
        reply_xattr(reply, size, list);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let s = &self.shared;
        if control::is_control(ino.0) {
            return reply.error(Errno::EACCES);
        }
        let node = tri!(reply, s.node(ino));
        let path = tri!(reply, s.xattr_path(&node));
        let n = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        let evm = tri!(reply, s.enforce.protect_xattr(&node, name, None));
        let change = s.enforce.change_metadata(&node);
        // SAFETY: valid C strings.
        if unsafe { libc::removexattr(path.as_ptr(), n.as_ptr()) } < 0 {
            return reply.error(errno(&io::Error::last_os_error()));
        }
        s.metadata_changed(&node, evm, change);
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let s = &self.shared;
        tri!(reply, s.check_name(parent, name));
        let p = tri!(reply, s.node(parent));
        let c = tri!(reply, sys::cstr(name).map_err(|e| errno(&e)));
        let oflags = (flags | libc::O_CREAT) & !(libc::O_NOCTTY | libc::O_DIRECT | libc::O_TRUNC);
        // Create through an O_PATH-free open, then take the node from the opened file so
        // a concurrent rename cannot swap it.
        let r = (|| -> io::Result<(Arc<Node>, Option<vigil_guard::Identified>)> {
            let made = sys::with_umask(umask, mode & 0o7777, |mode| {
                sys::openat(p.fd(), &c, oflags | libc::O_EXCL | libc::O_NOFOLLOW, mode)
            });
            let file = match made {
                Ok(file) => file,
                // The name was taken behind the mount after the kernel's LOOKUP found
                // nothing. Without O_EXCL that file must be opened as any open would:
                // ESTALE has the kernel walk the path again (LOOKUP_REVAL), find it and
                // open it, checking the caller's permissions and applying O_TRUNC (a
                // CREATE reply would make it the caller's new file).
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
                    return Err(io::Error::from_raw_os_error(libc::ESTALE));
                }
                Err(e) => return Err(e),
            };
            // Told to the guard before anyone else can open it.
            let created = s
                .enforce
                .created(file.as_fd())
                .map_err(|e| io::Error::from_raw_os_error(e.code()))?;
            let (node, st) = s.new_entry(&p, &c, req)?;
            // The node is the file made unless a rename replaced it meanwhile.
            Ok((node, Some(created).filter(|i| i.attrs.ino == st.st_ino)))
        })();
        let (node, created) = tri!(reply, r.map_err(|e| errno(&e)));
        let who = caller(req);
        let shared = self.shared.clone();
        // Opening measures (the name may have been taken by another file meanwhile).
        s.pool.run(move || {
            let s = &shared;
            let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
            let made = created.is_some();
            match s.open_file(node.clone(), flags, who, made, created) {
                Ok((fh, fl)) => {
                    let st = tri!(reply, node.stat().map_err(|e| errno(&e)));
                    reply.created(
                        &s.ttl,
                        &sys::to_attr(node.ino, &st),
                        Generation(0),
                        FileHandle(fh),
                        fl,
                    )
                }
                Err(e) => {
                    s.inodes.forget(node.ino, 1);
                    reply.error(e)
                }
            }
        });
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        let s = &self.shared;
        if FileAttrIoctl::of(cmd).is_some() {
            if control::is_control(ino.0) {
                return reply.error(Errno::ENOTTY);
            }
            let node = tri!(reply, s.node(ino));
            return match s.file_attr_ioctl(caller(req), &node, cmd, in_data, out_size) {
                Ok(out) => reply.ioctl(0, &out),
                Err(e) => reply.error(e),
            };
        }
        if !matches!(cmd, ioctl::SEAL | ioctl::UNSEAL | ioctl::STATUS) {
            // Not an ioctl of this filesystem, on any kind of file.
            return reply.error(Errno::ENOTTY);
        }
        if control::is_control(ino.0) {
            return reply.error(Errno::EINVAL);
        }
        let node = tri!(reply, s.node(ino));
        let (who, shared) = (caller(req), self.shared.clone());
        // Sealing measures the file: on a worker.
        s.pool_for(&node)
            .run_for(who.uid, move || match shared.ioctl_seal(who, &node, cmd) {
                Ok(v) => reply.ioctl(v, &[]),
                Err(e) => reply.error(e),
            });
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let s = &self.shared;
        let h = tri!(reply, s.handle(fh));
        let (Some(node), Some(file)) = (h.node.as_ref(), h.file()) else {
            return reply.error(Errno::EBADF);
        };
        s.drop_privileges_before_change(node, caller(req), true);
        let m = tri!(reply, s.enforce.modify(node));
        s.changed(node);
        // SAFETY: plain syscall on our descriptor.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, length as i64) };
        s.changed(node);
        m.done_at(node.fd());
        if r < 0 {
            return reply.error(errno(&io::Error::last_os_error()));
        }
        reply.ok();
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let h = tri!(reply, self.shared.handle(fh));
        let Some(file) = h.file() else {
            return reply.error(Errno::EBADF);
        };
        match sys::lseek(file.as_fd(), offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
