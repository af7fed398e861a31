//! Per-function lowering decisions shared by every backend, in one pass
//! over the instructions and buffers reused from function to function.
//!
//! - **structure checks**: every index lowering follows is in range and
//!   every block ends in a terminator, so lowering never indexes out of
//!   bounds even on unverified input;
//! - **block order**: reverse postorder of the reachable blocks with every
//!   loop contiguous, header first ([`crate::analysis::LoopInfo::block_order`]),
//!   and per loop where it ends in that order (the register allocator's
//!   liveness rests on it). A function without back edges (most small
//!   ones) skips the dominator and loop analyses: its reverse postorder is
//!   the order; so does one whose reverse postorder already has each loop
//!   contiguous, loops inside loops and early exits (`ret`, `trap`) inside
//!   loops included (checked in one pass over the edges);
//! - **compare fusion**: a compare whose only use is the `br` ending its
//!   own block is emitted as a flag-setting compare + conditional branch at
//!   the branch, its result never materialized;
//! - **address folding**: `add.i64 x, C` (C a 32-bit literal) used as the
//!   pointer of loads/stores folds into the access's addressing mode; the
//!   `add` itself is skipped when all its uses fold (with the access's own
//!   offset, the combined displacement must fit 32 bits).

use crate::error::{Error, Result};
use crate::ir::{
    Block, Callee, Function, InstData, InstKind, Module, Opcode, Operand, Type, Value,
};

const NONE: u32 = u32::MAX;

/// The ISA-independent decisions for one function (reused buffers: see
/// [`Decisions::compute`]).
#[derive(Default)]
pub struct Decisions {
    /// Emission order of the reachable blocks; the entry first.
    pub order: Vec<Block>,
    /// Per position in `order`: if that block heads a loop, the position
    /// one past the loop's last block; else 0. The loop's blocks follow
    /// its header; blocks without successors (`ret`, `trap`) that are not
    /// in the loop may sit among them (see `Decisions::rpo_loops`): a
    /// loop's span holds its blocks and nothing else that can reach them.
    pub loop_end: Vec<u32>,
    /// Per instruction: a compare fused into its block's `br`.
    pub fused: Vec<bool>,
    /// Per instruction: nothing to emit (all uses of its result folded).
    pub skip: Vec<bool>,
    /// Per value: the `x` of `add.i64 x, c` foldable into an address
    /// (`u32::MAX` if none), and `c`.
    fold_base: Vec<u32>,
    fold_off: Vec<i64>,
    /// Per value: its number of uses (operands, block arguments
    /// included). A generator that counts them in its own sweep (see
    /// [`Decisions::compute_order`]) adds to it.
    pub uses: Vec<u32>,
    folded_uses: Vec<u32>,
    /// The current block's compares `(instruction, result)`, and the
    /// compares tested by their own block's `br` (fused if used once).
    compares: Vec<(u32, u32)>,
    fuse_candidates: Vec<(u32, u32)>,
    // Reverse postorder scratch.
    stack: Vec<(u32, u32, u32, u32)>,
    rpo_index: Vec<u32>,
    /// The successors of the reached blocks (after `block_order`: their
    /// positions), and per position the range of its block's.
    succ: Vec<u32>,
    ranges: Vec<(u32, u32)>,
    /// Set by `block_order`: a reached block is empty, does not end in a
    /// terminator, or names a block that does not exist (the order is
    /// then incomplete; only [`Decisions::compute_order`] can meet one).
    malformed: bool,
    /// The loop analyses of functions with back edges.
    loops: LoopBufs,
}

/// What laying out loops needs (see `Decisions::contiguous_loops`), kept
/// from function to function.
#[derive(Default)]
struct LoopBufs {
    cfg: crate::analysis::Cfg,
    dom: crate::analysis::DomTree,
    info: crate::analysis::LoopInfo,
    /// Per container (the function, then each loop): where its items start
    /// in `items` (one more entry: the end).
    start: Vec<u32>,
    items: Vec<Item>,
    /// Fill cursors per container, then the last position per loop.
    fill: Vec<u32>,
    /// Open containers and their next item.
    stack: Vec<(u32, u32)>,
    /// Per position: the header position of the innermost loop found
    /// there by `Decisions::rpo_loops` (`NONE`: none), and per header
    /// position its parent's.
    hdr: Vec<u32>,
    up: Vec<u32>,
    /// Per header position: an exit into its parent loop seen.
    exits: Vec<bool>,
}

/// What [`Decisions::compute`]'s sweep has seen so far.
#[derive(Default)]
struct Seen {
    /// An `add.i64 x, c` that could fold into an address.
    candidates: bool,
    /// A load or store with a computed pointer (else no address folds:
    /// the folding pass is skipped).
    mem: bool,
}

/// A block, or a loop laid out whole at this place of its container.
#[derive(Clone, Copy)]
enum Item {
    Block(Block),
    Loop(u32),
}

