use super::builtin::{self, BuiltinConfig};
use super::*;
use crate::Error;

fn print(text: &str) -> String {
    parse(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .to_kernel_string()
}

fn rejected(text: &str) -> (usize, String, String) {
    match parse(text) {
        Err(Error::PolicyRule {
            line,
            token,
            reason,
        }) => (line, token, reason),
        other => panic!("{text:?} accepted: {other:?}"),
    }
}

/// Every example of Documentation/ABI/testing/ima_policy, with the line the kernel
/// prints for it.
const ABI_EXAMPLES: &[(&str, &str)] = &[
    (
        "dont_measure fsmagic=0x9fa0",
        "dont_measure fsmagic=0x9fa0 ",
    ),
    (
        "dont_appraise fsmagic=0x9fa0",
        "dont_appraise fsmagic=0x9fa0 ",
    ),
    (
        "dont_measure fsmagic=0x62656572",
        "dont_measure fsmagic=0x62656572 ",
    ),
    (
        "dont_appraise fsmagic=0x62656572",
        "dont_appraise fsmagic=0x62656572 ",
    ),
    (
        "dont_measure fsmagic=0x64626720",
        "dont_measure fsmagic=0x64626720 ",
    ),
    (
        "dont_appraise fsmagic=0x64626720",
        "dont_appraise fsmagic=0x64626720 ",
    ),
    (
        "dont_measure fsmagic=0x01021994",
        "dont_measure fsmagic=0x1021994 ",
    ),
    (
        "dont_appraise fsmagic=0x01021994",
        "dont_appraise fsmagic=0x1021994 ",
    ),
    (
        "dont_appraise fsmagic=0x858458f6",
        "dont_appraise fsmagic=0x858458f6 ",
    ),
    (
        "dont_measure fsmagic=0x1cd1",
        "dont_measure fsmagic=0x1cd1 ",
    ),
    (
        "dont_appraise fsmagic=0x1cd1",
        "dont_appraise fsmagic=0x1cd1 ",
    ),
    (
        "dont_measure fsmagic=0x42494e4d",
        "dont_measure fsmagic=0x42494e4d ",
    ),
    (
        "dont_appraise fsmagic=0x42494e4d",
        "dont_appraise fsmagic=0x42494e4d ",
    ),
    (
        "dont_measure fsmagic=0x73636673",
        "dont_measure fsmagic=0x73636673 ",
    ),
    (
        "dont_appraise fsmagic=0x73636673",
        "dont_appraise fsmagic=0x73636673 ",
    ),
    (
        "dont_measure fsmagic=0xf97cff8c",
        "dont_measure fsmagic=0xf97cff8c ",
    ),
    (
        "dont_appraise fsmagic=0xf97cff8c",
        "dont_appraise fsmagic=0xf97cff8c ",
    ),
    (
        "dont_measure fsmagic=0x27e0eb",
        "dont_measure fsmagic=0x27e0eb ",
    ),
    (
        "dont_appraise fsmagic=0x27e0eb",
        "dont_appraise fsmagic=0x27e0eb ",
    ),
    (
        "dont_measure fsmagic=0x6e736673",
        "dont_measure fsmagic=0x6e736673 ",
    ),
    (
        "dont_appraise fsmagic=0x6e736673",
        "dont_appraise fsmagic=0x6e736673 ",
    ),
    ("measure func=BPRM_CHECK", "measure func=BPRM_CHECK "),
    (
        "measure func=FILE_MMAP mask=MAY_EXEC",
        "measure func=MMAP_CHECK mask=MAY_EXEC ",
    ),
    (
        "measure func=FILE_CHECK mask=MAY_READ uid=0",
        "measure func=FILE_CHECK mask=MAY_READ uid=0 ",
    ),
    ("measure func=MODULE_CHECK", "measure func=MODULE_CHECK "),
    (
        "measure func=FIRMWARE_CHECK",
        "measure func=FIRMWARE_CHECK ",
    ),
    ("appraise fowner=0", "appraise fowner=0 "),
    (
        "dont_measure obj_type=var_log_t",
        "dont_measure obj_type=var_log_t ",
    ),
    (
        "dont_appraise obj_type=var_log_t",
        "dont_appraise obj_type=var_log_t ",
    ),
    (
        "dont_measure obj_type=auditd_log_t",
        "dont_measure obj_type=auditd_log_t ",
    ),
    (
        "dont_appraise obj_type=auditd_log_t",
        "dont_appraise obj_type=auditd_log_t ",
    ),
    (
        "measure subj_user=system_u func=FILE_CHECK mask=MAY_READ",
        "measure func=FILE_CHECK mask=MAY_READ subj_user=system_u ",
    ),
    (
        "measure subj_role=system_r func=FILE_CHECK mask=MAY_READ",
        "measure func=FILE_CHECK mask=MAY_READ subj_role=system_r ",
    ),
    (
        "measure subj_user=_ func=FILE_CHECK mask=MAY_READ",
        "measure func=FILE_CHECK mask=MAY_READ subj_user=_ ",
    ),
    (
        "measure func=KEXEC_KERNEL_CHECK pcr=4",
        "measure func=KEXEC_KERNEL_CHECK pcr=4 ",
    ),
    (
        "measure func=KEXEC_INITRAMFS_CHECK pcr=5",
        "measure func=KEXEC_INITRAMFS_CHECK pcr=5 ",
    ),
    (
        "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig",
        "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig ",
    ),
    ("measure func=KEY_CHECK", "measure func=KEY_CHECK "),
    (
        "measure func=KEY_CHECK keyrings=.builtin_trusted_keys|.ima",
        "measure func=KEY_CHECK keyrings=.builtin_trusted_keys|.ima ",
    ),
    (
        "appraise func=SETXATTR_CHECK appraise_algos=sha256,sha384,sha512",
        "appraise func=SETXATTR_CHECK appraise_algos=sha256,sha384,sha512 ",
    ),
    (
        "measure func=FILE_CHECK digest_type=verity template=ima-ngv2",
        "measure func=FILE_CHECK template=ima-ngv2 digest_type=verity ",
    ),
    (
        "appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3",
        "appraise func=BPRM_CHECK appraise_type=sigv3 digest_type=verity ",
    ),
];

#[test]
fn abi_examples_print_as_the_kernel() {
    for (rule, printed) in ABI_EXAMPLES {
        assert_eq!(print(rule), format!("{printed}\n"), "{rule}");
        // The loadable form reads back as the same rule; so does the kernel's form
        // except for verity signature rules, which the kernel prints with
        // digest_type= after appraise_type= (an order it refuses on input).
        let p = parse(rule).unwrap();
        assert_eq!(parse(&p.to_loadable_string()).unwrap().rules, p.rules);
        if !printed.contains("appraise_type=sigv3 digest_type=verity") {
            assert_eq!(parse(printed).unwrap().rules, p.rules);
        } else {
            assert!(parse(printed).is_err());
        }
    }
    // The ABI document's `template=ima-sigv3` names a template the kernel lacks.
    let (_, token, reason) =
        rejected("measure func=BPRM_CHECK digest_type=verity template=ima-sigv3");
    assert_eq!(token, "template=ima-sigv3");
    assert!(reason.contains("unknown template"), "{reason}");
}

#[test]
fn whole_policy_with_comments_and_blank_lines() {
    let text = "# comment\n\n   # indented comment\n\tmeasure func=BPRM_CHECK\n  \n\
                dont_measure fsmagic=0x9fa0\nappraise fowner=0\n";
    let p = parse(text).unwrap();
    assert_eq!(p.lines, vec![4, 6, 7]);
    assert_eq!(
        p.to_kernel_string(),
        "measure func=BPRM_CHECK \ndont_measure fsmagic=0x9fa0 \nappraise fowner=0 \n"
    );
}

#[test]
fn normalisation_details() {
    // aliases, hex without 0x, upper-case hex, any token order
    assert_eq!(
        print("measure func=PATH_CHECK"),
        "measure func=FILE_CHECK \n"
    );
    assert_eq!(print("measure fsmagic=EF53"), "measure fsmagic=0xef53 \n");
    assert_eq!(
        print("measure fsmagic=+0XEF53"),
        "measure fsmagic=0xef53 \n"
    );
    assert_eq!(
        print("measure mask=^MAY_READ euid>1000 func=FILE_CHECK"),
        "measure func=FILE_CHECK mask=^MAY_READ euid>1000 \n"
    );
    // every field at once, in the kernel's print order
    assert_eq!(
        print(
            "appraise permit_directio appraise_type=imasig obj_type=bin_t subj_user=u \
             appraise_algos=sha512,sha256 fgroup<5 fowner>7 egid=3 uid<1000 \
             fsuuid=12345678-9ABC-def0-1234-56789abcdef0 fs_subtype=vigil fsname=fuse \
             fsmagic=0x65735546 mask=MAY_EXEC func=BPRM_CHECK"
        ),
        "appraise func=BPRM_CHECK mask=MAY_EXEC fsmagic=0x65735546 fsname=fuse \
         fs_subtype=vigil fsuuid=12345678-9abc-def0-1234-56789abcdef0 uid<1000 egid=3 \
         fowner>7 fgroup<5 appraise_algos=sha256,sha512 obj_type=bin_t subj_user=u \
         appraise_type=imasig permit_directio \n"
    );
    assert_eq!(
        print("measure func=CRITICAL_DATA label=selinux|kernel_info pcr=11 uid=0"),
        "measure func=CRITICAL_DATA label=selinux|kernel_info pcr=11 uid=0 \n"
    );
    // template by format, printed by name
    assert_eq!(
        print("measure func=BPRM_CHECK template=d-ng|n-ng|sig"),
        "measure func=BPRM_CHECK template=ima-sig \n"
    );
    // ids are printed with %d
    assert_eq!(
        print("measure uid=3000000000"),
        "measure uid=-1294967296 \n"
    );
    // the kernel drops the deprecated appraise_flag
    assert_eq!(
        print(
            "appraise func=MODULE_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig"
        ),
        "appraise func=MODULE_CHECK appraise_type=imasig|modsig \n"
    );
    // the last fsname wins; fsname is printed through a 64-byte buffer
    assert_eq!(print("measure fsname=a fsname=b"), "measure fsname=b \n");
    let long = "x".repeat(70);
    assert_eq!(
        print(&format!("measure fsname={long}")),
        format!("measure fsname={} \n", &long[..63])
    );
    // all actions
    for a in [
        "measure",
        "dont_measure",
        "appraise",
        "dont_appraise",
        "audit",
        "dont_audit",
        "hash",
        "dont_hash",
    ] {
        assert_eq!(print(a), format!("{a} \n"));
    }
    // 2026 kernels: sigv3 over the regular file hash
    assert_eq!(
        print("appraise func=BPRM_CHECK appraise_type=sigv3"),
        "appraise func=BPRM_CHECK appraise_type=sigv3 \n"
    );
}

#[test]
fn rejections() {
    // (rule, offending token, words of the reason)
    let cases: &[(&str, &str, &str)] = &[
        // unknown tokens, including a `#` that is not at the start of the line
        ("measure func=BPRM_CHECK # exec", "#", "unknown token"),
        ("measure foo=bar", "foo=bar", "unknown token"),
        ("measure func=", "func=", "unknown token"),
        ("measure\r", "measure\r", "unknown token"),
        ("measure=1", "measure=1", "unknown token"),
        ("permit_directio=1 measure", "permit_directio=1", "unknown token"),
        ("measure obj_user<x", "obj_user<x", "unknown token"),
        ("measure func=POST_SETATTR", "func=POST_SETATTR", "unknown hook"),
        ("measure func=file_check", "func=file_check", "unknown hook"),
        ("measure mask=MAY_RW", "mask=MAY_RW", "unknown mask"),
        ("measure mask=^^MAY_READ", "mask=^^MAY_READ", "unknown mask"),
        // duplicates
        ("measure appraise", "appraise", "one action"),
        ("measure func=BPRM_CHECK func=FILE_CHECK", "func=FILE_CHECK", "duplicate"),
        ("measure mask=MAY_READ mask=^MAY_EXEC", "mask=^MAY_EXEC", "duplicate"),
        ("measure fsmagic=0x9fa0 fsmagic=0x9fa0", "fsmagic=0x9fa0", "duplicate"),
        ("measure uid=0 euid=0", "euid=0", "uid/euid"),
        ("measure gid=0 egid>5", "egid>5", "gid/egid"),
        ("measure fowner=0 fowner<5", "fowner<5", "duplicate"),
        ("measure fgroup=0 fgroup=1", "fgroup=1", "duplicate"),
        ("measure fs_subtype=a fs_subtype=b", "fs_subtype=b", "duplicate"),
        (
            "measure fsuuid=12345678-9abc-def0-1234-56789abcdef0 fsuuid=12345678-9abc-def0-1234-56789abcdef0",
            "fsuuid=12345678-9abc-def0-1234-56789abcdef0",
            "duplicate",
        ),
        ("measure subj_type=a subj_type=b", "subj_type=b", "duplicate"),
        ("measure func=KEY_CHECK keyrings=a keyrings=b", "keyrings=b", "duplicate"),
        ("measure func=CRITICAL_DATA label=a label=b", "label=b", "duplicate"),
        ("measure template=ima-ng template=ima-sig", "template=ima-sig", "duplicate"),
        (
            "appraise func=SETXATTR_CHECK appraise_algos=sha256 appraise_algos=sha512",
            "appraise_algos=sha512",
            "duplicate",
        ),
        // bad numbers
        ("measure fsmagic=0xzz", "fsmagic=0xzz", "not a number"),
        ("measure fsmagic=0x", "fsmagic=0x", "not a number"),
        ("measure fsmagic=0x10000000000000000", "fsmagic=0x10000000000000000", "out of range"),
        ("measure uid=-1", "uid=-1", "not a number"),
        ("measure uid=4294967295", "uid=4294967295", "not a valid id"),
        ("measure uid=4294967296", "uid=4294967296", "not a valid id"),
        ("measure uid=0x10", "uid=0x10", "not a number"),
        ("measure pcr=64", "pcr=64", "out of range"),
        ("measure pcr=-1", "pcr=-1", "out of range"),
        ("measure pcr=ten", "pcr=ten", "not a number"),
        ("measure fsuuid=1234", "fsuuid=1234", "not a UUID"),
        ("measure fsuuid=12345678_9abc-def0-1234-56789abcdef0", "fsuuid=12345678_9abc-def0-1234-56789abcdef0", "not a UUID"),
        ("appraise func=SETXATTR_CHECK appraise_algos=sha256,", "appraise_algos=sha256,", "unknown hash"),
        ("appraise func=SETXATTR_CHECK appraise_algos=sha3_256", "appraise_algos=sha3_256", "unknown hash"),
        ("measure func=KEY_CHECK keyrings=.ima||.evm", "keyrings=.ima||.evm", "empty item"),
        // §2.3: pcr= and template= only with measure
        ("dont_measure pcr=5", "pcr=5", "only allowed on measure"),
        ("appraise func=BPRM_CHECK pcr=5", "pcr=5", "only allowed on measure"),
        ("appraise template=ima-ng", "template=ima-ng", "after the measure action"),
        ("template=ima-ng measure", "template=ima-ng", "after the measure action"),
        ("measure template=nope", "template=nope", "unknown template"),
        // keyrings only with KEY_CHECK, label only with CRITICAL_DATA
        ("measure keyrings=.ima", "keyrings=.ima", "KEY_CHECK"),
        ("measure func=FILE_CHECK keyrings=.ima", "keyrings=.ima", "KEY_CHECK"),
        ("measure func=KEY_CHECK label=x", "label=x", "CRITICAL_DATA"),
        ("measure label=x", "label=x", "CRITICAL_DATA"),
        // KEY_CHECK / CRITICAL_DATA / KEXEC_CMDLINE: only measure / dont_measure
        ("appraise func=KEY_CHECK", "appraise", "measure or dont_measure"),
        ("audit func=CRITICAL_DATA", "audit", "measure or dont_measure"),
        ("hash func=KEXEC_CMDLINE", "hash", "measure or dont_measure"),
        // KEY_CHECK / CRITICAL_DATA: no LSM, only uid/gid/pcr and the list
        ("measure func=KEY_CHECK subj_type=t", "subj_type=t", "no LSM"),
        ("measure func=CRITICAL_DATA obj_user=u", "obj_user=u", "no LSM"),
        ("measure func=KEY_CHECK fsmagic=0x9fa0", "fsmagic=0x9fa0", "only uid, gid, pcr and keyrings"),
        ("measure func=KEY_CHECK euid=0", "euid=0", "only uid, gid, pcr and keyrings"),
        ("measure func=CRITICAL_DATA mask=MAY_READ", "mask=MAY_READ", "only uid, gid, pcr and label"),
        ("measure func=KEXEC_CMDLINE mask=MAY_READ", "mask=MAY_READ", "KEXEC_CMDLINE"),
        // appraise options only on appraise rules
        ("measure appraise_type=imasig", "appraise_type=imasig", "only allowed on appraise"),
        ("dont_appraise appraise_type=imasig", "appraise_type=imasig", "only allowed on appraise"),
        ("measure appraise_algos=sha256", "appraise_algos=sha256", "only allowed on appraise"),
        // SETXATTR_CHECK: appraise func=SETXATTR_CHECK appraise_algos=… and nothing else
        ("measure func=SETXATTR_CHECK", "measure", "must be appraise"),
        ("appraise func=SETXATTR_CHECK", "func=SETXATTR_CHECK", "requires appraise_algos"),
        (
            "appraise func=SETXATTR_CHECK appraise_algos=sha256 fowner=0",
            "fowner=0",
            "only appraise_algos",
        ),
        (
            "appraise func=SETXATTR_CHECK appraise_algos=sha256 appraise_type=imasig",
            "appraise_type=imasig",
            "only appraise_algos",
        ),
        // imasig|modsig only for MODULE_CHECK, KEXEC_KERNEL_CHECK, KEXEC_INITRAMFS_CHECK
        ("appraise func=BPRM_CHECK appraise_type=imasig|modsig", "appraise_type=imasig|modsig", "MODULE_CHECK"),
        ("appraise appraise_type=imasig|modsig", "appraise_type=imasig|modsig", "MODULE_CHECK"),
        // digest_type=verity: order, compatibility, signature requirement
        ("appraise func=BPRM_CHECK digest_type=verity", "digest_type=verity", "requires appraise_type=sigv3"),
        (
            "appraise func=BPRM_CHECK appraise_type=sigv3 digest_type=verity",
            "digest_type=verity",
            "must come before",
        ),
        (
            "appraise func=BPRM_CHECK digest_type=verity appraise_type=imasig",
            "appraise_type=imasig",
            "incompatible",
        ),
        (
            "appraise func=MODULE_CHECK digest_type=verity appraise_type=imasig|modsig",
            "appraise_type=imasig|modsig",
            "incompatible",
        ),
        (
            "appraise func=MODULE_CHECK digest_type=verity appraise_type=sigv3",
            "digest_type=verity",
            "not allowed with func=MODULE_CHECK",
        ),
        ("measure digest_type=sha256", "digest_type=sha256", "unknown digest type"),
        ("appraise appraise_type=modsig", "appraise_type=modsig", "unknown appraise type"),
        // no action
        ("func=BPRM_CHECK mask=MAY_EXEC", "func=BPRM_CHECK", "no action"),
    ];
    for (rule, token, why) in cases {
        let (line, t, reason) = rejected(rule);
        assert_eq!(line, 1, "{rule}");
        assert_eq!(&t, token, "{rule}: {reason}");
        assert!(reason.contains(why), "{rule}: {reason:?} lacks {why:?}");
    }
}

#[test]
fn kernel_config_switches() {
    let old = KernelConfig {
        modsig: false,
        key_check: false,
        sigv3_regular: false,
    };
    for (rule, token) in [
        (
            "appraise func=MODULE_CHECK appraise_type=imasig|modsig",
            "appraise_type=imasig|modsig",
        ),
        ("measure func=KEY_CHECK", "func=KEY_CHECK"),
        (
            "appraise func=BPRM_CHECK appraise_type=sigv3",
            "appraise_type=sigv3",
        ),
    ] {
        assert!(parse_rule(rule, &KernelConfig::default()).is_ok(), "{rule}");
        match parse_rule(rule, &old) {
            Err(Error::PolicyRule { token: t, .. }) => assert_eq!(t, token),
            other => panic!("{rule}: {other:?}"),
        }
    }
    // verity + sigv3 is fine on every kernel since 5.19
    assert!(parse_rule(
        "appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3",
        &old
    )
    .is_ok());
}

#[test]
fn parse_all_reports_every_rejected_rule_with_its_line() {
    let text = "measure func=BPRM_CHECK\nmeasure bogus\n# c\nappraise pcr=1\nmeasure fsuuid=12345678-9abc-def0-1234-56789abcdef0xyz\n";
    let out = parse_all(text, &KernelConfig::default());
    assert_eq!(out.policy.rules.len(), 2);
    assert_eq!(out.policy.lines, vec![1, 5]);
    let lines: Vec<usize> = out
        .errors
        .iter()
        .map(|e| match e {
            Error::PolicyRule { line, .. } => *line,
            _ => 0,
        })
        .collect();
    assert_eq!(lines, vec![2, 4]);
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].line, 5);
    assert!(out.errors[0]
        .to_string()
        .contains("policy line 2: \"bogus\": unknown token"));
}

