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
//!   ([`crate::trampoline`]), on this thread's JIT stack ([`stack`]), and
//!   traps inside [`Executor::call`] come back as [`Error::Trap`] — a stack
//!   overflow included ([`signals`]).
//! - [`process::ProcessExecutor`]: code runs in a child process (`kiln`
//!   itself, started as an executor) that maps what it is sent and calls
//!   it; a crash there is [`Error::ExecutorDied`], never this process's.
//! - The AArch64 emulator of feature `emulate` (`emulator::EmulatorExecutor`).
//!
//! The trait is deliberately narrow: write bytes at an address, protect,
//! release, call with [`Val`]s, look up host symbols (the engine's trap
//! handler, [`crate::isa::TRAP_HANDLER`], and the interrupt flag,
//! [`crate::interrupt::INTERRUPT_FLAG`], included), and interrupt.

#[cfg(feature = "emulate")]
pub mod emulator;
pub mod process;
pub mod signals;
pub mod stack;

#[cfg(feature = "emulate")]
pub use emulator::EmulatorExecutor;
pub use process::ProcessExecutor;

use crate::error::{Error, Result};
use crate::interrupt::{InterruptFlag, INTERRUPT_FLAG};
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

    /// Asks the running call (or the next one) to stop with the trap
    /// `interrupted`: sets the flag [`crate::interrupt::INTERRUPT_FLAG`]
    /// resolves to. Must return at once; callable from any thread. The
    /// default does nothing (an executor without a flag).
    fn interrupt(&self) {}
}

/// The default executor: code runs in this process where the memory
/// manager put it.
pub struct InProcessExecutor {
    stubs: Trampolines,
    interrupt: InterruptFlag,
}

impl InProcessExecutor {
    /// An executor whose compiled-code traps outside [`Executor::call`] go
    /// to `handler` (the default handler prints `trap: REASON` and aborts
    /// when `None`).
    pub fn new(handler: Option<TrapHandler>) -> Result<Self> {
        Ok(InProcessExecutor {
            stubs: Trampolines::new(handler)?,
            interrupt: InterruptFlag::new(),
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

    fn finalize_sections(&self, sections: &[TargetSection]) -> Result<()> {
        // The memory manager's finalize already protected these pages; the
        // fault handler learns where compiled code now is.
        for s in sections.iter().filter(|s| s.kind == SectionKind::Text) {
            signals::register_code(s.address, s.len);
        }
        Ok(())
    }

    fn release_section(&self, section: TargetSection) -> Result<()> {
        if section.kind == SectionKind::Text {
            signals::unregister_code(section.address, section.len);
        }
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
        let unwind = self.stubs.unwind_stub();
        self.interrupt.run(|| {
            stack::run_on_jit_stack(unwind, || {
                // SAFETY: forwarded contract of `Executor::call`.
                unsafe { self.stubs.call(address, sig, args) }
            })
        })
    }

    fn host_symbol(&self, name: &str) -> Option<u64> {
        if name == crate::isa::TRAP_HANDLER {
            return self.stubs.trap_entry();
        }
        if name == INTERRUPT_FLAG {
            return Some(self.interrupt.address());
        }
        crate::symbols::dlsym_default(name)
    }

    fn interrupt(&self) {
        self.interrupt.request();
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
