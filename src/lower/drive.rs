//! The lowering driver shared by every backend: block layout, function
//! arguments, block-argument jumps, the terminator skeleton (`ret`, `trap`,
//! `jmp`, `br`, `switch`) and calls. A backend ([`Isa`]) supplies its
//! instruction constructors, its register numbers and the lowering of
//! ordinary instructions, branch conditions and switch dispatch.
//!
//! ## Layout
//! Machine blocks follow the decided block order ([`super::analysis`]); an
//! edge from a `br` into a block with parameters gets its own edge block
//! (a `jmp` passing the arguments) right after the branching block, so only
//! a `jmp` ever carries block arguments. No other edge needs one: the
//! register allocator keeps every value in one place, so only block
//! arguments move at edges. Loops stay contiguous (edge blocks sit inside
//! the loop of their source), and each loop's end is passed on to the
//! allocator.
//!
//! Everything here is linear in the function: a `switch` maps its cases to
//! successor numbers through a per-block stamp, without searching.

use super::abi::{assign_args_into, ArgLoc};
use super::analysis::{err, Decisions};
use super::mfunc::{class_of, MFunc, MachInst};
use crate::error::{Error, Result};
use crate::ir::{
    Block, BlockCall, Callee, Function, Inst, InstKind, Module, Operand as IrOperand, Type, Value,
};
use crate::regalloc::{MBlock, Operand, PReg, PRegSet, RegClass, VReg};
use smallvec::SmallVec;

/// One ISA's half of lowering.
pub trait Isa: Sized + 'static {
    /// The machine instruction.
    type Inst: MachInst;
    /// Integer argument registers, in order.
    const INT_ARGS: &'static [u8];
    /// Number of float argument registers (numbered from 0).
    const FLOAT_ARGS: u8;
    /// The integer result register (the float one is register 0).
    const INT_RESULT: u8;
    /// Registers a call destroys.
    fn call_clobbers() -> PRegSet;
    /// Frame-pointer offset of an incoming stack argument at byte `off` of
    /// the caller's outgoing area.
    fn incoming_stack_offset(off: u32) -> i64;
    /// `[fixed defs...]`: the function's register arguments.
    fn args_op() -> Self::Inst;
    /// `[d]`: an incoming stack argument at frame-pointer offset `off`.
    fn stack_arg_op(off: i64) -> Self::Inst;
    /// `[d]`: the constant `bits` of type `ty`.
    fn const_op(bits: u64, ty: Type) -> Self::Inst;
    /// `[a, d = reuse a]`: a copy.
    fn copy_op() -> Self::Inst;
    /// `[v]`: an outgoing stack argument at stack-pointer offset `off`.
    fn out_arg_op(off: u32, float: bool) -> Self::Inst;
    /// `[fixed uses..., callee?, result?]`: a call of `MFunc::syms[k]`, or
    /// indirect through the last `Reg` use when `None`.
    fn call_op(target: Option<u32>) -> Self::Inst;
    /// A jump (its arguments are the block's `args`).
    fn jmp_op() -> Self::Inst;
    /// `[v?]`: a return.
    fn ret_op() -> Self::Inst;
    /// A trap (`unreachable`).
    fn trap_op() -> Self::Inst;
    /// Lowers one non-terminator instruction.
    fn lower_inst(cx: &mut Cx<'_, Self>, inst: Inst) -> Result<()>;
    /// Pushes the uses of a `br` on `cond` (possibly a fused compare) and
    /// returns the branch instruction.
    fn lower_br(cx: &mut Cx<'_, Self>, cond: IrOperand) -> Result<Self::Inst>;
    /// Pushes the uses of a `switch` on `value` and returns the dispatch
    /// instruction.
    fn lower_switch(
        cx: &mut Cx<'_, Self>,
        value: IrOperand,
        table: SwitchTable,
    ) -> Result<Self::Inst>;
}

/// A `switch` as the backend sees it: its cases are
/// `MFunc::switch_cases[cases.0..cases.1]` (key bits, successor number);
/// successor 0 is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchTable {
    /// The value's type.
    pub ty: Type,
    pub cases: (u32, u32),
    /// With `Some(min)`, the keys are dense enough for a jump table indexed
    /// by `value - min` up to `max`.
    pub dense_min: Option<u64>,
    pub max: u64,
}

/// One machine block of the layout.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// The body of an IR block.
    Body(Block),
    /// An edge block: the `which` (0 then, 1 else) target of the `br`
    /// ending IR block `src`.
    Edge { src: Block, which: u8 },
}

