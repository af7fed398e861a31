//! Replays every committed fuzz input (seed corpora in `fuzz/corpus/<target>/`
//! and crash regressions in `fuzz/regressions/<target>/`) through the same
//! checks the fuzz targets run, so `cargo test` guards them without nightly
//! or cargo-fuzz. Also runs the `compile` check over a batch of
//! pseudo-random inputs (xorshift, fixed seed).

use kiln::fuzzing::exec::check_program;
use kiln::fuzzing::gen::Program;
use kiln::fuzzing::{check_compile, check_parse, check_roundtrip, Finding};
use kiln::Val;
use std::path::{Path, PathBuf};

type Check = fn(&[u8]) -> Result<(), Finding>;

const TARGETS: &[(&str, Check)] = &[
    ("parse", check_parse),
    ("roundtrip", check_roundtrip),
    ("compile", check_compile),
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    v.sort();
    v
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut n = 0;
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        for f in inputs(&root.join(target)) {
            let data = std::fs::read(&f).expect("read input");
            n += 1;
            if let Err(finding) = check(&data) {
                failures.push(format!("{target} {}: {finding}", f.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    n
}

#[test]
fn corpus_replays() {
    let n = replay("corpus");
    assert!(n > 0, "no committed corpus seeds found");
}

#[test]
fn regressions_replay() {
    replay("regressions");
}

#[test]
fn every_ir_file_is_a_parse_and_roundtrip_seed() {
    // The .kir test files are valid parse/roundtrip inputs too.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ir");
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for p in inputs(&d) {
            let data = std::fs::read(&p).expect("read");
            check_parse(&data).unwrap_or_else(|f| panic!("{}: {f}", p.display()));
            check_roundtrip(&data).unwrap_or_else(|f| panic!("{}: {f}", p.display()));
        }
        if let Ok(es) = std::fs::read_dir(&d) {
            stack.extend(
                es.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir()),
            );
        }
    }
}

#[test]
fn random_programs_agree() {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        let len = 64 + (i * 97) % 1500;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        if let Err(f) = check_compile(&data) {
            panic!("random input {i}: {f}");
        }
    }
}

/// Found by `compile` (regressions/compile/fext-literal-operand): the x86-64
/// backends materialized a literal operand of a conversion in the result
/// type, so `fext.f64 3.15e-43` converted the low half of an `f64`.
#[test]
fn conversion_literal_operands_take_the_opcode_operand_type() {
    let text = "func @main() -> i64 {
b0:
    %a = fext.f64 3.15e-43
    %b = bitcast.i64 %a
    %c = ftrunc.f32 1.0000001
    %d = bitcast.i32 %c
    %e = zext.i64 %d
    %f = bitcast.i64 -2.5
    %g = bitcast.i32 0.75
    %h = sext.i64 %g
    %i = sext.i64 -7
    %j = zext.i64 -1
    %k = trunc.i32 0x123456789
    %l = sext.i64 %k
    %m = bitcast.f64 4607182418800017408
    %n = fext.f64 -0.0
    %o = fadd.f64 %m, %n
    %p = bitcast.i64 %o
    %s1 = xor.i64 %b, %e
    %s2 = mul.i64 %s1, 31
    %s3 = xor.i64 %s2, %f
    %s4 = mul.i64 %s3, 31
    %s5 = xor.i64 %s4, %h
    %s6 = mul.i64 %s5, 31
    %s7 = xor.i64 %s6, %i
    %s8 = mul.i64 %s7, 31
    %s9 = xor.i64 %s8, %j
    %s10 = mul.i64 %s9, 31
    %s11 = xor.i64 %s10, %l
    %s12 = mul.i64 %s11, 31
    %s13 = xor.i64 %s12, %p
    ret %s13
}
";
    let p = Program {
        text: text.to_string(),
        args: Vec::new(),
    };
    check_program(&p).unwrap_or_else(|f| panic!("{f}"));
    // And the expected value itself, computed here from the SPEC.
    let it_modules = vec![kiln::ir::parse::parse_module("t.kir", text).expect("parse")];
    let mut it = kiln::interp::Interpreter::new(&it_modules, &kiln::host::HostFunctions::new())
        .expect("link");
    let got = it.call("main", &[]).expect("run");
    let fold = |s: i64, w: i64| s.wrapping_mul(31) ^ w;
    let b = f64::from(3.15e-43f32).to_bits() as i64;
    let e = i64::from(1.000_000_1f32.to_bits());
    let f = (-2.5f64).to_bits() as i64;
    let h = i64::from(0.75f32.to_bits() as i32);
    let mut s = b ^ e;
    for w in [f, h, -7, 0xffff_ffff, 0x2345_6789, 1.0f64.to_bits() as i64] {
        s = fold(s, w);
    }
    assert_eq!(got, Some(Val::I64(s)));
}

/// Found by `compile` (regressions/compile/reuse-input-after-call): a
/// reuse-constrained input dying right after a call had its read moved to
/// the call's Late point, where every float register is clobbered, and the
/// allocator gave up ("more Float register operands than registers").
#[test]
fn reuse_input_dying_right_after_a_call() {
    let text = "func @main(%x: f64, %n: i64) -> i64 {
b0:
    %z = copy.f64 0.0
    call @f()
    %dead = copy.f64 %x
    %y = fadd.f64 %z, 1.0
    %i = trunc.i32 %n
    call @f()
    %dead2 = copy.i32 %i
    %r = ftosi.i64 %y
    ret %r
}
local func @f() {
b0:
    ret
}
";
    let p = Program {
        text: text.to_string(),
        args: vec![Val::F64(2.5), Val::I64(3)],
    };
    check_program(&p).unwrap_or_else(|f| panic!("{f}"));
}

/// The generator's programs do reach every outcome the `compile` check
/// compares: normal returns and each kind of trap.
#[test]
fn generated_programs_return_and_trap() {
    use kiln::TrapCode;
    let mut seen = std::collections::HashSet::new();
    let mut s = 0x0dd_ba11_cafe_f00du64;
    for _ in 0..400 {
        let data: Vec<u8> = (0..400)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        let p = kiln::fuzzing::gen::generate(&data);
        let modules = [kiln::ir::parse::parse_module("g.kir", &p.text).expect("parse")];
        let mut it = kiln::interp::Interpreter::new(&modules, &kiln::host::HostFunctions::new())
            .expect("link");
        it.set_fuel(Some(kiln::fuzzing::exec::FUEL));
        seen.insert(match it.call("main", &p.args).map_err(|e| e.trap_code()) {
            Ok(_) => "return",
            Err(Some(TrapCode::Unreachable)) => "unreachable",
            Err(Some(TrapCode::DivisionByZero)) => "division by zero",
            Err(Some(TrapCode::IntegerOverflow)) => "integer overflow",
            Err(_) => "other",
        });
    }
    for want in [
        "return",
        "unreachable",
        "division by zero",
        "integer overflow",
    ] {
        assert!(
            seen.contains(want),
            "no generated program ended with {want}: {seen:?}"
        );
    }
}
