//! `vigil attest` and `vigil runtime-policy create|diff|merge|sign|verify`: remote
//! attestation of IMA measurement lists with Keylime-compatible runtime policies.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use vigil_attest::dsse::{self, PrivateKey, PublicKey, Signer};
use vigil_attest::generate::{self, CreateInputs, TreeOptions};
use vigil_attest::list;
use vigil_attest::policy::{self, DigestMap, RuntimePolicy};
use vigil_attest::validate::{ListInfo, Options, Report, State, Validator, Verdict};
use vigil_ima::HashAlgo;

/// Remote attestation (Keylime-compatible).
#[derive(Subcommand)]
pub enum Command {
    /// Validate an IMA measurement list against a Keylime runtime policy and a quoted
    /// PCR 10 value, as Keylime's verifier does.
    ///
    /// Every entry is checked: its template hash (with the policy's `log_hash_alg`), its
    /// PCR, and its content — `ima`/`ima-ng` digests against `digests`, `ima-sig`
    /// signatures against the policy's verification keys and keys learned from
    /// `ima-buf` keyring entries (falling back to `digests`), `ima-buf` keys against
    /// `keyrings` and other buffers against `ima-buf`; paths matching an exclude are
    /// skipped. The running PCR must equal the quote before the first entry or after
    /// any entry (the log may be ahead of the quote).
    ///
    /// Exit status: 0 when the list is attested, 1 with a report of every failure when
    /// it is not (or when a reboot reset the state), 2 on bad usage or unreadable input.
    Attest(AttestArgs),
    /// Create, compare, merge, sign and verify Keylime runtime policies.
    #[command(name = "runtime-policy", subcommand)]
    RuntimePolicy(PolicyCommand),
}

