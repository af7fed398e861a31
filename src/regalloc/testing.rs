//! Test helpers: a toy [`RaFunction`] written by hand through a builder, a
//! toy machine, and a generator of random valid programs (deterministic
//! xorshift), used by the unit tests, `tests/regalloc.rs` and the backends'
//! fuzzing. Nothing here is used by the allocator itself.

use super::*;

/// One toy instruction.
#[derive(Clone, Debug)]
pub struct ToyInst {
    pub ops: Vec<Operand>,
    pub clobbers: PRegSet,
    pub kind: ToyKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToyKind {
    Normal,
    /// Branch to these blocks with these arguments.
    Branch(Vec<(MBlock, Vec<VReg>)>),
    Ret,
}

#[derive(Clone, Debug, Default)]
struct ToyBlock {
    insts: Vec<ToyInst>,
    params: Vec<VReg>,
}

/// A finished toy function.
#[derive(Clone, Debug)]
pub struct ToyFunc {
    pub insts: Vec<ToyInst>,
    ranges: Vec<InstRange>,
    succs: Vec<Vec<MBlock>>,
    preds: Vec<Vec<MBlock>>,
    params: Vec<Vec<VReg>>,
    num_vregs: usize,
}

impl RaFunction for ToyFunc {
    fn num_insts(&self) -> usize {
        self.insts.len()
    }
    fn num_blocks(&self) -> usize {
        self.ranges.len()
    }
    fn num_vregs(&self) -> usize {
        self.num_vregs
    }
    fn entry_block(&self) -> MBlock {
        MBlock(0)
    }
    fn block_insts(&self, block: MBlock) -> InstRange {
        self.ranges[block.index()]
    }
    fn block_succs(&self, block: MBlock) -> &[MBlock] {
        &self.succs[block.index()]
    }
    fn block_preds(&self, block: MBlock) -> &[MBlock] {
        &self.preds[block.index()]
    }
    fn block_params(&self, block: MBlock) -> &[VReg] {
        &self.params[block.index()]
    }
    fn is_ret(&self, inst: MInst) -> bool {
        self.insts[inst.index()].kind == ToyKind::Ret
    }
    fn is_branch(&self, inst: MInst) -> bool {
        matches!(self.insts[inst.index()].kind, ToyKind::Branch(_))
    }
    fn branch_blockparams(&self, _block: MBlock, inst: MInst, succ_idx: usize) -> &[VReg] {
        match &self.insts[inst.index()].kind {
            ToyKind::Branch(t) => &t[succ_idx].1,
            _ => &[],
        }
    }
    fn inst_operands(&self, inst: MInst) -> &[Operand] {
        &self.insts[inst.index()].ops
    }
    fn inst_clobbers(&self, inst: MInst) -> PRegSet {
        self.insts[inst.index()].clobbers
    }
}

/// Builds a [`ToyFunc`]: blocks are laid out in creation order.
#[derive(Default)]
pub struct ToyBuilder {
    blocks: Vec<ToyBlock>,
    cur: usize,
    num_vregs: usize,
}

impl ToyBuilder {
    /// A builder with the entry block created and current.
    pub fn new() -> Self {
        ToyBuilder {
            blocks: vec![ToyBlock::default()],
            cur: 0,
            num_vregs: 0,
        }
    }
    pub fn vreg(&mut self, class: RegClass) -> VReg {
        self.num_vregs += 1;
        VReg::new(self.num_vregs - 1, class)
    }
    pub fn int(&mut self) -> VReg {
        self.vreg(RegClass::Int)
    }
    pub fn float(&mut self) -> VReg {
        self.vreg(RegClass::Float)
    }
    /// A new block (placed after the existing ones) with parameters.
    pub fn block(&mut self, params: &[VReg]) -> MBlock {
        self.blocks.push(ToyBlock {
            insts: Vec::new(),
            params: params.to_vec(),
        });
        MBlock::new(self.blocks.len() - 1)
    }
    pub fn switch_to(&mut self, b: MBlock) {
        self.cur = b.index();
    }
    pub fn current(&self) -> MBlock {
        MBlock::new(self.cur)
    }
    pub fn inst(&mut self, ops: &[Operand]) {
        self.push(ops, PRegSet::empty(), ToyKind::Normal);
    }
    pub fn call(&mut self, ops: &[Operand], clobbers: PRegSet) {
        self.push(ops, clobbers, ToyKind::Normal);
    }
    pub fn jump(&mut self, to: MBlock, args: &[VReg]) {
        self.push(
            &[],
            PRegSet::empty(),
            ToyKind::Branch(vec![(to, args.to_vec())]),
        );
    }
    pub fn branch(&mut self, ops: &[Operand], targets: &[(MBlock, &[VReg])]) {
        let t = targets.iter().map(|(b, a)| (*b, a.to_vec())).collect();
        self.push(ops, PRegSet::empty(), ToyKind::Branch(t));
    }
    pub fn ret(&mut self, ops: &[Operand]) {
        self.push(ops, PRegSet::empty(), ToyKind::Ret);
    }
    pub fn push(&mut self, ops: &[Operand], clobbers: PRegSet, kind: ToyKind) {
        self.blocks[self.cur].insts.push(ToyInst {
            ops: ops.to_vec(),
            clobbers,
            kind,
        });
    }
    pub fn finish(self) -> ToyFunc {
        let nb = self.blocks.len();
        let mut insts = Vec::new();
        let mut ranges = Vec::new();
        let mut succs = vec![Vec::new(); nb];
        let mut preds = vec![Vec::new(); nb];
        let mut params = Vec::new();
        for (b, blk) in self.blocks.into_iter().enumerate() {
            let first = insts.len();
            if let Some(ToyInst {
                kind: ToyKind::Branch(t),
                ..
            }) = blk.insts.last()
            {
                for (s, _) in t {
                    succs[b].push(*s);
                    if s.index() < nb {
                        preds[s.index()].push(MBlock::new(b));
                    }
                }
            }
            insts.extend(blk.insts);
            ranges.push(InstRange::new(first, insts.len()));
            params.push(blk.params);
        }
        ToyFunc {
            insts,
            ranges,
            succs,
            preds,
            params,
            num_vregs: self.num_vregs,
        }
    }
}

/// A toy machine: `ni` caller-saved and `nc` callee-saved integer registers
/// (`r0..`), the same for floats (`f0..`), scratch `r63` / `f63`.
pub fn toy_env(ni: usize, nc: usize, nf: usize, nfc: usize) -> MachineEnv {
    let regs = |class, from: usize, n: usize| {
        (from..from + n)
            .map(|k| PReg::new(k as u8, class))
            .collect::<Vec<_>>()
    };
    MachineEnv {
        preferred_regs: [regs(RegClass::Int, 0, ni), regs(RegClass::Float, 0, nf)],
        non_preferred_regs: [regs(RegClass::Int, ni, nc), regs(RegClass::Float, nf, nfc)],
        scratch: [PReg::new(63, RegClass::Int), PReg::new(63, RegClass::Float)],
    }
}

/// The caller-saved registers of `env` (what a call clobbers).
pub fn caller_saved(env: &MachineEnv) -> PRegSet {
    env.preferred_regs.iter().flatten().copied().collect()
}

/// A xorshift64* generator: deterministic, no dependencies.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Generates random, valid-by-construction programs: nested diamonds and
/// loops (critical edges split), operands of every constraint kind, calls.
pub struct RandomProgram<'e> {
    rng: XorShift,
    env: &'e MachineEnv,
    b: ToyBuilder,
    budget: usize,
}

