//! The loader: placing a compiled module's sections in memory, and
//! relocating them.
//!
//! 1. [`Image::new`] turns a [`CompiledModule`] into an image whose
//!    relocation targets are resolved to [`Target`]s once: a definition of
//!    the module itself (by index), a registry symbol (by [`SymbolId`]), or
//!    an absolute host address. No name is looked up after this.
//! 2. [`place`] copies the image's sections into a [`LoadBatch`] (and asks
//!    the executor where each will run).
//! 3. [`relocate`] applies every relocation for the sections' *target*
//!    addresses, reading symbol addresses from the table by id.
//!
//! Veneers: every call (a [`crate::reloc::RelocKind::is_call`] kind) to a
//! target the module does not define has a stub slot ([`STUB_SIZE`] bytes)
//! at the end of the module's text section, one per distinct target. A
//! call whose target is in range is patched directly; otherwise its slot
//! gets a stub jumping to the target's final (target-space) address and
//! the call is patched to reach the slot. A data reference is never
//! redirected: out of range, like a call whose slot is out of range too,
//! it is a link error naming module, symbol, kind and distance, and
//! nothing runs.

use super::symbols::{FxHashMap, SymbolId, SymbolTable};
use crate::compiled::CompiledModule;
use crate::error::{Diagnostic, Error, Result};
use crate::executor::{Executor, TargetSection};
use crate::ir::{Loc, Module};
use crate::memory::{LoadBatch, MemoryManager, SectionKind, SectionRef};
use crate::reloc::{reaches, write_stub, Reloc, STUB_SIZE};
use smallvec::SmallVec;
use std::fmt;

/// What a relocation's S is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Definition number `n` of the module itself.
    Local(u32),
    /// A symbol of the registry's table.
    Symbol(SymbolId),
    /// A fixed address (a host symbol, the trap handler).
    Absolute(u64),
}

/// A relocation target and the index of its name (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    pub target: Target,
    pub name: u32,
}

/// Every definition of a module: section and offset, by index (inline
/// for a few: most modules are small, and each list would otherwise be an
/// allocation and a free per module).
pub type Defined = SmallVec<[(SectionKind, u64); 4]>;

/// Registry symbols a module defines: id and definition index (inline for
/// a few, as [`Defined`]).
pub type Exports = SmallVec<[(SymbolId, u32); 4]>;

/// A module's relocations with resolved targets (inline for a few, as
/// [`Defined`]).
pub type Relocs = SmallVec<[Reloc<Named>; 4]>;

/// A compiled module with its relocation targets resolved; see the
/// module docs.
pub struct Image {
    /// Text, rodata and data (empty sections are not placed).
    pub sections: [ImageSection; 3],
    /// Every definition of the module: section and offset, by index.
    pub defined: Defined,
    /// Registry symbols this module defines: id and definition index.
    pub exports: Exports,
    pub relocs: Relocs,
    /// Names of definitions, then of relocation targets, for messages.
    pub names: NameList,
    /// The veneer slots: offset of slot 0 in text and each slot's target.
    pub veneers: Veneers,
}

/// One section of an [`Image`].
pub struct ImageSection {
    pub kind: SectionKind,
    /// The bytes to copy in.
    pub bytes: Vec<u8>,
    /// Zero bytes after `bytes` (data: [`CompiledModule::bss`]; text: the
    /// veneer slots): never copied, the memory manager's free memory reads
    /// as zero.
    pub zero: u64,
    pub align: u64,
}

/// A module's names, back to back in one string (one allocation, not one
/// per name; their ends inline for a few names).
#[derive(Default)]
pub struct NameList {
    text: String,
    ends: SmallVec<[u32; 8]>,
}

impl NameList {
    fn with_capacity(names: usize, bytes: usize) -> NameList {
        NameList {
            text: String::with_capacity(bytes),
            ends: SmallVec::with_capacity(names),
        }
    }

    fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len() as u32);
    }

    /// Name `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..end)
    }

    /// The index of the first of names `..limit` equal to `name`.
    pub fn position(&self, name: &str, limit: usize) -> Option<usize> {
        (0..limit.min(self.ends.len())).find(|&i| self.get(i) == Some(name))
    }
}

/// Up to this many keys, [`SmallMap`] searches a list instead of hashing:
/// most modules have a handful of symbols and relocation targets.
const LINEAR_KEYS: usize = 16;

/// A map that is a plain list while small and a hash map beyond
/// `LINEAR_KEYS` (so a tiny module costs no hashing and one allocation,
/// and a big one stays linear in its size).
pub struct SmallMap<K, V> {
    list: SmallVec<[(K, V); 4]>,
    map: FxHashMap<K, V>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap {
            list: SmallVec::new(),
            map: FxHashMap::default(),
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash, V: Copy> SmallMap<K, V> {
    /// An empty map that will hold about `n` keys: beyond `LINEAR_KEYS`,
    /// its hash table is allocated once at that size (a large module's
    /// would otherwise regrow from empty through every doubling, each a
    /// fresh allocation to fault in).
    pub(crate) fn with_capacity(n: usize) -> Self {
        let map = if n > LINEAR_KEYS {
            FxHashMap::with_capacity_and_hasher(n, Default::default())
        } else {
            FxHashMap::default()
        };
        SmallMap {
            list: SmallVec::new(),
            map,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        if self.map.is_empty() {
            self.list.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
        } else {
            self.map.get(key).copied()
        }
    }

    /// Adds `key` (not present).
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if !self.map.is_empty() {
            self.map.insert(key, value);
        } else if self.list.len() < LINEAR_KEYS {
            self.list.push((key, value));
        } else {
            self.map.extend(self.list.drain(..));
            self.map.insert(key, value);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len() + self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Veneer slots at the end of a module's text (see the module docs).
#[derive(Default)]
pub struct Veneers {
    /// Offset of slot 0 in the text section (16-byte aligned).
    offset: u64,
    slots: SmallMap<Target, u64>,
}

impl Veneers {
    /// The text offset of `target`'s slot.
    fn slot(&self, target: Target) -> Option<u64> {
        self.slots
            .get(&target)
            .map(|i| self.offset + i * STUB_SIZE as u64)
    }
}

/// How names that a module does not define resolve (the registry's link
/// rules; errors are located link errors).
pub trait Resolve {
    fn resolve(&mut self, name: &str) -> Result<Target>;
}

impl<F: FnMut(&str) -> Result<Target>> Resolve for F {
    fn resolve(&mut self, name: &str) -> Result<Target> {
        self(name)
    }
}

impl Image {
    /// Resolves `cm`'s relocation targets: its own definitions first, then
    /// `resolve`. `export` picks the registry symbol (if any) each
    /// definition is, by name.
    pub fn new(
        cm: CompiledModule,
        mut export: impl FnMut(&str, bool) -> Option<SymbolId>,
        resolve: &mut dyn Resolve,
    ) -> Result<Image> {
        // The definitions' names and (about) the imports' at once, not
        // regrown name by name.
        let bytes = cm.symbols.iter().map(|s| s.name.len()).sum::<usize>()
            + cm.imports.iter().map(String::len).sum::<usize>();
        let mut names = NameList::with_capacity(cm.symbols.len() + cm.imports.len(), bytes);
        let mut defined = Defined::with_capacity(cm.symbols.len());
        let mut exports = Exports::with_capacity(cm.symbols.len());
        for (i, s) in cm.symbols.iter().enumerate() {
            names.push(&s.name);
            defined.push((s.section, s.offset));
            if let Some(id) = export(&s.name, s.exported) {
                exports.push((id, i as u32));
            }
        }
        let local = |i: usize| Named {
            target: Target::Local(i as u32),
            name: i as u32,
        };
        // Names to targets: built at the first relocation that the
        // compiler did not mark as one of the module's own definitions
        // (none at all, for most large modules).
        let mut index: Option<SmallMap<&str, Named>> = None;
        let mut relocs = Relocs::with_capacity(cm.relocs.len());
        for (k, r) in cm.relocs.iter().enumerate() {
            let hinted = (cm.local.as_ref())
                .and_then(|h| h.target(k))
                .filter(|&i| cm.symbols.get(i).is_some_and(|s| s.name == r.target));
            let t = match hinted {
                Some(i) => local(i),
                None => {
                    let index = index.get_or_insert_with(|| {
                        let mut index =
                            SmallMap::with_capacity(cm.symbols.len() + cm.imports.len());
                        for (i, s) in cm.symbols.iter().enumerate() {
                            index.insert(s.name.as_str(), local(i));
                        }
                        index
                    });
                    match index.get(&r.target.as_str()) {
                        Some(t) => t,
                        None => {
                            let target = resolve.resolve(&r.target)?;
                            let n = names.ends.len() as u32;
                            names.push(&r.target);
                            let t = Named { target, name: n };
                            index.insert(r.target.as_str(), t);
                            t
                        }
                    }
                }
            };
            relocs.push(Reloc {
                section: r.section,
                offset: r.offset,
                kind: r.kind,
                target: t,
                addend: r.addend,
            });
        }
        drop(index);
        let CompiledModule {
            text,
            rodata,
            data,
            bss,
            text_align,
            rodata_align,
            data_align,
            ..
        } = cm;
        let (veneers, stubs) = reserve_veneers(text.len(), &relocs);
        let section = |kind, bytes, zero, align| ImageSection {
            kind,
            bytes,
            zero,
            align,
        };
        Ok(Image {
            sections: [
                section(SectionKind::Text, text, stubs, text_align),
                section(SectionKind::Rodata, rodata, 0, rodata_align),
                section(SectionKind::Data, data, bss, data_align),
            ],
            defined,
            exports,
            relocs,
            names,
            veneers,
        })
    }
}

/// Reserves a veneer slot for each distinct call target in text that the
/// module does not define, after the `text_len` bytes of code; also the
/// bytes the slots add to the text section (zero until a stub is
/// written, so not materialized: [`ImageSection::zero`]).
fn reserve_veneers(text_len: usize, relocs: &[Reloc<Named>]) -> (Veneers, u64) {
    let mut slots: SmallMap<Target, u64> = SmallMap::default();
    for r in relocs {
        if r.section == SectionKind::Text
            && r.kind.is_call()
            && !matches!(r.target.target, Target::Local(_))
            && slots.get(&r.target.target).is_none()
        {
            slots.insert(r.target.target, slots.len() as u64);
        }
    }
    if slots.is_empty() {
        return (Veneers::default(), 0);
    }
    let offset = text_len.next_multiple_of(STUB_SIZE);
    // Unused slots stay zero: nothing branches to them.
    let end = offset + slots.len() * STUB_SIZE;
    let veneers = Veneers {
        offset: offset as u64,
        slots,
    };
    (veneers, (end - text_len) as u64)
}

/// One section of a loaded module.
pub struct Placed {
    pub kind: SectionKind,
    pub r: SectionRef,
    /// Target memory the executor allocated for it (released if the module
    /// is unloaded or the section remapped).
    pub remote: Option<TargetSection>,
}

/// Copies `image`'s sections into `batch`. On error, what was placed is
/// returned too (its remote sections must be released).
pub fn place(
    mm: &mut MemoryManager,
    executor: &dyn Executor,
    batch: &mut LoadBatch,
    image: &Image,
    out: &mut SmallVec<[Placed; 3]>,
) -> Result<()> {
    for ImageSection {
        kind,
        bytes,
        zero,
        align,
    } in &image.sections
    {
        let too_big = || Error::Runtime(format!("a {} section too big", kind.name()));
        let len = usize::try_from(*zero)
            .ok()
            .and_then(|z| z.checked_add(bytes.len()))
            .ok_or_else(too_big)?;
        if len == 0 {
            continue;
        }
        let kind = *kind;
        let align = usize::try_from((*align).max(1)).unwrap_or(16);
        // Rounded up to its alignment (at most 16 bytes): the next
        // section of the kind then starts where this one ends, so packing
        // many small modules leaves no unusable sliver of free space
        // behind each one (the padding is zero; the code never reads it).
        let granule = align.min(16);
        let size = len.checked_next_multiple_of(granule).ok_or_else(too_big)?;
        let r = mm.allocate(batch, kind, size, align)?;
        // The manager's free memory reads as zero (its invariant): only the
        // bytes are copied, the zero tail and padding are there already.
        if let Some(dst) = batch.bytes_mut(r) {
            dst[..bytes.len()].copy_from_slice(bytes);
        }
        let len = size as u64;
        let mut placed = Placed {
            kind,
            r,
            remote: None,
        };
        let chosen = executor.allocate_section(kind, len, align as u64);
        if let Ok(Some(address)) = chosen {
            placed.remote = Some(TargetSection { kind, address, len });
        }
        out.push(placed);
        if let Some(address) = chosen? {
            batch.set_target_address(r, address)?;
        }
    }
    Ok(())
}

/// The target address of each placed section.
pub fn bases(batch: &LoadBatch, sections: &[Placed]) -> SmallVec<[(SectionKind, u64); 3]> {
    sections
        .iter()
        .filter_map(|s| batch.target_address(s.r).map(|a| (s.kind, a)))
        .collect()
}

/// The target address of definition `index` of a module placed at `bases`.
pub fn defined_address(
    defined: &[(SectionKind, u64)],
    bases: &[(SectionKind, u64)],
    index: u32,
) -> Option<u64> {
    let &(kind, off) = defined.get(index as usize)?;
    let &(_, base) = bases.iter().find(|b| b.0 == kind)?;
    Some(base.wrapping_add(off))
}

/// What [`relocate`] needs of a loaded module.
pub struct Relocatable<'a> {
    /// The module name, for messages.
    pub name: &'a str,
    /// The IR, for locating messages at the symbol (if any).
    pub ir: Option<&'a Module>,
    pub sections: &'a [Placed],
    pub defined: &'a [(SectionKind, u64)],
    pub relocs: &'a [Reloc<Named>],
    pub names: &'a NameList,
    pub veneers: &'a Veneers,
}

/// Counters [`relocate`] adds to.
#[derive(Default)]
pub struct RelocCounts {
    pub applied: u64,
    pub through_stubs: u64,
}

/// Applies `m`'s relocations in `batch` for the sections' target
/// addresses. An error leaves the batch to be discarded.
pub fn relocate(
    m: &Relocatable<'_>,
    batch: &mut LoadBatch,
    symbols: &SymbolTable,
    counts: &mut RelocCounts,
) -> Result<()> {
    let bases = bases(batch, m.sections);
    let name_of = |r: &Reloc<Named>| -> &str { m.names.get(r.target.name as usize).unwrap_or("?") };
    let loc_of = |name: &str| {
        m.ir.and_then(|ir| ir.symbol(name).map(|s| ir.symbol_loc(s)))
            .unwrap_or(Loc::NONE)
    };
    for r in m.relocs {
        let s = match r.target.target {
            Target::Local(i) => defined_address(m.defined, &bases, i),
            Target::Symbol(id) => symbols.get(id).and_then(|s| s.address()),
            Target::Absolute(a) => Some(a),
        };
        let Some(s) = s else {
            let name = name_of(r);
            return Err(Error::Link(Diagnostic::new(
                m.name,
                loc_of(name),
                format!("unresolved symbol @{name}"),
            )));
        };
        let Some(placed) = m.sections.iter().find(|p| p.kind == r.section) else {
            return Err(Error::Runtime(format!(
                "module `{}`: relocation in missing {} section",
                m.name,
                r.section.name()
            )));
        };
        let base = batch.target_address(placed.r).unwrap_or(0);
        let Some(bytes) = batch.bytes_mut(placed.r) else {
            continue;
        };
        let place = base.wrapping_add(r.offset.into());
        // A call that cannot reach its target goes through its stub, which
        // jumps to the target's final address.
        let stub = match m.veneers.slot(r.target.target) {
            Some(off) if r.kind.is_call() && !reaches(r.kind, place, s, r.addend) => {
                Some((off, base.wrapping_add(off)))
            }
            _ => None,
        };
        let fail = |e: &dyn fmt::Display, through: &str| {
            let name = name_of(r);
            // Point at the operand that needs the relocation (the first
            // names are the definitions, in `defined` order).
            let loc = m.ir.map_or(Loc::NONE, |ir| {
                let defs = m
                    .defined
                    .iter()
                    .enumerate()
                    .map(|(i, &(k, o))| (m.names.get(i).unwrap_or(""), k, o));
                crate::compiled::reloc_source_loc(ir, r.section, r.offset.into(), name, defs)
            });
            Error::Link(Diagnostic::new(
                m.name,
                loc,
                format!(
                    "cannot relocate {}+{:#x} to @{name}{through} (target {s:#x}, place {place:#x}): {e}",
                    r.section.name(),
                    r.offset,
                ),
            ))
        };
        if let Some((off, stub_addr)) = stub {
            let through = format!(" through its stub at {stub_addr:#x}");
            // The call must reach the stub (an error leaves the place
            // alone); the stub reaches anything.
            r.apply_to(bytes, base, stub_addr)
                .map_err(|e| fail(&e, &through))?;
            let slot = usize::try_from(off)
                .ok()
                .and_then(|o| bytes.get_mut(o..))
                .and_then(|b| write_stub(r.kind, b, s));
            if slot.is_none() {
                return Err(fail(&"no room for the stub", &through));
            }
            counts.through_stubs += 1;
        } else {
            r.apply_to(bytes, base, s).map_err(|e| fail(&e, ""))?;
        }
        counts.applied += 1;
    }
    Ok(())
}

/// Hands the relocated sections of a batch to the executor; returns what
/// was written (to finalize) or the first error.
pub fn write_out(
    executor: &dyn Executor,
    batch: &LoadBatch,
    sections: &[Placed],
    written: &mut impl Extend<TargetSection>,
) -> Result<()> {
    for s in sections {
        let (Some(address), Some(bytes)) = (batch.target_address(s.r), batch.bytes(s.r)) else {
            continue;
        };
        let t = TargetSection {
            kind: s.kind,
            address,
            len: bytes.len() as u64,
        };
        executor.write_section(t, bytes)?;
        written.extend([t]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names read back as pushed (their ends inline or spilled), with
    /// multi-byte characters, and are found by position only below the
    /// limit.
    #[test]
    fn name_lists_read_back() {
        for count in [0, 2, 9, 40] {
            let names: Vec<String> = (0..count).map(|i| format!("né_{i}")).collect();
            let bytes: usize = names.iter().map(String::len).sum();
            let mut list = NameList::with_capacity(count / 2, bytes / 2);
            for n in &names {
                list.push(n);
            }
            for (i, n) in names.iter().enumerate() {
                assert_eq!(list.get(i), Some(n.as_str()), "{count}: {i}");
                assert_eq!(list.position(n, count), Some(i));
                assert_eq!(list.position(n, i), None);
            }
            assert_eq!(list.get(count), None);
        }
    }

    /// A large module's relocations to its own definitions carry hints
    /// (recursion, calls back, data addresses, jump tables; calls forward
    /// have none and go by name): the image resolves every relocation as
    /// by names alone, and wrong hints are ignored.
    #[test]
    fn local_hints_resolve_as_names_do() {
        let mut text = String::from("data @d = { i64 1, @f3 }\nextern func @ext(i64) -> i64\n");
        for i in 0..24 {
            let back = if i == 0 {
                "ext".to_string()
            } else {
                format!("f{}", i - 1)
            };
            text += &format!(
                "func @f{i}(%x: i64) -> i64 {{\nentry:\n    %c = slt.i64 %x, 1\n    br %c, done, more\n\
                 done:\n    %p = addr @d\n    ret %p\nmore:\n    %y = sub.i64 %x, 1\n\
                 %a = call.i64 @f{i}(%y)\n    %b = call.i64 @{back}(%a)\n\
                 %n = call.i64 @f{}(%b)\n    switch.i64 %n, z, 0: z, 1: o, 2: z, 3: o\n\
                 z:\n    ret %a\no:\n    ret %b\n}}\n",
                (i + 1) % 24
            );
        }
        let m = crate::ir::parse::parse_module("hints.kir", &text).unwrap();
        let backend = crate::isa::backend("x86_64").unwrap();
        let cm = crate::emit::compile_module(&m, backend).unwrap();
        let hints = cm.local.as_deref().expect("hints for a large module");
        let hinted: Vec<usize> = (0..cm.relocs.len())
            .filter(|&k| hints.target(k).is_some())
            .collect();
        for &k in &hinted {
            let i = hints.target(k).unwrap();
            assert_eq!(cm.symbols[i].name, cm.relocs[k].target, "reloc {k}");
        }
        // Per function: the recursive call, the call back (but @f0's, to
        // the import), the data address and the jump table's 4 entries.
        assert!(hinted.len() >= 24 * 7 - 1, "{} hinted", hinted.len());
        assert!(hinted.len() < cm.relocs.len());
        let image = |cm: CompiledModule| {
            let mut resolve = |name: &str| match name {
                "ext" => Ok(Target::Absolute(0x1000)),
                _ => Err(Error::Runtime(format!("unexpected {name}"))),
            };
            let image = Image::new(cm, |_, _| None, &mut resolve).unwrap();
            let names: Vec<String> = (0..image.names.ends.len())
                .map(|i| image.names.get(i).unwrap().to_string())
                .collect();
            (image.relocs.to_vec(), names)
        };
        let by_names = {
            let mut cm = cm.clone();
            cm.local = None;
            image(cm)
        };
        assert_eq!(image(cm.clone()), by_names);
        // Hints naming the wrong symbol (each shifted by one) are not used.
        let mut wrong = cm.clone();
        let h = wrong.local.as_deref_mut().unwrap();
        for &k in &hinted {
            let i = h.target(k).unwrap();
            h.set_target(k, (i + 1) % cm.symbols.len());
        }
        assert_eq!(image(wrong), by_names);
    }

    /// One function compiled out of a large module (a lazy module's
    /// function-module) keeps no hints, whose size would follow the whole
    /// module; compiled into a whole-module output, the same function
    /// keeps them. Either way its image resolves the same.
    #[test]
    fn one_function_keeps_no_hints() {
        let mut text = String::new();
        for i in 0..40 {
            text += &format!(
                "func @f{i}(%x: i64) -> i64 {{\nentry:\n    %y = call.i64 @f{}(%x)\n    \
                 %z = call.i64 @f{i}(%y)\n    ret %z\n}}\n",
                (i + 1) % 40
            );
        }
        let m = crate::ir::parse::parse_module("one.kir", &text).unwrap();
        let backend = crate::isa::backend("x86_64").unwrap();
        let sym = m.symbol("f39").unwrap();
        let compile = |mut out: CompiledModule| {
            backend.compile_function(&m, sym, &mut out).unwrap();
            out
        };
        let whole = compile(CompiledModule::new());
        let one = compile(CompiledModule::for_one_function());
        assert!(whole.local.is_some(), "a large module's output keeps hints");
        assert!(one.local.is_none(), "one function keeps no hints");
        assert_eq!((&one.text, &one.relocs), (&whole.text, &whole.relocs));
        let image = |cm: CompiledModule| {
            let mut resolve = |name: &str| match name {
                "f0" => Ok(Target::Absolute(0x1000)),
                _ => Err(Error::Runtime(format!("unexpected {name}"))),
            };
            Image::new(cm, |_, _| None, &mut resolve)
                .unwrap()
                .relocs
                .to_vec()
        };
        let relocs = image(one);
        assert_eq!(relocs, image(whole));
        assert_eq!(relocs.len(), 2);
        assert_eq!(relocs[1].target.target, Target::Local(0));
    }
}
