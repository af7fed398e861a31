//! From assigned intervals to operand allocations and move edits.
//!
//! At `Before(i)` one *parallel* move set runs: split moves of intervals that
//! change location at `2i`, the moves of the block's incoming edge (when the
//! edge's moves go at this block's start), copies of reuse inputs into their
//! def's register and copies into fixed-register uses. Every source is read
//! where the value is just before that point, so the set needs no ordering
//! assumptions. A second set follows at the terminator of a single-successor
//! block: that edge's moves (live-in values and block arguments into the
//! successor's locations). At `After(i)` fixed-register defs are copied out
//! into their vreg's location.
//!
//! Each parallel set is sequentialized: moves whose destination no other
//! move reads go first; a cycle is broken by saving one destination in the
//! class's scratch register, or in a dedicated *cycle slot* when the set
//! also needs the scratch for a stack-to-stack move (which always goes
//! through the scratch register). Output edits are therefore never
//! stack-to-stack and never read a location after overwriting it.

use super::intervals::{Intervals, Pos};
use super::linear_scan::Assignment;
use super::*;

/// A move of one value: from, to, class.
pub type Move = (Allocation, Allocation, RegClass);

fn internal(inst: usize, message: String) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: Some(MInst::new(inst)),
        message: format!("internal: {message}"),
    }
}

struct Ctx<'a, F> {
    f: &'a F,
    env: &'a MachineEnv,
    ivs: &'a Intervals,
    a: &'a Assignment,
    edits: Vec<(ProgPoint, Edit)>,
    cycle_slot: Option<u32>,
    num_slots: usize,
    by_class: [usize; 2],
}

impl<F: RaFunction> Ctx<'_, F> {
    fn loc(&self, v: VReg, p: Pos) -> Result<Allocation, RegAllocError> {
        self.a.loc_at(v.index(), p).ok_or_else(|| {
            internal(
                (p / 2) as usize,
                format!("{v} has no location at position {p}"),
            )
        })
    }

    /// Whether block `b`'s incoming edge moves go at its start.
    fn edge_moves_at_start(&self, b: usize) -> bool {
        let preds = self.f.block_preds(MBlock::new(b));
        preds.len() == 1 && self.f.block_succs(preds[0]).len() > 1
    }

    /// Where `v` is just before the moves at `Before(i)`.
    fn before_loc(&self, v: VReg, i: usize) -> Result<Allocation, RegAllocError> {
        let b = self.ivs.inst_block[i] as usize;
        let early = 2 * i as Pos;
        if early != self.ivs.block_from[b] {
            self.loc(v, early - 1)
        } else if self.edge_moves_at_start(b) {
            let p = self.f.block_preds(MBlock::new(b))[0].index();
            self.loc(v, self.ivs.block_to[p] - 1)
        } else {
            self.loc(v, early)
        }
    }

    /// The moves of the edge `pred -> succ` (`k`-th successor of `pred`).
    fn edge_moves(&self, pred: usize, k: usize, out: &mut Vec<Move>) -> Result<(), RegAllocError> {
        let pb = MBlock::new(pred);
        let succ = self.f.block_succs(pb)[k];
        let s = succ.index();
        let end = self.ivs.block_to[pred] - 1;
        let start = self.ivs.block_from[s];
        for &v in &self.ivs.live_in[s] {
            let vr = VReg::new(v as usize, self.ivs.classes[v as usize]);
            out.push((self.loc(vr, end)?, self.loc(vr, start)?, vr.class()));
        }
        let last = self.f.block_insts(pb).last();
        let args = self.f.branch_blockparams(pb, last, k);
        for (a, p) in args.iter().zip(self.f.block_params(succ)) {
            if let Some(to) = self.a.loc_at(p.index(), start) {
                out.push((self.loc(*a, end)?, to, p.class()));
            }
        }
        Ok(())
    }

    fn emit(&mut self, point: ProgPoint, from: Allocation, to: Allocation, class: RegClass) {
        if from == to {
            return;
        }
        if from.is_stack() && to.is_stack() {
            let s = Allocation::Reg(self.env.scratch[class.index()]);
            self.edits.push((point, Edit::Move { from, to: s, class }));
            self.edits.push((point, Edit::Move { from: s, to, class }));
        } else {
            self.edits.push((point, Edit::Move { from, to, class }));
        }
    }

    /// Sequentializes one parallel move set at `point`.
    fn parallel(&mut self, point: ProgPoint, moves: Vec<Move>) -> Result<(), RegAllocError> {
        let mut cycle_slot = self.cycle_slot;
        let mut fresh = None;
        let seq = sequentialize(moves, self.env.scratch, |class| {
            *cycle_slot.get_or_insert_with(|| {
                fresh = Some(class);
                (self.num_slots) as u32
            })
        })
        .map_err(|m| internal(point.inst.index(), m))?;
        if let Some(class) = fresh {
            self.num_slots += 1;
            self.by_class[class.index()] += 1;
        }
        self.cycle_slot = cycle_slot;
        for (from, to, class) in seq {
            self.emit(point, from, to, class);
        }
        Ok(())
    }
}

