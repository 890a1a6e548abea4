//! TCG boot event logs (`/sys/kernel/security/tpm0/binary_bios_measurements`): the
//! TPM 1.2 SHA-1 format and the TPM 2.0 crypto-agile format; PCR replay of every bank
//! they carry and the IMA `boot_aggregate` computed from PCR values (§1.8).

use crate::list::{Bank, PcrBanks, NUM_PCRS};
use crate::{Error, HashAlgo, Hasher, Result};

/// `EV_NO_ACTION`: events that are not extended into any PCR.
pub const EV_NO_ACTION: u32 = 0x3;
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";

/// One event of a boot log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 0-based event number.
    pub index: u64,
    /// Byte offset in the log.
    pub offset: u64,
    /// PCR index.
    pub pcr: u32,
    /// Event type (`EV_POST_CODE`, `EV_EFI_VARIABLE_BOOT`…).
    pub event_type: u32,
    /// One digest per bank the event carries.
    pub digests: Vec<(HashAlgo, Vec<u8>)>,
    /// Event data.
    pub data: Vec<u8>,
}

/// A parsed boot event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    /// Whether the log is in the TPM 2.0 crypto-agile format (else TPM 1.2 SHA-1).
    pub crypto_agile: bool,
    /// The banks the log declares (sha1 only for TPM 1.2 logs).
    pub algos: Vec<HashAlgo>,
    /// The events, including the header event.
    pub events: Vec<Event>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    event: u64,
    start: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: String) -> Error {
        Error::EventLog {
            event: self.event,
            offset: self.start as u64,
            msg,
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {} but only {left} remain",
                self.pos
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
}

impl EventLog {
    /// Parse a whole log (little-endian, as the firmware and kernel export it). An
    /// empty log is an error: it would replay to all-zero PCRs.
    pub fn parse(data: &[u8]) -> Result<EventLog> {
        if data.is_empty() {
            return Err(Error::EventLog {
                event: 0,
                offset: 0,
                msg: "the log is empty (no events)".into(),
            });
        }
        let mut c = Cursor {
            data,
            pos: 0,
            event: 0,
            start: 0,
        };
        let mut events = Vec::new();
        let mut algos = vec![HashAlgo::Sha1];
        let mut sizes: Vec<(u16, HashAlgo, usize)> = Vec::new();
        let mut crypto_agile = false;
        while c.pos < data.len() {
            c.start = c.pos;
            let pcr = c.u32("PCR index")?;
            let event_type = c.u32("event type")?;
            let digests = if c.event == 0 || !crypto_agile {
                vec![(HashAlgo::Sha1, c.take(20, "SHA-1 digest")?.to_vec())]
            } else {
                let count = c.u32("digest count")?;
                if count as usize > sizes.len() {
                    return Err(c.err(format!(
                        "{count} digests, but the log declares {} banks",
                        sizes.len()
                    )));
                }
                let mut v = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let id = c.u16("digest algorithm")?;
                    let &(_, algo, len) =
                        sizes.iter().find(|(i, _, _)| *i == id).ok_or_else(|| {
                            c.err(format!("digest of undeclared algorithm 0x{id:04x}"))
                        })?;
                    v.push((algo, c.take(len, "digest")?.to_vec()));
                }
                v
            };
            let size = c.u32("event size")? as usize;
            let edata = c.take(size, "event data")?.to_vec();
            if pcr as usize >= NUM_PCRS && event_type != EV_NO_ACTION {
                return Err(c.err(format!("PCR index {pcr} is not below {NUM_PCRS}")));
            }
            if c.event == 0 && event_type == EV_NO_ACTION && edata.starts_with(SPEC_ID_SIGNATURE) {
                sizes = parse_spec_id(&edata).map_err(|m| c.err(m))?;
                crypto_agile = true;
                algos = sizes.iter().map(|&(_, a, _)| a).collect();
            }
            events.push(Event {
                index: c.event,
                offset: c.start as u64,
                pcr,
                event_type,
                digests,
                data: edata,
            });
            c.event += 1;
        }
        Ok(EventLog {
            crypto_agile,
            algos,
            events,
        })
    }

    /// Replay the log into PCR banks of every algorithm it declares. A
    /// `StartupLocality` event sets PCR 0's initial value to the locality.
    pub fn replay(&self) -> Result<PcrBanks> {
        self.replay_with(false)
    }

    /// Replay as [`EventLog::replay`]; with `extend_no_action`, a TPM 1.2 log's
    /// `EV_NO_ACTION` events are extended too, as `evmctl ima_boot_aggregate` does.
    pub fn replay_with(&self, extend_no_action: bool) -> Result<PcrBanks> {
        let extend_no_action = extend_no_action && !self.crypto_agile;
        let mut banks = PcrBanks::new(&self.algos);
        for (i, ev) in self.events.iter().enumerate() {
            if ev.event_type == EV_NO_ACTION && !extend_no_action {
                if ev.data.len() >= 17 && ev.data.starts_with(STARTUP_LOCALITY) {
                    for b in &mut banks.banks {
                        let last = b.pcrs[0].len() - 1;
                        b.pcrs[0].fill(0);
                        b.pcrs[0][last] = ev.data[16];
                    }
                }
                continue;
            }
            if i == 0 && self.crypto_agile {
                continue;
            }
            for (algo, d) in &ev.digests {
                if let Some(b) = banks.get_mut(*algo) {
                    b.extend(ev.pcr as usize, d)?;
                }
            }
        }
        Ok(banks)
    }
}

