//! From the scan's decisions to operand allocations and move edits.
//!
//! One pass over the instructions. Per operand, the location follows from
//! its vreg's residence (see [`super::scan`]): its register; its slot
//! (`Any` operands of stack-resident vregs); its temporary, reloaded before
//! / stored after; or a fixed register, copied in before / out after. A
//! reuse input is copied into its def's register first unless it is there.
//! A `jmp` gets its block-argument moves (argument location → parameter
//! location) before it. Every vreg keeps one location for its whole range,
//! so nothing moves at other block boundaries.
//!
//! The moves before an instruction form one *parallel* set (all sources are
//! read before any destination is written), as do the moves after it; each
//! set is sequentialized in time linear in its size ([`Sequencer`]): moves
//! whose destination nobody still reads go first; what remains are disjoint
//! cycles, each broken by saving one location in the class's scratch
//! register (a cycle of registers) or in a dedicated cycle slot (a cycle
//! through memory, whose stack-to-stack moves need the scratch register).
//! Output edits are never stack-to-stack and never read a location after
//! overwriting it.

use super::liveness::{Liveness, NONE};
use super::scan::{Scan, NOREG};
use super::*;

/// A move of one value: from, to, class.
pub type Move = (Allocation, Allocation, RegClass);

/// Up to this many moves in one parallel set are ordered by pairwise tests
/// (constant work for a constant bound); more go through the tables.
const SMALL: usize = 4;

/// Sequentializes parallel move sets; its tables are indexed by location
/// and reused (stamped, never cleared).
#[derive(Default)]
pub struct Sequencer {
    /// Per location: the generation that wrote `writer` / `readers`.
    gen_of: Vec<u32>,
    writer: Vec<u32>,
    readers: Vec<u32>,
    gen: u32,
    done: Vec<bool>,
    ready: Vec<u32>,
    /// Per class: the slot used to break cycles through memory (`NONE`
    /// until needed).
    pub cycle_slot: [u32; 2],
}

fn loc_index(a: Allocation) -> usize {
    match a {
        Allocation::Reg(r) => r.index(),
        Allocation::Stack(s) => 2 * PReg::MAX_HW + s.index(),
    }
}

impl Sequencer {
    /// Ready for a new function (no cycle slots yet).
    pub fn reset(&mut self) {
        self.cycle_slot = [NONE; 2];
    }

    fn touch(&mut self, l: usize) {
        if l >= self.gen_of.len() {
            let n = (l + 1).max(2 * self.gen_of.len());
            self.gen_of.resize(n, 0);
            self.writer.resize(n, NONE);
            self.readers.resize(n, 0);
        }
        if self.gen_of[l] != self.gen {
            self.gen_of[l] = self.gen;
            self.writer[l] = NONE;
            self.readers[l] = 0;
        }
    }

    /// Appends to `out` the moves of the parallel set `moves` (distinct
    /// destinations, each different from its source) at `point`, in an
    /// order that gives every destination its source's old value.
    /// `new_slot` creates a spill slot of a class (for a cycle slot).
    pub fn sequentialize(
        &mut self,
        point: ProgPoint,
        moves: &[Move],
        env: &MachineEnv,
        out: &mut Vec<(ProgPoint, Edit)>,
        new_slot: impl FnMut(RegClass) -> u32,
    ) -> Result<(), RegAllocError> {
        match moves.len() {
            0 => return Ok(()),
            1 => {
                emit(out, point, env, moves[0]);
                return Ok(());
            }
            n if n <= SMALL => {
                // A few moves (the common case: a reuse copy and a reload):
                // emit whatever no pending move still reads, by pairwise
                // tests instead of the location tables; a cycle left over
                // goes to the general path.
                let distinct = (0..n).all(|a| (a + 1..n).all(|b| moves[a].1 != moves[b].1));
                if distinct {
                    let mut pending = [true; SMALL];
                    let mut left = n;
                    let mut progress = true;
                    while left > 0 && progress {
                        progress = false;
                        for k in 0..n {
                            let read = |j: usize| pending[j] && j != k && moves[j].0 == moves[k].1;
                            if pending[k] && !(0..n).any(read) {
                                emit(out, point, env, moves[k]);
                                pending[k] = false;
                                left -= 1;
                                progress = true;
                            }
                        }
                    }
                    if left == 0 {
                        return Ok(());
                    }
                    let mut rest = [moves[0]; SMALL];
                    let mut m = 0;
                    for k in 0..n {
                        if pending[k] {
                            rest[m] = moves[k];
                            m += 1;
                        }
                    }
                    return self.general(point, &rest[..m], env, out, new_slot);
                }
            }
            _ => {}
        }
        self.general(point, moves, env, out, new_slot)
    }

