//! A bounded worker pool. FUSE loop threads hand it every request that may take long
//! (reads that verify, opens that measure, fsync) together with the request's reply, so
//! a loop thread never waits on hashing or on the backing store's slowest operations.
//!
//! Each worker publishes when its current job started; a watchdog thread reads those
//! stamps and reports (through a callback) a job stuck longer than the limit, so the
//! mount can be aborted instead of hanging every process that touches it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    busy: Arc<Vec<AtomicU64>>,
    epoch: Instant,
    stop: AtomicBool,
}

impl Pool {
    /// `workers` threads named `{name}{i}` sharing a queue of at most `bound` waiting
    /// jobs (a full queue makes the submitting loop thread wait: back-pressure, never
    /// unbounded memory).
    pub fn new(name: &str, workers: usize, bound: usize) -> Arc<Pool> {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<Job>(bound.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let busy: Arc<Vec<AtomicU64>> = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
        let epoch = Instant::now();
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            let busy = busy.clone();
            let t = std::thread::Builder::new()
                .name(format!("{name}{i}"))
                .spawn(move || loop {
                    let job = {
                        let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                        rx.recv()
                    };
                    let Ok(job) = job else { return };
                    // Store "started at" in ms since the epoch, +1 so 0 means idle.
                    busy[i].store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                    job();
                    busy[i].store(0, Ordering::Relaxed);
                })
                .expect("spawning a worker thread");
            threads.push(t);
        }
        Arc::new(Pool {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            busy,
            epoch,
            stop: AtomicBool::new(false),
        })
    }

    /// Run `job` on a worker; after shutdown it runs on the caller.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => {
                if let Err(e) = tx.send(Box::new(job)) {
                    (e.0)();
                }
            }
            None => job(),
        }
    }

    /// Run `job` on a worker if one can take it without waiting; drop it otherwise.
    pub fn try_run(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.try_send(Box::new(job));
        }
    }

    /// Age of the oldest job currently running.
    pub fn oldest_job(&self) -> Option<Duration> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.busy
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&s| s != 0)
            .map(|s| Duration::from_millis(now.saturating_sub(s)))
            .max()
    }

    /// Stop taking jobs, let the queued ones finish and join the workers.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Start the watchdog over `pools`: every quarter second, if a job has run longer than
/// `limit`, call `on_stall` once (with the job's age) and stop watching.
pub fn watchdog(
    pools: &[&Arc<Pool>],
    limit: Duration,
    on_stall: impl FnOnce(Duration) + Send + 'static,
) {
    let watched: Vec<Weak<Pool>> = pools.iter().map(|p| Arc::downgrade(p)).collect();
    let _ = std::thread::Builder::new()
        .name("vigil-fs-watchdog".into())
        .spawn(move || {
            let tick = Duration::from_millis(250).min(limit);
            loop {
                std::thread::sleep(tick);
                let mut oldest = None;
                for pool in &watched {
                    let Some(pool) = pool.upgrade() else { return };
                    if pool.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    oldest = oldest.max(pool.oldest_job());
                }
                if let Some(age) = oldest.filter(|&age| age > limit) {
                    on_stall(age);
                    return;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_all_jobs_and_joins() {
        let pool = Pool::new("t", 3, 2);
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let n = n.clone();
            pool.run(move || {
                n.fetch_add(1, Ordering::SeqCst);
            });
        }
        pool.shutdown();
        assert_eq!(n.load(Ordering::SeqCst), 50);
        // After shutdown jobs run inline.
        let n2 = n.clone();
        pool.run(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 51);
    }

    #[test]
    fn watchdog_reports_a_stuck_job() {
        let pool = Pool::new("t", 1, 1);
        let (tx, rx) = std::sync::mpsc::channel();
        watchdog(&[&pool], Duration::from_millis(100), move |age| {
            tx.send(age).unwrap();
        });
        let (rel_tx, rel_rx) = std::sync::mpsc::channel::<()>();
        pool.run(move || {
            let _ = rel_rx.recv_timeout(Duration::from_secs(5));
        });
        let age = rx
            .recv_timeout(Duration::from_secs(3))
            .expect("watchdog fired");
        assert!(age > Duration::from_millis(100));
        rel_tx.send(()).unwrap();
        pool.shutdown();
    }
}
