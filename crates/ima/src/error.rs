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
}
