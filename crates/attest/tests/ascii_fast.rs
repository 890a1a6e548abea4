//! `Validator::validate_ascii` (prepared, parallel, allocation-free lines) gives
//! exactly the report and state of `Validator::validate` on `list::ascii_items`.

use vigil_attest::list::{ascii_items, PreparedAscii};
use vigil_attest::policy::RuntimePolicy;
use vigil_attest::validate::{ListInfo, State};
use vigil_attest::{Options, Validator};
use vigil_ima::HashAlgo;

fn sha1(b: &[u8]) -> Vec<u8> {
    HashAlgo::Sha1.digest(b).unwrap()
}

fn ng_data(algo: &str, digest: &[u8], name: &str) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&((algo.len() + 2 + digest.len()) as u32).to_le_bytes());
    d.extend_from_slice(algo.as_bytes());
    d.extend_from_slice(b":\0");
    d.extend_from_slice(digest);
    d.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
    d.extend_from_slice(name.as_bytes());
    d.push(0);
    d
}

/// A line of every kind the readers and rules distinguish.
fn line(kind: usize, i: usize) -> String {
    let name = format!("/usr/lib/l{}", i % 37);
    let digest = HashAlgo::Sha256.digest(name.as_bytes()).unwrap();
    let d = hex::encode(&digest);
    let good = |name: &str, digest: &[u8]| {
        format!(
            "10 {} ima-ng sha256:{} {name}",
            hex::encode(sha1(&ng_data("sha256", digest, name))),
            hex::encode(digest)
        )
    };
    match kind {
        0 => good(&name, &digest),
        1 => good(&format!("/not/in/policy{i}"), &digest),
        2 => good(&name, &[7u8; 32]),
        3 => format!("10 {} ima-ng sha256:{d} {name}", "0".repeat(40)),
        4 => format!("10 {} ima-ng sha256:{d} {name}", "1".repeat(40)),
        5 => good("/tmp/excluded", &digest),
        6 => good(&name, &digest).replacen("10 ", " 9 ", 1),
        7 => "10 garbage".to_owned(),
        8 => String::new(),
        9 => good(&name, &digest) + "\r",
        10 => {
            let th = hex::encode(sha1(&ng_data("sha256", &digest, &name)));
            format!(
                "10 {} ima-ng sha256:{} {name}",
                th.to_uppercase(),
                d.to_uppercase()
            )
        }
        11 => {
            // ima-sig without a usable signature: falls back to digests.
            let mut data = ng_data("sha256", &digest, &name);
            data.extend_from_slice(&0u32.to_le_bytes());
            format!("10 {} ima-sig sha256:{d} {name}", hex::encode(sha1(&data)))
        }
        12 => {
            // The `ima` template (general parser).
            let fd = sha1(name.as_bytes());
            let mut data = fd.clone();
            let mut n = name.as_bytes().to_vec();
            n.resize(256, 0);
            data.extend_from_slice(&n);
            format!(
                "10 {} ima {} {name}",
                hex::encode(sha1(&data)),
                hex::encode(&fd)
            )
        }
        13 => format!("10 {} ima-foo sha256:{d} {name}", "2".repeat(40)),
        14 => good(&format!("/path with space {i}"), &digest),
        15 => {
            // Uppercase hex in the list and in the policy: Keylime compares the
            // digest's lowercase hex, so this fails.
            let th = hex::encode(sha1(&ng_data("sha256", &[0xab; 32], "/upper")));
            format!("10 {th} ima-ng sha256:{} /upper", "AB".repeat(32))
        }
        16 => {
            // A SHA-1 file digest, and a 64-digit template hash.
            let fd = sha1(name.as_bytes());
            let data = ng_data("sha1", &fd, &name);
            let th = HashAlgo::Sha256.digest(&data).unwrap();
            format!(
                "10 {} ima-ng sha1:{} {name}",
                hex::encode(th),
                hex::encode(&fd)
            )
        }
        17 => {
            // A digest shorter than its algorithm's (found by searching, not by length).
            let fd = &digest[..20];
            let th = hex::encode(sha1(&ng_data("sha256", fd, &name)));
            format!("10 {th} ima-ng sha256:{} {name} x", hex::encode(fd))
        }
        _ => good("boot_aggregate", &[0u8; 32]),
    }
}

