//! Dominance for the accepting pass, cheaper than a [`DomTree`] on the
//! graphs of most functions: immediate dominators by the iterative
//! algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance
//! Algorithm") over a postorder numbering, then an interval per block on
//! the dominator tree, so that each query is two compares. The iteration
//! is bounded: past a budget linear in the graph's size the pass asks the
//! [`DomTree`] instead, so no graph shape costs more than the tree plus
//! that budget.

use crate::analysis::{Cfg, DomTree};
use crate::ir::entities::Block;
use crate::ir::function::{Function, InstKind};

/// No block, no number.
pub(super) const NONE: u32 = u32::MAX;

/// Immediate dominators of one function's reachable blocks and the
/// dominator tree's intervals (reused across functions).
#[derive(Default)]
pub(in crate::ir::verify) struct QuickDom {
    /// Per block: its postorder number (the entry's is the largest),
    /// `NONE` when unreachable.
    po: Vec<u32>,
    /// Per block: its immediate dominator (the entry's is itself).
    idom: Vec<u32>,
    /// The reachable blocks in postorder.
    order: Vec<u32>,
    stack: Vec<(u32, u32)>,
    /// Per block: `[pre, end]`, the first number of its dominator subtree
    /// in a preorder of the dominator tree (`NONE` when unreachable) and
    /// one past the last (while numbering: its subtree's size, then the
    /// next number free for a child). One entry, so that a query is one
    /// bounds check.
    span: Vec<[u32; 2]>,
    /// The back edges of [`QuickDom::compute_layout`] still to check:
    /// (block, immediate dominator of its target), which must dominate
    /// the block.
    back: Vec<(u32, u32)>,
    /// Whether the last [`QuickDom::compute_layout`] gave up because its
    /// climbing budget ran out (deep dominator chains, e.g. thousands of
    /// nested loops): the iteration of [`QuickDom::compute`] climbs the
    /// same chains, so the caller goes to the [`DomTree`] directly.
    deep: bool,
}

impl QuickDom {
    /// Whether the last [`QuickDom::compute_layout`] ran out of its
    /// budget (rather than meeting a shape it does not handle).
    pub(super) fn deep(&self) -> bool {
        self.deep
    }

    /// The capacity kept, in entries (for the scratch's size limit).
    pub(in crate::ir::verify) fn len(&self) -> usize {
        // Plain `max`es: an iterator chain here was an out-of-line fold,
        // paid once per module verified.
        (self.po.capacity())
            .max(self.idom.capacity())
            .max(self.order.capacity())
            .max(self.span.capacity())
            .max(self.back.capacity())
            .max(self.stack.capacity())
    }

    /// Computes the immediate dominators of `cfg` and the intervals;
    /// `false` when that took more than its budget (then ask a
    /// [`DomTree`]).
    pub(super) fn compute(&mut self, cfg: &Cfg) -> bool {
        self.compute_within(cfg, 32)
    }

    /// [`QuickDom::compute`] with a budget of `steps` per block and edge
    /// (and 1,024 more).
    pub(super) fn compute_within(&mut self, cfg: &Cfg, steps: u64) -> bool {
        let n = cfg.num_blocks();
        self.po.clear();
        self.po.resize(n, NONE);
        self.idom.clear();
        self.idom.resize(n, NONE);
        self.order.clear();
        if n == 0 {
            return true;
        }
        // Postorder by an iterative depth-first walk; `po` marks visited
        // blocks with 0 until numbered.
        self.stack.clear();
        self.stack.push((0, 0));
        self.po[0] = 0;
        while let Some(top) = self.stack.last_mut() {
            let (b, i) = *top;
            if let Some(&s) = cfg.succs(Block(b)).get(i as usize) {
                top.1 += 1;
                if self.po[s.index()] == NONE {
                    self.po[s.index()] = 0;
                    self.stack.push((s.0, 0));
                }
            } else {
                self.po[b as usize] = self.order.len() as u32;
                self.order.push(b);
                self.stack.pop();
            }
        }
        let edges: usize = self.order.iter().map(|&b| cfg.preds(Block(b)).len()).sum();
        let mut budget = steps * (n + edges) as u64 + 1024;
        self.idom[0] = 0;
        let mut changed = true;
        while changed {
            changed = false;
            // Reverse postorder, the entry (last) excluded.
            for k in (0..self.order.len() - 1).rev() {
                let b = self.order[k] as usize;
                let mut new = NONE;
                for &p in cfg.preds(Block(b as u32)) {
                    let p = p.0;
                    if self.idom[p as usize] == NONE {
                        continue; // unreachable, or not processed yet
                    }
                    new = if new == NONE {
                        p
                    } else {
                        match self.intersect(p, new, &mut budget) {
                            Some(x) => x,
                            None => return false,
                        }
                    };
                }
                if self.idom[b] != new {
                    self.idom[b] = new;
                    changed = true;
                }
                budget = match budget.checked_sub(1) {
                    Some(b) => b,
                    None => return false,
                };
            }
        }
        let rest = &self.order[..self.order.len() - 1];
        number(
            &self.idom,
            &mut self.span,
            rest.iter().rev().map(|&b| b as usize),
        );
        true
    }

