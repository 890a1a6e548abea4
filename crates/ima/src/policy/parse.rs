//! The kernel's policy grammar (`ima_parse_rule`) and rule validation
//! (`ima_validate_rule`), token by token and in the same order, so a policy is
//! accepted or refused exactly as the kernel would, and each refusal says where and why.

use super::{
    Action, AppraiseType, CmpOp, CredCond, Func, IdCond, LsmField, MaskCond, Policy, Rule,
    MASK_NAMES, TEMPLATES,
};
use crate::{Error, HashAlgo, Result};

/// Kernel build options that change what a policy may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelConfig {
    /// CONFIG_IMA_APPRAISE_MODSIG: `appraise_type=imasig|modsig` is accepted.
    pub modsig: bool,
    /// CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS: `func=KEY_CHECK` and `keyrings=` are accepted.
    pub key_check: bool,
    /// Kernels from 2026 accept `appraise_type=sigv3` without `digest_type=verity`
    /// (v3 signatures over the regular file hash); older ones refuse it.
    pub sigv3_regular: bool,
}

impl Default for KernelConfig {
    /// A current distribution kernel: every option on.
    fn default() -> Self {
        KernelConfig {
            modsig: true,
            key_check: true,
            sigv3_regular: true,
        }
    }
}

/// Something the kernel accepts but that probably does not do what its author meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line.
    pub line: usize,
    /// The token concerned.
    pub token: String,
    /// What the kernel does with it.
    pub message: String,
}

/// The result of parsing a whole policy while collecting every rejected rule.
#[derive(Debug, Default)]
pub struct ParseOutcome {
    /// The accepted rules (rejected ones left out).
    pub policy: Policy,
    /// One [`Error::PolicyRule`] per rejected rule. The kernel refuses the whole write
    /// at the first one.
    pub errors: Vec<Error>,
    /// Accepted but suspicious tokens.
    pub warnings: Vec<Warning>,
}

/// Parse a policy as the kernel does, with [`KernelConfig::default`]; the first
/// rejected rule is the error (as the kernel refuses the whole policy write).
pub fn parse(text: &str) -> Result<Policy> {
    let mut out = parse_all(text, &KernelConfig::default());
    if out.errors.is_empty() {
        Ok(out.policy)
    } else {
        Err(out.errors.swap_remove(0))
    }
}

/// Parse every line, collecting all rejected rules and warnings.
pub fn parse_all(text: &str, cfg: &KernelConfig) -> ParseOutcome {
    let mut out = ParseOutcome::default();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        let body = raw.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        match parse_line(line, body, cfg, &mut out.warnings) {
            Ok(rule) => {
                out.policy.rules.push(rule);
                out.policy.lines.push(line);
            }
            Err(e) => out.errors.push(e),
        }
    }
    out
}

/// Parse a single rule (one line, no comment handling) with `cfg`.
pub fn parse_rule(text: &str, cfg: &KernelConfig) -> Result<Rule> {
    parse_line(1, text, cfg, &mut Vec::new())
}

/// Which part of a rule a token set; validation blames tokens by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Action,
    Func,
    Mask,
    Fsmagic,
    Fsname,
    FsSubtype,
    Fsuuid,
    Uid,
    Euid,
    Gid,
    Egid,
    Fowner,
    Fgroup,
    Lsm,
    Keyrings,
    Label,
    Pcr,
    Template,
    AppraiseType,
    AppraiseFlag,
    AppraiseAlgos,
    PermitDirectio,
    DigestType,
}

// The kernel's rule flags (security/integrity/ima/ima_policy.c, ima.h), used to apply
// `ima_validate_rule`'s per-hook allow lists verbatim.
const F_FUNC: u32 = 1 << 0;
const F_MASK: u32 = 1 << 1;
const F_FSMAGIC: u32 = 1 << 2;
const F_UID: u32 = 1 << 3;
const F_FOWNER: u32 = 1 << 4;
const F_FSUUID: u32 = 1 << 5;
const F_EUID: u32 = 1 << 7;
const F_PCR: u32 = 1 << 8;
const F_FSNAME: u32 = 1 << 9;
const F_KEYRINGS: u32 = 1 << 10;
const F_LABEL: u32 = 1 << 11;
const F_VALIDATE_ALGOS: u32 = 1 << 12;
const F_GID: u32 = 1 << 13;
const F_EGID: u32 = 1 << 14;
const F_FGROUP: u32 = 1 << 15;
const F_FS_SUBTYPE: u32 = 1 << 16;
const F_DIGSIG: u32 = 1 << 24;
const F_DIRECTIO: u32 = 1 << 25;
const F_SIGV3: u32 = 1 << 26;
const F_MODSIG: u32 = 1 << 29;
const F_VERITY: u32 = 1 << 31;

