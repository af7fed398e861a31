//! The module registry: every module of an engine, in one of three states,
//! each its own container (DESIGN.md, "module registry"):
//!
//! | state | container | holds |
//! |---|---|---|
//! | Added | `added` | the verified IR; nothing compiled |
//! | Loaded | `loaded` | IR, sections placed in the open [`LoadBatch`], relocation table pending |
//! | Finalized | `finalized` | protected sections, callable; the modules it references |
//!
//! and a symbol table (`HashMap`) from each exported name to its module,
//! kind and, once loaded, target address.
//!
//! Invariants:
//! - A name is exported by at most one module (checked at [`Registry::add`]).
//! - Link messages use the interpreter's wording ([`crate::link`]), so both
//!   engines print the same diagnostics.
//! - Every module in `loaded` has its sections in `batch`; `batch` is `None`
//!   exactly when `loaded` is empty.
//! - A symbol's address is `Some` exactly when its module is Loaded or
//!   Finalized, and equals its section's *target* address plus its offset.
//! - `referrers[m]` holds every Loaded or Finalized module whose code
//!   resolves a symbol to module `m`; a module with referrers is never
//!   removed.
//! - Work is proportional to what changes: [`Registry::load`] visits only
//!   Added modules reachable from its roots (through the symbol table);
//!   [`Registry::finalize`] only the Loaded set. Nothing scans all modules,
//!   so the N-th add + finalize costs the same for every N
//!   ([`RegistryStats`] counts what each finalize touched).
//! - A failed load or finalize leaves no module half-done: every Loaded
//!   module goes back to Added and the batch's memory is returned.
//! - Calls (relocation kinds with [`crate::reloc::RelocKind::is_call`]) to a symbol the
//!   module does not define have a stub slot ([`STUB_SIZE`] bytes) at the end
//!   of the module's text section, one per distinct target. A call whose
//!   target is in range is patched directly; otherwise its slot gets a stub
//!   jumping to the target's final (target-space) address and the call is
//!   patched to reach the slot. A data reference is never redirected: out
//!   of range, like a call whose slot is out of range too, it is a link
//!   error naming module, symbol, kind and distance, and nothing runs.

use crate::compiled::CompiledModule;
use crate::debug::{DebugRegistry, ModuleDebug};
use crate::emit::compile_module;
use crate::error::{Diagnostic, Error, Result};
use crate::executor::{Executor, TargetSection};
use crate::ir::{Linkage, Loc, Module, Signature, SymId, SymbolKind};
use crate::isa::TRAP_HANDLER;
use crate::memory::{
    FinalizedSection, LoadBatch, MemoryConfig, MemoryManager, SectionKind, SectionRef,
};
use crate::reloc::{reaches, write_stub, Reloc, RelocTable, STUB_SIZE};
use crate::symbols::HostSymbols;
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// A module's handle in its registry; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(u64);

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module#{}", self.0)
    }
}

/// The state of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    Added,
    Loaded,
    Finalized,
}

/// What an exported symbol is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Func(Signature),
    Data,
}

/// One entry of the symbol table.
#[derive(Clone, Debug)]
pub struct SymbolEntry {
    pub module: ModuleId,
    pub kind: ExportKind,
    /// Target address, once the module is Loaded.
    pub address: Option<u64>,
}

/// Counters that tests and benchmarks read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    pub added: usize,
    pub loaded: usize,
    pub finalized: usize,
    /// Modules compiled since the registry was made.
    pub modules_compiled: u64,
    /// Finalize passes that did work.
    pub finalizes: u64,
    /// Modules the last load + finalize visited (reachability walk plus the
    /// Loaded set it finalized).
    pub last_touched: usize,
    /// Modules the last load compiled.
    pub last_compiled: usize,
    /// Relocations applied since the registry was made.
    pub relocations_applied: u64,
    /// Calls routed through a stub (veneer) since the registry was made.
    pub calls_through_stubs: u64,
}

struct AddedModule {
    ir: Module,
}

