//! `vigil-ima`: the byte formats of Linux IMA and EVM.
//!
//! Pure code over `&[u8]`, `Read` and `Write`: no file system access of its own, so
//! every parser can be fuzzed and every format tested against known answers.

pub mod error;
pub mod hash;

// -- xattrs, signatures and keys --

// -- measurement lists, PCR replay, event logs --

// -- the IMA policy language --
pub mod policy;

pub use error::{Error, Result};
pub use hash::{HashAlgo, Hasher};
