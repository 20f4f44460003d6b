//! A global allocator that forwards to the system allocator and counts, while enabled, every
//! allocation, reallocation and free of every thread.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc::new();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Heap calls counted between [`CountingAlloc::start`] and [`CountingAlloc::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocCounts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: usize,
    /// `realloc` calls.
    pub reallocs: usize,
    /// `dealloc` calls.
    pub frees: usize,
}

impl AllocCounts {
    /// Whether no heap call was counted.
    pub fn is_zero(&self) -> bool {
        *self == AllocCounts::default()
    }
}

/// The counting allocator (see the module docs). Counts every thread: tests that read it must
/// not run concurrently with others of the same binary that allocate.
#[derive(Debug)]
pub struct CountingAlloc {
    enabled: AtomicBool,
    allocs: AtomicUsize,
    reallocs: AtomicUsize,
    frees: AtomicUsize,
    largest: AtomicUsize,
}

impl CountingAlloc {
    /// A counter, disabled.
    pub const fn new() -> CountingAlloc {
        CountingAlloc {
            enabled: AtomicBool::new(false),
            allocs: AtomicUsize::new(0),
            reallocs: AtomicUsize::new(0),
            frees: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
        }
    }

    /// Zeroes the counts and starts counting.
    pub fn start(&self) {
        self.allocs.store(0, Ordering::SeqCst);
        self.reallocs.store(0, Ordering::SeqCst);
        self.frees.store(0, Ordering::SeqCst);
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Stops counting and returns the counts since [`start`](Self::start).
    pub fn stop(&self) -> AllocCounts {
        self.enabled.store(false, Ordering::SeqCst);
        self.counts()
    }

    /// The counts so far.
    pub fn counts(&self) -> AllocCounts {
        AllocCounts {
            allocs: self.allocs.load(Ordering::SeqCst),
            reallocs: self.reallocs.load(Ordering::SeqCst),
            frees: self.frees.load(Ordering::SeqCst),
        }
    }

    /// Zeroes the largest request seen (counted whether or not counting is enabled).
    pub fn reset_largest(&self) {
        self.largest.store(0, Ordering::SeqCst);
    }

    /// The largest single request (bytes) since [`reset_largest`](Self::reset_largest).
    pub fn largest(&self) -> usize {
        self.largest.load(Ordering::SeqCst)
    }

    fn count(&self, counter: &AtomicUsize, size: usize) {
        if self.enabled.load(Ordering::Relaxed) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.largest.fetch_max(size, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.count(&self.allocs, l.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.count(&self.allocs, l.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        self.count(&self.reallocs, n);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if self.enabled.load(Ordering::Relaxed) {
            self.frees.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}
