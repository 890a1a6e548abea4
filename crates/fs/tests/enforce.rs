//! The verified mount with enforcement: appraisal of signed files in enforce mode,
//! verified reads with EIO for blocks tampered behind the mount, the exported
//! measurement list replaying to the exported PCRs, and parallel readers and writers.
//! Real FUSE mounts; needs root, /dev/fuse, openssl and evmctl (skipped otherwise).

use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use vigil_fs::Background;
use vigil_guard::{AppraiseMode, Config, XattrSource};
use vigil_ima::list::{BinaryReader, ExtendMode, Replay};
use vigil_ima::{HashAlgo, KeyRing};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn can_run() -> bool {
    if !common::can_mount() {
        return false;
    }
    if !have("openssl") || !have("evmctl") {
        eprintln!("skipping: needs openssl and evmctl");
        return false;
    }
    true
}

struct Env {
    dir: tempfile::TempDir,
    src: PathBuf,
    mnt: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (dir, [src, mnt]) = common::scratch(["src", "mnt"]);
        Env { dir, src, mnt }
    }
    fn key(&self) -> (PathBuf, PathBuf) {
        let (k, c) = (
            self.dir.path().join("priv.pem"),
            self.dir.path().join("cert.pem"),
        );
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=vigil-test",
            ])
            .args(["-addext", "subjectKeyIdentifier=hash", "-keyout"])
            .arg(&k)
            .arg("-out")
            .arg(&c)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        (k, c)
    }
    fn sign(&self, key: &Path, file: &str) {
        let o = Command::new("evmctl")
            .args(["ima_sign", "--xattr-user", "-a", "sha256", "--key"])
            .arg(key)
            .arg(self.src.join(file))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    fn mount(&self, policy: &str, appraise: AppraiseMode, cert: Option<&Path>) -> Background {
        self.mount_with(policy, appraise, cert, |_| {})
    }
    fn mount_with(
        &self,
        policy: &str,
        appraise: AppraiseMode,
        cert: Option<&Path>,
        edit: impl FnOnce(&mut vigil_fs::MountOptions),
    ) -> Background {
        let pol = vigil_ima::policy::parse(policy).unwrap().compile();
        let verifier = cert.map(|c| {
            Arc::new(KeyRing::load_list(c.to_str().unwrap()).unwrap())
                as Arc<dyn vigil_guard::SignatureVerifier>
        });
        let cfg = Config {
            policy: Arc::new(pol),
            appraise_mode: appraise,
            xattr: XattrSource::User,
            verifier,
            ..Default::default()
        };
        common::mount_with(&self.src, &self.mnt, self.dir.path(), cfg, edit)
    }
    fn m(&self, f: &str) -> PathBuf {
        self.mnt.join(f)
    }
}

fn errno(r: std::io::Result<Vec<u8>>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap_or(0)
}

