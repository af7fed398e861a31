//! Register allocation: linear scan over one live range per value
//! (Poletto & Sarkar, with TPDE-style liveness on a loop-contiguous block
//! order) behind a narrow, regalloc2-style interface, validated by a
//! symbolic checker. Every pass is linear in the function (N log N for N
//! nested loops): no per-block live sets, no sorting, no hashing.
//!
//! The allocator never sees the IR. A backend lowers IR into machine
//! instructions over virtual registers ([`VReg`]) and hands the allocator a
//! view of them through the [`RaFunction`] trait: blocks, their order and
//! edges, block parameters, loops, and per instruction a list of
//! [`Operand`]s (which vreg, use or def, early or late, and a constraint)
//! plus the physical registers the instruction clobbers. The target is data
//! ([`MachineEnv`]).
//!
//! The result ([`Output`]) is a location ([`Allocation`]: a register or a
//! spill slot) for every operand of every instruction, and a sorted list of
//! move [`Edit`]s to insert between instructions. The backend emits each
//! instruction with its operands' allocations and the moves at their
//! [`ProgPoint`]s.
//!
//! Passes, one file each, run in this order by [`allocate`] (all scratch
//! memory lives in a reusable [`Ctx`]):
//! - [`liveness`]: validation, loops, one range per vreg, fixed-register
//!   reservations;
//! - [`scan`]: the linear scan: each vreg gets one register or one spill
//!   slot for its whole range (spilled vregs get per-instruction
//!   temporaries);
//! - [`moves`]: operand locations, reloads, spill stores, fixed-register
//!   copies and block-argument moves, as sequentialized parallel moves;
//! - [`checker`]: simulates the result symbolically and proves every read sees
//!   the vreg it expects (run in debug builds and by every test).
//!
//! A compiler's emitter takes the last two steps' result block by block
//! instead ([`prepare_static`], then [`Ctx::stream`], see [`stream`]): the same
//! per-instruction resolution, without the whole function's edits and
//! allocations in memory at once.
//!
//! ## What the input must satisfy (checked by [`allocate`], which returns an error otherwise)
//! - Blocks are numbered in the linear order the backend will emit them, the
//!   entry block first; the instructions of block `b` are one contiguous range
//!   and the ranges follow each other in block order (block 0 starts at inst
//!   0). Every definition comes before its uses in this order (true of any
//!   order where a block's dominators come before it). Loops should be
//!   contiguous, header first ([`RaFunction::loop_ends`]); otherwise values
//!   are kept live to the end of the function (correct, but spills a lot).
//! - Every block ends with a terminator: a branch (`is_branch`) or a return
//!   (`is_ret`); no other instruction is one.
//! - Only a branch with exactly one successor passes block arguments, and it
//!   has no operands (it is a plain jump: the argument moves go right before
//!   it). Branches have no defs. The entry block has no predecessors.
//! - SSA: every vreg is defined exactly once (by a def operand or as a block
//!   parameter), the definition dominates its uses. The entry block has no
//!   parameters: function arguments are defs of an instruction with
//!   `FixedReg` constraints.
//! - A vreg is used at most once per instruction with each constraint kind
//!   it matters for, two fixed operands of one instruction never name the
//!   same register in the same position, and the register-constrained
//!   (`Reg`, `FixedReg`, `Reuse`) operands of one instruction and class do
//!   not outnumber that class's allocatable registers.
//!
//! ## Operand semantics
//! Each instruction has two points: **Early** (its inputs are read) and
//! **Late** (its outputs are written). Normal uses are Early, normal defs
//! Late, so a def may share a register with a use that dies there. An Early
//! def (a temporary, or an output written before all inputs are read) gets a
//! register distinct from every use; a Late use stays intact in its location
//! while the outputs are written. Clobbers take effect between Early and Late:
//! uses may sit in clobbered registers (call arguments), values live after the
//! instruction may not (except the instruction's own Late defs, like a call's
//! result in `rax`).

pub mod checker;
pub mod liveness;
pub mod moves;
pub mod scan;
pub mod stream;
pub mod testing;

