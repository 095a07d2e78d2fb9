//! An arena allocator for plugins, opted into with the SDK's `arena`
//! feature. Only compiled for WebAssembly.
//!
//! By default the host runs every evaluation in a fresh instance and throws
//! the instance away afterwards, so a plugin's heap rarely needs to reuse
//! freed memory. This allocator hands out memory by bumping a pointer; it
//! takes back the most recent allocation when that is freed and grows it in
//! place when that is reallocated (the common pattern of a growing `String`
//! or `Vec`), and frees nothing else. In the `database` plugin this removed
//! about a quarter of the guest's work (`dlmalloc`/`dlfree` in the profile;
//! BENCHMARKS.md).
//!
//! The arena counts its live blocks. Whenever the count drops to zero,
//! every block it ever handed out has been freed, so it rewinds to the
//! start of its memory. That happens at the end of each call (once the
//! host's post-return has freed the answer), so an instance the host
//! reuses (`Binding::reuse_instances`) serves every call from the same,
//! already resident memory; and within a call, whenever everything so far
//! has been freed. A region of grown memory the arena was using when it
//! rewound is kept and used again before memory is grown any further.
//!
//! The trade-off: while anything is live, freed blocks other than the most
//! recent are not reused. A plugin that allocates and frees much more than
//! its memory cap in one call (a long loop building throw-away strings
//! while holding on to something) should keep the default allocator. A
//! block that outlives every call (a lazily built static that is never
//! dropped, such as the buffer behind `println!`) keeps the count above
//! zero for good: the arena then never rewinds, and with warm-instance reuse
//! on the host its memory grows with every call until the binding's
//! `Reuse::max_memory_bytes` bound discards the instance. Grown memory is
//! also left unused when it cannot be reused as one piece: the rest of a
//! region the arena leaves for a larger spare or for non-adjacent new pages,
//! and the smaller of two spare regions.
//!
//! The first 768 KiB come from a static buffer; past it the arena grows
//! linear memory itself and owns only the pages it grew, so it never hands
//! out memory that wasi-libc's `malloc` manages. (The component's
//! `cabi_realloc` is Rust's allocator, so lists that WASI calls made by C
//! code return would come from the arena; the example plugins make none.)

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::ptr;

/// WebAssembly page size.
const PAGE: usize = 64 * 1024;
/// Memory is grown at least this much at a time (1 MiB), so a call makes
/// few `memory.grow` requests to the host.
const MIN_GROWTH: usize = 16 * PAGE;
/// The arena's first region: a static buffer (zero pages in `.bss`, inside
/// the module's initial memory), so that a typical evaluation never grows
/// memory. Growing, and the shrink that resets a pooled slot afterwards, are
/// `mprotect` calls on the host that serialise threads. Static rather than
/// the space above `__heap_base`, which wasi-libc's own `malloc` (still
/// reachable from std and from C code) would also take.
const STATIC_REGION: usize = 768 * 1024;

#[repr(C, align(16))]
struct Region(UnsafeCell<[u8; STATIC_REGION]>);

// SAFETY: only the arena touches the region, and wasm32-wasip2 components
// are single-threaded.
#[allow(unsafe_code)]
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; STATIC_REGION]));

/// The bump allocator. Installed as the global allocator by the SDK when the
/// `arena` feature is on.
#[derive(Debug)]
pub struct Arena {
    /// Where the next allocation may start.
    next: Cell<usize>,
    /// The end of the memory the arena owns.
    end: Cell<usize>,
    /// Where the most recent allocation starts.
    last: Cell<usize>,
    /// Whether `next`/`end` describe a region yet.
    started: Cell<bool>,
    /// Where the current region starts.
    region: Cell<usize>,
    /// A region grown earlier and left when the arena rewound: reused
    /// before memory is grown again. `(start, end)`, or `(0, 0)`.
    spare: Cell<(usize, usize)>,
    /// Blocks handed out and not yet freed.
    live: Cell<usize>,
}

