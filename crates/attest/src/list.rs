//! Measurement lists as the validation engine reads them: the ASCII list a Keylime
//! agent sends (one line per entry, template data re-synthesised from the text as
//! Keylime does) or a binary list, both parsed by `vigil_ima::list`.

use std::borrow::Cow;

use rayon::prelude::*;
use vigil_ima::list::{ascii, BinaryReader, Endian, Field, Record, IMA_NAME_HASH_LEN};
use vigil_ima::HashAlgo;

use crate::validate::{Entry, Template, Unparsable};
use crate::Result;

/// The two encodings of a measurement list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `ascii_runtime_measurements*`, or what a Keylime agent sends.
    Ascii,
    /// `binary_runtime_measurements*`.
    Binary,
}

impl ListFormat {
    /// Tell the encodings apart: an ASCII list starts with a PCR number in decimal
    /// (`10 ` or ` 9 `), a binary one with a 4-byte PCR index.
    pub fn detect(data: &[u8]) -> ListFormat {
        // A binary list starts with a u32 PCR index (below 24: NUL bytes); an ASCII line
        // with printable text (or blank lines, tabs, CRLF line ends).
        let head = &data[..data.len().min(16)];
        if head
            .iter()
            .all(|&b| b.is_ascii_whitespace() || b.is_ascii_graphic())
        {
            ListFormat::Ascii
        } else {
            ListFormat::Binary
        }
    }
}

/// An entry (owned: `ListItem<'static>`) or why it could not be read.
pub type ListItem<'a> = std::result::Result<Entry<'a>, Unparsable>;

/// Turn a parsed record into an engine entry.
pub fn entry_from_record(r: Record, endian: Endian) -> ListItem<'static> {
    let Some(template) = Template::from_name(&r.template_name) else {
        return Err(Unparsable {
            message: format!(
                "template {:?} is not supported (Keylime validates only ima, ima-ng, ima-sig, ima-buf)",
                r.template_name
            ),
            name: r.name().map(|n| String::from_utf8_lossy(n).into_owned()),
        });
    };
    let template_data = if template == Template::Ima {
        // H(d ‖ n zero-padded to 256 bytes): keep exactly the hashed bytes.
        let mut v = Vec::with_capacity(20 + IMA_NAME_HASH_LEN);
        for f in &r.fields {
            if let Field::D(d) | Field::N(d) = f {
                v.extend_from_slice(d);
            }
        }
        let d_len = r
            .fields
            .iter()
            .find_map(|f| match f {
                Field::D(d) => Some(d.len()),
                _ => None,
            })
            .unwrap_or(0);
        v.resize(v.len().max(d_len + IMA_NAME_HASH_LEN), 0);
        v
    } else {
        let mut v = Vec::with_capacity(128);
        r.encode_data(endian, &mut v);
        v
    };
    let mut name = Vec::new();
    let mut digest_algo = String::new();
    let mut digest = Vec::new();
    let mut sig = Vec::new();
    let mut buf = Vec::new();
    for f in r.fields {
        match f {
            Field::D(d) => {
                digest_algo = HashAlgo::from_legacy_len(d.len())
                    .map(|a| a.name().to_owned())
                    .unwrap_or_default();
                digest = d;
            }
            Field::DigestNg { algo, digest: d } => {
                digest_algo = algo.name().to_owned();
                digest = d;
            }
            Field::N(n) | Field::NameNg(n) => name = n,
            Field::Sig(s) => sig = s,
            Field::Buf(b) => buf = b,
            _ => {}
        }
    }
    Ok(Entry {
        pcr: r.pcr,
        template_hash: Cow::Owned(r.digest),
        template,
        template_data: Cow::Owned(template_data),
        digest_algo: Cow::Owned(digest_algo),
        digest: Cow::Owned(digest),
        name: Cow::Owned(name),
        sig: Cow::Owned(sig),
        buf: Cow::Owned(buf),
    })
}

/// Parse an ASCII list line by line (in parallel). Empty lines are skipped; a line that
/// cannot be parsed becomes an [`Unparsable`] item, as Keylime reports such lines and
/// goes on.
pub fn parse_ascii(text: &[u8]) -> Vec<ListItem<'static>> {
    let lines: Vec<&[u8]> = ascii_lines(text).collect();
    lines.par_iter().map(|l| parse_ascii_line(l)).collect()
}

