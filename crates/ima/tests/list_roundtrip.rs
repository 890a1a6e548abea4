//! Property tests: any record of any template survives binary (both byte orders), and
//! ASCII where ASCII can carry it; template digests agree across encodings.

use proptest::prelude::*;
use vigil_ima::list::{ascii, binary, DigestAlgo, Endian, Field, FieldId, Record, Template};
use vigil_ima::HashAlgo;

const TEMPLATES: &[&str] = &[
    "ima",
    "ima-ng",
    "ima-sig",
    "ima-ngv2",
    "ima-sigv2",
    "ima-buf",
    "ima-modsig",
    "evm-sig",
    "d-ng|n-ng|sig|iuid|igid|imode|xattrlengths",
    "n-ng|d-ngv2|buf|evmsig|modsig|d-modsig",
    "n|d|sig",
];

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Any byte the ASCII list can carry in a name: no NUL, newline or space.
    proptest::collection::vec(
        any::<u8>().prop_filter("ascii-safe", |b| ![0, b'\n', b' '].contains(b)),
        1..60,
    )
}

fn field(id: FieldId) -> BoxedStrategy<Field> {
    let algo = prop::sample::select(vec![
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sm3,
        HashAlgo::Sha3_512,
    ]);
    let bytes = proptest::collection::vec(any::<u8>(), 0..80);
    match id {
        FieldId::D => proptest::collection::vec(any::<u8>(), 20)
            .prop_map(Field::D)
            .boxed(),
        FieldId::N => name().prop_map(Field::N).boxed(),
        FieldId::NameNg => name().prop_map(Field::NameNg).boxed(),
        FieldId::DigestNg | FieldId::DModsig => algo
            .prop_flat_map(|a| {
                proptest::collection::vec(any::<u8>(), a.digest_len()).prop_map(move |d| (a, d))
            })
            .prop_map(move |(a, digest)| {
                let algo = DigestAlgo::Known(a);
                if id == FieldId::DigestNg {
                    Field::DigestNg { algo, digest }
                } else {
                    Field::DModsig { algo, digest }
                }
            })
            .boxed(),
        FieldId::DigestNgV2 => (algo, prop::bool::ANY)
            .prop_flat_map(|(a, v)| {
                proptest::collection::vec(any::<u8>(), a.digest_len()).prop_map(move |d| (a, v, d))
            })
            .prop_map(|(a, v, digest)| Field::DigestNgV2 {
                kind: if v { "verity".into() } else { "ima".into() },
                algo: DigestAlgo::Known(a),
                digest,
            })
            .boxed(),
        FieldId::Sig => bytes.prop_map(Field::Sig).boxed(),
        FieldId::Buf => bytes.prop_map(Field::Buf).boxed(),
        FieldId::Modsig => bytes.prop_map(Field::Modsig).boxed(),
        FieldId::EvmSig => bytes.prop_map(Field::EvmSig).boxed(),
        FieldId::XattrLengths => bytes.prop_map(Field::XattrLengths).boxed(),
        FieldId::XattrValues => bytes.prop_map(Field::XattrValues).boxed(),
        FieldId::XattrNames => name()
            .prop_map(|mut n| {
                n.push(0);
                Field::XattrNames(n)
            })
            .boxed(),
        FieldId::IUid => any::<u32>().prop_map(Field::IUid).boxed(),
        FieldId::IGid => any::<u32>().prop_map(Field::IGid).boxed(),
        FieldId::IMode => any::<u16>().prop_map(Field::IMode).boxed(),
        FieldId::Unknown => unreachable!(),
    }
}

fn record() -> impl Strategy<Value = Record> {
    (prop::sample::select(TEMPLATES), 0u32..24, prop::bool::ANY).prop_flat_map(|(t, pcr, viol)| {
        let ids = Template::from_name(t).fields.unwrap();
        ids.into_iter()
            .map(field)
            .collect::<Vec<_>>()
            .prop_map(move |mut fields| {
                // Only the `ima` template's layout stores `n` without its NUL.
                for f in &mut fields {
                    if let (Field::N(n), false) = (f, t == "ima") {
                        n.push(0);
                    }
                }
                let r = Record::new(pcr, t, fields, HashAlgo::Sha1, Endian::Little).unwrap();
                if viol {
                    r.into_violation()
                } else {
                    r
                }
            })
    })
}

proptest! {
    #[test]
    fn binary_and_ascii_round_trip(recs in proptest::collection::vec(record(), 1..8)) {
        for endian in [Endian::Little, Endian::Big] {
            let mut bin = Vec::new();
            for r in &recs {
                binary::encode_record(r, endian, &mut bin);
            }
            let back = binary::parse_all(&bin, HashAlgo::Sha1, endian).unwrap();
            prop_assert_eq!(&back, &recs);
            let mut again = Vec::new();
            for r in &back {
                binary::encode_record(r, endian, &mut again);
            }
            prop_assert_eq!(&again, &bin);
        }
        let mut text = Vec::new();
        for r in &recs {
            ascii::format_record(r, Endian::Little, &mut text);
        }
        let back: Vec<Record> = ascii::AsciiReader::new(&text[..], Some(HashAlgo::Sha1))
            .endian(Endian::Little)
            .map(Result::unwrap)
            .collect();
        for (a, b) in back.iter().zip(&recs) {
            // Empty digest fields and sigs parse back as their empty form; otherwise equal.
            prop_assert_eq!(a.template_digest(HashAlgo::Sha256, Endian::Little).unwrap(),
                            b.template_digest(HashAlgo::Sha256, Endian::Little).unwrap());
            prop_assert_eq!(a, b);
        }
    }
}

/// A name ending in `\r` (the kernel writes it as it is, before the `\n`) is kept; a
/// list converted to CRLF line ends loses the extra `\r` of each line.
#[test]
fn trailing_carriage_return_is_a_name_byte_or_a_crlf_line_end() {
    let digest = [0x5a; 32];
    let crname = Record::ima_ng(10, HashAlgo::Sha256, &digest, b"/tmp/x\r").unwrap();
    let plain = Record::ima_ng(10, HashAlgo::Sha256, &digest, b"/tmp/x").unwrap();
    let mut text = Vec::new();
    ascii::format_record(&crname, Endian::native(), &mut text);
    assert!(text.ends_with(b"/tmp/x\r\n"));
    let parsed = ascii::parse_line(&text[..text.len() - 1], None, Endian::native()).unwrap();
    assert_eq!(parsed, crname);

    let mut text = Vec::new();
    ascii::format_record(&plain, Endian::native(), &mut text);
    text.insert(text.len() - 1, b'\r');
    let parsed = ascii::parse_line(&text[..text.len() - 1], None, Endian::native()).unwrap();
    assert_eq!(parsed, plain);

    // A CRLF list of both, read line by line.
    let mut list = Vec::new();
    for r in [&crname, &plain] {
        ascii::format_record(r, Endian::native(), &mut list);
        list.insert(list.len() - 1, b'\r');
    }
    let back: Vec<Record> = ascii::AsciiReader::new(&list[..], None)
        .endian(Endian::native())
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, [crname.clone(), plain.clone()]);

    // A violation cannot tell by its digest: its `\r` stays, as the kernel wrote it.
    let viol = crname.into_violation();
    let mut text = Vec::new();
    ascii::format_record(&viol, Endian::native(), &mut text);
    let parsed = ascii::parse_line(&text[..text.len() - 1], None, Endian::native()).unwrap();
    assert_eq!(parsed, viol);
}
