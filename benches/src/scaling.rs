//! The report's "compile scaling" table: kiln's compile time per IR
//! instruction for each shape of [`crate::shapes`] at N = 1,000, 10,000 and
//! 100,000, with the ratio of the largest size to the smallest (issue 9's
//! goal: at most 1.5, i.e. a compile cost linear in the input), and the
//! peak memory of `kiln run` on the generated 100k-instruction function
//! (goal: under 40 MB), measured in a child process.
//!
//! Each module timed is first run once through the interpreter and through
//! compiled code and the two results compared, so that a shape that
//! compiles fast but wrongly is reported as an error, not as a figure.
//!
//! Every cell is timed the same way ([`Sampling`]): the same number of
//! samples at every size, each sample the same amount of work (⌈largest N ÷
//! N⌉ compiles in a row), the cell the fastest sample. The fastest of many
//! short samples and the fastest of a few long ones are not comparable: on
//! a shared machine the first finds the quietest millisecond, the second
//! cannot, and their ratio would measure that. For the same reason the
//! sizes' samples are taken in turn ([`measure_shape`]), and a sample of
//! the generated function compiles different functions of its size
//! ([`Shape::variants`]): the same one a hundred times in a row lets the
//! branch predictors learn it, which only a small compile allows.

use crate::measure::{parse, CompiledMain};
use crate::shapes::Shape;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The argument the shapes' `@main` is called with when checked.
const CHECK_ARG: i64 = 5;

/// Timed samples per cell in the full report and in `--quick`.
const SAMPLES: usize = 7;
const QUICK_SAMPLES: usize = 3;

/// How one cell is timed: `samples` samples, each the mean of `reps`
/// compiles in a row; the cell's time is the fastest sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Timed samples (the same at every size).
    pub samples: usize,
    /// Compiles per sample.
    pub reps: usize,
}

impl Sampling {
    /// `samples` samples of size `n`, each `ceil(largest / n)` compiles:
    /// since a shape's instruction count grows linearly with N, every sample
    /// at every size compiles about as many instructions as one compile at
    /// the largest size.
    pub fn for_size(samples: usize, n: usize, largest: usize) -> Sampling {
        Sampling {
            samples: samples.max(1),
            reps: largest.div_ceil(n.max(1)).max(1),
        }
    }
}

/// One measured cell: a shape at one size.
#[derive(Clone, Copy, Debug)]
pub struct ScalingCell {
    /// IR instructions in the shape's module (its first variant).
    pub insts: usize,
    /// Compile time (`Engine::add_module` + `finalize_module`) per IR
    /// instruction of the fastest sample, in nanoseconds.
    pub ns_per_inst: f64,
}

/// A shape at one size, ready to be timed: the modules one sample compiles
/// in turn (the shape's variants, at most one per compile of a sample),
/// each already checked against the interpreter.
pub struct Prepared {
    modules: Vec<kiln::ir::Module>,
    /// Compiles per sample.
    reps: usize,
    /// IR instructions compiled by one sample.
    insts_per_sample: usize,
}

impl Prepared {
    /// Parses the variants of `shape` at size `n` one sample of `reps`
    /// compiles uses, and checks that compiled code and the interpreter
    /// agree on `@main(CHECK_ARG)` for each (which also compiles each once:
    /// the same warm-up at every size).
    pub fn new(shape: Shape, n: usize, reps: usize) -> Result<Prepared, String> {
        let reps = reps.max(1);
        let mut modules = Vec::new();
        for k in 0..reps.min(shape.variants()) {
            let m = parse("shape", &shape.variant(n, k))?;
            let compiled = CompiledMain::kiln(&m)?.call(CHECK_ARG);
            let interpreted = interpret_main(&m, CHECK_ARG)?;
            if compiled != interpreted {
                return Err(format!(
                    "{} N={n} variant {k}: compiled code returns {compiled}, the interpreter \
                     {interpreted}",
                    shape.label()
                ));
            }
            modules.push(m);
        }
        let insts_per_sample = (0..reps)
            .map(|i| crate::instruction_count(&modules[i % modules.len()]))
            .sum();
        Ok(Prepared {
            modules,
            reps,
            insts_per_sample,
        })
    }

    /// IR instructions of the first variant.
    pub fn insts(&self) -> usize {
        crate::instruction_count(&self.modules[0])
    }

    /// The modules, in the order a sample compiles them (cyclically).
    pub fn modules(&self) -> &[kiln::ir::Module] {
        &self.modules
    }

    /// One timed sample: `reps` compiles, going through the variants in
    /// turn; compile time per IR instruction in nanoseconds.
    pub fn sample(&self) -> Result<f64, String> {
        let mut total = Duration::ZERO;
        for i in 0..self.reps {
            total += kiln_compile_cpu(&self.modules[i % self.modules.len()])?;
        }
        Ok(total.as_secs_f64() * 1e9 / self.insts_per_sample.max(1) as f64)
    }
}

