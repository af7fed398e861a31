//! Native calls of any signature, and the trap path of in-process code.
//!
//! **Trampolines.** [`Trampolines::call`] calls a compiled function of any
//! [`Signature`] with [`Val`] arguments through a small JIT-generated
//! function per signature (generated once, cached):
//! `extern "C" fn(target, args: *const u64, ret: *mut u64, frame: *mut u64) -> u32`.
//! It saves the callee-saved registers, records its stack pointer in
//! `*frame`, loads each argument's bits into its System V place (integer
//! registers, `xmm` registers, then the stack in order), calls `target`,
//! stores `rax`/`xmm0` to `*ret` and returns 0.
//!
//! **Traps.** Compiled code calls [`crate::isa::TRAP_HANDLER`] with the trap
//! code in `edi`; that symbol resolves to a per-executor stub that adds the
//! executor's [`TrapState`] and enters [`trap_entry`]. If the current
//! thread is inside [`Trampolines::call`] (a thread-local holds the
//! innermost call's frame), `trap_entry` jumps to a shared *unwind* stub
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
//! Stubs and trampolines live in this executor's own small
//! [`MemoryManager`] (W^X like all code) and are never freed while it
//! lives.

use crate::error::{Error, Result, TrapCode};
use crate::ir::Signature;
use crate::value::Val;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

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
}

/// Whether this thread is inside a [`Trampolines::call`] (so a trap, or a
/// failed lazy compile, unwinds to it).
pub fn in_call() -> bool {
    CALL_FRAME.with(|c| !c.get().is_null())
}

/// Where compiled code's trap stub lands: `code` in the first argument,
/// the executor's [`TrapState`] in the second.
extern "C" fn trap_entry(code: u32, state: *const TrapState) {
    let frame = CALL_FRAME.with(|c| c.get());
    // SAFETY: `state` was baked into the stub from an `Arc<TrapState>` that
    // the executor (and so the stub) keeps alive.
    let state = unsafe { &*state };
    if !frame.is_null() && state.unwind != 0 {
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

/// One generated trampoline.
struct Trampoline {
    address: u64,
    /// Keeps the code mapped.
    _code: crate::memory::FinalizedSection,
}

type TrampolineFn = unsafe extern "C" fn(*const u8, *const u64, *mut u64, *mut u64) -> u32;

/// The per-signature trampolines, the trap stub and the unwind stub of one
/// executor.
pub struct Trampolines {
    state: Arc<TrapState>,
    trap_stub: Option<u64>,
    inner: Mutex<Inner>,
}

struct Inner {
    mm: crate::memory::MemoryManager,
    by_sig: HashMap<Signature, Arc<Trampoline>>,
    /// Stubs kept mapped.
    _stubs: Vec<crate::memory::FinalizedSection>,
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
    pub fn new(handler: Option<TrapHandler>) -> Result<Self> {
        let mut mm = crate::memory::MemoryManager::new(crate::memory::MemoryConfig {
            reservation_size: 1 << 24,
            max_reservations: 4,
        })?;
        let mut stubs = Vec::new();
        let unwind = match native::unwind_stub() {
            Some(code) => {
                let s = install(&mut mm, &code)?;
                let a = s.address() as u64;
                stubs.push(s);
                a
            }
            None => 0,
        };
        let state = Arc::new(TrapState {
            handler: RwLock::new(handler),
            unwind,
        });
        let trap_stub =
            match native::trap_stub(Arc::as_ptr(&state) as u64, trap_entry as *const () as u64) {
                Some(code) => {
                    let s = install(&mut mm, &code)?;
                    let a = s.address() as u64;
                    stubs.push(s);
                    Some(a)
                }
                None => None,
            };
        Ok(Trampolines {
            state,
            trap_stub,
            inner: Mutex::new(Inner {
                mm,
                by_sig: HashMap::new(),
                _stubs: stubs,
            }),
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

    /// Number of trampolines generated so far.
    pub fn count(&self) -> usize {
        self.inner.lock().map(|i| i.by_sig.len()).unwrap_or(0)
    }

    fn trampoline(&self, sig: &Signature) -> Result<Arc<Trampoline>> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Error::Runtime("trampoline cache poisoned".into()))?;
        if let Some(t) = inner.by_sig.get(sig) {
            return Ok(t.clone());
        }
        let code = native::trampoline(sig)?;
        let section = install(&mut inner.mm, &code)?;
        let t = Arc::new(Trampoline {
            address: section.address() as u64,
            _code: section,
        });
        inner.by_sig.insert(sig.clone(), t.clone());
        Ok(t)
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
        let t = self.trampoline(sig)?;
        let bits: smallvec::SmallVec<[u64; 8]> = args.iter().map(|a| a.to_bits()).collect();
        let mut ret: u64 = 0;
        let mut frame: u64 = 0;
        let frame_ptr: *mut u64 = &mut frame;
        let prev = CALL_FRAME.with(|c| c.replace(frame_ptr));
        // SAFETY: `t.address` is a finalized trampoline generated for
        // exactly `sig` (kept mapped by `t`); `bits` holds one 8-byte slot
        // per parameter; `ret` and `frame` outlive the call. The caller
        // guarantees `address` is a function of `sig`.
        let status = unsafe {
            let f: TrampolineFn = std::mem::transmute(t.address as usize);
            f(address as *const u8, bits.as_ptr(), &mut ret, frame_ptr)
        };
        CALL_FRAME.with(|c| c.set(prev));
        if status != 0 {
            let code = TrapCode::from_code(status - 1).unwrap_or(TrapCode::Unreachable);
            return Err(Error::Trap(code));
        }
        Ok(sig.ret.map(|ty| Val::from_bits(ty, ret)))
    }
}

#[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
#[path = "../isa/x86_64/trampoline.rs"]
mod native;

#[cfg(not(all(feature = "x86_64", target_arch = "x86_64")))]
mod native {
    //! No native code on this host or build: calls are an error.
    use crate::error::{Error, Result};
    use crate::ir::Signature;

    pub fn trampoline(sig: &Signature) -> Result<Vec<u8>> {
        Err(Error::Runtime(format!(
            "cannot call {sig} natively: kiln was built without a backend for this host"
        )))
    }
    pub fn unwind_stub() -> Option<Vec<u8>> {
        None
    }
    pub fn trap_stub(_state: u64, _entry: u64) -> Option<Vec<u8>> {
        None
    }
}