/// Replay the exported binary list; its PCRs must be the exported ones.
fn check_log_replays(mnt: &Path) -> String {
    let bin = fs::read(mnt.join(".vigil/binary_runtime_measurements")).unwrap();
    let mut r = BinaryReader::new(&bin[..], HashAlgo::Sha1, vigil_ima::list::Endian::Little);
    let mut replay = Replay::new(&[HashAlgo::Sha1, HashAlgo::Sha256], ExtendMode::PerBank);
    let mut n = 0;
    while let Some(raw) = r.next_raw().unwrap() {
        let rec = raw
            .to_record(HashAlgo::Sha1, vigil_ima::list::Endian::Little)
            .unwrap();
        replay
            .extend_record(&rec, vigil_ima::list::Endian::Little)
            .unwrap();
        n += 1;
    }
    let pcrs = fs::read_to_string(mnt.join(".vigil/pcrs")).unwrap();
    assert_eq!(
        vigil_fs::format_pcrs(&replay.banks),
        pcrs,
        "exported list does not replay to exported PCRs"
    );
    let ascii = fs::read(mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    let ascii = String::from_utf8_lossy(&ascii).into_owned();
    assert_eq!(ascii.lines().count(), n);
    ascii
}

#[test]
fn signed_tree_in_enforce_mode() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let (key, cert) = env.key();
    fs::create_dir(env.src.join("bin")).unwrap();
    fs::write(env.src.join("bin/tool"), b"#!/bin/sh\necho signed tool\n").unwrap();
    fs::write(
        env.src.join("big"),
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(env.src.join("unsigned"), b"nobody signed me").unwrap();
    fs::write(env.src.join("tampered"), b"original content").unwrap();
    for f in ["bin/tool", "big", "tampered"] {
        env.sign(&key, f);
    }
    fs::write(env.src.join("tampered"), b"modified content").unwrap();
    let policy = "measure func=FILE_CHECK\nappraise func=FILE_CHECK appraise_type=imasig\n";
    let bg = env.mount(policy, AppraiseMode::Enforce, Some(&cert));

    assert_eq!(
        fs::read(env.m("bin/tool")).unwrap(),
        b"#!/bin/sh\necho signed tool\n"
    );
    assert_eq!(
        fs::read(env.m("big")).unwrap(),
        fs::read(env.src.join("big")).unwrap()
    );
    assert_eq!(errno(fs::read(env.m("unsigned"))), libc::EACCES);
    assert_eq!(errno(fs::read(env.m("tampered"))), libc::EACCES);
    // A signed file is immutable in enforce mode.
    let e = fs::OpenOptions::new()
        .write(true)
        .open(env.m("big"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));

    let ascii = check_log_replays(&env.mnt);
    for (name, content) in [
        ("bin/tool", fs::read(env.src.join("bin/tool")).unwrap()),
        ("unsigned", b"nobody signed me".to_vec()),
    ] {
        let want = format!(
            "ima-ng sha256:{} {}",
            common::sha256_hex(&content),
            env.m(name).display()
        );
        assert!(
            ascii.lines().any(|l| l.ends_with(&want)),
            "no record `{want}` in\n{ascii}"
        );
    }
    assert_eq!(
        fs::read_to_string(env.m(".vigil/violations")).unwrap(),
        "0\n"
    );

    // Reopening an unchanged file is answered from the cached measurement: nothing new
    // is logged. Once the backing file changes behind the mount, the next open measures
    // it again and appraisal refuses it.
    let records = check_log_replays(&env.mnt).lines().count();
    for _ in 0..3 {
        fs::read(env.m("bin/tool")).unwrap();
    }
    assert_eq!(check_log_replays(&env.mnt).lines().count(), records);
    fs::OpenOptions::new()
        .write(true)
        .open(env.src.join("bin/tool"))
        .unwrap()
        .write_all_at(b"#!/bin/sh\necho forged tool\n", 0)
        .unwrap();
    assert_eq!(errno(fs::read(env.m("bin/tool"))), libc::EACCES);
    bg.unmount().unwrap();
}

/// FUSE passes the kernel's `__FMODE_EXEC` in the OPEN of an execve: BPRM_CHECK rules
/// apply to programs run from the mount and not to plain reads of them.
#[test]
fn exec_is_checked_as_bprm_check_and_reads_are_not() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let (key, cert) = env.key();
    for (name, text) in [
        ("signed.sh", "#!/bin/sh\necho signed ran\n"),
        ("unsigned.sh", "#!/bin/sh\necho unsigned ran\n"),
    ] {
        fs::write(env.src.join(name), text).unwrap();
        fs::set_permissions(env.src.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(env.src.join("data"), b"read, never run").unwrap();
    env.sign(&key, "signed.sh");
    let policy = "measure func=BPRM_CHECK\nappraise func=BPRM_CHECK appraise_type=imasig\n\
                  measure func=FILE_CHECK mask=MAY_READ\n\
                  measure func=FILE_CHECK mask=MAY_EXEC pcr=11\n";
    let bg = env.mount(policy, AppraiseMode::Enforce, Some(&cert));

    // Reading an unsigned script is a FILE_CHECK (MAY_READ): allowed and measured.
    assert_eq!(
        fs::read(env.m("unsigned.sh")).unwrap(),
        b"#!/bin/sh\necho unsigned ran\n"
    );
    fs::read(env.m("data")).unwrap();
    let out = Command::new(env.m("signed.sh")).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"signed ran\n");
    // Running it is a BPRM_CHECK: refused without a signature, although its pages are
    // in the page cache from the read above.
    let e = Command::new(env.m("unsigned.sh")).output().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");

    let ascii = check_log_replays(&env.mnt);
    let recorded = |pcr: &str, name: &str| {
        let suffix = format!(" {}", env.m(name).display());
        let n = ascii
            .lines()
            .filter(|l| l.starts_with(pcr) && l.ends_with(&suffix));
        n.count()
    };
    // PCR 10: reads (FILE_CHECK, MAY_READ) and execs (BPRM_CHECK), each file once.
    // PCR 11: the exec's own open, a FILE_CHECK that asks MAY_EXEC as in the kernel;
    // the refused exec was measured there before BPRM_CHECK appraisal refused it.
    for (pcr, name, n) in [
        ("10 ", "signed.sh", 1),
        ("11 ", "signed.sh", 1),
        ("10 ", "unsigned.sh", 1),
        ("11 ", "unsigned.sh", 1),
        ("10 ", "data", 1),
        ("11 ", "data", 0),
    ] {
        assert_eq!(recorded(pcr, name), n, "PCR {pcr}{name} in\n{ascii}");
    }
    bg.unmount().unwrap();
}

#[test]
fn tampering_behind_the_mount_is_eio_for_those_blocks() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let data: Vec<u8> = (0..64 * 4096u32).map(|i| (i * 31 / 7) as u8).collect();
    fs::write(env.src.join("f"), &data).unwrap();
    fs::write(env.src.join("small"), b"one block").unwrap();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let f = fs::File::open(env.m("f")).unwrap();
    let small = fs::File::open(env.m("small")).unwrap();
    let direct = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(env.m("f"))
        .unwrap();
    let mut buf = vec![0u8; data.len()];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, data);

    // Change block 9 (and the small file) in the backing store, drop the cached pages.
    let b = fs::OpenOptions::new()
        .write(true)
        .open(env.src.join("f"))
        .unwrap();
    b.write_all_at(b"EVIL", 9 * 4096 + 100).unwrap();
    fs::write(env.src.join("small"), b"one bloc!").unwrap();
    common::drop_cached(&f);
    common::drop_cached(&small);
    let mut blk = vec![0u8; 4096];
    let e = f.read_exact_at(&mut blk, 9 * 4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    for i in [0u64, 8, 10, 63] {
        f.read_exact_at(&mut blk, i * 4096).unwrap();
        assert_eq!(
            blk,
            data[i as usize * 4096..(i as usize + 1) * 4096],
            "block {i}"
        );
    }
    // O_DIRECT reads bypass the page cache; the daemon verifies them all the same.
    let mut blk = common::AlignedBuf::new(4096);
    let e = direct.read_exact_at(&mut blk, 9 * 4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    direct.read_exact_at(&mut blk, 8 * 4096).unwrap();
    assert_eq!(&blk[..], &data[8 * 4096..9 * 4096]);
    let mut s = [0u8; 9];
    assert_eq!(
        small.read_at(&mut s, 0).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    // Appending behind the mount: the new bytes were never measured. Once the
    // kernel's cached attributes expire (1 s) it sees the new size and asks for them.
    let b = fs::OpenOptions::new()
        .append(true)
        .open(env.src.join("f"))
        .unwrap();
    b.write_all_at(b"tail", data.len() as u64).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    common::drop_cached(&f);
    let mut tail = vec![0u8; 4];
    let r = f.read_at(&mut tail, data.len() as u64);
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO));
    drop((f, small, direct));
    bg.unmount().unwrap();
}

