//! Emission of the float instructions (`f32`/`f64` values live in xmm
//! registers or slots; see [`super`]): arithmetic, compares, `select`,
//! conversions, bitcasts, loads and stores.
//!
//! Each sequence mirrors the multi-pass pipeline's (`emit.rs`) exactly, so
//! both paths agree bit for bit on every input: NaN handling of compares
//! (`ucomis` sets ZF, PF and CF on unordered), the saturating `ftosi` /
//! `ftoui` (NaN gives 0), `uitof` of a 64-bit value with the top bit set.
//! Scratch registers: `xmm14`, `xmm15`, `r11` and `rax` (never homes).
//! A slot holds a float's bits in its low 4 or 8 bytes.

use super::emit::{bad, src_of_home, Em};
use super::enc::sse::{
    scalar, CVTF, CVTSI2, CVTT2SI, FADD, FMUL, MOVS_LOAD, MOVS_STORE, PD, PS, SD, SQRT, UCOMI,
};
use super::enc::{Label, AND, CC_A, CC_AE, CC_E, CC_NE, CMP, OR, XOR};
use super::inst::{Opd, LIT};
use super::{Src, SLOT0, XMM0};
use crate::error::Result;
use crate::ir::{Inst, InstKind, Opcode, Operand, Type};
use crate::isa::x86_64::regs::{R11, RAX};

/// Condition codes used here beyond [`super::enc`]'s.
const CC_NO: u8 = 0x1;
const CC_S: u8 = 0x8;
const CC_P: u8 = 0xa;
/// A float compare's condition that is no single flag test: ordered and
/// equal ([`CC_FEQ`]), unordered or not equal ([`CC_FNE`]). Each is the
/// other's negation, and `cc ^ 1` inverts them as it inverts the others.
pub const CC_FEQ: u8 = 0x10;
pub const CC_FNE: u8 = 0x11;

/// The xmm scratch registers.
const X14: u8 = 14;
const X15: u8 = 15;

/// `test r32, r32`.
const TEST: u8 = 0x85;

