//! `cargo run -p kiln-bench --release --example ab [-- PROGRAM...]`: run
//! time of each benchmark program (all of them, or the ones named) compiled
//! by kiln at `--opt none`, kiln at `--opt speed` and Cranelift at `speed`
//! (backtracking), with the ratios to Cranelift. A quicker look at the
//! code-speed table's kiln-speed column than the full report.
//!
//! Each time is the fastest of repeated calls in thread CPU time, the
//! three engines taking turns ([`kiln_bench::cputime`], as the report).

use kiln::opt::OptLevel;
use kiln_bench::cputime::fastest_interleaved;
use kiln_bench::measure::{parse, Budget, CompiledMain};
use kiln_bench::programs::PROGRAMS;
use kiln_bench::to_cranelift::ClifOpts;
use std::time::Duration;

fn main() -> Result<(), String> {
    let want: Vec<String> = std::env::args().skip(1).collect();
    let mut logs = Vec::new();
    for p in PROGRAMS {
        if !want.is_empty() && !want.iter().any(|w| w == p.name) {
            continue;
        }
        let m = parse(p.name, p.text)?;
        // Cranelift first (its code and data must be within 2 GiB).
        let clif = CompiledMain::clif(&m, ClifOpts::new("speed", "backtracking"))?;
        let none = CompiledMain::kiln(&m)?;
        let speed = CompiledMain::kiln_at(&m, OptLevel::Speed)?;
        let engines = [
            ("kiln", &none),
            ("kiln-speed", &speed),
            ("clif-speed", &clif),
        ];
        for (label, e) in engines {
            let got = e.call(p.bench_arg);
            if got != p.bench_result {
                return Err(format!(
                    "{} by {label}: {got}, expected {}",
                    p.name, p.bench_result
                ));
            }
        }
        let budget = Budget {
            min_time: Duration::from_millis(1500),
            min_iters: 10,
            max_iters: 400,
        };
        let best = fastest_interleaved(budget, engines.len(), |k| {
            std::hint::black_box(engines[k].1.call(p.bench_arg));
            Ok(())
        })?;
        let ms: Vec<f64> = best.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        logs.push((ms[1] / ms[2]).ln());
        println!(
            "{:14} kiln {:8.2} ms  kiln-speed {:8.2} ms  clif-speed {:8.2} ms  kiln/clif {:.2}  speed/clif {:.2}",
            p.name,
            ms[0],
            ms[1],
            ms[2],
            ms[0] / ms[2],
            ms[1] / ms[2]
        );
    }
    if !logs.is_empty() {
        let geomean = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
        println!("geomean speed/clif {geomean:.2}");
    }
    Ok(())
}