/// Arguments of `vigil attest`.
#[derive(Args)]
pub struct AttestArgs {
    /// The runtime policy (JSON, or a DSSE envelope around it).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Public key (PEM) or X.509 certificate that must have signed a DSSE-wrapped
    /// policy. Without it the envelope's signature is not checked (with a warning).
    #[arg(long, value_name = "FILE")]
    policy_key: Option<PathBuf>,
    /// The measurement list: ASCII (as a Keylime agent sends it, or
    /// `ascii_runtime_measurements*`) or binary (`binary_runtime_measurements*`);
    /// `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    list: PathBuf,
    /// The quoted IMA PCR (10) value as `ALG:HEX`, e.g. `sha256:3bc7…`; ALG is the
    /// quote's PCR bank.
    #[arg(long, value_name = "ALG:HEX", conflicts_with = "pcrs")]
    pcr: Option<String>,
    /// Read the PCR 10 value of bank ALG from FILE: a sysfs `pcr-<alg>/10` file (bare
    /// hex), or lines like `10: 0x…`, `PCR-10: …` or `pcr10 …` (tpm2_pcrread,
    /// /sys/class/tpm/tpm0/pcrs style).
    #[arg(long, value_name = "ALG,FILE")]
    pcrs: Option<String>,
    /// Incremental attestation state (JSON): read if it exists, updated in place
    /// (temp file + rename). With it, only entries from the state's next entry on are
    /// validated (see --list-start), and any failure resets it as Keylime does.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Entry number of the list's first entry (Keylime's `ima_measurement_list_entry`):
    /// 0 means a full list (and resets the state). By default, with --state, a full
    /// list is given and the entries the state already covers are skipped.
    #[arg(long, value_name = "N")]
    list_start: Option<u64>,
    /// The machine's boot time (seconds since the epoch, as the agent reports it); a
    /// change from the state's resets the state (a reboot).
    #[arg(long, value_name = "SECONDS")]
    boottime: Option<u64>,
    /// Accept violation entries (zero template hash). Keylime's verifier, as its code
    /// reads `ignore_tomtou_errors` (default true), fails them; this is `false` there.
    #[arg(long)]
    accept_violations: bool,
    /// Algorithm of the template-hash column of a binary list (default: the policy's
    /// `log_hash_alg`).
    #[arg(long, value_name = "ALG")]
    list_hash_alg: Option<String>,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// `vigil runtime-policy …`
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create a runtime policy, as `keylime-policy create runtime` does: digests of a
    /// root file system (hashed in parallel), of a measurement list and of a plain
    /// allowlist, merged into an optional base policy.
    ///
    /// The file-digest algorithm comes from --algo, else the base policy, the allowlist
    /// or the list's boot_aggregate (all must agree), else SHA-256.
    Create(CreateArgs),
    /// Compare two policies: digests, excludes, keyrings, ima-buf and settings. Exit
    /// status 0 when they are equal (ignoring meta.timestamp), 1 when they differ.
    Diff {
        /// The old policy.
        a: PathBuf,
        /// The new policy.
        b: PathBuf,
    },
    /// Merge policies: digests, keyrings and ima-buf lists are unions, excludes and
    /// ignored keyrings too; settings come from the first policy.
    Merge {
        /// Policies to merge (at least two).
        #[arg(required = true, num_args = 2..)]
        policies: Vec<PathBuf>,
        /// Output file (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Sign a policy into a DSSE envelope (Keylime's `keylime-policy sign runtime`).
    Sign {
        /// The policy to sign.
        policy: PathBuf,
        /// Private key (PEM: PKCS#8, SEC1 or PKCS#1): ECDSA P-256/P-384 as Keylime, or
        /// RSA (a vigil extension Keylime cannot verify).
        #[arg(short, long, value_name = "FILE")]
        key: PathBuf,
        /// X.509 certificate of the key: use Keylime's `x509` backend (the envelope's
        /// keyid is the certificate). Without it, the `ecdsa` backend.
        #[arg(short, long, value_name = "FILE")]
        cert: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Verify a policy: its DSSE signature (with --key, or with the certificates the
    /// envelope carries when --embedded-certs is given) and Keylime's schema.
    /// Exit status 0 when valid, 1 when not.
    Verify {
        /// The policy (JSON or DSSE envelope).
        policy: PathBuf,
        /// Public key (PEM) or certificate that must have signed it.
        #[arg(short, long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Accept a signature by any certificate carried in the envelope (Keylime's
        /// behaviour without a key: proves integrity, not origin).
        #[arg(long)]
        embedded_certs: bool,
        /// Require a DSSE signature.
        #[arg(long)]
        require_signature: bool,
    },
}

/// Arguments of `vigil runtime-policy create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Root file system to hash (e.g. `/`); /sys, /run, /proc, /lost+found, /dev,
    /// /media, /snap, /mnt, /var, /tmp under it, mount points of another file-system
    /// type and files not owned by root are skipped, as Keylime does.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Directories not to hash (comma-separated; may be repeated).
    #[arg(short = 's', long, value_name = "DIRS", value_delimiter = ',')]
    skip_path: Vec<PathBuf>,
    /// Also hash files not owned by root.
    #[arg(long)]
    all_owners: bool,
    /// File-digest algorithm: sha1, sha256, sha384, sha512 or sm3_256.
    #[arg(long, value_name = "ALG")]
    algo: Option<String>,
    /// Merge into this base policy (plain or DSSE; the signature is not checked).
    #[arg(short = 'p', long, value_name = "FILE")]
    base_policy: Option<PathBuf>,
    /// Plain-text allowlist in `sha256sum` format.
    #[arg(short = 'a', long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Exclude list: one Python regular expression per line.
    #[arg(short = 'e', long, value_name = "FILE")]
    excludelist: Option<PathBuf>,
    /// Measurement list whose ima-ng/ima-sig digests to add; its first entry's
    /// boot_aggregate also tells the algorithm. Read as Keylime reads an ASCII list
    /// (text lines split on single spaces); a binary list is read as its ASCII rendering.
    #[arg(short = 'm', long, value_name = "FILE")]
    ima_measurement_list: Option<PathBuf>,
    /// Ignore this keyring (repeatable; `*` ignores all).
    #[arg(long, value_name = "NAME")]
    ignored_keyrings: Vec<String>,
    /// Add the digests of keys measured into keyrings (ima-buf entries of the list).
    #[arg(short = 'k', long)]
    keyrings: bool,
    /// Add the digests of other ima-buf entries of the list.
    #[arg(short = 'b', long)]
    ima_buf: bool,
    /// Add an IMA signature verification key (certificate, public or private key, DER
    /// or PEM) to `verification-keys` (repeatable).
    #[arg(long, value_name = "FILE")]
    add_ima_signature_verification_key: Vec<PathBuf>,
    /// Add a boot_aggregate digest (hex; repeatable).
    #[arg(long, value_name = "HEX")]
    boot_aggregate: Vec<String>,
    /// Add the boot_aggregate values of a TCG2 event log
    /// (/sys/kernel/security/tpm0/binary_bios_measurements): for the SHA-1 bank over
    /// PCR 0–7, for every other bank over PCR 0–7 and 0–9 (kernels differ).
    #[arg(long, value_name = "FILE")]
    tcg_log: Option<PathBuf>,
    /// Print only the digests, in the legacy allowlist format.
    #[arg(long)]
    show_legacy_allowlist: bool,
    /// Output file (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Run a command of this area.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Attest(a) => attest(a),
        Command::RuntimePolicy(p) => match p {
            PolicyCommand::Create(c) => create(c),
            PolicyCommand::Diff { a, b } => diff(&a, &b),
            PolicyCommand::Merge { policies, output } => merge(&policies, output.as_deref()),
            PolicyCommand::Sign {
                policy,
                key,
                cert,
                output,
            } => sign(&policy, &key, cert.as_deref(), output.as_deref()),
            PolicyCommand::Verify {
                policy,
                key,
                embedded_certs,
                require_signature,
            } => verify(&policy, key.as_deref(), embedded_certs, require_signature),
        },
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .context("reading standard input")?;
        return Ok(v);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The contents of an input file: mapped (read-only, private) when it is a regular
/// file of at least 1 MiB, else read into memory. Mapping a large policy or list
/// avoids copying it and faulting in a buffer for it; `MAP_POPULATE` maps the
/// (usually cached) pages in one go. The file must not be truncated while it is
/// being read (as with any mapped input).
struct FileData {
    map: Option<(std::ptr::NonNull<u8>, usize)>,
    heap: Vec<u8>,
}

// SAFETY: the mapping is read-only and owned by this value.
unsafe impl Send for FileData {}
// SAFETY: as above; only shared reads.
unsafe impl Sync for FileData {}

impl AsRef<[u8]> for FileData {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for FileData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self.map {
            // SAFETY: a live PROT_READ mapping of `len` bytes, unmapped only on drop.
            Some((p, len)) => unsafe { std::slice::from_raw_parts(p.as_ptr(), len) },
            None => &self.heap,
        }
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        if let Some((p, len)) = self.map.take() {
            // SAFETY: the mapping created in `read_mapped`, not used after this.
            let _ = unsafe { rustix::mm::munmap(p.as_ptr().cast(), len) };
        }
    }
}

/// Read `path` (`-`: standard input) as [`FileData`].
fn read_mapped(path: &Path) -> anyhow::Result<FileData> {
    const MAP_MIN: u64 = 1 << 20;
    if path != Path::new("-") {
        let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let meta = f
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_file() && meta.len() >= MAP_MIN && meta.len() <= usize::MAX as u64 {
            use rustix::mm::{mmap, MapFlags, ProtFlags};
            let len = meta.len() as usize;
            // SAFETY: a new private read-only mapping of the whole file; the pointer
            // is only used through `FileData`.
            let r = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ,
                    MapFlags::PRIVATE | MapFlags::POPULATE,
                    &f,
                    0,
                )
            };
            if let Ok(p) = r {
                if let Some(p) = std::ptr::NonNull::new(p.cast::<u8>()) {
                    return Ok(FileData {
                        map: Some((p, len)),
                        heap: Vec::new(),
                    });
                }
            }
        }
    }
    Ok(FileData {
        map: None,
        heap: read(path)?,
    })
}

