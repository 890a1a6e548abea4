//! Block verification over an arbitrary stored tree, root and data: never panics, and
//! a tree built from the data always verifies it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fsverity::{build_tree_from_slice, HashAlg, Params, Verifier};

fuzz_target!(|input: &[u8]| {
    let [a, b, c, rest @ ..] = input else {
        return;
    };
    let alg = if a & 1 == 0 { HashAlg::Sha256 } else { HashAlg::Sha512 };
    // Small blocks so that short inputs still make multi-level trees.
    let bs = 1u32 << (7 + (b % 4));
    let salt_len = (*c as usize % 4).min(rest.len());
    let (salt, body) = rest.split_at(salt_len);
    let Ok(params) = Params::new_userspace(alg, bs, salt) else {
        return;
    };
    let split = body.len() / 2;
    let (tree_bytes, data) = body.split_at(split);
    let root = vec![*c; params.digest_size()];
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
