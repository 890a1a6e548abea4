//! DSSE envelopes as Keylime signs runtime policies (`keylime/dsse/*.py`,
//! `keylime-policy sign runtime`): payload type `application/vnd.keylime+json`,
//! pre-authentication encoding `DSSEv1 <len> <type> <len> <payload>`, ECDSA with
//! SHA-256 (whatever the curve) and a DER signature, envelope written by Python's
//! `json.dumps` as `{"payload": …, "payloadType": …, "signatures": [{"keyid": …, "sig": …}]}`.
//!
//! Key ids: the `ecdsa` backend uses the SHA-256 hex of the public key's PEM; the
//! `x509` backend puts the whole certificate PEM, base64-encoded, in `keyid` (Keylime
//! verifies such envelopes with the certificates they carry when given no key).
//! RSA keys (PKCS#1 v1.5 with SHA-256) are a vigil extension that Keylime cannot verify.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use der::{Decode, DecodePem, Encode, EncodePem};
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signature::hazmat::{PrehashSigner, PrehashVerifier};

use crate::{pyjson, Error, Result};

/// Keylime's payload type for runtime policies.
pub const KEYLIME_PAYLOAD_TYPE: &str = "application/vnd.keylime+json";

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key id (see the module docs); absent when the signer has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Base64 signature over the PAE.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload.
    pub payload: String,
    /// Payload type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Keylime's `b64dec`: a value that is valid hex is decoded as hex (sic), otherwise
/// standard base64, otherwise URL-safe base64.
pub fn b64dec(s: &str) -> Result<Vec<u8>> {
    if let Ok(v) = hex::decode(s) {
        if !v.is_empty() {
            return Ok(v);
        }
    }
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|e| Error::Dsse(format!("not base64: {e}")))
}

/// A public key that can verify DSSE signatures.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// NIST P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// NIST P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// RSA (vigil extension).
    Rsa(rsa::RsaPublicKey),
}

/// A private key that can sign DSSE envelopes.
#[derive(Clone)]
pub enum PrivateKey {
    /// NIST P-256.
    P256(p256::ecdsa::SigningKey),
    /// NIST P-384.
    P384(p384::ecdsa::SigningKey),
    /// RSA (vigil extension).
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrivateKey::P256(_) => "PrivateKey::P256",
            PrivateKey::P384(_) => "PrivateKey::P384",
            PrivateKey::Rsa(_) => "PrivateKey::Rsa",
        })
    }
}

fn key_err(what: &str, message: impl Into<String>) -> Error {
    Error::Key {
        what: what.to_owned(),
        message: message.into(),
    }
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8], what: &str) -> Result<PublicKey> {
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(k.into()));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Rsa(k));
        }
        Err(key_err(what, "not an ECDSA P-256/P-384 or RSA public key"))
    }

    /// Parse a PEM public key (`PUBLIC KEY`) or an X.509 certificate (PEM or DER).
    pub fn from_pem_or_cert(data: &[u8], what: &str) -> Result<PublicKey> {
        if let Some(cert) = parse_cert(data) {
            let spki = cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| key_err(what, e.to_string()))?;
            return PublicKey::from_spki_der(&spki, what);
        }
        let text = std::str::from_utf8(data)
            .map_err(|_| key_err(what, "not a PEM file or certificate"))?;
        let (label, der) =
            pem_decode(text).ok_or_else(|| key_err(what, "not a PEM file or certificate"))?;
        match label.as_str() {
            "PUBLIC KEY" => PublicKey::from_spki_der(&der, what),
            "RSA PUBLIC KEY" => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::RsaPublicKey::from_pkcs1_der(&der)
                    .map(PublicKey::Rsa)
                    .map_err(|e| key_err(what, e.to_string()))
            }
            _ => Err(key_err(what, format!("unexpected PEM label {label:?}"))),
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
            PublicKey::P384(k) => p384::PublicKey::from(k).to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// PEM as Python's `cryptography` writes it (`PUBLIC KEY`, 64 columns, LF).
    pub fn to_pem(&self) -> String {
        let doc = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            PublicKey::P384(k) => p384::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            PublicKey::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
        };
        doc.unwrap_or_default()
    }

    /// Keylime's `ecdsa` backend key id: SHA-256 hex of the PEM.
    pub fn keyid(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Verify a DSSE signature (`sig`) over `message` (the PAE).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let h = Sha256::digest(message);
        match self {
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .map(|s| k.verify_prehash(&h, &s).is_ok())
                .unwrap_or(false),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .map(|s| k.verify_prehash(&h, &s).is_ok())
                .unwrap_or(false),
            PublicKey::Rsa(k) => k
                .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &h, sig)
                .is_ok(),
        }
    }
}

impl PrivateKey {
    /// Parse a PEM private key: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
    /// PKCS#1 (`RSA PRIVATE KEY`), unencrypted.
    pub fn from_pem(data: &[u8], what: &str) -> Result<PrivateKey> {
        let text = std::str::from_utf8(data).map_err(|_| key_err(what, "not a PEM file"))?;
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(text) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_pem(text) {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
            return Ok(PrivateKey::P384(k.into()));
        }
        {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_pem(text) {
                return Ok(PrivateKey::Rsa(Box::new(k)));
            }
        }
        Err(key_err(
            what,
            "not an unencrypted ECDSA P-256/P-384 or RSA private key in PEM",
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
        }
    }

    /// Sign `message` (the PAE): ECDSA over SHA-256, DER-encoded; or RSA PKCS#1 v1.5.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let h = Sha256::digest(message);
        let err = |e: &dyn std::fmt::Display| Error::Dsse(format!("signing failed: {e}"));
        Ok(match self {
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&h).map_err(|e| err(&e))?;
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(&h).map_err(|e| err(&e))?;
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &h)
                .map_err(|e| err(&e))?,
        })
    }
}

