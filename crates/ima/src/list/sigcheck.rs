//! Signature checks of measurement-list entries: the `sig` field of `ima-sig` /
//! `ima-sigv2` (and custom templates) against the entry's file digest, and the `evmsig`
//! field of `evm-sig` against the EVM portable digest of the xattrs, owner and mode the
//! entry carries.

use super::{Endian, Field, Record};
use crate::evm::{evm_digest, EvmKind, EvmMeta, MiscLayout};
use crate::{Error, HashAlgo, KeyId, KeyRing, Signature, XattrType};

/// The outcome of checking one signature of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigCheck {
    /// The signature verifies with the key of this id.
    Verified(KeyId),
    /// No key with the signature's key id is in the key ring.
    UnknownKey(KeyId),
    /// The signature is malformed or does not verify.
    Failed {
        /// The signature's key id, when it could be read.
        keyid: Option<KeyId>,
        /// Why.
        reason: String,
    },
    /// The signature cannot be checked from the entry alone (an appended PKCS#7
    /// signature, an EVM signature in a `sig` field without the EVM metadata).
    Unchecked(String),
}

impl SigCheck {
    /// Whether this outcome fails a verification (unknown key, bad signature).
    pub fn is_failure(&self) -> bool {
        matches!(self, SigCheck::UnknownKey(_) | SigCheck::Failed { .. })
    }
}

impl std::fmt::Display for SigCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigCheck::Verified(k) => write!(f, "signature verified (key {k})"),
            SigCheck::UnknownKey(k) => write!(f, "no key with id {k}"),
            SigCheck::Failed {
                keyid: Some(k),
                reason,
            } => write!(f, "signature of key {k} does not verify: {reason}"),
            SigCheck::Failed {
                keyid: None,
                reason,
            } => write!(f, "bad signature: {reason}"),
            SigCheck::Unchecked(why) => write!(f, "not checked: {why}"),
        }
    }
}

/// Check every signature an entry carries (`sig`, `evmsig`, `modsig`; empty fields are
/// skipped). `endian` is the byte order of the list the entry came from (for
/// `xattrlengths`). Returns one outcome per signature field, in field order.
pub fn check_signatures(
    r: &Record,
    keys: &KeyRing,
    endian: Endian,
) -> Vec<(super::FieldId, SigCheck)> {
    let mut out = Vec::new();
    for f in &r.fields {
        match f {
            Field::Sig(s) if !s.is_empty() => out.push((f.id(), check_file_sig(r, s, keys))),
            Field::EvmSig(s) if !s.is_empty() => {
                out.push((f.id(), check_evm_sig(r, s, keys, endian)))
            }
            Field::Modsig(s) if !s.is_empty() => out.push((
                f.id(),
                SigCheck::Unchecked("appended PKCS#7 (modsig) signatures are not checked".into()),
            )),
            _ => {}
        }
    }
    out
}

fn verify(keys: &KeyRing, sig: &Signature, digest: &[u8]) -> SigCheck {
    match keys.verify_signature(sig, digest) {
        Ok(k) => SigCheck::Verified(k),
        Err(Error::UnknownKeyId(k)) => SigCheck::UnknownKey(k),
        Err(e) => SigCheck::Failed {
            keyid: Some(sig.keyid),
            reason: e.to_string(),
        },
    }
}

fn check_file_sig(r: &Record, bytes: &[u8], keys: &KeyRing) -> SigCheck {
    let sig = match Signature::decode(bytes) {
        Ok(s) => s,
        Err(e) => {
            return SigCheck::Failed {
                keyid: None,
                reason: e.to_string(),
            }
        }
    };
    if sig.xattr_type == XattrType::EvmPortableDigSig {
        return SigCheck::Unchecked(
            "an EVM portable signature covers the file's EVM metadata, which this entry does not carry".into(),
        );
    }
    let Some((algo, digest)) = r.file_digest() else {
        return SigCheck::Failed {
            keyid: Some(sig.keyid),
            reason: "the entry has no file digest field".into(),
        };
    };
    if let Some(algo) = algo {
        if algo != sig.hash_algo {
            return SigCheck::Failed {
                keyid: Some(sig.keyid),
                reason: format!(
                    "the signature is over a {} digest, the entry's file digest is {algo}",
                    sig.hash_algo
                ),
            };
        }
    }
    verify(keys, &sig, digest)
}

fn check_evm_sig(r: &Record, bytes: &[u8], keys: &KeyRing, endian: Endian) -> SigCheck {
    let sig = match Signature::decode(bytes) {
        Ok(s) => s,
        Err(e) => {
            return SigCheck::Failed {
                keyid: None,
                reason: e.to_string(),
            }
        }
    };
    if sig.xattr_type != XattrType::EvmPortableDigSig {
        return SigCheck::Failed {
            keyid: Some(sig.keyid),
            reason: "an evmsig field holds only EVM portable signatures (type 0x05)".into(),
        };
    }
    match evm_portable_digest(r, sig.hash_algo, endian) {
        Ok(d) => verify(keys, &sig, &d),
        Err(reason) => SigCheck::Failed {
            keyid: Some(sig.keyid),
            reason,
        },
    }
}

/// The EVM portable digest of an `evm-sig` entry: its xattr values (in the order of
/// `xattrnames`, which is EVM's) and `h_misc` from `iuid`, `igid` and `imode`.
pub fn evm_portable_digest(r: &Record, algo: HashAlgo, endian: Endian) -> Result<Vec<u8>, String> {
    let (mut names, mut lengths, mut values) = (None, None, None);
    let mut meta = EvmMeta::default();
    let (mut uid, mut gid, mut mode) = (false, false, false);
    for f in &r.fields {
        match f {
            Field::XattrNames(n) => names = Some(n.as_slice()),
            Field::XattrLengths(l) => lengths = Some(l.as_slice()),
            Field::XattrValues(v) => values = Some(v.as_slice()),
            Field::IUid(u) => (meta.uid, uid) = (*u, true),
            Field::IGid(g) => (meta.gid, gid) = (*g, true),
            Field::IMode(m) => (meta.mode, mode) = (u32::from(*m), true),
            _ => {}
        }
    }
    if !(uid && gid && mode) {
        return Err("the entry lacks iuid, igid or imode".into());
    }
    let names = names.unwrap_or_default();
    let names = names.strip_suffix(&[0]).unwrap_or(names);
    let count = if names.is_empty() {
        0
    } else {
        names.split(|&b| b == b'|').count()
    };
    let lengths = lengths.unwrap_or_default();
    let values = values.unwrap_or_default();
    if lengths.len() != 4 * count {
        return Err(format!(
            "{count} xattr names but {} bytes of xattr lengths",
            lengths.len()
        ));
    }
    let mut parts = Vec::with_capacity(count);
    let mut rest = values;
    for l in lengths.chunks_exact(4) {
        let n = endian.u32(l.try_into().expect("4 bytes")) as usize;
        if n > rest.len() {
            return Err("xattr lengths exceed the xattr values".into());
        }
        let (v, r2) = rest.split_at(n);
        parts.push(v);
        rest = r2;
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of xattr values beyond the given lengths",
            rest.len()
        ));
    }
    evm_digest(
        algo,
        &parts,
        &meta,
        EvmKind::Portable,
        MiscLayout::Native,
        None,
    )
    .map_err(|e| e.to_string())
}