impl<'e> RandomProgram<'e> {
    /// A program of roughly `size` instructions for `env` (which needs at
    /// least 3 allocatable registers per class, 1 of them callee-saved).
    pub fn generate(seed: u64, size: usize, env: &'e MachineEnv) -> ToyFunc {
        let mut g = RandomProgram {
            rng: XorShift::new(seed),
            env,
            b: ToyBuilder::new(),
            budget: size,
        };
        let mut avail = Vec::new();
        // Arguments arrive in fixed registers.
        let mut ops = Vec::new();
        for c in RegClass::ALL {
            for r in env.preferred_regs[c.index()].iter().take(2) {
                let v = g.b.vreg(c);
                ops.push(Operand::fixed_def(v, *r));
                avail.push(v);
            }
        }
        g.b.inst(&ops);
        g.body(&mut avail, 0);
        let ints: Vec<VReg> = avail
            .iter()
            .copied()
            .filter(|v| v.class() == RegClass::Int)
            .collect();
        let r0 = env.preferred_regs[0][0];
        let v = ints[g.rng.below(ints.len())];
        g.b.ret(&[Operand::fixed_use(v, r0)]);
        g.b.finish()
    }

    fn pick(&mut self, avail: &[VReg], class: RegClass) -> VReg {
        let c: Vec<VReg> = avail
            .iter()
            .copied()
            .filter(|v| v.class() == class)
            .collect();
        // Prefer recent values (more realistic), sometimes old ones (long ranges).
        if self.rng.chance(70) && c.len() > 4 {
            c[c.len() - 1 - self.rng.below(4)]
        } else {
            c[self.rng.below(c.len())]
        }
    }

    fn body(&mut self, avail: &mut Vec<VReg>, depth: usize) {
        while self.budget > 0 {
            self.budget -= 1;
            match self.rng.below(20) {
                0 if depth < 4 => self.diamond(avail, depth),
                1 if depth < 4 => self.lop(avail, depth),
                2 if depth > 0 && self.rng.chance(30) => return,
                _ => self.straight(avail),
            }
        }
    }

