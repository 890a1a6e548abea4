//! Template data of measurement-list records (`ima-ng`, `ima-sig`, `ima-ngv2`,
//! `ima-sigv2`, `ima-buf`) and the binary record framing, little-endian as on x86 and
//! arm64 (and as `ima_canonical_fmt` writes everywhere).

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

    fn fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            Template::ImaNg => &[DNg, NNg],
            Template::ImaSig => &[DNg, NNg, Sig],
            Template::ImaNgV2 => &[DNgV2, NNg],
            Template::ImaSigV2 => &[DNgV2, NNg, Sig],
            Template::ImaBuf => &[DNg, NNg, Buf],
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    DNg,
    DNgV2,
    NNg,
    Sig,
    Buf,
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
    /// The file name or event name.
    pub name: &'a str,
    /// The `security.ima` signature for `sig` fields (empty if none).
    pub sig: &'a [u8],
    /// The buffer for `buf` fields.
    pub buf: &'a [u8],
}

fn push_field(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// The template data (field lengths included, as hashed into the template digest).
pub fn template_data(t: Template, ev: &Event<'_>) -> Vec<u8> {
    let zeros = vec![0u8; ev.algo.digest_len()];
    let digest = ev.digest.unwrap_or(&zeros);
    let mut out = Vec::new();
    for f in t.fields() {
        let mut v = Vec::new();
        match f {
            Field::DNg => {
                v.extend_from_slice(ev.algo.name().as_bytes());
                v.extend_from_slice(b":\0");
                v.extend_from_slice(digest);
            }
            Field::DNgV2 => {
                v.extend_from_slice(match ev.digest_type {
                    DigestType::Ima => b"ima:",
                    DigestType::Verity => b"verity:",
                });
                v.extend_from_slice(ev.algo.name().as_bytes());
                v.extend_from_slice(b":\0");
                v.extend_from_slice(digest);
            }
            Field::NNg => {
                v.extend(ev.name.bytes().map(|b| if b == b' ' { b'_' } else { b }));
                v.push(0);
            }
            Field::Sig => v.extend_from_slice(ev.sig),
            Field::Buf => v.extend_from_slice(ev.buf),
        }
        push_field(&mut out, &v);
    }
    out
}

/// One binary record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// PCR index.
    pub pcr: u32,
    /// Template digest as stored (all zero = violation).
    pub digest: Vec<u8>,
    /// Template name.
    pub template: String,
    /// Template data.
    pub data: Vec<u8>,
}

impl Record {
    /// Whether this is a violation record.
    pub fn is_violation(&self) -> bool {
        self.digest.iter().all(|&b| b == 0)
    }

    /// Append the binary encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pcr.to_le_bytes());
        out.extend_from_slice(&self.digest);
        push_field(out, self.template.as_bytes());
        push_field(out, &self.data);
    }

    /// The ASCII line (without the newline) as securityfs prints it.
    pub fn ascii(&self) -> String {
        let mut s = format!(
            "{:2} {} {}",
            self.pcr,
            hex::encode(&self.digest),
            self.template
        );
        let mut p = &self.data[..];
        let kinds: &[Field] = Template::from_name(&self.template)
            .map(|t| t.fields())
            .unwrap_or(&[]);
        let mut i = 0;
        while p.len() >= 4 {
            let n = u32::from_le_bytes(p[..4].try_into().expect("4 bytes")) as usize;
            let Some(v) = p.get(4..4 + n) else { break };
            s.push(' ');
            match kinds.get(i) {
                Some(Field::DNg) | Some(Field::DNgV2) => {
                    if let Some(z) = v.windows(2).position(|w| w == b":\0") {
                        s.push_str(&String::from_utf8_lossy(&v[..z + 1]));
                        s.push_str(&hex::encode(&v[z + 2..]));
                    } else {
                        s.push_str(&hex::encode(v));
                    }
                }
                Some(Field::NNg) => {
                    let v = v.strip_suffix(&[0]).unwrap_or(v);
                    s.push_str(&String::from_utf8_lossy(v));
                }
                _ => s.push_str(&hex::encode(v)),
            }
            p = &p[4 + n..];
            i += 1;
        }
        s
    }
}

/// Parse one record of `digest_len`-byte template digests from the start of `buf`.
/// `Ok(None)` when `buf` ends inside the record (a torn tail); `Err` with the offset
/// (relative to `buf`) of a field that cannot be right.
pub fn parse_record(
    buf: &[u8],
    digest_len: usize,
) -> Result<Option<(Record, usize)>, (u64, String)> {
    let mut off = 0usize;
    let take = |off: &mut usize, n: usize| -> Option<&[u8]> {
        let s = buf.get(*off..off.checked_add(n)?)?;
        *off += n;
        Some(s)
    };
    let u32_at = |off: &mut usize| -> Option<u32> {
        take(off, 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let Some(pcr) = u32_at(&mut off) else {
        return Ok(None);
    };
    if pcr > 63 {
        return Err((0, format!("PCR index {pcr} out of range")));
    }
    let Some(digest) = take(&mut off, digest_len) else {
        return Ok(None);
    };
    let digest = digest.to_vec();
    let noff = off as u64;
    let Some(nlen) = u32_at(&mut off) else {
        return Ok(None);
    };
    if nlen == 0 || nlen > 255 {
        return Err((noff, format!("template name length {nlen}")));
    }
    let Some(name) = take(&mut off, nlen as usize) else {
        return Ok(None);
    };
    let Ok(template) = std::str::from_utf8(name) else {
        return Err((noff + 4, "template name is not UTF-8".into()));
    };
    if template == "ima" {
        return Err((noff + 4, "template \"ima\" is not written by vigil".into()));
    }
    let template = template.to_owned();
    let Some(dlen) = u32_at(&mut off) else {
        return Ok(None);
    };
    let Some(data) = take(&mut off, dlen as usize) else {
        return Ok(None);
    };
    Ok(Some((
        Record {
            pcr,
            digest,
            template,
            data: data.to_vec(),
        },
        off,
    )))
}
