//! Verifying file data against a stored Merkle tree, block by block, as the kernel does
//! on every read of a verity file.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::descriptor::Descriptor;
use crate::hash::BlockHasher;
use crate::params::Params;
use crate::tree::Geometry;
use crate::{Error, Result};

/// Where a [`Verifier`] gets stored tree blocks from (kernel layout, root level first).
///
/// Implemented for trees in memory (`[u8]`, `Vec<u8>`) and for a [`std::fs::File`]
/// holding exactly the tree (read on demand with `pread`). The verifier remembers which
/// blocks it has verified, so a source must return the same bytes for a block every
/// time (as the kernel trusts its page cache); after the stored tree may have changed,
/// call [`Verifier::forget_verified`].
pub trait TreeSource: Sync {
    /// The stored tree's size in bytes.
    fn tree_size(&self) -> std::io::Result<u64>;

    /// Stored tree block `index`, exactly `scratch.len()` (the block size) bytes: either
    /// a slice of the source itself, or `scratch` filled and returned.
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]>;
}

impl TreeSource for [u8] {
    fn tree_size(&self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        let bs = scratch.len() as u64;
        index
            .checked_mul(bs)
            .and_then(|start| Some(start as usize..start.checked_add(bs)? as usize))
            .and_then(|r| self.get(r))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    }
}

impl TreeSource for Vec<u8> {
    fn tree_size(&self) -> std::io::Result<u64> {
        self.as_slice().tree_size()
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        self.as_slice().block(index, scratch)
    }
}

impl<T: TreeSource + ?Sized> TreeSource for &T {
    fn tree_size(&self) -> std::io::Result<u64> {
        (**self).tree_size()
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        (**self).block(index, scratch)
    }
}

impl<T: TreeSource + ?Sized + Send> TreeSource for std::sync::Arc<T> {
    fn tree_size(&self) -> std::io::Result<u64> {
        (**self).tree_size()
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        (**self).block(index, scratch)
    }
}

/// A file that holds exactly the stored tree, read on demand.
impl TreeSource for std::fs::File {
    fn tree_size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        use std::os::unix::fs::FileExt;
        let offset = index
            .checked_mul(scratch.len() as u64)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        self.read_exact_at(scratch, offset)?;
        Ok(scratch)
    }
}

