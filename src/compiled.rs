//! `CompiledModule`: the object-file-like boundary between code generation
//! and the runtime that loads code.
//!
//! A compiled module is three byte sections (`text`, `rodata`, `data`), the
//! symbols it defines (functions in `text`; `const` items in `rodata`, `data`
//! items in `data`), the names it needs from elsewhere (`imports`), and the
//! relocations that patch addresses into the sections once their load
//! addresses are known. Invariants: every symbol and relocation lies inside
//! its section; every relocation target is either a symbol defined here or
//! a name in `imports`; defined objects start at offsets aligned to their
//! section's alignment. Each function has a line table (`lines`) mapping its
//! code back to `.kir` lines for backtraces and debuggers.

use crate::error::{Error, Result};
use crate::ir::{DataValue, Linkage, Module, SymbolKind, DATA_ALIGN};
use crate::reloc::{Reloc, RelocKind, SectionKind as Section};

/// One defined symbol of a compiled module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledSymbol {
    /// The IR name, without `@`.
    pub name: String,
    pub section: Section,
    /// Offset of the first byte in its section.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Visible to other modules (not `local`).
    pub exported: bool,
    /// A function (rather than a data object).
    pub is_func: bool,
}

/// Machine code and data of one module, ready to be loaded and relocated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledModule {
    pub text: Vec<u8>,
    pub rodata: Vec<u8>,
    pub data: Vec<u8>,
    /// Zero bytes that follow `data` in the data section: zero-initialized
    /// `data` items (`{ zero N }`), laid out after every other item and
    /// carried as a size, never materialized (the loader places them in
    /// memory known to read as zero). The data section is
    /// `data.len() + bss` bytes long.
    pub bss: u64,
    /// Required start alignment of each section, in bytes.
    pub text_align: u64,
    pub rodata_align: u64,
    pub data_align: u64,
    /// Defined functions and data objects.
    pub symbols: Vec<CompiledSymbol>,
    /// Names this module needs resolved from other modules or the host,
    /// sorted and without duplicates (the trap handler included when used).
    pub imports: Vec<String>,
    pub relocs: Vec<Reloc<String>>,
    /// The line table of each function ([`crate::debug::lines`]).
    pub lines: Vec<crate::debug::FunctionLines>,
    /// Which relocations target this module's own definitions (large
    /// modules only, see [`LocalTargets`]; boxed: one word in the rest).
    pub(crate) local: Option<Box<LocalTargets>>,
    /// Set for one function compiled out of a larger IR module (a lazy
    /// module's function-module, [`CompiledModule::for_one_function`]):
    /// no `local` hints then. They are sized by the IR module's symbol
    /// count, which for each function of a lazy module would be work and
    /// memory in proportion to the whole module (a 2,000-function module:
    /// 8 KB zeroed and freed per first call); the loader finds such a
    /// module's few symbols by a short search anyway.
    pub(crate) one_function: bool,
}

/// Relocation targets known to be definitions of the same module, recorded
/// while a large module is compiled (by [`crate::lower::place`] and
/// [`CompiledModule::add_data_items`]), so that loading it resolves them
/// without hashing names: with many symbols, that hash table is the
/// loader's cost that grows with the module (cache misses). A hint only:
/// the loader checks each one against its symbol's name and resolves by
/// name whatever has none.
///
/// Indices are stored plus one (zero: none), so that unknown entries cost
/// nothing to fill in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LocalTargets {
    /// By IR symbol index: 1 + the index in `symbols` of its definition.
    by_sym: Vec<u32>,
    /// By relocation index: 1 + the index in `symbols` of its target.
    targets: Vec<u32>,
}

impl LocalTargets {
    /// Modules of at most this many symbols keep no hints: the loader
    /// finds their few names by a short list search, no hashing.
    const MIN_SYMBOLS: usize = 16;

