//! The IMA policy language (`/sys/kernel/security/ima/policy`,
//! `Documentation/ABI/testing/ima_policy`).
//!
//! - [`parse`] / [`parse_all`]: the kernel's grammar, token by token, including its
//!   order-sensitive checks and `ima_validate_rule`; a rejected rule names its line, the
//!   token and the reason.
//! - [`Policy::to_kernel_string`]: the normalised form the kernel prints when the policy
//!   is read back.
//! - [`builtin`]: the built-in policies (`ima_policy=tcb|appraise_tcb|…`, `ima_tcb`).
//! - [`CompiledPolicy`]: the rules compiled to a compact form and evaluated without
//!   allocation, first match per action class, exactly as `ima_match_policy`.
//! - [`analyze`]: shadowed rules and risky patterns.
//!
//! ```
//! use vigil_ima::policy::{mask_from_open_flags, parse, Func, Request, MAY_EXEC};
//!
//! let policy = parse(
//!     "dont_measure fsmagic=0x9fa0\n\
//!      measure func=BPRM_CHECK mask=MAY_EXEC\n\
//!      measure func=FILE_CHECK mask=^MAY_READ uid=0\n\
//!      appraise fowner=0 appraise_type=imasig\n",
//! )?;
//! let compiled = policy.compile();
//!
//! // root opens a root-owned file O_RDWR on ext4
//! let open = Request {
//!     fsmagic: 0xef53,
//!     fsname: "ext4",
//!     ..Request::new(Func::FileCheck, mask_from_open_flags(2))
//! };
//! let d = compiled.evaluate(&open);
//! assert!(d.must_measure() && d.must_appraise());
//! assert_eq!(d.measure.rule, Some(2));
//! assert!(d.sig_required);
//!
//! // a user executes a file owned by a user
//! let exec = Request { uid: 1000, euid: 1000, fowner: 1000, ..Request::new(Func::BprmCheck, MAY_EXEC) };
//! let d = compiled.evaluate(&exec);
//! assert!(d.must_measure() && !d.must_appraise());
//! # Ok::<(), vigil_ima::Error>(())
//! ```

mod analyze;
pub mod builtin;
mod eval;
mod index;
mod parse;
mod print;

pub use analyze::{analyze, covers, Finding, FindingKind, Severity};
pub use eval::{
    mask_from_open_flags, ClassDecision, CompiledPolicy, Decision, Explanation, LsmLabel, Mismatch,
    Request, Step, StepOutcome,
};
pub use parse::{parse, parse_all, parse_rule, KernelConfig, ParseOutcome, Warning};

use crate::HashAlgo;

/// The largest policy file vigil reads: far above any real policy (thousands of
/// rules are a few hundred KiB), low enough that `/dev/zero` given as a policy is an
/// error and not an exhausted memory.
pub const MAX_POLICY_FILE: u64 = 16 << 20;

/// `MAY_EXEC`: the file is executed or mapped executable.
pub const MAY_EXEC: u8 = 0x1;
/// `MAY_WRITE`: the file is opened for writing.
pub const MAY_WRITE: u8 = 0x2;
/// `MAY_READ`: the file is opened for reading.
pub const MAY_READ: u8 = 0x4;
/// `MAY_APPEND`: the file is opened for appending.
pub const MAY_APPEND: u8 = 0x8;

/// Mask names in the kernel's print order.
pub(crate) const MASK_NAMES: [(u8, &str); 4] = [
    (MAY_EXEC, "MAY_EXEC"),
    (MAY_WRITE, "MAY_WRITE"),
    (MAY_READ, "MAY_READ"),
    (MAY_APPEND, "MAY_APPEND"),
];

