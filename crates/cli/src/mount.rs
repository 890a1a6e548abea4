//! `vigil mount`, `umount`, `status`, `seal`, `unseal`: the verified FUSE mount.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use vigil_fs::{ioctl, Mount, MountOptions};

#[derive(Subcommand)]
pub enum Command {
    /// Mount SRC on MNT through vigil: every file opened through MNT is measured,
    /// appraised, verified block by block as it is read, and protected against change.
    ///
    /// MNT may be SRC itself: the source is opened before mounting, so the mount then
    /// hides the backing files from writes that would bypass it. By default vigil
    /// returns once the mount is ready and keeps serving it in the background; it stops
    /// at `vigil umount MNT`, `fusermount3 -u MNT`, `umount MNT` or SIGTERM.
    ///
    /// Exit status: 0 mounted (or, with --foreground, unmounted cleanly), 2 on bad
    /// usage or when the mount fails.
    Mount(MountArgs),
    /// Unmount a vigil mount and wait for its daemon to finish: the re-measurements
    /// still owed to files written through the mount are made (hash values follow
    /// those writes), and its state is written.
    ///
    /// Exit status: 0 unmounted, 1 busy (files still open; see --lazy), 2 not a
    /// mount or other error.
    Umount(UmountArgs),
    /// Summarise a vigil mount: source and state directories, appraisal mode, read
    /// verification, measurement records, violations, policy rules, file counters,
    /// the descriptors held for the kernel's nodes and PCR values, read from
    /// MNT/.vigil/ (whose measurement lists only root may read, as in securityfs).
    ///
    /// Exit status: 0, or 2 if MNT is not a vigil mount or a file of MNT/.vigil/ cannot
    /// be read.
    Status(StatusArgs),
    /// Seal a regular file on a vigil mount: from then on, write opens, writes, truncation and
    /// fallocate fail with EPERM until `vigil unseal`, and so do removing or renaming
    /// any of its names and renaming another file over one (RENAME_EXCHANGE too).
    /// Refused (EBUSY) while any writer or writable mapping exists; vigil retries until
    /// --timeout.
    ///
    /// Exit status: 0 sealed, 1 still busy at the timeout, 2 other errors (such as not
    /// a regular file — refused without opening it — or not on a vigil mount).
    Seal(SealArgs),
    /// Remove the seal of a regular file on a vigil mount (root only).
    ///
    /// Exit status: 0 unsealed, 2 on error.
    Unseal(UnsealArgs),
    /// Check, measure and appraise FILE as execve would (a regular file the caller may
    /// execute, not on a noexec mount; FILE_CHECK with MAY_EXEC, then BPRM_CHECK),
    /// copy the verified bytes into a memfd sealed against writing, shrinking and
    /// growing, and execute that memfd — so what was verified is exactly what runs.
    /// A `#!` script's interpreter is checked the same way and run from its own memfd,
    /// given the script's memfd (`/dev/fd/N`) to read; for `#!/usr/bin/env NAME` that
    /// is env, which then finds NAME in PATH itself. Unlike execve, this never grants
    /// privileges: a set-user-ID or set-group-ID program, or one with file
    /// capabilities, runs with the caller's credentials (vigil warns on stderr).
    ///
    /// Exit status: that of the program; 1 if appraisal refused the file or its
    /// interpreter, or it changed while it was copied; 126 if execve would refuse it
    /// (EACCES: not a regular file, no execute permission, noexec mount; ENOEXEC: no
    /// known binary format and no `#!`, or no interpreter on the `#!` line; ELOOP:
    /// more than five levels of interpreters); 2 on bad usage or an unreadable file.
    Exec(ExecArgs),
}

