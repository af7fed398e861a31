//! Modules: the symbols a `.kir` file declares and defines (SPEC section 3).
//!
//! Every `@name` of a module is one [`SymId`] in `symbols`, in source order.
//! A defined function points at its body in `funcs`, a defined data item at
//! its contents in `datas`; imports (`extern`) have neither.

use super::entities::{DataId, FuncId, SymId};
use super::function::Function;
use super::hash::{hash_name, StrIndex};
use super::srcmap::Loc;
use super::types::Signature;

/// Visibility of a symbol to other modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Linkage {
    /// Defined here and visible to other modules (the default).
    Export,
    /// Defined here, visible only inside this module (`local`).
    Local,
    /// Defined elsewhere (`extern`).
    Import,
}

/// What a symbol names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    /// A function; `body` is `None` for `extern func`.
    Func {
        sig: Signature,
        body: Option<FuncId>,
    },
    /// A data object; `body` is `None` for `extern data`.
    Data { body: Option<DataId> },
}

/// One module-level symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolData {
    /// Without the `@`.
    pub name: String,
    pub linkage: Linkage,
    pub kind: SymbolKind,
}

impl SymbolData {
    pub fn is_func(&self) -> bool {
        matches!(self.kind, SymbolKind::Func { .. })
    }

    /// The signature, for function symbols.
    pub fn signature(&self) -> Option<&Signature> {
        match &self.kind {
            SymbolKind::Func { sig, .. } => Some(sig),
            SymbolKind::Data { .. } => None,
        }
    }
}

/// One entry of a data item's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataValue {
    /// `i8/i16/i32/i64 N...`: integers as written (the verifier checks that
    /// each fits `bytes`), stored little-endian.
    Int { bytes: u8, values: Vec<i128> },
    /// `f32 X...`, as `f32` bits.
    F32(Vec<u32>),
    /// `f64 X...`, as `f64` bits.
    F64(Vec<u64>),
    /// `i8 "string"`, escapes decoded.
    Bytes(Vec<u8>),
    /// `zero N`.
    Zero(u64),
    /// `@sym+addend`: the symbol's 8-byte absolute address plus `addend`.
    SymAddr { sym: SymId, addend: i64 },
}

impl DataValue {
    /// The alignment of this entry (its element size; 1 for strings and
    /// `zero`).
    pub fn align(&self) -> u64 {
        match self {
            DataValue::Int { bytes, .. } => *bytes as u64,
            DataValue::F32(_) => 4,
            DataValue::F64(_) | DataValue::SymAddr { .. } => 8,
            DataValue::Bytes(_) | DataValue::Zero(_) => 1,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            DataValue::Int { bytes, values } => *bytes as u64 * values.len() as u64,
            DataValue::F32(v) => 4 * v.len() as u64,
            DataValue::F64(v) => 8 * v.len() as u64,
            DataValue::Bytes(b) => b.len() as u64,
            DataValue::Zero(n) => *n,
            DataValue::SymAddr { .. } => 8,
        }
    }
}

/// The contents of a `data` or `const` item.
#[derive(Clone, Debug, Default, Eq)]
pub struct DataDef {
    /// `const` (read-only) rather than `data`.
    pub readonly: bool,
    pub values: Vec<DataValue>,
    /// Location of each entry's first token (empty for built IR).
    pub locs: Vec<Loc>,
}

/// Locations are not part of a data item's identity (as for functions).
impl PartialEq for DataDef {
    fn eq(&self, other: &Self) -> bool {
        self.readonly == other.readonly && self.values == other.values
    }
}

/// Objects are aligned to this many bytes (SPEC section 3).
pub const DATA_ALIGN: u64 = 16;

impl DataDef {
    /// The offset of each entry and the total size, laying entries out in
    /// order, each aligned to [`DataValue::align`].
    pub fn layout(&self) -> (Vec<u64>, u64) {
        let mut offsets = Vec::with_capacity(self.values.len());
        let mut at = 0u64;
        for v in &self.values {
            let a = v.align();
            at = at.div_ceil(a) * a;
            offsets.push(at);
            at = at.saturating_add(v.size());
        }
        (offsets, at)
    }
}

/// A module: one `.kir` file, or one built with the builder.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// The file name used in diagnostics (`<builder>` for built modules).
    pub name: String,
    /// Every symbol, in source order.
    pub symbols: Vec<SymbolData>,
    /// Source location of each symbol's `@name` token (empty for built IR).
    pub symbol_locs: Vec<Loc>,
    pub funcs: Vec<Function>,
    pub datas: Vec<DataDef>,
    /// Optimized for speed (set by [`crate::opt::optimize_module`] at
    /// `speed`). The backends compile it like any module (see
    /// `crate::lower`, "The `speed` tier's back end"). Not part of the
    /// module's identity.
    pub optimized: bool,
    /// Symbol ids by name (the names stay in `symbols`).
    by_name: StrIndex,
}

impl PartialEq for Module {
    fn eq(&self, other: &Self) -> bool {
        self.symbols == other.symbols && self.funcs == other.funcs && self.datas == other.datas
    }
}

