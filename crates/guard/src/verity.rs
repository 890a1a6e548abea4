//! The fs-verity tree builder of `vigil-fsverity`, as the guard's [`TreeBuilder`].

use vigil_ima::HashAlgo;

use crate::guard::{TreeBuild, TreeBuilder, VerityTree};

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
    fn start(&self) -> Box<dyn TreeBuild> {
        Box::new(Building(
            vigil_fsverity::TreeBuilder::new(&self.params).keep_tree(true),
        ))
    }
}

struct Building(vigil_fsverity::TreeBuilder);

impl TreeBuild for Building {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(self: Box<Self>) -> Result<VerityTree, String> {
        let tree = self.0.finish();
        let digest = tree.digest();
        let algo = HashAlgo::from_name(digest.alg().name()).map_err(|e| e.to_string())?;
        Ok(VerityTree {
            algo,
            digest: digest.as_bytes().to_vec(),
            tree: tree.into_merkle_tree(),
        })
    }
}
