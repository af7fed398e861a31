//! Per-function decisions shared by both x86-64 code generators, and the
//! frame plan of the allocator-free [`super::baseline`] generator.
//!
//! The ISA-independent decisions (structure checks, block order with loops
//! contiguous, compare + branch fusion, address folding) come from
//! [`crate::lower::analysis::decide`]; this file adds only what is x86-64's:
//! - fused compares become `cmp`/`ucomis` + `jcc`, folded addresses
//!   `[x + C + off]`;
//! - the baseline frame below.
//!
//! The baseline generator gives every SSA value its own 8-byte frame slot:
//! slot offsets are negative `rbp` offsets; alloca offsets are aligned to
//! their alignment (≤ 16, `rbp` being 16-byte aligned); `frame_size` is a
//! multiple of 16 and includes the outgoing stack-argument area at its
//! bottom. The register-allocated generator uses only the first three
//! decisions and lays its frame out in [`super::emit`].

use super::abi::arg_locations;
use crate::error::Result;
use crate::ir::{Block, Callee, Function, InstKind, Module, Type, Value};
use crate::lower::analysis::{decide, err, Decisions};

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
                    Callee::Indirect(_) => func
                        .args(*args)
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
