//! Making signatures: v2 (over the measured digest) and v3 (over the hash of an
//! `ima_file_id`), and the digest each version actually signs.

use crate::keys::PrivateKey;
use crate::xattr::{check_digest_len, Signature, XattrType};
use crate::{Error, HashAlgo, Hasher, Result};

/// `struct ima_file_id { u8 hash_type; u8 hash_algorithm; u8 hash[]; }`: what a v3
/// signature covers, hashed over its used part (2 + digest length bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaFileId<'a> {
    /// The xattr type of the signature: 0x06 for an fs-verity digest, 0x03 for a
    /// regular file hash, 0x05 for an EVM portable signature.
    pub hash_type: XattrType,
    /// Algorithm of `hash` (and of the hash over the id).
    pub hash_algo: HashAlgo,
    /// The measured digest.
    pub hash: &'a [u8],
}

impl ImaFileId<'_> {
    /// The bytes that are hashed: `hash_type ‖ hash_algorithm ‖ hash`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(2 + self.hash.len());
        b.push(self.hash_type as u8);
        b.push(self.hash_algo as u8);
        b.extend_from_slice(self.hash);
        b
    }

    /// `H(ima_file_id[0 .. 2 + digest_len))`, the digest a v3 signature signs.
    pub fn digest(&self) -> Result<Vec<u8>> {
        check_digest_len(self.hash_algo, self.hash)?;
        let mut h = Hasher::new(self.hash_algo)?;
        h.update(&[self.hash_type as u8, self.hash_algo as u8]);
        h.update(self.hash);
        Ok(h.finalize())
    }
}

/// The digest a signature of `version` actually signs, given the measured `digest`.
pub(crate) fn signed_digest(
    xattr_type: XattrType,
    version: u8,
    algo: HashAlgo,
    digest: &[u8],
) -> Result<Vec<u8>> {
    match version {
        2 => Ok(digest.to_vec()),
        3 => ImaFileId {
            hash_type: xattr_type,
            hash_algo: algo,
            hash: digest,
        }
        .digest(),
        v => Err(Error::SigVersion {
            version: v,
            xattr_type: xattr_type as u8,
        }),
    }
}

/// A v2 signature (type 0x03) over `digest`, the file hash made with `algo`, with the
/// key's key id. The same call with `xattr_type` 0x05 makes an EVM portable signature
/// over an EVM metadata hash: see [`sign_digest_as`].
pub fn sign_digest(key: &PrivateKey, algo: HashAlgo, digest: &[u8]) -> Result<Signature> {
    sign_digest_as(key, XattrType::DigSig, algo, digest)
}

/// A v2 signature of the given signature type (0x03 or 0x05).
pub fn sign_digest_as(
    key: &PrivateKey,
    xattr_type: XattrType,
    algo: HashAlgo,
    digest: &[u8],
) -> Result<Signature> {
    let sig = key.sign_raw(algo, digest)?;
    Ok(Signature {
        xattr_type,
        version: 2,
        hash_algo: algo,
        keyid: key.keyid(),
        sig,
    })
}

