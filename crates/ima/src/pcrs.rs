//! PCR values from text: evmctl's `--pcrs` files and the TPM 1.2 sysfs `pcrs` file
//! (`PCR-00: hex`), `tsspcrread`/tpm2-tools style `0: hex` or `0 : 0xHEX` lines, and
//! IBM TSS dumps (` PCR 10: 9b e6 …`), and `vigil log replay` output (`sha1 PCR-10: hex`). Lines that carry no PCR value are skipped.

use crate::list::{Bank, NUM_PCRS};
use crate::{Error, Result};

/// One PCR value of a text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrLine {
    /// The bank named on the line (`sha1 PCR-10: …`), if any.
    pub bank: Option<crate::HashAlgo>,
    /// PCR index.
    pub index: usize,
    /// Value.
    pub value: Vec<u8>,
}

/// Parse PCR lines, in file order.
pub fn parse_pcr_text(text: &str) -> Result<Vec<PcrLine>> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let Some((left, right)) = line.split_once(':') else {
            continue;
        };
        // An optional bank name in front (`sha1 PCR-10: …`, as `vigil log replay` prints).
        let left = left.trim();
        let (bank, left) = match left.split_once(' ') {
            Some((bank, rest)) if crate::HashAlgo::from_name(bank).is_ok() => {
                (crate::HashAlgo::from_name(bank).ok(), rest.trim())
            }
            _ => (None, left),
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
        out.push(PcrLine {
            bank,
            index: idx,
            value,
        });
    }
    Ok(out)
}

/// Fill `bank` with the values of a PCR text file; returns which PCRs were given
/// (bit mask). Lines naming another bank are skipped; a value of the wrong length for
/// the bank is an error.
pub fn load_bank(bank: &mut Bank, text: &str) -> Result<u32> {
    let mut mask = 0u32;
    for l in parse_pcr_text(text)? {
        if l.bank.is_some_and(|b| b != bank.algo) {
            continue;
        }
        bank.set(l.index, &l.value)?;
        mask |= 1 << l.index;
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
            v.iter().map(|l| l.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            hex::encode(&v[1].value),
            "41c54039ca2750ea60d8ab7c48b142b10aba5667"
        );
        assert_eq!(
            hex::encode(&v[4].value),
            "4c1a19aad90f770956ff5ee00334a2d548b1a350"
        );
        assert_eq!(v[3].bank, Some(crate::HashAlgo::Sha1));
        // Lines of other banks are skipped.
        let mut b = Bank::new(crate::HashAlgo::Sha256);
        let two = "sha1 PCR-10: 9be6bac02bf18d09d17e726c2df00bca4e8831ea\n\
                   sha256 PCR-10: 7fac48c81837d6d29046008aef0cdad8c2745cc98c3340cbba9bfdf39b4124b8\n";
        assert_eq!(load_bank(&mut b, two).unwrap(), 1 << 10);
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