impl Module {
    pub fn new(name: impl Into<String>) -> Self {
        Module {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Makes room for exactly `items` more symbols and function bodies
    /// (for a parser that knows about how many are coming: the table of
    /// functions is large, and growing it copies every function).
    pub(crate) fn reserve(&mut self, items: usize) {
        self.symbols.reserve_exact(items);
        self.symbol_locs.reserve_exact(items);
        self.funcs.reserve_exact(items);
        self.by_name.reserve(items);
    }

    /// Appends `other`'s symbols, function bodies and data after this
    /// module's, as if its text had followed this module's (symbol, function
    /// and data ids of `other` move up by this module's counts); `false`,
    /// with nothing changed, when a name of `other` is taken here (or either
    /// index of names is not complete). Symbol references inside `other`'s
    /// bodies are not renumbered: a parser appends parts whose references
    /// are still unresolved.
    pub(crate) fn append(&mut self, other: Module) -> bool {
        if self.by_name.len() != self.symbols.len() || other.by_name.len() != other.symbols.len() {
            return false;
        }
        let symbols = &self.symbols;
        let key_of = |i: u32| symbols.get(i as usize).map_or("", |s: &SymbolData| &s.name);
        let taken = other.by_name.tagged().any(|(tag, id)| {
            let name = &other.symbols[id as usize].name;
            self.by_name
                .find(name, u64::from(tag) << 32, key_of)
                .is_some()
        });
        if taken {
            return false;
        }
        let (s0, f0, d0) = (self.symbols.len(), self.funcs.len(), self.datas.len());
        self.by_name.reserve(other.symbols.len());
        for (tag, id) in other.by_name.tagged() {
            self.by_name.insert(id + s0 as u32, u64::from(tag) << 32);
        }
        self.symbols.extend(other.symbols.into_iter().map(|mut s| {
            match &mut s.kind {
                SymbolKind::Func { body: Some(b), .. } => *b = FuncId::new(b.index() + f0),
                SymbolKind::Data { body: Some(b) } => *b = DataId::new(b.index() + d0),
                _ => {}
            }
            s
        }));
        self.symbol_locs.extend(other.symbol_locs);
        self.funcs.extend(other.funcs);
        self.datas.extend(other.datas);
        true
    }

    /// Declares a symbol. Returns `Err(existing)` when the name is taken.
    pub fn declare(&mut self, data: SymbolData, loc: Loc) -> Result<SymId, SymId> {
        let hash = hash_name(&data.name);
        if let Some(old) = self.find_symbol(&data.name, hash) {
            return Err(old);
        }
        let id = SymId::new(self.symbols.len());
        self.symbols.push(data);
        self.symbol_locs.push(loc);
        self.by_name.insert(id.0, hash);
        Ok(id)
    }

    /// [`Module::declare`] for a name the caller has just found free with
    /// [`Module::symbol_hashed`] (`hash` is its [`hash_name`]), without
    /// hashing and looking it up again (a parser declares every symbol so).
    pub(crate) fn declare_new(&mut self, data: SymbolData, loc: Loc, hash: u64) -> SymId {
        debug_assert!(self.find_symbol(&data.name, hash).is_none());
        debug_assert_eq!(hash, hash_name(&data.name));
        let id = SymId::new(self.symbols.len());
        self.symbols.push(data);
        self.symbol_locs.push(loc);
        self.by_name.insert(id.0, hash);
        id
    }

    /// The symbol named `name` (whose [`hash_name`] is `hash`). The index is
    /// only trusted when it points at a symbol of that name: `symbols` is
    /// public, and a symbol renamed or pushed behind the index's back is
    /// then found by a scan.
    fn find_symbol(&self, name: &str, hash: u64) -> Option<SymId> {
        let symbols = &self.symbols;
        let key_of = |i: u32| symbols.get(i as usize).map_or("", |s: &SymbolData| &s.name);
        if let Some(i) = self.by_name.find(name, hash, key_of) {
            return Some(SymId(i));
        }
        if self.by_name.len() == symbols.len() {
            return None;
        }
        symbols.iter().position(|s| s.name == name).map(SymId::new)
    }

    /// Attaches a body to a declared function symbol.
    pub fn define_func(&mut self, sym: SymId, func: Function) -> FuncId {
        let id = FuncId::new(self.funcs.len());
        self.funcs.push(func);
        if let SymbolKind::Func { body, .. } = &mut self.symbols[sym.index()].kind {
            *body = Some(id);
        }
        id
    }

    /// Attaches contents to a declared data symbol.
    pub fn define_data(&mut self, sym: SymId, data: DataDef) -> DataId {
        let id = DataId::new(self.datas.len());
        self.datas.push(data);
        if let SymbolKind::Data { body } = &mut self.symbols[sym.index()].kind {
            *body = Some(id);
        }
        id
    }

    /// Looks a symbol up by name (without `@`).
    pub fn symbol(&self, name: &str) -> Option<SymId> {
        self.find_symbol(name, hash_name(name))
    }

    /// [`Module::symbol`] for a name whose [`hash_name`] the caller has
    /// (and keeps for [`Module::declare_new`]).
    pub(crate) fn symbol_hashed(&self, name: &str, hash: u64) -> Option<SymId> {
        self.find_symbol(name, hash)
    }

    pub fn sym(&self, id: SymId) -> &SymbolData {
        &self.symbols[id.index()]
    }

    pub fn symbol_loc(&self, id: SymId) -> Loc {
        self.symbol_locs
            .get(id.index())
            .copied()
            .unwrap_or(Loc::NONE)
    }

    /// The symbol whose body is `func`.
    pub fn func_symbol(&self, func: FuncId) -> Option<SymId> {
        self.symbols
            .iter()
            .position(|s| matches!(s.kind, SymbolKind::Func { body: Some(b), .. } if b == func))
            .map(SymId::new)
    }

    /// Iterates the symbols with their ids.
    pub fn symbol_ids(&self) -> impl Iterator<Item = (SymId, &SymbolData)> {
        self.symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (SymId::new(i), s))
    }
}