fn builtin_text(names: &[&str]) -> String {
    builtin::policy(names, &BuiltinConfig::default())
        .unwrap()
        .to_kernel_string()
}

const DONT_MEASURE: &str = "\
dont_measure fsmagic=0x9fa0 
dont_measure fsmagic=0x62656572 
dont_measure fsmagic=0x64626720 
dont_measure func=FILE_CHECK fsmagic=0x1021994 
dont_measure fsmagic=0x1cd1 
dont_measure fsmagic=0x42494e4d 
dont_measure fsmagic=0x73636673 
dont_measure fsmagic=0xf97cff8c 
dont_measure fsmagic=0x43415d53 
dont_measure fsmagic=0x27e0eb 
dont_measure fsmagic=0x63677270 
dont_measure fsmagic=0x6e736673 
dont_measure fsmagic=0xde5e81e4 
";

const APPRAISE_TCB: &str = "\
dont_appraise fsmagic=0x9fa0 
dont_appraise fsmagic=0x62656572 
dont_appraise fsmagic=0x64626720 
dont_appraise fsmagic=0x1021994 
dont_appraise fsmagic=0x858458f6 
dont_appraise fsmagic=0x1cd1 
dont_appraise fsmagic=0x42494e4d 
dont_appraise fsmagic=0x73636673 
dont_appraise fsmagic=0xf97cff8c 
dont_appraise fsmagic=0x43415d53 
dont_appraise fsmagic=0x6e736673 
dont_appraise fsmagic=0xde5e81e4 
dont_appraise fsmagic=0x27e0eb 
dont_appraise fsmagic=0x63677270 
appraise func=POLICY_CHECK appraise_type=imasig 
appraise fowner=0 
";

