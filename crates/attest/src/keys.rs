//! Keyrings of IMA signature verification keys as Keylime keeps them
//! (`keylime/ima/file_signatures.py`): keys from the policy's `verification-keys`
//! (the "tenant keyring") and keys learned from `ima-buf` keyring measurements, each
//! under its keyidv2 (last 4 bytes of the certificate's SKID, else of the SHA-1 of the
//! PKCS#1 RSA key or the uncompressed EC point).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::{Decode, DecodePem, Encode};
use serde::{Deserialize, Serialize};

use crate::policy::VerificationKeys;
use crate::{Error, Result};

const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SKID: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.14");

/// One key: its keyidv2 and DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// keyidv2.
    pub keyid: u32,
    /// Base64 DER SubjectPublicKeyInfo.
    pub pubkey: String,
}

/// Named keyrings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Keyrings {
    rings: BTreeMap<String, Vec<StoredKey>>,
}

/// Result of checking an IMA signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigCheck {
    /// Verified.
    Good,
    /// No key with this keyid in any keyring.
    UnknownKey(u32),
    /// The key with this keyid does not verify it.
    Bad(u32),
    /// Not usable (type, version, algorithm).
    Unusable(String),
}

fn keyid_from_spki(spki: &spki::SubjectPublicKeyInfoRef) -> u32 {
    let bits = spki.subject_public_key.raw_bytes();
    let h = vigil_ima::HashAlgo::Sha1
        .digest(bits)
        .unwrap_or_else(|_| vec![0; 20]);
    u32::from_be_bytes([h[16], h[17], h[18], h[19]])
}

fn check_alg(spki: &spki::SubjectPublicKeyInfoRef) -> std::result::Result<(), String> {
    let oid = spki.algorithm.oid;
    if oid == OID_RSA || oid == OID_EC {
        Ok(())
    } else {
        Err(format!("unsupported key type (algorithm {oid})"))
    }
}

fn from_spki_der(der: &[u8], keyid: Option<u32>) -> Option<std::result::Result<StoredKey, String>> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der).ok()?;
    Some(check_alg(&spki).map(|_| StoredKey {
        keyid: keyid.unwrap_or_else(|| keyid_from_spki(&spki)),
        pubkey: STANDARD.encode(der),
    }))
}

fn from_cert(cert: &x509_cert::Certificate) -> Option<std::result::Result<StoredKey, String>> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    let skid = cert
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == OID_SKID)
        .and_then(|e| der::asn1::OctetString::from_der(e.extn_value.as_bytes()).ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|s| s.len() >= 4)
        .map(|s| {
            u32::from_be_bytes([
                s[s.len() - 4],
                s[s.len() - 3],
                s[s.len() - 2],
                s[s.len() - 1],
            ])
        });
    from_spki_der(&spki, skid)
}

fn pem_blocks(text: &str) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    text.match_indices("-----BEGIN ").filter_map(move |(i, _)| {
        der::pem::decode_vec(&text.as_bytes()[i..])
            .ok()
            .map(|(l, d)| (l.to_owned(), d))
    })
}

