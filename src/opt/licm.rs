//! Loop-invariant code motion.
//!
//! Unless no instruction is invariant in its innermost loop (then nothing
//! would move, and the function is left as it is), every natural loop
//! first gets a preheader: a block outside the loop
//! whose only successor is the header and which is the header's only
//! predecessor from outside (an existing one is used when there is one;
//! otherwise a new block takes over every entering edge and passes the
//! header's parameters on).
//!
//! Then each pure instruction ([`super::is_pure`]: no effect, no memory
//! access, no possible trap; a division only by a literal other than 0, or
//! -1 for `sdiv`) moves to the preheader of the outermost loop in which
//! all its operands are defined outside: there it runs once per entry
//! into that loop instead of once per iteration. `addr` stays where it is:
//! it costs one instruction, less than the register it would hold across
//! the loop. Since nothing that moves
//! can trap or touch memory, running it when the original program would
//! not have (a loop that runs zero times) changes nothing observable.
//! Loads never move.
//!
//! Blocks are visited in reverse postorder, so operands move before their
//! users and each instruction moves once, straight to its final place.
//! The cost per instruction is one O(1) containment test per loop it
//! leaves (loop-tree preorder numbers).

use super::labels::Labels;
use super::Analyses;
use crate::analysis::{FuncAnalysis, LoopId};
use crate::ir::{Block, Function, Inst, InstKind, InstList, Operand, ValueDef};

const NONE: u32 = u32::MAX;

/// Runs the pass over `f`; whether it hoisted anything.
pub fn run(f: &mut Function) -> bool {
    run_with(f, &mut Analyses::default())
}

/// [`run`] with `cache`: the analyses of `f` as it is, when known. On
/// return it holds them again (hoisting moves instructions only; the
/// preheaders it may add change the CFG, and then the analyses are
/// recomputed).
pub fn run_with(f: &mut Function, cache: &mut Analyses) -> bool {
    if f.blocks.is_empty() {
        return false;
    }
    if !has_backward_edge(f) {
        return false;
    }
    if cache.get(f).loops.loops().is_empty() {
        return false;
    }
    let a = cache.get(f);
    if !any_invariant(f, a) {
        // Nothing would move: no preheaders (nor the analyses they cost).
        return false;
    }
    if make_preheaders(f, a) {
        cache.invalidate();
    }
    let a = cache.get(f);
    match find_preheaders(f, a) {
        Some(preheaders) => hoist(f, a, &preheaders),
        None => false,
    }
}

/// Whether some edge goes to a block at or before its source in layout
/// order. Every cycle has such an edge, so without one the function has no
/// loop: a linear test that spares the analyses.
fn has_backward_edge(f: &Function) -> bool {
    (0..f.blocks.len()).any(|b| {
        let Some(t) = f.terminator(Block::new(b)) else {
            return false;
        };
        let mut back = false;
        f.for_each_successor(t, |s| back |= s.index() <= b);
        back
    })
}

/// The predecessors of loop `l`'s header from outside the loop (reachable
/// ones only).
fn entering_preds(a: &FuncAnalysis, l: LoopId) -> Vec<Block> {
    let h = a.loops.get(l).header;
    a.cfg
        .preds(h)
        .iter()
        .copied()
        .filter(|&p| a.rpo.is_reachable(p) && !in_loop(a, l, p))
        .collect()
}

fn in_loop(a: &FuncAnalysis, l: LoopId, b: Block) -> bool {
    a.loops
        .innermost_loop(b)
        .is_some_and(|bl| a.loops.contains(l, bl))
}

/// Whether `p`'s terminator is a `jmp` (its only successor is its target).
fn ends_in_jmp(f: &Function, p: Block) -> bool {
    f.terminator(p)
        .is_some_and(|t| matches!(f.inst(t).kind, InstKind::Jmp { .. }))
}