fn ascii_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Number of entries (non-empty lines) of an ASCII list.
pub fn ascii_len(text: &[u8]) -> usize {
    ascii_lines(text).count()
}

/// Like [`parse_ascii`], but lazily and borrowing from `text`: lines are parsed in
/// parallel a chunk at a time, so a caller that validates as it goes keeps only one
/// chunk of entries in memory. The first `skip` entries are neither parsed nor
/// returned.
pub fn ascii_items(
    text: &[u8],
    skip: usize,
) -> impl Iterator<Item = std::result::Result<Entry<'_>, Unparsable>> + '_ {
    const CHUNK: usize = 8192;
    let mut lines = ascii_lines(text).skip(skip);
    let mut buf: Vec<&[u8]> = Vec::with_capacity(CHUNK);
    std::iter::from_fn(move || {
        buf.clear();
        buf.extend(lines.by_ref().take(CHUNK));
        if buf.is_empty() {
            return None;
        }
        Some(
            buf.par_iter()
                .with_min_len(512)
                .map(|line| fast_ascii_line(line).unwrap_or_else(|| parse_ascii_line(line)))
                .collect::<Vec<_>>(),
        )
    })
    .flatten()
}

/// Append the bytes of the hex text `h` to `out`; `false` (with `out` partly
/// written) if it is not hex.
fn unhex_into(h: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.resize(start + h.len() / 2, 0);
    crate::hex_decode::decode(h, &mut out[start..])
}

/// Where the parts of a line taken by the fast path are: `text` offsets in the list
/// text (at most 4 GiB on this path), the others in the chunk's byte arena. The
/// template data is not kept (it is rebuilt when asked for): a large list's lines
/// would otherwise hold a second copy of every path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastLine {
    name: u32,
    name_len: u32,
    algo: u32,
    template_hash: u32,
    digest: u32,
    sig: u32,
    sig_len: u32,
    pcr: u8,
    algo_len: u8,
    template_hash_len: u8,
    digest_len: u8,
    /// Whether the digest's hex in the text has no uppercase digit.
    digest_hex_lower: bool,
    pub(crate) template: Template,
}

#[inline]
fn arena_off(arena: &[u8]) -> Option<u32> {
    u32::try_from(arena.len()).ok()
}

/// The allocation-free path for the common lines (`ima-ng`, `ima-sig` with an
/// `alg:hex` digest): the fields are split in place, the name and algorithm left in
/// `text`, the template hash, file digest and signature written to `arena`. It gives
/// exactly what [`parse_ascii_line`] gives for the lines it accepts and `None` (with
/// `arena` as it was) for every other line (other templates, anything unusual or
/// malformed), which then takes that path.
pub(crate) fn fast_line(
    text: &[u8],
    ls: usize,
    le: usize,
    arena: &mut Vec<u8>,
) -> Option<FastLine> {
    let mark = arena.len();
    let r = fast_line_inner(text, ls, le, arena);
    if r.is_none() {
        arena.truncate(mark);
    }
    r
}

