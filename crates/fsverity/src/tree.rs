//! Building Merkle trees: the streaming [`TreeBuilder`], the finished [`Tree`] in the
//! kernel's stored layout, and the tree's [`Geometry`].

use std::io::Read;

use rayon::prelude::*;

use crate::descriptor::{Descriptor, FileDigest, DESCRIPTOR_SIZE};
use crate::hash::BlockHasher;
use crate::params::{Params, MAX_USERSPACE_LEVELS};
use crate::{Error, Result};

/// How much [`TreeBuilder::read_from`] reads per `read()`; two such buffers are in use
/// (one being filled while the other is hashed).
pub const READ_CHUNK: usize = 4 << 20;

/// Fewer full blocks than this in one [`TreeBuilder::update`] are hashed on the calling
/// thread; more are spread over all cores.
const PARALLEL_MIN_BLOCKS: usize = 64;

/// Where each level of a file's tree lives in the stored (kernel) layout.
///
/// Level 0 holds the hashes of the data blocks; the last level has one block, whose hash
/// is the root. Levels are stored root level first, level 0 last, each block padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    block_size: u64,
    log_arity: u32,
    digest_size: usize,
    data_size: u64,
    data_blocks: u64,
    /// blocks in each level, level 0 first
    level_blocks: Vec<u64>,
    /// index of each level's first block in the stored tree, level 0 first
    level_start: Vec<u64>,
}

impl Geometry {
    /// The tree geometry of a file of `data_size` bytes.
    ///
    /// Fails with [`Error::TooManyLevels`] beyond fsverity-utils' 64 levels.
    pub fn new(params: &Params, data_size: u64) -> Result<Geometry> {
        let bs = params.block_size() as u64;
        let arity = params.hashes_per_block() as u64;
        let data_blocks = data_size.div_ceil(bs);
        let mut level_blocks = Vec::new();
        let mut n = data_blocks;
        while n > 1 {
            n = n.div_ceil(arity);
            level_blocks.push(n);
            if level_blocks.len() > MAX_USERSPACE_LEVELS {
                return Err(Error::TooManyLevels {
                    data_size,
                    levels: level_blocks.len(),
                    max: MAX_USERSPACE_LEVELS,
                });
            }
        }
        let mut level_start = vec![0; level_blocks.len()];
        for l in (0..level_blocks.len().saturating_sub(1)).rev() {
            level_start[l] = level_start[l + 1] + level_blocks[l + 1];
        }
        Ok(Geometry {
            block_size: bs,
            log_arity: arity.trailing_zeros(),
            digest_size: params.digest_size(),
            data_size,
            data_blocks,
            level_blocks,
            level_start,
        })
    }

    /// Number of tree levels (0 for files of at most one block).
    pub fn levels(&self) -> usize {
        self.level_blocks.len()
    }
    /// Number of data blocks (`ceil(data_size / block_size)`).
    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }
    /// File size.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }
    /// Merkle block size.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }
    /// Number of blocks in level `level` (0 = hashes of data blocks).
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.level_blocks[level]
    }
    /// Index of level `level`'s first block in the stored tree.
    pub fn level_start(&self, level: usize) -> u64 {
        self.level_start[level]
    }
    /// Total stored tree blocks.
    pub fn tree_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }
    /// Size of the stored tree in bytes (what `--out-merkle-tree` writes).
    pub fn tree_size(&self) -> u64 {
        self.tree_blocks() * self.block_size
    }
    /// Where the hash of block `index` of level `level - 1` (or of data block `index`
    /// when `level` is 0) is stored: (stored tree block, byte offset within it).
    pub fn hash_location(&self, level: usize, index: u64) -> (u64, usize) {
        let block = self.level_start[level] + (index >> self.log_arity);
        let offset = (index & ((1 << self.log_arity) - 1)) as usize * self.digest_size;
        (block, offset)
    }
}

/// A finished Merkle tree: root hash, descriptor, file digest and (when kept) the stored
/// tree in kernel layout.
#[derive(Debug, Clone)]
pub struct Tree {
    descriptor: Descriptor,
    digest: FileDigest,
    tree: Vec<u8>,
}

