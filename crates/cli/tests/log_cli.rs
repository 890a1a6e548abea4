//! `vigil log …` and `vigil boot-aggregate` on the real fixtures and generated lists.

mod log_common;

use std::io::Write;
use std::process::Stdio;

use log_common::*;
use vigil_ima::list::ExtendMode;
use vigil_ima::HashAlgo;

fn stdout(args: &[&str]) -> String {
    let o = run(vigil().args(args));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn f(p: &str) -> String {
    fixture(p).display().to_string()
}

#[test]
fn replay_fixtures() {
    let out = stdout(&[
        "log",
        "replay",
        &f("ibmtss/sha1.log"),
        "--bank",
        "sha1,sha256,sha384,sha512",
    ]);
    let want = [
        "sha1 PCR-10: 9be6bac02bf18d09d17e726c2df00bca4e8831ea",
        "sha256 PCR-10: 7fac48c81837d6d29046008aef0cdad8c2745cc98c3340cbba9bfdf39b4124b8",
        "sha384 PCR-10: e8923687b18847064ff3af89fd7ed088fa03c8b2467f7f8648bab264684575beb92e707d813ed561189492bb4b6e5c8b",
        "sha512 PCR-10: 698dab0fbb7c4ae0ec4ecae0d3890e9635cc2ba97b9dec459f9ef867b96d858843697c701e580931d6f2cf1e18acb2b3192eb660e871a37cf5b45392086ce807",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    for (i, alg) in ["sha256", "sha384", "sha512"].iter().enumerate() {
        let out = stdout(&[
            "log",
            "replay",
            &f(&format!("ibmtss/{alg}.log")),
            "--template-hash",
            alg,
            "--bank",
            alg,
        ]);
        assert_eq!(out.trim(), want[i + 1]);
    }
    let out = stdout(&["log", "replay", &f("ibmtss/imatest.log"), "--bank", "sha1"]);
    assert_eq!(
        out.trim(),
        "sha1 PCR-10: 0ff68e1da514770e85581bffe693809776302a63"
    );
    // ASCII lists replay too (Keylime's sm3 list: sm3 template hashes, sm3 bank).
    let sm3 = f("keylime/create-runtime-policy/ima-log-sm3_256");
    let out = stdout(&[
        "log",
        "replay",
        &sm3,
        "--template-hash",
        "sm3",
        "--bank",
        "sm3",
    ]);
    assert!(out.starts_with("sm3 PCR-10: "), "{out}");
}

#[test]
fn verify_fixtures_against_pcr_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("ibmtss/imakvtpcr10.txt")).unwrap();
    let mut args = vec!["log".to_owned(), "verify".into(), f("ibmtss/sha1.log")];
    for (line, alg) in text.lines().zip(["sha1", "sha256", "sha384", "sha512"]) {
        let p = dir.path().join(alg);
        std::fs::write(&p, line).unwrap();
        args.push("--pcrs".into());
        args.push(format!("{alg},{}", p.display()));
    }
    let o = run(vigil().args(&args).arg("-v"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        out.matches("matched after record 361 of 362 (per-bank")
            .count(),
        4,
        "{out}"
    );
    // Per-bank list against its bank.
    let o = run(vigil()
        .args([
            "log",
            "verify",
            &f("ibmtss/sha256.log"),
            "--template-hash",
            "sha256",
            "--pcrs",
        ])
        .arg(format!("sha256,{}", dir.path().join("sha256").display())));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The wrong bank's values fail and say why.
    let o = run(vigil()
        .args(["log", "verify", &f("ibmtss/sha1.log"), "--pcrs"])
        .arg(format!("sha256,{}", dir.path().join("sha384").display())));
    assert_eq!(
        o.status.code(),
        Some(2),
        "a 48-byte value for a sha256 bank is bad input"
    );
    // The TPM dump of the ima-evm-utils sample (sha1, tsspcrread format).
    let o = run(vigil().args([
        "boot-aggregate",
        "--pcrs",
        &format!("sha1,{}", f("ima-evm-utils/sample-tpm-2.0-pcrs-8-9")),
    ]));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "sha1:902992f8f550b797165537c7e8ab9a2f2170321d\n"
    );
}

