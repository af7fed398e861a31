//! Input validation, liveness and live intervals.
//!
//! Positions: instruction `i` has two, `2i` (Early: inputs read) and `2i+1`
//! (Late: outputs written). A live range is a half-open `[from, to)` of
//! positions. Block `b` spans `[2*first, 2*end)`. Moves can only be placed
//! between instructions, so intervals are split only at even positions.
//!
//! Liveness (per block, the vregs live on entry) is computed by path
//! exploration: from each block that reads a vreg before defining it, the
//! vreg is marked live-in backwards over predecessors up to its defining
//! block. Each (vreg, block) pair of the result is visited once, with no
//! fixed-point iteration over loops and no sorting of the result. It can
//! grow faster than the function (long-lived values in many blocks); every
//! later pass therefore avoids walking it per block where it can (see
//! `moves::Ctx::edge_moves`). Intervals are then built in one backward pass
//! (Wimmer & Franz 2010): a vreg's ranges, in order, with lifetime holes
//! between blocks where it is dead, and its use positions.
//!
//! Fixed-register operands do not constrain their vreg's interval: the
//! register is reserved at that instruction by a *fixed range* (owned by the
//! vreg, which may therefore sit in it) and [`super::moves`] copies the value
//! in or out. Clobbers are fixed ranges with no owner at the Late position.

use super::*;

/// A position: `2 * inst` (Early) or `2 * inst + 1` (Late).
pub type Pos = u32;

/// The largest even position `<= p`.
#[inline]
pub fn floor_even(p: Pos) -> Pos {
    p & !1
}

/// A half-open range of positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from: Pos,
    pub to: Pos,
}

/// A use or def of a vreg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsePos {
    pub pos: Pos,
    /// The first position from which a register is needed (floored to even
    /// for uses since a move cannot go between Early and Late), or `None`
    /// when any location will do.
    pub need_reg: Option<Pos>,
    /// A register that would save a move here.
    pub hint: Option<PReg>,
}

/// Liveness of one vreg: sorted, disjoint ranges and sorted uses.
#[derive(Clone, Debug, Default)]
pub struct VRegLive {
    pub ranges: Vec<Range>,
    pub uses: Vec<UsePos>,
    /// Another vreg whose location (at the given position) would save a
    /// move if this one got it too: a reuse input, a block argument.
    pub hint_vreg: Option<(VReg, Pos)>,
    /// Whether anything reads the vreg (dead defs need no moves out).
    pub used: bool,
}

/// A range where a physical register is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedRange {
    pub from: Pos,
    pub to: Pos,
    /// The vreg whose fixed operand this is (it may occupy the register
    /// here); `None` for a clobber.
    pub owner: Option<u32>,
}

/// Everything the later passes need to know about the function's liveness.
pub struct Intervals {
    pub vregs: Vec<VRegLive>,
    pub classes: Vec<RegClass>,
    /// Per register ([`PReg::index`]): its fixed ranges, sorted by `from`.
    pub fixed: Vec<Vec<FixedRange>>,
    /// Per block: first position, end position.
    pub block_from: Vec<Pos>,
    pub block_to: Vec<Pos>,
    /// Per block: the vregs live on entry (not its parameters), sorted.
    pub live_in: Vec<Vec<u32>>,
    /// Per block: loop nesting depth (from back edges, loops contiguous).
    pub loop_depth: Vec<u32>,
    /// Per instruction: its block.
    pub inst_block: Vec<u32>,
    /// Per instruction: operand indices of uses shortened to end before the
    /// instruction (reuse inputs that die there; see `build`).
    pub shortened: Vec<(u32, u32)>,
}

impl Intervals {
    /// The block containing position `p`.
    pub fn block_of(&self, p: Pos) -> usize {
        self.inst_block[(p / 2) as usize] as usize
    }
}

fn invalid(inst: Option<usize>, message: impl Into<String>) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: inst.map(MInst::new),
        message: message.into(),
    }
}

