//! Separates the two reasons a compile of a repeated small function can be
//! faster per instruction than a compile of a big one: the data it touches
//! staying in the caches, and the branch predictors learning the compile.
//!
//! Run: `cache_probe N K ROUNDS same|rotate|cold` compiles K generated
//! functions of N instructions (variants 0..K) in fresh engines, each one
//! cloned just before its compile (so its IR is in the caches as in
//! `fresh_engine`), and prints the sum over the functions of each one's
//! fastest compile, per IR instruction. `same`: each function ROUNDS times
//! in a row (the predictors learn it); `rotate`: the K functions in turn,
//! ROUNDS times (the predictors see K different compiles in between);
//! `cold`: like `rotate`, but a 32 MB buffer is walked before each compile
//! (the IR and the compiler's own memory start out of every cache).

use kiln::ir::Module;
use kiln::Engine;
use kiln_bench::measure::parse;
use std::time::{Duration, Instant};

#[inline(never)]
fn add_and_finalize(engine: &Engine, m: Module) {
    let id = engine.add_module(m).expect("generated IR verifies");
    engine.finalize_module(id).expect("generated IR compiles");
}

/// The time of one compile of `module` in a fresh engine.
fn once(module: &Module) -> Duration {
    let engine = Engine::new(std::env::consts::ARCH).expect("host backend");
    let m = module.clone();
    let t = Instant::now();
    add_and_finalize(&engine, m);
    t.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let k: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let mode = args.next().unwrap_or_else(|| "same".into());
    let modules: Vec<Module> = (0..k as u64)
        .map(|v| parse("g", &kiln_bench::generated_variant(n, v)).expect("parses"))
        .collect();
    let insts: usize = modules.iter().map(kiln_bench::instruction_count).sum();
    let mut best = vec![Duration::MAX; k];
    let mut flush = vec![0u8; 32 << 20];
    match mode.as_str() {
        "same" => {
            for (b, m) in best.iter_mut().zip(&modules) {
                for _ in 0..rounds {
                    *b = (*b).min(once(m));
                }
            }
        }
        "rotate" | "cold" => {
            for r in 0..rounds {
                for (b, m) in best.iter_mut().zip(&modules) {
                    if mode == "cold" {
                        for x in flush.iter_mut().step_by(64) {
                            *x = x.wrapping_add(r as u8);
                        }
                        std::hint::black_box(&flush);
                    }
                    *b = (*b).min(once(m));
                }
            }
        }
        other => panic!("unknown mode `{other}` (same, rotate or cold)"),
    }
    let total: Duration = best.iter().sum();
    println!(
        "{mode} N={n} K={k} rounds={rounds}: {:.1} ns/inst (sum of each function's fastest)",
        total.as_secs_f64() * 1e9 / insts as f64
    );
}
