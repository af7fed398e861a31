//! Adds and finalizes the registry sweep's modules one at a time in one
//! `Engine` (what the report's registry table times), for a profiler:
//! `valgrind --tool=callgrind` or `perf record -g` show the registry's
//! own share (symbols, placement, relocation, finalize, unwind
//! registration) beside compiling.
//!
//! Run: `cargo run --release -p kiln-bench --example registry_profile -- [modules]`.

use kiln::Engine;
use kiln_bench::measure::{parse, sweep_module_text};
use std::time::Instant;

fn main() -> Result<(), String> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let modules: Vec<_> = (0..n)
        .map(|i| parse(&format!("m{i}"), &sweep_module_text(i)))
        .collect::<Result<_, _>>()?;
    let engine = Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for m in modules {
        let id = engine.add_module(m).map_err(|e| e.to_string())?;
        engine.finalize_module(id).map_err(|e| e.to_string())?;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{n} modules: {us:.2} µs per module added and finalized");
    Ok(())
}
