//! SHA-1 for short messages straight on the compression function (SHA-NI where the CPU
//! has it, through `sha1::compress`), without the general hasher's buffering: the
//! template digests of a list's entries (about 110 bytes each) and the PCR extends.

use sha1::digest::generic_array::GenericArray;

const IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

#[inline]
fn compress(state: &mut [u32; 5], block: &[u8]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

#[inline]
fn write_out(state: [u32; 5], out: &mut [u8]) {
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
}

/// `out` (20 bytes) = SHA-1(`data`).
#[inline]
pub(crate) fn digest_into(data: &[u8], out: &mut [u8]) {
    let mut state = IV;
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        compress(&mut state, b);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let n = if rest.len() < 56 { 64 } else { 128 };
    tail[n - 8..n].copy_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for b in tail[..n].chunks_exact(64) {
        compress(&mut state, b);
    }
    write_out(state, out);
}

/// `running = SHA-1(running ‖ th)` for 20-byte values (a PCR extend): one block.
#[inline]
pub(crate) fn extend(running: &mut [u8], th: &[u8]) {
    debug_assert!(running.len() == 20 && th.len() == 20);
    let mut block = [0u8; 64];
    block[..20].copy_from_slice(&running[..20]);
    block[20..40].copy_from_slice(&th[..20]);
    block[40] = 0x80;
    block[56..].copy_from_slice(&(40u64 * 8).to_be_bytes());
    let mut state = IV;
    compress(&mut state, &block);
    write_out(state, running);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest;

    #[test]
    fn matches_sha1_at_every_length_around_block_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            let mut out = [0u8; 20];
            digest_into(&data[..n], &mut out);
            assert_eq!(out[..], sha1::Sha1::digest(&data[..n])[..], "{n} bytes");
        }
    }

    #[test]
    fn extend_is_sha1_of_the_concatenation() {
        let mut running = [3u8; 20];
        let th = [9u8; 20];
        let want = sha1::Sha1::digest([running, th].concat());
        extend(&mut running, &th);
        assert_eq!(running[..], want[..]);
    }
}
