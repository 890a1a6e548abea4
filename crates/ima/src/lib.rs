//! `vigil-ima`: the byte formats of Linux IMA and EVM.
//!
//! Pure code over `&[u8]`, `Read` and `Write`: no file system access of its own, so
//! every parser can be fuzzed and every format tested against known answers.

pub mod error;
pub mod hash;

// -- xattrs, signatures and keys --
pub mod evm;
pub mod keys;
mod pem;
pub mod sig;
pub mod xattr;
pub use keys::{KeyId, KeyRing, PrivateKey, PublicKey};
pub use sig::{sign_digest, sign_v3, ImaFileId};
pub use xattr::{ImaXattr, Signature, SignatureV2Header, XattrType};

// -- measurement lists, PCR replay, event logs --
pub mod list;
pub mod pcrs;
pub mod tcg;

// -- the IMA policy language --
pub mod policy;

// -- what the kernel reports about mounts (policy `fsname=`, `fs_subtype=`) --
pub mod mountinfo;

pub use error::{Error, Result};
pub use hash::{HashAlgo, Hasher};