#[test]
fn builtin_policies() {
    let tcb = format!(
        "{DONT_MEASURE}measure func=MMAP_CHECK mask=MAY_EXEC 
measure func=BPRM_CHECK mask=MAY_EXEC 
measure func=FILE_CHECK mask=^MAY_READ euid=0 
measure func=FILE_CHECK mask=^MAY_READ uid=0 
measure func=MODULE_CHECK 
measure func=FIRMWARE_CHECK 
measure func=POLICY_CHECK 
"
    );
    let ima_tcb = format!(
        "{DONT_MEASURE}measure func=MMAP_CHECK mask=MAY_EXEC 
measure func=BPRM_CHECK mask=MAY_EXEC 
measure func=FILE_CHECK mask=MAY_READ uid=0 
measure func=MODULE_CHECK 
measure func=FIRMWARE_CHECK 
"
    );
    let secure_boot = "\
appraise func=MODULE_CHECK appraise_type=imasig 
appraise func=FIRMWARE_CHECK appraise_type=imasig 
appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig 
appraise func=POLICY_CHECK appraise_type=imasig 
";
    assert_eq!(builtin_text(&["tcb"]), tcb);
    assert_eq!(builtin_text(&["ima_tcb"]), ima_tcb);
    assert_eq!(builtin_text(&["appraise_tcb"]), APPRAISE_TCB);
    assert_eq!(builtin_text(&["ima_appraise_tcb"]), APPRAISE_TCB);
    assert_eq!(builtin_text(&["secure_boot"]), secure_boot);
    assert_eq!(
        builtin_text(&["critical_data"]),
        "measure func=CRITICAL_DATA \n"
    );
    assert_eq!(builtin_text(&["fail_securely"]), "");
    // Combined in the kernel's order whatever the order on the command line.
    assert_eq!(
        builtin_text(&["critical_data|appraise_tcb|secure_boot|tcb"]),
        format!("{tcb}{secure_boot}{APPRAISE_TCB}measure func=CRITICAL_DATA \n")
    );
    // The first of tcb / ima_tcb wins.
    assert_eq!(builtin_text(&["ima_tcb", "tcb"]), ima_tcb);
    assert_eq!(builtin_text(&["tcb", "ima_tcb"]), tcb);
    assert!(builtin::policy(&["nope"], &BuiltinConfig::default()).is_err());
    // Build options.
    let cfg = BuiltinConfig {
        write_policy: false,
        appraise_signed_init: true,
        require_module_sigs: true,
        ..BuiltinConfig::default()
    };
    let p = builtin::policy(&["appraise_tcb"], &cfg)
        .unwrap()
        .to_kernel_string();
    assert!(p.starts_with("appraise func=MODULE_CHECK appraise_type=imasig \n"));
    assert!(
        p.ends_with("dont_appraise fsmagic=0x63677270 \nappraise fowner=0 appraise_type=imasig \n")
    );
    // with secure_boot, the build-time rules are not repeated
    let p = builtin::policy(&["secure_boot"], &cfg).unwrap();
    assert_eq!(p.to_kernel_string(), secure_boot);
    // Every built-in rule reads back unchanged.
    for names in [
        &["tcb", "appraise_tcb", "secure_boot", "critical_data"][..],
        &["ima_tcb"],
    ] {
        let p = builtin::policy(names, &BuiltinConfig::default()).unwrap();
        assert!(parse(&p.to_kernel_string()).unwrap().same_rules(&p));
    }
}

