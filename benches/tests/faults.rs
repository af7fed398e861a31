//! The interrupt-check measurement runs code that computes what the
//! unchecked code computes: every benchmark program's `@main` returns the
//! same result with interrupt checks compiled in.
//!
//! Run: `cargo test -p kiln-bench --release`.

use kiln_bench::faults::kiln_interruptible;
use kiln_bench::measure::{parse, CompiledMain};
use kiln_bench::programs::PROGRAMS;

#[test]
fn interruptible_code_computes_the_same_results() {
    for p in PROGRAMS {
        let m = parse(p.name, p.text).expect("parses");
        let plain = CompiledMain::kiln(&m).expect("compiles");
        let checked = kiln_interruptible(&m).expect("compiles with checks");
        for n in [p.test_arg, p.test_arg + 1] {
            assert_eq!(checked.call(n), plain.call(n), "{} at {n}", p.name);
        }
    }
}