const BASE_CONDS: u32 = F_FUNC
    | F_MASK
    | F_FSMAGIC
    | F_UID
    | F_FOWNER
    | F_FSUUID
    | F_EUID
    | F_PCR
    | F_FSNAME
    | F_FS_SUBTYPE
    | F_GID
    | F_EGID
    | F_FGROUP;
const ALLOW_FILE: u32 = BASE_CONDS | F_DIGSIG | F_DIRECTIO | F_VALIDATE_ALGOS | F_VERITY | F_SIGV3;
const ALLOW_MODULE: u32 = BASE_CONDS | F_DIGSIG | F_DIRECTIO | F_MODSIG | F_VALIDATE_ALGOS;
const ALLOW_CMDLINE: u32 = BASE_CONDS & !F_MASK;
const ALLOW_KEY: u32 = F_FUNC | F_UID | F_GID | F_PCR | F_KEYRINGS;
const ALLOW_CRITICAL: u32 = F_FUNC | F_UID | F_GID | F_PCR | F_LABEL;
const ALLOW_SETXATTR: u32 = F_FUNC | F_VALIDATE_ALGOS;

struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    flags: u32,
}

fn reject(line: usize, token: &str, reason: impl Into<String>) -> Error {
    Error::PolicyRule {
        line,
        token: clip(token),
        reason: clip(&reason.into()),
    }
}

/// `s` as an error message shows it: a token (or a reason quoting one) of a stray
/// megabyte-long line is cut to its first 100 characters and its length.
fn clip(s: &str) -> String {
    const SHOWN: usize = 100;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}… ({} bytes)", &s[..end], s.len()),
        None => s.to_owned(),
    }
}

