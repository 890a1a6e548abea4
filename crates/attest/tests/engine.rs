//! The validation engine on hand-built entries: every rule of Keylime's
//! `process_measurement_list` that does not need signatures.

use std::borrow::Cow;

use vigil_attest::policy::RuntimePolicy;
use vigil_attest::validate::{Entry, ListInfo, Reason, Template, Unparsable, Verdict};
use vigil_attest::{Error, Options, State, Validator};
use vigil_ima::HashAlgo;

/// ima-ng template data: `u32 len ‖ "sha256:\0" ‖ digest ‖ u32 len ‖ name\0`.
fn ng_data(digest: &[u8], name: &str) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&((7 + 1 + digest.len()) as u32).to_le_bytes());
    d.extend_from_slice(b"sha256:\0");
    d.extend_from_slice(digest);
    d.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
    d.extend_from_slice(name.as_bytes());
    d.push(0);
    d
}

fn file_digest(name: &str) -> Vec<u8> {
    HashAlgo::Sha256.digest(name.as_bytes()).unwrap()
}

fn entry(name: &str, digest: Vec<u8>) -> Entry<'static> {
    let data = ng_data(&digest, name);
    Entry {
        pcr: 10,
        template_hash: Cow::Owned(HashAlgo::Sha1.digest(&data).unwrap()),
        template: Template::ImaNg,
        template_data: Cow::Owned(data),
        digest_algo: Cow::Borrowed("sha256"),
        digest: Cow::Owned(digest),
        name: Cow::Owned(name.as_bytes().to_vec()),
        sig: Cow::Borrowed(b""),
        buf: Cow::Borrowed(b""),
    }
}

fn violation(name: &str) -> Entry<'static> {
    let mut e = entry(name, vec![0; 32]);
    e.template_hash = Cow::Owned(vec![0; 20]);
    e
}

/// PCR value of `bank` after the entries (violations extend 0xFF…).
fn replay(entries: &[Entry], bank: HashAlgo) -> Vec<u8> {
    let mut pcr = vec![0u8; bank.digest_len()];
    for e in entries {
        let th = if e.template_hash.iter().all(|&b| b == 0) {
            vec![0xff; bank.digest_len()]
        } else {
            bank.digest(&e.template_data).unwrap()
        };
        pcr = bank.digest(&[pcr, th].concat()).unwrap();
    }
    pcr
}

fn policy(entries: &[(&str, Vec<u8>)]) -> RuntimePolicy {
    let mut p = RuntimePolicy::default();
    for (name, d) in entries {
        p.digests.push(name, hex::encode(d));
    }
    p.excludes = vec!["/tmp".into(), r"/var/log/.*\.log".into()];
    p
}