#[inline]
fn fast_line_inner(text: &[u8], ls: usize, le: usize, arena: &mut Vec<u8>) -> Option<FastLine> {
    u32::try_from(le).ok()?;
    let line = &text[ls..le];
    let start = line.iter().position(|&b| b != b' ')?;
    let base = ls + start;
    let line = &line[start..];
    // The fields are found where their usual lengths put the spaces between them; a
    // guess is confirmed by decoding the field as hex (a space is not hex), and a line
    // where no guess fits is declined or searched.
    let at_space = |i: usize| line.get(i) == Some(&b' ');
    // PCR: one or two digits.
    let p = if at_space(1) {
        1
    } else if at_space(2) {
        2
    } else {
        return None;
    };
    if !line[..p].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pcr = line[..p].iter().fold(0u8, |n, &d| n * 10 + (d - b'0'));
    if pcr as usize >= vigil_ima::list::NUM_PCRS {
        return None;
    }
    // Template hash: 40, 64, 96 or 128 hex digits.
    let t = p + 1;
    let n = [40, 64, 96, 128].into_iter().find(|&n| at_space(t + n))?;
    let th = &line[t..t + n];
    let th_start = arena_off(arena)?;
    if !unhex_into(th, arena) {
        return None;
    }
    // Template name.
    let r = t + n + 1;
    let (template, d) = if line[r..].starts_with(b"ima-ng ") {
        (Template::ImaNg, r + 7)
    } else if line[r..].starts_with(b"ima-sig ") {
        (Template::ImaSig, r + 8)
    } else {
        return None;
    };
    // As `keylime_line`: a trailing '\r' ends the signature, or the name of ima-ng.
    let line = match template {
        Template::ImaSig => line.strip_suffix(b"\r").unwrap_or(line),
        _ => line,
    };
    // File digest: "algo:hex"; the hex's length from the algorithm when it is a
    // usual one.
    let colon = d + memchr::memchr(b':', &line[d..line.len().min(d + 256)])?;
    let algo = &line[d..colon];
    if algo.is_empty()
        || !algo
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let hex_len = match algo {
        b"sha1" => 40,
        b"sha256" => 64,
        b"sha384" => 96,
        b"sha512" => 128,
        _ => 0,
    };
    let x = colon + 1;
    let y = if hex_len > 0 && at_space(x + hex_len) {
        x + hex_len
    } else {
        x + memchr::memchr(b' ', &line[x..])?
    };
    let dhex = &line[x..y];
    let rest = &line[y + 1..];
    let off = base + y + 1;
    let d_off = base + d;
    if dhex.len() / 2 > u8::MAX as usize {
        return None;
    }
    let (name, sig_hex) = match template {
        Template::ImaSig => match memchr::memchr(b' ', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        },
        _ => (rest, &b""[..]),
    };
    if name.is_empty() || dhex.is_empty() {
        return None;
    }
    let digest = arena_off(arena)?;
    if !unhex_into(dhex, arena) {
        return None;
    }
    let sig = arena_off(arena)?;
    if !unhex_into(sig_hex, arena) {
        return None;
    }
    Some(FastLine {
        name: off as u32,
        name_len: name.len() as u32,
        algo: d_off as u32,
        template_hash: th_start,
        digest,
        sig,
        sig_len: (sig_hex.len() / 2) as u32,
        pcr,
        algo_len: algo.len() as u8,
        template_hash_len: (th.len() / 2) as u8,
        digest_len: (dhex.len() / 2) as u8,
        // Without an early exit, so that it vectorises.
        digest_hex_lower: !dhex.iter().fold(false, |up, b| up | b.is_ascii_uppercase()),
        template,
    })
}

impl FastLine {
    /// The entry, borrowing from the list text and the arena, without its template
    /// data (see [`FastLine::entry_full`]).
    #[inline]
    pub(crate) fn entry<'a>(&self, text: &'a [u8], arena: &'a [u8]) -> Entry<'a> {
        let a = |s: u32, l: usize| &arena[s as usize..s as usize + l];
        Entry {
            pcr: self.pcr as u32,
            template_hash: Cow::Borrowed(a(self.template_hash, self.template_hash_len as usize)),
            template: self.template,
            template_data: Cow::Borrowed(&[]),
            digest_algo: Cow::Borrowed(algo_name(self.algo(text))),
            digest: Cow::Borrowed(a(self.digest, self.digest_len as usize)),
            name: Cow::Borrowed(self.name(text)),
            sig: Cow::Borrowed(a(self.sig, self.sig_len as usize)),
            buf: Cow::Borrowed(&[]),
        }
    }

    /// [`FastLine::entry`] with the template data.
    pub(crate) fn entry_full<'a>(&self, text: &'a [u8], arena: &'a [u8]) -> Entry<'a> {
        let mut data = Vec::new();
        self.write_template_data(text, arena, &mut data);
        let mut e = self.entry(text, arena);
        e.template_data = Cow::Owned(data);
        e
    }

