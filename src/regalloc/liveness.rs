//! Input validation, loops, and one live range per vreg.
//!
//! ## Points
//! Instruction `i` has four points: `4i` Early (inputs read), `4i+1` Mid
//! (clobbers take effect), `4i+2` Late (outputs written), `4i+3` After
//! (moves after the instruction). A vreg's live range is the closed span
//! `[start, end]` of points: from its definition (Late for a normal def,
//! Early for an Early def, the After point of the previous instruction for a
//! block parameter) to its last use (Early or Late). Two vregs whose ranges
//! are disjoint may share a location.
//!
//! ## Liveness without live sets
//! Blocks come in an order where every loop is contiguous, header first
//! (see [`super::RaFunction::loop_ends`]). Then a vreg is live exactly on
//! the points from its definition to its last use in that order, extended
//! to the end of every loop that contains a use but not the definition
//! (the value must survive the back edge). One forward pass computes this:
//! it keeps the stack of loops open at the current block (outermost
//! first, their starts increasing), and at a use in block `b` of a vreg
//! defined in block `d` it finds the outermost open loop starting after
//! `d` by binary search on that stack — O(log depth) per use, so N nested
//! loops cost N log N, not N².
//!
//! ## One hole
//! A value defined in the header of an innermost loop that is left only
//! from its header (a `while` loop) and used after the loop is dead in the
//! loop's body after its last use there: every way from the body to the
//! exit goes around the back edge and through the header, which defines it
//! again. Its range gets one hole, from that last use (at the earliest the
//! header's end, where the exits leave) to the loop's end;
//! the scan lends its register to values that end inside the hole
//! (an accumulator returned after its loop no longer blocks the register
//! of its next value, which saves a move per iteration).
//!
//! When the order does not make that rule sound — a retreating edge that
//! is not the back edge of an enclosing contiguous loop (an irreducible
//! cycle), or loops that are not contiguous — every range is extended to
//! the end of the function instead: no location is ever reused, which is
//! correct for any control flow (and only happens to unusual code).
//!
//! ## Reservations
//! A fixed-register operand reserves its register at its points for its
//! vreg; a clobber reserves each clobbered register at the Mid point for
//! nobody. Per register, the reservations come out sorted by point, so the
//! scan can test "is this register reserved by someone else inside this
//! range" with a cursor that only moves forward. Clobbers are kept per
//! distinct clobber set instead (every call clobbers the same two dozen
//! registers): one point per clobbering instruction, not one per register.

use super::*;

/// A point of the linear order (see the module docs).
pub type Point = u32;

/// No vreg / no point.
pub const NONE: u32 = u32::MAX;

/// The Early point of instruction `i`.
#[inline]
pub fn early(i: usize) -> Point {
    4 * i as Point
}

/// The Mid point of instruction `i` (clobbers).
#[inline]
pub fn mid(i: usize) -> Point {
    4 * i as Point + 1
}

/// The Late point of instruction `i`.
#[inline]
pub fn late(i: usize) -> Point {
    4 * i as Point + 2
}

/// A register reserved at a point for a vreg (`NONE`: a clobber).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub point: Point,
    pub vreg: u32,
}

