//! `cargo run -p kiln-bench --release --bin shape -- SHAPE N [ITERS]`: a
//! profiling aid for the compile-scaling shapes ([`kiln_bench::shapes`]).
//! Compiles shape SHAPE (`generated`, `args`, `loops`, `switch`, `funcs`) at
//! size N ITERS times (default 10) through `Engine::add_module` +
//! `finalize_module` and prints the fastest time (process CPU time) per IR
//! instruction.
//! `-- print SHAPE N` prints the module text instead.

use kiln_bench::measure::parse;
use kiln_bench::scaling::kiln_compile_cpu;
use kiln_bench::shapes::Shape;
use std::time::Duration;

fn shape(name: &str) -> Option<Shape> {
    Some(match name {
        "generated" => Shape::Generated,
        "args" => Shape::BlockArgs,
        "loops" => Shape::NestedLoops,
        "switch" => Shape::Switch,
        "funcs" => Shape::SmallFunctions,
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: shape [print] generated|args|loops|switch|funcs N [ITERS]";
    let (print, rest) = match args.first().map(String::as_str) {
        Some("print") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let (Some(s), Some(n)) = (
        rest.first().and_then(|a| shape(a)),
        rest.get(1).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let text = s.text(n);
    if print {
        print!("{text}");
        return;
    }
    let iters: usize = rest.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let m = match parse("shape", &text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("shape: {e}");
            std::process::exit(1);
        }
    };
    let insts = kiln_bench::instruction_count(&m);
    let mut best = Duration::MAX;
    for _ in 0..iters {
        match kiln_compile_cpu(&m) {
            Ok(d) => best = best.min(d),
            Err(e) => {
                eprintln!("shape: {e}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "{} N={n}: {insts} insts, {:.3} ms, {:.1} ns/inst",
        s.label(),
        best.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e9 / insts as f64
    );
}