/// The driver's buffers, reused between functions.
#[derive(Default)]
pub struct LayoutBuf {
    slots: Vec<Slot>,
    /// IR block → its machine block.
    mblock_of: Vec<u32>,
    /// Per IR block × 2: the edge block of its `br`'s then / else edge
    /// (when the target has parameters).
    edge_mblock: Vec<u32>,
    /// Per position in the order: the first machine block of its group
    /// (the edge blocks placed before it, then its body).
    group_start: Vec<u32>,
    /// Forward edges waiting for their target: per IR block the first
    /// pending edge, and per pending edge `(source block, which, next)`.
    pend_head: Vec<u32>,
    pend: Vec<(Block, u8, u32)>,
    /// Per IR block: the last switch that gave it a successor number, and
    /// the number.
    sw_stamp: Vec<u32>,
    sw_index: Vec<u32>,
    locs: Vec<ArgLoc>,
}

/// The state of lowering one function, handed to the [`Isa`] hooks.
pub struct Cx<'a, X: Isa> {
    pub module: &'a Module,
    pub func: &'a Function,
    pub dec: &'a Decisions,
    pub out: &'a mut MFunc<X::Inst>,
    /// Operands of the instruction being built.
    pub cur: SmallVec<[Operand; 8]>,
    buf: &'a mut LayoutBuf,
}

/// A lowering error about `func`.
pub fn lower_err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: cannot lower ({what})", func.name))
}

impl<'a, X: Isa> Cx<'a, X> {
    /// The vreg of IR value `v` (vregs are numbered like the values).
    #[inline]
    pub fn v(&self, v: Value) -> VReg {
        VReg::new(v.index(), class_of(self.func.values[v.index()].ty))
    }

    /// A fresh vreg of `class`.
    pub fn new_vreg(&mut self, class: RegClass) -> VReg {
        let v = VReg::new(self.out.num_vregs, class);
        self.out.num_vregs += 1;
        v
    }

    /// Appends `op` with the operands collected in `cur`.
    pub fn push(&mut self, op: X::Inst, clobbers: PRegSet) {
        self.out.operands.extend_from_slice(&self.cur);
        self.cur.clear();
        self.out.op_start.push(self.out.operands.len() as u32);
        self.out.ops.push(op);
        self.out.push_clobbers(clobbers);
    }

    /// [`Cx::push`] without clobbers.
    pub fn push0(&mut self, op: X::Inst) {
        self.push(op, PRegSet::empty());
    }

    /// A vreg holding `op` (of type `ty`): the value's own, or a fresh one
    /// defined by a constant instruction. Operands already collected in
    /// `cur` stay for the instruction being built.
    pub fn reg(&mut self, op: IrOperand, ty: Type) -> VReg {
        match op {
            IrOperand::Value(v) => self.v(v),
            IrOperand::Const(c) => {
                let d = self.new_vreg(class_of(ty));
                let pending = std::mem::take(&mut self.cur);
                self.cur.push(Operand::reg_def(d));
                self.push0(X::const_op(c.bits(ty), ty));
                self.cur = pending;
                d
            }
        }
    }

    /// The result vreg of `inst`.
    pub fn result(&self, inst: Inst) -> Result<VReg> {
        self.func.insts[inst.index()]
            .result
            .map(|r| self.v(r))
            .ok_or_else(|| lower_err(self.func, "missing result"))
    }

    /// A fresh vreg holding a copy of `r`.
    pub fn copy_of(&mut self, r: VReg) -> VReg {
        let c = self.new_vreg(r.class());
        let pending = std::mem::take(&mut self.cur);
        self.cur.push(Operand::reg_use(r));
        self.cur.push(Operand::reuse_def(c, 0));
        self.push0(X::copy_op());
        self.cur = pending;
        c
    }

    /// Records symbol `sym` for an instruction to name; its number.
    pub fn sym(&mut self, sym: crate::ir::SymId) -> u32 {
        self.out.syms.push(sym);
        self.out.syms.len() as u32 - 1
    }

