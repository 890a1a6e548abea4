//! Validation of a measurement list against a runtime policy and a quoted PCR value,
//! following Keylime's `process_measurement_list` (`keylime/ima/ima.py`, `ast.py`)
//! rule for rule, with incremental state.
//!
//! The engine works on [`Entry`] values (one measurement each) produced by the list
//! readers in [`crate::list`]; it never parses list bytes itself.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vigil_ima::{HashAlgo, Hasher};

use crate::exclude::Excludes;
use crate::keys::{Keyrings, SigCheck};
use crate::list::{Line, PreparedAscii};
use crate::policy::{DigestMap, RuntimePolicy};
use crate::{Error, Result};

/// The PCR IMA extends (Keylime's `config.IMA_PCR`).
pub const IMA_PCR: u32 = 10;

/// The templates Keylime understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// `ima`: `d|n`.
    Ima,
    /// `ima-ng`: `d-ng|n-ng`.
    ImaNg,
    /// `ima-sig`: `d-ng|n-ng|sig`.
    ImaSig,
    /// `ima-buf`: `d-ng|n-ng|buf`.
    ImaBuf,
}

impl Template {
    /// The template of a template name, if Keylime supports it.
    pub fn from_name(name: &str) -> Option<Template> {
        match name {
            "ima" => Some(Template::Ima),
            "ima-ng" => Some(Template::ImaNg),
            "ima-sig" => Some(Template::ImaSig),
            "ima-buf" => Some(Template::ImaBuf),
            _ => None,
        }
    }
}

/// One measurement, as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// PCR index.
    pub pcr: u32,
    /// The template-hash column as logged (all zeros for a violation).
    pub template_hash: Cow<'a, [u8]>,
    /// The template.
    pub template: Template,
    /// The template data exactly as hashed into the template digest.
    pub template_data: Cow<'a, [u8]>,
    /// The algorithm text of the `d-ng` field (`sha256`, `sm3_256`, `` for old
    /// kernels…); for the `ima` template the length-inferred `sha1`/`md5`.
    pub digest_algo: Cow<'a, str>,
    /// File (or buffer) digest.
    pub digest: Cow<'a, [u8]>,
    /// File path or event name (`n`/`n-ng`, without the terminating NUL).
    pub name: Cow<'a, [u8]>,
    /// `sig` field (ima-sig), possibly empty.
    pub sig: Cow<'a, [u8]>,
    /// `buf` field (ima-buf), possibly empty.
    pub buf: Cow<'a, [u8]>,
}

/// An entry that could not be read (Keylime: "Line was not parsable into a valid IMA
/// entry"); it fails attestation and is not extended into the running PCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsable {
    /// Why.
    pub message: String,
    /// The path, if it could be found.
    pub name: Option<String>,
}

/// What went wrong with the signature of an `ima-sig` entry that then also failed the
/// digest rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignatureProblem {
    /// No key with this key id in any keyring.
    UnknownKey {
        /// keyid (last 4 bytes of the SKID).
        keyid: String,
    },
    /// The key was found but the signature does not verify.
    BadSignature {
        /// keyid.
        keyid: String,
    },
    /// Wrong type/version, unsupported or mismatching hash algorithm.
    Unusable {
        /// Why.
        reason: String,
    },
}

/// Why an entry (or the list) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The path (or keyring, or ima-buf event) has no entry in the policy.
    NotInPolicy {
        /// Policy section that was consulted (`digests`, `keyrings`, `ima-buf`).
        section: &'static str,
    },
    /// The path is in the policy but not with this digest.
    DigestMismatch {
        /// Policy section.
        section: &'static str,
        /// The measured digest (hex).
        got: String,
        /// The accepted digests.
        expected: Vec<String>,
    },
    /// The template-hash column does not match the template data.
    TemplateHashMismatch {
        /// Logged.
        logged: String,
        /// Computed with `log_hash_alg`.
        computed: String,
    },
    /// A violation (all-zero template hash); Keylime fails it unless
    /// `ignore_tomtou_errors` is false.
    Violation,
    /// The entry is not for the IMA PCR.
    WrongPcr {
        /// Its PCR.
        pcr: u32,
    },
    /// The `ima-buf` buffer is a key of an unsupported type.
    InvalidKey {
        /// Why.
        message: String,
    },
    /// The entry could not be read or uses a template Keylime does not support.
    Unparsable {
        /// Why.
        message: String,
    },
    /// No prefix of the list (including the empty one) replays to the quoted PCR.
    PcrMismatch {
        /// Quoted value.
        quoted: String,
        /// Running value after the last entry.
        running: String,
    },
    /// The quote did not catch up with the part of the log that was ahead last time.
    QuoteProgress,
    /// The list does not start where the state expects it to.
    EntryNumber {
        /// The state's next entry.
        expected: u64,
        /// The list's first entry.
        got: u64,
    },
}