/// Orders the parallel moves `moves` (all sources read before any
/// destination is written) into sequential ones. A cycle is broken by saving
/// one destination in the class's `scratch` register, or in the slot
/// `cycle_slot` returns when the set has a stack-to-stack move of that class
/// (which the emitter routes through the scratch register). Fails if two
/// different values go to one location.
pub fn sequentialize(
    mut moves: Vec<Move>,
    scratch: [PReg; 2],
    mut cycle_slot: impl FnMut(RegClass) -> u32,
) -> Result<Vec<Move>, String> {
    moves.retain(|m| m.0 != m.1);
    moves.sort_by_key(|m| (m.1, m.0));
    moves.dedup();
    for w in moves.windows(2) {
        if w[0].1 == w[1].1 {
            return Err(format!("two values moved into {:?} at once", w[0].1));
        }
    }
    let mut out = Vec::with_capacity(moves.len() + 2);
    while !moves.is_empty() {
        let mut progressed = false;
        let mut k = 0;
        while k < moves.len() {
            let to = moves[k].1;
            if moves.iter().any(|m| m.0 == to) {
                k += 1;
            } else {
                out.push(moves.remove(k));
                progressed = true;
            }
        }
        if progressed {
            continue;
        }
        // Only cycles remain: save one destination, then read it from there.
        let (_, b, class) = moves[0];
        let needs_scratch = moves
            .iter()
            .any(|m| m.2 == class && m.0.is_stack() && m.1.is_stack());
        let tmp = if needs_scratch {
            Allocation::Stack(SpillSlot(cycle_slot(class)))
        } else {
            Allocation::Reg(scratch[class.index()])
        };
        out.push((b, tmp, class));
        for m in moves.iter_mut().filter(|m| m.0 == b) {
            m.0 = tmp;
        }
    }
    Ok(out)
}

