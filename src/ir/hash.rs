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

/// The `BuildHasher` of [`FxHasher`].
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;
/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;
/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<K> = HashSet<K, FxBuildHasher>;

/// A hash of a string's bytes (its length mixed in): Fx steps over 8-byte
/// words, then a full avalanche. Short tails are read as at most two
/// overlapping loads instead of byte by byte.
#[inline]
pub fn hash_str(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h = FxHasher {
        hash: b.len() as u64,
    };
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h.add(u64::from_le_bytes(w));
    }
    let t = chunks.remainder();
    let n = t.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
        let hi = u32::from_le_bytes([t[n - 4], t[n - 3], t[n - 2], t[n - 1]]) as u64;
        h.add(lo | hi << 32);
    } else if n > 0 {
        h.add(t[0] as u64 | (t[n / 2] as u64) << 8 | (t[n - 1] as u64) << 16);
    }
    // A full avalanche (murmur3's finalizer): [`StrIndex`] takes its slot
    // from the low bits and its tag from the high bits, and both must
    // depend on every input bit.
    let mut x = h.hash;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// A hash of a name for [`StrIndex`] that keeps numbered names close: the
/// trailing decimal digits (up to nine) are added as a number to both
/// halves of the hash of the rest, so `%t41`, `%t42`, `%t43` land in
/// neighbouring slots. Textual IR names its values this way (`%v12` from
/// the printer, `%t123` from generators and compilers); a lookup then
/// touches cache lines that recent lookups touched, where a random slot
/// per name misses the cache once per name in a large function.
#[inline]
pub fn hash_name(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut k = b.len();
    while k > 0 && b.len() - k < 9 && b[k - 1].is_ascii_digit() {
        k -= 1;
    }
    // `b[k..]` is ASCII, so `k` is a char boundary.
    let h = hash_str(&s[..k]);
    if k == b.len() {
        return h;
    }
    let num = b[k..].iter().fold(0u32, |n, &c| n * 10 + (c - b'0') as u32);
    let lo = (h as u32).wrapping_add(num);
    let hi = ((h >> 32) as u32).wrapping_add(num);
    (hi as u64) << 32 | lo as u64
}

/// An open-addressing hash table of `u32` ids whose string keys are kept by
/// the owner (a symbol table, a name arena): no key is copied. Lookups pass
/// a closure that returns the key of an id. Ids are never removed.
///
/// Each slot keeps the high 32 bits of its key's hash (the tag); the home
/// slot and the probe step (double hashing) come from the tag, so growing
/// never rehashes a key, and the runs of neighbouring slots that
/// [`hash_name`] gives numbered names do not turn into long probe chains
/// for other keys.
#[derive(Clone, Debug, Default)]
pub struct StrIndex {
    /// `(tag, id + 1)`; `id + 1 == 0` marks an empty slot.
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
        let step = probe_step(tag);
        let mut i = tag as usize & mask;
        loop {
            let (t, id1) = self.slots[i];
            if id1 == 0 {
                return None;
            }
            if t == tag && key_of(id1 - 1) == key {
                return Some(id1 - 1);
            }
            i = (i + step) & mask;
        }
    }

    /// Every id held, with its tag (the high half of its key's hash: only
    /// that half is used, so [`StrIndex::find`] and [`StrIndex::insert`]
    /// may be given the tag shifted up as the hash), in no particular
    /// order.
    pub fn tagged(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&(_, id1)| id1 != 0)
            .map(|&(tag, id1)| (tag, id1 - 1))
    }

    /// Makes room for `additional` more ids without growing.
    pub fn reserve(&mut self, additional: usize) {
        let want = (self.len + additional) * 2;
        if want > self.slots.len() {
            let cap = want.next_power_of_two().max(16);
            let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
            for (tag, id1) in old {
                if id1 != 0 {
                    self.place(tag, id1);
                }
            }
        }
    }

    /// Adds `id` under `hash`; the caller has checked that its key is new.
    #[inline]
    pub fn insert(&mut self, id: u32, hash: u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place((hash >> 32) as u32, id + 1);
        self.len += 1;
    }

    #[inline]
    fn place(&mut self, tag: u32, id1: u32) {
        let mask = self.slots.len() - 1;
        let step = probe_step(tag);
        let mut i = tag as usize & mask;
        while self.slots[i].1 != 0 {
            i = (i + step) & mask;
        }
        self.slots[i] = (tag, id1);
    }

    /// Slots visited to find `id` under `hash` (for tests of probe length).
    #[cfg(test)]
    fn probes(&self, hash: u64, id: u32) -> usize {
        let mask = self.slots.len() - 1;
        let tag = (hash >> 32) as u32;
        let mut i = tag as usize & mask;
        let mut n = 1;
        while self.slots[i].1 != id + 1 {
            i = (i + probe_step(tag)) & mask;
            n += 1;
        }
        n
    }

    #[cold]
    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
        for (tag, id1) in old {
            if id1 != 0 {
                self.place(tag, id1);
            }
        }
    }
}

