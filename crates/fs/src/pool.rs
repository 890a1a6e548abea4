//! A worker pool. FUSE loop threads hand it every request that may take long (reads
//! that verify, opens that measure, fsync) together with the request's reply, so a loop
//! thread never waits on hashing or on the backing store's slowest operations. Its
//! queue is bounded or not, and serves the users it holds jobs of in turn.
//!
//! Each worker publishes when its current job started; a watchdog thread reads those
//! stamps and reports (through a callback) a job stuck longer than the limit, so the
//! mount can be aborted instead of hanging every process that touches it. A job is
//! stuck only while no long job makes progress: measuring a huge file legitimately
//! takes minutes (reading and hashing every byte, as IMA does), and other opens may
//! wait on it meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    queue: Arc<JobQueue>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    busy: Arc<Vec<AtomicU64>>,
    /// Each worker's thread id, for its progress counters in /proc.
    tids: Arc<Vec<AtomicU32>>,
    epoch: Instant,
    stop: AtomicBool,
}

impl Pool {
    /// `workers` threads named `{name}{i}` sharing a queue of at most `bound` waiting
    /// jobs (a full queue makes the submitting loop thread wait: back-pressure, never
    /// unbounded memory), or with no bound, for jobs whose number is bounded otherwise.
    pub fn new(name: &str, workers: usize, bound: Option<usize>) -> Arc<Pool> {
        let workers = workers.max(1);
        let queue = Arc::new(JobQueue::new(bound.map(|b| b.max(1))));
        let busy: Arc<Vec<AtomicU64>> = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
        let tids: Arc<Vec<AtomicU32>> = Arc::new((0..workers).map(|_| AtomicU32::new(0)).collect());
        let epoch = Instant::now();
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (queue, busy, tids) = (queue.clone(), busy.clone(), tids.clone());
            let t = std::thread::Builder::new()
                .name(format!("{name}{i}"))
                .spawn(move || {
                    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
                    tids[i].store(tid, Ordering::Relaxed);
                    while let Some(job) = queue.pop() {
                        // Store "started at" in ms since the epoch, +1 so 0 means idle.
                        busy[i].store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                        job();
                        busy[i].store(0, Ordering::Relaxed);
                    }
                })
                .expect("spawning a worker thread");
            threads.push(t);
        }
        Arc::new(Pool {
            queue,
            threads: Mutex::new(threads),
            busy,
            tids,
            epoch,
            stop: AtomicBool::new(false),
        })
    }

    /// Run `job` on a worker; after shutdown it runs on the caller.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        self.run_for(0, job);
    }

    /// [`Pool::run`] for `key` (the user the job is for): the workers take the keys'
    /// jobs in turn, so one user's many jobs wait behind each other, not in front of
    /// another user's.
    pub fn run_for(&self, key: u32, job: impl FnOnce() + Send + 'static) {
        if let Err(job) = self.queue.push(key, Box::new(job), true) {
            job();
        }
    }

    /// Run `job` on a worker if one can take it without waiting; drop it otherwise.
    pub fn try_run(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.queue.push(0, Box::new(job), false);
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

    /// The thread ids of the workers whose job has run longer than `age`.
    fn long_jobs(&self, age: Duration) -> impl Iterator<Item = u32> + '_ {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let age = age.as_millis() as u64;
        self.busy
            .iter()
            .zip(self.tids.iter())
            .filter(move |(b, _)| {
                let s = b.load(Ordering::Relaxed);
                s != 0 && now.saturating_sub(s) > age
            })
            .map(|(_, t)| t.load(Ordering::Relaxed))
    }

    /// Stop taking jobs, let the queued ones finish and join the workers.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.queue.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The jobs waiting for a worker, by key, taken round-robin over the keys. With a
/// bound, a push waits while that many jobs wait.
struct JobQueue {
    state: Mutex<QueueState>,
    /// A job came, or the queue closed.
    filled: Condvar,
    /// A job was taken, or the queue closed.
    drained: Condvar,
    bound: Option<usize>,
}

#[derive(Default)]
struct QueueState {
    jobs: HashMap<u32, VecDeque<Job>>,
    /// The keys with jobs, in the order of their turns.
    turns: VecDeque<u32>,
    len: usize,
    closed: bool,
}

