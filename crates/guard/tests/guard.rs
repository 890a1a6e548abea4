//! The guard driven through its API on real files.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use vigil_guard::{
    Actions, AppraiseAction, AppraiseMode, Config, Error, FixedPolicy, Guard, Identified, LogPath,
    MeasureAction, OpenDecision, OpenRequest, ReleaseOutcome, Verdict,
};
use vigil_ima::list::Endian;
use vigil_ima::HashAlgo;

const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

fn open_read(g: &Guard, path: &std::path::Path) -> vigil_guard::Result<vigil_guard::OpenDecision> {
    let f = File::open(path).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    g.on_open(&id, f.as_fd(), &OpenRequest::read(path.to_str().unwrap()))
}

/// The appraisal verdict of a read open of `path` (a denial as the failure it is).
fn read_verdict(g: &Guard, path: &std::path::Path) -> Verdict {
    match open_read(g, path) {
        Ok(dec) => dec.verdict.unwrap(),
        Err(Error::Denied(msg)) => Verdict::Fail(msg),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn measures_caches_and_invalidates() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("a file"), b"abc");
    let dec = open_read(&g, &p).unwrap();
    let m = dec.measurement.clone().unwrap();
    assert_eq!(hex::encode(&m.digest), sha256_hex(b"abc"));
    drop(dec);
    let before = g.stats();
    let dec2 = open_read(&g, &p).unwrap();
    assert_eq!(
        g.stats().measurements,
        before.measurements,
        "cached decision re-measured"
    );
    assert_eq!(g.stats().cache_hits, before.cache_hits + 1);
    assert!(std::sync::Arc::ptr_eq(
        &m,
        dec2.measurement.as_ref().unwrap()
    ));
    let id = dec2.handle.id().clone();
    drop(dec2);

    // A write through the guard invalidates.
    {
        let _m = g.modify(&id, None).unwrap();
        assert!(g.cached(&id).is_none(), "hit while a change is in flight");
        std::fs::write(&p, b"abcd").unwrap();
    }
    assert!(g.status(&id).unwrap().dirty);
    let dec3 = open_read(&g, &p).unwrap();
    assert_eq!(
        hex::encode(&dec3.measurement.as_ref().unwrap().digest),
        sha256_hex(b"abcd")
    );

    // A change that bypassed the guard is caught by ctime/size.
    drop(dec3);
    std::fs::write(&p, b"xyz").unwrap();
    let dec4 = open_read(&g, &p).unwrap();
    assert_eq!(
        hex::encode(&dec4.measurement.as_ref().unwrap().digest),
        sha256_hex(b"xyz")
    );

    // Three distinct contents logged, once each; PCRs equal the replay.
    let recs = g.log().records().unwrap();
    assert_eq!(recs.len(), 3);
    let line = vigil_guard::log::ascii_line(&recs[0]);
    let mut data = Vec::new();
    recs[0].encode_data(Endian::Little, &mut data);
    let want_sha1 = hex::encode(HashAlgo::Sha1.digest(&data).unwrap());
    assert_eq!(
        line,
        format!(
            "10 {want_sha1} ima-ng sha256:{} {}",
            sha256_hex(b"abc"),
            p.to_str().unwrap().replace(' ', "_")
        )
    );
    assert_eq!(g.pcrs(), vigil_guard::log::replay(&recs, &BANKS).unwrap());
}

#[test]
fn violations_tomtou_and_open_writers() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("v"), b"data");
    let path = p.to_str().unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();

    // Measured reader open, then a writer: ToMToU (once).
    let r = g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).unwrap();
    let w = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(path))
        .unwrap();
    assert_eq!(g.stats().violations, 1);
    let w2 = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(path))
        .unwrap();
    assert_eq!(
        g.stats().violations,
        1,
        "ToMToU reported once per measured reader"
    );
    drop(r);

    // Writers open, measured reader: open_writers, once per writer episode.
    let r2 = g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).unwrap();
    assert_eq!(g.stats().violations, 2);
    let r3 = g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).unwrap();
    assert_eq!(g.stats().violations, 2);
    assert_eq!(g.status(&id.id).unwrap().writers, 2);
    assert_eq!(
        g.on_release(w.handle, || "w".into()),
        ReleaseOutcome::Counted
    );
    let last = g.on_release(w2.handle, || "w2".into());
    assert!(
        matches!(last, ReleaseOutcome::Queued | ReleaseOutcome::Merged),
        "{last:?}"
    );
    drop((r2, r3));
    let w3 = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(path))
        .unwrap();
    let r4 = g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).unwrap();
    assert_eq!(g.stats().violations, 3, "new writer episode reports again");
    drop((w3, r4));

    let recs = g.log().records().unwrap();
    let viol: Vec<_> = recs.iter().filter(|r| r.is_violation()).collect();
    assert_eq!(viol.len(), 3);
    assert_eq!(g.log().stats().violations, 3);
    // Violation: zero template digest, zero file digest, 0xFF extended.
    assert!(vigil_guard::log::ascii_line(viol[0]).starts_with(&format!(
        "10 {} ima-ng sha256:{} {path}",
        "0".repeat(40),
        "0".repeat(64)
    )));
    assert_eq!(g.pcrs(), vigil_guard::log::replay(&recs, &BANKS).unwrap());
}

