//! Pre-decoding: every IR function becomes, once, a run of compact
//! instructions ([`I`]) the dispatch loop executes without hash lookups or
//! walking the IR's enums.
//!
//! Invariants of a decoded [`Program`]:
//! - every IR instruction is exactly one [`I`], so a block starts at a fixed
//!   pc and branches hold pcs;
//! - operands are frame slots: slot `n < nvalues` is SSA value `n`, slot
//!   `nvalues` is a scratch slot for results nobody reads, and the slots from
//!   `consts_at` hold the function's literals (copied in on entry), each as
//!   the bits of the type its position requires;
//! - 32-bit values live zero-extended in their 64-bit slot, and every
//!   instruction producing one keeps it so;
//! - slot, pc, edge, call-site and switch indices are all in range, checked
//!   here, so malformed (unverified) IR is an error, never a panic;
//! - `addr` is a copy of a literal: data and function addresses are known
//!   before decoding.

use super::NONE;
use crate::error::{Diagnostic, Error, Result, Trap, TrapCode, TrapFrame, MAX_BACKTRACE};
use crate::host::HostFn;
use crate::ir::{
    BlockCall, Callee, Format, Function, InstData, InstKind, Loc, Module, Opcode, Operand,
    Signature, Type,
};
use std::collections::HashMap;

/// The operation of a decoded instruction, specialized by width so the loop
/// dispatches once. Field use is documented per group; `d` is always the
/// result slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum K {
    // d = a
    Copy,
    // d = a op b
    Add32,
    Add64,
    Sub32,
    Sub64,
    Mul32,
    Mul64,
    Sdiv32,
    Sdiv64,
    Udiv32,
    Udiv64,
    Srem32,
    Srem64,
    Urem32,
    Urem64,
    And,
    Or,
    Xor,
    Shl32,
    Shl64,
    Shr32,
    Shr64,
    Sar32,
    Sar64,
    // d = op a
    Neg32,
    Neg64,
    Not32,
    Not64,
    Fadd32,
    Fadd64,
    Fsub32,
    Fsub64,
    Fmul32,
    Fmul64,
    Fdiv32,
    Fdiv64,
    Fneg32,
    Fneg64,
    Fabs32,
    Fabs64,
    Fsqrt32,
    Fsqrt64,
    // Unsigned and equality compares work on the zero-extended bits of
    // either width.
    Eq,
    Ne,
    Slt32,
    Slt64,
    Sle32,
    Sle64,
    Sgt32,
    Sgt64,
    Sge32,
    Sge64,
    Ult,
    Ule,
    Ugt,
    Uge,
    Feq32,
    Feq64,
    Fne32,
    Fne64,
    Flt32,
    Flt64,
    Fle32,
    Fle64,
    Fgt32,
    Fgt64,
    Fge32,
    Fge64,
    // d = a != 0 ? b : c
    Select,
    Sext,
    Zext,
    Trunc,
    Fext,
    Ftrunc,
    // Conversions, named source then destination.
    SitofI32F32,
    SitofI32F64,
    SitofI64F32,
    SitofI64F64,
    UitofI32F32,
    UitofI32F64,
    UitofI64F32,
    UitofI64F64,
    FtosiF32I32,
    FtosiF32I64,
    FtosiF64I32,
    FtosiF64I64,
    FtouiF32I32,
    FtouiF32I64,
    FtouiF64I32,
    FtouiF64I64,
    // d = load [a + b] (b: the offset's literal slot)
    Load8s32,
    Load8s64,
    Load8u,
    Load16s32,
    Load16s64,
    Load16u,
    /// 4 bytes zero-extended: `load.i32`, `load.f32`, `load32u`.
    Load32,
    Load32s,
    Load64,
    // store a at [b + c] (c: the offset's literal slot)
    Store8,
    Store16,
    Store32,
    Store64,
    /// d = frame's alloca area + a
    Alloca,
    /// d = call funcs[a] with call site b
    Call,
    /// d = call the function at address slot a with call site b
    CallInd,
    /// return slot a (or nothing when a is NONE)
    Ret,
    /// take edge a
    Jmp,
    /// pc = a
    JmpPc,
    /// slot a != 0 ? edge b : edge c
    Br,
    /// slot a != 0 ? pc b : pc c
    BrPc,
    /// switch on slot a with table b
    Switch,
    Trap,
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug)]
pub(super) struct I {
    pub k: K,
    pub d: u32,
    pub a: u32,
    pub b: u32,
    pub c: u32,
}

