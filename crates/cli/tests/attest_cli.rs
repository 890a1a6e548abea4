//! `vigil attest` and `vigil runtime-policy` on real lists (IBM TSS binary lists with
//! real signatures, Keylime's fixtures) and on broken inputs: exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");

fn vigil(args: &[&str], dir: &Path) -> Output {
    Command::new(VIGIL)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ibm(name: &str) -> String {
    format!("{DATA}/ibmtss/{name}")
}

/// A policy made from the IBM TSS list (362 ima-sig records).
fn ibm_policy(dir: &Path) -> PathBuf {
    let o = vigil(
        &[
            "runtime-policy",
            "create",
            "-m",
            &ibm("sha1.log"),
            "-o",
            "ibm.json",
        ],
        dir,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    dir.join("ibm.json")
}

#[test]
fn binary_lists_attest_in_every_bank() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = ibm_policy(d);
    let pol = pol.to_str().unwrap();
    for bank in ["sha1", "sha256", "sha384", "sha512"] {
        let pcrs = format!("{bank},{}", ibm("imakvtpcr10.txt"));
        let o = vigil(
            &[
                "attest",
                "--policy",
                pol,
                "--list",
                &ibm("sha1.log"),
                "--pcrs",
                &pcrs,
            ],
            d,
        );
        assert_eq!(code(&o), 0, "{bank}: {}", text(&o));
        assert!(
            text(&o).contains("attested: 362 entries, 362 passed"),
            "{}",
            text(&o)
        );
    }
    // The per-bank sha256 list: its template-hash column is sha256.
    let p256 = std::fs::read_to_string(pol)
        .unwrap()
        .replace(r#""log_hash_alg": "sha1""#, r#""log_hash_alg": "sha256""#);
    std::fs::write(d.join("p256.json"), p256).unwrap();
    let o = vigil(
        &[
            "attest",
            "--policy",
            "p256.json",
            "--list",
            &ibm("sha256.log"),
            "--pcrs",
            &format!("sha256,{}", ibm("imakvtpcr10.txt")),
        ],
        d,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    // The wrong quote fails with a PCR mismatch.
    let o = vigil(
        &[
            "attest",
            "--policy",
            pol,
            "--list",
            &ibm("sha1.log"),
            "--pcr",
            &format!("sha1:{}", "01".repeat(20)),
        ],
        d,
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("PCR mismatch"), "{}", text(&o));
}

#[test]
fn failing_entries_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = ibm_policy(d);
    let json = std::fs::read_to_string(&pol).unwrap();
    // Drop one path and change another's digest.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let digests = v["digests"].as_object().unwrap();
    let (p1, _) = digests.iter().nth(5).unwrap();
    let (p2, d2) = digests.iter().nth(9).unwrap();
    let d2 = d2[0].as_str().unwrap();
    let changed = json
        .replace(
            &format!("{}: [", serde_json::to_string(p1).unwrap()),
            "\"/renamed\": [",
        )
        .replace(d2, &"0".repeat(d2.len()));
    std::fs::write(d.join("bad.json"), changed).unwrap();
    let o = vigil(
        &[
            "attest",
            "--policy",
            "bad.json",
            "--list",
            &ibm("sha1.log"),
            "--json",
        ],
        d,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["verdict"], "failed");
    let fails = rep["failures"].as_array().unwrap();
    assert!(
        fails
            .iter()
            .any(|f| f["path"] == p1.as_str() && f["reason"] == "not_in_policy"),
        "{fails:?}"
    );
    assert!(
        fails
            .iter()
            .any(|f| f["path"] == p2.as_str() && f["reason"] == "digest_mismatch"),
        "{fails:?}"
    );
    assert!(fails.iter().all(|f| f["entry"].is_u64()));
    // Human-readable report: entry number, path, reason, then the summary.
    let o = vigil(
        &["attest", "--policy", "bad.json", "--list", &ibm("sha1.log")],
        d,
    );
    let t = text(&o);
    assert!(
        t.contains(&format!(": {p1}: not in policy (digests)")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("NOT attested: 362 entries")),
        "{t}"
    );
    // Templates Keylime does not support are unparsable entries.
    let o = vigil(
        &[
            "attest",
            "--policy",
            pol.to_str().unwrap(),
            "--list",
            &ibm("imatest.log"),
        ],
        d,
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("is not supported"), "{}", text(&o));
}

#[test]
fn incremental_state_via_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = ibm_policy(d);
    let pol = pol.to_str().unwrap();
    let pcr = "sha1:9be6bac02bf18d09d17e726c2df00bca4e8831ea";
    let list = ibm("sha1.log");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "attest", "--policy", pol, "--list", &list, "--pcr", pcr, "--state", "s.json", "--json",
        ];
        a.extend_from_slice(extra);
        vigil(&a, d)
    };
    let state = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("s.json")).unwrap()).unwrap()
    };
    let o = run(&["--boottime", "100"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(state()["next_entry"], 362);
    assert_eq!(
        state()["pcrs"]["sha1"],
        "9be6bac02bf18d09d17e726c2df00bca4e8831ea"
    );
    // The next quote: only new entries (none) are validated.
    let o = run(&["--boottime", "100"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["summary"]["entries"], 0);
    // A list starting at the wrong entry fails and resets the state.
    let o = run(&["--boottime", "100", "--list-start", "7"]);
    assert_eq!(code(&o), 1);
    assert_eq!(state()["next_entry"], 0);
    run(&["--boottime", "100"]);
    // A reboot resets it too.
    let o = run(&["--boottime", "200"]);
    assert_eq!(code(&o), 1);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["verdict"], "restart");
    assert_eq!(state()["next_entry"], 0);
    // Corrupt state: usage error naming the file.
    std::fs::write(d.join("s.json"), "{").unwrap();
    let o = run(&[]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("s.json"), "{}", text(&o));
}

#[test]
fn broken_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let list = format!("{DATA}/keylime/create-runtime-policy/ima-log-sha1");
    std::fs::write(d.join("badjson.json"), "{\"meta\": {\"version\": 1,").unwrap();
    let o = vigil(&["attest", "--policy", "badjson.json", "--list", &list], d);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("badjson.json")
            && text(&o).contains("not valid JSON")
            && text(&o).contains("line 1"),
        "{}",
        text(&o)
    );

    let empty = r#"{"meta": {"version": 1, "generator": 1}, "release": 0, "digests": {}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}"#;
    for (from, to, key) in [
        (
            r#""digests": {}"#,
            r#""digests": []"#,
            "runtime policy: digests:",
        ),
        (
            r#""digests": {}"#,
            r#""digests": {"/a": "abc"}"#,
            r#"digests["/a"]:"#,
        ),
        (
            r#""log_hash_alg": "sha1""#,
            r#""log_hash_alg": 1"#,
            "ima.log_hash_alg:",
        ),
        (r#""release": 0, "#, "", "release: is a required property"),
    ] {
        std::fs::write(d.join("schema.json"), empty.replacen(from, to, 1)).unwrap();
        let o = vigil(&["attest", "--policy", "schema.json", "--list", &list], d);
        assert_eq!(code(&o), 2, "{}", text(&o));
        assert!(text(&o).contains(key), "{key}: {}", text(&o));
    }
    std::fs::write(d.join("ok.json"), empty).unwrap();
    // A PCR of the wrong length for its bank, a bad bank, bad hex.
    for (pcr, msg) in [
        (
            format!("sha256:{}", "00".repeat(20)),
            "20 bytes, a sha256 PCR has 32",
        ),
        ("md9:00".to_owned(), "unknown hash algorithm"),
        ("sha1:xyz".to_owned(), "not hex"),
        ("sha1".to_owned(), "expected ALG:HEX"),
    ] {
        let o = vigil(
            &[
                "attest", "--policy", "ok.json", "--list", &list, "--pcr", &pcr,
            ],
            d,
        );
        assert_eq!(code(&o), 2, "{pcr}");
        assert!(text(&o).contains(msg), "{pcr}: {}", text(&o));
    }
    // A binary list that is not a list: error naming the offset.
    std::fs::write(d.join("garbage"), [0x0au8, 0, 0, 0, 1, 2, 3]).unwrap();
    let o = vigil(&["attest", "--policy", "ok.json", "--list", "garbage"], d);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o).contains("garbage") && text(&o).contains("offset"),
        "{}",
        text(&o)
    );
    // Text that is not a measurement list: every line is an unparsable entry.
    std::fs::write(d.join("text"), "hello world\nthis is not a list\n").unwrap();
    let o = vigil(&["attest", "--policy", "ok.json", "--list", "text"], d);
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o).matches("unparsable entry").count(),
        2,
        "{}",
        text(&o)
    );
    // Missing files.
    let o = vigil(&["attest", "--policy", "nope.json", "--list", &list], d);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("nope.json"), "{}", text(&o));
    // Each cause is said once.
    std::fs::write(d.join("empty"), "").unwrap();
    for args in [
        &["attest", "--policy", "empty", "--list", &list][..],
        &["runtime-policy", "create", "-p", "empty"],
        &["runtime-policy", "create", "--rootfs", "nope"],
    ] {
        let o = vigil(args, d);
        assert_eq!(code(&o), 2, "{args:?}");
        let t = text(&o);
        let cause = ["EOF while parsing", "No such file"]
            .into_iter()
            .find(|c| t.contains(c))
            .unwrap_or_else(|| panic!("{args:?}: {t}"));
        assert_eq!(t.matches(cause).count(), 1, "{args:?}: {t}");
    }
    // A list of tab-separated lines is text whose lines are unparsable entries
    // (Keylime: failed entries), not a binary list.
    let tabs = std::fs::read_to_string(&list).unwrap().replace(' ', "\t");
    std::fs::write(d.join("tabs"), tabs).unwrap();
    let o = vigil(&["attest", "--policy", "ok.json", "--list", "tabs"], d);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("unparsable entry"), "{}", text(&o));
    // Without a quote, it says that no quote was checked.
    let o = vigil(&["attest", "--policy", "ok.json", "--list", "text"], d);
    assert!(text(&o).contains("no PCR quote given"), "{}", text(&o));
}