#[test]
fn seal_busy_then_eperm_and_sealed_memfd() {
    use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
    let d = scratch();
    let g = guard(d.path(), Actions::default());
    let p = write_file(&d.path().join("s"), &vec![7u8; 8192]);
    let path = p.to_str().unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();

    // A writer: EBUSY.
    let w = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(path))
        .unwrap();
    match g.seal(&id, f.as_fd(), None) {
        Err(Error::Busy {
            writers: 1,
            writable_maps: 0,
        }) => {}
        other => panic!("expected EBUSY, got {other:?}"),
    }
    g.on_release(w.handle, || "w".into());

    // A real writable shared mapping, counted: EBUSY.
    // SAFETY: a fresh shared mapping of 8 KiB of our own file, unmapped below.
    let addr = unsafe {
        mmap(
            std::ptr::null_mut(),
            8192,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            f.as_fd(),
            0,
        )
    }
    .unwrap();
    let token = g.map_writable(&id.id).unwrap();
    let e = g.seal(&id, f.as_fd(), None).unwrap_err();
    assert_eq!(e.errno(), libc::EBUSY);
    // SAFETY: unmapping exactly what was mapped above.
    unsafe { munmap(addr, 8192).unwrap() };
    drop(token);

    // Now it seals; writes, truncation and new writable mappings get EPERM.
    assert!(!g.any_seals(), "a refused seal left a record");
    let rec = g.seal(&id, f.as_fd(), None).unwrap();
    assert_eq!(hex::encode(&rec.digest), sha256_hex(&vec![7u8; 8192]));
    assert!(matches!(g.modify(&id.id, None), Err(Error::Sealed)));
    assert_eq!(
        g.on_open(&id, f.as_fd(), &OpenRequest::write(path))
            .err()
            .unwrap()
            .errno(),
        libc::EPERM
    );
    assert!(matches!(g.map_writable(&id.id), Err(Error::Sealed)));
    assert!(g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).is_ok());

    // The seal survives a restart of the guard.
    drop(g);
    let g = guard(d.path(), Actions::default());
    let id = g.identify(f.as_fd()).unwrap();
    assert!(matches!(g.modify(&id.id, None), Err(Error::Sealed)));
    assert_eq!(g.seal_of(&id.id).unwrap(), rec);
    assert!(g.any_seals());

    // Sealed memfd of the verified content.
    let mem = g.sealed_memfd(&id, f.as_fd(), false, None).unwrap();
    let seals = rustix::fs::fcntl_get_seals(&mem).unwrap();
    use rustix::fs::SealFlags as S;
    assert!(
        seals.contains(S::WRITE | S::SHRINK | S::GROW | S::SEAL),
        "{seals:?}"
    );
    let mut memf = File::from(mem);
    assert_eq!(
        memf.write(b"x").unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        memf.set_len(10).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        memf.set_len(100_000).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        rustix::fs::fcntl_add_seals(&memf, S::FUTURE_WRITE).unwrap_err(),
        rustix::io::Errno::PERM
    );
    let mut back = Vec::new();
    use std::io::{Read, Seek};
    memf.seek(std::io::SeekFrom::Start(0)).unwrap();
    memf.read_to_end(&mut back).unwrap();
    assert_eq!(back, vec![7u8; 8192]);

    // Only an authorised caller unseals.
    assert!(matches!(
        g.unseal(&id.id, 1000),
        Err(Error::NotAuthorised { uid: 1000 })
    ));
    g.unseal(&id.id, 0).unwrap();
    let m = g.modify(&id.id, None).unwrap();
    drop(m);
    assert!(g.seal_of(&id.id).is_none());
    assert!(!g.any_seals());
}

#[test]
fn sealed_memfd_refuses_changed_content() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("m"), b"original");
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    g.seal(&id, f.as_fd(), None).unwrap();
    // A change behind the guard's back (the backing file written directly).
    std::fs::write(&p, b"tampered").unwrap();
    let now = g.identify(f.as_fd()).unwrap();
    assert!(matches!(
        g.sealed_memfd(&now, f.as_fd(), true, None),
        Err(Error::Changed)
    ));
}

/// The state directory's files are the daemon's alone, whatever its umask: a seal
/// another user could rewrite would be no seal.
#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("s"), b"sealed");
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    g.seal(&id, f.as_fd(), None).unwrap();
    let state = d.path().join("state");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("trees")), 0o700);
    for name in ["seals", "measurements.bin", "lock"] {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
}

#[test]
fn sealed_memfd_holds_only_what_the_open_decided_on() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("m"), b"original");
    let path = p.to_str().unwrap();
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let decision = g.on_open(&id, f.as_fd(), &OpenRequest::read(path)).unwrap();
    let decided = decision.measurement.clone().unwrap();
    // Unchanged: the copy is the content decided on.
    let mem = g
        .sealed_memfd(&id, f.as_fd(), true, Some(&decided))
        .unwrap();
    assert_eq!(
        std::fs::read(format!("/proc/self/fd/{}", mem.as_raw_fd())).unwrap(),
        b"original"
    );
    // Changed behind the guard after the decision (same size): a fresh measurement of
    // the new content would match a copy of it, but the copy must match the decision.
    std::fs::write(&p, b"tampered").unwrap();
    let now = g.identify(f.as_fd()).unwrap();
    assert!(matches!(
        g.sealed_memfd(&now, f.as_fd(), true, Some(&decided)),
        Err(Error::Changed)
    ));
    assert!(g.sealed_memfd(&now, f.as_fd(), true, None).is_ok());
}

