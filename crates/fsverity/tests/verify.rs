//! Block verification: every range of an intact file verifies; flipping any single byte
//! of data or tree makes exactly the ranges that depend on it fail.

use std::collections::BTreeSet;
use std::sync::Arc;

use vigil_fsverity::{build_tree_from_slice, Error, Geometry, HashAlg, Params, Verifier};

fn data_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + (i >> 10)) as u8).collect()
}

/// Stored tree blocks on data block `d`'s path.
fn path(g: &Geometry, params: &Params, d: u64) -> Vec<u64> {
    let la = params.hashes_per_block().trailing_zeros();
    (0..g.levels())
        .map(|l| g.hash_location(l, d >> (l as u32 * la)).0)
        .collect()
}

fn failing_blocks<S: vigil_fsverity::TreeSource>(
    v: &Verifier<S>,
    data: &[u8],
    bs: usize,
) -> BTreeSet<u64> {
    let mut failed = BTreeSet::new();
    // Visit blocks in a scrambled order so cached verification is exercised.
    let n = data.len().div_ceil(bs);
    for k in 0..n {
        let d = (k * 7919) % n;
        let chunk = &data[d * bs..((d + 1) * bs).min(data.len())];
        match v.verify((d * bs) as u64, chunk) {
            Ok(()) => {}
            Err(Error::DataBlockMismatch { block, .. })
            | Err(Error::TreeBlockMismatch { block, .. }) => {
                assert_eq!(block, d as u64);
                failed.insert(d as u64);
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    failed
}

fn check_flips(alg: HashAlg, bs: u32, salt: &[u8], size: usize) {
    let params = Params::new(alg, bs, salt).unwrap();
    let data = data_of(size);
    let tree = build_tree_from_slice(&data, &params);
    let g = Geometry::new(&params, size as u64).unwrap();
    let bs = bs as usize;
    let root = tree.root_hash().to_vec();
    let stored = tree.merkle_tree().to_vec();

    let v = Verifier::new(&params, size as u64, &root, stored.as_slice()).unwrap();
    assert!(failing_blocks(&v, &data, bs).is_empty());
    v.verify(0, &data).unwrap();

    // Tree flips: one byte in every tree block, at a varying position (hash area and
    // padding alike).
    for b in 0..g.tree_blocks() {
        let mut t = stored.clone();
        let pos = b as usize * bs + (b as usize * 131) % bs;
        t[pos] ^= 0x40;
        let v = Verifier::new(&params, size as u64, &root, t.as_slice()).unwrap();
        let want: BTreeSet<u64> = (0..g.data_blocks())
            .filter(|&d| path(&g, &params, d).contains(&b))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(
            failing_blocks(&v, &data, bs),
            want,
            "tree block {b} byte {pos}"
        );
        assert!(v.verify(0, &data).is_err());
    }
    // Data flips: first, last and a spread of bytes.
    let positions = (0..size).step_by(size / 23 + 1).chain([0, size - 1]);
    let v = Verifier::new(&params, size as u64, &root, stored.as_slice()).unwrap();
    for pos in positions {
        let mut d = data.clone();
        d[pos] ^= 1;
        let want = BTreeSet::from([(pos / bs) as u64]);
        assert_eq!(failing_blocks(&v, &d, bs), want, "data byte {pos}");
        match v.verify(0, &d) {
            Err(Error::DataBlockMismatch { block, .. }) => assert_eq!(block, (pos / bs) as u64),
            other => panic!("whole-file verify after flipping byte {pos}: {other:?}"),
        }
    }
}

#[test]
fn flips_sha256_1k_three_levels() {
    // arity 32: 1100 blocks need three levels.
    check_flips(HashAlg::Sha256, 1024, b"", 1024 * 1100 + 17);
}

#[test]
fn flips_sha512_1k_salted() {
    // arity 16: three levels at 300 blocks.
    check_flips(HashAlg::Sha512, 1024, b"salt!", 1024 * 300 - 5);
}

#[test]
fn flips_sha256_4k_two_levels() {
    check_flips(HashAlg::Sha256, 4096, b"\x00\x11", 4096 * 130);
}

#[test]
fn single_block_and_empty_files() {
    let params = Params::default();
    let tree = build_tree_from_slice(b"hello world", &params);
    let v = Verifier::new(&params, 11, tree.root_hash(), Vec::new()).unwrap();
    v.verify(0, b"hello world").unwrap();
    assert!(matches!(
        v.verify(0, b"hello worle"),
        Err(Error::DataBlockMismatch { block: 0, .. })
    ));
    let v = Verifier::new(&params, 0, &[0; 32], Vec::new()).unwrap();
    v.verify(0, b"").unwrap();
    assert!(v.verify(0, b"x").is_err());
}

#[test]
fn range_rules_and_tree_length() {
    let params = Params::new(HashAlg::Sha256, 1024, b"").unwrap();
    let data = data_of(40000);
    let tree = build_tree_from_slice(&data, &params);
    assert_eq!(tree.merkle_tree().len(), 3 * 1024);
    let v = Verifier::new(&params, 40000, tree.root_hash(), tree.merkle_tree()).unwrap();
    v.verify(1024, &data[1024..3072]).unwrap();
    v.verify(39936, &data[39936..]).unwrap();
    assert!(matches!(
        v.verify(1, &data[1..1025]),
        Err(Error::Range { .. })
    ));
    assert!(matches!(
        v.verify(0, &data[..1000]),
        Err(Error::Range { .. })
    ));
    assert!(matches!(
        v.verify(39936, &[0; 1024]),
        Err(Error::Range { .. })
    ));
    assert!(matches!(
        Verifier::new(&params, 40000, &[0; 31], tree.merkle_tree()),
        Err(Error::RootHashLength {
            actual: 31,
            expected: 32
        })
    ));
    let short = &tree.merkle_tree()[..1024];
    assert!(matches!(
        Verifier::new(&params, 40000, tree.root_hash(), short),
        Err(Error::TreeLength { .. })
    ));
}

#[test]
fn tree_read_from_file_and_shared_between_threads() {
    let params = Params::new(HashAlg::Sha256, 1024, b"x").unwrap();
    let data = Arc::new(data_of(1024 * 2000 + 3));
    let tree = build_tree_from_slice(&data, &params);
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, tree.merkle_tree()).unwrap();
    let v = Arc::new(Verifier::new(&params, data.len() as u64, tree.root_hash(), f).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (v, data) = (v.clone(), data.clone());
            std::thread::spawn(move || {
                for k in 0..500u64 {
                    let d = ((k * 13 + t * 17) % 2001) as usize;
                    let end = ((d + 1) * 1024).min(data.len());
                    v.verify((d * 1024) as u64, &data[d * 1024..end]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    v.forget_verified();
    let mut bad = data.to_vec();
    bad[1024 * 1500] ^= 0xff;
    assert!(matches!(
        v.verify(0, &bad),
        Err(Error::DataBlockMismatch { block: 1500, .. })
    ));
}
