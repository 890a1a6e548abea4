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

    // -- the IMA policy language --
}
