//! Unit tests of the CFG analyses on hand-built graphs, checked against
//! brute-force definitions where one is cheap to state.

use super::*;

fn cfg(n: usize, edges: &[(u32, u32)]) -> Cfg {
    let e: Vec<(Block, Block)> = edges.iter().map(|&(a, b)| (Block(a), Block(b))).collect();
    Cfg::from_edges(n, &e)
}

fn blocks(v: &[u32]) -> Vec<Block> {
    v.iter().map(|&b| Block(b)).collect()
}

/// Dominance by definition: `a` dominates `b` when `b` is unreachable from
/// the entry once `a` is removed (and both are reachable).
fn brute_dominates(cfg: &Cfg, a: Block, b: Block) -> bool {
    let n = cfg.num_blocks();
    let reach = |skip: Option<Block>| {
        let mut seen = vec![false; n];
        let mut work = vec![];
        if Some(Block(0)) != skip {
            seen[0] = true;
            work.push(Block(0));
        }
        while let Some(x) = work.pop() {
            for &s in cfg.succs(x) {
                if Some(s) != skip && !seen[s.index()] {
                    seen[s.index()] = true;
                    work.push(s);
                }
            }
        }
        seen
    };
    let all = reach(None);
    if !all[a.index()] || !all[b.index()] {
        return false;
    }
    a == b || !reach(Some(a))[b.index()]
}

fn check_against_brute(g: &Cfg) {
    let dom = DomTree::new(g);
    let n = g.num_blocks();
    for a in 0..n {
        for b in 0..n {
            let (a, b) = (Block::new(a), Block::new(b));
            assert_eq!(
                dom.dominates(a, b),
                brute_dominates(g, a, b),
                "dominates({a}, {b})"
            );
        }
    }
}

#[test]
fn cfg_dedups_and_builds_preds() {
    let g = cfg(3, &[(0, 1), (0, 1), (0, 2), (1, 2), (2, 7)]);
    assert_eq!(g.succs(Block(0)), &blocks(&[1, 2])[..]);
    assert_eq!(g.preds(Block(2)), &blocks(&[0, 1])[..]);
    assert_eq!(g.preds(Block(0)), &[] as &[Block]);
    // The out-of-range edge 2 -> 7 is dropped.
    assert_eq!(g.succs(Block(2)), &[] as &[Block]);
}

#[test]
fn diamond() {
    // 0 -> 1, 2 -> 3
    let g = cfg(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
    let rpo = Rpo::new(&g);
    assert_eq!(rpo.order()[0], Block(0));
    assert_eq!(rpo.order()[3], Block(3));
    let dom = DomTree::new(&g);
    assert_eq!(dom.idom(Block(3)), Some(Block(0)));
    assert_eq!(dom.idom(Block(1)), Some(Block(0)));
    assert_eq!(dom.idom(Block(0)), None);
    assert!(dom.dominates(Block(0), Block(3)));
    assert!(!dom.dominates(Block(1), Block(3)));
    assert!(dom.dominates(Block(3), Block(3)));
    assert!(!dom.strictly_dominates(Block(3), Block(3)));
    check_against_brute(&g);
    let loops = LoopInfo::new(&g, &dom);
    assert!(loops.loops().is_empty());
}

#[test]
fn simple_loop() {
    // 0 -> 1; 1 -> 2, 3; 2 -> 1 (back edge); 3 exit
    let g = cfg(4, &[(0, 1), (1, 2), (1, 3), (2, 1)]);
    let dom = DomTree::new(&g);
    check_against_brute(&g);
    let li = LoopInfo::new(&g, &dom);
    assert_eq!(li.loops().len(), 1);
    assert_eq!(li.loops()[0].header, Block(1));
    assert_eq!(li.loops()[0].latches, blocks(&[2]));
    assert_eq!([0, 1, 2, 3].map(|b| li.loop_depth(Block(b))), [0, 1, 1, 0]);
    assert!(li.is_header(Block(1)));
    assert!(!li.is_header(Block(2)));
}

#[test]
fn nested_loops_and_contiguous_order() {
    // 0 -> 1 (outer header); 1 -> 2 (inner header), 6 (exit)
    // 2 -> 3, 5; 3 -> 2 (inner back edge); 5 -> 1 (outer back edge)
    // 4 is only reached from 1's exit path: 6 -> 4.
    let g = cfg(
        7,
        &[
            (0, 1),
            (1, 2),
            (1, 6),
            (2, 3),
            (2, 5),
            (3, 2),
            (5, 1),
            (6, 4),
        ],
    );
    let a = DomTree::new(&g);
    check_against_brute(&g);
    let li = LoopInfo::new(&g, &a);
    assert_eq!(li.loops().len(), 2);
    let depth: Vec<u32> = (0..7).map(|b| li.loop_depth(Block(b))).collect();
    assert_eq!(depth, vec![0, 1, 2, 2, 0, 1, 0]);
    let inner = li.innermost_loop(Block(3)).unwrap();
    let outer = li.innermost_loop(Block(5)).unwrap();
    assert_eq!(li.get(inner).parent, Some(outer));
    assert!(li.contains(outer, inner));
    assert!(!li.contains(inner, outer));
    assert_eq!(li.get(outer).header, Block(1));

    let rpo = Rpo::new(&g);
    let order = li.block_order(&rpo);
    assert_eq!(order.len(), 7);
    assert_eq!(order[0], Block(0));
    assert_contiguous(&order, &li);
}

/// Every loop's blocks form one run of `order`, starting at the header.
fn assert_contiguous(order: &[Block], li: &LoopInfo) {
    for (l, data) in li.loops().iter().enumerate() {
        let l = LoopId(l as u32);
        let pos: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, b)| li.innermost_loop(**b).is_some_and(|i| li.contains(l, i)))
            .map(|(i, _)| i)
            .collect();
        assert!(!pos.is_empty());
        assert_eq!(order[pos[0]], data.header);
        assert_eq!(
            pos[pos.len() - 1] - pos[0] + 1,
            pos.len(),
            "loop {l:?} split"
        );
    }
}

