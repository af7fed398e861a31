//! The module registry: every module of an engine, in one of its states,
//! and the parts that move modules between them (DESIGN.md, "module
//! registry"):
//!
//! | state | holds | next |
//! |---|---|---|
//! | Added | the verified IR ([`Source`]) | claimed for compiling |
//! | Compiling | the IR, claimed by one thread, which compiles it *outside* the engine's lock | loaded, or back to Added on an error |
//! | Loaded | sections placed in a pending batch, relocations pending | finalized with its batch |
//! | Finalized | protected sections, callable | removed (memory reused) |
//!
//! The parts, one file each:
//! - [`symbols`]: the symbol table, dense [`SymbolId`]s behind an Fx-hashed
//!   name index;
//! - [`claim`](self#compiling-outside-the-lock): the linking walk (the one
//!   rule of [`crate::link::check_import`]), claims, compile jobs, install;
//! - [`loader`]: images, placement, veneers, relocation;
//! - `finalize`: pending batches, ready sets, finalize, unload;
//! - [`crate::lazy`]: lazy modules (function-modules behind stubs and
//!   indirection cells), redefinition, retirement of old code.
//!
//! Modules live in a slab of entries; a [`ModuleId`] is the slot, a
//! generation (slots are reused, ids never) and the engine's tag (an id
//! from another engine is an error, not another module).
//!
//! # Compiling outside the lock
//!
//! The engine wraps the registry in a mutex; compiling never holds it. To
//! make modules callable, the engine's driver (see [`crate::engine`])
//! repeats: [`Registry::claim`] walks what the roots reach, link-checks
//! it and marks the Added modules Compiling under a claim token; the lock
//! is released while [`compile_job`] runs; [`Registry::install`] places
//! the results in one new batch (Loaded); [`Registry::finalize_ready`]
//! finalizes every pending batch whose dependencies are all loaded or
//! finalized. A thread that needs a module another thread is compiling
//! waits on the engine's condition variable; it holds no claim while it
//! waits, so threads never wait on each other in a cycle.
//!
//! Invariants:
//! - A name is exported by at most one module (checked at add).
//! - A Compiling, Loaded or Finalized module has a dependency (`deps`) on
//!   each module its code references; each such edge between different
//!   owners (modules, lazy modules) counts in the target's `referrers`. A
//!   module with referrers is never removed. Added modules hold no edges.
//! - Entries are small (56 bytes; a one-section module's finalized section
//!   packed inline): what only owners need (name, symbols,
//!   pin) is boxed in their `Role`; a lazy module's members borrow their
//!   owner's.
//! - Work is proportional to what changes: a claim visits only modules
//!   reachable from its roots that are not finalized; finalizing visits
//!   only pending batches. Nothing scans all modules.
//! - A failed install or finalize leaves no module half-done: its modules
//!   go back to Added and their batch's memory is returned.

pub mod calls;
mod claim;
mod deps;
mod finalize;
pub mod loader;
pub(crate) mod runs;
pub mod symbols;

pub(crate) use claim::Resolved;
pub use claim::{compile_job, Claim, Compiled, Job};
pub(crate) use deps::Deps;
use runs::Runs;
use symbols::NewSymbol;
pub use symbols::{ExportKind, FxHashMap, SymbolId};

use crate::debug::{DebugRegistry, ModuleDebug};
use crate::error::{Diagnostic, Error, Result};
use crate::executor::{Executor, TargetSection};
use crate::ir::{Linkage, Module, Signature, SymId, SymbolKind};
use crate::lazy::{Group, GroupIr, LazyState};
use crate::memory::{
    FinalizedSection, LoadBatch, MemoryConfig, MemoryManager, PackedSection, SectionKind,
};
use crate::symbols::HostSymbols;
use loader::{Placed, Veneers};
use smallvec::SmallVec;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use symbols::SymbolTable;

/// A module's handle in its registry: never reused, and valid only in the
/// engine that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId {
    engine: u32,
    slot: u32,
    generation: u32,
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module#{}.{}", self.slot, self.generation)
    }
}

/// The state of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    Added,
    /// Being compiled by a thread (outside the engine's lock).
    Compiling,
    Loaded,
    Finalized,
}

/// Counters that tests and benchmarks read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Modules (and function-modules of lazy modules) in each state.
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

/// What an exported symbol is and where it is, as tools see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolInfo {
    pub module: ModuleId,
    pub kind: ExportKind,
    /// Target address, once known.
    pub address: Option<u64>,
}

/// The IR a module is compiled from.
#[derive(Clone)]
pub enum Source {
    /// A module added with [`Registry::add`], compiled whole.
    Whole(Arc<Module>),
    /// One function of a lazy module (its function-module).
    Function { group: Arc<GroupIr>, sym: SymId },
    /// The data items of a lazy module (its data module).
    Data { group: Arc<GroupIr> },
}

