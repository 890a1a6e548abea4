//! Writer accounting and the seal bit, in one atomic word so that "seal only while no
//! writer exists" and "no write open once sealed" are each a single compare-and-swap:
//! there is no window in which a writer slips in after the check.

use std::sync::atomic::{AtomicU32, Ordering};

const SEALED: u32 = 1 << 31;

/// Count one more writer; false if the file is sealed.
pub fn add_writer(w: &AtomicU32) -> bool {
    w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        if v & SEALED != 0 {
            None
        } else {
            Some(v + 1)
        }
    })
    .is_ok()
}

/// One writer gone; returns how many remain.
pub fn drop_writer(w: &AtomicU32) -> u32 {
    let prev = w
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some((v & SEALED) | (v & !SEALED).saturating_sub(1))
        })
        .unwrap_or(0);
    (prev & !SEALED).saturating_sub(1)
}

pub fn writers(w: &AtomicU32) -> u32 {
    w.load(Ordering::Acquire) & !SEALED
}

pub fn is_sealed(w: &AtomicU32) -> bool {
    w.load(Ordering::Acquire) & SEALED != 0
}

/// Seal: succeeds only with no writer (Err = EBUSY); sealing twice is fine.
pub fn seal(w: &AtomicU32) -> Result<(), ()> {
    w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        if v & !SEALED != 0 {
            None
        } else {
            Some(SEALED)
        }
    })
    .map(drop)
    .map_err(drop)
}

pub fn unseal(w: &AtomicU32) {
    w.fetch_and(!SEALED, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_needs_no_writers_and_blocks_new_ones() {
        let w = AtomicU32::new(0);
        assert!(add_writer(&w));
        assert_eq!(seal(&w), Err(()));
        assert_eq!(drop_writer(&w), 0);
        assert_eq!(seal(&w), Ok(()));
        assert!(is_sealed(&w));
        assert!(!add_writer(&w));
        assert_eq!(writers(&w), 0);
        unseal(&w);
        assert!(add_writer(&w));
        assert_eq!(writers(&w), 1);
    }

    #[test]
    fn concurrent_writers_and_seal_never_coexist() {
        let w = std::sync::Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if add_writer(&w) {
                            assert!(!is_sealed(&w));
                            drop_writer(&w);
                        }
                        if seal(&w).is_ok() {
                            assert_eq!(writers(&w), 0);
                            unseal(&w);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(writers(&w), 0);
    }
}
