//! Per-function decisions shared by both x86-64 code generators, and the
//! frame plan of the allocator-free [`super::baseline`] generator.
//!
//! - **block order**: reverse postorder from the entry with each loop's
//!   blocks contiguous; unreachable blocks are not emitted;
//! - **compare + branch fusion**: a compare whose only use is the `br` of its
//!   own block is emitted as `cmp`/`ucomis` + `jcc` at the branch, its result
//!   never materialized;
//! - **address folding**: `add.i64 x, C` feeding loads/stores folds into the
//!   addressing mode as `[x + C + off]`; the `add` itself is skipped when all
//!   its uses fold;
//! - **structure checks**: every index the generators follow is in range and
//!   every block ends in a terminator, so lowering never indexes out of
//!   bounds even on unverified input.
//!
//! The baseline generator gives every SSA value its own 8-byte frame slot:
//! slot offsets are negative `rbp` offsets; alloca offsets are aligned to
//! their alignment (≤ 16, `rbp` being 16-byte aligned); `frame_size` is a
//! multiple of 16 and includes the outgoing stack-argument area at its
//! bottom. The register-allocated generator uses only the first three
//! decisions and lays its frame out in [`super::emit`].

use super::abi::arg_locations;
use crate::error::{Error, Result};
use crate::ir::{Block, Callee, Function, InstKind, Module, Opcode, Operand, Type, Value};

/// The largest frame either generator lays out (1 TiB): larger allocas are
/// a compile error rather than address arithmetic that could wrap. Frames
/// beyond the stack's size compile, and fault on a guard page when the
/// prologue probes them.
pub const MAX_FRAME: u64 = 1 << 40;

/// The lowering plan of one function.
pub struct Plan {
    /// Emission order of the reachable blocks; the entry first.
    pub order: Vec<Block>,
    /// Per value: its slot's offset from `rbp` (negative).
    pub slot: Vec<i32>,
    /// Per instruction: a compare fused into its block's `br`.
    pub fused: Vec<bool>,
    /// Per instruction: nothing to emit (all uses of its result folded).
    pub skip: Vec<bool>,
    /// Per value: `Some((x, c))` when it is `add.i64 x, c` and foldable into
    /// an address.
    pub addr_fold: Vec<Option<(Value, i64)>>,
    /// Per instruction: the `rbp` offset of an `alloca`'s memory.
    pub alloca: Vec<i64>,
    /// `rbp` offset of the scratch area for block-argument copies.
    pub copy_area: i32,
    /// Bytes below `rbp`, a multiple of 16.
    pub frame_size: u64,
    /// Bytes of the outgoing stack-argument area (at `rsp`).
    pub outgoing: u32,
}

fn err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: {what}", func.name))
}

/// Blocks reachable from the entry in the shared layout order: reverse
/// postorder with every loop's blocks contiguous, header first
/// ([`crate::analysis::LoopInfo::block_order`]). Definitions still come
/// before their uses, and a loop's live ranges stay compact for the
/// register allocator.
pub fn block_order(func: &Function) -> Vec<Block> {
    let analysis = crate::analysis::FuncAnalysis::new(func);
    analysis.loops.block_order(&analysis.rpo)
}

/// Whether `op` is a literal whose bits, as type `ty`, fit a sign-extended
/// 32-bit immediate.
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

    let order = block_order(func);

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

    // Frame: value slots, then the block-argument copy area, then allocas.
    let mut below: u64 = 0;
    let mut slot = vec![0i32; nv];
    for s in slot.iter_mut() {
        below += 8;
        *s = -(below as i64) as i32;
    }
    let max_args = func
        .insts
        .iter()
        .flat_map(|d| d.block_calls().into_iter().map(|bc| bc.args.len()))
        .max()
        .unwrap_or(0) as u64;
    below += 8 * max_args;
    let copy_area = -(below as i64);
    let mut alloca = vec![0i64; ni];
    let mut outgoing = 0u32;
    for (i, d) in func.insts.iter().enumerate() {
        match &d.kind {
            InstKind::Alloca { size, align } => {
                let a = (*align).clamp(1, 16);
                below = below
                    .checked_add(*size)
                    .and_then(|b| b.checked_add(a - 1))
                    .ok_or_else(|| err(func, "frame too large"))?;
                below = below / a * a;
                alloca[i] = -(below as i64);
            }
            InstKind::Call { callee, args } => {
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
            _ => {}
        }
        if below > MAX_FRAME {
            return Err(err(func, "frame too large"));
        }
    }
    let frame = below.div_ceil(16) * 16 + outgoing as u64;
    if frame > MAX_FRAME {
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
        frame_size: frame,
        outgoing,
    })
}
