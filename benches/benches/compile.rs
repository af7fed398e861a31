//! Compile throughput: IR instructions per second from text to machine code.
//!
//! Stages measured: parse + verify + compile (lower, allocate registers,
//! emit) into a `CompiledModule`, on generated functions of 1k and 10k
//! instructions and on the repository's test-program corpus.
//!
//! Run: `cargo bench -p kiln-bench --bench compile`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::emit::compile_module;
use kiln::ir::{parse::parse_module, verify::verify_module};
use kiln_bench::{corpus, generated_function, instruction_count};

fn compile_text(name: &str, text: &str) -> usize {
    let backend = kiln::isa::backend("x86_64").expect("x86_64 backend built");
    let module = parse_module(name, text).expect("benchmark input parses");
    verify_module(&module).expect("benchmark input verifies");
    let compiled = compile_module(&module, backend).expect("benchmark input compiles");
    compiled.text.len()
}

fn generated(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile/generated");
    for size in [1_000usize, 10_000] {
        let text = generated_function(size);
        let module = parse_module("gen", &text).expect("generated IR parses");
        let insts = instruction_count(&module) as u64;
        group.throughput(Throughput::Elements(insts));
        group.bench_with_input(BenchmarkId::from_parameter(size), &text, |b, text| {
            b.iter(|| compile_text("gen", text))
        });
    }
    group.finish();
}

fn test_corpus(c: &mut Criterion) {
    let files = corpus();
    let insts: usize = files
        .iter()
        .map(|(p, t)| {
            parse_module(&p.display().to_string(), t)
                .map(|m| instruction_count(&m))
                .unwrap_or(0)
        })
        .sum();
    let mut group = c.benchmark_group("compile/corpus");
    group.throughput(Throughput::Elements(insts as u64));
    group.bench_function(format!("{} files", files.len()), |b| {
        b.iter(|| {
            files
                .iter()
                .map(|(p, t)| compile_text(&p.display().to_string(), t))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, generated, test_corpus);
criterion_main!(benches);