/// A handle opened before a write through the mount cannot be checked against its own
/// (outdated) tree; once the last writer closed and the file was measured again, its
/// reads are checked against the new measurement's tree.
#[test]
fn handles_opened_before_a_write_are_checked_again_after_the_re_measurement() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let mut data: Vec<u8> = (0..16 * 4096u32).map(|i| (i * 13 / 5) as u8).collect();
    fs::write(env.src.join("f"), &data).unwrap();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let reader = fs::File::open(env.m("f")).unwrap();
    let mut buf = vec![0u8; data.len()];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, data);

    let writer = fs::OpenOptions::new().write(true).open(env.m("f")).unwrap();
    writer.write_all_at(b"new", 4096).unwrap();
    data[4096..4099].copy_from_slice(b"new");
    drop(writer);
    // The writer's RELEASE (asynchronous) queues the re-measurement; wait for both.
    let t0 = Instant::now();
    while bg.open_handles() > 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    bg.guard().wait_idle();

    // Changed behind the mount after the re-measurement: EIO for that block only.
    let b = fs::OpenOptions::new()
        .write(true)
        .open(env.src.join("f"))
        .unwrap();
    b.write_all_at(b"EVIL", 5 * 4096 + 7).unwrap();
    common::drop_cached(&reader);
    let mut blk = vec![0u8; 4096];
    let e = reader.read_exact_at(&mut blk, 5 * 4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    reader.read_exact_at(&mut blk, 4096).unwrap();
    assert_eq!(
        blk,
        data[4096..2 * 4096],
        "the write through the mount reads back"
    );
    drop(reader);
    bg.unmount().unwrap();
}

/// A file truncated behind the mount at a block boundary while a handle is open: the
/// blocks that are gone fail with EIO rather than reading as an end of file (which
/// would hand a reader a silently shortened file).
#[test]
fn truncation_behind_the_mount_at_a_block_boundary_is_eio() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let data: Vec<u8> = (0..40960).map(|i| (i * 7 + i / 4096) as u8).collect();
    for i in 0..2 {
        fs::write(env.src.join(format!("t{i}")), &data).unwrap();
    }
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    for (i, cut) in [8192u64, 0].into_iter().enumerate() {
        let mut f = fs::File::open(env.m(&format!("t{i}"))).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(env.src.join(format!("t{i}")))
            .unwrap()
            .set_len(cut)
            .unwrap();
        let mut got = Vec::new();
        let r = std::io::Read::read_to_end(&mut f, &mut got);
        assert_eq!(
            r.map_err(|e| e.raw_os_error()),
            Err(Some(libc::EIO)),
            "cut at {cut}: read {} bytes",
            got.len()
        );
        assert!(got.len() as u64 <= cut && got[..] == data[..got.len()]);
    }
    bg.unmount().unwrap();
}

/// Reads of 1 MiB at a time (the kernel's largest READs): a tampered block fails its
/// read, a truncation behind the mount fails the reads past it, and the rest still
/// reads correctly. The backing data is in the page cache (where the open's
/// measurement left it, and the writes behind the mount put it).
#[test]
fn large_reads_tampered_or_truncated_behind_the_mount() {
    large_reads_tampered_or_truncated(false);
}

/// The same with the backing file's pages dropped before every step: the READs find
/// their data on the disk only and read it directly (`O_DIRECT`), verified all the same.
#[test]
fn uncached_large_reads_are_read_directly_and_verified() {
    large_reads_tampered_or_truncated(true);
}

fn large_reads_tampered_or_truncated(uncached: bool) {
    if !can_run() {
        return;
    }
    const MIB: usize = 1 << 20;
    let env = Env::new();
    let data: Vec<u8> = (0..4 * MIB + 1000)
        .map(|i| (i * 13 + i / 4093) as u8)
        .collect();
    let path = env.src.join("f");
    fs::write(&path, &data).unwrap();
    let backing = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let f = fs::File::open(env.m("f")).unwrap();
    // Drop the mount's cached pages, and the backing file's if `uncached`; the direct
    // READs there have been since the previous step must have been some.
    let direct = uncached && common::reads_directly(&path);
    if uncached && !direct {
        eprintln!("no direct reads on this file system: page cache path tested only");
    }
    let mut direct_before = direct_reads(&env.mnt);
    let mut next_step = || {
        if direct {
            let now = direct_reads(&env.mnt);
            assert!(now > direct_before, "no direct reads since the last step");
            direct_before = now;
        }
        if uncached {
            backing.sync_all().unwrap();
            common::drop_cached(&backing);
        }
        common::drop_cached(&f);
    };
    let read = |at: usize, len: usize| {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, at as u64).map(|()| buf)
    };
    if uncached {
        backing.sync_all().unwrap();
        common::drop_cached(&backing);
        common::drop_cached(&f);
    }
    for at in (0..data.len()).step_by(MIB) {
        let len = MIB.min(data.len() - at);
        assert!(
            read(at, len).unwrap() == data[at..at + len],
            "chunk at {at}"
        );
    }

    backing
        .write_all_at(b"EVIL", (2 * MIB + 5000) as u64)
        .unwrap();
    next_step();
    assert_eq!(
        read(2 * MIB, MIB).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    for at in [0, MIB, 3 * MIB] {
        assert!(
            read(at, MIB).unwrap() == data[at..at + MIB],
            "chunk at {at}"
        );
    }

    backing.set_len((MIB + MIB / 2) as u64).unwrap();
    next_step();
    // Past the new end: EIO while the kernel still has the old size, end of file once
    // it has the new one; never bytes.
    let r = read(3 * MIB, MIB);
    assert!(
        r.is_err(),
        "read past a truncation behind the mount succeeded"
    );
    assert!(read(0, MIB).unwrap() == data[..MIB]);
    next_step();
    drop(f);
    bg.unmount().unwrap();
}

