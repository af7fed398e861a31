//! A symbolic checker for allocations, in the spirit of regalloc2's.
//!
//! It runs the allocated program abstractly: the state maps every location
//! (physical register or spill slot) to the set of vregs whose current value
//! it holds. Moves copy sets; a def of `v` removes `v` everywhere (a loop
//! re-defines it, so old copies are stale) and puts `{v}` in its location;
//! clobbers empty their registers; crossing an edge renames, so every
//! location holding a block argument also holds the successor's parameter.
//! At a join the states of the predecessors are intersected, iterated to a
//! fixed point over the CFG (sets only shrink, so it terminates).
//!
//! After the fixed point one more pass checks every instruction: each use
//! reads a location holding its vreg; constraints hold (fixed register,
//! register, reuse = same location as the input); an Early def shares no
//! location with a use, a Late use none with a def; no operand sits in a
//! scratch register; no edit moves stack to stack. The checker trusts
//! nothing from the allocator but its [`Output`].

use super::*;

/// A failed check: which instruction, operand and vreg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerError {
    pub inst: MInst,
    /// The operand index, when the problem is about one operand.
    pub operand: Option<usize>,
    pub vreg: Option<VReg>,
    pub message: String,
}

impl fmt::Display for CheckerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inst {}", self.inst.0)?;
        if let Some(j) = self.operand {
            write!(f, ", operand {j}")?;
        }
        if let Some(v) = self.vreg {
            write!(f, " ({v})")?;
        }
        write!(f, ": {}", self.message)
    }
}

type State = Vec<Vec<u32>>;

fn err(inst: MInst, operand: Option<usize>, vreg: Option<VReg>, message: String) -> CheckerError {
    CheckerError {
        inst,
        operand,
        vreg,
        message,
    }
}

struct Checker<'a, F> {
    f: &'a F,
    env: &'a MachineEnv,
    out: &'a Output,
    nlocs: usize,
    /// Per vreg: whether it was ever put into a location of any state (by
    /// a definition or as a block parameter on an edge). A vreg never put
    /// anywhere is in no set, so its first definition need not search
    /// every location for stale copies (most definitions are first ones:
    /// without this, each one cost a search of every location).
    seen: std::cell::RefCell<Vec<bool>>,
}

