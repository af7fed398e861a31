//! x86-64 backend tests: compile `.kir` modules, check the machine code's
//! shape by decoding it (iced-x86), and run it natively through a small
//! loader (mmap, copy, relocate, protect) against results computed in Rust
//! with the SPEC's semantics. Traps run in a forked child whose trap handler
//! exits with `100 + code`.
#![cfg(all(target_arch = "x86_64", target_os = "linux", feature = "x86_64"))]

mod x86_64_support;
use x86_64_support::*;

const SUM: &str = "
func @sum(%n: i64) -> i64 {
entry:
    jmp loop(0, 0)
loop(%i: i64, %acc: i64):
    %done = sge.i64 %i, %n
    br %done, exit(%acc), body
body:
    %acc2 = add.i64 %acc, %i
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %acc2)
exit(%r: i64):
    ret %r
}
";

#[test]
fn loop_with_block_params_runs() {
    for backend in backends() {
        loop_with_block_params_runs_on(backend);
    }
}

fn loop_with_block_params_runs_on(backend: &dyn Backend) {
    let cm = compile_with(SUM, backend);
    let l = load(&cm, &[]);
    let sum = func!(l, "sum", fn(i64) -> i64);
    for n in [0i64, 1, 2, 10, 1000, -5] {
        assert_eq!(sum(n), (0..n.max(0)).sum::<i64>(), "sum({n})");
    }
}

#[test]
fn compare_fuses_into_branch_and_immediates_fold() {
    let cm = compile(SUM);
    let insts = decode(&cm, "sum");
    let text = listing(&insts);
    // The compare feeding the br is never materialized.
    assert!(
        !insts.iter().any(|i| i.mnemonic() == Mnemonic::Setge),
        "{text}"
    );
    assert!(
        // `sge` branches as `jge`, or as `jl` to the other side when
        // the taken side falls through.
        insts
            .iter()
            .any(|i| matches!(i.mnemonic(), Mnemonic::Jge | Mnemonic::Jl)),
        "{text}"
    );
    // `add %i, 1` uses an immediate, and the zero literals are xor-zeroed.
    assert!(
        insts
            .iter()
            .any(|i| i.mnemonic() == Mnemonic::Add && is_imm(i, 1) && i.immediate(1) == 1),
        "{text}"
    );
    assert!(
        insts
            .iter()
            .any(|i| i.mnemonic() == Mnemonic::Xor && i.op0_register() == i.op1_register()),
        "{text}"
    );
    // No callee-saved register besides the frame pointer is touched.
    for i in &insts {
        for op in 0..i.op_count() {
            let r = i.op_register(op).full_register();
            assert!(
                ![
                    Register::RBX,
                    Register::R12,
                    Register::R13,
                    Register::R14,
                    Register::R15
                ]
                .contains(&r),
                "{text}"
            );
        }
    }
}

/// A loop whose exit edge needs moves: the body follows the loop's
/// conditional branch and the exit's moves are out of line, so an
/// iteration runs no jump besides the back edge (fails if the exit's
/// moves sit between the branch and the body).
const EXIT_MOVES: &str = "
func @count(%n: i64, %k: i64) -> i64 {
entry:
    jmp loop(0, 1)
loop(%j: i64, %m: i64):
    %c = slt.i64 %j, %n
    br %c, body, exit(%m, %j)
body:
    %j2 = add.i64 %j, %k
    jmp loop(%j2, %j)
exit(%a: i64, %b: i64):
    %r = sub.i64 %a, %b
    ret %r
}
";

#[test]
fn a_loop_body_falls_through_past_out_of_line_exit_moves() {
    let cm = compile(EXIT_MOVES);
    let insts = decode(&cm, "count");
    let text = listing(&insts);
    // The back edge: the last unconditional jump to an earlier address.
    let back = insts
        .iter()
        .rposition(|i| i.mnemonic() == Mnemonic::Jmp && i.near_branch_target() < i.ip())
        .unwrap_or_else(|| panic!("no back edge\n{text}"));
    let head = insts[back].near_branch_target();
    let start = insts
        .iter()
        .position(|i| i.ip() == head)
        .unwrap_or_else(|| panic!("no loop head\n{text}"));
    let jumps = insts[start..back]
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Jmp)
        .count();
    assert_eq!(
        jumps, 0,
        "a jump inside the loop besides the back edge\n{text}"
    );
    let l = load(&cm, &[]);
    let count = func!(l, "count", fn(i64, i64) -> i64);
    for (n, k) in [(0i64, 1i64), (1, 1), (10, 3), (100, 7), (-5, 2)] {
        let (mut j, mut m) = (0i64, 1i64);
        while j < n {
            m = j;
            j += k;
        }
        assert_eq!(count(n, k), m - j, "count({n}, {k})\n{text}");
    }
}

/// A loop with early `ret`s inside it (`exit` and `found` lie inside the
/// loop's span of the block order, which keeps them there: see
/// `Decisions::rpo_loops`), and 14 values defined before the loop and used
/// only in `found`: their ranges must cover the whole loop (every
/// iteration may reach `found`), with more values live than registers.
const EARLY_RET: &str = "
func @find(%n: i64, %key: i64) -> i64 {
entry:
    %b0 = mul.i64 %n, 3
    %b1 = mul.i64 %n, 10
    %b2 = mul.i64 %n, 17
    %b3 = mul.i64 %n, 24
    %b4 = mul.i64 %n, 31
    %b5 = mul.i64 %n, 38
    %b6 = mul.i64 %n, 45
    %b7 = mul.i64 %n, 52
    %b8 = mul.i64 %n, 59
    %b9 = mul.i64 %n, 66
    %b10 = mul.i64 %n, 73
    %b11 = mul.i64 %n, 80
    %b12 = mul.i64 %n, 87
    %b13 = mul.i64 %n, 94
    jmp loop(0, 0)
loop(%i: i64, %acc: i64):
    %done = sge.i64 %i, %n
    br %done, exit(%acc), body
body:
    %x = mul.i64 %i, 40503
    %h = xor.i64 %x, %acc
    %m = and.i64 %h, 1023
    %hit = eq.i64 %m, %key
    br %hit, found, next
found:
    %s0 = add.i64 %i, %b0
    %s1 = add.i64 %s0, %b1
    %s2 = add.i64 %s1, %b2
    %s3 = add.i64 %s2, %b3
    %s4 = add.i64 %s3, %b4
    %s5 = add.i64 %s4, %b5
    %s6 = add.i64 %s5, %b6
    %s7 = add.i64 %s6, %b7
    %s8 = add.i64 %s7, %b8
    %s9 = add.i64 %s8, %b9
    %s10 = add.i64 %s9, %b10
    %s11 = add.i64 %s10, %b11
    %s12 = add.i64 %s11, %b12
    %s13 = add.i64 %s12, %b13
    ret %s13
next:
    %acc2 = add.i64 %acc, %h
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %acc2)
exit(%r: i64):
    ret %r
}
";

