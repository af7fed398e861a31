//! Engine facade: in-process add / finalize / call, the generic call on
//! many signatures against typed calls, traps, host symbols, concurrency,
//! W^X, and the no-default-features dependency list.

use kiln::ir::{Signature, Type};
use kiln::{Engine, Error, TrapCode, Val};
use std::fmt::Write as _;
use std::sync::Arc;

#[test]
fn add_finalize_call_native() {
    let e = Engine::default();
    e.add_module_text(
        "a.kir",
        "func @add(%a: i64, %b: i64) -> i64 {\nentry:\n    %c = add.i64 %a, %b\n    ret %c\n}\n",
    )
    .unwrap();
    let f: extern "C" fn(i64, i64) -> i64 = unsafe { e.get_function("add").unwrap() };
    assert_eq!(f(40, 2), 42);
    assert_eq!(
        e.call("add", &[Val::I64(5), Val::I64(-7)]).unwrap(),
        Some(Val::I64(-2))
    );
}

#[test]
fn typed_lookup_checks_the_signature() {
    let e = Engine::default();
    e.add_module_text(
        "a.kir",
        "func @f(%a: i32) -> f64 {\nentry:\n    %b = sitof.f64 %a\n    ret %b\n}\n",
    )
    .unwrap();
    let bad = unsafe { e.get_function::<extern "C" fn(i64) -> f64>("f") };
    assert!(matches!(bad, Err(Error::Argument(m)) if m.contains("(i32) -> f64")));
    let bad = unsafe { e.get_function::<extern "C" fn(i32)>("f") };
    assert!(bad.is_err());
    let f = unsafe { e.get_function::<extern "C" fn(i32) -> f64>("f").unwrap() };
    assert_eq!(f(-3), -3.0);
    // Wrong generic arguments are errors, not crashes.
    assert!(matches!(e.call("f", &[]), Err(Error::Argument(_))));
    assert!(matches!(
        e.call("f", &[Val::I64(1)]),
        Err(Error::Argument(_))
    ));
    assert!(matches!(e.call("nope", &[]), Err(Error::Argument(_))));
}

/// xorshift64*
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A function of `params` returning Σ (param_i as f64) · (i + 1), in
/// order, converted to `ret` (stored to `@sink` when there is none).
fn weighted_sum(name: &str, params: &[Type], ret: Option<Type>) -> String {
    let mut s = String::new();
    let ps: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, t)| format!("%p{i}: {t}"))
        .collect();
    let r = ret.map_or(String::new(), |t| format!(" -> {t}"));
    writeln!(s, "data @{name}_sink = {{ f64 0.0 }}").unwrap();
    writeln!(s, "func @{name}({}){r} {{\nentry:", ps.join(", ")).unwrap();
    writeln!(s, "    %acc = copy.f64 0.0").unwrap();
    let mut acc = "%acc".to_string();
    for (i, t) in params.iter().enumerate() {
        let conv = match t {
            Type::I32 | Type::I64 => "sitof.f64",
            Type::F32 => "fext.f64",
            Type::F64 => "copy.f64",
        };
        writeln!(s, "    %c{i} = {conv} %p{i}").unwrap();
        writeln!(s, "    %m{i} = fmul.f64 %c{i}, {}.0", i + 1).unwrap();
        writeln!(s, "    %a{i} = fadd.f64 {acc}, %m{i}").unwrap();
        acc = format!("%a{i}");
    }
    match ret {
        Some(Type::F64) => writeln!(s, "    ret {acc}").unwrap(),
        Some(Type::F32) => writeln!(s, "    %r = ftrunc.f32 {acc}\n    ret %r").unwrap(),
        Some(t) => writeln!(s, "    %r = ftosi.{t} {acc}\n    ret %r").unwrap(),
        None => writeln!(
            s,
            "    %p = addr @{name}_sink\n    store.f64 {acc}, %p\n    ret"
        )
        .unwrap(),
    }
    s.push_str("}\n");
    s
}

fn expected(args: &[Val]) -> f64 {
    let mut acc = 0.0f64;
    for (i, a) in args.iter().enumerate() {
        let c = match *a {
            Val::I32(v) => v as f64,
            Val::I64(v) => v as f64,
            Val::F32(v) => v as f64,
            Val::F64(v) => v,
        };
        acc += c * (i + 1) as f64;
    }
    acc
}

