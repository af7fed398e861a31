//! The `kiln` command line: parses the arguments, runs one command, and
//! turns its outcome into output and an exit status (SPEC section 8).
//!
//! Exit statuses: 0 success, 1 an input error (one line on stderr),
//! 2 a usage error (the message and the usage text), 3 a trap
//! (`trap: REASON` on stderr after the program's C stdio is flushed),
//! 4 the executor process died (`kiln: error: executor process died:
//! SIGNAL`).
//! Nothing here panics on any input: writes to closed pipes are ignored,
//! and the work runs on a thread with a large stack so that deep inputs do
//! not overflow it (except `check`, whose parser and verifier never
//! recurse: it runs on the main thread, see [`main`], and checks many
//! files on threads with the default stack, see [`check`]).

pub mod arena;
pub mod args;
mod check;
mod commands;

use args::{Command, UsageError, USAGE};
use std::ffi::OsString;
use std::io::Write;

/// How a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Status 2: a malformed command line; printed with the usage text.
    Usage(String),
    /// Status 2: a well-formed request this build cannot serve (a command
    /// or engine not built yet, a foreign target); one line.
    Unavailable(String),
    /// Status 1; the complete line to print (`FILE:LINE:COL: error: ...` or
    /// `kiln: error: ...`).
    Input(String),
    /// Status 3; the `trap: REASON` line and the backtrace lines after it
    /// (SPEC section 8), without a final newline.
    Trap(String),
    /// The executor process died (status 4 and a message), or the program
    /// in it called `exit` (that status, silently, as in-process).
    Died(kiln::ChildExit),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e.0)
    }
}

/// Stack size of the worker thread: generous, so that recursion in the
/// library on pathological input cannot overflow.
const STACK_SIZE: usize = 256 << 20;

/// Runs the command line and returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    // The hidden subcommand that makes this process an executor child
    // (`--executor process`); it never reads files or parses arguments
    // the user gave.
    if args
        .first()
        .is_some_and(|a| a == kiln::executor::process::CHILD_COMMAND)
    {
        return kiln::executor::process::child_main(&args[1..]);
    }
    // `check` runs here, on the main thread: the parser and the verifier
    // never recurse (every traversal is a loop or uses its own stack), so
    // the default stack is enough, and a thread with a large stack costs
    // a noticeable part of a short command (creating it, and releasing its
    // stack at exit).
    if args.first().is_some_and(|a| a == "check") {
        let status = match std::panic::catch_unwind(|| run_command(&args)) {
            Ok(status) => status,
            Err(_) => internal_error(),
        };
        // The process exits next: freeing the arguments one by one would
        // only cost time.
        std::mem::forget(args);
        return status;
    }
    let worker = std::thread::Builder::new()
        .name("kiln".into())
        .stack_size(STACK_SIZE)
        .spawn(move || run_command(&args));
    match worker.map(|h| h.join()) {
        Ok(Ok(status)) => status,
        // A panic is a bug in kiln; report it as such rather than as a
        // successful run.
        Ok(Err(_)) => internal_error(),
        Err(e) => {
            eprint_line(&format!("kiln: error: cannot start: {e}"));
            1
        }
    }
}

/// Reports a panic, a bug in kiln, rather than a successful run; status
/// 101.
fn internal_error() -> i32 {
    eprint_line("kiln: internal error (panic); please report this input");
    101
}

fn run_command(args: &[OsString]) -> i32 {
    let outcome = args::parse(args)
        .map_err(Failure::from)
        .and_then(|cmd| match cmd {
            Command::Help => {
                print_line(USAGE);
                Ok(())
            }
            Command::Version => {
                print_line(concat!("kiln ", env!("CARGO_PKG_VERSION")));
                Ok(())
            }
            Command::Check { files } => check::check(files),
            Command::Run(opts) => commands::run(&opts),
            Command::Asm { files, target, opt } => commands::asm(&files, target, opt),
            Command::Opt { files, passes } => commands::opt(&files, passes.as_deref()),
            Command::Repl(opts) => commands::repl(&opts),
        });
    match outcome {
        Ok(()) => 0,
        Err(Failure::Input(line)) => {
            eprint_line(&line);
            1
        }
        Err(Failure::Usage(msg)) => {
            eprint_line(&format!("kiln: usage error: {msg}\n{USAGE}"));
            2
        }
        Err(Failure::Unavailable(msg)) => {
            eprint_line(&format!("kiln: usage error: {msg}"));
            2
        }
        Err(Failure::Trap(lines)) => {
            eprint_line(&lines);
            3
        }
        Err(Failure::Died(kiln::ChildExit::Status(code))) => code,
        Err(Failure::Died(how)) => {
            eprint_line(&format!("kiln: error: executor process died: {how}"));
            4
        }
    }
}

/// Writes one line to stdout, ignoring a closed pipe (`println!` would
/// panic).
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes one line to stderr, ignoring failures.
pub fn eprint_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