/// Checks the rules the module docs of [`super`] put on the input.
pub fn validate<F: RaFunction>(f: &F, env: &MachineEnv) -> Result<(), RegAllocError> {
    let nb = f.num_blocks();
    let ni = f.num_insts();
    let nv = f.num_vregs();
    if nb == 0 || ni == 0 {
        return Err(invalid(None, "function has no blocks or no instructions"));
    }
    if ni >= (u32::MAX / 2 - 2) as usize {
        return Err(invalid(None, "function too large"));
    }
    if f.entry_block() != MBlock(0) {
        return Err(invalid(None, "entry block must be block 0"));
    }
    if !f.block_params(MBlock(0)).is_empty() {
        return Err(invalid(None, "entry block has parameters"));
    }
    let mut next = 0usize;
    let mut pred_count = vec![0usize; nb];
    for b in 0..nb {
        let blk = MBlock::new(b);
        let r = f.block_insts(blk);
        if r.first.index() != next || r.is_empty() || r.end.index() > ni {
            return Err(invalid(
                Some(next.min(ni - 1)),
                format!("block {b} is empty or out of order"),
            ));
        }
        next = r.end.index();
        for i in r.iter() {
            let last = i == r.last();
            let term = f.is_branch(i) || f.is_ret(i);
            if term != last {
                return Err(invalid(
                    Some(i.index()),
                    "terminators must end blocks, and only there",
                ));
            }
        }
        let last = r.last();
        let succs = f.block_succs(blk);
        if f.is_ret(last) && !succs.is_empty() {
            return Err(invalid(Some(last.index()), "return with successors"));
        }
        for (k, &s) in succs.iter().enumerate() {
            if s.index() >= nb {
                return Err(invalid(Some(last.index()), "successor out of range"));
            }
            pred_count[s.index()] += 1;
            let args = f.branch_blockparams(blk, last, k);
            let params = f.block_params(s);
            if args.len() != params.len() {
                return Err(invalid(
                    Some(last.index()),
                    "branch argument count differs from block parameters",
                ));
            }
            for (a, p) in args.iter().zip(params) {
                if a.index() >= nv || p.index() >= nv || a.class() != p.class() {
                    return Err(invalid(Some(last.index()), "bad branch argument"));
                }
            }
        }
        if f.is_branch(last) {
            let ops = f.inst_operands(last);
            if ops.iter().any(|o| o.kind == OperandKind::Def) {
                return Err(invalid(Some(last.index()), "branch with a def"));
            }
            if succs.len() == 1 && !ops.is_empty() {
                return Err(invalid(
                    Some(last.index()),
                    "single-successor branch with operands",
                ));
            }
        }
    }
    if next != ni {
        return Err(invalid(None, "blocks do not cover all instructions"));
    }
    // Every edge's source, grouped by target (counting sort): `edges[
    // edge_start[b]..edge_start[b + 1]]` are block `b`'s predecessors, sorted.
    let mut edge_start = vec![0usize; nb + 1];
    for b in 0..nb {
        edge_start[b + 1] = edge_start[b] + pred_count[b];
    }
    let mut fill = edge_start.clone();
    let mut edges = vec![MBlock(0); edge_start[nb]];
    for b in 0..nb {
        for s in f.block_succs(MBlock::new(b)) {
            edges[fill[s.index()]] = MBlock::new(b);
            fill[s.index()] += 1;
        }
    }
    for b in 0..nb {
        let blk = MBlock::new(b);
        // Liveness walks predecessor lists: they must be exactly the
        // edges the successor lists give (as multisets).
        let mut preds: Vec<MBlock> = f.block_preds(blk).to_vec();
        preds.sort_unstable();
        if preds[..] != edges[edge_start[b]..edge_start[b + 1]] {
            return Err(invalid(
                None,
                format!("block {b}: predecessors disagree with successors"),
            ));
        }
        if b == 0 && pred_count[0] != 0 {
            return Err(invalid(None, "entry block has predecessors"));
        }
        let succs = f.block_succs(blk);
        if succs.len() > 1 && succs.iter().any(|s| pred_count[s.index()] > 1) {
            return Err(invalid(
                Some(f.block_insts(blk).last().index()),
                "critical edge",
            ));
        }
    }
    // Operands and single definitions.
    let mut defined = vec![false; nv];
    let mut define = |v: VReg, i: Option<usize>| -> Result<(), RegAllocError> {
        if v.index() >= nv {
            return Err(invalid(i, format!("vreg {v} out of range")));
        }
        if std::mem::replace(&mut defined[v.index()], true) {
            return Err(invalid(i, format!("vreg {v} defined twice")));
        }
        Ok(())
    };
    for b in 0..nb {
        for &p in f.block_params(MBlock::new(b)) {
            define(p, None)?;
        }
    }
    for i in 0..ni {
        let inst = MInst::new(i);
        let ops = f.inst_operands(inst);
        let mut reg_count = [0usize; 2];
        let mut fixed_early = PRegSet::empty();
        let mut fixed_late = PRegSet::empty();
        for (j, op) in ops.iter().enumerate() {
            if op.vreg.index() >= nv {
                return Err(invalid(Some(i), format!("operand {j}: vreg out of range")));
            }
            if op.kind == OperandKind::Def {
                define(op.vreg, Some(i))?;
            }
            match op.constraint {
                OperandConstraint::Any => {}
                OperandConstraint::Reg => reg_count[op.vreg.class().index()] += 1,
                OperandConstraint::FixedReg(r) => {
                    reg_count[op.vreg.class().index()] += 1;
                    if r.class() != op.vreg.class() || r == env.scratch[r.class().index()] {
                        return Err(invalid(
                            Some(i),
                            format!("operand {j}: bad fixed register {r}"),
                        ));
                    }
                    let early = op.pos == OperandPos::Early || op.kind == OperandKind::Use;
                    let late = op.pos == OperandPos::Late || op.kind == OperandKind::Def;
                    if (early && fixed_early.contains(r)) || (late && fixed_late.contains(r)) {
                        return Err(invalid(
                            Some(i),
                            format!("operand {j}: register {r} fixed twice"),
                        ));
                    }
                    if early {
                        fixed_early.add(r);
                    }
                    if late {
                        fixed_late.add(r);
                    }
                }
                OperandConstraint::Reuse(k) => {
                    reg_count[op.vreg.class().index()] += 1;
                    let ok = op.kind == OperandKind::Def
                        && op.pos == OperandPos::Late
                        && ops.get(k).is_some_and(|u| {
                            u.kind == OperandKind::Use
                                && u.pos == OperandPos::Early
                                && u.vreg.class() == op.vreg.class()
                                && !matches!(u.constraint, OperandConstraint::FixedReg(_))
                        });
                    if !ok
                        || ops
                            .iter()
                            .enumerate()
                            .any(|(m, o)| m != j && o.constraint == OperandConstraint::Reuse(k))
                    {
                        return Err(invalid(Some(i), format!("operand {j}: bad reuse")));
                    }
                }
            }
        }
        for c in RegClass::ALL {
            let avail = env.allocatable(c).count();
            if reg_count[c.index()] > avail {
                return Err(RegAllocError::TooManyRegOperands { inst, class: c });
            }
        }
    }
    Ok(())
}

