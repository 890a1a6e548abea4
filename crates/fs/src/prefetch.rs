//! Reading a backing file ahead of a sequential reader of the mount.
//!
//! A READ worker that finds the backing pages still on their way from the disk waits
//! for them, and with one worker per CPU the CPU then idles. The backing file's own
//! readahead, driven by the workers' `pread`s, starts late: READs of one window arrive
//! together and are served side by side. So a prefetch thread reads the backing file
//! sequentially, [`LEAD`] ahead of the furthest READ, through `sendfile` to `/dev/null`
//! (the normal readahead path, in large folios, and no copy). It only fills the backing
//! file's page cache: what is served is still read and verified by the READ worker.

use std::fs::File;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// How far ahead of the furthest sequential READ the backing file is read.
pub const LEAD: u64 = 32 << 20;

/// The sequential stream of READs on one handle.
#[derive(Default)]
pub struct Stream {
    /// Where the next READ starts if the reader goes on sequentially.
    next: AtomicU64,
    /// How far the backing file has been asked to be read ahead.
    ahead: AtomicU64,
}

impl Stream {
    /// Note a READ of `size` bytes at `offset`. Returns the range to read ahead when
    /// this READ continues a sequential stream of `full`-size READs (readahead) and
    /// less than half the lead is left.
    pub fn read(&self, offset: u64, size: u32, full: u32) -> Option<Range<u64>> {
        let end = offset.saturating_add(size.into());
        let expected = self.next.swap(end, Ordering::Relaxed);
        if size != full || expected != offset {
            return None;
        }
        let ahead = self.ahead.load(Ordering::Relaxed);
        if ahead >= end.saturating_add(LEAD / 2) {
            return None;
        }
        let to = end.saturating_add(LEAD);
        self.ahead
            .compare_exchange(ahead, to, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(ahead.max(end)..to)
    }
}

/// Bring `range` of `file` into the page cache (stops at end of file or on an error:
/// this is only a hint).
pub fn fetch(file: &File, range: Range<u64>) {
    static DEV_NULL: OnceLock<Option<File>> = OnceLock::new();
    let Some(null) = DEV_NULL.get_or_init(|| File::options().write(true).open("/dev/null").ok())
    else {
        return;
    };
    let mut off = range.start;
    while off < range.end {
        let len = (range.end - off) as usize;
        match rustix::fs::sendfile(null, file, Some(&mut off), len) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    const MIB: u32 = 1 << 20;

    #[test]
    fn sequential_full_reads_keep_the_lead() {
        let s = Stream::default();
        // The first READ at 0 starts a stream: read ahead up to LEAD past it.
        assert_eq!(s.read(0, MIB, MIB), Some(MIB as u64..MIB as u64 + LEAD));
        // Later READs ask again only when less than half the lead is left, and only
        // for what was not asked yet.
        let mut asked = MIB as u64 + LEAD;
        let mut asks = 0;
        for i in 1..64u64 {
            if let Some(r) = s.read(i * MIB as u64, MIB, MIB) {
                assert_eq!(r.start, asked, "contiguous with what was asked before");
                assert!(r.end - (i + 1) * MIB as u64 == LEAD);
                asked = r.end;
                asks += 1;
            }
            let end = (i + 1) * MIB as u64;
            assert!(asked >= end + LEAD / 2, "lead kept at READ {i}");
        }
        assert!(asks > 0);
    }

    #[test]
    fn random_or_small_reads_start_nothing() {
        let s = Stream::default();
        assert_eq!(
            s.read(5 * MIB as u64, MIB, MIB),
            None,
            "not where the stream was"
        );
        assert_eq!(s.read(9 * MIB as u64, MIB, MIB), None, "a jump");
        let s = Stream::default();
        assert_eq!(s.read(0, 4096, MIB), None, "a small READ");
        assert_eq!(s.read(4096, 4096, MIB), None);
    }

    fn resident_pages(f: &File, len: usize) -> usize {
        // SAFETY: a shared read-only mapping of a file we hold open, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `vec` has one byte per page of the mapping.
        let r = unsafe { libc::mincore(p, len, vec.as_mut_ptr()) };
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(p, len) };
        assert_eq!(r, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn fetch_brings_the_range_into_the_page_cache() {
        // Under target/: a disk filesystem (tmpfs would keep the pages).
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/fs-tests");
        std::fs::create_dir_all(base).unwrap();
        let dir = tempfile::tempdir_in(base).unwrap();
        let path = dir.path().join("f");
        let len = 8 << 20;
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; len]).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        // SAFETY: plain syscall on a valid descriptor.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
        let before = resident_pages(&f, len);
        assert!(before < len / 4096 / 2, "{before} pages still cached");
        fetch(&f, 2 << 20..6 << 20);
        let after = resident_pages(&f, len);
        assert!(
            after >= before + (4 << 20) / 4096 - 16,
            "{before} -> {after}"
        );
        // Past the end of the file: stops there.
        fetch(&f, (len as u64 - 4096)..(len as u64 + (1 << 30)));
    }
}