/// Liveness of a function, in flat per-vreg arrays (reused between
/// functions through [`super::Ctx`]).
#[derive(Default)]
pub struct Liveness {
    /// Per vreg: first and last point of its range (`start == NONE`: never
    /// defined).
    pub start: Vec<Point>,
    pub end: Vec<Point>,
    /// Per vreg: the block of its definition.
    pub def_block: Vec<u32>,
    /// Per vreg: uses weighted by loop depth (what spilling it would cost).
    pub weight: Vec<u32>,
    /// Per vreg: a register that would save a move ([`PReg::index`]), from
    /// its first fixed operand; `NONE` if none.
    pub hint_reg: Vec<u32>,
    /// Per vreg: a block parameter it is passed to on a back edge (taking
    /// that parameter's register saves a move); `NONE` if none.
    pub hint_param: Vec<u32>,
    /// Per vreg: its class.
    pub class: Vec<RegClass>,
    /// Per vreg: whether it is a block parameter (defined by the moves of
    /// its block's incoming edges, into its home location only).
    pub is_param: Vec<bool>,
    /// Per register ([`PReg::index`]): reservations sorted by point.
    pub resv: Vec<Vec<Reservation>>,
    /// The registers with a reservation (whose lists need clearing).
    resv_used: PRegSet,
    /// The register file's allocatable registers, and their number per
    /// class (rebuilt when the register file changes).
    allocatable: PRegSet,
    num_allocatable: [usize; 2],
    /// The distinct clobber sets of the function (allocatable registers
    /// only), and per set the Mid points of the instructions clobbering it,
    /// sorted (`clobber_points` may hold more, emptied, lists).
    pub clobber_sets: Vec<PRegSet>,
    pub clobber_points: Vec<Vec<Point>>,
    /// Per clobber set: the instructions' own clobber set it came from.
    clobber_raw: Vec<PRegSet>,
    /// Per instruction + 1: its first operand's number (operands numbered
    /// across the function).
    pub op_offset: Vec<u32>,
    /// Per operand: a use in a loop that does not contain its vreg's
    /// definition. If the vreg is evicted later, such a use must reload it
    /// (the loop's next iteration may find the register reused); any other
    /// use before the eviction still finds the vreg in its register.
    pub loop_use: Vec<bool>,
    /// Per instruction + 1: number of clobbering instructions before it.
    pub clobbers_before: Vec<u32>,
    /// Per block: its first instruction; one more entry for the end.
    pub block_start: Vec<u32>,
    /// Per vreg: the hole in its range (see the module docs): its register
    /// is free after `hole_start` and taken back at `hole_end` (the After
    /// point before the loop's first following instruction); `NONE` when
    /// the range has no hole.
    pub hole_start: Vec<Point>,
    pub hole_end: Vec<Point>,
    /// Whether ranges were extended to the end of the function (see the
    /// module docs).
    pub conservative: bool,
    /// Scratch: per block, whether it heads an innermost loop left only
    /// from the header.
    simple_loop: Vec<bool>,
    /// Scratch: per block, the end block of the loop it heads (0: none).
    loop_end: Vec<u32>,
    /// Scratch: the open-loop stack, `(start block, end block)`.
    open: Vec<(u32, u32)>,
}

fn invalid(inst: Option<usize>, message: impl Into<String>) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: inst.map(MInst::new),
        message: message.into(),
    }
}

impl Liveness {
    /// Frees what only the scan reads (per vreg ranges, hints, holes; the
    /// reservations), keeping what resolving the allocation reads
    /// (`op_offset`, `loop_use`, `is_param`): for a large function, once
    /// the scan has run.
    pub fn shed(&mut self) {
        for v in [
            &mut self.start,
            &mut self.end,
            &mut self.def_block,
            &mut self.weight,
            &mut self.hint_reg,
            &mut self.hint_param,
            &mut self.hole_start,
            &mut self.hole_end,
            &mut self.clobbers_before,
            &mut self.block_start,
            &mut self.loop_end,
        ] {
            *v = Vec::new();
        }
        self.class = Vec::new();
        self.simple_loop = Vec::new();
        self.resv = Vec::new();
        self.resv_used = PRegSet::empty();
        self.clobber_points = Vec::new();
        self.clobber_sets = Vec::new();
        self.clobber_raw = Vec::new();
    }

