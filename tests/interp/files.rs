//! The `.kir` file tests run in process with the interpreter, checking
//! their hand-written expectations without the `kiln` binary.

use super::build::*;

/// What one `; ==== RUN` block of a `.kir` file expects.
#[derive(Debug, Default)]
struct Expect {
    stdout: Vec<String>,
    stderr: Vec<String>,
    status: Option<i32>,
}

/// The RUN lines of `text` and the expectation block of each.
fn run_lines(text: &str) -> Vec<(String, Expect)> {
    let mut runs: Vec<String> = Vec::new();
    let mut blocks: Vec<(String, Expect)> = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("; RUN: ") {
            runs.push(r.trim().to_string());
        } else if let Some(r) = line.strip_prefix("; ==== ") {
            blocks.push((r.trim().to_string(), Expect::default()));
        } else if let Some((_, e)) = blocks.last_mut() {
            if let Some(s) = line.strip_prefix("; stdout: ") {
                e.stdout.push(s.to_string());
            } else if let Some(s) = line.strip_prefix("; stderr: ") {
                e.stderr.push(s.to_string());
            } else if let Some(s) = line.strip_prefix("; status: ") {
                e.status = s.trim().parse().ok();
            }
        }
    }
    assert_eq!(
        runs,
        blocks.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
        "RUN lines and expectation blocks differ"
    );
    blocks
}

/// Runs one `run` line in process: (stdout result line, stderr line, status).
fn run_in_process(path: &str, line: &str) -> (Option<String>, Option<String>, i32) {
    let line = line.replace("%s", path);
    let (opts, args) = match line.split_once(" -- ") {
        Some((o, a)) => (
            o.to_string(),
            a.split_whitespace().map(String::from).collect(),
        ),
        None => (line.clone(), Vec::new()),
    };
    let mut words = opts.split_whitespace();
    assert_eq!(words.next(), Some("run"), "{line}");
    let mut files = Vec::new();
    let mut entry = "main".to_string();
    while let Some(w) = words.next() {
        match w {
            "--entry" => entry = words.next().expect("entry name").to_string(),
            f if f.ends_with(".kir") => files.push(f.to_string()),
            other => panic!("unknown option {other} in {line}"),
        }
    }
    if !files.iter().any(|f| f == path) {
        files.insert(0, path.to_string());
    }
    let modules: Vec<Module> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("readable test file");
            let m = kiln::ir::parse::parse_module(f, &text).unwrap_or_else(|e| panic!("{e}"));
            kiln::ir::verify::verify_module(&m).unwrap_or_else(|e| panic!("{e}"));
            m
        })
        .collect();
    let err = |e: Error| match e {
        Error::Trap(t) => (None, Some(t.to_string()), 3),
        Error::Argument(m) | Error::Runtime(m) => (None, Some(format!("kiln: error: {m}")), 1),
        e => (None, Some(e.to_string()), 1),
    };
    let mut it = match Interpreter::new(&modules, &HostFunctions::c_library()) {
        Ok(it) => it,
        Err(e) => return err(e),
    };
    let params = modules
        .iter()
        .find_map(|m| m.symbol(&entry).and_then(|s| m.sym(s).signature().cloned()))
        .map(|s| s.params)
        .unwrap_or_default();
    let vals: Vec<Val> = params
        .iter()
        .zip(&args)
        .map(|(&t, a)| Val::parse(t, a).unwrap_or_else(|| panic!("bad argument {a}")))
        .collect();
    match it.call(&entry, &vals) {
        Ok(v) => (v.map(|v| v.to_string()), None, 0),
        Err(e) => err(e),
    }
}

#[test]
fn kir_file_expectations_hold_in_process() {
    let mut checked = 0;
    for dir in ["tests/ir/inst", "tests/ir/link"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("test folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "kir"))
            .collect();
        paths.sort();
        for p in paths {
            let path = p.to_str().expect("utf-8 path").to_string();
            let text = std::fs::read_to_string(&p).expect("readable");
            for (line, want) in run_lines(&text) {
                // Runs whose program writes output would write into the
                // test's own stdout; the CLI harness checks those.
                let prints =
                    want.stdout.len() > 1 || (want.status != Some(0) && !want.stdout.is_empty());
                if prints && std::env::var_os("KILN_INTERP_ALL").is_none() {
                    continue;
                }
                if prints {
                    println!("{line}");
                }
                let (out, err, status) = run_in_process(&path, &line);
                let ctx = format!("{path}: {line}");
                // The result line is the last of stdout (after the program's
                // own output, which goes straight to the process's stdout).
                let want_out = if status == 0 {
                    want.stdout.last()
                } else {
                    None
                };
                assert_eq!(out.as_deref(), want_out.map(|s| s.as_str()), "{ctx}");
                // Every stderr line: a trap's backtrace follows its line.
                let want_err = (!want.stderr.is_empty()).then(|| want.stderr.join("\n"));
                assert_eq!(err.as_deref(), want_err.as_deref(), "{ctx}");
                assert_eq!(Some(status), want.status, "{ctx}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} runs checked");
}

#[test]
fn every_opcode_has_a_kir_file_test() {
    let mut text = String::new();
    for entry in std::fs::read_dir("tests/ir/inst").expect("test folder") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|x| x == "kir") {
            text += &std::fs::read_to_string(&p).expect("readable");
        }
    }
    // Mnemonics as they appear in instructions: `op.T ` or `op ` after
    // indentation or `= `.
    let words: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.split_once("= ").map_or(l, |(_, r)| r);
            l.split(|c: char| c == '.' || c.is_whitespace()).next()
        })
        .collect();
    let missing: Vec<&str> = Opcode::ALL
        .iter()
        .map(|op| op.name())
        .filter(|n| !words.contains(n))
        .collect();
    assert!(missing.is_empty(), "no file test uses {missing:?}");
}
