//! Differential tests of `vigil attest` and `vigil runtime-policy` against Keylime's
//! Python implementation (`keylime.ima.ima.process_measurement_list`, `keylime-policy`,
//! `keylime.dsse`), on generated lists with passing and failing entries, signatures
//! (learned from `ima-buf` keyring entries and from the policy), excludes, violations,
//! partial quotes and incremental state: same verdict, same failing entries with the
//! same reasons, same running PCR.
//!
//! Keylime comes from `target/keylime-venv` (made by `scripts/install-deps.sh`) or
//! `$VIGIL_KEYLIME_PYTHON`; without it these tests print a loud SKIPPED message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use vigil_attest::policy::RuntimePolicy;
use vigil_ima::list::{ascii, DigestAlgo, Endian, Field, Record};
use vigil_ima::{HashAlgo, PrivateKey};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/attest_keylime.py");

fn keylime_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("VIGIL_KEYLIME_PYTHON").map(PathBuf::from),
        Some(root.join("target/keylime-venv/bin/python")),
        Some(root.join(".venv/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .args(["-c", "import sys, types; sys.modules['gpg'] = types.ModuleType('gpg'); import keylime.ima.ima"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(c);
        }
    }
    // In CI the package is installed by scripts/install-deps.sh: a missing one is a failure there.
    assert!(
        std::env::var_os("CI").is_none(),
        "Keylime's Python package is missing from target/keylime-venv under CI"
    );
    eprintln!(
        "\n*** SKIPPED: Keylime's Python package is not installed (target/keylime-venv); \
         run scripts/install-deps.sh with pip access to enable the Keylime differential tests ***\n"
    );
    None
}

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

/// An EC P-256 key and a self-signed certificate (with the default SHA-1 SKID).
fn key_and_cert(dir: &Path, name: &str) -> (PrivateKey, Vec<u8>) {
    let key = format!("{name}.key");
    let crt = format!("{name}.der");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-outform",
            "DER",
            "-out",
            &crt,
        ],
    );
    let k = PrivateKey::from_bytes(&std::fs::read(dir.join(&key)).unwrap(), None, name).unwrap();
    (k, std::fs::read(dir.join(crt)).unwrap())
}

struct ListBuilder {
    records: Vec<Record>,
    extra_lines: Vec<(usize, String)>,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    HashAlgo::Sha256.digest(data).unwrap()
}

impl ListBuilder {
    fn new() -> ListBuilder {
        ListBuilder {
            records: Vec::new(),
            extra_lines: Vec::new(),
        }
    }

    fn push(&mut self, template: &str, fields: Vec<Field>, column: HashAlgo) -> &mut Record {
        let mut r = Record {
            pcr: 10,
            digest_algo: column,
            digest: vec![0; column.digest_len()],
            template_name: template.into(),
            fields,
        };
        r.digest = r.template_digest(column, Endian::Little).unwrap();
        self.records.push(r);
        self.records.last_mut().unwrap()
    }

    fn ng(&mut self, path: &str, digest: &[u8], col: HashAlgo) -> &mut Record {
        self.push(
            "ima-ng",
            vec![
                Field::DigestNg {
                    algo: DigestAlgo::Known(HashAlgo::Sha256),
                    digest: digest.to_vec(),
                },
                Field::NameNg(path.as_bytes().to_vec()),
            ],
            col,
        )
    }

    fn sig(&mut self, path: &str, digest: &[u8], sig: Vec<u8>, col: HashAlgo) -> &mut Record {
        self.push(
            "ima-sig",
            vec![
                Field::DigestNg {
                    algo: DigestAlgo::Known(HashAlgo::Sha256),
                    digest: digest.to_vec(),
                },
                Field::NameNg(path.as_bytes().to_vec()),
                Field::Sig(sig),
            ],
            col,
        )
    }

