//! `vigil log show|convert|replay|verify` and `vigil boot-aggregate`: IMA measurement
//! lists (binary, ASCII, JSON Lines), PCR replay, verification against PCR values, and
//! the boot_aggregate of TCG event logs; plus evmctl's `ima_measurement` and
//! `ima_boot_aggregate` with evmctl's output.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use vigil_ima::list::{
    ascii, binary, AsciiReader, Bank, BinaryReader, Endian, ExtendMode, Field, FieldId, PcrBanks,
    Record, RecordMark, Replay, ReplayStep, TailPolicy, NUM_PCRS,
};
use vigil_ima::list::{check_signatures, SigCheck};
use vigil_ima::tcg::{boot_aggregate, AggregateRange, EventLog};
use vigil_ima::{pcrs, HashAlgo, KeyRing};

/// Where the kernel exports the measurement list.
const SECURITYFS_DIRS: &[&str] = &[
    "/sys/kernel/security/ima",
    "/sys/kernel/security/integrity/ima",
];
/// The kernel's copy of the firmware's boot event log.
const BIOS_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// Per-bank PCR values in sysfs (kernels ≥ 5.12): `<dir>/pcr-<alg>/<n>`.
const SYSFS_TPM: &str = "/sys/class/tpm/tpm0";

/// Commands for measurement lists and boot aggregates.
#[derive(Subcommand)]
pub enum Command {
    /// IMA measurement lists: show, convert, replay PCRs, verify against PCR values.
    #[command(subcommand)]
    Log(LogCommand),
    /// Compute the IMA boot_aggregate from a TCG boot event log or PCR values.
    ///
    /// With an EVENTLOG (TPM 2.0 crypto-agile or TPM 1.2 SHA-1 format), the log is
    /// replayed and the boot_aggregate of each of its banks printed; with --pcrs, the
    /// given PCR values are used; with neither, the kernel's event log
    /// (/sys/kernel/security/tpm0/binary_bios_measurements) or the sysfs PCR files
    /// (`/sys/class/tpm/tpm0/pcr-<alg>/<n>`).
    ///
    /// Output: one `<alg>:<hex>` line per bank, as `evmctl ima_boot_aggregate`
    /// prints it — SHA-1 over PCR 0–7, other banks over PCR 0–9 (current kernels).
    ///
    /// Exit status: 0 printed, 2 unreadable input.
    BootAggregate(BootAggregateArgs),
}

/// `vigil log …`
#[derive(Subcommand)]
pub enum LogCommand {
    /// Print a measurement list: a table (default), the kernel's exact ASCII lines
    /// (--ascii), or JSON Lines (--json).
    ///
    /// The table has one row per record: number, PCR, status (`ok` when the template
    /// digest matches the data, `BAD` when not, `viol` for a violation), template
    /// digest, template name, and the fields as the kernel renders them.
    ///
    /// Exit status: 0 printed, 2 unreadable or malformed list.
    Show(ShowArgs),
    /// Convert a measurement list between binary, ASCII and JSON Lines.
    ///
    /// Binary → ASCII → binary is exact for lists whose names contain no NUL bytes or
    /// newlines; binary → JSON → binary is always exact. Output to a file is written to
    /// a temporary file, synced and renamed into place.
    ///
    /// Exit status: 0 converted, 2 unreadable or malformed input.
    Convert(ConvertArgs),
    /// Replay a measurement list into PCR banks and print the PCRs it extends.
    ///
    /// Each record's template data is hashed with each bank's algorithm and extended
    /// into its PCR; violations (all-zero template digests) extend 0xFF…. With
    /// --sha1-padded, every bank is extended with the zero-padded SHA-1 template
    /// digest instead, as kernels before 5.8 did. With --state, the replay resumes from
    /// a saved state and saves the new one: feed the same (growing) list again to
    /// process only the records added since.
    ///
    /// Exit status: 0 replayed, 1 some template digest does not match its data,
    /// 2 unreadable or malformed input.
    Replay(ReplayArgs),
    /// Verify a measurement list against PCR values (a TPM quote, a PCR dump).
    ///
    /// Checks every record's template digest and replays the list per bank (current
    /// kernels) and SHA-1 zero-padded (kernels < 5.8). A bank matches when, after some
    /// record, every PCR the list extended equals the given value: the list may be
    /// ahead of the PCRs (the kernel appends before it extends), never behind.
    ///
    /// PCR files (`--pcrs [ALG,]FILE`, ALG defaults to sha1) may be evmctl's
    /// `PCR-NN: hex`, tsspcrread's `N: hex`, IBM TSS ` PCR NN: xx xx …` dumps or
    /// `vigil log replay` output. With no --pcrs, the sysfs PCR files of the TPM are
    /// read.
    ///
    /// With --verify-sig, every signature in the list is checked too (see below).
    ///
    /// Exit status: 0 every given bank matches, every template digest is correct,
    /// (with --verify-sig) every signature verifies and (unless --ignore-violations)
    /// there is no violation; 1 otherwise, naming the first record that diverges;
    /// 2 unreadable input.
    Verify(VerifyArgs),
}

/// Input format of a list.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Detect from the first byte.
    Auto,
    /// The kernel's binary list.
    Binary,
    /// The kernel's ASCII list.
    Ascii,
    /// JSON Lines, one record per line, as written by `--json`/`--to json`.
    Json,
}

/// Byte order of a binary list.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndianArg {
    /// Detect from the first record's PCR index.
    Auto,
    /// Little-endian (x86, arm64, and `ima_canonical_fmt`).
    Little,
    /// Big-endian (s390x, ppc64 without `ima_canonical_fmt`).
    Big,
    /// This machine's byte order.
    Native,
}

impl EndianArg {
    fn fixed(self) -> Option<Endian> {
        match self {
            EndianArg::Auto => None,
            EndianArg::Little => Some(Endian::Little),
            EndianArg::Big => Some(Endian::Big),
            EndianArg::Native => Some(Endian::native()),
        }
    }
}

/// Options naming and describing the input list.
#[derive(Args, Clone)]
pub struct InputArgs {
    /// The measurement list: a file, `-` for standard input. Default: the kernel's
    /// live list, /sys/kernel/security/ima/binary_runtime_measurements.
    pub file: Option<PathBuf>,
    /// Format of the input.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Algorithm of the template digests in the list: sha1 for the legacy files, the
    /// bank's for `*_runtime_measurements_<alg>`. Default: from a `_<alg>` suffix of
    /// the file name, else sha1 (binary) or by length (ASCII).
    #[arg(long, value_name = "ALG")]
    pub template_hash: Option<String>,
    /// Byte order of a binary list.
    #[arg(long, value_enum, default_value = "auto")]
    pub endian: EndianArg,
    /// Stop at the last whole record instead of failing on a truncated one (always on
    /// for the kernel's live files, which grow while they are read).
    #[arg(long)]
    pub partial: bool,
}

/// `vigil log show`
#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Print exactly the kernel's ASCII list (`ascii_runtime_measurements`).
    #[arg(long, conflicts_with = "json")]
    pub ascii: bool,
    /// Print JSON Lines: one object per record with every field's stored bytes (hex)
    /// and its rendering.
    #[arg(long)]
    pub json: bool,
}

/// Output format of `convert`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// The kernel's binary list.
    Binary,
    /// The kernel's ASCII list.
    Ascii,
    /// JSON Lines.
    Json,
}

/// `vigil log convert`
#[derive(Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: OutFormat,
    /// Output file (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Byte order of binary output (default: this machine's, as the kernel writes it).
    #[arg(long, value_enum, default_value = "native")]
    pub out_endian: EndianArg,
}

/// `vigil log replay`
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// PCR bank to compute (repeatable; default: sha1 and sha256). Any kernel hash
    /// name: sha1, sha256, sha384, sha512, sm3, …
    #[arg(long = "bank", value_name = "ALG")]
    pub banks: Vec<String>,
    /// Extend the zero-padded SHA-1 template digest into every bank (kernels < 5.8).
    #[arg(long)]
    pub sha1_padded: bool,
    /// Resume from the replay state in FILE (if it exists) and save the new state to
    /// it: the list is read from the saved offset on, so it must be the same list (or a
    /// longer version of it) and seekable. A list that does not hold, just before the
    /// saved offset, the record the state was saved after (a shorter, rotated or other
    /// list) is an error, as is a --bank other than the saved banks.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print JSON (the replay state) instead of `<alg> PCR-NN: <hex>` lines.
    #[arg(long)]
    pub json: bool,
}

