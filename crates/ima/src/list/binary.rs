//! The binary measurement list (`binary_runtime_measurements[_<alg>]`, §1.2): a
//! streaming reader that reuses one buffer (constant memory for lists of any size) and
//! stops cleanly at the last whole record of a growing file, and a writer.

use std::io::{self, Read, Write};

use super::{split_ima_data, template::FieldId, Endian, Field, Record, Template, IMA_NAME_MAX};
use crate::{Error, HashAlgo, Result};

/// The longest template name accepted (custom format strings of 15 fields fit easily).
pub const MAX_TEMPLATE_NAME: usize = 255;
/// The largest template data accepted in one record. Buffers only grow as bytes
/// actually arrive, so a lying length field costs no memory; this bound only turns an
/// absurd claim into an early error.
pub const MAX_TEMPLATE_DATA: u32 = 64 << 20;

/// Reads up to this size go straight into the record buffer.
const SMALL_READ: usize = 64 << 10;

/// What to do when the input ends inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailPolicy {
    /// A partial record is an error (a file that should be complete).
    Error,
    /// Stop before it, as if the list ended at the last whole record (a list the kernel
    /// is still appending to). [`BinaryReader::offset`] then points at its start.
    Stop,
}

/// One record as stored, borrowing the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// 0-based record number in the input.
    pub index: u64,
    /// Byte offset of the record in the input.
    pub offset: u64,
    /// PCR index.
    pub pcr: u32,
    /// Template digest as stored.
    pub digest: &'a [u8],
    /// Template name.
    pub template_name: &'a str,
    /// Template data after the name (without the outer length word): exactly the bytes
    /// that are hashed for non-`ima` templates.
    pub data: &'a [u8],
}

impl RawRecord<'_> {
    /// Decode the fields of the template data.
    pub fn to_record(&self, digest_algo: HashAlgo, endian: Endian) -> Result<Record> {
        let fields = decode_fields(self.template_name, self.data, endian).map_err(|msg| {
            Error::ListRecord {
                record: self.index,
                offset: self.offset,
                msg,
            }
        })?;
        Ok(Record {
            pcr: self.pcr,
            digest_algo,
            digest: self.digest.to_vec(),
            template_name: self.template_name.to_owned(),
            fields,
        })
    }

    /// Hash the template data for a PCR bank of `algo` into `out` (§1.6).
    pub fn template_digest_into(
        &self,
        algo: HashAlgo,
        endian: Endian,
        out: &mut [u8],
    ) -> Result<()> {
        super::hash_template_data(algo, self.template_name, self.data, endian, out)
    }

    /// Whether this is a violation (all-zero template digest).
    pub fn is_violation(&self) -> bool {
        super::is_zero(self.digest)
    }
}

/// Split template data into typed fields according to the template name.
pub(crate) fn decode_fields(name: &str, data: &[u8], endian: Endian) -> Result<Vec<Field>, String> {
    let template = Template::from_name(name);
    if template.is_ima() {
        let (d, n) = split_ima_data(data, endian).ok_or_else(|| {
            format!("template data of {} bytes is not a 20-byte digest and a name of at most {IMA_NAME_MAX} bytes", data.len())
        })?;
        return Ok(vec![Field::D(d.to_vec()), Field::N(n.to_vec())]);
    }
    let mut fields = Vec::new();
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let id = match &template.fields {
            Some(ids) => *ids.get(i).ok_or_else(|| {
                format!(
                    "template {name:?} has {} fields but the data holds more ({} bytes left)",
                    ids.len(),
                    rest.len()
                )
            })?,
            None => FieldId::Unknown,
        };
        if rest.len() < 4 {
            return Err(format!(
                "field {i} ({id}): {} bytes left, too short for a length",
                rest.len()
            ));
        }
        let len = endian.u32(rest[..4].try_into().expect("4 bytes")) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(format!(
                "field {i} ({id}) claims {len} bytes but only {} remain",
                rest.len()
            ));
        }
        fields.push(Field::decode(id, &rest[..len], endian));
        rest = &rest[len..];
        i += 1;
    }
    if let Some(ids) = &template.fields {
        if i != ids.len() {
            return Err(format!(
                "template {name:?} has {} fields but the data holds {i}",
                ids.len()
            ));
        }
    }
    Ok(fields)
}

