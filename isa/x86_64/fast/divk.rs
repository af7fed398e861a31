//! Division and remainder by a literal in the fast generator (see
//! [`super`]): the multiply-high sequences of [`crate::opt::magic`]'s plans,
//! the same as the pipeline's (`isa/x86_64/divconst.rs`), written with the
//! fast byte encoder. No zero check and no trap: a plan exists only for
//! divisors other than 0, 1 and -1 (and unsigned ones up to `2^(w-1)` or
//! powers of two); the others take the ordinary division.
//!
//! Registers: the quotient is formed in `rdx`, the remainder in `rax`,
//! `r11` is scratch. Like every division, the instruction is in the
//! allocator's `fixed` list, so no value live across it (its dividend and
//! result included) has its home in `rcx` or `rdx`: a dividend that is
//! not in a register is loaded into `rcx`.

use super::emit::Em;
use super::enc::{ADD, AND, SUB};
use super::Src;
use crate::ir::Opcode;
use crate::isa::x86_64::regs::{R11, RAX, RCX, RDX};
use crate::opt::magic::Plan;

/// Shift `/digit`s of `c1 /n` (`shl`, `shr`, `sar`).
const SHL: u8 = 4;
const SHR: u8 = 5;
const SAR: u8 = 7;

fn is_rem(op: Opcode) -> bool {
    matches!(op, Opcode::Srem | Opcode::Urem)
}

impl Em<'_> {
    /// `d = s` in `w` bits (32 bits clear the upper half).
    #[inline]
    fn mov_w(&mut self, w: bool, d: u8, s: u8) {
        if w {
            self.c.mov_rr(d, s);
        } else {
            self.c.mov_rr32(d, s);
        }
    }

    /// `op r, n`; nothing for a count of 0.
    #[inline]
    fn sh(&mut self, w: bool, ext: u8, r: u8, n: u32) {
        if n != 0 {
            self.c.shift_imm(w, ext, r, n as u8);
        }
    }

    /// `rax = x - rdx * divisor` (the quotient is in `rdx`).
    fn remainder(&mut self, w: bool, x: u8, divisor: u64) {
        match super::enc::imm32_of(w, divisor) {
            Some(k) => self.c.imul_rri(w, RDX, RDX, k),
            None => {
                self.c.mov_imm(R11, divisor);
                self.c.rr0f(true, super::inst::MUL, RDX, R11);
            }
        }
        self.mov_w(w, RAX, x);
        self.c.rr(w, SUB, RAX, RDX);
    }

    /// `dst = op a, divisor` by `plan` (`w`: 64-bit).
    pub(super) fn div_const(
        &mut self,
        op: Opcode,
        w: bool,
        dst: Src,
        a: Src,
        plan: Plan,
        divisor: u64,
    ) {
        let bits = if w { 64 } else { 32 };
        let x = self.in_reg(a, RCX);
        match plan {
            Plan::UnsignedPow2 { k } => {
                if is_rem(op) {
                    self.mov_w(w, RAX, x);
                    let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
                    self.c.alu_rk(w, AND, RAX, mask, R11);
                } else {
                    self.mov_w(w, RDX, x);
                    self.sh(w, SHR, RDX, k);
                }
            }
            Plan::SignedPow2 { k, negative } => {
                // rdx = x + (x < 0 ? 2^k - 1 : 0), then the quotient.
                self.mov_w(w, RDX, x);
                self.sh(w, SAR, RDX, bits - 1);
                self.sh(w, SHR, RDX, bits - k);
                self.c.rr(w, ADD, RDX, x);
                if is_rem(op) {
                    // x - trunc(x / 2^k) * 2^k, the same for -2^k.
                    self.sh(w, SAR, RDX, k);
                    self.sh(w, SHL, RDX, k);
                    self.mov_w(w, RAX, x);
                    self.c.rr(w, SUB, RAX, RDX);
                } else {
                    self.sh(w, SAR, RDX, k);
                    if negative {
                        self.c.grp(w, 0xf7, 3, RDX);
                    }
                }
            }
            Plan::Unsigned { mul, shift, add } => {
                self.c.mov_imm(RAX, if w { mul } else { mul & 0xffff_ffff });
                // mul x: rdx:rax = rax * x
                self.c.grp(w, 0xf7, 4, x);
                if add {
                    self.mov_w(w, R11, x);
                    self.c.rr(w, SUB, R11, RDX);
                    self.sh(w, SHR, R11, 1);
                    self.c.rr(w, ADD, RDX, R11);
                    self.sh(w, SHR, RDX, shift - 1);
                } else {
                    self.sh(w, SHR, RDX, shift);
                }
                if is_rem(op) {
                    self.remainder(w, x, divisor);
                }
            }
            Plan::Signed { mul, shift, .. } => {
                let m = if w {
                    mul as u64
                } else {
                    mul as u64 & 0xffff_ffff
                };
                self.c.mov_imm(RAX, m);
                // imul x: rdx:rax = rax * x (signed)
                self.c.grp(w, 0xf7, 5, x);
                match plan.correction() {
                    1 => self.c.rr(w, ADD, RDX, x),
                    -1 => self.c.rr(w, SUB, RDX, x),
                    _ => {}
                }
                self.sh(w, SAR, RDX, shift);
                // Round toward zero: add 1 when the quotient is negative.
                self.mov_w(w, RAX, RDX);
                self.sh(w, SHR, RAX, bits - 1);
                self.c.rr(w, ADD, RDX, RAX);
                if is_rem(op) {
                    self.remainder(w, x, divisor);
                }
            }
        }
        let r = if is_rem(op) { RAX } else { RDX };
        self.mov(dst, Src::R(r));
    }
}