#[test]
fn verify_diff_merge_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Keylime's own test policy breaks its schema: verify names the key.
    let o = vigil(
        &[
            "runtime-policy",
            "verify",
            &format!("{DATA}/keylime/runtime-policy-test.json"),
        ],
        d,
    );
    assert_eq!(code(&o), 1);
    assert!(
        text(&o).contains(r#"digests["boot_aggregate"][0]"#),
        "{}",
        text(&o)
    );
    let a = format!("{DATA}/keylime/create-runtime-policy/policy-sha256");
    let o = vigil(&["runtime-policy", "verify", &a], d);
    assert_eq!(code(&o), 0, "{}", text(&o));

    std::fs::write(
        d.join("al"),
        "1111111111111111111111111111111111111111  /usr/bin/x\n",
    )
    .unwrap();
    std::fs::write(d.join("ex"), "/tmp/.*\n").unwrap();
    let o = vigil(
        &[
            "runtime-policy",
            "create",
            "-a",
            "al",
            "-e",
            "ex",
            "-o",
            "b.json",
        ],
        d,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = vigil(&["runtime-policy", "diff", "b.json", "b.json"], d);
    assert_eq!(code(&o), 0);
    let o = vigil(&["runtime-policy", "diff", &a, "b.json"], d);
    assert_eq!(code(&o), 1);
    let t = text(&o);
    assert!(
        t.contains("- digests /rootfs_data") || t.contains("- digests /base_policy_data"),
        "{t}"
    );
    assert!(
        t.contains("+ digests /usr/bin/x") && t.contains("+ excludes /tmp/.*"),
        "{t}"
    );
    let o = vigil(
        &["runtime-policy", "merge", &a, "b.json", "-o", "m.json"],
        d,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("m.json")).unwrap()).unwrap();
    assert!(m["digests"]["/usr/bin/x"].is_array() && m["digests"].as_object().unwrap().len() == 2);
    assert_eq!(m["excludes"][0], "/tmp/.*");

    // Sign, verify, attest with the signed policy; a wrong key is refused.
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(st.success());
    Command::new("openssl")
        .args(["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"])
        .current_dir(d)
        .status()
        .unwrap();
    Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "o.pem",
        ])
        .current_dir(d)
        .status()
        .unwrap();
    Command::new("openssl")
        .args(["pkey", "-in", "o.pem", "-pubout", "-out", "o.pub"])
        .current_dir(d)
        .status()
        .unwrap();
    let o = vigil(
        &[
            "runtime-policy",
            "sign",
            "m.json",
            "-k",
            "k.pem",
            "-o",
            "s.json",
        ],
        d,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        code(&vigil(
            &["runtime-policy", "verify", "s.json", "-k", "k.pub"],
            d
        )),
        0
    );
    let o = vigil(&["runtime-policy", "verify", "s.json", "-k", "o.pub"], d);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("no valid signature"), "{}", text(&o));
    assert_eq!(
        code(&vigil(
            &["runtime-policy", "verify", "m.json", "--require-signature"],
            d
        )),
        1
    );
    // An unsigned policy with a good key: not signed (1); with a missing or unusable
    // key: an input error (2), as for an envelope.
    assert_eq!(
        code(&vigil(
            &["runtime-policy", "verify", "m.json", "-k", "k.pub"],
            d
        )),
        1
    );
    std::fs::write(d.join("empty"), "").unwrap();
    for (policy, key) in [
        ("m.json", "missing.pub"),
        ("m.json", "empty"),
        ("s.json", "missing.pub"),
        ("s.json", "empty"),
    ] {
        let o = vigil(&["runtime-policy", "verify", policy, "-k", key], d);
        assert_eq!(code(&o), 2, "{policy} {key}: {}", text(&o));
        assert!(text(&o).contains(key), "{}", text(&o));
    }
    let list = format!("{DATA}/keylime/create-runtime-policy/ima-log-sha1");
    let o = vigil(
        &[
            "attest",
            "--policy",
            "s.json",
            "--policy-key",
            "k.pub",
            "--list",
            &list,
        ],
        d,
    );
    assert_eq!(code(&o), 1, "{}", text(&o)); // the list's paths are not in this policy
    assert!(text(&o).contains("not in policy"), "{}", text(&o));
    let o = vigil(
        &[
            "attest",
            "--policy",
            "s.json",
            "--policy-key",
            "o.pub",
            "--list",
            &list,
        ],
        d,
    );
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("no valid signature"), "{}", text(&o));
}

