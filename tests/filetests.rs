//! File tests: runs the `kiln` binary on every `tests/ir/**/*.kir` file (and
//! every `examples/**/*.kir` file that has `RUN` lines) and compares what it
//! prints with the expectation blocks at the end of the file. The format is
//! described in `tests/ir/README.md`.
//!
//! All mismatches are collected and reported together, each with a diff;
//! `KILN_BLESS=1` rewrites the expectation blocks instead. Files run on two
//! worker threads. A `run` line runs once per engine in [`ENGINES`], and
//! every engine must produce the same block. `KILN_FILTER=TEXT` limits the
//! run to files whose path contains TEXT. `< FILE` in a run line feeds
//! FILE to kiln's standard input (`; RUN: repl < %s` runs a file as a
//! REPL session).

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The engines every `run` line is executed with, as the options that
/// select each: the interpreter, native code, native code compiled lazily
/// (each function on its first call), native code of the `speed` tier,
/// native code in an executor child process, and (when kiln is built with
/// the emulator) AArch64 code under emulation: eagerly, lazily and at
/// `speed`.
const ENGINES: &[&[&str]] = &[
    &["--engine", "interp"],
    &["--engine", "jit"],
    &["--engine", "jit", "--lazy"],
    &["--engine", "jit", "--opt", "speed"],
    &["--engine", "jit", "--executor", "process"],
    #[cfg(feature = "emulate")]
    &["--engine", "jit", "--target", "aarch64"],
    #[cfg(feature = "emulate")]
    &["--engine", "jit", "--target", "aarch64", "--lazy"],
    #[cfg(feature = "emulate")]
    &["--engine", "jit", "--target", "aarch64", "--opt", "speed"],
];

/// A `kiln` process running longer than this is a hang, reported as a
/// failure (this is a guard, not a speed check).
const HANG_LIMIT: Duration = Duration::from_secs(60);

const HEADER: &str = "; ==== ";

/// A test file split into its parts.
#[derive(Debug, PartialEq)]
struct Parsed<'a> {
    /// Line 1, when it is a `; guards:` comment.
    guards: Option<&'a str>,
    /// The `RUN` command lines, in order.
    runs: Vec<String>,
    /// Everything before the expectations.
    body: &'a str,
    /// The expectation blocks: header (the run line) and lines.
    blocks: Vec<(String, Vec<String>)>,
}

fn parse(text: &str) -> Parsed<'_> {
    let guards = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("; guards:"))
        .map(str::trim);
    let section_start = line_starts(text)
        .find(|&i| text[i..].starts_with(HEADER))
        .unwrap_or(text.len());
    let (body, section) = text.split_at(section_start);
    let runs = body
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("; RUN:"))
        .map(|r| r.trim().to_string())
        .collect();
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines().map(str::trim_end) {
        if let Some(h) = line.strip_prefix(HEADER.trim_end()) {
            blocks.push((h.trim().to_string(), Vec::new()));
        } else if !line.is_empty() {
            if let Some(b) = blocks.last_mut() {
                b.1.push(line.to_string());
            }
        }
    }
    Parsed {
        guards,
        runs,
        body,
        blocks,
    }
}

fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1))
}

/// The `kiln` arguments of a run line: `%s` becomes `path`; without `%s`
/// the path goes right after the subcommand.
fn expand(run: &str, path: &str) -> Vec<String> {
    let mut args: Vec<String> = run
        .split_whitespace()
        .map(|a| a.replace("%s", path))
        .collect();
    if !run.contains("%s") {
        let at = args.len().min(1);
        args.insert(at, path.to_string());
    }
    args
}

/// The command lines a run line executes: `run` once per engine, unless
/// it names its own `--engine`, `--target` or `--opt`.
fn per_engine(args: &[String]) -> Vec<Vec<String>> {
    let names_engine = args.iter().any(|a| {
        ["--engine", "--target", "--opt"]
            .iter()
            .any(|o| a == o || a.starts_with(&format!("{o}=")))
    });
    if args.first().map(String::as_str) != Some("run") || names_engine {
        return vec![args.to_vec()];
    }
    ENGINES
        .iter()
        .map(|e| {
            let mut a = args.to_vec();
            a.splice(1..1, e.iter().map(|s| s.to_string()));
            a
        })
        .collect()
}

/// What one process did.
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// The exit status, or the reason there is none.
    status: String,
}