/// A branch with block arguments: `moves[start..start+len]` are
/// `(source slot, parameter slot)` pairs, copied all at once when
/// `parallel` (a parameter is also read as a source).
#[derive(Clone, Copy, Debug)]
pub(super) struct Edge {
    pub pc: u32,
    pub start: u32,
    pub len: u32,
    pub parallel: bool,
}

/// The arguments of one call: slots `call_args[start..start+len]`; for an
/// indirect call, also the signature the call site implies.
#[derive(Clone, Debug)]
pub(super) struct CallSite {
    pub start: u32,
    pub len: u32,
    pub sig: Signature,
}

/// A `switch`: keys sorted, with their pcs.
#[derive(Clone, Debug)]
pub(super) struct SwitchTable {
    pub keys: Vec<u64>,
    pub pcs: Vec<u32>,
    pub default: u32,
}

/// A decoded IR function.
#[derive(Clone, Debug)]
pub(super) struct IrFunc {
    pub entry_pc: u32,
    /// Slots of the frame: values, the scratch slot, literals.
    pub nslots: u32,
    /// First literal slot.
    pub consts_at: u32,
    /// The literals, `Program::consts[consts_start..consts_start+nconsts]`.
    pub consts_start: u32,
    pub nconsts: u32,
    /// Slot of each parameter.
    pub params: Vec<u32>,
    /// Bytes of the alloca area and its alignment.
    pub frame_size: u64,
    pub frame_align: u64,
}

/// Something callable: an IR function or a host function.
pub(super) enum Body {
    Ir(IrFunc),
    Host(HostFn),
    /// Not decoded yet (only while [`super::Interpreter::new`] runs).
    Pending,
}

/// A callable with its name (for messages) and signature.
pub(super) struct FnEntry {
    pub name: String,
    pub sig: Signature,
    pub body: Body,
}

/// All decoded code of an interpreter, in shared tables.
#[derive(Default)]
pub(super) struct Program {
    pub code: Vec<I>,
    pub edges: Vec<Edge>,
    pub moves: Vec<(u32, u32)>,
    pub calls: Vec<CallSite>,
    pub call_args: Vec<u32>,
    pub switches: Vec<SwitchTable>,
    pub consts: Vec<u64>,
    pub funcs: Vec<FnEntry>,
    /// The source location of each instruction of `code` (for trap
    /// backtraces).
    pub locs: Vec<Loc>,
    /// Per decoded IR function, in code order: its entry pc, its index in
    /// `funcs` and its module's index in `files`.
    pub code_funcs: Vec<(u32, u32, u32)>,
    /// The module (file) names.
    pub files: Vec<String>,
}

/// Lengths of the tables of a [`Program`], to undo a failed addition.
pub(super) struct Mark([usize; 11]);

impl Program {
    pub fn mark(&self) -> Mark {
        Mark([
            self.code.len(),
            self.edges.len(),
            self.moves.len(),
            self.calls.len(),
            self.call_args.len(),
            self.switches.len(),
            self.consts.len(),
            self.funcs.len(),
            self.locs.len(),
            self.code_funcs.len(),
            self.files.len(),
        ])
    }

    /// Drops everything added since `mark`.
    pub fn truncate(&mut self, mark: &Mark) {
        let [code, edges, moves, calls, call_args, switches, consts, funcs, locs, code_funcs, files] =
            mark.0;
        self.code.truncate(code);
        self.edges.truncate(edges);
        self.moves.truncate(moves);
        self.calls.truncate(calls);
        self.call_args.truncate(call_args);
        self.switches.truncate(switches);
        self.consts.truncate(consts);
        self.funcs.truncate(funcs);
        self.locs.truncate(locs);
        self.code_funcs.truncate(code_funcs);
        self.files.truncate(files);
    }

    /// The backtrace frame of the instruction at `pc`: its function, file
    /// and source location.
    pub fn frame(&self, pc: usize) -> Option<TrapFrame> {
        let k = self
            .code_funcs
            .partition_point(|&(start, _, _)| start as usize <= pc)
            .checked_sub(1)?;
        let (_, func, file) = self.code_funcs[k];
        Some(TrapFrame {
            function: self.funcs.get(func as usize)?.name.clone(),
            file: self.files.get(file as usize)?.clone(),
            loc: self.locs.get(pc).copied().unwrap_or(Loc::NONE),
        })
    }

