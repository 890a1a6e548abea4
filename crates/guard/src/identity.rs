//! File identity (lesson 4): a file is known by (unique mount id, file handle with its
//! generation), never by an open descriptor or a path, and every cached entry is checked
//! against ctime (ns), size and birth time before it is trusted.
//!
//! What is kept across restarts (seals, tree names) is keyed by [`FileId::to_hex`], in
//! which the file system's id (`f_fsid`) stands for the mount id where the file system
//! has one: a mount id is new at every mount, so after a reboot it would match nothing.
//!
//! Filesystems that cannot encode handles get an inode key (device, inode number,
//! `FS_IOC_GETVERSION` generation where present, birth time) instead; [`FileId::has_handle`]
//! says which kind a file got, and such files cannot be reopened by deferred jobs.

use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use crate::sys;
use crate::{Error, Result};

/// The identity of one file, stable across renames and never reused for another file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileId(Arc<Key>);

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Handle {
        mount: u64,
        /// `f_fsid` (0: none).
        fsid: u64,
        handle_type: i32,
        handle: Box<[u8]>,
    },
    Inode {
        mount: u64,
        dev: u64,
        ino: u64,
        generation: u32,
        btime_ns: i128,
    },
}

impl Hash for FileId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl FileId {
    /// The mount the file was identified on (unique id on Linux ≥ 6.8).
    pub fn mount(&self) -> u64 {
        match &*self.0 {
            Key::Handle { mount, .. } | Key::Inode { mount, .. } => *mount,
        }
    }

    /// Whether the identity is a file handle (else the inode fallback).
    pub fn has_handle(&self) -> bool {
        matches!(&*self.0, Key::Handle { .. })
    }

    /// The handle, for `open_by_handle_at`.
    pub(crate) fn raw_handle(&self) -> Option<sys::RawHandle> {
        match &*self.0 {
            Key::Handle {
                handle_type,
                handle,
                ..
            } => Some(sys::RawHandle {
                handle_type: *handle_type,
                bytes: handle.to_vec(),
            }),
            Key::Inode { .. } => None,
        }
    }

    /// A stable byte encoding of the identity (used for file names in the state dir).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        match &*self.0 {
            Key::Handle {
                mount,
                fsid,
                handle_type,
                handle,
            } => {
                v = match *fsid {
                    0 => key_prefix(b'h', *mount),
                    fsid => key_prefix(b'f', fsid),
                };
                v.extend_from_slice(&handle_type.to_le_bytes());
                v.extend_from_slice(handle);
            }
            Key::Inode {
                mount,
                dev,
                ino,
                generation,
                btime_ns,
            } => {
                v.push(b'i');
                for x in [*mount, *dev, *ino] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v.extend_from_slice(&generation.to_le_bytes());
                v.extend_from_slice(&btime_ns.to_le_bytes());
            }
        }
        v
    }

    /// A key an earlier vigil gave a file on mount `mount` (the mount id where
    /// [`FileId::to_hex`] now puts the file system's id `fsid`), as `to_hex` gives it
    /// now; `None` for any other key, or if the file system has no id.
    pub(crate) fn rekey_mount_keyed(old: &str, mount: u64, fsid: u64) -> Option<String> {
        if fsid == 0 {
            return None;
        }
        let rest = old.strip_prefix(&hex::encode(key_prefix(b'h', mount)))?;
        Some(hex::encode(key_prefix(b'f', fsid)) + rest)
    }

    /// The file handle in a key [`FileId::to_hex`] gave a file on the file system with
    /// id `fsid`; `None` for keys of other file systems or kinds.
    pub(crate) fn handle_in_key(key: &str, fsid: u64) -> Option<sys::RawHandle> {
        if fsid == 0 {
            return None;
        }
        let bytes = hex::decode(key).ok()?;
        let rest = bytes.strip_prefix(&key_prefix(b'f', fsid)[..])?;
        if rest.len() < 4 {
            return None;
        }
        let (handle_type, handle) = rest.split_at(4);
        Some(sys::RawHandle {
            handle_type: i32::from_le_bytes(handle_type.try_into().ok()?),
            bytes: handle.to_vec(),
        })
    }

    /// Lowercase hex of [`FileId::to_bytes`].
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Test helper: an inode-kind identity from raw numbers.
    #[doc(hidden)]
    pub fn from_parts(mount: u64, ino: u64) -> FileId {
        FileId(Arc::new(Key::Inode {
            mount,
            dev: 0,
            ino,
            generation: 0,
            btime_ns: 0,
        }))
    }
}

/// The start of a handle key: its kind (`f`: by file system id, `h`: by mount id)
/// and that id.
fn key_prefix(tag: u8, id: u64) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&id.to_le_bytes());
    v
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Key::Handle {
                mount,
                fsid,
                handle_type,
                handle,
            } => write!(
                f,
                "FileId(mnt {mount}, fsid {fsid:x}, handle {handle_type}:{})",
                hex::encode(handle)
            ),
            Key::Inode {
                mount,
                dev,
                ino,
                generation,
                ..
            } => write!(
                f,
                "FileId(mnt {mount}, dev {dev:#x}, ino {ino}, gen {generation})"
            ),
        }
    }
}

