//! AArch64 machine code from a lowered function ([`MFunc`]) and its
//! register allocation (a [`Stream`], taken block by block).
//!
//! Code is assembled with dynasm into a `VecAssembler<Aarch64Relocation>`
//! (never an executable buffer); the bytes are appended to the module's
//! text and every address not known yet becomes a relocation (see
//! `place_function` in `mod.rs`).
//!
//! Frame (addresses upward from `sp`): the outgoing stack-argument area,
//! the spill slots (slot `n` at `sp + outgoing + 8n`), the allocas, the
//! callee-saved registers the allocation used (`x19`–`x28`, and `d8`–`d15`
//! whose low 64 bits AAPCS64 preserves), then the frame record `x29`/`x30`
//! where `x29` points. `sp` does not move in the body, so every frame
//! access is `sp`-relative; each return restores the saved registers and
//! leaves through `x29`.
//!
//! Invariants: between instructions only allocated registers hold values;
//! `x16`, `x17` and `v31` are free inside one instruction's expansion (the
//! allocator uses `x17`/`v31` only inside its own move sequences). Each
//! trapping instruction branches to its own out-of-line `bl` into one
//! shared stub per reason, which jumps (`br`) to the imported trap handler
//! with the code in `w0`: the handler's `x30` names the trapping
//! instruction (trap backtraces). Every machine instruction reports its
//! offset to the line table ([`crate::debug::lines`]).
//!
//! Every direct call (a local function, another module's export or a host
//! function) is `bl` with an `Arm64Call26` relocation, which the registry
//! may route through a veneer (clobbering only `x16`) when the target is
//! beyond ±128 MiB; `addr` of an import is an inline literal (`Abs64`).

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::asm::{
    add_lo12, add_sp, adrp, b_cond_to, cb_to, cset, enter_frame, float_cond, imm12, int_cond,
    ldr_lit_8, leave_frame, logical_imm, mem, mov_imm, word, Asm, Cond, Mem, BL, B_12, NOP,
};
use super::lower::{AluOp, CallTarget, CmpKind, Imm12, MFunc, Op};
use super::regs::{CALLEE_SAVED_FLOAT, CALLEE_SAVED_INT, FP, SP, X16, X17};
use crate::compiled::CompiledModule;
use crate::debug::lines::{LineRecorder, LineTable};
use crate::error::{Error, Result, TrapCode};
use crate::ir::{Loc, Module, Opcode, SymbolData, Type};
use crate::isa::TRAP_HANDLER;
use crate::regalloc::stream::Stream;
use crate::regalloc::{Allocation, Edit, InstPosition, OperandKind, RegClass};
use crate::reloc::RelocKind;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi};

/// The largest frame a function may have.
const MAX_FRAME: u64 = 1 << 30;

struct Emitter<'a> {
    module: &'a Module,
    mf: &'a MFunc,
    /// The allocation, loaded block by block.
    ra: Stream<'a, MFunc>,
    ops: Asm,
    labels: Vec<DynamicLabel>,
    /// Per trapping instruction: its stub's label, the reason, its location.
    trap_sites: Vec<(DynamicLabel, TrapCode, Loc)>,
    lines: LineRecorder<'a>,
    relocs: Vec<(usize, RelocKind, String, i64)>,
    tables: Vec<(String, Vec<DynamicLabel>)>,
    fname: &'a str,
    /// `sp` offset of spill slot 0.
    spill_base: u64,
    /// `sp` offset of each alloca.
    alloca_at: Vec<u64>,
    /// Saved callee-saved registers and their `sp` offsets (`float`: a
    /// `d` register).
    saved: Vec<(u8, bool, u64)>,
    /// Conditional branches to labels go through an unconditional `b`
    /// (the function is too long for their ±1 MiB).
    far: bool,
}

fn bad(fname: &str, what: &str) -> Error {
    Error::Runtime(format!("@{fname}: bad register allocation ({what})"))
}

impl<'a> Emitter<'a> {
    fn off(&self) -> usize {
        self.ops.offset().0
    }

    fn slot_off(&self, slot: usize) -> i64 {
        (self.spill_base + 8 * slot as u64) as i64
    }

    /// The label of a new trap site for the instruction being emitted.
    fn trap_label(&mut self, code: TrapCode) -> DynamicLabel {
        let l = self.ops.new_dynamic_label();
        self.trap_sites.push((l, code, self.lines.current()));
        l
    }

