//! Measurement lists, PCR replay and boot_aggregate against the real fixtures in
//! `shared/testdata` and the known-answer vectors of the reference notes (§1.12).

use vigil_ima::list::{
    ascii, binary, AsciiReader, BinaryReader, DigestAlgo, Endian, ExtendMode, Field, Record,
    Replay, TailPolicy,
};
use vigil_ima::tcg::{boot_aggregate, AggregateRange, EventLog};
use vigil_ima::{pcrs, HashAlgo};

const LE: Endian = Endian::Little;

fn fixture(p: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/testdata/{p}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn replay_binary(
    data: &[u8],
    digest_algo: HashAlgo,
    banks: &[HashAlgo],
    mode: ExtendMode,
) -> Replay {
    let mut r = Replay::new(banks, mode);
    let mut rd = BinaryReader::new(data, digest_algo, LE);
    while let Some(raw) = rd.next_raw().unwrap() {
        let step = r.extend_raw(&raw, digest_algo, LE).unwrap();
        assert_ne!(step.digest_ok, Some(false), "record {} digest", raw.index);
    }
    assert_eq!(r.offset, data.len() as u64);
    r
}

fn ibm_pcr10() -> Vec<(HashAlgo, Vec<u8>)> {
    let text = String::from_utf8(fixture("ibmtss/imakvtpcr10.txt")).unwrap();
    let vals = pcrs::parse_pcr_text(&text).unwrap();
    let algos = [
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha384,
        HashAlgo::Sha512,
    ];
    assert_eq!(vals.len(), 4);
    algos
        .iter()
        .zip(vals)
        .map(|(a, l)| {
            assert_eq!(l.index, 10);
            (*a, l.value)
        })
        .collect()
}

#[test]
fn ibmtss_sha1_list_replays_every_bank() {
    let data = fixture("ibmtss/sha1.log");
    let all = [
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha384,
        HashAlgo::Sha512,
    ];
    let r = replay_binary(&data, HashAlgo::Sha1, &all, ExtendMode::PerBank);
    assert_eq!(r.records, 362);
    for (algo, want) in ibm_pcr10() {
        assert_eq!(r.banks.get(algo).unwrap().pcr(10), &want[..], "{algo}");
    }
    assert_eq!(
        hex::encode(r.banks.get(HashAlgo::Sha1).unwrap().pcr(10)),
        "9be6bac02bf18d09d17e726c2df00bca4e8831ea"
    );
}

#[test]
fn ibmtss_per_bank_lists_replay() {
    for (algo, want) in ibm_pcr10().into_iter().skip(1) {
        let data = fixture(&format!("ibmtss/{}.log", algo.name()));
        let r = replay_binary(&data, algo, &[algo], ExtendMode::PerBank);
        assert_eq!(r.records, 362);
        assert_eq!(r.banks.get(algo).unwrap().pcr(10), &want[..], "{algo}");
    }
}

#[test]
fn binary_round_trip_is_byte_identical() {
    for (f, algo) in [
        ("ibmtss/sha1.log", HashAlgo::Sha1),
        ("ibmtss/sha256.log", HashAlgo::Sha256),
        ("ibmtss/sha384.log", HashAlgo::Sha384),
        ("ibmtss/sha512.log", HashAlgo::Sha512),
        ("ibmtss/imatest.log", HashAlgo::Sha1),
    ] {
        let data = fixture(f);
        let recs = binary::parse_all(&data, algo, LE).unwrap();
        let mut out = Vec::new();
        for r in &recs {
            binary::encode_record(r, LE, &mut out);
        }
        assert_eq!(out, data, "{f}");
        // Big-endian lists round-trip too, and differ from the little-endian bytes.
        let mut be = Vec::new();
        for r in &recs {
            binary::encode_record(r, Endian::Big, &mut be);
        }
        assert_ne!(be, data);
        assert_eq!(
            binary::parse_all(&be, algo, Endian::Big).unwrap(),
            recs,
            "{f} big-endian"
        );
    }
}

#[test]
fn imatest_every_template_and_violation() {
    let data = fixture("ibmtss/imatest.log");
    let recs = binary::parse_all(&data, HashAlgo::Sha1, LE).unwrap();
    assert_eq!(recs.len(), 17);
    let names: Vec<_> = recs.iter().map(|r| r.template_name.as_str()).collect();
    for t in [
        "ima",
        "ima-ng",
        "ima-sig",
        "ima-ngv2",
        "ima-sigv2",
        "ima-buf",
        "ima-modsig",
        "evm-sig",
        "d-ng|sig",
        "n",
        "sig",
    ] {
        assert!(names.contains(&t), "{t}");
    }
    assert!(recs[6].is_violation() && recs[6].is_ima_template());
    assert!(recs
        .iter()
        .all(|r| r.fields.iter().all(
            |f| !matches!(f, Field::Raw { id, .. } if *id != vigil_ima::list::FieldId::DModsig)
        )));
    let r = replay_binary(
        &data,
        HashAlgo::Sha1,
        &[HashAlgo::Sha1],
        ExtendMode::PerBank,
    );
    assert_eq!(r.violations, 1);
    assert_eq!(
        hex::encode(r.banks.get(HashAlgo::Sha1).unwrap().pcr(10)),
        "0ff68e1da514770e85581bffe693809776302a63"
    );
    // Each non-violation record's digest recomputes from the decoded fields.
    for r in recs.iter().filter(|r| !r.is_violation()) {
        assert_eq!(
            r.template_digest(HashAlgo::Sha1, LE).unwrap(),
            r.digest,
            "{}",
            r.template_name
        );
    }
    // evm-sig fields are typed.
    let evm = recs.iter().find(|r| r.template_name == "evm-sig").unwrap();
    assert_eq!(evm.fields[8], Field::IMode(0o100644));
    assert_eq!(evm.fields[6], Field::IUid(0));
}

fn abc_ng() -> Record {
    Record {
        pcr: 10,
        digest_algo: HashAlgo::Sha1,
        digest: hex::decode("fae31564bd21d41fe95581174c5be387d8a0bf62").unwrap(),
        template_name: "ima-ng".into(),
        fields: vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: HashAlgo::Sha256.digest(b"abc").unwrap(),
            },
            Field::NameNg(b"/tmp/imatest/abc.txt".to_vec()),
        ],
    }
}

