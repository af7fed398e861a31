//! The allocator-free reference code generator: AArch64 machine code for
//! one function straight from its [`Plan`], every value in a frame slot.
//!
//! Code is assembled with dynasm into a `VecAssembler<Aarch64Relocation>`;
//! the bytes are appended to the module's text and every address that is
//! not known yet becomes a relocation (see [`crate::lower::place`]).
//!
//! Frame: `stp x29, x30, [sp, #-16]!; mov x29, sp; sub sp, sp, frame`
//! (pages probed one by one when the frame is larger than a page); the
//! outgoing argument area at `sp`, value slots and allocas above it, see
//! [`super::analysis`]. `sp` stays 16-byte aligned throughout. Each
//! instruction uses `x0`–`x2`, `v0`, `v1` (and argument registers at calls)
//! and the IP registers `x16`/`x17` as scratch and leaves nothing live in
//! registers, so `x18` and the callee-saved registers are never touched.
//!
//! Relocated sequences: `bl` (`Arm64Call26`) for every direct call (the
//! registry adds a veneer for a target beyond ±128 MiB); `addr` of an
//! import (host symbols may be anywhere) through an inline 8-byte literal
//! (`ldr x16, lit; b over; lit: .quad sym` with `Abs64`);
//! `addr` of a kiln symbol and jump tables by `adrp` + `add`
//! (`Arm64AdrpPage21` + `Arm64AddLo12`).
//!
//! Each trapping instruction branches to its own out-of-line `bl` (at the
//! end of the function) into one shared stub per reason: `mov w0, code`,
//! load `__kiln_trap`, `br`, so the handler's `x30` names the instruction.
//! Each IR instruction reports its offset to the line table
//! ([`crate::debug::lines`]).

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::abi::{arg_locations, incoming_stack_offset, result_location, ArgLoc};
use super::analysis::{plan, Plan};
use super::asm::{
    add_lo12, add_sp, adrp, b_cond_to, cb_to, cset, enter_frame, imm12, ldr_lit_8, leave_frame,
    mem, mov_imm, word, Asm, Cond, Mem, BL, B_12, NOP,
};
use super::regs::{FP, SP, X16, X17};
use crate::compiled::CompiledModule;
use crate::debug::lines::{LineRecorder, LineTable};
use crate::error::{Error, Result, TrapCode};
use crate::ir::{
    Block, BlockCall, Callee, Function, Inst, InstKind, Linkage, Loc, Module, Opcode, Operand,
    SymId, Type, Value,
};
use crate::isa::TRAP_HANDLER;
use crate::reloc::RelocKind;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi};

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

fn wide(ty: Type) -> bool {
    ty.bytes() == 8
}

/// A relocation inside the function being emitted (offset from its start).
struct FnReloc {
    offset: usize,
    kind: RelocKind,
    target: String,
    addend: i64,
}

struct Emitter<'a> {
    module: &'a Module,
    func: &'a Function,
    plan: Plan,
    ops: Asm,
    labels: Vec<DynamicLabel>,
    /// Per trapping instruction: its stub's label, the reason, its location.
    trap_sites: Vec<(DynamicLabel, TrapCode, Loc)>,
    lines: LineRecorder<'static>,
    relocs: Vec<FnReloc>,
    /// Jump tables: (rodata symbol name, entry labels).
    tables: Vec<(String, Vec<DynamicLabel>)>,
    /// Edge stubs of the block being emitted: (label, block call).
    stubs: Vec<(DynamicLabel, &'a BlockCall)>,
    /// Conditional branches to labels go through an unconditional `b`
    /// (the function is too long for their ±1 MiB).
    far: bool,
}

fn missing(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: malformed instruction ({what})", func.name))
}

impl<'a> Emitter<'a> {
    fn slot(&self, v: Value) -> i64 {
        self.plan.slot[v.index()] as i64
    }

    fn off(&self) -> usize {
        self.ops.offset().0
    }

    /// The label of a new trap site for the instruction being emitted.
    fn trap_label(&mut self, code: TrapCode) -> DynamicLabel {
        let l = self.ops.new_dynamic_label();
        self.trap_sites.push((l, code, self.lines.current()));
        l
    }

    /// The raw bits of `op` (of type `ty`) into integer register `r`; a
    /// 32-bit value leaves the upper half zero.
    fn ld_bits(&mut self, r: u8, op: Operand, ty: Type) {
        match op {
            Operand::Const(c) => mov_imm(&mut self.ops, r, c.bits(ty), wide(ty)),
            Operand::Value(v) => {
                let k = if wide(self.func.value_type(v)) {
                    Mem::LdrX
                } else {
                    Mem::LdrW
                };
                let at = self.slot(v);
                mem(&mut self.ops, k, r, SP, at);
            }
        }
    }

    /// Stores the low bits (the value's width) of integer register `r` into
    /// `v`'s slot.
    fn st_bits(&mut self, v: Value, r: u8) {
        let k = if wide(self.func.value_type(v)) {
            Mem::StrX
        } else {
            Mem::StrW
        };
        let at = self.slot(v);
        mem(&mut self.ops, k, r, SP, at);
    }

