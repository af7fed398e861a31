//! The names of a function's values and blocks, interned: one text arena,
//! one span per distinct name, and lookup structures from text to
//! [`Name`] (numbered names by prefix and number, the others by hash).
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

    pub(crate) fn from_index(i: usize) -> Name {
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

/// Most prefixes that get a [`Group`]; names with other prefixes are
/// hashed.
const MAX_GROUPS: usize = 16;
/// Most trailing digits of a name found through a [`Group`].
const MAX_DIGITS: usize = 7;
/// Longest prefix of a [`Group`] (its bytes are packed into one word).
const MAX_PREFIX: usize = 8;

/// The numbered names (`PREFIX` + a decimal number) of one prefix: the
/// number selects the name directly, with no hashing and no comparison of
/// text.
#[derive(Clone, Default)]
struct Group {
    /// The prefix's bytes, little-endian in one word (zero-padded), and
    /// its length: a lookup compares two integers instead of texts.
    key: u64,
    len: u8,
    /// The syntax flags of every name of the group (see [`prefix_flags`]).
    flags: u32,
    /// `id + 1` by number; 0 where no such name exists.
    ids: Vec<u32>,
    /// Whether some names of this prefix went to the hash index instead
    /// (their number was too large for `ids` at the time): a miss in `ids`
    /// then looks there too.
    spilled: bool,
}

/// An interning table of names (see the module docs).
///
/// Textual IR mostly names values and blocks with a prefix and a number
/// (`%v12` from the printer, `%t123`, `b7`, `%0` from generators and
/// compilers). Such a name is found through its prefix's `Group`, a
/// dense array indexed by the number; other names through a hash index.
/// Which of the two holds a name depends on its text alone (and, for a
/// number far beyond the table's size, on a `spilled` flag that sends
/// lookups to both), so each name is in exactly one of them.
#[derive(Clone, Default)]
pub struct Names {
    text: String,
    /// `(start, len | flags)` of each name in `text`.
    spans: Vec<(u32, u32)>,
    /// Names that are not in a group.
    index: StrIndex,
    groups: Vec<Group>,
    /// Names reachable through `index` and `groups` (the first `indexed`
    /// ones); fewer than `spans.len()` after [`Names::take_compact`], until
    /// the next intern rebuilds the lookup structures.
    indexed: usize,
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

/// `s` as a prefix and a number, when it ends in 1 to [`MAX_DIGITS`]
/// decimal digits without a leading zero (`t0`, `t17`, `42`; not `t07`):
/// the names a [`Group`] may hold.
#[inline]
fn split_number(s: &str) -> Option<(&[u8], usize)> {
    let b = s.as_bytes();
    let mut k = b.len();
    let (mut n, mut scale) = (0usize, 1usize);
    while k > 0 {
        let d = b[k - 1].wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        if b.len() - k == MAX_DIGITS {
            return None;
        }
        n += d as usize * scale;
        scale *= 10;
        k -= 1;
    }
    match &b[k..] {
        [] | [b'0', _, ..] => None,
        _ => Some((&b[..k], n)),
    }
}

/// `prefix` packed into a word (see [`Group::key`]), if it is short
/// enough for a group.
#[inline]
fn pack(prefix: &[u8]) -> Option<u64> {
    if prefix.len() > MAX_PREFIX {
        return None;
    }
    Some(
        prefix
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &c)| w | (c as u64) << (8 * i)),
    )
}

/// What [`Names`] files a numbered name under (see [`Group`]), worked out
/// once (by [`numbered`]) so that finding it again needs
/// neither [`split_number`] nor [`pack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Numbered {
    /// The prefix packed as [`pack`] packs it.
    key: u64,
    /// The prefix's length in bytes.
    len: u8,
    /// The number after the prefix.
    n: u32,
}

