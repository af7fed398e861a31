//! The stack compiled code runs on: one *JIT stack* per thread, of a known
//! size, with a guard region below it, so that running out of stack is the
//! trap `stack overflow` (SPEC sections 5 and 7) and never a crash.
//!
//! Choice (issue 11): the in-process executor's `call` (and so
//! [`crate::Engine::call`]) switches from the caller's stack to this
//! thread's JIT stack for the call, rather than running on the thread's own
//! stack. Its bounds are then known exactly whatever thread calls (the main
//! thread's stack grows on demand and has no fixed guard; a spawned
//! thread's guard is one page), its size is the same in every thread and
//! engine, and the interpreter's alloca stack has the same size
//! ([`DEFAULT_JIT_STACK_SIZE`]), so a large `alloca` overflows in both
//! engines.
//!
//! Layout of one JIT stack (one anonymous mapping, created on a thread's
//! first call, reused by its later calls, unmapped when the thread ends):
//!
//! ```text
//! low                                                         high
//! | guard (GUARD_SIZE, PROT_NONE) | usable stack (size, RW) ...  |
//!                                  ^ a frame that runs off here faults
//! ```
//!
//! The backends probe every page of a frame larger than a page (x86-64
//! `sub_rsp_probed`, AArch64 `enter_frame`), and the distance between two
//! touches of the stack is never more than a page plus a small frame, far
//! below [`GUARD_SIZE`]: a fault lands in the guard, never beyond it. The
//! fault is turned into the trap by [`super::signals`].
//!
//! Nested calls (compiled code → host function → `Engine::call`) stay on
//! the JIT stack already in use. Code called through typed pointers
//! (`Engine::get_function`) runs on whatever stack its caller uses; an
//! overflow there is the caller's (Rust's message and abort).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Usable bytes of a JIT stack unless [`set_jit_stack_size`] says
/// otherwise: 8 MiB, the usual size of a main thread's stack.
pub const DEFAULT_JIT_STACK_SIZE: usize = 8 << 20;

/// Bytes of the guard region below each JIT stack.
pub const GUARD_SIZE: usize = 256 << 10;

/// Bytes of the alternate signal stack installed on threads that have none.
const ALT_STACK_SIZE: usize = 64 << 10;

static JIT_STACK_SIZE: AtomicUsize = AtomicUsize::new(DEFAULT_JIT_STACK_SIZE);

/// Sets the usable size of JIT stacks created from now on (rounded up to
/// whole pages, at least 64 KiB). Threads that already made a call keep
/// theirs.
pub fn set_jit_stack_size(bytes: usize) {
    JIT_STACK_SIZE.store(bytes.max(64 << 10), Ordering::Relaxed);
}

/// The usable size of JIT stacks created from now on.
pub fn jit_stack_size() -> usize {
    JIT_STACK_SIZE.load(Ordering::Relaxed)
}

/// What the fault handler needs to know about the current thread, readable
/// from a signal handler: plain `Copy` data in a const-initialised
/// thread-local without a destructor.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Active {
    /// `[guard_lo, guard_hi)`: this thread's guard region (empty when the
    /// thread has no JIT stack).
    pub guard_lo: u64,
    pub guard_hi: u64,
    /// Calls on the JIT stack now running on this thread (nesting depth).
    pub depth: u32,
    /// The unwind stub of the innermost call's executor (0: none).
    pub unwind: u64,
}

thread_local! {
    static ACTIVE: Cell<Active> = const {
        Cell::new(Active { guard_lo: 0, guard_hi: 0, depth: 0, unwind: 0 })
    };
    static STACK: RefCell<Option<JitStack>> = const { RefCell::new(None) };
}

/// The current thread's state, for the fault handler.
pub(crate) fn active() -> Active {
    ACTIVE.with(|a| a.get())
}

/// One thread's JIT stack mapping (and the alternate signal stack kiln
/// installed on the thread, if it had none).
struct JitStack {
    base: *mut libc::c_void,
    len: usize,
    alt: Option<(*mut libc::c_void, usize)>,
}

