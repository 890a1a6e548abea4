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

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(vigil_ima::HashAlgo::Sha256.digest(data).unwrap())
}

pub fn write_file(path: &Path, data: &[u8]) -> PathBuf {
    std::fs::write(path, data).unwrap();
    path.to_owned()
}