/// Enforcement settings shared by `vigil mount` and `vigil exec`.
#[derive(Args, Clone)]
pub struct EnforceArgs {
    /// IMA policy file (the kernel's policy language, one rule per line). Evaluated
    /// after any --builtin policies.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A built-in kernel policy, as the kernel's ima_policy= names them: tcb, ima_tcb,
    /// appraise_tcb, secure_boot, critical_data, fail_securely (no rules of its own;
    /// accepted as the kernel accepts it); repeatable, or several joined with |.
    /// Without --policy and --builtin nothing is measured or appraised.
    #[arg(long = "builtin", value_name = "NAME")]
    pub builtins: Vec<String>,
    /// Appraisal mode (ima_appraise=): enforce denies opens that fail (EACCES), log
    /// records them, fix also writes missing or wrong hash values, off skips appraisal.
    #[arg(long, value_enum, default_value = "enforce")]
    pub appraise: Appraise,
    /// Public keys or certificates (PEM or DER) that verify IMA signatures; a
    /// comma-separated list, repeatable (as evmctl --key).
    #[arg(long = "keys", value_name = "FILE[,FILE…]")]
    pub keys: Vec<String>,
    /// Public keys or certificates that verify EVM signatures (security.evm types 3
    /// and 5, as `evmctl sign` writes them); a comma-separated list, repeatable. With
    /// these or --evm-hmac-key, EVM takes part in appraisal as in the kernel: a file
    /// with an IMA value must also have a valid security.evm over its security xattrs
    /// and its inode number, generation, owner, group and mode (causes missing-HMAC,
    /// invalid-HMAC, invalid-fail-immutable), and a hash value under a valid portable
    /// signature counts as signed (and immutable).
    #[arg(long = "evm-keys", value_name = "FILE[,FILE…]")]
    pub evm_keys: Vec<String>,
    /// EVM's HMAC key (the raw bytes of the kernel's evm key, as evmctl reads
    /// /etc/keys/evm-key-plain; at most 128 bytes): verifies security.evm HMACs
    /// (HMAC-SHA1 with the file system UUID, as the kernel computes them), and
    /// rewrites the HMAC whenever vigil rewrites a hash value (fix mode, hash rules,
    /// writes through the mount), as the kernel does.
    #[arg(long = "evm-hmac-key", value_name = "FILE")]
    pub evm_hmac_key: Option<PathBuf>,
    /// Where files' IMA values are read (and written in fix mode): security.ima, or
    /// user.ima as `evmctl --xattr-user` writes them.
    #[arg(long, value_enum, default_value = "security")]
    pub xattr: Xattr,
    /// Hash algorithm of file digests in the log (ima_hash=).
    #[arg(long, value_name = "ALG", default_value = "sha256")]
    pub hash_algo: String,
    /// Default template of measurement records (ima_template=): ima-ng, ima-sig,
    /// ima-ngv2, ima-sigv2, evm-sig.
    #[arg(long, value_name = "NAME", default_value = "ima-ng")]
    pub template: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appraise {
    Enforce,
    Log,
    Fix,
    Off,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xattr {
    Security,
    User,
}

#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub enforce: EnforceArgs,
    /// Keep the measurement log in DIR (as `vigil mount --state` does; default: a
    /// private temporary directory, discarded).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// The program to run, then its arguments (`argv[1…]`; `argv[0]` is FILE as
    /// given). Everything after FILE is the program's, options included.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FILE [ARGS]"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub struct MountArgs {
    /// The source directory.
    pub source: PathBuf,
    /// The mount point (an existing directory; may be SOURCE, but not inside it).
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub enforce: EnforceArgs,
    /// State directory: the measurement log, Merkle trees and seals, kept across
    /// restarts (a restart on the same directory continues the log). Must not be inside
    /// MNT or SOURCE. Default: /var/lib/vigil/mounts/<MNT with / as _>.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Do not verify reads against Merkle trees (measurement and appraisal at open
    /// still happen).
    #[arg(long)]
    pub no_verify_reads: bool,
    /// Stay in the foreground (logs go to stderr) instead of detaching. Under systemd
    /// (`Type=notify`), READY=1 is sent once the mount is usable.
    #[arg(short, long)]
    pub foreground: bool,
    /// FUSE event-loop threads, 1 to 256 (default: 2 × CPUs, 4 to 16).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Worker threads for opens (which may measure a file), fsync and other slow
    /// requests, 1 to 1024 (default: 2 × CPUs, 4 to 32). As many again measure files of
    /// 64 MiB or more at their opens, so that huge files hold up no other open.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Worker threads that verify and serve file data, 1 to 256 (default: one per CPU; more
    /// share the CPUs and slow sequential reads down). Data absent from the page cache
    /// is read directly by eight I/O threads first; cached data by these workers.
    #[arg(long, value_name = "N")]
    pub read_workers: Option<usize>,
    /// Abort the FUSE connection when a request has run longer than SECS and no long
    /// request made progress (CPU time or bytes read or written) for as long, so no
    /// process hangs on the mount; measuring a huge file at its open, however long it
    /// takes, is progress (0 disables).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub watchdog: u64,
    /// Write the daemon's log lines (audit records of refused opens, tampered blocks)
    /// to FILE instead of discarding them when detached.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Mount read-only: every change through MNT fails with EROFS. Files are still
    /// measured, appraised and verified as they are read.
    #[arg(long)]
    pub read_only: bool,
    /// Mount options, comma-separated as in fstab; repeatable, applied after the
    /// other options. `ro`, `rw`, `noexec`, `exec`, `noatime`, `atime`, `relatime`,
    /// `strictatime`, and these options above as NAME=VALUE or NAME: `policy=FILE`,
    /// `builtin=NAME`, `appraise=MODE`, `keys=FILE` (one per key, or quoted:
    /// `keys="a.pem,b.pem"`), `evm-keys=FILE`, `evm-hmac-key=FILE`, `xattr=`,
    /// `hash-algo=`, `template=`, `state=DIR`,
    /// `log=FILE`, `threads=N`, `workers=N`, `read-workers=N`, `watchdog=SECS`,
    /// `no-verify-reads` (`--read-only`, `--no-exec` and `--no-atime` are `ro`,
    /// `noexec` and `noatime`; `--foreground` has none). mount(8)'s own options
    /// (defaults, auto, noauto, nofail, user, users, nouser, owner, group, _netdev,
    /// x-*, comment=) and the time options
    /// that change nothing here (nodiratime, diratime, norelatime, nostrictatime,
    /// lazytime, nolazytime, async) are ignored; nosuid and nodev are always in force
    /// (suid and dev are refused, and so are sync and dirsync).
    #[arg(short = 'o', long = "options", value_name = "OPTS")]
    pub options: Vec<String>,
    /// `-o noexec`.
    #[arg(skip)]
    pub no_exec: bool,
    /// `-o noatime`.
    #[arg(skip)]
    pub no_atime: bool,
}

#[derive(Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach now even if files are open (they keep working until closed), and return
    /// at once: the daemon exits after the last of them is closed.
    #[arg(short, long)]
    pub lazy: bool,
    /// Seconds to wait for the daemon to exit after unmounting (not with --lazy).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub wait: u64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Print JSON instead of text (with the policy's rules, not just their number, and
    /// MNT/.vigil/status as the object "status").
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SealArgs {
    /// Files on a vigil mount.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Seconds to keep retrying while the file has writers (a writer's close reaches
    /// the daemon asynchronously).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    pub timeout: Duration,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// Files on a vigil mount.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Mount(a) => mount(a),
        Command::Umount(a) => umount(a),
        Command::Status(a) => status(a),
        Command::Seal(a) => seal(a),
        Command::Unseal(a) => unseal(a),
        Command::Exec(a) => exec(a),
    }
}