fn req(func: Func, mask: u8) -> Request<'static> {
    Request::new(func, mask)
}

fn decided(p: &CompiledPolicy, q: &Request) -> [(Option<u32>, bool); 4] {
    let d = p.evaluate(q);
    // explain must agree with evaluate
    assert_eq!(p.explain(q).decision, d);
    ActionClass::ALL.map(|c| (d.class(c).rule, d.class(c).act))
}

#[test]
fn first_match_per_action_class() {
    let p = parse(
        "dont_measure fsmagic=0x9fa0\n\
         measure func=FILE_CHECK\n\
         appraise func=FILE_CHECK appraise_type=imasig\n\
         dont_appraise fsmagic=0xef53\n\
         audit func=FILE_CHECK\n\
         measure func=FILE_CHECK pcr=11\n\
         hash\n",
    )
    .unwrap()
    .compile();
    let mut q = req(Func::FileCheck, MAY_READ);
    q.fsmagic = magic::EXT4;
    // measure by rule 1 (not 5), appraise by 2 (the later dont_appraise is ignored),
    // audit by 4, hash by 6 — the walk goes on past the first match.
    assert_eq!(
        decided(&p, &q),
        [
            (Some(1), true),
            (Some(2), true),
            (Some(4), true),
            (Some(6), true)
        ]
    );
    let d = p.evaluate(&q);
    assert_eq!(d.pcr, None);
    assert_eq!(d.appraise_type(), Some(AppraiseType::Imasig));
    // a hash rule after the appraise rule sets the hash action again
    assert!(d.must_hash());
    // … but appraisal takes over a hash decided before it
    let p2 = parse("hash func=FILE_CHECK\nappraise func=FILE_CHECK\n")
        .unwrap()
        .compile();
    let d2 = p2.evaluate(&q);
    assert!(d2.hash.act && !d2.must_hash() && d2.must_appraise());
    // on procfs the dont_measure rule decides measure
    q.fsmagic = magic::PROC;
    assert_eq!(decided(&p, &q)[0], (Some(0), false));
    // only the classes asked about are decided
    q.classes = ActionClass::Audit.bit();
    assert_eq!(
        decided(&p, &q),
        [(None, false), (None, false), (Some(4), true), (None, false)]
    );
    let ex = p.explain(&q);
    assert_eq!(ex.steps.len(), 5);
    assert_eq!(
        ex.steps[0].outcome,
        StepOutcome::NotAsked(ActionClass::Measure)
    );
    assert_eq!(
        ex.steps[4].outcome,
        StepOutcome::Decided(ActionClass::Audit)
    );
    // no class asked: nothing decided
    q.classes = 0;
    assert_eq!(p.evaluate(&q), Decision::default());
}

