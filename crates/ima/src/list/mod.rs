//! IMA measurement lists: records, templates and their fields, the binary and ASCII
//! encodings of the kernel's `*_runtime_measurements*` files, and PCR replay.
//!
//! A [`Record`] is one entry of the list: the PCR it was extended into, its template
//! digest as written in the list, the template name and the typed [`Field`]s of the
//! template data. [`binary`] and [`ascii`] read and write the kernel's two encodings;
//! [`replay`] recomputes PCR banks from a list, in constant memory and resumably.

pub mod ascii;
pub mod binary;
pub mod replay;
pub mod sigcheck;
pub mod template;

pub use ascii::AsciiReader;
pub use binary::{BinaryReader, BinaryWriter, RawRecord, TailPolicy};
pub use replay::{Bank, ExtendMode, PcrBanks, RecordMark, Replay, ReplayStep, NUM_PCRS};
pub use sigcheck::{check_signatures, SigCheck};
pub use template::{DigestAlgo, Field, FieldId, Template};

use crate::{Error, HashAlgo, Hasher, Result};

/// The byte order of the numbers in a binary list: the CPU's own unless the kernel was
/// booted with `ima_canonical_fmt`, which makes them little-endian everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Little-endian (x86, arm64, and every kernel booted with `ima_canonical_fmt`).
    Little,
    /// Big-endian (s390x, ppc64 big-endian without `ima_canonical_fmt`).
    Big,
}

impl Endian {
    /// The byte order of the machine this code runs on.
    pub const fn native() -> Endian {
        if cfg!(target_endian = "big") {
            Endian::Big
        } else {
            Endian::Little
        }
    }

    /// Guess the byte order of a list from its first four bytes (the first record's PCR
    /// index, which is below 24 in either order on a valid list).
    pub fn detect(first_pcr: [u8; 4]) -> Endian {
        if u32::from_le_bytes(first_pcr) < NUM_PCRS as u32 {
            Endian::Little
        } else if u32::from_be_bytes(first_pcr) < NUM_PCRS as u32 {
            Endian::Big
        } else {
            Endian::native()
        }
    }

    /// Read a u32.
    pub fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    /// Write a u32.
    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    /// Read a u16.
    pub fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    /// Write a u16.
    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// Length of the `n` field of the `ima` template as hashed: the name, zero-padded.
pub const IMA_NAME_HASH_LEN: usize = 256;
/// The longest name an `ima` template record can carry.
pub const IMA_NAME_MAX: usize = IMA_NAME_HASH_LEN - 1;
/// The name of the legacy template with its special layout.
pub const IMA_TEMPLATE: &str = "ima";

/// One entry of a measurement list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The PCR the entry was extended into (10 unless a `pcr=` rule said otherwise).
    pub pcr: u32,
    /// The algorithm of [`Record::digest`]: SHA-1 in the legacy list, the bank's
    /// algorithm in the per-bank files (`binary_runtime_measurements_<alg>`).
    pub digest_algo: HashAlgo,
    /// The template digest as written in the list; all zero for a violation.
    pub digest: Vec<u8>,
    /// The template name: a built-in name or a custom format string.
    pub template_name: String,
    /// The template data, one typed value per field.
    pub fields: Vec<Field>,
}

impl Record {
    /// A record of template `template_name` with `fields`, its template digest computed
    /// with `digest_algo` (SHA-1 for the legacy list, a bank's algorithm for the
    /// per-bank lists) over the data in byte order `endian`.
    pub fn new(
        pcr: u32,
        template_name: &str,
        fields: Vec<Field>,
        digest_algo: HashAlgo,
        endian: Endian,
    ) -> Result<Record> {
        let mut r = Record {
            pcr,
            digest_algo,
            digest: Vec::new(),
            template_name: template_name.to_owned(),
            fields,
        };
        r.digest = r.template_digest(digest_algo, endian)?;
        Ok(r)
    }

    /// Decode a record from its binary parts: the template data as stored after the
    /// template name (see [`RawRecord::data`]).
    pub fn decode(
        pcr: u32,
        digest_algo: HashAlgo,
        digest: &[u8],
        template_name: &str,
        data: &[u8],
        endian: Endian,
    ) -> Result<Record> {
        let fields =
            binary::decode_fields(template_name, data, endian).map_err(|msg| Error::ListField {
                field: "template data",
                msg,
            })?;
        Ok(Record {
            pcr,
            digest_algo,
            digest: digest.to_vec(),
            template_name: template_name.to_owned(),
            fields,
        })
    }