/// A path made into one file name (`/srv/app` → `_srv_app`).
fn flat_name(p: &Path) -> String {
    p.to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The guard configuration the enforcement options describe (policy parsed, keys
/// loaded): everything that can fail on bad input fails here, before forking.
fn guard_config(e: &EnforceArgs) -> anyhow::Result<vigil_guard::Config> {
    use vigil_ima::policy;
    let mut pol = policy::Policy::default();
    if let Some(b) = e
        .builtins
        .iter()
        .find(|b| b.split('|').any(|n| n.trim().is_empty()))
    {
        bail!("--builtin {b:?}: names no policy");
    }
    for (option, lists) in [("--keys", &e.keys), ("--evm-keys", &e.evm_keys)] {
        if let Some(k) = lists.iter().find(|k| k.split(',').any(|f| f.is_empty())) {
            bail!("{option} {k:?}: an empty file name in the list");
        }
    }
    if !e.builtins.is_empty() {
        let names: Vec<&str> = e.builtins.iter().map(String::as_str).collect();
        pol = policy::builtin::policy(&names, &policy::builtin::BuiltinConfig::default())
            .context("--builtin")?;
    }
    if let Some(p) = &e.policy {
        let text = crate::policy::read_text(p)?;
        pol.extend(policy::parse(&text).with_context(|| format!("{}", p.display()))?);
    }
    let ring = key_ring(&e.keys, "--keys")?;
    let evm_ring = key_ring(&e.evm_keys, "--evm-keys")?;
    let hmac_key = match &e.evm_hmac_key {
        Some(p) => Some(hmac_key(p).with_context(|| format!("--evm-hmac-key {}", p.display()))?),
        None => None,
    };
    let hash_algo = vigil_ima::HashAlgo::from_name(&e.hash_algo)
        .with_context(|| format!("--hash-algo {}", e.hash_algo))?;
    let template = vigil_guard::Template::from_name(&e.template)
        .with_context(|| format!("--template {}", e.template))?;
    Ok(vigil_guard::Config {
        hash_algo,
        template,
        appraise_mode: match e.appraise {
            Appraise::Enforce => vigil_guard::AppraiseMode::Enforce,
            Appraise::Log => vigil_guard::AppraiseMode::Log,
            Appraise::Fix => vigil_guard::AppraiseMode::Fix,
            Appraise::Off => vigil_guard::AppraiseMode::Off,
        },
        xattr: match e.xattr {
            Xattr::Security => vigil_guard::XattrSource::Security,
            Xattr::User => vigil_guard::XattrSource::User,
        },
        policy: Arc::new(pol.compile()),
        verifier: (!ring.keys().is_empty())
            .then(|| Arc::new(ring) as Arc<dyn vigil_guard::SignatureVerifier>),
        evm: vigil_guard::EvmKeys {
            ring: (!evm_ring.keys().is_empty()).then(|| Arc::new(evm_ring)),
            hmac_key,
        },
        tree_builder: Some(vigil_fs::verity::tree_builder()),
        ..Default::default()
    })
}

/// The keys of comma-separated lists of key files (`option` names them in errors).
fn key_ring(lists: &[String], option: &str) -> anyhow::Result<vigil_ima::KeyRing> {
    let mut ring = vigil_ima::KeyRing::new();
    for list in lists {
        for k in vigil_ima::KeyRing::load_list(list)
            .with_context(|| format!("{option} {list}"))?
            .keys()
        {
            ring.add(k.clone());
        }
    }
    Ok(ring)
}

/// An EVM HMAC key file: 1 to 128 raw bytes (the kernel's `MAX_KEY_SIZE`).
fn hmac_key(p: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let max = vigil_ima::evm::EVM_KEY_LEN;
    let f = std::fs::File::open(p)?;
    if !f.metadata()?.is_file() {
        bail!("not a regular file");
    }
    let mut key = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut key)?;
    if key.is_empty() || key.len() > max {
        bail!("an EVM key is 1 to {max} bytes");
    }
    Ok(key)
}

/// Where the daemon of the mount at `mnt` records its pid.
fn pid_file(mnt: &Path) -> PathBuf {
    let dir = std::env::var_os("VIGIL_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/vigil".into());
    dir.join(format!("mount{}.pid", flat_name(mnt)))
}

fn check_dir(p: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let c = std::fs::canonicalize(p).with_context(|| format!("{what} {}", p.display()))?;
    match std::fs::metadata(&c) {
        Ok(m) if m.is_dir() => Ok(c),
        Ok(_) => bail!("{what} {}: not a directory", p.display()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{what} {}: a mount whose daemon is gone (unmount it first: vigil umount {0})",
            p.display()
        ),
        Err(e) => Err(e).with_context(|| format!("{what} {}", p.display())),
    }
}

/// A number of seconds (fractions allowed), as a duration.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?}: not a duration (a finite number of seconds from 0 to 1.8e19)"))
}

/// The thread counts asked for, each within 1 to its limit (past it a daemon cannot
/// start its threads, or runs out of descriptors for them).
fn check_counts(a: &MountArgs) -> anyhow::Result<()> {
    for (name, n, max) in [
        ("threads", a.threads, 256),
        ("workers", a.workers, 1024),
        ("read-workers", a.read_workers, 256),
    ] {
        if let Some(n) = n.filter(|&n| n == 0 || n > max) {
            bail!("--{name} {n}: must be 1 to {max}");
        }
    }
    Ok(())
}

/// The checks of `vigil mount` that need no change on the system: both directories,
/// the state directory (not inside MNT; it need not exist yet), the policy and the
/// keys. Returns (source, mount point, state directory, guard configuration).
pub(crate) fn check_mount(
    a: &MountArgs,
) -> anyhow::Result<(PathBuf, PathBuf, PathBuf, vigil_guard::Config)> {
    check_counts(a)?;
    let src = check_dir(&a.source, "source")?;
    let mnt = check_dir(&a.mountpoint, "mount point")?;
    if vigil_fs::is_vigil_mount(&mnt) && src != mnt {
        bail!("{}: already a vigil mount", mnt.display());
    }
    if mnt != src && mnt.starts_with(&src) {
        // The daemon would reach its own mount through the source directory.
        bail!(
            "mount point {} is inside the source directory {} (mount it on SOURCE itself, or outside it)",
            mnt.display(),
            src.display()
        );
    }
    let state = a
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/vigil/mounts").join(flat_name(&mnt)));
    check_state(&resolve(&state)?, &src, &mnt)?;
    if let Some(log) = &a.log {
        if resolve(log)?.starts_with(&mnt) {
            // The daemon would write its log through its own mount.
            bail!(
                "log file {} is inside the mount point {}",
                log.display(),
                mnt.display()
            );
        }
    }
    Ok((src, mnt, state, guard_config(&a.enforce)?))
}

