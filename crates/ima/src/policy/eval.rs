//! Policy evaluation (`ima_match_policy` / `ima_match_rules`): rules compiled to a
//! compact form, walked in order with a set of undecided action classes; the first
//! matching rule of each class decides it. Evaluation allocates nothing.

use super::{
    Action, ActionClass, AppraiseType, CredCond, Func, IdCond, LsmField, MaskCond, Policy, Rule,
};

/// LSM label components of a subject (task) or object (inode), as the LSM reports them
/// (for SELinux `user:role:type:level`). `None` never matches a condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LsmLabel<'a> {
    /// SELinux user (`system_u`), Smack label.
    pub user: Option<&'a str>,
    /// SELinux role (`system_r`).
    pub role: Option<&'a str>,
    /// SELinux type (`bin_t`).
    pub type_: Option<&'a str>,
}

/// Everything a policy decision looks at: the hook and what the task asked for, the
/// task's credentials, and the file's owner and filesystem. Fill it from an open (FUSE
/// `OPEN`: `func = FILE_CHECK`, mask from the open flags; `execve`: `BPRM_CHECK` with
/// `MAY_EXEC`; `mmap(PROT_EXEC)`: `MMAP_CHECK` with `MAY_EXEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The hook.
    pub func: Func,
    /// `MAY_*` bits requested (open `O_RDWR` = `MAY_READ | MAY_WRITE`).
    pub mask: u8,
    /// Real uid of the task.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Saved set-user-id.
    pub suid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved set-group-id.
    pub sgid: u32,
    /// The task has CAP_SETUID (then `euid=` also matches on suid and uid).
    pub cap_setuid: bool,
    /// The task has CAP_SETGID (then `egid=` also matches on sgid and gid).
    pub cap_setgid: bool,
    /// The file's owner (as seen through the mount's id mapping).
    pub fowner: u32,
    /// The file's group.
    pub fgroup: u32,
    /// The filesystem's magic (`statfs.f_type`).
    pub fsmagic: u64,
    /// The filesystem's UUID (all zero if it has none).
    pub fsuuid: [u8; 16],
    /// The filesystem type name (`ext4`, `fuse`, `tmpfs`).
    pub fsname: &'a str,
    /// The filesystem subtype (FUSE: the daemon's subtype), if any.
    pub fs_subtype: Option<&'a str>,
    /// The task's LSM label.
    pub subj: LsmLabel<'a>,
    /// The file's LSM label.
    pub obj: LsmLabel<'a>,
    /// KEY_CHECK: the keyring's name; CRITICAL_DATA: the data's label.
    pub func_data: Option<&'a str>,
    /// The action classes asked about ([`ActionClass::bit`]s; all four by default).
    pub classes: u8,
}

impl Default for Request<'_> {
    /// A root task opening a file for reading (`FILE_CHECK`, `MAY_READ`), all classes.
    fn default() -> Self {
        Request {
            func: Func::FileCheck,
            mask: super::MAY_READ,
            uid: 0,
            euid: 0,
            suid: 0,
            gid: 0,
            egid: 0,
            sgid: 0,
            cap_setuid: false,
            cap_setgid: false,
            fowner: 0,
            fgroup: 0,
            fsmagic: 0,
            fsuuid: [0; 16],
            fsname: "",
            fs_subtype: None,
            subj: LsmLabel::default(),
            obj: LsmLabel::default(),
            func_data: None,
            classes: 0xf,
        }
    }
}

/// The `MAY_*` mask the kernel passes to IMA for an `open(2)` with `flags`
/// (`build_open_flags` + `ima_file_check`): the access mode (`O_RDONLY` → `MAY_READ`,
/// `O_WRONLY` → `MAY_WRITE`, `O_RDWR` → both), `O_TRUNC` adds `MAY_WRITE`, `O_APPEND`
/// adds `MAY_APPEND`. Works on the flags of a FUSE `OPEN` request.
pub const fn mask_from_open_flags(flags: u32) -> u8 {
    const O_ACCMODE: u32 = 0o3;
    const O_TRUNC: u32 = 0o1000;
    const O_APPEND: u32 = 0o2000;
    let mut mask = match flags & O_ACCMODE {
        0 => super::MAY_READ,
        1 => super::MAY_WRITE,
        _ => super::MAY_READ | super::MAY_WRITE,
    };
    if flags & O_TRUNC != 0 {
        mask |= super::MAY_WRITE;
    }
    if flags & O_APPEND != 0 {
        mask |= super::MAY_APPEND;
    }
    mask
}

