//! The generation/publish protocol of one file (lesson 1).
//!
//! # Locks and their order
//!
//! Each file has exactly three locks, always taken in this order:
//!
//! 1. **outer** — [`GenState::measure_lock`]: serialises measurements of the file and
//!    is held across all of a measurement's I/O (reading, hashing, tree building,
//!    xattr refresh). Nothing on the write/invalidate path ever takes it.
//! 2. **evm** — `Shared::evm_lock` (in `guard.rs`, striped over files): held while the
//!    xattrs EVM covers are checked or rewritten (an IMA value and its HMAC together),
//!    within a measurement or on its own for a metadata change; only xattr I/O under
//!    it, and no other EVM lock.
//! 3. **inner** — the result slot (`slot`): held only to copy or replace the published
//!    result, never across I/O and never while waiting for anything.
//!
//! `FileState::own_version` (in `guard.rs`) is a leaf beside them: it may be taken
//! under any of the three, and nothing is taken under it.
//!
//! The invalidation path (writes, truncates, attribute/xattr changes, renames over the
//! file) takes **no lock at all**: it updates one atomic word holding the generation,
//! the number of modifications in flight and the dirty bit.
//!
//! # Protocol
//!
//! A measurement takes a [`Ticket`] (the word as it was when the measurement began),
//! reads the file, writes its result into the slot tagged with the ticket's generation,
//! and then clears the dirty bit with a compare-and-swap that succeeds only if the word
//! is still exactly the ticket: no invalidation happened and no modification was in
//! flight. A lookup trusts the slot only if the word is clean and the slot's generation
//! equals the word's. Writers bracket every content change with
//! [`GenState::begin_modify`]/[`GenState::end_modify`], each of which bumps the
//! generation and sets the dirty bit, so a measurement that overlaps a change in any
//! way cannot publish, and no lookup hits while a change is in flight.

use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering, TryLockError};

const DIRTY: u64 = 1;
const INFLIGHT_ONE: u64 = 1 << 1;
const INFLIGHT_MASK: u64 = ((1 << 23) - 1) << 1;
const GEN_SHIFT: u32 = 24;
const GEN_ONE: u64 = 1 << GEN_SHIFT;

/// Generation word + published slot + the outer measurement lock of one file.
pub struct GenState<T> {
    word: AtomicU64,
    slot: Mutex<Option<(u64, T)>>,
    measure: Mutex<()>,
}

/// The state word as a measurement found it when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// The generation the measurement started from.
    pub fn generation(self) -> u64 {
        self.0 >> GEN_SHIFT
    }
}

impl<T: Clone> Default for GenState<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> GenState<T> {
    /// A never-measured file: generation 0, dirty.
    pub fn new() -> Self {
        GenState {
            word: AtomicU64::new(DIRTY),
            slot: Mutex::new(None),
            measure: Mutex::new(()),
        }
    }

    /// Apply `f` atomically; returns the generation of the new word.
    fn update(&self, f: impl Fn(u64) -> u64) -> u64 {
        let prev = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(f(w)))
            .unwrap_or_else(|w| w);
        f(prev) >> GEN_SHIFT
    }

    /// A change that is complete when this is called (attribute, xattr, rename):
    /// bump the generation, set dirty. Never blocks.
    pub fn invalidate(&self) -> u64 {
        self.update(|w| (w.wrapping_add(GEN_ONE)) | DIRTY)
    }

    /// A content change is about to start; returns the (in-flight) generation.
    /// Never blocks.
    pub fn begin_modify(&self) -> u64 {
        self.update(|w| w.wrapping_add(GEN_ONE + INFLIGHT_ONE) | DIRTY)
    }

    /// The content change begun by [`GenState::begin_modify`] is complete; returns
    /// the generation the new content has. Never blocks.
    pub fn end_modify(&self) -> u64 {
        self.update(|w| {
            debug_assert!(w & INFLIGHT_MASK != 0, "end_modify without begin_modify");
            w.wrapping_add(GEN_ONE).wrapping_sub(INFLIGHT_ONE) | DIRTY
        })
    }

    /// Whether a content change is in flight (begun, not yet ended).
    pub fn in_flight(&self) -> bool {
        self.word.load(Ordering::Acquire) & INFLIGHT_MASK != 0
    }

    /// The outer lock; hold it for the whole measurement.
    pub fn measure_lock(&self) -> MutexGuard<'_, ()> {
        self.measure.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outer lock if it is free now.
    pub fn try_measure_lock(&self) -> Option<MutexGuard<'_, ()>> {
        match self.measure.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Begin a measurement (call with the outer lock held).
    pub fn ticket(&self) -> Ticket {
        Ticket(self.word.load(Ordering::Acquire))
    }

    /// Whether nothing has changed since `t` (for cancelling long I/O early).
    pub fn still_current(&self, t: Ticket) -> bool {
        self.word.load(Ordering::Acquire) == t.0 && t.0 & INFLIGHT_MASK == 0
    }

    /// Publish `value` measured under ticket `t`. Returns false (and leaves the file
    /// dirty) if the file changed or was being changed since `t` was taken.
    pub fn publish(&self, t: Ticket, value: T) -> bool {
        if t.0 & INFLIGHT_MASK != 0 {
            return false;
        }
        // The value replaced is dropped after the lock is released: dropping it may
        // do I/O (a measurement's last hold on its stored tree deletes the tree).
        let _replaced = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if self.word.load(Ordering::Acquire) != t.0 {
                return false;
            }
            slot.replace((t.generation(), value))
        };
        self.word
            .compare_exchange(t.0, t.0 & !DIRTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The published value, if the file is clean and the value is for its current
    /// generation.
    pub fn lookup(&self) -> Option<T> {
        let w = self.word.load(Ordering::Acquire);
        if w & (DIRTY | INFLIGHT_MASK) != 0 {
            return None;
        }
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((g, v)) if *g == w >> GEN_SHIFT => Some(v.clone()),
            _ => None,
        }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> GEN_SHIFT
    }

    /// Whether the file has no valid published result.
    pub fn is_dirty(&self) -> bool {
        self.word.load(Ordering::Acquire) & (DIRTY | INFLIGHT_MASK) != 0
    }
}