    /// The name of symbol number `k` of the function.
    fn sym_name(&self, k: u32) -> Result<&'a str> {
        let sym = *self
            .mf
            .syms
            .get(k as usize)
            .ok_or_else(|| bad(self.fname, "symbol"))?;
        Ok(self.module.symbols[sym.index()].name.as_str())
    }

    fn reloc_at(&mut self, at: usize, kind: RelocKind, target: &str) {
        self.relocs.push((at, kind, target.to_string(), 0));
    }

    /// `x<r> = address of target` through an inline, 8-byte-aligned literal
    /// (`Abs64`): imports may be anywhere in the address space.
    fn ldr_sym_literal(&mut self, r: u8, target: &str) {
        if !self.off().is_multiple_of(8) {
            word(&mut self.ops, NOP);
        }
        word(&mut self.ops, ldr_lit_8(r));
        word(&mut self.ops, B_12);
        let at = self.off();
        self.ops.extend([0u8; 8].iter());
        self.reloc_at(at, RelocKind::Abs64, target);
    }

    /// The register of operand `j` of instruction `i`.
    fn reg(&self, i: usize, j: usize) -> Result<u8> {
        self.ra
            .inst_allocs(i)
            .get(j)
            .and_then(|a| a.as_reg())
            .map(|r| r.hw())
            .ok_or_else(|| bad(self.fname, "operand not in a register"))
    }

    /// The registers of instruction `i`'s use operands, in order.
    fn uses(&self, i: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (j, o) in self.mf.operands_of(i).iter().enumerate() {
            if o.kind == OperandKind::Use {
                out.push(self.reg(i, j)?);
            }
        }
        Ok(out)
    }

    /// The first of `uses`.
    fn first_use(&self, uses: &[u8]) -> Result<u8> {
        uses.first()
            .copied()
            .ok_or_else(|| bad(self.fname, "missing use"))
    }

    /// The register of instruction `i`'s last def operand.
    fn def(&self, i: usize) -> Result<u8> {
        let j = self
            .mf
            .operands_of(i)
            .iter()
            .rposition(|o| o.kind == OperandKind::Def)
            .ok_or_else(|| bad(self.fname, "missing def"))?;
        self.reg(i, j)
    }

    fn mov(&mut self, from: Allocation, to: Allocation, class: RegClass) {
        let float = class == RegClass::Float;
        match (from, to) {
            (Allocation::Reg(f), Allocation::Reg(t)) => {
                let (f, t) = (f.hw(), t.hw());
                let ops = &mut self.ops;
                if float {
                    dynasm!(ops ; .arch aarch64 ; fmov D(t), D(f));
                } else {
                    dynasm!(ops ; .arch aarch64 ; mov X(t), X(f));
                }
            }
            (Allocation::Reg(f), Allocation::Stack(s)) => {
                let k = if float { Mem::StrD } else { Mem::StrX };
                let at = self.slot_off(s.index());
                mem(&mut self.ops, k, f.hw(), SP, at);
            }
            (Allocation::Stack(s), Allocation::Reg(t)) => {
                let k = if float { Mem::LdrD } else { Mem::LdrX };
                let at = self.slot_off(s.index());
                mem(&mut self.ops, k, t.hw(), SP, at);
            }
            (Allocation::Stack(a), Allocation::Stack(b)) => {
                // Not produced by the allocator; correct anyway through x17.
                let (oa, ob) = (self.slot_off(a.index()), self.slot_off(b.index()));
                mem(&mut self.ops, Mem::LdrX, X17, SP, oa);
                mem(&mut self.ops, Mem::StrX, X17, SP, ob);
            }
        }
    }

    /// The moves at `pos` of instruction `i`.
    fn edits(&mut self, i: usize, pos: InstPosition) {
        for k in 0..self.ra.edits(i, pos).len() {
            let (_, Edit::Move { from, to, class }) = self.ra.edits(i, pos)[k];
            self.mov(from, to, class);
        }
    }

    fn prologue(&mut self, frame: u64) {
        enter_frame(&mut self.ops, frame);
        for &(r, float, at) in &self.saved {
            let k = if float { Mem::StrD } else { Mem::StrX };
            mem(&mut self.ops, k, r, SP, at as i64);
        }
    }

    fn epilogue(&mut self) {
        for &(r, float, at) in &self.saved {
            let k = if float { Mem::LdrD } else { Mem::LdrX };
            mem(&mut self.ops, k, r, SP, at as i64);
        }
        leave_frame(&mut self.ops);
    }

    /// `cmp`/`cmn`/`fcmp` of the uses of instruction `i` (the second one
    /// absent when `imm`, or when both inputs are one vreg).
    fn compare(&mut self, i: usize, kind: CmpKind, wide: bool, imm: Option<Imm12>) -> Result<Cond> {
        let u = self.uses(i)?;
        let a = *u.first().ok_or_else(|| bad(self.fname, "compare"))?;
        let b = u.get(1).copied().unwrap_or(a);
        let ops = &mut self.ops;
        match kind {
            CmpKind::Test => {
                dynasm!(ops ; .arch aarch64 ; cmp WSP(a), 0);
                Ok(Cond::Ne)
            }
            CmpKind::Int(op) => {
                let c = int_cond(op).ok_or_else(|| bad(self.fname, "compare"))?;
                match (imm, wide) {
                    (Some(Imm12 { value, neg: false }), true) => {
                        dynasm!(ops ; .arch aarch64 ; cmp XSP(a), value)
                    }
                    (Some(Imm12 { value, neg: false }), false) => {
                        dynasm!(ops ; .arch aarch64 ; cmp WSP(a), value)
                    }
                    (Some(Imm12 { value, neg: true }), true) => {
                        dynasm!(ops ; .arch aarch64 ; cmn XSP(a), value)
                    }
                    (Some(Imm12 { value, neg: true }), false) => {
                        dynasm!(ops ; .arch aarch64 ; cmn WSP(a), value)
                    }
                    (None, true) => dynasm!(ops ; .arch aarch64 ; cmp X(a), X(b)),
                    (None, false) => dynasm!(ops ; .arch aarch64 ; cmp W(a), W(b)),
                }
                Ok(c)
            }
            CmpKind::Float(op) => {
                let c = float_cond(op).ok_or_else(|| bad(self.fname, "compare"))?;
                if wide {
                    dynasm!(ops ; .arch aarch64 ; fcmp D(a), D(b));
                } else {
                    dynasm!(ops ; .arch aarch64 ; fcmp S(a), S(b));
                }
                Ok(c)
            }
        }
    }

    fn inst(&mut self, i: usize, block: usize) -> Result<()> {
        let mf = self.mf;
        match &mf.ops[i] {
            Op::Args => {}
            Op::StackArg { off } => {
                let d = self.def(i)?;
                let float = mf
                    .operands_of(i)
                    .first()
                    .is_some_and(|o| o.vreg.class() == RegClass::Float);
                let k = if float { Mem::LdrD } else { Mem::LdrX };
                mem(&mut self.ops, k, d, FP, *off);
            }
            Op::Imm { bits, wide } => {
                let d = self.def(i)?;
                mov_imm(&mut self.ops, d, *bits, *wide);
            }
            Op::FImm { bits, wide } => {
                let d = self.def(i)?;
                let value = if *wide {
                    f64::from_bits(*bits)
                } else {
                    f32::from_bits(*bits as u32) as f64
                };
                // fmov's 8-bit immediates (±n/16 · 2^e, all exact in f32).
                let small = value as f32 as f64 == value
                    && dynasmrt::aarch64::encode_floating_point_immediate(value as f32).is_some();
                let ops = &mut self.ops;
                match (*bits == 0, small, *wide) {
                    (true, _, true) => dynasm!(ops ; .arch aarch64 ; fmov D(d), xzr),
                    (true, _, false) => dynasm!(ops ; .arch aarch64 ; fmov S(d), wzr),
                    (false, true, true) => {
                        dynasm!(ops ; .arch aarch64 ; fmov D(d), value as f32)
                    }
                    (false, true, false) => {
                        dynasm!(ops ; .arch aarch64 ; fmov S(d), value as f32)
                    }
                    _ => {}
                }
                if *bits == 0 || small {
                    return Ok(());
                }
                mov_imm(&mut self.ops, X17, *bits, *wide);
                if *wide {
                    dynasm!(self.ops ; .arch aarch64 ; fmov D(d), x17);
                } else {
                    dynasm!(self.ops ; .arch aarch64 ; fmov S(d), w17);
                }
            }
            Op::Copy => {
                if self.reg(i, 0)? != self.def(i)? {
                    return Err(bad(self.fname, "reused register differs"));
                }
            }
            Op::Alu { op, wide, imm } => self.alu(i, *op, *wide, *imm)?,
            Op::Logic { op, wide, bits } => {
                let (a, d) = (self.reg(i, 0)?, self.def(i)?);
                if !logical_imm(*bits, *wide) {
                    return Err(bad(self.fname, "logical immediate"));
                }
                let (x, w) = (*bits, *bits as u32);
                let ops = &mut self.ops;
                match (op, wide) {
                    (AluOp::And, true) => dynasm!(ops ; .arch aarch64 ; and XSP(d), X(a), x),
                    (AluOp::And, false) => dynasm!(ops ; .arch aarch64 ; and WSP(d), W(a), w),
                    (AluOp::Or, true) => dynasm!(ops ; .arch aarch64 ; orr XSP(d), X(a), x),
                    (AluOp::Or, false) => dynasm!(ops ; .arch aarch64 ; orr WSP(d), W(a), w),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; eor XSP(d), X(a), x),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; eor WSP(d), W(a), w),
                }
            }
            Op::Shift { op, wide, imm } => self.shift(i, *op, *wide, *imm)?,
            Op::Un { op, wide } => {
                let (a, d) = (self.reg(i, 0)?, self.def(i)?);
                let ops = &mut self.ops;
                match (op, wide) {
                    (Opcode::Neg, true) => dynasm!(ops ; .arch aarch64 ; neg X(d), X(a)),
                    (Opcode::Neg, false) => dynasm!(ops ; .arch aarch64 ; neg W(d), W(a)),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; mvn X(d), X(a)),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; mvn W(d), W(a)),
                }
            }
            Op::DivConst {
                op,
                wide,
                plan,
                divisor,
            } => {
                let (x, d) = (self.reg(i, 0)?, self.def(i)?);
                super::divconst::emit(&mut self.ops, *op, *wide, *plan, *divisor, x, d);
            }
            Op::Div {
                op,
                wide,
                check_zero,
                check_overflow,
            } => self.divide(i, *op, *wide, *check_zero, *check_overflow)?,
            Op::Cmp { kind, wide, imm } => {
                let d = self.def(i)?;
                let c = self.compare(i, *kind, *wide, *imm)?;
                cset(&mut self.ops, c, d);
            }
            Op::FBin { op, wide } => {
                let u = self.uses(i)?;
                let (a, d) = (self.first_use(&u)?, self.def(i)?);
                let b = u.get(1).copied().unwrap_or(a);
                let ops = &mut self.ops;
                match (op, wide) {
                    (Opcode::Fadd, true) => dynasm!(ops ; .arch aarch64 ; fadd D(d), D(a), D(b)),
                    (Opcode::Fadd, false) => dynasm!(ops ; .arch aarch64 ; fadd S(d), S(a), S(b)),
                    (Opcode::Fsub, true) => dynasm!(ops ; .arch aarch64 ; fsub D(d), D(a), D(b)),
                    (Opcode::Fsub, false) => dynasm!(ops ; .arch aarch64 ; fsub S(d), S(a), S(b)),
                    (Opcode::Fmul, true) => dynasm!(ops ; .arch aarch64 ; fmul D(d), D(a), D(b)),
                    (Opcode::Fmul, false) => dynasm!(ops ; .arch aarch64 ; fmul S(d), S(a), S(b)),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; fdiv D(d), D(a), D(b)),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; fdiv S(d), S(a), S(b)),
                }
            }
            Op::FUn { op, wide } => {
                let (a, d) = (self.reg(i, 0)?, self.def(i)?);
                let ops = &mut self.ops;
                match (op, wide) {
                    (Opcode::Fneg, true) => dynasm!(ops ; .arch aarch64 ; fneg D(d), D(a)),
                    (Opcode::Fneg, false) => dynasm!(ops ; .arch aarch64 ; fneg S(d), S(a)),
                    (Opcode::Fabs, true) => dynasm!(ops ; .arch aarch64 ; fabs D(d), D(a)),
                    (Opcode::Fabs, false) => dynasm!(ops ; .arch aarch64 ; fabs S(d), S(a)),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; fsqrt D(d), D(a)),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; fsqrt S(d), S(a)),
                }
            }
            Op::Select { float, wide } => {
                let u = self.uses(i)?;
                if u.len() != 3 {
                    return Err(bad(self.fname, "select operands"));
                }
                let (c, a, b, d) = (u[0], u[1], u[2], self.def(i)?);
                let ops = &mut self.ops;
                dynasm!(ops ; .arch aarch64 ; cmp WSP(c), 0);
                match (float, wide) {
                    (true, true) => dynasm!(ops ; .arch aarch64 ; fcsel D(d), D(a), D(b), ne),
                    (true, false) => dynasm!(ops ; .arch aarch64 ; fcsel S(d), S(a), S(b), ne),
                    (false, true) => dynasm!(ops ; .arch aarch64 ; csel X(d), X(a), X(b), ne),
                    (false, false) => dynasm!(ops ; .arch aarch64 ; csel W(d), W(a), W(b), ne),
                }
            }
            Op::Conv { op, from, to } => self.conv(i, *op, *from, *to)?,
            Op::Load { op, ty, disp } => {
                let (base, d) = (self.reg(i, 0)?, self.def(i)?);
                let w = ty.bytes() == 8;
                let k = match op {
                    Opcode::Load if ty.is_float() && w => Mem::LdrD,
                    Opcode::Load if ty.is_float() => Mem::LdrS,
                    Opcode::Load if w => Mem::LdrX,
                    Opcode::Load => Mem::LdrW,
                    Opcode::Load8s if w => Mem::LdrsbX,
                    Opcode::Load8s => Mem::LdrsbW,
                    Opcode::Load8u => Mem::LdrB,
                    Opcode::Load16s if w => Mem::LdrshX,
                    Opcode::Load16s => Mem::LdrshW,
                    Opcode::Load16u => Mem::LdrH,
                    Opcode::Load32s => Mem::LdrswX,
                    _ => Mem::LdrW,
                };
                mem(&mut self.ops, k, d, base, *disp);
            }
            Op::Store {
                bytes,
                float,
                zero,
                disp,
            } => {
                let u = self.uses(i)?;
                // [v, base], or [base] when storing zero or `store p, p`.
                let base = *u.last().ok_or_else(|| bad(self.fname, "store"))?;
                let v = if *zero { SP } else { self.first_use(&u)? };
                let k = match (bytes, float) {
                    (8, true) => Mem::StrD,
                    (_, true) => Mem::StrS,
                    (1, _) => Mem::StrB,
                    (2, _) => Mem::StrH,
                    (4, _) => Mem::StrW,
                    _ => Mem::StrX,
                };
                // Register 31 as the stored value is xzr.
                mem(&mut self.ops, k, v, base, *disp);
            }
            Op::Alloca { idx } => {
                let d = self.def(i)?;
                let at = *self
                    .alloca_at
                    .get(*idx)
                    .ok_or_else(|| bad(self.fname, "alloca"))?;
                add_sp(&mut self.ops, d, at);
            }
            Op::Addr { sym, far } => {
                let d = self.def(i)?;
                let name = self.sym_name(*sym)?;
                if *far {
                    self.ldr_sym_literal(d, name);
                } else {
                    let at = self.off();
                    word(&mut self.ops, adrp(d));
                    word(&mut self.ops, add_lo12(d, d));
                    self.reloc_at(at, RelocKind::Arm64AdrpPage21, name);
                    self.reloc_at(at + 4, RelocKind::Arm64AddLo12, name);
                }
            }
            Op::OutArg { off, float } => {
                let v = self.reg(i, 0)?;
                let k = if *float { Mem::StrD } else { Mem::StrX };
                mem(&mut self.ops, k, v, SP, *off as i64);
            }
            Op::Call { target } => match target {
                CallTarget::Direct(k) => {
                    // Beyond ±128 MiB the registry routes it through a veneer.
                    let name = self.sym_name(*k)?;
                    let at = self.off();
                    word(&mut self.ops, BL);
                    self.reloc_at(at, RelocKind::Arm64Call26, name);
                }
                CallTarget::Indirect => {
                    let j = mf
                        .operands_of(i)
                        .iter()
                        .rposition(|o| {
                            o.kind == OperandKind::Use
                                && o.constraint == crate::regalloc::OperandConstraint::Reg
                        })
                        .ok_or_else(|| bad(self.fname, "indirect callee"))?;
                    let c = self.reg(i, j)?;
                    dynasm!(self.ops ; .arch aarch64 ; blr X(c));
                }
            },
            Op::Ret => self.epilogue(),
            Op::Jmp => {
                let s = mf
                    .succs_of(block)
                    .first()
                    .ok_or_else(|| bad(self.fname, "jump target"))?
                    .index();
                if s != block + 1 {
                    let l = self.labels[s];
                    dynasm!(self.ops ; .arch aarch64 ; b =>l);
                }
            }
            Op::Br { kind, wide, imm } => self.branch(i, block, *kind, *wide, *imm)?,
            Op::Switch {
                wide,
                cases,
                dense_min,
                max,
            } => {
                let cases = &mf.switch_cases[cases.0 as usize..cases.1 as usize];
                self.switch(i, block, *wide, cases, *dense_min, *max)?
            }
            Op::Trap => {
                let t = self.trap_label(TrapCode::Unreachable);
                dynasm!(self.ops ; .arch aarch64 ; b =>t);
            }
        }
        Ok(())
    }

    fn alu(&mut self, i: usize, op: AluOp, wide: bool, imm: Option<Imm12>) -> Result<()> {
        let u = self.uses(i)?;
        let (a, d) = (self.first_use(&u)?, self.def(i)?);
        let ops = &mut self.ops;
        if let Some(Imm12 { value, neg }) = imm {
            let sub = (op == AluOp::Sub) != neg;
            match (sub, wide) {
                (false, true) => dynasm!(ops ; .arch aarch64 ; add XSP(d), XSP(a), value),
                (false, false) => dynasm!(ops ; .arch aarch64 ; add WSP(d), WSP(a), value),
                (true, true) => dynasm!(ops ; .arch aarch64 ; sub XSP(d), XSP(a), value),
                (true, false) => dynasm!(ops ; .arch aarch64 ; sub WSP(d), WSP(a), value),
            }
            return Ok(());
        }
        let b = u.get(1).copied().unwrap_or(a);
        match (op, wide) {
            (AluOp::Add, true) => dynasm!(ops ; .arch aarch64 ; add X(d), X(a), X(b)),
            (AluOp::Add, false) => dynasm!(ops ; .arch aarch64 ; add W(d), W(a), W(b)),
            (AluOp::Sub, true) => dynasm!(ops ; .arch aarch64 ; sub X(d), X(a), X(b)),
            (AluOp::Sub, false) => dynasm!(ops ; .arch aarch64 ; sub W(d), W(a), W(b)),
            (AluOp::And, true) => dynasm!(ops ; .arch aarch64 ; and X(d), X(a), X(b)),
            (AluOp::And, false) => dynasm!(ops ; .arch aarch64 ; and W(d), W(a), W(b)),
            (AluOp::Or, true) => dynasm!(ops ; .arch aarch64 ; orr X(d), X(a), X(b)),
            (AluOp::Or, false) => dynasm!(ops ; .arch aarch64 ; orr W(d), W(a), W(b)),
            (AluOp::Xor, true) => dynasm!(ops ; .arch aarch64 ; eor X(d), X(a), X(b)),
            (AluOp::Xor, false) => dynasm!(ops ; .arch aarch64 ; eor W(d), W(a), W(b)),
            (AluOp::Mul, true) => dynasm!(ops ; .arch aarch64 ; mul X(d), X(a), X(b)),
            (AluOp::Mul, false) => dynasm!(ops ; .arch aarch64 ; mul W(d), W(a), W(b)),
        }
        Ok(())
    }

    fn shift(&mut self, i: usize, op: Opcode, wide: bool, imm: Option<u8>) -> Result<()> {
        let u = self.uses(i)?;
        let (a, d) = (self.first_use(&u)?, self.def(i)?);
        let ops = &mut self.ops;
        match imm {
            Some(0) if wide => dynasm!(ops ; .arch aarch64 ; mov X(d), X(a)),
            Some(0) => dynasm!(ops ; .arch aarch64 ; mov W(d), W(a)),
            Some(n) => {
                // Already reduced modulo the width by the lowering.
                let n = n as u32 & if wide { 63 } else { 31 };
                match (op, wide) {
                    (Opcode::Shl, true) => dynasm!(ops ; .arch aarch64 ; lsl X(d), X(a), n),
                    (Opcode::Shl, false) => dynasm!(ops ; .arch aarch64 ; lsl W(d), W(a), n),
                    (Opcode::Shr, true) => dynasm!(ops ; .arch aarch64 ; lsr X(d), X(a), n),
                    (Opcode::Shr, false) => dynasm!(ops ; .arch aarch64 ; lsr W(d), W(a), n),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; asr X(d), X(a), n),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; asr W(d), W(a), n),
                }
            }
            None => {
                // lslv/lsrv/asrv take the count modulo the width.
                let b = u.get(1).copied().unwrap_or(a);
                match (op, wide) {
                    (Opcode::Shl, true) => dynasm!(ops ; .arch aarch64 ; lsl X(d), X(a), X(b)),
                    (Opcode::Shl, false) => dynasm!(ops ; .arch aarch64 ; lsl W(d), W(a), W(b)),
                    (Opcode::Shr, true) => dynasm!(ops ; .arch aarch64 ; lsr X(d), X(a), X(b)),
                    (Opcode::Shr, false) => dynasm!(ops ; .arch aarch64 ; lsr W(d), W(a), W(b)),
                    (_, true) => dynasm!(ops ; .arch aarch64 ; asr X(d), X(a), X(b)),
                    (_, false) => dynasm!(ops ; .arch aarch64 ; asr W(d), W(a), W(b)),
                }
            }
        }
        Ok(())
    }

    /// Division with the SPEC's traps made explicit (AArch64 division never
    /// traps): `cbz` on a zero divisor; for `sdiv`, a divisor of -1 and a
    /// dividend of MIN (`cmp a, #1` overflows exactly for MIN). The checks
    /// read the inputs before the def is written. Remainders are
    /// `a - (a / b) * b` with the quotient in `x16`; `srem` of MIN by -1 is
    /// then 0, as the SPEC wants.
    fn divide(
        &mut self,
        i: usize,
        op: Opcode,
        wide: bool,
        check_zero: bool,
        check_overflow: bool,
    ) -> Result<()> {
        let u = self.uses(i)?;
        let (a, d) = (self.first_use(&u)?, self.def(i)?);
        let b = u.get(1).copied().unwrap_or(a);
        if check_zero {
            let t = self.trap_label(TrapCode::DivisionByZero);
            cb_to(&mut self.ops, false, wide, b, t, self.far);
        }
        if check_overflow {
            let t = self.trap_label(TrapCode::IntegerOverflow);
            let ops = &mut self.ops;
            if wide {
                dynasm!(ops ; .arch aarch64 ; cmn XSP(b), 1 ; b.ne >ok ; cmp XSP(a), 1);
            } else {
                dynasm!(ops ; .arch aarch64 ; cmn WSP(b), 1 ; b.ne >ok ; cmp WSP(a), 1);
            }
            b_cond_to(ops, Cond::Vs, t, self.far);
            dynasm!(ops ; .arch aarch64 ; ok:);
        }
        let ops = &mut self.ops;
        match (op, wide) {
            (Opcode::Sdiv, true) => dynasm!(ops ; .arch aarch64 ; sdiv X(d), X(a), X(b)),
            (Opcode::Sdiv, false) => dynasm!(ops ; .arch aarch64 ; sdiv W(d), W(a), W(b)),
            (Opcode::Udiv, true) => dynasm!(ops ; .arch aarch64 ; udiv X(d), X(a), X(b)),
            (Opcode::Udiv, false) => dynasm!(ops ; .arch aarch64 ; udiv W(d), W(a), W(b)),
            (Opcode::Srem, true) => dynasm!(ops ; .arch aarch64
                ; sdiv x16, X(a), X(b) ; msub X(d), x16, X(b), X(a)),
            (Opcode::Srem, false) => dynasm!(ops ; .arch aarch64
                ; sdiv w16, W(a), W(b) ; msub W(d), w16, W(b), W(a)),
            (_, true) => dynasm!(ops ; .arch aarch64
                ; udiv x16, X(a), X(b) ; msub X(d), x16, X(b), X(a)),
            (_, false) => dynasm!(ops ; .arch aarch64
                ; udiv w16, W(a), W(b) ; msub W(d), w16, W(b), W(a)),
        }
        Ok(())
    }

    fn conv(&mut self, i: usize, op: Opcode, from: Type, to: Type) -> Result<()> {
        let (a, d) = (self.reg(i, 0)?, self.def(i)?);
        let wf = from.bytes() == 8;
        let wt = to.bytes() == 8;
        let ops = &mut self.ops;
        use Opcode as O;
        match op {
            O::Sext => dynasm!(ops ; .arch aarch64 ; sxtw X(d), W(a)),
            // A 32-bit move zero-extends / truncates.
            O::Zext | O::Trunc => dynasm!(ops ; .arch aarch64 ; mov W(d), W(a)),
            O::Fext => dynasm!(ops ; .arch aarch64 ; fcvt D(d), S(a)),
            O::Ftrunc => dynasm!(ops ; .arch aarch64 ; fcvt S(d), D(a)),
            O::Bitcast => match (from.is_float(), wt) {
                (false, true) => dynasm!(ops ; .arch aarch64 ; fmov D(d), X(a)),
                (false, false) => dynasm!(ops ; .arch aarch64 ; fmov S(d), W(a)),
                (true, true) => dynasm!(ops ; .arch aarch64 ; fmov X(d), D(a)),
                (true, false) => dynasm!(ops ; .arch aarch64 ; fmov W(d), S(a)),
            },
            O::Sitof | O::Uitof => match (op == O::Sitof, wf, wt) {
                (true, false, true) => dynasm!(ops ; .arch aarch64 ; scvtf D(d), W(a)),
                (true, false, false) => dynasm!(ops ; .arch aarch64 ; scvtf S(d), W(a)),
                (true, true, true) => dynasm!(ops ; .arch aarch64 ; scvtf D(d), X(a)),
                (true, true, false) => dynasm!(ops ; .arch aarch64 ; scvtf S(d), X(a)),
                (false, false, true) => dynasm!(ops ; .arch aarch64 ; ucvtf D(d), W(a)),
                (false, false, false) => dynasm!(ops ; .arch aarch64 ; ucvtf S(d), W(a)),
                (false, true, true) => dynasm!(ops ; .arch aarch64 ; ucvtf D(d), X(a)),
                (false, true, false) => dynasm!(ops ; .arch aarch64 ; ucvtf S(d), X(a)),
            },
            // fcvtzs/fcvtzu round toward zero, saturate to the destination
            // width and give 0 for NaN: exactly Rust's `as`.
            O::Ftosi | O::Ftoui => match (op == O::Ftosi, wf, wt) {
                (true, true, true) => dynasm!(ops ; .arch aarch64 ; fcvtzs X(d), D(a)),
                (true, true, false) => dynasm!(ops ; .arch aarch64 ; fcvtzs W(d), D(a)),
                (true, false, true) => dynasm!(ops ; .arch aarch64 ; fcvtzs X(d), S(a)),
                (true, false, false) => dynasm!(ops ; .arch aarch64 ; fcvtzs W(d), S(a)),
                (false, true, true) => dynasm!(ops ; .arch aarch64 ; fcvtzu X(d), D(a)),
                (false, true, false) => dynasm!(ops ; .arch aarch64 ; fcvtzu W(d), D(a)),
                (false, false, true) => dynasm!(ops ; .arch aarch64 ; fcvtzu X(d), S(a)),
                (false, false, false) => dynasm!(ops ; .arch aarch64 ; fcvtzu W(d), S(a)),
            },
            _ => return Err(bad(self.fname, op.name())),
        }
        Ok(())
    }

    fn branch(
        &mut self,
        i: usize,
        block: usize,
        kind: CmpKind,
        wide: bool,
        imm: Option<Imm12>,
    ) -> Result<()> {
        let [t, e] = self.mf.succs_of(block)[..] else {
            return Err(bad(self.fname, "branch targets"));
        };
        let (t, e) = (t.index(), e.index());
        let (tl, el) = (self.labels[t], self.labels[e]);
        // `c != 0` on an i32, and `x == 0` / `x != 0` fused from a compare:
        // cbz/cbnz, no flags needed. (`wide`: the compare's width.)
        let zero_test = match (kind, imm) {
            (CmpKind::Test, _) => Some((true, false)),
            (CmpKind::Int(Opcode::Ne), Some(Imm12 { value: 0, .. })) => Some((true, wide)),
            (CmpKind::Int(Opcode::Eq), Some(Imm12 { value: 0, .. })) => Some((false, wide)),
            _ => None,
        };
        if let Some((nonzero, wide)) = zero_test {
            let c = self.reg(i, 0)?;
            if t == block + 1 {
                cb_to(&mut self.ops, !nonzero, wide, c, el, self.far);
            } else {
                cb_to(&mut self.ops, nonzero, wide, c, tl, self.far);
                if e != block + 1 {
                    dynasm!(self.ops ; .arch aarch64 ; b =>el);
                }
            }
            return Ok(());
        }
        let cond = self.compare(i, kind, wide, imm)?;
        if t == block + 1 {
            // The taken side is next: branch on the exact negation to the
            // other side and fall through.
            b_cond_to(&mut self.ops, cond.invert(), el, self.far);
        } else {
            b_cond_to(&mut self.ops, cond, tl, self.far);
            if e != block + 1 {
                dynasm!(self.ops ; .arch aarch64 ; b =>el);
            }
        }
        Ok(())
    }

    /// A `switch` dispatch: a bounds check and an indirect branch through
    /// a table in rodata (`dense_min`), or a chain of compares.
    #[allow(clippy::too_many_arguments)]
    fn switch(
        &mut self,
        i: usize,
        block: usize,
        wide: bool,
        cases: &[(u64, u32)],
        dense_min: Option<u64>,
        max: u64,
    ) -> Result<()> {
        let v = self.reg(i, 0)?;
        let succs = self.mf.succs_of(block);
        let labels = &self.labels;
        let label = |idx: u32| succs.get(idx as usize).map(|s| labels[s.index()]);
        let dl = label(0).ok_or_else(|| bad(self.fname, "switch default"))?;
        let Some(min) = dense_min else {
            for &(k, idx) in cases {
                let l = label(idx).ok_or_else(|| bad(self.fname, "switch"))?;
                let neg = if wide {
                    k.wrapping_neg()
                } else {
                    (k as u32).wrapping_neg() as u64
                };
                let ops = &mut self.ops;
                match (imm12(k), imm12(neg), wide) {
                    (Some(x), _, true) => dynasm!(ops ; .arch aarch64 ; cmp XSP(v), x),
                    (Some(x), _, false) => dynasm!(ops ; .arch aarch64 ; cmp WSP(v), x),
                    (None, Some(x), true) => dynasm!(ops ; .arch aarch64 ; cmn XSP(v), x),
                    (None, Some(x), false) => dynasm!(ops ; .arch aarch64 ; cmn WSP(v), x),
                    (None, None, _) => {
                        mov_imm(ops, X17, k, wide);
                        if wide {
                            dynasm!(ops ; .arch aarch64 ; cmp X(v), x17);
                        } else {
                            dynasm!(ops ; .arch aarch64 ; cmp W(v), w17);
                        }
                    }
                }
                b_cond_to(&mut self.ops, Cond::Eq, l, self.far);
            }
            dynasm!(self.ops ; .arch aarch64 ; b =>dl);
            return Ok(());
        };
        let mut keys: Vec<(u64, DynamicLabel)> = Vec::with_capacity(cases.len());
        for &(k, idx) in cases {
            keys.push((k, label(idx).ok_or_else(|| bad(self.fname, "switch"))?));
        }
        let range = max.wrapping_sub(min);
        let ops = &mut self.ops;
        // x17 = v - min, zero-extended (a `w` result clears the top half).
        match (imm12(min), wide) {
            (Some(m), true) => dynasm!(ops ; .arch aarch64 ; sub x17, XSP(v), m),
            (Some(m), false) => dynasm!(ops ; .arch aarch64 ; sub w17, WSP(v), m),
            (None, true) => {
                mov_imm(ops, X17, min, true);
                dynasm!(ops ; .arch aarch64 ; sub x17, X(v), x17);
            }
            (None, false) => {
                mov_imm(ops, X17, min, false);
                dynasm!(ops ; .arch aarch64 ; sub w17, W(v), w17);
            }
        }
        match imm12(range) {
            Some(r) => dynasm!(ops ; .arch aarch64 ; cmp x17, r),
            None => {
                mov_imm(ops, X16, range, true);
                dynasm!(ops ; .arch aarch64 ; cmp x17, x16);
            }
        }
        b_cond_to(ops, Cond::Hi, dl, self.far);
        let name = format!("{}#jt{}", self.fname, self.tables.len());
        let at = self.off();
        word(&mut self.ops, adrp(X16));
        word(&mut self.ops, add_lo12(X16, X16));
        self.reloc_at(at, RelocKind::Arm64AdrpPage21, &name);
        self.reloc_at(at + 4, RelocKind::Arm64AddLo12, &name);
        dynasm!(self.ops ; .arch aarch64 ; ldr x16, [x16, x17, lsl 3] ; br x16);
        let mut entries = vec![dl; range as usize + 1];
        for (k, l) in keys {
            if let Some(e) = entries.get_mut(k.wrapping_sub(min) as usize) {
                *e = l;
            }
        }
        self.tables.push((name, entries));
        Ok(())
    }

    /// Each site: `bl` its reason's shared stub (attributed to the
    /// trapping instruction); each shared stub: `movz w0, code`, the
    /// handler's address from a literal, `br x16`.
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

