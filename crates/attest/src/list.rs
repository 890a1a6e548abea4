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

/// An owned entry (`Entry<'static>`) or why it could not be read.
pub type ListItem = std::result::Result<Entry<'static>, Unparsable>;

/// Turn a parsed record into an engine entry.
pub fn entry_from_record(r: Record, endian: Endian) -> ListItem {
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
pub fn parse_ascii(text: &[u8]) -> Vec<ListItem> {
    ascii_items(text, 0).collect()
}

fn ascii_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && *l != b"\r")
}

/// Number of entries (non-blank lines) of an ASCII list.
pub fn ascii_len(text: &[u8]) -> usize {
    ascii_lines(text).count()
}

/// Like [`parse_ascii`], but lazily: lines are parsed in parallel a chunk at a time, so
/// a caller that validates as it goes keeps only one chunk of entries in memory. The
/// first `skip` entries are neither parsed nor returned.
pub fn ascii_items(text: &[u8], skip: usize) -> impl Iterator<Item = ListItem> + '_ {
    const CHUNK: usize = 4096;
    let lines: Vec<&[u8]> = ascii_lines(text).skip(skip).collect();
    let chunks: Vec<Vec<&[u8]>> = lines.chunks(CHUNK).map(<[&[u8]]>::to_vec).collect();
    chunks.into_iter().flat_map(|chunk| {
        chunk
            .par_iter()
            .with_min_len(256)
            .map(|line| parse_ascii_line(line))
            .collect::<Vec<_>>()
    })
}

fn parse_ascii_line(line: &[u8]) -> ListItem {
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
pub fn parse_binary(data: &[u8], digest_algo: HashAlgo) -> Result<Vec<ListItem>> {
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
pub fn parse(data: &[u8], binary_digest_algo: HashAlgo) -> Result<Vec<ListItem>> {
    match ListFormat::detect(data) {
        ListFormat::Ascii => Ok(parse_ascii(data)),
        ListFormat::Binary => parse_binary(data, binary_digest_algo),
    }
}

/// Only the entries that could be read (for policy generation).
pub fn readable(items: Vec<ListItem>) -> Vec<Entry<'static>> {
    items.into_iter().filter_map(|i| i.ok()).collect()
}
