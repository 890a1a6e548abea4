//! The ioctls the mount answers on its regular files (FUSE "restricted" ioctls: no
//! argument data, the result is the return value). Used by `vigil seal`/`unseal`.

const fn io(nr: u32) -> u32 {
    // _IO('v', nr): direction none, size 0.
    ((b'v' as u32) << 8) | nr
}

/// Seal the file: from now on write opens, writes, truncation and fallocate get EPERM,
/// and so do unlinking or renaming any of its names and renaming over one.
/// Fails with EBUSY while a writable handle (an fd or a shared writable mapping) exists.
/// Allowed to the file's owner and root.
pub const SEAL: u32 = io(0xa0);
/// Remove the seal (root only).
pub const UNSEAL: u32 = io(0xa1);
/// Returns the number of writable handles, with [`STATUS_SEALED`] or-ed in if sealed.
pub const STATUS: u32 = io(0xa2);
/// Bit of the [`STATUS`] result meaning "sealed".
pub const STATUS_SEALED: i32 = 1 << 30;
