//! The registry's symbol table: every symbol the registry resolves, as a
//! dense [`SymbolId`], and the exported names that lead to them.
//!
//! - An exported definition of an eager module, and an exported function
//!   or data item of a lazy module, is *named*: its name is in the name
//!   index, so `extern` declarations and lookups find it.
//! - A `local` definition of a lazy module is *private*: it has an id (the
//!   other function-modules of its module reach it through their module's
//!   scope) but no name in the index.
//!
//! Names are hashed once, when a module is linked or a function looked up
//! by name ([`FxHasher`]; no SipHash). Everything after that — the
//! relocations of a loaded module, the scope of a lazy module, the exports
//! of a finalized one — holds ids: relocating reads `entries[id]`.
//!
//! Compact, because an engine may hold many thousands of tiny modules (a
//! REPL session): a symbol is 24 bytes; names live back to back in one
//! arena (compacted when half of it is dead), signatures once each in a
//! list, and the name index is an open-addressing table of 4-byte ids.
//!
//! Invariants: a name is in the index at most once (one exporter per
//! name, checked by the registry before [`SymbolTable::insert`]); an id is
//! reused only after [`SymbolTable::remove`], which the registry calls only
//! when nothing loaded refers to it any more.

use crate::ir::Signature;
use smallvec::SmallVec;
use std::num::NonZeroU32;

/// The fast hasher for names and ids (shared with the IR's name tables).
pub use crate::ir::hash::{FxBuildHasher, FxHashMap, FxHasher};

/// A symbol's dense index in its registry's table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(u32);

impl SymbolId {
    /// The index in the table.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id as a number (see [`SymbolId::from_raw`]).
    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    /// The id that [`SymbolId::raw`] gave `raw`.
    pub(crate) fn from_raw(raw: u32) -> SymbolId {
        SymbolId(raw)
    }
}

/// What a symbol is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// A function of this signature.
    Func(Signature),
    /// A data (or const) item.
    Data,
}

/// `kind` of a data symbol (otherwise the signature's index plus one).
const DATA: NonZeroU32 = NonZeroU32::MAX;

/// The bit of [`Symbol`]'s name length that says the name is in the index.
const NAMED: u32 = 1 << 31;

/// One symbol (24 bytes: its name lives in the table's arena, its
/// signature in the table's signature list). A lazy function's
/// indirection slot is not kept here: its address is its stub, which
/// names the slot (`Registry::lazy_key`).
#[derive(Clone, Debug)]
pub struct Symbol {
    /// Start of the name in the arena.
    name_start: u32,
    /// Length of the name, with [`NAMED`] set when the name is in the
    /// index (exported), clear for a lazy module's `local` definition.
    name_len: u32,
    /// The signature's index plus one, or [`DATA`] (never zero, so an
    /// `Option<Symbol>` takes no more room).
    kind: NonZeroU32,
    /// The registry slot a module that references this symbol depends on:
    /// the defining module; for a lazy module's function, the lazy module
    /// itself (its stubs never move); for its data, its data module.
    pub module: u32,
    /// The target address ([`NO_ADDRESS`] until known; see
    /// [`Symbol::address`]).
    address: u64,
}

/// `address` of a symbol whose address is not known (no section starts
/// at the last byte of the address space).
const NO_ADDRESS: u64 = u64::MAX;

impl Symbol {
    /// The target address, once known: when the defining module is loaded,
    /// or at once for a lazy function (its stub).
    pub fn address(&self) -> Option<u64> {
        (self.address != NO_ADDRESS).then_some(self.address)
    }

    /// Sets (or, with `None`, forgets) the target address.
    pub fn set_address(&mut self, address: Option<u64>) {
        self.address = address.unwrap_or(NO_ADDRESS);
    }

    /// Whether the name is in the index (exported), not a lazy module's
    /// `local` definition.
    pub fn named(&self) -> bool {
        self.name_len & NAMED != 0
    }

    /// The name's place in the arena.
    fn name_range(&self) -> std::ops::Range<usize> {
        let start = self.name_start as usize;
        start..start + (self.name_len & !NAMED) as usize
    }
}

