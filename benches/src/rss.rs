//! Memory of many small modules: the peak resident set size (Linux
//! `VmHWM`) of a child process that adds module after module and finalizes
//! each on its own, in `kiln repl` (one-function items through
//! [`kiln::repl::Repl`]), in kiln's `Engine`, and in Cranelift's
//! `JITModule`, beside a child that does nothing (the process's own
//! floor: binary, libraries, allocator).
//!
//! Each case runs in a fresh child (this same binary, re-run with
//! [`CHILD_ENV`] set) so that one case's peak never hides another's. Module
//! texts (and the REPL's input) are generated one at a time inside the
//! child and dropped after use, so what stays is what the engine keeps.

use crate::measure::{parse, sweep_module_text};
use crate::to_cranelift::{default_trap, new_jit, ClifOpts, Translator};
use kiln::Engine;

/// Set to `CASE:N` in a child: run that case with N modules, print the
/// peak RSS in KiB on stdout and exit.
pub const CHILD_ENV: &str = "KILN_BENCH_RSS_CHILD";

/// What a child measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssCase {
    /// Nothing: the process's floor.
    Idle,
    /// `kiln repl` fed N one-function items and one query.
    Repl,
    /// N modules added to an `Engine` and finalized one at a time.
    Engine,
    /// N modules declared, defined and finalized one at a time in one
    /// Cranelift `JITModule`.
    Cranelift,
}

impl RssCase {
    fn name(self) -> &'static str {
        match self {
            RssCase::Idle => "idle",
            RssCase::Repl => "repl",
            RssCase::Engine => "engine",
            RssCase::Cranelift => "cranelift",
        }
    }

    fn from_name(s: &str) -> Option<RssCase> {
        [
            RssCase::Idle,
            RssCase::Repl,
            RssCase::Engine,
            RssCase::Cranelift,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }
}

/// The REPL input: `n` one-function items, then a query of the last.
pub fn repl_input(n: usize) -> String {
    let mut s = String::new();
    for i in 0..=n {
        s.push_str(&repl_chunk(n, i));
    }
    s
}

/// Chunk `i` of [`repl_input`]`(n)`: item `i`, or the query after the
/// last item (empty when `n` is 0).
fn repl_chunk(n: usize, i: usize) -> String {
    if i < n {
        format!("func @f{i}(%x: i64) -> i64 {{\nentry:\n    %y = add.i64 %x, {i}\n    ret %y\n}}\n")
    } else if n > 0 {
        format!("? @f{}(1)\n", n - 1)
    } else {
        String::new()
    }
}

/// [`repl_input`] made while it is read, as `kiln repl` reads its input
/// from a pipe: the whole text is never held, so the peak measures what
/// the session keeps.
pub struct ReplReader {
    n: usize,
    next: usize,
    chunk: Vec<u8>,
    at: usize,
}