fn random_val(rng: &mut Rng, t: Type) -> Val {
    let small = rng.below(2001) as i64 - 1000;
    match t {
        Type::I32 => Val::I32(small as i32 * 997),
        Type::I64 => Val::I64(small * 1_000_003),
        Type::F32 => Val::F32(small as f32 / 8.0),
        Type::F64 => Val::F64(small as f64 / 16.0),
    }
}

#[test]
fn generic_call_handles_many_signatures() {
    let e = Engine::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut shapes: Vec<(Vec<Type>, Option<Type>)> = vec![
        (vec![], Some(Type::I64)),
        (vec![Type::I64; 9], Some(Type::I64)),  // > 6 int args
        (vec![Type::F64; 11], Some(Type::F64)), // > 8 float args
        (vec![Type::F32; 10], Some(Type::F32)),
        (
            [vec![Type::I32; 8], vec![Type::F64; 10]].concat(),
            Some(Type::I32),
        ), // both spill
        (vec![Type::I64, Type::F32, Type::I32, Type::F64], None),
    ];
    for _ in 0..40 {
        let n = rng.below(22) as usize;
        let params = (0..n).map(|_| Type::ALL[rng.below(4) as usize]).collect();
        let ret = [
            None,
            Some(Type::I32),
            Some(Type::I64),
            Some(Type::F32),
            Some(Type::F64),
        ][rng.below(5) as usize];
        shapes.push((params, ret));
    }
    for (k, (params, ret)) in shapes.iter().enumerate() {
        let name = format!("w{k}");
        e.add_module_text(&format!("{name}.kir"), &weighted_sum(&name, params, *ret))
            .unwrap();
        for _ in 0..3 {
            let args: Vec<Val> = params.iter().map(|&t| random_val(&mut rng, t)).collect();
            let want = expected(&args);
            let got = e.call(&name, &args).unwrap();
            let sig = Signature::new(params.clone(), *ret);
            match (ret, got) {
                (None, None) => {
                    let p = e.symbol_address(&format!("{name}_sink")).unwrap();
                    // SAFETY: `@{name}_sink` is a finalized 8-byte data item.
                    let v = unsafe { std::ptr::read_unaligned(p as *const f64) };
                    assert_eq!(v.to_bits(), want.to_bits(), "{sig}");
                }
                (Some(Type::F64), Some(Val::F64(v))) => {
                    assert_eq!(v.to_bits(), want.to_bits(), "{sig}")
                }
                (Some(Type::F32), Some(Val::F32(v))) => {
                    assert_eq!(v.to_bits(), (want as f32).to_bits(), "{sig}")
                }
                (Some(Type::I64), Some(Val::I64(v))) => assert_eq!(v, want as i64, "{sig}"),
                (Some(Type::I32), Some(Val::I32(v))) => assert_eq!(v, want as i32, "{sig}"),
                other => panic!("{sig}: {other:?}"),
            }
        }
    }
}

