//! SHA-256 (FIPS 180-4), streaming, for one message or several at once.
//!
//! [`Sha256`] is an ordinary incremental hasher. [`update_lanes`] and
//! [`finalize_lanes`] advance up to [`MAX_LANES`] independent hashers in one call: on a
//! CPU with the x86 SHA extensions the compression rounds of all of them run
//! interleaved (`sha256rnds2` has a latency of several cycles but issues every one or
//! two, so a single message leaves the unit mostly idle). Without the extensions the
//! RustCrypto `sha2` compression function (its own run-time dispatch) hashes each lane
//! in turn. Results are always those of `sha2::Sha256`.
//!
//! ```
//! use vigil_fsverity::sha256::{self, Sha256};
//! let (mut a, mut b) = (Sha256::new(), Sha256::new());
//! sha256::update_lanes(&mut [&mut a, &mut b], &[b"abc", b"hello world"]);
//! let mut out = [[0u8; 32]; 2];
//! sha256::finalize_lanes(&[&a, &b], &mut out);
//! assert_eq!(out[0], Sha256::digest(b"abc"));
//! assert_eq!(
//!     hex::encode(out[1]),
//!     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
//! );
//! ```

use sha2::digest::generic_array::GenericArray;

/// Most messages one [`update_lanes`] / [`finalize_lanes`] call advances together.
pub const MAX_LANES: usize = 4;

/// Bytes per compression block.
pub const BLOCK_LEN: usize = 64;

/// Bytes of a digest.
pub const DIGEST_LEN: usize = 32;

/// The initial hash value (FIPS 180-4 §5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An incremental SHA-256 hasher.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    buf: [u8; BLOCK_LEN],
    buf_len: usize,
    /// Message length so far, in bytes.
    len: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256").field("len", &self.len).finish()
    }
}

impl Sha256 {
    /// A hasher for an empty message.
    pub fn new() -> Sha256 {
        Sha256 {
            state: IV,
            buf: [0; BLOCK_LEN],
            buf_len: 0,
            len: 0,
        }
    }

    /// Append `data` to the message.
    pub fn update(&mut self, data: &[u8]) {
        update_lanes(&mut [self], &[data]);
    }

    /// The digest of the message so far (the hasher is left as it was).
    pub fn finalize(&self) -> [u8; DIGEST_LEN] {
        let mut out = [[0u8; DIGEST_LEN]; 1];
        finalize_lanes(&[self], &mut out);
        out[0]
    }

    /// Forget the message: back to the state of [`Sha256::new`].
    pub fn reset(&mut self) {
        *self = Sha256::new();
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = Sha256::new();
        h.update(data);
        h.finalize()
    }
}

/// Append `data[i]` to `lanes[i]` for every `i`; the lanes are independent messages of
/// any lengths. Any number of lanes is accepted; they are advanced [`MAX_LANES`] at a
/// time.
///
/// # Panics
/// If `lanes` and `data` differ in length.
pub fn update_lanes(lanes: &mut [&mut Sha256], data: &[&[u8]]) {
    assert_eq!(lanes.len(), data.len(), "one input per lane");
    for (lanes, data) in lanes.chunks_mut(MAX_LANES).zip(data.chunks(MAX_LANES)) {
        update_group(lanes, data, Backend::detect());
    }
}

/// Write the digest of `lanes[i]` into `out[i]` (the hashers are left as they were).
///
/// # Panics
/// If `lanes` and `out` differ in length.
pub fn finalize_lanes(lanes: &[&Sha256], out: &mut [[u8; DIGEST_LEN]]) {
    assert_eq!(lanes.len(), out.len(), "one output per lane");
    for (lanes, out) in lanes.chunks(MAX_LANES).zip(out.chunks_mut(MAX_LANES)) {
        finalize_group(lanes, out, Backend::detect());
    }
}

/// How compression runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// x86 SHA extensions, lanes interleaved.
    ShaNi,
    /// `sha2::compress256`, one lane after another.
    Portable,
}

impl Backend {
    fn detect() -> Backend {
        if crate::shani::available() {
            Backend::ShaNi
        } else {
            Backend::Portable
        }
    }
}

