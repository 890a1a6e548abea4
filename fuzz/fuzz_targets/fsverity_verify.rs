//! Block verification over an arbitrary stored tree, root and data: never panics, and
//! a tree built from the data always verifies it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fsverity::{build_tree_from_slice, HashAlg, Params, Verifier};

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let alg = if input[0] & 1 == 0 { HashAlg::Sha256 } else { HashAlg::Sha512 };
    // Small blocks so that short inputs still make multi-level trees.
    let bs = 1u32 << (7 + (input[1] % 4));
    let Ok(params) = Params::new_userspace(alg, bs, &input[2..2 + (input[2] as usize % 4)]) else {
        return;
    };
    let body = &input[3..];
    let split = body.len() / 2;
    let (tree_bytes, data) = body.split_at(split);
    let root = vec![input[3 % input.len()]; params.digest_size()];
    // Arbitrary tree: construction may fail on the length, verification must not panic.
    if let Ok(v) = Verifier::new(&params, data.len() as u64, &root, tree_bytes) {
        let _ = v.verify(0, data);
    }
    // The real tree verifies every block.
    let tree = build_tree_from_slice(data, &params);
    let v = Verifier::new(&params, data.len() as u64, tree.root_hash(), tree.merkle_tree())
        .expect("built tree has the right size");
    v.verify(0, data).expect("built tree verifies its data");
    for (i, chunk) in data.chunks(bs as usize).enumerate() {
        v.verify(i as u64 * bs as u64, chunk).expect("every block verifies");
    }
});