#[test]
fn parallel_readers_and_writers() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let stable: Vec<u8> = (0..512 * 1024u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    fs::write(env.src.join("stable"), &stable).unwrap();
    fs::write(env.src.join("hot"), vec![0u8; 256 * 1024]).unwrap();
    let bg = env.mount(
        "measure func=FILE_CHECK mask=MAY_READ\n",
        AppraiseMode::Off,
        None,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let stable = Arc::new(stable);
    for t in 0..3u64 {
        let (p, stop, reads, stable) =
            (env.m("stable"), stop.clone(), reads.clone(), stable.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 100_000];
            let mut k = t;
            while !stop.load(Ordering::Relaxed) {
                let f = fs::File::open(&p).unwrap();
                let off = (k * 77_777) % (stable.len() as u64 - buf.len() as u64);
                common::drop_cached(&f);
                f.read_exact_at(&mut buf, off).unwrap();
                assert_eq!(&buf[..], &stable[off as usize..off as usize + buf.len()]);
                reads.fetch_add(1, Ordering::Relaxed);
                k += 3;
            }
        }));
    }
    for w in 1..=2u8 {
        let (p, stop) = (env.m("hot"), stop.clone());
        threads.push(std::thread::spawn(move || {
            let chunk = vec![w; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                for i in 0..4u64 {
                    f.write_all_at(&chunk, i * 64 * 1024).unwrap();
                }
                drop(f);
                std::thread::sleep(Duration::from_millis(3));
            }
        }));
    }
    for _ in 0..2 {
        let (p, stop) = (env.m("hot"), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let f = fs::File::open(&p).unwrap();
                let n = f.read_at(&mut buf, 0).unwrap();
                assert!(
                    buf[..n].iter().all(|&b| b <= 2),
                    "byte never written served"
                );
            }
        }));
    }
    // Dropping the backing files' cached pages now and then sends READs down the
    // direct path too, while the writers write.
    for name in ["stable", "hot"] {
        let (p, stop) = (env.src.join(name), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                common::drop_cached(&fs::File::open(&p).unwrap());
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 10);
    if common::reads_directly(&env.src.join("stable")) {
        assert!(direct_reads(&env.mnt) > 0, "no READ took the direct path");
    }

    // Every handle is released (RELEASE is asynchronous): the last writer's release
    // queued a re-measurement, which ran without any open asking for it.
    common::settle(&bg);
    assert_eq!(bg.open_handles(), 0);
    let st = bg.guard().stats();
    assert!(
        st.jobs_queued + st.jobs_merged >= 1 && st.jobs_done >= 1,
        "{st:?}"
    );
    let before = bg.guard().stats();
    let final_hot = fs::read(env.m("hot")).unwrap();
    let after = bg.guard().stats();
    assert_eq!(
        after.measurements, before.measurements,
        "open after the deferred job re-measured"
    );
    assert_eq!(final_hot, fs::read(env.src.join("hot")).unwrap());
    let ascii = check_log_replays(&env.mnt);
    let want = format!(
        "sha256:{} {}",
        common::sha256_hex(&final_hot),
        env.m("hot").display()
    );
    assert!(
        ascii.lines().any(|l| l.ends_with(&want)),
        "final version not measured:\n{ascii}"
    );
    bg.unmount().unwrap();
}

