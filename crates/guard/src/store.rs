//! Crash-safe files (lesson 5): whole-file writes go temp → fsync → rename → fsync dir,
//! and the Merkle tree store marks a build in progress so that a crash leaves nothing
//! that could be mistaken for a finished tree.
//!
//! Tree file layout (all integers little-endian):
//! `"VIGILTRE"` · u32 version (1) · u32 reserved (0) · u64 body length ·
//! 32-byte SHA-256 of the body · body (the Merkle tree bytes, leaf level last as
//! fs-verity stores it). A tree is used only if the length and the checksum match.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vigil_ima::HashAlgo;

use crate::sys;
use crate::{Error, Result};

/// Write `data` to `path` atomically and durably, with permission bits `mode` (exactly:
/// the daemon's umask may be anything): a temporary file in the same directory is
/// written and fsynced, renamed over `path`, and the directory fsynced.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &tmp, e))?;
        f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        sys::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Create (or truncate) `path` readable and writable by its owner only: trees are the
/// daemon's own, whatever its umask.
fn private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))
}

/// Create `dir` (and missing parents) for the owner only (mode 0700); an existing
/// directory keeps its mode.
pub fn private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("mkdir", dir, e))
}

const TREE_MAGIC: &[u8; 8] = b"VIGILTRE";
const TREE_HEADER: usize = 8 + 4 + 4 + 8 + 32;

/// Where a finished tree lives. The tree file stays on disk for as long as a
/// `TreeRef` to it exists (clones included), even after [`TreeStore::remove_for`]:
/// a measurement can always read its own tree back.
#[derive(Debug, Clone)]
pub struct TreeRef {
    /// The tree file.
    pub path: PathBuf,
    /// The fs-verity file digest the tree belongs to.
    pub digest: Vec<u8>,
    _lease: Arc<Lease>,
}

impl PartialEq for TreeRef {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.digest == other.digest
    }
}

impl Eq for TreeRef {}

/// What [`TreeStore::open`] found and erased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeRecovery {
    /// Partial trees (with a "building" marker, or left-over temporaries) erased.
    pub erased: usize,
    /// Finished trees kept.
    pub kept: usize,
}

/// One finished tree file in the index.
struct Entry {
    digest: String,
    /// `TreeRef`s handed out and not yet dropped.
    leases: usize,
    /// Removed while leased: the file goes when the last lease does.
    removed: bool,
}

/// The finished trees, as identity hex → trees: finding an identity's trees must not
/// mean reading a directory that holds every file's tree. Tree files are renamed into
/// place and unlinked only with this lock held, so it and the directory agree.
type Index = HashMap<String, Vec<Entry>>;

struct Shared {
    dir: PathBuf,
    index: Mutex<Index>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeStore").field("dir", &self.dir).finish()
    }
}

impl Shared {
    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tree_path(&self, key: &str, digest_hex: &str) -> PathBuf {
        self.dir.join(format!("{key}-{digest_hex}.tree"))
    }

    /// Unlink a tree file and drop its entry (index lock held).
    fn unlink(&self, index: &mut Index, key: &str, digest_hex: &str) -> Result<()> {
        if let Some(entries) = index.get_mut(key) {
            entries.retain(|e| e.digest != digest_hex);
            if entries.is_empty() {
                index.remove(key);
            }
        }
        let p = self.tree_path(key, digest_hex);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("unlink", p, e)),
            _ => Ok(()),
        }
    }
}

/// A `TreeRef`'s hold on its tree file.
#[derive(Debug)]
struct Lease {
    store: Arc<Shared>,
    key: String,
    digest_hex: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut index = self.store.lock_index();
        let Some(entry) = index
            .get_mut(&self.key)
            .and_then(|v| v.iter_mut().find(|e| e.digest == self.digest_hex))
        else {
            return;
        };
        entry.leases = entry.leases.saturating_sub(1);
        if entry.leases == 0 && entry.removed {
            // Best effort: a tree left behind is removed with the identity's next one.
            let _ = self.store.unlink(&mut index, &self.key, &self.digest_hex);
        }
    }
}

