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
    /// Per block: the first number of its dominator subtree in a preorder
    /// of the dominator tree (`NONE` when unreachable)...
    pre: Vec<u32>,
    /// ... and one past the last (while numbering: its subtree's size,
    /// then the next number free for a child).
    end: Vec<u32>,
}

impl QuickDom {
    /// The capacity kept, in entries (for the scratch's size limit).
    pub(in crate::ir::verify) fn len(&self) -> usize {
        self.po.capacity().max(self.order.capacity())
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
        self.number();
        true
    }

    /// Numbers the dominator tree: each block's subtree gets the interval
    /// `pre..end`. A block's immediate dominator comes after it in
    /// postorder (it is an ancestor in the depth-first tree), so subtree
    /// sizes add up in postorder and intervals are handed out in reverse
    /// postorder, parents first.
    fn number(&mut self) {
        let n = self.po.len();
        self.pre.clear();
        self.pre.resize(n, NONE);
        self.end.clear();
        self.end.resize(n, 0);
        let (order, idom, pre, end) = (&self.order, &self.idom, &mut self.pre, &mut self.end);
        let Some((&entry, rest)) = order.split_last() else {
            return;
        };
        // Subtree sizes (the entry's without itself): a block's children
        // come before it in postorder.
        for &b in rest {
            end[b as usize] += 1;
            end[idom[b as usize] as usize] += end[b as usize];
        }
        // Below, a numbered block's `end` holds the next number free for a
        // child; a block not numbered yet still holds its size.
        let total = end[entry as usize] + 1;
        pre[entry as usize] = 0;
        end[entry as usize] = 1;
        for &b in rest.iter().rev() {
            let (b, p) = (b as usize, idom[b as usize] as usize);
            let size = end[b];
            pre[b] = end[p];
            end[p] += size;
            end[b] = pre[b] + 1;
            // Once every child of `p` is numbered, `end[p]` is one past
            // its subtree: children follow their parent in reverse
            // postorder, so no later block reads the `end` of `b` as a
            // size.
        }
        debug_assert!(order.iter().all(|&b| end[b as usize] <= total));
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
        self.pre.get(b as usize).copied().unwrap_or(NONE)
    }

    /// Whether the dominator subtree of block `a` holds the block numbered
    /// `pre` (from [`QuickDom::pre`] of the last compute; `false` for a
    /// block `a` beyond the tables and for `NONE`). Before the first
    /// compute of a function the tables are stale: pass `NONE`.
    #[inline(always)]
    pub(super) fn covers(&self, a: u32, pre: u32) -> bool {
        match (self.pre.get(a as usize), self.end.get(a as usize)) {
            (Some(&pa), Some(&ea)) => pa <= pre && pre < ea,
            _ => false,
        }
    }

    /// Whether `a` dominates `b` (`false` if either is unreachable).
    #[inline]
    pub(super) fn dominates(&self, a: u32, b: u32) -> bool {
        let (Some(&pa), Some(&pb), Some(&ea)) = (
            self.pre.get(a as usize),
            self.pre.get(b as usize),
            self.end.get(a as usize),
        ) else {
            return false;
        };
        pb != NONE && pa <= pb && pb < ea
    }
}

/// Dominance of `a` over `b` from the tree, for when [`QuickDom`] gave up.
pub(super) fn tree_dominates(dom: &DomTree, a: u32, b: u32) -> bool {
    dom.dominates(Block(a), Block(b))
}