impl<F: RaFunction> Checker<'_, F> {
    fn loc(
        &self,
        a: Allocation,
        inst: MInst,
        operand: Option<usize>,
    ) -> Result<usize, CheckerError> {
        match a {
            Allocation::Reg(r) => Ok(r.index()),
            Allocation::Stack(s) if s.index() < self.out.num_spillslots => {
                Ok(2 * PReg::MAX_HW + s.index())
            }
            Allocation::Stack(s) => Err(err(
                inst,
                operand,
                None,
                format!("spill slot {} out of range", s.0),
            )),
        }
    }

    fn apply_edits(&self, st: &mut State, point: ProgPoint) -> Result<(), CheckerError> {
        for (_, e) in self.out.edits_at(point) {
            let Edit::Move { from, to, class } = *e;
            if from.is_stack() && to.is_stack() {
                return Err(err(
                    point.inst,
                    None,
                    None,
                    format!("stack-to-stack move {from} -> {to}"),
                ));
            }
            for a in [from, to] {
                if a.as_reg().is_some_and(|r| r.class() != class) {
                    return Err(err(
                        point.inst,
                        None,
                        None,
                        format!("move of class {class:?} touches {a}"),
                    ));
                }
            }
            let (fl, tl) = (
                self.loc(from, point.inst, None)?,
                self.loc(to, point.inst, None)?,
            );
            st[tl] = st[fl].clone();
        }
        Ok(())
    }

    /// Marks `v` as seen; returns whether it was seen before.
    fn see(&self, v: u32) -> bool {
        let mut seen = self.seen.borrow_mut();
        let i = v as usize;
        if i >= seen.len() {
            seen.resize(i + 1, false);
        }
        std::mem::replace(&mut seen[i], true)
    }

    fn define(&self, st: &mut State, v: VReg, l: usize) {
        let v = v.index() as u32;
        if self.see(v) {
            for s in st.iter_mut() {
                if let Ok(k) = s.binary_search(&v) {
                    s.remove(k);
                }
            }
        }
        st[l].clear();
        st[l].push(v);
    }

    /// Runs `block` from `st`; with `check`, validates every operand.
    fn run_block(&self, b: usize, st: &mut State, check: bool) -> Result<(), CheckerError> {
        let blk = MBlock::new(b);
        for i in self.f.block_insts(blk).iter() {
            self.apply_edits(st, ProgPoint::before(i))?;
            let ops = self.f.inst_operands(i);
            let allocs = self.out.inst_allocs(i);
            if allocs.len() != ops.len() {
                return Err(err(
                    i,
                    None,
                    None,
                    "operand count differs from allocation count".into(),
                ));
            }
            let mut locs = Vec::with_capacity(ops.len());
            for (j, (op, &a)) in ops.iter().zip(allocs).enumerate() {
                locs.push(self.loc(a, i, Some(j))?);
                if !check {
                    continue;
                }
                let e = |m: String| Err(err(i, Some(j), Some(op.vreg), m));
                if let Some(r) = a.as_reg() {
                    if r.class() != op.vreg.class() {
                        return e(format!("{a} has the wrong class"));
                    }
                    if r == self.env.scratch[r.class().index()] {
                        return e(format!("operand in the scratch register {r}"));
                    }
                }
                match op.constraint {
                    OperandConstraint::Any => {}
                    OperandConstraint::Reg if !a.is_reg() => {
                        return e(format!("needs a register, got {a}"))
                    }
                    OperandConstraint::Reg => {}
                    OperandConstraint::FixedReg(r) if a != Allocation::Reg(r) => {
                        return e(format!("needs {r}, got {a}"))
                    }
                    OperandConstraint::FixedReg(_) => {}
                    OperandConstraint::Reuse(k) => {
                        if !a.is_reg() || allocs.get(k as usize) != Some(&a) {
                            return e(format!("reuse of operand {k}: {a} is not its register"));
                        }
                    }
                }
            }
            let is = |j: usize, kind: OperandKind, pos: OperandPos| {
                let o = &ops[j];
                let pos_eff = if matches!(o.constraint, OperandConstraint::Reuse(_)) {
                    OperandPos::Late
                } else {
                    o.pos
                };
                o.kind == kind && pos_eff == pos
            };
            let n = ops.len();
            if check {
                for j in 0..n {
                    if is(j, OperandKind::Use, OperandPos::Early)
                        && !st[locs[j]].contains(&(ops[j].vreg.index() as u32))
                    {
                        return Err(err(
                            i,
                            Some(j),
                            Some(ops[j].vreg),
                            format!("{} does not hold the vreg", allocs[j]),
                        ));
                    }
                }
                for j in 0..n {
                    for k in 0..n {
                        let clash = (is(j, OperandKind::Def, OperandPos::Early)
                            && ops[k].kind == OperandKind::Use)
                            || (is(j, OperandKind::Use, OperandPos::Late)
                                && ops[k].kind == OperandKind::Def)
                            || (j < k
                                && ops[j].kind == OperandKind::Def
                                && ops[k].kind == OperandKind::Def);
                        if clash && locs[j] == locs[k] {
                            return Err(err(
                                i,
                                Some(j),
                                Some(ops[j].vreg),
                                format!("shares {} with operand {k}", allocs[j]),
                            ));
                        }
                    }
                }
            }
            for j in 0..n {
                if is(j, OperandKind::Def, OperandPos::Early) {
                    self.define(st, ops[j].vreg, locs[j]);
                }
            }
            if check {
                for j in 0..n {
                    if is(j, OperandKind::Use, OperandPos::Late)
                        && !st[locs[j]].contains(&(ops[j].vreg.index() as u32))
                    {
                        return Err(err(
                            i,
                            Some(j),
                            Some(ops[j].vreg),
                            format!("{} does not hold the vreg (late)", allocs[j]),
                        ));
                    }
                }
            }
            for r in self.f.inst_clobbers(i).iter() {
                st[r.index()].clear();
            }
            for j in 0..n {
                if is(j, OperandKind::Def, OperandPos::Late) {
                    self.define(st, ops[j].vreg, locs[j]);
                }
            }
            self.apply_edits(st, ProgPoint::after(i))?;
        }
        Ok(())
    }

    /// The state entering successor `k` of `b` from `st` (parameter renaming).
    fn across_edge(&self, b: usize, k: usize, st: &State) -> State {
        let blk = MBlock::new(b);
        let succ = self.f.block_succs(blk)[k];
        let args = self
            .f
            .branch_blockparams(blk, self.f.block_insts(blk).last(), k);
        let params = self.f.block_params(succ);
        let mut out = st.clone();
        for p in params {
            let p = p.index() as u32;
            if !self.see(p) {
                continue;
            }
            for s in out.iter_mut() {
                if let Ok(x) = s.binary_search(&p) {
                    s.remove(x);
                }
            }
        }
        for (a, p) in args.iter().zip(params) {
            let (a, p) = (a.index() as u32, p.index() as u32);
            for (l, s) in st.iter().enumerate() {
                if s.binary_search(&a).is_ok() {
                    if let Err(x) = out[l].binary_search(&p) {
                        out[l].insert(x, p);
                    }
                }
            }
        }
        out
    }
}

