//! The allocator-free x86-64 code generator: machine code for one function
//! from its [`Plan`], every value in its own frame slot. It is the
//! reference the register-allocated path is differentially tested against,
//! and a fallback that needs nothing but the IR.
//!
//! Code is assembled with dynasm into a `VecAssembler<X64Relocation>`; the
//! bytes are appended to the module's text and every address that is not
//! known yet becomes a [`crate::reloc::Reloc`] (offsets relative to the text section).
//!
//! Frame: `push rbp; mov rbp, rsp; sub rsp, frame` (pages probed one by one
//! when the frame is larger than a page), value slots and allocas below
//! `rbp`, the outgoing argument area at `rsp`. `rsp` stays 16-byte aligned
//! in the body, so every call (traps included) is aligned. Each instruction
//! uses `rax rcx rdx r11 xmm0 xmm1` (and argument registers at calls) as
//! scratch and leaves nothing live in registers.
//!
//! Each trapping instruction jumps to its own out-of-line `call` (at the end
//! of the function) into one shared stub per reason:
//! `mov edi, code; movabs rax, __kiln_trap; jmp rax`, so the return address
//! the handler finds names the instruction. Each IR instruction reports its
//! offset to the line table ([`crate::debug::lines`]).

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::abi::{arg_locations, incoming_stack_offset, result_location, ArgLoc};
use super::analysis::{plan, Plan};
use super::regs::{R11, RAX, RCX, RDX};
use crate::compiled::CompiledModule;
use crate::debug::lines::LineRecorder;
use crate::error::{Error, Result, TrapCode};
use crate::ir::{
    Block, BlockCall, Callee, Function, Inst, InstKind, Linkage, Loc, Module, Opcode, Operand,
    SymId, Type, Value,
};
use crate::isa::TRAP_HANDLER;
use crate::lower::analysis::imm32;
use crate::reloc::RelocKind;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

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
pub(super) enum Cond {
    /// One condition code.
    Flags(Cc),
    /// `ucomis`: equal and ordered.
    FloatEq,
    /// `ucomis`: not equal or unordered.
    FloatNe,
}

