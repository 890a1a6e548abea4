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
///
/// An appended (`modsig`) signature is a PKCS#7/CMS `SignedData` over the `d-modsig`
/// digest (directly, or through signed attributes whose `messageDigest` is it); it
/// verifies if one of the ring's keys verifies it.
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
            Field::Modsig(s) if !s.is_empty() => out.push((f.id(), check_modsig(r, s, keys))),
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

/// The signature in `bytes`, or the failure to report when it does not decode.
fn decode(bytes: &[u8]) -> Result<Signature, SigCheck> {
    Signature::decode(bytes).map_err(|e| SigCheck::Failed {
        keyid: None,
        reason: e.to_string(),
    })
}

fn check_file_sig(r: &Record, bytes: &[u8], keys: &KeyRing) -> SigCheck {
    let sig = match decode(bytes) {
        Ok(s) => s,
        Err(failed) => return failed,
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
    let sig = match decode(bytes) {
        Ok(s) => s,
        Err(failed) => return failed,
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

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

/// The hash algorithm of a PKCS#7 digest algorithm identifier.
fn pkcs7_digest_algo(oid: &str) -> Option<HashAlgo> {
    Some(match oid {
        "1.3.14.3.2.26" => HashAlgo::Sha1,
        "2.16.840.1.101.3.4.2.1" => HashAlgo::Sha256,
        "2.16.840.1.101.3.4.2.2" => HashAlgo::Sha384,
        "2.16.840.1.101.3.4.2.3" => HashAlgo::Sha512,
        "2.16.840.1.101.3.4.2.4" => HashAlgo::Sha224,
        "2.16.840.1.101.3.4.2.8" => HashAlgo::Sha3_256,
        "2.16.840.1.101.3.4.2.9" => HashAlgo::Sha3_384,
        "2.16.840.1.101.3.4.2.10" => HashAlgo::Sha3_512,
        "1.2.156.10197.1.401" => HashAlgo::Sm3,
        _ => return None,
    })
}

fn check_modsig(r: &Record, bytes: &[u8], keys: &KeyRing) -> SigCheck {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::{Decode, Encode};

    let failed = |reason: String| SigCheck::Failed {
        keyid: None,
        reason,
    };
    let Some((algo, digest)) = r.fields.iter().find_map(|f| match f {
        Field::DModsig { algo, digest } => Some((algo.hash_algo(digest.len()), digest.as_slice())),
        _ => None,
    }) else {
        return failed("the entry has a modsig but no d-modsig digest".into());
    };
    let signed = match ContentInfo::from_der(bytes) {
        Ok(ci) if ci.content_type.to_string() == OID_SIGNED_DATA => {
            ci.content.decode_as::<SignedData>()
        }
        Ok(ci) => {
            return failed(format!(
                "PKCS#7 content type {} is not signedData",
                ci.content_type
            ))
        }
        Err(e) => return failed(format!("modsig is not PKCS#7: {e}")),
    };
    let signed = match signed {
        Ok(s) => s,
        Err(e) => return failed(format!("PKCS#7 SignedData: {e}")),
    };
    let mut last = String::from("no signer");
    for si in signed.signer_infos.0.iter() {
        let oid = si.digest_alg.oid.to_string();
        let Some(h) = pkcs7_digest_algo(&oid) else {
            last = format!("unsupported PKCS#7 digest algorithm {oid}");
            continue;
        };
        if let Some(a) = algo.filter(|&a| a != h) {
            last = format!("the PKCS#7 signature uses {h}, the d-modsig digest is {a}");
            continue;
        }
        let to_verify = match &si.signed_attrs {
            None => digest.to_vec(),
            Some(attrs) => {
                let md = attrs
                    .iter()
                    .find(|a| a.oid.to_string() == OID_MESSAGE_DIGEST)
                    .and_then(|a| {
                        a.values
                            .iter()
                            .next()
                            .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
                    });
                if md.as_ref().map(|m| m.as_bytes()) != Some(digest) {
                    last = "the signed messageDigest is not the d-modsig digest".into();
                    continue;
                }
                match attrs
                    .to_der()
                    .map_err(|e| e.to_string())
                    .and_then(|d| h.digest(&d).map_err(|e| e.to_string()))
                {
                    Ok(d) => d,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                }
            }
        };
        let sig = si.signature.as_bytes();
        if let Some(k) = keys
            .keys()
            .iter()
            .find(|k| k.verify_digest(h, &to_verify, sig).is_ok())
        {
            return SigCheck::Verified(k.keyid());
        }
        last = format!(
            "no key verifies the PKCS#7 signature ({} keys tried)",
            keys.keys().len()
        );
    }
    failed(last)
}
