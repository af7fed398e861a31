//! The compile table's path for one program, for a profiler: N times, a
//! fresh `Engine` (made and dropped outside the timed region, as in
//! `measure::kiln_compile_at`) adds and finalizes one program of
//! `benches/programs/` (default `fib`; `matmul` for big zero data), or a
//! `.kir` file given by its path. The
//! timed part is `add_and_finalize` (never inlined), so that callgrind
//! can count it alone and perf shows its share of system calls and page
//! faults:
//!
//! ```text
//! cargo build --release -p kiln-bench --example fresh_engine
//! valgrind --tool=callgrind --toggle-collect='fresh_engine::add_and_finalize' \
//!     target/release/examples/fresh_engine fib 200
//! perf record --call-graph dwarf target/release/examples/fresh_engine matmul 2000
//! ```
//!
//! Run: `cargo run --release -p kiln-bench --example fresh_engine -- [program] [N] [none|speed]`
//! (the third argument is the engine's opt level, as in the compile table's speed column).

use kiln::ir::Module;
use kiln::opt::OptLevel;
use kiln::Engine;
use kiln_bench::measure::parse;
use kiln_bench::programs::PROGRAMS;
use std::time::{Duration, Instant};

/// The timed region: what `kiln_compile_at` times for one module.
#[inline(never)]
fn add_and_finalize(engine: &Engine, m: Module) -> Result<(), String> {
    let id = engine.add_module(m).map_err(|e| e.to_string())?;
    engine.finalize_module(id).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "fib".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let level = match args.next().as_deref() {
        None | Some("none") => OptLevel::None,
        Some("speed") => OptLevel::Speed,
        Some(other) => return Err(format!("unknown opt level `{other}` (none or speed)")),
    };
    let module = if name.ends_with(".kir") {
        let text = std::fs::read_to_string(&name).map_err(|e| format!("{name}: {e}"))?;
        parse(&name, &text)?
    } else {
        let program = PROGRAMS
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no program `{name}` in benches/programs"))?;
        parse(program.name, program.text)?
    };
    let mut timed = Duration::ZERO;
    let mut fastest = Duration::MAX;
    for _ in 0..n {
        let engine = Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
        engine.set_opt_level(level);
        let m = module.clone();
        let t = Instant::now();
        add_and_finalize(&engine, m)?;
        let d = t.elapsed();
        timed += d;
        fastest = fastest.min(d);
        drop(engine);
    }
    println!(
        "{name}: {n} fresh engines, {:.2} µs mean, {:.2} µs fastest per add + finalize",
        timed.as_secs_f64() * 1e6 / n as f64,
        fastest.as_secs_f64() * 1e6
    );
    Ok(())
}