#[test]
fn vector_a_ima_ng_record() {
    let want = hex::decode(concat!(
        "0a000000fae31564bd21d41fe95581174c5be387d8a0bf6206000000696d612d6e67",
        "45000000280000007368613235363a00ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "150000002f746d702f696d61746573742f6162632e74787400"
    ))
    .unwrap();
    let r = abc_ng();
    let mut out = Vec::new();
    binary::encode_record(&r, LE, &mut out);
    assert_eq!(out.len(), 107);
    assert_eq!(out, want);
    assert_eq!(r.template_digest(HashAlgo::Sha1, LE).unwrap(), r.digest);
    assert_eq!(
        hex::encode(r.template_digest(HashAlgo::Sha256, LE).unwrap()),
        "38b3e4fc672deaf88a0abd9fbc925cfababbf8aabc03fbd838ce19c9d550802b"
    );
    assert_eq!(
        binary::parse_all(&want, HashAlgo::Sha1, LE).unwrap(),
        vec![r.clone()]
    );
    let mut line = Vec::new();
    ascii::format_record(&r, LE, &mut line);
    assert_eq!(
        String::from_utf8(line).unwrap(),
        "10 fae31564bd21d41fe95581174c5be387d8a0bf62 ima-ng sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad /tmp/imatest/abc.txt\n"
    );
}

#[test]
fn record_constructors() {
    let r = Record::ima_ng(
        10,
        HashAlgo::Sha256,
        &HashAlgo::Sha256.digest(b"abc").unwrap(),
        b"/tmp/imatest/abc.txt",
    )
    .unwrap();
    assert_eq!(r, abc_ng());
    let spaced = Record::ima_ng(10, HashAlgo::Sha256, &[1; 32], b"/a b").unwrap();
    assert_eq!(spaced.name(), Some(&b"/a_b"[..]));
    let v = spaced.into_violation();
    assert!(v.is_violation());
    assert_eq!(v.file_digest().unwrap().1, &[0; 32][..]);
}

