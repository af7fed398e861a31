//! The linear scan proper (Wimmer & Franz 2010, after Wimmer & Mössenböck 2005).
//!
//! Intervals are taken from an unhandled min-heap by start position; the
//! active (holding a register here) and inactive (holding one, but in a
//! lifetime hole here) lists are updated, then `try_alloc_free` picks a
//! register free for the whole interval (the hint first, caller-saved before
//! callee-saved) or for a prefix of it (the rest is split off and requeued);
//! failing that `alloc_blocked` either spills the current interval up to its
//! next use that needs a register, or takes the register whose holder needs
//! it farthest away and spills that holder until its next register use.
//! Split positions are moved to block boundaries of lower loop depth when
//! possible, so reloads land outside loops.
//!
//! An interval ("child") is a contiguous window `[start, end)` over its
//! vreg's ranges and uses (index windows, so splitting is O(log n), not a
//! copy). Invariants: children of one vreg never overlap; each child ends up
//! with exactly one location; a child whose uses need a register at a
//! position gets a register there; no child in a register overlaps a fixed
//! range of that register unless it owns it.
//!
//! Stack children get their vreg's one spill slot; slots are then assigned
//! by a second scan over the vregs' stack lifetimes, reusing a slot once its
//! previous holder's lifetime ended.

use super::intervals::{floor_even, Intervals, Pos};
use super::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One piece of a vreg's lifetime with one location.
#[derive(Clone, Copy, Debug)]
pub struct Child {
    pub start: Pos,
    pub end: Pos,
    pub alloc: Allocation,
}

/// The result of the scan: per vreg, its children sorted by start.
pub struct Assignment {
    pub children: Vec<Vec<Child>>,
    pub num_spillslots: usize,
    pub spillslots_by_class: [usize; 2],
    pub callee_saved_used: PRegSet,
}

impl Assignment {
    /// Where `v` is at position `p`, if it is live there.
    pub fn loc_at(&self, v: usize, p: Pos) -> Option<Allocation> {
        let cs = self.children.get(v)?;
        let k = cs.partition_point(|c| c.start <= p);
        let c = cs.get(k.checked_sub(1)?)?;
        (p < c.end).then_some(c.alloc)
    }
}

#[derive(Clone, Copy, Debug)]
struct Iv {
    vreg: u32,
    class: RegClass,
    start: Pos,
    end: Pos,
    /// Window into the vreg's ranges: `r_lo..r_hi`, clipped to `[start, end)`.
    r_lo: u32,
    r_hi: u32,
    /// Window into the vreg's uses with `start <= pos < end`.
    u_lo: u32,
    u_hi: u32,
    alloc: Option<Allocation>,
}

/// A placeholder stack allocation, replaced by a real slot at the end.
const SPILLED: Allocation = Allocation::Stack(SpillSlot(u32::MAX));

struct Scan<'a> {
    ivs: &'a Intervals,
    env: &'a MachineEnv,
    all: Vec<Iv>,
    unhandled: BinaryHeap<Reverse<(Pos, u32)>>,
    active: [Vec<u32>; 2],
    inactive: [Vec<u32>; 2],
    /// Per register index: scratch arrays for the current decision.
    free_until: Vec<Pos>,
    next_use: Vec<Pos>,
    block_pos: Vec<Pos>,
    regs: [Vec<PReg>; 2],
    preferred: PRegSet,
    /// Per vreg: its intervals (for dynamic hints).
    by_vreg: Vec<Vec<u32>>,
}

