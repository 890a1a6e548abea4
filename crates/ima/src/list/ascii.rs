//! The ASCII measurement list (`ascii_runtime_measurements[_<alg>]`, §1.3): writing a
//! record exactly as the kernel prints it, and reading lines back into records by
//! re-synthesising the binary template data (as Keylime does).

use std::io::BufRead;

use super::{binary::TailPolicy, template::FieldId, Endian, Field, Record, Template};
use crate::{Error, HashAlgo, Result};

/// Append the kernel's ASCII line for `r` (with the trailing newline) to `out`.
pub fn format_record(r: &Record, endian: Endian, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{:2} ", r.pcr);
    out.extend_from_slice(hex::encode(&r.digest).as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.template_name.as_bytes());
    for f in &r.fields {
        out.push(b' ');
        f.render_ascii(endian, out);
    }
    out.push(b'\n');
}

/// The template digest algorithm of an ASCII list when not told: by digest length
/// (20 sha1, 32 sha256, 48 sha384, 64 sha512).
pub fn infer_digest_algo(len: usize) -> Option<HashAlgo> {
    match len {
        20 => Some(HashAlgo::Sha1),
        32 => Some(HashAlgo::Sha256),
        48 => Some(HashAlgo::Sha384),
        64 => Some(HashAlgo::Sha512),
        _ => None,
    }
}

/// Parse one ASCII line (without its newline) into a record.
///
/// `digest_algo` is the algorithm of the template-digest column (`None`: infer it from
/// its length). The template data is rebuilt from the rendered fields, so a record's
/// [`Record::template_digest`] can be checked against the column.
///
/// The kernel ends lines with `\n` alone, so a trailing `\r` may be the end of a file
/// name or, in a list whose line ends were converted to CRLF, one byte too many. It stays
/// part of the line when the record parses with it and either matches its template
/// digest or is a violation (whose digest is zero and cannot tell).
pub fn parse_line(line: &[u8], digest_algo: Option<HashAlgo>, endian: Endian) -> Result<Record> {
    let Some(stripped) = line.strip_suffix(b"\r") else {
        return parse_line_exact(line, digest_algo, endian);
    };
    match parse_line_exact(line, digest_algo, endian) {
        Ok(r) if r.is_violation() || r.digest_matches(endian) => Ok(r),
        _ => parse_line_exact(stripped, digest_algo, endian),
    }
}

/// [`parse_line`] with every byte of `line` taken as data, a trailing `\r` included.
pub fn parse_line_exact(
    line: &[u8],
    digest_algo: Option<HashAlgo>,
    endian: Endian,
) -> Result<Record> {
    let bad = |msg: String| Error::ListField {
        field: "ascii line",
        msg,
    };
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let mut parts = line[start..].splitn(4, |&b| b == b' ');
    let pcr = parts.next().unwrap_or_default();
    let pcr: u32 = std::str::from_utf8(pcr)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&p| (p as usize) < super::NUM_PCRS)
        .ok_or_else(|| {
            bad(format!(
                "PCR {:?} is not a number below 24",
                String::from_utf8_lossy(pcr)
            ))
        })?;
    let dhex = parts
        .next()
        .ok_or_else(|| bad("no template digest".into()))?;
    let digest = hex::decode(dhex).map_err(|_| {
        bad(format!(
            "template digest {:?} is not hex",
            String::from_utf8_lossy(dhex)
        ))
    })?;
    let digest_algo = match digest_algo {
        Some(a) if a.digest_len() == digest.len() => a,
        Some(a) => {
            return Err(bad(format!(
                "template digest has {} bytes, not {} as {a} needs",
                digest.len(),
                a.digest_len()
            )))
        }
        None => infer_digest_algo(digest.len()).ok_or_else(|| {
            bad(format!(
                "cannot tell the algorithm of a {}-byte template digest",
                digest.len()
            ))
        })?,
    };
    let name = parts.next().ok_or_else(|| bad("no template name".into()))?;
    let name = std::str::from_utf8(name)
        .map_err(|_| bad("template name is not UTF-8".into()))?
        .to_owned();
    let template = Template::from_name(&name);
    let ids = template.fields.ok_or_else(|| {
        bad(format!(
            "template {name:?} is unknown: its data cannot be rebuilt from ASCII"
        ))
    })?;
    let rest = parts.next().unwrap_or_default();
    let mut fields = Vec::with_capacity(ids.len());
    let mut toks = rest.splitn(ids.len(), |&b| b == b' ');
    for &id in &ids {
        let tok = toks.next().unwrap_or_default();
        fields.push(Field::parse_ascii(id, tok, endian)?);
    }
    if template.name == super::IMA_TEMPLATE {
        // The `ima` template's digest field is fixed at 20 bytes.
        if let Some(Field::D(d)) = fields.first() {
            if d.len() != 20 {
                return Err(bad(format!(
                    "ima template digest has {} bytes, not 20",
                    d.len()
                )));
            }
        }
        // Its `n` field is written as `strlen` bytes, without the NUL of other templates.
        if let Some(Field::N(n)) = fields.get_mut(1) {
            if n.last() == Some(&0) {
                n.pop();
            }
            if n.len() > super::IMA_NAME_MAX {
                return Err(bad(format!(
                    "ima template name exceeds {} bytes",
                    super::IMA_NAME_MAX
                )));
            }
        }
    }
    debug_assert!(ids
        .iter()
        .zip(&fields)
        .all(|(i, f)| *i == f.id() || f.id() == FieldId::Unknown));
    Ok(Record {
        pcr,
        digest_algo,
        digest,
        template_name: name,
        fields,
    })
}