    /// Lowers a call `inst` of `callee` with `args` (the ABI's registers,
    /// stack arguments, copies of a vreg passed twice, the result).
    pub fn lower_call(&mut self, inst: Inst, callee: Callee, args: &[IrOperand]) -> Result<()> {
        let module = self.module;
        let func = self.func;
        let mut ind: SmallVec<[Type; 8]> = SmallVec::new();
        let (tys, ret): (&[Type], Option<Type>) = match callee {
            Callee::Direct(s) => {
                let sig = module.symbols[s.index()]
                    .signature()
                    .ok_or_else(|| lower_err(func, "call of data"))?;
                (&sig.params, sig.ret)
            }
            Callee::Indirect(_) => {
                ind.extend(args.iter().map(|a| func.operand_type(*a, Type::I64)));
                (&ind, func.insts[inst.index()].ty)
            }
        };
        if tys.len() != args.len() {
            return Err(lower_err(func, "call arity"));
        }
        let mut locs = std::mem::take(&mut self.buf.locs);
        let stack = assign_args_into(tys, X::INT_ARGS, X::FLOAT_ARGS, &mut locs);
        self.out.outgoing = self.out.outgoing.max(stack);
        let mut regs: SmallVec<[(VReg, PReg); 8]> = SmallVec::new();
        for (k, loc) in locs.iter().enumerate() {
            let r = self.reg(args[k], tys[k]);
            match *loc {
                ArgLoc::Stack(off) => {
                    self.cur.push(Operand::reg_use(r));
                    self.push0(X::out_arg_op(off, tys[k].is_float()));
                }
                ArgLoc::Int(n) => regs.push((r, PReg::new(n, RegClass::Int))),
                ArgLoc::Float(n) => regs.push((r, PReg::new(n, RegClass::Float))),
            }
        }
        self.buf.locs = locs;
        let callee_reg = match callee {
            Callee::Indirect(op) => Some(self.reg(op, Type::I64)),
            Callee::Direct(_) => None,
        };
        // A vreg passed in two argument registers needs a copy for one of
        // them (one vreg, one fixed register per instruction).
        for k in 0..regs.len() {
            let (r, preg) = regs[k];
            let r = if regs[..k].iter().any(|x| x.0 == r) || callee_reg == Some(r) {
                self.copy_of(r)
            } else {
                r
            };
            regs[k].0 = r;
            self.cur.push(Operand::fixed_use(r, preg));
        }
        if let Some(c) = callee_reg {
            self.cur.push(Operand::reg_use(c));
        }
        if let (Some(rv), Some(rt)) = (func.insts[inst.index()].result, ret) {
            let v = self.v(rv);
            self.cur.push(Operand::fixed_def(v, result_reg::<X>(rt)));
        }
        let target = match callee {
            Callee::Direct(s) => Some(self.sym(s)),
            Callee::Indirect(_) => None,
        };
        self.push(X::call_op(target), X::call_clobbers());
        Ok(())
    }

    /// Defines the function's parameters (in the entry block).
    fn lower_args(&mut self) -> Result<()> {
        let func = self.func;
        let mut locs = std::mem::take(&mut self.buf.locs);
        assign_args_into(&func.sig.params, X::INT_ARGS, X::FLOAT_ARGS, &mut locs);
        if locs.len() != func.params.len() {
            self.buf.locs = locs;
            return Err(lower_err(func, "parameter count"));
        }
        for (k, loc) in locs.iter().enumerate() {
            let v = self.v(func.params[k]);
            match *loc {
                ArgLoc::Int(n) => self
                    .cur
                    .push(Operand::fixed_def(v, PReg::new(n, RegClass::Int))),
                ArgLoc::Float(n) => self
                    .cur
                    .push(Operand::fixed_def(v, PReg::new(n, RegClass::Float))),
                ArgLoc::Stack(_) => {}
            }
        }
        self.push0(X::args_op());
        for (k, loc) in locs.iter().enumerate() {
            if let ArgLoc::Stack(off) = *loc {
                let v = self.v(func.params[k]);
                self.cur.push(Operand::reg_def(v));
                self.push0(X::stack_arg_op(X::incoming_stack_offset(off)));
            }
        }
        self.buf.locs = locs;
        Ok(())
    }

    /// A `jmp` to machine block `target` (IR block `ir_target`) passing
    /// `args`.
    fn jump(&mut self, target: u32, ir_target: Block, args: &[IrOperand]) -> Result<()> {
        let func = self.func;
        let params = &func.blocks[ir_target.index()].params;
        if params.len() != args.len() {
            return Err(lower_err(func, "block argument count"));
        }
        for (k, &a) in args.iter().enumerate() {
            // A literal takes the parameter's type.
            let ty = func.operand_type(a, func.value_type(params[k]));
            let r = self.reg(a, ty);
            self.out.args.push(r);
        }
        self.out.succs.push(MBlock(target));
        self.push0(X::jmp_op());
        Ok(())
    }