/// `vigil log verify`
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// PCR values of bank ALG (default sha1) in FILE; repeat for several banks.
    #[arg(long = "pcrs", value_name = "[ALG,]FILE")]
    pub pcrs: Vec<String>,
    /// Accept violation records (ToMToU, open-writers), which the replay extends as
    /// 0xFF… either way.
    #[arg(long)]
    pub ignore_violations: bool,
    /// Only this bank has to match (default: every bank given).
    #[arg(long, value_name = "ALG")]
    pub verify_bank: Option<String>,
    /// Check the signature of every entry that carries one — `ima-sig`/`ima-sigv2`
    /// (and custom templates with a `sig` field) against the entry's file digest,
    /// `evm-sig` against the EVM portable digest of the entry's xattrs, owner and mode,
    /// `ima-modsig` (appended PKCS#7) against its d-modsig digest — with the keys of
    /// --key. A bad signature or a key id with no key fails the verification, naming
    /// the record.
    #[arg(long)]
    pub verify_sig: bool,
    /// Verification key (X.509 certificate, DER or PEM, or a public key), or a
    /// comma-separated list of them; repeatable. evmctl's default is
    /// /etc/keys/x509_evm.der.
    #[arg(short, long = "key", value_name = "FILE[,FILE…]")]
    pub keys: Vec<String>,
    /// Print the outcome for each bank even on success, and each verified signature
    /// (with --evmctl: evmctl's verbosity, repeatable).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Behave exactly as `evmctl ima_measurement` (1.4): its replay rules (violations
    /// extend zeros without --ignore-violations), messages and exit status (125 for
    /// errors). Reads only binary SHA-1 lists and the sha1/sha256 banks.
    #[arg(long)]
    pub evmctl: bool,
}

/// `vigil boot-aggregate`
#[derive(Args)]
pub struct BootAggregateArgs {
    /// TCG boot event log (TPM 2.0 crypto-agile or TPM 1.2). Default: the kernel's.
    pub eventlog: Option<PathBuf>,
    /// PCR values of bank ALG (default sha1) in FILE, instead of an event log.
    #[arg(long = "pcrs", value_name = "[ALG,]FILE", conflicts_with = "eventlog")]
    pub pcrs: Vec<String>,
    /// Which PCRs to aggregate: `kernel` (SHA-1 0–7, others 0–9, as current kernels),
    /// `0-7` (kernels before 5.8 for every bank), `0-9`, or `all` (both variants,
    /// labelled).
    #[arg(long, value_enum, default_value = "kernel")]
    pub range: RangeArg,
    /// Only this bank (repeatable).
    #[arg(long = "bank", value_name = "ALG")]
    pub banks: Vec<String>,
    /// Behave exactly as `evmctl ima_boot_aggregate`: sha1 and sha256 banks only, its
    /// messages and exit status (125 when no PCRs can be read).
    #[arg(long)]
    pub evmctl: bool,
    /// With --evmctl: evmctl's verbosity (repeatable).
    #[arg(short, long, action = clap::ArgAction::Count, requires = "evmctl")]
    pub verbose: u8,
}

/// PCR range of a boot_aggregate.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RangeArg {
    /// SHA-1 over PCR 0–7, other banks over PCR 0–9.
    Kernel,
    /// PCR 0–7.
    #[value(name = "0-7")]
    Pcr0To7,
    /// PCR 0–9.
    #[value(name = "0-9")]
    Pcr0To9,
    /// Both variants.
    All,
}

/// Run a command of this module.
pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Log(LogCommand::Show(a)) => show(a),
        Command::Log(LogCommand::Convert(a)) => convert(a),
        Command::Log(LogCommand::Replay(a)) => replay(a),
        Command::Log(LogCommand::Verify(a)) => verify(a),
        Command::BootAggregate(a) => boot_aggregate_cmd(a),
    }
}

// ---------------------------------------------------------------------------------------
// Input

/// The default live list file.
fn live_list() -> PathBuf {
    for d in SECURITYFS_DIRS {
        let p = Path::new(d).join("binary_runtime_measurements");
        if p.exists() {
            return p;
        }
    }
    Path::new(SECURITYFS_DIRS[0]).join("binary_runtime_measurements")
}

fn parse_algo(name: &str) -> Result<HashAlgo> {
    HashAlgo::from_name(name).map_err(|e| anyhow!("{e}"))
}

/// The `_<alg>` suffix of a per-bank list file name.
fn algo_from_file_name(path: &Path) -> Option<HashAlgo> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.rsplit_once('_')?;
    HashAlgo::from_name(suffix).ok()
}

/// An opened list: a stream of records.
pub struct Source {
    kind: SourceKind,
    /// Byte order of the list's numbers.
    pub endian: Endian,
    /// Name for messages.
    pub name: String,
    index: u64,
    /// Algorithm of the template digests, when known.
    pub digest_algo: Option<HashAlgo>,
}

enum SourceKind {
    Binary(BinaryReader<Box<dyn BufRead>>),
    Ascii(AsciiReader<Box<dyn BufRead>>),
    Json(io::Lines<Box<dyn BufRead>>),
}

impl Source {
    /// Open the input an [`InputArgs`] names, skipping `skip` bytes (resume).
    pub fn open(args: &InputArgs, skip: Option<(u64, u64)>) -> Result<Source> {
        let path = args.file.clone().unwrap_or_else(live_list);
        let name = path.display().to_string();
        let live = path.starts_with("/sys/kernel/security");
        let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            if skip.is_some_and(|(_, off)| off > 0) {
                bail!("cannot resume a replay from standard input (it cannot seek)");
            }
            Box::new(BufReader::with_capacity(1 << 16, io::stdin()))
        } else {
            let mut f = File::open(&path).with_context(|| format!("cannot open {name}"))?;
            if let Some((_, off)) = skip {
                f.seek(SeekFrom::Start(off))
                    .with_context(|| format!("cannot seek {name} to {off}"))?;
            }
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        let head = reader
            .fill_buf()
            .with_context(|| format!("cannot read {name}"))?
            .to_vec();
        // The same detection as `vigil attest --list`, plus JSON Lines.
        let format = match args.format {
            Format::Auto if head.trim_ascii_start().starts_with(b"{") => Format::Json,
            Format::Auto => match vigil_attest::list::ListFormat::detect(&head) {
                vigil_attest::list::ListFormat::Ascii => Format::Ascii,
                vigil_attest::list::ListFormat::Binary => Format::Binary,
            },
            f => f,
        };
        let tail = if args.partial || live {
            TailPolicy::Stop
        } else {
            TailPolicy::Error
        };
        let named = match &args.template_hash {
            Some(a) => Some(parse_algo(a)?),
            None => algo_from_file_name(&path),
        };
        let (index, offset) = skip.unwrap_or((0, 0));
        let mut endian = args.endian.fixed().unwrap_or_else(Endian::native);
        let kind = match format {
            Format::Binary => {
                if args.endian == EndianArg::Auto && head.len() >= 4 {
                    endian = Endian::detect(head[..4].try_into().expect("4 bytes"));
                }
                let algo = named.unwrap_or(HashAlgo::Sha1);
                SourceKind::Binary(
                    BinaryReader::new(reader, algo, endian)
                        .tail_policy(tail)
                        .starting_at(index, offset),
                )
            }
            Format::Ascii => SourceKind::Ascii(
                AsciiReader::new(reader, named)
                    .endian(endian)
                    .tail_policy(tail),
            ),
            Format::Json => SourceKind::Json(reader.lines()),
            Format::Auto => unreachable!("resolved above"),
        };
        let digest_algo = match &kind {
            SourceKind::Binary(b) => Some(b.digest_algo()),
            _ => named,
        };
        Ok(Source {
            kind,
            endian,
            name,
            index,
            digest_algo,
        })
    }

    /// Bytes consumed so far (binary lists: the offset of the next record).
    pub fn offset(&self) -> Option<u64> {
        match &self.kind {
            SourceKind::Binary(b) => Some(b.offset()),
            _ => None,
        }
    }