/// Streaming reader of an ASCII list: one [`Record`] per line.
pub struct AsciiReader<R> {
    inner: R,
    digest_algo: Option<HashAlgo>,
    endian: Endian,
    tail: TailPolicy,
    line: Vec<u8>,
    line_no: u64,
    offset: u64,
    failed: bool,
}

impl<R: BufRead> AsciiReader<R> {
    /// A reader; `digest_algo` as in [`parse_line`].
    pub fn new(inner: R, digest_algo: Option<HashAlgo>) -> Self {
        AsciiReader {
            inner,
            digest_algo,
            endian: Endian::native(),
            tail: TailPolicy::Error,
            line: Vec::new(),
            line_no: 0,
            offset: 0,
            failed: false,
        }
    }

    /// The byte order used to rebuild binary template data (lengths, `iuid`…).
    pub fn endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// What a last line without newline means (default: a truncated list, an error).
    pub fn tail_policy(mut self, tail: TailPolicy) -> Self {
        self.tail = tail;
        self
    }

    /// Lines read so far.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Byte offset just past the last whole line read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if self.failed {
            return Ok(None);
        }
        loop {
            self.line.clear();
            let n = std::io::Read::take(&mut self.inner, 1 << 24)
                .read_until(b'\n', &mut self.line)
                .map_err(|source| Error::ListIo {
                    offset: self.offset,
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let complete = self.line.last() == Some(&b'\n');
            if !complete && self.tail == TailPolicy::Stop {
                return Ok(None);
            }
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let blank = text.iter().all(|b| b.is_ascii_whitespace());
            if !complete && !blank {
                // The kernel ends every line with a newline: the list was cut.
                self.failed = true;
                return Err(Error::ListAscii {
                    line: self.line_no + 1,
                    offset: self.offset,
                    msg: if n == 1 << 24 {
                        "line longer than 16 MiB".into()
                    } else {
                        format!("truncated: the last line ({n} bytes) has no newline")
                    },
                });
            }
            let offset = self.offset;
            self.offset += n as u64;
            self.line_no += 1;
            if blank {
                continue;
            }
            return match parse_line(text, self.digest_algo, self.endian) {
                Ok(r) => {
                    // Later lines of the same list have the same digest algorithm.
                    self.digest_algo.get_or_insert(r.digest_algo);
                    Ok(Some(r))
                }
                Err(e) => {
                    self.failed = true;
                    Err(Error::ListAscii {
                        line: self.line_no,
                        offset,
                        msg: e.to_string(),
                    })
                }
            };
        }
    }
}

impl<R: BufRead> Iterator for AsciiReader<R> {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().transpose()
    }
}
