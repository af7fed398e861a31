//! Lazy modules, hot redefinition, and the indirection table they share.
//!
//! **Lazy modules.** [`crate::Engine::add_module_lazy`] splits a module
//! into *function-modules*, one per defined function, plus one *data
//! module* holding all its data items; nothing is compiled. Each function
//! gets a slot of the engine's **indirection table**: a stub (code, the
//! function's address for every caller, in-engine or host) and a *cell*
//! (8 bytes in a writable, never executable data section) that the stub
//! jumps through. A cell first holds its slot's *lazy entry*, which passes
//! the slot's key to a shared wrapper; the wrapper saves the argument
//! registers and calls the resolver (`resolver(ctx, key)`: in process
//! [`native_resolve`]; under an emulator the executor's resolver stub, see
//! [`crate::executor::Executor::call_resolving`]). The resolver compiles
//! the function-module (outside the engine's lock, as every compile),
//! finalizes it, stores the body's address in the cell with one atomic
//! store, and returns it; the wrapper restores the arguments and jumps to
//! the body. Later calls cost one indirect jump (stub → cell → body). Code
//! is never patched in place (DESIGN.md, "Budgets").
//!
//! Several threads calling a stub for the first time at once all reach
//! the resolver; the registry's claims make one of them compile and the
//! others wait for it. A compile error (a link error, say) is returned by
//! the `Engine::call` that entered: the resolver stores it and unwinds
//! through the trap path to that call's trampoline ([`take_error`]); with
//! no engine call on the stack (a raw pointer from `get_function`), it is
//! printed and the process aborts.
//!
//! References between the functions of one lazy module go through their
//! stubs too (so redefinition reaches them); a function-module references
//! the module's data through its data module's symbols. A lazy module's
//! `local` definitions get private symbols (ids without a name), its
//! exports named ones. The lazy module itself is a registry entry (what
//! its [`crate::registry::ModuleId`] names): finalized from the
//! start (its stubs are), owner of its members, stubs and symbols.
//!
//! **Redefinition.** [`crate::Engine::redefine`] replaces the bodies of
//! lazy functions: the new module's functions with the name and signature
//! of existing lazy functions take over their slots (new names get new
//! slots). Callers compiled earlier call the stub, so they reach the new
//! body as soon as the cell is patched (to the new body, or back to the
//! lazy entry). A call running in the old body finishes there: the old
//! function-module is *retired* with the current epoch (see [`Epochs`])
//! and its memory is released once no engine call that began before the
//! switch is still running.
//!
//! **Contract for raw pointers** ([`crate::Engine::get_function`]): the
//! pointer of a lazy function is its stub, valid until its lazy module is
//! removed, whatever is redefined. Code reached through it that may run
//! while the function is redefined must run inside
//! [`crate::Engine::enter`] (an epoch guard), or the old body may be
//! released under it.

use crate::compiled::{CompiledModule, CompiledSymbol};
use crate::error::{Error, Result};
use crate::ir::{Callee, InstKind, Linkage, Module, SymId, SymbolKind};
use crate::memory::FinalizedSection;
use crate::registry::loader::{self, Image, RelocCounts, Relocatable, Target};
use crate::registry::runs::Runs;
use crate::registry::symbols::{NewSymbol, Symbol, SymbolId};
use crate::registry::{Finalized, Member, ModuleId, Owner, Registry, Role, Source, State};
use crate::reloc::{Reloc, RelocKind, SectionKind};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The code of one chunk of the indirection table, as an ISA's `lazy.rs`
/// builds it: the shared wrapper at offset 0, then the slots.
pub struct ChunkCode {
    pub text: Vec<u8>,
    /// Offset of slot 0.
    pub slots_offset: usize,
    /// Text offset of each slot's 8-byte cell address (an `Abs64`).
    pub cell_relocs: Vec<usize>,
    /// Text offset of the wrapper's 8-byte resolver address (an `Abs64`).
    pub resolver_reloc: usize,
}

#[path = "../isa/aarch64/lazy.rs"]
mod aarch64;
#[path = "../isa/x86_64/lazy.rs"]
mod x86_64;

/// The stub layout and chunk builder of one ISA.
struct Isa {
    slot_size: usize,
    lazy_offset: usize,
    chunk: fn(usize, u32, u64) -> Result<ChunkCode>,
}

fn isa(target: &str) -> Option<Isa> {
    match target {
        "x86_64" | "x86_64-checked" => Some(Isa {
            slot_size: x86_64::SLOT_SIZE,
            lazy_offset: x86_64::LAZY_OFFSET,
            chunk: x86_64::chunk,
        }),
        "aarch64" | "aarch64-checked" => Some(Isa {
            slot_size: aarch64::SLOT_SIZE,
            lazy_offset: aarch64::LAZY_OFFSET,
            chunk: aarch64::chunk,
        }),
        _ => None,
    }
}

/// Slots per chunk of the indirection table.
pub const CHUNK_SLOTS: usize = 256;

/// The name under which a chunk imports the resolver.
pub const RESOLVER: &str = "__kiln_lazy";

/// `slot` value of an indirection slot without a body.
const NO_BODY: u32 = u32::MAX;

// ---- the IR of a lazy module ------------------------------------------------

