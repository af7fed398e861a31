//! `cargo run -p kiln-bench --release --bin shape -- SHAPE N [ITERS]`: a
//! profiling aid for the compile-scaling shapes ([`kiln_bench::shapes`]).
//! Compiles shape SHAPE (`generated`, `args`, `loops`, `switch`, `funcs`) at
//! size N ITERS times (default 10) through `Engine::add_module` +
//! `finalize_module` and prints the fastest time (process CPU time) per IR
//! instruction. As in the report's table, the generated function's compiles
//! go through ITERS different functions of size N
//! ([`Shape::variants`]); `KILN_SHAPE_SAME=1` compiles the first one
//! every time instead.
//! `-- print SHAPE N` prints the module text instead.
//! `-- table SHAPE [SAMPLES]` measures the shape's row of the report's
//! "compile scaling" table alone (N = 1k, 10k, 100k, the sizes' samples
//! interleaved as there, [`kiln_bench::scaling::measure_shape`]), to
//! profile a cell under the report's own heap history.

use kiln_bench::instruction_count;
use kiln_bench::measure::parse;
use kiln_bench::scaling::kiln_compile_cpu;
use kiln_bench::shapes::Shape;

fn shape(name: &str) -> Option<Shape> {
    Some(match name {
        "generated" => Shape::Generated,
        "args" => Shape::BlockArgs,
        "loops" => Shape::NestedLoops,
        "switch" => Shape::Switch,
        "funcs" => Shape::SmallFunctions,
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: shape [print] generated|args|loops|switch|funcs N [ITERS]";
    if args.first().map(String::as_str) == Some("table") {
        let Some(s) = args.get(1).and_then(|a| shape(a)) else {
            eprintln!("usage: shape table generated|args|loops|switch|funcs [SAMPLES]");
            std::process::exit(2);
        };
        let samples = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(7);
        if let Err(e) = table(s, samples) {
            eprintln!("shape: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (print, rest) = match args.first().map(String::as_str) {
        Some("print") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let (Some(s), Some(n)) = (
        rest.first().and_then(|a| shape(a)),
        rest.get(1).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let text = s.text(n);
    if print {
        print!("{text}");
        return;
    }
    let iters: usize = rest.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let variants = if std::env::var_os("KILN_SHAPE_SAME").is_some() {
        1
    } else {
        iters.clamp(1, s.variants())
    };
    let mut modules = Vec::new();
    for k in 0..variants {
        match parse("shape", &s.variant(n, k)) {
            Ok(m) => modules.push(m),
            Err(e) => {
                eprintln!("shape: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut best = f64::INFINITY;
    for i in 0..iters {
        let m = &modules[i % modules.len()];
        match kiln_compile_cpu(m) {
            Ok(d) => best = best.min(d.as_secs_f64() * 1e9 / instruction_count(m) as f64),
            Err(e) => {
                eprintln!("shape: {e}");
                std::process::exit(1);
            }
        }
    }
    let insts = instruction_count(&modules[0]);
    println!(
        "{} N={n}: {insts} insts, {:.3} ms, {best:.1} ns/inst",
        s.label(),
        best * insts as f64 / 1e6,
    );
}

/// User time, system time (ns) and minor page faults of this process.
fn usage() -> [f64; 3] {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    [ns(ru.ru_utime), ns(ru.ru_stime), ru.ru_minflt as f64]
}

/// The report's scaling row of `s` (sizes 1k, 10k, 100k, each sample
/// ⌈100k ÷ N⌉ compiles, the sizes' samples in turn, the fastest sample
/// per size: [`kiln_bench::scaling::measure_shape`]'s method), with the
/// fastest sample's CPU time split into user and system time and its
/// minor page faults, per IR instruction.
fn table(s: Shape, samples: usize) -> Result<(), String> {
    let sizes = [1_000usize, 10_000, 100_000];
    let mut cells = Vec::new();
    for &n in &sizes {
        let reps = 100_000usize.div_ceil(n);
        let mut modules = Vec::new();
        for k in 0..reps.min(s.variants()) {
            modules.push(parse("shape", &s.variant(n, k))?);
        }
        let insts: usize = (0..reps)
            .map(|i| instruction_count(&modules[i % modules.len()]))
            .sum();
        cells.push((modules, reps, insts, [f64::INFINITY; 4]));
    }
    for _ in 0..samples {
        for (modules, reps, insts, best) in &mut cells {
            let mut acc = [0.0; 4];
            for i in 0..*reps {
                let engine =
                    kiln::Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
                let input = modules[i % modules.len()].clone();
                let u0 = usage();
                let t = kiln_compile_timed(&engine, input)?;
                let u1 = usage();
                drop(engine);
                acc[0] += t;
                for k in 0..3 {
                    acc[k + 1] += u1[k] - u0[k];
                }
            }
            let per = acc.map(|x| x / *insts as f64);
            if per[0] < best[0] {
                *best = per;
            }
        }
    }
    for (modules, _, _, best) in &cells {
        println!(
            "{:>7} insts: {:6.1} ns/inst (user {:6.1} sys {:5.1}) faults/1k insts {:5.1}",
            instruction_count(&modules[0]),
            best[0],
            best[1],
            best[2],
            best[3] * 1000.0
        );
    }
    println!("{} 100k/1k {:.2}", s.label(), cells[2].3[0] / cells[0].3[0]);
    Ok(())
}

/// `add_module` + `finalize_module` of `m` on `engine`, in process CPU
/// time (ns), as [`kiln_bench::scaling::kiln_compile_cpu`] times it.
fn kiln_compile_timed(engine: &kiln::Engine, m: kiln::ir::Module) -> Result<f64, String> {
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
    };
    let t = cpu();
    let id = engine.add_module(m).map_err(|e| e.to_string())?;
    engine.finalize_module(id).map_err(|e| e.to_string())?;
    Ok(cpu() - t)
}
