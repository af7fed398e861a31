//! Lowering decisions for one AArch64 function: block order, where each
//! value lives, which instructions fuse, and the frame layout.
//!
//! The baseline compiler gives every SSA value its own 8-byte frame slot;
//! each instruction loads its operands into fixed scratch registers,
//! computes, and stores its result, so no value is live in a register across
//! instructions, no callee-saved register is used and calls need no
//! caller-saved spilling. The plan also records:
//! - **block order**: reverse postorder from the entry, which keeps loop
//!   bodies contiguous; unreachable blocks are not emitted;
//! - **compare + branch fusion**: a compare whose only use is the `br` of its
//!   own block becomes `cmp`/`fcmp` + `b.cond` at the branch;
//! - **address folding**: `add.i64 x, C` feeding loads/stores folds into the
//!   access's offset; the `add` itself is skipped when all its uses fold.
//!
//! Frame (addresses grow upward from `sp`): the outgoing stack-argument
//! area at `sp`, then the value slots, the block-argument copy area and the
//! allocas, then the frame record (`x29`, `x30`) at `sp + frame_size`, which
//! is where `x29` points. Invariants: every offset is a non-negative `sp`
//! offset; value slots are 8-byte aligned; alloca offsets are aligned to
//! their alignment (≤ 16, `sp` being 16-byte aligned); `frame_size` is a
//! multiple of 16 and at most 2^30.

use super::abi::arg_locations;
use crate::error::{Error, Result};
use crate::ir::{Block, Callee, Function, InstKind, Module, Opcode, Operand, Type, Value};

/// The lowering plan of one function.
pub struct Plan {
    /// Emission order of the reachable blocks; the entry first.
    pub order: Vec<Block>,
    /// Per value: its slot's offset from `sp`.
    pub slot: Vec<i32>,
    /// Per instruction: a compare fused into its block's `br`.
    pub fused: Vec<bool>,
    /// Per instruction: nothing to emit (all uses of its result folded).
    pub skip: Vec<bool>,
    /// Per value: `Some((x, c))` when it is `add.i64 x, c` and foldable into
    /// an address.
    pub addr_fold: Vec<Option<(Value, i64)>>,
    /// Per instruction: the `sp` offset of an `alloca`'s memory.
    pub alloca: Vec<i32>,
    /// `sp` offset of the scratch area for block-argument copies.
    pub copy_area: i32,
    /// Bytes between `sp` and the frame record, a multiple of 16.
    pub frame_size: u32,
    /// Bytes of the outgoing stack-argument area (at `sp`).
    pub outgoing: u32,
}

fn err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: {what}", func.name))
}

/// Blocks reachable from the entry, in reverse postorder.
pub fn reverse_postorder(func: &Function) -> Vec<Block> {
    let n = func.blocks.len();
    if n == 0 {
        return Vec::new();
    }
    let mut seen = vec![false; n];
    let mut post = Vec::with_capacity(n);
    // Iterative DFS: (block, next successor index).
    let mut stack: Vec<(Block, usize)> = vec![(Block(0), 0)];
    seen[0] = true;
    while let Some(&mut (b, ref mut i)) = stack.last_mut() {
        let succs = func
            .terminator(b)
            .map(|t| func.inst(t).successors())
            .unwrap_or_default();
        if let Some(&s) = succs.get(*i) {
            *i += 1;
            if s.index() < n && !seen[s.index()] {
                seen[s.index()] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(b);
            stack.pop();
        }
    }
    post.reverse();
    post
}

/// Whether `op` is a literal whose bits, as type `ty`, fit a sign-extended
/// 32-bit value (the range of folded address offsets).
pub fn imm32(op: Operand, ty: Type) -> Option<i32> {
    match op {
        Operand::Const(c) => {
            let bits = c.bits(ty);
            match ty {
                Type::I32 => Some(bits as u32 as i32),
                _ => i32::try_from(bits as i64).ok(),
            }
        }
        Operand::Value(_) => None,
    }
}

fn is_compare(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Feq | Fne | Flt | Fle | Fgt | Fge
    )
}

