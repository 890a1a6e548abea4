//! Signing and verification keys, as evmctl and the kernel use them.
//!
//! * [`PrivateKey`]: PEM or DER, PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`),
//!   PKCS#8 (`PRIVATE KEY`) and password-encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`).
//!   A certificate in the same PEM file gives the key id (its SKID), as with the
//!   ima-evm-utils test keys.
//! * [`PublicKey`]: X.509 certificates (DER or PEM), `PUBLIC KEY` (SPKI) and
//!   `RSA PUBLIC KEY` (PKCS#1), or the public half of a private key file.
//! * [`KeyRing`]: several verification keys looked up by [`KeyId`], like the
//!   kernel's `.ima` keyring and evmctl's `--key a.der,b.der`.
//!
//! Algorithms: RSA PKCS#1 v1.5 over a DigestInfo, ECDSA on NIST P-192, P-224,
//! P-256, P-384 and P-521, and SM2 (32-byte digests, no `Z` prefix, as OpenSSL's
//! `EVP_PKEY_sign`), the latter two with DER `SEQUENCE { r, s }` signatures; all over a
//! digest computed by the caller ("prehashed"), as the kernel verifies them.

use std::fmt;
use std::ops::Add;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use ecdsa::elliptic_curve::{
    self, generic_array::ArrayLength, sec1::ToEncodedPoint, CurveArithmetic, FieldBytes,
    FieldBytesSize, NonZeroScalar, PrimeCurve,
};
use ecdsa::SignatureSize;
use pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPublicKey};
use sha1::Digest as _;

use crate::pem;
use crate::{Error, HashAlgo, Result};

/// A 32-bit key identifier: the last four bytes of the signer certificate's
/// subject key identifier, big-endian in the signature header. Shown as `%08x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;
    /// Parse hex as evmctl's `--keyid` does (optional `0x`, 1–8 digits, not zero).
    fn from_str(s: &str) -> Result<KeyId> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        match u32::from_str_radix(digits, 16) {
            Ok(v) if v != 0 && !digits.is_empty() => Ok(KeyId(v)),
            _ => Err(Error::Key {
                what: format!("keyid {s:?}"),
                reason: "not a non-zero 32-bit hex value".into(),
            }),
        }
    }
}

impl KeyId {
    /// The key id evmctl computes when no certificate is at hand: the last four
    /// bytes of SHA-1 over the subjectPublicKey BIT STRING contents (RSA: DER
    /// `RSAPublicKey`; EC: the uncompressed point), which is also OpenSSL's default
    /// SKID.
    pub fn from_public_key_bits(bits: &[u8]) -> KeyId {
        let h = sha1::Sha1::digest(bits);
        KeyId(u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
    }
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P192: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.1");
const OID_P224: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.33");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SM2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
/// The default SM2 distinguishing identifier (unused for prehashed signatures, but
/// part of the key objects).
const SM2_DISTID: &str = "1234567812345678";
const OID_SKID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// The curves vigil signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P192,
    P224,
    P256,
    P384,
    P521,
    /// SM2 (GB/T 32918), signing 32-byte digests (sm3) without the `Z` prefix, as
    /// OpenSSL's `EVP_PKEY_sign` and so evmctl do.
    Sm2,
}

impl Curve {
    fn from_oid(oid: &ObjectIdentifier, what: &str) -> Result<Curve> {
        Ok(match *oid {
            OID_P192 => Curve::P192,
            OID_P224 => Curve::P224,
            OID_P256 => Curve::P256,
            OID_P384 => Curve::P384,
            OID_P521 => Curve::P521,
            OID_SM2 => Curve::Sm2,
            _ => {
                return Err(Error::UnsupportedKey(format!(
                    "{what}: elliptic curve {}",
                    known_name(oid)
                )))
            }
        })
    }

    /// OpenSSL's name of the curve.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Curve::P192 => "prime192v1",
            Curve::P224 => "secp224r1",
            Curve::P256 => "prime256v1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
            Curve::Sm2 => "SM2",
        }
    }
}

#[derive(Clone)]
enum Public {
    Rsa(rsa::RsaPublicKey),
    P192(elliptic_curve::PublicKey<p192::NistP192>),
    P224(elliptic_curve::PublicKey<p224::NistP224>),
    P256(elliptic_curve::PublicKey<p256::NistP256>),
    P384(elliptic_curve::PublicKey<p384::NistP384>),
    P521(elliptic_curve::PublicKey<p521::NistP521>),
    Sm2(sm2::dsa::VerifyingKey),
}