/// The [`Numbered`] parts of the name `src[start..end]`, when it is one a
/// [`Group`] may hold, as `split_number` and `pack` would find them. Only
/// names of at most 8 bytes with 8 bytes of `src` from `start` are read
/// (as one word, without a loop over the bytes); `None` for the others,
/// which [`Names::intern`] then reads as usual. The name's bytes must be
/// ASCII (name characters).
#[inline]
pub(crate) fn numbered(src: &[u8], start: usize, end: usize) -> Option<Numbered> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    let len = end.checked_sub(start)?;
    let bytes = src.get(start..start.checked_add(8)?)?;
    if len == 0 || len > 8 {
        return None;
    }
    let mask = u64::MAX >> (64 - 8 * len);
    let w = u64::from_le_bytes(bytes.try_into().ok()?) & mask;
    // Each byte minus '0' (an ASCII byte: below 0x80 after the xor, so the
    // add below carries out of no byte); a byte's top bit set in `other`
    // marks a name byte that is not a digit, the last of them ends the
    // prefix.
    let x = w ^ (0x30 * LOW);
    let other = (x + 0x76 * LOW) & (0x80 * LOW) & mask;
    let prefix = (64 - other.leading_zeros() as usize) / 8;
    let digits = len - prefix;
    if digits == 0 || digits > MAX_DIGITS {
        return None;
    }
    let d = x >> (8 * prefix);
    if digits > 1 && d & 0xff == 0 {
        return None;
    }
    // The digits (the first in the lowest byte) moved up to the top bytes,
    // below them zeros: an 8-digit number with leading zeros, combined
    // pairwise into 2-, 4- and 8-digit lanes.
    let mut v = d << (8 * (8 - digits));
    v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    v = (v * 10_000 + (v >> 32)) & 0xffff_ffff;
    Some(Numbered {
        key: w & ((1u64 << (8 * prefix)) - 1),
        len: prefix as u8,
        n: v as u32,
    })
}