fn ok(es: &[Entry<'static>]) -> Vec<Result<Entry<'static>, Unparsable>> {
    es.iter().cloned().map(Ok).collect()
}

fn reasons(r: &vigil_attest::Report) -> Vec<(Option<u64>, &'static str)> {
    r.failures
        .iter()
        .map(|f| (f.entry, f.reason.keylime_event()))
        .collect()
}

fn base() -> (RuntimePolicy, Vec<Entry<'static>>) {
    let names = [
        "boot_aggregate",
        "/usr/bin/a",
        "/usr/bin/b",
        "/usr/lib/c.so",
    ];
    let es: Vec<_> = names.iter().map(|n| entry(n, file_digest(n))).collect();
    let p = policy(
        &names
            .iter()
            .map(|n| (*n, file_digest(n)))
            .collect::<Vec<_>>(),
    );
    (p, es)
}

#[test]
fn all_pass_in_both_banks() {
    let (p, es) = base();
    let v = Validator::new(&p, Options::default()).unwrap();
    for bank in [HashAlgo::Sha1, HashAlgo::Sha256, HashAlgo::Sha384] {
        let q = replay(&es, bank);
        let r = v
            .validate(ok(&es), bank, Some(&q), None, ListInfo::default())
            .unwrap();
        assert_eq!(r.verdict, Verdict::Attested, "{bank}: {:?}", r.failures);
        assert_eq!(r.summary.passed, 4);
        assert_eq!(r.pcr_matched_after, Some(4));
        assert_eq!(r.running_pcr, hex::encode(&q));
    }
}

#[test]
fn content_failures_are_reported_per_entry() {
    let (p, mut es) = base();
    es.push(entry("/usr/bin/unknown", file_digest("x")));
    es.push(entry("/usr/bin/a", file_digest("tampered")));
    es.push(entry("/tmp/anything", file_digest("y")));
    es.push(entry("/tmpfile", file_digest("y"))); // start-anchored prefix match
    es.push(entry("/var/log/x.log.1", file_digest("y")));
    let mut bad = entry("/usr/bin/b", file_digest("/usr/bin/b"));
    bad.template_hash.to_mut()[0] ^= 1;
    es.push(bad);
    let mut pcr9 = entry("/usr/bin/b", file_digest("/usr/bin/b"));
    pcr9.pcr = 9;
    es.push(pcr9);
    let v = Validator::new(&p, Options::default()).unwrap();
    let q = replay(&es, HashAlgo::Sha256);
    let r = v
        .validate(
            ok(&es),
            HashAlgo::Sha256,
            Some(&q),
            None,
            ListInfo::default(),
        )
        .unwrap();
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(
        reasons(&r),
        [
            (Some(4), "not_in_allowlist"),
            (Some(5), "runtime_policy_hash"),
            (Some(9), "ima_hash"),
            (Some(10), "ima_pcr"),
        ]
    );
    assert_eq!(r.summary.excluded, 3);
    assert_eq!(r.failures[0].path.as_deref(), Some("/usr/bin/unknown"));
    match &r.failures[1].reason {
        Reason::DigestMismatch { got, expected, .. } => {
            assert_eq!(got, &hex::encode(file_digest("tampered")));
            assert_eq!(expected, &[hex::encode(file_digest("/usr/bin/a"))]);
        }
        other => panic!("{other:?}"),
    }
    let text = r.failures[0].to_string();
    assert!(
        text.starts_with("entry 4: /usr/bin/unknown: not in policy"),
        "{text}"
    );
}

#[test]
fn violations_and_unparsable_entries() {
    let (p, mut es) = base();
    es.insert(2, violation("/usr/bin/written"));
    let q = replay(&es, HashAlgo::Sha1);
    let strict = Validator::new(&p, Options::default()).unwrap();
    let r = strict
        .validate(ok(&es), HashAlgo::Sha1, Some(&q), None, ListInfo::default())
        .unwrap();
    assert_eq!(reasons(&r), [(Some(2), "tomtou")]);
    assert_eq!(r.summary.violations, 1);
    let lenient = Validator::new(
        &p,
        Options {
            fail_on_violations: false,
        },
    )
    .unwrap();
    let r = lenient
        .validate(ok(&es), HashAlgo::Sha1, Some(&q), None, ListInfo::default())
        .unwrap();
    assert!(r.is_attested(), "{:?}", r.failures);

    // An unparsable entry fails and is not extended: the PCR no longer matches.
    let mut items = ok(&es);
    items.insert(
        1,
        Err(Unparsable {
            message: "bad".into(),
            name: None,
        }),
    );
    let r = lenient
        .validate(items, HashAlgo::Sha1, Some(&q), None, ListInfo::default())
        .unwrap();
    assert_eq!(reasons(&r), [(Some(1), "entry")]);
    assert!(r.pcr_matched_after.is_some());
}

#[test]
fn log_ahead_of_quote_and_pcr_mismatch() {
    let (p, es) = base();
    let v = Validator::new(&p, Options::default()).unwrap();
    for k in 0..=es.len() {
        let q = replay(&es[..k], HashAlgo::Sha1);
        let r = v
            .validate(ok(&es), HashAlgo::Sha1, Some(&q), None, ListInfo::default())
            .unwrap();
        assert!(r.is_attested());
        assert_eq!(r.pcr_matched_after, Some(k as u64));
    }
    let r = v
        .validate(
            ok(&es),
            HashAlgo::Sha1,
            Some(&[7u8; 20]),
            None,
            ListInfo::default(),
        )
        .unwrap();
    assert_eq!(reasons(&r), [(None, "pcr_mismatch")]);
    // Wrong length for the bank: an input error, not a failed attestation.
    let e = v
        .validate(
            ok(&es),
            HashAlgo::Sha256,
            Some(&[7u8; 20]),
            None,
            ListInfo::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Pcr { .. }), "{e}");
    // No quote: only the entries are checked.
    let r = v
        .validate(ok(&es), HashAlgo::Sha1, None, None, ListInfo::default())
        .unwrap();
    assert!(r.is_attested());
}

#[test]
fn incremental_state_like_keylime() {
    let (p, mut es) = base();
    for i in 0..4 {
        let n = format!("/usr/bin/more{i}");
        es.push(entry(&n, file_digest("z")));
    }
    let mut p = p;
    for i in 0..4 {
        p.digests
            .push(&format!("/usr/bin/more{i}"), hex::encode(file_digest("z")));
    }
    let v = Validator::new(&p, Options::default()).unwrap();
    let bank = HashAlgo::Sha256;
    let mut st = State::default();

    // Round 1: full list, the quote covers 5 of 8 entries.
    let q = replay(&es[..5], bank);
    let info = ListInfo {
        first_entry: 0,
        boottime: Some(1000),
    };
    let r = v
        .validate(ok(&es), bank, Some(&q), Some(&mut st), info)
        .unwrap();
    assert!(r.is_attested());
    assert_eq!(st.next_entry, 5);
    assert_eq!(st.pcrs.get("sha256").unwrap(), &hex::encode(&q));
    assert_eq!(st.boottime, 1000);
    assert_eq!(st.quote_progress, Some((5, 8)));

    // Saved and loaded again.
    let mut st = State::from_json(st.to_json().as_bytes()).unwrap();

    // Round 2: entries from 5 on; the quote now covers all.
    let q = replay(&es, bank);
    let info = ListInfo {
        first_entry: 5,
        boottime: Some(1000),
    };
    let r = v
        .validate(ok(&es[5..]), bank, Some(&q), Some(&mut st), info)
        .unwrap();
    assert!(r.is_attested(), "{:?}", r.failures);
    assert_eq!(st.next_entry, 8);
    assert_eq!(r.summary.entries, 3);

    // Round 3: nothing new; matches before the first (no) entry; state unchanged.
    let info = ListInfo {
        first_entry: 8,
        boottime: Some(1000),
    };
    let r = v
        .validate(ok(&[]), bank, Some(&q), Some(&mut st), info)
        .unwrap();
    assert!(r.is_attested());
    assert_eq!(st.next_entry, 8);

    // A list that does not start where the state says: failure, state reset.
    let info = ListInfo {
        first_entry: 6,
        boottime: Some(1000),
    };
    let r = v
        .validate(ok(&es[6..]), bank, Some(&q), Some(&mut st), info)
        .unwrap();
    assert_eq!(reasons(&r), [(None, "invalid_ima_entry_nb")]);
    assert_eq!(st, State::default());

    // Reboot: another boot time resets the state and asks for the full list.
    let q5 = replay(&es[..5], bank);
    let info = ListInfo {
        first_entry: 0,
        boottime: Some(1000),
    };
    v.validate(ok(&es), bank, Some(&q5), Some(&mut st), info)
        .unwrap();
    assert_eq!(st.next_entry, 5);
    let info = ListInfo {
        first_entry: 5,
        boottime: Some(2000),
    };
    let r = v
        .validate(ok(&es[5..]), bank, Some(&q), Some(&mut st), info)
        .unwrap();
    assert_eq!(r.verdict, Verdict::Restart);
    assert_eq!(st.next_entry, 0);

    // Any failure resets the state.
    let info = ListInfo {
        first_entry: 0,
        boottime: Some(2000),
    };
    let mut bad = es.clone();
    bad[6] = entry("/usr/bin/evil", file_digest("evil"));
    let r = v
        .validate(ok(&bad), bank, Some(&q5), Some(&mut st), info)
        .unwrap();
    assert_eq!(reasons(&r), [(Some(6), "not_in_allowlist")]);
    assert_eq!(st, State::default());
}

#[test]
fn quote_progress() {
    let (p, es) = base();
    let v = Validator::new(&p, Options::default()).unwrap();
    let bank = HashAlgo::Sha1;
    let mut st = State::default();
    // Round 1: the quote lags by 3 entries (matches after 1 of 4).
    let q1 = replay(&es[..1], bank);
    let r = v
        .validate(
            ok(&es),
            bank,
            Some(&q1),
            Some(&mut st),
            ListInfo {
                first_entry: 0,
                boottime: None,
            },
        )
        .unwrap();
    assert!(r.is_attested());
    assert_eq!(st.next_entry, 1);
    // Round 2: 3 entries sent again; the quote catches up by only 1 < previous lag 3.
    let q2 = replay(&es[..2], bank);
    let r = v
        .validate(
            ok(&es[1..]),
            bank,
            Some(&q2),
            Some(&mut st),
            ListInfo {
                first_entry: 1,
                boottime: None,
            },
        )
        .unwrap();
    assert_eq!(reasons(&r), [(None, "quote_progress")]);
    assert_eq!(st.next_entry, 0);
}

#[test]
fn keyring_and_ima_buf_sections() {
    let mut p = RuntimePolicy::default();
    // A non-key buffer goes to the ima-buf section.
    let buf = b"root=/dev/vda1 ro".to_vec();
    let d = file_digest("kexec");
    let mut data = Vec::new();
    data.extend_from_slice(&(8 + 32u32).to_le_bytes());
    data.extend_from_slice(b"sha256:\0");
    data.extend_from_slice(&d);
    data.extend_from_slice(&14u32.to_le_bytes());
    data.extend_from_slice(b"kexec-cmdline\0");
    data.extend_from_slice(&(buf.len() as u32).to_le_bytes());
    data.extend_from_slice(&buf);
    let e = Entry {
        pcr: 10,
        template_hash: Cow::Owned(HashAlgo::Sha1.digest(&data).unwrap()),
        template: Template::ImaBuf,
        template_data: Cow::Owned(data),
        digest_algo: Cow::Borrowed("sha256"),
        digest: Cow::Owned(d.clone()),
        name: Cow::Borrowed(b"kexec-cmdline"),
        sig: Cow::Borrowed(b""),
        buf: Cow::Owned(buf),
    };
    let v = Validator::new(&p, Options::default()).unwrap();
    let r = v
        .validate(
            ok(std::slice::from_ref(&e)),
            HashAlgo::Sha1,
            None,
            None,
            ListInfo::default(),
        )
        .unwrap();
    match &r.failures[0].reason {
        Reason::NotInPolicy { section } => assert_eq!(*section, "ima-buf"),
        other => panic!("{other:?}"),
    }
    p.ima_buf.push("kexec-cmdline", hex::encode(&d));
    let v = Validator::new(&p, Options::default()).unwrap();
    let r = v
        .validate(ok(&[e]), HashAlgo::Sha1, None, None, ListInfo::default())
        .unwrap();
    assert!(r.is_attested());
}