    /// The hints of a module being compiled from `module`, made at the
    /// first use; `None` if `module` is too small to keep any.
    /// `one_function`: the module holds one function of `module` only
    /// (its `one_function` flag), and keeps no hints.
    pub(crate) fn of<'a>(
        local: &'a mut Option<Box<LocalTargets>>,
        one_function: bool,
        module: &Module,
    ) -> Option<&'a mut LocalTargets> {
        if !one_function && module.symbols.len() > Self::MIN_SYMBOLS {
            Some(local.get_or_insert_with(Default::default))
        } else {
            None
        }
    }

    /// Records that IR symbol `sym` (of a module of `symbols` symbols) is
    /// defined by compiled symbol `index`.
    pub(crate) fn define(&mut self, sym: usize, index: usize, symbols: usize) {
        let Ok(index) = u32::try_from(index + 1) else {
            return;
        };
        if self.by_sym.len() < symbols {
            self.by_sym.resize(symbols, 0);
        }
        if let Some(slot) = self.by_sym.get_mut(sym) {
            *slot = index;
        }
    }

    /// The compiled symbol defining IR symbol `sym`, if recorded.
    pub(crate) fn defined(&self, sym: usize) -> Option<usize> {
        match self.by_sym.get(sym) {
            Some(&i) if i > 0 => Some(i as usize - 1),
            _ => None,
        }
    }

    /// Records that relocation `reloc` targets compiled symbol `index`.
    pub(crate) fn set_target(&mut self, reloc: usize, index: usize) {
        let Ok(index) = u32::try_from(index + 1) else {
            return;
        };
        if self.targets.len() <= reloc {
            self.targets.resize(reloc + 1, 0);
        }
        self.targets[reloc] = index;
    }

    /// The compiled symbol relocation `reloc` targets, if recorded.
    pub(crate) fn target(&self, reloc: usize) -> Option<usize> {
        match self.targets.get(reloc) {
            Some(&i) if i > 0 => Some(i as usize - 1),
            _ => None,
        }
    }
}

impl CompiledModule {
    /// An empty module with the default alignments (16 everywhere).
    pub fn new() -> Self {
        CompiledModule {
            text_align: 16,
            rodata_align: DATA_ALIGN,
            data_align: DATA_ALIGN,
            ..Default::default()
        }
    }

    /// An empty module ([`CompiledModule::new`]) for one function of a
    /// larger IR module, compiled on its own (a lazy module's
    /// function-module): it keeps no relocation hints, whose cost would
    /// follow the size of the whole IR module.
    pub fn for_one_function() -> Self {
        CompiledModule {
            one_function: true,
            ..Self::new()
        }
    }

    /// The bytes of `section`.
    pub fn section(&self, section: Section) -> &[u8] {
        match section {
            Section::Text => &self.text,
            Section::Rodata => &self.rodata,
            Section::Data => &self.data,
        }
    }

    /// The length of `section`, with the zero bytes not materialized
    /// ([`CompiledModule::bss`]).
    pub fn section_len(&self, section: Section) -> u64 {
        let bytes = self.section(section).len() as u64;
        match section {
            Section::Data => bytes + self.bss,
            _ => bytes,
        }
    }

    /// The defined symbol called `name`.
    pub fn symbol(&self, name: &str) -> Option<&CompiledSymbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// Records that `name` must come from outside this module.
    pub fn add_import(&mut self, name: &str) {
        if let Err(at) = self.imports.binary_search_by(|n| n.as_str().cmp(name)) {
            self.imports.insert(at, name.to_string());
        }
    }