fn evmctl_hash_user(path: &std::path::Path) -> Vec<u8> {
    let st = Command::new("evmctl")
        .args(["ima_hash", "--xattr-user", "-a", "sha256"])
        .arg(path)
        .output()
        .expect("evmctl (scripts/install-deps.sh installs ima-evm-utils)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let f = File::open(path).unwrap();
    vigil_guard::sys::get_xattr(f.as_fd(), "user.ima")
        .unwrap()
        .unwrap()
}

#[test]
fn appraisal_modes_against_evmctl() {
    let d = scratch();
    let p = write_file(&d.path().join("ap"), b"hello appraisal\n");
    let actions = Actions {
        appraise: Some(AppraiseAction::default()),
        ..Actions::default()
    };
    {
        let g = guard(d.path(), actions.clone());
        // No value: missing-hash, denied.
        match open_read(&g, &p) {
            Err(Error::Denied(msg)) => assert!(msg.contains("missing-hash"), "{msg}"),
            other => panic!("{:?}", other.map(|d| d.verdict)),
        }
    }
    // evmctl labels the file; the guard accepts its value.
    let labelled = evmctl_hash_user(&p);
    {
        let g = guard(d.path(), actions.clone());
        let dec = open_read(&g, &p).unwrap();
        assert_eq!(dec.verdict, Some(Verdict::PassHash));
        drop(dec);
        // Content changed behind the guard's back: invalid-hash.
        std::fs::write(&p, b"changed\n").unwrap();
        match open_read(&g, &p) {
            Err(Error::Denied(msg)) => assert!(msg.contains("invalid-hash"), "{msg}"),
            other => panic!("{:?}", other.map(|d| d.verdict)),
        }
        // A change through the guard does not restore trust in a file that failed.
        let f = File::open(&p).unwrap();
        let id = g.identify(f.as_fd()).unwrap();
        {
            let _m = g.modify(&id.id, None).unwrap();
            std::fs::write(&p, b"changed again\n").unwrap();
        }
        match open_read(&g, &p) {
            Err(Error::Denied(msg)) => assert!(msg.contains("invalid-hash"), "{msg}"),
            other => panic!("{:?}", other.map(|d| d.verdict)),
        }
        // A signature is required: a hash value does not do.
        let sig = Config {
            policy: std::sync::Arc::new(FixedPolicy(Actions {
                appraise: Some(AppraiseAction {
                    require_signature: true,
                    ..AppraiseAction::default()
                }),
                ..Actions::default()
            })),
            ..config(Actions::default())
        };
        let g2 = Guard::new(sig, d.path().join("state2")).unwrap();
        match open_read(&g2, &p) {
            Err(Error::Denied(msg)) => assert!(msg.contains("IMA-signature-required"), "{msg}"),
            other => panic!("{:?}", other.map(|d| d.verdict)),
        }
    }
    // Log mode: not denied, verdict reported.
    {
        let cfg = Config {
            appraise_mode: AppraiseMode::Log,
            ..config(actions.clone())
        };
        let g = Guard::new(cfg, d.path().join("state3")).unwrap();
        let dec = open_read(&g, &p).unwrap();
        assert_eq!(dec.verdict, Some(Verdict::Fail("invalid-hash".into())));
    }
    // Fix mode: the value is rewritten to what evmctl writes for the new content.
    {
        let cfg = Config {
            appraise_mode: AppraiseMode::Fix,
            ..config(actions)
        };
        let g = Guard::new(cfg, d.path().join("state4")).unwrap();
        open_read(&g, &p).unwrap();
        let f = File::open(&p).unwrap();
        let fixed = vigil_guard::sys::get_xattr(f.as_fd(), "user.ima")
            .unwrap()
            .unwrap();
        assert_ne!(fixed, labelled);
        assert_eq!(
            fixed,
            evmctl_hash_user(&p),
            "fix mode writes evmctl's value"
        );
    }
}

#[test]
fn last_writer_defers_hash_refresh() {
    let d = scratch();
    let g = mounted_guard(d.path(), appraise_hash());
    let p = write_file(&d.path().join("w"), b"v1");
    let path = p.to_str().unwrap();
    // New file, created by this opener: passes without a value.
    let (f, id, w) = open_created(&g, &p);
    {
        let _m = g.modify(&id.id, None).unwrap();
        (&f).write_all(b" and more").unwrap();
    }
    assert_eq!(
        g.on_release(w.handle, || "w".into()),
        ReleaseOutcome::Queued
    );
    g.wait_idle();
    assert_eq!(g.stats().jobs_done, 1, "{:?}", g.stats());
    let v = vigil_guard::sys::get_xattr(f.as_fd(), "user.ima")
        .unwrap()
        .unwrap();
    assert_eq!(v, evmctl_hash_user(&p), "refreshed value equals evmctl's");
    // The next open is a cache hit and passes.
    let before = g.stats().measurements;
    let now = g.identify(f.as_fd()).unwrap();
    let dec = g
        .on_open(&now, f.as_fd(), &OpenRequest::read(path))
        .unwrap();
    assert_eq!(dec.verdict, Some(Verdict::PassHash));
    assert_eq!(g.stats().measurements, before);
}

/// A re-measurement gives up on a file whose last name is removed while it is read
/// (here a 1 TiB sparse file, which would take many minutes to hash).
#[test]
fn a_job_stops_reading_a_file_deleted_meanwhile() {
    let d = scratch();
    let g = mounted_guard(d.path(), measure_all());
    let p = write_file(&d.path().join("huge"), b"");
    let w = open(&g, &p, true).unwrap();
    {
        let id = g.identify(File::open(&p).unwrap().as_fd()).unwrap();
        let _m = g.modify(&id.id, None).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
    }
    assert_eq!(
        g.on_release(w.handle, || "huge".into()),
        ReleaseOutcome::Queued
    );
    // Let the job start reading, then remove the file.
    let before = g.stats().measurements;
    let started = std::time::Instant::now();
    while g.stats().measurements == before && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(&p).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let g = Arc::new(g);
    let waiter = g.clone();
    std::thread::spawn(move || {
        waiter.wait_idle();
        let _ = tx.send(());
    });
    if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
        // Dropping the guard would wait for the job.
        std::mem::forget(g);
        panic!("the job is still reading a deleted file");
    }
    let s = g.stats();
    assert_eq!((s.jobs_done, s.jobs_failed), (1, 0), "{s:?}");
}

