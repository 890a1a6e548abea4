//! The guard with the IMA policy language and a key ring: rules decide, evmctl signs,
//! the guard appraises (v2 signatures from evmctl, v3 verity signatures).

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use vigil_guard::{Config, Error, FsVerityTrees, Guard, Verdict};
use vigil_ima::{HashAlgo, KeyRing, PrivateKey, PublicKey, XattrType};

fn guard_with(dir: &Path, policy: &str, ring: KeyRing, trees: bool) -> Guard {
    let policy = vigil_ima::policy::parse(policy).unwrap().compile();
    let cfg = Config {
        policy: Arc::new(policy),
        verifier: Some(Arc::new(ring)),
        tree_builder: trees.then(|| Arc::new(FsVerityTrees::default()) as _),
        ..config(Default::default())
    };
    Guard::new(cfg, dir.join(format!("state-{}", rand_suffix()))).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn policy_rules_decide_measure_and_appraise() {
    let d = scratch();
    let policy = "\
dont_measure fsmagic=0x9fa0
measure func=FILE_CHECK mask=^MAY_READ uid=0 template=ima-sig pcr=11
appraise func=FILE_CHECK fowner=4242 appraise_type=imasig
";
    let g = guard_with(d.path(), policy, KeyRing::new(), false);
    let p = write_file(&d.path().join("owned by root"), b"root file");
    let dec = open(&g, &p, false).unwrap();
    assert!(dec.verdict.is_none(), "not appraised: owner is root");
    let recs = g.log().records().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].pcr, recs[0].template_name.as_str()),
        (11, "ima-sig")
    );

    // Owned by 4242: a signature is required; a hash value does not do.
    let q = write_file(&d.path().join("owned by 4242"), b"user file");
    std::os::unix::fs::chown(&q, Some(4242), None).unwrap();
    run(Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(&q));
    match open(&g, &q, false) {
        Err(Error::Denied(m)) => assert!(m.contains("IMA-signature-required"), "{m}"),
        other => panic!("{:?}", other.map(|d| d.verdict)),
    }
}

#[test]
fn evmctl_signatures_appraise_and_make_files_immutable() {
    let d = scratch();
    let (key, cert) = make_key(d.path(), "rsa");
    let mut ring = KeyRing::new();
    ring.add(PublicKey::load(&cert).unwrap());
    let g = guard_with(
        d.path(),
        "appraise func=FILE_CHECK appraise_type=imasig\n",
        ring,
        false,
    );
    let p = write_file(&d.path().join("signed"), b"signed content\n");
    run(Command::new("evmctl")
        .args(["ima_sign", "--xattr-user", "-a", "sha256", "--key"])
        .arg(&key)
        .arg(&p));
    let dec = open(&g, &p, false).unwrap();
    assert_eq!(dec.verdict, Some(Verdict::PassSignature));
    drop(dec);
    // Signed files are immutable in enforce mode (IMA: EACCES on a write open).
    let e = open(&g, &p, true).err().unwrap();
    assert_eq!(e.errno(), libc::EACCES, "{e}");

    // Content changed behind the guard: the signature no longer verifies.
    std::fs::write(&p, b"tampered content\n").unwrap();
    match open(&g, &p, false) {
        Err(Error::Denied(m)) => assert!(m.contains("invalid-signature"), "{m}"),
        other => panic!("{:?}", other.map(|d| d.verdict)),
    }

    // A signature by a key not in the ring fails.
    let other = tempfile::tempdir_in(d.path()).unwrap();
    let (key2, _) = make_key(other.path(), "rsa");
    let q = write_file(&d.path().join("signed by stranger"), b"x");
    run(Command::new("evmctl")
        .args(["ima_sign", "--xattr-user", "-a", "sha256", "--key"])
        .arg(&key2)
        .arg(&q));
    match open(&g, &q, false) {
        Err(Error::Denied(m)) => assert!(m.contains("invalid-signature"), "{m}"),
        other => panic!("{:?}", other.map(|d| d.verdict)),
    }
}

