//! Emission of one IR instruction from its operands' homes (the fast
//! generator's instruction selection; see [`super`]).
//!
//! Every form reads its operands before it writes its result, so a result
//! may share the home of an operand whose range ends at the instruction.
//! A result whose home is a slot is computed in `r11` (or `rax`) and
//! stored.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::{bad, Em, Src};
use crate::error::{Result, TrapCode};
use crate::ir::{Block, Inst, InstKind, Opcode, Operand, Type};
use crate::isa::x86_64::asm::setcc;
use crate::isa::x86_64::regs::{R11, RAX, RCX, RDX};
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};

/// A two-operand integer ALU operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Mul,
    Cmp,
}

macro_rules! rr {
    ($ops:expr, $w:expr, $m:ident, $d:expr, $x:expr) => {
        if $w {
            dynasm!($ops ; .arch x64 ; $m Rq($d), Rq($x))
        } else {
            dynasm!($ops ; .arch x64 ; $m Rd($d), Rd($x))
        }
    };
}

macro_rules! rm {
    ($ops:expr, $w:expr, $m:ident, $d:expr, $o:expr) => {
        if $w {
            dynasm!($ops ; .arch x64 ; $m Rq($d), QWORD [rbp + $o])
        } else {
            dynasm!($ops ; .arch x64 ; $m Rd($d), DWORD [rbp + $o])
        }
    };
}

macro_rules! ri {
    ($ops:expr, $w:expr, $m:ident, $d:expr, $k:expr) => {
        if $w {
            dynasm!($ops ; .arch x64 ; $m Rq($d), $k)
        } else {
            dynasm!($ops ; .arch x64 ; $m Rd($d), $k)
        }
    };
}