#[test]
fn vector_b_ima_record() {
    let want = hex::decode(concat!(
        "0a000000ac72052fb44ca84a42232633fb04979e6d56826803000000696d61",
        "a9993e364706816aba3e25717850c26c9cd0d89d140000002f746d702f696d61746573742f6162632e747874"
    ))
    .unwrap();
    let recs = binary::parse_all(&want, HashAlgo::Sha1, LE).unwrap();
    assert_eq!(
        recs[0].fields[0],
        Field::D(HashAlgo::Sha1.digest(b"abc").unwrap())
    );
    assert_eq!(
        recs[0].template_digest(HashAlgo::Sha1, LE).unwrap(),
        recs[0].digest
    );
    let r = replay_binary(
        &want,
        HashAlgo::Sha1,
        &[HashAlgo::Sha1],
        ExtendMode::PerBank,
    );
    assert_eq!(
        hex::encode(r.banks.get(HashAlgo::Sha1).unwrap().pcr(10)),
        "139b495f5f208e81679d37b00a0bff49c856a78d"
    );
    let mut out = Vec::new();
    binary::encode_record(&recs[0], LE, &mut out);
    assert_eq!(out, want);
}

const RSA_SIG: &str = "030204967db47201007f287ff6dd0d3da28738fb520f5220512f5755c76f86b9d3f1c310062ef53e6dd7e541524a4e1333c60eaa85c834e2d033307b7ee5abd6f9642b63903b1e876d94f91ba4a2be675a3631461b7ce664abdca80c55c8fea60932525ee9e77b3e5c83da91a87ea15dc970dc674f8c9a0d76f42b5038994e73632cc53beb703f1e4b1770adb25d54db53122c5e5527e383a60181b8d8cf14a6ee8b4d2aaf73eb92c95739444161898b0b9795bb2e5ceb94175232b82b9516c4e852eb6188099b170163548fd231b58d6dc6180e86e99a0824eefb13551361299cce843d4f64fd018c56e0924bdb8ad90b555c55dc7af5194e2d30234990127ccc77c21f0429d7872e";

fn with_digest(mut r: Record) -> Record {
    r.digest = r.template_digest(HashAlgo::Sha1, LE).unwrap();
    r
}

#[test]
fn vector_c_five_records() {
    let ba = with_digest(Record {
        fields: vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: vec![0; 32],
            },
            Field::NameNg(b"boot_aggregate".to_vec()),
        ],
        ..abc_ng()
    });
    assert_eq!(
        hex::encode(&ba.digest),
        "0adefe762c149c7cec19da62f0da1297fcfbffff"
    );
    let mut sig = abc_ng();
    sig.template_name = "ima-sig".into();
    sig.fields.push(Field::Sig(hex::decode(RSA_SIG).unwrap()));
    let sig = with_digest(sig);
    assert_eq!(
        hex::encode(&sig.digest),
        "5d051cec746e000718184fa14d7cc31ed35ab944"
    );
    let mut nosig = abc_ng();
    nosig.template_name = "ima-sig".into();
    nosig.fields.push(Field::Sig(vec![]));
    let nosig = with_digest(nosig);
    assert_eq!(
        hex::encode(&nosig.digest),
        "44bcebb83a4527600755e87122ab91dd8d2c0840"
    );
    let mut line = Vec::new();
    ascii::format_record(&nosig, LE, &mut line);
    assert!(
        line.ends_with(b"abc.txt \n"),
        "empty last field leaves a trailing space"
    );
    let viol = Record {
        digest: vec![0; 20],
        fields: vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: vec![0; 32],
            },
            Field::NameNg(b"/tmp/imatest/violated".to_vec()),
        ],
        ..abc_ng()
    };
    let mut list = Vec::new();
    for r in [&ba, &abc_ng(), &sig, &nosig, &viol] {
        binary::encode_record(r, LE, &mut list);
    }
    let r = replay_binary(
        &list,
        HashAlgo::Sha1,
        &[HashAlgo::Sha1, HashAlgo::Sha256],
        ExtendMode::PerBank,
    );
    assert_eq!(
        hex::encode(r.banks.get(HashAlgo::Sha1).unwrap().pcr(10)),
        "50a1d64f9301a92afd9fb078c8126faa114b9840"
    );
    assert_eq!(
        hex::encode(r.banks.get(HashAlgo::Sha256).unwrap().pcr(10)),
        "3bc78c04d890974858e6c00517c983dd3000fa2771a764c7024b06e593cb9099"
    );
    // The same list through ASCII and back replays identically.
    let mut text = Vec::new();
    for rec in binary::parse_all(&list, HashAlgo::Sha1, LE).unwrap() {
        ascii::format_record(&rec, LE, &mut text);
    }
    let mut r2 = Replay::new(&[HashAlgo::Sha1, HashAlgo::Sha256], ExtendMode::PerBank);
    for rec in AsciiReader::new(&text[..], None) {
        r2.extend_record(&rec.unwrap(), LE).unwrap();
    }
    assert_eq!(r2.banks, r.banks);
}