    /// The machine block edge `which` of the `br` ending IR block `b` goes
    /// to: its edge block when the target has parameters, else the target.
    fn edge_target(&self, b: Block, dest: &BlockCall, which: usize) -> u32 {
        if self.func.blocks[dest.block.index()].params.is_empty() {
            self.buf.mblock_of[dest.block.index()]
        } else {
            self.buf.edge_mblock[2 * b.index() + which]
        }
    }

    fn lower_terminator(&mut self, b: Block, t: Inst, sw_id: u32) -> Result<()> {
        let func = self.func;
        let d = &func.insts[t.index()];
        match &d.kind {
            InstKind::Ret { value } => {
                if let Some(v) = value {
                    let rt = func.sig.ret.ok_or_else(|| err(func, "ret type"))?;
                    let r = self.reg(*v, rt);
                    self.cur.push(Operand::fixed_use(r, result_reg::<X>(rt)));
                }
                self.push0(X::ret_op());
            }
            InstKind::Trap => self.push0(X::trap_op()),
            InstKind::Jmp { dest } => {
                let target = self.buf.mblock_of[dest.block.index()];
                self.jump(target, dest.block, func.args(dest.args))?;
            }
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                let tt = self.edge_target(b, then_dest, 0);
                let et = self.edge_target(b, else_dest, 1);
                let op = X::lower_br(self, *cond)?;
                self.out.succs.push(MBlock(tt));
                self.out.succs.push(MBlock(et));
                self.push0(op);
            }
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                let ty = d.ty.unwrap_or(Type::I64);
                // Successor numbers: the default first, then each new
                // target in case order.
                let buf = &mut *self.buf;
                let first_succ = self.out.succs.len();
                buf.sw_stamp[default.index()] = sw_id;
                buf.sw_index[default.index()] = 0;
                self.out.succs.push(MBlock(buf.mblock_of[default.index()]));
                let case_start = self.out.switch_cases.len() as u32;
                let (mut lo, mut hi) = (u64::MAX, 0u64);
                for c in func.cases(*cases) {
                    let b = c.block.index();
                    if buf.sw_stamp[b] != sw_id {
                        buf.sw_stamp[b] = sw_id;
                        buf.sw_index[b] = (self.out.succs.len() - first_succ) as u32;
                        self.out.succs.push(MBlock(buf.mblock_of[b]));
                    }
                    let key = c.key.bits(ty);
                    lo = lo.min(key);
                    hi = hi.max(key);
                    self.out.switch_cases.push((key, buf.sw_index[b]));
                }
                if self.out.succs.len() - first_succ == 1 {
                    // Every case goes to the default: a plain jump (a
                    // single-successor branch may not read registers).
                    self.out.succs.truncate(first_succ);
                    self.out.switch_cases.truncate(case_start as usize);
                    let target = self.buf.mblock_of[default.index()];
                    return self.jump(target, *default, &[]);
                }
                let n = cases.len() as u64;
                let dense_min = (n >= 4 && hi - lo < 4 * n && hi - lo < 65536).then_some(lo);
                let table = SwitchTable {
                    ty,
                    cases: (case_start, self.out.switch_cases.len() as u32),
                    dense_min,
                    max: hi,
                };
                let op = X::lower_switch(self, *value, table)?;
                self.push0(op);
            }
            _ => return Err(lower_err(func, "terminator")),
        }
        Ok(())
    }
}

fn reset<T: Copy>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

/// The register a result of type `ty` comes back in.
pub fn result_reg<X: Isa>(ty: Type) -> PReg {
    if ty.is_float() {
        PReg::new(0, RegClass::Float)
    } else {
        PReg::new(X::INT_RESULT, RegClass::Int)
    }
}