    /// The file digest as lowercase hex, as the list has it, if it has it so.
    #[inline]
    pub(crate) fn digest_hex<'a>(&self, text: &'a [u8]) -> Option<&'a [u8]> {
        let at = self.algo as usize + self.algo_len as usize + 1;
        self.digest_hex_lower
            .then(|| &text[at..at + 2 * self.digest_len as usize])
    }

    /// The name (the text after the fourth field).
    #[inline]
    pub(crate) fn name<'a>(&self, text: &'a [u8]) -> &'a [u8] {
        &text[self.name as usize..self.name as usize + self.name_len as usize]
    }

    #[inline]
    fn algo<'a>(&self, text: &'a [u8]) -> &'a [u8] {
        &text[self.algo as usize..self.algo as usize + self.algo_len as usize]
    }

    /// Append the template data to `out`: d-ng ("alg:\0" + digest), n-ng (name +
    /// NUL) and for `ima-sig` the signature, each after its little-endian u32 length.
    pub(crate) fn write_template_data(&self, text: &[u8], arena: &[u8], out: &mut Vec<u8>) {
        let (algo, name) = (self.algo(text), self.name(text));
        let digest = &arena[self.digest as usize..self.digest as usize + self.digest_len as usize];
        let sig = &arena[self.sig as usize..self.sig as usize + self.sig_len as usize];
        out.reserve(12 + algo.len() + 2 + digest.len() + name.len() + 1 + sig.len());
        out.extend_from_slice(&((algo.len() + 2 + digest.len()) as u32).to_le_bytes());
        out.extend_from_slice(algo);
        out.extend_from_slice(b":\0");
        out.extend_from_slice(digest);
        out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        out.extend_from_slice(name);
        out.push(0);
        if self.template == Template::ImaSig {
            out.extend_from_slice(&(sig.len() as u32).to_le_bytes());
            out.extend_from_slice(sig);
        }
    }
}

/// A digest algorithm's name (checked ASCII by the parser), without a UTF-8 check for
/// the usual ones.
#[inline]
fn algo_name(a: &[u8]) -> &str {
    match a {
        b"sha256" => "sha256",
        b"sha1" => "sha1",
        b"sha512" => "sha512",
        b"sha384" => "sha384",
        _ => std::str::from_utf8(a).unwrap_or(""),
    }
}

/// [`fast_line`] for one line, giving an owned entry.
fn fast_ascii_line(line: &[u8]) -> Option<ListItem<'static>> {
    let mut arena = Vec::new();
    let f = fast_line(line, 0, line.len(), &mut arena)?;
    let e = f.entry_full(line, &arena);
    Some(Ok(Entry {
        pcr: e.pcr,
        template_hash: Cow::Owned(e.template_hash.into_owned()),
        template: e.template,
        template_data: Cow::Owned(e.template_data.into_owned()),
        digest_algo: Cow::Owned(e.digest_algo.into_owned()),
        digest: Cow::Owned(e.digest.into_owned()),
        name: Cow::Owned(e.name.into_owned()),
        sig: Cow::Owned(e.sig.into_owned()),
        buf: Cow::Owned(e.buf.into_owned()),
    }))
}

/// One line of a [`PreparedAscii`] chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Line {
    /// Read by the fast path.
    Fast(FastLine),
    /// Read by the general parser: index into the chunk's `slow` items.
    Slow(u32),
}

/// A chunk of a [`PreparedAscii`] list.
pub(crate) struct Chunk {
    /// Template hashes, template data, signatures; and the template digests with the
    /// bank's algorithm.
    pub(crate) arena: Vec<u8>,
    /// Each line and where its bank template digest is in `arena` (`u32::MAX`: not
    /// computed, e.g. for a zero template hash).
    pub(crate) lines: Vec<(Line, u32)>,
    /// Items of the lines the fast path did not take.
    pub(crate) slow: Vec<ListItem<'static>>,
}

impl Chunk {
    /// Hand one of this chunk's `lines` to `f`: its entry (or why it could not be
    /// read) and its template digest with the bank's algorithm (`digest_len` bytes),
    /// if that was computed.
    #[inline]
    pub(crate) fn with_line<R>(
        &self,
        text: &[u8],
        (line, at): &(Line, u32),
        digest_len: usize,
        full: bool,
        f: impl FnOnce(std::result::Result<&Entry<'_>, &Unparsable>, Option<&[u8]>) -> R,
    ) -> R {
        let pre_bank =
            (*at != u32::MAX).then(|| &self.arena[*at as usize..*at as usize + digest_len]);
        match line {
            // Without its template digest, a line's template data may be needed.
            Line::Fast(l) if full || pre_bank.is_none() => {
                f(Ok(&l.entry_full(text, &self.arena)), pre_bank)
            }
            Line::Fast(l) => f(Ok(&l.entry(text, &self.arena)), pre_bank),
            Line::Slow(i) => f(self.slow[*i as usize].as_ref(), pre_bank),
        }
    }
}

/// An ASCII measurement list prepared for validation: split into lines, every line
/// parsed and its template digest (with the PCR bank's algorithm) computed, in
/// parallel. None of this depends on the policy, so it can run while the policy is
/// being read. The items are exactly those of [`ascii_items`].
pub struct PreparedAscii<'t> {
    pub(crate) text: &'t [u8],
    pub(crate) bank: HashAlgo,
    pub(crate) chunks: Vec<Chunk>,
    len: usize,
}