impl Em<'_> {
    /// `d = d op s` (`cmp d, s` for [`Alu::Cmp`]).
    pub(super) fn alu_src(&mut self, op: Alu, w: bool, d: u8, s: Src) {
        let s = match s {
            Src::I(b) => {
                let k = if w {
                    i32::try_from(b as i64).ok()
                } else {
                    Some(b as u32 as i32)
                };
                match k {
                    Some(k) => {
                        let ops = &mut self.ops;
                        match op {
                            Alu::Add => ri!(ops, w, add, d, k),
                            Alu::Sub => ri!(ops, w, sub, d, k),
                            Alu::And => ri!(ops, w, and, d, k),
                            Alu::Or => ri!(ops, w, or, d, k),
                            Alu::Xor => ri!(ops, w, xor, d, k),
                            Alu::Cmp => ri!(ops, w, cmp, d, k),
                            Alu::Mul => {
                                if w {
                                    dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(d), k)
                                } else {
                                    dynasm!(ops ; .arch x64 ; imul Rd(d), Rd(d), k)
                                }
                            }
                        }
                        return;
                    }
                    None => {
                        self.load(RAX, s);
                        Src::R(RAX)
                    }
                }
            }
            s => s,
        };
        let ops = &mut self.ops;
        match s {
            Src::R(x) => match op {
                Alu::Add => rr!(ops, w, add, d, x),
                Alu::Sub => rr!(ops, w, sub, d, x),
                Alu::And => rr!(ops, w, and, d, x),
                Alu::Or => rr!(ops, w, or, d, x),
                Alu::Xor => rr!(ops, w, xor, d, x),
                Alu::Cmp => rr!(ops, w, cmp, d, x),
                Alu::Mul => rr!(ops, w, imul, d, x),
            },
            Src::S(k) => {
                let o = -8 * self.nsaved - 8 * (k as i32 + 1);
                match op {
                    Alu::Add => rm!(ops, w, add, d, o),
                    Alu::Sub => rm!(ops, w, sub, d, o),
                    Alu::And => rm!(ops, w, and, d, o),
                    Alu::Or => rm!(ops, w, or, d, o),
                    Alu::Xor => rm!(ops, w, xor, d, o),
                    Alu::Cmp => rm!(ops, w, cmp, d, o),
                    Alu::Mul => rm!(ops, w, imul, d, o),
                }
            }
            Src::I(_) => {}
        }
    }

    /// The register to compute a result with home `dst` in, and whether it
    /// must be stored to `dst` afterwards.
    #[inline]
    fn dreg(dst: Src, scratch: u8) -> (u8, bool) {
        match dst {
            Src::R(r) => (r, false),
            _ => (scratch, true),
        }
    }

    fn binop(&mut self, op: Alu, w: bool, dst: Src, a: Src, b: Src) {
        let (mut d, mut spill) = Self::dreg(dst, R11);
        let (mut a, mut b) = (a, b);
        if b == Src::R(d) && a != Src::R(d) {
            if op != Alu::Sub {
                std::mem::swap(&mut a, &mut b);
            } else {
                d = R11;
                spill = true;
            }
        }
        self.load(d, a);
        self.alu_src(op, w, d, b);
        if spill {
            self.mov(dst, Src::R(d));
        }
    }

    fn shift(&mut self, op: Opcode, w: bool, dst: Src, a: Src, b: Src) {
        let (d, spill) = Self::dreg(dst, R11);
        let imm = match b {
            Src::I(n) => Some((n & if w { 63 } else { 31 }) as i8),
            _ => {
                self.load(RCX, b);
                None
            }
        };
        self.load(d, a);
        let ops = &mut self.ops;
        match imm {
            Some(n) => match op {
                Opcode::Shl => ri!(ops, w, shl, d, n),
                Opcode::Shr => ri!(ops, w, shr, d, n),
                _ => ri!(ops, w, sar, d, n),
            },
            None => match op {
                Opcode::Shl => {
                    if w {
                        dynasm!(ops ; .arch x64 ; shl Rq(d), cl)
                    } else {
                        dynasm!(ops ; .arch x64 ; shl Rd(d), cl)
                    }
                }
                Opcode::Shr => {
                    if w {
                        dynasm!(ops ; .arch x64 ; shr Rq(d), cl)
                    } else {
                        dynasm!(ops ; .arch x64 ; shr Rd(d), cl)
                    }
                }
                _ => {
                    if w {
                        dynasm!(ops ; .arch x64 ; sar Rq(d), cl)
                    } else {
                        dynasm!(ops ; .arch x64 ; sar Rd(d), cl)
                    }
                }
            },
        }
        if spill {
            self.mov(dst, Src::R(d));
        }
    }

    fn div(&mut self, op: Opcode, w: bool, dst: Src, a: Src, b: Src) {
        let check_zero = !matches!(b, Src::I(k) if (if w { k } else { k & 0xffff_ffff }) != 0);
        let b = self.in_reg(b, RCX);
        self.load(RAX, a);
        if check_zero {
            let t = self.trap_label(TrapCode::DivisionByZero);
            dynasm!(self.ops ; .arch x64 ; test Rq(b), Rq(b) ; jz =>t);
        }
        let ovf = self.trap_label(TrapCode::IntegerOverflow);
        let ops = &mut self.ops;
        match (op, w) {
            (Opcode::Sdiv, true) => dynasm!(ops ; .arch x64
                ; cmp Rq(b), -1 ; jne >div ; neg rax ; jo =>ovf ; jmp >done
                ; div: ; cqo ; idiv Rq(b) ; done:),
            (Opcode::Sdiv, false) => dynasm!(ops ; .arch x64
                ; cmp Rd(b), -1 ; jne >div ; neg eax ; jo =>ovf ; jmp >done
                ; div: ; cdq ; idiv Rd(b) ; done:),
            (Opcode::Srem, true) => dynasm!(ops ; .arch x64
                ; cmp Rq(b), -1 ; jne >div ; xor edx, edx ; jmp >done
                ; div: ; cqo ; idiv Rq(b) ; done:),
            (Opcode::Srem, false) => dynasm!(ops ; .arch x64
                ; cmp Rd(b), -1 ; jne >div ; xor edx, edx ; jmp >done
                ; div: ; cdq ; idiv Rd(b) ; done:),
            (_, true) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div Rq(b)),
            (_, false) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div Rd(b)),
        }
        let r = if matches!(op, Opcode::Sdiv | Opcode::Udiv) {
            RAX
        } else {
            RDX
        };
        self.mov(dst, Src::R(r));
    }

    /// A base register and displacement for `[ptr + offset]`.
    fn address(&mut self, ptr: Src, offset: i64) -> (u8, i32) {
        let base = self.in_reg(ptr, R11);
        match i32::try_from(offset) {
            Ok(o) => (base, o),
            Err(_) => {
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; mov rax, QWORD offset ; add rax, Rq(base));
                (RAX, 0)
            }
        }
    }

    fn load_mem(&mut self, op: Opcode, ty: Type, dst: Src, ptr: Src, offset: i64) {
        let (base, disp) = self.address(ptr, offset);
        let (d, spill) = Self::dreg(dst, R11);
        let w = ty == Type::I64;
        let ops = &mut self.ops;
        match (op, w) {
            (Opcode::Load, true) => dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [Rq(base) + disp]),
            (Opcode::Load, false) => dynasm!(ops ; .arch x64 ; mov Rd(d), DWORD [Rq(base) + disp]),
            (Opcode::Load8s, true) => {
                dynasm!(ops ; .arch x64 ; movsx Rq(d), BYTE [Rq(base) + disp])
            }
            (Opcode::Load8s, false) => {
                dynasm!(ops ; .arch x64 ; movsx Rd(d), BYTE [Rq(base) + disp])
            }
            (Opcode::Load8u, _) => dynasm!(ops ; .arch x64 ; movzx Rd(d), BYTE [Rq(base) + disp]),
            (Opcode::Load16s, true) => {
                dynasm!(ops ; .arch x64 ; movsx Rq(d), WORD [Rq(base) + disp])
            }
            (Opcode::Load16s, false) => {
                dynasm!(ops ; .arch x64 ; movsx Rd(d), WORD [Rq(base) + disp])
            }
            (Opcode::Load16u, _) => {
                dynasm!(ops ; .arch x64 ; movzx Rd(d), WORD [Rq(base) + disp])
            }
            (Opcode::Load32s, _) => {
                dynasm!(ops ; .arch x64 ; movsxd Rq(d), DWORD [Rq(base) + disp])
            }
            _ => dynasm!(ops ; .arch x64 ; mov Rd(d), DWORD [Rq(base) + disp]),
        }
        if spill {
            self.mov(dst, Src::R(d));
        }
    }

    fn store_mem(&mut self, bytes: u32, v: Src, ptr: Src, offset: i64) {
        // The value first (it may need rax; the base may need r11).
        let v = match v {
            Src::I(b) if bytes < 8 || i32::try_from(b as i64).is_ok() => Src::I(b),
            s => Src::R(self.in_reg(s, RAX)),
        };
        let (base, disp) = self.address(ptr, offset);
        let ops = &mut self.ops;
        match v {
            Src::I(b) => match bytes {
                1 => dynasm!(ops ; .arch x64 ; mov BYTE [Rq(base) + disp], b as i8),
                2 => dynasm!(ops ; .arch x64 ; mov WORD [Rq(base) + disp], b as i16),
                4 => dynasm!(ops ; .arch x64 ; mov DWORD [Rq(base) + disp], b as i32),
                _ => dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], b as i64 as i32),
            },
            Src::R(r) => match bytes {
                1 => dynasm!(ops ; .arch x64 ; mov BYTE [Rq(base) + disp], Rb(r)),
                2 => dynasm!(ops ; .arch x64 ; mov WORD [Rq(base) + disp], Rw(r)),
                4 => dynasm!(ops ; .arch x64 ; mov DWORD [Rq(base) + disp], Rd(r)),
                _ => dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], Rq(r)),
            },
            Src::S(_) => {}
        }
    }

    /// Emits IR instruction `i`; `next` is the block laid out after the
    /// current one.
    pub(super) fn inst(&mut self, i: Inst, next: Option<Block>) -> Result<()> {
        use Opcode::*;
        let func = self.func;
        let d = &func.insts[i.index()];
        let ty = d.ty.unwrap_or(Type::I64);
        let w = ty == Type::I64;
        let dst = match d.result {
            Some(r) => self.val(r),
            None => Src::I(0),
        };
        match (d.opcode, &d.kind) {
            (Add | Sub | Mul | And | Or | Xor, InstKind::Binary { args }) => {
                let op = match d.opcode {
                    Add => Alu::Add,
                    Sub => Alu::Sub,
                    Mul => Alu::Mul,
                    And => Alu::And,
                    Or => Alu::Or,
                    _ => Alu::Xor,
                };
                let (a, b) = (self.src(args[0], ty), self.src(args[1], ty));
                self.binop(op, w, dst, a, b);
            }
            (Shl | Shr | Sar, InstKind::Binary { args }) => {
                let (a, b) = (self.src(args[0], ty), self.src(args[1], ty));
                self.shift(d.opcode, w, dst, a, b);
            }
            (Sdiv | Udiv | Srem | Urem, InstKind::Binary { args }) => {
                let (a, b) = (self.src(args[0], ty), self.src(args[1], ty));
                self.div(d.opcode, w, dst, a, b);
            }
            (
                Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge,
                InstKind::Binary { args },
            ) => {
                let cc = self.compare(d.opcode, ty, args[0], args[1])?;
                let (r, spill) = Self::dreg(dst, RAX);
                setcc(&mut self.ops, cc, r);
                if spill {
                    self.mov(dst, Src::R(r));
                }
            }
            (Copy, InstKind::Unary { arg }) => {
                let a = self.src(*arg, ty);
                self.mov(dst, a);
            }
            (Neg | Not, InstKind::Unary { arg }) => {
                let a = self.src(*arg, ty);
                let (r, spill) = Self::dreg(dst, R11);
                self.load(r, a);
                let ops = &mut self.ops;
                match (d.opcode, w) {
                    (Neg, true) => dynasm!(ops ; .arch x64 ; neg Rq(r)),
                    (Neg, false) => dynasm!(ops ; .arch x64 ; neg Rd(r)),
                    (_, true) => dynasm!(ops ; .arch x64 ; not Rq(r)),
                    (_, false) => dynasm!(ops ; .arch x64 ; not Rd(r)),
                }
                if spill {
                    self.mov(dst, Src::R(r));
                }
            }
            (Sext | Zext | Trunc, InstKind::Unary { arg }) => {
                let from = if d.opcode == Trunc {
                    Type::I64
                } else {
                    Type::I32
                };
                let a = self.src(*arg, from);
                let (r, spill) = Self::dreg(dst, R11);
                let sext = d.opcode == Sext;
                match a {
                    Src::R(x) if sext => dynasm!(self.ops ; .arch x64 ; movsxd Rq(r), Rd(x)),
                    Src::R(x) => dynasm!(self.ops ; .arch x64 ; mov Rd(r), Rd(x)),
                    Src::S(k) => {
                        let o = self.slot_off(k);
                        if sext {
                            dynasm!(self.ops ; .arch x64 ; movsxd Rq(r), DWORD [rbp + o]);
                        } else {
                            dynasm!(self.ops ; .arch x64 ; mov Rd(r), DWORD [rbp + o]);
                        }
                    }
                    Src::I(b) => {
                        let v = if sext {
                            b as u32 as i32 as i64 as u64
                        } else {
                            b & 0xffff_ffff
                        };
                        mov_imm_to(self, r, v);
                    }
                }
                if spill {
                    self.mov(dst, Src::R(r));
                }
            }
            (Select, InstKind::Select { args }) => {
                let (a, b) = (self.src(args[1], ty), self.src(args[2], ty));
                match self.src(args[0], Type::I32) {
                    Src::I(c) => {
                        let s = if c & 0xffff_ffff != 0 { a } else { b };
                        self.mov(dst, s);
                    }
                    c => {
                        let a = match a {
                            Src::I(_) => Src::R(self.in_reg(a, RAX)),
                            a => a,
                        };
                        self.load(R11, b);
                        match c {
                            Src::R(x) => dynasm!(self.ops ; .arch x64 ; test Rd(x), Rd(x)),
                            Src::S(k) => {
                                let o = self.slot_off(k);
                                dynasm!(self.ops ; .arch x64 ; cmp DWORD [rbp + o], 0);
                            }
                            Src::I(_) => {}
                        }
                        match a {
                            Src::R(x) => dynasm!(self.ops ; .arch x64 ; cmovne r11, Rq(x)),
                            Src::S(k) => {
                                let o = self.slot_off(k);
                                dynasm!(self.ops ; .arch x64 ; cmovne r11, QWORD [rbp + o]);
                            }
                            Src::I(_) => {}
                        }
                        self.mov(dst, Src::R(R11));
                    }
                }
            }
            (
                Load | Load8s | Load8u | Load16s | Load16u | Load32s | Load32u,
                InstKind::Load { ptr, offset },
            ) => {
                let p = self.src(*ptr, Type::I64);
                self.load_mem(d.opcode, ty, dst, p, *offset);
            }
            (Store | Store8 | Store16 | Store32, InstKind::Store { args, offset }) => {
                let (bytes, vty) = match d.opcode {
                    Store8 => (1, Type::I64),
                    Store16 => (2, Type::I64),
                    Store32 => (4, Type::I64),
                    _ => (ty.bytes(), ty),
                };
                let vty = match args[0] {
                    Operand::Value(v) if d.opcode != Store => func.values[v.index()].ty,
                    _ => vty,
                };
                let (v, p) = (self.src(args[0], vty), self.src(args[1], Type::I64));
                self.store_mem(bytes, v, p, *offset);
            }
            (Addr, InstKind::Addr { sym }) => self.addr(dst, *sym),
            (Call, _) => self.call(i)?,
            (Ret, InstKind::Ret { value }) => {
                if let Some(v) = value {
                    let rt = func.sig.ret.unwrap_or(Type::I64);
                    let s = self.src(*v, rt);
                    self.load(RAX, s);
                }
                self.epilogue();
            }
            (Jmp, InstKind::Jmp { dest }) => {
                self.edge_moves(dest);
                self.par_move();
                self.jump(dest.block, next);
            }
            (Br, _) => self.br(i, next)?,
            (Trap, _) => {
                let t = self.trap_label(TrapCode::Unreachable);
                dynasm!(self.ops ; .arch x64 ; jmp =>t);
            }
            _ => return Err(bad(func, "unsupported instruction")),
        }
        Ok(())
    }
}

fn mov_imm_to(e: &mut Em<'_>, r: u8, v: u64) {
    crate::isa::x86_64::asm::mov_imm(&mut e.ops, r, v);
}
