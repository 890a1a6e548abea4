//! Property tests against a tiny independent model of the fs-verity digest (the
//! reference notes' §1.4 pseudocode, written with plain lists of hashes), for sizes
//! around block and level boundaries, every block size, both algorithms, with and
//! without salt.

use proptest::prelude::*;
use sha2::{Digest, Sha256, Sha512};
use vigil_fsverity::{build_tree_from_slice, Geometry, HashAlg, Params, TreeBuilder};

fn h(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    match alg {
        HashAlg::Sha256 => Sha256::digest(data).to_vec(),
        HashAlg::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Returns (digest, stored tree).
fn model(data: &[u8], alg: HashAlg, bs: usize, salt: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = salt.to_vec();
    if !salt.is_empty() {
        prefix.resize(if alg == HashAlg::Sha256 { 64 } else { 128 }, 0);
    }
    let hblk = |b: &[u8]| {
        let mut m = prefix.clone();
        m.extend_from_slice(b);
        m.resize(prefix.len() + bs, 0);
        h(alg, &m)
    };
    let ds = alg.digest_size();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let root = if data.is_empty() {
        vec![0; ds]
    } else {
        let mut hashes: Vec<Vec<u8>> = data.chunks(bs).map(hblk).collect();
        while hashes.len() > 1 {
            let cat = hashes.concat();
            let mut stored = Vec::new();
            hashes = cat
                .chunks(bs)
                .map(|b| {
                    let mut blk = b.to_vec();
                    blk.resize(bs, 0);
                    stored.extend_from_slice(&blk);
                    hblk(b)
                })
                .collect();
            levels.push(stored);
        }
        hashes.pop().unwrap()
    };
    let mut desc = vec![
        1,
        alg.id(),
        bs.trailing_zeros() as u8,
        salt.len() as u8,
        0,
        0,
        0,
        0,
    ];
    desc.extend_from_slice(&(data.len() as u64).to_le_bytes());
    desc.extend_from_slice(&root);
    desc.resize(16 + 64, 0);
    desc.extend_from_slice(salt);
    desc.resize(256, 0);
    let tree = levels.into_iter().rev().flatten().collect();
    (h(alg, &desc), tree)
}

/// Sizes around block and level boundaries for these parameters, capped at `cap`.
fn boundary_sizes(bs: usize, arity: usize, cap: usize) -> Vec<usize> {
    let mut out = vec![0, 1];
    let mut blocks = vec![1, 2, 3, arity - 1, arity, arity + 1, 2 * arity];
    blocks.extend([arity * arity - 1, arity * arity, arity * arity + 1]);
    for n in blocks {
        let base = n * bs;
        for s in [base.saturating_sub(1), base, base + 1] {
            if s <= cap {
                out.push(s);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn case() -> impl Strategy<Value = (HashAlg, usize, Vec<u8>, usize, usize)> {
    (
        prop::sample::select(HashAlg::ALL.to_vec()),
        6u32..=16,
        prop::collection::vec(any::<u8>(), 0..=32),
        prop::bool::ANY,
        any::<prop::sample::Index>(),
        0usize..4096,
    )
        .prop_filter_map(
            "block size too small",
            |(alg, lbs, salt, salted, idx, jitter)| {
                let bs = 1usize << lbs;
                if bs < 2 * alg.digest_size() {
                    return None;
                }
                let salt = if salted { salt } else { Vec::new() };
                let sizes = boundary_sizes(bs, bs / alg.digest_size(), 3 << 20);
                let size = *idx.get(&sizes);
                Some((alg, bs, salt, size, jitter))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn matches_model((alg, bs, salt, size, jitter) in case()) {
        let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8).collect();
        let params = Params::new_userspace(alg, bs as u32, &salt).unwrap();
        let (want_digest, want_tree) = model(&data, alg, bs, &salt);
        let tree = build_tree_from_slice(&data, &params);
        prop_assert_eq!(tree.digest().as_bytes().to_vec(), want_digest);
        prop_assert_eq!(tree.merkle_tree(), &want_tree[..]);
        prop_assert_eq!(Geometry::new(&params, size as u64).unwrap().tree_size(), want_tree.len() as u64);
        // Streaming in pieces of an arbitrary size gives the same result.
        let mut b = TreeBuilder::new(&params).keep_tree(true);
        for piece in data.chunks(jitter + 1) {
            b.update(piece);
        }
        let streamed = b.finish();
        prop_assert_eq!(streamed.digest(), tree.digest());
        prop_assert_eq!(streamed.merkle_tree(), tree.merkle_tree());
    }
}

#[test]
fn every_block_size_both_algorithms() {
    // Each power of two from the smallest userspace size to 64K, at level boundaries
    // that fit in a few MiB.
    for alg in HashAlg::ALL {
        for lbs in 6..=16 {
            let bs = 1usize << lbs;
            if bs < 2 * alg.digest_size() {
                continue;
            }
            for size in boundary_sizes(bs, bs / alg.digest_size(), 1 << 20) {
                let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                for salt in [&b""[..], b"\x01\x02\x03"] {
                    let params = Params::new_userspace(alg, bs as u32, salt).unwrap();
                    let (d, t) = model(&data, alg, bs, salt);
                    let tree = build_tree_from_slice(&data, &params);
                    assert_eq!(
                        tree.digest().as_bytes(),
                        &d[..],
                        "{alg} bs {bs} size {size}"
                    );
                    assert_eq!(tree.merkle_tree(), &t[..], "{alg} bs {bs} size {size}");
                }
            }
        }
    }
}
