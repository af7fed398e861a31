//! CFG analyses of one function, each returned as a plain value: the
//! control-flow graph ([`Cfg`]), reverse postorder and reachability
//! ([`Rpo`]), the dominator tree ([`DomTree`]) and natural loops
//! ([`LoopInfo`]).
//!
//! Invariants and choices:
//! - Nothing here recurses: every traversal uses an explicit stack, so a
//!   20,000-block chain is fine. Every analysis is linear or near-linear
//!   (semi-NCA dominators with path compression; loop discovery with
//!   union-find).
//! - A block's successors come from its *last* instruction when that is a
//!   terminator; successor lists are
//!   deduplicated (a `switch` with ten cases to one block is one edge).
//!   Targets outside the function's block table are ignored, so the
//!   analyses never panic on unverified IR; the verifier reports those.
//! - Dominance is defined only among blocks reachable from the entry:
//!   [`DomTree::dominates`] is `false` when either block is unreachable.
//! - Loops are natural loops (a back edge `p -> h` where `h` dominates `p`);
//!   all back edges to one header form one loop. Cycles of an irreducible
//!   graph are not loops here (as in LLVM's `LoopInfo`); their blocks keep
//!   the depth of the natural loops around them.

use crate::ir::{Block, Function};

const NONE: u32 = u32::MAX;

/// Successors and predecessors of every block, in compressed rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cfg {
    succ_start: Vec<u32>,
    succs: Vec<Block>,
    pred_start: Vec<u32>,
    preds: Vec<Block>,
}

impl Cfg {
    /// The CFG of `func`, from each block's terminator.
    pub fn new(func: &Function) -> Cfg {
        let n = func.blocks.len();
        let mut edges = Vec::with_capacity(n);
        for (b, data) in func.blocks.iter().enumerate() {
            // `get`, not `Function::terminator`: unverified IR may list a
            // missing instruction.
            let last = data.insts.last().and_then(|i| func.insts.get(i.index()));
            if let Some(t) = last.filter(|d| d.opcode.is_terminator()) {
                for s in t.successors() {
                    edges.push((Block::new(b), s));
                }
            }
        }
        Cfg::from_edges(n, &edges)
    }

    /// A CFG over `num_blocks` blocks from a list of edges (duplicates and
    /// out-of-range endpoints are dropped). Successors keep the order of
    /// their first edge.
    pub fn from_edges(num_blocks: usize, edges: &[(Block, Block)]) -> Cfg {
        let n = num_blocks;
        let valid = |&&(a, b): &&(Block, Block)| a.index() < n && b.index() < n;
        // Successor rows: count, then place, dropping duplicates with a
        // per-target stamp of the source block that last added it.
        let mut succ_start = vec![0u32; n + 1];
        for (a, _) in edges.iter().filter(valid) {
            succ_start[a.index() + 1] += 1;
        }
        for i in 0..n {
            succ_start[i + 1] += succ_start[i];
        }
        let mut fill = succ_start.clone();
        let mut raw = vec![Block(0); succ_start[n] as usize];
        for &(a, b) in edges.iter().filter(valid) {
            raw[fill[a.index()] as usize] = b;
            fill[a.index()] += 1;
        }
        let mut stamp = vec![NONE; n];
        let mut succs = Vec::with_capacity(raw.len());
        let mut dedup_start = vec![0u32; n + 1];
        for a in 0..n {
            for &b in &raw[succ_start[a] as usize..succ_start[a + 1] as usize] {
                if stamp[b.index()] != a as u32 {
                    stamp[b.index()] = a as u32;
                    succs.push(b);
                }
            }
            dedup_start[a + 1] = succs.len() as u32;
        }
        let succ_start = dedup_start;
        // Predecessor rows by counting sort of the deduplicated edges;
        // each row lists predecessors in layout order.
        let mut pred_start = vec![0u32; n + 1];
        for &b in &succs {
            pred_start[b.index() + 1] += 1;
        }
        for i in 0..n {
            pred_start[i + 1] += pred_start[i];
        }
        let mut fill = pred_start.clone();
        let mut preds = vec![Block(0); succs.len()];
        for a in 0..n {
            for &b in &succs[succ_start[a] as usize..succ_start[a + 1] as usize] {
                preds[fill[b.index()] as usize] = Block::new(a);
                fill[b.index()] += 1;
            }
        }
        Cfg {
            succ_start,
            succs,
            pred_start,
            preds,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.succ_start.len() - 1
    }

    /// The distinct successors of `b`.
    pub fn succs(&self, b: Block) -> &[Block] {
        let i = b.index();
        &self.succs[self.succ_start[i] as usize..self.succ_start[i + 1] as usize]
    }

    /// The distinct predecessors of `b`, in layout order.
    pub fn preds(&self, b: Block) -> &[Block] {
        let i = b.index();
        &self.preds[self.pred_start[i] as usize..self.pred_start[i + 1] as usize]
    }
}

/// Reverse postorder of the blocks reachable from the entry (`Block(0)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rpo {
    order: Vec<Block>,
    /// Position of each block in `order`, `NONE` when unreachable.
    index: Vec<u32>,
}