    /// A float operand into float register `x`.
    fn ld_f(&mut self, x: u8, op: Operand, ty: Type) {
        match op {
            Operand::Const(c) => {
                mov_imm(&mut self.ops, X17, c.bits(ty), wide(ty));
                let ops = &mut self.ops;
                if wide(ty) {
                    dynasm!(ops ; .arch aarch64 ; fmov D(x), X(X17));
                } else {
                    dynasm!(ops ; .arch aarch64 ; fmov S(x), W(X17));
                }
            }
            Operand::Value(v) => {
                let k = if wide(ty) { Mem::LdrD } else { Mem::LdrS };
                let at = self.slot(v);
                mem(&mut self.ops, k, x, SP, at);
            }
        }
    }

    fn st_f(&mut self, v: Value, x: u8) {
        let k = if wide(self.func.value_type(v)) {
            Mem::StrD
        } else {
            Mem::StrS
        };
        let at = self.slot(v);
        mem(&mut self.ops, k, x, SP, at);
    }

    fn reloc_at(&mut self, offset: usize, kind: RelocKind, target: &str, addend: i64) {
        self.relocs.push(FnReloc {
            offset,
            kind,
            target: target.to_string(),
            addend,
        });
    }

    /// `x<r> = address of target` through an inline, 8-byte-aligned literal
    /// (an `Abs64` relocation): imports may live anywhere in the address
    /// space, beyond `adrp`'s ±4 GiB.
    fn ldr_sym_literal(&mut self, r: u8, target: &str) {
        if !self.off().is_multiple_of(8) {
            word(&mut self.ops, NOP);
        }
        word(&mut self.ops, ldr_lit_8(r));
        word(&mut self.ops, B_12);
        let at = self.off();
        self.ops.extend([0u8; 8].iter());
        self.reloc_at(at, RelocKind::Abs64, target, 0);
    }

    /// `adrp xr, target; add xr, xr, :lo12:target`.
    fn adrp_add(&mut self, r: u8, target: &str) {
        let at = self.off();
        word(&mut self.ops, adrp(r));
        word(&mut self.ops, add_lo12(r, r));
        self.reloc_at(at, RelocKind::Arm64AdrpPage21, target, 0);
        self.reloc_at(at + 4, RelocKind::Arm64AddLo12, target, 0);
    }

    fn result(&self, inst: Inst) -> Result<Value> {
        self.func.insts[inst.index()]
            .result
            .ok_or_else(|| missing(self.func, "no result"))
    }

    fn prologue(&mut self) {
        enter_frame(&mut self.ops, self.plan.frame_size as u64);
        let (locs, _) = arg_locations(&self.func.sig.params);
        for (i, loc) in locs.iter().enumerate() {
            let Some(&p) = self.func.params.get(i) else {
                break;
            };
            match *loc {
                ArgLoc::Int(r) => self.st_bits(p, r),
                ArgLoc::Float(x) => self.st_f(p, x),
                ArgLoc::Stack(off) => {
                    let src = incoming_stack_offset(off);
                    mem(&mut self.ops, Mem::LdrX, X17, FP, src);
                    self.st_bits(p, X17);
                }
            }
        }
    }

    fn epilogue(&mut self) {
        leave_frame(&mut self.ops);
    }

    /// Copies a branch's arguments into its target's parameters, as one
    /// parallel copy: through the copy area when an argument is itself one
    /// of the target's parameters (a loop-carried swap).
    fn block_args(&mut self, bc: &BlockCall) {
        let params = &self.func.blocks[bc.block.index()].params;
        let tys: Vec<Type> = params.iter().map(|&p| self.func.value_type(p)).collect();
        let args = self.func.args(bc.args);
        let overlap = args.iter().enumerate().any(|(i, a)| {
            matches!(a, Operand::Value(v) if params.iter().enumerate().any(|(j, p)| p == v && j != i))
        });
        let params = params.clone();
        if overlap {
            let base = self.plan.copy_area as i64;
            for (i, &a) in args.iter().enumerate() {
                self.ld_bits(X17, a, tys[i]);
                mem(&mut self.ops, Mem::StrX, X17, SP, base + 8 * i as i64);
            }
            for (i, &p) in params.iter().enumerate() {
                mem(&mut self.ops, Mem::LdrX, X17, SP, base + 8 * i as i64);
                self.st_bits(p, X17);
            }
        } else {
            for (i, (&a, &p)) in args.iter().zip(&params).enumerate() {
                if a == Operand::Value(p) {
                    continue;
                }
                self.ld_bits(X17, a, tys[i]);
                self.st_bits(p, X17);
            }
        }
    }

    /// The label to branch to for `bc`: the block's own, or an edge stub
    /// (emitted after the block) that first copies the arguments.
    fn edge(&mut self, bc: &'a BlockCall) -> DynamicLabel {
        if bc.args.is_empty() {
            self.labels[bc.block.index()]
        } else {
            let l = self.ops.new_dynamic_label();
            self.stubs.push((l, bc));
            l
        }
    }

