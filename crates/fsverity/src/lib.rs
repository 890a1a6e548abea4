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
//! * [`formatted_digest`] and [`sign()`] / [`verify()`]: the PKCS#7 builtin signature of
//!   `fsverity sign`, byte-identical for RSA keys;
//! * [`sys`]: the kernel ioctls (`FS_IOC_ENABLE_VERITY`, `FS_IOC_MEASURE_VERITY`,
//!   `FS_IOC_READ_VERITY_METADATA`), which report [`Error::NotSupported`] where the
//!   kernel or file system lacks fs-verity.
//!
//! Everything except [`sys`] works on `&[u8]` and `Read` (and reads stored trees from a
//! `File` only through [`TreeSource`]): no file system access of its own.
//!
//! # Speed
//!
//! Hashing uses the RustCrypto `sha2` 0.10 crate, which detects SHA-NI at run time
//! (`cpufeatures`) and then runs SHA-256 at hardware speed. Input is read in 4 MiB
//! chunks (the next chunk is read while the current one is hashed) and the data blocks
//! of each chunk are hashed on all cores with rayon; the upper levels (1/128 of the
//! work at SHA-256/4K) are hashed as the leaf hashes arrive.
//!
//! For the leaf level (independent blocks of equal length), SHA-256 hashes many blocks
//! at once: sixteen at a time in the 32-bit lanes of AVX-512 registers (`avx512.rs`),
//! or two at a time on the CPU's SHA extensions with their rounds interleaved
//! (`shani.rs`). Which is faster depends on the CPU, so [`leaf_calibration`] measures
//! each at first use and picks the fastest.
//!
//! Measured with `examples/hash_speed.rs` (4 KiB blocks, one thread, per CPU-second) on
//! the 2-vCPU KVM test machine (Intel, SHA-NI and AVX-512):
//!
//! | backend | SHA-256 | SHA-512 |
//! |---|---|---|
//! | `sha2` 0.10, one block at a time (its run-time SHA-NI path) | 1.35–1.42 GB/s | 0.43–0.49 GB/s |
//! | two blocks at a time on the SHA extensions | 1.48–1.79 GB/s | |
//! | sixteen blocks at a time with AVX-512 | 2.87–3.20 GB/s | |
//! | [`TreeBuilder`], whole tree (AVX-512 leaves) | 2.45–2.51 GB/s | 0.31–0.49 GB/s |
//! | [`Verifier`], 128 KiB reads, tree in memory, cold bitmap (AVX-512 leaves) | 2.72 GB/s (1.64 with two-way SHA-NI) | |
//! | OpenSSL 3, `openssl speed -evp sha256 -bytes 4096` (fsverity-utils' backend) | 1.23 GB/s | |
//!
//! On an earlier 2-vCPU Intel machine (SHA-NI, no AVX-512) `sha2` reached 1.89 GB/s
//! and two-way SHA-NI 2.35 GB/s (whole tree) and 2.37 GB/s ([`Verifier`]).
//!
//! [`sha256`] hashes up to four independent messages side by side (the SHA-NI rounds
//! of all of them interleaved; `sha2` when the CPU lacks the extensions), for callers
//! that hash many files. Same example, 64 KiB pieces, on the 2-vCPU AMD EPYC test
//! machine (SHA-NI) under a load average of 3–5: `sha2` one message 1.49 GB/s; one lane
//! 1.48 GB/s, two 2.59 GB/s, four 2.74 GB/s.
//!
//! `ring` and `aws-lc-rs` measured 1.68–1.71 GB/s (SHA-256) on the same kind of machine,
//! no faster than `sha2`, so the pure-Rust crate stays. SHA-512 has no hardware help on
//! these CPUs.
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

mod avx512;
pub mod descriptor;
pub mod error;
mod hash;
pub use hash::{leaf_calibration, LeafCalibration, LeafHashing};
pub mod params;
pub mod sha256;
mod shani;
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