    /// [`Sequencer::sequentialize`] for any number of moves, in time
    /// linear in their number.
    fn general(
        &mut self,
        point: ProgPoint,
        moves: &[Move],
        env: &MachineEnv,
        out: &mut Vec<(ProgPoint, Edit)>,
        mut new_slot: impl FnMut(RegClass) -> u32,
    ) -> Result<(), RegAllocError> {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.gen_of.iter_mut().for_each(|g| *g = u32::MAX);
            self.gen = 1;
        }
        self.done.clear();
        self.done.resize(moves.len(), false);
        self.ready.clear();
        for (k, &(from, to, _)) in moves.iter().enumerate() {
            let (fl, tl) = (loc_index(from), loc_index(to));
            self.touch(fl);
            self.touch(tl);
            if self.writer[tl] != NONE {
                return Err(RegAllocError::InvalidInput {
                    inst: Some(point.inst),
                    message: format!("internal: two moves into {to}"),
                });
            }
            self.writer[tl] = k as u32;
            self.readers[fl] += 1;
        }
        for (k, &(_, to, _)) in moves.iter().enumerate() {
            if self.readers[loc_index(to)] == 0 {
                self.ready.push(k as u32);
            }
        }
        // Moves whose destination nobody reads any more.
        while let Some(k) = self.ready.pop() {
            let k = k as usize;
            self.done[k] = true;
            let m = moves[k];
            emit(out, point, env, m);
            let fl = loc_index(m.0);
            self.readers[fl] -= 1;
            if self.readers[fl] == 0 {
                let w = self.writer[fl];
                if w != NONE && !self.done[w as usize] {
                    self.ready.push(w);
                }
            }
        }
        // The rest are cycles: each location written once and read once.
        for k0 in 0..moves.len() {
            if self.done[k0] {
                continue;
            }
            // Through memory? Then the cycle slot holds the saved value.
            let mut memory = false;
            let mut k = k0;
            loop {
                let m = moves[k];
                memory |= m.0.is_stack() || m.1.is_stack();
                k = self.writer[loc_index(m.0)] as usize;
                if k == k0 {
                    break;
                }
            }
            let class = moves[k0].2;
            let save = if memory {
                let c = class.index();
                if self.cycle_slot[c] == NONE {
                    self.cycle_slot[c] = new_slot(class);
                }
                Allocation::Stack(SpillSlot(self.cycle_slot[c]))
            } else {
                Allocation::Reg(env.scratch[class.index()])
            };
            // Save the first destination (its reader takes it from `save`),
            // then fill destinations backwards along the cycle.
            let (from0, to0, _) = moves[k0];
            emit(out, point, env, (to0, save, class));
            emit(out, point, env, (from0, to0, class));
            self.done[k0] = true;
            let mut at = from0;
            loop {
                let w = self.writer[loc_index(at)] as usize;
                let (from, to, c) = moves[w];
                self.done[w] = true;
                if from == to0 {
                    emit(out, point, env, (save, to, c));
                    break;
                }
                emit(out, point, env, (from, to, c));
                at = from;
            }
        }
        Ok(())
    }
}

/// Appends one move, through the scratch register if stack-to-stack.
fn emit(out: &mut Vec<(ProgPoint, Edit)>, point: ProgPoint, env: &MachineEnv, m: Move) {
    let (from, to, class) = m;
    if from.is_stack() && to.is_stack() {
        let s = Allocation::Reg(env.scratch[class.index()]);
        out.push((point, Edit::Move { from, to: s, class }));
        out.push((point, Edit::Move { from: s, to, class }));
    } else {
        out.push((point, Edit::Move { from, to, class }));
    }
}

/// Per-instruction move lists, reused.
#[derive(Default)]
pub struct MoveBuf {
    pub before: Vec<Move>,
    pub after: Vec<Move>,
}

/// Pushes `m` unless the same move is there already; a move to its own
/// source is dropped.
fn push_move(list: &mut Vec<Move>, m: Move) {
    if m.0 != m.1 && !list.iter().any(|x| x.0 == m.0 && x.1 == m.1) {
        list.push(m);
    }
}

/// Where use operand number `k` (of instruction `i`, vreg `v`) reads its
/// value: the vreg's register; for a stack-resident vreg its slot, except
/// before its eviction where its old register still holds it — if the
/// definition wrote that register (block parameters are written to their
/// slot by the edge moves) and the use is in no loop that could have
/// reused the register since the definition.
fn use_source(lv: &Liveness, scan: &Scan, k: usize, i: usize, v: usize, c: RegClass) -> Allocation {
    let before_eviction = (i as u32) < scan.evict_inst[v];
    if scan.slot[v] == NONE || (before_eviction && !lv.loop_use[k] && !lv.is_param[v]) {
        Allocation::Reg(PReg::new(scan.reg[v], c))
    } else {
        Allocation::Stack(SpillSlot(scan.slot[v]))
    }
}

