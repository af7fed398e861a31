//! Parse, verify and compile many small one-function modules, each phase
//! in its own non-inlined function, so that a profiler shows the front
//! end's share of the compile path for small modules
//! (`valgrind --tool=callgrind` inclusive counts of `parse`, `verify`,
//! `compile`).
//!
//! Run: `cargo run --release -p kiln-bench --example small_modules -- [modules]`.

use kiln::emit::compile_module;
use kiln::ir::{parse::parse_module, verify::verify_module, Module};
use std::time::{Duration, Instant};

#[inline(never)]
fn parse(text: &str) -> Module {
    parse_module("small", text).expect("small module parses")
}

#[inline(never)]
fn verify(m: &Module) {
    verify_module(m).expect("small module verifies");
}

#[inline(never)]
fn compile(m: &Module, backend: &'static dyn kiln::isa::Backend) -> usize {
    compile_module(m, backend)
        .expect("small module compiles")
        .text
        .len()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let backend = kiln::isa::backend("x86_64").expect("x86_64 backend built");
    let texts: Vec<String> = (0..n)
        .map(|i| kiln_bench::frontend::small_functions(1).replace("@f0", &format!("@f{i}")))
        .collect();
    let (mut tp, mut tv, mut tc) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut bytes = 0;
    for text in &texts {
        let t0 = Instant::now();
        let m = parse(text);
        let t1 = Instant::now();
        verify(&m);
        let t2 = Instant::now();
        bytes += compile(&m, backend);
        tc += t2.elapsed();
        tp += t1 - t0;
        tv += t2 - t1;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "{n} modules ({bytes} code bytes): parse {:.0} ns, verify {:.0} ns, compile {:.0} ns per module",
        per(tp),
        per(tv),
        per(tc)
    );
}
