//! Executors: where finalized bytes finally live and how a call is made
//! (modelled on LLVM ORC's `ExecutorProcessControl`).
//!
//! The registry always lays sections out and relocates them in local memory
//! from the memory manager, computing every relocation for the section's
//! *target* address (see [`crate::registry::Registry::map_section_address`]).
//! It then hands the relocated bytes to the [`Executor`], which places them
//! at the target address, protects them, and later calls into them.
//!
//! - [`InProcessExecutor`] (the default): target address = local address,
//!   so writing is a check that nothing was remapped; calls are native,
//!   through one JIT-generated call trampoline for every signature
//!   ([`crate::trampoline`]), and traps inside [`Executor::call`] come back
//!   as [`Error::Trap`].
//! - A remote or emulated executor owns the target memory (the AArch64
//!   emulator of feature `emulate` implements this trait).
//!
//! The trait is deliberately narrow: write bytes at an address, protect,
//! release, call with [`Val`]s, and look up host symbols (the engine's
//! trap handler, [`crate::isa::TRAP_HANDLER`], included).

use crate::error::{Error, Result};
use crate::ir::Signature;
use crate::memory::SectionKind;
use crate::trampoline::{Trampolines, TrapHandler};
use crate::value::Val;

/// One section as the executor sees it: kind, target address, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetSection {
    pub kind: SectionKind,
    pub address: u64,
    pub len: u64,
}

/// Where code runs. Methods take `&self` (implementations use interior
/// mutability) so that calls can run concurrently without the registry's
/// lock.
pub trait Executor: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Chooses the target address of a new section of `len` bytes aligned
    /// to `align`, reserving it in the executor's memory; `None` (the
    /// default) runs the section where it is loaded locally, unless the
    /// embedder maps it elsewhere ([`crate::engine::Engine::map_section_address`]).
    fn allocate_section(&self, kind: SectionKind, len: u64, align: u64) -> Result<Option<u64>> {
        let _ = (kind, len, align);
        Ok(None)
    }

    /// Places `bytes` (already relocated for `section.address`) at
    /// `section.address`.
    fn write_section(&self, section: TargetSection, bytes: &[u8]) -> Result<()>;

    /// Makes the sections just written final: text executable and not
    /// writable, rodata read-only, data read-write.
    fn finalize_sections(&self, sections: &[TargetSection]) -> Result<()>;

    /// Gives back a section of a removed module.
    fn release_section(&self, section: TargetSection) -> Result<()> {
        let _ = section;
        Ok(())
    }

    /// Calls the function at `address` with `args` (already checked
    /// against `sig`). A trap is `Err(Error::Trap)`.
    ///
    /// # Safety
    /// `address` must be the entry of a finalized function of signature
    /// `sig`, whose module (and everything it references) stays finalized
    /// for the whole call.
    unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>>;

    /// The target address of host symbol `name` (after the embedder's own
    /// registrations, which the registry checks first), including
    /// [`crate::isa::TRAP_HANDLER`].
    fn host_symbol(&self, name: &str) -> Option<u64>;

    /// Stores `value` at `address`, an 8-byte indirection cell in a data
    /// section this executor runs (a lazy or redefined function's, see
    /// [`crate::lazy`]), so that code running there sees either the old or
    /// the new value, never a mix. The default writes it as an 8-byte data
    /// section.
    fn write_cell(&self, address: u64, value: u64) -> Result<()> {
        let section = TargetSection {
            kind: SectionKind::Data,
            address,
            len: 8,
        };
        self.write_section(section, &value.to_le_bytes())
    }

    /// The address code calls to compile a lazy function on its first call
    /// when it runs in this executor (with the context and the function's
    /// key as its two arguments), if this executor resolves such calls
    /// itself through [`Executor::call_resolving`]. `None` (the default):
    /// in process, the engine's own resolver is called directly; elsewhere,
    /// lazy modules are compiled when added.
    fn lazy_resolver(&self) -> Option<u64> {
        None
    }

    /// [`Executor::call`], resolving lazy functions on the way: when the
    /// code calls [`Executor::lazy_resolver`] with a key, `resolve(key)`
    /// compiles the function and returns where to continue. The default
    /// is [`Executor::call`] (in process, compiled code calls the resolver
    /// itself).
    ///
    /// # Safety
    /// As for [`Executor::call`].
    unsafe fn call_resolving(
        &self,
        address: u64,
        sig: &Signature,
        args: &[Val],
        resolve: &dyn Fn(u32) -> Result<u64>,
    ) -> Result<Option<Val>> {
        let _ = resolve;
        // SAFETY: forwarded contract.
        unsafe { self.call(address, sig, args) }
    }

    /// The signature of host symbol `name`, when the executor knows it
    /// (an emulator's built-in functions); the registry then link-checks
    /// `extern` declarations against it. `None` (the default) means
    /// unknown, as for symbols found by `dlsym`.
    fn host_signature(&self, name: &str) -> Option<Signature> {
        let _ = name;
        None
    }
}

