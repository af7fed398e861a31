//! Dominance for the accepting pass, cheaper than a [`DomTree`] on the
//! small graphs of most functions: immediate dominators by the iterative
//! algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance
//! Algorithm") over a postorder numbering, and each query a walk up the
//! immediate dominators. Both are bounded: past a budget linear in the
//! graph's size the pass asks the [`DomTree`] instead, so no graph shape
//! costs more than the tree plus that budget.

use crate::analysis::{Cfg, DomTree};
use crate::ir::entities::Block;

const NONE: u32 = u32::MAX;

/// Immediate dominators of one function's reachable blocks (reused across
/// functions).
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
    /// Steps left before queries go to the dominator tree.
    budget: u64,
}

impl QuickDom {
    /// The capacity kept, in entries (for the scratch's size limit).
    pub(in crate::ir::verify) fn len(&self) -> usize {
        self.po.capacity().max(self.order.capacity())
    }

    /// Computes the immediate dominators of `cfg`; `false` when that took
    /// more than its budget (then ask a [`DomTree`]).
    pub(super) fn compute(&mut self, cfg: &Cfg) -> bool {
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
        let mut budget = 32 * (n + edges) as u64 + 1024;
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
        self.budget = 8 * n as u64 + 512;
        true
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

    /// Whether `a` dominates `b` (`false` if either is unreachable), or
    /// `None` when the query budget is spent. Climbs from `b` (or from
    /// `*from`, a dominator of `b` reached by an earlier query) and marks
    /// each dominator of `b` passed with `known[block + 2] = b + 1`; a
    /// dominator of `b` between `b` and `*from` is marked already, so the
    /// caller asks only about blocks not marked.
    pub(super) fn dominates(
        &mut self,
        a: u32,
        b: u32,
        from: &mut u32,
        known: &mut [u32],
    ) -> Option<bool> {
        let (Some(&pa), Some(&pb)) = (self.po.get(a as usize), self.po.get(b as usize)) else {
            return Some(false);
        };
        if pa == NONE || pb == NONE {
            return Some(false);
        }
        // Dominators have larger postorder numbers: climb until at or
        // above `a`'s number.
        let mut x = *from;
        while self.po[x as usize] < pa {
            x = self.idom[x as usize];
            if let Some(k) = known.get_mut(x as usize + 2) {
                *k = b + 1;
            }
            self.budget = self.budget.checked_sub(1)?;
        }
        *from = x;
        Some(x == a)
    }
}

/// Dominance of `a` over `b` from the tree, for when [`QuickDom`] gave up.
pub(super) fn tree_dominates(dom: &DomTree, a: u32, b: u32) -> bool {
    dom.dominates(Block(a), Block(b))
}