/// A compile error about `func`.
pub fn err(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: {what}", func.name))
}

/// Whether `op` is a literal whose bits, as type `ty`, fit a sign-extended
/// 32-bit value (an x86 immediate; the range of folded address offsets).
pub fn imm32(op: Operand, ty: Type) -> Option<i32> {
    match op {
        Operand::Const(c) => {
            let bits = c.bits(ty);
            match ty {
                Type::I32 => Some(bits as u32 as i32),
                _ => i32::try_from(bits as i64).ok(),
            }
        }
        Operand::Value(_) => None,
    }
}

/// Whether `op` is an integer or float comparison.
pub fn is_compare(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Feq | Fne | Flt | Fle | Fgt | Fge
    )
}

/// Successor number `k` of terminator `d` of `func` (in
/// [`Function::for_each_successor`] order).
pub fn successor(func: &Function, d: &InstData, k: usize) -> Option<Block> {
    match (&d.kind, k) {
        (InstKind::Jmp { dest }, 0) => Some(dest.block),
        (InstKind::Br { then_dest, .. }, 0) => Some(then_dest.block),
        (InstKind::Br { else_dest, .. }, 1) => Some(else_dest.block),
        (InstKind::Switch { default, .. }, 0) => Some(*default),
        (InstKind::Switch { cases, .. }, k) => func.cases(*cases).get(k - 1).map(|c| c.block),
        _ => None,
    }
}

/// The number of successors of terminator `d` (duplicates counted).
pub fn num_successors(func: &Function, d: &InstData) -> usize {
    match &d.kind {
        InstKind::Jmp { .. } => 1,
        InstKind::Br { .. } => 2,
        InstKind::Switch { cases, .. } => func.cases(*cases).len() + 1,
        _ => 0,
    }
}

fn reset<T: Copy>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

impl Decisions {
    /// Per value: `Some((x, c))` when it is `add.i64 x, c` and foldable
    /// into an address.
    pub fn addr_fold(&self, v: Value) -> Option<(Value, i64)> {
        match self.fold_base.get(v.index()) {
            Some(&x) if x != NONE => Some((Value(x), self.fold_off[v.index()])),
            _ => None,
        }
    }

    /// The position of `b` in `order` (`None`: unreachable).
    pub fn position(&self, b: Block) -> Option<usize> {
        match self.rpo_index.get(b.index()) {
            Some(&p) if p != NONE => Some(p as usize),
            _ => None,
        }
    }

    /// Whether `inst` emits nothing (fused into its branch, or folded).
    pub fn omitted(&self, inst: usize) -> bool {
        self.fused[inst] || self.skip[inst]
    }

    /// Checks `func`'s structure, then makes the shared decisions.
    pub fn compute(&mut self, module: &Module, func: &Function) -> Result<()> {
        let nv = func.values.len();
        let ni = func.insts.len();
        reset(&mut self.uses, nv, 0);
        reset(&mut self.fused, ni, false);
        reset(&mut self.skip, ni, false);
        reset(&mut self.fold_base, nv, NONE);
        // Read only where `fold_base` is set, and then written first.
        self.fold_off.resize(nv, 0);
        // (An error leaves the last block's compares behind.)
        self.compares.clear();
        self.fuse_candidates.clear();
        let mut seen = Seen::default();
        for b in 0..func.blocks.len() {
            self.block_structure::<true>(module, func, Block(b as u32), &mut seen)?;
        }
        self.fuse();
        if seen.candidates && seen.mem {
            self.fold_addresses(func);
        }
        self.block_order(func);
        Ok(())
    }

    /// For a generator that makes the per-instruction decisions in its own
    /// sweep over the blocks in order (x86-64's single-pass one: one
    /// stream over the instructions instead of two): checks every block's
    /// terminator, fills `order`, `loop_end` and the positions, and clears
    /// `uses` and `fused`. The generator then counts each operand of the
    /// blocks in `order` in `uses`, checks their indices, symbols and
    /// targets as [`Decisions::compute`] does, and calls
    /// [`Decisions::other_blocks`] and [`Decisions::fuse`]; `fused` is
    /// then what `compute` decides. `skip` and the address folds are not
    /// computed (stale): `compute` must run before anything reads them.
    /// `false`: a reachable block is empty or does not end in a valid
    /// terminator (`compute` reports it). The terminators are checked as
    /// the search for the order reaches their blocks (one visit of each,
    /// not a pass of its own: at 200,000 blocks that pass's loads of the
    /// terminators missed the caches); the unreachable blocks'
    /// in [`Decisions::other_blocks`].
    pub fn compute_order(&mut self, func: &Function) -> bool {
        // Room for one more entry (the generator's sink for literal
        // operands; it truncates the list back).
        self.uses.clear();
        self.uses.reserve(func.values.len() + 1);
        self.uses.resize(func.values.len(), 0);
        reset(&mut self.fused, func.insts.len(), false);
        self.compares.clear();
        self.fuse_candidates.clear();
        self.block_order(func);
        !self.malformed
    }