impl Tree {
    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    /// The 256 descriptor bytes, as `fsverity digest --out-descriptor` writes them.
    pub fn descriptor_bytes(&self) -> [u8; DESCRIPTOR_SIZE] {
        self.descriptor.to_bytes()
    }
    /// The Merkle root hash.
    pub fn root_hash(&self) -> &[u8] {
        self.descriptor.root_hash()
    }
    /// The fs-verity file digest.
    pub fn digest(&self) -> FileDigest {
        self.digest
    }
    /// The stored tree, root level first, as `fsverity digest --out-merkle-tree` writes
    /// it and `FS_IOC_READ_VERITY_METADATA` returns it. Empty for files of at most one
    /// block, and when the builder was told not to keep the tree.
    pub fn merkle_tree(&self) -> &[u8] {
        &self.tree
    }
    /// Take the stored tree out.
    pub fn into_merkle_tree(self) -> Vec<u8> {
        self.tree
    }
    /// The parameters.
    pub fn params(&self) -> &Params {
        self.descriptor.params()
    }
    /// The file size.
    pub fn data_size(&self) -> u64 {
        self.descriptor.data_size()
    }
}

struct Level {
    /// the block being filled with hashes from the level below
    pending: Vec<u8>,
    /// hashes received so far
    count: u64,
    /// finished blocks, in order (only when the tree is kept)
    stored: Vec<u8>,
}

/// A streaming Merkle tree builder.
///
/// Feed the file's bytes in order with [`update`](TreeBuilder::update) (any split) or
/// [`read_from`](TreeBuilder::read_from), then [`finish`](TreeBuilder::finish). Memory
/// is one pending block per level, plus the stored tree (about 1/127 of the data at
/// SHA-256/4K) when [`keep_tree`](TreeBuilder::keep_tree) is set. Full blocks given in
/// one large `update` are hashed on all cores.
pub struct TreeBuilder {
    params: Params,
    hasher: BlockHasher,
    keep_tree: bool,
    partial: Vec<u8>,
    data_size: u64,
    levels: Vec<Level>,
    scratch: Vec<u8>,
}

