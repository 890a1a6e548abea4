//! SHA-256 with the x86 SHA extensions, two independent messages at a time.
//!
//! `sha256rnds2` has a latency of several cycles but can issue every cycle, so one
//! message leaves the unit mostly idle; interleaving the rounds of two messages (as the
//! kernel's fs-verity code does since 2025) hashes about a third faster. Used for the
//! Merkle leaf level, where blocks are independent. Only whole 64-byte blocks of equal
//! count are processed; callers handle padding.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// SHA-256 round constants.
const K: [u32; 64] = [
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
#[cfg(target_arch = "x86_64")]
pub(crate) fn compress2(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    assert!(a.len() == b.len() && a.len() % 64 == 0 && available());
    // SAFETY: the CPU features were checked above; all loads are unaligned loads of
    // 16 bytes within `a`, `b` (lengths checked), the states and `K`.
    unsafe { compress2_impl(sa, sb, a, b) }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn compress2(_: &mut [u32; 8], _: &mut [u32; 8], _: &[u8], _: &[u8]) {
    unreachable!("compress2 is only called when available() is true");
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(v0, v1);
    let t2 = _mm_alignr_epi8(v3, v2, 4);
    let t3 = _mm_add_epi32(t1, t2);
    _mm_sha256msg2_epu32(t3, v3)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress2_impl(sa: &mut [u32; 8], sb: &mut [u32; 8], a: &[u8], b: &[u8]) {
    let mask = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
    let load_state = |s: &[u32; 8]| {
        let dcba = _mm_loadu_si128(s.as_ptr() as *const __m128i);
        let efgh = _mm_loadu_si128(s.as_ptr().add(4) as *const __m128i);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    };
    let (mut abef_a, mut cdgh_a) = load_state(sa);
    let (mut abef_b, mut cdgh_b) = load_state(sb);
    let kp = K.as_ptr() as *const __m128i;

    for off in (0..a.len()).step_by(64) {
        let (save_abef_a, save_cdgh_a, save_abef_b, save_cdgh_b) = (abef_a, cdgh_a, abef_b, cdgh_b);
        let pa = a.as_ptr().add(off) as *const __m128i;
        let pb = b.as_ptr().add(off) as *const __m128i;
        let mut a0 = _mm_shuffle_epi8(_mm_loadu_si128(pa), mask);
        let mut a1 = _mm_shuffle_epi8(_mm_loadu_si128(pa.add(1)), mask);
        let mut a2 = _mm_shuffle_epi8(_mm_loadu_si128(pa.add(2)), mask);
        let mut a3 = _mm_shuffle_epi8(_mm_loadu_si128(pa.add(3)), mask);
        let mut b0 = _mm_shuffle_epi8(_mm_loadu_si128(pb), mask);
        let mut b1 = _mm_shuffle_epi8(_mm_loadu_si128(pb.add(1)), mask);
        let mut b2 = _mm_shuffle_epi8(_mm_loadu_si128(pb.add(2)), mask);
        let mut b3 = _mm_shuffle_epi8(_mm_loadu_si128(pb.add(3)), mask);
        // Four rounds of both messages, interleaved, with schedule words wa / wb.
        macro_rules! rounds4 {
            ($wa:expr, $wb:expr, $i:expr) => {{
                let k = _mm_loadu_si128(kp.add($i));
                let ta = _mm_add_epi32($wa, k);
                let tb = _mm_add_epi32($wb, k);
                cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, ta);
                cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, tb);
                abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, _mm_shuffle_epi32(ta, 0x0E));
                abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, _mm_shuffle_epi32(tb, 0x0E));
            }};
        }
        // The next schedule word replaces the oldest one, then four rounds with it.
        macro_rules! schedule_rounds4 {
            ($a0:ident, $a1:ident, $a2:ident, $a3:ident, $b0:ident, $b1:ident, $b2:ident, $b3:ident, $i:expr) => {{
                $a0 = schedule($a0, $a1, $a2, $a3);
                $b0 = schedule($b0, $b1, $b2, $b3);
                rounds4!($a0, $b0, $i);
            }};
        }
        rounds4!(a0, b0, 0);
        rounds4!(a1, b1, 1);
        rounds4!(a2, b2, 2);
        rounds4!(a3, b3, 3);
        schedule_rounds4!(a0, a1, a2, a3, b0, b1, b2, b3, 4);
        schedule_rounds4!(a1, a2, a3, a0, b1, b2, b3, b0, 5);
        schedule_rounds4!(a2, a3, a0, a1, b2, b3, b0, b1, 6);
        schedule_rounds4!(a3, a0, a1, a2, b3, b0, b1, b2, 7);
        schedule_rounds4!(a0, a1, a2, a3, b0, b1, b2, b3, 8);
        schedule_rounds4!(a1, a2, a3, a0, b1, b2, b3, b0, 9);
        schedule_rounds4!(a2, a3, a0, a1, b2, b3, b0, b1, 10);
        schedule_rounds4!(a3, a0, a1, a2, b3, b0, b1, b2, 11);
        schedule_rounds4!(a0, a1, a2, a3, b0, b1, b2, b3, 12);
        schedule_rounds4!(a1, a2, a3, a0, b1, b2, b3, b0, 13);
        schedule_rounds4!(a2, a3, a0, a1, b2, b3, b0, b1, 14);
        schedule_rounds4!(a3, a0, a1, a2, b3, b0, b1, b2, 15);
        abef_a = _mm_add_epi32(abef_a, save_abef_a);
        cdgh_a = _mm_add_epi32(cdgh_a, save_cdgh_a);
        abef_b = _mm_add_epi32(abef_b, save_abef_b);
        cdgh_b = _mm_add_epi32(cdgh_b, save_cdgh_b);
    }

    let store_state = |s: &mut [u32; 8], abef: __m128i, cdgh: __m128i| {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, dcba);
        _mm_storeu_si128(s.as_mut_ptr().add(4) as *mut __m128i, hgef);
    };
    store_state(sa, abef_a, cdgh_a);
    store_state(sb, abef_b, cdgh_b);
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
        let iv = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
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
}
