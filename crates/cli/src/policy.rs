//! `vigil policy …`: check, print, combine, evaluate, lint and compare IMA policies.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use vigil_ima::policy::{
    self, analyze, builtin, ActionClass, CompiledPolicy, Decision, Func, KernelConfig, LsmLabel,
    Policy, Request, Severity, StepOutcome,
};

/// The IMA policy language.
#[derive(Subcommand)]
pub enum Command {
    /// Check, print, evaluate and lint IMA policies (the kernel's policy language).
    ///
    /// Policies are read exactly as the kernel reads /sys/kernel/security/ima/policy:
    /// one rule per line, `#` only at the start of a line. FILE may be `-` for
    /// standard input.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `vigil policy` subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy as the kernel would; print every rejected rule with its line,
    /// token and reason.
    ///
    /// Exit status 0 if every rule is accepted, 1 if any is rejected (the kernel would
    /// refuse the whole policy), 2 if the file cannot be read.
    Check {
        /// Policy files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a policy in the kernel's normalised form (as `cat
    /// /sys/kernel/security/ima/policy` shows it after loading).
    ///
    /// Exit status 1 if a rule is rejected.
    Print {
        /// Policy file.
        file: PathBuf,
        /// Print a form the kernel accepts back: `digest_type=verity` before
        /// `appraise_type=`, ids above 2147483647 unsigned, long names untruncated.
        #[arg(long)]
        loadable: bool,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Print the kernel's built-in policy for boot parameters, e.g. `tcb`,
    /// `ima_tcb`, `appraise_tcb`, `secure_boot`, `critical_data`, or a combination
    /// as in `ima_policy=tcb|appraise_tcb`.
    ///
    /// The parts are combined in the kernel's order whatever the order given. Exit
    /// status 2 for an unknown name.
    Builtin {
        /// Built-in policy names (each may be a `|`-separated list).
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Decide one request: which rule decides measure, appraise, audit and hash, the
    /// options in effect, and why each earlier rule did not match.
    ///
    /// The first matching rule of each action class decides it (rules are walked in
    /// order, as the kernel's ima_match_policy does). Rejected rules are reported and
    /// left out. Exit status 0 once the decision is printed, 2 on bad usage.
    Eval(Box<EvalArgs>),
    /// Report shadowed rules (an earlier rule of the same class already decides every
    /// request they match) and risky patterns: measuring or appraising pseudo
    /// filesystems, appraising executables without a signature requirement, exact
    /// `mask=` on FILE_CHECK, ignored conditions.
    ///
    /// Exit status 1 if a rule is rejected or a warning is found, else 0.
    Lint {
        /// Policy file.
        file: Option<PathBuf>,
        /// Lint a built-in policy instead of a file.
        #[arg(long, value_name = "NAMES", conflicts_with = "file")]
        builtin: Option<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two policies rule by rule as the kernel would hold them (spelling,
    /// aliases, token order and comments do not count).
    ///
    /// Exit status 0 if they hold the same rules, 1 if not.
    Diff {
        /// The old policy.
        old: PathBuf,
        /// The new policy.
        new: PathBuf,
        #[command(flatten)]
        kernel: KernelArgs,
    },
}

/// Kernel options that change which rules are accepted.
#[derive(Args, Clone, Copy)]
pub struct KernelArgs {
    /// Behave as a kernel without CONFIG_IMA_APPRAISE_MODSIG (refuse imasig|modsig).
    #[arg(long)]
    no_modsig: bool,
    /// Behave as a kernel without CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS (refuse KEY_CHECK).
    #[arg(long)]
    no_key_check: bool,
    /// Behave as a kernel before 2026 (appraise_type=sigv3 only with digest_type=verity).
    #[arg(long)]
    sigv3_verity_only: bool,
}

impl KernelArgs {
    fn config(self) -> KernelConfig {
        KernelConfig {
            modsig: !self.no_modsig,
            key_check: !self.no_key_check,
            sigv3_regular: !self.sigv3_verity_only,
        }
    }
}

/// Build options of the built-in policies.
#[derive(Args, Clone, Copy)]
pub struct BuildArgs {
    /// Kernel without CONFIG_IMA_WRITE_POLICY (appraise_tcb does not appraise POLICY_CHECK).
    #[arg(long)]
    no_write_policy: bool,
    /// CONFIG_IMA_APPRAISE_SIGNED_INIT: appraise_tcb requires signatures on root's files.
    #[arg(long)]
    signed_init: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_MODULE_SIGS
    #[arg(long)]
    require_module_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_FIRMWARE_SIGS
    #[arg(long)]
    require_firmware_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_KEXEC_SIGS
    #[arg(long)]
    require_kexec_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_POLICY_SIGS
    #[arg(long)]
    require_policy_sigs: bool,
}

impl BuildArgs {
    fn config(self) -> builtin::BuiltinConfig {
        builtin::BuiltinConfig {
            write_policy: !self.no_write_policy,
            appraise_signed_init: self.signed_init,
            require_module_sigs: self.require_module_sigs,
            require_firmware_sigs: self.require_firmware_sigs,
            require_kexec_sigs: self.require_kexec_sigs,
            require_policy_sigs: self.require_policy_sigs,
        }
    }
}

/// `vigil policy eval`: the request to decide.
#[derive(Args)]
pub struct EvalArgs {
    /// Policy file.
    #[arg(required_unless_present = "builtin")]
    file: Option<PathBuf>,
    /// Evaluate a built-in policy (e.g. `tcb|appraise_tcb`) instead of a file.
    #[arg(long, value_name = "NAMES", conflicts_with = "file")]
    builtin: Option<String>,
    /// The hook: FILE_CHECK, MMAP_CHECK, BPRM_CHECK, CREDS_CHECK, POST_SETATTR,
    /// MODULE_CHECK, FIRMWARE_CHECK, KEXEC_KERNEL_CHECK, KEY_CHECK, CRITICAL_DATA, …
    #[arg(long, default_value = "FILE_CHECK")]
    func: String,
    /// Requested access: MAY_READ, MAY_WRITE, MAY_EXEC, MAY_APPEND joined by `|` or
    /// `,` (an O_RDWR open is `MAY_READ|MAY_WRITE`), or a number.
    #[arg(long, default_value = "MAY_READ")]
    mask: String,
    /// Real uid of the task.
    #[arg(long, default_value_t = 0)]
    uid: u32,
    /// Effective uid (default: the uid).
    #[arg(long)]
    euid: Option<u32>,
    /// Saved set-user-id (default: the euid).
    #[arg(long)]
    suid: Option<u32>,
    /// Real gid of the task.
    #[arg(long, default_value_t = 0)]
    gid: u32,
    /// Effective gid (default: the gid).
    #[arg(long)]
    egid: Option<u32>,
    /// Saved set-group-id (default: the egid).
    #[arg(long)]
    sgid: Option<u32>,
    /// The task has CAP_SETUID (euid= then also matches the saved and real uid).
    #[arg(long)]
    cap_setuid: bool,
    /// The task has CAP_SETGID.
    #[arg(long)]
    cap_setgid: bool,
    /// Take the file's owner, group, filesystem magic, type name and subtype from an
    /// existing file (stat, statfs and /proc/self/mountinfo); options given explicitly
    /// take precedence.
    #[arg(long, value_name = "FILE")]
    path: Option<PathBuf>,
    /// Owner of the file (default 0).
    #[arg(long)]
    fowner: Option<u32>,
    /// Group of the file (default 0).
    #[arg(long)]
    fgroup: Option<u32>,
    /// Filesystem magic (hex, with or without 0x) or a name: ext4, xfs, btrfs, tmpfs,
    /// proc, sysfs, fuse, overlayfs, … (default ext4).
    #[arg(long)]
    fsmagic: Option<String>,
    /// Filesystem UUID.
    #[arg(long)]
    fsuuid: Option<String>,
    /// Filesystem type name (default: the name of --fsmagic if it is a name).
    #[arg(long)]
    fsname: Option<String>,
    /// Filesystem subtype (FUSE).
    #[arg(long)]
    fs_subtype: Option<String>,
    /// LSM user of the task.
    #[arg(long)]
    subj_user: Option<String>,
    /// LSM role of the task.
    #[arg(long)]
    subj_role: Option<String>,
    /// LSM type of the task.
    #[arg(long)]
    subj_type: Option<String>,
    /// LSM user of the file.
    #[arg(long)]
    obj_user: Option<String>,
    /// LSM role of the file.
    #[arg(long)]
    obj_role: Option<String>,
    /// LSM type of the file.
    #[arg(long)]
    obj_type: Option<String>,
    /// KEY_CHECK: the keyring the key is added to (e.g. .ima).
    #[arg(long)]
    keyring: Option<String>,
    /// CRITICAL_DATA: the data's label (e.g. selinux).
    #[arg(long)]
    label: Option<String>,
    /// Only decide these classes (comma-separated: measure,appraise,audit,hash).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    #[command(flatten)]
    kernel: KernelArgs,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
}

/// Read a policy file (`-`: standard input) as UTF-8 text, at most
/// [`policy::MAX_POLICY_FILE`] bytes.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    let limit = policy::MAX_POLICY_FILE;
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut b)
            .context("reading standard input")?;
        if b.len() as u64 > limit {
            anyhow::bail!("standard input: larger than {limit} bytes: not a policy");
        }
        b
    } else {
        vigil_ima::keys::read_at_most(path, limit)
            .with_context(|| format!("reading {}", path.display()))?
    };
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        anyhow::anyhow!(
            "{}:{line}: not UTF-8 text (byte offset {at}): vigil reads policies as UTF-8",
            path.display()
        )
    })
}

