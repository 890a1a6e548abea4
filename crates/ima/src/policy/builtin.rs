//! The kernel's built-in policies (`ima_init_policy`): `ima_policy=tcb|appraise_tcb|
//! secure_boot|critical_data|fail_securely` and the legacy `ima_tcb` /
//! `ima_appraise_tcb` parameters, combined in the kernel's order.

use super::{magic, parse, Policy};
use crate::{Error, Result};

/// The names [`policy`] accepts.
pub const NAMES: &[&str] = &[
    "tcb",
    "ima_tcb",
    "appraise_tcb",
    "ima_appraise_tcb",
    "secure_boot",
    "critical_data",
    "fail_securely",
];

/// Build options that change the built-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinConfig {
    /// CONFIG_IMA_WRITE_POLICY: `appraise_tcb` also requires a signed policy.
    pub write_policy: bool,
    /// CONFIG_IMA_APPRAISE_SIGNED_INIT: `appraise_tcb`'s `appraise fowner=0` requires
    /// a signature.
    pub appraise_signed_init: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_MODULE_SIGS
    pub require_module_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_FIRMWARE_SIGS
    pub require_firmware_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_KEXEC_SIGS
    pub require_kexec_sigs: bool,
    /// CONFIG_IMA_APPRAISE_REQUIRE_POLICY_SIGS
    pub require_policy_sigs: bool,
}

impl Default for BuiltinConfig {
    /// As most distribution kernels: policy writes allowed, no build-time signature rules.
    fn default() -> Self {
        BuiltinConfig {
            write_policy: true,
            appraise_signed_init: false,
            require_module_sigs: false,
            require_firmware_sigs: false,
            require_kexec_sigs: false,
            require_policy_sigs: false,
        }
    }
}

fn dont(action: &str, magics: &[(u64, Option<&str>)]) -> String {
    magics
        .iter()
        .map(|(m, func)| match func {
            Some(f) => format!("{action} func={f} fsmagic=0x{m:x}\n"),
            None => format!("{action} fsmagic=0x{m:x}\n"),
        })
        .collect()
}

/// `dont_measure_rules[]` (TMPFS only for FILE_CHECK, as in current kernels).
fn dont_measure_rules() -> String {
    use magic::*;
    dont(
        "dont_measure",
        &[
            (PROC, None),
            (SYSFS, None),
            (DEBUGFS, None),
            (TMPFS, Some("FILE_CHECK")),
            (DEVPTS, None),
            (BINFMTFS, None),
            (SECURITYFS, None),
            (SELINUX, None),
            (SMACK, None),
            (CGROUP, None),
            (CGROUP2, None),
            (NSFS, None),
            (EFIVARFS, None),
        ],
    )
}

const ORIGINAL_MEASUREMENT: &str = "\
measure func=MMAP_CHECK mask=MAY_EXEC
measure func=BPRM_CHECK mask=MAY_EXEC
measure func=FILE_CHECK mask=MAY_READ uid=0
measure func=MODULE_CHECK
measure func=FIRMWARE_CHECK
";

const DEFAULT_MEASUREMENT: &str = "\
measure func=MMAP_CHECK mask=MAY_EXEC
measure func=BPRM_CHECK mask=MAY_EXEC
measure func=FILE_CHECK mask=^MAY_READ euid=0
measure func=FILE_CHECK mask=^MAY_READ uid=0
measure func=MODULE_CHECK
measure func=FIRMWARE_CHECK
measure func=POLICY_CHECK
";

const SECURE_BOOT: &str = "\
appraise func=MODULE_CHECK appraise_type=imasig
appraise func=FIRMWARE_CHECK appraise_type=imasig
appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig
appraise func=POLICY_CHECK appraise_type=imasig
";

const CRITICAL_DATA: &str = "measure func=CRITICAL_DATA\n";