/// Filesystem magic numbers used by the built-in policies (include/uapi/linux/magic.h).
pub mod magic {
    /// procfs
    pub const PROC: u64 = 0x9fa0;
    /// sysfs
    pub const SYSFS: u64 = 0x6265_6572;
    /// debugfs
    pub const DEBUGFS: u64 = 0x6462_6720;
    /// tmpfs
    pub const TMPFS: u64 = 0x0102_1994;
    /// ramfs
    pub const RAMFS: u64 = 0x8584_58f6;
    /// devpts
    pub const DEVPTS: u64 = 0x1cd1;
    /// binfmt_misc
    pub const BINFMTFS: u64 = 0x4249_4e4d;
    /// securityfs
    pub const SECURITYFS: u64 = 0x7363_6673;
    /// selinuxfs
    pub const SELINUX: u64 = 0xf97c_ff8c;
    /// smackfs
    pub const SMACK: u64 = 0x4341_5d53;
    /// cgroup v1
    pub const CGROUP: u64 = 0x0027_e0eb;
    /// cgroup v2
    pub const CGROUP2: u64 = 0x6367_7270;
    /// nsfs
    pub const NSFS: u64 = 0x6e73_6673;
    /// efivarfs
    pub const EFIVARFS: u64 = 0xde5e_81e4;
    /// FUSE
    pub const FUSE: u64 = 0x6573_5546;
    /// ext2/3/4
    pub const EXT4: u64 = 0xef53;
    /// xfs
    pub const XFS: u64 = 0x5846_5342;
    /// btrfs
    pub const BTRFS: u64 = 0x9123_683e;
    /// overlayfs
    pub const OVERLAYFS: u64 = 0x794c_7630;

    /// Pseudo filesystems (no persistent data, no xattrs worth appraising), with names.
    pub const PSEUDO: &[(u64, &str)] = &[
        (PROC, "proc"),
        (SYSFS, "sysfs"),
        (DEBUGFS, "debugfs"),
        (TMPFS, "tmpfs"),
        (RAMFS, "ramfs"),
        (DEVPTS, "devpts"),
        (BINFMTFS, "binfmt_misc"),
        (SECURITYFS, "securityfs"),
        (SELINUX, "selinuxfs"),
        (SMACK, "smackfs"),
        (CGROUP, "cgroup"),
        (CGROUP2, "cgroup2"),
        (NSFS, "nsfs"),
        (EFIVARFS, "efivarfs"),
    ];
}

/// The four action classes: each rule's action is one of them, positive or `dont_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ActionClass {
    /// `measure` / `dont_measure`: extend the measurement list and the TPM.
    Measure = 0,
    /// `appraise` / `dont_appraise`: check `security.ima` before access.
    Appraise = 1,
    /// `audit` / `dont_audit`: log the file hash to the audit log.
    Audit = 2,
    /// `hash` / `dont_hash`: keep a hash in `security.ima` up to date.
    Hash = 3,
}

impl ActionClass {
    /// All classes, in kernel bit order.
    pub const ALL: [ActionClass; 4] = [
        ActionClass::Measure,
        ActionClass::Appraise,
        ActionClass::Audit,
        ActionClass::Hash,
    ];

    /// The bit of this class in a class set (see [`Request::classes`]).
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The class with this name.
    pub fn from_name(s: &str) -> Option<ActionClass> {
        ActionClass::ALL.into_iter().find(|c| c.name() == s)
    }

    /// `measure`, `appraise`, `audit` or `hash`.
    pub const fn name(self) -> &'static str {
        match self {
            ActionClass::Measure => "measure",
            ActionClass::Appraise => "appraise",
            ActionClass::Audit => "audit",
            ActionClass::Hash => "hash",
        }
    }
}

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `measure`
    Measure,
    /// `dont_measure`
    DontMeasure,
    /// `appraise`
    Appraise,
    /// `dont_appraise`
    DontAppraise,
    /// `audit`
    Audit,
    /// `dont_audit`
    DontAudit,
    /// `hash`
    Hash,
    /// `dont_hash`
    DontHash,
}

impl Action {
    /// Every action with its token.
    pub const ALL: [(Action, &'static str); 8] = [
        (Action::Measure, "measure"),
        (Action::DontMeasure, "dont_measure"),
        (Action::Appraise, "appraise"),
        (Action::DontAppraise, "dont_appraise"),
        (Action::Audit, "audit"),
        (Action::DontAudit, "dont_audit"),
        (Action::Hash, "hash"),
        (Action::DontHash, "dont_hash"),
    ];

    /// Parse an action token.
    pub fn from_token(s: &str) -> Option<Action> {
        Action::ALL.iter().find(|(_, t)| *t == s).map(|(a, _)| *a)
    }

    /// The policy token.
    pub fn token(self) -> &'static str {
        Action::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, t)| *t)
            .unwrap_or("")
    }

    /// The class this action decides.
    pub const fn class(self) -> ActionClass {
        match self {
            Action::Measure | Action::DontMeasure => ActionClass::Measure,
            Action::Appraise | Action::DontAppraise => ActionClass::Appraise,
            Action::Audit | Action::DontAudit => ActionClass::Audit,
            Action::Hash | Action::DontHash => ActionClass::Hash,
        }
    }

    /// Whether this is the positive action (`measure`), not `dont_measure`.
    pub const fn is_do(self) -> bool {
        matches!(
            self,
            Action::Measure | Action::Appraise | Action::Audit | Action::Hash
        )
    }
}