impl<'a> Request<'a> {
    /// A request for `func` with `mask`, otherwise [`Request::default`].
    pub fn new(func: Func, mask: u8) -> Request<'a> {
        Request {
            func,
            mask,
            ..Request::default()
        }
    }
}

/// How one action class was decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassDecision {
    /// Index of the deciding rule, if any rule matched.
    pub rule: Option<u32>,
    /// Whether that rule is the positive action (`measure`) rather than `dont_measure`.
    pub act: bool,
}

impl ClassDecision {
    /// Whether a rule decided the class.
    pub const fn matched(self) -> bool {
        self.rule.is_some()
    }
}

/// The outcome of one evaluation: per class the deciding rule, plus the options the
/// matching rules put in effect. Small and `Copy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    /// `measure` / `dont_measure`
    pub measure: ClassDecision,
    /// `appraise` / `dont_appraise`
    pub appraise: ClassDecision,
    /// `audit` / `dont_audit`
    pub audit: ClassDecision,
    /// `hash` / `dont_hash`
    pub hash: ClassDecision,
    /// `pcr=` of the measure rule (the kernel default is PCR 10).
    pub pcr: Option<u8>,
    /// `template=` of the measure rule (else the boot-time template).
    pub template: Option<&'static str>,
    /// A signature is required (`appraise_type=`).
    pub sig_required: bool,
    /// An appended module signature is acceptable.
    pub modsig_allowed: bool,
    /// A v3 signature is required (`appraise_type=sigv3` without verity).
    pub sigv3: bool,
    /// fs-verity digests are used (`digest_type=verity`).
    pub digest_verity: bool,
    /// Direct I/O is permitted (`permit_directio`).
    pub permit_directio: bool,
    /// `appraise_algos=` of the appraise rule: bit `1 << HashAlgo id` per allowed
    /// algorithm (`None`: any).
    pub appraise_algos: Option<u32>,
}

impl Decision {
    /// The decision of one class.
    pub const fn class(&self, c: ActionClass) -> ClassDecision {
        match c {
            ActionClass::Measure => self.measure,
            ActionClass::Appraise => self.appraise,
            ActionClass::Audit => self.audit,
            ActionClass::Hash => self.hash,
        }
    }

    fn class_mut(&mut self, c: ActionClass) -> &mut ClassDecision {
        match c {
            ActionClass::Measure => &mut self.measure,
            ActionClass::Appraise => &mut self.appraise,
            ActionClass::Audit => &mut self.audit,
            ActionClass::Hash => &mut self.hash,
        }
    }

    /// The file must be measured.
    pub const fn must_measure(&self) -> bool {
        self.measure.act
    }

    /// The file must be appraised.
    pub const fn must_appraise(&self) -> bool {
        self.appraise.act
    }

    /// The file hash must be audited.
    pub const fn must_audit(&self) -> bool {
        self.audit.act
    }

    /// The hash xattr must be kept current by a `hash` rule. As in the kernel, a
    /// matching `appraise` rule takes this over (appraisal keeps it current).
    pub fn must_hash(&self) -> bool {
        self.hash.act && !(self.appraise.act && self.appraise.rule > self.hash.rule)
    }