impl Source {
    /// The module the IR belongs to.
    pub fn module(&self) -> &Module {
        match self {
            Source::Whole(m) => m,
            Source::Function { group, .. } | Source::Data { group } => &group.module,
        }
    }
}

/// What a module or a lazy module owns.
pub(crate) struct Owner {
    /// The module name, for messages.
    pub name: Arc<str>,
    /// Registry symbols it defines (removed with it), as raw ids
    /// ([`SymbolId::from_raw`]).
    pub symbols: Runs,
    /// Held by running calls; removal is refused while shared.
    pub pin: Arc<()>,
}

impl Owner {
    pub fn new(name: Arc<str>) -> Owner {
        Owner {
            name,
            symbols: Runs::default(),
            pin: Arc::new(()),
        }
    }
}

/// A function-module or data module of a lazy module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    /// The lazy module.
    pub group: u32,
    /// Its function's slot in the indirection table
    /// ([`crate::lazy::NO_KEY`] for the data module).
    pub key: u32,
    /// Its index in the lazy module's member list.
    pub index: u32,
    /// A redefinition not switched to yet.
    pub pending: bool,
}

/// What an entry is.
pub(crate) enum Role {
    /// A module added with [`Registry::add`].
    Module(Box<Owner>),
    /// A lazy module: its function-modules and data modules are members.
    Group(Box<Group>),
    Member(Member),
    /// A chunk of indirection stubs and cells (see [`crate::lazy`]).
    Chunk,
}

/// A loaded module: what relocating and finalizing it needs.
pub(crate) struct Loaded {
    /// The IR, to go back to Added (`None` for internal modules).
    pub source: Option<Source>,
    /// Its pending batch.
    pub batch: u32,
    pub sections: SmallVec<[Placed; 3]>,
    pub defined: loader::Defined,
    pub exports: loader::Exports,
    pub relocs: loader::Relocs,
    pub names: loader::NameList,
    pub veneers: Veneers,
    /// Line tables, handed to the [`DebugRegistry`] at finalize.
    pub debug: ModuleDebug,
    /// For a function-module: the definition index of its function.
    pub body: Option<u32>,
}

/// A finalized module: 16 bytes, because a REPL session keeps tens of
/// thousands. A module of one section that runs where it was placed (a
/// one-function module in this process) keeps it packed inline; others
/// keep their sections in a box.
pub(crate) enum Finalized {
    One {
        /// The section ([`PackedSection::from_parts`]).
        word: NonZeroU64,
        len: u32,
        /// For a function-module: its function's offset in the section
        /// ([`NO_BODY_OFFSET`] otherwise).
        body: u32,
    },
    Many(Box<FinalizedMany>),
}

/// The sections of a [`Finalized::Many`] module.
pub(crate) struct FinalizedMany {
    pub sections: Box<[FinalizedSection]>,
    /// For a function-module: its function's address (0 otherwise).
    pub body: u64,
}

/// [`Finalized::One`]'s `body` of a module that is not a function-module.
const NO_BODY_OFFSET: u32 = u32::MAX;

impl Finalized {
    /// A finalized module without code (a lazy module itself).
    pub fn empty() -> State {
        State::Finalized(Finalized::Many(Box::new(FinalizedMany {
            sections: Box::default(),
            body: 0,
        })))
    }

    /// A module finalized with `sections`, its function at `body` (0: not
    /// a function-module).
    pub fn new(mut sections: SmallVec<[FinalizedSection; 3]>, body: u64) -> Finalized {
        let one = if sections.len() == 1 {
            sections.pop()
        } else {
            None
        };
        if let Some(s) = one {
            let start = s.target_address();
            let offset = match body {
                0 => Some(NO_BODY_OFFSET),
                b => b
                    .checked_sub(start)
                    .and_then(|o| u32::try_from(o).ok())
                    .filter(|&o| o != NO_BODY_OFFSET),
            };
            let packed = match offset {
                Some(body) => s.pack().map(|p| (p, body)),
                None => Err(s),
            };
            match packed {
                Ok((p, body)) => {
                    let (word, len) = p.parts();
                    return Finalized::One { word, len, body };
                }
                Err(s) => sections.push(s),
            }
        }
        Finalized::Many(Box::new(FinalizedMany {
            // Exactly as long as needed (collected from the inline array).
            sections: sections.into_vec().into_boxed_slice(),
            body,
        }))
    }

