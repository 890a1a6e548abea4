//! Runtime-policy generation as `keylime-policy create runtime` (and the older
//! `keylime_create_policy`) does it: digests of a root file system (hashed in
//! parallel), of a measurement list and of a plain allowlist, merged into an optional
//! base policy, with excludes, ignored keyrings, keyring and `ima-buf` digests from the
//! list, and IMA signature verification keys.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use vigil_ima::{HashAlgo, Hasher};

use crate::keys::Keyrings;
use crate::policy::{generator, DigestMap, RuntimePolicy, VerificationKeys};
use crate::validate::{Entry, Template};
use crate::{Error, Result};

/// Directories (relative to the root file system) Keylime never hashes.
pub const BASE_EXCLUDE_DIRS: &[&str] = &[
    "/sys",
    "/run",
    "/proc",
    "/lost+found",
    "/dev",
    "/media",
    "/snap",
    "/mnt",
    "/var",
    "/tmp",
];

/// The file-digest algorithms Keylime's generator offers (`--algo`).
pub const GENERATOR_ALGOS: &[HashAlgo] = &[
    HashAlgo::Sha1,
    HashAlgo::Sha256,
    HashAlgo::Sha384,
    HashAlgo::Sha512,
    HashAlgo::Sm3,
];

/// Keylime's name for a generator algorithm (`sm3_256` for SM3).
pub fn keylime_algo_name(a: HashAlgo) -> &'static str {
    match a {
        HashAlgo::Sm3 => "sm3_256",
        other => other.name(),
    }
}

/// What an input says about the file-digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoHint {
    /// Nothing (input absent or empty).
    None,
    /// This algorithm.
    Algo(HashAlgo),
    /// 64 hex digits: SHA-256 or SM3.
    Sha256OrSm3,
    /// The input's digests fit no algorithm: generation must abort.
    Invalid,
}

/// Keylime's `_get_digest_algorithm_from_map_list`: guess from the length of the first
/// digest of the first entry.
pub fn hint_from_map(map: &DigestMap) -> AlgoHint {
    let Some((_, list)) = map.iter().next() else {
        return AlgoHint::None;
    };
    let Some(d) = list.first() else {
        return AlgoHint::None;
    };
    if d.is_empty() {
        return AlgoHint::None;
    }
    match d.len() {
        40 => AlgoHint::Algo(HashAlgo::Sha1),
        64 => AlgoHint::Sha256OrSm3,
        96 => AlgoHint::Algo(HashAlgo::Sha384),
        128 => AlgoHint::Algo(HashAlgo::Sha512),
        _ => AlgoHint::Invalid,
    }
}

/// Keylime's `boot_aggregate_from_file`: the algorithm of the list's first entry,
/// which must be an `ima`/`ima-ng`/`ima-sig` `boot_aggregate` with a digest of the
/// right length for a generator algorithm.
pub fn hint_from_list(first: Option<&Entry>) -> AlgoHint {
    let Some(e) = first else {
        return AlgoHint::Invalid;
    };
    if e.template == Template::ImaBuf || &*e.name != b"boot_aggregate" {
        return AlgoHint::Invalid;
    }
    let algo = match (e.template, &*e.digest_algo) {
        (Template::Ima, _) | (_, "") => match e.digest.len() {
            20 => Some(HashAlgo::Sha1),
            32 => return AlgoHint::Sha256OrSm3,
            48 => Some(HashAlgo::Sha384),
            64 => Some(HashAlgo::Sha512),
            _ => None,
        },
        (_, name) => GENERATOR_ALGOS
            .iter()
            .copied()
            .find(|a| keylime_algo_name(*a) == name || a.name() == name && *a != HashAlgo::Sm3),
    };
    match algo {
        Some(a) if a.digest_len() == e.digest.len() => AlgoHint::Algo(a),
        _ => AlgoHint::Invalid,
    }
}