fn parse_line(
    line: usize,
    text: &str,
    cfg: &KernelConfig,
    warnings: &mut Vec<Warning>,
) -> Result<Rule> {
    let mut rule = Rule::new(Action::Measure);
    let mut action: Option<Action> = None;
    let mut toks: Vec<Tok> = Vec::new();
    let mut fsmagic_val: u64 = 0;
    let mut uuid_set = false;
    for tok in text.split([' ', '\t']).filter(|t| !t.is_empty()) {
        let err = |reason: String| reject(line, tok, reason);
        let warn = |message: String| Warning {
            line,
            token: clip(tok),
            message: clip(&message),
        };
        let (key, val) = match tok.find(['=', '<', '>']) {
            Some(i) => (&tok[..i], Some((tok.as_bytes()[i], &tok[i + 1..]))),
            None => (tok, None),
        };
        // `match_token`: a `%s` argument never matches the empty string.
        let val = match val {
            Some((_, "")) => return Err(err("unknown token (empty value)".into())),
            v => v,
        };
        let (kind, flags) = match (key, val) {
            (_, None) if Action::ALL.iter().any(|(_, t)| *t == key) => {
                if action.is_some() {
                    return Err(err("only one action per rule".into()));
                }
                let a = Action::ALL.iter().find(|(_, t)| *t == key).map(|(a, _)| *a);
                action = a;
                (Kind::Action, 0)
            }
            ("permit_directio", None) => {
                rule.permit_directio = true;
                (Kind::PermitDirectio, F_DIRECTIO)
            }
            ("func", Some((b'=', v))) => {
                if rule.func.is_some() {
                    return Err(err("duplicate func=".into()));
                }
                let f =
                    Func::from_policy_name(v).ok_or_else(|| err(format!("unknown hook {v:?}")))?;
                if f == Func::KeyCheck && !cfg.key_check {
                    return Err(err(
                        "KEY_CHECK needs CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS".into()
                    ));
                }
                rule.func = Some(f);
                (Kind::Func, F_FUNC)
            }
            ("mask", Some((b'=', v))) => {
                if rule.mask.is_some() {
                    return Err(err("duplicate mask=".into()));
                }
                let (any, name) = match v.strip_prefix('^') {
                    Some(n) => (true, n),
                    None => (false, v),
                };
                let bit = MASK_NAMES
                    .iter()
                    .find(|(_, n)| *n == name)
                    .map(|(b, _)| *b)
                    .ok_or_else(|| {
                        err(format!(
                            "unknown mask {name:?} (MAY_EXEC, MAY_WRITE, MAY_READ or MAY_APPEND)"
                        ))
                    })?;
                rule.mask = Some(MaskCond { bit, any });
                (Kind::Mask, F_MASK)
            }
            ("fsmagic", Some((b'=', v))) => {
                if fsmagic_val != 0 {
                    return Err(err("duplicate fsmagic=".into()));
                }
                fsmagic_val = kstrtoull(v, 16).map_err(|e| err(format!("fsmagic {e}")))?;
                rule.fsmagic = Some(fsmagic_val);
                (Kind::Fsmagic, F_FSMAGIC)
            }
            ("fsname", Some((b'=', v))) => {
                if rule.fsname.is_some() {
                    warnings.push(warn(
                        "fsname= given twice: the kernel keeps the last one".into(),
                    ));
                }
                if v.len() > 63 {
                    warnings.push(warn(
                        "the kernel prints only the first 63 bytes of fsname=".into(),
                    ));
                }
                rule.fsname = Some(v.to_owned());
                (Kind::Fsname, F_FSNAME)
            }
            ("fs_subtype", Some((b'=', v))) => {
                if rule.fs_subtype.is_some() {
                    return Err(err("duplicate fs_subtype=".into()));
                }
                if v.len() > 63 {
                    warnings.push(warn(
                        "the kernel prints only the first 63 bytes of fs_subtype=".into(),
                    ));
                }
                rule.fs_subtype = Some(v.to_owned());
                (Kind::FsSubtype, F_FS_SUBTYPE)
            }
            ("keyrings", Some((b'=', v))) => {
                if !cfg.key_check {
                    return Err(err(
                        "keyrings= needs CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS".into()
                    ));
                }
                if rule.keyrings.is_some() {
                    return Err(err("duplicate keyrings=".into()));
                }
                rule.keyrings = Some(opt_list(v).map_err(err)?);
                (Kind::Keyrings, F_KEYRINGS)
            }
            ("label", Some((b'=', v))) => {
                if rule.label.is_some() {
                    return Err(err("duplicate label=".into()));
                }
                rule.label = Some(opt_list(v).map_err(err)?);
                (Kind::Label, F_LABEL)
            }
            ("fsuuid", Some((b'=', v))) => {
                if uuid_set {
                    return Err(err("duplicate fsuuid=".into()));
                }
                let u = parse_uuid(v).ok_or_else(|| {
                    err("not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)".into())
                })?;
                if v.len() > 36 {
                    warnings.push(warn(format!(
                        "the kernel ignores {:?} after the 36 UUID characters",
                        &v[36..]
                    )));
                }
                uuid_set = u != [0; 16];
                rule.fsuuid = Some(u);
                (Kind::Fsuuid, F_FSUUID)
            }
            ("uid" | "euid" | "gid" | "egid" | "fowner" | "fgroup", Some((opc, v))) => {
                let op = match opc {
                    b'=' => CmpOp::Eq,
                    b'>' => CmpOp::Gt,
                    _ => CmpOp::Lt,
                };
                let effective = key.starts_with('e');
                let taken = match key {
                    "uid" | "euid" => rule.uid.is_some(),
                    "gid" | "egid" => rule.gid.is_some(),
                    "fowner" => rule.fowner.is_some(),
                    _ => rule.fgroup.is_some(),
                };
                if taken {
                    let why = match key {
                        "uid" | "euid" => "duplicate uid/euid condition (one per rule)",
                        "gid" | "egid" => "duplicate gid/egid condition (one per rule)",
                        "fowner" => "duplicate fowner condition",
                        _ => "duplicate fgroup condition",
                    };
                    return Err(err(why.into()));
                }
                let n = kstrtoull(v, 10).map_err(|e| err(format!("{key} {e}")))?;
                let value = u32::try_from(n)
                    .ok()
                    .filter(|&n| n != u32::MAX)
                    .ok_or_else(|| err(format!("{key} {n} is not a valid id")))?;
                let cond = IdCond { op, value };
                match key {
                    "uid" | "euid" => {
                        rule.uid = Some(CredCond { effective, cond });
                        if effective {
                            (Kind::Euid, F_EUID)
                        } else {
                            (Kind::Uid, F_UID)
                        }
                    }
                    "gid" | "egid" => {
                        rule.gid = Some(CredCond { effective, cond });
                        if effective {
                            (Kind::Egid, F_EGID)
                        } else {
                            (Kind::Gid, F_GID)
                        }
                    }
                    "fowner" => {
                        rule.fowner = Some(cond);
                        (Kind::Fowner, F_FOWNER)
                    }
                    _ => {
                        rule.fgroup = Some(cond);
                        (Kind::Fgroup, F_FGROUP)
                    }
                }
            }
            (
                "obj_user" | "obj_role" | "obj_type" | "subj_user" | "subj_role" | "subj_type",
                Some((b'=', v)),
            ) => {
                let f = LsmField::ALL
                    .iter()
                    .copied()
                    .find(|f| f.keyword() == key)
                    .unwrap_or(LsmField::ObjUser);
                let slot = &mut rule.lsm[f as usize];
                if slot.is_some() {
                    return Err(err(format!("duplicate {key}=")));
                }
                *slot = Some(v.to_owned());
                (Kind::Lsm, 0)
            }
            ("digest_type", Some((b'=', v))) => {
                if rule.sig_required {
                    return Err(err(
                        "digest_type=verity must come before appraise_type=".into()
                    ));
                }
                if v != "verity" {
                    return Err(err(format!("unknown digest type {v:?} (only verity)")));
                }
                rule.digest_verity = true;
                (Kind::DigestType, F_VERITY)
            }
            ("appraise_type", Some((b'=', v))) => {
                let flags = match v {
                    "imasig" => {
                        if rule.digest_verity {
                            return Err(err(
                                "imasig is incompatible with digest_type=verity (use sigv3)".into(),
                            ));
                        }
                        F_DIGSIG
                    }
                    "sigv3" => {
                        if rule.digest_verity {
                            F_DIGSIG
                        } else if !cfg.sigv3_regular {
                            return Err(err(
                                "sigv3 needs digest_type=verity before it on this kernel".into(),
                            ));
                        } else if rule.modsig_allowed {
                            return Err(err("conflicts with appraise_type=imasig|modsig".into()));
                        } else {
                            rule.sigv3 = true;
                            F_DIGSIG | F_SIGV3
                        }
                    }
                    "imasig|modsig" if cfg.modsig => {
                        if rule.digest_verity {
                            return Err(err(
                                "imasig|modsig is incompatible with digest_type=verity".into(),
                            ));
                        }
                        if rule.sigv3 {
                            return Err(err("conflicts with appraise_type=sigv3".into()));
                        }
                        rule.modsig_allowed = true;
                        F_DIGSIG | F_MODSIG
                    }
                    "imasig|modsig" => {
                        return Err(err("modsig needs CONFIG_IMA_APPRAISE_MODSIG".into()))
                    }
                    _ => {
                        return Err(err(format!(
                            "unknown appraise type {v:?} (imasig, imasig|modsig or sigv3)"
                        )))
                    }
                };
                rule.sig_required = true;
                (Kind::AppraiseType, flags)
            }
            ("appraise_flag", Some((b'=', _))) => {
                warnings.push(warn(
                    "appraise_flag= is deprecated and ignored: the blacklist is \
                     always checked for signature rules"
                        .into(),
                ));
                (Kind::AppraiseFlag, 0)
            }
            ("appraise_algos", Some((b'=', v))) => {
                if rule.appraise_algos.is_some() {
                    return Err(err("duplicate appraise_algos=".into()));
                }
                let mut bits = 0u32;
                for name in v.split(',') {
                    let a = HashAlgo::ALL
                        .iter()
                        .find(|a| a.name() == name)
                        .ok_or_else(|| err(format!("unknown hash algorithm {name:?}")))?;
                    bits |= 1 << *a as u8;
                }
                rule.appraise_algos = Some(bits);
                (Kind::AppraiseAlgos, F_VALIDATE_ALGOS)
            }
            ("pcr", Some((b'=', v))) => {
                let n = kstrtoint(v).map_err(|e| err(format!("pcr {e}")))?;
                if !(0..64).contains(&n) {
                    return Err(err(format!("pcr {n} out of range 0-63")));
                }
                rule.pcr = Some(n as u8);
                (Kind::Pcr, F_PCR)
            }
            ("template", Some((b'=', v))) => {
                if action != Some(Action::Measure) {
                    return Err(err(
                        "template= is only allowed after the measure action".into()
                    ));
                }
                let name = TEMPLATES
                    .iter()
                    .find(|(n, f)| *n == v || *f == v)
                    .map(|(n, _)| *n)
                    .ok_or_else(|| err(format!("unknown template {v:?}")))?;
                if rule.template.is_some() {
                    return Err(err("duplicate template=".into()));
                }
                rule.template = Some(name);
                (Kind::Template, 0)
            }
            _ => return Err(err("unknown token".into())),
        };
        toks.push(Tok {
            kind,
            text: tok,
            flags,
        });
    }
    let Some(action) = action else {
        let first = toks.first().map(|t| t.text).unwrap_or("");
        return Err(reject(
            line,
            first,
            "rule has no action (measure, dont_measure, appraise, dont_appraise, audit, \
             dont_audit, hash, dont_hash)",
        ));
    };
    rule.action = action;
    validate(&rule, &toks).map_err(|(token, reason)| reject(line, token, reason))?;
    Ok(rule)
}

