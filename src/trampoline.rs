//! Native calls of any signature, and the trap path of in-process code.
//!
//! **The trampoline.** [`Trampolines::call`] calls a compiled function of
//! any [`Signature`] with [`Val`] arguments through one small JIT-generated
//! function shared by every signature:
//! `extern "C" fn(target, args: *const CallArgs, ret: *mut [u64; 2], frame: *mut u64) -> u32`.
//! The Rust side classifies the arguments the way the C ABI does (on
//! x86-64 System V: integers to the six integer registers, floats to the
//! eight `xmm` registers, the rest to the stack in order) into a
//! [`CallArgs`]; the trampoline saves the callee-saved registers, records
//! its stack pointer in `*frame`, loads every argument register and the
//! stack arguments, calls `target`, stores both return registers and
//! returns 0. Since nothing in it depends on the signature, an engine
//! generates it once: distinct signatures cost no code memory at all.
//!
//! **Traps.** Compiled code calls [`crate::isa::TRAP_HANDLER`] with the trap
//! code in `edi`; that symbol resolves to a per-executor stub that adds the
//! executor's [`TrapState`], the trap site's return address and frame
//! pointer, and enters `trap_entry`. If the current
//! thread is inside [`Trampolines::call`] (a thread-local holds the
//! innermost call's frame), `trap_entry` records the chain of return
//! addresses up to that call ([`crate::debug::backtrace`]; the call
//! returns them in [`crate::Trap::pcs`]) and jumps to a shared *unwind* stub
//! that restores the trampoline's stack pointer and callee-saved registers
//! and returns `1 + code` from the trampoline: the call returns
//! `Err(Error::Trap)`. This skips only JIT frames (which own nothing) and
//! `trap_entry`'s own frame (which holds nothing with a destructor at that
//! point). Otherwise (code called through a typed pointer) the embedder's
//! handler runs; it must not return, and if it does, or if there is none,
//! the process aborts after printing `trap: REASON` (the default).
//!
//! Caveat, documented on [`crate::engine::Engine::call`]: a trap in code
//! called through a typed pointer *from a host function that was itself
//! called from [`Trampolines::call`]* unwinds to that outer call, skipping
//! the host function's Rust frames without running their destructors.
//!
//! The trampoline and the two stubs live in this executor's own small
//! [`crate::memory::MemoryManager`] (W^X like all code; the three share one
//! page) and are freed with it.

use crate::error::{Error, Result, Trap, TrapCode};
use crate::ir::Signature;
use crate::value::Val;
use std::cell::Cell;
use std::sync::{Arc, RwLock};

/// What the embedder does with a trap outside [`Trampolines::call`]. It
/// must not return (exit the process, or abort); if it does, the process
/// aborts.
pub type TrapHandler = Arc<dyn Fn(TrapCode) + Send + Sync>;

/// State reachable from the per-executor trap stub.
pub struct TrapState {
    handler: RwLock<Option<TrapHandler>>,
    /// Address of the unwind stub (0: none, calls cannot catch traps).
    unwind: u64,
}

thread_local! {
    /// The frame slot of the innermost [`Trampolines::call`] on this thread
    /// (null outside any). Const-initialised, no destructor.
    static CALL_FRAME: Cell<*mut u64> = const { Cell::new(std::ptr::null_mut()) };
    /// The return addresses captured by the last trap caught on this
    /// thread, until its [`Trampolines::call`] takes them.
    static TRAP_PCS: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
}

/// Whether this thread is inside a [`Trampolines::call`] (so a trap, or a
/// failed lazy compile, unwinds to it).
pub fn in_call() -> bool {
    CALL_FRAME.with(|c| !c.get().is_null())
}

/// The frame slot of the innermost [`Trampolines::call`] running on this
/// thread (null outside any): its first word is the trampoline's saved
/// stack pointer, what the unwind stub takes. Read by the stack-overflow
/// handler ([`crate::executor::signals`]); signal-safe (a const-initialised
/// thread-local without destructor).
pub(crate) fn innermost_call_frame() -> *mut u64 {
    CALL_FRAME.with(|c| c.get())
}

/// Hands the code addresses of a trap caught outside the trap stub (a
/// stack overflow, [`crate::executor::signals`]) to the call it unwinds to.
pub(crate) fn set_trap_pcs(pcs: Vec<u64>) {
    TRAP_PCS.with(|c| c.set(pcs));
}