    /// The function's address for a function-module, else 0.
    pub fn body(&self) -> u64 {
        match self {
            Finalized::One { body, .. } if *body == NO_BODY_OFFSET => 0,
            Finalized::One { word, len, body } => PackedSection::from_parts(*word, *len)
                .address()
                .wrapping_add(u64::from(*body)),
            Finalized::Many(m) => m.body,
        }
    }

    /// Kind, target address and length of each section.
    pub fn sections(&self) -> SmallVec<[(SectionKind, u64, usize); 3]> {
        match self {
            Finalized::One { word, len, .. } => {
                let p = PackedSection::from_parts(*word, *len);
                smallvec::smallvec![(p.kind(), p.address(), p.len())]
            }
            Finalized::Many(m) => m
                .sections
                .iter()
                .map(|s| (s.kind(), s.target_address(), s.len()))
                .collect(),
        }
    }

    /// The target address of the text section, if any.
    pub fn text_address(&self) -> Option<u64> {
        self.sections()
            .into_iter()
            .find(|s| s.0 == SectionKind::Text)
            .map(|s| s.1)
    }

    /// The sections as handles of `mm` (which made them), to give back.
    pub fn into_sections(self, mm: &MemoryManager) -> Box<[FinalizedSection]> {
        match self {
            Finalized::One { word, len, .. } => mm
                .unpack(PackedSection::from_parts(word, len))
                .into_iter()
                .collect(),
            Finalized::Many(m) => m.sections,
        }
    }
}

pub(crate) enum State {
    Free,
    Added(Source),
    Compiling { source: Source, claim: u32 },
    Loaded(Box<Loaded>),
    Finalized(Finalized),
}

/// One slot of the registry.
pub(crate) struct Entry {
    pub state: State,
    pub role: Role,
    /// Slots this module's code references (set when claimed).
    pub deps: Deps,
    /// How many modules of other owners reference this one.
    pub referrers: u32,
    pub generation: u32,
}

impl Entry {
    pub fn module_state(&self) -> Option<ModuleState> {
        match self.state {
            State::Free => None,
            State::Added(_) => Some(ModuleState::Added),
            State::Compiling { .. } => Some(ModuleState::Compiling),
            State::Loaded(_) => Some(ModuleState::Loaded),
            State::Finalized(_) => Some(ModuleState::Finalized),
        }
    }

    fn counted(&self) -> bool {
        matches!(self.role, Role::Module(_) | Role::Member(_))
    }
}

/// A batch of loaded modules waiting to be finalized together.
pub(crate) struct Pending {
    pub batch: LoadBatch,
    pub modules: SmallVec<[u32; 2]>,
}

/// Tags engines, so that a [`ModuleId`] of one is refused by another.
static NEXT_ENGINE: AtomicU32 = AtomicU32::new(1);

/// The module registry of one engine. Not thread-safe by itself: the
/// engine wraps it in a lock (and compiles outside it).
pub struct Registry {
    engine: u32,
    pub(crate) entries: Vec<Entry>,
    free_slots: Vec<u32>,
    pub(crate) symbols: SymbolTable,
    pub(crate) pending: Vec<Option<Pending>>,
    pub(crate) host: HostSymbols,
    /// Before `mm` (fields drop in order): the retired code's section
    /// handles go first, so that the memory manager is the last holder of
    /// its mappings when it drops and can pool them
    /// ([`crate::memory`]'s pool takes only unshared reservations).
    pub(crate) lazy: LazyState,
    pub(crate) mm: MemoryManager,
    /// The `--target` name; its backend is looked up when compiling
    /// (`&dyn Backend` is not `Sync`, and the lookup is a `match`).
    target: Arc<str>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) stats: RegistryStats,
    /// Modules per state (counted roles only), for [`RegistryStats`].
    counts: [usize; 4],
    next_claim: u32,
    /// The code map of finalized modules (trap backtraces) and the
    /// profiler / debugger registrations.
    pub(crate) debug: DebugRegistry,
    /// Callable functions by name for `Engine::call`, read without the
    /// registry lock (see [`calls`]).
    calls: Arc<calls::CallCache>,
}

pub(crate) fn link_err(module: &Module, sym: SymId, message: String) -> Error {
    Error::Link(Diagnostic::new(
        module.name.clone(),
        module.symbol_loc(sym),
        message,
    ))
}

/// The module's exported definitions: symbol, name and signature (`None`
/// for data).
pub(crate) fn exports_of(
    module: &Module,
) -> impl Iterator<Item = (SymId, &str, Option<&Signature>)> {
    module.symbol_ids().filter_map(|(id, s)| {
        if s.linkage != Linkage::Export {
            return None;
        }
        match &s.kind {
            SymbolKind::Func { sig, body: Some(_) } => Some((id, s.name.as_str(), Some(sig))),
            SymbolKind::Data { body: Some(_) } => Some((id, s.name.as_str(), None)),
            _ => None,
        }
    })
}