#[test]
fn early_returns_inside_a_loop_keep_values_live_across_it() {
    for backend in backends() {
        let cm = compile_with(EARLY_RET, backend);
        let l = load(&cm, &[]);
        let find = func!(l, "find", fn(i64, i64) -> i64);
        for (n, key) in [
            (0i64, 5i64),
            (1, 0),
            (50, 7),
            (300, 1000),
            (300, 3),
            (2000, 77),
            (64, 2000),
        ] {
            let b: Vec<i64> = (0..KEYS).map(|j| n.wrapping_mul(j * 7 + 3)).collect();
            let (mut i, mut acc) = (0i64, 0i64);
            let want = loop {
                if i >= n {
                    break acc;
                }
                let h = i.wrapping_mul(40503) ^ acc;
                if h & 1023 == key {
                    break b.iter().fold(i, |s, &x| s.wrapping_add(x));
                }
                acc = acc.wrapping_add(h);
                i += 1;
            };
            assert_eq!(find(n, key), want, "find({n}, {key})");
        }
    }
}

/// The values live across [`EARLY_RET`]'s loop.
const KEYS: i64 = 14;

fn binop_module(ty: &str) -> String {
    let mut s = String::new();
    for op in [
        "add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "sdiv", "udiv", "srem",
        "urem",
    ] {
        s += &format!("func @{op}(%a: {ty}, %b: {ty}) -> {ty} {{\nentry:\n    %r = {op}.{ty} %a, %b\n    ret %r\n}}\n");
        s += &format!(
            "func @{op}_k(%a: {ty}) -> {ty} {{\nentry:\n    %r = {op}.{ty} %a, 7\n    ret %r\n}}\n"
        );
    }
    for op in [
        "eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
    ] {
        s += &format!("func @{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %r = {op}.{ty} %a, %b\n    ret %r\n}}\n");
        s += &format!("func @br_{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %c = {op}.{ty} %a, %b\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 0\n}}\n");
    }
    s
}

fn int_ref64(op: &str, a: u64, b: u64) -> Option<u64> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b as u32),
        "shr" => a.wrapping_shr(b as u32),
        "sar" => sa.wrapping_shr(b as u32) as u64,
        "sdiv" if b == 0 || (sa == i64::MIN && sb == -1) => return None,
        "sdiv" => (sa / sb) as u64,
        "udiv" if b == 0 => return None,
        "udiv" => a / b,
        "srem" if b == 0 => return None,
        "srem" => sa.wrapping_rem(sb) as u64,
        "urem" if b == 0 => return None,
        "urem" => a % b,
        "eq" => (a == b) as u64,
        "ne" => (a != b) as u64,
        "slt" => (sa < sb) as u64,
        "sle" => (sa <= sb) as u64,
        "sgt" => (sa > sb) as u64,
        "sge" => (sa >= sb) as u64,
        "ult" => (a < b) as u64,
        "ule" => (a <= b) as u64,
        "ugt" => (a > b) as u64,
        "uge" => (a >= b) as u64,
        _ => unreachable!(),
    })
}

fn int_ref32(op: &str, a: u32, b: u32) -> Option<u32> {
    let (sa, sb) = (a as i32, b as i32);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b),
        "shr" => a.wrapping_shr(b),
        "sar" => sa.wrapping_shr(b) as u32,
        "sdiv" if b == 0 || (sa == i32::MIN && sb == -1) => return None,
        "sdiv" => (sa / sb) as u32,
        "udiv" if b == 0 => return None,
        "udiv" => a / b,
        "srem" if b == 0 => return None,
        "srem" => sa.wrapping_rem(sb) as u32,
        "urem" if b == 0 => return None,
        "urem" => a % b,
        "eq" => (a == b) as u32,
        "ne" => (a != b) as u32,
        "slt" => (sa < sb) as u32,
        "sle" => (sa <= sb) as u32,
        "sgt" => (sa > sb) as u32,
        "sge" => (sa >= sb) as u32,
        "ult" => (a < b) as u32,
        "ule" => (a <= b) as u32,
        "ugt" => (a > b) as u32,
        "uge" => (a >= b) as u32,
        _ => unreachable!(),
    })
}

const BINOPS: [&str; 13] = [
    "add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "sdiv", "udiv", "srem", "urem",
];
const CMPS: [&str; 10] = [
    "eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
];

#[test]
fn integer_ops_match_spec_semantics_i64() {
    for backend in backends() {
        integer_ops_match_spec_semantics_i64_on(backend);
    }
}

fn integer_ops_match_spec_semantics_i64_on(backend: &dyn Backend) {
    let cm = compile_with(&binop_module("i64"), backend);
    let l = load(&cm, &[]);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for op in BINOPS {
        let f = func!(l, op, fn(u64, u64) -> u64);
        let fk = func!(l, &format!("{op}_k"), fn(u64) -> u64);
        for _ in 0..300 {
            let (a, b) = (rng.int(), rng.int());
            if let Some(want) = int_ref64(op, a, b) {
                assert_eq!(f(a, b), want, "{op}.i64 {a:#x}, {b:#x}");
            }
            if let Some(want) = int_ref64(op, a, 7) {
                assert_eq!(fk(a), want, "{op}.i64 {a:#x}, 7");
            }
        }
    }
    for op in CMPS {
        let f = func!(l, op, fn(u64, u64) -> u32);
        let fb = func!(l, &format!("br_{op}"), fn(u64, u64) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int(), rng.int());
            let b = if rng.next().is_multiple_of(4) { a } else { b };
            let want = int_ref64(op, a, b).unwrap() as u32;
            assert_eq!(f(a, b), want, "{op}.i64 {a:#x}, {b:#x}");
            assert_eq!(fb(a, b), want, "br {op}.i64 {a:#x}, {b:#x}");
        }
    }
}

