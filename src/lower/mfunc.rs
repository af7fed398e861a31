//! The machine-function container every backend lowers into.
//!
//! [`MFunc<I>`] holds a function's machine instructions of the ISA's type
//! `I` with their allocator operands and clobbers, and its blocks, all in
//! flat arrays (compressed rows: `x_start[b]..x_start[b + 1]` indexes `x`),
//! so building one allocates nothing per instruction or per block, and
//! [`MFunc::clear`] keeps every buffer for the next function. It implements
//! [`RaFunction`] so the register allocator reads every backend the same
//! way.
//!
//! Shape guarantees (the allocator's input rules): blocks are numbered in
//! emission order, entry first, loops contiguous ([`MFunc::loop_ends`]);
//! only a `jmp` carries block arguments (edges from a `br` into a block
//! with parameters get their own edge block, see [`super::drive`]); `preds`
//! are filled from `succs` after lowering.

use crate::debug::lines::SourceMarks;
use crate::ir::SymId;
use crate::regalloc::{InstRange, MBlock, MInst, Operand, PRegSet, RaFunction, RegClass, VReg};

/// What the allocator needs to know about one ISA's machine instruction.
pub trait MachInst {
    /// Whether it leaves the function (return or trap).
    fn is_ret(&self) -> bool;
    /// Whether it ends a block by branching to its successors.
    fn is_branch(&self) -> bool;
}

/// A lowered function over the ISA's instructions `I`.
#[derive(Clone, Debug)]
pub struct MFunc<I> {
    pub ops: Vec<I>,
    /// Per instruction + 1: where its operands start in `operands`.
    pub op_start: Vec<u32>,
    pub operands: Vec<Operand>,
    /// Per instruction: its clobber set, as an index into `clobber_sets`
    /// (0: none). Calls all clobber the same set, so a `u16` per
    /// instruction stands for 16 bytes.
    pub clobber_of: Vec<u16>,
    /// The distinct clobber sets; entry 0 is empty.
    pub clobber_sets: Vec<PRegSet>,
    /// Where each IR instruction's machine instructions start, for the
    /// line table ([`crate::debug::lines`]): one mark per lowered IR
    /// instruction.
    pub src: SourceMarks,
    /// Per block + 1: its first instruction.
    pub block_start: Vec<u32>,
    /// Per block + 1: its successors in `succs`.
    pub succ_start: Vec<u32>,
    pub succs: Vec<MBlock>,
    /// Per block + 1: its predecessors in `preds`.
    pub pred_start: Vec<u32>,
    pub preds: Vec<MBlock>,
    /// Per block + 1: its parameters in `params`.
    pub param_start: Vec<u32>,
    pub params: Vec<VReg>,
    /// Per block + 1: the arguments its `jmp` passes, in `args`.
    pub arg_start: Vec<u32>,
    pub args: Vec<VReg>,
    /// Per block: one past the last block of the loop it heads, or 0.
    pub loop_ends: Vec<u32>,
    pub num_vregs: usize,
    /// `alloca` sizes and alignments, by index.
    pub allocas: Vec<(u64, u64)>,
    /// Outgoing stack-argument bytes.
    pub outgoing: u32,
    /// The cases of every `switch`: key bits and successor index.
    pub switch_cases: Vec<(u64, u32)>,
    /// The symbols named by instructions (call targets, `addr`), indexed by
    /// the instructions' own fields.
    pub syms: Vec<SymId>,
}

// Not derived: a derive would require `I: Default`.
impl<I> Default for MFunc<I> {
    fn default() -> Self {
        MFunc {
            ops: Vec::new(),
            op_start: vec![0],
            operands: Vec::new(),
            clobber_of: Vec::new(),
            clobber_sets: vec![PRegSet::empty()],
            src: SourceMarks::default(),
            block_start: vec![0],
            succ_start: vec![0],
            succs: Vec::new(),
            pred_start: vec![0],
            preds: Vec::new(),
            param_start: vec![0],
            params: Vec::new(),
            arg_start: vec![0],
            args: Vec::new(),
            loop_ends: Vec::new(),
            num_vregs: 0,
            allocas: Vec::new(),
            outgoing: 0,
            switch_cases: Vec::new(),
            syms: Vec::new(),
        }
    }
}

fn row<'a, T>(start: &[u32], items: &'a [T], i: usize) -> &'a [T] {
    &items[start[i] as usize..start[i + 1] as usize]
}

impl<I> MFunc<I> {
    /// Records the clobbers of the instruction just pushed.
    pub fn push_clobbers(&mut self, clobbers: PRegSet) {
        let id = if clobbers.is_empty() {
            0
        } else if let Some(k) = self.clobber_sets.iter().rposition(|&c| c == clobbers) {
            // Few distinct sets (call clobbers, a division's): a short scan.
            k
        } else {
            self.clobber_sets.push(clobbers);
            self.clobber_sets.len() - 1
        };
        // More than 65,535 distinct sets cannot come from lowering (each
        // set is a fixed property of an instruction kind).
        self.clobber_of.push(id as u16);
    }

