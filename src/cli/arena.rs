//! The `kiln` binary's allocator: the system allocator, plus a bump arena
//! that a batch command which exits right after its work (`kiln check`)
//! switches on.
//!
//! `kiln check` builds every module, keeps it until exit and frees
//! nothing (see [`super::commands::check`]): for a file of many small
//! functions the allocator's own work (a `malloc` per table of every
//! function, each with its header) and the page faults of the heap were a
//! quarter of the command's time. In the arena an allocation is an atomic
//! bump of a pointer into one large reservation backed by transparent huge
//! pages where the kernel offers them (past its first few MiB, see
//! [`SMALL_PAGES`]), and a free is nothing.
//!
//! Rules that keep it sound and bounded:
//! - The arena is only switched on ([`enable`]), never off. Memory
//!   allocated before (arguments, thread start) stays the system
//!   allocator's; [`ArenaAlloc::dealloc`] and [`ArenaAlloc::realloc`] tell
//!   the two apart by address.
//! - A block growing in the arena is copied (unless it is the last one
//!   handed out), so the arena holds the old copies too: at most as much
//!   again as the live blocks, since growth is geometric. A block that
//!   grows past [`SMALL`] moves to the system allocator, whose `realloc` of
//!   a mapped block moves no bytes. Below that, staying in the arena pays:
//!   a module's table of 20,000 functions (8 MB) costs a few huge-page
//!   faults there instead of 2,000 small-page faults.
//! - When the reservation is used up, or could not be made, allocations
//!   go to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bytes of address space reserved (not committed: pages are backed when
/// first written).
const RESERVE: usize = 16 << 30;
/// Alignment of the arena's start: a huge page.
const HUGE: usize = 2 << 20;
/// A block growing to this size or more leaves the arena (see the module
/// docs).
const SMALL: usize = 16 << 20;
/// When the caller expects a small run ([`enable`]), the first bytes of
/// the arena stay in small pages: a short file touches a few dozen of
/// them, where the first huge page alone would cost more than the whole
/// parse (the kernel clears 2 MiB for it). Past this offset the rest of
/// the arena is advised into huge pages, once. Otherwise huge pages start
/// at once: a small page costs about as much to fault in as 20 KiB of a
/// huge page (measured here: 1 MiB of small pages ~600 µs, a huge page
/// ~215 µs).
const SMALL_PAGES: usize = 4 << 20;

/// The arena `[BASE, END)`, and the next free byte (all 0 when off).
static BASE: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Where huge pages start to be advised: when a block ends past it, the
/// rest of the arena from there is advised (and this becomes `usize::MAX`).
static HUGE_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The global allocator of the `kiln` binary (see the module docs).
pub struct ArenaAlloc;

/// Switches the arena on for the rest of the process; nothing happens if
/// the address space cannot be reserved. Allocations made after this are
/// never returned to the system: only for commands that exit when done.
/// `large`: the run is expected to allocate more than a few hundred KiB,
/// so huge pages pay from the first byte (see [`SMALL_PAGES`]).
pub fn enable(large: bool) {
    if BASE.load(Relaxed) != 0 {
        return;
    }
    // SAFETY: an anonymous private mapping of fresh address space; no
    // existing memory is affected. MAP_NORESERVE: only written pages count.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            RESERVE + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return;
    }
    let base = (p as usize + HUGE - 1) & !(HUGE - 1);
    HUGE_FROM.store(base + if large { 0 } else { SMALL_PAGES }, Relaxed);
    NEXT.store(base, Relaxed);
    END.store(base + RESERVE, Relaxed);
    BASE.store(base, Relaxed);
}

/// Advises huge pages for the arena from [`HUGE_FROM`] on, the first time
/// a block ends past it (see [`SMALL_PAGES`]).
#[cold]
fn advise_huge() {
    let from = HUGE_FROM.swap(usize::MAX, Relaxed);
    let end = END.load(Relaxed);
    if from < end {
        // SAFETY: `[from, end)` lies inside the arena's mapping (made by
        // `enable`, never unmapped); the advice only changes how its pages
        // are backed. Failure is harmless (small pages).
        unsafe {
            libc::madvise(from as *mut libc::c_void, end - from, libc::MADV_HUGEPAGE);
        }
    }
}