#[test]
fn boot_aggregates_from_tcg_event_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Known answers from shared/testdata/SOURCES.md (checked with evmctl).
    for (log, want) in [
        (
            "sample-binary_bios_measurements-pcrs-8-9",
            &[
                "83d19723ef3b3c05bb8ae70d86b3886c158f2408f1b71ed265886a7b79eb700e",
                "902992f8f550b797165537c7e8ab9a2f2170321d",
            ][..],
        ),
        (
            "test_binary_bios_measurements",
            &["f1b4c7c9b27e94569f4c2b64051c452bc609c3cb891dd7fae06b758f8bc83d14"][..],
        ),
    ] {
        let path = format!("{DATA}/ima-evm-utils/{log}");
        let o = vigil(&["runtime-policy", "create", "--tcg-log", &path], d);
        assert_eq!(code(&o), 0, "{}", text(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ba: Vec<&str> = p["digests"]["boot_aggregate"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for w in want {
            assert!(ba.contains(w), "{log}: {ba:?}");
        }
    }
    // The matching ASCII list's boot_aggregate entry is then accepted.
    let list = format!("{DATA}/ima-evm-utils/sample-ascii_runtime_measurements-pcrs-8-9");
    let first = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(d.join("first"), format!("{first}\n")).unwrap();
    let log = format!("{DATA}/ima-evm-utils/sample-binary_bios_measurements-pcrs-8-9");
    assert_eq!(
        code(&vigil(
            &[
                "runtime-policy",
                "create",
                "--tcg-log",
                &log,
                "-o",
                "ba.json"
            ],
            d
        )),
        0
    );
    let o = vigil(&["attest", "--policy", "ba.json", "--list", "first"], d);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = vigil(&["runtime-policy", "create", "--tcg-log", &list], d);
    assert_eq!(code(&o), 2, "{}", text(&o));
    // An empty event log would allow the all-zero PCRs' boot_aggregate: refused.
    std::fs::write(d.join("empty"), "").unwrap();
    let o = vigil(&["runtime-policy", "create", "--tcg-log", "empty"], d);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(o.stdout.is_empty());
    assert!(
        text(&o).contains("empty: ") && text(&o).contains("no events"),
        "{}",
        text(&o)
    );
}
