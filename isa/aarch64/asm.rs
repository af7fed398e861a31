//! AArch64 instruction encoding helpers over a dynasm `VecAssembler`
//! (never an executable buffer): constants, loads and stores at any
//! offset, condition codes, and the raw words that carry relocations.
//!
//! dynasm panics when a dynamic immediate does not fit its field, so every
//! helper here range-checks before it picks an encoding and falls back to
//! a longer sequence through the scratch register `x16` (never `x17`, which
//! callers use for values). Every `dynasm!` invocation names `.arch
//! aarch64`: dynasm's default architecture is x64 per invocation.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::regs::{X16, X17};
use crate::ir::Opcode;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

pub type Asm = VecAssembler<Aarch64Relocation>;

/// A condition code (after `cmp`/`cmn`/`fcmp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Ne,
    /// Signed less than.
    Lt,
    Le,
    Gt,
    Ge,
    /// Unsigned lower.
    Lo,
    /// Unsigned lower or same; after `fcmp`, less or equal and ordered.
    Ls,
    /// Unsigned higher.
    Hi,
    /// Unsigned higher or same.
    Hs,
    /// Negative; after `fcmp`, less than and ordered.
    Mi,
    /// Overflow.
    Vs,
    /// Positive or zero; after `fcmp`, not less-than-and-ordered.
    Pl,
    /// No overflow.
    Vc,
}

impl Cond {
    /// The condition that holds exactly when `self` does not (for every
    /// flag state, unordered `fcmp` results included).
    pub fn invert(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Lt => Cond::Ge,
            Cond::Ge => Cond::Lt,
            Cond::Le => Cond::Gt,
            Cond::Gt => Cond::Le,
            Cond::Lo => Cond::Hs,
            Cond::Hs => Cond::Lo,
            Cond::Ls => Cond::Hi,
            Cond::Hi => Cond::Ls,
            Cond::Mi => Cond::Pl,
            Cond::Pl => Cond::Mi,
            Cond::Vs => Cond::Vc,
            Cond::Vc => Cond::Vs,
        }
    }
}

/// `b.cond label`.
pub fn b_cond(ops: &mut Asm, c: Cond, l: DynamicLabel) {
    match c {
        Cond::Eq => dynasm!(ops ; .arch aarch64 ; b.eq =>l),
        Cond::Ne => dynasm!(ops ; .arch aarch64 ; b.ne =>l),
        Cond::Lt => dynasm!(ops ; .arch aarch64 ; b.lt =>l),
        Cond::Le => dynasm!(ops ; .arch aarch64 ; b.le =>l),
        Cond::Gt => dynasm!(ops ; .arch aarch64 ; b.gt =>l),
        Cond::Ge => dynasm!(ops ; .arch aarch64 ; b.ge =>l),
        Cond::Lo => dynasm!(ops ; .arch aarch64 ; b.lo =>l),
        Cond::Ls => dynasm!(ops ; .arch aarch64 ; b.ls =>l),
        Cond::Hi => dynasm!(ops ; .arch aarch64 ; b.hi =>l),
        Cond::Hs => dynasm!(ops ; .arch aarch64 ; b.hs =>l),
        Cond::Mi => dynasm!(ops ; .arch aarch64 ; b.mi =>l),
        Cond::Vs => dynasm!(ops ; .arch aarch64 ; b.vs =>l),
        Cond::Pl => dynasm!(ops ; .arch aarch64 ; b.pl =>l),
        Cond::Vc => dynasm!(ops ; .arch aarch64 ; b.vc =>l),
    }
}

/// `b.cond label`, or when `far` (a function longer than the ±1 MiB
/// conditional branches reach) the inverted condition skipping over a
/// `b label` (±128 MiB).
pub fn b_cond_to(ops: &mut Asm, c: Cond, l: DynamicLabel, far: bool) {
    if far {
        let skip = ops.new_dynamic_label();
        b_cond(ops, c.invert(), skip);
        dynasm!(ops ; .arch aarch64 ; b =>l ; =>skip);
    } else {
        b_cond(ops, c, l);
    }
}

