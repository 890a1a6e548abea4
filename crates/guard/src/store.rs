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
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vigil_ima::HashAlgo;

use crate::sys;
use crate::{Error, Result};

/// Write `data` to `path` atomically and durably: a temporary file in the same
/// directory is written and fsynced, renamed over `path`, and the directory fsynced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
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
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
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

const TREE_MAGIC: &[u8; 8] = b"VIGILTRE";
const TREE_HEADER: usize = 8 + 4 + 4 + 8 + 32;

/// Where a finished tree lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRef {
    /// The tree file.
    pub path: PathBuf,
    /// The fs-verity file digest the tree belongs to.
    pub digest: Vec<u8>,
}

/// What [`TreeStore::recover`] found and erased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeRecovery {
    /// Partial trees (with a "building" marker, or left-over temporaries) erased.
    pub erased: usize,
    /// Finished trees kept.
    pub kept: usize,
}

/// Merkle trees under `<state>/trees`, named `<identity hex>-<digest hex>.tree`.
pub struct TreeStore {
    dir: PathBuf,
    /// The finished trees, as identity hex → digest hexes: finding an identity's
    /// trees must not mean reading a directory that holds every file's tree.
    index: Mutex<HashMap<String, Vec<String>>>,
}

impl TreeStore {
    /// Open (creating) the store and erase whatever a crash left half-built.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(TreeStore, TreeRecovery)> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
        let store = TreeStore {
            dir,
            index: Mutex::new(HashMap::new()),
        };
        let rec = store.recover()?;
        Ok((store, rec))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn names(&self, key: &str) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.tree")),
            self.dir.join(format!("{key}.building")),
            self.dir.join(format!("{key}.tmp")),
        )
    }

    /// Erase every partial tree: any tree with a "building" marker (finished or not)
    /// and every temporary.
    pub fn recover(&self) -> Result<TreeRecovery> {
        let mut rec = TreeRecovery::default();
        let rd = fs::read_dir(&self.dir).map_err(|e| Error::io("readdir", &self.dir, e))?;
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("readdir", &self.dir, e))?;
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
                let p = self.dir.join(n);
                if p.exists() {
                    fs::remove_file(&p).map_err(|e| Error::io("unlink", &p, e))?;
                    rec.erased += 1;
                }
            }
        }
        sys::fsync_dir(&self.dir).map_err(|e| Error::io("fsync", &self.dir, e))?;
        let mut index = self.lock_index();
        index.clear();
        for ent in fs::read_dir(&self.dir).map_err(|e| Error::io("readdir", &self.dir, e))? {
            let ent = ent.map_err(|e| Error::io("readdir", &self.dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some((key, digest)) = name.strip_suffix(".tree").and_then(|n| n.rsplit_once('-'))
            {
                index
                    .entry(key.to_owned())
                    .or_default()
                    .push(digest.to_owned());
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
        let digest_hex = hex::encode(digest);
        let (tree, marker, tmp) = self.names(&format!("{key}-{digest_hex}"));
        File::create(&marker).map_err(|e| Error::io("create", &marker, e))?;
        sys::fsync_dir(&self.dir).map_err(|e| Error::io("fsync", &self.dir, e))?;
        let r = (|| {
            let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
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
            fs::rename(&tmp, &tree).map_err(|e| Error::io("rename", &tree, e))?;
            sys::fsync_dir(&self.dir).map_err(|e| Error::io("fsync", &self.dir, e))
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        fs::remove_file(&marker).map_err(|e| Error::io("unlink", &marker, e))?;
        sys::fsync_dir(&self.dir).map_err(|e| Error::io("fsync", &self.dir, e))?;
        r?;
        let mut index = self.lock_index();
        let digests = index.entry(key.to_owned()).or_default();
        if !digests.contains(&digest_hex) {
            digests.push(digest_hex);
        }
        drop(index);
        Ok(TreeRef {
            path: tree,
            digest: digest.to_vec(),
        })
    }

    /// Load a finished tree, checking its length and checksum; a damaged or partial
    /// file is an error (and is never returned as a tree).
    pub fn load(&self, r: &TreeRef) -> Result<Vec<u8>> {
        load_tree(&r.path)
    }

    /// Delete the trees stored for an identity (`key` as given to
    /// [`TreeStore::store`]), except the one for digest `keep`.
    pub fn remove_for(&self, key: &str, keep: Option<&[u8]>) -> Result<()> {
        let keep = keep.map(hex::encode);
        let doomed: Vec<String> = {
            let mut index = self.lock_index();
            let Some(digests) = index.get_mut(key) else {
                return Ok(());
            };
            let doomed = digests
                .iter()
                .filter(|d| Some(*d) != keep.as_ref())
                .cloned()
                .collect();
            digests.retain(|d| Some(d) == keep.as_ref());
            if digests.is_empty() {
                index.remove(key);
            }
            doomed
        };
        for digest in doomed {
            let p = self.dir.join(format!("{key}-{digest}.tree"));
            match fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("unlink", p, e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
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
