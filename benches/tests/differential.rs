//! The kiln → Cranelift translator against kiln's reference interpreter:
//! every `run` line of the repository's test corpus, every benchmark
//! program, and hand-picked edge cases must give the same result, the same
//! output (through a capturing `putchar`) and the same trap.
//!
//! Runs that trap are executed in a forked child whose trap function exits
//! with `100 + code`, so the trap reason is checked too.
//!
//! Run: `cargo test -p kiln-bench --release` (release reuses the report's
//! build of Cranelift).

use kiln::host::HostFunctions;
use kiln::interp::Interpreter;
use kiln::ir::{parse::parse_module, verify::verify_module, Module, SymbolKind, Type};
use kiln::{Error, Val};
use kiln_bench::to_cranelift::{ClifOpts, ClifProgram};
use std::cell::RefCell;
use std::path::Path;

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn capture_putchar(c: i32) -> i32 {
    OUT.with(|o| o.borrow_mut().push(c as u8));
    c
}

extern "C" fn exit_trap(code: i32) {
    // SAFETY: _exit ends the (forked child) process at once.
    unsafe { libc::_exit(100 + code) }
}

extern "C" fn unexpected_trap(code: i32) {
    panic!("Cranelift code trapped ({code}) where the interpreter did not");
}

fn take_output() -> Vec<u8> {
    OUT.with(|o| std::mem::take(&mut *o.borrow_mut()))
}

fn host() -> HostFunctions {
    let mut h = HostFunctions::c_library();
    h.register(
        "putchar",
        kiln::ir::Signature::new(vec![Type::I32], Some(Type::I32)),
        |a| {
            let Some(&Val::I32(c)) = a.first() else {
                return Err(Error::Runtime("putchar argument".into()));
            };
            Ok(Some(Val::I32(capture_putchar(c))))
        },
    );
    h
}

fn symbols() -> Vec<(&'static str, *const u8)> {
    vec![("putchar", capture_putchar as *const u8)]
}

fn same(a: Option<Val>, b: Option<Val>) -> bool {
    match (a, b) {
        (Some(Val::F32(x)), Some(Val::F32(y))) => {
            x.is_nan() && y.is_nan() || x.to_bits() == y.to_bits()
        }
        (Some(Val::F64(x)), Some(Val::F64(y))) => {
            x.is_nan() && y.is_nan() || x.to_bits() == y.to_bits()
        }
        _ => a == b,
    }
}

/// What happened in one run.
#[derive(Debug, PartialEq)]
enum Outcome {
    Returned,
    Trapped(i32),
}

/// Runs `entry(args)` in the interpreter and in Cranelift code compiled
/// with every option set; returns the interpreter's outcome, or `None` when
/// the interpreter refuses the run (link error, undefined behaviour it
/// detects).
fn check(modules: &[Module], entry: &str, args: &[Val], what: &str) -> Option<Outcome> {
    let host = host();
    let mut it = Interpreter::new(modules, &host).ok()?;
    take_output();
    let want = it.call(entry, args);
    let want_out = take_output();
    let outcome = match &want {
        Ok(_) => Outcome::Returned,
        Err(Error::Trap(t)) => Outcome::Trapped(match t.code {
            kiln::TrapCode::Unreachable => 0,
            kiln::TrapCode::DivisionByZero => 1,
            kiln::TrapCode::IntegerOverflow => 2,
            // Where a run runs out of stack depends on each compiler's
            // frames; interrupts do not happen here. Neither is compared.
            kiln::TrapCode::StackOverflow | kiln::TrapCode::Interrupted => return None,
        }),
        Err(_) => return None,
    };
    for opts in ClifOpts::ALL {
        let trap = match outcome {
            Outcome::Returned => unexpected_trap as extern "C" fn(i32),
            Outcome::Trapped(_) => exit_trap,
        };
        let prog = ClifProgram::compile(modules, opts, trap, &symbols())
            .unwrap_or_else(|e| panic!("{what}: Cranelift ({}) rejects it: {e}", opts.label()));
        match (&want, &outcome) {
            (Ok(v), _) => {
                // SAFETY: the interpreter ran the same program without
                // undefined behaviour it could detect.
                let got = unsafe { prog.call(entry, args) }.expect("entry callable");
                let got_out = take_output();
                assert!(
                    same(got, *v),
                    "{what} ({}): Cranelift {got:?}, interpreter {v:?}",
                    opts.label()
                );
                assert_eq!(got_out, want_out, "{what} ({}): output", opts.label());
            }
            (Err(_), Outcome::Trapped(code)) => {
                // SAFETY: fork duplicates this process; the child only runs
                // the compiled program and `_exit`s.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    // SAFETY: as above; the trap function `_exit`s.
                    unsafe {
                        let _ = prog.call(entry, args);
                        libc::_exit(0);
                    }
                }
                let mut status = 0;
                // SAFETY: waiting for the child we forked.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 100 + code,
                    "{what} ({}): expected trap {code}, child status {status:#x}",
                    opts.label()
                );
            }
            _ => unreachable!(),
        }
    }
    Some(outcome)
}