    /// Immediate dominators in one pass over the blocks in layout order,
    /// reading successors from the terminators (no CFG): each block
    /// narrows the immediate dominator of each successor to the nearest
    /// common dominator of itself and the successor's current one.
    /// `false` (then ask [`QuickDom::compute`]) when that need not be the
    /// answer: an edge back to a block whose dominator it would change, or
    /// into a block passed before anything reached it; a block not ended
    /// by a terminator; or more climbing than a budget linear in the
    /// number of blocks.
    ///
    /// Why one pass suffices otherwise: every block is reached first from
    /// an earlier one, so a block's dominator is earlier than itself, and
    /// no block's dominator changes after it was passed, so the result
    /// solves `Dom(b) = {b} ∪ ⋂ Dom(p)` over all predecessors; each set is
    /// an intersection of predecessors' sets, so it holds every true
    /// dominator, and any solution holds only true ones.
    ///
    /// An edge `b -> s` back to a passed block leaves `s`'s dominator
    /// alone if that dominator dominates `b`. This is checked after the
    /// pass, on the numbered tree (two compares), not by climbing from `b`:
    /// the dominators of `b` were final when `b` was passed (all are
    /// earlier blocks), so the answer is the same, and deep nests of loops
    /// (each latch far below its header) cost no climbing.
    pub(super) fn compute_layout(&mut self, f: &Function) -> bool {
        self.deep = false;
        self.back.clear();
        let n = f.blocks.len();
        self.idom.clear();
        self.idom.resize(n, NONE);
        if n == 0 {
            return false;
        }
        let mut l = Layout {
            idom: &mut self.idom[..n],
            back: &mut self.back,
            budget: 16 * n as u64 + 1024,
        };
        l.idom[0] = 0;
        for (b, bd) in f.blocks.iter().enumerate() {
            if l.idom[b] == NONE {
                continue; // not reached (yet): an edge into it fails below
            }
            let Some(d) = bd.insts.last().and_then(|i| f.insts.get(i.index())) else {
                return false;
            };
            if !d.opcode.is_terminator() {
                return false;
            }
            let b = b as u32;
            let ok = match &d.kind {
                InstKind::Jmp { dest } => l.narrow(b, dest.block),
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => l.narrow(b, then_dest.block) && l.narrow(b, else_dest.block),
                InstKind::Switch { default, cases, .. } => {
                    l.narrow(b, *default) && f.cases(*cases).iter().all(|c| l.narrow(b, c.block))
                }
                InstKind::Ret { .. } | InstKind::Trap => true,
                _ => false,
            };
            if !ok {
                self.deep = l.budget == 0;
                return false;
            }
        }
        number(&self.idom, &mut self.span, 1..n);
        let span = &self.span;
        self.back.iter().all(|&(b, d)| {
            let ([p, _], [pd, ed]) = (span[b as usize], span[d as usize]);
            pd <= p && p < ed
        })
    }

    /// The nearest common dominator of `a` and `b`, within `budget` steps.
    fn intersect(&self, mut a: u32, mut b: u32, budget: &mut u64) -> Option<u32> {
        while a != b {
            while self.po[a as usize] < self.po[b as usize] {
                a = self.idom[a as usize];
                *budget = budget.checked_sub(1)?;
            }
            while self.po[b as usize] < self.po[a as usize] {
                b = self.idom[b as usize];
                *budget = budget.checked_sub(1)?;
            }
        }
        Some(a)
    }