/// What [`SymbolTable::insert`] makes a symbol of.
pub struct NewSymbol<'a> {
    pub name: &'a str,
    pub named: bool,
    pub module: u32,
    /// `None` for data.
    pub sig: Option<&'a Signature>,
    pub address: Option<u64>,
}

/// An open-addressing set of symbol ids keyed by their names (which live
/// in the arena, so the index stores 4 bytes per slot).
#[derive(Default)]
struct NameIndex {
    slots: Vec<u32>,
    /// Live ids, and tombstones.
    len: usize,
    tombs: usize,
}

const EMPTY: u32 = u32::MAX;
const TOMB: u32 = u32::MAX - 1;

/// The slot hash of a name: every input bit reaches the low bits, which
/// pick the slot (a bare Fx product would leave `f1`, `f2`, ... in a few
/// long runs: its low bits depend only on the first bytes).
fn hash_name(name: &str) -> u64 {
    crate::ir::hash::hash_str(name)
}

impl NameIndex {
    /// The id whose name (per `name_of`) is `name`.
    fn find<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash_name(name) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return None,
                TOMB => {}
                id if name_of(id) == name => return Some(id),
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `id` (named `name`, not present).
    fn insert<'a>(&mut self, id: u32, name: &str, name_of: impl Fn(u32) -> &'a str) {
        // At most 7/10 full: 20,000 names fit 32,768 slots (128 KiB), not
        // 65,536 (a REPL session keeps the whole table resident).
        if (self.len + self.tombs + 1) * 10 > self.slots.len() * 7 {
            self.grow(&name_of);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash_name(name) as usize & mask;
        while !matches!(self.slots[i], EMPTY | TOMB) {
            i = (i + 1) & mask;
        }
        if self.slots[i] == TOMB {
            self.tombs -= 1;
        }
        self.slots[i] = id;
        self.len += 1;
    }

    /// Removes `id` (named `name`).
    fn remove(&mut self, id: u32, name: &str) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash_name(name) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return,
                s if s == id => {
                    self.slots[i] = TOMB;
                    self.len -= 1;
                    self.tombs += 1;
                    return;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Slots a lookup of `name` visits before it ends (tests of probe
    /// length).
    #[cfg(test)]
    fn probes<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash_name(name) as usize & mask;
        let mut n = 1;
        while self.slots[i] != EMPTY && (self.slots[i] == TOMB || name_of(self.slots[i]) != name) {
            i = (i + 1) & mask;
            n += 1;
        }
        n
    }

    /// Makes room for `n` more ids at once (no rehash per doubling).
    fn reserve<'a>(&mut self, n: usize, name_of: &impl Fn(u32) -> &'a str) {
        if (self.len + self.tombs + n) * 10 > self.slots.len() * 7 {
            self.grow_to(self.len + n, name_of);
        }
    }

    /// Rehashes into a table at most half full with the live ids.
    fn grow<'a>(&mut self, name_of: &impl Fn(u32) -> &'a str) {
        self.grow_to(self.len + 1, name_of);
    }

    /// Rehashes the live ids into a table at most half full with `live`.
    fn grow_to<'a>(&mut self, live: usize, name_of: &impl Fn(u32) -> &'a str) {
        let cap = (live * 2).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; cap]);
        self.tombs = 0;
        let mask = cap - 1;
        for id in old.into_iter().filter(|&s| s != EMPTY && s != TOMB) {
            let mut i = hash_name(name_of(id)) as usize & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = id;
        }
    }
}

/// Symbols a [`SymbolTable::with_room`] has room for.
pub const FIRST_SYMBOLS: usize = 4;

/// The table: dense entries plus the name index. See the module docs.
#[derive(Default)]
pub struct SymbolTable {
    entries: Vec<Option<Symbol>>,
    free: Vec<u32>,
    index: NameIndex,
    /// Every live symbol's name, back to back.
    arena: String,
    /// Bytes of the arena no live symbol uses.
    dead: usize,
    sigs: Vec<Signature>,
    /// The signatures by hash: their `kind`s (one, unless hashes collide),
    /// so that a signature is stored once, in `sigs`.
    sig_ids: FxHashMap<u64, SmallVec<[NonZeroU32; 1]>>,
}