/// Gives every loop without one a preheader. Returns whether blocks were
/// added.
fn make_preheaders(f: &mut Function, a: &FuncAnalysis) -> bool {
    let mut labels = Labels::of(f);
    let mut added = false;
    for (li, l) in a.loops.loops().iter().enumerate() {
        let preds = entering_preds(a, LoopId(li as u32));
        if preds.len() == 1 && ends_in_jmp(f, preds[0]) {
            continue;
        }
        if preds.is_empty() {
            continue;
        }
        let h = l.header;
        let label = unique_name(f, &labels, f.block_name(h));
        let ph = labels.new_block(f, &label);
        let param_types: Vec<_> = f.blocks[h.index()]
            .params
            .iter()
            .map(|&p| f.values[p.index()].ty)
            .collect();
        let args: Vec<Operand> = param_types
            .into_iter()
            .map(|ty| Operand::Value(f.add_block_param(ph, ty, None)))
            .collect();
        let args = f.make_args(&args);
        f.push_inst(
            ph,
            crate::ir::Opcode::Jmp,
            None,
            InstKind::Jmp {
                dest: crate::ir::BlockCall { block: h, args },
            },
            None,
        );
        for p in preds {
            let Some(t) = f.terminator(p) else { continue };
            redirect(f, t, h, ph);
        }
        added = true;
    }
    added
}

/// A label not yet used: `NAME.ph`, `NAME.ph1`, ...
fn unique_name(f: &Function, labels: &Labels, base: &str) -> String {
    let mut n = 0;
    loop {
        let name = if n == 0 {
            format!("{base}.ph")
        } else {
            format!("{base}.ph{n}")
        };
        if !labels.taken(f, &name) {
            return name;
        }
        n += 1;
    }
}

/// Points every edge of terminator `t` that goes to `from` at `to`.
fn redirect(f: &mut Function, t: Inst, from: Block, to: Block) {
    let Function {
        insts, case_pool, ..
    } = f;
    match &mut insts[t.index()].kind {
        InstKind::Jmp { dest } if dest.block == from => dest.block = to,
        InstKind::Br {
            then_dest,
            else_dest,
            ..
        } => {
            for d in [then_dest, else_dest] {
                if d.block == from {
                    d.block = to;
                }
            }
        }
        InstKind::Switch { default, cases, .. } => {
            if *default == from {
                *default = to;
            }
            for c in case_pool.get_mut(cases.range()).unwrap_or(&mut []) {
                if c.block == from {
                    c.block = to;
                }
            }
        }
        _ => {}
    }
}

/// The preheader of every loop, or `None` if a loop has none (a loop with
/// no entering edge, unreachable from outside: then nothing moves).
fn find_preheaders(f: &Function, a: &FuncAnalysis) -> Option<Vec<Block>> {
    let mut out = Vec::with_capacity(a.loops.loops().len());
    for li in 0..a.loops.loops().len() {
        let preds = entering_preds(a, LoopId(li as u32));
        if preds.len() != 1 || !ends_in_jmp(f, preds[0]) {
            return None;
        }
        out.push(preds[0]);
    }
    Some(out)
}

/// Preorder and postorder numbers of the loop tree, for O(1) containment.
struct LoopTree {
    pre: Vec<u32>,
    post: Vec<u32>,
}

impl LoopTree {
    fn new(a: &FuncAnalysis) -> LoopTree {
        let loops = a.loops.loops();
        let n = loops.len();
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (i, l) in loops.iter().enumerate() {
            match l.parent {
                Some(p) => children[p.0 as usize].push(i as u32),
                None => roots.push(i as u32),
            }
        }
        let mut t = LoopTree {
            pre: vec![0; n],
            post: vec![0; n],
        };
        let (mut pre, mut post) = (0u32, 0u32);
        let mut stack: Vec<(u32, usize)> = Vec::new();
        for r in roots {
            t.pre[r as usize] = pre;
            pre += 1;
            stack.push((r, 0));
            while let Some(top) = stack.last_mut() {
                let (l, i) = *top;
                if let Some(&c) = children[l as usize].get(i) {
                    top.1 += 1;
                    t.pre[c as usize] = pre;
                    pre += 1;
                    stack.push((c, 0));
                } else {
                    t.post[l as usize] = post;
                    post += 1;
                    stack.pop();
                }
            }
        }
        t
    }

