//! [`Runs`]: a list of ids kept as runs of consecutive values. What an
//! owner holds (its symbols, a lazy module's indirection slots) is
//! allocated in order, so its ids are nearly always one run: a REPL
//! session's lazy module, extended by one function per item for tens of
//! thousands of items, keeps two pairs instead of two growing lists, and an
//! eager module's symbols need no allocation at all.

/// Ids in insertion order, as runs `(first, count)`; the first run inline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    /// The first run (count 0: the list is empty).
    head: (u32, u32),
    /// The runs after it.
    rest: Vec<(u32, u32)>,
}

impl Runs {
    /// Appends `id` (merged into the last run when it follows it).
    pub fn push(&mut self, id: u32) {
        let last = self.rest.last_mut().unwrap_or(&mut self.head);
        if last.1 == 0 {
            *last = (id, 1);
        } else if last.0.checked_add(last.1) == Some(id) {
            last.1 += 1;
        } else {
            self.rest.push((id, 1));
        }
    }

    /// Appends every id of `ids`.
    pub fn extend(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            self.push(id);
        }
    }

    /// The ids, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(&self.head)
            .chain(&self.rest)
            .flat_map(|&(first, n)| (0..n).map(move |i| first + i))
    }

    pub fn is_empty(&self) -> bool {
        self.head.1 == 0
    }

    /// Keeps the ids for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        let old = std::mem::take(self);
        for id in old.iter() {
            if keep(id) {
                self.push(id);
            }
        }
    }
}

impl FromIterator<u32> for Runs {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Runs {
        let mut r = Runs::default();
        r.extend(ids);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_ids_in_order_and_merge_consecutive_ones() {
        let mut r = Runs::default();
        assert!(r.is_empty());
        assert_eq!(r.iter().count(), 0);
        r.extend([5, 6, 7]);
        // One run, inline: no allocation.
        assert_eq!((r.head, r.rest.capacity()), ((5, 3), 0));
        r.extend([9, 3, 4, 0, 1, u32::MAX]);
        let want = [5, 6, 7, 9, 3, 4, 0, 1, u32::MAX];
        assert_eq!(r.iter().collect::<Vec<_>>(), want);
        assert_eq!(r.rest, [(9, 1), (3, 2), (0, 2), (u32::MAX, 1)]);
        // Removing from the middle splits a run; removing a whole run
        // leaves no empty one behind.
        r.retain(|id| id != 6 && id != 9);
        assert_eq!(r.iter().collect::<Vec<_>>(), [5, 7, 3, 4, 0, 1, u32::MAX]);
        assert_eq!(r.rest, [(7, 1), (3, 2), (0, 2), (u32::MAX, 1)]);
        r.retain(|id| id > 4);
        assert_eq!(r.iter().collect::<Vec<_>>(), [5, 7, u32::MAX]);
        r.retain(|_| false);
        assert!(r.is_empty());
        assert_eq!(r, Runs::default());
        assert_eq!(Runs::from_iter(0..1000).rest.len(), 0);
    }
}