fn parse_spec_id(d: &[u8]) -> std::result::Result<Vec<(u16, HashAlgo, usize)>, String> {
    // signature[16] platformClass u32, minor u8, major u8, errata u8, uintnSize u8,
    // numberOfAlgorithms u32, {algId u16, digestSize u16}[n], vendorInfoSize u8, …
    let short = || "Spec ID event too short".to_string();
    let n = u32::from_le_bytes(d.get(24..28).ok_or_else(short)?.try_into().expect("4")) as usize;
    if n == 0 || n > (d.len().saturating_sub(28)) / 4 {
        return Err(format!("Spec ID event declares {n} algorithms"));
    }
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let p = 28 + 4 * i;
        let id = u16::from_le_bytes([d[p], d[p + 1]]);
        let size = u16::from_le_bytes([d[p + 2], d[p + 3]]) as usize;
        let algo = HashAlgo::from_tpm_alg_id(id)
            .ok_or_else(|| format!("unknown TPM algorithm 0x{id:04x} in the Spec ID event"))?;
        if algo.digest_len() != size {
            return Err(format!(
                "Spec ID event gives {algo} a digest size of {size}"
            ));
        }
        v.push((id, algo, size));
    }
    Ok(v)
}

/// Which PCRs a `boot_aggregate` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateRange {
    /// PCR 0–7: SHA-1 always; every bank on kernels before 5.8 (and some stable ones).
    Pcr0To7,
    /// PCR 0–9: non-SHA-1 banks on current kernels.
    Pcr0To9,
}

impl AggregateRange {
    /// What current kernels use for a bank of `algo`.
    pub fn kernel_default(algo: HashAlgo) -> AggregateRange {
        if algo == HashAlgo::Sha1 {
            AggregateRange::Pcr0To7
        } else {
            AggregateRange::Pcr0To9
        }
    }

    /// The number of PCRs covered.
    pub fn count(self) -> usize {
        match self {
            AggregateRange::Pcr0To7 => 8,
            AggregateRange::Pcr0To9 => 10,
        }
    }
}

/// The `boot_aggregate` of a bank: H(PCR0 ‖ … ‖ PCR7 or PCR9).
pub fn boot_aggregate(bank: &Bank, range: AggregateRange) -> Result<Vec<u8>> {
    let mut h = Hasher::new(bank.algo)?;
    for p in &bank.pcrs[..range.count()] {
        h.update(p);
    }
    Ok(h.finalize())
}
