//! A hash table with scopes, for walks of the dominator tree: entries made
//! while visiting a block are undone when the walk leaves the block's
//! subtree, so a lookup sees exactly the entries of dominating blocks.
//!
//! Keys are small and hashed often, so the hasher is the multiply-rotate
//! "Fx" hash (as in rustc), not SipHash: no untrusted keys reach it in a
//! way that matters (the worst case is a slower compile of that input).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// The Fx hasher: fast for short keys of integers.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with the Fx hasher.
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

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

    /// A mark to pass to [`ScopedTable::pop_to`] when the scope ends.
    pub fn mark(&self) -> usize {
        self.undo.len()
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