    /// `cmp x<r>, b` for an integer operand `b` of type `ty`: the 12-bit
    /// immediate form, `cmn` for small negatives, else through `x1`.
    fn cmp_operand(&mut self, r: u8, b: Operand, ty: Type) {
        let w = wide(ty);
        if let Operand::Const(c) = b {
            let bits = c.bits(ty);
            let neg = if w {
                bits.wrapping_neg()
            } else {
                (bits as u32).wrapping_neg() as u64
            };
            let ops = &mut self.ops;
            if let Some(i) = imm12(bits) {
                if w {
                    dynasm!(ops ; .arch aarch64 ; cmp XSP(r), i);
                } else {
                    dynasm!(ops ; .arch aarch64 ; cmp WSP(r), i);
                }
                return;
            }
            if let Some(i) = imm12(neg) {
                if w {
                    dynasm!(ops ; .arch aarch64 ; cmn XSP(r), i);
                } else {
                    dynasm!(ops ; .arch aarch64 ; cmn WSP(r), i);
                }
                return;
            }
        }
        let t = if r == 1 { 2 } else { 1 };
        self.ld_bits(t, b, ty);
        let ops = &mut self.ops;
        if w {
            dynasm!(ops ; .arch aarch64 ; cmp X(r), X(t));
        } else {
            dynasm!(ops ; .arch aarch64 ; cmp W(r), W(t));
        }
    }

    /// Sets flags for compare instruction `inst` and says how to read them.
    fn compare(&mut self, inst: Inst) -> Result<Cond> {
        let d = &self.func.insts[inst.index()];
        let InstKind::Binary { args: [a, b] } = d.kind else {
            return Err(missing(self.func, "compare operands"));
        };
        let ty = d.ty.ok_or_else(|| missing(self.func, "compare type"))?;
        if let Some(c) = int_cond(d.opcode) {
            self.ld_bits(0, a, ty);
            self.cmp_operand(0, b, ty);
            return Ok(c);
        }
        let c = float_cond(d.opcode).ok_or_else(|| missing(self.func, "compare opcode"))?;
        self.ld_f(0, a, ty);
        self.ld_f(1, b, ty);
        let ops = &mut self.ops;
        if wide(ty) {
            dynasm!(ops ; .arch aarch64 ; fcmp d0, d1);
        } else {
            dynasm!(ops ; .arch aarch64 ; fcmp s0, s1);
        }
        Ok(c)
    }

    fn block(&mut self, pos: usize) -> Result<()> {
        let b = self.plan.order[pos];
        let next = self.plan.order.get(pos + 1).copied();
        let l = self.labels[b.index()];
        dynasm!(self.ops ; .arch aarch64 ; =>l);
        let insts = &self.func.blocks[b.index()].insts;
        for &inst in insts {
            if self.plan.fused[inst.index()] || self.plan.skip[inst.index()] {
                continue;
            }
            self.lines.at(self.off(), self.func.srcmap.inst(inst));
            self.inst(inst, next)?;
        }
        for (l, bc) in std::mem::take(&mut self.stubs) {
            dynasm!(self.ops ; .arch aarch64 ; =>l);
            self.block_args(bc);
            let t = self.labels[bc.block.index()];
            dynasm!(self.ops ; .arch aarch64 ; b =>t);
        }
        Ok(())
    }