#[test]
fn generic_and_typed_calls_agree() {
    let e = Engine::default();
    use Type::*;
    let p1 = vec![I32, F64, I64, F32, I32, F64, I64, F32];
    let p2 = vec![I64; 8];
    let p3 = vec![F64; 8];
    e.add_module_text("t1.kir", &weighted_sum("t1", &p1, Some(F64)))
        .unwrap();
    e.add_module_text("t2.kir", &weighted_sum("t2", &p2, Some(I64)))
        .unwrap();
    e.add_module_text("t3.kir", &weighted_sum("t3", &p3, Some(F32)))
        .unwrap();
    type T1 = extern "C" fn(i32, f64, i64, f32, i32, f64, i64, f32) -> f64;
    type T2 = extern "C" fn(i64, i64, i64, i64, i64, i64, i64, i64) -> i64;
    type T3 = extern "C" fn(f64, f64, f64, f64, f64, f64, f64, f64) -> f32;
    let (t1, t2, t3) = unsafe {
        (
            e.get_function::<T1>("t1").unwrap(),
            e.get_function::<T2>("t2").unwrap(),
            e.get_function::<T3>("t3").unwrap(),
        )
    };
    let mut rng = Rng(77);
    for _ in 0..20 {
        let a: Vec<Val> = p1.iter().map(|&t| random_val(&mut rng, t)).collect();
        let typed = match a[..] {
            [Val::I32(a0), Val::F64(a1), Val::I64(a2), Val::F32(a3), Val::I32(a4), Val::F64(a5), Val::I64(a6), Val::F32(a7)] => {
                t1(a0, a1, a2, a3, a4, a5, a6, a7)
            }
            _ => unreachable!(),
        };
        assert_eq!(e.call("t1", &a).unwrap(), Some(Val::F64(typed)));
        let b: Vec<i64> = (0..8)
            .map(|_| random_val(&mut rng, I64))
            .map(|v| match v {
                Val::I64(x) => x,
                _ => 0,
            })
            .collect();
        let typed = t2(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
        let args: Vec<Val> = b.iter().map(|&x| Val::I64(x)).collect();
        assert_eq!(e.call("t2", &args).unwrap(), Some(Val::I64(typed)));
        let c: Vec<f64> = (0..8).map(|i| i as f64 * 0.25 - 1.0).collect();
        let typed = t3(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
        let args: Vec<Val> = c.iter().map(|&x| Val::F64(x)).collect();
        assert_eq!(e.call("t3", &args).unwrap(), Some(Val::F32(typed)));
    }
}

#[test]
fn traps_in_call_are_errors_and_the_engine_goes_on() {
    let e = Engine::default();
    e.add_module_text(
        "t.kir",
        "func @div(%a: i64, %b: i64) -> i64 {\nentry:\n    %q = sdiv.i64 %a, %b\n    ret %q\n}\n\
         func @boom(%x: f64, %a: i64, %b: i64, %c: i64, %d: i64, %e: i64, %f: i64, %g: i64) -> i32 {\nentry:\n    trap\n}\n",
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            e.call("div", &[Val::I64(7), Val::I64(0)])
                .map_err(|e| e.trap_code()),
            Err(Some(TrapCode::DivisionByZero))
        );
        assert_eq!(
            e.call("div", &[Val::I64(i64::MIN), Val::I64(-1)])
                .map_err(|e| e.trap_code()),
            Err(Some(TrapCode::IntegerOverflow))
        );
        let mut args = vec![Val::F64(1.0)];
        args.extend((0..7).map(Val::I64));
        assert_eq!(
            e.call("boom", &args).map_err(|e| e.trap_code()),
            Err(Some(TrapCode::Unreachable))
        );
        assert_eq!(
            e.call("div", &[Val::I64(-9), Val::I64(2)]).unwrap(),
            Some(Val::I64(-4))
        );
    }
}

extern "C" fn host_twice(x: i64) -> i64 {
    x * 2
}

static HOST_DATA: [i64; 2] = [11, 31];

#[test]
fn host_symbols_registered_and_from_the_process() {
    let e = Engine::default();
    let sig = Signature::new(vec![Type::I64], Some(Type::I64));
    e.register_host_symbol("twice", host_twice as *const () as usize, Some(sig))
        .unwrap();
    e.register_host_symbol("table", HOST_DATA.as_ptr() as usize, None)
        .unwrap();
    // `labs` comes from the C library through dlsym.
    e.add_module_text(
        "h.kir",
        "extern func @twice(i64) -> i64\nextern func @labs(i64) -> i64\nextern data @table\n\
         func @f(%x: i64) -> i64 {\nentry:\n    %a = call.i64 @labs(%x)\n    %b = call.i64 @twice(%a)\n\
         %p = addr @table\n    %t = load.i64 %p, 8\n    %r = add.i64 %b, %t\n    ret %r\n}\n",
    )
    .unwrap();
    assert_eq!(e.call("f", &[Val::I64(-5)]).unwrap(), Some(Val::I64(41)));
    // A registered signature is checked.
    let m = e
        .add_module_text(
            "bad.kir",
            "extern func @twice(i32) -> i64\nfunc @g() -> i64 {\nentry:\n    %r = call.i64 @twice(1)\n    ret %r\n}\n",
        )
        .unwrap();
    match e.finalize_module(m) {
        Err(Error::Link(d)) => {
            assert_eq!((d.file.as_str(), d.loc.line, d.loc.col), ("bad.kir", 1, 13))
        }
        other => panic!("{other:?}"),
    }
    // Module exports win over host symbols.
    e.add_module_text(
        "labs.kir",
        "func @labs(%x: i64) -> i64 {\nentry:\n    ret 1000\n}\n",
    )
    .unwrap();
    e.add_module_text(
        "u.kir",
        "extern func @labs(i64) -> i64\nfunc @u() -> i64 {\nentry:\n    %r = call.i64 @labs(-3)\n    ret %r\n}\n",
    )
    .unwrap();
    assert_eq!(e.call("u", &[]).unwrap(), Some(Val::I64(1000)));
}

#[test]
fn engine_is_send_and_sync_and_works_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    let e = Arc::new(Engine::default());
    e.add_module_text(
        "shared.kir",
        "func @sq(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, %x\n    ret %y\n}\n",
    )
    .unwrap();
    let threads: Vec<_> = (0..4i64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for k in 0..50i64 {
                    let name = format!("t{t}_{k}");
                    e.add_module_text(
                        &format!("{name}.kir"),
                        &format!(
                            "extern func @sq(i64) -> i64\nfunc @{name}(%x: i64) -> i64 {{\nentry:\n    %s = call.i64 @sq(%x)\n    %r = add.i64 %s, {k}\n    ret %r\n}}\n"
                        ),
                    )
                    .unwrap();
                    assert_eq!(e.call(&name, &[Val::I64(t)]).unwrap(), Some(Val::I64(t * t + k)));
                    let f: extern "C" fn(i64) -> i64 = unsafe { e.get_function("sq").unwrap() };
                    assert_eq!(f(k), k * k);
                    if k > 0 {
                        let prev = format!("t{t}_{}", k - 1);
                        assert_eq!(e.call(&prev, &[Val::I64(2)]).unwrap(), Some(Val::I64(4 + k - 1)));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.stats().unwrap().finalized, 201);
}

#[test]
fn no_mapping_is_writable_and_executable() {
    let e = Engine::default();
    for k in 0..30 {
        e.add_module_text(
            &format!("m{k}.kir"),
            &format!("func @m{k}() -> i64 {{\nentry:\n    ret {k}\n}}\nconst @c{k} = {{ i64 1 }}\ndata @d{k} = {{ i64 2 }}\n"),
        )
        .unwrap();
        assert_eq!(
            e.call(&format!("m{k}"), &[Val::I64(0)][..0]).unwrap(),
            Some(Val::I64(k))
        );
    }
    let (code, _) = e.function_address("m3").unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut found_code = false;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (range, perms) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "W+X mapping: {line}"
        );
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        if (lo..hi).contains(&code) {
            assert!(perms.starts_with("r-x"), "{line}");
            found_code = true;
        }
    }
    assert!(found_code);
}

