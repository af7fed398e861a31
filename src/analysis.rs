//! CFG analyses of one function, each returned as a plain value: the
//! control-flow graph ([`Cfg`]), reverse postorder and reachability
//! ([`Rpo`]), the dominator tree ([`DomTree`]) and natural loops
//! ([`LoopInfo`]).
//!
//! Invariants and choices:
//! - Nothing here recurses: every traversal uses an explicit stack, so a
//!   100,000-deep loop nest is fine. Every analysis is linear or near-linear
//!   for every graph shape (Lengauer–Tarjan dominators with path
//!   compression; loop discovery with union-find).
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
///
/// [`Cfg::compute`] refills an existing graph, reusing its vectors, so a
/// caller that analyses many functions (the verifier) allocates only while
/// the largest function so far grows them.
#[derive(Clone, Debug, Default)]
pub struct Cfg {
    succ_start: Vec<u32>,
    succs: Vec<Block>,
    pred_start: Vec<u32>,
    preds: Vec<Block>,
    /// Scratch: per target block, the source that last added an edge to it.
    stamp: Vec<u32>,
}

impl PartialEq for Cfg {
    fn eq(&self, other: &Self) -> bool {
        (&self.succ_start, &self.succs, &self.pred_start, &self.preds)
            == (
                &other.succ_start,
                &other.succs,
                &other.pred_start,
                &other.preds,
            )
    }
}

impl Eq for Cfg {}

impl Cfg {
    /// The CFG of `func`, from each block's terminator.
    pub fn new(func: &Function) -> Cfg {
        let mut cfg = Cfg::default();
        cfg.compute(func);
        cfg
    }

    /// Makes this the CFG of `func`, reusing the allocations.
    pub fn compute(&mut self, func: &Function) {
        let n = func.blocks.len();
        self.begin(n);
        for data in &func.blocks {
            let a = self.succ_start.len() as u32 - 1;
            // `get`, not `Function::terminator`: unverified IR may list a
            // missing instruction.
            if let Some(&last) = data.insts.last() {
                if func
                    .insts
                    .get(last.index())
                    .is_some_and(|d| d.opcode.is_terminator())
                {
                    func.for_each_successor(last, |s| self.add_edge(a, s));
                }
            }
            self.succ_start.push(self.succs.len() as u32);
        }
        self.finish_preds();
    }

    /// A CFG over `num_blocks` blocks from a list of edges (duplicates and
    /// out-of-range endpoints are dropped). Successors keep the order of
    /// their first edge.
    pub fn from_edges(num_blocks: usize, edges: &[(Block, Block)]) -> Cfg {
        let n = num_blocks;
        let mut sorted: Vec<(Block, Block)> = edges
            .iter()
            .copied()
            .filter(|&(a, b)| a.index() < n && b.index() < n)
            .collect();
        // Stable: keeps each source's edges in their given order.
        sorted.sort_by_key(|&(a, _)| a);
        let mut cfg = Cfg::default();
        cfg.begin(n);
        let mut k = 0;
        for a in 0..n {
            while k < sorted.len() && sorted[k].0.index() == a {
                cfg.add_edge(a as u32, sorted[k].1);
                k += 1;
            }
            cfg.succ_start.push(cfg.succs.len() as u32);
        }
        cfg.finish_preds();
        cfg
    }

    fn begin(&mut self, n: usize) {
        self.succ_start.clear();
        self.succ_start.push(0);
        self.succs.clear();
        self.stamp.clear();
        self.stamp.resize(n, NONE);
    }

    /// Adds edge `a -> b` unless it is a duplicate or `b` is out of range.
    #[inline]
    fn add_edge(&mut self, a: u32, b: Block) {
        if let Some(st) = self.stamp.get_mut(b.index()) {
            if *st != a {
                *st = a;
                self.succs.push(b);
            }
        }
    }