struct PlacedSection {
    kind: SectionKind,
    r: SectionRef,
    /// Target memory the executor allocated for it (released if the
    /// module is unloaded or the section remapped).
    remote: Option<TargetSection>,
}

struct LoadedModule {
    ir: Module,
    sections: SmallVec<[PlacedSection; 3]>,
    /// Every symbol the compiled module defines (local ones and jump tables
    /// included): section and offset.
    defined: HashMap<String, (SectionKind, u64)>,
    exports: Vec<String>,
    relocs: RelocTable<String>,
    deps: Vec<ModuleId>,
    /// The stub area: its offset in the text section and the slot index
    /// of each imported call target.
    stubs: StubArea,
    /// Line tables, handed to [`DebugRegistry`] at finalize.
    debug: ModuleDebug,
}

/// Stub slots at the end of a module's text section (see the module docs).
#[derive(Default)]
struct StubArea {
    /// Offset of slot 0 in the text section (16-byte aligned).
    offset: u64,
    slots: HashMap<String, u64>,
}

impl StubArea {
    /// Reserves a slot for each distinct call target in `cm`'s text that
    /// `cm` does not define, growing `cm.text` to hold them.
    fn reserve(cm: &mut CompiledModule) -> StubArea {
        let defined: HashSet<&str> = cm.symbols.iter().map(|s| s.name.as_str()).collect();
        let mut slots: HashMap<String, u64> = HashMap::new();
        for r in &cm.relocs {
            if r.section == SectionKind::Text
                && r.kind.is_call()
                && !defined.contains(r.target.as_str())
                && !slots.contains_key(&r.target)
            {
                let i = slots.len() as u64;
                slots.insert(r.target.clone(), i);
            }
        }
        if slots.is_empty() {
            return StubArea::default();
        }
        let offset = cm.text.len().next_multiple_of(STUB_SIZE);
        // Unused slots stay zero: nothing branches to them.
        cm.text.resize(offset + slots.len() * STUB_SIZE, 0);
        StubArea {
            offset: offset as u64,
            slots,
        }
    }

    /// The text-section offset of `target`'s slot.
    fn slot(&self, target: &str) -> Option<u64> {
        self.slots
            .get(target)
            .map(|&i| self.offset + i * STUB_SIZE as u64)
    }
}

struct FinalizedModule {
    name: String,
    sections: Vec<FinalizedSection>,
    exports: Vec<String>,
    deps: Vec<ModuleId>,
    /// Held by running calls; removal is refused while shared.
    pin: Arc<()>,
}

/// Added modules to load, each with the modules it references, and how
/// many modules the walk visited.
type Reach = (Vec<(ModuleId, Vec<ModuleId>)>, usize);

/// What an `extern` resolves to.
enum Resolved {
    Module(ModuleId),
    Host,
}

/// The module registry of one engine. Not thread-safe by itself: the
/// engine wraps it in a lock.
pub struct Registry {
    added: HashMap<ModuleId, AddedModule>,
    loaded: HashMap<ModuleId, LoadedModule>,
    finalized: HashMap<ModuleId, FinalizedModule>,
    batch: Option<LoadBatch>,
    symbols: HashMap<String, SymbolEntry>,
    referrers: HashMap<ModuleId, HashSet<ModuleId>>,
    host: HostSymbols,
    mm: MemoryManager,
    /// The `--target` name; its backend is looked up when compiling
    /// (`&dyn Backend` is not `Sync`, and the lookup is a `match`).
    target: String,
    executor: Arc<dyn Executor>,
    stats: RegistryStats,
    next_id: u64,
    /// The code map of finalized modules (trap backtraces) and the
    /// debugger / profiler registrations.
    debug: DebugRegistry,
}

fn link_err(module: &Module, sym: SymId, message: String) -> Error {
    Error::Link(Diagnostic::new(
        module.name.clone(),
        module.symbol_loc(sym),
        message,
    ))
}