    /// Whether loop `inner` is `outer` or nested in it.
    fn contains(&self, outer: LoopId, inner: LoopId) -> bool {
        let (o, i) = (outer.0 as usize, inner.0 as usize);
        self.pre[o] <= self.pre[i] && self.post[i] <= self.post[o]
    }
}

/// The block of each instruction of `f`'s blocks (`NONE` for orphans).
fn inst_blocks(f: &Function) -> Vec<u32> {
    let mut inst_block = vec![NONE; f.insts.len()];
    for (b, bd) in f.blocks.iter().enumerate() {
        for &i in &bd.insts {
            inst_block[i.index()] = b as u32;
        }
    }
    inst_block
}

/// The block defining `op` (`None` for a literal or an orphan's result).
fn def_block(f: &Function, inst_block: &[u32], op: Operand) -> Option<Block> {
    let Operand::Value(v) = op else { return None };
    match f.values[v.index()].def {
        ValueDef::FuncParam(_) => Some(f.entry()),
        ValueDef::BlockParam(b, _) => Some(b),
        ValueDef::Inst(i) => match inst_block.get(i.index()) {
            Some(&b) if b != NONE => Some(Block(b)),
            _ => None,
        },
    }
}

/// Whether [`hoist`] may move something: `f` has a candidate (pure, not a
/// terminator, not `addr`) whose operands are all defined outside its
/// innermost loop. The first instruction [`hoist`] moves is such a
/// candidate (those after it may depend on moved ones), so when there is
/// none the pass changes nothing and need not add preheaders.
fn any_invariant(f: &Function, a: &FuncAnalysis) -> bool {
    let inst_block = inst_blocks(f);
    let tree = LoopTree::new(a);
    a.rpo.order().iter().any(|&b| {
        let Some(inner) = a.loops.innermost_loop(b) else {
            return false;
        };
        f.blocks[b.index()].insts.iter().any(|&i| {
            let d = &f.insts[i.index()];
            super::is_pure(d)
                && !d.opcode.is_terminator()
                && d.opcode != crate::ir::Opcode::Addr
                && f.operands(i).iter().all(|&op| {
                    def_block(f, &inst_block, op).is_none_or(|db| {
                        !a.loops
                            .innermost_loop(db)
                            .is_some_and(|dl| tree.contains(inner, dl))
                    })
                })
        })
    })
}

/// Moves each invariant pure instruction to the preheader of the
/// outermost loop it is invariant in; whether it moved any.
fn hoist(f: &mut Function, a: &FuncAnalysis, preheaders: &[Block]) -> bool {
    let mut hoisted = false;
    let tree = LoopTree::new(a);
    let mut inst_block = inst_blocks(f);
    for &b in a.rpo.order() {
        let Some(inner) = a.loops.innermost_loop(b) else {
            continue;
        };
        let insts = std::mem::take(&mut f.blocks[b.index()].insts);
        let mut kept = InstList::with_capacity(insts.len());
        for &i in &insts {
            let d = &f.insts[i.index()];
            // `addr` is one cheap instruction: hoisting it would only keep
            // a register busy across the loop.
            if !super::is_pure(d) || d.opcode.is_terminator() || d.opcode == crate::ir::Opcode::Addr
            {
                kept.push(i);
                continue;
            }
            // Leave loops outwards while every operand is defined outside.
            let ops = f.operands(i);
            let mut target: Option<LoopId> = None;
            let mut l = Some(inner);
            while let Some(x) = l {
                let invariant = ops.iter().all(|&op| match def_block(f, &inst_block, op) {
                    None => true,
                    Some(db) => !a
                        .loops
                        .innermost_loop(db)
                        .is_some_and(|dl| tree.contains(x, dl)),
                });
                if !invariant {
                    break;
                }
                target = Some(x);
                l = a.loops.get(x).parent;
            }
            let Some(x) = target else {
                kept.push(i);
                continue;
            };
            let ph = preheaders[x.0 as usize];
            let list = &mut f.blocks[ph.index()].insts;
            let at = list.len().saturating_sub(1);
            list.insert(at, i);
            inst_block[i.index()] = ph.0;
            hoisted = true;
        }
        f.blocks[b.index()].insts = kept;
    }
    hoisted
}
