//! Measurements of issue 11 for the report:
//! - [`kiln_interruptible`]: a program compiled with interrupt checks
//!   (`Engine::with_interrupts`), for the code table's column of what the
//!   checks cost when on (they cost nothing when off: none are compiled);
//! - [`call_round_trip`]: the cost of one `Engine::call` of an empty
//!   function in process and through the process executor (a socket round
//!   trip to the child), and the markdown table that shows it.
//!
//! The process executor's child is the benchmark binary itself: a program
//! that embeds kiln serves as its own executor child when it hands the
//! hidden subcommand to [`serve_executor_child`] first thing in `main`.

use crate::measure::{fastest_of, Budget, CompiledMain};
use kiln::executor::process::{ProcessConfig, ProcessExecutor, CHILD_COMMAND};
use kiln::ir::Module;
use kiln::{Engine, Val};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

fn kiln_err(e: kiln::Error) -> String {
    e.to_string()
}

/// If this process was started as an executor child (`PROGRAM __executor
/// ...`), serves the parent and exits; otherwise returns.
pub fn serve_executor_child() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == CHILD_COMMAND) {
        std::process::exit(kiln::executor::process::child_main(&args[1..]));
    }
}

/// `@main` of `m` compiled with interrupt checks at function entries and
/// loop heads, the flag never set.
pub fn kiln_interruptible(m: &Module) -> Result<CompiledMain, String> {
    let engine = Engine::new(std::env::consts::ARCH)
        .map_err(kiln_err)?
        .with_interrupts();
    engine.add_module(m.clone()).map_err(kiln_err)?;
    // SAFETY: the pointer is used only while `engine` lives (both are kept
    // in the returned value) and the module is never removed.
    let f =
        unsafe { engine.get_function::<extern "C" fn(i64) -> i64>("main") }.map_err(kiln_err)?;
    Ok(CompiledMain::Kiln(engine, f))
}

/// Per-call cost of `Engine::call` on each executor.
pub struct RoundTrip {
    pub in_process: Duration,
    pub process: Duration,
}

const EMPTY: &str = "func @id(%x: i64) -> i64 {\nentry:\n    ret %x\n}\n";

/// Calls per timed sample.
const CALLS: u32 = 200;

fn per_call(budget: Budget, engine: &Engine) -> Result<Duration, String> {
    let args = [Val::I64(7)];
    if engine.call("id", &args).map_err(kiln_err)? != Some(Val::I64(7)) {
        return Err("@id returned a wrong value".into());
    }
    let best = fastest_of(budget, || {
        let t = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(engine.call("id", &args).map_err(kiln_err)?);
        }
        Ok(t.elapsed())
    })?;
    Ok(best / CALLS)
}

/// Measures one `Engine::call` of `@id(i64) -> i64` in process and through
/// a process executor whose child is this very program (see the module
/// docs).
pub fn call_round_trip(budget: Budget) -> Result<RoundTrip, String> {
    let local = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
    local.add_module_text("id.kir", EMPTY).map_err(kiln_err)?;
    let ex = ProcessExecutor::spawn_with(ProcessConfig {
        program: Some(std::env::current_exe().map_err(|e| e.to_string())?),
        ..Default::default()
    })
    .map_err(kiln_err)?;
    let remote = Engine::with_executor(std::env::consts::ARCH, ex).map_err(kiln_err)?;
    remote.add_module_text("id.kir", EMPTY).map_err(kiln_err)?;
    Ok(RoundTrip {
        in_process: per_call(budget, &local)?,
        process: per_call(budget, &remote)?,
    })
}

/// The report section for [`call_round_trip`].
pub fn round_trip_table(r: &RoundTrip) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Call round trip\n\n`Engine::call` of `@id(i64) -> i64` (argument checks, \
         trampoline, JIT stack switch), fastest sample of {CALLS} calls. `process`: the code runs \
         in a `kiln` executor child (`--executor process`), each call one request and one reply \
         over a socket.\n\n| executor | µs per call | ÷ in-process |\n|---|---:|---:|"
    );
    let _ = writeln!(md, "| in-process | {:.3} | 1.0 |", us(r.in_process));
    let _ = writeln!(
        md,
        "| process | {:.3} | {:.0} |",
        us(r.process),
        r.process.as_secs_f64() / r.in_process.as_secs_f64()
    );
    md
}
