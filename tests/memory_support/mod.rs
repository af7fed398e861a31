//! Checks shared by the memory-manager tests (`tests/memory.rs`,
//! `tests/pool.rs`): no mapping is writable and executable at once, and
//! what a `fork` child of a process with JIT memory may and may not do.

/// Fails if any mapping of the process is writable and executable.
pub fn assert_no_wx(step: &str) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let perms = line.split_whitespace().nth(1).unwrap();
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "W+X mapping after {step}: {line}"
        );
    }
}

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
