//! The report's lazy-compilation table and the compile-outside-the-lock
//! figure (issue 10):
//!
//! - [`first_result`]: a module of many 10-instruction functions of which
//!   `@main` calls ten, from text to the first result, added lazily and
//!   eagerly;
//! - [`first_calls`]: the cost of the first call through a stub (compile
//!   one 10-instruction function, finalize it, patch its cell, continue);
//! - [`later_calls`]: a call through a stub (stub → cell → body) against a
//!   direct call, from a loop in compiled code;
//! - [`calls_during_compile`]: the worst delay of calls to a finalized
//!   function on one thread while another thread compiles a large function.

use crate::generated_function;
use crate::measure::kiln_err;
use kiln::{Engine, Val};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 10-instruction function `@f{k}(i64) -> i64` (9 arithmetic + `ret`).
fn small_function(out: &mut String, k: usize) {
    let _ = write!(
        out,
        "func @f{k}(%x: i64) -> i64 {{\nentry:\n    %a = add.i64 %x, {k}\n    %b = mul.i64 %a, 3\n    \
         %c = xor.i64 %b, %x\n    %d = sub.i64 %c, 7\n    %e = shl.i64 %d, 1\n    %f = sar.i64 %e, 1\n    \
         %g = add.i64 %f, %a\n    %h = or.i64 %g, 1\n    %i = and.i64 %h, 1023\n    ret %i\n}}\n"
    );
}

/// `n` 10-instruction functions and `@main`, which calls the first ten.
pub fn many_functions_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 260);
    for k in 0..n {
        small_function(&mut s, k);
    }
    s.push_str("func @main() -> i64 {\nentry:\n    jmp l0(0)\n");
    let calls = n.min(10);
    for k in 0..calls {
        let _ = writeln!(
            s,
            "l{k}(%s{k}: i64):\n    %r{k} = call.i64 @f{k}(%s{k})\n    %t{k} = add.i64 %s{k}, %r{k}\n    jmp l{}(%t{k})",
            k + 1
        );
    }
    let _ = writeln!(s, "l{calls}(%s{calls}: i64):\n    ret %s{calls}\n}}");
    s
}

/// Time to the first result and what was compiled.
#[derive(Clone, Copy, Debug)]
pub struct FirstResult {
    pub time: Duration,
    pub compiled: u64,
    pub result: i64,
}

/// Parses, adds (lazily or not) and calls `@main` of `text` on a fresh
/// engine; the fastest of `runs`.
pub fn first_result(text: &str, lazy: bool, runs: usize) -> Result<FirstResult, String> {
    let mut best: Option<FirstResult> = None;
    for _ in 0..runs.max(1) {
        let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
        let t = Instant::now();
        let module = kiln::ir::parse::parse_module("many.kir", text).map_err(kiln_err)?;
        if lazy {
            engine.add_module_lazy(module).map_err(kiln_err)?;
        } else {
            engine.add_module(module).map_err(kiln_err)?;
        }
        let r = engine.call("main", &[]).map_err(kiln_err)?;
        let time = t.elapsed();
        let Some(Val::I64(result)) = r else {
            return Err(format!("@main returned {r:?}"));
        };
        let compiled = engine.stats().map_err(kiln_err)?.modules_compiled;
        if best.is_none_or(|b| time < b.time) {
            best = Some(FirstResult {
                time,
                compiled,
                result,
            });
        }
    }
    best.ok_or_else(|| "no run".into())
}

/// The mean cost of a first call through a stub to a 10-instruction
/// function: `n` lazy functions, each called once through its typed
/// pointer (so no `Engine::call` overhead is counted); the fastest of
/// `runs` engines.
pub fn first_calls(n: usize, runs: usize) -> Result<Duration, String> {
    let mut text = String::new();
    for k in 0..n {
        small_function(&mut text, k);
    }
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
        engine
            .add_module_text_lazy("first.kir", &text)
            .map_err(kiln_err)?;
        let mut fns = Vec::with_capacity(n);
        for k in 0..n {
            // SAFETY: the engine outlives every call; nothing is redefined.
            let f: extern "C" fn(i64) -> i64 =
                unsafe { engine.get_function(&format!("f{k}")) }.map_err(kiln_err)?;
            fns.push(f);
        }
        let t = Instant::now();
        let mut sum = 0i64;
        for f in &fns {
            sum = sum.wrapping_add(f(3));
        }
        let per = t.elapsed() / n as u32;
        std::hint::black_box(sum);
        if engine.stats().map_err(kiln_err)?.modules_compiled != n as u64 {
            return Err("not every function was compiled on its first call".into());
        }
        best = best.min(per);
    }
    Ok(best)
}

