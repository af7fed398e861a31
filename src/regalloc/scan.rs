//! Linear scan over one range per vreg (Poletto & Sarkar), as one sweep
//! over the instructions.
//!
//! Definitions come in point order as the sweep meets them, so ranges are
//! visited in start order without sorting; a range ends when the sweep
//! passes its last point (per-instruction bucket lists, no heap). Per class
//! the free registers are a bitmask in preference order.
//!
//! Each vreg ends up either **register-resident** (one register for its whole
//! range) or **stack-resident** (a spill slot for its whole range). A vreg
//! that was in register `R` and is evicted at instruction `k` (to make room)
//! becomes stack-resident: its definition stores to the slot, its operands
//! before `k` still use `R` (which nobody else got before `k`; reloaded
//! where a loop may have reused it, see [`super::moves`]), and its operands
//! from `k` on get a *temporary* register for that one instruction
//! (recorded per operand). Nothing is ever split, so values never move at
//! block boundaries: the only moves are block arguments, fixed-register
//! copies, reloads and spill stores, all placed by [`super::moves`].
//!
//! Temporaries try the last one or two caller-saved registers first (the
//! ones vregs get last), and evict only when no register is free.
//!
//! A register is given to a range only if nobody else reserved it inside
//! the range (a fixed operand of another vreg, a clobber): see
//! `Scan::conflict`. Hints (a fixed register the vreg is used in, the
//! register of the argument flowing into a block parameter, the parameter a
//! back-edge argument flows into, a dying reuse input) are tried first; a
//! range that crosses a clobbering instruction tries callee-saved registers
//! first. When nothing is free, the occupant with the smallest loop-weighted
//! use count (then the furthest end) is evicted if that is cheaper than
//! spilling the new range.

use super::liveness::{early, late, reset, Liveness, Point, NONE};
use super::*;
use std::collections::VecDeque;

/// No register (in `Scan::reg`).
pub const NOREG: u8 = u8::MAX;
/// The occupant marker of a register holding an instruction's temporary.
const TEMP: u32 = u32::MAX - 1;

/// Per class: the allocation order as data.
#[derive(Default)]
struct ClassRegs {
    /// Rank (preference order) → hardware number.
    order: Vec<u8>,
    /// Hardware number → rank (`u8::MAX`: not allocatable).
    rank: Vec<u8>,
    /// Ranks of callee-saved (non-preferred) registers.
    callee: u64,
    /// Ranks of every allocatable register.
    all: u64,
    /// Ranks of the registers temporaries try first: the last one or two
    /// caller-saved ones (given to vregs last).
    pool: u64,
}

/// The sweep's state and result, reused between functions.
#[derive(Default)]
pub struct Scan {
    /// Per vreg: its register while register-resident ([`NOREG`] if it
    /// never had one).
    pub reg: Vec<u8>,
    /// Per vreg: its spill slot if stack-resident, else `NONE`.
    pub slot: Vec<u32>,
    /// Per vreg: the first instruction whose operands see it on the stack
    /// (meaningful when `slot` is set).
    pub evict_inst: Vec<u32>,
    /// Per operand (numbered across the function, see
    /// [`Liveness::op_offset`]): the temporary register of a
    /// stack-resident vreg's operand, or [`NOREG`].
    pub op_temp: Vec<u8>,
    /// Spill slots used, and per class.
    pub num_slots: u32,
    pub slots_by_class: [usize; 2],
    /// Callee-saved registers handed out.
    pub callee_used: PRegSet,
    classes: [ClassRegs; 2],
    /// The register lists `classes` was built from: per class, preferred
    /// then non-preferred.
    classes_of: [Vec<PReg>; 4],
    /// Per class, per hardware number: the vreg in it, `TEMP` or `NONE`.
    occupant: [Vec<u32>; 2],
    /// Per class: free registers, by rank.
    free: [u64; 2],
    /// Per register index: first reservation not before the sweep point.
    cursor: Vec<u32>,
    /// Per clobber set ([`Liveness::clobber_sets`]): the same for its
    /// clobber points.
    clobber_cursor: Vec<u32>,
    /// Per register index: the point where a vreg in the hole of its range
    /// takes the register back (`NONE`: no claim); only ranges ending
    /// before it may use the register meanwhile.
    claim: Vec<u32>,
    /// Per class: released slots with the point they became free, in
    /// increasing order of that point.
    free_slots: [VecDeque<(u32, Point)>; 2],
    /// Per instruction: vregs whose range ends at its Early / Late point
    /// (linked through `next`).
    head_early: Vec<u32>,
    head_late: Vec<u32>,
    next: Vec<u32>,
    /// The same for the starts of holes (Early / Late point), and per
    /// instruction the vregs whose hole ends right before it.
    hole_early: Vec<u32>,
    hole_late: Vec<u32>,
    next_hole: Vec<u32>,
    reclaim_at: Vec<u32>,
    next_reclaim: Vec<u32>,
    /// Per vreg: the instruction whose operand it last was (pinned there).
    stamp: Vec<u32>,
    /// Per vreg: its eviction order, smaller first: loop-weighted use
    /// count, then the furthest end (`weight << 32 | !end`).
    evict_key: Vec<u64>,
    /// The current sweep point: no later query starts before it.
    now: Point,
    /// Temporaries of the current instruction: (register, class, vreg,
    /// free after the Early phase).
    temps: Vec<(u8, RegClass, u32, bool)>,
}

