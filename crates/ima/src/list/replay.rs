//! PCR replay (§1.9): PCR banks, the extend rule with violations, the pre-5.8 "SHA-1
//! zero-padded" mode, and a resumable replay state for incremental attestation.

use serde::{Deserialize, Serialize};

use super::{binary::RawRecord, Endian, Record};
use crate::{Error, HashAlgo, Hasher, Result};

/// Number of TPM PCRs.
pub const NUM_PCRS: usize = 24;
/// The largest digest of any supported bank.
const MAX_DIGEST: usize = 64;

/// One PCR bank: an algorithm and 24 PCR values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BankRepr")]
pub struct Bank {
    /// The bank's hash algorithm.
    #[serde(with = "serde_algo")]
    pub algo: HashAlgo,
    /// PCR values, 24 of the algorithm's digest length.
    #[serde(with = "serde_hex_vec")]
    pub pcrs: Vec<Vec<u8>>,
}

impl Bank {
    /// A bank with every PCR zero (the reset value of PCR 0–16 and 23).
    pub fn new(algo: HashAlgo) -> Bank {
        Bank {
            algo,
            pcrs: vec![vec![0; algo.digest_len()]; NUM_PCRS],
        }
    }

    /// PCR `i`.
    pub fn pcr(&self, i: usize) -> &[u8] {
        &self.pcrs[i]
    }

    /// Set PCR `i`, checking the length.
    pub fn set(&mut self, i: usize, value: &[u8]) -> Result<()> {
        if i >= NUM_PCRS || value.len() != self.algo.digest_len() {
            return Err(Error::ListField {
                field: "PCR value",
                msg: format!(
                    "PCR {i} of bank {}: {} bytes given, {} expected",
                    self.algo,
                    value.len(),
                    self.algo.digest_len()
                ),
            });
        }
        self.pcrs[i].copy_from_slice(value);
        Ok(())
    }

    /// TPM2_PCR_Extend: `pcr[i] = H(pcr[i] ‖ digest)`; `digest` must have the bank's
    /// length.
    pub fn extend(&mut self, i: usize, digest: &[u8]) -> Result<()> {
        if i >= NUM_PCRS || digest.len() != self.algo.digest_len() {
            return Err(Error::ListField {
                field: "PCR extend",
                msg: format!(
                    "PCR {i} of bank {} with a {}-byte digest",
                    self.algo,
                    digest.len()
                ),
            });
        }
        let mut h = Hasher::new(self.algo)?;
        h.update(&self.pcrs[i]);
        h.update(digest);
        h.finalize_into(&mut self.pcrs[i]);
        Ok(())
    }
}

#[derive(Deserialize)]
struct BankRepr {
    #[serde(with = "serde_algo")]
    algo: HashAlgo,
    #[serde(with = "serde_hex_vec")]
    pcrs: Vec<Vec<u8>>,
}

impl TryFrom<BankRepr> for Bank {
    type Error = String;
    fn try_from(r: BankRepr) -> std::result::Result<Bank, String> {
        if r.pcrs.len() != NUM_PCRS || r.pcrs.iter().any(|p| p.len() != r.algo.digest_len()) {
            return Err(format!(
                "bank {} needs {NUM_PCRS} values of {} bytes",
                r.algo,
                r.algo.digest_len()
            ));
        }
        Ok(Bank {
            algo: r.algo,
            pcrs: r.pcrs,
        })
    }
}

/// A set of PCR banks (serialized as the list of banks).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PcrBanks {
    /// The banks, in the order they were asked for.
    pub banks: Vec<Bank>,
}

impl PcrBanks {
    /// Zeroed banks of the given algorithms (duplicates are dropped).
    pub fn new(algos: &[HashAlgo]) -> PcrBanks {
        let mut banks: Vec<Bank> = Vec::new();
        for &a in algos {
            if !banks.iter().any(|b| b.algo == a) {
                banks.push(Bank::new(a));
            }
        }
        PcrBanks { banks }
    }

    /// The bank of `algo`.
    pub fn get(&self, algo: HashAlgo) -> Option<&Bank> {
        self.banks.iter().find(|b| b.algo == algo)
    }

    /// The bank of `algo`, mutable.
    pub fn get_mut(&mut self, algo: HashAlgo) -> Option<&mut Bank> {
        self.banks.iter_mut().find(|b| b.algo == algo)
    }