impl Rpo {
    /// Reverse postorder from `Block(0)` (none for a CFG without blocks).
    pub fn new(cfg: &Cfg) -> Rpo {
        let n = cfg.num_blocks();
        let mut post = Vec::with_capacity(n);
        let mut visited = vec![false; n];
        // Stack of (block, index of the next successor to visit).
        let mut stack: Vec<(Block, usize)> = Vec::new();
        if n > 0 {
            visited[0] = true;
            stack.push((Block(0), 0));
        }
        while let Some(top) = stack.last_mut() {
            let (b, i) = *top;
            if let Some(&s) = cfg.succs(b).get(i) {
                top.1 += 1;
                if !visited[s.index()] {
                    visited[s.index()] = true;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
                stack.pop();
            }
        }
        post.reverse();
        let mut index = vec![NONE; n];
        for (i, b) in post.iter().enumerate() {
            index[b.index()] = i as u32;
        }
        Rpo { order: post, index }
    }

    /// The reachable blocks, entry first, each before its successors except
    /// along back edges.
    pub fn order(&self) -> &[Block] {
        &self.order
    }

    /// Position of `b` in [`Rpo::order`], `None` when unreachable.
    pub fn index_of(&self, b: Block) -> Option<usize> {
        match self.index.get(b.index()) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    pub fn is_reachable(&self, b: Block) -> bool {
        self.index_of(b).is_some()
    }
}

/// The dominator tree of the reachable blocks, with pre/post numbers of a
/// walk of the tree so that [`DomTree::dominates`] is O(1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomTree {
    /// Immediate dominator of each block; `NONE` for the entry and for
    /// unreachable blocks.
    idom: Vec<u32>,
    child_start: Vec<u32>,
    children: Vec<Block>,
    /// Tree preorder / postorder numbers; `NONE` when unreachable.
    pre: Vec<u32>,
    post: Vec<u32>,
}

impl DomTree {
    /// Dominators by semi-NCA (Georgiadis et al., "Finding dominators in
    /// practice"): semidominators over a DFS preorder with an iterative,
    /// path-compressing `eval`, then each idom as the nearest common
    /// ancestor of parent and semidominator.
    pub fn new(cfg: &Cfg) -> DomTree {
        let n = cfg.num_blocks();
        // DFS preorder numbering; `vertex[k]` is the block numbered `k`.
        let mut num = vec![NONE; n];
        let mut vertex: Vec<u32> = Vec::with_capacity(n);
        let mut parent: Vec<u32> = Vec::with_capacity(n);
        let mut stack: Vec<(Block, usize)> = Vec::new();
        if n > 0 {
            num[0] = 0;
            vertex.push(0);
            parent.push(NONE);
            stack.push((Block(0), 0));
        }
        while let Some(top) = stack.last_mut() {
            let (b, i) = *top;
            if let Some(&s) = cfg.succs(b).get(i) {
                top.1 += 1;
                if num[s.index()] == NONE {
                    num[s.index()] = vertex.len() as u32;
                    vertex.push(s.0);
                    parent.push(num[b.index()]);
                    stack.push((s, 0));
                }
            } else {
                stack.pop();
            }
        }
        let m = vertex.len();
        // Semidominators, in preorder numbers, processed in reverse.
        let mut semi: Vec<u32> = (0..m as u32).collect();
        let mut label: Vec<u32> = (0..m as u32).collect();
        let mut ancestor = vec![NONE; m];
        let mut path: Vec<u32> = Vec::new();
        for w in (1..m).rev() {
            for &p in cfg.preds(Block(vertex[w])) {
                let v = num[p.index()];
                if v == NONE {
                    continue;
                }
                let u = eval(v, &mut ancestor, &mut label, &semi, &mut path);
                if semi[u as usize] < semi[w] {
                    semi[w] = semi[u as usize];
                }
            }
            ancestor[w] = parent[w];
        }
        // Immediate dominators: walk up from the parent until at or above
        // the semidominator. Ancestors are final when `w` is reached.
        let mut idom_num = vec![0u32; m];
        for w in 1..m {
            let mut d = parent[w];
            while d > semi[w] {
                d = idom_num[d as usize];
            }
            idom_num[w] = d;
        }
        let mut idom = vec![NONE; n];
        for w in 1..m {
            idom[vertex[w] as usize] = vertex[idom_num[w] as usize];
        }
        // Children rows (in DFS preorder of the child).
        let mut child_start = vec![0u32; n + 1];
        for &d in &idom {
            if d != NONE {
                child_start[d as usize + 1] += 1;
            }
        }
        for i in 0..n {
            child_start[i + 1] += child_start[i];
        }
        let mut fill = child_start.clone();
        let mut children = vec![Block(0); child_start[n] as usize];
        for &v in vertex.iter().skip(1) {
            let d = idom[v as usize] as usize;
            children[fill[d] as usize] = Block(v);
            fill[d] += 1;
        }
        let mut tree = DomTree {
            idom,
            child_start,
            children,
            pre: vec![NONE; n],
            post: vec![NONE; n],
        };
        tree.number();
        tree
    }

