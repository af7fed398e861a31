//! The machine-function container every backend lowers into, and the
//! ISA-independent lowering driver (block layout with edge blocks).
//!
//! [`MFunc<I>`] holds a function's machine instructions of the ISA's type
//! `I` with their allocator operands and clobbers, grouped into
//! [`MBlockData`] blocks; it implements [`RaFunction`] so the register
//! allocator reads every backend the same way. [`Layout`] lays out the IR
//! blocks in the backend's order, each followed by the edge blocks its
//! terminator needs, and [`drive`] walks that layout calling the backend's
//! [`IsaLower`] hooks.
//!
//! Shape guarantees (the allocator's input rules): blocks are numbered in
//! emission order, entry first; edges into blocks with parameters or several
//! predecessors from blocks with several successors (`br`, `switch`) get
//! their own edge block (no critical edges), so only `jmp` carries block
//! arguments; `preds` are filled from `succs` after lowering.

use crate::debug::lines::SourceMarks;
use crate::error::{Error, Result};
use crate::ir::{Block, Function, Inst, InstKind, Operand as IrOperand, Type, Value};
use crate::regalloc::{InstRange, MBlock, MInst, Operand, PRegSet, RaFunction, RegClass, VReg};

/// What the allocator needs to know about one ISA's machine instruction.
pub trait MachInst {
    /// Whether it leaves the function (return or trap).
    fn is_ret(&self) -> bool;
    /// Whether it ends a block by branching to its successors.
    fn is_branch(&self) -> bool;
}

/// One machine block.
#[derive(Clone, Debug, Default)]
pub struct MBlockData {
    pub insts: (usize, usize),
    pub succs: Vec<MBlock>,
    pub preds: Vec<MBlock>,
    pub params: Vec<VReg>,
    /// Per successor: the arguments (only a `jmp` has any).
    pub succ_args: Vec<Vec<VReg>>,
}

/// A lowered function over the ISA's instructions `I`.
#[derive(Clone, Debug)]
pub struct MFunc<I> {
    pub ops: Vec<I>,
    /// Per instruction: its range in `operands`.
    pub op_ranges: Vec<(u32, u32)>,
    pub operands: Vec<Operand>,
    pub clobbers: Vec<PRegSet>,
    pub blocks: Vec<MBlockData>,
    pub num_vregs: usize,
    /// `alloca` sizes and alignments, by index.
    pub allocas: Vec<(u64, u64)>,
    /// Outgoing stack-argument bytes.
    pub outgoing: u32,
    /// Where each IR instruction's machine instructions start, for the
    /// line table ([`crate::debug::lines`]).
    pub src: SourceMarks,
}

// Not derived: a derive would require `I: Default`.
impl<I> Default for MFunc<I> {
    fn default() -> Self {
        MFunc {
            ops: Vec::new(),
            op_ranges: Vec::new(),
            operands: Vec::new(),
            clobbers: Vec::new(),
            blocks: Vec::new(),
            num_vregs: 0,
            allocas: Vec::new(),
            outgoing: 0,
            src: SourceMarks::default(),
        }
    }
}

impl<I: MachInst> RaFunction for MFunc<I> {
    fn num_insts(&self) -> usize {
        self.ops.len()
    }
    fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
    fn num_vregs(&self) -> usize {
        self.num_vregs
    }
    fn entry_block(&self) -> MBlock {
        MBlock(0)
    }
    fn block_insts(&self, block: MBlock) -> InstRange {
        let (a, b) = self.blocks[block.index()].insts;
        InstRange::new(a, b)
    }
    fn block_succs(&self, block: MBlock) -> &[MBlock] {
        &self.blocks[block.index()].succs
    }
    fn block_preds(&self, block: MBlock) -> &[MBlock] {
        &self.blocks[block.index()].preds
    }
    fn block_params(&self, block: MBlock) -> &[VReg] {
        &self.blocks[block.index()].params
    }
    fn is_ret(&self, inst: MInst) -> bool {
        self.ops[inst.index()].is_ret()
    }
    fn is_branch(&self, inst: MInst) -> bool {
        self.ops[inst.index()].is_branch()
    }
    fn branch_blockparams(&self, block: MBlock, _inst: MInst, succ_idx: usize) -> &[VReg] {
        self.blocks[block.index()]
            .succ_args
            .get(succ_idx)
            .map_or(&[], |v| v.as_slice())
    }
    fn inst_operands(&self, inst: MInst) -> &[Operand] {
        self.operands_of(inst.index())
    }
    fn inst_clobbers(&self, inst: MInst) -> PRegSet {
        self.clobbers[inst.index()]
    }
}

