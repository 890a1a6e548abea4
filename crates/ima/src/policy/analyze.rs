//! Static analysis: rules that can never decide anything (shadowed by an earlier rule
//! of the same class that matches every request they match, or with unsatisfiable
//! conditions) and risky patterns.

use super::{magic, Action, CredCond, Func, IdCond, MaskCond, Policy, Rule};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Probably not what the author meant.
    Warning,
    /// Worth knowing.
    Info,
}

/// What kind of finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// An earlier rule of the same class matches every request this rule matches.
    Shadowed {
        /// Index of the earlier rule.
        by: usize,
    },
    /// A condition no request can satisfy.
    NeverMatches,
    /// Only the first `func=SETXATTR_CHECK` rule is used.
    IneffectiveSetxattr {
        /// Index of the effective rule.
        first: usize,
    },
    /// A measure rule covers reads on pseudo/volatile filesystems.
    MeasuresPseudoFs(Vec<&'static str>),
    /// An appraise rule covers filesystems that cannot hold `security.ima`.
    AppraisesPseudoFs(Vec<&'static str>),
    /// Appraisal of executed or kernel-loaded files without a signature requirement.
    UnsignedAppraisal,
    /// `mask=` without `^` on FILE_CHECK: exact match only.
    MaskEquality,
    /// A condition the kernel ignores for this hook.
    IgnoredCondition,
    /// `digest_type=verity` measured with a template lacking `d-ngv2`.
    VerityTemplate,
}

/// One finding of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule concerned.
    pub rule: usize,
    /// Its source line (0 for built-in rules).
    pub line: usize,
    /// Severity.
    pub severity: Severity,
    /// Kind.
    pub kind: FindingKind,
    /// Human-readable explanation.
    pub message: String,
}

fn cred_implied(j: Option<CredCond>, i: Option<CredCond>) -> bool {
    match (i, j) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(i), Some(j)) => i.effective == j.effective && j.cond.implies(i.cond),
    }
}

fn id_implied(j: Option<IdCond>, i: Option<IdCond>) -> bool {
    match (i, j) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(i), Some(j)) => j.implies(i),
    }
}

fn eq_or_any<T: PartialEq>(j: &Option<T>, i: &Option<T>) -> bool {
    i.is_none() || i == j
}

fn mask_implied(j: Option<MaskCond>, i: Option<MaskCond>) -> bool {
    match (i, j) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(i), Some(j)) => {
            if i.any {
                j.bit & i.bit != 0
            } else {
                !j.any && j.bit == i.bit
            }
        }
    }
}

fn is_data(f: Option<Func>) -> bool {
    matches!(f, Some(Func::KeyCheck | Func::CriticalData))
}

/// Whether rule `i` matches every request rule `j` matches (their classes aside).
pub fn covers(i: &Rule, j: &Rule) -> bool {
    if never_matches(j) {
        return true;
    }
    if i.func == Some(Func::SetxattrCheck) || j.func == Some(Func::SetxattrCheck) {
        return false;
    }
    // KEY_CHECK / CRITICAL_DATA requests: only func, uid and the list are looked at.
    if is_data(j.func) {
        let list_ok = match (
            i.keyrings.as_ref().or(i.label.as_ref()),
            j.keyrings.as_ref().or(j.label.as_ref()),
        ) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(il), Some(jl)) => jl.iter().all(|x| il.contains(x)),
        };
        if i.func != j.func || !cred_implied(j.uid, i.uid) || !list_ok {
            return false;
        }
    }
    // Every other request (and POST_SETATTR, which matches any func= and mask=).
    (i.func.is_none() && !is_data(j.func) || i.func == j.func)
        && mask_implied(j.mask, i.mask)
        && eq_or_any(&j.fsmagic, &i.fsmagic)
        && eq_or_any(&j.fsname, &i.fsname)
        && eq_or_any(&j.fs_subtype, &i.fs_subtype)
        && eq_or_any(&j.fsuuid, &i.fsuuid)
        && cred_implied(j.uid, i.uid)
        && cred_implied(j.gid, i.gid)
        && id_implied(j.fowner, i.fowner)
        && id_implied(j.fgroup, i.fgroup)
        && i.lsm.iter().zip(&j.lsm).all(|(a, b)| eq_or_any(b, a))
}

fn never_matches(r: &Rule) -> bool {
    let empty = |c: Option<IdCond>| c.is_some_and(IdCond::is_empty);
    empty(r.uid.map(|c| c.cond))
        || empty(r.gid.map(|c| c.cond))
        || empty(r.fowner)
        || empty(r.fgroup)
}

fn covered_by_earlier(p: &Policy, j: usize, probe: &Rule) -> Option<usize> {
    let class = p.rules[j].action.class();
    (0..j).find(|&i| p.rules[i].action.class() == class && covers(&p.rules[i], probe))
}

