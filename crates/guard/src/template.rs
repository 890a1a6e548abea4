//! The templates the guard writes (`ima-ng`, `ima-sig`, `ima-ngv2`, `ima-sigv2`,
//! `ima-buf`) and the measurement-list records of its events, built with
//! `vigil_ima::list` (little-endian, as on x86 and arm64 and as `ima_canonical_fmt`
//! writes everywhere).

use vigil_ima::list::{kernel_name, DigestAlgo, Endian, Field, Record};
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
        }
    }

    /// Parse a template name.
    pub fn from_name(name: &str) -> Result<Template> {
        Ok(match name {
            "ima-ng" => Template::ImaNg,
            "ima-sig" => Template::ImaSig,
            "ima-ngv2" => Template::ImaNgV2,
            "ima-sigv2" => Template::ImaSigV2,
            "ima-buf" => Template::ImaBuf,
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
        Template::ImaNg | Template::ImaNgV2 => {}
    }
    let r = Record::new(pcr, t.name(), fields, HashAlgo::Sha1, Endian::Little)?;
    Ok(if ev.digest.is_none() {
        r.into_violation()
    } else {
        r
    })
}