// SAFETY: wasm32-wasip2 components are single-threaded (no threads or
// shared memory), so the cells are never touched from two threads.
#[allow(unsafe_code)]
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena that owns no memory yet.
    pub const fn new() -> Self {
        Arena {
            next: Cell::new(0),
            end: Cell::new(0),
            last: Cell::new(usize::MAX),
            started: Cell::new(false),
            region: Cell::new(0),
            spare: Cell::new((0, 0)),
            live: Cell::new(0),
        }
    }

    /// Starts over at the static buffer. Only when no block is live.
    fn rewind(&self) {
        let region = REGION.0.get() as usize;
        if self.started.get() && self.region.get() != region {
            // Keep the grown region the arena was in, to use again before
            // growing memory (or the spare kept earlier, if that is larger:
            // nothing is live in either).
            let (spare_start, spare_end) = self.spare.get();
            if self.end.get() - self.region.get() > spare_end - spare_start {
                self.spare.set((self.region.get(), self.end.get()));
            }
        }
        self.next.set(region);
        self.end.set(region + STATIC_REGION);
        self.region.set(region);
        self.last.set(usize::MAX);
        self.started.set(true);
    }

    /// Switches to the spare region when it can hold `size` bytes at
    /// `align`.
    fn take_spare(&self, align: usize, size: usize) -> Option<usize> {
        let (spare_start, spare_end) = self.spare.get();
        let start = spare_start.checked_add(align - 1)? & !(align - 1);
        if spare_end == 0 || start.checked_add(size)? > spare_end {
            return None;
        }
        self.spare.set((0, 0));
        self.region.set(spare_start);
        self.next.set(spare_start);
        self.end.set(spare_end);
        Some(start)
    }

    /// Grows linear memory by at least `extra` bytes right after the
    /// arena's region, which must end at the top of memory; whether it did.
    fn grow_in_place(&self, extra: usize) -> bool {
        let top = core::arch::wasm32::memory_size(0).checked_mul(PAGE);
        if top != Some(self.end.get()) {
            return false;
        }
        let pages = extra.max(MIN_GROWTH).div_ceil(PAGE);
        let Some(end) = pages
            .checked_mul(PAGE)
            .and_then(|bytes| self.end.get().checked_add(bytes))
        else {
            return false;
        };
        // Components are single-threaded: nothing can grow memory between
        // the size check above and this, so the new pages follow `end`.
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.set(end);
        true
    }

    /// Makes `[start, start + size)` available, growing linear memory when
    /// needed. Returns the (aligned) start, or `None` when memory cannot
    /// grow (the host's cap).
    fn reserve(&self, align: usize, size: usize) -> Option<usize> {
        if !self.started.get() {
            self.rewind();
        }
        let mut start = self.next.get().checked_add(align - 1)? & !(align - 1);
        let mut end = start.checked_add(size)?;
        if end > self.end.get() {
            if let Some(start) = self.take_spare(align, size) {
                return Some(start);
            }
            let wanted = (end - self.end.get()).max(MIN_GROWTH);
            let pages = wanted.div_ceil(PAGE);
            let previous = core::arch::wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return None;
            }
            // At 4 GiB the byte address no longer fits in a wasm32 usize.
            let grown_from = previous.checked_mul(PAGE)?;
            let grown_to = grown_from.checked_add(pages.checked_mul(PAGE)?)?;
            if grown_from != self.end.get() {
                // The new pages do not follow the arena's current region
                // (it was the static buffer, or something else grew memory
                // since): start over at the new pages.
                start = grown_from.checked_add(align - 1)? & !(align - 1);
                end = start.checked_add(size)?;
                self.next.set(grown_from);
                self.region.set(grown_from);
            }
            self.end.set(grown_to);
            if end > self.end.get() {
                return self.reserve(align, size);
            }
        }
        Some(start)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

#[allow(unsafe_code)]
// SAFETY: every block handed out lies in memory only the arena uses (its
// static buffer, or pages it grew itself), is aligned as asked, and is never
// handed out again while live: the pointer only moves back over the most
// recent block when that block is freed, or to the start when no block is
// live at all (every `alloc` counts one block, every `dealloc` one less; a
// `realloc` that moves a block frees the old one). The arena only moves on
// to the spare region, which was kept at a rewind (nothing live in it) and
// is forgotten once taken, or to pages it has just grown.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.reserve(layout.align(), layout.size()) {
            Some(start) => {
                self.last.set(start);
                self.next.set(start + layout.size());
                self.live.set(self.live.get() + 1);
                start as *mut u8
            }
            None => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let start = block as usize;
        // Every block freed here was handed out by `alloc` and counted, so
        // the count is at least one (a zero would be a caller breaking the
        // `GlobalAlloc` contract; then nothing is counted).
        let Some(live) = self.live.get().checked_sub(1) else {
            debug_assert!(false, "arena: freed a block it never handed out");
            return;
        };
        self.live.set(live);
        if live == 0 {
            self.rewind();
        } else if start == self.last.get() && start + layout.size() == self.next.get() {
            self.next.set(start);
            self.last.set(usize::MAX);
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = block as usize;
        let is_last = start == self.last.get() && start + layout.size() == self.next.get();
        if is_last {
            // Grow or shrink in place: the block is the arena's tip.
            let fits = match start.checked_add(new_size) {
                Some(end) if end <= self.end.get() => true,
                // Make room right after the tip, when the region is at the
                // top of memory; otherwise the block moves.
                Some(end) => self.grow_in_place(end - self.end.get()),
                None => false,
            };
            if fits {
                self.next.set(start + new_size);
                return block;
            }
        } else if new_size <= layout.size() {
            return block;
        }
        // SAFETY: the caller's contract: `layout` fits `block` and the new
        // layout has the same alignment and a valid size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let fresh = unsafe { self.alloc(new_layout) };
        if !fresh.is_null() {
            // SAFETY: both blocks are live, distinct, and at least
            // `min(old, new)` bytes long; the old block is then freed, as
            // `realloc` does (the new block keeps the count above zero).
            unsafe {
                ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        fresh
    }
}
