//! The memory plan and the arena: every buffer a session uses is a slice of one allocation,
//! sized before anything large is allocated and carved into disjoint, 64-byte aligned slots.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{Result, RuntimeError};

/// Alignment of every slot (a cache line; enough for every SIMD load).
pub const SLOT_ALIGN: usize = 64;

/// One named entry of a memory plan.
#[derive(Debug, Clone)]
pub struct PlanItem {
    /// What the bytes are for.
    pub name: &'static str,
    /// Offset in the arena.
    pub offset: usize,
    /// Size in bytes.
    pub bytes: usize,
}

/// The itemised layout of an arena.
#[derive(Debug, Clone, Default)]
pub struct MemoryPlan {
    items: Vec<PlanItem>,
    total: usize,
}

/// A typed slot of the plan: `len` values of `T` at `offset`.
#[derive(Debug)]
pub struct Slot<T> {
    offset: usize,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Slot<T> {}

impl<T> Slot<T> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the slot is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl MemoryPlan {
    /// Adds a slot of `len` values of `T`.
    pub fn add<T>(&mut self, name: &'static str, len: usize) -> Result<Slot<T>> {
        let too_big = || RuntimeError::InvalidParameter {
            name: "memory plan",
            problem: format!("{name}: {len} elements overflow"),
        };
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(too_big)?;
        debug_assert!(std::mem::align_of::<T>() <= SLOT_ALIGN);
        let offset = self.total;
        self.total = offset
            .checked_add(bytes.div_ceil(SLOT_ALIGN) * SLOT_ALIGN)
            .ok_or_else(too_big)?;
        self.items.push(PlanItem { name, offset, bytes });
        Ok(Slot {
            offset,
            len,
            _t: PhantomData,
        })
    }

    /// Adds a slot of `len` bytes whose offset in the arena is a multiple of `align` (a power of
    /// two up to 4096, the arena's own alignment): buffers for `O_DIRECT` reads.
    pub fn add_aligned(&mut self, name: &'static str, len: usize, align: usize) -> Result<Slot<u8>> {
        debug_assert!(align.is_power_of_two() && align <= 4096);
        let start = self.total.next_multiple_of(align.max(SLOT_ALIGN));
        if start > self.total {
            self.items.push(PlanItem {
                name: "alignment",
                offset: self.total,
                bytes: start - self.total,
            });
            self.total = start;
        }
        self.add(name, len)
    }

    /// The items, in order.
    pub fn items(&self) -> &[PlanItem] {
        &self.items
    }

    /// Total bytes.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// One zeroed, aligned allocation holding every slot of a plan.
pub struct Arena {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the arena is plain memory owned by one session; access is coordinated by the session
// (slots are disjoint, parallel regions write disjoint ranges).
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena").field("bytes", &self.layout.size()).finish()
    }
}

/// Locks `len` bytes at `ptr` in RAM (faulting them in), or says why not.
pub fn lock(ptr: *const u8, len: usize, what: &str) -> Result<()> {
    let Some(p) = NonNull::new(ptr as *mut std::ffi::c_void) else {
        return Ok(());
    };
    // SAFETY: mlock only changes the residency of pages of our own mappings; it does not touch
    // their contents. The range is a live allocation or mapping of `len` bytes.
    unsafe { nix::sys::mman::mlock(p, len) }.map_err(|errno| RuntimeError::System {
        what: format!("locking {what} ({:.1} MiB) in RAM", len as f64 / (1 << 20) as f64),
        errno,
        hint: "raise the locked-memory limit (ulimit -l, LimitMEMLOCK= in a systemd unit) or run without --mlock",
    })
}

impl Arena {
    /// Bytes the arena of `plan` allocates (the slots rounded up to whole pages).
    pub fn size_for(plan: &MemoryPlan) -> usize {
        plan.total().max(4096).div_ceil(4096) * 4096
    }

    /// The base address.
    pub fn base(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Allocates the plan's total (at least one page).
    pub fn new(plan: &MemoryPlan) -> Result<Arena> {
        Self::with_huge_pages(plan, false)
    }

    /// As [`new`](Self::new); with `huge`, the arena is 2 MiB aligned and advised to use
    /// transparent huge pages (`MADV_HUGEPAGE`; fewer TLB misses over a large KV cache). The
    /// advice is best effort: a kernel without THP keeps 4 KiB pages.
    pub fn with_huge_pages(plan: &MemoryPlan, huge: bool) -> Result<Arena> {
        let size = Self::size_for(plan);
        let align = if huge { 2 << 20 } else { 4096 };
        let size = if huge { size.next_multiple_of(align) } else { size };
        let layout = Layout::from_size_align(size, align).map_err(|e| RuntimeError::InvalidParameter {
            name: "memory plan",
            problem: e.to_string(),
        })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(RuntimeError::OutOfMemory {
            what: "the session arena",
            bytes: size as u64,
            hint: "lower --ctx or --batch, use --kv-type q8_0, or raise the memory limit",
        })?;
        if huge {
            // SAFETY: the range is exactly our allocation; the advice changes no contents.
            let _ = unsafe { nix::sys::mman::madvise(ptr.cast(), size, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE) };
        }
        Ok(Arena { ptr, layout })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Whether the arena is empty (never).
    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }

    /// The raw pointer of a slot.
    pub fn ptr<T>(&self, s: Slot<T>) -> *mut T {
        debug_assert!(s.offset + s.len * std::mem::size_of::<T>() <= self.layout.size());
        // SAFETY: the slot lies inside the allocation (the plan that sized it produced the slot).
        unsafe { self.ptr.as_ptr().add(s.offset).cast() }
    }

    /// A slot as a mutable slice.
    ///
    /// # Safety
    /// No other live reference may overlap the slot (slots of one plan are disjoint; the caller
    /// must not take the same slot twice).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice<T>(&self, s: Slot<T>) -> &mut [T] {
        // SAFETY: in bounds (see `ptr`), aligned to SLOT_ALIGN, zero-initialised memory is valid
        // for the plain numeric types stored here; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(s), s.len) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
