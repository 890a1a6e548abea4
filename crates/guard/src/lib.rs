//! `vigil-guard`: vigil's enforcement core — the five lessons of the design as a
//! library that a frontend (the FUSE mount) drives. No FUSE code lives here.
//!
//! * **Identity** ([`identity`]): files are keyed by (unique mount id, file handle with
//!   generation), validated by ctime (ns), size and birth time; no descriptors or paths
//!   are held as identity.
//! * **Per-file state** ([`genstate`]): an atomic generation word that writers only bump
//!   (inner, lock-free) and an outer measurement lock held across hashing; a
//!   measurement publishes only if the generation it started from is unchanged.
//! * **Writers, mappings, violations**: counted per file; ToMToU and open_writers are
//!   detected as IMA's `ima_rdwr_violation_check` does and logged as violations.
//! * **Deferred work** ([`queue`]): the last writer's release only queues a job keyed
//!   by identity and generation in a bounded, de-duplicating queue; workers re-measure,
//!   refresh hash values and rebuild trees with no per-file lock held while waiting.
//! * **Measurement log** ([`log`]): the kernel's binary list, persisted with group
//!   commit, software PCR banks, duplicate suppression and torn-tail recovery.
//! * **Appraisal** ([`appraise`]): enforce / log / fix / off, hash and signature values,
//!   and EVM's check of the protected xattrs and metadata ([`evm`]) when it has keys.
//! * **Seals**: EBUSY while writers or writable mappings exist, EPERM for later
//!   changes; [`Guard::sealed_memfd`] hands verified content out in a sealed memfd.
//! * **Tree store** ([`store`]): Merkle trees written temp → fsync → rename → fsync dir
//!   under a "building" marker; partial trees are erased at start.
//!
//! Entry point: [`Guard`].

pub mod appraise;
pub mod error;
pub mod evm;
pub mod genstate;
mod guard;
pub mod identity;
pub mod log;
pub mod policy;
pub mod queue;
pub mod store;
pub mod sys;
pub mod template;
pub mod verity;

pub use appraise::{AppraiseMode, SignatureVerifier, Verdict, XattrSource};
pub use error::{Error, Result};
pub use evm::{EvmKeys, EvmStatus};
pub use guard::{
    Config, FileStatus, FindPath, Guard, GuardStats, JobFailureReport, LogPath, MapToken,
    Measurement, MetadataChange, Modification, OpenDecision, OpenHandle, OpenRequest,
    ReleaseOutcome, SealRecord, TreeBuilder, VerityTree,
};
pub use identity::{FileAttrs, FileId, Identified};
pub use log::{Appended, LogConfig, LogStats, MeasurementLog};
pub use policy::{
    Access, Actions, AppraiseAction, FixedPolicy, FsInfo, Hook, MeasureAction, PolicyEngine,
};
pub use store::{TreeRef, TreeStore};
pub use template::Template;
pub use verity::FsVerityTrees;
pub use vigil_ima::list::{PcrBanks, Record};

/// The synchronisation primitives of [`genstate`] and [`queue`]; the model tests
/// compile those two files against `loom`'s instead.
pub(crate) mod sync {
    pub use std::sync::atomic::{AtomicU64, Ordering};
    pub use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
}