thread_local! {
    /// One block-sized buffer per thread for sources that copy (files); allocated on
    /// first use, reused afterwards.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Verifies byte ranges of a file against its stored Merkle tree and root hash.
///
/// Shared by reference between threads (`&self`, `Sync`): tree blocks, once verified,
/// are marked in an atomic bitmap (one bit per tree block, as the kernel's
/// `hash_block_verified`), so later reads covered by the same blocks only hash their
/// data blocks and the level-0 comparison. No allocation on the verification path
/// (sources that copy use one per-thread buffer, allocated once).
pub struct Verifier<S> {
    geometry: Geometry,
    hasher: BlockHasher,
    root: [u8; 64],
    digest_size: usize,
    log_arity: u32,
    verified: Box<[AtomicU64]>,
    source: S,
}

impl<S: TreeSource> Verifier<S> {
    /// A verifier for a file of `data_size` bytes with tree `source` and root hash
    /// `root_hash`. Fails if the source's size is not the tree size that `params` and
    /// `data_size` imply.
    pub fn new(params: &Params, data_size: u64, root_hash: &[u8], source: S) -> Result<Self> {
        let geometry = Geometry::new(params, data_size)?;
        if root_hash.len() != params.digest_size() {
            return Err(Error::RootHashLength {
                actual: root_hash.len(),
                expected: params.digest_size(),
            });
        }
        let actual = source
            .tree_size()
            .map_err(|e| Error::io("reading the Merkle tree size", e))?;
        if actual != geometry.tree_size() {
            return Err(Error::TreeLength {
                actual,
                expected: geometry.tree_size(),
                data_size,
            });
        }
        let mut root = [0; 64];
        root[..root_hash.len()].copy_from_slice(root_hash);
        let words = geometry.tree_blocks().div_ceil(64) as usize;
        Ok(Verifier {
            hasher: BlockHasher::new(params),
            root,
            digest_size: params.digest_size(),
            log_arity: params.hashes_per_block().trailing_zeros(),
            verified: (0..words).map(|_| AtomicU64::new(0)).collect(),
            geometry,
            source,
        })
    }

    /// A verifier for the file described by `descriptor` (its parameters, size and root).
    pub fn from_descriptor(descriptor: &Descriptor, source: S) -> Result<Self> {
        Self::new(
            descriptor.params(),
            descriptor.data_size(),
            descriptor.root_hash(),
            source,
        )
    }

    /// The tree geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The tree source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Forget which tree blocks were verified (e.g. after the stored tree may have been
    /// replaced); every block is checked again on next use.
    pub fn forget_verified(&self) {
        for w in self.verified.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Verify `data`, the file's bytes starting at `offset`. `offset` must be a multiple
    /// of the block size and `data` whole blocks, except that it may end at EOF with a
    /// partial block. On mismatch the error names the first failing data block
    /// ([`Error::DataBlockMismatch`]) or the tree block that failed while verifying it
    /// ([`Error::TreeBlockMismatch`]).
    pub fn verify(&self, offset: u64, data: &[u8]) -> Result<()> {
        let bs = self.geometry.block_size();
        let size = self.geometry.data_size();
        let range_err = |what| Error::Range {
            offset,
            len: data.len(),
            what,
        };
        if !offset.is_multiple_of(bs) {
            return Err(range_err("offset is not a multiple of the block size"));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= size)
            .ok_or_else(|| range_err("range extends past the end of the file"))?;
        if end % bs != 0 && end != size {
            return Err(range_err(
                "range ends inside a block that is not the file's last",
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let first = offset / bs;
        let ds = self.digest_size;
        let mut got = [0u8; 64];
        if self.geometry.levels() == 0 {
            // A single data block, hashed straight into the root.
            self.hasher.hash_block(data, &mut got[..ds]);
            return if got[..ds] == self.root[..ds] {
                Ok(())
            } else {
                Err(self.data_mismatch(first))
            };
        }
        let bsz = bs as usize;
        let nblocks = data.len().div_ceil(bsz);
        // Data blocks are hashed in batches (many at a time where the CPU allows), then
        // compared in order, so the first mismatch is the one reported.
        const BATCH: usize = 64;
        let mut digests = [0u8; BATCH * 64];
        with_scratch(bsz, |scratch| {
            let mut i = 0;
            while i < nblocks {
                let d = first + i as u64;
                self.ensure_level0_verified(d, scratch)?;
                let (tb, off) = self.geometry.hash_location(0, d);
                let hashes = &self.read(tb, d, scratch)?[off..];
                // The data blocks from d on whose hashes are in this level-0 block.
                let run = (hashes.len() / ds).min(nblocks - i);
                let data = &data[i * bsz..];
                let whole = run.min(data.len() / bsz);
                for b in (0..whole).step_by(BATCH) {
                    let n = BATCH.min(whole - b);
                    let got = &mut digests[..n * ds];
                    self.hasher.hash_blocks(&data[b * bsz..(b + n) * bsz], got);
                    let want = &hashes[b * ds..(b + n) * ds];
                    if let Some(j) = got
                        .chunks(ds)
                        .zip(want.chunks(ds))
                        .position(|(g, w)| g != w)
                    {
                        return Err(self.data_mismatch(d + (b + j) as u64));
                    }
                }
                if whole < run {
                    // The file's last block, partial.
                    self.hasher.hash_block(&data[whole * bsz..], &mut got[..ds]);
                    if got[..ds] != hashes[whole * ds..(whole + 1) * ds] {
                        return Err(self.data_mismatch(d + whole as u64));
                    }
                }
                i += run;
            }
            Ok(())
        })
    }

    fn data_mismatch(&self, block: u64) -> Error {
        Error::DataBlockMismatch {
            block,
            block_size: self.geometry.block_size() as u32,
        }
    }

    fn read<'a>(&'a self, tree_block: u64, block: u64, scratch: &'a mut [u8]) -> Result<&'a [u8]> {
        self.source
            .block(tree_block, scratch)
            .map_err(|source| Error::TreeRead {
                block,
                tree_block,
                source,
            })
    }

    fn is_verified(&self, b: u64) -> bool {
        self.verified[(b / 64) as usize].load(Ordering::Acquire) & (1 << (b % 64)) != 0
    }

    fn mark_verified(&self, b: u64) {
        self.verified[(b / 64) as usize].fetch_or(1 << (b % 64), Ordering::Release);
    }

    /// Make sure the level-0 tree block holding data block `d`'s hash is verified:
    /// ascend to the first verified ancestor (or the root), then descend hashing each
    /// unverified block and comparing it with the hash its parent holds.
    fn ensure_level0_verified(&self, d: u64, scratch: &mut [u8]) -> Result<()> {
        let levels = self.geometry.levels();
        let la = self.log_arity;
        // The level-l tree block on data block d's path, and the offset in it of the
        // hash of the next block down the path (level l-1's block, or d itself).
        let block_at = |l: usize| self.geometry.hash_location(l, d >> (l as u32 * la));
        let mut start = levels; // highest level to verify, exclusive
        for l in 0..levels {
            if self.is_verified(block_at(l).0) {
                start = l;
                break;
            }
        }
        if start == 0 {
            return Ok(());
        }
        let ds = self.digest_size;
        let mut want = [0u8; 64];
        if start == levels {
            want[..ds].copy_from_slice(&self.root[..ds]);
        } else {
            // The verified block of level `start` holds the hash of level start-1's block.
            let (pb, poff) = block_at(start);
            let parent = self.read(pb, d, scratch)?;
            want[..ds].copy_from_slice(&parent[poff..poff + ds]);
        }
        let mut got = [0u8; 64];
        for l in (0..start).rev() {
            let (b, _) = block_at(l);
            let blk = self.read(b, d, scratch)?;
            self.hasher.hash_block(blk, &mut got[..ds]);
            if got[..ds] != want[..ds] {
                return Err(Error::TreeBlockMismatch {
                    block: d,
                    level: l,
                    tree_block: b,
                });
            }
            self.mark_verified(b);
            if l > 0 {
                let (_, off) = block_at(l);
                want[..ds].copy_from_slice(&blk[off..off + ds]);
            }
        }
        Ok(())
    }
}

fn with_scratch<R>(bs: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < bs {
                buf.resize(bs, 0);
            }
            f(&mut buf[..bs])
        }
        // Re-entered from within a source's `block` on this thread: use a fresh buffer.
        Err(_) => f(&mut vec![0; bs]),
    })
}