impl Reason {
    /// Keylime's failure event id for this reason (`ima.validation.ima-ng.<id>` etc).
    pub fn keylime_event(&self) -> &'static str {
        match self {
            Reason::NotInPolicy { .. } => "not_in_allowlist",
            Reason::DigestMismatch { .. } => "runtime_policy_hash",
            Reason::TemplateHashMismatch { .. } => "ima_hash",
            Reason::Violation => "tomtou",
            Reason::WrongPcr { .. } => "ima_pcr",
            Reason::InvalidKey { .. } => "invalid_key",
            Reason::Unparsable { .. } => "entry",
            Reason::PcrMismatch { .. } => "pcr_mismatch",
            Reason::QuoteProgress => "quote_progress",
            Reason::EntryNumber { .. } => "invalid_ima_entry_nb",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NotInPolicy { section } => write!(f, "not in policy ({section})"),
            Reason::DigestMismatch {
                section,
                got,
                expected,
            } => write!(
                f,
                "digest mismatch ({section}): got {got}, policy has {}",
                expected.join(", ")
            ),
            Reason::TemplateHashMismatch { logged, computed } => write!(
                f,
                "template hash mismatch: logged {logged}, computed {computed}"
            ),
            Reason::Violation => f.write_str("violation (ToMToU/open-writers; zero template hash)"),
            Reason::WrongPcr { pcr } => write!(f, "entry is for PCR {pcr}, not {IMA_PCR}"),
            Reason::InvalidKey { message } => write!(f, "invalid key: {message}"),
            Reason::Unparsable { message } => write!(f, "unparsable entry: {message}"),
            Reason::PcrMismatch { quoted, running } => write!(
                f,
                "PCR mismatch: the list does not replay to the quoted PCR {quoted} (running value at end {running})"
            ),
            Reason::QuoteProgress => {
                f.write_str("the quote did not make progress to catch up with the log")
            }
            Reason::EntryNumber { expected, got } => write!(
                f,
                "the list starts at entry {got}, the state expects entry {expected}"
            ),
        }
    }
}

/// One failure in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Absolute entry number (0 = first entry of the whole log), if the failure is
    /// about one entry.
    pub entry: Option<u64>,
    /// Path or event name of that entry.
    pub path: Option<String>,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
    /// For `ima-sig` entries with a signature that did not help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureProblem>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = self.entry {
            write!(f, "entry {e}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.reason)?;
        match &self.signature {
            Some(SignatureProblem::UnknownKey { keyid }) => {
                write!(f, " (signature by unknown key {keyid})")
            }
            Some(SignatureProblem::BadSignature { keyid }) => {
                write!(f, " (signature by key {keyid} does not verify)")
            }
            Some(SignatureProblem::Unusable { reason }) => {
                write!(f, " (signature unusable: {reason})")
            }
            None => Ok(()),
        }
    }
}

/// Overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every entry passed and the list matches the quote.
    Attested,
    /// At least one failure.
    Failed,
    /// The machine rebooted since the state was saved (boot time changed): the state
    /// was reset and the full list must be sent next time. Keylime skips the round
    /// without a failure; nothing was attested.
    Restart,
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries read (including unparsable ones).
    pub entries: u64,
    /// Entries that passed.
    pub passed: u64,
    /// Entries skipped by an exclude.
    pub excluded: u64,
    /// `ima-sig` entries accepted by a signature.
    pub signature_ok: u64,
    /// Violations seen.
    pub violations: u64,
    /// Keys learned from `ima-buf` entries.
    pub keys_learned: u64,
    /// Entries that failed.
    pub failed_entries: u64,
}

/// The outcome of a validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Overall result.
    pub verdict: Verdict,
    /// Every failure, in list order.
    pub failures: Vec<Failure>,
    /// Counts.
    pub summary: Summary,
    /// PCR bank the quote is in.
    pub bank: String,
    /// Running PCR value after the last entry (hex).
    pub running_pcr: String,
    /// Number of entries of this list after which the running PCR equalled the quote
    /// (0 = before the first), if it did.
    pub pcr_matched_after: Option<u64>,
}

impl Report {
    /// Whether the list is attested.
    pub fn is_attested(&self) -> bool {
        self.verdict == Verdict::Attested
    }
}