use std::fmt;

/// A register class: what kind of physical register a vreg needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegClass {
    /// General-purpose (integer and pointer) registers.
    Int = 0,
    /// Floating-point / vector registers.
    Float = 1,
}

impl RegClass {
    /// Both classes, in index order.
    pub const ALL: [RegClass; 2] = [RegClass::Int, RegClass::Float];

    /// 0 for `Int`, 1 for `Float`: an index for per-class tables.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A physical register: its hardware encoding (0..64) and class.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PReg {
    hw: u8,
    class: RegClass,
}

impl PReg {
    /// The largest hardware encoding + 1 a [`PRegSet`] can hold per class.
    pub const MAX_HW: usize = 64;

    /// The register with hardware encoding `hw` (must be < 64) in `class`.
    #[inline]
    pub const fn new(hw: u8, class: RegClass) -> PReg {
        assert!((hw as usize) < PReg::MAX_HW);
        PReg { hw, class }
    }

    #[inline]
    pub fn hw(self) -> u8 {
        self.hw
    }

    #[inline]
    pub fn class(self) -> RegClass {
        self.class
    }

    /// A dense index over both classes: `class * 64 + hw`.
    #[inline]
    pub fn index(self) -> usize {
        self.class.index() * PReg::MAX_HW + self.hw as usize
    }

    /// The register with dense index `index` (inverse of [`PReg::index`]).
    #[inline]
    pub fn from_index(index: usize) -> PReg {
        let class = if index >= PReg::MAX_HW {
            RegClass::Float
        } else {
            RegClass::Int
        };
        PReg {
            hw: (index % PReg::MAX_HW) as u8,
            class,
        }
    }
}

impl fmt::Debug for PReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.class {
            RegClass::Int => write!(f, "r{}", self.hw),
            RegClass::Float => write!(f, "f{}", self.hw),
        }
    }
}

impl fmt::Display for PReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A set of physical registers of both classes (a 128-bit bitset).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PRegSet {
    bits: [u64; 2],
}

impl PRegSet {
    pub const fn empty() -> PRegSet {
        PRegSet { bits: [0; 2] }
    }

    #[inline]
    pub fn add(&mut self, r: PReg) {
        self.bits[r.class.index()] |= 1u64 << r.hw;
    }

    #[inline]
    pub fn remove(&mut self, r: PReg) {
        self.bits[r.class.index()] &= !(1u64 << r.hw);
    }

    #[inline]
    pub fn contains(&self, r: PReg) -> bool {
        self.bits[r.class.index()] & (1u64 << r.hw) != 0
    }

    /// `self` with `r` added (builder style).
    pub fn with(mut self, r: PReg) -> PRegSet {
        self.add(r);
        self
    }

    pub fn union(&self, other: &PRegSet) -> PRegSet {
        PRegSet {
            bits: [self.bits[0] | other.bits[0], self.bits[1] | other.bits[1]],
        }
    }

    /// The registers in both sets.
    pub fn intersection(&self, other: &PRegSet) -> PRegSet {
        PRegSet {
            bits: [self.bits[0] & other.bits[0], self.bits[1] & other.bits[1]],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bits == [0; 2]
    }

    pub fn len(&self) -> usize {
        (self.bits[0].count_ones() + self.bits[1].count_ones()) as usize
    }

    /// The members, `Int` class first, each class by ascending encoding.
    pub fn iter(&self) -> impl Iterator<Item = PReg> + '_ {
        // One step per member (lowest set bit first), not per bit.
        RegClass::ALL.into_iter().flat_map(move |class| {
            let mut bits = self.bits[class.index()];
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let hw = bits.trailing_zeros() as u8;
                bits &= bits - 1;
                Some(PReg::new(hw, class))
            })
        })
    }
}

impl FromIterator<PReg> for PRegSet {
    fn from_iter<T: IntoIterator<Item = PReg>>(iter: T) -> Self {
        let mut set = PRegSet::empty();
        for r in iter {
            set.add(r);
        }
        set
    }
}

