//! Keylime's runtime policy (format version 1), read and written exactly as Keylime
//! does: the same keys in the same order, Python's `json.dumps` layout, the same
//! schema (`RUNTIME_POLICY_SCHEMA`), plus DSSE-wrapped policies and the legacy
//! `sha256sum`-style allowlist and exclude-list inputs.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digestmap::Builder;
use crate::{pyjson, Error, Result};

/// The policy format version this crate reads and writes.
pub const CURRENT_VERSION: u64 = 1;

/// Keylime's `RUNTIME_POLICY_GENERATOR`: who produced the policy.
pub mod generator {
    /// Unknown producer.
    pub const UNKNOWN: u8 = 0;
    /// An empty allowlist.
    pub const EMPTY_ALLOWLIST: u8 = 1;
    /// Converted from a compatible allowlist.
    pub const COMPATIBLE_ALLOWLIST: u8 = 2;
    /// Produced by `keylime_create_policy` / `keylime-policy create runtime` (and vigil).
    pub const LEGACY_ALLOWLIST: u8 = 3;
}

/// The `log_hash_alg` values Keylime accepts.
pub const LOG_HASH_ALGS: &[&str] = &["sha1", "sha256", "sha384", "sha512"];

/// The largest policy text [`RuntimePolicy::from_json`] reads (names and digests are
/// kept at 32-bit offsets).
pub const MAX_POLICY_LEN: usize = u32::MAX as usize;

/// Separator between a key path and the message inside deserializer errors.
const PATH_SEP: char = '\u{1}';

pub use crate::digestmap::{DigestMap, Digests, DigestsIter, Source};

/// Wrap a nested deserializer error with the key path it occurred under.
fn nest<E: de::Error>(prefix: &str, err: impl fmt::Display) -> E {
    let text = strip_position(&err.to_string());
    match text.split_once(PATH_SEP) {
        Some((path, msg)) => E::custom(format!("{prefix}{path}{PATH_SEP}{msg}")),
        None => E::custom(format!("{prefix}{PATH_SEP}{text}")),
    }
}

/// serde_json appends " at line L column C" to every error; nested wrapping must not
/// repeat it.
fn strip_position(s: &str) -> String {
    if let Some(i) = s.rfind(" at line ") {
        let tail = &s[i + " at line ".len()..];
        let mut parts = tail.split(" column ");
        if let (Some(l), Some(c), None) = (parts.next(), parts.next(), parts.next()) {
            if l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit()) {
                return s[..i].to_owned();
            }
        }
    }
    s.to_owned()
}

fn quote_key(k: &str) -> String {
    format!("[{}]", serde_json::to_string(k).unwrap_or_default())
}

/// A list of strings whose errors name the offending index.
struct StrList;

impl<'de> DeserializeSeed<'de> for StrList {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StrList {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let i = out.len();
            match seq.next_element::<String>() {
                Ok(Some(s)) => out.push(s),
                Ok(None) => return Ok(out),
                Err(e) => return Err(nest(&format!("[{i}]"), e)),
            }
        }
    }
}

/// A string handed to the map being built: [`Builder::begin`] for a name that starts
/// an entry, [`Builder::digest`] for a digest of the entry begun last.
struct StrSeed<'b>(&'b mut Builder, fn(&mut Builder, &str));

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        (self.1)(self.0, v);
        Ok(())
    }
}

/// The digest list of the entry begun last, with errors naming the offending index.
struct DigestList<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for DigestList<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DigestList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            match seq.next_element_seed(StrSeed(&mut *self.0, Builder::digest)) {
                Ok(Some(())) => i += 1,
                Ok(None) => return Ok(()),
                Err(e) => return Err(nest(&format!("[{i}]"), e)),
            }
        }
    }
}

impl<'de> Deserialize<'de> for DigestMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DigestMap, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DigestMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping names to arrays of hex digests")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<DigestMap, M::Error> {
                let mut b = Builder::default();
                while m.next_key_seed(StrSeed(&mut b, Builder::begin))?.is_some() {
                    m.next_value_seed(DigestList(&mut b))
                        .map_err(|e| nest::<M::Error>(&quote_key(b.last_name()), e))?;
                }
                Ok(b.finish())
            }
        }
        d.deserialize_map(V)
    }
}

