//! Compile speed, kiln against Cranelift: kiln IR (parsed, in memory) to
//! finalized machine code, as IR instructions per second. kiln:
//! `Engine::add_module` + `finalize_module`; Cranelift (0.135.8):
//! translation + `define_function` + `finalize_definitions` at opt_level
//! `none`/`speed` with regalloc `single_pass`/`backtracking`.
//!
//! Run: `cargo bench -p kiln-bench --bench compare_compile`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::ir::Module;
use kiln_bench::measure::{clif_compile, compile_corpus, kiln_compile, parse};
use kiln_bench::programs::PROGRAMS;
use kiln_bench::to_cranelift::ClifOpts;
use kiln_bench::{generated_function, instruction_count};
use std::time::Duration;

fn each(modules: &[Module], f: impl Fn(&Module) -> Result<Duration, String>) -> Duration {
    modules
        .iter()
        .map(|m| f(m).expect("benchmark input compiles"))
        .sum()
}

fn compare(c: &mut Criterion) {
    let mut inputs: Vec<(String, Vec<Module>)> = vec![("corpus".into(), compile_corpus())];
    inputs.push((
        "kernels".into(),
        PROGRAMS
            .iter()
            .map(|p| parse(p.name, p.text).expect("program parses"))
            .collect(),
    ));
    for n in [1_000usize, 10_000] {
        let m = parse("gen", &generated_function(n)).expect("generated IR parses");
        inputs.push((format!("generated-{n}"), vec![m]));
    }
    for (name, modules) in &inputs {
        let mut g = c.benchmark_group(format!("compare_compile/{name}"));
        g.sample_size(10);
        let insts: usize = modules.iter().map(instruction_count).sum();
        g.throughput(Throughput::Elements(insts as u64));
        g.bench_function("kiln", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| each(modules, |m| kiln_compile(std::slice::from_ref(m))))
                    .sum()
            })
        });
        for opts in ClifOpts::ALL {
            g.bench_with_input(BenchmarkId::from_parameter(opts.label()), &opts, |b, &o| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| each(modules, |m| clif_compile(std::slice::from_ref(m), o)))
                        .sum()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, compare);
criterion_main!(benches);