/// Runs this test binary again, on one test, with `KILN_CHILD` set.
fn run_child(test: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("KILN_CHILD", "1")
        .output()
        .unwrap()
}

const TRAPPING: &str =
    "func @d(%a: i32) -> i32 {\nentry:\n    %q = udiv.i32 100, %a\n    ret %q\n}\n";

#[test]
fn child_typed_trap_with_handler() {
    if std::env::var_os("KILN_CHILD").is_none() {
        let out = run_child("child_typed_trap_with_handler");
        assert_eq!(out.status.code(), Some(7), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("handled: division by zero"),
            "{out:?}"
        );
        return;
    }
    let e = Engine::default();
    e.on_trap(|t| {
        eprintln!("handled: {t}");
        std::process::exit(7)
    });
    e.add_module_text("d.kir", TRAPPING).unwrap();
    let f: extern "C" fn(i32) -> i32 = unsafe { e.get_function("d").unwrap() };
    assert_eq!(f(7), 14);
    f(0);
    unreachable!("the handler exits");
}

#[test]
fn child_typed_trap_default_handler_aborts() {
    if std::env::var_os("KILN_CHILD").is_none() {
        let out = run_child("child_typed_trap_default_handler_aborts");
        assert!(!out.status.success());
        assert_eq!(out.status.code(), None, "killed by SIGABRT: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("trap: division by zero"),
            "{out:?}"
        );
        return;
    }
    let e = Engine::default();
    e.add_module_text("d.kir", TRAPPING).unwrap();
    let f: extern "C" fn(i32) -> i32 = unsafe { e.get_function("d").unwrap() };
    f(0);
}

#[test]
fn no_default_features_dependency_list() {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return;
    };
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-e",
            "normal",
            "--no-default-features",
            "--depth",
            "1",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let Ok(out) = out else { return };
    if !out.status.success() {
        // cargo cannot resolve here (no lock file, no network): nothing to check.
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let allowed = ["kiln", "dynasmrt", "memmap2", "smallvec", "bumpalo", "libc"];
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(allowed.contains(&name), "unexpected dependency: {line}");
        names.push(name.to_string());
    }
    assert!(
        names.iter().any(|n| n == "kiln") && names.iter().any(|n| n == "libc"),
        "{text}"
    );
}

static REENTRANT: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();

