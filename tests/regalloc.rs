//! Register allocator tests: hand-written toy functions for each feature,
//! a large function, randomized programs, and checks that the checker
//! catches corrupted allocations. Every allocation is validated by the
//! symbolic checker.

use kiln::regalloc::checker::check;
use kiln::regalloc::testing::{caller_saved, toy_env, RandomProgram, ToyBuilder, ToyFunc};
use kiln::regalloc::*;

fn run(f: &ToyFunc, env: &MachineEnv) -> Output {
    let out = allocate(f, env).unwrap_or_else(|e| panic!("allocation failed: {e}"));
    check(f, env, &out).unwrap_or_else(|e| panic!("checker: {e}"));
    out
}

fn moves(out: &Output) -> usize {
    out.edits.len()
}

fn int(n: u8) -> PReg {
    PReg::new(n, RegClass::Int)
}

#[test]
fn straight_line_needs_no_moves() {
    let env = toy_env(4, 2, 4, 2);
    let mut b = ToyBuilder::new();
    let (x, y, z) = (b.int(), b.int(), b.int());
    b.inst(&[Operand::reg_def(x)]);
    b.inst(&[Operand::reg_def(y)]);
    b.inst(&[
        Operand::reg_use(x),
        Operand::reg_use(y),
        Operand::reg_def(z),
    ]);
    b.ret(&[Operand::reg_use(z)]);
    let f = b.finish();
    let out = run(&f, &env);
    assert_eq!(moves(&out), 0);
    assert_eq!(out.num_spillslots, 0);
    // x and y are live together: different registers.
    let ax = out.inst_allocs(MInst(0))[0];
    let ay = out.inst_allocs(MInst(1))[0];
    assert_ne!(ax, ay);
    assert!(out.callee_saved_used.is_empty());
}

#[test]
fn forty_values_with_four_registers() {
    let env = toy_env(4, 0, 2, 0);
    let mut b = ToyBuilder::new();
    let vs: Vec<VReg> = (0..40).map(|_| b.int()).collect();
    for &v in &vs {
        b.inst(&[Operand::reg_def(v)]);
    }
    // Use them all, in reverse, each needing a register, then pairwise.
    for &v in vs.iter().rev() {
        b.inst(&[Operand::reg_use(v)]);
    }
    let mut acc = vs[0];
    for &v in &vs[1..] {
        let n = b.int();
        b.inst(&[
            Operand::reg_use(acc),
            Operand::reg_use(v),
            Operand::reg_def(n),
        ]);
        acc = n;
    }
    b.ret(&[Operand::reg_use(acc)]);
    let f = b.finish();
    let out = run(&f, &env);
    assert!(
        out.num_spillslots >= 36,
        "spill slots: {}",
        out.num_spillslots
    );
    assert!(out
        .edits
        .iter()
        .all(|(_, Edit::Move { from, to, .. })| !(from.is_stack() && to.is_stack())));
}

#[test]
fn values_live_across_calls_get_callee_saved_or_spill() {
    for callee in [2usize, 0] {
        let env = toy_env(4, callee, 2, 0);
        let mut b = ToyBuilder::new();
        let (x, y, r) = (b.int(), b.int(), b.int());
        b.inst(&[Operand::reg_def(x)]);
        b.inst(&[Operand::reg_def(y)]);
        b.call(
            &[Operand::fixed_use(y, int(0)), Operand::fixed_def(r, int(0))],
            caller_saved(&env),
        );
        let s = b.int();
        b.inst(&[
            Operand::reg_use(x),
            Operand::reg_use(r),
            Operand::reg_def(s),
        ]);
        b.ret(&[Operand::fixed_use(s, int(0))]);
        let f = b.finish();
        let out = run(&f, &env);
        if callee > 0 {
            // x lives across the call: it sits in a callee-saved register.
            assert_eq!(out.num_spillslots, 0);
            assert_eq!(out.callee_saved_used.len(), 1);
            let xr = out.inst_allocs(MInst(0))[0].as_reg().unwrap();
            assert!(xr.hw() >= 4, "x in {xr}");
        } else {
            assert!(out.num_spillslots >= 1);
            assert!(out.callee_saved_used.is_empty());
        }
    }
}