/// The name of `entries[id]` in `arena`.
fn name_in<'a>(entries: &[Option<Symbol>], arena: &'a str, id: u32) -> &'a str {
    match entries.get(id as usize).and_then(Option::as_ref) {
        Some(s) => &arena[s.name_range()],
        None => "",
    }
}

impl SymbolTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with room for the symbols of a first few small modules
    /// ([`FIRST_SYMBOLS`] symbols, their names and signatures): made with
    /// an engine, so that its first modules grow none of its parts (five
    /// allocations in a fresh engine's first module otherwise).
    pub fn with_room() -> Self {
        let mut t = Self::default();
        t.entries.reserve(FIRST_SYMBOLS);
        t.arena.reserve(FIRST_SYMBOLS * 8);
        t.index.reserve(FIRST_SYMBOLS, &|_| "");
        t.sigs.reserve(FIRST_SYMBOLS);
        t.sig_ids.reserve(FIRST_SYMBOLS);
        t
    }

    /// The id of exported `name`.
    #[inline]
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        let (entries, arena) = (&self.entries, self.arena.as_str());
        self.index
            .find(name, |id| name_in(entries, arena, id))
            .map(SymbolId)
    }

    /// The symbol `id` (`None` once removed).
    #[inline]
    pub fn get(&self, id: SymbolId) -> Option<&Symbol> {
        self.entries.get(id.index()).and_then(Option::as_ref)
    }

    #[inline]
    pub fn get_mut(&mut self, id: SymbolId) -> Option<&mut Symbol> {
        self.entries.get_mut(id.index()).and_then(Option::as_mut)
    }

    /// Exported `name`'s symbol.
    pub fn by_name(&self, name: &str) -> Option<&Symbol> {
        self.lookup(name).and_then(|id| self.get(id))
    }

    /// A symbol's name.
    pub fn name(&self, s: &Symbol) -> &str {
        &self.arena[s.name_range()]
    }

    /// A function symbol's signature (`None` for data).
    pub fn signature(&self, s: &Symbol) -> Option<&Signature> {
        self.sigs.get(s.kind.get() as usize - 1)
    }

    /// What a symbol is.
    pub fn kind(&self, s: &Symbol) -> ExportKind {
        match self.signature(s) {
            Some(sig) => ExportKind::Func(sig.clone()),
            None => ExportKind::Data,
        }
    }

    /// Makes room for `symbols` more symbols, all named, whose names are
    /// `name_bytes` long together (a module's exports, added at once).
    pub fn reserve(&mut self, symbols: usize, name_bytes: usize) {
        self.entries
            .reserve(symbols.saturating_sub(self.free.len()));
        self.arena.reserve(name_bytes);
        let (entries, arena) = (&self.entries, self.arena.as_str());
        self.index
            .reserve(symbols, &|id| name_in(entries, arena, id));
    }

    /// The `kind` of signature `sig`, added to the list when new.
    fn sig_kind(&mut self, sig: &Signature) -> NonZeroU32 {
        use std::hash::BuildHasher;
        let hash = FxBuildHasher::default().hash_one(sig);
        let sigs = &self.sigs;
        let same = self.sig_ids.get(&hash).and_then(|ks| {
            ks.iter()
                .copied()
                .find(|k| sigs[k.get() as usize - 1] == *sig)
        });
        if let Some(k) = same {
            return k;
        }
        let k = NonZeroU32::new(self.sigs.len() as u32 + 1)
            .filter(|&k| k != DATA)
            .expect("fewer than 2^32 - 1 signatures");
        self.sigs.push(sig.clone());
        self.sig_ids.entry(hash).or_default().push(k);
        k
    }

    /// Adds a symbol; when it is named, its name must not be in the index.
    pub fn insert(&mut self, new: NewSymbol<'_>) -> SymbolId {
        let kind = match new.sig {
            None => DATA,
            Some(sig) => self.sig_kind(sig),
        };
        let start = self.arena.len() as u32;
        self.arena.push_str(new.name);
        let len = u32::try_from(new.name.len())
            .ok()
            .filter(|&l| l < NAMED)
            .expect("symbol names are shorter than 2 GiB");
        let symbol = Symbol {
            name_start: start,
            name_len: if new.named { len | NAMED } else { len },
            kind,
            module: new.module,
            address: new.address.unwrap_or(NO_ADDRESS),
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(symbol);
                i
            }
            None => {
                self.entries.push(Some(symbol));
                self.entries.len() as u32 - 1
            }
        };
        if new.named {
            let (entries, arena) = (&self.entries, self.arena.as_str());
            self.index
                .insert(id, new.name, |i| name_in(entries, arena, i));
        }
        SymbolId(id)
    }

    /// Removes `id` (and its name from the index); its id may be reused.
    pub fn remove(&mut self, id: SymbolId) {
        let Some(s) = self.entries.get(id.index()).and_then(Option::as_ref) else {
            return;
        };
        let range = s.name_range();
        let len = range.len();
        if s.named() {
            let name = &self.arena[range];
            self.index.remove(id.0, name);
        }
        self.entries[id.index()] = None;
        self.free.push(id.0);
        self.dead += len;
        if self.dead > 4096 && self.dead * 2 > self.arena.len() {
            self.compact();
        }
    }

    /// Rebuilds the arena with the live names only.
    fn compact(&mut self) {
        let mut arena = String::with_capacity(self.arena.len() - self.dead);
        for s in self.entries.iter_mut().flatten() {
            let at = arena.len() as u32;
            arena.push_str(&self.arena[s.name_range()]);
            s.name_start = at;
        }
        self.arena = arena;
        self.dead = 0;
    }

    /// Number of live symbols.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Type;
    use std::hash::BuildHasher;

    fn sym(name: &str, named: bool) -> NewSymbol<'_> {
        NewSymbol {
            name,
            named,
            module: 7,
            sig: None,
            address: None,
        }
    }

    #[test]
    fn symbols_stay_small_and_keep_unknown_addresses_apart() {
        // An engine may hold many thousands (a REPL session).
        assert!(std::mem::size_of::<Option<Symbol>>() <= 24);
        let mut t = SymbolTable::new();
        let a = t.insert(sym("a", true));
        let b = t.insert(NewSymbol {
            address: Some(0),
            ..sym("bb", false)
        });
        let (sa, sb) = (t.get(a).unwrap(), t.get(b).unwrap());
        assert_eq!((sa.address(), sa.named(), t.name(sa)), (None, true, "a"));
        assert_eq!(
            (sb.address(), sb.named(), t.name(sb)),
            (Some(0), false, "bb")
        );
        let s = t.get_mut(a).unwrap();
        s.set_address(Some(0x1000));
        assert_eq!(s.address(), Some(0x1000));
        s.set_address(None);
        assert_eq!(s.address(), None);
    }

    /// A table made with room takes a first module's few symbols (names,
    /// signatures, index) without growing any of its parts.
    #[test]
    fn a_table_with_room_grows_nothing_for_a_first_few_symbols() {
        let mut t = SymbolTable::with_room();
        let parts = |t: &SymbolTable| {
            (
                t.entries.capacity(),
                t.arena.capacity(),
                t.index.slots.len(),
                t.sigs.capacity(),
                t.sig_ids.capacity(),
            )
        };
        let before = parts(&t);
        let sigs = [
            Signature::new(vec![Type::I64], Some(Type::I64)),
            Signature::new(vec![], Some(Type::I32)),
        ];
        t.reserve(FIRST_SYMBOLS, FIRST_SYMBOLS * 6);
        for (i, name) in ["fib", "main", "helper", "table"].into_iter().enumerate() {
            t.insert(NewSymbol {
                sig: sigs.get(i),
                ..sym(name, true)
            });
        }
        assert_eq!(parts(&t), before);
    }

    #[test]
    fn ids_are_dense_reused_after_removal_and_private_symbols_have_no_name() {
        let mut t = SymbolTable::new();
        let a = t.insert(sym("a", true));
        let b = t.insert(sym("b", false));
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(t.lookup("a"), Some(a));
        assert_eq!(t.lookup("b"), None, "private symbols are not in the index");
        assert_eq!(t.get(b).map(|s| t.name(s)), Some("b"));
        t.remove(a);
        assert_eq!(t.lookup("a"), None);
        assert!(t.get(a).is_none());
        assert_eq!(t.len(), 1);
        let c = t.insert(sym("c", true));
        assert_eq!(c, a, "the freed id is reused");
        assert_eq!(t.lookup("c"), Some(c));
    }

    #[test]
    fn many_names_survive_growth_removal_and_compaction() {
        let mut t = SymbolTable::new();
        let sig = Signature::new(vec![Type::I64], Some(Type::I64));
        let ids: Vec<SymbolId> = (0..5000)
            .map(|i| {
                t.insert(NewSymbol {
                    sig: (i % 2 == 0).then_some(&sig),
                    ..sym(&format!("name_{i}"), true)
                })
            })
            .collect();
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(t.lookup(&format!("name_{i}")), Some(id));
        }
        for &id in ids.iter().filter(|id| id.index() % 3 != 0) {
            t.remove(id);
        }
        assert!(t.arena.len() < 5000 * 6, "the arena was compacted");
        for (i, &id) in ids.iter().enumerate() {
            let want = (i % 3 == 0).then_some(id);
            assert_eq!(t.lookup(&format!("name_{i}")), want, "{i}");
            if let Some(s) = want.and_then(|id| t.get(id)) {
                assert_eq!(t.name(s), format!("name_{i}"));
                assert_eq!(t.signature(s).is_some(), i % 2 == 0);
            }
        }
        assert_eq!(t.sigs.len(), 1, "signatures are shared");
        assert_eq!(t.lookup("name_5000"), None);
    }

    /// Each distinct signature is stored once and read back as itself,
    /// after a reservation too.
    #[test]
    fn signatures_are_stored_once_each() {
        use crate::ir::Type;
        let sigs = [
            Signature::new(vec![Type::I64], Some(Type::I64)),
            Signature::new(vec![Type::I64, Type::I64], Some(Type::I64)),
            Signature::new(vec![], None),
            Signature::new(vec![Type::I64], None),
        ];
        let mut t = SymbolTable::new();
        t.reserve(40, 40 * 4);
        let names: Vec<String> = (0..40).map(|i| format!("g{i}")).collect();
        let ids: Vec<SymbolId> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                t.insert(NewSymbol {
                    sig: Some(&sigs[i % sigs.len()]),
                    ..sym(name, true)
                })
            })
            .collect();
        assert_eq!(t.sigs.len(), sigs.len());
        for (i, &id) in ids.iter().enumerate() {
            let s = t.get(id).unwrap();
            assert_eq!(t.signature(s), Some(&sigs[i % sigs.len()]), "{i}");
            assert_eq!(t.lookup(&names[i]), Some(id));
        }
    }

    #[test]
    fn numbered_names_need_short_probes() {
        // A REPL or generator names its functions f0, f1, ...: their
        // lookups must not walk long runs of the table.
        let mut t = SymbolTable::new();
        for i in 0..20_000 {
            t.insert(sym(&format!("f{i}"), true));
        }
        let (entries, arena) = (&t.entries, t.arena.as_str());
        let name_of = |id| name_in(entries, arena, id);
        let (mut total, mut worst) = (0, 0);
        for i in 0..20_000 {
            let p = t.index.probes(&format!("f{i}"), name_of);
            total += p;
            worst = worst.max(p);
        }
        let mean = total as f64 / 20_000.0;
        assert!(mean < 2.5, "mean probe length {mean}");
        assert!(worst < 64, "longest probe {worst}");
    }

    #[test]
    fn fx_hash_distinguishes_names_and_is_deterministic() {
        let h = |s: &str| FxBuildHasher::default().hash_one(s);
        assert_eq!(h("main"), h("main"));
        let names = ["", "a", "b", "ab", "ba", "f0", "f1", "function_name_9"];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(h(x), h(y), "{x} vs {y}");
            }
        }
    }
}