    /// Predecessor rows by counting sort of the successor rows; each row
    /// lists predecessors in layout order.
    fn finish_preds(&mut self) {
        let n = self.succ_start.len() - 1;
        self.pred_start.clear();
        self.pred_start.resize(n + 1, 0);
        for &b in &self.succs {
            self.pred_start[b.index() + 1] += 1;
        }
        for i in 0..n {
            self.pred_start[i + 1] += self.pred_start[i];
        }
        // `stamp` becomes the fill cursor of each row.
        self.stamp.clear();
        self.stamp.extend_from_slice(&self.pred_start[..n]);
        self.preds.clear();
        self.preds.resize(self.succs.len(), Block(0));
        for a in 0..n {
            let (lo, hi) = (self.succ_start[a] as usize, self.succ_start[a + 1] as usize);
            for &b in &self.succs[lo..hi] {
                let at = &mut self.stamp[b.index()];
                self.preds[*at as usize] = Block::new(a);
                *at += 1;
            }
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.succ_start.len().saturating_sub(1)
    }

    /// The distinct successors of `b`.
    #[inline]
    pub fn succs(&self, b: Block) -> &[Block] {
        let i = b.index();
        &self.succs[self.succ_start[i] as usize..self.succ_start[i + 1] as usize]
    }

    /// The distinct predecessors of `b`, in layout order.
    #[inline]
    pub fn preds(&self, b: Block) -> &[Block] {
        let i = b.index();
        &self.preds[self.pred_start[i] as usize..self.pred_start[i + 1] as usize]
    }
}

/// Reverse postorder of the blocks reachable from the entry (`Block(0)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rpo {
    order: Vec<Block>,
    /// Position of each block in `order`, `NONE` when unreachable.
    index: Vec<u32>,
}

impl Rpo {
    /// Reverse postorder from `Block(0)` (none for a CFG without blocks).
    pub fn new(cfg: &Cfg) -> Rpo {
        let mut rpo = Rpo {
            order: Vec::new(),
            index: Vec::new(),
        };
        rpo.compute(cfg, &mut Vec::new());
        rpo
    }

    /// Makes this the reverse postorder of `cfg`, reusing the allocations
    /// (`stack` is scratch).
    pub fn compute(&mut self, cfg: &Cfg, stack: &mut Vec<(Block, u32)>) {
        let n = cfg.num_blocks();
        // `index` marks the visited blocks (0) until it is filled in.
        self.index.clear();
        self.index.resize(n, NONE);
        let post = &mut self.order;
        post.clear();
        // Stack of (block, index of the next successor to visit).
        stack.clear();
        if n > 0 {
            self.index[0] = 0;
            stack.push((Block(0), 0));
        }
        while let Some(top) = stack.last_mut() {
            let (b, i) = *top;
            if let Some(&s) = cfg.succs(b).get(i as usize) {
                top.1 += 1;
                if self.index[s.index()] == NONE {
                    self.index[s.index()] = 0;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
                stack.pop();
            }
        }
        post.reverse();
        for (i, b) in post.iter().enumerate() {
            self.index[b.index()] = i as u32;
        }
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

/// Scratch vectors of the dominator computation, kept for reuse.
#[derive(Clone, Debug, Default)]
struct DomScratch {
    /// DFS preorder number of each block, `NONE` when unreachable.
    num: Vec<u32>,
    /// The block numbered `k`.
    vertex: Vec<u32>,
    /// Per DFS number: what `eval` and the semidominator loop read.
    nodes: Vec<LtNode>,
    idom_num: Vec<u32>,
    bucket_head: Vec<u32>,
    bucket_next: Vec<u32>,
    path: Vec<u32>,
    /// DFS stack: (DFS number, next successor's index in `Cfg::succs`,
    /// end of the block's successors).
    dfs: Vec<(u32, u32, u32)>,
}

/// One vertex of Lengauer–Tarjan, by DFS number: the fields one `eval`
/// step reads side by side (one cache line instead of three vectors).
#[derive(Clone, Copy, Debug)]
struct LtNode {
    /// Link in the forest of processed vertices (`NONE`: a root).
    ancestor: u32,
    /// The vertex of least semidominator on the compressed path.
    label: u32,
    /// Semidominator (a DFS number).
    semi: u32,
    /// DFS tree parent.
    parent: u32,
}

/// The dominator tree of the reachable blocks, with each block's preorder
/// number in the tree and the range of its subtree's, so that
/// [`DomTree::dominates`] is O(1).
#[derive(Clone, Debug, Default)]
pub struct DomTree {
    /// Immediate dominator of each block; `NONE` for the entry and for
    /// unreachable blocks.
    idom: Vec<u32>,
    child_start: Vec<u32>,
    children: Vec<Block>,
    /// Tree preorder number, and the largest preorder number in the
    /// block's subtree; `NONE` when unreachable.
    pre: Vec<u32>,
    last: Vec<u32>,
    scratch: DomScratch,
}

impl PartialEq for DomTree {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.idom,
            &self.child_start,
            &self.children,
            &self.pre,
            &self.last,
        ) == (
            &other.idom,
            &other.child_start,
            &other.children,
            &other.pre,
            &other.last,
        )
    }
}

impl Eq for DomTree {}

impl DomTree {
    /// The dominator tree of `cfg`'s reachable blocks.
    pub fn new(cfg: &Cfg) -> DomTree {
        let mut tree = DomTree::default();
        tree.compute(cfg);
        tree
    }