    /// Pre/post numbers of an iterative walk of the tree from the entry.
    fn number(&mut self) {
        if self.idom.is_empty() {
            return;
        }
        let (mut pre, mut post) = (0u32, 0u32);
        let mut stack: Vec<(Block, usize)> = vec![(Block(0), 0)];
        self.pre[0] = pre;
        pre += 1;
        while let Some(top) = stack.last_mut() {
            let (b, i) = *top;
            if let Some(&c) = self.children(b).get(i) {
                top.1 += 1;
                self.pre[c.index()] = pre;
                pre += 1;
                stack.push((c, 0));
            } else {
                self.post[b.index()] = post;
                post += 1;
                stack.pop();
            }
        }
    }

    /// The immediate dominator; `None` for the entry and unreachable blocks.
    pub fn idom(&self, b: Block) -> Option<Block> {
        match self.idom.get(b.index()) {
            Some(&d) if d != NONE => Some(Block(d)),
            _ => None,
        }
    }

    /// The blocks `b` immediately dominates.
    pub fn children(&self, b: Block) -> &[Block] {
        let i = b.index();
        &self.children[self.child_start[i] as usize..self.child_start[i + 1] as usize]
    }

    /// Whether `b` is reachable from the entry (in the tree).
    pub fn is_reachable(&self, b: Block) -> bool {
        self.pre.get(b.index()).is_some_and(|&p| p != NONE)
    }

    /// Whether `a` dominates `b` (reflexive). `false` when either block is
    /// unreachable.
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        if !self.is_reachable(a) || !self.is_reachable(b) {
            return false;
        }
        let (a, b) = (a.index(), b.index());
        self.pre[a] <= self.pre[b] && self.post[b] <= self.post[a]
    }