/// READs the mount at `mnt` has read from the disk directly (`.vigil/status`).
fn direct_reads(mnt: &Path) -> u64 {
    let status = fs::read_to_string(mnt.join(".vigil/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("direct_reads: "));
    line.expect("direct_reads in .vigil/status")
        .parse()
        .unwrap()
}

/// The `user.ima` value of `path`, if any.
fn ima_xattr(path: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 512];
    let n = rustix::fs::getxattr(path, "user.ima", &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

/// Give `path` its hash value in `user.ima`, with `evmctl ima_hash`.
fn evmctl_hash(path: &Path) {
    let o = Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// What `evmctl ima_hash` writes as the hash value of `content`.
fn evmctl_hash_value(env: &Env, content: &[u8]) -> Vec<u8> {
    let p = env.dir.path().join("evmctl-hash-input");
    fs::write(&p, content).unwrap();
    evmctl_hash(&p);
    ima_xattr(&p).unwrap()
}

#[test]
fn hash_values_are_fixed_and_follow_writes_through_the_mount() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    fs::write(env.src.join("unlabelled"), b"no hash value yet").unwrap();
    fs::write(env.src.join("rewritten"), vec![7u8; 100_000]).unwrap();
    let policy = "appraise func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Fix, None);

    // Opened: an unlabelled file gets its hash value, as evmctl ima_hash writes it.
    assert_eq!(fs::read(env.m("unlabelled")).unwrap(), b"no hash value yet");
    common::settle(&bg);
    assert_eq!(
        ima_xattr(&env.src.join("unlabelled")),
        Some(evmctl_hash_value(&env, b"no hash value yet"))
    );
    // Written through the mount: the last writer's close refreshes the value.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(env.m("rewritten"))
        .unwrap();
    f.write_all_at(b"changed through the mount", 50_000)
        .unwrap();
    drop(f);
    // Created through the mount.
    fs::write(env.m("created"), b"a file made through the mount").unwrap();
    common::settle(&bg);
    for name in ["rewritten", "created"] {
        let content = fs::read(env.src.join(name)).unwrap();
        assert_eq!(
            ima_xattr(&env.src.join(name)),
            Some(evmctl_hash_value(&env, &content)),
            "{name}"
        );
    }
    bg.unmount().unwrap();

    // Changed behind the mount afterwards: the value no longer matches.
    fs::write(env.src.join("unlabelled"), b"changed behind the mount").unwrap();
    let bg = env.mount(policy, AppraiseMode::Enforce, None);
    for name in ["rewritten", "created"] {
        assert_eq!(
            fs::read(env.m(name)).unwrap(),
            fs::read(env.src.join(name)).unwrap()
        );
    }
    assert_eq!(errno(fs::read(env.m("unlabelled"))), libc::EACCES);
    // In enforce mode too (as the kernel does) a hash value follows writes through the
    // mount, so the file still opens after its last writer closed.
    fs::write(env.m("created"), b"rewritten in enforce mode").unwrap();
    common::settle(&bg);
    assert_eq!(
        ima_xattr(&env.src.join("created")),
        Some(evmctl_hash_value(&env, b"rewritten in enforce mode"))
    );
    assert_eq!(
        fs::read(env.m("created")).unwrap(),
        b"rewritten in enforce mode"
    );
    bg.unmount().unwrap();
}

/// Writers that truncate and rewrite one file through the mount over and over, with a
/// reader and metadata changes (times, mode, links), in enforce mode: their own changes
/// (and the re-measurements writing the hash value between them) are never taken for a
/// change behind the mount, so no open or read fails, and the hash value follows the
/// last write.
#[test]
fn concurrent_truncating_writers_draw_no_spurious_errors() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let policy = "measure func=FILE_CHECK\nappraise func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Enforce, None);
    let path = env.m("shared");
    fs::write(&path, b"").unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4u8 {
            let (path, failures) = (&path, &failures);
            s.spawn(move || {
                let mut n = 0usize;
                while std::time::Instant::now() < until {
                    let len = [256, 51200][n % 2];
                    n += 1;
                    let r = fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(path)
                        .and_then(|f| f.write_all_at(&vec![b'A' + w; len], 0));
                    if let Err(e) = r {
                        failures.lock().unwrap().push(format!("writer {w}: {e}"));
                    }
                }
            });
        }
        s.spawn(|| {
            while std::time::Instant::now() < until {
                if let Err(e) = fs::read(&path) {
                    failures.lock().unwrap().push(format!("reader: {e}"));
                }
            }
        });
        // Metadata changes through the mount in between: times, mode, links.
        s.spawn(|| {
            let link = env.m("shared.link");
            let mut n = 0u32;
            while std::time::Instant::now() < until {
                n += 1;
                let r = match n % 3 {
                    0 => fs::File::open(&path)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now())),
                    1 => fs::set_permissions(&path, fs::Permissions::from_mode(0o640 | (n & 4))),
                    _ => fs::hard_link(&path, &link).and_then(|()| fs::remove_file(&link)),
                };
                if let Err(e) = r {
                    failures.lock().unwrap().push(format!("metadata: {e}"));
                }
            }
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures, first {:?}",
        failures.len(),
        failures.first()
    );
    common::settle(&bg);
    let now = fs::read(&path).unwrap();
    assert_eq!(
        ima_xattr(&env.src.join("shared")),
        Some(evmctl_hash_value(&env, &now))
    );
    bg.unmount().unwrap();
}

/// A change behind the mount while the file is being written through it is told apart
/// from the writers' own changes: it ends the trust in them, so the re-measurement
/// after the last writer closed does not take it into the hash value, and the file is
/// refused — also when the mount changes the file again afterwards (a write, a chmod),
/// and when the change comes before the first write. Without it, the value follows
/// the writes.
#[test]
fn a_change_behind_the_mount_while_it_is_written_is_not_taken_for_the_writers() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let data: Vec<u8> = (0..16 * 4096u32).map(|i| (i * 7 / 3) as u8).collect();
    let names = [
        "tampered",
        "tampered, then written",
        "tampered, then chmod",
        "tampered before the write",
        "untouched",
    ];
    for name in names {
        fs::write(env.src.join(name), &data).unwrap();
        evmctl_hash(&env.src.join(name));
    }
    let policy = "measure func=FILE_CHECK\nappraise func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Enforce, None);
    let tamper = |name: &str| {
        let b = fs::OpenOptions::new()
            .write(true)
            .open(env.src.join(name))
            .unwrap();
        b.write_all_at(b"EVIL", 10 * 4096).unwrap();
    };
    for name in names {
        let reader = fs::File::open(env.m(name)).unwrap();
        let mut buf = vec![0u8; data.len()];
        reader.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, data);
        let writer = fs::OpenOptions::new()
            .write(true)
            .open(env.m(name))
            .unwrap();
        if name == "tampered before the write" {
            tamper(name);
        }
        writer.write_all_at(b"W", 0).unwrap();
        match name {
            "tampered" => tamper(name),
            "tampered, then written" => {
                tamper(name);
                writer.write_all_at(b"X", 1).unwrap();
            }
            "tampered, then chmod" => {
                tamper(name);
                fs::set_permissions(env.m(name), fs::Permissions::from_mode(0o600)).unwrap();
            }
            _ => {}
        }
        // A handle opened before the write: its reads in the window cannot be checked
        // against a tree, but a change behind the mount refuses them.
        if name == "tampered" || name == "untouched" {
            common::drop_cached(&reader);
            let mut blk = vec![0u8; 4096];
            let r = reader.read_exact_at(&mut blk, 10 * 4096);
            match name {
                "tampered" => assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EIO)),
                _ => assert_eq!(r.map(|()| blk).unwrap(), data[10 * 4096..11 * 4096]),
            }
        }
        drop((writer, reader));
    }
    common::settle(&bg);
    for name in names {
        let now = fs::read(env.src.join(name)).unwrap();
        let value = ima_xattr(&env.src.join(name));
        if name == "untouched" {
            assert_eq!(value, Some(evmctl_hash_value(&env, &now)));
            assert_eq!(fs::read(env.m(name)).unwrap(), now);
        } else {
            assert_ne!(value, Some(evmctl_hash_value(&env, &now)), "{name}");
            assert_eq!(errno(fs::read(env.m(name))), libc::EACCES, "{name}");
        }
    }
    bg.unmount().unwrap();
}

/// A file created through the mount passes appraisal before it has a hash value (its
/// writes are trusted, as the kernel trusts a new file's); renaming it, linking it or
/// removing another of its names through the mount changes its ctime, which must not
/// be taken for a change behind the mount while it is still open, or after.
#[test]
fn created_files_pass_after_their_links_change_through_the_mount() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let policy = "measure func=FILE_CHECK mask=MAY_READ\nappraise func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Enforce, None);
    let create = |name: &str| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(env.m(name))
            .unwrap()
    };
    let mut held = Vec::new();
    for (op, opened_as) in [
        ("rename", "rename-moved"),
        ("over", "over-victim"),
        ("exchange", "exchange-other"),
        ("link", "link"),
        ("unlink", "unlink"),
    ] {
        let f = create(op);
        match op {
            "rename" => fs::rename(env.m(op), env.m(opened_as)).unwrap(),
            "over" => {
                drop(create(opened_as));
                fs::rename(env.m(op), env.m(opened_as)).unwrap();
            }
            "exchange" => {
                drop(create(opened_as));
                assert_eq!(
                    common::rename2(&env.m(op), &env.m(opened_as), libc::RENAME_EXCHANGE),
                    0
                );
            }
            "link" => fs::hard_link(env.m(op), env.m("link-2")).unwrap(),
            _ => {
                fs::hard_link(env.m(op), env.m("unlink-2")).unwrap();
                assert_eq!(fs::read(env.m("unlink-2")).unwrap(), b"");
                fs::remove_file(env.m("unlink-2")).unwrap();
            }
        }
        assert_eq!(fs::read(env.m(opened_as)).unwrap(), b"", "{op}, still open");
        held.push((f, opened_as));
    }
    drop(held);
    common::settle(&bg);
    for name in [
        "rename-moved",
        "over-victim",
        "exchange-other",
        "link",
        "unlink",
    ] {
        assert_eq!(fs::read(env.m(name)).unwrap(), b"", "{name}, closed");
        assert_eq!(
            ima_xattr(&env.src.join(name)),
            Some(evmctl_hash_value(&env, b"")),
            "{name}"
        );
    }
    bg.unmount().unwrap();
}

