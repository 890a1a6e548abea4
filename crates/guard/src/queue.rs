//! The bounded, de-duplicating queue of deferred jobs (lesson 2).
//!
//! A job is keyed by file identity and carries the generation it was queued for; a
//! second job for a key already waiting merges into it (the newer generation and
//! payload win), so a burst of "last writer gone" events costs one re-measurement.
//! Pushing never blocks: a full queue is reported to the caller as
//! [`Push::Full`] and nothing is dropped silently. One lock (`inner`) guards the
//! queue; it is never held while a job runs.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::sync::{Condvar, Mutex};

/// What became of a pushed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued as a new job.
    Queued,
    /// Merged into a job for the same key that was already waiting.
    Merged,
    /// The queue is full; the job was not queued.
    Full,
    /// The queue is shut down; the job was not queued.
    Closed,
}

struct Inner<K, V> {
    order: VecDeque<K>,
    jobs: HashMap<K, (u64, V)>,
    running: usize,
    closed: bool,
}

/// A bounded de-duplicating FIFO of `(key, generation, payload)` jobs.
pub struct DedupQueue<K, V> {
    inner: Mutex<Inner<K, V>>,
    ready: Condvar,
    idle: Condvar,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> DedupQueue<K, V> {
    /// A queue holding at most `capacity` distinct keys.
    pub fn new(capacity: usize) -> Self {
        DedupQueue {
            inner: Mutex::new(Inner {
                order: VecDeque::new(),
                jobs: HashMap::new(),
                running: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            idle: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a job; never blocks.
    pub fn push(&self, key: K, generation: u64, payload: V) -> Push {
        let mut q = self.lock();
        if q.closed {
            return Push::Closed;
        }
        if let Some(job) = q.jobs.get_mut(&key) {
            if generation >= job.0 {
                *job = (generation, payload);
            }
            return Push::Merged;
        }
        if q.jobs.len() >= self.capacity {
            return Push::Full;
        }
        q.order.push_back(key.clone());
        q.jobs.insert(key, (generation, payload));
        drop(q);
        self.ready.notify_one();
        Push::Queued
    }

    /// Wait for a job; `None` once the queue is closed and empty. The caller must call
    /// [`DedupQueue::done`] after running it.
    pub fn pop(&self) -> Option<(K, u64, V)> {
        let mut q = self.lock();
        loop {
            if let Some(key) = q.order.pop_front() {
                if let Some((g, v)) = q.jobs.remove(&key) {
                    q.running += 1;
                    return Some((key, g, v));
                }
                continue;
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A job obtained from [`DedupQueue::pop`] has finished.
    pub fn done(&self) {
        let mut q = self.lock();
        q.running -= 1;
        let idle = q.running == 0 && q.order.is_empty();
        drop(q);
        if idle {
            self.idle.notify_all();
        }
    }

    /// Block until no job is queued or running.
    pub fn wait_idle(&self) {
        let mut q = self.lock();
        while q.running != 0 || !q.order.is_empty() {
            q = self.idle.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Jobs waiting (not running).
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stop accepting jobs; workers drain what is queued and then get `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}