#[derive(Clone)]
enum Secret {
    Rsa(Box<rsa::RsaPrivateKey>),
    P192(elliptic_curve::SecretKey<p192::NistP192>),
    P224(elliptic_curve::SecretKey<p224::NistP224>),
    P256(elliptic_curve::SecretKey<p256::NistP256>),
    P384(elliptic_curve::SecretKey<p384::NistP384>),
    P521(elliptic_curve::SecretKey<p521::NistP521>),
    Sm2(sm2::SecretKey),
}

/// Dispatch over the EC variants of [`Public`] or [`Secret`] with one generic body.
macro_rules! each_curve {
    ($enum:ident, $value:expr, $k:ident => $ec:expr, $rsa:ident => $rsa_body:expr, $s:ident => $sm2_body:expr) => {
        match $value {
            $enum::Rsa($rsa) => $rsa_body,
            $enum::Sm2($s) => $sm2_body,
            $enum::P192($k) => $ec,
            $enum::P224($k) => $ec,
            $enum::P256($k) => $ec,
            $enum::P384($k) => $ec,
            $enum::P521($k) => $ec,
        }
    };
}

impl Public {
    fn from_ec_point(curve: Curve, point: &[u8]) -> Result<Public> {
        let bad = |_| Error::Key {
            what: format!("{} public key", curve.openssl_name()),
            reason: "invalid curve point".into(),
        };
        Ok(match curve {
            Curve::P192 => {
                Public::P192(elliptic_curve::PublicKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P224 => {
                Public::P224(elliptic_curve::PublicKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P256 => {
                Public::P256(elliptic_curve::PublicKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P384 => {
                Public::P384(elliptic_curve::PublicKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P521 => {
                Public::P521(elliptic_curve::PublicKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::Sm2 => Public::Sm2(
                sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, point)
                    .map_err(|_| bad(elliptic_curve::Error))?,
            ),
        })
    }

    /// The subjectPublicKey bits OpenSSL would write for this key.
    fn key_bits(&self) -> Vec<u8> {
        each_curve!(Public, self,
            k => k.to_encoded_point(false).as_bytes().to_vec(),
            r => r.to_pkcs1_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
            s => s.as_affine().to_encoded_point(false).as_bytes().to_vec())
    }

    fn describe(&self) -> String {
        match self {
            Public::Rsa(r) => format!("RSA-{}", rsa::traits::PublicKeyParts::size(r) * 8),
            Public::P192(_) => "ECDSA prime192v1".into(),
            Public::P224(_) => "ECDSA secp224r1".into(),
            Public::P256(_) => "ECDSA prime256v1".into(),
            Public::P384(_) => "ECDSA secp384r1".into(),
            Public::P521(_) => "ECDSA secp521r1".into(),
            Public::Sm2(_) => "SM2".into(),
        }
    }
}

/// A verification key with its key id.
#[derive(Clone)]
pub struct PublicKey {
    key: Public,
    keyid: KeyId,
    computed_keyid: KeyId,
    source: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.key.describe())
            .field("keyid", &self.keyid)
            .field("source", &self.source)
            .finish()
    }
}

fn key_err(what: &str, reason: impl fmt::Display) -> Error {
    Error::Key {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

impl PublicKey {
    fn new(key: Public, skid: Option<KeyId>, source: &str) -> PublicKey {
        let computed_keyid = KeyId::from_public_key_bits(&key.key_bits());
        PublicKey {
            key,
            keyid: skid.unwrap_or(computed_keyid),
            computed_keyid,
            source: source.to_owned(),
        }
    }

    /// Parse a key or certificate file's contents: an X.509 certificate (DER or PEM),
    /// a `PUBLIC KEY`, an `RSA PUBLIC KEY`, or a private key (its public half).
    /// `what` names the input in error messages (usually the path).
    pub fn from_bytes(data: &[u8], what: &str) -> Result<PublicKey> {
        if pem::is_pem(data) {
            let blocks = pem::blocks(data).map_err(|e| key_err(what, e))?;
            for b in &blocks {
                match b.label.as_str() {
                    "CERTIFICATE" | "X509 CERTIFICATE" => return Self::from_cert_der(&b.der, what),
                    "PUBLIC KEY" => return Self::from_spki_der(&b.der, what),
                    "RSA PUBLIC KEY" => {
                        let k = rsa::RsaPublicKey::from_pkcs1_der(&b.der)
                            .map_err(|e| key_err(what, e))?;
                        return Ok(PublicKey::new(Public::Rsa(k), None, what));
                    }
                    _ => {}
                }
            }
            if blocks.iter().any(|b| b.label.ends_with("PRIVATE KEY")) {
                return Ok(PrivateKey::from_bytes(data, None, what)?.public_key());
            }
            return Err(key_err(what, "no certificate or public key in PEM file"));
        }
        for parse in [Self::from_cert_der, Self::from_spki_der] {
            match parse(data, what) {
                Err(Error::Key { .. }) => continue,
                // A key, or one that parsed but whose algorithm vigil lacks.
                r => return r,
            }
        }
        rsa::RsaPublicKey::from_pkcs1_der(data)
            .map(|k| PublicKey::new(Public::Rsa(k), None, what))
            .map_err(|_| key_err(what, "not an X.509 certificate or public key (DER or PEM)"))
    }

    /// Read and parse a key or certificate file (see [`PublicKey::from_bytes`]).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<PublicKey> {
        let path = path.as_ref();
        let data = read_key_file(path)?;
        PublicKey::from_bytes(&data, &path.display().to_string())
    }

    /// A DER X.509 certificate; the key id is the tail of its SKID if it has one.
    pub fn from_cert_der(der: &[u8], what: &str) -> Result<PublicKey> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| key_err(what, e))?;
        Self::from_cert(&cert, what)
    }

    fn from_cert(cert: &x509_cert::Certificate, what: &str) -> Result<PublicKey> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key = public_from_spki(spki, what)?;
        Ok(PublicKey::new(key, skid_of(cert), what))
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8], what: &str) -> Result<PublicKey> {
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| key_err(what, e))?;
        Ok(PublicKey::new(public_from_spki(&spki, what)?, None, what))
    }

    /// The key id signatures by this key carry (SKID tail, else computed).
    pub fn keyid(&self) -> KeyId {
        self.keyid
    }

    /// The key id computed from the public key alone (what evmctl ≤ 1.4 used).
    pub fn computed_keyid(&self) -> KeyId {
        self.computed_keyid
    }

    /// Where the key came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// "RSA-2048", "ECDSA prime256v1", …
    pub fn describe(&self) -> String {
        self.key.describe()
    }

    /// Verify raw signature bytes (RSA PKCS#1 v1.5 / ECDSA DER) over a digest made
    /// with `algo`.
    pub fn verify_digest(&self, algo: HashAlgo, digest: &[u8], sig: &[u8]) -> Result<()> {
        crate::xattr::check_digest_len(algo, digest)?;
        let fail = |reason: &str| Error::BadSignature {
            keyid: self.keyid,
            reason: reason.to_owned(),
        };
        match &self.key {
            Public::Rsa(k) => {
                let scheme = pkcs1v15(algo)?;
                k.verify(scheme, digest, sig)
                    .map_err(|_| fail("RSA PKCS#1 v1.5 signature does not match"))
            }
            Public::P192(k) => ec_verify(k, digest, sig).map_err(|e| fail(&e)),
            Public::P224(k) => ec_verify(k, digest, sig).map_err(|e| fail(&e)),
            Public::P256(k) => ec_verify(k, digest, sig).map_err(|e| fail(&e)),
            Public::P384(k) => ec_verify(k, digest, sig).map_err(|e| fail(&e)),
            Public::P521(k) => ec_verify(k, digest, sig).map_err(|e| fail(&e)),
            Public::Sm2(k) => sm2_verify(k, digest, sig).map_err(|e| fail(&e)),
        }
    }
}

/// The most a key, certificate or certificate bundle file may hold.
pub const MAX_KEY_FILE: u64 = 16 << 20;

/// Read a small file whole, at most `limit` bytes: a larger one (or an endless one
/// such as `/dev/zero`) is refused with `InvalidData` instead of filling memory.
pub fn read_at_most(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(data)
}

/// Read a key or certificate file (at most [`MAX_KEY_FILE`] bytes).
pub fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>> {
    read_at_most(path, MAX_KEY_FILE).map_err(|error| Error::Io {
        path: path.display().to_string(),
        error,
    })
}

/// An unsupported algorithm or curve for messages: its OID, with the name people
/// know it by where that is one of the usual suspects.
fn known_name(oid: &ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.643.7.1.1.1.1" | "1.2.643.7.1.1.1.2" => "GOST R 34.10-2012",
        _ => return oid.to_string(),
    };
    format!("{name} ({oid})")
}

fn public_from_spki(spki: &spki::SubjectPublicKeyInfoOwned, what: &str) -> Result<Public> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| key_err(what, "subjectPublicKey has unused bits"))?;
    match spki.algorithm.oid {
        OID_RSA => Ok(Public::Rsa(
            rsa::RsaPublicKey::from_pkcs1_der(bits).map_err(|e| key_err(what, e))?,
        )),
        OID_EC => {
            let curve_oid: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| key_err(what, "EC key without named curve"))?
                .decode_as()
                .map_err(|e| key_err(what, e))?;
            Public::from_ec_point(Curve::from_oid(&curve_oid, what)?, bits)
        }
        oid => Err(Error::UnsupportedKey(format!(
            "{what}: public key algorithm {}",
            known_name(&oid)
        ))),
    }
}