/// A v3 signature of type `xattr_type` (0x06 with an fs-verity digest; 0x03 or 0x05
/// with a file or EVM hash) over `H(ima_file_id)`.
pub fn sign_v3(
    key: &PrivateKey,
    xattr_type: XattrType,
    algo: HashAlgo,
    digest: &[u8],
) -> Result<Signature> {
    let signed = signed_digest(xattr_type, 3, algo, digest)?;
    let sig = key.sign_raw(algo, &signed)?;
    Ok(Signature {
        xattr_type,
        version: 3,
        hash_algo: algo,
        keyid: key.keyid(),
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyId, KeyRing};

    /// The test-only RSA key of ima.md §4.3.
    pub(crate) const RSA_PEM: &str = include_str!("../tests/data/rsa2048.pem");

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn file_id_vectors() {
        let verity = h("700b6bd8510f0b4f9bac8b9cf0459151a1c4a99f467892bb4bd289a67df8e19c");
        let id = ImaFileId {
            hash_type: XattrType::ImaVeritySig,
            hash_algo: HashAlgo::Sha256,
            hash: &verity,
        };
        assert_eq!(hex::encode(&id.to_bytes()[..3]), "060470");
        assert_eq!(
            hex::encode(id.digest().unwrap()),
            "8f5a433541b5cf5b2ee3725de781616425f7451c85417ea9dc2b8a427fd0fdff"
        );
        let abc = HashAlgo::Sha256.digest(b"abc").unwrap();
        let id = ImaFileId {
            hash_type: XattrType::DigSig,
            hash_algo: HashAlgo::Sha256,
            hash: &abc,
        };
        assert_eq!(
            hex::encode(id.digest().unwrap()),
            "2ee146ad934b84283b60e8bc960f5e2312adf93647d58b7634d0a6a789ac88e8"
        );
    }

    #[test]
    fn rsa_v2_vector_is_byte_identical() {
        let mut key = PrivateKey::from_bytes(RSA_PEM.as_bytes(), None, "rsa2048.pem").unwrap();
        // No certificate in the file: the computed keyid equals the cert's default SKID.
        assert_eq!(key.keyid(), KeyId(0x967db472));
        let digest = HashAlgo::Sha256.digest(b"abc").unwrap();
        let sig = sign_digest(&key, HashAlgo::Sha256, &digest).unwrap();
        assert_eq!(
            hex::encode(sig.encode()),
            concat!(
                "030204967db4720100",
                "7f287ff6dd0d3da28738fb520f5220512f5755c76f86b9d3f1c310062ef53e6dd7e541524a4e1333c60eaa85c834e2d0",
                "33307b7ee5abd6f9642b63903b1e876d94f91ba4a2be675a3631461b7ce664abdca80c55c8fea60932525ee9e77b3e5c",
                "83da91a87ea15dc970dc674f8c9a0d76f42b5038994e73632cc53beb703f1e4b1770adb25d54db53122c5e5527e383a6",
                "0181b8d8cf14a6ee8b4d2aaf73eb92c95739444161898b0b9795bb2e5ceb94175232b82b9516c4e852eb6188099b1701",
                "63548fd231b58d6dc6180e86e99a0824eefb13551361299cce843d4f64fd018c56e0924bdb8ad90b555c55dc7af5194e",
                "2d30234990127ccc77c21f0429d7872e"
            )
        );
        let mut ring = KeyRing::new();
        ring.add(key.public_key());
        assert_eq!(
            ring.verify(&sig.encode(), &digest).unwrap(),
            KeyId(0x967db472)
        );
        let mut other = digest.clone();
        other[31] ^= 1;
        assert!(matches!(
            ring.verify(&sig.encode(), &other),
            Err(Error::BadSignature { .. })
        ));
        key.set_keyid(KeyId(0xaabbccdd));
        let sig = sign_digest(
            &key,
            HashAlgo::Sha1,
            &HashAlgo::Sha1.digest(b"abc").unwrap(),
        )
        .unwrap();
        assert_eq!(hex::encode(&sig.encode()[..9]), "030202aabbccdd0100");
    }

    #[test]
    fn verity_v3_vector() {
        let key = PrivateKey::from_bytes(RSA_PEM.as_bytes(), None, "rsa2048.pem").unwrap();
        let verity = h("700b6bd8510f0b4f9bac8b9cf0459151a1c4a99f467892bb4bd289a67df8e19c");
        let sig = sign_v3(&key, XattrType::ImaVeritySig, HashAlgo::Sha256, &verity).unwrap();
        let enc = sig.encode();
        assert_eq!(
            hex::encode(&enc[..20]),
            "060304967db47201003f3e9b411256ea47dd591d"
        );
        let mut ring = KeyRing::new();
        ring.add(key.public_key());
        ring.verify(&enc, &verity).unwrap();
        assert!(matches!(
            ring.verify(&enc, &HashAlgo::Sha256.digest(b"x").unwrap()),
            Err(Error::BadSignature { .. })
        ));
    }
}