impl Scan {
    /// Frees the sweep's scratch, keeping its result (`reg`, `slot`,
    /// `evict_inst`, `op_temp`, the slot counts): for a large function,
    /// once the sweep is over.
    pub fn shed(&mut self) {
        for v in [
            &mut self.head_early,
            &mut self.head_late,
            &mut self.next,
            &mut self.hole_early,
            &mut self.hole_late,
            &mut self.next_hole,
            &mut self.reclaim_at,
            &mut self.next_reclaim,
            &mut self.stamp,
        ] {
            *v = Vec::new();
        }
        self.evict_key = Vec::new();
    }

    fn setup_classes(&mut self, env: &MachineEnv, same_env: bool) {
        // The tables depend on the register lists only: rebuilt when they
        // change (compared by content, a few dozen bytes, unless the caller
        // knows the register file is the previous one).
        let same = same_env
            || RegClass::ALL.into_iter().all(|c| {
                let k = c.index();
                let (p, n) = (&self.classes_of[2 * k], &self.classes_of[2 * k + 1]);
                p[..] == env.preferred_regs[k][..] && n[..] == env.non_preferred_regs[k][..]
            });
        if same && !self.classes[0].rank.is_empty() {
            for c in RegClass::ALL {
                self.free[c.index()] = self.classes[c.index()].all;
                reset(&mut self.occupant[c.index()], PReg::MAX_HW, NONE);
                self.free_slots[c.index()].clear();
            }
            return;
        }
        for c in RegClass::ALL {
            let k = c.index();
            self.classes_of[2 * k].clone_from(&env.preferred_regs[k]);
            self.classes_of[2 * k + 1].clone_from(&env.non_preferred_regs[k]);
        }
        for c in RegClass::ALL {
            let cr = &mut self.classes[c.index()];
            cr.order.clear();
            cr.rank.clear();
            cr.rank.resize(PReg::MAX_HW, u8::MAX);
            cr.callee = 0;
            for (k, r) in env.allocatable(c).enumerate().take(64) {
                cr.order.push(r.hw());
                cr.rank[r.hw() as usize] = k as u8;
                if k >= env.preferred_regs[c.index()].len() {
                    cr.callee |= 1 << k;
                }
            }
            let n = cr.order.len();
            cr.all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            let pref = env.preferred_regs[c.index()].len().min(64);
            let keep = match pref {
                8.. => 2,
                4.. => 1,
                _ => 0,
            };
            cr.pool = ((1u64 << keep) - 1) << (pref - keep);
            self.free[c.index()] = cr.all;
            reset(&mut self.occupant[c.index()], PReg::MAX_HW, NONE);
            self.free_slots[c.index()].clear();
        }
    }

