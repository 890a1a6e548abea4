//! The crate's one error type. Every variant names what was wrong with which input.

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with input to `vigil-ima`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // -- hash algorithms --
    /// A hash algorithm name that neither the kernel nor OpenSSL/evmctl knows.
    #[error("unknown hash algorithm {0:?}")]
    UnknownHashName(String),
    /// A hash algorithm id outside the kernel's `enum hash_algo`.
    #[error("unknown hash algorithm id {0}")]
    UnknownHashId(u8),
    /// A known algorithm that vigil has no implementation of.
    #[error("hash algorithm {0} is not supported (no implementation available)")]
    UnsupportedHash(&'static str),
    // -- xattrs, signatures and keys --
    /// An empty `security.ima`/`security.evm` value or `.sig` file.
    #[error("empty xattr value")]
    EmptyXattr,
    /// A type byte outside `enum evm_ima_xattr_type`.
    #[error("unknown xattr type 0x{0:02x}")]
    UnknownXattrType(u8),
    /// A hash or HMAC xattr whose length does not fit its type.
    #[error("{kind} xattr of {len} bytes: expected {expected}")]
    XattrLength {
        kind: &'static str,
        len: usize,
        expected: String,
    },
    /// Fewer bytes than the 9-byte signature header.
    #[error("truncated signature: {len} bytes, the header alone is 9")]
    SigTruncated { len: usize },
    /// A signature format version this type does not allow.
    #[error("unsupported signature version {version} for xattr type 0x{xattr_type:02x}")]
    SigVersion { version: u8, xattr_type: u8 },
    /// The header's `sig_size` disagrees with the bytes that follow it.
    #[error("bad sig_size: header says {declared} bytes, {actual} follow")]
    SigSize { declared: u16, actual: usize },
    /// A signature header with no signature bytes.
    #[error("empty signature (sig_size 0)")]
    EmptySignature,
    /// A digest whose length does not match its algorithm.
    #[error("{algo} digest must be {expected} bytes, got {len}")]
    DigestLength {
        algo: crate::HashAlgo,
        expected: usize,
        len: usize,
    },
    /// A file that could not be read (key and certificate loaders only). The
    /// message holds the OS error, which is therefore not also a `source` (an error
    /// chain would print it twice).
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A key or certificate that could not be parsed.
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    /// An encrypted private key and no (or a wrong) password.
    #[error("{what}: {reason}")]
    KeyPassword { what: String, reason: String },
    /// A key type or curve vigil cannot sign or verify with.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// RSA PKCS#1 v1.5 needs a DigestInfo OID, which this algorithm lacks.
    #[error("RSA signatures with {0} are not supported (no DigestInfo OID)")]
    NoDigestInfo(crate::HashAlgo),
    /// Signing failed inside the crypto library.
    #[error("signing failed: {0}")]
    Sign(String),
    /// No verification key has the signature's key id.
    #[error("no key with keyid {0} (unknown keyid)")]
    UnknownKeyId(crate::keys::KeyId),
    /// The signature does not verify with the key of its key id.
    #[error("signature verification failed with key {keyid} ({reason})")]
    BadSignature {
        keyid: crate::keys::KeyId,
        reason: String,
    },
    /// An EVM HMAC key longer than the kernel's 128 bytes.
    #[error("key is too long: {0} bytes (an EVM key has at most 128)")]
    EvmKeyLength(usize),
    /// A malformed `hash path` line for `sign_hash`.
    #[error("line {line}: {reason}")]
    HashLine { line: usize, reason: String },
    // -- measurement lists, PCR replay, event logs --
    /// A malformed record of a binary measurement list.
    #[error("measurement list record {record} at offset {offset}: {msg}")]
    ListRecord {
        /// 0-based record number.
        record: u64,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A malformed line of an ASCII measurement list.
    #[error("measurement list line {line} (offset {offset}): {msg}")]
    ListAscii {
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A malformed field value (template data, PCR value, template format).
    #[error("{field}: {msg}")]
    ListField {
        /// Which field or value.
        field: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// Reading a measurement list failed.
    #[error("reading measurement list at offset {offset}: {source}")]
    ListIo {
        /// Offset where the read failed.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A malformed TCG boot event log.
    #[error("event log event {event} at offset {offset}: {msg}")]
    EventLog {
        /// 0-based event number.
        event: u64,
        /// Byte offset of the event.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A malformed PCR value file.
    #[error("PCR file line {line}: {msg}")]
    PcrText {
        /// 1-based line number (0: the file as a whole).
        line: u64,
        /// What is wrong.
        msg: String,
    },
    // -- the IMA policy language --
    /// A policy rule the kernel would refuse: its 1-based line, the offending token
    /// (empty if the rule has none) and the reason.
    #[error("policy line {line}: {token:?}: {reason}")]
    PolicyRule {
        /// 1-based line in the policy text.
        line: usize,
        /// The token the kernel stopped at.
        token: String,
        /// Why the kernel refuses it.
        reason: String,
    },
    /// A built-in policy name the kernel does not know.
    #[error("unknown built-in policy {0:?} (tcb, ima_tcb, appraise_tcb, secure_boot, critical_data, fail_securely)")]
    UnknownBuiltinPolicy(String),
}