/// Lowers `func` (verified, decided in `dec`) into `out`.
pub fn lower<X: Isa>(
    module: &Module,
    func: &Function,
    dec: &Decisions,
    buf: &mut LayoutBuf,
    out: &mut MFunc<X::Inst>,
) -> Result<()> {
    out.clear();
    out.num_vregs = func.values.len();
    out.src.reset(func.srcmap.func);
    let nb = func.blocks.len();
    // Layout: each block of the order. An edge block goes right before its
    // target when that comes later (it falls through into it, and stays
    // out of the loop its source may be in), or right after its source
    // for a back edge (inside the loop).
    buf.slots.clear();
    reset(&mut buf.mblock_of, nb, u32::MAX);
    reset(&mut buf.sw_stamp, nb, u32::MAX);
    reset(&mut buf.sw_index, nb, 0);
    reset(&mut buf.edge_mblock, 2 * nb, u32::MAX);
    reset(&mut buf.pend_head, nb, u32::MAX);
    buf.pend.clear();
    buf.group_start.clear();
    for (pos, &b) in dec.order.iter().enumerate() {
        buf.group_start.push(buf.slots.len() as u32);
        let mut e = buf.pend_head[b.index()];
        while e != u32::MAX {
            let (src, which, next) = buf.pend[e as usize];
            buf.edge_mblock[2 * src.index() + which as usize] = buf.slots.len() as u32;
            buf.slots.push(Slot::Edge { src, which });
            e = next;
        }
        buf.mblock_of[b.index()] = buf.slots.len() as u32;
        buf.slots.push(Slot::Body(b));
        let insts = &func.blocks[b.index()].insts;
        let t = insts[insts.len() - 1];
        if let InstKind::Br {
            then_dest,
            else_dest,
            ..
        } = &func.insts[t.index()].kind
        {
            for (which, dest) in [then_dest, else_dest].into_iter().enumerate() {
                let d = dest.block.index();
                if func.blocks[d].params.is_empty() {
                    continue;
                }
                if dec.position(dest.block).is_some_and(|p| p > pos) {
                    buf.pend.push((b, which as u8, buf.pend_head[d]));
                    buf.pend_head[d] = buf.pend.len() as u32 - 1;
                } else {
                    buf.edge_mblock[2 * b.index() + which] = buf.slots.len() as u32;
                    buf.slots.push(Slot::Edge {
                        src: b,
                        which: which as u8,
                    });
                }
            }
        }
    }
    let nm = buf.slots.len() as u32;
    // Parameters and loop ends per machine block.
    let mut pos = 0usize;
    for slot in &buf.slots {
        match *slot {
            Slot::Body(b) => {
                for &p in &func.blocks[b.index()].params {
                    out.params
                        .push(VReg::new(p.index(), class_of(func.values[p.index()].ty)));
                }
                let end = dec.loop_end[pos];
                out.loop_ends.push(match end {
                    0 => 0,
                    e if (e as usize) < dec.order.len() => buf.group_start[e as usize],
                    _ => nm,
                });
                pos += 1;
            }
            Slot::Edge { .. } => out.loop_ends.push(0),
        }
        out.param_start.push(out.params.len() as u32);
    }
    let slots = std::mem::take(&mut buf.slots);
    let mut cx = Cx::<X> {
        module,
        func,
        dec,
        out,
        cur: SmallVec::new(),
        buf,
    };
    let mut result = Ok(());
    for (m, slot) in slots.iter().enumerate() {
        let r = match *slot {
            Slot::Body(b) => cx.lower_body(m as u32, b),
            Slot::Edge { src, which } => {
                let insts = &func.blocks[src.index()].insts;
                match &func.insts[insts[insts.len() - 1].index()].kind {
                    InstKind::Br {
                        then_dest,
                        else_dest,
                        ..
                    } => {
                        let dest = if which == 0 { then_dest } else { else_dest };
                        let target = cx.buf.mblock_of[dest.block.index()];
                        cx.jump(target, dest.block, func.args(dest.args))
                    }
                    _ => Err(lower_err(func, "edge of a non-branch")),
                }
            }
        };
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        cx.out.block_start.push(cx.out.ops.len() as u32);
        cx.out.succ_start.push(cx.out.succs.len() as u32);
        cx.out.arg_start.push(cx.out.args.len() as u32);
    }
    cx.buf.slots = slots;
    result?;
    out.compute_preds();
    Ok(())
}

impl<X: Isa> Cx<'_, X> {
    fn lower_body(&mut self, m: u32, b: Block) -> Result<()> {
        let func = self.func;
        let insts = &func.blocks[b.index()].insts;
        if m == 0 {
            self.lower_args()?;
        }
        let n = insts.len();
        for &inst in &insts[..n - 1] {
            if self.dec.omitted(inst.index()) {
                continue;
            }
            self.mark(inst);
            X::lower_inst(self, inst)?;
        }
        let t = insts[n - 1];
        self.mark(t);
        self.lower_terminator(b, t, m)
    }

    /// IR instruction `inst`'s machine code starts here (the line table).
    #[inline]
    fn mark(&mut self, inst: Inst) {
        let loc = self.func.srcmap.inst(inst);
        self.out.src.mark(self.out.ops.len(), loc);
    }
}