    /// An `ima-ng` record of a file (or buffer) digest and its name, as the kernel
    /// writes it (spaces in the name become `_`).
    pub fn ima_ng(
        pcr: u32,
        file_algo: HashAlgo,
        file_digest: &[u8],
        name: &[u8],
    ) -> Result<Record> {
        let fields = vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(file_algo),
                digest: file_digest.to_vec(),
            },
            Field::NameNg(kernel_name(name)),
        ];
        Record::new(pcr, "ima-ng", fields, HashAlgo::Sha1, Endian::native())
    }

    /// The same record as a violation: all-zero template digest and file digest.
    pub fn into_violation(mut self) -> Record {
        self.digest.fill(0);
        for f in &mut self.fields {
            match f {
                Field::D(d)
                | Field::DigestNg { digest: d, .. }
                | Field::DigestNgV2 { digest: d, .. } => d.fill(0),
                _ => {}
            }
        }
        self
    }

    /// Whether this is a violation record (its template digest is all zero).
    pub fn is_violation(&self) -> bool {
        is_zero(&self.digest)
    }

    /// Whether the record uses the legacy `ima` template layout.
    pub fn is_ima_template(&self) -> bool {
        self.template_name == IMA_TEMPLATE
    }

    /// The template this record's name stands for.
    pub fn template(&self) -> Template {
        Template::from_name(&self.template_name)
    }

    /// The template data as stored in a binary record after the template name (for
    /// `ima`: the 20-byte digest, a u32 name length and the name; otherwise each field
    /// as u32 length + bytes, without the outer length word).
    pub fn encode_data(&self, endian: Endian, out: &mut Vec<u8>) {
        if self.is_ima_template() {
            for f in &self.fields {
                let bytes = f.encode(endian);
                if matches!(f, Field::N(_)) {
                    out.extend_from_slice(&endian.u32_bytes(bytes.len() as u32));
                }
                out.extend_from_slice(&bytes);
            }
        } else {
            for f in &self.fields {
                let bytes = f.encode(endian);
                out.extend_from_slice(&endian.u32_bytes(bytes.len() as u32));
                out.extend_from_slice(&bytes);
            }
        }
    }

    /// The template digest of this record's data with `algo`, as the kernel computes it
    /// for a PCR bank of that algorithm (§1.6): H(field lengths and data) or, for `ima`,
    /// H(digest ‖ name zero-padded to 256 bytes).
    pub fn template_digest(&self, algo: HashAlgo, endian: Endian) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.encode_data(endian, &mut data);
        let mut out = vec![0; algo.digest_len()];
        hash_template_data(algo, &self.template_name, &data, endian, &mut out)?;
        Ok(out)
    }

    /// Whether the template-digest column is the digest of the record's data, hashed
    /// with the column's algorithm.
    pub fn digest_matches(&self, endian: Endian) -> bool {
        self.template_digest(self.digest_algo, endian)
            .is_ok_and(|d| d == self.digest)
    }

    /// The file digest of the record: the `d-ng`/`d-ngv2` field's algorithm and bytes,
    /// or the `d` field's (SHA-1 or MD5 by length).
    pub fn file_digest(&self) -> Option<(Option<HashAlgo>, &[u8])> {
        self.fields.iter().find_map(|f| match f {
            Field::D(d) => Some((HashAlgo::from_legacy_len(d.len()), d.as_slice())),
            Field::DigestNg { algo, digest } | Field::DigestNgV2 { algo, digest, .. } => {
                Some((algo.hash_algo(digest.len()), digest.as_slice()))
            }
            _ => None,
        })
    }

    /// The name of the measured object (`n-ng` or `n` field), without the terminating NUL.
    pub fn name(&self) -> Option<&[u8]> {
        self.fields.iter().find_map(|f| match f {
            Field::NameNg(n) => Some(n.as_slice()),
            Field::N(n) => Some(n.strip_suffix(&[0]).unwrap_or(n)),
            _ => None,
        })
    }

    /// The `sig` field, if present and non-empty.
    pub fn signature(&self) -> Option<&[u8]> {
        self.fields.iter().find_map(|f| match f {
            Field::Sig(s) if !s.is_empty() => Some(s.as_slice()),
            _ => None,
        })
    }
}

/// Hash template data exactly as the kernel does for one PCR bank: `data` is the bytes
/// of a binary record after the template name (without the outer data length; for
/// `ima` the digest, name length word and name) and `out` is `algo`'s digest length.
pub fn hash_template_data(
    algo: HashAlgo,
    template_name: &str,
    data: &[u8],
    endian: Endian,
    out: &mut [u8],
) -> Result<()> {
    let mut h = Hasher::new(algo)?;
    if template_name == IMA_TEMPLATE {
        let (d, name) = split_ima_data(data, endian).ok_or_else(|| Error::ListField {
            field: "ima template data",
            msg: format!(
                "{} bytes do not hold a 20-byte digest and a name",
                data.len()
            ),
        })?;
        h.update(d);
        h.update(name);
        h.update(&[0u8; IMA_NAME_HASH_LEN][..IMA_NAME_HASH_LEN - name.len()]);
    } else {
        h.update(data);
    }
    h.finalize_into(out);
    Ok(())
}

/// Split the data of an `ima` record into its digest and name.
pub(crate) fn split_ima_data(data: &[u8], endian: Endian) -> Option<(&[u8], &[u8])> {
    if data.len() < 24 {
        return None;
    }
    let (d, rest) = data.split_at(20);
    let len = endian.u32(rest[..4].try_into().ok()?) as usize;
    let name = &rest[4..];
    (name.len() == len && len <= IMA_NAME_MAX).then_some((d, name))
}

/// A name as the kernel stores it in `n`/`n-ng` fields: every space replaced by `_`
/// (the ASCII list separates fields with spaces).
pub fn kernel_name(name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&b| if b == b' ' { b'_' } else { b })
        .collect()
}

/// Whether every byte is zero (a violation's template digest).
pub fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}