#[test]
fn fixed_registers_like_div_and_shift() {
    let env = toy_env(6, 0, 2, 0);
    let (rax, rcx, rdx) = (int(0), int(1), int(2));
    let mut b = ToyBuilder::new();
    let (a, d, c) = (b.int(), b.int(), b.int());
    b.inst(&[
        Operand::fixed_def(a, int(3)),
        Operand::fixed_def(d, int(4)),
        Operand::fixed_def(c, int(5)),
    ]);
    let (q, r, hi, sh) = (b.int(), b.int(), b.int(), b.int());
    b.inst(&[Operand::fixed_use(a, rax), Operand::reg_def(hi)]);
    // div: rdx:rax / d -> rax, rdx
    b.inst(&[
        Operand::fixed_use(a, rax),
        Operand::fixed_use(hi, rdx),
        Operand::reg_use(d),
        Operand::fixed_def(q, rax),
        Operand::fixed_def(r, rdx),
    ]);
    // shift q by c (count in rcx), two-address
    b.inst(&[
        Operand::reg_use(q),
        Operand::fixed_use(c, rcx),
        Operand::reuse_def(sh, 0),
    ]);
    let s = b.int();
    b.inst(&[
        Operand::reg_use(sh),
        Operand::reg_use(r),
        Operand::reuse_def(s, 0),
    ]);
    let t = b.int();
    b.inst(&[
        Operand::reg_use(a),
        Operand::reg_use(s),
        Operand::reg_def(t),
    ]);
    b.ret(&[Operand::fixed_use(s, rax)]);
    let f = b.finish();
    let out = run(&f, &env);
    let div = out.inst_allocs(MInst(2));
    assert_eq!(div[0], Allocation::Reg(rax));
    assert_eq!(div[1], Allocation::Reg(rdx));
    assert_ne!(div[2], Allocation::Reg(rax));
    assert_ne!(div[2], Allocation::Reg(rdx));
    let shl = out.inst_allocs(MInst(3));
    assert_eq!(shl[1], Allocation::Reg(rcx));
    assert_eq!(shl[0], shl[2]);
}

#[test]
fn reuse_of_dying_input_needs_no_copy() {
    let env = toy_env(4, 0, 2, 0);
    let mut b = ToyBuilder::new();
    let (x, y, z) = (b.int(), b.int(), b.int());
    b.inst(&[Operand::reg_def(x)]);
    b.inst(&[Operand::reg_def(y)]);
    b.inst(&[
        Operand::reg_use(x),
        Operand::reg_use(y),
        Operand::reuse_def(z, 0),
    ]);
    b.ret(&[Operand::reg_use(z), Operand::reg_use(y)]);
    let f = b.finish();
    let out = run(&f, &env);
    let add = out.inst_allocs(MInst(2));
    assert_eq!(add[0], add[2]);
    assert_eq!(add[0], out.inst_allocs(MInst(0))[0], "z takes x's register");
    assert_eq!(moves(&out), 0);
}

#[test]
fn reuse_of_live_input_copies() {
    let env = toy_env(4, 0, 2, 0);
    let mut b = ToyBuilder::new();
    let (x, y, z) = (b.int(), b.int(), b.int());
    b.inst(&[Operand::reg_def(x)]);
    b.inst(&[Operand::reg_def(y)]);
    b.inst(&[
        Operand::reg_use(x),
        Operand::reg_use(y),
        Operand::reuse_def(z, 0),
    ]);
    b.ret(&[Operand::reg_use(z), Operand::reg_use(x)]);
    let f = b.finish();
    let out = run(&f, &env);
    let add = out.inst_allocs(MInst(2));
    assert_eq!(add[0], add[2]);
    assert_ne!(
        add[2],
        out.inst_allocs(MInst(0))[0],
        "x survives in its own register"
    );
    assert!(moves(&out) >= 1);
}

/// A loop whose back edge permutes its parameters: `perm[k]` is the index
/// of the parameter passed to parameter `k`.
fn permuting_loop(classes: &[RegClass], perm: &[usize], env: &MachineEnv) -> ToyFunc {
    let mut b = ToyBuilder::new();
    let init: Vec<VReg> = classes.iter().map(|&c| b.vreg(c)).collect();
    for &v in &init {
        b.inst(&[Operand::reg_def(v)]);
    }
    let n = b.int();
    b.inst(&[Operand::reg_def(n)]);
    let params: Vec<VReg> = classes.iter().map(|&c| b.vreg(c)).collect();
    let h = b.block(&params);
    let latch = b.block(&[]);
    let exit = b.block(&[]);
    b.jump(h, &init);
    b.switch_to(h);
    for &p in &params {
        b.inst(&[Operand::reg_use(p)]);
    }
    b.branch(&[Operand::reg_use(n)], &[(latch, &[]), (exit, &[])]);
    b.switch_to(latch);
    let back: Vec<VReg> = perm.iter().map(|&k| params[k]).collect();
    b.jump(h, &back);
    b.switch_to(exit);
    let ops: Vec<Operand> = params.iter().map(|&p| Operand::any_use(p)).collect();
    b.ret(&ops);
    let _ = env;
    b.finish()
}

