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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dump_format() {
        let text = "pcrread: tsspcrread -halg sha1\n\
                    0: 92c1850372e9493929aa9a2e9ea953e21ff1be45\n\
                    PCR-01: 41 C5 40 39 CA 27 50 EA 60 D8 AB 7C 48 B1 42 B1 0A BA 56 67\n \
                    PCR 02: b2 a8 3b 0e bf 2f 83 74 29 9a 5b 2b dc fc 31 ea 95 5a d7 36 \n\
                    sha1 PCR-03: b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236\n\
                    4 : 0x4C1A19AAD90F770956FF5EE00334A2D548B1A350\n\
                    not a value: at all\n";
        let v = parse_pcr_text(text).unwrap();
        assert_eq!(
            v.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            hex::encode(&v[1].1),
            "41c54039ca2750ea60d8ab7c48b142b10aba5667"
        );
        assert_eq!(
            hex::encode(&v[4].1),
            "4c1a19aad90f770956ff5ee00334a2d548b1a350"
        );
        let mut bank = Bank::new(crate::HashAlgo::Sha1);
        assert_eq!(load_bank(&mut bank, text).unwrap(), 0b11111);
        let mut bank256 = Bank::new(crate::HashAlgo::Sha256);
        assert!(
            load_bank(&mut bank256, text).is_err(),
            "20-byte values in a sha256 bank"
        );
        assert!(parse_pcr_text("24: 00").is_err());
        assert!(parse_pcr_text("3: zz")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }
}