#[test]
fn open_flags_to_mask() {
    assert_eq!(mask_from_open_flags(0), MAY_READ); // O_RDONLY
    assert_eq!(mask_from_open_flags(1), MAY_WRITE); // O_WRONLY
    assert_eq!(mask_from_open_flags(2), MAY_READ | MAY_WRITE); // O_RDWR
    assert_eq!(mask_from_open_flags(0o1000), MAY_READ | MAY_WRITE); // O_RDONLY|O_TRUNC
    assert_eq!(mask_from_open_flags(0o2001), MAY_WRITE | MAY_APPEND); // O_WRONLY|O_APPEND
    assert_eq!(mask_from_open_flags(0o100 | 0o4000), MAY_READ); // O_CREAT|O_NONBLOCK
}

#[test]
fn large_policies_are_evaluated_without_the_index() {
    let mut text = String::new();
    for i in 0..(index::MAX_INDEXED_RULES + 10) {
        text += &format!("dont_measure fsmagic={:#x}\n", 0x1000 + i);
    }
    text += "measure func=FILE_CHECK\nappraise fowner=0\n";
    let big = parse(&text).unwrap().compile();
    let small = parse("measure func=FILE_CHECK\nappraise fowner=0\n")
        .unwrap()
        .compile();
    for fsmagic in [
        0x1000u64,
        0xef53,
        0x1000 + index::MAX_INDEXED_RULES as u64 + 9,
    ] {
        let q = Request {
            fsmagic,
            ..req(Func::FileCheck, MAY_READ)
        };
        let d = big.evaluate(&q);
        assert_eq!(d, big.explain(&q).decision);
        assert_eq!(
            d.measure.act,
            small.evaluate(&q).measure.act && fsmagic == 0xef53
        );
        assert!(d.must_appraise());
    }
}

#[test]
fn pcr_template_and_appraise_options() {
    let p = parse(
        "measure func=BPRM_CHECK pcr=12 template=ima-sig\n\
         appraise func=BPRM_CHECK appraise_type=imasig appraise_algos=sha256,sha512 permit_directio\n\
         measure func=FILE_CHECK digest_type=verity template=ima-ngv2\n\
         appraise func=FILE_CHECK digest_type=verity appraise_type=sigv3\n\
         appraise func=SETXATTR_CHECK appraise_algos=sha256\n\
         appraise func=SETXATTR_CHECK appraise_algos=sha512\n",
    )
    .unwrap()
    .compile();
    let d = p.evaluate(&req(Func::BprmCheck, MAY_EXEC));
    assert_eq!(d.pcr, Some(12));
    assert_eq!(d.template, Some("ima-sig"));
    assert!(d.must_measure() && d.must_appraise() && d.permit_directio);
    assert!(d.algo_allowed(crate::HashAlgo::Sha512));
    assert!(!d.algo_allowed(crate::HashAlgo::Sha1));
    let d = p.evaluate(&req(Func::FileCheck, MAY_READ));
    assert!(d.digest_verity && d.sig_required);
    assert_eq!(d.appraise_type(), Some(AppraiseType::Sigv3));
    assert_eq!(d.template, Some("ima-ngv2"));
    assert_eq!(d.appraise_algos, None);
    assert_eq!(p.setxattr_algos(), Some(1 << crate::HashAlgo::Sha256 as u8));
}

#[test]
fn mask_equality_versus_any() {
    let eq = parse("measure func=FILE_CHECK mask=MAY_READ")
        .unwrap()
        .compile();
    let any = parse("measure func=FILE_CHECK mask=^MAY_READ")
        .unwrap()
        .compile();
    for (mask, eq_match, any_match) in [
        (MAY_READ, true, true),
        (MAY_READ | MAY_WRITE, false, true),
        (MAY_READ | MAY_APPEND, false, true),
        (MAY_WRITE, false, false),
        (MAY_EXEC, false, false),
    ] {
        let q = req(Func::FileCheck, mask);
        assert_eq!(eq.evaluate(&q).must_measure(), eq_match, "mask {mask:#x}");
        assert_eq!(any.evaluate(&q).must_measure(), any_match, "mask {mask:#x}");
    }
    let ex = eq.explain(&req(Func::FileCheck, MAY_READ | MAY_WRITE));
    assert_eq!(
        ex.steps[0].outcome,
        StepOutcome::NoMatch(Mismatch::Mask(MaskCond {
            bit: MAY_READ,
            any: false
        }))
    );
    // POST_SETATTR ignores func= and mask=
    let q = req(Func::PostSetattr, 0);
    assert!(eq.evaluate(&q).must_measure());
}