impl fmt::Debug for PRegSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A virtual register: an SSA value of the machine code, numbered densely
/// from 0 (`index < num_vregs`), with the class it must be allocated in.
///
/// Packed in one `u32` (`index << 1 | class`, so the derived order is by
/// index, then class): an [`Operand`] is 8 bytes, and the per-operand arrays
/// of a large function stay small.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VReg {
    bits: u32,
}

impl VReg {
    /// Vreg `index` (below 2^31) of class `class`.
    #[inline]
    pub const fn new(index: usize, class: RegClass) -> VReg {
        VReg {
            bits: (index as u32) << 1 | class as u32,
        }
    }

    #[inline]
    pub fn index(self) -> usize {
        (self.bits >> 1) as usize
    }

    #[inline]
    pub fn class(self) -> RegClass {
        if self.bits & 1 == 0 {
            RegClass::Int
        } else {
            RegClass::Float
        }
    }
}

impl fmt::Debug for VReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.class() {
            RegClass::Int => write!(f, "v{}i", self.index()),
            RegClass::Float => write!(f, "v{}f", self.index()),
        }
    }
}

impl fmt::Display for VReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A machine block of the function being allocated (dense index, in emission order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MBlock(pub u32);

impl MBlock {
    #[inline]
    pub fn new(index: usize) -> MBlock {
        MBlock(index as u32)
    }
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A machine instruction of the function being allocated (dense index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MInst(pub u32);

impl MInst {
    #[inline]
    pub fn new(index: usize) -> MInst {
        MInst(index as u32)
    }
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A half-open range of instructions `first..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstRange {
    pub first: MInst,
    pub end: MInst,
}

impl InstRange {
    pub fn new(first: usize, end: usize) -> InstRange {
        InstRange {
            first: MInst::new(first),
            end: MInst::new(end),
        }
    }
    pub fn len(&self) -> usize {
        self.end.index().saturating_sub(self.first.index())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The last instruction (the block's terminator). Only for non-empty ranges.
    pub fn last(&self) -> MInst {
        MInst(self.end.0 - 1)
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = MInst> {
        (self.first.0..self.end.0).map(MInst)
    }
}

/// Whether an operand reads or writes its vreg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandKind {
    Use,
    Def,
}

/// When, within its instruction, an operand is read or written (see the
/// module docs: uses are normally Early, defs Late).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandPos {
    Early,
    Late,
}

/// Where an operand's value may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperandConstraint {
    /// A register or a spill slot (the instruction can take a memory operand).
    Any,
    /// Some register of the vreg's class.
    Reg,
    /// Exactly this register: call arguments and results, x86 `div`'s
    /// `rax`/`rdx`, a shift count in `rcx`. The allocator inserts the moves.
    FixedReg(PReg),
    /// Only for a Late def: the same register as the use operand at this
    /// index of the same instruction (x86 two-address form `dst = dst op src`).
    /// The allocator copies that input into the def's register first when
    /// the input lives on after the instruction. (A `u8` keeps [`Operand`]
    /// at 8 bytes; lowering puts reuse inputs among the first operands.)
    Reuse(u8),
}

/// One operand of a machine instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operand {
    pub vreg: VReg,
    pub kind: OperandKind,
    pub pos: OperandPos,
    pub constraint: OperandConstraint,
}

impl Operand {
    pub fn new(
        vreg: VReg,
        kind: OperandKind,
        pos: OperandPos,
        constraint: OperandConstraint,
    ) -> Operand {
        Operand {
            vreg,
            kind,
            pos,
            constraint,
        }
    }
    /// An Early use that needs a register.
    pub fn reg_use(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Use,
            OperandPos::Early,
            OperandConstraint::Reg,
        )
    }
    /// An Early use that may also be a spill slot (memory operand).
    pub fn any_use(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Use,
            OperandPos::Early,
            OperandConstraint::Any,
        )
    }
    /// A Late use: kept intact in its register while the defs are written.
    pub fn reg_use_late(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Use,
            OperandPos::Late,
            OperandConstraint::Reg,
        )
    }
    /// An Early use in exactly `preg` (a call argument, a shift count).
    pub fn fixed_use(vreg: VReg, preg: PReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Use,
            OperandPos::Early,
            OperandConstraint::FixedReg(preg),
        )
    }
    /// A Late def in a register.
    pub fn reg_def(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Def,
            OperandPos::Late,
            OperandConstraint::Reg,
        )
    }
    /// A Late def in a register or a spill slot.
    pub fn any_def(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Def,
            OperandPos::Late,
            OperandConstraint::Any,
        )
    }
    /// An Early def in a register: a temporary that must not share a
    /// register with any input (give it a vreg nobody uses).
    pub fn reg_temp(vreg: VReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Def,
            OperandPos::Early,
            OperandConstraint::Reg,
        )
    }
    /// A Late def in exactly `preg` (a call result, a function argument
    /// arriving in its ABI register, `div`'s quotient).
    pub fn fixed_def(vreg: VReg, preg: PReg) -> Operand {
        Operand::new(
            vreg,
            OperandKind::Def,
            OperandPos::Late,
            OperandConstraint::FixedReg(preg),
        )
    }
    /// A Late def in the register of the use operand at `input` (two-address).
    pub fn reuse_def(vreg: VReg, input: usize) -> Operand {
        debug_assert!(input < 256, "reuse input {input} out of range");
        Operand::new(
            vreg,
            OperandKind::Def,
            OperandPos::Late,
            OperandConstraint::Reuse(input as u8),
        )
    }
}

/// The allocator's view of a function in machine instructions over vregs.
///
/// See the module docs for what an implementation must guarantee. All
/// indices are dense: blocks `0..num_blocks()`, insts `0..num_insts()`, vregs
/// `0..num_vregs()`.
pub trait RaFunction {
    fn num_insts(&self) -> usize;
    fn num_blocks(&self) -> usize;
    fn num_vregs(&self) -> usize;
    /// The entry block; must be block 0.
    fn entry_block(&self) -> MBlock;
    /// The instructions of `block`, in order; the last is its terminator.
    fn block_insts(&self, block: MBlock) -> InstRange;
    fn block_succs(&self, block: MBlock) -> &[MBlock];
    fn block_preds(&self, block: MBlock) -> &[MBlock];
    /// The vregs defined on entry to `block` (phi replacements).
    fn block_params(&self, block: MBlock) -> &[VReg];
    fn is_ret(&self, inst: MInst) -> bool;
    fn is_branch(&self, inst: MInst) -> bool;
    /// For the branch `inst` ending `block`: the vregs passed to the
    /// parameters of successor number `succ_idx` (an index into
    /// `block_succs(block)`), one per parameter.
    fn branch_blockparams(&self, block: MBlock, inst: MInst, succ_idx: usize) -> &[VReg];
    fn inst_operands(&self, inst: MInst) -> &[Operand];
    /// Registers whose contents the instruction destroys (a call's
    /// caller-saved set). Values live across it get other registers or spill.
    fn inst_clobbers(&self, inst: MInst) -> PRegSet;
    /// The loops of the block order, when the backend knows them: one entry
    /// per block, the index one past the last block of the loop the block
    /// heads (loops contiguous, header first, properly nested), or 0 for a
    /// block that heads no loop. A loop's span may also hold blocks without
    /// successors that are not in the loop (an early `ret` laid out inside
    /// it): ranges then reach a little further than they must, never less.
    /// `None` (the default): the allocator finds the natural loops itself.
    fn loop_ends(&self) -> Option<&[u32]> {
        None
    }
}

/// The target's registers, as data.
#[derive(Clone, Debug)]
pub struct MachineEnv {
    /// Per class (indexed by [`RegClass::index`]): allocatable caller-saved
    /// registers, tried first (they cost nothing to use).
    pub preferred_regs: [Vec<PReg>; 2],
    /// Per class: allocatable callee-saved registers, used for values live
    /// across calls or when the preferred ones run out; each one used is
    /// reported in [`Output::callee_saved_used`] for the prologue to save.
    pub non_preferred_regs: [Vec<PReg>; 2],
    /// Per class: one register never allocated, used by the edits to break
    /// parallel-move cycles and to move between two spill slots. It may be
    /// any caller-saved register the backend does not otherwise need between
    /// instructions (x86-64: `r11` and `xmm15`).
    pub scratch: [PReg; 2],
}

impl MachineEnv {
    /// All allocatable registers of `class`, preferred first.
    pub fn allocatable(&self, class: RegClass) -> impl Iterator<Item = PReg> + '_ {
        self.preferred_regs[class.index()]
            .iter()
            .chain(self.non_preferred_regs[class.index()].iter())
            .copied()
    }
}

/// A spill slot in the frame. Every slot is 8 bytes (floats too), slot `n`
/// at byte offset `8 * n` of the spill area; the numbering is shared by both
/// classes (a slot holds values of one class only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpillSlot(pub u32);

impl SpillSlot {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a value is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Allocation {
    Reg(PReg),
    Stack(SpillSlot),
}

impl Allocation {
    pub fn as_reg(self) -> Option<PReg> {
        match self {
            Allocation::Reg(r) => Some(r),
            Allocation::Stack(_) => None,
        }
    }
    pub fn as_stack(self) -> Option<SpillSlot> {
        match self {
            Allocation::Stack(s) => Some(s),
            Allocation::Reg(_) => None,
        }
    }
    pub fn is_reg(self) -> bool {
        matches!(self, Allocation::Reg(_))
    }
    pub fn is_stack(self) -> bool {
        matches!(self, Allocation::Stack(_))
    }
}

impl fmt::Debug for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allocation::Reg(r) => write!(f, "{r:?}"),
            Allocation::Stack(s) => write!(f, "slot{}", s.0),
        }
    }
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Before or after an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstPosition {
    Before = 0,
    After = 1,
}

/// A point between instructions where edits go: `Before(i)` runs right
/// before instruction `i` reads its inputs; `After(i)` right after it wrote
/// its outputs. Ordered by instruction, then Before < After.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgPoint {
    pub inst: MInst,
    pub pos: InstPosition,
}

impl ProgPoint {
    pub fn before(inst: MInst) -> ProgPoint {
        ProgPoint {
            inst,
            pos: InstPosition::Before,
        }
    }
    pub fn after(inst: MInst) -> ProgPoint {
        ProgPoint {
            inst,
            pos: InstPosition::After,
        }
    }

    /// The point as one integer in the same order (instruction, then
    /// Before < After).
    #[inline]
    pub fn key(self) -> u64 {
        (self.inst.0 as u64) << 1 | self.pos as u64
    }
}

/// An edit to insert at a [`ProgPoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edit {
    /// Copy a value. Never stack-to-stack (those go through the scratch
    /// register); `from != to`. Edits at the same point must run in list
    /// order: they are already sequentialized.
    Move {
        from: Allocation,
        to: Allocation,
        class: RegClass,
    },
}

/// The allocation of one function.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// All operands' allocations, instruction after instruction, in operand
    /// order; see [`Output::inst_allocs`].
    pub allocs: Vec<Allocation>,
    /// `inst_alloc_offsets[i]` is where instruction `i`'s allocations start in `allocs`.
    pub inst_alloc_offsets: Vec<u32>,
    /// Moves, sorted by program point (stable: same-point edits in execution order).
    pub edits: Vec<(ProgPoint, Edit)>,
    /// Spill slots used (slot indices are `0..num_spillslots`): the spill
    /// area is `8 * num_spillslots` bytes.
    pub num_spillslots: usize,
    /// Of those, how many hold each class (indexed by [`RegClass::index`]).
    pub spillslots_by_class: [usize; 2],
    /// The callee-saved (non-preferred) registers assigned anywhere: the
    /// prologue saves them and the epilogue restores them.
    pub callee_saved_used: PRegSet,
}

impl Output {
    /// The allocations of `inst`'s operands, in operand order.
    pub fn inst_allocs(&self, inst: MInst) -> &[Allocation] {
        let start = self.inst_alloc_offsets[inst.index()] as usize;
        let end = self
            .inst_alloc_offsets
            .get(inst.index() + 1)
            .map_or(self.allocs.len(), |&e| e as usize);
        &self.allocs[start..end]
    }

    /// The edits at `point`, in execution order (binary search: O(log n)).
    pub fn edits_at(&self, point: ProgPoint) -> &[(ProgPoint, Edit)] {
        let start = self.edits.partition_point(|(p, _)| *p < point);
        let end = self.edits.partition_point(|(p, _)| *p <= point);
        &self.edits[start..end]
    }

    /// [`Output::edits_at`] for a caller that visits points in increasing
    /// order (an emitter): `cursor`, starting at 0, is an index into
    /// `edits` moved past the edits returned, so a whole function costs
    /// O(points + edits) instead of a binary search per point. Still
    /// correct (a binary search) when a point comes out of order.
    #[inline]
    pub fn edits_at_cursor(&self, cursor: &mut usize, point: ProgPoint) -> &[(ProgPoint, Edit)] {
        // Most points have no edits: in order, the edit at the cursor comes
        // later and the one before it earlier (one packed compare each).
        let (k, at) = (point.key(), *cursor);
        let after = self.edits.get(at).is_none_or(|e| e.0.key() > k);
        let before = at == 0 || self.edits.get(at - 1).is_some_and(|e| e.0.key() < k);
        if after && before {
            return &[];
        }
        self.edits_at_cursor_slow(cursor, point)
    }

    fn edits_at_cursor_slow(&self, cursor: &mut usize, point: ProgPoint) -> &[(ProgPoint, Edit)] {
        let n = self.edits.len();
        let mut start = (*cursor).min(n);
        if start > 0 && self.edits[start - 1].0 >= point {
            start = self.edits.partition_point(|(p, _)| *p < point);
        }
        while start < n && self.edits[start].0 < point {
            start += 1;
        }
        let mut end = start;
        while end < n && self.edits[end].0 == point {
            end += 1;
        }
        *cursor = end;
        &self.edits[start..end]
    }
}

/// Why allocation failed. On input that satisfies the rules of the module
/// docs the allocator always succeeds (it spills as needed); these name the
/// broken rule, or (for `Checker`) a bug the checker caught.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegAllocError {
    /// The function breaks a rule of the input (see the module docs).
    InvalidInput {
        inst: Option<MInst>,
        message: String,
    },
    /// More register-constrained operands at one point than registers.
    TooManyRegOperands { inst: MInst, class: RegClass },
    /// The checker found an allocation that does not preserve values.
    Checker(checker::CheckerError),
}

impl fmt::Display for RegAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegAllocError::InvalidInput {
                inst: Some(inst),
                message,
            } => write!(
                f,
                "register allocation: invalid input at inst {}: {message}",
                inst.0
            ),
            RegAllocError::InvalidInput {
                inst: None,
                message,
            } => write!(f, "register allocation: invalid input: {message}"),
            RegAllocError::TooManyRegOperands { inst, class } => write!(
                f,
                "register allocation: more {class:?} register operands than registers at inst {}",
                inst.0
            ),
            RegAllocError::Checker(e) => write!(f, "register allocation checker: {e}"),
        }
    }
}

