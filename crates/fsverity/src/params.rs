//! Tree parameters: hash algorithm, Merkle block size, salt.

use crate::{Error, Result};

/// An fs-verity hash algorithm (`FS_VERITY_HASH_ALG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum HashAlg {
    /// SHA-256, fs-verity algorithm number 1 (the default).
    #[default]
    Sha256 = 1,
    /// SHA-512, fs-verity algorithm number 2.
    Sha512 = 2,
}

impl HashAlg {
    /// Both algorithms, in number order.
    pub const ALL: [HashAlg; 2] = [HashAlg::Sha256, HashAlg::Sha512];

    /// The fs-verity algorithm number (1 or 2), as stored in the descriptor.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The name fsverity-utils prints and accepts (`sha256`, `sha512`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes (32 or 64).
    pub const fn digest_size(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha512 => 64,
        }
    }

    /// The hash's compression-block size (64 or 128): a salt is zero-padded to this.
    pub const fn compression_block_size(self) -> usize {
        match self {
            HashAlg::Sha256 => 64,
            HashAlg::Sha512 => 128,
        }
    }

    /// The kernel's `enum hash_algo` number of the same hash (sha256 = 4, sha512 = 6), which
    /// IMA signatures v3 put in front of an fs-verity digest.
    pub const fn kernel_hash_algo(self) -> u8 {
        match self {
            HashAlg::Sha256 => 4,
            HashAlg::Sha512 => 6,
        }
    }

    /// The algorithm with fs-verity number `id`.
    pub fn from_id(id: u32) -> Result<HashAlg> {
        match id {
            1 => Ok(HashAlg::Sha256),
            2 => Ok(HashAlg::Sha512),
            other => Err(Error::UnknownHashAlg(other)),
        }
    }

    /// The algorithm named `name` (`sha256` or `sha512`, case-sensitive as in fsverity-utils).
    pub fn from_name(name: &str) -> Result<HashAlg> {
        match name {
            "sha256" => Ok(HashAlg::Sha256),
            "sha512" => Ok(HashAlg::Sha512),
            other => Err(Error::UnknownHashName(other.to_owned())),
        }
    }

    /// Hash `data` in one call (unsalted), e.g. a descriptor.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HashAlg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        HashAlg::from_name(s)
    }
}

/// Smallest block size a kernel (6.3 and later) accepts.
pub const MIN_KERNEL_BLOCK_SIZE: u32 = 1024;
/// Largest block size a kernel accepts (the largest page size).
pub const MAX_KERNEL_BLOCK_SIZE: u32 = 65536;
/// Largest block size fsverity-utils accepts.
pub const MAX_USERSPACE_BLOCK_SIZE: u32 = 1 << 30;
/// Default block size (fsverity-utils 1.3 and later).
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Longest salt a descriptor can hold.
pub const MAX_SALT_SIZE: usize = 32;
/// Most tree levels the kernel accepts (`FS_VERITY_MAX_LEVELS`).
pub const MAX_KERNEL_LEVELS: usize = 8;
/// Most tree levels fsverity-utils accepts.
pub const MAX_USERSPACE_LEVELS: usize = 64;

/// The parameters of one Merkle tree: hash algorithm, block size and salt.
///
/// [`Params::new`] accepts what a kernel can enable (block sizes 1024–65536);
/// [`Params::new_userspace`] also accepts the smaller (and larger) sizes that
/// fsverity-utils computes digests for (any power of two ≥ twice the digest size).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Params {
    alg: HashAlg,
    log_block_size: u8,
    salt: [u8; MAX_SALT_SIZE],
    salt_len: u8,
}

impl Default for Params {
    /// SHA-256, 4096-byte blocks, no salt: fsverity-utils' defaults.
    fn default() -> Params {
        Params::new(HashAlg::Sha256, DEFAULT_BLOCK_SIZE, &[]).expect("defaults are valid")
    }
}

impl Params {
    /// Parameters a kernel accepts: `block_size` a power of two from 1024 to 65536, salt
    /// of at most 32 bytes (empty = no salt).
    pub fn new(alg: HashAlg, block_size: u32, salt: &[u8]) -> Result<Params> {
        Self::checked(
            alg,
            block_size as u64,
            salt,
            MIN_KERNEL_BLOCK_SIZE,
            MAX_KERNEL_BLOCK_SIZE,
        )
    }

    /// Parameters fsverity-utils accepts: any power of two from twice the digest size
    /// (64 for SHA-256, 128 for SHA-512) up to 2^30. Such trees cannot be enabled by a
    /// kernel when outside 1024–65536.
    pub fn new_userspace(alg: HashAlg, block_size: u32, salt: &[u8]) -> Result<Params> {
        let min = 2 * alg.digest_size() as u32;
        Self::checked(alg, block_size as u64, salt, min, MAX_USERSPACE_BLOCK_SIZE)
    }

    fn checked(alg: HashAlg, block_size: u64, salt: &[u8], min: u32, max: u32) -> Result<Params> {
        if !block_size.is_power_of_two() || block_size < min as u64 || block_size > max as u64 {
            return Err(Error::BlockSize {
                size: block_size,
                min,
                max,
            });
        }
        if salt.len() > MAX_SALT_SIZE {
            return Err(Error::SaltTooLong(salt.len()));
        }
        let mut s = [0; MAX_SALT_SIZE];
        s[..salt.len()].copy_from_slice(salt);
        Ok(Params {
            alg,
            log_block_size: block_size.trailing_zeros() as u8,
            salt: s,
            salt_len: salt.len() as u8,
        })
    }

    /// The hash algorithm.
    pub fn hash_alg(&self) -> HashAlg {
        self.alg
    }
    /// Merkle tree block size in bytes.
    pub fn block_size(&self) -> usize {
        1 << self.log_block_size
    }
    /// log2 of the block size, as stored in the descriptor.
    pub fn log_block_size(&self) -> u8 {
        self.log_block_size
    }
    /// The salt (empty when unsalted).
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.salt_len as usize]
    }
    /// Digest size of the hash algorithm.
    pub fn digest_size(&self) -> usize {
        self.alg.digest_size()
    }
    /// Number of hashes that fit in one tree block (the tree's arity).
    pub fn hashes_per_block(&self) -> usize {
        self.block_size() / self.digest_size()
    }
    /// Whether a kernel (6.3 or later, with a page size ≥ the block size) could enable
    /// verity with these parameters.
    pub fn kernel_compatible(&self) -> bool {
        (MIN_KERNEL_BLOCK_SIZE as usize..=MAX_KERNEL_BLOCK_SIZE as usize)
            .contains(&self.block_size())
    }
}
