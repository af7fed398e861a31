//! x86-64 machine code from a lowered function ([`MFunc`]) and its register
//! allocation (a [`Stream`], taken block by block).
//!
//! Code is assembled with dynasm into a `VecAssembler<X64Relocation>` (never
//! an executable buffer); the bytes are appended to the module's text and
//! every address not known yet becomes a [`crate::reloc::Reloc`].
//!
//! Frame (`rbp`-based): `push rbp; mov rbp, rsp`, then a `push` of each
//! callee-saved register the allocation used (and only those), then
//! `sub rsp, N` covering spill slots, allocas and the outgoing
//! stack-argument area, with `rsp` 16-byte aligned. Spill slot `n` is at
//! `rbp - 8*saved - 8*(n+1)`. Each return restores the saved registers.
//!
//! Invariants: between instructions only allocated registers hold values;
//! `r11` and `xmm15` are free inside one instruction's expansion and for the
//! allocator's moves. Each trapping instruction jumps to its own
//! out-of-line `call` into one shared stub per reason, which jumps to the
//! imported trap handler with the code in `edi`: the return address the
//! handler finds names the trapping instruction (trap backtraces). Every
//! machine instruction reports its offset to the line table
//! ([`crate::debug::lines`]).
//!
//! Every direct call (a local function, another module's export or a host
//! function) is `call rel32` with an `X86CallPcRel32` relocation, which the
//! registry may route through a stub when the target is beyond ±2 GiB;
//! `addr` of an import is `movabs` (`Abs64`), which reaches anything.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::lower::{AluOp, CallTarget, CmpKind, MFunc, Op, UnOp};
use super::regs::{is_callee_saved_int, CALLEE_SAVED_INT, R11, RAX, RDX};
use crate::compiled::CompiledModule;
use crate::debug::lines::{LineRecorder, LineTable};
use crate::error::{Error, Result, TrapCode};
use crate::ir::{Loc, Opcode, Type};
use crate::isa::TRAP_HANDLER;
use crate::regalloc::stream::Stream;
use crate::regalloc::{Allocation, Edit, InstPosition, RegClass};
use crate::reloc::RelocKind;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi};

use super::asm::{int_cc, invert, jcc, lea_frame, mov_imm, setcc, sub_rsp_probed, Asm, Cc, Cond};

struct FnReloc {
    offset: usize,
    kind: RelocKind,
    target: String,
    addend: i64,
}

struct Emitter<'a> {
    module: &'a crate::ir::Module,
    /// Per block: the block a branch to it really goes to (a block that is
    /// only a jump without moves forwards to its target).
    dest: Vec<u32>,
    mf: &'a MFunc,
    /// The allocation, loaded block by block.
    ra: Stream<'a, MFunc>,
    ops: Asm,
    labels: Vec<DynamicLabel>,
    /// Per trapping instruction: its stub's label, the reason, its location.
    trap_sites: Vec<(DynamicLabel, TrapCode, Loc)>,
    lines: LineRecorder<'a>,
    relocs: Vec<FnReloc>,
    tables: Vec<(String, Vec<DynamicLabel>)>,
    fname: &'a str,
    /// Callee-saved registers pushed by the prologue, in push order.
    saved: Vec<u8>,
    /// `rbp` offset of each alloca.
    alloca_at: Vec<i64>,
}

fn bad(fname: &str, what: &str) -> Error {
    Error::Runtime(format!("@{fname}: bad register allocation ({what})"))
}

