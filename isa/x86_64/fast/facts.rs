//! The fast path's per-(opcode, suffix) facts: which instructions
//! [`super::Fast::analyze`] compiles and what each one needs (scratch
//! registers, purity, its operand format), as one `u16` table read once
//! per instruction instead of a `match` on the opcode, which the branch
//! predictors miss on straight-line code where opcodes are random.
//!
//! The format lists repeat `Opcode::info`'s (not `const`); the test
//! `format_bits_follow_the_opcode_table` in `fast.rs` checks them.

#[cfg(doc)]
use super::{call_supported, Fast, DEAD, R_FLOAT, R_PURE, R_SHIFT};
#[cfg(doc)]
use crate::ir::InstKind;
use crate::ir::{Opcode, Type};

/// Per-(opcode, suffix) facts of the sweep ([`FACTS`]): one load per
/// instruction instead of a `match` on the opcode (a jump the predictors
/// miss on straight-line code, where opcodes are random).
/// Supported here with this suffix (the operand types are the
/// verifier's; a `call` also needs [`call_supported`]).
pub(super) const F_OK: u16 = 1;
/// A `call` (supported with any suffix if [`call_supported`]).
pub(super) const F_CALL: u16 = 1 << 1;
/// The result is an `f32`/`f64` (a float instruction, not a compare).
/// (Two bits above [`F_PURE`], as [`R_FLOAT`] is above [`R_PURE`]: see
/// [`R_SHIFT`].)
pub(super) const F_FLOAT: u16 = 1 << 10;
/// An integer or float comparison.
pub(super) const F_CMP: u16 = 1 << 3;
/// Uses `rcx`/`rdx` when its second operand is a literal (division and
/// remainder).
pub(super) const F_FIXED_LIT: u16 = 1 << F_FIXED_BIT;
/// Uses `rcx`/`rdx` when its second operand is a value (division and
/// remainder; shifts, by `cl`): [`F_FIXED_LIT`]'s bit plus one, so that
/// an instruction's bit is `facts >> (F_FIXED_BIT + by_value)`.
pub(super) const F_FIXED_VAL: u16 = 1 << (F_FIXED_BIT + 1);
/// Bit position of [`F_FIXED_LIT`].
pub(super) const F_FIXED_BIT: u16 = 4;
/// Supported with this suffix ([`F_OK`]) and of the binary format (its
/// operands an [`InstKind::Binary`]): the sweep's common path, chosen by
/// this bit rather than by decoding the niche-encoded kind first.
pub(super) const F_BIN: u16 = 1 << 6;
/// Likewise, of the unary format ([`InstKind::Unary`]).
pub(super) const F_UNARY: u16 = 1 << 7;
/// No effect but its result: no trap, no memory access, no call (the
/// integer and float arithmetic except division and remainder, the
/// compares, conversions, `select`, `copy`, `addr`). With an unused
/// result it is not compiled at all (see [`DEAD`]).
pub(super) const F_PURE: u16 = 1 << 8;
/// [`F_PURE`] with some suffix (what [`Fast::mark_live`] tests: an
/// instruction left out is never compiled, whatever its suffix).
pub(super) const F_PURE_ANY: u16 = 1 << 9;

/// Suffix slots per opcode in [`FACTS`]: each [`Type`] at its code, none
/// at 4 (the byte of the `Option<Type>`).
pub(super) const SLOTS: usize = 8;

/// The table slot of a suffix.
#[inline(always)]
pub(super) fn slot(ty: Option<Type>) -> usize {
    match ty {
        Some(t) => t as usize,
        None => 4,
    }
}

/// The facts of opcode `op` with the suffix of slot `s` (see [`F_OK`]).
pub(super) const fn facts(op: Opcode, s: usize) -> u16 {
    let mut any = 0;
    let mut t = 0;
    while t < SLOTS {
        any |= suffix_facts(op, t) & F_PURE;
        t += 1;
    }
    suffix_facts(op, s) | if any != 0 { F_PURE_ANY } else { 0 }
}

/// [`facts`] but [`F_PURE_ANY`].
pub(super) const fn suffix_facts(op: Opcode, s: usize) -> u16 {
    use Opcode::*;
    let int = s == Type::I32 as usize || s == Type::I64 as usize;
    let float = s == Type::F32 as usize || s == Type::F64 as usize;
    let some = s < 4;
    let ok = match op {
        Add | Sub | Mul | And | Or | Xor | Shl | Shr | Sar | Neg | Not | Eq | Ne | Slt | Sle
        | Sgt | Sge | Ult | Ule | Ugt | Uge | Sext | Zext | Trunc | Sdiv | Udiv | Srem | Urem
        | Load8s | Load8u | Load16s | Load16u | Load32s | Load32u | Switch => int,
        Fadd | Fsub | Fmul | Fdiv | Fneg | Fabs | Fsqrt | Feq | Fne | Flt | Fle | Fgt | Fge => {
            float
        }
        Copy | Select | Load | Store | Fext | Ftrunc | Sitof | Uitof | Ftosi | Ftoui | Bitcast => {
            some
        }
        Store8 | Store16 | Store32 | Addr | Alloca | Ret | Jmp | Br | Trap => true,
        Call => false,
    };
    let cmp = matches!(
        op,
        Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Feq | Fne | Flt | Fle | Fgt | Fge
    );
    let mut f = 0;
    if ok {
        f |= F_OK;
    }
    if matches!(op, Call) {
        f |= F_CALL;
    }
    if float && !cmp {
        f |= F_FLOAT;
    }
    if cmp {
        f |= F_CMP;
    }
    if matches!(op, Sdiv | Udiv | Srem | Urem) {
        f |= F_FIXED_LIT | F_FIXED_VAL;
    }
    if matches!(op, Shl | Shr | Sar) {
        f |= F_FIXED_VAL;
    }
    // (The formats of `Opcode::info`, which is not `const`; a test checks
    // these lists against it.)
    let bin = matches!(
        op,
        Add | Sub
            | Mul
            | And
            | Or
            | Xor
            | Shl
            | Shr
            | Sar
            | Sdiv
            | Udiv
            | Srem
            | Urem
            | Fadd
            | Fsub
            | Fmul
            | Fdiv
    ) || cmp;
    let unary = matches!(
        op,
        Neg | Not
            | Sext
            | Zext
            | Trunc
            | Fneg
            | Fabs
            | Fsqrt
            | Copy
            | Fext
            | Ftrunc
            | Sitof
            | Uitof
            | Ftosi
            | Ftoui
            | Bitcast
    );
    if ok && bin {
        f |= F_BIN;
    }
    if ok && unary {
        f |= F_UNARY;
    }
    let divides = matches!(op, Sdiv | Udiv | Srem | Urem);
    if ok && (bin && !divides || unary || matches!(op, Select | Addr)) {
        f |= F_PURE;
    }
    f
}

/// Per opcode and suffix slot: [`facts`].
pub(super) static FACTS: [[u16; SLOTS]; Opcode::ALL.len()] = {
    let mut t = [[0; SLOTS]; Opcode::ALL.len()];
    let mut k = 0;
    while k < Opcode::ALL.len() {
        let mut s = 0;
        while s < SLOTS {
            t[k][s] = facts(Opcode::ALL[k], s);
            s += 1;
        }
        k += 1;
    }
    t
};
