//! The crate's one error type. Every variant names the file, record or field concerned.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `vigil-guard`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`statx`, `name_to_handle_at`, `write`, …).
        op: &'static str,
        /// The file concerned (or `<fd>` when only a descriptor was known).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is sealed: writes, truncation and size changes are refused (EPERM).
    #[error("file is sealed (writes, truncation and size changes refused)")]
    Sealed,
    /// Sealing refused while the file has writers or writable shared mappings (EBUSY).
    #[error("cannot seal: {writers} writer(s) and {writable_maps} writable mapping(s) open")]
    Busy {
        /// Open-for-write handles counted.
        writers: u32,
        /// Writable shared mappings counted.
        writable_maps: u32,
    },
    /// An executable mapping of an appraised file that is mapped writable (ETXTBSY,
    /// IMA's `mmapped_writers`).
    #[error("file is mapped writable (mmapped_writers)")]
    TextBusy,
    /// An unseal was asked by a caller that is not authorised to unseal.
    #[error("uid {uid} is not authorised to unseal")]
    NotAuthorised {
        /// The caller.
        uid: u32,
    },
    /// Appraisal denied access (enforce mode), with the cause (`missing-hash`,
    /// `invalid-signature: …`); the caller names the file.
    #[error("appraisal failed: {0}")]
    Denied(String),

    /// EVM refuses a change of metadata it vouches for (audit cause
    /// `appraise_metadata`): a portable signature, or an invalid `security.evm`.
    #[error("metadata protected by EVM: {0}")]
    MetadataProtected(String),
    /// A measurement was overtaken by a change of the file (a write, truncate,
    /// attribute or xattr change) and its result discarded.
    #[error("measurement cancelled: the file changed while it was being measured")]
    Changed,
    /// A measurement was given up because the one waiting for it has gone (an opener
    /// killed while it waited) or the guard is abandoning its measurements
    /// ([`crate::Guard::abandon_measurements`]); nothing was recorded (EINTR).
    #[error("measurement given up: the opener has gone or the guard is stopping")]
    Interrupted,
    /// The deferred-work queue is full: the job was not queued (the file stays dirty
    /// and is measured again at its next open).
    #[error("deferred-work queue full ({capacity} jobs)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The file handle no longer names a file (ESTALE): the entry was dropped.
    #[error("stale file handle")]
    Stale,
    /// A persisted file (measurement log, tree, seal table) is malformed.
    #[error("{path}: {what} at offset {offset}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad field.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A bad configuration value.
    #[error("configuration: {0}")]
    Config(String),
    /// An error from the IMA format layer (hash algorithms, records).
    #[error(transparent)]
    Ima(#[from] vigil_ima::Error),
}

impl Error {
    /// A system-call error on `path`.
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// The errno a FUSE frontend should answer with for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Sealed | Error::NotAuthorised { .. } | Error::MetadataProtected(_) => {
                libc::EPERM
            }
            Error::Busy { .. } => libc::EBUSY,
            Error::TextBusy => libc::ETXTBSY,
            Error::Denied(_) => libc::EACCES,
            Error::Changed | Error::QueueFull { .. } => libc::EAGAIN,
            Error::Interrupted => libc::EINTR,
            Error::Stale => libc::ESTALE,
            Error::Corrupt { .. } | Error::Config(_) | Error::Ima(_) => libc::EIO,
        }
    }
}
