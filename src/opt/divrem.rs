//! A remainder by a literal next to the division of the same operands
//! shares that division: `r = urem x, C` becomes `r = sub x, (mul q, C)`
//! where `q = udiv x, C` (likewise `srem` with `sdiv`). The back ends
//! compute both by the same multiply-high sequence, so the pair costs one
//! sequence and a multiply and a subtract instead of two sequences.
//!
//! Run before the first [`super::gvn`] of a pipeline
//! ([`super::run_passes`]). Only pairs that are safe and pay are
//! rewritten:
//! - the divisor is a literal that makes neither instruction trap: not 0,
//!   and for the signed pair not -1 (`sdiv` of MIN by -1 traps), so
//!   computing the quotient where only the remainder was computed before
//!   adds no trap (SPEC section 5);
//! - unsigned divisors are not powers of two ([`super::fold`] makes those
//!   a shift and a mask, cheaper than any pairing); signed powers of two
//!   are paired (the remainder becomes a shift and a subtract);
//! - one of the two dominates the other (the same block, or dominating
//!   blocks): when the division comes first, the remainder reads its
//!   result; when the remainder comes first, a new division is put right
//!   before it and the later divisions it dominates become `copy`s of it.
//!   A remainder with no such division is left alone (its own sequence is
//!   as cheap as the rewrite).
//!
//! The identity is exact in wrapping arithmetic: `x = q * C + r` holds
//! for truncating division whenever the quotient does not overflow, so
//! `r = x - q * C` modulo 2^width for every `x`.
//!
//! Linear in the size of the function: one sweep finds the divisions,
//! one the remainders; each remainder looks at a bounded number of
//! divisions with its operands (8).

use super::{all_ones, eval};
use crate::analysis::{DomTree, FuncAnalysis};
use crate::ir::{
    Block, Function, Inst, InstData, InstKind, Opcode, Operand, Type, Value, ValueDef,
};
use crate::registry::symbols::FxHashMap;

/// How many divisions with the same operands one remainder looks at (the
/// bound keeps the pass linear in a function of many equal divisions).
const CHAIN: usize = 8;

const NONE: u32 = u32::MAX;

/// What makes a division and a remainder a pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    signed: bool,
    ty: Type,
    x: Value,
    /// The divisor's bits in `ty`.
    c: u64,
}

/// A division: where it is, and the next one with the same key.
#[derive(Clone, Copy)]
struct Div {
    inst: Inst,
    block: Block,
    /// Its index in the block's list before this pass changed the block.
    pos: u32,
    next: u32,
}

/// Buffers of the pass, reused from function to function (kept in
/// [`super::Ctx`]).
#[derive(Default)]
pub struct Scratch {
    /// The first division of each key in [`Scratch::divs`].
    heads: FxHashMap<Key, u32>,
    divs: Vec<Div>,
    /// The current block's rewrites: the remainder's index in the block,
    /// and the instructions to put before it.
    edits: Vec<(usize, [Option<Inst>; 2])>,
    /// The current block's new instruction list.
    list: Vec<Inst>,
    /// The key of each of [`Scratch::divs`].
    keys: Vec<Key>,
    /// The remainders: block and index in it, in reverse postorder.
    rems: Vec<(Block, u32)>,
}

/// Whether `d` is a division (`Some((false, key))`) or remainder
/// (`Some((true, key))`) this pass pairs.
fn pairing(d: &InstData) -> Option<(bool, Key)> {
    use Opcode::*;
    let (is_rem, signed) = match d.opcode {
        Udiv => (false, false),
        Urem => (true, false),
        Sdiv => (false, true),
        Srem => (true, true),
        _ => return None,
    };
    let ty = d.ty?;
    let InstKind::Binary {
        args: [Operand::Value(x), Operand::Const(c)],
    } = d.kind
    else {
        return None;
    };
    let c = c.bits(ty);
    let excluded = if signed {
        c == all_ones(ty) || c == 1
    } else {
        c & c.wrapping_sub(1) == 0
    };
    if c == 0 || excluded || ty.is_float() {
        return None;
    }
    Some((is_rem, Key { signed, ty, x, c }))
}