/// At most [`MAX_LANES`] lanes.
fn update_group(lanes: &mut [&mut Sha256], data: &[&[u8]], backend: Backend) {
    let n = lanes.len();
    let mut rest: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
    // Complete the buffered partial blocks first; the lanes whose buffer fills are
    // compressed together.
    let mut full = [false; MAX_LANES];
    for i in 0..n {
        let (l, d) = (&mut *lanes[i], data[i]);
        l.len = l.len.wrapping_add(d.len() as u64);
        if l.buf_len > 0 {
            let take = (BLOCK_LEN - l.buf_len).min(d.len());
            l.buf[l.buf_len..l.buf_len + take].copy_from_slice(&d[..take]);
            l.buf_len += take;
            rest[i] = &d[take..];
            if l.buf_len == BLOCK_LEN {
                full[i] = true;
                l.buf_len = 0;
            }
        } else {
            rest[i] = d;
        }
    }
    if full.iter().any(|f| *f) {
        let mut states = [[0u32; 8]; MAX_LANES];
        let mut bufs = [[0u8; BLOCK_LEN]; MAX_LANES];
        let mut idx = [0usize; MAX_LANES];
        let mut k = 0;
        for i in (0..n).filter(|i| full[*i]) {
            states[k] = lanes[i].state;
            bufs[k] = lanes[i].buf;
            idx[k] = i;
            k += 1;
        }
        let mut blocks: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
        for (b, buf) in blocks.iter_mut().zip(&bufs) {
            *b = buf;
        }
        compress_ragged(&mut states[..k], &blocks[..k], backend);
        for j in 0..k {
            lanes[idx[j]].state = states[j];
        }
    }
    // Whole blocks of all lanes, interleaved.
    let mut states = [[0u32; 8]; MAX_LANES];
    let mut blocks: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
    for i in 0..n {
        states[i] = lanes[i].state;
        let whole = rest[i].len() / BLOCK_LEN * BLOCK_LEN;
        blocks[i] = &rest[i][..whole];
        rest[i] = &rest[i][whole..];
    }
    compress_ragged(&mut states[..n], &blocks[..n], backend);
    // The tails wait in the buffers.
    for i in 0..n {
        let l = &mut *lanes[i];
        l.state = states[i];
        let t = rest[i];
        l.buf[l.buf_len..l.buf_len + t.len()].copy_from_slice(t);
        l.buf_len += t.len();
    }
}