#[test]
fn boot_aggregate_of_event_logs() {
    let out = stdout(&[
        "boot-aggregate",
        &f("ima-evm-utils/sample-binary_bios_measurements-pcrs-8-9"),
    ]);
    assert_eq!(
        out,
        "sha1:902992f8f550b797165537c7e8ab9a2f2170321d\nsha256:83d19723ef3b3c05bb8ae70d86b3886c158f2408f1b71ed265886a7b79eb700e\n"
    );
    let out = stdout(&[
        "boot-aggregate",
        "--range",
        "0-7",
        "--bank",
        "sha256",
        &f("ima-evm-utils/test_binary_bios_measurements"),
    ]);
    assert_eq!(
        out,
        "sha256:f1b4c7c9b27e94569f4c2b64051c452bc609c3cb891dd7fae06b758f8bc83d14\n"
    );
    let out = stdout(&[
        "boot-aggregate",
        "--range",
        "all",
        "--bank",
        "sha256",
        &f("ima-evm-utils/test_binary_bios_measurements"),
    ]);
    assert!(
        out.contains("sha256:f1b4c7c9") && out.contains("sha256:3135de09"),
        "{out}"
    );
    // The list's boot_aggregate record carries the same value.
    let show = stdout(&[
        "log",
        "show",
        "--ascii",
        &f("ima-evm-utils/test_ascii_runtime_measurements"),
    ]);
    assert!(show.lines().next().unwrap().contains(
        "sha256:f1b4c7c9b27e94569f4c2b64051c452bc609c3cb891dd7fae06b758f8bc83d14 boot_aggregate"
    ));
    // A truncated event log is a located error.
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(fixture("ima-evm-utils/test_binary_bios_measurements")).unwrap();
    let p = dir.path().join("cut");
    std::fs::write(&p, &data[..data.len() - 7]).unwrap();
    let o = run(vigil().arg("boot-aggregate").arg(&p));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("event") && err.contains("offset") && err.contains("truncated"),
        "{err}"
    );
    // An empty log is no log (its aggregate would be that of all-zero PCRs).
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let o = run(vigil().arg("boot-aggregate").arg(&empty));
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8(o.stderr).unwrap().contains("no events"));
    // A bank the log does not have is an error naming it.
    let o = run(vigil()
        .args(["boot-aggregate", "--bank", "sha256", "--bank", "sha384"])
        .arg(fixture("ima-evm-utils/test_binary_bios_measurements")));
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("--bank sha384") && err.contains("sha1, sha256"),
        "{err}"
    );
}

#[test]
fn show_ascii_is_the_kernel_format() {
    // The kernel's ASCII list of the ima-evm-utils sample, reproduced byte for byte
    // from its own parse (ASCII → records → ASCII).
    for p in [
        "ima-evm-utils/test_ascii_runtime_measurements",
        "ima-evm-utils/sample-ascii_runtime_measurements-pcrs-8-9",
        "keylime/create-runtime-policy/ima-log-sha256",
        "keylime/create-runtime-policy/ima-log-sm3_256",
    ] {
        let out = stdout(&["log", "show", "--ascii", &f(p)]);
        assert_eq!(out.as_bytes(), std::fs::read(fixture(p)).unwrap(), "{p}");
    }
    let table = stdout(&["log", "show", &f("ibmtss/imatest.log")]);
    assert_eq!(table.lines().count(), 17);
    assert!(table.lines().nth(6).unwrap().contains(" viol "));
    assert!(!table.contains(" BAD "));
}