fn no_location(i: MInst, j: usize, v: VReg) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: Some(i),
        message: format!("internal: operand {j} ({v}) has no location"),
    }
}

/// Spill slots counted on from the scan's (the sequencer's cycle slots
/// are added as they are created).
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    pub num: u32,
    pub by_class: [usize; 2],
}

impl Slots {
    /// The scan's slots.
    pub fn of(scan: &Scan) -> Slots {
        Slots {
            num: scan.num_slots,
            by_class: scan.slots_by_class,
        }
    }

    /// A new slot of class `c`.
    pub fn add(&mut self, c: RegClass) -> u32 {
        self.num += 1;
        self.by_class[c.index()] += 1;
        self.num - 1
    }
}

/// The inputs every instruction's resolution reads, and the scratch it
/// writes.
pub struct Resolve<'a, F> {
    pub f: &'a F,
    pub env: &'a MachineEnv,
    pub lv: &'a Liveness,
    pub scan: &'a Scan,
    pub seq: &'a mut Sequencer,
    pub buf: &'a mut MoveBuf,
    pub slots: Slots,
}

/// Builds `out` (allocations and edits) from the scan's decisions.
pub fn resolve<F: RaFunction>(
    f: &F,
    env: &MachineEnv,
    lv: &Liveness,
    scan: &Scan,
    seq: &mut Sequencer,
    buf: &mut MoveBuf,
    out: &mut Output,
) -> Result<(), RegAllocError> {
    out.allocs.clear();
    out.inst_alloc_offsets.clear();
    out.edits.clear();
    // Exact sizes: one allocation per operand, one offset per instruction
    // (growing by doubling could leave half of either unused).
    out.allocs.reserve_exact(lv.loop_use.len());
    out.inst_alloc_offsets.reserve_exact(f.num_insts());
    seq.reset();
    let mut r = Resolve {
        f,
        env,
        lv,
        scan,
        seq,
        buf,
        slots: Slots::of(scan),
    };
    for b in 0..f.num_blocks() {
        let blk = MBlock::new(b);
        for i in f.block_insts(blk).iter() {
            out.inst_alloc_offsets.push(out.allocs.len() as u32);
            r.inst(blk, i, &mut out.allocs, &mut out.edits)?;
        }
    }
    out.num_spillslots = r.slots.num as usize;
    out.spillslots_by_class = r.slots.by_class;
    out.callee_saved_used = scan.callee_used;
    Ok(())
}

