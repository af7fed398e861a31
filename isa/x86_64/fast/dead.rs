//! Instructions left uncompiled: a pure instruction (no effect but its
//! result, [`super::F_PURE`]) whose result no compiled instruction uses gets the
//! home [`DEAD`], no number, no record and no code (see
//! [`Fast::mark_live`]). Cranelift's lowering skips such instructions at
//! every optimization level too. In the generated benchmark functions
//! they are a third of the instructions (a fifth unused, the rest used
//! only by those), and each used to take a register for one instruction:
//! a steal, so a spill of a live value for the rest of its range, when
//! registers were short. Output is unchanged: such an instruction has no
//! effect to observe.
//!
//! The decision comes first, before the sweep numbers the instructions
//! (a backward pass over the block order), so every later pass sees only
//! the instructions compiled: the sweep neither records a dead
//! instruction nor counts its uses (its operands' ranges end at their
//! last compiled use, not at a dead one), and allocation walks no record
//! of one. (Session 31 decided it after the sweep, from the sweep's use
//! counts: dead instructions still had numbers and records, lengthened
//! their operands' ranges, and cost allocation a mispredicted test each;
//! the generated 10k function, with 3,546 dead instructions of 10,000,
//! compiled in ~640 µs against ~480 µs for the same function with them
//! removed from its text.)

use super::{slot, Fast, Op, DEAD, FACTS, F_BIN, F_PURE_ANY, F_UNARY, LIT, NONE};
use crate::ir::{Function, InstKind, Operand};
use crate::lower::analysis::Decisions;

