//! The shapes that used to make compiling super-linear (issue 9), at
//! N = 10,000, compiled for the host and run against the interpreter:
//! N block arguments on one edge (one parallel-move cycle of length N,
//! cubic before), N nested loops with each loop's value live through all
//! inner loops (quadratic per-block live sets before), and an N-way
//! `switch` in a loop. Each takes well under a second even in a debug
//! build; the old allocator would need minutes. Not timing tests: they
//! check results.

use kiln::{Engine, Val};
use std::fmt::Write as _;

const N: usize = 10_000;

/// Compiles and runs `@main(a)`, and runs it in the interpreter too.
fn run_both(src: &str, a: i64) -> (Option<Val>, Option<Val>) {
    let engine = Engine::default();
    engine.add_module_text("shape.kir", src).expect("add");
    let compiled = engine.call("main", &[Val::I64(a)]).expect("compiled run");
    let modules = [kiln::ir::parse::parse_module("shape.kir", src).expect("parse")];
    let host = kiln::host::HostFunctions::new();
    let mut interp = kiln::interp::Interpreter::new(&modules, &host).expect("interpreter");
    let want = interp
        .call("main", &[Val::I64(a)])
        .expect("interpreted run");
    (compiled, want)
}

#[test]
fn ten_thousand_block_arguments_on_one_edge() {
    // The back edge passes its parameters rotated by one.
    let mut s = String::from("func @main(%a: i64) -> i64 {\nentry:\n");
    for i in 0..N {
        let _ = writeln!(s, "    %v{i} = mul.i64 %a, {}", i + 1);
    }
    s.push_str("    jmp l(0");
    (0..N).for_each(|i| {
        let _ = write!(s, ", %v{i}");
    });
    s.push_str(")\nl(%k: i64");
    (0..N).for_each(|i| {
        let _ = write!(s, ", %p{i}: i64");
    });
    s.push_str("):\n    %k1 = add.i64 %k, 1\n    %c = slt.i64 %k1, 4\n    br %c, l(%k1");
    (0..N).for_each(|i| {
        let _ = write!(s, ", %p{}", (i + 1) % N);
    });
    s.push_str("), out\nout:\n    %r0 = xor.i64 %p0, 0\n");
    for i in 1..N {
        let _ = writeln!(s, "    %r{i} = sub.i64 %p{i}, %r{}", i - 1);
    }
    let _ = writeln!(s, "    ret %r{}\n}}", N - 1);
    // Expected without the interpreter (whose decoder is itself slow on
    // this shape): three rotations, then the alternating chain.
    let a = 3i64;
    let v: Vec<i64> = (0..N).map(|i| a.wrapping_mul(i as i64 + 1)).collect();
    let p: Vec<i64> = (0..N).map(|i| v[(i + 3) % N]).collect();
    let mut r = p[0];
    for x in &p[1..] {
        r = x.wrapping_sub(r);
    }
    let engine = Engine::default();
    engine.add_module_text("args.kir", &s).expect("add");
    let got = engine.call("main", &[Val::I64(a)]).expect("run");
    assert_eq!(got, Some(Val::I64(r)));
}

#[test]
fn ten_thousand_nested_loops() {
    // Loop i defines %x{i} in its header and reads it in its latch, after
    // all the loops inside; every loop runs once.
    let mut s = String::from("func @main(%a: i64) -> i64 {\nentry:\n    jmp h0(0)\n");
    for i in 0..N {
        let prev = if i == 0 {
            "%a".into()
        } else {
            format!("%x{}", i - 1)
        };
        let _ = writeln!(s, "h{i}(%c{i}: i64):\n    %x{i} = add.i64 %c{i}, {prev}");
        if i + 1 < N {
            let _ = writeln!(s, "    jmp h{}(0)", i + 1);
        } else {
            let _ = writeln!(s, "    jmp t{i}(%x{i})");
        }
    }
    for i in (0..N).rev() {
        let next = if i == 0 {
            "done(%y0)".into()
        } else {
            format!("t{}(%y{i})", i - 1)
        };
        let _ = writeln!(
            s,
            "t{i}(%s{i}: i64):\n    %y{i} = mul.i64 %s{i}, %x{i}\n    %d{i} = add.i64 %c{i}, 1\n    %k{i} = slt.i64 %d{i}, 1\n    br %k{i}, h{i}(%d{i}), {next}"
        );
    }
    s.push_str("done(%res: i64):\n    ret %res\n}\n");
    let (got, want) = run_both(&s, 7);
    assert_eq!(got, want);
}

#[test]
fn ten_thousand_way_switch_in_a_loop() {
    let mut s = String::from(
        "func @main(%a: i64) -> i64 {\nentry:\n    jmp head(0, %a)\nhead(%k: i64, %acc: i64):\n    %sel = and.i64 %acc, 16383\n    switch.i64 %sel, dflt",
    );
    (0..N).for_each(|i| {
        let _ = write!(s, ", {}: c{i}", i * 3 % N + 2);
    });
    s.push('\n');
    for i in 0..N {
        let _ = writeln!(
            s,
            "c{i}:\n    %v{i} = mul.i64 %acc, {}\n    jmp latch(%v{i})",
            i + 5
        );
    }
    s.push_str(
        "dflt:\n    %vd = add.i64 %acc, 1\n    jmp latch(%vd)\nlatch(%nv: i64):\n    %k2 = add.i64 %k, 1\n    %more = slt.i64 %k2, 5\n    br %more, head(%k2, %nv), exit\nexit:\n    ret %nv\n}\n",
    );
    for a in [0, 1, 2, 5_000, 12_345] {
        let (got, want) = run_both(&s, a);
        assert_eq!(got, want, "a = {a}");
    }
}

/// A sparse `switch` of N cases (compares and jumps, no table) and a call
/// of 60 arguments (most on the stack): the fast generator writes their
/// code without a capacity check per instruction, making room per case and
/// per argument (in a debug build every write checks that it stays within
/// one step's bytes).
#[test]
fn a_sparse_switch_of_many_cases_and_a_call_of_many_arguments() {
    const ARGS: usize = 60;
    let mut s = String::from("func @g(");
    for k in 0..ARGS {
        let _ = write!(s, "{}%p{k}: i64", if k > 0 { ", " } else { "" });
    }
    s.push_str(") -> i64 {\nentry:\n    %s0 = mul.i64 %p0, 3\n");
    for k in 1..ARGS {
        let _ = writeln!(s, "    %s{k} = add.i64 %s{}, %p{k}", k - 1);
    }
    let _ = writeln!(s, "    ret %s{}\n}}", ARGS - 1);
    s.push_str("func @main(%a: i64) -> i64 {\nentry:\n    switch.i64 %a, dflt");
    (0..N).for_each(|i| {
        let _ = write!(s, ", {}: c{i}", i as u64 * 1_000_003 + 7);
    });
    s.push('\n');
    for i in 0..N {
        let _ = writeln!(s, "c{i}:\n    %v{i} = add.i64 %a, {i}\n    jmp done(%v{i})");
    }
    s.push_str("dflt:\n    %r = call.i64 @g(%a");
    for k in 1..ARGS {
        let _ = write!(s, ", {k}");
    }
    s.push_str(")\n    jmp done(%r)\ndone(%x: i64):\n    ret %x\n}\n");
    for a in [0, 7, 1_000_010, 5_000 * 1_000_003 + 7, 12_345] {
        let (got, want) = run_both(&s, a);
        assert_eq!(got, want, "a = {a}");
    }
}
