//! Fast hashing for names and small keys: an Fx-style hasher (the one
//! rustc uses: rotate, xor, multiply per 8-byte word) and [`StrIndex`], an
//! open-addressing table of `u32` ids keyed by strings that live elsewhere.
//!
//! The default `HashMap` hasher (SipHash-1-3) resists hash flooding but costs
//! tens of nanoseconds per short key; keys here are names from a program
//! text, hashed once per occurrence on the parser's hot path. Flooding only
//! makes lookups slower, never wrong, and the input is the user's own
//! program.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// An Fx-style hasher: `h = (h.rotl(5) ^ word) * SEED` per 8-byte word.
#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
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

    /// The product's high bits mix every input bit, its low bits only the
    /// low input bits: rotating brings good bits to the bottom, where hash
    /// tables take their index (as rustc-hash 2 does).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// The Fx hash of a string's bytes (its length mixed in).
#[inline]
pub fn hash_str(s: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    h.add(s.len() as u64);
    h.finish()
}

/// An open-addressing hash table of `u32` ids whose string keys are kept by
/// the owner (a symbol table, a name arena): no key is copied. Lookups pass
/// a closure that returns the key of an id. Ids are never removed.
#[derive(Clone, Debug, Default)]
pub struct StrIndex {
    /// `(hash high bits, id + 1)`; `id + 1 == 0` marks an empty slot.
    slots: Vec<(u32, u32)>,
    len: usize,
}

impl StrIndex {
    /// An empty index.
    pub const fn new() -> Self {
        StrIndex {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no id.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }

    /// Removes every id, keeping the allocation unless it is much larger
    /// than what was used (so that clearing costs O(ids), amortized).
    pub fn clear(&mut self) {
        if self.slots.len() > 64 && self.len * 8 < self.slots.len() {
            self.slots = Vec::new();
        } else {
            self.slots.iter_mut().for_each(|s| *s = (0, 0));
        }
        self.len = 0;
    }

    /// The id whose key equals `key` (`hash` is [`hash_str`] of it).
    #[inline]
    pub fn find<'k>(&self, key: &str, hash: u64, key_of: impl Fn(u32) -> &'k str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize & mask;
        loop {
            let (t, id1) = self.slots[i];
            if id1 == 0 {
                return None;
            }
            if t == tag && key_of(id1 - 1) == key {
                return Some(id1 - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `id` under `hash`; the caller has checked that its key is new.
    /// `hash_of` gives the hash of an existing id when the table grows.
    #[inline]
    pub fn insert(&mut self, id: u32, hash: u64, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(hash_of);
        }
        self.place(id, hash);
        self.len += 1;
    }

    fn place(&mut self, id: u32, hash: u64) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i].1 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = ((hash >> 32) as u32, id + 1);
    }

    #[cold]
    fn grow(&mut self, hash_of: impl Fn(u32) -> u64) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
        for (_, id1) in old {
            if id1 != 0 {
                self.place(id1 - 1, hash_of(id1 - 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_finds_what_was_inserted() {
        let keys: Vec<String> = (0..1000).map(|i| format!("name{i}")).collect();
        let mut ix = StrIndex::new();
        for (i, k) in keys.iter().enumerate() {
            let h = hash_str(k);
            assert_eq!(ix.find(k, h, |id| &keys[id as usize]), None);
            ix.insert(i as u32, h, |id| hash_str(&keys[id as usize]));
        }
        assert_eq!(ix.len(), 1000);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(ix.find(k, hash_str(k), |id| &keys[id as usize]), Some(i as u32));
        }
        assert_eq!(ix.find("nope", hash_str("nope"), |id| &keys[id as usize]), None);
        ix.clear();
        assert_eq!(ix.find("name1", hash_str("name1"), |id| &keys[id as usize]), None);
    }

    #[test]
    fn hash_depends_on_every_byte_and_length() {
        assert_ne!(hash_str("a"), hash_str("b"));
        assert_ne!(hash_str("a"), hash_str("a\0"));
        assert_ne!(hash_str("abcdefgh1"), hash_str("abcdefgh2"));
        assert_ne!(hash_str(""), hash_str("\0"));
    }
}
