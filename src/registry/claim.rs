//! Compile driving: the linking walk, claims, compile jobs and install
//! (see "Compiling outside the lock" in the [registry docs](super)).
//!
//! - [`Registry::claim`] walks the modules `roots` reach that are not
//!   finalized, link-checks every `extern` of every Added one with
//!   [`crate::link::check_import`] (the interpreter's rule), and marks them
//!   Compiling under a fresh token, recording their dependency edges.
//!   Nothing is claimed when a check fails.
//! - [`compile_job`] compiles one claimed module. It reads only the job
//!   (shared IR) and runs without the registry.
//! - [`Registry::install`] turns the results into images, places them in
//!   one new pending batch and makes them Loaded; [`Registry::abandon`]
//!   returns a failed claim's modules to Added.

use super::loader::{self, Image, SmallMap, Target};
use super::symbols::SymbolId;
use super::{link_err, Loaded, Pending, Registry, Source, State};
use crate::compiled::CompiledModule;
use crate::debug::ModuleDebug;
use crate::emit::compile_module;
use crate::error::{Error, Result};
use crate::ir::{Linkage, Module, SymId};
use crate::isa::TRAP_HANDLER;
use crate::link::{check_import, Definition};
use crate::memory::LoadBatch;
use smallvec::SmallVec;
use std::sync::Arc;

/// One module to compile: its slot and IR.
pub struct Job {
    pub slot: u32,
    pub source: Source,
}

/// What a claim took: the token, the jobs to compile (outside the lock),
/// every slot claimed, and whether something reachable is being compiled
/// by another claim (then the caller may have to wait for it).
pub struct Claim {
    pub token: u32,
    /// Usually one module (no allocation then).
    pub jobs: SmallVec<[Job; 1]>,
    pub slots: SmallVec<[u32; 2]>,
    pub busy: bool,
}

impl Claim {
    /// Drops the claim. The IR of each whole module it holds the last
    /// reference to is freed function by function, in batches, with the
    /// next ones' heap blocks prefetched: cheaper than a plain drop for a
    /// big module (see `free_module` in this file).
    pub fn release(self) {
        for job in self.jobs {
            if let Source::Whole(m) = job.source {
                if let Ok(m) = Arc::try_unwrap(m) {
                    free_module(m);
                }
            }
        }
    }
}

/// Items freed between two [`consolidate`] calls in [`free_in_order`].
const FREE_BATCH: usize = 64;
/// How many items ahead [`free_in_order`] prefetches the heap blocks of.
const PREFETCH_AHEAD: usize = 16;

/// Frees a module's IR: its functions and symbols one by one in order
/// ([`free_in_order`]), then the rest.
///
/// A function's IR is some seven small heap blocks (name, instructions,
/// values, operand pool, names, source map); in a large module that was
/// parsed (or cloned) into a heap the previous modules left fragmented,
/// they lie scattered, and freeing them is a chain of cache misses that
/// grew faster than the module (100,000 small functions: 54 ns per IR
/// instruction at 1,000 functions, 135 at 100,000, a quarter of the
/// compile). Freed in order with the blocks of the functions a little
/// ahead prefetched, and the allocator's deferred work done in small
/// batches while their chunks are still in cache, it costs less.
fn free_module(mut m: Module) {
    let funcs = std::mem::take(&mut m.funcs);
    free_in_order(funcs, |f| {
        prefetch_block(f.insts.as_ptr().cast());
        prefetch_block(f.values.as_ptr().cast());
        prefetch_block(f.arg_pool.as_ptr().cast());
        prefetch_block(f.name.as_ptr());
    });
    let symbols = std::mem::take(&mut m.symbols);
    free_in_order(symbols, |s| prefetch_block(s.name.as_ptr()));
    drop(m);
}

/// Drops the items of `v` in order, `prefetch` called on the item
/// [`PREFETCH_AHEAD`] places ahead of each, and [`consolidate`] after every
/// [`FREE_BATCH`] items; then `v`'s buffer. A short `v` is dropped as usual.
fn free_in_order<T>(v: Vec<T>, prefetch: impl Fn(&T)) {
    if v.len() <= FREE_BATCH {
        return;
    }
    let mut it = v.into_iter();
    let mut k = 0;
    while let Some(x) = it.next() {
        if let Some(ahead) = it.as_slice().get(PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        drop(x);
        k += 1;
        if k % FREE_BATCH == 0 {
            consolidate();
        }
    }
}

/// Asks the allocator for a block too big for its per-size caches and
/// frees it: glibc's malloc then merges the small chunks freed since
/// (its "fast bins") with their free neighbours now, while they are in
/// cache, instead of all of a big module's at once when its function list
/// is freed, cold. With another allocator this is one allocation and free.
#[inline(never)]
fn consolidate() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(4096)));
}