/// Incremental-attestation state, persisted by the caller between quotes (Keylime's
/// `AgentAttestState` IMA part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The next entry to request (number of entries attested so far).
    pub next_entry: u64,
    /// Running IMA PCR value after `next_entry` entries, per bank name (hex).
    pub pcrs: BTreeMap<String, String>,
    /// The machine's boot time as reported with the list (0 = unknown).
    pub boottime: u64,
    /// Keys learned from `ima-buf` keyring entries, per keyring.
    pub learned_keyrings: Keyrings,
    /// `(PCR match line, log length)` of the previous round (Keylime's quote progress).
    pub quote_progress: Option<(u64, u64)>,
}

impl State {
    /// Keylime's `reset_ima_attestation`.
    pub fn reset(&mut self) {
        self.next_entry = 0;
        self.pcrs.clear();
        self.boottime = 0;
        self.learned_keyrings = Keyrings::default();
        self.quote_progress = None;
    }

    /// Keylime's `check_quote_progress`.
    fn check_quote_progress(&mut self, match_line: u64, log_length: u64) -> bool {
        let Some((prev_match, prev_len)) = self.quote_progress.replace((match_line, log_length))
        else {
            return true;
        };
        if match_line == log_length {
            return true;
        }
        let prev_lag = prev_len.saturating_sub(prev_match);
        !(prev_lag > 0 && match_line < prev_lag)
    }

    /// Parse a saved state.
    pub fn from_json(text: &[u8]) -> Result<State> {
        serde_json::from_slice(text).map_err(|error| Error::Json {
            what: "attestation state",
            error,
        })
    }

    /// Serialize for saving.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Options that Keylime takes from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Keylime's `[verifier] ignore_tomtou_errors` as the code reads it (fallback
    /// true): when true, a violation entry is a failure (sic — the option's name says
    /// the opposite; see the docs). When false, violations are accepted.
    pub fail_on_violations: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fail_on_violations: true,
        }
    }
}

/// Where the list comes from, for incremental attestation (Keylime's
/// `ima_measurement_list_entry` and `boottime` in the agent's response).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListInfo {
    /// Entry number of the first entry of the list.
    pub first_entry: u64,
    /// The machine's boot time, if known.
    pub boottime: Option<u64>,
}

/// A policy prepared for validation.
#[derive(Debug)]
pub struct Validator<'p> {
    policy: &'p RuntimePolicy,
    excludes: Excludes,
    log_hash_alg: HashAlgo,
    tenant: Keyrings,
    options: Options,
}

/// Outcome of one rule application.
enum Rule {
    Pass,
    Excluded,
    Fail(Reason),
}

fn hex_lower(b: &[u8]) -> String {
    hex::encode(b)
}

/// Lowercase hex of `b` into `out` (`2 * b.len()` bytes).
#[inline]
fn hex_lower_into(b: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (o, &x) in out.chunks_exact_mut(2).zip(b) {
        o[0] = DIGITS[(x >> 4) as usize];
        o[1] = DIGITS[(x & 15) as usize];
    }
}