#[test]
fn integer_ops_match_spec_semantics_i32() {
    for backend in backends() {
        integer_ops_match_spec_semantics_i32_on(backend);
    }
}

fn integer_ops_match_spec_semantics_i32_on(backend: &dyn Backend) {
    let cm = compile_with(&binop_module("i32"), backend);
    let l = load(&cm, &[]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for op in BINOPS {
        let f = func!(l, op, fn(u32, u32) -> u32);
        let fk = func!(l, &format!("{op}_k"), fn(u32) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int() as u32, rng.int() as u32);
            if let Some(want) = int_ref32(op, a, b) {
                assert_eq!(f(a, b), want, "{op}.i32 {a:#x}, {b:#x}");
            }
            if let Some(want) = int_ref32(op, a, 7) {
                assert_eq!(fk(a), want, "{op}.i32 {a:#x}, 7");
            }
        }
    }
    for op in CMPS {
        let f = func!(l, op, fn(u32, u32) -> u32);
        let fb = func!(l, &format!("br_{op}"), fn(u32, u32) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int() as u32, rng.int() as u32);
            let b = if rng.next().is_multiple_of(4) { a } else { b };
            let want = int_ref32(op, a, b).unwrap();
            assert_eq!(f(a, b), want, "{op}.i32 {a:#x}, {b:#x}");
            assert_eq!(fb(a, b), want, "br {op}.i32 {a:#x}, {b:#x}");
        }
    }
}

#[test]
fn division_traps_with_the_right_reason() {
    for backend in backends() {
        division_traps_with_the_right_reason_on(backend);
    }
}

fn division_traps_with_the_right_reason_on(backend: &dyn Backend) {
    let cm = compile_with(&binop_module("i64"), backend);
    let cm32 = compile_with(&binop_module("i32"), backend);
    let l = load(&cm, &[]);
    let l32 = load(&cm32, &[]);
    let sdiv = func!(l, "sdiv", fn(i64, i64) -> i64);
    let srem = func!(l, "srem", fn(i64, i64) -> i64);
    let udiv = func!(l, "udiv", fn(i64, i64) -> i64);
    let sdiv32 = func!(l32, "sdiv", fn(i32, i32) -> i32);
    let srem32 = func!(l32, "srem", fn(i32, i32) -> i32);
    assert_eq!(srem(i64::MIN, -1), 0);
    assert_eq!(srem32(i32::MIN, -1), 0);
    assert_eq!(sdiv(-7, 2), -3);
    assert_eq!(srem(-7, 2), -1);
    assert_eq!(
        status_of(|| {
            sdiv(1, 0);
        }),
        101
    );
    assert_eq!(
        status_of(|| {
            udiv(1, 0);
        }),
        101
    );
    assert_eq!(
        status_of(|| {
            srem(1, 0);
        }),
        101
    );
    assert_eq!(
        status_of(|| {
            sdiv(i64::MIN, -1);
        }),
        102
    );
    assert_eq!(
        status_of(|| {
            sdiv32(i32::MIN, -1);
        }),
        102
    );
    assert_eq!(
        status_of(|| {
            sdiv(i64::MIN, 1);
        }),
        0
    );
    let cm = compile_with("func @f() {\nentry:\n    trap\n}\n", backend);
    assert_eq!(cm.imports, vec![isa::TRAP_HANDLER.to_string()]);
    let l = load(&cm, &[]);
    let f = func!(l, "f", fn() -> ());
    assert_eq!(status_of(|| f()), 100);
}

const FLOATS: &str = "
func @fadd(%a: f64, %b: f64) -> f64 {
entry:
    %r = fadd.f64 %a, %b
    ret %r
}
func @fdiv32(%a: f32, %b: f32) -> f32 {
entry:
    %r = fdiv.f32 %a, %b
    ret %r
}
func @fneg(%a: f64) -> f64 {
entry:
    %r = fneg.f64 %a
    ret %r
}
func @fabs32(%a: f32) -> f32 {
entry:
    %r = fabs.f32 %a
    ret %r
}
func @fsqrt(%a: f64) -> f64 {
entry:
    %r = fsqrt.f64 %a
    ret %r
}
func @poly(%x: f64) -> f64 {
entry:
    %a = fmul.f64 %x, 2.5
    %b = fsub.f64 %a, -1.0
    %c = fmul.f64 %b, %x
    ret %c
}
func @fext(%a: f32) -> f64 {
entry:
    %r = fext.f64 %a
    ret %r
}
func @ftrunc(%a: f64) -> f32 {
entry:
    %r = ftrunc.f32 %a
    ret %r
}
func @bits(%a: f64) -> i64 {
entry:
    %r = bitcast.i64 %a
    ret %r
}
func @fsel(%c: i32, %a: f64, %b: f64) -> f64 {
entry:
    %r = select.f64 %c, %a, %b
    ret %r
}
func @isel(%c: i32, %a: i64, %b: i64) -> i64 {
entry:
    %r = select.i64 %c, %a, %b
    ret %r
}
";

#[test]
fn float_arithmetic_and_moves() {
    for backend in backends() {
        float_arithmetic_and_moves_on(backend);
    }
}

