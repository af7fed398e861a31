//! Trimming the writable views: which pages of a dual-view reservation's
//! writable view are dropped from this process's page tables, and when.
//!
//! Code is written once through the writable view and then only run
//! through the executable view, so a page of code that runs is mapped
//! twice and counted twice in the resident set, and a page written and
//! never run stays counted through the writable view alone. Unmapping the
//! writable view's pages ([`os::CodeFile::unmap_written`]) frees no memory
//! (the bytes stay in the file) but keeps the resident set honest for an
//! engine that loads code for a long time (the REPL's memory row).
//!
//! What is trimmed is what was written, not the whole used range: each
//! reservation keeps the hull of the pages written since the last trim
//! (`dirty`) and of those written before it (`stale`). A trim, after every
//! [`TRIM_AFTER`] bytes written, unmaps `stale` and makes `dirty` the new
//! `stale`: pages are unmapped one trim after they were written, so
//!
//! - a page is unmapped at most two trims after it was last written (the
//!   writable view holds at most about twice [`TRIM_AFTER`] bytes plus the
//!   last batch's);
//! - the module just finalized keeps its pages mapped: reading it back
//!   (the unwind tables are built from the code) and writing the next
//!   module onto its last, shared page fault nothing;
//! - an engine that loads one big module, or a few, makes no system call
//!   for it at all (the first trim has nothing stale yet);
//! - a trim costs one system call per reservation with stale pages, over
//!   a range as long as what was written (never the 8 MiB data chunk, never
//!   pages long trimmed).
//!
//! A reservation taken from the pool (`memory/pool.rs`) comes with the
//! pages its last manager zeroed still mapped (`inherited`); the first trim
//! unmaps those the new manager has not written since, so that a long-lived
//! engine does not keep them counted.
//!
//! Reading code back through the writable view maps the pages of the
//! kernel's fault-around window around the page read, if it was trimmed:
//! the debug registry reads a module's code right after its finalize,
//! which may have trimmed the page it shares with earlier modules. The
//! recorded ranges are widened by a window on each side, so those
//! neighbours are trimmed with the module's pages. Reading a module finalized two trims
//! ago ([`super::FinalizedSection::bytes`]) maps its window again until
//! its pages are next written and trimmed; nothing in kiln does, and it
//! costs no memory either way.

use super::{MemoryManager, Reservation};

/// The writable views are trimmed ([`MemoryManager::trim_views`]) after
/// this many bytes were written through them.
pub(super) const TRIM_AFTER: usize = 64 << 10;

/// A range of file offsets `lo..hi` (page-aligned), or none (`lo >= hi`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    lo: usize,
    hi: usize,
}

impl Span {
    /// The whole pages covering `lo..hi`.
    pub(super) fn pages(lo: usize, hi: usize, page: usize) -> Span {
        Span {
            lo: lo & !(page - 1),
            hi: hi.next_multiple_of(page),
        }
    }

    pub(super) fn is_empty(self) -> bool {
        self.lo >= self.hi
    }

    /// The smallest span covering both.
    pub(super) fn hull(self, other: Span) -> Span {
        match (self.is_empty(), other.is_empty()) {
            (true, _) => other,
            (_, true) => self,
            _ => Span {
                lo: self.lo.min(other.lo),
                hi: self.hi.max(other.hi),
            },
        }
    }

    /// `self` without `other`: at most two spans (either may be empty).
    fn minus(self, other: Span) -> [Span; 2] {
        if other.is_empty() {
            return [self, Span::default()];
        }
        [
            Span {
                lo: self.lo,
                hi: self.hi.min(other.lo),
            },
            Span {
                lo: self.lo.max(other.hi),
                hi: self.hi,
            },
        ]
    }
}

/// The kernel's fault-around window (`fault_around_bytes`, 64 KiB unless
/// changed): a read fault on a file mapping maps the pages of the file
/// already in memory within the window (aligned in the view's addresses)
/// around the faulting page. Written ranges are widened by a window on
/// each side, so that what a read maps around a written page is trimmed
/// with it.
const FAULT_AROUND: usize = 64 << 10;

impl Reservation {
    /// Records that `lo..hi` (addresses in the executable view) were
    /// written through the writable view.
    pub(super) fn note_dirty(&mut self, lo: usize, hi: usize, page: usize) {
        debug_assert!(self.dual() && self.contains(lo) && hi > lo);
        let base = self.map.base;
        let (lo, hi) = (lo - base, hi - base);
        let around = Span::pages(lo.saturating_sub(FAULT_AROUND), hi + FAULT_AROUND, page);
        self.dirty = self.dirty.hull(around);
    }

    /// Everything of the writable view that may still be mapped: written
    /// since the last trim, before it, or inherited from the pool.
    pub(super) fn maybe_mapped(&self) -> Span {
        self.dirty.hull(self.stale).hull(self.inherited)
    }

    /// One trim of this reservation's writable view (module docs).
    fn trim(&mut self) {
        let Some(file) = &self.map.file else {
            return;
        };
        let inherited = std::mem::take(&mut self.inherited).minus(self.dirty);
        let stale = std::mem::replace(&mut self.stale, std::mem::take(&mut self.dirty));
        for s in inherited.into_iter().chain([stale]) {
            if !s.is_empty() {
                file.unmap_written(s.lo, s.hi - s.lo);
            }
        }
    }
}

impl MemoryManager {
    /// Records that `span` bytes at `addr` of reservation `r` were written
    /// through its writable view (nothing for a reservation without one).
    pub(super) fn note_written(&mut self, r: u32, addr: usize, span: usize) {
        let page = self.page;
        let res = &mut self.reservations[r as usize];
        if res.dual() {
            res.note_dirty(addr, addr + span, page);
            self.written += span;
        }
    }

    /// After [`TRIM_AFTER`] bytes written since the last trim, trims every
    /// writable view (module docs).
    pub(super) fn maybe_trim_views(&mut self) {
        if self.written < TRIM_AFTER {
            return;
        }
        for res in &mut self.reservations {
            res.trim();
        }
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn spans() {
        let s = |lo, hi| Span { lo, hi };
        assert_eq!(Span::pages(5, 4097, 4096), s(0, 8192));
        assert_eq!(Span::pages(4096, 8192, 4096), s(4096, 8192));
        assert!(s(3, 3).is_empty() && Span::default().is_empty());
        assert_eq!(s(0, 10).hull(s(20, 30)), s(0, 30));
        assert_eq!(Span::default().hull(s(20, 30)), s(20, 30));
        assert_eq!(s(20, 30).hull(Span::default()), s(20, 30));
        let [a, b] = s(0, 100).minus(s(20, 30));
        assert_eq!((a, b), (s(0, 20), s(30, 100)));
        let [a, b] = s(0, 100).minus(s(0, 100));
        assert!(a.is_empty() && b.is_empty());
        let [a, b] = s(10, 20).minus(s(50, 60));
        assert_eq!(a, s(10, 20));
        assert!(b.is_empty());
        let [a, b] = s(10, 20).minus(Span::default());
        assert_eq!((a, b.is_empty()), (s(10, 20), true));
    }
}
