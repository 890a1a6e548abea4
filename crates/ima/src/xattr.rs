//! `security.ima` and `security.evm` values (`enum evm_ima_xattr_type`) and the
//! signature header (`struct signature_v2_hdr`), with exact validation.
//!
//! Layouts (all multi-byte header fields big-endian):
//! ```text
//! 01 digest                         IMA_XATTR_DIGEST     (md5 or sha1, length-inferred)
//! 02 hmac[20]                       EVM_XATTR_HMAC       (HMAC-SHA1)
//! 03 ver algo keyid[4] size[2] sig  EVM_IMA_XATTR_DIGSIG (v2 or v3)
//! 04 algo digest                    IMA_XATTR_DIGEST_NG
//! 05 ver algo keyid[4] size[2] sig  EVM_XATTR_PORTABLE_DIGSIG
//! 06 03  algo keyid[4] size[2] sig  IMA_VERITY_DIGSIG    (v3 over an fs-verity digest)
//! ```
//! The type byte is not part of the kernel's `signature_v2_hdr`; [`SignatureV2Header`]
//! is the 8 bytes after it, [`Signature`] the whole value.

use crate::keys::KeyId;
use crate::{Error, HashAlgo, Result};

/// The type byte of a `security.ima`/`security.evm` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum XattrType {
    /// `IMA_XATTR_DIGEST`: 0x01 + md5/sha1 digest, algorithm inferred from the length.
    ImaDigest = 1,
    /// `EVM_XATTR_HMAC`: 0x02 + HMAC-SHA1 over the EVM metadata.
    EvmHmac = 2,
    /// `EVM_IMA_XATTR_DIGSIG`: a signature (IMA file signature or EVM signature).
    DigSig = 3,
    /// `IMA_XATTR_DIGEST_NG`: 0x04 + algorithm id + digest.
    ImaDigestNg = 4,
    /// `EVM_XATTR_PORTABLE_DIGSIG`: EVM portable signature.
    EvmPortableDigSig = 5,
    /// `IMA_VERITY_DIGSIG`: v3 signature over an fs-verity file digest.
    ImaVeritySig = 6,
}

impl XattrType {
    /// The type with byte value `b`.
    pub fn from_u8(b: u8) -> Result<XattrType> {
        Ok(match b {
            1 => XattrType::ImaDigest,
            2 => XattrType::EvmHmac,
            3 => XattrType::DigSig,
            4 => XattrType::ImaDigestNg,
            5 => XattrType::EvmPortableDigSig,
            6 => XattrType::ImaVeritySig,
            _ => return Err(Error::UnknownXattrType(b)),
        })
    }

    /// Whether values of this type carry a signature header.
    pub fn is_signature(self) -> bool {
        matches!(
            self,
            XattrType::DigSig | XattrType::EvmPortableDigSig | XattrType::ImaVeritySig
        )
    }

    /// The kernel's name of the type.
    pub fn kernel_name(self) -> &'static str {
        match self {
            XattrType::ImaDigest => "IMA_XATTR_DIGEST",
            XattrType::EvmHmac => "EVM_XATTR_HMAC",
            XattrType::DigSig => "EVM_IMA_XATTR_DIGSIG",
            XattrType::ImaDigestNg => "IMA_XATTR_DIGEST_NG",
            XattrType::EvmPortableDigSig => "EVM_XATTR_PORTABLE_DIGSIG",
            XattrType::ImaVeritySig => "IMA_VERITY_DIGSIG",
        }
    }
}

/// Length of the signature header including the type byte.
pub const SIG_HEADER_LEN: usize = 9;

/// `struct signature_v2_hdr` (packed, 8 bytes): what follows the type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureV2Header {
    /// Signature format version: 2 (over the digest) or 3 (over an `ima_file_id`).
    pub version: u8,
    /// Hash algorithm of the signed digest.
    pub hash_algo: HashAlgo,
    /// Last 4 bytes of the signing certificate's subject key identifier.
    pub keyid: KeyId,
    /// Number of signature bytes that follow.
    pub sig_size: u16,
}