    /// Whether `a` dominates `b` and differs from it.
    pub fn strictly_dominates(&self, a: Block, b: Block) -> bool {
        a != b && self.dominates(a, b)
    }
}

/// `eval` of Lengauer–Tarjan: the vertex of least semidominator on the
/// forest path from `v` up to (not including) its root, compressing the
/// path. Iterative: the path is collected first, then compressed top-down.
fn eval(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) -> u32 {
    if ancestor[v as usize] == NONE {
        return v;
    }
    path.clear();
    let mut x = v;
    while ancestor[ancestor[x as usize] as usize] != NONE {
        path.push(x);
        x = ancestor[x as usize];
    }
    while let Some(y) = path.pop() {
        let a = ancestor[y as usize] as usize;
        if semi[label[a] as usize] < semi[label[y as usize] as usize] {
            label[y as usize] = label[a];
        }
        ancestor[y as usize] = ancestor[a];
    }
    label[v as usize]
}

/// A natural loop's index in [`LoopInfo::loops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoopId(pub u32);

/// One natural loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopData {
    /// The block every entry into the loop goes through.
    pub header: Block,
    /// The innermost loop containing this one.
    pub parent: Option<LoopId>,
    /// 1 for an outermost loop.
    pub depth: u32,
    /// Sources of the back edges to `header`, in layout order.
    pub latches: Vec<Block>,
}

/// The natural loops of a function and the innermost loop of each block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopInfo {
    loops: Vec<LoopData>,
    innermost: Vec<u32>,
}

impl LoopInfo {
    /// Finds loops innermost first (headers in dominator-tree postorder),
    /// walking backwards from the latches; a block already in an inner
    /// loop stands for that whole loop (found by union-find), whose header's
    /// predecessors continue the walk.
    pub fn new(cfg: &Cfg, dom: &DomTree) -> LoopInfo {
        let n = cfg.num_blocks();
        let mut info = LoopInfo {
            loops: Vec::new(),
            innermost: vec![NONE; n],
        };
        if n == 0 {
            return info;
        }
        // Dominator-tree postorder, iteratively.
        let mut postorder = Vec::with_capacity(n);
        let mut stack: Vec<(Block, usize)> = vec![(Block(0), 0)];
        while let Some(top) = stack.last_mut() {
            let (b, i) = *top;
            if let Some(&c) = dom.children(b).get(i) {
                top.1 += 1;
                stack.push((c, 0));
            } else {
                postorder.push(b);
                stack.pop();
            }
        }
        // `uf[l]`: union-find link towards the outermost loop found so far.
        let mut uf: Vec<u32> = Vec::new();
        let mut work: Vec<Block> = Vec::new();
        for &h in &postorder {
            let latches: Vec<Block> = cfg
                .preds(h)
                .iter()
                .copied()
                .filter(|&p| dom.dominates(h, p))
                .collect();
            if latches.is_empty() {
                continue;
            }
            let l = info.loops.len() as u32;
            uf.push(l);
            info.innermost[h.index()] = l;
            work.clear();
            work.extend(latches.iter().copied());
            while let Some(b) = work.pop() {
                let inner = info.innermost[b.index()];
                if inner == NONE {
                    info.innermost[b.index()] = l;
                    work.extend(cfg.preds(b).iter().filter(|p| dom.is_reachable(**p)));
                    continue;
                }
                let top = find(&mut uf, inner);
                if top != l {
                    uf[top as usize] = l;
                    info.loops[top as usize].parent = Some(LoopId(l));
                    let sub_header = info.loops[top as usize].header;
                    work.extend(
                        cfg.preds(sub_header)
                            .iter()
                            .filter(|p| dom.is_reachable(**p)),
                    );
                }
            }
            info.loops.push(LoopData {
                header: h,
                parent: None,
                depth: 0,
                latches,
            });
        }
        // Parents are created after their children: set depths outside in.
        for i in (0..info.loops.len()).rev() {
            info.loops[i].depth = match info.loops[i].parent {
                Some(p) => info.loops[p.0 as usize].depth + 1,
                None => 1,
            };
        }
        info
    }