macro_rules! funcs {
    ($( $variant:ident = $id:literal, $name:literal; )*) => {
        /// An IMA hook (`enum ima_hooks`), as named in `func=`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Func { $( #[doc = $name] $variant = $id, )* }

        impl Func {
            /// Every hook, in kernel order.
            pub const ALL: &'static [Func] = &[ $( Func::$variant, )* ];

            /// The kernel's name (`func_tokens[]`), as printed.
            pub const fn name(self) -> &'static str {
                match self { $( Func::$variant => $name, )* }
            }
        }
    };
}

funcs! {
    FileCheck = 1, "FILE_CHECK";
    MmapCheck = 2, "MMAP_CHECK";
    MmapCheckReqprot = 3, "MMAP_CHECK_REQPROT";
    BprmCheck = 4, "BPRM_CHECK";
    CredsCheck = 5, "CREDS_CHECK";
    PostSetattr = 6, "POST_SETATTR";
    ModuleCheck = 7, "MODULE_CHECK";
    FirmwareCheck = 8, "FIRMWARE_CHECK";
    KexecKernelCheck = 9, "KEXEC_KERNEL_CHECK";
    KexecInitramfsCheck = 10, "KEXEC_INITRAMFS_CHECK";
    PolicyCheck = 11, "POLICY_CHECK";
    KexecCmdline = 12, "KEXEC_CMDLINE";
    KeyCheck = 13, "KEY_CHECK";
    CriticalData = 14, "CRITICAL_DATA";
    SetxattrCheck = 15, "SETXATTR_CHECK";
}

impl Func {
    /// The hook named in a `func=` value, with the kernel's aliases (`PATH_CHECK`,
    /// `FILE_MMAP`). `POST_SETATTR` is a hook but cannot be named in a policy.
    pub fn from_policy_name(name: &str) -> Option<Func> {
        match name {
            "PATH_CHECK" => Some(Func::FileCheck),
            "FILE_MMAP" => Some(Func::MmapCheck),
            "POST_SETATTR" => None,
            _ => Func::ALL.iter().copied().find(|f| f.name() == name),
        }
    }

    /// The hook with this name or alias, `POST_SETATTR` included (for requests).
    pub fn from_name(name: &str) -> Option<Func> {
        if name == "POST_SETATTR" {
            return Some(Func::PostSetattr);
        }
        Func::from_policy_name(name)
    }

    /// The hook with kernel number `id`.
    pub fn from_id(id: u8) -> Option<Func> {
        Func::ALL.iter().copied().find(|f| *f as u8 == id)
    }
}

/// `mask=` condition: one `MAY_*` bit, compared for equality or (with `^`) any-of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaskCond {
    /// The single `MAY_*` bit named.
    pub bit: u8,
    /// `mask=^X`: matches when the request has bit X (among others). Without `^` the
    /// request's whole mask must equal X.
    pub any: bool,
}

impl MaskCond {
    /// Whether a request mask satisfies the condition.
    pub const fn matches(self, mask: u8) -> bool {
        if self.any {
            self.bit & mask != 0
        } else {
            self.bit == mask
        }
    }
}

/// Comparison operator of a numeric id condition (`uid=`, `uid<`, `uid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `>`
    Gt,
    /// `<`
    Lt,
}

impl CmpOp {
    /// `=`, `>` or `<`.
    pub const fn symbol(self) -> char {
        match self {
            CmpOp::Eq => '=',
            CmpOp::Gt => '>',
            CmpOp::Lt => '<',
        }
    }
}

/// A numeric id condition: `value <op> rule_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdCond {
    /// The operator.
    pub op: CmpOp,
    /// The id in the rule.
    pub value: u32,
}

impl IdCond {
    /// Whether an id satisfies the condition.
    #[inline]
    pub const fn matches(self, id: u32) -> bool {
        match self.op {
            CmpOp::Eq => id == self.value,
            CmpOp::Gt => id > self.value,
            CmpOp::Lt => id < self.value,
        }
    }