/// `cbz r, label` (`nonzero`: `cbnz`) on `x<r>` (`wide`) or `w<r>`, made
/// `far` like [`b_cond_to`].
pub fn cb_to(ops: &mut Asm, nonzero: bool, wide: bool, r: u8, l: DynamicLabel, far: bool) {
    let (nonzero, target) = if far {
        (!nonzero, ops.new_dynamic_label())
    } else {
        (nonzero, l)
    };
    match (nonzero, wide) {
        (false, true) => dynasm!(ops ; .arch aarch64 ; cbz X(r), =>target),
        (false, false) => dynasm!(ops ; .arch aarch64 ; cbz W(r), =>target),
        (true, true) => dynasm!(ops ; .arch aarch64 ; cbnz X(r), =>target),
        (true, false) => dynasm!(ops ; .arch aarch64 ; cbnz W(r), =>target),
    }
    if far {
        dynasm!(ops ; .arch aarch64 ; b =>l ; =>target);
    }
}

/// `cset wd, cond`: 1 when the condition holds, else 0.
pub fn cset(ops: &mut Asm, c: Cond, d: u8) {
    match c {
        Cond::Eq => dynasm!(ops ; .arch aarch64 ; cset W(d), eq),
        Cond::Ne => dynasm!(ops ; .arch aarch64 ; cset W(d), ne),
        Cond::Lt => dynasm!(ops ; .arch aarch64 ; cset W(d), lt),
        Cond::Le => dynasm!(ops ; .arch aarch64 ; cset W(d), le),
        Cond::Gt => dynasm!(ops ; .arch aarch64 ; cset W(d), gt),
        Cond::Ge => dynasm!(ops ; .arch aarch64 ; cset W(d), ge),
        Cond::Lo => dynasm!(ops ; .arch aarch64 ; cset W(d), lo),
        Cond::Ls => dynasm!(ops ; .arch aarch64 ; cset W(d), ls),
        Cond::Hi => dynasm!(ops ; .arch aarch64 ; cset W(d), hi),
        Cond::Hs => dynasm!(ops ; .arch aarch64 ; cset W(d), hs),
        Cond::Mi => dynasm!(ops ; .arch aarch64 ; cset W(d), mi),
        Cond::Vs => dynasm!(ops ; .arch aarch64 ; cset W(d), vs),
        Cond::Pl => dynasm!(ops ; .arch aarch64 ; cset W(d), pl),
        Cond::Vc => dynasm!(ops ; .arch aarch64 ; cset W(d), vc),
    }
}

/// Loads `bits` into `r`: one `movz`/`movn` then `movk` for each other
/// 16-bit chunk that differs from the first instruction's fill. A 32-bit
/// (`wide == false`) constant uses `w` forms, leaving the upper half zero.
pub fn mov_imm(ops: &mut Asm, r: u8, bits: u64, wide: bool) {
    let n = if wide { 4 } else { 2 };
    let bits = if wide { bits } else { bits & 0xffff_ffff };
    let chunk = |i: u32| ((bits >> (16 * i)) & 0xffff) as u32;
    let zeros = (0..n).filter(|&i| chunk(i) == 0).count();
    let ones = (0..n).filter(|&i| chunk(i) == 0xffff).count();
    // With mostly-ones, start from movn (all ones but one chunk).
    let inverted = ones > zeros;
    let fill = if inverted { 0xffff } else { 0 };
    let mut first = true;
    for i in 0..n {
        let c = chunk(i);
        if c == fill {
            continue;
        }
        let shift = 16 * i;
        match (first, inverted, wide) {
            (true, false, true) => dynasm!(ops ; .arch aarch64 ; movz X(r), c, lsl shift),
            (true, false, false) => dynasm!(ops ; .arch aarch64 ; movz W(r), c, lsl shift),
            (true, true, true) => dynasm!(ops ; .arch aarch64 ; movn X(r), c ^ 0xffff, lsl shift),
            (true, true, false) => dynasm!(ops ; .arch aarch64 ; movn W(r), c ^ 0xffff, lsl shift),
            (false, _, true) => dynasm!(ops ; .arch aarch64 ; movk X(r), c, lsl shift),
            (false, _, false) => dynasm!(ops ; .arch aarch64 ; movk W(r), c, lsl shift),
        }
        first = false;
    }
    if first {
        // Every chunk equals the fill: 0 or all ones.
        match (inverted, wide) {
            (false, true) => dynasm!(ops ; .arch aarch64 ; movz X(r), 0),
            (false, false) => dynasm!(ops ; .arch aarch64 ; movz W(r), 0),
            (true, true) => dynasm!(ops ; .arch aarch64 ; movn X(r), 0),
            (true, false) => dynasm!(ops ; .arch aarch64 ; movn W(r), 0),
        }
    }
}

