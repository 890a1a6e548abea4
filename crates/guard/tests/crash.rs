//! kill -9 in the middle of log appends and tree builds, many times. The child is this
//! test binary itself, re-run on an ignored entry point.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil_guard::log::{replay, LogConfig, MeasurementLog};
use vigil_guard::store::TreeStore;
use vigil_guard::template::{record, DigestType, Event, Template};
use vigil_guard::Record;
use vigil_ima::list::binary::encode_record;
use vigil_ima::list::Endian;
use vigil_ima::HashAlgo;

const CHILD_ENV: &str = "VIGIL_GUARD_CRASH_CHILD";

fn event(name: &str, pcr: u32, violation: bool) -> Record {
    let digest = HashAlgo::Sha256.digest(name.as_bytes()).unwrap();
    let sig: &[u8] = if name.len().is_multiple_of(2) {
        b"\x03\x02sig"
    } else {
        b""
    };
    let ev = Event {
        algo: HashAlgo::Sha256,
        digest: (!violation).then_some(&digest[..]),
        digest_type: DigestType::Ima,
        name: name.as_bytes(),
        sig,
        buf: &[],
        inode: None,
    };
    record(Template::ImaSig, &ev, pcr).unwrap()
}

const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

fn tree_body(key: &str) -> Vec<Vec<u8>> {
    // 4–12 chunks of 64 KiB of key-derived bytes.
    let n = 4 + (HashAlgo::Sha1.digest(key.as_bytes()).unwrap()[0] as usize % 8);
    (0..n)
        .map(|i| {
            let seed = HashAlgo::Sha256
                .digest(format!("{key}/{i}").as_bytes())
                .unwrap();
            seed.iter().cycle().take(65536).copied().collect()
        })
        .collect()
}

/// The child: append (or build trees) forever, printing "ack <name>" after each
/// durable success.
#[test]
#[ignore = "entry point of the crash-test child process"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, rest) = spec.split_once(':').unwrap();
    let (dir, round) = rest.rsplit_once(':').unwrap();
    let dir = Path::new(dir);
    let out = std::sync::Mutex::new(std::io::stdout());
    match kind {
        "log" => {
            let log = MeasurementLog::open(dir.join("log.bin"), LogConfig::default()).unwrap();
            std::thread::scope(|s| {
                for t in 0..4 {
                    let (log, out) = (&log, &out);
                    s.spawn(move || {
                        for n in 0.. {
                            let name = format!("/round{round}/t{t}/file {n}");
                            let viol = n % 17 == 5;
                            log.append(&event(&name, 10 + (n % 2) as u32, viol))
                                .unwrap();
                            let mut o = out.lock().unwrap();
                            writeln!(o, "ack {name}").unwrap();
                            o.flush().unwrap();
                        }
                    });
                }
            });
        }
        "tree" => {
            let (store, _) = TreeStore::open(dir.join("trees")).unwrap();
            for n in 0.. {
                let key = format!("r{round}n{n}");
                let digest = HashAlgo::Sha256.digest(key.as_bytes()).unwrap();
                store
                    .store(&key, &digest, &mut tree_body(&key).into_iter(), &|| true)
                    .unwrap();
                let mut o = out.lock().unwrap();
                writeln!(o, "ack {key}").unwrap();
                o.flush().unwrap();
            }
        }
        _ => panic!("unknown child kind"),
    }
}