/// When the state directory cannot take a measurement (its file system is full), the
/// open that needs one fails with that error instead of using the file unmeasured; the
/// log stays whole, and once there is room again the file opens and is measured, also
/// after a restart.
#[test]
fn a_full_state_directory_refuses_opens_it_cannot_record() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(env.src.join("small"), b"measured first").unwrap();
    fs::write(env.src.join("big"), &big).unwrap();
    let state = env.dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let _tmpfs = common::Tmpfs::mount(&state, "size=1m");
    let policy = "measure func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Off, None);
    assert_eq!(fs::read(env.m("small")).unwrap(), b"measured first");

    let filler = state.join("filler");
    common::fill(&filler);
    assert_eq!(errno(fs::read(env.m("big"))), libc::ENOSPC);
    let ascii = check_log_replays(&env.mnt);
    assert!(!ascii.contains(&common::sha256_hex(&big)), "{ascii}");

    fs::remove_file(&filler).unwrap();
    assert_eq!(fs::read(env.m("big")).unwrap(), big);
    assert!(check_log_replays(&env.mnt).contains(&common::sha256_hex(&big)));
    bg.unmount().unwrap();
    let bg = env.mount(policy, AppraiseMode::Off, None);
    let ascii = check_log_replays(&env.mnt);
    assert_eq!(ascii.lines().count(), 2, "{ascii}");
    bg.unmount().unwrap();
}

/// A hash value fix mode cannot write (the source is read-only) fails the appraisal,
/// which fix mode allows, as the kernel does; the file is not hashed again at every
/// open for another try; enforce mode refuses it.
#[test]
fn fix_mode_allows_what_it_cannot_label() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let _tmpfs = common::Tmpfs::mount(&env.src, "size=1m");
    fs::write(env.src.join("f"), b"cannot be labelled").unwrap();
    let st = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&env.src)
        .status()
        .unwrap();
    assert!(st.success());
    let policy = "appraise func=FILE_CHECK\n";
    let bg = env.mount(policy, AppraiseMode::Fix, None);
    assert_eq!(fs::read(env.m("f")).unwrap(), b"cannot be labelled");
    let measured = bg.guard().stats().measurements;
    assert_eq!(fs::read(env.m("f")).unwrap(), b"cannot be labelled");
    assert_eq!(bg.guard().stats().measurements, measured, "hashed again");
    assert_eq!(ima_xattr(&env.src.join("f")), None);
    bg.unmount().unwrap();

    let bg = env.mount(policy, AppraiseMode::Enforce, None);
    assert_eq!(errno(fs::read(env.m("f"))), libc::EACCES);
    bg.unmount().unwrap();
}

/// The re-measurement after the last writer closes reads the file on nobody's behalf:
/// its atime stays as it was (natively, nothing reads it then under a measure rule).
#[test]
fn re_measurement_leaves_the_atime_alone() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    fs::write(env.src.join("f"), b"before").unwrap();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let f = fs::OpenOptions::new().write(true).open(env.m("f")).unwrap();
    f.write_all_at(b"after!", 0).unwrap();
    // An atime older than the ctime: relatime would move it at the next read.
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
    f.set_times(fs::FileTimes::new().set_accessed(old).set_modified(old))
        .unwrap();
    drop(f);
    common::settle(&bg);
    assert!(bg.guard().stats().jobs_done >= 1, "no re-measurement ran");
    let atime = fs::metadata(env.src.join("f")).unwrap().accessed().unwrap();
    assert_eq!(atime, old);
    bg.unmount().unwrap();
}

/// `openat` of `name` in `dir` (paths longer than `PATH_MAX` can only be reached one
/// component at a time).
fn open_in(dir: &fs::File, name: &str, flags: libc::c_int) -> std::io::Result<fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid descriptor and NUL-terminated name; the result is checked.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened and owned by nobody else.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// The directory `name` in `dir`, made first if `create`.
fn subdir(dir: &fs::File, name: &str, create: bool) -> fs::File {
    use std::os::fd::AsRawFd;
    if create {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: valid descriptor and NUL-terminated name.
        let r = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
        assert_eq!(r, 0, "{name}: {}", std::io::Error::last_os_error());
    }
    open_in(dir, name, libc::O_RDONLY | libc::O_DIRECTORY).unwrap()
}

