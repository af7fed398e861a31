//! The names of a function's values and blocks, interned: one text arena,
//! one span per distinct name, and a hash index from text to [`Name`].
//!
//! Interning makes a name 4 bytes in the IR instead of a heap string per
//! value, and it settles two verifier questions without hashing again:
//! equal texts always get the same [`Name`] (so "is this name defined
//! twice?" is a stamp per `Name`), and whether a text is a valid value name
//! or block label is decided once, when it is interned.

use super::hash::{hash_name, StrIndex};
use std::fmt;
use std::num::NonZeroU32;

/// An interned name of one function's [`Names`] table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(NonZeroU32);

impl Name {
    /// This name's index in its table (dense, from 0).
    #[inline]
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }

    fn from_index(i: usize) -> Name {
        // `i + 1` is nonzero; tables hold fewer than `u32::MAX` names.
        Name(NonZeroU32::new(i as u32 + 1).expect("name index overflow"))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name{}", self.index())
    }
}

/// Span length bits; the two flag bits above them say which name syntax
/// the text matches.
const LEN_MASK: u32 = (1 << 30) - 1;
const VALID_LABEL: u32 = 1 << 30;
const VALID_VALUE: u32 = 1 << 31;

/// Entries of the recent-names cache (a power of two).
const RECENT: usize = 256;

/// An interning table of names (see the module docs).
///
/// Besides the hash index, a large table keeps a small direct-mapped cache
/// of the names interned last: in SSA text most uses name a value defined
/// a few lines earlier, and the cache (2 KiB) stays in L1 where the index
/// of a 100,000-name function would miss the cache on every lookup.
#[derive(Clone, Default)]
pub struct Names {
    text: String,
    /// `(start, len | flags)` of each name in `text`.
    spans: Vec<(u32, u32)>,
    index: StrIndex,
    /// `(tag, id + 1)` by the low bits of the hash; empty until the table
    /// holds more than `RECENT` names.
    recent: Vec<(u32, u32)>,
}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| self.get(Name::from_index(i))))
            .finish()
    }
}

/// Whether `s` matches the SPEC's name syntax `[A-Za-z_.$][A-Za-z0-9_.$]*`
/// (block labels, symbols), and whether it is a valid value name (that
/// syntax, or plain digits).
pub fn name_syntax(s: &str) -> (bool, bool) {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return (false, false);
    };
    let word = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$');
    if first.is_ascii_digit() {
        return (false, b.iter().all(u8::is_ascii_digit));
    }
    let ok = word(&first) && b.iter().all(word);
    (ok, ok)
}

impl Names {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The text of `name`. A name of another table reads as `""` (or as
    /// that table's name with the same index).
    #[inline]
    pub fn get(&self, name: Name) -> &str {
        match self.spans.get(name.index()) {
            Some(&(start, len)) => {
                let (start, len) = (start as usize, (len & LEN_MASK) as usize);
                &self.text[start..start + len]
            }
            None => "",
        }
    }

    /// The name with text `s`, interning it if new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Name {
        let h = hash_name(s);
        self.intern_hashed(s, h)
    }

    /// [`Names::intern`] with `hash_name(s)` already computed.
    pub fn intern_hashed(&mut self, s: &str, hash: u64) -> Name {
        if self.index.len() != self.spans.len() {
            self.rebuild_index();
        }
        let Names {
            text,
            spans,
            index,
            recent,
        } = self;
        let key_of = |id: u32| {
            let (start, len) = spans[id as usize];
            &text[start as usize..start as usize + (len & LEN_MASK) as usize]
        };
        let tag = (hash >> 32) as u32;
        let slot = hash as usize & (RECENT - 1);
        if let Some(&(t, id1)) = recent.get(slot) {
            if t == tag && id1 != 0 && key_of(id1 - 1) == s {
                return Name::from_index(id1 as usize - 1);
            }
        }
        if let Some(id) = index.find(s, hash, key_of) {
            if let Some(r) = recent.get_mut(slot) {
                *r = (tag, id + 1);
            }
            return Name::from_index(id as usize);
        }
        assert!(
            s.len() <= LEN_MASK as usize && text.len() + s.len() <= u32::MAX as usize,
            "name table overflow"
        );
        let (label, value) = name_syntax(s);
        let flags = if label { VALID_LABEL } else { 0 } | if value { VALID_VALUE } else { 0 };
        let id = spans.len() as u32;
        spans.push((text.len() as u32, s.len() as u32 | flags));
        text.push_str(s);
        index.insert(id, hash);
        if let Some(r) = recent.get_mut(slot) {
            *r = (tag, id + 1);
        } else if spans.len() > RECENT {
            recent.resize(RECENT, (0, 0));
        }
        Name::from_index(id as usize)
    }

