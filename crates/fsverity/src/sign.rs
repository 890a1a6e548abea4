//! Builtin signatures: the PKCS#7 (CMS) `SignedData` that `fsverity sign` writes and
//! the kernel verifies against the `.fs-verity` keyring.
//!
//! The shape is OpenSSL's `PKCS7_sign(BINARY | DETACHED | NOATTR | NOCERTS)`: detached
//! content of type `data`, no certificates, one SignerInfo (version 1, issuer and serial
//! number, no signed attributes), digest algorithm = the fs-verity hash with NULL
//! parameters, and for RSA the `rsaEncryption` algorithm with a PKCS#1 v1.5 signature
//! over the formatted digest — deterministic, so byte-identical to fsverity-utils. ECDSA
//! (P-256, P-384) signs with `ecdsa-with-SHA256/512`; such signatures are randomised in
//! OpenSSL and compared by verification.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier as Oid, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tagged};
use sha2::Digest;
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::descriptor::FileDigest;
use crate::{Error, Result};

const OID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const OID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const OID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const OID_SHA256_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const OID_SHA384_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
const OID_SHA512_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
const OID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const OID_P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const OID_P521: Oid = Oid::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: Oid = Oid::new_unwrap("1.3.132.0.10");
const OID_ED25519: Oid = Oid::new_unwrap("1.3.101.112");
const OID_RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
const OID_ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
const OID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");

/// A private key that can sign fs-verity digests.
pub enum SigningKey {
    /// RSA (PKCS#1 v1.5 signatures, byte-identical to OpenSSL's).
    Rsa(Box<rsa::RsaPrivateKey>),
    /// ECDSA on NIST P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA on NIST P-384.
    P384(p384::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Rsa(_) => "SigningKey::Rsa",
            SigningKey::P256(_) => "SigningKey::P256",
            SigningKey::P384(_) => "SigningKey::P384",
        })
    }
}

fn key_err(detail: impl std::fmt::Display) -> Error {
    Error::Key {
        what: "private key",
        detail: detail.to_string(),
    }
}

/// The named curve in EC key parameters, if it is one vigil signs with (P-256, P-384).
fn ec_curve(params: Option<&Any>) -> Result<Oid> {
    let params = params.ok_or_else(|| key_err("EC key without curve parameters"))?;
    let curve: Oid = params.decode_as().map_err(|_| {
        Error::UnsupportedKey(
            "EC keys with explicit curve parameters are not supported (nor by the kernel); \
             use a named curve (openssl ec -param_enc named_curve)"
                .into(),
        )
    })?;
    match curve {
        OID_P256 | OID_P384 => Ok(curve),
        OID_P521 => Err(Error::UnsupportedKey(
            "EC curve P-521 is not supported (RSA, P-256 and P-384 are)".into(),
        )),
        OID_SECP256K1 => Err(Error::UnsupportedKey(
            "EC curve secp256k1 is not supported (nor by the kernel's signature check)".into(),
        )),
        other => Err(Error::UnsupportedKey(format!(
            "EC curve {other} is not supported (RSA, P-256 and P-384 are)"
        ))),
    }
}

/// The PEM blocks of `pem` (a file may hold a key and a certificate): (label, DER).
fn pem_blocks(pem: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = &text[..];
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(end_rel) = rest[start..].find("-----END ") else {
            break;
        };
        let after = start + end_rel;
        let Some(close) = rest[after + 9..].find("-----") else {
            break;
        };
        let stop = after + 9 + close + 5;
        if let Ok((label, der)) = der::pem::decode_vec(&rest.as_bytes()[start..stop]) {
            out.push((label.to_owned(), der));
        }
        rest = &rest[stop..];
    }
    out
}

