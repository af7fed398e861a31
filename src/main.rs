//! The `kiln` command line (SPEC section 8).
//!
//! Everything lives in [`cli`]: argument parsing ([`cli::args`]) is kept
//! apart from running the commands ([`cli::commands`]) so that usage errors
//! (status 2) are all decided before any file is read. This file only hands
//! the process arguments over and exits with the status the command chose.

mod cli;

/// The system allocator, with a bump arena that `kiln check` switches on
/// (see [`cli::arena`]).
#[global_allocator]
static ALLOC: cli::arena::ArenaAlloc = cli::arena::ArenaAlloc;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = cli::main(args);
    std::process::exit(status);
}