/// A re-measurement a full queue refused is made up for at shutdown
/// ([`Guard::finish_jobs`]): the hash value of a file created through the guard
/// follows its content even if it is not opened again before the restart.
#[test]
fn refused_re_measurements_are_made_at_shutdown() {
    let d = scratch();
    let g = Guard::new(
        Config {
            queue_capacity: 1,
            workers: 1,
            ..config(appraise_hash())
        },
        d.path().join("state"),
    )
    .unwrap();
    g.register_mount(File::open(d.path()).unwrap().into())
        .unwrap();
    // Three files written through the guard; their last writers close once all are
    // written, so the releases of "next" and "last" follow each other closely.
    let mut writers = Vec::new();
    for (name, size) in [("big", 64 << 20), ("next", 10), ("last", 10)] {
        let p = d.path().join(name);
        let (f, id, w) = open_created(&g, &p);
        {
            let _m = g.modify(&id.id, None).unwrap();
            (&f).write_all(&vec![b'x'; size]).unwrap();
        }
        writers.push((name, w.handle));
    }
    // "big" keeps the one worker busy once it has taken it from the queue; "next"
    // then fills the queue and "last" is refused.
    let mut outcomes = Vec::new();
    for (name, handle) in writers {
        outcomes.push(g.on_release(handle, move || name.into()));
        let started = std::time::Instant::now();
        while name == "big" && g.pending_jobs() > 0 && started.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
    }
    assert_eq!(
        outcomes,
        [
            ReleaseOutcome::Queued,
            ReleaseOutcome::Queued,
            ReleaseOutcome::QueueFull
        ]
    );
    g.finish_jobs();
    for name in ["big", "next", "last"] {
        let p = d.path().join(name);
        let v = vigil_guard::sys::get_xattr(File::open(&p).unwrap().as_fd(), "user.ima").unwrap();
        assert_eq!(v, Some(evmctl_hash_user(&p)), "{name}");
    }
    let s = g.stats();
    assert_eq!(s.jobs_done, s.jobs_queued, "{s:?}");
}

/// A file deleted after its last writer closed, before the re-measurement ran: the
/// job has nothing to do, and is not counted as failed. A job that fails is reported
/// with the path given at the release.
#[test]
fn deferred_jobs_of_deleted_files_are_done_and_failures_reported() {
    let d = scratch();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let config = Config {
        job_failures: Some(Arc::new(move |path, e| {
            r.lock()
                .unwrap()
                .push(format!("{}: {e}", path.to_string_lossy()))
        })),
        ..config(measure_all())
    };
    let g = Guard::new(config, d.path().join("state")).unwrap();
    let p = write_file(&d.path().join("w"), b"v1");
    // No mount registered: the job cannot reopen the file.
    let w = open(&g, &p, true).unwrap();
    assert_eq!(
        g.on_release(w.handle, || "/mnt/w".into()),
        ReleaseOutcome::Queued
    );
    g.wait_idle();
    assert_eq!(g.stats().jobs_failed, 1, "{:?}", g.stats());
    let reports = std::mem::take(&mut *reports.lock().unwrap());
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].starts_with("/mnt/w: ") && reports[0].contains("no descriptor registered"),
        "{reports:?}"
    );

    g.register_mount(File::open(d.path()).unwrap().into())
        .unwrap();
    let w = open(&g, &p, true).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(
        g.on_release(w.handle, || "/mnt/w".into()),
        ReleaseOutcome::Queued
    );
    g.wait_idle();
    let s = g.stats();
    assert_eq!((s.jobs_done, s.jobs_failed), (1, 1), "{s:?}");
}

