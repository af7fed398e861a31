//! Malformed input must never make kiln panic, hang or crash (SPEC section
//! 8). A corpus is generated here from every `tests/ir`, `examples` and
//! `tests/malformed` file: truncations at many cut points, mutations,
//! deterministic random bytes, soups of real keywords and opcodes, huge
//! literals, 1 MB lines, deep nesting, unknown ops, NULs and invalid UTF-8.
//!
//! Every input goes through the library (parse + verify inside
//! `catch_unwind`): it must be accepted, or rejected with one located
//! diagnostic. A sample also goes through the binary: `kiln check` must exit
//! 0 silently or 1 with exactly one `FILE:LINE:COL: error: ` line.

use kiln::ir::parse::parse_module;
use kiln::ir::verify::verify_module;
use kiln::ir::OPCODES;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// xorshift64*: deterministic, so every run tests the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The seed files, as (relative path, bytes).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = ["tests/ir", "examples", "tests/malformed"]
        .iter()
        .map(|d| root().join(d))
        .collect();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "kir") {
                if let (Ok(bytes), Ok(rel)) = (std::fs::read(&p), p.strip_prefix(root())) {
                    out.push((rel.to_string_lossy().into_owned(), bytes));
                }
            }
        }
    }
    out.sort();
    assert!(out.len() >= 8, "too few seed files found: {}", out.len());
    out
}

const KEYWORDS: &[&str] = &[
    "func",
    "local",
    "extern",
    "data",
    "const",
    "zero",
    "i8",
    "i16",
    "i32",
    "i64",
    "f32",
    "f64",
    "entry:",
    "loop",
    "loop(",
    "exit",
    "@f",
    "@main",
    "@putchar",
    "@",
    "%",
    "%0",
    "%a",
    "%b",
    "%a:",
    "{",
    "}",
    "(",
    ")",
    ",",
    ":",
    "=",
    "->",
    "+",
    "-",
    ";",
    "\n",
    "\n",
    "\n",
    "0",
    "1",
    "-1",
    "0x",
    "0xff",
    "1.5",
    "-0.0",
    "1e-9",
    "inf",
    "-inf",
    "nan",
    "\"s\\n\\0\"",
    "\"",
    "\\x",
    ".",
    ".i64",
    ".i32",
    ".f64",
    "$",
    "_",
    "18446744073709551616",
];

/// Random token sequences made of the language's real words.
fn token_soup(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::new();
    let n = 1 + rng.below(80);
    for _ in 0..n {
        match rng.below(4) {
            0 => {
                let op = rng.pick(OPCODES);
                s += op.name;
                if rng.below(2) == 0 {
                    s += *rng.pick(&[".i32", ".i64", ".f32", ".f64", ".i8", "."]);
                }
            }
            _ => s += *rng.pick(KEYWORDS),
        }
        s.push(if rng.below(5) == 0 { '\n' } else { ' ' });
    }
    s.into_bytes()
}

/// A small change to a valid-looking file: a byte replaced, a range
/// deleted or duplicated, a token inserted.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    let at = rng.below(v.len() + 1);
    match rng.below(5) {
        0 if !v.is_empty() => {
            let i = at.min(v.len() - 1);
            v[i] = rng.next() as u8;
        }
        1 => {
            let end = (at + rng.below(16)).min(v.len());
            v.drain(at..end);
        }
        2 => {
            let end = (at + rng.below(40)).min(v.len());
            let piece = v[at..end].to_vec();
            v.splice(at..at, piece);
        }
        3 => {
            v.splice(at..at, [0u8]);
        }
        _ => {
            let word = rng.pick(KEYWORDS).as_bytes().to_vec();
            v.splice(at..at, word);
        }
    }
    v
}

fn wrap_in_func(body: &str) -> Vec<u8> {
    format!("func @f(%a: i64) -> i64 {{\nentry:\n{body}\n    ret %a\n}}\n").into_bytes()
}