    #[cold]
    fn rebuild_index(&mut self) {
        let Names {
            text, spans, index, ..
        } = self;
        let key = |id: u32| {
            let (start, len) = spans[id as usize];
            &text[start as usize..start as usize + (len & LEN_MASK) as usize]
        };
        *index = StrIndex::new();
        for id in 0..spans.len() as u32 {
            index.insert(id, hash_name(key(id)));
        }
    }

    /// The name with text `s`, if interned.
    pub fn lookup(&self, s: &str) -> Option<Name> {
        if self.index.len() != self.spans.len() {
            return (0..self.len())
                .map(Name::from_index)
                .find(|&n| self.get(n) == s);
        }
        let key_of = |id: u32| {
            let (start, len) = self.spans[id as usize];
            &self.text[start as usize..start as usize + (len & LEN_MASK) as usize]
        };
        self.index
            .find(s, hash_name(s), key_of)
            .map(|id| Name::from_index(id as usize))
    }

    /// Whether `name` belongs to this table.
    pub fn contains(&self, name: Name) -> bool {
        name.index() < self.spans.len()
    }

    /// Whether `name` is a valid block label (and symbol name).
    #[inline]
    pub fn is_valid_label(&self, name: Name) -> bool {
        self.spans
            .get(name.index())
            .is_some_and(|s| s.1 & VALID_LABEL != 0)
    }

    /// Whether `name` is a valid value name (label syntax or plain digits).
    #[inline]
    pub fn is_valid_value_name(&self, name: Name) -> bool {
        self.spans
            .get(name.index())
            .is_some_and(|s| s.1 & VALID_VALUE != 0)
    }

    /// Removes every name, keeping the allocations.
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.index.clear();
        self.recent.clear();
    }

    /// This table's names at their exact size, without the hash index (it
    /// is rebuilt if the result interns again): what a finished function
    /// keeps. A large table is moved out, a small one copied (`self` keeps
    /// its buffers for reuse).
    pub fn take_compact(&mut self) -> Names {
        let (text, spans) = if self.spans.len() >= 4096 {
            self.index = StrIndex::new();
            self.recent = Vec::new();
            let mut text = std::mem::take(&mut self.text);
            let mut spans = std::mem::take(&mut self.spans);
            text.shrink_to_fit();
            spans.shrink_to_fit();
            (text, spans)
        } else {
            (self.text.as_str().into(), self.spans.clone())
        };
        Names {
            text,
            spans,
            index: StrIndex::new(),
            recent: Vec::new(),
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + (self.spans.capacity() + self.recent.capacity()) * 8
            + self.index.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_flags_syntax() {
        let mut n = Names::new();
        let a = n.intern("a");
        let b = n.intern("17");
        let c = n.intern("x.y$z");
        let bad = n.intern("1x");
        assert_eq!(n.intern("a"), a);
        assert_eq!(n.len(), 4);
        assert_eq!(
            (n.get(a), n.get(b), n.get(c), n.get(bad)),
            ("a", "17", "x.y$z", "1x")
        );
        assert!(n.is_valid_label(a) && n.is_valid_value_name(a));
        assert!(!n.is_valid_label(b) && n.is_valid_value_name(b));
        assert!(n.is_valid_label(c));
        assert!(!n.is_valid_label(bad) && !n.is_valid_value_name(bad));
        let empty = n.intern("");
        assert!(!n.is_valid_label(empty) && !n.is_valid_value_name(empty));
        assert_eq!(n.lookup("x.y$z"), Some(c));
        assert_eq!(n.lookup("q"), None);
    }

    #[test]
    fn many_names_survive_growth() {
        let mut n = Names::new();
        let ids: Vec<Name> = (0..5000).map(|i| n.intern(&format!("v{i}"))).collect();
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(n.get(id), format!("v{i}"));
            assert_eq!(n.intern(&format!("v{i}")), id);
        }
    }
}