impl std::error::Error for RegAllocError {}

impl From<RegAllocError> for crate::error::Error {
    fn from(e: RegAllocError) -> Self {
        crate::error::Error::Runtime(e.to_string())
    }
}

/// Scratch memory of the allocator, reused from one function to the next
/// (keep one per thread and pass it to [`allocate_with`]).
#[derive(Default)]
pub struct Ctx {
    liveness: liveness::Liveness,
    scan: scan::Scan,
    seq: moves::Sequencer,
    buf: moves::MoveBuf,
    win: stream::Window,
    /// The program-lifetime register file the tables above were last built
    /// for (see [`allocate_static`]).
    static_env: Option<&'static MachineEnv>,
}

/// Allocates registers for `func` on the machine `env`.
///
/// In debug builds the result is validated by the [`checker`] before it is
/// returned, for functions small enough that its set-based simulation stays
/// fast (tests call [`checker::check`] themselves in every build).
pub fn allocate<F: RaFunction>(func: &F, env: &MachineEnv) -> Result<Output, RegAllocError> {
    let mut out = Output::default();
    allocate_with(&mut Ctx::default(), func, env, &mut out)?;
    Ok(out)
}

/// [`allocate`] into `out`, with the scratch memory of `ctx`.
pub fn allocate_with<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &MachineEnv,
    out: &mut Output,
) -> Result<(), RegAllocError> {
    ctx.static_env = None;
    prepare_in(ctx, func, env, false)?;
    finish(ctx, func, env, out)
}

