//! EVM's part in appraisal: the kernel's `evm_verifyxattr()` on a file's IMA value,
//! and the HMAC it keeps up to date when that value is rewritten.
//!
//! `security.evm` protects the file's security xattrs (`security.ima` among them) and
//! inode metadata (inode number, generation, owner, group, mode; see
//! [`vigil_ima::evm`]) against offline change. As in the kernel, EVM takes part only
//! when it has a key: certificates for EVM signatures (the `.evm` keyring) or an HMAC
//! key. Without one every status is [`EvmStatus::Unknown`] and appraisal rests on the
//! IMA value alone.
//!
//! With the `user.*` value source, `user.ima` and `user.evm` stand in for
//! `security.ima` and `security.evm` (as `evmctl --xattr-user` writes portable
//! signatures); the other protected xattrs are always the `security.*` ones.

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use vigil_ima::evm::{self, EvmKind, EvmMeta, MiscLayout, EVM_XATTRS};
use vigil_ima::{HashAlgo, KeyRing, Signature, XattrType};

use crate::identity::FileAttrs;
use crate::sys;

/// EVM's keys (the kernel's `evm_initialized`). With neither, EVM does not take part.
#[derive(Clone, Default)]
pub struct EvmKeys {
    /// Certificates that verify EVM signatures (`security.evm` types 0x03 and 0x05).
    pub ring: Option<Arc<KeyRing>>,
    /// The HMAC key (as `/etc/keys/evm-key-plain` holds it, at most 128 bytes) for
    /// type 0x02 values; with it, rewriting a hash value also rewrites the HMAC.
    pub hmac_key: Option<Vec<u8>>,
}

impl EvmKeys {
    /// Whether EVM takes part in appraisal.
    pub fn loaded(&self) -> bool {
        self.ring.is_some() || self.hmac_key.is_some()
    }
}

/// What EVM says about a file's protected xattrs and metadata (`enum integrity_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvmStatus {
    /// EVM has no keys (or the value is not kept in xattrs): it does not take part.
    Unknown,
    /// A valid HMAC or inode-bound signature.
    Pass,
    /// A valid portable signature: the file is treated as signed and immutable.
    PassImmutable,
    /// Protected xattrs but no `security.evm` (audit cause `missing-HMAC`).
    NoLabel,
    /// Neither protected xattrs nor `security.evm`: nothing to protect (a new file).
    NoXattrs,
    /// An invalid HMAC or inode-bound signature (`invalid-HMAC`), and why.
    Fail(String),
    /// An invalid portable signature (`invalid-fail-immutable`), and why.
    FailImmutable(String),
}

/// The xattr names EVM reads: the protected list, with `ima` as the IMA value's
/// name, and the name of the EVM value itself.
#[derive(Debug, Clone, Copy)]
pub struct EvmNames {
    pub ima: &'static str,
    pub evm: &'static str,
}

impl EvmNames {
    /// `security.ima`/`security.evm`, or the `user.` pair.
    pub fn new(user: bool) -> EvmNames {
        if user {
            EvmNames {
                ima: "user.ima",
                evm: "user.evm",
            }
        } else {
            EvmNames {
                ima: "security.ima",
                evm: "security.evm",
            }
        }
    }
}

/// One file as EVM sees it: the descriptor, its metadata (as measured) and its file
/// system's UUID (zeros where it has none, as the kernel's `s_uuid`).
pub struct EvmFile<'a> {
    pub fd: BorrowedFd<'a>,
    pub attrs: &'a FileAttrs,
    pub fs_uuid: [u8; 16],
    pub names: EvmNames,
}

impl EvmFile<'_> {
    /// The values of the protected xattrs the file has, in EVM's order, with
    /// `ima_value` as the IMA value.
    fn protected_values(&self, ima_value: Option<&[u8]>) -> Result<Vec<Vec<u8>>, String> {
        let mut values = Vec::new();
        for &name in EVM_XATTRS {
            if name == "security.ima" {
                values.extend(ima_value.map(<[u8]>::to_vec));
                continue;
            }
            match sys::get_xattr(self.fd, name) {
                Ok(Some(v)) => values.push(v),
                Ok(None) => {}
                Err(e) => return Err(format!("reading {name}: {e}")),
            }
        }
        Ok(values)
    }

    fn meta(&self) -> EvmMeta {
        EvmMeta {
            ino: self.attrs.ino,
            // A file system without generations hashes 0, as the kernel's i_generation.
            generation: sys::inode_generation(self.fd).unwrap_or(0),
            uid: self.attrs.uid,
            gid: self.attrs.gid,
            mode: self.attrs.mode,
        }
    }

    /// The kernel's HMAC over the protected values (HMAC-SHA1 with the UUID).
    fn hmac(&self, key: &[u8], values: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        evm::evm_hmac(
            HashAlgo::Sha1,
            key,
            &refs,
            &self.meta(),
            MiscLayout::Native,
            Some(&self.fs_uuid),
        )
        .map_err(|e| e.to_string())
    }
}

