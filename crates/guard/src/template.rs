//! The templates the guard writes (`ima-ng`, `ima-sig`, `ima-ngv2`, `ima-sigv2`,
//! `ima-buf`, `evm-sig`) and the measurement-list records of its events, built with
//! `vigil_ima::list` (little-endian, as on x86 and arm64 and as `ima_canonical_fmt`
//! writes everywhere).

use vigil_ima::list::{kernel_name, DigestAlgo, Endian, Field, FieldId, Record};
use vigil_ima::HashAlgo;

use crate::{Error, Result};

/// The templates the measurement log can be written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// `d-ng|n-ng`
    ImaNg,
    /// `d-ng|n-ng|sig`
    ImaSig,
    /// `d-ngv2|n-ng`
    ImaNgV2,
    /// `d-ngv2|n-ng|sig`
    ImaSigV2,
    /// `d-ng|n-ng|buf`
    ImaBuf,
    /// `d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode`
    EvmSig,
}

impl Template {
    /// The name written in the log.
    pub const fn name(self) -> &'static str {
        match self {
            Template::ImaNg => "ima-ng",
            Template::ImaSig => "ima-sig",
            Template::ImaNgV2 => "ima-ngv2",
            Template::ImaSigV2 => "ima-sigv2",
            Template::ImaBuf => "ima-buf",
            Template::EvmSig => "evm-sig",
        }
    }

    /// Whether records have a `sig` field.
    pub const fn has_sig(self) -> bool {
        matches!(self, Template::ImaSig | Template::ImaSigV2)
    }

    /// Parse a template name.
    pub fn from_name(name: &str) -> Result<Template> {
        Ok(match name {
            "ima-ng" => Template::ImaNg,
            "ima-sig" => Template::ImaSig,
            "ima-ngv2" => Template::ImaNgV2,
            "ima-sigv2" => Template::ImaSigV2,
            "ima-buf" => Template::ImaBuf,
            "evm-sig" => Template::EvmSig,
            _ => return Err(Error::Config(format!("unsupported template {name:?}"))),
        })
    }
}

/// What a digest in a `d-ngv2` field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestType {
    /// The hash of the file's content.
    Ima,
    /// The fs-verity file digest.
    Verity,
}

/// One event to encode.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Algorithm of `digest` (for violations: the algorithm whose size of zeros is written).
    pub algo: HashAlgo,
    /// The digest; `None` for a violation (zeros are written).
    pub digest: Option<&'a [u8]>,
    /// What the digest is (only shown by v2 templates).
    pub digest_type: DigestType,
    /// The file name or event name, as the kernel logs it (any bytes but NUL).
    pub name: &'a [u8],
    /// The `security.ima` signature for `sig` fields (empty if none).
    pub sig: &'a [u8],
    /// The buffer for `buf` fields.
    pub buf: &'a [u8],
    /// The file's EVM view for the `evm-sig` fields (empty fields without one).
    pub inode: Option<&'a InodeFields>,
}

/// The fields `evm-sig` adds after `d-ng|n-ng`.
const EVM_SIG_FIELDS: [FieldId; 7] = [
    FieldId::EvmSig,
    FieldId::XattrNames,
    FieldId::XattrLengths,
    FieldId::XattrValues,
    FieldId::IUid,
    FieldId::IGid,
    FieldId::IMode,
];

/// What the `evm-sig` template records of a file: its EVM portable signature, the
/// EVM-protected xattrs it has, and its owner, group and mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InodeFields {
    /// The whole EVM value if it is a portable signature, else empty.
    pub evm_sig: Vec<u8>,
    /// The protected xattrs present, in EVM's order: (name, value).
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u16,
}

impl InodeFields {
    /// The `evmsig` … `imode` fields, as the kernel's `evm_read_protected_xattrs`
    /// lays them out: names joined by `|` and NUL-terminated, one little-endian u32
    /// length per value, the values back to back.
    fn fields(&self) -> Vec<Field> {
        let mut names = self
            .xattrs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("|")
            .into_bytes();
        if !names.is_empty() {
            names.push(0);
        }
        let lengths = self
            .xattrs
            .iter()
            .flat_map(|(_, v)| (v.len() as u32).to_le_bytes())
            .collect();
        let values = self.xattrs.iter().flat_map(|(_, v)| v.clone()).collect();
        vec![
            Field::EvmSig(self.evm_sig.clone()),
            Field::XattrNames(names),
            Field::XattrLengths(lengths),
            Field::XattrValues(values),
            Field::IUid(self.uid),
            Field::IGid(self.gid),
            Field::IMode(self.mode),
        ]
    }
}

/// The record of `ev` for PCR `pcr` (SHA-1 template digest, little-endian), a
/// violation record (zero digests) when `ev.digest` is `None`.
pub fn record(t: Template, ev: &Event<'_>, pcr: u32) -> Result<Record> {
    let zeros = vec![0u8; ev.algo.digest_len()];
    let digest = ev.digest.unwrap_or(&zeros).to_vec();
    let algo = DigestAlgo::Known(ev.algo);
    let d = match t {
        Template::ImaNgV2 | Template::ImaSigV2 => Field::DigestNgV2 {
            kind: match ev.digest_type {
                DigestType::Ima => "ima".into(),
                DigestType::Verity => "verity".into(),
            },
            algo,
            digest,
        },
        _ => Field::DigestNg { algo, digest },
    };
    let mut fields = vec![d, Field::NameNg(kernel_name(ev.name))];
    match t {
        Template::ImaSig | Template::ImaSigV2 => fields.push(Field::Sig(ev.sig.to_vec())),
        Template::ImaBuf => fields.push(Field::Buf(ev.buf.to_vec())),
        Template::EvmSig => match ev.inode {
            Some(inode) => fields.extend(inode.fields()),
            // No file (a buffer): every field is empty, as the kernel stores them.
            None => fields.extend(EVM_SIG_FIELDS.map(|id| Field::Raw {
                id,
                data: Vec::new(),
            })),
        },
        Template::ImaNg | Template::ImaNgV2 => {}
    }
    let r = Record::new(pcr, t.name(), fields, HashAlgo::Sha1, Endian::Little)?;
    Ok(if ev.digest.is_none() {
        r.into_violation()
    } else {
        r
    })
}