#[test]
fn vector_d_ngv2_and_buf() {
    let mut v2 = abc_ng();
    v2.template_name = "ima-ngv2".into();
    v2.fields[0] = Field::DigestNgV2 {
        kind: "ima".into(),
        algo: DigestAlgo::Known(HashAlgo::Sha256),
        digest: HashAlgo::Sha256.digest(b"abc").unwrap(),
    };
    assert_eq!(
        hex::encode(v2.template_digest(HashAlgo::Sha1, LE).unwrap()),
        "d25060db403a1a689ad4e4134f922aa10b2f10e8"
    );
    let mut line = Vec::new();
    ascii::format_record(&with_digest(v2.clone()), LE, &mut line);
    assert!(String::from_utf8(line)
        .unwrap()
        .contains(" ima-ngv2 ima:sha256:ba7816bf"));
    let buf = b"root=/dev/vda1 ro".to_vec();
    let d = HashAlgo::Sha256.digest(&buf).unwrap();
    assert!(hex::encode(&d).starts_with("046e81c9") && hex::encode(&d).ends_with("4318354f"));
    let r = Record {
        template_name: "ima-buf".into(),
        fields: vec![
            Field::DigestNg {
                algo: DigestAlgo::Known(HashAlgo::Sha256),
                digest: d,
            },
            Field::NameNg(b"kexec-cmdline".to_vec()),
            Field::Buf(buf),
        ],
        ..abc_ng()
    };
    assert_eq!(
        hex::encode(r.template_digest(HashAlgo::Sha1, LE).unwrap()),
        "620eeedaa21da7c900f1724455564101764457b2"
    );
}

/// binary → ASCII → binary is byte-identical for every binary fixture, custom templates
/// with an `n` field (NUL-terminated, unlike the `ima` template's) included, and the
/// rebuilt list replays to the same PCR.
#[test]
fn ascii_round_trip_of_real_lists() {
    for (f, algo) in [
        ("ibmtss/sha1.log", HashAlgo::Sha1),
        ("ibmtss/sha256.log", HashAlgo::Sha256),
        ("ibmtss/sha384.log", HashAlgo::Sha384),
        ("ibmtss/sha512.log", HashAlgo::Sha512),
        ("ibmtss/imatest.log", HashAlgo::Sha1),
    ] {
        let data = fixture(f);
        let recs = binary::parse_all(&data, algo, LE).unwrap();
        let mut text = Vec::new();
        for r in &recs {
            ascii::format_record(r, LE, &mut text);
        }
        let back: Vec<Record> = AsciiReader::new(&text[..], Some(algo))
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, recs, "{f}");
        let mut bin = Vec::new();
        for r in &back {
            binary::encode_record(r, LE, &mut bin);
        }
        assert_eq!(bin, data, "{f}");
        let want = replay_binary(&data, algo, &[algo], ExtendMode::PerBank);
        let got = replay_binary(&bin, algo, &[algo], ExtendMode::PerBank);
        assert_eq!(got.banks, want.banks, "{f}");
    }
    let n = binary::parse_all(&fixture("ibmtss/imatest.log"), HashAlgo::Sha1, LE).unwrap();
    let n = n.iter().find(|r| r.template_name == "n").unwrap();
    assert_eq!(n.name(), Some(&b"boot_aggregate"[..]));
}

