//! The sub-page allocator of the memory manager: disjoint free byte ranges
//! with neighbours coalesced. A few ranges (most lists: a chunk's tail and
//! a hole or two) are a short list sorted by start, searched linearly;
//! beyond [`SMALL`] they are indexed by start (to coalesce) and by length
//! (to find a fit), so every operation takes logarithmic time in the
//! number of ranges.
//!
//! Placement is best fit: the shortest range that can hold the request at
//! its alignment, lowest address among equals. Small holes left by removed
//! modules are therefore filled first and the big tail of a fresh chunk is
//! cut only when no hole fits, which keeps live code packed onto few pages.

use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// How many of the shortest ranges that are long enough for the bytes
/// alone are tried before falling back to one long enough for any
/// alignment padding as well. Keeps `take` logarithmic however many ranges
/// are too misaligned to fit.
const NEAR_FITS: usize = 8;

/// Up to this many ranges the list is kept as a sorted list (no tree
/// nodes: a take or an insert on a chunk's tail is a few compares instead
/// of five tree operations). At most [`NEAR_FITS`], so that the list's
/// exact best fit is the trees' choice too: with that few ranges, every
/// range long enough is among the near fits.
const SMALL: usize = NEAR_FITS;

/// Disjoint free byte ranges `start..end` (absolute addresses), neighbours
/// coalesced.
#[derive(Clone, Debug, Default)]
pub(super) struct FreeList {
    /// The ranges `(start, end)`, sorted by start, while there are at most
    /// [`SMALL`] (the trees are then empty); empty otherwise.
    list: SmallVec<[(usize, usize); SMALL]>,
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

/// Where `size` bytes at a multiple of `align` go in `start..end`, if
/// they fit.
fn fit(start: usize, end: usize, size: usize, align: usize) -> Option<usize> {
    let at = align_up(start, align)?;
    (at.checked_add(size)? <= end).then_some(at)
}

impl FreeList {
    /// Whether the ranges are in the trees (more than [`SMALL`] of them at
    /// some point, and not yet back to half that).
    fn indexed(&self) -> bool {
        !self.by_start.is_empty()
    }

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

    /// After a list operation: a list grown past [`SMALL`] ranges moves
    /// into the trees.
    fn spill(&mut self) {
        if self.list.len() > SMALL {
            for (s, e) in std::mem::take(&mut self.list) {
                self.by_start.insert(s, e);
                self.by_len.insert((e - s, s));
            }
        }
    }

    /// After a tree operation: trees down to half of [`SMALL`] ranges go
    /// back to the list (not at [`SMALL`]: a list that spills at the next
    /// insert would move back and forth).
    fn unspill(&mut self) {
        if self.indexed() && self.by_start.len() <= SMALL / 2 {
            self.list = self.by_start.iter().map(|(&s, &e)| (s, e)).collect();
            self.by_start.clear();
            self.by_len.clear();
        }
    }

    /// Adds `start..end`, which must not overlap what is there, joining it
    /// with the ranges that end at `start` and begin at `end`; the joined
    /// range.
    pub(super) fn insert(&mut self, start: usize, end: usize) -> (usize, usize) {
        if start >= end {
            return (start, end);
        }
        if !self.indexed() {
            self.total += end - start;
            // The first range starting after `start`.
            let i = self.list.partition_point(|&(s, _)| s < start);
            debug_assert!(
                i == 0 || self.list[i - 1].1 <= start,
                "overlapping free ranges"
            );
            let joins_prev = i > 0 && self.list[i - 1].1 == start;
            let joins_next = i < self.list.len() && self.list[i].0 == end;
            let joined = match (joins_prev, joins_next) {
                (true, true) => {
                    let e = self.list.remove(i).1;
                    self.list[i - 1].1 = e;
                    self.list[i - 1]
                }
                (true, false) => {
                    self.list[i - 1].1 = end;
                    self.list[i - 1]
                }
                (false, true) => {
                    self.list[i].0 = start;
                    self.list[i]
                }
                (false, false) => {
                    self.list.insert(i, (start, end));
                    (start, end)
                }
            };
            self.spill();
            return joined;
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
        self.unspill();
        (s, e)
    }

    /// Removes and returns `size` bytes starting at a multiple of `align`
    /// (a power of two), best fit.
    pub(super) fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        if !self.indexed() {
            // The shortest range that fits, the lowest among equals.
            let mut best: Option<(usize, usize, usize)> = None;
            for (i, &(s, e)) in self.list.iter().enumerate() {
                if let Some(at) = fit(s, e, size, align) {
                    if best.is_none_or(|(_, len, _)| e - s < len) {
                        best = Some((i, e - s, at));
                    }
                }
            }
            let (i, _, at) = best?;
            let (s, e) = self.list[i];
            self.total -= size;
            match (s < at, at + size < e) {
                (true, true) => {
                    self.list[i].1 = at;
                    self.list.insert(i + 1, (at + size, e));
                }
                (true, false) => self.list[i].1 = at,
                (false, true) => self.list[i].0 = at + size,
                (false, false) => {
                    self.list.remove(i);
                }
            }
            self.spill();
            return Some(at);
        }
        let fits = |&(len, start): &(usize, usize)| {
            fit(start, start + len, size, align).map(|at| (start, start + len, at))
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
        self.unspill();
        Some(at)
    }

    /// Removes whatever lies in `start..end`.
    pub(super) fn remove(&mut self, start: usize, end: usize) {
        if !self.indexed() {
            let mut i = 0;
            while i < self.list.len() {
                let (s, e) = self.list[i];
                if s >= end {
                    break;
                }
                if e <= start {
                    i += 1;
                    continue;
                }
                self.total -= e.min(end) - s.max(start);
                match (s < start, e > end) {
                    (true, true) => {
                        self.list[i].1 = start;
                        self.list.insert(i + 1, (end, e));
                        break;
                    }
                    (true, false) => {
                        self.list[i].1 = start;
                        i += 1;
                    }
                    (false, true) => {
                        self.list[i].0 = end;
                        break;
                    }
                    (false, false) => {
                        self.list.remove(i);
                    }
                }
            }
            self.spill();
            return;
        }
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
        self.unspill();
    }

    /// The ranges, lowest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let trees = self.by_start.iter().map(|(&s, &e)| (s, e));
        self.list.iter().copied().chain(trees)
    }

