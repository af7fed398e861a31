//! The `kiln` command line (SPEC section 8).
//!
//! Everything lives in [`cli`]: argument parsing ([`cli::args`]) is kept
//! apart from running the commands (`cli::commands`) so that usage errors
//! (status 2) are all decided before any file is read. This file only hands
//! the process arguments over and exits with the status the command chose.
//!
//! The entry point is the C `main` (`#![no_main]`), not Rust's: Rust's
//! start-up reads `/proc/self/maps` to find the main thread's stack guard
//! and gives the thread an alternate signal stack and a `SIGSEGV`/`SIGBUS`
//! handler that reports stack overflows, about twenty system calls that
//! were a fifth of the time of a `kiln check` on a small file. kiln needs
//! none of them: deep inputs run on a thread with a large stack (see
//! [`cli`]), and compiled code gets its own signal stack and handler (see
//! `kiln::executor`). What kiln does rely on is done in [`startup`], as
//! Rust's start-up does it; `std::env::args_os` still works (the C library
//! hands the arguments to Rust's runtime at load time on Linux).

// The unit tests of this binary keep the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

mod cli;

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// The system allocator, with a bump arena that `kiln check` switches on
/// (see [`cli::arena`]).
#[global_allocator]
static ALLOC: cli::arena::ArenaAlloc = cli::arena::ArenaAlloc;

/// The process's entry, called by the C runtime: see [`run`].
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    run()
}

/// Runs the command line. Never returns: the status goes through
/// [`std::process::exit`], which flushes Rust's standard output first. A
/// panic that reaches here (a bug) ends the process with status 101, as
/// Rust's own entry does.
// In the unit tests of this binary nothing calls it; what it calls is
// still compiled and linted.
#[cfg_attr(test, allow(dead_code))]
fn run() -> ! {
    startup();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = std::panic::catch_unwind(move || cli::main(args)).unwrap_or(101);
    std::process::exit(status);
}

/// What Rust's start-up does that kiln relies on:
/// - `SIGPIPE` is ignored, so that a write to a closed pipe is an error
///   the command ignores (see [`cli::print_line`]) rather than death.
///   Processes kiln starts get the default action back (Rust's
///   `Command` restores it when the entry point did not ask otherwise).
/// - Standard descriptors that are closed are opened on `/dev/null`, so
///   that no file kiln opens takes their number (and output meant for
///   stdout or stderr cannot land in it).
fn startup() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is an array of three initialized `pollfd`s that poll
    // may write the results into; a zero timeout does not block.
    let polled = loop {
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if r != -1 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r != -1;
        }
    };
    for pfd in fds {
        // Where poll itself failed, ask each descriptor for its flags.
        // SAFETY: F_GETFD on a descriptor number only reads its flags.
        let closed = if polled {
            pfd.revents & libc::POLLNVAL != 0
        } else {
            let flags = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) };
            flags == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        // SAFETY: opening a path given as a NUL-terminated literal; the
        // new descriptor is the lowest free one, the closed one here, and
        // stays open for the life of the process.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
            // As Rust's start-up: no safe way to go on.
            std::process::abort();
        }
    }
    // SAFETY: setting the disposition of SIGPIPE to "ignore" installs no
    // handler code; nothing in kiln expects SIGPIPE to be delivered.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