    /// Every loop; an inner loop comes before the loops containing it.
    pub fn loops(&self) -> &[LoopData] {
        &self.loops
    }

    pub fn get(&self, l: LoopId) -> &LoopData {
        &self.loops[l.0 as usize]
    }

    /// The innermost loop containing `b`.
    pub fn innermost_loop(&self, b: Block) -> Option<LoopId> {
        match self.innermost.get(b.index()) {
            Some(&l) if l != NONE => Some(LoopId(l)),
            _ => None,
        }
    }

    /// Number of loops containing `b` (0 outside loops and when
    /// unreachable).
    pub fn loop_depth(&self, b: Block) -> u32 {
        self.innermost_loop(b).map_or(0, |l| self.get(l).depth)
    }

    /// Whether `b` is the header of a loop.
    pub fn is_header(&self, b: Block) -> bool {
        self.innermost_loop(b)
            .is_some_and(|l| self.get(l).header == b)
    }

    /// Whether loop `inner` is `outer` or nested in it.
    pub fn contains(&self, outer: LoopId, inner: LoopId) -> bool {
        let mut l = Some(inner);
        while let Some(x) = l {
            if x == outer {
                return true;
            }
            // Depth strictly decreases going out, so this ends.
            if self.get(x).depth <= self.get(outer).depth {
                return false;
            }
            l = self.get(x).parent;
        }
        false
    }

    /// The reachable blocks in reverse postorder, except that each loop's
    /// blocks are contiguous: a loop is laid out whole where its header
    /// falls in the order of its parent. Headers come first in their loop.
    pub fn block_order(&self, rpo: &Rpo) -> Vec<Block> {
        #[derive(Clone, Copy)]
        enum Item {
            Block(Block),
            Loop(u32),
        }
        // Container 0 is the function; container l+1 is loop l.
        let mut items: Vec<Vec<Item>> = vec![Vec::new(); self.loops.len() + 1];
        let container = |l: Option<LoopId>| l.map_or(0, |l| l.0 as usize + 1);
        for &b in rpo.order() {
            match self.innermost_loop(b) {
                Some(l) if self.get(l).header == b => {
                    items[container(self.get(l).parent)].push(Item::Loop(l.0));
                    items[l.0 as usize + 1].push(Item::Block(b));
                }
                l => items[container(l)].push(Item::Block(b)),
            }
        }
        let mut out = Vec::with_capacity(rpo.order().len());
        let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
        while let Some(top) = stack.last_mut() {
            let (c, i) = *top;
            match items[c].get(i) {
                Some(&item) => {
                    top.1 += 1;
                    match item {
                        Item::Block(b) => out.push(b),
                        Item::Loop(l) => stack.push((l as usize + 1, 0)),
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
        out
    }
}

/// Union-find root with path halving.
fn find(uf: &mut [u32], mut x: u32) -> u32 {
    while uf[x as usize] != x {
        let up = uf[uf[x as usize] as usize];
        uf[x as usize] = up;
        x = up;
    }
    x
}

/// All the analyses of one function, computed together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncAnalysis {
    pub cfg: Cfg,
    pub rpo: Rpo,
    pub dom: DomTree,
    pub loops: LoopInfo,
}

impl FuncAnalysis {
    pub fn new(func: &Function) -> FuncAnalysis {
        let cfg = Cfg::new(func);
        let rpo = Rpo::new(&cfg);
        let dom = DomTree::new(&cfg);
        let loops = LoopInfo::new(&cfg, &dom);
        FuncAnalysis {
            cfg,
            rpo,
            dom,
            loops,
        }
    }
}

#[cfg(test)]
mod tests;