/// `ima_validate_rule`: the action, the hook and the other tokens must fit together.
fn validate<'a>(rule: &Rule, toks: &[Tok<'a>]) -> std::result::Result<(), (&'a str, String)> {
    let first = |pred: &dyn Fn(&Tok) -> bool| toks.iter().find(|t| pred(t)).map(|t| t.text);
    let action_tok = first(&|t| t.kind == Kind::Action).unwrap_or("");
    let flags = toks.iter().fold(0, |f, t| f | t.flags);
    if rule.action != Action::Measure && flags & F_PCR != 0 {
        let t = first(&|t| t.kind == Kind::Pcr).unwrap_or("");
        return Err((t, "pcr= is only allowed on measure rules".into()));
    }
    if rule.action != Action::Appraise && flags & (F_DIGSIG | F_MODSIG | F_VALIDATE_ALGOS) != 0 {
        let t = first(&|t| matches!(t.kind, Kind::AppraiseType | Kind::AppraiseAlgos));
        return Err((
            t.unwrap_or(""),
            "appraise options are only allowed on appraise rules".into(),
        ));
    }
    let func_name = rule.func.map(Func::name).unwrap_or("");
    let measure_only = |what: &str| {
        if matches!(rule.action, Action::Measure | Action::DontMeasure) {
            Ok(())
        } else {
            Err((
                action_tok,
                format!("func={what} rules can only be measure or dont_measure"),
            ))
        }
    };
    let allowed = match rule.func {
        None
        | Some(
            Func::FileCheck
            | Func::MmapCheck
            | Func::MmapCheckReqprot
            | Func::BprmCheck
            | Func::CredsCheck
            | Func::PostSetattr
            | Func::FirmwareCheck
            | Func::PolicyCheck,
        ) => ALLOW_FILE,
        Some(Func::ModuleCheck | Func::KexecKernelCheck | Func::KexecInitramfsCheck) => {
            ALLOW_MODULE
        }
        Some(Func::KexecCmdline) => {
            measure_only(func_name)?;
            ALLOW_CMDLINE
        }
        Some(Func::KeyCheck) | Some(Func::CriticalData) => {
            measure_only(func_name)?;
            if let Some(t) = first(&|t| t.kind == Kind::Lsm) {
                return Err((t, format!("func={func_name} rules take no LSM conditions")));
            }
            if rule.func == Some(Func::KeyCheck) {
                ALLOW_KEY
            } else {
                ALLOW_CRITICAL
            }
        }
        Some(Func::SetxattrCheck) => {
            if rule.action != Action::Appraise {
                return Err((
                    action_tok,
                    "func=SETXATTR_CHECK rules must be appraise rules".into(),
                ));
            }
            if flags & F_VALIDATE_ALGOS == 0 {
                let t = first(&|t| t.kind == Kind::Func).unwrap_or("");
                return Err((t, "func=SETXATTR_CHECK requires appraise_algos=".into()));
            }
            ALLOW_SETXATTR
        }
    };
    if let Some(t) = toks.iter().find(|t| t.flags & !allowed != 0) {
        let reason = match t.kind {
            Kind::Keyrings => "keyrings= requires func=KEY_CHECK".to_owned(),
            Kind::Label => "label= requires func=CRITICAL_DATA".to_owned(),
            Kind::AppraiseType if t.flags & F_MODSIG != 0 => {
                "imasig|modsig is only allowed with func=MODULE_CHECK, KEXEC_KERNEL_CHECK or \
                 KEXEC_INITRAMFS_CHECK"
                    .to_owned()
            }
            Kind::DigestType => format!("digest_type=verity is not allowed with func={func_name}"),
            _ if rule.func == Some(Func::SetxattrCheck) => {
                "func=SETXATTR_CHECK rules take only appraise_algos=".to_owned()
            }
            _ if rule.func == Some(Func::KeyCheck) => {
                "func=KEY_CHECK rules take only uid, gid, pcr and keyrings".to_owned()
            }
            _ if rule.func == Some(Func::CriticalData) => {
                "func=CRITICAL_DATA rules take only uid, gid, pcr and label".to_owned()
            }
            _ => format!("not allowed with func={func_name}"),
        };
        return Err((t.text, reason));
    }
    if rule.action == Action::Appraise && rule.digest_verity && !rule.sig_required {
        let t = first(&|t| t.kind == Kind::DigestType).unwrap_or("");
        return Err((
            t,
            "digest_type=verity on an appraise rule requires appraise_type=sigv3".into(),
        ));
    }
    Ok(())
}

