//! Code speed, kiln against Cranelift: run time of `@main(n)` of each
//! program in `benches/programs/`, compiled by kiln and by Cranelift
//! (0.135.8, regalloc `backtracking`) at opt_level `none` and `speed`. Each
//! engine's result is checked before timing.
//!
//! Run: `cargo bench -p kiln-bench --bench code_speed`.

use criterion::{criterion_group, criterion_main, Criterion};
use kiln_bench::measure::{parse, CompiledMain};
use kiln_bench::programs::PROGRAMS;
use kiln_bench::to_cranelift::ClifOpts;

fn code_speed(c: &mut Criterion) {
    for p in PROGRAMS {
        let m = parse(p.name, p.text).expect("program parses");
        let mut engines = vec![(
            "kiln".to_string(),
            CompiledMain::kiln(&m).expect("kiln compiles"),
        )];
        for o in [
            ClifOpts::new("none", "backtracking"),
            ClifOpts::new("speed", "backtracking"),
        ] {
            engines.push((
                o.label(),
                CompiledMain::clif(&m, o).expect("Cranelift compiles"),
            ));
        }
        let mut g = c.benchmark_group(format!("code_speed/{}", p.name));
        g.sample_size(10);
        for (label, e) in &engines {
            assert_eq!(e.call(p.bench_arg), p.bench_result, "{} by {label}", p.name);
            g.bench_function(label.as_str(), |b| {
                b.iter(|| e.call(std::hint::black_box(p.bench_arg)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, code_speed);
criterion_main!(benches);