fn state_index(s: ModuleState) -> usize {
    match s {
        ModuleState::Added => 0,
        ModuleState::Compiling => 1,
        ModuleState::Loaded => 2,
        ModuleState::Finalized => 3,
    }
}

/// What a lookup of a function found.
pub enum Lookup {
    /// Callable: address, signature, and the pin that keeps its module from
    /// being removed while held.
    Ready(u64, Signature, Arc<()>),
    /// Its module (this slot) must be finalized first.
    Pending(u32),
}

/// Modules (and pending batches) a new registry has room for.
const FIRST_ENTRIES: usize = 4;

impl Registry {
    /// A registry compiling for `target` (if kiln was built without its
    /// backend, compiling is an error) and running through `executor`.
    /// Its memory is set up now ([`MemoryManager::prepare`], best effort),
    /// so that loading the first module maps nothing, and its tables have
    /// room for a first few modules.
    pub fn new(target: &str, executor: Arc<dyn Executor>, memory: MemoryConfig) -> Result<Self> {
        let mut mm = MemoryManager::new(memory)?;
        // A failure here is retried (and reported) by the first load.
        let _ = mm.prepare();
        Ok(Registry {
            engine: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed),
            // Room for a first few modules and batches, as the memory:
            // a fresh engine's first module grows no table.
            entries: Vec::with_capacity(FIRST_ENTRIES),
            free_slots: Vec::new(),
            symbols: SymbolTable::with_room(),
            pending: Vec::with_capacity(FIRST_ENTRIES),
            host: HostSymbols::new(),
            mm,
            target: target.into(),
            executor,
            stats: RegistryStats::default(),
            counts: [0; 4],
            next_claim: 1,
            debug: DebugRegistry::new(),
            lazy: LazyState::default(),
            calls: Arc::default(),
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

    /// Uses `options` for modules finalized from now on. A perf map needs
    /// code in anonymous memory (perf names only that from the map), so it
    /// switches reservations taken from now on to
    /// [`crate::memory::CodeMapping::Protect`].
    pub fn set_debug_options(&mut self, options: crate::debug::DebugOptions) -> Result<()> {
        if options.perf_map && self.debug.is_native() {
            self.mm.set_mapping(crate::memory::CodeMapping::Protect);
        }
        self.debug.set_options(options)
    }

    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    pub fn memory(&self) -> &MemoryManager {
        &self.mm
    }

    /// The `--target` this registry compiles for.
    pub fn target(&self) -> &Arc<str> {
        &self.target
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            added: self.counts[0] + self.counts[1],
            loaded: self.counts[2],
            finalized: self.counts[3],
            ..self.stats
        }
    }

    pub fn host_symbols_mut(&mut self) -> &mut HostSymbols {
        &mut self.host
    }

    // ---- slots and ids ----------------------------------------------------

    /// The slot of `id`, if it names a live module of this registry; an id
    /// of another engine is an error.
    pub(crate) fn slot_of(&self, id: ModuleId) -> Result<Option<u32>> {
        if id.engine != self.engine {
            return Err(Error::Argument(format!("{id} belongs to another engine")));
        }
        Ok(self
            .entries
            .get(id.slot as usize)
            .filter(|e| e.generation == id.generation && !matches!(e.state, State::Free))
            .map(|_| id.slot))
    }

    /// The slot of `id`, which must name a live module.
    pub(crate) fn live_slot(&self, id: ModuleId) -> Result<u32> {
        self.slot_of(id)?
            .ok_or_else(|| Error::Argument(format!("no {id} in this engine")))
    }

    /// The id of `slot`.
    pub(crate) fn id_of(&self, slot: u32) -> ModuleId {
        ModuleId {
            engine: self.engine,
            slot,
            generation: self.entries.get(slot as usize).map_or(0, |e| e.generation),
        }
    }

    pub(crate) fn entry(&self, slot: u32) -> &Entry {
        &self.entries[slot as usize]
    }

    pub(crate) fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        &mut self.entries[slot as usize]
    }

    /// A new entry in `state`.
    pub(crate) fn new_entry(&mut self, role: Role, state: State) -> u32 {
        let entry = Entry {
            state,
            role,
            deps: Deps::default(),
            referrers: 0,
            generation: 0,
        };
        let counted = entry.counted();
        let st = entry.module_state();
        let slot = match self.free_slots.pop() {
            Some(s) => {
                let generation = self.entries[s as usize].generation.wrapping_add(1);
                self.entries[s as usize] = Entry {
                    generation,
                    ..entry
                };
                s
            }
            None => {
                self.entries.push(entry);
                self.entries.len() as u32 - 1
            }
        };
        if let (true, Some(st)) = (counted, st) {
            self.counts[state_index(st)] += 1;
        }
        slot
    }

