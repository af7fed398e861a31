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
//! spends on an 11-instruction module). An embedder that makes an engine
//! per request, per test or per script pays all of that each time. With
//! the pool, a fresh engine's memory costs no system call, and the pages
//! the previous engine wrote are still there, zeroed, in both views.
//!
//! # What is pooled
//! A reservation is pooled when its manager is dropped (or gives it up in
//! [`MemoryManager::set_mapping`]) if all of these hold, and unmapped as
//! before otherwise:
//! - it has two views (the `mprotect` fallback and
//!   [`CodeMapping::Protect`](super::CodeMapping::Protect) reservations
//!   are never pooled: their pages change protection per batch);
//! - its pages are exactly what [`MemoryManager::prepare`] laid out (the
//!   first chunk of each kind, in the same places, none given back to the
//!   page pool or lost): the state a prepared reservation starts in, so a
//!   manager taking it starts exactly as with a fresh one;
//! - nothing else refers to its mapping: no [`super::FinalizedSection`]
//!   or [`super::LoadBatch`] of it is alive (the mapping's reference count
//!   is one);
//! - at most [`ZERO_LIMIT_PAGES`] of its pages hold a section (those are
//!   zeroed now; more would make dropping an engine slow and keep much
//!   memory in the pool);
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
//!   are cleared when freed, pages never used were never written), and
//!   every page that still holds a section is zeroed here, through the
//!   writable view for text and rodata and where it lies for data (private
//!   read-write memory), before the reservation enters the pool.
//! - *W^X* is untouched: no protection changes. The executable view keeps
//!   its text chunk read+execute and its rodata chunk read-only, mapped
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
//! space (a reservation
//! and its writable view, 2 GiB each with the default size on x86-64,
//! reserved without memory behind it), a memfd each, and the memory of the
//! pages their last managers still used when dropped (at most
//! [`ZERO_LIMIT_PAGES`] each, now zero). [`release_pooled`] unmaps them
//! all.

use super::{os, Mapping, MemoryManager, PageUse, Reservation};
use crate::memory::free_list::FreeList;
use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many released reservations of each size are kept (an
/// engine has one of the size of its memory configuration and one of 1 MiB
/// for its executor's stubs; more engines dropped at once than this are
/// unmapped as before).
pub const POOL_MAX: usize = 4;

/// A reservation with more pages holding a section than this when its
/// manager is dropped is unmapped, not zeroed and pooled.
pub(super) const ZERO_LIMIT_PAGES: usize = 64;

/// The pooled reservations' mappings; each has the layout of a freshly
/// prepared reservation of its length, every byte zero.
static POOL: Mutex<Vec<Mapping>> = Mutex::new(Vec::new());

/// The pool, if this process may use it: never in a child made by `fork`
/// (see the module docs).
fn pool() -> Option<MutexGuard<'static, Vec<Mapping>>> {
    if os::fork_generation() != 0 {
        return None;
    }
    // A panic while holding the lock leaves the vector consistent (push,
    // swap_remove and take cannot leave it half-changed).
    Some(POOL.lock().unwrap_or_else(|e| e.into_inner()))
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
        p.iter().filter(|m| m.len == reservation_size).count()
    })
}

impl MemoryManager {
    /// Takes a pooled reservation of this manager's size as its first
    /// reservation, laid out as [`Self::prepare`] lays out a fresh one but
    /// with its chunks already mapped; its index.
    pub(super) fn take_pooled(&mut self) -> Option<u32> {
        if self.config.mapping != super::CodeMapping::DualView
            || self.fork_generation != 0
            || self.reservations.len() >= self.config.max_reservations
        {
            return None;
        }
        let len = self.config.reservation_size;
        let map = {
            let mut pool = pool()?;
            let i = pool.iter().position(|m| m.len == len)?;
            pool.swap_remove(i)
        };
        self.reservations.push(Reservation {
            map: Arc::new(map),
            bump: 0,
            pool: FreeList::default(),
            shared: Default::default(),
            pages: Vec::new(),
            written: false,
        });
        Some((self.reservations.len() - 1) as u32)
    }

    /// Gives up a reservation of this manager: into the pool if it
    /// qualifies (module docs), its pages holding sections zeroed first;
    /// otherwise dropped (unmapped once nothing refers to it).
    pub(super) fn retire(&self, mut res: Reservation) {
        if !self.poolable(&res) {
            return;
        }
        let page = self.page;
        for (i, p) in res.pages.iter().enumerate() {
            let (PageUse::Shared(kind), true) = (p.usage, p.live > 0) else {
                continue;
            };
            let at = (res.map.base + i * page).wrapping_add(res.write_delta(kind));
            // SAFETY: `poolable` saw the only reference to the mapping
            // (`res.map`), so no section handle, batch or running module
            // refers to these bytes any more; `at` is the page's writable
            // address (the writable view for text and rodata, the private
            // read-write data page itself), mapped while `res.map` lives.
            unsafe { std::ptr::write_bytes(at as *mut u8, 0, page) };
        }
        res.pages.clear();
        let Ok(map) = Arc::try_unwrap(res.map) else {
            return;
        };
        let Some(mut pool) = pool() else {
            return;
        };
        if pool.iter().filter(|m| m.len == map.len).count() < POOL_MAX {
            pool.push(map);
        } else {
            drop(pool);
            drop(map);
        }
    }

    /// Whether `res` may go into the pool (see the module docs).
    fn poolable(&self, res: &Reservation) -> bool {
        if !res.dual()
            || self.fork_generation != 0
            || os::fork_generation() != 0
            || Arc::strong_count(&res.map) != 1
            || Arc::weak_count(&res.map) != 0
            || res.pool.total() != 0
        {
            return false;
        }
        let page = self.page;
        let mut at = 0;
        for (kind, bytes) in self.prepared_chunks() {
            let pages = bytes / page;
            let Some(run) = res.pages.get(at..at + pages) else {
                return false;
            };
            if run.iter().any(|p| p.usage != PageUse::Shared(kind)) {
                return false;
            }
            at += pages;
        }
        at * page == res.bump
            && res.pages.len() == at
            && res.pages.iter().filter(|p| p.live > 0).count() <= ZERO_LIMIT_PAGES
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
