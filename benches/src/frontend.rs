//! Front-end throughput: `.kir` text to a verified module, in MB/s and ns
//! per IR instruction, for a few input shapes.
//!
//! Two paths are timed:
//! - the library: [`kiln::ir::parse::parse_module`] then
//!   [`kiln::ir::verify::verify_module`] on text already in memory (the
//!   module is dropped outside the timed region);
//! - the command: `kiln check FILE...` in a child process, wall clock from
//!   spawn to exit, so reading the file, process start and exit are in.
//!   The binary is the `kiln` beside this executable, built by
//!   [`kiln_binary`] with `cargo build --release --bin kiln`.
//!
//! Every figure is the fastest of several samples (see
//! [`crate::measure::fastest_of`]), taken in rounds over the inputs so
//! that a slow spell of the host does not take all of one input's; the
//! goal (issue 9) is ≥ 100 MB/s for the command.

use crate::measure::{fastest_of, Budget};
use crate::{corpus, generated_function, instruction_count};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A module of `n` small exported functions (about 170 bytes of text
/// each: three arithmetic instructions, a compare and a branch to one of
/// two returning blocks), the "many small functions" shape.
pub fn small_functions(n: usize) -> String {
    let mut out = String::with_capacity(n * 180);
    for i in 0..n {
        let _ = write!(
            out,
            "func @f{i}(%a: i64, %b: i64) -> i64 {{\nentry:\n    %c = add.i64 %a, %b\n    \
             %d = mul.i64 %c, {k}\n    %e = slt.i64 %d, %a\n    br %e, yes, no\nyes:\n    \
             ret %d\nno:\n    ret %c\n}}\n",
            k = i % 97 + 1
        );
    }
    out
}

/// One input of the table: a name and the texts of its files.
pub struct Input {
    pub name: String,
    pub files: Vec<(String, String)>,
}

impl Input {
    fn single(name: impl Into<String>, text: String) -> Input {
        let name = name.into();
        Input {
            files: vec![(format!("{}.kir", name.replace(' ', "_")), text)],
            name,
        }
    }

    /// Total bytes of text.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|(_, t)| t.len()).sum()
    }
}

/// The measured shapes: many small functions, the generated function at
/// 20k and 100k instructions, and the test corpus (every file on its own).
pub fn inputs(quick: bool) -> Vec<Input> {
    let mut v = vec![
        Input::single("20,000 small functions", small_functions(20_000)),
        Input::single("generated 20k", generated_function(20_000)),
    ];
    if !quick {
        v.push(Input::single("generated 100k", generated_function(100_000)));
    }
    let files: Vec<(String, String)> = corpus()
        .into_iter()
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    v.push(Input {
        name: format!("corpus ({} files)", files.len()),
        files,
    });
    v
}

/// Parses and verifies every file of `input` once; returns the time of
/// the parse + verify calls and the instruction count.
fn library_sample(input: &Input) -> Result<(Duration, usize), String> {
    let mut total = Duration::ZERO;
    let mut insts = 0;
    for (name, text) in &input.files {
        let t = Instant::now();
        let m = kiln::ir::parse::parse_module(name, text).map_err(|e| e.to_string())?;
        kiln::ir::verify::verify_module(&m).map_err(|e| e.to_string())?;
        total += t.elapsed();
        insts += instruction_count(&m);
        drop(m);
    }
    Ok((total, insts))
}

/// Heap bytes of the IR and of the source maps of `input`'s modules,
/// parsed (functions only: tables, pools, names; the module's symbol table
/// and data are not counted).
pub fn ir_bytes(input: &Input) -> Result<(usize, usize), String> {
    let (mut ir, mut srcmap) = (0, 0);
    for (name, text) in &input.files {
        let m = kiln::ir::parse::parse_module(name, text).map_err(|e| e.to_string())?;
        for f in &m.funcs {
            ir += f.ir_heap_bytes();
            srcmap += f.srcmap.heap_bytes();
        }
    }
    Ok((ir, srcmap))
}

/// The library path's fastest time for `input`, and its instruction count.
pub fn time_library(input: &Input, budget: Budget) -> Result<(Duration, usize), String> {
    let (_, insts) = library_sample(input)?;
    let d = fastest_of(budget, || library_sample(input).map(|(d, _)| d))?;
    Ok((d, insts))
}

/// Builds the `kiln` binary (release) and returns its path, or why not.
pub fn kiln_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory for this executable")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "kiln", "--bin", "kiln"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let bin = dir.join("kiln");
    if status.success() && bin.exists() {
        Ok(bin)
    } else {
        Err(format!("no kiln binary at {}", bin.display()))
    }
}

