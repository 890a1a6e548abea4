//! The inode table (FUSE node ids ↔ backing files) and the open-handle table.
//!
//! A node lives exactly as long as the kernel's lookup count for it: every entry reply
//! adds one, FORGET subtracts, and at zero the node and its `O_PATH` descriptor go.
//! A node's id, which is also the inode number the mount reports, comes from one
//! mapping of the backing file's (st_dev, st_ino), [`InodeTable::id_of`], used by
//! lookups, attribute replies and directory listings alike, so a listing's `d_ino` is
//! the `st_ino` a stat of the entry reports. A file on the source's filesystem gets its
//! own inode number ([`InodeTable::stable_id`]), so its id is the same after the kernel
//! forgot the node and looked it up again, and across mounts, as natively; the few
//! numbers below [`FIRST_DYNAMIC_INO`] (taken by the root and `.vigil/`) map to
//! [`LOW_INO_BASE`] + number instead, which is just as stable. Files on filesystems
//! mounted inside the source (other st_dev: their numbers could equal a source file's)
//! get ids counted from [`FALLBACK_INO`], when first looked up or listed; such an id is
//! the same for stat and readdir while the kernel knows the node, and may change once
//! the kernel forgot it. The descriptor pins the backing inode while the kernel knows
//! it, so the backing (st_dev, st_ino) of a live node cannot be recycled to another
//! file, and a counted id is given to another file only after the kernel forgot it.
//!
//! Each node also knows where the kernel's dentry for it is — its parent's node and its
//! name, as the latest lookup or rename through the mount gave them — so its path is
//! spelt as the kernel's IMA spells it (`d_absolute_path` of the dentry), without asking
//! the backing file system, whose names may have moved on.
//!
//! Locks: the table's lock may be held while a node's `link` is taken (a lookup sets
//! it); a node's own locks (`link`, `check`, `state.cached`) are leaves, nothing is
//! locked while one is held.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use fuser::FileType;

use crate::sys;

/// The root's node id (fixed by the FUSE protocol).
pub const ROOT_INO: u64 = 1;
/// Ids below this are the root's and `.vigil/`'s; a source file whose own inode number
/// is below it gets [`LOW_INO_BASE`] + its number.
pub const FIRST_DYNAMIC_INO: u64 = 16;
/// Node ids from here on are counted, for files whose own inode number cannot serve.
pub const FALLBACK_INO: u64 = 1 << 63;
/// Ids of the source's files with inode numbers below [`FIRST_DYNAMIC_INO`]:
/// `LOW_INO_BASE + st_ino`. Source files whose own numbers fall in
/// `LOW_INO_BASE..FALLBACK_INO` (or above) get counted ids, so no two files share one.
pub const LOW_INO_BASE: u64 = FALLBACK_INO - FIRST_DYNAMIC_INO;
/// Counted ids handed out by listings and not (yet) taken by a lookup are kept up to
/// this many; past it they are forgotten (a later lookup counts a new id).
const MAX_LISTED: usize = 1 << 20;

const _: () = assert!(
    crate::control::DIR_INO + (crate::control::ControlFile::ALL.len() as u64) < FIRST_DYNAMIC_INO
);

/// What is known about a backing file's content at the moment the page cache was filled,
/// to decide whether a later open may keep the cached pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Change time in ns: every data, size or time change (utimens too) moves it.
    pub ctime_ns: i128,
    pub size: u64,
}

impl Stamp {
    pub fn of(a: &vigil_guard::FileAttrs) -> Stamp {
        Stamp {
            ctime_ns: a.ctime_ns,
            size: a.size,
        }
    }
}

/// Per-file state the mount keeps for every node. The counters are updated without any
/// lock (the "inner" invalidation of the design); nothing here ever waits on hashing.
#[derive(Default)]
pub struct NodeState {
    /// Bumped by every change made through the mount (write, truncate, attribute and
    /// xattr changes, fallocate, copy into). A measurement publishes only if the
    /// generation it started from is still current.
    pub generation: AtomicU64,
    /// Open handles of any kind.
    pub opens: AtomicU32,
    /// Backing state when the kernel's page cache for this node was last (re)filled.
    pub cached: Mutex<Option<Stamp>>,
    /// The backing file as read-only handles opened it (and those open flags), shared
    /// by every read-only handle opened with the same flags while any holds it.
    reader: Mutex<Option<(i32, Weak<File>)>>,
    /// The backing file opened for direct reads ([`crate::direct`]), shared by every
    /// handle that reads directly while any holds it.
    direct: Mutex<Option<(i32, Weak<File>)>>,
}

