//! Fixed and per-instruction cost of compiling small modules, for a
//! profiler (`valgrind --tool=callgrind`, instruction counts per module):
//! - `registry N`: adds and finalizes N registry-sweep modules in one
//!   `Engine` (the report's registry table path);
//! - `compile N [k]`: `compile_module` alone on N sweep modules, or with
//!   `k > 0` on N one-block functions of `2k + 2` instructions (the slope
//!   between two `k` is the cost per IR instruction, the rest is fixed);
//! - `verify N [k]`: `verify_module` alone on the same modules as
//!   `compile` (its slope and intercept the same way);
//! - `lazy N`: the report's first calls through lazy stubs;
//! - `program N NAME`: the report's compile-table path for one program of
//!   `benches/programs/` (default `fib`), N times: a fresh `Engine`, then
//!   `add_module` (verifies, compiles) + `finalize_module` (callgrind's
//!   inclusive counts of those two, divided by N, are the row's cost).
//!
//! Run: `cargo run --release -p kiln-bench --example small_cost -- MODE [N] [k]`
//! (add `--toggle-collect='kiln::emit::compile_module'` to callgrind to
//! count the compile alone, `--toggle-collect='kiln::ir::verify::verify_module'`
//! the verifier).

use kiln::emit::compile_module;
use kiln::Engine;
use kiln_bench::measure::sweep_module_text;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "registry".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    if mode == "program" {
        let name = args.next().unwrap_or_else(|| "fib".into());
        let p = kiln_bench::programs::PROGRAMS
            .iter()
            .find(|p| p.name == name)
            .expect("a program of benches/programs/");
        let m = kiln::ir::parse::parse_module(p.name, p.text).expect("program parses");
        let mut total = std::time::Duration::ZERO;
        for _ in 0..n {
            let engine = Engine::new(std::env::consts::ARCH).expect("engine");
            let m = m.clone();
            let t = Instant::now();
            let id = engine.add_module(m).expect("add");
            engine.finalize_module(id).expect("finalize");
            total += t.elapsed();
        }
        println!(
            "program {name}: {:.2} µs per add + finalize",
            total.as_secs_f64() * 1e6 / n as f64
        );
        return;
    }
    let k: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let text = |i: usize| {
        if k == 0 {
            return sweep_module_text(i);
        }
        // One block of `k` multiply-adds: per-instruction cost.
        let mut s = format!("func @f{i}(%x: i64) -> i64 {{\nentry:\n    %s0 = add.i64 %x, 1\n");
        for j in 0..k {
            s.push_str(&format!(
                "    %a{j} = mul.i64 %s{j}, 3\n    %s{} = add.i64 %a{j}, %x\n",
                j + 1
            ));
        }
        s.push_str(&format!("    ret %s{k}\n}}\n"));
        s
    };
    let modules: Vec<kiln::ir::Module> = (0..n)
        .map(|i| kiln::ir::parse::parse_module(&format!("m{i}"), &text(i)).expect("module parses"))
        .collect();
    let t = Instant::now();
    match mode.as_str() {
        "lazy" => {
            let per = kiln_bench::lazy::first_calls(n, 1).expect("lazy first calls");
            println!(
                "first call through a stub: {:.2} µs",
                per.as_secs_f64() * 1e6
            );
        }
        "verify" => {
            for m in &modules {
                kiln::ir::verify::verify_module(m).expect("verifies");
            }
        }
        "registry" => {
            let engine = Engine::new(std::env::consts::ARCH).expect("engine");
            for m in modules {
                let id = engine.add_module(m).expect("add");
                engine.finalize_module(id).expect("finalize");
            }
        }
        _ => {
            let backend = kiln::isa::backend("x86_64").expect("x86_64 backend built");
            let mut bytes = 0;
            for m in &modules {
                bytes += compile_module(m, backend).expect("compiles").text.len();
            }
            println!("{bytes} bytes");
        }
    }
    println!(
        "{mode}: {:.2} µs per module",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
