//! The fs-verity tree builder of `vigil-fsverity`, as the guard's [`TreeBuilder`].

use std::io::Read;

use vigil_ima::HashAlgo;

use crate::guard::{TreeBuilder, VerityTree};

/// Builds fs-verity Merkle trees (digests equal to the kernel's and `fsverity digest`'s).
#[derive(Debug, Clone, Default)]
pub struct FsVerityTrees {
    params: vigil_fsverity::Params,
}

impl FsVerityTrees {
    /// Trees with these parameters (hash algorithm, block size, salt).
    pub fn new(params: vigil_fsverity::Params) -> Self {
        FsVerityTrees { params }
    }
}

impl TreeBuilder for FsVerityTrees {
    fn build(
        &self,
        content: &mut dyn Read,
        _size: u64,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<VerityTree, String> {
        let mut b = vigil_fsverity::TreeBuilder::new(&self.params).keep_tree(true);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            };
            b.update(&buf[..n]);
            if !keep_going() {
                return Err("cancelled: the file changed".into());
            }
        }
        let tree = b.finish();
        let digest = tree.digest();
        let algo = HashAlgo::from_name(digest.alg().name()).map_err(|e| e.to_string())?;
        Ok(VerityTree {
            algo,
            digest: digest.as_bytes().to_vec(),
            tree: tree.into_merkle_tree(),
        })
    }
}