/// Emits the allocated function `mf` as symbol `sym` into `out`.
pub fn emit_function(
    module: &Module,
    sym: &SymbolData,
    mf: &MFunc,
    ra: Stream<'_, MFunc>,
    out: &mut CompiledModule,
) -> Result<()> {
    let fname = sym.name.as_str();
    let too_big = || Error::Runtime(format!("@{fname}: frame too large"));
    let mut top = mf.outgoing as u64;
    let spill_base = top;
    top += 8 * ra.num_spillslots() as u64;
    let mut alloca_at = Vec::with_capacity(mf.allocas.len());
    for &(size, align) in &mf.allocas {
        top = top.checked_add(align - 1).ok_or_else(too_big)? / align * align;
        alloca_at.push(top);
        top = top
            .checked_add(size)
            .filter(|&t| t <= MAX_FRAME)
            .ok_or_else(too_big)?;
    }
    let mut saved = Vec::new();
    for &r in &CALLEE_SAVED_INT {
        if ra.callee_saved_used().contains(super::regs::int(r)) {
            saved.push((r, false, top));
            top += 8;
        }
    }
    for &r in &CALLEE_SAVED_FLOAT {
        if ra.callee_saved_used().contains(super::regs::float(r)) {
            saved.push((r, true, top));
            top += 8;
        }
    }
    let frame = top.div_ceil(16) * 16;
    if frame > MAX_FRAME {
        return Err(too_big());
    }

    let layout = Layout {
        spill_base,
        alloca_at,
        saved,
        frame,
    };
    // Conditional branches reach ±1 MiB: a longer function is assembled
    // again with every one of them made far.
    let (first, ra) = assemble(module, mf, ra, fname, &layout, false);
    let (mut code, relocs, tables, lines) = match first {
        Err(Error::Runtime(m)) if m.contains(FAR_HINT) => {
            assemble(module, mf, ra, fname, &layout, true).0?
        }
        other => other?,
    };
    super::place_function(
        module,
        sym,
        &mut code,
        relocs.into_iter(),
        tables,
        lines,
        out,
    )
}

