//! The kernel's fs-verity ioctls, behind safe functions. Where the kernel lacks
//! `CONFIG_FS_VERITY` or the file system lacks the verity feature they fail with
//! [`Error::NotSupported`], so callers can fall back to userspace.

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::descriptor::FileDigest;
use crate::params::{HashAlg, Params};
use crate::{Error, Result};

const FS_IOC_ENABLE_VERITY: libc::c_ulong = 0x4080_6685;
const FS_IOC_MEASURE_VERITY: libc::c_ulong = 0xc004_6686;
const FS_IOC_READ_VERITY_METADATA: libc::c_ulong = 0xc028_6687;

#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

#[repr(C)]
struct MeasureArg {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; 64],
}

#[repr(C)]
struct ReadMetadataArg {
    metadata_type: u64,
    offset: u64,
    length: u64,
    buf_ptr: u64,
    reserved: u64,
}

/// Which metadata `FS_IOC_READ_VERITY_METADATA` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Metadata {
    /// The stored Merkle tree (root level first).
    MerkleTree = 1,
    /// The 256-byte descriptor (with `sig_size` zero).
    Descriptor = 2,
    /// The builtin signature (`ENODATA` if none).
    Signature = 3,
}

/// Whether an errno means "no fs-verity here" (kernel or file system).
pub fn is_not_supported(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

fn classify(err: std::io::Error, what: &str) -> Error {
    if is_not_supported(&err) {
        Error::NotSupported(err)
    } else {
        Error::io(format!("{what} failed"), err)
    }
}

/// `FS_IOC_MEASURE_VERITY` as the kernel answers it: (algorithm number, digest).
pub fn measure_raw(file: &File) -> std::io::Result<(u16, Vec<u8>)> {
    let mut arg = MeasureArg {
        digest_algorithm: 0,
        digest_size: 64,
        digest: [0; 64],
    };
    // SAFETY: `arg` is a valid, writable fsverity_digest with room for 64 digest bytes,
    // as its digest_size field says.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_MEASURE_VERITY, &mut arg) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let size = (arg.digest_size as usize).min(64);
    Ok((arg.digest_algorithm, arg.digest[..size].to_vec()))
}

/// `FS_IOC_MEASURE_VERITY`: the file's fs-verity digest. `Ok(None)` when the file
/// system supports verity but this file does not have it enabled (`ENODATA`).
pub fn measure(file: &File) -> Result<Option<FileDigest>> {
    let (alg, digest) = match measure_raw(file) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
        Err(e) => return Err(classify(e, "FS_IOC_MEASURE_VERITY")),
    };
    let alg = HashAlg::from_id(alg as u32)?;
    if digest.len() != alg.digest_size() {
        return Err(Error::io(
            "FS_IOC_MEASURE_VERITY",
            std::io::Error::other(format!("digest size {} for {alg}", digest.len())),
        ));
    }
    Ok(Some(FileDigest::new(alg, &digest)))
}

/// `FS_IOC_ENABLE_VERITY` with unchecked parameters (the kernel checks them), as
/// `fsverity enable` passes them.
pub fn enable_raw(
    file: &File,
    hash_algorithm: u32,
    block_size: u32,
    salt: &[u8],
    signature: Option<&[u8]>,
) -> std::io::Result<()> {
    let sig = signature.unwrap_or(&[]);
    let arg = EnableArg {
        version: 1,
        hash_algorithm,
        block_size,
        salt_size: salt.len() as u32,
        salt_ptr: if salt.is_empty() {
            0
        } else {
            salt.as_ptr() as u64
        },
        sig_size: sig.len() as u32,
        reserved1: 0,
        sig_ptr: if sig.is_empty() {
            0
        } else {
            sig.as_ptr() as u64
        },
        reserved2: [0; 11],
    };
    // SAFETY: `arg` is a valid fsverity_enable_arg; its pointers reference `salt` and
    // `sig`, which outlive the call, with matching sizes.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_ENABLE_VERITY, &arg) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `FS_IOC_ENABLE_VERITY` with `params` and an optional builtin signature. The file
/// must be open read-only with no writers (else `ETXTBSY`).
pub fn enable(file: &File, params: &Params, signature: Option<&[u8]>) -> Result<()> {
    enable_raw(
        file,
        params.hash_alg().id() as u32,
        params.block_size() as u32,
        params.salt(),
        signature,
    )
    .map_err(|e| classify(e, "FS_IOC_ENABLE_VERITY"))
}

/// `FS_IOC_READ_VERITY_METADATA` as the kernel answers it.
pub fn read_metadata_raw(
    file: &File,
    kind: Metadata,
    offset: u64,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut arg = ReadMetadataArg {
        metadata_type: kind as u64,
        offset,
        length: buf.len() as u64,
        buf_ptr: buf.as_mut_ptr() as u64,
        reserved: 0,
    };
    // SAFETY: `arg` points at `buf`, writable for `buf.len()` bytes, for the call's duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_READ_VERITY_METADATA, &mut arg) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `FS_IOC_READ_VERITY_METADATA`: read `kind` at `offset` into `buf` (pread semantics;
/// returns the bytes read, 0 at the end).
pub fn read_metadata(file: &File, kind: Metadata, offset: u64, buf: &mut [u8]) -> Result<usize> {
    read_metadata_raw(file, kind, offset, buf)
        .map_err(|e| classify(e, "FS_IOC_READ_VERITY_METADATA"))
}