fn parse(path: &Path) -> Option<Module> {
    let text = std::fs::read_to_string(path).ok()?;
    let m = parse_module(&path.display().to_string(), &text).ok()?;
    verify_module(&m).ok()?;
    Some(m)
}

fn entry_params(modules: &[Module], entry: &str) -> Option<Vec<Type>> {
    modules.iter().find_map(|m| {
        let s = m.sym(m.symbol(entry)?);
        match &s.kind {
            SymbolKind::Func { sig, body: Some(_) } => Some(sig.params.to_vec()),
            _ => None,
        }
    })
}

/// Corpus files Cranelift cannot run: cranelift-jit panics on a data
/// relocation whose address plus addend wraps (`checked_add_signed`
/// unwrapped), which kiln defines as a 64-bit value modulo 2^64.
const CRANELIFT_CANNOT: &[&str] = &["tests/ir/inst/data_addend.kir"];

/// Every `run` line of the corpus (tests/ir and examples), differentially.
#[test]
fn corpus_runs_agree_with_the_interpreter() {
    // Some runs recurse 100,000 calls deep: give them a big stack.
    std::thread::Builder::new()
        .stack_size(1 << 29)
        .spawn(corpus_runs)
        .expect("spawn")
        .join()
        .expect("corpus runs agree");
}

fn corpus_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("crate root");
    let (mut returned, mut trapped) = (0, 0);
    for (path, text) in kiln_bench::corpus() {
        let rel = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
        if CRANELIFT_CANNOT.iter().any(|c| rel == Path::new(c)) {
            continue;
        }
        let mut runs: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("; RUN:"))
            .map(|l| l.trim().to_string())
            .collect();
        if runs.is_empty() && rel.starts_with("tests/ir") {
            runs.push("run".into());
        }
        for run in runs {
            let mut words = run.split_whitespace();
            if words.next() != Some("run") {
                continue;
            }
            let (mut files, mut entry, mut args, mut skip) =
                (vec![], "main".to_string(), vec![], false);
            let mut has_self = false;
            while let Some(w) = words.next() {
                match w {
                    "--entry" => entry = words.next().unwrap_or("main").to_string(),
                    "--engine" | "--target" => skip = true,
                    "--" => args.extend(words.by_ref().map(str::to_string)),
                    "%s" => {
                        has_self = true;
                        files.push(rel.clone());
                    }
                    f => files.push(f.into()),
                }
            }
            if !has_self {
                files.insert(0, rel.clone());
            }
            if skip {
                continue;
            }
            let Some(modules) = files.iter().map(|f| parse(f)).collect::<Option<Vec<_>>>() else {
                continue;
            };
            let Some(params) = entry_params(&modules, &entry) else {
                continue;
            };
            if params.len() != args.len() {
                continue;
            }
            let Some(vals) = params
                .iter()
                .zip(&args)
                .map(|(&t, a)| Val::parse(t, a))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let what = format!("{}: run {run}", rel.display());
            match check(&modules, &entry, &vals, &what) {
                Some(Outcome::Returned) => returned += 1,
                Some(Outcome::Trapped(_)) => trapped += 1,
                None => {}
            }
        }
    }
    // The corpus has dozens of returning runs and several trapping ones
    // (tests/ir/inst/div_traps.kir, trap.kir); far fewer means the corpus
    // or the run-line reading broke.
    assert!(returned >= 30, "only {returned} returning runs compared");
    assert!(trapped >= 3, "only {trapped} trapping runs compared");
}

/// Every benchmark program returns its checked result under Cranelift too.
#[test]
fn benchmark_programs_agree_with_the_interpreter() {
    for p in kiln_bench::programs::PROGRAMS {
        let m = parse_module(p.name, p.text).expect("benchmark program parses");
        verify_module(&m).expect("benchmark program verifies");
        let outcome = check(&[m], "main", &[Val::I64(p.test_arg)], p.name);
        assert_eq!(outcome, Some(Outcome::Returned), "{}", p.name);
    }
}