    /// Validates `f` (the rules of the [`super`] module docs) and computes
    /// every vreg's range, its hints and the register reservations.
    ///
    /// `same_env`: `env` is the register file of the previous call (its
    /// derived sets are reused).
    pub fn compute<F: RaFunction>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        same_env: bool,
    ) -> Result<(), RegAllocError> {
        if !same_env {
            self.allocatable = PRegSet::empty();
            self.num_allocatable = [0; 2];
            for c in RegClass::ALL {
                for r in env.allocatable(c) {
                    self.allocatable.add(r);
                    self.num_allocatable[c.index()] += 1;
                }
            }
        }
        let (allocatable, num_allocatable) = (self.allocatable, self.num_allocatable);
        let nb = f.num_blocks();
        let ni = f.num_insts();
        let nv = f.num_vregs();
        if nb == 0 || ni == 0 {
            return Err(invalid(None, "function has no blocks or no instructions"));
        }
        if ni >= (u32::MAX / 4 - 4) as usize || nv >= NONE as usize {
            return Err(invalid(None, "function too large"));
        }
        if f.entry_block() != MBlock(0) {
            return Err(invalid(None, "entry block must be block 0"));
        }
        reset(&mut self.start, nv, NONE);
        reset(&mut self.end, nv, 0);
        reset(&mut self.def_block, nv, 0);
        reset(&mut self.weight, nv, 0);
        reset(&mut self.hint_reg, nv, NONE);
        reset(&mut self.hint_param, nv, NONE);
        reset(&mut self.class, nv, RegClass::Int);
        reset(&mut self.is_param, nv, false);
        reset(&mut self.hole_start, nv, NONE);
        reset(&mut self.hole_end, nv, NONE);
        if self.resv.len() != 2 * PReg::MAX_HW {
            self.resv = vec![Vec::new(); 2 * PReg::MAX_HW];
        }
        // Only the lists the previous function filled need clearing.
        for r in self.resv_used.iter() {
            self.resv[r.index()].clear();
        }
        self.resv_used = PRegSet::empty();
        for l in self.clobber_points.iter_mut().take(self.clobber_sets.len()) {
            l.clear();
        }
        self.clobber_sets.clear();
        self.clobber_raw.clear();
        self.clobbers_before.clear();
        self.clobbers_before.push(0);
        self.op_offset.clear();
        self.op_offset.push(0);
        self.loop_use.clear();
        self.check_blocks(f)?;
        self.loops(f)?;

        self.open.clear();
        let mut clobbering = 0u32;
        for b in 0..nb {
            let blk = MBlock::new(b);
            while self.open.last().is_some_and(|&(_, e)| e as usize <= b) {
                self.open.pop();
            }
            if self.loop_end[b] != 0 {
                self.open.push((b as u32, self.loop_end[b]));
            }
            let depth = self.open.len().min(4) as u32;
            let use_weight = 1u32 << (3 * depth);
            let first = self.block_start[b] as usize;
            // Parameters: defined at the After point of the previous
            // instruction, live at least through the block's first Early
            // point.
            let pstart = (early(first)).wrapping_sub(1);
            for &p in f.block_params(blk) {
                self.define(p, pstart, early(first), b, None)?;
                self.is_param[p.index()] = true;
            }
            let r = f.block_insts(blk);
            for i in r.iter() {
                let ii = i.index();
                let ops = f.inst_operands(i);
                let mut reg_count = [0usize; 2];
                let mut fixed_early = PRegSet::empty();
                let mut fixed_late = PRegSet::empty();
                // Uses first (they read values defined earlier).
                for (j, op) in ops.iter().enumerate() {
                    let v = op.vreg.index();
                    if v >= nv {
                        return Err(invalid(Some(ii), format!("operand {j}: vreg out of range")));
                    }
                    match op.constraint {
                        OperandConstraint::Any => {}
                        OperandConstraint::Reg => reg_count[op.vreg.class().index()] += 1,
                        OperandConstraint::FixedReg(r) => {
                            reg_count[op.vreg.class().index()] += 1;
                            if r.class() != op.vreg.class()
                                || !allocatable.contains(r)
                                || r == env.scratch[r.class().index()]
                            {
                                return Err(invalid(
                                    Some(ii),
                                    format!("operand {j}: bad fixed register {r}"),
                                ));
                            }
                            let e = op.pos == OperandPos::Early || op.kind == OperandKind::Use;
                            let l = op.pos == OperandPos::Late || op.kind == OperandKind::Def;
                            if (e && fixed_early.contains(r)) || (l && fixed_late.contains(r)) {
                                return Err(invalid(
                                    Some(ii),
                                    format!("operand {j}: register {r} fixed twice"),
                                ));
                            }
                            if e {
                                fixed_early.add(r);
                                self.reserve(r, early(ii), v as u32);
                            }
                            if l {
                                fixed_late.add(r);
                                self.reserve(r, late(ii), v as u32);
                            }
                            if self.hint_reg[v] == NONE {
                                self.hint_reg[v] = r.index() as u32;
                            }
                        }
                        OperandConstraint::Reuse(k) => {
                            reg_count[op.vreg.class().index()] += 1;
                            let ok = op.kind == OperandKind::Def
                                && op.pos == OperandPos::Late
                                && ops.get(k as usize).is_some_and(|u| {
                                    u.kind == OperandKind::Use
                                        && u.pos == OperandPos::Early
                                        && u.vreg.class() == op.vreg.class()
                                        && u.constraint == OperandConstraint::Reg
                                })
                                && !ops.iter().enumerate().any(|(m, o)| {
                                    m != j && o.constraint == OperandConstraint::Reuse(k)
                                });
                            if !ok {
                                return Err(invalid(Some(ii), format!("operand {j}: bad reuse")));
                            }
                        }
                    }
                    if op.kind != OperandKind::Use {
                        self.loop_use.push(false);
                        continue;
                    }
                    let at = if op.pos == OperandPos::Early {
                        early(ii)
                    } else {
                        late(ii)
                    };
                    let in_loop = self.use_at(op.vreg, at, b, use_weight, ii)?;
                    self.loop_use.push(in_loop);
                }
                self.op_offset.push(self.loop_use.len() as u32);
                for c in RegClass::ALL {
                    if reg_count[c.index()] > num_allocatable[c.index()] {
                        return Err(RegAllocError::TooManyRegOperands { inst: i, class: c });
                    }
                }
                // Block arguments are read at the branch's Early point.
                if f.is_branch(i) {
                    let succs = f.block_succs(blk);
                    for (k, &s) in succs.iter().enumerate() {
                        let args = f.branch_blockparams(blk, i, k);
                        let params = f.block_params(s);
                        for (a, p) in args.iter().zip(params) {
                            self.use_at(*a, early(ii), b, use_weight, ii)?;
                            if s.index() <= b && self.hint_param[a.index()] == NONE {
                                self.hint_param[a.index()] = p.index() as u32;
                            }
                        }
                    }
                }
                // Then definitions.
                for op in ops.iter().filter(|o| o.kind == OperandKind::Def) {
                    let (s, min_end) = if op.pos == OperandPos::Early {
                        (early(ii), late(ii))
                    } else {
                        (late(ii), late(ii))
                    };
                    self.define(op.vreg, s, min_end, b, Some(ii))?;
                }
                let clob = f.inst_clobbers(i);
                if !clob.is_empty() {
                    clobbering += 1;
                    let k = match self.clobber_raw.iter().rposition(|&c| c == clob) {
                        Some(k) => k,
                        None => {
                            // Few distinct sets (a call's, a division's).
                            self.clobber_raw.push(clob);
                            self.clobber_sets.push(clob.intersection(&allocatable));
                            if self.clobber_points.len() < self.clobber_sets.len() {
                                self.clobber_points.push(Vec::new());
                            }
                            self.clobber_sets.len() - 1
                        }
                    };
                    self.clobber_points[k].push(mid(ii));
                }
                self.clobbers_before.push(clobbering);
            }
        }
        for v in 0..nv {
            if self.start[v] != NONE && self.end[v] < self.start[v] {
                self.end[v] = self.start[v];
            }
            // A hole needs a use after the loop and a gap before it.
            let e = self.hole_end[v];
            if e == NONE || e as usize >= nb {
                self.hole_start[v] = NONE;
                self.hole_end[v] = NONE;
                continue;
            }
            let reclaim = early(self.block_start[e as usize] as usize) - 1;
            // The exits leave from the header's end: live through it.
            let h = self.def_block[v] as usize;
            let header_end = late(self.block_start[h + 1] as usize - 1);
            self.hole_start[v] = self.hole_start[v].max(header_end);
            if self.hole_start[v] + 2 >= reclaim || self.end[v] <= reclaim {
                self.hole_start[v] = NONE;
                self.hole_end[v] = NONE;
            } else {
                self.hole_end[v] = reclaim;
            }
        }
        if self.conservative {
            let last = late(ni - 1);
            for v in 0..nv {
                if self.start[v] != NONE {
                    self.end[v] = last;
                }
            }
        }
        Ok(())
    }

    fn reserve(&mut self, r: PReg, point: Point, vreg: u32) {
        self.resv_used.add(r);
        self.resv[r.index()].push(Reservation { point, vreg });
    }

    fn define(
        &mut self,
        v: VReg,
        start: Point,
        min_end: Point,
        block: usize,
        inst: Option<usize>,
    ) -> Result<(), RegAllocError> {
        let i = v.index();
        if i >= self.start.len() {
            return Err(invalid(inst, format!("vreg {v} out of range")));
        }
        if self.start[i] != NONE {
            return Err(invalid(inst, format!("vreg {v} defined twice")));
        }
        self.start[i] = start;
        self.end[i] = min_end;
        self.def_block[i] = block as u32;
        self.class[i] = v.class();
        if self.simple_loop[block] {
            self.hole_start[i] = min_end;
        }
        Ok(())
    }

    /// Records a use of `v` at `at`; whether it lies in a loop that does
    /// not contain `v`'s definition.
    fn use_at(
        &mut self,
        v: VReg,
        at: Point,
        block: usize,
        weight: u32,
        inst: usize,
    ) -> Result<bool, RegAllocError> {
        let i = v.index();
        if i >= self.start.len() {
            return Err(invalid(Some(inst), format!("vreg {v} out of range")));
        }
        if self.start[i] == NONE {
            return Err(invalid(
                Some(inst),
                format!("vreg {v} used before its definition in block order"),
            ));
        }
        self.weight[i] = self.weight[i].saturating_add(weight);
        let mut end = at;
        let d = self.def_block[i];
        // The outermost open loop that starts after the definition's block.
        let in_loop = self.open.last().is_some_and(|&(s, _)| s > d);
        if in_loop {
            let k = self.open.partition_point(|&(s, _)| s <= d);
            let loop_end_block = self.open[k].1 as usize;
            end = end.max(late(self.block_start[loop_end_block] as usize - 1));
        }
        if end > self.end[i] {
            self.end[i] = end;
        }
        // A value defined in a simple loop's header: its last use inside
        // the loop (`hole_start`), and whether it is used after it
        // (`hole_end` set to the loop's end block).
        let h = d as usize;
        if self.simple_loop[h] && self.hole_start[i] != NONE {
            let e = self.loop_end[h] as usize;
            if (h..e).contains(&block) {
                self.hole_start[i] = self.hole_start[i].max(at);
            } else {
                self.hole_end[i] = e as u32;
            }
        }
        Ok(in_loop)
    }

    /// Checks block ranges, terminators, edges and parameter counts; fills
    /// `block_start`.
    fn check_blocks<F: RaFunction>(&mut self, f: &F) -> Result<(), RegAllocError> {
        let nb = f.num_blocks();
        let ni = f.num_insts();
        let nv = f.num_vregs();
        if !f.block_params(MBlock(0)).is_empty() {
            return Err(invalid(None, "entry block has parameters"));
        }
        self.block_start.clear();
        let mut next = 0usize;
        for b in 0..nb {
            let blk = MBlock::new(b);
            let r = f.block_insts(blk);
            if r.first.index() != next || r.is_empty() || r.end.index() > ni {
                return Err(invalid(
                    Some(next.min(ni - 1)),
                    format!("block {b} is empty or out of order"),
                ));
            }
            self.block_start.push(next as u32);
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
                if s.index() >= nb || s.index() == 0 {
                    return Err(invalid(Some(last.index()), "bad successor"));
                }
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
                if succs.len() > 1 && succs.iter().any(|s| !f.block_params(*s).is_empty()) {
                    return Err(invalid(
                        Some(last.index()),
                        "block arguments on a branch with several successors",
                    ));
                }
            }
        }
        if next != ni {
            return Err(invalid(None, "blocks do not cover all instructions"));
        }
        self.block_start.push(ni as u32);
        Ok(())
    }

    /// Fills `loop_end` from the function (or computes it) and decides
    /// whether the order makes the loop rule sound (`conservative`).
    fn loops<F: RaFunction>(&mut self, f: &F) -> Result<(), RegAllocError> {
        let nb = f.num_blocks();
        self.conservative = false;
        reset(&mut self.loop_end, nb, 0);
        match f.loop_ends() {
            Some(ends) if ends.len() == nb => self.loop_end.copy_from_slice(ends),
            Some(_) => return Err(invalid(None, "loop table has the wrong length")),
            None => self.conservative = !compute_loop_ends(f, &mut self.loop_end),
        }
        // Loops must nest as intervals, and every retreating edge must be
        // the back edge of a loop containing its source.
        self.open.clear();
        for b in 0..nb {
            while self.open.last().is_some_and(|&(_, e)| e as usize <= b) {
                self.open.pop();
            }
            let e = self.loop_end[b];
            if e != 0 {
                let outer_end = self.open.last().map_or(nb as u32, |&(_, oe)| oe);
                if e as usize <= b || e > outer_end {
                    self.conservative = true;
                }
                self.open
                    .push((b as u32, e.min(outer_end).max(b as u32 + 1)));
            }
            for &s in f.block_succs(MBlock::new(b)) {
                let s = s.index();
                if s <= b && (self.loop_end[s] as usize) <= b {
                    self.conservative = true;
                }
            }
        }
        if self.conservative {
            // Keep the table well formed for the pass that follows (it is
            // not used for ranges any more).
            self.loop_end.iter_mut().for_each(|e| *e = 0);
        }
        // Simple loops: innermost (no header inside), left only from the
        // header. Innermost loops are disjoint, so the scan is linear.
        reset(&mut self.simple_loop, nb, false);
        for h in 0..nb {
            let e = self.loop_end[h] as usize;
            if e == 0 || e > nb {
                continue;
            }
            let mut simple = (h + 1..e).all(|b| self.loop_end[b] == 0);
            if simple {
                for b in h + 1..e {
                    if f.block_succs(MBlock::new(b))
                        .iter()
                        .any(|s| !(h..e).contains(&s.index()))
                    {
                        simple = false;
                        break;
                    }
                }
            }
            self.simple_loop[h] = simple;
        }
        Ok(())
    }
}

