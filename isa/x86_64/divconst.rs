//! Division by a literal through multiply-high on x86-64: the sequences of
//! [`crate::opt::magic`]'s plans. Kept in its own file, with a few lines of
//! hook in `lower.rs` ([`super::lower::Op::DivConst`]) and `emit.rs`, so
//! that it moves easily with the lowering.
//!
//! Operands: `[x, d]`. The dividend `x` is a Late use in any register: it
//! is read after `rax` and `rdx` (both clobbered) are written, so the
//! allocator keeps it out of them. The result `d` is in `rdx` for
//! quotients and in `rax` for remainders. `r11` is scratch. Nothing here
//! can trap: the plan exists only for divisors other than 0, 1 and -1.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::regs::{R11, RAX, RDX};
use crate::error::{Error, Result};
use crate::ir::Opcode;
use crate::opt::magic::Plan;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

fn is_rem(op: Opcode) -> bool {
    matches!(op, Opcode::Srem | Opcode::Urem)
}

/// The register holding the result of `op`.
pub fn result_reg(op: Opcode) -> u8 {
    if is_rem(op) {
        RAX
    } else {
        RDX
    }
}

/// Emits `d = op x, divisor` by `plan` (`wide`: 64-bit).
pub fn emit(ops: &mut Asm, op: Opcode, wide: bool, plan: Plan, divisor: u64, x: u8) -> Result<()> {
    if x == RAX || x == RDX || x == R11 {
        return Err(Error::Runtime(
            "division by a literal: dividend in a reserved register".into(),
        ));
    }
    let w = if wide { 64 } else { 32 };
    match plan {
        Plan::UnsignedPow2 { k } => {
            if is_rem(op) {
                mov(ops, wide, RAX, x);
                let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
                and_imm(ops, wide, RAX, mask);
            } else {
                mov(ops, wide, RDX, x);
                shift(ops, wide, Shift::Shr, RDX, k);
            }
        }
        Plan::SignedPow2 { k, negative } => {
            // rdx = x + (x < 0 ? 2^k - 1 : 0), then the quotient.
            mov(ops, wide, RDX, x);
            shift(ops, wide, Shift::Sar, RDX, w - 1);
            shift(ops, wide, Shift::Shr, RDX, w - k);
            add(ops, wide, RDX, x);
            if is_rem(op) {
                // x - trunc(x / 2^k) * 2^k, the same for -2^k.
                shift(ops, wide, Shift::Sar, RDX, k);
                shift(ops, wide, Shift::Shl, RDX, k);
                mov(ops, wide, RAX, x);
                sub(ops, wide, RAX, RDX);
            } else {
                shift(ops, wide, Shift::Sar, RDX, k);
                if negative {
                    if wide {
                        dynasm!(ops ; .arch x64 ; neg rdx);
                    } else {
                        dynasm!(ops ; .arch x64 ; neg edx);
                    }
                }
            }
        }
        Plan::Unsigned {
            mul,
            shift: s,
            add: fix,
        } => {
            mov_imm(ops, wide, RAX, mul);
            if wide {
                dynasm!(ops ; .arch x64 ; mul Rq(x));
            } else {
                dynasm!(ops ; .arch x64 ; mul Rd(x));
            }
            if fix {
                mov(ops, wide, R11, x);
                sub(ops, wide, R11, RDX);
                shift(ops, wide, Shift::Shr, R11, 1);
                add(ops, wide, RDX, R11);
                shift(ops, wide, Shift::Shr, RDX, s - 1);
            } else {
                shift(ops, wide, Shift::Shr, RDX, s);
            }
            if is_rem(op) {
                remainder(ops, wide, x, divisor);
            }
        }
        Plan::Signed { mul, shift: s, .. } => {
            mov_imm(ops, wide, RAX, mul as u64);
            if wide {
                dynasm!(ops ; .arch x64 ; imul Rq(x));
            } else {
                dynasm!(ops ; .arch x64 ; imul Rd(x));
            }
            match plan.correction() {
                1 => add(ops, wide, RDX, x),
                -1 => sub(ops, wide, RDX, x),
                _ => {}
            }
            shift(ops, wide, Shift::Sar, RDX, s);
            // Round toward zero: add 1 when the quotient is negative.
            mov(ops, wide, RAX, RDX);
            shift(ops, wide, Shift::Shr, RAX, w - 1);
            add(ops, wide, RDX, RAX);
            if is_rem(op) {
                remainder(ops, wide, x, divisor);
            }
        }
    }
    Ok(())
}

