//! Compile one generated function of a given size, for profilers
//! (`valgrind --tool=callgrind`, `perf record`) and quick timing.
//!
//! Run: `cargo run --release -p kiln-bench --example compile_scale -- 100000 [repeats]`.
//! `compile_scale NAME [repeats]` with `KILN_COMPILE_ONLY=1` compiles the
//! benchmark program `NAME` (`benches/programs/NAME.kir`) instead.

use kiln::emit::compile_module;
use kiln::ir::{parse::parse_module, verify::verify_module};
use kiln_bench::{generated_function, instruction_count};
use std::time::Instant;

/// Parses, verifies and compiles `text`; returns its instruction count.
/// Not inlined, so `valgrind --tool=callgrind
/// --toggle-collect='compile_scale::compile_text'` counts only this.
#[inline(never)]
fn compile_text(text: &str, backend: &'static dyn kiln::isa::Backend) -> usize {
    let module = parse_module("gen", text).expect("generated IR parses");
    verify_module(&module).expect("generated IR verifies");
    let compiled = compile_module(&module, backend).expect("generated IR compiles");
    if std::env::var_os("KILN_HASH").is_some() {
        // FNV-1a of the machine code: equal hashes, equal code.
        let h = compiled.text.iter().fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        println!("code: {} bytes, hash {h:016x}", compiled.text.len());
    }
    std::hint::black_box(compiled.text.len());
    instruction_count(&module)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("corpus") {
        // Hash of every corpus file's machine code (compare two builds).
        let backend = kiln::isa::backend("x86_64").expect("x86_64 backend built");
        let mut h = 0xcbf29ce484222325u64;
        for (path, text) in kiln_bench::corpus() {
            let module = parse_module("c", &text).expect("corpus parses");
            match compile_module(&module, backend) {
                Ok(c) => {
                    for &b in &c.text {
                        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
                    }
                }
                Err(e) => println!("{}: {e}", path.display()),
            }
        }
        println!("corpus hash {h:016x}");
        return;
    }
    let mut args = std::env::args().skip(1);
    let first = args.next();
    let size: usize = first
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let program = kiln_bench::programs::PROGRAMS
        .iter()
        .find(|p| Some(p.name) == first.as_deref());
    let (text, label) = match program {
        Some(p) => (p.text.to_string(), p.name.to_string()),
        None => (generated_function(size), size.to_string()),
    };
    let backend = kiln::isa::backend("x86_64").expect("x86_64 backend built");
    let mut insts = 0;
    if std::env::var_os("KILN_COMPILE_ONLY").is_some() {
        // Parse and verify once, then time the back end alone.
        let module = parse_module("gen", &text).expect("generated IR parses");
        verify_module(&module).expect("generated IR verifies");
        insts = instruction_count(&module);
        let t = Instant::now();
        for _ in 0..repeats {
            let compiled = compile_module(&module, backend).expect("generated IR compiles");
            std::hint::black_box(compiled.text.len());
        }
        let secs = t.elapsed().as_secs_f64() / repeats as f64;
        println!(
            "{label} (compile only): {insts} IR instructions, {:.3} ms, {:.1} ns/inst, {:.3} M inst/s",
            secs * 1e3,
            secs * 1e9 / insts as f64,
            insts as f64 / secs / 1e6
        );
        return;
    }
    let t = Instant::now();
    for _ in 0..repeats {
        insts = compile_text(&text, backend);
    }
    let secs = t.elapsed().as_secs_f64() / repeats as f64;
    println!(
        "{label}: {insts} IR instructions, {:.3} ms, {:.3} M inst/s",
        secs * 1e3,
        insts as f64 / secs / 1e6
    );
}