    fn straight(&mut self, avail: &mut Vec<VReg>) {
        let class = if self.rng.chance(70) {
            RegClass::Int
        } else {
            RegClass::Float
        };
        let regs: Vec<PReg> = self.env.allocatable(class).collect();
        let k = self.rng.below(9);
        let a = self.pick(avail, class);
        let bv = self.pick(avail, class);
        let d = self.b.vreg(class);
        match k {
            0 => self.b.inst(&[
                Operand::reg_use(a),
                Operand::any_use(bv),
                Operand::reg_def(d),
            ]),
            1 => self.b.inst(&[
                Operand::reg_use(a),
                Operand::reg_use(bv),
                Operand::reuse_def(d, 0),
            ]),
            2 => {
                let (r1, r2) = (
                    regs[self.rng.below(regs.len())],
                    regs[self.rng.below(regs.len())],
                );
                let t = self.b.vreg(class);
                // div-like: fixed input, fixed outputs, a Late use and a temp.
                if r1 != r2 {
                    self.b.inst(&[
                        Operand::fixed_use(a, r1),
                        Operand::reg_use_late(bv),
                        Operand::fixed_def(d, r1),
                        Operand::fixed_def(t, r2),
                    ]);
                    avail.push(t);
                } else {
                    self.b.inst(&[
                        Operand::fixed_use(a, r1),
                        Operand::reg_temp(t),
                        Operand::any_def(d),
                    ]);
                }
            }
            3 => {
                // A call: arguments and result in fixed caller-saved registers.
                let pref = &self.env.preferred_regs[class.index()];
                let mut ops = vec![Operand::fixed_use(a, pref[0])];
                if pref.len() > 1 {
                    ops.push(Operand::fixed_use(bv, pref[1]));
                }
                ops.push(Operand::fixed_def(d, pref[0]));
                self.b.call(&ops, caller_saved(self.env));
            }
            4 => self.b.inst(&[Operand::any_use(a), Operand::any_def(d)]),
            5 => self.b.inst(&[
                Operand::reg_use(a),
                Operand::reg_use(a),
                Operand::reuse_def(d, 1),
            ]),
            _ => self.b.inst(&[
                Operand::reg_use(a),
                Operand::reg_use(bv),
                Operand::reg_def(d),
            ]),
        }
        avail.push(d);
    }

    fn cond(&mut self, avail: &[VReg]) -> Vec<Operand> {
        vec![Operand::reg_use(self.pick(avail, RegClass::Int))]
    }

    fn args_for(&mut self, avail: &[VReg], params: &[VReg]) -> Vec<VReg> {
        params.iter().map(|p| self.pick(avail, p.class())).collect()
    }

    fn diamond(&mut self, avail: &mut Vec<VReg>, depth: usize) {
        let n = self.rng.below(4);
        let params: Vec<VReg> = (0..n)
            .map(|_| {
                let c = if self.rng.chance(70) {
                    RegClass::Int
                } else {
                    RegClass::Float
                };
                self.b.vreg(c)
            })
            .collect();
        let t = self.b.block(&[]);
        let e = self.b.block(&[]);
        let cond = self.cond(avail);
        self.b.branch(&cond, &[(t, &[]), (e, &[])]);
        // The join is laid out after both arms (as a backend's block order
        // does), so the arms' jumps to it are added once it exists.
        let mut ends = Vec::new();
        for arm in [t, e] {
            self.b.switch_to(arm);
            let mut inner = avail.clone();
            self.body(&mut inner, depth + 1);
            let args = self.args_for(&inner, &params);
            ends.push((self.b.current(), args));
        }
        let j = self.b.block(&params);
        for (end, args) in ends {
            self.b.switch_to(end);
            self.b.jump(j, &args);
        }
        self.b.switch_to(j);
        avail.extend(params);
    }

    fn lop(&mut self, avail: &mut Vec<VReg>, depth: usize) {
        let n = 1 + self.rng.below(3);
        let params: Vec<VReg> = (0..n)
            .map(|_| {
                let c = if self.rng.chance(70) {
                    RegClass::Int
                } else {
                    RegClass::Float
                };
                self.b.vreg(c)
            })
            .collect();
        let h = self.b.block(&params);
        let init = self.args_for(avail, &params);
        self.b.jump(h, &init);
        self.b.switch_to(h);
        let mut inner = avail.clone();
        inner.extend(params.iter().copied());
        self.body(&mut inner, depth + 1);
        let latch = self.b.block(&[]);
        let exit = self.b.block(&[]);
        let cond = self.cond(&inner);
        self.b.branch(&cond, &[(latch, &[]), (exit, &[])]);
        self.b.switch_to(latch);
        // Swap the loop-carried values now and then: parallel-move cycles.
        let mut back = self.args_for(&inner, &params);
        if self.rng.chance(50) {
            back = params.clone();
            back.rotate_left(1);
            for k in 0..back.len() {
                if back[k].class() != params[k].class() {
                    back[k] = params[k];
                }
            }
        }
        self.b.jump(h, &back);
        self.b.switch_to(exit);
        avail.extend(params);
    }
}
