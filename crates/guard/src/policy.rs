//! What the guard asks a policy, and what it gets back.
//!
//! [`PolicyEngine`] is the seam to the IMA policy evaluator: the guard describes an
//! access ([`Access`]) and gets the actions that apply ([`Actions`]), with the
//! per-action options (PCR, template, signature requirements) of the rule that matched.
//! [`FixedPolicy`] is a policy that gives the same actions for every access.

use vigil_ima::HashAlgo;

use crate::template::Template;

/// The hook an access arrives through (the IMA `func=` values a file access can have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// open(2) of a file (`FILE_CHECK`).
    FileCheck,
    /// mmap with `PROT_EXEC` (`MMAP_CHECK`).
    MmapCheck,
    /// execve (`BPRM_CHECK`).
    BprmCheck,
}

/// `MAY_EXEC`.
pub const MAY_EXEC: u32 = 0x1;
/// `MAY_WRITE`.
pub const MAY_WRITE: u32 = 0x2;
/// `MAY_READ`.
pub const MAY_READ: u32 = 0x4;
/// `MAY_APPEND`.
pub const MAY_APPEND: u32 = 0x8;

/// One access to be decided.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The hook.
    pub hook: Hook,
    /// `MAY_*` bits requested.
    pub mask: u32,
    /// Real uid / effective uid / real gid / effective gid of the task.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// File owner.
    pub fowner: u32,
    /// File group.
    pub fgroup: u32,
    /// Filesystem magic.
    pub fsmagic: u64,
    /// The file system's UUID, type name and subtype.
    pub fs: &'a FsInfo,
}

/// What policy conditions know about the file system a file is on: IMA's `fsuuid=`,
/// `fsname=` and `fs_subtype=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsInfo {
    /// UUID (all zero when the file system has none).
    pub uuid: [u8; 16],
    /// Type name (`ext4`, `fuse`; empty if unknown).
    pub name: String,
    /// Subtype (FUSE file systems: `sshfs`, ...).
    pub subtype: Option<String>,
}

/// Options of a matching `measure` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureAction {
    /// `pcr=` (default 10).
    pub pcr: u32,
    /// `template=`, else the configured default.
    pub template: Option<Template>,
    /// `digest_type=verity`: log the fs-verity digest (`d-ngv2` type `verity`).
    pub verity: bool,
}

/// Options of a matching `appraise` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppraiseAction {
    /// `appraise_type=imasig` / `sigv3`: a signature is required, a hash xattr fails.
    pub require_signature: bool,
    /// `digest_type=verity`: the signature (v3, type 0x06) is over the fs-verity digest.
    pub verity: bool,
    /// `appraise_algos=`: allowed hash algorithms (empty = any).
    pub algos: Vec<HashAlgo>,
}

/// The actions that apply to one access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actions {
    /// Measure into the log.
    pub measure: Option<MeasureAction>,
    /// Appraise before allowing.
    pub appraise: Option<AppraiseAction>,
    /// Keep the `security.ima` hash current (`hash` rule).
    pub hash: bool,
}

/// A policy evaluator.
pub trait PolicyEngine: Send + Sync {
    /// The actions for `access`.
    fn actions(&self, access: &Access<'_>) -> Actions;

    /// The policy as the kernel's securityfs `policy` file would show it: one rule per
    /// line. Empty for a policy that is not written in the policy language.
    fn text(&self) -> &str {
        ""
    }
}

/// The same actions for every access.
#[derive(Debug, Clone, Default)]
pub struct FixedPolicy(pub Actions);

impl PolicyEngine for FixedPolicy {
    fn actions(&self, _: &Access<'_>) -> Actions {
        self.0.clone()
    }
}

/// The IMA policy language (a parsed and compiled `vigil_ima::policy::Policy`) as the
/// guard's policy: first match per action class, options of the matching rules.
/// A `template=` the guard cannot write (`ima`, `ima-modsig`, custom formats) falls
/// back to the configured default template.
impl PolicyEngine for vigil_ima::policy::CompiledPolicy {
    fn text(&self) -> &str {
        self.kernel_text()
    }

    fn actions(&self, a: &Access<'_>) -> Actions {
        use vigil_ima::policy::{algos_from_bits, Func, Request};
        let func = match a.hook {
            Hook::FileCheck => Func::FileCheck,
            Hook::MmapCheck => Func::MmapCheck,
            Hook::BprmCheck => Func::BprmCheck,
        };
        let req = Request {
            uid: a.uid,
            euid: a.euid,
            suid: a.euid,
            gid: a.gid,
            egid: a.egid,
            sgid: a.egid,
            fowner: a.fowner,
            fgroup: a.fgroup,
            fsmagic: a.fsmagic,
            fsuuid: a.fs.uuid,
            fsname: &a.fs.name,
            fs_subtype: a.fs.subtype.as_deref(),
            ..Request::new(func, (a.mask & 0xf) as u8)
        };
        let d = self.evaluate(&req);
        Actions {
            measure: d.must_measure().then(|| MeasureAction {
                pcr: u32::from(d.pcr.unwrap_or(10)),
                template: d.template.and_then(|t| Template::from_name(t).ok()),
                verity: d.digest_verity,
            }),
            appraise: d.must_appraise().then(|| AppraiseAction {
                require_signature: d.sig_required,
                verity: d.digest_verity,
                algos: d.appraise_algos.map(algos_from_bits).unwrap_or_default(),
            }),
            hash: d.must_hash(),
        }
    }
}
