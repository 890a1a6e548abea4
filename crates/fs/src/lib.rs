//! vigil-fs: a FUSE filesystem that shows a source directory through vigil's
//! enforcement core, so that every file opened through it is measured, appraised,
//! verified as it is read and protected against change.
//!
//! The filesystem itself ([`Mount`]) is a multithreaded passthrough over a descriptor of
//! the source directory opened before mounting (so the mount may cover the source and
//! hide it from writes that bypass the mount). Enforcement plugs in through the
//! [`Enforcer`], which it calls at open, read, change and last close; `.vigil/` at the
//! mount's root exports the measurement list.

pub mod control;
mod direct;
pub mod enforce;
mod fs;
pub mod inode;
pub mod ioctl;
mod mount;
mod pool;
mod prefetch;
mod sys;
pub mod verity;

pub use control::ControlFile;
pub use enforce::{audit, format_pcrs, Caller, Enforcer};
pub use fs::MAX_IO;
pub use mount::{
    abort_connection, block_signals, detach, is_vigil_mount, unmount, Background, Mount,
    MountFlags, MountOptions,
};