fn policy() -> RuntimePolicy {
    let mut p = RuntimePolicy::default();
    for i in 0..37 {
        let name = format!("/usr/lib/l{i}");
        p.digests.push(
            &name,
            hex::encode(HashAlgo::Sha256.digest(name.as_bytes()).unwrap()),
        );
        p.digests.push(&name, hex::encode(sha1(name.as_bytes())));
    }
    p.digests.push("boot_aggregate", "00".repeat(32));
    p.digests.push("/upper", "AB".repeat(32));
    p.excludes = vec!["/tmp/.*".into()];
    p
}

/// Replay the list's valid lines for a quote after `n` entries.
fn compare(text: &str, p: &RuntimePolicy, skip: usize, quote_after: Option<usize>) {
    let v = Validator::new(p, Options::default()).unwrap();
    for bank in [HashAlgo::Sha1, HashAlgo::Sha256] {
        // A quote: the running value after some prefix (computed by the general
        // path's report on that prefix), or a value that matches nothing.
        let quote = match quote_after {
            Some(n) => {
                let items: Vec<_> = ascii_items(text.as_bytes(), 0).take(n).collect();
                let r = v
                    .validate(items, bank, None, None, ListInfo::default())
                    .unwrap();
                hex::decode(r.running_pcr).unwrap()
            }
            None => vec![0x5a; bank.digest_len()],
        };
        let prepared = PreparedAscii::new(text.as_bytes(), bank);
        for with_state in [false, true] {
            let info = ListInfo {
                first_entry: skip as u64,
                boottime: None,
            };
            let mut st_a = State::default();
            let mut st_b = State::default();
            if skip > 0 {
                // A state that expects the list from `skip` on.
                let items: Vec<_> = ascii_items(text.as_bytes(), 0).take(skip).collect();
                let r = v
                    .validate(items, bank, None, None, ListInfo::default())
                    .unwrap();
                st_a.next_entry = skip as u64;
                st_a.pcrs.insert(bank.name().into(), r.running_pcr.clone());
                st_b = st_a.clone();
            }
            let general = v.validate(
                ascii_items(text.as_bytes(), skip),
                bank,
                Some(&quote),
                with_state.then_some(&mut st_a),
                info,
            );
            let fast = v.validate_ascii(
                &prepared,
                skip,
                Some(&quote),
                with_state.then_some(&mut st_b),
                info,
            );
            match (general, fast) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{bank} skip {skip}\n{text}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
            assert_eq!(st_a, st_b);
        }
    }
}

#[test]
fn every_kind_of_line() {
    let p = policy();
    let text: Vec<String> = (0..19 * 3).map(|i| line(i % 19, i)).collect();
    let text = text.join("\n");
    for skip in [0, 1, 5, 47, 48] {
        compare(&text, &p, skip, None);
        compare(&text, &p, skip, Some(30));
    }
    // All good: attested, and the quote after the last entry.
    let good: Vec<String> = (0..5000).map(|i| line(0, i)).collect();
    let good = good.join("\n") + "\n";
    compare(&good, &p, 0, Some(5000));
    compare(&good, &p, 1234, Some(5000));
    compare(&good, &p, 0, Some(0));
    compare("", &p, 0, Some(0));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn random_lists(kinds in proptest::collection::vec(0usize..19, 0..300), q in 0usize..300, skip in 0usize..20) {
        let p = policy();
        let text: Vec<String> = kinds.iter().enumerate().map(|(i, &k)| line(k, i)).collect();
        let text = text.join("\n");
        let n = kinds.iter().filter(|&&k| k != 8).count();
        compare(&text, &p, skip.min(n), Some(q.min(n)));
    }
}