    /// Empties the function, keeping its buffers.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.op_start.clear();
        self.op_start.push(0);
        self.operands.clear();
        self.clobber_of.clear();
        self.clobber_sets.truncate(1);
        self.src.marks.clear();
        for v in [
            &mut self.block_start,
            &mut self.succ_start,
            &mut self.pred_start,
            &mut self.param_start,
            &mut self.arg_start,
        ] {
            v.clear();
            v.push(0);
        }
        self.succs.clear();
        self.preds.clear();
        self.params.clear();
        self.args.clear();
        self.loop_ends.clear();
        self.num_vregs = 0;
        self.allocas.clear();
        self.outgoing = 0;
        self.switch_cases.clear();
        self.syms.clear();
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.block_start.len() - 1
    }

    /// The operands of instruction `i`.
    pub fn operands_of(&self, i: usize) -> &[Operand] {
        row(&self.op_start, &self.operands, i)
    }

    /// The instructions of block `b`.
    pub fn insts_of(&self, b: usize) -> std::ops::Range<usize> {
        self.block_start[b] as usize..self.block_start[b + 1] as usize
    }

    /// The successors of block `b`.
    pub fn succs_of(&self, b: usize) -> &[MBlock] {
        row(&self.succ_start, &self.succs, b)
    }

    /// Fills the predecessor rows from the successor rows (counting sort:
    /// each row lists its predecessors in block order).
    pub fn compute_preds(&mut self) {
        let nb = self.num_blocks();
        self.pred_start.clear();
        self.pred_start.resize(nb + 1, 0);
        for s in &self.succs {
            self.pred_start[s.index() + 1] += 1;
        }
        for b in 0..nb {
            self.pred_start[b + 1] += self.pred_start[b];
        }
        self.preds.clear();
        self.preds.resize(self.succs.len(), MBlock(0));
        // Fill from the back so each row ends up in increasing order.
        for b in (0..nb).rev() {
            for k in (self.succ_start[b]..self.succ_start[b + 1]).rev() {
                let s = self.succs[k as usize].index();
                self.pred_start[s + 1] -= 1;
                self.preds[self.pred_start[s + 1] as usize] = MBlock::new(b);
            }
        }
        // Entry `s + 1` now holds row `s`'s start: shift down by one.
        self.pred_start.rotate_left(1);
        self.pred_start[nb] = self.preds.len() as u32;
    }
}

impl<I: MachInst> RaFunction for MFunc<I> {
    fn num_insts(&self) -> usize {
        self.ops.len()
    }
    fn num_blocks(&self) -> usize {
        self.block_start.len() - 1
    }
    fn num_vregs(&self) -> usize {
        self.num_vregs
    }
    fn entry_block(&self) -> MBlock {
        MBlock(0)
    }
    fn block_insts(&self, block: MBlock) -> InstRange {
        let b = block.index();
        InstRange::new(
            self.block_start[b] as usize,
            self.block_start[b + 1] as usize,
        )
    }
    fn block_succs(&self, block: MBlock) -> &[MBlock] {
        row(&self.succ_start, &self.succs, block.index())
    }
    fn block_preds(&self, block: MBlock) -> &[MBlock] {
        row(&self.pred_start, &self.preds, block.index())
    }
    fn block_params(&self, block: MBlock) -> &[VReg] {
        row(&self.param_start, &self.params, block.index())
    }
    fn is_ret(&self, inst: MInst) -> bool {
        self.ops[inst.index()].is_ret()
    }
    fn is_branch(&self, inst: MInst) -> bool {
        self.ops[inst.index()].is_branch()
    }
    fn branch_blockparams(&self, block: MBlock, _inst: MInst, succ_idx: usize) -> &[VReg] {
        if succ_idx == 0 {
            row(&self.arg_start, &self.args, block.index())
        } else {
            &[]
        }
    }
    fn inst_operands(&self, inst: MInst) -> &[Operand] {
        self.operands_of(inst.index())
    }
    fn inst_clobbers(&self, inst: MInst) -> PRegSet {
        self.clobber_sets[self.clobber_of[inst.index()] as usize]
    }
    fn loop_ends(&self) -> Option<&[u32]> {
        Some(&self.loop_ends)
    }
}

/// The register class of a value of type `ty`.
pub fn class_of(ty: crate::ir::Type) -> RegClass {
    if ty.is_float() {
        RegClass::Float
    } else {
        RegClass::Int
    }
}