/// Resizes `v` to `n` entries, all `x`.
pub fn reset<T: Copy>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

/// Natural loops of `f`'s CFG in its block order, for functions that do not
/// state them: `ends[h]` = one past the last block of the loop headed by
/// `h`. Returns `false` when a loop is not contiguous in the order (then the
/// caller keeps every value live to the end).
fn compute_loop_ends<F: RaFunction>(f: &F, ends: &mut [u32]) -> bool {
    use crate::analysis::{Cfg, DomTree, LoopInfo};
    use crate::ir::Block;
    let nb = f.num_blocks();
    let mut edges = Vec::new();
    for b in 0..nb {
        for s in f.block_succs(MBlock::new(b)) {
            edges.push((Block::new(b), Block::new(s.index())));
        }
    }
    let cfg = Cfg::from_edges(nb, &edges);
    let dom = DomTree::new(&cfg);
    let loops = LoopInfo::new(&cfg, &dom);
    let nl = loops.loops().len();
    // Per loop: first and last block and block count, children into parents
    // (inner loops come first in `loops()`).
    let mut lo = vec![u32::MAX; nl];
    let mut hi = vec![0u32; nl];
    let mut count = vec![0u32; nl];
    for b in 0..nb {
        if let Some(l) = loops.innermost_loop(Block::new(b)) {
            let l = l.0 as usize;
            lo[l] = lo[l].min(b as u32);
            hi[l] = hi[l].max(b as u32);
            count[l] += 1;
        }
    }
    for l in 0..nl {
        if let Some(p) = loops.loops()[l].parent {
            let p = p.0 as usize;
            lo[p] = lo[p].min(lo[l]);
            hi[p] = hi[p].max(hi[l]);
            count[p] += count[l];
        }
    }
    for (l, data) in loops.loops().iter().enumerate() {
        let h = data.header.index() as u32;
        if lo[l] != h || hi[l] - lo[l] + 1 != count[l] {
            return false;
        }
        ends[h as usize] = hi[l] + 1;
    }
    true
}