/// `p` absolute, with symbolic links resolved as far as it exists and the rest
/// appended: where a directory not created yet will be.
fn resolve(p: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
    for base in abs.ancestors() {
        if let Ok(c) = std::fs::canonicalize(base) {
            return Ok(c.join(abs.strip_prefix(base).unwrap_or(Path::new(""))));
        }
    }
    Ok(abs)
}

fn check_state(state: &Path, src: &Path, mnt: &Path) -> anyhow::Result<()> {
    if state.starts_with(mnt) {
        // The daemon would do I/O on its own mount.
        bail!(
            "state directory {} is inside the mount point {}",
            state.display(),
            mnt.display()
        );
    }
    if state.starts_with(src) {
        // The log, trees and seals would be reachable, and writable, through the mount.
        bail!(
            "state directory {} is inside the source directory {}",
            state.display(),
            src.display()
        );
    }
    Ok(())
}

pub(crate) fn mount(mut a: MountArgs) -> anyhow::Result<ExitCode> {
    crate::fstab::apply_options(&mut a, false)?;
    let (src, mnt, state, config) = check_mount(&a)?;
    if std::fs::metadata(&state).is_ok_and(|m| !m.is_dir()) {
        bail!("state directory {}: not a directory", state.display());
    }
    // The daemon's own (log, trees, seals): for root only when created here.
    vigil_guard::store::private_dir(&state)
        .with_context(|| format!("state directory {}", state.display()))?;
    let state = std::fs::canonicalize(&state)
        .with_context(|| format!("state directory {}", state.display()))?;
    check_state(&state, &src, &mnt)?;
    // Opened before detaching, so that a log that cannot be written is an error here.
    let log = match a.log.as_ref().filter(|_| !a.foreground) {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("log file {}", p.display()))?,
        ),
        None => None,
    };
    let setup = Setup {
        src: src.clone(),
        mnt: mnt.clone(),
        state,
        config,
        threads: a.threads,
        workers: a.workers,
        read_workers: a.read_workers,
        watchdog: (a.watchdog > 0).then(|| Duration::from_secs(a.watchdog)),
        verify_reads: !a.no_verify_reads,
        flags: vigil_fs::MountFlags {
            read_only: a.read_only,
            no_exec: a.no_exec,
            no_atime: a.no_atime,
        },
    };

    if a.foreground {
        vigil_fs::block_signals();
        let m = setup.mount()?;
        let pidf = write_pid(&mnt);
        eprintln!("vigil: {} mounted on {}", src.display(), mnt.display());
        notify_systemd(&format!(
            "READY=1\nSTATUS=serving {} on {}",
            src.display(),
            mnt.display()
        ));
        let r = m.run(true);
        if let Some(p) = pidf {
            let _ = std::fs::remove_file(p);
        }
        r.context("serving the mount")?;
        return Ok(ExitCode::SUCCESS);
    }

    // Detach: fork before any thread exists; the child mounts and reports back
    // through a pipe, so the parent returns only once the mount is usable.
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: fresh descriptors.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(rd);
            let code = daemon(setup, wr, log);
            std::process::exit(code);
        }
        _child => {
            drop(wr);
            let mut msg = String::new();
            std::fs::File::from(rd)
                .read_to_string(&mut msg)
                .context("waiting for the mount")?;
            match msg.strip_prefix("ok") {
                Some(_) => Ok(ExitCode::SUCCESS),
                None if msg.is_empty() => bail!("the mount daemon died before the mount was ready"),
                None => bail!("{}", msg.trim_end()),
            }
        }
    }
}

/// Tell systemd (a `Type=notify` service, which sets `NOTIFY_SOCKET`) how the service
/// is doing: `READY=1` once the mount is usable. Without the variable it does nothing.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.as_encoded_bytes();
    let addr = match path.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(Path::new(std::ffi::OsStr::from_bytes(path))),
    };
    if let (Ok(sock), Ok(addr)) = (UnixDatagram::unbound(), addr) {
        if let Err(e) = sock.send_to_addr(state.as_bytes(), &addr) {
            eprintln!("vigil: notifying systemd: {e}");
        }
    }
}

/// Write the daemon's pid file, readable by all and writable by root only (the daemon
/// runs with umask 0: the modes are its own).
fn write_pid(mnt: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let p = pid_file(mnt);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p.parent()?)
        .ok()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&p)
        .ok()?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .ok()?;
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
        .ok()?;
    Some(p)
}

/// Everything `vigil mount` decided before forking.
struct Setup {
    src: PathBuf,
    mnt: PathBuf,
    state: PathBuf,
    config: vigil_guard::Config,
    threads: Option<usize>,
    workers: Option<usize>,
    read_workers: Option<usize>,
    watchdog: Option<Duration>,
    verify_reads: bool,
    flags: vigil_fs::MountFlags,
}