/// `rax = x - rdx * divisor` (the quotient is in `rdx`).
fn remainder(ops: &mut Asm, wide: bool, x: u8, divisor: u64) {
    let imm = if wide {
        i32::try_from(divisor as i64).ok()
    } else {
        Some(divisor as u32 as i32)
    };
    match (imm, wide) {
        (Some(k), true) => dynasm!(ops ; .arch x64 ; imul rdx, rdx, k),
        (Some(k), false) => dynasm!(ops ; .arch x64 ; imul edx, edx, k),
        (None, _) => {
            mov_imm(ops, true, R11, divisor);
            dynasm!(ops ; .arch x64 ; imul rdx, r11);
        }
    }
    mov(ops, wide, RAX, x);
    sub(ops, wide, RAX, RDX);
}

#[derive(Clone, Copy)]
enum Shift {
    Shl,
    Shr,
    Sar,
}

/// `op d, n`; nothing for a count of 0.
fn shift(ops: &mut Asm, wide: bool, op: Shift, d: u8, n: u32) {
    if n == 0 {
        return;
    }
    let n = n as i8;
    match (op, wide) {
        (Shift::Shl, true) => dynasm!(ops ; .arch x64 ; shl Rq(d), n),
        (Shift::Shl, false) => dynasm!(ops ; .arch x64 ; shl Rd(d), n),
        (Shift::Shr, true) => dynasm!(ops ; .arch x64 ; shr Rq(d), n),
        (Shift::Shr, false) => dynasm!(ops ; .arch x64 ; shr Rd(d), n),
        (Shift::Sar, true) => dynasm!(ops ; .arch x64 ; sar Rq(d), n),
        (Shift::Sar, false) => dynasm!(ops ; .arch x64 ; sar Rd(d), n),
    }
}

fn mov(ops: &mut Asm, wide: bool, d: u8, s: u8) {
    if wide {
        dynasm!(ops ; .arch x64 ; mov Rq(d), Rq(s));
    } else {
        dynasm!(ops ; .arch x64 ; mov Rd(d), Rd(s));
    }
}

fn add(ops: &mut Asm, wide: bool, d: u8, s: u8) {
    if wide {
        dynasm!(ops ; .arch x64 ; add Rq(d), Rq(s));
    } else {
        dynasm!(ops ; .arch x64 ; add Rd(d), Rd(s));
    }
}

fn sub(ops: &mut Asm, wide: bool, d: u8, s: u8) {
    if wide {
        dynasm!(ops ; .arch x64 ; sub Rq(d), Rq(s));
    } else {
        dynasm!(ops ; .arch x64 ; sub Rd(d), Rd(s));
    }
}

/// `d = imm` (the low 32 bits when not `wide`).
fn mov_imm(ops: &mut Asm, wide: bool, d: u8, imm: u64) {
    if wide {
        dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD imm as i64);
    } else {
        dynasm!(ops ; .arch x64 ; mov Rd(d), imm as u32 as i32);
    }
}

/// `d &= mask`, through `r11` when the mask is no sign-extended imm32.
fn and_imm(ops: &mut Asm, wide: bool, d: u8, mask: u64) {
    if !wide {
        dynasm!(ops ; .arch x64 ; and Rd(d), mask as u32 as i32);
    } else if let Ok(k) = i32::try_from(mask as i64) {
        dynasm!(ops ; .arch x64 ; and Rq(d), k);
    } else {
        mov_imm(ops, true, R11, mask);
        dynasm!(ops ; .arch x64 ; and Rq(d), r11);
    }
}