    fn inst(&mut self, inst: Inst, next: Option<Block>) -> Result<()> {
        let func = self.func;
        let d = &func.insts[inst.index()];
        let ty = d.ty.unwrap_or(Type::I64);
        use Opcode as O;
        match (&d.kind, d.opcode) {
            (InstKind::Binary { .. }, op) if int_cond(op).is_some() || float_cond(op).is_some() => {
                let r = self.result(inst)?;
                let c = self.compare(inst)?;
                cset(&mut self.ops, c, 0);
                self.st_bits(r, 0);
            }
            (InstKind::Binary { args: [a, b] }, O::Add | O::Sub) => {
                let r = self.result(inst)?;
                self.ld_bits(0, *a, ty);
                self.add_sub(d.opcode == O::Sub, *b, ty);
                self.st_bits(r, 0);
            }
            (InstKind::Binary { args: [a, b] }, O::And | O::Or | O::Xor | O::Mul) => {
                let r = self.result(inst)?;
                self.ld_bits(0, *a, ty);
                self.ld_bits(1, *b, ty);
                let ops = &mut self.ops;
                match (d.opcode, wide(ty)) {
                    (O::And, true) => dynasm!(ops ; .arch aarch64 ; and x0, x0, x1),
                    (O::And, false) => dynasm!(ops ; .arch aarch64 ; and w0, w0, w1),
                    (O::Or, true) => dynasm!(ops ; .arch aarch64 ; orr x0, x0, x1),
                    (O::Or, false) => dynasm!(ops ; .arch aarch64 ; orr w0, w0, w1),
                    (O::Xor, true) => dynasm!(ops ; .arch aarch64 ; eor x0, x0, x1),
                    (O::Xor, false) => dynasm!(ops ; .arch aarch64 ; eor w0, w0, w1),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; mul x0, x0, x1),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; mul w0, w0, w1),
                }
                self.st_bits(r, 0);
            }
            (InstKind::Binary { args: [a, b] }, O::Sdiv | O::Srem | O::Udiv | O::Urem) => {
                let r = self.result(inst)?;
                self.divide(d.opcode, *a, *b, ty);
                self.st_bits(r, 0);
            }
            (InstKind::Binary { args: [a, b] }, O::Shl | O::Shr | O::Sar) => {
                let r = self.result(inst)?;
                self.ld_bits(0, *a, ty);
                self.shift(d.opcode, *b, ty);
                self.st_bits(r, 0);
            }
            (InstKind::Binary { args: [a, b] }, O::Fadd | O::Fsub | O::Fmul | O::Fdiv) => {
                let r = self.result(inst)?;
                self.ld_f(0, *a, ty);
                self.ld_f(1, *b, ty);
                let ops = &mut self.ops;
                match (d.opcode, wide(ty)) {
                    (O::Fadd, true) => dynasm!(ops ; .arch aarch64 ; fadd d0, d0, d1),
                    (O::Fadd, false) => dynasm!(ops ; .arch aarch64 ; fadd s0, s0, s1),
                    (O::Fsub, true) => dynasm!(ops ; .arch aarch64 ; fsub d0, d0, d1),
                    (O::Fsub, false) => dynasm!(ops ; .arch aarch64 ; fsub s0, s0, s1),
                    (O::Fmul, true) => dynasm!(ops ; .arch aarch64 ; fmul d0, d0, d1),
                    (O::Fmul, false) => dynasm!(ops ; .arch aarch64 ; fmul s0, s0, s1),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; fdiv d0, d0, d1),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; fdiv s0, s0, s1),
                }
                self.st_f(r, 0);
            }
            (InstKind::Unary { arg }, op) => self.unary(inst, op, *arg, ty)?,
            (InstKind::Select { args: [c, a, b] }, _) => {
                let r = self.result(inst)?;
                self.ld_bits(1, *c, Type::I32);
                self.ld_bits(0, *a, ty);
                self.ld_bits(2, *b, ty);
                let ops = &mut self.ops;
                dynasm!(ops ; .arch aarch64 ; cmp w1, 0 ; csel x0, x0, x2, ne);
                self.st_bits(r, 0);
            }
            (InstKind::Load { ptr, offset }, op) => {
                let r = self.result(inst)?;
                let disp = self.address(*ptr, *offset);
                let w = wide(ty);
                let k = match op {
                    O::Load if w => Mem::LdrX,
                    O::Load => Mem::LdrW,
                    O::Load8s if w => Mem::LdrsbX,
                    O::Load8s => Mem::LdrsbW,
                    O::Load8u => Mem::LdrB,
                    O::Load16s if w => Mem::LdrshX,
                    O::Load16s => Mem::LdrshW,
                    O::Load16u => Mem::LdrH,
                    O::Load32s => Mem::LdrswX,
                    _ => Mem::LdrW,
                };
                mem(&mut self.ops, k, 1, 0, disp);
                self.st_bits(r, 1);
            }
            (
                InstKind::Store {
                    args: [v, p],
                    offset,
                },
                op,
            ) => {
                let vty = match op {
                    O::Store => ty,
                    _ => func.operand_type(*v, Type::I64),
                };
                self.ld_bits(1, *v, vty);
                let disp = self.address(*p, *offset);
                let k = match op.access_bytes(Some(ty)).unwrap_or(8) {
                    1 => Mem::StrB,
                    2 => Mem::StrH,
                    4 => Mem::StrW,
                    _ => Mem::StrX,
                };
                mem(&mut self.ops, k, 1, 0, disp);
            }
            (InstKind::Alloca { .. }, _) => {
                let r = self.result(inst)?;
                let at = self.plan.alloca[inst.index()];
                add_sp(&mut self.ops, 0, at as u64);
                self.st_bits(r, 0);
            }
            (InstKind::Addr { sym }, _) => {
                let r = self.result(inst)?;
                let s = &self.module.symbols[sym.index()];
                if s.linkage == Linkage::Import {
                    self.ldr_sym_literal(0, &s.name);
                } else {
                    self.adrp_add(0, &s.name);
                }
                self.st_bits(r, 0);
            }
            (InstKind::Call { callee, args }, _) => {
                let f = self.func;
                self.call(inst, *callee, f.args(*args))?
            }
            (InstKind::Ret { value }, _) => {
                if let Some(v) = value {
                    let rty = func.sig.ret.ok_or_else(|| missing(func, "ret type"))?;
                    match result_location(rty) {
                        ArgLoc::Float(x) => self.ld_f(x, *v, rty),
                        _ => self.ld_bits(0, *v, rty),
                    }
                }
                self.epilogue();
            }
            (InstKind::Jmp { dest }, _) => {
                self.block_args(dest);
                if next != Some(dest.block) {
                    let l = self.labels[dest.block.index()];
                    dynasm!(self.ops ; .arch aarch64 ; b =>l);
                }
            }
            (
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                },
                _,
            ) => {
                let fused = match *cond {
                    Operand::Value(c) => self.fused_compare(c),
                    Operand::Const(_) => None,
                };
                let t = self.edge(then_dest);
                let e = self.edge(else_dest);
                match fused {
                    Some(i) => {
                        let c = self.compare(i)?;
                        b_cond_to(&mut self.ops, c, t, self.far);
                    }
                    None => {
                        self.ld_bits(0, *cond, Type::I32);
                        cb_to(&mut self.ops, true, false, 0, t, self.far);
                    }
                }
                if !(self.stubs.is_empty() && next == Some(else_dest.block)) {
                    dynasm!(self.ops ; .arch aarch64 ; b =>e);
                }
            }
            (
                InstKind::Switch {
                    value,
                    default,
                    cases,
                },
                _,
            ) => {
                let f = self.func;
                self.switch(*value, ty, *default, f.cases(*cases))?;
            }
            (InstKind::Trap, _) => {
                let t = self.trap_label(TrapCode::Unreachable);
                dynasm!(self.ops ; .arch aarch64 ; b =>t);
            }
            _ => return Err(missing(func, d.opcode.name())),
        }
        Ok(())
    }

    /// `x0 = x0 ± b`: the 12-bit immediate form (negated when that fits
    /// better), else through `x1`.
    fn add_sub(&mut self, sub: bool, b: Operand, ty: Type) {
        let w = wide(ty);
        if let Operand::Const(c) = b {
            let bits = c.bits(ty);
            let neg = if w {
                bits.wrapping_neg()
            } else {
                (bits as u32).wrapping_neg() as u64
            };
            let pick = match (imm12(bits), imm12(neg)) {
                (Some(i), _) => Some((sub, i)),
                (None, Some(i)) => Some((!sub, i)),
                _ => None,
            };
            if let Some((s, i)) = pick {
                let ops = &mut self.ops;
                match (s, w) {
                    (false, true) => dynasm!(ops ; .arch aarch64 ; add x0, x0, i),
                    (false, false) => dynasm!(ops ; .arch aarch64 ; add w0, w0, i),
                    (true, true) => dynasm!(ops ; .arch aarch64 ; sub x0, x0, i),
                    (true, false) => dynasm!(ops ; .arch aarch64 ; sub w0, w0, i),
                }
                return;
            }
        }
        self.ld_bits(1, b, ty);
        let ops = &mut self.ops;
        match (sub, w) {
            (false, true) => dynasm!(ops ; .arch aarch64 ; add x0, x0, x1),
            (false, false) => dynasm!(ops ; .arch aarch64 ; add w0, w0, w1),
            (true, true) => dynasm!(ops ; .arch aarch64 ; sub x0, x0, x1),
            (true, false) => dynasm!(ops ; .arch aarch64 ; sub w0, w0, w1),
        }
    }

    /// `x0 = a op b` for the four divisions. AArch64 division never traps,
    /// so the SPEC's traps are explicit: `cbz` on a zero divisor, and for
    /// `sdiv` a divisor of -1 with a dividend of MIN (`cmp a, #1` overflows
    /// exactly for MIN). `srem` is `a - (a / b) * b` by `msub`, which gives
    /// 0 for MIN / -1 since `sdiv` then yields MIN.
    fn divide(&mut self, op: Opcode, a: Operand, b: Operand, ty: Type) {
        use Opcode as O;
        let w = wide(ty);
        self.ld_bits(0, a, ty);
        self.ld_bits(1, b, ty);
        let bconst = match b {
            Operand::Const(c) => Some(c.bits(ty)),
            Operand::Value(_) => None,
        };
        if bconst.is_none_or(|v| v == 0) {
            let t = self.trap_label(TrapCode::DivisionByZero);
            cb_to(&mut self.ops, false, w, 1, t, self.far);
        }
        let minus_one = if w { u64::MAX } else { u32::MAX as u64 };
        if op == O::Sdiv && bconst.is_none_or(|v| v == minus_one) {
            let t = self.trap_label(TrapCode::IntegerOverflow);
            let ops = &mut self.ops;
            if w {
                dynasm!(ops ; .arch aarch64 ; cmn x1, 1 ; b.ne >ok ; cmp x0, 1);
            } else {
                dynasm!(ops ; .arch aarch64 ; cmn w1, 1 ; b.ne >ok ; cmp w0, 1);
            }
            b_cond_to(ops, Cond::Vs, t, self.far);
            dynasm!(ops ; .arch aarch64 ; ok:);
        }
        let ops = &mut self.ops;
        match (op, w) {
            (O::Sdiv, true) => dynasm!(ops ; .arch aarch64 ; sdiv x0, x0, x1),
            (O::Sdiv, false) => dynasm!(ops ; .arch aarch64 ; sdiv w0, w0, w1),
            (O::Udiv, true) => dynasm!(ops ; .arch aarch64 ; udiv x0, x0, x1),
            (O::Udiv, false) => dynasm!(ops ; .arch aarch64 ; udiv w0, w0, w1),
            (O::Srem, true) => dynasm!(ops ; .arch aarch64 ; sdiv x2, x0, x1 ; msub x0, x2, x1, x0),
            (O::Srem, false) => {
                dynasm!(ops ; .arch aarch64 ; sdiv w2, w0, w1 ; msub w0, w2, w1, w0)
            }
            (_, true) => dynasm!(ops ; .arch aarch64 ; udiv x2, x0, x1 ; msub x0, x2, x1, x0),
            (_, false) => dynasm!(ops ; .arch aarch64 ; udiv w2, w0, w1 ; msub w0, w2, w1, w0),
        }
    }

    /// `x0 = x0 shift b`. The register forms (`lslv`/`lsrv`/`asrv`) take
    /// the count modulo the width, as the SPEC does; literal counts are
    /// reduced here.
    fn shift(&mut self, op: Opcode, b: Operand, ty: Type) {
        use Opcode as O;
        let w = wide(ty);
        match b {
            Operand::Const(c) => {
                let n = (c.bits(ty) & (ty.bits() as u64 - 1)) as u32;
                if n == 0 {
                    return;
                }
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Shl, true) => dynasm!(ops ; .arch aarch64 ; lsl x0, x0, n),
                    (O::Shl, false) => dynasm!(ops ; .arch aarch64 ; lsl w0, w0, n),
                    (O::Shr, true) => dynasm!(ops ; .arch aarch64 ; lsr x0, x0, n),
                    (O::Shr, false) => dynasm!(ops ; .arch aarch64 ; lsr w0, w0, n),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; asr x0, x0, n),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; asr w0, w0, n),
                }
            }
            Operand::Value(_) => {
                self.ld_bits(1, b, ty);
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Shl, true) => dynasm!(ops ; .arch aarch64 ; lsl x0, x0, x1),
                    (O::Shl, false) => dynasm!(ops ; .arch aarch64 ; lsl w0, w0, w1),
                    (O::Shr, true) => dynasm!(ops ; .arch aarch64 ; lsr x0, x0, x1),
                    (O::Shr, false) => dynasm!(ops ; .arch aarch64 ; lsr w0, w0, w1),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; asr x0, x0, x1),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; asr w0, w0, w1),
                }
            }
        }
    }

    /// The compare instruction fused into the branch on `c`, if any.
    fn fused_compare(&self, c: Value) -> Option<Inst> {
        match self.func.values[c.index()].def {
            crate::ir::ValueDef::Inst(i) if self.plan.fused[i.index()] => Some(i),
            _ => None,
        }
    }

    /// Puts the base of `ptr + offset` in `x0` and returns the displacement
    /// (any value: [`mem`] picks the encoding), folding `add.i64 x, C`.
    fn address(&mut self, ptr: Operand, offset: i64) -> i64 {
        if let Operand::Value(p) = ptr {
            if let Some((x, c)) = self.plan.addr_fold[p.index()] {
                self.ld_bits(0, Operand::Value(x), Type::I64);
                return c.wrapping_add(offset);
            }
        }
        self.ld_bits(0, ptr, Type::I64);
        offset
    }

    fn unary(&mut self, inst: Inst, op: Opcode, a: Operand, ty: Type) -> Result<()> {
        use Opcode as O;
        let r = self.result(inst)?;
        // A literal operand takes the type the opcode fixes for it (`fext`
        // reads an `f32`, `sext` an `i32`, `bitcast.i64` an `f64`), not
        // the result type.
        let literal_ty = op
            .info()
            .operands
            .first()
            .and_then(|o| o.literal_type(Some(ty)))
            .unwrap_or(ty);
        let src_ty = self.func.operand_type(a, literal_ty);
        let w = wide(ty);
        match op {
            O::Copy | O::Bitcast | O::Zext | O::Trunc => {
                // Slots hold raw bits; a 32-bit load zero-extends and a
                // 32-bit store truncates.
                self.ld_bits(0, a, src_ty);
                self.st_bits(r, 0);
            }
            O::Neg | O::Not => {
                self.ld_bits(0, a, ty);
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Neg, true) => dynasm!(ops ; .arch aarch64 ; neg x0, x0),
                    (O::Neg, false) => dynasm!(ops ; .arch aarch64 ; neg w0, w0),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; mvn x0, x0),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; mvn w0, w0),
                }
                self.st_bits(r, 0);
            }
            O::Fneg | O::Fabs | O::Fsqrt => {
                self.ld_f(0, a, ty);
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Fneg, true) => dynasm!(ops ; .arch aarch64 ; fneg d0, d0),
                    (O::Fneg, false) => dynasm!(ops ; .arch aarch64 ; fneg s0, s0),
                    (O::Fabs, true) => dynasm!(ops ; .arch aarch64 ; fabs d0, d0),
                    (O::Fabs, false) => dynasm!(ops ; .arch aarch64 ; fabs s0, s0),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; fsqrt d0, d0),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; fsqrt s0, s0),
                }
                self.st_f(r, 0);
            }
            O::Sext => {
                self.ld_bits(0, a, Type::I32);
                dynasm!(self.ops ; .arch aarch64 ; sxtw x0, w0);
                self.st_bits(r, 0);
            }
            O::Fext => {
                self.ld_f(0, a, Type::F32);
                dynasm!(self.ops ; .arch aarch64 ; fcvt d0, s0);
                self.st_f(r, 0);
            }
            O::Ftrunc => {
                self.ld_f(0, a, Type::F64);
                dynasm!(self.ops ; .arch aarch64 ; fcvt s0, d0);
                self.st_f(r, 0);
            }
            O::Sitof | O::Uitof => {
                self.ld_bits(0, a, src_ty);
                let ops = &mut self.ops;
                match (op == O::Sitof, wide(src_ty), w) {
                    (true, false, true) => dynasm!(ops ; .arch aarch64 ; scvtf d0, w0),
                    (true, false, false) => dynasm!(ops ; .arch aarch64 ; scvtf s0, w0),
                    (true, true, true) => dynasm!(ops ; .arch aarch64 ; scvtf d0, x0),
                    (true, true, false) => dynasm!(ops ; .arch aarch64 ; scvtf s0, x0),
                    (false, false, true) => dynasm!(ops ; .arch aarch64 ; ucvtf d0, w0),
                    (false, false, false) => dynasm!(ops ; .arch aarch64 ; ucvtf s0, w0),
                    (false, true, true) => dynasm!(ops ; .arch aarch64 ; ucvtf d0, x0),
                    (false, true, false) => dynasm!(ops ; .arch aarch64 ; ucvtf s0, x0),
                }
                self.st_f(r, 0);
            }
            O::Ftosi | O::Ftoui => {
                // fcvtzs/fcvtzu round toward zero, saturate to the
                // destination width (32 or 64 bits) and give 0 for NaN:
                // exactly Rust's `as`.
                self.ld_f(0, a, src_ty);
                let ops = &mut self.ops;
                match (op == O::Ftosi, wide(src_ty), w) {
                    (true, true, true) => dynasm!(ops ; .arch aarch64 ; fcvtzs x0, d0),
                    (true, true, false) => dynasm!(ops ; .arch aarch64 ; fcvtzs w0, d0),
                    (true, false, true) => dynasm!(ops ; .arch aarch64 ; fcvtzs x0, s0),
                    (true, false, false) => dynasm!(ops ; .arch aarch64 ; fcvtzs w0, s0),
                    (false, true, true) => dynasm!(ops ; .arch aarch64 ; fcvtzu x0, d0),
                    (false, true, false) => dynasm!(ops ; .arch aarch64 ; fcvtzu w0, d0),
                    (false, false, true) => dynasm!(ops ; .arch aarch64 ; fcvtzu x0, s0),
                    (false, false, false) => dynasm!(ops ; .arch aarch64 ; fcvtzu w0, s0),
                }
                self.st_bits(r, 0);
            }
            _ => return Err(missing(self.func, op.name())),
        }
        Ok(())
    }

    fn call(&mut self, inst: Inst, callee: Callee, args: &[Operand]) -> Result<()> {
        let func = self.func;
        let (tys, ret): (Vec<Type>, Option<Type>) = match callee {
            Callee::Direct(s) => {
                let sig = self.module.symbols[s.index()]
                    .signature()
                    .ok_or_else(|| missing(func, "call of data"))?;
                (sig.params.clone(), sig.ret)
            }
            Callee::Indirect(_) => (
                args.iter()
                    .map(|a| func.operand_type(*a, Type::I64))
                    .collect(),
                func.insts[inst.index()].ty,
            ),
        };
        if tys.len() != args.len() {
            return Err(missing(func, "call arity"));
        }
        let (locs, _) = arg_locations(&tys);
        for (i, loc) in locs.iter().enumerate() {
            if let ArgLoc::Stack(off) = *loc {
                self.ld_bits(X17, args[i], tys[i]);
                mem(&mut self.ops, Mem::StrX, X17, SP, off as i64);
            }
        }
        for (i, loc) in locs.iter().enumerate() {
            match *loc {
                ArgLoc::Int(r) => self.ld_bits(r, args[i], tys[i]),
                ArgLoc::Float(x) => self.ld_f(x, args[i], tys[i]),
                ArgLoc::Stack(_) => {}
            }
        }
        match callee {
            Callee::Direct(s) => {
                // Imports too: beyond ±128 MiB the registry routes the `bl`
                // through a veneer.
                let name = self.module.symbols[s.index()].name.clone();
                let at = self.off();
                word(&mut self.ops, BL);
                self.reloc_at(at, RelocKind::Arm64Call26, &name, 0);
            }
            Callee::Indirect(op) => {
                // x17: loading it may use x16 for a far slot, never x17.
                self.ld_bits(X17, op, Type::I64);
                dynasm!(self.ops ; .arch aarch64 ; blr x17);
            }
        }
        if let (Some(r), Some(rt)) = (func.insts[inst.index()].result, ret) {
            match result_location(rt) {
                ArgLoc::Float(x) => self.st_f(r, x),
                _ => self.st_bits(r, 0),
            }
        }
        Ok(())
    }

    fn switch(
        &mut self,
        value: Operand,
        ty: Type,
        default: Block,
        cases: &[crate::ir::SwitchCase],
    ) -> Result<()> {
        let w = wide(ty);
        self.ld_bits(0, value, ty);
        let dl = self.labels[default.index()];
        let mut keys: Vec<(u64, DynamicLabel)> = cases
            .iter()
            .map(|c| (c.key.bits(ty), self.labels[c.block.index()]))
            .collect();
        keys.sort_by_key(|k| k.0);
        let n = keys.len() as u64;
        let dense = match (keys.first(), keys.last()) {
            (Some(lo), Some(hi)) => n >= 4 && hi.0 - lo.0 < 4 * n && hi.0 - lo.0 < 65536,
            _ => false,
        };
        if dense {
            let min = keys[0].0;
            let range = keys[keys.len() - 1].0 - min;
            if min != 0 {
                mov_imm(&mut self.ops, X17, min, w);
                if w {
                    dynasm!(self.ops ; .arch aarch64 ; sub x0, x0, x17);
                } else {
                    dynasm!(self.ops ; .arch aarch64 ; sub w0, w0, w17);
                }
            }
            // x0 now holds the zero-extended index (a `w` result clears
            // the upper half).
            match imm12(range) {
                Some(i) => dynasm!(self.ops ; .arch aarch64 ; cmp x0, i),
                None => {
                    mov_imm(&mut self.ops, X17, range, true);
                    dynasm!(self.ops ; .arch aarch64 ; cmp x0, x17);
                }
            }
            b_cond_to(&mut self.ops, Cond::Hi, dl, self.far);
            let name = format!("{}#jt{}", self.func.name, self.tables.len());
            self.adrp_add(X16, &name);
            dynasm!(self.ops ; .arch aarch64 ; ldr x16, [x16, x0, lsl 3] ; br x16);
            let mut entries = vec![dl; range as usize + 1];
            for (k, l) in keys {
                entries[(k - min) as usize] = l;
            }
            self.tables.push((name, entries));
        } else {
            for (k, l) in keys {
                self.cmp_operand(0, Operand::Const(crate::ir::Const::int(k as i128)), ty);
                b_cond_to(&mut self.ops, Cond::Eq, l, self.far);
            }
            dynasm!(self.ops ; .arch aarch64 ; b =>dl);
        }
        Ok(())
    }

    /// As in the register-allocated generator: a `bl` per site into one
    /// shared `movz w0, code; ldr x16, handler; br x16` per reason.
    fn trap_stubs(&mut self) {
        let mut shared: Vec<(TrapCode, DynamicLabel)> = Vec::new();
        for (site, code, loc) in std::mem::take(&mut self.trap_sites) {
            let s = match shared.iter().find(|s| s.0 == code) {
                Some(&(_, s)) => s,
                None => {
                    let s = self.ops.new_dynamic_label();
                    shared.push((code, s));
                    s
                }
            };
            self.lines.at(self.off(), loc);
            dynasm!(self.ops ; .arch aarch64 ; =>site ; bl =>s);
        }
        for (code, s) in shared {
            let c = code.code();
            dynasm!(self.ops ; .arch aarch64 ; =>s ; movz w0, c);
            self.ldr_sym_literal(X16, TRAP_HANDLER);
            dynasm!(self.ops ; .arch aarch64 ; br x16);
        }
    }
}