impl TreeBuilder {
    /// A builder for `params` that computes only the digest (the tree is not kept).
    pub fn new(params: &Params) -> TreeBuilder {
        TreeBuilder {
            params: params.clone(),
            hasher: BlockHasher::new(params),
            keep_tree: false,
            partial: Vec::with_capacity(params.block_size()),
            data_size: 0,
            levels: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Whether to keep the stored tree for [`Tree::merkle_tree`].
    pub fn keep_tree(mut self, keep: bool) -> TreeBuilder {
        self.keep_tree = keep;
        self
    }

    /// Feed the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let bs = self.params.block_size();
        let ds = self.params.digest_size();
        self.data_size += data.len() as u64;
        if !self.partial.is_empty() {
            let take = (bs - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == bs {
                let mut h = [0u8; 64];
                self.hasher.hash_block(&self.partial, &mut h[..ds]);
                self.partial.clear();
                self.push_hash(0, &h[..ds]);
            }
        }
        let full = data.len() / bs;
        if full > 0 {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.resize(full * ds, 0);
            let hasher = &self.hasher;
            let blocks = &data[..full * bs];
            if full >= PARALLEL_MIN_BLOCKS {
                // Work items of 16 blocks: small enough to balance, and even, so the
                // two-at-a-time hasher is always paired.
                scratch
                    .par_chunks_mut(16 * ds)
                    .zip(blocks.par_chunks(16 * bs))
                    .for_each(|(out, blocks)| hasher.hash_blocks(blocks, out));
            } else {
                hasher.hash_blocks(blocks, &mut scratch);
            }
            for h in scratch.chunks(ds) {
                self.push_hash(0, h);
            }
            self.scratch = scratch;
            data = &data[full * bs..];
        }
        self.partial.extend_from_slice(data);
    }

    /// Append a hash to `level`, hashing the level's block upwards when it fills.
    fn push_hash(&mut self, mut level: usize, hash: &[u8]) {
        let bs = self.params.block_size();
        let ds = self.params.digest_size();
        let mut carry = [0u8; 64];
        carry[..ds].copy_from_slice(hash);
        loop {
            if level == self.levels.len() {
                self.levels.push(Level {
                    pending: Vec::with_capacity(bs),
                    count: 0,
                    stored: Vec::new(),
                });
            }
            let lv = &mut self.levels[level];
            lv.pending.extend_from_slice(&carry[..ds]);
            lv.count += 1;
            if lv.pending.len() < bs {
                return;
            }
            self.hasher.hash_block(&lv.pending, &mut carry[..ds]);
            if self.keep_tree {
                lv.stored.extend_from_slice(&lv.pending);
            }
            lv.pending.clear();
            level += 1;
        }
    }

    /// Read `reader` to EOF, feeding everything to the builder. Reads in
    /// [`READ_CHUNK`]-sized pieces, the next piece being read while the previous one is
    /// hashed.
    pub fn read_from<R: Read + Send>(&mut self, reader: &mut R) -> std::io::Result<u64> {
        // Small files are read with one small buffer; larger ones switch to two big ones.
        let mut first = vec![0u8; 64 << 10];
        let n = read_full(reader, &mut first)?;
        self.update(&first[..n]);
        if n < first.len() {
            return Ok(n as u64);
        }
        drop(first);
        let mut total = n as u64;
        let mut cur = vec![0u8; READ_CHUNK];
        let mut next = vec![0u8; READ_CHUNK];
        let mut len = read_full(reader, &mut cur)?;
        while len > 0 {
            total += len as u64;
            let (read, ()) =
                rayon::join(|| read_full(reader, &mut next), || self.update(&cur[..len]));
            len = read?;
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(total)
    }

    /// Finish: pad and hash the last data block and the last block of each level, and
    /// produce the descriptor, digest and (if kept) the stored tree.
    pub fn finish(mut self) -> Tree {
        let ds = self.params.digest_size();
        let bs = self.params.block_size();
        if !self.partial.is_empty() {
            let mut h = [0u8; 64];
            self.hasher.hash_block(&self.partial, &mut h[..ds]);
            self.push_hash(0, &h[..ds]);
        }
        let mut root = [0u8; 64];
        let mut level = 0;
        // An empty file hashes nothing: its root is all zeros.
        while level < self.levels.len() {
            if self.levels[level].count == 1 {
                // The top: a single hash, never stored as a block.
                root[..ds].copy_from_slice(&self.levels[level].pending[..ds]);
                self.levels.truncate(level);
                break;
            }
            let lv = &mut self.levels[level];
            if !lv.pending.is_empty() {
                lv.pending.resize(bs, 0);
                let mut h = [0u8; 64];
                self.hasher.hash_block(&lv.pending, &mut h[..ds]);
                if self.keep_tree {
                    lv.stored.extend_from_slice(&lv.pending);
                }
                lv.pending.clear();
                self.push_hash(level + 1, &h[..ds]);
            }
            level += 1;
        }
        let tree = if self.keep_tree {
            let total = self.levels.iter().map(|l| l.stored.len()).sum();
            let mut tree = Vec::with_capacity(total);
            for lv in self.levels.iter().rev() {
                tree.extend_from_slice(&lv.stored);
            }
            tree
        } else {
            Vec::new()
        };
        let descriptor = Descriptor::new(self.params, self.data_size, &root[..ds]);
        let digest = descriptor.digest();
        Tree {
            descriptor,
            digest,
            tree,
        }
    }
}

/// Read until `buf` is full or EOF; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Build the tree of everything `reader` yields (read to EOF), keeping the stored tree.
pub fn build_tree<R: Read + Send>(mut reader: R, params: &Params) -> std::io::Result<Tree> {
    let mut b = TreeBuilder::new(params).keep_tree(true);
    b.read_from(&mut reader)?;
    Ok(b.finish())
}

/// Compute the file digest of everything `reader` yields, without keeping the tree.
pub fn compute_digest<R: Read + Send>(mut reader: R, params: &Params) -> std::io::Result<Tree> {
    let mut b = TreeBuilder::new(params);
    b.read_from(&mut reader)?;
    Ok(b.finish())
}

/// Build the tree of bytes already in memory (keeping the stored tree).
pub fn build_tree_from_slice(data: &[u8], params: &Params) -> Tree {
    let mut b = TreeBuilder::new(params).keep_tree(true);
    b.update(data);
    b.finish()
}