#[test]
fn verity_v3_signature_appraises() {
    let d = scratch();
    let (key, cert) = make_key(d.path(), "rsa");
    let mut ring = KeyRing::new();
    ring.add(PublicKey::load(&cert).unwrap());
    let policy = "\
measure func=FILE_CHECK digest_type=verity template=ima-sigv2
appraise func=FILE_CHECK digest_type=verity appraise_type=sigv3
";
    let g = guard_with(d.path(), policy, ring, true);
    let data = vec![0x5au8; 100_000];
    let p = write_file(&d.path().join("verity"), &data);
    // Sign the fs-verity digest (as `evmctl sign_hash --veritysig` does).
    let o = Command::new("fsverity")
        .args(["digest", "--compact"])
        .arg(&p)
        .output()
        .unwrap();
    let vdigest = hex::decode(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
    let sk = PrivateKey::load(&key, None).unwrap();
    let sig = vigil_ima::sign_v3(&sk, XattrType::ImaVeritySig, HashAlgo::Sha256, &vdigest).unwrap();
    let f = File::open(&p).unwrap();
    vigil_guard::sys::set_xattr(f.as_fd(), "user.ima", &sig.encode()).unwrap();

    let dec = open(&g, &p, false).unwrap();
    assert_eq!(dec.verdict, Some(Verdict::PassSignature));
    let line = vigil_guard::log::ascii_line(&g.log().records().unwrap()[0]);
    assert!(
        line.contains(&format!(
            "ima-sigv2 verity:sha256:{} {} {}",
            hex::encode(&vdigest),
            p.display(),
            hex::encode(sig.encode())
        )),
        "{line}"
    );

    // A v2 signature (over the content hash) does not satisfy a verity rule.
    let q = write_file(&d.path().join("v2 only"), &data);
    run(Command::new("evmctl")
        .args(["ima_sign", "--xattr-user", "-a", "sha256", "--key"])
        .arg(&key)
        .arg(&q));
    match open(&g, &q, false) {
        Err(Error::Denied(m)) => assert!(m.contains("verity-signature-required"), "{m}"),
        other => panic!("{:?}", other.map(|d| d.verdict)),
    }

    // The verity signature where the rule does not ask for one: a signature rule
    // refuses it, and a hash rule finds it does not sign the file hash (as the kernel).
    for (rule, cause) in [
        (
            "appraise func=FILE_CHECK appraise_type=imasig",
            "IMA-signature-required",
        ),
        ("appraise func=FILE_CHECK", "invalid-verity-signature"),
    ] {
        let mut ring = KeyRing::new();
        ring.add(PublicKey::load(&cert).unwrap());
        let g = guard_with(d.path(), rule, ring, true);
        match open(&g, &p, false) {
            Err(Error::Denied(m)) => assert!(m.contains(cause), "{rule}: {m}"),
            other => panic!("{rule}: {:?}", other.map(|d| d.verdict)),
        }
    }
}

/// A loop-mounted ext4 image with a known UUID, unmounted on drop.
struct LoopExt4 {
    mnt: std::path::PathBuf,
}

impl LoopExt4 {
    fn new(dir: &Path, uuid: &str) -> Option<LoopExt4> {
        let img = dir.join("fs.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        File::create(&img).unwrap().set_len(8 << 20).unwrap();
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if !ok(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", uuid])
            .arg(&img))
            || !ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt))
        {
            eprintln!("skipped: cannot make and loop-mount an ext4 image (needs root)");
            return None;
        }
        Some(LoopExt4 { mnt })
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn policy_rules_see_the_file_system_name_and_uuid() {
    let d = scratch();
    let uuid = "6b1e0b36-3a8f-4a4e-9f0b-2f4c1d7e5a90";
    let Some(fs) = LoopExt4::new(d.path(), uuid) else {
        return;
    };
    let p = write_file(&fs.mnt.join("file"), b"on the image");
    let measured = |policy: &str| {
        let g = guard_with(d.path(), policy, KeyRing::new(), false);
        open(&g, &p, false).unwrap();
        g.log().records().unwrap().len()
    };
    assert_eq!(measured("measure func=FILE_CHECK fsname=ext4\n"), 1);
    assert_eq!(measured("measure func=FILE_CHECK fsname=xfs\n"), 0);
    assert_eq!(
        measured(&format!(
            "dont_measure fsuuid={uuid}\nmeasure func=FILE_CHECK\n"
        )),
        0
    );
    assert_eq!(
        measured(
            "dont_measure fsuuid=00000000-0000-0000-0000-000000000001\nmeasure func=FILE_CHECK\n"
        ),
        1
    );
    // A FUSE-style subtype condition does not match a file system without one.
    assert_eq!(measured("measure func=FILE_CHECK fs_subtype=sshfs\n"), 0);
}