/// An unshifted 12-bit add/sub/cmp immediate, if `v` is one.
pub fn imm12(v: u64) -> Option<u32> {
    (v < 4096).then_some(v as u32)
}

/// Whether `bits` (its low 32 bits when not `wide`) is encodable as the
/// bitmask immediate of `and`/`orr`/`eor` (a rotated run of ones,
/// replicated; never 0 or all ones). dynasm panics on any other value.
pub fn logical_imm(bits: u64, wide: bool) -> bool {
    if wide {
        dynasmrt::aarch64::encode_logical_immediate_64bit(bits).is_some()
    } else {
        dynasmrt::aarch64::encode_logical_immediate_32bit(bits as u32).is_some()
    }
}

/// A load or store of one register, by access size and extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    LdrX,
    LdrW,
    LdrH,
    LdrshX,
    LdrshW,
    LdrB,
    LdrsbX,
    LdrsbW,
    LdrswX,
    LdrD,
    LdrS,
    StrX,
    StrW,
    StrH,
    StrB,
    StrD,
    StrS,
}

impl Mem {
    /// Bytes accessed.
    pub fn size(self) -> i64 {
        use Mem::*;
        match self {
            LdrX | LdrD | StrX | StrD => 8,
            LdrW | LdrswX | LdrS | StrW | StrS => 4,
            LdrH | LdrshX | LdrshW | StrH => 2,
            LdrB | LdrsbX | LdrsbW | StrB => 1,
        }
    }
}