impl Em<'_> {
    /// `jcc l` for any condition [`Em::compare`] returns.
    pub fn jcc_any(&mut self, cc: u8, l: Label) {
        match cc {
            CC_FEQ => {
                let j = self.c.jcc8(CC_P);
                self.c.jcc(CC_E, l);
                self.c.patch8(j);
            }
            CC_FNE => {
                self.c.jcc(CC_P, l);
                self.c.jcc(CC_NE, l);
            }
            _ => self.c.jcc(cc, l),
        }
    }

    /// `x = s` (the low 64 bits; a slot as 8 bytes).
    #[inline]
    pub fn xload(&mut self, x: u8, s: Src) {
        match s {
            Src::X(y) => {
                if y != x {
                    self.c.movaps(x, y);
                }
            }
            Src::S(k) => {
                let m = self.c.slot(k);
                self.c.sse_rm_at(SD, false, MOVS_LOAD, x, m);
            }
            // xorps leaves the flags alone (a select relies on it).
            Src::I(0) => self.c.xzero(x),
            Src::I(b) => {
                self.c.mov_imm(R11, b);
                self.c.movq_to_x(true, x, R11);
            }
            Src::R(r) => self.c.movq_to_x(true, x, r),
        }
    }

    /// `movsd x, [base + disp]`.
    #[inline]
    pub fn xload_mem(&mut self, x: u8, base: u8, disp: i32) {
        self.c.sse_rm(SD, false, MOVS_LOAD, x, base, disp);
    }

    /// `movsd [rbp + o], x`.
    #[inline]
    pub fn xstore_slot(&mut self, x: u8, o: i32) {
        self.c.sse_rm(SD, false, MOVS_STORE, x, 5, o);
    }

    /// An xmm register holding `s`: its own, or `scratch` loaded with it.
    #[inline]
    fn xin(&mut self, s: Src, scratch: u8) -> u8 {
        match s {
            Src::X(x) => x,
            _ => {
                self.xload(scratch, s);
                scratch
            }
        }
    }

    /// The xmm register to compute a result with home `dst` in, and
    /// whether it must be stored to `dst` afterwards.
    #[inline]
    fn xdreg(dst: Src) -> (u8, bool) {
        match dst {
            Src::X(x) => (x, false),
            _ => (X15, true),
        }
    }

    /// `[pfx] op d, s` with `s` a register, a slot or a constant (through
    /// `xmm14`).
    #[inline]
    fn xop(&mut self, pfx: u8, w: bool, op: u8, d: u8, s: Src) {
        match s {
            Src::X(y) => self.c.sse_rr(pfx, w, op, d, y),
            Src::S(k) => {
                let m = self.c.slot(k);
                self.c.sse_rm_at(pfx, w, op, d, m);
            }
            _ => {
                let y = self.xin(s, X14);
                self.c.sse_rr(pfx, w, op, d, y);
            }
        }
    }

    /// `x = a` (as [`Em::xload`]) on a plain operand.
    #[inline(always)]
    fn xload_opd(&mut self, x: u8, a: Opd) {
        if a.h.wrapping_sub(XMM0) < SLOT0 - XMM0 {
            let y = (a.h - XMM0) as u8;
            if y != x {
                self.c.movaps(x, y);
            }
        } else if a.h >= SLOT0 && a.h != LIT {
            let m = self.c.slot(a.h - SLOT0);
            self.c.sse_rm_at(SD, false, MOVS_LOAD, x, m);
        } else {
            self.xload(x, a.src());
        }
    }

    /// `[pfx] op d, b` (as [`Em::xop`] without REX.W) on a plain operand.
    #[inline(always)]
    fn xop_opd(&mut self, pfx: u8, op: u8, d: u8, b: Opd) {
        let y = if b.h.wrapping_sub(XMM0) < SLOT0 - XMM0 {
            (b.h - XMM0) as u8
        } else if b.h >= SLOT0 && b.h != LIT {
            let m = self.c.slot(b.h - SLOT0);
            return self.c.sse_rm_at(pfx, false, op, d, m);
        } else {
            self.xload(X14, b.src());
            X14
        };
        self.c.sse_rr(pfx, false, op, d, y);
    }

    /// `dh = a op b` for `fadd`, `fsub`, `fmul` or `fdiv` (`op`: its SSE
    /// opcode, [`FADD`] ...; `wide`: `f64`) with the result's home `dh`, on
    /// plain operands: inlined into [`Em::inst`]'s arm (these are most of
    /// a float program's instructions).
    #[inline(always)]
    pub(super) fn fbin(&mut self, op: u8, wide: bool, dh: u32, a: Opd, b: Opd) {
        let (mut d, mut spill) = if dh.wrapping_sub(XMM0) < SLOT0 - XMM0 {
            ((dh - XMM0) as u8, false)
        } else {
            (X15, true)
        };
        let (mut a, mut b) = (a, b);
        let xd = XMM0 + d as u32;
        if b.h == xd && a.h != xd {
            if op == FADD || op == FMUL {
                std::mem::swap(&mut a, &mut b);
            } else {
                d = X15;
                spill = true;
            }
        }
        self.xload_opd(d, a);
        self.xop_opd(scalar(wide), op, d, b);
        if spill {
            if dh >= SLOT0 && dh != LIT {
                let m = self.c.slot(dh - SLOT0);
                self.c.sse_rm_at(SD, false, MOVS_STORE, d, m);
            } else {
                self.mov(src_of_home(dh), Src::X(d));
            }
        }
    }

    /// A float `load` / `store` (`d`, result home `dh`) whose pointer is
    /// in an integer register and whose offset fits 32 bits (see
    /// `fast_ptr` in `inst.rs`): the same bytes as `float_inst`'s forms.
    #[inline(always)]
    pub(super) fn fmem_fast(&mut self, d: &crate::ir::InstData, dh: u32, wide: bool) {
        let home = &self.f.home;
        let (ptr, offset) = match &d.kind {
            InstKind::Load { ptr, offset } => (*ptr, *offset),
            InstKind::Store { args, offset } => (args[1], *offset),
            _ => return,
        };
        let Operand::Value(p) = ptr else { return };
        let base = home[p.index()] as u8;
        let disp = offset as i32;
        if let InstKind::Store { args, .. } = &d.kind {
            let v = match args[0] {
                Operand::Value(v) => home[v.index()],
                Operand::Const(_) => LIT,
            };
            if v.wrapping_sub(XMM0) < SLOT0 - XMM0 {
                let x = (v - XMM0) as u8;
                self.c
                    .sse_rm(scalar(wide), false, MOVS_STORE, x, base, disp);
            } else {
                // A slot or a literal: the bits, as an integer store.
                let ty = if wide { Type::F64 } else { Type::F32 };
                let s = self.src(args[0], ty);
                self.store_mem(ty.bytes(), s, ptr, offset);
            }
            return;
        }
        let (x, spill) = if dh.wrapping_sub(XMM0) < SLOT0 - XMM0 {
            ((dh - XMM0) as u8, false)
        } else {
            (X15, true)
        };
        self.c.sse_rm(scalar(wide), false, MOVS_LOAD, x, base, disp);
        if spill {
            self.mov(src_of_home(dh), Src::X(x));
        }
    }

    /// Sets the flags for float compare `op` of `a` and `b` (type `ty`);
    /// the condition (possibly [`CC_FEQ`] / [`CC_FNE`]) that means true.
    pub fn fcompare(&mut self, op: Opcode, ty: Type, a: Operand, b: Operand) -> u8 {
        let (sa, sb) = (self.src(a, ty), self.src(b, ty));
        // flt/fle compare swapped so that "above" excludes unordered.
        let (swap, cc) = match op {
            Opcode::Feq => (false, CC_FEQ),
            Opcode::Fne => (false, CC_FNE),
            Opcode::Flt => (true, CC_A),
            Opcode::Fle => (true, CC_AE),
            Opcode::Fgt => (false, CC_A),
            _ => (false, CC_AE),
        };
        let (x, y) = if swap { (sb, sa) } else { (sa, sb) };
        let x = self.xin(x, X15);
        let pfx = if ty == Type::F64 { PD } else { PS };
        self.xop(pfx, false, UCOMI, x, y);
        cc
    }

    fn fselect(&mut self, dst: Src, c: Src, a: Src, b: Src) {
        if let Src::I(k) = c {
            let s = if k & 0xffff_ffff != 0 { a } else { b };
            self.mov(dst, s);
            return;
        }
        // Which value the fall-through path loads (the other is in place
        // first), and where.
        let (d, first, second, skip_cc) = match dst {
            Src::X(d) if a == dst && b != dst => (d, a, b, CC_NE),
            Src::X(d) => (d, b, a, CC_E),
            _ => (X15, b, a, CC_E),
        };
        self.xload(d, first);
        match c {
            Src::R(r) => self.c.rr(false, TEST, r, r),
            Src::S(k) => {
                let o = self.slot_off(k);
                // cmp dword [rbp + o], 0
                self.c.rm(false, 0x83, 7, 5, o);
                self.c.raw(&[0]);
            }
            Src::I(_) | Src::X(_) => {}
        }
        let j = self.c.jcc8(skip_cc);
        self.xload(d, second);
        self.c.patch8(j);
        if Src::X(d) != dst {
            self.mov(dst, Src::X(d));
        }
    }

    /// `fneg` / `fabs`: the sign bit of the raw bits, in `r11`.
    fn sign_op(&mut self, neg: bool, wide: bool, dst: Src, a: Src) {
        match a {
            Src::X(y) => self.c.movq_from_x(wide, R11, y),
            Src::S(k) => {
                let o = self.slot_off(k);
                self.c.load(wide, R11, 5, o);
            }
            _ => self.load(R11, a),
        }
        let bit = if wide { 63 } else { 31 };
        if neg {
            self.c.btc(true, R11, bit);
        } else {
            self.c.btr(true, R11, bit);
        }
        match dst {
            Src::X(x) => self.c.movq_to_x(wide, x, R11),
            _ => self.mov(dst, Src::R(R11)),
        }
    }

    /// `uitof` / `sitof` from `from` to `to`.
    fn itof(&mut self, signed: bool, from: Type, to: Type, dst: Src, a: Src) {
        let (wf, wt) = (from == Type::I64, to == Type::F64);
        let (x, spill) = Self::xdreg(dst);
        let pfx = scalar(wt);
        self.c.xzero(x);
        if signed {
            match a {
                Src::R(r) => self.c.sse_rr(pfx, wf, CVTSI2, x, r),
                Src::S(k) => {
                    let o = self.slot_off(k);
                    self.c.sse_rm(pfx, wf, CVTSI2, x, 5, o);
                }
                _ => {
                    self.load(R11, a);
                    self.c.sse_rr(pfx, wf, CVTSI2, x, R11);
                }
            }
        } else if !wf {
            // Unsigned 32-bit: zero-extend, convert as signed 64.
            match a {
                Src::R(r) => self.c.mov_rr32(R11, r),
                Src::S(k) => {
                    let o = self.slot_off(k);
                    self.c.load(false, R11, 5, o);
                }
                Src::I(b) => self.c.mov_imm(R11, b & 0xffff_ffff),
                Src::X(_) => {
                    self.load(R11, a);
                    self.c.mov_rr32(R11, R11);
                }
            }
            self.c.sse_rr(pfx, true, CVTSI2, x, R11);
        } else {
            // Unsigned 64-bit with the top bit set: halve (keeping the low
            // bit for correct rounding), convert, double.
            let r = self.in_reg(a, RAX);
            self.c.rr(true, TEST, r, r);
            let big = self.c.jcc8(CC_S);
            self.c.sse_rr(pfx, true, CVTSI2, x, r);
            let done = self.c.jmp8();
            self.c.patch8(big);
            self.c.mov_rr(R11, r);
            self.c.shift_imm(true, 5, R11, 1);
            if r != RAX {
                self.c.mov_rr32(RAX, r);
            }
            self.c.alu_ri(false, AND, RAX, 1);
            self.c.rr(true, OR, R11, RAX);
            self.c.sse_rr(pfx, true, CVTSI2, x, R11);
            self.c.sse_rr(pfx, false, FADD, x, x);
            self.c.patch8(done);
        }
        if spill {
            self.mov(dst, Src::X(x));
        }
    }

    /// `ftosi` from `from` to `to`: truncation, saturating, NaN → 0.
    fn ftosi(&mut self, from: Type, to: Type, dst: Src, a: Src) {
        let (wf, wt) = (from == Type::F64, to == Type::I64);
        let (r, spill) = Self::dreg(dst, R11);
        let xa = self.xin(a, X15);
        // cvtt gives MIN (the "integer indefinite") for NaN and out of
        // range; only then is the input inspected.
        self.c.sse_rr(scalar(wf), wt, CVTT2SI, r, xa);
        self.c.alu_ri(wt, CMP, r, 1);
        let done1 = self.c.jcc8(CC_NO);
        self.c
            .sse_rr(if wf { PD } else { PS }, false, UCOMI, xa, xa);
        let nan = self.c.jcc8(CC_P);
        self.c.movq_from_x(wf, r, xa);
        self.c.rr(wf, TEST, r, r);
        if wt {
            self.c.movabs(r, i64::MIN as u64);
        } else {
            self.c.mov_imm(r, i32::MIN as u32 as u64);
        }
        let done2 = self.c.jcc8(CC_S);
        if wt {
            self.c.movabs(r, i64::MAX as u64);
        } else {
            self.c.mov_imm(r, i32::MAX as u64);
        }
        let done3 = self.c.jmp8();
        self.zero_and_join(r, &[nan], &[done1, done2, done3]);
        if spill {
            self.mov(dst, Src::R(r));
        }
    }

    /// The shared end of the saturating conversions: the jumps in `zeros`
    /// land on `r = 0`, those in `joins` after it.
    fn zero_and_join(&mut self, r: u8, zeros: &[usize], joins: &[usize]) {
        for &j in zeros {
            self.c.patch8(j);
        }
        self.c.rr(false, XOR, r, r);
        for &j in joins {
            self.c.patch8(j);
        }
    }

    /// `ftoui` from `from` to `to`: truncation, saturating, NaN → 0.
    fn ftoui(&mut self, from: Type, to: Type, dst: Src, a: Src) {
        let wf = from == Type::F64;
        let (r, spill) = Self::dreg(dst, R11);
        let xa = self.xin(a, X15);
        let ucomi = if wf { PD } else { PS };
        if to == Type::I32 {
            // A 64-bit signed conversion covers every u32 exactly.
            self.c.sse_rr(scalar(wf), true, CVTT2SI, r, xa);
            self.c.alu_ri(true, CMP, r, 1);
            let inrange = self.c.jcc8(CC_NO);
            // Indefinite: NaN or |x| >= 2^63.
            self.c.sse_rr(ucomi, false, UCOMI, xa, xa);
            let zero1 = self.c.jcc8(CC_P);
            self.c.movq_from_x(wf, RAX, xa);
            self.c.rr(wf, TEST, RAX, RAX);
            let zero2 = self.c.jcc8(CC_S);
            self.c.mov_imm(r, u32::MAX as u64);
            let done1 = self.c.jmp8();
            self.c.patch8(inrange);
            self.c.rr(true, TEST, r, r);
            let zero3 = self.c.jcc8(CC_S);
            self.c.mov_rr(RAX, r);
            self.c.shift_imm(true, 5, RAX, 32);
            let done2 = self.c.jcc8(CC_E);
            self.c.mov_imm(r, u32::MAX as u64);
            let done3 = self.c.jmp8();
            self.zero_and_join(r, &[zero1, zero2, zero3], &[done1, done2, done3]);
        } else {
            self.c.sse_rr(ucomi, false, UCOMI, xa, xa);
            let zero1 = self.c.jcc8(CC_P);
            // 2^63 in the source type.
            if wf {
                self.c.mov_imm(RAX, 0x43e0_0000_0000_0000);
            } else {
                self.c.mov_imm(RAX, 0x5f00_0000);
            }
            self.c.movq_to_x(wf, X14, RAX);
            self.c.sse_rr(ucomi, false, UCOMI, xa, X14);
            let big = self.c.jcc8(CC_AE);
            self.c.sse_rr(scalar(wf), true, CVTT2SI, r, xa);
            self.c.rr(true, TEST, r, r);
            let zero2 = self.c.jcc8(CC_S);
            let done1 = self.c.jmp8();
            // x - 2^63, as (-2^63) + x.
            self.c.patch8(big);
            self.c.btc(wf, RAX, if wf { 63 } else { 31 });
            self.c.movq_to_x(wf, X14, RAX);
            self.c.sse_rr(scalar(wf), false, FADD, X14, xa);
            self.c.sse_rr(scalar(wf), true, CVTT2SI, r, X14);
            // x - 2^63 >= 2^63 converts to indefinite (negative): saturate.
            self.c.rr(true, TEST, r, r);
            let max = self.c.jcc8(CC_S);
            self.c.btc(true, r, 63);
            let done2 = self.c.jmp8();
            self.c.patch8(max);
            self.c.mov_imm(r, u64::MAX);
            let done3 = self.c.jmp8();
            self.zero_and_join(r, &[zero1, zero2], &[done1, done2, done3]);
        }
        if spill {
            self.mov(dst, Src::R(r));
        }
    }

    /// `bitcast` between `from` and `to` (same width, other class).
    fn bitcast(&mut self, from: Type, to: Type, dst: Src, a: Src) {
        let w = to.bytes() == 8;
        if from.is_float() {
            let (r, spill) = Self::dreg(dst, R11);
            match a {
                Src::X(y) => self.c.movq_from_x(w, r, y),
                Src::S(k) => {
                    let o = self.slot_off(k);
                    self.c.load(w, r, 5, o);
                }
                _ => self.load(r, a),
            }
            if spill {
                self.mov(dst, Src::R(r));
            }
        } else {
            let (x, spill) = Self::xdreg(dst);
            match a {
                Src::R(r) => self.c.movq_to_x(w, x, r),
                Src::S(k) => {
                    let o = self.slot_off(k);
                    self.c.sse_rm(scalar(w), false, MOVS_LOAD, x, 5, o);
                }
                _ => self.xload(x, a),
            }
            if spill {
                self.mov(dst, Src::X(x));
            }
        }
    }

    /// Emits float instruction `i` (result home `dst`): the float opcodes,
    /// and `select`, `load`, `store` of a float type.
    pub(super) fn float_inst(&mut self, i: Inst, dst: Src) -> Result<()> {
        use Opcode::*;
        let func = self.func;
        let d = &func.insts[i.index()];
        let ty = d.ty.unwrap_or(Type::F64);
        let wide = ty.bytes() == 8;
        match (d.opcode, &d.kind) {
            (Feq | Fne | Flt | Fle | Fgt | Fge, InstKind::Binary { args }) => {
                let (r, spill) = Self::dreg(dst, RAX);
                if matches!(d.opcode, Feq | Fne) {
                    // Before the flags are set (0 is an `xor`).
                    self.c.mov_imm(r, (d.opcode == Fne) as u64);
                }
                match self.fcompare(d.opcode, ty, args[0], args[1]) {
                    CC_FEQ | CC_FNE => {
                        let j = self.c.jcc8(CC_P);
                        let cc = if d.opcode == Feq { CC_E } else { CC_NE };
                        self.c.setcc8(cc, r);
                        self.c.patch8(j);
                    }
                    cc => self.c.setcc(cc, r),
                }
                if spill {
                    self.mov(dst, Src::R(r));
                }
            }
            (Select, InstKind::Select { args }) => {
                let (a, b) = (self.src(args[1], ty), self.src(args[2], ty));
                let c = self.src(args[0], Type::I32);
                self.fselect(dst, c, a, b);
            }
            (Load, InstKind::Load { ptr, offset }) => {
                let m = self.mem(*ptr, *offset);
                let (x, spill) = Self::xdreg(dst);
                self.xmem(scalar(wide), MOVS_LOAD, x, m);
                if spill {
                    self.mov(dst, Src::X(x));
                }
            }
            (Store, InstKind::Store { args, offset }) => {
                let v = self.src(args[0], ty);
                match v {
                    Src::X(x) => {
                        let m = self.mem(args[1], *offset);
                        self.xmem(scalar(wide), MOVS_STORE, x, m);
                    }
                    // The bits, as an integer store.
                    _ => self.store_mem(ty.bytes(), v, args[1], *offset),
                }
            }
            (_, &InstKind::Unary { arg }) => {
                // A literal operand takes the type the opcode fixes for it
                // (`fext` reads an `f32`, `bitcast.i64` an `f64`).
                let literal_ty = d
                    .opcode
                    .info()
                    .operands
                    .first()
                    .and_then(|o| o.literal_type(Some(ty)))
                    .unwrap_or(ty);
                let from = func.operand_type(arg, literal_ty);
                let a = self.src(arg, from);
                match d.opcode {
                    Fsqrt => {
                        let (x, spill) = Self::xdreg(dst);
                        self.xop(scalar(wide), false, SQRT, x, a);
                        if spill {
                            self.mov(dst, Src::X(x));
                        }
                    }
                    Fneg | Fabs => self.sign_op(d.opcode == Fneg, wide, dst, a),
                    Fext | Ftrunc => {
                        let (x, spill) = Self::xdreg(dst);
                        let pfx = if d.opcode == Fext { scalar(false) } else { SD };
                        self.xop(pfx, false, CVTF, x, a);
                        if spill {
                            self.mov(dst, Src::X(x));
                        }
                    }
                    Sitof | Uitof => self.itof(d.opcode == Sitof, from, ty, dst, a),
                    Ftosi => self.ftosi(from, ty, dst, a),
                    Ftoui => self.ftoui(from, ty, dst, a),
                    Bitcast => self.bitcast(from, ty, dst, a),
                    _ => return Err(bad(func, "float instruction")),
                }
            }
            _ => return Err(bad(func, "float instruction")),
        }
        Ok(())
    }
}