fn skid_of(cert: &x509_cert::Certificate) -> Option<KeyId> {
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == OID_SKID)?;
    let skid = der::asn1::OctetString::from_der(ext.extn_value.as_bytes()).ok()?;
    let b = skid.as_bytes();
    (b.len() >= 4).then(|| {
        KeyId(u32::from_be_bytes([
            b[b.len() - 4],
            b[b.len() - 3],
            b[b.len() - 2],
            b[b.len() - 1],
        ]))
    })
}

/// The DER bytes of an X.509 certificate file (DER, or the first `CERTIFICATE` of a
/// PEM file), checked to parse, with the parsed certificate.
fn read_cert(data: &[u8], what: &str) -> Result<(Vec<u8>, x509_cert::Certificate)> {
    let der = if pem::is_pem(data) {
        pem::blocks(data)
            .map_err(|e| key_err(what, e))?
            .into_iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| key_err(what, "no CERTIFICATE in PEM file"))?
            .der
    } else {
        data.to_vec()
    };
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| key_err(what, e))?;
    Ok((der, cert))
}

/// The key id in a certificate's SKID (evmctl `--keyid-from-cert`). DER or PEM.
pub fn keyid_from_cert(data: &[u8], what: &str) -> Result<KeyId> {
    let (_, cert) = read_cert(data, what)?;
    skid_of(&cert).ok_or_else(|| key_err(what, "certificate has no subject key identifier"))
}

