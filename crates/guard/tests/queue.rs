//! The deferred-job queue on its own (its concurrency is model-checked in loom.rs).

use vigil_guard::queue::{DedupQueue, Push};

#[test]
fn bounded_dedup_fifo() {
    let q = DedupQueue::new(2);
    assert_eq!(q.push("a", 1, 'x'), Push::Queued);
    assert_eq!(q.push("b", 1, 'y'), Push::Queued);
    assert_eq!(q.push("c", 1, 'z'), Push::Full);
    assert_eq!(q.push("a", 3, 'X'), Push::Merged);
    assert_eq!(q.push("a", 2, 'o'), Push::Merged, "an older job merges");
    assert_eq!(q.len(), 2);
    assert_eq!(
        q.pop(),
        Some(("a", 3, 'X')),
        "newest generation wins, FIFO order kept"
    );
    assert_eq!(q.push("c", 1, 'z'), Push::Queued);
    q.done();
    q.close();
    assert_eq!(q.push("d", 1, 'w'), Push::Closed);
    assert_eq!(q.pop(), Some(("b", 1, 'y')));
    q.done();
    assert_eq!(q.pop(), Some(("c", 1, 'z')));
    q.done();
    assert_eq!(q.pop(), None);
    q.wait_idle();
}
