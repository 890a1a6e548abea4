//! TCG boot event logs and PCR text files: parsing and replay never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ima::list::Bank;
use vigil_ima::tcg::{boot_aggregate, AggregateRange, EventLog};
use vigil_ima::{pcrs, HashAlgo};

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = EventLog::parse(data) {
        for extend_all in [false, true] {
            if let Ok(banks) = log.replay_with(extend_all) {
                for b in &banks.banks {
                    let _ = boot_aggregate(b, AggregateRange::Pcr0To9);
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut bank = Bank::new(HashAlgo::Sha1);
        let _ = pcrs::load_bank(&mut bank, text);
    }
});