impl<'a> Emitter<'a> {
    fn slot_off(&self, slot: usize) -> i32 {
        -8 * self.saved.len() as i32 - 8 * (slot as i32 + 1)
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

    fn reloc_here(&mut self, back: usize, kind: RelocKind, target: &str, addend: i64) {
        let offset = self.off() - back;
        self.relocs.push(FnReloc {
            offset,
            kind,
            target: target.to_string(),
            addend,
        });
    }

    fn mov_imm(&mut self, r: u8, bits: u64) {
        mov_imm(&mut self.ops, r, bits);
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

    fn movabs_sym(&mut self, r: u8, target: &str) {
        let ops = &mut self.ops;
        dynasm!(ops ; .arch x64 ; mov Rq(r), QWORD 0);
        self.reloc_here(8, RelocKind::Abs64, target, 0);
    }

    /// `lea r, [rip + target]`.
    fn lea_rip(&mut self, r: u8, target: &str) {
        let rex = 0x48 | ((r >> 3) << 2);
        let modrm = 0x05 | ((r & 7) << 3);
        self.ops.extend([rex, 0x8d, modrm, 0, 0, 0, 0].iter());
        self.reloc_here(4, RelocKind::X86PcRel32, target, -4);
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

    fn mov(&mut self, from: Allocation, to: Allocation, class: RegClass) {
        let ops = &mut self.ops;
        match (from, to, class) {
            (Allocation::Reg(f), Allocation::Reg(t), RegClass::Int) => {
                dynasm!(ops ; .arch x64 ; mov Rq(t.hw()), Rq(f.hw()))
            }
            (Allocation::Reg(f), Allocation::Reg(t), RegClass::Float) => {
                dynasm!(ops ; .arch x64 ; movaps Rx(t.hw()), Rx(f.hw()))
            }
            (Allocation::Reg(f), Allocation::Stack(s), c) => {
                let o = self.slot_off(s.index());
                let ops = &mut self.ops;
                if c == RegClass::Int {
                    dynasm!(ops ; .arch x64 ; mov QWORD [rbp + o], Rq(f.hw()));
                } else {
                    dynasm!(ops ; .arch x64 ; movsd QWORD [rbp + o], Rx(f.hw()));
                }
            }
            (Allocation::Stack(s), Allocation::Reg(t), c) => {
                let o = self.slot_off(s.index());
                let ops = &mut self.ops;
                if c == RegClass::Int {
                    dynasm!(ops ; .arch x64 ; mov Rq(t.hw()), QWORD [rbp + o]);
                } else {
                    dynasm!(ops ; .arch x64 ; movsd Rx(t.hw()), QWORD [rbp + o]);
                }
            }
            (Allocation::Stack(a), Allocation::Stack(b), _) => {
                // Not produced by the allocator; correct anyway through r11.
                let (oa, ob) = (self.slot_off(a.index()), self.slot_off(b.index()));
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; mov r11, QWORD [rbp + oa] ; mov QWORD [rbp + ob], r11);
            }
        }
    }

    /// The moves at `pos` of instruction `i`.
    #[inline]
    fn edits(&mut self, i: usize, pos: InstPosition) {
        // Most points have none: no call.
        if !self.ra.edits(i, pos).is_empty() {
            self.moves(i, pos);
        }
    }

    fn moves(&mut self, i: usize, pos: InstPosition) {
        for k in 0..self.ra.edits(i, pos).len() {
            let (_, Edit::Move { from, to, class }) = self.ra.edits(i, pos)[k];
            self.mov(from, to, class);
        }
    }

    fn prologue(&mut self, frame_below_saves: u64) {
        let ops = &mut self.ops;
        dynasm!(ops ; .arch x64 ; push rbp ; mov rbp, rsp);
        for &r in &self.saved {
            dynasm!(ops ; .arch x64 ; push Rq(r));
        }
        sub_rsp_probed(ops, frame_below_saves);
    }

    fn epilogue(&mut self) {
        let k = -8 * self.saved.len() as i32;
        let ops = &mut self.ops;
        if k == 0 {
            dynasm!(ops ; .arch x64 ; mov rsp, rbp);
        } else {
            dynasm!(ops ; .arch x64 ; lea rsp, [rbp + k]);
        }
        for &r in self.saved.iter().rev() {
            dynasm!(ops ; .arch x64 ; pop Rq(r));
        }
        dynasm!(ops ; .arch x64 ; pop rbp ; ret);
    }

    /// Sets the flags for a comparison whose operands are 0 and 1 of
    /// instruction `i` (1 absent when `imm`).
    fn compare(&mut self, i: usize, kind: CmpKind, wide: bool, imm: Option<i32>) -> Result<Cond> {
        let a = self.reg(i, 0)?;
        let ops = &mut self.ops;
        match kind {
            CmpKind::Test => {
                dynasm!(ops ; .arch x64 ; test Rd(a), Rd(a));
                Ok(Cond::Flags(Cc::Ne))
            }
            CmpKind::Int(op) => {
                let cc = int_cc(op).ok_or_else(|| bad(self.fname, "compare"))?;
                match imm {
                    Some(k) if wide => dynasm!(ops ; .arch x64 ; cmp Rq(a), k),
                    Some(k) => dynasm!(ops ; .arch x64 ; cmp Rd(a), k),
                    None => {
                        let b = self.reg(i, 1)?;
                        let ops = &mut self.ops;
                        if wide {
                            dynasm!(ops ; .arch x64 ; cmp Rq(a), Rq(b));
                        } else {
                            dynasm!(ops ; .arch x64 ; cmp Rd(a), Rd(b));
                        }
                    }
                }
                Ok(Cond::Flags(cc))
            }
            CmpKind::Float(op) => {
                let b = self.reg(i, 1)?;
                // flt/fle compare swapped so that "above" excludes
                // unordered (ucomis sets ZF, PF and CF on NaN).
                let (swap, cond) = match op {
                    Opcode::Feq => (false, Cond::FloatEq),
                    Opcode::Fne => (false, Cond::FloatNe),
                    Opcode::Flt => (true, Cond::Flags(Cc::A)),
                    Opcode::Fle => (true, Cond::Flags(Cc::Ae)),
                    Opcode::Fgt => (false, Cond::Flags(Cc::A)),
                    _ => (false, Cond::Flags(Cc::Ae)),
                };
                let (x, y) = if swap { (b, a) } else { (a, b) };
                let ops = &mut self.ops;
                if wide {
                    dynasm!(ops ; .arch x64 ; ucomisd Rx(x), Rx(y));
                } else {
                    dynasm!(ops ; .arch x64 ; ucomiss Rx(x), Rx(y));
                }
                Ok(cond)
            }
        }
    }

    fn inst(&mut self, i: usize, block: usize) -> Result<()> {
        let mf = self.mf;
        let nops = mf.operands_of(i).len();
        // The def of a two-address form must share its input's register.
        let same = |e: &Self, x: usize, y: usize| -> Result<()> {
            if e.reg(i, x)? == e.reg(i, y)? {
                Ok(())
            } else {
                Err(bad(e.fname, "reused register differs"))
            }
        };
        match &mf.ops[i] {
            Op::Args => {}
            Op::StackArg { off } => {
                let d = self.reg(i, 0)?;
                let off = *off;
                let float = mf.operands_of(i)[0].vreg.class() == RegClass::Float;
                let ops = &mut self.ops;
                if float {
                    dynasm!(ops ; .arch x64 ; movsd Rx(d), QWORD [rbp + off]);
                } else {
                    dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [rbp + off]);
                }
            }
            Op::Imm { bits } => {
                let d = self.reg(i, 0)?;
                self.mov_imm(d, *bits);
            }
            Op::FImm { bits, .. } => {
                let d = self.reg(i, 0)?;
                if *bits == 0 {
                    dynasm!(self.ops ; .arch x64 ; xorps Rx(d), Rx(d));
                } else {
                    self.mov_imm(R11, *bits);
                    dynasm!(self.ops ; .arch x64 ; movq Rx(d), r11);
                }
            }
            Op::Copy => same(self, 0, 1)?,
            Op::Alu { op, wide, imm } => {
                let d = self.reg(i, 0)?;
                same(self, 0, nops - 1)?;
                let w = *wide;
                match imm {
                    Some(k) => {
                        let k = *k;
                        let ops = &mut self.ops;
                        match (op, w) {
                            (AluOp::Add, true) => dynasm!(ops ; .arch x64 ; add Rq(d), k),
                            (AluOp::Add, false) => dynasm!(ops ; .arch x64 ; add Rd(d), k),
                            (AluOp::Sub, true) => dynasm!(ops ; .arch x64 ; sub Rq(d), k),
                            (AluOp::Sub, false) => dynasm!(ops ; .arch x64 ; sub Rd(d), k),
                            (AluOp::And, true) => dynasm!(ops ; .arch x64 ; and Rq(d), k),
                            (AluOp::And, false) => dynasm!(ops ; .arch x64 ; and Rd(d), k),
                            (AluOp::Or, true) => dynasm!(ops ; .arch x64 ; or Rq(d), k),
                            (AluOp::Or, false) => dynasm!(ops ; .arch x64 ; or Rd(d), k),
                            (AluOp::Xor, true) => dynasm!(ops ; .arch x64 ; xor Rq(d), k),
                            (AluOp::Xor, false) => dynasm!(ops ; .arch x64 ; xor Rd(d), k),
                            (AluOp::Mul, true) => dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(d), k),
                            (AluOp::Mul, false) => dynasm!(ops ; .arch x64 ; imul Rd(d), Rd(d), k),
                        }
                    }
                    None => {
                        let b = self.reg(i, 1)?;
                        let ops = &mut self.ops;
                        match (op, w) {
                            (AluOp::Add, true) => dynasm!(ops ; .arch x64 ; add Rq(d), Rq(b)),
                            (AluOp::Add, false) => dynasm!(ops ; .arch x64 ; add Rd(d), Rd(b)),
                            (AluOp::Sub, true) => dynasm!(ops ; .arch x64 ; sub Rq(d), Rq(b)),
                            (AluOp::Sub, false) => dynasm!(ops ; .arch x64 ; sub Rd(d), Rd(b)),
                            (AluOp::And, true) => dynasm!(ops ; .arch x64 ; and Rq(d), Rq(b)),
                            (AluOp::And, false) => dynasm!(ops ; .arch x64 ; and Rd(d), Rd(b)),
                            (AluOp::Or, true) => dynasm!(ops ; .arch x64 ; or Rq(d), Rq(b)),
                            (AluOp::Or, false) => dynasm!(ops ; .arch x64 ; or Rd(d), Rd(b)),
                            (AluOp::Xor, true) => dynasm!(ops ; .arch x64 ; xor Rq(d), Rq(b)),
                            (AluOp::Xor, false) => dynasm!(ops ; .arch x64 ; xor Rd(d), Rd(b)),
                            (AluOp::Mul, true) => dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(b)),
                            (AluOp::Mul, false) => dynasm!(ops ; .arch x64 ; imul Rd(d), Rd(b)),
                        }
                    }
                }
            }
            Op::Mul3 { wide, imm } => {
                let (a, d, k) = (self.reg(i, 0)?, self.reg(i, 1)?, *imm);
                let ops = &mut self.ops;
                if *wide {
                    dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(a), k);
                } else {
                    dynasm!(ops ; .arch x64 ; imul Rd(d), Rd(a), k);
                }
            }
            Op::Shift { op, wide, imm } => {
                let d = self.reg(i, 0)?;
                same(self, 0, nops - 1)?;
                let ops = &mut self.ops;
                match imm {
                    Some(n) => {
                        let n = *n as i8;
                        match (op, wide) {
                            (Opcode::Shl, true) => dynasm!(ops ; .arch x64 ; shl Rq(d), n),
                            (Opcode::Shl, false) => dynasm!(ops ; .arch x64 ; shl Rd(d), n),
                            (Opcode::Shr, true) => dynasm!(ops ; .arch x64 ; shr Rq(d), n),
                            (Opcode::Shr, false) => dynasm!(ops ; .arch x64 ; shr Rd(d), n),
                            (_, true) => dynasm!(ops ; .arch x64 ; sar Rq(d), n),
                            (_, false) => dynasm!(ops ; .arch x64 ; sar Rd(d), n),
                        }
                    }
                    // x86 masks the count by 31 / 63: "modulo the width".
                    None => match (op, wide) {
                        (Opcode::Shl, true) => dynasm!(ops ; .arch x64 ; shl Rq(d), cl),
                        (Opcode::Shl, false) => dynasm!(ops ; .arch x64 ; shl Rd(d), cl),
                        (Opcode::Shr, true) => dynasm!(ops ; .arch x64 ; shr Rq(d), cl),
                        (Opcode::Shr, false) => dynasm!(ops ; .arch x64 ; shr Rd(d), cl),
                        (_, true) => dynasm!(ops ; .arch x64 ; sar Rq(d), cl),
                        (_, false) => dynasm!(ops ; .arch x64 ; sar Rd(d), cl),
                    },
                }
            }
            Op::Un { op, wide } => {
                let d = self.reg(i, 0)?;
                same(self, 0, 1)?;
                let ops = &mut self.ops;
                match (op, wide) {
                    (UnOp::Neg, true) => dynasm!(ops ; .arch x64 ; neg Rq(d)),
                    (UnOp::Neg, false) => dynasm!(ops ; .arch x64 ; neg Rd(d)),
                    (UnOp::Not, true) => dynasm!(ops ; .arch x64 ; not Rq(d)),
                    (UnOp::Not, false) => dynasm!(ops ; .arch x64 ; not Rd(d)),
                    (UnOp::Btc(n), _) => dynasm!(ops ; .arch x64 ; btc Rq(d), BYTE *n as i8),
                    (UnOp::Btr(n), _) => dynasm!(ops ; .arch x64 ; btr Rq(d), BYTE *n as i8),
                }
            }
            Op::DivConst {
                op,
                wide,
                plan,
                divisor,
            } => {
                let x = self.reg(i, 0)?;
                super::divconst::emit(&mut self.ops, *op, *wide, *plan, *divisor, x)?;
            }
            Op::Div {
                op,
                wide,
                check_zero,
            } => {
                let b = self.reg(i, 1)?;
                if self.reg(i, 0)? != RAX || b == RDX {
                    return Err(bad(self.fname, "div registers"));
                }
                if *check_zero {
                    let t = self.trap_label(TrapCode::DivisionByZero);
                    dynasm!(self.ops ; .arch x64 ; test Rq(b), Rq(b) ; jz =>t);
                }
                let ovf = self.trap_label(TrapCode::IntegerOverflow);
                let ops = &mut self.ops;
                match (op, wide) {
                    // MIN / -1 overflows: -1 divides as a negation, which
                    // sets OF exactly for MIN.
                    (Opcode::Sdiv, true) => dynasm!(ops ; .arch x64
                        ; cmp Rq(b), -1 ; jne >div ; neg rax ; jo =>ovf ; jmp >done
                        ; div: ; cqo ; idiv Rq(b) ; done:),
                    (Opcode::Sdiv, false) => dynasm!(ops ; .arch x64
                        ; cmp Rd(b), -1 ; jne >div ; neg eax ; jo =>ovf ; jmp >done
                        ; div: ; cdq ; idiv Rd(b) ; done:),
                    // x % -1 is 0 for every x; idiv would fault on MIN.
                    (Opcode::Srem, true) => dynasm!(ops ; .arch x64
                        ; cmp Rq(b), -1 ; jne >div ; xor edx, edx ; jmp >done
                        ; div: ; cqo ; idiv Rq(b) ; done:),
                    (Opcode::Srem, false) => dynasm!(ops ; .arch x64
                        ; cmp Rd(b), -1 ; jne >div ; xor edx, edx ; jmp >done
                        ; div: ; cdq ; idiv Rd(b) ; done:),
                    (_, true) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div Rq(b)),
                    (_, false) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div Rd(b)),
                }
            }
            Op::Cmp { kind, wide, imm } => {
                let d = self.reg(i, nops - 1)?;
                if matches!(kind, CmpKind::Float(_)) {
                    // d is an integer register, the inputs are xmm: clear d
                    // before the flags are set.
                    let init = matches!(kind, CmpKind::Float(Opcode::Fne)) as i32;
                    dynasm!(self.ops ; .arch x64 ; mov Rd(d), init);
                }
                match self.compare(i, *kind, *wide, *imm)? {
                    Cond::Flags(cc) => setcc(&mut self.ops, cc, d),
                    Cond::FloatEq => {
                        dynasm!(self.ops ; .arch x64 ; jp >done ; sete Rb(d) ; done:)
                    }
                    Cond::FloatNe => {
                        dynasm!(self.ops ; .arch x64 ; jp >done ; setne Rb(d) ; done:)
                    }
                }
            }
            Op::FBin { op, wide } => {
                let (d, b) = (self.reg(i, 0)?, self.reg(i, 1)?);
                same(self, 0, 2)?;
                let ops = &mut self.ops;
                match (op, wide) {
                    (Opcode::Fadd, true) => dynasm!(ops ; .arch x64 ; addsd Rx(d), Rx(b)),
                    (Opcode::Fadd, false) => dynasm!(ops ; .arch x64 ; addss Rx(d), Rx(b)),
                    (Opcode::Fsub, true) => dynasm!(ops ; .arch x64 ; subsd Rx(d), Rx(b)),
                    (Opcode::Fsub, false) => dynasm!(ops ; .arch x64 ; subss Rx(d), Rx(b)),
                    (Opcode::Fmul, true) => dynasm!(ops ; .arch x64 ; mulsd Rx(d), Rx(b)),
                    (Opcode::Fmul, false) => dynasm!(ops ; .arch x64 ; mulss Rx(d), Rx(b)),
                    (_, true) => dynasm!(ops ; .arch x64 ; divsd Rx(d), Rx(b)),
                    (_, false) => dynasm!(ops ; .arch x64 ; divss Rx(d), Rx(b)),
                }
            }
            Op::Fsqrt { wide } => {
                let (a, d) = (self.reg(i, 0)?, self.reg(i, 1)?);
                let ops = &mut self.ops;
                if *wide {
                    dynasm!(ops ; .arch x64 ; sqrtsd Rx(d), Rx(a));
                } else {
                    dynasm!(ops ; .arch x64 ; sqrtss Rx(d), Rx(a));
                }
            }
            Op::Select { float } => {
                let (c, a, d) = (self.reg(i, 0)?, self.reg(i, 1)?, self.reg(i, 3)?);
                same(self, 2, 3)?;
                let ops = &mut self.ops;
                if *float {
                    dynasm!(ops ; .arch x64 ; test Rd(c), Rd(c) ; je >skip ; movaps Rx(d), Rx(a) ; skip:);
                } else {
                    dynasm!(ops ; .arch x64 ; test Rd(c), Rd(c) ; cmovne Rq(d), Rq(a));
                }
            }
            Op::Conv { op, from, to } => self.conv(i, *op, *from, *to)?,
            Op::Load { op, ty, disp } => {
                let (base, d, disp) = (self.reg(i, 0)?, self.reg(i, 1)?, *disp);
                let w = ty.bytes() == 8;
                let ops = &mut self.ops;
                match (op, w, ty.is_float()) {
                    (Opcode::Load, true, true) => {
                        dynasm!(ops ; .arch x64 ; movsd Rx(d), QWORD [Rq(base) + disp])
                    }
                    (Opcode::Load, false, true) => {
                        dynasm!(ops ; .arch x64 ; movss Rx(d), DWORD [Rq(base) + disp])
                    }
                    (Opcode::Load, true, _) => {
                        dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [Rq(base) + disp])
                    }
                    (Opcode::Load, false, _) => {
                        dynasm!(ops ; .arch x64 ; mov Rd(d), DWORD [Rq(base) + disp])
                    }
                    (Opcode::Load8s, true, _) => {
                        dynasm!(ops ; .arch x64 ; movsx Rq(d), BYTE [Rq(base) + disp])
                    }
                    (Opcode::Load8s, false, _) => {
                        dynasm!(ops ; .arch x64 ; movsx Rd(d), BYTE [Rq(base) + disp])
                    }
                    (Opcode::Load8u, _, _) => {
                        dynasm!(ops ; .arch x64 ; movzx Rd(d), BYTE [Rq(base) + disp])
                    }
                    (Opcode::Load16s, true, _) => {
                        dynasm!(ops ; .arch x64 ; movsx Rq(d), WORD [Rq(base) + disp])
                    }
                    (Opcode::Load16s, false, _) => {
                        dynasm!(ops ; .arch x64 ; movsx Rd(d), WORD [Rq(base) + disp])
                    }
                    (Opcode::Load16u, _, _) => {
                        dynasm!(ops ; .arch x64 ; movzx Rd(d), WORD [Rq(base) + disp])
                    }
                    (Opcode::Load32s, _, _) => {
                        dynasm!(ops ; .arch x64 ; movsxd Rq(d), DWORD [Rq(base) + disp])
                    }
                    _ => dynasm!(ops ; .arch x64 ; mov Rd(d), DWORD [Rq(base) + disp]),
                }
            }
            Op::Store {
                bytes,
                float,
                imm,
                disp,
            } => {
                let disp = *disp;
                match imm {
                    Some(k) => {
                        let base = self.reg(i, 0)?;
                        let k = *k;
                        let ops = &mut self.ops;
                        match bytes {
                            1 => dynasm!(ops ; .arch x64 ; mov BYTE [Rq(base) + disp], k as i8),
                            2 => dynasm!(ops ; .arch x64 ; mov WORD [Rq(base) + disp], k as i16),
                            4 => dynasm!(ops ; .arch x64 ; mov DWORD [Rq(base) + disp], k),
                            _ => dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], k),
                        }
                    }
                    None => {
                        let (v, base) = (self.reg(i, 0)?, self.reg(i, 1)?);
                        let ops = &mut self.ops;
                        match (bytes, float) {
                            (8, true) => {
                                dynasm!(ops ; .arch x64 ; movsd QWORD [Rq(base) + disp], Rx(v))
                            }
                            (_, true) => {
                                dynasm!(ops ; .arch x64 ; movss DWORD [Rq(base) + disp], Rx(v))
                            }
                            (1, _) => dynasm!(ops ; .arch x64 ; mov BYTE [Rq(base) + disp], Rb(v)),
                            (2, _) => dynasm!(ops ; .arch x64 ; mov WORD [Rq(base) + disp], Rw(v)),
                            (4, _) => dynasm!(ops ; .arch x64 ; mov DWORD [Rq(base) + disp], Rd(v)),
                            _ => dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], Rq(v)),
                        }
                    }
                }
            }
            Op::Alloca { idx } => {
                let d = self.reg(i, 0)?;
                let at = *self
                    .alloca_at
                    .get(*idx)
                    .ok_or_else(|| bad(self.fname, "alloca"))?;
                lea_frame(&mut self.ops, d, at);
            }
            Op::Addr { sym, far } => {
                let d = self.reg(i, 0)?;
                let name = self.sym_name(*sym)?;
                if *far {
                    // A host symbol may be anywhere in the address space.
                    self.movabs_sym(d, name);
                } else {
                    self.lea_rip(d, name);
                }
            }
            Op::OutArg { off, float } => {
                let (v, off) = (self.reg(i, 0)?, *off);
                let ops = &mut self.ops;
                if *float {
                    dynasm!(ops ; .arch x64 ; movsd QWORD [rsp + off], Rx(v));
                } else {
                    dynasm!(ops ; .arch x64 ; mov QWORD [rsp + off], Rq(v));
                }
            }
            Op::Call { target } => match target {
                CallTarget::Direct(k) => {
                    // Veneer-able: a far target (another reservation, a
                    // host function) is reached through a registry stub.
                    let name = self.sym_name(*k)?;
                    self.ops.extend([0xe8u8, 0, 0, 0, 0].iter());
                    self.reloc_here(4, RelocKind::X86CallPcRel32, name, -4);
                }
                CallTarget::Indirect => {
                    let ops = mf.operands_of(i);
                    let j = ops
                        .iter()
                        .rposition(|o| {
                            o.kind == crate::regalloc::OperandKind::Use
                                && o.constraint == crate::regalloc::OperandConstraint::Reg
                        })
                        .ok_or_else(|| bad(self.fname, "indirect callee"))?;
                    let c = self.reg(i, j)?;
                    dynasm!(self.ops ; .arch x64 ; call Rq(c));
                }
            },
            Op::Ret => self.epilogue(),
            Op::Jmp => {
                let s = mf.succs_of(block)[0].index();
                if s != block + 1 {
                    let l = self.labels[self.dest[s] as usize];
                    dynasm!(self.ops ; .arch x64 ; jmp =>l);
                }
            }
            Op::Br { kind, wide, imm } => {
                let succs = mf.succs_of(block);
                let (t, e) = (succs[0].index(), succs[1].index());
                let (tl, el) = (
                    self.labels[self.dest[t] as usize],
                    self.labels[self.dest[e] as usize],
                );
                let cond = self.compare(i, *kind, *wide, *imm)?;
                if t == block + 1 {
                    // The taken side is next: branch on the inverse to the
                    // other side and fall through.
                    match cond {
                        Cond::Flags(cc) => jcc(&mut self.ops, invert(cc), el),
                        // Not equal-and-ordered: unordered or not equal.
                        Cond::FloatEq => dynasm!(self.ops ; .arch x64 ; jp =>el ; jne =>el),
                        // Ordered and equal.
                        Cond::FloatNe => {
                            dynasm!(self.ops ; .arch x64 ; jp >skip ; je =>el ; skip:)
                        }
                    }
                } else {
                    match cond {
                        Cond::Flags(cc) => jcc(&mut self.ops, cc, tl),
                        Cond::FloatEq => dynasm!(self.ops ; .arch x64 ; jp =>el ; je =>tl),
                        Cond::FloatNe => dynasm!(self.ops ; .arch x64 ; jp =>tl ; jne =>tl),
                    }
                    if e != block + 1 {
                        dynasm!(self.ops ; .arch x64 ; jmp =>el);
                    }
                }
            }
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
                dynasm!(self.ops ; .arch x64 ; jmp =>t);
            }
        }
        Ok(())
    }

    fn conv(&mut self, i: usize, op: Opcode, from: Type, to: Type) -> Result<()> {
        let (a, d) = (self.reg(i, 0)?, self.reg(i, 1)?);
        let nops = self.mf.operands_of(i).len();
        let t1 = if nops > 2 { self.reg(i, 2)? } else { R11 };
        let t2 = if nops > 3 { self.reg(i, 3)? } else { R11 };
        let wf = from.bytes() == 8;
        let wt = to.bytes() == 8;
        let ops = &mut self.ops;
        use Opcode as O;
        match op {
            O::Sext => dynasm!(ops ; .arch x64 ; movsxd Rq(d), Rd(a)),
            O::Zext | O::Trunc => dynasm!(ops ; .arch x64 ; mov Rd(d), Rd(a)),
            O::Fext => dynasm!(ops ; .arch x64 ; cvtss2sd Rx(d), Rx(a)),
            O::Ftrunc => dynasm!(ops ; .arch x64 ; cvtsd2ss Rx(d), Rx(a)),
            O::Bitcast => match (from.is_float(), wt) {
                (true, true) => dynasm!(ops ; .arch x64 ; movq Rq(d), Rx(a)),
                (true, false) => dynasm!(ops ; .arch x64 ; movd Rd(d), Rx(a)),
                (false, true) => dynasm!(ops ; .arch x64 ; movq Rx(d), Rq(a)),
                (false, false) => dynasm!(ops ; .arch x64 ; movd Rx(d), Rd(a)),
            },
            O::Fneg | O::Fabs => {
                // Sign-bit operations on the raw bits: no constant pool.
                if wt {
                    dynasm!(ops ; .arch x64 ; movq Rq(t1), Rx(a));
                } else {
                    dynasm!(ops ; .arch x64 ; movd Rd(t1), Rx(a));
                }
                let bit = if wt { 63 } else { 31 };
                if op == O::Fneg {
                    dynasm!(ops ; .arch x64 ; btc Rq(t1), BYTE bit);
                } else {
                    dynasm!(ops ; .arch x64 ; btr Rq(t1), BYTE bit);
                }
                if wt {
                    dynasm!(ops ; .arch x64 ; movq Rx(d), Rq(t1));
                } else {
                    dynasm!(ops ; .arch x64 ; movd Rx(d), Rd(t1));
                }
            }
            O::Sitof | O::Uitof => {
                dynasm!(ops ; .arch x64 ; xorps Rx(d), Rx(d));
                match (op, wf, wt) {
                    (O::Sitof, false, true) => dynasm!(ops ; .arch x64 ; cvtsi2sd Rx(d), Rd(a)),
                    (O::Sitof, false, false) => dynasm!(ops ; .arch x64 ; cvtsi2ss Rx(d), Rd(a)),
                    (O::Sitof, true, true) => dynasm!(ops ; .arch x64 ; cvtsi2sd Rx(d), Rq(a)),
                    (O::Sitof, true, false) => dynasm!(ops ; .arch x64 ; cvtsi2ss Rx(d), Rq(a)),
                    // Unsigned 32-bit: zero-extend, convert as signed 64.
                    (_, false, true) => {
                        dynasm!(ops ; .arch x64 ; mov r11d, Rd(a) ; cvtsi2sd Rx(d), r11)
                    }
                    (_, false, false) => {
                        dynasm!(ops ; .arch x64 ; mov r11d, Rd(a) ; cvtsi2ss Rx(d), r11)
                    }
                    // Unsigned 64-bit with the top bit set: halve (keeping
                    // the low bit for correct rounding), convert, double.
                    (_, true, true) => dynasm!(ops ; .arch x64
                        ; test Rq(a), Rq(a) ; js >big ; cvtsi2sd Rx(d), Rq(a) ; jmp >done
                        ; big: ; mov Rq(t1), Rq(a) ; shr Rq(t1), 1 ; mov Rq(t2), Rq(a) ; and Rd(t2), 1
                        ; or Rq(t1), Rq(t2) ; cvtsi2sd Rx(d), Rq(t1) ; addsd Rx(d), Rx(d) ; done:),
                    (_, true, false) => dynasm!(ops ; .arch x64
                        ; test Rq(a), Rq(a) ; js >big ; cvtsi2ss Rx(d), Rq(a) ; jmp >done
                        ; big: ; mov Rq(t1), Rq(a) ; shr Rq(t1), 1 ; mov Rq(t2), Rq(a) ; and Rd(t2), 1
                        ; or Rq(t1), Rq(t2) ; cvtsi2ss Rx(d), Rq(t1) ; addss Rx(d), Rx(d) ; done:),
                }
            }
            O::Ftosi => {
                // cvtt gives MIN (the "integer indefinite") for NaN and out
                // of range; only then is the input inspected.
                match (wf, wt) {
                    (true, true) => {
                        dynasm!(ops ; .arch x64 ; cvttsd2si Rq(d), Rx(a) ; cmp Rq(d), 1)
                    }
                    (true, false) => {
                        dynasm!(ops ; .arch x64 ; cvttsd2si Rd(d), Rx(a) ; cmp Rd(d), 1)
                    }
                    (false, true) => {
                        dynasm!(ops ; .arch x64 ; cvttss2si Rq(d), Rx(a) ; cmp Rq(d), 1)
                    }
                    (false, false) => {
                        dynasm!(ops ; .arch x64 ; cvttss2si Rd(d), Rx(a) ; cmp Rd(d), 1)
                    }
                }
                dynasm!(ops ; .arch x64 ; jno >done);
                if wf {
                    dynasm!(ops ; .arch x64 ; ucomisd Rx(a), Rx(a) ; jp >nan ; movq Rq(d), Rx(a) ; test Rq(d), Rq(d));
                } else {
                    dynasm!(ops ; .arch x64 ; ucomiss Rx(a), Rx(a) ; jp >nan ; movd Rd(d), Rx(a) ; test Rd(d), Rd(d));
                }
                if wt {
                    dynasm!(ops ; .arch x64
                        ; mov Rq(d), QWORD i64::MIN ; js >done ; mov Rq(d), QWORD i64::MAX ; jmp >done);
                } else {
                    dynasm!(ops ; .arch x64
                        ; mov Rd(d), i32::MIN ; js >done ; mov Rd(d), i32::MAX ; jmp >done);
                }
                dynasm!(ops ; .arch x64 ; nan: ; xor Rd(d), Rd(d) ; done:);
            }
            O::Ftoui if !wt => {
                // A 64-bit signed conversion covers every u32 exactly.
                if wf {
                    dynasm!(ops ; .arch x64 ; cvttsd2si Rq(d), Rx(a));
                } else {
                    dynasm!(ops ; .arch x64 ; cvttss2si Rq(d), Rx(a));
                }
                dynasm!(ops ; .arch x64 ; cmp Rq(d), 1 ; jno >inrange);
                // Indefinite: NaN or |x| >= 2^63.
                if wf {
                    dynasm!(ops ; .arch x64 ; ucomisd Rx(a), Rx(a) ; jp >zero ; movq Rq(t1), Rx(a) ; test Rq(t1), Rq(t1));
                } else {
                    dynasm!(ops ; .arch x64 ; ucomiss Rx(a), Rx(a) ; jp >zero ; movd Rd(t1), Rx(a) ; test Rd(t1), Rd(t1));
                }
                dynasm!(ops ; .arch x64
                    ; js >zero ; mov Rd(d), -1 ; jmp >done
                    ; inrange: ; test Rq(d), Rq(d) ; js >zero
                    ; mov Rq(t1), Rq(d) ; shr Rq(t1), 32 ; jz >done ; mov Rd(d), -1 ; jmp >done
                    ; zero: ; xor Rd(d), Rd(d) ; done:);
            }
            O::Ftoui => {
                let ft = t2;
                if wf {
                    dynasm!(ops ; .arch x64
                        ; ucomisd Rx(a), Rx(a) ; jp >zero
                        ; mov Rq(t1), QWORD 0x43e0_0000_0000_0000 ; movq Rx(ft), Rq(t1)
                        ; ucomisd Rx(a), Rx(ft) ; jae >big
                        ; cvttsd2si Rq(d), Rx(a) ; test Rq(d), Rq(d) ; js >zero ; jmp >done
                        // ft = x - 2^63, as (-2^63) + x.
                        ; big: ; btc Rq(t1), 63 ; movq Rx(ft), Rq(t1) ; addsd Rx(ft), Rx(a)
                        ; cvttsd2si Rq(d), Rx(ft));
                } else {
                    dynasm!(ops ; .arch x64
                        ; ucomiss Rx(a), Rx(a) ; jp >zero
                        ; mov Rd(t1), 0x5f00_0000 ; movd Rx(ft), Rd(t1)
                        ; ucomiss Rx(a), Rx(ft) ; jae >big
                        ; cvttss2si Rq(d), Rx(a) ; test Rq(d), Rq(d) ; js >zero ; jmp >done
                        ; big: ; btc Rd(t1), 31 ; movd Rx(ft), Rd(t1) ; addss Rx(ft), Rx(a)
                        ; cvttss2si Rq(d), Rx(ft));
                }
                // x - 2^63 >= 2^63 converts to indefinite (negative): saturate.
                dynasm!(ops ; .arch x64
                    ; test Rq(d), Rq(d) ; js >max ; btc Rq(d), 63 ; jmp >done
                    ; max: ; mov Rq(d), -1 ; jmp >done
                    ; zero: ; xor Rd(d), Rd(d) ; done:);
            }
            _ => return Err(bad(self.fname, op.name())),
        }
        Ok(())
    }

    /// A `switch` dispatch: a bounds check and an indirect jump through a
    /// table in rodata (`dense_min`), or a chain of compares.
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
        // Each successor's label (through forwarding jumps), by number.
        let targets: Vec<DynamicLabel> = self
            .mf
            .succs_of(block)
            .iter()
            .map(|s| self.labels[self.dest[s.index()] as usize])
            .collect();
        let label = |idx: u32| targets.get(idx as usize).copied();
        let dl = label(0).ok_or_else(|| bad(self.fname, "switch"))?;
        if let Some(min) = dense_min {
            let range = max.wrapping_sub(min);
            let range_i = i32::try_from(range).map_err(|_| bad(self.fname, "switch range"))?;
            dynasm!(self.ops ; .arch x64 ; cmp Rq(v), range_i ; ja =>dl);
            let name = format!("{}#jt{}", self.fname, self.tables.len());
            self.lea_rip(R11, &name);
            dynasm!(self.ops ; .arch x64 ; jmp QWORD [r11 + Rq(v) * 8]);
            let mut entries = vec![dl; range as usize + 1];
            for &(k, idx) in cases {
                let l = label(idx).ok_or_else(|| bad(self.fname, "switch target"))?;
                let at = k.wrapping_sub(min) as usize;
                *entries
                    .get_mut(at)
                    .ok_or_else(|| bad(self.fname, "switch key"))? = l;
            }
            self.tables.push((name, entries));
        } else {
            for &(k, idx) in cases {
                let l = label(idx).ok_or_else(|| bad(self.fname, "switch target"))?;
                let fits = if wide {
                    i32::try_from(k as i64).ok()
                } else {
                    Some(k as u32 as i32)
                };
                match fits {
                    Some(x) if !wide => dynasm!(self.ops ; .arch x64 ; cmp Rd(v), x ; je =>l),
                    Some(x) => dynasm!(self.ops ; .arch x64 ; cmp Rq(v), x ; je =>l),
                    None => {
                        self.mov_imm(R11, k);
                        dynasm!(self.ops ; .arch x64 ; cmp Rq(v), r11 ; je =>l);
                    }
                }
            }
            dynasm!(self.ops ; .arch x64 ; jmp =>dl);
        }
        Ok(())
    }

    /// Each site: `call` its reason's shared stub (5 bytes, attributed to
    /// the trapping instruction); each shared stub: `mov edi, code;
    /// movabs rax, handler; jmp rax`.
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
            dynasm!(self.ops ; .arch x64 ; =>site ; call =>s);
        }
        for (code, s) in shared {
            let c = code.code() as i32;
            dynasm!(self.ops ; .arch x64 ; =>s ; mov edi, c);
            self.movabs_sym(RAX, TRAP_HANDLER);
            dynasm!(self.ops ; .arch x64 ; jmp rax);
        }
    }
}

