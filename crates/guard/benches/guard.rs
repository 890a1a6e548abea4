//! `cargo bench -p vigil-guard`: cached-decision cost, measurement throughput on many
//! small files, measurement-log append rate with group commit.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use vigil_guard::{
    Actions, Config, FixedPolicy, Guard, LogConfig, MeasureAction, MeasurementLog, OpenRequest,
    XattrSource,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn guard(dir: &std::path::Path) -> Guard {
    let cfg = Config {
        policy: Arc::new(FixedPolicy(Actions {
            measure: Some(MeasureAction {
                pcr: 10,
                template: None,
                verity: false,
            }),
            ..Actions::default()
        })),
        xattr: XattrSource::User,
        ..Config::default()
    };
    Guard::new(cfg, dir.join("state")).unwrap()
}

fn main() {
    let base = std::env::var_os("VIGIL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into());
    let d = tempfile::tempdir_in(base).unwrap();

    // 1. Cached decision for an unchanged, measured file.
    let g = guard(d.path());
    let p = d.path().join("cached");
    std::fs::write(&p, vec![1u8; 1 << 20]).unwrap();
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let req = OpenRequest::read(p.to_str().unwrap());
    drop(g.on_open(&id, f.as_fd(), &req).unwrap());
    let n = 200_000;
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..n {
            let dec = g.on_open(&id, f.as_fd(), &req).unwrap();
            std::hint::black_box(&dec);
        }
        runs.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let cached = median(runs);
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..20_000 {
            std::hint::black_box(g.identify(f.as_fd()).unwrap());
        }
        runs.push(t.elapsed().as_nanos() as f64 / 20_000.0);
    }
    println!(
        "cached decision (on_open, unchanged measured file): {cached:.0} ns/open (target <= 1000)"
    );
    println!(
        "identify (statx + name_to_handle_at + fstatfs):      {:.0} ns/call",
        median(runs)
    );
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..20_000 {
            std::hint::black_box(g.refresh(&id, f.as_fd()).unwrap());
        }
        runs.push(t.elapsed().as_nanos() as f64 / 20_000.0);
    }
    println!(
        "refresh of a known file (one statx):                {:.0} ns/call",
        median(runs)
    );
    drop(g);

    // 1b. The same with a real IMA policy (the `tcb` built-in's dont_measure list and
    // measure rules, plus an appraise rule that does not match).
    let policy = vigil_ima::policy::parse(
        "dont_measure fsmagic=0x9fa0\ndont_measure fsmagic=0x62656572\ndont_measure fsmagic=0x64626720\n\
         dont_measure fsmagic=0x1cd1\ndont_measure fsmagic=0x42494e4d\ndont_measure fsmagic=0x73636673\n\
         dont_measure fsmagic=0xf97cff8c\ndont_measure fsmagic=0x43415d53\n\
         measure func=MMAP_CHECK mask=MAY_EXEC\nmeasure func=BPRM_CHECK mask=MAY_EXEC\n\
         measure func=FILE_CHECK mask=^MAY_READ euid=0\nmeasure func=FILE_CHECK mask=^MAY_READ uid=0\n\
         appraise fowner=4242\n",
    )
    .unwrap()
    .compile();
    let cfg = Config {
        policy: Arc::new(policy),
        xattr: XattrSource::User,
        ..Config::default()
    };
    let g = Guard::new(cfg, d.path().join("state-policy")).unwrap();
    drop(g.on_open(&id, f.as_fd(), &req).unwrap());
    let mut runs = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..n {
            let dec = g.on_open(&id, f.as_fd(), &req).unwrap();
            std::hint::black_box(&dec);
        }
        runs.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!(
        "cached decision with a 13-rule IMA policy:          {:.0} ns/open (target <= 1000)",
        median(runs)
    );
    drop(g);

    // 2. Measurement throughput on many small files.
    let files: Vec<_> = (0..2000)
        .map(|i| {
            let p = d.path().join(format!("small{i}"));
            std::fs::write(&p, format!("{i}").repeat(400)).unwrap();
            p
        })
        .collect();
    let mut runs = Vec::new();
    for r in 0..5 {
        let g = guard(&d.path().join(format!("m{r}")));
        let t = Instant::now();
        for p in &files {
            let f = File::open(p).unwrap();
            let id = g.identify(f.as_fd()).unwrap();
            drop(
                g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
                    .unwrap(),
            );
        }
        runs.push(files.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "first measurement of 2000 small files (open+identify+hash+log append+fsync): {:.0} files/s",
        median(runs)
    );

    // 3. Log append rate: one appender vs 8 concurrent (group commit).
    for threads in [1usize, 8] {
        let path = d.path().join(format!("log{threads}.bin"));
        let log = Arc::new(MeasurementLog::open(&path, LogConfig::default()).unwrap());
        let per = 2000 / threads;
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..per {
                        let name = format!("/bench/record {th} {i}");
                        let digest = vigil_ima::HashAlgo::Sha256.digest(name.as_bytes()).unwrap();
                        let ev = vigil_guard::template::Event {
                            algo: vigil_ima::HashAlgo::Sha256,
                            digest: Some(&digest),
                            digest_type: vigil_guard::template::DigestType::Ima,
                            name: name.as_bytes(),
                            sig: &[],
                            buf: &[],
                            inode: None,
                        };
                        let rec =
                            vigil_guard::template::record(vigil_guard::Template::ImaNg, &ev, 10)
                                .unwrap();
                        log.append(&rec).unwrap();
                    }
                });
            }
        });
        let el = t.elapsed();
        let st = log.stats();
        println!(
            "log append, {threads} thread(s): {:.0} durable records/s, {} records per fsync",
            st.records as f64 / el.as_secs_f64(),
            st.records / st.syncs.max(1)
        );
    }
}
