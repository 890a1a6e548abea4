//! Merkle trees for the mount: built by the guard from the data at measurement time
//! (fs-verity's format, SHA-256, 4 KiB blocks, no salt — what `fsverity digest`
//! computes by default), and checked against on every read before data leaves the
//! daemon.

use std::sync::Arc;

use vigil_fsverity::{HashAlg, Params, TreeSource, Verifier};
use vigil_ima::HashAlgo;

/// Block size of the trees vigil builds (fs-verity's default).
pub const BLOCK: u64 = 4096;

fn params() -> Params {
    Params::new(HashAlg::Sha256, BLOCK as u32, &[]).expect("SHA-256/4K is valid")
}

/// The tree builder to configure the guard with, so that the trees it stores are the
/// ones [`ReadCheck`] expects.
pub fn tree_builder() -> Arc<dyn vigil_guard::TreeBuilder> {
    Arc::new(vigil_guard::FsVerityTrees::new(params()))
}

/// A stored tree shared between the measurement that owns it and its verifier.
pub struct SharedTree(pub Arc<Vec<u8>>);

impl TreeSource for SharedTree {
    fn tree_size(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
    fn block<'a>(&'a self, index: u64, scratch: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        <[u8] as TreeSource>::block(&self.0[..], index, scratch)
    }
}

/// How the reads of one measured version of a file are checked.
pub enum ReadCheck {
    /// More than one block: each range against the Merkle tree.
    Tree(Box<Verifier<SharedTree>>),
    /// At most one block (fs-verity stores no tree): the whole content against the
    /// measured content digest.
    Whole {
        algo: HashAlgo,
        digest: Vec<u8>,
        size: u64,
    },
}

impl ReadCheck {
    /// The check for a file of `size` bytes with stored tree `tree` (built by
    /// [`tree_builder`]'s builder), whose content digest is `digest` in `algo`.
    pub fn new(
        size: u64,
        tree: Arc<Vec<u8>>,
        algo: HashAlgo,
        digest: Vec<u8>,
    ) -> Result<ReadCheck, String> {
        if size <= BLOCK {
            return Ok(ReadCheck::Whole { algo, digest, size });
        }
        let p = params();
        let bs = BLOCK as usize;
        if tree.len() < bs {
            return Err(format!(
                "stored tree of {} bytes is too short for a {size}-byte file",
                tree.len()
            ));
        }
        // The root hash is the hash of the tree's first (top-level) block.
        let root = HashAlg::Sha256.hash(&tree[..bs]);
        Verifier::new(&p, size, &root, SharedTree(tree))
            .map(|v| ReadCheck::Tree(Box::new(v)))
            .map_err(|e| e.to_string())
    }

    /// Size of the measured version.
    pub fn size(&self) -> u64 {
        match self {
            ReadCheck::Tree(v) => v.geometry().data_size(),
            ReadCheck::Whole { size, .. } => *size,
        }
    }

    /// The range to read so that `[offset, offset + len)` can be checked: whole blocks,
    /// clipped to the measured size (the whole file for one-block files).
    pub fn span(&self, offset: u64, len: u64) -> (u64, u64) {
        let size = self.size();
        match self {
            ReadCheck::Whole { .. } => (0, size),
            ReadCheck::Tree(_) => {
                let start = (offset / BLOCK) * BLOCK;
                let end = offset
                    .saturating_add(len)
                    .div_ceil(BLOCK)
                    .saturating_mul(BLOCK)
                    .min(size);
                (start.min(size), end.max(start.min(size)))
            }
        }
    }

    /// Check `data`, the bytes read at `offset` over exactly the [`ReadCheck::span`].
    /// `Err` names the first block that does not match.
    pub fn verify(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        match self {
            ReadCheck::Tree(v) => v.verify(offset, data).map_err(|e| e.to_string()),
            ReadCheck::Whole { algo, digest, size } => {
                if data.len() as u64 != *size {
                    return Err(format!("file is {} bytes, measured {size}", data.len()));
                }
                let got = algo.digest(data).map_err(|e| e.to_string())?;
                if &got != digest {
                    return Err("content does not match its measurement".into());
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn root_of_built_tree_matches_fsverity() {
        for n in [4097usize, 8192, 300_000, 1 << 20] {
            let d = data(n);
            let mut building = tree_builder().start();
            // Fed in uneven pieces, as reads return them.
            for piece in d.chunks(100_003) {
                building.update(piece);
            }
            let built = building.finish().unwrap();
            let tree = built.tree;
            let t = vigil_fsverity::build_tree_from_slice(&d, &params());
            assert_eq!(built.digest, t.digest().as_bytes());
            assert_eq!(HashAlg::Sha256.hash(&tree[..4096]), t.root_hash());
            let c = ReadCheck::new(n as u64, Arc::new(tree), HashAlgo::Sha256, vec![]).unwrap();
            let (s, e) = c.span(5000, 10);
            assert_eq!((s, e), (4096, 8192.min(n as u64)));
            c.verify(s, &d[s as usize..e as usize]).unwrap();
            c.verify(0, &d).unwrap();
            let mut bad = d.clone();
            bad[n - 1] ^= 1;
            let (s, e) = c.span(n as u64 - 1, 1);
            assert!(c.verify(s, &bad[s as usize..e as usize]).is_err());
            // Blocks before the flipped one still verify.
            c.verify(0, &bad[..4096]).unwrap();
        }
    }

    #[test]
    fn small_files_check_the_whole_content() {
        let d = data(100);
        let digest = HashAlgo::Sha256.digest(&d).unwrap();
        let c = ReadCheck::new(100, Arc::new(Vec::new()), HashAlgo::Sha256, digest).unwrap();
        assert_eq!(c.span(10, 5), (0, 100));
        c.verify(0, &d).unwrap();
        assert!(c.verify(0, &d[..99]).is_err());
        let mut bad = d.clone();
        bad[3] = 0;
        assert!(c.verify(0, &bad).is_err());
    }
}