/// The largest frame the emitter lays out (1 TiB): larger allocas are a
/// compile error rather than address arithmetic that could wrap. Frames
/// beyond the stack's size compile, and fault on a guard page when the
/// prologue probes them.
pub const MAX_FRAME: u64 = 1 << 40;

/// The emitter's buffers, kept between functions.
#[derive(Default)]
pub struct EmitBuf {
    ops: Option<Asm>,
    labels: Vec<DynamicLabel>,
    relocs: Vec<FnReloc>,
    saved: Vec<u8>,
    alloca_at: Vec<i64>,
    code: Vec<u8>,
    dest: Vec<u32>,
}

/// Fills `dest` (per block, where a branch to it should go): a block that
/// is a lone `jmp` with no moves forwards to its target, so branches skip
/// it (edge blocks whose arguments needed no move).
fn forward_jumps(mf: &MFunc, ra: &Stream<'_, MFunc>, dest: &mut Vec<u32>) {
    let nb = mf.num_blocks();
    dest.clear();
    dest.extend(0..nb as u32);
    for (b, d) in dest.iter_mut().enumerate() {
        let r = mf.insts_of(b);
        if r.len() != 1 || !matches!(mf.ops[r.start], Op::Jmp) {
            continue;
        }
        if !ra.jump_moves(b) {
            *d = mf.succs_of(b)[0].0;
        }
    }
    // Follow chains; a cycle of lone jumps keeps its own blocks.
    for b in 0..nb {
        let mut d = dest[b] as usize;
        let mut steps = 0;
        while dest[d] as usize != d && steps < nb {
            d = dest[d] as usize;
            steps += 1;
        }
        dest[b] = if steps < nb { d as u32 } else { b as u32 };
    }
}