impl<I> MFunc<I> {
    /// The operands of instruction `i`.
    pub fn operands_of(&self, i: usize) -> &[Operand] {
        let (a, b) = self.op_ranges[i];
        &self.operands[a as usize..b as usize]
    }
}

/// The register class of a value of type `ty`.
pub fn class_of(ty: Type) -> RegClass {
    if ty.is_float() {
        RegClass::Float
    } else {
        RegClass::Int
    }
}

/// One vreg per IR value, numbered like the values.
pub fn value_vregs(func: &Function) -> Vec<VReg> {
    func.values
        .iter()
        .enumerate()
        .map(|(i, v)| VReg::new(i, class_of(v.ty)))
        .collect()
}

/// A lowering error about `func`.
pub fn lower_err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: cannot lower ({what})", func.name))
}

/// One machine block of the layout.
pub enum Slot {
    /// The body of an IR block.
    Body(Block),
    /// An edge block: a `jmp` to `target` passing `args`.
    Edge { target: Block, args: Vec<IrOperand> },
}

/// The machine-block layout of one function.
pub struct Layout {
    /// Machine blocks in emission order.
    pub slots: Vec<Slot>,
    /// IR block → its machine block.
    pub mblock: Vec<Option<MBlock>>,
    /// Machine block → the IR block it lays out (`None` for edge blocks).
    pub ir_block: Vec<Option<Block>>,
    /// Per IR block: for each successor edge in terminator order, the
    /// layout index it branches to, or `usize::MAX - target` for a direct
    /// edge to IR block `target` (resolved through `mblock`).
    edge_targets: Vec<Vec<usize>>,
}

impl Layout {
    /// Lays out the blocks of `order` (structurally checked), each followed
    /// by the edge blocks its terminator needs.
    pub fn new(func: &Function, order: &[Block]) -> Result<Layout> {
        let mut npreds = vec![0u32; func.blocks.len()];
        for &b in order {
            if let Some(t) = func.terminator(b) {
                for s in func.successors(t) {
                    npreds[s.index()] += 1;
                }
            }
        }
        let mut slots: Vec<Slot> = Vec::new();
        let mut mblock = vec![None; func.blocks.len()];
        let mut edge_targets: Vec<Vec<usize>> = vec![Vec::new(); func.blocks.len()];
        for &b in order {
            let me = slots.len();
            mblock[b.index()] = Some(MBlock::new(me));
            slots.push(Slot::Body(b));
            let Some(t) = func.terminator(b) else {
                return Err(lower_err(func, "block without terminator"));
            };
            let d = func.inst(t);
            let calls: Vec<(Block, Vec<IrOperand>)> = match &d.kind {
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => vec![
                    (then_dest.block, func.args(then_dest.args).to_vec()),
                    (else_dest.block, func.args(else_dest.args).to_vec()),
                ],
                InstKind::Switch { default, cases, .. } => {
                    let mut v = vec![(*default, Vec::new())];
                    for c in func.cases(*cases) {
                        if !v.iter().any(|(b, _)| *b == c.block) {
                            v.push((c.block, Vec::new()));
                        }
                    }
                    v
                }
                // Single-successor terminators branch directly.
                _ => continue,
            };
            let same_twice = calls.len() == 2 && calls[0].0 == calls[1].0;
            for (target, args) in calls {
                let needs_edge = !func.blocks[target.index()].params.is_empty()
                    || npreds[target.index()] > 1
                    || same_twice;
                if needs_edge {
                    edge_targets[b.index()].push(slots.len());
                    slots.push(Slot::Edge { target, args });
                } else {
                    edge_targets[b.index()].push(usize::MAX - target.index());
                }
            }
        }
        let ir_block = slots
            .iter()
            .map(|s| match s {
                Slot::Body(b) => Some(*b),
                Slot::Edge { .. } => None,
            })
            .collect();
        Ok(Layout {
            slots,
            mblock,
            ir_block,
            edge_targets,
        })
    }