/// A lazy module's IR with what its function-modules need, shared by them
/// (and by compiling threads).
pub struct GroupIr {
    pub module: Module,
    /// The registry symbol of each defined symbol (by [`SymId`]); `None`
    /// for imports.
    pub scope: Vec<Option<SymbolId>>,
    /// The symbols each function's body references (calls, `addr`),
    /// deduplicated in symbol order, by function index.
    refs: Vec<Box<[SymId]>>,
    /// The symbols the data items reference (`@sym` entries).
    data_refs: Box<[SymId]>,
}

impl GroupIr {
    /// The symbols function `sym` references (empty if it is not a
    /// defined function).
    pub fn refs_of(&self, sym: SymId) -> &[SymId] {
        match self.module.sym(sym).kind {
            SymbolKind::Func { body: Some(f), .. } => {
                self.refs.get(f.index()).map_or(&[], |r| &r[..])
            }
            _ => &[],
        }
    }

    pub fn data_refs(&self) -> &[SymId] {
        &self.data_refs
    }
}

/// A verified module prepared for [`Registry::add_lazy`] (the per-function
/// scans happen here, outside the engine's lock).
pub struct Split {
    module: Module,
    refs: Vec<Box<[SymId]>>,
    data_refs: Box<[SymId]>,
}

impl Split {
    /// Scans every function body and data item of `module` (verified) for
    /// the symbols it references.
    pub fn new(module: Module) -> Split {
        let n = module.symbols.len();
        let mut seen = vec![u32::MAX; n];
        let mut refs = Vec::with_capacity(module.funcs.len());
        for (fi, f) in module.funcs.iter().enumerate() {
            let mut r: Vec<SymId> = Vec::new();
            for inst in &f.insts {
                let sym = match &inst.kind {
                    InstKind::Addr { sym } => *sym,
                    InstKind::Call {
                        callee: Callee::Direct(sym),
                        ..
                    } => *sym,
                    _ => continue,
                };
                if let Some(s) = seen.get_mut(sym.index()) {
                    if *s != fi as u32 {
                        *s = fi as u32;
                        r.push(sym);
                    }
                }
            }
            r.sort_unstable_by_key(|s| s.index());
            refs.push(r.into_boxed_slice());
        }
        let mut data_refs: Vec<SymId> = Vec::new();
        for d in &module.datas {
            for v in &d.values {
                if let crate::ir::DataValue::SymAddr { sym, .. } = v {
                    data_refs.push(*sym);
                }
            }
        }
        data_refs.sort_unstable_by_key(|s| s.index());
        data_refs.dedup();
        Split {
            module,
            refs,
            data_refs: data_refs.into_boxed_slice(),
        }
    }
}

// ---- bookkeeping ------------------------------------------------------------

/// A lazy module's registry entry: what it owns, its members and slots.
pub struct Group {
    pub(crate) owner: Owner,
    /// Every member: function-modules (current bodies, and redefinitions
    /// not switched to yet) and data modules; a member's [`Member::index`]
    /// is its place here.
    members: Vec<u32>,
    /// Indirection slots this module created (it owns their stubs and
    /// symbols).
    keys: Runs,
    /// Links checked ([`Registry::check_links`]).
    linked: bool,
}

impl Group {
    pub fn members(&self) -> &[u32] {
        &self.members
    }
}

/// `key` of a data module (no slot).
pub const NO_KEY: u32 = u32::MAX;

/// One slot of the indirection table.
#[derive(Clone, Copy)]
struct Indirect {
    /// The function-module holding the current body ([`NO_BODY`] when the
    /// slot is free).
    body: u32,
    /// The function's symbol; its `module` is the lazy module owning the
    /// slot.
    symbol: SymbolId,
}

/// One chunk of the indirection table.
struct Chunk {
    stubs: u64,
    cells: u64,
}

/// The lazy part of a registry.
pub struct LazyState {
    slots: Vec<Indirect>,
    free: Vec<u32>,
    chunks: Vec<Chunk>,
    /// The resolver's address and context, when lazy compiling works
    /// with this executor.
    resolver: Option<(u64, u64)>,
    /// Retired code: the epoch it was retired in and its sections.
    retired: Vec<(u64, Box<[FinalizedSection]>)>,
    pub epochs: Arc<Epochs>,
}

impl Default for LazyState {
    fn default() -> Self {
        LazyState {
            slots: Vec::new(),
            free: Vec::new(),
            chunks: Vec::new(),
            resolver: None,
            retired: Vec::new(),
            epochs: Arc::new(Epochs::default()),
        }
    }
}

// ---- epochs -----------------------------------------------------------------

/// Epochs over in-flight engine calls, so that retired code is released
/// only once nothing can run in it. Every engine call (and every
/// [`crate::Engine::enter`] guard) holds the epoch current when it began;
/// code retired in epoch `e` (after its cell stopped leading to it) is
/// released when no call of epoch ≤ `e` is running.
#[derive(Default)]
pub struct Epochs {
    state: Mutex<EpochState>,
    /// Whether anything is retired (a cheap check after each call).
    pending: AtomicBool,
}

#[derive(Default)]
struct EpochState {
    current: u64,
    /// Running calls per epoch, oldest first.
    active: VecDeque<(u64, usize)>,
}