/// Pseudo filesystems rule `j` would still decide (for `func`), given earlier rules.
fn pseudo_fs_reached(p: &Policy, j: usize, func: Option<Func>) -> Vec<&'static str> {
    let r = &p.rules[j];
    let mut hit = Vec::new();
    for &(m, name) in magic::PSEUDO {
        if r.fsmagic.is_some_and(|x| x != m) || r.fsname.as_deref().is_some_and(|n| n != name) {
            continue;
        }
        let mut probe = r.clone();
        probe.fsmagic = Some(m);
        if func.is_some() {
            probe.func = func;
        }
        if covered_by_earlier(p, j, &probe).is_none() {
            hit.push(name);
        }
    }
    hit
}

/// Rule `i` named for a message: `rule N (line L)`, or `rule N` for a rule that
/// comes from no file (line 0: a built-in policy).
fn rule_ref(p: &Policy, i: usize) -> String {
    match p.lines.get(i).copied().unwrap_or(0) {
        0 => format!("rule {}", i + 1),
        l => format!("rule {} (line {l})", i + 1),
    }
}

/// Analyse a policy: shadowed and dead rules, then risky patterns.
pub fn analyze(p: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut first_setxattr: Option<usize> = None;
    for (j, r) in p.rules.iter().enumerate() {
        let mut push = |severity, kind, message: String| {
            out.push(Finding {
                rule: j,
                line: p.lines.get(j).copied().unwrap_or(0),
                severity,
                kind,
                message,
            })
        };
        if r.func == Some(Func::SetxattrCheck) {
            match first_setxattr {
                None => first_setxattr = Some(j),
                Some(first) => push(
                    Severity::Warning,
                    FindingKind::IneffectiveSetxattr { first },
                    format!(
                        "ineffective: only the first func=SETXATTR_CHECK rule is used: {}",
                        rule_ref(p, first)
                    ),
                ),
            }
            continue;
        }
        if never_matches(r) {
            push(
                Severity::Warning,
                FindingKind::NeverMatches,
                "never matches: an id condition no id satisfies".into(),
            );
            continue;
        }
        if let Some(by) = covered_by_earlier(p, j, r) {
            push(
                Severity::Warning,
                FindingKind::Shadowed { by },
                format!(
                    "shadowed: {} already decides {} for every request this rule matches",
                    rule_ref(p, by),
                    r.action.class().name()
                ),
            );
            continue;
        }
        if is_data(r.func) && r.gid.is_some() {
            push(
                Severity::Warning,
                FindingKind::IgnoredCondition,
                format!(
                    "gid condition is ignored for func={} requests (only uid and the list are checked)",
                    r.func.map(Func::name).unwrap_or("")
                ),
            );
        }
        if r.func == Some(Func::FileCheck) {
            if let Some(m) = r.mask.filter(|m| !m.any) {
                push(
                    Severity::Info,
                    FindingKind::MaskEquality,
                    format!(
                        "mask={0} matches only opens whose whole mask is {0} (an O_RDWR open is not); mask=^{0} matches any open that includes it",
                        super::MASK_NAMES.iter().find(|(b, _)| *b == m.bit).map(|(_, n)| *n).unwrap_or("")
                    ),
                );
            }
        }
        match r.action {
            Action::Measure => {
                if matches!(r.func, None | Some(Func::FileCheck)) {
                    let fs = pseudo_fs_reached(p, j, Some(Func::FileCheck));
                    if !fs.is_empty() {
                        let msg = format!(
                            "measures files read on {} (volatile or synthetic content: the list grows without bound and attests nothing)",
                            fs.join(", ")
                        );
                        push(Severity::Warning, FindingKind::MeasuresPseudoFs(fs), msg);
                    }
                }
                if r.digest_verity
                    && r.template
                        .is_some_and(|t| !matches!(t, "ima-ngv2" | "ima-sigv2"))
                {
                    push(
                        Severity::Warning,
                        FindingKind::VerityTemplate,
                        "digest_type=verity measured with a template without d-ngv2: the list will not say the digest is an fs-verity digest".into(),
                    );
                }
            }
            Action::Appraise => {
                let fs = if matches!(r.func, None | Some(Func::FileCheck)) {
                    pseudo_fs_reached(p, j, Some(Func::FileCheck))
                } else {
                    Vec::new()
                };
                if !fs.is_empty() {
                    let msg = format!(
                        "appraises files read on {}, whose files have no security.ima: access to them will be denied",
                        fs.join(", ")
                    );
                    push(Severity::Warning, FindingKind::AppraisesPseudoFs(fs), msg);
                }
                let exec_like = matches!(
                    r.func,
                    None | Some(
                        Func::BprmCheck
                            | Func::MmapCheck
                            | Func::MmapCheckReqprot
                            | Func::ModuleCheck
                            | Func::FirmwareCheck
                            | Func::KexecKernelCheck
                            | Func::KexecInitramfsCheck
                            | Func::PolicyCheck
                    )
                );
                if exec_like && !r.sig_required {
                    push(
                        Severity::Warning,
                        FindingKind::UnsignedAppraisal,
                        format!(
                            "appraises {} without appraise_type=: a hash in security.ima is accepted, and anyone who can write the file can rewrite it",
                            match r.func {
                                None => "every file (executables included)".to_owned(),
                                Some(f) => format!("func={}", f.name()),
                            }
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    out
}
