//! SHA-256 of sixteen equal-length messages at once with AVX-512: one message per
//! 32-bit lane of a 512-bit register.
//!
//! Used for the Merkle leaf level, whose blocks are independent and equally long. Where
//! the SHA extensions are slow (on the 2-vCPU Intel test machine `sha256rnds2` tops out
//! near 1.8 GB/s with two messages interleaved), sixteen lanes of plain vector
//! arithmetic hash about 1.7 times faster; where they are fast (AMD), they win. Which one
//! runs is measured at first use ([`crate::hash`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Messages hashed side by side.
pub(crate) const LANES: usize = 16;

/// Whether this CPU has the AVX-512 subsets used here (checked once, cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn available() -> bool {
    false
}

/// Hash sixteen messages, each `init` (the state after a common prefix), then its own
/// `data.len() / 16` bytes (lane `l` holds `data[l * len..(l + 1) * len]`), then the
/// common final block `last` (padding and length). Writes the sixteen 32-byte digests
/// to `out`, one after another.
///
/// # Panics
/// If `data.len()` is not a multiple of 16 × 64, `out` is shorter than 16 × 32 bytes,
/// or the CPU lacks AVX-512.
#[cfg(target_arch = "x86_64")]
pub(crate) fn hash16(init: &[u32; 8], data: &[u8], last: &[u8; 64], out: &mut [u8]) {
    assert!(data.len().is_multiple_of(LANES * 64) && out.len() >= LANES * 32 && available());
    // SAFETY: the CPU features were checked above; every load stays within `data`
    // (lane `l`'s block `b` is at l * len + 64 * b, below (l + 1) * len) and `last`.
    unsafe { hash16_avx512(init, data, last, out) }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn hash16(_: &[u32; 8], _: &[u8], _: &[u8; 64], _: &mut [u8]) {
    unreachable!("hash16 is only called when available() is true");
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn hash16_avx512(init: &[u32; 8], data: &[u8], last: &[u8; 64], out: &mut [u8]) {
    let len = data.len() / LANES;
    let bswap = _mm512_broadcast_i32x4(_mm_setr_epi8(
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
    ));
    let mut state: [__m512i; 8] = std::array::from_fn(|i| _mm512_set1_epi32(init[i] as i32));
    for block in (0..len).step_by(64) {
        let base = data.as_ptr().add(block);
        // Row l: lane l's sixteen message words; transposed, word j of every lane.
        let rows: [__m512i; 16] = std::array::from_fn(|l| {
            _mm512_shuffle_epi8(_mm512_loadu_si512(base.add(l * len).cast()), bswap)
        });
        compress(&mut state, transpose(rows));
    }
    let w: [__m512i; 16] = std::array::from_fn(|j| {
        let word = u32::from_be_bytes([
            last[4 * j],
            last[4 * j + 1],
            last[4 * j + 2],
            last[4 * j + 3],
        ]);
        _mm512_set1_epi32(word as i32)
    });
    compress(&mut state, w);
    // Back to bytes: word i of lane l is digest l's bytes 4i..4i+4, big-endian.
    let mut words = [[0u32; LANES]; 8];
    for (dst, s) in words.iter_mut().zip(&state) {
        _mm512_storeu_si512(dst.as_mut_ptr().cast(), *s);
    }
    for (l, digest) in out.chunks_exact_mut(32).take(LANES).enumerate() {
        for (i, bytes) in digest.chunks_exact_mut(4).enumerate() {
            bytes.copy_from_slice(&words[i][l].to_be_bytes());
        }
    }
}

/// Transpose a 16 × 16 matrix of 32-bit words held as sixteen rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose(r: [__m512i; 16]) -> [__m512i; 16] {
    let zero = _mm512_setzero_si512();
    // Interleave words, then pairs of words, of neighbouring rows: within each 128-bit
    // quarter, u[4i + k] holds word k of that quarter from rows 4i..4i+4.
    let mut t = [zero; 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [zero; 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Then move the 128-bit quarters into place, in two rounds.
    let mut v = [zero; 16];
    for k in 0..4 {
        for i in 0..2 {
            v[8 * i + k] = _mm512_shuffle_i32x4::<0x88>(u[8 * i + k], u[8 * i + 4 + k]);
            v[8 * i + 4 + k] = _mm512_shuffle_i32x4::<0xDD>(u[8 * i + k], u[8 * i + 4 + k]);
        }
    }
    let mut o = [zero; 16];
    for k in 0..4 {
        o[k] = _mm512_shuffle_i32x4::<0x88>(v[k], v[8 + k]);
        o[k + 8] = _mm512_shuffle_i32x4::<0xDD>(v[k], v[8 + k]);
        o[k + 4] = _mm512_shuffle_i32x4::<0x88>(v[4 + k], v[12 + k]);
        o[k + 12] = _mm512_shuffle_i32x4::<0xDD>(v[4 + k], v[12 + k]);
    }
    o
}

/// One compression (FIPS 180-4 §6.2.2) of sixteen lanes: `w` holds message word j of
/// every lane in `w[j]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
// The words scheduled in the last sixteen rounds are stored for nothing.
#[allow(unused_assignments)]
unsafe fn compress(state: &mut [__m512i; 8], mut w: [__m512i; 16]) {
    use crate::shani::K;
    // vpternlogd truth tables: a ^ b ^ c, (a & b) | (!a & c), majority(a, b, c).
    const XOR3: i32 = 0x96;
    const CH: i32 = 0xCA;
    const MAJ: i32 = 0xE8;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    macro_rules! round {
        ($i:expr) => {{
            let wi = if $i < 16 {
                w[$i % 16]
            } else {
                let w15 = w[($i + 1) % 16];
                let w2 = w[($i + 14) % 16];
                let s0 = _mm512_ternarylogic_epi32::<XOR3>(
                    _mm512_ror_epi32::<7>(w15),
                    _mm512_ror_epi32::<18>(w15),
                    _mm512_srli_epi32::<3>(w15),
                );
                let s1 = _mm512_ternarylogic_epi32::<XOR3>(
                    _mm512_ror_epi32::<17>(w2),
                    _mm512_ror_epi32::<19>(w2),
                    _mm512_srli_epi32::<10>(w2),
                );
                let next = _mm512_add_epi32(
                    _mm512_add_epi32(w[$i % 16], s0),
                    _mm512_add_epi32(w[($i + 9) % 16], s1),
                );
                w[$i % 16] = next;
                next
            };
            let s1 = _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<6>(e),
                _mm512_ror_epi32::<11>(e),
                _mm512_ror_epi32::<25>(e),
            );
            let ch = _mm512_ternarylogic_epi32::<CH>(e, f, g);
            let kw = _mm512_add_epi32(wi, _mm512_set1_epi32(K[$i] as i32));
            let t1 = _mm512_add_epi32(_mm512_add_epi32(h, s1), _mm512_add_epi32(ch, kw));
            let s0 = _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<2>(a),
                _mm512_ror_epi32::<13>(a),
                _mm512_ror_epi32::<22>(a),
            );
            let maj = _mm512_ternarylogic_epi32::<MAJ>(a, b, c);
            h = g;
            g = f;
            f = e;
            e = _mm512_add_epi32(d, t1);
            d = c;
            c = b;
            b = a;
            a = _mm512_add_epi32(t1, _mm512_add_epi32(s0, maj));
        }};
    }
    macro_rules! rounds8 {
        ($i:expr) => {
            round!($i);
            round!($i + 1);
            round!($i + 2);
            round!($i + 3);
            round!($i + 4);
            round!($i + 5);
            round!($i + 6);
            round!($i + 7);
        };
    }
    rounds8!(0);
    rounds8!(8);
    rounds8!(16);
    rounds8!(24);
    rounds8!(32);
    rounds8!(40);
    rounds8!(48);
    rounds8!(56);
    for (s, n) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = _mm512_add_epi32(*s, n);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use sha2::Digest;

    /// The message hash16 hashes for lane `l`: prefix, the lane's data, and the final
    /// block's padding implied by the total length.
    fn expected(prefix: &[u8], lane: &[u8]) -> [u8; 32] {
        sha2::Sha256::new()
            .chain_update(prefix)
            .chain_update(lane)
            .finalize()
            .into()
    }

    #[test]
    fn matches_sha2_for_every_lane_prefix_and_length() {
        if !available() {
            eprintln!("no AVX-512 here: hash16 untested");
            return;
        }
        for prefix_len in [0usize, 64] {
            let prefix: Vec<u8> = (0..prefix_len).map(|i| (i * 5 + 1) as u8).collect();
            let mut init = crate::sha256::IV;
            if prefix_len > 0 {
                sha2::compress256(
                    &mut init,
                    &[*sha2::digest::generic_array::GenericArray::from_slice(
                        &prefix,
                    )],
                );
            }
            for len in [64usize, 128, 1024, 4096, 65536] {
                let data: Vec<u8> = (0..LANES * len).map(|i| (i * 131 + i / 7) as u8).collect();
                let mut last = [0u8; 64];
                last[0] = 0x80;
                last[56..].copy_from_slice(&(((prefix_len + len) * 8) as u64).to_be_bytes());
                let mut out = [0u8; LANES * 32];
                hash16(&init, &data, &last, &mut out);
                for (l, (got, lane)) in out.chunks(32).zip(data.chunks(len)).enumerate() {
                    assert_eq!(
                        got,
                        expected(&prefix, lane),
                        "lane {l}, prefix {prefix_len}, {len} bytes"
                    );
                }
            }
        }
    }
}
