//! The measurement log: the kernel's measurement list, persisted.
//!
//! The file is exactly `binary_runtime_measurements` (SHA-1 template digests,
//! little-endian); records are encoded, parsed and replayed by `vigil_ima::list`.
//! Appends are durable when [`MeasurementLog::append`] returns: callers that append at
//! the same time share one `fsync` (group commit; the first waiter writes and syncs
//! everything queued, the others wait for it). Software PCR banks are extended per
//! record in log order, and duplicates (same PCR and template digest in the `ima_hash`
//! algorithm) are suppressed as the kernel does. On open, a torn last record is cut
//! off and the banks are rebuilt by replay, so every acknowledged record survives a
//! crash and nothing unacknowledged is half-present.
//!
//! One lock (`state`) guards the in-memory state; the file is written and synced by
//! the leader of a batch without it.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vigil_ima::list::binary::{encode_record, parse_all};
use vigil_ima::list::{
    ascii, BinaryReader, Endian, ExtendMode, PcrBanks, Record, Replay, TailPolicy, NUM_PCRS,
};
use vigil_ima::HashAlgo;

use crate::{Error, Result};

/// IMA's default PCR.
pub const IMA_PCR: u32 = 10;
const ENDIAN: Endian = Endian::Little;

/// Log settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Software PCR banks (sha1 is always kept: the file's digests are SHA-1).
    pub banks: Vec<HashAlgo>,
    /// `ima_hash`: the algorithm of the template digest used for duplicate suppression.
    pub ima_hash: HashAlgo,
    /// How long the leader of a commit waits for more records before syncing.
    pub group_commit_delay: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            banks: vec![HashAlgo::Sha1, HashAlgo::Sha256],
            ima_hash: HashAlgo::Sha256,
            group_commit_delay: Duration::ZERO,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Added as record number `index` (0-based) and durable.
    Added(u64),
    /// An identical record (PCR + template digest) is already in the log.
    Duplicate,
}

/// Where a reader of the ASCII list is ([`MeasurementLog::read_ascii`]).
#[derive(Debug, Default)]
pub struct AsciiReader {
    /// The size of the binary list it reads (the log as it was when it began).
    end: u64,
    /// The log file offset of the next record to format.
    next: u64,
    /// The list offset of `pending`'s first byte.
    start: u64,
    /// Formatted, not yet read past.
    pending: Vec<u8>,
}

/// Counters of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records (`runtime_measurements_count`).
    pub records: u64,
    /// Violation records (`violations`).
    pub violations: u64,
    /// fsyncs issued (≤ records thanks to group commit).
    pub syncs: u64,
    /// Bytes of a torn last record cut off when the log was opened.
    pub torn_bytes_cut: u64,
}

struct State {
    pending: Vec<u8>,
    next_seq: u64,
    synced_seq: u64,
    syncing: bool,
    failed: Option<String>,
    durable_len: u64,
    syncs: u64,
    torn_bytes_cut: u64,
    replay: Replay,
    seen: HashSet<(u32, Vec<u8>)>,
}

/// An append-only, crash-safe measurement list with software PCR banks.
pub struct MeasurementLog {
    path: PathBuf,
    file: File,
    config: LogConfig,
    state: Mutex<State>,
    synced: Condvar,
}

/// Split a persisted log into whole records: returns them and the length of the prefix
/// they occupy (what follows is a torn tail), or the offset and description of a record
/// that cannot be right.
pub fn scan(buf: &[u8]) -> std::result::Result<(Vec<Record>, usize), (u64, String)> {
    let mut out = Vec::new();
    let len = scan_each(buf, &mut |rec| out.push(rec))?;
    Ok((out, len))
}

/// [`scan`], handing each record to `each` instead of keeping them all.
fn scan_each(
    buf: &[u8],
    each: &mut dyn FnMut(Record),
) -> std::result::Result<usize, (u64, String)> {
    let mut rd = BinaryReader::new(buf, HashAlgo::Sha1, ENDIAN).tail_policy(TailPolicy::Stop);
    // The offset goes beside the description, not into it twice.
    let bad = |at: u64, e: vigil_ima::Error| match e {
        vigil_ima::Error::ListRecord {
            record,
            offset,
            msg,
        } => (offset, format!("record {record}: {msg}")),
        e => (at, e.to_string()),
    };
    loop {
        let at = rd.offset();
        match rd.next_raw() {
            Ok(Some(raw)) => each(
                raw.to_record(HashAlgo::Sha1, ENDIAN)
                    .map_err(|e| bad(raw.offset, e))?,
            ),
            Ok(None) => break,
            Err(e) => return Err(bad(at, e)),
        }
    }
    Ok(rd.offset() as usize)
}