/// The frame of an allocated function, the one place it is computed.
/// Below `rbp`: the callee-saved registers the allocation used (pushed,
/// in `saved`), the spill slots, the allocas (each aligned; their `rbp`
/// offsets in `alloca_at`), padding to 16, the outgoing argument area.
/// Returns the bytes the prologue subtracts from `rsp` after its pushes.
fn frame(
    mf: &MFunc,
    ra: &Stream<'_, MFunc>,
    fname: &str,
    saved: &mut Vec<u8>,
    alloca_at: &mut Vec<i64>,
) -> Result<u64> {
    saved.clear();
    saved.extend(
        CALLEE_SAVED_INT
            .iter()
            .copied()
            .filter(|&r| ra.callee_saved_used().contains(super::regs::int(r))),
    );
    debug_assert!(saved.iter().all(|&r| is_callee_saved_int(r)));
    let too_large = || Error::Runtime(format!("@{fname}: frame too large"));
    let mut below: u64 = 8 * saved.len() as u64 + 8 * ra.num_spillslots() as u64;
    alloca_at.clear();
    for &(size, align) in &mf.allocas {
        below = below
            .checked_add(size)
            .and_then(|b| b.checked_add(align - 1))
            .filter(|&b| b <= MAX_FRAME)
            .ok_or_else(too_large)?;
        below = below / align * align;
        alloca_at.push(-(below as i64));
    }
    let total = below.div_ceil(16) * 16 + mf.outgoing as u64;
    if total > MAX_FRAME {
        return Err(too_large());
    }
    Ok(total - 8 * saved.len() as u64)
}