/// Run the child for a while, kill -9 it, return the names it acknowledged.
fn run_and_kill(kind: &str, dir: &Path, round: usize, after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{kind}:{}:{round}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

fn jitter(round: usize) -> Duration {
    Duration::from_millis(20 + (round as u64 * 37) % 120)
}

#[test]
fn log_survives_kill9() {
    let d = common::scratch();
    let mut acked_all = Vec::new();
    let mut cut = 0;
    for round in 0..12 {
        acked_all.extend(run_and_kill("log", d.path(), round, jitter(round)));
        if round % 3 == 2 {
            // A write torn by a power cut (SIGKILL alone never tears a write(2)).
            let mut torn = Vec::new();
            encode_record(
                &event("/never acknowledged", 10, false),
                Endian::Little,
                &mut torn,
            );
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(d.path().join("log.bin"))
                .unwrap();
            f.write_all(&torn[..torn.len() * (round % 5 + 1) / 7])
                .unwrap();
        }
        // Restart: the log parses, the torn tail is gone, PCRs equal the replay.
        let log = MeasurementLog::open(d.path().join("log.bin"), LogConfig::default()).unwrap();
        cut += log.stats().torn_bytes_cut;
        let recs = log.records().unwrap();
        assert_eq!(
            std::fs::metadata(log.path()).unwrap().len(),
            {
                let mut b = Vec::new();
                for r in &recs {
                    encode_record(r, Endian::Little, &mut b);
                }
                b.len() as u64
            },
            "file holds exactly the parsed records"
        );
        assert_eq!(log.pcrs(), replay(&recs, &BANKS).unwrap(), "round {round}");
        // Nothing acknowledged is missing.
        let present: HashSet<Vec<u8>> = recs.iter().map(|r| r.name().unwrap().to_vec()).collect();
        for name in &acked_all {
            let stored = vigil_ima::list::kernel_name(name.as_bytes());
            assert!(
                present.contains(&stored),
                "round {round}: acknowledged {name} lost"
            );
        }
        // Each record is whole: its template digest matches its data.
        for r in &recs {
            if !r.is_violation() {
                assert_eq!(
                    r.digest,
                    r.template_digest(HashAlgo::Sha1, Endian::Little).unwrap()
                );
            }
        }
    }
    assert!(
        acked_all.len() > 20,
        "child made too little progress: {}",
        acked_all.len()
    );
    assert!(cut > 0, "no torn tail was exercised");
    eprintln!(
        "{} acknowledged records survived 12 kills; {cut} torn bytes cut",
        acked_all.len()
    );
}

#[test]
fn trees_survive_kill9() {
    let d = common::scratch();
    let mut acked_all = Vec::new();
    let mut erased = 0;
    for round in 0..10 {
        acked_all.extend(run_and_kill("tree", d.path(), round, jitter(round) * 2));
        let (store, rec) = TreeStore::open(d.path().join("trees")).unwrap();
        erased += rec.erased;
        // No partial tree left; every finished tree loads and is what was stored.
        for ent in std::fs::read_dir(store.dir()).unwrap() {
            let name = ent.unwrap().file_name().to_string_lossy().into_owned();
            assert!(name.ends_with(".tree"), "round {round}: leftover {name}");
            let key = name.split('-').next().unwrap();
            let body = vigil_guard::store::load_tree(&store.dir().join(&name))
                .unwrap_or_else(|e| panic!("round {round}: {name} unusable after recovery: {e}"));
            assert_eq!(body, tree_body(key).concat(), "{name}");
        }
        for key in &acked_all {
            let digest = HashAlgo::Sha256.digest(key.as_bytes()).unwrap();
            let p = store
                .dir()
                .join(format!("{key}-{}.tree", hex::encode(digest)));
            assert!(p.exists(), "round {round}: acknowledged tree {key} lost");
        }
    }
    assert!(
        acked_all.len() >= 3,
        "child finished too few trees: {}",
        acked_all.len()
    );
    eprintln!(
        "{} trees acknowledged; {erased} partial files erased over 10 kills",
        acked_all.len()
    );
}

#[test]
fn damaged_tree_is_never_used() {
    let d = common::scratch();
    let (store, _) = TreeStore::open(d.path().join("trees")).unwrap();
    let r = store
        .store(
            "k",
            b"\x01\x02",
            &mut vec![vec![5u8; 5000]].into_iter(),
            &|| true,
        )
        .unwrap();
    assert_eq!(store.load(&r).unwrap(), vec![5u8; 5000]);
    // Cut short, or flipped: refused.
    let full = std::fs::read(&r.path).unwrap();
    std::fs::write(&r.path, &full[..full.len() - 1]).unwrap();
    assert!(store.load(&r).is_err());
    let mut flipped = full.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&r.path, &flipped).unwrap();
    assert!(store.load(&r).is_err());
    // A build cancelled by a write leaves nothing behind.
    let calls = std::cell::Cell::new(0);
    let keep = || {
        calls.set(calls.get() + 1);
        calls.get() < 3
    };
    let e = store
        .store("c", b"\x09", &mut (0..10).map(|_| vec![1u8; 100]), &keep)
        .unwrap_err();
    assert!(matches!(e, vigil_guard::Error::Changed));
    let left: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("c-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn torn_log_tail_is_cut() {
    let d = common::scratch();
    let p = d.path().join("log.bin");
    let log = MeasurementLog::open(&p, LogConfig::default()).unwrap();
    for i in 0..3 {
        log.append(&event(&format!("/f{i}"), 10, false)).unwrap();
    }
    let pcrs = log.pcrs();
    drop(log);
    let mut bytes = std::fs::read(&p).unwrap();
    let whole = bytes.len();
    // A half-written fourth record.
    let mut rec = Vec::new();
    encode_record(&event("/f3", 10, false), Endian::Little, &mut rec);
    bytes.extend_from_slice(&rec[..rec.len() / 2]);
    std::fs::write(&p, &bytes).unwrap();
    let log = MeasurementLog::open(&p, LogConfig::default()).unwrap();
    assert_eq!(log.stats().torn_bytes_cut, (rec.len() / 2) as u64);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), whole as u64);
    assert_eq!(log.pcrs(), pcrs);
    assert_eq!(log.stats().records, 3);
    // Duplicates are suppressed across a restart too.
    assert_eq!(
        log.append(&event("/f1", 10, false)).unwrap(),
        vigil_guard::Appended::Duplicate
    );
    // Garbage in the middle is reported with its offset, not cut.
    let mut bad = std::fs::read(&p).unwrap();
    bad[0] = 200; // PCR index 200
    std::fs::write(&p, &bad).unwrap();
    match MeasurementLog::open(&p, LogConfig::default()) {
        Err(e @ vigil_guard::Error::Corrupt { offset: 0, .. }) => {
            // Named once: "…: record 0: … at offset 0".
            let msg = e.to_string();
            assert_eq!(msg.matches("offset").count(), 1, "{msg}");
            assert!(msg.contains("record 0: "), "{msg}");
        }
        other => panic!("{:?}", other.map(|l| l.stats())),
    }
}