/// At most [`MAX_LANES`] lanes.
fn finalize_group(lanes: &[&Sha256], out: &mut [[u8; DIGEST_LEN]], backend: Backend) {
    let n = lanes.len();
    let mut states = [[0u32; 8]; MAX_LANES];
    let mut pads = [[0u8; 2 * BLOCK_LEN]; MAX_LANES];
    let mut pad_lens = [0usize; MAX_LANES];
    for i in 0..n {
        let l = lanes[i];
        states[i] = l.state;
        let p = &mut pads[i];
        p[..l.buf_len].copy_from_slice(&l.buf[..l.buf_len]);
        p[l.buf_len] = 0x80;
        let total = if l.buf_len + 1 + 8 <= BLOCK_LEN {
            BLOCK_LEN
        } else {
            2 * BLOCK_LEN
        };
        p[total - 8..total].copy_from_slice(&l.len.wrapping_mul(8).to_be_bytes());
        pad_lens[i] = total;
    }
    let mut blocks: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
    for i in 0..n {
        blocks[i] = &pads[i][..pad_lens[i]];
    }
    compress_ragged(&mut states[..n], &blocks[..n], backend);
    for (o, s) in out.iter_mut().zip(&states[..n]) {
        for (dst, w) in o.chunks_exact_mut(4).zip(s) {
            dst.copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// Compress `blocks[i]` (a multiple of 64 bytes; lengths may differ) into `states[i]`,
/// at most [`MAX_LANES`] lanes: all lanes together up to the shortest, then the longer
/// ones together, and so on.
fn compress_ragged(states: &mut [[u32; 8]], blocks: &[&[u8]], backend: Backend) {
    let n = states.len();
    debug_assert!(n <= MAX_LANES && blocks.len() == n);
    let mut order = [0usize, 1, 2, 3];
    let order = &mut order[..n];
    order.sort_unstable_by_key(|&i| blocks[i].len());
    let mut done = 0;
    for k in 0..n {
        let upto = blocks[order[k]].len();
        if upto > done {
            let active = &order[k..];
            let mut st = [[0u32; 8]; MAX_LANES];
            let mut data: [&[u8]; MAX_LANES] = [&[]; MAX_LANES];
            for (j, &i) in active.iter().enumerate() {
                st[j] = states[i];
                data[j] = &blocks[i][done..upto];
            }
            let m = active.len();
            compress_equal(&mut st[..m], &data[..m], backend);
            for (j, &i) in active.iter().enumerate() {
                states[i] = st[j];
            }
            done = upto;
        }
    }
}

/// Compress `data[i]` into `states[i]`: equal lengths, multiples of 64, 1 to 4 lanes.
fn compress_equal(states: &mut [[u32; 8]], data: &[&[u8]], backend: Backend) {
    debug_assert!(data
        .iter()
        .all(|d| d.len() == data[0].len() && d.len() % 64 == 0));
    match backend {
        Backend::ShaNi => crate::shani::compress_lanes(states, data),
        Backend::Portable => {
            for (s, d) in states.iter_mut().zip(data) {
                for b in d.chunks_exact(BLOCK_LEN) {
                    sha2::compress256(s, &[*GenericArray::from_slice(b)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    fn reference(d: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(d).into()
    }

    fn backends() -> Vec<Backend> {
        let mut b = vec![Backend::Portable];
        if crate::shani::available() {
            b.push(Backend::ShaNi);
        }
        b
    }

    fn msg(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Hash `msgs` lane-wise, feeding each in the pieces `cuts` gives, with `backend`.
    fn lanes_digest(msgs: &[Vec<u8>], piece: usize, backend: Backend) -> Vec<[u8; 32]> {
        let mut hs: Vec<Sha256> = msgs.iter().map(|_| Sha256::new()).collect();
        let mut pos = vec![0usize; msgs.len()];
        while pos.iter().zip(msgs).any(|(p, m)| *p < m.len()) {
            let chunks: Vec<&[u8]> = msgs
                .iter()
                .zip(&pos)
                .enumerate()
                .map(|(i, (m, &p))| &m[p..(p + piece + i * 7).min(m.len())])
                .collect();
            for (p, c) in pos.iter_mut().zip(&chunks) {
                *p += c.len();
            }
            let mut refs: Vec<&mut Sha256> = hs.iter_mut().collect();
            for (l, d) in refs.chunks_mut(MAX_LANES).zip(chunks.chunks(MAX_LANES)) {
                update_group(l, d, backend);
            }
        }
        let refs: Vec<&Sha256> = hs.iter().collect();
        let mut out = vec![[0u8; 32]; msgs.len()];
        for (l, o) in refs.chunks(MAX_LANES).zip(out.chunks_mut(MAX_LANES)) {
            finalize_group(l, o, backend);
        }
        out
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex::encode(Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(Sha256::digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn every_lane_count_and_length_around_block_boundaries() {
        let lens: Vec<usize> = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]
            .into_iter()
            .chain([4095, 4096, 4097, 65536 + 3])
            .collect();
        for backend in backends() {
            for lanes in 1..=MAX_LANES + 2 {
                for &base in &lens {
                    // Lanes of equal and of different lengths.
                    for spread in [0usize, 1, 64, 200] {
                        let msgs: Vec<Vec<u8>> = (0..lanes)
                            .map(|i| msg(base + i * spread, i as u8))
                            .collect();
                        for piece in [1usize, 63, 64, 100, 4096, usize::MAX / 2] {
                            if piece == 1 && base > 200 {
                                continue;
                            }
                            let got = lanes_digest(&msgs, piece, backend);
                            for (m, g) in msgs.iter().zip(&got) {
                                assert_eq!(
                                    *g,
                                    reference(m),
                                    "{backend:?} lanes {lanes} len {} piece {piece}",
                                    m.len()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn public_api_matches_sha2() {
        let msgs: Vec<Vec<u8>> = (0..7).map(|i| msg(i * 300 + 5, i as u8)).collect();
        let mut hs: Vec<Sha256> = (0..7).map(|_| Sha256::new()).collect();
        let mut refs: Vec<&mut Sha256> = hs.iter_mut().collect();
        let data: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        update_lanes(&mut refs, &data);
        let refs: Vec<&Sha256> = hs.iter().collect();
        let mut out = vec![[0u8; 32]; 7];
        finalize_lanes(&refs, &mut out);
        for (m, o) in msgs.iter().zip(&out) {
            assert_eq!(*o, reference(m));
        }
        // finalize leaves the hasher usable; reset starts over.
        let mut h = Sha256::new();
        h.update(b"ab");
        assert_eq!(h.finalize(), reference(b"ab"));
        h.update(b"c");
        assert_eq!(h.finalize(), reference(b"abc"));
        assert_eq!(h.len(), 3);
        h.reset();
        assert!(h.is_empty());
        assert_eq!(h.finalize(), reference(b""));
    }

    proptest! {
        #[test]
        fn lanes_equal_sha2(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 1..=6),
            piece in 1usize..300,
        ) {
            for backend in backends() {
                let got = lanes_digest(&msgs, piece, backend);
                for (m, g) in msgs.iter().zip(&got) {
                    prop_assert_eq!(*g, reference(m));
                }
            }
        }
    }
}