impl SigningKey {
    /// Read a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or EC), PKCS#1
    /// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Other blocks in the file
    /// (e.g. a certificate) are skipped. Encrypted keys, curves other than P-256 and
    /// P-384, explicit curve parameters and other key types fail with
    /// [`Error::UnsupportedKey`].
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey> {
        for (label, der) in pem_blocks(pem) {
            match label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&der),
                "RSA PRIVATE KEY" => {
                    use rsa::pkcs1::DecodeRsaPrivateKey;
                    let k = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(key_err)?;
                    return Ok(SigningKey::Rsa(Box::new(k)));
                }
                "EC PRIVATE KEY" => {
                    // ECPrivateKey: version, key, [0] parameters, [1] public key.
                    let fields = Vec::<Any>::from_der(&der).map_err(key_err)?;
                    let params = fields.iter().find(|f| {
                        f.tag()
                            == der::Tag::ContextSpecific {
                                constructed: true,
                                number: der::TagNumber::N0,
                            }
                    });
                    let params = params
                        .map(|p| Any::from_der(p.value()))
                        .transpose()
                        .map_err(key_err)?;
                    return match ec_curve(params.as_ref())? {
                        OID_P256 => Ok(SigningKey::P256(
                            p256::SecretKey::from_sec1_der(&der)
                                .map_err(key_err)?
                                .into(),
                        )),
                        _ => Ok(SigningKey::P384(
                            p384::SecretKey::from_sec1_der(&der)
                                .map_err(key_err)?
                                .into(),
                        )),
                    };
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(Error::UnsupportedKey(
                        "encrypted private keys are not supported; decrypt the key first \
                         (openssl pkey -in KEY -out PLAIN_KEY)"
                            .into(),
                    ))
                }
                _ => {}
            }
        }
        Err(key_err("no PEM private key found"))
    }

    /// Read a DER PKCS#8 private key (RSA, EC P-256 or EC P-384).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey> {
        use pkcs8::DecodePrivateKey;
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(key_err)?;
        match info.algorithm.oid {
            OID_RSA => Ok(SigningKey::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(key_err)?,
            ))),
            OID_EC_PUBLIC_KEY => {
                let params = info.algorithm.parameters.map(Any::from);
                match ec_curve(params.as_ref())? {
                    OID_P256 => Ok(SigningKey::P256(
                        p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(key_err)?,
                    )),
                    _ => Ok(SigningKey::P384(
                        p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(key_err)?,
                    )),
                }
            }
            OID_ED25519 => Err(Error::UnsupportedKey(
                "Ed25519 keys are not supported (RSA, EC P-256 and P-384 are)".into(),
            )),
            OID_RSA_PSS => Err(Error::UnsupportedKey(
                "RSA-PSS keys are not supported (RSA, EC P-256 and P-384 are)".into(),
            )),
            other => Err(Error::UnsupportedKey(format!(
                "key algorithm {other} is not supported (RSA, EC P-256 and P-384 are)"
            ))),
        }
    }

    /// DER SubjectPublicKeyInfo of the key's public half.
    fn public_key_der(&self) -> Result<Vec<u8>> {
        use spki::EncodePublicKey;
        let doc = match self {
            SigningKey::Rsa(k) => k.to_public_key().to_public_key_der(),
            SigningKey::P256(k) => k.verifying_key().to_public_key_der(),
            SigningKey::P384(k) => k.verifying_key().to_public_key_der(),
        };
        Ok(doc.map_err(key_err)?.as_bytes().to_vec())
    }
}

/// Read the first PEM certificate in `pem` (a file may hold a key and a certificate).
pub fn certificate_from_pem(pem: &[u8]) -> Result<Certificate> {
    let cert_err = |detail: String| Error::Key {
        what: "certificate",
        detail,
    };
    for (label, der) in pem_blocks(pem) {
        if label == "CERTIFICATE" {
            return Certificate::from_der(&der).map_err(|e| cert_err(e.to_string()));
        }
    }
    Err(cert_err("no PEM certificate found".into()))
}

/// Digest algorithm of a signer: its OID and the hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Md {
    Sha256,
    Sha384,
    Sha512,
}

