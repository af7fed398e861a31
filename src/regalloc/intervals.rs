//! Input validation, liveness and live intervals.
//!
//! Positions: instruction `i` has two, `2i` (Early: inputs read) and `2i+1`
//! (Late: outputs written). A live range is a half-open `[from, to)` of
//! positions. Block `b` spans `[2*first, 2*end)`. Moves can only be placed
//! between instructions, so intervals are split only at even positions.
//!
//! Liveness is a backward dataflow over the block order iterated to a fixed
//! point with sparse per-block sets: processing blocks in reverse order, a
//! value live at a loop header reaches every block of the (contiguous) loop
//! in the second pass, so it converges in about `loop depth + 2` passes,
//! linear in practice. Intervals are then built in one backward pass
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
    for b in 0..nb {
        let blk = MBlock::new(b);
        if f.block_preds(blk).len() != pred_count[b] {
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

/// A set of small integers with O(1) insert/remove/clear-by-list.
struct SparseSet {
    member: Vec<bool>,
    list: Vec<u32>,
}

impl SparseSet {
    fn new(n: usize) -> Self {
        SparseSet {
            member: vec![false; n],
            list: Vec::new(),
        }
    }
    fn insert(&mut self, v: u32) {
        if !self.member[v as usize] {
            self.member[v as usize] = true;
            self.list.push(v);
        }
    }
    fn remove(&mut self, v: u32) {
        self.member[v as usize] = false;
    }
    fn contains(&self, v: u32) -> bool {
        self.member[v as usize]
    }
    /// The members, sorted; empties the set.
    fn take_sorted(&mut self) -> Vec<u32> {
        let member = &mut self.member;
        let mut out: Vec<u32> = self
            .list
            .drain(..)
            .filter(|&v| std::mem::replace(&mut member[v as usize], false))
            .collect();
        out.sort_unstable();
        out
    }
    fn clear(&mut self) {
        for &v in &self.list {
            self.member[v as usize] = false;
        }
        self.list.clear();
    }
}

/// Per block, the vregs live on exit: successors' live-ins and the
/// arguments the branch passes.
fn live_out_into<F: RaFunction>(f: &F, b: usize, live_in: &[Vec<u32>], set: &mut SparseSet) {
    let blk = MBlock::new(b);
    let last = f.block_insts(blk).last();
    for (k, s) in f.block_succs(blk).iter().enumerate() {
        for &v in &live_in[s.index()] {
            set.insert(v);
        }
        for a in f.branch_blockparams(blk, last, k) {
            set.insert(a.index() as u32);
        }
    }
}

/// Computes liveness and builds every vreg's ranges and uses.
pub fn build<F: RaFunction>(f: &F, env: &MachineEnv) -> Result<Intervals, RegAllocError> {
    let nb = f.num_blocks();
    let ni = f.num_insts();
    let nv = f.num_vregs();

    // --- Liveness to a fixed point.
    let mut live_in: Vec<Vec<u32>> = vec![Vec::new(); nb];
    let mut set = SparseSet::new(nv);
    let mut changed = true;
    let mut rounds = 0usize;
    while changed {
        changed = false;
        rounds += 1;
        if rounds > nb + 3 {
            return Err(invalid(None, "liveness did not converge"));
        }
        for b in (0..nb).rev() {
            let blk = MBlock::new(b);
            live_out_into(f, b, &live_in, &mut set);
            for i in f.block_insts(blk).iter().rev() {
                let ops = f.inst_operands(i);
                for op in ops.iter().filter(|o| o.kind == OperandKind::Def) {
                    set.remove(op.vreg.index() as u32);
                }
                for op in ops.iter().filter(|o| o.kind == OperandKind::Use) {
                    set.insert(op.vreg.index() as u32);
                }
            }
            for p in f.block_params(blk) {
                set.remove(p.index() as u32);
            }
            let new = set.take_sorted();
            if new != live_in[b] {
                live_in[b] = new;
                changed = true;
            }
        }
    }
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

    fn add_range(l: &mut VRegLive, from: Pos, to: Pos) {
        match l.ranges.last_mut() {
            Some(last) if last.from <= to => {
                last.from = last.from.min(from);
                last.to = last.to.max(to);
            }
            _ => l.ranges.push(Range { from, to }),
        }
    }
    fn add_def(l: &mut VRegLive, block_from: Pos, pos: Pos, min_end: Pos) {
        match l.ranges.last_mut() {
            Some(last) if last.from == block_from && last.to > pos => {
                last.from = pos;
                last.to = last.to.max(min_end);
            }
            _ => l.ranges.push(Range {
                from: pos,
                to: min_end,
            }),
        }
    }

    for b in (0..nb).rev() {
        let blk = MBlock::new(b);
        let from = block_from[b];
        let to = block_to[b];
        set.clear();
        live_out_into(f, b, &live_in, &mut set);
        for &v in &set.list {
            add_range(&mut vregs[v as usize], from, to);
            vregs[v as usize].used = true;
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
                add_def(l, from, pos, late + 1);
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
                add_range(l, from, end);
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
        for &v in &live_in[b] {
            if !set.contains(v) {
                return Err(invalid(
                    None,
                    format!("liveness disagrees for vreg {v} in block {b}"),
                ));
            }
        }
    }
    for l in &mut vregs {
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
    use crate::regalloc::testing::{toy_env, ToyBuilder};

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
