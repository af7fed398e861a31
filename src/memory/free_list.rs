//! The sub-page allocator of the memory manager: disjoint free byte ranges
//! with neighbours coalesced, indexed by start (to coalesce) and by length
//! (to find a fit), so every operation takes logarithmic time in the
//! number of ranges.
//!
//! Placement is best fit: the shortest range that can hold the request at
//! its alignment, lowest address among equals. Small holes left by removed
//! modules are therefore filled first and the big tail of a fresh chunk is
//! cut only when no hole fits, which keeps live code packed onto few pages.

use std::collections::{BTreeMap, BTreeSet};

/// How many of the shortest ranges that are long enough for the bytes
/// alone are tried before falling back to one long enough for any
/// alignment padding as well. Keeps `take` logarithmic however many ranges
/// are too misaligned to fit.
const NEAR_FITS: usize = 8;

/// Disjoint free byte ranges `start..end` (absolute addresses), neighbours
/// coalesced.
#[derive(Clone, Debug, Default)]
pub(super) struct FreeList {
    /// `start → end`.
    by_start: BTreeMap<usize, usize>,
    /// `(end - start, start)` of every range.
    by_len: BTreeSet<(usize, usize)>,
    /// Sum of the ranges' lengths.
    total: usize,
}

pub(super) fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

impl FreeList {
    fn put(&mut self, start: usize, end: usize) {
        self.by_start.insert(start, end);
        self.by_len.insert((end - start, start));
        self.total += end - start;
    }

    /// Removes the range starting at `start`; its end.
    fn cut(&mut self, start: usize) -> Option<usize> {
        let end = self.by_start.remove(&start)?;
        self.by_len.remove(&(end - start, start));
        self.total -= end - start;
        Some(end)
    }

    /// Adds `start..end`, which must not overlap what is there, joining it
    /// with the ranges that end at `start` and begin at `end`; the joined
    /// range.
    pub(super) fn insert(&mut self, start: usize, end: usize) -> (usize, usize) {
        if start >= end {
            return (start, end);
        }
        let (mut s, mut e) = (start, end);
        if let Some((&ps, &pe)) = self.by_start.range(..=start).next_back() {
            debug_assert!(pe <= start, "overlapping free ranges");
            if pe == start {
                self.cut(ps);
                s = ps;
            }
        }
        if let Some(ne) = self.cut(end) {
            e = ne;
        }
        self.put(s, e);
        (s, e)
    }

    /// Removes and returns `size` bytes starting at a multiple of `align`
    /// (a power of two), best fit.
    pub(super) fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        let fits = |&(len, start): &(usize, usize)| {
            let at = align_up(start, align)?;
            (at.checked_add(size)? <= start + len).then_some((start, start + len, at))
        };
        let near = self
            .by_len
            .range((size, 0)..)
            .take(NEAR_FITS)
            .find_map(fits);
        let (s, e, at) = match near {
            Some(f) => f,
            // Any range this long fits whatever its start's alignment.
            None => {
                let worst = size.checked_add(align - 1)?;
                self.by_len.range((worst, 0)..).next().and_then(fits)?
            }
        };
        self.cut(s);
        if s < at {
            self.put(s, at);
        }
        if at + size < e {
            self.put(at + size, e);
        }
        Some(at)
    }

    /// Removes whatever lies in `start..end`.
    pub(super) fn remove(&mut self, start: usize, end: usize) {
        let overlapping: Vec<(usize, usize)> = self
            .by_start
            .range(..end)
            .rev()
            .take_while(|&(_, &e)| e > start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.cut(s);
            if s < start {
                self.put(s, start);
            }
            if e > end {
                self.put(end, e);
            }
        }
    }

    /// The ranges, lowest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.by_start.iter().map(|(&s, &e)| (s, e))
    }

    /// Total free bytes.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_start.len()
    }

    #[cfg(test)]
    fn ranges(&self) -> Vec<(usize, usize)> {
        self.by_start.iter().map(|(&s, &e)| (s, e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_splits() {
        let mut f = FreeList::default();
        f.insert(100, 200);
        f.insert(300, 400);
        f.insert(200, 300);
        assert_eq!(f.len(), 1);
        assert_eq!(f.total(), 300);
        assert_eq!(f.take(10, 64), Some(128));
        assert_eq!(f.ranges(), vec![(100, 128), (138, 400)]);
        f.insert(128, 138);
        assert_eq!(f.len(), 1);
        f.remove(150, 250);
        assert_eq!(f.ranges(), vec![(100, 150), (250, 400)]);
        assert_eq!(f.take(200, 1), None);
        assert_eq!(f.take(150, 1), Some(250));
        assert_eq!(f.total(), 50);
    }

    #[test]
    fn remove_spanning_several() {
        let mut f = FreeList::default();
        for s in [0, 20, 40, 60] {
            f.insert(s, s + 10);
        }
        f.remove(5, 65);
        assert_eq!(f.ranges(), vec![(0, 5), (65, 70)]);
        assert_eq!(f.total(), 10);
    }

    #[test]
    fn takes_the_best_fit() {
        let mut f = FreeList::default();
        f.insert(0, 1000);
        f.insert(2000, 2032);
        f.insert(3000, 3100);
        // The 32-byte hole, not the front of the big range.
        assert_eq!(f.take(32, 16), Some(2000));
        // The 100-byte range before the 1000-byte one.
        assert_eq!(f.take(40, 8), Some(3000));
        assert_eq!(f.take(60, 4), Some(3040));
        assert_eq!(f.ranges(), vec![(0, 1000)]);
    }

    #[test]
    fn misaligned_near_fits_fall_back_to_a_long_range() {
        let mut f = FreeList::default();
        // Many 64-byte ranges at odd offsets: long enough for 64 bytes,
        // but never at a 64-byte boundary.
        for i in 0..20 {
            f.insert(i * 256 + 8, i * 256 + 72);
        }
        f.insert(100_000, 100_200);
        assert_eq!(f.take(64, 64), Some(100_032));
        assert_eq!(f.total(), 20 * 64 + 200 - 64);
    }

    #[test]
    fn an_impossible_request_is_none() {
        let mut f = FreeList::default();
        assert_eq!(f.take(1, 1), None);
        f.insert(10, 20);
        assert_eq!(f.take(usize::MAX, 1), None);
        assert_eq!(f.take(5, 1 << 40), None);
        assert_eq!(f.take(10, 2), Some(10));
    }
}
