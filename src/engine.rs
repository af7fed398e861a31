//! The public facade: an [`Engine`] owns a module [`Registry`], an
//! [`Executor`] and the trap handler, behind a lock, so that one engine can
//! be shared by many threads (`Engine: Send + Sync`).
//!
//! The lock is held only for bookkeeping, never while compiling: a thread
//! that needs modules compiled claims them under the lock, compiles them
//! without it, and takes it again to load and finalize them (the driver,
//! `Inner::drive`; see "Compiling outside the lock" in [`crate::registry`]).
//! So a call or lookup of finalized code never waits for a compile running
//! on another thread, and two threads compile different modules at once.
//! A thread that needs a module another thread is compiling waits for that
//! compile (a condition variable) instead of compiling it again.
//!
//! Life of a module: [`Engine::add_module`] (parsed or built IR, verified,
//! nothing compiled) → compiled and loaded when something it defines is
//! looked up ([`Engine::get_function`], [`Engine::call`]) or referenced by
//! a module being finalized, or when finalized explicitly
//! ([`Engine::finalize_module`]) → finalized (callable) →
//! [`Engine::remove_module`] (memory reused).
//!
//! Calls: [`Engine::call`] calls any signature with [`Val`]s through a
//! call trampoline shared by every signature; a trap inside it is returned as
//! `Err(Error::Trap)` (the trampoline's frame is the catch point, see
//! [`crate::trampoline`]). [`Engine::get_function`] returns a typed
//! `extern "C" fn` pointer whose signature is checked against the IR; a
//! trap in code called through it goes to the embedder's trap handler
//! ([`Engine::set_trap_handler`]; by default `trap: REASON` on stderr and
//! abort).

use crate::error::{Error, Result};
use crate::executor::{check_args, Executor, InProcessExecutor};
use crate::ir::parse::parse_module;
use crate::ir::verify::verify_module;
use crate::ir::{Module, Signature, Type};
use crate::lazy::{EpochGuard, Epochs, Resolver, Split};
use crate::memory::{MemoryConfig, SectionKind};
use crate::opt::OptLevel;
use crate::registry::calls::CallCache;
use crate::registry::{compile_job, Lookup, ModuleId, ModuleState, Registry, RegistryStats};
use crate::trampoline::TrapHandler;
use crate::value::Val;
use crate::TrapCode;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A JIT engine. See the [module docs](self).
pub struct Engine {
    inner: Arc<Inner>,
    /// Whether modules get interrupt checks ([`Engine::with_interrupts`]).
    interrupts: bool,
}

/// What an engine shares with its threads (and, through a pointer, with
/// the code it compiled).
struct Inner {
    registry: Mutex<Registry>,
    /// Signalled whenever a module leaves the Compiling state (installed,
    /// abandoned or finalized): threads waiting for another thread's
    /// compile re-check then.
    changed: Condvar,
    /// Threads waiting on `changed`. Changed only under the registry lock,
    /// and read under it before notifying: signalling costs a system call
    /// even with nobody waiting, and a waiter counts itself before it
    /// releases the lock to wait, so no wake-up is lost.
    waiters: AtomicUsize,
    /// The `--target` name.
    target: Arc<str>,
    /// The [`OptLevel`] of modules added from now on (as `u8`).
    opt: AtomicU8,
    /// Set when the executor is the in-process one (for the trap handler).
    in_process: Option<Arc<InProcessExecutor>>,
    executor: Arc<dyn Executor>,
    /// Epochs over this engine's calls (shared with the registry, which
    /// retires old code by them).
    epochs: Arc<Epochs>,
    /// Callable functions by name, shared with the registry, which clears
    /// it before any removal: `Engine::call` finds a finalized function
    /// here without waiting for the registry lock, which a compile holds
    /// while it places and relocates its code
    /// ([`crate::registry::calls`]).
    calls: Arc<CallCache>,
}

/// When the functions of a lazy module are compiled
/// ([`Engine::redefine`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compile {
    /// On each function's first call (errors come back from that call).
    OnFirstCall,
    /// Now: errors come back from the redefinition, and nothing changes.
    Now,
}