    /// Assigns every vreg of `f` a register or a slot (see the module docs).
    /// `same_env`: `env` is the register file of the previous call.
    pub fn run<F: RaFunction>(
        &mut self,
        f: &F,
        env: &MachineEnv,
        lv: &Liveness,
        same_env: bool,
    ) -> Result<(), RegAllocError> {
        let ni = f.num_insts();
        let nv = f.num_vregs();
        self.setup_classes(env, same_env);
        reset(&mut self.reg, nv, NOREG);
        reset(&mut self.slot, nv, NONE);
        reset(&mut self.evict_inst, nv, NONE);
        reset(&mut self.stamp, nv, NONE);
        self.evict_key.clear();
        self.evict_key.extend(
            lv.weight[..nv]
                .iter()
                .zip(&lv.end[..nv])
                .map(|(&w, &e)| (w as u64) << 32 | (!e) as u64),
        );
        reset(&mut self.next, nv, NONE);
        reset(&mut self.head_early, ni, NONE);
        reset(&mut self.head_late, ni, NONE);
        reset(&mut self.cursor, 2 * PReg::MAX_HW, 0);
        reset(&mut self.clobber_cursor, lv.clobber_sets.len(), 0);
        reset(&mut self.claim, 2 * PReg::MAX_HW, NONE);
        reset(&mut self.hole_early, ni, NONE);
        reset(&mut self.hole_late, ni, NONE);
        reset(&mut self.next_hole, nv, NONE);
        reset(&mut self.reclaim_at, ni, NONE);
        reset(&mut self.next_reclaim, nv, NONE);
        self.num_slots = 0;
        self.slots_by_class = [0; 2];
        self.callee_used = PRegSet::empty();
        reset(&mut self.op_temp, lv.loop_use.len(), NOREG);
        // End buckets (pushed in reverse so lists come out in vreg order).
        for v in (0..nv).rev() {
            if lv.start[v] == NONE {
                continue;
            }
            let e = lv.end[v];
            let i = (e / 4) as usize;
            let head = if e.is_multiple_of(4) {
                &mut self.head_early[i]
            } else {
                &mut self.head_late[i]
            };
            self.next[v] = *head;
            *head = v as u32;
            let (hs, he) = (lv.hole_start[v], lv.hole_end[v]);
            if hs != NONE {
                let i = (hs / 4) as usize;
                let head = if hs.is_multiple_of(4) {
                    &mut self.hole_early[i]
                } else {
                    &mut self.hole_late[i]
                };
                self.next_hole[v] = *head;
                *head = v as u32;
                let r = (he / 4 + 1) as usize;
                self.next_reclaim[v] = self.reclaim_at[r];
                self.reclaim_at[r] = v as u32;
            }
        }

        for b in 0..f.num_blocks() {
            let blk = MBlock::new(b);
            let first = lv.block_start[b] as usize;
            for i in f.block_insts(blk).iter() {
                let ii = i.index();
                // The lists below are usually empty: tested here, no call.
                if ii > 0 {
                    let h = self.head_late[ii - 1];
                    if h != NONE {
                        self.expire(h, lv);
                    }
                    let h = self.hole_late[ii - 1];
                    if h != NONE {
                        self.open_holes(h, lv);
                    }
                }
                let r = self.reclaim_at[ii];
                if r != NONE {
                    self.close_holes(r, lv)?;
                }
                let ops = f.inst_operands(i);
                for op in ops {
                    self.stamp[op.vreg.index()] = ii as u32;
                }
                if ii == first {
                    self.now = early(ii).saturating_sub(1);
                    let params = f.block_params(blk);
                    let args = if params.is_empty() {
                        &[]
                    } else {
                        Self::first_pred_args(f, blk)
                    };
                    for (k, &p) in params.iter().enumerate() {
                        let hint = self.reg_hint(args.get(k));
                        self.alloc(p.index(), lv.start[p.index()], hint, ii, false, lv)?;
                    }
                }
                self.early_phase(ii, ops, lv)?;
                let h = self.head_early[ii];
                if h != NONE {
                    self.expire(h, lv);
                }
                let h = self.hole_early[ii];
                if h != NONE {
                    self.open_holes(h, lv);
                }
                if !self.temps.is_empty() {
                    self.free_temps(true);
                }
                self.late_phase(ii, ops, lv)?;
                if !self.temps.is_empty() {
                    self.free_temps(false);
                }
            }
        }
        Ok(())
    }

    /// Whether `v`'s operands at instruction `i` see it on the stack.
    #[inline]
    pub fn on_stack_at(&self, v: usize, i: usize) -> bool {
        self.slot[v] != NONE && i as u32 >= self.evict_inst[v]
    }