/// Parse a file; print rejected rules and warnings to stderr. Returns the accepted
/// rules and whether every rule was accepted.
fn load(path: &Path, cfg: &KernelConfig, quiet: bool) -> anyhow::Result<(Policy, bool)> {
    let text = read_text(path)?;
    let out = policy::parse_all(&text, cfg);
    if !quiet {
        report_parse(path, &out);
    }
    Ok((out.policy, out.errors.is_empty()))
}

fn report_parse(path: &Path, out: &policy::ParseOutcome) {
    for e in &out.errors {
        if let vigil_ima::Error::PolicyRule {
            line,
            token,
            reason,
        } = e
        {
            match (line, token.is_empty()) {
                (0, _) => eprintln!("{}: {reason}", path.display()),
                (_, true) => eprintln!("{}:{line}: {reason}", path.display()),
                _ => eprintln!("{}:{line}: {token:?}: {reason}", path.display()),
            }
        }
    }
    for w in &out.warnings {
        eprintln!(
            "{}:{}: warning: {:?}: {}",
            path.display(),
            w.line,
            w.token,
            w.message
        );
    }
}

fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Run `vigil policy …`.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Policy(cmd) = cmd;
    match cmd {
        PolicyCommand::Check {
            files,
            kernel,
            json,
        } => check(&files, &kernel.config(), json),
        PolicyCommand::Print {
            file,
            loadable,
            kernel,
        } => {
            let (p, ok) = load(&file, &kernel.config(), false)?;
            if ok {
                let text = if loadable {
                    p.to_loadable_string()
                } else {
                    p.to_kernel_string()
                };
                crate::stdout().write_all(text.as_bytes())?;
            }
            Ok(status(ok))
        }
        PolicyCommand::Builtin { names, build } => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let p = builtin::policy(&refs, &build.config())?;
            crate::stdout().write_all(p.to_kernel_string().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Eval(args) => eval(*args),
        PolicyCommand::Lint {
            file,
            builtin: names,
            kernel,
            json,
        } => lint(file.as_deref(), names.as_deref(), &kernel.config(), json),
        PolicyCommand::Diff { old, new, kernel } => {
            let cfg = kernel.config();
            let (a, ok_a) = load(&old, &cfg, false)?;
            let (b, ok_b) = load(&new, &cfg, false)?;
            if !ok_a || !ok_b {
                bail!("cannot compare: rejected rules (see above)");
            }
            let mut same = true;
            let mut out = crate::stdout();
            for item in policy::diff(&a, &b) {
                match item {
                    policy::DiffItem::Same(i, _) => writeln!(out, "  {}", a.rules[i]),
                    policy::DiffItem::Removed(i) => {
                        same = false;
                        writeln!(
                            out,
                            "- {}    # {}:{}",
                            a.rules[i],
                            old.display(),
                            a.lines[i]
                        )
                    }
                    policy::DiffItem::Added(j) => {
                        same = false;
                        writeln!(
                            out,
                            "+ {}    # {}:{}",
                            b.rules[j],
                            new.display(),
                            b.lines[j]
                        )
                    }
                }?;
            }
            Ok(status(same))
        }
    }
}

