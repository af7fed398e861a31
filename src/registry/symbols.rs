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
//! by name ([`FxBuildHasher`]; no SipHash). Everything after that — the
//! relocations of a loaded module, the scope of a lazy module, the exports
//! of a finalized one — holds ids: relocating reads `entries[id]`.
//!
//! Invariants: a name is in the index at most once (one exporter per
//! name, checked by the registry before [`SymbolTable::insert`]); an id is
//! reused only after [`SymbolTable::remove`], which the registry calls only
//! when nothing loaded refers to it any more.

use crate::ir::Signature;
use std::sync::Arc;

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
}

/// What a symbol is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// A function of this signature.
    Func(Signature),
    /// A data (or const) item.
    Data,
}

/// One symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub name: Arc<str>,
    /// Whether the name is in the index (exported) or not (a lazy
    /// module's `local` definition).
    pub named: bool,
    /// The registry slot a module that references this symbol depends on:
    /// the defining module; for a lazy module's function, the lazy module
    /// itself (its stubs never move); for its data, its data module.
    pub module: u32,
    pub kind: ExportKind,
    /// The target address, once known: when the defining module is loaded,
    /// or at once for a lazy function (its stub).
    pub address: Option<u64>,
    /// For a lazy (retargetable) function: its slot in the indirection
    /// table.
    pub indirect: Option<u32>,
}

/// The table: dense entries plus the name index. See the module docs.
#[derive(Default)]
pub struct SymbolTable {
    by_name: FxHashMap<Arc<str>, SymbolId>,
    entries: Vec<Option<Symbol>>,
    free: Vec<u32>,
}

impl SymbolTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of exported `name`.
    #[inline]
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
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

    /// Adds `symbol`; when it is named, its name must not be in the index.
    pub fn insert(&mut self, symbol: Symbol) -> SymbolId {
        let named = symbol.named.then(|| symbol.name.clone());
        let id = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(symbol);
                SymbolId(i)
            }
            None => {
                self.entries.push(Some(symbol));
                SymbolId(self.entries.len() as u32 - 1)
            }
        };
        if let Some(name) = named {
            self.by_name.insert(name, id);
        }
        id
    }

    /// Removes `id` (and its name from the index); its id may be reused.
    pub fn remove(&mut self, id: SymbolId) -> Option<Symbol> {
        let s = self.entries.get_mut(id.index())?.take()?;
        if s.named && self.by_name.get(&s.name) == Some(&id) {
            self.by_name.remove(&s.name);
        }
        self.free.push(id.0);
        Some(s)
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
    use std::hash::BuildHasher;

    fn sym(name: &str, named: bool) -> Symbol {
        Symbol {
            name: name.into(),
            named,
            module: 7,
            kind: ExportKind::Data,
            address: None,
            indirect: None,
        }
    }

    #[test]
    fn ids_are_dense_reused_after_removal_and_private_symbols_have_no_name() {
        let mut t = SymbolTable::new();
        let a = t.insert(sym("a", true));
        let b = t.insert(sym("b", false));
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(t.lookup("a"), Some(a));
        assert_eq!(t.lookup("b"), None, "private symbols are not in the index");
        assert_eq!(t.get(b).map(|s| &*s.name), Some("b"));
        assert_eq!(t.remove(a).map(|s| s.name), Some("a".into()));
        assert_eq!(t.lookup("a"), None);
        assert!(t.get(a).is_none());
        assert_eq!(t.len(), 1);
        let c = t.insert(sym("c", true));
        assert_eq!(c, a, "the freed id is reused");
        assert_eq!(t.lookup("c"), Some(c));
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
