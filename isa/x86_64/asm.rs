//! The x86-64 assembler layer under the emitter: condition codes, frame
//! helpers and constant loads, as small functions over a dynasm
//! `VecAssembler`.
//!
//! Facts this relies on: `dynasm!` needs `.arch x64` in each invocation;
//! register numbers are hardware encodings (`Rq(n)`, `Rx(n)`).

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use crate::ir::Opcode;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

/// The assembler every x86-64 generator writes into.
pub type Asm = VecAssembler<X64Relocation>;

/// A condition code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cc {
    E,
    Ne,
    L,
    Le,
    G,
    Ge,
    B,
    Be,
    A,
    Ae,
}

/// How a fused or materialized compare decides (shared with the
/// register-allocated generator in `emit.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// One condition code.
    Flags(Cc),
    /// `ucomis`: equal and ordered.
    FloatEq,
    /// `ucomis`: not equal or unordered.
    FloatNe,
}

/// The condition code of an integer compare opcode.
pub fn int_cc(op: Opcode) -> Option<Cc> {
    Some(match op {
        Opcode::Eq => Cc::E,
        Opcode::Ne => Cc::Ne,
        Opcode::Slt => Cc::L,
        Opcode::Sle => Cc::Le,
        Opcode::Sgt => Cc::G,
        Opcode::Sge => Cc::Ge,
        Opcode::Ult => Cc::B,
        Opcode::Ule => Cc::Be,
        Opcode::Ugt => Cc::A,
        Opcode::Uge => Cc::Ae,
        _ => return None,
    })
}

/// The condition code that holds exactly when `cc` does not.
pub fn invert(cc: Cc) -> Cc {
    match cc {
        Cc::E => Cc::Ne,
        Cc::Ne => Cc::E,
        Cc::L => Cc::Ge,
        Cc::Le => Cc::G,
        Cc::G => Cc::Le,
        Cc::Ge => Cc::L,
        Cc::B => Cc::Ae,
        Cc::Be => Cc::A,
        Cc::A => Cc::Be,
        Cc::Ae => Cc::B,
    }
}

/// `jcc l`.
pub fn jcc(ops: &mut Asm, cc: Cc, l: DynamicLabel) {
    match cc {
        Cc::E => dynasm!(ops ; .arch x64 ; je =>l),
        Cc::Ne => dynasm!(ops ; .arch x64 ; jne =>l),
        Cc::L => dynasm!(ops ; .arch x64 ; jl =>l),
        Cc::Le => dynasm!(ops ; .arch x64 ; jle =>l),
        Cc::G => dynasm!(ops ; .arch x64 ; jg =>l),
        Cc::Ge => dynasm!(ops ; .arch x64 ; jge =>l),
        Cc::B => dynasm!(ops ; .arch x64 ; jb =>l),
        Cc::Be => dynasm!(ops ; .arch x64 ; jbe =>l),
        Cc::A => dynasm!(ops ; .arch x64 ; ja =>l),
        Cc::Ae => dynasm!(ops ; .arch x64 ; jae =>l),
    }
}

/// `setcc d8; movzx d32, d8`.
pub fn setcc(ops: &mut Asm, cc: Cc, d: u8) {
    match cc {
        Cc::E => dynasm!(ops ; .arch x64 ; sete Rb(d)),
        Cc::Ne => dynasm!(ops ; .arch x64 ; setne Rb(d)),
        Cc::L => dynasm!(ops ; .arch x64 ; setl Rb(d)),
        Cc::Le => dynasm!(ops ; .arch x64 ; setle Rb(d)),
        Cc::G => dynasm!(ops ; .arch x64 ; setg Rb(d)),
        Cc::Ge => dynasm!(ops ; .arch x64 ; setge Rb(d)),
        Cc::B => dynasm!(ops ; .arch x64 ; setb Rb(d)),
        Cc::Be => dynasm!(ops ; .arch x64 ; setbe Rb(d)),
        Cc::A => dynasm!(ops ; .arch x64 ; seta Rb(d)),
        Cc::Ae => dynasm!(ops ; .arch x64 ; setae Rb(d)),
    }
    dynasm!(ops ; .arch x64 ; movzx Rd(d), Rb(d));
}

/// `sub rsp, n`, touching every page on the way down when `n` is larger
/// than a page so that a guard page is never skipped.
pub fn sub_rsp_probed(ops: &mut Asm, n: u64) {
    if n > 4096 {
        let pages = (n / 4096) as i32;
        dynasm!(ops ; .arch x64
            ; mov r11d, pages
            ; probe:
            ; sub rsp, 4096
            ; mov QWORD [rsp], 0
            ; dec r11
            ; jnz <probe
        );
        let rest = (n % 4096) as i32;
        if rest != 0 {
            dynasm!(ops ; .arch x64 ; sub rsp, rest);
        }
    } else if n > 0 {
        let n = n as i32;
        dynasm!(ops ; .arch x64 ; sub rsp, n);
    }
}

/// `d = rbp + off` for a frame offset of any size.
pub fn lea_frame(ops: &mut Asm, d: u8, off: i64) {
    match i32::try_from(off) {
        Ok(o) => dynasm!(ops ; .arch x64 ; lea Rq(d), [rbp + o]),
        Err(_) => dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD off ; add Rq(d), rbp),
    }
}

/// `r = bits` in the shortest form (`xor` for zero, a 32-bit `mov` when
/// the upper half is zero, sign-extended imm32, else `movabs`).
pub fn mov_imm(ops: &mut Asm, r: u8, bits: u64) {
    if bits == 0 {
        dynasm!(ops ; .arch x64 ; xor Rd(r), Rd(r));
    } else if bits <= u32::MAX as u64 {
        dynasm!(ops ; .arch x64 ; mov Rd(r), bits as u32 as i32);
    } else if let Ok(v) = i32::try_from(bits as i64) {
        dynasm!(ops ; .arch x64 ; mov Rq(r), v);
    } else {
        dynasm!(ops ; .arch x64 ; mov Rq(r), QWORD bits as i64);
    }
}