/// A set of vregs with O(1) insert, remove, test and clear: `v` is a
/// member while `stamp[v] == now` (clearing just moves `now` on).
struct StampSet {
    stamp: Vec<u32>,
    now: u32,
    len: usize,
}

impl StampSet {
    fn new(n: usize) -> Self {
        StampSet {
            stamp: vec![0; n],
            now: 1,
            len: 0,
        }
    }
    /// Adds `v`; whether it was new.
    fn insert(&mut self, v: u32) -> bool {
        let fresh = self.stamp[v as usize] != self.now;
        if fresh {
            self.stamp[v as usize] = self.now;
            self.len += 1;
        }
        fresh
    }
    /// Adds `v`, known not to be a member yet.
    fn insert_new(&mut self, v: u32) {
        self.stamp[v as usize] = self.now;
        self.len += 1;
    }
    fn remove(&mut self, v: u32) {
        if self.stamp[v as usize] == self.now {
            self.stamp[v as usize] = 0;
            self.len -= 1;
        }
    }
    fn contains(&self, v: u32) -> bool {
        self.stamp[v as usize] == self.now
    }
    /// Empties the set (called once per block: `now` cannot wrap).
    fn clear(&mut self) {
        self.now += 1;
        self.len = 0;
    }
}

/// Per block, the vregs live on entry (not its parameters), each list sorted.
///
/// Path exploration instead of a fixed-point dataflow: for each vreg in
/// turn, every block where it is read before (or without) being defined
/// there is marked live-in, then the marks spread backwards over
/// predecessors until the defining block. Each (vreg, live-in block) pair
/// is visited once, so the cost is the size of the result plus the uses,
/// with no re-iteration for loops and no sorting (vregs go out in order).
fn live_ins<F: RaFunction>(f: &F) -> Vec<Vec<u32>> {
    let nb = f.num_blocks();
    let nv = f.num_vregs();
    const NONE: u32 = u32::MAX;
    // Where each vreg is defined: block, and the position after which the
    // block's own uses see the definition (params: the block's start).
    let mut def_block = vec![NONE; nv];
    let mut def_at = vec![0 as Pos; nv];
    for b in 0..nb {
        let blk = MBlock::new(b);
        let first = f.block_insts(blk).first.0;
        for p in f.block_params(blk) {
            def_block[p.index()] = b as u32;
            def_at[p.index()] = 2 * first;
        }
        for i in f.block_insts(blk).iter() {
            for op in f.inst_operands(i) {
                if op.kind == OperandKind::Def {
                    def_block[op.vreg.index()] = b as u32;
                    def_at[op.vreg.index()] = 2 * i.0 + 2;
                }
            }
        }
    }
    // Upward-exposed uses as (vreg, block) pairs; a branch argument is a
    // use at the very end of its block.
    let mut exposed: Vec<(u32, u32)> = Vec::new();
    for b in 0..nb {
        let blk = MBlock::new(b);
        let r = f.block_insts(blk);
        for i in r.iter() {
            for op in f.inst_operands(i) {
                let v = op.vreg.index();
                if op.kind == OperandKind::Use
                    && !(def_block[v] == b as u32 && def_at[v] <= 2 * i.0)
                {
                    exposed.push((v as u32, b as u32));
                }
            }
        }
        let last = r.last();
        for k in 0..f.block_succs(blk).len() {
            for a in f.branch_blockparams(blk, last, k) {
                if def_block[a.index()] != b as u32 {
                    exposed.push((a.index() as u32, b as u32));
                }
            }
        }
    }
    exposed.sort_unstable();
    exposed.dedup();
    let mut live_in: Vec<Vec<u32>> = vec![Vec::new(); nb];
    // mark[b] == v + 1: v is already recorded live-in at b.
    let mut mark = vec![0u32; nb];
    let mut stack: Vec<u32> = Vec::new();
    for &(v, b) in &exposed {
        if mark[b as usize] == v + 1 {
            continue;
        }
        let def = def_block[v as usize];
        mark[b as usize] = v + 1;
        live_in[b as usize].push(v);
        stack.push(b);
        while let Some(mut b) = stack.pop() {
            // Follow single-predecessor chains without the stack.
            loop {
                let mut next = None;
                for p in f.block_preds(MBlock(b)) {
                    let pi = p.index();
                    if def != pi as u32 && mark[pi] != v + 1 {
                        mark[pi] = v + 1;
                        live_in[pi].push(v);
                        if let Some(n) = next.replace(pi as u32) {
                            stack.push(n);
                        }
                    }
                }
                match next {
                    Some(n) => b = n,
                    None => break,
                }
            }
        }
    }
    live_in
}