/// Streaming reader of a binary measurement list.
pub struct BinaryReader<R> {
    inner: R,
    endian: Endian,
    digest_algo: HashAlgo,
    tail: TailPolicy,
    offset: u64,
    index: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl<R: Read> BinaryReader<R> {
    /// A reader of a list whose template digests are `digest_algo` (SHA-1 for the legacy
    /// file, the bank's algorithm for `binary_runtime_measurements_<alg>`).
    pub fn new(inner: R, digest_algo: HashAlgo, endian: Endian) -> Self {
        BinaryReader {
            inner,
            endian,
            digest_algo,
            tail: TailPolicy::Error,
            offset: 0,
            index: 0,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// Set what a partial last record means (default [`TailPolicy::Error`]).
    pub fn tail_policy(mut self, tail: TailPolicy) -> Self {
        self.tail = tail;
        self
    }

    /// Start numbering at `index`/`offset` (when resuming in the middle of a list).
    pub fn starting_at(mut self, index: u64, offset: u64) -> Self {
        self.index = index;
        self.offset = offset;
        self
    }

    /// Byte offset just past the last whole record read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of the next record (records read so far, plus the starting index).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The template digest algorithm.
    pub fn digest_algo(&self) -> HashAlgo {
        self.digest_algo
    }

    /// The byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Read `n` more bytes onto the buffer; Ok(false) at a clean end of input before any
    /// byte of them arrived when `at_start`.
    fn fill(&mut self, n: usize, what: &'static str, at_start: bool) -> Result<bool> {
        let start = self.buf.len();
        let got = if n <= SMALL_READ {
            // Small pieces: read straight into the buffer (bounded allocation).
            self.buf.resize(start + n, 0);
            let mut got = 0;
            while got < n {
                match self.inner.read(&mut self.buf[start + got..start + n]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(Error::ListIo {
                            offset: self.offset + (start + got) as u64,
                            source,
                        })
                    }
                }
            }
            self.buf.truncate(start + got);
            got
        } else {
            // Large claims: let the buffer grow only as bytes actually arrive.
            (&mut self.inner)
                .take(n as u64)
                .read_to_end(&mut self.buf)
                .map_err(|source| Error::ListIo {
                    offset: self.offset + start as u64,
                    source,
                })?
        };
        if got == n {
            return Ok(true);
        }
        if got == 0 && at_start && start == 0 {
            return Ok(false);
        }
        if self.tail == TailPolicy::Stop {
            return Ok(false);
        }
        Err(Error::ListRecord {
            record: self.index,
            offset: self.offset,
            msg: format!(
                "truncated: {what} needs {n} bytes at offset {} but the input ends after {got}",
                self.offset + start as u64
            ),
        })
    }

    fn u32_at(&self, pos: usize) -> u32 {
        self.endian
            .u32(self.buf[pos..pos + 4].try_into().expect("4 bytes"))
    }

    fn bad(&self, msg: String) -> Error {
        Error::ListRecord {
            record: self.index,
            offset: self.offset,
            msg,
        }
    }

    /// The next record, borrowing the reader's buffer; `None` at the end of the list.
    pub fn next_raw(&mut self) -> Result<Option<RawRecord<'_>>> {
        if self.failed {
            return Ok(None);
        }
        match self.read_one() {
            Ok(Some((dlen, name_end, data_start))) => {
                let offset = self.offset;
                let index = self.index;
                self.offset += self.buf.len() as u64;
                self.index += 1;
                let name = std::str::from_utf8(&self.buf[4 + dlen + 4..name_end]).expect("checked");
                Ok(Some(RawRecord {
                    index,
                    offset,
                    pcr: self.u32_at(0),
                    digest: &self.buf[4..4 + dlen],
                    template_name: name,
                    data: &self.buf[data_start..],
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Read one record into `buf`; returns (digest length, end of name, start of data).
    fn read_one(&mut self) -> Result<Option<(usize, usize, usize)>> {
        self.buf.clear();
        let dlen = self.digest_algo.digest_len();
        if !self.fill(4 + dlen + 4, "record header", true)? {
            return Ok(None);
        }
        let pcr = self.u32_at(0);
        if pcr as usize >= super::NUM_PCRS {
            return Err(self.bad(format!("PCR index {pcr} is not below {}", super::NUM_PCRS)));
        }
        let name_len = self.u32_at(4 + dlen);
        if name_len == 0 || name_len as usize > MAX_TEMPLATE_NAME {
            return Err(self.bad(format!(
                "template name length {name_len} is not in 1..={MAX_TEMPLATE_NAME}"
            )));
        }
        if !self.fill(name_len as usize, "template name", false)? {
            return Ok(None);
        }
        let name_end = self.buf.len();
        let name = std::str::from_utf8(&self.buf[4 + dlen + 4..name_end])
            .map_err(|_| self.bad("template name is not UTF-8".into()))?;
        let is_ima = name == super::IMA_TEMPLATE;
        let data_start;
        if is_ima {
            data_start = name_end;
            if !self.fill(24, "ima template digest and name length", false)? {
                return Ok(None);
            }
            let nlen = self.u32_at(data_start + 20);
            if nlen as usize > IMA_NAME_MAX {
                return Err(self.bad(format!(
                    "ima template name length {nlen} exceeds {IMA_NAME_MAX}"
                )));
            }
            if !self.fill(nlen as usize, "ima template name", false)? {
                return Ok(None);
            }
        } else {
            if !self.fill(4, "template data length", false)? {
                return Ok(None);
            }
            let dl = self.u32_at(name_end);
            if dl > MAX_TEMPLATE_DATA {
                return Err(self.bad(format!(
                    "template data length {dl} exceeds the limit of {MAX_TEMPLATE_DATA}"
                )));
            }
            data_start = name_end + 4;
            if !self.fill(dl as usize, "template data", false)? {
                return Ok(None);
            }
        }
        Ok(Some((dlen, name_end, data_start)))
    }
}

impl<R: Read> Iterator for BinaryReader<R> {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Result<Record>> {
        let (algo, endian) = (self.digest_algo, self.endian);
        match self.next_raw() {
            Ok(Some(raw)) => Some(raw.to_record(algo, endian)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Writer of binary records.
pub struct BinaryWriter<W> {
    inner: W,
    endian: Endian,
    buf: Vec<u8>,
}

impl<W: Write> BinaryWriter<W> {
    /// A writer in byte order `endian`.
    pub fn new(inner: W, endian: Endian) -> Self {
        BinaryWriter {
            inner,
            endian,
            buf: Vec::new(),
        }
    }

    /// Append one record. Its digest is written as it is (its length decides whether
    /// this is a legacy or a per-bank list).
    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        self.buf.clear();
        encode_record(r, self.endian, &mut self.buf);
        self.inner.write_all(&self.buf)
    }

    /// Flush and return the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Append the binary encoding of `r` to `out`.
pub fn encode_record(r: &Record, endian: Endian, out: &mut Vec<u8>) {
    out.extend_from_slice(&endian.u32_bytes(r.pcr));
    out.extend_from_slice(&r.digest);
    out.extend_from_slice(&endian.u32_bytes(r.template_name.len() as u32));
    out.extend_from_slice(r.template_name.as_bytes());
    if r.is_ima_template() {
        r.encode_data(endian, out);
    } else {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        r.encode_data(endian, out);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&endian.u32_bytes(len));
    }
}

/// Read a whole binary list from a byte slice (convenience for small lists and tests).
pub fn parse_all(data: &[u8], digest_algo: HashAlgo, endian: Endian) -> Result<Vec<Record>> {
    BinaryReader::new(data, digest_algo, endian).collect()
}
