//! Writers (write, truncate, rename-over) against measuring threads on real files for a
//! bounded time. Every measurement that was ever published must equal the hash of the
//! content the file had while the measurement's generation was current.
//!
//! A file is told apart from an earlier one that had the same handle (the file system
//! may reuse an inode number and generation once the earlier file is gone) by its
//! birth time, as the guard does before it trusts a cached measurement.

mod common;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use vigil_guard::{FileId, Identified, OpenRequest};

/// One file: its identity and its birth time.
type Incarnation = (FileId, Option<i128>);

fn incarnation(i: &Identified) -> Incarnation {
    (i.id.clone(), i.attrs.btime_ns)
}

/// Per file: the content changes in order, as (generation the change began,
/// generation the new content has, its hash).
type Truth = Arc<Mutex<HashMap<Incarnation, Vec<(u64, u64, String)>>>>;

fn record(truth: &Truth, id: Incarnation, begin: u64, end: u64, digest: String) {
    truth
        .lock()
        .unwrap()
        .entry(id)
        .or_default()
        .push((begin, end, digest));
}

#[test]
fn no_stale_publication_under_concurrent_writes() {
    let d = scratch();
    let g = Arc::new(guard(d.path(), measure_all()));
    let files: Vec<_> = (0..3)
        .map(|i| write_file(&d.path().join(format!("s{i}")), b"initial"))
        .collect();
    let truth: Truth = Arc::new(Mutex::new(HashMap::new()));
    // Generation 0 of each initial file is its initial content.
    for p in &files {
        let id = vigil_guard::identity::identify_path(p).unwrap();
        record(&truth, incarnation(&id), 0, 0, sha256_hex(b"initial"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Vec::<(Incarnation, u64, String)>::new()));
    let measurements = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    // One writer per file (the truth map needs one writer per identity).
    for (wi, p) in files.iter().cloned().enumerate() {
        let (g, truth, stop) = (g.clone(), truth.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let content = format!("writer {wi} step {n} {}", "x".repeat((n % 97) as usize));
                match n % 5 {
                    // rename a new file over the path
                    4 => {
                        let tmp = p.with_extension("tmp");
                        std::fs::write(&tmp, &content).unwrap();
                        let id = vigil_guard::identity::identify_path(&tmp).unwrap();
                        record(
                            &truth,
                            incarnation(&id),
                            0,
                            0,
                            sha256_hex(content.as_bytes()),
                        );
                        let old = vigil_guard::identity::identify_path(&p).unwrap();
                        let _change = g.change_metadata(&old.id, None);
                        std::fs::rename(&tmp, &p).unwrap();
                    }
                    // truncate
                    3 => {
                        let f = OpenOptions::new().write(true).open(&p).unwrap();
                        let id = g.identify(f.as_fd()).unwrap();
                        let cur = std::fs::read(&p).unwrap();
                        let keep = cur.len() / 2;
                        let m = g.modify(&id.id, None).unwrap();
                        let begin = m.begin_generation();
                        f.set_len(keep as u64).unwrap();
                        let end = m.finish();
                        record(
                            &truth,
                            incarnation(&id),
                            begin,
                            end,
                            sha256_hex(&cur[..keep]),
                        );
                    }
                    // write in place (two writes, so a reader could see it torn)
                    _ => {
                        let mut f = OpenOptions::new().write(true).open(&p).unwrap();
                        let id = g.identify(f.as_fd()).unwrap();
                        let m = g.modify(&id.id, None).unwrap();
                        let begin = m.begin_generation();
                        f.set_len(0).unwrap();
                        let (a, b) = content.as_bytes().split_at(content.len() / 2);
                        f.write_all(a).unwrap();
                        std::thread::yield_now();
                        f.write_all(b).unwrap();
                        let end = m.finish();
                        let digest = sha256_hex(content.as_bytes());
                        record(&truth, incarnation(&id), begin, end, digest);
                    }
                }
            }
        }));
    }
    // Measuring threads: open by path, measure (or hit), and record what is published.
    for _ in 0..3 {
        let (g, files, stop, observed, measurements) = (
            g.clone(),
            files.clone(),
            stop.clone(),
            observed.clone(),
            measurements.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let p = &files[i % files.len()];
                let Ok(f) = File::open(p) else { continue };
                let Ok(id) = g.identify(f.as_fd()) else {
                    continue;
                };
                if g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
                    .is_ok()
                {
                    measurements.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(m) = g.cached(&id.id) {
                    observed.lock().unwrap().push((
                        (id.id.clone(), m.attrs.btime_ns),
                        m.generation,
                        hex::encode(&m.digest),
                    ));
                }
            }
        }));
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let truth = truth.lock().unwrap();
    let observed = observed.lock().unwrap();
    let mut stale = 0;
    for (id, gen, digest) in observed.iter() {
        // The content current at generation `gen`: the last change that ended at or
        // before it — and no later change may have begun at or before it.
        let changes = truth.get(id).map(|v| &v[..]).unwrap_or(&[]);
        let k = changes.iter().rposition(|(_, end, _)| end <= gen);
        let ok = match k {
            Some(k) => {
                let next_begin_ok = changes.get(k + 1).is_none_or(|(b, _, _)| b > gen);
                &changes[k].2 == digest && next_begin_ok
            }
            None => false,
        };
        if !ok {
            stale += 1;
            eprintln!(
                "stale publication {id:?} gen {gen}: {digest} vs {:?}",
                k.map(|k| &changes[k])
            );
        }
    }
    let s = g.stats();
    eprintln!(
        "{:?}: {} published observations, {} opens, {} truths, {s:?}",
        start.elapsed(),
        observed.len(),
        measurements.load(Ordering::Relaxed),
        truth.len()
    );
    assert_eq!(stale, 0, "stale publications");
    assert!(observed.len() > 20, "too few publications to mean anything");
    assert!(
        s.publish_refused > 0 || s.measurements > 50,
        "no contention exercised: {s:?}"
    );
}