/// The flags of every name `PREFIX` + digits: the digits are name
/// characters, so the name has the syntax of its prefix (an empty prefix:
/// plain digits, a value name only).
fn prefix_flags(prefix: &[u8]) -> u32 {
    if prefix.is_empty() {
        return VALID_VALUE;
    }
    // A prefix ends in a non-digit, so the syntax check sees it as text.
    match std::str::from_utf8(prefix).map(name_syntax) {
        Ok((true, _)) => VALID_LABEL | VALID_VALUE,
        _ => 0,
    }
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
            Some(&(start, len)) => span_text(&self.text, start, len),
            None => "",
        }
    }

    /// The name with text `s`, interning it if new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Name {
        if self.indexed != self.spans.len() {
            self.rebuild_index();
        }
        if let Some((prefix, n)) = split_number(s) {
            if let Some(g) = self.group_of(prefix) {
                let group = &self.groups[g];
                if let Some(&id1) = group.ids.get(n) {
                    if id1 != 0 {
                        return Name::from_index(id1 as usize - 1);
                    }
                }
                if group.spilled {
                    if let Some(id) = self.find_hashed(s, hash_name(s)) {
                        return Name::from_index(id as usize);
                    }
                }
                let id = self.push(s, group.flags);
                self.place_numbered(g, n, id, s);
                return Name::from_index(id as usize);
            }
        }
        let hash = hash_name(s);
        if let Some(id) = self.find_hashed(s, hash) {
            return Name::from_index(id as usize);
        }
        let (label, value) = name_syntax(s);
        let flags = if label { VALID_LABEL } else { 0 } | if value { VALID_VALUE } else { 0 };
        let id = self.push(s, flags);
        self.index.insert(id, hash);
        self.indexed += 1;
        Name::from_index(id as usize)
    }

    /// [`Names::intern`] for a name `s` whose [`Numbered`] parts the
    /// caller read with [`numbered`]: a name already in its group is found
    /// without looking at the text again; anything else is interned as
    /// usual.
    #[inline]
    pub(crate) fn intern_numbered(&mut self, s: &str, num: Numbered) -> Name {
        if self.indexed == self.spans.len() {
            let found = self
                .groups
                .iter()
                .find(|g| g.key == num.key && g.len == num.len);
            if let Some(&id1) = found.and_then(|g| g.ids.get(num.n as usize)) {
                if id1 != 0 {
                    return Name::from_index(id1 as usize - 1);
                }
            }
        }
        self.intern(s)
    }

    /// Appends `s`, which the caller knows is not in the table, without
    /// filing it in the lookup structures: the next [`Names::intern`] files
    /// it (a small function's names, found through the parser's own cache,
    /// are never filed).
    #[inline]
    pub(crate) fn push_new(&mut self, s: &str) -> Name {
        self.push_new_with(s, name_syntax(s))
    }

    /// [`Names::push_new`] for a caller that knows the name's syntax (what
    /// [`name_syntax`] says of it): the parser works it out from the name's
    /// bytes packed in a word, without a loop over them.
    #[inline]
    pub(crate) fn push_new_with(&mut self, s: &str, (label, value): (bool, bool)) -> Name {
        debug_assert_eq!((label, value), name_syntax(s), "{s:?}");
        let flags = if label { VALID_LABEL } else { 0 } | if value { VALID_VALUE } else { 0 };
        Name::from_index(self.push(s, flags) as usize)
    }

    /// [`Names::push_new_with`] out of line.
    #[cold]
    #[inline(never)]
    fn push_new_cold(&mut self, s: &str, syntax: (bool, bool)) -> Name {
        self.push_new_with(s, syntax)
    }

    /// [`Names::push_new_with`] for a name of at most 7 ASCII bytes, also
    /// given as `word`: its bytes little-endian in the low bytes (what
    /// follows them is ignored; other names are pushed as usual). The text is appended as one 8-byte store, not a
    /// call to copy a few bytes.
    #[inline(always)]
    pub(crate) fn push_new_short(&mut self, s: &str, word: u64, syntax: (bool, bool)) -> Name {
        let n = s.len();
        // The bytes kept (the low `n` of `word`) must be ASCII, so that the
        // text stays UTF-8 whatever the caller passes.
        if n > 7 || word & ((1u64 << (8 * n)) - 1) & 0x8080_8080_8080_8080 != 0 {
            return self.push_new_cold(s, syntax);
        }
        debug_assert_eq!(&word.to_le_bytes()[..n], s.as_bytes(), "{s:?}");
        debug_assert_eq!(syntax, name_syntax(s), "{s:?}");
        let (label, value) = syntax;
        let flags = if label { VALID_LABEL } else { 0 } | if value { VALID_VALUE } else { 0 };
        let start = self.text.len();
        assert!(start + 8 <= u32::MAX as usize, "name table overflow");
        let id = self.spans.len() as u32;
        self.spans.push((start as u32, n as u32 | flags));
        self.text.reserve(8);
        // SAFETY: `reserve(8)` leaves room for 8 bytes after the text, so
        // the unaligned 8-byte store stays inside the allocation; the
        // length then grows by `n <= 7` of those bytes, which were just
        // written and are ASCII (checked above): the text stays valid
        // UTF-8.
        unsafe {
            let v = self.text.as_mut_vec();
            std::ptr::write_unaligned(v.as_mut_ptr().add(start).cast::<u64>(), word.to_le());
            v.set_len(start + n);
        }
        Name::from_index(id as usize)
    }

    /// The group of names starting with `prefix`, created if there is
    /// room; `None` sends the name to the hash index.
    #[inline]
    fn group_of(&mut self, prefix: &[u8]) -> Option<usize> {
        match self.find_group(prefix) {
            Some(g) => Some(g),
            None => self.new_group(prefix),
        }
    }

    /// The group of names starting with `prefix`, if there is one.
    #[inline]
    fn find_group(&self, prefix: &[u8]) -> Option<usize> {
        let key = pack(prefix)?;
        let len = prefix.len() as u8;
        self.groups
            .iter()
            .position(|g| g.key == key && g.len == len)
    }

    #[cold]
    fn new_group(&mut self, prefix: &[u8]) -> Option<usize> {
        if self.groups.len() == MAX_GROUPS {
            return None;
        }
        self.groups.push(Group {
            key: pack(prefix)?,
            len: prefix.len() as u8,
            flags: prefix_flags(prefix),
            ..Group::default()
        });
        Some(self.groups.len() - 1)
    }

    /// Files new name `id` (text `s`, number `n`) under group `g`, or under
    /// the hash index when `n` is far beyond the table's size (so that a
    /// name like `%t9999999` cannot make a large array).
    fn place_numbered(&mut self, g: usize, n: usize, id: u32, s: &str) {
        let limit = 2 * self.spans.len() + 1024;
        let group = &mut self.groups[g];
        if n < limit {
            if group.ids.len() <= n {
                // Grown geometrically: numbers mostly come in increasing
                // order, one at a time. Room already reserved (see
                // [`Names::reserve_ratio`]) is used before growing again.
                let mut len = (n + 1).max(2 * group.ids.len()).max(16);
                if n < group.ids.capacity() {
                    len = len.min(group.ids.capacity());
                }
                group.ids.resize(len, 0);
            }
            group.ids[n] = id + 1;
        } else {
            group.spilled = true;
            self.index.insert(id, hash_name(s));
        }
        self.indexed += 1;
    }

    fn find_hashed(&self, s: &str, hash: u64) -> Option<u32> {
        let key_of = |id: u32| {
            let (start, len) = self.spans[id as usize];
            span_text(&self.text, start, len)
        };
        self.index.find(s, hash, key_of)
    }

    /// Appends the text of a new name with syntax `flags`; returns its id.
    #[inline]
    fn push(&mut self, s: &str, flags: u32) -> u32 {
        assert!(
            s.len() <= LEN_MASK as usize && self.text.len() + s.len() <= u32::MAX as usize,
            "name table overflow"
        );
        let id = self.spans.len() as u32;
        self.spans
            .push((self.text.len() as u32, s.len() as u32 | flags));
        self.text.push_str(s);
        id
    }

    /// Files the names not yet in the lookup structures: all of them after
    /// [`Names::take_compact`] dropped the structures, the last ones after
    /// [`Names::push_new`].
    #[cold]
    fn rebuild_index(&mut self) {
        // The text is set aside while the names are filed (filing does not
        // read it), so that each name is read in place rather than copied.
        let text = std::mem::take(&mut self.text);
        // The structures hold exactly the first `indexed` names (none after
        // `clear` and `take_compact`).
        for id in self.indexed as u32..self.spans.len() as u32 {
            let (start, len) = self.spans[id as usize];
            let s = span_text(&text, start, len);
            match split_number(s).and_then(|(p, n)| Some((self.group_of(p)?, n))) {
                Some((g, n)) => self.place_numbered(g, n, id, s),
                None => {
                    self.index.insert(id, hash_name(s));
                    self.indexed += 1;
                }
            }
        }
        self.text = text;
    }

    /// The name with text `s`, if interned.
    pub fn lookup(&self, s: &str) -> Option<Name> {
        if self.indexed != self.spans.len() {
            return (0..self.len())
                .map(Name::from_index)
                .find(|&n| self.get(n) == s);
        }
        if let Some((prefix, n)) = split_number(s) {
            if let Some(group) = self.find_group(prefix).map(|g| &self.groups[g]) {
                if let Some(&id1) = group.ids.get(n).filter(|&&id1| id1 != 0) {
                    return Some(Name::from_index(id1 as usize - 1));
                }
                if !group.spilled {
                    return None;
                }
            }
        }
        self.find_hashed(s, hash_name(s))
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

    /// Writes `mark` at the index of each valid value name in `out` and 0
    /// at the others' (the first [`Names::len`] entries; `out` is at
    /// least that long): the verifier's per-name stamps, each valid name
    /// not met yet. Branch-free, one pass over the spans.
    pub(crate) fn mark_value_names(&self, out: &mut [u32], mark: u32) {
        const _: () = assert!(VALID_VALUE == 1 << 31);
        for (o, &(_, len)) in out.iter_mut().zip(&self.spans) {
            // All ones where the flag (the top bit) is set.
            *o = ((len as i32 >> 31) as u32) & mark;
        }
    }

    /// Makes room for `more / n` times as many names again as the table
    /// holds (text, spans, and the numbered names' arrays), for a caller
    /// that knows its rate of new names.
    pub(crate) fn reserve_ratio(&mut self, more: usize, n: usize) {
        let n = n.max(1);
        let grow = |len: usize| len.saturating_mul(more) / n + 1;
        self.text.reserve(grow(self.text.len()));
        self.spans.reserve(grow(self.spans.len()));
        for g in &mut self.groups {
            g.ids.reserve(grow(g.ids.len()));
        }
    }

    /// Removes every name, keeping the allocations: the groups stay (empty)
    /// for the next function, which likely uses the same prefixes, unless
    /// they are all taken.
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.index.clear();
        if self.groups.len() == MAX_GROUPS {
            self.groups.clear();
        }
        for g in &mut self.groups {
            g.ids.clear();
            g.spilled = false;
        }
        self.indexed = 0;
    }

    /// This table's names at their exact size, without the lookup
    /// structures (rebuilt if the result interns again): what a finished
    /// function keeps. A large table is moved out, a small one copied
    /// (`self` keeps its buffers for reuse).
    pub fn take_compact(&mut self) -> Names {
        let (text, spans) = if self.spans.len() >= 4096 {
            self.index = StrIndex::new();
            self.groups = Vec::new();
            self.indexed = 0;
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
            ..Names::default()
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.spans.capacity() * 8
            + self.index.heap_bytes()
            + self
                .groups
                .iter()
                .map(|g| g.ids.capacity() * 4)
                .sum::<usize>()
    }
}