/// Write `data` to `path` (temp file + fsync + rename), or to standard output.
fn write_out(path: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
            Ok(())
        }
        Some(p) if p == Path::new("-") => write_out(None, data),
        Some(p) => crate::write_atomic(p, data),
    }
}

/// Read a policy file: plain JSON or a DSSE envelope (verified with `key` if given).
/// The policy keeps the file's contents (its digests point into them).
fn load_policy(path: &Path, key: Option<&Path>) -> anyhow::Result<(RuntimePolicy, bool)> {
    let data = read_mapped(path)?;
    let what = path.display().to_string();
    let (payload, signed) = if dsse::is_envelope(&data) {
        let env = dsse::parse(&data).with_context(|| what.clone())?;
        let payload = match key {
            Some(k) => {
                let pk = PublicKey::from_pem_or_cert(&read(k)?, &k.display().to_string())?;
                dsse::verify(&env, &[pk]).with_context(|| what.clone())?
            }
            None => dsse::payload_unverified(&env).with_context(|| what.clone())?,
        };
        (
            FileData {
                map: None,
                heap: payload,
            },
            true,
        )
    } else {
        if key.is_some() {
            bail!("{what}: the policy is not signed (not a DSSE envelope)");
        }
        (data, false)
    };
    let p = RuntimePolicy::from_json_shared(Arc::new(payload)).with_context(|| what.clone())?;
    Ok((p, signed))
}

