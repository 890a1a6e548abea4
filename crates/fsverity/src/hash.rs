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
    /// Two-at-a-time SHA-256 of whole blocks, where the CPU has the SHA extensions.
    two_way: Option<TwoWay>,
}

/// What hashing a whole block with raw compression needs: the state after the salt
/// prefix, and the final padding block (block sizes are multiples of 64, so the
/// padding always fills one extra compression block).
#[derive(Clone)]
struct TwoWay {
    init: [u32; 8],
    last: [u8; 64],
}

impl TwoWay {
    fn new(prefix: &[u8], block_size: usize) -> TwoWay {
        use sha2::digest::generic_array::GenericArray;
        let mut init = crate::sha256::IV;
        let blocks: Vec<_> = prefix
            .chunks(64)
            .map(|c| *GenericArray::from_slice(c))
            .collect();
        sha2::compress256(&mut init, &blocks);
        let mut last = [0u8; 64];
        last[0] = 0x80;
        let bits = ((prefix.len() + block_size) as u64) * 8;
        last[56..].copy_from_slice(&bits.to_be_bytes());
        TwoWay { init, last }
    }
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
        let two_way = (params.hash_alg() == HashAlg::Sha256 && crate::shani::available())
            .then(|| TwoWay::new(prefix, params.block_size()));
        BlockHasher {
            proto,
            block_size: params.block_size(),
            two_way,
        }
    }

    /// Hash whole blocks (`blocks.len()` a multiple of the block size) into consecutive
    /// digests in `out`, two at a time where the CPU allows.
    pub(crate) fn hash_blocks(&self, blocks: &[u8], out: &mut [u8]) {
        let bs = self.block_size;
        let ds = out.len() / (blocks.len() / bs).max(1);
        let mut ins = blocks.chunks_exact(bs);
        let mut outs = out.chunks_exact_mut(ds);
        if let Some(tw) = &self.two_way {
            while ins.len() >= 2 {
                let (a, b) = (
                    ins.next().unwrap_or_default(),
                    ins.next().unwrap_or_default(),
                );
                let (mut sa, mut sb) = (tw.init, tw.init);
                crate::shani::compress2(&mut sa, &mut sb, a, b);
                crate::shani::compress2(&mut sa, &mut sb, &tw.last, &tw.last);
                for s in [sa, sb] {
                    if let Some(o) = outs.next() {
                        for (dst, w) in o.chunks_exact_mut(4).zip(s) {
                            dst.copy_from_slice(&w.to_be_bytes());
                        }
                    }
                }
            }
        }
        for (block, o) in ins.zip(outs) {
            self.hash_block(block, o);
        }
    }

    /// Hash `block` (at most one block; shorter input is zero-padded) into `out`
    /// (exactly the digest size). Allocation-free.
    #[inline]
    pub(crate) fn hash_block(&self, block: &[u8], out: &mut [u8]) {
        debug_assert!(block.len() <= self.block_size);
        let pad = self.block_size - block.len();
        match &self.proto {
            State::Sha256(p) => hash_padded(p, block, pad, out),
            State::Sha512(p) => hash_padded(p, block, pad, out),
        }
    }
}

/// `H(proto state ‖ block ‖ pad zero bytes)` into `out`.
#[inline]
fn hash_padded<D: Digest + Clone>(proto: &D, block: &[u8], mut pad: usize, out: &mut [u8]) {
    let mut h = proto.clone();
    h.update(block);
    while pad > 0 {
        let n = pad.min(ZEROS.len());
        h.update(&ZEROS[..n]);
        pad -= n;
    }
    out.copy_from_slice(&h.finalize());
}