    /// Replaces `slot`'s state, keeping the per-state counts; returns the
    /// old state.
    pub(crate) fn set_state(&mut self, slot: u32, state: State) -> State {
        let e = &mut self.entries[slot as usize];
        let counted = e.counted();
        let before = e.module_state();
        let old = std::mem::replace(&mut e.state, state);
        let after = e.module_state();
        if counted {
            if let Some(b) = before {
                self.counts[state_index(b)] -= 1;
            }
            if let Some(a) = after {
                self.counts[state_index(a)] += 1;
            }
        }
        old
    }

    /// Frees `slot` (its state must already be dealt with).
    pub(crate) fn free_entry(&mut self, slot: u32) {
        self.set_state(slot, State::Free);
        let e = &mut self.entries[slot as usize];
        e.role = Role::Chunk;
        e.deps = Deps::default();
        e.referrers = 0;
        self.free_slots.push(slot);
    }

    pub fn state(&self, id: ModuleId) -> Result<Option<ModuleState>> {
        Ok(self.slot_of(id)?.and_then(|s| self.group_aware_state(s)))
    }

    /// A lazy module's state is its least advanced member's (a lazy module
    /// with nothing compiled is Added; one with no members, Finalized).
    fn group_aware_state(&self, slot: u32) -> Option<ModuleState> {
        let e = self.entry(slot);
        match &e.role {
            Role::Group(g) => {
                let mut state = ModuleState::Finalized;
                for &m in g.members() {
                    if let Some(s) = self.entry(m).module_state() {
                        if state_index(s) < state_index(state) {
                            state = s;
                        }
                    }
                }
                Some(state)
            }
            _ => e.module_state(),
        }
    }

    /// The symbol table entry of exported `name`.
    pub fn symbol(&self, name: &str) -> Option<SymbolInfo> {
        let s = self.symbols.by_name(name)?;
        Some(SymbolInfo {
            module: self.id_of(self.owner_of(s.module)),
            kind: self.symbols.kind(s),
            address: s.address(),
        })
    }

    /// The user-visible module of `slot`: a member's lazy module, else
    /// itself.
    pub(crate) fn owner_of(&self, slot: u32) -> u32 {
        match self.entry(slot).role {
            Role::Member(m) => m.group,
            _ => slot,
        }
    }

    /// What owns `slot` (its lazy module's for a member; `None` for
    /// internal entries).
    pub(crate) fn owner(&self, slot: u32) -> Option<&Owner> {
        match &self.entry(self.owner_of(slot)).role {
            Role::Module(o) => Some(o),
            Role::Group(g) => Some(&g.owner),
            _ => None,
        }
    }

    pub(crate) fn owner_mut(&mut self, slot: u32) -> Option<&mut Owner> {
        let owner = self.owner_of(slot);
        match &mut self.entry_mut(owner).role {
            Role::Module(o) => Some(o),
            Role::Group(g) => Some(&mut g.owner),
            _ => None,
        }
    }

    /// Whether `slot` is a lazy module.
    pub(crate) fn is_group(&self, slot: u32) -> bool {
        matches!(self.entry(slot).role, Role::Group(_))
    }

    /// The module name of `slot`, for messages.
    pub(crate) fn name_of(&self, slot: u32) -> &str {
        self.owner(slot).map_or("<lazy stubs>", |o| &o.name)
    }

    // ---- adding -------------------------------------------------------------

    /// Checks that no name `module` exports is exported already.
    pub(crate) fn check_new_exports(&self, module: &Module) -> Result<()> {
        for (sym, name, _) in exports_of(module) {
            if let Some(e) = self.symbols.by_name(name) {
                let other = self.name_of(e.module);
                return Err(link_err(
                    module,
                    sym,
                    format!("@{name} is already exported by module {other}"),
                ));
            }
        }
        Ok(())
    }

    /// Adds a verified module in the Added state. A name it exports that
    /// another module already exports is a link error at its definition.
    pub fn add(&mut self, module: Module) -> Result<ModuleId> {
        self.add_shared(Arc::new(module))
    }

    /// [`Registry::add`] for a module already shared.
    pub fn add_shared(&mut self, module: Arc<Module>) -> Result<ModuleId> {
        self.check_new_exports(&module)?;
        let name: Arc<str> = module.name.as_str().into();
        let slot = self.new_entry(
            Role::Module(Box::new(Owner::new(name))),
            State::Added(Source::Whole(module.clone())),
        );
        let (count, bytes) =
            exports_of(&module).fold((0, 0), |(n, b), (_, name, _)| (n + 1, b + name.len()));
        self.symbols.reserve(count, bytes);
        let mut ids = Runs::default();
        for (_, name, sig) in exports_of(&module) {
            ids.push(
                self.symbols
                    .insert(NewSymbol {
                        name,
                        named: true,
                        module: slot,
                        sig,
                        address: None,
                    })
                    .raw(),
            );
        }
        if let Some(o) = self.owner_mut(slot) {
            o.symbols = ids;
        }
        Ok(self.id_of(slot))
    }

