//! The `vigil` binary: one program with subcommands, which also answers as a drop-in
//! `evmctl` or `fsverity` when started under that name (a symlink or hard link).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod attest;
mod evmctl;
mod fstab;
mod fsverity_compat;
mod getopt;
mod ima;
mod log;
mod mount;
mod policy;
mod verity;

/// File integrity for Linux userspace: IMA measurement and appraisal, EVM, fs-verity
/// and sealing, byte-compatible with the kernel, evmctl, fsverity-utils and Keylime.
///
/// Exit status: 0 on success, 1 when a verification fails, 2 on bad usage or
/// unreadable input.
///
/// Run as `evmctl` or `fsverity` (through a link of that name) vigil accepts those
/// tools' command lines and prints their output; run as `mount.vigil` it is the mount
/// helper mount(8) uses for fstab entries of type `vigil`.
#[derive(Parser)]
#[command(name = "vigil", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Verity(verity::Command),
    #[command(flatten)]
    Ima(ima::Command),
    #[command(flatten)]
    Log(log::Command),
    #[command(flatten)]
    Policy(policy::Command),
    #[command(flatten)]
    Attest(attest::Command),
    #[command(flatten)]
    Mount(mount::Command),
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let prog = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("vigil")
        .to_owned();
    match prog.as_str() {
        "fsverity" => fsverity_compat::main(args.collect()),
        "evmctl" => evmctl::main(args.map(|a| a.to_string_lossy().into_owned()).collect()),
        "mount.vigil" | "mount.fuse.vigil" => fstab::helper_main(args.collect()),
        _ => run_vigil(Cli::parse()),
    }
}

fn run_vigil(cli: Cli) -> ExitCode {
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Verity(c) => verity::run(c),
        Command::Ima(c) => ima::run(c),
        Command::Log(c) => log::run(c),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Attest(c) => attest::run(c),
        Command::Mount(c) => mount::run(c),
    };
    finish(result)
}

/// Turn a command's result into the process exit status: errors (bad usage,
/// unreadable input) are printed with their context and exit 2. A reader of
/// [`stdout`] that went away (`| head`) ends the command quietly, exit 0.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if err.chain().any(ClosedStdout::is) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vigil: {}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

/// The C library's message for an errno (what `strerror` prints), as the C tools
/// vigil stands in for print it.
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Write a whole file in place of `dest` without ever leaving it half written: a
/// temporary file in the same directory, fsync, rename, fsync of the directory. The
/// file gets mode 0666 less the umask, as a file a program creates does.
pub(crate) fn write_atomic(dest: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("{}: create temporary file", dir.display()))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("{}: write", dest.display()))?;
    tmp.persist(dest)
        .map_err(|e| anyhow::anyhow!("{}: {}", dest.display(), e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An error with its causes, `: `-separated as `{:#}` prints them, leaving out a cause
/// its context already ends with (an error that prints its source too).
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain().map(|c| c.to_string()) {
        if text.ends_with(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Standard output has no reader any more (EPIPE): see [`finish`].
#[derive(Debug)]
struct ClosedStdout;

impl std::fmt::Display for ClosedStdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for ClosedStdout {}

impl ClosedStdout {
    /// `e` is this error, or an `io::Error` that carries it.
    fn is(e: &(dyn std::error::Error + 'static)) -> bool {
        e.is::<ClosedStdout>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|e| e.get_ref())
                .is_some_and(|inner| inner.is::<ClosedStdout>())
    }
}

/// Locked standard output for commands that print a lot: a write error is returned
/// (never a panic as with `println!`), and EPIPE becomes an error that [`finish`]
/// turns into a quiet exit.
pub(crate) fn stdout() -> impl std::io::Write {
    struct Out(std::io::StdoutLock<'static>);
    fn mark(e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::io::Error::new(e.kind(), ClosedStdout)
        } else {
            e
        }
    }
    impl std::io::Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf).map_err(mark)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush().map_err(mark)
        }
    }
    Out(std::io::stdout().lock())
}
