//! Trees built by the guard (vigil-fsverity) against fsverity-utils, stored and reloaded.

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;

use common::*;
use vigil_guard::{Actions, Config, FsVerityTrees, Guard, MeasureAction, OpenRequest, Template};

fn fsverity_digest(path: &std::path::Path, tree_out: &std::path::Path) -> String {
    let o = Command::new("fsverity")
        .arg("digest")
        .arg("--compact")
        .arg(format!("--out-merkle-tree={}", tree_out.display()))
        .arg(path)
        .output()
        .expect("fsverity (scripts/install-deps.sh installs fsverity)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Measure every file opened, with fs-verity trees, logged as `ima-ngv2` records.
fn verity_config() -> Config {
    Config {
        tree_builder: Some(Arc::new(FsVerityTrees::default())),
        template: Template::ImaNgV2,
        ..config(Actions {
            measure: Some(MeasureAction {
                pcr: 10,
                template: None,
                verity: true,
            }),
            ..Actions::default()
        })
    }
}

#[test]
fn trees_match_fsverity_utils() {
    let d = scratch();
    let g = Guard::new(verity_config(), d.path().join("state")).unwrap();
    // Up to several of the guard's 1 MiB reads, the last one short.
    for (i, size) in [
        0usize,
        1,
        4096,
        4097,
        1 << 20,
        (1 << 20) + 4095,
        (3 << 20) + 5,
    ]
    .into_iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        let p = write_file(&d.path().join(format!("v{i}")), &data);
        let f = File::open(&p).unwrap();
        let id = g.identify(f.as_fd()).unwrap();
        let dec = g
            .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
            .unwrap();
        let m = dec.measurement.unwrap();
        assert_eq!(
            hex::encode(&m.digest),
            sha256_hex(&data),
            "content digest, size {size}"
        );
        let (tree, stored) = m.verity.as_ref().expect("verity built");
        let ref_tree = d.path().join(format!("ref{i}.tree"));
        assert_eq!(
            hex::encode(&tree.digest),
            fsverity_digest(&p, &ref_tree),
            "size {size}"
        );
        let reference = std::fs::read(&ref_tree).unwrap();
        assert_eq!(m.tree_bytes().unwrap().unwrap(), reference, "size {size}");
        if size <= 4096 {
            // One block: the root hash is the block's hash, and there is no tree.
            assert!(reference.is_empty() && stored.is_none(), "size {size}");
        } else {
            // Stored, and not held in memory as well.
            let stored = stored.as_ref().expect("tree stored");
            assert_eq!(g.trees().load(stored).unwrap(), reference, "size {size}");
            assert!(tree.tree.is_empty(), "size {size}");
        }
        let rec = vigil_guard::log::ascii_line(&g.log().records().unwrap().pop().unwrap());
        assert!(
            rec.contains(&format!(
                " ima-ngv2 verity:sha256:{} ",
                hex::encode(&tree.digest)
            )),
            "{rec}"
        );
    }

    // A new content replaces the stored tree of the old one.
    let p = d.path().join("v3");
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    let key = id.id.to_hex();
    let count = || {
        std::fs::read_dir(g.trees().dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&key)
            })
            .count()
    };
    assert_eq!(count(), 1);
    let replace = |content: &[u8]| {
        let m = g.modify(&id.id, None).unwrap();
        std::fs::write(&p, content).unwrap();
        drop(m);
        let now = g.identify(f.as_fd()).unwrap();
        g.on_open(&now, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
            .unwrap()
    };
    // A measurement still in use keeps its tree file past a re-measurement (an open
    // in progress reads it back); the file goes with the last such measurement.
    let held = g
        .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
        .unwrap()
        .measurement
        .unwrap();
    let dec = replace(&[9u8; 10_000]);
    assert!(dec.measurement.as_ref().unwrap().tree().is_some());
    assert_eq!(count(), 2, "tree of a measurement in use removed");
    let old_tree = std::fs::read(d.path().join("ref3.tree")).unwrap();
    assert_eq!(held.tree_bytes().unwrap().unwrap(), old_tree);
    drop(held);
    assert_eq!(count(), 1, "old tree left behind");
    drop(dec);
    // Shrunk to one block: no tree of its own, and none of the old content's either.
    let dec = replace(b"replaced");
    assert!(dec.measurement.as_ref().unwrap().tree().is_none());
    assert_eq!(count(), 0, "old tree left behind");
    drop(dec);
    let dec = replace(&[8u8; 10_000]);
    assert_eq!(count(), 1);
    drop(dec);
    g.forget(&id.id);
    assert_eq!(count(), 0, "tree of a forgotten file left behind");
}