/// `meta`: format version, generator and an optional timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Format version (1).
    pub version: u64,
    /// One of [`generator`]'s values (0..=3 per the schema).
    pub generator: u64,
    /// Python's `str(datetime.now())`, e.g. `2024-09-12 13:44:44.298873`.
    pub timestamp: Option<String>,
}

/// `ima`: settings of the validation itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImaSettings {
    /// Keyrings whose keys are accepted without a digest check and never learned;
    /// `*` means all.
    pub ignored_keyrings: Vec<String>,
    /// Algorithm of the template-hash column of the list (not of file digests).
    pub log_hash_alg: String,
    /// Device-mapper policy; the schema requires `null`.
    pub dm_policy: Option<serde_json::Value>,
}

/// A Keylime runtime policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimePolicy {
    /// `meta`.
    pub meta: Meta,
    /// `release`.
    pub release: u64,
    /// `digests`: file path (or `boot_aggregate`) → accepted hex file digests.
    pub digests: DigestMap,
    /// `excludes`: Python regular expressions of paths that are not checked.
    pub excludes: Vec<String>,
    /// `keyrings`: keyring name → accepted digests of keys measured into it.
    pub keyrings: DigestMap,
    /// `ima`.
    pub ima: ImaSettings,
    /// `ima-buf`: event name → accepted digests of the buffer.
    pub ima_buf: DigestMap,
    /// `verification-keys`: a JSON string `{"pubkeys": [base64 DER SPKI], "keyids": [u32]}`
    /// or empty.
    pub verification_keys: String,
}

impl Default for RuntimePolicy {
    /// Keylime's `EMPTY_RUNTIME_POLICY`.
    fn default() -> RuntimePolicy {
        RuntimePolicy {
            meta: Meta {
                version: CURRENT_VERSION,
                generator: generator::EMPTY_ALLOWLIST as u64,
                timestamp: None,
            },
            release: 0,
            digests: DigestMap::new(),
            excludes: Vec::new(),
            keyrings: DigestMap::new(),
            ima: ImaSettings {
                ignored_keyrings: Vec::new(),
                log_hash_alg: "sha1".into(),
                dm_policy: None,
            },
            ima_buf: DigestMap::new(),
            verification_keys: String::new(),
        }
    }
}

impl Serialize for Meta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = 2 + self.timestamp.is_some() as usize;
        let mut st = s.serialize_struct("meta", n)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("generator", &self.generator)?;
        if let Some(t) = &self.timestamp {
            st.serialize_field("timestamp", t)?;
        }
        st.end()
    }
}

impl Serialize for ImaSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ima", 3)?;
        st.serialize_field("ignored_keyrings", &self.ignored_keyrings)?;
        st.serialize_field("log_hash_alg", &self.log_hash_alg)?;
        st.serialize_field("dm_policy", &self.dm_policy)?;
        st.end()
    }
}

impl Serialize for RuntimePolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RuntimePolicy", 8)?;
        st.serialize_field("meta", &self.meta)?;
        st.serialize_field("release", &self.release)?;
        st.serialize_field("digests", &self.digests)?;
        st.serialize_field("excludes", &self.excludes)?;
        st.serialize_field("keyrings", &self.keyrings)?;
        st.serialize_field("ima", &self.ima)?;
        st.serialize_field("ima-buf", &self.ima_buf)?;
        st.serialize_field("verification-keys", &self.verification_keys)?;
        st.end()
    }
}

fn field<'de, M: MapAccess<'de>, T: Deserialize<'de>>(m: &mut M, key: &str) -> Result<T, M::Error> {
    m.next_value::<T>().map_err(|e| nest(key, e))
}

fn required<E: de::Error, T>(v: Option<T>, key: &str) -> Result<T, E> {
    v.ok_or_else(|| E::custom(format!("{key}{PATH_SEP}is a required property")))
}

/// A non-negative integer whose error says so (the schema's `minimum: 0`).
struct NonNeg(u64);