/// EVM's verdict on `file` whose IMA value is `ima_value` (`evm_verifyxattr`, or
/// `evm_verify_current_integrity` when a change of metadata is asked for).
pub fn verify(keys: &EvmKeys, file: &EvmFile<'_>, ima_value: Option<&[u8]>) -> EvmStatus {
    if !keys.loaded() {
        return EvmStatus::Unknown;
    }
    let values = match file.protected_values(ima_value) {
        Ok(v) => v,
        Err(e) => return EvmStatus::Fail(e),
    };
    let value = match sys::get_xattr(file.fd, file.names.evm) {
        Ok(None) if values.is_empty() => return EvmStatus::NoXattrs,
        Ok(None) => return EvmStatus::NoLabel,
        Ok(Some(v)) => v,
        Err(e) => return EvmStatus::Fail(format!("reading {}: {e}", file.names.evm)),
    };
    match XattrType::from_u8(value.first().copied().unwrap_or(0)) {
        Ok(XattrType::EvmHmac) => {
            let Some(key) = &keys.hmac_key else {
                return EvmStatus::Fail("no HMAC key".into());
            };
            match file.hmac(key, &values) {
                Ok(mac) if value[1..] == mac[..] => EvmStatus::Pass,
                Ok(_) => EvmStatus::Fail("HMAC mismatch".into()),
                Err(e) => EvmStatus::Fail(e),
            }
        }
        Ok(t @ (XattrType::DigSig | XattrType::EvmPortableDigSig)) => {
            let portable = t == XattrType::EvmPortableDigSig;
            let fail = |why: String| match portable {
                true => EvmStatus::FailImmutable(why),
                false => EvmStatus::Fail(why),
            };
            let Some(ring) = &keys.ring else {
                return fail("no EVM keys".into());
            };
            let sig = match Signature::decode(&value) {
                Ok(s) => s,
                Err(e) => return fail(e.to_string()),
            };
            let kind = if portable {
                EvmKind::Portable
            } else {
                EvmKind::Bound
            };
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let digest = match evm::evm_digest(
                sig.hash_algo,
                &refs,
                &file.meta(),
                kind,
                MiscLayout::Native,
                Some(&file.fs_uuid),
            ) {
                Ok(d) => d,
                Err(e) => return fail(e.to_string()),
            };
            match ring.verify_signature(&sig, &digest) {
                Ok(_) if portable => EvmStatus::PassImmutable,
                Ok(_) => EvmStatus::Pass,
                Err(e) => fail(e.to_string()),
            }
        }
        _ => EvmStatus::Fail(format!("{}: unknown type", file.names.evm)),
    }
}

/// Whether EVM lets a change of metadata it covers be made, given the file's
/// `status` (`evm_inode_setattr`, `evm_protect_xattr`); `changes` is whether the change
/// alters anything. `Err` says why not (EPERM).
pub fn may_change_metadata(
    keys: &EvmKeys,
    status: &EvmStatus,
    changes: bool,
) -> Result<(), String> {
    match status {
        EvmStatus::Unknown | EvmStatus::Pass | EvmStatus::NoXattrs => Ok(()),
        // A broken portable signature cannot be made worse; a valid one is immutable.
        EvmStatus::FailImmutable(_) => Ok(()),
        EvmStatus::PassImmutable if !changes => Ok(()),
        EvmStatus::PassImmutable => Err("covered by a portable signature".into()),
        // Without an HMAC key no HMAC will be written, so there is nothing to keep.
        EvmStatus::NoLabel if keys.hmac_key.is_none() => Ok(()),
        EvmStatus::NoLabel => Err("missing-HMAC".into()),
        EvmStatus::Fail(why) => Err(format!("invalid-HMAC: {why}")),
    }
}

/// After the IMA value of `file` became `ima_value`, or other metadata EVM covers
/// changed: rewrite its HMAC, as the kernel's `evm_inode_post_setxattr()` and
/// `evm_inode_post_setattr()` do when it has an HMAC key. A portable signature is
/// left alone (it no longer verifies if what it covered changed).
pub fn update_hmac(
    keys: &EvmKeys,
    file: &EvmFile<'_>,
    ima_value: Option<&[u8]>,
) -> Result<(), String> {
    let Some(key) = &keys.hmac_key else {
        return Ok(());
    };
    if let Ok(Some(v)) = sys::get_xattr(file.fd, file.names.evm) {
        if v.first() == Some(&(XattrType::EvmPortableDigSig as u8)) {
            return Ok(());
        }
    }
    let values = file.protected_values(ima_value)?;
    if values.is_empty() {
        return Ok(());
    }
    let mac = file.hmac(key, &values)?;
    let value = [&[XattrType::EvmHmac as u8][..], &mac].concat();
    set_through_proc(file.fd, file.names.evm, &value)
        .map_err(|e| format!("setxattr {}: {e}", file.names.evm))
}

/// Set an xattr on `fd`'s inode through `/proc/self/fd`: a read-only descriptor
/// cannot always set xattrs itself.
pub(crate) fn set_through_proc(
    fd: BorrowedFd<'_>,
    name: &str,
    value: &[u8],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::setxattr(p.as_str(), name, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}
