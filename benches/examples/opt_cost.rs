//! What the `speed` tier's IR passes cost next to the compile they precede,
//! per input (the benchmark programs, the corpus, generated functions), for
//! profilers and quick checks of the "passes stay cheap" budget.
//!
//! Run: `cargo run --release -p kiln-bench --example opt_cost [-- REPEATS [INPUT...]]`
//! (`INPUT`: a program name, `corpus` or `gen10000`-style sizes). For each
//! input it prints thread-CPU microseconds of one `verify` + x86-64
//! `compile_module` (what `none` does), of `optimize_module` at `speed`,
//! and of compiling the optimized module, best of `REPEATS` (default 20).
//! Under callgrind, `--toggle-collect='kiln::opt::*'` counts the passes.

use kiln::emit::compile_module;
use kiln::ir::{verify::verify_module, Module};
use kiln::opt::{optimize_module, OptLevel};
use kiln_bench::cputime::cpu_time_of;
use kiln_bench::measure::parse;
use kiln_bench::programs::PROGRAMS;
use kiln_bench::{generated_function, instruction_count};
use std::time::Duration;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let want: Vec<String> = args.collect();
    let wanted = |name: &str| want.is_empty() || want.iter().any(|w| w == name);
    let mut inputs: Vec<(String, Vec<Module>)> = Vec::new();
    for p in PROGRAMS {
        if wanted(p.name) {
            inputs.push((p.name.to_string(), vec![parse(p.name, p.text)?]));
        }
    }
    if wanted("corpus") {
        let corpus: Vec<Module> = kiln_bench::corpus()
            .into_iter()
            .filter_map(|(_, text)| parse("c", &text).ok())
            .collect();
        inputs.push(("corpus".into(), corpus));
    }
    for n in [1_000, 10_000, 100_000] {
        let name = format!("gen{n}");
        if wanted(&name) || (want.is_empty() && n <= 10_000) {
            inputs.push((name, vec![parse("gen", &generated_function(n))?]));
        }
    }
    let backend = kiln::isa::backend("x86_64").ok_or("no x86_64 back end")?;
    println!(
        "{:14} {:>7} {:>11} {:>11} {:>11} {:>7}",
        "input", "insts", "none us", "passes us", "after us", "passes/none"
    );
    for (name, modules) in &inputs {
        let insts: usize = modules.iter().map(instruction_count).sum();
        let mut best = [Duration::MAX; 3];
        for _ in 0..repeats {
            let mut sum = [Duration::ZERO; 3];
            for m in modules {
                let (d0, r) = cpu_time_of(|| {
                    verify_module(m).map_err(|e| e.to_string())?;
                    compile_module(m, backend).map_err(|e| e.to_string())
                });
                r?;
                let mut o = m.clone();
                let (d1, ()) = cpu_time_of(|| optimize_module(&mut o, OptLevel::Speed));
                let (d2, r) = cpu_time_of(|| compile_module(&o, backend));
                r.map_err(|e| e.to_string())?;
                for (s, d) in sum.iter_mut().zip([d0, d1, d2]) {
                    *s += d;
                }
            }
            for (b, s) in best.iter_mut().zip(sum) {
                *b = (*b).min(s);
            }
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{:14} {:>7} {:>11.1} {:>11.1} {:>11.1} {:>7.2}",
            name,
            insts,
            us(best[0]),
            us(best[1]),
            us(best[2]),
            us(best[1]) / us(best[0])
        );
    }
    Ok(())
}
