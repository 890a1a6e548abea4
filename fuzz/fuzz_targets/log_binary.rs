//! Binary measurement lists: parsing never panics, whatever parses re-encodes to the
//! same bytes, and the raw replay agrees with the decoded one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ima::list::{binary, BinaryReader, Endian, ExtendMode, Replay, TailPolicy};
use vigil_ima::HashAlgo;

fuzz_target!(|data: &[u8]| {
    let (algo, endian) = match data.first().map(|b| b % 4) {
        Some(0) => (HashAlgo::Sha256, Endian::Little),
        Some(1) => (HashAlgo::Sha1, Endian::Big),
        _ => (HashAlgo::Sha1, Endian::Little),
    };
    let data = data.get(1..).unwrap_or_default();
    let mut rd = BinaryReader::new(data, algo, endian).tail_policy(TailPolicy::Stop);
    let mut out = Vec::new();
    let mut raw_replay = Replay::new(&[HashAlgo::Sha1, HashAlgo::Sha256], ExtendMode::PerBank);
    let mut rec_replay = raw_replay.clone();
    loop {
        let raw = match rd.next_raw() {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        let Ok(rec) = raw.to_record(algo, endian) else { break };
        // Signature checks never panic on whatever the fields hold.
        let _ = vigil_ima::list::check_signatures(&rec, &vigil_ima::KeyRing::new(), endian);
        raw_replay.extend_raw(&raw, algo, endian).unwrap();
        rec_replay.extend_record(&rec, endian).unwrap();
        binary::encode_record(&rec, endian, &mut out);
    }
    assert_eq!(raw_replay.banks, rec_replay.banks);
    assert_eq!(&out[..], &data[..out.len()]);
});
