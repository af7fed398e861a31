//! Emission of one IR instruction from its operands' homes (the fast
//! generator's instruction selection; see [`super`]).
//!
//! Every form reads its operands before it writes its result, so a result
//! may share the home of an operand whose range ends at the instruction.
//! A result whose home is a slot is computed in `r11` (or `rax`) and
//! stored.

use super::emit::{bad, src_of_home, Em};
use super::enc::{self, ADD, AND, CC_O, CMP, OR, SUB, XOR};
use super::{Src, SLOT0, XMM0};
use crate::error::{Result, TrapCode};
use crate::ir::{Block, Inst, InstKind, Opcode, Operand, Type};
use crate::isa::x86_64::regs::{R11, RAX, RCX, RDX};

/// `imul r, r/m` (0f af) as an ALU opcode of [`Em::alu_src`].
pub const MUL: u8 = 0xaf;

/// The condition code of an integer compare.
pub fn cc_of(op: Opcode) -> Option<u8> {
    Some(match op {
        Opcode::Eq => enc::CC_E,
        Opcode::Ne => enc::CC_NE,
        Opcode::Slt => enc::CC_L,
        Opcode::Sle => enc::CC_LE,
        Opcode::Sgt => enc::CC_G,
        Opcode::Sge => enc::CC_GE,
        Opcode::Ult => enc::CC_B,
        Opcode::Ule => enc::CC_BE,
        Opcode::Ugt => enc::CC_A,
        Opcode::Uge => enc::CC_AE,
        _ => return None,
    })
}

/// Per opcode (`Opcode as usize`): the ALU opcode byte of `add`, `sub`,
/// `and`, `or` and `xor` (see [`enc::ADD`]), [`MUL`] for `mul` (its forms
/// checked at run time), the ModRM extension of `shl`,
/// `shr` and `sar`, the SSE opcode of `fadd`, `fsub`, `fmul` and `fdiv`
/// (see [`enc::sse::FADD`]); 0 for the others. The forms that differ only in this
/// byte share one arm of [`Em::inst`]'s jump on the opcode: one target
/// for the five ALU operations and `mul`, one for the shifts, so the jump is
/// predictable where those operations are mixed (an unpredictable
/// indirect jump cost more than the table load).
static OP_BYTE: [u8; Opcode::ALL.len()] = {
    let mut t = [0; Opcode::ALL.len()];
    t[Opcode::Add as usize] = ADD;
    t[Opcode::Sub as usize] = SUB;
    t[Opcode::Mul as usize] = MUL;
    t[Opcode::And as usize] = AND;
    t[Opcode::Or as usize] = OR;
    t[Opcode::Xor as usize] = XOR;
    t[Opcode::Shl as usize] = 4;
    t[Opcode::Shr as usize] = 5;
    t[Opcode::Sar as usize] = 7;
    t[Opcode::Fadd as usize] = enc::sse::FADD;
    t[Opcode::Fsub as usize] = enc::sse::FSUB;
    t[Opcode::Fmul as usize] = enc::sse::FMUL;
    t[Opcode::Fdiv as usize] = enc::sse::FDIV;
    t
};

/// The home of a literal in an [`Opd`] (no value has it).
pub(super) const LIT: u32 = u32::MAX;

/// An operand of the integer forms as two plain scalars: its home (a
/// register below [`XMM0`], an xmm register below [`SLOT0`], else a slot;
/// see [`src_of_home`]), or [`LIT`] and the literal's bits. The forms
/// that run once per IR instruction take these instead of [`Src`], whose
/// enum LLVM packed, copied and unpacked per operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Opd {
    pub h: u32,
    pub k: u64,
}

impl Opd {
    /// The operand `s` stands for.
    #[inline(always)]
    pub fn of_src(s: Src) -> Opd {
        match s {
            Src::R(r) => Opd { h: r as u32, k: 0 },
            Src::X(x) => Opd {
                h: XMM0 + x as u32,
                k: 0,
            },
            Src::S(k) => Opd { h: SLOT0 + k, k: 0 },
            Src::I(b) => Opd { h: LIT, k: b },
        }
    }

    /// The same operand as a [`Src`].
    #[inline(always)]
    pub fn src(self) -> Src {
        if self.h == LIT {
            Src::I(self.k)
        } else {
            src_of_home(self.h)
        }
    }

    /// Whether it is a stack slot.
    #[inline(always)]
    fn is_slot(self) -> bool {
        self.h >= SLOT0 && self.h != LIT
    }
}

