//! The measurement log: the kernel's measurement list, persisted.
//!
//! The file is exactly `binary_runtime_measurements` (SHA-1 template digests,
//! little-endian). Appends are durable when [`MeasurementLog::append`] returns: callers
//! that append at the same time share one `fsync` (group commit; the first waiter
//! writes and syncs everything queued, the others wait for it). Software PCR banks
//! are extended per record in log order, and duplicates (same PCR and template digest
//! in the `ima_hash` algorithm) are suppressed as the kernel does. On open, a torn last
//! record is cut off and the banks are rebuilt by replay, so every acknowledged
//! record survives a crash and nothing unacknowledged is half-present.
//!
//! One lock (`state`) guards the in-memory state; the file is written and synced by
//! the leader of a batch without it.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vigil_ima::HashAlgo;

use crate::template::{parse_record, Record};
use crate::{Error, Result};

/// IMA's default PCR.
pub const IMA_PCR: u32 = 10;

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

/// Counters of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records (`runtime_measurements_count`).
    pub records: u64,
    /// Violation records (`violations`).
    pub violations: u64,
    /// fsyncs issued (≤ records thanks to group commit).
    pub syncs: u64,
    /// Records cut off as a torn tail when the log was opened.
    pub torn_bytes_cut: u64,
}

struct State {
    pending: Vec<u8>,
    next_seq: u64,
    synced_seq: u64,
    syncing: bool,
    failed: Option<String>,
    durable_len: u64,
    stats: LogStats,
    banks: Vec<(HashAlgo, BTreeMap<u32, Vec<u8>>)>,
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

fn extend(
    bank: HashAlgo,
    pcrs: &mut BTreeMap<u32, Vec<u8>>,
    pcr: u32,
    rec_data: &[u8],
    violation: bool,
) -> Result<()> {
    let len = bank.digest_len();
    let e = if violation {
        vec![0xff; len]
    } else {
        bank.digest(rec_data)?
    };
    let cur = pcrs.entry(pcr).or_insert_with(|| vec![0; len]);
    let mut h = vigil_ima::Hasher::new(bank)?;
    h.update(cur);
    h.update(&e);
    *cur = h.finalize();
    Ok(())
}

impl MeasurementLog {
    /// Open (creating) the log at `path`: cut a torn tail, replay the PCR banks.
    pub fn open(path: impl Into<PathBuf>, mut config: LogConfig) -> Result<MeasurementLog> {
        let path = path.into();
        if !config.banks.contains(&HashAlgo::Sha1) {
            config.banks.insert(0, HashAlgo::Sha1);
        }
        config.banks.dedup();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
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
            stats: LogStats::default(),
            banks: config.banks.iter().map(|&b| (b, BTreeMap::new())).collect(),
            seen: HashSet::new(),
        };
        let (recs, off) = scan(&buf).map_err(|(offset, what)| Error::Corrupt {
            path: path.clone(),
            offset,
            what,
        })?;
        for rec in &recs {
            Self::account(&config, &mut state, rec)?;
        }
        if off < buf.len() {
            state.stats.torn_bytes_cut = (buf.len() - off) as u64;
            file.set_len(off as u64)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        }
        state.durable_len = off as u64;
        Ok(MeasurementLog {
            path,
            file,
            config,
            state: Mutex::new(state),
            synced: Condvar::new(),
        })
    }