    // ---- lookups ------------------------------------------------------------

    /// The cache of callable functions by name (see [`calls`]).
    pub fn calls(&self) -> &Arc<calls::CallCache> {
        &self.calls
    }

    /// Exported function `name`: callable now, or the slot to finalize
    /// first.
    pub fn lookup_function(&self, name: &str) -> Result<Lookup> {
        let Some(s) = self.symbols.by_name(name) else {
            return Err(Error::Argument(format!("no exported function @{name}")));
        };
        let Some(sig) = self.symbols.signature(s) else {
            return Err(Error::Argument(format!("@{name} is data, not a function")));
        };
        // A lazy function is callable at once: its address is its stub.
        let ready =
            self.is_group(s.module) || matches!(self.entry(s.module).state, State::Finalized(_));
        match (ready, s.address(), self.owner(s.module)) {
            (true, Some(addr), Some(o)) => Ok(Lookup::Ready(addr, sig.clone(), o.pin.clone())),
            _ => Ok(Lookup::Pending(s.module)),
        }
    }

    /// The target address of exported `name` (function or data), or the
    /// slot to finalize first.
    pub fn lookup_symbol(&self, name: &str) -> Result<std::result::Result<u64, u32>> {
        let Some(s) = self.symbols.by_name(name) else {
            return Err(Error::Argument(format!("no exported symbol @{name}")));
        };
        match (&self.entry(s.module).state, s.address()) {
            (State::Finalized(_), Some(a)) => Ok(Ok(a)),
            _ => Ok(Err(s.module)),
        }
    }

    /// The address, signature and pin of exported function `name`,
    /// finalizing its module (and what it reaches) first if needed
    /// (single-threaded use; the engine compiles outside its lock).
    pub fn function(&mut self, name: &str) -> Result<(u64, Signature, Arc<()>)> {
        loop {
            match self.lookup_function(name)? {
                Lookup::Ready(a, s, p) => return Ok((a, s, p)),
                Lookup::Pending(slot) => self.finalize_slots(&[slot])?,
            }
        }
    }

    /// The target address of exported `name` (function or data),
    /// finalizing on demand (single-threaded use).
    pub fn symbol_address(&mut self, name: &str) -> Result<u64> {
        match self.lookup_symbol(name)? {
            Ok(a) => Ok(a),
            Err(slot) => {
                self.finalize_slots(&[slot])?;
                match self.lookup_symbol(name)? {
                    Ok(a) => Ok(a),
                    Err(_) => Err(Error::Runtime(format!("@{name} was not finalized"))),
                }
            }
        }
    }

    /// Whether every slot of `roots` is finalized (a lazy module counts as
    /// finalized: its stubs are).
    pub fn all_finalized(&self, roots: &[u32]) -> bool {
        roots
            .iter()
            .all(|&r| matches!(self.entry(r).state, State::Finalized(_) | State::Free))
    }

    /// Whether every slot of `roots` is loaded or finalized.
    pub fn all_loaded(&self, roots: &[u32]) -> bool {
        roots.iter().all(|&r| {
            matches!(
                self.entry(r).state,
                State::Loaded(_) | State::Finalized(_) | State::Free
            )
        })
    }

    /// The slots `finalize_module(id)` must finalize: the module itself, or
    /// every member of a lazy module.
    pub fn roots_of(&self, id: ModuleId) -> Result<SmallVec<[u32; 2]>> {
        let slot = self.live_slot(id)?;
        Ok(match &self.entry(slot).role {
            Role::Group(_) => self.current_members(slot).into(),
            _ => smallvec::smallvec![slot],
        })
    }

    /// Loads what `roots` reach and finalizes it, compiling in this thread
    /// (single-threaded use: the engine's driver does the same steps with
    /// compiling outside its lock).
    pub fn finalize_from(&mut self, roots: &[ModuleId]) -> Result<()> {
        let mut slots = Vec::new();
        for &r in roots {
            slots.extend(self.roots_of(r)?);
        }
        self.finalize_slots(&slots)
    }

    fn finalize_slots(&mut self, roots: &[u32]) -> Result<()> {
        self.load_slots(roots, true)
    }