/// Times `shape` at each of `sizes`, `samples` samples per size as
/// [`Sampling::for_size`] says, and returns one cell per size (its fastest
/// sample).
///
/// The samples of the sizes are taken in turn (one of each size per round),
/// so that a busy spell of the machine falls on all sizes alike rather than
/// on whichever cell was being timed then: the cells are compared with
/// each other, so they are timed over the same stretch of time.
pub fn measure_shape(
    shape: Shape,
    sizes: &[usize],
    samples: usize,
) -> Result<Vec<ScalingCell>, String> {
    let largest = sizes.iter().copied().max().unwrap_or(1);
    let prepared = sizes
        .iter()
        .map(|&n| Prepared::new(shape, n, Sampling::for_size(samples, n, largest).reps))
        .collect::<Result<Vec<_>, _>>()?;
    let mut best = vec![f64::INFINITY; sizes.len()];
    for _ in 0..samples.max(1) {
        for (p, b) in prepared.iter().zip(&mut best) {
            *b = b.min(p.sample()?);
        }
    }
    Ok(prepared
        .iter()
        .zip(best)
        .map(|(p, ns_per_inst)| ScalingCell {
            insts: p.insts(),
            ns_per_inst,
        })
        .collect())
}

/// This process's CPU time (all threads).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant every Linux kernel supports.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `Engine::add_module` + `finalize_module` of `m` on a fresh engine, in
/// process CPU time: on a shared machine, time spent waiting for a core is
/// not compile time (what the ratio compares).
pub fn kiln_compile_cpu(m: &kiln::ir::Module) -> Result<Duration, String> {
    let engine = kiln::Engine::new(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let input = m.clone();
    let t = process_cpu_time();
    let id = engine.add_module(input).map_err(|e| e.to_string())?;
    engine.finalize_module(id).map_err(|e| e.to_string())?;
    let d = process_cpu_time().saturating_sub(t);
    drop(engine);
    Ok(d)
}

/// `@main(arg)` of `m` in the reference interpreter.
fn interpret_main(m: &kiln::ir::Module, arg: i64) -> Result<i64, String> {
    let modules = std::slice::from_ref(m);
    let host = kiln::host::HostFunctions::new();
    let mut it = kiln::interp::Interpreter::new(modules, &host).map_err(|e| e.to_string())?;
    match it
        .call("main", &[kiln::Val::I64(arg)])
        .map_err(|e| e.to_string())?
    {
        Some(kiln::Val::I64(v)) => Ok(v),
        other => Err(format!("interpreter: @main returned {other:?}")),
    }
}

/// The report's "compile scaling" table (markdown) and the `kiln run` peak
/// RSS line. `quick` measures N = 1,000 and 10,000 only, with fewer
/// samples, and skips the RSS.
pub fn scaling_table(quick: bool) -> Result<String, String> {
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let largest = *sizes.last().unwrap_or(&1);
    let samples = if quick { QUICK_SAMPLES } else { SAMPLES };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Compile scaling\n\nkiln's compile time (`Engine::add_module` + `finalize_module`, \
         in process CPU time so that waiting for a core on a shared machine does not count) per \
         IR instruction, in ns, for shapes that used to make the back end super-linear \
         (generators in `benches/src/shapes.rs`; each shape's compiled result is checked against \
         the interpreter first). Each cell is the fastest of {samples} samples, a sample being \
         the mean of ⌈{} ÷ N⌉ compiles in a row: the same number of samples of the same amount \
         of work at every size, the sizes' samples taken in turn. The generated function's \
         compiles in a sample are of different random functions of that size (the same one \
         repeated lets the branch predictors learn a small compile). Goal: the last column, \
         time per instruction at the largest N over that at N = 1,000, at most 1.5.\n",
        fmt_n(largest)
    );
    let _ = write!(md, "| shape |");
    for n in sizes {
        let _ = write!(md, " insts N={} | ns/inst N={} |", fmt_n(*n), fmt_n(*n));
    }
    let last = fmt_n(*sizes.last().unwrap_or(&0));
    let _ = writeln!(md, " {last}/1k |");
    let _ = writeln!(md, "|---|{}---:|", "---:|---:|".repeat(sizes.len()));
    for shape in Shape::ALL {
        let cells = measure_shape(shape, sizes, samples)?;
        eprintln!("scaling: {} done", shape.label());
        let _ = write!(md, "| {} |", shape.label());
        for c in &cells {
            let _ = write!(md, " {} | {:.1} |", c.insts, c.ns_per_inst);
        }
        let ratio = cells.last().map_or(0.0, |c| c.ns_per_inst) / cells[0].ns_per_inst;
        let _ = writeln!(md, " {ratio:.2} |");
    }
    if !quick {
        let kib = kiln_run_peak_rss(100_000)?;
        let _ = writeln!(
            md,
            "\nPeak RSS of `kiln run` on the generated 100k-instruction function (child process, \
             `getrusage` of the child): {:.1} MB (goal: under 40 MB).",
            kib as f64 / 1024.0
        );
    }
    Ok(md)
}

