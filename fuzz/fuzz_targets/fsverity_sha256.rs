//! vigil_fsverity::sha256 against sha2::Sha256: the input is split into 1 to 6 messages
//! hashed side by side in pieces of fuzzer-chosen sizes; every digest must equal
//! sha2's, and so must the one-message API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use vigil_fsverity::sha256::{self, Sha256};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Some((&piece, rest)) = rest.split_first() else {
        return;
    };
    let lanes = usize::from(ctl % 6) + 1;
    // Lane i gets every lanes-th slice of 37 bytes, so lengths differ.
    let mut msgs: Vec<Vec<u8>> = vec![Vec::new(); lanes];
    for (i, c) in rest.chunks(37).enumerate() {
        msgs[i % lanes].extend_from_slice(c);
    }
    // Odd messages get repeated to reach multi-block lengths more often.
    if ctl & 0x80 != 0 {
        for m in msgs.iter_mut().skip(1).step_by(2) {
            let copy = m.clone();
            for _ in 0..(ctl as usize & 0x7) {
                m.extend_from_slice(&copy);
            }
        }
    }
    let piece = usize::from(piece) * 3 + 1;
    let mut hs: Vec<Sha256> = (0..lanes).map(|_| Sha256::new()).collect();
    let mut pos = vec![0usize; lanes];
    let mut round = 0usize;
    while pos.iter().zip(&msgs).any(|(p, m)| *p < m.len()) {
        let chunks: Vec<&[u8]> = msgs
            .iter()
            .zip(&pos)
            .enumerate()
            .map(|(i, (m, &p))| &m[p..(p + piece + (i * 13 + round) % 70).min(m.len())])
            .collect();
        for (p, c) in pos.iter_mut().zip(&chunks) {
            *p += c.len();
        }
        let mut refs: Vec<&mut Sha256> = hs.iter_mut().collect();
        sha256::update_lanes(&mut refs, &chunks);
        round += 1;
    }
    let refs: Vec<&Sha256> = hs.iter().collect();
    let mut out = vec![[0u8; 32]; lanes];
    sha256::finalize_lanes(&refs, &mut out);
    for (m, o) in msgs.iter().zip(&out) {
        let want: [u8; 32] = sha2::Sha256::digest(m).into();
        assert_eq!(*o, want, "len {}", m.len());
        assert_eq!(Sha256::digest(m), want);
    }
});
