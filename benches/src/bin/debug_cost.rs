//! `cargo run -p kiln-bench --release --bin debug_cost -- LINES UNWIND
//! [sweep]` (each flag `on` or `off`): compiles and finalizes the compile
//! table's inputs (every compilable corpus file, the benchmark programs,
//! generated functions of 1k and 10k instructions) once, with line tables
//! and unwind registration as given; with `sweep`, instead the registry
//! table's 1,000 small modules, added and finalized one at a time in one
//! engine. Timing is left to the caller: run it under
//! `valgrind --tool=callgrind` and compare instruction counts, which the
//! machine's load does not disturb, counting only `compile_all`:
//! `valgrind --tool=callgrind --toggle-collect='*compile_all*'
//! target/release/debug_cost on on` (the numbers in the README's
//! debug-information section were made this way).

use kiln::debug::{lines, DebugOptions};
use kiln::Engine;
use kiln_bench::generated_function;
use kiln_bench::measure::{compile_corpus, parse};
use kiln_bench::programs::PROGRAMS;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |i: usize| match args.get(i).map(String::as_str) {
        Some("on") => true,
        Some("off") => false,
        _ => {
            eprintln!("usage: debug_cost on|off on|off  (line tables, unwind registration)");
            std::process::exit(2);
        }
    };
    let (line_tables, unwind) = (flag(0), flag(1));
    let result = if args.get(2).is_some_and(|a| a == "sweep") {
        sweep(line_tables, unwind)
    } else {
        run(line_tables, unwind)
    };
    if let Err(e) = result {
        eprintln!("debug_cost: error: {e}");
        std::process::exit(1);
    }
}

fn run(line_tables: bool, unwind: bool) -> Result<(), String> {
    let mut modules = compile_corpus();
    for p in PROGRAMS {
        modules.push(parse(p.name, p.text)?);
    }
    for n in [1_000, 10_000] {
        modules.push(parse("gen", &generated_function(n))?);
    }
    // Engines are made outside the measured part: one per module (corpus
    // files may export the same names).
    let mut jobs = Vec::with_capacity(modules.len());
    for m in modules {
        let engine = Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
        engine
            .set_debug_options(DebugOptions {
                unwind,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        jobs.push((engine, m));
    }
    let insts = compile_all(&jobs, line_tables)?;
    println!("compiled {insts} IR instructions (line tables {line_tables}, unwind {unwind})");
    Ok(())
}

/// The measured part (for `callgrind --toggle-collect=*compile_all*`):
/// each module added to and finalized in its engine.
#[inline(never)]
fn compile_all(jobs: &[(Engine, kiln::ir::Module)], line_tables: bool) -> Result<usize, String> {
    lines::set_recording(line_tables);
    let mut insts = 0;
    for (engine, m) in jobs {
        insts += kiln_bench::instruction_count(m);
        let id = engine.add_module(m.clone()).map_err(|e| e.to_string())?;
        engine.finalize_module(id).map_err(|e| e.to_string())?;
    }
    Ok(insts)
}

fn sweep(line_tables: bool, unwind: bool) -> Result<(), String> {
    let modules: Vec<kiln::ir::Module> = (0..1000)
        .map(|i| {
            parse(
                &format!("m{i}.kir"),
                &kiln_bench::measure::sweep_module_text(i),
            )
        })
        .collect::<Result<_, _>>()?;
    let engine = Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    engine
        .set_debug_options(DebugOptions {
            unwind,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    sweep_all(&engine, modules, line_tables)?;
    println!("swept 1000 modules (line tables {line_tables}, unwind {unwind})");
    Ok(())
}

/// The measured part of `sweep` (`--toggle-collect=*sweep_all*`).
#[inline(never)]
fn sweep_all(
    engine: &Engine,
    modules: Vec<kiln::ir::Module>,
    line_tables: bool,
) -> Result<(), String> {
    lines::set_recording(line_tables);
    for m in modules {
        let id = engine.add_module(m).map_err(|e| e.to_string())?;
        engine.finalize_module(id).map_err(|e| e.to_string())?;
    }
    Ok(())
}