#[test]
fn rpo_is_not_loop_contiguous_but_block_order_is() {
    // 0 -> 1 (header); 1 -> 2, 3; 2 -> 4 (exit path); 3 -> 1 (latch).
    // DFS visits 2 first, so RPO is 0 1 3 2 4 or 0 1 2 4 3 depending on
    // the successor order; with 1 -> 2 listed first the RPO puts the exit
    // path 2, 4 between the header and the latch 3.
    let g = cfg(5, &[(0, 1), (1, 3), (1, 2), (2, 4), (3, 1)]);
    let rpo = Rpo::new(&g);
    assert_eq!(rpo.order(), &blocks(&[0, 1, 2, 4, 3])[..]);
    let dom = DomTree::new(&g);
    let li = LoopInfo::new(&g, &dom);
    let order = li.block_order(&rpo);
    assert_eq!(order, blocks(&[0, 1, 3, 2, 4]));
    assert_contiguous(&order, &li);
}

#[test]
fn irreducible_graph() {
    // 0 -> 1, 2; 1 <-> 2: a cycle with two entries, not a natural loop.
    let g = cfg(4, &[(0, 1), (0, 2), (1, 2), (2, 1), (2, 3)]);
    let dom = DomTree::new(&g);
    check_against_brute(&g);
    assert_eq!(dom.idom(Block(1)), Some(Block(0)));
    assert_eq!(dom.idom(Block(2)), Some(Block(0)));
    assert_eq!(dom.idom(Block(3)), Some(Block(2)));
    let li = LoopInfo::new(&g, &dom);
    assert!(li.loops().is_empty());
    assert_eq!(li.block_order(&Rpo::new(&g)).len(), 4);
}

#[test]
fn unreachable_blocks() {
    // 2 and 3 are unreachable; 3 -> 1 adds an unreachable predecessor.
    let g = cfg(4, &[(0, 1), (2, 3), (3, 1), (3, 2)]);
    let rpo = Rpo::new(&g);
    assert_eq!(rpo.order(), &blocks(&[0, 1])[..]);
    assert!(!rpo.is_reachable(Block(2)));
    assert_eq!(rpo.index_of(Block(3)), None);
    let dom = DomTree::new(&g);
    assert_eq!(dom.idom(Block(1)), Some(Block(0)));
    assert_eq!(dom.idom(Block(2)), None);
    assert!(!dom.dominates(Block(2), Block(2)));
    assert!(!dom.dominates(Block(0), Block(3)));
    check_against_brute(&g);
    let li = LoopInfo::new(&g, &dom);
    // The 2 <-> 3 cycle is unreachable: no loop.
    assert!(li.loops().is_empty());
    assert_eq!(li.block_order(&rpo), blocks(&[0, 1]));
}

#[test]
fn self_loop_and_empty_cfg() {
    let g = cfg(2, &[(0, 1), (1, 1)]);
    let dom = DomTree::new(&g);
    let li = LoopInfo::new(&g, &dom);
    assert_eq!(li.loops().len(), 1);
    assert_eq!(li.loops()[0].latches, blocks(&[1]));
    assert_eq!(li.loop_depth(Block(1)), 1);

    let empty = cfg(0, &[]);
    assert!(Rpo::new(&empty).order().is_empty());
    let dom = DomTree::new(&empty);
    assert!(!dom.is_reachable(Block(0)));
    assert!(LoopInfo::new(&empty, &dom).loops().is_empty());
}

#[test]
fn one_block_trees_match_brute_force_after_reuse() {
    for edges in [&[][..], &[(0, 0)][..]] {
        let g = cfg(1, edges);
        check_against_brute(&g);
        // Refilled from a larger tree: nothing of it is left.
        let mut dom = DomTree::new(&cfg(3, &[(0, 1), (1, 2), (2, 1)]));
        dom.compute(&g);
        assert_eq!(dom, DomTree::new(&g));
        assert!(dom.is_reachable(Block(0)) && dom.dominates(Block(0), Block(0)));
        assert_eq!(dom.idom(Block(0)), None);
        assert!(dom.children(Block(0)).is_empty());
        // A self-loop is still a loop.
        assert_eq!(LoopInfo::new(&g, &dom).loops().len(), edges.len());
    }
}

