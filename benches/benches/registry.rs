//! Registry scaling: adding and finalizing N modules one at a time (each
//! calling the previous module's function through an `extern`) in kiln's
//! `Engine`, in one Cranelift `JITModule`, and in a scan-all-modules
//! registry (old-MCJIT style, `kiln_bench::measure::ScanAllRegistry`).
//! Throughput is modules per second over the whole run of N.
//!
//! Run: `cargo bench -p kiln-bench --bench registry`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln_bench::measure::{registry_sweep, Registry};
use std::time::Duration;

fn registry(c: &mut Criterion) {
    for n in [10usize, 100, 1_000, 10_000] {
        let mut g = c.benchmark_group(format!("registry/{n}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(n as u64));
        for (label, which) in [
            ("kiln", Registry::Kiln),
            ("cranelift", Registry::Clif),
            ("scan-all", Registry::ScanAll),
        ] {
            g.bench_with_input(BenchmarkId::from_parameter(label), &which, |b, &w| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            registry_sweep(w, n)
                                .expect("sweep runs")
                                .per_module
                                .iter()
                                .sum::<Duration>()
                        })
                        .sum()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, registry);
criterion_main!(benches);
