//! Address reassociation: a literal buried in the computation of a load's
//! or store's address moves into the access's offset, so that accesses
//! that differ by a literal index step share one address computation.
//!
//! `p = add s, (shl (add r, (add x, -1)), 3); load p` (the element left
//! of `x` in row `r`) becomes `t1 = add r, x; t2 = shl t1, 3;
//! t3 = add s, t2; load t3, -8`, and [`super::gvn`] finds `t1`, `t2`
//! and `t3` equal to the address of the element at `x` itself.
//!
//! Run before the first [`super::gvn`] of a pipeline
//! ([`super::run_passes`]). The address is taken apart through `add` of
//! two values, and `shl` and `mul` by a literal, down to an `add v, C`;
//! the literal is pushed out (`(v + C) << k` is `(v << k) + (C << k)`,
//! `(v + C) * K` is `v * K + C * K`, exact in wrapping arithmetic, as
//! address arithmetic is) and the chain rebuilt on `v` right before the
//! access. Only when every rebuilt instruction had a single use (the next
//! one of the chain, the access at the top), so that the old chain dies
//! and no instruction is added (the innermost `add v, C` keeps its other
//! uses, if any); at most [`DEPTH`] levels; only when the new offset fits
//! 32 bits.
//!
//! Linear in the size of the function (one sweep counts uses, one looks
//! at every access, each chain bounded).

use super::eval;
use crate::ir::{Function, Inst, InstData, InstKind, Opcode, Operand, Type, ValueDef};

/// The longest chain taken apart (levels of `add`/`shl`/`mul` above the
/// innermost `add v, C`).
pub const DEPTH: usize = 4;

/// Buffers of the pass, reused from function to function (kept in
/// [`super::Ctx`]).
#[derive(Default)]
pub struct Scratch {
    uses: Vec<u32>,
    /// The accesses to look at: block and index in it, in layout order.
    cands: Vec<(u32, u32)>,
    /// The new instructions of the current block, each with the index of
    /// the access it goes before.
    edits: Vec<(usize, Inst)>,
    list: Vec<Inst>,
}

/// The definition of `op` when it is a binary `i64` instruction's result.
fn def(f: &Function, op: Operand) -> Option<(Opcode, [Operand; 2])> {
    let Operand::Value(v) = op else { return None };
    let ValueDef::Inst(i) = f.values.get(v.index())?.def else {
        return None;
    };
    let d = f.insts.get(i.index())?;
    match (d.ty, d.kind) {
        (Some(Type::I64), InstKind::Binary { args }) => Some((d.opcode, args)),
        _ => None,
    }
}

/// Whether `op` is the address shape this pass takes apart at its top:
/// an `add` of two values (an `add v, C` is [`super::fold`]'s already).
fn candidate(f: &Function, op: Operand) -> bool {
    matches!(
        def(f, op),
        Some((Opcode::Add, [Operand::Value(_), Operand::Value(_)]))
    )
}

/// Rewrites the loads and stores of `f` whose address hides a literal.
/// Returns whether anything changed.
pub fn run_with(f: &mut Function, s: &mut Scratch) -> bool {
    // The accesses whose address has the shape, use counts aside (most
    // functions have none: then no use counts).
    s.cands.clear();
    for (b, bd) in f.blocks.iter().enumerate() {
        for (pos, &i) in bd.insts.iter().enumerate() {
            let ptr = match &f.insts[i.index()].kind {
                InstKind::Load { ptr, .. } => *ptr,
                InstKind::Store { args, .. } => args[1],
                _ => continue,
            };
            if candidate(f, ptr) && split(f, None, ptr, DEPTH).is_some() {
                s.cands.push((b as u32, pos as u32));
            }
        }
    }
    if s.cands.is_empty() {
        return false;
    }
    s.uses.clear();
    s.uses.resize(f.values.len(), 0);
    for bd in &f.blocks {
        for &i in &bd.insts {
            f.for_each_operand(i, |op| {
                if let Operand::Value(v) = op {
                    s.uses[v.index()] = s.uses[v.index()].saturating_add(1);
                }
            });
        }
    }
    let mut changed = false;
    let mut next = 0;
    while next < s.cands.len() {
        let b = s.cands[next].0 as usize;
        s.edits.clear();
        while next < s.cands.len() && s.cands[next].0 as usize == b {
            let pos = s.cands[next].1 as usize;
            next += 1;
            let i = f.blocks[b].insts[pos];
            let (ptr, offset) = match &f.insts[i.index()].kind {
                InstKind::Load { ptr, offset } => (*ptr, *offset),
                InstKind::Store { args, offset } => (args[1], *offset),
                _ => continue,
            };
            let Some(c) = split(f, Some(&s.uses), ptr, DEPTH) else {
                continue;
            };
            let Some(off) = offset
                .checked_add(c as i64)
                .filter(|o| i32::try_from(*o).is_ok())
            else {
                continue;
            };
            let Some(base) = rebuild(f, &s.uses, ptr, DEPTH, &mut s.edits, pos) else {
                continue;
            };
            match &mut f.insts[i.index()].kind {
                InstKind::Load { ptr, offset } => {
                    *ptr = base;
                    *offset = off;
                }
                InstKind::Store { args, offset } => {
                    args[1] = base;
                    *offset = off;
                }
                _ => {}
            }
            changed = true;
        }
        if !s.edits.is_empty() {
            let old = &f.blocks[b].insts;
            s.list.clear();
            s.list.reserve(old.len() + s.edits.len());
            let mut e = 0;
            for (pos, &i) in old.iter().enumerate() {
                while let Some(&(p, n)) = s.edits.get(e) {
                    if p != pos {
                        break;
                    }
                    s.list.push(n);
                    e += 1;
                }
                s.list.push(i);
            }
            let insts = &mut f.blocks[b].insts;
            insts.clear();
            insts.extend_from_slice(&s.list);
        }
    }
    changed
}

