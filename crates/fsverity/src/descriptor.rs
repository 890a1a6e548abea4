//! `struct fsverity_descriptor` (256 bytes), the file digest and the formatted digest
//! that builtin signatures sign.

use crate::params::{HashAlg, Params, MAX_SALT_SIZE};
use crate::{Error, Result};

/// Size of `struct fsverity_descriptor`.
pub const DESCRIPTOR_SIZE: usize = 256;
/// Magic that starts `struct fsverity_formatted_digest`.
pub const FORMATTED_DIGEST_MAGIC: &[u8; 8] = b"FSVerity";

/// An fs-verity descriptor: what the file digest is the hash of.
///
/// Layout (little-endian, packed): `version u8 = 1, hash_algorithm u8, log_blocksize u8,
/// salt_size u8, sig_size le32 (zero when hashed), data_size le64, root_hash[64],
/// salt[32], reserved[144]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    params: Params,
    data_size: u64,
    root_hash: [u8; 64],
    sig_size: u32,
}

impl Descriptor {
    /// The descriptor of a file of `data_size` bytes whose tree has root `root_hash`
    /// (the algorithm's digest size; for an empty file, all zeros).
    ///
    /// # Panics
    /// If `root_hash` is not exactly the digest size.
    pub fn new(params: Params, data_size: u64, root_hash: &[u8]) -> Descriptor {
        assert_eq!(root_hash.len(), params.digest_size(), "root hash length");
        let mut root = [0; 64];
        root[..root_hash.len()].copy_from_slice(root_hash);
        Descriptor {
            params,
            data_size,
            root_hash: root,
            sig_size: 0,
        }
    }

    /// Parse a 256-byte descriptor as the kernel checks it: version 1, a known
    /// algorithm, a block size fsverity-utils accepts, salt ≤ 32 bytes, zero padding
    /// after the root hash and salt, zero reserved bytes. `sig_size` may be non-zero
    /// (as stored on disk); it is never part of the digest.
    pub fn parse(bytes: &[u8]) -> Result<Descriptor> {
        if bytes.len() != DESCRIPTOR_SIZE {
            return Err(Error::DescriptorLength(bytes.len()));
        }
        let field = |field, offset, what: String| Error::DescriptorField {
            field,
            offset,
            what,
        };
        if bytes[0] != 1 {
            return Err(field("version", 0, format!("{} (only 1 exists)", bytes[0])));
        }
        let alg = HashAlg::from_id(bytes[1] as u32).map_err(|_| {
            field(
                "hash_algorithm",
                1,
                format!("unknown algorithm {}", bytes[1]),
            )
        })?;
        let log_bs = bytes[2];
        if log_bs >= 31 {
            return Err(field("log_blocksize", 2, format!("{log_bs} is too large")));
        }
        let salt_size = bytes[3] as usize;
        if salt_size > MAX_SALT_SIZE {
            return Err(field("salt_size", 3, format!("{salt_size} exceeds 32")));
        }
        let sig_size = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let data_size = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let ds = alg.digest_size();
        if let Some(i) = bytes[16 + ds..80].iter().position(|&b| b != 0) {
            return Err(field(
                "root_hash",
                16 + ds + i,
                "non-zero byte after the digest".into(),
            ));
        }
        if let Some(i) = bytes[80 + salt_size..112].iter().position(|&b| b != 0) {
            return Err(field(
                "salt",
                80 + salt_size + i,
                "non-zero byte after the salt".into(),
            ));
        }
        if let Some(i) = bytes[112..].iter().position(|&b| b != 0) {
            return Err(field("reserved", 112 + i, "non-zero reserved byte".into()));
        }
        let params = Params::new_userspace(alg, 1u32 << log_bs, &bytes[80..80 + salt_size])
            .map_err(|e| field("log_blocksize", 2, e.to_string()))?;
        let mut root_hash = [0; 64];
        root_hash.copy_from_slice(&bytes[16..80]);
        Ok(Descriptor {
            params,
            data_size,
            root_hash,
            sig_size,
        })
    }

