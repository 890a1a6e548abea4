//! `vigil log verify` (native and `--evmctl`) and `vigil boot-aggregate` against the
//! installed `evmctl ima_measurement` / `ima_boot_aggregate` on generated lists with
//! every template, violations and several PCRs.

mod log_common;

use std::path::Path;

use log_common::*;
use vigil_ima::list::ExtendMode;
use vigil_ima::HashAlgo;

/// evmctl's diagnostics without the errno line it appends whenever errno is set and
/// without the messages of its attempt to verify `ima-sig` signatures against the
/// local files of the same names (which do not exist here, and need keys).
fn messages(stderr: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stderr);
    let mut out = Vec::new();
    for l in text.lines() {
        // evmctl prints some of those messages without a newline.
        let l = l
            .strip_prefix("Unsupported file type (0xa000)")
            .unwrap_or(l);
        let skip = [
            "errno:",
            "Failed to open keyfile",
            "Failed to stat:",
            "key 1:",
            "hash(",
        ]
        .iter()
        .any(|p| l.starts_with(p));
        if !skip && !l.is_empty() {
            out.push(l.to_owned());
        }
    }
    out
}

struct Case<'a> {
    name: &'a str,
    list: &'a Path,
    pcrs: Vec<String>,
    flags: &'a [&'a str],
}

/// Run evmctl, `vigil log verify --evmctl` and `vigil log verify` on one case; the
/// first two must agree on exit status and messages, the native verify on the verdict.
fn compare(c: &Case, native_agrees: bool) -> i32 {
    let mut args: Vec<String> = c.flags.iter().map(|s| s.to_string()).collect();
    for p in &c.pcrs {
        args.push("--pcrs".into());
        args.push(p.clone());
    }
    let ev = run(evmctl().arg("ima_measurement").args(&args).arg(c.list));
    let vg = run(vigil()
        .args(["log", "verify", "--evmctl"])
        .args(&args)
        .arg(c.list));
    let (erc, vrc) = (ev.status.code().unwrap(), vg.status.code().unwrap());
    assert_eq!(
        erc,
        vrc,
        "{}: exit status; evmctl said {:?}",
        c.name,
        messages(&ev.stderr)
    );
    assert_eq!(
        messages(&ev.stderr),
        messages(&vg.stderr),
        "{}: messages",
        c.name
    );
    if native_agrees {
        let nv = run(vigil().args(["log", "verify"]).args(&args).arg(c.list));
        assert_eq!(
            nv.status.code().unwrap() == 0,
            erc == 0,
            "{}: native verify {:?}",
            c.name,
            String::from_utf8_lossy(&nv.stderr)
        );
    }
    erc
}

