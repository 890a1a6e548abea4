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
    /// Many-at-a-time SHA-256 of whole blocks, where the CPU has a way to do it.
    lanes: Option<Lanes>,
}

/// What hashing whole blocks side by side with raw compression needs: the state after
/// the salt prefix, the final padding block (block sizes are multiples of 64, so the
/// padding always fills one extra compression block), and how.
#[derive(Clone)]
struct Lanes {
    init: [u32; 8],
    last: [u8; 64],
    how: LeafHashing,
}

impl Lanes {
    fn new(prefix: &[u8], block_size: usize, how: LeafHashing) -> Lanes {
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
        Lanes { init, last, how }
    }
}

impl BlockHasher {
    pub(crate) fn new(params: &Params) -> BlockHasher {
        // Only SHA-256 has more than one way (and needs the calibration).
        let how = match params.hash_alg() {
            HashAlg::Sha256 => leaf_calibration().chosen,
            HashAlg::Sha512 => LeafHashing::Sha2,
        };
        Self::with_leaf_hashing(params, how)
    }

    /// A hasher that hashes SHA-256 blocks the way `how` says (which this CPU must
    /// support).
    pub(crate) fn with_leaf_hashing(params: &Params, how: LeafHashing) -> BlockHasher {
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
        let lanes = (params.hash_alg() == HashAlg::Sha256 && how != LeafHashing::Sha2)
            .then(|| Lanes::new(prefix, params.block_size(), how));
        BlockHasher {
            proto,
            block_size: params.block_size(),
            lanes,
        }
    }

    /// Hash whole blocks (`blocks.len()` a multiple of the block size) into consecutive
    /// digests in `out`, many at a time where the CPU allows.
    pub(crate) fn hash_blocks(&self, mut blocks: &[u8], mut out: &mut [u8]) {
        let bs = self.block_size;
        if blocks.is_empty() {
            return;
        }
        let ds = out.len() / (blocks.len() / bs);
        if let Some(lanes) = &self.lanes {
            if lanes.how == LeafHashing::Avx512x16 {
                let n = crate::avx512::LANES;
                while blocks.len() >= n * bs {
                    let (now, rest) = blocks.split_at(n * bs);
                    let (digests, rest_out) = std::mem::take(&mut out).split_at_mut(n * ds);
                    crate::avx512::hash16(&lanes.init, now, &lanes.last, digests);
                    (blocks, out) = (rest, rest_out);
                }
            }
            if crate::shani::available() {
                while blocks.len() >= 2 * bs {
                    let (a, rest) = blocks.split_at(bs);
                    let (b, rest) = rest.split_at(bs);
                    let (mut sa, mut sb) = (lanes.init, lanes.init);
                    crate::shani::compress2(&mut sa, &mut sb, a, b);
                    crate::shani::compress2(&mut sa, &mut sb, &lanes.last, &lanes.last);
                    let (digests, rest_out) = std::mem::take(&mut out).split_at_mut(2 * ds);
                    for (o, s) in digests.chunks_exact_mut(ds).zip([sa, sb]) {
                        for (dst, w) in o.chunks_exact_mut(4).zip(s) {
                            dst.copy_from_slice(&w.to_be_bytes());
                        }
                    }
                    (blocks, out) = (rest, rest_out);
                }
            }
        }
        for (block, o) in blocks.chunks_exact(bs).zip(out.chunks_exact_mut(ds)) {
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

/// How the leaf level of SHA-256 trees (many independent, equally long blocks) is
/// hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafHashing {
    /// Sixteen blocks at a time, one per 32-bit lane of AVX-512 registers.
    Avx512x16,
    /// Two blocks at a time on the x86 SHA extensions, their rounds interleaved.
    ShaNix2,
    /// One block at a time with the `sha2` crate (its own run-time dispatch).
    Sha2,
}

impl LeafHashing {
    /// Every way there is (which ones this CPU has: [`LeafHashing::available`]).
    const ALL: [LeafHashing; 3] = [
        LeafHashing::Avx512x16,
        LeafHashing::ShaNix2,
        LeafHashing::Sha2,
    ];

    /// Whether this CPU can hash this way.
    pub fn available(self) -> bool {
        match self {
            LeafHashing::Avx512x16 => crate::avx512::available(),
            LeafHashing::ShaNix2 => crate::shani::available(),
            LeafHashing::Sha2 => true,
        }
    }
}

impl std::fmt::Display for LeafHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeafHashing::Avx512x16 => "AVX-512, 16 blocks at a time",
            LeafHashing::ShaNix2 => "SHA extensions, 2 blocks at a time",
            LeafHashing::Sha2 => "sha2 crate, 1 block at a time",
        })
    }
}