impl JitStack {
    /// Maps a stack of `size` usable bytes (rounded up to pages) with the
    /// guard below it, and makes sure the thread has an alternate signal
    /// stack.
    fn new(size: usize) -> Option<JitStack> {
        let page = page_size();
        let usable = size.checked_next_multiple_of(page)?;
        let len = usable.checked_add(GUARD_SIZE)?;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to
        // the range. MAP_NORESERVE: pages cost memory only once touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: `base + GUARD_SIZE .. base + len` lies inside the mapping
        // just made.
        let rw = unsafe {
            libc::mprotect(
                base.cast::<u8>().add(GUARD_SIZE).cast(),
                usable,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        let mut stack = JitStack {
            base,
            len,
            alt: None,
        };
        if rw != 0 {
            return None; // `stack` unmaps it
        }
        stack.alt = ensure_alt_stack();
        Some(stack)
    }

    fn guard(&self) -> (u64, u64) {
        let lo = self.base as u64;
        (lo, lo + GUARD_SIZE as u64)
    }

    /// One past the highest byte, 16-byte aligned.
    fn top(&self) -> u64 {
        self.base as u64 + self.len as u64
    }
}

impl Drop for JitStack {
    fn drop(&mut self) {
        // Thread-local destructors also run inside `exit()`, which compiled
        // code may call from this very stack: then leave everything mapped
        // (the process is ending).
        if active().depth > 0 {
            return;
        }
        if let Some((alt, len)) = self.alt.take() {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling this thread's alternate signal stack (the one
            // kiln installed) before unmapping it; no signal handler runs on
            // it now, since this thread is running this destructor.
            unsafe {
                libc::sigaltstack(&off, std::ptr::null_mut());
                libc::munmap(alt, len);
            }
        }
        // SAFETY: the mapping made in `new`; no call runs on it (the thread
        // is ending, or the stack was never entered).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Gives the current thread an alternate signal stack if it has none (Rust
/// gives one to the threads it spawns, C threads may have none): a fault
/// in the guard must be handled on another stack. Returns the one made.
fn ensure_alt_stack() -> Option<(*mut libc::c_void, usize)> {
    // SAFETY: querying the current thread's alternate stack into a local.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a null new stack only reads.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut old) } != 0 {
        return None;
    }
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return None;
    }
    // SAFETY: a fresh private anonymous mapping.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return None;
    }
    let st = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `mem` is ALT_STACK_SIZE bytes of RW memory that stays mapped
    // until the thread's JitStack is dropped, which disables it first.
    if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
        // SAFETY: the mapping just made, not installed.
        unsafe { libc::munmap(mem, ALT_STACK_SIZE) };
        return None;
    }
    Some((mem, ALT_STACK_SIZE))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Runs `f` on this thread's JIT stack (created on first use), with
/// `unwind` recorded as the unwind stub the fault handler resumes at.
/// Already on it (a nested call), `f` just runs. Where native calls are not
/// supported, or the stack cannot be mapped, `f` runs on the current stack.
pub(crate) fn run_on_jit_stack<R>(unwind: u64, f: impl FnOnce() -> R) -> R {
    let prev = active();
    // Restores the thread's state however `f` ends (a panic included).
    struct Restore(Active);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(prev);
    if prev.depth > 0 || !native::SUPPORTED {
        ACTIVE.with(|a| {
            a.set(Active {
                depth: prev.depth + 1,
                unwind,
                ..prev
            })
        });
        return f();
    }
    super::signals::install();
    let top = STACK.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = JitStack::new(jit_stack_size());
        }
        s.as_ref().map(|s| (s.top(), s.guard()))
    });
    let Some((top, (guard_lo, guard_hi))) = top else {
        return f();
    };
    ACTIVE.with(|a| {
        a.set(Active {
            guard_lo,
            guard_hi,
            depth: 1,
            unwind,
        })
    });
    let r = native::call_on_stack(top, f);
    drop(_restore);
    match r {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod native {
    //! Switching stacks on x86-64: a tiny assembly routine with its own
    //! unwind information (CFA through `rbp`, which holds the old stack
    //! pointer), so that unwinders, backtraces and debuggers walk from the
    //! JIT stack back to the caller's stack correctly.
    use std::any::Any;

    pub const SUPPORTED: bool = true;

    type Outcome<R> = Result<R, Box<dyn Any + Send>>;

    std::arch::global_asm!(
        ".pushsection .text.kiln_switch_stack,\"ax\",@progbits",
        ".globl kiln_switch_stack",
        ".hidden kiln_switch_stack",
        ".type kiln_switch_stack,@function",
        ".p2align 4",
        // fn(arg: rdi, entry: rsi, top: rdx): calls entry(arg) on the
        // stack ending at top and comes back to the caller's stack.
        "kiln_switch_stack:",
        ".cfi_startproc",
        "push rbp",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset rbp, -16",
        "mov rbp, rsp",
        ".cfi_def_cfa_register rbp",
        "mov rsp, rdx",
        "call rsi",
        "mov rsp, rbp",
        "pop rbp",
        ".cfi_def_cfa rsp, 8",
        "ret",
        ".cfi_endproc",
        ".size kiln_switch_stack, . - kiln_switch_stack",
        ".popsection",
    );

    extern "C" {
        /// See the assembly above.
        fn kiln_switch_stack(arg: *mut u8, entry: extern "C" fn(*mut u8), top: u64);
    }

    /// The state passed to [`enter`] through one pointer.
    struct Job<F, R> {
        f: Option<F>,
        out: Option<Outcome<R>>,
    }

    /// Runs on the new stack: calls the closure, catching a panic so that
    /// no unwinding crosses the assembly frame.
    extern "C" fn enter<F: FnOnce() -> R, R>(job: *mut u8) {
        // SAFETY: `job` points at the live `Job<F, R>` of `call_on_stack`,
        // which waits for this function to return.
        let job = unsafe { &mut *job.cast::<Job<F, R>>() };
        if let Some(f) = job.f.take() {
            job.out = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        }
    }

    /// Calls `f` with the stack pointer set to `top` (16-byte aligned) and
    /// restores it afterwards.
    pub fn call_on_stack<F: FnOnce() -> R, R>(top: u64, f: F) -> Outcome<R> {
        let mut job = Job {
            f: Some(f),
            out: None,
        };
        // SAFETY: `top` is the 16-byte aligned end of a mapped RW stack of
        // this thread that nothing else uses (calls on it nest only through
        // `run_on_jit_stack`, which does not switch again); the routine
        // follows the C ABI (it saves rbp, the only register it changes
        // besides rsp, which it restores). `enter` never unwinds.
        unsafe { kiln_switch_stack((&mut job as *mut Job<F, R>).cast(), enter::<F, R>, top) };
        job.out
            .unwrap_or_else(|| Err(Box::new("the JIT stack call did not run")))
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod native {
    //! No stack switching here: native calls are not supported on this
    //! host (see `crate::trampoline`), so nothing runs on a JIT stack.
    pub const SUPPORTED: bool = false;

    pub fn call_on_stack<R>(
        _top: u64,
        f: impl FnOnce() -> R,
    ) -> Result<R, Box<dyn std::any::Any + Send>> {
        Ok(f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_run_on_the_jit_stack_and_panics_cross_it() {
        if !native::SUPPORTED {
            return;
        }
        let local = 0u8;
        let outer = std::hint::black_box(&local) as *const u8 as u64;
        let (sp, a) = run_on_jit_stack(0, || {
            let local = 0u8;
            (std::hint::black_box(&local) as *const u8 as u64, active())
        });
        assert_eq!(a.depth, 1);
        assert!(a.guard_hi - a.guard_lo == GUARD_SIZE as u64);
        assert!(
            sp > a.guard_hi && sp < a.guard_hi + jit_stack_size() as u64,
            "{sp:#x} not on the JIT stack above {:#x}",
            a.guard_hi
        );
        assert!(!(a.guard_lo..a.guard_hi + jit_stack_size() as u64).contains(&outer));
        // Nested: no second switch.
        let depth = run_on_jit_stack(0, || run_on_jit_stack(0, || active().depth));
        assert_eq!(depth, 2);
        assert_eq!(active().depth, 0);
        let r = std::panic::catch_unwind(|| run_on_jit_stack(0, || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(active().depth, 0, "state restored after a panic");
    }
}