/// Emits the allocated function `mf` as symbol `sym` into `out`.
pub fn emit_function(
    buf: &mut EmitBuf,
    module: &crate::ir::Module,
    sym: &crate::ir::SymbolData,
    mf: &MFunc,
    ra: Stream<'_, MFunc>,
    out: &mut CompiledModule,
) -> Result<()> {
    let fname = sym.name.as_str();
    let mut saved = std::mem::take(&mut buf.saved);
    let mut alloca_at = std::mem::take(&mut buf.alloca_at);
    let sub = frame(mf, &ra, fname, &mut saved, &mut alloca_at)?;
    let mut ops = buf.ops.take().unwrap_or_else(|| Asm::new(0));
    let mut labels = std::mem::take(&mut buf.labels);
    labels.clear();
    labels.extend((0..mf.num_blocks()).map(|_| ops.new_dynamic_label()));
    let mut relocs = std::mem::take(&mut buf.relocs);
    relocs.clear();
    let mut dest = std::mem::take(&mut buf.dest);
    forward_jumps(mf, &ra, &mut dest);
    let mut e = Emitter {
        module,
        dest,
        mf,
        ra,
        ops,
        labels,
        trap_sites: Vec::new(),
        lines: LineRecorder::new(&mf.src),
        relocs,
        tables: Vec::new(),
        fname,
        saved,
        alloca_at,
    };
    let r = e.body(sub);
    let Emitter {
        mut ops,
        labels,
        dest,
        mut relocs,
        tables,
        saved,
        alloca_at,
        lines,
        ..
    } = e;
    let r = r.and_then(|()| {
        finish(
            module,
            sym,
            &mut ops,
            &mut relocs,
            tables,
            lines.finish(),
            &mut buf.code,
            out,
        )
    });
    // A failed function may leave code and labels behind: start afresh.
    buf.ops = r.is_ok().then_some(ops);
    buf.labels = labels;
    buf.dest = dest;
    buf.relocs = relocs;
    buf.saved = saved;
    buf.alloca_at = alloca_at;
    r
}