impl<'a> Scan<'a> {
    fn ranges(&self, id: u32) -> impl Iterator<Item = (Pos, Pos)> + '_ {
        let iv = self.all[id as usize];
        self.ivs.vregs[iv.vreg as usize].ranges[iv.r_lo as usize..iv.r_hi as usize]
            .iter()
            .map(move |r| (r.from.max(iv.start), r.to.min(iv.end)))
            .filter(|(a, b)| a < b)
    }

    fn uses(&self, id: u32) -> &[intervals::UsePos] {
        let iv = self.all[id as usize];
        &self.ivs.vregs[iv.vreg as usize].uses[iv.u_lo as usize..iv.u_hi as usize]
    }

    fn covers(&self, id: u32, p: Pos) -> bool {
        let iv = self.all[id as usize];
        if p < iv.start || p >= iv.end {
            return false;
        }
        let rs = &self.ivs.vregs[iv.vreg as usize].ranges[iv.r_lo as usize..iv.r_hi as usize];
        let k = rs.partition_point(|r| r.to <= p);
        rs.get(k).is_some_and(|r| r.from <= p)
    }

    /// The first position at or after `from` covered by both.
    fn intersect(&self, a: u32, b: u32, from: Pos) -> Option<Pos> {
        let mut ra = self.ranges(a).skip_while(|r| r.1 <= from).peekable();
        let mut rb = self.ranges(b).skip_while(|r| r.1 <= from).peekable();
        while let (Some(&x), Some(&y)) = (ra.peek(), rb.peek()) {
            let lo = x.0.max(y.0).max(from);
            if lo < x.1.min(y.1) {
                return Some(lo);
            }
            if x.1 <= y.1 {
                ra.next();
            } else {
                rb.next();
            }
        }
        None
    }

    /// The first position where a fixed range of `r` not owned by the
    /// interval's vreg meets it.
    fn fixed_conflict(&self, id: u32, r: PReg) -> Option<Pos> {
        let iv = self.all[id as usize];
        let fr = &self.ivs.fixed[r.index()];
        let mut k = fr.partition_point(|x| x.to <= iv.start);
        let rs = &self.ivs.vregs[iv.vreg as usize].ranges[iv.r_lo as usize..iv.r_hi as usize];
        let mut ri = rs.partition_point(|x| x.to <= iv.start);
        while k < fr.len() && ri < rs.len() {
            let f = fr[k];
            if f.from >= iv.end {
                return None;
            }
            let (a, b) = (rs[ri].from.max(iv.start), rs[ri].to.min(iv.end));
            if a >= b {
                ri += 1;
                continue;
            }
            let lo = a.max(f.from);
            if lo < b.min(f.to) && f.owner != Some(iv.vreg) {
                return Some(lo);
            }
            if f.to <= b {
                k += 1;
            } else {
                ri += 1;
            }
        }
        None
    }

    /// The first position at or after `from` where the interval needs a register.
    fn next_reg_need(&self, id: u32, from: Pos) -> Option<Pos> {
        let us = self.uses(id);
        // need_reg >= pos - 1 for every use, so nothing before this can qualify.
        let k = us.partition_point(|u| u.pos + 1 < from);
        us[k..]
            .iter()
            .find_map(|u| u.need_reg.filter(|&n| n >= from))
    }

    fn reg_of(&self, id: u32) -> Option<PReg> {
        self.all[id as usize].alloc.and_then(|a| a.as_reg())
    }

    /// Splits `id` at the even position `p` (`start < p`). The child (the
    /// part from `p` on) is returned unallocated; `None` if nothing is left.
    fn split(&mut self, id: u32, p: Pos) -> Option<u32> {
        let iv = self.all[id as usize];
        let l = &self.ivs.vregs[iv.vreg as usize];
        let rs = &l.ranges[iv.r_lo as usize..iv.r_hi as usize];
        // First range with a part at or after p.
        let k = rs.partition_point(|r| r.to <= p);
        if k >= rs.len() || rs[k].from.max(iv.start) >= iv.end || p >= iv.end {
            return None;
        }
        let child_start = rs[k].from.max(p);
        // Parent's end: end of the last part before p.
        let parent_end = if rs[k].from < p {
            p
        } else if k == 0 {
            iv.start
        } else {
            rs[k - 1].to.min(p)
        };
        let us = &l.uses[iv.u_lo as usize..iv.u_hi as usize];
        let uk = us.partition_point(|u| u.pos < child_start) as u32;
        let child = Iv {
            start: child_start,
            r_lo: iv.r_lo + k as u32,
            u_lo: iv.u_lo + uk,
            alloc: None,
            ..iv
        };
        let parent = &mut self.all[id as usize];
        parent.end = parent_end.max(parent.start + 1);
        parent.r_hi = iv.r_lo + k as u32 + u32::from(rs[k].from < p);
        parent.u_hi = iv.u_lo + uk;
        self.all.push(child);
        let cid = (self.all.len() - 1) as u32;
        self.by_vreg[iv.vreg as usize].push(cid);
        Some(cid)
    }

    /// A good even split position in `(lo, hi]`: `hi` unless a block
    /// boundary in between is in a shallower loop (then the latest such
    /// boundary of least depth). `None` if the range has no even position.
    fn split_pos(&self, lo: Pos, hi: Pos) -> Option<Pos> {
        let hi = floor_even(hi);
        if hi <= lo {
            return None;
        }
        let mut b = self.ivs.block_of(hi);
        let hi_depth = self.ivs.loop_depth[b];
        let mut best = hi;
        let mut best_depth = hi_depth;
        // Look back over a bounded number of blocks: keeps the scan near-linear.
        for _ in 0..64 {
            let bf = self.ivs.block_from[b];
            if bf <= lo {
                break;
            }
            if self.ivs.loop_depth[b] < best_depth {
                best_depth = self.ivs.loop_depth[b];
                best = bf;
            }
            if b == 0 {
                break;
            }
            b -= 1;
        }
        Some(best)
    }

    fn push_unhandled(&mut self, id: u32) {
        self.unhandled
            .push(Reverse((self.all[id as usize].start, id)));
    }

    fn hint(&self, id: u32) -> Option<PReg> {
        let iv = self.all[id as usize];
        if let Some(h) = self.uses(id).iter().find_map(|u| u.hint) {
            return Some(h);
        }
        let (hv, hp) = self.ivs.vregs[iv.vreg as usize].hint_vreg?;
        // A dynamic hint: wherever that vreg's already allocated child is.
        self.by_vreg
            .get(hv.index())?
            .iter()
            .map(|&k| self.all[k as usize])
            .find(|c| c.start <= hp && hp < c.end)
            .and_then(|c| c.alloc)
            .and_then(|a| a.as_reg())
    }

    fn try_alloc_free(&mut self, id: u32, hint: Option<PReg>) -> bool {
        let iv = self.all[id as usize];
        let c = iv.class.index();
        for r in &self.regs[c] {
            self.free_until[r.index()] = Pos::MAX;
        }
        for &a in &self.active[c] {
            if let Some(r) = self.reg_of(a) {
                self.free_until[r.index()] = 0;
            }
        }
        for k in 0..self.inactive[c].len() {
            let a = self.inactive[c][k];
            if let Some(r) = self.reg_of(a) {
                if self.free_until[r.index()] > iv.start {
                    if let Some(x) = self.intersect(a, id, iv.start) {
                        let fu = &mut self.free_until[r.index()];
                        *fu = (*fu).min(x);
                    }
                }
            }
        }
        for k in 0..self.regs[c].len() {
            let r = self.regs[c][k];
            if self.free_until[r.index()] > iv.start {
                if let Some(x) = self.fixed_conflict(id, r) {
                    let fu = &mut self.free_until[r.index()];
                    *fu = (*fu).min(x);
                }
            }
        }
        let whole = |r: PReg| self.free_until[r.index()] >= iv.end;
        let pick = hint
            .filter(|h| self.regs[c].contains(h) && whole(*h))
            .or_else(|| self.regs[c].iter().copied().find(|&r| whole(r)));
        if let Some(r) = pick {
            self.all[id as usize].alloc = Some(Allocation::Reg(r));
            return true;
        }
        // A register free for a prefix: the one free longest.
        let Some(r) = self.regs[c]
            .iter()
            .copied()
            .max_by_key(|r| (self.free_until[r.index()], Reverse(r.index())))
        else {
            return false;
        };
        let fu = self.free_until[r.index()];
        // The prefix must not stop before a register need at its start.
        let Some(sp) = self.split_pos(iv.start, fu) else {
            return false;
        };
        if let Some(child) = self.split(id, sp) {
            self.push_unhandled(child);
        }
        self.all[id as usize].alloc = Some(Allocation::Reg(r));
        true
    }

    /// Stores `id` on the stack until its next register need, requeueing the rest.
    fn spill_until_need(&mut self, id: u32) -> Result<(), RegAllocError> {
        let iv = self.all[id as usize];
        match self.next_reg_need(id, iv.start) {
            None => {}
            Some(n) => {
                let Some(sp) = self.split_pos(iv.start, n) else {
                    return Err(RegAllocError::TooManyRegOperands {
                        inst: MInst(n / 2),
                        class: iv.class,
                    });
                };
                if let Some(child) = self.split(id, sp) {
                    self.push_unhandled(child);
                }
            }
        }
        self.all[id as usize].alloc = Some(SPILLED);
        Ok(())
    }

    fn alloc_blocked(&mut self, id: u32, hint: Option<PReg>) -> Result<(), RegAllocError> {
        let iv = self.all[id as usize];
        let c = iv.class.index();
        let Some(first_need) = self.next_reg_need(id, iv.start) else {
            self.all[id as usize].alloc = Some(SPILLED);
            return Ok(());
        };
        let e = floor_even(iv.start);
        for r in &self.regs[c] {
            self.next_use[r.index()] = Pos::MAX;
            self.block_pos[r.index()] = Pos::MAX;
        }
        for k in 0..self.active[c].len() {
            let a = self.active[c][k];
            if let Some(r) = self.reg_of(a) {
                let nu = self.next_reg_need(a, e).map_or(Pos::MAX, floor_even);
                let x = &mut self.next_use[r.index()];
                *x = (*x).min(nu);
            }
        }
        for k in 0..self.inactive[c].len() {
            let a = self.inactive[c][k];
            if let Some(r) = self.reg_of(a) {
                if self.intersect(a, id, iv.start).is_some() {
                    let nu = self.next_reg_need(a, e).map_or(Pos::MAX, floor_even);
                    let x = &mut self.next_use[r.index()];
                    *x = (*x).min(nu);
                }
            }
        }
        for k in 0..self.regs[c].len() {
            let r = self.regs[c][k];
            if let Some(x) = self.fixed_conflict(id, r) {
                self.block_pos[r.index()] = x;
                let nu = &mut self.next_use[r.index()];
                *nu = (*nu).min(floor_even(x));
            }
        }
        let score = |r: &PReg| {
            (
                self.next_use[r.index()],
                hint == Some(*r),
                Reverse(r.index()),
            )
        };
        let Some(r) = self.regs[c].iter().copied().max_by_key(score) else {
            return Err(RegAllocError::TooManyRegOperands {
                inst: MInst(iv.start / 2),
                class: iv.class,
            });
        };
        let nu = self.next_use[r.index()];
        if floor_even(first_need) >= nu {
            // Everybody needs their register before we do: spill ourselves.
            if floor_even(first_need) <= e {
                return Err(RegAllocError::TooManyRegOperands {
                    inst: MInst(iv.start / 2),
                    class: iv.class,
                });
            }
            return self.spill_until_need(id);
        }
        let bp = self.block_pos[r.index()];
        if floor_even(bp) <= iv.start {
            return Err(RegAllocError::TooManyRegOperands {
                inst: MInst(iv.start / 2),
                class: iv.class,
            });
        }
        self.all[id as usize].alloc = Some(Allocation::Reg(r));
        if bp < iv.end {
            if let Some(sp) = self.split_pos(iv.start, bp) {
                if let Some(child) = self.split(id, sp) {
                    self.push_unhandled(child);
                }
            }
        }
        // Evict the holders of r that overlap us.
        let mut k = 0;
        while k < self.active[c].len() {
            let a = self.active[c][k];
            if self.reg_of(a) == Some(r) {
                self.active[c].swap_remove(k);
                let holder = if self.all[a as usize].start < e {
                    self.split(a, e)
                } else {
                    Some(a)
                };
                if let Some(h) = holder {
                    self.spill_until_need(h)?;
                }
            } else {
                k += 1;
            }
        }
        let mut k = 0;
        while k < self.inactive[c].len() {
            let a = self.inactive[c][k];
            if self.reg_of(a) == Some(r) && self.intersect(a, id, iv.start).is_some() {
                self.inactive[c].swap_remove(k);
                let next = self.ranges(a).map(|x| x.0).find(|&s| s >= iv.start);
                if let Some(s) = next {
                    if let Some(child) = self.split(a, floor_even(s)) {
                        self.push_unhandled(child);
                    }
                }
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), RegAllocError> {
        // Every interval is processed a bounded number of times; guard
        // against a cycle of evictions all the same.
        let mut budget = 64 * (self.all.len() + 16) + 8 * self.ivs.inst_block.len();
        while let Some(Reverse((pos, id))) = self.unhandled.pop() {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| RegAllocError::InvalidInput {
                    inst: Some(MInst(pos / 2)),
                    message: "linear scan made no progress".into(),
                })?;
            let c = self.all[id as usize].class.index();
            let mut k = 0;
            while k < self.active[c].len() {
                let a = self.active[c][k];
                if self.all[a as usize].end <= pos {
                    self.active[c].swap_remove(k);
                } else if !self.covers(a, pos) {
                    self.active[c].swap_remove(k);
                    self.inactive[c].push(a);
                } else {
                    k += 1;
                }
            }
            let mut k = 0;
            while k < self.inactive[c].len() {
                let a = self.inactive[c][k];
                if self.all[a as usize].end <= pos {
                    self.inactive[c].swap_remove(k);
                } else if self.covers(a, pos) {
                    self.inactive[c].swap_remove(k);
                    self.active[c].push(a);
                } else {
                    k += 1;
                }
            }
            let hint = self.hint(id);
            if !self.try_alloc_free(id, hint) {
                self.alloc_blocked(id, hint)?;
            }
            if self.reg_of(id).is_some() {
                if self.covers(id, pos) {
                    self.active[c].push(id);
                } else {
                    self.inactive[c].push(id);
                }
            }
        }
        Ok(())
    }
}