    /// The bank of `algo`, created zeroed if absent.
    pub fn bank_mut(&mut self, algo: HashAlgo) -> &mut Bank {
        if let Some(i) = self.banks.iter().position(|b| b.algo == algo) {
            &mut self.banks[i]
        } else {
            self.banks.push(Bank::new(algo));
            self.banks.last_mut().expect("just pushed")
        }
    }
}

/// What is extended for each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtendMode {
    /// Kernels ≥ 5.8: each bank gets the template data hashed with its own algorithm;
    /// a violation extends 0xFF of the bank's length.
    PerBank,
    /// Kernels < 5.8: every bank gets the SHA-1 template digest zero-padded to its
    /// length; a violation extends 20 × 0xFF, zero-padded.
    Sha1Padded,
}

/// What one record did to the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStep {
    /// The record was a violation (all-zero template digest; 0xFF… extended).
    pub violation: bool,
    /// Whether the template digest in the list equals the one recomputed from the
    /// template data (`None` for violations, whose digest is zero by definition).
    pub digest_ok: Option<bool>,
}

/// A PCR replay in progress: banks plus where in the list it stands. Serialize it to
/// persist the state; feed it the rest of the list later to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The banks being computed.
    pub banks: PcrBanks,
    /// How records are extended.
    pub mode: ExtendMode,
    /// Records replayed so far.
    pub records: u64,
    /// Bytes of the list consumed so far (offset of the next record).
    pub offset: u64,
    /// Violation records seen.
    pub violations: u64,
    /// Records whose template digest did not match their data.
    pub bad_digests: u64,
    /// Bit `i` set: PCR `i` was extended by some record.
    pub touched: u32,
    /// The last record replayed, for a resumed replay to check that it reads the same
    /// list (none in states saved before this was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<RecordMark>,
}

/// A record of a list: where it starts and a SHA-256 of its PCR, template digest, name
/// and data. A replay resumed at [`Replay::offset`] checks that the list still holds
/// its last record there, i.e. that it is the same list (or a longer version of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMark {
    /// Byte offset of the record.
    pub offset: u64,
    /// SHA-256 of the record's parts, hex.
    pub sha256: String,
}

impl RecordMark {
    /// The mark of the record at `offset` with these parts (as a binary list holds
    /// them; `data` is the template data after the name).
    pub fn new(
        offset: u64,
        pcr: u32,
        digest: &[u8],
        template_name: &str,
        data: &[u8],
    ) -> Result<RecordMark> {
        let mut h = Hasher::new(HashAlgo::Sha256)?;
        h.update(&pcr.to_le_bytes());
        for part in [digest, template_name.as_bytes(), data] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Ok(RecordMark {
            offset,
            sha256: hex::encode(h.finalize()),
        })
    }
}

impl Replay {
    /// A replay from zeroed PCRs over the banks `algos`.
    pub fn new(algos: &[HashAlgo], mode: ExtendMode) -> Replay {
        Replay::from_banks(PcrBanks::new(algos), mode)
    }

    /// A replay starting from given PCR values (e.g. a verified earlier state).
    pub fn from_banks(banks: PcrBanks, mode: ExtendMode) -> Replay {
        Replay {
            banks,
            mode,
            records: 0,
            offset: 0,
            violations: 0,
            bad_digests: 0,
            touched: 0,
            last: None,
        }
    }

    /// Extend a record as read from a binary list.
    pub fn extend_raw(
        &mut self,
        r: &RawRecord<'_>,
        digest_algo: HashAlgo,
        endian: Endian,
    ) -> Result<ReplayStep> {
        let step = self.extend_data(
            r.pcr,
            r.digest,
            digest_algo,
            r.template_name,
            r.data,
            endian,
        )?;
        self.offset = r.offset + record_len(r) as u64;
        Ok(step)
    }

    /// Extend a decoded record (e.g. one parsed from an ASCII list).
    pub fn extend_record(&mut self, r: &Record, endian: Endian) -> Result<ReplayStep> {
        let mut data = Vec::new();
        r.encode_data(endian, &mut data);
        self.extend_data(
            r.pcr,
            &r.digest,
            r.digest_algo,
            &r.template_name,
            &data,
            endian,
        )
    }