impl<'p> Validator<'p> {
    /// Prepare `policy` (compiles the excludes, loads the verification keys).
    pub fn new(policy: &'p RuntimePolicy, options: Options) -> Result<Validator<'p>> {
        let excludes = Excludes::new(&policy.excludes)?;
        // Keylime falls back to SHA-1 for an unknown log_hash_alg.
        let log_hash_alg = match policy.ima.log_hash_alg.as_str() {
            "sha256" => HashAlgo::Sha256,
            "sha384" => HashAlgo::Sha384,
            "sha512" => HashAlgo::Sha512,
            "sm3_256" => HashAlgo::Sm3,
            _ => HashAlgo::Sha1,
        };
        let mut tenant = Keyrings::default();
        if let Some(keys) = policy.verification_keys()? {
            tenant.add_verification_keys("tenant_keyring", &keys)?;
        }
        Ok(Validator {
            policy,
            excludes,
            log_hash_alg,
            tenant,
            options,
        })
    }

    /// The template-hash algorithm in use.
    pub fn log_hash_alg(&self) -> HashAlgo {
        self.log_hash_alg
    }

    fn ima_ng(&self, map: &DigestMap, section: &'static str, e: &Entry) -> Rule {
        self.ima_ng_hashed(map, section, e, DigestMap::hash_name(&e.name), None)
    }

    /// [`Validator::ima_ng`] with the name's hash computed beforehand, and the
    /// digest's lowercase hex if it is at hand.
    fn ima_ng_hashed(
        &self,
        map: &DigestMap,
        section: &'static str,
        e: &Entry,
        hash: u64,
        hex: Option<&[u8]>,
    ) -> Rule {
        if self.excludes.matches(&e.name) {
            return Rule::Excluded;
        }
        // A name that is not UTF-8 matches no policy name (they all are).
        let Some(list) = map.get_bytes_hashed(hash, &e.name) else {
            return Rule::Fail(Reason::NotInPolicy { section });
        };
        // Allocation-free lowercase hex of the digest for the comparison.
        let mut buf = [0u8; 128];
        let owned;
        let got: &[u8] = if let Some(h) = hex {
            h
        } else if e.digest.len() <= 64 {
            let n = e.digest.len() * 2;
            hex_lower_into(&e.digest, &mut buf[..n]);
            &buf[..n]
        } else {
            owned = hex_lower(&e.digest);
            owned.as_bytes()
        };
        if list.contains_bytes(got) {
            Rule::Pass
        } else {
            Rule::Fail(Reason::DigestMismatch {
                section,
                got: String::from_utf8_lossy(got).into_owned(),
                expected: list.to_vec(),
            })
        }
    }

    /// Validate one entry's content (after the template-hash check).
    fn check_content(
        &self,
        e: &Entry,
        pre: Option<Rule>,
        learned: &mut Keyrings,
        summary: &mut Summary,
    ) -> (Rule, Option<SignatureProblem>) {
        match e.template {
            Template::Ima | Template::ImaNg => (
                pre.unwrap_or_else(|| self.ima_ng(&self.policy.digests, "digests", e)),
                None,
            ),
            Template::ImaSig => {
                let mut problem = None;
                if sig_header_ok(&e.sig) {
                    if self.excludes.matches(&e.name) {
                        return (Rule::Excluded, None);
                    }
                    match Keyrings::verify_ima_sig(
                        [learned, &self.tenant],
                        &e.sig,
                        &e.digest,
                        &e.digest_algo,
                    ) {
                        SigCheck::Good => {
                            summary.signature_ok += 1;
                            return (Rule::Pass, None);
                        }
                        SigCheck::UnknownKey(k) => {
                            problem = Some(SignatureProblem::UnknownKey {
                                keyid: format!("{k:08x}"),
                            })
                        }
                        SigCheck::Bad(k) => {
                            problem = Some(SignatureProblem::BadSignature {
                                keyid: format!("{k:08x}"),
                            })
                        }
                        SigCheck::Unusable(reason) => {
                            problem = Some(SignatureProblem::Unusable { reason })
                        }
                    }
                }
                let rule = self.ima_ng(&self.policy.digests, "digests", e);
                let problem = if matches!(rule, Rule::Fail(_)) {
                    problem
                } else {
                    None
                };
                (rule, problem)
            }
            Template::ImaBuf => match Keyrings::parse_key(&e.buf) {
                Err(message) => (Rule::Fail(Reason::InvalidKey { message }), None),
                Ok(Some(key)) => {
                    let name = String::from_utf8_lossy(&e.name);
                    let ignored = &self.policy.ima.ignored_keyrings;
                    if ignored.iter().any(|k| k == "*" || *k == name) {
                        return (Rule::Pass, None);
                    }
                    let rule = self.ima_ng(&self.policy.keyrings, "keyrings", e);
                    if !matches!(rule, Rule::Fail(_)) {
                        learned.add(&name, key);
                        summary.keys_learned += 1;
                    }
                    (rule, None)
                }
                Ok(None) => (self.ima_ng(&self.policy.ima_buf, "ima-buf", e), None),
            },
        }
    }

    /// Validate `entries` (the list from `info.first_entry` on) against the policy and
    /// the quoted IMA PCR value `quote` of `bank` (`None`: no PCR check, as Keylime with
    /// no quote value). `state`, when given, is used and updated as Keylime updates its
    /// agent state; it is reset on any failure.
    pub fn validate<'e, I>(
        &self,
        entries: I,
        bank: HashAlgo,
        quote: Option<&[u8]>,
        state: Option<&mut State>,
        info: ListInfo,
    ) -> Result<Report>
    where
        I: IntoIterator<Item = std::result::Result<Entry<'e>, Unparsable>>,
    {
        let mut run = match Run::start(self, bank, quote, state, info)? {
            Ok(run) => run,
            Err(report) => return Ok(report),
        };

        // The template digests of a chunk of entries are computed in parallel (they
        // depend only on the entry); the rules and the PCR extension then go through
        // the chunk in order.
        const CHUNK: usize = 4096;
        let log_alg = self.log_hash_alg;
        let l = bank.digest_len();
        let (lb, ll) = (
            l,
            if log_alg == bank {
                0
            } else {
                log_alg.digest_len()
            },
        );
        let mut iter = entries.into_iter();
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut digests: Vec<u8> = Vec::new();
        let mut hashed: Vec<bool> = Vec::new();
        // For `ima`/`ima-ng` entries the policy lookup is also independent of the
        // other entries: it is done in parallel too, and used only if the entry gets
        // that far.
        let mut rules: Vec<Option<Rule>> = Vec::new();
        let log_zero = vec![0u8; log_alg.digest_len()];
        loop {
            chunk.clear();
            chunk.extend(iter.by_ref().take(CHUNK));
            if chunk.is_empty() {
                break;
            }
            digests.clear();
            digests.resize(chunk.len() * (lb + ll), 0);
            hashed.clear();
            hashed.resize(chunk.len(), false);
            rules.clear();
            rules.resize_with(chunk.len(), || None);
            let log_zero = &log_zero;
            digests
                .par_chunks_mut(lb + ll)
                .zip(hashed.par_iter_mut())
                .zip(rules.par_iter_mut())
                .zip(chunk.par_iter())
                .with_min_len(256)
                .for_each(|(((out, ok), rule), item)| {
                    let Ok(e) = item else { return };
                    if matches!(e.template, Template::Ima | Template::ImaNg) {
                        *rule = Some(self.ima_ng(&self.policy.digests, "digests", e));
                    }
                    if *e.template_hash == log_zero[..] {
                        return;
                    }
                    let (b, g) = out.split_at_mut(lb);
                    if let Ok(mut h) = Hasher::new(bank) {
                        h.update(&e.template_data);
                        h.finalize_into(b);
                        *ok = true;
                    }
                    if ll > 0 {
                        match Hasher::new(log_alg) {
                            Ok(mut h) => {
                                h.update(&e.template_data);
                                h.finalize_into(g);
                            }
                            Err(_) => *ok = false,
                        }
                    }
                });
            for (k, (item, pre_rule)) in chunk.drain(..).zip(rules.drain(..)).enumerate() {
                let pre = &digests[k * (lb + ll)..(k + 1) * (lb + ll)];
                let (pre_bank, pre_log) = if hashed[k] {
                    (Some(&pre[..lb]), (ll > 0).then(|| &pre[lb..]))
                } else {
                    (None, None)
                };
                run.step(item.as_ref(), pre_bank, pre_log, pre_rule)?;
            }
        }
        Ok(run.finish())
    }