/// The expectation lines for an outcome.
fn render(o: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    for (name, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let mut lines: Vec<&str> = text.split('\n').collect();
        let ends_with_newline = lines.last() == Some(&"");
        if ends_with_newline || text.is_empty() {
            lines.pop();
        }
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let tag = if i + 1 == n && !ends_with_newline {
                format!("{name}-nonl")
            } else {
                name.to_string()
            };
            let line = line.trim_end();
            out.push(if line.is_empty() {
                format!("; {tag}:")
            } else {
                format!("; {tag}: {line}")
            });
        }
    }
    out.push(format!("; status: {}", o.status));
    out
}

fn execute(args: &[String]) -> Outcome {
    let fail = |why: String| Outcome {
        stdout: Vec::new(),
        stderr: Vec::new(),
        status: why,
    };
    // `< FILE`: FILE on standard input.
    let (args, stdin) = match args.iter().position(|a| a == "<") {
        Some(i) if i + 1 < args.len() => {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&args[i + 1]);
            match std::fs::File::open(&path) {
                Ok(f) => {
                    let mut rest = args[..i].to_vec();
                    rest.extend_from_slice(&args[i + 2..]);
                    (rest, Stdio::from(f))
                }
                Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
            }
        }
        _ => (args.to_vec(), Stdio::null()),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return fail(format!("could not start kiln: {e}")),
    };
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > HANG_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!("hung (killed after {HANG_LIMIT:?})"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return fail(format!("wait failed: {e}")),
        }
    };
    let [out, err] = readers.map(|h| h.join().unwrap_or_default());
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        stdout: out,
        stderr: err,
        status: match (status.code(), status.signal()) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "unknown".to_string(),
        },
    }
}

/// A line diff (longest common subsequence): `-` expected, `+` actual.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out += &format!("      {}\n", expected[i]);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            out += &format!("    + {}\n", actual[j]);
            j += 1;
        } else {
            out += &format!("    - {}\n", expected[i]);
            i += 1;
        }
    }
    out
}

/// Runs one file. Returns a failure report, if any; when blessing, writes
/// the new expectations (unless the engines disagree).
fn check_file(root: &Path, rel: &str, default_run: bool, bless: bool) -> Option<String> {
    let full = root.join(rel);
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) => return Some(format!("{rel}: cannot read: {e}")),
    };
    let parsed = parse(&text);
    let mut problems = Vec::new();
    if rel.starts_with("tests/") && parsed.guards.is_none_or(str::is_empty) {
        problems.push("line 1 must be `; guards: WHAT THIS FILE GUARDS`".to_string());
    }
    let mut runs = parsed.runs.clone();
    if runs.is_empty() && default_run {
        runs.push("run".to_string());
    }
    let mut new_blocks = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let expected = parsed.blocks.get(i);
        let mut first: Option<Vec<String>> = None;
        for args in per_engine(&expand(run, rel)) {
            let actual = render(&execute(&args));
            let mut block = vec![format!("{HEADER}{run}")];
            block.extend(actual.iter().cloned());
            match &first {
                Some(f) if *f != block => problems.push(format!(
                    "engines disagree on `kiln {}`:\n{}",
                    args.join(" "),
                    diff(f, &block)
                )),
                Some(_) => {}
                None => first = Some(block.clone()),
            }
            if bless {
                continue;
            }
            let mut want = match expected {
                Some((h, lines)) => {
                    let mut w = vec![format!("{HEADER}{h}")];
                    w.extend(lines.iter().cloned());
                    w
                }
                None => Vec::new(),
            };
            want.iter_mut().for_each(|l| *l = l.trim_end().to_string());
            let actual_block: Vec<String> =
                block.iter().map(|l| l.trim_end().to_string()).collect();
            if want != actual_block {
                problems.push(format!(
                    "`kiln {}` (expected -, actual +):\n{}",
                    args.join(" "),
                    diff(&want, &actual_block)
                ));
            }
        }
        new_blocks.extend(first);
    }
    if !bless && parsed.blocks.len() > runs.len() {
        problems.push(format!(
            "{} expectation block(s) without a RUN line",
            parsed.blocks.len() - runs.len()
        ));
    }
    if bless && problems.is_empty() {
        // Keep the file's own layout: a blank line before the first block
        // and between blocks only where the file had them (new files and
        // files with one block get both).
        let section = &text[parsed.body.len()..];
        let blank_first = parsed.blocks.is_empty() || parsed.body.ends_with("\n\n");
        let blank_between = parsed.blocks.len() < 2 || section.contains(&format!("\n\n{HEADER}"));
        let mut out = parsed.body.trim_end().to_string();
        out.push('\n');
        for (k, b) in new_blocks.iter().enumerate() {
            if (k == 0 && blank_first) || (k > 0 && blank_between) {
                out.push('\n');
            }
            for l in b {
                out += l;
                out.push('\n');
            }
        }
        if out != text {
            if let Err(e) = std::fs::write(&full, out) {
                problems.push(format!("cannot write: {e}"));
            }
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{rel}:\n  {}", problems.join("\n  ")))
    }
}