/// Hand-made extremes.
fn extremes() -> Vec<(String, Vec<u8>)> {
    let mb = 1 << 20;
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("only-newlines".into(), vec![b'\n'; 1000]),
        (
            "comment-1mb".into(),
            format!(";{}\n", "x".repeat(mb)).into_bytes(),
        ),
        (
            "ident-1mb".into(),
            format!("func @{}() {{\nentry:\n ret\n}}\n", "a".repeat(mb)).into_bytes(),
        ),
        (
            "value-1mb".into(),
            wrap_in_func(&format!("    %{} = add.i64 %a, 1", "v".repeat(mb))),
        ),
        (
            "digits-1mb".into(),
            wrap_in_func(&format!("    %b = add.i64 %a, {}", "9".repeat(mb))),
        ),
        (
            "hex-1mb".into(),
            wrap_in_func(&format!("    %b = add.i64 %a, 0x{}", "f".repeat(mb))),
        ),
        (
            "float-1mb".into(),
            wrap_in_func(&format!(
                "    %b = fadd.f64 1.{}, 1e{}",
                "5".repeat(mb),
                "9".repeat(1000)
            )),
        ),
        (
            "string-1mb".into(),
            format!("const @s = {{ i8 \"{}\" }}\n", "\\x41".repeat(mb / 4)).into_bytes(),
        ),
        (
            "open-string".into(),
            format!("const @s = {{ i8 \"{}", "a".repeat(mb)).into_bytes(),
        ),
        (
            "line-of-adds".into(),
            wrap_in_func(&"add.i64 %a, %a ".repeat(mb / 16)),
        ),
        (
            "many-values".into(),
            format!("data @d = {{ i64 {} }}\n", "1 ".repeat(mb / 2)).into_bytes(),
        ),
        ("braces".into(), "{".repeat(100_000).into_bytes()),
        ("close-braces".into(), "}".repeat(100_000).into_bytes()),
        (
            "parens".into(),
            format!("func @f({}) {{\n}}\n", "(".repeat(100_000)).into_bytes(),
        ),
        (
            "nested-jmp".into(),
            wrap_in_func(&format!("    jmp l{}", "(".repeat(100_000))),
        ),
        (
            "data-braces".into(),
            format!("data @d = {}", "{ ".repeat(50_000)).into_bytes(),
        ),
        (
            "unknown-op".into(),
            wrap_in_func("    %b = frobnicate.i64 %a, %a"),
        ),
        (
            "unknown-suffix".into(),
            wrap_in_func("    %b = add.i128 %a, %a"),
        ),
        ("nul".into(), b"func @f() {\0\nentry:\n ret\n}\n".to_vec()),
        ("nul-only".into(), vec![0u8; 4096]),
        (
            "bad-utf8".into(),
            b"func @f() {\nentry:\n ret \xff\xfe\n}\n".to_vec(),
        ),
        ("overlong-utf8".into(), b"; \xc0\xaf\n".to_vec()),
        (
            "bom".into(),
            b"\xef\xbb\xbffunc @f() {\nentry:\n ret\n}\n".to_vec(),
        ),
        ("cr-only".into(), b"func @f() {\rentry:\r ret\r}\r".to_vec()),
        ("many-blocks".into(), {
            let mut s = String::from("func @f() {\nentry:\n jmp b0\n");
            for i in 0..20_000 {
                s += &format!("b{i}:\n jmp b{}\n", i + 1);
            }
            s += "}\n";
            s.into_bytes()
        }),
        (
            "many-params".into(),
            format!(
                "func @f({}) {{\nentry:\n ret\n}}\n",
                (0..20_000)
                    .map(|i| format!("%p{i}: i64"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into_bytes(),
        ),
        ("chain-of-values".into(), {
            let mut s = String::new();
            for i in 0..20_000 {
                s += &format!("    %v{} = add.i64 %v{i}, 1\n", i + 1);
            }
            wrap_in_func(&s)
        }),
    ];
    for lit in [
        "340282366920938463463374607431768211456",
        "-0x8000000000000001",
        "0x10000000000000000",
        "-",
        "0x",
        "-0x",
        "1e",
        "1e999999",
        "nan.0",
        "--1",
        "0b101",
        "1_000",
    ] {
        v.push((
            format!("literal {lit}"),
            wrap_in_func(&format!("    %b = add.i64 %a, {lit}")),
        ));
        v.push((
            format!("data literal {lit}"),
            format!("data @d = {{ i64 {lit}, f64 {lit} }}\n").into_bytes(),
        ));
    }
    v
}

/// Bytes random "printable" inputs are drawn from.
const PRINTABLE: &[u8] = b" \n\t{}()%@,:=-+.;\"0123456789abcdefxi_";

/// Builds the whole corpus: (what it is, bytes).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    let mut out = extremes();
    for (name, bytes) in &seeds {
        // Cut points spread over the file, plus every cut in the first 64
        // bytes (the header and first item are where parsers start).
        let step = (bytes.len() / 150).max(1);
        let cuts = (0..bytes.len().min(64)).chain((64..bytes.len()).step_by(step));
        for cut in cuts {
            out.push((format!("{name} cut at {cut}"), bytes[..cut].to_vec()));
        }
        for i in 0..60 {
            let m = mutate(&mut rng, bytes);
            let m = if i % 3 == 0 { mutate(&mut rng, &m) } else { m };
            out.push((format!("{name} mutation {i}"), m));
        }
    }
    for i in 0..300 {
        let len = rng.below(400);
        let printable = i % 2 == 0;
        let bytes = (0..len)
            .map(|_| {
                let b = rng.next() as u8;
                if printable {
                    PRINTABLE[b as usize % PRINTABLE.len()]
                } else {
                    b
                }
            })
            .collect();
        out.push((format!("random bytes {i}"), bytes));
    }
    for i in 0..400 {
        out.push((format!("token soup {i}"), token_soup(&mut rng)));
    }
    out
}

/// Parses and verifies `text` as file `file`; `Err` says what went wrong.
fn library_outcome(file: &str, text: &str) -> Result<(), String> {
    let r = catch_unwind(AssertUnwindSafe(|| -> kiln::Result<()> {
        let m = parse_module(file, text)?;
        verify_module(&m)
    }));
    match r {
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let Some(d) = e.diagnostic() else {
                return Err(format!("unlocated error: {e}"));
            };
            let line = e.to_string();
            if d.loc.is_none() || d.file != file || line.contains('\n') || d.message.is_empty() {
                return Err(format!("badly located or multi-line diagnostic: {line:?}"));
            }
            Ok(())
        }
    }
}