#[test]
fn ima_measurement_matches_evmctl() {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("LOG_TEST_KEEP").is_some() {
        eprintln!("keeping {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    let d = dir.path();
    let pcr = |name: &str, recs: &[vigil_ima::list::Record], algo: HashAlgo, mode| {
        let r = replay(recs, algo, mode);
        format!("{},{}", algo.name(), pcr_file(d, name, &r, algo).display())
    };

    // Every template, violations, PCRs 10, 11 and 12.
    let recs = list(7, 120, TEMPLATES, 17, &[10, 10, 11, 12]);
    let listf = d.join("all.bin");
    std::fs::write(&listf, encode(&recs)).unwrap();
    let s1 = pcr("s1", &recs, HashAlgo::Sha1, ExtendMode::PerBank);
    let s256 = pcr("s256", &recs, HashAlgo::Sha256, ExtendMode::PerBank);
    let both = vec![s1.clone(), s256.clone()];
    let case = |name, pcrs: Vec<String>, flags| Case {
        name,
        list: &listf,
        pcrs,
        flags,
    };
    assert_eq!(
        compare(
            &case(
                "violations accepted",
                both.clone(),
                &["--ignore-violations"]
            ),
            true
        ),
        0
    );
    assert_eq!(
        compare(&case("violations refused", both.clone(), &[]), true),
        1
    );
    assert_eq!(
        compare(
            &case("sha1 only", vec![s1.clone()], &["--ignore-violations"]),
            true
        ),
        0
    );
    assert_eq!(
        compare(
            &case("sha256 only", vec![s256.clone()], &["--ignore-violations"]),
            true
        ),
        0
    );
    assert_eq!(
        compare(
            &case(
                "verify-bank",
                both.clone(),
                &["--ignore-violations", "--verify-bank=sha256"]
            ),
            false
        ),
        0
    );

    // Kernels < 5.8: SHA-1 zero-padded into the sha256 bank.
    let p256 = pcr("p256", &recs, HashAlgo::Sha256, ExtendMode::Sha1Padded);
    assert_eq!(
        compare(
            &case("sha1 padded", vec![p256], &["--ignore-violations"]),
            true
        ),
        0
    );

    // The list is ahead of the PCRs (records appended after the quote).
    let a1 = pcr("a1", &recs[..90], HashAlgo::Sha1, ExtendMode::PerBank);
    let a256 = pcr("a256", &recs[..90], HashAlgo::Sha256, ExtendMode::PerBank);
    assert_eq!(
        compare(
            &case("log ahead", vec![a1, a256], &["--ignore-violations"]),
            true
        ),
        0
    );

    // Wrong PCR values.
    let wrong = pcr("w", &recs[1..], HashAlgo::Sha256, ExtendMode::PerBank);
    assert_eq!(
        compare(
            &case(
                "mismatch",
                vec![s1.clone(), wrong.clone()],
                &["--ignore-violations"]
            ),
            true
        ),
        1
    );
    assert_eq!(
        compare(
            &case("mismatch only", vec![wrong], &["--ignore-violations"]),
            true
        ),
        1
    );

    // A record whose template digest does not match its data.
    let mut bad = recs.clone();
    bad[5].digest[0] ^= 1;
    let badf = d.join("bad.bin");
    std::fs::write(&badf, encode(&bad)).unwrap();
    let c = Case {
        name: "bad digest",
        list: &badf,
        pcrs: both.clone(),
        flags: &["--ignore-violations"],
    };
    assert_eq!(compare(&c, true), 1);

    // No violations: matches without --ignore-violations.
    let clean = list(11, 60, TEMPLATES, 0, &[10]);
    let cleanf = d.join("clean.bin");
    std::fs::write(&cleanf, encode(&clean)).unwrap();
    let c1 = pcr("c1", &clean, HashAlgo::Sha1, ExtendMode::PerBank);
    let c256 = pcr("c256", &clean, HashAlgo::Sha256, ExtendMode::PerBank);
    let c = Case {
        name: "clean",
        list: &cleanf,
        pcrs: vec![c1, c256],
        flags: &[],
    };
    assert_eq!(compare(&c, true), 0);

    // Verbose output (ASCII-style lines, per-PCR comparisons) of lists without
    // signatures, whose checks evmctl would try against local files.
    let quiet = list(
        17,
        40,
        &["ima-ng", "ima-ngv2", "ima-buf", "ima-modsig"],
        9,
        &[10, 11],
    );
    let quietf = d.join("quiet.bin");
    std::fs::write(&quietf, encode(&quiet)).unwrap();
    let q1 = pcr("q1", &quiet, HashAlgo::Sha1, ExtendMode::PerBank);
    let q256 = pcr("q256", &quiet[..30], HashAlgo::Sha256, ExtendMode::PerBank);
    let qbad = pcr("qbad", &quiet[3..], HashAlgo::Sha256, ExtendMode::PerBank);
    for flags in [
        &["-v", "--ignore-violations"][..],
        &["-vv", "--ignore-violations"],
        &["-vvv"],
        &["-v"],
    ] {
        for pcrs in [
            vec![q1.clone(), q256.clone()],
            vec![q1.clone(), qbad.clone()],
        ] {
            let c = Case {
                name: "verbose",
                list: &quietf,
                pcrs,
                flags,
            };
            compare(&c, false);
        }
    }

    // The legacy `ima` template, with a violation.
    let ima = list(13, 30, &["ima"], 7, &[10, 11]);
    let imaf = d.join("ima.bin");
    std::fs::write(&imaf, encode(&ima)).unwrap();
    let i1 = pcr("i1", &ima, HashAlgo::Sha1, ExtendMode::PerBank);
    let i256 = pcr("i256", &ima, HashAlgo::Sha256, ExtendMode::PerBank);
    for flags in [&["--ignore-violations"][..], &[]] {
        let c = Case {
            name: "ima template",
            list: &imaf,
            pcrs: vec![i1.clone(), i256.clone()],
            flags,
        };
        compare(&c, true);
    }

    // evmctl refuses lists mixing `ima` with other templates.
    let mut mixed = clean.clone();
    mixed.extend(ima.iter().cloned());
    let mixedf = d.join("mixed.bin");
    std::fs::write(&mixedf, encode(&mixed)).unwrap();
    let c = Case {
        name: "mixed",
        list: &mixedf,
        pcrs: both.clone(),
        flags: &[],
    };
    assert_ne!(compare(&c, false), 0);

    // PCR files evmctl reads its own way: any file with a line is a bank (PCRs not
    // given as `PCR-NN: hex` in order stay zero, hex stops where it ends), so garbage
    // or values of the wrong length are a mismatch (exit 1); an empty file, a
    // directory or a missing file are "no PCRs" (exit 0).
    let bad_pcrs = d.join("garbage");
    std::fs::write(&bad_pcrs, "garbage\n").unwrap();
    let empty = d.join("empty");
    std::fs::write(&empty, "").unwrap();
    let s1_path = s1.split_once(',').unwrap().1.to_owned();
    let tss = fixture("ima-evm-utils/sample-tpm-2.0-pcrs-8-9");
    for (name, pcrs, want) in [
        ("garbage", vec![format!("sha1,{}", bad_pcrs.display())], 1),
        (
            "short values",
            vec![s1.clone(), format!("sha256,{s1_path}")],
            1,
        ),
        (
            "tsspcrread format",
            vec![format!("sha1,{}", tss.display())],
            1,
        ),
        ("empty", vec![format!("sha1,{}", empty.display())], 0),
        (
            "empty second",
            vec![s1.clone(), format!("sha1,{}", empty.display())],
            0,
        ),
        ("directory", vec![format!("sha1,{}", d.display())], 0),
        ("unknown bank", vec![format!("sha384,{s1_path}")], 0),
    ] {
        let c = Case {
            name,
            list: &listf,
            pcrs,
            flags: &["--ignore-violations"],
        };
        assert_eq!(compare(&c, false), want, "{name}");
    }

    // A missing list.
    let c = Case {
        name: "missing",
        list: &d.join("nonexistent"),
        pcrs: both.clone(),
        flags: &[],
    };
    assert_eq!(compare(&c, false), 125);

    // An empty list, with PCRs and with none (no TPM here): no record checked.
    let emptyf = d.join("empty.bin");
    std::fs::write(&emptyf, b"").unwrap();
    for (name, pcrs) in [("empty list", both), ("empty list, no PCRs", vec![])] {
        let c = Case {
            name,
            list: &emptyf,
            pcrs,
            flags: &[],
        };
        assert_eq!(compare(&c, false), 125, "{name}");
    }
}

#[test]
fn boot_aggregate_matches_evmctl() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(99);
    for round in 0..4 {
        let mut args = Vec::new();
        for algo in [HashAlgo::Sha1, HashAlgo::Sha256] {
            let text: String = (0..24)
                .map(|i| {
                    format!(
                        "PCR-{i:02}: {}\n",
                        hex::encode(rng.bytes(algo.digest_len()))
                    )
                })
                .collect();
            let p = dir.path().join(format!("{round}-{algo}"));
            std::fs::write(&p, text).unwrap();
            args.push("--pcrs".to_owned());
            args.push(format!("{},{}", algo.name(), p.display()));
            let ev = run(evmctl().arg("ima_boot_aggregate").args(&args));
            assert_eq!(ev.status.code(), Some(0));
            for vargs in [&["boot-aggregate", "--evmctl"][..], &["boot-aggregate"]] {
                let vg = run(vigil().args(vargs).args(&args));
                assert_eq!(vg.status.code(), Some(0));
                assert_eq!(
                    String::from_utf8(vg.stdout).unwrap(),
                    String::from_utf8(ev.stdout.clone()).unwrap()
                );
            }
        }
    }
    // TPM 1.2 (SHA-1) event logs. evmctl extends every event, EV_NO_ACTION ones too;
    // vigil (like the TPM) skips those, except with --evmctl.
    for no_action in [false, true] {
        let mut log = Vec::new();
        for i in 0..40u32 {
            let pcr = i % 10;
            log.extend_from_slice(&pcr.to_le_bytes());
            log.extend_from_slice(
                &(if no_action && i % 9 == 3 { 3u32 } else { 0xd }).to_le_bytes(),
            );
            log.extend_from_slice(&rng.bytes(20));
            // evmctl stops at an event without data (its fread of 0 bytes "fails").
            let n = 1 + rng.below(50) as usize;
            let data = rng.bytes(n);
            log.extend_from_slice(&(data.len() as u32).to_le_bytes());
            log.extend_from_slice(&data);
        }
        let p = dir.path().join("tpm12.log");
        std::fs::write(&p, &log).unwrap();
        let ev = run(evmctl().arg("ima_boot_aggregate").arg(&p));
        assert_eq!(ev.status.code(), Some(0));
        let ev = String::from_utf8(ev.stdout).unwrap();
        let vg = run(vigil().args(["boot-aggregate", "--evmctl"]).arg(&p));
        assert_eq!(String::from_utf8(vg.stdout).unwrap(), ev);
        let evv = run(evmctl().args(["-v", "ima_boot_aggregate"]).arg(&p));
        let vgv = run(vigil().args(["boot-aggregate", "--evmctl", "-v"]).arg(&p));
        assert_eq!((vgv.stdout, vgv.stderr), (evv.stdout, evv.stderr));
        let vg = run(vigil().args(["boot-aggregate"]).arg(&p));
        assert_eq!(String::from_utf8(vg.stdout).unwrap() == ev, !no_action);
    }
    // PCR files as evmctl reads them (garbage: zeroed PCRs; tsspcrread's `N: hex`
    // lines are not `PCR-NN:` ones; 20-byte values for sha256), and none at all.
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "garbage\n").unwrap();
    let tss = fixture("ima-evm-utils/sample-tpm-2.0-pcrs-8-9");
    let sha1_file = dir.path().join("0-sha1");
    for spec in [
        format!("sha1,{}", garbage.display()),
        format!("sha1,{}", tss.display()),
        format!("sha256,{}", sha1_file.display()),
        "sha1,/nonexistent".to_owned(),
        format!("sha1,{}", dir.path().display()),
        format!("md5,{}", sha1_file.display()),
    ] {
        let ev = run(evmctl().args(["ima_boot_aggregate", "--pcrs", &spec]));
        let vg = run(vigil().args(["boot-aggregate", "--evmctl", "--pcrs", &spec]));
        assert_eq!(ev.status.code(), vg.status.code(), "{spec}");
        assert_eq!(ev.stdout, vg.stdout, "{spec}");
        assert_eq!(messages(&ev.stderr), messages(&vg.stderr), "{spec}");
    }
    // An event log that cannot be read: evmctl's one line, exit 125.
    let junk = dir.path().join("junk");
    std::fs::write(
        &junk,
        &std::fs::read(fixture("ibmtss/sha1.log")).unwrap()[..50],
    )
    .unwrap();
    for p in [junk.as_path(), Path::new("/nonexistent")] {
        let vg = run(vigil().args(["boot-aggregate", "--evmctl"]).arg(p));
        assert_eq!(vg.status.code(), Some(125));
        assert_eq!(
            String::from_utf8(vg.stderr).unwrap(),
            format!("Failed reading the TPM 1.2 event log {}.\n", p.display())
        );
        let ev = run(evmctl().arg("ima_boot_aggregate").arg(p));
        assert_eq!(ev.status.code(), Some(125));
        assert!(String::from_utf8(ev.stderr).unwrap().ends_with(&format!(
            "Failed reading the TPM 1.2 event log {}.\n",
            p.display()
        )));
    }
}