    /// The number of block `b` in the dominator tree's preorder (`NONE`
    /// when unreachable or not computed).
    #[inline]
    pub(super) fn pre(&self, b: u32) -> u32 {
        self.span.get(b as usize).map_or(NONE, |s| s[0])
    }

    /// Writes each block's interval as `[pre, size]` at `fields[(block +
    /// 2) << SHIFT]` (`[NONE, 0]`, which holds no number, for an unreachable block;
    /// see the accepting pass's `Plain::fields`). `fields` has room for
    /// every block of the last compute.
    pub(super) fn intervals_into(&self, fields: &mut [[u32; 2]]) {
        let slots = &mut fields[2 << super::SHIFT..];
        for (out, &[p, e]) in slots.chunks_mut(1 << super::SHIFT).zip(&self.span) {
            out[0] = if p == NONE { [NONE, 0] } else { [p, e - p] };
        }
    }

    /// Whether `a` dominates `b` (`false` if either is unreachable).
    #[inline]
    pub(super) fn dominates(&self, a: u32, b: u32) -> bool {
        let (Some(&[pa, ea]), Some(&[pb, _])) =
            (self.span.get(a as usize), self.span.get(b as usize))
        else {
            return false;
        };
        pb != NONE && pa <= pb && pb < ea
    }
}

/// The state of [`QuickDom::compute_layout`]'s pass: the immediate
/// dominators as a slice (one block each: its length stays in a register),
/// the back edges to check, and the climbing budget left.
struct Layout<'a> {
    idom: &'a mut [u32],
    back: &'a mut Vec<(u32, u32)>,
    budget: u64,
}

impl Layout<'_> {
    /// The edge `b -> s` of [`QuickDom::compute_layout`]: `false` when it
    /// breaks that pass's assumptions (a back edge is checked at the end).
    #[inline]
    fn narrow(&mut self, b: u32, s: Block) -> bool {
        let Some(&old) = self.idom.get(s.index()) else {
            return false;
        };
        if s.0 > b {
            let new = if old == NONE {
                b
            } else {
                match self.meet(b, old) {
                    Some(x) => x,
                    None => return false,
                }
            };
            self.idom[s.index()] = new;
            true
        } else if old == NONE {
            false
        } else {
            if old != b && s.0 != b {
                self.back.push((b, old));
            }
            true
        }
    }

    /// The nearest common dominator of `a` and `b` while every immediate
    /// dominator is earlier in the layout than its block, within the
    /// budget.
    fn meet(&mut self, mut a: u32, mut b: u32) -> Option<u32> {
        while a != b {
            if a > b {
                a = self.idom[a as usize];
            } else {
                b = self.idom[b as usize];
            }
            self.budget = self.budget.checked_sub(1)?;
        }
        Some(a)
    }
}

/// Numbers the dominator tree given by `idom` (the entry is block 0; a
/// block of `NONE` is unreachable): each block's subtree gets the interval
/// `pre..end`. `rest` lists the other reachable blocks, each after its
/// immediate dominator (unreachable ones may be listed too): subtree sizes
/// add up in the reverse order, and intervals are handed out in this one,
/// parents first.
fn number(
    idom: &[u32],
    span: &mut Vec<[u32; 2]>,
    rest: impl DoubleEndedIterator<Item = usize> + Clone,
) {
    let n = idom.len();
    span.clear();
    span.resize(n, [NONE, 0]);
    if n == 0 {
        return;
    }
    // A slice as long as `idom`: its length stays in a register (the
    // vector's would be reloaded after every store through it).
    let span = &mut span[..n];
    // Subtree sizes (the entry's without itself).
    for b in rest.clone().rev() {
        let p = idom[b];
        if p != NONE {
            span[b][1] += 1;
            span[p as usize][1] += span[b][1];
        }
    }
    // Below, a numbered block's `end` holds the next number free for a
    // child; a block not numbered yet still holds its size. Once every
    // child of a block is numbered, its `end` is one past its subtree.
    span[0] = [0, 1];
    for b in rest {
        let p = idom[b] as usize;
        if p == NONE as usize {
            continue;
        }
        let size = span[b][1];
        let pre = span[p][1];
        span[p][1] += size;
        span[b] = [pre, pre + 1];
    }
}

/// Dominance of `a` over `b` from the tree, for when [`QuickDom`] gave up.
pub(super) fn tree_dominates(dom: &DomTree, a: u32, b: u32) -> bool {
    dom.dominates(Block(a), Block(b))
}