impl NodeState {
    pub fn bump(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The backing file for a read-only handle opened with `flags`: the one such
    /// handles hold already, else a new one from `open`. Reads are positional, so
    /// handles can share a descriptor, and a file many hold open at once (a library
    /// every process maps) costs the daemon one descriptor, not one per process.
    pub fn reader(
        &self,
        flags: i32,
        open: impl FnOnce() -> std::io::Result<File>,
    ) -> std::io::Result<Arc<File>> {
        shared_file(&self.reader, flags, open)
    }

    /// The backing file opened for direct reads: the one other handles hold already,
    /// else a new one from `open` (`None` where the file cannot be read directly).
    pub fn direct(&self, open: impl FnOnce() -> Option<File>) -> Option<Arc<File>> {
        shared_file(&self.direct, libc::O_DIRECT, || open().ok_or(())).ok()
    }
}

/// The file in `slot` if it was opened with `flags` and is still held, else a new one
/// from `open`, which then takes the slot.
fn shared_file<E>(
    slot: &Mutex<Option<(i32, Weak<File>)>>,
    flags: i32,
    open: impl FnOnce() -> Result<File, E>,
) -> Result<Arc<File>, E> {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(file) = slot
        .as_ref()
        .filter(|(f, _)| *f == flags)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(file);
    }
    let file = Arc::new(open()?);
    *slot = Some((flags, Arc::downgrade(&file)));
    Ok(file)
}

pub struct Node {
    pub ino: u64,
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing file.
    fd: OwnedFd,
    pub kind: FileType,
    pub key: (u64, u64),
    lookups: AtomicU64,
    pub state: NodeState,
    /// The guard's identity of the backing file (stable for the node's lifetime: the
    /// node's descriptor pins the inode).
    pub ident: OnceLock<vigil_guard::FileId>,
    /// The read check of the latest measurement, with that measurement.
    pub check: Mutex<Option<(Arc<vigil_guard::Measurement>, Arc<crate::verity::ReadCheck>)>>,
    /// Where the kernel's dentry for it is. A leaf lock.
    link: Mutex<Link>,
}

/// A node's parent directory and name in it, as the latest lookup or rename gave them.
struct Link {
    parent: Weak<Node>,
    name: OsString,
}