#[test]
fn euid_with_and_without_cap_setuid() {
    let p = parse("measure euid=0\nmeasure egid<100").unwrap().compile();
    let mut q = req(Func::FileCheck, MAY_READ);
    q.uid = 1000;
    q.euid = 1000;
    q.suid = 0;
    q.gid = 1000;
    q.egid = 1000;
    q.sgid = 1000;
    // without the capability only euid counts
    assert_eq!(decided(&p, &q)[0].0, None);
    // with CAP_SETUID the saved uid 0 matches
    q.cap_setuid = true;
    assert_eq!(decided(&p, &q)[0].0, Some(0));
    // … or the real uid
    q.suid = 1000;
    q.uid = 0;
    assert_eq!(decided(&p, &q)[0].0, Some(0));
    q.uid = 1000;
    assert_eq!(decided(&p, &q)[0].0, None);
    // egid: the real gid 5 matches only with CAP_SETGID
    q.gid = 5;
    assert_eq!(decided(&p, &q)[0].0, None);
    q.cap_setgid = true;
    assert_eq!(decided(&p, &q)[0].0, Some(1));
    // plain uid= never looks at euid
    let p = parse("measure uid=0").unwrap().compile();
    let mut q = req(Func::FileCheck, MAY_READ);
    q.uid = 1000;
    q.euid = 0;
    q.cap_setuid = true;
    assert_eq!(decided(&p, &q)[0].0, None);
}

#[test]
fn fowner_versus_uid_and_comparisons() {
    let p = parse("appraise fowner=0\nmeasure uid>999\nmeasure fgroup<10")
        .unwrap()
        .compile();
    let mut q = req(Func::FileCheck, MAY_READ);
    q.uid = 1000;
    q.euid = 1000;
    q.fowner = 0;
    q.fgroup = 50;
    let d = decided(&p, &q);
    assert_eq!(d[1], (Some(0), true)); // file owned by root, task not root
    assert_eq!(d[0], (Some(1), true)); // uid 1000 > 999
    q.fowner = 1000;
    q.uid = 0;
    q.euid = 0;
    let d = decided(&p, &q);
    assert_eq!(d[1].0, None); // task is root, file is not root's
    assert_eq!(d[0].0, None); // uid 0 is not > 999, fgroup 50 not < 10
    q.fgroup = 9;
    assert_eq!(decided(&p, &q)[0].0, Some(2));
    let ex = p.explain(&req(Func::FileCheck, MAY_READ));
    assert!(matches!(
        ex.steps[1].outcome,
        StepOutcome::NoMatch(Mismatch::Uid(_))
    ));
}

#[test]
fn key_check_and_critical_data_lists() {
    let p = parse(
        "measure func=KEY_CHECK keyrings=.ima|.evm uid=0\n\
         measure func=KEY_CHECK keyrings=.builtin_trusted_keys pcr=13\n\
         measure func=CRITICAL_DATA label=selinux\n\
         measure\n",
    )
    .unwrap()
    .compile();
    let key = |ring: Option<&'static str>, uid| Request {
        func_data: ring,
        uid,
        ..req(Func::KeyCheck, 0)
    };
    assert_eq!(decided(&p, &key(Some(".evm"), 0))[0].0, Some(0));
    assert_eq!(decided(&p, &key(Some(".evm"), 5))[0].0, None); // uid fails
    assert_eq!(
        decided(&p, &key(Some(".builtin_trusted_keys"), 5))[0].0,
        Some(1)
    );
    assert_eq!(
        p.evaluate(&key(Some(".builtin_trusted_keys"), 5)).pcr,
        Some(13)
    );
    // the rule without func= does not match KEY_CHECK requests
    assert_eq!(decided(&p, &key(Some(".platform"), 0))[0].0, None);
    assert_eq!(decided(&p, &key(None, 0))[0].0, None);
    let data = |label| Request {
        func_data: Some(label),
        ..req(Func::CriticalData, 0)
    };
    assert_eq!(decided(&p, &data("selinux"))[0].0, Some(2));
    assert_eq!(decided(&p, &data("kernel_info"))[0].0, None);
    let ex = p.explain(&data("kernel_info"));
    assert_eq!(
        ex.steps[0].outcome,
        StepOutcome::NoMatch(Mismatch::Func {
            rule: Func::KeyCheck
        })
    );
    assert_eq!(ex.steps[2].outcome, StepOutcome::NoMatch(Mismatch::List));
    assert_eq!(
        ex.steps[3].outcome,
        StepOutcome::NoMatch(Mismatch::NotDataRule)
    );
    // a KEY_CHECK rule without a list matches every keyring; gid is not looked at
    let p = parse("measure func=KEY_CHECK gid=5").unwrap().compile();
    assert!(p.evaluate(&key(Some("anything"), 0)).must_measure());
    // file requests never match KEY_CHECK rules
    assert!(!p.evaluate(&req(Func::FileCheck, MAY_READ)).must_measure());
}

#[test]
fn filesystem_and_lsm_conditions() {
    let p = parse(
        "dont_measure fsname=fuse fs_subtype=sshfs\n\
         measure fsuuid=0123abcd-0000-1111-2222-333344445555 obj_type=bin_t subj_role=system_r\n\
         measure fsname=fuse\n",
    )
    .unwrap()
    .compile();
    let mut q = req(Func::BprmCheck, MAY_EXEC);
    q.fsname = "fuse";
    q.fs_subtype = Some("sshfs");
    assert_eq!(decided(&p, &q)[0], (Some(0), false));
    q.fs_subtype = None;
    assert_eq!(decided(&p, &q)[0], (Some(2), true));
    q.fsuuid = parse::parse_uuid("0123ABCD-0000-1111-2222-333344445555").unwrap();
    assert_eq!(decided(&p, &q)[0].0, Some(2)); // labels unknown
    q.obj.type_ = Some("bin_t");
    q.subj.role = Some("system_r");
    assert_eq!(decided(&p, &q)[0].0, Some(1));
    q.subj.role = Some("user_r");
    let ex = p.explain(&q);
    assert_eq!(
        ex.steps[1].outcome,
        StepOutcome::NoMatch(Mismatch::Lsm(LsmField::SubjRole))
    );
}

