//! Single-thread hashing speed (per CPU-second) of the Merkle leaf level: 256 MiB in memory hashed as
//! 4 KiB blocks, one digest per block, with each backend. Run with
//! `RAYON_NUM_THREADS=1 cargo run --release --example hash_speed -p vigil-fsverity`.

use sha2::Digest;
use vigil_fsverity::{build_tree_from_slice, sha256, HashAlg, Params, TreeBuilder, Verifier};

fn main() {
    let data: Vec<u8> = (0..256usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let gbs = |secs: f64| data.len() as f64 / secs / 1e9;
    // Process CPU time, not wall time: a loaded machine then distorts less.
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and a valid timespec to write.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    };
    let best = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = cpu();
                f();
                cpu() - t
            })
            .fold(f64::MAX, f64::min)
    };
    let t = best(&|| {
        let mut acc = 0u8;
        for b in data.chunks(4096) {
            acc ^= sha2::Sha256::digest(b)[0];
        }
        std::hint::black_box(acc);
    });
    println!("sha2 SHA-256, one block at a time:      {:.2} GB/s", gbs(t));
    let t = best(&|| {
        let mut acc = 0u8;
        for b in data.chunks(4096) {
            acc ^= sha2::Sha512::digest(b)[0];
        }
        std::hint::black_box(acc);
    });
    println!("sha2 SHA-512, one block at a time:      {:.2} GB/s", gbs(t));
    let t = best(&|| {
        std::hint::black_box(sha2::Sha256::digest(&data));
    });
    println!("sha2 SHA-256, one message:              {:.2} GB/s", gbs(t));
    // vigil_fsverity::sha256: the data as 1 to 4 messages hashed side by side, fed in
    // 64 KiB pieces as a file hasher would.
    for lanes in 1..=sha256::MAX_LANES {
        let part = data.len() / lanes;
        let t = best(&|| {
            let mut hs: Vec<sha256::Sha256> = (0..lanes).map(|_| sha256::Sha256::new()).collect();
            for off in (0..part).step_by(64 << 10) {
                let end = (off + (64 << 10)).min(part);
                let pieces: Vec<&[u8]> = (0..lanes)
                    .map(|l| &data[l * part + off..l * part + end])
                    .collect();
                let mut refs: Vec<&mut sha256::Sha256> = hs.iter_mut().collect();
                sha256::update_lanes(&mut refs, &pieces);
            }
            let refs: Vec<&sha256::Sha256> = hs.iter().collect();
            let mut out = vec![[0u8; 32]; lanes];
            sha256::finalize_lanes(&refs, &mut out);
            std::hint::black_box(out);
        });
        println!(
            "vigil sha256, {lanes} lane(s):                {:.2} GB/s",
            gbs(t)
        );
    }
    let c = vigil_fsverity::leaf_calibration();
    for (how, speed) in &c.speeds {
        println!("leaf blocks, {how}: {:.2} GB/s (calibration)", speed / 1e9);
    }
    println!("leaf blocks are hashed with: {}", c.chosen);
    for alg in HashAlg::ALL {
        let params = Params::new(alg, 4096, &[]).unwrap();
        let t = best(&|| {
            let mut b = TreeBuilder::new(&params);
            b.update(&data);
            std::hint::black_box(b.finish());
        });
        println!(
            "TreeBuilder {alg} (whole tree, {} thread(s)): {:.2} GB/s",
            rayon::current_num_threads(),
            gbs(t)
        );
    }
    // Verification as a verified mount does it: 128 KiB reads, tree in memory.
    let params = Params::default();
    let tree = build_tree_from_slice(&data, &params);
    let v = Verifier::new(
        &params,
        data.len() as u64,
        tree.root_hash(),
        tree.merkle_tree(),
    )
    .unwrap();
    let t = best(&|| {
        v.forget_verified();
        for (i, chunk) in data.chunks(128 << 10).enumerate() {
            v.verify((i * (128 << 10)) as u64, chunk).unwrap();
        }
    });
    println!(
        "Verifier sha256, 128 KiB reads:          {:.2} GB/s",
        gbs(t)
    );
}