/// A tiny xorshift generator for the randomized comparison.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_graphs_match_brute_force() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let n = 1 + (rng.next() % 12) as usize;
        let m = (rng.next() % (3 * n as u64 + 1)) as usize;
        let edges: Vec<(u32, u32)> = (0..m)
            .map(|_| {
                (
                    (rng.next() % n as u64) as u32,
                    (rng.next() % n as u64) as u32,
                )
            })
            .collect();
        let g = cfg(n, &edges);
        check_against_brute(&g);
        // Loop invariants: a header dominates every block of its loop and
        // block order is contiguous per loop and covers reachable blocks.
        let dom = DomTree::new(&g);
        let li = LoopInfo::new(&g, &dom);
        for b in 0..n {
            let b = Block::new(b);
            if let Some(l) = li.innermost_loop(b) {
                assert!(dom.dominates(li.get(l).header, b));
            }
        }
        let rpo = Rpo::new(&g);
        let order = li.block_order(&rpo);
        let mut sorted = order.clone();
        sorted.sort();
        let mut want = rpo.order().to_vec();
        want.sort();
        assert_eq!(sorted, want);
        assert_contiguous(&order, &li);
    }
}

#[test]
fn long_chain_does_not_overflow_the_stack() {
    let n = 20_000u32;
    let edges: Vec<(u32, u32)> = (0..n - 1).map(|i| (i, i + 1)).chain([(n - 1, 1)]).collect();
    let g = cfg(n as usize, &edges);
    let rpo = Rpo::new(&g);
    assert_eq!(rpo.order().len(), n as usize);
    let dom = DomTree::new(&g);
    assert_eq!(dom.idom(Block(n - 1)), Some(Block(n - 2)));
    assert!(dom.dominates(Block(1), Block(n - 1)));
    assert!(!dom.dominates(Block(n - 1), Block(1)));
    let li = LoopInfo::new(&g, &dom);
    assert_eq!(li.loops().len(), 1);
    assert_eq!(li.loop_depth(Block(n / 2)), 1);
    assert_eq!(li.block_order(&rpo).len(), n as usize);
}

#[test]
fn deep_loop_nest() {
    // Loop k has header k and latch 2n-1-k: 0..n headers nested, back
    // edges (2n-1-k) -> k; chain 0 -> 1 -> ... -> 2n-1.
    let n = 2_000u32;
    let mut edges: Vec<(u32, u32)> = (0..2 * n - 1).map(|i| (i, i + 1)).collect();
    for k in 1..n {
        edges.push((2 * n - 1 - k, k));
    }
    let g = cfg(2 * n as usize, &edges);
    let dom = DomTree::new(&g);
    let li = LoopInfo::new(&g, &dom);
    assert_eq!(li.loops().len(), n as usize - 1);
    assert_eq!(li.loop_depth(Block(n)), n - 1);
    assert_eq!(li.loop_depth(Block(1)), 1);
    assert_eq!(li.loop_depth(Block(2 * n - 1)), 0);
}

#[test]
fn random_trees_have_brute_force_idoms_and_rows_and_reuse_gives_the_same_tree() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut reused = DomTree::default();
    for _ in 0..300 {
        let n = 1 + (rng.next() % 14) as usize;
        let m = (rng.next() % (3 * n as u64 + 1)) as usize;
        let edges: Vec<(u32, u32)> = (0..m)
            .map(|_| {
                (
                    (rng.next() % n as u64) as u32,
                    (rng.next() % n as u64) as u32,
                )
            })
            .collect();
        let g = cfg(n, &edges);
        let dom = DomTree::new(&g);
        reused.compute(&g);
        assert_eq!(reused, dom);
        let mut rows = 0;
        for b in (0..n).map(Block::new) {
            let reachable = dom.is_reachable(b);
            // The immediate dominator strictly dominates `b`, and every
            // other strict dominator of `b` dominates it.
            match dom.idom(b) {
                Some(d) => {
                    assert!(reachable && brute_dominates(&g, d, b) && d != b);
                    for a in (0..n).map(Block::new) {
                        if a != b && brute_dominates(&g, a, b) && dom.is_reachable(a) {
                            assert!(brute_dominates(&g, a, d), "{a} over idom {d} of {b}");
                        }
                    }
                }
                None => assert!(b == Block(0) || !reachable, "{b} has no idom"),
            }
            let row = dom.children(b);
            assert!(row.iter().all(|&c| dom.idom(c) == Some(b)));
            rows += row.len();
        }
        let reachable = (0..n).filter(|&b| dom.is_reachable(Block::new(b))).count();
        assert_eq!(rows, reachable - 1);
    }
}
