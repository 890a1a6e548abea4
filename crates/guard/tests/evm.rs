//! EVM in appraisal: `security.evm` values written by evmctl (portable and inode-bound
//! signatures) and HMACs computed with openssl from the kernel's definition, checked
//! by the guard as the kernel's `evm_verifyxattr()` does.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use vigil_guard::{AppraiseMode, Config, Error, EvmKeys, Guard, Template, Verdict, XattrSource};
use vigil_ima::{KeyRing, PublicKey};

/// `evmctl sign --portable --imahash --xattr-user`: a hash value in user.ima and a
/// portable signature over it in user.evm.
fn sign_portable(key: &Path, file: &Path) {
    run(Command::new("evmctl")
        .args(["sign", "--portable", "--imahash", "--xattr-user"])
        .args(["-a", "sha256", "--key"])
        .arg(key)
        .arg(file));
}

fn ring(cert: &Path) -> Arc<KeyRing> {
    let mut ring = KeyRing::new();
    ring.add(PublicKey::load(cert).unwrap());
    Arc::new(ring)
}

fn guard_with(
    dir: &Path,
    policy: &str,
    xattr: XattrSource,
    mode: AppraiseMode,
    evm: EvmKeys,
) -> Guard {
    let policy = vigil_ima::policy::parse(policy).unwrap().compile();
    let cfg = Config {
        policy: Arc::new(policy),
        xattr,
        appraise_mode: mode,
        evm,
        template: Template::ImaSig,
        ..config(Default::default())
    };
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Guard::new(cfg, dir.join(format!("state-{n}"))).unwrap()
}

/// A guard that appraises every file's `security.*` values in `mode`.
fn appraising(dir: &Path, mode: AppraiseMode, evm: EvmKeys) -> Guard {
    guard_with(
        dir,
        "appraise func=FILE_CHECK\n",
        XattrSource::Security,
        mode,
        evm,
    )
}

/// The audit cause of a refused open.
fn refused(r: vigil_guard::Result<vigil_guard::OpenDecision>) -> String {
    match r {
        Err(Error::Denied(m)) => m,
        other => panic!("expected a refusal, got {:?}", other.map(|d| d.verdict)),
    }
}

fn get_xattr(p: &Path, name: &str) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap();
    vigil_guard::sys::get_xattr(f.as_fd(), name)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no {name}", p.display()))
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let f = std::fs::File::open(p).unwrap();
    vigil_guard::sys::set_xattr(f.as_fd(), name, value).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const SIGNED_ONLY: &str = "appraise func=FILE_CHECK appraise_type=imasig\n\
                           measure func=FILE_CHECK\n";