impl Setup {
    /// Start the guard on the state directory and mount (threads start here).
    fn mount(self) -> anyhow::Result<Mount> {
        let config = vigil_guard::Config {
            job_failures: Some(std::sync::Arc::new(|path, e| {
                let path = Path::new(path).display();
                vigil_fs::audit(format_args!("{path}: re-measurement failed: {e}"));
            })),
            ..self.config
        };
        let guard = vigil_guard::Guard::new(config, &self.state)
            .with_context(|| format!("state directory {}", self.state.display()))?;
        let mut opts = MountOptions::new(&self.src, &self.mnt, guard);
        if let Some(n) = self.threads {
            opts.loop_threads = n.max(1);
        }
        if let Some(n) = self.workers {
            opts.workers = n.max(1);
        }
        if let Some(n) = self.read_workers {
            opts.read_workers = n.max(1);
        }
        opts.watchdog = self.watchdog;
        opts.verify_reads = self.verify_reads;
        opts.flags = self.flags;
        Mount::new(opts)
            .with_context(|| format!("mounting {} on {}", self.src.display(), self.mnt.display()))
    }
}

/// The detached daemon: mount, report, serve. Returns the exit code.
fn daemon(setup: Setup, report: OwnedFd, log: Option<std::fs::File>) -> i32 {
    // SAFETY: setsid in the freshly forked child.
    unsafe { libc::setsid() };
    vigil_fs::block_signals();
    let mut report = std::fs::File::from(report);
    let mnt = setup.mnt.clone();
    let mnt = mnt.as_path();
    let m = match setup.mount() {
        Ok(m) => m,
        Err(e) => {
            let _ = write!(report, "{}", crate::error_text(&e));
            return 2;
        }
    };
    let pidf = write_pid(mnt);
    // Detach from the terminal: stdin from /dev/null, stdout/stderr to the log file.
    let out = log.or_else(|| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    });
    if let (Ok(null), Some(out)) = (std::fs::File::open("/dev/null"), out) {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(out.as_raw_fd(), 2);
        }
    }
    let _ = report.write_all(b"ok");
    drop(report);
    let r = m.run(true);
    if let Some(p) = pidf {
        let _ = std::fs::remove_file(p);
    }
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vigil: serving {}: {e}", mnt.display());
            2
        }
    }
}