/// Builds the plan for `func`, checking the structural facts emission
/// relies on (indices in range, terminators present).
pub fn plan(module: &Module, func: &Function) -> Result<Plan> {
    let nv = func.values.len();
    let ni = func.insts.len();
    for b in &func.blocks {
        let last = b.insts.last().ok_or_else(|| err(func, "empty block"))?;
        for &i in &b.insts {
            let inst = func
                .insts
                .get(i.index())
                .ok_or_else(|| err(func, "bad instruction"))?;
            for op in inst.operands() {
                if let Operand::Value(v) = op {
                    if v.index() >= nv {
                        return Err(err(func, "bad value"));
                    }
                }
            }
            for s in inst.successors() {
                if s.index() >= func.blocks.len() {
                    return Err(err(func, "bad block"));
                }
            }
            if let InstKind::Addr { sym }
            | InstKind::Call {
                callee: Callee::Direct(sym),
                ..
            } = inst.kind
            {
                if sym.index() >= module.symbols.len() {
                    return Err(err(func, "bad symbol"));
                }
            }
        }
        if !func.insts[last.index()].opcode.is_terminator() {
            return Err(err(func, "block without terminator"));
        }
    }

    let order = reverse_postorder(func);

    // Use counts, and which block each use sits in.
    let mut uses = vec![0u32; nv];
    for b in &func.blocks {
        for &i in &b.insts {
            for op in func.insts[i.index()].operands() {
                if let Operand::Value(v) = op {
                    uses[v.index()] += 1;
                }
            }
        }
    }

    let mut fused = vec![false; ni];
    let mut skip = vec![false; ni];
    let mut addr_fold = vec![None; nv];
    let mut folded_uses = vec![0u32; nv];

    for bd in &func.blocks {
        let Some(&term) = bd.insts.last() else {
            continue;
        };
        if let InstKind::Br {
            cond: Operand::Value(c),
            ..
        } = func.insts[term.index()].kind
        {
            for &i in &bd.insts {
                let d = &func.insts[i.index()];
                if d.result == Some(c) && is_compare(d.opcode) && uses[c.index()] == 1 {
                    fused[i.index()] = true;
                }
            }
        }
        for &i in &bd.insts {
            let d = &func.insts[i.index()];
            if let (Opcode::Add, Some(Type::I64), InstKind::Binary { args }, Some(r)) =
                (d.opcode, d.ty, &d.kind, d.result)
            {
                if let (Operand::Value(x), Operand::Const(_)) = (args[0], args[1]) {
                    if let Some(c) = imm32(args[1], Type::I64) {
                        addr_fold[r.index()] = Some((x, c as i64));
                    }
                }
            }
        }
    }
    // Count uses that fold (a pointer operand of a load/store whose combined
    // displacement fits 32 bits).
    for d in &func.insts {
        let (ptr, off) = match &d.kind {
            InstKind::Load { ptr, offset } => (*ptr, *offset),
            InstKind::Store { args, offset } => (args[1], *offset),
            _ => continue,
        };
        if let Operand::Value(p) = ptr {
            if let Some((_, c)) = addr_fold[p.index()] {
                if i32::try_from(c + off).is_ok() {
                    folded_uses[p.index()] += 1;
                }
            }
        }
    }
    for (i, d) in func.insts.iter().enumerate() {
        if let Some(r) = d.result {
            if addr_fold[r.index()].is_some() && folded_uses[r.index()] == uses[r.index()] {
                skip[i] = true;
            }
        }
    }

    // Outgoing arguments first (they must sit at `sp`), so their size is
    // needed before any other offset.
    let mut outgoing = 0u32;
    for d in &func.insts {
        if let InstKind::Call { callee, args } = &d.kind {
            let tys: Vec<Type> = match callee {
                Callee::Direct(s) => module.symbols[s.index()]
                    .signature()
                    .map(|sig| sig.params.clone())
                    .unwrap_or_default(),
                Callee::Indirect(_) => args
                    .iter()
                    .map(|a| func.operand_type(*a, Type::I64))
                    .collect(),
            };
            outgoing = outgoing.max(arg_locations(&tys).1);
        }
    }
    if outgoing > (1 << 29) {
        return Err(err(func, "frame too large"));
    }
    // Then value slots, the block-argument copy area, and allocas.
    let mut top: u64 = outgoing as u64;
    let mut slot = vec![0i32; nv];
    for s in slot.iter_mut() {
        *s = top as i32;
        top += 8;
        if top > (1 << 30) {
            return Err(err(func, "frame too large"));
        }
    }
    let max_args = func
        .insts
        .iter()
        .flat_map(|d| d.block_calls().into_iter().map(|bc| bc.args.len()))
        .max()
        .unwrap_or(0) as u64;
    let copy_area = top;
    top += 8 * max_args;
    let mut alloca = vec![0i32; ni];
    for (i, d) in func.insts.iter().enumerate() {
        if let InstKind::Alloca { size, align } = &d.kind {
            let a = (*align).clamp(1, 16);
            top = top
                .checked_add(a - 1)
                .ok_or_else(|| err(func, "frame too large"))?
                / a
                * a;
            alloca[i] = top.min(1 << 31) as i32;
            top = top
                .checked_add(*size)
                .ok_or_else(|| err(func, "frame too large"))?;
        }
        if top > (1 << 30) {
            return Err(err(func, "frame too large"));
        }
    }
    let frame = top.div_ceil(16) * 16;
    if frame > (1 << 30) {
        return Err(err(func, "frame too large"));
    }
    Ok(Plan {
        order,
        slot,
        fused,
        skip,
        addr_fold,
        alloca,
        copy_area: copy_area as i32,
        frame_size: frame as u32,
        outgoing,
    })
}