fn float_arithmetic_and_moves_on(backend: &dyn Backend) {
    let cm = compile_with(FLOATS, backend);
    let l = load(&cm, &[]);
    let fadd = func!(l, "fadd", fn(f64, f64) -> f64);
    let fdiv32 = func!(l, "fdiv32", fn(f32, f32) -> f32);
    let fneg = func!(l, "fneg", fn(f64) -> f64);
    let fabs32 = func!(l, "fabs32", fn(f32) -> f32);
    let fsqrt = func!(l, "fsqrt", fn(f64) -> f64);
    let poly = func!(l, "poly", fn(f64) -> f64);
    let fext = func!(l, "fext", fn(f32) -> f64);
    let ftrunc = func!(l, "ftrunc", fn(f64) -> f32);
    let bits = func!(l, "bits", fn(f64) -> i64);
    let fsel = func!(l, "fsel", fn(i32, f64, f64) -> f64);
    let isel = func!(l, "isel", fn(i32, i64, i64) -> i64);
    assert_eq!(fadd(1.5, 2.25), 3.75);
    assert_eq!(fdiv32(1.0, 3.0), 1.0f32 / 3.0);
    assert_eq!(fneg(0.0).to_bits(), (-0.0f64).to_bits());
    assert_eq!(fneg(-2.0), 2.0);
    assert_eq!(fabs32(-0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(fabs32(-3.5), 3.5);
    assert_eq!(fsqrt(2.0), 2.0f64.sqrt());
    assert!(fsqrt(-1.0).is_nan());
    assert_eq!(poly(3.0), (3.0 * 2.5 + 1.0) * 3.0);
    assert_eq!(fext(1.1f32), 1.1f32 as f64);
    assert_eq!(ftrunc(1.1), 1.1f64 as f32);
    assert_eq!(ftrunc(1e300), f32::INFINITY);
    assert_eq!(bits(-1.5), (-1.5f64).to_bits() as i64);
    assert_eq!(fsel(1, 1.0, 2.0), 1.0);
    assert_eq!(fsel(0, 1.0, 2.0), 2.0);
    assert_eq!(isel(-7, 5, 6), 5);
    assert_eq!(isel(0, 5, 6), 6);
}

fn fcmp_module(ty: &str) -> String {
    let mut s = String::new();
    for op in ["feq", "fne", "flt", "fle", "fgt", "fge"] {
        s += &format!("func @{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %r = {op}.{ty} %a, %b\n    ret %r\n}}\n");
        s += &format!("func @br_{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %c = {op}.{ty} %a, %b\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 0\n}}\n");
    }
    s
}

fn fcmp_ref(op: &str, a: f64, b: f64) -> u32 {
    (match op {
        "feq" => a == b,
        "fne" => a != b,
        "flt" => a < b,
        "fle" => a <= b,
        "fgt" => a > b,
        _ => a >= b,
    }) as u32
}

#[test]
fn float_compares_are_nan_correct() {
    for backend in backends() {
        float_compares_are_nan_correct_on(backend);
    }
}

fn float_compares_are_nan_correct_on(backend: &dyn Backend) {
    let vals = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let cm = compile_with(&fcmp_module("f64"), backend);
    let cm32 = compile_with(&fcmp_module("f32"), backend);
    let l = load(&cm, &[]);
    let l32 = load(&cm32, &[]);
    for op in ["feq", "fne", "flt", "fle", "fgt", "fge"] {
        let f = func!(l, op, fn(f64, f64) -> u32);
        let fb = func!(l, &format!("br_{op}"), fn(f64, f64) -> u32);
        let f32_ = func!(l32, op, fn(f32, f32) -> u32);
        let fb32 = func!(l32, &format!("br_{op}"), fn(f32, f32) -> u32);
        for &a in &vals {
            for &b in &vals {
                let want = fcmp_ref(op, a, b);
                assert_eq!(f(a, b), want, "{op}.f64 {a} {b}");
                assert_eq!(fb(a, b), want, "br {op}.f64 {a} {b}");
                assert_eq!(f32_(a as f32, b as f32), want, "{op}.f32 {a} {b}");
                assert_eq!(fb32(a as f32, b as f32), want, "br {op}.f32 {a} {b}");
            }
        }
    }
}

fn conv_module() -> String {
    let mut s = String::new();
    for (name, op, from, to) in [
        ("d2i", "ftosi", "f64", "i32"),
        ("d2l", "ftosi", "f64", "i64"),
        ("f2i", "ftosi", "f32", "i32"),
        ("f2l", "ftosi", "f32", "i64"),
        ("d2u", "ftoui", "f64", "i32"),
        ("d2ul", "ftoui", "f64", "i64"),
        ("f2u", "ftoui", "f32", "i32"),
        ("f2ul", "ftoui", "f32", "i64"),
        ("i2d", "sitof", "i32", "f64"),
        ("l2d", "sitof", "i64", "f64"),
        ("l2f", "sitof", "i64", "f32"),
        ("u2d", "uitof", "i32", "f64"),
        ("ul2d", "uitof", "i64", "f64"),
        ("ul2f", "uitof", "i64", "f32"),
        ("u2f", "uitof", "i32", "f32"),
    ] {
        s += &format!(
            "func @{name}(%a: {from}) -> {to} {{\nentry:\n    %r = {op}.{to} %a\n    ret %r\n}}\n"
        );
    }
    s
}

#[test]
fn conversions_saturate_and_handle_nan_and_unsigned() {
    for backend in backends() {
        conversions_saturate_and_handle_nan_and_unsigned_on(backend);
    }
}

fn conversions_saturate_and_handle_nan_and_unsigned_on(backend: &dyn Backend) {
    let cm = compile_with(&conv_module(), backend);
    let l = load(&cm, &[]);
    let d2i = func!(l, "d2i", fn(f64) -> i32);
    let d2l = func!(l, "d2l", fn(f64) -> i64);
    let f2i = func!(l, "f2i", fn(f32) -> i32);
    let f2l = func!(l, "f2l", fn(f32) -> i64);
    let d2u = func!(l, "d2u", fn(f64) -> u32);
    let d2ul = func!(l, "d2ul", fn(f64) -> u64);
    let f2u = func!(l, "f2u", fn(f32) -> u32);
    let f2ul = func!(l, "f2ul", fn(f32) -> u64);
    let specials = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.9,
        -1.9,
        3e9,
        -3e9,
        4294967295.0,
        4294967296.0,
        2147483647.0,
        2147483648.0,
        -2147483648.0,
        -2147483649.0,
        9.2e18,
        9.3e18,
        1.8e19,
        1.9e19,
        -9.3e18,
        9223372036854775807.0,
        18446744073709551615.0,
        1e300,
        -1e300,
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for &x in &specials {
        assert_eq!(d2i(x), x as i32, "ftosi.i32 {x}");
        assert_eq!(d2l(x), x as i64, "ftosi.i64 {x}");
        assert_eq!(d2u(x), x as u32, "ftoui.i32 {x}");
        assert_eq!(d2ul(x), x as u64, "ftoui.i64 {x}");
        let y = x as f32;
        assert_eq!(f2i(y), y as i32, "ftosi.i32 f32 {y}");
        assert_eq!(f2l(y), y as i64, "ftosi.i64 f32 {y}");
        assert_eq!(f2u(y), y as u32, "ftoui.i32 f32 {y}");
        assert_eq!(f2ul(y), y as u64, "ftoui.i64 f32 {y}");
    }
    let i2d = func!(l, "i2d", fn(i32) -> f64);
    let l2d = func!(l, "l2d", fn(i64) -> f64);
    let l2f = func!(l, "l2f", fn(i64) -> f32);
    let u2d = func!(l, "u2d", fn(u32) -> f64);
    let ul2d = func!(l, "ul2d", fn(u64) -> f64);
    let ul2f = func!(l, "ul2f", fn(u64) -> f32);
    let u2f = func!(l, "u2f", fn(u32) -> f32);
    let mut rng = Rng(77);
    for _ in 0..500 {
        let v = rng.int();
        assert_eq!(i2d(v as i32), v as i32 as f64);
        assert_eq!(l2d(v as i64), v as i64 as f64);
        assert_eq!(l2f(v as i64), v as i64 as f32);
        assert_eq!(u2d(v as u32), v as u32 as f64);
        assert_eq!(ul2d(v), v as f64, "uitof.f64 {v:#x}");
        assert_eq!(ul2f(v), v as f32, "uitof.f32 {v:#x}");
        assert_eq!(u2f(v as u32), v as u32 as f32);
    }
}

const CALLS: &str = "
extern func @host_mix(i64, f64, i32) -> f64
func @fib(%n: i64) -> i64 {
entry:
    %small = slt.i64 %n, 2
    br %small, done(%n), rec
rec:
    %a = sub.i64 %n, 1
    %fa = call.i64 @fib(%a)
    %b = sub.i64 %n, 2
    %fb = call.i64 @fib(%b)
    %s = add.i64 %fa, %fb
    jmp done(%s)
done(%r: i64):
    ret %r
}
local func @many(%a: i64, %b: f64, %c: i64, %d: i64, %e: i64, %f: i64, %g: i64, %h: i64, %i: i32, %j: f64, %k: f64, %l: f64, %m: f64, %n: f64, %o: f64, %p: f64, %q: f64, %r: f32) -> f64 {
entry:
    %t0 = add.i64 %a, %c
    %t1 = add.i64 %t0, %h
    %t2 = sext.i64 %i
    %t3 = mul.i64 %t1, %t2
    %x = sitof.f64 %t3
    %y = fadd.f64 %x, %q
    %r64 = fext.f64 %r
    %z = fmul.f64 %y, %r64
    %w = fsub.f64 %z, %b
    ret %w
}
func @call_many(%v: i64) -> f64 {
entry:
    %r = call.f64 @many(%v, 0.5, 2, 3, 4, 5, 6, 7, -3, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.25, 2.0)
    ret %r
}
func @via_host(%v: i64) -> f64 {
entry:
    %t = call.f64 @host_mix(%v, 1.5, -2)
    %p = addr @fib
    %f = call.i64 %p(%v)
    %ff = sitof.f64 %f
    %s = fadd.f64 %t, %ff
    ret %s
}
func @swap(%n: i64, %a: i64, %b: i64) -> i64 {
entry:
    jmp loop(%n, %a, %b)
loop(%i: i64, %x: i64, %y: i64):
    %z = eq.i64 %i, 0
    br %z, out, body
body:
    %i2 = sub.i64 %i, 1
    jmp loop(%i2, %y, %x)
out:
    %m = mul.i64 %x, 1000
    %r = add.i64 %m, %y
    ret %r
}
";

extern "C" fn host_mix(a: i64, b: f64, c: i32) -> f64 {
    a as f64 * b + c as f64
}

fn fib_ref(n: i64) -> i64 {
    if n < 2 {
        n
    } else {
        fib_ref(n - 1) + fib_ref(n - 2)
    }
}

#[test]
fn calls_recursion_stack_args_host_and_indirect() {
    for backend in backends() {
        calls_recursion_stack_args_host_and_indirect_on(backend);
    }
}

fn calls_recursion_stack_args_host_and_indirect_on(backend: &dyn Backend) {
    let cm = compile_with(CALLS, backend);
    assert_eq!(cm.imports, vec!["host_mix".to_string()]);
    let l = load(&cm, &[("host_mix", host_mix as *const () as usize)]);
    let fib = func!(l, "fib", fn(i64) -> i64);
    for n in 0..20 {
        assert_eq!(fib(n), fib_ref(n));
    }
    let call_many = func!(l, "call_many", fn(i64) -> f64);
    let want = |v: i64| (((v + 2 + 7) * -3) as f64 + 8.25) * 2.0 - 0.5;
    assert_eq!(call_many(10), want(10));
    assert_eq!(call_many(-4), want(-4));
    let via_host = func!(l, "via_host", fn(i64) -> f64);
    assert_eq!(via_host(10), host_mix(10, 1.5, -2) + fib_ref(10) as f64);
    let swap = func!(l, "swap", fn(i64, i64, i64) -> i64);
    assert_eq!(swap(0, 1, 2), 1002);
    assert_eq!(swap(1, 1, 2), 2001);
    assert_eq!(swap(7, 1, 2), 2001);
    assert_eq!(swap(8, 1, 2), 1002);
}

const MEMORY: &str = "
data @counter = { i64 5 }
const @table = { i32 10 20 30, i8 \"ab\\0\", @counter, @table+4 }
func @bump(%by: i64) -> i64 {
entry:
    %p = addr @counter
    %v = load.i64 %p
    %n = add.i64 %v, %by
    store.i64 %n, %p
    ret %n
}
func @tab(%i: i64) -> i32 {
entry:
    %p = addr @table
    %o = mul.i64 %i, 4
    %q = add.i64 %p, %o
    %v = load.i32 %q
    ret %v
}
func @indirect_counter() -> i64 {
entry:
    %p = addr @table
    %c = load.i64 %p, 16
    %v = load.i64 %c
    %t = load.i64 %p, 24
    %w = load.i32 %t
    %ww = sext.i64 %w
    %s = add.i64 %v, %ww
    ret %s
}
func @narrow(%x: i64) -> i64 {
entry:
    %buf = alloca 16, 16
    store.i64 0, %buf
    store.i64 0, %buf, 8
    store8 %x, %buf, 1
    store16 %x, %buf, 4
    %b2 = add.i64 %buf, 8
    store32 %x, %b2
    %a = load8s.i64 %buf, 1
    %b = load8u.i64 %buf, 1
    %c = load16s.i32 %buf, 4
    %d = load16u.i32 %buf, 4
    %e = load32s.i64 %b2
    %f = load32u.i64 %buf, 8
    %g = load8u.i32 %buf, 2
    %c64 = sext.i64 %c
    %d64 = zext.i64 %d
    %g64 = zext.i64 %g
    %s1 = xor.i64 %a, %b
    %s2 = xor.i64 %s1, %c64
    %s3 = xor.i64 %s2, %d64
    %s4 = xor.i64 %s3, %e
    %s5 = xor.i64 %s4, %f
    %s6 = add.i64 %s5, %g64
    ret %s6
}
func @fmem(%x: f32) -> f32 {
entry:
    %buf = alloca 8
    store.f32 %x, %buf, 4
    %y = load.f32 %buf, 4
    %z = fadd.f32 %y, %y
    ret %z
}
";

#[test]
fn memory_data_relocations_and_narrow_access() {
    for backend in backends() {
        memory_data_relocations_and_narrow_access_on(backend);
    }
}

fn memory_data_relocations_and_narrow_access_on(backend: &dyn Backend) {
    let cm = compile_with(MEMORY, backend);
    assert!(cm.relocs.iter().any(|r| r.section == SectionKind::Rodata
        && r.kind == RelocKind::Abs64
        && r.target == "counter"));
    let l = load(&cm, &[]);
    let bump = func!(l, "bump", fn(i64) -> i64);
    assert_eq!(bump(3), 8);
    assert_eq!(bump(-1), 7);
    let tab = func!(l, "tab", fn(i64) -> i32);
    assert_eq!((tab(0), tab(1), tab(2)), (10, 20, 30));
    let ic = func!(l, "indirect_counter", fn() -> i64);
    assert_eq!(ic(), 7 + 20);
    let narrow = func!(l, "narrow", fn(i64) -> i64);
    let want = |x: i64| {
        let a = x as i8 as i64;
        let b = x as u8 as i64;
        let c = x as i16 as i64;
        let d = x as u16 as i64;
        let e = x as i32 as i64;
        let f = x as u32 as i64;
        a ^ b ^ c ^ d ^ e ^ f
    };
    let mut rng = Rng(5);
    for _ in 0..200 {
        let x = rng.int() as i64;
        assert_eq!(narrow(x), want(x), "{x:#x}");
    }
    let fmem = func!(l, "fmem", fn(f32) -> f32);
    assert_eq!(fmem(1.25), 2.5);
}

fn switch_module() -> String {
    let mut s = String::from("func @dense(%v: i32) -> i32 {\nentry:\n    switch.i32 %v, d, 3: a, 4: b, 5: c, 7: e, 8: a\n");
    s += "a:\n    ret 10\nb:\n    ret 11\nc:\n    ret 12\ne:\n    ret 13\nd:\n    ret -1\n}\n";
    s += "func @sparse(%v: i64) -> i32 {\nentry:\n    switch.i64 %v, d, -1: a, 1000000: b, 0x123456789: c\n";
    s += "a:\n    ret 1\nb:\n    ret 2\nc:\n    ret 3\nd:\n    ret 0\n}\n";
    s += "func @neg(%v: i64) -> i32 {\nentry:\n    switch.i64 %v, d, -2: a, -1: b, 0: c, 1: a, 2: b\n";
    s += "a:\n    ret 1\nb:\n    ret 2\nc:\n    ret 3\nd:\n    ret 0\n}\n";
    s
}

#[test]
fn switch_jump_tables_and_compare_chains() {
    for backend in backends() {
        switch_jump_tables_and_compare_chains_on(backend);
    }
}

fn switch_jump_tables_and_compare_chains_on(backend: &dyn Backend) {
    let cm = compile_with(&switch_module(), backend);
    assert!(cm
        .symbols
        .iter()
        .any(|s| s.name.starts_with("dense#jt") && s.section == SectionKind::Rodata));
    let l = load(&cm, &[]);
    let dense = func!(l, "dense", fn(i32) -> i32);
    let want = |v: i32| match v {
        3 | 8 => 10,
        4 => 11,
        5 => 12,
        7 => 13,
        _ => -1,
    };
    for v in [-5, 0, 2, 3, 4, 5, 6, 7, 8, 9, 100, i32::MIN, i32::MAX] {
        assert_eq!(dense(v), want(v), "{v}");
    }
    let sparse = func!(l, "sparse", fn(i64) -> i32);
    assert_eq!(sparse(-1), 1);
    assert_eq!(sparse(1000000), 2);
    assert_eq!(sparse(0x123456789), 3);
    assert_eq!(sparse(0x23456789), 0);
    assert_eq!(sparse(5), 0);
    let neg = func!(l, "neg", fn(i64) -> i32);
    for (v, w) in [
        (-3, 0),
        (-2, 1),
        (-1, 2),
        (0, 3),
        (1, 1),
        (2, 2),
        (3, 0),
        (i64::MIN, 0),
    ] {
        assert_eq!(neg(v), w, "{v}");
    }
}

#[test]
fn a_20000_instruction_function_compiles_and_runs() {
    for backend in backends() {
        a_20000_instruction_function_compiles_and_runs_on(backend);
    }
}

fn a_20000_instruction_function_compiles_and_runs_on(backend: &dyn Backend) {
    let mut s = String::from("func @big(%x: i64) -> i64 {\nentry:\n    %v0 = add.i64 %x, 1\n");
    for i in 1..20000 {
        let op = ["add", "xor", "mul", "sub"][i % 4];
        s += &format!("    %v{i} = {op}.i64 %v{}, {}\n", i - 1, i % 13 + 1);
    }
    s += "    ret %v19999\n}\n";
    let cm = compile_with(&s, backend);
    let l = load(&cm, &[]);
    let big = func!(l, "big", fn(i64) -> i64);
    let mut want = 5i64.wrapping_add(1);
    for i in 1..20000i64 {
        let k = i % 13 + 1;
        want = match i % 4 {
            0 => want.wrapping_add(k),
            1 => want ^ k,
            2 => want.wrapping_mul(k),
            _ => want.wrapping_sub(k),
        };
    }
    assert_eq!(big(5), want);
}

/// Many values live at once (more than the 13 allocatable integer and 15
/// float registers), some across calls: forces spills and callee-saved
/// registers.
fn pressure_module(n: usize) -> String {
    let mut s = String::from(
        "local func @mix(%a: i64, %b: f64) -> i64 {\nentry:\n    %c = ftosi.i64 %b\n    %r = xor.i64 %a, %c\n    ret %r\n}\n",
    );
    s += "func @pressure(%x: i64, %y: f64) -> i64 {\nentry:\n";
    for i in 0..n {
        s += &format!("    %i{i} = mul.i64 %x, {}\n", i + 3);
        s += &format!("    %f{i} = fmul.f64 %y, {}.5\n", i + 1);
    }
    s += "    %c0 = call.i64 @mix(%i0, %f0)\n";
    s += "    %acc0 = add.i64 %c0, 0\n";
    for i in 0..n {
        s += &format!("    %t{i} = ftosi.i64 %f{i}\n");
        s += &format!("    %u{i} = add.i64 %i{i}, %t{i}\n");
        s += &format!("    %c{} = call.i64 @mix(%u{i}, %f{i})\n", i + 1);
        s += &format!("    %acc{} = add.i64 %acc{i}, %c{}\n", i + 1, i + 1);
        s += &format!(
            "    %acc{}b = xor.i64 %acc{}, %i{}\n",
            i + 1,
            i + 1,
            (i * 7) % n
        );
        s += &format!("    %acc{0}c = add.i64 %acc{0}b, 0\n", i + 1);
    }
    // Rename: the last accumulator is acc{n}c; recompute chain with c-suffixed names.
    s = s.replace("%acc0 = add.i64 %c0, 0", "%acc0c = add.i64 %c0, 0");
    for i in 0..n {
        s = s.replace(
            &format!("%acc{} = add.i64 %acc{i}, %c{}", i + 1, i + 1),
            &format!("%acc{} = add.i64 %acc{i}c, %c{}", i + 1, i + 1),
        );
    }
    s += &format!("    ret %acc{n}c\n}}\n");
    s
}

fn pressure_ref(n: usize, x: i64, y: f64) -> i64 {
    let mix = |a: i64, b: f64| a ^ (b as i64);
    let is: Vec<i64> = (0..n).map(|i| x.wrapping_mul(i as i64 + 3)).collect();
    let fs: Vec<f64> = (0..n).map(|i| y * (i as f64 + 1.5)).collect();
    let mut acc = mix(is[0], fs[0]);
    for i in 0..n {
        let u = is[i].wrapping_add(fs[i] as i64);
        acc = acc.wrapping_add(mix(u, fs[i]));
        acc ^= is[(i * 7) % n];
    }
    acc
}

#[test]
fn register_pressure_spills_and_values_across_calls() {
    for backend in backends() {
        for n in [4usize, 20, 40] {
            let cm = compile_with(&pressure_module(n), backend);
            let l = load(&cm, &[]);
            let f = func!(l, "pressure", fn(i64, f64) -> i64);
            for (x, y) in [(1i64, 0.25f64), (-7, 3.0), (123456789, -2.5)] {
                assert_eq!(f(x, y), pressure_ref(n, x, y), "n={n} x={x} y={y}");
            }
        }
    }
}

#[test]
fn callee_saved_registers_are_saved_exactly_when_used() {
    let cm = compile(&pressure_module(20));
    let insts = decode(&cm, "pressure");
    let text = listing(&insts);
    let callee = [
        Register::RBX,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];
    let pushed: Vec<Register> = insts
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Push)
        .map(|i| i.op0_register())
        .filter(|r| callee.contains(r))
        .collect();
    let used: std::collections::BTreeSet<Register> = insts
        .iter()
        .filter(|i| !matches!(i.mnemonic(), Mnemonic::Push | Mnemonic::Pop))
        .flat_map(|i| (0..i.op_count()).map(move |k| i.op_register(k).full_register()))
        .chain(
            insts
                .iter()
                .filter(|i| i.memory_base() != Register::None)
                .map(|i| i.memory_base()),
        )
        .filter(|r| callee.contains(r))
        .collect();
    // Values live across 21 calls need callee-saved registers here.
    assert!(!pushed.is_empty(), "{text}");
    let pushed_set: std::collections::BTreeSet<Register> = pushed.iter().copied().collect();
    assert_eq!(pushed_set, used, "{text}");
    // Each saved register is restored (popped) before every return.
    let rets = insts
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Ret)
        .count();
    for r in &pushed {
        let pops = insts
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Pop && i.op0_register() == *r)
            .count();
        assert_eq!(pops, rets, "{text}");
    }
    // The leaf @mix uses none.
    let mix = decode(&cm, "mix");
    assert!(!mix
        .iter()
        .any(|i| i.mnemonic() == Mnemonic::Push && callee.contains(&i.op0_register())));
}