/// The frame of one function, computed from its allocation.
struct Layout {
    spill_base: u64,
    alloca_at: Vec<u64>,
    saved: Vec<(u8, bool, u64)>,
    frame: u64,
}

/// What dynasm reports for a branch whose target is out of its range.
const FAR_HINT: &str = "out of range";

type Assembled = (
    Vec<u8>,
    Vec<(usize, RelocKind, String, i64)>,
    Vec<(String, Vec<usize>)>,
    LineTable,
);

/// Assembles the function: its code, relocations, jump tables and line
/// table; gives the allocation back (for a second attempt).
fn assemble<'a>(
    module: &'a Module,
    mf: &'a MFunc,
    ra: Stream<'a, MFunc>,
    fname: &'a str,
    layout: &Layout,
    far: bool,
) -> (Result<Assembled>, Stream<'a, MFunc>) {
    let mut ops = Asm::new(0);
    let labels = (0..mf.num_blocks())
        .map(|_| ops.new_dynamic_label())
        .collect();
    let mut e = Emitter {
        module,
        mf,
        ra,
        ops,
        labels,
        trap_sites: Vec::new(),
        lines: LineRecorder::new(&mf.src),
        relocs: Vec::new(),
        tables: Vec::new(),
        fname,
        spill_base: layout.spill_base,
        alloca_at: layout.alloca_at.clone(),
        saved: layout.saved.clone(),
        far,
    };
    let r = e.body(layout.frame, fname);
    (r, e.ra)
}