/// `op rt, [base + off]` for any 64-bit `off` (wrapping, as address
/// arithmetic does): the scaled unsigned-offset form when it fits, else
/// the unscaled ±256 form, else the offset in `x16` as an index register.
/// `base` 31 is `sp`; `rt` is an `x`/`w` or `d`/`s` register number.
pub fn mem(ops: &mut Asm, op: Mem, rt: u8, base: u8, off: i64) {
    let size = op.size();
    if off >= 0 && off % size == 0 && off / size < 4096 {
        let o = off as u32;
        use Mem::*;
        match op {
            LdrX => dynasm!(ops ; .arch aarch64 ; ldr X(rt), [XSP(base), o]),
            LdrW => dynasm!(ops ; .arch aarch64 ; ldr W(rt), [XSP(base), o]),
            LdrH => dynasm!(ops ; .arch aarch64 ; ldrh W(rt), [XSP(base), o]),
            LdrshX => dynasm!(ops ; .arch aarch64 ; ldrsh X(rt), [XSP(base), o]),
            LdrshW => dynasm!(ops ; .arch aarch64 ; ldrsh W(rt), [XSP(base), o]),
            LdrB => dynasm!(ops ; .arch aarch64 ; ldrb W(rt), [XSP(base), o]),
            LdrsbX => dynasm!(ops ; .arch aarch64 ; ldrsb X(rt), [XSP(base), o]),
            LdrsbW => dynasm!(ops ; .arch aarch64 ; ldrsb W(rt), [XSP(base), o]),
            LdrswX => dynasm!(ops ; .arch aarch64 ; ldrsw X(rt), [XSP(base), o]),
            LdrD => dynasm!(ops ; .arch aarch64 ; ldr D(rt), [XSP(base), o]),
            LdrS => dynasm!(ops ; .arch aarch64 ; ldr S(rt), [XSP(base), o]),
            StrX => dynasm!(ops ; .arch aarch64 ; str X(rt), [XSP(base), o]),
            StrW => dynasm!(ops ; .arch aarch64 ; str W(rt), [XSP(base), o]),
            StrH => dynasm!(ops ; .arch aarch64 ; strh W(rt), [XSP(base), o]),
            StrB => dynasm!(ops ; .arch aarch64 ; strb W(rt), [XSP(base), o]),
            StrD => dynasm!(ops ; .arch aarch64 ; str D(rt), [XSP(base), o]),
            StrS => dynasm!(ops ; .arch aarch64 ; str S(rt), [XSP(base), o]),
        }
    } else if (-256..256).contains(&off) {
        let o = off as i32;
        use Mem::*;
        match op {
            LdrX => dynasm!(ops ; .arch aarch64 ; ldur X(rt), [XSP(base), o]),
            LdrW => dynasm!(ops ; .arch aarch64 ; ldur W(rt), [XSP(base), o]),
            LdrH => dynasm!(ops ; .arch aarch64 ; ldurh W(rt), [XSP(base), o]),
            LdrshX => dynasm!(ops ; .arch aarch64 ; ldursh X(rt), [XSP(base), o]),
            LdrshW => dynasm!(ops ; .arch aarch64 ; ldursh W(rt), [XSP(base), o]),
            LdrB => dynasm!(ops ; .arch aarch64 ; ldurb W(rt), [XSP(base), o]),
            LdrsbX => dynasm!(ops ; .arch aarch64 ; ldursb X(rt), [XSP(base), o]),
            LdrsbW => dynasm!(ops ; .arch aarch64 ; ldursb W(rt), [XSP(base), o]),
            LdrswX => dynasm!(ops ; .arch aarch64 ; ldursw X(rt), [XSP(base), o]),
            LdrD => dynasm!(ops ; .arch aarch64 ; ldur D(rt), [XSP(base), o]),
            LdrS => dynasm!(ops ; .arch aarch64 ; ldur S(rt), [XSP(base), o]),
            StrX => dynasm!(ops ; .arch aarch64 ; stur X(rt), [XSP(base), o]),
            StrW => dynasm!(ops ; .arch aarch64 ; stur W(rt), [XSP(base), o]),
            StrH => dynasm!(ops ; .arch aarch64 ; sturh W(rt), [XSP(base), o]),
            StrB => dynasm!(ops ; .arch aarch64 ; sturb W(rt), [XSP(base), o]),
            StrD => dynasm!(ops ; .arch aarch64 ; stur D(rt), [XSP(base), o]),
            StrS => dynasm!(ops ; .arch aarch64 ; stur S(rt), [XSP(base), o]),
        }
    } else {
        mov_imm(ops, X16, off as u64, true);
        use Mem::*;
        match op {
            LdrX => dynasm!(ops ; .arch aarch64 ; ldr X(rt), [XSP(base), X(X16)]),
            LdrW => dynasm!(ops ; .arch aarch64 ; ldr W(rt), [XSP(base), X(X16)]),
            LdrH => dynasm!(ops ; .arch aarch64 ; ldrh W(rt), [XSP(base), X(X16)]),
            LdrshX => dynasm!(ops ; .arch aarch64 ; ldrsh X(rt), [XSP(base), X(X16)]),
            LdrshW => dynasm!(ops ; .arch aarch64 ; ldrsh W(rt), [XSP(base), X(X16)]),
            LdrB => dynasm!(ops ; .arch aarch64 ; ldrb W(rt), [XSP(base), X(X16)]),
            LdrsbX => dynasm!(ops ; .arch aarch64 ; ldrsb X(rt), [XSP(base), X(X16)]),
            LdrsbW => dynasm!(ops ; .arch aarch64 ; ldrsb W(rt), [XSP(base), X(X16)]),
            LdrswX => dynasm!(ops ; .arch aarch64 ; ldrsw X(rt), [XSP(base), X(X16)]),
            LdrD => dynasm!(ops ; .arch aarch64 ; ldr D(rt), [XSP(base), X(X16)]),
            LdrS => dynasm!(ops ; .arch aarch64 ; ldr S(rt), [XSP(base), X(X16)]),
            StrX => dynasm!(ops ; .arch aarch64 ; str X(rt), [XSP(base), X(X16)]),
            StrW => dynasm!(ops ; .arch aarch64 ; str W(rt), [XSP(base), X(X16)]),
            StrH => dynasm!(ops ; .arch aarch64 ; strh W(rt), [XSP(base), X(X16)]),
            StrB => dynasm!(ops ; .arch aarch64 ; strb W(rt), [XSP(base), X(X16)]),
            StrD => dynasm!(ops ; .arch aarch64 ; str D(rt), [XSP(base), X(X16)]),
            StrS => dynasm!(ops ; .arch aarch64 ; str S(rt), [XSP(base), X(X16)]),
        }
    }
}