    /// Validate an ASCII list prepared by [`PreparedAscii::new`] (for the quote's
    /// bank), skipping its first `skip` entries: the same as [`Validator::validate`]
    /// on `list::ascii_items(text, skip)`, with the parsing and template hashing
    /// already done in parallel (possibly while the policy was being read). The
    /// policy lookups of a chunk run in parallel; the PCR replay and the rules follow
    /// in order.
    pub fn validate_ascii(
        &self,
        list: &PreparedAscii<'_>,
        skip: usize,
        quote: Option<&[u8]>,
        state: Option<&mut State>,
        info: ListInfo,
    ) -> Result<Report> {
        let bank = list.bank();
        let mut run = match Run::start(self, bank, quote, state, info)? {
            Ok(run) => run,
            Err(report) => return Ok(report),
        };
        let l = bank.digest_len();
        if self.log_hash_alg != bank || list.text.len() > u32::MAX as usize {
            // The template-hash column needs a second algorithm: the general path.
            return Ok(self.validate_ascii_general(list, skip, run)?.finish());
        }
        let text = list.text;
        let digests = &self.policy.digests;
        let chunks = &list.chunks;
        // Where each chunk's lines start after `skip`.
        let mut starts = Vec::with_capacity(chunks.len());
        let mut rest = skip;
        for c in chunks {
            let k = rest.min(c.lines.len());
            starts.push(k);
            rest -= k;
        }
        // The policy lookups of a chunk (`digests` rules of `ima`/`ima-ng` entries) are
        // independent of everything else: a helper thread does them chunk by chunk
        // ahead of the PCR replay and the rules, which go through the list in order on
        // this thread; a chunk whose lookups the helper has not started yet is looked
        // up here. Codes: 0 = not looked up (or failed: redone in order, with the
        // failure's details), 1 = pass, 2 = excluded.
        const FREE: u8 = 0;
        const TAKEN: u8 = 1;
        const DONE: u8 = 2;
        let claim: Vec<AtomicU8> = chunks.iter().map(|_| AtomicU8::new(FREE)).collect();
        let codes: Vec<OnceLock<Vec<u8>>> = chunks.iter().map(|_| OnceLock::new()).collect();
        let look = |k: usize| -> Vec<u8> {
            let c = &chunks[k];
            let lines = &c.lines[starts[k]..];
            let name_of = |line: &Line| -> Option<&[u8]> {
                match line {
                    Line::Fast(f) if f.template == Template::ImaNg => Some(f.name(text)),
                    Line::Fast(_) => None,
                    Line::Slow(i) => match &c.slow[*i as usize] {
                        Ok(e) if matches!(e.template, Template::Ima | Template::ImaNg) => {
                            Some(&e.name)
                        }
                        _ => None,
                    },
                }
            };
            let hashes: Vec<u64> = lines
                .iter()
                .map(|(line, _)| name_of(line).map_or(0, DigestMap::hash_name))
                .collect();
            const AHEAD: usize = 8;
            for &h in hashes.iter().take(AHEAD) {
                digests.prefetch(h);
            }
            let mut out = Vec::with_capacity(lines.len());
            for (j, (line, _)) in lines.iter().enumerate() {
                if let Some(&h) = hashes.get(j + AHEAD) {
                    digests.prefetch(h);
                }
                let rule = match line {
                    Line::Fast(f) if f.template == Template::ImaNg => Some(self.ima_ng_hashed(
                        digests,
                        "digests",
                        &f.entry(text, &c.arena),
                        hashes[j],
                        f.digest_hex(text),
                    )),
                    Line::Fast(_) => None,
                    Line::Slow(i) => match &c.slow[*i as usize] {
                        Ok(e) if matches!(e.template, Template::Ima | Template::ImaNg) => {
                            Some(self.ima_ng_hashed(digests, "digests", e, hashes[j], None))
                        }
                        _ => None,
                    },
                };
                out.push(match rule {
                    Some(Rule::Pass) => 1,
                    Some(Rule::Excluded) => 2,
                    _ => 0,
                });
            }
            out
        };
        let work = |k: usize| {
            if claim[k]
                .compare_exchange(FREE, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = codes[k].set(look(k));
                claim[k].store(DONE, Ordering::Release);
            }
        };
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            let helper = (chunks.len() > 1).then(|| {
                scope.spawn(|| {
                    for k in 0..chunks.len() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        work(k);
                    }
                })
            });
            let res = (|| -> Result<()> {
                let mut ahead = 0;
                for (k, c) in chunks.iter().enumerate() {
                    work(k);
                    while claim[k].load(Ordering::Acquire) != DONE {
                        if helper.as_ref().is_none_or(|h| h.is_finished()) {
                            // The helper stopped without finishing this chunk: the
                            // rules are then all computed in order below.
                            break;
                        }
                        // While the helper finishes this chunk, look up a later one
                        // rather than wait.
                        ahead = ahead.max(k + 1);
                        while ahead < chunks.len() && claim[ahead].load(Ordering::Relaxed) != FREE {
                            ahead += 1;
                        }
                        if ahead < chunks.len() {
                            work(ahead);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    let code = codes[k].get().map(Vec::as_slice).unwrap_or(&[]);
                    let lines = &c.lines[starts[k]..];
                    for (j, line) in lines.iter().enumerate() {
                        let rule = match code.get(j) {
                            Some(1) => Some(Rule::Pass),
                            Some(2) => Some(Rule::Excluded),
                            _ => None,
                        };
                        c.with_line(text, line, l, false, |item, pre_bank| {
                            run.step(item, pre_bank, None, rule)
                        })?;
                    }
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            res
        })?;
        Ok(run.finish())
    }
}

impl<'p> Validator<'p> {
    /// The items of a prepared list through [`Run::step`] one by one, template
    /// digests recomputed as needed (for a `log_hash_alg` other than the bank's).
    fn validate_ascii_general<'v, 's>(
        &'v self,
        list: &PreparedAscii<'_>,
        skip: usize,
        mut run: Run<'v, 'p, 's>,
    ) -> Result<Run<'v, 'p, 's>> {
        let l = list.bank().digest_len();
        let mut skip = skip;
        for c in &list.chunks {
            for line in &c.lines {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                // The template-hash column needs the template data.
                c.with_line(list.text, line, l, true, |item, pre_bank| {
                    run.step(item, pre_bank, None, None)
                })?;
            }
        }
        Ok(run)
    }
}

/// One validation in progress: the running PCR, the report so far and the state.
struct Run<'v, 'p, 's> {
    v: &'v Validator<'p>,
    bank: HashAlgo,
    quote: Option<&'v [u8]>,
    /// The caller's state, if any (without one, every round starts fresh).
    st: Option<&'s mut State>,
    info: ListInfo,
    report: Report,
    running: Vec<u8>,
    learned: Keyrings,
    found: bool,
    match_line: u64,
    linenum: u64,
    log_zero: Vec<u8>,
    th_bank: Vec<u8>,
    th_log: Vec<u8>,
}