    /// The ids that satisfy the condition, as an inclusive range (empty: `lo > hi`).
    pub const fn range(self) -> (u64, u64) {
        let v = self.value as u64;
        match self.op {
            CmpOp::Eq => (v, v),
            CmpOp::Gt => (v + 1, u32::MAX as u64),
            CmpOp::Lt => (0, if v == 0 { 0 } else { v - 1 }),
        }
    }

    /// Whether no id satisfies it (`uid<0`, `uid>4294967295`).
    pub const fn is_empty(self) -> bool {
        matches!(
            (self.op, self.value),
            (CmpOp::Lt, 0) | (CmpOp::Gt, u32::MAX)
        )
    }

    /// Whether every id satisfying `self` satisfies `other`.
    pub const fn implies(self, other: IdCond) -> bool {
        if self.is_empty() {
            return true;
        }
        if other.is_empty() {
            return false;
        }
        let (a, b) = self.range();
        let (c, d) = other.range();
        c <= a && b <= d
    }
}

/// The task id a `uid`/`gid` slot compares. The kernel keeps one slot for `uid`/`euid`
/// and one for `gid`/`egid`, so a rule has at most one of each pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredCond {
    /// `euid`/`egid` (effective id; with CAP_SETUID/CAP_SETGID also the saved and
    /// real ids) rather than `uid`/`gid` (real id).
    pub effective: bool,
    /// The comparison.
    pub cond: IdCond,
}

/// The six LSM conditions, in the kernel's order (`enum lsm_rule_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LsmField {
    /// `obj_user=`
    ObjUser = 0,
    /// `obj_role=`
    ObjRole = 1,
    /// `obj_type=`
    ObjType = 2,
    /// `subj_user=`
    SubjUser = 3,
    /// `subj_role=`
    SubjRole = 4,
    /// `subj_type=`
    SubjType = 5,
}

impl LsmField {
    /// All six, kernel order.
    pub const ALL: [LsmField; 6] = [
        LsmField::ObjUser,
        LsmField::ObjRole,
        LsmField::ObjType,
        LsmField::SubjUser,
        LsmField::SubjRole,
        LsmField::SubjType,
    ];

    /// The condition's keyword.
    pub const fn keyword(self) -> &'static str {
        match self {
            LsmField::ObjUser => "obj_user",
            LsmField::ObjRole => "obj_role",
            LsmField::ObjType => "obj_type",
            LsmField::SubjUser => "subj_user",
            LsmField::SubjRole => "subj_role",
            LsmField::SubjType => "subj_type",
        }
    }
}

/// The signature an `appraise` rule requires (`appraise_type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppraiseType {
    /// `imasig`: a signature (type 0x03) in `security.ima`; hashes fail.
    Imasig,
    /// `imasig|modsig`: an xattr signature or an appended module signature.
    ImasigModsig,
    /// `sigv3`: a version-3 signature (with `digest_type=verity`: over the fs-verity
    /// digest, type 0x06).
    Sigv3,
}

impl AppraiseType {
    /// The value as written after `appraise_type=`.
    pub const fn token(self) -> &'static str {
        match self {
            AppraiseType::Imasig => "imasig",
            AppraiseType::ImasigModsig => "imasig|modsig",
            AppraiseType::Sigv3 => "sigv3",
        }
    }
}

/// The kernel's built-in templates (`builtin_templates[]`): name and field format.
pub use crate::list::template::BUILTIN_TEMPLATES as TEMPLATES;