/// The attributes an entry is validated against, plus what policies match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    /// Size in bytes.
    pub size: u64,
    /// Change time in ns (fine-grained since Linux 6.13): changes on every data or
    /// metadata change and cannot be set by the owner, unlike mtime.
    pub ctime_ns: i128,
    /// Birth time in ns, where the filesystem records it.
    pub btime_ns: Option<i128>,
    /// Inode number (informational: inode numbers are reused).
    pub ino: u64,
    /// `st_mode`.
    pub mode: u32,
    /// Owner (policy `fowner`).
    pub uid: u32,
    /// Group (policy `fgroup`).
    pub gid: u32,
    /// Filesystem magic (policy `fsmagic`).
    pub fs_magic: u64,
}

impl FileAttrs {
    /// Whether a cached entry taken with `self` may still describe a file that now has
    /// `now`: same ctime, size, birth time and inode number.
    pub fn same_version(&self, now: &FileAttrs) -> bool {
        self.ctime_ns == now.ctime_ns
            && self.size == now.size
            && self.btime_ns == now.btime_ns
            && self.ino == now.ino
    }
}

/// A file's identity and the attributes read with it.
#[derive(Debug, Clone)]
pub struct Identified {
    /// The identity.
    pub id: FileId,
    /// The attributes, read by the same `statx`.
    pub attrs: FileAttrs,
}

fn attrs_of(st: &sys::Stat, fs_magic: u64) -> FileAttrs {
    FileAttrs {
        size: st.size,
        ctime_ns: st.ctime_ns,
        btime_ns: st.btime_ns,
        ino: st.ino,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        fs_magic,
    }
}

/// Fresh attributes of the file open as `fd`, already known as `id`: one `statx`
/// (`fs_magic` is taken as given: it is a property of the mount). `None` if `fd` is on
/// another mount than `id` (then identify it afresh).
pub fn refresh_fd(id: &FileId, fd: BorrowedFd<'_>, fs_magic: u64) -> Result<Option<Identified>> {
    let st = sys::statx(fd, Path::new("")).map_err(|e| Error::io("statx", "<fd>", e))?;
    if st.mnt_id != id.mount() {
        return Ok(None);
    }
    Ok(Some(Identified {
        id: id.clone(),
        attrs: attrs_of(&st, fs_magic),
    }))
}

/// The version of the file open as `fd` (what [`FileAttrs::same_version`] compares:
/// size, ctime, birth time, inode number), with one `statx`; `fs_magic` left 0.
pub(crate) fn version_fd(fd: BorrowedFd<'_>) -> Result<FileAttrs> {
    let st = sys::statx(fd, Path::new("")).map_err(|e| Error::io("statx", "<fd>", e))?;
    Ok(attrs_of(&st, 0))
}

/// Identify the file open as `fd` (no race: the descriptor pins the inode while we look).
pub fn identify_fd(fd: BorrowedFd<'_>) -> Result<Identified> {
    let empty = Path::new("");
    let st = sys::statx(fd, empty).map_err(|e| Error::io("statx", "<fd>", e))?;
    let (fs_magic, fsid) = sys::fs_magic_and_id(fd).map_err(|e| Error::io("fstatfs", "<fd>", e))?;
    let attrs = attrs_of(&st, fs_magic);
    let key = match sys::name_to_handle(fd, empty)
        .map_err(|e| Error::io("name_to_handle_at", "<fd>", e))?
    {
        Some(h) => Key::Handle {
            mount: st.mnt_id,
            fsid,
            handle_type: h.handle_type,
            handle: h.bytes.into_boxed_slice(),
        },
        None => Key::Inode {
            mount: st.mnt_id,
            dev: st.dev,
            ino: st.ino,
            generation: sys::inode_generation(fd).unwrap_or(0),
            btime_ns: st.btime_ns.unwrap_or(0),
        },
    };
    Ok(Identified {
        id: FileId(Arc::new(key)),
        attrs,
    })
}

/// Identify `path` relative to `dirfd` (symlinks not followed), through a transient
/// `O_PATH` descriptor that is closed before returning.
pub fn identify_at(dirfd: BorrowedFd<'_>, path: &Path) -> Result<Identified> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        dirfd,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path, e))?;
    identify_fd(fd.as_fd()).map_err(|e| match e {
        Error::Io { op, source, .. } => Error::Io {
            op,
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

/// Identify `path` (relative to the current directory when relative).
pub fn identify_path(path: &Path) -> Result<Identified> {
    identify_at(rustix::fs::CWD, path)
}

/// Reopen a file read-only by its identity; `mount_fd` is any descriptor on its mount.
/// A stale handle gives [`Error::Stale`].
pub fn reopen(mount_fd: BorrowedFd<'_>, id: &FileId) -> Result<File> {
    let h = id.raw_handle().ok_or_else(|| {
        Error::Config("file has no handle (filesystem without export support)".into())
    })?;
    sys::open_by_handle(mount_fd, &h).map_err(|e| match e.raw_os_error() {
        Some(libc::ESTALE) => Error::Stale,
        _ => Error::io("open_by_handle_at", format!("{id:?}"), e),
    })
}