fn parse_algo(name: &str) -> anyhow::Result<HashAlgo> {
    HashAlgo::from_name(name).map_err(|e| anyhow!("{e}"))
}

/// Parse `--pcr ALG:HEX` / `--pcrs ALG,FILE` into (bank, value).
fn quote_value(
    pcr: Option<&str>,
    pcrs: Option<&str>,
) -> anyhow::Result<Option<(HashAlgo, Vec<u8>)>> {
    let (bank, hex_text) = match (pcr, pcrs) {
        (Some(p), _) => {
            let (a, h) = p
                .split_once(':')
                .ok_or_else(|| anyhow!("--pcr {p:?}: expected ALG:HEX"))?;
            (parse_algo(a)?, h.trim().to_owned())
        }
        (None, Some(p)) => {
            let (a, f) = p
                .split_once(',')
                .ok_or_else(|| anyhow!("--pcrs {p:?}: expected ALG,FILE"))?;
            let bank = parse_algo(a)?;
            let text =
                String::from_utf8(read(Path::new(f))?).map_err(|_| anyhow!("{f}: not text"))?;
            (
                bank,
                pcr10_from_text(&text, bank)
                    .with_context(|| f.to_owned())?
                    .ok_or_else(|| anyhow!("{f}: no PCR 10 value found"))?,
            )
        }
        (None, None) => return Ok(None),
    };
    let hex_text = hex_text.strip_prefix("0x").unwrap_or(&hex_text);
    let v = hex::decode(hex_text).map_err(|e| anyhow!("PCR value {hex_text:?}: not hex: {e}"))?;
    if v.len() != bank.digest_len() {
        bail!(
            "PCR value for bank {bank}: {} bytes, a {bank} PCR has {}",
            v.len(),
            bank.digest_len()
        );
    }
    Ok(Some((bank, v)))
}