    /// The next record with its number.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>> {
        let rec = match &mut self.kind {
            SourceKind::Binary(b) => b.next().transpose()?,
            SourceKind::Ascii(a) => a.next_record()?,
            SourceKind::Json(lines) => loop {
                match lines.next() {
                    None => break None,
                    Some(line) => {
                        // Callers name the list.
                        let line = line.context("reading")?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        let j: JsonRecord = serde_json::from_str(&line)
                            .with_context(|| format!("record {}: bad JSON", self.index))?;
                        break Some(
                            j.into_record(self.endian)
                                .with_context(|| format!("record {}", self.index))?,
                        );
                    }
                }
            },
        };
        Ok(rec.map(|r| {
            let i = self.index;
            self.index += 1;
            self.digest_algo.get_or_insert(r.digest_algo);
            (i, r)
        }))
    }

    /// Hand the next record, as the parts a replay needs, to `f`: binary lists
    /// straight from the read buffer, without decoding fields.
    pub fn next_parts<T>(
        &mut self,
        mut f: impl FnMut(&Parts<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        if let SourceKind::Binary(b) = &mut self.kind {
            let (digest_algo, endian) = (b.digest_algo(), b.endian());
            let Some(raw) = b.next_raw()? else {
                return Ok(None);
            };
            self.index = raw.index + 1;
            let parts = Parts {
                index: raw.index,
                pcr: raw.pcr,
                digest: raw.digest,
                digest_algo,
                template_name: raw.template_name,
                data: raw.data,
                endian,
            };
            return f(&parts)
                .with_context(|| format!("record {} at offset {}", raw.index, raw.offset))
                .map(Some);
        }
        let Some((index, r)) = self.next_record()? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        r.encode_data(self.endian, &mut data);
        let parts = Parts {
            index,
            pcr: r.pcr,
            digest: &r.digest,
            digest_algo: r.digest_algo,
            template_name: &r.template_name,
            data: &data,
            endian: self.endian,
        };
        f(&parts)
            .with_context(|| format!("record {index}"))
            .map(Some)
    }
}

/// A record as a replay sees it.
pub struct Parts<'a> {
    /// Record number.
    pub index: u64,
    /// PCR.
    pub pcr: u32,
    /// Template digest as logged.
    pub digest: &'a [u8],
    /// Its algorithm.
    pub digest_algo: HashAlgo,
    /// Template name.
    pub template_name: &'a str,
    /// Template data as in the binary list.
    pub data: &'a [u8],
    /// Byte order of `data`.
    pub endian: Endian,
}

impl Parts<'_> {
    /// Extend `replay` with this record.
    pub fn extend(&self, replay: &mut Replay) -> Result<ReplayStep> {
        Ok(replay.extend_data(
            self.pcr,
            self.digest,
            self.digest_algo,
            self.template_name,
            self.data,
            self.endian,
        )?)
    }
}

// ---------------------------------------------------------------------------------------
// JSON Lines

/// One record in JSON: lossless (every field's stored bytes in hex) plus renderings.
#[derive(Serialize, Deserialize)]
pub struct JsonRecord {
    /// Record number (output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// PCR.
    pub pcr: u32,
    /// Algorithm of `template_digest`.
    pub template_hash_algo: String,
    /// Template digest, hex.
    pub template_digest: String,
    /// Template name.
    pub template: String,
    /// Whether this is a violation (output only).
    #[serde(default)]
    pub violation: bool,
    /// Fields.
    pub fields: Vec<JsonField>,
}

/// One field in JSON.
#[derive(Serialize, Deserialize)]
pub struct JsonField {
    /// Field id (`d-ng`, `n-ng`, …; `?` for fields of an unknown template).
    pub id: String,
    /// Stored bytes, hex.
    pub data: String,
    /// The kernel's ASCII rendering (output only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl JsonRecord {
    fn from_record(index: u64, r: &Record, endian: Endian) -> JsonRecord {
        JsonRecord {
            index: Some(index),
            pcr: r.pcr,
            template_hash_algo: r.digest_algo.name().to_owned(),
            template_digest: hex::encode(&r.digest),
            template: r.template_name.clone(),
            violation: r.is_violation(),
            fields: r
                .fields
                .iter()
                .map(|f| {
                    let mut text = Vec::new();
                    f.render_ascii(endian, &mut text);
                    JsonField {
                        id: f.id().as_str().to_owned(),
                        data: hex::encode(f.encode(endian)),
                        text: Some(String::from_utf8_lossy(&text).into_owned()),
                    }
                })
                .collect(),
        }
    }

    fn into_record(self, endian: Endian) -> Result<Record> {
        let digest_algo = parse_algo(&self.template_hash_algo)?;
        let digest = hex::decode(&self.template_digest).context("template_digest is not hex")?;
        if digest.len() != digest_algo.digest_len() {
            bail!(
                "template_digest has {} bytes, {digest_algo} needs {}",
                digest.len(),
                digest_algo.digest_len()
            );
        }
        let template = vigil_ima::list::Template::from_name(&self.template);
        let mut fields = Vec::with_capacity(self.fields.len());
        for (i, f) in self.fields.into_iter().enumerate() {
            let id = if f.id == "?" {
                FieldId::Unknown
            } else {
                FieldId::from_id(&f.id)
                    .ok_or_else(|| anyhow!("field {i}: unknown id {:?}", f.id))?
            };
            if let Some(ids) = &template.fields {
                if ids.get(i) != Some(&id) {
                    bail!(
                        "field {i} is {:?}, template {:?} has {:?} there",
                        f.id,
                        self.template,
                        ids.get(i)
                    );
                }
            }
            let data =
                hex::decode(&f.data).with_context(|| format!("field {i} data is not hex"))?;
            fields.push(Field::decode(id, &data, endian));
        }
        if let Some(ids) = &template.fields {
            if ids.len() != fields.len() {
                bail!(
                    "template {:?} has {} fields, the record {}",
                    self.template,
                    ids.len(),
                    fields.len()
                );
            }
        }
        let r = Record {
            pcr: self.pcr,
            digest_algo,
            digest,
            template_name: self.template,
            fields,
        };
        if (r.pcr as usize) >= NUM_PCRS {
            bail!("PCR {} is not below {NUM_PCRS}", r.pcr);
        }
        if r.is_ima_template() {
            // Validate the special layout through the binary encoder and parser.
            let mut b = Vec::new();
            binary::encode_record(&r, endian, &mut b);
            binary::parse_all(&b, digest_algo, endian)?;
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------
// Output helpers

/// Where output goes: standard output, or a temporary file renamed into place.
struct Output {
    w: BufWriter<Box<dyn Write>>,
    file: Option<(tempfile::NamedTempFile, PathBuf)>,
}

impl Output {
    fn new(path: Option<&Path>) -> Result<Output> {
        match path {
            None => Ok(Output {
                w: BufWriter::with_capacity(1 << 16, Box::new(crate::stdout())),
                file: None,
            }),
            Some(p) if p.as_os_str() == "-" => Output::new(None),
            Some(p) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
                    format!("cannot create a temporary file in {}", dir.display())
                })?;
                let f = tmp.reopen()?;
                Ok(Output {
                    w: BufWriter::with_capacity(1 << 16, Box::new(f)),
                    file: Some((tmp, p.to_owned())),
                })
            }
        }
    }