impl Emitter<'_> {
    /// The prologue, every block, the trap stubs; assembled.
    fn body(&mut self, frame: u64, fname: &str) -> Result<Assembled> {
        let mf = self.mf;
        self.prologue(frame);
        for b in 0..mf.num_blocks() {
            let l = self.labels[b];
            dynasm!(self.ops ; .arch aarch64 ; =>l);
            self.ra.load(b)?;
            for i in mf.insts_of(b) {
                self.lines.minst(i, self.ops.offset().0);
                self.edits(i, InstPosition::Before);
                self.inst(i, b)?;
                self.edits(i, InstPosition::After);
            }
        }
        self.trap_stubs();
        let asm_err = |what: dynasmrt::DynasmError| {
            let hint = match what {
                dynasmrt::DynasmError::ImpossibleRelocation(_) => FAR_HINT,
                _ => "",
            };
            Error::Runtime(format!("@{fname}: {what} {hint}"))
        };
        self.ops.commit().map_err(asm_err)?;
        let mut tables = Vec::new();
        for (name, entries) in &self.tables {
            let mut offs = Vec::with_capacity(entries.len());
            for &l in entries {
                offs.push(self.ops.labels().resolve_dynamic(l).map_err(asm_err)?.0);
            }
            tables.push((name.clone(), offs));
        }
        let relocs = std::mem::take(&mut self.relocs);
        let lines = std::mem::replace(&mut self.lines, LineRecorder::new(&mf.src)).finish();
        let code = std::mem::replace(&mut self.ops, Asm::new(0))
            .finalize()
            .map_err(asm_err)?;
        Ok((code, relocs, tables, lines))
    }
}
