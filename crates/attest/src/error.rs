//! The crate's one error type. Every variant says what was wrong with which input.

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with input to `vigil-attest`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not JSON at all.
    #[error("{what} is not valid JSON: {error}")]
    Json {
        /// Which document (e.g. "runtime policy").
        what: &'static str,
        /// serde_json's message, with line and column (in the message, not a `source`
        /// that error chains would print a second time).
        error: serde_json::Error,
    },
    /// JSON that does not follow the runtime-policy schema; `key` is the path of the
    /// offending key, e.g. `digests["/usr/bin/ls"][0]` or `ima.log_hash_alg`.
    #[error("runtime policy: {key}: {message}")]
    Schema {
        /// Path of the offending key.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
    /// A malformed DSSE envelope or signature.
    #[error("DSSE envelope: {0}")]
    Dsse(String),
    /// No signature of the envelope verifies with the given keys.
    #[error("DSSE envelope: no valid signature found")]
    DsseNoValidSignature,
    /// A key or certificate that cannot be used.
    #[error("{what}: {message}")]
    Key {
        /// Which key (file name or role).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// An exclude regular expression that does not compile.
    #[error("exclude list: pattern {pattern:?}: {message}")]
    Exclude {
        /// The offending pattern (or the combined pattern).
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// A line of a plain-text allowlist or exclude list that cannot be used.
    #[error("{file}: line {line}: {message}")]
    Line {
        /// File name (or a description of the input).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A PCR value that has the wrong length for its bank, or is not hex.
    #[error("PCR value for bank {bank}: {message}")]
    Pcr {
        /// The bank's algorithm name.
        bank: String,
        /// What is wrong.
        message: String,
    },
    /// Incremental-attestation state that cannot be used.
    #[error("attestation state: {0}")]
    State(String),
    /// Policy generation could not decide on or use a digest algorithm.
    #[error("policy generation: {0}")]
    Generate(String),
    /// An I/O error on a named file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error (in the message, not a `source` printed twice in error chains).
        error: std::io::Error,
    },
    /// An error from the IMA format layer.
    #[error(transparent)]
    Ima(#[from] vigil_ima::Error),
}

impl Error {
    pub(crate) fn schema(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Schema {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            error: source,
        }
    }
}