    fn finish(self) -> Result<()> {
        let mut w = self.w;
        w.flush().map_err(out_err)?;
        drop(w);
        if let Some((tmp, path)) = self.file {
            tmp.as_file().sync_all()?;
            tmp.persist(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// A write error of the output (a closed standard output still ends the command
/// quietly: see `crate::stdout`).
fn out_err(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("writing output")
}

// ---------------------------------------------------------------------------------------
// show / convert

fn show(a: ShowArgs) -> Result<ExitCode> {
    let mut src = Source::open(&a.input, None)?;
    let mut out = Output::new(None)?;
    let mut line = Vec::new();
    while let Some((i, r)) = src.next_record().with_context(|| src.name.clone())? {
        line.clear();
        if a.ascii {
            ascii::format_record(&r, src.endian, &mut line);
        } else if a.json {
            serde_json::to_writer(&mut line, &JsonRecord::from_record(i, &r, src.endian))?;
            line.push(b'\n');
        } else {
            let status = if r.is_violation() {
                "viol"
            } else if r.template_digest(r.digest_algo, src.endian)? == r.digest {
                "ok"
            } else {
                "BAD"
            };
            write!(
                line,
                "{i:>6} {:>2} {status:<4} {} {}",
                r.pcr,
                hex::encode(&r.digest),
                r.template_name
            )?;
            for f in &r.fields {
                line.push(b' ');
                f.render_ascii(src.endian, &mut line);
            }
            line.push(b'\n');
        }
        out.w.write_all(&line).map_err(out_err)?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn convert(a: ConvertArgs) -> Result<ExitCode> {
    let mut src = Source::open(&a.input, None)?;
    let out_endian = a.out_endian.fixed().unwrap_or(src.endian);
    let mut out = Output::new(a.output.as_deref())?;
    let mut buf = Vec::new();
    while let Some((i, r)) = src.next_record().with_context(|| src.name.clone())? {
        buf.clear();
        match a.to {
            OutFormat::Binary => binary::encode_record(&r, out_endian, &mut buf),
            OutFormat::Ascii => ascii::format_record(&r, out_endian, &mut buf),
            OutFormat::Json => {
                serde_json::to_writer(&mut buf, &JsonRecord::from_record(i, &r, out_endian))?;
                buf.push(b'\n');
            }
        }
        out.w.write_all(&buf).map_err(out_err)?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// replay

fn bank_algos(names: &[String]) -> Result<Vec<HashAlgo>> {
    if names.is_empty() {
        return Ok(vec![HashAlgo::Sha1, HashAlgo::Sha256]);
    }
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(parse_algo)
        .collect()
}

fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let mode = if a.sha1_padded {
        ExtendMode::Sha1Padded
    } else {
        ExtendMode::PerBank
    };
    let mut state = match &a.state {
        Some(p) if p.exists() => {
            let s = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let st: Replay = serde_json::from_slice(&s)
                .with_context(|| format!("{}: not a replay state", p.display()))?;
            if st.mode != mode {
                bail!(
                    "{}: saved with a different --sha1-padded setting",
                    p.display()
                );
            }
            let saved: Vec<HashAlgo> = st.banks.banks.iter().map(|b| b.algo).collect();
            let asked = bank_algos(&a.banks)?;
            if !a.banks.is_empty()
                && (asked.iter().any(|x| !saved.contains(x))
                    || saved.iter().any(|x| !asked.contains(x)))
            {
                bail!(
                    "{}: the saved replay has the banks {}, not those of --bank (delete the state to replay other banks from the start)",
                    p.display(),
                    saved.iter().map(|x| x.name()).collect::<Vec<_>>().join(",")
                );
            }
            st
        }
        _ => Replay::new(&bank_algos(&a.banks)?, mode),
    };
    if let Some(p) = a.state.as_ref().filter(|_| state.offset > 0) {
        check_resume(&a.input, &state).with_context(|| {
            format!(
                "cannot resume the replay saved in {} (delete it to replay the list from the start)",
                p.display()
            )
        })?;
    }
    let resume = a.state.is_some().then_some((state.records, state.offset));
    let mut src = Source::open(&a.input, resume)?;
    let mut first_bad = None;
    let before = state.records;
    if a.state.is_some() && src.offset().is_none() {
        bail!("--state needs a binary list (ASCII and JSON lists cannot be resumed by offset)");
    }
    let mut last = LastRecord::default();
    loop {
        let start = src.offset().unwrap_or_default();
        let Some((i, step)) = src
            .next_parts(|p| {
                let step = p.extend(&mut state)?;
                if a.state.is_some() {
                    last.set(start, p);
                }
                Ok((p.index, step))
            })
            .with_context(|| src.name.clone())?
        else {
            break;
        };
        if step.digest_ok == Some(false) && first_bad.is_none() {
            first_bad = Some(i);
        }
    }
    if let Some(off) = src.offset() {
        state.offset = off;
    }
    if a.state.is_some() && state.records > before {
        state.last = Some(last.mark()?);
    }
    let mut out = crate::stdout();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &state)?;
        writeln!(out)?;
    } else {
        for b in &state.banks.banks {
            for p in 0..NUM_PCRS {
                if state.touched & (1 << p) != 0 {
                    writeln!(out, "{} PCR-{p:02}: {}", b.algo, hex::encode(b.pcr(p)))?;
                }
            }
        }
    }
    if let Some(p) = &a.state {
        crate::write_atomic(p, &serde_json::to_vec_pretty(&state)?)?;
    }
    if let Some(i) = first_bad {
        eprintln!(
            "{}: {} of {} records have a template digest that does not match their data (first: record {i})",
            src.name,
            state.bad_digests,
            state.records - before
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Check that the list `input` still holds, where the saved replay `state` stopped,
/// the record it replayed last: the same list, or a longer version of it.
fn check_resume(input: &InputArgs, state: &Replay) -> Result<()> {
    let mark = state.last.as_ref().ok_or_else(|| {
        anyhow!("the state does not record its last record (saved by an older vigil)")
    })?;
    let index = state.records.saturating_sub(1);
    let mut src = Source::open(input, Some((index, mark.offset)))?;
    let seen = src
        .next_parts(|p| {
            Ok(RecordMark::new(
                mark.offset,
                p.pcr,
                p.digest,
                p.template_name,
                p.data,
            )?)
        })
        .with_context(|| src.name.clone())?;
    match seen {
        Some(m) if m == *mark && src.offset() == Some(state.offset) => Ok(()),
        Some(_) => bail!(
            "{}: record {index} at offset {} is not the one the state was saved after: not the same list (rotated or replaced?)",
            src.name,
            mark.offset
        ),
        None => bail!(
            "{}: the list ends before offset {} where the saved replay stopped: not the same list (shorter, rotated or replaced?)",
            src.name,
            state.offset
        ),
    }
}

/// The parts of the last record a replay read (buffers reused from record to record),
/// to save its [`RecordMark`] with the state.
#[derive(Default)]
struct LastRecord {
    offset: u64,
    pcr: u32,
    digest: Vec<u8>,
    template_name: String,
    data: Vec<u8>,
}

impl LastRecord {
    fn set(&mut self, offset: u64, p: &Parts<'_>) {
        self.offset = offset;
        self.pcr = p.pcr;
        self.digest.clear();
        self.digest.extend_from_slice(p.digest);
        self.template_name.clear();
        self.template_name.push_str(p.template_name);
        self.data.clear();
        self.data.extend_from_slice(p.data);
    }

    fn mark(&self) -> Result<RecordMark> {
        Ok(RecordMark::new(
            self.offset,
            self.pcr,
            &self.digest,
            &self.template_name,
            &self.data,
        )?)
    }
}

// ---------------------------------------------------------------------------------------
// PCR values

/// PCR values to compare with: banks and, per bank, which PCRs were given.
pub struct ExpectedPcrs {
    /// The values.
    pub banks: PcrBanks,
    /// Per bank (same order), bit `i` set if PCR `i` was given.
    pub given: Vec<u32>,
}

/// Parse `--pcrs [ALG,]FILE` arguments.
pub fn read_pcr_files(specs: &[String]) -> Result<ExpectedPcrs> {
    let mut banks = PcrBanks::default();
    let mut given = Vec::new();
    for spec in specs {
        let (alg, path) = match spec.split_once(',') {
            Some((a, p)) => (parse_algo(a)?, p),
            None => (HashAlgo::Sha1, spec.as_str()),
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read PCR file {path}"))?;
        let mut bank = Bank::new(alg);
        let mask = pcrs::load_bank(&mut bank, &text).with_context(|| format!("PCR file {path}"))?;
        if let Some(i) = banks.banks.iter().position(|b| b.algo == alg) {
            banks.banks[i] = bank;
            given[i] = mask;
        } else {
            banks.banks.push(bank);
            given.push(mask);
        }
    }
    Ok(ExpectedPcrs { banks, given })
}

/// Read the TPM's PCRs from sysfs: per-bank files (`pcr-<alg>/<n>`, kernels ≥ 5.12),
/// else the TPM 1.2 `pcrs` file.
pub fn read_sysfs_pcrs(algos: &[HashAlgo]) -> Result<ExpectedPcrs> {
    let mut banks = PcrBanks::default();
    let mut given = Vec::new();
    for &alg in algos {
        let dir = Path::new(SYSFS_TPM).join(format!("pcr-{}", alg.name()));
        if !dir.is_dir() {
            continue;
        }
        let mut bank = Bank::new(alg);
        let mut mask = 0;
        for i in 0..NUM_PCRS {
            let Ok(text) = std::fs::read_to_string(dir.join(i.to_string())) else {
                continue;
            };
            let v = hex::decode(text.trim()).with_context(|| format!("{}/{i}", dir.display()))?;
            bank.set(i, &v)?;
            mask |= 1 << i;
        }
        if mask != 0 {
            banks.banks.push(bank);
            given.push(mask);
        }
    }
    if banks.banks.is_empty() {
        for p in [
            format!("{SYSFS_TPM}/device/pcrs"),
            "/sys/class/misc/tpm0/device/pcrs".to_owned(),
        ] {
            if let Ok(text) = std::fs::read_to_string(&p) {
                let mut bank = Bank::new(HashAlgo::Sha1);
                let mask = pcrs::load_bank(&mut bank, &text).with_context(|| p.clone())?;
                banks.banks.push(bank);
                given.push(mask);
                break;
            }
        }
    }
    if banks.banks.is_empty() {
        bail!("no TPM PCRs readable in {SYSFS_TPM} (give them with --pcrs)");
    }
    Ok(ExpectedPcrs { banks, given })
}

// ---------------------------------------------------------------------------------------
// verify

/// Signature outcomes of a verification.
#[derive(Default)]
struct SigStats {
    verified: u64,
    failed: u64,
    unchecked: u64,
    first_failure: Option<u64>,
}

impl SigStats {
    /// Check the signatures of one entry, printing failures (and with `verbose`
    /// successes) with the record number and name.
    fn check(&mut self, p: &Parts<'_>, ring: &KeyRing, verbose: bool) -> Result<()> {
        let r = Record::decode(
            p.pcr,
            p.digest_algo,
            p.digest,
            p.template_name,
            p.data,
            p.endian,
        )?;
        for (field, outcome) in check_signatures(&r, ring, p.endian) {
            let name = String::from_utf8_lossy(r.name().unwrap_or_default());
            let line = format!("record {} {name}: {field}: {outcome}", p.index);
            match outcome {
                SigCheck::Verified(_) => {
                    self.verified += 1;
                    if verbose {
                        writeln!(crate::stdout(), "{line}")?;
                    }
                }
                SigCheck::Unchecked(_) => {
                    self.unchecked += 1;
                    if verbose {
                        eprintln!("{line}");
                    }
                }
                SigCheck::UnknownKey(_) | SigCheck::Failed { .. } => {
                    self.failed += 1;
                    self.first_failure.get_or_insert(p.index);
                    eprintln!("{line}");
                }
            }
        }
        Ok(())
    }
}

fn matches_now(computed: &Bank, expected: &Bank, given: u32, touched: u32) -> bool {
    touched != 0
        && touched & !given == 0
        && (0..NUM_PCRS)
            .filter(|p| touched & (1 << p) != 0)
            .all(|p| computed.pcr(p) == expected.pcr(p))
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    if a.evmctl {
        let file = a.input.file.clone().unwrap_or_else(live_list);
        let keys = (!a.keys.is_empty()).then(|| a.keys.join(","));
        return Ok(evmctl_ima_measurement(
            &file,
            &a.pcrs,
            a.ignore_violations,
            a.verify_bank.as_deref(),
            a.verbose.into(),
            a.verify_sig,
            keys.as_deref(),
        ));
    }
    let ring = if a.verify_sig {
        let mut ring = KeyRing::new();
        for list in &a.keys {
            for k in KeyRing::load_list(list)
                .with_context(|| format!("--key {list}"))?
                .keys()
            {
                ring.add(k.clone());
            }
        }
        if ring.keys().is_empty() {
            bail!("--verify-sig needs keys (--key FILE)");
        }
        Some(ring)
    } else {
        None
    };
    let mut sig_stats = SigStats::default();
    let mut expected = if a.pcrs.is_empty() {
        read_sysfs_pcrs(&[
            HashAlgo::Sha1,
            HashAlgo::Sha256,
            HashAlgo::Sha384,
            HashAlgo::Sha512,
            HashAlgo::Sm3,
        ])?
    } else {
        read_pcr_files(&a.pcrs)?
    };
    if let Some(b) = &a.verify_bank {
        let alg = parse_algo(b)?;
        let i = expected
            .banks
            .banks
            .iter()
            .position(|x| x.algo == alg)
            .ok_or_else(|| anyhow!("--verify-bank {alg}: no PCR values of that bank were given"))?;
        expected.banks.banks = vec![expected.banks.banks.swap_remove(i)];
        expected.given = vec![expected.given[i]];
    }
    let algos: Vec<HashAlgo> = expected.banks.banks.iter().map(|b| b.algo).collect();
    let mut per_bank = Replay::new(&algos, ExtendMode::PerBank);
    let mut padded = Replay::new(&algos, ExtendMode::Sha1Padded);
    let n = algos.len();
    let mut matched: Vec<[Option<u64>; 2]> = vec![[None; 2]; n];
    let mut src = Source::open(&a.input, None)?;
    let mut first_bad: Option<u64> = None;
    let mut first_violation: Option<u64> = None;
    loop {
        let Some((i, step)) = src
            .next_parts(|p| {
                if let Some(ring) = &ring {
                    sig_stats.check(p, ring, a.verbose > 0)?;
                }
                let step = p.extend(&mut per_bank)?;
                // Kernels < 5.8 extended the logged SHA-1 template digest, padded; only
                // legacy (SHA-1) lists can come from them.
                if p.digest_algo == HashAlgo::Sha1 {
                    let sha1 = (!step.violation).then_some(p.digest);
                    padded.extend_sha1_padded(p.pcr, sha1)?;
                }
                Ok((p.index, step))
            })
            .with_context(|| src.name.clone())?
        else {
            break;
        };
        if step.digest_ok == Some(false) && first_bad.is_none() {
            first_bad = Some(i);
        }
        if step.violation && first_violation.is_none() {
            first_violation = Some(i);
        }
        for (k, m) in matched.iter_mut().enumerate() {
            let (exp, given) = (&expected.banks.banks[k], expected.given[k]);
            for (mode, replay) in [(0, &per_bank), (1, &padded)] {
                if m[mode].is_none()
                    && matches_now(&replay.banks.banks[k], exp, given, replay.touched)
                {
                    m[mode] = Some(i);
                }
            }
        }
    }
    let total = per_bank.records;
    let mut ok = true;
    let mut report = Vec::new();
    for (k, m) in matched.iter().enumerate() {
        let exp = &expected.banks.banks[k];
        let (how, rec) = match (m[0], m[1]) {
            (Some(r), _) => ("per-bank template digests", r),
            (None, Some(r)) => ("SHA-1 zero-padded template digests (kernel < 5.8)", r),
            (None, None) => {
                ok = false;
                let comp = &per_bank.banks.banks[k];
                for p in (0..NUM_PCRS).filter(|p| per_bank.touched & (1 << p) != 0) {
                    if expected.given[k] & (1 << p) == 0 {
                        report.push(format!(
                            "{}: PCR {p} is extended by the list but no value was given",
                            exp.algo
                        ));
                    } else if comp.pcr(p) != exp.pcr(p) {
                        report.push(format!(
                            "{}: PCR {p} does not match after any record: replay of all {total} records gives {}, expected {}",
                            exp.algo,
                            hex::encode(comp.pcr(p)),
                            hex::encode(exp.pcr(p))
                        ));
                    }
                }
                if per_bank.touched == 0 {
                    report.push(format!("{}: the list is empty", exp.algo));
                }
                continue;
            }
        };
        let ahead = total - rec - 1;
        let mut msg = format!(
            "{}: matched after record {rec} of {total} ({how})",
            exp.algo
        );
        if ahead > 0 {
            msg.push_str(&format!(
                "; the last {ahead} records are not yet in the PCRs"
            ));
        }
        if a.verbose > 0 {
            println!("{msg}");
        }
    }
    if let Some(i) = first_bad {
        ok = false;
        report.insert(
            0,
            format!(
                "record {i} is the first whose template digest does not match its data ({} such records)",
                per_bank.bad_digests
            ),
        );
    }
    if let Some(i) = sig_stats.first_failure {
        ok = false;
        report.push(format!(
            "{} signatures fail (first: record {i}); {} verified, {} not checked",
            sig_stats.failed, sig_stats.verified, sig_stats.unchecked
        ));
    } else if ring.is_some() && (a.verbose > 0 || sig_stats.unchecked > 0) {
        eprintln!(
            "{}: {} signatures verified, {} not checked",
            src.name, sig_stats.verified, sig_stats.unchecked
        );
    }
    if let Some(i) = first_violation {
        if !a.ignore_violations {
            ok = false;
            report.push(format!(
                "{} violation records (first: record {i}); pass --ignore-violations to accept them",
                per_bank.violations
            ));
        }
    }
    if ok {
        if a.verbose > 0 || per_bank.violations > 0 {
            eprintln!(
                "{}: {total} records verified ({} violations)",
                src.name, per_bank.violations
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for r in report {
            eprintln!("{}: {r}", src.name);
        }
        Ok(ExitCode::from(1))
    }
}

// ---------------------------------------------------------------------------------------
// boot_aggregate

fn boot_aggregate_cmd(a: BootAggregateArgs) -> Result<ExitCode> {
    if a.evmctl {
        return Ok(evmctl_ima_boot_aggregate(
            &a.pcrs,
            a.eventlog.as_deref(),
            a.verbose.into(),
        ));
    }
    let banks = if !a.pcrs.is_empty() {
        read_pcr_files(&a.pcrs)?.banks
    } else {
        let log = a
            .eventlog
            .clone()
            .unwrap_or_else(|| PathBuf::from(BIOS_LOG));
        if a.eventlog.is_some() || log.exists() {
            let data =
                std::fs::read(&log).with_context(|| format!("cannot read {}", log.display()))?;
            EventLog::parse(&data)
                .with_context(|| log.display().to_string())?
                .replay()?
        } else {
            read_sysfs_pcrs(&[
                HashAlgo::Sha1,
                HashAlgo::Sha256,
                HashAlgo::Sha384,
                HashAlgo::Sha512,
                HashAlgo::Sm3,
            ])?
            .banks
        }
    };
    let only = bank_filter(&a.banks)?;
    if let Some(missing) = only.iter().flatten().find(|alg| banks.get(**alg).is_none()) {
        let have: Vec<&str> = banks.banks.iter().map(|b| b.algo.name()).collect();
        bail!(
            "--bank {missing}: no such bank (the PCR values have {})",
            have.join(", ")
        );
    }
    let mut out = crate::stdout();
    for b in banks
        .banks
        .iter()
        .filter(|b| only.as_ref().is_none_or(|o| o.contains(&b.algo)))
    {
        let ranges: &[(AggregateRange, &str)] = match a.range {
            RangeArg::Kernel => &[(AggregateRange::kernel_default(b.algo), "")],
            RangeArg::Pcr0To7 => &[(AggregateRange::Pcr0To7, "")],
            RangeArg::Pcr0To9 => &[(AggregateRange::Pcr0To9, "")],
            RangeArg::All => &[
                (AggregateRange::Pcr0To7, " pcr0-7"),
                (AggregateRange::Pcr0To9, " pcr0-9"),
            ],
        };
        for (range, label) in ranges {
            writeln!(
                out,
                "{}:{}{label}",
                b.algo,
                hex::encode(boot_aggregate(b, *range)?)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bank_filter(names: &[String]) -> Result<Option<Vec<HashAlgo>>> {
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(bank_algos(names)?))
}

// ---------------------------------------------------------------------------------------
// evmctl compatibility

/// evmctl's exit status for errors (it returns -1 from a command, which main maps).
const EVMCTL_ERROR: u8 = 125;

/// `evmctl ima_measurement`: verify the binary SHA-1 list `file` against PCR values
/// from `pcr_files` (`[alg,]path`, evmctl's `--pcrs`) or the TPM's sysfs files,
/// replaying the sha1 and sha256 banks per bank and SHA-1 padded, with evmctl 1.4's
/// output at each verbosity (`verbose` = number of `-v`) and exit status: 0 matched
/// (or no PCRs to compare with), 1 mismatch or bad template digest, 125 errors.
///
/// Violations extend 0x00… (which cannot match a real TPM) unless
/// `ignore_violations`, as in evmctl.
pub fn evmctl_ima_measurement(
    file: &Path,
    pcr_files: &[String],
    ignore_violations: bool,
    verify_bank: Option<&str>,
    verbose: u32,
    verify_sig: bool,
    keys: Option<&str>,
) -> ExitCode {
    let algos = [HashAlgo::Sha1, HashAlgo::Sha256];
    let f = match File::open(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Failed to open measurement file: {}", file.display());
            eprintln!("{}", crate::evmctl::errno_line(&e));
            return ExitCode::from(EVMCTL_ERROR);
        }
    };
    let mut sigs = EvmctlSigs::load(keys.unwrap_or(EVMCTL_DEFAULT_KEY), verify_sig, verbose);
    let tpm = if pcr_files.is_empty() {
        read_sysfs_pcrs(&algos).ok()
    } else {
        evmctl_read_pcr_files(pcr_files, &algos).ok()
    };
    let mut rd = BinaryReader::new(
        BufReader::with_capacity(1 << 16, f),
        HashAlgo::Sha1,
        Endian::native(),
    );
    // Bank state: index 0 sha1, 1 sha256; "supported" = the TPM gave values for it.
    let tpm_banks: Vec<Option<(&Bank, u32)>> = algos
        .iter()
        .map(|a| {
            tpm.as_ref().and_then(|t| {
                t.banks
                    .banks
                    .iter()
                    .zip(&t.given)
                    .find(|(b, _)| b.algo == *a)
                    .map(|(b, g)| (b, *g))
            })
        })
        .collect();
    let mut calc = [Bank::new(algos[0]), Bank::new(algos[1])];
    let mut calc_padded = [Bank::new(algos[0]), Bank::new(algos[1])];
    let all_mask: u32 = (1 << algos.len()) - 1;
    let mut mask = all_mask;
    if let Some(vb) = verify_bank {
        // evmctl drops the first bank whose name differs (and only that one).
        if let Some(c) = algos.iter().position(|a| a.name() != vb) {
            mask ^= 1 << c;
        }
    }
    let mut padded_mask = mask;
    let mut err: i32 = -1;
    let mut err_padded: i32 = -1;
    let mut invalid_digest = false;
    let mut first_is_ima: Option<bool> = None;
    let mut sha1 = [0u8; 20];
    let mut digest = [0u8; 64];
    let mut entry_num: u64 = 0;
    let mut unprocessed_seen: Vec<String> = Vec::new();
    loop {
        let raw = match rd.next_raw() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                eprintln!("{e}");
                return evmctl_exit(err);
            }
        };
        entry_num += 1;
        let is_ima = raw.template_name == "ima";
        match first_is_ima {
            None => first_is_ima = Some(is_ima),
            Some(f) if f != is_ima => {
                eprintln!("Mixed measurement list containing \"ima\" and other template formats not supported.");
                return evmctl_exit(err);
            }
            _ => {}
        }
        let violation = raw.is_violation();
        if !violation
            && raw
                .template_digest_into(HashAlgo::Sha1, Endian::native(), &mut sha1)
                .is_err()
        {
            eprintln!("Unable to read template");
            return ExitCode::from(EVMCTL_ERROR);
        }
        // evmctl keeps the result of the last check in one variable, which is what a
        // run cut short returns.
        err = i32::from(!violation && sha1[..] != *raw.digest);
        if err != 0 {
            invalid_digest = true;
            if verbose >= 2 {
                eprintln!("Failed to verify template data digest(line {entry_num}).");
            }
        }
        let pcr = raw.pcr as usize;
        for k in 0..algos.len() {
            let len = algos[k].digest_len();
            let (d, pd) = (&mut digest[..len], &mut [0u8; 64][..len]);
            if violation {
                if ignore_violations {
                    d.fill(0xff);
                    pd[..20].fill(0xff);
                } else {
                    d.fill(0);
                }
            } else {
                let _ = raw.template_digest_into(algos[k], Endian::native(), d);
                pd[..20].copy_from_slice(raw.digest);
            }
            let _ = calc[k].extend(pcr, d);
            let _ = calc_padded[k].extend(pcr, pd);
        }
        if verbose >= 1 {
            let _ = io::stderr().write_all(&evmctl_show_line(&raw));
        }
        if raw.template_name == "ima-sig" {
            sigs.check(&raw);
        }
        if !is_ima {
            let left = evmctl_unprocessed(raw.template_name, raw.data);
            if left != 0 && !unprocessed_seen.iter().any(|n| n == raw.template_name) {
                unprocessed_seen.push(raw.template_name.to_owned());
                eprintln!(
                    "Template \"{}\" contains unprocessed data: {left} bytes",
                    raw.template_name
                );
            }
        }
        if tpm.is_none() {
            continue;
        }
        evmctl_compare_each(&calc, &tpm_banks, &mut mask, &mut err, entry_num, verbose);
        if mask == 0 {
            break;
        }
        evmctl_compare_each(
            &calc_padded,
            &tpm_banks,
            &mut padded_mask,
            &mut err_padded,
            entry_num,
            verbose,
        );
        if padded_mask == 0 {
            break;
        }
    }
    // Without PCRs to compare, evmctl returns its last template check: 0 or 1, and
    // -1 (exit 125) for a list without records.
    let mut rc = if tpm.is_none() {
        eprintln!("Failed to read any TPM PCRs");
        if err < 0 {
            eprintln!(
                "{}",
                crate::evmctl::errno_line(&std::io::Error::from_raw_os_error(libc::ENOENT))
            );
        }
        err
    } else if err == 0 {
        eprintln!("Matched per TPM bank calculated digest(s).");
        0
    } else if err_padded == 0 {
        eprintln!("Matched SHA1 padded TPM digest(s).");
        0
    } else {
        eprintln!("Failed to match per TPM bank or SHA1 padded TPM digest(s).");
        err
    };
    if invalid_digest {
        eprintln!("Failed to verify template data digest.");
        rc = 1;
    }
    evmctl_exit(rc)
}

/// evmctl's default verification key.
const EVMCTL_DEFAULT_KEY: &str = "/etc/keys/x509_evm.der";

/// evmctl's `read_file_pcrs`: read `--pcrs [alg,]FILE` files as evmctl 1.4 does, or
/// print why not and return `None` ("Failed to read any TPM PCRs"). Any file with at
/// least one line gives its bank: lines `PCR-NN: hex` for NN = 0, 1, … in order set
/// those PCRs (as far as the hex goes), every other line is skipped and the PCRs
/// not given stay zero — so a garbage file is a bank of zeros, which then does not
/// match (exit 1), never "no PCRs" (exit 0). A file that cannot be read gives its
/// error, for the `errno:` line evmctl ends a failed command with.
fn evmctl_read_pcr_files(
    pcr_files: &[String],
    algos: &[HashAlgo],
) -> Result<ExpectedPcrs, Option<std::io::Error>> {
    let mut banks = PcrBanks::default();
    for spec in pcr_files {
        let (alg, path) = spec.split_once(',').unwrap_or(("sha1", spec));
        let Some(&algo) = algos.iter().find(|a| a.name() == alg) else {
            eprintln!("Unknown algorithm '{alg}'");
            return Err(None);
        };
        let meta = std::fs::metadata(path).map_err(|e| {
            eprintln!("Could not stat '{path}'");
            Some(e)
        })?;
        if !meta.is_file() {
            eprintln!("PCR file: not a regular file or link to regular file");
            return Err(None);
        }
        let text = std::fs::read(path).map_err(|e| {
            eprintln!("Could not open '{path}'");
            Some(e)
        })?;
        if !evmctl_read_one_bank(banks.bank_mut(algo), &text) {
            return Err(None);
        }
    }
    let given = vec![(1 << NUM_PCRS) - 1; banks.banks.len()];
    Ok(ExpectedPcrs { banks, given })
}

/// evmctl's `read_one_bank`: `fgets` into a 136-byte buffer (longer lines are read
/// in pieces), each piece that starts with the next `PCR-NN` fills that PCR with
/// `hex2bin` from its 8th byte on. False if the file has no line at all.
fn evmctl_read_one_bank(bank: &mut Bank, text: &[u8]) -> bool {
    const FGETS_MAX: usize = 64 * 2 + 8 - 1; // MAX_DIGEST_SIZE * 2 + 8, less the NUL
    let mut rest = text;
    let mut i = 0;
    while !rest.is_empty() && i < NUM_PCRS {
        let n = rest[..rest.len().min(FGETS_MAX)]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len().min(FGETS_MAX), |p| p + 1);
        let (line, tail) = rest.split_at(n);
        rest = tail;
        if line.starts_with(format!("PCR-{i:02}").as_bytes()) {
            evmctl_hex2bin(&mut bank.pcrs[i], line.get(7..).unwrap_or_default());
            i += 1;
        }
    }
    !text.is_empty()
}

/// libimaevm's `hex2bin`: fill `dst` from hex pairs (one space before a pair is
/// skipped), stopping at the first pair that is not hex.
fn evmctl_hex2bin(dst: &mut [u8], mut src: &[u8]) {
    let val = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16)).map(|v| v as u8);
    for d in dst {
        if src.first() == Some(&b' ') {
            src = &src[1..];
        }
        let (Some(hi), Some(lo)) = (val(src.first()), val(src.get(1))) else {
            return;
        };
        *d = hi << 4 | lo;
        src = &src[2..];
    }
}

/// evmctl's signature checks of `ima-sig` entries during `ima_measurement`: against
/// the digest in the list (`--verify-sig`) or against the local file of the same name,
/// with its messages. They never change the exit status.
struct EvmctlSigs {
    ring: KeyRing,
    /// Key ids evmctl has numbered: loaded keys, then unknown ids as they are met.
    numbered: Vec<vigil_ima::KeyId>,
    verify_sig: bool,
    verbose: u32,
}

impl EvmctlSigs {
    fn load(list: &str, verify_sig: bool, verbose: u32) -> EvmctlSigs {
        let mut s = EvmctlSigs {
            ring: KeyRing::new(),
            numbered: Vec::new(),
            verify_sig,
            verbose,
        };
        for path in list.split(',').filter(|p| !p.is_empty()) {
            match vigil_ima::PublicKey::load(path) {
                Ok(k) => {
                    s.numbered.push(k.computed_keyid());
                    // evmctl prints key ids with %x: no leading zeros.
                    eprintln!(
                        "key {}: {:x} {path}",
                        s.numbered.len(),
                        k.computed_keyid().0
                    );
                    s.ring.add(k);
                }
                Err(_) => {
                    if verbose >= 1 {
                        eprintln!("Failed to open keyfile: {path}");
                    }
                }
            }
        }
        s
    }

    fn check(&mut self, raw: &vigil_ima::list::RawRecord<'_>) {
        let Ok(r) = raw.to_record(HashAlgo::Sha1, Endian::native()) else {
            return;
        };
        let Some(sig_bytes) = r.signature() else {
            return;
        };
        let path = String::from_utf8_lossy(r.name().unwrap_or_default()).into_owned();
        if sig_bytes[0] != 3 {
            eprintln!("{path}: xattr ima has no signature");
            return;
        }
        let sig = match vigil_ima::Signature::decode(sig_bytes) {
            Ok(s) => s,
            Err(_) => {
                eprintln!("{path}: Invalid signature");
                return;
            }
        };
        let digest = if self.verify_sig {
            r.file_digest().map(|(_, d)| d.to_vec()).unwrap_or_default()
        } else {
            match evmctl_hash_local_file(&path, sig.hash_algo) {
                Some(d) => d,
                None => return,
            }
        };
        if self.verbose >= 1 {
            eprintln!("hash({}): {}", sig.hash_algo, hex::encode(&digest));
        }
        if self.ring.find(sig.keyid).is_none() {
            if !self.numbered.contains(&sig.keyid) {
                self.numbered.push(sig.keyid);
                eprintln!(
                    "key {}: {:x} (unknown keyid)",
                    self.numbered.len(),
                    sig.keyid.0
                );
            }
            if self.verbose >= 1 {
                eprintln!(
                    "{path}: verification failed: unknown keyid {:x}",
                    sig.keyid.0
                );
            }
            return;
        }
        match self.ring.verify_signature(&sig, &digest) {
            Ok(_) => {
                if self.verbose >= 1 {
                    eprintln!("{path}: verification is OK");
                }
            }
            Err(e) => eprintln!("{path}: verification failed: 0 ({e})"),
        }
    }
}

/// What evmctl does without `--verify-sig`: hash the local file named by the entry.
fn evmctl_hash_local_file(path: &str, algo: HashAlgo) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        eprintln!("Failed to stat: {path}");
        return None;
    };
    if !meta.file_type().is_file() {
        eprint!("Unsupported file type (0x{:x})", meta.mode() & 0o170000);
        return None;
    }
    let mut h = vigil_ima::Hasher::new(algo).ok()?;
    let mut f = File::open(path).ok()?;
    io::copy(&mut f, &mut h).ok()?;
    Some(h.finalize())
}

/// What `evmctl -v ima_boot_aggregate LOG` prints while it reads a TPM 1.2 log: each
/// event's PCR and SHA-1 digest, then the 24 replayed PCRs (index in hex).
fn evmctl_show_event_log(path: &Path, log: &EventLog, banks: &PcrBanks) {
    eprintln!("Reading the TPM 1.2 event log {}.", path.display());
    for ev in &log.events {
        if let Some((_, d)) = ev.digests.first() {
            eprintln!("{:02} {}", ev.pcr, hex::encode(d));
        }
    }
    if let Some(b) = banks.get(HashAlgo::Sha1) {
        for (i, p) in b.pcrs.iter().enumerate() {
            eprintln!("PCR-{i:02x} {}", hex::encode(p));
        }
    }
}

/// evmctl's exit status for a command result: -1 becomes 125.
fn evmctl_exit(err: i32) -> ExitCode {
    ExitCode::from(u8::try_from(err).unwrap_or(EVMCTL_ERROR))
}

/// The line evmctl prints for a record with `-v` (`ima_show`/`ima_ng_show`): PCR
/// without padding, the file digest field's string prefix and hex, the name, and for
/// `ima-buf`/`ima-sig` the buffer or signature in hex.
fn evmctl_show_line(raw: &vigil_ima::list::RawRecord<'_>) -> Vec<u8> {
    fn c_str(b: &[u8]) -> &[u8] {
        &b[..b.iter().position(|&x| x == 0).unwrap_or(b.len())]
    }
    let mut out = format!(
        "{} {} {}",
        raw.pcr,
        hex::encode(raw.digest),
        raw.template_name
    )
    .into_bytes();
    if raw.template_name == "ima" {
        out.push(b' ');
        out.extend_from_slice(hex::encode(&raw.data[..20.min(raw.data.len())]).as_bytes());
        out.push(b' ');
        out.extend_from_slice(c_str(raw.data.get(24..).unwrap_or_default()));
        out.push(b'\n');
        return out;
    }
    let mut fields = Vec::new();
    let mut rest = raw.data;
    while rest.len() >= 4 {
        let len = u32::from_ne_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let f = &rest[4..];
        let f = &f[..len.min(f.len())];
        fields.push(f);
        rest = &rest[4 + f.len()..];
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let algo = c_str(field(0));
    out.push(b' ');
    out.extend_from_slice(algo);
    let digest = field(0).get(algo.len() + 1..).unwrap_or_default();
    out.extend_from_slice(hex::encode(digest).as_bytes());
    out.push(b' ');
    out.extend_from_slice(c_str(field(1)));
    let third = field(2);
    if raw.template_name == "ima-buf" && !third.is_empty() {
        out.push(b' ');
        out.extend_from_slice(hex::encode(third).as_bytes());
    }
    if raw.template_name == "ima-sig" && !third.is_empty() {
        out.push(b' ');
        out.extend_from_slice(hex::encode(third).as_bytes());
    }
    out.push(b'\n');
    out
}

/// The bytes evmctl's `ima_ng_show` leaves unparsed in a record's template data: it
/// reads a digest and a name field, plus a third for `ima-sig` and `ima-buf`.
fn evmctl_unprocessed(template_name: &str, data: &[u8]) -> i64 {
    let fields = if matches!(template_name, "ima-sig" | "ima-buf") {
        3
    } else {
        2
    };
    let mut pos = 0usize;
    for _ in 0..fields {
        let Some(len) = data.get(pos..pos + 4) else {
            break;
        };
        let len = u32::from_ne_bytes(len.try_into().expect("4 bytes")) as usize;
        pos = pos.saturating_add(4).saturating_add(len);
    }
    data.len() as i64 - pos.min(i64::MAX as usize) as i64
}

/// evmctl's `compare_tpm_banks` for the banks in `mask`: every computed non-zero PCR
/// must equal the TPM's. Returns 0 on match, 1 on mismatch.
fn evmctl_compare(
    calc: &[Bank],
    tpm: &[Option<(&Bank, u32)>],
    mask: u32,
    entry: u64,
    verbose: u32,
) -> i32 {
    let mut ret = 0;
    for (i, c) in calc.iter().enumerate() {
        let Some((t, _)) = tpm[i] else { continue };
        if mask & (1 << i) == 0 {
            continue;
        }
        for j in 0..NUM_PCRS {
            if vigil_ima::list::is_zero(c.pcr(j)) {
                continue;
            }
            if c.pcr(j) != t.pcr(j) {
                ret = 1;
            }
            if (ret == 0 && verbose < 1) || (ret != 0 && verbose < 2) {
                continue;
            }
            eprintln!("{}: PCRAgg  {j}: {}", c.algo, hex::encode(c.pcr(j)));
            eprintln!("{}: TPM PCR-{j}: {}", t.algo, hex::encode(t.pcr(j)));
            if ret == 0 {
                eprintln!("{} PCR-{j}: succeed at entry {entry}", c.algo);
            } else {
                eprintln!("{}: PCRAgg {j} does not match TPM PCR-{j}", c.algo);
            }
        }
    }
    ret
}

/// evmctl's per-bank check after each entry: compare every bank still in `mask` on
/// its own and drop it from `mask` once it matches. `err` keeps the result of the
/// last comparison, as evmctl's single variable does.
fn evmctl_compare_each(
    calc: &[Bank],
    tpm: &[Option<(&Bank, u32)>],
    mask: &mut u32,
    err: &mut i32,
    entry: u64,
    verbose: u32,
) {
    for c in 0..calc.len() {
        if *mask & (1 << c) == 0 {
            continue;
        }
        *err = evmctl_compare(calc, tpm, 1 << c, entry, verbose);
        if *err == 0 {
            *mask ^= 1 << c;
        }
    }
}

/// `evmctl ima_boot_aggregate`: print `alg:hex` for the sha1 (PCR 0–7) and sha256
/// (PCR 0–9) banks, from `pcr_files` (evmctl's `--pcrs`), a boot event log, or the
/// TPM's sysfs PCRs. evmctl 1.4 reads only TPM 1.2 event logs; this also reads TPM 2.0
/// crypto-agile ones. Exit 0, or 125 when no PCRs can be read.
pub fn evmctl_ima_boot_aggregate(
    pcr_files: &[String],
    event_log: Option<&Path>,
    verbose: u32,
) -> ExitCode {
    let algos = [HashAlgo::Sha1, HashAlgo::Sha256];
    let banks = if let Some(log) = event_log {
        let read = std::fs::read(log)
            .map_err(anyhow::Error::from)
            .and_then(|d| {
                if d.is_empty() {
                    // evmctl reads no event and aggregates zeroed PCRs.
                    return Ok(PcrBanks::new(&[HashAlgo::Sha1]));
                }
                let parsed = EventLog::parse(&d)?;
                let banks = parsed.replay_with(true)?;
                if verbose >= 1 && !parsed.crypto_agile {
                    evmctl_show_event_log(log, &parsed, &banks);
                }
                Ok(banks)
            });
        match read {
            Ok(b) => b,
            Err(e) => {
                if verbose >= 1 {
                    eprintln!("{}: {e:#}", log.display());
                }
                eprintln!("Failed reading the TPM 1.2 event log {}.", log.display());
                return ExitCode::from(EVMCTL_ERROR);
            }
        }
    } else {
        let banks = if pcr_files.is_empty() {
            read_sysfs_pcrs(&algos).map_err(|e| {
                if verbose >= 1 {
                    eprintln!("{}", crate::error_text(&e));
                }
                None
            })
        } else {
            evmctl_read_pcr_files(pcr_files, &algos)
        };
        match banks {
            Ok(e) => e.banks,
            Err(io) => {
                eprintln!("Failed to read any TPM PCRs");
                if let Some(e) = io {
                    eprintln!("{}", crate::evmctl::errno_line(&e));
                }
                return ExitCode::from(EVMCTL_ERROR);
            }
        }
    };
    let mut out = String::new();
    for a in algos {
        if let Some(b) = banks.get(a) {
            match boot_aggregate(b, AggregateRange::kernel_default(a)) {
                Ok(d) => out.push_str(&format!("{a}:{}\n", hex::encode(d))),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EVMCTL_ERROR);
                }
            }
        }
    }
    print!("{out}");
    ExitCode::SUCCESS
}