/// `ima_alloc_rule_opt_list`: `|`-separated, no empty item.
fn opt_list(v: &str) -> std::result::Result<Vec<String>, String> {
    let items: Vec<String> = v.split('|').map(str::to_owned).collect();
    if items.iter().any(String::is_empty) {
        return Err("empty item in list".into());
    }
    Ok(items)
}

/// `kstrtoull`: optional `+`, for base 16 an optional `0x`, digits only, no overflow.
pub(crate) fn kstrtoull(s: &str, base: u32) -> std::result::Result<u64, &'static str> {
    let mut s = s.strip_prefix('+').unwrap_or(s);
    let b = s.as_bytes();
    if base == 16
        && b.len() >= 3
        && b[0] == b'0'
        && (b[1] | 0x20) == b'x'
        && b[2].is_ascii_hexdigit()
    {
        s = &s[2..];
    }
    if s.is_empty() {
        return Err("is not a number");
    }
    let mut v: u64 = 0;
    for c in s.chars() {
        let d = c.to_digit(base).ok_or("is not a number")?;
        v = v
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(d as u64))
            .ok_or("is out of range")?;
    }
    Ok(v)
}

/// `kstrtoint` (base 10): optional sign, within `i32`.
fn kstrtoint(s: &str) -> std::result::Result<i64, &'static str> {
    if let Some(rest) = s.strip_prefix('-') {
        let v = kstrtoull(rest, 10)?;
        if v > 1 << 31 {
            return Err("is out of range");
        }
        Ok(-(v as i64))
    } else {
        let v = kstrtoull(s, 10)?;
        if v > i32::MAX as u64 {
            return Err("is out of range");
        }
        Ok(v as i64)
    }
}

/// `uuid_parse`: the first 36 characters in 8-4-4-4-12 form (the kernel does not look
/// past them).
pub(crate) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() < 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hi = (b[i] as char).to_digit(16)?;
        let lo = (b[i + 1] as char).to_digit(16)?;
        out[n] = (hi << 4 | lo) as u8;
        n += 1;
        i += 2;
    }
    Some(out)
}

impl AppraiseType {
    /// Parse an `appraise_type=` value.
    pub fn from_token(s: &str) -> Option<AppraiseType> {
        match s {
            "imasig" => Some(AppraiseType::Imasig),
            "imasig|modsig" => Some(AppraiseType::ImasigModsig),
            "sigv3" => Some(AppraiseType::Sigv3),
            _ => None,
        }
    }
}