/// Writes `input`'s files under `dir`; returns their paths.
pub fn write_files(input: &Input, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut paths = Vec::new();
    for (k, (_, text)) in input.files.iter().enumerate() {
        let p = dir.join(format!("{k}.kir"));
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        paths.push(p);
    }
    Ok(paths)
}

/// The fastest wall-clock time of `kiln check` on `paths`.
pub fn time_command(bin: &Path, paths: &[PathBuf], budget: Budget) -> Result<Duration, String> {
    fastest_of(budget, || {
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("check")
            .args(paths)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        let d = t.elapsed();
        if out.status.success() {
            Ok(d)
        } else {
            Err(format!(
                "kiln check failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Rounds over the inputs in which [`frontend_table`] takes each input's
/// samples.
const ROUNDS: u32 = 8;

/// The report's table "Front end: text to verified IR".
pub fn frontend_table(quick: bool, budget: Budget, scratch: &Path) -> Result<String, String> {
    let bin = kiln_binary();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Front end: text to verified IR\n\nlibrary: `parse_module` + `verify_module` on \
         text in memory. command: `kiln check FILE...` in a child process (reading the files, \
         process start and exit included). Fastest of several runs, taken in 8 rounds over \
         the inputs. Goal: command ≥ 100 MB/s. \
         IR B/inst: heap bytes of the parsed functions (tables, operand pools, names) per \
         instruction; srcmap B/inst: their source maps.\n"
    );
    if let Err(e) = &bin {
        let _ = writeln!(md, "(command not measured: {e})\n");
    }
    let _ = writeln!(
        md,
        "| input | bytes | IR insts | library MB/s | library ns/inst | command MB/s | command ms \
         | IR B/inst | srcmap B/inst |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let inputs = inputs(quick);
    let mut paths = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        if bin.is_ok() {
            paths.push(write_files(input, &scratch.join(format!("frontend{k}")))?);
        }
    }
    // Each input's samples are taken in rounds over all the inputs (the
    // fastest of all its rounds' samples is its figure): this VM's host
    // slows a vCPU to about half speed for a second or two at times
    // (session 32 found whole rows measured inside such a spell), and
    // samples spread over the table's whole run are not all caught by one.
    let round = budget.split(ROUNDS);
    let mut lib = vec![(Duration::MAX, 0); inputs.len()];
    let mut cmd = vec![Duration::MAX; inputs.len()];
    for _ in 0..ROUNDS {
        for (k, input) in inputs.iter().enumerate() {
            let (d, insts) = time_library(input, round)?;
            lib[k] = (lib[k].0.min(d), insts);
            if let Ok(bin) = &bin {
                cmd[k] = cmd[k].min(time_command(bin, &paths[k], round)?);
            }
        }
    }
    for (k, input) in inputs.iter().enumerate() {
        let bytes = input.bytes();
        let (lib, insts) = lib[k];
        let (cmd_mbs, cmd_ms) = match &bin {
            Ok(_) => (
                format!("{:.0}", mb_per_s(bytes, cmd[k])),
                format!("{:.1}", cmd[k].as_secs_f64() * 1e3),
            ),
            Err(_) => ("–".into(), "–".into()),
        };
        let (ir, srcmap) = ir_bytes(input)?;
        let per_inst = |b: usize| b as f64 / insts.max(1) as f64;
        eprintln!("frontend: {} done", input.name);
        let _ = writeln!(
            md,
            "| {} | {bytes} | {insts} | {:.0} | {:.1} | {cmd_mbs} | {cmd_ms} | {:.0} | {:.0} |",
            input.name,
            mb_per_s(bytes, lib),
            lib.as_secs_f64() * 1e9 / insts.max(1) as f64,
            per_inst(ir),
            per_inst(srcmap),
        );
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_parses_and_verifies_with_the_expected_size() {
        let small = Input::single("s", small_functions(50));
        let (_, insts) = library_sample(&small).unwrap();
        // Six instructions per function (add, mul, slt, br and two rets).
        assert_eq!(insts, 300);
        assert!(small.bytes() > 50 * 150, "{} bytes", small.bytes());
        for input in inputs(true) {
            let (_, n) = library_sample(&input).unwrap();
            assert!(n > 0, "{}", input.name);
            // At least the instruction table; at most a generous bound.
            let (ir, srcmap) = ir_bytes(&input).unwrap();
            let min = n * std::mem::size_of::<kiln::ir::InstData>();
            assert!(ir >= min && ir < 400 * n, "{}: {ir} bytes", input.name);
            assert!(srcmap > 0 && srcmap < 100 * n, "{}: {srcmap}", input.name);
        }
    }
}