    fn buf(&mut self, name: &str, buf: &[u8], col: HashAlgo) -> &mut Record {
        self.push(
            "ima-buf",
            vec![
                Field::DigestNg {
                    algo: DigestAlgo::Known(HashAlgo::Sha256),
                    digest: sha256(buf),
                },
                Field::NameNg(name.as_bytes().to_vec()),
                Field::Buf(buf.to_vec()),
            ],
            col,
        )
    }

    fn text(&self) -> String {
        let mut lines: Vec<String> = self
            .records
            .iter()
            .map(|r| {
                let mut out = Vec::new();
                ascii::format_record(r, Endian::Little, &mut out);
                String::from_utf8(out)
                    .unwrap()
                    .trim_end_matches('\n')
                    .to_owned()
            })
            .collect();
        for (at, l) in self.extra_lines.iter().rev() {
            lines.insert(*at, l.clone());
        }
        lines.join("\n") + "\n"
    }
}

/// The lines of an ASCII list as Keylime splits it: at `\n` only, empty ones skipped.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').filter(|l| !l.is_empty())
}

/// Running PCR of `bank` after the first `n` lines of an ASCII list, as Keylime replays
/// it (unparsable lines are not extended; a trailing `\r` is kept in a name, dropped
/// from a signature or buffer).
fn replay(text: &str, n: usize, bank: HashAlgo) -> String {
    let mut pcr = vec![0u8; bank.digest_len()];
    for line in lines(text).take(n) {
        let line = match line.strip_suffix('\r') {
            Some(l) if line.contains(" ima-sig ") || line.contains(" ima-buf ") => l,
            _ => line,
        };
        let Ok(r) = ascii::parse_line_exact(line.as_bytes(), None, Endian::Little) else {
            continue;
        };
        let th = if r.digest.iter().all(|&b| b == 0) {
            vec![0xff; bank.digest_len()]
        } else {
            r.template_digest(bank, Endian::Little).unwrap()
        };
        pcr = bank.digest(&[pcr, th].concat()).unwrap();
    }
    hex::encode(pcr)
}

struct Round {
    list: PathBuf,
    pcr: Option<String>,
    bank: &'static str,
}

struct Case {
    name: &'static str,
    policy: PathBuf,
    stateful: bool,
    rounds: Vec<Round>,
    vigil_args: Vec<String>,
}

/// Per round: (attested, per-entry event sets, list-level events, running PCR, next entry).
type Outcome = (
    bool,
    Vec<BTreeSet<String>>,
    BTreeSet<String>,
    String,
    Option<u64>,
);

fn run_keylime(py: &Path, dir: &Path, cases: &[Case]) -> Vec<Vec<Outcome>> {
    let spec: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "policy": c.policy,
                "stateful": c.stateful,
                "rounds": c.rounds.iter().map(|r| json!({"list": r.list, "pcr": r.pcr, "bank": r.bank})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let spec_path = dir.join("cases.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = Command::new(py)
        .arg(HARNESS)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "harness: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|rounds| {
            rounds
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let entries = r["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| {
                            e.as_array()
                                .unwrap()
                                .iter()
                                .map(|s| s.as_str().unwrap().to_owned())
                                .collect()
                        })
                        .collect();
                    let glob = r["global"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect();
                    (
                        r["attested"].as_bool().unwrap(),
                        entries,
                        glob,
                        r["running"].as_str().unwrap().to_owned(),
                        r["next_entry"].as_u64(),
                    )
                })
                .collect()
        })
        .collect()
}