/// [`allocate_with`] for a register file that lives as long as the program
/// (a backend's, built once): the tables derived from it are built on the
/// first call and reused while later calls pass the same one. A `'static`
/// shared reference to a type without interior mutability can neither
/// change nor be freed, so the same address means the same registers.
pub fn allocate_static<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &'static MachineEnv,
    out: &mut Output,
) -> Result<(), RegAllocError> {
    prepare_static(ctx, func, env)?;
    finish(ctx, func, env, out)
}

/// [`resolve`], then (in debug builds) the checker.
fn finish<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &MachineEnv,
    out: &mut Output,
) -> Result<(), RegAllocError> {
    resolve(ctx, func, env, out)?;
    #[cfg(debug_assertions)]
    if checker::affordable(func, out) && std::env::var_os("KILN_NO_CHECK").is_none() {
        checker::check(func, env, out).map_err(RegAllocError::Checker)?;
    }
    Ok(())
}

/// The decisions of allocation on a program-lifetime register file (see
/// [`allocate_static`]): liveness and the scan, kept in `ctx` for
/// [`resolve`] or [`Ctx::stream`].
pub fn prepare_static<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &'static MachineEnv,
) -> Result<(), RegAllocError> {
    let same = ctx.static_env.is_some_and(|e| std::ptr::eq(e, env));
    // Rebuilt below; recorded once both passes have built their tables.
    ctx.static_env = None;
    prepare_in(ctx, func, env, same)?;
    ctx.static_env = Some(env);
    Ok(())
}