    /// Lays out every `data` and `const` item of `module` (SPEC section 3):
    /// each object aligned to [`DATA_ALIGN`], entries by
    /// [`crate::ir::DataDef::layout`], `@sym` entries as `Abs64`
    /// relocations. Imported symbols named by entries become imports.
    /// Writable items of zeros only go last, into [`CompiledModule::bss`]:
    /// their size costs nothing.
    pub fn add_data_items(&mut self, module: &Module) -> Result<()> {
        let mut zero_items = Vec::new();
        for (sym_id, sym) in module.symbol_ids() {
            let SymbolKind::Data { body: Some(id) } = sym.kind else {
                continue;
            };
            let def = module
                .datas
                .get(id.index())
                .ok_or_else(|| Error::Runtime(format!("data item @{} has no body", sym.name)))?;
            if !def.readonly && def.values.iter().all(|v| matches!(v, DataValue::Zero(_))) {
                zero_items.push((sym_id, sym, def));
                continue;
            }
            if self.bss > 0 {
                // Items with contents follow: bytes laid out as zeros by an
                // earlier call become real ones.
                let len = self.data.len() + self.bss as usize;
                self.data.resize(len, 0);
                self.bss = 0;
            }
            let (offsets, size) = def.layout();
            let section = if def.readonly {
                Section::Rodata
            } else {
                Section::Data
            };
            let bytes = match section {
                Section::Rodata => &mut self.rodata,
                _ => &mut self.data,
            };
            let base = (bytes.len() as u64).div_ceil(DATA_ALIGN) * DATA_ALIGN;
            let end = base
                .checked_add(size)
                .filter(|&e| e <= u32::MAX as u64)
                .ok_or_else(|| too_big(&sym.name))?;
            bytes.resize(end as usize, 0);
            let mut relocs = Vec::new();
            for (value, &off) in def.values.iter().zip(&offsets) {
                let at = (base + off) as usize;
                match value {
                    DataValue::Int { bytes: w, values } => {
                        let w = *w as usize;
                        for (i, v) in values.iter().enumerate() {
                            let le = (*v as u64).to_le_bytes();
                            bytes[at + i * w..at + (i + 1) * w].copy_from_slice(&le[..w]);
                        }
                    }
                    DataValue::F32(vs) => {
                        for (i, v) in vs.iter().enumerate() {
                            bytes[at + i * 4..at + i * 4 + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                    DataValue::F64(vs) => {
                        for (i, v) in vs.iter().enumerate() {
                            bytes[at + i * 8..at + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                    DataValue::Bytes(b) => bytes[at..at + b.len()].copy_from_slice(b),
                    DataValue::Zero(_) => {}
                    DataValue::SymAddr {
                        sym: target,
                        addend,
                    } => {
                        let t = module.symbols.get(target.index()).ok_or_else(|| {
                            Error::Runtime(format!("data item @{} names no symbol", sym.name))
                        })?;
                        relocs.push((at as u64, t, *addend));
                    }
                }
            }
            for (offset, t, addend) in relocs {
                if t.linkage == Linkage::Import {
                    self.add_import(&t.name);
                }
                self.relocs.push(Reloc {
                    section,
                    offset: u32::try_from(offset).map_err(|_| too_big(&sym.name))?,
                    kind: RelocKind::Abs64,
                    target: t.name.clone(),
                    addend,
                });
            }
            let at = self.symbols.len();
            if let Some(hints) = LocalTargets::of(&mut self.local, self.one_function, module) {
                hints.define(sym_id.index(), at, module.symbols.len());
            }
            self.symbols.push(CompiledSymbol {
                name: sym.name.clone(),
                section,
                offset: base,
                size,
                exported: sym.linkage == Linkage::Export,
                is_func: false,
            });
        }
        for (sym_id, sym, def) in zero_items {
            let (_, size) = def.layout();
            let len = self.data.len() as u64;
            let base = (len + self.bss).div_ceil(DATA_ALIGN) * DATA_ALIGN;
            let end = base
                .checked_add(size)
                .filter(|&e| e <= u32::MAX as u64)
                .ok_or_else(|| too_big(&sym.name))?;
            self.bss = end - len;
            let at = self.symbols.len();
            if let Some(hints) = LocalTargets::of(&mut self.local, self.one_function, module) {
                hints.define(sym_id.index(), at, module.symbols.len());
            }
            self.symbols.push(CompiledSymbol {
                name: sym.name.clone(),
                section: Section::Data,
                offset: base,
                size,
                exported: sym.linkage == Linkage::Export,
                is_func: false,
            });
        }
        Ok(())
    }
}

fn too_big(name: &str) -> Error {
    Error::Runtime(format!("@{name} does not fit a section of 4 GiB"))
}

/// Where in the source a relocation of `module` comes from, for error
/// messages: the `@target` operand of the first `addr` or direct `call`
/// naming `target` in the function holding `offset` (text), or the data
/// entry at `offset` (data, rodata); else the target's declaration.
/// `defined` lists the module's defined symbols: name, section and offset.
pub fn reloc_source_loc<'a>(
    module: &Module,
    section: Section,
    offset: u64,
    target: &str,
    defined: impl Iterator<Item = (&'a str, Section, u64)>,
) -> crate::ir::Loc {
    use crate::ir::{Callee, InstKind, Loc};
    let declared = module
        .symbol(target)
        .map_or(Loc::NONE, |s| module.symbol_loc(s));
    // The defined symbol holding the place: the last one starting at or
    // before it.
    let Some((holder, start)) = defined
        .filter(|&(_, s, o)| s == section && o <= offset)
        .max_by_key(|&(_, _, o)| o)
        .map(|(n, _, o)| (n, o))
    else {
        return declared;
    };
    let Some(sym) = module.symbol(holder) else {
        return declared;
    };
    let names_target = |s: crate::ir::SymId| module.sym(s).name == target;
    let found = match module.sym(sym).kind {
        SymbolKind::Func { body: Some(f), .. } => module.funcs.get(f.index()).and_then(|f| {
            f.blocks.iter().flat_map(|b| &b.insts).find_map(|&i| {
                let refers = match &f.inst(i).kind {
                    InstKind::Addr { sym } => names_target(*sym),
                    InstKind::Call {
                        callee: Callee::Direct(sym),
                        ..
                    } => names_target(*sym),
                    _ => false,
                };
                refers.then(|| f.extra_loc(i))
            })
        }),
        SymbolKind::Data { body: Some(d) } => module.datas.get(d.index()).and_then(|def| {
            let (offsets, _) = def.layout();
            let at = offset - start;
            offsets
                .iter()
                .position(|&o| o == at)
                .and_then(|i| def.locs.get(i).copied())
        }),
        _ => None,
    };
    found.filter(|l| !l.is_none()).unwrap_or(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writable items of zeros go after every item with contents, as a
    /// size only; items with contents (and read-only zeros) are bytes.
    #[test]
    fn zero_data_items_are_carried_as_a_size() {
        let text = "data @z1 = { zero 100 }\ndata @a = { i64 7 }\n\
                    const @c = { zero 8 }\nlocal data @z2 = { zero 5000 }\n\
                    data @b = { i8 1, zero 3 }\n";
        let m = crate::ir::parse::parse_module("z.kir", text).unwrap();
        let mut cm = CompiledModule::new();
        cm.add_data_items(&m).unwrap();
        let at = |cm: &CompiledModule, n: &str| cm.symbol(n).unwrap().offset;
        // @a and @b materialized (16-byte aligned objects), then the zeros.
        assert_eq!((at(&cm, "a"), at(&cm, "b")), (0, 16));
        assert_eq!(cm.data.len(), 20);
        assert_eq!((at(&cm, "z1"), at(&cm, "z2")), (32, 144));
        assert_eq!(cm.bss, 144 + 5000 - 20);
        assert_eq!(cm.section_len(Section::Data), 144 + 5000);
        assert_eq!(&cm.data[..9], &[7, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(cm.data[16], 1);
        // Read-only zeros stay bytes in rodata.
        assert_eq!((cm.rodata.len(), at(&cm, "c")), (8, 0));
        // A second call with contents turns the earlier zeros into bytes
        // first, so that nothing overlaps.
        let more = crate::ir::parse::parse_module("y.kir", "data @y = { i64 3 }\n").unwrap();
        cm.add_data_items(&more).unwrap();
        assert_eq!(cm.bss, 0);
        assert_eq!(at(&cm, "y"), 5152);
        assert_eq!(cm.data.len(), 5152 + 8);
    }
}