#[inline]
fn span_text(text: &str, start: u32, len: u32) -> &str {
    let (start, len) = (start as usize, (len & LEN_MASK) as usize);
    &text[start..start + len]
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
    fn numbered_names_resolve_by_prefix_and_number() {
        let mut n = Names::new();
        let texts = [
            "t0",
            "t1",
            "t01",
            "t10",
            "0",
            "00",
            "7",
            "t",
            "u1",
            "t1234567",
            "t12345678",
            "t99999",
            "t100000",
            "x.1",
            "1x1",
            "eightchr1",
            "ninechars1",
            "ninechars2",
            "ninechars",
        ];
        let ids: Vec<Name> = texts.iter().map(|t| n.intern(t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), texts.len(), "distinct texts, distinct names");
        for (t, &id) in texts.iter().zip(&ids) {
            assert_eq!(n.get(id), *t);
            assert_eq!(n.intern(t), id, "{t}");
            assert_eq!(n.lookup(t), Some(id), "{t}");
        }
        assert_eq!(n.lookup("t2"), None);
        assert_eq!(n.lookup("t100001"), None);
        // Numbers far beyond the table's size (spilled to the hash index)
        // and then the numbers below them.
        let big = n.intern("t5000000");
        let small = n.intern("t3");
        assert_eq!(n.intern("t5000000"), big);
        assert_eq!(n.lookup("t5000000"), Some(big));
        assert_eq!(n.lookup("t3"), Some(small));
        // After compaction every name is found again.
        let mut c = n.take_compact();
        assert_eq!(c.lookup("t99999"), Some(ids[11]));
        assert_eq!(c.intern("t5000000"), big);
        assert_eq!(c.intern("t01"), ids[2]);
        assert_eq!(c.intern("t1"), ids[1]);
        assert_eq!(c.len(), n.len());
    }

    /// `numbered` agrees with `split_number` and `pack` on every name,
    /// and the names it reads are found by `intern_numbered` as by
    /// `intern`.
    #[test]
    fn scanned_numbers_match_split_number() {
        let texts = [
            "t0",
            "t1",
            "t01",
            "t10",
            "0",
            "00",
            "01",
            "7",
            "t",
            "u1",
            "t1234567",
            "t12345678",
            "1234567",
            "12345678",
            "t99999",
            "x.1",
            "1x1",
            "eightchr1",
            "eightch1",
            "ninechars1",
            "ninechars",
            "a1b2",
            "a1b02",
            "v4294967",
            "v9999999",
            "ab000",
            "x10000",
            "z.09",
            "q7",
            "12",
            "90",
            "$0",
            "_9",
            "a.b.c10",
            "",
        ];
        let mut n = Names::new();
        for t in texts {
            // The name is read inside a longer text (8 bytes are loaded),
            // and alone (then it is not read).
            let line = format!("{t}, %x, 1");
            let num = numbered(line.as_bytes(), 0, t.len());
            if t.len() < 8 {
                assert_eq!(numbered(t.as_bytes(), 0, t.len()), None);
            }
            let prefixed = format!("= %{t}, %y, 1");
            assert_eq!(numbered(prefixed.as_bytes(), 3, t.len() + 3), num, "{t}");
            let want = split_number(t).filter(|_| t.len() <= 8).and_then(|(p, k)| {
                Some(Numbered {
                    key: pack(p)?,
                    len: p.len() as u8,
                    n: k as u32,
                })
            });
            assert_eq!(num, want, "{t}");
            let id = n.intern(t);
            if let Some(num) = num {
                assert_eq!(n.intern_numbered(t, num), id, "{t}");
            }
        }
        // A name not yet interned is interned by `intern_numbered` too.
        let w = n.intern_numbered("w12", numbered(b"w12 = 1\n", 0, 3).unwrap());
        assert_eq!(n.intern("w12"), w);
        assert_eq!(n.get(w), "w12");
    }

    #[test]
    fn many_prefixes_overflow_to_the_hash_index() {
        let mut n = Names::new();
        let ids: Vec<Name> = (0..40)
            .flat_map(|p| (0..5).map(move |k| format!("p{}x{k}", p)))
            .map(|t| n.intern(&t))
            .collect();
        for (i, &id) in ids.iter().enumerate() {
            let t = format!("p{}x{}", i / 5, i % 5);
            assert_eq!(n.intern(&t), id);
            assert_eq!(n.lookup(&t), Some(id));
        }
        n.clear();
        assert_eq!(n.lookup("p0x0"), None);
        let a = n.intern("p0x0");
        assert_eq!(n.intern("p0x0"), a);
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