/// Loads `cm` the way the runtime does: sections placed by the memory
/// manager, relocated with `Reloc::apply_to`, finalized (W^X).
fn load_with_memory_manager(
    mm: &mut kiln::memory::MemoryManager,
    cm: &CompiledModule,
    host: &[(&str, usize)],
) -> (
    kiln::memory::FinalizedBatch,
    HashMap<String, usize>,
    [kiln::memory::SectionRef; 3],
) {
    let mut batch = mm.begin_batch();
    let kinds = [SectionKind::Text, SectionKind::Rodata, SectionKind::Data];
    let aligns = [cm.text_align, cm.rodata_align, cm.data_align];
    let refs: Vec<_> = kinds
        .iter()
        .zip(aligns)
        .map(|(&k, a)| {
            // Text gets one stub slot per import after the code, for calls
            // to host functions beyond ±2 GiB (as the registry does).
            let extra = if k == SectionKind::Text {
                cm.imports.len() * kiln::reloc::STUB_SIZE + 16
            } else {
                0
            };
            mm.allocate(
                &mut batch,
                k,
                cm.section_len(k) as usize + extra,
                a as usize,
            )
            .expect("allocate")
        })
        .collect();
    let refs = [refs[0], refs[1], refs[2]];
    let mut addr = HashMap::new();
    for (i, &k) in kinds.iter().enumerate() {
        batch.bytes_mut(refs[i]).expect("bytes")[..cm.section(k).len()]
            .copy_from_slice(cm.section(k));
        addr.insert(k, batch.address(refs[i]).expect("address"));
    }
    let mut syms: HashMap<String, usize> = cm
        .symbols
        .iter()
        .map(|s| (s.name.clone(), addr[&s.section] + s.offset as usize))
        .collect();
    let mut ext: HashMap<String, usize> = host.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    ext.insert(
        isa::TRAP_HANDLER.to_string(),
        trap_handler as *const () as usize,
    );
    for rel in &cm.relocs {
        let s = syms
            .get(&rel.target)
            .or(ext.get(&rel.target))
            .copied()
            .expect("target");
        let i = kinds
            .iter()
            .position(|&k| k == rel.section)
            .expect("section");
        let at = addr[&rel.section] as u64;
        let bytes = batch.bytes_mut(refs[i]).expect("bytes");
        let place = at + u64::from(rel.offset);
        let s =
            if rel.kind.is_call() && !kiln::reloc::reaches(rel.kind, place, s as u64, rel.addend) {
                let slot = cm.text.len().next_multiple_of(16)
                    + cm.imports
                        .iter()
                        .position(|n| *n == rel.target)
                        .expect("import")
                        * kiln::reloc::STUB_SIZE;
                kiln::reloc::write_stub(rel.kind, &mut bytes[slot..], s as u64).expect("stub");
                at + slot as u64
            } else {
                s as u64
            };
        rel.apply_to(bytes, at, s).expect("relocate");
    }
    let fin = mm.finalize(batch).expect("finalize");
    syms.extend(ext);
    (fin, syms, refs)
}

