//! Instructions left uncompiled: a pure instruction (no effect but its
//! result, [`super::F_PURE`]) whose result no compiled instruction uses gets the
//! home [`DEAD`], no home from the allocator and no code (see
//! [`Fast::drop_dead`]). Cranelift's lowering skips such instructions at
//! every optimization level too. In the generated benchmark functions
//! they are a third of the instructions (a fifth unused, the rest used
//! only by those), and each used to take a register for one instruction:
//! a steal, so a spill of a live value for the rest of its range, when
//! registers were short. Output is unchanged: such an instruction has no
//! effect to observe.

use super::{Fast, DEAD, NONE, R_PURE};
use crate::ir::{Function, InstKind, Operand};
use crate::lower::analysis::Decisions;

impl Fast {
    /// After the sweep and compare fusion: each [`super::F_PURE`] instruction
    /// whose result nothing compiled uses gets the home [`DEAD`] and no
    /// result in its record, so allocation never gives it a home, and is
    /// left out of [`Fast::live`], the instructions emission visits.
    ///
    /// Backward over the order, with use counts copied from `uses`: a
    /// dead instruction's uses are taken off its operands' counts, so an
    /// instruction used only by dead ones is dead too when the walk
    /// reaches it (an operand is defined before its use in the order: a
    /// definition dominates its uses, and block arguments are used by
    /// terminators, which are never pure). The operands' ranges still
    /// reach the dead uses (the sweep computed them): longer than needed,
    /// never too short.
    ///
    /// A live instruction takes no branch of its own: its entry in
    /// `live` is written whatever it is (a dead one's is overwritten by
    /// the next); only a dead one (at random, a third of the instructions
    /// of the generated benchmark functions) branches, to lose its
    /// operands' uses.
    pub(super) fn drop_dead(
        &mut self,
        func: &Function,
        dec: &Decisions,
        uses: &[u32],
    ) -> Option<()> {
        let sink = uses.len();
        // Most functions have no unused result (no dead instruction at
        // all): found by a short scan, and then nothing is built (emission
        // visits each block's own list).
        let unused = |rec: &super::Rec| {
            rec.a & R_PURE != 0 && uses.get(rec.r as usize).is_some_and(|&u| u == 0)
        };
        // (The records may run past the function's: see `Fast::analyze`.)
        let total = self.last.last().map_or(0, |&l| l as usize + 1);
        self.all_live = !self.recs.get(..total)?.iter().any(unused);
        if self.all_live {
            return Some(());
        }
        let Fast {
            recs,
            home,
            live,
            live_at,
            first,
            counts,
            ..
        } = self;
        counts.clear();
        counts.extend_from_slice(uses);
        // A stand-in past the values, never 0: what an instruction without
        // a result (`NONE`) and a literal operand read and write.
        counts.push(u32::MAX / 2);
        // One entry more than instructions: `live` is filled from its end,
        // and a dead instruction's write goes one entry below the live
        // ones (overwritten by the next live one, or left unused at the
        // front).
        live.clear();
        live.resize(total + 1, crate::ir::Inst::new(0));
        live_at.clear();
        live_at.resize(dec.order.len() + 1, 0);
        let home = home.get_mut(..=sink)?;
        // The first entry of the blocks after the current one.
        let mut top = total + 1;
        live_at[dec.order.len()] = top as u32;
        for (k, &b) in dec.order.iter().enumerate().rev() {
            let insts = &func.blocks[b.index()].insts[..];
            let at = *first.get(k)? as usize;
            let recs = recs.get_mut(at..at + insts.len())?;
            let mut pos = top - 1;
            for j in (0..insts.len()).rev() {
                // SAFETY: `recs` and `insts` have `insts.len()` entries.
                let (rec, i) = unsafe { (recs.get_unchecked_mut(j), *insts.get_unchecked(j)) };
                let r = rec.r as usize;
                // (`NONE`, no result, reads the stand-in: never dead.)
                // SAFETY: `counts` has `sink + 1` entries.
                let u = unsafe { *counts.get_unchecked(r.min(sink)) };
                let dead = (u == 0) & (rec.a & R_PURE != 0);
                // SAFETY (both arms): `pos` starts at `total`, below
                // `live.len()`, and goes down once per live instruction, of
                // which there are at most `total`: it is never below 0.
                // (The dead instruction's write goes to the entry the next
                // live one takes: no branch on deadness for it.)
                unsafe { *live.get_unchecked_mut(pos) = i };
                pos -= !dead as usize;
                if dead {
                    rec.r = NONE;
                    // (`dead` implies `u == 0`, which only a value below
                    // `sink` has: in `home`.)
                    if let Some(h) = home.get_mut(r) {
                        *h = DEAD;
                    }
                    // Its operands lose a use (a literal: the stand-in's;
                    // no branch on the kind, random in straight-line code).
                    let mut lose = |op: Operand| {
                        let (is_value, index) = match op {
                            Operand::Value(v) => (true, v.index()),
                            Operand::Const(_) => (false, sink),
                        };
                        let vi = std::hint::select_unpredictable(is_value, index, sink);
                        // (A verified module's counts never go below 0; a
                        // wrapped count only keeps a value alive.)
                        if let Some(c) = counts.get_mut(vi) {
                            *c = c.wrapping_sub(1);
                        }
                    };
                    match &func.insts.get(i.index())?.kind {
                        InstKind::Binary { args } => {
                            lose(args[0]);
                            lose(args[1]);
                        }
                        _ => func.for_each_operand(i, lose),
                    }
                }
            }
            top = pos + 1;
            live_at[k] = top as u32;
        }
        Some(())
    }
}