#[test]
fn parallel_move_cycles_between_block_params() {
    use RegClass::{Float as F, Int as I};
    let cases: Vec<(Vec<RegClass>, Vec<usize>)> = vec![
        (vec![I, I], vec![1, 0]),
        (vec![I, I, I], vec![1, 2, 0]),
        (vec![F, F, F], vec![2, 0, 1]),
        (vec![I, F, I, F], vec![2, 3, 0, 1]),
        (vec![I, I, F, F, I], vec![1, 0, 3, 2, 4]),
    ];
    for (classes, perm) in cases {
        for env in [toy_env(6, 0, 6, 0), toy_env(2, 0, 2, 0)] {
            let f = permuting_loop(&classes, &perm, &env);
            let out = run(&f, &env);
            let _ = out;
        }
    }
}

#[test]
fn loop_with_values_live_around_it() {
    let env = toy_env(3, 1, 2, 0);
    let mut b = ToyBuilder::new();
    let outer: Vec<VReg> = (0..6).map(|_| b.int()).collect();
    for &v in &outer {
        b.inst(&[Operand::reg_def(v)]);
    }
    let i0 = b.int();
    b.inst(&[Operand::reg_def(i0)]);
    let i = b.int();
    let h = b.block(&[i]);
    let latch = b.block(&[]);
    let exit = b.block(&[]);
    b.jump(h, &[i0]);
    b.switch_to(h);
    let i1 = b.int();
    b.inst(&[
        Operand::reg_use(i),
        Operand::reg_use(outer[0]),
        Operand::reuse_def(i1, 0),
    ]);
    b.call(&[Operand::fixed_use(i1, int(0))], caller_saved(&env));
    b.branch(&[Operand::reg_use(i1)], &[(latch, &[]), (exit, &[])]);
    b.switch_to(latch);
    b.jump(h, &[i1]);
    b.switch_to(exit);
    let mut acc = i1;
    for &v in &outer {
        let n = b.int();
        b.inst(&[
            Operand::reg_use(acc),
            Operand::any_use(v),
            Operand::reuse_def(n, 0),
        ]);
        acc = n;
    }
    b.ret(&[Operand::fixed_use(acc, int(0))]);
    let f = b.finish();
    let out = run(&f, &env);
    // The spill of the outer values must not be reloaded inside the loop:
    // no edit in the loop body reads a stack slot except for the loop value.
    let body = f.block_insts(MBlock(1));
    let reloads_in_loop = out
        .edits
        .iter()
        .filter(|(p, Edit::Move { from, .. })| {
            p.inst >= body.first && p.inst < body.end && from.is_stack()
        })
        .count();
    assert!(reloads_in_loop <= 2, "reloads in loop: {reloads_in_loop}");
}

#[test]
fn twenty_thousand_instructions() {
    let env = toy_env(8, 4, 8, 4);
    let f = RandomProgram::generate(7, 20_000, &env);
    assert!(f.insts.len() >= 20_000);
    let out = run(&f, &env);
    assert_eq!(out.inst_alloc_offsets.len(), f.insts.len());
}

#[test]
fn random_programs() {
    for seed in 0..300u64 {
        let env = match seed % 3 {
            0 => toy_env(4, 1, 4, 1),
            1 => toy_env(6, 3, 3, 2),
            _ => toy_env(12, 4, 8, 4),
        };
        let f = RandomProgram::generate(seed, 20 + (seed as usize % 150), &env);
        let out = allocate(&f, &env).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check(&f, &env, &out).unwrap_or_else(|e| panic!("seed {seed}: checker: {e}"));
    }
}