impl Keyrings {
    /// Keylime's `get_pubkey`: interpret `data` as an X.509 certificate, a public key or
    /// a private key (DER or PEM). `Ok(None)`: not a key at all; `Err`: a key of a type
    /// Keylime does not support (not RSA or EC).
    pub fn parse_key(data: &[u8]) -> std::result::Result<Option<StoredKey>, String> {
        if data.is_empty() {
            return Ok(None);
        }
        if let Ok(cert) = x509_cert::Certificate::from_der(data) {
            if let Some(r) = from_cert(&cert) {
                return r.map(Some);
            }
        }
        if let Some(r) = from_spki_der(data, None) {
            return r.map(Some);
        }
        if let Ok(text) = std::str::from_utf8(data) {
            for (label, der) in pem_blocks(text) {
                let r = match label.as_str() {
                    "CERTIFICATE" => x509_cert::Certificate::from_der(&der)
                        .ok()
                        .and_then(|c| from_cert(&c)),
                    "PUBLIC KEY" => from_spki_der(&der, None),
                    "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                        crate::dsse::PrivateKey::from_pem(data, "key")
                            .ok()
                            .and_then(|k| from_spki_der(&k.public_key().to_spki_der(), None))
                    }
                    _ => None,
                };
                if let Some(r) = r {
                    return r.map(Some);
                }
            }
            if let Ok(c) = x509_cert::Certificate::from_pem(text.trim_start()) {
                if let Some(r) = from_cert(&c) {
                    return r.map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Add a key to keyring `name` (replacing a key with the same keyid there).
    pub fn add(&mut self, name: &str, key: StoredKey) {
        let ring = self.rings.entry(name.to_owned()).or_default();
        ring.retain(|k| k.keyid != key.keyid);
        ring.push(key);
    }

    /// Load a policy's `verification-keys` into keyring `name`.
    pub fn add_verification_keys(&mut self, name: &str, keys: &VerificationKeys) -> Result<()> {
        for (i, b64) in keys.pubkeys.iter().enumerate() {
            let der = STANDARD.decode(b64).map_err(|e| {
                Error::schema(format!("verification-keys.pubkeys[{i}]"), e.to_string())
            })?;
            let key = match from_spki_der(&der, keys.keyids.get(i).copied()) {
                Some(Ok(k)) => k,
                Some(Err(m)) => {
                    return Err(Error::schema(format!("verification-keys.pubkeys[{i}]"), m))
                }
                None => {
                    return Err(Error::schema(
                        format!("verification-keys.pubkeys[{i}]"),
                        "not a DER SubjectPublicKeyInfo",
                    ))
                }
            };
            self.add(name, key);
        }
        Ok(())
    }

    /// Every keyring and its keys.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[StoredKey])> {
        self.rings.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether there are no keys at all.
    pub fn is_empty(&self) -> bool {
        self.rings.values().all(|v| v.is_empty())
    }

    fn find(&self, keyid: u32) -> Option<&StoredKey> {
        self.rings
            .values()
            .flat_map(|r| r.iter())
            .find(|k| k.keyid == keyid)
    }

    /// Keylime's `integrity_digsig_verify`: `sig` is the whole `sig` field (type byte
    /// 0x03 or 0x05, version 2 only); its hash algorithm must be the `d-ng` algorithm
    /// `digest_algo` (and one of md5, sha1, sha224, sha256, sha384, sha512); the key is
    /// looked up by keyid in every keyring.
    pub fn verify_ima_sig<'k>(
        rings: impl IntoIterator<Item = &'k Keyrings>,
        sig: &[u8],
        digest: &[u8],
        digest_algo: &str,
    ) -> SigCheck {
        if sig.len() < 2 {
            return SigCheck::Unusable("not enough bytes".into());
        }
        if sig[0] != 3 && sig[0] != 5 {
            return SigCheck::Unusable(format!("wrong type {}", sig[0]));
        }
        if sig[1] != 2 {
            return SigCheck::Unusable(format!("wrong version {}", sig[1]));
        }
        if sig.len() < 9 {
            return SigCheck::Unusable("header too short".into());
        }
        let algo = sig[2];
        let keyid = u32::from_be_bytes([sig[3], sig[4], sig[5], sig[6]]);
        let name = match algo {
            1 => "md5",
            2 => "sha1",
            4 => "sha256",
            5 => "sha384",
            6 => "sha512",
            7 => "sha224",
            _ => return SigCheck::Unusable(format!("unsupported hash algorithm id {algo}")),
        };
        if name != digest_algo {
            return SigCheck::Unusable(format!(
                "signature hash {name} differs from the file digest's {digest_algo}"
            ));
        }
        let Some(key) = rings.into_iter().find_map(|r| r.find(keyid)) else {
            return SigCheck::UnknownKey(keyid);
        };
        let Ok(spki) = STANDARD.decode(&key.pubkey) else {
            return SigCheck::Bad(keyid);
        };
        if verify_prehashed(&spki, sig, digest) {
            SigCheck::Good
        } else {
            SigCheck::Bad(keyid)
        }
    }
}

/// Verify the signature part of an IMA v2 signature (`sig` is the whole field, header
/// included) over `digest` with a DER SPKI key, by `vigil_ima`'s verifier.
fn verify_prehashed(spki: &[u8], sig: &[u8], digest: &[u8]) -> bool {
    let Ok(key) = vigil_ima::PublicKey::from_spki_der(spki, "keyring key") else {
        return false;
    };
    let Ok(algo) = vigil_ima::HashAlgo::from_id(sig[2]) else {
        return false;
    };
    key.verify_digest(algo, digest, &sig[9..]).is_ok()
}