fn fmt_n(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The `kiln` binary of this build: beside the running executable
/// (`target/release/kiln`), built with cargo first if it is not there.
fn kiln_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory of the executable")?;
    let bin = dir.join("kiln");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--bin", "kiln", "--manifest-path"])
            .arg(manifest)
            .status()
            .map_err(|e| format!("building kiln: {e}"))?;
        if !status.success() || !bin.exists() {
            return Err(format!("building kiln did not produce {}", bin.display()));
        }
    }
    Ok(bin)
}

/// Set in a child of the report that runs the command in its arguments
/// and prints that command's peak RSS (see [`kiln_run_peak_rss`]).
pub const SPAWNER_ENV: &str = "KILN_BENCH_PEAK_RSS_OF";

/// Peak RSS in KiB of `kiln run` on the generated function of `n`
/// instructions (with a `@main`).
///
/// Linux keeps a process's `ru_maxrss` across `execve`, so a command
/// spawned straight from the report (hundreds of MB by then) would report
/// the report's size. The report therefore re-runs itself as a small
/// intermediate process ([`spawner_main`]) that spawns `kiln run` and reads
/// its child's `ru_maxrss` from `wait4`.
pub fn kiln_run_peak_rss(n: usize) -> Result<u64, String> {
    let bin = kiln_binary()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/report");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!("generated{n}.kir"));
    std::fs::write(&file, Shape::Generated.text(n)).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .env(SPAWNER_ENV, "1")
        .arg(&bin)
        .arg("run")
        .arg(&file)
        .args(["--", &CHECK_ARG.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (Some(result), Some(kib)) = (lines.next(), lines.next()) else {
        return Err(format!(
            "kiln run {}: failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    };
    if !out.status.success() || result.trim().parse::<i64>().is_err() {
        return Err(format!(
            "kiln run {}: unexpected output {text:?}",
            file.display()
        ));
    }
    kib.trim()
        .parse()
        .map_err(|e| format!("peak RSS {kib:?}: {e}"))
}

/// In the intermediate process started by [`kiln_run_peak_rss`]: runs the
/// command given as this process's arguments, prints its standard output,
/// then its peak RSS in KiB, and exits with its status. Does nothing in any
/// other process; call it first thing in `main`.
pub fn spawner_main() {
    if std::env::var_os(SPAWNER_ENV).is_none() {
        return;
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        std::process::exit(2);
    };
    let child = match std::process::Command::new(cmd)
        .args(rest)
        .env_remove(SPAWNER_ENV)
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", cmd.to_string_lossy());
            std::process::exit(1)
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout;
    let mut out = String::new();
    if let Some(o) = stdout.as_mut() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is this process's own child, not reaped yet (std's
    // `Child` was taken apart above without waiting); `status` and `usage`
    // are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let ok = r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    print!("{out}");
    // Linux reports ru_maxrss in KiB.
    println!("{}", usage.ru_maxrss);
    std::process::exit(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_compiles_and_agrees_with_the_interpreter() {
        for shape in Shape::ALL {
            let cells = measure_shape(shape, &[50, 100], 1).unwrap();
            assert_eq!(cells.len(), 2);
            assert!(
                cells[0].insts >= 50,
                "{}: {} insts",
                shape.label(),
                cells[0].insts
            );
            assert!(
                cells[1].insts >= 100,
                "{}: {} insts",
                shape.label(),
                cells[1].insts
            );
            assert!(cells.iter().all(|c| c.ns_per_inst > 0.0));
        }
    }

    #[test]
    fn a_sample_compiles_different_generated_functions_of_one_size() {
        let p = Prepared::new(Shape::Generated, 200, 3).unwrap();
        let m = p.modules();
        assert_eq!(m.len(), 3);
        let texts: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert!(texts[0] != texts[1] && texts[1] != texts[2] && texts[0] != texts[2]);
        for m in m {
            let insts = crate::instruction_count(m);
            assert!((200..=215).contains(&insts), "{insts} insts");
        }
        assert_eq!(
            texts[0],
            parse("shape", &Shape::Generated.text(200))
                .unwrap()
                .to_string()
        );
        // A regular shape: one module, compiled `reps` times.
        assert_eq!(
            Prepared::new(Shape::Switch, 20, 3).unwrap().modules().len(),
            1
        );
    }

    #[test]
    fn every_sample_is_about_one_compile_of_the_largest_size() {
        assert_eq!(Sampling::for_size(7, 1_000, 100_000).reps, 100);
        assert_eq!(Sampling::for_size(7, 10_000, 100_000).reps, 10);
        assert_eq!(Sampling::for_size(7, 100_000, 100_000).reps, 1);
        assert_eq!(Sampling::for_size(3, 1_500, 10_000).reps, 7);
        assert_eq!(Sampling::for_size(7, 1_000, 100_000).samples, 7);
        assert_eq!(
            Sampling::for_size(0, 0, 0),
            Sampling {
                samples: 1,
                reps: 1
            }
        );
    }

    #[test]
    fn sizes_are_labelled() {
        assert_eq!(fmt_n(1_000), "1k");
        assert_eq!(fmt_n(100_000), "100k");
        assert_eq!(fmt_n(1_500), "1500");
    }
}
