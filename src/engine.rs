//! The public facade: an [`Engine`] owns a module [`Registry`], an
//! [`Executor`] and the trap handler, behind a lock, so that one engine can
//! be shared by many threads (`Engine: Send + Sync`).
//!
//! Life of a module: [`Engine::add_module`] (parsed or built IR, verified,
//! nothing compiled) → compiled and loaded when something it defines is
//! looked up ([`Engine::get_function`], [`Engine::call`]) or referenced by
//! a module being finalized, or when finalized explicitly
//! ([`Engine::finalize_module`]) → finalized (callable) →
//! [`Engine::remove_module`] (memory reused).
//!
//! Calls: [`Engine::call`] calls any signature with [`Val`]s through a
//! cached per-signature trampoline; a trap inside it is returned as
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
use crate::memory::{MemoryConfig, SectionKind};
use crate::opt::OptLevel;
use crate::registry::{ModuleId, ModuleState, Registry, RegistryStats};
use crate::trampoline::TrapHandler;
use crate::value::Val;
use crate::TrapCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A JIT engine. See the [module docs](self).
pub struct Engine {
    registry: Mutex<Registry>,
    /// The [`OptLevel`] of modules added from now on (its `as u8`).
    opt: AtomicU8,
    /// Set when the executor is the in-process one (for the trap handler).
    in_process: Option<Arc<InProcessExecutor>>,
    executor: Arc<dyn Executor>,
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
        Ok(Engine {
            registry: Mutex::new(Registry::new(
                target,
                executor.clone(),
                MemoryConfig::default(),
            )?),
            opt: AtomicU8::new(OptLevel::None as u8),
            in_process: Some(ex),
            executor,
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
        Ok(Engine {
            registry: Mutex::new(Registry::new(
                target,
                executor.clone(),
                MemoryConfig::default(),
            )?),
            opt: AtomicU8::new(OptLevel::None as u8),
            in_process: None,
            executor,
        })
    }

    fn reg(&self) -> Result<MutexGuard<'_, Registry>> {
        // A panic while holding the lock cannot leave the registry
        // inconsistent in a way that matters more than refusing service.
        self.registry
            .lock()
            .map_err(|_| Error::Runtime("engine lock poisoned by a panic".into()))
    }

    /// Parses, verifies and adds a module from text; `file` names it in
    /// diagnostics. Nothing is compiled yet.
    pub fn add_module_text(&self, file: &str, text: &str) -> Result<ModuleId> {
        self.add_module(parse_module(file, text)?)
    }

    /// Verifies and adds a module (parsed or built). Nothing is compiled
    /// yet. Exporting a name another module exports is a link error. At
    /// [`OptLevel::Speed`] the module is optimized here, once verified.
    pub fn add_module(&self, mut module: Module) -> Result<ModuleId> {
        verify_module(&module)?;
        crate::opt::optimize_module(&mut module, self.opt_level());
        self.reg()?.add(module)
    }

    /// Sets the optimization level of the modules added from now on
    /// (default [`OptLevel::None`], the fast path).
    pub fn set_opt_level(&self, level: OptLevel) {
        self.opt.store(level as u8, Ordering::Relaxed);
    }

    /// The optimization level of modules added from now on.
    pub fn opt_level(&self) -> OptLevel {
        match self.opt.load(Ordering::Relaxed) {
            x if x == OptLevel::Speed as u8 => OptLevel::Speed,
            _ => OptLevel::None,
        }
    }

    /// Finalizes whatever is Loaded (modules loaded by
    /// [`Engine::load_module`]) and everything it references.
    pub fn finalize(&self) -> Result<()> {
        self.reg()?.finalize_from(&[])
    }

    /// Compiles, loads and finalizes `module` and every Added module it
    /// reaches through its externs.
    pub fn finalize_module(&self, module: ModuleId) -> Result<()> {
        self.reg()?.finalize_from(&[module])
    }

    /// Compiles and loads `module` (and what it reaches) without
    /// finalizing, so that [`Engine::map_section_address`] can move its
    /// sections before [`Engine::finalize`].
    pub fn load_module(&self, module: ModuleId) -> Result<()> {
        self.reg()?.load(&[module]).map(|_| ())
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
        Ok(self.reg()?.section_address(module, kind))
    }

    /// Removes a module; refused while a finalized module references it or
    /// a call runs in it. Its memory is reused.
    pub fn remove_module(&self, module: ModuleId) -> Result<()> {
        self.reg()?.remove(module)
    }

    pub fn module_state(&self, module: ModuleId) -> Result<Option<ModuleState>> {
        Ok(self.reg()?.state(module))
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
        if let Some(ex) = &self.in_process {
            ex.set_trap_handler(handler);
        }
    }

    /// Convenience for [`Engine::set_trap_handler`] with a closure.
    pub fn on_trap(&self, f: impl Fn(TrapCode) + Send + Sync + 'static) {
        self.set_trap_handler(Some(Arc::new(f)));
    }

    /// Counters of the registry.
    pub fn stats(&self) -> Result<RegistryStats> {
        Ok(self.reg()?.stats())
    }

    /// Address-space use of the engine's memory manager.
    pub fn memory_stats(&self) -> Result<crate::memory::MemoryStats> {
        Ok(self.reg()?.memory().stats())
    }

    /// The address of exported function `name`, finalizing on demand, and
    /// its signature.
    pub fn function_address(&self, name: &str) -> Result<(u64, Signature)> {
        let (a, s, _) = self.reg()?.function(name)?;
        Ok((a, s))
    }

    /// The address of exported symbol `name` (function or data),
    /// finalizing on demand.
    pub fn symbol_address(&self, name: &str) -> Result<u64> {
        self.reg()?.symbol_address(name)
    }

    /// A typed pointer to exported function `name`, finalizing on demand.
    /// The signature of `F` is checked against the IR.
    ///
    /// # Safety
    /// The pointer is valid only while the function's module stays
    /// finalized (not removed) and the engine lives; calling it after that
    /// is undefined behaviour. A trap in it goes to the trap handler, which
    /// does not return. The engine must run in-process.
    pub unsafe fn get_function<F: NativeFn>(&self, name: &str) -> Result<F> {
        if self.in_process.is_none() {
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
    /// through a trampoline generated once per signature. Works for any
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
        let (addr, sig, pin) = self.reg()?.function(name)?;
        check_args(name, &sig, args)?;
        // SAFETY: `addr` is a finalized function of `sig`; `pin` keeps its
        // module (and, through the referrer rule, everything it references)
        // from being removed until the call returns.
        let r = unsafe { self.executor.call(addr, &sig, args) };
        drop(pin);
        r
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
