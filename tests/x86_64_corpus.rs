//! x86-64 differential tests over larger inputs: random programs and every
//! `run` line of the instruction file tests, compiled (with the allocation
//! checker on) and compared with the interpreter; every `.kir` file of the
//! repository compiled.
#![cfg(all(target_arch = "x86_64", target_os = "linux", feature = "x86_64"))]

mod x86_64_support;
use x86_64_support::*;

/// Random programs: diamonds with block parameters, loops, calls, every
/// non-trapping integer and float operation; the compiled code must agree
/// with the interpreter on random inputs.
fn random_program(rng: &mut Rng, blocks: usize) -> String {
    let mut s = String::from(
        "local func @h(%a: i64, %b: i32, %c: f64) -> i64 {\nentry:\n    %d = sext.i64 %b\n    %e = ftosi.i64 %c\n    %f = mul.i64 %a, %d\n    %g = sub.i64 %f, %e\n    ret %g\n}\n",
    );
    s += "func @r(%p0: i64, %p1: i64, %p2: i32, %p3: f64, %p4: f32) -> i64 {\nentry:\n";
    let mut ints64 = vec!["%p0".to_string(), "%p1".to_string()];
    let mut ints32 = vec!["%p2".to_string()];
    let mut f64s = vec!["%p3".to_string()];
    let mut f32s = vec!["%p4".to_string()];
    let mut n = 0;
    let pick = |rng: &mut Rng, v: &Vec<String>| v[(rng.next() % v.len() as u64) as usize].clone();
    for b in 0..blocks {
        for _ in 0..12 {
            n += 1;
            let r = rng.next() % 14;
            let line = match r {
                0..=3 => {
                    let op = ["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar"]
                        [(rng.next() % 9) as usize];
                    let b = if rng.next().is_multiple_of(3) {
                        format!("{}", rng.next() % 100)
                    } else {
                        pick(rng, &ints64)
                    };
                    let l = format!("%v{n} = {op}.i64 {}, {b}", pick(rng, &ints64));
                    ints64.push(format!("%v{n}"));
                    l
                }
                4 | 5 => {
                    let op = ["add", "sub", "mul", "xor", "shl", "sar", "udiv", "urem"]
                        [(rng.next() % 8) as usize];
                    let b = if op.starts_with('u') || rng.next().is_multiple_of(2) {
                        format!("{}", rng.next() % 50 + 1)
                    } else {
                        pick(rng, &ints32)
                    };
                    let l = format!("%v{n} = {op}.i32 {}, {b}", pick(rng, &ints32));
                    ints32.push(format!("%v{n}"));
                    l
                }
                6 => {
                    let op = ["fadd", "fsub", "fmul", "fdiv"][(rng.next() % 4) as usize];
                    let l = format!(
                        "%v{n} = {op}.f64 {}, {}",
                        pick(rng, &f64s),
                        pick(rng, &f64s)
                    );
                    f64s.push(format!("%v{n}"));
                    l
                }
                7 => {
                    let op = ["fadd", "fmul", "fneg", "fabs"][(rng.next() % 4) as usize];
                    let l = if op.len() == 4 && op.starts_with("fn") || op == "fabs" {
                        format!("%v{n} = {op}.f32 {}", pick(rng, &f32s))
                    } else {
                        format!(
                            "%v{n} = {op}.f32 {}, {}",
                            pick(rng, &f32s),
                            pick(rng, &f32s)
                        )
                    };
                    f32s.push(format!("%v{n}"));
                    l
                }
                8 => {
                    let op = ["eq", "ne", "slt", "ule", "sgt", "uge"][(rng.next() % 6) as usize];
                    let l = format!(
                        "%v{n} = {op}.i64 {}, {}",
                        pick(rng, &ints64),
                        pick(rng, &ints64)
                    );
                    ints32.push(format!("%v{n}"));
                    l
                }
                9 => {
                    let op = ["flt", "feq", "fne", "fge"][(rng.next() % 4) as usize];
                    let l = format!(
                        "%v{n} = {op}.f64 {}, {}",
                        pick(rng, &f64s),
                        pick(rng, &f64s)
                    );
                    ints32.push(format!("%v{n}"));
                    l
                }
                10 => {
                    let conv = rng.next() % 6;
                    let (l, dst) = match conv {
                        0 => (format!("%v{n} = sext.i64 {}", pick(rng, &ints32)), 0),
                        1 => (format!("%v{n} = trunc.i32 {}", pick(rng, &ints64)), 1),
                        2 => (format!("%v{n} = sitof.f64 {}", pick(rng, &ints64)), 2),
                        3 => (format!("%v{n} = ftosi.i64 {}", pick(rng, &f64s)), 0),
                        4 => (format!("%v{n} = fext.f64 {}", pick(rng, &f32s)), 2),
                        _ => (format!("%v{n} = ftoui.i32 {}", pick(rng, &f32s)), 1),
                    };
                    [&mut ints64, &mut ints32, &mut f64s][dst].push(format!("%v{n}"));
                    l
                }
                11 => {
                    let l = format!(
                        "%v{n} = select.i64 {}, {}, {}",
                        pick(rng, &ints32),
                        pick(rng, &ints64),
                        pick(rng, &ints64)
                    );
                    ints64.push(format!("%v{n}"));
                    l
                }
                12 => {
                    let l = format!(
                        "%v{n} = call.i64 @h({}, {}, {})",
                        pick(rng, &ints64),
                        pick(rng, &ints32),
                        pick(rng, &f64s)
                    );
                    ints64.push(format!("%v{n}"));
                    l
                }
                _ => {
                    let l = format!(
                        "%v{n} = select.f64 {}, {}, {}",
                        pick(rng, &ints32),
                        pick(rng, &f64s),
                        pick(rng, &f64s)
                    );
                    f64s.push(format!("%v{n}"));
                    l
                }
            };
            s += &format!("    {line}\n");
        }
        // A diamond whose join passes (swapped) values as block parameters.
        n += 1;
        let c = pick(rng, &ints32);
        let (a, bb) = (pick(rng, &ints64), pick(rng, &ints64));
        let f = pick(rng, &f64s);
        s += &format!("    br {c}, t{b}({a}, {bb}), e{b}\n");
        s += &format!("t{b}(%ta{b}: i64, %tb{b}: i64):\n    %tc{b} = add.i64 %ta{b}, 1\n    jmp j{b}(%tc{b}, %tb{b}, {f})\n");
        s += &format!("e{b}:\n    jmp j{b}({bb}, {a}, 2.5)\n");
        s += &format!("j{b}(%ja{b}: i64, %jb{b}: i64, %jf{b}: f64):\n");
        // Only values of this join (and the parameters) stay visible:
        // earlier blocks' values do not dominate later blocks... they do
        // (straight-line chain of diamonds), so keep them all.
        ints64.push(format!("%ja{b}"));
        ints64.push(format!("%jb{b}"));
        f64s.push(format!("%jf{b}"));
    }
    // Fold everything into the result so that every value stays live.
    let mut acc = "%p0".to_string();
    let mut k = 0;
    for v in ints64.iter().skip(1) {
        k += 1;
        s += &format!("    %z{k} = xor.i64 {acc}, {v}\n    %y{k} = mul.i64 %z{k}, 3\n");
        acc = format!("%y{k}");
    }
    for v in ints32.iter() {
        k += 1;
        s += &format!("    %s{k} = zext.i64 {v}\n    %z{k} = add.i64 {acc}, %s{k}\n");
        acc = format!("%z{k}");
    }
    for v in f64s.iter() {
        k += 1;
        s += &format!("    %b{k} = bitcast.i64 {v}\n    %z{k} = xor.i64 {acc}, %b{k}\n");
        acc = format!("%z{k}");
    }
    for v in f32s.iter() {
        k += 1;
        s += &format!("    %b{k} = bitcast.i32 {v}\n    %s{k} = zext.i64 %b{k}\n    %z{k} = sub.i64 {acc}, %s{k}\n");
        acc = format!("%z{k}");
    }
    s += &format!("    ret {acc}\n}}\n");
    s
}