/// Where compiled code's trap stub lands: `code` in the first argument,
/// the executor's [`TrapState`] in the second, the trap site's return
/// address and frame pointer in the third and fourth.
extern "C" fn trap_entry(code: u32, state: *const TrapState, ret: u64, fp: u64) {
    let frame = CALL_FRAME.with(|c| c.get());
    // SAFETY: `state` was baked into the stub from an `Arc<TrapState>` that
    // the executor (and so the stub) keeps alive.
    let state = unsafe { &*state };
    if !frame.is_null() && state.unwind != 0 {
        let here = &code as *const u32 as u64;
        // SAFETY: `frame` is the live frame slot of the innermost call
        // (see below); it holds that trampoline's stack pointer, above
        // every frame of compiled code it called, and everything between
        // this frame and it is this thread's live stack.
        let pcs = unsafe { crate::debug::backtrace::walk_frame_chain(ret, fp, here, *frame) };
        TRAP_PCS.with(|c| c.set(pcs));
        // SAFETY: `frame` points at the live `frame` slot of the innermost
        // `Trampolines::call` on this thread, which the trampoline filled
        // with its stack pointer before calling compiled code; the unwind
        // stub restores exactly the registers that trampoline saved. Nothing
        // with a destructor is live in this frame.
        unsafe {
            let saved_sp = *frame;
            let unwind: extern "C" fn(u64, u32) -> ! = std::mem::transmute(state.unwind as usize);
            unwind(saved_sp, code)
        }
    }
    let trap = TrapCode::from_code(code).unwrap_or(TrapCode::Unreachable);
    let handler = state.handler.read().ok().and_then(|h| h.clone());
    if let Some(h) = handler {
        h(trap);
    } else {
        // SAFETY: fflush(NULL) flushes every C stdio stream; always valid.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        eprintln!("trap: {}", trap.reason());
    }
    std::process::abort()
}

/// The arguments of one call, classified for the trampoline (see the
/// module docs). Registers a signature does not use hold zeros.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CallArgs {
    /// The integer argument registers, in ABI order.
    pub ints: [u64; INT_ARG_REGS],
    /// The floating-point argument registers' low 64 bits, in ABI order.
    pub floats: [u64; FLOAT_ARG_REGS],
    /// How many 8-byte stack arguments `stack` points at.
    pub stack_len: u64,
    /// The stack arguments, first (lowest address) first.
    pub stack: *const u64,
}

/// Integer argument registers of the host's C ABI.
pub const INT_ARG_REGS: usize = 6;
/// Floating-point argument registers of the host's C ABI.
pub const FLOAT_ARG_REGS: usize = 8;

impl CallArgs {
    /// Classifies `args` into registers and `stack` (cleared first), as the
    /// C ABI passes them.
    fn classify(args: &[Val], stack: &mut smallvec::SmallVec<[u64; 8]>) -> CallArgs {
        let mut out = CallArgs::default();
        let (mut ints, mut floats) = (0, 0);
        stack.clear();
        for a in args {
            let bits = a.to_bits();
            if a.ty().is_int() && ints < INT_ARG_REGS {
                out.ints[ints] = bits;
                ints += 1;
            } else if a.ty().is_float() && floats < FLOAT_ARG_REGS {
                out.floats[floats] = bits;
                floats += 1;
            } else {
                stack.push(bits);
            }
        }
        out.stack_len = stack.len() as u64;
        out.stack = stack.as_ptr();
        out
    }
}

type TrampolineFn =
    unsafe extern "C" fn(*const u8, *const CallArgs, *mut [u64; 2], *mut u64) -> u32;

/// The call trampoline, the trap stub and the unwind stub of one executor.
pub struct Trampolines {
    state: Arc<TrapState>,
    trap_stub: Option<u64>,
    /// The call trampoline's address (0: no native calls on this host).
    trampoline: u64,
    /// The trampoline's CFI, registered with the system unwinder and (as
    /// `kiln_call_trampoline`) with the GDB JIT interface, so that
    /// unwinders and debuggers walk from compiled code through it into the
    /// caller ([`crate::debug`]); dropped (deregistered) before the code.
    _frames: Option<(
        crate::debug::unwind::FrameRegistration,
        crate::debug::gdb::GdbRegistration,
    )>,
    /// Keeps the stubs' memory (one page) until the executor goes.
    _code: Code,
}

/// The stubs' sections and their manager. Fields drop in order: the
/// section handles go first, so that the manager finds its reservation
/// unreferenced and can pool it for the next executor, zeroing the stubs'
/// page then instead of giving the page back and faulting it in again
/// (`memory/pool.rs`).
struct Code {
    _sections: Vec<crate::memory::FinalizedSection>,
    _mm: crate::memory::MemoryManager,
}

/// Copies `code` into fresh text of `mm`, finalized (R+X).
fn install(
    mm: &mut crate::memory::MemoryManager,
    code: &[u8],
) -> Result<crate::memory::FinalizedSection> {
    use crate::memory::SectionKind;
    let mut batch = mm.begin_batch();
    let r = match mm.allocate(&mut batch, SectionKind::Text, code.len(), 16) {
        Ok(r) => r,
        Err(e) => {
            mm.discard(batch)?;
            return Err(e);
        }
    };
    match batch.bytes_mut(r) {
        Some(b) => b.copy_from_slice(code),
        None => {
            mm.discard(batch)?;
            return Err(Error::Runtime("trampoline section vanished".into()));
        }
    }
    let mut fin = mm.finalize(batch)?;
    fin.take(r)
        .ok_or_else(|| Error::Runtime("trampoline section vanished".into()))
}