impl JobQueue {
    fn new(bound: Option<usize>) -> JobQueue {
        JobQueue {
            state: Mutex::default(),
            filled: Condvar::new(),
            drained: Condvar::new(),
            bound,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `job` for `key`, waiting for room if `wait`; gives the job back if the
    /// queue is closed, or full and not to be waited for.
    fn push(&self, key: u32, job: Job, wait: bool) -> Result<(), Job> {
        let mut st = self.lock();
        while !st.closed && self.bound.is_some_and(|b| st.len >= b) {
            if !wait {
                return Err(job);
            }
            st = self.drained.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            return Err(job);
        }
        let jobs = st.jobs.entry(key).or_default();
        jobs.push_back(job);
        if jobs.len() == 1 {
            st.turns.push_back(key);
        }
        st.len += 1;
        drop(st);
        self.filled.notify_one();
        Ok(())
    }

    /// The next job, once there is one; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(key) = st.turns.pop_front() {
                // (A key's queue stays when empty: there are as many as users.)
                let jobs = st.jobs.get_mut(&key).expect("a key with a turn has jobs");
                let job = jobs.pop_front().expect("a key with a turn has jobs");
                if !jobs.is_empty() {
                    st.turns.push_back(key);
                }
                st.len -= 1;
                drop(st);
                self.drained.notify_one();
                return Some(job);
            }
            if st.closed {
                return None;
            }
            st = self.filled.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Take no more jobs; those queued are still handed out.
    fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_all();
        self.drained.notify_all();
    }
}

/// What thread `tid` of this process has done so far: CPU time (ns) plus bytes read and
/// written through system calls. It grows while the thread works; a thread blocked
/// for good leaves it still. 0 if unreadable.
fn work_done(tid: u32) -> u64 {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/self/task/{tid}/{f}"));
    let cpu = read("schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let io = read("io").map_or(0, |s| {
        s.lines()
            .filter_map(|l| {
                l.strip_prefix("rchar:")
                    .or_else(|| l.strip_prefix("wchar:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum()
    });
    cpu.wrapping_add(io)
}

/// Start the watchdog over `pools`: every quarter second, if a job has run longer than
/// `limit` while no job that has run over a second made progress for as long, call
/// `on_stall` once (with the oldest job's age) and stop watching.
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
            // Short jobs come and go; only those past a second are sampled.
            let long = Duration::from_secs(1).min(limit / 2);
            let mut seen: std::collections::HashMap<u32, u64> = Default::default();
            let mut progress = Instant::now();
            loop {
                std::thread::sleep(tick);
                let mut oldest = None;
                let mut now_seen = std::collections::HashMap::new();
                for pool in &watched {
                    let Some(pool) = pool.upgrade() else { return };
                    if pool.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    oldest = oldest.max(pool.oldest_job());
                    for tid in pool.long_jobs(long) {
                        let done = work_done(tid);
                        if seen.get(&tid).is_some_and(|&before| before != done) {
                            progress = Instant::now();
                        }
                        now_seen.insert(tid, done);
                    }
                }
                seen = now_seen;
                if let Some(age) = oldest.filter(|&age| age > limit) {
                    if progress.elapsed() > limit {
                        on_stall(age);
                        return;
                    }
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
        let pool = Pool::new("t", 3, Some(2));
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

    /// One user's many jobs wait behind each other, not in front of another user's; an
    /// unbounded queue takes any number without making the caller wait.
    #[test]
    fn users_take_turns_in_an_unbounded_queue() {
        let pool = Pool::new("t", 1, None);
        let (release, held) = std::sync::mpsc::channel::<()>();
        pool.run(move || {
            let _ = held.recv();
        });
        let order = Arc::new(Mutex::new(Vec::new()));
        for (user, jobs) in [(1, 5000), (2, 2)] {
            for i in 0..jobs {
                let order = order.clone();
                pool.run_for(user, move || order.lock().unwrap().push((user, i)));
            }
        }
        release.send(()).unwrap();
        pool.shutdown();
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 5002);
        assert_eq!(order[..4], [(1, 0), (2, 0), (1, 1), (2, 1)]);
    }

    #[test]
    fn watchdog_reports_a_stuck_job() {
        let pool = Pool::new("t", 1, Some(1));
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

    /// A long job that keeps working (as measuring a huge file does) is not stuck, and
    /// neither is one waiting on it; once all progress stops, the watchdog fires.
    #[test]
    fn watchdog_spares_long_jobs_that_make_progress() {
        let pool = Pool::new("t", 2, Some(2));
        let (tx, rx) = std::sync::mpsc::channel();
        watchdog(&[&pool], Duration::from_millis(300), move |age| {
            tx.send(age).unwrap();
        });
        let working = Arc::new(AtomicBool::new(true));
        let w = working.clone();
        pool.run(move || {
            let mut buf = [0u8; 4096];
            let mut zero = std::fs::File::open("/dev/zero").unwrap();
            while w.load(Ordering::Relaxed) {
                std::io::Read::read_exact(&mut zero, &mut buf).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(1500));
        });
        let (rel_tx, rel_rx) = std::sync::mpsc::channel::<()>();
        pool.run(move || {
            let _ = rel_rx.recv_timeout(Duration::from_secs(10));
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(2500)).is_err(),
            "fired while a job made progress"
        );
        working.store(false, Ordering::Relaxed);
        let age = rx
            .recv_timeout(Duration::from_secs(3))
            .expect("watchdog fired once progress stopped");
        assert!(age > Duration::from_millis(300));
        rel_tx.send(()).unwrap();
        pool.shutdown();
    }
}
