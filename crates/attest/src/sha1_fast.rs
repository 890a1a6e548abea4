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

/// Padded length of a message of `n` bytes (whole 64-byte blocks).
#[inline]
fn padded_len(n: usize) -> usize {
    (n + 8) / 64 * 64 + 64
}

/// `out_a` = SHA-1(`a`) and `out_b` = SHA-1(`b`), the rounds of the two interleaved
/// where the CPU has the SHA extensions and both pad to the same number of blocks (at
/// most three): one message leaves the SHA unit waiting on each round's result.
#[inline]
pub(crate) fn digest2_into(a: &[u8], b: &[u8], out_a: &mut [u8], out_b: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        let n = padded_len(a.len());
        if n == padded_len(b.len()) && n <= 192 && shani::available() {
            let (mut pa, mut pb) = ([0u8; 192], [0u8; 192]);
            for (p, m) in [(&mut pa, a), (&mut pb, b)] {
                p[..m.len()].copy_from_slice(m);
                p[m.len()] = 0x80;
                p[n - 8..n].copy_from_slice(&(m.len() as u64 * 8).to_be_bytes());
            }
            let (mut sa, mut sb) = (IV, IV);
            // SAFETY: the CPU has the extensions (checked); both buffers hold `n` bytes,
            // a multiple of 64.
            unsafe { shani::compress2(&mut sa, &mut sb, &pa[..n], &pb[..n]) };
            write_out(sa, out_a);
            write_out(sb, out_b);
            return;
        }
    }
    digest_into(a, out_a);
    digest_into(b, out_b);
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// The `sha1` crate's SHA-NI compression (`sha1::compress::x86`), for two messages
    /// of equal length with every step done for both.
    ///
    /// # Safety
    /// The CPU must have the SHA extensions and SSE4.1; `a` and `b` must have the same
    /// length, a multiple of 64.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress2(sa: &mut [u32; 5], sb: &mut [u32; 5], a: &[u8], b: &[u8]) {
        debug_assert!(a.len() == b.len() && a.len().is_multiple_of(64));
        let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0A0B_0C0D_0E0F);
        let load = |s: &[u32; 5]| {
            (
                _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32),
                _mm_set_epi32(s[4] as i32, 0, 0, 0),
            )
        };
        let (a0, e0) = load(sa);
        let (b0, f0) = load(sb);
        let (mut abcd, mut e) = ([a0, b0], [e0, f0]);
        let ptr = [a.as_ptr(), b.as_ptr()];
        let z = _mm_setzero_si128();
        for k in 0..a.len() / 64 {
            let (mut w0, mut w1, mut w2, mut w3, mut w4) = ([z; 2], [z; 2], [z; 2], [z; 2], [z; 2]);
            let (mut h0, mut h1) = ([z; 2], [z; 2]);
            for l in 0..2 {
                let p = ptr[l].add(k * 64) as *const __m128i;
                w0[l] = _mm_shuffle_epi8(_mm_loadu_si128(p), mask);
                w1[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), mask);
                w2[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), mask);
                w3[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), mask);
                h0[l] = abcd[l];
                h1[l] = _mm_sha1rnds4_epu32(h0[l], _mm_add_epi32(e[l], w0[l]), 0);
            }
            // dst = rounds(src, dst + w): four rounds of both lanes.
            macro_rules! r4 {
                ($dst:ident, $src:ident, $w:ident, $i:literal) => {
                    for l in 0..2 {
                        $dst[l] =
                            _mm_sha1rnds4_epu32($src[l], _mm_sha1nexte_epu32($dst[l], $w[l]), $i);
                    }
                };
            }
            // The next four schedule words, then four rounds with them.
            macro_rules! s4 {
                ($h0:ident, $h1:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident, $i:literal) => {
                    for l in 0..2 {
                        $w4[l] = _mm_sha1msg2_epu32(
                            _mm_xor_si128(_mm_sha1msg1_epu32($w0[l], $w1[l]), $w2[l]),
                            $w3[l],
                        );
                    }
                    r4!($h1, $h0, $w4, $i);
                };
            }
            r4!(h0, h1, w1, 0);
            r4!(h1, h0, w2, 0);
            r4!(h0, h1, w3, 0);
            s4!(h0, h1, w0, w1, w2, w3, w4, 0);
            s4!(h1, h0, w1, w2, w3, w4, w0, 1);
            s4!(h0, h1, w2, w3, w4, w0, w1, 1);
            s4!(h1, h0, w3, w4, w0, w1, w2, 1);
            s4!(h0, h1, w4, w0, w1, w2, w3, 1);
            s4!(h1, h0, w0, w1, w2, w3, w4, 1);
            s4!(h0, h1, w1, w2, w3, w4, w0, 2);
            s4!(h1, h0, w2, w3, w4, w0, w1, 2);
            s4!(h0, h1, w3, w4, w0, w1, w2, 2);
            s4!(h1, h0, w4, w0, w1, w2, w3, 2);
            s4!(h0, h1, w0, w1, w2, w3, w4, 2);
            s4!(h1, h0, w1, w2, w3, w4, w0, 3);
            s4!(h0, h1, w2, w3, w4, w0, w1, 3);
            s4!(h1, h0, w3, w4, w0, w1, w2, 3);
            s4!(h0, h1, w4, w0, w1, w2, w3, 3);
            s4!(h1, h0, w0, w1, w2, w3, w4, 3);
            for l in 0..2 {
                abcd[l] = _mm_add_epi32(abcd[l], h0[l]);
                e[l] = _mm_sha1nexte_epu32(h1[l], e[l]);
            }
        }
        for (s, (abcd, e)) in [sa, sb].into_iter().zip(abcd.into_iter().zip(e)) {
            s[0] = _mm_extract_epi32(abcd, 3) as u32;
            s[1] = _mm_extract_epi32(abcd, 2) as u32;
            s[2] = _mm_extract_epi32(abcd, 1) as u32;
            s[3] = _mm_extract_epi32(abcd, 0) as u32;
            s[4] = _mm_extract_epi32(e, 3) as u32;
        }
    }
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
    fn two_at_once_match_sha1() {
        let data: Vec<u8> = (0..400u32).map(|i| (i * 13 + 5) as u8).collect();
        for n in (0..300usize)
            .step_by(7)
            .chain([55, 56, 63, 64, 119, 120, 183, 184])
        {
            for m in [n, n + 1, n.saturating_sub(9), 110, 200] {
                let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
                digest2_into(&data[..n], &data[3..3 + m], &mut x, &mut y);
                assert_eq!(x[..], sha1::Sha1::digest(&data[..n])[..], "{n}");
                assert_eq!(y[..], sha1::Sha1::digest(&data[3..3 + m])[..], "{m}");
            }
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