#[test]
fn random_programs_agree_with_the_interpreter() {
    let mut rng = Rng(0xdead_beef_1234_5678);
    for round in 0..25 {
        let src = random_program(&mut rng, 1 + round % 5);
        let a = compile_with(&src, &X86_64_BACKEND_CHECKED);
        let la = load(&a, &[]);
        let fa = func!(la, "r", fn(i64, i64, i32, f64, f32) -> i64);
        let mods = [parse_module("r.kir", &src).expect("parse")];
        let mut interp = kiln::interp::Interpreter::new(&mods, &kiln::host::HostFunctions::new())
            .expect("interpreter");
        for _ in 0..20 {
            let args = (
                rng.int() as i64,
                rng.int() as i64,
                rng.int() as i32,
                (rng.int() as i64 as f64) / 7.0,
                (rng.int() as i32 as f32) / 3.0,
            );
            let x = fa(args.0, args.1, args.2, args.3, args.4);
            use kiln::Val;
            let want = interp
                .call(
                    "r",
                    &[
                        Val::I64(args.0),
                        Val::I64(args.1),
                        Val::I32(args.2),
                        Val::F64(args.3),
                        Val::F32(args.4),
                    ],
                )
                .expect("interpreter run");
            assert_eq!(
                Some(Val::I64(x)),
                want,
                "round {round} args {args:?}\n{src}"
            );
        }
    }
}