fn check(files: &[PathBuf], cfg: &KernelConfig, json: bool) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    let mut reports = Vec::new();
    let mut out = crate::stdout();
    for f in files {
        let text = read_text(f)?;
        let mut parsed = policy::parse_all(&text, cfg);
        let empty = parsed.errors.is_empty() && parsed.policy.rules.is_empty();
        if empty {
            // ima_check_policy: closing the policy file with no rule written fails.
            parsed.errors.push(vigil_ima::Error::PolicyRule {
                line: 0,
                token: String::new(),
                reason: "the policy has no rules; the kernel refuses an empty policy".into(),
            });
        }
        all_ok &= parsed.errors.is_empty();
        if json {
            let errors: Vec<Value> = parsed
                .errors
                .iter()
                .filter_map(|e| match e {
                    vigil_ima::Error::PolicyRule {
                        line,
                        token,
                        reason,
                    } => Some(json!({"line": line, "token": token, "reason": reason})),
                    _ => None,
                })
                .collect();
            let warnings: Vec<Value> = parsed
                .warnings
                .iter()
                .map(|w| json!({"line": w.line, "token": w.token, "message": w.message}))
                .collect();
            reports.push(json!({
                "file": f.display().to_string(),
                "rules": parsed.policy.rules.len(),
                "ok": parsed.errors.is_empty(),
                "errors": errors,
                "warnings": warnings,
            }));
        } else {
            report_parse(f, &parsed);
            if parsed.errors.is_empty() {
                writeln!(
                    out,
                    "{}: {} rules OK",
                    f.display(),
                    parsed.policy.rules.len()
                )?;
            } else if empty {
                writeln!(out, "{}: no rules", f.display())?;
            } else {
                writeln!(
                    out,
                    "{}: {} of {} rules rejected",
                    f.display(),
                    parsed.errors.len(),
                    parsed.errors.len() + parsed.policy.rules.len()
                )?;
            }
        }
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(status(all_ok))
}

