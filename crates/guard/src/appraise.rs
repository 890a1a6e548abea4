//! Appraisal: the decision on a file's `security.ima` value (IMA's
//! `ima_appraise_measurement`), with the modes enforce / log / fix / off.
//!
//! Hash values (types 0x01 and 0x04) are checked here; signatures (0x03 v2/v3, 0x06
//! v3 over the fs-verity digest) go to a [`SignatureVerifier`] — the key ring.

use std::path::PathBuf;

use vigil_ima::HashAlgo;

use crate::policy::AppraiseAction;

/// `ima_appraise=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppraiseMode {
    /// Deny access when appraisal fails (default).
    #[default]
    Enforce,
    /// Evaluate and record, never deny.
    Log,
    /// Never deny; write the current hash for missing or invalid *hash* values.
    Fix,
    /// No appraisal.
    Off,
}

/// Where a file's IMA value is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum XattrSource {
    /// `security.ima` (needs CAP_SYS_ADMIN to write).
    #[default]
    Security,
    /// `user.ima` (as `evmctl --xattr-user` writes it).
    User,
    /// A sidecar store: the value of a file lives in `<dir>/<identity hex>.ima`.
    Sidecar(PathBuf),
}

/// The outcome of appraising one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The hash value matches the content.
    PassHash,
    /// A signature over the content (or its fs-verity digest) verified.
    PassSignature,
    /// No value, but the file was created by this opener (and may be written).
    PassNewFile,
    /// Failed, with the kernel's audit cause (`missing-hash`, `invalid-hash`,
    /// `IMA-signature-required`, `invalid-signature`, …).
    Fail(String),
}

impl Verdict {
    /// Whether access may proceed.
    pub fn passed(&self) -> bool {
        !matches!(self, Verdict::Fail(_))
    }
}

/// A key ring: verifies IMA signature values.
pub trait SignatureVerifier: Send + Sync {
    /// Verify the whole `security.ima` value `xattr` (type 0x03 or 0x06). `file_digest`
    /// computes the content hash with a given algorithm; `verity` is the file's
    /// fs-verity digest if one was computed. `Err` carries the audit cause.
    fn verify(
        &self,
        xattr: &[u8],
        file_digest: &mut dyn FnMut(HashAlgo) -> Result<Vec<u8>, String>,
        verity: Option<(HashAlgo, &[u8])>,
    ) -> Result<(), String>;
}

/// A hash value (`security.ima` types 0x01, 0x04): algorithm and digest.
pub fn parse_hash_value(v: &[u8]) -> Option<(HashAlgo, &[u8])> {
    match v.first()? {
        0x01 => {
            let d = &v[1..];
            HashAlgo::from_legacy_len(d.len()).map(|a| (a, d))
        }
        0x04 => {
            let a = HashAlgo::from_id(*v.get(1)?).ok()?;
            let d = &v[2..];
            (d.len() == a.digest_len()).then_some((a, d))
        }
        _ => None,
    }
}

/// Whether `v` is a signature value (types 0x03, 0x05, 0x06).
pub fn is_signature(v: &[u8]) -> bool {
    matches!(v.first(), Some(0x03 | 0x05 | 0x06))
}

/// The hash value the kernel writes: 0x01 + digest for md5/sha1, else 0x04 + id + digest.
pub fn hash_value(algo: HashAlgo, digest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(digest.len() + 2);
    if matches!(algo, HashAlgo::Md4 | HashAlgo::Md5 | HashAlgo::Sha1) {
        v.push(0x01);
    } else {
        v.push(0x04);
        v.push(algo as u8);
    }
    v.extend_from_slice(digest);
    v
}

/// Appraise `value` (the file's IMA value, if any) for `action`.
pub fn appraise(
    action: &AppraiseAction,
    value: Option<&[u8]>,
    new_file: bool,
    size: u64,
    verifier: Option<&dyn SignatureVerifier>,
    file_digest: &mut dyn FnMut(HashAlgo) -> Result<Vec<u8>, String>,
    verity: Option<(HashAlgo, &[u8])>,
) -> Verdict {
    let fail = |s: &str| Verdict::Fail(s.to_owned());
    let Some(v) = value else {
        if new_file && (!action.require_signature || size == 0) {
            return Verdict::PassNewFile;
        }
        return fail(if action.require_signature {
            "IMA-signature-required"
        } else {
            "missing-hash"
        });
    };
    if is_signature(v) {
        if v[0] == 0x05 {
            return fail("invalid-signature");
        }
        if action.verity && v[0] != 0x06 {
            return fail("IMA-signature-required");
        }
        if let (false, Some(alg)) = (action.algos.is_empty(), v.get(2)) {
            match HashAlgo::from_id(*alg) {
                Ok(a) if action.algos.contains(&a) => {}
                _ => return fail("invalid-signature"),
            }
        }
        let Some(verifier) = verifier else {
            return fail("no-keys");
        };
        return match verifier.verify(v, file_digest, verity) {
            Ok(()) => Verdict::PassSignature,
            Err(cause) => Verdict::Fail(cause),
        };
    }
    if action.require_signature {
        return fail("IMA-signature-required");
    }
    let Some((algo, want)) = parse_hash_value(v) else {
        return fail("invalid-hash");
    };
    if !action.algos.is_empty() && !action.algos.contains(&algo) {
        return fail("invalid-hash");
    }
    match file_digest(algo) {
        Ok(d) if d == want => Verdict::PassHash,
        Ok(_) => fail("invalid-hash"),
        Err(e) => Verdict::Fail(e),
    }
}
