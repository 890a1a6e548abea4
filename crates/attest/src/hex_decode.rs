//! Hex decoding for the measurement-list fast path, sixteen digits at a time where the
//! CPU allows (a 100,000-entry list carries about 10 MB of hex).

/// Value of one hex digit, or 0xff.
const VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decode the hex digits `h` (either case) into `out`, which holds exactly
/// `h.len() / 2` bytes; `false` (with `out` partly written) if `h` has an odd length
/// or a byte that is not a hex digit.
pub(crate) fn decode(h: &[u8], out: &mut [u8]) -> bool {
    if !h.len().is_multiple_of(2) || out.len() != h.len() / 2 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    let done = {
        let n = h.len() / 16 * 16;
        // SAFETY: SSE2 is part of x86_64; the loop reads `h[..n]` and writes
        // `out[..n / 2]`, both in bounds.
        if !unsafe { sse2::decode16(&h[..n], &mut out[..n / 2]) } {
            return false;
        }
        n
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let mut bad = 0u8;
    for (o, p) in out[done / 2..].iter_mut().zip(h[done..].chunks_exact(2)) {
        let (a, b) = (VALUE[p[0] as usize], VALUE[p[1] as usize]);
        bad |= a | b;
        *o = (a << 4) | (b & 0x0f);
    }
    bad & 0xf0 == 0
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// `decode` for `h.len()` a multiple of 16 and `out.len() == h.len() / 2`.
    ///
    /// # Safety
    /// The slice lengths must be as stated.
    pub(super) unsafe fn decode16(h: &[u8], out: &mut [u8]) -> bool {
        debug_assert!(h.len().is_multiple_of(16) && out.len() == h.len() / 2);
        let (h, o) = (h.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i < out.len() * 2 {
            let c = _mm_loadu_si128(h.add(i).cast());
            // Signed compares: bytes from 0x80 up are negative and fall in no range.
            let digit = _mm_and_si128(
                _mm_cmpgt_epi8(c, _mm_set1_epi8(b'0' as i8 - 1)),
                _mm_cmplt_epi8(c, _mm_set1_epi8(b'9' as i8 + 1)),
            );
            let lower = _mm_or_si128(c, _mm_set1_epi8(0x20));
            let letter = _mm_and_si128(
                _mm_cmpgt_epi8(lower, _mm_set1_epi8(b'a' as i8 - 1)),
                _mm_cmplt_epi8(lower, _mm_set1_epi8(b'f' as i8 + 1)),
            );
            if _mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xffff {
                return false;
            }
            // '0'..'9' → 0..9; 'a'..'f' and 'A'..'F' → 1..6, plus 9.
            let v = _mm_add_epi8(
                _mm_and_si128(c, _mm_set1_epi8(0x0f)),
                _mm_and_si128(letter, _mm_set1_epi8(9)),
            );
            // Each 16-bit lane holds a pair: the first digit (high nibble) in its low byte.
            let high = _mm_and_si128(_mm_slli_epi16(v, 4), _mm_set1_epi16(0x00f0));
            let low = _mm_srli_epi16(v, 8);
            let bytes = _mm_packus_epi16(_mm_or_si128(high, low), _mm_setzero_si128());
            _mm_storel_epi64(o.add(i / 2).cast(), bytes);
            i += 16;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(h: &[u8]) -> Option<Vec<u8>> {
        hex::decode(h).ok()
    }

    fn ours(h: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; h.len() / 2];
        decode(h, &mut out).then_some(out)
    }

    #[test]
    fn every_byte_in_every_position() {
        let good = b"0123456789abcdefABCDEF0123456789abcdef0123456789".to_vec();
        assert_eq!(ours(&good), reference(&good));
        for pos in 0..good.len() {
            for b in 0..=255u8 {
                let mut h = good.clone();
                h[pos] = b;
                assert_eq!(ours(&h), reference(&h), "byte {b:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn odd_length_and_wrong_output_size() {
        assert_eq!(ours(b"abc"), None);
        assert!(!decode(b"abcd", &mut [0u8; 1]));
        assert_eq!(ours(b""), Some(vec![]));
    }

    proptest! {
        #[test]
        fn matches_the_hex_crate(h in proptest::collection::vec(
            prop_oneof![
                8 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                1 => any::<u8>(),
            ],
            0..200,
        )) {
            prop_assert_eq!(ours(&h), reference(&h));
        }
    }
}