/// Rewrites the remainders of `f` that have a paired division; `a` holds
/// the analyses of `f` (only its blocks matter: they stay valid). Returns
/// whether anything changed.
pub fn run_with(f: &mut Function, a: &FuncAnalysis, s: &mut Scratch) -> bool {
    s.heads.clear();
    s.divs.clear();
    s.keys.clear();
    s.rems.clear();
    for &b in a.rpo.order() {
        for (pos, &i) in f.blocks[b.index()].insts.iter().enumerate() {
            let d = &f.insts[i.index()];
            if !super::is_division(d.opcode) {
                continue;
            }
            match pairing(d) {
                Some((false, key)) => {
                    s.keys.push(key);
                    s.divs.push(Div {
                        inst: i,
                        block: b,
                        pos: pos as u32,
                        next: NONE,
                    });
                }
                Some((true, _)) => s.rems.push((b, pos as u32)),
                None => {}
            }
        }
    }
    if s.divs.is_empty() || s.rems.is_empty() {
        return false;
    }
    for (k, key) in s.keys.iter().enumerate() {
        s.divs[k].next = s.heads.insert(*key, k as u32).unwrap_or(NONE);
    }
    let dom = &a.dom;
    let mut changed = false;
    // Reverse postorder: a remainder is seen before those it dominates,
    // so the division it introduces serves them. `rems` is in that
    // order, grouped by block.
    let mut next = 0;
    while next < s.rems.len() {
        let b = s.rems[next].0;
        s.edits.clear();
        while next < s.rems.len() && s.rems[next].0 == b {
            let pos = s.rems[next].1 as usize;
            next += 1;
            let r = f.blocks[b.index()].insts[pos];
            let Some((true, key)) = pairing(&f.insts[r.index()]) else {
                continue;
            };
            let Some(&head) = s.heads.get(&key) else {
                continue;
            };
            // Before `r` (in its block or a dominating one): `before`;
            // after it (in its block or one it dominates): `after`.
            let (mut before, mut after) = (None, false);
            for d in chain(s, head) {
                if pairing(&f.insts[d.inst.index()]).is_none() {
                    continue; // Made a copy already.
                }
                let p = pos as u32;
                if (d.block == b && d.pos < p) || dom.strictly_dominates(d.block, b) {
                    before = f.insts[d.inst.index()].result;
                    break;
                }
                after |= (d.block == b && d.pos > p) || dom.strictly_dominates(b, d.block);
            }
            let (q, new_div) = match before {
                Some(q) => (q, None),
                None if after => {
                    let (qi, q) = division(f, key);
                    share(f, s, dom, head, (b, pos as u32), q);
                    add_div(s, key, qi, b, pos as u32);
                    (q, Some(qi))
                }
                None => continue,
            };
            let (mi, m) = times(f, q, key);
            let d = &mut f.insts[r.index()];
            d.opcode = Opcode::Sub;
            d.kind = InstKind::Binary {
                args: [Operand::Value(key.x), Operand::Value(m)],
            };
            s.edits.push((pos, [new_div, Some(mi)]));
            changed = true;
        }
        if !s.edits.is_empty() {
            insert(f, s, b);
        }
    }
    changed
}

/// Records division `i` at `pos` in block `b`, first in its key's chain.
fn add_div(s: &mut Scratch, key: Key, i: Inst, b: Block, pos: u32) {
    let k = s.divs.len() as u32;
    let next = s.heads.insert(key, k).unwrap_or(NONE);
    s.keys.push(key);
    s.divs.push(Div {
        inst: i,
        block: b,
        pos,
        next,
    });
}

/// The first [`CHAIN`] divisions of the chain from `head` (the bound
/// keeps the pass linear).
fn chain(s: &Scratch, head: u32) -> impl Iterator<Item = Div> + '_ {
    std::iter::successors((head != NONE).then(|| s.divs[head as usize]), |d| {
        (d.next != NONE).then(|| s.divs[d.next as usize])
    })
    .take(CHAIN)
}

/// Makes the divisions of the chain from `head` that come after
/// position `pos` of block `b` (there or in blocks `b` dominates) copies
/// of `q`, the new division put at `pos`.
fn share(f: &mut Function, s: &Scratch, dom: &DomTree, head: u32, at: (Block, u32), q: Value) {
    let (b, pos) = at;
    for d in chain(s, head) {
        let later = (d.block == b && d.pos > pos) || dom.strictly_dominates(b, d.block);
        let di = &mut f.insts[d.inst.index()];
        if later && pairing(di).is_some() {
            di.opcode = Opcode::Copy;
            di.kind = InstKind::Unary {
                arg: Operand::Value(q),
            };
        }
    }
}

/// A new division `x / C` of `key` (in no block yet) and its result.
fn division(f: &mut Function, key: Key) -> (Inst, Value) {
    let op = if key.signed {
        Opcode::Sdiv
    } else {
        Opcode::Udiv
    };
    let c = eval::int(key.ty, key.c);
    bin(f, op, key.ty, Operand::Value(key.x), c)
}

/// `q * C`, as a shift when `C` is a power of two: a new instruction (in
/// no block yet) and its result.
fn times(f: &mut Function, q: Value, key: Key) -> (Inst, Value) {
    let c = key.c;
    if c & c.wrapping_sub(1) == 0 {
        let k = eval::int(key.ty, c.trailing_zeros() as u64);
        return bin(f, Opcode::Shl, key.ty, Operand::Value(q), k);
    }
    bin(
        f,
        Opcode::Mul,
        key.ty,
        Operand::Value(q),
        eval::int(key.ty, c),
    )
}

/// A new binary instruction, in no block yet, and its result.
fn bin(f: &mut Function, op: Opcode, ty: Type, a: Operand, b: Operand) -> (Inst, Value) {
    let i = Inst::new(f.insts.len());
    let v = f.new_value(ty, ValueDef::Inst(i), None);
    f.insts.push(InstData {
        opcode: op,
        ty: Some(ty),
        result: Some(v),
        kind: InstKind::Binary { args: [a, b] },
    });
    (i, v)
}

/// Puts the instructions of `s.edits` into block `b`, each group right
/// before its remainder.
fn insert(f: &mut Function, s: &mut Scratch, b: Block) {
    let old = &f.blocks[b.index()].insts;
    s.list.clear();
    s.list.reserve(old.len() + 2 * s.edits.len());
    let mut e = 0;
    for (pos, &i) in old.iter().enumerate() {
        if let Some((p, new)) = s.edits.get(e) {
            if *p == pos {
                s.list.extend(new.iter().flatten());
                e += 1;
            }
        }
        s.list.push(i);
    }
    let insts = &mut f.blocks[b.index()].insts;
    insts.clear();
    insts.extend_from_slice(&s.list);
}