#[test]
fn library_never_panics_on_malformed_input() {
    let corpus = corpus();
    let mut failures = Vec::new();
    for (what, bytes) in &corpus {
        let text = String::from_utf8_lossy(bytes);
        if let Err(why) = library_outcome("m.kir", &text) {
            failures.push(format!("{what}: {why}"));
            if failures.len() >= 20 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} malformed inputs (of {}) broke the library, first ones:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

/// Whether `line` is `FILE:LINE:COL: error: MESSAGE` for `file`.
fn is_located_error(line: &str, file: &str) -> bool {
    let Some(rest) = line.strip_prefix(file).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let num =
        |p: Option<&str>| p.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    num(parts.next())
        && num(parts.next())
        && parts
            .next()
            .is_some_and(|m| m.starts_with(" error: ") && m.len() > 8)
}

fn binary_outcome(path: &str) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check", path])
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run kiln: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    match out.status.code() {
        Some(0) if stderr.is_empty() && out.stdout.is_empty() => Ok(()),
        Some(1)
            if lines.len() == 1 && is_located_error(lines[0], path) && out.stdout.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!("status {:?}, stderr {:?}", out.status, stderr)),
    }
}

#[test]
fn binary_reports_one_located_error() {
    let corpus = corpus();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("malformed");
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Every extreme, then an even sample of the rest.
    let n_extremes = extremes().len();
    let step = (corpus.len() - n_extremes) / 60;
    let sample: Vec<_> = corpus
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < n_extremes || (i - n_extremes).is_multiple_of(step.max(1)))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((i, (what, bytes))) = sample.get(k) else {
                    break;
                };
                let path = dir.join(format!("{i}.kir"));
                if std::fs::write(&path, bytes).is_err() {
                    continue;
                }
                if let Err(why) = binary_outcome(&path.to_string_lossy()) {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{what}: {why}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} sampled inputs broke `kiln check`:\n{}",
        failures.len(),
        sample.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn located_error_lines_are_recognised() {
    assert!(is_located_error("a.kir:3:14: error: bad", "a.kir"));
    assert!(!is_located_error("a.kir:3: error: bad", "a.kir"));
    assert!(!is_located_error("a.kir:x:1: error: bad", "a.kir"));
    assert!(!is_located_error("b.kir:3:1: error: bad", "a.kir"));
    assert!(!is_located_error("a.kir:3:1: warning: bad", "a.kir"));
}

#[test]
fn corpus_is_deterministic_and_varied() {
    let a = corpus();
    let b = corpus();
    assert_eq!(a, b);
    assert!(a.len() > 1000, "{}", a.len());
    assert!(a.iter().any(|(_, v)| std::str::from_utf8(v).is_err()));
    assert!(a.iter().any(|(_, v)| v.len() > 1 << 20));
    assert!(a.iter().any(|(_, v)| v.contains(&0)));
}