fn parse_mask(s: &str) -> anyhow::Result<u8> {
    let mut mask = 0u8;
    for part in s.split(['|', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        mask |= match part {
            "MAY_EXEC" => policy::MAY_EXEC,
            "MAY_WRITE" => policy::MAY_WRITE,
            "MAY_READ" => policy::MAY_READ,
            "MAY_APPEND" => policy::MAY_APPEND,
            n => {
                let v = match n.strip_prefix("0x") {
                    Some(h) => u8::from_str_radix(h, 16),
                    None => n.parse(),
                };
                v.with_context(|| format!("--mask: unknown access {n:?}"))?
            }
        };
    }
    Ok(mask)
}

/// `--fsmagic`: a name or a hex number; returns the magic and the name if known.
fn parse_fsmagic(s: &str) -> anyhow::Result<(u64, Option<&'static str>)> {
    use policy::magic::*;
    let named: &[(&str, u64)] = &[
        ("ext4", EXT4),
        ("ext3", EXT4),
        ("ext2", EXT4),
        ("xfs", XFS),
        ("btrfs", BTRFS),
        ("fuse", FUSE),
        ("overlay", OVERLAYFS),
        ("overlayfs", OVERLAYFS),
    ];
    if let Some((n, m)) = named.iter().find(|(n, _)| *n == s) {
        return Ok((*m, Some(n)));
    }
    if let Some((m, n)) = PSEUDO.iter().find(|(_, n)| *n == s) {
        return Ok((*m, Some(n)));
    }
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let m = u64::from_str_radix(hex, 16)
        .with_context(|| format!("--fsmagic: {s:?} is neither a filesystem name nor hex"))?;
    let name = PSEUDO
        .iter()
        .find(|(x, _)| *x == m)
        .map(|(_, n)| *n)
        .or_else(|| named.iter().find(|(_, x)| *x == m).map(|(n, _)| *n));
    Ok((m, name))
}

/// What the kernel would see of an existing file.
struct Probed {
    uid: u32,
    gid: u32,
    fsmagic: u64,
    fsname: Option<String>,
    fs_subtype: Option<String>,
}

fn probe(path: &Path) -> anyhow::Result<Probed> {
    let st = rustix::fs::stat(path).with_context(|| format!("stat {}", path.display()))?;
    let sfs = rustix::fs::statfs(path).with_context(|| format!("statfs {}", path.display()))?;
    let canon =
        std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
    let (fsname, fs_subtype) = match mount_fstype(&canon) {
        Some(t) => match t.split_once('.') {
            // mountinfo shows FUSE mounts as `fuse.<subtype>`
            Some((name, sub)) => (Some(name.to_owned()), Some(sub.to_owned())),
            None => (Some(t), None),
        },
        None => (None, None),
    };
    Ok(Probed {
        uid: st.st_uid,
        gid: st.st_gid,
        // filesystem magics are 32-bit; f_type is a signed long on some architectures
        fsmagic: (sfs.f_type as u64) & 0xffff_ffff,
        fsname,
        fs_subtype,
    })
}

/// The filesystem type (`/proc/self/mountinfo` field after `-`) of the mount holding
/// `path`: the deepest mount point above it, the last one mounted if stacked.
fn mount_fstype(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let unescape = |s: &str| -> String {
        let mut out = String::new();
        let mut it = s.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\\' {
                let oct: String = it.by_ref().take(3).collect();
                match u8::from_str_radix(&oct, 8) {
                    Ok(b) => out.push(b as char),
                    Err(_) => {
                        out.push('\\');
                        out.push_str(&oct);
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mnt), Some(fstype)) = (fields.get(4), fields.get(dash + 1)) else {
            continue;
        };
        let mnt = PathBuf::from(unescape(mnt));
        if path.starts_with(&mnt) {
            let depth = mnt.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, (*fstype).to_owned()));
            }
        }
    }
    best.map(|(_, t)| t)
}