    /// Total free bytes.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len() + self.by_start.len()
    }

    #[cfg(test)]
    fn ranges(&self) -> Vec<(usize, usize)> {
        self.iter().collect()
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

    /// The trees' choice (see `take`) by brute force over `ranges`.
    fn model_take(ranges: &mut Vec<(usize, usize)>, size: usize, align: usize) -> Option<usize> {
        let mut by_len: Vec<(usize, usize)> = ranges.iter().map(|&(s, e)| (e - s, s)).collect();
        by_len.sort();
        let fits = |&(len, s): &(usize, usize)| fit(s, s + len, size, align).map(|at| (s, at));
        let near = by_len
            .iter()
            .filter(|&&(len, _)| len >= size)
            .take(NEAR_FITS)
            .find_map(fits);
        let (s, at) = match near {
            Some(f) => f,
            None => {
                let worst = size.checked_add(align - 1)?;
                by_len
                    .iter()
                    .find(|&&(len, _)| len >= worst)
                    .and_then(fits)?
            }
        };
        let i = ranges.iter().position(|r| r.0 == s).unwrap();
        let (_, e) = ranges.remove(i);
        if at + size < e {
            ranges.insert(i, (at + size, e));
        }
        if s < at {
            ranges.insert(i, (s, at));
        }
        Some(at)
    }

    /// Random inserts, takes and removes, across the list's size limit
    /// both ways, against a brute-force model of the trees' behaviour:
    /// the same ranges and the same placements.
    #[test]
    fn the_short_list_places_as_the_trees_do() {
        const UNIT: usize = 16;
        const UNITS: usize = 24;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut f = FreeList::default();
        let mut model: Vec<(usize, usize)> = Vec::new();
        let (mut listed, mut indexed) = (0, 0);
        for _ in 0..20_000 {
            let free = |x: usize, m: &[(usize, usize)]| m.iter().any(|&(s, e)| s <= x && x < e);
            // Inserts make more ranges, wide removes fewer: more of the
            // one while there are few, of the other while there are many.
            let many = f.len() > SMALL;
            match next(3) {
                0 if !many || next(2) == 0 => {
                    // Insert used bytes: from a used byte up to a random
                    // length, stopping at the next free range.
                    let s = next(UNITS * UNIT);
                    if free(s, &model) {
                        continue;
                    }
                    let limit = model.iter().map(|r| r.0).filter(|&a| a > s).min();
                    let e = (s + 1 + next(4 * UNIT)).min(limit.unwrap_or(usize::MAX));
                    f.insert(s, e);
                    model.push((s, e));
                    model.sort();
                    let mut joined: Vec<(usize, usize)> = Vec::new();
                    for &(s, e) in &model {
                        match joined.last_mut() {
                            Some(l) if l.1 == s => l.1 = e,
                            _ => joined.push((s, e)),
                        }
                    }
                    model = joined;
                }
                0 | 1 => {
                    let size = 1 + next(3 * UNIT);
                    let align = 1 << next(7);
                    let got = f.take(size, align);
                    assert_eq!(got, model_take(&mut model, size, align));
                }
                _ => {
                    let s = next(UNITS * UNIT);
                    let e = s + 1 + next(if many { 16 * UNIT } else { 4 * UNIT });
                    f.remove(s, e);
                    let mut kept = Vec::new();
                    for &(a, b) in &model {
                        if b <= s || a >= e {
                            kept.push((a, b));
                            continue;
                        }
                        if a < s {
                            kept.push((a, s));
                        }
                        if b > e {
                            kept.push((e, b));
                        }
                    }
                    model = kept;
                }
            }
            assert_eq!(f.ranges(), model);
            assert_eq!(f.total(), model.iter().map(|&(s, e)| e - s).sum::<usize>());
            if f.indexed() {
                indexed += 1;
            } else {
                listed += 1;
                assert!(f.list.len() <= SMALL);
            }
        }
        // Both forms were exercised.
        assert!(listed > 1000 && indexed > 1000, "{listed} {indexed}");
    }
}
