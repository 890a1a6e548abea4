//! Mount options as fstab and mount(8) give them (`-o ro,policy=/etc/vigil/policy`), and
//! the mount helper `mount.vigil` that mount(8) runs for file-system type `vigil`.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Parser, ValueEnum};

use crate::mount::{Appraise, MountArgs, Xattr};

/// Split an option string at the commas outside double quotes, dropping the quotes
/// (`keys="a.pem,b.pem",ro` → `keys=a.pem,b.pem`, `ro`), as mount(8) does.
fn split_options(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|o| !o.is_empty());
    out
}

/// Options mount(8) and fstab use for their own bookkeeping; they mean nothing to the
/// file system.
fn is_bookkeeping(name: &str) -> bool {
    matches!(
        name,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "_netdev"
            | "comment"
    ) || name.starts_with("x-")
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .map_err(|_| anyhow!("-o {name}={v}: not a number"))
}

fn choice<T: ValueEnum>(name: &str, v: &str) -> anyhow::Result<T> {
    T::from_str(v, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        anyhow!("-o {name}={v}: expected one of {}", names.join(", "))
    })
}

/// Fold `a.options` into the other fields of `a` (later options win). With `sloppy`
/// (mount -s), unknown option names are ignored instead of refused.
pub fn apply_options(a: &mut MountArgs, sloppy: bool) -> anyhow::Result<()> {
    let options = std::mem::take(&mut a.options);
    for opt in options.iter().flat_map(|o| split_options(o)) {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt.as_str(), None),
        };
        if is_bookkeeping(name) {
            continue;
        }
        if value == Some("") {
            bail!("-o {opt}: empty value");
        }
        let e = &mut a.enforce;
        match (name, value) {
            ("ro", None) => a.read_only = true,
            ("rw", None) => a.read_only = false,
            ("noexec", None) => a.no_exec = true,
            ("exec", None) => a.no_exec = false,
            ("noatime", None) => a.no_atime = true,
            ("atime" | "relatime" | "strictatime", None) => a.no_atime = false,
            // Access and change times are the backing files': these change nothing.
            (
                "nodiratime" | "diratime" | "norelatime" | "nostrictatime" | "lazytime"
                | "nolazytime" | "async" | "nosuid" | "nodev",
                None,
            ) => {}
            ("sync" | "dirsync", None) => bail!(
                "-o {name}: not supported (a vigil mount writes through to the backing \
                 files; mount those {name})"
            ),
            ("suid" | "dev", None) => bail!("-o {name}: vigil mounts are always nosuid,nodev"),
            ("no-verify-reads", None) => a.no_verify_reads = true,
            ("policy", Some(v)) => e.policy = Some(v.into()),
            ("builtin", Some(v)) => e.builtins.push(v.into()),
            ("appraise", Some(v)) => e.appraise = choice::<Appraise>(name, v)?,
            ("keys", Some(v)) => e.keys.push(v.into()),
            ("evm-keys", Some(v)) => e.evm_keys.push(v.into()),
            ("evm-hmac-key", Some(v)) => e.evm_hmac_key = Some(v.into()),
            ("xattr", Some(v)) => e.xattr = choice::<Xattr>(name, v)?,
            ("hash-algo", Some(v)) => e.hash_algo = v.into(),
            ("template", Some(v)) => e.template = v.into(),
            ("state", Some(v)) => a.state = Some(v.into()),
            ("log", Some(v)) => a.log = Some(v.into()),
            ("threads", Some(v)) => a.threads = Some(number(name, v)?),
            ("workers", Some(v)) => a.workers = Some(number(name, v)?),
            ("read-workers", Some(v)) => a.read_workers = Some(number(name, v)?),
            ("watchdog", Some(v)) => a.watchdog = number(name, v)?,
            (
                "ro" | "rw" | "noexec" | "exec" | "noatime" | "atime" | "relatime" | "strictatime"
                | "nodiratime" | "diratime" | "norelatime" | "nostrictatime" | "lazytime"
                | "nolazytime" | "sync" | "dirsync" | "async" | "nosuid" | "nodev" | "suid" | "dev"
                | "no-verify-reads",
                Some(_),
            ) => bail!("-o {opt}: {name} takes no value"),
            (
                "policy" | "builtin" | "appraise" | "keys" | "evm-keys" | "evm-hmac-key" | "xattr"
                | "hash-algo" | "template" | "state" | "log" | "threads" | "workers"
                | "read-workers" | "watchdog",
                None,
            ) => bail!("-o {name}: needs a value ({name}=…)"),
            _ if sloppy => {}
            _ => bail!("-o {opt}: unknown mount option"),
        }
    }
    Ok(())
}