/// The condition code of an integer compare opcode.
pub(super) fn int_cc(op: Opcode) -> Option<Cc> {
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

fn jcc(ops: &mut Asm, cc: Cc, l: DynamicLabel) {
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

/// `setcc al; movzx eax, al`.
fn setcc_eax(ops: &mut Asm, cc: Cc) {
    match cc {
        Cc::E => dynasm!(ops ; .arch x64 ; sete al),
        Cc::Ne => dynasm!(ops ; .arch x64 ; setne al),
        Cc::L => dynasm!(ops ; .arch x64 ; setl al),
        Cc::Le => dynasm!(ops ; .arch x64 ; setle al),
        Cc::G => dynasm!(ops ; .arch x64 ; setg al),
        Cc::Ge => dynasm!(ops ; .arch x64 ; setge al),
        Cc::B => dynasm!(ops ; .arch x64 ; setb al),
        Cc::Be => dynasm!(ops ; .arch x64 ; setbe al),
        Cc::A => dynasm!(ops ; .arch x64 ; seta al),
        Cc::Ae => dynasm!(ops ; .arch x64 ; setae al),
    }
    dynasm!(ops ; .arch x64 ; movzx eax, al);
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
}

fn missing(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: malformed instruction ({what})", func.name))
}

impl<'a> Emitter<'a> {
    fn slot(&self, v: Value) -> i32 {
        self.plan.slot[v.index()]
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

    /// Loads `bits` into integer register `r`: `xor` for zero, the shortest
    /// `mov` otherwise. For 32-bit values the upper half ends up zero.
    fn mov_imm(&mut self, r: u8, bits: u64) {
        let ops = &mut self.ops;
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

    /// The raw bits of `op` (of type `ty`) into integer register `r`.
    fn ld_bits(&mut self, r: u8, op: Operand, ty: Type) {
        match op {
            Operand::Const(c) => self.mov_imm(r, c.bits(ty)),
            Operand::Value(v) => {
                let s = self.slot(v);
                let ops = &mut self.ops;
                if wide(self.func.value_type(v)) {
                    dynasm!(ops ; .arch x64 ; mov Rq(r), QWORD [rbp + s]);
                } else {
                    dynasm!(ops ; .arch x64 ; mov Rd(r), DWORD [rbp + s]);
                }
            }
        }
    }

    /// Stores the low `ty` bits of integer register `r` into `v`'s slot.
    fn st_bits(&mut self, v: Value, r: u8) {
        let s = self.slot(v);
        let ops = &mut self.ops;
        if wide(self.func.value_type(v)) {
            dynasm!(ops ; .arch x64 ; mov QWORD [rbp + s], Rq(r));
        } else {
            dynasm!(ops ; .arch x64 ; mov DWORD [rbp + s], Rd(r));
        }
    }

    /// A float operand into xmm register `x`.
    fn ld_f(&mut self, x: u8, op: Operand, ty: Type) {
        match op {
            Operand::Const(c) => {
                let bits = c.bits(ty);
                if bits == 0 {
                    let ops = &mut self.ops;
                    dynasm!(ops ; .arch x64 ; xorps Rx(x), Rx(x));
                } else {
                    self.mov_imm(R11, bits);
                    let ops = &mut self.ops;
                    dynasm!(ops ; .arch x64 ; movq Rx(x), r11);
                }
            }
            Operand::Value(v) => {
                let s = self.slot(v);
                let ops = &mut self.ops;
                if wide(ty) {
                    dynasm!(ops ; .arch x64 ; movsd Rx(x), QWORD [rbp + s]);
                } else {
                    dynasm!(ops ; .arch x64 ; movss Rx(x), DWORD [rbp + s]);
                }
            }
        }
    }

    fn st_f(&mut self, v: Value, x: u8) {
        let s = self.slot(v);
        let ops = &mut self.ops;
        if wide(self.func.value_type(v)) {
            dynasm!(ops ; .arch x64 ; movsd QWORD [rbp + s], Rx(x));
        } else {
            dynasm!(ops ; .arch x64 ; movss DWORD [rbp + s], Rx(x));
        }
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

    /// `movabs r, <address of target>` (an `Abs64` relocation).
    fn movabs_sym(&mut self, r: u8, target: &str) {
        let ops = &mut self.ops;
        dynasm!(ops ; .arch x64 ; mov Rq(r), QWORD 0);
        self.reloc_here(8, RelocKind::Abs64, target, 0);
    }

    /// `lea rax, [rip + target]` (an `X86PcRel32` relocation).
    fn lea_rip_rax(&mut self, target: &str) {
        self.ops.extend([0x48u8, 0x8d, 0x05, 0, 0, 0, 0].iter());
        self.reloc_here(4, RelocKind::X86PcRel32, target, -4);
    }

    fn result(&self, inst: Inst) -> Result<Value> {
        self.func.insts[inst.index()]
            .result
            .ok_or_else(|| missing(self.func, "no result"))
    }

    fn prologue(&mut self) {
        let ops = &mut self.ops;
        dynasm!(ops ; .arch x64 ; push rbp ; mov rbp, rsp);
        super::emit::sub_rsp_probed(ops, self.plan.frame_size);
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
                    let ops = &mut self.ops;
                    dynasm!(ops ; .arch x64 ; mov r11, QWORD [rbp + src]);
                    self.st_bits(p, R11);
                }
            }
        }
    }

    fn epilogue(&mut self) {
        let ops = &mut self.ops;
        dynasm!(ops ; .arch x64 ; mov rsp, rbp ; pop rbp ; ret);
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
            let base = self.plan.copy_area;
            for (i, &a) in args.iter().enumerate() {
                self.ld_bits(R11, a, tys[i]);
                let at = base + 8 * i as i32;
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; mov QWORD [rbp + at], r11);
            }
            for (i, &p) in params.iter().enumerate() {
                let at = base + 8 * i as i32;
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; mov r11, QWORD [rbp + at]);
                self.st_bits(p, R11);
            }
        } else {
            for (i, (&a, &p)) in args.iter().zip(&params).enumerate() {
                if a == Operand::Value(p) {
                    continue;
                }
                self.ld_bits(R11, a, tys[i]);
                self.st_bits(p, R11);
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

    /// Sets flags for compare instruction `inst` and says how to read them.
    fn compare(&mut self, inst: Inst) -> Result<Cond> {
        let d = &self.func.insts[inst.index()];
        let InstKind::Binary { args: [a, b] } = d.kind else {
            return Err(missing(self.func, "compare operands"));
        };
        let ty = d.ty.ok_or_else(|| missing(self.func, "compare type"))?;
        if let Some(cc) = int_cc(d.opcode) {
            self.ld_bits(RAX, a, ty);
            match imm32(b, ty) {
                Some(i) => {
                    let ops = &mut self.ops;
                    if wide(ty) {
                        dynasm!(ops ; .arch x64 ; cmp rax, i);
                    } else {
                        dynasm!(ops ; .arch x64 ; cmp eax, i);
                    }
                }
                None => {
                    self.ld_bits(RCX, b, ty);
                    let ops = &mut self.ops;
                    if wide(ty) {
                        dynasm!(ops ; .arch x64 ; cmp rax, rcx);
                    } else {
                        dynasm!(ops ; .arch x64 ; cmp eax, ecx);
                    }
                }
            }
            return Ok(Cond::Flags(cc));
        }
        self.ld_f(0, a, ty);
        self.ld_f(1, b, ty);
        // flt/fle compare swapped so that "above" excludes unordered
        // (ucomis sets ZF, PF and CF on NaN).
        let (swap, cond) = match d.opcode {
            Opcode::Feq => (false, Cond::FloatEq),
            Opcode::Fne => (false, Cond::FloatNe),
            Opcode::Flt => (true, Cond::Flags(Cc::A)),
            Opcode::Fle => (true, Cond::Flags(Cc::Ae)),
            Opcode::Fgt => (false, Cond::Flags(Cc::A)),
            Opcode::Fge => (false, Cond::Flags(Cc::Ae)),
            _ => return Err(missing(self.func, "compare opcode")),
        };
        let (x, y) = if swap { (1u8, 0u8) } else { (0, 1) };
        let ops = &mut self.ops;
        if wide(ty) {
            dynasm!(ops ; .arch x64 ; ucomisd Rx(x), Rx(y));
        } else {
            dynasm!(ops ; .arch x64 ; ucomiss Rx(x), Rx(y));
        }
        Ok(cond)
    }

    fn block(&mut self, pos: usize) -> Result<()> {
        let b = self.plan.order[pos];
        let next = self.plan.order.get(pos + 1).copied();
        let l = self.labels[b.index()];
        dynasm!(self.ops ; .arch x64 ; =>l);
        let insts = &self.func.blocks[b.index()].insts;
        for &inst in insts {
            if self.plan.fused[inst.index()] || self.plan.skip[inst.index()] {
                continue;
            }
            self.lines.at(self.off(), self.func.srcmap.inst(inst));
            self.inst(inst, next)?;
        }
        for (l, bc) in std::mem::take(&mut self.stubs) {
            dynasm!(self.ops ; .arch x64 ; =>l);
            self.block_args(bc);
            let t = self.labels[bc.block.index()];
            dynasm!(self.ops ; .arch x64 ; jmp =>t);
        }
        Ok(())
    }

    fn inst(&mut self, inst: Inst, next: Option<Block>) -> Result<()> {
        let func = self.func;
        let d = &func.insts[inst.index()];
        let ty = d.ty.unwrap_or(Type::I64);
        use Opcode as O;
        match (&d.kind, d.opcode) {
            (InstKind::Binary { args }, op)
                if int_cc(op).is_some()
                    || op.name().starts_with('f')
                        && d.result.map(|r| func.value_type(r)) == Some(Type::I32) =>
            {
                let _ = args;
                let r = self.result(inst)?;
                match self.compare(inst)? {
                    Cond::Flags(cc) => setcc_eax(&mut self.ops, cc),
                    Cond::FloatEq => {
                        // eax must be cleared before ucomis sets the flags,
                        // so clear it with a flag-preserving mov.
                        let ops = &mut self.ops;
                        dynasm!(ops ; .arch x64 ; mov eax, 0 ; jp >done ; sete al ; done:);
                    }
                    Cond::FloatNe => {
                        let ops = &mut self.ops;
                        dynasm!(ops ; .arch x64 ; mov eax, 1 ; jp >done ; setne al ; done:);
                    }
                }
                self.st_bits(r, RAX);
            }
            (
                InstKind::Binary { args: [a, b] },
                O::Add | O::Sub | O::And | O::Or | O::Xor | O::Mul,
            ) => {
                let r = self.result(inst)?;
                self.ld_bits(RAX, *a, ty);
                let w = wide(ty);
                let op = d.opcode;
                match imm32(*b, ty) {
                    Some(i) => {
                        let ops = &mut self.ops;
                        match (op, w) {
                            (O::Add, true) => dynasm!(ops ; .arch x64 ; add rax, i),
                            (O::Add, false) => dynasm!(ops ; .arch x64 ; add eax, i),
                            (O::Sub, true) => dynasm!(ops ; .arch x64 ; sub rax, i),
                            (O::Sub, false) => dynasm!(ops ; .arch x64 ; sub eax, i),
                            (O::And, true) => dynasm!(ops ; .arch x64 ; and rax, i),
                            (O::And, false) => dynasm!(ops ; .arch x64 ; and eax, i),
                            (O::Or, true) => dynasm!(ops ; .arch x64 ; or rax, i),
                            (O::Or, false) => dynasm!(ops ; .arch x64 ; or eax, i),
                            (O::Xor, true) => dynasm!(ops ; .arch x64 ; xor rax, i),
                            (O::Xor, false) => dynasm!(ops ; .arch x64 ; xor eax, i),
                            (_, true) => dynasm!(ops ; .arch x64 ; imul rax, rax, i),
                            (_, false) => dynasm!(ops ; .arch x64 ; imul eax, eax, i),
                        }
                    }
                    None => {
                        self.ld_bits(RCX, *b, ty);
                        let ops = &mut self.ops;
                        match (op, w) {
                            (O::Add, true) => dynasm!(ops ; .arch x64 ; add rax, rcx),
                            (O::Add, false) => dynasm!(ops ; .arch x64 ; add eax, ecx),
                            (O::Sub, true) => dynasm!(ops ; .arch x64 ; sub rax, rcx),
                            (O::Sub, false) => dynasm!(ops ; .arch x64 ; sub eax, ecx),
                            (O::And, true) => dynasm!(ops ; .arch x64 ; and rax, rcx),
                            (O::And, false) => dynasm!(ops ; .arch x64 ; and eax, ecx),
                            (O::Or, true) => dynasm!(ops ; .arch x64 ; or rax, rcx),
                            (O::Or, false) => dynasm!(ops ; .arch x64 ; or eax, ecx),
                            (O::Xor, true) => dynasm!(ops ; .arch x64 ; xor rax, rcx),
                            (O::Xor, false) => dynasm!(ops ; .arch x64 ; xor eax, ecx),
                            (_, true) => dynasm!(ops ; .arch x64 ; imul rax, rcx),
                            (_, false) => dynasm!(ops ; .arch x64 ; imul eax, ecx),
                        }
                    }
                }
                self.st_bits(r, RAX);
            }
            (InstKind::Binary { args: [a, b] }, O::Sdiv | O::Srem | O::Udiv | O::Urem) => {
                let r = self.result(inst)?;
                self.ld_bits(RAX, *a, ty);
                self.ld_bits(RCX, *b, ty);
                let nonzero = matches!(b, Operand::Const(c) if c.bits(ty) != 0);
                if !nonzero {
                    let t = self.trap_label(TrapCode::DivisionByZero);
                    let ops = &mut self.ops;
                    dynasm!(ops ; .arch x64 ; test rcx, rcx ; jz =>t);
                }
                let w = wide(ty);
                let ovf = self.trap_label(TrapCode::IntegerOverflow);
                let ops = &mut self.ops;
                match (d.opcode, w) {
                    // MIN / -1 overflows: -1 divides as a negation, which
                    // sets OF exactly for MIN.
                    (O::Sdiv, true) => dynasm!(ops ; .arch x64
                        ; cmp rcx, -1 ; jne >div ; neg rax ; jo =>ovf ; jmp >done
                        ; div: ; cqo ; idiv rcx ; done:),
                    (O::Sdiv, false) => dynasm!(ops ; .arch x64
                        ; cmp ecx, -1 ; jne >div ; neg eax ; jo =>ovf ; jmp >done
                        ; div: ; cdq ; idiv ecx ; done:),
                    // x % -1 is 0 for every x; idiv would fault on MIN.
                    (O::Srem, true) => dynasm!(ops ; .arch x64
                        ; cmp rcx, -1 ; jne >div ; xor edx, edx ; jmp >done
                        ; div: ; cqo ; idiv rcx ; done: ; mov rax, rdx),
                    (O::Srem, false) => dynasm!(ops ; .arch x64
                        ; cmp ecx, -1 ; jne >div ; xor edx, edx ; jmp >done
                        ; div: ; cdq ; idiv ecx ; done: ; mov eax, edx),
                    (O::Udiv, true) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div rcx),
                    (O::Udiv, false) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div ecx),
                    (_, true) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div rcx ; mov rax, rdx),
                    (_, false) => dynasm!(ops ; .arch x64 ; xor edx, edx ; div ecx ; mov eax, edx),
                }
                self.st_bits(r, RAX);
            }
            (InstKind::Binary { args: [a, b] }, O::Shl | O::Shr | O::Sar) => {
                let r = self.result(inst)?;
                self.ld_bits(RAX, *a, ty);
                let w = wide(ty);
                // x86 masks the count by 31 / 63: exactly "modulo the width".
                match b {
                    Operand::Const(c) => {
                        let n = (c.bits(ty) & (ty.bits() as u64 - 1)) as i8;
                        let ops = &mut self.ops;
                        match (d.opcode, w) {
                            (O::Shl, true) => dynasm!(ops ; .arch x64 ; shl rax, n),
                            (O::Shl, false) => dynasm!(ops ; .arch x64 ; shl eax, n),
                            (O::Shr, true) => dynasm!(ops ; .arch x64 ; shr rax, n),
                            (O::Shr, false) => dynasm!(ops ; .arch x64 ; shr eax, n),
                            (_, true) => dynasm!(ops ; .arch x64 ; sar rax, n),
                            (_, false) => dynasm!(ops ; .arch x64 ; sar eax, n),
                        }
                    }
                    Operand::Value(_) => {
                        self.ld_bits(RCX, *b, ty);
                        let ops = &mut self.ops;
                        match (d.opcode, w) {
                            (O::Shl, true) => dynasm!(ops ; .arch x64 ; shl rax, cl),
                            (O::Shl, false) => dynasm!(ops ; .arch x64 ; shl eax, cl),
                            (O::Shr, true) => dynasm!(ops ; .arch x64 ; shr rax, cl),
                            (O::Shr, false) => dynasm!(ops ; .arch x64 ; shr eax, cl),
                            (_, true) => dynasm!(ops ; .arch x64 ; sar rax, cl),
                            (_, false) => dynasm!(ops ; .arch x64 ; sar eax, cl),
                        }
                    }
                }
                self.st_bits(r, RAX);
            }
            (InstKind::Binary { args: [a, b] }, O::Fadd | O::Fsub | O::Fmul | O::Fdiv) => {
                let r = self.result(inst)?;
                self.ld_f(0, *a, ty);
                self.ld_f(1, *b, ty);
                let ops = &mut self.ops;
                match (d.opcode, wide(ty)) {
                    (O::Fadd, true) => dynasm!(ops ; .arch x64 ; addsd xmm0, xmm1),
                    (O::Fadd, false) => dynasm!(ops ; .arch x64 ; addss xmm0, xmm1),
                    (O::Fsub, true) => dynasm!(ops ; .arch x64 ; subsd xmm0, xmm1),
                    (O::Fsub, false) => dynasm!(ops ; .arch x64 ; subss xmm0, xmm1),
                    (O::Fmul, true) => dynasm!(ops ; .arch x64 ; mulsd xmm0, xmm1),
                    (O::Fmul, false) => dynasm!(ops ; .arch x64 ; mulss xmm0, xmm1),
                    (_, true) => dynasm!(ops ; .arch x64 ; divsd xmm0, xmm1),
                    (_, false) => dynasm!(ops ; .arch x64 ; divss xmm0, xmm1),
                }
                self.st_f(r, 0);
            }
            (InstKind::Unary { arg }, op) => self.unary(inst, op, *arg, ty)?,
            (InstKind::Select { args: [c, a, b] }, _) => {
                let r = self.result(inst)?;
                self.ld_bits(RCX, *c, Type::I32);
                self.ld_bits(RAX, *a, ty);
                self.ld_bits(RDX, *b, ty);
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; test ecx, ecx ; cmove rax, rdx);
                self.st_bits(r, RAX);
            }
            (InstKind::Load { ptr, offset }, op) => {
                let r = self.result(inst)?;
                let disp = self.address(*ptr, *offset);
                let ops = &mut self.ops;
                match (op, wide(ty)) {
                    (O::Load, true) => dynasm!(ops ; .arch x64 ; mov rcx, QWORD [rax + disp]),
                    (O::Load, false) => dynasm!(ops ; .arch x64 ; mov ecx, DWORD [rax + disp]),
                    (O::Load8s, true) => dynasm!(ops ; .arch x64 ; movsx rcx, BYTE [rax + disp]),
                    (O::Load8s, false) => dynasm!(ops ; .arch x64 ; movsx ecx, BYTE [rax + disp]),
                    (O::Load8u, _) => dynasm!(ops ; .arch x64 ; movzx ecx, BYTE [rax + disp]),
                    (O::Load16s, true) => dynasm!(ops ; .arch x64 ; movsx rcx, WORD [rax + disp]),
                    (O::Load16s, false) => dynasm!(ops ; .arch x64 ; movsx ecx, WORD [rax + disp]),
                    (O::Load16u, _) => dynasm!(ops ; .arch x64 ; movzx ecx, WORD [rax + disp]),
                    (O::Load32s, _) => dynasm!(ops ; .arch x64 ; movsxd rcx, DWORD [rax + disp]),
                    _ => dynasm!(ops ; .arch x64 ; mov ecx, DWORD [rax + disp]),
                }
                self.st_bits(r, RCX);
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
                self.ld_bits(RCX, *v, vty);
                let disp = self.address(*p, *offset);
                let bytes = op.access_bytes(Some(ty)).unwrap_or(8);
                let ops = &mut self.ops;
                match bytes {
                    1 => dynasm!(ops ; .arch x64 ; mov BYTE [rax + disp], cl),
                    2 => dynasm!(ops ; .arch x64 ; mov WORD [rax + disp], cx),
                    4 => dynasm!(ops ; .arch x64 ; mov DWORD [rax + disp], ecx),
                    _ => dynasm!(ops ; .arch x64 ; mov QWORD [rax + disp], rcx),
                }
            }
            (InstKind::Alloca { .. }, _) => {
                let r = self.result(inst)?;
                let at = self.plan.alloca[inst.index()];
                super::emit::lea_frame(&mut self.ops, RAX, at);
                self.st_bits(r, RAX);
            }
            (InstKind::Addr { sym }, _) => {
                let r = self.result(inst)?;
                let s = &self.module.symbols[sym.index()];
                if s.linkage == Linkage::Import {
                    // A host symbol may be anywhere in the address space.
                    self.movabs_sym(RAX, &s.name);
                } else {
                    self.lea_rip_rax(&s.name);
                }
                self.st_bits(r, RAX);
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
                        _ => self.ld_bits(RAX, *v, rty),
                    }
                }
                self.epilogue();
            }
            (InstKind::Jmp { dest }, _) => {
                self.block_args(dest);
                if next != Some(dest.block) {
                    let l = self.labels[dest.block.index()];
                    dynasm!(self.ops ; .arch x64 ; jmp =>l);
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
                let cond = match *cond {
                    Operand::Value(c) => self.fused_compare(c),
                    Operand::Const(_) => None,
                };
                let cond = match cond {
                    Some(i) => self.compare(i)?,
                    None => {
                        self.ld_bits(RAX, self.func.operands(inst)[0], Type::I32);
                        dynasm!(self.ops ; .arch x64 ; test eax, eax);
                        Cond::Flags(Cc::Ne)
                    }
                };
                let t = self.edge(then_dest);
                let e = self.edge(else_dest);
                match cond {
                    Cond::Flags(cc) => jcc(&mut self.ops, cc, t),
                    Cond::FloatEq => dynasm!(self.ops ; .arch x64 ; jp =>e ; je =>t),
                    Cond::FloatNe => dynasm!(self.ops ; .arch x64 ; jp =>t ; jne =>t),
                }
                if !(self.stubs.is_empty() && next == Some(else_dest.block)) {
                    dynasm!(self.ops ; .arch x64 ; jmp =>e);
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
                dynasm!(self.ops ; .arch x64 ; jmp =>t);
            }
            _ => return Err(missing(func, d.opcode.name())),
        }
        Ok(())
    }

    /// The compare instruction fused into the branch on `c`, if any.
    fn fused_compare(&self, c: Value) -> Option<Inst> {
        match self.func.values[c.index()].def {
            crate::ir::ValueDef::Inst(i) if self.plan.fused[i.index()] => Some(i),
            _ => None,
        }
    }

    /// Puts the base of `ptr + offset` in `rax` and returns the
    /// displacement, folding `add.i64 x, C` into it.
    fn address(&mut self, ptr: Operand, offset: i64) -> i32 {
        if let Operand::Value(p) = ptr {
            if let Some((x, c)) = self.plan.addr_fold[p.index()] {
                if let Ok(disp) = i32::try_from(c + offset) {
                    self.ld_bits(RAX, Operand::Value(x), Type::I64);
                    return disp;
                }
            }
        }
        self.ld_bits(RAX, ptr, Type::I64);
        match i32::try_from(offset) {
            Ok(d) => d,
            Err(_) => {
                self.mov_imm(R11, offset as u64);
                dynasm!(self.ops ; .arch x64 ; add rax, r11);
                0
            }
        }
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
            O::Copy | O::Bitcast => {
                self.ld_bits(RAX, a, src_ty);
                self.st_bits(r, RAX);
            }
            O::Neg | O::Not => {
                self.ld_bits(RAX, a, ty);
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Neg, true) => dynasm!(ops ; .arch x64 ; neg rax),
                    (O::Neg, false) => dynasm!(ops ; .arch x64 ; neg eax),
                    (_, true) => dynasm!(ops ; .arch x64 ; not rax),
                    (_, false) => dynasm!(ops ; .arch x64 ; not eax),
                }
                self.st_bits(r, RAX);
            }
            O::Fneg | O::Fabs => {
                // Sign-bit operations on the raw bits: no constant pool.
                self.ld_bits(RAX, a, ty);
                let ops = &mut self.ops;
                match (op, w) {
                    (O::Fneg, true) => dynasm!(ops ; .arch x64 ; btc rax, 63),
                    (O::Fneg, false) => dynasm!(ops ; .arch x64 ; btc eax, 31),
                    (_, true) => dynasm!(ops ; .arch x64 ; btr rax, 63),
                    (_, false) => dynasm!(ops ; .arch x64 ; btr eax, 31),
                }
                self.st_bits(r, RAX);
            }
            O::Fsqrt => {
                self.ld_f(0, a, ty);
                let ops = &mut self.ops;
                if w {
                    dynasm!(ops ; .arch x64 ; sqrtsd xmm0, xmm0);
                } else {
                    dynasm!(ops ; .arch x64 ; sqrtss xmm0, xmm0);
                }
                self.st_f(r, 0);
            }
            O::Sext => {
                self.ld_bits(RAX, a, Type::I32);
                dynasm!(self.ops ; .arch x64 ; movsxd rax, eax);
                self.st_bits(r, RAX);
            }
            O::Zext | O::Trunc => {
                // A 32-bit load / store zero-extends / truncates.
                self.ld_bits(RAX, a, src_ty);
                self.st_bits(r, RAX);
            }
            O::Fext => {
                self.ld_f(0, a, Type::F32);
                dynasm!(self.ops ; .arch x64 ; cvtss2sd xmm0, xmm0);
                self.st_f(r, 0);
            }
            O::Ftrunc => {
                self.ld_f(0, a, Type::F64);
                dynasm!(self.ops ; .arch x64 ; cvtsd2ss xmm0, xmm0);
                self.st_f(r, 0);
            }
            O::Sitof | O::Uitof => {
                self.ld_bits(RAX, a, src_ty);
                let ops = &mut self.ops;
                dynasm!(ops ; .arch x64 ; xorps xmm0, xmm0);
                match (op, wide(src_ty), w) {
                    (O::Sitof, false, true) => dynasm!(ops ; .arch x64 ; cvtsi2sd xmm0, eax),
                    (O::Sitof, false, false) => dynasm!(ops ; .arch x64 ; cvtsi2ss xmm0, eax),
                    // Signed 64-bit, and unsigned 32-bit zero-extended to 64.
                    (O::Sitof, true, true) | (_, false, true) => {
                        dynasm!(ops ; .arch x64 ; cvtsi2sd xmm0, rax)
                    }
                    (O::Sitof, true, false) | (_, false, false) => {
                        dynasm!(ops ; .arch x64 ; cvtsi2ss xmm0, rax)
                    }
                    // Unsigned 64-bit with the top bit set: halve (keeping
                    // the low bit for correct rounding), convert, double.
                    (_, true, true) => dynasm!(ops ; .arch x64
                        ; test rax, rax ; js >big ; cvtsi2sd xmm0, rax ; jmp >done
                        ; big: ; mov rcx, rax ; shr rcx, 1 ; and eax, 1 ; or rcx, rax
                        ; cvtsi2sd xmm0, rcx ; addsd xmm0, xmm0 ; done:),
                    (_, true, false) => dynasm!(ops ; .arch x64
                        ; test rax, rax ; js >big ; cvtsi2ss xmm0, rax ; jmp >done
                        ; big: ; mov rcx, rax ; shr rcx, 1 ; and eax, 1 ; or rcx, rax
                        ; cvtsi2ss xmm0, rcx ; addss xmm0, xmm0 ; done:),
                }
                self.st_f(r, 0);
            }
            O::Ftosi => {
                self.ld_f(0, a, src_ty);
                self.ftosi(src_ty, ty);
                self.st_bits(r, RAX);
            }
            O::Ftoui => {
                self.ld_f(0, a, src_ty);
                self.ftoui(src_ty, ty);
                self.st_bits(r, RAX);
            }
            _ => return Err(missing(self.func, op.name())),
        }
        Ok(())
    }

    /// `xmm0` (float `from`) to signed `to` in `rax`, saturating, NaN → 0.
    /// `cvtts?2si` gives MIN (the "integer indefinite") for NaN and out of
    /// range; only then is the input inspected.
    fn ftosi(&mut self, from: Type, to: Type) {
        let ops = &mut self.ops;
        match (wide(from), wide(to)) {
            (true, true) => dynasm!(ops ; .arch x64 ; cvttsd2si rax, xmm0 ; cmp rax, 1),
            (true, false) => dynasm!(ops ; .arch x64 ; cvttsd2si eax, xmm0 ; cmp eax, 1),
            (false, true) => dynasm!(ops ; .arch x64 ; cvttss2si rax, xmm0 ; cmp rax, 1),
            (false, false) => dynasm!(ops ; .arch x64 ; cvttss2si eax, xmm0 ; cmp eax, 1),
        }
        // Only MIN - 1 overflows.
        dynasm!(ops ; .arch x64 ; jno >done);
        if wide(from) {
            dynasm!(ops ; .arch x64 ; ucomisd xmm0, xmm0 ; jp >nan ; movq rax, xmm0 ; test rax, rax);
        } else {
            dynasm!(ops ; .arch x64 ; ucomiss xmm0, xmm0 ; jp >nan ; movd eax, xmm0 ; test eax, eax);
        }
        if wide(to) {
            dynasm!(ops ; .arch x64
                ; mov rax, QWORD i64::MIN ; js >done ; mov rax, QWORD i64::MAX ; jmp >done);
        } else {
            dynasm!(ops ; .arch x64
                ; mov eax, i32::MIN ; js >done ; mov eax, i32::MAX ; jmp >done);
        }
        dynasm!(ops ; .arch x64 ; nan: ; xor eax, eax ; done:);
    }

    /// `xmm0` (float `from`) to unsigned `to` in `rax`, saturating, NaN → 0.
    fn ftoui(&mut self, from: Type, to: Type) {
        let ops = &mut self.ops;
        if !wide(to) {
            // A 64-bit signed conversion covers every u32 exactly.
            if wide(from) {
                dynasm!(ops ; .arch x64 ; cvttsd2si rax, xmm0);
            } else {
                dynasm!(ops ; .arch x64 ; cvttss2si rax, xmm0);
            }
            dynasm!(ops ; .arch x64 ; cmp rax, 1 ; jno >inrange);
            // Indefinite: NaN or |x| >= 2^63.
            if wide(from) {
                dynasm!(ops ; .arch x64 ; ucomisd xmm0, xmm0 ; jp >zero ; movq rcx, xmm0 ; test rcx, rcx);
            } else {
                dynasm!(ops ; .arch x64 ; ucomiss xmm0, xmm0 ; jp >zero ; movd ecx, xmm0 ; test ecx, ecx);
            }
            dynasm!(ops ; .arch x64
                ; js >zero ; mov eax, -1 ; jmp >done
                ; inrange: ; test rax, rax ; js >zero
                ; mov rcx, rax ; shr rcx, 32 ; jz >done ; mov eax, -1 ; jmp >done
                ; zero: ; xor eax, eax ; done:);
            return;
        }
        if wide(from) {
            dynasm!(ops ; .arch x64
                ; ucomisd xmm0, xmm0 ; jp >zero
                ; mov rcx, QWORD 0x43e0_0000_0000_0000 ; movq xmm1, rcx
                ; ucomisd xmm0, xmm1 ; jae >big
                ; cvttsd2si rax, xmm0 ; test rax, rax ; js >zero ; jmp >done
                ; big: ; subsd xmm0, xmm1 ; cvttsd2si rax, xmm0);
        } else {
            dynasm!(ops ; .arch x64
                ; ucomiss xmm0, xmm0 ; jp >zero
                ; mov ecx, 0x5f00_0000 ; movd xmm1, ecx
                ; ucomiss xmm0, xmm1 ; jae >big
                ; cvttss2si rax, xmm0 ; test rax, rax ; js >zero ; jmp >done
                ; big: ; subss xmm0, xmm1 ; cvttss2si rax, xmm0);
        }
        // x - 2^63 >= 2^63 converts to indefinite (negative): saturate.
        dynasm!(ops ; .arch x64
            ; test rax, rax ; js >max ; btc rax, 63 ; jmp >done
            ; max: ; mov rax, -1 ; jmp >done
            ; zero: ; xor eax, eax ; done:);
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
                self.ld_bits(R11, args[i], tys[i]);
                let off = off as i32;
                dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + off], r11);
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
                // Imports too: beyond ±2 GiB the registry routes the call
                // through a stub.
                let name = self.module.symbols[s.index()].name.clone();
                self.ops.extend([0xe8u8, 0, 0, 0, 0].iter());
                self.reloc_here(4, RelocKind::X86CallPcRel32, &name, -4);
            }
            Callee::Indirect(op) => {
                self.ld_bits(RAX, op, Type::I64);
                dynasm!(self.ops ; .arch x64 ; call rax);
            }
        }
        if let (Some(r), Some(rt)) = (func.insts[inst.index()].result, ret) {
            match result_location(rt) {
                ArgLoc::Float(x) => self.st_f(r, x),
                _ => self.st_bits(r, RAX),
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
        self.ld_bits(RAX, value, ty);
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
                if !wide(ty) {
                    dynasm!(self.ops ; .arch x64 ; sub eax, min as u32 as i32);
                } else {
                    self.mov_imm(R11, min);
                    dynasm!(self.ops ; .arch x64 ; sub rax, r11);
                }
            }
            let range_i = range as i32;
            dynasm!(self.ops ; .arch x64 ; cmp rax, range_i ; ja =>dl);
            let name = format!("{}#jt{}", self.func.name, self.tables.len());
            // lea r11, [rip + table]
            self.ops.extend([0x4cu8, 0x8d, 0x1d, 0, 0, 0, 0].iter());
            self.reloc_here(4, RelocKind::X86PcRel32, &name, -4);
            dynasm!(self.ops ; .arch x64 ; jmp QWORD [r11 + rax * 8]);
            let mut entries = vec![dl; range as usize + 1];
            for (k, l) in keys {
                entries[(k - min) as usize] = l;
            }
            self.tables.push((name, entries));
        } else {
            for (k, l) in keys {
                match imm32(Operand::Const(crate::ir::Const::int(k as i128)), ty) {
                    Some(i) if !wide(ty) => dynasm!(self.ops ; .arch x64 ; cmp eax, i ; je =>l),
                    Some(i) => dynasm!(self.ops ; .arch x64 ; cmp rax, i ; je =>l),
                    None => {
                        self.mov_imm(R11, k);
                        dynasm!(self.ops ; .arch x64 ; cmp rax, r11 ; je =>l);
                    }
                }
            }
            dynasm!(self.ops ; .arch x64 ; jmp =>dl);
        }
        Ok(())
    }

    /// As in the register-allocated generator: a `call` per site into
    /// one shared `mov edi, code; movabs rax, handler; jmp rax` per reason.
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

/// Compiles function `id` of `module` into `out`.
pub fn compile_function(module: &Module, sym: SymId, out: &mut CompiledModule) -> Result<()> {
    let (sym, func) = crate::isa::defined_function(module, sym)?;
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
    };
    e.prologue();
    for pos in 0..e.plan.order.len() {
        e.block(pos)?;
    }
    e.trap_stubs();
    let asm_err = |what: dynasmrt::DynasmError| Error::Runtime(format!("@{}: {what}", func.name));
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

    // Padding between functions is `int3`.
    crate::lower::place::place_function(
        module,
        sym,
        &code,
        0xcc,
        relocs
            .into_iter()
            .map(|r| (r.offset, r.kind, r.target, r.addend)),
        tables,
        lines,
        out,
    )
}