/// Computes liveness and builds every vreg's ranges and uses.
pub fn build<F: RaFunction>(f: &F, env: &MachineEnv) -> Result<Intervals, RegAllocError> {
    let nb = f.num_blocks();
    let ni = f.num_insts();
    let nv = f.num_vregs();

    // --- Liveness.
    let live_in = live_ins(f);
    let mut set = StampSet::new(nv);
    if let Some(&v) = live_in[0].first() {
        return Err(invalid(
            None,
            format!("vreg {v} is used but not defined on every path"),
        ));
    }

    // --- Block geometry and loop depth.
    let mut block_from = Vec::with_capacity(nb);
    let mut block_to = Vec::with_capacity(nb);
    let mut inst_block = vec![0u32; ni];
    let mut depth_diff = vec![0i64; nb + 1];
    for b in 0..nb {
        let r = f.block_insts(MBlock::new(b));
        block_from.push(2 * r.first.0);
        block_to.push(2 * r.end.0);
        for i in r.iter() {
            inst_block[i.index()] = b as u32;
        }
        for s in f.block_succs(MBlock::new(b)) {
            if s.index() <= b {
                depth_diff[s.index()] += 1;
                depth_diff[b + 1] -= 1;
            }
        }
    }
    let mut loop_depth = Vec::with_capacity(nb);
    let mut d = 0i64;
    for diff in depth_diff.iter().take(nb) {
        d += diff;
        loop_depth.push(d.max(0) as u32);
    }

    // --- Intervals, built backwards (ranges and uses pushed in reverse).
    let mut classes = vec![RegClass::Int; nv];
    let mut vregs: Vec<VRegLive> = vec![VRegLive::default(); nv];
    let mut fixed: Vec<Vec<FixedRange>> = vec![Vec::new(); 2 * PReg::MAX_HW];
    let mut shortened = Vec::new();
    let allocatable: PRegSet = RegClass::ALL
        .into_iter()
        .flat_map(|c| env.allocatable(c))
        .collect();

    // Each vreg's most recent (lowest) range is kept apart in `open` until
    // a hole closes it: extending it, the common case of a value live
    // through block after block, then touches one small dense array.
    const NO_RANGE: Range = Range {
        from: Pos::MAX,
        to: Pos::MAX,
    };
    let mut open = vec![NO_RANGE; nv];
    fn add_range(open: &mut Range, closed: &mut VRegLive, from: Pos, to: Pos) {
        if open.from != Pos::MAX && open.from <= to {
            open.from = open.from.min(from);
            open.to = open.to.max(to);
        } else {
            if open.from != Pos::MAX {
                closed.ranges.push(*open);
            }
            *open = Range { from, to };
        }
    }
    fn add_def(open: &mut Range, closed: &mut VRegLive, block_from: Pos, pos: Pos, min_end: Pos) {
        if open.from != Pos::MAX && open.from == block_from && open.to > pos {
            open.from = pos;
            open.to = open.to.max(min_end);
        } else {
            if open.from != Pos::MAX {
                closed.ranges.push(*open);
            }
            *open = Range {
                from: pos,
                to: min_end,
            };
        }
    }
    // Extends `v`'s open range, touching its `VRegLive` only to close one.
    fn extend(open: &mut [Range], vregs: &mut [VRegLive], v: usize, from: Pos, to: Pos) {
        let o = &mut open[v];
        if o.from != Pos::MAX && o.from <= to {
            o.from = o.from.min(from);
            o.to = o.to.max(to);
        } else {
            add_range(o, &mut vregs[v], from, to);
        }
    }

    for b in (0..nb).rev() {
        let blk = MBlock::new(b);
        let from = block_from[b];
        let to = block_to[b];
        // Live-out: the successors' live-ins and the branch's arguments,
        // live through the whole block so far.
        set.clear();
        let last = f.block_insts(blk).last();
        for (k, s) in f.block_succs(blk).iter().enumerate() {
            let live = &live_in[s.index()];
            if k == 0 {
                // The set is empty and live-in lists have no duplicates.
                for &v in live {
                    set.insert_new(v);
                    extend(&mut open, &mut vregs, v as usize, from, to);
                }
            } else {
                for &v in live {
                    if set.insert(v) {
                        extend(&mut open, &mut vregs, v as usize, from, to);
                    }
                }
            }
            for a in f.branch_blockparams(blk, last, k) {
                let l = &mut vregs[a.index()];
                l.used = true;
                if set.insert(a.index() as u32) {
                    add_range(&mut open[a.index()], l, from, to);
                }
            }
        }
        let first_inst = f.block_insts(blk).first;
        for i in f.block_insts(blk).iter().rev() {
            let ops = f.inst_operands(i);
            let early = 2 * i.0;
            let late = early + 1;
            // Clobbers: reserved at Late, except registers the instruction defines there.
            let clobbers = f.inst_clobbers(i);
            for r in clobbers.iter() {
                let redefined = ops.iter().any(|o| {
                    o.kind == OperandKind::Def && o.constraint == OperandConstraint::FixedReg(r)
                });
                if allocatable.contains(r) && !redefined {
                    fixed[r.index()].push(FixedRange {
                        from: late,
                        to: late + 1,
                        owner: None,
                    });
                }
            }
            for op in ops.iter().filter(|o| o.kind == OperandKind::Def) {
                let v = op.vreg.index();
                classes[v] = op.vreg.class();
                let l = &mut vregs[v];
                let reuse = matches!(op.constraint, OperandConstraint::Reuse(_));
                let pos = if op.pos == OperandPos::Early || reuse {
                    early
                } else {
                    late
                };
                add_def(&mut open[v], l, from, pos, late + 1);
                let mut u = UsePos {
                    pos,
                    need_reg: None,
                    hint: None,
                };
                match op.constraint {
                    OperandConstraint::Any => {}
                    OperandConstraint::Reg => u.need_reg = Some(pos),
                    OperandConstraint::FixedReg(r) => {
                        u.hint = Some(r);
                        fixed[r.index()].push(FixedRange {
                            from: pos,
                            to: late + 1,
                            owner: Some(v as u32),
                        });
                    }
                    OperandConstraint::Reuse(k) => {
                        u.need_reg = Some(pos);
                        let input = ops[k].vreg;
                        l.hint_vreg = Some((input, early.saturating_sub(1)));
                    }
                }
                l.uses.push(u);
                set.remove(v as u32);
            }
            for (j, op) in ops
                .iter()
                .enumerate()
                .filter(|(_, o)| o.kind == OperandKind::Use)
            {
                let v = op.vreg.index();
                classes[v] = op.vreg.class();
                let reused = ops
                    .iter()
                    .any(|o| o.constraint == OperandConstraint::Reuse(j));
                let used_elsewhere = ops
                    .iter()
                    .enumerate()
                    .any(|(m, o)| m != j && o.kind == OperandKind::Use && o.vreg == op.vreg);
                // A reuse input that dies here is read by the copy into the
                // def's register before the instruction, so its range can end
                // there and the def may take its register (no copy at all).
                // Not after an instruction that clobbers registers of this
                // class: the read would then sit at that instruction's Late
                // point, where no register of the class survives (found by
                // fuzzing: a dead `copy.f64` right after a call).
                let shorten = reused
                    && !used_elsewhere
                    && !set.contains(v as u32)
                    && i != first_inst
                    && !f
                        .inst_clobbers(MInst(i.0 - 1))
                        .iter()
                        .any(|r| r.class() == op.vreg.class() && allocatable.contains(r));
                let (upos, end) = if shorten {
                    shortened.push((i.0, j as u32));
                    (early - 1, early)
                } else if op.pos == OperandPos::Late {
                    (late, late + 1)
                } else {
                    (early, early + 1)
                };
                let l = &mut vregs[v];
                l.used = true;
                add_range(&mut open[v], l, from, end);
                let mut u = UsePos {
                    pos: upos,
                    need_reg: None,
                    hint: None,
                };
                match op.constraint {
                    OperandConstraint::Reg => u.need_reg = Some(floor_even(upos)),
                    OperandConstraint::FixedReg(r) => {
                        u.hint = Some(r);
                        fixed[r.index()].push(FixedRange {
                            from: early,
                            to: end.max(early + 1),
                            owner: Some(v as u32),
                        });
                    }
                    OperandConstraint::Any | OperandConstraint::Reuse(_) => {}
                }
                l.uses.push(u);
            }
            for op in ops.iter().filter(|o| o.kind == OperandKind::Use) {
                set.insert(op.vreg.index() as u32);
            }
        }
        for (k, p) in f.block_params(blk).iter().enumerate() {
            classes[p.index()] = p.class();
            set.remove(p.index() as u32);
            // Hint a parameter towards the argument of an earlier predecessor.
            if vregs[p.index()].hint_vreg.is_none() {
                for &pred in f.block_preds(blk) {
                    if pred.index() < b {
                        let pb = pred;
                        let last = f.block_insts(pb).last();
                        if let Some(idx) = f.block_succs(pb).iter().position(|&s| s == blk) {
                            if let Some(&a) = f.branch_blockparams(pb, last, idx).get(k) {
                                vregs[p.index()].hint_vreg = Some((a, block_to[pred.index()] - 1));
                                break;
                            }
                        }
                    }
                }
            }
        }
        // Two exact computations of the live-ins: the sizes must agree.
        if set.len != live_in[b].len() {
            return Err(invalid(None, format!("liveness disagrees in block {b}")));
        }
    }
    for (l, o) in vregs.iter_mut().zip(&open) {
        if o.from != Pos::MAX {
            l.ranges.push(*o);
        }
        l.ranges.reverse();
        l.uses.reverse();
    }
    // Uses within one instruction were pushed in operand order; keep them
    // sorted by position.
    for l in &mut vregs {
        l.uses.sort_by_key(|u| u.pos);
    }
    for fr in &mut fixed {
        fr.sort_by_key(|r| (r.from, r.to));
    }
    shortened.sort_unstable();
    Ok(Intervals {
        vregs,
        classes,
        fixed,
        block_from,
        block_to,
        live_in,
        loop_depth,
        inst_block,
        shortened,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regalloc::testing::{toy_env, RandomProgram, ToyBuilder};

    /// Liveness the textbook way: backward dataflow to a fixed point.
    fn reference_live_ins<F: RaFunction>(f: &F) -> Vec<Vec<u32>> {
        let nb = f.num_blocks();
        let mut live_in: Vec<Vec<u32>> = vec![Vec::new(); nb];
        let mut changed = true;
        while changed {
            changed = false;
            for b in (0..nb).rev() {
                let blk = MBlock::new(b);
                let last = f.block_insts(blk).last();
                let mut live = std::collections::BTreeSet::new();
                for (k, s) in f.block_succs(blk).iter().enumerate() {
                    live.extend(live_in[s.index()].iter().copied());
                    live.extend(
                        f.branch_blockparams(blk, last, k)
                            .iter()
                            .map(|a| a.index() as u32),
                    );
                }
                for i in f.block_insts(blk).iter().rev() {
                    for op in f.inst_operands(i) {
                        if op.kind == OperandKind::Def {
                            live.remove(&(op.vreg.index() as u32));
                        }
                    }
                    for op in f.inst_operands(i) {
                        if op.kind == OperandKind::Use {
                            live.insert(op.vreg.index() as u32);
                        }
                    }
                }
                for p in f.block_params(blk) {
                    live.remove(&(p.index() as u32));
                }
                let new: Vec<u32> = live.into_iter().collect();
                if new != live_in[b] {
                    live_in[b] = new;
                    changed = true;
                }
            }
        }
        live_in
    }

    #[test]
    fn path_exploration_matches_the_dataflow_fixed_point() {
        let env = toy_env(4, 2, 4, 2);
        let mut nonempty = 0;
        for seed in 1..200 {
            let f = RandomProgram::generate(seed, 40, &env);
            validate(&f, &env).unwrap();
            let expected = reference_live_ins(&f);
            nonempty += expected.iter().filter(|l| !l.is_empty()).count();
            assert_eq!(live_ins(&f), expected, "seed {seed}");
        }
        assert!(
            nonempty > 100,
            "the programs have values live across blocks"
        );
    }

    #[test]
    fn ranges_have_holes_and_loops_extend_liveness() {
        let env = toy_env(4, 0, 2, 0);
        let mut b = ToyBuilder::new();
        let (x, c) = (b.int(), b.int());
        b.inst(&[Operand::reg_def(x), Operand::reg_def(c)]); // inst 0
        let i = b.int();
        let h = b.block(&[i]);
        let latch = b.block(&[]);
        let exit = b.block(&[]);
        b.jump(h, &[c]); // inst 1
        b.switch_to(h);
        let j = b.int();
        b.inst(&[Operand::reg_use(i), Operand::reg_def(j)]); // inst 2
        b.branch(&[Operand::reg_use(j)], &[(latch, &[]), (exit, &[])]); // inst 3
        b.switch_to(latch);
        b.jump(h, &[j]); // inst 4
        b.switch_to(exit);
        b.ret(&[Operand::reg_use(x)]); // inst 5
        let f = b.finish();
        validate(&f, &env).unwrap();
        let ivs = build(&f, &env).unwrap();
        // x is used after the loop, so it is live through all of it.
        assert_eq!(ivs.vregs[x.index()].ranges, vec![Range { from: 1, to: 11 }]);
        assert_eq!(ivs.live_in[1], vec![x.index() as u32]);
        // j: defined in the header, passed on the back edge from the latch,
        // dead in the exit block: a hole after the latch.
        assert_eq!(ivs.vregs[j.index()].ranges, vec![Range { from: 5, to: 10 }]);
        assert_eq!(ivs.loop_depth, vec![0, 1, 1, 0]);
        assert_eq!(ivs.vregs[x.index()].uses.len(), 2);
    }
}
