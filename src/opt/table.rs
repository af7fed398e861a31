//! A hash table with scopes, for walks of the dominator tree: entries made
//! while visiting a block are undone when the walk leaves the block's
//! subtree, so a lookup sees exactly the entries of dominating blocks.
//!
//! Keys are small and hashed often: the map uses the registry's Fx hasher
//! ([`crate::registry::symbols::FxHashMap`]), not SipHash.

use crate::registry::symbols::FxHashMap;
use std::hash::Hash;

/// A map whose insertions can be undone scope by scope.
pub struct ScopedTable<K, V> {
    map: FxHashMap<K, V>,
    /// Each insertion's key and the value it shadowed.
    undo: Vec<(K, Option<V>)>,
}

impl<K: Hash + Eq + Clone, V: Clone> ScopedTable<K, V> {
    pub fn new() -> Self {
        ScopedTable {
            map: FxHashMap::default(),
            undo: Vec::new(),
        }
    }

    /// An empty table with room for `n` entries before it grows (a
    /// function's instruction count: no rehashing while a pass walks it).
    pub fn with_capacity(n: usize) -> Self {
        ScopedTable {
            map: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            undo: Vec::with_capacity(n),
        }
    }

    /// Removes every entry, keeping the storage (an empty table is left
    /// as it is: clearing costs its capacity).
    pub fn clear(&mut self) {
        if !self.map.is_empty() {
            self.map.clear();
        }
        self.undo.clear();
    }

    /// Makes room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
        self.undo.reserve(n);
    }

    /// A mark to pass to [`ScopedTable::pop_to`] when the scope ends.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Whether no entry is in scope.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// Inserts in the current scope.
    pub fn insert(&mut self, k: K, v: V) {
        let old = self.map.insert(k.clone(), v);
        self.undo.push((k, old));
    }

    /// Undoes every insertion made since `mark`.
    pub fn pop_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some((k, old)) = self.undo.pop() else {
                break;
            };
            match old {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for ScopedTable<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_undo_insertions_and_restore_shadowed_entries() {
        let mut t: ScopedTable<u32, &str> = ScopedTable::new();
        t.insert(1, "a");
        let m = t.mark();
        t.insert(1, "b");
        t.insert(2, "c");
        assert_eq!((t.get(&1), t.get(&2)), (Some(&"b"), Some(&"c")));
        t.pop_to(m);
        assert_eq!((t.get(&1), t.get(&2)), (Some(&"a"), None));
    }
}