/// `xd = sp + off` for `0 <= off < 2^32`.
pub fn add_sp(ops: &mut Asm, d: u8, off: u64) {
    if let Some(i) = imm12(off) {
        dynasm!(ops ; .arch aarch64 ; add XSP(d), sp, i);
    } else if off < (1 << 24) && off & 0xfff == 0 {
        let hi = (off >> 12) as u32;
        dynasm!(ops ; .arch aarch64 ; add XSP(d), sp, hi, lsl 12);
    } else {
        mov_imm(ops, X16, off, true);
        dynasm!(ops ; .arch aarch64 ; mov XSP(d), sp ; add X(d), X(d), X(X16));
    }
}

/// The frame record and a frame of `frame` bytes below it:
/// `stp x29, x30, [sp, #-16]!; mov x29, sp; sub sp, sp, frame`, touching
/// every page on the way down when the frame is larger than a page so a
/// guard page is never skipped. `frame` is a multiple of 16.
pub fn enter_frame(ops: &mut Asm, frame: u64) {
    dynasm!(ops ; .arch aarch64 ; stp x29, x30, [sp, #-16]! ; mov x29, sp);
    if frame > 4096 {
        mov_imm(ops, X17, frame / 4096, true);
        dynasm!(ops ; .arch aarch64
            ; probe:
            ; sub sp, sp, 1, lsl 12
            ; str xzr, [sp]
            ; subs x17, x17, 1
            ; b.ne <probe
        );
        let rest = (frame % 4096) as u32;
        if rest != 0 {
            dynasm!(ops ; .arch aarch64 ; sub sp, sp, rest);
        }
    } else if frame == 4096 {
        dynasm!(ops ; .arch aarch64 ; sub sp, sp, 1, lsl 12);
    } else if frame > 0 {
        let f = frame as u32;
        dynasm!(ops ; .arch aarch64 ; sub sp, sp, f);
    }
}

/// Drops the frame and returns: `mov sp, x29; ldp x29, x30, [sp], #16;
/// ret`.
pub fn leave_frame(ops: &mut Asm) {
    dynasm!(ops ; .arch aarch64 ; mov sp, x29 ; ldp x29, x30, [sp], #16 ; ret);
}

/// Appends one raw instruction word (little-endian).
pub fn word(ops: &mut Asm, w: u32) {
    ops.extend(w.to_le_bytes().iter());
}

/// `bl #0`, to be patched by an `Arm64Call26` relocation.
pub const BL: u32 = 0x9400_0000;
/// `adrp xd, #0`, patched by `Arm64AdrpPage21`.
pub fn adrp(d: u8) -> u32 {
    0x9000_0000 | d as u32
}
/// `add xd, xn, #0`, patched by `Arm64AddLo12`.
pub fn add_lo12(d: u8, n: u8) -> u32 {
    0x9100_0000 | (n as u32) << 5 | d as u32
}
/// `ldr xt, #8` (a literal two words ahead).
pub fn ldr_lit_8(t: u8) -> u32 {
    0x5800_0000 | 2 << 5 | t as u32
}
/// `b #12` (over a literal).
pub const B_12: u32 = 0x1400_0003;
/// `nop`.
pub const NOP: u32 = 0xd503_201f;

/// The condition of an integer compare opcode.
pub fn int_cond(op: Opcode) -> Option<Cond> {
    Some(match op {
        Opcode::Eq => Cond::Eq,
        Opcode::Ne => Cond::Ne,
        Opcode::Slt => Cond::Lt,
        Opcode::Sle => Cond::Le,
        Opcode::Sgt => Cond::Gt,
        Opcode::Sge => Cond::Ge,
        Opcode::Ult => Cond::Lo,
        Opcode::Ule => Cond::Ls,
        Opcode::Ugt => Cond::Hi,
        Opcode::Uge => Cond::Hs,
        _ => return None,
    })
}

/// The condition of a float compare opcode after `fcmp`. `fcmp` sets
/// NZCV = 0011 on unordered, so each of these is false on NaN except `ne`,
/// which `fne` wants true.
pub fn float_cond(op: Opcode) -> Option<Cond> {
    Some(match op {
        Opcode::Feq => Cond::Eq,
        Opcode::Fne => Cond::Ne,
        Opcode::Flt => Cond::Mi,
        Opcode::Fle => Cond::Ls,
        Opcode::Fgt => Cond::Gt,
        Opcode::Fge => Cond::Ge,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(f: impl FnOnce(&mut Asm)) -> Vec<u32> {
        let mut ops = Asm::new(0);
        f(&mut ops);
        let code = ops.finalize().expect("finalize");
        code.chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Evaluates a movz/movn/movk sequence on `x0`.
    fn eval_mov(ws: &[u32]) -> u64 {
        let mut x = 0u64;
        for &w in ws {
            let sf = w >> 31 == 1;
            let opc = (w >> 29) & 3;
            let hw = (w >> 21) & 3;
            let imm = ((w >> 5) & 0xffff) as u64;
            let sh = 16 * hw;
            x = match opc {
                0 => !(imm << sh),
                2 => imm << sh,
                3 => (x & !(0xffff << sh)) | imm << sh,
                _ => panic!("not a move: {w:08x}"),
            };
            if !sf {
                x &= 0xffff_ffff;
            }
        }
        x
    }

    #[test]
    fn mov_imm_builds_every_pattern_in_few_instructions() {
        let cases: [(u64, bool, usize); 9] = [
            (0, true, 1),
            (u64::MAX, true, 1),
            (0x1234, true, 1),
            (0xffff_ffff_ffff_fffe, true, 1),
            (0x1234_0000_5678_0000, true, 2),
            (0x8000_0000_0000_0000, true, 1),
            (0x0123_4567_89ab_cdef, true, 4),
            (0xffff_ffff, false, 1),
            (0x8000_0001, false, 2),
        ];
        for (v, wide, n) in cases {
            let ws = words(|ops| mov_imm(ops, 0, v, wide));
            assert_eq!(ws.len(), n, "{v:#x}");
            let expect = if wide { v } else { v & 0xffff_ffff };
            assert_eq!(eval_mov(&ws), expect, "{v:#x}");
        }
    }

    #[test]
    fn mem_picks_an_encodable_form_for_any_offset() {
        // Scaled, unscaled, and register-offset forms; none may panic.
        for off in [
            0i64,
            8,
            32760,
            32768,
            -8,
            255,
            -256,
            -257,
            3,
            1 << 40,
            i64::MIN,
        ] {
            for op in [Mem::LdrX, Mem::StrW, Mem::LdrsbX, Mem::LdrD, Mem::StrH] {
                let ws = words(|ops| mem(ops, op, 1, 31, off));
                assert!(!ws.is_empty());
            }
        }
        let ws = words(|ops| mem(ops, Mem::LdrX, 1, 2, 16));
        // ldr x1, [x2, #16]: unsigned offset form, imm12 = 2.
        assert_eq!(ws, vec![0xf940_0841]);
        let ws = words(|ops| mem(ops, Mem::LdrX, 1, 2, -8));
        // ldur x1, [x2, #-8]
        assert_eq!(ws, vec![0xf85f_8041]);
    }

    #[test]
    fn logical_immediates_are_recognized() {
        for (v, wide, ok) in [
            (0xff, true, true),
            (0xff00_0000_0000_0000, true, true),
            (0x5555_5555_5555_5555, true, true),
            (0x0f0f_0f0f, false, true),
            (0x8000_0001, false, true),
            (0, true, false),
            (u64::MAX, true, false),
            (0xffff_ffff, false, false),
            (0x1234, true, false),
            (5, true, false),
        ] {
            assert_eq!(logical_imm(v, wide), ok, "{v:#x}");
        }
        // An encodable one assembles without panicking.
        let ws =
            words(|ops| dynasm!(ops ; .arch aarch64 ; and XSP(0), X(1), 0xff00_0000_0000_0000u64));
        assert_eq!(ws.len(), 1);
    }

    #[test]
    fn relocated_words_have_the_expected_encodings() {
        assert_eq!(adrp(16), 0x9000_0010);
        assert_eq!(add_lo12(16, 16), 0x9100_0210);
        assert_eq!(ldr_lit_8(16), 0x5800_0050);
    }
}