#[test]
fn convert_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (src, extra) in [
        ("ibmtss/sha1.log", vec![]),
        ("ibmtss/sha512.log", vec!["--template-hash", "sha512"]),
        ("ibmtss/imatest.log", vec![]),
    ] {
        let orig = std::fs::read(fixture(src)).unwrap();
        let json = d.join("x.json");
        let bin = d.join("x.bin");
        let src_path = f(src);
        let a: Vec<&str> = [
            "log",
            "convert",
            "--to",
            "json",
            "-o",
            json.to_str().unwrap(),
            &src_path,
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
        stdout(&a);
        stdout(&[
            "log",
            "convert",
            "--to",
            "binary",
            "-o",
            bin.to_str().unwrap(),
            json.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read(&bin).unwrap(), orig, "{src} via JSON");
        // Big-endian output differs and converts back.
        let be = d.join("x.be");
        stdout(&[
            "log",
            "convert",
            "--to",
            "binary",
            "--out-endian",
            "big",
            "-o",
            be.to_str().unwrap(),
            json.to_str().unwrap(),
        ]);
        assert_ne!(std::fs::read(&be).unwrap(), orig);
        let a: Vec<&str> = [
            "log",
            "convert",
            "--to",
            "binary",
            "--endian",
            "big",
            "--out-endian",
            "little",
            "-o",
            bin.to_str().unwrap(),
            be.to_str().unwrap(),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
        stdout(&a);
        assert_eq!(std::fs::read(&bin).unwrap(), orig, "{src} via big-endian");
    }
    // Binary → ASCII → binary through pipes (stdin as `-`), byte-identical for every
    // binary fixture (imatest.log: custom templates whose `n` field keeps its NUL), and
    // the ASCII replays to the list's PCR.
    for (src, alg) in [
        ("ibmtss/sha1.log", "sha1"),
        ("ibmtss/sha256.log", "sha256"),
        ("ibmtss/sha384.log", "sha384"),
        ("ibmtss/sha512.log", "sha512"),
        ("ibmtss/imatest.log", "sha1"),
    ] {
        let orig = std::fs::read(fixture(src)).unwrap();
        let ascii = stdout(&[
            "log",
            "convert",
            "--to",
            "ascii",
            "--template-hash",
            alg,
            &f(src),
        ]);
        let mut child = vigil()
            .args([
                "log",
                "convert",
                "--to",
                "binary",
                "--template-hash",
                alg,
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ascii.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{src}");
        assert_eq!(o.stdout, orig, "{src} via ASCII");
        let a = d.join("x.txt");
        std::fs::write(&a, &ascii).unwrap();
        let replay = |p: &str| stdout(&["log", "replay", "--template-hash", alg, "--bank", alg, p]);
        assert_eq!(replay(a.to_str().unwrap()), replay(&f(src)), "{src}");
    }
    // Generated lists of every template and custom formats, with violations.
    let recs = list(3, 200, TEMPLATES, 11, &[10, 11, 12]);
    let p = d.join("gen.bin");
    std::fs::write(&p, encode(&recs)).unwrap();
    let ascii = stdout(&["log", "convert", "--to", "ascii", p.to_str().unwrap()]);
    let a = d.join("gen.txt");
    std::fs::write(&a, &ascii).unwrap();
    stdout(&[
        "log",
        "convert",
        "--to",
        "binary",
        "-o",
        d.join("gen2.bin").to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(d.join("gen2.bin")).unwrap(), encode(&recs));
}

#[test]
fn malformed_input_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let orig = std::fs::read(fixture("ibmtss/sha1.log")).unwrap();
    let p = dir.path().join("cut");
    std::fs::write(&p, &orig[..1000]).unwrap();
    for cmd in [
        &["log", "show"][..],
        &["log", "replay"],
        &["log", "convert", "--to", "ascii"],
    ] {
        let o = run(vigil().args(cmd).arg(&p));
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            err.contains("record 8 at offset 925") && err.contains("truncated"),
            "{cmd:?}: {err}"
        );
    }
    // A list being appended to: --partial stops at the last whole record.
    let out = stdout(&[
        "log",
        "replay",
        "--partial",
        "--bank",
        "sha1",
        p.to_str().unwrap(),
    ]);
    let whole = stdout(&["log", "replay", "--bank", "sha1", &{
        let q = dir.path().join("whole");
        std::fs::write(&q, &orig[..925]).unwrap();
        q.display().to_string()
    }]);
    assert_eq!(out, whole);
    // A 4 GiB length claim in a tiny file.
    let mut huge = orig[..38].to_vec();
    huge.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    huge.extend_from_slice(b"tiny");
    std::fs::write(&p, &huge).unwrap();
    let o = run(vigil().args(["log", "show"]).arg(&p));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("record 0 at offset 0") && err.contains("exceeds"),
        "{err}"
    );
    // Garbage ASCII names the line.
    std::fs::write(&p, "10 0000 ima-ng sha1:00 /x\n10 zz\n").unwrap();
    let o = run(vigil().args(["log", "show"]).arg(&p));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr).unwrap().contains("line 1"));
    // Text is detected as an ASCII list even with leading blank lines, tabs or a bad
    // PCR (errors are ASCII ones), and the list is named once in errors.
    let ascii = std::fs::read(fixture("ima-evm-utils/test_ascii_runtime_measurements")).unwrap();
    std::fs::write(&p, [&b"\n\n"[..], &ascii].concat()).unwrap();
    assert_eq!(
        stdout(&["log", "show", p.to_str().unwrap()])
            .lines()
            .count(),
        3
    );
    for text in [
        b"-1 00 ima-ng x\n".to_vec(),
        ascii
            .iter()
            .map(|&b| if b == b' ' { b'\t' } else { b })
            .collect(),
    ] {
        std::fs::write(&p, text).unwrap();
        let o = run(vigil().args(["log", "show"]).arg(&p));
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            err.contains("line 1 (offset 0)") && err.contains("PCR"),
            "{err}"
        );
        assert_eq!(err.matches(p.to_str().unwrap()).count(), 1, "{err}");
    }
    let o = run(vigil().args(["log", "show", "--format", "json"]).arg(&p));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.matches(p.to_str().unwrap()).count(), 1, "{err}");
    // An ASCII list cut inside a line is truncated (--partial: stop before it).
    std::fs::write(&p, &ascii[..200]).unwrap();
    for cmd in [
        &["log", "show"][..],
        &["log", "replay"],
        &["log", "convert", "--to", "json"],
    ] {
        let o = run(vigil().args(cmd).arg(&p));
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            err.contains("line 2 (offset 138)") && err.contains("truncated"),
            "{cmd:?}: {err}"
        );
    }
    let out = stdout(&["log", "show", "--partial", p.to_str().unwrap()]);
    assert_eq!(out.lines().count(), 1);
    // So is a d-ng digest too short for its algorithm.
    std::fs::write(
        &p,
        b"10 cf41b43c4031672fcc2bd358b309ad33b977424f ima-ng sha256:ae06 /x\n",
    )
    .unwrap();
    let o = run(vigil().args(["log", "show"]).arg(&p));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("line 1") && err.contains("2 bytes, not 32"),
        "{err}"
    );
}