    /// The signature requirement in effect, as `appraise_type=` would print it.
    pub const fn appraise_type(&self) -> Option<AppraiseType> {
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

    /// Whether a file hashed with algorithm id `algo` is acceptable to the appraise rule.
    pub const fn algo_allowed(&self, algo: crate::HashAlgo) -> bool {
        match self.appraise_algos {
            None => true,
            Some(bits) => bits & (1u32 << algo as u8) != 0,
        }
    }
}

/// Why a rule did not match a request: the first condition that failed, in the
/// kernel's order of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// `func=` names another hook.
    Func {
        /// The rule's hook.
        rule: Func,
    },
    /// KEY_CHECK and CRITICAL_DATA requests match only rules with that very `func=`.
    NotDataRule,
    /// `mask=`/`mask=^` does not hold for the request's mask.
    Mask(MaskCond),
    /// `fsmagic=` differs.
    Fsmagic(u64),
    /// `fsname=` differs.
    Fsname,
    /// `fs_subtype=` differs or the filesystem has none.
    FsSubtype,
    /// `fsuuid=` differs.
    Fsuuid,
    /// `uid`/`euid` condition fails.
    Uid(CredCond),
    /// `gid`/`egid` condition fails.
    Gid(CredCond),
    /// `fowner` condition fails.
    Fowner(IdCond),
    /// `fgroup` condition fails.
    Fgroup(IdCond),
    /// An LSM condition fails (or the label is unknown).
    Lsm(LsmField),
    /// `keyrings=`/`label=` does not list the request's keyring or label.
    List,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = |c: IdCond| format!("{}{}", c.op.symbol(), c.value);
        match self {
            Mismatch::Func { rule } => write!(f, "func={} does not match the hook", rule.name()),
            Mismatch::NotDataRule => {
                f.write_str("KEY_CHECK/CRITICAL_DATA requests match only rules with that func=")
            }
            Mismatch::Mask(m) if m.any => {
                write!(f, "mask=^{} not among the requested bits", mask_name(m.bit))
            }
            Mismatch::Mask(m) => write!(
                f,
                "mask={} is not exactly the requested mask",
                mask_name(m.bit)
            ),
            Mismatch::Fsmagic(m) => write!(f, "fsmagic=0x{m:x} differs"),
            Mismatch::Fsname => f.write_str("fsname= differs"),
            Mismatch::FsSubtype => f.write_str("fs_subtype= differs"),
            Mismatch::Fsuuid => f.write_str("fsuuid= differs"),
            Mismatch::Uid(c) if c.effective => write!(f, "euid{} fails", op(c.cond)),
            Mismatch::Uid(c) => write!(f, "uid{} fails", op(c.cond)),
            Mismatch::Gid(c) if c.effective => write!(f, "egid{} fails", op(c.cond)),
            Mismatch::Gid(c) => write!(f, "gid{} fails", op(c.cond)),
            Mismatch::Fowner(c) => write!(f, "fowner{} fails", op(*c)),
            Mismatch::Fgroup(c) => write!(f, "fgroup{} fails", op(*c)),
            Mismatch::Lsm(l) => write!(f, "{}= differs", l.keyword()),
            Mismatch::List => f.write_str("keyring/label not in the rule's list"),
        }
    }
}

fn mask_name(bit: u8) -> &'static str {
    super::MASK_NAMES
        .iter()
        .find(|(b, _)| *b == bit)
        .map(|(_, n)| *n)
        .unwrap_or("?")
}

/// What happened at one rule during [`CompiledPolicy::explain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The request did not ask about the rule's class.
    NotAsked(ActionClass),
    /// An earlier rule already decided the rule's class.
    AlreadyDecided(ActionClass),
    /// A condition failed.
    NoMatch(Mismatch),
    /// The rule matched and decided its class.
    Decided(ActionClass),
}

/// One rule's part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Rule index.
    pub rule: usize,
    /// Source line (0 for built-in rules).
    pub line: usize,
    /// What happened.
    pub outcome: StepOutcome,
}

/// A decision with the walk that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The decision.
    pub decision: Decision,
    /// Every rule visited, in order, until all asked classes were decided.
    pub steps: Vec<Step>,
}

const NONE: u32 = u32::MAX;

// Condition bits of a compiled rule.
const C_FUNC: u16 = 1 << 0;
const C_MASK: u16 = 1 << 1;
const C_FSMAGIC: u16 = 1 << 2;
const C_FSNAME: u16 = 1 << 3;
const C_FS_SUBTYPE: u16 = 1 << 4;
const C_FSUUID: u16 = 1 << 5;
const C_UID: u16 = 1 << 6;
const C_GID: u16 = 1 << 7;
const C_FOWNER: u16 = 1 << 8;
const C_FGROUP: u16 = 1 << 9;
const C_LSM: u16 = 1 << 10;
const C_LIST: u16 = 1 << 11;

#[derive(Debug, Clone, Copy)]
struct CRule {
    checks: u16,
    class: ActionClass,
    class_bit: u8,
    act: bool,
    func: Func,
    mask: MaskCond,
    fsmagic: u64,
    uid: CredCond,
    gid: CredCond,
    fowner: IdCond,
    fgroup: IdCond,
    fsname: u32,
    fs_subtype: u32,
    list: (u32, u32),
    lsm: [u32; 6],
    fsuuid: [u8; 16],
    pcr: Option<u8>,
    template: Option<&'static str>,
    sig_required: bool,
    modsig_allowed: bool,
    sigv3: bool,
    digest_verity: bool,
    permit_directio: bool,
    appraise_algos: Option<u32>,
}