/// Merkle trees under `<state>/trees`, named `<identity hex>-<digest hex>.tree`.
pub struct TreeStore {
    shared: Arc<Shared>,
}

impl TreeStore {
    /// Open (creating) the store and erase whatever a crash left half-built.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(TreeStore, TreeRecovery)> {
        let dir = dir.into();
        private_dir(&dir)?;
        let store = TreeStore {
            shared: Arc::new(Shared {
                dir,
                index: Mutex::new(HashMap::new()),
            }),
        };
        let rec = store.recover()?;
        Ok((store, rec))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn names(&self, key: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = self.dir();
        (
            dir.join(format!("{key}.tree")),
            dir.join(format!("{key}.building")),
            dir.join(format!("{key}.tmp")),
        )
    }

    /// Erase every partial tree: any tree with a "building" marker (finished or not)
    /// and every temporary; index the finished ones. Run once, when the store is
    /// opened (no `TreeRef` exists yet).
    fn recover(&self) -> Result<TreeRecovery> {
        let dir = self.dir();
        let mut rec = TreeRecovery::default();
        let rd = fs::read_dir(dir).map_err(|e| Error::io("readdir", dir, e))?;
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("readdir", dir, e))?;
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
        for n in &names {
            if let Some(key) = n.strip_suffix(".building") {
                let (tree, marker, tmp) = self.names(key);
                for p in [&tree, &tmp] {
                    if p.exists() {
                        fs::remove_file(p).map_err(|e| Error::io("unlink", p, e))?;
                        rec.erased += 1;
                    }
                }
                fs::remove_file(&marker).map_err(|e| Error::io("unlink", &marker, e))?;
            } else if n.ends_with(".tmp") {
                let p = dir.join(n);
                if p.exists() {
                    fs::remove_file(&p).map_err(|e| Error::io("unlink", &p, e))?;
                    rec.erased += 1;
                }
            }
        }
        sys::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
        let mut index = self.shared.lock_index();
        index.clear();
        for ent in fs::read_dir(dir).map_err(|e| Error::io("readdir", dir, e))? {
            let ent = ent.map_err(|e| Error::io("readdir", dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some((key, digest)) = name.strip_suffix(".tree").and_then(|n| n.rsplit_once('-'))
            {
                index.entry(key.to_owned()).or_default().push(Entry {
                    digest: digest.to_owned(),
                    leases: 0,
                    removed: false,
                });
                rec.kept += 1;
            }
        }
        Ok(rec)
    }

    /// Store a tree durably. `body` yields the tree bytes in chunks; `keep_going` is
    /// asked between chunks and a `false` answer cancels the build (nothing is left
    /// behind; [`Error::Changed`] is returned).
    pub fn store(
        &self,
        key: &str,
        digest: &[u8],
        body: &mut dyn Iterator<Item = Vec<u8>>,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<TreeRef> {
        let dir = self.dir();
        let digest_hex = hex::encode(digest);
        let (tree, marker, tmp) = self.names(&format!("{key}-{digest_hex}"));
        private_file(&marker)?;
        sys::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
        let r = (|| {
            let mut f = private_file(&tmp)?;
            f.write_all(&[0u8; TREE_HEADER])
                .map_err(|e| Error::io("write", &tmp, e))?;
            let mut h = vigil_ima::Hasher::new(HashAlgo::Sha256)?;
            let mut len = 0u64;
            for chunk in body {
                if !keep_going() {
                    return Err(Error::Changed);
                }
                h.update(&chunk);
                len += chunk.len() as u64;
                f.write_all(&chunk)
                    .map_err(|e| Error::io("write", &tmp, e))?;
            }
            let mut hdr = Vec::with_capacity(TREE_HEADER);
            hdr.extend_from_slice(TREE_MAGIC);
            hdr.extend_from_slice(&1u32.to_le_bytes());
            hdr.extend_from_slice(&0u32.to_le_bytes());
            hdr.extend_from_slice(&len.to_le_bytes());
            hdr.extend_from_slice(&h.finalize());
            use std::os::unix::fs::FileExt;
            f.write_all_at(&hdr, 0)
                .map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
            if !keep_going() {
                return Err(Error::Changed);
            }
            let mut index = self.shared.lock_index();
            fs::rename(&tmp, &tree).map_err(|e| Error::io("rename", &tree, e))?;
            let entries = index.entry(key.to_owned()).or_default();
            match entries.iter_mut().find(|e| e.digest == digest_hex) {
                Some(e) => {
                    e.leases += 1;
                    e.removed = false;
                }
                None => entries.push(Entry {
                    digest: digest_hex.clone(),
                    leases: 1,
                    removed: false,
                }),
            }
            drop(index);
            let lease = Arc::new(Lease {
                store: self.shared.clone(),
                key: key.to_owned(),
                digest_hex,
            });
            sys::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
            Ok(lease)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        fs::remove_file(&marker).map_err(|e| Error::io("unlink", &marker, e))?;
        sys::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
        Ok(TreeRef {
            path: tree,
            digest: digest.to_vec(),
            _lease: r?,
        })
    }

    /// The identities (`key`s as given to [`TreeStore::store`]) that have trees.
    pub fn keys(&self) -> Vec<String> {
        self.shared.lock_index().keys().cloned().collect()
    }

    /// Load a finished tree, checking its length and checksum; a damaged or partial
    /// file is an error (and is never returned as a tree).
    pub fn load(&self, r: &TreeRef) -> Result<Vec<u8>> {
        load_tree(&r.path)
    }

    /// Delete the trees stored for an identity (`key` as given to
    /// [`TreeStore::store`]), except the one for digest `keep`. A tree some `TreeRef`
    /// still refers to is deleted when the last such reference is dropped.
    pub fn remove_for(&self, key: &str, keep: Option<&[u8]>) -> Result<()> {
        let keep = keep.map(hex::encode);
        let mut index = self.shared.lock_index();
        let Some(entries) = index.get_mut(key) else {
            return Ok(());
        };
        let mut unleased = Vec::new();
        for e in entries.iter_mut() {
            if Some(&e.digest) == keep.as_ref() {
                continue;
            }
            e.removed = true;
            if e.leases == 0 {
                unleased.push(e.digest.clone());
            }
        }
        for digest_hex in unleased {
            self.shared.unlink(&mut index, key, &digest_hex)?;
        }
        Ok(())
    }
}

/// Read and check a tree file.
pub fn load_tree(path: &Path) -> Result<Vec<u8>> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let flen = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let corrupt = |offset: u64, what: &str| Error::Corrupt {
        path: path.to_owned(),
        offset,
        what: what.to_owned(),
    };
    let mut hdr = [0u8; TREE_HEADER];
    f.read_exact(&mut hdr)
        .map_err(|_| corrupt(0, "truncated tree header"))?;
    if &hdr[..8] != TREE_MAGIC {
        return Err(corrupt(0, "bad tree magic"));
    }
    if hdr[8..12] != 1u32.to_le_bytes() {
        return Err(corrupt(8, "unknown tree version"));
    }
    let len = u64::from_le_bytes(hdr[16..24].try_into().expect("8 bytes"));
    if len != flen - TREE_HEADER as u64 {
        return Err(corrupt(16, "tree length does not match the file size"));
    }
    let mut body = Vec::with_capacity(len as usize);
    f.read_to_end(&mut body)
        .map_err(|e| Error::io("read", path, e))?;
    if HashAlgo::Sha256.digest(&body)? != hdr[24..56] {
        return Err(corrupt(24, "tree checksum mismatch"));
    }
    Ok(body)
}
