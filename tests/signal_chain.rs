//! kiln's fault handler chains to a handler the embedder installed before
//! it, for every fault that is not a stack overflow of compiled code. Its
//! own test binary: the handlers are process-wide.

use kiln::{Engine, TrapCode, Val};
use std::sync::atomic::{AtomicUsize, Ordering};

static SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn embedder_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    SEEN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn faults_outside_compiled_code_reach_the_embedders_handler() {
    // SAFETY: installing a SIGSEGV handler with the SA_SIGINFO signature;
    // the zeroed struct is then filled in.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = embedder_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()), 0);
    }
    let engine = Engine::default();
    engine
        .add_module_text(
            "r.kir",
            "func @down(%n: i64) -> i64 {\nentry:\n    %m = add.i64 %n, 1\n    %r = call.i64 @down(%m)\n    ret %r\n}\nfunc @one() -> i64 {\nentry:\n    ret 1\n}\n",
        )
        .unwrap();
    // kiln's handler is in place now, and handles its own case...
    assert_eq!(
        trap_code(engine.call("down", &[Val::I64(0)])),
        Some(TrapCode::StackOverflow)
    );
    assert_eq!(SEEN.load(Ordering::SeqCst), 0);
    // ...and passes on the others: a SIGSEGV outside compiled code.
    // SAFETY: raising a signal whose handler (the embedder's, through
    // kiln's) returns.
    unsafe { libc::raise(libc::SIGSEGV) };
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);
    assert_eq!(engine.call("one", &[]).unwrap(), Some(Val::I64(1)));
}

/// The trap code of a call's outcome, if it trapped.
fn trap_code<T>(r: kiln::Result<T>) -> Option<TrapCode> {
    r.err().and_then(|e| e.trap_code())
}