/// A host function that calls back into the engine; -1 when that call
/// trapped.
extern "C" fn host_reenter(x: i64) -> i64 {
    let e = REENTRANT.get().expect("engine set before the call");
    match e.call("inner", &[Val::I64(x)]) {
        Ok(Some(Val::I64(v))) => v,
        Err(e) if e.trap_code() == Some(TrapCode::DivisionByZero) => -1,
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_functions_may_call_back_and_inner_traps_stay_inner() {
    let e = REENTRANT.get_or_init(Engine::default);
    let sig = Signature::new(vec![Type::I64], Some(Type::I64));
    e.register_host_symbol("reenter", host_reenter as *const () as usize, Some(sig))
        .unwrap();
    e.add_module_text(
        "inner.kir",
        "func @inner(%x: i64) -> i64 {\nentry:\n    %q = sdiv.i64 100, %x\n    ret %q\n}\n",
    )
    .unwrap();
    e.add_module_text(
        "outer.kir",
        "extern func @reenter(i64) -> i64\nfunc @outer(%x: i64, %d: i64) -> i64 {\nentry:\n\
         %r = call.i64 @reenter(%x)\n    %s = sdiv.i64 %r, %d\n    ret %s\n}\n",
    )
    .unwrap();
    // Inner call fine, outer fine.
    assert_eq!(
        e.call("outer", &[Val::I64(5), Val::I64(2)]).unwrap(),
        Some(Val::I64(10))
    );
    // Inner call traps: caught by the inner `call`; the outer goes on.
    assert_eq!(
        e.call("outer", &[Val::I64(0), Val::I64(1)]).unwrap(),
        Some(Val::I64(-1))
    );
    // Outer traps after a successful inner call: caught by the outer call.
    assert_eq!(
        e.call("outer", &[Val::I64(5), Val::I64(0)])
            .map_err(|e| e.trap_code()),
        Err(Some(TrapCode::DivisionByZero))
    );
    // Both, then a normal call: the frames were all restored.
    assert_eq!(
        e.call("outer", &[Val::I64(0), Val::I64(0)])
            .map_err(|e| e.trap_code()),
        Err(Some(TrapCode::DivisionByZero))
    );
    assert_eq!(
        e.call("outer", &[Val::I64(4), Val::I64(5)]).unwrap(),
        Some(Val::I64(5))
    );
}

#[test]
fn traps_on_many_threads_are_caught_per_thread() {
    let e = Arc::new(Engine::default());
    e.add_module_text(
        "d.kir",
        "func @d(%a: i64, %b: i64) -> i64 {\nentry:\n    %q = sdiv.i64 %a, %b\n    ret %q\n}\n",
    )
    .unwrap();
    let threads: Vec<_> = (0..4i64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for k in 0..200i64 {
                    let b = (k + t) % 3;
                    let r = e.call("d", &[Val::I64(k), Val::I64(b)]);
                    if b == 0 {
                        assert_eq!(
                            r.map_err(|e| e.trap_code()),
                            Err(Some(TrapCode::DivisionByZero))
                        );
                    } else {
                        assert_eq!(r.unwrap(), Some(Val::I64(k / b)));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

static REMOVER: std::sync::OnceLock<(Engine, std::sync::Mutex<Vec<String>>)> =
    std::sync::OnceLock::new();

/// Tries to remove the module that is calling it; records the outcome.
extern "C" fn host_remove_caller() -> i64 {
    let (e, log) = REMOVER.get().expect("set");
    let id = *LAST_ID.get().expect("set");
    let r = e.remove_module(id);
    log.lock().unwrap().push(format!("{r:?}"));
    7
}

static LAST_ID: std::sync::OnceLock<kiln::registry::ModuleId> = std::sync::OnceLock::new();

#[test]
fn a_module_cannot_be_removed_while_a_call_runs_in_it() {
    let (e, log) = REMOVER.get_or_init(|| (Engine::default(), std::sync::Mutex::new(Vec::new())));
    let sig = Signature::new(vec![], Some(Type::I64));
    e.register_host_symbol(
        "remove_caller",
        host_remove_caller as *const () as usize,
        Some(sig),
    )
    .unwrap();
    let id = e
        .add_module_text(
            "self.kir",
            "extern func @remove_caller() -> i64\nfunc @me() -> i64 {\nentry:\n    %r = call.i64 @remove_caller()\n    ret %r\n}\n",
        )
        .unwrap();
    LAST_ID.set(id).unwrap();
    assert_eq!(e.call("me", &[]).unwrap(), Some(Val::I64(7)));
    let entries = log.lock().unwrap().clone();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].contains("a call is running"), "{entries:?}");
    // After the call, removal works.
    e.remove_module(id).unwrap();
}