#[test]
fn replay_state_resumes_on_a_growing_list() {
    let dir = tempfile::tempdir().unwrap();
    let recs = list(5, 300, TEMPLATES, 0, &[10, 12]);
    let all = encode(&recs);
    let p = dir.path().join("list");
    let state = dir.path().join("state.json");
    // Grow the list in three steps; each replay resumes from the saved state.
    for cut in [100usize, 200, 300] {
        let mut bytes = Vec::new();
        for r in &recs[..cut] {
            vigil_ima::list::binary::encode_record(r, LE, &mut bytes);
        }
        std::fs::write(&p, &bytes).unwrap();
        stdout(&[
            "log",
            "replay",
            "--bank",
            "sha1,sha256",
            "--state",
            state.to_str().unwrap(),
            p.to_str().unwrap(),
        ]);
    }
    assert_eq!(std::fs::read(&p).unwrap(), all);
    let resumed: vigil_ima::list::Replay =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(resumed.records, 300);
    let direct = {
        let mut r =
            vigil_ima::list::Replay::new(&[HashAlgo::Sha1, HashAlgo::Sha256], ExtendMode::PerBank);
        for rec in &recs {
            r.extend_record(rec, LE).unwrap();
        }
        r
    };
    assert_eq!(resumed.banks, direct.banks);
    assert_eq!(resumed.offset, all.len() as u64);
    // A mismatching mode is an error.
    let o = run(vigil().args([
        "log",
        "replay",
        "--sha1-padded",
        "--state",
        state.to_str().unwrap(),
        p.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(2));
    // So are a list other than the one the state was saved from — shorter (a rotated
    // or different list), or as long but with another record before the saved
    // offset — and banks other than the saved ones: no stale PCRs, exit 2.
    let saved = std::fs::read(&state).unwrap();
    let replay_state = |list: &str, extra: &[&str]| {
        std::fs::write(&state, &saved).unwrap();
        let o = run(vigil()
            .args(["log", "replay", "--state", state.to_str().unwrap()])
            .args(extra)
            .arg(list));
        let kept = std::fs::read(&state).unwrap() == saved;
        assert_eq!(kept, !o.status.success(), "state saved only on success");
        o
    };
    let mut other = all.clone();
    let last = all.len() - 20;
    other[last] ^= 1;
    let otherp = dir.path().join("other");
    std::fs::write(&otherp, &other).unwrap();
    for (list, why) in [
        (f("ibmtss/imatest.log"), "the list ends before offset"),
        (
            otherp.display().to_string(),
            "is not the one the state was saved after",
        ),
    ] {
        let o = replay_state(&list, &[]);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(2), "{list}: {err}");
        assert!(o.stdout.is_empty(), "{list}");
        assert!(err.contains(why) && err.contains("state.json"), "{err}");
    }
    let o = replay_state(p.to_str().unwrap(), &["--bank", "sha384"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr)
        .unwrap()
        .contains("banks sha1,sha256"));
    // The same list grown by a record resumes, with the saved banks named or not.
    let mut grown = all.clone();
    vigil_ima::list::binary::encode_record(&recs[0], LE, &mut grown);
    std::fs::write(&p, &grown).unwrap();
    for banks in [&[][..], &["--bank", "sha256", "--bank", "sha1"]] {
        let o = replay_state(p.to_str().unwrap(), banks);
        assert_eq!(o.status.code(), Some(0), "{banks:?}");
    }
}

/// `ima-modsig` entries: PKCS#7 (openssl smime, as the kernel's sign-file makes them)
/// and CMS with signed attributes, RSA and ECDSA, checked against their d-modsig.
#[test]
fn modsig_signatures() {
    use vigil_ima::list::{DigestAlgo, Endian, Field, FieldId, Record};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |script: &str| {
        let o = run(std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(d));
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(
        d.join("genkey.cnf"),
        "[ req ]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3\n[ dn ]\nCN = vigil modsig\n\
         [ v3 ]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nsubjectKeyIdentifier=hash\n",
    )
    .unwrap();
    sh("openssl genrsa -out rsa.pem 2048 2>/dev/null
        openssl req -x509 -new -key rsa.pem -batch -config genkey.cnf -set_serial 1 -out rsa.crt
        openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
        openssl req -x509 -new -key ec.pem -batch -config genkey.cnf -set_serial 2 -out ec.crt
        openssl x509 -in rsa.crt -outform DER -out rsa.der
        openssl x509 -in ec.crt -outform DER -out ec.der
        printf 'module code' > mod.ko
        openssl smime -sign -binary -noattr -nocerts -outform DER -md sha256 -in mod.ko -signer rsa.crt -inkey rsa.pem -out rsa-noattr.p7
        openssl cms -sign -binary -nocerts -outform DER -md sha256 -in mod.ko -signer ec.crt -inkey ec.pem -out ec-attr.p7
        openssl cms -sign -binary -noattr -outform DER -md sha512 -in mod.ko -signer rsa.crt -inkey rsa.pem -out rsa-512.p7");
    let content = b"module code";
    let entry = |algo: HashAlgo, sig: &str| {
        let fields = vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: vec![1; 32],
            },
            Field::NameNg(b"/lib/modules/mod.ko".to_vec()),
            Field::Sig(vec![]),
            Field::DModsig {
                algo: DigestAlgo::Known(algo),
                digest: algo.digest(content).unwrap(),
            },
            Field::Modsig(std::fs::read(d.join(sig)).unwrap()),
        ];
        Record::new(10, "ima-modsig", fields, HashAlgo::Sha1, Endian::Little).unwrap()
    };
    let mut tampered = entry(HashAlgo::Sha256, "rsa-noattr.p7");
    tampered.fields[3] = Field::DModsig {
        algo: DigestAlgo::Known(HashAlgo::Sha256),
        digest: vec![2; 32],
    };
    tampered.digest = tampered
        .template_digest(HashAlgo::Sha1, Endian::Little)
        .unwrap();
    let recs = [
        entry(HashAlgo::Sha256, "rsa-noattr.p7"),
        entry(HashAlgo::Sha256, "ec-attr.p7"),
        entry(HashAlgo::Sha512, "rsa-512.p7"),
        tampered,
    ];
    let mut ring = vigil_ima::KeyRing::new();
    for k in ["rsa.der", "ec.der"] {
        ring.add(vigil_ima::PublicKey::load(d.join(k)).unwrap());
    }
    let outcome = |r: &Record| vigil_ima::list::check_signatures(r, &ring, Endian::Little);
    for r in &recs[..3] {
        assert!(
            matches!(
                outcome(r)[..],
                [(FieldId::Modsig, vigil_ima::list::SigCheck::Verified(_))]
            ),
            "{:?}",
            outcome(r)
        );
    }
    assert!(outcome(&recs[3])[0].1.is_failure());
    // Through the CLI: the tampered entry fails, named by its record number.
    let list = d.join("list.bin");
    std::fs::write(&list, encode(&recs)).unwrap();
    let pcrs = d.join("pcrs");
    std::fs::write(
        &pcrs,
        run(vigil().args(["log", "replay", "--bank", "sha1"]).arg(&list)).stdout,
    )
    .unwrap();
    let keys = format!(
        "{},{}",
        d.join("rsa.der").display(),
        d.join("ec.der").display()
    );
    let o = run(vigil()
        .args(["log", "verify", "--verify-sig", "--key", &keys, "--pcrs"])
        .arg(format!("sha1,{}", pcrs.display()))
        .arg(&list));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("record 3 /lib/modules/mod.ko: modsig: bad signature"),
        "{err}"
    );
    assert!(
        err.contains("1 signatures fail (first: record 3); 3 verified"),
        "{err}"
    );
}
