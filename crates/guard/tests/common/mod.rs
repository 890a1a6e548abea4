//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_guard::{
    Actions, AppraiseAction, Config, FixedPolicy, Guard, MeasureAction, XattrSource,
};

/// A scratch directory on a real filesystem with user xattrs (the target dir, not /tmp).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("guard-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
}

pub fn measure_all() -> Actions {
    Actions {
        measure: Some(MeasureAction {
            pcr: 10,
            template: None,
            verity: false,
        }),
        ..Actions::default()
    }
}

pub fn appraise_hash() -> Actions {
    Actions {
        measure: Some(MeasureAction {
            pcr: 10,
            template: None,
            verity: false,
        }),
        appraise: Some(AppraiseAction::default()),
        hash: true,
    }
}

pub fn config(actions: Actions) -> Config {
    Config {
        policy: Arc::new(FixedPolicy(actions)),
        xattr: XattrSource::User,
        ..Config::default()
    }
}

pub fn guard(dir: &Path, actions: Actions) -> Guard {
    Guard::new(config(actions), dir.join("state")).expect("guard")
}

/// [`guard`] with `dir` registered as its mount (deferred jobs reopen files there).
pub fn mounted_guard(dir: &Path, actions: Actions) -> Guard {
    let g = guard(dir, actions);
    g.register_mount(std::fs::File::open(dir).unwrap().into())
        .unwrap();
    g
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(vigil_ima::HashAlgo::Sha256.digest(data).unwrap())
}

pub fn write_file(path: &Path, data: &[u8]) -> PathBuf {
    std::fs::write(path, data).unwrap();
    path.to_owned()
}

/// Run a tool, which must succeed; its standard output.
pub fn run(cmd: &mut std::process::Command) -> Vec<u8> {
    let o = cmd
        .output()
        .expect("tool (scripts/install-deps.sh installs openssl, ima-evm-utils)");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// An RSA key `<name>.pem` and a self-signed certificate `<name>.der` with a subject
/// key identifier, in `dir`.
pub fn make_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    use std::process::Command;
    let key = dir.join(format!("{name}.pem"));
    let cert = dir.join(format!("{name}.der"));
    let cnf = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &cnf,
        "[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=ext\n[dn]\nCN=vigil test\n\
         [ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(&key)
        .args(["-sha256", "-days", "30", "-batch", "-config"])
        .arg(&cnf)
        .args(["-set_serial", "1", "-outform", "DER", "-out"])
        .arg(&cert));
    (key, cert)
}

/// Open `p` (read-only, or read-write) and report the open to `g`, as a frontend does.
pub fn open(g: &Guard, p: &Path, write: bool) -> vigil_guard::Result<vigil_guard::OpenDecision> {
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(p)
        .unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let req = if write {
        vigil_guard::OpenRequest::write(p.to_str().unwrap())
    } else {
        vigil_guard::OpenRequest::read(p.to_str().unwrap())
    };
    g.on_open(&id, f.as_fd(), &req)
}