/// Every `.kir` file under `dir`, as paths relative to `root`, sorted.
fn kir_files(root: &Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: VecDeque<PathBuf> = VecDeque::from([root.join(dir)]);
    while let Some(d) = todo.pop_front() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push_back(p);
            } else if p.extension().is_some_and(|x| x == "kir") {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let mut files: Vec<(String, bool)> = kir_files(root, "tests/ir")
        .into_iter()
        .map(|f| (f, true))
        .collect();
    // Examples without RUN lines (such as a library module another
    // example's RUN line loads) are not tests on their own.
    files.extend(kir_files(root, "examples").into_iter().map(|f| (f, false)));
    // `KILN_FILTER=text` runs (and blesses) only the files whose path
    // contains `text`.
    if let Some(filter) = std::env::var_os("KILN_FILTER") {
        let filter = filter.to_string_lossy().into_owned();
        files.retain(|(f, _)| f.contains(&filter));
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((rel, default_run)) = files.get(i) else {
                    break;
                };
                if let Some(report) = check_file(root, rel, *default_run, bless) {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} file tests failed{}:\n\n{}",
        failures.len(),
        files.len(),
        if bless {
            " (nothing was blessed for them)"
        } else {
            "; KILN_BLESS=1 rewrites expectations"
        },
        failures.join("\n\n")
    );
}

#[test]
fn parses_directives_and_blocks() {
    let text = "; guards: x\n; RUN: run -- 5\nfunc @f() {\n; RUN: check %s\n}\n\n\
                ; ==== run -- 5\n; stdout: 1\n\n; ==== check %s  \n; status: 0\n";
    let p = parse(text);
    assert_eq!(p.guards, Some("x"));
    assert_eq!(p.runs, vec!["run -- 5", "check %s"]);
    assert!(p.body.ends_with("}\n\n"));
    assert_eq!(
        p.blocks,
        vec![
            ("run -- 5".to_string(), vec!["; stdout: 1".to_string()]),
            ("check %s".to_string(), vec!["; status: 0".to_string()]),
        ]
    );
    // RUN lines after the expectations start are not commands.
    let p = parse("; ==== run\n; RUN: check\n");
    assert!(p.runs.is_empty());
    assert_eq!(p.body, "");
    let p = parse("; guards:\nfunc\n");
    assert_eq!((p.guards, p.blocks.len()), (Some(""), 0));
}

#[test]
fn expands_paths_and_engines() {
    assert_eq!(expand("run -- 5", "a.kir"), ["run", "a.kir", "--", "5"]);
    assert_eq!(expand("run %s b.kir", "a.kir"), ["run", "a.kir", "b.kir"]);
    assert_eq!(expand("", "a.kir"), ["a.kir"]);
    let e = per_engine(&expand("run -- 1", "a.kir"));
    assert_eq!(e.len(), ENGINES.len());
    assert_eq!(e[0][..3], ["run", "--engine", "interp"]);
    assert_eq!(per_engine(&expand("check", "a.kir")), [["check", "a.kir"]]);
    assert_eq!(
        per_engine(&expand("run --engine=jit", "a.kir")),
        [["run", "a.kir", "--engine=jit"]]
    );
}

#[test]
fn renders_outcomes() {
    let o = Outcome {
        stdout: b"hi\n\nx".to_vec(),
        stderr: b"e\n".to_vec(),
        status: "1".into(),
    };
    assert_eq!(
        render(&o),
        [
            "; stdout: hi",
            "; stdout:",
            "; stdout-nonl: x",
            "; stderr: e",
            "; status: 1"
        ]
    );
    let o = Outcome {
        stdout: Vec::new(),
        stderr: Vec::new(),
        status: "0".into(),
    };
    assert_eq!(render(&o), ["; status: 0"]);
}

#[test]
fn diffs_lines() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let d = diff(&s(&["a", "b", "c"]), &s(&["a", "x", "c"]));
    assert_eq!(d, "      a\n    - b\n    + x\n      c\n");
    assert_eq!(diff(&s(&[]), &s(&["n"])), "    + n\n");
}
