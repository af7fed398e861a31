//! kiln's benchmarks and its comparison with Cranelift:
//! - this file: shared inputs — generated IR programs of a chosen size and
//!   the repository's test programs as a corpus;
//! - [`to_cranelift`]: kiln IR → Cranelift IR, with kiln's semantics;
//! - [`programs`]: the code-speed workloads (`benches/programs/*.kir`);
//! - [`debug_cost`]: what line tables and unwind registration cost at
//!   compile time;
//! - [`measure`]: the three comparisons (compile speed, code speed,
//!   registry scaling) and the scan-all registry baseline;
//! - [`cputime`]: run time as thread CPU time, engines taking turns;
//! - [`frontend`]: `.kir` text to verified IR (MB/s, ns per instruction);
//! - [`lazy`]: lazy compilation through stubs, and calls while another
//!   thread compiles;
//! - [`rss`]: peak memory of many small modules, measured in child
//!   processes;
//! - [`shapes`]: the compile-scaling shapes (N block arguments, N nested
//!   loops, ...);
//! - [`scaling`]: the compile-scaling table over those shapes and the peak
//!   RSS of `kiln run` on a 100k-instruction function;
//! - [`svg`]: the report's charts;
//! - [`faults`]: the cost of interrupt checks and of a call through the
//!   process executor (issue 11).
//!
//! Generators are deterministic (a fixed xorshift seed), so two runs measure
//! the same programs.

pub mod cputime;
pub mod debug_cost;
pub mod faults;
pub mod frontend;
pub mod lazy;
pub mod measure;
pub mod programs;
pub mod rss;
pub mod scaling;
pub mod shapes;
pub mod svg;
pub mod to_cranelift;

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// A deterministic xorshift64 generator.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A module with one exported function `@f(i64, i64) -> i64` of about
/// `insts` instructions: straight-line integer arithmetic over a growing
/// pool of live values, cut into blocks joined by conditional branches with
/// block arguments every few dozen instructions, and a loop around the
/// whole body, so that liveness, splitting and move resolution all work.
pub fn generated_function(insts: usize) -> String {
    generated_variant(insts, 0)
}

/// Variant `k` of [`generated_function`]: the same kind of function of the
/// same size, drawn with another seed (variant 0 is `generated_function`).
pub fn generated_variant(insts: usize, k: u64) -> String {
    let mut rng = XorShift::new(0x5eed ^ insts as u64 ^ k.rotate_left(32));
    let mut out = String::new();
    let _ = writeln!(out, "; generated: {insts} instructions");
    out.push_str("func @f(%a: i64, %b: i64) -> i64 {\nentry:\n    jmp head(0, %a, %b)\n");
    out.push_str("head(%n: i64, %x0: i64, %y0: i64):\n");
    let mut live: Vec<String> = vec!["%x0".into(), "%y0".into(), "%n".into()];
    let mut count = 0usize;
    let mut block = 0usize;
    let ops = ["add", "sub", "mul", "xor", "and", "or", "shl", "sar"];
    while count < insts {
        let name = format!("%t{count}");
        let a = &live[rng.below(live.len() as u64) as usize];
        let b = &live[(live.len() - 1).saturating_sub(rng.below(8) as usize)];
        let op = ops[rng.below(ops.len() as u64) as usize];
        if rng.below(4) == 0 {
            let _ = writeln!(out, "    {name} = {op}.i64 {a}, {}", rng.below(1000) + 1);
        } else {
            let _ = writeln!(out, "    {name} = {op}.i64 {a}, {b}");
        }
        live.push(name);
        if live.len() > 24 {
            live.remove(rng.below(live.len() as u64 - 8) as usize + 3);
        }
        count += 1;
        if count.is_multiple_of(40) && count < insts {
            // Branch to the next block through both edges, passing values.
            let c = format!("%c{count}");
            let v = live.last().cloned().unwrap_or_default();
            let _ = writeln!(out, "    {c} = slt.i64 {v}, 0");
            let next = block + 1;
            let p = live[live.len() - 2].clone();
            let _ = writeln!(out, "    br {c}, b{next}({v}, {p}), b{next}({p}, {v})");
            let _ = writeln!(out, "b{next}(%p{next}: i64, %q{next}: i64):");
            live.push(format!("%p{next}"));
            live.push(format!("%q{next}"));
            block = next;
            count += 2;
        }
    }
    let last = live.last().cloned().unwrap_or_default();
    let first = live[0].clone();
    out.push_str("    %n2 = add.i64 %n, 1\n    %more = slt.i64 %n2, 3\n");
    let _ = writeln!(out, "    br %more, head(%n2, {last}, {first}), exit");
    let _ = writeln!(out, "exit:\n    ret {last}\n}}");
    out
}

/// Every `.kir` file under `tests/ir` and `examples` of the repository that
/// parses and verifies on its own, with its text.
pub fn corpus() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut stack = vec![root.join("tests/ir"), root.join("examples")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "kir") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    let name = p.display().to_string();
                    let ok = kiln::ir::parse::parse_module(&name, &text)
                        .and_then(|m| kiln::ir::verify::verify_module(&m))
                        .is_ok();
                    if ok {
                        files.push((p, text));
                    }
                }
            }
        }
    }
    files.sort();
    files
}

/// Number of instructions in a parsed module.
pub fn instruction_count(module: &kiln::ir::Module) -> usize {
    module.funcs.iter().map(|f| f.num_insts()).sum()
}
