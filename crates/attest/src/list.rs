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
        // with printable text.
        let head = &data[..data.len().min(16)];
        if head
            .iter()
            .all(|&b| b == b' ' || b == b'\n' || b.is_ascii_graphic())
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

/// Parse an ASCII list line by line (in parallel). Blank lines are skipped; a line that
/// cannot be parsed becomes an [`Unparsable`] item, as Keylime reports such lines and
/// goes on.
pub fn parse_ascii(text: &[u8]) -> Vec<ListItem<'static>> {
    let lines: Vec<&[u8]> = ascii_lines(text).collect();
    lines.par_iter().map(|l| parse_ascii_line(l)).collect()
}

fn ascii_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && *l != b"\r")
}

/// Number of entries (non-blank lines) of an ASCII list.
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

/// Like [`ascii_items`], but all at once (one parallel pass, no chunking), for a
/// caller that keeps the whole list anyway.
pub fn ascii_items_all(text: &[u8], skip: usize) -> Vec<ListItem<'_>> {
    let lines: Vec<&[u8]> = ascii_lines(text).skip(skip).collect();
    lines
        .par_iter()
        .with_min_len(512)
        .map(|line| fast_ascii_line(line).unwrap_or_else(|| parse_ascii_line(line)))
        .collect()
}

/// Value of one hex digit, or 0xff.
const HEX: [u8; 256] = {
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

/// Append the bytes of the hex text `h` to `out`; `false` (with `out` partly
/// written) if it is not hex.
fn unhex_into(h: &[u8], out: &mut Vec<u8>) -> bool {
    if h.len() % 2 != 0 {
        return false;
    }
    let mut bad = 0u8;
    out.extend(h.chunks_exact(2).map(|p| {
        let (a, b) = (HEX[p[0] as usize], HEX[p[1] as usize]);
        bad |= (a | b) & 0xf0;
        (a << 4) | (b & 0x0f)
    }));
    bad == 0
}

/// The allocation-light path for the common lines (`ima-ng`, `ima-sig` with an
/// `alg:hex` digest): the fields are split in place, the name and algorithm borrowed
/// from the line, and the template data written directly. It gives exactly what
/// [`parse_ascii_line`] gives for the lines it accepts and `None` for every other line
/// (other templates, anything unusual or malformed), which then takes that path.
fn fast_ascii_line(line: &[u8]) -> Option<ListItem<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line.iter().position(|&b| b != b' ')?;
    let line = &line[start..];
    let sp = |s: &[u8]| s.iter().position(|&b| b == b' ');
    let i = sp(line)?;
    let (pcr, rest) = (&line[..i], &line[i + 1..]);
    if pcr.is_empty() || pcr.len() > 2 || !pcr.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pcr = pcr.iter().fold(0u32, |n, &d| n * 10 + (d - b'0') as u32);
    if pcr as usize >= vigil_ima::list::NUM_PCRS {
        return None;
    }
    let i = sp(rest)?;
    let (th, rest) = (&rest[..i], &rest[i + 1..]);
    if !matches!(th.len(), 40 | 64 | 96 | 128) {
        return None;
    }
    let mut template_hash = Vec::with_capacity(th.len() / 2);
    if !unhex_into(th, &mut template_hash) {
        return None;
    }
    let i = sp(rest)?;
    let (tname, rest) = (&rest[..i], &rest[i + 1..]);
    let template = match tname {
        b"ima-ng" => Template::ImaNg,
        b"ima-sig" => Template::ImaSig,
        _ => return None,
    };
    let i = sp(rest)?;
    let (d, rest) = (&rest[..i], &rest[i + 1..]);
    let colon = d.iter().position(|&b| b == b':')?;
    let (algo, dhex) = (&d[..colon], &d[colon + 1..]);
    if algo.is_empty()
        || !algo
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let (name, sig_hex) = match template {
        Template::ImaSig => match sp(rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        },
        _ => (rest, &b""[..]),
    };
    if name.is_empty() || dhex.is_empty() {
        return None;
    }
    // d-ng: "alg:\0" + digest; n-ng: name + NUL; sig: raw bytes.
    let d_len = algo.len() + 2 + dhex.len() / 2;
    let sig_len = sig_hex.len() / 2;
    let mut data = Vec::with_capacity(12 + d_len + name.len() + 1 + sig_len);
    data.extend_from_slice(&(d_len as u32).to_le_bytes());
    data.extend_from_slice(algo);
    data.extend_from_slice(b":\0");
    let dstart = data.len();
    if !unhex_into(dhex, &mut data) {
        return None;
    }
    let digest = data[dstart..].to_vec();
    data.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    data.extend_from_slice(name);
    data.push(0);
    let sig: Cow<[u8]> = if template == Template::ImaSig {
        data.extend_from_slice(&(sig_len as u32).to_le_bytes());
        let s = data.len();
        if !unhex_into(sig_hex, &mut data) {
            return None;
        }
        Cow::Owned(data[s..].to_vec())
    } else {
        Cow::Borrowed(&[])
    };
    Some(Ok(Entry {
        pcr,
        template_hash: Cow::Owned(template_hash),
        template,
        template_data: Cow::Owned(data),
        // Checked ASCII above.
        digest_algo: Cow::Borrowed(std::str::from_utf8(algo).ok()?),
        digest: Cow::Owned(digest),
        name: Cow::Borrowed(name),
        sig,
        buf: Cow::Borrowed(&[]),
    }))
}

fn parse_ascii_line(line: &[u8]) -> ListItem<'static> {
    let endian = Endian::Little;
    match ascii::parse_line(line, None, endian) {
        Ok(r) => entry_from_record(r, endian),
        Err(e) => Err(Unparsable {
            message: format!("{e}: {}", String::from_utf8_lossy(line)),
            name: None,
        }),
    }
}

/// Parse a binary list whose template-digest column is `digest_algo` (SHA-1 for the
/// legacy file, the bank's algorithm for `binary_runtime_measurements_<alg>`). A
/// structural error stops the list: binary records cannot be resynchronised.
pub fn parse_binary(data: &[u8], digest_algo: HashAlgo) -> Result<Vec<ListItem<'static>>> {
    let endian = if data.len() >= 4 {
        Endian::detect([data[0], data[1], data[2], data[3]])
    } else {
        Endian::native()
    };
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

/// Only the entries that could be read (for policy generation).
pub fn readable(items: Vec<ListItem<'static>>) -> Vec<Entry<'static>> {
    items.into_iter().filter_map(|i| i.ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(ascii_items_all(text.as_bytes(), 0), lazy);
        assert_eq!(ascii_items_all(text.as_bytes(), 3)[..], lazy[3..]);
    }
}