/// Signature checks of `ima-sig` entries: `evmctl ima_measurement [--verify-sig]
/// --key …` and `vigil log verify --evmctl` print the same per-entry messages (up to
/// OpenSSL's error text), and the native `vigil log verify --verify-sig` fails exactly
/// on the bad entries.
#[test]
fn signature_checks_match_evmctl() {
    use vigil_ima::list::{DigestAlgo, Endian, Field, Record};
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
        String::from_utf8(o.stdout).unwrap()
    };
    std::fs::write(
        d.join("genkey.cnf"),
        "[ req ]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3\n[ dn ]\nCN = vigil test\n\
         [ v3 ]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nsubjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    sh("openssl genrsa -out rsa.pem 2048 2>/dev/null
        openssl req -x509 -new -key rsa.pem -batch -config genkey.cnf -set_serial 1 -outform DER -out rsa.der
        openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
        openssl req -x509 -new -key ec.pem -batch -config genkey.cnf -set_serial 2 -outform DER -out ec.der
        printf abc > a.txt; printf 'Hello, IMA!\\n' > b.txt; printf original > c.txt");
    let sign = |key: &str, file: &str| {
        let out = sh(&format!("evmctl ima_sign -a sha256 --key {key} -n {file}"));
        hex::decode(out.lines().next().unwrap().trim()).unwrap()
    };
    let (sa, sb, sc) = (
        sign("rsa.pem", "a.txt"),
        sign("ec.pem", "b.txt"),
        sign("rsa.pem", "c.txt"),
    );
    std::fs::write(d.join("c.txt"), "changed after signing").unwrap();
    let path = |f: &str| d.join(f).display().to_string().into_bytes();
    let sha = |b: &[u8]| HashAlgo::Sha256.digest(b).unwrap();
    let entry = |file: &str, content: &[u8], sig: Vec<u8>| {
        let fields = vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: sha(content),
            },
            Field::NameNg(path(file)),
            Field::Sig(sig),
        ];
        Record::new(10, "ima-sig", fields, HashAlgo::Sha1, Endian::Little).unwrap()
    };
    let mut corrupt = sa.clone();
    *corrupt.last_mut().unwrap() ^= 0x55;
    let mut unknown = sb.clone();
    unknown[3..7].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let good = vec![
        entry("a.txt", b"abc", sa.clone()),
        entry("b.txt", b"Hello, IMA!\n", sb.clone()),
        entry("c.txt", b"original", sc),
        entry("missing.txt", b"abc", sa.clone()),
        entry("a.txt", b"abc", vec![]),
    ];
    let mut all = good.clone();
    all.push(entry("a.txt", b"abc", corrupt));
    all.push(entry("b.txt", b"Hello, IMA!\n", unknown));
    all.push(entry("b.txt", b"other content", sb));
    let (goodf, allf) = (d.join("good.bin"), d.join("all.bin"));
    std::fs::write(&goodf, encode(&good)).unwrap();
    std::fs::write(&allf, encode(&all)).unwrap();

    let normalize = |stderr: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(stderr)
            .lines()
            .filter(|l| {
                ![
                    "openssl:",
                    "calc_keyid",
                    "keyid:",
                    "Using tsspcrread",
                    "tpm2_pcr_supported",
                    "read_tpm_banks",
                    "errno:",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(|l| match l.find("verification failed: 0 (") {
                Some(i) => format!("{}verification failed: 0 (…)", &l[..i]),
                None => l.to_owned(),
            })
            .collect()
    };
    for list in [&goodf, &allf] {
        for keys in ["rsa.der,ec.der", "rsa.der", "ec.der,rsa.der"] {
            for flags in [&["--verify-sig"][..], &["--verify-sig", "-v"], &["-v"], &[]] {
                let args: Vec<String> = flags
                    .iter()
                    .map(|s| s.to_string())
                    .chain([
                        "--key".into(),
                        keys.split(',')
                            .map(|k| d.join(k).display().to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ])
                    .collect();
                let ev = run(evmctl().arg("ima_measurement").args(&args).arg(list));
                let vg = run(vigil()
                    .args(["log", "verify", "--evmctl"])
                    .args(&args)
                    .arg(list));
                assert_eq!(ev.status.code(), vg.status.code(), "{args:?}");
                assert_eq!(
                    normalize(&ev.stderr),
                    normalize(&vg.stderr),
                    "{args:?} {}",
                    list.display()
                );
            }
        }
    }
    // The native verification: PCRs from its own replay, keys for both signers.
    let keys = format!(
        "{},{}",
        d.join("rsa.der").display(),
        d.join("ec.der").display()
    );
    for (list, want) in [(&goodf, 0), (&allf, 1)] {
        let pcrs = d.join("pcrs");
        let o = run(vigil().args(["log", "replay", "--bank", "sha1"]).arg(list));
        std::fs::write(&pcrs, o.stdout).unwrap();
        let o = run(vigil()
            .args([
                "log",
                "verify",
                "--verify-sig",
                "-v",
                "--key",
                &keys,
                "--pcrs",
            ])
            .arg(format!("sha1,{}", pcrs.display()))
            .arg(list));
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(want), "{out}{err}");
        // The four signed entries of the good list verify (the local file c.txt changed,
        // but the list's digest is what was signed).
        assert_eq!(out.matches("signature verified").count(), 4, "{out}");
        if want == 1 {
            assert!(
                err.contains("record 5 ") && err.contains("record 6 ") && err.contains("record 7 "),
                "{err}"
            );
            assert!(err.contains("no key with id deadbeef"), "{err}");
            assert!(err.contains("3 signatures fail (first: record 5)"), "{err}");
        }
    }
}