fn umount(a: UmountArgs) -> anyhow::Result<ExitCode> {
    let mnt = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("{}", a.mountpoint.display()))?;
    if !vigil_fs::is_vigil_mount(&mnt) {
        bail!("{}: not a vigil mount", mnt.display());
    }
    let pid = std::fs::read_to_string(pid_file(&mnt))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let r = if a.lazy {
        vigil_fs::detach(&mnt)
    } else {
        vigil_fs::unmount(&mnt)
    };
    if let Err(e) = r {
        if e.raw_os_error() == Some(libc::EBUSY) {
            eprintln!(
                "vigil: {}: busy (files are open); retry, or use --lazy",
                mnt.display()
            );
            return Ok(ExitCode::from(1));
        }
        return Err(e).with_context(|| format!("unmounting {}", mnt.display()));
    }
    // A lazily detached mount may keep its daemon for as long as files stay open.
    if let Some(pid) = pid.filter(|_| !a.lazy) {
        // A wait too long to represent is no deadline.
        let deadline = Instant::now().checked_add(Duration::from_secs(a.wait));
        // SAFETY: signal 0 only probes for the process.
        while unsafe { libc::kill(pid, 0) } == 0 && !has_exited(pid) {
            if deadline.is_some_and(|d| Instant::now() > d) {
                eprintln!(
                    "vigil: {}: unmounted, but daemon {pid} is still running",
                    mnt.display()
                );
                return Ok(ExitCode::from(1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether every thread of process `pid` has exited. Its main thread turns zombie
/// while the others may still be exiting, and the process's descriptors, among them
/// the state directory's lock, are closed only with the last of them.
fn has_exited(pid: i32) -> bool {
    let zombie = |stat: &str| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| zombie(&stat))
    })
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let mnt = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("{}", a.mountpoint.display()))?;
    if !vigil_fs::is_vigil_mount(&mnt) {
        bail!("{}: not a vigil mount", mnt.display());
    }
    let dir = mnt.join(vigil_fs::control::DIR_NAME);
    let read = |name: &str| {
        std::fs::read(dir.join(name)).with_context(|| format!("{}", dir.join(name).display()))
    };
    let ascii = String::from_utf8_lossy(&read("ascii_runtime_measurements")?).into_owned();
    let binary = read("binary_runtime_measurements")?;
    let violations = String::from_utf8_lossy(&read("violations")?)
        .trim()
        .to_owned();
    let pcrs = String::from_utf8_lossy(&read("pcrs")?).into_owned();
    let policy = String::from_utf8_lossy(&read("policy")?).into_owned();
    let rules: Vec<&str> = policy.lines().map(str::trim_end).collect();
    let records = ascii.lines().filter(|l| !l.trim().is_empty()).count();
    // A daemon of an earlier vigil, still serving, has no `status`: its fields show `?`.
    let status = std::fs::read(dir.join("status")).unwrap_or_default();
    let status = String::from_utf8_lossy(&status).into_owned();
    let status: Vec<(&str, &str)> = status.lines().filter_map(|l| l.split_once(": ")).collect();
    let field = |key: &str| {
        status
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("?", |(_, v)| *v)
    };
    let mut out = crate::stdout();
    if a.json {
        let daemon: serde_json::Map<String, serde_json::Value> = status
            .iter()
            .map(|(k, v)| {
                let v = match v.parse::<u64>() {
                    Ok(n) => n.into(),
                    Err(_) => v.to_string().into(),
                };
                (k.to_string(), v)
            })
            .collect();
        let v = serde_json::json!({
            "mountpoint": mnt,
            "records": records,
            "binary_list_bytes": binary.len(),
            "violations": violations.parse::<u64>().unwrap_or(0),
            "policy": rules,
            "pcrs": pcrs.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
            "status": daemon,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(out, "mount:        {}", mnt.display())?;
        writeln!(out, "source:       {}", field("source"))?;
        writeln!(out, "state:        {}", field("state"))?;
        writeln!(
            out,
            "appraisal:    {} (IMA values from {})",
            field("appraise"),
            field("ima_value")
        )?;
        let reads = match field("verify_reads") {
            "yes" => "verified against Merkle trees",
            _ => "not verified",
        };
        writeln!(
            out,
            "reads:        {reads}; {} read directly from the disk (uncached data)",
            field("direct_reads")
        )?;
        writeln!(
            out,
            "measurements: {records} records ({} bytes binary; {}, template {})",
            binary.len(),
            field("hash"),
            field("template")
        )?;
        writeln!(out, "violations:   {violations}")?;
        writeln!(out, "policy:       {} rules", rules.len())?;
        writeln!(
            out,
            "files:        {} tracked, {} contents hashed, {} opens from cache, \
             {} re-measurements waiting, {} failed",
            field("tracked_files"),
            field("contents_hashed"),
            field("cache_hits"),
            field("jobs_pending"),
            field("jobs_failed")
        )?;
        writeln!(
            out,
            "nodes:        {} known to the kernel, one descriptor each (past {} unused {} \
             forgotten)",
            field("nodes"),
            field("node_budget"),
            match field("forgets_directories") {
                "yes" => "files and directories are",
                _ => "files are",
            }
        )?;
        let descriptors = field("file_handle_descriptors");
        writeln!(
            out,
            "handles:      {} open on files, holding {descriptors} descriptor{} of the backing \
             files (read-only handles of a file share one)",
            field("file_handles"),
            if descriptors == "1" { "" } else { "s" },
        )?;
        for l in pcrs.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "{l}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Issue one of the mount's ioctls on `path`, a regular file. Anything else is
/// refused before it is opened: opening a FIFO blocks until a writer appears, and
/// opening a device can have side effects (a tape rewinds).
fn file_ioctl(path: &Path, cmd: u32) -> anyhow::Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = || {
        anyhow::anyhow!(
            "{}: not a regular file: seals apply to regular files",
            path.display()
        )
    };
    let context = || path.display().to_string();
    if !std::fs::metadata(path)
        .with_context(context)?
        .file_type()
        .is_file()
    {
        return Err(not_regular());
    }
    // Non-blocking, in case the path was replaced by a FIFO since the stat.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(context)?;
    if !f.metadata().with_context(context)?.file_type().is_file() {
        return Err(not_regular());
    }
    // SAFETY: an argument-less ioctl on our descriptor.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as libc::c_ulong) };
    if r < 0 {
        return Err(explain(path, std::io::Error::last_os_error()));
    }
    Ok(r)
}

/// The ioctl's error for `path`, said in words where the bare error would not say why.
fn explain(path: &Path, e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ENOTTY | libc::ENOSYS) => {
            anyhow::anyhow!("{}: not on a vigil mount", path.display())
        }
        // The mount answers EINVAL for its .vigil/ files (regular files are refused
        // above otherwise).
        Some(libc::EINVAL)
            if std::fs::canonicalize(path)
                .ok()
                .and_then(|p| p.parent()?.file_name().map(|n| n == ".vigil"))
                .unwrap_or(false) =>
        {
            anyhow::anyhow!(
                "{}: the .vigil files are read-only exports and cannot be sealed",
                path.display()
            )
        }
        _ => anyhow::Error::new(e).context(path.display().to_string()),
    }
}

fn seal(a: SealArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for p in &a.files {
        let deadline = Instant::now().checked_add(a.timeout);
        let mut wait = Duration::from_millis(5);
        loop {
            match file_ioctl(p, ioctl::SEAL) {
                Ok(_) => break,
                Err(e) if is_busy(&e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        let writers = file_ioctl(p, ioctl::STATUS)
                            .map(|s| s & !ioctl::STATUS_SEALED)
                            .unwrap_or(-1);
                        eprintln!(
                            "vigil: {}: busy: {writers} writer(s) still open",
                            p.display()
                        );
                        failed = true;
                        break;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.raw_os_error() == Some(libc::EBUSY))
}

fn unseal(a: UnsealArgs) -> anyhow::Result<ExitCode> {
    for p in &a.files {
        file_ioctl(p, ioctl::UNSEAL)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `vigil exec` refuses to run a file: the exit status (126 for what execve
/// refuses with EACCES/ELOOP/ENOEXEC, as a shell reports it; 1 for a failed appraisal) and the
/// message.
#[derive(Debug)]
struct Refused(u8, String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Refused {}

/// The credentials an exec is evaluated with.
struct Caller {
    uid: u32,
    euid: u32,
    gid: u32,
    egid: u32,
}

/// What execve's open of a program (`open_exec`) refuses with EACCES: a file that is
/// not regular, has no execute permission for the caller (root needs one `x` bit,
/// `faccessat(X_OK, AT_EACCESS)`), or is on a `noexec` mount.
fn check_executable(path: &Path, label: &str) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |why: &str| Refused(126, format!("{label}: {why}"));
    let regular = |m: std::fs::Metadata| m.file_type().is_file();
    // Looked at before the open too, so a FIFO or device is never opened.
    if !regular(std::fs::metadata(path).with_context(|| label.to_owned())?) {
        return Err(refuse("not a regular file").into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| label.to_owned())?;
    if !regular(file.metadata().with_context(|| label.to_owned())?) {
        return Err(refuse("not a regular file").into());
    }
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let access = rustix::fs::accessat(
        rustix::fs::CWD,
        fd_path.as_str(),
        rustix::fs::Access::EXEC_OK,
        rustix::fs::AtFlags::EACCESS,
    );
    match access {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::ACCESS) => {
            let noexec = rustix::fs::fstatvfs(&file)
                .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC));
            Err(refuse(if noexec {
                "on a noexec mount: Permission denied"
            } else {
                "no execute permission: Permission denied"
            })
            .into())
        }
        Err(e) => Err(std::io::Error::from(e)).with_context(|| label.to_owned()),
    }
}

/// The privileges execve would give `who` running `file` that an exec of its memfd
/// does not, said as "is set-user-ID", "is set-user-ID and set-group-ID", "has file
/// capabilities", …; `None` if there are none. As the kernel decides them
/// (`bprm_fill_uid`, file capabilities): none on a `nosuid` mount or under
/// no_new_privs, set-group-ID only with group execute permission, and only those
/// that would change the caller's credentials.
fn privileges_lost(file: &std::fs::File, who: &Caller) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let nosuid = rustix::fs::fstatvfs(file)
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID));
    if nosuid || rustix::thread::no_new_privs().unwrap_or(false) {
        return None;
    }
    let meta = file.metadata().ok()?;
    let mode = meta.mode();
    let mut ids = Vec::new();
    if mode & libc::S_ISUID != 0 && meta.uid() != who.euid {
        ids.push("set-user-ID");
    }
    let sgid = libc::S_ISGID | libc::S_IXGRP;
    if mode & sgid == sgid && meta.gid() != who.egid {
        ids.push("set-group-ID");
    }
    let mut lost = Vec::new();
    if !ids.is_empty() {
        lost.push(format!("is {}", ids.join(" and ")));
    }
    // Root has every capability already. (ERANGE: a value longer than any known.)
    let caps = rustix::fs::fgetxattr(file, "security.capability", &mut [0u8; 64]);
    if who.euid != 0 && matches!(caps, Ok(_) | Err(rustix::io::Errno::RANGE)) {
        lost.push("has file capabilities".to_owned());
    }
    (!lost.is_empty()).then(|| lost.join(" and "))
}

/// Open `path` as execve does, evaluate the policy for it as the kernel does for an
/// exec — `FILE_CHECK` with `MAY_EXEC` at the open, then `BPRM_CHECK` — and copy what
/// was appraised into a sealed memfd. Also returns what [`privileges_lost`] says.
fn verified_memfd(
    guard: &vigil_guard::Guard,
    who: &Caller,
    path: &Path,
    label: &str,
) -> anyhow::Result<(OwnedFd, Option<String>)> {
    use std::os::fd::AsFd;
    use vigil_guard::{Error, Hook};
    let file = check_executable(path, label)?;
    let ident = guard
        .identify(file.as_fd())
        .with_context(|| label.to_owned())?;
    let mut decisions = Vec::with_capacity(2);
    for hook in [Hook::FileCheck, Hook::BprmCheck] {
        let req = vigil_guard::OpenRequest {
            hook,
            mask: vigil_guard::policy::MAY_EXEC,
            uid: who.uid,
            euid: who.euid,
            gid: who.gid,
            egid: who.egid,
            path: path.into(),
            created: false,
            // vigil exec itself waits: a signal ends it.
            gone: None,
        };
        match guard.on_open(&ident, file.as_fd(), &req) {
            Ok(d) => decisions.push(d),
            Err(e @ Error::Denied(_)) => return Err(Refused(1, format!("{label}: {e}")).into()),
            Err(e) => return Err(e).with_context(|| label.to_owned()),
        }
    }
    // Both hooks measure the file; if it changed between them, neither version is
    // handed out.
    let mut decided: Option<&std::sync::Arc<vigil_guard::Measurement>> = None;
    for m in decisions.iter().filter_map(|d| d.measurement.as_ref()) {
        if decided.is_some_and(|d| d.algo != m.algo || d.digest != m.digest) {
            return Err(Refused(1, format!("{label}: {}", Error::Changed)).into());
        }
        decided = Some(m);
    }
    match guard.sealed_memfd(&ident, file.as_fd(), true, decided) {
        Ok(m) => Ok((m, privileges_lost(&file, who))),
        Err(e @ Error::Changed) => Err(Refused(1, format!("{label}: {e}")).into()),
        Err(e) => Err(e).with_context(|| format!("copying {label} into a sealed memfd")),
    }
}

/// A `#!` line: the interpreter and its optional argument.
#[derive(Debug, PartialEq, Eq)]
struct Shebang {
    name: Vec<u8>,
    arg: Option<Vec<u8>>,
}

/// The interpreter and optional argument of a `#!` line, as binfmt_script reads them
/// from the first 256 bytes: the name ends at a space, tab or NUL, the argument is the
/// rest of the line without surrounding blanks. `Ok(None)` if `head` is no script;
/// `Err` (ENOEXEC) if it names no interpreter, or the name does not fit.
fn shebang(head: &[u8]) -> Result<Option<Shebang>, &'static str> {
    const BUF: usize = 256;
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    // The kernel's buffer: zeros after the end of a short file.
    let mut buf = [0u8; BUF];
    let n = head.len().min(BUF);
    buf[..n].copy_from_slice(&head[..n]);
    let head = &buf[..];
    if !head.starts_with(b"#!") {
        return Ok(None);
    }
    let line = match head.iter().position(|&c| c == b'\n') {
        Some(end) => &head[2..end],
        None => {
            // No end of line in the buffer: the name must end inside it.
            let rest = &head[2..BUF - 1];
            let name = rest.iter().position(|c| !blank(c)).unwrap_or(rest.len());
            if !rest[name..].iter().any(|c| blank(c) || *c == 0) {
                return Err("interpreter name too long or missing");
            }
            rest
        }
    };
    let start = line.iter().position(|c| !blank(c)).unwrap_or(line.len());
    let end = line.iter().rposition(|c| !blank(c)).map_or(0, |i| i + 1);
    let line = &line[start..end.max(start)];
    let sep = line
        .iter()
        .position(|c| blank(c) || *c == 0)
        .unwrap_or(line.len());
    if sep == 0 {
        return Err("no interpreter named on the #! line");
    }
    let arg = line
        .get(sep..)
        .filter(|r| r.first().is_some_and(blank))
        .map(|r| {
            let r = &r[r.iter().position(|c| !blank(c)).unwrap_or(r.len())..];
            r[..r.iter().position(|&c| c == 0).unwrap_or(r.len())].to_vec()
        });
    Ok(Some(Shebang {
        name: line[..sep].to_vec(),
        arg,
    }))
}

fn exec(a: ExecArgs) -> anyhow::Result<ExitCode> {
    match exec_verified(a) {
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(Refused(code, msg)) => {
                eprintln!("vigil: exec {msg}");
                Ok(ExitCode::from(*code))
            }
            None => Err(e),
        },
        r => r,
    }
}

/// The absolute path of `p`, to check and log; `p` itself where that does not fit in
/// PATH_MAX (under a working directory nested that deep), as it still opens from there.
fn full_path(p: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(p) {
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => Ok(p.to_owned()),
        r => r,
    }
}

/// `vigil exec`: as execve does, follow `#!` lines through up to five interpreters,
/// each checked, appraised and copied into a sealed memfd; then `fexecve` the last,
/// giving each script's interpreter the memfd of the script (`/dev/fd/N`) to read.
fn exec_verified(a: ExecArgs) -> anyhow::Result<ExitCode> {
    use std::ffi::{CString, OsString};
    use std::os::unix::ffi::OsStringExt;

    let config = guard_config(&a.enforce)?;
    let mut command = a.command.into_iter();
    let file = PathBuf::from(command.next().context("no FILE to run")?);
    let mut path = full_path(&file).with_context(|| format!("{}", file.display()))?;
    let tmp = match &a.state {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("temporary state directory")?),
    };
    let state = match (&a.state, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => unreachable!("a temporary directory exists when --state is absent"),
    };
    let guard = vigil_guard::Guard::new(config, &state)
        .with_context(|| format!("state directory {}", state.display()))?;
    // SAFETY: trivial getters.
    let who = unsafe {
        Caller {
            uid: libc::getuid(),
            euid: libc::geteuid(),
            gid: libc::getgid(),
            egid: libc::getegid(),
        }
    };
    // argv as binfmt_script builds it: each script level puts its interpreter, the
    // optional argument and the script's file name before the arguments after argv[0].
    let mut argv0 = file.into_os_string();
    let mut rest: Vec<OsString> = command.collect();
    let mut scripts = Vec::new();
    let mut depth = 0;
    let mut label = path.display().to_string();
    let mem = loop {
        let (mem, lost) = verified_memfd(&guard, &who, &path, &label)?;
        let mut head = [0u8; 256];
        let n = rustix::io::pread(&mem, &mut head, 0)
            .map_err(std::io::Error::from)
            .with_context(|| format!("reading the copy of {label}"))?;
        let Shebang { name, arg } = match shebang(&head[..n]) {
            Ok(None) => {
                // What the kernel loads decides the credentials (a script's own
                // set-user-ID bit is ignored): fexecve of a memfd never changes them.
                if let Some(lost) = lost {
                    eprintln!("vigil exec: {label} {lost}; it runs without those privileges");
                }
                break mem;
            }
            Ok(Some(i)) => i,
            Err(why) => return Err(Refused(126, format!("{label}: {why} (ENOEXEC)")).into()),
        };
        depth += 1;
        if depth > 5 {
            return Err(Refused(
                126,
                format!("{label}: too many levels of interpreters (ELOOP)"),
            )
            .into());
        }
        // The interpreter opens /dev/fd/N after the exec: that descriptor must survive
        // it. A binary needs no descriptor once loaded.
        rustix::io::fcntl_setfd(&mem, rustix::io::FdFlags::empty()).context("fcntl")?;
        let mut front: Vec<OsString> = arg.map(OsString::from_vec).into_iter().collect();
        front.push(format!("/dev/fd/{}", mem.as_raw_fd()).into());
        rest.splice(0..0, front);
        scripts.push(mem);
        let name = PathBuf::from(OsString::from_vec(name));
        label = format!("{label}: interpreter {}", name.display());
        path = full_path(&name).with_context(|| label.clone())?;
        argv0 = name.into_os_string();
    };
    let argv: Vec<CString> = std::iter::once(argv0)
        .chain(rest)
        .map(|s| {
            CString::new(s.into_vec()).map_err(|_| anyhow::anyhow!("argument contains a NUL byte"))
        })
        .collect::<anyhow::Result<_>>()?;
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argp: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envpp: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envpp.push(std::ptr::null());
    drop(guard);
    drop(tmp);
    // SAFETY: NULL-terminated argv/envp of valid C strings; on success this never returns.
    unsafe { libc::fexecve(mem.as_raw_fd(), argp.as_ptr(), envpp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOEXEC) {
        // Neither a binary format the kernel knows nor a script: 126, as for the
        // other files execve refuses.
        return Err(Refused(126, format!("{label}: Exec format error (ENOEXEC)")).into());
    }
    Err(e).with_context(|| format!("executing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::shebang;

    fn parsed(head: &[u8]) -> Option<(String, Option<String>)> {
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        shebang(head)
            .unwrap()
            .map(|s| (text(s.name), s.arg.map(text)))
    }

    #[test]
    fn shebang_lines_as_binfmt_script_reads_them() {
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(parsed(b"\x7fELF"), None);
        assert_eq!(parsed(b"#!/bin/sh\necho"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            parsed(b"#! \t/bin/sh  -e -x \t\nrest"),
            Some(("/bin/sh".into(), s("-e -x")))
        );
        assert_eq!(
            parsed(b"#!/usr/bin/env python3\n"),
            Some(("/usr/bin/env".into(), s("python3")))
        );
        assert_eq!(parsed(b"#!/bin/sh\0junk\n"), Some(("/bin/sh".into(), None)));
        assert_eq!(parsed(b"#!/bin/sh"), Some(("/bin/sh".into(), None)));
        assert!(shebang(b"#!  \n/bin/sh").is_err());
        // No end of line in 256 bytes: the name must end inside them.
        let mut long = b"#!/".to_vec();
        long.resize(300, b'a');
        assert!(shebang(&long).is_err());
        long[100] = b' ';
        assert_eq!(parsed(&long).unwrap().0.len(), 98);
    }
}
