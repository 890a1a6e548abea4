//! Appraisal: the decision on a file's `security.ima` value (IMA's
//! `ima_appraise_measurement`), with the modes enforce / log / fix / off.
//!
//! Hash values (types 0x01 and 0x04) are checked here; signatures (0x03 v2/v3, 0x06
//! v3 over the fs-verity digest) go to a [`SignatureVerifier`] — the key ring. EVM's
//! status ([`crate::evm`]) is weighed first, as the kernel does.

use std::path::PathBuf;

use vigil_ima::{HashAlgo, ImaXattr, KeyRing, Signature, XattrType};

use crate::evm::EvmStatus;
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

impl AppraiseMode {
    /// The `ima_appraise=` value: `enforce`, `log`, `fix` or `off`.
    pub const fn name(self) -> &'static str {
        match self {
            AppraiseMode::Enforce => "enforce",
            AppraiseMode::Log => "log",
            AppraiseMode::Fix => "fix",
            AppraiseMode::Off => "off",
        }
    }
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

impl std::fmt::Display for XattrSource {
    /// `security.ima`, `user.ima` or `sidecar DIR`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XattrSource::Security => f.write_str("security.ima"),
            XattrSource::User => f.write_str("user.ima"),
            XattrSource::Sidecar(dir) => write!(f, "sidecar {}", dir.display()),
        }
    }
}

/// The outcome of appraising one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The hash value matches the content.
    PassHash,
    /// A signature over the content (or its fs-verity digest) verified, or the hash
    /// value matches and an EVM portable signature over it verified: the file is
    /// treated as signed (and immutable).
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

/// Whether `v` is a signature value (types 0x03, 0x05, 0x06).
pub fn is_signature(v: &[u8]) -> bool {
    matches!(v.first(), Some(0x03 | 0x05 | 0x06))
}

/// The hash value the kernel (and evmctl) writes for `digest`: 0x01 + digest for
/// md4/md5/sha1, else 0x04 + algorithm id + digest.
pub fn hash_value(algo: HashAlgo, digest: &[u8]) -> Vec<u8> {
    ImaXattr::from_digest(algo, digest.to_vec())
        .map(|x| x.encode())
        .unwrap_or_default()
}

/// A key ring verifies v2 and v3 signatures: type 0x03 over the content hash made with
/// the signature's algorithm, type 0x06 over the fs-verity digest.
impl SignatureVerifier for KeyRing {
    fn verify(
        &self,
        xattr: &[u8],
        file_digest: &mut dyn FnMut(HashAlgo) -> Result<Vec<u8>, String>,
        verity: Option<(HashAlgo, &[u8])>,
    ) -> Result<(), String> {
        let sig = Signature::decode(xattr).map_err(|e| format!("invalid-signature: {e}"))?;
        let digest = match sig.xattr_type {
            XattrType::ImaVeritySig => match verity {
                Some((algo, d)) if algo == sig.hash_algo => d.to_vec(),
                Some((algo, _)) => {
                    return Err(format!(
                        "invalid-signature: signature over a {} verity digest, tree is {algo}",
                        sig.hash_algo
                    ))
                }
                None => return Err("no-verity-digest".into()),
            },
            _ => file_digest(sig.hash_algo)?,
        };
        self.verify_signature(&sig, &digest)
            .map(|_| ())
            .map_err(|e| format!("invalid-signature: {e}"))
    }
}

/// Appraise `value` (the file's IMA value, if any) for `action`; `evm` is EVM's status
/// of that value (only asked for when there is one).
#[allow(clippy::too_many_arguments)]
pub fn appraise(
    action: &AppraiseAction,
    value: Option<&[u8]>,
    evm: &mut dyn FnMut(&[u8]) -> EvmStatus,
    new_file: bool,
    size: u64,
    verifier: Option<&dyn SignatureVerifier>,
    file_digest: &mut dyn FnMut(HashAlgo) -> Result<Vec<u8>, String>,
    verity: Option<(HashAlgo, &[u8])>,
) -> Verdict {
    let fail = |s: &str| Verdict::Fail(s.to_owned());
    // The kernel's cause for a value that is not the signature the rule requires.
    let signature_required = match action.verity {
        true => "verity-signature-required",
        false => "IMA-signature-required",
    };
    let Some(v) = value else {
        if new_file && (!action.require_signature || size == 0) {
            return Verdict::PassNewFile;
        }
        return fail(if !action.require_signature {
            "missing-hash"
        } else {
            signature_required
        });
    };
    // ima_appraise_measurement: EVM first.
    let evm_signed = match evm(v) {
        EvmStatus::Unknown | EvmStatus::Pass => false,
        EvmStatus::PassImmutable => true,
        EvmStatus::NoLabel | EvmStatus::NoXattrs => return fail("missing-HMAC"),
        EvmStatus::Fail(why) => return Verdict::Fail(format!("invalid-HMAC: {why}")),
        EvmStatus::FailImmutable(why) => {
            return Verdict::Fail(format!("invalid-fail-immutable: {why}"))
        }
    };
    if is_signature(v) {
        if v[0] == 0x05 {
            return fail("invalid-signature");
        }
        // xattr_verify: an fs-verity signature only where the rule asks for one
        // (`digest_type=verity`); elsewhere the kernel checks it against the file
        // hash, which it never signs.
        match (action.verity, v[0] == 0x06) {
            (true, false) => return fail(signature_required),
            (false, true) if action.require_signature => return fail(signature_required),
            (false, true) => return fail("invalid-verity-signature"),
            _ => {}
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
    // A hash value under a valid portable EVM signature counts as signed, except
    // where only an fs-verity signature will do.
    if action.require_signature && (!evm_signed || action.verity) {
        return fail(signature_required);
    }
    let (algo, want) = match ImaXattr::decode(v) {
        Ok(ImaXattr::Digest { algo, digest } | ImaXattr::DigestNg { algo, digest }) => {
            (algo, digest)
        }
        _ => return fail("invalid-hash"),
    };
    if !action.algos.is_empty() && !action.algos.contains(&algo) {
        return fail("invalid-hash");
    }
    match file_digest(algo) {
        Ok(d) if d == want && evm_signed => Verdict::PassSignature,
        Ok(d) if d == want => Verdict::PassHash,
        Ok(_) => fail("invalid-hash"),
        Err(e) => Verdict::Fail(e),
    }
}