/// Whether `op`'s value has exactly one use (values made by this pass
/// are not counted: never); without counts, whether it is a value.
fn single(uses: Option<&[u32]>, op: Operand) -> bool {
    let Some(v) = op.as_value() else { return false };
    uses.is_none_or(|u| u.get(v.index()).is_some_and(|&n| n == 1))
}

/// `op` as `base + C`: the literal `C` found through a chain whose
/// levels above the innermost `add base, C` have single uses (any uses
/// when `uses` is `None`: the shape alone).
fn split(f: &Function, uses: Option<&[u32]>, op: Operand, depth: usize) -> Option<u64> {
    let (opcode, [a, b]) = def(f, op)?;
    let c = eval::bits(b, Type::I64);
    if opcode == Opcode::Add && a.as_value().is_some() && c.is_some() {
        return c;
    }
    if depth == 0 || !single(uses, op) {
        return None;
    }
    match (opcode, c) {
        (Opcode::Add, None) => {
            split(f, uses, b, depth - 1).or_else(|| split(f, uses, a, depth - 1))
        }
        (Opcode::Shl, Some(k)) if k < 64 => split(f, uses, a, depth - 1).map(|c| c << k),
        (Opcode::Mul, Some(k)) => split(f, uses, a, depth - 1).map(|c| c.wrapping_mul(k)),
        _ => None,
    }
}

/// The `base` of [`split`]`(op)`, the chain rebuilt on the innermost
/// `add`'s value: new instructions (in no block yet, operands before
/// users) appended to `made`, each with `pos`. Makes the same choices as
/// [`split`], so it succeeds where [`split`] did.
fn rebuild(
    f: &mut Function,
    uses: &[u32],
    op: Operand,
    depth: usize,
    made: &mut Vec<(usize, Inst)>,
    pos: usize,
) -> Option<Operand> {
    let (opcode, [a, b]) = def(f, op)?;
    let c = eval::bits(b, Type::I64);
    if opcode == Opcode::Add && a.as_value().is_some() && c.is_some() {
        return Some(a);
    }
    if depth == 0 || !single(Some(uses), op) {
        return None;
    }
    let args = match (opcode, c) {
        (Opcode::Add, None) => {
            if split(f, Some(uses), b, depth - 1).is_some() {
                [a, rebuild(f, uses, b, depth - 1, made, pos)?]
            } else {
                [rebuild(f, uses, a, depth - 1, made, pos)?, b]
            }
        }
        (Opcode::Shl, Some(k)) if k < 64 => [rebuild(f, uses, a, depth - 1, made, pos)?, b],
        (Opcode::Mul, Some(_)) => [rebuild(f, uses, a, depth - 1, made, pos)?, b],
        _ => return None,
    };
    let i = Inst::new(f.insts.len());
    let v = f.new_value(Type::I64, ValueDef::Inst(i), None);
    f.insts.push(InstData {
        opcode,
        ty: Some(Type::I64),
        result: Some(v),
        kind: InstKind::Binary { args },
    });
    made.push((pos, i));
    Some(Operand::Value(v))
}