impl Emitter<'_> {
    /// The prologue, every block in order (each machine instruction's
    /// offset reported to the line table), the trap stubs.
    fn body(&mut self, sub: u64) -> Result<()> {
        let mf = self.mf;
        self.prologue(sub);
        for b in 0..mf.num_blocks() {
            let l = self.labels[b];
            dynasm!(self.ops ; .arch x64 ; =>l);
            self.ra.load(b)?;
            for i in mf.insts_of(b) {
                self.lines.minst(i, self.ops.offset().0);
                self.edits(i, InstPosition::Before);
                self.inst(i, b)?;
                self.edits(i, InstPosition::After);
            }
        }
        self.trap_stubs();
        Ok(())
    }
}

/// Resolves labels, appends the code, symbols, relocations and jump tables.
#[allow(clippy::too_many_arguments)]
fn finish(
    module: &crate::ir::Module,
    sym: &crate::ir::SymbolData,
    ops: &mut Asm,
    relocs: &mut Vec<FnReloc>,
    tables: Vec<(String, Vec<DynamicLabel>)>,
    lines: LineTable,
    code: &mut Vec<u8>,
    out: &mut CompiledModule,
) -> Result<()> {
    let asm_err = |what: dynasmrt::DynasmError| Error::Runtime(format!("@{}: {what}", sym.name));
    ops.commit().map_err(asm_err)?;
    let mut resolved = Vec::with_capacity(tables.len());
    for (name, entries) in tables {
        let mut offs = Vec::with_capacity(entries.len());
        for l in entries {
            offs.push(ops.labels().resolve_dynamic(l).map_err(asm_err)?.0);
        }
        resolved.push((name, offs));
    }
    code.clear();
    if ops.offset().0 >= 1 << 16 {
        // A large function: hand its buffer over instead of copying it
        // (small ones keep the assembler's buffer for the next function).
        *code = ops.take().map_err(asm_err)?;
    } else {
        code.extend(ops.drain().map_err(asm_err)?);
    }
    // Padding between functions is `int3`.
    crate::lower::place::place_function(
        module,
        sym,
        code,
        0xcc,
        relocs
            .drain(..)
            .map(|r| (r.offset, r.kind, r.target, r.addend)),
        resolved,
        lines,
        out,
    )
}