/// The module's exported definitions: name and kind.
fn exports_of(module: &Module) -> impl Iterator<Item = (SymId, &str, ExportKind)> {
    module.symbol_ids().filter_map(|(id, s)| {
        if s.linkage != Linkage::Export {
            return None;
        }
        match &s.kind {
            SymbolKind::Func { sig, body: Some(_) } => {
                Some((id, s.name.as_str(), ExportKind::Func(sig.clone())))
            }
            SymbolKind::Data { body: Some(_) } => Some((id, s.name.as_str(), ExportKind::Data)),
            _ => None,
        }
    })
}

impl Registry {
    /// A registry compiling for `target` (if kiln was built without its
    /// backend, compiling is an error) and running through `executor`.
    pub fn new(target: &str, executor: Arc<dyn Executor>, memory: MemoryConfig) -> Result<Self> {
        Ok(Registry {
            added: HashMap::new(),
            loaded: HashMap::new(),
            finalized: HashMap::new(),
            batch: None,
            symbols: HashMap::new(),
            referrers: HashMap::new(),
            host: HostSymbols::new(),
            mm: MemoryManager::new(memory)?,
            target: target.to_string(),
            executor,
            stats: RegistryStats::default(),
            next_id: 1,
            debug: DebugRegistry::new(),
        })
    }

    /// The code map and debug registrations.
    pub fn debug(&self) -> &DebugRegistry {
        &self.debug
    }