/// What the driver should bring the roots to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Loaded,
    Finalized,
}

impl Default for Engine {
    /// An in-process engine for the host ISA. If kiln was built without a
    /// backend for the host, modules can be added but compiling them is an
    /// error.
    fn default() -> Self {
        match Engine::build(std::env::consts::ARCH) {
            Ok(e) => e,
            // Only reachable if mapping a few pages for the call stubs
            // fails at start-up; nothing sensible can run then.
            Err(e) => panic!("cannot create a kiln engine: {e}"),
        }
    }
}

impl Engine {
    /// An in-process engine compiling for `target` (`x86_64`), which must
    /// be the host's ISA (foreign targets need an emulating executor:
    /// [`Engine::with_executor`]).
    pub fn new(target: &str) -> Result<Engine> {
        crate::isa::backend(target).ok_or_else(|| {
            Error::Argument(format!(
                "kiln was built without a backend for target `{target}`"
            ))
        })?;
        if target != std::env::consts::ARCH {
            return Err(Error::Argument(format!(
                "target `{target}` is not this host's ISA; it needs an emulating executor"
            )));
        }
        Engine::build(target)
    }

    fn build(target: &str) -> Result<Engine> {
        let ex = Arc::new(InProcessExecutor::new(None)?);
        let executor: Arc<dyn Executor> = ex.clone();
        Engine::assemble(target, executor, Some(ex))
    }

    fn assemble(
        target: &str,
        executor: Arc<dyn Executor>,
        in_process: Option<Arc<InProcessExecutor>>,
    ) -> Result<Engine> {
        let mut registry = Registry::new(target, executor.clone(), MemoryConfig::default())?;
        // Host ISA, in this process: profilers and debuggers can see it.
        registry.debug_mut().set_native(in_process.is_some());
        let inner = Arc::new(Inner {
            target: registry.target().clone(),
            epochs: registry.epochs().clone(),
            calls: registry.calls().clone(),
            registry: Mutex::new(registry),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            opt: AtomicU8::new(OptLevel::None as u8),
            in_process,
            executor,
        });
        {
            let mut reg = inner.lock()?;
            if inner.in_process.is_some() {
                // Compiled code calls `native_resolve` with the engine's
                // shared state, which outlives all of its code.
                let resolve: unsafe extern "C" fn(*const Inner, u64) -> u64 =
                    crate::lazy::native_resolve::<Inner>;
                reg.set_lazy_resolver(resolve as usize as u64, Arc::as_ptr(&inner) as u64);
            } else if let Some(address) = inner.executor.lazy_resolver() {
                reg.set_lazy_resolver(address, 0);
            }
        }
        Ok(Engine {
            inner,
            interrupts: false,
        })
    }

    /// An engine compiling for `target` whose code runs in `executor` (a
    /// remote or emulated process).
    pub fn with_executor(target: &str, executor: Arc<dyn Executor>) -> Result<Engine> {
        crate::isa::backend(target).ok_or_else(|| {
            Error::Argument(format!(
                "kiln was built without a backend for target `{target}`"
            ))
        })?;
        Engine::assemble(target, executor, None)
    }

    /// This engine, with checks of the interrupt flag compiled into every
    /// module added from now on (function entries and loop heads, see
    /// [`crate::interrupt`]), so that [`Engine::interrupt`] can stop a
    /// running call. Off by default: without it, compiled code contains no
    /// checks and costs nothing extra.
    pub fn with_interrupts(mut self) -> Engine {
        self.interrupts = true;
        self
    }

    /// A handle, `Send + Sync`, that interrupts the running call (or the
    /// next one) from any thread: it returns
    /// `Err(Error::Trap(TrapCode::Interrupted))`. Needs
    /// [`Engine::with_interrupts`] to reach compiled code.
    pub fn interrupt_handle(&self) -> crate::interrupt::InterruptHandle {
        let ex = self.inner.executor.clone();
        crate::interrupt::InterruptHandle::new(move || ex.interrupt())
    }

    /// Interrupts the running call (or the next one); see
    /// [`Engine::interrupt_handle`].
    pub fn interrupt(&self) {
        self.inner.executor.interrupt();
    }

