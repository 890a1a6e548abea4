//! `vigil-attest`: remote attestation of IMA measurement lists, compatible with
//! Keylime.
//!
//! - [`policy`]: Keylime's runtime policy (format version 1), schema, legacy allowlists.
//! - [`dsse`]: DSSE-signed policies.
//! - [`exclude`]: exclude lists with Python `re.match` semantics.
//! - [`validate`]: validation of a measurement list against a policy and a quote,
//!   incremental [`validate::State`], [`validate::Report`].
//! - [`keys`]: keyrings of IMA signature verification keys.
//! - [`generate`]: policy generation from a root file system, lists and allowlists.

mod digestmap;
pub mod dsse;
pub mod error;
pub mod exclude;
pub mod fastjson;
pub mod generate;
mod hex_decode;
pub mod keys;
pub mod list;
pub mod policy;
pub mod pyjson;
mod sha1_fast;
pub mod validate;

pub use error::{Error, Result};
pub use policy::RuntimePolicy;
pub use validate::{Entry, Options, Report, State, Validator};