/// The default executor: code runs in this process where the memory
/// manager put it.
pub struct InProcessExecutor {
    stubs: Trampolines,
}

impl InProcessExecutor {
    /// An executor whose compiled-code traps outside [`Executor::call`] go
    /// to `handler` (the default handler prints `trap: REASON` and aborts
    /// when `None`).
    pub fn new(handler: Option<TrapHandler>) -> Result<Self> {
        Ok(InProcessExecutor {
            stubs: Trampolines::new(handler)?,
        })
    }

    /// Replaces the trap handler for traps outside [`Executor::call`].
    pub fn set_trap_handler(&self, handler: Option<TrapHandler>) {
        self.stubs.set_handler(handler);
    }

    /// How many call trampolines this executor holds: one, shared by every
    /// signature (0 where calls are not native).
    pub fn trampoline_count(&self) -> usize {
        self.stubs.count()
    }
}

impl Executor for InProcessExecutor {
    fn name(&self) -> &str {
        "in-process"
    }

    fn write_section(&self, section: TargetSection, bytes: &[u8]) -> Result<()> {
        // The bytes already are where they run; a different target address
        // means the embedder remapped a section, which only makes sense for
        // an executor that owns other memory.
        if bytes.as_ptr() as u64 != section.address {
            return Err(Error::Argument(format!(
                "the in-process executor runs code where it was loaded ({:#x}), \
                 not at the remapped address {:#x}",
                bytes.as_ptr() as u64,
                section.address
            )));
        }
        Ok(())
    }

    fn finalize_sections(&self, _sections: &[TargetSection]) -> Result<()> {
        // The memory manager's finalize already protected these pages.
        Ok(())
    }

    fn write_cell(&self, address: u64, value: u64) -> Result<()> {
        if address == 0 || !address.is_multiple_of(8) {
            return Err(Error::Runtime(format!(
                "indirection cell at {address:#x} is not 8-byte aligned"
            )));
        }
        // SAFETY: the registry passes only the address of a cell in a data
        // section it allocated from its memory manager (RW, never
        // executable, mapped while the engine lives), 8-byte aligned
        // (checked). Code reads the cell with plain 8-byte loads, which an
        // aligned atomic store never tears.
        let cell = unsafe { std::sync::atomic::AtomicU64::from_ptr(address as *mut u64) };
        cell.store(value, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>> {
        // SAFETY: forwarded contract of `Executor::call`.
        unsafe { self.stubs.call(address, sig, args) }
    }

    fn host_symbol(&self, name: &str) -> Option<u64> {
        if name == crate::isa::TRAP_HANDLER {
            return self.stubs.trap_entry();
        }
        crate::symbols::dlsym_default(name)
    }
}

/// Checks `args` against `sig`: count and types.
pub fn check_args(name: &str, sig: &Signature, args: &[Val]) -> Result<()> {
    if args.len() != sig.params.len() {
        return Err(Error::Argument(format!(
            "@{name} takes {} argument(s), {} given",
            sig.params.len(),
            args.len()
        )));
    }
    for (i, (a, t)) in args.iter().zip(&sig.params).enumerate() {
        if a.ty() != *t {
            return Err(Error::Argument(format!(
                "argument {} of @{name} must be {t}, not {}",
                i + 1,
                a.ty()
            )));
        }
    }
    Ok(())
}

/// The AArch64 emulator ([`crate::emulate::EmulatedAarch64`]) as an
/// executor: sections are placed in its module arena, written through it,
/// and called in it. The emulator is not `Send` (Unicorn keeps `Rc`s), so
/// it lives on its own thread, created there and never moved; every method
/// sends it a job and waits for the answer. A program that calls `exit`
/// or `abort` in the emulator ends this process the same way, as natively
/// run code would.
#[cfg(feature = "emulate")]
pub struct EmulatorExecutor {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<EmuJob>>,
    /// Held for the whole of a call: a call paused for a lazy compile
    /// keeps its registers and stack in the machine until it resumes.
    calls: std::sync::Mutex<()>,
}

#[cfg(feature = "emulate")]
type EmuJob = Box<dyn FnOnce(&mut crate::emulate::EmulatedAarch64) + Send>;

#[cfg(feature = "emulate")]
impl EmulatorExecutor {
    /// Starts an emulator with `config` on its own thread.
    pub fn new(config: crate::emulate::EmulatorConfig) -> Result<Self> {
        use std::sync::mpsc;
        let (jobs, rx) = mpsc::channel::<EmuJob>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        std::thread::Builder::new()
            .name("kiln-emulator".into())
            .spawn(move || {
                let mut emu = match crate::emulate::EmulatedAarch64::new(config) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Ends when the executor (the only sender) is dropped.
                for job in rx {
                    job(&mut emu);
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the emulator thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Runtime("the emulator thread died".into()))??;
        Ok(EmulatorExecutor {
            jobs: std::sync::Mutex::new(jobs),
            calls: std::sync::Mutex::new(()),
        })
    }

    /// Runs `f` on the emulator's thread and returns its result.
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::emulate::EmulatedAarch64) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let dead = || Error::Runtime("the emulator thread died".into());
        self.jobs
            .lock()
            .map_err(|_| dead())?
            .send(Box::new(move |emu| {
                let _ = tx.send(f(emu));
            }))
            .map_err(|_| dead())?;
        rx.recv().map_err(|_| dead())
    }

    /// Reads `len` bytes of emulated memory at `addr` (for tests and tools).
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.run(move |emu| {
            let mut buf = vec![0; len];
            emu.read(addr, &mut buf).map(|()| buf)
        })?
    }
}

#[cfg(feature = "emulate")]
impl Executor for EmulatorExecutor {
    fn name(&self) -> &str {
        "aarch64-emulator"
    }