    /// The 256 bytes, with `sig_size` as set (zero unless [`Descriptor::with_sig_size`]).
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut b = [0u8; DESCRIPTOR_SIZE];
        b[0] = 1;
        b[1] = self.params.hash_alg().id();
        b[2] = self.params.log_block_size();
        b[3] = self.params.salt().len() as u8;
        b[4..8].copy_from_slice(&self.sig_size.to_le_bytes());
        b[8..16].copy_from_slice(&self.data_size.to_le_bytes());
        b[16..80].copy_from_slice(&self.root_hash);
        let salt = self.params.salt();
        b[80..80 + salt.len()].copy_from_slice(salt);
        b
    }

    /// The same descriptor with `sig_size` set, as a file system stores it.
    pub fn with_sig_size(mut self, sig_size: u32) -> Descriptor {
        self.sig_size = sig_size;
        self
    }

    /// The tree parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The file size.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }
    /// The Merkle root hash (digest size bytes).
    pub fn root_hash(&self) -> &[u8] {
        &self.root_hash[..self.params.digest_size()]
    }
    /// The stored `sig_size` field.
    pub fn sig_size(&self) -> u32 {
        self.sig_size
    }

    /// The fs-verity file digest: the (unsalted) hash of the descriptor with `sig_size` zero.
    pub fn digest(&self) -> FileDigest {
        let mut bytes = self.to_bytes();
        bytes[4..8].fill(0);
        FileDigest::new(self.params.hash_alg(), &self.params.hash_alg().hash(&bytes))
    }
}

/// An fs-verity file digest with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigest {
    alg: HashAlg,
    bytes: [u8; 64],
}

impl FileDigest {
    /// Wrap `digest` (exactly the algorithm's digest size).
    ///
    /// # Panics
    /// If `digest` has the wrong length.
    pub fn new(alg: HashAlg, digest: &[u8]) -> FileDigest {
        assert_eq!(digest.len(), alg.digest_size(), "digest length for {alg}");
        let mut bytes = [0; 64];
        bytes[..digest.len()].copy_from_slice(digest);
        FileDigest { alg, bytes }
    }

    /// The algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }
    /// The digest bytes (32 or 64).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.digest_size()]
    }
    /// Lower-case hex of the digest, as `fsverity digest --compact` prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
    /// `struct fsverity_formatted_digest`: `"FSVerity"` ‖ le16 algorithm ‖ le16 digest
    /// size ‖ digest (44 or 76 bytes). This is what a builtin signature signs.
    pub fn formatted(&self) -> Vec<u8> {
        formatted_digest(self.alg, self.as_bytes())
    }
}

/// `alg:hex`, as `fsverity digest` prints a digest.
impl std::fmt::Display for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.alg, self.to_hex())
    }
}

impl std::fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileDigest({self})")
    }
}

/// `struct fsverity_formatted_digest` of `digest` (see [`FileDigest::formatted`]).
pub fn formatted_digest(alg: HashAlg, digest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + digest.len());
    out.extend_from_slice(FORMATTED_DIGEST_MAGIC);
    out.extend_from_slice(&(alg.id() as u16).to_le_bytes());
    out.extend_from_slice(&(digest.len() as u16).to_le_bytes());
    out.extend_from_slice(digest);
    out
}

/// Parse a formatted digest back into its digest (the header must match the length).
pub fn parse_formatted_digest(bytes: &[u8]) -> Result<FileDigest> {
    let bad = |what: &str| Error::Signature(format!("formatted digest: {what}"));
    if bytes.len() < 12 || &bytes[..8] != FORMATTED_DIGEST_MAGIC {
        return Err(bad("missing \"FSVerity\" magic"));
    }
    let alg = HashAlg::from_id(u16::from_le_bytes([bytes[8], bytes[9]]) as u32)
        .map_err(|e| bad(&e.to_string()))?;
    let size = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    if size != alg.digest_size() || bytes.len() != 12 + size {
        return Err(bad("digest size does not match the algorithm"));
    }
    Ok(FileDigest::new(alg, &bytes[12..]))
}
