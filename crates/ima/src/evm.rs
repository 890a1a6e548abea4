//! The EVM signature input: a hash over the protected xattrs' values, then the inode
//! metadata (`struct h_misc`), then optionally the file system UUID — exactly as the
//! kernel's `evm_calc_hmac_or_hash()`/`hmac_add_misc()` and evmctl's
//! `calc_evm_hash()` build it.
//!
//! `h_misc` is a C struct in CPU byte order with trailing padding:
//! ```text
//! native/--m64: u64 ino, u32 generation, u32 uid, u32 gid, u16 mode, 2 pad = 24 bytes
//! --m32:        u32 ino, u32 generation, u32 uid, u32 gid, u16 mode, 2 pad = 20 bytes
//! ```
//! Portable signatures (type 0x05) zero `ino` and `generation` and never add the UUID.

use crate::{Error, HashAlgo, Hasher, Result};

/// The xattrs EVM protects, in the order they are hashed (evmctl's default list;
/// with `--smack` the SMACK64EXEC/TRANSMUTE/MMAP names follow `security.SMACK64`).
pub const EVM_XATTRS: &[&str] = &[
    "security.selinux",
    "security.SMACK64",
    "security.apparmor",
    "security.ima",
    "security.capability",
];

/// The longer list of evmctl's `--smack`.
pub const EVM_XATTRS_SMACK: &[&str] = &[
    "security.selinux",
    "security.SMACK64",
    "security.SMACK64EXEC",
    "security.SMACK64TRANSMUTE",
    "security.SMACK64MMAP",
    "security.apparmor",
    "security.ima",
    "security.capability",
];

/// Layout of `struct h_misc`: the signer's native one, or forced for another target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MiscLayout {
    /// `unsigned long ino` of this build (64-bit on 64-bit targets).
    #[default]
    Native,
    /// `--m32`: 32-bit `ino`.
    M32,
    /// `--m64`: 64-bit `ino`.
    M64,
}