impl<'t> PreparedAscii<'t> {
    /// Parse and hash `text` for a quote of PCR bank `bank`.
    pub fn new(text: &'t [u8], bank: HashAlgo) -> PreparedAscii<'t> {
        const CHUNK_BYTES: usize = 48 << 10;
        let mut bounds = Vec::with_capacity(text.len() / CHUNK_BYTES + 2);
        let mut s = 0;
        while s < text.len() {
            let want = (s + CHUNK_BYTES).min(text.len());
            let e = match memchr::memchr(b'\n', &text[want..]) {
                Some(k) => want + k + 1,
                None => text.len(),
            };
            bounds.push((s, e));
            s = e;
        }
        let chunks: Vec<Chunk> = bounds
            .par_iter()
            .map(|&(s, e)| prepare_chunk(text, s, e, bank))
            .collect();
        let len = chunks.iter().map(|c| c.lines.len()).sum();
        PreparedAscii {
            text,
            bank,
            chunks,
            len,
        }
    }

    /// Number of entries (non-blank lines).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The PCR bank the template digests were computed for.
    pub fn bank(&self) -> HashAlgo {
        self.bank
    }

    /// The items, in order (for tests and other consumers).
    pub fn items(&self) -> impl Iterator<Item = ListItem<'_>> + '_ {
        self.chunks.iter().flat_map(move |c| {
            c.lines.iter().map(move |(l, _)| match l {
                Line::Fast(f) => Ok(f.entry_full(self.text, &c.arena)),
                Line::Slow(i) => c.slow[*i as usize].clone(),
            })
        })
    }
}

/// Whether every byte is zero.
#[inline]
fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// The template digest of `data` with `bank`, appended to `arena`; its offset
/// (`u32::MAX` if it could not be computed).
#[inline]
fn hash_into(bank: HashAlgo, data: &[u8], arena: &mut Vec<u8>) -> u32 {
    let Some(at) = arena_off(arena) else {
        return u32::MAX;
    };
    if bank == HashAlgo::Sha1 {
        arena.resize(arena.len() + 20, 0);
        crate::sha1_fast::digest_into(data, &mut arena[at as usize..]);
        return at;
    }
    let Ok(mut h) = vigil_ima::Hasher::new(bank) else {
        return u32::MAX;
    };
    h.update(data);
    let n = bank.digest_len();
    arena.resize(arena.len() + n, 0);
    h.finalize_into(&mut arena[at as usize..at as usize + n]);
    at
}

fn prepare_chunk(text: &[u8], s: usize, e: usize, bank: HashAlgo) -> Chunk {
    let mut c = Chunk {
        // Per line about 0.4 of its length (the template hash, digest and signature
        // as bytes, and the bank's template digest).
        arena: Vec::with_capacity((e - s) / 2),
        lines: Vec::with_capacity((e - s) / 100),
        slow: Vec::new(),
    };
    // A fast line's template data, built only to be hashed. With SHA-1, lines are
    // hashed in pairs (`sha1_fast::digest2_into`): the first waits in `data` with its
    // digest's place in the arena reserved.
    let mut data = Vec::new();
    let mut next = Vec::new();
    let mut waiting: Option<usize> = None;
    let mut ls = s;
    while ls < e {
        let le = match memchr::memchr(b'\n', &text[ls..e]) {
            Some(k) => ls + k,
            None => e,
        };
        let line = &text[ls..le];
        if !line.is_empty() {
            match fast_line(text, ls, le, &mut c.arena) {
                Some(f) => {
                    let th = f.template_hash as usize;
                    let zero = all_zero(&c.arena[th..th + f.template_hash_len as usize]);
                    let h = if zero {
                        u32::MAX
                    } else if bank == HashAlgo::Sha1 && arena_off(&c.arena).is_some() {
                        let at = c.arena.len();
                        c.arena.resize(at + 20, 0);
                        match waiting.take() {
                            None => {
                                data.clear();
                                f.write_template_data(text, &c.arena, &mut data);
                                waiting = Some(at);
                            }
                            Some(first) => {
                                next.clear();
                                f.write_template_data(text, &c.arena, &mut next);
                                let (x, y) = c.arena.split_at_mut(at);
                                crate::sha1_fast::digest2_into(
                                    &data,
                                    &next,
                                    &mut x[first..first + 20],
                                    y,
                                );
                            }
                        }
                        at as u32
                    } else {
                        data.clear();
                        f.write_template_data(text, &c.arena, &mut data);
                        hash_into(bank, &data, &mut c.arena)
                    };
                    c.lines.push((Line::Fast(f), h));
                }
                None => {
                    let item = parse_ascii_line(line);
                    let h = match &item {
                        Ok(en) if !all_zero(&en.template_hash) => {
                            hash_into(bank, &en.template_data, &mut c.arena)
                        }
                        _ => u32::MAX,
                    };
                    c.lines.push((Line::Slow(c.slow.len() as u32), h));
                    c.slow.push(item);
                }
            }
        }
        ls = le + 1;
    }
    if let Some(first) = waiting {
        crate::sha1_fast::digest_into(&data, &mut c.arena[first..first + 20]);
    }
    c
}

/// `line` as Keylime reads it. Keylime takes everything up to the `\n` as data, but
/// decodes hex fields with `bytes.fromhex`, which skips whitespace: a trailing `\r` is
/// part of the name that ends an `ima` or `ima-ng` line, and vanishes from the signature
/// or buffer that ends an `ima-sig` or `ima-buf` line.
fn keylime_line(line: &[u8]) -> &[u8] {
    let Some(stripped) = line.strip_suffix(b"\r") else {
        return line;
    };
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    match line[start..].split(|&b| b == b' ').nth(2) {
        Some(b"ima-sig" | b"ima-buf") => stripped,
        _ => line,
    }
}

fn parse_ascii_line(line: &[u8]) -> ListItem<'static> {
    let endian = Endian::Little;
    match ascii::parse_line_exact(keylime_line(line), None, endian) {
        Ok(r) => entry_from_record(r, endian),
        Err(e) => Err(Unparsable {
            message: format!("{e}: {}", String::from_utf8_lossy(line)),
            name: None,
        }),
    }
}