/// Held while an engine call runs; see [`Epochs`].
pub struct EpochGuard {
    epochs: Arc<Epochs>,
    epoch: u64,
}

impl Epochs {
    /// Registers a call beginning now.
    pub fn enter(self: &Arc<Self>) -> EpochGuard {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let e = s.current;
        match s.active.back_mut() {
            Some((last, n)) if *last == e => *n += 1,
            _ => s.active.push_back((e, 1)),
        }
        EpochGuard {
            epochs: self.clone(),
            epoch: e,
        }
    }

    /// Ends the current epoch and returns it: code retired now belongs to
    /// it (calls beginning after this cannot reach it).
    fn advance(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let e = s.current;
        s.current += 1;
        e
    }

    /// The epoch of the oldest running call.
    fn oldest_active(&self) -> Option<u64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.active.front().map(|a| a.0)
    }

    /// Whether retired code may be waiting for release.
    pub fn has_retired(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
}

impl Drop for EpochGuard {
    fn drop(&mut self) {
        let mut s = self.epochs.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = s.active.iter().position(|a| a.0 == self.epoch) {
            s.active[i].1 -= 1;
        }
        while s.active.front().is_some_and(|a| a.1 == 0) {
            s.active.pop_front();
        }
    }
}

// ---- lazy errors on the native path -----------------------------------------