/// Keylime's algorithm choice: sources in priority order (`--algo`, base policy,
/// allowlist, measurement list) must agree; `Sha256OrSm3` is resolved by a later
/// source; default SHA-256.
pub fn choose_algo(hints: &[(AlgoHint, &str)]) -> Result<HashAlgo> {
    let mut chosen: Option<AlgoHint> = None;
    let mut problems = Vec::new();
    for &(hint, source) in hints {
        match hint {
            AlgoHint::None => continue,
            AlgoHint::Invalid => {
                problems.push(format!("invalid digest algorithm found in the {source}"));
                continue;
            }
            _ => {}
        }
        match chosen {
            None => chosen = Some(hint),
            Some(c) if c == hint => {}
            Some(AlgoHint::Sha256OrSm3)
                if matches!(hint, AlgoHint::Algo(HashAlgo::Sha256 | HashAlgo::Sm3)) =>
            {
                chosen = Some(hint)
            }
            Some(_) => problems.push(format!(
                "the digest algorithm in the {source} does not match the one chosen before"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Generate(problems.join("; ")));
    }
    Ok(match chosen {
        Some(AlgoHint::Algo(a)) => a,
        _ => HashAlgo::Sha256,
    })
}

/// Keylime's `get_hashes_from_measurement_list`: `ima-ng` and `ima-sig` entries give
/// `name → hex digest` (including `boot_aggregate`).
pub fn digests_from_list<'a>(entries: impl IntoIterator<Item = &'a Entry<'a>>) -> DigestMap {
    let mut map = DigestMap::new();
    for e in entries {
        if matches!(e.template, Template::ImaNg | Template::ImaSig) {
            map.push(&String::from_utf8_lossy(&e.name), hex::encode(&e.digest));
        }
    }
    map
}

/// Keylime's `process_ima_buf_in_measurement_list`: `ima-buf` entries whose buffer is
/// an X.509 certificate give `keyrings` digests (unless the keyring is ignored or
/// `keyrings` is false); the others give `ima-buf` digests (if `ima_buf`).
pub fn keyrings_from_list<'a>(
    entries: impl IntoIterator<Item = &'a Entry<'a>>,
    ignored: &[String],
    keyrings: bool,
    ima_buf: bool,
    keyring_map: &mut DigestMap,
    ima_buf_map: &mut DigestMap,
) {
    for e in entries {
        if e.template != Template::ImaBuf {
            continue;
        }
        let name = String::from_utf8_lossy(&e.name);
        let digest = hex::encode(&e.digest);
        let is_cert = {
            use der::Decode;
            !e.buf.is_empty() && x509_cert::Certificate::from_der(&e.buf).is_ok()
        };
        if is_cert {
            if !keyrings || ignored.iter().any(|k| *k == name) {
                continue;
            }
            keyring_map.push(&name, digest);
        } else if ima_buf {
            ima_buf_map.push(&name, digest);
        }
    }
}

/// Hash one file.
pub fn hash_file(path: &Path, algo: HashAlgo) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new(algo).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

/// Mount points whose file system type differs from that of `/` (Keylime's
/// `exclude_dirs_based_on_rootfs`), not already covered by `excluded`.
fn foreign_mounts(excluded: &[String]) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mounts: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let _dev = f.next()?;
            let mp = f.next()?;
            let fstype = f.next()?;
            Some((unescape_mount(mp), fstype.to_owned()))
        })
        .collect();
    let Some(root_fs) = mounts
        .iter()
        .find(|(mp, _)| mp == "/")
        .map(|(_, t)| t.clone())
    else {
        return Vec::new();
    };
    mounts
        .into_iter()
        .filter(|(_, t)| *t != root_fs)
        .map(|(mp, _)| mp)
        .filter(|mp| !excluded.iter().any(|e| mp.starts_with(e.as_str())))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && b[i + 1] <= b'3'
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options of a root-file-system scan.
#[derive(Debug, Clone, Default)]
pub struct TreeOptions {
    /// Directories to skip (`--skip-path`), absolute or relative to the current
    /// directory; those not under the root are ignored, as Keylime does.
    pub skip_paths: Vec<PathBuf>,
    /// Also hash files not owned by root (Keylime hashes only uid 0 files).
    pub all_owners: bool,
}

