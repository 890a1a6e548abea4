//! A fast path for reading runtime policies: the `digests` object (99% of a large
//! policy's text) is read by a hand-written scanner at memchr speed, straight into a
//! [`DigestMap`]'s arenas; the rest of the document goes through the general serde
//! path with `digests` replaced by `{}`.
//!
//! The scanner takes only the common shape — `{"name": ["text", ...], ...}` with JSON
//! whitespace anywhere, strings without escape sequences or control characters and
//! with valid UTF-8 — and gives up (`None`) on anything else: the caller then parses
//! the whole text with the general path, so results and error messages are exactly
//! the general path's. A document is taken only if the scanner reads the one
//! top-level `digests` value and the general path accepts the rest.

use crate::digestmap::{Builder, DigestMap, Source};

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[inline]
fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && is_ws(t[i]) {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that is `"`, `\` or a control character
/// (below 0x20), or `t.len()`; and whether a non-ASCII byte came before it.
#[inline]
fn find_special(t: &[u8], mut i: usize) -> (usize, bool) {
    let mut high = false;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes at `i` with
    // `i + 16 <= t.len()`.
    unsafe {
        use std::arch::x86_64::*;
        let quote = _mm_set1_epi8(b'"' as i8);
        let bslash = _mm_set1_epi8(b'\\' as i8);
        let ctl = _mm_set1_epi8(0x1f);
        while i + 16 <= t.len() {
            let v = _mm_loadu_si128(t.as_ptr().add(i) as *const __m128i);
            let q = _mm_cmpeq_epi8(v, quote);
            let b = _mm_cmpeq_epi8(v, bslash);
            // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
            let c = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v);
            let m = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c)) as u32;
            let hi = _mm_movemask_epi8(v) as u32;
            if m != 0 {
                let k = m.trailing_zeros();
                high |= hi & ((1u32 << k) - 1) != 0;
                return (i + k as usize, high);
            }
            high |= hi != 0;
            i += 16;
        }
    }
    while i < t.len() {
        let b = t[i];
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        high |= b >= 0x80;
        i += 1;
    }
    (i, high)
}

/// A string starting at the opening quote `t[i]`: its text and the index after the
/// closing quote, if it has no escapes and no control characters and is UTF-8.
#[inline]
fn string(t: &[u8], i: usize) -> Option<(&str, usize)> {
    if t.get(i) != Some(&b'"') {
        return None;
    }
    let (j, high) = find_special(t, i + 1);
    if t.get(j) != Some(&b'"') {
        return None;
    }
    let raw = &t[i + 1..j];
    let s = if high {
        std::str::from_utf8(raw).ok()?
    } else {
        // SAFETY: every byte is ASCII (checked by find_special).
        unsafe { std::str::from_utf8_unchecked(raw) }
    };
    Some((s, j + 1))
}

/// Read a `digests`-shaped object starting at `t[i]` (`{`) into `b`; the index after
/// its closing `}`, or `None` if it is not of the common shape.
pub(crate) fn scan_map(t: &[u8], i: usize, b: &mut Builder) -> Option<usize> {
    if t.get(i) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(t, i + 1);
    if t.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        let (name, j) = string(t, i)?;
        b.begin(name);
        i = skip_ws(t, j);
        if t.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(t, i + 1);
        if t.get(i) != Some(&b'[') {
            return None;
        }
        i = skip_ws(t, i + 1);
        if t.get(i) == Some(&b']') {
            i += 1;
        } else {
            loop {
                let (d, j) = string(t, i)?;
                b.digest(d);
                i = skip_ws(t, j);
                match t.get(i) {
                    Some(b',') => i = skip_ws(t, i + 1),
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        i = skip_ws(t, i);
        match t.get(i) {
            Some(b',') => i = skip_ws(t, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Read a whole `digests`-shaped object (nothing but whitespace around it); `None`
/// if it is not of the common shape.
pub fn scan_digest_map(t: &[u8]) -> Option<DigestMap> {
    let mut b = builder_for(t.len(), None);
    let end = scan_map(t, skip_ws(t, 0), &mut b)?;
    (skip_ws(t, end) == t.len()).then(|| b.finish())
}

/// A builder sized for a `digests` object of `len` bytes in the usual layout
/// (a path of ~40 bytes with two 64-digit digests per ~190 bytes).
fn builder_for(len: usize, source: Option<Source>) -> Builder {
    let entries = len / 160;
    // Strings are copied only when they are not in a source.
    let (names, strs) = match source {
        Some(_) => (0, 0),
        None => (len / 4, len * 3 / 4),
    };
    Builder::with_capacity(entries, names, entries * 2, strs, source)
}

/// The index after the JSON value starting at `t[i]`, as a tokenizer sees it: strings
/// (with escapes) are skipped whole, brackets are counted. The value is not
/// validated (the general parser does that); `None` at the end of the text.
fn skip_value(t: &[u8], i: usize) -> Option<usize> {
    let mut i = i;
    let mut depth = 0usize;
    loop {
        match *t.get(i)? {
            b'"' => {
                i += 1;
                loop {
                    let k = memchr::memchr2(b'"', b'\\', t.get(i..)?)?;
                    if t[i + k] == b'\\' {
                        i += k + 2;
                    } else {
                        i += k + 1;
                        break;
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ if depth == 0 => {
                // A scalar: up to the next delimiter.
                while i < t.len() && !matches!(t[i], b',' | b'}' | b']') && !is_ws(t[i]) {
                    i += 1;
                }
                return Some(i);
            }
            _ => i += 1,
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// The top-level `digests` value of a policy document: its byte range and the map,
/// if the document is an object with exactly one `digests` key, every top-level key
/// is a plain string and the value is of the common shape.
/// The `digests` object of the policy `t` and where it is (`a..z`); strings are
/// taken in place when `source` is `t`'s owner.
pub(crate) fn find_digests(t: &[u8], source: Option<Source>) -> Option<(usize, usize, DigestMap)> {
    let mut i = skip_ws(t, 0);
    if t.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(t, i + 1);
    if t.get(i) == Some(&b'}') {
        return None;
    }
    let mut found = None;
    loop {
        let (key, j) = string(t, i)?;
        i = skip_ws(t, j);
        if t.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(t, i + 1);
        if key == "digests" {
            if found.is_some() {
                return None;
            }
            // The digests object is most of the document.
            let mut b = builder_for(t.len() - i, source.clone());
            let end = scan_map(t, i, &mut b)?;
            found = Some((i, end, b));
            i = end;
        } else {
            i = skip_value(t, i)?;
        }
        i = skip_ws(t, i);
        match t.get(i) {
            Some(b',') => i = skip_ws(t, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    let (a, z, b) = found?;
    Some((a, z, b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(t: &str) -> Option<DigestMap> {
        serde_json::from_str(t).ok()
    }

    #[test]
    fn scanner_matches_serde_or_declines() {
        let cases = [
            r#"{}"#,
            r#" { } "#,
            r#"{"/a": ["aa"]}"#,
            "{\n \"/a\" :\t[ \"aa\" , \"bb\" ] ,\r\n\"/b\":[]}",
            r#"{"/a": ["aa"], "/b": ["bb"], "/a": ["cc"], "/c": [], "/b": ["dd", "ee"]}"#,
            r#"{"/ünï/cödé": ["aa"], "/日本": ["x"]}"#,
            r#"{"/a\"b": ["aa"]}"#,
            r#"{"/a\\b": ["aa"]}"#,
            r#"{"/a\u0041": ["aa"]}"#,
            r#"{"/a": ["a\nb"]}"#,
            "{\"/a\": [\"a\tb\"]}",
            "{\"/a\x01\": [\"ab\"]}",
            r#"{"/a": "aa"}"#,
            r#"{"/a": [1]}"#,
            r#"{"/a": [null]}"#,
            r#"{"/a": ["aa",]}"#,
            r#"{"/a": ["aa"],}"#,
            r#"{"/a": ["aa"]"#,
            r#"{"/a": ["aa""#,
            r#"{"/a" ["aa"]}"#,
            r#"{"/a": ["aa"] "/b": []}"#,
            r#"{"/a": ["aa"]} x"#,
            r#"[]"#,
            r#"{"/a": [["aa"]]}"#,
            "",
            "{",
            "{\"/a\": [\"\u{7f}\"]}",
            "{\"/a\": [\"0123456789abcdef0123456789abcdef0123456789abcdef\"]}",
            "{\"/0123456789abcdef0123456789abcdef/\u{e9}\": [\"0123456789abcdef0123456789abcdef\\u0030\"]}",
            "{\"/0123456789abcdef0123456789abcdef/\": [\"0123456789abcdef0123\n456789abcdef\"]}",
        ];
        let mut fast = 0;
        for c in cases {
            let g = general(c);
            match scan_digest_map(c.as_bytes()) {
                Some(m) => {
                    fast += 1;
                    assert_eq!(Some(m), g, "{c:?}");
                }
                None => {
                    // Declined: only for texts with escapes, control characters or
                    // another shape (all of which the general path handles).
                    let plain = !c.contains('\\')
                        && !c
                            .bytes()
                            .any(|b| b < 0x20 && b != b'\n' && b != b'\t' && b != b'\r');
                    if plain {
                        assert!(
                            g.is_none() || c.contains("[["),
                            "{c:?} declined but is plain and valid"
                        );
                    }
                }
            }
        }
        assert!(fast >= 7, "{fast}");
        // Invalid UTF-8 inside a string is declined.
        assert!(scan_digest_map(b"{\"/a\xff\": [\"aa\"]}").is_none());
        assert!(scan_digest_map(b"{\"/0123456789abcdef\xc3\": [\"aa\"]}").is_none());
    }

    #[test]
    fn find_digests_takes_one_top_level_key() {
        let t = r#"{"a": {"digests": {"/x": ["1"]}}, "s": "digests\"{", "digests": {"/y": ["2"]}, "n": [1, {"b": []}], "z": 1.5e3}"#;
        let (a, z, m) = find_digests(t.as_bytes(), None).unwrap();
        assert_eq!(&t[a..z], r#"{"/y": ["2"]}"#);
        assert_eq!(m.get("/y").unwrap(), ["2"]);
        assert!(find_digests(br#"{"digests": {}, "digests": {}}"#, None).is_none());
        assert!(find_digests(br#"{"x": 1}"#, None).is_none());
        assert!(find_digests(br#"{"dig\u0065sts": {}}"#, None).is_none());
        assert!(find_digests(br#"{"digests": {"/a": [1]}}"#, None).is_none());
        assert!(find_digests(br#"{"digests": {}"#, None).is_none());
        // A string ending in a backslash at the end of the text (found by fuzzing).
        assert!(find_digests(b"{\"a\": \"x\\", None).is_none());
        assert!(find_digests(b"{\t\" + ?\":\n{\t\"{ \\\\{\t\" ?\" :\n{\t\"{\"\\", None).is_none());
    }
}