/// Trees and seals of files deleted while no guard was watching (or after the kernel
/// forgot them) are dropped when the guard registers their file system's mount; those
/// of files still there stay.
#[test]
fn trees_and_seals_of_files_gone_are_swept_at_registration() {
    let d = scratch();
    let names = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count();
    {
        let g = Guard::new(verity_config(), d.path().join("state")).unwrap();
        for name in ["kept", "gone", "sealed-gone", "sealed-kept"] {
            let p = write_file(&d.path().join(name), &vec![name.len() as u8; 10_000]);
            let f = File::open(&p).unwrap();
            let id = g.identify(f.as_fd()).unwrap();
            g.on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
                .unwrap();
            if name.starts_with("sealed") {
                g.seal(&id, f.as_fd(), None).unwrap();
            }
        }
        assert_eq!(names(g.trees().dir()), 4);
    }
    std::fs::remove_file(d.path().join("gone")).unwrap();
    std::fs::remove_file(d.path().join("sealed-gone")).unwrap();
    let seals = || std::fs::read_to_string(d.path().join("state/seals")).unwrap();
    assert_eq!(seals().lines().count(), 2);

    let g = Guard::new(verity_config(), d.path().join("state")).unwrap();
    assert_eq!(names(g.trees().dir()), 4, "swept before registration");
    g.register_mount(File::open(d.path()).unwrap().into())
        .unwrap();
    assert_eq!(names(g.trees().dir()), 2);
    assert_eq!(seals().lines().count(), 1);
    let f = File::open(d.path().join("sealed-kept")).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    assert!(g.seal_of(&id.id).is_some());
}

/// A file that grows behind the guard's back while it is read: every measurement, the
/// unpublished last attempts included, is of one prefix of the file, and says so — its
/// size, content digest and tree all cover exactly the bytes it read (a size that did
/// not match the tree left the reads of that open unverified).
#[test]
fn measurements_of_a_file_growing_behind_are_sized_as_read() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    const MAX: usize = 24 << 20;
    let pattern: Arc<Vec<u8>> = Arc::new((0..MAX).map(|i| (i % 251) as u8).collect());
    let d = scratch();
    let g = Guard::new(verity_config(), d.path().join("state")).unwrap();
    let p = write_file(&d.path().join("growing"), &pattern[..4 << 20]);
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (p, pattern, stop) = (p.clone(), pattern.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            let mut off = 4 << 20;
            while off < MAX && !stop.load(Ordering::Relaxed) {
                f.write_all_at(&pattern[off..off + 512], off as u64)
                    .unwrap();
                off += 512;
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        })
    };
    let params = vigil_fsverity::Params::default();
    let f = File::open(&p).unwrap();
    let started = std::time::Instant::now();
    while g.stats().publish_refused < 3 && started.elapsed().as_secs() < 60 {
        let id = g.identify(f.as_fd()).unwrap();
        let m = g
            .on_open(&id, f.as_fd(), &OpenRequest::read(p.to_str().unwrap()))
            .unwrap()
            .measurement
            .unwrap();
        let size = m.attrs.size as usize;
        let read = &pattern[..size];
        assert_eq!(hex::encode(&m.digest), sha256_hex(read), "size {size}");
        let reference = vigil_fsverity::build_tree_from_slice(read, &params);
        let (tree, _) = m.verity.as_ref().unwrap();
        assert_eq!(tree.digest, reference.digest().as_bytes(), "size {size}");
        assert_eq!(
            m.tree_bytes().unwrap().unwrap(),
            reference.merkle_tree(),
            "size {size}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    assert!(
        g.stats().publish_refused >= 3,
        "no measurement was overtaken by the growth: {:?}",
        g.stats()
    );
}

/// A file forgotten while it is measured (deleted, and let go of by the kernel) leaves
/// no tree behind: the forgetting removed the file's trees before its measurement
/// stored this one.
#[test]
fn a_file_forgotten_while_measured_leaves_no_tree() {
    let d = scratch();
    let g = Guard::new(verity_config(), d.path().join("state")).unwrap();
    let p = d.path().join("big");
    // Sparse: measuring it takes a second or so.
    File::create(&p).unwrap().set_len(1 << 30).unwrap();
    let f = File::open(&p).unwrap();
    let id = g.identify(f.as_fd()).unwrap();
    std::thread::scope(|s| {
        let open = s.spawn(|| g.on_open(&id, f.as_fd(), &OpenRequest::read("big")));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!open.is_finished(), "the file is still being measured");
        g.forget(&id.id);
        let decision = open.join().unwrap().unwrap();
        assert!(decision.measurement.is_some());
    });
    let trees = std::fs::read_dir(d.path().join("state/trees"))
        .unwrap()
        .count();
    assert_eq!(trees, 0);
}