/// Whether `p` was allocated in the arena.
#[inline]
fn in_arena(p: *mut u8) -> bool {
    let a = p as usize;
    let base = BASE.load(Relaxed);
    base != 0 && a >= base && a < END.load(Relaxed)
}

/// `layout`'s bytes from the arena, or `None` (off or full).
#[inline]
fn bump(layout: Layout) -> Option<*mut u8> {
    if BASE.load(Relaxed) == 0 {
        return None;
    }
    let end = END.load(Relaxed);
    let mut cur = NEXT.load(Relaxed);
    loop {
        let start = cur.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let stop = start.checked_add(layout.size())?;
        if stop > end {
            return None;
        }
        // Each byte range is handed out once: the exchange makes `start..stop`
        // this caller's alone.
        match NEXT.compare_exchange_weak(cur, stop, Relaxed, Relaxed) {
            Ok(_) => {
                if stop > HUGE_FROM.load(Relaxed) {
                    advise_huge();
                }
                return Some(start as *mut u8);
            }
            Err(now) => cur = now,
        }
    }
}

// SAFETY: every pointer returned is either the system allocator's (and
// handed back to it) or a range of the arena given to one caller only,
// aligned as asked and inside the reservation, which is never unmapped.
unsafe impl GlobalAlloc for ArenaAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's contract is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match bump(layout) {
            // Arena bytes are handed out once, fresh from the mapping: zero.
            Some(p) => p,
            // SAFETY: as for `alloc`.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) {
            // SAFETY: not an arena pointer, so the system allocator's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            // SAFETY: the system allocator's block, with the caller's
            // contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // The last block handed out grows in place.
        let old_end = ptr as usize + layout.size();
        let new_end = ptr as usize + new_size;
        if new_size < SMALL
            && new_end <= END.load(Relaxed)
            && NEXT
                .compare_exchange(old_end, new_end, Relaxed, Relaxed)
                .is_ok()
        {
            if new_end > HUGE_FROM.load(Relaxed) {
                advise_huge();
            }
            return ptr;
        }
        // SAFETY: `new_size` is nonzero and, rounded to the alignment, does
        // not overflow (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = if new_size >= SMALL {
            // SAFETY: as for `alloc`.
            unsafe { System.alloc(new_layout) }
        } else {
            // SAFETY: as for `alloc`.
            unsafe { self.alloc(new_layout) }
        };
        if !new.is_null() {
            // SAFETY: both blocks hold at least `layout.size()` bytes and are
            // distinct allocations.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_respects_alignment_and_size_limits() {
        // Off: nothing from the arena.
        if BASE.load(Relaxed) == 0 {
            assert!(bump(Layout::from_size_align(8, 8).unwrap()).is_none());
        }
        enable(false);
        if BASE.load(Relaxed) == 0 {
            return; // no address space here; the system allocator serves all
        }
        let a = bump(Layout::from_size_align(3, 1).unwrap()).unwrap();
        let b = bump(Layout::from_size_align(16, 64).unwrap()).unwrap();
        assert!(in_arena(a) && in_arena(b));
        assert_eq!(b as usize % 64, 0);
        assert!(b as usize >= a as usize + 3);
        // Growth in place of the last block, a copy otherwise.
        let l = Layout::from_size_align(8, 8).unwrap();
        unsafe {
            let p = ArenaAlloc.alloc(l);
            p.write_bytes(7, 8);
            let q = ArenaAlloc.realloc(p, l, 32);
            assert_eq!(*q.add(7), 7);
            let r = ArenaAlloc.alloc(l);
            let s = ArenaAlloc.realloc(q, Layout::from_size_align(32, 8).unwrap(), 64);
            assert_ne!(s, q);
            assert_eq!(*s.add(7), 7);
            // Growing large: moved to the system allocator, contents kept.
            let big = ArenaAlloc.realloc(s, Layout::from_size_align(64, 8).unwrap(), SMALL);
            assert!(!in_arena(big));
            assert_eq!(*big.add(7), 7);
            ArenaAlloc.dealloc(big, Layout::from_size_align(SMALL, 8).unwrap());
            ArenaAlloc.dealloc(r, l);
        }
    }
}