    /// The code map and debug registrations, to change their options.
    pub fn debug_mut(&mut self) -> &mut DebugRegistry {
        &mut self.debug
    }

    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    pub fn memory(&self) -> &MemoryManager {
        &self.mm
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            added: self.added.len(),
            loaded: self.loaded.len(),
            finalized: self.finalized.len(),
            ..self.stats
        }
    }

    pub fn host_symbols_mut(&mut self) -> &mut HostSymbols {
        &mut self.host
    }

    pub fn state(&self, id: ModuleId) -> Option<ModuleState> {
        if self.added.contains_key(&id) {
            Some(ModuleState::Added)
        } else if self.loaded.contains_key(&id) {
            Some(ModuleState::Loaded)
        } else if self.finalized.contains_key(&id) {
            Some(ModuleState::Finalized)
        } else {
            None
        }
    }

    /// The symbol table entry of exported `name`.
    pub fn symbol(&self, name: &str) -> Option<&SymbolEntry> {
        self.symbols.get(name)
    }

    /// Adds a verified module in the Added state. A name it exports that
    /// another module already exports is a link error at its definition.
    pub fn add(&mut self, module: Module) -> Result<ModuleId> {
        for (sym, name, _) in exports_of(&module) {
            if let Some(e) = self.symbols.get(name) {
                let other = self.module_name(e.module).unwrap_or("?");
                return Err(link_err(
                    &module,
                    sym,
                    format!("@{name} is already exported by module {other}"),
                ));
            }
        }
        let id = ModuleId(self.next_id);
        self.next_id += 1;
        for (_, name, kind) in exports_of(&module) {
            self.symbols.insert(
                name.to_string(),
                SymbolEntry {
                    module: id,
                    kind,
                    address: None,
                },
            );
        }
        self.added.insert(id, AddedModule { ir: module });
        Ok(id)
    }

    fn module_name(&self, id: ModuleId) -> Option<&str> {
        if let Some(m) = self.added.get(&id) {
            Some(&m.ir.name)
        } else if let Some(m) = self.loaded.get(&id) {
            Some(&m.ir.name)
        } else {
            self.finalized.get(&id).map(|m| m.name.as_str())
        }
    }

    /// Resolves `extern` symbol `sym` of `module` (SPEC section 8): another
    /// module's export (kind and signature must agree), then a registered
    /// host symbol, then the executor's host lookup.
    fn resolve_import(&self, module: &Module, sym: SymId) -> Result<Resolved> {
        let s = module.sym(sym);
        let name = s.name.as_str();
        let want = s.signature();
        if let Some(e) = self.symbols.get(name) {
            let other = self.module_name(e.module).unwrap_or("?");
            match (&e.kind, want) {
                (ExportKind::Func(have), Some(want)) if have != want => {
                    return Err(link_err(
                        module,
                        sym,
                        format!(
                            "extern @{name} has signature {want} but module {other} defines {have}"
                        ),
                    ))
                }
                (ExportKind::Func(_), None) => {
                    return Err(link_err(
                        module,
                        sym,
                        format!("extern data @{name} names a function defined by module {other}"),
                    ))
                }
                (ExportKind::Data, Some(_)) => {
                    return Err(link_err(
                        module,
                        sym,
                        format!("extern func @{name} names data defined by module {other}"),
                    ))
                }
                _ => return Ok(Resolved::Module(e.module)),
            }
        }
        // Host symbols: the embedder's registrations first, then the
        // executor's own (the process's `dlsym`, or an emulator's stubs).
        let host_sig = match self.host.get(name) {
            Some(h) => h.signature.clone(),
            None if self.executor.host_symbol(name).is_some() => self.executor.host_signature(name),
            None => return Err(link_err(module, sym, format!("unresolved symbol @{name}"))),
        };
        match (host_sig, want) {
            (Some(have), Some(want)) if have != *want => Err(link_err(
                module,
                sym,
                format!("extern @{name} has signature {want} but the host function has {have}"),
            )),
            (Some(_), None) => Err(link_err(
                module,
                sym,
                format!("extern data @{name} names a host function"),
            )),
            _ => Ok(Resolved::Host),
        }
    }

    /// The Added modules reachable from `roots` (roots included when
    /// Added), each with the modules its externs resolve to; every extern
    /// of every module visited is link-checked. Touches nothing else.
    fn reach(&self, roots: &[ModuleId]) -> Result<Reach> {
        let mut seen: HashSet<ModuleId> = HashSet::new();
        let mut work: Vec<ModuleId> = Vec::new();
        for &r in roots {
            if self.added.contains_key(&r) && seen.insert(r) {
                work.push(r);
            }
        }
        let mut out = Vec::new();
        while let Some(id) = work.pop() {
            let Some(m) = self.added.get(&id) else {
                continue;
            };
            let mut deps = Vec::new();
            for (sym, s) in m.ir.symbol_ids() {
                if s.linkage != Linkage::Import {
                    continue;
                }
                if let Resolved::Module(dep) = self.resolve_import(&m.ir, sym)? {
                    if !deps.contains(&dep) {
                        deps.push(dep);
                    }
                    if self.added.contains_key(&dep) && seen.insert(dep) {
                        work.push(dep);
                    }
                }
            }
            out.push((id, deps));
        }
        let touched = seen.len();
        Ok((out, touched))
    }

    /// Compiles the Added modules reachable from `roots` and loads them
    /// (sections placed and filled, relocations pending). Roots that are
    /// already Loaded or Finalized are fine.
    pub fn load(&mut self, roots: &[ModuleId]) -> Result<usize> {
        for r in roots {
            if self.state(*r).is_none() {
                return Err(Error::Argument(format!("no {r} in this engine")));
            }
        }
        let (todo, touched) = self.reach(roots)?;
        self.stats.last_touched = touched;
        self.stats.last_compiled = 0;
        if todo.is_empty() {
            return Ok(touched);
        }
        let backend = crate::isa::backend(&self.target).ok_or_else(|| {
            Error::Runtime(format!(
                "kiln was built without a backend for target {}",
                self.target
            ))
        })?;
        let mut compiled = Vec::with_capacity(todo.len());
        for (id, deps) in todo {
            let Some(m) = self.added.get(&id) else {
                continue;
            };
            compiled.push((id, deps, compile_module(&m.ir, backend)?));
        }
        self.stats.modules_compiled += compiled.len() as u64;
        self.stats.last_compiled = compiled.len();
        let mut batch = match self.batch.take() {
            Some(b) => b,
            None => self.mm.begin_batch(),
        };
        let mut result = Ok(());
        for (id, deps, cm) in compiled {
            if let Err(e) = self.place(&mut batch, id, deps, cm) {
                result = Err(e);
                break;
            }
        }
        self.batch = Some(batch);
        if let Err(e) = result {
            self.unload_all();
            return Err(e);
        }
        Ok(touched)
    }

    /// Places one compiled module's sections in `batch` and moves it from
    /// Added to Loaded.
    fn place(
        &mut self,
        batch: &mut LoadBatch,
        id: ModuleId,
        deps: Vec<ModuleId>,
        mut cm: CompiledModule,
    ) -> Result<()> {
        let Some(added) = self.added.remove(&id) else {
            return Ok(());
        };
        let stubs = StubArea::reserve(&mut cm);
        let debug = ModuleDebug::take(&added.ir.name, &mut cm);
        let mut loaded = LoadedModule {
            ir: added.ir,
            sections: SmallVec::new(),
            defined: HashMap::with_capacity(cm.symbols.len()),
            exports: Vec::new(),
            relocs: RelocTable::new(),
            deps,
            stubs,
            debug,
        };
        // Registered before anything can fail, so `unload_all` finds it.
        for &d in &loaded.deps {
            self.referrers.entry(d).or_default().insert(id);
        }
        let mut fail = None;
        for (kind, bytes, align) in [
            (SectionKind::Text, &cm.text, cm.text_align),
            (SectionKind::Rodata, &cm.rodata, cm.rodata_align),
            (SectionKind::Data, &cm.data, cm.data_align),
        ] {
            if bytes.is_empty() {
                continue;
            }
            let align = usize::try_from(align.max(1)).unwrap_or(16);
            match self.mm.allocate(batch, kind, bytes.len(), align) {
                Ok(r) => {
                    if let Some(dst) = batch.bytes_mut(r) {
                        dst.copy_from_slice(bytes);
                    }
                    let len = bytes.len() as u64;
                    let remote = match self.executor.allocate_section(kind, len, align as u64) {
                        Ok(Some(address)) => match batch.set_target_address(r, address) {
                            Ok(()) => Some(TargetSection { kind, address, len }),
                            Err(e) => {
                                fail = Some(e);
                                None
                            }
                        },
                        Ok(None) => None,
                        Err(e) => {
                            fail = Some(e);
                            None
                        }
                    };
                    loaded.sections.push(PlacedSection { kind, r, remote });
                    if fail.is_some() {
                        break;
                    }
                }
                Err(e) => {
                    fail = Some(e);
                    break;
                }
            }
        }
        for s in &cm.symbols {
            loaded.defined.insert(s.name.clone(), (s.section, s.offset));
            if s.exported {
                loaded.exports.push(s.name.clone());
            }
        }
        loaded.relocs = cm.relocs.into_iter().collect();
        let exports = loaded.exports.clone();
        self.loaded.insert(id, loaded);
        if let Some(e) = fail {
            return Err(e);
        }
        for name in &exports {
            self.refresh_address(id, name, batch);
        }
        Ok(())
    }

    /// Recomputes the symbol table address of `name` (defined by Loaded
    /// module `id`) from its section's current target address.
    fn refresh_address(&mut self, id: ModuleId, name: &str, batch: &LoadBatch) {
        let Some(m) = self.loaded.get(&id) else {
            return;
        };
        let Some(&(kind, off)) = m.defined.get(name) else {
            return;
        };
        let base = m
            .sections
            .iter()
            .find(|s| s.kind == kind)
            .and_then(|s| batch.target_address(s.r));
        if let Some(e) = self.symbols.get_mut(name) {
            if e.module == id {
                e.address = base.map(|b| b.wrapping_add(off));
            }
        }
    }

    /// Sends every Loaded module back to Added and returns the batch's
    /// memory (after a failed load or finalize).
    fn unload_all(&mut self) {
        let ids: Vec<ModuleId> = self.loaded.keys().copied().collect();
        for id in ids {
            let Some(m) = self.loaded.remove(&id) else {
                continue;
            };
            for name in &m.exports {
                if let Some(e) = self.symbols.get_mut(name) {
                    if e.module == id {
                        e.address = None;
                    }
                }
            }
            for d in &m.deps {
                if let Some(set) = self.referrers.get_mut(d) {
                    set.remove(&id);
                }
            }
            for s in m.sections.iter().filter_map(|s| s.remote) {
                // Best effort: a failure only leaks executor memory.
                let _ = self.executor.release_section(s);
            }
            self.added.insert(id, AddedModule { ir: m.ir });
        }
        if let Some(b) = self.batch.take() {
            // The batch never ran; if even discarding fails the memory is
            // only leaked, which is not worth masking the first error.
            let _ = self.mm.discard(b);
        }
    }

    /// Moves a section of a Loaded module to `address` in the executor's
    /// memory: relocations are computed for it at finalize.
    pub fn map_section_address(
        &mut self,
        id: ModuleId,
        kind: SectionKind,
        address: u64,
    ) -> Result<()> {
        let (Some(m), Some(batch)) = (self.loaded.get(&id), self.batch.as_mut()) else {
            return Err(Error::Argument(format!(
                "{id} is not loaded: sections can be mapped only between load and finalize"
            )));
        };
        let Some(s) = m.sections.iter().find(|s| s.kind == kind) else {
            return Err(Error::Argument(format!(
                "module `{}` has no {} section",
                m.ir.name,
                kind.name()
            )));
        };
        batch.set_target_address(s.r, address)?;
        let old = s.remote;
        let names: Vec<String> = m
            .exports
            .iter()
            .filter(|n| m.defined.get(*n).is_some_and(|d| d.0 == kind))
            .cloned()
            .collect();
        if let Some(old) = old {
            // The embedder chose another place: give the executor's back.
            if let Some(s) = self
                .loaded
                .get_mut(&id)
                .and_then(|m| m.sections.iter_mut().find(|s| s.kind == kind))
            {
                s.remote = None;
            }
            self.executor.release_section(old)?;
        }
        let batch = self.batch.take();
        if let Some(b) = &batch {
            for n in &names {
                self.refresh_address(id, n, b);
            }
        }
        self.batch = batch;
        Ok(())
    }

    /// The target address of section `kind` of a Loaded or Finalized module.
    pub fn section_address(&self, id: ModuleId, kind: SectionKind) -> Option<u64> {
        if let Some(m) = self.loaded.get(&id) {
            let s = m.sections.iter().find(|s| s.kind == kind)?;
            return self.batch.as_ref()?.target_address(s.r);
        }
        let m = self.finalized.get(&id)?;
        m.sections
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.target_address())
    }

    /// Resolves relocation target `name` of Loaded module `m`: its own
    /// definitions, the trap handler, other modules, the host.
    fn reloc_target(
        &self,
        m: &LoadedModule,
        bases: &[(SectionKind, u64)],
        r: &Reloc<String>,
    ) -> Result<u64> {
        let name = r.target.as_str();
        if let Some(&(kind, off)) = m.defined.get(name) {
            if let Some(&(_, base)) = bases.iter().find(|b| b.0 == kind) {
                return Ok(base.wrapping_add(off));
            }
        }
        let unresolved = || {
            let loc = m.ir.symbol(name).map_or(Loc::NONE, |s| m.ir.symbol_loc(s));
            Error::Link(Diagnostic::new(
                m.ir.name.clone(),
                loc,
                format!("unresolved symbol @{name}"),
            ))
        };
        if name == TRAP_HANDLER {
            return self
                .executor
                .host_symbol(TRAP_HANDLER)
                .ok_or_else(unresolved);
        }
        if let Some(e) = self.symbols.get(name) {
            return e.address.ok_or_else(unresolved);
        }
        if let Some(h) = self.host.get(name) {
            return Ok(h.address);
        }
        self.executor.host_symbol(name).ok_or_else(unresolved)
    }

    /// Finalizes the Loaded set: applies every pending relocation, writes
    /// the sections to the executor, protects them, and moves the modules
    /// to Finalized. Touches only the Loaded set.
    pub fn finalize(&mut self) -> Result<()> {
        if self.loaded.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.relocate_all() {
            self.unload_all();
            return Err(e);
        }
        let Some(batch) = self.batch.take() else {
            return Err(Error::Runtime("loaded modules without a batch".into()));
        };
        // Hand the relocated bytes to the executor before sealing.
        let mut written: Vec<TargetSection> = Vec::new();
        for m in self.loaded.values() {
            for s in &m.sections {
                let (Some(addr), Some(bytes)) = (batch.target_address(s.r), batch.bytes(s.r))
                else {
                    continue;
                };
                let t = TargetSection {
                    kind: s.kind,
                    address: addr,
                    len: bytes.len() as u64,
                };
                if let Err(e) = self.executor.write_section(t, bytes) {
                    self.batch = Some(batch);
                    self.unload_all();
                    return Err(e);
                }
                written.push(t);
            }
        }
        let mut fin = match self.mm.finalize(batch) {
            Ok(f) => f,
            Err(e) => {
                // The memory manager leaked the batch; the modules go back
                // to Added so that a later finalize can retry.
                self.unload_all();
                return Err(e);
            }
        };
        let loaded = std::mem::take(&mut self.loaded);
        self.stats.last_touched += loaded.len();
        self.stats.finalizes += 1;
        for (id, m) in loaded {
            let sections: Vec<FinalizedSection> =
                m.sections.iter().filter_map(|s| fin.take(s.r)).collect();
            if let Some(text) = sections.iter().find(|s| s.kind() == SectionKind::Text) {
                self.debug.module_finalized(id, m.debug, text);
            }
            self.finalized.insert(
                id,
                FinalizedModule {
                    name: m.ir.name,
                    sections,
                    exports: m.exports,
                    deps: m.deps,
                    pin: Arc::new(()),
                },
            );
        }
        self.executor.finalize_sections(&written)
    }

    fn relocate_all(&mut self) -> Result<()> {
        let Some(mut batch) = self.batch.take() else {
            return Err(Error::Runtime("loaded modules without a batch".into()));
        };
        let result = self.relocate_with(&mut batch);
        self.batch = Some(batch);
        result
    }

    fn relocate_with(&mut self, batch: &mut LoadBatch) -> Result<()> {
        let mut applied = 0u64;
        let mut stubs_used = 0u64;
        for m in self.loaded.values() {
            let bases: SmallVec<[(SectionKind, u64); 3]> = m
                .sections
                .iter()
                .filter_map(|s| batch.target_address(s.r).map(|a| (s.kind, a)))
                .collect();
            for r in &m.relocs {
                let s = self.reloc_target(m, &bases, r)?;
                let Some(placed) = m.sections.iter().find(|p| p.kind == r.section) else {
                    return Err(Error::Runtime(format!(
                        "module `{}`: relocation in missing {} section",
                        m.ir.name,
                        r.section.name()
                    )));
                };
                let base = batch.target_address(placed.r).unwrap_or(0);
                let Some(bytes) = batch.bytes_mut(placed.r) else {
                    continue;
                };
                let place = base.wrapping_add(r.offset.into());
                // A call that cannot reach its target goes through its stub,
                // which jumps to the target's final address.
                let stub = match m.stubs.slot(&r.target) {
                    Some(off) if r.kind.is_call() && !reaches(r.kind, place, s, r.addend) => {
                        Some((off, base.wrapping_add(off)))
                    }
                    _ => None,
                };
                let fail = |e: &dyn fmt::Display, through: &str| {
                    let loc =
                        m.ir.symbol(&r.target)
                            .map_or(Loc::NONE, |s| m.ir.symbol_loc(s));
                    Error::Link(Diagnostic::new(
                        m.ir.name.clone(),
                        loc,
                        format!(
                            "cannot relocate {}+{:#x} to @{}{through} (target {:#x}, place {:#x}): {e}",
                            r.section.name(),
                            r.offset,
                            r.target,
                            s,
                            place
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
                    stubs_used += 1;
                } else {
                    r.apply_to(bytes, base, s).map_err(|e| fail(&e, ""))?;
                }
                applied += 1;
            }
        }
        self.stats.relocations_applied += applied;
        self.stats.calls_through_stubs += stubs_used;
        Ok(())
    }

    /// Loads what `roots` reach and finalizes the Loaded set.
    pub fn finalize_from(&mut self, roots: &[ModuleId]) -> Result<()> {
        self.load(roots)?;
        self.finalize()
    }

    /// The address, signature and pin of exported function `name`,
    /// finalizing its module (and what it reaches) first if needed.
    pub fn function(&mut self, name: &str) -> Result<(u64, Signature, Arc<()>)> {
        let Some(e) = self.symbols.get(name) else {
            return Err(Error::Argument(format!("no exported function @{name}")));
        };
        let ExportKind::Func(sig) = e.kind.clone() else {
            return Err(Error::Argument(format!("@{name} is data, not a function")));
        };
        let id = e.module;
        if !self.finalized.contains_key(&id) {
            self.finalize_from(&[id])?;
        }
        let (Some(m), Some(addr)) = (
            self.finalized.get(&id),
            self.symbols.get(name).and_then(|e| e.address),
        ) else {
            return Err(Error::Runtime(format!("@{name} was not finalized")));
        };
        Ok((addr, sig, m.pin.clone()))
    }

    /// The target address of exported `name` (function or data),
    /// finalizing on demand.
    pub fn symbol_address(&mut self, name: &str) -> Result<u64> {
        let Some(e) = self.symbols.get(name) else {
            return Err(Error::Argument(format!("no exported symbol @{name}")));
        };
        let id = e.module;
        if !self.finalized.contains_key(&id) {
            self.finalize_from(&[id])?;
        }
        self.symbols
            .get(name)
            .and_then(|e| e.address)
            .ok_or_else(|| Error::Runtime(format!("@{name} was not finalized")))
    }

    /// Removes a module. Added: forgotten. Loaded: refused (finalize
    /// first). Finalized: refused while another module references it or a
    /// call runs in it; otherwise its memory is returned for reuse.
    pub fn remove(&mut self, id: ModuleId) -> Result<()> {
        if let Some(m) = self.added.remove(&id) {
            for (_, name, _) in exports_of(&m.ir) {
                if self.symbols.get(name).is_some_and(|e| e.module == id) {
                    self.symbols.remove(name);
                }
            }
            return Ok(());
        }
        if let Some(m) = self.loaded.get(&id) {
            return Err(Error::Argument(format!(
                "module `{}` is loaded but not finalized; finalize it before removing it",
                m.ir.name
            )));
        }
        let Some(m) = self.finalized.get(&id) else {
            return Err(Error::Argument(format!("no {id} in this engine")));
        };
        if let Some(r) = self
            .referrers
            .get(&id)
            .and_then(|s| s.iter().min().copied())
        {
            let by = self.module_name(r).unwrap_or("?");
            return Err(Error::Argument(format!(
                "cannot remove module `{}`: module `{by}` references it",
                m.name
            )));
        }
        if Arc::strong_count(&m.pin) > 1 {
            return Err(Error::Argument(format!(
                "cannot remove module `{}`: a call is running in it",
                m.name
            )));
        }
        let Some(m) = self.finalized.remove(&id) else {
            return Ok(());
        };
        self.debug.module_removed(id);
        for name in &m.exports {
            if self.symbols.get(name).is_some_and(|e| e.module == id) {
                self.symbols.remove(name);
            }
        }
        for d in &m.deps {
            if let Some(set) = self.referrers.get_mut(d) {
                set.remove(&id);
                if set.is_empty() {
                    self.referrers.remove(d);
                }
            }
        }
        self.referrers.remove(&id);
        let mut first_err = None;
        for s in m.sections {
            let t = TargetSection {
                kind: s.kind(),
                address: s.target_address(),
                len: s.len() as u64,
            };
            if let Err(e) = self.executor.release_section(t) {
                first_err.get_or_insert(e);
            }
            if let Err(e) = self.mm.free(s) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The ids of every module in `state` (for tools; O(modules in it)).
    pub fn modules_in(&self, state: ModuleState) -> Vec<ModuleId> {
        let mut v: Vec<ModuleId> = match state {
            ModuleState::Added => self.added.keys().copied().collect(),
            ModuleState::Loaded => self.loaded.keys().copied().collect(),
            ModuleState::Finalized => self.finalized.keys().copied().collect(),
        };
        v.sort();
        v
    }
}