impl SignatureV2Header {
    /// The 8 header bytes.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.version;
        b[1] = self.hash_algo as u8;
        b[2..6].copy_from_slice(&self.keyid.0.to_be_bytes());
        b[6..8].copy_from_slice(&self.sig_size.to_be_bytes());
        b
    }
}

/// A complete signature value: type byte, header, signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// 0x03, 0x05 or 0x06.
    pub xattr_type: XattrType,
    /// 2 or 3 (0x06 is always 3).
    pub version: u8,
    /// Hash algorithm of the signed digest (and of the `ima_file_id` hash for v3).
    pub hash_algo: HashAlgo,
    /// Key id of the signer.
    pub keyid: KeyId,
    /// RSA: PKCS#1 v1.5 signature; ECDSA: DER `SEQUENCE { r, s }`.
    pub sig: Vec<u8>,
}

impl Signature {
    /// Decode a signature value (`security.ima` of type 0x03/0x06, `security.evm` of
    /// type 0x03/0x05, or a `.sig` file), checking the type, version, algorithm and
    /// that `sig_size` equals the number of bytes that follow the header.
    pub fn decode(bytes: &[u8]) -> Result<Signature> {
        let &t = bytes.first().ok_or(Error::EmptyXattr)?;
        let xattr_type = XattrType::from_u8(t)?;
        if !xattr_type.is_signature() {
            return Err(Error::XattrLength {
                kind: xattr_type.kernel_name(),
                len: bytes.len(),
                expected: "a signature type (0x03, 0x05 or 0x06)".into(),
            });
        }
        if bytes.len() < SIG_HEADER_LEN {
            return Err(Error::SigTruncated { len: bytes.len() });
        }
        let version = bytes[1];
        let version_ok = match xattr_type {
            XattrType::ImaVeritySig => version == 3,
            _ => version == 2 || version == 3,
        };
        if !version_ok {
            return Err(Error::SigVersion {
                version,
                xattr_type: t,
            });
        }
        let hash_algo = HashAlgo::from_id(bytes[2])?;
        let keyid = KeyId(u32::from_be_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]));
        let declared = u16::from_be_bytes([bytes[7], bytes[8]]);
        let actual = bytes.len() - SIG_HEADER_LEN;
        if usize::from(declared) != actual {
            return Err(Error::SigSize { declared, actual });
        }
        if actual == 0 {
            return Err(Error::EmptySignature);
        }
        Ok(Signature {
            xattr_type,
            version,
            hash_algo,
            keyid,
            sig: bytes[SIG_HEADER_LEN..].to_vec(),
        })
    }

    /// The header after the type byte.
    pub fn header(&self) -> SignatureV2Header {
        SignatureV2Header {
            version: self.version,
            hash_algo: self.hash_algo,
            keyid: self.keyid,
            sig_size: self.sig.len() as u16,
        }
    }

    /// The value bytes, as written to the xattr or `.sig` file.
    ///
    /// # Panics
    /// If the signature is longer than 65535 bytes (no supported key produces one).
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.sig.len() <= usize::from(u16::MAX),
            "signature too long"
        );
        let mut out = Vec::with_capacity(SIG_HEADER_LEN + self.sig.len());
        out.push(self.xattr_type as u8);
        out.extend_from_slice(&self.header().encode());
        out.extend_from_slice(&self.sig);
        out
    }
}

/// A decoded `security.ima` or `security.evm` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImaXattr {
    /// 0x01: md5 or sha1 digest (the kernel infers the algorithm from the length).
    Digest { algo: HashAlgo, digest: Vec<u8> },
    /// 0x02: EVM HMAC-SHA1.
    Hmac(Vec<u8>),
    /// 0x04: digest with explicit algorithm id.
    DigestNg { algo: HashAlgo, digest: Vec<u8> },
    /// 0x03, 0x05, 0x06: a signature.
    Signature(Signature),
}

