//! The process-wide pool of released reservations: a dropped manager's
//! [prepared](MemoryManager::prepare) dual-view reservation is cleaned and
//! kept, and the next manager prepared with the same reservation size takes
//! it instead of mapping a new one.
//!
//! An engine's memory manager prepares a reservation when the engine is
//! made: reserve the address space, create and size a memfd, map its
//! writable view, map the first text, rodata and data chunks (eight system
//! calls), and unmap all of it again when the engine goes (four more). Its
//! first module then writes its code into file pages that do not exist
//! yet, a page fault that allocates and clears a page inside
//! `add_module`/`finalize_module` (about half of the time a fresh engine
//! spends on an 11-instruction module; some 40 faults and a third of the
//! time of a 10,000-instruction one). An embedder that makes an engine per
//! request, per test or per script pays all of that each time. With the
//! pool, a fresh engine's memory costs no system call, and the pages the
//! previous engine wrote are still there, zeroed, mapped in both views.
//!
//! # What is pooled
//! A reservation is pooled when its manager is dropped (or gives it up in
//! [`MemoryManager::set_mapping`]) if all of these hold, and unmapped as
//! before otherwise:
//! - it has two views (the `mprotect` fallback and
//!   [`CodeMapping::Protect`](super::CodeMapping::Protect) reservations
//!   are never pooled: their pages change protection per batch);
//! - it starts with what [`MemoryManager::prepare`] laid out (the first
//!   chunk of each kind, in the same places, still the kind's), so that the
//!   manager taking it needs no mapping for its first modules either; what
//!   its manager added after them (more chunks of any kind, pages given
//!   back to the page pool) is kept as it is, so that the next manager
//!   finds a big module's chunk mapped already;
//! - no page of it was lost (a failed mapping change);
//! - nothing else refers to its mapping: no [`super::FinalizedSection`]
//!   or [`super::LoadBatch`] of it is alive (the mapping's reference count
//!   is one);
//! - the pages that may hold memory (those holding a section, zeroed now,
//!   and those still zero from an earlier pooling that its manager left
//!   unused; their memory stays with the pool) are at most [`ZERO_LIMIT`]
//!   bytes, and with them the pool keeps at most [`POOL_KEEP`] bytes in
//!   all: more would make dropping an engine slow and keep much memory in
//!   the pool;
//! - this is the process that made it, not a child made by `fork` (see
//!   below), and the pool holds fewer than [`POOL_MAX`] reservations of
//!   its size.
//!
//! # Why reuse is sound
//! - *No one can reach the old contents.* The reservation is taken over
//!   only when its mapping's reference count is one: every handle that
//!   could read or write it (sections, batches) is gone, and the writable
//!   view's address never left the manager. A raw address or
//!   [`super::PackedSection`] kept from the dropped manager was dangling
//!   before this pool existed too (the kernel reuses unmapped addresses
//!   for the next mapping, which may well be the next engine's code); the
//!   registry drops its packed sections with itself.
//! - *Free bytes read as zero*, the manager's invariant, holds for the new
//!   manager: pages without a section read as zero already (freed bytes
//!   are cleared when freed, whole freed pages given back to the system,
//!   pages never used were never written), and every page that still
//!   holds a section is zeroed here, through the writable view for text
//!   and rodata and where it lies for data (private read-write memory),
//!   before the reservation enters the pool. Every page of a kind is then
//!   free space of that kind again; pages in the page pool stay there
//!   (inaccessible, their memory given back).
//! - *W^X* is untouched: no protection changes. The executable view keeps
//!   its text chunks read+execute and its rodata chunks read-only, mapped
//!   from the file, and the writable view stays the only writable mapping
//!   of the file, known only to the manager that owns the reservation (the
//!   pool, then the next manager).
//! - *No code still runs there.* Dropping a manager whose code still runs
//!   was already wrong (its memory was unmapped); the engine drops its
//!   memory manager only after its modules, when no call into them is
//!   under way.
//! - *fork*: a child process never uses the pool (neither gives nor
//!   takes): it has no writable views (`MADV_DONTFORK`), and the pool's
//!   lock may have been held by another thread of the parent when it
//!   forked. The pooled reservations it inherited are left alone.
//!
//! # What the pool keeps
//! At most [`POOL_MAX`] reservations of each size in use (an engine uses
//! two sizes: its configured one and its executor's 1 MiB): their address
//! space (a reservation and its writable view, 2 GiB each with the default
//! size on x86-64, reserved without memory behind it), a memfd each, and
//! the memory of the pages their last managers still used when dropped,
//! now zero: at most [`ZERO_LIMIT`] bytes each, at most [`POOL_KEEP`]
//! bytes in all. They stay mapped in the writable view (counted in the
//! resident set), so the next manager writes them without a fault; its
//! first trim of the writable views unmaps those it did not write again
//! (`memory/trim.rs`). [`release_pooled`] unmaps them all.