/// The byte order of a binary list, told by its first PCR index.
fn binary_endian(data: &[u8]) -> Endian {
    match data {
        [a, b, c, d, ..] => Endian::detect([*a, *b, *c, *d]),
        _ => Endian::native(),
    }
}

/// Parse a binary list whose template-digest column is `digest_algo` (SHA-1 for the
/// legacy file, the bank's algorithm for `binary_runtime_measurements_<alg>`). A
/// structural error stops the list: binary records cannot be resynchronised.
pub fn parse_binary(data: &[u8], digest_algo: HashAlgo) -> Result<Vec<ListItem<'static>>> {
    let endian = binary_endian(data);
    let mut reader = BinaryReader::new(data, digest_algo, endian);
    let mut out = Vec::new();
    while let Some(raw) = reader.next_raw()? {
        let rec = raw.to_record(digest_algo, endian)?;
        out.push(entry_from_record(rec, endian));
    }
    Ok(out)
}

/// Parse a list in either encoding (see [`ListFormat::detect`]).
pub fn parse(data: &[u8], binary_digest_algo: HashAlgo) -> Result<Vec<ListItem<'static>>> {
    match ListFormat::detect(data) {
        ListFormat::Ascii => Ok(parse_ascii(data)),
        ListFormat::Binary => parse_binary(data, binary_digest_algo),
    }
}

