//! What debug information costs at compile time, for the report: every
//! input of the compile table compiled by kiln three ways in the same run
//! (interleaved, fastest of repeated runs each) — with no line tables and
//! no unwind registration, with line tables only, and with both (the
//! default) — as throughput and the slowdown against the first.

use crate::measure::Budget;
use kiln::debug::{lines, DebugOptions};
use kiln::ir::Module;
use kiln::Engine;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The three configurations: (label, line tables, unwind registration).
const CONFIGS: [(&str, bool, bool); 3] = [
    ("neither", false, false),
    ("line tables", true, false),
    ("line tables + CFI", true, true),
];

/// `Engine::add_module` + `finalize_module` of `modules` with line tables
/// and unwind registration as asked.
fn compile(modules: &[Module], line_tables: bool, unwind: bool) -> Result<Duration, String> {
    let engine = Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    engine
        .set_debug_options(DebugOptions {
            unwind,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    lines::set_recording(line_tables);
    let inputs = modules.to_vec();
    let t = Instant::now();
    let mut ids = Vec::with_capacity(inputs.len());
    for m in inputs {
        ids.push(engine.add_module(m).map_err(|e| e.to_string())?);
    }
    for id in ids {
        engine.finalize_module(id).map_err(|e| e.to_string())?;
    }
    let d = t.elapsed();
    lines::set_recording(true);
    drop(engine);
    Ok(d)
}

/// The markdown section for `inputs` (name and modules, as the compile
/// table has them).
pub fn debug_cost_section(
    inputs: &[(String, Vec<Module>)],
    budget: Budget,
) -> Result<String, String> {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### What debug information costs\n\nkiln's compile throughput (million IR \
         instructions per second, as above) with neither line tables nor CFI registered \
         with the unwinder, with line tables only, and with both (the default); each input \
         measured the three ways in turn in the same run. The last columns are the \
         slowdown against `neither` (1.00 = free).\n"
    );
    let _ = writeln!(
        md,
        "| input | insts | neither | line tables | line tables + CFI | lines ÷ neither | both ÷ neither |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (name, modules) in inputs {
        let insts: usize = modules.iter().map(crate::instruction_count).sum();
        let mut samplers: Vec<Box<dyn FnMut() -> Result<Duration, String> + '_>> = CONFIGS
            .iter()
            .map(|&(_, l, u)| {
                Box::new(move || {
                    modules.iter().try_fold(Duration::ZERO, |acc, m| {
                        Ok(acc + compile(std::slice::from_ref(m), l, u)?)
                    })
                }) as Box<dyn FnMut() -> Result<Duration, String> + '_>
            })
            .collect();
        let best = fastest_interleaved(budget, &mut samplers)?;
        let tp = |d: Duration| insts as f64 / d.as_secs_f64() / 1e6;
        let _ = writeln!(
            md,
            "| {name} | {insts} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |",
            tp(best[0]),
            tp(best[1]),
            tp(best[2]),
            best[1].as_secs_f64() / best[0].as_secs_f64(),
            best[2].as_secs_f64() / best[0].as_secs_f64(),
        );
        eprintln!("debug cost: {name} done");
    }
    Ok(md)
}

/// The fastest sample of each sampler, taking one sample of each in turn
/// until the budget is spent (so that load changes hit all alike).
fn fastest_interleaved(
    budget: Budget,
    samplers: &mut [Box<dyn FnMut() -> Result<Duration, String> + '_>],
) -> Result<Vec<Duration>, String> {
    let mut best = vec![Duration::MAX; samplers.len()];
    let (mut rounds, mut total) = (0, Duration::ZERO);
    while rounds < budget.max_iters && (rounds < budget.min_iters || total < budget.min_time) {
        for (b, s) in best.iter_mut().zip(samplers.iter_mut()) {
            let d = s()?;
            *b = (*b).min(d);
            total += d;
        }
        rounds += 1;
    }
    Ok(best)
}
