//! `cargo run -p kiln-bench --release --bin shape -- SHAPE N [ITERS]`: a
//! profiling aid for the compile-scaling shapes ([`kiln_bench::shapes`]).
//! Compiles shape SHAPE (`generated`, `args`, `loops`, `switch`, `funcs`) at
//! size N ITERS times (default 10) through `Engine::add_module` +
//! `finalize_module` and prints the fastest time (process CPU time) per IR
//! instruction. As in the report's table, the generated function's compiles
//! go through ITERS different functions of size N
//! ([`Shape::variants`]); `KILN_SHAPE_SAME=1` compiles the first one
//! every time instead.
//! `-- print SHAPE N` prints the module text instead.

use kiln_bench::instruction_count;
use kiln_bench::measure::parse;
use kiln_bench::scaling::kiln_compile_cpu;
use kiln_bench::shapes::Shape;

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
    let variants = if std::env::var_os("KILN_SHAPE_SAME").is_some() {
        1
    } else {
        iters.clamp(1, s.variants())
    };
    let mut modules = Vec::new();
    for k in 0..variants {
        match parse("shape", &s.variant(n, k)) {
            Ok(m) => modules.push(m),
            Err(e) => {
                eprintln!("shape: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut best = f64::INFINITY;
    for i in 0..iters {
        let m = &modules[i % modules.len()];
        match kiln_compile_cpu(m) {
            Ok(d) => best = best.min(d.as_secs_f64() * 1e9 / instruction_count(m) as f64),
            Err(e) => {
                eprintln!("shape: {e}");
                std::process::exit(1);
            }
        }
    }
    let insts = instruction_count(&modules[0]);
    println!(
        "{} N={n}: {insts} insts, {:.3} ms, {best:.1} ns/inst",
        s.label(),
        best * insts as f64 / 1e6,
    );
}