impl Md {
    fn of(digest: &FileDigest) -> Md {
        match digest.alg() {
            crate::HashAlg::Sha256 => Md::Sha256,
            crate::HashAlg::Sha512 => Md::Sha512,
        }
    }
    fn oid(self) -> Oid {
        match self {
            Md::Sha256 => OID_SHA256,
            Md::Sha384 => OID_SHA384,
            Md::Sha512 => OID_SHA512,
        }
    }
    fn from_oid(oid: &Oid) -> Option<Md> {
        [Md::Sha256, Md::Sha384, Md::Sha512]
            .into_iter()
            .find(|m| m.oid() == *oid)
    }
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Md::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Md::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Md::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Md::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Md::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Md::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
    fn ecdsa_oid(self) -> Oid {
        match self {
            Md::Sha256 => OID_ECDSA_SHA256,
            Md::Sha384 => OID_ECDSA_SHA384,
            Md::Sha512 => OID_ECDSA_SHA512,
        }
    }
}

fn alg_id(oid: Oid, null_params: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| Any::from(der::asn1::Null)),
    }
}

fn der_err(e: der::Error) -> Error {
    Error::Signature(e.to_string())
}

/// Sign `digest` as `fsverity sign` does: a DER PKCS#7 `SignedData` over the formatted
/// digest, naming `cert` (which must hold `key`'s public key) by issuer and serial
/// number. RSA output is byte-identical to fsverity-utils.
pub fn sign(digest: &FileDigest, key: &SigningKey, cert: &Certificate) -> Result<Vec<u8>> {
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(der_err)?;
    if key.public_key_der()? != cert_spki {
        return Err(Error::Key {
            what: "private key",
            detail: "does not match the certificate's public key".into(),
        });
    }
    let md = Md::of(digest);
    let hashed = md.hash(&digest.formatted());
    let (sig_alg, sig) = match key {
        SigningKey::Rsa(k) => (
            alg_id(OID_RSA, true),
            k.sign(md.pkcs1v15(), &hashed).map_err(key_err)?,
        ),
        SigningKey::P256(k) => {
            let s: p256::ecdsa::Signature = k.sign_prehash(&hashed).map_err(key_err)?;
            (
                alg_id(md.ecdsa_oid(), false),
                s.to_der().as_bytes().to_vec(),
            )
        }
        SigningKey::P384(k) => {
            let s: p384::ecdsa::Signature = k.sign_prehash(&hashed).map_err(key_err)?;
            (
                alg_id(md.ecdsa_oid(), false),
                s.to_der().as_bytes().to_vec(),
            )
        }
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: alg_id(md.oid(), true),
        signed_attrs: None,
        signature_algorithm: sig_alg,
        signature: OctetString::new(sig).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms
        .insert(alg_id(md.oid(), true))
        .map_err(der_err)?;
    let mut signers = SetOfVec::new();
    signers.insert(signer).map_err(der_err)?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_DATA,
            econtent: None,
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    let content = Any::encode_from(&signed).map_err(der_err)?;
    ContentInfo {
        content_type: OID_SIGNED_DATA,
        content,
    }
    .to_der()
    .map_err(der_err)
}

/// What a builtin signature says about itself (for display and checks).
#[derive(Debug, Clone)]
pub struct SignatureInfo {
    /// The decoded `SignedData`.
    pub signed_data: SignedData,
}

/// Parse a DER PKCS#7 builtin signature and check the shape the kernel needs: a
/// `SignedData` of detached `data` content with at least one signer.
pub fn parse_signature(der: &[u8]) -> Result<SignatureInfo> {
    let ci = ContentInfo::from_der(der).map_err(der_err)?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err(Error::Signature(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err)?;
    if sd.encap_content_info.econtent_type != OID_DATA {
        return Err(Error::Signature(format!(
            "signed content type {} is not data",
            sd.encap_content_info.econtent_type
        )));
    }
    if sd.encap_content_info.econtent.is_some() {
        return Err(Error::Signature(
            "signature is not detached (it carries content)".into(),
        ));
    }
    if sd.signer_infos.0.is_empty() {
        return Err(Error::Signature("no signers".into()));
    }
    Ok(SignatureInfo { signed_data: sd })
}

/// Verify a builtin signature of `digest` with `cert`'s public key, as the kernel does:
/// the signer named by `cert`'s issuer and serial number must have signed the formatted
/// digest (directly, or through signed attributes whose messageDigest matches). RSA and
/// ECDSA P-256/P-384; certificate validity dates are not checked (nor does the kernel).
pub fn verify(digest: &FileDigest, sig_der: &[u8], cert: &Certificate) -> Result<()> {
    let info = parse_signature(sig_der)?;
    let want_sid = IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    };
    let signer = info
        .signed_data
        .signer_infos
        .0
        .iter()
        .find(|s| matches!(&s.sid, SignerIdentifier::IssuerAndSerialNumber(i) if *i == want_sid))
        .ok_or_else(|| {
            Error::BadSignature("no signer matches the certificate's issuer and serial".into())
        })?;
    let md = Md::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        Error::Signature(format!(
            "unsupported digest algorithm {}",
            signer.digest_alg.oid
        ))
    })?;
    let content = digest.formatted();
    let signed_bytes = match &signer.signed_attrs {
        None => content,
        Some(attrs) => {
            let attr = |oid: Oid| attrs.iter().find(|a| a.oid == oid);
            let md_attr = attr(OID_MESSAGE_DIGEST)
                .ok_or_else(|| Error::Signature("signed attributes lack messageDigest".into()))?;
            let value = md_attr
                .values
                .iter()
                .next()
                .ok_or_else(|| Error::Signature("empty messageDigest attribute".into()))?;
            let got: OctetString = value.decode_as().map_err(der_err)?;
            if got.as_bytes() != md.hash(&content) {
                return Err(Error::BadSignature(
                    "messageDigest does not match the formatted digest".into(),
                ));
            }
            if let Some(ct) = attr(OID_CONTENT_TYPE) {
                let v: Option<Oid> = ct.values.iter().next().and_then(|v| v.decode_as().ok());
                if v != Some(OID_DATA) {
                    return Err(Error::Signature("contentType attribute is not data".into()));
                }
            }
            attrs.to_der().map_err(der_err)?
        }
    };
    let hashed = md.hash(&signed_bytes);
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let spki_der = spki.to_der().map_err(der_err)?;
    let sig = signer.signature.as_bytes();
    let bad = |e: &dyn std::fmt::Display| Error::BadSignature(e.to_string());
    let sig_oid = signer.signature_algorithm.oid;
    match spki.algorithm.oid {
        OID_RSA => {
            use rsa::pkcs8::DecodePublicKey;
            if ![OID_RSA, OID_SHA256_RSA, OID_SHA384_RSA, OID_SHA512_RSA].contains(&sig_oid) {
                return Err(Error::Signature(format!(
                    "signature algorithm {sig_oid} does not fit an RSA key"
                )));
            }
            let key = rsa::RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| bad(&e))?;
            key.verify(md.pkcs1v15(), &hashed, sig).map_err(|e| bad(&e))
        }
        OID_EC_PUBLIC_KEY => {
            use spki::DecodePublicKey;
            if ![OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_ECDSA_SHA512].contains(&sig_oid) {
                return Err(Error::Signature(format!(
                    "signature algorithm {sig_oid} does not fit an EC key"
                )));
            }
            let curve: Oid = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| Error::Signature("EC key without curve parameters".into()))?
                .decode_as()
                .map_err(der_err)?;
            match curve {
                OID_P256 => {
                    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                        .map_err(|e| bad(&e))?;
                    let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
                    key.verify_prehash(&hashed, &s).map_err(|e| bad(&e))
                }
                OID_P384 => {
                    let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                        .map_err(|e| bad(&e))?;
                    let s = p384::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
                    key.verify_prehash(&hashed, &s).map_err(|e| bad(&e))
                }
                other => Err(Error::Signature(format!("unsupported EC curve {other}"))),
            }
        }
        other => Err(Error::Signature(format!(
            "unsupported public key algorithm {other}"
        ))),
    }
}
