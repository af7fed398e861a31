//! Runs a check in a forked child: shared by the memory-manager tests
//! (`tests/memory.rs`, `tests/pool.rs`), which check what a `fork` child of
//! a process with JIT memory may and may not do.

/// Forks; the child runs `check` and leaves with `_exit(0)` if it returned
/// true, `_exit(1)` otherwise (never running the test harness). Returns
/// the child's verdict; panics if the child did not exit normally.
///
/// # Safety
///
/// The test harness runs other threads: `check` must do only what is
/// sound in the child of a multithreaded process (no locks another thread
/// may hold, bar malloc's, which glibc makes fork-safe).
pub unsafe fn passes_in_forked_child(check: impl FnOnce() -> bool) -> bool {
    // SAFETY: the caller vouches for `check` (above); the child does
    // nothing else before `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = check();
        // SAFETY: ends the child without running the harness's exit code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed: {status:#x}");
    libc::WEXITSTATUS(status) == 0
}