/// As the kernel trusts the writes it carries out on a file that passed appraisal (it
/// keeps the verdict until the last writer closes, then rewrites the hash value), a
/// file written through the guard since it passed passes while it is written and
/// right after, before the deferred refresh has run; a change behind the guard's back
/// is still caught.
#[test]
fn writes_through_the_guard_to_a_file_that_passed_are_trusted() {
    let d = scratch();
    let g = mounted_guard(d.path(), appraise_hash());
    let value = |f: &File| vigil_guard::sys::get_xattr(f.as_fd(), "user.ima").unwrap();
    let write_at = |g: &Guard, f: &File, data: &[u8], off: u64| {
        use std::os::unix::fs::FileExt;
        let id = g.identify(f.as_fd()).unwrap();
        let _m = g.modify(&id.id, None).unwrap();
        f.write_all_at(data, off).unwrap();
    };

    // A labelled file: its writer passes, readers pass while it is written.
    let p = write_file(
        &d.path().join("labelled"),
        b"version one
",
    );
    evmctl_hash_user(&p);
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let w = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(p.to_str().unwrap()))
        .unwrap();
    assert_eq!(w.verdict, Some(Verdict::PassHash));
    write_at(&g, &f, b"VERSION", 0);
    assert_eq!(read_verdict(&g, &p), Verdict::PassHash);
    write_at(
        &g,
        &f,
        b" two, longer
",
        7,
    );
    // The last writer's release only queues the refresh: an open before it runs
    // passes, and brings the value up to date itself.
    assert_eq!(
        g.on_release(w.handle, || "w".into()),
        ReleaseOutcome::Queued
    );
    assert_eq!(read_verdict(&g, &p), Verdict::PassHash);
    assert_eq!(value(&f).unwrap(), evmctl_hash_user(&p));
    g.wait_idle();
    // Episode over: a change behind the guard's back is caught.
    std::fs::write(
        &p,
        b"tampered
",
    )
    .unwrap();
    assert!(
        matches!(read_verdict(&g, &p), Verdict::Fail(m) if m.contains("invalid-hash")),
        "tampering after the writes"
    );

    // A new file: others may open it while its creator writes it, before any write
    // too, as the kernel keeps IMA_NEW_FILE until the last writer closes.
    let n = d.path().join("new");
    let (f, _, w) = open_created(&g, &n);
    assert_eq!(w.verdict, Some(Verdict::PassNewFile));
    assert!(read_verdict(&g, &n).passed());
    write_at(
        &g,
        &f,
        b"new content
",
        0,
    );
    assert_eq!(read_verdict(&g, &n), Verdict::PassHash);
    drop(w);
    g.wait_idle();
    assert_eq!(value(&f).unwrap(), evmctl_hash_user(&n));

    // Mid-episode, a change behind the guard's back after the last measurement is
    // caught as well.
    let f = OpenOptions::new().read(true).write(true).open(&n).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let w = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(n.to_str().unwrap()))
        .unwrap();
    write_at(&g, &f, b"NEW", 0);
    assert_eq!(read_verdict(&g, &n), Verdict::PassHash);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&n)
        .unwrap()
        .write_all(b"evil")
        .unwrap();
    assert!(
        matches!(read_verdict(&g, &n), Verdict::Fail(m) if m.contains("invalid-hash")),
        "tampering between two opens of a file being written"
    );
    // Nor is the tampered content blessed when the writer is done.
    drop(w);
    g.wait_idle();
    assert!(!read_verdict(&g, &n).passed());
}

/// A metadata change made through the guard (here a rename) moves the file's ctime
/// on: while it is in progress, an open does not take the new ctime for a change
/// behind the guard's back, so a file created through the guard keeps the trust in
/// its writes (and passes before its hash value is written). The same change made
/// behind the guard's back ends that trust.
#[test]
fn metadata_changes_through_the_guard_keep_the_trust_in_writes() {
    let d = scratch();
    let g = mounted_guard(d.path(), appraise_hash());
    // A file created through the guard, measured (without a hash value) at its
    // creation, renamed once ctime (the kernel's coarse clock) has moved on.
    let created_then_renamed = |name: &str, through_guard: bool| {
        let p = d.path().join(name);
        let (_f, id, writer) = open_created(&g, &p);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let renamed = d.path().join(format!("{name} renamed"));
        let change = through_guard.then(|| g.change_metadata(&id.id, Some(_f.as_fd())));
        std::fs::rename(&p, &renamed).unwrap();
        (renamed, change, writer)
    };

    let (p, change, _writer) = created_then_renamed("through", true);
    assert_eq!(
        read_verdict(&g, &p),
        Verdict::PassHash,
        "open during the rename"
    );
    drop(change);
    assert_eq!(
        read_verdict(&g, &p),
        Verdict::PassHash,
        "open after the rename"
    );

    let (p, _, _writer) = created_then_renamed("behind", false);
    assert!(
        matches!(read_verdict(&g, &p), Verdict::Fail(m) if m.contains("missing-hash")),
        "rename behind the guard's back"
    );
}

#[test]
fn queue_backpressure_is_reported() {
    let d = scratch();
    let cfg = Config {
        queue_capacity: 2,
        workers: 1,
        ..config(appraise_hash())
    };
    let g = Guard::new(cfg, d.path().join("state")).unwrap();
    // No mount registered: jobs fail fast, but each release is accounted for.
    let mut outcomes = Vec::new();
    for i in 0..50 {
        let p = write_file(&d.path().join(format!("q{i}")), b"x");
        let (_f, _, w) = open_created(&g, &p);
        outcomes.push(g.on_release(w.handle, || "w".into()));
    }
    g.wait_idle();
    let s = g.stats();
    let full = outcomes
        .iter()
        .filter(|o| **o == ReleaseOutcome::QueueFull)
        .count() as u64;
    let queued = outcomes
        .iter()
        .filter(|o| **o == ReleaseOutcome::Queued)
        .count() as u64;
    assert_eq!(full + queued, 50);
    assert_eq!(s.jobs_refused, full);
    assert_eq!(s.jobs_queued, queued);
    assert_eq!(s.jobs_done + s.jobs_failed, queued, "every queued job ran");
}

/// The path of a lazily named open is found only when something names it: the first
/// open's measurement record, not the cached re-opens after it.
#[test]
fn lazy_path_is_resolved_only_when_logged() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let p = write_file(&d.path().join("lazy"), b"named when logged");
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let find = || {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        p.as_os_str().to_owned()
    };
    for _ in 0..3 {
        let f = File::open(&p).unwrap();
        let id = g.identify(f.as_fd()).unwrap();
        let req = OpenRequest::read(LogPath::lazy(&find));
        g.on_open(&id, f.as_fd(), &req).unwrap();
    }
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    let mut a = Vec::new();
    g.log().export_ascii(HashAlgo::Sha256, &mut a).unwrap();
    let a = String::from_utf8(a).unwrap();
    assert!(a.trim_end().ends_with(p.to_str().unwrap()), "{a}");
}

