//! The `kiln` binary's allocator: the system allocator, plus a bump arena
//! that a batch command which exits right after its work (`kiln check`)
//! switches on.
//!
//! `kiln check` builds every module, keeps it until exit and frees
//! nothing (see [`super::check::check`]): for a file of many small
//! functions the allocator's own work (a `malloc` per table of every
//! function, each with its header) and the page faults of the heap were a
//! quarter of the command's time. In the arena an allocation is a bump of
//! a pointer into one large reservation backed by transparent huge pages
//! where the kernel offers them (past its first few MiB, see
//! [`SMALL_PAGES`]), and a free is nothing.
//!
//! Each thread bumps in its own chunk of the reservation (a thread-local
//! pair of addresses, see [`CHUNK`]), so threads checking files side by
//! side do not contend for one atomic word; a chunk comes from the shared
//! pointer [`NEXT`] and, when it is the last one handed out, grows in
//! place. With one thread the arena is one contiguous run, as it was
//! before chunks.
//!
//! Rules that keep it sound and bounded:
//! - The arena is only switched on ([`enable`]), never off. Memory
//!   allocated before (arguments, thread start) stays the system
//!   allocator's; [`ArenaAlloc::dealloc`] and [`ArenaAlloc::realloc`] tell
//!   the two apart by address.
//! - A block growing in the arena is copied (unless it is the last one
//!   its thread handed out and there is room), so the arena holds the old
//!   copies too: at most as much
//!   again as the live blocks, since growth is geometric. A block that
//!   grows past [`SMALL`] moves to the system allocator, whose `realloc` of
//!   a mapped block moves no bytes. Below that, staying in the arena pays:
//!   a module's table of 20,000 functions (8 MB) costs a few huge-page
//!   faults there instead of 2,000 small-page faults.
//! - When the reservation is used up, or could not be made, allocations
//!   go to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{
    AtomicU32, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Once;

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
/// [`enable`] stores `BASE` last, with `Release`; a reader that loads it
/// with `Acquire` and finds it set sees the other three as `enable` left
/// them.
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
    // Once: two threads switching it on at the same time (tests do) must
    // not interleave their stores of two different reservations.
    static ON: Once = Once::new();
    ON.call_once(|| reserve(large));
}

/// Who faults in the arena's first page (see [`touch`]): [`NO_ONE`],
/// [`TOUCHING`] or [`TOUCHED`]. A `u32` for `futex`.
static FIRST_TOUCH: AtomicU32 = AtomicU32::new(NO_ONE);
const NO_ONE: u32 = 0;
const TOUCHING: u32 = 1;
const TOUCHED: u32 = 2;

/// Faults in the arena's memory where this thread's next blocks go, unless
/// another thread has already claimed that ([`claim_first_touch`]): its
/// chunk is taken now and its first word written, so that the first touch
/// of that memory (with huge pages, the kernel clearing 2 MiB: about
/// 0.2 ms here for a page fresh from the host) is paid by a thread with
/// nothing else to do yet (`check`'s early worker).
pub fn touch() {
    if FIRST_TOUCH
        .compare_exchange(NO_ONE, TOUCHING, Acquire, Relaxed)
        .is_err()
    {
        return;
    }
    if let Some(p) = bump(Layout::new::<u64>()) {
        // SAFETY: `p` is a fresh block of 8 bytes aligned for a `u64`,
        // handed to this caller only; it is never freed (it stays the
        // arena's, as every arena block does).
        unsafe { std::ptr::write_volatile(p.cast::<u64>(), 0) };
    }
    FIRST_TOUCH.store(TOUCHED, Release);
    // SAFETY: a futex wake on a live static word; it wakes the threads
    // waiting in `claim_first_touch`, if any.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            FIRST_TOUCH.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Called before this thread first allocates in the arena: if another
/// thread is faulting the arena's first page in ([`touch`]), waits until
/// it is done, so that the page is cleared once rather than by both
/// threads at once (each clears its own copy of a huge page and the loser
/// throws its copy away: twice the memory traffic, no sooner done). If no
/// thread has started to, [`touch`] will not: this thread faults the page
/// in itself when it first writes there.
pub fn claim_first_touch() {
    let mut now = match FIRST_TOUCH.compare_exchange(NO_ONE, TOUCHED, Acquire, Acquire) {
        Ok(_) => return,
        Err(now) => now,
    };
    if now == TOUCHING && super::check::spin_until(|| FIRST_TOUCH.load(Acquire) != TOUCHING) {
        return;
    }
    while now == TOUCHING {
        // SAFETY: a futex wait on a live static word, while it still holds
        // `TOUCHING`; no timeout. A wake-up without a change loops.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                FIRST_TOUCH.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                TOUCHING,
                std::ptr::null::<libc::timespec>(),
            );
        }
        now = FIRST_TOUCH.load(Acquire);
    }
}

/// Whether the arena's first page is not known to be faulted in yet:
/// [`touch`] is at it, or no thread has started to (see
/// [`claim_first_touch`]).
pub fn first_touch_pending() -> bool {
    FIRST_TOUCH.load(Acquire) != TOUCHED
}

/// Makes the reservation and publishes it (see [`BASE`]).
fn reserve(large: bool) {
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
    BASE.store(base, Release);
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
    let base = BASE.load(Acquire);
    base != 0 && a >= base && a < END.load(Relaxed)
}

/// Bytes a thread takes from [`NEXT`] at a time (more when one block
/// needs more).
const CHUNK_BYTES: usize = 64 << 10;