    /// Makes this the dominator tree of `cfg`, reusing the allocations.
    ///
    /// Lengauer–Tarjan with path compression ("simple" linking):
    /// semidominators over a DFS preorder, each vertex's immediate
    /// dominator settled from its semidominator's bucket, then a forward
    /// pass; O(m log n) for every graph shape, iterative throughout. The
    /// children rows and the tree's preorder numbers come from three
    /// sequential passes over the DFS numbers (subtree sizes instead of a
    /// walk of the tree).
    pub fn compute(&mut self, cfg: &Cfg) {
        let n = cfg.num_blocks();
        if n == 1 {
            // The entry alone (a straight-line function, the common small
            // case): a tree of one node, without the general machinery's
            // dozen vector refills.
            self.idom.clear();
            self.idom.push(NONE);
            self.child_start.clear();
            self.child_start.extend_from_slice(&[0, 0]);
            self.children.clear();
            self.pre.clear();
            self.pre.push(0);
            self.last.clear();
            self.last.push(0);
            return;
        }
        let s = &mut self.scratch;
        // DFS preorder numbering; `vertex[k]` is the block numbered `k`.
        s.num.clear();
        s.num.resize(n, NONE);
        s.vertex.clear();
        s.nodes.clear();
        s.dfs.clear();
        let row = |b: usize| (cfg.succ_start[b], cfg.succ_start[b + 1]);
        if n > 0 {
            s.num[0] = 0;
            s.vertex.push(0);
            s.nodes.push(LtNode {
                ancestor: NONE,
                label: 0,
                semi: 0,
                parent: NONE,
            });
            let (lo, hi) = row(0);
            s.dfs.push((0, lo, hi));
        }
        while let Some(top) = s.dfs.last_mut() {
            let (k, i, end) = *top;
            if i == end {
                s.dfs.pop();
                continue;
            }
            top.1 += 1;
            let x = cfg.succs[i as usize].index();
            if s.num[x] == NONE {
                let kx = s.vertex.len() as u32;
                s.num[x] = kx;
                s.vertex.push(x as u32);
                s.nodes.push(LtNode {
                    ancestor: NONE,
                    label: kx,
                    semi: kx,
                    parent: k,
                });
                let (lo, hi) = row(x);
                s.dfs.push((kx, lo, hi));
            }
        }
        let m = s.vertex.len();
        s.idom_num.clear();
        s.idom_num.resize(m, 0);
        s.bucket_head.clear();
        s.bucket_head.resize(m, NONE);
        s.bucket_next.clear();
        s.bucket_next.resize(m, NONE);
        let nodes = &mut s.nodes[..];
        for w in (1..m).rev() {
            let mut sw = nodes[w].semi;
            for &p in cfg.preds(Block(s.vertex[w])) {
                let v = s.num[p.index()];
                if v == NONE {
                    continue;
                }
                let u = eval(v, nodes, &mut s.path);
                sw = sw.min(nodes[u as usize].semi);
            }
            nodes[w].semi = sw;
            s.bucket_next[w] = s.bucket_head[sw as usize];
            s.bucket_head[sw as usize] = w as u32;
            let pw = nodes[w].parent;
            nodes[w].ancestor = pw;
            // Every vertex whose semidominator is `pw` is settled now.
            let mut v = std::mem::replace(&mut s.bucket_head[pw as usize], NONE);
            while v != NONE {
                let u = eval(v, nodes, &mut s.path);
                s.idom_num[v as usize] = if nodes[u as usize].semi < nodes[v as usize].semi {
                    u
                } else {
                    pw
                };
                v = s.bucket_next[v as usize];
            }
        }
        // Forward: immediate dominators by DFS number (a vertex's idom has
        // a smaller number, so it is final when read), and each block's
        // count of children at the end of its row (`child_start[b]`).
        self.child_start.clear();
        self.child_start.resize(n + 1, 0);
        for (w, node) in nodes.iter().enumerate().skip(1) {
            let mut d = s.idom_num[w];
            if d != node.semi {
                d = s.idom_num[d as usize];
                s.idom_num[w] = d;
            }
            self.child_start[s.vertex[d as usize] as usize] += 1;
        }
        let mut end = 0;
        for c in &mut self.child_start {
            end += *c;
            *c = end;
        }
        // Backward (children before their parent): subtree sizes, and the
        // rows filled from their ends, so that each row lists its children
        // in DFS preorder and `child_start[b]` ends at the row's start.
        let size = &mut s.bucket_next;
        size.clear();
        size.resize(m, 1);
        self.children.clear();
        self.children.resize(end as usize, Block(0));
        for w in (1..m).rev() {
            let d = s.idom_num[w] as usize;
            size[d] += size[w];
            let at = &mut self.child_start[s.vertex[d] as usize];
            *at -= 1;
            self.children[*at as usize] = Block(s.vertex[w]);
        }
        // Forward again: the tree's preorder numbers without walking it. A
        // vertex's subtree takes `pre .. pre + size`, and a parent hands
        // its children consecutive ranges in DFS preorder (the order of its
        // row); `next[v]` is the next free number in `v`'s range.
        let next = &mut s.bucket_head;
        next.clear();
        next.resize(m, 1);
        self.idom.clear();
        self.idom.resize(n, NONE);
        self.pre.clear();
        self.pre.resize(n, NONE);
        self.last.clear();
        self.last.resize(n, NONE);
        if m > 0 {
            self.pre[0] = 0;
            self.last[0] = m as u32 - 1;
        }
        for w in 1..m {
            let d = s.idom_num[w] as usize;
            let p = next[d];
            next[d] = p + size[w];
            next[w] = p + 1;
            let b = s.vertex[w] as usize;
            self.idom[b] = s.vertex[d];
            self.pre[b] = p;
            self.last[b] = p + size[w] - 1;
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
    #[inline]
    pub fn is_reachable(&self, b: Block) -> bool {
        self.pre.get(b.index()).is_some_and(|&p| p != NONE)
    }

    /// Whether `a` dominates `b` (reflexive). `false` when either block is
    /// unreachable.
    #[inline]
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        if !self.is_reachable(a) || !self.is_reachable(b) {
            return false;
        }
        let (a, b) = (a.index(), b.index());
        self.pre[a] <= self.pre[b] && self.pre[b] <= self.last[a]
    }

    /// Whether `a` dominates `b` and differs from it.
    pub fn strictly_dominates(&self, a: Block, b: Block) -> bool {
        a != b && self.dominates(a, b)
    }
}

/// `eval` of Lengauer–Tarjan: the vertex of least semidominator on the
/// forest path from `v` up to (not including) its root. The two short
/// cases inline; a longer path is compressed by [`compress`].
#[inline]
fn eval(v: u32, nodes: &mut [LtNode], path: &mut Vec<u32>) -> u32 {
    let a = nodes[v as usize].ancestor;
    if a == NONE {
        return v;
    }
    if nodes[a as usize].ancestor == NONE {
        return nodes[v as usize].label;
    }
    compress(v, nodes, path)
}

/// [`eval`] for a path of two links or more, compressing it. Iterative:
/// the path is collected first, then compressed top-down.
#[inline(never)]
fn compress(v: u32, nodes: &mut [LtNode], path: &mut Vec<u32>) -> u32 {
    path.clear();
    let mut x = v;
    while nodes[nodes[x as usize].ancestor as usize].ancestor != NONE {
        path.push(x);
        x = nodes[x as usize].ancestor;
    }
    while let Some(y) = path.pop() {
        let a = nodes[y as usize].ancestor as usize;
        let (la, aa) = (nodes[a].label, nodes[a].ancestor);
        let ly = nodes[y as usize].label;
        if nodes[la as usize].semi < nodes[ly as usize].semi {
            nodes[y as usize].label = la;
        }
        nodes[y as usize].ancestor = aa;
    }
    nodes[v as usize].label
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
///
/// [`LoopInfo::compute`] refills an existing one, reusing its vectors (the
/// latch lists of the loops included).
#[derive(Clone, Debug, Default)]
pub struct LoopInfo {
    loops: Vec<LoopData>,
    innermost: Vec<u32>,
    scratch: LoopScratch,
}

/// The buffers of [`LoopInfo::compute`], kept between computations.
#[derive(Clone, Debug, Default)]
struct LoopScratch {
    postorder: Vec<Block>,
    stack: Vec<(Block, usize)>,
    uf: Vec<u32>,
    work: Vec<Block>,
    /// Emptied latch lists of earlier loops.
    spare: Vec<Vec<Block>>,
}

impl PartialEq for LoopInfo {
    fn eq(&self, other: &Self) -> bool {
        (&self.loops, &self.innermost) == (&other.loops, &other.innermost)
    }
}

impl Eq for LoopInfo {}

impl LoopInfo {
    /// The loops of the graph `cfg` with dominator tree `dom`.
    pub fn new(cfg: &Cfg, dom: &DomTree) -> LoopInfo {
        let mut info = LoopInfo::default();
        info.compute(cfg, dom);
        info
    }

    /// Makes this the loops of `cfg` (dominator tree `dom`), reusing the
    /// allocations.
    ///
    /// Finds loops innermost first (headers in dominator-tree postorder),
    /// walking backwards from the latches; a block already in an inner
    /// loop stands for that whole loop (found by union-find), whose header's
    /// predecessors continue the walk.
    pub fn compute(&mut self, cfg: &Cfg, dom: &DomTree) {
        let n = cfg.num_blocks();
        let s = &mut self.scratch;
        for l in self.loops.drain(..) {
            let mut latches = l.latches;
            latches.clear();
            s.spare.push(latches);
        }
        self.innermost.clear();
        self.innermost.resize(n, NONE);
        if n == 0 {
            return;
        }
        let info = self;
        let LoopScratch {
            postorder,
            stack,
            uf,
            work,
            spare,
        } = &mut info.scratch;
        // Dominator-tree postorder, iteratively.
        postorder.clear();
        stack.clear();
        stack.push((Block(0), 0));
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
        uf.clear();
        for &h in postorder.iter() {
            let mut latches = spare.pop().unwrap_or_default();
            latches.extend(
                cfg.preds(h)
                    .iter()
                    .copied()
                    .filter(|&p| dom.dominates(h, p)),
            );
            if latches.is_empty() {
                spare.push(latches);
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
                let top = find(uf, inner);
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
        if self.loops.is_empty() {
            return rpo.order().to_vec();
        }
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncAnalysis {
    pub cfg: Cfg,
    pub rpo: Rpo,
    pub dom: DomTree,
    pub loops: LoopInfo,
    /// Reused by [`FuncAnalysis::recompute`].
    pub scratch: AnalysisScratch,
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
            scratch: AnalysisScratch::default(),
        }
    }

    /// Makes these the analyses of `func`, reusing the allocations (the
    /// `speed` tier keeps one set for every function of a module); equal
    /// to [`FuncAnalysis::new`]`(func)`.
    pub fn recompute(&mut self, func: &Function) {
        self.cfg.compute(func);
        self.rpo.compute(&self.cfg, &mut self.scratch.stack);
        self.dom.compute(&self.cfg);
        self.loops.compute(&self.cfg, &self.dom);
    }
}

/// Scratch vectors of [`FuncAnalysis::recompute`].
#[derive(Clone, Debug, Default)]
pub struct AnalysisScratch {
    stack: Vec<(Block, u32)>,
}

/// Scratch is not part of the analyses' value.
impl PartialEq for AnalysisScratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AnalysisScratch {}

#[cfg(test)]
mod tests;