#[test]
fn log_verifies_with_evmctl() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    for i in 0..5 {
        let p = write_file(
            &d.path().join(format!("f{i}")),
            format!("content {i}").as_bytes(),
        );
        open_read(&g, &p).unwrap();
    }
    g.measure_buffer("kexec-cmdline", b"root=/dev/vda1 ro", 10)
        .unwrap();
    // and a violation
    let p = d.path().join("f0");
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let _w = g
        .on_open(&id, f.as_fd(), &OpenRequest::write(p.to_str().unwrap()))
        .unwrap();
    let _r = g
        .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap();
    assert_eq!(g.log().stats().violations, 1);

    let bin = d.path().join("binary_runtime_measurements");
    let mut out = Vec::new();
    g.log().export_binary(HashAlgo::Sha1, &mut out).unwrap();
    std::fs::write(&bin, &out).unwrap();
    assert_eq!(out, std::fs::read(g.log().path()).unwrap());
    // Read back in parts as the mount's `.vigil/binary_runtime_measurements` reads it.
    let (log, end) = (g.log(), g.log().durable_len());
    assert_eq!(end, out.len() as u64);
    assert_eq!(log.read_binary(end, 0, usize::MAX).unwrap(), out);
    assert_eq!(log.read_binary(end, 7, 10).unwrap(), out[7..17]);
    assert_eq!(
        log.read_binary(end - 3, end - 5, 10).unwrap(),
        out[end as usize - 5..end as usize - 3]
    );
    assert!(log.read_binary(end, end + 5, 10).unwrap().is_empty());
    // The ASCII list, formatted as it is read: in small pieces, and again after a
    // read backwards, it is the whole export.
    let mut ascii = Vec::new();
    log.export_ascii(HashAlgo::Sha1, &mut ascii).unwrap();
    let mut reader = log.ascii_reader();
    let mut pieces = Vec::new();
    while let Ok(piece) = log.read_ascii(&mut reader, pieces.len() as u64, 7) {
        if piece.is_empty() {
            break;
        }
        pieces.extend(piece);
    }
    assert_eq!(pieces, ascii);
    assert_eq!(log.read_ascii(&mut reader, 3, 20).unwrap(), ascii[3..23]);
    let tail = ascii.len() as u64 - 4;
    assert_eq!(
        log.read_ascii(&mut reader, tail, 100).unwrap(),
        ascii[tail as usize..]
    );
    assert!(log
        .read_ascii(&mut reader, ascii.len() as u64, 9)
        .unwrap()
        .is_empty());
    let mut pcr_args = Vec::new();
    for b in g.pcrs().banks {
        let bank = b.algo;
        let mut s = String::new();
        for i in 0..24 {
            s.push_str(&format!("PCR-{i:02}: {}\n", hex::encode(b.pcr(i))));
        }
        let pf = d.path().join(format!("pcrs-{bank}"));
        std::fs::write(&pf, s).unwrap();
        pcr_args.push("--pcrs".to_string());
        pcr_args.push(format!("{bank},{}", pf.display()));
    }
    let o = Command::new("evmctl")
        .args(["ima_measurement", "--ignore-violations"])
        .args(&pcr_args)
        .arg(&bin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "evmctl: {text}");
    assert!(
        text.contains("Matched per TPM bank calculated digest"),
        "{text}"
    );

    // ASCII export of the sha256 bank: 64-hex template digests, one line per record.
    let mut a = Vec::new();
    g.log().export_ascii(HashAlgo::Sha256, &mut a).unwrap();
    let a = String::from_utf8(a).unwrap();
    assert_eq!(a.lines().count(), 7);
    assert!(a.lines().all(|l| l.split(' ').nth(1).unwrap().len() == 64));
    assert!(a.contains(" ima-buf sha256:"), "{a}");
}

#[test]
fn measure_template_and_pcr_from_rule() {
    let d = scratch();
    let actions = Actions {
        measure: Some(MeasureAction {
            pcr: 11,
            template: Some(vigil_guard::Template::ImaSig),
            verity: false,
        }),
        ..Actions::default()
    };
    let g = guard(d.path(), actions);
    let p = write_file(&d.path().join("sig file"), b"abc");
    open_read(&g, &p).unwrap();
    let recs = g.log().records().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].pcr, 11);
    // ima-sig without a signature ends with an empty field: trailing space.
    let line = vigil_guard::log::ascii_line(&recs[0]);
    assert!(line.ends_with("/sig_file "), "{line}");
    let sha1 = g.pcrs().get(HashAlgo::Sha1).unwrap().clone();
    assert_eq!(sha1.pcr(10), &[0u8; 20]);
    assert_ne!(sha1.pcr(11), &[0u8; 20]);
}