impl ImaXattr {
    /// The hash value evmctl and the kernel write for `algo`: type 0x01 for md4, md5
    /// and sha1 (ids ≤ 2), else type 0x04 with the algorithm id.
    pub fn from_digest(algo: HashAlgo, digest: Vec<u8>) -> Result<ImaXattr> {
        check_digest_len(algo, &digest)?;
        Ok(if (algo as u8) <= HashAlgo::Sha1 as u8 {
            ImaXattr::Digest { algo, digest }
        } else {
            ImaXattr::DigestNg { algo, digest }
        })
    }

    /// Decode any value, validating lengths, algorithms and signature headers.
    pub fn decode(bytes: &[u8]) -> Result<ImaXattr> {
        let &t = bytes.first().ok_or(Error::EmptyXattr)?;
        let body = &bytes[1..];
        match XattrType::from_u8(t)? {
            XattrType::ImaDigest => {
                // Kernel ima_get_hash_algo(): 21 bytes = sha1, unless the last four
                // bytes are zero (an md5 digest padded into a sha1-sized buffer);
                // 17 bytes = md5.
                let (algo, digest) = match body.len() {
                    20 if body[16..] == [0; 4] => (HashAlgo::Md5, &body[..16]),
                    20 => (HashAlgo::Sha1, body),
                    16 => (HashAlgo::Md5, body),
                    len => {
                        return Err(Error::XattrLength {
                            kind: "IMA_XATTR_DIGEST",
                            len: len + 1,
                            expected: "17 (md5) or 21 (sha1)".into(),
                        })
                    }
                };
                Ok(ImaXattr::Digest {
                    algo,
                    digest: digest.to_vec(),
                })
            }
            XattrType::EvmHmac => {
                if body.len() != 20 {
                    return Err(Error::XattrLength {
                        kind: "EVM_XATTR_HMAC",
                        len: bytes.len(),
                        expected: "21".into(),
                    });
                }
                Ok(ImaXattr::Hmac(body.to_vec()))
            }
            XattrType::ImaDigestNg => {
                let &id = body.first().ok_or(Error::XattrLength {
                    kind: "IMA_XATTR_DIGEST_NG",
                    len: bytes.len(),
                    expected: "2 + digest length".into(),
                })?;
                let algo = HashAlgo::from_id(id)?;
                if body.len() - 1 != algo.digest_len() {
                    return Err(Error::XattrLength {
                        kind: "IMA_XATTR_DIGEST_NG",
                        len: bytes.len(),
                        expected: format!("{} for {algo}", 2 + algo.digest_len()),
                    });
                }
                Ok(ImaXattr::DigestNg {
                    algo,
                    digest: body[1..].to_vec(),
                })
            }
            XattrType::DigSig | XattrType::EvmPortableDigSig | XattrType::ImaVeritySig => {
                Signature::decode(bytes).map(ImaXattr::Signature)
            }
        }
    }

    /// The value bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ImaXattr::Digest { digest, .. } => [&[1u8][..], digest].concat(),
            ImaXattr::Hmac(h) => [&[2u8][..], h].concat(),
            ImaXattr::DigestNg { algo, digest } => [&[4u8, *algo as u8][..], digest].concat(),
            ImaXattr::Signature(s) => s.encode(),
        }
    }

    /// The type byte.
    pub fn xattr_type(&self) -> XattrType {
        match self {
            ImaXattr::Digest { .. } => XattrType::ImaDigest,
            ImaXattr::Hmac(_) => XattrType::EvmHmac,
            ImaXattr::DigestNg { .. } => XattrType::ImaDigestNg,
            ImaXattr::Signature(s) => s.xattr_type,
        }
    }

    /// The hash algorithm appraisal uses for this value (HMAC: sha1).
    pub fn hash_algo(&self) -> HashAlgo {
        match self {
            ImaXattr::Digest { algo, .. } | ImaXattr::DigestNg { algo, .. } => *algo,
            ImaXattr::Hmac(_) => HashAlgo::Sha1,
            ImaXattr::Signature(s) => s.hash_algo,
        }
    }
}