    fn early_phase(
        &mut self,
        i: usize,
        ops: &[Operand],
        lv: &Liveness,
    ) -> Result<(), RegAllocError> {
        self.now = early(i);
        let base = lv.op_offset[i] as usize;
        for (j, op) in ops.iter().enumerate() {
            let v = op.vreg.index();
            match (op.kind, op.constraint) {
                // Only a stack-resident use needs the scan for reuse defs.
                (OperandKind::Use, OperandConstraint::Reg) if self.on_stack_at(v, i) => {
                    let reuse_input = ops
                        .iter()
                        .any(|o| o.constraint == OperandConstraint::Reuse(j as u8) && j < 256);
                    if !reuse_input {
                        let late_use = op.pos == OperandPos::Late;
                        let end = if late_use { late(i) } else { early(i) };
                        let t = self.temp(lv, op.vreg, end, i, late_use, false)?;
                        self.op_temp[base + j] = t;
                    }
                }
                (OperandKind::Def, OperandConstraint::Reuse(k)) => {
                    let a = ops[k as usize].vreg.index();
                    let d = op.vreg.index();
                    // The input's register is free after this Early point
                    // when its range ends or its hole opens here (then the
                    // def must end before the hole does).
                    let dying = (lv.end[a] == early(i)
                        || (lv.hole_start[a] == early(i) && lv.end[d] < lv.hole_end[a]))
                        && !self.on_stack_at(a, i);
                    let ra = self.reg[a];
                    let takes_input = dying
                        && ra != NOREG
                        && !self.conflict(
                            lv,
                            PReg::new(ra, op.vreg.class()),
                            d as u32,
                            late(i),
                            lv.end[d],
                            false,
                        );
                    if !takes_input {
                        // Written into its own register before the inputs
                        // are read (the input is copied there first).
                        self.alloc(d, early(i), NONE, i, true, lv)?;
                        self.def_temp(lv, op, base + j, i, true)?;
                    }
                }
                (OperandKind::Def, c) if op.pos == OperandPos::Early => {
                    let only_here = lv.end[v] <= late(i);
                    self.alloc(v, lv.start[v], NONE, i, only_here, lv)?;
                    if c == OperandConstraint::Reg {
                        self.def_temp(lv, op, base + j, i, only_here)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn late_phase(
        &mut self,
        i: usize,
        ops: &[Operand],
        lv: &Liveness,
    ) -> Result<(), RegAllocError> {
        self.now = late(i);
        let base = lv.op_offset[i] as usize;
        // Reuse defs taking their dying input's register go first, before
        // another def could take it.
        for op in ops {
            if let (OperandKind::Def, OperandConstraint::Reuse(k)) = (op.kind, op.constraint) {
                let d = op.vreg.index();
                let a = ops[k as usize].vreg.index();
                if self.reg[d] == NOREG && self.slot[d] == NONE {
                    let c = op.vreg.class();
                    let ra = self.reg[a];
                    if self.occupant[c.index()][ra as usize] != NONE {
                        return Err(internal(i, "reuse register not free"));
                    }
                    self.assign(d, c, ra);
                }
            }
        }
        for (j, op) in ops.iter().enumerate() {
            if op.kind != OperandKind::Def || op.pos != OperandPos::Late {
                continue;
            }
            if matches!(op.constraint, OperandConstraint::Reuse(_)) {
                continue;
            }
            let v = op.vreg.index();
            self.alloc(v, lv.start[v], NONE, i, false, lv)?;
            if op.constraint == OperandConstraint::Reg {
                self.def_temp(lv, op, base + j, i, false)?;
            }
        }
        Ok(())
    }

    /// A temporary for the def operand `op` (number `k`) when its vreg was
    /// spilled at birth.
    fn def_temp(
        &mut self,
        lv: &Liveness,
        op: &Operand,
        k: usize,
        i: usize,
        exempt: bool,
    ) -> Result<(), RegAllocError> {
        if self.on_stack_at(op.vreg.index(), i) {
            self.op_temp[k] = self.temp(lv, op.vreg, late(i), i, true, exempt)?;
        }
        Ok(())
    }

    fn free_temps(&mut self, early_only: bool) {
        let mut k = 0;
        while k < self.temps.len() {
            let (r, c, _, early) = self.temps[k];
            if early || !early_only {
                self.release(c, r);
                self.temps.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    /// The arguments the first predecessor of `blk` passes to its
    /// parameters (their locations are the parameters' hints), if any.
    fn first_pred_args<F: RaFunction>(f: &F, blk: MBlock) -> &[VReg] {
        let Some(&pred) = f.block_preds(blk).first() else {
            return &[];
        };
        if pred.index() >= f.num_blocks() {
            return &[];
        }
        match f.block_succs(pred).iter().position(|&s| s == blk) {
            Some(k) => f.branch_blockparams(pred, f.block_insts(pred).last(), k),
            None => &[],
        }
    }

    /// The register of `a` as a hint for vreg of class `c`, if it has one.
    fn reg_hint(&self, a: Option<&VReg>) -> u32 {
        match a {
            Some(a) if self.reg[a.index()] != NOREG && self.slot[a.index()] == NONE => {
                PReg::new(self.reg[a.index()], a.class()).index() as u32
            }
            _ => NONE,
        }
    }

    /// Frees the registers / slots of the vregs in list `head`.
    fn expire(&mut self, mut v: u32, lv: &Liveness) {
        while v != NONE {
            let vi = v as usize;
            let c = lv.class[vi];
            if self.slot[vi] != NONE {
                self.free_slots[c.index()].push_back((self.slot[vi], lv.end[vi]));
            } else if self.reg[vi] != NOREG && self.occupant[c.index()][self.reg[vi] as usize] == v
            {
                self.release(c, self.reg[vi]);
            }
            v = self.next[vi];
        }
    }

    /// Lends the registers of the vregs in hole list `v` until their holes
    /// end.
    fn open_holes(&mut self, mut v: u32, lv: &Liveness) {
        while v != NONE {
            let vi = v as usize;
            let c = lv.class[vi];
            let hw = self.reg[vi];
            if self.slot[vi] == NONE && hw != NOREG && self.occupant[c.index()][hw as usize] == v {
                self.release(c, hw);
                self.claim[PReg::new(hw, c).index()] = lv.hole_end[vi];
            }
            v = self.next_hole[vi];
        }
    }

    /// Takes back the registers of the vregs in reclaim list `v`.
    fn close_holes(&mut self, mut v: u32, lv: &Liveness) -> Result<(), RegAllocError> {
        while v != NONE {
            let vi = v as usize;
            let c = lv.class[vi];
            let hw = self.reg[vi];
            if hw != NOREG && self.slot[vi] == NONE {
                let r = PReg::new(hw, c).index();
                if self.claim[r] == lv.hole_end[vi] {
                    if self.occupant[c.index()][hw as usize] != NONE {
                        return Err(internal(
                            (lv.hole_end[vi] / 4) as usize,
                            "register lent in a hole not free",
                        ));
                    }
                    self.claim[r] = NONE;
                    self.assign(vi, c, hw);
                }
            }
            v = self.next_reclaim[vi];
        }
        Ok(())
    }

    fn release(&mut self, c: RegClass, hw: u8) {
        let cr = &self.classes[c.index()];
        self.occupant[c.index()][hw as usize] = NONE;
        self.free[c.index()] |= 1 << cr.rank[hw as usize];
    }

    fn assign(&mut self, v: usize, c: RegClass, hw: u8) {
        let cr = &self.classes[c.index()];
        let rank = cr.rank[hw as usize];
        self.occupant[c.index()][hw as usize] = v as u32;
        self.free[c.index()] &= !(1 << rank);
        self.reg[v] = hw;
        if cr.callee & (1 << rank) != 0 {
            self.callee_used.add(PReg::new(hw, c));
        }
    }

    /// Whether register `r` is reserved inside `[s, e]` by anyone but
    /// `vreg`. With `exempt_mid`, a clobber at `s + 1` does not count (a
    /// def at the Early point of a clobbering instruction that is written,
    /// or needed, only inside it).
    fn conflict(
        &mut self,
        lv: &Liveness,
        r: PReg,
        vreg: u32,
        s: Point,
        e: Point,
        exempt_mid: bool,
    ) -> bool {
        if e >= self.claim[r.index()] {
            return true;
        }
        let list = &lv.resv[r.index()];
        let c = &mut self.cursor[r.index()];
        while (*c as usize) < list.len() && list[*c as usize].point < self.now {
            *c += 1;
        }
        let mut k = *c as usize;
        while k < list.len() && list[k].point <= e {
            let x = list[k];
            if x.point >= s && x.vreg != vreg && !(exempt_mid && x.vreg == NONE && x.point == s + 1)
            {
                return true;
            }
            k += 1;
        }
        // Clobbers, per clobber set containing `r` (one or two sets).
        for (n, set) in lv.clobber_sets.iter().enumerate() {
            if !set.contains(r) {
                continue;
            }
            let points = &lv.clobber_points[n];
            let c = &mut self.clobber_cursor[n];
            while (*c as usize) < points.len() && points[*c as usize] < self.now {
                *c += 1;
            }
            let mut k = *c as usize;
            while k < points.len() && points[k] <= e {
                let p = points[k];
                if p >= s && !(exempt_mid && p == s + 1) {
                    return true;
                }
                k += 1;
            }
        }
        false
    }

    /// Whether `[s, e]` contains a whole clobbering instruction.
    fn crosses_clobber(lv: &Liveness, s: Point, e: Point) -> bool {
        if e < 2 {
            return false;
        }
        let lo = s.div_ceil(4) as usize;
        let hi = ((e - 2) / 4) as usize;
        lo <= hi && lv.clobbers_before[hi + 1] > lv.clobbers_before[lo]
    }

    /// Gives vreg `v` (range `[s, lv.end[v]]`) a register, evicting a
    /// cheaper occupant or spilling `v` itself when none is free.
    #[allow(clippy::too_many_arguments)]
    fn alloc(
        &mut self,
        v: usize,
        s: Point,
        hint: u32,
        i: usize,
        exempt: bool,
        lv: &Liveness,
    ) -> Result<(), RegAllocError> {
        let c = lv.class[v];
        let ci = c.index();
        let e = lv.end[v];
        let vv = v as u32;
        let back = lv.hint_param[v];
        let back_hint = if back != NONE && self.slot[back as usize] == NONE {
            match self.reg[back as usize] {
                NOREG => NONE,
                r => PReg::new(r, c).index() as u32,
            }
        } else {
            NONE
        };
        for h in [hint, lv.hint_reg[v], back_hint] {
            if h == NONE || (h as usize / PReg::MAX_HW) != ci {
                continue;
            }
            let hw = (h as usize % PReg::MAX_HW) as u8;
            let rank = self.classes[ci].rank[hw as usize];
            if rank != u8::MAX
                && self.free[ci] & (1 << rank) != 0
                && !self.conflict(lv, PReg::new(hw, c), vv, s, e, exempt)
            {
                self.assign(v, c, hw);
                return Ok(());
            }
        }
        let free = self.free[ci];
        let callee = self.classes[ci].callee;
        let groups = if Self::crosses_clobber(lv, s, e) {
            [free & callee, free & !callee]
        } else {
            [free & !callee, free & callee]
        };
        for mut m in groups {
            while m != 0 {
                let rank = m.trailing_zeros() as usize;
                m &= m - 1;
                let hw = self.classes[ci].order[rank];
                if !self.conflict(lv, PReg::new(hw, c), vv, s, e, exempt) {
                    self.assign(v, c, hw);
                    return Ok(());
                }
            }
        }
        // Nothing free: evict the cheapest occupant that may give way.
        if let Some((hw, x)) = self.eviction_candidate(lv, c, vv, s, e, i, exempt) {
            let xi = x as usize;
            if lv.weight[xi] < lv.weight[v] || (lv.weight[xi] == lv.weight[v] && lv.end[xi] > e) {
                self.evict(xi, i, lv);
                self.assign(v, c, hw);
                return Ok(());
            }
        }
        let slot = self.get_slot(c, s);
        self.slot[v] = slot;
        self.evict_inst[v] = i as u32;
        Ok(())
    }

    /// The occupant of class `c` with the smallest weight (then the
    /// furthest end) that is not an operand of instruction `i` and whose
    /// register nobody else reserved in `[s, e]`.
    #[allow(clippy::too_many_arguments)]
    fn eviction_candidate(
        &mut self,
        lv: &Liveness,
        c: RegClass,
        vreg: u32,
        s: Point,
        e: Point,
        i: usize,
        exempt: bool,
    ) -> Option<(u8, u32)> {
        let ci = c.index();
        let all_occ = !self.free[ci] & self.classes[ci].all;
        // The cheapest occupant first, by one key per vreg; its register
        // is almost never reserved by someone else (then the slow loop
        // below finds the cheapest one that is not).
        let mut occ = all_occ;
        let mut best: Option<(u8, u32)> = None;
        let mut best_key = u64::MAX;
        while occ != 0 {
            let rank = occ.trailing_zeros() as usize;
            occ &= occ - 1;
            let hw = self.classes[ci].order[rank];
            let x = self.occupant[ci][hw as usize];
            if x == TEMP || x == NONE || self.stamp[x as usize] == i as u32 {
                continue;
            }
            let k = self.evict_key[x as usize];
            if k < best_key {
                best_key = k;
                best = Some((hw, x));
            }
        }
        let (hw, _) = best?;
        if !self.conflict(lv, PReg::new(hw, c), vreg, s, e, exempt) {
            return best;
        }
        let mut occ = all_occ;
        let mut best: Option<(u8, u32)> = None;
        let mut best_key = u64::MAX;
        while occ != 0 {
            let rank = occ.trailing_zeros() as usize;
            occ &= occ - 1;
            let hw = self.classes[ci].order[rank];
            let x = self.occupant[ci][hw as usize];
            if x == TEMP || x == NONE || self.stamp[x as usize] == i as u32 {
                continue;
            }
            let k = self.evict_key[x as usize];
            if k < best_key && !self.conflict(lv, PReg::new(hw, c), vreg, s, e, exempt) {
                best_key = k;
                best = Some((hw, x));
            }
        }
        best
    }

    /// Makes register-resident `x` stack-resident from instruction `i` on.
    fn evict(&mut self, x: usize, i: usize, lv: &Liveness) {
        let c = lv.class[x];
        self.slot[x] = self.get_slot(c, lv.start[x]);
        self.evict_inst[x] = i as u32;
        self.release(c, self.reg[x]);
    }

    /// A spill slot of class `c` free from point `s` on.
    fn get_slot(&mut self, c: RegClass, s: Point) -> u32 {
        let q = &mut self.free_slots[c.index()];
        if let Some(&(slot, since)) = q.front() {
            if since < s {
                q.pop_front();
                return slot;
            }
        }
        self.num_slots += 1;
        self.slots_by_class[c.index()] += 1;
        self.num_slots - 1
    }

    /// A register for one operand of `v` (stack-resident) in instruction
    /// `i`, from the current point to `e`: held until the end of the
    /// instruction when `until_late`, else until its Early phase is over.
    fn temp(
        &mut self,
        lv: &Liveness,
        v: VReg,
        e: Point,
        i: usize,
        until_late: bool,
        exempt: bool,
    ) -> Result<u8, RegAllocError> {
        let vv = v.index() as u32;
        if let Some(t) = self.temps.iter().find(|t| t.2 == vv) {
            return Ok(t.0);
        }
        let c = v.class();
        let ci = c.index();
        let s = self.now;
        let pool = self.classes[ci].pool;
        let mut found = None;
        'groups: for mut m in [self.free[ci] & pool, self.free[ci] & !pool] {
            while m != 0 {
                let rank = m.trailing_zeros() as usize;
                m &= m - 1;
                let hw = self.classes[ci].order[rank];
                if !self.conflict(lv, PReg::new(hw, c), vv, s, e, exempt) {
                    found = Some(hw);
                    break 'groups;
                }
            }
        }
        let hw = match found {
            Some(hw) => hw,
            None => {
                let (hw, x) = self
                    .eviction_candidate(lv, c, vv, s, e, i, exempt)
                    .ok_or_else(|| internal(i, "no register for a temporary"))?;
                self.evict(x as usize, i, lv);
                hw
            }
        };
        let rank = self.classes[ci].rank[hw as usize];
        self.occupant[ci][hw as usize] = TEMP;
        self.free[ci] &= !(1 << rank);
        if self.classes[ci].callee & (1 << rank) != 0 {
            self.callee_used.add(PReg::new(hw, c));
        }
        self.temps.push((hw, c, vv, !until_late));
        Ok(hw)
    }
}

fn internal(inst: usize, message: &str) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: Some(MInst::new(inst)),
        message: format!("internal: {message}"),
    }
}