/// The inode metadata EVM covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvmMeta {
    pub ino: u64,
    pub generation: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_mode` (type and permission bits; the kernel stores it as `umode_t`, 16 bits).
    pub mode: u32,
}

/// What kind of EVM value the hash is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvmKind {
    /// Type 0x03: bound to this inode (ino, generation, optionally fs UUID).
    Bound,
    /// Type 0x05: portable (no ino, generation or UUID).
    Portable,
}

/// The `h_misc` bytes.
pub fn h_misc(meta: &EvmMeta, kind: EvmKind, layout: MiscLayout) -> Vec<u8> {
    let (ino, generation) = match kind {
        EvmKind::Bound => (meta.ino, meta.generation),
        EvmKind::Portable => (0, 0),
    };
    let wide = match layout {
        MiscLayout::M32 => false,
        MiscLayout::M64 => true,
        MiscLayout::Native => cfg!(target_pointer_width = "64"),
    };
    let mut b = Vec::with_capacity(24);
    if wide {
        b.extend_from_slice(&ino.to_ne_bytes());
    } else {
        b.extend_from_slice(&(ino as u32).to_ne_bytes());
    }
    b.extend_from_slice(&generation.to_ne_bytes());
    b.extend_from_slice(&meta.uid.to_ne_bytes());
    b.extend_from_slice(&meta.gid.to_ne_bytes());
    b.extend_from_slice(&(meta.mode as u16).to_ne_bytes());
    b.extend_from_slice(&[0, 0]);
    b
}

/// The EVM digest: `H(xattr values in EVM order ‖ h_misc ‖ [uuid])`.
///
/// `xattr_values` are the values of the protected xattrs that exist, already in
/// [`EVM_XATTRS`] order. `uuid` is only hashed for [`EvmKind::Bound`].
pub fn evm_digest(
    algo: HashAlgo,
    xattr_values: &[&[u8]],
    meta: &EvmMeta,
    kind: EvmKind,
    layout: MiscLayout,
    uuid: Option<&[u8; 16]>,
) -> Result<Vec<u8>> {
    let mut h = Hasher::new(algo)?;
    for v in xattr_values {
        h.update(v);
    }
    h.update(&h_misc(meta, kind, layout));
    if let (EvmKind::Bound, Some(u)) = (kind, uuid) {
        h.update(u);
    }
    Ok(h.finalize())
}

/// Length of EVM's HMAC key: the kernel (`evm_set_key`) and evmctl pad the key
/// with zeros to this many bytes before keying the HMAC.
pub const EVM_KEY_LEN: usize = 128;

/// The EVM HMAC (`security.evm` type 0x02, `EVM_XATTR_HMAC`):
/// `HMAC(key padded to 128 bytes, xattr values in EVM order ‖ h_misc ‖ [uuid])`, as
/// the kernel's `evm_calc_hmac()` and evmctl's `calc_evm_hmac()` compute it. The
/// kernel uses HMAC-SHA1 and adds the file system's UUID (`s_uuid`, zeros where the
/// file system has none) when built with `CONFIG_EVM_ATTR_FSUUID` (the default);
/// evmctl 1.4's `hmac` never adds it.
pub fn evm_hmac(
    algo: HashAlgo,
    key: &[u8],
    xattr_values: &[&[u8]],
    meta: &EvmMeta,
    layout: MiscLayout,
    uuid: Option<&[u8; 16]>,
) -> Result<Vec<u8>> {
    if key.len() > EVM_KEY_LEN {
        return Err(Error::EvmKeyLength(key.len()));
    }
    let mut padded = key.to_vec();
    padded.resize(EVM_KEY_LEN, 0);
    let misc = h_misc(meta, EvmKind::Bound, layout);
    let parts: Vec<&[u8]> = xattr_values
        .iter()
        .copied()
        .chain([&misc[..]])
        .chain(uuid.map(|u| &u[..]))
        .collect();
    crate::hash::hmac(algo, &padded, &parts)
}

/// Parse a UUID in its text form (`8-4-4-4-12` hex digits) into 16 bytes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let groups: Vec<&str> = s.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let bytes = hex::decode(groups.concat()).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h_misc_layouts() {
        let m = EvmMeta {
            ino: 0x1122334455,
            generation: 7,
            uid: 1000,
            gid: 100,
            mode: 0o100644,
        };
        let b = h_misc(&m, EvmKind::Bound, MiscLayout::M64);
        assert_eq!(b.len(), 24);
        let p = h_misc(&m, EvmKind::Portable, MiscLayout::M64);
        assert_eq!(&p[..12], &[0; 12]);
        assert_eq!(&p[12..16], &1000u32.to_ne_bytes());
        assert_eq!(&p[20..22], &(0o100644u16).to_ne_bytes());
        assert_eq!(h_misc(&m, EvmKind::Bound, MiscLayout::M32).len(), 20);
    }

    #[test]
    fn uuid_parsing() {
        let u = parse_uuid("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(u[0], 0x01);
        assert_eq!(u[15], 0xef);
        assert!(parse_uuid("0123456789abcdef0123456789abcdef").is_none());
        assert!(parse_uuid("01234567-89ab-cdef-0123-456789abcdeg").is_none());
    }

    #[test]
    fn digest_covers_uuid_only_when_bound() {
        let m = EvmMeta::default();
        let u = [1u8; 16];
        let a = evm_digest(
            HashAlgo::Sha256,
            &[b"x"],
            &m,
            EvmKind::Portable,
            MiscLayout::M64,
            Some(&u),
        )
        .unwrap();
        let b = evm_digest(
            HashAlgo::Sha256,
            &[b"x"],
            &m,
            EvmKind::Portable,
            MiscLayout::M64,
            None,
        )
        .unwrap();
        assert_eq!(a, b);
        let c = evm_digest(
            HashAlgo::Sha256,
            &[b"x"],
            &m,
            EvmKind::Bound,
            MiscLayout::M64,
            Some(&u),
        )
        .unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn hmac_key_is_zero_padded_to_128_bytes() {
        let m = EvmMeta::default();
        let mac = |key: &[u8]| evm_hmac(HashAlgo::Sha1, key, &[b"v"], &m, MiscLayout::M64, None);
        let short = mac(b"secret").unwrap();
        assert_eq!(short.len(), 20);
        assert_eq!(short, mac(b"secret\0\0").unwrap());
        let mut full = b"secret".to_vec();
        full.resize(EVM_KEY_LEN, 0);
        assert_eq!(short, mac(&full).unwrap());
        full.push(0);
        assert!(matches!(mac(&full), Err(Error::EvmKeyLength(129))));
    }

    #[test]
    fn hmac_with_uuid_appends_it_after_h_misc() {
        let m = EvmMeta::default();
        let u = [7u8; 16];
        let with = evm_hmac(HashAlgo::Sha1, b"k", &[b"v"], &m, MiscLayout::M64, Some(&u));
        let misc = h_misc(&m, EvmKind::Bound, MiscLayout::M64);
        let mut key = b"k".to_vec();
        key.resize(EVM_KEY_LEN, 0);
        let by_hand = crate::hash::hmac(HashAlgo::Sha1, &key, &[b"v", &misc, &u]);
        assert_eq!(with.unwrap(), by_hand.unwrap());
    }
}