impl Fast {
    /// Before the sweep: [`Fast::live`], the instructions to compile in
    /// the block order, with block position `k`'s from `live_at[k]` to
    /// `live_at[k + 1]` (the list is filled from its end: the entries
    /// before `live_at[0]` are unused), beside each its [`Op`] in
    /// [`Fast::ops`], and the home [`DEAD`] for the result of each
    /// instruction left out: a [`super::F_PURE`] one whose result no
    /// instruction in the list uses.
    ///
    /// Backward over the order, counting in `uses` (zeros, then the
    /// stand-in past the values) each value's uses by compiled
    /// instructions, the counts [`Decisions::uses`] holds for a compile: a
    /// definition comes before its uses in the order (a definition
    /// dominates its uses, and block arguments are used by terminators,
    /// which are never pure), so every use of a result has been seen when
    /// the walk reaches its definition, and an instruction used only by
    /// dead ones is dead too. `None`: an instruction's result is not a
    /// value of the function (unsupported; an operand that is not one is
    /// left in its `Op` for the sweep to reject).
    ///
    /// Each [`Op`] is what the sweep would read of the `InstData` (its
    /// facts, result and, for binary and unary instructions, operands):
    /// read here anyway, so the sweep's common path touches no `InstData`
    /// (gen10k: sweep -411k Ir, this walk +277k, per 3 compiles).
    ///
    /// A live instruction takes no branch of its own (a third of the
    /// generated benchmark functions' instructions are dead, at random):
    /// its entries in `live` and `ops` are written whatever it is (a dead
    /// one's are overwritten by the next), its operands' counts grow by
    /// its liveness (1, or 0 for a dead one: no change), and its result's
    /// home is written with a select. (Not inlined: one call per
    /// function, and its own entry in profiles.)
    #[inline(never)]
    pub(super) fn mark_live(
        &mut self,
        func: &Function,
        dec: &Decisions,
        uses: &mut [u32],
    ) -> Option<()> {
        let nv = func.values.len();
        let total: usize = dec
            .order
            .iter()
            .map(|b| func.blocks[b.index()].insts.len())
            .sum();
        let Fast {
            home,
            live,
            live_at,
            ops,
            ..
        } = self;
        // Per value, and the stand-in `nv` past them (a literal operand's,
        // and the result of an instruction without one, counted from 1, so
        // never dead): 0 before, from `compute_order`.
        let uses = uses.get_mut(..=nv)?;
        debug_assert!(uses[..nv].iter().all(|&u| u == 0) && uses[nv] != 0);
        // (`Fast::analyze` has just set every home to `NONE`: the walk
        // writes each result's home without reading it.)
        let home = home.get_mut(..=nv)?;
        // One entry more than instructions: a dead instruction's write goes
        // one entry below the live ones (overwritten by the next live one,
        // or left unused at the front). The entries past `total` are
        // stale.
        // (Every entry read is written first: only growth is filled, and
        // the lists never shrink, as `Fast::recs`.)
        if live.len() <= total {
            live.resize(total + 1, crate::ir::Inst::new(0));
        }
        if ops.len() <= total {
            ops.resize(total + 1, Op::NEW);
        }
        let (live_w, ops) = (&mut live[..=total], &mut ops[..=total]);
        live_at.clear();
        live_at.resize(dec.order.len() + 1, 0);
        // The first entry of the blocks after the current one.
        let mut top = total + 1;
        live_at[dec.order.len()] = top as u32;
        for (k, &b) in dec.order.iter().enumerate().rev() {
            let insts = &func.blocks[b.index()].insts[..];
            let mut pos = top - 1;
            for &i in insts.iter().rev() {
                let d = func.insts.get(i.index())?;
                // (A result that is not a value of the function:
                // unsupported, as the sweep would find.)
                let r = match d.result {
                    Some(r) if r.index() < nv => r.index(),
                    Some(_) => return None,
                    None => nv,
                };
                let facts = FACTS[d.opcode as usize][slot(d.ty)];
                // SAFETY: `r <= nv < uses.len()`.
                let count = unsafe { *uses.get_unchecked(r) };
                let dead = (count == 0) & (facts & F_PURE_ANY != 0);
                let mark = (!dead) as u32;
                // Counts a use of `op`; returns its index for the `Op`.
                let mut use_op = |op: Operand| {
                    // (A literal counts on the stand-in: chosen without a
                    // branch, the kinds are random in straight-line code.)
                    let (is_value, index) = match op {
                        Operand::Value(v) => (true, v.0),
                        Operand::Const(_) => (false, 0),
                    };
                    let raw = std::hint::select_unpredictable(is_value, index, LIT);
                    let vi = (raw as usize).min(nv);
                    // SAFETY: `vi <= nv < uses.len()`.
                    unsafe { *uses.get_unchecked_mut(vi) += mark };
                    raw
                };
                // (Chosen by the facts, as in `Fast::sweep`: one compare
                // of the kind's tag then.)
                let mut a = [LIT; 2];
                if facts & F_BIN != 0 {
                    let InstKind::Binary { args } = &d.kind else {
                        return None;
                    };
                    a = [use_op(args[0]), use_op(args[1])];
                } else if facts & F_UNARY != 0 {
                    let InstKind::Unary { arg } = &d.kind else {
                        return None;
                    };
                    a[0] = use_op(*arg);
                } else {
                    func.for_each_operand(i, |op| {
                        use_op(op);
                    });
                }
                // SAFETY: `pos` starts at `total`, the last entry of
                // `live_w` and `ops`, and goes down once per live
                // instruction, of which there are at most `total`: it is
                // never below 0.
                unsafe {
                    *live_w.get_unchecked_mut(pos) = i;
                    *ops.get_unchecked_mut(pos) = Op {
                        a,
                        r: r as u32,
                        facts,
                    };
                }
                pos -= !dead as usize;
                // (Every home is `NONE` before: see above.)
                // SAFETY: `r <= nv < home.len()`.
                unsafe {
                    *home.get_unchecked_mut(r) = std::hint::select_unpredictable(dead, DEAD, NONE)
                };
            }
            top = pos + 1;
            live_at[k] = top as u32;
        }
        self.all_live = top == 1;
        Some(())
    }
}