#[test]
fn boot_aggregate_from_event_logs() {
    // No events: not a log (it would aggregate all-zero PCRs).
    let e = EventLog::parse(&[]).unwrap_err().to_string();
    assert!(e.contains("offset 0") && e.contains("no events"), "{e}");
    let log = EventLog::parse(&fixture(
        "ima-evm-utils/sample-binary_bios_measurements-pcrs-8-9",
    ))
    .unwrap();
    assert!(log.crypto_agile);
    let banks = log.replay().unwrap();
    let sha256 = banks.get(HashAlgo::Sha256).unwrap();
    assert_eq!(
        hex::encode(boot_aggregate(sha256, AggregateRange::Pcr0To9).unwrap()),
        "83d19723ef3b3c05bb8ae70d86b3886c158f2408f1b71ed265886a7b79eb700e"
    );
    let sha1 = banks.get(HashAlgo::Sha1).unwrap();
    assert_eq!(
        hex::encode(boot_aggregate(sha1, AggregateRange::Pcr0To7).unwrap()),
        "902992f8f550b797165537c7e8ab9a2f2170321d"
    );
    // The TPM's own sha1 PCRs 0-9 agree with the replayed log.
    let text = String::from_utf8(fixture("ima-evm-utils/sample-tpm-2.0-pcrs-8-9")).unwrap();
    let mut tpm = vigil_ima::list::Bank::new(HashAlgo::Sha1);
    pcrs::load_bank(&mut tpm, &text).unwrap();
    assert_eq!(&tpm.pcrs[..10], &sha1.pcrs[..10]);
    // The ASCII list's boot_aggregate record matches.
    let ascii_list = fixture("ima-evm-utils/sample-ascii_runtime_measurements-pcrs-8-9");
    let first = AsciiReader::new(&ascii_list[..], None)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.file_digest().unwrap().1,
        &boot_aggregate(sha256, AggregateRange::Pcr0To9).unwrap()[..]
    );
    assert_eq!(
        first.template_digest(HashAlgo::Sha1, LE).unwrap(),
        first.digest
    );

    let log = EventLog::parse(&fixture("ima-evm-utils/test_binary_bios_measurements")).unwrap();
    let sha256 = log.replay().unwrap().get(HashAlgo::Sha256).unwrap().clone();
    assert_eq!(
        hex::encode(boot_aggregate(&sha256, AggregateRange::Pcr0To7).unwrap()),
        "f1b4c7c9b27e94569f4c2b64051c452bc609c3cb891dd7fae06b758f8bc83d14"
    );
    assert!(
        hex::encode(boot_aggregate(&sha256, AggregateRange::Pcr0To9).unwrap())
            .starts_with("3135de09")
    );
    let list = fixture("ima-evm-utils/test_ascii_runtime_measurements");
    let recs: Vec<Record> = AsciiReader::new(&list[..], None)
        .map(Result::unwrap)
        .collect();
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r.template_digest(HashAlgo::Sha1, LE).unwrap(), r.digest);
    }
}