/// Names go into the log as the kernel's IMA writes them (`ima_d_path`): the path's
/// bytes as they are (not UTF-8 here; spaces as `_`); the path the file was reached by
/// after renames, unlinks and a second link made through the mount, and after a move
/// behind it; and for a path too long to resolve, the file's own name.
#[test]
fn logged_names_are_the_kernels() {
    use std::ffi::OsStr;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    if !can_run() {
        return;
    }
    let env = Env::new();
    fs::write(env.src.join(OsStr::from_bytes(b"caf\xe9 menu")), b"odd").unwrap();
    // 21 levels of 200-byte names: over 4096 bytes, below the mount and the source.
    let level = "d".repeat(200);
    let mut dir = fs::File::open(&env.src).unwrap();
    for _ in 0..21 {
        dir = subdir(&dir, &level, true);
    }
    for (name, content) in [("deep", "deep"), ("before", "renamed")] {
        let f = open_in(&dir, name, libc::O_WRONLY | libc::O_CREAT).unwrap();
        f.write_all_at(content.as_bytes(), 0).unwrap();
    }
    let bg = env.mount(
        "measure func=FILE_CHECK mask=MAY_READ\n",
        AppraiseMode::Off,
        None,
    );

    let content = fs::read(env.mnt.join(OsStr::from_bytes(b"caf\xe9 menu"))).unwrap();
    assert_eq!(content, b"odd");
    let mut dir = fs::File::open(&env.mnt).unwrap();
    for _ in 0..21 {
        dir = subdir(&dir, &level, false);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut open_in(&dir, "deep", libc::O_RDONLY).unwrap(),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, "deep");
    // The kernel looks "before" up to rename it, then keeps the moved dentry: the open
    // of "after" reaches the daemon with no lookup of that name.
    // SAFETY: valid descriptor and NUL-terminated names.
    let r = unsafe {
        libc::renameat(
            dir.as_raw_fd(),
            c"before".as_ptr(),
            dir.as_raw_fd(),
            c"after".as_ptr(),
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    drop(open_in(&dir, "after", libc::O_RDONLY).unwrap());
    drop(dir);
    // Unlinked while open for writing, then opened again for reading through /proc:
    // logged by its path, without the " (deleted)" /proc would show (after the
    // open_writers violation, logged under the same name).
    let w = fs::File::create(env.m("gone")).unwrap();
    w.write_all_at(b"gone", 0).unwrap();
    fs::remove_file(env.m("gone")).unwrap();
    let again = fs::read(format!("/proc/self/fd/{}", w.as_raw_fd())).unwrap();
    assert_eq!(again, b"gone");
    drop(w);
    // A second name made through the mount, then the first one removed: logged by the
    // name that is left.
    // (Each writer's RELEASE, which the kernel sends after close() has returned, is
    // waited for: a read open that overtook it would find a writer.)
    fs::write(env.m("first"), b"linked").unwrap();
    common::settle(&bg);
    fs::hard_link(env.m("first"), env.m("second")).unwrap();
    fs::remove_file(env.m("first")).unwrap();
    assert_eq!(fs::read(env.m("second")).unwrap(), b"linked");
    // A directory renamed through the mount: a file looked up in it before follows.
    fs::create_dir(env.m("olddir")).unwrap();
    fs::write(env.m("olddir/f"), b"in a directory").unwrap();
    common::settle(&bg);
    fs::rename(env.m("olddir"), env.m("newdir")).unwrap();
    assert_eq!(fs::read(env.m("newdir/f")).unwrap(), b"in a directory");
    // Moved behind the mount while open: named where the mount last saw it, where the
    // kernel's dentry still is.
    let w = fs::File::create(env.m("seen")).unwrap();
    w.write_all_at(b"seen", 0).unwrap();
    fs::rename(env.src.join("seen"), env.src.join("moved")).unwrap();
    let again = fs::read(format!("/proc/self/fd/{}", w.as_raw_fd())).unwrap();
    assert_eq!(again, b"seen");
    drop(w);

    check_log_replays(&env.mnt);
    let ascii = fs::read(env.mnt.join(".vigil/ascii_runtime_measurements")).unwrap();
    // Compared escaped, so that a failure shows readable names.
    let names: Vec<String> = ascii
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.rsplit(|&b| b == b' ')
                .next()
                .unwrap()
                .escape_ascii()
                .to_string()
        })
        .collect();
    let mnt = env.mnt.display();
    let (odd, gone) = (format!("{mnt}/caf\\xe9_menu"), format!("{mnt}/gone"));
    let (second, moved) = (format!("{mnt}/second"), format!("{mnt}/newdir/f"));
    let seen = format!("{mnt}/seen");
    assert_eq!(
        names,
        [
            &odd[..],
            "deep",
            "after",
            &gone,
            &gone,
            &second,
            &moved,
            &seen,
            &seen
        ]
    );
    bg.unmount().unwrap();
}