fn parse_cert(data: &[u8]) -> Option<x509_cert::Certificate> {
    if let Ok(c) = x509_cert::Certificate::from_der(data) {
        return Some(c);
    }
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    x509_cert::Certificate::from_pem(&text[start..]).ok()
}

fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let (label, doc) = der::pem::decode_vec(&text.as_bytes()[start..]).ok()?;
    Some((label.to_owned(), doc))
}

/// Certificate PEM as Python's `cryptography` writes it.
fn cert_pem(cert: &x509_cert::Certificate) -> Result<String> {
    cert.to_pem(LineEnding::LF)
        .map_err(|e| Error::Dsse(format!("cannot encode certificate: {e}")))
}

/// Who signs: a private key, and for the `x509` backend its certificate.
#[derive(Debug, Clone)]
pub struct Signer {
    key: PrivateKey,
    cert: Option<x509_cert::Certificate>,
}

impl Signer {
    /// The `ecdsa` backend (or RSA): key id = SHA-256 of the public key PEM.
    pub fn new(key: PrivateKey) -> Signer {
        Signer { key, cert: None }
    }

    /// The `x509` backend: key id = base64 of the certificate PEM. The certificate's
    /// public key must be the signing key's.
    pub fn with_certificate(key: PrivateKey, cert_data: &[u8]) -> Result<Signer> {
        let cert = parse_cert(cert_data)
            .ok_or_else(|| key_err("certificate", "not an X.509 certificate (PEM or DER)"))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| key_err("certificate", e.to_string()))?;
        if spki != key.public_key().to_spki_der() {
            return Err(key_err(
                "certificate",
                "its public key is not the signing key's",
            ));
        }
        Ok(Signer {
            key,
            cert: Some(cert),
        })
    }

    fn keyid(&self) -> Result<String> {
        match &self.cert {
            Some(c) => Ok(STANDARD.encode(cert_pem(c)?)),
            None => Ok(self.key.public_key().keyid()),
        }
    }

    /// Wrap `payload` in a signed envelope and return its JSON text (Keylime's
    /// `dsse.Sign`).
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> Result<String> {
        let sig = self.key.sign(&pae(payload_type, payload))?;
        let env = Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![EnvelopeSignature {
                keyid: Some(self.keyid()?),
                sig: STANDARD.encode(sig),
            }],
        };
        Ok(pyjson::to_string(&env))
    }
}

/// Whether a JSON document is a DSSE envelope (Keylime checks for a truthy `payload`).
pub fn is_envelope(text: &[u8]) -> bool {
    // An envelope has a `payload` key, spelled out or with `\u` escapes: a text with
    // neither the word nor any backslash is not one, and a large policy need not be
    // parsed twice to tell.
    if memchr::memchr(b'\\', text).is_none() && memchr::memmem::find(text, b"payload").is_none() {
        return false;
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        payload: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(text) {
        Ok(Probe {
            payload: Some(serde_json::Value::String(s)),
        }) => !s.is_empty(),
        Ok(Probe { payload: Some(v) }) => !v.is_null(),
        _ => false,
    }
}

/// Parse an envelope.
pub fn parse(text: &[u8]) -> Result<Envelope> {
    serde_json::from_slice(text).map_err(|error| Error::Json {
        what: "DSSE envelope",
        error,
    })
}

/// The payload of an envelope without checking any signature (what Keylime does when
/// no key is configured).
pub fn payload_unverified(env: &Envelope) -> Result<Vec<u8>> {
    b64dec(&env.payload)
}

/// Verify an envelope with trusted `keys` and return its payload. Every signature is
/// tried against every key, as Keylime's `dsse.Verify` does; one match suffices.
pub fn verify(env: &Envelope, keys: &[PublicKey]) -> Result<Vec<u8>> {
    let payload = b64dec(&env.payload)?;
    let msg = pae(&env.payload_type, &payload);
    for s in &env.signatures {
        let Ok(sig) = b64dec(&s.sig) else { continue };
        if keys.iter().any(|k| k.verify(&msg, &sig)) {
            return Ok(payload);
        }
    }
    Err(Error::DsseNoValidSignature)
}

/// Keylime's key-less verification: each signature's `keyid` must be a base64 PEM
/// certificate, and the signature must verify with that certificate's key. This proves
/// only that the envelope is intact, not who signed it; callers should check the
/// returned certificates against what they trust.
pub fn verify_with_embedded_certs(
    env: &Envelope,
) -> Result<(Vec<u8>, Vec<x509_cert::Certificate>)> {
    let payload = b64dec(&env.payload)?;
    let msg = pae(&env.payload_type, &payload);
    let mut good = Vec::new();
    for s in &env.signatures {
        let Some(keyid) = &s.keyid else { continue };
        let Ok(pem) = STANDARD.decode(keyid) else {
            continue;
        };
        let Some(cert) = parse_cert(&pem) else {
            continue;
        };
        let Ok(spki) = cert.tbs_certificate.subject_public_key_info.to_der() else {
            continue;
        };
        let Ok(key) = PublicKey::from_spki_der(&spki, "certificate") else {
            continue;
        };
        let Ok(sig) = b64dec(&s.sig) else { continue };
        if key.verify(&msg, &sig) {
            good.push(cert);
        }
    }
    if good.is_empty() {
        return Err(Error::DsseNoValidSignature);
    }
    Ok((payload, good))
}