#[test]
fn portable_signature_makes_a_hash_value_signed_and_covers_metadata() {
    let d = scratch();
    let (key, cert) = make_key(d.path(), "evm");
    let evm = EvmKeys {
        ring: Some(ring(&cert)),
        hmac_key: None,
    };
    let g = guard_with(
        d.path(),
        SIGNED_ONLY,
        XattrSource::User,
        AppraiseMode::Enforce,
        evm.clone(),
    );
    let p = write_file(&d.path().join("portable"), b"portable content\n");
    chmod(&p, 0o644);
    sign_portable(&key, &p);
    let evm_value = get_xattr(&p, "user.evm");
    assert_eq!(evm_value[0], 0x05, "evmctl wrote a portable signature");

    // A hash value under a valid portable signature is signed, hence immutable.
    let dec = open(&g, &p, false).unwrap();
    assert_eq!(dec.verdict, Some(Verdict::PassSignature));
    drop(dec);
    let m = refused(open(&g, &p, true));
    assert!(m.contains("immutable"), "{m}");
    // The ima-sig record carries the EVM portable signature (ima_eventsig_init).
    let recs = g.log().records().unwrap();
    assert_eq!(recs.last().unwrap().signature(), Some(&evm_value[..]));

    // An evm-sig record carries what the signature covers, and it verifies from the
    // record alone (as `vigil log verify --verify-sig` checks it).
    let evm_sig = guard_with(
        d.path(),
        "measure func=FILE_CHECK template=evm-sig\n",
        XattrSource::User,
        AppraiseMode::Enforce,
        evm.clone(),
    );
    drop(open(&evm_sig, &p, false).unwrap());
    let recs = evm_sig.log().records().unwrap();
    let rec = recs.last().unwrap();
    assert_eq!(rec.template_name, "evm-sig");
    let ima_value = get_xattr(&p, "user.ima");
    let st = std::fs::metadata(&p).unwrap();
    use vigil_ima::list::Field;
    assert_eq!(
        rec.fields[2..],
        [
            Field::EvmSig(evm_value.clone()),
            Field::XattrNames(b"user.ima\0".to_vec()),
            Field::XattrLengths((ima_value.len() as u32).to_le_bytes().to_vec()),
            Field::XattrValues(ima_value),
            Field::IUid(st.uid()),
            Field::IGid(st.gid()),
            Field::IMode(st.mode() as u16),
        ]
    );
    let checks =
        vigil_ima::list::check_signatures(rec, &ring(&cert), vigil_ima::list::Endian::Little);
    assert!(
        matches!(&checks[..], [(_, vigil_ima::list::SigCheck::Verified(_))]),
        "{checks:?}"
    );

    // Metadata changed behind the guard: the signature no longer verifies.
    chmod(&p, 0o600);
    let m = refused(open(&g, &p, false));
    assert!(m.contains("invalid-fail-immutable"), "{m}");
    chmod(&p, 0o644);
    assert_eq!(
        open(&g, &p, false).unwrap().verdict,
        Some(Verdict::PassSignature)
    );
    // So is the hash value (rewritten to match other content).
    std::fs::write(&p, b"other content\n").unwrap();
    run(Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(&p));
    chmod(&p, 0o644);
    let m = refused(open(&g, &p, false));
    assert!(m.contains("invalid-fail-immutable"), "{m}");

    // No security.evm at all, under EVM: missing-HMAC.
    let q = write_file(&d.path().join("unlabelled"), b"hash only\n");
    run(Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(&q));
    let m = refused(open(&g, &q, false));
    assert!(m.contains("missing-HMAC"), "{m}");

    // Signed with a key EVM does not trust.
    let (stranger, _) = make_key(d.path(), "stranger");
    let r = write_file(&d.path().join("stranger"), b"stranger's\n");
    sign_portable(&stranger, &r);
    let m = refused(open(&g, &r, false));
    assert!(m.contains("invalid-fail-immutable"), "{m}");

    // Without EVM keys, EVM does not take part: a hash value is not a signature, and
    // a file without security.evm is judged by its IMA value alone.
    let plain = guard_with(
        d.path(),
        SIGNED_ONLY,
        XattrSource::User,
        AppraiseMode::Enforce,
        EvmKeys::default(),
    );
    chmod(&p, 0o644);
    let m = refused(open(&plain, &q, false));
    assert!(m.contains("IMA-signature-required"), "{m}");
    let hash_only = guard_with(
        d.path(),
        "appraise func=FILE_CHECK\n",
        XattrSource::User,
        AppraiseMode::Enforce,
        EvmKeys::default(),
    );
    assert_eq!(
        open(&hash_only, &q, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
}

/// The file system UUID in its text form, as evmctl's `--uuid` takes it.
fn uuid_text(p: &Path) -> String {
    let f = std::fs::File::open(p).unwrap();
    let u = vigil_guard::sys::fs_uuid(f.as_fd()).unwrap_or_default();
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `security.*` xattrs need CAP_SYS_ADMIN.
fn root() -> bool {
    // SAFETY: trivial getter.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: security.* xattrs need root");
    }
    root
}

#[test]
fn inode_bound_signature_from_evmctl_verifies_and_binds_the_owner() {
    if !root() {
        return;
    }
    let d = scratch();
    let (key, cert) = make_key(d.path(), "evm");
    let g = appraising(
        d.path(),
        AppraiseMode::Enforce,
        EvmKeys {
            ring: Some(ring(&cert)),
            hmac_key: None,
        },
    );
    let p = write_file(&d.path().join("bound"), b"bound to this inode\n");
    run(Command::new("evmctl")
        .args(["sign", "--imahash", "-a", "sha256"])
        .arg(format!("--uuid={}", uuid_text(&p)))
        .arg("--key")
        .arg(&key)
        .arg(&p));
    assert_eq!(get_xattr(&p, "security.evm")[0], 0x03);
    assert_eq!(
        open(&g, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
    // An inode-bound signature does not make the file immutable.
    drop(open(&g, &p, true).unwrap());

    std::os::unix::fs::chown(&p, Some(4242), None).unwrap();
    let m = refused(open(&g, &p, false));
    assert!(m.contains("invalid-HMAC"), "{m}");

    // A copy has another inode number: the signature does not travel with it.
    std::os::unix::fs::chown(&p, Some(0), None).unwrap();
    assert!(open(&g, &p, false).is_ok());
    let copy = d.path().join("copy");
    std::fs::copy(&p, &copy).unwrap();
    for name in ["security.ima", "security.evm"] {
        set_xattr(&copy, name, &get_xattr(&p, name));
    }
    let m = refused(open(&g, &copy, false));
    assert!(m.contains("invalid-HMAC"), "{m}");

    // With an HMAC key too, a change of metadata through the frontend replaces the
    // signature with the kernel's HMAC over the new metadata.
    let key = b"hmac key".to_vec();
    let both = appraising(
        d.path(),
        AppraiseMode::Enforce,
        EvmKeys {
            ring: Some(ring(&cert)),
            hmac_key: Some(key.clone()),
        },
    );
    let f = std::fs::File::open(&p).unwrap();
    both.protect_attrs(f.as_fd(), Some(0o600), None, None)
        .unwrap();
    chmod(&p, 0o600);
    both.metadata_changed(f.as_fd()).unwrap();
    let ima = get_xattr(&p, "security.ima");
    assert_eq!(
        get_xattr(&p, "security.evm"),
        [&[0x02][..], &kernel_hmac(&p, &key, &ima)].concat()
    );
    assert_eq!(
        open(&both, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
}

/// The kernel's HMAC of a file whose only protected xattr is `ima` (an independent
/// computation: `struct h_misc` laid out by hand, HMAC by openssl).
fn kernel_hmac(p: &Path, key: &[u8], ima: &[u8]) -> Vec<u8> {
    let st = std::fs::metadata(p).unwrap();
    let f = std::fs::File::open(p).unwrap();
    let generation = vigil_guard::sys::inode_generation(f.as_fd()).unwrap_or(0);
    let uuid = vigil_guard::sys::fs_uuid(f.as_fd()).unwrap_or_default();
    let mut data = ima.to_vec();
    data.extend_from_slice(&st.ino().to_ne_bytes());
    data.extend_from_slice(&generation.to_ne_bytes());
    data.extend_from_slice(&st.uid().to_ne_bytes());
    data.extend_from_slice(&st.gid().to_ne_bytes());
    data.extend_from_slice(&(st.mode() as u16).to_ne_bytes());
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(&uuid);
    let input = p.with_extension("hmac-input");
    std::fs::write(&input, &data).unwrap();
    let mut padded = key.to_vec();
    padded.resize(128, 0);
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha1", "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{}", hex::encode(&padded)))
        .arg("-r")
        .arg(&input));
    let text = String::from_utf8(out).unwrap();
    hex::decode(text.split_whitespace().next().unwrap()).unwrap()
}

#[test]
fn hmac_is_verified_fixed_and_kept_up_to_date() {
    if !root() {
        return;
    }
    let d = scratch();
    let key = b"an EVM key of the test".to_vec();
    let keys = EvmKeys {
        ring: None,
        hmac_key: Some(key.clone()),
    };
    let g = appraising(d.path(), AppraiseMode::Enforce, keys.clone());
    let p = write_file(&d.path().join("hmac"), b"kept by HMAC\n");
    run(Command::new("evmctl")
        .args(["ima_hash", "-a", "sha256"])
        .arg(&p));
    let ima = get_xattr(&p, "security.ima");
    let m = refused(open(&g, &p, false));
    assert!(m.contains("missing-HMAC"), "{m}");

    // The kernel's HMAC, set by hand, verifies.
    let mac = kernel_hmac(&p, &key, &ima);
    set_xattr(&p, "security.evm", &[&[0x02][..], &mac].concat());
    assert_eq!(
        open(&g, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
    // One with another key does not; nor one over other metadata.
    let other = appraising(
        d.path(),
        AppraiseMode::Enforce,
        EvmKeys {
            ring: None,
            hmac_key: Some(b"another key".to_vec()),
        },
    );
    assert!(refused(open(&other, &p, false)).contains("invalid-HMAC"));
    chmod(&p, 0o640);
    assert!(refused(open(&g, &p, false)).contains("invalid-HMAC"));

    // Fix mode rewrites the HMAC (ima_fix_xattr), with the kernel's bytes.
    let fix = appraising(d.path(), AppraiseMode::Fix, keys.clone());
    assert!(open(&fix, &p, false).unwrap().verdict.unwrap().passed());
    let evm = get_xattr(&p, "security.evm");
    assert_eq!(evm, [&[0x02][..], &kernel_hmac(&p, &key, &ima)].concat());
    assert_eq!(
        open(&g, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );

    // Content changed: fix mode rewrites the hash value, and the HMAC with it.
    std::fs::write(&p, b"new content\n").unwrap();
    assert!(refused(open(&g, &p, false)).contains("invalid-hash"));
    assert!(open(&fix, &p, false).unwrap().verdict.unwrap().passed());
    let ima = get_xattr(&p, "security.ima");
    assert_eq!(
        hex::encode(&ima[2..]),
        sha256_hex(b"new content\n"),
        "hash value rewritten"
    );
    let evm = get_xattr(&p, "security.evm");
    assert_eq!(evm, [&[0x02][..], &kernel_hmac(&p, &key, &ima)].concat());
    assert_eq!(
        open(&g, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
}

/// The `evm-sig` record a kernel wrote (ibmtss `imatest.log`, entry 14: a file with
/// `security.selinux`, `security.ima` and an EVM portable signature), rebuilt from the
/// same inputs, has the kernel's bytes and template digest.
#[test]
fn evm_sig_record_has_the_kernels_bytes() {
    use vigil_guard::template::{self, DigestType, Event, InodeFields};
    use vigil_ima::list::binary::parse_all;
    use vigil_ima::list::{DigestAlgo, Endian, Field};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/ibmtss/imatest.log"
    );
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let recs = parse_all(&data, vigil_ima::HashAlgo::Sha1, Endian::Little).unwrap();
    let kernel = &recs[14];
    assert_eq!(kernel.template_name, "evm-sig");
    let (algo, digest) = match &kernel.fields[0] {
        Field::DigestNg {
            algo: DigestAlgo::Known(a),
            digest,
        } => (*a, digest.as_slice()),
        f => panic!("{f:?}"),
    };
    let (Field::NameNg(name), Field::EvmSig(evm_sig)) = (&kernel.fields[1], &kernel.fields[2])
    else {
        panic!("{:?}", kernel.fields);
    };
    let inode = InodeFields {
        evm_sig: evm_sig.clone(),
        xattrs: vec![
            (
                "security.selinux".into(),
                b"unconfined_u:object_r:unlabeled_t:s0\0".to_vec(),
            ),
            ("security.ima".into(), [&[0x04, 0x04][..], digest].concat()),
        ],
        uid: 0,
        gid: 0,
        mode: 0o100644,
    };
    let ours = template::record(
        Template::EvmSig,
        &Event {
            algo,
            digest: Some(digest),
            digest_type: DigestType::Ima,
            name,
            sig: &[],
            buf: &[],
            inode: Some(&inode),
        },
        10,
    )
    .unwrap();
    assert_eq!(ours.fields, kernel.fields);
    assert_eq!(ours.digest, kernel.digest);
}

/// A hash value and its HMAC are rewritten as one: a metadata change checked while
/// fix mode rewrites them (the content changed behind the guard) never sees the new
/// value under the old HMAC, and the HMAC left at the end covers what the file has.
#[test]
fn metadata_changes_never_see_a_hash_value_without_its_hmac() {
    if !root() {
        return;
    }
    let d = scratch();
    let keys = EvmKeys {
        ring: None,
        hmac_key: Some(b"an EVM key of the test".to_vec()),
    };
    let fix = appraising(d.path(), AppraiseMode::Fix, keys.clone());
    let p = write_file(&d.path().join("raced"), b"version 0\n");
    assert!(open(&fix, &p, false).unwrap().verdict.unwrap().passed());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Stops the chmod loop however this thread ends.
            struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            for i in 1..1000 {
                std::fs::write(&p, format!("version {i}\n")).unwrap();
                // Allowed in fix mode (it may fail while a chmod's HMAC is pending).
                open(&fix, &p, false).unwrap();
            }
        });
        let f = std::fs::File::open(&p).unwrap();
        let mut mode = 0o644;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            mode ^= 0o040;
            fix.protect_attrs(f.as_fd(), Some(mode), None, None)
                .unwrap_or_else(|e| panic!("chmod refused: {e}"));
            chmod(&p, mode);
            fix.metadata_changed(f.as_fd()).unwrap();
        }
    });
    // Settled: one more fix-mode open brings the value and HMAC up to date.
    open(&fix, &p, false).unwrap();
    let enforce = appraising(d.path(), AppraiseMode::Enforce, keys);
    assert_eq!(
        open(&enforce, &p, false).unwrap().verdict,
        Some(Verdict::PassHash)
    );
}