/// Check that `digest` has `algo`'s length.
pub(crate) fn check_digest_len(algo: HashAlgo, digest: &[u8]) -> Result<()> {
    if digest.len() != algo.digest_len() {
        return Err(Error::DigestLength {
            algo,
            expected: algo.digest_len(),
            len: digest.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn hash_values_roundtrip() {
        let v = h("0404ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let x = ImaXattr::decode(&v).unwrap();
        assert_eq!(x.hash_algo(), HashAlgo::Sha256);
        assert_eq!(x.encode(), v);
        let v = h("016a54d7c56815adcb6e0624b6703eea63a16ae9b9");
        let x = ImaXattr::decode(&v).unwrap();
        assert_eq!(x.hash_algo(), HashAlgo::Sha1);
        assert_eq!(x.encode(), v);
        let md5 = HashAlgo::Md5.digest(b"abc").unwrap();
        let x = ImaXattr::from_digest(HashAlgo::Md5, md5.clone()).unwrap();
        assert_eq!(x.encode()[0], 1);
        assert_eq!(ImaXattr::decode(&x.encode()).unwrap(), x);
        let mut padded = vec![1u8];
        padded.extend_from_slice(&md5);
        padded.extend_from_slice(&[0; 4]);
        let x = ImaXattr::decode(&padded).unwrap();
        assert_eq!(x.hash_algo(), HashAlgo::Md5);
        // The canonical form drops the padding (found by the ima_xattr fuzz target).
        assert_eq!(x.encode().len(), 17);
        assert_eq!(ImaXattr::decode(&x.encode()).unwrap(), x);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(ImaXattr::decode(&[]), Err(Error::EmptyXattr)));
        assert!(matches!(
            ImaXattr::decode(&[7, 1, 2]),
            Err(Error::UnknownXattrType(7))
        ));
        assert!(matches!(
            ImaXattr::decode(&[1, 2, 3]),
            Err(Error::XattrLength { .. })
        ));
        assert!(matches!(
            ImaXattr::decode(&[4, 4, 0, 0]),
            Err(Error::XattrLength { .. })
        ));
        assert!(matches!(
            ImaXattr::decode(&[4, 99]),
            Err(Error::UnknownHashId(99))
        ));
        let good = h("030204967db4720002aabb");
        assert!(ImaXattr::decode(&good).is_ok());
        assert!(matches!(
            ImaXattr::decode(&good[..10]),
            Err(Error::SigSize {
                declared: 2,
                actual: 1
            })
        ));
        assert!(matches!(
            ImaXattr::decode(&good[..5]),
            Err(Error::SigTruncated { len: 5 })
        ));
        let mut v1 = good.clone();
        v1[1] = 1;
        assert!(matches!(
            ImaXattr::decode(&v1),
            Err(Error::SigVersion { version: 1, .. })
        ));
        let mut verity_v2 = good.clone();
        verity_v2[0] = 6;
        assert!(matches!(
            ImaXattr::decode(&verity_v2),
            Err(Error::SigVersion { version: 2, .. })
        ));
        let mut bad_algo = good.clone();
        bad_algo[2] = 23;
        assert!(matches!(
            ImaXattr::decode(&bad_algo),
            Err(Error::UnknownHashId(23))
        ));
        assert!(matches!(
            ImaXattr::decode(&h("030204967db4720000")),
            Err(Error::EmptySignature)
        ));
    }

    #[test]
    fn signature_roundtrip() {
        let v = h("060304967db4720003010203");
        let s = Signature::decode(&v).unwrap();
        assert_eq!(s.version, 3);
        assert_eq!(s.keyid, KeyId(0x967db472));
        assert_eq!(s.header().sig_size, 3);
        assert_eq!(s.encode(), v);
    }
}
