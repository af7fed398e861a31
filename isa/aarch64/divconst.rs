//! Division by a literal through multiply-high on AArch64: the sequences of
//! [`crate::opt::magic`]'s plans. Kept in its own file, with a few lines of
//! hook in `lower.rs` ([`super::lower::Op::DivConst`]) and `emit.rs`, so
//! that it moves easily with the lowering.
//!
//! Operands: `[x, d]`, both in any register (`d` may be `x`): every
//! intermediate lives in the scratch registers `x16`/`x17`, and only the
//! last instruction writes `d`. Nothing here can trap: the plan exists
//! only for divisors other than 0, 1 and -1.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::asm::{mov_imm, Asm};
use crate::ir::Opcode;
use crate::opt::magic::Plan;
use dynasmrt::{dynasm, DynasmApi};

/// `op.ty x, divisor` into `d` by `plan` (`wide`: 64-bit).
pub fn emit(ops: &mut Asm, op: Opcode, wide: bool, plan: Plan, divisor: u64, x: u8, d: u8) {
    let rem = matches!(op, Opcode::Srem | Opcode::Urem);
    let w = if wide { 64u32 } else { 32 };
    match plan {
        Plan::UnsignedPow2 { k } => {
            if rem {
                // Keep the low k bits.
                let n = w - k;
                if wide {
                    dynasm!(ops ; .arch aarch64 ; lsl x16, X(x), n ; lsr X(d), x16, n);
                } else {
                    dynasm!(ops ; .arch aarch64 ; lsl w16, W(x), n ; lsr W(d), w16, n);
                }
            } else if wide {
                dynasm!(ops ; .arch aarch64 ; lsr X(d), X(x), k);
            } else {
                dynasm!(ops ; .arch aarch64 ; lsr W(d), W(x), k);
            }
        }
        Plan::SignedPow2 { k, negative } => {
            // x16 = x + (x < 0 ? 2^k - 1 : 0)
            let (sign, bias) = (w - 1, w - k);
            if wide {
                dynasm!(ops ; .arch aarch64
                    ; asr x16, X(x), sign ; lsr x16, x16, bias ; add x16, X(x), x16);
            } else {
                dynasm!(ops ; .arch aarch64
                    ; asr w16, W(x), sign ; lsr w16, w16, bias ; add w16, W(x), w16);
            }
            match (rem, negative, wide) {
                (true, _, true) => dynasm!(ops ; .arch aarch64
                    ; asr x16, x16, k ; lsl x16, x16, k ; sub X(d), X(x), x16),
                (true, _, false) => dynasm!(ops ; .arch aarch64
                    ; asr w16, w16, k ; lsl w16, w16, k ; sub W(d), W(x), w16),
                (false, false, true) => dynasm!(ops ; .arch aarch64 ; asr X(d), x16, k),
                (false, false, false) => dynasm!(ops ; .arch aarch64 ; asr W(d), w16, k),
                (false, true, true) => dynasm!(ops ; .arch aarch64
                    ; asr x16, x16, k ; neg X(d), x16),
                (false, true, false) => dynasm!(ops ; .arch aarch64
                    ; asr w16, w16, k ; neg W(d), w16),
            }
        }
        Plan::Unsigned { mul, shift, add } => {
            mov_imm(ops, 16, mul, wide);
            if wide {
                dynasm!(ops ; .arch aarch64 ; umulh x16, X(x), x16);
            } else {
                dynasm!(ops ; .arch aarch64 ; umull x16, W(x), w16 ; lsr x16, x16, 32);
            }
            let s = if add {
                // x16 = ((x - t) >> 1) + t
                if wide {
                    dynasm!(ops ; .arch aarch64
                        ; sub x17, X(x), x16 ; lsr x17, x17, 1 ; add x16, x16, x17);
                } else {
                    dynasm!(ops ; .arch aarch64
                        ; sub w17, W(x), w16 ; lsr w17, w17, 1 ; add w16, w16, w17);
                }
                shift - 1
            } else {
                shift
            };
            if rem {
                lsr(ops, wide, 16, 16, s);
                msub(ops, wide, d, x, divisor);
            } else {
                lsr(ops, wide, d, 16, s);
            }
        }
        Plan::Signed { mul, shift, .. } => {
            mov_imm(ops, 16, mul as u64, wide);
            if wide {
                dynasm!(ops ; .arch aarch64 ; smulh x16, X(x), x16);
            } else {
                dynasm!(ops ; .arch aarch64 ; smull x16, W(x), w16 ; asr x16, x16, 32);
            }
            match (plan.correction(), wide) {
                (1, true) => dynasm!(ops ; .arch aarch64 ; add x16, x16, X(x)),
                (1, false) => dynasm!(ops ; .arch aarch64 ; add w16, w16, W(x)),
                (-1, true) => dynasm!(ops ; .arch aarch64 ; sub x16, x16, X(x)),
                (-1, false) => dynasm!(ops ; .arch aarch64 ; sub w16, w16, W(x)),
                _ => {}
            }
            // q = (t >> shift) + (t < 0), rounding toward zero.
            let sign = w - 1;
            if wide {
                dynasm!(ops ; .arch aarch64 ; asr x16, x16, shift ; lsr x17, x16, sign);
            } else {
                dynasm!(ops ; .arch aarch64 ; asr w16, w16, shift ; lsr w17, w16, sign);
            }
            match (rem, wide) {
                (true, true) => {
                    dynasm!(ops ; .arch aarch64 ; add x16, x16, x17);
                    msub(ops, wide, d, x, divisor);
                }
                (true, false) => {
                    dynasm!(ops ; .arch aarch64 ; add w16, w16, w17);
                    msub(ops, wide, d, x, divisor);
                }
                (false, true) => dynasm!(ops ; .arch aarch64 ; add X(d), x16, x17),
                (false, false) => dynasm!(ops ; .arch aarch64 ; add W(d), w16, w17),
            }
        }
    }
}

/// `d = s >> n` (a move for 0).
fn lsr(ops: &mut Asm, wide: bool, d: u8, s: u8, n: u32) {
    match (n, wide) {
        (0, true) => dynasm!(ops ; .arch aarch64 ; mov X(d), X(s)),
        (0, false) => dynasm!(ops ; .arch aarch64 ; mov W(d), W(s)),
        (_, true) => dynasm!(ops ; .arch aarch64 ; lsr X(d), X(s), n),
        (_, false) => dynasm!(ops ; .arch aarch64 ; lsr W(d), W(s), n),
    }
}

/// `d = x - x16 * divisor` (the quotient is in `x16`).
fn msub(ops: &mut Asm, wide: bool, d: u8, x: u8, divisor: u64) {
    mov_imm(ops, 17, divisor, wide);
    if wide {
        dynasm!(ops ; .arch aarch64 ; msub X(d), x16, x17, X(x));
    } else {
        dynasm!(ops ; .arch aarch64 ; msub W(d), w16, w17, W(x));
    }
}