/// A certificate file (DER or PEM) as the DER the kernel's `asymmetric` key type
/// parses, with its public key.
pub fn cert_der(data: &[u8], what: &str) -> Result<(Vec<u8>, PublicKey)> {
    let (der, cert) = read_cert(data, what)?;
    Ok((der, PublicKey::from_cert(&cert, what)?))
}

/// DER `DigestInfo` prefix for RSA PKCS#1 v1.5 (as OpenSSL and the kernel build it:
/// `SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING digest }`).
fn digest_info_oid(algo: HashAlgo) -> Option<&'static str> {
    use HashAlgo as A;
    // The algorithms with a DigestInfo template in both the kernel's pkcs1pad and
    // OpenSSL: a signature over any other could not be verified by either.
    Some(match algo {
        A::Md5 => "1.2.840.113549.2.5",
        A::Sha1 => "1.3.14.3.2.26",
        A::Rmd160 => "1.3.36.3.2.1",
        A::Sha224 => "2.16.840.1.101.3.4.2.4",
        A::Sha256 => "2.16.840.1.101.3.4.2.1",
        A::Sha384 => "2.16.840.1.101.3.4.2.2",
        A::Sha512 => "2.16.840.1.101.3.4.2.3",
        A::Sha3_256 => "2.16.840.1.101.3.4.2.8",
        A::Sha3_384 => "2.16.840.1.101.3.4.2.9",
        A::Sha3_512 => "2.16.840.1.101.3.4.2.10",
        _ => return None,
    })
}

