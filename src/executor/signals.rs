//! The fault handler that turns a stack overflow in compiled code into the
//! trap `stack overflow`, and the table of compiled-code ranges it reads.
//!
//! [`install`] (done once, on the first call that switches to a JIT stack,
//! see [`super::stack`]) sets a `SIGSEGV` and `SIGBUS` handler that runs on
//! the thread's alternate signal stack (`SA_ONSTACK`; the thread got one
//! when its JIT stack was made). The handler recognizes a stack overflow
//! when all of these hold:
//!
//! - the thread is inside a call on its JIT stack (see [`super::stack`]);
//! - the faulting address is in that stack's guard region;
//! - the faulting instruction is compiled code: its address is in a range
//!   registered by [`register_code`] (the in-process executor registers
//!   every text section it finalizes and unregisters it on release).
//!
//! It then resumes the thread at the unwind stub of [`crate::trampoline`]
//! with the innermost call's saved frame and the trap code, exactly as if
//! the code had called the trap handler: the trampoline returns the trap
//! and [`crate::Engine::call`] gives `Err(Trap(StackOverflow))`. Only JIT
//! frames (which own nothing) are discarded, and the thread, its JIT stack
//! and the engine stay usable.
//!
//! Every other fault is passed on to the handler that was installed before
//! (the embedder's, or Rust's own stack-overflow reporter), with its own
//! conventions (`SA_SIGINFO` or not); if there was none, the default action
//! is restored and the signal raised again, so the process dies of it as
//! it would have without kiln. A fault in a host function (C or Rust code
//! called from compiled code) is never unwound: that code may hold locks.
//!
//! The handler only reads plain thread-locals and atomics and takes no
//! lock; it allocates only the backtrace of a stack overflow, when the
//! thread is known to be in compiled code (so not inside the allocator).

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Code is tracked in chunks of this many bytes (a chunk is registered
/// while any text section overlaps it).
const CHUNK_SHIFT: u32 = 16;

/// Slots of the open-addressing table of chunks (1 GiB of code at most;
/// beyond that, overflows in further code are not recognized).
const TABLE_BITS: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;

/// The chunk table: key = chunk number + 1; readable from the handler.
static CHUNKS: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(EMPTY) }; TABLE_SIZE];

/// How many registered ranges overlap each chunk (writers only).
static COUNTS: Mutex<Option<crate::ir::hash::FxHashMap<u64, usize>>> = Mutex::new(None);

fn slot_of(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
}

fn chunks(start: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = start >> CHUNK_SHIFT;
    let last = start.saturating_add(len.max(1) - 1) >> CHUNK_SHIFT;
    (first..=last).map(|c| c + 1)
}

/// Marks `start .. start + len` as compiled code.
pub fn register_code(start: u64, len: u64) {
    let Ok(mut counts) = COUNTS.lock() else {
        return;
    };
    let counts = counts.get_or_insert_with(Default::default);
    for key in chunks(start, len) {
        let n = counts.entry(key).or_insert(0);
        *n += 1;
        if *n == 1 && !insert(key) {
            // Table full: this chunk is not recognized (documented above).
            counts.remove(&key);
        }
    }
}

/// Undoes one [`register_code`] of the same range.
pub fn unregister_code(start: u64, len: u64) {
    let Ok(mut counts) = COUNTS.lock() else {
        return;
    };
    let Some(counts) = counts.as_mut() else {
        return;
    };
    for key in chunks(start, len) {
        let Some(n) = counts.get_mut(&key) else {
            continue;
        };
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
            remove(key);
        }
    }
}

/// Puts `key` (known to be absent) in the first free slot of its chain.
fn insert(key: u64) -> bool {
    let start = slot_of(key);
    for i in 0..TABLE_SIZE {
        let slot = &CHUNKS[(start + i) % TABLE_SIZE];
        let v = slot.load(Ordering::Relaxed);
        if v == EMPTY || v == TOMBSTONE {
            slot.store(key, Ordering::Release);
            return true;
        }
    }
    false
}

fn remove(key: u64) {
    let start = slot_of(key);
    for i in 0..TABLE_SIZE {
        let slot = &CHUNKS[(start + i) % TABLE_SIZE];
        match slot.load(Ordering::Relaxed) {
            EMPTY => return,
            v if v == key => {
                slot.store(TOMBSTONE, Ordering::Release);
                return;
            }
            _ => {}
        }
    }
}

/// Whether `pc` is in registered compiled code. Signal-safe.
pub fn is_code(pc: u64) -> bool {
    let key = (pc >> CHUNK_SHIFT) + 1;
    let start = slot_of(key);
    for i in 0..TABLE_SIZE {
        match CHUNKS[(start + i) % TABLE_SIZE].load(Ordering::Acquire) {
            EMPTY => return false,
            v if v == key => return true,
            _ => {}
        }
    }
    false
}

/// The signals handled, and the handler each had before (its address and
/// `sa_flags`), kept in atomics so that the handler reads them lock-free.
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];
static PREV_HANDLER: [AtomicUsize; 2] = [const { AtomicUsize::new(libc::SIG_DFL) }; 2];
static PREV_FLAGS: [AtomicI32; 2] = [const { AtomicI32::new(0) }; 2];