use super::{os, trim, MemoryManager, PageUse, Reservation, SectionKind};
use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many released reservations of each size are kept (an
/// engine has one of the size of its memory configuration and one of 1 MiB
/// for its executor's stubs; more engines dropped at once than this are
/// unmapped as before).
pub const POOL_MAX: usize = 4;

/// A reservation whose pages that may hold memory (module docs) are more
/// than this many bytes when its manager is dropped is unmapped, not
/// zeroed and pooled. The code of a generated 100,000-instruction function
/// is about 1.6 MB, that of 100,000 nested loops (600,000 instructions)
/// about 9.3 MB. Zeroing pages that are mapped already costs a fraction
/// of faulting them in anew: a fresh page of the memory file is a fault
/// that allocates, charges and clears it (measured: 9 MiB written into
/// fresh file pages 12 ms, zeroing and rewriting mapped ones 2.7 ms).
pub const ZERO_LIMIT: usize = 16 << 20;

/// The pool keeps at most this many bytes of zeroed pages in all; a
/// reservation that would take it past this is unmapped.
pub const POOL_KEEP: usize = 16 << 20;

/// A pooled reservation: every page free and zero, laid out as its last
/// manager left it (its prepared chunks first).
#[derive(Debug)]
struct Pooled {
    res: Reservation,
    /// Bytes of its pages that may hold memory (all zero).
    kept: usize,
}

/// The pooled reservations.
static POOL: Mutex<Vec<Pooled>> = Mutex::new(Vec::new());

/// The pool, if this process may use it: never in a child made by `fork`
/// (see the module docs).
fn pool() -> Option<MutexGuard<'static, Vec<Pooled>>> {
    if os::fork_generation() != 0 {
        return None;
    }
    // A panic while holding the lock leaves the vector consistent (push,
    // remove and take cannot leave it half-changed).
    Some(POOL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Whether `pool` has room for a reservation of `len` bytes keeping `kept`
/// bytes of memory.
fn room(pool: &[Pooled], len: usize, kept: usize) -> bool {
    pool.iter().filter(|p| p.res.map.len == len).count() < POOL_MAX
        && pool.iter().map(|p| p.kept).sum::<usize>() + kept <= POOL_KEEP
}

/// Unmaps every pooled reservation (see the module docs) and gives its
/// memory back to the system; how many there were. Engines made later map
/// fresh reservations (and pool them again when dropped).
pub fn release_pooled() -> usize {
    let taken = match pool() {
        Some(mut p) => std::mem::take(&mut *p),
        None => return 0,
    };
    // Unmapped here, outside the lock.
    taken.len()
}

/// How many released reservations of `reservation_size` bytes (a
/// [`super::MemoryConfig::reservation_size`], rounded to pages) the pool
/// holds now: for diagnostics and tests.
pub fn pooled_reservations(reservation_size: usize) -> usize {
    pool().map_or(0, |p| {
        p.iter()
            .filter(|m| m.res.map.len == reservation_size)
            .count()
    })
}

impl MemoryManager {
    /// Takes a pooled reservation of this manager's size (the one pooled
    /// last) as its first reservation; whether there was one.
    pub(super) fn take_pooled(&mut self) -> bool {
        if self.config.mapping != super::CodeMapping::DualView
            || self.fork_generation != 0
            || !self.reservations.is_empty()
        {
            return false;
        }
        let len = self.config.reservation_size;
        let Some(mut pool) = pool() else {
            return false;
        };
        let Some(i) = pool.iter().rposition(|p| p.res.map.len == len) else {
            return false;
        };
        let taken = pool.remove(i);
        drop(pool);
        self.reservations.push(taken.res);
        true
    }

    /// Gives up a reservation of this manager: into the pool if it
    /// qualifies (module docs), cleaned first; otherwise dropped (unmapped
    /// once nothing refers to it).
    pub(super) fn retire(&self, mut res: Reservation) {
        let Some(kept) = self.poolable(&res) else {
            return;
        };
        // Looked at first, so that a full pool costs no zeroing; checked
        // again when pooling (another thread may have pooled meanwhile).
        if !pool().is_some_and(|p| room(&p, res.map.len, kept)) {
            return;
        }
        let page = self.page;
        let base = res.map.base;
        let delta = [SectionKind::Text, SectionKind::Rodata, SectionKind::Data]
            .map(|kind| res.write_delta(kind));
        let mut zeroed = trim::Span::default();
        for (i, p) in res.pages.iter_mut().enumerate() {
            let (PageUse::Shared(kind), true) = (p.usage, p.live > 0) else {
                continue;
            };
            p.live = 0;
            let at = (base + i * page).wrapping_add(delta[kind.index()]);
            // SAFETY: `poolable` saw the only reference to the mapping
            // (`res.map`), so no section handle, batch or running module
            // refers to these bytes any more; `at` is the page's writable
            // address (the writable view for text and rodata, the private
            // read-write data page itself), mapped while `res.map` lives.
            unsafe { std::ptr::write_bytes(at as *mut u8, 0, page) };
            if kind != SectionKind::Data {
                zeroed = zeroed.hull(trim::Span::pages(i * page, (i + 1) * page, page));
            }
        }
        // Every page of a kind is free space of the kind again.
        res.shared = Default::default();
        let mut i = 0;
        while i < res.pages.len() {
            let usage = res.pages[i].usage;
            let run = res.pages[i..]
                .iter()
                .take_while(|p| p.usage == usage)
                .count();
            if let PageUse::Shared(kind) = usage {
                let start = base + i * page;
                res.shared[kind.index()].insert(start, start + run * page);
            }
            i += run;
        }
        // What the writable view may still map: trimmed by the next
        // manager's first trim unless it writes there again.
        res.inherited = res.maybe_mapped().hull(zeroed);
        res.dirty = Default::default();
        res.stale = Default::default();
        let Some(mut pool) = pool() else {
            return;
        };
        if room(&pool, res.map.len, kept) {
            pool.push(Pooled { res, kept });
        } else {
            drop(pool);
            drop(res);
        }
    }

    /// If `res` may go into the pool (see the module docs), the bytes of
    /// its pages that may hold memory: those that hold a section (zeroed
    /// when pooled) and those still zero from an earlier pooling.
    fn poolable(&self, res: &Reservation) -> Option<usize> {
        if !res.dual()
            || self.fork_generation != 0
            || os::fork_generation() != 0
            || Arc::strong_count(&res.map) != 1
            || Arc::weak_count(&res.map) != 0
        {
            return None;
        }
        let page = self.page;
        let mut at = 0;
        for (kind, bytes) in self.prepared_chunks() {
            let pages = bytes / page;
            let run = res.pages.get(at..at + pages)?;
            if run.iter().any(|p| p.usage != PageUse::Shared(kind)) {
                return None;
            }
            at += pages;
        }
        let mut kept = 0;
        for p in &res.pages {
            match p.usage {
                PageUse::Shared(_) | PageUse::Free => kept += usize::from(p.resident) * page,
                PageUse::Open { .. } | PageUse::Sealed(_) | PageUse::Lost => return None,
            }
        }
        (kept <= ZERO_LIMIT).then_some(kept)
    }
}

impl Drop for MemoryManager {
    /// Pools what qualifies (module docs of `memory/pool.rs`); the rest is
    /// unmapped once no handle refers to it.
    fn drop(&mut self) {
        for res in std::mem::take(&mut self.reservations) {
            self.retire(res);
        }
    }
}