#[test]
fn keylime_ascii_lists() {
    for alg in ["sha1", "sha256", "sha384", "sha512"] {
        let text = fixture(&format!("keylime/create-runtime-policy/ima-log-{alg}"));
        let recs: Vec<Record> = AsciiReader::new(&text[..], None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(recs.len(), 2);
        let (a, d) = recs[1].file_digest().unwrap();
        assert_eq!(a.unwrap().name(), alg);
        assert_eq!(d.len(), a.unwrap().digest_len());
        // Line 2 is a real record whose template digest verifies (line 1 is a synthetic
        // zero-hash boot_aggregate, which replays as a violation).
        assert_eq!(
            recs[1].template_digest(HashAlgo::Sha1, LE).unwrap(),
            recs[1].digest,
            "{alg}"
        );
        let mut r = Replay::new(&[HashAlgo::Sha1], ExtendMode::PerBank);
        for rec in &recs {
            r.extend_record(rec, LE).unwrap();
        }
        assert_eq!(r.bad_digests, 0, "{alg}");
    }
    // The sm3 list: 32-byte SM3 template digests over data whose d-ng prefix is the
    // non-kernel name `sm3_256`, kept verbatim.
    let text = fixture("keylime/create-runtime-policy/ima-log-sm3_256");
    let recs: Vec<Record> = AsciiReader::new(&text[..], Some(HashAlgo::Sm3))
        .map(Result::unwrap)
        .collect();
    let Field::DigestNg { algo, .. } = &recs[1].fields[0] else {
        panic!()
    };
    assert_eq!(algo, &DigestAlgo::Other("sm3_256".into()));
    assert_eq!(algo.hash_algo(32), Some(HashAlgo::Sm3));
    assert_eq!(
        recs[1].template_digest(HashAlgo::Sm3, LE).unwrap(),
        recs[1].digest
    );
    let mut line = Vec::new();
    ascii::format_record(&recs[1], LE, &mut line);
    assert_eq!(line, text.split_inclusive(|&b| b == b'\n').nth(1).unwrap());
}

#[test]
fn malformed_lists_give_located_errors() {
    let good = fixture("ibmtss/sha1.log");
    // Truncated in the middle of record 3.
    let recs = binary::parse_all(&good, HashAlgo::Sha1, LE).unwrap();
    let mut three = Vec::new();
    for r in &recs[..3] {
        binary::encode_record(r, LE, &mut three);
    }
    let cut = &good[..three.len() + 30];
    let err = binary::parse_all(cut, HashAlgo::Sha1, LE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record 3") && err.contains(&format!("offset {}", three.len())),
        "{err}"
    );
    // A growing file: stop cleanly at the last whole record.
    let mut rd = BinaryReader::new(cut, HashAlgo::Sha1, LE).tail_policy(TailPolicy::Stop);
    let n = rd.by_ref().map(Result::unwrap).count();
    assert_eq!((n, rd.offset()), (3, three.len() as u64));
    // A 4 GiB template-data length in a tiny file.
    let mut huge = three[..28 + 6].to_vec();
    huge[24..28].copy_from_slice(&6u32.to_le_bytes());
    huge[28..34].copy_from_slice(b"ima-ng");
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&[0; 8]);
    let err = binary::parse_all(&huge, HashAlgo::Sha1, LE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("record 0") && err.contains("exceeds"), "{err}");
    huge[34..38].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let err = binary::parse_all(&huge, HashAlgo::Sha1, LE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("offset 0"),
        "{err}"
    );
    // A name length beyond the file.
    let mut bad = three.clone();
    bad[24..28].copy_from_slice(&200u32.to_le_bytes());
    let err = binary::parse_all(&bad[..100], HashAlgo::Sha1, LE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record 0") && err.contains("template name"),
        "{err}"
    );
    // Unknown template with unparsable data.
    let mut unk = Vec::new();
    unk.extend_from_slice(&10u32.to_le_bytes());
    unk.extend_from_slice(&[1; 20]);
    unk.extend_from_slice(&7u32.to_le_bytes());
    unk.extend_from_slice(b"ima-foo");
    unk.extend_from_slice(&5u32.to_le_bytes());
    unk.extend_from_slice(&[9, 0, 0, 0, 1]);
    let err = binary::parse_all(&unk, HashAlgo::Sha1, LE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record 0") && err.contains("claims 9 bytes"),
        "{err}"
    );
    // A known template whose data does not match its layout.
    let mut wrong = unk.clone();
    wrong[28..35].copy_from_slice(b"ima-sig");
    assert!(binary::parse_all(&wrong, HashAlgo::Sha1, LE).is_err());
    // Non-UTF-8 names are data, not errors.
    let mut r = abc_ng();
    r.fields[1] = Field::NameNg(b"/tmp/\xff\xfe name".to_vec());
    let mut b = Vec::new();
    binary::encode_record(&r, LE, &mut b);
    assert_eq!(binary::parse_all(&b, HashAlgo::Sha1, LE).unwrap(), vec![r]);
    // ASCII errors name the line.
    let err = AsciiReader::new(&b"10 00 ima-ng sha1:00 x\n10 zz ima-ng\n"[..], None)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
    // A list cut inside its last line is truncated wherever the cut falls (unless the
    // reader stops at the last whole line), as a binary list is.
    let list = fixture("ima-evm-utils/test_ascii_runtime_measurements");
    for cut in 1..list.len() {
        if list[cut - 1] == b'\n' {
            continue;
        }
        let read = |tail| {
            AsciiReader::new(&list[..cut], None)
                .tail_policy(tail)
                .collect::<Result<Vec<_>, _>>()
        };
        let whole = list[..cut].iter().filter(|&&b| b == b'\n').count();
        let start = list[..cut]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let err = read(TailPolicy::Error).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {} (offset {start})", whole + 1))
                && err.contains("truncated"),
            "{cut}: {err}"
        );
        assert_eq!(read(TailPolicy::Stop).unwrap().len(), whole, "{cut}");
    }
    // A d-ng digest must have its algorithm's length.
    let short = b"10 cf41b43c4031672fcc2bd358b309ad33b977424f ima-ng sha256:ae06 /x\n";
    let err = AsciiReader::new(&short[..], None)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1") && err.contains("d-ng") && err.contains("2 bytes, not 32"),
        "{err}"
    );
}