/// The result operand of an instruction whose result's home is `dh`
/// ([`LIT`]: no result, as the literal 0).
#[inline(always)]
fn dst_src(dh: u32) -> Src {
    Opd { h: dh, k: 0 }.src()
}

/// Operand `op` of type `ty` with the values' homes `home` (the forms
/// that read several take the homes once).
#[inline(always)]
fn opd_in(home: &[u32], op: Operand, ty: Type) -> Opd {
    match op {
        Operand::Value(v) => Opd {
            h: home[v.index()],
            k: 0,
        },
        Operand::Const(c) => Opd {
            h: LIT,
            k: c.bits(ty),
        },
    }
}

/// Whether `[ptr + offset]` is a register base and a 32-bit displacement
/// (no folded address, no literal pointer): [`Em::fmem_fast`]'s case.
#[inline(always)]
fn fast_ptr(home: &[u32], ptr: Operand, offset: i64) -> bool {
    match ptr {
        Operand::Value(p) => home[p.index()] < XMM0 && offset as i32 as i64 == offset,
        Operand::Const(_) => false,
    }
}

impl Em<'_> {
    /// Operand `op` of type `ty`.
    #[inline(always)]
    pub(super) fn opd(&self, op: Operand, ty: Type) -> Opd {
        opd_in(&self.f.home, op, ty)
    }

    /// `r = a` (64 bits; as [`Em::load`]).
    #[inline(always)]
    pub(super) fn load_opd(&mut self, r: u8, a: Opd) {
        if a.h < XMM0 {
            if a.h != r as u32 {
                self.c.mov_rr(r, a.h as u8);
            }
        } else if a.is_slot() {
            let m = self.c.slot(a.h - SLOT0);
            self.c.rm_at(true, 0x8b, r, m);
        } else {
            self.load(r, a.src());
        }
    }

    /// Home `dh` (the result's) `= r` (as [`Em::mov`]).
    #[inline(always)]
    fn store_res(&mut self, dh: u32, r: u8) {
        if dh >= SLOT0 && dh != LIT {
            let m = self.c.slot(dh - SLOT0);
            self.c.rm_at(true, 0x89, r, m);
        } else {
            self.mov(dst_src(dh), Src::R(r));
        }
    }

    /// `d = d op s` for an ALU opcode or [`MUL`] (`cmp d, s` for `CMP`).
    #[inline(always)]
    pub(super) fn alu_src(&mut self, op: u8, w: bool, d: u8, s: Src) {
        self.alu_opd(op, w, d, Opd::of_src(s))
    }

    /// [`Em::alu_src`] of an [`Opd`]. Not recursive, so that it inlines
    /// into its callers (once per IR instruction: a call cost as much as
    /// the encoding).
    #[inline(always)]
    pub(super) fn alu_opd(&mut self, op: u8, w: bool, d: u8, s: Opd) {
        let x = if s.h < XMM0 {
            s.h as u8
        } else if s.is_slot() {
            let m = self.c.slot(s.h - SLOT0);
            if op == MUL {
                self.c.rm0f_at(w, MUL, d, m)
            } else {
                self.c.rm_at(w, op, d, m)
            }
            return;
        } else if s.h == LIT {
            match super::enc::imm32_of(w, s.k) {
                Some(k) if op == MUL => return self.c.imul_rri(w, d, d, k),
                Some(k) => return self.c.alu_ri(w, op, d, k),
                None => {
                    self.c.mov_imm(RAX, s.k);
                    RAX
                }
            }
        } else {
            // An xmm register: not produced (integer operands have
            // integer homes).
            self.load(RAX, s.src());
            RAX
        };
        if op == MUL {
            self.c.rr0f(w, MUL, d, x)
        } else {
            self.c.rr(w, op, d, x)
        }
    }

    /// The register to compute a result with home `dst` in, and whether it
    /// must be stored to `dst` afterwards.
    #[inline]
    pub(super) fn dreg(dst: Src, scratch: u8) -> (u8, bool) {
        match dst {
            Src::R(r) => (r, false),
            _ => (scratch, true),
        }
    }

    /// `dh = a op b` for the result's home `dh`.
    #[inline(always)]
    fn binop(&mut self, op: u8, w: bool, dh: u32, a: Opd, b: Opd) {
        let (mut d, mut spill) = if dh < XMM0 {
            (dh as u8, false)
        } else {
            (R11, true)
        };
        let (mut a, mut b) = (a, b);
        if b.h == d as u32 && a.h != d as u32 {
            if op != SUB {
                std::mem::swap(&mut a, &mut b);
            } else {
                d = R11;
                spill = true;
            }
        }
        if op == MUL && a.h < XMM0 && b.h == LIT && (!w || b.k as i64 as i32 as i64 == b.k as i64) {
            // Three-operand multiply by an immediate: no copy.
            self.c.imul_rri(w, d, a.h as u8, b.k as i32);
        } else {
            self.load_opd(d, a);
            self.alu_opd(op, w, d, b);
        }
        if spill {
            self.store_res(dh, d);
        }
    }

    /// `dh = a << b` (`ext`: the ModRM extension of `shl`, `shr` or
    /// `sar`, see [`OP_BYTE`]).
    #[inline(always)]
    fn shift(&mut self, ext: u8, w: bool, dh: u32, a: Opd, b: Opd) {
        let (d, spill) = if dh < XMM0 {
            (dh as u8, false)
        } else {
            (R11, true)
        };
        if b.h == LIT {
            self.load_opd(d, a);
            self.c
                .shift_imm(w, ext, d, (b.k & if w { 63 } else { 31 }) as u8);
        } else {
            // x86 masks the count by 31 / 63: "modulo the width".
            self.load_opd(RCX, b);
            self.load_opd(d, a);
            self.c.shift_cl(w, ext, d);
        }
        if spill {
            self.store_res(dh, d);
        }
    }

    fn div(&mut self, i: Inst, op: Opcode, w: bool, dst: Src, a: Src, b: Src) {
        let check_zero = !matches!(b, Src::I(k) if (if w { k } else { k & 0xffff_ffff }) != 0);
        let b = self.in_reg(b, RCX);
        self.load(RAX, a);
        if check_zero {
            let t = self.trap_label(TrapCode::DivisionByZero, i);
            self.c.rr(true, 0x85, b, b);
            self.c.jcc(enc::CC_E, t);
        }
        let signed = matches!(op, Opcode::Sdiv | Opcode::Srem);
        if signed {
            // MIN / -1 overflows: -1 divides as a negation, which sets OF
            // exactly for MIN; x % -1 is 0 for every x (idiv would fault).
            self.c.alu_ri(w, CMP, b, -1);
            let to_div = self.c.jcc8(enc::CC_NE);
            if op == Opcode::Sdiv {
                let ovf = self.trap_label(TrapCode::IntegerOverflow, i);
                self.c.grp(w, 0xf7, 3, RAX);
                self.c.jcc(CC_O, ovf);
            } else {
                self.c.rr(false, XOR, RDX, RDX);
            }
            let to_done = self.c.jmp8();
            self.c.patch8(to_div);
            // cqo / cdq
            if w {
                self.c.raw(&[0x48, 0x99]);
            } else {
                self.c.raw(&[0x99]);
            }
            self.c.grp(w, 0xf7, 7, b);
            self.c.patch8(to_done);
        } else {
            self.c.rr(false, XOR, RDX, RDX);
            self.c.grp(w, 0xf7, 6, b);
        }
        let r = if matches!(op, Opcode::Sdiv | Opcode::Udiv) {
            RAX
        } else {
            RDX
        };
        self.mov(dst, Src::R(r));
    }

    /// Emits IR instruction `i`; `next` is the block laid out after the
    /// current one.
    #[inline(always)]
    pub(super) fn inst(&mut self, i: Inst, next: Option<Block>) -> Result<()> {
        use Opcode::*;
        let func = self.func;
        let d = &func.insts[i.index()];
        // Its code from here on (the line table's entry).
        // SAFETY: `i` indexes `func.insts` (checked just above), below the
        // room `Em::body` made for its length.
        unsafe { self.lines.at_inst(self.c.off(), i) };
        let ty = d.ty.unwrap_or(Type::I64);
        let w = ty == Type::I64;
        // The result's home ([`LIT`]: none), and as a [`Src`] for the
        // forms that take one.
        let home = &self.f.home[..];
        let dh = match d.result {
            Some(r) => home[r.index()],
            None => LIT,
        };
        // (A pure instruction whose result nothing uses is not visited:
        // see [`super::DEAD`].)
        debug_assert_ne!(dh, super::DEAD);
        let dst = || dst_src(dh);
        // One jump table on the opcode; each form then takes its operands
        // from the kind (a kind that does not match is unsupported).
        let unsupported = || Err(bad(func, "unsupported instruction"));
        match d.opcode {
            Fneg | Fabs | Fsqrt | Fext | Ftrunc | Sitof | Uitof | Ftosi | Ftoui | Bitcast => {
                self.float_inst(i, dst())?
            }
            // A compare fused into its block's `br` emits nothing here
            // (only compares are fused; checked in their arms, not per
            // instruction).
            Feq | Fne | Flt | Fle | Fgt | Fge => {
                if !self.dec.fused[i.index()] {
                    self.float_inst(i, dst())?
                }
            }
            // A float load or store through a pointer in a register with
            // a 32-bit offset (most of them): `movs{s,d}` at once.
            Load | Store
                if ty.is_float()
                    && match &d.kind {
                        InstKind::Load { ptr, offset } => fast_ptr(home, *ptr, *offset),
                        InstKind::Store { args, offset } => fast_ptr(home, args[1], *offset),
                        _ => false,
                    } =>
            {
                self.fmem_fast(d, dh, ty == Type::F64)
            }
            Select | Load | Store if ty.is_float() => self.float_inst(i, dst())?,
            // The float binary operations: one arm, the SSE opcode from
            // [`OP_BYTE`].
            Fadd | Fsub | Fmul | Fdiv => {
                let InstKind::Binary { args } = &d.kind else {
                    return unsupported();
                };
                let (a, b) = (opd_in(home, args[0], ty), opd_in(home, args[1], ty));
                let op = OP_BYTE[d.opcode as usize];
                if ty == Type::F64 {
                    self.fbin(op, true, dh, a, b)
                } else {
                    self.fbin(op, false, dh, a, b)
                }
            }
            // One arm for the five ALU operations, mul and the shifts (the
            // byte that tells them apart from [`OP_BYTE`]), a copy of `binop` / `shift` per
            // width with its REX prefix logic folded: one target of the
            // jump on the opcode where these operations mix (each further
            // target mispredicted as often as the operations alternate; a
            // conditional branch on the byte costs less). An `add` folded
            // into the next instruction's address (`fast/mem.rs`; only an
            // `add` has the home [`super::FOLDED`]) emits nothing.
            Add | Sub | Mul | And | Or | Xor | Shl | Shr | Sar => {
                if dh != super::FOLDED {
                    let InstKind::Binary { args } = &d.kind else {
                        return unsupported();
                    };
                    let (a, b) = (opd_in(home, args[0], ty), opd_in(home, args[1], ty));
                    let op = OP_BYTE[d.opcode as usize];
                    // (Branches, not a `match` on the pair: LLVM makes
                    // that a jump table.)
                    if !matches!(d.opcode, Shl | Shr | Sar) {
                        if w {
                            self.binop(op, true, dh, a, b)
                        } else {
                            self.binop(op, false, dh, a, b)
                        }
                    } else if w {
                        self.shift(op, true, dh, a, b)
                    } else {
                        self.shift(op, false, dh, a, b)
                    }
                }
            }
            Sdiv | Udiv | Srem | Urem => {
                let InstKind::Binary { args } = &d.kind else {
                    return unsupported();
                };
                let (a, b) = (self.src(args[0], ty), self.src(args[1], ty));
                let dst = dst();
                // A literal divisor: multiply-high when it has a plan.
                match b {
                    Src::I(k) => match crate::opt::magic::plan(d.opcode, ty, k) {
                        Some(plan) => self.div_const(d.opcode, w, dst, a, plan, k),
                        None => self.div(i, d.opcode, w, dst, a, b),
                    },
                    _ => self.div(i, d.opcode, w, dst, a, b),
                }
            }
            Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge => {
                if self.dec.fused[i.index()] {
                    return Ok(());
                }
                let InstKind::Binary { args } = &d.kind else {
                    return unsupported();
                };
                let cc = self.compare(d.opcode, ty, args[0], args[1])?;
                let (r, spill) = if dh < XMM0 {
                    (dh as u8, false)
                } else {
                    (RAX, true)
                };
                self.c.setcc(cc, r);
                if spill {
                    self.store_res(dh, r);
                }
            }
            Copy => {
                let InstKind::Unary { arg } = &d.kind else {
                    return unsupported();
                };
                let a = self.src(*arg, ty);
                self.mov(dst(), a);
            }
            Neg | Not => {
                let InstKind::Unary { arg } = &d.kind else {
                    return unsupported();
                };
                let a = self.opd(*arg, ty);
                let (r, spill) = if dh < XMM0 {
                    (dh as u8, false)
                } else {
                    (R11, true)
                };
                self.load_opd(r, a);
                self.c.grp(w, 0xf7, if d.opcode == Neg { 3 } else { 2 }, r);
                if spill {
                    self.store_res(dh, r);
                }
            }
            Sext | Zext | Trunc => {
                let InstKind::Unary { arg } = &d.kind else {
                    return unsupported();
                };
                let from = if d.opcode == Trunc {
                    Type::I64
                } else {
                    Type::I32
                };
                let a = self.src(*arg, from);
                let dst = dst();
                let (r, spill) = Self::dreg(dst, R11);
                let sext = d.opcode == Sext;
                let a = match a {
                    Src::X(_) => Src::R(self.in_reg(a, RAX)),
                    a => a,
                };
                match a {
                    Src::R(x) if sext => self.c.rr(true, 0x63, r, x),
                    Src::R(x) => self.c.mov_rr32(r, x),
                    Src::X(_) => {}
                    Src::S(k) => {
                        let o = self.slot_off(k);
                        if sext {
                            self.c.rm(true, 0x63, r, 5, o);
                        } else {
                            self.c.load(false, r, 5, o);
                        }
                    }
                    Src::I(b) => {
                        let v = if sext {
                            b as u32 as i32 as i64 as u64
                        } else {
                            b & 0xffff_ffff
                        };
                        self.c.mov_imm(r, v);
                    }
                }
                if spill {
                    self.mov(dst, Src::R(r));
                }
            }
            Select => {
                let InstKind::Select { args } = &d.kind else {
                    return unsupported();
                };
                let (a, b) = (self.src(args[1], ty), self.src(args[2], ty));
                let dst = dst();
                match self.src(args[0], Type::I32) {
                    Src::I(c) => {
                        let s = if c & 0xffff_ffff != 0 { a } else { b };
                        self.mov(dst, s);
                    }
                    c => {
                        let a = match a {
                            Src::I(_) | Src::X(_) => Src::R(self.in_reg(a, RAX)),
                            a => a,
                        };
                        self.load(R11, b);
                        match c {
                            Src::R(x) => self.c.rr(false, 0x85, x, x),
                            Src::S(k) => {
                                let o = self.slot_off(k);
                                self.c.rm(false, 0x83, 7, 5, o);
                                self.c.raw(&[0]);
                            }
                            Src::I(_) | Src::X(_) => {}
                        }
                        // cmovne r11, a
                        match a {
                            Src::R(x) => self.c.rr0f(true, 0x45, R11, x),
                            Src::S(k) => {
                                let o = self.slot_off(k);
                                self.c.rm0f(true, 0x45, R11, 5, o);
                            }
                            Src::I(_) | Src::X(_) => {}
                        }
                        self.mov(dst, Src::R(R11));
                    }
                }
            }
            Load | Load8s | Load8u | Load16s | Load16u | Load32s | Load32u => {
                let InstKind::Load { ptr, offset } = &d.kind else {
                    return unsupported();
                };
                self.load_mem(d.opcode, ty, dst(), *ptr, *offset);
            }
            Store | Store8 | Store16 | Store32 => {
                let InstKind::Store { args, offset } = &d.kind else {
                    return unsupported();
                };
                let bytes = match d.opcode {
                    Store8 => 1,
                    Store16 => 2,
                    Store32 => 4,
                    _ => ty.bytes(),
                };
                let vty = match args[0] {
                    Operand::Value(v) => func.values[v.index()].ty,
                    _ if d.opcode == Store => ty,
                    _ => Type::I64,
                };
                let v = self.src(args[0], vty);
                self.store_mem(bytes, v, args[1], *offset);
            }
            Addr => {
                let InstKind::Addr { sym } = &d.kind else {
                    return unsupported();
                };
                self.addr(dst(), *sym)
            }
            Alloca => self.alloca(dst()),
            Call => self.call(i)?,
            Ret => {
                let InstKind::Ret { value } = &d.kind else {
                    return unsupported();
                };
                if let Some(v) = value {
                    let rt = func.sig.ret.unwrap_or(Type::I64);
                    let s = self.src(*v, rt);
                    if rt.is_float() {
                        self.xload(0, s);
                    } else {
                        self.load(RAX, s);
                    }
                }
                self.epilogue();
            }
            Jmp => {
                let InstKind::Jmp { dest } = &d.kind else {
                    return unsupported();
                };
                self.jmp_edge(dest, next)
            }
            Br => self.br(i, next)?,
            Switch => self.switch(i, next)?,
            Trap => {
                let t = self.trap_label(TrapCode::Unreachable, i);
                self.c.jmp(t);
            }
        }
        Ok(())
    }
}