/// Runs the scan and assigns spill slots.
pub fn run<F: RaFunction>(
    f: &F,
    env: &MachineEnv,
    ivs: &mut Intervals,
) -> Result<Assignment, RegAllocError> {
    let nv = f.num_vregs();
    let mut scan = Scan {
        ivs,
        env,
        all: Vec::with_capacity(nv * 2),
        unhandled: BinaryHeap::new(),
        active: [Vec::new(), Vec::new()],
        inactive: [Vec::new(), Vec::new()],
        free_until: vec![0; 2 * PReg::MAX_HW],
        next_use: vec![0; 2 * PReg::MAX_HW],
        block_pos: vec![0; 2 * PReg::MAX_HW],
        regs: [
            env.allocatable(RegClass::Int).collect(),
            env.allocatable(RegClass::Float).collect(),
        ],
        preferred: env.preferred_regs.iter().flatten().copied().collect(),
        by_vreg: vec![Vec::new(); nv],
    };
    for (v, l) in ivs.vregs.iter().enumerate() {
        let (Some(first), Some(last)) = (l.ranges.first(), l.ranges.last()) else {
            continue;
        };
        scan.all.push(Iv {
            vreg: v as u32,
            class: ivs.classes[v],
            start: first.from,
            end: last.to,
            r_lo: 0,
            r_hi: l.ranges.len() as u32,
            u_lo: 0,
            u_hi: l.uses.len() as u32,
            alloc: None,
        });
        let id = (scan.all.len() - 1) as u32;
        scan.by_vreg[v].push(id);
        scan.push_unhandled(id);
    }
    scan.run()?;

    // Collect children per vreg; note callee-saved registers.
    let mut children: Vec<Vec<Child>> = vec![Vec::new(); nv];
    let mut callee_saved_used = PRegSet::empty();
    for iv in &scan.all {
        let Some(alloc) = iv.alloc else {
            return Err(RegAllocError::InvalidInput {
                inst: Some(MInst(iv.start / 2)),
                message: format!("internal: interval of v{} left unallocated", iv.vreg),
            });
        };
        if let Allocation::Reg(r) = alloc {
            if !scan.preferred.contains(r) {
                callee_saved_used.add(r);
            }
        }
        children[iv.vreg as usize].push(Child {
            start: iv.start,
            end: iv.end,
            alloc,
        });
    }
    let _ = scan.env;
    // Spill slots: one per spilled vreg, live over its stack children's span;
    // a slot is reused once the previous holder's span has ended.
    let mut spans: Vec<(Pos, Pos, u32)> = Vec::new();
    for (v, cs) in children.iter_mut().enumerate() {
        cs.sort_by_key(|c| c.start);
        let mut span: Option<(Pos, Pos)> = None;
        for c in cs.iter().filter(|c| c.alloc == SPILLED) {
            span = Some(span.map_or((c.start, c.end), |(a, b)| (a.min(c.start), b.max(c.end))));
        }
        if let Some((a, b)) = span {
            spans.push((a, b, v as u32));
        }
    }
    spans.sort_unstable();
    let mut free: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut busy: BinaryHeap<Reverse<(Pos, u32, usize)>> = BinaryHeap::new();
    let mut num_slots = 0u32;
    let mut by_class = [0usize; 2];
    for (a, b, v) in spans {
        while let Some(&Reverse((end, slot, c))) = busy.peek() {
            if end > a {
                break;
            }
            busy.pop();
            free[c].push(slot);
        }
        let c = ivs.classes[v as usize].index();
        let slot = free[c].pop().unwrap_or_else(|| {
            num_slots += 1;
            by_class[c] += 1;
            num_slots - 1
        });
        busy.push(Reverse((b, slot, c)));
        for ch in children[v as usize]
            .iter_mut()
            .filter(|ch| ch.alloc == SPILLED)
        {
            ch.alloc = Allocation::Stack(SpillSlot(slot));
        }
    }
    Ok(Assignment {
        children,
        num_spillslots: num_slots as usize,
        spillslots_by_class: by_class,
        callee_saved_used,
    })
}