#[test]
fn runs_through_the_memory_manager() {
    let mut mm = kiln::memory::MemoryManager::new(Default::default()).expect("memory manager");
    let cm = compile(&(CALLS.to_string() + &switch_module() + MEMORY));
    let (_fin, syms, _) = load_with_memory_manager(
        &mut mm,
        &cm,
        &[("host_mix", host_mix as *const () as usize)],
    );
    let get = |n: &str| syms[n];
    // SAFETY: the IR functions have these System V signatures.
    let fib: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(get("fib")) };
    let via_host: extern "C" fn(i64) -> f64 = unsafe { std::mem::transmute(get("via_host")) };
    let dense: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(get("dense")) };
    let bump: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(get("bump")) };
    let ic: extern "C" fn() -> i64 = unsafe { std::mem::transmute(get("indirect_counter")) };
    assert_eq!(fib(15), fib_ref(15));
    assert_eq!(via_host(6), host_mix(6, 1.5, -2) + fib_ref(6) as f64);
    assert_eq!((dense(4), dense(8), dense(6)), (11, 10, -1));
    assert_eq!(bump(10), 15);
    assert_eq!(ic(), 15 + 20);
}

const FRAMES: &str = "
func @aligned(%x: i64) -> i64 {
entry:
    %a = alloca 3
    %p = alloca 8, 16
    %big = alloca 100000, 16
    store.i64 %x, %p
    store8 1, %a
    %end = add.i64 %big, 99992
    store.i64 %x, %end
    store.i64 %x, %big
    %v = load.i64 %end
    %w = load.i64 %big
    %s = add.i64 %v, %w
    %m = and.i64 %p, 15
    %mb = and.i64 %big, 15
    %m2 = or.i64 %m, %mb
    %c = call.i64 @aligned_leaf(%s)
    %r = add.i64 %c, %m2
    ret %r
}
local func @aligned_leaf(%x: i64) -> i64 {
entry:
    %p = alloca 16, 16
    store.i64 %x, %p, 8
    %v = load.i64 %p, 8
    %m = and.i64 %p, 15
    %r = add.i64 %v, %m
    ret %r
}
";