/// One policy rule, as the kernel stores it after parsing (`struct ima_rule_entry`).
///
/// Two rules are equal exactly when the kernel would store (and print) them the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// `func=`
    pub func: Option<Func>,
    /// `mask=` / `mask=^`
    pub mask: Option<MaskCond>,
    /// `fsmagic=`
    pub fsmagic: Option<u64>,
    /// `fsuuid=` (16 bytes in string order)
    pub fsuuid: Option<[u8; 16]>,
    /// `fsname=`
    pub fsname: Option<String>,
    /// `fs_subtype=` (e.g. the FUSE subtype)
    pub fs_subtype: Option<String>,
    /// `uid=`/`uid<`/`uid>` or `euid…`
    pub uid: Option<CredCond>,
    /// `gid…` or `egid…`
    pub gid: Option<CredCond>,
    /// `fowner…` (inode owner)
    pub fowner: Option<IdCond>,
    /// `fgroup…` (inode group)
    pub fgroup: Option<IdCond>,
    /// LSM labels, indexed by [`LsmField`].
    pub lsm: [Option<String>; 6],
    /// `keyrings=` (KEY_CHECK)
    pub keyrings: Option<Vec<String>>,
    /// `label=` (CRITICAL_DATA)
    pub label: Option<Vec<String>>,
    /// `pcr=`
    pub pcr: Option<u8>,
    /// `template=`, by built-in template name.
    pub template: Option<&'static str>,
    /// A signature is required (`appraise_type=` present).
    pub sig_required: bool,
    /// `appraise_type=imasig|modsig`
    pub modsig_allowed: bool,
    /// `appraise_type=sigv3` without `digest_type=verity` (v3 signature over the
    /// regular file hash; kernels from 2026).
    pub sigv3: bool,
    /// `digest_type=verity`
    pub digest_verity: bool,
    /// `appraise_algos=`: bit `1 << id` per allowed [`HashAlgo`].
    pub appraise_algos: Option<u32>,
    /// `permit_directio`
    pub permit_directio: bool,
}

impl Rule {
    /// A rule with only an action.
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            func: None,
            mask: None,
            fsmagic: None,
            fsuuid: None,
            fsname: None,
            fs_subtype: None,
            uid: None,
            gid: None,
            fowner: None,
            fgroup: None,
            lsm: Default::default(),
            keyrings: None,
            label: None,
            pcr: None,
            template: None,
            sig_required: false,
            modsig_allowed: false,
            sigv3: false,
            digest_verity: false,
            appraise_algos: None,
            permit_directio: false,
        }
    }

    /// The `appraise_type=` in effect, as the kernel prints it.
    pub fn appraise_type(&self) -> Option<AppraiseType> {
        if !self.sig_required {
            None
        } else if self.digest_verity || self.sigv3 {
            Some(AppraiseType::Sigv3)
        } else if self.modsig_allowed {
            Some(AppraiseType::ImasigModsig)
        } else {
            Some(AppraiseType::Imasig)
        }
    }

    /// The allowed algorithms of `appraise_algos=`, in id order.
    pub fn appraise_algo_list(&self) -> Vec<HashAlgo> {
        algos_from_bits(self.appraise_algos.unwrap_or(0))
    }

    /// Whether the rule has any LSM condition.
    pub fn has_lsm(&self) -> bool {
        self.lsm.iter().any(Option::is_some)
    }
}

/// The algorithms whose bit is set in an `appraise_algos` mask, in id order.
pub fn algos_from_bits(bits: u32) -> Vec<HashAlgo> {
    HashAlgo::ALL
        .iter()
        .copied()
        .filter(|a| bits & (1u32 << *a as u8) != 0)
        .collect()
}

/// A parsed policy: rules in order, with the source line of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
    /// 1-based source line of each rule (0 for built-in rules).
    pub lines: Vec<usize>,
}

impl Policy {
    /// A policy from rules without source lines.
    pub fn from_rules(rules: Vec<Rule>) -> Policy {
        let lines = vec![0; rules.len()];
        Policy { rules, lines }
    }

    /// Append another policy's rules (as the kernel appends further writes).
    pub fn extend(&mut self, other: Policy) {
        self.rules.extend(other.rules);
        self.lines.extend(other.lines);
    }

    /// Whether two policies are the same rule list (what the kernel would hold),
    /// regardless of spelling, aliases, token order, comments and blank lines.
    pub fn same_rules(&self, other: &Policy) -> bool {
        self.rules == other.rules
    }

    /// Compile for evaluation.
    pub fn compile(&self) -> CompiledPolicy {
        CompiledPolicy::new(self)
    }
}

/// One step of a rule-by-rule comparison of two policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffItem {
    /// The rule is in both (indices in the old and the new policy).
    Same(usize, usize),
    /// Only in the old policy.
    Removed(usize),
    /// Only in the new policy.
    Added(usize),
}

/// Semantic difference of two policies: a longest-common-subsequence alignment of
/// their rules (compared as the kernel stores them).
pub fn diff(old: &Policy, new: &Policy) -> Vec<DiffItem> {
    let (a, b) = (&old.rules, &new.rules);
    let (n, m) = (a.len(), b.len());
    // lcs[i][j] = LCS length of a[i..] and b[j..]
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(DiffItem::Same(i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            out.push(DiffItem::Added(j));
            j += 1;
        } else {
            out.push(DiffItem::Removed(i));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
