//! Block arguments, branches, switch and the trap instruction.

use super::build::*;

/// `func @sum(%n: i64) -> i64`: 0 + 1 + ... + (n-1) with a loop whose
/// block arguments swap positions every round.
pub fn sum_loop() -> Fb {
    let mut fb = Fb::new("sum", &[I64], Some(I64));
    let n = fb.param(0);
    let (lp, lps) = fb.block("loop", &[I64, I64, I64]);
    let (body, _) = fb.block("body", &[]);
    let (exit, eps) = fb.block("exit", &[I64]);
    fb.jmp(lp, vec![int(0), int(0), int(0)]);
    fb.at(lp);
    let (i, acc, other) = (lps[0], lps[1], lps[2]);
    let done = fb.bin(Opcode::Sge, I64, i, n);
    fb.br(done, (exit, vec![acc]), (body, vec![]));
    fb.at(body);
    let acc2 = fb.bin(Opcode::Add, I64, acc, i);
    let i2 = fb.bin(Opcode::Add, I64, i, int(1));
    // `other` trails `acc` by one round: passing (acc, other) swapped
    // would be wrong if block arguments were copied one by one.
    let _ = other;
    fb.jmp(lp, vec![i2, acc2, acc]);
    fb.at(exit);
    fb.ret(Some(eps[0]));
    fb
}

#[test]
fn loops_with_block_arguments() {
    assert_eq!(run1(sum_loop(), &[Vi64(101)]).unwrap(), Some(Vi64(5050)));
    assert_eq!(run1(sum_loop(), &[Vi64(-3)]).unwrap(), Some(Vi64(0)));
}

#[test]
fn block_arguments_are_passed_in_parallel() {
    // loop(%a, %b, %n): jmp loop(%b, %a, %n - 1) swaps a and b each round.
    let mut fb = Fb::new("swap", &[I64, I64, I64], Some(I64));
    let (lp, ps) = fb.block("loop", &[I64, I64, I64]);
    let (body, _) = fb.block("body", &[]);
    let (exit, _) = fb.block("exit", &[]);
    let args = vec![fb.param(0), fb.param(1), fb.param(2)];
    fb.jmp(lp, args);
    fb.at(lp);
    let z = fb.bin(Opcode::Eq, I64, ps[2], int(0));
    fb.br(z, (exit, vec![]), (body, vec![]));
    fb.at(body);
    let n1 = fb.bin(Opcode::Sub, I64, ps[2], int(1));
    fb.jmp(lp, vec![ps[1], ps[0], n1]);
    fb.at(exit);
    let r = fb.bin(Opcode::Sub, I64, ps[0], ps[1]);
    fb.ret(Some(r));
    let run = |n| {
        let f = Fb {
            f: fb.f.clone(),
            cur: Block(0),
        };
        run1(f, &[Vi64(10), Vi64(3), Vi64(n)]).unwrap()
    };
    assert_eq!(run(0), Some(Vi64(7)));
    assert_eq!(run(1), Some(Vi64(-7)));
    assert_eq!(run(4), Some(Vi64(7)));
}

fn switch_fn(ty: Type, keys: &[i128]) -> Fb {
    let mut fb = Fb::new("sw", &[ty], Some(I32));
    let mut blocks = Vec::new();
    let (dflt, _) = fb.block("dflt", &[]);
    for i in 0..keys.len() {
        blocks.push(fb.block(&format!("case{i}"), &[]).0);
    }
    let cases: Vec<SwitchCase> = keys
        .iter()
        .zip(&blocks)
        .map(|(&k, &b)| SwitchCase {
            key: Const::int(k),
            block: b,
        })
        .collect();
    let cases = fb.f.make_cases(&cases);
    let p = fb.param(0);
    fb.ins(
        Opcode::Switch,
        Some(ty),
        InstKind::Switch {
            value: p,
            default: dflt,
            cases,
        },
    );
    fb.at(dflt);
    fb.ret(Some(int(-1)));
    for (i, &b) in blocks.iter().enumerate() {
        fb.at(b);
        fb.ret(Some(int(i as i128 * 10)));
    }
    fb
}

#[test]
fn switch_jumps_to_the_matching_key() {
    let keys = [0, 5, -1, 0x7fff_ffff, 1000];
    let run = |x: i32| run1(switch_fn(I32, &keys), &[Vi32(x)]).unwrap().unwrap();
    assert_eq!(run(0), Vi32(0));
    assert_eq!(run(5), Vi32(10));
    assert_eq!(run(-1), Vi32(20));
    assert_eq!(run(i32::MAX), Vi32(30));
    assert_eq!(run(1000), Vi32(40));
    assert_eq!(run(6), Vi32(-1));
    assert_eq!(run(i32::MIN), Vi32(-1));
    // Keys are wrapped to the switch type: 0xffffffff is -1 for i32.
    let fb = switch_fn(I32, &[0xffff_ffff]);
    assert_eq!(run1(fb, &[Vi32(-1)]).unwrap(), Some(Vi32(0)));
    let fb = switch_fn(I64, &[0xffff_ffff, -1]);
    assert_eq!(run1(fb, &[Vi64(-1)]).unwrap(), Some(Vi32(10)));
    let fb = switch_fn(I64, &[0xffff_ffff, -1]);
    assert_eq!(run1(fb, &[Vi64(0xffff_ffff)]).unwrap(), Some(Vi32(0)));
}

#[test]
fn trap_instruction_traps_unreachable() {
    let mut fb = Fb::new("t", &[I32], Some(I32));
    let (then, _) = fb.block("then", &[]);
    let (els, _) = fb.block("else", &[]);
    let p = fb.param(0);
    fb.br(p, (then, vec![]), (els, vec![]));
    fb.at(then);
    fb.ins(Opcode::Trap, None, InstKind::Trap);
    fb.at(els);
    fb.ret(Some(int(7)));
    let f = fb.f.clone();
    assert_eq!(run1(fb, &[Vi32(0)]).unwrap(), Some(Vi32(7)));
    let fb = Fb { f, cur: Block(0) };
    assert_eq!(
        run1(fb, &[Vi32(2)]).map_err(|e| e.trap_code()),
        Err(Some(TrapCode::Unreachable))
    );
}