#[test]
fn exec_mapping_of_writably_mapped_appraised_file_is_refused() {
    let d = scratch();
    let actions = Actions {
        appraise: Some(AppraiseAction::default()),
        ..Actions::default()
    };
    // Label it first (fix mode writes the hash value).
    let p = write_file(&d.path().join("lib.so"), b"\x7fELF code");
    {
        let g = Guard::new(
            Config {
                appraise_mode: AppraiseMode::Fix,
                ..config(actions.clone())
            },
            d.path().join("fix2"),
        )
        .unwrap();
        open_read(&g, &p).unwrap();
    }
    let g = guard(d.path(), actions);
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let mut req = OpenRequest::read(p.to_str().unwrap());
    req.hook = vigil_guard::Hook::MmapCheck;
    req.mask = vigil_guard::policy::MAY_EXEC;
    assert!(g.on_open(&id, f.as_fd(), &req).is_ok());
    let token = g.map_writable(&id.id).unwrap();
    assert_eq!(
        g.on_open(&id, f.as_fd(), &req).err().unwrap().errno(),
        libc::ETXTBSY
    );
    drop(token);
    assert!(g.on_open(&id, f.as_fd(), &req).is_ok());
}

#[test]
fn sidecar_store_holds_values() {
    let d = scratch();
    let side = d.path().join("sidecar");
    let actions = Actions {
        appraise: Some(AppraiseAction::default()),
        ..Actions::default()
    };
    let p = write_file(&d.path().join("sc"), b"sidecar content");
    let mk = |mode, name: &str| {
        Guard::new(
            Config {
                appraise_mode: mode,
                xattr: vigil_guard::XattrSource::Sidecar(side.clone()),
                ..config(actions.clone())
            },
            d.path().join(name),
        )
        .unwrap()
    };
    assert!(matches!(
        open_read(&mk(AppraiseMode::Enforce, "a"), &p),
        Err(Error::Denied(_))
    ));
    open_read(&mk(AppraiseMode::Fix, "b"), &p).unwrap();
    let f = File::open(&p).unwrap();
    assert!(
        vigil_guard::sys::get_xattr(f.as_fd(), "user.ima")
            .unwrap()
            .is_none(),
        "xattr written"
    );
    let dec = open_read(&mk(AppraiseMode::Enforce, "c"), &p).unwrap();
    assert_eq!(dec.verdict, Some(Verdict::PassHash));
    // The value is evmctl's hash value for the content.
    let stored: Vec<_> = std::fs::read_dir(&side).unwrap().collect();
    assert_eq!(stored.len(), 1);
    let v = std::fs::read(stored[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(
        hex::encode(&v),
        format!("0404{}", sha256_hex(b"sidecar content"))
    );
}

#[test]
fn one_guard_per_state_directory() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    match Guard::new(config(measure_all()), d.path().join("state")) {
        Err(Error::Config(m)) => assert!(m.contains("in use"), "{m}"),
        other => panic!("second guard on one state dir: {:?}", other.is_ok()),
    }
    drop(g);
    Guard::new(config(measure_all()), d.path().join("state")).unwrap();
}

/// A child forked while a guard runs (as any thread spawning a program does, until the
/// child execs) shares the lock's open file description: the guard's end still frees
/// the state directory at once.
#[test]
fn a_forked_child_does_not_keep_the_state_directory() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    // SAFETY: the child only sleeps and exits (async-signal-safe calls).
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            libc::sleep(30);
            libc::_exit(0);
        }
    }
    drop(g);
    let again = Guard::new(config(measure_all()), d.path().join("state"));
    // SAFETY: our own child.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    again.unwrap();
}

#[test]
fn seal_waits_for_a_change_in_flight() {
    let d = scratch();
    let g = guard(d.path(), Actions::default());
    let p = write_file(&d.path().join("t"), b"0123456789");
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    // A path truncate(2) in flight counts as a writer: no seal slips in before it.
    let m = g.modify(&id.id, None).unwrap();
    assert!(matches!(
        g.seal(&id, f.as_fd(), None),
        Err(Error::Busy { writers: 1, .. })
    ));
    f.set_len(4).unwrap();
    drop(m);
    let now = g.identify(f.as_fd()).unwrap();
    let rec = g.seal(&now, f.as_fd(), None).unwrap();
    assert_eq!(hex::encode(rec.digest), sha256_hex(b"0123"));
    assert!(matches!(g.modify(&id.id, None), Err(Error::Sealed)));
    assert_eq!(g.status(&id.id).unwrap().writers, 0);
}

#[test]
fn open_of_a_file_being_written_gets_a_decision() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const SIZE: usize = 1 << 20;
    let d = scratch();
    let g = Arc::new(guard(d.path(), measure_all()));
    let p = write_file(&d.path().join("busy"), &vec![0u8; SIZE]);
    let versions: Vec<String> = (0..4u8).map(|b| sha256_hex(&vec![b; SIZE])).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // A writer that keeps rewriting the whole file through the guard, so nearly every
    // measurement overlaps a change in flight.
    let writer = {
        let (g, p, stop) = (g.clone(), p.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            let id = g.identify(f.as_fd()).unwrap();
            let mut k = 0u8;
            while !stop.load(Ordering::Relaxed) {
                k = (k + 1) % 4;
                let m = g.modify(&id.id, None).unwrap();
                let chunk = vec![k; SIZE / 8];
                for i in 0..8 {
                    f.write_all_at(&chunk, (i * chunk.len()) as u64).unwrap();
                    std::thread::yield_now();
                }
                m.finish();
            }
        })
    };
    let (mut opens, mut unpublished) = (0, 0);
    let start = std::time::Instant::now();
    while opens < 20 || (unpublished == 0 && start.elapsed().as_secs() < 20) {
        let f = File::open(&p).unwrap();
        let id = g.identify(f.as_fd()).unwrap();
        let dec = match g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap())) {
            Ok(dec) => dec,
            Err(e) => panic!("open {opens} of a file being written failed: {e:?}"),
        };
        opens += 1;
        let m = dec.measurement.clone().expect("measured");
        match g.cached(&id.id) {
            Some(c) if std::sync::Arc::ptr_eq(&c, &m) => {
                // Published: it must be the digest of one whole version.
                assert!(
                    versions.contains(&hex::encode(&m.digest)),
                    "published digest of torn content"
                );
            }
            // Answered but not published: the file stays dirty.
            _ => unpublished += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!("{opens} opens, {unpublished} unpublished, {:?}", g.stats());
    assert!(
        unpublished > 0,
        "no open overlapped a write: {:?}",
        g.stats()
    );
    // Quiet again: the next open measures and publishes.
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let dec = g
        .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap();
    let m = dec.measurement.clone().unwrap();
    assert_eq!(
        hex::encode(&m.digest),
        sha256_hex(&std::fs::read(&p).unwrap())
    );
    assert!(std::sync::Arc::ptr_eq(&g.cached(&id.id).unwrap(), &m));
}