impl Node {
    fn new(ino: u64, fd: OwnedFd, kind: FileType, key: (u64, u64), link: Link) -> Node {
        Node {
            ino,
            fd,
            kind,
            key,
            lookups: AtomicU64::new(1),
            state: NodeState::default(),
            ident: OnceLock::new(),
            check: Mutex::new(None),
            link: Mutex::new(link),
        }
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its name in the directory it was last looked up in or renamed into.
    pub fn name(&self) -> OsString {
        self.link().name.clone()
    }

    /// Its parent directory's node id and its name there, if the parent is known.
    pub fn entry(&self) -> Option<(u64, OsString)> {
        let l = self.link();
        Some((l.parent.upgrade()?.ino, l.name.clone()))
    }

    /// It was looked up, or renamed, as `name` in `parent`.
    pub fn set_link(&self, parent: &Arc<Node>, name: &OsStr) {
        let mut l = self.link();
        l.parent = Arc::downgrade(parent);
        if l.name != name {
            l.name = name.to_owned();
        }
    }

    /// Its path below the root as the kernel's dentries spell it, from the links of it
    /// and its ancestors; `None` if an ancestor is no longer known or the chain is
    /// longer than any path (a loop left by directories moved behind the mount).
    pub fn dentry_path(&self) -> Option<PathBuf> {
        if self.ino == ROOT_INO {
            return Some(PathBuf::new());
        }
        let (mut parent, name) = {
            let l = self.link();
            (l.parent.upgrade(), l.name.clone())
        };
        let mut names = vec![name];
        loop {
            let dir = parent?;
            if dir.ino == ROOT_INO {
                break;
            }
            if names.len() > libc::PATH_MAX as usize / 2 {
                return None;
            }
            let l = dir.link();
            names.push(l.name.clone());
            parent = l.parent.upgrade();
        }
        Some(names.iter().rev().collect())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    pub fn stat(&self) -> std::io::Result<libc::stat> {
        sys::fstat(self.fd())
    }
}

struct Tables {
    nodes: HashMap<u64, Arc<Node>>,
    by_key: HashMap<(u64, u64), u64>,
    /// Counted ids that directory listings showed for backing files with no node: the
    /// next lookup of the file takes its id from here, so stat agrees with `d_ino`.
    listed: HashMap<(u64, u64), u64>,
    /// Next counted id (from [`FALLBACK_INO`]).
    next: u64,
}

impl Tables {
    fn count(&mut self) -> u64 {
        let i = self.next;
        self.next = self.next.wrapping_add(1).max(FALLBACK_INO);
        i
    }
}

pub struct InodeTable {
    inner: RwLock<Tables>,
    /// The source directory's device: its files' inode numbers are unique among them.
    root_dev: u64,
}

impl InodeTable {
    pub fn new(root: OwnedFd) -> std::io::Result<InodeTable> {
        let st = sys::fstat(root.as_fd())?;
        let key = (st.st_dev, st.st_ino);
        let node = Arc::new(Node::new(
            ROOT_INO,
            root,
            FileType::Directory,
            key,
            Link {
                parent: Weak::new(),
                name: OsString::new(),
            },
        ));
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_INO, node);
        let mut by_key = HashMap::new();
        by_key.insert(key, ROOT_INO);
        Ok(InodeTable {
            inner: RwLock::new(Tables {
                nodes,
                by_key,
                listed: HashMap::new(),
                next: FALLBACK_INO,
            }),
            root_dev: key.0,
        })
    }

    /// The id a file of the source's filesystem always gets: its own inode number, or
    /// [`LOW_INO_BASE`] + number for the numbers below [`FIRST_DYNAMIC_INO`]; `None`
    /// for other filesystems and for numbers the mapping cannot hold (see the module's
    /// documentation). One-to-one on the source's files.
    pub fn stable_id(&self, key: (u64, u64)) -> Option<u64> {
        if key.0 != self.root_dev {
            return None;
        }
        match key.1 {
            n if n < FIRST_DYNAMIC_INO => Some(LOW_INO_BASE + n),
            n if n < LOW_INO_BASE => Some(n),
            _ => None,
        }
    }

    /// The id of the backing file `key` as a directory listing shows it: its node's if
    /// the kernel knows it, else the id a lookup of it would give (a counted id is
    /// assigned here and kept for that lookup).
    pub fn id_of(&self, key: (u64, u64)) -> u64 {
        {
            let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = t.by_key.get(&key).or_else(|| t.listed.get(&key)) {
                return *i;
            }
        }
        if let Some(i) = self.stable_id(key) {
            return i;
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = t.by_key.get(&key).or_else(|| t.listed.get(&key)) {
            return *i;
        }
        if t.listed.len() >= MAX_LISTED {
            t.listed.clear();
        }
        let i = t.count();
        t.listed.insert(key, i);
        i
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .get(&ino)
            .cloned()
    }

    /// The node id already assigned to a backing file, if any (no lookup count taken).
    pub fn peek_key(&self, key: (u64, u64)) -> Option<u64> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(&key)
            .copied()
    }

    /// Register one kernel lookup, by `name` in `parent`, of the backing file behind
    /// `fd` (an `O_PATH` descriptor) whose stat is `st`; returns its node.
    pub fn lookup(
        &self,
        fd: OwnedFd,
        st: &libc::stat,
        parent: &Arc<Node>,
        name: &OsStr,
    ) -> Arc<Node> {
        let key = (st.st_dev, st.st_ino);
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(ino) = t.by_key.get(&key).copied() {
            if let Some(node) = t.nodes.get(&ino) {
                node.lookups.fetch_add(1, Ordering::Relaxed);
                node.set_link(parent, name);
                return node.clone();
            }
        }
        let listed = t.listed.remove(&key);
        let ino = match self
            .stable_id(key)
            .or(listed)
            .filter(|i| !t.nodes.contains_key(i))
        {
            Some(i) => i,
            None => t.count(),
        };
        let link = Link {
            parent: Arc::downgrade(parent),
            name: name.to_owned(),
        };
        let node = Arc::new(Node::new(ino, fd, sys::mode_kind(st.st_mode), key, link));
        t.nodes.insert(ino, node.clone());
        t.by_key.insert(key, ino);
        node
    }

    /// Drop `n` kernel lookups of `ino`; at zero the node leaves the table (open
    /// handles keep their own reference until released) and is returned.
    pub fn forget(&self, ino: u64, n: u64) -> Option<Arc<Node>> {
        if ino == ROOT_INO {
            return None;
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let node = t.nodes.get(&ino)?;
        let left = node.lookups.load(Ordering::Relaxed).saturating_sub(n);
        node.lookups.store(left, Ordering::Relaxed);
        if left > 0 {
            return None;
        }
        let key = node.key;
        let node = t.nodes.remove(&ino);
        if t.by_key.get(&key) == Some(&ino) {
            t.by_key.remove(&key);
        }
        node
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .len()
    }

    /// The nodes no handle has open (the root aside), for the kernel to forget: other
    /// files first, then directories (a directory's dentry is in use while the kernel
    /// caches any child's). Which ones the kernel uses most is not known here.
    pub fn unused(&self) -> Vec<Arc<Node>> {
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Arc<Node>> = t
            .nodes
            .values()
            .filter(|n| n.ino != ROOT_INO && n.state.opens.load(Ordering::Acquire) == 0)
            .cloned()
            .collect();
        v.sort_by_key(|n| n.kind == FileType::Directory);
        v
    }
}

pub enum HandleKind {
    /// The backing file (shared by read-only handles, see [`NodeState::reader`]), where
    /// READs on this handle are heading, and the backing file for direct reads once a
    /// READ asked for it (see [`NodeState::direct`]).
    File(
        Arc<File>,
        crate::prefetch::Stream,
        OnceLock<Option<Arc<File>>>,
    ),
    /// A listing snapshot taken at offset 0; READDIR offsets index it.
    Dir(Mutex<Vec<crate::fs::Entry>>),
    /// A `.vigil/` file.
    Control(crate::enforce::ControlData),
}

pub struct Handle {
    pub node: Option<Arc<Node>>,
    pub kind: HandleKind,
    pub writable: bool,
    /// The node's generation when this handle was opened.
    pub opened_gen: u64,
    /// Enforcement state (regular files).
    pub opened: Option<crate::enforce::Opened>,
}

impl Handle {
    pub fn file(&self) -> Option<&File> {
        match &self.kind {
            HandleKind::File(f, ..) => Some(f),
            _ => None,
        }
    }
}

pub struct HandleTable {
    map: RwLock<HashMap<u64, Arc<Handle>>>,
    next: AtomicU64,
}

impl Default for HandleTable {
    fn default() -> Self {
        Self::new()
    }
}

impl HandleTable {
    pub fn new() -> HandleTable {
        HandleTable {
            map: RwLock::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }
    pub fn insert(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(h));
        fh
    }
    pub fn get(&self, fh: u64) -> Option<Arc<Handle>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }
    pub fn remove(&self, fh: u64) -> Option<Arc<Handle>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh)
    }
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Handles open on regular files, and the backing descriptors they hold (fewer:
    /// read-only handles of a file share one).
    pub fn files(&self) -> (usize, usize) {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut handles = 0;
        let mut descriptors = std::collections::HashSet::new();
        for h in map.values() {
            if let HandleKind::File(f, _, direct) = &h.kind {
                handles += 1;
                descriptors.insert(Arc::as_ptr(f));
                if let Some(Some(d)) = direct.get() {
                    descriptors.insert(Arc::as_ptr(d));
                }
            }
        }
        (handles, descriptors.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (InodeTable, u64) {
        let fd = OwnedFd::from(File::open("/").unwrap());
        let dev = sys::fstat(fd.as_fd()).unwrap().st_dev;
        (InodeTable::new(fd).unwrap(), dev)
    }

    #[test]
    fn ids_of_the_sources_files_are_one_to_one_and_stable() {
        let (t, dev) = table();
        // The root's and `.vigil/`'s ids are never a backing file's.
        for n in 0..FIRST_DYNAMIC_INO {
            let id = t.stable_id((dev, n)).unwrap();
            assert_eq!(id, LOW_INO_BASE + n);
            assert!((FIRST_DYNAMIC_INO..FALLBACK_INO).contains(&id));
        }
        for n in [
            FIRST_DYNAMIC_INO,
            11 + FIRST_DYNAMIC_INO,
            1 << 40,
            LOW_INO_BASE - 1,
        ] {
            assert_eq!(t.stable_id((dev, n)), Some(n));
        }
        // Numbers the low range takes, and above: counted.
        for n in [LOW_INO_BASE, FALLBACK_INO - 1, FALLBACK_INO, u64::MAX] {
            assert_eq!(t.stable_id((dev, n)), None);
        }
        // Another filesystem: counted, the listing's id is the lookup's.
        let other = (dev.wrapping_add(1), 12);
        assert_eq!(t.stable_id(other), None);
        let listed = t.id_of(other);
        assert!(listed >= FALLBACK_INO);
        assert_eq!(t.id_of(other), listed);
    }
}