/// A binary list rendered as the kernel's ASCII list (what policy generation, which
/// reads ASCII lists as Keylime does, makes of a binary one).
pub fn binary_as_ascii(data: &[u8], digest_algo: HashAlgo) -> Result<Vec<u8>> {
    let endian = binary_endian(data);
    let mut reader = BinaryReader::new(data, digest_algo, endian);
    let mut out = Vec::new();
    while let Some(raw) = reader.next_raw()? {
        let rec = raw.to_record(digest_algo, endian)?;
        vigil_ima::list::ascii::format_record(&rec, endian, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keylime reads a line up to its `\n` and hex fields with `bytes.fromhex`: a
    /// trailing `\r` stays in an ima-ng name, leaves an ima-sig signature, and a line of
    /// just `\r` is an entry that cannot be parsed.
    #[test]
    fn trailing_carriage_return_as_keylime_reads_it() {
        let d = "sha256:".to_owned() + &"ab".repeat(32);
        let th = "0123456789abcdef0123456789abcdef01234567";
        let sig = "030204deadbeef0004a1b2c3d4";
        let text = format!("10 {th} ima-ng {d} /p\r\n10 {th} ima-sig {d} /q {sig}\r\n\r\n\n");
        let items = parse_ascii(text.as_bytes());
        assert_eq!(items.len(), 3);
        let ng = items[0].as_ref().unwrap();
        assert_eq!(&ng.name[..], b"/p\r");
        let signed = items[1].as_ref().unwrap();
        assert_eq!(
            (&signed.name[..], &signed.sig[..]),
            (&b"/q"[..], &hex::decode(sig).unwrap()[..])
        );
        assert!(items[2].is_err());
        let p = PreparedAscii::new(text.as_bytes(), HashAlgo::Sha1);
        assert_eq!(p.items().collect::<Vec<_>>(), items);
    }

    /// The fast path agrees with the general parser on every line it takes, and
    /// leaves every other line to it.
    #[test]
    fn fast_path_matches_general_parser() {
        let d = "sha256:".to_owned() + &"ab".repeat(32);
        let th = "0123456789abcdef0123456789abcdef01234567";
        let sig = "030204deadbeef0004".to_owned() + "a1b2c3d4";
        let lines = [
            format!("10 {th} ima-ng {d} /usr/bin/bash"),
            format!(" 9 {th} ima-ng {d} /path with spaces"),
            format!("10 {th} ima-ng {d} /p\r"),
            format!("10 {th} ima-sig {d} /p {sig}\r"),
            format!("10 {th} ima-sig {d} /p \r"),
            format!("10 {th} ima-sig {d} /p\r"),
            format!("10 {th} ima-buf {d} .ima 3082\r"),
            "\r".to_owned(),
            format!(
                "10 {} ima-ng sha1:{} boot_aggregate",
                "00".repeat(20),
                "00".repeat(20)
            ),
            format!("10 {} ima-ng {d} /x", "AB".repeat(32)),
            format!("10 {th} ima-sig {d} /usr/lib/x.so "),
            format!("10 {th} ima-sig {d} /usr/lib/x.so"),
            format!("10 {th} ima-sig {d} /usr/lib/x.so {sig}"),
            format!("10 {th} ima-sig {d} /usr/lib/x.so {sig} extra"),
            format!("10 {th} ima-sig {d} /usr/lib/x.so abc"),
            format!("10 {th} ima-ng sm3_256:{} /y", "cd".repeat(32)),
            format!("10 {th} ima-ng md5:{} /y", "cd".repeat(16)),
            format!("10 {th} ima-ng {} /bare", "cd".repeat(32)),
            format!("10 {th} ima-ng {d}"),
            format!("10 {th} ima-ng {d} "),
            format!("10 {th} ima-ng :{} /e", "cd".repeat(32)),
            format!("10 {th} ima-ng sha256:abc /odd"),
            format!("10 {th} ima-ng sha256:zz /nothex"),
            format!("10 {} ima-ng {d} /short", "ab".repeat(19)),
            format!("24 {th} ima-ng {d} /pcr"),
            format!("010 {th} ima-ng {d} /pcr"),
            format!("x {th} ima-ng {d} /pcr"),
            format!("10 {th} ima {} /old", "ab".repeat(20)),
            format!("10 {th} ima-buf {d} .ima 3082"),
            format!("10 {th} ima-foo {d} /f"),
            format!("10 {th}"),
            "10".to_owned(),
            format!("10 {th} ima-ng {d} /nul\0byte"),
        ];
        let mut fast = 0;
        for l in &lines {
            let slow = parse_ascii_line(l.as_bytes());
            if let Some(f) = fast_ascii_line(l.as_bytes()) {
                fast += 1;
                assert_eq!(f, slow, "{l:?}");
            }
        }
        assert!(fast >= 10, "{fast}");
        // And through the list readers.
        let text = lines.join("\n");
        let lazy: Vec<_> = ascii_items(text.as_bytes(), 0).collect();
        assert_eq!(lazy, parse_ascii(text.as_bytes()));
        let skipped: Vec<_> = ascii_items(text.as_bytes(), 3).collect();
        assert_eq!(skipped[..], lazy[3..]);
        for bank in [HashAlgo::Sha1, HashAlgo::Sha256] {
            let p = PreparedAscii::new(text.as_bytes(), bank);
            assert_eq!(p.len(), lazy.len());
            assert_eq!(p.items().collect::<Vec<_>>(), lazy);
        }
    }
}