thread_local! {
    /// The error of a failed lazy compile, on its way to the engine call
    /// it unwinds to.
    static PENDING: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// The trap code the resolver unwinds with (not a [`crate::TrapCode`]).
pub const LAZY_FAILED: u32 = 0x4c5a_0001;

/// The error a lazy compile left for this thread's engine call, if any.
pub fn take_error() -> Option<Error> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// What [`native_resolve`] needs from the engine.
pub trait Resolver {
    /// Compiles what indirection slot `key` calls and returns the address
    /// to continue at.
    fn resolve(&self, key: u32) -> Result<u64>;
    /// The trap stub address (`__kiln_trap`) to unwind through.
    fn trap_stub(&self) -> Option<u64>;
}

/// The in-process resolver the chunks' wrapper calls: `ctx` is the
/// engine's [`Resolver`]. On an error it does not return: it unwinds to
/// the engine call on this thread's stack (see the module docs), or prints
/// the error and aborts.
///
/// # Safety
/// `ctx` must point at a live `R` (compiled code passes the engine's
/// shared state, which outlives its code).
pub unsafe extern "C" fn native_resolve<R: Resolver>(ctx: *const R, key: u64) -> u64 {
    let trap = {
        // SAFETY: `ctx` was baked into the chunk from the engine's shared
        // state, which outlives every chunk (the chunks are its memory).
        let r = unsafe { &*ctx };
        match r.resolve(key as u32) {
            Ok(address) => return address,
            Err(e) => {
                PENDING.with(|p| *p.borrow_mut() = Some(e));
                r.trap_stub()
            }
        }
    };
    // Nothing with a destructor is live in this frame any more: the
    // unwind below skips it.
    match trap {
        Some(stub) if crate::trampoline::in_call() => {
            // SAFETY: the trap stub is the executor's `__kiln_trap`, which
            // takes the code in the first argument register and, inside a
            // trampoline call, unwinds to it without returning.
            let f: extern "C" fn(u32) = unsafe { std::mem::transmute(stub as usize) };
            f(LAZY_FAILED);
            std::process::abort()
        }
        _ => {
            let e = take_error();
            // SAFETY: fflush(NULL) flushes every C stdio stream; always valid.
            unsafe { libc::fflush(std::ptr::null_mut()) };
            if let Some(e) = e {
                eprintln!("kiln: error: {e}");
            }
            std::process::abort()
        }
    }
}

// ---- the registry's lazy operations -----------------------------------------

/// What [`Registry::extend`] added to a lazy module: its new members, the
/// slots whose bodies switch to them, and the slots and symbols it made
/// (taken back by [`Registry::retract`]).
pub struct Extension {
    /// The lazy module.
    pub group: u32,
    /// Every new function-module and data module.
    pub members: Vec<u32>,
    /// (slot key, new function-module) for every redefined function.
    pub switches: Vec<(u32, u32)>,
    keys: Vec<u32>,
    symbols: Vec<SymbolId>,
    /// The new IR (kept for link checks).
    ir: Arc<GroupIr>,
}

/// Where a link check goes next: an Added module, or a lazy module's IR
/// (`mark`: record the lazy module as checked).
enum Unit {
    Module(u32),
    Group {
        slot: u32,
        ir: Arc<GroupIr>,
        mark: bool,
    },
}

impl Registry {
    /// Makes lazy compiling call `address` with `ctx` (its first argument)
    /// from every chunk made from now on. Without a resolver, lazy modules
    /// are compiled when added.
    pub fn set_lazy_resolver(&mut self, address: u64, ctx: u64) {
        self.lazy.resolver = Some((address, ctx));
    }

    /// Whether functions can be compiled on their first call here.
    pub fn lazy_supported(&self) -> bool {
        self.lazy.resolver.is_some()
    }

    /// The epochs of this registry's engine calls.
    pub fn epochs(&self) -> &Arc<Epochs> {
        &self.lazy.epochs
    }

    fn isa(&self) -> Result<Isa> {
        isa(self.target()).ok_or_else(|| {
            Error::Runtime(format!(
                "lazy compiling is not available for target {}",
                self.target()
            ))
        })
    }

    /// The stub (the function's address) of slot `key`.
    fn stub_address(&self, isa: &Isa, key: u32) -> u64 {
        let c = &self.lazy.chunks[key as usize / CHUNK_SLOTS];
        c.stubs + (key as usize % CHUNK_SLOTS * isa.slot_size) as u64
    }

    /// The indirection slot of lazy function `s`: the one whose stub is
    /// its address (`None` for any other symbol). Scans the chunks: for
    /// redefinition only.
    pub(crate) fn lazy_key(&self, s: &Symbol) -> Option<u32> {
        if !self.is_group(s.module) || self.symbols.signature(s).is_none() {
            return None;
        }
        let (isa, address) = (isa(self.target())?, s.address()?);
        let span = (CHUNK_SLOTS * isa.slot_size) as u64;
        self.lazy.chunks.iter().enumerate().find_map(|(i, c)| {
            let offset = address.checked_sub(c.stubs).filter(|&o| o < span)?;
            u32::try_from(i * CHUNK_SLOTS + (offset / isa.slot_size as u64) as usize).ok()
        })
    }

    fn cell_address(&self, key: u32) -> u64 {
        let c = &self.lazy.chunks[key as usize / CHUNK_SLOTS];
        c.cells + (key as usize % CHUNK_SLOTS * 8) as u64
    }

    /// A free slot of the indirection table (a new chunk when all are
    /// taken).
    fn alloc_key(&mut self, isa: &Isa) -> Result<u32> {
        if let Some(k) = self.lazy.free.pop() {
            return Ok(k);
        }
        let k = self.lazy.slots.len();
        if k == self.lazy.chunks.len() * CHUNK_SLOTS {
            self.new_chunk(isa)?;
        }
        let k = u32::try_from(k).map_err(|_| Error::Runtime("indirection table full".into()))?;
        self.lazy.slots.push(Indirect {
            body: NO_BODY,
            symbol: SymbolId::default(),
        });
        Ok(k)
    }

    /// Builds, places, relocates and finalizes one chunk of stubs and
    /// cells (cells pointing at their lazy entries).
    fn new_chunk(&mut self, isa: &Isa) -> Result<()> {
        let first = u32::try_from(self.lazy.chunks.len() * CHUNK_SLOTS)
            .map_err(|_| Error::Runtime("indirection table full".into()))?;
        let (resolver, ctx) = self.lazy.resolver.unwrap_or((0, 0));
        let code = (isa.chunk)(CHUNK_SLOTS, first, ctx)?;
        let mut cm = CompiledModule::new();
        for (name, section) in [("$stubs", SectionKind::Text), ("$cells", SectionKind::Data)] {
            cm.symbols.push(CompiledSymbol {
                name: name.into(),
                section,
                offset: 0,
                size: 0,
                exported: false,
                is_func: false,
            });
        }
        let reloc = |section, offset: usize, target: &str, addend: usize| Reloc {
            section,
            offset: offset as u32,
            kind: RelocKind::Abs64,
            target: target.to_string(),
            addend: addend as i64,
        };
        for (i, &at) in code.cell_relocs.iter().enumerate() {
            cm.relocs
                .push(reloc(SectionKind::Text, at, "$cells", 8 * i));
            let entry = code.slots_offset + i * isa.slot_size + isa.lazy_offset;
            cm.relocs
                .push(reloc(SectionKind::Data, 8 * i, "$stubs", entry));
        }
        cm.relocs
            .push(reloc(SectionKind::Text, code.resolver_reloc, RESOLVER, 0));
        cm.text = code.text;
        cm.data = vec![0; 8 * CHUNK_SLOTS];
        let slots_offset = code.slots_offset as u64;
        let mut resolve = |name: &str| -> Result<Target> {
            match name {
                RESOLVER => Ok(Target::Absolute(resolver)),
                _ => Err(Error::Runtime(format!("lazy chunk: unknown symbol {name}"))),
            }
        };
        let image = Image::new(cm, |_, _| None, &mut resolve)?;
        let (stubs, cells, sections) = self.load_internal(&image)?;
        self.new_entry(
            Role::Chunk,
            State::Finalized(Finalized::new(sections.into(), 0)),
        );
        self.lazy.chunks.push(Chunk {
            stubs: stubs + slots_offset,
            cells,
        });
        Ok(())
    }

    /// Places, relocates and finalizes an internal image in a batch of its
    /// own; returns the target addresses of its text and data.
    fn load_internal(&mut self, image: &Image) -> Result<(u64, u64, Vec<FinalizedSection>)> {
        let mut batch = self.mm.begin_batch();
        let mut placed = smallvec::SmallVec::new();
        let executor = self.executor.clone();
        let mut run = || -> Result<()> {
            loader::place(&mut self.mm, &*executor, &mut batch, image, &mut placed)?;
            let r = Relocatable {
                name: "<lazy stubs>",
                ir: None,
                sections: &placed,
                defined: &image.defined,
                relocs: &image.relocs,
                names: &image.names,
                veneers: &image.veneers,
            };
            loader::relocate(&r, &mut batch, &self.symbols, &mut RelocCounts::default())
        };
        let mut written = Vec::new();
        let done =
            run().and_then(|()| loader::write_out(&*executor, &batch, &placed, &mut written));
        if let Err(e) = done {
            for s in placed.iter().filter_map(|s| s.remote) {
                let _ = executor.release_section(s);
            }
            let _ = self.mm.discard(batch);
            return Err(e);
        }
        let bases = loader::bases(&batch, &placed);
        let base = |k| bases.iter().find(|b| b.0 == k).map_or(0, |b| b.1);
        let (text, data) = (base(SectionKind::Text), base(SectionKind::Data));
        let mut fin = self.mm.finalize(batch)?;
        executor.finalize_sections(&written)?;
        let sections = placed.iter().filter_map(|p| fin.take(p.r)).collect();
        Ok((text, data, sections))
    }

    /// A new, empty lazy module named `name`.
    pub fn new_group(&mut self, name: &str) -> u32 {
        self.new_entry(
            Role::Group(Box::new(Group {
                owner: Owner::new(name.into()),
                members: Vec::new(),
                keys: Runs::default(),
                linked: false,
            })),
            Finalized::empty(),
        )
    }

    /// Adds a lazy module (see the module docs): nothing is compiled.
    pub fn add_lazy(&mut self, split: Split) -> Result<ModuleId> {
        self.check_new_exports(&split.module)?;
        let group = self.new_group(&split.module.name);
        match self.extend(group, split, false) {
            Ok(_) => Ok(self.id_of(group)),
            Err(e) => {
                let _ = self.drop_group(group);
                Err(e)
            }
        }
    }

    /// Adds the definitions of `split` to lazy module `group`: each
    /// function becomes a function-module behind a slot, the data items
    /// one data module. With `redefine`, a function named like an existing
    /// lazy function of the same signature takes over its slot once
    /// [`Registry::switch`]ed to (another signature, an eagerly added
    /// function or a data item of an existing name is an error); without,
    /// every exported name must be new. Nothing is compiled; on an error
    /// nothing changes.
    pub fn extend(&mut self, group: u32, split: Split, redefine: bool) -> Result<Extension> {
        let isa = self.isa()?;
        let Split {
            module,
            refs,
            data_refs,
        } = split;
        let adopted = if redefine {
            self.adoptions(&module)?
        } else {
            self.check_new_exports(&module)?;
            vec![None; module.symbols.len()]
        };
        let mut ext = Extension {
            group,
            members: Vec::new(),
            switches: Vec::new(),
            keys: Vec::new(),
            symbols: Vec::new(),
            ir: Arc::new(GroupIr {
                module: Module::new(""),
                scope: Vec::new(),
                refs: Vec::new(),
                data_refs: Box::default(),
            }),
        };
        let has_data = module
            .symbols
            .iter()
            .any(|s| matches!(s.kind, SymbolKind::Data { body: Some(_) }));
        let data = has_data.then(|| self.add_member(group, NO_KEY, false));
        ext.members.extend(data);
        let mut scope: Vec<Option<SymbolId>> = vec![None; module.symbols.len()];
        let mut functions: Vec<(SymId, u32, bool)> = Vec::new();
        for (sym, s) in module.symbol_ids() {
            if s.linkage == Linkage::Import {
                continue;
            }
            let named = s.linkage == Linkage::Export;
            match &s.kind {
                SymbolKind::Func { sig, body: Some(_) } => {
                    if let Some((key, id)) = adopted[sym.index()] {
                        scope[sym.index()] = Some(id);
                        functions.push((sym, key, true));
                        continue;
                    }
                    let key = match self.alloc_key(&isa) {
                        Ok(k) => k,
                        Err(e) => {
                            let _ = self.retract(&ext);
                            return Err(e);
                        }
                    };
                    let address = Some(self.stub_address(&isa, key));
                    let id = self.symbols.insert(NewSymbol {
                        name: &s.name,
                        named,
                        module: group,
                        sig: Some(sig),
                        address,
                    });
                    self.lazy.slots[key as usize] = Indirect {
                        body: NO_BODY,
                        symbol: id,
                    };
                    scope[sym.index()] = Some(id);
                    ext.keys.push(key);
                    ext.symbols.push(id);
                    functions.push((sym, key, false));
                }
                SymbolKind::Data { body: Some(_) } => {
                    let Some(data) = data else { continue };
                    let id = self.symbols.insert(NewSymbol {
                        name: &s.name,
                        named,
                        module: data,
                        sig: None,
                        address: None,
                    });
                    scope[sym.index()] = Some(id);
                    ext.symbols.push(id);
                }
                _ => {}
            }
        }
        if let Role::Group(g) = &mut self.entry_mut(group).role {
            g.keys.extend(ext.keys.iter().copied());
            g.owner.symbols.extend(ext.symbols.iter().map(|s| s.raw()));
        }
        let ir = Arc::new(GroupIr {
            module,
            scope,
            refs,
            data_refs,
        });
        for (sym, key, adopt) in functions {
            let m = self.add_member(group, key, adopt);
            self.set_state(
                m,
                State::Added(Source::Function {
                    group: ir.clone(),
                    sym,
                }),
            );
            ext.members.push(m);
            if adopt {
                ext.switches.push((key, m));
            } else {
                self.lazy.slots[key as usize].body = m;
            }
        }
        if let Some(d) = data {
            self.set_state(d, State::Added(Source::Data { group: ir.clone() }));
        }
        ext.ir = ir;
        Ok(ext)
    }

    /// For each exported definition of `module`: the slot and symbol of
    /// the lazy function it redefines, or `None` for a new name; an error
    /// for anything else of an existing name.
    fn adoptions(&self, module: &Module) -> Result<Vec<Option<(u32, SymbolId)>>> {
        let mut adopted = vec![None; module.symbols.len()];
        for (sym, s) in module.symbol_ids() {
            if s.linkage != Linkage::Export {
                continue;
            }
            let Some((id, old)) = self
                .symbols
                .lookup(&s.name)
                .and_then(|id| Some((id, self.symbols.get(id)?)))
            else {
                continue;
            };
            let owner = self.name_of(old.module);
            let fail = |m: String| Err(crate::registry::link_err(module, sym, m));
            match (&s.kind, self.symbols.signature(old), self.lazy_key(old)) {
                (SymbolKind::Func { sig, .. }, Some(have), Some(key)) => {
                    if sig != have {
                        return fail(format!(
                            "@{} has signature {have} (module {owner}); it cannot be redefined with {sig}",
                            s.name
                        ));
                    }
                    adopted[sym.index()] = Some((key, id));
                }
                (SymbolKind::Func { .. }, Some(_), None) => {
                    return fail(format!(
                        "@{} of module {owner} was not added lazily; it cannot be redefined",
                        s.name
                    ))
                }
                (SymbolKind::Func { .. }, None, _) => {
                    return fail(format!(
                    "@{} is data defined by module {owner}; it cannot be redefined as a function",
                    s.name
                ))
                }
                (SymbolKind::Data { .. }, _, _) => {
                    return fail(format!(
                        "@{} is already defined by module {owner}; data cannot be redefined",
                        s.name
                    ))
                }
            }
        }
        Ok(adopted)
    }

    /// A new member of `group` for slot `key` ([`NO_KEY`]: a data
    /// module), not yet with a state.
    fn add_member(&mut self, group: u32, key: u32, pending: bool) -> u32 {
        let index = match &self.entry(group).role {
            Role::Group(g) => g.members.len() as u32,
            _ => 0,
        };
        let m = self.new_entry(
            Role::Member(Member {
                group,
                key,
                index,
                pending,
            }),
            State::Free,
        );
        if let Role::Group(g) = &mut self.entry_mut(group).role {
            g.members.push(m);
        }
        m
    }

    /// Takes `slot` out of its lazy module's member list (O(1); once).
    fn remove_member(&mut self, slot: u32) {
        let Role::Member(m) = self.entry(slot).role else {
            return;
        };
        if m.index == u32::MAX {
            return;
        }
        let moved = match &mut self.entry_mut(m.group).role {
            Role::Group(g) if g.members.get(m.index as usize) == Some(&slot) => {
                g.members.swap_remove(m.index as usize);
                g.members.get(m.index as usize).copied()
            }
            _ => None,
        };
        if let Some(other) = moved {
            if let Role::Member(o) = &mut self.entry_mut(other).role {
                o.index = m.index;
            }
        }
        if let Role::Member(me) = &mut self.entry_mut(slot).role {
            me.index = u32::MAX;
        }
    }

    /// Takes back an extension that was not switched to (its compile or
    /// link check failed): its members, slots and symbols go.
    pub fn retract(&mut self, ext: &Extension) -> Result<()> {
        let mut first_err = None;
        for &m in &ext.members {
            if let Role::Member(mm) = self.entry(m).role {
                if mm.key != NO_KEY && self.lazy.slots[mm.key as usize].body == m {
                    self.lazy.slots[mm.key as usize].body = NO_BODY;
                }
            }
            self.remove_member(m);
            match &self.entry(m).state {
                // Its compiling thread finalizes it, then `after_seal`
                // retires it (no slot has it as its body).
                State::Compiling { .. } => {
                    if let Role::Member(mm) = &mut self.entry_mut(m).role {
                        mm.pending = false;
                    }
                    continue;
                }
                State::Loaded(l) => {
                    let batch = l.batch as usize;
                    self.unload_batch(batch);
                }
                _ => {}
            }
            if let Err(e) = self.drop_module(m) {
                first_err.get_or_insert(e);
            }
        }
        for &key in &ext.keys {
            if let Err(e) = self.free_key(key) {
                first_err.get_or_insert(e);
            }
        }
        if !ext.symbols.is_empty() {
            self.calls().clear();
        }
        for &id in &ext.symbols {
            self.symbols.remove(id);
        }
        if let Role::Group(g) = &mut self.entry_mut(ext.group).role {
            g.keys.retain(|k| !ext.keys.contains(&k));
            g.owner
                .symbols
                .retain(|s| !ext.symbols.contains(&SymbolId::from_raw(s)));
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Returns slot `key` to the free list, its cell back at its lazy
    /// entry.
    fn free_key(&mut self, key: u32) -> Result<()> {
        self.lazy.slots[key as usize].body = NO_BODY;
        self.lazy.free.push(key);
        let isa = self.isa()?;
        let entry = self.stub_address(&isa, key) + isa.lazy_offset as u64;
        self.executor.write_cell(self.cell_address(key), entry)
    }

    /// Makes the bodies of `ext` current: each redefined slot's cell is
    /// patched to the new body (finalized already) or back to its lazy
    /// entry, and the old body is retired.
    pub fn switch(&mut self, ext: &Extension) -> Result<()> {
        let isa = self.isa()?;
        let mut first_err = None;
        for &(key, member) in &ext.switches {
            match &mut self.entry_mut(member).role {
                Role::Member(m) if m.group == ext.group && m.key == key => m.pending = false,
                _ => {
                    first_err
                        .get_or_insert(Error::Runtime("the redefined module was removed".into()));
                    continue;
                }
            }
            let old = std::mem::replace(&mut self.lazy.slots[key as usize].body, member);
            let target = match &self.entry(member).state {
                State::Finalized(f) if f.body() != 0 => f.body(),
                _ => self.stub_address(&isa, key) + isa.lazy_offset as u64,
            };
            if let Err(e) = self.executor.write_cell(self.cell_address(key), target) {
                first_err.get_or_insert(e);
            }
            if old != NO_BODY {
                self.retire(old);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// After finalizing function-module `slot` with its body at `body`:
    /// patches its slot's cell when it is the slot's current body; a
    /// redefinition not switched to waits; a body replaced while it was
    /// being compiled is retired.
    pub(crate) fn after_seal(&mut self, slot: u32, body: u64) -> Result<()> {
        let Role::Member(m) = self.entry(slot).role else {
            return Ok(());
        };
        if m.key == NO_KEY || m.pending {
            return Ok(());
        }
        if self.lazy.slots.get(m.key as usize).map(|s| s.body) == Some(slot) {
            self.executor.write_cell(self.cell_address(m.key), body)
        } else {
            self.retire(slot);
            Ok(())
        }
    }

    /// The address slot `key` calls now, or the function-module to
    /// finalize first.
    pub fn indirect_body(&self, key: u32) -> Result<std::result::Result<u64, u32>> {
        let Some(s) = self
            .lazy
            .slots
            .get(key as usize)
            .filter(|s| s.body != NO_BODY)
        else {
            return Err(Error::Runtime(format!("lazy function #{key} was removed")));
        };
        match &self.entry(s.body).state {
            State::Finalized(f) if f.body() != 0 => Ok(Ok(f.body())),
            _ => Ok(Err(s.body)),
        }
    }

    /// Takes function-module `slot` out of service: finalized code goes to
    /// the retired list (released by [`Registry::reclaim`] once no call
    /// that could run it is left); a module being compiled is retired when
    /// it is finalized (by [`Registry::after_seal`]); others go at once.
    fn retire(&mut self, slot: u32) {
        self.remove_member(slot);
        match self.entry(slot).state {
            State::Compiling { .. } | State::Loaded(_) => {}
            State::Finalized(_) => {
                self.clear_edges(slot);
                // Backtraces stop naming it now; its code stays mapped
                // until no call can run in it.
                if let State::Finalized(f) = self.set_state(slot, State::Free) {
                    if let Some(start) = f.text_address() {
                        self.debug.module_removed(start);
                    }
                    let epoch = self.lazy.epochs.advance();
                    let sections = f.into_sections(&self.mm);
                    self.lazy.retired.push((epoch, sections));
                    self.lazy.epochs.pending.store(true, Ordering::Release);
                }
                self.free_entry(slot);
            }
            _ => {
                self.clear_edges(slot);
                self.set_state(slot, State::Free);
                self.free_entry(slot);
            }
        }
    }

    /// Releases retired code that no running call can be in.
    pub fn reclaim(&mut self) -> Result<()> {
        if self.lazy.retired.is_empty() {
            return Ok(());
        }
        let oldest = self.lazy.epochs.oldest_active();
        let (free, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.lazy.retired)
            .into_iter()
            .partition(|(e, _)| oldest.is_none_or(|o| o > *e));
        self.lazy.retired = keep;
        self.lazy
            .epochs
            .pending
            .store(!self.lazy.retired.is_empty(), Ordering::Release);
        let mut first_err = None;
        for (_, sections) in free {
            if let Err(e) = self.release_sections(sections) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Retired code not yet released: (modules, sections).
    pub fn retired_count(&self) -> (usize, usize) {
        (
            self.lazy.retired.len(),
            self.lazy.retired.iter().map(|r| r.1.len()).sum(),
        )
    }

    /// The members that make `group` callable now (current bodies and
    /// data modules).
    pub(crate) fn current_members(&self, group: u32) -> Vec<u32> {
        match &self.entry(group).role {
            Role::Group(g) => g
                .members
                .iter()
                .copied()
                .filter(|&m| !matches!(self.entry(m).role, Role::Member(mm) if mm.pending))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Link-checks what `roots` reach, compiling nothing: the walk of
    /// [`Registry::claim`], in the same order, through lazy modules too
    /// (each checked once). Reports the error eager finalizing of the
    /// same modules would report first.
    pub fn check_links(&mut self, roots: &[u32]) -> Result<()> {
        let mut units = Vec::new();
        for &r in roots {
            if let Some(u) = self.unit(self.owner_of(r)) {
                units.push(u);
            }
        }
        self.check_units(units)
    }

    /// Link-checks the externs of `ext`'s module (and what they reach).
    pub fn check_extension(&mut self, ext: &Extension) -> Result<()> {
        self.check_units(vec![Unit::Group {
            slot: ext.group,
            ir: ext.ir.clone(),
            mark: false,
        }])
    }

    /// What a link check of `slot` (an owner) visits, if it needs one.
    fn unit(&self, slot: u32) -> Option<Unit> {
        match (&self.entry(slot).role, &self.entry(slot).state) {
            (Role::Module(_), State::Added(_)) => Some(Unit::Module(slot)),
            (Role::Group(g), _) if !g.linked => {
                g.members.iter().find_map(|&m| match self.source_of(m)? {
                    Source::Function { group, .. } | Source::Data { group } => Some(Unit::Group {
                        slot,
                        ir: group.clone(),
                        mark: true,
                    }),
                    Source::Whole(_) => None,
                })
            }
            _ => None,
        }
    }

    fn check_units(&mut self, mut work: Vec<Unit>) -> Result<()> {
        let mut seen: crate::registry::FxHashMap<u32, ()> = Default::default();
        for u in &work {
            let (Unit::Module(s) | Unit::Group { slot: s, .. }) = u;
            seen.insert(*s, ());
        }
        while let Some(unit) = work.pop() {
            let (slot, source, mark) = match unit {
                Unit::Module(slot) => match &self.entry(slot).state {
                    State::Added(s) => (slot, s.clone(), false),
                    _ => continue,
                },
                Unit::Group { slot, ir, mark } => (slot, Source::Data { group: ir }, mark),
            };
            let module = source.module();
            for (sym, s) in module.symbol_ids() {
                if s.linkage != Linkage::Import {
                    continue;
                }
                if let crate::registry::Resolved::Module(dep) = self.resolve_import(module, sym)? {
                    let dep = self.owner_of(dep);
                    if dep != slot && seen.insert(dep, ()).is_none() {
                        work.extend(self.unit(dep));
                    }
                }
            }
            if let (true, Role::Group(g)) = (mark, &mut self.entry_mut(slot).role) {
                g.linked = true;
            }
        }
        Ok(())
    }

    /// Removes lazy module `group` with its members, slots and symbols
    /// (and the bodies other modules gave its functions); refused while
    /// another module references it, a call runs in it, a member is being
    /// compiled, or it holds the current body of another module's function.
    pub(crate) fn remove_group(&mut self, group: u32) -> Result<()> {
        let Role::Group(g) = &self.entry(group).role else {
            return Ok(());
        };
        let (members, keys) = (g.members.clone(), g.keys.clone());
        for &m in &members {
            let Role::Member(mm) = self.entry(m).role else {
                continue;
            };
            if mm.key == NO_KEY || mm.pending {
                continue;
            }
            let s = self.lazy.slots[mm.key as usize];
            let sym = self.symbols.get(s.symbol);
            let owner = sym.map_or(NO_BODY, |sym| sym.module);
            if owner != group && s.body == m {
                let name = sym.map_or("?", |sym| self.symbols.name(sym));
                return Err(Error::Argument(format!(
                    "cannot remove module `{}`: it holds the current body of @{name}, \
                     defined by module `{}`; remove that module instead",
                    self.name_of(group),
                    self.name_of(owner)
                )));
            }
        }
        // Bodies other modules gave this module's functions go with it;
        // their references to it do not count.
        let foreign: Vec<u32> = keys
            .iter()
            .map(|k| self.lazy.slots[k as usize].body)
            .filter(|&b| b != NO_BODY && self.owner_of(b) != group)
            .collect();
        let allowed = |r: &Registry, target: u32| {
            foreign
                .iter()
                .filter(|&&b| r.entry(b).deps.contains(&target))
                .count() as u32
        };
        self.check_removable(group, allowed(self, group))?;
        for &m in members.iter().chain(&foreign) {
            self.check_removable(m, allowed(self, m))?;
        }
        self.drop_group(group)
    }

    /// Drops `group` (checked removable) and everything it owns.
    fn drop_group(&mut self, group: u32) -> Result<()> {
        let (members, keys) = match &mut self.entry_mut(group).role {
            Role::Group(g) => (std::mem::take(&mut g.members), std::mem::take(&mut g.keys)),
            _ => return Ok(()),
        };
        let mut first_err = None;
        for key in keys.iter() {
            let body = self.lazy.slots[key as usize].body;
            if body != NO_BODY && self.owner_of(body) != group {
                self.remove_member(body);
                if let Err(e) = self.drop_module(body) {
                    first_err.get_or_insert(e);
                }
            }
            if let Err(e) = self.free_key(key) {
                first_err.get_or_insert(e);
            }
        }
        for m in members {
            if let Role::Member(mm) = self.entry(m).role {
                if mm.key != NO_KEY && self.lazy.slots[mm.key as usize].body == m {
                    self.lazy.slots[mm.key as usize].body = NO_BODY;
                }
            }
            if let Err(e) = self.drop_module(m) {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.drop_module(group) {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}