    fn account(config: &LogConfig, st: &mut State, rec: &Record) -> Result<()> {
        let violation = rec.is_violation();
        for (bank, pcrs) in &mut st.banks {
            extend(*bank, pcrs, rec.pcr, &rec.data, violation)?;
        }
        st.stats.records += 1;
        if violation {
            st.stats.violations += 1;
        } else {
            st.seen
                .insert((rec.pcr, config.ima_hash.digest(&rec.data)?));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record of `template` with `data` to `pcr` (a violation when
    /// `violation`); returns once it is durable.
    pub fn append(
        &self,
        pcr: u32,
        template: &str,
        data: &[u8],
        violation: bool,
    ) -> Result<Appended> {
        let digest = if violation {
            vec![0u8; 20]
        } else {
            HashAlgo::Sha1.digest(data)?
        };
        let rec = Record {
            pcr,
            digest,
            template: template.to_owned(),
            data: data.to_vec(),
        };
        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(Error::io(
                "append",
                &self.path,
                std::io::Error::other(f.clone()),
            ));
        }
        if !violation {
            let key = (pcr, self.config.ima_hash.digest(data)?);
            if st.seen.contains(&key) {
                return Ok(Appended::Duplicate);
            }
        }
        Self::account(&self.config, &mut st, &rec)?;
        let index = st.stats.records - 1;
        rec.encode(&mut st.pending);
        st.next_seq += 1;
        let my_seq = st.next_seq;
        loop {
            if let Some(f) = &st.failed {
                return Err(Error::io(
                    "append",
                    &self.path,
                    std::io::Error::other(f.clone()),
                ));
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
                        st.stats.syncs += 1;
                    }
                    Err(e) => st.failed = Some(format!("write/fsync failed: {e}")),
                }
                self.synced.notify_all();
            } else {
                st = self.synced.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// The software PCR banks: per algorithm, the value of every PCR extended so far.
    pub fn pcrs(&self) -> Vec<(HashAlgo, BTreeMap<u32, Vec<u8>>)> {
        self.lock().banks.clone()
    }

    /// Counters.
    pub fn stats(&self) -> LogStats {
        self.lock().stats
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
        let (out, _) = scan(&buf).map_err(|(offset, what)| Error::Corrupt {
            path: self.path.clone(),
            offset,
            what,
        })?;
        Ok(out)
    }

    fn bank_record(rec: &Record, bank: HashAlgo) -> Result<Record> {
        let mut r = rec.clone();
        if bank != HashAlgo::Sha1 {
            r.digest = if rec.is_violation() {
                vec![0; bank.digest_len()]
            } else {
                bank.digest(&rec.data)?
            };
        }
        Ok(r)
    }

    /// Write the list as `binary_runtime_measurements_<bank>` (sha1: the legacy file).
    pub fn export_binary(&self, bank: HashAlgo, out: &mut dyn Write) -> Result<()> {
        let mut buf = Vec::new();
        for rec in self.records()? {
            Self::bank_record(&rec, bank)?.encode(&mut buf);
        }
        out.write_all(&buf)
            .map_err(|e| Error::io("write", "<output>", e))
    }

    /// Write the list as `ascii_runtime_measurements_<bank>`.
    pub fn export_ascii(&self, bank: HashAlgo, out: &mut dyn Write) -> Result<()> {
        let mut s = String::new();
        for rec in self.records()? {
            s.push_str(&Self::bank_record(&rec, bank)?.ascii());
            s.push('\n');
        }
        out.write_all(s.as_bytes())
            .map_err(|e| Error::io("write", "<output>", e))
    }
}

/// Split a persisted log into whole records: returns them and the length of the
/// prefix they occupy (what follows is a torn tail), or the offset and description of a
/// field that cannot be right.
pub fn scan(buf: &[u8]) -> std::result::Result<(Vec<Record>, usize), (u64, String)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        match parse_record(&buf[off..], 20) {
            Ok(Some((r, n))) => {
                out.push(r);
                off += n;
            }
            Ok(None) => break,
            Err((at, what)) => return Err((off as u64 + at, what)),
        }
    }
    Ok((out, off))
}

/// Replay `records` into PCR values for `bank` (violations extend 0xFF…).
pub fn replay(records: &[Record], bank: HashAlgo) -> Result<BTreeMap<u32, Vec<u8>>> {
    let mut pcrs = BTreeMap::new();
    for r in records {
        extend(bank, &mut pcrs, r.pcr, &r.data, r.is_violation())?;
    }
    Ok(pcrs)
}