fn parse_uuid(s: &str) -> anyhow::Result<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let v = hex::decode(&hex).with_context(|| format!("--fsuuid: {s:?} is not a UUID"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("--fsuuid: {s:?} is not 16 bytes"))
}

fn policy_from(
    file: Option<&Path>,
    names: Option<&str>,
    cfg: &KernelConfig,
) -> anyhow::Result<(Policy, bool, String)> {
    match (file, names) {
        (_, Some(n)) => Ok((
            builtin::policy(&[n], &builtin::BuiltinConfig::default())?,
            true,
            format!("builtin:{n}"),
        )),
        (Some(f), None) => {
            let (p, ok) = load(f, cfg, false)?;
            Ok((p, ok, f.display().to_string()))
        }
        (None, None) => bail!("a policy FILE or --builtin NAMES is required"),
    }
}

fn decision_json(p: &Policy, d: &Decision) -> Value {
    let mut classes = serde_json::Map::new();
    for c in ActionClass::ALL {
        let cd = d.class(c);
        classes.insert(
            c.name().into(),
            match cd.rule {
                Some(i) => json!({
                    "decided": true,
                    "action": p.rules[i as usize].action.token(),
                    "rule": i + 1,
                    "line": p.lines[i as usize],
                    "text": p.rules[i as usize].to_string().trim_end(),
                }),
                None => json!({"decided": false}),
            },
        );
    }
    json!({
        "classes": classes,
        "must_measure": d.must_measure(),
        "must_appraise": d.must_appraise(),
        "must_audit": d.must_audit(),
        "must_hash": d.must_hash(),
        "pcr": d.pcr,
        "template": d.template,
        "appraise_type": d.appraise_type().map(|t| t.token()),
        "digest_type": if d.digest_verity { "verity" } else { "ima" },
        "appraise_algos": d.appraise_algos.map(|b| policy::algos_from_bits(b).iter().map(|a| a.name()).collect::<Vec<_>>()),
        "permit_directio": d.permit_directio,
    })
}

fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.kernel.config();
    let (p, ok, source) = policy_from(a.file.as_deref(), a.builtin.as_deref(), &cfg)?;
    if !ok {
        eprintln!(
            "vigil: evaluating only the accepted rules (the kernel would refuse this policy)"
        );
    }
    let func =
        Func::from_name(&a.func).with_context(|| format!("--func: unknown hook {:?}", a.func))?;
    let probed = a.path.as_deref().map(probe).transpose()?;
    let (fsmagic, magic_name) = match (&a.fsmagic, &probed) {
        (Some(m), _) => parse_fsmagic(m)?,
        (None, Some(p)) => (p.fsmagic, None),
        (None, None) => parse_fsmagic("ext4")?,
    };
    // an explicit --fsmagic names the filesystem; else what the file is on
    let probed_fs = probed.as_ref().filter(|_| a.fsmagic.is_none());
    let fsname = a
        .fsname
        .clone()
        .or_else(|| probed_fs.and_then(|p| p.fsname.clone()))
        .or(magic_name.map(str::to_owned))
        .unwrap_or_default();
    let fs_subtype = a
        .fs_subtype
        .clone()
        .or_else(|| probed_fs.and_then(|p| p.fs_subtype.clone()));
    let fsuuid = a
        .fsuuid
        .as_deref()
        .map(parse_uuid)
        .transpose()?
        .unwrap_or([0; 16]);
    let mut classes = 0u8;
    for c in &a.classes {
        classes |= ActionClass::from_name(c)
            .with_context(|| format!("--classes: unknown class {c:?}"))?
            .bit();
    }
    let euid = a.euid.unwrap_or(a.uid);
    let egid = a.egid.unwrap_or(a.gid);
    let req = Request {
        func,
        mask: parse_mask(&a.mask)?,
        uid: a.uid,
        euid,
        suid: a.suid.unwrap_or(euid),
        gid: a.gid,
        egid,
        sgid: a.sgid.unwrap_or(egid),
        cap_setuid: a.cap_setuid,
        cap_setgid: a.cap_setgid,
        fowner: a.fowner.or(probed.as_ref().map(|p| p.uid)).unwrap_or(0),
        fgroup: a.fgroup.or(probed.as_ref().map(|p| p.gid)).unwrap_or(0),
        fsmagic,
        fsuuid,
        fsname: &fsname,
        fs_subtype: fs_subtype.as_deref(),
        subj: LsmLabel {
            user: a.subj_user.as_deref(),
            role: a.subj_role.as_deref(),
            type_: a.subj_type.as_deref(),
        },
        obj: LsmLabel {
            user: a.obj_user.as_deref(),
            role: a.obj_role.as_deref(),
            type_: a.obj_type.as_deref(),
        },
        func_data: a.keyring.as_deref().or(a.label.as_deref()),
        classes: if classes == 0 { 0xf } else { classes },
    };
    let compiled = CompiledPolicy::new(&p);
    let mut out = crate::stdout();
    let ex = compiled.explain(&req);
    let d = ex.decision;
    let where_ = |i: usize| {
        if p.lines[i] == 0 {
            format!("rule {}", i + 1)
        } else {
            format!("line {}", p.lines[i])
        }
    };
    if a.json {
        let steps: Vec<Value> = ex
            .steps
            .iter()
            .map(|s| {
                let (outcome, detail) = match s.outcome {
                    StepOutcome::NotAsked(c) => ("not-asked", c.name().to_owned()),
                    StepOutcome::AlreadyDecided(c) => ("already-decided", c.name().to_owned()),
                    StepOutcome::NoMatch(m) => ("no-match", m.to_string()),
                    StepOutcome::Decided(c) => ("decided", c.name().to_owned()),
                };
                json!({"rule": s.rule + 1, "line": s.line, "text": p.rules[s.rule].to_string().trim_end(),
                       "outcome": outcome, "detail": detail})
            })
            .collect();
        let mut v = decision_json(&p, &d);
        v["policy"] = json!(source);
        v["request"] = json!({
            "func": req.func.name(),
            "mask": req.mask,
            "uid": req.uid, "euid": req.euid, "suid": req.suid,
            "gid": req.gid, "egid": req.egid, "sgid": req.sgid,
            "cap_setuid": req.cap_setuid, "cap_setgid": req.cap_setgid,
            "fowner": req.fowner, "fgroup": req.fgroup,
            "fsmagic": format!("{:#x}", req.fsmagic),
            "fsuuid": hex::encode(req.fsuuid),
            "fsname": req.fsname,
            "fs_subtype": req.fs_subtype,
        });
        v["steps"] = json!(steps);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in ActionClass::ALL {
        if req.classes & c.bit() == 0 {
            continue;
        }
        match d.class(c).rule {
            Some(i) => {
                let i = i as usize;
                writeln!(
                    out,
                    "{:<9}{:<14} by {}: {}",
                    c.name(),
                    p.rules[i].action.token(),
                    where_(i),
                    p.rules[i].to_string().trim_end()
                )
            }
            None => writeln!(out, "{:<9}{:<14} (no rule matched)", c.name(), "-"),
        }?;
    }
    let mut opts = Vec::new();
    if let Some(pcr) = d.pcr {
        opts.push(format!("pcr={pcr}"));
    }
    if let Some(t) = d.template {
        opts.push(format!("template={t}"));
    }
    if let Some(t) = d.appraise_type() {
        opts.push(format!("appraise_type={}", t.token()));
    }
    if d.digest_verity {
        opts.push("digest_type=verity".into());
    }
    if let Some(b) = d.appraise_algos {
        let n: Vec<&str> = policy::algos_from_bits(b)
            .iter()
            .map(|a| a.name())
            .collect();
        opts.push(format!("appraise_algos={}", n.join(",")));
    }
    if d.permit_directio {
        opts.push("permit_directio".into());
    }
    if d.hash.act && !d.must_hash() {
        opts.push("hash taken over by appraisal".into());
    }
    if !opts.is_empty() {
        writeln!(out, "options  {}", opts.join(" "))?;
    }
    writeln!(out, "\nexplanation:")?;
    for s in &ex.steps {
        let what = match s.outcome {
            StepOutcome::NotAsked(c) => format!("skipped: {} not asked", c.name()),
            StepOutcome::AlreadyDecided(c) => format!("skipped: {} already decided", c.name()),
            StepOutcome::NoMatch(m) => format!("no match: {m}"),
            StepOutcome::Decided(c) => format!("DECIDES {}", c.name()),
        };
        writeln!(
            out,
            "  {}: {}\n      {what}",
            where_(s.rule),
            p.rules[s.rule].to_string().trim_end()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn lint(
    file: Option<&Path>,
    names: Option<&str>,
    cfg: &KernelConfig,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (p, ok, source) = policy_from(file, names, cfg)?;
    let findings = analyze(&p);
    let mut out = crate::stdout();
    let warn = findings.iter().any(|f| f.severity == Severity::Warning);
    if json {
        let items: Vec<Value> = findings
            .iter()
            .map(|f| {
                json!({
                    "rule": f.rule + 1,
                    "line": f.line,
                    "severity": if f.severity == Severity::Warning { "warning" } else { "info" },
                    "text": p.rules[f.rule].to_string().trim_end(),
                    "message": f.message,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"policy": source, "ok": ok, "findings": items}))?
        )?;
    } else {
        for f in &findings {
            let loc = if f.line == 0 {
                format!("{source}: rule {}", f.rule + 1)
            } else {
                format!("{source}:{}", f.line)
            };
            writeln!(
                out,
                "{loc}: {}: {}\n    {}",
                if f.severity == Severity::Warning {
                    "warning"
                } else {
                    "info"
                },
                f.message,
                p.rules[f.rule].to_string().trim_end()
            )?;
        }
        if findings.is_empty() && ok {
            writeln!(out, "{source}: {} rules, no findings", p.rules.len())?;
        }
    }
    Ok(status(ok && !warn))
}