    /// A trap at `pc` with the calls still running at `returns` (resume
    /// pcs, innermost first) as its backtrace, at most
    /// [`MAX_BACKTRACE`] frames.
    pub fn trap(&self, code: TrapCode, pc: usize, returns: impl Iterator<Item = usize>) -> Error {
        let pcs = std::iter::once(pc).chain(returns.map(|r| r.wrapping_sub(1)));
        Error::Trap(Trap {
            code,
            backtrace: pcs
                .take(MAX_BACKTRACE)
                .filter_map(|pc| self.frame(pc))
                .collect(),
            pcs: Vec::new(),
        })
    }
}

/// What the decoder needs to know about one module's symbols.
pub(super) struct ModuleSyms {
    /// The address `addr @sym` yields.
    pub addr: Vec<u64>,
    /// The global function index of a function symbol, else `NONE`.
    pub func: Vec<u32>,
}

/// Decodes `f` of `module`, appending to `prog`.
pub(super) fn decode_function(
    prog: &mut Program,
    module: &Module,
    syms: &ModuleSyms,
    f: &Function,
) -> Result<IrFunc> {
    let mut d = Decoder {
        prog,
        module,
        syms,
        f,
        consts: Vec::new(),
        const_map: HashMap::new(),
        block_pc: Vec::with_capacity(f.blocks.len()),
        frame_size: 0,
        frame_align: 16,
    };
    d.run()
}

struct Decoder<'a> {
    prog: &'a mut Program,
    module: &'a Module,
    syms: &'a ModuleSyms,
    f: &'a Function,
    consts: Vec<u64>,
    const_map: HashMap<u64, u32>,
    block_pc: Vec<u32>,
    frame_size: u64,
    frame_align: u64,
}