impl<'v, 'p, 's> Run<'v, 'p, 's> {
    /// Check the quote and the list's place against the state (Keylime's
    /// `process_quote_response`); `Err(report)` when the round ends there.
    fn start(
        v: &'v Validator<'p>,
        bank: HashAlgo,
        quote: Option<&'v [u8]>,
        mut st: Option<&'s mut State>,
        info: ListInfo,
    ) -> Result<std::result::Result<Run<'v, 'p, 's>, Report>> {
        let l = bank.digest_len();
        if let Some(q) = quote {
            if q.len() != l {
                return Err(Error::Pcr {
                    bank: bank.name().into(),
                    message: format!("{} bytes, a {} PCR has {l}", q.len(), bank.name()),
                });
            }
        }
        let mut report = Report {
            verdict: Verdict::Attested,
            failures: Vec::new(),
            summary: Summary::default(),
            bank: bank.name().into(),
            running_pcr: String::new(),
            pcr_matched_after: None,
        };

        // cloud_verifier_common.process_quote_response: where the list starts.
        if let Some(st) = st.as_deref_mut() {
            if info.first_entry == 0 {
                st.reset();
            } else if info.first_entry != st.next_entry {
                report.failures.push(Failure {
                    entry: None,
                    path: None,
                    reason: Reason::EntryNumber {
                        expected: st.next_entry,
                        got: info.first_entry,
                    },
                    signature: None,
                });
                report.verdict = Verdict::Failed;
                st.reset();
                return Ok(Err(report));
            } else if let Some(bt) = info.boottime {
                if st.boottime != bt {
                    st.reset();
                    report.verdict = Verdict::Restart;
                    return Ok(Err(report));
                }
            }
            if let Some(bt) = info.boottime {
                st.boottime = bt;
            }
        }

