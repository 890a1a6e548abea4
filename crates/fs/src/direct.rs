//! Reading backing data that is not in the page cache straight from the disk
//! (`O_DIRECT`).
//!
//! A READ served from a cold backing file through the page cache costs the daemon's
//! CPU more than the hashing does: pages are allocated, filled, put on the LRU lists,
//! and copied out (on a VM the first touch of each freshly filled page is also a fault
//! in the host). Read directly, the disk fills one of the daemon's buffers, which are
//! recycled read after read. Measured on the 2-vCPU test VM, 1 GiB cold, two threads of
//! 1 MiB reads: 1830 ms of CPU through the page cache, 70 ms directly, at the same or a
//! higher rate. The data is hashed and verified all the same. Direct reads wait on the
//! disk without the kernel's readahead, so the mount runs them on I/O threads of their
//! own, enough to keep half a readahead window's reads in flight.
//!
//! Only data wholly absent from the page cache is read this way (`cachestat(2)`):
//! cached data is cheaper to copy than to read again, and dirty data must come from
//! the cache. Files whose file system cannot read directly at the alignment used here
//! (`statx` `STATX_DIOALIGN`), and kernels without `cachestat` (before 6.5), keep to
//! the page cache.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Alignment of direct reads: buffer address, file offset and length.
pub const ALIGN: usize = 4096;

/// Smallest READ worth reading directly: the kernel's readahead sends larger ones; a
/// smaller one is a random access, which the page cache may serve again.
pub const MIN_LEN: usize = 128 << 10;

/// A descriptor of the file behind `file` opened for direct reads, if its file system
/// supports them at [`ALIGN`].
pub fn open(file: &File) -> Option<File> {
    // SAFETY: a zeroed statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, empty path with AT_EMPTY_PATH, a statx to write.
    let r = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    let aligned = |a: u32| a != 0 && ALIGN.is_multiple_of(a as usize);
    if r != 0
        || stx.stx_mask & libc::STATX_DIOALIGN == 0
        || !aligned(stx.stx_dio_mem_align)
        || !aligned(stx.stx_dio_offset_align)
    {
        return None;
    }
    sys::reopen(file.as_fd(), libc::O_RDONLY | libc::O_DIRECT)
        .ok()
        .map(File::from)
}

/// Whether no byte of `len` bytes at `offset` of `file` is in the page cache. False when
/// that cannot be told (no `cachestat` on this kernel).
pub fn uncached(file: &File, offset: u64, len: usize) -> bool {
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    // `struct cachestat_range` and `struct cachestat` of <linux/mman.h>.
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    /// The same number on every architecture (the unified syscall table, 6.5).
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range {
        off: offset,
        len: len as u64,
    };
    let mut stat = Stat::default();
    // SAFETY: valid descriptor, pointers to a live range and stat, flags 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache == 0
}

/// A byte buffer whose start is aligned to [`ALIGN`], grown on demand.
#[derive(Default)]
pub struct AlignedBuf {
    bytes: Vec<u8>,
}

impl AlignedBuf {
    /// The first `len` bytes, aligned. What they held is kept unless the buffer had to
    /// grow (then they are zero).
    pub fn get(&mut self, len: usize) -> &mut [u8] {
        if self.bytes.len() < len + ALIGN {
            // A new allocation moves the start: the slack covers any alignment.
            self.bytes = vec![0; len.next_multiple_of(ALIGN) + ALIGN];
        }
        let skip = self.bytes.as_ptr().align_offset(ALIGN);
        &mut self.bytes[skip..skip + len]
    }
}

/// Read up to `buf.len()` bytes at `offset` from `direct` (a descriptor from [`open`]);
/// `buf`, `offset` and the length must be aligned to [`ALIGN`]. Returns the bytes
/// read: fewer at the end of the file.
pub fn read_at(direct: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    debug_assert!(
        (buf.as_ptr() as usize).is_multiple_of(ALIGN)
            && buf.len().is_multiple_of(ALIGN)
            && offset.is_multiple_of(ALIGN as u64)
    );
    loop {
        match direct.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn aligned_buffers_stay_aligned_as_they_grow() {
        let mut b = AlignedBuf::default();
        for len in [1, 4096, 5000, 1 << 20, 10] {
            let s = b.get(len);
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
        }
    }

    /// On the disk's file system (where the tests build): a file written and flushed,
    /// then dropped from the page cache, reads the same directly; a cached range is
    /// not `uncached`.
    #[test]
    fn direct_reads_of_an_evicted_file() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target");
        let dir = tempfile::tempdir_in(base).unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * ALIGN + 100)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        let Some(direct) = open(&f) else {
            eprintln!("no direct reads on this file system: untested");
            return;
        };
        // SAFETY: fadvise on a descriptor we hold.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let probe = uncached(&f, 0, data.len());
        let mut buf = AlignedBuf::default();
        let b = buf.get(4 * ALIGN);
        let n = read_at(&direct, b, 0).unwrap();
        assert_eq!(&b[..n], &data[..], "direct read of the whole file");
        let n = read_at(&direct, &mut b[..ALIGN], 2 * ALIGN as u64).unwrap();
        assert_eq!(&b[..n], &data[2 * ALIGN..3 * ALIGN]);
        // The direct reads left the page cache empty; a buffered read fills it.
        if probe {
            assert!(uncached(&f, 0, data.len()));
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut [0u8; 10], 0).unwrap();
            assert!(!uncached(&f, 0, data.len()));
        } else {
            eprintln!("no cachestat on this kernel: page cache probe untested");
        }
    }
}