/// Find PCR 10 of `bank` in a PCR dump: a bare hex value (sysfs `pcr-<alg>/10`), or
/// any format `vigil_ima::pcrs` reads; with several PCR 10 lines (one per bank, as in
/// IBM TSS dumps) the one of the bank's length is taken.
fn pcr10_from_text(text: &str, bank: HashAlgo) -> anyhow::Result<Option<String>> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && !trimmed.contains(':') && !trimmed.contains('\n') {
        let v: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        return Ok(Some(v.trim_start_matches("0x").to_owned()));
    }
    let values = vigil_ima::pcrs::parse_pcr_text(text).map_err(|e| anyhow!("{e}"))?;
    // PCR 10 lines of this bank: named so, or unnamed with the bank's length.
    let tens: Vec<&vigil_ima::pcrs::PcrLine> = values.iter().filter(|l| l.index == 10).collect();
    Ok(tens
        .iter()
        .find(|l| l.bank == Some(bank))
        .or_else(|| {
            tens.iter()
                .find(|l| l.bank.is_none() && l.value.len() == bank.digest_len())
        })
        .or(tens.first())
        .map(|l| hex::encode(&l.value)))
}

fn attest(a: AttestArgs) -> anyhow::Result<ExitCode> {
    // Read and parse the policy on its own thread while the list is read and, when
    // it is ASCII (whose parsing and template hashing do not depend on the policy),
    // parsed and hashed in parallel.
    let (policy_path, policy_key) = (a.policy.clone(), a.policy_key.clone());
    // VIGIL_ATTEST_TIMING=1: when each phase ends, on standard error.
    let t0 = std::time::Instant::now();
    let timing = std::env::var_os("VIGIL_ATTEST_TIMING").is_some();
    let phase = move |what: &str| {
        if timing {
            eprintln!(
                "vigil: timing: {what} at {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
    };
    let policy_thread = std::thread::spawn(move || {
        let r = load_policy(&policy_path, policy_key.as_deref());
        phase("policy read and parsed");
        r
    });
    // The quote's bank is needed for the template hashes; errors in --pcr/--pcrs are
    // reported after those of the policy, as before.
    let quote = quote_value(a.pcr.as_deref(), a.pcrs.as_deref());
    let bank = match &quote {
        Ok(Some((b, _))) => *b,
        _ => HashAlgo::Sha1,
    };
    let list_data = read_mapped(&a.list);
    let prepared = match &list_data {
        Ok(d) if list::ListFormat::detect(d) == list::ListFormat::Ascii => {
            Some(list::PreparedAscii::new(d, bank))
        }
        _ => None,
    };
    phase("list read, parsed and hashed");
    let loaded = policy_thread
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (policy, signed) = loaded?;
    if signed && a.policy_key.is_none() {
        eprintln!(
            "vigil: warning: {}: DSSE signature not checked (no --policy-key)",
            a.policy.display()
        );
    }
    let quote = quote?;
    let validator = Validator::new(
        &policy,
        Options {
            fail_on_violations: !a.accept_violations,
        },
    )
    .with_context(|| a.policy.display().to_string())?;
    phase("validator ready");
    let col_algo = match &a.list_hash_alg {
        Some(n) => parse_algo(n)?,
        None => validator.log_hash_alg(),
    };
    let data = match &list_data {
        Ok(d) => d,
        Err(_) => {
            drop(prepared);
            return Err(list_data
                .err()
                .unwrap_or_else(|| anyhow!("reading the list")));
        }
    };
    let mut binary_items = Vec::new();
    let n_entries = if let Some(p) = &prepared {
        p.len()
    } else {
        binary_items =
            list::parse_binary(data, col_algo).with_context(|| a.list.display().to_string())?;
        binary_items.len()
    };

    let mut state = match &a.state {
        Some(p) if p.exists() => {
            Some(State::from_json(&read(p)?).with_context(|| p.display().to_string())?)
        }
        Some(_) => Some(State::default()),
        None => None,
    };
    // Without --list-start the list is complete: skip what the state already covers.
    let (first_entry, skip) = match (a.list_start, &state) {
        (Some(n), _) => (n, 0),
        (None, Some(s)) if s.next_entry as usize <= n_entries => {
            (s.next_entry, s.next_entry as usize)
        }
        _ => (0, 0),
    };
    let info = ListInfo {
        first_entry,
        boottime: a.boottime,
    };
    let q = quote.as_ref().map(|q| q.1.as_slice());
    let report = match &prepared {
        Some(p) => validator.validate_ascii(p, skip, q, state.as_mut(), info)?,
        None => validator.validate(
            binary_items.into_iter().skip(skip),
            bank,
            q,
            state.as_mut(),
            info,
        )?,
    };
    phase("validated");
    if let (Some(p), Some(s)) = (&a.state, &state) {
        crate::write_atomic(p, s.to_json().as_bytes())?;
    }
    print_report(&report, a.json)?;
    if q.is_none() {
        eprintln!(
            "vigil: warning: no PCR quote given (--pcr/--pcrs): the list was not checked against PCR 10"
        );
    }
    // The process exits next: releasing a large policy and list one allocation at a
    // time would cost more than validating them.
    std::mem::forget(prepared);
    std::mem::forget(validator);
    std::mem::forget(policy);
    std::mem::forget(list_data);
    Ok(if report.is_attested() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, r)?;
        writeln!(out)?;
        return Ok(());
    }
    for f in &r.failures {
        writeln!(out, "{f}")?;
    }
    let s = &r.summary;
    let verdict = match r.verdict {
        Verdict::Attested => "attested",
        Verdict::Failed => "NOT attested",
        Verdict::Restart => "NOT attested: reboot detected, state reset; send the full list",
    };
    writeln!(
        out,
        "{verdict}: {} entries, {} passed ({} excluded, {} by signature), {} failed, {} violations, {} keys learned; {} PCR 10 {}{}",
        s.entries,
        s.passed,
        s.excluded,
        s.signature_ok,
        s.failed_entries,
        s.violations,
        s.keys_learned,
        r.bank,
        r.running_pcr,
        match r.pcr_matched_after {
            Some(n) => format!(", quote matched after {n} entries"),
            None => String::new(),
        }
    )?;
    Ok(())
}

fn create(c: CreateArgs) -> anyhow::Result<ExitCode> {
    let algo = match &c.algo {
        Some(n) => {
            let a = parse_algo(n)?;
            if !generate::GENERATOR_ALGOS.contains(&a) {
                bail!("--algo {n}: choose sha1, sha256, sha384, sha512 or sm3_256");
            }
            Some(a)
        }
        None => None,
    };
    let base = match &c.base_policy {
        Some(p) => Some(load_policy(p, None)?.0),
        None => None,
    };
    let allowlist = match &c.allowlist {
        Some(p) => {
            let text = String::from_utf8(read(p)?)
                .map_err(|_| anyhow!("{}: not UTF-8 text", p.display()))?;
            let mut m = DigestMap::new();
            policy::read_allowlist(&text, &p.display().to_string(), &mut m)?;
            Some(m)
        }
        None => None,
    };
    let excludes = match &c.excludelist {
        Some(p) => {
            let text = String::from_utf8(read(p)?)
                .map_err(|_| anyhow!("{}: not UTF-8 text", p.display()))?;
            policy::read_exclude_list(&text, &p.display().to_string())?
        }
        None => Vec::new(),
    };
    let list_items = match &c.ima_measurement_list {
        Some(p) => {
            let mut data = read(p)?;
            if list::ListFormat::detect(&data) == list::ListFormat::Binary {
                data = list::binary_as_ascii(&data, HashAlgo::Sha1)
                    .with_context(|| p.display().to_string())?;
            }
            Some(generate::MeasurementList::read(
                &data,
                &p.display().to_string(),
            )?)
        }
        None => None,
    };
    let rootfs = match &c.rootfs {
        Some(r) => Some(generate::collect_tree(
            r,
            &TreeOptions {
                skip_paths: c.skip_path.clone(),
                all_owners: c.all_owners,
            },
        )?),
        None => None,
    };
    let mut boot_aggregates = c.boot_aggregate.clone();
    if let Some(p) = &c.tcg_log {
        boot_aggregates
            .extend(tcg_boot_aggregates(&read(p)?).with_context(|| p.display().to_string())?);
    }
    let mut keys = Vec::new();
    for k in &c.add_ima_signature_verification_key {
        keys.push((k.display().to_string(), read(k)?));
    }
    let pb = match &rootfs {
        Some(f) if std::io::stderr().is_terminal() => {
            let pb = indicatif::ProgressBar::new(f.len() as u64);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "hashing {bar:40} {pos}/{len} files {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(pb)
        }
        _ => None,
    };
    let policy = generate::create(
        CreateInputs {
            algo,
            base,
            allowlist,
            list: list_items,
            rootfs,
            excludes,
            ignored_keyrings: c.ignored_keyrings.clone(),
            keyrings: c.keyrings,
            ima_buf: c.ima_buf,
            verification_keys: keys,
            boot_aggregates,
            timestamp: generate::python_now(),
        },
        pb.as_ref(),
    )?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let text = if c.show_legacy_allowlist {
        policy::legacy_allowlist(&policy.digests)
    } else {
        policy.to_json()
    };
    write_out(c.output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The boot_aggregate values a TCG2 event log allows.
fn tcg_boot_aggregates(data: &[u8]) -> anyhow::Result<Vec<String>> {
    use vigil_ima::tcg::{boot_aggregate, AggregateRange, EventLog};
    let banks = EventLog::parse(data)
        .map_err(|e| anyhow!("{e}"))?
        .replay()
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::new();
    for algo in [
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha384,
        HashAlgo::Sha512,
        HashAlgo::Sm3,
    ] {
        let Some(bank) = banks.get(algo) else {
            continue;
        };
        let ranges: &[AggregateRange] = if algo == HashAlgo::Sha1 {
            &[AggregateRange::Pcr0To7]
        } else {
            &[AggregateRange::Pcr0To7, AggregateRange::Pcr0To9]
        };
        for &r in ranges {
            out.push(hex::encode(
                boot_aggregate(bank, r).map_err(|e| anyhow!("{e}"))?,
            ));
        }
    }
    if out.is_empty() {
        bail!("the event log has no SHA-1/SHA-2/SM3 bank");
    }
    Ok(out)
}

fn diff_map(out: &mut Vec<String>, section: &str, a: &DigestMap, b: &DigestMap) {
    for (name, la) in a.iter() {
        match b.get(name) {
            None => out.push(format!("- {section} {name}")),
            Some(lb) => {
                for d in la.iter().filter(|d| !lb.contains(d)) {
                    out.push(format!("- {section} {name} {d}"));
                }
                for d in lb.iter().filter(|d| !la.contains(d)) {
                    out.push(format!("+ {section} {name} {d}"));
                }
            }
        }
    }
    for (name, _) in b.iter().filter(|(n, _)| !a.contains(n)) {
        out.push(format!("+ {section} {name}"));
    }
}

fn diff_list(out: &mut Vec<String>, section: &str, a: &[String], b: &[String]) {
    for x in a.iter().filter(|x| !b.contains(x)) {
        out.push(format!("- {section} {x}"));
    }
    for x in b.iter().filter(|x| !a.contains(x)) {
        out.push(format!("+ {section} {x}"));
    }
}

fn diff(a: &Path, b: &Path) -> anyhow::Result<ExitCode> {
    let (pa, _) = load_policy(a, None)?;
    let (pb, _) = load_policy(b, None)?;
    let mut out = Vec::new();
    diff_map(&mut out, "digests", &pa.digests, &pb.digests);
    diff_list(&mut out, "excludes", &pa.excludes, &pb.excludes);
    diff_map(&mut out, "keyrings", &pa.keyrings, &pb.keyrings);
    diff_map(&mut out, "ima-buf", &pa.ima_buf, &pb.ima_buf);
    diff_list(
        &mut out,
        "ima.ignored_keyrings",
        &pa.ima.ignored_keyrings,
        &pb.ima.ignored_keyrings,
    );
    if pa.ima.log_hash_alg != pb.ima.log_hash_alg {
        out.push(format!(
            "~ ima.log_hash_alg {} -> {}",
            pa.ima.log_hash_alg, pb.ima.log_hash_alg
        ));
    }
    if pa.verification_keys()? != pb.verification_keys()? {
        out.push("~ verification-keys differ".into());
    }
    if pa.release != pb.release {
        out.push(format!("~ release {} -> {}", pa.release, pb.release));
    }
    if pa.meta.version != pb.meta.version || pa.meta.generator != pb.meta.generator {
        out.push(format!(
            "~ meta version/generator {}/{} -> {}/{}",
            pa.meta.version, pa.meta.generator, pb.meta.version, pb.meta.generator
        ));
    }
    let mut stdout = std::io::stdout().lock();
    for l in &out {
        writeln!(stdout, "{l}")?;
    }
    Ok(if out.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn merge(policies: &[PathBuf], output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut it = policies.iter();
    let first = it.next().ok_or_else(|| anyhow!("no policies to merge"))?;
    let (mut merged, _) = load_policy(first, None)?;
    for p in it {
        let (other, _) = load_policy(p, None)?;
        merged.merge(&other);
    }
    merged.normalize();
    merged.meta.timestamp = Some(generate::python_now());
    merged
        .validate_schema()
        .context("the merged policy does not follow the schema")?;
    write_out(output, merged.to_json().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn sign(
    policy_path: &Path,
    key: &Path,
    cert: Option<&Path>,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (policy, _) = load_policy(policy_path, None)?;
    policy
        .validate_schema()
        .with_context(|| format!("{}: not a valid runtime policy", policy_path.display()))?;
    let k = PrivateKey::from_pem(&read(key)?, &key.display().to_string())?;
    let signer = match cert {
        Some(c) => Signer::with_certificate(k, &read(c)?)?,
        None => Signer::new(k),
    };
    let env = signer.sign(dsse::KEYLIME_PAYLOAD_TYPE, policy.to_json().as_bytes())?;
    write_out(output, env.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn verify(
    path: &Path,
    key: Option<&Path>,
    embedded: bool,
    require_signature: bool,
) -> anyhow::Result<ExitCode> {
    // An unreadable or unusable key is an input error (exit 2) whatever the policy is.
    let key = match key {
        Some(k) => Some(PublicKey::from_pem_or_cert(
            &read(k)?,
            &k.display().to_string(),
        )?),
        None => None,
    };
    let data = read(path)?;
    let what = path.display().to_string();
    let payload = if dsse::is_envelope(&data) {
        let env = dsse::parse(&data).with_context(|| what.clone())?;
        let res = match (key, embedded) {
            (Some(pk), _) => dsse::verify(&env, &[pk]),
            (None, true) => dsse::verify_with_embedded_certs(&env).map(|(p, _)| p),
            (None, false) => {
                bail!("{what}: a DSSE envelope: give --key, or --embedded-certs")
            }
        };
        match res {
            Ok(p) => {
                println!("{what}: DSSE signature OK");
                p
            }
            Err(e) => {
                println!("{what}: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        if require_signature || key.is_some() {
            println!("{what}: not signed (not a DSSE envelope)");
            return Ok(ExitCode::from(1));
        }
        data
    };
    let res = RuntimePolicy::from_json(&payload).and_then(|p| p.validate_schema().map(|_| p));
    match res {
        Ok(p) => {
            println!(
                "{what}: valid runtime policy: {} digests, {} excludes, {} keyrings, {} ima-buf",
                p.digests.len(),
                p.excludes.len(),
                p.keyrings.len(),
                p.ima_buf.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(vigil_attest::Error::Json { error, .. }) => {
            Err(anyhow!("{what}: runtime policy is not valid JSON: {error}"))
        }
        Err(e) => {
            println!("{what}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