    /// After [`Decisions::compute_order`]: the structure checks and use
    /// counts of the blocks not in `order` (unreachable), and their fusion
    /// candidates.
    pub fn other_blocks(&mut self, module: &Module, func: &Function) -> Result<()> {
        let mut seen = Seen::default();
        for b in 0..func.blocks.len() {
            if self.rpo_index[b] == NONE {
                self.block_structure::<false>(module, func, Block(b as u32), &mut seen)?;
            }
        }
        Ok(())
    }

    /// Fuses the compare candidates (of [`Decisions::compute`]'s sweep or
    /// [`Decisions::other_blocks`]) used once, by their own block's `br`.
    pub fn fuse(&mut self) {
        for &(i, r) in &self.fuse_candidates {
            if self.uses[r as usize] == 1 {
                self.fused[i as usize] = true;
            }
        }
    }

    /// Block `b`'s structure checks, use counts and fusion candidates, and
    /// with `FOLDS` its address fold candidates.
    #[inline]
    fn block_structure<const FOLDS: bool>(
        &mut self,
        module: &Module,
        func: &Function,
        b: Block,
        seen: &mut Seen,
    ) -> Result<()> {
        let nv = func.values.len();
        let nb = func.blocks.len();
        let b = &func.blocks[b.index()];
        let last = *b.insts.last().ok_or_else(|| err(func, "empty block"))?;
        // Structure, use counts, fold candidates: one match per
        // instruction over its kind.
        for &i in &b.insts {
            let d = func
                .insts
                .get(i.index())
                .ok_or_else(|| err(func, "bad instruction"))?;
            let uses = &mut self.uses;
            let (mut bad, mut bad_use) = (false, false);
            let mut count = |op: Operand| {
                if let Operand::Value(v) = op {
                    match uses.get_mut(v.index()) {
                        Some(u) => *u += 1,
                        None => bad_use = true,
                    }
                }
            };
            let succ_bad = |s: Block| s.index() >= nb;
            match &d.kind {
                InstKind::Unary { arg } => count(*arg),
                InstKind::Binary { args } => {
                    count(args[0]);
                    count(args[1]);
                }
                InstKind::Select { args } => args.iter().for_each(|&a| count(a)),
                InstKind::Load { ptr, .. } => {
                    seen.mem |= matches!(ptr, Operand::Value(_));
                    count(*ptr);
                }
                InstKind::Store { args, .. } => {
                    seen.mem |= matches!(args[1], Operand::Value(_));
                    count(args[0]);
                    count(args[1]);
                }
                InstKind::Alloca { .. } | InstKind::Trap => {}
                InstKind::Addr { sym } => bad |= sym.index() >= module.symbols.len(),
                InstKind::Call { callee, args } => {
                    match callee {
                        Callee::Indirect(op) => count(*op),
                        Callee::Direct(sym) => bad |= sym.index() >= module.symbols.len(),
                    }
                    func.args(*args).iter().for_each(|&a| count(a));
                }
                InstKind::Ret { value } => value.iter().for_each(|&a| count(a)),
                InstKind::Jmp { dest } => {
                    func.args(dest.args).iter().for_each(|&a| count(a));
                    bad |= succ_bad(dest.block);
                }
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                } => {
                    count(*cond);
                    func.args(then_dest.args).iter().for_each(|&a| count(a));
                    func.args(else_dest.args).iter().for_each(|&a| count(a));
                    bad |= succ_bad(then_dest.block) || succ_bad(else_dest.block);
                }
                InstKind::Switch {
                    value,
                    default,
                    cases,
                } => {
                    count(*value);
                    bad |= succ_bad(*default);
                    bad |= func.cases(*cases).iter().any(|c| succ_bad(c.block));
                }
            }
            if bad || bad_use || d.result.is_some_and(|r| r.index() >= nv) {
                return Err(err(func, "bad operand, block or symbol"));
            }
            if is_compare(d.opcode) {
                if let Some(r) = d.result {
                    self.compares.push((i.0, r.0));
                }
            }
            if let (true, Opcode::Add, Some(Type::I64), InstKind::Binary { args }, Some(r)) =
                (FOLDS, d.opcode, d.ty, &d.kind, d.result)
            {
                if let (Operand::Value(x), Some(c)) = (args[0], imm32(args[1], Type::I64)) {
                    self.fold_base[r.index()] = x.0;
                    self.fold_off[r.index()] = c as i64;
                    seen.candidates = true;
                }
            }
        }
        let term = &func.insts[last.index()];
        if !term.opcode.is_terminator() {
            return Err(err(func, "block without terminator"));
        }
        if let InstKind::Br {
            cond: Operand::Value(c),
            ..
        } = term.kind
        {
            for &(i, r) in &self.compares {
                if r == c.0 {
                    self.fuse_candidates.push((i, r));
                }
            }
        }
        self.compares.clear();
        Ok(())
    }

    /// Skips the `add`s all of whose uses fold into addresses (some value
    /// has a fold candidate).
    fn fold_addresses(&mut self, func: &Function) {
        let nv = func.values.len();
        reset(&mut self.folded_uses, nv, 0);
        // Uses that fold (a pointer operand of a load/store whose combined
        // displacement fits 32 bits).
        for d in &func.insts {
            let (ptr, off) = match &d.kind {
                InstKind::Load { ptr, offset } => (*ptr, *offset),
                InstKind::Store { args, offset } => (args[1], *offset),
                _ => continue,
            };
            if let Operand::Value(p) = ptr {
                let p = p.index();
                if p < nv
                    && self.fold_base[p] != NONE
                    && i32::try_from(self.fold_off[p] + off).is_ok()
                {
                    self.folded_uses[p] += 1;
                }
            }
        }
        for (i, d) in func.insts.iter().enumerate() {
            if let Some(r) = d.result {
                let r = r.index();
                if self.fold_base[r] != NONE && self.folded_uses[r] == self.uses[r] {
                    self.skip[i] = true;
                }
            }
        }
    }

    /// Fills `order` and `loop_end` (the function's structure is checked).
    ///
    /// The depth-first search visits a block's successors last to first,
    /// so the reverse postorder keeps them in their written order: a
    /// branch falls through into its first target (`then` before `else`,
    /// a `switch`'s default and cases in order), as the source reads.
    fn block_order(&mut self, func: &Function) {
        self.block_order_in(func, true);
    }

    /// [`Decisions::block_order`]; with `fast` false, a function with back
    /// edges always takes the general loop layout (tests compare the two).
    /// `true`: the layout came from [`Decisions::rpo_loops`].
    #[inline(always)]
    fn block_order_in(&mut self, func: &Function, fast: bool) -> bool {
        let nb = func.blocks.len();
        self.order.clear();
        // (Also the visited marks of the search: 0 once reached.)
        reset(&mut self.rpo_index, nb, NONE);
        // Each reached block's successors, listed once when it is reached
        // (every later pass reads the list, not the terminators).
        let succ = &mut self.succ;
        let mut malformed = false;
        // (In `Function::for_each_successor`'s order; inline here.) A
        // malformed block (see `malformed`) is given no successors.
        let visit = |b: u32, succ: &mut Vec<u32>, malformed: &mut bool| {
            let lo = succ.len() as u32;
            let term = (func.blocks[b as usize].insts.last())
                .and_then(|t| func.insts.get(t.index()))
                .filter(|d| d.opcode.is_terminator());
            let Some(d) = term else {
                *malformed = true;
                return (lo, lo);
            };
            match &d.kind {
                InstKind::Jmp { dest } => succ.push(dest.block.0),
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => succ.extend_from_slice(&[then_dest.block.0, else_dest.block.0]),
                InstKind::Switch { default, cases, .. } => {
                    succ.push(default.0);
                    succ.extend(func.cases(*cases).iter().map(|c| c.block.0));
                }
                _ => {}
            }
            if succ[lo as usize..].iter().any(|&s| s as usize >= nb) {
                succ.truncate(lo as usize);
                *malformed = true;
            }
            (lo, succ.len() as u32)
        };
        succ.clear();
        self.ranges.clear();
        // Postorder by an explicit stack of (block, its successors' range
        // start, the next one to visit plus one, range end).
        self.stack.clear();
        if nb > 0 {
            self.rpo_index[0] = 0;
            let (lo, hi) = visit(0, succ, &mut malformed);
            self.stack.push((0, lo, hi, hi));
        }
        while let Some(top) = self.stack.last_mut() {
            let (b, lo, next, hi) = *top;
            if next == lo {
                self.order.push(Block(b));
                self.ranges.push((lo, hi));
                self.stack.pop();
                continue;
            }
            top.2 = next - 1;
            let s = succ[next as usize - 1];
            if self.rpo_index[s as usize] == NONE {
                self.rpo_index[s as usize] = 0;
                let (lo, hi) = visit(s, succ, &mut malformed);
                self.stack.push((s, lo, hi, hi));
            }
        }
        self.malformed = malformed;
        if malformed {
            return false;
        }
        self.order.reverse();
        self.ranges.reverse();
        for (k, b) in self.order.iter().enumerate() {
            self.rpo_index[b.index()] = k as u32;
        }
        // The successors as positions; any edge to a block not after its
        // source means loops to lay out. Per such target `h`, one past its
        // last source: the spans of `Decisions::rpo_loops`.
        let np = self.order.len();
        reset(&mut self.loop_end, np, 0);
        let mut retreating = false;
        for (k, &(lo, hi)) in self.ranges.iter().enumerate() {
            for s in &mut succ[lo as usize..hi as usize] {
                let p = self.rpo_index[*s as usize];
                *s = p;
                if p as usize <= k {
                    retreating = true;
                    let e = &mut self.loop_end[p as usize];
                    *e = (*e).max(k as u32 + 1);
                }
            }
        }
        if !retreating {
            return false;
        }
        // (Without leaves inside spans first: the common case pays no
        // check per edge for them.)
        if fast && (self.rpo_loops::<false>() || self.rpo_loops::<true>()) {
            return true;
        }
        self.loop_end.fill(0);
        self.contiguous_loops(func);
        false
    }

    /// The common case of [`Decisions::contiguous_loops`] without its
    /// analyses: when the reverse postorder already lays out every loop
    /// contiguously (loops inside loops included), returns `true`: `order`
    /// stays, and `loop_end` (the spans below, as `block_order` left it) is
    /// the loops'; else `false`.
    ///
    /// A *leaf* is a block without successors (it ends in `ret` or
    /// `trap`). Each retreating edge's target `h` heads a span of the
    /// order, from `h` to its last retreating edge's source. The spans are
    /// taken for the natural loops when, checked in one pass over the
    /// edges:
    /// 1. they nest (two spans are disjoint or one contains the other);
    /// 2. single entry: an edge into a span from outside it goes to its
    ///    header;
    /// 3. every block but a leaf has a successor in its innermost span
    ///    that is not a leaf;
    /// 4. every span inside another has an edge from one of its blocks
    ///    whose innermost span it is to a block of its parent span outside
    ///    it that is not a leaf (an exit into the parent).
    ///
    /// Leaves first: a leaf is in no natural loop (it reaches no latch),
    /// and deleting the leaves changes neither the natural loops nor the
    /// depth-first search of the other blocks (a leaf is finished as soon
    /// as it is reached), so the order of the other blocks is the reverse
    /// postorder of the graph without leaves, with the same spans, and
    /// conditions 1-4 hold there (2 is checked for the edges into leaves
    /// too). In that graph: by 2, `h` dominates its span, so the
    /// retreating edges are back edges (and every back edge is
    /// retreating). Every block of a
    /// span `S` reaches one of its latches inside `S` without passing `h`,
    /// by induction from the span's end: a block whose innermost span is
    /// `S` has a successor in `S` (3) that is `h` (it is a latch) or a
    /// later block (a retreating edge to a block of `S` after `h` would
    /// make that block head a span containing it inside `S`), which is in
    /// `S` directly or heads a child span (2); a block of a child span `C`
    /// reaches every block of `C` inside `C` (through its header, which
    /// reaches them all: every path from the entry enters `C` there), among
    /// them the source of `C`'s exit (4), whose target is `h` or a later
    /// block of `S`. And no block outside `S` reaches a latch without
    /// passing `h` (2). So the spans hold exactly the natural loops' blocks,
    /// nested as the spans are, plus leaves placed among them.
    ///
    /// A leaf inside a span (an early `ret` or a `trap` in a loop, as in
    /// an interpreter's dispatch loop) is kept there; the general layout
    /// would move it after the loop. What rests on the spans stays sound:
    /// a range extended to a span's end covers at least what the natural
    /// loop's would (a value live at a block and used in a leaf `l` before
    /// it is live on a path that leaves the loop only at `l`'s
    /// predecessor, which lies before `l` in the same spans); and a span
    /// whose other blocks are left only from its header is still left only
    /// from there (a leaf leaves the function, not the loop, and is
    /// reached from earlier blocks only).
    ///
    /// Condition 4 counts only exits from a span's own blocks (not from
    /// blocks of its inner spans), and so may send a few reducible
    /// functions to the general layout; never the other way.
    ///
    /// With `LEAVES` false, a leaf inside a span fails condition 3 (the
    /// cheaper check, tried first).
    fn rpo_loops<const LEAVES: bool>(&mut self) -> bool {
        let np = self.order.len();
        // Nested spans (1): each position's innermost span header, each
        // header's parent header, by a walk with the innermost open span.
        let loop_end = &self.loop_end;
        let LoopBufs { hdr, up, exits, .. } = &mut self.loops;
        reset(hdr, np, NONE);
        reset(up, np, NONE);
        reset(exits, np, false);
        // Spans inside another still without an exit into it (4).
        let mut need = 0u32;
        let mut top = NONE;
        for k in 0..np {
            while top != NONE && loop_end[top as usize] as usize <= k {
                top = up[top as usize];
            }
            let end = loop_end[k];
            if end != 0 {
                if top != NONE {
                    if end > loop_end[top as usize] {
                        // Spans that overlap without nesting.
                        return false;
                    }
                    need += 1;
                }
                up[k] = top;
                top = k as u32;
            }
            hdr[k] = top;
        }
        // `k` in the span headed by `h` (`NONE`: none).
        let within =
            |h: u32, k: usize| h != NONE && h as usize <= k && k < loop_end[h as usize] as usize;
        for (k, &(lo, hi)) in self.ranges.iter().enumerate() {
            let mine = hdr[k];
            let parent = if mine == NONE {
                NONE
            } else {
                up[mine as usize]
            };
            // (A leaf has no successors: 3 does not apply to it.)
            let (mut inside, mut entry, mut exit) =
                (mine == NONE || (LEAVES && lo == hi), false, false);
            for &p in &self.succ[lo as usize..hi as usize] {
                let p = p as usize;
                let in_mine = within(mine, p);
                // (3 and 4 count only edges to blocks that are not leaves.)
                let counts = !LEAVES || self.ranges[p].0 != self.ranges[p].1;
                inside |= in_mine & counts;
                // The innermost span containing `p` other than its own.
                let theirs = hdr[p];
                let outer = if theirs as usize == p { up[p] } else { theirs };
                entry |= outer != NONE && !within(outer, k);
                exit |= counts && !in_mine && within(parent, p);
            }
            if entry || !inside {
                return false;
            }
            if exit && !exits[mine as usize] {
                exits[mine as usize] = true;
                need -= 1;
            }
        }
        need == 0
    }

    /// Reorders `order` so that every natural loop is contiguous, header
    /// first (a loop is laid out whole where its header falls in the order
    /// of its parent), and fills `loop_end`. The analyses and lists are
    /// this value's buffers, refilled.
    fn contiguous_loops(&mut self, func: &Function) {
        let l = &mut self.loops;
        l.cfg.compute(func);
        l.dom.compute(&l.cfg);
        l.info.compute(&l.cfg, &l.dom);
        let loops = &l.info;
        let nl = loops.loops().len();
        // Container 0 is the function; container l + 1 is loop l. Its
        // items, in order: blocks (`Item::Block`) and inner loops laid out
        // there (`Item::Loop`), by a stable counting sort of the order.
        let container_of = |b: Block| -> (usize, Option<usize>) {
            let c = |l: Option<crate::analysis::LoopId>| l.map_or(0, |l| l.0 as usize + 1);
            match loops.innermost_loop(b) {
                Some(id) if loops.get(id).header == b => {
                    (c(loops.get(id).parent), Some(id.0 as usize + 1))
                }
                id => (c(id), None),
            }
        };
        l.start.clear();
        l.start.resize(nl + 2, 0);
        for &b in &self.order {
            let (c, inner) = container_of(b);
            l.start[c + 1] += 1;
            if let Some(inner) = inner {
                l.start[inner + 1] += 1;
            }
        }
        for c in 0..=nl {
            l.start[c + 1] += l.start[c];
        }
        l.fill.clear();
        l.fill.extend_from_slice(&l.start[..nl + 1]);
        l.items.clear();
        l.items
            .resize(l.start[nl + 1] as usize, Item::Block(Block(0)));
        for &b in &self.order {
            match container_of(b) {
                (c, Some(inner)) => {
                    l.items[l.fill[c] as usize] = Item::Loop(inner as u32 - 1);
                    l.fill[c] += 1;
                    l.items[l.fill[inner] as usize] = Item::Block(b);
                    l.fill[inner] += 1;
                }
                (c, None) => {
                    l.items[l.fill[c] as usize] = Item::Block(b);
                    l.fill[c] += 1;
                }
            }
        }
        self.order.clear();
        // Per open container: the next item to lay out.
        l.stack.clear();
        l.stack.push((0, l.start[0]));
        while let Some(top) = l.stack.last_mut() {
            let (c, i) = *top;
            if i == l.start[c as usize + 1] {
                l.stack.pop();
                continue;
            }
            top.1 += 1;
            match l.items[i as usize] {
                Item::Block(b) => self.order.push(b),
                Item::Loop(id) => l.stack.push((id + 1, l.start[id as usize + 1])),
            }
        }
        for (k, b) in self.order.iter().enumerate() {
            self.rpo_index[b.index()] = k as u32;
        }
        // Per loop: the last position of its blocks (inner loops come
        // first in `loops()`, so children are folded into parents in one
        // pass).
        let last = &mut l.fill;
        last.clear();
        last.resize(nl, 0);
        for (k, &b) in self.order.iter().enumerate() {
            if let Some(id) = loops.innermost_loop(b) {
                last[id.0 as usize] = last[id.0 as usize].max(k as u32);
            }
        }
        for i in 0..nl {
            if let Some(p) = loops.loops()[i].parent {
                last[p.0 as usize] = last[p.0 as usize].max(last[i]);
            }
        }
        for (i, data) in loops.loops().iter().enumerate() {
            let h = self.rpo_index[data.header.index()];
            if h != NONE {
                self.loop_end[h as usize] = last[i] + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function over `n` blocks whose terminators are random `jmp`s,
    /// `br`s, `switch`es and `ret`s (from the seed; never to the entry).
    fn random_function(seed: u64) -> Function {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let n = 2 + next(12);
        let mut text = String::from("func @f(%c: i32) -> i32 {\n");
        for b in 0..n {
            text += &format!("b{b}:\n");
            let kind = next(8);
            let (d, a, c) = (1 + next(n - 1), 1 + next(n - 1), 1 + next(n - 1));
            match kind {
                0 => text += "    ret %c\n",
                1 | 2 => text += &format!("    jmp b{d}\n"),
                3 => text += &format!("    switch.i32 %c, b{d}, 1: b{a}, 2: b{c}\n"),
                _ => text += &format!("    br %c, b{d}, b{a}\n"),
            }
        }
        text += "}\n";
        let mut m = crate::ir::parse::parse_module("t.kir", &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        m.funcs.swap_remove(0)
    }

    /// Blocks by index: no successors (`ret`), from the last order run.
    fn leaves(d: &Decisions, nb: usize) -> Vec<bool> {
        let mut leaf = vec![false; nb];
        for (k, b) in d.order.iter().enumerate() {
            leaf[b.index()] = d.ranges[k].0 == d.ranges[k].1;
        }
        leaf
    }

    /// Per loop header (block index): the blocks other than leaves in its
    /// span of `order`, sorted.
    fn spans(order: &[Block], loop_end: &[u32], leaf: &[bool]) -> Vec<(u32, Vec<u32>)> {
        let mut out = Vec::new();
        for (h, &e) in loop_end.iter().enumerate() {
            if e != 0 {
                let mut blocks: Vec<u32> = order[h..e as usize]
                    .iter()
                    .filter(|b| !leaf[b.index()])
                    .map(|b| b.0)
                    .collect();
                blocks.sort_unstable();
                out.push((order[h].0, blocks));
            }
        }
        out.sort();
        out
    }

    /// Wherever the fast path ([`Decisions::rpo_loops`]) applies, it finds
    /// the general layout's loops: the same headers with the same blocks,
    /// leaves aside, and the same order of the other blocks; a leaf it
    /// keeps inside a span is in no loop. It applies to a good share of
    /// random graphs, loops inside loops and leaves inside loops among
    /// them.
    #[test]
    fn rpo_loops_agrees_with_the_general_layout() {
        let (mut fast_taken, mut looped, mut nested, mut leafy) = (0, 0, 0, 0);
        for seed in 0..3000 {
            let func = random_function(seed);
            let nb = func.blocks.len();
            let mut d = Decisions::default();
            let fast = d.block_order_in(&func, true);
            let leaf = leaves(&d, nb);
            let (order, loop_end) = (d.order.clone(), d.loop_end.clone());
            d.block_order_in(&func, false);
            if !fast {
                assert_eq!(order, d.order, "order, seed {seed}");
                assert_eq!(loop_end, d.loop_end, "loop ends, seed {seed}");
            }
            let others = |o: &[Block]| -> Vec<Block> {
                o.iter().copied().filter(|b| !leaf[b.index()]).collect()
            };
            assert_eq!(others(&order), others(&d.order), "order, seed {seed}");
            assert_eq!(
                spans(&order, &loop_end, &leaf),
                spans(&d.order, &d.loop_end, &leaf),
                "loops, seed {seed}"
            );
            fast_taken += fast as u32;
            looped += d.loop_end.iter().any(|&e| e != 0) as u32;
            // A loop header inside another loop.
            let inner = (0..loop_end.len())
                .any(|h| loop_end[h] != 0 && (0..h).any(|o| loop_end[o] as usize > h));
            nested += (fast && inner) as u32;
            // A leaf inside a span.
            let inside = (0..loop_end.len()).any(|h| {
                (h..loop_end[h] as usize).any(|k| loop_end[h] != 0 && leaf[order[k].index()])
            });
            leafy += (fast && inside) as u32;
        }
        eprintln!("fast {fast_taken} of {looped} with loops, {nested} nested, {leafy} with leaves");
        assert!(
            fast_taken > 300 && looped > fast_taken + 300 && nested > 50 && leafy > 25,
            "{fast_taken} of {looped}, {nested} nested, {leafy} with leaves"
        );
    }

    /// A single loop and loops inside loops take the fast path; an inner
    /// loop with no way back to its outer loop's latch (not inside the
    /// outer natural loop), and loops the reverse postorder splits, take
    /// the general layout.
    #[test]
    fn rpo_loops_cases() {
        let func = |text: &str| {
            let mut m = crate::ir::parse::parse_module("t.kir", text).unwrap();
            m.funcs.swap_remove(0)
        };
        let single = func(
            "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    jmp b2\nb2:\n    br %c, b1, b3\nb3:\n    ret %c\n}\n",
        );
        let nested = func(
            "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    jmp b2\nb2:\n    br %c, b2, b3\nb3:\n    br %c, b1, b4\nb4:\n    ret %c\n}\n",
        );
        // b2-b3 loops forever inside b1's span: b1's loop is {b1, b4}.
        let stuck = func(
            "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    br %c, b2, b4\nb2:\n    jmp b3\nb3:\n    jmp b2\nb4:\n    br %c, b1, b5\nb5:\n    ret %c\n}\n",
        );
        let mut d = Decisions::default();
        assert!(d.block_order_in(&single, true));
        assert_eq!(d.loop_end, [0, 3, 0, 0]);
        assert!(d.block_order_in(&nested, true));
        assert_eq!(d.loop_end, [0, 4, 3, 0, 0]);
        let fast = d.block_order_in(&stuck, true);
        let (order, loop_end) = (d.order.clone(), d.loop_end.clone());
        assert!(!fast);
        d.block_order_in(&stuck, false);
        assert_eq!((order, loop_end), (d.order.clone(), d.loop_end.clone()));
        assert_ne!(
            d.order.iter().map(|b| b.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        // An early `ret` inside the loop stays there (b2 is a leaf in b1's
        // span); a block whose only successor inside the span is a leaf
        // (b2 of `leaves_only`) is not in the loop: general layout.
        let early = func(
            "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    br %c, b2, b3\nb2:\n    ret %c\nb3:\n    br %c, b1, b4\nb4:\n    ret %c\n}\n",
        );
        assert!(d.block_order_in(&early, true));
        assert_eq!(d.order, [Block(0), Block(1), Block(2), Block(3), Block(4)]);
        assert_eq!(d.loop_end, [0, 4, 0, 0, 0]);
        let leaves_only = func(
            "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    br %c, b2, b4\nb2:\n    br %c, b3, b5\nb3:\n    ret %c\nb4:\n    br %c, b1, b5\nb5:\n    ret %c\n}\n",
        );
        assert!(!d.block_order_in(&leaves_only, true));
        assert_eq!(d.order[..3], [Block(0), Block(1), Block(4)]);
        assert_eq!(d.loop_end[..3], [0, 3, 0]);
        // Three loops, each inside the last, as `shape loops 3` builds.
        let mut text = String::from("func @f(%c: i32) -> i32 {\nb0:\n    jmp h0\n");
        for i in 0..3 {
            let next = if i < 2 {
                format!("h{}", i + 1)
            } else {
                "t2".into()
            };
            text += &format!("h{i}:\n    jmp {next}\n");
        }
        for i in (0..3).rev() {
            let after = if i > 0 {
                format!("t{}", i - 1)
            } else {
                "x".into()
            };
            text += &format!("t{i}:\n    br %c, h{i}, {after}\n");
        }
        text += "x:\n    ret %c\n}\n";
        let deep = func(&text);
        assert!(d.block_order_in(&deep, true));
        assert_eq!(d.loop_end, [0, 7, 6, 5, 0, 0, 0, 0]);
    }

    /// `compute_order` checks the terminators of the blocks it reaches
    /// (missing, not a terminator, a target that does not exist), and
    /// `other_blocks` those of the unreachable blocks: either way the
    /// generator declines the function and `compute` reports it.
    #[test]
    fn malformed_blocks_are_found_reached_or_not() {
        let text = "func @f(%c: i32) -> i32 {\nb0:\n    jmp b1\nb1:\n    br %c, b2, b3\nb2:\n    ret %c\nb3:\n    ret %c\nu:\n    jmp b1\n}\n";
        let m = crate::ir::parse::parse_module("t.kir", text).unwrap();
        let mut d = Decisions::default();
        assert!(d.compute_order(&m.funcs[0]));
        assert!(d.other_blocks(&m, &m.funcs[0]).is_ok());
        for (block, how) in [
            (2, "pop"),
            (1, "pop"),
            (1, "target"),
            (4, "pop"),
            (4, "target"),
        ] {
            let mut m = m.clone();
            let f = &mut m.funcs[0];
            let last = *f.blocks[block].insts.last().unwrap();
            match how {
                "pop" => {
                    f.blocks[block].insts.pop();
                }
                _ => match &mut f.insts[last.index()].kind {
                    InstKind::Jmp { dest } => dest.block = Block(9),
                    InstKind::Br { else_dest, .. } => else_dest.block = Block(9),
                    _ => unreachable!(),
                },
            }
            let f = &m.funcs[0];
            let found = !d.compute_order(f) || d.other_blocks(&m, f).is_err();
            assert!(found, "block {block}: {how}");
            assert!(d.compute(&m, f).is_err(), "block {block}: {how}");
        }
    }
}