/// Edge cases of the semantics the translator must reproduce, driven with
/// values a xorshift generator picks plus the boundaries.
#[test]
fn edge_semantics_agree() {
    let text = r#"
func @divs(%a: i64, %b: i64) -> i64 {
entry:
    %q = sdiv.i64 %a, %b
    %r = srem.i64 %a, %b
    %u = udiv.i64 %a, %b
    %v = urem.i64 %a, %b
    %x = xor.i64 %q, %r
    %y = add.i64 %u, %v
    %z = mul.i64 %x, 31
    %w = add.i64 %z, %y
    ret %w
}
func @divs32(%a: i32, %b: i32) -> i32 {
entry:
    %q = sdiv.i32 %a, %b
    %r = srem.i32 %a, %b
    %s = add.i32 %q, %r
    ret %s
}
func @shifts(%a: i64, %n: i64) -> i64 {
entry:
    %t = trunc.i32 %a
    %n32 = trunc.i32 %n
    %s1 = shl.i32 %t, %n32
    %s2 = sar.i32 %t, %n32
    %s3 = shr.i64 %a, %n
    %s4 = sar.i64 %a, %n
    %e1 = sext.i64 %s1
    %e2 = zext.i64 %s2
    %x = xor.i64 %e1, %e2
    %y = xor.i64 %x, %s3
    %z = add.i64 %y, %s4
    ret %z
}
func @conv(%x: f64) -> i64 {
entry:
    %a = ftosi.i64 %x
    %b = ftoui.i64 %x
    %f = ftrunc.f32 %x
    %c = ftosi.i32 %f
    %d = ftoui.i32 %x
    %c64 = sext.i64 %c
    %d64 = zext.i64 %d
    %s = xor.i64 %a, %b
    %t = mul.i64 %c64, 7
    %u = add.i64 %s, %t
    %v = mul.i64 %d64, 13
    %w = add.i64 %u, %v
    ret %w
}
func @fcmps(%x: f64, %y: f64) -> i32 {
entry:
    %a = feq.f64 %x, %y
    %b = fne.f64 %x, %y
    %c = flt.f64 %x, %y
    %d = fle.f64 %x, %y
    %e = fgt.f64 %x, %y
    %f = fge.f64 %x, %y
    %b2 = shl.i32 %b, 1
    %c2 = shl.i32 %c, 2
    %d2 = shl.i32 %d, 3
    %e2 = shl.i32 %e, 4
    %f2 = shl.i32 %f, 5
    %s1 = or.i32 %a, %b2
    %s2 = or.i32 %s1, %c2
    %s3 = or.i32 %s2, %d2
    %s4 = or.i32 %s3, %e2
    %s5 = or.i32 %s4, %f2
    ret %s5
}
func @sw(%x: i32) -> i32 {
entry:
    switch.i32 %x, other, 0: a, -1: b, 0xffff: c, 7: a
a:
    ret 10
b:
    ret 20
c:
    ret 30
other:
    %r = uitof.f64 %x
    %s = fsqrt.f64 %r
    %t = ftosi.i32 %s
    ret %t
}
"#;
    let m = parse_module("edge", text).expect("edge module parses");
    verify_module(&m).expect("edge module verifies");
    let modules = [m];
    let mut rng = kiln_bench::XorShift::new(99);
    let specials = [
        0i64,
        1,
        -1,
        2,
        63,
        64,
        65,
        i64::MIN,
        i64::MAX,
        i32::MIN as i64,
        -7,
        7,
    ];
    let mut ints: Vec<i64> = specials.to_vec();
    ints.extend((0..6).map(|_| rng.next_u64() as i64));
    let (mut traps, mut calls) = (0, 0);
    for &a in &ints {
        for &b in &ints {
            let r = check(
                &modules,
                "divs",
                &[Val::I64(a), Val::I64(b)],
                &format!("divs({a}, {b})"),
            );
            traps += (r == Some(Outcome::Trapped(1)) || r == Some(Outcome::Trapped(2))) as u32;
            calls += 1;
            let (a32, b32) = (a as i32, b as i32);
            check(
                &modules,
                "divs32",
                &[Val::I32(a32), Val::I32(b32)],
                &format!("divs32({a32}, {b32})"),
            );
            check(
                &modules,
                "shifts",
                &[Val::I64(a), Val::I64(b)],
                &format!("shifts({a}, {b})"),
            );
        }
        check(&modules, "sw", &[Val::I32(a as i32)], &format!("sw({a})"));
    }
    assert!(
        traps > 0 && traps < calls,
        "division traps exercised: {traps}/{calls}"
    );
    let floats = [
        0.0,
        -0.0,
        1.5,
        -1.5,
        1e300,
        -1e300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        4294967296.5,
        9.3e18,
        1.9e19,
        -2147483649.0,
    ];
    for &x in &floats {
        check(&modules, "conv", &[Val::F64(x)], &format!("conv({x})"));
        for &y in &floats[..8] {
            check(
                &modules,
                "fcmps",
                &[Val::F64(x), Val::F64(y)],
                &format!("fcmps({x}, {y})"),
            );
        }
    }
}

/// The interpreter returns each program's recorded small-argument result.
#[test]
fn benchmark_programs_return_their_expected_results() {
    for p in kiln_bench::programs::PROGRAMS {
        let m = parse_module(p.name, p.text).expect("benchmark program parses");
        let host = host();
        let mods = [m];
        let mut it = Interpreter::new(&mods, &host).expect("links");
        let r = it.call("main", &[Val::I64(p.test_arg)]).expect("runs");
        assert_eq!(r, Some(Val::I64(p.test_result)), "{}", p.name);
    }
    // Published values of the classic programs.
    let find = |n: &str| {
        kiln_bench::programs::PROGRAMS
            .iter()
            .find(|p| p.name == n)
            .expect("program exists")
    };
    for (name, arg, want) in [
        ("spectral_norm", 100, 1_274_219_991),
        ("nbody", 1000, -169_087_605),
    ] {
        let m = parse_module(name, find(name).text).expect("parses");
        let mods = [m];
        let mut it = Interpreter::new(&mods, &host()).expect("links");
        let r = it.call("main", &[Val::I64(arg)]).expect("runs");
        assert_eq!(r, Some(Val::I64(want)), "{name}({arg})");
    }
}