impl ReplReader {
    /// The input of `n` items and the query.
    pub fn new(n: usize) -> ReplReader {
        ReplReader {
            n,
            next: 0,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl std::io::Read for ReplReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.next > self.n {
                return Ok(0);
            }
            self.chunk = repl_chunk(self.n, self.next).into_bytes();
            self.next += 1;
            self.at = 0;
        }
        let k = buf.len().min(self.chunk.len() - self.at);
        buf[..k].copy_from_slice(&self.chunk[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// The peak resident set size of this process so far, in KiB.
pub fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_string())
}

fn run_case(case: RssCase, n: usize) -> Result<(), String> {
    match case {
        RssCase::Idle => {}
        RssCase::Repl => {
            let mut input = std::io::BufReader::new(ReplReader::new(n));
            let mut repl = kiln::repl::Repl::new(Engine::default());
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let status = repl.run(&mut input, &mut out, &mut err);
            let want = format!("{}\n", n as i64);
            if status != 0 || String::from_utf8_lossy(&out) != want {
                return Err(format!(
                    "repl: status {status}, output {:?}, errors {:?}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                ));
            }
        }
        RssCase::Engine => {
            let engine = Engine::default();
            for i in 0..n {
                let m = parse(&format!("m{i}"), &sweep_module_text(i))?;
                let id = engine.add_module(m).map_err(|e| e.to_string())?;
                engine.finalize_module(id).map_err(|e| e.to_string())?;
            }
        }
        RssCase::Cranelift => {
            let mut jit = new_jit(ClifOpts::new("none", "single_pass"), default_trap, &[])?;
            let mut tr = Translator::new();
            for i in 0..n {
                let m = parse(&format!("m{i}"), &sweep_module_text(i))?;
                tr.translate_module(&mut jit, &m)?;
                jit.finalize_definitions().map_err(|e| e.to_string())?;
            }
            // SAFETY: nothing compiled here is called.
            unsafe { jit.free_memory() };
        }
    }
    Ok(())
}

/// In a child started by [`measure_rss`]: runs its case, prints the peak
/// RSS and exits. Does nothing in any other process; call it first thing
/// in `main`.
pub fn child_main() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let result = spec
        .split_once(':')
        .and_then(|(c, n)| Some((RssCase::from_name(c)?, n.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad {CHILD_ENV}={spec}"))
        .and_then(|(case, n)| run_case(case, n))
        .and_then(|()| peak_rss_kib());
    match result {
        Ok(kib) => {
            println!("{kib}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("rss child: {e}");
            std::process::exit(1)
        }
    }
}

/// The peak RSS, in KiB, of a child of this binary running `case` with `n`
/// modules.
pub fn measure_rss(case: RssCase, n: usize) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, format!("{}:{n}", case.name()))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "rss child {}:{n} failed: {}",
            case.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("rss child {}:{n}: {e}", case.name()))
}

/// The report's memory table (markdown): peak RSS of each case in its own
/// child. Full run: the REPL with 20,000 items (goal: at most 10 MB), the
/// engine and Cranelift with 20,000 and 50,000 modules; `quick`: 2,000.
pub fn rss_table(quick: bool) -> Result<String, String> {
    use std::fmt::Write as _;
    let sizes: &[usize] = if quick { &[2_000] } else { &[20_000, 50_000] };
    let idle = measure_rss(RssCase::Idle, 0)?;
    let mb = |kib: u64| kib as f64 / 1024.0;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Memory of many small modules\n\nPeak RSS (`VmHWM`) of a child process that adds \
         modules one at a time and finalizes each (each a small function; module texts parsed \
         one at a time and dropped). kiln repl: one-function items through `kiln::repl::Repl` \
         and one query (goal: at most 10 MB at 20,000 items). kiln Engine / Cranelift \
         JITModule: the registry-scaling modules. Idle child: {:.1} MB.\n",
        mb(idle)
    );
    let _ = writeln!(
        md,
        "| case | modules | peak RSS MB | above idle KiB/module |\n|---|---:|---:|---:|"
    );
    let mut row = |name: &str, case: RssCase, n: usize| -> Result<(), String> {
        let kib = measure_rss(case, n)?;
        eprintln!("memory: {name} {n} done");
        let _ = writeln!(
            md,
            "| {name} | {n} | {:.1} | {:.2} |",
            mb(kib),
            kib.saturating_sub(idle) as f64 / n as f64
        );
        Ok(())
    };
    row("kiln repl", RssCase::Repl, sizes[0])?;
    for &n in sizes {
        row("kiln Engine", RssCase::Engine, n)?;
        row("Cranelift JITModule", RssCase::Cranelift, n)?;
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repl_input_defines_and_queries() {
        let text = repl_input(3);
        assert_eq!(text.matches("func @f").count(), 3);
        assert!(text.ends_with("? @f2(1)\n"));
        assert_eq!(repl_input(0), "");
        let mut read = String::new();
        std::io::Read::read_to_string(&mut ReplReader::new(3), &mut read).unwrap();
        assert_eq!(read, text);
    }

    #[test]
    fn peak_rss_is_read() {
        let kib = peak_rss_kib().unwrap();
        assert!(kib > 100, "{kib} KiB");
    }

    #[test]
    fn every_case_runs_in_process() {
        for case in [
            RssCase::Idle,
            RssCase::Repl,
            RssCase::Engine,
            RssCase::Cranelift,
        ] {
            run_case(case, 20).unwrap();
            assert_eq!(RssCase::from_name(case.name()), Some(case));
        }
    }
}