fn default_appraise_rules(cfg: &BuiltinConfig) -> String {
    use magic::*;
    let mut s = dont(
        "dont_appraise",
        &[
            (PROC, None),
            (SYSFS, None),
            (DEBUGFS, None),
            (TMPFS, None),
            (RAMFS, None),
            (DEVPTS, None),
            (BINFMTFS, None),
            (SECURITYFS, None),
            (SELINUX, None),
            (SMACK, None),
            (NSFS, None),
            (EFIVARFS, None),
            (CGROUP, None),
            (CGROUP2, None),
        ],
    );
    if cfg.write_policy {
        s.push_str("appraise func=POLICY_CHECK appraise_type=imasig\n");
    }
    if cfg.appraise_signed_init {
        s.push_str("appraise fowner=0 appraise_type=imasig\n");
    } else {
        s.push_str("appraise fowner=0\n");
    }
    s
}

fn build_appraise_rules(cfg: &BuiltinConfig) -> String {
    let mut s = String::new();
    for (on, func) in [
        (cfg.require_module_sigs, "MODULE_CHECK"),
        (cfg.require_firmware_sigs, "FIRMWARE_CHECK"),
        (cfg.require_kexec_sigs, "KEXEC_KERNEL_CHECK"),
        (cfg.require_policy_sigs, "POLICY_CHECK"),
    ] {
        if on {
            s.push_str(&format!("appraise func={func} appraise_type=imasig\n"));
        }
    }
    s
}

fn rules(text: &str) -> Policy {
    // The built-in texts are constants of this module and always parse; the tests
    // check every combination.
    let mut p = parse(text).unwrap_or_default();
    p.lines.iter_mut().for_each(|l| *l = 0);
    p
}

/// The boot-time policy for `names` (each may also be a `|`-separated list, as in
/// `ima_policy=tcb|appraise_tcb`), in the kernel's order: measurement rules of `tcb`
/// or `ima_tcb` (whichever comes first), `secure_boot`, build-time appraise rules,
/// `appraise_tcb`, `critical_data`. Architecture rules (which depend on the firmware's
/// secure boot state) are not included.
pub fn policy(names: &[&str], cfg: &BuiltinConfig) -> Result<Policy> {
    #[derive(PartialEq)]
    enum Tcb {
        None,
        Original,
        Default,
    }
    let mut tcb = Tcb::None;
    let (mut appraise_tcb, mut secure_boot, mut critical) = (false, false, false);
    for name in names.iter().flat_map(|n| n.split(['|', ' ', '\n'])) {
        match name {
            "" | "fail_securely" => {}
            "tcb" if tcb == Tcb::None => tcb = Tcb::Default,
            "ima_tcb" if tcb == Tcb::None => tcb = Tcb::Original,
            "tcb" | "ima_tcb" => {}
            "appraise_tcb" | "ima_appraise_tcb" => appraise_tcb = true,
            "secure_boot" => secure_boot = true,
            "critical_data" => critical = true,
            other => return Err(Error::UnknownBuiltinPolicy(other.to_owned())),
        }
    }
    let mut text = String::new();
    match tcb {
        Tcb::None => {}
        Tcb::Original => {
            text += &dont_measure_rules();
            text += ORIGINAL_MEASUREMENT;
        }
        Tcb::Default => {
            text += &dont_measure_rules();
            text += DEFAULT_MEASUREMENT;
        }
    }
    if secure_boot {
        text += SECURE_BOOT;
    } else {
        text += &build_appraise_rules(cfg);
    }
    if appraise_tcb {
        text += &default_appraise_rules(cfg);
    }
    if critical {
        text += CRITICAL_DATA;
    }
    Ok(rules(&text))
}

/// The rules a build-time configuration keeps in front of every custom policy
/// (CONFIG_IMA_APPRAISE_REQUIRE_*_SIGS), which a loaded policy cannot remove.
pub fn persistent_rules(cfg: &BuiltinConfig) -> Policy {
    rules(&build_appraise_rules(cfg))
}