    /// Verifies `module`, optimizes it at the engine's level and, in an
    /// engine with interrupts, adds the interrupt checks
    /// ([`crate::interrupt::instrument`]) last, so that no optimization
    /// moves them.
    fn prepare(&self, module: Module) -> Result<Module> {
        verify_module(&module)?;
        self.optimize_and_instrument(module)
    }

    /// Optimizes a verified module at the engine's level, then adds the
    /// interrupt checks when the engine has them.
    fn optimize_and_instrument(&self, mut module: Module) -> Result<Module> {
        crate::opt::optimize_module(&mut module, self.opt_level());
        if self.interrupts {
            crate::interrupt::instrument(&module)
        } else {
            Ok(module)
        }
    }

    fn reg(&self) -> Result<MutexGuard<'_, Registry>> {
        self.inner.lock()
    }

    /// Sets the optimization level of the modules added from now on
    /// (default [`OptLevel::None`], the fast path).
    pub fn set_opt_level(&self, level: OptLevel) {
        self.inner.opt.store(level as u8, Ordering::Relaxed);
    }

    /// The optimization level of modules added from now on.
    pub fn opt_level(&self) -> OptLevel {
        match self.inner.opt.load(Ordering::Relaxed) {
            x if x == OptLevel::Speed as u8 => OptLevel::Speed,
            _ => OptLevel::None,
        }
    }

    /// Parses, verifies and adds a module from text; `file` names it in
    /// diagnostics. Nothing is compiled yet.
    pub fn add_module_text(&self, file: &str, text: &str) -> Result<ModuleId> {
        self.add_module(parse_module(file, text)?)
    }

    /// Verifies and adds a module (parsed or built). Nothing is compiled
    /// yet. Exporting a name another module exports is a link error.
    /// At [`OptLevel::Speed`] the module is optimized here, once verified
    /// (so are the modules of the lazy and redefining additions below).
    pub fn add_module(&self, module: Module) -> Result<ModuleId> {
        let module = Arc::new(self.prepare(module)?);
        self.reg()?.add_shared(module)
    }

    /// Adds a verified module lazily (SPEC section 8, `--lazy`; see
    /// [`crate::lazy`]): it is split into one function-module per function
    /// (its data items stay together), every function gets a stub, and
    /// nothing is compiled until a function is first called — then that
    /// function alone. [`Engine::get_function`] and [`Engine::call`] need
    /// no compile; a link or compile error of a function comes back from
    /// the call that first reaches it ([`Engine::check_links`] finds link
    /// errors up front). Exporting a name another module exports is a link
    /// error. Executors that cannot resolve calls lazily compile the module
    /// now.
    pub fn add_module_lazy(&self, module: Module) -> Result<ModuleId> {
        let split = Split::new(self.prepare(module)?);
        let (id, now) = {
            let mut reg = self.reg()?;
            (reg.add_lazy(split)?, !reg.lazy_supported())
        };
        if now {
            if let Err(e) = self.finalize_module(id) {
                let _ = self.remove_module(id);
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Parses, verifies and adds a module from text lazily
    /// ([`Engine::add_module_lazy`]).
    pub fn add_module_text_lazy(&self, file: &str, text: &str) -> Result<ModuleId> {
        self.add_module_lazy(parse_module(file, text)?)
    }

    /// Replaces function bodies at run time (hot redefinition): each
    /// function of `module` named like a lazily added function, with the
    /// same signature, takes its place — callers compiled earlier reach the
    /// new body through the function's stub; a call running in the old
    /// body finishes there, and the old code is released once no engine
    /// call that began before the switch still runs. Other functions of
    /// `module` are added lazily; its data items must be new. Another
    /// signature, an eagerly added function, or a data item of an existing
    /// name is a link error, and nothing changes. With [`Compile::Now`]
    /// the new bodies are compiled first, and an error there changes
    /// nothing either. Returns the new lazy module.
    pub fn redefine(&self, module: Module, when: Compile) -> Result<ModuleId> {
        verify_module(&module)?;
        let (id, group) = {
            let mut reg = self.reg()?;
            let group = reg.new_group(&module.name);
            (reg.id_of(group), group)
        };
        match self.extend_slot(group, module, when) {
            Ok(()) => Ok(id),
            Err(e) => {
                let _ = self.remove_module(id);
                Err(e)
            }
        }
    }

    /// Adds `module`'s definitions to lazy module `lazy` (one made by
    /// [`Engine::add_module_lazy`] or [`Engine::redefine`]), redefining as
    /// [`Engine::redefine`] does: each function becomes a function-module of
    /// `lazy`, a function named like an existing lazy function with the
    /// same signature replaces its body, and new names become new lazy
    /// functions. Links are checked first; with [`Compile::Now`] the new
    /// bodies are compiled before anything switches. On an error nothing
    /// changes. (The REPL keeps its whole session in one lazy module this
    /// way, each item its own function-module.)
    pub fn extend_lazy(&self, lazy: ModuleId, module: Module, when: Compile) -> Result<()> {
        verify_module(&module)?;
        let group = {
            let reg = self.reg()?;
            let slot = reg.live_slot(lazy)?;
            if !reg.is_group(slot) {
                return Err(Error::Argument(format!("{lazy} is not a lazy module")));
            }
            slot
        };
        self.extend_slot(group, module, when)
    }

    fn extend_slot(&self, group: u32, module: Module, when: Compile) -> Result<()> {
        let split = Split::new(self.optimize_and_instrument(module)?);
        let (ext, lazy) = {
            let mut reg = self.reg()?;
            let ext = reg.extend(group, split, true)?;
            // Link errors now, whenever the bodies are compiled.
            if let Err(e) = reg.check_extension(&ext) {
                let _ = reg.retract(&ext);
                return Err(e);
            }
            (ext, reg.lazy_supported())
        };
        if when == Compile::Now || !lazy {
            if let Err(e) = self.inner.drive(&ext.members, Goal::Finalized) {
                let _ = self.reg()?.retract(&ext);
                return Err(e);
            }
        }
        let mut reg = self.reg()?;
        reg.switch(&ext)?;
        reg.reclaim()
    }

    /// Link-checks `module` and what it reaches, compiling nothing: for a
    /// lazy module, the errors eager finalizing would report, up front.
    pub fn check_links(&self, module: ModuleId) -> Result<()> {
        let mut reg = self.reg()?;
        let slot = reg.live_slot(module)?;
        reg.check_links(&[slot])
    }

    /// An epoch guard: while it is held, code retired by a redefinition is
    /// not released. Engine calls hold one; hold one around calls through
    /// raw pointers ([`Engine::get_function`]) that may run while their
    /// function is redefined on another thread.
    pub fn enter(&self) -> EpochGuard {
        self.inner.epochs.enter()
    }

    /// Finalizes whatever is Loaded (modules loaded by
    /// [`Engine::load_module`]) and everything it references.
    pub fn finalize(&self) -> Result<()> {
        let mut reg = self.reg()?;
        // Resets the per-finalize counters, as a finalize with no roots.
        let claim = reg.claim(&[])?;
        debug_assert!(claim.jobs.is_empty());
        let r = reg.finalize();
        self.inner.notify(&reg);
        r
    }

    /// Compiles, loads and finalizes `module` and every Added module it
    /// reaches through its externs.
    pub fn finalize_module(&self, module: ModuleId) -> Result<()> {
        let roots = self.reg()?.roots_of(module)?;
        self.inner.drive(&roots, Goal::Finalized)
    }

    /// Compiles and loads `module` (and what it reaches) without
    /// finalizing, so that [`Engine::map_section_address`] can move its
    /// sections before [`Engine::finalize`].
    pub fn load_module(&self, module: ModuleId) -> Result<()> {
        let roots = self.reg()?.roots_of(module)?;
        self.inner.drive(&roots, Goal::Loaded)
    }

    /// Moves section `kind` of Loaded `module` to `address` in the
    /// executor's memory.
    pub fn map_section_address(
        &self,
        module: ModuleId,
        kind: SectionKind,
        address: u64,
    ) -> Result<()> {
        self.reg()?.map_section_address(module, kind, address)
    }

    /// The target address of a section of a Loaded or Finalized module.
    pub fn section_address(&self, module: ModuleId, kind: SectionKind) -> Result<Option<u64>> {
        let reg = self.reg()?;
        reg.slot_of(module)?;
        Ok(reg.section_address(module, kind))
    }

    /// Removes a module; refused while a finalized module references it or
    /// a call runs in it. Its memory is reused.
    pub fn remove_module(&self, module: ModuleId) -> Result<()> {
        self.reg()?.remove(module)
    }

    /// The state of `module` (`None` once removed); an id of another
    /// engine is an error.
    pub fn module_state(&self, module: ModuleId) -> Result<Option<ModuleState>> {
        self.reg()?.state(module)
    }

    /// Makes `name` resolve to `address` for `extern` declarations of later
    /// finalizes (before the process's own symbols). With a `signature`, an
    /// `extern func` must match it; `None` accepts any (data, or a C
    /// function trusted as a C linker would).
    pub fn register_host_symbol(
        &self,
        name: &str,
        address: usize,
        signature: Option<Signature>,
    ) -> Result<()> {
        self.reg()?
            .host_symbols_mut()
            .register(name, address as u64, signature);
        Ok(())
    }

    /// Sets what happens on a trap in code called through a typed pointer
    /// (`None`: print `trap: REASON` and abort). The handler must not
    /// return (exit or abort); if it does, the process aborts. Traps inside
    /// [`Engine::call`] never reach it: they are returned as errors.
    pub fn set_trap_handler(&self, handler: Option<TrapHandler>) {
        if let Some(ex) = &self.inner.in_process {
            ex.set_trap_handler(handler);
        }
    }

    /// Convenience for [`Engine::set_trap_handler`] with a closure.
    pub fn on_trap(&self, f: impl Fn(TrapCode) + Send + Sync + 'static) {
        self.set_trap_handler(Some(Arc::new(f)));
    }

    /// What exported `name` is and where, if some module exports it.
    pub fn symbol(&self, name: &str) -> Result<Option<crate::registry::SymbolInfo>> {
        Ok(self.reg()?.symbol(name))
    }

    /// Tells profilers and debuggers about the code of every module
    /// finalized from now on ([`crate::debug::DebugOptions`]: perf map,
    /// jitdump, GDB, unwind information). Applies only to code running in
    /// this process (the default executor); other engines accept and
    /// ignore it. Set it before adding code: a perf map needs code placed
    /// in anonymous memory from then on (see
    /// [`crate::registry::Registry::set_debug_options`]). A file that
    /// cannot be created is an error here.
    pub fn set_debug_options(&self, options: crate::debug::DebugOptions) -> Result<()> {
        self.reg()?.set_debug_options(options)
    }

    /// The function and IR instruction whose compiled code contains target
    /// address `address` (a finalized module's), as a backtrace frame.
    pub fn code_location(&self, address: u64) -> Result<Option<crate::TrapFrame>> {
        Ok(self.reg()?.debug().frame(address))
    }

    /// Counters of the registry.
    pub fn stats(&self) -> Result<RegistryStats> {
        Ok(self.reg()?.stats())
    }

    /// Retired code (replaced by redefinitions) not released yet, because
    /// a call that began before its replacement may still run in it:
    /// (function-modules, sections).
    pub fn retired(&self) -> Result<(usize, usize)> {
        let mut reg = self.reg()?;
        reg.reclaim()?;
        Ok(reg.retired_count())
    }

    /// Address-space use of the engine's memory manager.
    pub fn memory_stats(&self) -> Result<crate::memory::MemoryStats> {
        Ok(self.reg()?.memory().stats())
    }

    /// The address of exported function `name`, finalizing on demand, and
    /// its signature.
    pub fn function_address(&self, name: &str) -> Result<(u64, Signature)> {
        let (a, s, _) = self.inner.function(name)?;
        Ok((a, s))
    }

    /// The address of exported symbol `name` (function or data),
    /// finalizing on demand.
    pub fn symbol_address(&self, name: &str) -> Result<u64> {
        loop {
            let found = self.reg()?.lookup_symbol(name)?;
            match found {
                Ok(a) => return Ok(a),
                Err(slot) => self.inner.drive(&[slot], Goal::Finalized)?,
            }
        }
    }

    /// A typed pointer to exported function `name`, finalizing on demand.
    /// The signature of `F` is checked against the IR.
    ///
    /// # Safety
    /// The pointer is valid only while the function's module stays
    /// finalized (not removed) and the engine lives; calling it after that
    /// is undefined behaviour. A trap in it goes to the trap handler, which
    /// does not return. The engine must run in-process.
    ///
    /// For a lazily added function the pointer is its stub: nothing is
    /// compiled until it is called, it stays valid across redefinitions,
    /// and a compile error on its first call is printed and aborts the
    /// process (there is no call to return it to). A call through it that
    /// may run while the function is redefined must hold
    /// [`Engine::enter`], or the old body may be released under it.
    pub unsafe fn get_function<F: NativeFn>(&self, name: &str) -> Result<F> {
        if self.inner.in_process.is_none() {
            return Err(Error::Argument(
                "typed function pointers need the in-process executor".into(),
            ));
        }
        let (addr, sig) = self.function_address(name)?;
        let want = F::signature();
        if sig != want {
            return Err(Error::Argument(format!(
                "@{name} has signature {sig}, not {want}"
            )));
        }
        // SAFETY: `addr` is the entry of a finalized function with exactly
        // the signature `F` describes (checked above), and `F` is an
        // `extern "C" fn` pointer type (sealed trait).
        Ok(unsafe { F::from_address(addr) })
    }

    /// Calls exported function `name` (finalizing on demand) with `args`,
    /// through the one call trampoline (shared by every signature). Works for any
    /// signature. A trap returns `Err(Error::Trap)`; wrong arguments
    /// `Err(Error::Argument)`. The module cannot be removed while the call
    /// runs. The engine's lock is not held during the call, so compiled
    /// code may call back into the engine through host functions.
    ///
    /// Caveat: if the called code calls a host function which calls
    /// compiled code through a *typed* pointer that traps, the trap unwinds
    /// to this call and skips the host function's frames without running
    /// their destructors; use `call` (not typed pointers) from host
    /// functions.
    pub fn call(&self, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let (addr, sig, pin) = self.inner.function(name)?;
        check_args(name, &sig, args)?;
        let epoch = self.inner.epochs.enter();
        let _stale = crate::lazy::take_error();
        let inner = &*self.inner;
        let resolve = |key: u32| inner.resolve(key);
        // SAFETY: `addr` is a finalized function (or a lazy function's
        // stub) of `sig`; `pin` keeps its module (and, through the referrer
        // rule, everything it references) from being removed, and `epoch`
        // keeps retired code it may still run in mapped, until the call
        // returns.
        let r = unsafe { inner.executor.call_resolving(addr, &sig, args, &resolve) };
        // A failed lazy compile unwinds to this call through the trap path.
        let r = match r {
            Err(Error::Trap(t)) => crate::lazy::take_error().map_or(Err(Error::Trap(t)), Err),
            other => other,
        };
        // Symbolized while `pin` and `epoch` still keep the trapping code.
        let r = r.map_err(|e| self.symbolize(e));
        drop(epoch);
        drop(pin);
        if inner.epochs.has_retired() {
            if let Ok(mut reg) = inner.lock() {
                // Best effort: a failure only keeps retired code mapped.
                let _ = reg.reclaim();
            }
        }
        r
    }

    /// Fills in the IR-level backtrace of a trap from the code addresses
    /// the executor captured ([`crate::debug`]).
    fn symbolize(&self, e: Error) -> Error {
        match e {
            Error::Trap(mut t) if t.backtrace.is_empty() && !t.pcs.is_empty() => {
                if let Ok(reg) = self.reg() {
                    t.backtrace = reg.debug().symbolize(&t.pcs);
                }
                Error::Trap(t)
            }
            e => e,
        }
    }
}

impl Resolver for Inner {
    fn resolve(&self, key: u32) -> Result<u64> {
        loop {
            let found = self.lock()?.indirect_body(key)?;
            match found {
                Ok(address) => return Ok(address),
                Err(slot) => self.drive(&[slot], Goal::Finalized)?,
            }
        }
    }

    fn trap_stub(&self) -> Option<u64> {
        self.executor.host_symbol(crate::isa::TRAP_HANDLER)
    }
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, Registry>> {
        // A panic while holding the lock cannot leave the registry
        // inconsistent in a way that matters more than refusing service.
        self.registry
            .lock()
            .map_err(|_| Error::Runtime("engine lock poisoned by a panic".into()))
    }

    /// Wakes the threads waiting for a module to leave the Compiling
    /// state, if any; `_held` proves the caller holds the registry lock
    /// (see `waiters`).
    fn notify(&self, _held: &MutexGuard<'_, Registry>) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.changed.notify_all();
        }
    }

    /// Exported function `name`, callable: finalizes what it needs first.
    fn function(&self, name: &str) -> Result<(u64, Signature, Arc<()>)> {
        if let Some(found) = self.calls.get(name) {
            return Ok(found);
        }
        loop {
            let reg = self.lock()?;
            let found = reg.lookup_function(name)?;
            match found {
                Lookup::Ready(a, s, p) => {
                    let found = (a, s, p);
                    // Under the registry lock (see `CallCache::insert`).
                    self.calls.insert(name, &found);
                    return Ok(found);
                }
                Lookup::Pending(slot) => {
                    drop(reg);
                    self.drive(&[slot], Goal::Finalized)?
                }
            }
        }
    }

    /// Brings `roots` (and what they reach) to `goal`, compiling outside
    /// the lock (see "Compiling outside the lock" in [`crate::registry`]):
    /// claim under the lock, compile without it, install and finalize
    /// under it; wait for other threads' compiles when only they can make
    /// progress.
    fn drive(&self, roots: &[u32], goal: Goal) -> Result<()> {
        let mut reg = self.lock()?;
        loop {
            let done = |r: &Registry| match goal {
                Goal::Finalized => r.all_finalized(roots),
                Goal::Loaded => r.all_loaded(roots),
            };
            if done(&reg) {
                return Ok(());
            }
            let claim = reg.claim(roots)?;
            let mut progressed = false;
            if !claim.jobs.is_empty() {
                drop(reg);
                let mut compiled = crate::registry::Compiled::with_capacity(claim.jobs.len());
                let mut failed = None;
                for job in &claim.jobs {
                    match compile_job(&self.target, job) {
                        Ok(cm) => compiled.push((job.slot, cm)),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                reg = self.lock()?;
                if let Some(e) = failed {
                    reg.abandon(claim.token, &claim.slots);
                    self.notify(&reg);
                    return Err(e);
                }
                let installed = reg.install(claim.token, compiled);
                self.notify(&reg);
                installed?;
                progressed = true;
            }
            if goal == Goal::Finalized {
                let finalized = reg.finalize_ready();
                if !matches!(finalized, Ok(false)) {
                    self.notify(&reg);
                }
                progressed |= finalized?;
            }
            if done(&reg) {
                // Unlock first: the claim may hold the last reference to
                // the IR, and freeing a big module's IR takes a while.
                drop(reg);
                claim.release();
                return Ok(());
            }
            if !progressed {
                if !claim.busy {
                    return Err(Error::Runtime(
                        "cannot finalize: modules wait for something no thread compiles".into(),
                    ));
                }
                self.waiters.fetch_add(1, Ordering::Relaxed);
                let woken = self.changed.wait(reg);
                self.waiters.fetch_sub(1, Ordering::Relaxed);
                reg =
                    woken.map_err(|_| Error::Runtime("engine lock poisoned by a panic".into()))?;
            }
        }
    }
}

/// `extern "C" fn` pointer types whose parameters and result are IR types
/// (`i32 i64 f32 f64`, result also `()`), up to 8 parameters.
pub trait NativeFn: Copy + sealed::Sealed {
    /// The IR signature of this type.
    fn signature() -> Signature;
    /// # Safety
    /// `addr` must be a function of [`NativeFn::signature`].
    unsafe fn from_address(addr: u64) -> Self;
}

/// A Rust scalar that is an IR type (`i32 i64 f32 f64`).
pub trait IrParam: sealed::Sealed {
    const TYPE: Type;
}

/// A Rust result type of compiled code: an [`IrParam`] or `()`.
pub trait IrResult: sealed::Sealed {
    const TYPE: Option<Type>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! ir_type {
    ($($t:ty => $v:expr),*) => {$(
        impl sealed::Sealed for $t {}
        impl IrParam for $t { const TYPE: Type = $v; }
        impl IrResult for $t { const TYPE: Option<Type> = Some($v); }
    )*};
}
ir_type!(i32 => Type::I32, i64 => Type::I64, f32 => Type::F32, f64 => Type::F64);
impl sealed::Sealed for () {}
impl IrResult for () {
    const TYPE: Option<Type> = None;
}

macro_rules! native_fn {
    ($($a:ident),*) => {
        impl<R: IrResult, $($a: IrParam),*> sealed::Sealed for extern "C" fn($($a),*) -> R {}
        impl<R: IrResult, $($a: IrParam),*> NativeFn for extern "C" fn($($a),*) -> R {
            fn signature() -> Signature {
                Signature::new(
                    vec![$(<$a as IrParam>::TYPE),*],
                    <R as IrResult>::TYPE,
                )
            }
            unsafe fn from_address(addr: u64) -> Self {
                // SAFETY: the caller guarantees a function of this signature
                // at `addr`; fn pointers and addresses have the same size.
                unsafe { std::mem::transmute::<usize, Self>(addr as usize) }
            }
        }
    };
}
native_fn!();
native_fn!(A);
native_fn!(A, B);
native_fn!(A, B, C);
native_fn!(A, B, C, D);
native_fn!(A, B, C, D, E);
native_fn!(A, B, C, D, E, F);
native_fn!(A, B, C, D, E, F, G);
native_fn!(A, B, C, D, E, F, G, H);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const SRC: &str = "func @f(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, %x\n    ret %y\n}\n";

    /// A call of a finalized function does not wait for the registry lock
    /// (held by a compile while it places and relocates code): with the
    /// lock held here, another thread's call still returns.
    #[test]
    fn a_call_of_a_finalized_function_does_not_wait_for_the_registry_lock() {
        let engine = Arc::new(Engine::new(std::env::consts::ARCH).unwrap());
        engine.add_module_text("f.kir", SRC).unwrap();
        assert_eq!(engine.call("f", &[Val::I64(4)]).unwrap(), Some(Val::I64(8)));
        let held = engine.reg().unwrap();
        let (tx, rx) = mpsc::channel();
        let caller = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let r = engine.call("f", &[Val::I64(21)]);
                let _ = tx.send(r.map_err(|e| e.to_string()));
            })
        };
        // Generous: the call takes microseconds; blocked, it never ends.
        let r = rx.recv_timeout(Duration::from_secs(20));
        drop(held);
        caller.join().unwrap();
        assert_eq!(
            r.expect("the call waited for the registry lock"),
            Ok(Some(Val::I64(42)))
        );
    }

    /// The cache never hands out a removed function, and its entries do
    /// not count as running calls: a module called before can be removed,
    /// and calling it afterwards is an error, not a jump into freed code.
    #[test]
    fn removal_forgets_cached_functions() {
        let engine = Engine::new(std::env::consts::ARCH).unwrap();
        let id = engine.add_module_text("f.kir", SRC).unwrap();
        assert_eq!(engine.call("f", &[Val::I64(1)]).unwrap(), Some(Val::I64(2)));
        assert_eq!(engine.inner.calls.len(), 1);
        engine.remove_module(id).unwrap();
        assert!(engine.inner.calls.is_empty());
        let err = engine.call("f", &[Val::I64(1)]).unwrap_err().to_string();
        assert!(err.contains("no exported function @f"), "{err}");
        // A new definition of the name is what a call reaches now.
        let again = SRC.replace("add.i64", "mul.i64");
        engine.add_module_text("g.kir", &again).unwrap();
        assert_eq!(
            engine.call("f", &[Val::I64(5)]).unwrap(),
            Some(Val::I64(25))
        );
    }
}