/// Installs the handler once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !native::SUPPORTED {
            return;
        }
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: sigaction with a zeroed, then filled, action struct;
            // `handler` has the SA_SIGINFO signature. The previous action is
            // read into a local and published before ours is in place.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                PREV_HANDLER[i].store(old.sa_sigaction, Ordering::SeqCst);
                PREV_FLAGS[i].store(old.sa_flags, Ordering::SeqCst);
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext for an
    // SA_SIGINFO handler.
    if unsafe { native::try_unwind(info, ctx) } {
        return;
    }
    chain(sig, info, ctx);
}

/// Passes the signal to the handler installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
        return;
    };
    let prev = PREV_HANDLER[i].load(Ordering::SeqCst);
    let flags = PREV_FLAGS[i].load(Ordering::SeqCst);
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        // SAFETY: restoring the default action and raising the signal
        // again: it is blocked while this handler runs, so it is delivered
        // (and ends the process) as soon as the handler returns; for a
        // fault, the instruction would fault again anyway.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            libc::raise(sig);
        }
        return;
    }
    // SAFETY: `prev` is the handler the process had installed, called with
    // the arguments its flags say it takes.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev);
            f(sig);
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod native {
    use crate::error::TrapCode;

    pub const SUPPORTED: bool = true;

    /// If the fault is a stack overflow of compiled code (module docs),
    /// redirects the thread to the unwind stub and returns `true`.
    ///
    /// # Safety
    /// `info` and `ctx` must be what the kernel passed to the handler.
    pub unsafe fn try_unwind(info: *mut libc::siginfo_t, ctx: *mut libc::c_void) -> bool {
        let a = super::super::stack::active();
        if a.depth == 0 || a.unwind == 0 || info.is_null() || ctx.is_null() {
            return false;
        }
        // SAFETY: per the contract, a valid siginfo of a fault.
        let addr = unsafe { (*info).si_addr() } as u64;
        if !(a.guard_lo..a.guard_hi).contains(&addr) {
            return false;
        }
        // SAFETY: per the contract, a valid ucontext.
        let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
        let regs = &mut uc.uc_mcontext.gregs;
        let pc = regs[libc::REG_RIP as usize] as u64;
        if !super::is_code(pc) {
            return false;
        }
        let frame = crate::trampoline::innermost_call_frame();
        if frame.is_null() {
            return false;
        }
        // SAFETY: `frame` is the live frame slot of the innermost
        // trampoline call of this thread (set before compiled code runs).
        let saved_sp = unsafe { *frame };
        // The backtrace: the faulting instruction (the symbolizer looks up
        // `pc - 1`, as for return addresses), then the frame-pointer chain
        // up to the trampoline's frame. This allocates: safe here because
        // the thread was running compiled code, not the allocator.
        let fp = regs[libc::REG_RBP as usize] as u64;
        // The frame pointer may equal the stack pointer (a fault right
        // after the prologue's `mov rbp, rsp`): the walk takes frames
        // strictly above its lower bound, so the bound is one below.
        let low = (regs[libc::REG_RSP as usize] as u64).max(a.guard_hi) - 1;
        // SAFETY: the walk reads only at frame pointers strictly above
        // `low`, below `saved_sp`: this thread's JIT stack above its guard,
        // up to the trampoline's frame, all mapped and readable.
        let pcs = unsafe { crate::debug::backtrace::walk_frame_chain(pc + 1, fp, low, saved_sp) };
        crate::trampoline::set_trap_pcs(pcs);
        regs[libc::REG_RIP as usize] = a.unwind as i64;
        regs[libc::REG_RDI as usize] = saved_sp as i64;
        regs[libc::REG_RSI as usize] = i64::from(TrapCode::StackOverflow.code());
        true
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod native {
    pub const SUPPORTED: bool = false;

    /// # Safety
    /// Nothing to uphold: never unwinds here.
    pub unsafe fn try_unwind(_: *mut libc::siginfo_t, _: *mut libc::c_void) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges_are_counted_per_chunk() {
        let base = 0x7a5a_0000_0000u64;
        assert!(!is_code(base + 10));
        register_code(base, 100);
        register_code(base + 200, 100);
        assert!(is_code(base + 10) && is_code(base + 0xffff));
        assert!(!is_code(base + 0x1_0000));
        unregister_code(base, 100);
        assert!(is_code(base + 10), "the second range keeps the chunk");
        unregister_code(base + 200, 100);
        assert!(!is_code(base + 10));
        // A range over a chunk boundary registers both.
        register_code(base + 0xfff0, 0x20);
        assert!(is_code(base + 0x1_0005));
        unregister_code(base + 0xfff0, 0x20);
        assert!(!is_code(base + 0x1_0005));
        // Many chunks come and go without filling the table.
        for round in 0..3u64 {
            for i in 0..(TABLE_SIZE as u64 / 2) {
                register_code(base + (i << CHUNK_SHIFT), 8);
            }
            assert!(is_code(base + (77 << CHUNK_SHIFT)), "round {round}");
            for i in 0..(TABLE_SIZE as u64 / 2) {
                unregister_code(base + (i << CHUNK_SHIFT), 8);
            }
            assert!(!is_code(base + (77 << CHUNK_SHIFT)));
        }
    }
}
