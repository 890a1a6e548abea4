//! PCR values from text: evmctl's `--pcrs` files and the TPM 1.2 sysfs `pcrs` file
//! (`PCR-00: hex`), `tsspcrread`/tpm2-tools style `0: hex` or `0 : 0xHEX` lines, and
//! IBM TSS dumps (` PCR 10: 9b e6 …`), and `vigil log replay` output (`sha1 PCR-10: hex`). Lines that carry no PCR value are skipped.

use crate::list::{Bank, NUM_PCRS};
use crate::{Error, Result};

/// Parse PCR lines into `(index, value)` pairs, in file order.
pub fn parse_pcr_text(text: &str) -> Result<Vec<(usize, Vec<u8>)>> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let Some((left, right)) = line.split_once(':') else {
            continue;
        };
        // An optional bank name in front (`sha1 PCR-10: …`, as `vigil log replay` prints).
        let left = left.trim();
        let left = match left.split_once(' ') {
            Some((bank, rest)) if crate::HashAlgo::from_name(bank).is_ok() => rest.trim(),
            _ => left,
        };
        let idx = left
            .strip_prefix("PCR")
            .map(|s| s.trim_start_matches(['-', ' ', '_']))
            .unwrap_or(left);
        let Ok(idx) = idx.trim().parse::<usize>() else {
            continue;
        };
        let hexpart: String = right
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let value = hex::decode(&hexpart).map_err(|_| Error::PcrText {
            line: no as u64 + 1,
            msg: format!("PCR {idx} value {:?} is not hex", right.trim()),
        })?;
        if idx >= NUM_PCRS {
            return Err(Error::PcrText {
                line: no as u64 + 1,
                msg: format!("PCR index {idx} is not below {NUM_PCRS}"),
            });
        }
        out.push((idx, value));
    }
    Ok(out)
}

/// Fill `bank` with the values of a PCR text file; returns which PCRs were given
/// (bit mask). A value of the wrong length for the bank is an error.
pub fn load_bank(bank: &mut Bank, text: &str) -> Result<u32> {
    let mut mask = 0u32;
    for (i, v) in parse_pcr_text(text)? {
        bank.set(i, &v)?;
        mask |= 1 << i;
    }
    if mask == 0 {
        return Err(Error::PcrText {
            line: 0,
            msg: "no PCR values found".into(),
        });
    }
    Ok(mask)
}