#[test]
fn removing_an_identitys_trees_leaves_the_others() {
    let d = common::scratch();
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let store_tree = |store: &TreeStore, key: &str, digest: &[u8]| {
        store
            .store(key, digest, &mut std::iter::once(vec![7u8; 64]), &|| true)
            .unwrap();
    };
    {
        let (store, _) = TreeStore::open(d.path().join("trees")).unwrap();
        store_tree(&store, "aa", b"\x01");
        store_tree(&store, "aa", b"\x02");
        store_tree(&store, "ab", b"\x01");
    }
    // Trees stored before a restart are found again: the store reads its directory
    // once when opened, not at every removal.
    let (store, rec) = TreeStore::open(d.path().join("trees")).unwrap();
    assert_eq!(rec.kept, 3);
    store_tree(&store, "aa", b"\x03");
    store.remove_for("aa", Some(b"\x03")).unwrap();
    assert_eq!(names(store.dir()), ["aa-03.tree", "ab-01.tree"]);
    store.remove_for("aa", None).unwrap();
    store.remove_for("zz", None).unwrap();
    assert_eq!(names(store.dir()), ["ab-01.tree"]);
    // A tree stored again under the same name is one tree, removed once.
    store_tree(&store, "ab", b"\x01");
    store.remove_for("ab", None).unwrap();
    assert!(names(store.dir()).is_empty());
}

#[test]
fn a_tree_in_use_outlives_its_removal() {
    let d = common::scratch();
    let (store, _) = TreeStore::open(d.path().join("trees")).unwrap();
    let store_tree = |digest: &[u8]| {
        store
            .store("aa", digest, &mut std::iter::once(vec![7u8; 64]), &|| true)
            .unwrap()
    };
    let held = store_tree(b"\x01");
    let clone = held.clone();
    store.remove_for("aa", None).unwrap();
    assert_eq!(store.load(&held).unwrap(), vec![7u8; 64]);
    drop(held);
    assert!(
        clone.path.exists(),
        "removed while a clone still refers to it"
    );
    drop(clone);
    let gone = store.dir().join("aa-01.tree");
    assert!(!gone.exists(), "left behind after its last reference");

    // Stored again while a removed one is still in use: kept past that use.
    let held = store_tree(b"\x02");
    store.remove_for("aa", Some(b"\x03")).unwrap();
    let again = store_tree(b"\x02");
    drop(held);
    assert_eq!(store.load(&again).unwrap(), vec![7u8; 64]);
    drop(again);
    assert!(store.dir().join("aa-02.tree").exists());
    store.remove_for("aa", None).unwrap();
    assert!(!store.dir().join("aa-02.tree").exists());
}