    /// Compiles and loads what `roots` reach, in this thread; `finalize`
    /// also finalizes what is ready (single-threaded use).
    fn load_slots(&mut self, roots: &[u32], finalize: bool) -> Result<()> {
        let Claim {
            token, jobs, slots, ..
        } = self.claim(roots)?;
        let target = self.target.clone();
        let mut done = SmallVec::with_capacity(jobs.len());
        for job in jobs {
            match compile_job(&target, &job) {
                Ok(cm) => done.push((job.slot, cm)),
                Err(e) => {
                    self.abandon(token, &slots);
                    return Err(e);
                }
            }
        }
        if !done.is_empty() {
            self.install(token, done)?;
        }
        if finalize {
            while self.finalize_ready()? {}
        }
        Ok(())
    }

    /// Compiles and loads `roots` (and what they reach) without finalizing
    /// (single-threaded use).
    pub fn load(&mut self, roots: &[ModuleId]) -> Result<()> {
        let mut slots = Vec::new();
        for &r in roots {
            slots.extend(self.roots_of(r)?);
        }
        self.load_slots(&slots, false)
    }

    /// The target address of section `kind` of a Loaded or Finalized module.
    pub fn section_address(&self, id: ModuleId, kind: SectionKind) -> Option<u64> {
        let slot = self.slot_of(id).ok()??;
        match &self.entry(slot).state {
            State::Loaded(m) => {
                let s = m.sections.iter().find(|s| s.kind == kind)?;
                self.pending
                    .get(m.batch as usize)?
                    .as_ref()?
                    .batch
                    .target_address(s.r)
            }
            State::Finalized(m) => m.sections().into_iter().find(|s| s.0 == kind).map(|s| s.1),
            _ => None,
        }
    }

    // ---- removal ------------------------------------------------------------

    /// Removes a module. Added: forgotten. Loaded or Compiling: refused
    /// (finalize first). Finalized: refused while another module
    /// references it or a call runs in it; otherwise its memory is
    /// returned for reuse. A lazy module goes with all its members.
    pub fn remove(&mut self, id: ModuleId) -> Result<()> {
        let slot = self.live_slot(id)?;
        match self.entry(slot).role {
            Role::Group(_) => return self.remove_group(slot),
            Role::Member(m) => {
                return Err(Error::Argument(format!(
                    "{id} is part of lazy module `{}`; remove that module",
                    self.name_of(m.group)
                )))
            }
            Role::Chunk => return Err(Error::Argument(format!("{id} is internal to the engine"))),
            Role::Module(_) => {}
        }
        self.check_removable(slot, 0)?;
        self.drop_module(slot)
    }

    /// Refuses to remove `slot` while more than `allowed` modules of other
    /// owners reference it, it is being compiled or loaded, or a call runs
    /// in it.
    pub(crate) fn check_removable(&self, slot: u32, allowed: u32) -> Result<()> {
        // Cached lookups hold pins: forget them before counting pins.
        self.calls.clear();
        let e = self.entry(slot);
        let name = self.name_of(slot);
        match e.state {
            State::Loaded(_) => {
                return Err(Error::Argument(format!(
                    "module `{name}` is loaded but not finalized; finalize it before removing it"
                )))
            }
            State::Compiling { .. } => {
                return Err(Error::Argument(format!(
                    "module `{name}` is being compiled; finalize it before removing it"
                )))
            }
            _ => {}
        }
        if e.referrers > allowed {
            let by = self.find_referrer(slot).map_or("?", |r| self.name_of(r));
            return Err(Error::Argument(format!(
                "cannot remove module `{name}`: module `{by}` references it"
            )));
        }
        let pinned = match &e.role {
            Role::Module(o) => Arc::strong_count(&o.pin) > 1,
            Role::Group(g) => Arc::strong_count(&g.owner.pin) > 1,
            _ => false,
        };
        if pinned {
            return Err(Error::Argument(format!(
                "cannot remove module `{name}`: a call is running in it"
            )));
        }
        Ok(())
    }

    /// The lowest slot of another owner whose code references `slot`
    /// (for messages only: scans every module).
    fn find_referrer(&self, slot: u32) -> Option<u32> {
        let owner = self.owner_of(slot);
        (0..self.entries.len() as u32).find(|&r| {
            !matches!(self.entry(r).state, State::Free)
                && self.owner_of(r) != owner
                && self.entry(r).deps.contains(&slot)
        })
    }