/// `euid=`/`egid=` with CAP_SETUID/CAP_SETGID also match the saved and real id.
#[inline]
pub(super) fn cred_matches(c: CredCond, cap: bool, real: u32, eff: u32, saved: u32) -> bool {
    if !c.effective {
        c.cond.matches(real)
    } else if cap {
        c.cond.matches(eff) || c.cond.matches(saved) || c.cond.matches(real)
    } else {
        c.cond.matches(eff)
    }
}

/// A policy compiled for evaluation: rules as fixed-size records (bit sets, integers,
/// pre-parsed UUIDs, string indices), and per hook the list of rules that can apply.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    rules: Vec<CRule>,
    strings: Vec<Box<str>>,
    by_func: Vec<Vec<u32>>,
    all: Vec<u32>,
    lines: Vec<usize>,
    setxattr_algos: Option<u32>,
    index: Option<super::index::Index>,
    /// The rules as the kernel shows them, for [`CompiledPolicy::kernel_text`].
    text: Box<str>,
}

const ANY_ID: IdCond = IdCond {
    op: super::CmpOp::Eq,
    value: 0,
};
const ANY_CRED: CredCond = CredCond {
    effective: false,
    cond: ANY_ID,
};

impl CompiledPolicy {
    /// Compile `policy`.
    pub fn new(policy: &Policy) -> CompiledPolicy {
        let mut strings: Vec<Box<str>> = Vec::new();
        let mut intern = |s: &str| -> u32 {
            strings.push(s.into());
            (strings.len() - 1) as u32
        };
        let mut rules = Vec::with_capacity(policy.rules.len());
        let mut setxattr_algos = None;
        for r in &policy.rules {
            let mut checks = 0;
            let mut set = |bit: u16, on: bool| {
                if on {
                    checks |= bit
                }
            };
            set(C_FUNC, r.func.is_some());
            set(C_MASK, r.mask.is_some());
            set(C_FSMAGIC, r.fsmagic.is_some());
            set(C_FSNAME, r.fsname.is_some());
            set(C_FS_SUBTYPE, r.fs_subtype.is_some());
            set(C_FSUUID, r.fsuuid.is_some());
            set(C_UID, r.uid.is_some());
            set(C_GID, r.gid.is_some());
            set(C_FOWNER, r.fowner.is_some());
            set(C_FGROUP, r.fgroup.is_some());
            set(C_LSM, r.has_lsm());
            let list_src = r.keyrings.as_ref().or(r.label.as_ref());
            set(C_LIST, list_src.is_some());
            let list = match list_src {
                Some(items) => {
                    let start = items.iter().map(|s| intern(s)).next().unwrap_or(0);
                    for s in items.iter().skip(1) {
                        intern(s);
                    }
                    (start, items.len() as u32)
                }
                None => (0, 0),
            };
            let mut lsm = [NONE; 6];
            for (slot, v) in lsm.iter_mut().zip(&r.lsm) {
                if let Some(v) = v {
                    *slot = intern(v);
                }
            }
            if r.func == Some(Func::SetxattrCheck) && setxattr_algos.is_none() {
                setxattr_algos = r.appraise_algos;
            }
            rules.push(CRule {
                checks,
                class: r.action.class(),
                class_bit: r.action.class().bit(),
                act: r.action.is_do(),
                func: r.func.unwrap_or(Func::FileCheck),
                mask: r.mask.unwrap_or(MaskCond { bit: 0, any: true }),
                fsmagic: r.fsmagic.unwrap_or(0),
                uid: r.uid.unwrap_or(ANY_CRED),
                gid: r.gid.unwrap_or(ANY_CRED),
                fowner: r.fowner.unwrap_or(ANY_ID),
                fgroup: r.fgroup.unwrap_or(ANY_ID),
                fsname: r.fsname.as_deref().map(&mut intern).unwrap_or(NONE),
                fs_subtype: r.fs_subtype.as_deref().map(&mut intern).unwrap_or(NONE),
                list,
                lsm,
                fsuuid: r.fsuuid.unwrap_or([0; 16]),
                pcr: r.pcr,
                template: r.template,
                sig_required: r.sig_required,
                modsig_allowed: r.modsig_allowed,
                sigv3: r.sigv3,
                digest_verity: r.digest_verity,
                permit_directio: r.permit_directio,
                appraise_algos: if r.action == Action::Appraise {
                    r.appraise_algos
                } else {
                    None
                },
            });
        }
        let all: Vec<u32> = (0..rules.len() as u32).collect();
        let mut by_func = vec![Vec::new(); 16];
        for (f, list) in by_func.iter_mut().enumerate() {
            let Some(func) = Func::from_id(f as u8) else {
                continue;
            };
            *list = all
                .iter()
                .copied()
                .filter(|&i| {
                    let r: &CRule = &rules[i as usize];
                    let has_func = r.checks & C_FUNC != 0;
                    match func {
                        Func::PostSetattr => true,
                        Func::KeyCheck | Func::CriticalData => has_func && r.func == func,
                        _ => !has_func || r.func == func,
                    }
                })
                .collect();
        }
        CompiledPolicy {
            rules,
            strings,
            by_func,
            all,
            lines: policy.lines.clone(),
            setxattr_algos,
            index: (policy.rules.len() <= super::index::MAX_INDEXED_RULES)
                .then(|| super::index::Index::new(policy)),
            text: policy.to_kernel_string().into(),
        }
    }