fn meet(into: &mut State, other: &State) -> bool {
    let mut changed = false;
    for (a, b) in into.iter_mut().zip(other) {
        let before = a.len();
        a.retain(|v| b.binary_search(v).is_ok());
        changed |= a.len() != before;
    }
    changed
}

/// Whether [`check`] is cheap enough to run on every allocation of a debug
/// build: its states hold a set per location per block and a definition
/// clears its vreg from every location, so its cost grows with blocks ×
/// locations and instructions × locations (the pathological shapes of the
/// regression tests would take minutes). Tests and fuzzing call [`check`]
/// directly.
pub fn affordable<F: RaFunction>(func: &F, output: &Output) -> bool {
    let locs = 2 * PReg::MAX_HW + output.num_spillslots;
    func.num_blocks().saturating_mul(locs) <= 200_000
        && func.num_insts().saturating_mul(locs) <= 2_000_000
}

/// Validates `output` as an allocation of `func` on `env`.
pub fn check<F: RaFunction>(
    func: &F,
    env: &MachineEnv,
    output: &Output,
) -> Result<(), CheckerError> {
    let ni = func.num_insts();
    let nb = func.num_blocks();
    let offsets_ok = output.inst_alloc_offsets.windows(2).all(|w| w[0] <= w[1])
        && output
            .inst_alloc_offsets
            .last()
            .is_none_or(|&o| o as usize <= output.allocs.len());
    if output.inst_alloc_offsets.len() != ni || !offsets_ok {
        return Err(err(
            MInst(0),
            None,
            None,
            "allocation table has the wrong length".into(),
        ));
    }
    for w in output.edits.windows(2) {
        if w[0].0 > w[1].0 {
            return Err(err(w[1].0.inst, None, None, "edits are not sorted".into()));
        }
    }
    let cx = Checker {
        f: func,
        env,
        out: output,
        nlocs: 2 * PReg::MAX_HW + output.num_spillslots,
        seen: std::cell::RefCell::new(vec![false; func.num_vregs()]),
    };
    let mut entry: Vec<Option<State>> = vec![None; nb];
    entry[0] = Some(vec![Vec::new(); cx.nlocs]);
    let mut dirty = vec![false; nb];
    dirty[0] = true;
    let mut rounds = 0;
    while dirty.iter().any(|&d| d) {
        rounds += 1;
        if rounds > 4 * nb + 8 {
            return Err(err(
                MInst(0),
                None,
                None,
                "checker dataflow did not converge".into(),
            ));
        }
        for b in 0..nb {
            if !std::mem::replace(&mut dirty[b], false) {
                continue;
            }
            let Some(mut st) = entry[b].clone() else {
                continue;
            };
            cx.run_block(b, &mut st, false)?;
            for k in 0..func.block_succs(MBlock::new(b)).len() {
                let s = func.block_succs(MBlock::new(b))[k].index();
                let next = cx.across_edge(b, k, &st);
                match &mut entry[s] {
                    Some(cur) => {
                        if meet(cur, &next) {
                            dirty[s] = true;
                        }
                    }
                    slot @ None => {
                        *slot = Some(next);
                        dirty[s] = true;
                    }
                }
            }
        }
    }
    for (b, e) in entry.iter().enumerate() {
        if let Some(st) = e {
            let mut st = st.clone();
            cx.run_block(b, &mut st, true)?;
        }
    }
    Ok(())
}