const HELPER_USAGE: &str = "\
Usage: mount.vigil SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]

The mount helper mount(8) runs for file-system type `vigil`, so a vigil mount can be
an fstab line or a `mount -t vigil` command:

  /srv/app  /srv/app  vigil  ro,policy=/etc/vigil/app.policy,keys=/etc/keys/ima.pem  0 0
  mount -t vigil -o appraise=log,state=/var/lib/vigil/app /srv/app /mnt/app

Install it as a link to vigil: ln -s $(command -v vigil) /sbin/mount.vigil
(as /sbin/mount.fuse.vigil too, for type fuse.vigil).

OPTIONS are those of `vigil mount -o` (see `vigil mount --help`).
  -s  ignore unknown options (sloppy)
  -f  check the arguments, policy and keys, but do not mount (fake)
  -n  accepted for compatibility (there is no /etc/mtab to write)
  -v  say what was mounted

Exit status: 0 mounted, 1 bad usage, 32 the mount failed.
";

/// Parses SOURCE and MOUNTPOINT exactly as `vigil mount` does.
#[derive(Parser)]
#[command(name = "mount.vigil", no_binary_name = true)]
struct HelperArgs {
    #[command(flatten)]
    mount: MountArgs,
}

/// `mount.vigil SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`: the command
/// line mount(8) gives a helper.
pub fn helper_main(args: Vec<OsString>) -> ExitCode {
    let usage = |msg: &str| {
        eprintln!("mount.vigil: {msg}\nTry 'mount.vigil --help' for more information.");
        ExitCode::from(1)
    };
    let (mut positional, mut options) = (Vec::new(), Vec::new());
    let (mut sloppy, mut fake, mut verbose) = (false, false, false);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str().map(str::to_owned) else {
            positional.push(arg);
            continue;
        };
        match s.as_str() {
            "-h" | "--help" => {
                print!("{HELPER_USAGE}");
                return ExitCode::SUCCESS;
            }
            "-o" | "-t" | "-N" => {
                let Some(v) = it.next().and_then(|v| v.into_string().ok()) else {
                    return usage(&format!("{s} needs an argument"));
                };
                match s.as_str() {
                    "-o" => options.push(v),
                    "-N" => return usage("-N: mounting in another namespace is not supported"),
                    _ => {} // -t vigil or -t fuse.vigil: the type that chose this helper
                }
            }
            _ if s.starts_with("--") => return usage(&format!("unknown option {s}")),
            _ if s.starts_with("-o") => options.push(s[2..].to_owned()),
            _ if s.starts_with('-') && s.len() > 1 => {
                for flag in s[1..].chars() {
                    match flag {
                        's' => sloppy = true,
                        'f' => fake = true,
                        'v' => verbose = true,
                        'n' => {}
                        _ => return usage(&format!("unknown flag -{flag}")),
                    }
                }
            }
            _ => positional.push(arg),
        }
    }
    if positional.len() != 2 {
        return usage("expected SOURCE and MOUNTPOINT");
    }
    let mut a = match HelperArgs::try_parse_from(positional) {
        Ok(h) => h.mount,
        Err(e) => return usage(&e.to_string()),
    };
    a.options = options;
    if let Err(e) = apply_options(&mut a, sloppy) {
        return usage(&crate::error_text(&e));
    }
    let (source, mountpoint) = (a.source.clone(), a.mountpoint.clone());
    let result = if fake {
        crate::mount::check_mount(&a).map(|_| ExitCode::SUCCESS)
    } else {
        crate::mount::mount(a)
    };
    match result {
        Ok(code) => {
            if verbose && !fake {
                println!(
                    "mount.vigil: {} mounted on {}",
                    source.display(),
                    mountpoint.display()
                );
            }
            code
        }
        Err(e) => {
            eprintln!("mount.vigil: {}", crate::error_text(&e));
            ExitCode::from(32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &[&str]) -> anyhow::Result<MountArgs> {
        let mut a = HelperArgs::try_parse_from(["/src", "/mnt", "--policy", "/p"])
            .unwrap()
            .mount;
        a.options = options.iter().map(|s| s.to_string()).collect();
        apply_options(&mut a, false)?;
        Ok(a)
    }

    #[test]
    fn quoted_commas_stay_in_the_value() {
        assert_eq!(
            split_options(r#"ro,keys="a.pem,b.pem",,state=/s"#),
            ["ro", "keys=a.pem,b.pem", "state=/s"]
        );
    }

    #[test]
    fn options_set_the_same_fields_as_the_long_options() {
        let a = args(&[
            "ro,noexec,noatime,appraise=log,builtin=tcb,builtin=appraise_tcb",
            "keys=/k1.pem,keys=\"/k2.pem,/k3.pem\",xattr=user,hash-algo=sha512",
            "evm-keys=/e.der,evm-hmac-key=/etc/keys/evm-key-plain",
            "template=ima-sig,state=/st,log=/l,threads=3,workers=5,read-workers=2",
            "watchdog=0,no-verify-reads,policy=/q,defaults,noauto,nofail,_netdev,x-systemd.requires=a.service,nosuid,nodev",
        ])
        .unwrap();
        assert!(a.read_only && a.no_exec && a.no_atime && a.no_verify_reads);
        let e = &a.enforce;
        assert_eq!(e.appraise, Appraise::Log);
        assert_eq!(e.builtins, ["tcb", "appraise_tcb"]);
        assert_eq!(e.keys, ["/k1.pem", "/k2.pem,/k3.pem"]);
        assert_eq!(e.evm_keys, ["/e.der"]);
        assert_eq!(
            e.evm_hmac_key.as_deref(),
            Some(std::path::Path::new("/etc/keys/evm-key-plain"))
        );
        assert_eq!(e.xattr, Xattr::User);
        assert_eq!(
            (e.hash_algo.as_str(), e.template.as_str()),
            ("sha512", "ima-sig")
        );
        assert_eq!(e.policy.as_deref(), Some(std::path::Path::new("/q")));
        assert_eq!(a.state.as_deref(), Some(std::path::Path::new("/st")));
        assert_eq!(a.log.as_deref(), Some(std::path::Path::new("/l")));
        assert_eq!(
            (a.threads, a.workers, a.read_workers),
            (Some(3), Some(5), Some(2))
        );
        assert_eq!(a.watchdog, 0);
        assert!(a.options.is_empty());
    }

    #[test]
    fn generic_vfs_options() {
        let a = args(&[
            "noatime,nodiratime,lazytime,nolazytime,async,norelatime,nostrictatime,diratime",
        ])
        .unwrap();
        assert!(a.no_atime && !a.read_only && !a.no_exec);
        for on in ["atime", "relatime", "strictatime"] {
            assert!(!args(&["noatime", on]).unwrap().no_atime, "{on}");
        }
        let a =
            args(&["users,user,nouser,owner,group,auto,noauto,nofail,defaults,rw,exec"]).unwrap();
        assert!(!a.read_only && !a.no_exec && !a.no_atime);
    }

    #[test]
    fn later_options_win() {
        let a = args(&["ro,noexec", "rw,exec"]).unwrap();
        assert!(!a.read_only && !a.no_exec);
    }

    #[test]
    fn bad_options_are_named() {
        let err = |o: &str| format!("{:#}", args(&[o]).err().expect(o));
        assert_eq!(err("ro,frobnicate"), "-o frobnicate: unknown mount option");
        assert_eq!(err("policy"), "-o policy: needs a value (policy=…)");
        assert_eq!(err("state="), "-o state=: empty value");
        assert_eq!(err("ro=1"), "-o ro=1: ro takes no value");
        assert_eq!(err("threads=many"), "-o threads=many: not a number");
        assert_eq!(
            err("appraise=strict"),
            "-o appraise=strict: expected one of enforce, log, fix, off"
        );
        assert_eq!(err("suid"), "-o suid: vigil mounts are always nosuid,nodev");
        assert!(err("sync").starts_with("-o sync: not supported"));
        assert_eq!(err("lazytime=1"), "-o lazytime=1: lazytime takes no value");
    }

    #[test]
    fn sloppy_ignores_only_unknown_names() {
        let mut a = args(&[]).unwrap();
        a.options = vec!["frobnicate,ro".into()];
        apply_options(&mut a, true).unwrap();
        assert!(a.read_only);
        a.options = vec!["threads=x".into()];
        assert!(apply_options(&mut a, true).is_err());
    }
}