fn pkcs1v15(algo: HashAlgo) -> Result<rsa::Pkcs1v15Sign> {
    let oid = ObjectIdentifier::new(digest_info_oid(algo).ok_or(Error::NoDigestInfo(algo))?)
        .map_err(|_| Error::NoDigestInfo(algo))?;
    let oid_der = oid.to_der().map_err(|_| Error::NoDigestInfo(algo))?;
    let len = algo.digest_len();
    let alg_len = oid_der.len() + 2;
    let mut prefix = vec![0x30, (alg_len + 2 + 2 + len) as u8, 0x30, alg_len as u8];
    prefix.extend_from_slice(&oid_der);
    prefix.extend_from_slice(&[0x05, 0x00, 0x04, len as u8]);
    Ok(rsa::Pkcs1v15Sign {
        hash_len: Some(len),
        prefix: prefix.into_boxed_slice(),
    })
}

/// The digest as an integer in the curve's field, as OpenSSL's `bits2int` takes it:
/// leftmost bytes if longer than the order, zero-extended on the left if shorter.
fn digest_to_field<C: PrimeCurve>(digest: &[u8]) -> FieldBytes<C> {
    let mut fb = FieldBytes::<C>::default();
    let n = fb.len();
    if digest.len() >= n {
        fb.copy_from_slice(&digest[..n]);
    } else {
        fb[n - digest.len()..].copy_from_slice(digest);
    }
    fb
}