#[test]
fn allocas_are_aligned_and_large_frames_are_probed() {
    for backend in backends() {
        let cm = compile_with(FRAMES, backend);
        let l = load(&cm, &[]);
        let f = func!(l, "aligned", fn(i64) -> i64);
        assert_eq!(f(21), 42);
    }
}

#[cfg(feature = "disasm")]
#[test]
fn disassembly_lists_functions_and_relocations() {
    let cm = compile(CALLS);
    let text = kiln::isa::x86_64::disasm::disassemble(&cm);
    assert!(text.contains("fib:\n"), "{text}");
    assert!(text.contains("call"), "{text}");
    assert!(text.contains("X86CallPcRel32 fib-4"), "{text}");
    assert!(text.contains("X86CallPcRel32 host_mix-4"), "{text}");
}

#[test]
fn a_20000_block_chain_with_block_arguments_runs() {
    let mut s = String::from("func @chain(%x: i64) -> i64 {\nentry:\n    jmp b0(%x, 1)\n");
    for i in 0..20000 {
        s += &format!("b{i}(%a{i}: i64, %k{i}: i64):\n    %s{i} = add.i64 %a{i}, %k{i}\n");
        if i + 1 < 20000 {
            s += &format!("    jmp b{}(%s{i}, 2)\n", i + 1);
        } else {
            s += &format!("    ret %s{i}\n");
        }
    }
    s += "}\n";
    for backend in backends() {
        let cm = compile_with(&s, backend);
        let l = load(&cm, &[]);
        let f = func!(l, "chain", fn(i64) -> i64);
        assert_eq!(f(5), 5 + 1 + 2 * 19999);
    }
}
