//! Salted block hashing: the one hash operation a Merkle tree is built from.

use sha2::digest::Digest;

use crate::params::{HashAlg, Params};

/// Zeros used to pad short blocks without allocating.
static ZEROS: [u8; 65536] = [0; 65536];

#[derive(Clone)]
enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// Hashes one Merkle block: `H(salt prefix ‖ block ‖ zero padding to block size)`.
///
/// The salted prefix is absorbed once; each block starts from a clone of that state.
#[derive(Clone)]
pub(crate) struct BlockHasher {
    proto: State,
    block_size: usize,
}

impl BlockHasher {
    pub(crate) fn new(params: &Params) -> BlockHasher {
        let salt = params.salt();
        let mut prefix = [0u8; 128];
        let prefix = if salt.is_empty() {
            &prefix[..0]
        } else {
            prefix[..salt.len()].copy_from_slice(salt);
            &prefix[..params.hash_alg().compression_block_size()]
        };
        let proto = match params.hash_alg() {
            HashAlg::Sha256 => State::Sha256(sha2::Sha256::new_with_prefix(prefix)),
            HashAlg::Sha512 => State::Sha512(sha2::Sha512::new_with_prefix(prefix)),
        };
        BlockHasher {
            proto,
            block_size: params.block_size(),
        }
    }

    /// Hash `block` (at most one block; shorter input is zero-padded) into `out`
    /// (exactly the digest size). Allocation-free.
    #[inline]
    pub(crate) fn hash_block(&self, block: &[u8], out: &mut [u8]) {
        debug_assert!(block.len() <= self.block_size);
        let mut pad = self.block_size - block.len();
        match &self.proto {
            State::Sha256(p) => {
                let mut h = p.clone();
                h.update(block);
                while pad > 0 {
                    let n = pad.min(ZEROS.len());
                    h.update(&ZEROS[..n]);
                    pad -= n;
                }
                out.copy_from_slice(&h.finalize());
            }
            State::Sha512(p) => {
                let mut h = p.clone();
                h.update(block);
                while pad > 0 {
                    let n = pad.min(ZEROS.len());
                    h.update(&ZEROS[..n]);
                    pad -= n;
                }
                out.copy_from_slice(&h.finalize());
            }
        }
    }
}