thread_local! {
    /// This thread's chunk of the arena: its next free byte and its end
    /// (both 0 until the thread's first allocation there). Only this thread
    /// hands out bytes of `[next, end)`.
    static CHUNK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// `layout`'s bytes from the arena, or `None` (off or full).
#[inline]
fn bump(layout: Layout) -> Option<*mut u8> {
    if BASE.load(Acquire) == 0 {
        return None;
    }
    // `CHUNK` has no destructor, so it is reachable for the whole life of
    // the thread; `try_with` only keeps this free of panics.
    CHUNK
        .try_with(|c| {
            let (next, end) = c.get();
            let start = next.checked_add(layout.align() - 1)? & !(layout.align() - 1);
            let stop = start.checked_add(layout.size())?;
            if next != 0 && stop <= end {
                c.set((stop, end));
                Some(start as *mut u8)
            } else {
                refill(c, layout).map(|p| p as *mut u8)
            }
        })
        .ok()
        .flatten()
}

/// Gives this thread's chunk room for `layout` and returns the block's
/// address: the chunk grows in place when it is the last one handed out
/// (so one thread's arena stays one contiguous run), else a new chunk
/// starts at [`NEXT`]. `None` when the reservation is used up.
#[cold]
#[inline(never)]
fn refill(c: &Cell<(usize, usize)>, layout: Layout) -> Option<usize> {
    let (next, end) = c.get();
    let limit = END.load(Relaxed);
    let mut cur = NEXT.load(Relaxed);
    loop {
        let from = if next != 0 && cur == end { next } else { cur };
        let start = from.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let stop = start.checked_add(layout.size())?;
        if stop > limit {
            return None;
        }
        let new_end = stop.max(cur.saturating_add(CHUNK_BYTES)).min(limit);
        // Each byte range of the reservation is handed out once: the
        // exchange makes `cur..new_end` this thread's alone.
        match NEXT.compare_exchange_weak(cur, new_end, Relaxed, Relaxed) {
            Ok(_) => {
                if new_end > HUGE_FROM.load(Relaxed) {
                    advise_huge();
                }
                c.set((stop, new_end));
                return Some(start);
            }
            Err(now) => cur = now,
        }
    }
}

/// Grows the block `ptr` (`old` bytes) to `new` bytes where it lies, if it
/// is the last block this thread handed out and the bytes after it are
/// this thread's free bytes or can be added to its chunk (the chunk is the
/// last one handed out). Whether it did.
fn grow_in_place(ptr: usize, old: usize, new: usize) -> bool {
    CHUNK
        .try_with(|c| {
            let (next, end) = c.get();
            let Some(stop) = ptr.checked_add(new) else {
                return false;
            };
            if next == 0 || ptr + old != next {
                return false;
            }
            if stop <= end {
                c.set((stop, end));
                return true;
            }
            let limit = END.load(Relaxed);
            if stop > limit {
                return false;
            }
            let new_end = stop.max(end.saturating_add(CHUNK_BYTES)).min(limit);
            if NEXT
                .compare_exchange(end, new_end, Relaxed, Relaxed)
                .is_err()
            {
                return false;
            }
            if new_end > HUGE_FROM.load(Relaxed) {
                advise_huge();
            }
            c.set((stop, new_end));
            true
        })
        .unwrap_or(false)
}

// SAFETY: every pointer returned is either the system allocator's (and
// handed back to it) or a range of the arena given to one caller only
// (a chunk belongs to one thread, see `refill`, and a thread hands out
// each byte of its chunk once: `bump`, `grow_in_place`), aligned as asked
// and inside the reservation, which is never unmapped.
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
        // The last block this thread handed out grows in place.
        if new_size < SMALL && grow_in_place(ptr as usize, layout.size(), new_size) {
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

    #[test]
    fn touch_faults_in_this_threads_next_blocks() {
        enable(false);
        if BASE.load(Relaxed) == 0 {
            return;
        }
        std::thread::spawn(|| {
            touch();
            let (next, end) = CHUNK.with(Cell::get);
            assert!(
                next != 0 && next < end,
                "no chunk taken: {next:#x}..{end:#x}"
            );
            // The page of the next block is resident now.
            let page = (next - 8) & !4095;
            let mut resident = 0u8;
            // SAFETY: one page of the arena's mapping; mincore writes one
            // byte per page into `resident`.
            let r = unsafe { libc::mincore(page as *mut libc::c_void, 1, &mut resident) };
            assert_eq!(r, 0);
            assert_eq!(resident & 1, 1, "page {page:#x} not resident");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_allocating_at_once_get_disjoint_blocks() {
        enable(false);
        if BASE.load(Relaxed) == 0 {
            return;
        }
        // Each thread fills its blocks with its own mark; a byte handed out
        // twice would be overwritten by the other thread (or overlap).
        let l = Layout::from_size_align(40, 8).unwrap();
        let threads: Vec<_> = (0..3u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut blocks = Vec::with_capacity(5_000);
                    for _ in 0..5_000 {
                        // SAFETY: a nonzero size; the block is written
                        // within its 40 bytes.
                        let p = unsafe { ArenaAlloc.alloc(l) };
                        assert!(!p.is_null());
                        unsafe { p.write_bytes(t + 1, l.size()) };
                        blocks.push((p as usize, t + 1));
                    }
                    blocks
                })
            })
            .collect();
        let mut all: Vec<(usize, u8)> = threads
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        for w in all.windows(2) {
            assert!(w[0].0 + l.size() <= w[1].0, "blocks overlap: {w:?}");
        }
        for &(p, mark) in &all {
            assert!(in_arena(p as *mut u8));
            // SAFETY: every block is still allocated (never freed).
            let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, l.size()) };
            assert!(bytes.iter().all(|&b| b == mark), "block {p:#x} overwritten");
        }
    }
}