    fn allocate_section(&self, kind: SectionKind, len: u64, align: u64) -> Result<Option<u64>> {
        self.run(move |emu| {
            if align > emu.page_size() {
                return Err(Error::Argument(format!(
                    "emulator: section alignment {align} exceeds the page size"
                )));
            }
            emu.map_new(len, kind).map(Some)
        })?
    }

    fn write_section(&self, section: TargetSection, bytes: &[u8]) -> Result<()> {
        let bytes = bytes.to_vec();
        self.run(move |emu| emu.write(section.address, &bytes))?
    }

    fn finalize_sections(&self, _sections: &[TargetSection]) -> Result<()> {
        // `map_new` maps each section with its final protection; the
        // loader's writes go around it.
        Ok(())
    }

    fn release_section(&self, section: TargetSection) -> Result<()> {
        self.run(move |emu| emu.unmap(section.address, section.len))?
    }

    unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>> {
        let no_resolver = |_: u32| -> Result<u64> {
            Err(Error::Runtime(
                "a lazy function was called without a resolver".into(),
            ))
        };
        // SAFETY: forwarded contract.
        unsafe { self.call_resolving(address, sig, args, &no_resolver) }
    }

    fn lazy_resolver(&self) -> Option<u64> {
        Some(crate::emulate::layout::LAZY_RESOLVER)
    }

    unsafe fn call_resolving(
        &self,
        address: u64,
        sig: &Signature,
        args: &[Val],
        resolve: &dyn Fn(u32) -> Result<u64>,
    ) -> Result<Option<Val>> {
        use crate::emulate::Outcome;
        let _one_call = self
            .calls
            .lock()
            .map_err(|_| Error::Runtime("the emulator's call lock is poisoned".into()))?;
        let (args, ret) = (args.to_vec(), sig.ret);
        let mut outcome = self.run(move |emu| emu.call(address, &args, ret))??;
        loop {
            match outcome {
                Outcome::Lazy { key, resume } => {
                    // Compiling writes sections through this executor's
                    // jobs, which run while the call is paused.
                    let target = resolve(key)?;
                    outcome = self.run(move |emu| emu.resume(resume, target, ret))??;
                }
                Outcome::Returned(v) => return Ok(v),
                Outcome::Exit(code) => {
                    // SAFETY: fflush(NULL) is always valid.
                    unsafe { libc::fflush(std::ptr::null_mut()) };
                    std::process::exit(code)
                }
                Outcome::Abort => std::process::abort(),
            }
        }
    }

    fn host_symbol(&self, name: &str) -> Option<u64> {
        let name = name.to_string();
        self.run(move |emu| emu.host_address(&name)).ok()?
    }

    fn host_signature(&self, name: &str) -> Option<Signature> {
        let name = name.to_string();
        self.run(move |emu| emu.host_signature(&name)).ok()?
    }
}