impl<F: RaFunction> Resolve<'_, F> {
    /// The location of `v` (class `c`) for its whole range.
    fn canon(&self, v: usize, c: RegClass) -> Allocation {
        if self.scan.slot[v] != NONE {
            Allocation::Stack(SpillSlot(self.scan.slot[v]))
        } else {
            Allocation::Reg(PReg::new(self.scan.reg[v], c))
        }
    }

    /// Collects in `buf.before` the block-argument moves of the jump `i`
    /// ending `blk` (none unless it is a one-successor branch).
    pub fn jump_moves(&mut self, blk: MBlock, i: MInst) {
        let f = self.f;
        if !f.is_branch(i) {
            return;
        }
        let succs = f.block_succs(blk);
        if succs.len() == 1 {
            let params = f.block_params(succs[0]);
            let args = f.branch_blockparams(blk, i, 0);
            for (a, p) in args.iter().zip(params) {
                let m = (
                    self.canon(a.index(), a.class()),
                    self.canon(p.index(), p.class()),
                    a.class(),
                );
                if m.0 != m.1 {
                    self.buf.before.push(m);
                }
            }
        }
    }

    /// Sequentializes `buf.before` as the moves before `i` into `edits`
    /// (creating the cycle slots it needs).
    pub fn sequence_before(
        &mut self,
        i: MInst,
        edits: &mut Vec<(ProgPoint, Edit)>,
    ) -> Result<(), RegAllocError> {
        let slots = &mut self.slots;
        self.seq.sequentialize(
            ProgPoint::before(i),
            &self.buf.before,
            self.env,
            edits,
            |c| slots.add(c),
        )
    }

    /// Appends instruction `i`'s (of block `blk`) operand allocations to
    /// `allocs` and its edits (before, then after it) to `edits`; returns
    /// where in `edits` the ones after it start.
    pub fn inst(
        &mut self,
        blk: MBlock,
        i: MInst,
        allocs: &mut Vec<Allocation>,
        edits: &mut Vec<(ProgPoint, Edit)>,
    ) -> Result<usize, RegAllocError> {
        let (f, lv, scan) = (self.f, self.lv, self.scan);
        let ii = i.index();
        let ops = f.inst_operands(i);
        let base = lv.op_offset[ii] as usize;
        self.buf.before.clear();
        self.buf.after.clear();
        let buf = &mut *self.buf;
        let first = allocs.len();
        // Operands that are reuse inputs (numbered below 64; lowering
        // never makes more).
        let mut reuse_inputs = 0u64;
        for op in ops {
            if let OperandConstraint::Reuse(k) = op.constraint {
                reuse_inputs |= 1u64.checked_shl(k as u32).unwrap_or(0);
            }
        }
        for (j, op) in ops.iter().enumerate() {
            let v = op.vreg.index();
            let c = op.vreg.class();
            let st = scan.slot[v] != NONE;
            let home = if st {
                Allocation::Stack(SpillSlot(scan.slot[v]))
            } else {
                Allocation::Reg(PReg::new(scan.reg[v], c))
            };
            if !st && scan.reg[v] == NOREG {
                return Err(no_location(i, j, op.vreg));
            }
            if !st && !matches!(op.constraint, OperandConstraint::FixedReg(_)) {
                // In its register for its whole life, no fixed register:
                // read and written there (what every case below comes to;
                // the common one).
                allocs.push(home);
                continue;
            }
            let a = if op.kind == OperandKind::Use {
                let src = use_source(lv, scan, base + j, ii, v, c);
                match op.constraint {
                    _ if j < 64 && reuse_inputs >> j & 1 != 0 => src, // replaced below
                    OperandConstraint::FixedReg(r) => {
                        push_move(&mut buf.before, (src, Allocation::Reg(r), c));
                        Allocation::Reg(r)
                    }
                    OperandConstraint::Any => src,
                    _ if src.is_stack() => {
                        // Reloaded: into a temporary, or into the
                        // register it had before its eviction.
                        let t = if ii as u32 >= scan.evict_inst[v] {
                            scan.op_temp[base + j]
                        } else {
                            scan.reg[v]
                        };
                        if t == NOREG {
                            return Err(no_location(i, j, op.vreg));
                        }
                        let t = Allocation::Reg(PReg::new(t, c));
                        push_move(&mut buf.before, (src, t, c));
                        t
                    }
                    _ => src,
                }
            } else {
                let before_eviction = (ii as u32) < scan.evict_inst[v];
                match op.constraint {
                    OperandConstraint::FixedReg(r) => {
                        let r = Allocation::Reg(r);
                        push_move(&mut buf.after, (r, home, c));
                        if st && before_eviction {
                            // Its register holds it too until the
                            // eviction (see `use_source`).
                            let own = Allocation::Reg(PReg::new(scan.reg[v], c));
                            push_move(&mut buf.after, (r, own, c));
                        }
                        r
                    }
                    OperandConstraint::Any if !(st && before_eviction) => home,
                    _ if st => {
                        // Its register before the eviction, or a
                        // temporary: stored after.
                        let hw = if ii as u32 >= scan.evict_inst[v] {
                            scan.op_temp[base + j]
                        } else {
                            scan.reg[v]
                        };
                        if hw == NOREG {
                            return Err(no_location(i, j, op.vreg));
                        }
                        let r = Allocation::Reg(PReg::new(hw, c));
                        push_move(&mut buf.after, (r, home, c));
                        r
                    }
                    _ => home,
                }
            };
            allocs.push(a);
        }
        // Reuse inputs: copied into the def's register.
        for (j, op) in ops.iter().enumerate() {
            if let OperandConstraint::Reuse(k) = op.constraint {
                let k = k as usize;
                let d = allocs[first + j];
                let a = ops[k].vreg;
                let src = use_source(lv, scan, base + k, ii, a.index(), a.class());
                push_move(&mut buf.before, (src, d, a.class()));
                allocs[first + k] = d;
            }
        }
        // Block arguments of a jump.
        self.jump_moves(blk, i);
        // Most instructions need no moves at all.
        if !self.buf.before.is_empty() {
            self.sequence_before(i, edits)?;
        }
        let after = edits.len();
        if !self.buf.after.is_empty() {
            let slots = &mut self.slots;
            self.seq
                .sequentialize(ProgPoint::after(i), &self.buf.after, self.env, edits, |c| {
                    slots.add(c)
                })?;
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u8) -> Allocation {
        Allocation::Reg(PReg::new(n, RegClass::Int))
    }
    fn s(n: u32) -> Allocation {
        Allocation::Stack(SpillSlot(n))
    }

    /// Runs `edits` on a state where location `l` holds value `l`.
    fn simulate(edits: &[(ProgPoint, Edit)]) -> std::collections::BTreeMap<Allocation, Allocation> {
        let mut st = std::collections::BTreeMap::new();
        for (_, Edit::Move { from, to, .. }) in edits {
            let v = *st.get(from).unwrap_or(from);
            st.insert(*to, v);
        }
        st
    }

    fn env() -> MachineEnv {
        crate::regalloc::testing::toy_env(8, 0, 2, 0)
    }

    #[test]
    fn cycles_and_fan_out_are_sequentialized() {
        let env = env();
        let p = ProgPoint::before(MInst(0));
        let cases: Vec<Vec<Move>> = vec![
            vec![(r(0), r(1), RegClass::Int), (r(1), r(0), RegClass::Int)],
            vec![
                (r(0), r(1), RegClass::Int),
                (r(1), r(2), RegClass::Int),
                (r(2), r(0), RegClass::Int),
                (r(0), r(3), RegClass::Int),
                (r(3), s(4), RegClass::Int),
            ],
            vec![
                (s(0), s(1), RegClass::Int),
                (s(1), r(2), RegClass::Int),
                (r(2), s(0), RegClass::Int),
                (r(5), r(6), RegClass::Int),
            ],
        ];
        for moves in cases {
            let mut seq = Sequencer::default();
            seq.reset();
            let mut out = Vec::new();
            let mut next = 100;
            seq.sequentialize(p, &moves, &env, &mut out, |_| {
                next += 1;
                next - 1
            })
            .unwrap();
            assert!(out
                .iter()
                .all(|(_, Edit::Move { from, to, .. })| !(from.is_stack() && to.is_stack())));
            let st = simulate(&out);
            for (from, to, _) in &moves {
                assert_eq!(st.get(to), Some(from), "{moves:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn every_small_parallel_move_is_sequentialized() {
        // All sets of up to 4 moves over 5 locations (3 registers, 2
        // slots) with distinct destinations: chains, fan-outs, swaps and
        // cycles through memory, on the pairwise path and its fallback.
        let env = env();
        let locs = [r(0), r(1), r(2), s(0), s(1)];
        let mut checked = 0;
        for code in 0..5u32.pow(8) {
            let mut c = code;
            let mut moves: Vec<Move> = Vec::new();
            for _ in 0..4 {
                let (from, to) = (locs[(c % 5) as usize], locs[(c / 5 % 5) as usize]);
                c /= 25;
                if from != to && moves.iter().all(|m| m.1 != to) {
                    moves.push((from, to, RegClass::Int));
                }
            }
            let mut seq = Sequencer::default();
            seq.reset();
            let mut out = Vec::new();
            seq.sequentialize(ProgPoint::before(MInst(0)), &moves, &env, &mut out, |_| 7)
                .unwrap();
            assert!(out
                .iter()
                .all(|(_, Edit::Move { from, to, .. })| !(from.is_stack() && to.is_stack())));
            let st = simulate(&out);
            for (from, to, _) in &moves {
                assert_eq!(st.get(to), Some(from), "{moves:?} -> {out:?}");
            }
            checked += 1;
        }
        assert_eq!(checked, 5usize.pow(8));
    }

    #[test]
    fn a_long_rotation_is_linear() {
        // 100,000 slots rotated by one: one cycle through memory.
        let env = env();
        let n = 100_000u32;
        let moves: Vec<Move> = (0..n)
            .map(|k| (s(k), s((k + 1) % n), RegClass::Int))
            .collect();
        let mut seq = Sequencer::default();
        seq.reset();
        let mut out = Vec::new();
        seq.sequentialize(ProgPoint::before(MInst(0)), &moves, &env, &mut out, |_| n)
            .unwrap();
        assert!(out.len() <= 2 * moves.len() + 6);
        let st = simulate(&out);
        for (from, to, _) in &moves {
            assert_eq!(st.get(to), Some(from));
        }
    }

    #[test]
    fn conflicting_destinations_are_rejected() {
        let env = env();
        let mut seq = Sequencer::default();
        seq.reset();
        let moves = [(r(0), r(2), RegClass::Int), (r(1), r(2), RegClass::Int)];
        let mut out = Vec::new();
        assert!(seq
            .sequentialize(ProgPoint::before(MInst(0)), &moves, &env, &mut out, |_| 9)
            .is_err());
    }
}