/// Collect the files Keylime's `get_rootfs_digests` would hash: regular files (no
/// symlinks) owned by root, outside [`BASE_EXCLUDE_DIRS`], the skipped directories and
/// mount points of another file-system type. Returns `(policy key, path)` pairs sorted
/// by key; the key is the path relative to `rootfs` (absolute when `rootfs` is `/`)
/// with spaces turned into `_` as IMA renders them.
pub fn collect_tree(rootfs: &Path, opts: &TreeOptions) -> Result<Vec<(String, PathBuf)>> {
    let abs_root = std::path::absolute(rootfs).map_err(|e| Error::io(rootfs, e))?;
    let meta = std::fs::metadata(&abs_root).map_err(|e| Error::io(&abs_root, e))?;
    if !meta.is_dir() {
        return Err(Error::Generate(format!(
            "{} is not a directory",
            abs_root.display()
        )));
    }
    let root_str = abs_root.to_string_lossy().into_owned();
    let is_slash = root_str == "/";
    let mut excluded: Vec<String> = Vec::new();
    for d in &opts.skip_paths {
        let abs_d = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
        if abs_root.starts_with(&abs_d) {
            return Ok(Vec::new());
        }
        if let Ok(rel) = abs_d.strip_prefix(&abs_root) {
            excluded.push(if is_slash {
                abs_d.to_string_lossy().into_owned()
            } else {
                format!("/{}", rel.to_string_lossy())
            });
        }
    }
    excluded.extend(BASE_EXCLUDE_DIRS.iter().map(|s| s.to_string()));
    let foreign = foreign_mounts(&excluded);
    excluded.extend(foreign);
    let excluded: HashSet<String> = excluded.into_iter().collect();

    let mut out = Vec::new();
    let mut stack = vec![abs_root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ent in rd.flatten() {
            let Ok(ft) = ent.file_type() else { continue };
            let path = ent.path();
            if ft.is_symlink() {
                continue;
            }
            if ft.is_file() {
                if !opts.all_owners {
                    match ent.metadata() {
                        Ok(m) if m.uid() == 0 => {}
                        _ => continue,
                    }
                }
                let full = path.to_string_lossy();
                let key = if is_slash {
                    full.into_owned()
                } else {
                    full[root_str.len()..].to_owned()
                };
                out.push((key.replace(' ', "_"), path));
            } else if ft.is_dir() {
                let full = path.to_string_lossy();
                let rel = if is_slash {
                    &full[..]
                } else {
                    &full[root_str.len()..]
                };
                if excluded.contains(rel) {
                    continue;
                }
                stack.push(path);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Hash `files` in parallel into a digest map (files that cannot be read are skipped,
/// as Keylime does); `progress` is advanced once per file.
pub fn hash_files(
    files: &[(String, PathBuf)],
    algo: HashAlgo,
    progress: Option<&indicatif::ProgressBar>,
) -> DigestMap {
    let digests: Vec<Option<String>> = files
        .par_iter()
        .map(|(_, p)| {
            let r = hash_file(p, algo).ok().map(hex::encode);
            if let Some(pb) = progress {
                pb.inc(1);
            }
            r
        })
        .collect();
    let mut map = DigestMap::new();
    for ((key, _), d) in files.iter().zip(digests) {
        if let Some(d) = d {
            map.push(key, d);
        }
    }
    map
}

/// Inputs of a policy generation (`vigil runtime-policy create`).
#[derive(Debug, Default)]
pub struct CreateInputs<'a> {
    /// `--algo`.
    pub algo: Option<HashAlgo>,
    /// `--base-policy`.
    pub base: Option<RuntimePolicy>,
    /// `--allowlist` (already read).
    pub allowlist: Option<DigestMap>,
    /// `--ima-measurement-list` (already parsed; unparsable entries dropped).
    pub list: Option<Vec<Entry<'a>>>,
    /// `--rootfs` files (from [`collect_tree`]); hashed once the algorithm is known.
    pub rootfs_files: Option<Vec<(String, PathBuf)>>,
    /// `--excludelist` patterns.
    pub excludes: Vec<String>,
    /// `--ignored-keyrings`.
    pub ignored_keyrings: Vec<String>,
    /// `--keyrings`: take keyring digests from the list.
    pub keyrings: bool,
    /// `--ima-buf`: take other ima-buf digests from the list.
    pub ima_buf: bool,
    /// `--add-ima-signature-verification-key` contents.
    pub verification_keys: Vec<(String, Vec<u8>)>,
    /// Extra `boot_aggregate` digests (e.g. computed from a TCG2 event log).
    pub boot_aggregates: Vec<String>,
    /// `meta.timestamp`.
    pub timestamp: String,
}

/// Build a policy the way Keylime's `create_runtime_policy` does.
pub fn create(
    inputs: CreateInputs,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<RuntimePolicy> {
    let mut policy = RuntimePolicy::default();
    let mut base_hint = AlgoHint::None;
    if let Some(base) = &inputs.base {
        // update_base_policy: cherry-pick the supported parts into a fresh policy.
        policy.digests.merge(&base.digests);
        policy.excludes.extend(base.excludes.iter().cloned());
        policy.keyrings.merge(&base.keyrings);
        policy.ima_buf.merge(&base.ima_buf);
        policy.ima.log_hash_alg = base.ima.log_hash_alg.clone();
        policy
            .ima
            .ignored_keyrings
            .extend(base.ima.ignored_keyrings.iter().cloned());
        policy.verification_keys = base.verification_keys.clone();
        base_hint = hint_from_map(&policy.digests);
    }
    let allow_hint = inputs
        .allowlist
        .as_ref()
        .map(hint_from_map)
        .unwrap_or(AlgoHint::None);
    let list_hint = match &inputs.list {
        Some(l) => hint_from_list(l.first()),
        None => AlgoHint::None,
    };
    let algo = choose_algo(&[
        (
            inputs.algo.map(AlgoHint::Algo).unwrap_or(AlgoHint::None),
            "--algo option",
        ),
        (base_hint, "base policy"),
        (allow_hint, "allowlist"),
        (list_hint, "IMA measurement list"),
    ])?;

    let list_digests = inputs.list.as_ref().map(|l| digests_from_list(l.iter()));
    let rootfs_digests = inputs
        .rootfs_files
        .as_ref()
        .map(|files| hash_files(files, algo, progress));
    for d in [&inputs.allowlist, &list_digests, &rootfs_digests]
        .into_iter()
        .flatten()
    {
        policy.digests.merge(d);
    }
    for b in &inputs.boot_aggregates {
        policy.digests.push("boot_aggregate", b.clone());
    }
    policy.excludes.extend(inputs.excludes.iter().cloned());
    policy
        .ima
        .ignored_keyrings
        .extend(inputs.ignored_keyrings.iter().cloned());
    if inputs.keyrings || inputs.ima_buf {
        if let Some(list) = &inputs.list {
            let ignored = policy.ima.ignored_keyrings.clone();
            keyrings_from_list(
                list.iter(),
                &ignored,
                inputs.keyrings,
                inputs.ima_buf,
                &mut policy.keyrings,
                &mut policy.ima_buf,
            );
        }
    }
    if !inputs.verification_keys.is_empty() {
        let mut vk = policy.verification_keys()?.unwrap_or_default();
        for (name, data) in &inputs.verification_keys {
            let key = Keyrings::parse_key(data)
                .map_err(|m| Error::Key {
                    what: name.clone(),
                    message: m,
                })?
                .ok_or_else(|| Error::Key {
                    what: name.clone(),
                    message: "not a file with a key".into(),
                })?;
            add_verification_key(&mut vk, key.pubkey, key.keyid);
        }
        policy.set_verification_keys(&vk);
    }
    policy.normalize();
    policy.meta.generator = generator::LEGACY_ALLOWLIST as u64;
    policy.meta.timestamp = Some(inputs.timestamp);
    policy.validate_schema()?;
    Ok(policy)
}

/// Add a key to `verification-keys` as Keylime's `ImaKeyring.add_pubkey` does (one key
/// per keyid; the last one wins).
pub fn add_verification_key(vk: &mut VerificationKeys, pubkey: String, keyid: u32) {
    if vk.keyids.len() == vk.pubkeys.len() {
        if let Some(i) = vk.keyids.iter().position(|k| *k == keyid) {
            vk.pubkeys[i] = pubkey;
            return;
        }
    }
    vk.pubkeys.push(pubkey);
    vk.keyids.push(keyid);
}

/// Python's `str(datetime.datetime.now())` for the current local time, in UTC
/// (`YYYY-MM-DD HH:MM:SS.ffffff`).
pub fn python_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn mount_paths_unescape_like_the_kernel_escapes_them() {
        assert_eq!(unescape_mount(r"/a\040b\011c\134d"), "/a b\tc\\d");
        // Not an escape the kernel writes (above \377): kept as it is, never an overflow.
        assert_eq!(unescape_mount(r"/\777"), r"/\777");
        assert_eq!(unescape_mount(r"/x\04"), r"/x\04");
    }

    use super::*;

    #[test]
    fn algo_choice() {
        use AlgoHint::*;
        assert_eq!(choose_algo(&[]).unwrap(), HashAlgo::Sha256);
        assert_eq!(
            choose_algo(&[(Sha256OrSm3, "a"), (Algo(HashAlgo::Sm3), "b")]).unwrap(),
            HashAlgo::Sm3
        );
        assert_eq!(
            choose_algo(&[(Sha256OrSm3, "a"), (Sha256OrSm3, "b")]).unwrap(),
            HashAlgo::Sha256
        );
        assert!(choose_algo(&[(Algo(HashAlgo::Sha1), "a"), (Sha256OrSm3, "b")]).is_err());
        assert!(choose_algo(&[(Invalid, "a")]).is_err());
    }

    #[test]
    fn python_timestamp_shape() {
        let t = python_now();
        assert_eq!(t.len(), 26, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
        assert_eq!(&t[19..20], ".");
    }
}