#[test]
fn replay_state_resumes() {
    let data = fixture("ibmtss/sha1.log");
    let algos = [HashAlgo::Sha1, HashAlgo::Sha256];
    let full = replay_binary(&data, HashAlgo::Sha1, &algos, ExtendMode::PerBank);
    // Replay half, persist, restore, replay the rest from the saved offset.
    let mut r = Replay::new(&algos, ExtendMode::PerBank);
    let mut rd = BinaryReader::new(&data[..], HashAlgo::Sha1, LE);
    for _ in 0..100 {
        let raw = rd.next_raw().unwrap().unwrap();
        r.extend_raw(&raw, HashAlgo::Sha1, LE).unwrap();
    }
    let saved = serde_json::to_string(&r).unwrap();
    let mut r: Replay = serde_json::from_str(&saved).unwrap();
    let mut rd = BinaryReader::new(&data[r.offset as usize..], HashAlgo::Sha1, LE)
        .starting_at(r.records, r.offset);
    while let Some(raw) = rd.next_raw().unwrap() {
        r.extend_raw(&raw, HashAlgo::Sha1, LE).unwrap();
    }
    assert_eq!(r, full);
    // A tampered state (wrong PCR length) is refused.
    let bad = saved.replacen("\"pcrs\":[\"", "\"pcrs\":[\"00", 1);
    assert!(serde_json::from_str::<Replay>(&bad).is_err());
}

#[test]
fn sha1_padded_mode() {
    let data = fixture("ibmtss/sha1.log");
    let r = replay_binary(
        &data,
        HashAlgo::Sha1,
        &[HashAlgo::Sha1, HashAlgo::Sha256],
        ExtendMode::Sha1Padded,
    );
    let per = replay_binary(
        &data,
        HashAlgo::Sha1,
        &[HashAlgo::Sha1, HashAlgo::Sha256],
        ExtendMode::PerBank,
    );
    assert_eq!(r.banks.get(HashAlgo::Sha1), per.banks.get(HashAlgo::Sha1));
    // Recompute the padded sha256 bank by hand.
    let mut pcr = vec![0u8; 32];
    for rec in binary::parse_all(&data, HashAlgo::Sha1, LE).unwrap() {
        let mut e = rec.digest.clone();
        e.resize(32, 0);
        pcr = HashAlgo::Sha256.digest(&[pcr, e].concat()).unwrap();
    }
    assert_eq!(r.banks.get(HashAlgo::Sha256).unwrap().pcr(10), &pcr[..]);
}

mod signatures {
    use super::*;
    use vigil_ima::list::{check_signatures, sigcheck::evm_portable_digest, FieldId, SigCheck};
    use vigil_ima::{sig::sign_digest_as, KeyRing, PrivateKey, XattrType};

    fn key() -> PrivateKey {
        PrivateKey::load(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rsa2048.pem"),
            None,
        )
        .unwrap()
    }

    fn ring() -> KeyRing {
        let mut r = KeyRing::new();
        r.add(key().public_key());
        r
    }

    fn ima_sig(sig: Vec<u8>) -> Record {
        let mut r = abc_ng();
        r.template_name = "ima-sig".into();
        r.fields.push(Field::Sig(sig));
        with_digest(r)
    }