    /// Extend a record whose SHA-1 template digest is already known (`None` for a
    /// violation) into every bank, in [`ExtendMode::Sha1Padded`] fashion whatever the
    /// replay's mode: for verifying a legacy list both ways with one hash per record.
    pub fn extend_sha1_padded(&mut self, pcr: u32, sha1: Option<&[u8]>) -> Result<()> {
        let pcr = pcr as usize;
        if pcr >= NUM_PCRS || sha1.is_some_and(|d| d.len() != 20) {
            return Err(Error::ListField {
                field: "PCR extend",
                msg: format!("PCR {pcr} or SHA-1 digest length"),
            });
        }
        let mut buf = [0u8; MAX_DIGEST];
        for bank in &mut self.banks.banks {
            let len = bank.algo.digest_len();
            let e = &mut buf[..len];
            e.fill(0);
            let n = 20.min(len);
            match sha1 {
                Some(d) => e[..n].copy_from_slice(&d[..n]),
                None => e[..n].fill(0xff),
            }
            bank.extend(pcr, e)?;
        }
        self.records += 1;
        self.touched |= 1 << pcr;
        if sha1.is_none() {
            self.violations += 1;
        }
        Ok(())
    }

    /// Extend one record given as its parts: PCR, logged template digest (of
    /// `digest_algo`), template name and template data as in the binary list.
    pub fn extend_data(
        &mut self,
        pcr: u32,
        logged: &[u8],
        digest_algo: HashAlgo,
        template_name: &str,
        data: &[u8],
        endian: Endian,
    ) -> Result<ReplayStep> {
        let pcr = pcr as usize;
        if pcr >= NUM_PCRS {
            return Err(Error::ListField {
                field: "PCR index",
                msg: format!("{pcr} is not below {NUM_PCRS}"),
            });
        }
        let violation = super::is_zero(logged);
        let mut digest_ok = None;
        let mut buf = [0u8; MAX_DIGEST];
        let mut sha1 = [0u8; 20];
        if !violation {
            let mut checked = false;
            if self.mode == ExtendMode::Sha1Padded || digest_algo == HashAlgo::Sha1 {
                super::hash_template_data(HashAlgo::Sha1, template_name, data, endian, &mut sha1)?;
                if digest_algo == HashAlgo::Sha1 {
                    digest_ok = Some(sha1[..] == *logged);
                    checked = true;
                }
            }
            if !checked {
                let out = &mut buf[..digest_algo.digest_len()];
                super::hash_template_data(digest_algo, template_name, data, endian, out)?;
                digest_ok = Some(*out == *logged);
            }
            if digest_ok == Some(false) {
                self.bad_digests += 1;
            }
        } else {
            self.violations += 1;
        }
        for bank in &mut self.banks.banks {
            let len = bank.algo.digest_len();
            let e = &mut buf[..len];
            match (violation, self.mode) {
                (true, ExtendMode::PerBank) => e.fill(0xff),
                (true, ExtendMode::Sha1Padded) => {
                    e.fill(0);
                    e[..20.min(len)].fill(0xff);
                }
                (false, ExtendMode::Sha1Padded) => {
                    e.fill(0);
                    let n = 20.min(len);
                    e[..n].copy_from_slice(&sha1[..n]);
                }
                (false, ExtendMode::PerBank) => {
                    if bank.algo == digest_algo && digest_ok == Some(true) {
                        e.copy_from_slice(logged);
                    } else {
                        super::hash_template_data(bank.algo, template_name, data, endian, e)?;
                    }
                }
            }
            bank.extend(pcr, e)?;
        }
        self.records += 1;
        self.touched |= 1 << pcr;
        Ok(ReplayStep {
            violation,
            digest_ok,
        })
    }
}

/// Size of a binary record.
pub(crate) fn record_len(r: &RawRecord<'_>) -> usize {
    let head = 4 + r.digest.len() + 4 + r.template_name.len();
    if r.template_name == super::IMA_TEMPLATE {
        head + r.data.len()
    } else {
        head + 4 + r.data.len()
    }
}

/// Serde for a [`HashAlgo`] as its kernel name.
pub mod serde_algo {
    use super::HashAlgo;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as the kernel name.
    pub fn serialize<S: Serializer>(a: &HashAlgo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.name())
    }

    /// Deserialize from any known name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashAlgo, D::Error> {
        let s = String::deserialize(d)?;
        HashAlgo::from_name(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for a list of byte strings as lowercase hex strings.
pub mod serde_hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize each entry as hex.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    /// Deserialize hex strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}
