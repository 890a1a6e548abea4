//! `vigil policy …` end to end: real files, the real binary, exit codes and output.

use std::path::PathBuf;
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .expect("run vigil")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_and_rejects_with_line_token_reason() {
    let d = tempfile::tempdir().unwrap();
    let good = write(
        &d,
        "good",
        "# PROC\ndont_measure fsmagic=0x9fa0\nmeasure func=FILE_MMAP mask=MAY_EXEC\n",
    );
    let o = vigil(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 rules OK"));

    let bad = write(
        &d,
        "bad",
        "measure func=BPRM_CHECK\nappraise pcr=4\nmeasure func=BPRM_CHECK # exec\n",
    );
    let o = vigil(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(":2: \"pcr=4\": pcr= is only allowed on measure rules"),
        "{err}"
    );
    assert!(err.contains(":3: \"#\": unknown token"), "{err}");
    assert!(stdout(&o).contains("2 of 3 rules rejected"));

    let o = vigil(&["policy", "check", "--json", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["errors"][0]["line"], 2);
    assert_eq!(v[0]["errors"][0]["token"], "pcr=4");
    assert_eq!(v[0]["rules"], 1);

    // kernel options
    let modsig = write(
        &d,
        "modsig",
        "appraise func=MODULE_CHECK appraise_type=imasig|modsig\n",
    );
    assert_eq!(
        vigil(&["policy", "check", modsig.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        vigil(&["policy", "check", "--no-modsig", modsig.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    // an empty policy (comments only) is refused by the kernel
    let empty = write(&d, "empty", "# nothing\n\n");
    let o = vigil(&["policy", "check", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refuses an empty policy"),
        "{}",
        stderr(&o)
    );
    // unreadable input
    let o = vigil(&[
        "policy",
        "check",
        d.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = vigil(&[
        "policy",
        "check",
        write(&d, "bin", "measure \u{0}").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn print_normalises_like_the_kernel() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        &d,
        "p",
        "measure func=FILE_MMAP mask=MAY_EXEC\n\
         dont_measure fsmagic=01021994\n\
         appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3\n\
         measure uid=3000000000\n",
    );
    let o = vigil(&["policy", "print", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "measure func=MMAP_CHECK mask=MAY_EXEC \n\
         dont_measure fsmagic=0x1021994 \n\
         appraise func=BPRM_CHECK appraise_type=sigv3 digest_type=verity \n\
         measure uid=-1294967296 \n"
    );
    let o = vigil(&["policy", "print", "--loadable", p.to_str().unwrap()]);
    let loadable = stdout(&o);
    assert!(loadable.contains("appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3 \n"));
    assert!(loadable.contains("measure uid=3000000000 \n"));
    // the loadable form checks clean and prints the same kernel form
    let again = write(&d, "again", &loadable);
    assert_eq!(
        stdout(&vigil(&["policy", "print", again.to_str().unwrap()])),
        stdout(&vigil(&["policy", "print", p.to_str().unwrap()]))
    );
}

#[test]
fn builtin_policies() {
    let o = vigil(&["policy", "builtin", "critical_data|secure_boot"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "appraise func=MODULE_CHECK appraise_type=imasig \n\
         appraise func=FIRMWARE_CHECK appraise_type=imasig \n\
         appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig \n\
         appraise func=POLICY_CHECK appraise_type=imasig \n\
         measure func=CRITICAL_DATA \n"
    );
    let o = vigil(&["policy", "builtin", "tcb"]);
    assert_eq!(stdout(&o).lines().count(), 20);
    let o = vigil(&["policy", "builtin", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown built-in policy"));
}

#[test]
fn eval_explains_the_decision() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        &d,
        "p",
        "dont_measure fsmagic=0x9fa0\n\
         measure func=FILE_CHECK mask=MAY_READ\n\
         measure func=FILE_CHECK mask=^MAY_READ euid=0 pcr=11\n\
         appraise fowner=0 appraise_type=imasig appraise_algos=sha256\n",
    );
    let o = vigil(&[
        "policy",
        "eval",
        p.to_str().unwrap(),
        "--func",
        "FILE_CHECK",
        "--mask",
        "MAY_READ|MAY_WRITE",
        "--uid",
        "1000",
        "--euid",
        "1000",
        "--suid",
        "0",
        "--cap-setuid",
        "--fsmagic",
        "0xef53",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["classes"]["measure"]["line"], 3);
    assert_eq!(v["classes"]["appraise"]["line"], 4);
    assert_eq!(v["classes"]["audit"]["decided"], false);
    assert_eq!(v["pcr"], 11);
    assert_eq!(v["appraise_type"], "imasig");
    assert_eq!(v["appraise_algos"][0], "sha256");
    assert_eq!(v["steps"][0]["outcome"], "no-match");
    assert_eq!(
        v["steps"][1]["detail"],
        "mask=MAY_READ is not exactly the requested mask"
    );
    assert_eq!(v["steps"][2]["outcome"], "decided");

    // without CAP_SETUID the saved uid does not count
    let o = vigil(&[
        "policy",
        "eval",
        p.to_str().unwrap(),
        "--mask",
        "MAY_READ|MAY_WRITE",
        "--uid",
        "1000",
        "--suid",
        "0",
        "--fowner",
        "5",
    ]);
    let text = stdout(&o);
    assert!(text.contains("measure  -"), "{text}");
    assert!(text.contains("no match: euid=0 fails"), "{text}");
    assert!(text.contains("no match: fowner=0 fails"), "{text}");

    // built-in policy, procfs
    let o = vigil(&[
        "policy",
        "eval",
        "--builtin",
        "tcb",
        "--fsmagic",
        "proc",
        "--func",
        "BPRM_CHECK",
        "--mask",
        "MAY_EXEC",
    ]);
    assert!(
        stdout(&o).contains("measure  dont_measure   by rule 1"),
        "{}",
        stdout(&o)
    );

    // KEY_CHECK with a keyring
    let k = write(&d, "k", "measure func=KEY_CHECK keyrings=.ima\n");
    let o = vigil(&[
        "policy",
        "eval",
        k.to_str().unwrap(),
        "--func",
        "KEY_CHECK",
        "--keyring",
        ".ima",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["must_measure"], true);
    let o = vigil(&[
        "policy",
        "eval",
        k.to_str().unwrap(),
        "--func",
        "KEY_CHECK",
        "--keyring",
        ".evm",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["must_measure"], false);

    // bad usage
    assert_eq!(
        vigil(&["policy", "eval", p.to_str().unwrap(), "--func", "NOPE"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        vigil(&["policy", "eval", p.to_str().unwrap(), "--mask", "MAY_FLY"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn lint_and_diff() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        &d,
        "p",
        "measure func=BPRM_CHECK\n\
         measure func=BPRM_CHECK mask=MAY_EXEC uid=0\n\
         measure func=FILE_CHECK mask=^MAY_READ\n\
         appraise func=BPRM_CHECK\n",
    );
    let o = vigil(&["policy", "lint", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains(":2: warning: shadowed: rule 1 (line 1)"),
        "{text}"
    );
    assert!(
        text.contains(":3: warning: measures files read on proc, sysfs"),
        "{text}"
    );
    assert!(
        text.contains(":4: warning: appraises func=BPRM_CHECK without appraise_type="),
        "{text}"
    );
    let o = vigil(&["policy", "lint", "--json", p.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 3);

    let clean = write(&d, "clean", "measure func=BPRM_CHECK mask=MAY_EXEC\n");
    let o = vigil(&["policy", "lint", clean.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("no findings"));
    // secure_boot is clean
    assert_eq!(
        vigil(&["policy", "lint", "--builtin", "secure_boot"])
            .status
            .code(),
        Some(0)
    );

    let same = write(&d, "same", "# reordered tokens and aliases\nmeasure   func=BPRM_CHECK\nmeasure uid=0 mask=MAY_EXEC func=BPRM_CHECK\nmeasure mask=^MAY_READ func=PATH_CHECK\nappraise\tfunc=BPRM_CHECK\n");
    let o = vigil(&[
        "policy",
        "diff",
        p.to_str().unwrap(),
        same.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let other = write(&d, "other", "measure func=BPRM_CHECK\nmeasure func=FILE_CHECK mask=^MAY_READ\nappraise func=BPRM_CHECK appraise_type=imasig\n");
    let o = vigil(&[
        "policy",
        "diff",
        p.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains("- measure func=BPRM_CHECK mask=MAY_EXEC uid=0"),
        "{text}"
    );
    assert!(
        text.contains("+ appraise func=BPRM_CHECK appraise_type=imasig"),
        "{text}"
    );
    assert!(
        text.contains("  measure func=FILE_CHECK mask=^MAY_READ"),
        "{text}"
    );
}

fn coreutils_stat(args: &[&str]) -> String {
    let o = Command::new("stat").args(args).output().expect("run stat");
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

#[test]
fn eval_takes_the_request_from_a_real_file() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "f", "data");
    let o = vigil(&[
        "policy",
        "eval",
        "--builtin",
        "tcb|appraise_tcb",
        "--path",
        f.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // the same values as coreutils stat(1) reports
    let magic = u64::from_str_radix(
        &coreutils_stat(&["-f", "-c", "%t", f.to_str().unwrap()]),
        16,
    )
    .unwrap();
    assert_eq!(v["request"]["fsmagic"], format!("{magic:#x}"));
    assert_eq!(
        v["request"]["fowner"].to_string(),
        coreutils_stat(&["-c", "%u", f.to_str().unwrap()])
    );
    assert_eq!(
        v["request"]["fgroup"].to_string(),
        coreutils_stat(&["-c", "%g", f.to_str().unwrap()])
    );
    // explicit options win
    let o = vigil(&[
        "policy",
        "eval",
        "--builtin",
        "tcb",
        "--path",
        f.to_str().unwrap(),
        "--fowner",
        "4242",
        "--fsmagic",
        "proc",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["request"]["fowner"], 4242);
    assert_eq!(v["request"]["fsname"], "proc");
    assert_eq!(v["classes"]["measure"]["action"], "dont_measure");
    // procfs as the kernel sees it: excluded from measurement by tcb
    let o = vigil(&[
        "policy",
        "eval",
        "--builtin",
        "tcb",
        "--path",
        "/proc/self/status",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["request"]["fsmagic"], "0x9fa0");
    assert_eq!(v["request"]["fsname"], "proc");
    assert_eq!(v["classes"]["measure"]["rule"], 1);
}

/// `vigil ARGS | head -1`: a reader that goes away ends the command quietly, exit 0
/// (no panic, no message), as `vigil log show` does.
#[test]
fn closed_stdout_ends_output_quietly() {
    let d = tempfile::tempdir().unwrap();
    let rules = |from: u32| -> String {
        (from..from + 3000)
            .map(|i| format!("measure func=FILE_CHECK uid={i}\n"))
            .collect()
    };
    let a = write(&d, "a", &rules(1));
    let b = write(&d, "b", &rules(5001));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for args in [
        &["print", a][..],
        &["eval", a, "--func", "FILE_CHECK", "--uid", "4000"],
        &["lint", a],
        &["diff", a, b],
        &["check", a, a, a],
        &["builtin", "tcb"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("policy")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn lint_names_built_in_rules_by_number_only() {
    let o = vigil(&["policy", "lint", "--builtin", "appraise_tcb|secure_boot"]);
    let text = stdout(&o);
    assert!(
        text.contains("warning: shadowed: rule 4 already decides"),
        "{text}"
    );
    assert!(!text.contains("line 0"), "{text}");
}

#[test]
fn endless_policy_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // /dev/zero never ends: a policy reader stops at its limit and names the input.
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let runs = [
        vigil(&["policy", "check", "/dev/zero"]),
        vigil(&["policy", "print", "/dev/zero"]),
        vigil(&[
            "mount",
            "--policy",
            "/dev/zero",
            src.to_str().unwrap(),
            src.to_str().unwrap(),
        ]),
    ];
    for o in &runs {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
        assert!(
            stderr(o).contains("/dev/zero") && stderr(o).contains("larger than 16777216 bytes"),
            "{}",
            stderr(o)
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["policy", "check", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("standard input: larger than 16777216 bytes"),
        "{}",
        stderr(&o)
    );
}