fn run_vigil(dir: &Path, case: &Case, idx: usize) -> Vec<Outcome> {
    let state = dir.join(format!("state-{idx}.json"));
    let _ = std::fs::remove_file(&state);
    let mut outcomes = Vec::new();
    for r in &case.rounds {
        let mut cmd = Command::new(VIGIL);
        cmd.arg("attest")
            .arg("--policy")
            .arg(&case.policy)
            .arg("--list")
            .arg(&r.list)
            .arg("--json");
        cmd.args(&case.vigil_args);
        if let Some(p) = &r.pcr {
            cmd.arg("--pcr").arg(format!("{}:{p}", r.bank));
        }
        if case.stateful {
            cmd.arg("--state").arg(&state);
        }
        let first = if case.stateful && state.exists() {
            let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
            s["next_entry"].as_u64().unwrap()
        } else {
            0
        };
        let out = cmd.output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}: vigil attest: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = rep["summary"]["entries"].as_u64().unwrap() as usize;
        let mut entries = vec![BTreeSet::new(); n];
        let mut glob = BTreeSet::new();
        for f in rep["failures"].as_array().unwrap() {
            let ev = match f["reason"].as_str().unwrap() {
                "not_in_policy" => "not_in_allowlist",
                "digest_mismatch" => "runtime_policy_hash",
                "template_hash_mismatch" => "ima_hash",
                "violation" => "tomtou",
                "wrong_pcr" => "ima_pcr",
                "invalid_key" => "invalid_key",
                "unparsable" => "entry",
                "pcr_mismatch" => "pcr_mismatch",
                "quote_progress" => "quote_progress",
                other => panic!("unexpected reason {other}"),
            };
            match f["entry"].as_u64() {
                Some(e) => {
                    entries[(e - first) as usize].insert(ev.to_owned());
                }
                None => {
                    glob.insert(ev.to_owned());
                }
            }
        }
        let next = if case.stateful {
            let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
            s["next_entry"].as_u64()
        } else {
            None
        };
        outcomes.push((
            rep["verdict"] == "attested",
            entries,
            glob,
            rep["running_pcr"].as_str().unwrap().to_owned(),
            next,
        ));
    }
    outcomes
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn validation_matches_keylime() {
    let Some(py) = keylime_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let col = HashAlgo::Sha1;
    let (tenant_key, tenant_cert) = key_and_cert(dir, "tenant");
    let (ima_key, ima_cert) = key_and_cert(dir, "imakey");
    let (rogue_key, rogue_cert) = key_and_cert(dir, "rogue");
    let (ign_key, ign_cert) = key_and_cert(dir, "ignored");

    let mut policy = RuntimePolicy::default();
    let mut l = ListBuilder::new();
    let ba = sha256(b"boot");
    l.ng("boot_aggregate", &ba, col);
    policy.digests.push("boot_aggregate", hex::encode(&ba));
    for i in 0..12 {
        let p = format!("/usr/bin/ok{i}");
        let d = sha256(p.as_bytes());
        l.ng(&p, &d, col);
        policy.digests.push(&p, hex::encode(&d));
        policy
            .digests
            .push(&p, hex::encode(sha256(b"other version")));
    }
    // Keys: the .ima certificate is allowed (learned), the rogue one is not, the
    // ignored keyring's is accepted unchecked but never learned.
    l.buf(".ima", &ima_cert, col);
    policy.keyrings.push(".ima", hex::encode(sha256(&ima_cert)));
    l.buf(".evil", &rogue_cert, col);
    l.buf(".builtin_trusted_keys", &ign_cert, col);
    policy
        .ima
        .ignored_keyrings
        .push(".builtin_trusted_keys".into());
    l.buf("kexec-cmdline", b"root=/dev/vda1 ro", col);
    policy
        .ima_buf
        .push("kexec-cmdline", hex::encode(sha256(b"root=/dev/vda1 ro")));
    l.buf("kernel_version", b"6.1.0", col);
    let sign = |k: &PrivateKey, d: &[u8]| {
        vigil_ima::sign_digest(k, HashAlgo::Sha256, d)
            .unwrap()
            .encode()
    };
    for (i, k) in [&tenant_key, &ima_key, &rogue_key, &ign_key]
        .into_iter()
        .enumerate()
    {
        // Not in digests: passes only by a good signature.
        let p = format!("/opt/signed{i}");
        let d = sha256(p.as_bytes());
        l.sig(&p, &d, sign(k, &d), col);
    }
    // A bad signature on a file that is in the policy falls back to digests.
    let p = "/usr/bin/ok3";
    let d = sha256(p.as_bytes());
    let mut s = sign(&tenant_key, &d);
    let n = s.len();
    s[n - 3] ^= 0x55;
    l.sig(p, &d, s.clone(), col);
    l.sig("/opt/badsig", &sha256(b"x"), s, col);
    l.sig("/usr/bin/ok4", &sha256(b"/usr/bin/ok4"), Vec::new(), col);
    l.sig("/opt/nosig", &sha256(b"nosig"), Vec::new(), col);
    // Not in policy, digest mismatch, excluded.
    l.ng("/usr/local/bin/new", &sha256(b"new"), col);
    l.ng("/usr/bin/ok5", &sha256(b"tampered"), col);
    l.ng("/tmp/scratch", &sha256(b"t"), col);
    l.ng("/var/log/app.log", &sha256(b"t"), col);
    l.ng("/home/user/.cache/x", &sha256(b"t"), col);
    policy.excludes = vec![
        "/tmp".into(),
        r"/var/log/.*\.log$".into(),
        "/home/[^/]+/\\.cache/".into(),
    ];
    // Violation, wrong PCR, broken template hash, legacy `ima` template.
    let v = l.ng("/usr/bin/ok6", &[0u8; 32], col);
    v.digest = vec![0; 20];
    l.ng("/usr/bin/ok7", &sha256(b"/usr/bin/ok7"), col).pcr = 11;
    l.ng("/usr/bin/ok8", &sha256(b"/usr/bin/ok8"), col).digest[3] ^= 1;
    let legacy = HashAlgo::Sha1.digest(b"legacy").unwrap();
    l.push(
        "ima",
        vec![
            Field::D(legacy.clone()),
            Field::N(b"/usr/bin/legacy".to_vec()),
        ],
        col,
    );
    policy.digests.push("/usr/bin/legacy", hex::encode(&legacy));
    l.ng("/usr/bin/ok9", &sha256(b"/usr/bin/ok9"), col);
    // Unparsable lines.
    l.extra_lines
        .push((l.records.len(), "10 zz ima-ng sha256:00 /broken".into()));
    l.extra_lines.push((
        l.records.len(),
        format!(
            "10 {} ima-ngv2 ima:sha256:{} /v2",
            "11".repeat(20),
            "22".repeat(32)
        ),
    ));
    l.ng("/usr/bin/ok10", &sha256(b"/usr/bin/ok10"), col);
    // A file name ending in '\r' (the kernel writes it as it is), and lines with CRLF
    // ends: Keylime keeps the '\r' in an ima-ng name (the template hash then fails) and
    // drops it from a signature; a line of just '\r' does not parse.
    let cr = "/usr/bin/cr\r";
    l.ng(cr, &sha256(cr.as_bytes()), col);
    policy.digests.push(cr, hex::encode(sha256(cr.as_bytes())));
    let mut crlf = ListBuilder::new();
    crlf.ng("/usr/bin/ok11", &sha256(b"/usr/bin/ok11"), col);
    let d = sha256(b"/opt/crlf");
    crlf.sig("/opt/crlf", &d, sign(&tenant_key, &d), col);
    for line in lines(&crlf.text()).chain([""]) {
        l.extra_lines.push((l.records.len(), format!("{line}\r")));
    }
    policy
        .digests
        .push("/usr/bin/ok11", hex::encode(sha256(b"/usr/bin/ok11")));
    l.ng("/usr/bin/ok12", &sha256(b"/usr/bin/ok12"), col);

    // verification-keys: made by vigil's generator (checked against Keylime's below).
    let cert_path = write(dir, "tenant.der", &tenant_cert);
    let out = Command::new(VIGIL)
        .args([
            "runtime-policy",
            "create",
            "--add-ima-signature-verification-key",
        ])
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vk = RuntimePolicy::from_json(&out.stdout)
        .unwrap()
        .verification_keys;
    assert!(!vk.is_empty());
    policy.verification_keys = vk;

    let text = l.text();
    let total = lines(&text).count();
    let list = write(dir, "list", &text);
    let pol = write(dir, "policy.json", policy.to_json());

    // An all-passing list (first 13 lines + the good signed entries) for state rounds.
    let mut good = ListBuilder::new();
    good.ng("boot_aggregate", &ba, col);
    for i in 0..12 {
        let p = format!("/usr/bin/ok{i}");
        good.ng(&p, &sha256(p.as_bytes()), col);
        if i == 3 {
            good.buf(".ima", &ima_cert, col);
        }
        if i == 7 {
            let d = sha256(b"/opt/signed1");
            good.sig("/opt/signed1", &d, sign(&ima_key, &d), col);
        }
    }
    let good_text = good.text();
    let good_list = write(dir, "good", &good_text);
    let gn = good_text.lines().count();

    // sha256 template-hash column and log_hash_alg sha256.
    let mut l256 = ListBuilder::new();
    l256.ng("boot_aggregate", &ba, HashAlgo::Sha256);
    l256.ng("/usr/bin/ok1", &sha256(b"/usr/bin/ok1"), HashAlgo::Sha256);
    l256.ng("/usr/bin/ok2", &sha256(b"/usr/bin/ok2"), HashAlgo::Sha1);
    let t256 = l256.text();
    let list256 = write(dir, "list256", &t256);
    let mut p256 = policy.clone();
    p256.ima.log_hash_alg = "sha256".into();
    let pol256 = write(dir, "policy256.json", p256.to_json());

    let round = |list: &PathBuf, pcr: Option<String>, bank: &'static str| Round {
        list: list.clone(),
        pcr,
        bank,
    };
    let cases = vec![
        Case {
            name: "full list, sha1 quote",
            policy: pol.clone(),
            stateful: false,
            rounds: vec![round(
                &list,
                Some(replay(&text, total, HashAlgo::Sha1)),
                "sha1",
            )],
            vigil_args: vec![],
        },
        Case {
            name: "sha256 bank, quote lags the log",
            policy: pol.clone(),
            stateful: false,
            rounds: vec![round(
                &list,
                Some(replay(&text, 20, HashAlgo::Sha256)),
                "sha256",
            )],
            vigil_args: vec![],
        },
        Case {
            name: "PCR mismatch",
            policy: pol.clone(),
            stateful: false,
            rounds: vec![round(&list, Some("ab".repeat(20)), "sha1")],
            vigil_args: vec![],
        },
        Case {
            name: "no quote",
            policy: pol.clone(),
            stateful: false,
            rounds: vec![round(&list, None, "sha1")],
            vigil_args: vec![],
        },
        Case {
            name: "incremental",
            policy: pol.clone(),
            stateful: true,
            rounds: vec![
                round(
                    &good_list,
                    Some(replay(&good_text, 5, HashAlgo::Sha256)),
                    "sha256",
                ),
                round(
                    &good_list,
                    Some(replay(&good_text, gn, HashAlgo::Sha256)),
                    "sha256",
                ),
                round(
                    &good_list,
                    Some(replay(&good_text, gn, HashAlgo::Sha256)),
                    "sha256",
                ),
                round(
                    &good_list,
                    Some(replay(&good_text, gn, HashAlgo::Sha256)),
                    "sha256",
                ),
                round(
                    &list,
                    Some(replay(&text, total, HashAlgo::Sha256)),
                    "sha256",
                ),
                round(
                    &good_list,
                    Some(replay(&good_text, gn, HashAlgo::Sha256)),
                    "sha256",
                ),
            ],
            vigil_args: vec![],
        },
        Case {
            name: "quote progress",
            policy: pol.clone(),
            stateful: true,
            rounds: vec![
                round(
                    &good_list,
                    Some(replay(&good_text, 2, HashAlgo::Sha1)),
                    "sha1",
                ),
                round(
                    &good_list,
                    Some(replay(&good_text, 3, HashAlgo::Sha1)),
                    "sha1",
                ),
            ],
            vigil_args: vec![],
        },
        Case {
            name: "log_hash_alg sha256",
            policy: pol256,
            stateful: false,
            rounds: vec![round(
                &list256,
                Some(replay(&t256, 3, HashAlgo::Sha384)),
                "sha384",
            )],
            vigil_args: vec![],
        },
    ];
    let keylime = run_keylime(&py, dir, &cases);
    let mut failing_seen = BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let ours = run_vigil(dir, case, i);
        assert_eq!(ours.len(), keylime[i].len());
        for (r, (a, b)) in ours.iter().zip(&keylime[i]).enumerate() {
            assert_eq!(a.1.len(), b.1.len(), "{} round {r}: entry count", case.name);
            for (e, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
                assert_eq!(
                    x,
                    y,
                    "{} round {r}: entry {e}: {}",
                    case.name,
                    lines(&text).nth(e).unwrap_or("")
                );
                failing_seen.extend(x.iter().cloned());
            }
            assert_eq!(a.2, b.2, "{} round {r}: list-level failures", case.name);
            assert_eq!(a.0, b.0, "{} round {r}: verdict", case.name);
            assert_eq!(a.3, b.3, "{} round {r}: running PCR", case.name);
            assert_eq!(a.4, b.4, "{} round {r}: next entry", case.name);
        }
    }
    // The cases exercise every entry-level reason.
    for ev in [
        "not_in_allowlist",
        "runtime_policy_hash",
        "ima_hash",
        "tomtou",
        "ima_pcr",
        "entry",
    ] {
        assert!(failing_seen.contains(ev), "no case produced {ev}");
    }
    // And the incremental rounds progressed as expected (on both sides).
    assert_eq!(
        keylime[4].iter().map(|r| r.4.unwrap()).collect::<Vec<_>>(),
        [5, gn as u64, gn as u64, gn as u64, 0, gn as u64]
    );
}