#[test]
fn rule_order_is_kept_and_diff() {
    let a =
        parse("measure func=BPRM_CHECK\nmeasure func=FILE_CHECK mask=^MAY_READ\nappraise fowner=0")
            .unwrap();
    let b = parse("# same, other spelling\nmeasure   func=BPRM_CHECK\nappraise fowner=0\nmeasure mask=^MAY_READ func=PATH_CHECK\n").unwrap();
    assert!(!a.same_rules(&b));
    let c = parse(
        "measure func=BPRM_CHECK\n\nmeasure mask=^MAY_READ func=PATH_CHECK\nappraise\tfowner=0",
    )
    .unwrap();
    assert!(a.same_rules(&c));
    assert_ne!(a, c); // lines differ
    assert_eq!(
        diff(&a, &b),
        vec![
            DiffItem::Same(0, 0),
            DiffItem::Added(1),
            DiffItem::Same(1, 2),
            DiffItem::Removed(2)
        ]
    );
    let d = diff(&a, &b);
    assert_eq!(
        d.iter().filter(|x| matches!(x, DiffItem::Same(..))).count(),
        2
    );
    assert_eq!(
        d.iter().filter(|x| matches!(x, DiffItem::Added(_))).count(),
        1
    );
    assert_eq!(
        d.iter()
            .filter(|x| matches!(x, DiffItem::Removed(_)))
            .count(),
        1
    );
    assert!(diff(&a, &c).iter().all(|x| matches!(x, DiffItem::Same(..))));
}

#[test]
fn shadowed_rules_and_lint() {
    let p = parse(
        "measure func=BPRM_CHECK\n\
         measure func=BPRM_CHECK mask=MAY_EXEC uid=0\n\
         dont_measure func=BPRM_CHECK fsmagic=0x9fa0\n\
         appraise func=BPRM_CHECK appraise_type=imasig\n\
         measure func=FILE_CHECK mask=^MAY_READ uid<1000\n\
         measure func=FILE_CHECK mask=MAY_READ uid=5\n\
         measure func=FILE_CHECK mask=MAY_READ uid=5000\n\
         measure uid<0\n\
         appraise func=SETXATTR_CHECK appraise_algos=sha256\n\
         appraise func=SETXATTR_CHECK appraise_algos=sha512\n\
         measure func=KEY_CHECK keyrings=.ima|.evm\n\
         measure func=KEY_CHECK keyrings=.ima gid=4\n\
         appraise func=MMAP_CHECK\n",
    )
    .unwrap();
    let f = analyze(&p);
    let at = |rule: usize| -> Vec<&FindingKind> {
        f.iter()
            .filter(|x| x.rule == rule)
            .map(|x| &x.kind)
            .collect()
    };
    assert_eq!(at(0), Vec::<&FindingKind>::new());
    assert_eq!(at(1), vec![&FindingKind::Shadowed { by: 0 }]);
    assert_eq!(at(2), vec![&FindingKind::Shadowed { by: 0 }]);
    assert!(at(3).is_empty(), "{:?}", at(3));
    assert!(matches!(at(4)[..], [FindingKind::MeasuresPseudoFs(_)]));
    assert_eq!(at(5), vec![&FindingKind::Shadowed { by: 4 }]);
    assert_eq!(at(6)[0], &FindingKind::MaskEquality);
    assert_eq!(at(7), vec![&FindingKind::NeverMatches]);
    assert!(at(8).is_empty());
    assert_eq!(at(9), vec![&FindingKind::IneffectiveSetxattr { first: 8 }]);
    assert!(at(10).is_empty());
    assert_eq!(at(11), vec![&FindingKind::Shadowed { by: 10 }]);
    assert!(at(12).contains(&&FindingKind::UnsignedAppraisal));
    // tcb excludes tmpfs (for FILE_CHECK) but not ramfs from its FILE_CHECK rules
    let tcb = builtin::policy(&["tcb"], &BuiltinConfig::default()).unwrap();
    let kinds: Vec<(usize, FindingKind)> = analyze(&tcb)
        .into_iter()
        .map(|f| (f.rule, f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (15, FindingKind::MeasuresPseudoFs(vec!["ramfs"])),
            (16, FindingKind::MeasuresPseudoFs(vec!["ramfs"])),
        ]
    );
    // appraise_tcb: `appraise fowner=0` without a signature
    let at = builtin::policy(&["appraise_tcb"], &BuiltinConfig::default()).unwrap();
    let f = analyze(&at);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FindingKind::UnsignedAppraisal);
}