/// Compiles the function defined as `sym` in `module` into `out`.
pub fn compile_function(module: &Module, sym: SymId, out: &mut CompiledModule) -> Result<()> {
    let (sym, func) = crate::isa::defined_function(module, sym)?;
    // Conditional branches reach ±1 MiB: a longer function is assembled
    // again with every one of them made far.
    let (code, relocs, tables, lines) = match assemble(module, func, false) {
        Err(Error::Runtime(m)) if m.contains(FAR_HINT) => assemble(module, func, true)?,
        other => other?,
    };
    super::place_function(module, sym, &code, relocs.into_iter(), tables, lines, out)
}

/// What dynasm reports for a branch whose target is out of its range.
const FAR_HINT: &str = "out of range";

type Assembled = (
    Vec<u8>,
    Vec<(usize, RelocKind, String, i64)>,
    Vec<(String, Vec<usize>)>,
    LineTable,
);

/// Assembles `func`: its code, relocations, jump tables and line table.
fn assemble(module: &Module, func: &Function, far: bool) -> Result<Assembled> {
    let plan = plan(module, func)?;
    let mut ops = Asm::new(0);
    let labels = (0..func.blocks.len())
        .map(|_| ops.new_dynamic_label())
        .collect();
    let mut e = Emitter {
        module,
        func,
        plan,
        ops,
        labels,
        trap_sites: Vec::new(),
        lines: LineRecorder::without_marks(func.srcmap.func),
        relocs: Vec::new(),
        tables: Vec::new(),
        stubs: Vec::new(),
        far,
    };
    e.prologue();
    for pos in 0..e.plan.order.len() {
        e.block(pos)?;
    }
    e.trap_stubs();
    let asm_err = |what: dynasmrt::DynasmError| {
        let hint = match what {
            dynasmrt::DynasmError::ImpossibleRelocation(_) => FAR_HINT,
            _ => "",
        };
        Error::Runtime(format!("@{}: {what} {hint}", func.name))
    };
    e.ops.commit().map_err(asm_err)?;
    let mut tables = Vec::new();
    for (name, entries) in &e.tables {
        let mut offs = Vec::with_capacity(entries.len());
        for &l in entries {
            offs.push(e.ops.labels().resolve_dynamic(l).map_err(asm_err)?.0);
        }
        tables.push((name.clone(), offs));
    }
    let relocs = std::mem::take(&mut e.relocs);
    let lines = e.lines.finish();
    let code = e.ops.finalize().map_err(asm_err)?;
    let relocs = relocs
        .into_iter()
        .map(|r| (r.offset, r.kind, r.target, r.addend))
        .collect();
    Ok((code, relocs, tables, lines))
}
