//! The crate's one error type. Every variant names what was wrong with which input.

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with parameters, descriptors, trees, data and signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // -- parameters --
    /// An fs-verity hash algorithm number other than 1 (SHA-256) or 2 (SHA-512).
    #[error("unknown fs-verity hash algorithm {0}")]
    UnknownHashAlg(u32),
    /// An fs-verity hash algorithm name other than `sha256` or `sha512`.
    #[error("unknown fs-verity hash algorithm {0:?}")]
    UnknownHashName(String),
    /// A Merkle tree block size that is not a power of two in the accepted range.
    #[error("invalid Merkle tree block size {size}: must be a power of 2 from {min} to {max}")]
    BlockSize { size: u64, min: u32, max: u32 },
    /// A salt longer than the 32 bytes the descriptor has room for.
    #[error("unsupported salt size ({0}): at most 32 bytes")]
    SaltTooLong(usize),
    /// A tree with more levels than the kernel (8) or userspace (64) allows.
    #[error("file of {data_size} bytes needs {levels} tree levels, more than the {max} allowed")]
    TooManyLevels {
        data_size: u64,
        levels: usize,
        max: usize,
    },

    // -- descriptor --
    /// A descriptor that is not exactly 256 bytes.
    #[error("fs-verity descriptor is {0} bytes long, expected 256")]
    DescriptorLength(usize),
    /// A descriptor field with an impossible value.
    #[error("fs-verity descriptor field {field} at offset {offset:#x}: {what}")]
    DescriptorField {
        field: &'static str,
        offset: usize,
        what: String,
    },

    // -- stored tree and verification --
    /// A stored Merkle tree whose length does not match the file size and parameters.
    #[error(
        "Merkle tree is {actual} bytes long, expected {expected} for a file of {data_size} bytes"
    )]
    TreeLength {
        actual: u64,
        expected: u64,
        data_size: u64,
    },
    /// Data passed for verification that does not start on a block boundary, or is not
    /// made of whole blocks (only the file's last block may be short), or lies past EOF.
    #[error("cannot verify {len} bytes at offset {offset}: {what}")]
    Range {
        offset: u64,
        len: usize,
        what: &'static str,
    },
    /// A root hash whose length is not the algorithm's digest size.
    #[error("root hash is {actual} bytes long, expected {expected}")]
    RootHashLength { actual: usize, expected: usize },
    /// A data block whose hash does not match the tree.
    #[error("data block {block} (bytes {}..{}) does not match the Merkle tree", block * *block_size as u64, (block + 1) * *block_size as u64)]
    DataBlockMismatch { block: u64, block_size: u32 },
    /// A tree block whose hash does not match its parent (or the root hash), found
    /// while verifying data block `block`.
    #[error("Merkle tree block {tree_block} (level {level}) does not match its parent; needed to verify data block {block}")]
    TreeBlockMismatch {
        block: u64,
        level: usize,
        tree_block: u64,
    },
    /// Reading a tree block from its source failed.
    #[error("reading Merkle tree block {tree_block} (needed for data block {block}): {source}")]
    TreeRead {
        block: u64,
        tree_block: u64,
        source: std::io::Error,
    },

    // -- signatures and keys --
    /// A PKCS#7/CMS signature that cannot be parsed, or has a shape the kernel rejects.
    #[error("PKCS#7 signature: {0}")]
    Signature(String),
    /// A signature that parses but does not verify.
    #[error("signature verification failed: {0}")]
    BadSignature(String),
    /// A private key or certificate that cannot be read.
    #[error("{what}: {detail}")]
    Key { what: &'static str, detail: String },
    /// A well-formed private key of a kind vigil cannot sign with (encrypted, or an
    /// algorithm or curve other than RSA, P-256 and P-384).
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),

    // -- kernel interfaces --
    /// The kernel or the file system does not support fs-verity.
    #[error("fs-verity is not supported here ({0}): the kernel lacks CONFIG_FS_VERITY or the file system lacks the verity feature")]
    NotSupported(std::io::Error),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