/// Held by the tests that drop the kernel's inode cache and by those that count the
/// kernel's forgets: a file forgotten before it is deleted behind the mount is never
/// forgotten again.
static INODE_CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A file that is gone (deleted through the mount or behind it) and that the kernel
/// has forgotten leaves nothing behind in the guard: no state, no tree, no seal.
/// (Every file here is larger than a block, so that it has a tree to store.)
#[test]
fn deleted_files_are_forgotten() {
    if !can_run() {
        return;
    }
    let _cache = INODE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let trees = env.dir.path().join("state/trees");
    let count = |dir: &Path| fs::read_dir(dir).unwrap().count();
    fs::write(env.m("kept"), vec![1u8; 5000]).unwrap();
    for i in 0..20 {
        fs::write(env.m(&format!("gone{i}")), vec![i as u8; 10_000]).unwrap();
    }
    fs::write(env.src.join("sealed-behind"), vec![2u8; 5000]).unwrap();
    for name in ["kept", "gone0", "gone19", "sealed-behind"] {
        fs::read(env.m(name)).unwrap();
    }
    common::settle(&bg);
    assert_eq!(
        common::mount_ioctl(&env.m("sealed-behind"), vigil_fs::ioctl::SEAL),
        0
    );
    let seals = env.dir.path().join("state/seals");
    assert_eq!(fs::read_to_string(&seals).unwrap().lines().count(), 1);
    let (files, stored) = (bg.guard().tracked_files(), count(&trees));
    assert!(files >= 22 && stored >= 22, "{files} files, {stored} trees");

    for i in 0..20 {
        fs::remove_file(env.m(&format!("gone{i}"))).unwrap();
    }
    fs::remove_file(env.src.join("sealed-behind")).unwrap();
    // The kernel forgets an inode removed behind the mount once a lookup (after the
    // entry's timeout) finds it gone.
    let t0 = std::time::Instant::now();
    while bg.guard().tracked_files() > files - 21 && t0.elapsed() < Duration::from_secs(10) {
        let _ = fs::metadata(env.m("sealed-behind"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(bg.guard().tracked_files(), files - 21);
    assert_eq!(count(&trees), stored - 21);
    assert_eq!(fs::read_to_string(&seals).unwrap(), "");
    assert_eq!(fs::read(env.m("kept")).unwrap(), vec![1u8; 5000]);
    bg.unmount().unwrap();
}
/// A stored Merkle tree is read back when a file is opened again after the kernel
/// forgot it; one that was damaged in the state directory meanwhile fails the open
/// (EIO) instead of letting reads go unverified.
#[test]
fn a_damaged_stored_tree_fails_the_open() {
    if !can_run() {
        return;
    }
    let _cache = INODE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let data = vec![5u8; 100_000];
    fs::write(env.src.join("f"), &data).unwrap();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    assert_eq!(fs::read(env.m("f")).unwrap(), data);
    common::settle(&bg);
    // Read back from the store, not only held from the first open: still verified.
    let t0 = std::time::Instant::now();
    while bg.live_nodes() > 1 && t0.elapsed() < Duration::from_secs(10) {
        fs::write("/proc/sys/vm/drop_caches", b"2").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(env.m("f")).unwrap(), data);

    let trees: Vec<_> = fs::read_dir(env.dir.path().join("state/trees"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trees.len(), 1, "{trees:?}");
    let mut body = fs::read(&trees[0]).unwrap();
    *body.last_mut().unwrap() ^= 1;
    fs::write(&trees[0], &body).unwrap();
    let t0 = std::time::Instant::now();
    while bg.live_nodes() > 1 && t0.elapsed() < Duration::from_secs(10) {
        fs::write("/proc/sys/vm/drop_caches", b"2").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bg.live_nodes(), 1, "the kernel kept the file's inode");
    assert_eq!(errno(fs::read(env.m("f"))), libc::EIO);
    bg.unmount().unwrap();
}

impl Env {
    /// Sources `big`, sparse (measuring it reads and hashes 64 GiB of zeros, a minute
    /// or more), and `small`.
    fn with_huge_file() -> Env {
        let env = Env::new();
        fs::File::create(env.src.join("big"))
            .unwrap()
            .set_len(64 << 30)
            .unwrap();
        fs::write(env.src.join("small"), b"small").unwrap();
        env
    }
}

/// `cat FILE > /dev/null`, started.
fn cat(file: &Path) -> std::process::Child {
    Command::new("cat")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Opens that wait for the measurement of a huge file end as soon as their callers are
/// killed, both the one whose open is measuring and one waiting for that measurement:
/// it is given up, nothing is logged for it, and the mount goes on serving.
#[test]
fn killed_openers_do_not_wait_for_the_measurement() {
    use std::os::unix::process::ExitStatusExt;
    if !common::can_mount() {
        return;
    }
    let env = Env::with_huge_file();
    let bg = env.mount("measure func=FILE_CHECK\n", AppraiseMode::Off, None);
    let mut measuring = cat(&env.m("big"));
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = cat(&env.m("big"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        bg.guard().stats().measurements,
        1,
        "the first open measures"
    );
    let killed = Instant::now();
    for c in [&mut measuring, &mut waiting] {
        c.kill().unwrap();
    }
    for c in [&mut measuring, &mut waiting] {
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(5),
                "a killed opener still waits for the measurement"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
    assert_eq!(fs::read(env.m("small")).unwrap(), b"small");
    let list = fs::read_to_string(env.m(".vigil/ascii_runtime_measurements")).unwrap();
    assert!(list.contains("/small"), "{list}");
    assert!(!list.contains("/big"), "{list}");
    common::settle(&bg);
    bg.unmount().unwrap();
}

/// Measuring a huge file holds up no open of another file, even with a single worker
/// for opens: opens of large files have workers of their own.
#[test]
fn measuring_a_huge_file_holds_up_no_other_open() {
    if !common::can_mount() {
        return;
    }
    let env = Env::with_huge_file();
    let bg = env.mount_with("measure func=FILE_CHECK\n", AppraiseMode::Off, None, |o| {
        o.workers = 1
    });
    let mut cat = cat(&env.m("big"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        bg.guard().stats().measurements,
        1,
        "the big file is measured"
    );
    let t = Instant::now();
    assert_eq!(fs::read(env.m("small")).unwrap(), b"small");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the open waited {:?}",
        t.elapsed()
    );
    assert!(cat.try_wait().unwrap().is_none(), "still measuring");
    cat.kill().unwrap();
    cat.wait().unwrap();
    common::settle(&bg);
    bg.unmount().unwrap();
}

/// However many opens of huge files wait for their measurement, the mount goes on
/// answering everything else (lookups, opens of small files, `.vigil/`): the loop
/// threads never wait for a place in a queue.
#[test]
fn many_waiting_opens_of_huge_files_hold_up_nothing_else() {
    const OPENERS: usize = 1100;
    if !common::can_mount() {
        return;
    }
    let env = Env::with_huge_file();
    for i in 0..OPENERS {
        fs::File::create(env.src.join(format!("h{i}")))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
    }
    let bg = env.mount_with("measure func=FILE_CHECK\n", AppraiseMode::Off, None, |o| {
        o.workers = 1
    });
    let mut openers: Vec<_> = (0..OPENERS)
        .map(|i| cat(&env.m(&format!("h{i}"))))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (done, answered) = std::sync::mpsc::channel();
    let (small, status) = (env.m("small"), env.m(".vigil/violations"));
    std::thread::spawn(move || {
        let t = Instant::now();
        let ok = fs::metadata(&small).is_ok()
            && fs::read(&small).is_ok_and(|d| d == b"small")
            && fs::read(&status).is_ok();
        let _ = done.send((ok, t.elapsed()));
    });
    let answer = answered.recv_timeout(Duration::from_secs(10));
    for c in &mut openers {
        let _ = c.kill();
    }
    for c in &mut openers {
        let _ = c.wait();
    }
    let (ok, took) = answer.expect("the mount answered nothing while huge files were measured");
    assert!(ok);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    common::settle(&bg);
    bg.unmount().unwrap();
}