    /// The machine successors of IR block `b`'s terminator, in order.
    fn succs(&self, b: Block) -> Option<Vec<MBlock>> {
        let n = self.mblock.len();
        self.edge_targets[b.index()]
            .iter()
            .map(|&x| {
                if x >= usize::MAX - n {
                    self.mblock[usize::MAX - x]
                } else {
                    Some(MBlock::new(x))
                }
            })
            .collect()
    }
}

/// The per-ISA half of lowering, called by [`drive`].
pub trait IsaLower {
    /// The ISA's machine instruction.
    type Inst;
    /// The function being built.
    fn out(&mut self) -> &mut MFunc<Self::Inst>;
    /// The vreg of IR value `v`.
    fn vreg(&self, v: Value) -> VReg;
    /// Whether `inst` emits nothing (fused into its branch, or folded).
    fn omitted(&self, inst: Inst) -> bool;
    /// Defines the function's parameters (in the entry block).
    fn lower_args(&mut self) -> Result<()>;
    /// Lowers one non-terminator instruction.
    fn lower_inst(&mut self, inst: Inst) -> Result<()>;
    /// Lowers terminator `t`, ending machine block `mi` with `succs`.
    fn lower_terminator(&mut self, mi: usize, t: Inst, succs: Vec<MBlock>) -> Result<()>;
    /// A `jmp` to `target` passing `args`, ending machine block `mi`.
    fn jump(&mut self, mi: usize, target: MBlock, args: &[IrOperand]) -> Result<()>;
}

/// Lowers `func` block by block in `layout` order through `l`, then fills
/// every block's instruction range and predecessors.
pub fn drive<L: IsaLower>(func: &Function, layout: &Layout, l: &mut L) -> Result<()> {
    let nblocks = layout.slots.len();
    l.out().blocks = vec![MBlockData::default(); nblocks];
    l.out().src = SourceMarks::new(func.srcmap.func);
    for (mi, slot) in layout.slots.iter().enumerate() {
        if let Slot::Body(b) = slot {
            let params = func.blocks[b.index()]
                .params
                .iter()
                .map(|&p| l.vreg(p))
                .collect();
            l.out().blocks[mi].params = params;
        }
    }
    for (mi, slot) in layout.slots.iter().enumerate() {
        let start = l.out().ops.len();
        match slot {
            Slot::Body(b) => {
                let bd = &func.blocks[b.index()];
                if mi == 0 {
                    l.lower_args()?;
                }
                let n = bd.insts.len();
                for &inst in &bd.insts[..n.saturating_sub(1)] {
                    if l.omitted(inst) {
                        continue;
                    }
                    let out = l.out();
                    out.src.mark(out.ops.len(), func.srcmap.inst(inst));
                    l.lower_inst(inst)?;
                }
                let t = *bd
                    .insts
                    .last()
                    .ok_or_else(|| lower_err(func, "empty block"))?;
                let succs = layout
                    .succs(*b)
                    .ok_or_else(|| lower_err(func, "edge to unknown block"))?;
                let out = l.out();
                out.src.mark(out.ops.len(), func.srcmap.inst(t));
                l.lower_terminator(mi, t, succs)?;
            }
            Slot::Edge { target, args } => {
                let tb =
                    layout.mblock[target.index()].ok_or_else(|| lower_err(func, "edge target"))?;
                l.jump(mi, tb, args)?;
            }
        }
        let end = l.out().ops.len();
        l.out().blocks[mi].insts = (start, end);
    }
    let out = l.out();
    for b in 0..nblocks {
        for s in out.blocks[b].succs.clone() {
            out.blocks[s.index()].preds.push(MBlock::new(b));
        }
    }
    Ok(())
}