#[test]
fn policy_generation_matches_keylime() {
    let Some(py) = keylime_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/keylime/create-runtime-policy"
    );
    let keylime = |args: &[&str], out: &Path| -> Option<Value> {
        let o = Command::new(&py)
            .arg(HARNESS)
            .arg("--create")
            .args(args)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        let text = std::fs::read(out).ok()?;
        if !o.status.success() || text.is_empty() {
            return None;
        }
        Some(serde_json::from_slice(&text).unwrap())
    };
    let vigil = |args: &[&str], out: &Path| -> Option<Value> {
        let o = Command::new(VIGIL)
            .args(["runtime-policy", "create"])
            .args(args)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        if o.status.code() == Some(2) {
            return None;
        }
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Some(serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap())
    };
    let strip = |mut v: Value| {
        v["meta"].as_object_mut().unwrap().remove("timestamp");
        v
    };
    // Keylime's own generator fixtures: base policy + allowlist + measurement list.
    for alg in ["sha1", "sha256", "sha384", "sha512", "sm3_256", "unknown"] {
        let args_owned = [
            "-p".to_owned(),
            format!("{data}/policy-{alg}"),
            "-a".to_owned(),
            format!("{data}/allowlist-{alg}"),
            "-m".to_owned(),
            format!("{data}/ima-log-{alg}"),
        ];
        let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
        let k = keylime(&args, &dir.join(format!("k-{alg}.json")));
        let v = vigil(&args, &dir.join(format!("v-{alg}.json")));
        assert_eq!(k.is_some(), v.is_some(), "{alg}: one side refused");
        if let (Some(k), Some(v)) = (k, v) {
            assert_eq!(strip(k), strip(v.clone()), "{alg}");
            // It contains the base policy's digests and the allowlist's and list's.
            let d = &v["digests"];
            assert!(
                d.get("data").is_some() && d.get("/data").is_some(),
                "{alg}: {d}"
            );
        }
    }
    assert!(vigil(
        &["-a", &format!("{data}/allowlist-unknown")],
        &dir.join("x.json")
    )
    .is_none());

    // Measurement lists as found in the wild, read the way Keylime's generator reads
    // them: text lines (CRLF too) split on single spaces; only the first line's
    // boot_aggregate and, per line, the template, digest and name pieces count.
    let list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/ima-evm-utils/test_ascii_runtime_measurements"
    ))
    .unwrap();
    let first = list.lines().next().unwrap();
    let d = |c: char| c.to_string().repeat(64);
    let variants = [
        ("crlf", list.replace('\n', "\r\n")),
        ("cr", list.replace('\n', "\r")),
        (
            "bad template hash",
            list.replacen("cf41b43c", "zz41b43c", 1),
        ),
        (
            "extra token",
            list.replacen("boot_aggregate", "boot_aggregate extra", 1),
        ),
        (
            "mid-list lines",
            format!(
                "{list}10 zz00 ima-ng sha256:{} /usr/bin/badtd\n\
                 10 00 ima-ng sha256:{} /usr/bin/two words\n\
                 10 00 ima-sig sha256:{} /usr/bin/signed \n\
                  9 00 ima-ng sha256:{} /pcr9\n\
                 10 00 ima sha256:{} /legacy\n\
                 10 00 ima-ng sha256:{}\n\
                 short line\n\
                 10 00 ima-ng sha256:{} /last",
                d('1'),
                d('2'),
                d('3'),
                d('4'),
                d('5'),
                d('6'),
                d('7')
            ),
        ),
        ("cut mid-line", list[..list.len() - 20].to_owned()),
        ("blank first line", format!("\n{list}")),
        ("pcr 9 first", format!(" 9{}\n", &first[2..])),
        ("sm3 prefix", first.replace("sha256:", "sm3:") + "\n"),
        ("bare hex", first.replace("sha256:", "") + "\n"),
        (
            "wrong length",
            first.replacen("f1b4c7c9", "f1b4c7c", 1) + "\n",
        ),
        (
            "ima-buf",
            format!("{first}\n10 00 ima-ng sha256:{} .ima\n", d('8')),
        ),
        ("uppercase digest", list.replace("ae06e032", "AE06E032")),
        ("no colon", format!("{list}10 00 ima-ng {} /x\n", d('9'))),
        (
            "short digest",
            format!("{list}10 00 ima-ng sha256:abcd /x\n"),
        ),
    ];
    for (name, text) in variants {
        let p = dir.join("list.txt");
        std::fs::write(&p, &text).unwrap();
        let args = ["-m", p.to_str().unwrap()];
        let k = keylime(&args, &dir.join("k.json"));
        let v = vigil(&args, &dir.join("v.json"));
        assert_eq!(k.is_some(), v.is_some(), "{name}: one side refused");
        if let (Some(k), Some(v)) = (k, v) {
            assert_eq!(strip(k), strip(v), "{name}");
        }
        let _ = std::fs::remove_file(dir.join("k.json"));
    }
    // Errors name the file and the line.
    let p = dir.join("list.txt");
    std::fs::write(&p, format!("{list}10 00 ima-ng sha256:abcd /x\n")).unwrap();
    let o = Command::new(VIGIL)
        .args(["runtime-policy", "create", "-m"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains(&format!("{}: line 4: digest \"abcd\"", p.display())),
        "{err}"
    );

    // A root file system with excluded directories, a non-root file, a symlink,
    // spaces in names and an exclude list; plus keyrings from a list.
    let root = dir.join("root");
    for d in [
        "usr/bin",
        "usr/lib/sub dir",
        "var/lib",
        "tmp",
        "etc",
        "opt/skip",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (f, c) in [
        ("usr/bin/ls", "ls"),
        ("usr/lib/sub dir/lib a.so", "lib"),
        ("var/lib/db", "db"),
        ("tmp/x", "x"),
        ("etc/passwd", "root:x:0:0"),
        ("opt/skip/file", "s"),
    ] {
        std::fs::write(root.join(f), c).unwrap();
    }
    std::os::unix::fs::symlink("ls", root.join("usr/bin/link")).unwrap();
    std::fs::write(root.join("etc/nobody"), "n").unwrap();
    std::os::unix::fs::chown(root.join("etc/nobody"), Some(65534), None).unwrap();
    let excl = write(dir, "excludes", "/tmp/.*\n\n/boot/.*\n");
    let root_s = root.to_str().unwrap().to_owned();
    let skip = format!("{root_s}/opt/skip");
    for algo in ["sha256", "sha1", "sha512"] {
        let args = [
            "--rootfs",
            &root_s,
            "--algo",
            algo,
            "-s",
            &skip,
            "-e",
            excl.to_str().unwrap(),
            "--ignored-keyrings",
            ".x",
        ];
        let k = keylime(&args, &dir.join("k.json")).expect("keylime rootfs");
        let v = vigil(&args, &dir.join("v.json")).unwrap();
        assert_eq!(strip(k), strip(v.clone()), "rootfs {algo}");
        let keys: Vec<&String> = v["digests"].as_object().unwrap().keys().collect();
        assert!(
            keys.contains(&&"/usr/lib/sub_dir/lib_a.so".to_owned()),
            "{keys:?}"
        );
        assert!(!keys
            .iter()
            .any(|k| k.starts_with("/var") || k.starts_with("/tmp") || k.starts_with("/opt")));
    }
}

#[test]
fn dsse_interoperates_with_keylime() {
    let Some(py) = keylime_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    );
    openssl(dir, &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "k.pem",
            "-subj",
            "/CN=dsse_lib",
            "-days",
            "3",
            "-out",
            "c.pem",
        ],
    );
    let mut p = RuntimePolicy::default();
    p.digests
        .push("/usr/bin/true", "0123456789abcdef0123456789abcdef01234567");
    let pol = write(dir, "p.json", p.to_json());
    let sign = |extra: &[&str], out: &str| {
        let o = Command::new(VIGIL)
            .args(["runtime-policy", "sign"])
            .arg(&pol)
            .args(["-k", "k.pem", "-o", out])
            .args(extra)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    sign(&[], "ecdsa.json");
    sign(&["-c", "c.pem"], "x509.json");
    // Keylime verifies both: with the key, and key-less with the embedded certificate;
    // and signs with the same key; vigil verifies Keylime's envelope.
    let script = r#"
import sys, types, json
sys.modules['gpg'] = types.ModuleType('gpg')
from keylime import signing
from keylime.dsse import dsse, ecdsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
d = sys.argv[1]
key = open(d + '/k.pub', 'rb').read()
assert signing.verify_dsse_envelope(open(d + '/ecdsa.json', 'rb').read(), key)
assert signing.verify_dsse_envelope(open(d + '/x509.json', 'rb').read())
bad = json.loads(open(d + '/ecdsa.json').read()); bad['payloadType'] = 'x'
assert not signing.verify_dsse_envelope(json.dumps(bad).encode(), key)
sk = load_pem_private_key(open(d + '/k.pem', 'rb').read(), None)
env = dsse.Sign('application/vnd.keylime+json', open(d + '/p.json', 'rb').read(), ecdsa.Signer(sk))
open(d + '/keylime.json', 'w').write(env)
mine = json.loads(open(d + '/ecdsa.json').read())
assert json.loads(env)['signatures'][0]['keyid'] == mine['signatures'][0]['keyid']
assert json.loads(env)['payload'] == mine['payload']
"#;
    let o = Command::new(&py)
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "keylime: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (file, args) in [
        ("keylime.json", vec!["-k", "k.pub"]),
        ("ecdsa.json", vec!["-k", "c.pem"]),
        ("x509.json", vec!["--embedded-certs"]),
    ] {
        let o = Command::new(VIGIL)
            .args(["runtime-policy", "verify", file])
            .args(&args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
