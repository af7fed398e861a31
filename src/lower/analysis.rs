//! Per-function lowering decisions shared by every backend and both code
//! generators (register-allocated and baseline) of each ISA.
//!
//! - **structure checks**: every index the generators follow is in range and
//!   every block ends in a terminator, so lowering never indexes out of
//!   bounds even on unverified input;
//! - **block order**: chosen by the backend (a function passed in), computed
//!   only after the structure checks pass; unreachable blocks are not
//!   emitted;
//! - **compare fusion**: a compare whose only use is the `br` ending its
//!   own block is emitted as a flag-setting compare + conditional branch at
//!   the branch, its result never materialized;
//! - **address folding**: `add.i64 x, C` (C a 32-bit literal) used as the
//!   pointer of loads/stores folds into the access's addressing mode; the
//!   `add` itself is skipped when all its uses fold (with the access's own
//!   offset, the combined displacement must fit 32 bits).
//!
//! Frame layout differs per ISA and stays in each backend's `analysis.rs`.

use crate::error::{Error, Result};
use crate::ir::{Block, Callee, Function, InstKind, Module, Opcode, Operand, Type, Value};

/// The ISA-independent decisions for one function.
pub struct Decisions {
    /// Emission order of the reachable blocks; the entry first.
    pub order: Vec<Block>,
    /// Per instruction: a compare fused into its block's `br`.
    pub fused: Vec<bool>,
    /// Per instruction: nothing to emit (all uses of its result folded).
    pub skip: Vec<bool>,
    /// Per value: `Some((x, c))` when it is `add.i64 x, c` and foldable into
    /// an address.
    pub addr_fold: Vec<Option<(Value, i64)>>,
}

/// A compile error about `func`.
pub fn err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: {what}", func.name))
}

/// Whether `op` is a literal whose bits, as type `ty`, fit a sign-extended
/// 32-bit value (an x86 immediate; the range of folded address offsets).
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

/// Whether `op` is an integer or float comparison.
pub fn is_compare(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Feq | Fne | Flt | Fle | Fgt | Fge
    )
}

/// Checks the structural facts emission relies on: indices in range,
/// terminators present.
pub fn check_structure(module: &Module, func: &Function) -> Result<()> {
    let nv = func.values.len();
    for b in &func.blocks {
        let last = b.insts.last().ok_or_else(|| err(func, "empty block"))?;
        for &i in &b.insts {
            let inst = func
                .insts
                .get(i.index())
                .ok_or_else(|| err(func, "bad instruction"))?;
            for op in func.operands(i) {
                if let Operand::Value(v) = op {
                    if v.index() >= nv {
                        return Err(err(func, "bad value"));
                    }
                }
            }
            for s in func.successors(i) {
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
    Ok(())
}

/// Blocks reachable from the entry in the layout order both backends use:
/// reverse postorder with every loop's blocks contiguous, header first
/// ([`crate::analysis::LoopInfo::block_order`]). Definitions still come
/// before their uses, and a loop's live ranges stay compact for the
/// register allocator.
pub fn block_order(func: &Function) -> Vec<Block> {
    let analysis = crate::analysis::FuncAnalysis::new(func);
    analysis.loops.block_order(&analysis.rpo)
}

/// Checks `func`'s structure, then makes the shared decisions, with blocks
/// laid out by [`block_order`] (computed only on a structurally sound
/// function).
pub fn decide(module: &Module, func: &Function) -> Result<Decisions> {
    check_structure(module, func)?;
    let nv = func.values.len();
    let ni = func.insts.len();
    let order = block_order(func);

    // Use counts, and which block each use sits in.
    let mut uses = vec![0u32; nv];
    for b in &func.blocks {
        for &i in &b.insts {
            for op in func.operands(i) {
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
    Ok(Decisions {
        order,
        fused,
        skip,
        addr_fold,
    })
}