    /// Removes `slot` (Added or Finalized; checked removable): its
    /// symbols (if it owns any), edges and memory.
    pub(crate) fn drop_module(&mut self, slot: u32) -> Result<()> {
        let symbols = match &mut self.entry_mut(slot).role {
            Role::Module(o) => std::mem::take(&mut o.symbols),
            Role::Group(g) => std::mem::take(&mut g.owner.symbols),
            _ => Runs::default(),
        };
        if !symbols.is_empty() {
            self.calls.clear();
        }
        for id in symbols.iter() {
            self.symbols.remove(SymbolId::from_raw(id));
        }
        self.clear_edges(slot);
        let old = self.set_state(slot, State::Free);
        self.free_entry(slot);
        match old {
            State::Finalized(m) => {
                if let Some(start) = m.text_address() {
                    self.debug.module_removed(start);
                }
                let sections = m.into_sections(&self.mm);
                self.release_sections(sections)
            }
            _ => Ok(()),
        }
    }

    /// Gives finalized sections back to the executor and the memory
    /// manager.
    pub(crate) fn release_sections(&mut self, sections: Box<[FinalizedSection]>) -> Result<()> {
        let mut first_err = None;
        for s in sections {
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

    /// Records that `slot`'s code references `deps`.
    pub(crate) fn set_edges(&mut self, slot: u32, deps: Deps) {
        let owner = self.owner_of(slot);
        for &d in deps.iter() {
            if self.owner_of(d) != owner {
                self.entry_mut(d).referrers += 1;
            }
        }
        self.entry_mut(slot).deps = deps;
    }

    /// Removes every edge from `slot` to what it references.
    pub(crate) fn clear_edges(&mut self, slot: u32) {
        let deps = std::mem::take(&mut self.entry_mut(slot).deps);
        let owner = self.owner_of(slot);
        for d in deps.iter().copied() {
            if self.owner_of(d) != owner {
                let r = &mut self.entry_mut(d).referrers;
                *r = r.saturating_sub(1);
            }
        }
    }

    /// The ids of every module in `state` (for tools; O(modules)).
    pub fn modules_in(&self, state: ModuleState) -> Vec<ModuleId> {
        (0..self.entries.len() as u32)
            .filter(|&s| {
                matches!(self.entry(s).role, Role::Module(_) | Role::Group(_))
                    && !matches!(self.entry(s).state, State::Free)
                    && self.group_aware_state(s) == Some(state)
            })
            .map(|s| self.id_of(s))
            .collect()
    }

    /// A fresh claim token.
    /// (Tokens wrap after 2^32 claims; only claims alive at once must
    /// differ.)
    pub(crate) fn new_claim(&mut self) -> u32 {
        let t = self.next_claim;
        self.next_claim = self.next_claim.wrapping_add(1);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A REPL session keeps an entry per item: 56 bytes, of which the
    /// finalized state (a one-section module's section packed inline) 16.
    #[test]
    fn entries_are_small() {
        assert!(std::mem::size_of::<Finalized>() <= 16);
        assert!(std::mem::size_of::<State>() <= 24);
        assert!(std::mem::size_of::<Entry>() <= 56);
    }

    /// A registry dropped while a redefinition's old body is still retired
    /// (a call could still be in it) leaves its memory to the pool like any
    /// other: the retired sections go before the memory manager. Fails
    /// when `lazy` is declared after `mm` (the manager then still shares
    /// its mapping with them and unmaps it).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn retired_code_does_not_keep_the_reservation_from_the_pool() {
        use crate::executor::InProcessExecutor;
        use crate::lazy::Split;
        use crate::memory::{pooled_reservations, CodeMapping};
        // A size of its own: no other test takes or gives one.
        let page = crate::memory::MemoryManager::new(MemoryConfig::default())
            .unwrap()
            .page_size();
        let config = MemoryConfig {
            reservation_size: 4139 * page,
            max_reservations: 4,
            mapping: CodeMapping::DualView,
        };
        let size = config.reservation_size;
        let ex = Arc::new(InProcessExecutor::new(None).unwrap());
        let mut reg = Registry::new("x86_64", ex, config).unwrap();
        if reg.memory().stats().dual_view_reservations == 0 {
            return; // no memfd here: nothing is ever pooled
        }
        let body = |k: i64| {
            let text = format!("func @h() -> i64 {{\nentry:\n    ret {k}\n}}\n");
            Split::new(crate::ir::parse::parse_module("m.kir", &text).unwrap())
        };
        let id = reg.add_lazy(body(1)).unwrap();
        reg.finalize_from(&[id]).unwrap();
        let group = reg.live_slot(id).unwrap();
        // A call is in flight: the old body cannot be released yet.
        let call = reg.epochs().enter();
        let ext = reg.extend(group, body(2), true).unwrap();
        reg.switch(&ext).unwrap();
        reg.reclaim().unwrap();
        assert_eq!(reg.retired_count().0, 1, "the old body waits");
        assert_eq!(pooled_reservations(size), 0);
        drop(reg);
        assert_eq!(
            pooled_reservations(size),
            1,
            "pooled despite the retired code"
        );
        drop(call);
    }
}