fn prepare_in<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &MachineEnv,
    same_env: bool,
) -> Result<(), RegAllocError> {
    ctx.liveness.compute(func, env, same_env)?;
    ctx.scan.run(func, env, &ctx.liveness, same_env)
}

/// Frees the scratch memory [`prepare_static`] used that [`resolve`] and
/// [`Ctx::stream`] do not read (worth it for a large function: about 80
/// bytes per instruction; the next function allocates it again).
pub fn shed(ctx: &mut Ctx) {
    ctx.liveness.shed();
    ctx.scan.shed();
}

/// The whole allocation into `out`, from [`prepare_static`]'s decisions
/// (no checker: see [`allocate_with`]).
pub fn resolve<F: RaFunction>(
    ctx: &mut Ctx,
    func: &F,
    env: &MachineEnv,
    out: &mut Output,
) -> Result<(), RegAllocError> {
    moves::resolve(
        func,
        env,
        &ctx.liveness,
        &ctx.scan,
        &mut ctx.seq,
        &mut ctx.buf,
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_and_vregs_stay_small() {
        // The per-operand arrays of a 100k-instruction function: 8 bytes
        // per operand, not 32 (a `usize` reuse index and an unpacked class).
        assert_eq!(std::mem::size_of::<VReg>(), 4);
        assert!(std::mem::size_of::<Operand>() <= 8);
        let v = VReg::new(123_456, RegClass::Float);
        assert_eq!((v.index(), v.class()), (123_456, RegClass::Float));
        assert!(VReg::new(1, RegClass::Float) < VReg::new(2, RegClass::Int));
    }
}
