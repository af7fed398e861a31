//! Lowering decisions for one AArch64 function: block order, where each
//! value lives, which instructions fuse, and the frame layout.
//!
//! The baseline compiler gives every SSA value its own 8-byte frame slot;
//! each instruction loads its operands into fixed scratch registers,
//! computes, and stores its result, so no value is live in a register across
//! instructions, no callee-saved register is used and calls need no
//! caller-saved spilling. The ISA-independent decisions (structure checks,
//! compare + branch fusion, address folding) come from
//! [`crate::lower::analysis::decide`], including the block order (reverse
//! postorder with loops contiguous; unreachable blocks are not emitted);
//! AArch64 chooses:
//! - fused compares become `cmp`/`fcmp` + `b.cond`; folded `add`s become the
//!   access's offset.
//!
//! Frame (addresses grow upward from `sp`): the outgoing stack-argument
//! area at `sp`, then the value slots, the block-argument copy area and the
//! allocas, then the frame record (`x29`, `x30`) at `sp + frame_size`, which
//! is where `x29` points. Invariants: every offset is a non-negative `sp`
//! offset; value slots are 8-byte aligned; alloca offsets are aligned to
//! their alignment (≤ 16, `sp` being 16-byte aligned); `frame_size` is a
//! multiple of 16 and at most 2^30.

use super::abi::arg_locations;
use crate::error::Result;
use crate::ir::{Block, Callee, Function, InstKind, Module, Type, Value};
use crate::lower::analysis::{decide, err, Decisions};

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

/// Builds the plan for `func`, checking the structural facts emission
/// relies on (indices in range, terminators present).
pub fn plan(module: &Module, func: &Function) -> Result<Plan> {
    let Decisions {
        order,
        fused,
        skip,
        addr_fold,
    } = decide(module, func)?;
    let nv = func.values.len();
    let ni = func.insts.len();

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
                Callee::Indirect(_) => func
                    .args(*args)
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