/// One `; RUN: run [--entry NAME] [-- ARGS]` line of a `.kir` file.
fn run_lines(src: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in src.lines() {
        let Some(rest) = line.strip_prefix("; RUN: run") else {
            continue;
        };
        let (opts, args) = match rest.split_once(" -- ") {
            Some((o, a)) => (o, a.split_whitespace().map(String::from).collect()),
            None => (rest, Vec::new()),
        };
        let words: Vec<&str> = opts.split_whitespace().collect();
        let entry = match words.as_slice() {
            [] => "main".to_string(),
            ["--entry", name] => name.to_string(),
            _ => continue,
        };
        out.push((entry, args));
    }
    out
}

/// `src` plus a wrapper `@__x86test_call(%buf)` that loads the entry's
/// arguments from `buf`, calls it and stores the result back: a fixed
/// native signature for any IR signature.
fn with_wrapper(src: &str, sig: &kiln::ir::Signature, entry: &str) -> String {
    let mut s = format!("{src}\nfunc @__x86test_call(%buf: i64) {{\nentry:\n");
    let mut args = Vec::new();
    for (i, t) in sig.params.iter().enumerate() {
        s += &format!("    %a{i} = load.{t} %buf, {}\n", 8 * i);
        args.push(format!("%a{i}"));
    }
    match sig.ret {
        Some(t) => {
            s += &format!("    %r = call.{t} @{entry}({})\n", args.join(", "));
            s += &format!("    store.{t} %r, %buf\n");
        }
        None => s += &format!("    call @{entry}({})\n", args.join(", ")),
    }
    s += "    ret\n}\n";
    s
}

fn host_symbols() -> Vec<(&'static str, usize)> {
    [
        "putchar", "malloc", "free", "memcpy", "memset", "memcmp", "calloc", "getchar", "abort",
        "exit",
    ]
    .iter()
    .map(|&n| {
        let c = std::ffi::CString::new(n).expect("name");
        // SAFETY: dlsym with RTLD_DEFAULT looks a C library symbol up.
        (n, unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) }
            as usize)
    })
    .collect()
}

