//! Where enforcement plugs into the filesystem. The FUSE handlers call these hooks at
//! fixed points and nowhere else:
//!
//! * `open` — on a worker thread, after the backing file is open and before the reply:
//!   policy, measurement, appraisal; an error is the errno the opener gets.
//! * `read` — on a worker thread, before data leaves the daemon: verification of the
//!   range against the file's Merkle tree; an error (EIO) replaces the data.
//! * `changed` — on the loop thread, after every change made through the mount; must
//!   only invalidate (never hash, never wait for a measurement).
//! * `last_writer_closed` — at RELEASE of the last writable handle; must only enqueue.
//! * `export` — contents of the `.vigil/` files.

use std::fs::File;

use fuser::Errno;

use crate::control::ControlFile;
use crate::inode::Node;

/// What the daemon knows about one OPEN.
pub struct OpenInfo<'a> {
    pub node: &'a Node,
    /// The backing file, opened with the caller's access mode.
    pub file: &'a File,
    pub stat: &'a libc::stat,
    /// `open(2)` flags as the kernel sent them.
    pub flags: i32,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// An allowed OPEN.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grant {
    /// Every read through this handle is verified before it is served, so pages it puts
    /// in the page cache may be kept across opens while the file is unchanged.
    pub verified: bool,
}

pub trait Enforcement: Send + Sync + 'static {
    fn open(&self, info: &OpenInfo<'_>) -> Result<Grant, Errno>;
    fn read(&self, node: &Node, file: &File, offset: u64, data: &[u8]) -> Result<(), Errno>;
    fn changed(&self, node: &Node);
    fn last_writer_closed(&self, node: &Node);
    fn export(&self, file: ControlFile) -> Vec<u8>;
    /// Called once at unmount, after the last request was answered.
    fn shutdown(&self) {}
}

/// No policy, appraisal off: a plain passthrough that measures nothing. Its exported
/// measurement list is empty.
pub struct Passthrough;

impl Enforcement for Passthrough {
    fn open(&self, _info: &OpenInfo<'_>) -> Result<Grant, Errno> {
        Ok(Grant { verified: false })
    }
    fn read(&self, _: &Node, _: &File, _: u64, _: &[u8]) -> Result<(), Errno> {
        Ok(())
    }
    fn changed(&self, _: &Node) {}
    fn last_writer_closed(&self, _: &Node) {}
    fn export(&self, file: ControlFile) -> Vec<u8> {
        match file {
            ControlFile::Violations => b"0\n".to_vec(),
            _ => Vec::new(),
        }
    }
}