/// A seal record an earlier vigil kept under the mount id (a key that a new mount of
/// the file system would never match again) is carried over to the file system's id
/// when that mount is registered.
#[test]
fn seals_kept_by_mount_id_are_carried_over() {
    let d = scratch();
    let p = write_file(&d.path().join("s"), b"sealed");
    let f = File::open(&p).unwrap();
    let seals = d.path().join("state/seals");
    let new_key = {
        let g = guard(d.path(), Actions::default());
        let id = g.identify(f.as_fd()).unwrap();
        g.seal(&id, f.as_fd(), None).unwrap();
        id.id.to_hex()
    };
    // 'f' + f_fsid (8 bytes) here; the earlier form was 'h' + mount id (8 bytes).
    assert!(new_key.starts_with("66"), "{new_key}");
    let g = guard(d.path(), Actions::default());
    let id = g.identify(f.as_fd()).unwrap();
    let old_key = format!(
        "68{}{}",
        hex::encode(id.id.mount().to_le_bytes()),
        &new_key[18..]
    );
    drop(g);
    let text = std::fs::read_to_string(&seals).unwrap();
    std::fs::write(&seals, text.replace(&new_key, &old_key)).unwrap();

    let g = guard(d.path(), Actions::default());
    assert!(g.seal_of(&id.id).is_none());
    g.register_mount(File::open(d.path()).unwrap().into())
        .unwrap();
    assert!(g.seal_of(&id.id).is_some(), "seal not carried over");
    assert!(matches!(g.modify(&id.id, None), Err(Error::Sealed)));
    let text = std::fs::read_to_string(&seals).unwrap();
    assert!(text.starts_with(&new_key), "{text}");
}

/// Create `p` (or take it as created if it is there) and open it for reading and
/// writing through `g` as its creator.
fn open_created(g: &Guard, p: &std::path::Path) -> (File, Identified, OpenDecision) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let mut req = OpenRequest::write(p.to_str().unwrap());
    req.created = true;
    let w = g.on_open(&id, f.as_fd(), &req).unwrap();
    (f, id, w)
}

/// A record larger than the pieces the ASCII list is formatted from is read whole.
#[test]
fn the_ascii_list_reads_records_of_any_size() {
    let d = scratch();
    let g = guard(d.path(), measure_all());
    let big: Vec<u8> = (0..(3 << 20) + 11).map(|i| (i % 251) as u8).collect();
    g.measure_buffer("small-before", b"a", 10).unwrap();
    g.measure_buffer("big", &big, 10).unwrap();
    g.measure_buffer("small-after", b"b", 10).unwrap();
    let log = g.log();
    let mut ascii = Vec::new();
    log.export_ascii(HashAlgo::Sha1, &mut ascii).unwrap();
    let mut reader = log.ascii_reader();
    let mut read = Vec::new();
    loop {
        let piece = log
            .read_ascii(&mut reader, read.len() as u64, 1 << 16)
            .unwrap();
        if piece.is_empty() {
            break;
        }
        read.extend(piece);
    }
    assert_eq!(read.len(), ascii.len());
    assert!(read == ascii);
}

/// A file that keeps growing while it is measured (a truncate to a larger size grows
/// it at no cost) is not chased: the measurement reads little past the size the file
/// had when it began.
#[test]
fn a_file_growing_while_measured_is_not_chased() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let d = scratch();
    let g = Arc::new(guard(d.path(), measure_all()));
    let p = d.path().join("grows");
    File::create(&p).unwrap().set_len(256 << 20).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (done, measured) = std::sync::mpsc::channel();
    {
        let (g, p) = (g.clone(), p.clone());
        std::thread::spawn(move || {
            let f = File::open(&p).unwrap();
            let id = g.identify(f.as_fd()).unwrap();
            let d = g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()));
            let _ = done.send(d.map(|d| d.measurement.unwrap().attrs.size));
        });
    }
    // Grown by a GiB at a time once the measurement has begun (it reads a 256 MiB
    // file in a few hundred ms; the file grows hundreds of GiB a second).
    std::thread::sleep(Duration::from_millis(100));
    let grower = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(5) {
                let len = f.metadata().unwrap().len();
                let _ = f.set_len(len + (1 << 30));
            }
        })
    };
    let size = measured.recv_timeout(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    grower.join().unwrap();
    let size = size
        .expect("the measurement chases the growing file")
        .unwrap();
    assert!(size <= 2 * (256 << 20) + (64 << 20), "{size}");
}
