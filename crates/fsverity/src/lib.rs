//! `vigil-fsverity`: fs-verity in userspace, bit-exact with the Linux kernel and
//! fsverity-utils.
//!
//! * [`Params`] (hash algorithm, block size, salt) and [`HashAlg`];
//! * [`TreeBuilder`] / [`build_tree`] / [`compute_digest`]: the streaming Merkle tree
//!   builder, producing a [`Tree`]: root hash, [`Descriptor`] (the exact 256 bytes),
//!   [`FileDigest`] and the stored tree in the kernel's layout (root level first), as
//!   `fsverity digest --out-merkle-tree` writes it;
//! * [`Geometry`]: where each level and hash lives in a stored tree;
//! * [`Verifier`]: verification of any byte range of file data against a stored tree
//!   and root hash, caching verified tree blocks in a bitmap like the kernel;
//! * [`formatted_digest`] and [`sign`] / [`verify`]: the PKCS#7 builtin signature of
//!   `fsverity sign`, byte-identical for RSA keys;
//! * [`sys`]: the kernel ioctls (`FS_IOC_ENABLE_VERITY`, `FS_IOC_MEASURE_VERITY`,
//!   `FS_IOC_READ_VERITY_METADATA`), which report [`Error::NotSupported`] where the
//!   kernel or file system lacks fs-verity.
//!
//! Everything except [`sys`] works on `&[u8]` and `Read`: no file system access.
//!
//! # Speed
//!
//! Hashing uses the RustCrypto `sha2` 0.10 crate, which detects SHA-NI at run time
//! (`cpufeatures`) and then runs SHA-256 at hardware speed. Input is read in 4 MiB
//! chunks (the next chunk is read while the current one is hashed) and the data blocks
//! of each chunk are hashed on all cores with rayon; the upper levels (1/128 of the
//! work at SHA-256/4K) are hashed as the leaf hashes arrive.
//!
//! Measured on a 2-vCPU KVM guest (Xeon with SHA-NI), single thread, 4 KiB blocks:
//! see the table in the crate's `speed` section of `docs/usage-fsverity.md`.
//!
//! # Example
//! ```
//! use vigil_fsverity::{build_tree_from_slice, HashAlg, Params};
//! let params = Params::new(HashAlg::Sha256, 4096, &[]).unwrap();
//! let tree = build_tree_from_slice(b"hello world", &params);
//! assert_eq!(
//!     tree.digest().to_string(),
//!     "sha256:1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"
//! );
//! assert!(tree.merkle_tree().is_empty()); // one block: no stored tree
//! ```

pub mod descriptor;
pub mod error;
mod hash;
pub mod params;
pub mod tree;

pub use descriptor::{
    formatted_digest, parse_formatted_digest, Descriptor, FileDigest, DESCRIPTOR_SIZE,
};
pub use error::{Error, Result};
pub use params::{HashAlg, Params};
pub use tree::{build_tree, build_tree_from_slice, compute_digest, Geometry, Tree, TreeBuilder};
pub mod verify;
pub use verify::{TreeSource, Verifier};
pub mod sign;
pub use sign::{certificate_from_pem, parse_signature, sign, verify, SigningKey};
pub mod sys;