impl Trampolines {
    /// The stubs of a new executor whose traps outside [`Self::call`] go to
    /// `handler`.
    pub fn new(handler: Option<TrapHandler>) -> Result<Self> {
        let mut mm = crate::memory::MemoryManager::new(crate::memory::MemoryConfig {
            reservation_size: 1 << 20,
            max_reservations: 1,
            ..Default::default()
        })?;
        // Best effort (the first install tries again): takes a pooled
        // reservation of a dropped executor if there is one, with the
        // stubs' page already there.
        let _ = mm.prepare();
        let mut sections = Vec::new();
        let mut put =
            |mm: &mut crate::memory::MemoryManager, code: Option<Vec<u8>>| -> Result<u64> {
                let Some(code) = code else {
                    return Ok(0);
                };
                let s = install(mm, &code)?;
                let a = s.address() as u64;
                sections.push(s);
                Ok(a)
            };
        let unwind = put(&mut mm, native::unwind_stub())?;
        let trampoline_code = native::trampoline().ok();
        let trampoline = put(&mut mm, trampoline_code.clone())?;
        let frames = match (&trampoline_code, crate::debug::unwind::UnwindIsa::host()) {
            (Some(code), Some(isa)) if trampoline != 0 => {
                Some(crate::debug::register_trampoline(isa, trampoline, code))
            }
            _ => None,
        };
        let state = Arc::new(TrapState {
            handler: RwLock::new(handler),
            unwind,
        });
        let trap_stub = put(
            &mut mm,
            native::trap_stub(Arc::as_ptr(&state) as u64, trap_entry as *const () as u64),
        )?;
        Ok(Trampolines {
            state,
            trap_stub: (trap_stub != 0).then_some(trap_stub),
            trampoline,
            _frames: frames,
            _code: Code {
                _sections: sections,
                _mm: mm,
            },
        })
    }

    pub fn set_handler(&self, handler: Option<TrapHandler>) {
        if let Ok(mut h) = self.state.handler.write() {
            *h = handler;
        }
    }

    /// The address compiled code calls on a trap.
    pub fn trap_entry(&self) -> Option<u64> {
        self.trap_stub
    }

    /// The unwind stub, `fn(saved_sp, code) -> !` (0: none on this host):
    /// makes the trampoline whose frame `saved_sp` is return trap `code`.
    pub fn unwind_stub(&self) -> u64 {
        self.state.unwind
    }

    /// Number of call trampolines this executor holds: one for every
    /// signature (0 where calls are not native).
    pub fn count(&self) -> usize {
        usize::from(self.trampoline != 0)
    }

    /// Calls `address` (a function of signature `sig`) with `args`, which
    /// must match `sig`. A trap returns `Err(Error::Trap)`.
    ///
    /// # Safety
    /// `address` must be a finalized function of signature `sig` that stays
    /// mapped for the whole call.
    pub unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>> {
        if args.len() != sig.params.len() || args.iter().zip(&sig.params).any(|(a, t)| a.ty() != *t)
        {
            return Err(Error::Argument(format!(
                "arguments do not match the signature {sig}"
            )));
        }
        if self.trampoline == 0 {
            // Says why: no backend for this host.
            native::trampoline()?;
            return Err(Error::Runtime("no call trampoline".into()));
        }
        let mut stack = smallvec::SmallVec::new();
        let call_args = CallArgs::classify(args, &mut stack);
        let mut ret = [0u64; 2];
        let mut frame: u64 = 0;
        let frame_ptr: *mut u64 = &mut frame;
        let prev = CALL_FRAME.with(|c| c.replace(frame_ptr));
        // SAFETY: `self.trampoline` is the finalized call trampoline (kept
        // mapped by `self._code`), which reads exactly a `CallArgs`, whose
        // `stack` points at `stack_len` slots in `stack` (alive until the
        // call returns); `ret` and `frame` outlive the call. The caller
        // guarantees `address` is a function of `sig`, and `call_args`
        // holds `args` where the C ABI expects a function of `sig` to find
        // them.
        let status = unsafe {
            let f: TrampolineFn = std::mem::transmute(self.trampoline as usize);
            f(address as *const u8, &call_args, &mut ret, frame_ptr)
        };
        CALL_FRAME.with(|c| c.set(prev));
        if status != 0 {
            let code = TrapCode::from_code(status - 1).unwrap_or(TrapCode::Unreachable);
            return Err(Error::Trap(Trap {
                code,
                backtrace: Vec::new(),
                pcs: TRAP_PCS.with(|c| c.take()),
            }));
        }
        Ok(sig
            .ret
            .map(|ty| Val::from_bits(ty, if ty.is_int() { ret[0] } else { ret[1] })))
    }
}

#[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
#[path = "../isa/x86_64/trampoline.rs"]
mod native;

#[cfg(not(all(feature = "x86_64", target_arch = "x86_64")))]
mod native {
    //! No native code on this host or build: calls are an error.
    use crate::error::{Error, Result};

    pub fn trampoline() -> Result<Vec<u8>> {
        Err(Error::Runtime(
            "cannot call compiled code natively: kiln was built without a backend for this host"
                .into(),
        ))
    }
    pub fn unwind_stub() -> Option<Vec<u8>> {
        None
    }
    pub fn trap_stub(_state: u64, _entry: u64) -> Option<Vec<u8>> {
        None
    }
}