/// Which way of hashing SHA-256 leaf blocks this process uses, and why.
#[derive(Debug, Clone)]
pub struct LeafCalibration {
    /// The fastest way measured.
    pub chosen: LeafHashing,
    /// Each way this CPU has, with its measured speed in bytes per second (best of
    /// several short runs on one thread).
    pub speeds: Vec<(LeafHashing, f64)>,
}

/// Measure, once per process, how fast each available way hashes SHA-256 leaf blocks
/// on this CPU, and choose the fastest: which one wins differs between CPUs (AVX-512 on
/// Intel parts whose SHA extensions are slow, the SHA extensions on AMD), so it is
/// measured rather than guessed from the feature flags. Takes about a millisecond.
pub fn leaf_calibration() -> &'static LeafCalibration {
    static CALIBRATION: std::sync::OnceLock<LeafCalibration> = std::sync::OnceLock::new();
    CALIBRATION.get_or_init(|| {
        const BLOCKS: usize = 64;
        let params = Params::default();
        let data: Vec<u8> = (0..BLOCKS * params.block_size())
            .map(|i| (i * 7) as u8)
            .collect();
        let mut out = vec![0u8; BLOCKS * params.digest_size()];
        let speeds: Vec<(LeafHashing, f64)> = LeafHashing::ALL
            .into_iter()
            .filter(|how| how.available())
            .map(|how| {
                let hasher = BlockHasher::with_leaf_hashing(&params, how);
                let best = (0..5)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        hasher.hash_blocks(&data, &mut out);
                        t.elapsed()
                    })
                    .min()
                    .unwrap_or_default();
                (how, data.len() as f64 / best.as_secs_f64().max(1e-9))
            })
            .collect();
        let chosen = speeds
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(LeafHashing::Sha2, |s| s.0);
        LeafCalibration { chosen, speeds }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `hash_blocks` with every way this CPU has gives `hash_block`'s digests, for every
    /// block count around the group sizes, with and without salt.
    #[test]
    fn every_leaf_hashing_matches_one_block_at_a_time() {
        for salt in [&b""[..], b"salt", &[0xa5; 32]] {
            for bs in [64usize, 1024, 4096] {
                let params = Params::new_userspace(HashAlg::Sha256, bs as u32, salt).unwrap();
                let one = BlockHasher::with_leaf_hashing(&params, LeafHashing::Sha2);
                for n in [0usize, 1, 2, 3, 15, 16, 17, 33, 50] {
                    let data: Vec<u8> = (0..n * bs).map(|i| (i * 13 + i / 4096) as u8).collect();
                    let mut want = vec![0u8; n * 32];
                    for (b, o) in data.chunks(bs).zip(want.chunks_mut(32)) {
                        one.hash_block(b, o);
                    }
                    for how in LeafHashing::ALL.into_iter().filter(|h| h.available()) {
                        let mut got = vec![0u8; n * 32];
                        BlockHasher::with_leaf_hashing(&params, how).hash_blocks(&data, &mut got);
                        assert_eq!(got, want, "{how}, {n} blocks of {bs}, salt {salt:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn calibration_chooses_the_fastest_available() {
        let c = leaf_calibration();
        assert!(c.chosen.available());
        assert!(c
            .speeds
            .iter()
            .all(|(how, speed)| how.available() && *speed > 0.0));
        let fastest = c.speeds.iter().map(|s| s.1).fold(0.0, f64::max);
        assert!(c
            .speeds
            .iter()
            .any(|&(how, speed)| how == c.chosen && speed == fastest));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// SHA-256 leaf digests agree with the `sha2` crate over arbitrary data.
        #[test]
        fn leaf_digests_are_sha256_of_salted_blocks(
            data in proptest::collection::vec(any::<u8>(), 0..40 * 1024),
            salt in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            use sha2::Digest;
            let params = Params::new(HashAlg::Sha256, 1024, &salt).unwrap();
            let n = data.len() / 1024;
            let mut got = vec![0u8; n * 32];
            BlockHasher::new(&params).hash_blocks(&data[..n * 1024], &mut got);
            let mut prefix = vec![0u8; if salt.is_empty() { 0 } else { 64 }];
            prefix[..salt.len()].copy_from_slice(&salt);
            for (b, g) in data.chunks_exact(1024).zip(got.chunks(32)) {
                let want = sha2::Sha256::new().chain_update(&prefix).chain_update(b).finalize();
                prop_assert_eq!(g, &want[..]);
            }
        }
    }
}