impl<'de> Deserialize<'de> for NonNeg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NonNeg, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => {
                if let Some(v) = n.as_u64() {
                    return Ok(NonNeg(v));
                }
                if n.as_i64().is_some() {
                    return Err(de::Error::custom(format!(
                        "{n} is less than the minimum of 0"
                    )));
                }
                // JSON Schema counts 1.0 as an integer, as Python's jsonschema does.
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && (0.0..9.0e15).contains(&f) => {
                        Ok(NonNeg(f as u64))
                    }
                    _ => Err(de::Error::custom(format!("{n} is not of type 'integer'"))),
                }
            }
            other => Err(de::Error::custom(format!(
                "{other} is not of type 'integer'"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Meta, M::Error> {
                let (mut version, mut gen, mut ts) = (None, None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "version" => version = Some(field::<M, NonNeg>(&mut m, ".version")?.0),
                        "generator" => gen = Some(field::<M, NonNeg>(&mut m, ".generator")?.0),
                        "timestamp" => ts = Some(field::<M, String>(&mut m, ".timestamp")?),
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Meta {
                    version: required(version, ".version")?,
                    generator: required(gen, ".generator")?,
                    timestamp: ts,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ImaSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ImaSettings, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ImaSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<ImaSettings, M::Error> {
                let (mut ign, mut alg, mut dm) = (None, None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "ignored_keyrings" => {
                            ign = Some(
                                m.next_value_seed(StrList)
                                    .map_err(|e| nest::<M::Error>(".ignored_keyrings", e))?,
                            )
                        }
                        "log_hash_alg" => alg = Some(field::<M, String>(&mut m, ".log_hash_alg")?),
                        "dm_policy" => {
                            dm = Some(field::<M, Option<serde_json::Value>>(&mut m, ".dm_policy")?)
                        }
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(ImaSettings {
                    ignored_keyrings: required(ign, ".ignored_keyrings")?,
                    log_hash_alg: required(alg, ".log_hash_alg")?,
                    dm_policy: required(dm, ".dm_policy")?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for RuntimePolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuntimePolicy, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuntimePolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object (a Keylime runtime policy)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<RuntimePolicy, M::Error> {
                let mut meta = None;
                let mut release = None;
                let mut digests = None;
                let mut excludes = None;
                let mut keyrings = None;
                let mut ima = None;
                let mut ima_buf = None;
                let mut vkeys = None;
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "meta" => meta = Some(field(&mut m, "meta")?),
                        "release" => release = Some(field::<M, NonNeg>(&mut m, "release")?.0),
                        "digests" => digests = Some(field(&mut m, "digests")?),
                        "excludes" => {
                            excludes = Some(
                                m.next_value_seed(StrList)
                                    .map_err(|e| nest::<M::Error>("excludes", e))?,
                            )
                        }
                        "keyrings" => keyrings = Some(field(&mut m, "keyrings")?),
                        "ima" => ima = Some(field(&mut m, "ima")?),
                        "ima-buf" => ima_buf = Some(field(&mut m, "ima-buf")?),
                        "verification-keys" => vkeys = Some(field(&mut m, "verification-keys")?),
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(RuntimePolicy {
                    meta: required(meta, "meta")?,
                    release: required(release, "release")?,
                    digests: required(digests, "digests")?,
                    excludes: required(excludes, "excludes")?,
                    keyrings: required(keyrings, "keyrings")?,
                    ima: required(ima, "ima")?,
                    ima_buf: required(ima_buf, "ima-buf")?,
                    verification_keys: required(vkeys, "verification-keys")?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Turn a serde_json error from policy parsing into [`Error::Schema`] naming the key,
/// or [`Error::Json`] when the text is not JSON at all.
fn classify(err: serde_json::Error) -> Error {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Error::Json {
            what: "runtime policy",
            error: err,
        },
        Category::Data => {
            let text = strip_position(&err.to_string());
            match text.split_once(PATH_SEP) {
                Some((path, msg)) => {
                    Error::schema(if path.is_empty() { "(top level)" } else { path }, msg)
                }
                None => Error::schema("(top level)", text),
            }
        }
    }
}

/// The `verification-keys` string parsed: base64 DER SubjectPublicKeyInfo keys and
/// their key ids (Keylime's `ImaKeyring.to_json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationKeys {
    /// Base64 DER SPKI of each key.
    pub pubkeys: Vec<String>,
    /// keyidv2 of each key (same order); missing ids are derived from the key.
    #[serde(default)]
    pub keyids: Vec<u32>,
}

impl RuntimePolicy {
    /// Parse a policy (plain, not a DSSE envelope): structure and types are checked,
    /// with errors naming the key; the value constraints of Keylime's schema are
    /// checked separately by [`RuntimePolicy::validate_schema`], because Keylime's
    /// verifier itself evaluates policies (such as its own `runtime-policy-test.json`)
    /// that fail them.
    pub fn from_json(text: &[u8]) -> Result<RuntimePolicy> {
        Self::parse(text, None)
    }

    /// [`RuntimePolicy::from_json`] of a text the policy may keep: its `digests` then
    /// point into `text` instead of copying it (a large policy loads faster).
    pub fn from_json_shared(text: Source) -> Result<RuntimePolicy> {
        Self::parse((*text).as_ref(), Some(text.clone()))
    }

    fn parse(text: &[u8], source: Option<Source>) -> Result<RuntimePolicy> {
        if text.len() > MAX_POLICY_LEN {
            return Err(Error::schema(
                "(top level)",
                format!("{} bytes: a policy may have at most 4 GiB", text.len()),
            ));
        }
        // Fast path: the digests object by the scanner, the rest by serde; anything
        // the fast path does not take (unusual shapes, any error) is parsed whole
        // by the general path below, which also gives the errors.
        if let Some((a, z, digests)) = crate::fastjson::find_digests(text, source) {
            let mut rest = Vec::with_capacity(text.len() - (z - a) + 2);
            rest.extend_from_slice(&text[..a]);
            rest.extend_from_slice(b"{}");
            rest.extend_from_slice(&text[z..]);
            if let Ok(mut p) = serde_json::from_slice::<RuntimePolicy>(&rest) {
                p.digests = digests;
                return Ok(p);
            }
        }
        Self::from_json_general(text)
    }

    /// [`RuntimePolicy::from_json`] without the fast path for `digests` (every
    /// string through serde_json).
    pub fn from_json_general(text: &[u8]) -> Result<RuntimePolicy> {
        serde_json::from_slice(text).map_err(|e| {
            // Nested errors lose their category; tell syntax errors apart by parsing
            // again without a schema (only on this error path).
            match serde_json::from_slice::<de::IgnoredAny>(text) {
                Err(error) => Error::Json {
                    what: "runtime policy",
                    error,
                },
                Ok(_) => classify(e),
            }
        })
    }

    /// Serialize exactly as Keylime's `json.dumps(policy)`.
    pub fn to_json(&self) -> String {
        pyjson::to_string(self)
    }

    /// Check every constraint of Keylime's `RUNTIME_POLICY_SCHEMA` (and of
    /// `IMA_KEYRING_JSON_SCHEMA` for `verification-keys`); the error names the first
    /// offending key.
    pub fn validate_schema(&self) -> Result<()> {
        if self.meta.generator > generator::LEGACY_ALLOWLIST as u64 {
            return Err(Error::schema(
                "meta.generator",
                format!("{} is greater than the maximum of 3", self.meta.generator),
            ));
        }
        for (section, map) in [
            ("digests", &self.digests),
            ("keyrings", &self.keyrings),
            ("ima-buf", &self.ima_buf),
        ] {
            for (name, list) in map.iter() {
                if list.is_empty() {
                    return Err(Error::schema(
                        format!("{section}{}", quote_key(name)),
                        "[] should be non-empty",
                    ));
                }
                for (i, d) in list.iter().enumerate() {
                    if !is_policy_digest(d) {
                        return Err(Error::schema(
                            format!("{section}{}[{i}]", quote_key(name)),
                            format!("{d:?} does not match '^[0-9a-f]{{40,128}}$'"),
                        ));
                    }
                }
            }
        }
        if !LOG_HASH_ALGS.contains(&self.ima.log_hash_alg.as_str()) {
            return Err(Error::schema(
                "ima.log_hash_alg",
                format!(
                    "{:?} is not one of ['sha1', 'sha256', 'sha384', 'sha512']",
                    self.ima.log_hash_alg
                ),
            ));
        }
        if let Some(v) = &self.ima.dm_policy {
            return Err(Error::schema(
                "ima.dm_policy",
                format!("{v} is not of type 'null'"),
            ));
        }
        self.verification_keys()?;
        crate::exclude::Excludes::new(&self.excludes)?;
        Ok(())
    }

    /// Parse `verification-keys` (empty string → none).
    pub fn verification_keys(&self) -> Result<Option<VerificationKeys>> {
        if self.verification_keys.is_empty() {
            return Ok(None);
        }
        let mut v: serde_json::Value = serde_json::from_str(&self.verification_keys)
            .map_err(|e| Error::schema("verification-keys", format!("not valid JSON: {e}")))?;
        // Keylime's database stores it double-encoded; from_string accepts both.
        if let serde_json::Value::String(s) = &v {
            v = serde_json::from_str(s)
                .map_err(|e| Error::schema("verification-keys", format!("not valid JSON: {e}")))?;
        }
        serde_json::from_value::<VerificationKeys>(v)
            .map(Some)
            .map_err(|e| Error::schema("verification-keys", e.to_string()))
    }

    /// Set `verification-keys` from parsed keys, written as Keylime writes it.
    pub fn set_verification_keys(&mut self, keys: &VerificationKeys) {
        self.verification_keys = if keys.pubkeys.is_empty() {
            String::new()
        } else {
            pyjson::to_string(keys)
        };
    }

    /// Keylime's final normalisation before writing: every list sorted and
    /// de-duplicated.
    pub fn normalize(&mut self) {
        self.digests.normalize();
        self.keyrings.normalize();
        self.ima_buf.normalize();
        self.excludes.sort();
        self.excludes.dedup();
        self.ima.ignored_keyrings.sort();
        self.ima.ignored_keyrings.dedup();
    }

    /// Merge `other` into `self` (`vigil runtime-policy merge`): digest maps, excludes
    /// and ignored keyrings become unions (Keylime's `merge_maplists`/`merge_lists`),
    /// verification keys are combined; `meta`, `release` and `log_hash_alg` stay
    /// `self`'s.
    pub fn merge(&mut self, other: &RuntimePolicy) {
        self.digests.merge(&other.digests);
        self.keyrings.merge(&other.keyrings);
        self.ima_buf.merge(&other.ima_buf);
        self.excludes.extend(other.excludes.iter().cloned());
        self.excludes.sort();
        self.excludes.dedup();
        self.ima
            .ignored_keyrings
            .extend(other.ima.ignored_keyrings.iter().cloned());
        self.ima.ignored_keyrings.sort();
        self.ima.ignored_keyrings.dedup();
        if self.verification_keys.is_empty() {
            self.verification_keys = other.verification_keys.clone();
        } else if !other.verification_keys.is_empty()
            && other.verification_keys != self.verification_keys
        {
            if let (Ok(Some(mut a)), Ok(Some(b))) =
                (self.verification_keys(), other.verification_keys())
            {
                let ids_a = key_ids_or_none(&a);
                for (i, k) in b.pubkeys.iter().enumerate() {
                    if !a.pubkeys.contains(k) {
                        a.pubkeys.push(k.clone());
                        if ids_a {
                            if let Some(id) = b.keyids.get(i) {
                                a.keyids.push(*id);
                            }
                        }
                    }
                }
                self.set_verification_keys(&a);
            }
        }
    }
}

fn key_ids_or_none(k: &VerificationKeys) -> bool {
    k.keyids.len() == k.pubkeys.len()
}

/// Keylime's digest pattern `^[0-9a-f]{40,128}$` (Python `$` also allows one trailing
/// newline, which a JSON string from Keylime never has).
pub fn is_policy_digest(s: &str) -> bool {
    (40..=128).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Read a plain-text allowlist in `sha256sum` format (`<hex>  <path>` per line) into
/// `map` as Keylime's `process_flat_allowlist` does: lines are stripped, split on the
/// first run of whitespace, lines without two parts are skipped, spaces in paths become
/// `_` (IMA's rendering). Returns the number of entries read. A digest the policy
/// schema would refuse is an error naming `file` and the line.
pub fn read_allowlist(text: &str, file: &str, map: &mut DigestMap) -> Result<usize> {
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((digest, path)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let path = path.trim_start();
        if path.is_empty() {
            continue;
        }
        let path = path.replace(' ', "_");
        if !is_policy_digest(digest) {
            return Err(Error::Line {
                file: file.to_owned(),
                line: i + 1,
                message: format!(
                    "digest {digest:?} of {path:?} does not match '^[0-9a-f]{{40,128}}$'"
                ),
            });
        }
        map.push(&path, digest);
        n += 1;
    }
    Ok(n)
}

/// Read an exclude-list file: one Python regular expression per line, blank lines
/// skipped, each checked to compile (Keylime's `process_exclude_list_file`).
pub fn read_exclude_list(text: &str, file: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        crate::exclude::Excludes::new(&[line.to_owned()]).map_err(|e| Error::Line {
            file: file.to_owned(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(line.to_owned());
    }
    Ok(out)
}

/// Write the digests in the legacy allowlist format (`--show-legacy-allowlist`):
/// `boot_aggregate` first, then every other name in order, one `<digest>  <name>` line
/// per digest.
pub fn legacy_allowlist(digests: &DigestMap) -> String {
    let mut out = String::new();
    if let Some(list) = digests.get("boot_aggregate") {
        for d in list {
            out.push_str(&format!("{d}  boot_aggregate\n"));
        }
    }
    for (name, list) in digests.iter() {
        if name == "boot_aggregate" {
            continue;
        }
        for d in list {
            out.push_str(&format!("{d}  {name}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_policy_matches_keylime() {
        assert_eq!(
            RuntimePolicy::default().to_json(),
            r#"{"meta": {"version": 1, "generator": 1}, "release": 0, "digests": {}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}"#
        );
    }

    #[test]
    fn errors_name_the_key() {
        let base = RuntimePolicy::default().to_json();
        let cases: &[(&str, &str, &str)] = &[
            (r#""release": 0"#, r#""release": -1"#, "release"),
            (r#""release": 0"#, r#""release": "x""#, "release"),
            (
                r#""digests": {}"#,
                r#""digests": {"/a": "x"}"#,
                r#"digests["/a"]"#,
            ),
            (
                r#""digests": {}"#,
                r#""digests": {"/a": [1]}"#,
                r#"digests["/a"][0]"#,
            ),
            (r#""digests": {}"#, r#""digests": []"#, "digests"),
            (
                r#""log_hash_alg": "sha1""#,
                r#""log_hash_alg": 5"#,
                "ima.log_hash_alg",
            ),
            (r#""version": 1, "#, "", "meta.version"),
            (r#""excludes": []"#, r#""excludes": [1]"#, "excludes[0]"),
        ];
        for (from, to, key) in cases {
            let text = base.replacen(from, to, 1);
            match RuntimePolicy::from_json(text.as_bytes()) {
                Err(Error::Schema { key: k, .. }) => assert_eq!(&k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let text = base.replacen(r#""release": 0, "#, "", 1);
        let err = RuntimePolicy::from_json(text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("release: is a required property"),
            "{err}"
        );
        assert!(matches!(
            RuntimePolicy::from_json(b"{\"meta\": "),
            Err(Error::Json { .. })
        ));
        assert!(matches!(
            RuntimePolicy::from_json(b"[1, 2]"),
            Err(Error::Schema { .. })
        ));
    }

    #[test]
    fn schema_values() {
        let mut p = RuntimePolicy::default();
        p.digests.push("/a", "abc");
        let e = p.validate_schema().unwrap_err();
        assert!(
            matches!(&e, Error::Schema { key, .. } if key == r#"digests["/a"][0]"#),
            "{e}"
        );
        let mut p = RuntimePolicy::default();
        p.ima.log_hash_alg = "md5".into();
        assert!(
            matches!(p.validate_schema(), Err(Error::Schema { key, .. }) if key == "ima.log_hash_alg")
        );
        let mut p = RuntimePolicy::default();
        p.keyrings.insert(".ima", vec![]);
        assert!(p.validate_schema().is_err());
        let p = RuntimePolicy {
            verification_keys: "{\"pubkeys\": 1}".into(),
            ..Default::default()
        };
        assert!(
            matches!(p.validate_schema(), Err(Error::Schema { key, .. }) if key == "verification-keys")
        );
        let mut p = RuntimePolicy::default();
        p.meta.generator = 4;
        assert!(p.validate_schema().is_err());
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let m: DigestMap = serde_json::from_str(
            r#"{"/a": ["aa"], "/b": ["bb"], "/a": ["cc"], "/c": [], "/b": ["dd", "ee"]}"#,
        )
        .unwrap();
        let got: Vec<_> = m.iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
        assert_eq!(
            got,
            [
                ("/a".to_owned(), vec!["cc".to_owned()]),
                ("/b".to_owned(), vec!["dd".to_owned(), "ee".to_owned()]),
                ("/c".to_owned(), vec![]),
            ]
        );
        assert_eq!(m.get("/b").unwrap(), ["dd", "ee"]);
        assert_eq!(m.get("/c").unwrap(), [] as [&str; 0]);
        assert!(m.get("/d").is_none());
        // Many names: every one is found after the one-pass index build.
        let text = format!(
            "{{{}}}",
            (0..5000)
                .map(|i| format!("\"/p{i}\": [\"{i:040x}\"]"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let m: DigestMap = serde_json::from_str(&text).unwrap();
        assert_eq!(m.len(), 5000);
        for i in 0..5000 {
            assert_eq!(m.get(&format!("/p{i}")).unwrap(), [format!("{i:040x}")]);
        }
    }

    #[test]
    fn roundtrip_keeps_order() {
        let text = r#"{"meta": {"version": 1, "generator": 3, "timestamp": "t"}, "release": 0, "digests": {"/z": ["00112233445566778899aabbccddeeff00112233"], "/a": ["00112233445566778899aabbccddeeff00112233"]}, "excludes": ["/tmp/.*"], "keyrings": {}, "ima": {"ignored_keyrings": ["*"], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}"#;
        let p = RuntimePolicy::from_json(text.as_bytes()).unwrap();
        p.validate_schema().unwrap();
        assert_eq!(p.to_json(), text);
    }

    #[test]
    fn allowlist_and_merge() {
        let mut m = DigestMap::new();
        let (aa, bb, cc) = ("a".repeat(40), "b".repeat(64), "c".repeat(64));
        let text = format!("{aa}  /usr/bin/a b\n\n  {bb} /x \nlonely\n{cc}\t/x\n");
        let n = read_allowlist(&text, "allow", &mut m).unwrap();
        assert_eq!(n, 3);
        assert_eq!(m.get("/usr/bin/a_b").unwrap(), [&aa]);
        assert_eq!(m.get("/x").unwrap(), [&bb, &cc]);
        // A digest the schema refuses names the file and the line.
        let text = format!("{aa} /a\n\n{}Z /b\n", &bb[1..]);
        let e = read_allowlist(&text, "allow", &mut DigestMap::new());
        let e = e.unwrap_err().to_string();
        assert!(
            e.starts_with("allow: line 3: digest ") && e.contains("\"/b\""),
            "{e}"
        );
        let mut o = DigestMap::new();
        o.push("/x", "aa");
        o.push("/y", "dd");
        m.merge(&o);
        assert_eq!(m.get("/x").unwrap(), ["aa", bb.as_str(), cc.as_str()]);
        assert_eq!(
            m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["/usr/bin/a_b", "/x", "/y"]
        );
        assert_eq!(m.remove("/x").unwrap().len(), 3);
        assert_eq!(m.get("/y").unwrap(), ["dd"]);
    }

    /// Same result (policy or error message) from the fast path (copying, or pointing
    /// into the text) and the general one.
    fn fast_matches_general(text: &str) {
        let general = RuntimePolicy::from_json_general(text.as_bytes());
        let shared: Source = std::sync::Arc::new(text.as_bytes().to_vec());
        for fast in [
            RuntimePolicy::from_json(text.as_bytes()),
            RuntimePolicy::from_json_shared(shared),
        ] {
            match (&fast, &general) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{text}");
                    assert_eq!(a.to_json(), b.to_json(), "{text}");
                    // Changes after loading mix pointed-to and copied strings.
                    let (mut a, mut b) = (a.digests.clone(), b.digests.clone());
                    for m in [&mut a, &mut b] {
                        m.push("/a", "ff");
                        m.push("/new", "ee");
                        m.normalize();
                        m.remove("/b");
                    }
                    assert_eq!(a, b, "{text}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                _ => panic!("{text}: fast {fast:?} general {general:?}"),
            }
        }
    }

    #[test]
    fn fast_path_edge_cases() {
        let base = RuntimePolicy::default().to_json();
        let digests = [
            r#"{}"#,
            r#"{"/a": ["aa"], "/b": ["bb", "cc"]}"#,
            r#"{"/a": ["aa"], "/a": ["bb"]}"#,
            r#"{"/a\"q": ["aa"]}"#,
            r#"{"/\u00e9": ["aa"]}"#,
            r#"{"/é": ["aa"]}"#,
            r#"{"/a": []}"#,
            r#"{"/a": "aa"}"#,
            r#"{"/a": [1]}"#,
            r#"{"/a": ["aa", 1]}"#,
            r#"{"/a": ["aa"],}"#,
            r#"{"/a": ["aa"]"#,
            r#"[]"#,
            r#"null"#,
            "{\"/a\": [\"a\x01\"]}",
            "{\n  \"/a\" : [ \"aa\" ]\n}",
        ];
        for d in digests {
            let text = base.replacen(r#""digests": {}"#, &format!(r#""digests": {d}"#), 1);
            fast_matches_general(&text);
            // With a second digests key, and with other errors around it.
            fast_matches_general(&text.replacen(
                r#""release": 0"#,
                r#""digests": {"/z": ["zz"]}, "release": 0"#,
                1,
            ));
            fast_matches_general(&text.replacen(r#""release": 0"#, r#""release": -1"#, 1));
            fast_matches_general(&text.replacen(
                r#""log_hash_alg": "sha1""#,
                r#""log_hash_alg": 5"#,
                1,
            ));
            fast_matches_general(&text.replacen(
                r#""excludes": []"#,
                r#""excludes": ["x\"}\\"]"#,
                1,
            ));
            fast_matches_general(&text.replacen(r#""release": 0, "#, "", 1));
            fast_matches_general(&format!("{text} x"));
            fast_matches_general(&format!("  {text}\n"));
            fast_matches_general(&text[..text.len() - 1]);
        }
    }

    proptest::proptest! {
        /// Random documents built from policy fragments: the fast path agrees with the
        /// general one on every one of them, valid or not.
        #[test]
        fn fast_path_matches_general(parts in proptest::collection::vec(0usize..14, 0..12), ws in 0usize..4, cut in proptest::option::of(0usize..400)) {
            let frag = [
                r#""/usr/bin/a": ["aa", "bb"]"#,
                r#""/usr/bin/a": ["cc"]"#,
                r#""/p q": []"#,
                r#""/esc\\ape": ["dd"]"#,
                r#""/ü": ["ee"]"#,
                r#""/n": [1]"#,
                r#""/o": "x""#,
                r#""/t": ["ff",]"#,
                r#""/u\u0041": ["00"]"#,
                r#""/v": [ "11" , "22" ]"#,
                r#""/w":["33"]"#,
                "\"/x\"\n:\t[\"44\"]",
                r#""/y": [null]"#,
                r#""/z": ["\n"]"#,
            ];
            let sep = [", ", ",", " ,\n ", ",,"][ws];
            let body: Vec<&str> = parts.iter().map(|&i| frag[i]).collect();
            let d = format!("{{{}}}", body.join(sep));
            let base = RuntimePolicy::default().to_json();
            let mut text = base.replacen(r#""digests": {}"#, &format!(r#""digests": {d}"#), 1);
            if let Some(c) = cut {
                let mut c = c.min(text.len());
                while !text.is_char_boundary(c) {
                    c -= 1;
                }
                text.truncate(c);
            }
            fast_matches_general(&text);
        }
    }
}
