use kiln_bench::measure::{fastest_of, parse, Budget, CompiledMain};
use kiln_bench::programs::PROGRAMS;
use kiln_bench::to_cranelift::ClifOpts;
use std::time::{Duration, Instant};
fn main() {
    let want: Vec<String> = std::env::args().skip(1).collect();
    let budget = Budget {
        min_time: Duration::from_millis(1500),
        min_iters: 10,
        max_iters: 400,
    };
    for p in PROGRAMS {
        if !want.is_empty() && !want.iter().any(|w| w == p.name) {
            continue;
        }
        let m = parse(p.name, p.text).unwrap();
        let c = CompiledMain::clif(&m, ClifOpts::new("speed", "backtracking")).unwrap();
        let k = CompiledMain::kiln(&m).unwrap();
        let s = CompiledMain::kiln_at(&m, kiln::opt::OptLevel::Speed).unwrap();
        let mut t = Vec::new();
        for e in [&k, &s, &c] {
            assert_eq!(e.call(p.bench_arg), p.bench_result);
            t.push(
                fastest_of(budget, || {
                    let t = Instant::now();
                    std::hint::black_box(e.call(p.bench_arg));
                    Ok(t.elapsed())
                })
                .unwrap()
                .as_secs_f64()
                    * 1e3,
            );
        }
        println!(
            "{:14} none {:8.2}  speed {:8.2}  clif {:8.2}   none/clif {:.2}  speed/clif {:.2}",
            p.name,
            t[0],
            t[1],
            t[2],
            t[0] / t[2],
            t[1] / t[2]
        );
    }
}