fn ec_verify<C>(
    key: &elliptic_curve::PublicKey<C>,
    digest: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String>
where
    C: PrimeCurve + CurveArithmetic,
    SignatureSize<C>: ArrayLength<u8>,
    ecdsa::der::MaxSize<C>: ArrayLength<u8>,
    <FieldBytesSize<C> as Add>::Output: Add<ecdsa::der::MaxOverhead> + ArrayLength<u8>,
{
    let sig = ecdsa::Signature::<C>::from_der(sig)
        .map_err(|_| "malformed ECDSA DER signature".to_string())?;
    ecdsa::hazmat::verify_prehashed::<C>(&key.to_projective(), &digest_to_field::<C>(digest), &sig)
        .map_err(|_| "ECDSA signature does not match".to_string())
}

fn ec_sign<C>(key: &elliptic_curve::SecretKey<C>, digest: &[u8]) -> Result<Vec<u8>>
where
    C: PrimeCurve + CurveArithmetic,
    SignatureSize<C>: ArrayLength<u8>,
    ecdsa::der::MaxSize<C>: ArrayLength<u8>,
    <FieldBytesSize<C> as Add>::Output: Add<ecdsa::der::MaxOverhead> + ArrayLength<u8>,
{
    let z = digest_to_field::<C>(digest);
    let d = key.to_nonzero_scalar();
    // A random nonce, as OpenSSL (and so evmctl) uses; retry on the negligible
    // chance of r or s being zero.
    for _ in 0..16 {
        let k = NonZeroScalar::<C>::random(&mut rand_core::OsRng);
        if let Ok((sig, _)) = ecdsa::hazmat::sign_prehashed::<C, _>(d.as_ref(), *k, &z) {
            return Ok(sig.to_der().as_bytes().to_vec());
        }
    }
    Err(Error::Sign("ECDSA produced no valid signature".into()))
}

/// SM2 signatures are over a 32-byte digest used directly as `e` (no `Z` prefix).
fn sm2_check_len(digest: &[u8]) -> std::result::Result<(), String> {
    if digest.len() != 32 {
        return Err(format!(
            "SM2 signs 32-byte digests (sm3), not {} bytes",
            digest.len()
        ));
    }
    Ok(())
}

fn sm2_sign(key: &sm2::SecretKey, digest: &[u8]) -> Result<Vec<u8>> {
    use signature::hazmat::RandomizedPrehashSigner;
    sm2_check_len(digest).map_err(Error::Sign)?;
    let sk = sm2::dsa::SigningKey::new(SM2_DISTID, key).map_err(|e| Error::Sign(e.to_string()))?;
    let sig = sk
        .sign_prehash_with_rng(&mut rand_core::OsRng, digest)
        .map_err(|e| Error::Sign(e.to_string()))?;
    let sig = ecdsa::Signature::<sm2::Sm2>::from_slice(&sig.to_bytes())
        .map_err(|e| Error::Sign(e.to_string()))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

fn sm2_verify(
    key: &sm2::dsa::VerifyingKey,
    digest: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    use signature::hazmat::PrehashVerifier;
    sm2_check_len(digest)?;
    let der = ecdsa::Signature::<sm2::Sm2>::from_der(sig)
        .map_err(|_| "malformed SM2 DER signature".to_string())?;
    let sig = sm2::dsa::Signature::from_slice(&der.to_bytes())
        .map_err(|_| "malformed SM2 signature".to_string())?;
    key.verify_prehash(digest, &sig)
        .map_err(|_| "SM2 signature does not match".to_string())
}

/// A signing key with the key id its signatures carry.
#[derive(Clone)]
pub struct PrivateKey {
    key: Secret,
    keyid: KeyId,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.public_key().describe())
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Read and parse a private key file; `pass` decrypts an encrypted PKCS#8 key.
    pub fn load(path: impl AsRef<std::path::Path>, pass: Option<&str>) -> Result<PrivateKey> {
        let path = path.as_ref();
        let data = read_key_file(path)?;
        PrivateKey::from_bytes(&data, pass.map(str::as_bytes), &path.display().to_string())
    }

    /// Parse a private key (PEM or DER; PKCS#1, SEC1, PKCS#8, encrypted PKCS#8).
    /// A `CERTIFICATE` in the same PEM file supplies the key id.
    pub fn from_bytes(data: &[u8], pass: Option<&[u8]>, what: &str) -> Result<PrivateKey> {
        if !pem::is_pem(data) {
            let key = secret_from_der(data, pass, what)?;
            return Ok(PrivateKey::with_computed_keyid(key));
        }
        let blocks = pem::blocks(data).map_err(|e| key_err(what, e))?;
        let mut key = None;
        let mut skid = None;
        let mut ec_params: Option<ObjectIdentifier> = None;
        for b in &blocks {
            match b.label.as_str() {
                "CERTIFICATE" if skid.is_none() => {
                    let cert =
                        x509_cert::Certificate::from_der(&b.der).map_err(|e| key_err(what, e))?;
                    skid = skid_of(&cert);
                }
                "EC PARAMETERS" => ec_params = ObjectIdentifier::from_der(&b.der).ok(),
                label if label.ends_with("PRIVATE KEY") && key.is_none() => {
                    if b.headers
                        .iter()
                        .any(|(k, _)| k == "Proc-Type" || k == "DEK-Info")
                    {
                        return Err(Error::UnsupportedKey(format!(
                            "{what}: legacy PEM encryption (DEK-Info); convert with `openssl pkey -aes256`"
                        )));
                    }
                    key = Some(match label {
                        "RSA PRIVATE KEY" => Secret::Rsa(Box::new(
                            rsa::RsaPrivateKey::from_pkcs1_der(&b.der)
                                .map_err(|e| key_err(what, e))?,
                        )),
                        "EC PRIVATE KEY" => secret_from_sec1(&b.der, ec_params.as_ref(), what)?,
                        "PRIVATE KEY" => secret_from_pkcs8(&b.der, what)?,
                        "ENCRYPTED PRIVATE KEY" => secret_from_encrypted(&b.der, pass, what)?,
                        other => {
                            return Err(Error::UnsupportedKey(format!("{what}: PEM {other:?}")))
                        }
                    });
                }
                _ => {}
            }
        }
        let key = key.ok_or_else(|| key_err(what, "no private key in PEM file"))?;
        let mut k = PrivateKey::with_computed_keyid(key);
        if let Some(id) = skid {
            k.keyid = id;
        }
        Ok(k)
    }

    fn with_computed_keyid(key: Secret) -> PrivateKey {
        let mut k = PrivateKey {
            key,
            keyid: KeyId(0),
        };
        k.keyid = KeyId::from_public_key_bits(&k.public().key_bits());
        k
    }

    fn public(&self) -> Public {
        match &self.key {
            Secret::Rsa(r) => Public::Rsa(r.to_public_key()),
            Secret::P192(k) => Public::P192(k.public_key()),
            Secret::P224(k) => Public::P224(k.public_key()),
            Secret::P256(k) => Public::P256(k.public_key()),
            Secret::P384(k) => Public::P384(k.public_key()),
            Secret::P521(k) => Public::P521(k.public_key()),
            Secret::Sm2(k) => Public::Sm2(
                sm2::dsa::VerifyingKey::new(SM2_DISTID, k.public_key())
                    .expect("an SM2 public key of a valid secret key"),
            ),
        }
    }

    /// The public half, with the same key id.
    pub fn public_key(&self) -> PublicKey {
        let mut p = PublicKey::new(self.public(), Some(self.keyid), "private key");
        p.keyid = self.keyid;
        p
    }

    /// The key id put into signature headers.
    pub fn keyid(&self) -> KeyId {
        self.keyid
    }

    /// Override the key id (evmctl `--keyid`, `--keyid-from-cert`).
    pub fn set_keyid(&mut self, keyid: KeyId) {
        self.keyid = keyid;
    }

    /// Raw signature bytes over `digest` (made with `algo`): RSA PKCS#1 v1.5 over
    /// DigestInfo (deterministic), or ECDSA as DER `SEQUENCE { r, s }`.
    pub fn sign_raw(&self, algo: HashAlgo, digest: &[u8]) -> Result<Vec<u8>> {
        crate::xattr::check_digest_len(algo, digest)?;
        each_curve!(Secret, &self.key,
            k => ec_sign(k, digest),
            r => r.sign(pkcs1v15(algo)?, digest).map_err(|e| Error::Sign(e.to_string())),
            k => sm2_sign(k, digest))
    }
}

fn secret_from_sec1(der: &[u8], params: Option<&ObjectIdentifier>, what: &str) -> Result<Secret> {
    let ec = sec1::EcPrivateKey::from_der(der).map_err(|e| key_err(what, e))?;
    let oid = ec
        .parameters
        .and_then(|p| p.named_curve())
        .or(params.copied())
        .ok_or_else(|| key_err(what, "EC private key without named curve"))?;
    secret_from_scalar(Curve::from_oid(&oid, what)?, ec.private_key, what)
}

fn secret_from_scalar(curve: Curve, bytes: &[u8], what: &str) -> Result<Secret> {
    let bad = |_| key_err(what, "invalid EC private scalar");
    Ok(match curve {
        Curve::P192 => Secret::P192(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
        Curve::P224 => Secret::P224(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
        Curve::P256 => Secret::P256(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
        Curve::P384 => Secret::P384(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
        Curve::P521 => Secret::P521(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
        Curve::Sm2 => Secret::Sm2(elliptic_curve::SecretKey::from_slice(bytes).map_err(bad)?),
    })
}

fn secret_from_pkcs8(der: &[u8], what: &str) -> Result<Secret> {
    let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| key_err(what, e))?;
    match info.algorithm.oid {
        OID_RSA => Ok(Secret::Rsa(Box::new(
            rsa::RsaPrivateKey::from_pkcs1_der(info.private_key).map_err(|e| key_err(what, e))?,
        ))),
        OID_EC => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| key_err(what, "EC key without named curve"))?;
            secret_from_sec1(info.private_key, Some(&curve), what)
        }
        oid => Err(Error::UnsupportedKey(format!(
            "{what}: private key algorithm {}",
            known_name(&oid)
        ))),
    }
}

fn secret_from_encrypted(der: &[u8], pass: Option<&[u8]>, what: &str) -> Result<Secret> {
    let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| key_err(what, e))?;
    let pass = pass.ok_or_else(|| Error::KeyPassword {
        what: what.to_owned(),
        reason: "the key is encrypted: give a password (--pass or EVMCTL_KEY_PASSWORD)".into(),
    })?;
    let doc = enc.decrypt(pass).map_err(|e| Error::KeyPassword {
        what: what.to_owned(),
        reason: format!("cannot decrypt the key (wrong password?): {e}"),
    })?;
    secret_from_pkcs8(doc.as_bytes(), what)
}

fn secret_from_der(der: &[u8], pass: Option<&[u8]>, what: &str) -> Result<Secret> {
    if pkcs8::PrivateKeyInfo::from_der(der).is_ok() {
        return secret_from_pkcs8(der, what);
    }
    if pkcs8::EncryptedPrivateKeyInfo::from_der(der).is_ok() {
        return secret_from_encrypted(der, pass, what);
    }
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_der(der) {
        return Ok(Secret::Rsa(Box::new(k)));
    }
    if sec1::EcPrivateKey::from_der(der).is_ok() {
        return secret_from_sec1(der, None, what);
    }
    Err(key_err(
        what,
        "not a private key (PEM or DER: PKCS#1, SEC1, PKCS#8)",
    ))
}

/// A set of verification keys looked up by key id.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<PublicKey>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Load every file of a comma-separated list, as evmctl's `--key a,b,c`.
    pub fn load_list(list: &str) -> Result<KeyRing> {
        let mut ring = KeyRing::new();
        for path in list.split(',').filter(|p| !p.is_empty()) {
            ring.add(PublicKey::load(path)?);
        }
        Ok(ring)
    }

    /// Add a key.
    pub fn add(&mut self, key: PublicKey) {
        self.keys.push(key);
    }

    /// The keys, in the order added.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The key for `keyid`: matched against the certificate SKID tail first, then
    /// against the id computed from the public key (evmctl ≤ 1.4 behaviour).
    pub fn find(&self, keyid: KeyId) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|k| k.keyid == keyid)
            .or_else(|| self.keys.iter().find(|k| k.computed_keyid == keyid))
    }

    /// Verify a signature value (`security.ima`/`security.evm` bytes or a `.sig`
    /// file) against `digest`, the measured value: the file hash for v2 IMA
    /// signatures, the fs-verity digest for type 0x06, the EVM metadata hash for
    /// EVM signatures. For v3 the `ima_file_id` is built and hashed here.
    /// Returns the key id of the key that verified it.
    pub fn verify(&self, sig: &[u8], digest: &[u8]) -> Result<KeyId> {
        self.verify_signature(&crate::Signature::decode(sig)?, digest)
    }

    /// [`KeyRing::verify`] for an already decoded signature.
    pub fn verify_signature(&self, sig: &crate::Signature, digest: &[u8]) -> Result<KeyId> {
        crate::xattr::check_digest_len(sig.hash_algo, digest)?;
        let key = self.find(sig.keyid).ok_or(Error::UnknownKeyId(sig.keyid))?;
        let signed = crate::sig::signed_digest(sig.xattr_type, sig.version, sig.hash_algo, digest)?;
        key.verify_digest(sig.hash_algo, &signed, &sig.sig)?;
        Ok(sig.keyid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyid_parsing() {
        assert_eq!("aabbccdd".parse::<KeyId>().unwrap(), KeyId(0xaabbccdd));
        assert_eq!("0x12345678".parse::<KeyId>().unwrap(), KeyId(0x12345678));
        assert!("0".parse::<KeyId>().is_err());
        assert!("123456789".parse::<KeyId>().is_err());
        assert!("xyz".parse::<KeyId>().is_err());
        assert_eq!(KeyId(0x4539545a).to_string(), "4539545a");
    }

    #[test]
    fn digest_info_prefixes_match_evmctl() {
        // The fixed templates in ima-evm-utils / the kernel's rsa-pkcs1pad.
        assert_eq!(
            hex::encode(pkcs1v15(HashAlgo::Sha256).unwrap().prefix),
            "3031300d060960864801650304020105000420"
        );
        assert_eq!(
            hex::encode(pkcs1v15(HashAlgo::Sha1).unwrap().prefix),
            "3021300906052b0e03021a05000414"
        );
        assert_eq!(
            hex::encode(pkcs1v15(HashAlgo::Md5).unwrap().prefix),
            "3020300c06082a864886f70d020505000410"
        );
        assert!(matches!(
            pkcs1v15(HashAlgo::Tgr192),
            Err(Error::NoDigestInfo(_))
        ));
    }

    #[test]
    fn ec_spki_vector_keyid() {
        // ima.md §4.3: P-256 SPKI; its default SKID tail is 4539545a.
        let spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d0301070342000464726498be0c17756a5537be34c149ee3f038a1278a5dd38307f81d317df4f5a0fdd365e55800fe93261a1edd118bccaf643e1670105a2a1ec6c6090c383b1c7").unwrap();
        let k = PublicKey::from_spki_der(&spki, "vector").unwrap();
        assert_eq!(k.keyid(), KeyId(0x4539545a));
        let sig = hex::decode("304402207371704c799a23f4eb9eb0c944de24047bcba592472bac491beb24a2e381f41b02203e75373053ab998e5af6314e2884521a32e8a4643c787e3d95b21a52cedb627c").unwrap();
        let digest = HashAlgo::Sha256.digest(b"Hello, IMA!\n").unwrap();
        k.verify_digest(HashAlgo::Sha256, &digest, &sig).unwrap();
        let mut bad = digest.clone();
        bad[0] ^= 1;
        assert!(matches!(
            k.verify_digest(HashAlgo::Sha256, &bad, &sig),
            Err(Error::BadSignature { .. })
        ));
    }
}