#[test]
fn covers_is_sound_on_examples() {
    // For random requests, whenever `covers(i, j)` and j matches, i matches too.
    let rules: Vec<Rule> = [
        "measure",
        "measure func=FILE_CHECK",
        "measure func=FILE_CHECK mask=^MAY_READ",
        "measure func=FILE_CHECK mask=MAY_READ",
        "measure uid<100",
        "measure uid<50",
        "measure euid=0",
        "measure euid<10",
        "measure fowner>5 fsmagic=0xef53",
        "measure fsmagic=0xef53",
        "measure func=KEY_CHECK",
        "measure func=KEY_CHECK keyrings=a|b",
        "measure func=KEY_CHECK keyrings=a uid=0",
        "measure obj_type=t",
        "measure obj_type=t subj_user=u",
    ]
    .iter()
    .map(|r| parse_rule(r, &KernelConfig::default()).unwrap())
    .collect();
    let mut seed = 0x1234_5678u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..3000 {
        let funcs = [
            Func::FileCheck,
            Func::BprmCheck,
            Func::KeyCheck,
            Func::PostSetattr,
        ];
        let labels = [None, Some("t"), Some("u")];
        let q = Request {
            func: funcs[next(4) as usize],
            mask: 1 << next(4),
            uid: next(120) as u32,
            euid: next(20) as u32,
            suid: next(20) as u32,
            cap_setuid: next(2) == 1,
            fowner: next(10) as u32,
            fsmagic: if next(2) == 1 { 0xef53 } else { 0x9fa0 },
            func_data: [None, Some("a"), Some("b"), Some("c")][next(4) as usize],
            obj: LsmLabel {
                type_: labels[next(3) as usize],
                ..LsmLabel::default()
            },
            subj: LsmLabel {
                user: labels[next(3) as usize],
                ..LsmLabel::default()
            },
            ..Request::default()
        };
        for i in &rules {
            for j in &rules {
                if covers(i, j) && j.matches(&q).is_ok() {
                    assert!(i.matches(&q).is_ok(), "{i} should cover {j} for {q:?}");
                }
            }
        }
    }
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        let ids = prop_oneof![
            Just(0u32),
            Just(1),
            Just(999),
            Just(1000),
            Just(65534),
            Just(2147483647)
        ];
        prop_oneof![
            prop::sample::select(vec![
                "measure",
                "dont_measure",
                "appraise",
                "dont_appraise",
                "audit",
                "dont_audit",
                "hash",
                "dont_hash",
                "permit_directio",
                "digest_type=verity",
                "appraise_type=imasig",
                "appraise_type=imasig|modsig",
                "appraise_type=sigv3",
                "appraise_flag=check_blacklist",
                "template=ima-ng",
                "template=ima-sigv2",
                "template=d-ngv2|n-ng",
                "keyrings=.ima|.evm",
                "label=selinux",
                "fsname=ext4",
                "fs_subtype=vigil",
                "obj_type=bin_t",
                "subj_user=system_u",
                "subj_role=r",
                "obj_user=u",
                "obj_role=object_r",
                "subj_type=t",
                "fsuuid=0123ABCD-0000-1111-2222-333344445555",
                "appraise_algos=sha512,sha1,sha3-256",
                "bogus",
                "#",
            ])
            .prop_map(str::to_owned),
            prop::sample::select(Func::ALL.to_vec()).prop_map(|f| format!("func={}", f.name())),
            prop::sample::select(vec!["PATH_CHECK", "FILE_MMAP"]).prop_map(|f| format!("func={f}")),
            (
                prop::bool::ANY,
                prop::sample::select(vec!["MAY_EXEC", "MAY_WRITE", "MAY_READ", "MAY_APPEND"])
            )
                .prop_map(|(any, m)| format!("mask={}{m}", if any { "^" } else { "" })),
            any::<u32>().prop_map(|m| format!("fsmagic={m:#x}")),
            (0u8..70).prop_map(|p| format!("pcr={p}")),
            (
                prop::sample::select(vec!["uid", "euid", "gid", "egid", "fowner", "fgroup"]),
                prop::sample::select(vec!['=', '<', '>']),
                ids
            )
                .prop_map(|(k, op, v)| format!("{k}{op}{v}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn print_parse_roundtrip(tokens in prop::collection::vec(token(), 1..8), sep in prop::sample::select(vec![" ", "\t", "  "])) {
            let line = tokens.join(sep);
            if let Ok(rule) = parse_rule(&line, &KernelConfig::default()) {
                let printed = rule.loadable().to_string();
                let again = parse_rule(&printed, &KernelConfig::default())
                    .unwrap_or_else(|e| panic!("{line:?} printed as {printed:?}: {e}"));
                prop_assert_eq!(&again, &rule);
                prop_assert_eq!(again.to_string(), rule.to_string());
                // the kernel's own form reads back too, except verity signature rules
                if !(rule.digest_verity && rule.sig_required) {
                    prop_assert_eq!(parse_rule(&rule.to_string(), &KernelConfig::default()).ok(), Some(rule));
                }
            }
        }
    }
}

mod index_equivalence {
    use super::*;
    use proptest::prelude::*;

    fn rule() -> impl Strategy<Value = String> {
        let opt = |v: Vec<&'static str>| prop::option::weighted(0.25, prop::sample::select(v));
        let conds = vec![
            opt(vec![
                "func=FILE_CHECK",
                "func=BPRM_CHECK",
                "func=MMAP_CHECK",
                "func=KEY_CHECK",
            ]),
            opt(vec![
                "mask=MAY_READ",
                "mask=^MAY_READ",
                "mask=MAY_EXEC",
                "mask=^MAY_WRITE",
            ]),
            opt(vec!["fsmagic=0x9fa0", "fsmagic=0xef53"]),
            opt(vec![
                "fsuuid=00000000-0000-0000-0000-000000000001",
                "fsuuid=00000000-0000-0000-0000-000000000002",
            ]),
            opt(vec!["fsname=ext4", "fsname=fuse"]),
            opt(vec!["fs_subtype=a", "fs_subtype=b"]),
            opt(vec!["uid=0", "uid<5", "euid=0", "euid>3", "uid>1"]),
            opt(vec!["gid=0", "egid<2"]),
            opt(vec!["fowner=0", "fowner>2"]),
            opt(vec!["fgroup<3"]),
            opt(vec!["obj_type=t", "obj_type=u"]),
            opt(vec!["subj_user=t", "subj_role=u"]),
            opt(vec!["keyrings=.ima", "pcr=3", "appraise_algos=sha256"]),
        ];
        (
            prop::sample::select(vec![
                "measure",
                "dont_measure",
                "appraise",
                "dont_appraise",
                "audit",
                "dont_audit",
                "hash",
                "dont_hash",
            ]),
            conds,
        )
            .prop_map(|(action, conds)| {
                let mut parts = vec![action];
                parts.extend(conds.into_iter().flatten());
                parts.join(" ")
            })
    }

    fn request() -> impl Strategy<Value = Request<'static>> {
        let label = || prop::option::of(prop::sample::select(vec!["t", "u"]));
        (
            prop::sample::select(vec![
                Func::FileCheck,
                Func::BprmCheck,
                Func::MmapCheck,
                Func::PostSetattr,
                Func::KeyCheck,
            ]),
            0u8..32,
            (0u32..8, 0u32..8, 0u32..8, prop::bool::ANY),
            (0u32..4, 0u32..4, prop::bool::ANY),
            (0u32..5, 0u32..5),
            (
                prop::sample::select(vec![0x9fa0u64, 0xef53, 0x1234]),
                0u8..3,
            ),
            (
                prop::sample::select(vec!["ext4", "fuse", ""]),
                prop::option::of(prop::sample::select(vec!["a", "b"])),
            ),
            (label(), label(), label()),
            (
                0u8..16,
                prop::option::of(prop::sample::select(vec![".ima", ".evm"])),
            ),
        )
            .prop_map(
                |(
                    func,
                    mask,
                    (uid, euid, suid, cu),
                    (gid, egid, cg),
                    (fo, fg),
                    (fsmagic, u),
                    (fsname, sub),
                    (ot, su, sr),
                    (classes, data),
                )| {
                    let mut fsuuid = [0u8; 16];
                    fsuuid[15] = u;
                    Request {
                        func,
                        mask,
                        uid,
                        euid,
                        suid,
                        cap_setuid: cu,
                        gid,
                        egid,
                        sgid: gid,
                        cap_setgid: cg,
                        fowner: fo,
                        fgroup: fg,
                        fsmagic,
                        fsuuid,
                        fsname,
                        fs_subtype: sub,
                        obj: LsmLabel {
                            type_: ot,
                            ..LsmLabel::default()
                        },
                        subj: LsmLabel {
                            user: su,
                            role: sr,
                            ..LsmLabel::default()
                        },
                        func_data: data,
                        classes,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn indexed_equals_rule_walk(rules in prop::collection::vec(rule(), 1..90), reqs in prop::collection::vec(request(), 1..20)) {
            let out = parse_all(&rules.join("\n"), &KernelConfig::default());
            let c = out.policy.compile();
            for q in &reqs {
                let fast = c.evaluate(q);
                prop_assert_eq!(fast, c.evaluate_reference(q));
                prop_assert_eq!(fast, c.explain(q).decision);
            }
        }
    }
}

#[test]
fn a_huge_token_is_shown_cut() {
    let huge = "x".repeat(5 << 20);
    let e = parse(&format!("measure {huge}")).unwrap_err().to_string();
    assert!(e.len() < 300, "{} bytes", e.len());
    assert!(e.contains("(5242880 bytes)"), "{e}");
    let e = parse(&format!("measure func={huge}"))
        .unwrap_err()
        .to_string();
    assert!(e.len() < 500, "{} bytes", e.len());
}