impl Decoder<'_> {
    fn nvalues(&self) -> u32 {
        self.f.values.len() as u32
    }

    fn scratch(&self) -> u32 {
        self.nvalues()
    }

    fn err(&self, inst: Option<crate::ir::Inst>, msg: impl std::fmt::Display) -> Error {
        let loc = match inst {
            Some(i) => self.f.srcmap.inst(i),
            None => self.f.srcmap.func,
        };
        Error::Verify(Diagnostic::new(
            self.module.name.clone(),
            loc,
            format!("cannot interpret @{}: {msg}", self.f.name),
        ))
    }

    fn run(&mut self) -> Result<IrFunc> {
        let f = self.f;
        if f.values.len() >= (u32::MAX / 2) as usize {
            return Err(self.err(None, "too many values"));
        }
        let entry_pc = self.prog.code.len() as u32;
        let mut pc = entry_pc;
        for b in &f.blocks {
            self.block_pc.push(pc);
            pc = pc.saturating_add(b.insts.len() as u32);
            match b.insts.last() {
                Some(&last) if last.index() < f.insts.len() => {
                    if !f.insts[last.index()].opcode.is_terminator() {
                        return Err(self.err(
                            Some(last),
                            format!("block {} has no terminator", f.names.get(b.name)),
                        ));
                    }
                }
                _ => {
                    let msg = format!("block {} has no terminator", f.names.get(b.name));
                    return Err(self.err(None, msg));
                }
            }
        }
        if f.blocks.is_empty() {
            return Err(self.err(None, "no blocks"));
        }
        let mut params = Vec::with_capacity(f.params.len());
        for &p in &f.params {
            params.push(self.value_slot(None, p.0)?);
        }
        if params.len() != f.sig.params.len() {
            return Err(self.err(None, "parameter list does not match the signature"));
        }
        for b in &f.blocks {
            for &inst in &b.insts {
                let data = f
                    .insts
                    .get(inst.index())
                    .ok_or_else(|| self.err(None, "instruction index out of range"))?;
                let i = self.inst(inst, data)?;
                self.prog.code.push(i);
                self.prog.locs.push(f.srcmap.inst(inst));
            }
        }
        let consts_at = self.nvalues() + 1;
        let consts_start = self.prog.consts.len() as u32;
        let nconsts = self.consts.len() as u32;
        self.prog.consts.append(&mut self.consts);
        Ok(IrFunc {
            entry_pc,
            nslots: consts_at + nconsts,
            consts_at,
            consts_start,
            nconsts,
            params,
            frame_size: self.frame_size,
            frame_align: self.frame_align,
        })
    }

    fn value_slot(&self, inst: Option<crate::ir::Inst>, v: u32) -> Result<u32> {
        if v < self.nvalues() {
            Ok(v)
        } else {
            Err(self.err(inst, format!("value v{v} out of range")))
        }
    }

    fn const_slot(&mut self, bits: u64) -> u32 {
        let at = self.nvalues() + 1;
        let n = self.consts.len() as u32;
        *self.const_map.entry(bits).or_insert_with(|| {
            self.consts.push(bits);
            at + n
        })
    }

    /// The slot of operand `op` in a position of type `ty`.
    fn operand(&mut self, inst: crate::ir::Inst, op: Operand, ty: Type) -> Result<u32> {
        match op {
            Operand::Value(v) => self.value_slot(Some(inst), v.0),
            Operand::Const(c) => Ok(self.const_slot(c.bits(ty))),
        }
    }

    /// The type of operand `op`; a literal takes `default`.
    fn operand_ty(&self, op: Operand, default: Type) -> Type {
        match op {
            Operand::Value(v) => self.f.values.get(v.index()).map_or(default, |d| d.ty),
            Operand::Const(_) => default,
        }
    }

    fn block_pc(&self, inst: crate::ir::Inst, b: crate::ir::Block) -> Result<u32> {
        self.block_pc
            .get(b.index())
            .copied()
            .ok_or_else(|| self.err(Some(inst), format!("block {b} out of range")))
    }

    fn edge(&mut self, inst: crate::ir::Inst, bc: &BlockCall) -> Result<u32> {
        let pc = self.block_pc(inst, bc.block)?;
        let params = &self.f.blocks[bc.block.index()].params;
        if params.len() != bc.args.len() {
            return Err(self.err(Some(inst), "block argument count mismatch"));
        }
        let start = self.prog.moves.len() as u32;
        for (&p, &arg) in params.iter().zip(self.f.args(bc.args)) {
            let dst = self.value_slot(Some(inst), p.0)?;
            let ty = self.f.values[p.index()].ty;
            let src = self.operand(inst, arg, ty)?;
            self.prog.moves.push((src, dst));
        }
        let moves = &self.prog.moves[start as usize..];
        let parallel = moves.iter().enumerate().any(|(i, &(_, dst))| {
            moves
                .iter()
                .enumerate()
                .any(|(j, &(src, _))| j > i && src == dst)
        });
        self.prog.edges.push(Edge {
            pc,
            start,
            len: bc.args.len() as u32,
            parallel,
        });
        Ok(self.prog.edges.len() as u32 - 1)
    }

    fn call_site(
        &mut self,
        inst: crate::ir::Inst,
        args: &[Operand],
        types: &[Type],
        sig: Signature,
    ) -> Result<u32> {
        let start = self.prog.call_args.len() as u32;
        for (&a, &t) in args.iter().zip(types) {
            let s = self.operand(inst, a, t)?;
            self.prog.call_args.push(s);
        }
        self.prog.calls.push(CallSite {
            start,
            len: args.len() as u32,
            sig,
        });
        Ok(self.prog.calls.len() as u32 - 1)
    }

    fn inst(&mut self, inst: crate::ir::Inst, data: &InstData) -> Result<I> {
        let op = data.opcode;
        let info = op.info();
        // Dispatch below goes by operand layout; an opcode paired with the
        // wrong layout (say a `ret` holding `alloca` operands) would let
        // execution fall off the end of a block.
        let layout_ok = matches!(
            (info.format, &data.kind),
            (Format::Unary, InstKind::Unary { .. })
                | (Format::Binary, InstKind::Binary { .. })
                | (Format::Select, InstKind::Select { .. })
                | (Format::Load, InstKind::Load { .. })
                | (Format::Store, InstKind::Store { .. })
                | (Format::Alloca, InstKind::Alloca { .. })
                | (Format::Addr, InstKind::Addr { .. })
                | (Format::Call, InstKind::Call { .. })
                | (Format::Ret, InstKind::Ret { .. })
                | (Format::Jmp, InstKind::Jmp { .. })
                | (Format::Br, InstKind::Br { .. })
                | (Format::Switch, InstKind::Switch { .. })
                | (Format::Trap, InstKind::Trap)
        );
        if !layout_ok {
            return Err(self.err(
                Some(inst),
                format!("operands do not match the form of {}", op.name()),
            ));
        }
        let d = match data.result {
            Some(v) => self.value_slot(Some(inst), v.0)?,
            None => self.scratch(),
        };
        let suffix = data.ty;
        let need_ty = || suffix.ok_or_else(|| self.err(Some(inst), "missing type suffix"));
        // The type of fixed operand `n`, from the opcode table.
        let lit_ty = |n: usize| {
            info.operands
                .get(n)
                .and_then(|o| o.literal_type(suffix))
                .unwrap_or(Type::I64)
        };
        let mk = |k: K, a: u32, b: u32, c: u32| I { k, d, a, b, c };
        let wide = |t: Type| matches!(t, Type::I64 | Type::F64);
        match &data.kind {
            InstKind::Unary { arg } => {
                let t = need_ty()?;
                let src_ty = self.operand_ty(*arg, lit_ty(0));
                let a = self.operand(inst, *arg, src_ty)?;
                let w = wide(t);
                let k = match op {
                    Opcode::Copy | Opcode::Bitcast => K::Copy,
                    Opcode::Neg => pick(w, K::Neg32, K::Neg64),
                    Opcode::Not => pick(w, K::Not32, K::Not64),
                    Opcode::Fneg => pick(w, K::Fneg32, K::Fneg64),
                    Opcode::Fabs => pick(w, K::Fabs32, K::Fabs64),
                    Opcode::Fsqrt => pick(w, K::Fsqrt32, K::Fsqrt64),
                    Opcode::Sext => K::Sext,
                    Opcode::Zext => K::Zext,
                    Opcode::Trunc => K::Trunc,
                    Opcode::Fext => K::Fext,
                    Opcode::Ftrunc => K::Ftrunc,
                    Opcode::Sitof | Opcode::Uitof => {
                        let signed = op == Opcode::Sitof;
                        match (signed, wide(src_ty), w) {
                            (true, false, false) => K::SitofI32F32,
                            (true, false, true) => K::SitofI32F64,
                            (true, true, false) => K::SitofI64F32,
                            (true, true, true) => K::SitofI64F64,
                            (false, false, false) => K::UitofI32F32,
                            (false, false, true) => K::UitofI32F64,
                            (false, true, false) => K::UitofI64F32,
                            (false, true, true) => K::UitofI64F64,
                        }
                    }
                    Opcode::Ftosi | Opcode::Ftoui => {
                        let signed = op == Opcode::Ftosi;
                        match (signed, wide(src_ty), w) {
                            (true, false, false) => K::FtosiF32I32,
                            (true, false, true) => K::FtosiF32I64,
                            (true, true, false) => K::FtosiF64I32,
                            (true, true, true) => K::FtosiF64I64,
                            (false, false, false) => K::FtouiF32I32,
                            (false, false, true) => K::FtouiF32I64,
                            (false, true, false) => K::FtouiF64I32,
                            (false, true, true) => K::FtouiF64I64,
                        }
                    }
                    _ => {
                        return Err(self.err(Some(inst), format!("bad unary opcode {}", op.name())))
                    }
                };
                Ok(mk(k, a, 0, 0))
            }
            InstKind::Binary { args } => {
                let t = need_ty()?;
                let a = self.operand(inst, args[0], t)?;
                let b = self.operand(inst, args[1], t)?;
                let w = wide(t);
                let k = match op {
                    Opcode::Add => pick(w, K::Add32, K::Add64),
                    Opcode::Sub => pick(w, K::Sub32, K::Sub64),
                    Opcode::Mul => pick(w, K::Mul32, K::Mul64),
                    Opcode::Sdiv => pick(w, K::Sdiv32, K::Sdiv64),
                    Opcode::Udiv => pick(w, K::Udiv32, K::Udiv64),
                    Opcode::Srem => pick(w, K::Srem32, K::Srem64),
                    Opcode::Urem => pick(w, K::Urem32, K::Urem64),
                    Opcode::And => K::And,
                    Opcode::Or => K::Or,
                    Opcode::Xor => K::Xor,
                    Opcode::Shl => pick(w, K::Shl32, K::Shl64),
                    Opcode::Shr => pick(w, K::Shr32, K::Shr64),
                    Opcode::Sar => pick(w, K::Sar32, K::Sar64),
                    Opcode::Fadd => pick(w, K::Fadd32, K::Fadd64),
                    Opcode::Fsub => pick(w, K::Fsub32, K::Fsub64),
                    Opcode::Fmul => pick(w, K::Fmul32, K::Fmul64),
                    Opcode::Fdiv => pick(w, K::Fdiv32, K::Fdiv64),
                    Opcode::Eq => K::Eq,
                    Opcode::Ne => K::Ne,
                    Opcode::Slt => pick(w, K::Slt32, K::Slt64),
                    Opcode::Sle => pick(w, K::Sle32, K::Sle64),
                    Opcode::Sgt => pick(w, K::Sgt32, K::Sgt64),
                    Opcode::Sge => pick(w, K::Sge32, K::Sge64),
                    Opcode::Ult => K::Ult,
                    Opcode::Ule => K::Ule,
                    Opcode::Ugt => K::Ugt,
                    Opcode::Uge => K::Uge,
                    Opcode::Feq => pick(w, K::Feq32, K::Feq64),
                    Opcode::Fne => pick(w, K::Fne32, K::Fne64),
                    Opcode::Flt => pick(w, K::Flt32, K::Flt64),
                    Opcode::Fle => pick(w, K::Fle32, K::Fle64),
                    Opcode::Fgt => pick(w, K::Fgt32, K::Fgt64),
                    Opcode::Fge => pick(w, K::Fge32, K::Fge64),
                    _ => {
                        return Err(self.err(Some(inst), format!("bad binary opcode {}", op.name())))
                    }
                };
                Ok(mk(k, a, b, 0))
            }
            InstKind::Select { args } => {
                let t = need_ty()?;
                let c = self.operand(inst, args[0], Type::I32)?;
                let a = self.operand(inst, args[1], t)?;
                let b = self.operand(inst, args[2], t)?;
                Ok(mk(K::Select, c, a, b))
            }
            InstKind::Load { ptr, offset } => {
                let t = need_ty()?;
                let p = self.operand(inst, *ptr, Type::I64)?;
                let off = self.const_slot(*offset as u64);
                let w = wide(t);
                let k = match op {
                    Opcode::Load => pick(w, K::Load32, K::Load64),
                    Opcode::Load8s => pick(w, K::Load8s32, K::Load8s64),
                    Opcode::Load8u => K::Load8u,
                    Opcode::Load16s => pick(w, K::Load16s32, K::Load16s64),
                    Opcode::Load16u => K::Load16u,
                    Opcode::Load32s => K::Load32s,
                    Opcode::Load32u => K::Load32,
                    _ => return Err(self.err(Some(inst), format!("bad load opcode {}", op.name()))),
                };
                Ok(mk(k, p, off, 0))
            }
            InstKind::Store { args, offset } => {
                let vt = match op {
                    Opcode::Store => need_ty()?,
                    _ => lit_ty(0),
                };
                let v = self.operand(inst, args[0], vt)?;
                let p = self.operand(inst, args[1], Type::I64)?;
                let off = self.const_slot(*offset as u64);
                let k = match op {
                    Opcode::Store => pick(wide(vt), K::Store32, K::Store64),
                    Opcode::Store8 => K::Store8,
                    Opcode::Store16 => K::Store16,
                    Opcode::Store32 => K::Store32,
                    _ => {
                        return Err(self.err(Some(inst), format!("bad store opcode {}", op.name())))
                    }
                };
                Ok(I {
                    k,
                    d: NONE,
                    a: v,
                    b: p,
                    c: off,
                })
            }
            InstKind::Alloca { size, align } => {
                let align = (*align).max(1);
                if !align.is_power_of_two() || align > 4096 {
                    return Err(self.err(Some(inst), format!("bad alloca alignment {align}")));
                }
                let at = self.frame_size.div_ceil(align).saturating_mul(align);
                self.frame_size = at.saturating_add(*size);
                self.frame_align = self.frame_align.max(align);
                // A frame over 4 GiB never fits the interpreter's stack: the
                // function errors on entry, so a saturated offset is never used.
                Ok(mk(K::Alloca, u32::try_from(at).unwrap_or(u32::MAX), 0, 0))
            }
            InstKind::Addr { sym } => {
                let addr = *self
                    .syms
                    .addr
                    .get(sym.index())
                    .ok_or_else(|| self.err(Some(inst), "symbol out of range"))?;
                let a = self.const_slot(addr);
                Ok(mk(K::Copy, a, 0, 0))
            }
            InstKind::Call { callee, args } => {
                let args = self.f.args(*args);
                let d = if data.result.is_some() { d } else { NONE };
                match callee {
                    Callee::Direct(sym) => {
                        let fi = self.syms.func.get(sym.index()).copied().unwrap_or(NONE);
                        let sig = match self
                            .module
                            .symbols
                            .get(sym.index())
                            .and_then(|s| s.signature())
                        {
                            Some(sig) if fi != NONE => sig.clone(),
                            _ => return Err(self.err(Some(inst), "call of a non-function")),
                        };
                        if sig.params.len() != args.len() {
                            return Err(self.err(Some(inst), "argument count mismatch"));
                        }
                        let site = self.call_site(inst, args, &sig.params, Signature::default())?;
                        Ok(I {
                            k: K::Call,
                            d,
                            a: fi,
                            b: site,
                            c: 0,
                        })
                    }
                    Callee::Indirect(ptr) => {
                        let p = self.operand(inst, *ptr, Type::I64)?;
                        let types: Vec<Type> = args
                            .iter()
                            .map(|&a| self.operand_ty(a, Type::I64))
                            .collect();
                        let sig = Signature::new(types.clone(), suffix);
                        let site = self.call_site(inst, args, &types, sig)?;
                        Ok(I {
                            k: K::CallInd,
                            d,
                            a: p,
                            b: site,
                            c: 0,
                        })
                    }
                }
            }
            InstKind::Ret { value } => {
                let a = match value {
                    Some(v) => {
                        let t = self.f.sig.ret.unwrap_or(Type::I64);
                        self.operand(inst, *v, t)?
                    }
                    None => NONE,
                };
                Ok(mk(K::Ret, a, 0, 0))
            }
            InstKind::Jmp { dest } => {
                if dest.args.is_empty() {
                    let pc = self.checked_edge_pc(inst, dest)?;
                    Ok(mk(K::JmpPc, pc, 0, 0))
                } else {
                    let e = self.edge(inst, dest)?;
                    Ok(mk(K::Jmp, e, 0, 0))
                }
            }
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                let c = self.operand(inst, *cond, Type::I32)?;
                if then_dest.args.is_empty() && else_dest.args.is_empty() {
                    let t = self.checked_edge_pc(inst, then_dest)?;
                    let e = self.checked_edge_pc(inst, else_dest)?;
                    Ok(mk(K::BrPc, c, t, e))
                } else {
                    let t = self.edge(inst, then_dest)?;
                    let e = self.edge(inst, else_dest)?;
                    Ok(mk(K::Br, c, t, e))
                }
            }
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                let t = need_ty()?;
                let v = self.operand(inst, *value, t)?;
                let default = self.block_pc(inst, *default)?;
                let mut table: Vec<(u64, u32)> = Vec::with_capacity(cases.len());
                for case in self.f.cases(*cases) {
                    table.push((case.key.bits(t), self.block_pc(inst, case.block)?));
                }
                // Stable sort then dedup keeps the first of equal keys (the
                // verifier rejects duplicates anyway).
                table.sort_by_key(|&(k, _)| k);
                table.dedup_by_key(|&mut (k, _)| k);
                self.prog.switches.push(SwitchTable {
                    keys: table.iter().map(|&(k, _)| k).collect(),
                    pcs: table.iter().map(|&(_, p)| p).collect(),
                    default,
                });
                Ok(mk(K::Switch, v, self.prog.switches.len() as u32 - 1, 0))
            }
            InstKind::Trap => Ok(mk(K::Trap, 0, 0, 0)),
        }
    }

    /// The pc of an argument-less branch target, checking that the block
    /// indeed takes no parameters.
    fn checked_edge_pc(&self, inst: crate::ir::Inst, bc: &BlockCall) -> Result<u32> {
        let pc = self.block_pc(inst, bc.block)?;
        if !self.f.blocks[bc.block.index()].params.is_empty() {
            return Err(self.err(Some(inst), "block argument count mismatch"));
        }
        Ok(pc)
    }
}

fn pick(wide: bool, narrow: K, w: K) -> K {
    if wide {
        w
    } else {
        narrow
    }
}