/// Builds the [`Output`]: operand allocations and sequential move edits.
pub fn resolve<F: RaFunction>(
    f: &F,
    env: &MachineEnv,
    ivs: &Intervals,
    a: &Assignment,
) -> Result<Output, RegAllocError> {
    let ni = f.num_insts();
    let mut cx = Ctx {
        f,
        env,
        ivs,
        a,
        edits: Vec::new(),
        cycle_slot: None,
        num_slots: a.num_spillslots,
        by_class: a.spillslots_by_class,
    };

    // Split moves inside blocks, bucketed by instruction.
    let mut splits: Vec<(u32, Move)> = Vec::new();
    for (v, cs) in a.children.iter().enumerate() {
        for w in cs.windows(2) {
            let (c1, c2) = (w[0], w[1]);
            let b = ivs.block_of(c2.start);
            if c2.start == ivs.block_from[b] || c1.end != c2.start {
                continue; // at a block boundary or across a hole: edge moves handle it
            }
            if c2.start % 2 != 0 {
                return Err(internal(
                    (c2.start / 2) as usize,
                    format!("v{v} split at an odd position"),
                ));
            }
            splits.push((c2.start / 2, (c1.alloc, c2.alloc, ivs.classes[v])));
        }
    }
    splits.sort_by_key(|s| s.0);
    let mut split_k = 0;

    let mut allocs = Vec::new();
    let mut offsets = Vec::with_capacity(ni);
    for i in 0..ni {
        let inst = MInst::new(i);
        let ops = f.inst_operands(inst);
        let early = 2 * i as Pos;
        let late = early + 1;
        let b = ivs.inst_block[i] as usize;

        // Operand allocations.
        offsets.push(allocs.len() as u32);
        for (j, op) in ops.iter().enumerate() {
            let reused_by = ops
                .iter()
                .find(|o| o.constraint == OperandConstraint::Reuse(j));
            let alloc = match (op.constraint, op.kind, op.pos) {
                (OperandConstraint::FixedReg(r), _, _) => Allocation::Reg(r),
                (OperandConstraint::Reuse(_), _, _) => cx.loc(op.vreg, early)?,
                (_, OperandKind::Use, _) if reused_by.is_some() => {
                    let d = reused_by.map(|o| o.vreg).unwrap_or(op.vreg);
                    cx.loc(d, early)?
                }
                (_, _, OperandPos::Early) => cx.loc(op.vreg, early)?,
                (_, _, OperandPos::Late) => cx.loc(op.vreg, late)?,
            };
            allocs.push(alloc);
        }

        // Before(i): one parallel set.
        let mut set: Vec<Move> = Vec::new();
        while split_k < splits.len() && splits[split_k].0 as usize == i {
            set.push(splits[split_k].1);
            split_k += 1;
        }
        if early == ivs.block_from[b] && cx.edge_moves_at_start(b) {
            let p = f.block_preds(MBlock::new(b))[0].index();
            let k = f
                .block_succs(MBlock::new(p))
                .iter()
                .position(|s| s.index() == b)
                .ok_or_else(|| internal(i, "predecessor without this successor".into()))?;
            cx.edge_moves(p, k, &mut set)?;
        }
        for op in ops {
            match (op.kind, op.constraint) {
                (OperandKind::Use, OperandConstraint::FixedReg(r)) => {
                    set.push((
                        cx.before_loc(op.vreg, i)?,
                        Allocation::Reg(r),
                        op.vreg.class(),
                    ));
                }
                (OperandKind::Def, OperandConstraint::Reuse(k)) => {
                    let u = ops[k].vreg;
                    set.push((cx.before_loc(u, i)?, cx.loc(op.vreg, early)?, u.class()));
                }
                _ => {}
            }
        }
        cx.parallel(ProgPoint::before(inst), set)?;

        // The outgoing edge of a single-successor block, before its jump.
        let last = f.block_insts(MBlock::new(b)).last();
        if inst == last && f.block_succs(MBlock::new(b)).len() == 1 {
            let mut set = Vec::new();
            cx.edge_moves(b, 0, &mut set)?;
            cx.parallel(ProgPoint::before(inst), set)?;
        }

        // After(i): fixed defs out to their vreg's location.
        let mut set: Vec<Move> = Vec::new();
        for op in ops {
            if let (OperandKind::Def, OperandConstraint::FixedReg(r)) = (op.kind, op.constraint) {
                if ivs.vregs[op.vreg.index()].used {
                    set.push((Allocation::Reg(r), cx.loc(op.vreg, late)?, op.vreg.class()));
                }
            }
        }
        cx.parallel(ProgPoint::after(inst), set)?;
    }

    Ok(Output {
        allocs,
        inst_alloc_offsets: offsets,
        edits: cx.edits,
        num_spillslots: cx.num_slots,
        spillslots_by_class: cx.by_class,
        callee_saved_used: a.callee_saved_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regalloc::testing::XorShift;

    fn r(n: u8) -> Allocation {
        Allocation::Reg(PReg::new(n, RegClass::Int))
    }
    fn s(n: u32) -> Allocation {
        Allocation::Stack(SpillSlot(n))
    }

    /// Runs sequential moves over a map location -> value, with
    /// stack-to-stack moves going through the scratch like the emitter.
    fn simulate(
        seq: &[Move],
        scratch: Allocation,
    ) -> std::collections::HashMap<Allocation, Allocation> {
        let mut st: std::collections::HashMap<Allocation, Allocation> = Default::default();
        let get = |st: &std::collections::HashMap<Allocation, Allocation>, a: Allocation| {
            *st.get(&a).unwrap_or(&a)
        };
        for &(from, to, _) in seq {
            if from.is_stack() && to.is_stack() {
                let v = get(&st, from);
                st.insert(scratch, v);
                st.insert(to, v);
            } else {
                let v = get(&st, from);
                st.insert(to, v);
            }
        }
        st
    }

    #[test]
    fn cycles_and_fan_out_are_sequentialized() {
        let scratch = PReg::new(63, RegClass::Int);
        let mut rng = XorShift::new(3);
        for _ in 0..500 {
            // A random permutation of a few registers and slots, plus fan-out.
            let locs: Vec<Allocation> = (0..6)
                .map(|k| if k % 2 == 0 { r(k as u8) } else { s(k) })
                .collect();
            let mut perm: Vec<usize> = (0..locs.len()).collect();
            for k in (1..perm.len()).rev() {
                perm.swap(k, rng.below(k + 1));
            }
            let mut moves: Vec<Move> = perm
                .iter()
                .enumerate()
                .map(|(k, &p)| (locs[p], locs[k], RegClass::Int))
                .collect();
            moves.push((locs[0], r(20), RegClass::Int));
            let seq = sequentialize(moves.clone(), [scratch, scratch], |_| 99).unwrap();
            let st = simulate(&seq, Allocation::Reg(scratch));
            for (from, to, _) in moves {
                assert_eq!(st.get(&to).copied().unwrap_or(to), from, "{seq:?}");
            }
        }
    }

    #[test]
    fn conflicting_destinations_are_rejected() {
        let scratch = PReg::new(63, RegClass::Int);
        let moves = vec![(r(1), r(2), RegClass::Int), (r(3), r(2), RegClass::Int)];
        assert!(sequentialize(moves, [scratch, scratch], |_| 0).is_err());
    }
}
