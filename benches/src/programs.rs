//! The code-speed workloads: `.kir` programs in `benches/programs/`, each
//! exporting `@main(%n: i64) -> i64`, with the argument used in tests and
//! the one used for timing, and the result each must return.
//!
//! Expected results: fib, sieve, spectral-norm (1274219991 at n = 100) and
//! nbody (-169087605 after 1,000 steps) match the published values of these
//! classic programs; sort and lcs agree with a Python model of the same
//! computation; the others were computed by kiln's interpreter and
//! agree with kiln's JIT and Cranelift (`tests/differential.rs`, and the
//! report re-checks every engine before timing).

/// One workload.
pub struct Program {
    pub name: &'static str,
    pub text: &'static str,
    /// A small argument for the interpreter-backed tests.
    pub test_arg: i64,
    pub test_result: i64,
    /// The argument timed by the benchmarks.
    pub bench_arg: i64,
    pub bench_result: i64,
}

macro_rules! program {
    ($name:literal, $test:expr => $tr:expr, $bench:expr => $br:expr) => {
        Program {
            name: $name,
            text: include_str!(concat!("../programs/", $name, ".kir")),
            test_arg: $test,
            test_result: $tr,
            bench_arg: $bench,
            bench_result: $br,
        }
    };
}

/// How many of [`PROGRAMS`] (the first ones) are the general workloads,
/// the code table's programs when issue 9 set its code-speed goal (the
/// geometric mean of kiln `none` ÷ Cranelift `speed` over these stays
/// ≤ 1.02); the rest were added for the `speed` tier, as workloads where
/// an optimizer matters.
pub const GENERAL_PROGRAMS: usize = 8;

/// Every workload, in report order.
pub static PROGRAMS: &[Program] = &[
    program!("fib", 20 => 6765, 30 => 832_040),
    program!("sieve", 1000 => 168, 2_000_000 => 148_933),
    program!("nbody", 20 => -169_070_786, 100_000 => -169_079_859),
    program!("mandelbrot", 20 => 157, 400 => 63_572),
    program!("matmul", 20 => 43_280, 150 => 18_222_900),
    program!("spectral_norm", 20 => 1_273_839_840, 300 => 1_274_223_985),
    program!("bytecode", 20 => 368, 1_000_000 => 500_598_277_824),
    program!("calls", 20 => 822, 3_000_000 => 19_319_509_002_272),
    // Where an optimizer matters (the `speed` tier's workloads).
    program!("stencil", 10 => 8_464_601_236_866_622_492, 300 => -8_939_738_179_494_812_316),
    program!("digits", 20 => 229_756_716, 300_000 => 789_469_066),
    program!("particles", 20 => 15_089_308, 10_000 => 3_738_021_337_947),
    program!("poly", 20 => 2_459, 2_000_000 => 247_440_112),
    program!("sort", 20 => 286_907_426_921, 50_000 => 1_787_511_918_987_565_174),
    program!("lcs", 20 => 3_336_974_712_439_861_866, 1_500 => -574_842_156_656_752_563),
];