/// The probe step of a tag: odd (so it visits every slot of a power-of-two
/// table) and taken from the tag's high bits, which differ between the
/// numbered names of different prefixes.
#[inline]
fn probe_step(tag: u32) -> usize {
    (tag >> 16 | 1) as usize
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
            ix.insert(i as u32, h);
        }
        assert_eq!(ix.len(), 1000);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                ix.find(k, hash_str(k), |id| &keys[id as usize]),
                Some(i as u32)
            );
        }
        assert_eq!(
            ix.find("nope", hash_str("nope"), |id| &keys[id as usize]),
            None
        );
        ix.clear();
        assert_eq!(
            ix.find("name1", hash_str("name1"), |id| &keys[id as usize]),
            None
        );
    }

    /// Names that differ only in their last digits must not share the
    /// tag (the high half) that the index compares before the text.
    #[test]
    fn similar_names_get_distinct_tags() {
        let mut tags: Vec<u32> = (0..100_000)
            .map(|i| (hash_str(&format!("t{i}")) >> 32) as u32)
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert!(tags.len() > 99_900, "{} distinct tags", tags.len());
    }

    #[test]
    fn numbered_names_are_neighbours_and_collide_only_on_equal_numbers() {
        let tag = |s: &str| (hash_name(s) >> 32) as u32;
        assert_eq!(tag("t42").wrapping_add(1), tag("t43"));
        assert_eq!(tag("17").wrapping_add(3), tag("20"));
        assert_ne!(tag("t42"), tag("u42"));
        // Equal numbers spelled differently share a hash; the index
        // compares the text.
        assert_eq!(hash_name("t01"), hash_name("t1"));
        let keys = ["t01", "t1", "x", "x1", "1", "01"];
        let mut ix = StrIndex::new();
        for (i, k) in keys.iter().enumerate() {
            ix.insert(i as u32, hash_name(k));
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                ix.find(k, hash_name(k), |id| keys[id as usize]),
                Some(i as u32)
            );
        }
    }

    /// Two long runs of numbered names share the table without long probe
    /// sequences: every lookup finishes in a few probes.
    #[test]
    fn overlapping_runs_stay_short() {
        let keys: Vec<String> = (0..50_000)
            .map(|i| format!("t{i}"))
            .chain((0..50_000).map(|i| format!("p{i}")))
            .collect();
        let mut ix = StrIndex::new();
        for (i, k) in keys.iter().enumerate() {
            ix.insert(i as u32, hash_name(k));
        }
        let mut total = 0;
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                ix.find(k, hash_name(k), |id| &keys[id as usize]),
                Some(i as u32)
            );
            total += ix.probes(hash_name(k), i as u32);
        }
        assert!(total < 3 * keys.len(), "{total} probes");
    }

    #[test]
    fn hash_depends_on_every_byte_and_length() {
        assert_ne!(hash_str("a"), hash_str("b"));
        assert_ne!(hash_str("a"), hash_str("a\0"));
        assert_ne!(hash_str("abcdefgh1"), hash_str("abcdefgh2"));
        assert_ne!(hash_str(""), hash_str("\0"));
    }
}