/// The ASCII line of a record (without the newline), as securityfs prints it.
pub fn ascii_line(r: &Record) -> String {
    let mut out = Vec::new();
    ascii::format_record(r, ENDIAN, &mut out);
    out.pop();
    String::from_utf8_lossy(&out).into_owned()
}

/// Replay `records` into fresh PCR banks of `banks` (violations extend 0xFF…).
pub fn replay(records: &[Record], banks: &[HashAlgo]) -> Result<PcrBanks> {
    let mut r = Replay::new(banks, ExtendMode::PerBank);
    for rec in records {
        r.extend_record(rec, ENDIAN)?;
    }
    Ok(r.banks)
}

fn dedup_key(config: &LogConfig, rec: &Record) -> Result<(u32, Vec<u8>)> {
    Ok((rec.pcr, rec.template_digest(config.ima_hash, ENDIAN)?))
}

impl MeasurementLog {
    /// Open (creating) the log at `path`: cut a torn tail, replay the PCR banks.
    pub fn open(path: impl Into<PathBuf>, mut config: LogConfig) -> Result<MeasurementLog> {
        let path = path.into();
        if !config.banks.contains(&HashAlgo::Sha1) {
            config.banks.insert(0, HashAlgo::Sha1);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            // It names every file measured: root's, as securityfs has the lists.
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &path, e))?;
        let mut state = State {
            pending: Vec::new(),
            next_seq: 0,
            synced_seq: 0,
            syncing: false,
            failed: None,
            durable_len: 0,
            syncs: 0,
            torn_bytes_cut: 0,
            replay: Replay::new(&config.banks, ExtendMode::PerBank),
            seen: HashSet::new(),
        };
        // Replayed one record at a time: a long log is never held parsed whole.
        let mut failed = None;
        let mut take = |rec: Record| {
            let r = (|| -> Result<()> {
                state.replay.extend_record(&rec, ENDIAN)?;
                if !rec.is_violation() {
                    state.seen.insert(dedup_key(&config, &rec)?);
                }
                Ok(())
            })();
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        };
        let len = scan_each(&buf, &mut take).map_err(|(offset, what)| Error::Corrupt {
            path: path.clone(),
            offset,
            what,
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        state.durable_len = len as u64;
        if len < buf.len() {
            state.torn_bytes_cut = (buf.len() - len) as u64;
            file.set_len(len as u64)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        }
        Ok(MeasurementLog {
            path,
            file,
            config,
            state: Mutex::new(state),
            synced: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, f: &str) -> Error {
        Error::io("append", &self.path, std::io::Error::other(f.to_owned()))
    }

    /// Append `rec` (SHA-1 template digest, all zero for a violation); returns once it
    /// is durable.
    pub fn append(&self, rec: &Record) -> Result<Appended> {
        if rec.pcr as usize >= NUM_PCRS {
            return Err(Error::Config(format!(
                "PCR {} is not below {NUM_PCRS}",
                rec.pcr
            )));
        }
        if rec.digest_algo != HashAlgo::Sha1 {
            return Err(Error::Config(
                "log records carry SHA-1 template digests".into(),
            ));
        }
        let key = if rec.is_violation() {
            None
        } else {
            Some(dedup_key(&self.config, rec)?)
        };
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(self.failed(f));
        }
        if let Some(key) = key {
            if !st.seen.insert(key) {
                return Ok(Appended::Duplicate);
            }
        }
        st.replay.extend_record(rec, ENDIAN)?;
        let index = st.replay.records - 1;
        encode_record(rec, ENDIAN, &mut st.pending);
        st.next_seq += 1;
        let my_seq = st.next_seq;
        loop {
            if let Some(f) = &st.failed {
                return Err(self.failed(f));
            }
            if st.synced_seq >= my_seq {
                return Ok(Appended::Added(index));
            }
            if !st.syncing {
                st.syncing = true;
                if !self.config.group_commit_delay.is_zero() {
                    drop(st);
                    std::thread::sleep(self.config.group_commit_delay);
                    st = self.lock();
                }
                let batch = std::mem::take(&mut st.pending);
                let last = st.next_seq;
                drop(st);
                let r = (&self.file)
                    .write_all(&batch)
                    .and_then(|_| self.file.sync_data());
                st = self.lock();
                st.syncing = false;
                match r {
                    Ok(()) => {
                        st.synced_seq = last;
                        st.durable_len += batch.len() as u64;
                        st.syncs += 1;
                    }
                    Err(e) => st.failed = Some(format!("write/fsync failed: {e}")),
                }
                self.synced.notify_all();
            } else {
                st = self.synced.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// The software PCR banks.
    pub fn pcrs(&self) -> PcrBanks {
        self.lock().replay.banks.clone()
    }

    /// Counters.
    pub fn stats(&self) -> LogStats {
        let st = self.lock();
        LogStats {
            records: st.replay.records,
            violations: st.replay.violations,
            syncs: st.syncs,
            torn_bytes_cut: st.torn_bytes_cut,
        }
    }

    /// The durable records, read back from the file (readable while being written).
    pub fn records(&self) -> Result<Vec<Record>> {
        let len = self.lock().durable_len;
        let mut f = File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        let mut buf = Vec::with_capacity(len as usize);
        (&mut f)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &self.path, e))?;
        Ok(parse_all(&buf, HashAlgo::Sha1, ENDIAN)?)
    }

    fn bank_record(rec: &Record, bank: HashAlgo) -> Result<Record> {
        let mut r = rec.clone();
        if bank != HashAlgo::Sha1 {
            r.digest_algo = bank;
            r.digest = if rec.is_violation() {
                vec![0; bank.digest_len()]
            } else {
                rec.template_digest(bank, ENDIAN)?
            };
        }
        Ok(r)
    }

    /// The size of the durable part of the log: of the sha1 binary list now.
    pub fn durable_len(&self) -> u64 {
        self.lock().durable_len
    }

    /// Up to `len` bytes at `offset` of the sha1 binary list (`binary_runtime_measurements`)
    /// as it was when it was `end` bytes long ([`Self::durable_len`]): the log file is
    /// that list, so it is read from the file, not built in memory.
    pub fn read_binary(&self, end: u64, offset: u64, len: usize) -> Result<Vec<u8>> {
        let len = end.saturating_sub(offset).min(len as u64) as usize;
        let mut buf = vec![0u8; len];
        let n = rustix::io::pread(&self.file, &mut buf, offset)
            .map_err(|e| Error::io("read", &self.path, e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// A reader of the sha1 ASCII list (`ascii_runtime_measurements`) as it is now.
    pub fn ascii_reader(&self) -> AsciiReader {
        AsciiReader {
            end: self.durable_len(),
            next: 0,
            start: 0,
            pending: Vec::new(),
        }
    }

    /// Up to `len` bytes at `offset` of the ASCII list `r` reads. The records are read
    /// from the log file and formatted as the reading goes: `r` keeps only what was
    /// formatted and not yet read past (reading backwards starts again from the top):
    /// the lines of the 256 KiB of records it read last, about twice that.
    pub fn read_ascii(&self, r: &mut AsciiReader, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset < r.start {
            *r = AsciiReader {
                end: r.end,
                ..AsciiReader::default()
            };
        }
        let want = offset.saturating_add(len as u64);
        let mut chunk = 256 << 10;
        while r.start + (r.pending.len() as u64) < want && r.next < r.end {
            let buf = self.read_binary(r.end, r.next, chunk)?;
            let (recs, used) = scan(&buf).map_err(|(at, what)| Error::Corrupt {
                path: self.path.clone(),
                offset: r.next + at,
                what,
            })?;
            if used == 0 {
                if buf.len() < chunk {
                    break; // (the durable part holds whole records only)
                }
                chunk *= 2; // a record larger than a chunk
                continue;
            }
            for rec in &recs {
                ascii::format_record(rec, ENDIAN, &mut r.pending);
            }
            r.next += used as u64;
            let past = (offset.saturating_sub(r.start) as usize).min(r.pending.len());
            r.pending.drain(..past);
            r.start += past as u64;
        }
        let from = (offset.saturating_sub(r.start) as usize).min(r.pending.len());
        let to = from.saturating_add(len).min(r.pending.len());
        Ok(r.pending[from..to].to_vec())
    }

    /// Write the list as `binary_runtime_measurements_<bank>` (sha1: the legacy file).
    pub fn export_binary(&self, bank: HashAlgo, out: &mut dyn Write) -> Result<()> {
        let mut buf = Vec::new();
        for rec in self.records()? {
            encode_record(&Self::bank_record(&rec, bank)?, ENDIAN, &mut buf);
        }
        out.write_all(&buf)
            .map_err(|e| Error::io("write", "<output>", e))
    }

    /// Write the list as `ascii_runtime_measurements_<bank>`.
    pub fn export_ascii(&self, bank: HashAlgo, out: &mut dyn Write) -> Result<()> {
        let mut buf = Vec::new();
        for rec in self.records()? {
            ascii::format_record(&Self::bank_record(&rec, bank)?, ENDIAN, &mut buf);
        }
        out.write_all(&buf)
            .map_err(|e| Error::io("write", "<output>", e))
    }
}
