//! SHA-256 with the x86 SHA extensions, up to four independent messages at a time.
//!
//! `sha256rnds2` has a latency of several cycles but can issue every cycle, so one
//! message leaves the unit mostly idle; interleaving the rounds of two messages (as the
//! kernel's fs-verity code does since 2025) hashes about a third faster. Used for the
//! Merkle leaf level, where blocks are independent. Only whole 64-byte blocks of equal
//! count are processed; callers handle padding.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// SHA-256 round constants.
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has the SHA extensions (checked once, cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn available() -> bool {
    false
}

/// Compress `a` into `sa` and `b` into `sb` (equal lengths, multiples of 64 bytes).
///
/// # Panics
/// If the lengths differ or are not multiples of 64, or the CPU lacks the extensions.
pub(crate) fn compress2(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    let mut states = [*sa, *sb];
    compress_lanes(&mut states, &[a, b]);
    [*sa, *sb] = states;
}

/// Compress `data[i]` into `states[i]` for 1 to 4 lanes of equal length (a multiple of
/// 64 bytes), the rounds of all lanes interleaved.
///
/// # Panics
/// If the lane counts differ or are not 1 to 4, the lengths differ or are not
/// multiples of 64, or the CPU lacks the extensions.
#[cfg(target_arch = "x86_64")]
pub(crate) fn compress_lanes(states: &mut [[u32; 8]], data: &[&[u8]]) {
    let len = data.first().map_or(0, |d| d.len());
    assert!(
        states.len() == data.len()
            && data.iter().all(|d| d.len() == len)
            && len.is_multiple_of(64)
            && available()
    );
    let blocks = len / 64;
    // SAFETY: the CPU features were checked above; every lane has `blocks` whole
    // 64-byte blocks (checked), which is all that is loaded from it.
    unsafe {
        match states.len() {
            1 => compress_n::<1>(states, data, blocks),
            2 => compress_n::<2>(states, data, blocks),
            3 => compress_n::<3>(states, data, blocks),
            4 => compress_n::<4>(states, data, blocks),
            n => panic!("compress_lanes: {n} lanes"),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn compress_lanes(_: &mut [[u32; 8]], _: &[&[u8]]) {
    unreachable!("compress_lanes is only called when available() is true");
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(v0, v1);
    let t2 = _mm_alignr_epi8(v3, v2, 4);
    let t3 = _mm_add_epi32(t1, t2);
    _mm_sha256msg2_epu32(t3, v3)
}

/// `N` lanes (`states.len() == data.len() == N`), `blocks` blocks each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress_n<const N: usize>(states: &mut [[u32; 8]], data: &[&[u8]], blocks: usize) {
    let mask = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
    let zero = _mm_setzero_si128();
    let mut abef = [zero; N];
    let mut cdgh = [zero; N];
    let mut ptr = [std::ptr::null::<__m128i>(); N];
    for l in 0..N {
        let s = &states[l];
        let dcba = _mm_loadu_si128(s.as_ptr() as *const __m128i);
        let efgh = _mm_loadu_si128(s.as_ptr().add(4) as *const __m128i);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
        cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
        ptr[l] = data[l].as_ptr() as *const __m128i;
    }
    let kp = K.as_ptr() as *const __m128i;

    for blk in 0..blocks {
        let (save_abef, save_cdgh) = (abef, cdgh);
        let mut w = [[zero; 4]; N];
        for l in 0..N {
            let p = ptr[l].add(blk * 4);
            for (j, wj) in w[l].iter_mut().enumerate() {
                *wj = _mm_shuffle_epi8(_mm_loadu_si128(p.add(j)), mask);
            }
        }
        // Four rounds of every lane, interleaved; from the fifth group on, the
        // schedule word `i % 4` is first replaced by the next one.
        macro_rules! rounds4 {
            ($i:expr) => {{
                if $i >= 4 {
                    for wl in w.iter_mut() {
                        wl[$i % 4] = schedule(
                            wl[$i % 4],
                            wl[($i + 1) % 4],
                            wl[($i + 2) % 4],
                            wl[($i + 3) % 4],
                        );
                    }
                }
                let k = _mm_loadu_si128(kp.add($i));
                let mut t = [zero; N];
                for l in 0..N {
                    t[l] = _mm_add_epi32(w[l][$i % 4], k);
                }
                for l in 0..N {
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t[l]);
                }
                for l in 0..N {
                    abef[l] =
                        _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t[l], 0x0E));
                }
            }};
        }
        rounds4!(0);
        rounds4!(1);
        rounds4!(2);
        rounds4!(3);
        rounds4!(4);
        rounds4!(5);
        rounds4!(6);
        rounds4!(7);
        rounds4!(8);
        rounds4!(9);
        rounds4!(10);
        rounds4!(11);
        rounds4!(12);
        rounds4!(13);
        rounds4!(14);
        rounds4!(15);
        for l in 0..N {
            abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
        }
    }

    for l in 0..N {
        let feba = _mm_shuffle_epi32(abef[l], 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        let s = &mut states[l];
        _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, dcba);
        _mm_storeu_si128(s.as_mut_ptr().add(4) as *mut __m128i, hgef);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn matches_sha2_compress() {
        if !available() {
            return;
        }
        let a: Vec<u8> = (0..64 * 5).map(|i| (i * 7 + 3) as u8).collect();
        let b: Vec<u8> = (0..64 * 5).map(|i| (i * 13 + 1) as u8).collect();
        let iv = crate::sha256::IV;
        let (mut sa, mut sb) = (iv, iv);
        compress2(&mut sa, &mut sb, &a, &b);
        let blocks = |d: &[u8]| -> Vec<
            sha2::digest::generic_array::GenericArray<u8, sha2::digest::consts::U64>,
        > {
            d.chunks(64)
                .map(|c| *sha2::digest::generic_array::GenericArray::from_slice(c))
                .collect()
        };
        let (mut ra, mut rb) = (iv, iv);
        sha2::compress256(&mut ra, &blocks(&a));
        sha2::compress256(&mut rb, &blocks(&b));
        assert_eq!(sa, ra);
        assert_eq!(sb, rb);
    }

    #[test]
    fn every_lane_count_matches_sha2_compress() {
        if !available() {
            return;
        }
        for n in 1..=4usize {
            for blocks in [0usize, 1, 2, 7] {
                let data: Vec<Vec<u8>> = (0..n)
                    .map(|l| (0..64 * blocks).map(|i| (i * 11 + l * 101) as u8).collect())
                    .collect();
                let refs: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
                let mut states: Vec<[u32; 8]> = (0..n)
                    .map(|l| {
                        std::array::from_fn(|j| (j as u32 + 1).wrapping_mul(0x9e37_79b9) ^ l as u32)
                    })
                    .collect();
                let mut expect = states.clone();
                compress_lanes(&mut states, &refs);
                for (e, d) in expect.iter_mut().zip(&data) {
                    for b in d.chunks(64) {
                        sha2::compress256(
                            e,
                            &[*sha2::digest::generic_array::GenericArray::from_slice(b)],
                        );
                    }
                }
                assert_eq!(states, expect, "{n} lanes, {blocks} blocks");
            }
        }
    }
}