/// Every `run` line of the instruction file tests, compiled by both
/// backends and executed (in a forked child on a large stack), must give
/// the interpreter's result or trap with the interpreter's reason.
#[test]
fn instruction_file_tests_agree_with_the_interpreter() {
    use kiln::host::HostFunctions;
    use kiln::interp::Interpreter;
    use kiln::Val;
    let mut files: Vec<_> = std::fs::read_dir("tests/ir/inst")
        .expect("tests/ir/inst")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kir"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let host = HostFunctions::c_library();
    let mut checked = 0;
    for path in files {
        let src = std::fs::read_to_string(&path).expect("read");
        let module = parse_module("t.kir", &src).expect("parse");
        for (entry, args) in run_lines(&src) {
            let Some(sym) = module.symbol(&entry) else {
                continue;
            };
            let Some(sig) = module.sym(sym).signature().cloned() else {
                continue;
            };
            let Some(vals) = sig
                .params
                .iter()
                .zip(&args)
                .map(|(t, a)| Val::parse(*t, a))
                .collect::<Option<Vec<Val>>>()
            else {
                continue;
            };
            if vals.len() != sig.params.len() {
                continue;
            }
            let mods = [module.clone()];
            // The program's own output (putchar) is not compared: silence it.
            // SAFETY: saving, redirecting and restoring file descriptor 1.
            let saved = unsafe {
                let saved = libc::dup(1);
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                libc::dup2(null, 1);
                libc::close(null);
                saved
            };
            let want = Interpreter::new(&mods, &host).and_then(|mut i| i.call(&entry, &vals));
            // SAFETY: as above.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::dup2(saved, 1);
                libc::close(saved);
            }
            let wrapped = with_wrapper(&src, &sig, &entry);
            for backend in backends() {
                let cm = compile_with(&wrapped, backend);
                let l = load(&cm, &host_symbols());
                let call = func!(l, "__x86test_call", fn(*mut u64) -> ());
                let mut buf: Vec<u64> = vals.iter().map(|v| v.to_bits()).collect();
                buf.resize(buf.len().max(1), 0);
                let ret = sig.ret;
                let expect = want.clone();
                let what = format!("{} @{entry} {args:?}", path.display());
                let status = std::thread::scope(|sc| {
                    std::thread::Builder::new()
                        .stack_size(256 << 20)
                        .spawn_scoped(sc, || {
                            status_of(|| {
                                // Output of the program itself is not compared.
                                // SAFETY: redirecting our own (child) stdout.
                                unsafe {
                                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                                    libc::dup2(null, 1);
                                }
                                call(buf.as_mut_ptr());
                                let ok = match (&expect, ret) {
                                    (Ok(Some(v)), Some(t)) => {
                                        let got = Val::from_bits(t, buf[0]);
                                        got.to_bits() == v.to_bits()
                                            || matches!((got, v), (Val::F64(a), Val::F64(b)) if a.is_nan() && b.is_nan())
                                            || matches!((got, v), (Val::F32(a), Val::F32(b)) if a.is_nan() && b.is_nan())
                                    }
                                    (Ok(None), None) => true,
                                    _ => false,
                                };
                                if !ok {
                                    eprintln!("mismatch: {what}: got {:#x}, want {expect:?}", buf[0]);
                                    // SAFETY: ends the child.
                                    unsafe { libc::_exit(1) };
                                }
                            })
                        })
                        .expect("thread")
                        .join()
                        .expect("join")
                });
                let want_status = match &want {
                    Err(kiln::Error::Trap(t)) => 100 + t.code.code() as i32,
                    _ => 0,
                };
                assert_eq!(status, want_status, "{what}: interpreter says {want:?}");
                checked += 1;
            }
        }
    }
    eprintln!("{checked} runs checked");
    assert!(checked > 50, "only {checked} runs checked");
}

/// Every `.kir` file of the repository: verified modules compile on both
/// backends; modules the verifier rejects may fail to compile but never
/// panic.
#[test]
fn every_kir_file_compiles_or_fails_cleanly() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "kir") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(std::path::Path::new("tests/ir"), &mut files);
    let mut compiled = 0;
    for path in files {
        let src = std::fs::read_to_string(&path).expect("read");
        let Ok(module) = parse_module("t.kir", &src) else {
            continue;
        };
        let valid = kiln::ir::verify::verify_module(&module).is_ok();
        for backend in backends() {
            let r = compile_module(&module, backend);
            if valid {
                assert!(r.is_ok(), "{}: {r:?}", path.display());
                compiled += 1;
            }
        }
    }
    assert!(compiled > 20);
}