/// Prefetches the cache line holding the allocator's header of the heap
/// block at `p` (16 bytes before it in glibc's malloc; the block's first
/// bytes share the line or follow it). `p` may be dangling (an empty
/// `Vec`'s): a prefetch never faults.
#[inline(always)]
fn prefetch_block(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline; a prefetch reads no
    // memory architecturally and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_sub(16).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The compiled modules of a claim, by slot (usually one: no allocation).
pub type Compiled = SmallVec<[(u32, CompiledModule); 1]>;

/// What an `extern` resolves to.
pub(crate) enum Resolved {
    /// A symbol defined by the module in this slot.
    Module(u32),
    Host,
}

/// Compiles one claimed module for `target`. Runs without the registry
/// (and so without the engine's lock). A panic in the compiler is turned
/// into an error, so that the claim is always returned.
pub fn compile_job(target: &str, job: &Job) -> Result<CompiledModule> {
    let backend = crate::isa::backend(target).ok_or_else(|| {
        Error::Runtime(format!(
            "kiln was built without a backend for target {target}"
        ))
    })?;
    let run = || match &job.source {
        Source::Whole(m) => compile_module(m, backend),
        Source::Function { group, sym } => {
            let mut out = CompiledModule::for_one_function();
            backend.compile_function(&group.module, *sym, &mut out)?;
            Ok(out)
        }
        Source::Data { group } => {
            let mut out = CompiledModule::new();
            out.add_data_items(&group.module)?;
            Ok(out)
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => Err(Error::Runtime(format!(
            "the compiler failed on module `{}`",
            job.source.module().name
        ))),
    }
}

impl Registry {
    /// Resolves `extern` symbol `sym` of `module` (SPEC section 8): another
    /// module's export (kind and signature must agree), then a registered
    /// host symbol, then the executor's host lookup.
    pub(crate) fn resolve_import(&self, module: &Module, sym: SymId) -> Result<Resolved> {
        let name = module.sym(sym).name.as_str();
        if let Some(s) = self.symbols.by_name(name) {
            let other = self.name_of(s.module);
            let def = match self.symbols.signature(s) {
                Some(sig) => Definition::Func { sig, module: other },
                None => Definition::Data { module: other },
            };
            check_import(module, sym, Some(def))?;
            return Ok(Resolved::Module(s.module));
        }
        // Host symbols: the embedder's registrations first, then the
        // executor's own (the process's `dlsym`, or an emulator's stubs).
        let executor_sig;
        let def = match self.host.get(name) {
            Some(h) => Some(match &h.signature {
                Some(sig) => Definition::HostFunc(sig),
                None => Definition::HostAny,
            }),
            None if self.executor.host_symbol(name).is_some() => {
                executor_sig = self.executor.host_signature(name);
                Some(match &executor_sig {
                    Some(sig) => Definition::HostFunc(sig),
                    None => Definition::HostAny,
                })
            }
            None => None,
        };
        check_import(module, sym, def)?;
        Ok(Resolved::Host)
    }

    /// The modules `source`'s code references, link-checking each
    /// `extern` it uses, in symbol order.
    fn link_deps(&self, slot: u32, source: &Source) -> Result<SmallVec<[u32; 2]>> {
        let mut deps: SmallVec<[u32; 2]> = SmallVec::new();
        let mut add = |d: u32| {
            if d != slot && !deps.contains(&d) {
                deps.push(d);
            }
        };
        let refs = match source {
            Source::Whole(m) => {
                for (sym, s) in m.symbol_ids() {
                    if s.linkage != Linkage::Import {
                        continue;
                    }
                    if let Resolved::Module(dep) = self.resolve_import(m, sym)? {
                        add(dep);
                    }
                }
                return Ok(deps);
            }
            Source::Function { group, sym } => group.refs_of(*sym),
            Source::Data { group } => group.data_refs(),
        };
        let group_ir = match source {
            Source::Function { group, .. } | Source::Data { group } => group,
            Source::Whole(_) => return Ok(deps),
        };
        // A lazy module's own definitions resolve through its scope (its
        // functions' stubs are always there; its data is in its data
        // module); its externs like any module's.
        let own_group = self.owner_of(slot);
        for &sym in refs {
            match group_ir.scope.get(sym.index()).copied().flatten() {
                Some(id) => {
                    if let Some(s) = self.symbols.get(id) {
                        if s.module != own_group {
                            add(s.module);
                        }
                    }
                }
                None => {
                    if let Resolved::Module(dep) = self.resolve_import(&group_ir.module, sym)? {
                        add(dep);
                    }
                }
            }
        }
        Ok(deps)
    }

    /// Claims the Added modules reachable from `roots` (see the module
    /// docs). Stats: `last_touched` is the number of modules visited,
    /// `last_compiled` the number claimed.
    pub fn claim(&mut self, roots: &[u32]) -> Result<Claim> {
        let walkable = |r: &Registry, s: u32| {
            matches!(
                r.entry(s).state,
                State::Added(_) | State::Loaded(_) | State::Compiling { .. }
            )
        };
        // Usually a module or two: a list, hashed only when big.
        let mut seen: SmallMap<u32, ()> = SmallMap::default();
        let mut work: SmallVec<[u32; 4]> = SmallVec::new();
        for &r in roots {
            if walkable(self, r) && seen.get(&r).is_none() {
                seen.insert(r, ());
                work.push(r);
            }
        }
        let mut found: SmallVec<[(u32, SmallVec<[u32; 2]>); 2]> = SmallVec::new();
        let mut busy = false;
        while let Some(slot) = work.pop() {
            let deps = match &self.entry(slot).state {
                State::Added(source) => {
                    let deps = self.link_deps(slot, source)?;
                    found.push((slot, deps.clone()));
                    deps
                }
                State::Loaded(_) => SmallVec::from_slice(&self.entry(slot).deps),
                State::Compiling { .. } => {
                    busy = true;
                    continue;
                }
                _ => continue,
            };
            for d in deps {
                if walkable(self, d) && seen.get(&d).is_none() {
                    seen.insert(d, ());
                    work.push(d);
                }
            }
        }
        let token = self.new_claim();
        let mut jobs = SmallVec::with_capacity(found.len());
        let mut slots = SmallVec::with_capacity(found.len());
        for (slot, deps) in found {
            let State::Added(source) = self.set_state(slot, State::Free) else {
                continue;
            };
            jobs.push(Job {
                slot,
                source: source.clone(),
            });
            self.set_state(
                slot,
                State::Compiling {
                    source,
                    claim: token,
                },
            );
            // Allocated at its size: a shrunk buffer would leave a hole
            // beside a record that lives as long as the module.
            self.set_edges(slot, super::Deps::new(&deps));
            slots.push(slot);
        }
        self.stats.last_touched = seen.len();
        self.stats.last_compiled = jobs.len();
        Ok(Claim {
            token,
            jobs,
            slots,
            busy,
        })
    }

    /// Returns the still-Compiling modules of claim `token` among `slots`
    /// to Added (their compile failed or was not installed).
    pub fn abandon(&mut self, token: u32, slots: &[u32]) {
        for &slot in slots {
            let mine = matches!(
                self.entry(slot).state,
                State::Compiling { claim, .. } if claim == token
            );
            if !mine {
                continue;
            }
            if let State::Compiling { source, .. } = self.set_state(slot, State::Free) {
                self.set_state(slot, State::Added(source));
            }
            self.clear_edges(slot);
        }
    }

    /// Resolves a name `source`'s compiled code uses but does not define.
    fn resolve_target(&self, source: &Source, name: &str) -> Result<Target> {
        let module = source.module();
        let unresolved = || {
            let err = |sym| link_err(module, sym, format!("unresolved symbol @{name}"));
            match module.symbol(name) {
                Some(sym) => err(sym),
                None => Error::Link(crate::error::Diagnostic::new(
                    module.name.clone(),
                    crate::ir::Loc::NONE,
                    format!("unresolved symbol @{name}"),
                )),
            }
        };
        if let Source::Function { group, .. } | Source::Data { group } = source {
            if let Some(id) = module
                .symbol(name)
                .and_then(|sym| group.scope.get(sym.index()).copied().flatten())
            {
                return Ok(Target::Symbol(id));
            }
        }
        if name == TRAP_HANDLER {
            return self
                .executor
                .host_symbol(TRAP_HANDLER)
                .map(Target::Absolute)
                .ok_or_else(unresolved);
        }
        if let Some(id) = self.symbols.lookup(name) {
            return Ok(Target::Symbol(id));
        }
        if let Some(h) = self.host.get(name) {
            return Ok(Target::Absolute(h.address));
        }
        self.executor
            .host_symbol(name)
            .map(Target::Absolute)
            .ok_or_else(unresolved)
    }

    /// The image of compiled module `cm` of `slot`.
    /// For a function-module, also the definition index of its function.
    fn image_of(
        &self,
        slot: u32,
        source: &Source,
        cm: CompiledModule,
    ) -> Result<(Image, Option<u32>)> {
        let symbols = &self.symbols;
        let mut resolve = |name: &str| self.resolve_target(source, name);
        match source {
            Source::Whole(_) => {
                // The module's exports as `add_shared` made them, in IR
                // order, which the compiled symbols follow: the next one
                // is tried first (a name compare, no hashing), the name
                // looked up otherwise.
                let mut owned = self.owner(slot).map(|o| o.symbols.iter());
                let mut next = owned.as_mut().and_then(Iterator::next);
                let export = |name: &str, exported: bool| {
                    if !exported {
                        // Local: no lookup.
                        return None;
                    }
                    if let Some(id) = next.map(SymbolId::from_raw) {
                        if symbols.get(id).is_some_and(|s| symbols.name(s) == name) {
                            next = owned.as_mut().and_then(Iterator::next);
                            return Some(id);
                        }
                    }
                    let id = symbols.lookup(name)?;
                    (symbols.get(id)?.module == slot).then_some(id)
                };
                Ok((Image::new(cm, export, &mut resolve)?, None))
            }
            Source::Data { group } => {
                // Every data item, exported or local, is a symbol of the
                // lazy module's scope.
                let export = |name: &str, _: bool| {
                    let sym = group.module.symbol(name)?;
                    group.scope.get(sym.index()).copied().flatten()
                };
                Ok((Image::new(cm, export, &mut resolve)?, None))
            }
            Source::Function { group, sym } => {
                let image = Image::new(cm, |_, _| None, &mut resolve)?;
                let name = group.module.sym(*sym).name.as_str();
                let body = image
                    .names
                    .position(name, image.defined.len())
                    .map(|i| i as u32);
                Ok((image, body))
            }
        }
    }

    /// Places claim `token`'s compiled modules in one new pending batch:
    /// they become Loaded. On an error every module of the claim goes back
    /// to Added and the batch is discarded.
    pub fn install(&mut self, token: u32, compiled: Compiled) -> Result<()> {
        let slots: SmallVec<[u32; 4]> = compiled.iter().map(|c| c.0).collect();
        let index = match self.pending.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.pending.push(None);
                self.pending.len() - 1
            }
        };
        let mut batch = self.mm.begin_batch();
        let mut placed_slots = SmallVec::with_capacity(compiled.len());
        let mut result = Ok(());
        for (slot, cm) in compiled {
            if let Err(e) = self.install_one(&mut batch, index as u32, token, slot, cm) {
                result = Err(e);
                break;
            }
            placed_slots.push(slot);
        }
        self.stats.modules_compiled += placed_slots.len() as u64;
        self.pending[index] = Some(Pending {
            batch,
            modules: placed_slots,
        });
        if let Err(e) = result {
            self.unload_batch(index);
            self.abandon(token, &slots);
            return Err(e);
        }
        Ok(())
    }

    /// Builds, places and loads one module (see [`Registry::install`]).
    fn install_one(
        &mut self,
        batch: &mut LoadBatch,
        index: u32,
        token: u32,
        slot: u32,
        mut cm: CompiledModule,
    ) -> Result<()> {
        let file = match self.owner(slot) {
            Some(o) => o.name.clone(),
            None => "<lazy stubs>".into(),
        };
        let debug = ModuleDebug::take_shared(file, &mut cm);
        let source = match &self.entry(slot).state {
            State::Compiling { source, claim } if *claim == token => source.clone(),
            _ => {
                return Err(Error::Runtime(format!(
                    "module `{}` was not claimed by this compile",
                    self.name_of(slot)
                )))
            }
        };
        let (image, body) = self.image_of(slot, &source, cm)?;
        let mut sections = SmallVec::new();
        let placed = loader::place(&mut self.mm, &*self.executor, batch, &image, &mut sections);
        let exports = image.exports;
        let loaded = Loaded {
            source: Some(source),
            batch: index,
            sections,
            defined: image.defined,
            exports,
            relocs: image.relocs,
            names: image.names,
            veneers: image.veneers,
            debug,
            body,
        };
        self.set_state(slot, State::Loaded(Box::new(loaded)));
        // Loaded (even half-placed), so that unloading the batch releases
        // what was placed.
        placed?;
        self.refresh_addresses(slot, batch);
        Ok(())
    }

    /// Sets the symbol-table address of everything Loaded module `slot`
    /// defines, from its sections' current target addresses.
    pub(crate) fn refresh_addresses(&mut self, slot: u32, batch: &LoadBatch) {
        let State::Loaded(m) = &self.entries[slot as usize].state else {
            return;
        };
        let bases = loader::bases(batch, &m.sections);
        for &(id, def) in &m.exports {
            let address = loader::defined_address(&m.defined, &bases, def);
            if let Some(s) = self.symbols.get_mut(id) {
                s.set_address(address);
            }
        }
    }

    /// The IR of `slot` while it has one (Added, Compiling, Loaded).
    pub(crate) fn source_of(&self, slot: u32) -> Option<&Source> {
        match &self.entry(slot).state {
            State::Added(s) | State::Compiling { source: s, .. } => Some(s),
            State::Loaded(m) => m.source.as_ref(),
            _ => None,
        }
    }
}