    #[test]
    fn ima_sig_entries() {
        let good = ima_sig(hex::decode(RSA_SIG).unwrap());
        let checks = check_signatures(&good, &ring(), LE);
        assert_eq!(
            checks,
            vec![(
                FieldId::Sig,
                SigCheck::Verified("967db472".parse().unwrap())
            )]
        );
        assert!(!checks[0].1.is_failure());
        // No key.
        let checks = check_signatures(&good, &KeyRing::new(), LE);
        assert!(matches!(checks[0].1, SigCheck::UnknownKey(_)) && checks[0].1.is_failure());
        // A corrupted signature, and a signature over another digest.
        let mut bad = hex::decode(RSA_SIG).unwrap();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            check_signatures(&ima_sig(bad), &ring(), LE)[0].1,
            SigCheck::Failed { .. }
        ));
        let mut other = good.clone();
        other.fields[0] = Field::DigestNg {
            algo: DigestAlgo::Known(HashAlgo::Sha256),
            digest: HashAlgo::Sha256.digest(b"abd").unwrap(),
        };
        assert!(check_signatures(&other, &ring(), LE)[0].1.is_failure());
        // A sha1 file digest with a sha256 signature.
        let mut sha1 = good.clone();
        sha1.fields[0] = Field::DigestNg {
            algo: DigestAlgo::Known(HashAlgo::Sha1),
            digest: HashAlgo::Sha1.digest(b"abc").unwrap(),
        };
        let c = &check_signatures(&sha1, &ring(), LE)[0].1;
        assert!(c.to_string().contains("sha256 digest"), "{c}");
        // Malformed bytes; empty signatures are not checked at all.
        assert!(check_signatures(&ima_sig(vec![3, 2, 4]), &ring(), LE)[0]
            .1
            .is_failure());
        assert!(check_signatures(&ima_sig(vec![]), &ring(), LE).is_empty());
        // ima-sigv2 with a v2 signature over the d-ngv2 digest.
        let mut v2 = good.clone();
        v2.template_name = "ima-sigv2".into();
        v2.fields[0] = Field::DigestNgV2 {
            kind: "ima".into(),
            algo: DigestAlgo::Known(HashAlgo::Sha256),
            digest: HashAlgo::Sha256.digest(b"abc").unwrap(),
        };
        assert!(matches!(
            check_signatures(&v2, &ring(), LE)[0].1,
            SigCheck::Verified(_)
        ));
    }

    #[test]
    fn evm_sig_and_modsig_entries() {
        let values: [&[u8]; 2] = [b"unconfined_u:object_r:user_t:s0\0", &[4, 4, 1, 2, 3]];
        let lengths: Vec<u8> = values
            .iter()
            .flat_map(|v| (v.len() as u32).to_le_bytes())
            .collect();
        let mut r = Record {
            template_name: "evm-sig".into(),
            fields: vec![
                Field::DigestNg {
                    algo: DigestAlgo::Known(HashAlgo::Sha256),
                    digest: vec![7; 32],
                },
                Field::NameNg(b"/etc/passwd".to_vec()),
                Field::EvmSig(vec![]),
                Field::XattrNames(b"security.selinux|security.ima\0".to_vec()),
                Field::XattrLengths(lengths),
                Field::XattrValues(values.concat()),
                Field::IUid(0),
                Field::IGid(42),
                Field::IMode(0o100644),
            ],
            ..abc_ng()
        };
        let digest = evm_portable_digest(&r, HashAlgo::Sha256, LE).unwrap();
        let sig = sign_digest_as(
            &key(),
            XattrType::EvmPortableDigSig,
            HashAlgo::Sha256,
            &digest,
        )
        .unwrap();
        r.fields[2] = Field::EvmSig(sig.encode());
        assert!(matches!(
            check_signatures(&r, &ring(), LE)[..],
            [(FieldId::EvmSig, SigCheck::Verified(_))]
        ));
        // The owner changed: the signature no longer verifies.
        r.fields[7] = Field::IGid(43);
        assert!(check_signatures(&r, &ring(), LE)[0].1.is_failure());
        // A modsig that is not PKCS#7 fails.
        let mut m = abc_ng();
        m.template_name = "ima-modsig".into();
        m.fields.extend([
            Field::Sig(vec![]),
            Field::Raw {
                id: FieldId::DModsig,
                data: vec![],
            },
            Field::Modsig(vec![0x30, 0]),
        ]);
        assert!(matches!(
            check_signatures(&m, &ring(), LE)[..],
            [(FieldId::Modsig, SigCheck::Failed { .. })]
        ));
    }
}