/// A function where a value in a register is read after a move-free stretch.
fn simple_for_corruption() -> (ToyFunc, MachineEnv) {
    let env = toy_env(3, 0, 2, 0);
    let mut b = ToyBuilder::new();
    let vs: Vec<VReg> = (0..5).map(|_| b.int()).collect();
    for &v in &vs {
        b.inst(&[Operand::reg_def(v)]);
    }
    for &v in &vs {
        b.inst(&[Operand::reg_use(v)]);
    }
    b.ret(&[]);
    (b.finish(), env)
}

#[test]
fn checker_catches_a_flipped_register() {
    let (f, env) = simple_for_corruption();
    let out = run(&f, &env);
    let mut caught = 0;
    for k in 0..out.allocs.len() {
        let mut bad = out.clone();
        bad.allocs[k] = match bad.allocs[k] {
            Allocation::Reg(r) => Allocation::Reg(PReg::new((r.hw() + 1) % 3, r.class())),
            Allocation::Stack(_) => continue,
        };
        if let Err(e) = check(&f, &env, &bad) {
            assert!(e.vreg.is_some() || e.operand.is_some() || !e.message.is_empty());
            caught += 1;
        }
    }
    // Flipping a use's register is always caught; a def's only if it then
    // clobbers a live value or misleads a later use (which it does here).
    assert_eq!(
        caught,
        out.allocs.len() - out.allocs.iter().filter(|a| a.is_stack()).count()
    );
}

#[test]
fn checker_catches_a_dropped_move() {
    let (f, env) = simple_for_corruption();
    let out = run(&f, &env);
    assert!(!out.edits.is_empty(), "5 values in 3 registers need moves");
    for k in 0..out.edits.len() {
        let mut bad = out.clone();
        let (_, Edit::Move { from, to, .. }) = bad.edits.remove(k);
        // Dropping the save of a value or its reload must be caught
        // (a dropped move into the scratch register shows up too).
        let r = check(&f, &env, &bad);
        assert!(r.is_err(), "dropping {from} -> {to} went unnoticed");
        let e = r.unwrap_err();
        assert!(e.to_string().contains("inst"));
    }
}

#[test]
fn checker_catches_wrong_block_param_and_clobber() {
    let env = toy_env(4, 2, 2, 0);
    let f = permuting_loop(&[RegClass::Int, RegClass::Int], &[1, 0], &env);
    let out = run(&f, &env);
    // Replace the swap's edits by nothing: the parameters would not swap.
    let mut bad = out.clone();
    bad.edits.retain(|(p, _)| p.inst.index() < 4);
    assert!(
        check(&f, &env, &bad).is_err(),
        "missing parameter moves went unnoticed"
    );

    // A value kept in a clobbered register across a call.
    let mut b = ToyBuilder::new();
    let (x, r) = (b.int(), b.int());
    b.inst(&[Operand::reg_def(x)]);
    b.call(&[Operand::fixed_def(r, int(0))], caller_saved(&env));
    b.ret(&[Operand::reg_use(x), Operand::fixed_use(r, int(0))]);
    let f = b.finish();
    let out = run(&f, &env);
    let mut bad = out.clone();
    bad.edits.clear();
    let xr = Allocation::Reg(int(1));
    bad.allocs[0] = xr;
    bad.allocs[bad.inst_alloc_offsets[2] as usize] = xr;
    let e = check(&f, &env, &bad).unwrap_err();
    assert_eq!(e.inst, MInst(2));
    assert_eq!(e.vreg, Some(x));
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let env = toy_env(2, 0, 2, 0);
    // Three register operands, two registers.
    let mut b = ToyBuilder::new();
    let (x, y, z) = (b.int(), b.int(), b.int());
    b.inst(&[Operand::reg_def(x)]);
    b.inst(&[Operand::reg_def(y)]);
    b.inst(&[
        Operand::reg_use(x),
        Operand::reg_use(y),
        Operand::reg_temp(z),
    ]);
    b.ret(&[]);
    assert!(matches!(
        allocate(&b.finish(), &env),
        Err(RegAllocError::TooManyRegOperands { .. })
    ));
    // Use of an undefined vreg.
    let mut b = ToyBuilder::new();
    let x = b.int();
    b.ret(&[Operand::reg_use(x)]);
    assert!(matches!(
        allocate(&b.finish(), &env),
        Err(RegAllocError::InvalidInput { .. })
    ));
    // A block without terminator.
    let mut b = ToyBuilder::new();
    let x = b.int();
    b.inst(&[Operand::reg_def(x)]);
    assert!(allocate(&b.finish(), &env).is_err());
}