    /// The policy exactly as `cat /sys/kernel/security/ima/policy` shows it.
    pub fn kernel_text(&self) -> &str {
        &self.text
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the policy has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Source line of rule `i` (0 for built-in rules).
    pub fn line(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(0)
    }

    /// The algorithms the first `func=SETXATTR_CHECK` rule allows for `security.ima`
    /// writes (the kernel uses only the first such rule); `None`: any.
    pub fn setxattr_algos(&self) -> Option<u32> {
        self.setxattr_algos
    }

    #[inline]
    fn s(&self, i: u32) -> &str {
        &self.strings[i as usize]
    }

    /// `ima_match_rules`: the first failing condition, in the kernel's order.
    #[inline]
    fn match_rule(&self, r: &CRule, q: &Request) -> Result<(), Mismatch> {
        let ck = r.checks;
        let setattr = q.func == Func::PostSetattr;
        if ck & C_FUNC != 0 && r.func != q.func && !setattr {
            return Err(Mismatch::Func { rule: r.func });
        }
        if matches!(q.func, Func::KeyCheck | Func::CriticalData) {
            if ck & C_FUNC == 0 || r.func != q.func {
                return Err(Mismatch::NotDataRule);
            }
            if ck & C_UID != 0 && !r.uid.cond.matches(q.uid) {
                return Err(Mismatch::Uid(r.uid));
            }
            if ck & C_LIST != 0 {
                let data = q.func_data.ok_or(Mismatch::List)?;
                let (start, n) = r.list;
                if !(start..start + n).any(|i| self.s(i) == data) {
                    return Err(Mismatch::List);
                }
            }
            return Ok(());
        }
        if ck & C_MASK != 0 && !setattr && !r.mask.matches(q.mask) {
            return Err(Mismatch::Mask(r.mask));
        }
        if ck == ck & (C_FUNC | C_MASK) {
            return Ok(());
        }
        if ck & C_FSMAGIC != 0 && r.fsmagic != q.fsmagic {
            return Err(Mismatch::Fsmagic(r.fsmagic));
        }
        if ck & C_FSNAME != 0 && self.s(r.fsname) != q.fsname {
            return Err(Mismatch::Fsname);
        }
        if ck & C_FS_SUBTYPE != 0 && q.fs_subtype != Some(self.s(r.fs_subtype)) {
            return Err(Mismatch::FsSubtype);
        }
        if ck & C_FSUUID != 0 && r.fsuuid != q.fsuuid {
            return Err(Mismatch::Fsuuid);
        }
        if ck & C_UID != 0 && !cred_matches(r.uid, q.cap_setuid, q.uid, q.euid, q.suid) {
            return Err(Mismatch::Uid(r.uid));
        }
        if ck & C_GID != 0 && !cred_matches(r.gid, q.cap_setgid, q.gid, q.egid, q.sgid) {
            return Err(Mismatch::Gid(r.gid));
        }
        if ck & C_FOWNER != 0 && !r.fowner.matches(q.fowner) {
            return Err(Mismatch::Fowner(r.fowner));
        }
        if ck & C_FGROUP != 0 && !r.fgroup.matches(q.fgroup) {
            return Err(Mismatch::Fgroup(r.fgroup));
        }
        if ck & C_LSM != 0 {
            for f in LsmField::ALL {
                let idx = r.lsm[f as usize];
                if idx == NONE {
                    continue;
                }
                let have = match f {
                    LsmField::ObjUser => q.obj.user,
                    LsmField::ObjRole => q.obj.role,
                    LsmField::ObjType => q.obj.type_,
                    LsmField::SubjUser => q.subj.user,
                    LsmField::SubjRole => q.subj.role,
                    LsmField::SubjType => q.subj.type_,
                };
                if have != Some(self.s(idx)) {
                    return Err(Mismatch::Lsm(f));
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn apply(d: &mut Decision, r: &CRule, i: u32) {
        *d.class_mut(r.class) = ClassDecision {
            rule: Some(i),
            act: r.act,
        };
        d.sig_required |= r.sig_required;
        d.modsig_allowed |= r.modsig_allowed;
        d.sigv3 |= r.sigv3;
        d.digest_verity |= r.digest_verity;
        d.permit_directio |= r.permit_directio;
        if r.act && r.class == ActionClass::Appraise && r.appraise_algos.is_some() {
            d.appraise_algos = r.appraise_algos;
        }
        if r.pcr.is_some() {
            d.pcr = r.pcr;
        }
        if r.template.is_some() {
            d.template = r.template;
        }
    }

    fn candidates(&self, func: Func) -> &[u32] {
        self.by_func
            .get(func as usize)
            .map(Vec::as_slice)
            .unwrap_or(&self.all)
    }

    /// Decide `req`: first match per action class, exactly as the kernel walks its
    /// rules. Allocation-free.
    #[inline]
    pub fn evaluate(&self, req: &Request) -> Decision {
        let data = matches!(req.func, Func::KeyCheck | Func::CriticalData);
        match &self.index {
            Some(index) if !data => {
                let mut d = Decision::default();
                index.walk(req, req.classes, |i| {
                    Self::apply(&mut d, &self.rules[i], i as u32)
                });
                d
            }
            _ => self.evaluate_reference(req),
        }
    }

    /// Decide `req` by walking the rules one by one (the kernel's algorithm, without
    /// the index). Same result as [`CompiledPolicy::evaluate`]; kept to cross-check it.
    #[doc(hidden)]
    pub fn evaluate_reference(&self, req: &Request) -> Decision {
        let mut d = Decision::default();
        let mut undecided = req.classes & 0xf;
        if undecided == 0 {
            return d;
        }
        for &i in self.candidates(req.func) {
            let r = &self.rules[i as usize];
            if r.class_bit & undecided == 0 || self.match_rule(r, req).is_err() {
                continue;
            }
            Self::apply(&mut d, r, i);
            undecided &= !r.class_bit;
            if undecided == 0 {
                break;
            }
        }
        d
    }

    /// Decide `req` and record, rule by rule, why each rule before the deciding ones
    /// did or did not take part.
    pub fn explain(&self, req: &Request) -> Explanation {
        let mut d = Decision::default();
        let asked = req.classes & 0xf;
        let mut undecided = asked;
        let mut steps = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if undecided == 0 {
                break;
            }
            let outcome = if r.class_bit & asked == 0 {
                StepOutcome::NotAsked(r.class)
            } else if r.class_bit & undecided == 0 {
                StepOutcome::AlreadyDecided(r.class)
            } else {
                match self.match_rule(r, req) {
                    Err(m) => StepOutcome::NoMatch(m),
                    Ok(()) => {
                        Self::apply(&mut d, r, i as u32);
                        undecided &= !r.class_bit;
                        StepOutcome::Decided(r.class)
                    }
                }
            };
            steps.push(Step {
                rule: i,
                line: self.line(i),
                outcome,
            });
        }
        Explanation { decision: d, steps }
    }
}

impl Rule {
    /// Whether this single rule's conditions hold for `req` (its class aside).
    pub fn matches(&self, req: &Request) -> Result<(), Mismatch> {
        let c = CompiledPolicy::new(&Policy::from_rules(vec![self.clone()]));
        c.match_rule(&c.rules[0], req)
    }
}
