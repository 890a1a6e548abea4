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