/// Nanoseconds per call of a 10-instruction function from a loop in
/// compiled code: (through a stub, direct).
pub fn later_calls(iterations: i64, runs: usize) -> Result<(f64, f64), String> {
    let mut text = String::new();
    small_function(&mut text, 1);
    text.push_str(
        "func @loop(%n: i64) -> i64 {\nentry:\n    jmp head(0, 0)\nhead(%i: i64, %s: i64):\n    \
         %done = sge.i64 %i, %n\n    br %done, exit(%s), body\nbody:\n    %r = call.i64 @f1(%i)\n    \
         %s2 = add.i64 %s, %r\n    %i2 = add.i64 %i, 1\n    jmp head(%i2, %s2)\nexit(%v: i64):\n    ret %v\n}\n",
    );
    let mut per = [f64::MAX; 2];
    for (k, lazy) in [true, false].into_iter().enumerate() {
        let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
        if lazy {
            engine.add_module_text_lazy("calls.kir", &text)
        } else {
            engine.add_module_text("calls.kir", &text)
        }
        .map_err(kiln_err)?;
        // SAFETY: the engine outlives every call; nothing is redefined.
        let run: extern "C" fn(i64) -> i64 =
            unsafe { engine.get_function("loop") }.map_err(kiln_err)?;
        std::hint::black_box(run(10));
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            std::hint::black_box(run(iterations));
            per[k] = per[k].min(t.elapsed().as_secs_f64() * 1e9 / iterations as f64);
        }
    }
    Ok((per[0], per[1]))
}

/// Delays of calls to a finalized function while another thread compiles.
pub struct Delays {
    /// How long the other thread's compile took.
    pub compile: Duration,
    /// Calls made while it compiled.
    pub calls: usize,
    pub median: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
    pub worst: Duration,
    /// When the worst call ended, counted from the compile's start (the
    /// compile's own lock-held part, install and finalize, is at its end).
    pub worst_ended: Duration,
}

/// While one thread compiles a function of `insts` instructions, another
/// calls a finalized function through `Engine::call` in a loop; the
/// delays of those calls. With `shared`, the function is compiled by the
/// calling engine (the figure); without, by a second engine (the baseline:
/// the same threads and load, but no lock in common, so what remains of
/// the worst delay is the machine's, not the engine's).
pub fn calls_during_compile(insts: usize, shared: bool) -> Result<Delays, String> {
    let engine = Arc::new(Engine::new(std::env::consts::ARCH).map_err(kiln_err)?);
    let mut small = String::new();
    small_function(&mut small, 0);
    engine
        .add_module_text("small.kir", &small)
        .map_err(kiln_err)?;
    engine.call("f0", &[Val::I64(1)]).map_err(kiln_err)?;
    let compiling = if shared {
        engine.clone()
    } else {
        Arc::new(Engine::new(std::env::consts::ARCH).map_err(kiln_err)?)
    };
    let big = compiling
        .add_module_text("big.kir", &generated_function(insts))
        .map_err(kiln_err)?;
    let done = Arc::new(AtomicBool::new(false));
    // Room for every call up front: growing the list would add copying
    // to the delays measured.
    let mut delays: Vec<u32> = Vec::with_capacity(1 << 22);
    let compiler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = compiling.finalize_module(big).map_err(kiln_err);
            done.store(true, Ordering::SeqCst);
            r.map(|()| t.elapsed())
        })
    };
    let arg = [Val::I64(2)];
    let start = Instant::now();
    let (mut worst, mut worst_ended) = (0, Duration::ZERO);
    while !done.load(Ordering::SeqCst) {
        let t = Instant::now();
        engine.call("f0", &arg).map_err(kiln_err)?;
        let d = u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX);
        if d > worst {
            (worst, worst_ended) = (d, start.elapsed());
        }
        delays.push(d);
    }
    let compile = compiler
        .join()
        .map_err(|_| "the compiling thread panicked".to_string())??;
    delays.sort_unstable();
    let calls = delays.len();
    let at = |i: usize| Duration::from_nanos(delays.get(i).copied().unwrap_or(0) as u64);
    Ok(Delays {
        compile,
        calls,
        median: at(calls / 2),
        p999: at(calls - calls / 1000 - 1),
        worst: at(calls.saturating_sub(1)),
        worst_ended,
    })
}