        let next_entry = st.as_deref().map_or(0, |st| st.next_entry);
        let running = match st.as_deref().and_then(|st| st.pcrs.get(bank.name())) {
            Some(h) => {
                let v = hex::decode(h)
                    .map_err(|e| Error::State(format!("pcrs.{}: {e}", bank.name())))?;
                if v.len() != l {
                    return Err(Error::State(format!(
                        "pcrs.{}: {} bytes, expected {l}",
                        bank.name(),
                        v.len()
                    )));
                }
                v
            }
            None if next_entry > 0 => {
                return Err(Error::State(format!(
                    "no running PCR value for bank {} after entry {next_entry}",
                    bank.name(),
                )))
            }
            None => vec![0; l],
        };
        let learned = st
            .as_deref_mut()
            .map(|st| std::mem::take(&mut st.learned_keyrings))
            .unwrap_or_default();
        let found = match quote {
            Some(q) => running == q,
            None => true,
        };
        let ld = v.log_hash_alg.digest_len();
        Ok(Ok(Run {
            v,
            bank,
            quote,
            st,
            info,
            report,
            running,
            learned,
            found,
            match_line: 0,
            linenum: 0,
            log_zero: vec![0u8; ld],
            th_bank: vec![0u8; l],
            th_log: vec![0u8; ld],
        }))
    }

    /// Extend the running PCR with `th_bank`.
    #[inline]
    fn extend(&mut self) -> Result<()> {
        if self.bank == HashAlgo::Sha1 {
            crate::sha1_fast::extend(&mut self.running, &self.th_bank);
            return Ok(());
        }
        let mut ext = Hasher::new(self.bank)?;
        ext.update(&self.running);
        ext.update(&self.th_bank);
        ext.finalize_into(&mut self.running);
        Ok(())
    }

    /// One entry, in list order: `pre_bank`/`pre_log` are its template digests with
    /// the bank's and `log_hash_alg`'s algorithm if already computed, `pre_rule` its
    /// `digests` rule if already looked up (`ima`/`ima-ng` entries).
    fn step(
        &mut self,
        item: std::result::Result<&Entry, &Unparsable>,
        pre_bank: Option<&[u8]>,
        pre_log: Option<&[u8]>,
        pre_rule: Option<Rule>,
    ) -> Result<()> {
        let v = self.v;
        let linenum = self.linenum;
        self.linenum += 1;
        let abs = self.info.first_entry + linenum;
        let report = &mut self.report;
        report.summary.entries += 1;
        let e = match item {
            Ok(e) => e,
            Err(u) => {
                report.failures.push(Failure {
                    entry: Some(abs),
                    path: u.name.clone(),
                    reason: Reason::Unparsable {
                        message: u.message.clone(),
                    },
                    signature: None,
                });
                report.summary.failed_entries += 1;
                return Ok(());
            }
        };

        // Template digests: with the bank's algorithm for the PCR, with
        // log_hash_alg for the column.
        let violation = *e.template_hash == self.log_zero[..];
        if violation {
            self.th_bank.fill(0xff);
        } else if let Some(p) = pre_bank {
            self.th_bank.copy_from_slice(p);
        } else {
            let mut h = Hasher::new(self.bank)?;
            h.update(&e.template_data);
            h.finalize_into(&mut self.th_bank);
        }
        self.extend()?;
        let report = &mut self.report;

        let path = || Some(String::from_utf8_lossy(&e.name).into_owned());
        let mut failed = false;
        let mut push = |report: &mut Report, reason: Reason, sig: Option<SignatureProblem>| {
            report.failures.push(Failure {
                entry: Some(abs),
                path: path(),
                reason,
                signature: sig,
            });
            failed = true;
        };
        if e.pcr != IMA_PCR {
            push(report, Reason::WrongPcr { pcr: e.pcr }, None);
        }
        if violation {
            report.summary.violations += 1;
            if v.options.fail_on_violations {
                push(report, Reason::Violation, None);
            }
        } else {
            let th_log = &mut self.th_log;
            if v.log_hash_alg == self.bank {
                th_log.copy_from_slice(&self.th_bank);
            } else if let Some(p) = pre_log {
                th_log.copy_from_slice(p);
            } else {
                let mut h = Hasher::new(v.log_hash_alg)?;
                h.update(&e.template_data);
                h.finalize_into(th_log);
            }
            if *e.template_hash != th_log[..] {
                push(
                    report,
                    Reason::TemplateHashMismatch {
                        logged: hex_lower(&e.template_hash),
                        computed: hex_lower(th_log),
                    },
                    None,
                );
            } else {
                let (rule, sig) =
                    v.check_content(e, pre_rule, &mut self.learned, &mut report.summary);
                match rule {
                    Rule::Pass => {}
                    Rule::Excluded => report.summary.excluded += 1,
                    Rule::Fail(reason) => push(report, reason, sig),
                }
            }
        }
        if failed {
            report.summary.failed_entries += 1;
        } else {
            report.summary.passed += 1;
        }

        if !self.found {
            if let Some(q) = self.quote {
                if self.running == q {
                    self.found = true;
                    self.match_line = linenum + 1;
                    if let Some(st) = self.st.as_deref_mut() {
                        st.pcrs
                            .insert(self.bank.name().into(), hex_lower(&self.running));
                        st.next_entry += linenum + 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The PCR check and the verdict.
    fn finish(self) -> Report {
        let Run {
            quote,
            mut st,
            mut report,
            running,
            learned,
            found,
            match_line,
            linenum: log_length,
            ..
        } = self;
        report.running_pcr = hex_lower(&running);
        if let Some(q) = quote {
            if found {
                report.pcr_matched_after = Some(match_line);
            }
            if !found {
                report.failures.push(Failure {
                    entry: None,
                    path: None,
                    reason: Reason::PcrMismatch {
                        quoted: hex_lower(q),
                        running: hex_lower(&running),
                    },
                    signature: None,
                });
            } else if st
                .as_deref_mut()
                .is_some_and(|st| !st.check_quote_progress(match_line, log_length))
            {
                report.failures.push(Failure {
                    entry: None,
                    path: None,
                    reason: Reason::QuoteProgress,
                    signature: None,
                });
            }
        }
        let failed = !report.failures.is_empty();
        if failed {
            report.verdict = Verdict::Failed;
        }
        if let Some(st) = st {
            st.learned_keyrings = learned;
            if failed {
                st.reset();
            }
        }
        report
    }
}

/// Keylime's `Signature` check: a signature is present only if it has a 9-byte header
/// whose big-endian `sig_size` accounts for the rest exactly.
pub fn sig_header_ok(sig: &[u8]) -> bool {
    sig.len() >= 9 && 9 + u16::from_be_bytes([sig[7], sig[8]]) as usize == sig.len()
}
