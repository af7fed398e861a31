//! Global value numbering over the dominator tree (common subexpression
//! elimination).
//!
//! A preorder walk of the dominator tree keeps a table from "operation on
//! operands" to the value that computed it and its block; an instruction
//! whose operation is already in the table, computed in a dominating block
//! (or earlier in this one), is replaced by that value. An entry from a
//! block that does not dominate is stale (its subtree is done: preorder
//! never returns to it) and is overwritten, so the table needs no undoing
//! when the walk leaves a subtree. Each
//! instruction is first simplified by [`super::fold`], so constants and
//! identities found along the way feed the numbering.
//!
//! Branch conditions are facts too: in a block reached only through the
//! `then` edge of `br %c` (its sole predecessor ends in that `br`, whose
//! other target differs), a compare `%c` is 1, and 0 behind the `else`
//! edge; uses of `%c` in the blocks it dominates read the literal, so a
//! repeated test of the same condition (a bounds check done twice) folds
//! away.
//!
//! What is numbered: pure instructions ([`super::is_pure`]) and divisions
//! that may trap. Replacing a division by an equal one that dominates it
//! is sound: if the earlier one trapped, the later one is never reached.
//! Loads are numbered by [`super::loads`] (they depend on memory);
//! `alloca` and calls never are. Commutative operations are keyed with
//! their operands in a fixed order.
//!
//! Linear in the size of the function (one visit per instruction, each
//! with O(1) expected table operations).

use super::fold;
use super::subst::Subst;
use super::table::ScopedTable;
use crate::analysis::DomTree;
use crate::analysis::{Cfg, FuncAnalysis};
use crate::ir::{Block, Const, Function, Inst, InstData, InstKind, Opcode, Operand, Type, Value};
use crate::registry::symbols::FxHashMap;
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

/// An operation on operands: what makes two instructions compute the same
/// value.
#[derive(Clone, PartialEq, Eq)]
struct Key {
    opcode: Opcode,
    ty: Option<Type>,
    args: [Operand; 3],
    /// The symbol of `addr`.
    sym: u32,
}

const UNUSED: Operand = Operand::Const(Const::int(0));

impl Key {
    fn of(d: &InstData) -> Option<Key> {
        let (args, sym) = match &d.kind {
            InstKind::Unary { arg } => ([*arg, UNUSED, UNUSED], 0),
            InstKind::Binary { args } => {
                let [mut a, mut b] = *args;
                if commutative(d.opcode) {
                    if let (Operand::Value(x), Operand::Value(y)) = (a, b) {
                        if y < x {
                            std::mem::swap(&mut a, &mut b);
                        }
                    }
                }
                ([a, b, UNUSED], 0)
            }
            InstKind::Select { args } => (*args, 0),
            InstKind::Addr { sym } => ([UNUSED; 3], sym.0),
            _ => return None,
        };
        Some(Key {
            opcode: d.opcode,
            ty: d.ty,
            args,
            sym,
        })
    }
}

/// Hashes a few words (the derived hash would feed every field and enum
/// tag separately); equal keys hash alike.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let ty = self.ty.map_or(0, |t| t as u64 + 1);
        h.write_u64(self.opcode as u64 | ty << 16 | (self.sym as u64) << 32);
        for a in &self.args {
            match a {
                Operand::Value(v) => h.write_u64(v.0 as u64),
                Operand::Const(c) => c.hash(h),
            }
        }
    }
}

fn commutative(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Add | Mul | And | Or | Xor | Eq | Ne | Fadd | Fmul | Feq | Fne
    )
}

/// Runs the pass over `f`.
pub fn run(f: &mut Function) {
    if f.blocks.is_empty() {
        return;
    }
    run_with(
        f,
        &FuncAnalysis::new(f),
        &mut Scratch::default(),
        &mut Default::default(),
    );
}

/// Buffers of the pass, reused from function to function
/// ([`super::Ctx`]).
#[derive(Default)]
pub struct Scratch {
    table: FxHashMap<Key, (Value, Block)>,
    known: ScopedTable<Value, i128>,
    incoming: fold::Incoming,
    stack: Vec<(Block, usize, usize)>,
}

/// [`run`] with the analyses of `f` as it is and buffers to reuse; returns
/// whether the CFG is still the one `a` describes (simplification may turn
/// a branch on a known condition into a jump), so that later passes can
/// reuse `a`.
pub fn run_with(f: &mut Function, a: &FuncAnalysis, s: &mut Scratch, subst: &mut Subst) -> bool {
    if f.blocks.is_empty() {
        return true;
    }
    let (cfg, dom) = (&a.cfg, &a.dom);
    subst.reset(f.values.len());
    if !s.table.is_empty() {
        s.table.clear();
    }
    s.table.reserve(f.insts.len());
    s.known.clear();
    s.incoming.compute(f);
    let mut w = Walk {
        subst,
        table: &mut s.table,
        dom,
        known: &mut s.known,
        incoming: &s.incoming,
        cfg_changed: false,
    };
    // Iterative preorder walk: (block, next child, table marks on entry).
    let stack = &mut s.stack;
    stack.clear();
    let entry = f.entry();
    let marks = w.marks();
    w.visit(f, cfg, entry);
    stack.push((entry, 0, marks));
    while let Some(top) = stack.last_mut() {
        let (b, i, marks) = *top;
        if let Some(&c) = dom.children(b).get(i) {
            top.1 += 1;
            let m = w.marks();
            w.visit(f, cfg, c);
            stack.push((c, 0, m));
        } else {
            w.known.pop_to(marks);
            stack.pop();
        }
    }
    // No second sweep: each replacement was recorded when its value's
    // definition was visited, and the walk visits every use of a value
    // after its definition (SSA: the definition dominates the use), so
    // every use has been rewritten as it was visited. (Blocks the walk
    // does not reach are unreachable: `dce` drops them unread.)
    !w.cfg_changed
}

/// The successors of terminator `t`, in order.
fn successors(f: &Function, t: Inst) -> SmallVec<[Block; 4]> {
    let mut out = SmallVec::new();
    f.for_each_successor(t, |s| out.push(s));
    out
}

/// The state of the walk.
struct Walk<'a> {
    subst: &'a mut Subst,
    /// Operations computed in the dominating blocks.
    table: &'a mut FxHashMap<Key, (Value, Block)>,
    dom: &'a DomTree,
    /// Compare results known in the current block: it is reached only
    /// through the `then` (1) or `else` (0) edge of a `br` on them.
    known: &'a mut ScopedTable<Value, i128>,
    incoming: &'a fold::Incoming,
    /// Whether some terminator now has other successors.
    cfg_changed: bool,
}

impl Walk<'_> {
    fn marks(&self) -> usize {
        self.known.mark()
    }

    /// Records what the branch into `b` tells, when `b`'s only
    /// predecessor ends in a `br` on a compare with two distinct targets.
    fn learn(&mut self, f: &Function, cfg: &Cfg, b: Block) {
        let [p] = cfg.preds(b) else { return };
        let Some(t) = f.terminator(*p) else { return };
        let InstKind::Br {
            cond: Operand::Value(c),
            then_dest,
            else_dest,
        } = &f.inst(t).kind
        else {
            return;
        };
        if then_dest.block == else_dest.block
            || !fold::def_of(f, Operand::Value(*c)).is_some_and(|d| fold::is_compare(d.opcode))
        {
            return;
        }
        self.known.insert(*c, (then_dest.block == b) as i128);
    }

    /// Simplifies the parameters of `b` (as [`fold`] does, with what is
    /// known so far) and simplifies and numbers its instructions.
    fn visit(&mut self, f: &mut Function, cfg: &Cfg, b: Block) {
        self.learn(f, cfg, b);
        fold::simplify_params(f, self.subst, self.incoming, b);
        let n = f.blocks[b.index()].insts.len();
        for k in 0..n {
            let inst = f.blocks[b.index()].insts[k];
            let term = k + 1 == n && f.insts[inst.index()].opcode.is_terminator();
            let succs_before = if term {
                successors(f, inst)
            } else {
                SmallVec::new()
            };
            self.subst.apply(f, inst);
            if !self.known.is_empty() && !super::subst::literal_free(&f.insts[inst.index()]) {
                let known = &self.known;
                f.for_each_operand_mut(inst, |op| {
                    if let Operand::Value(v) = *op {
                        if let Some(&k) = known.get(&v) {
                            *op = Operand::Const(Const::int(k));
                        }
                    }
                });
            }
            fold::simplify_applied(f, self.subst, inst);
            if term && successors(f, inst) != succs_before {
                self.cfg_changed = true;
            }
            self.number(f, inst, b);
        }
    }

    /// Replaces `inst` (in block `b`)'s result by an equal one computed
    /// before, or makes it available to what `inst` dominates.
    fn number(&mut self, f: &mut Function, inst: Inst, b: Block) {
        let d = &f.insts[inst.index()];
        let Some(r) = d.result else { return };
        if self.subst.resolve(Operand::Value(r)) != Operand::Value(r) {
            return;
        }
        if !(super::is_pure(d) || super::is_division(d.opcode)) {
            return;
        }
        let Some(key) = Key::of(d) else { return };
        let v = match self.table.entry(key) {
            Entry::Occupied(mut e) => {
                let (v, vb) = *e.get();
                if self.dom.dominates(vb, b) {
                    Some(v)
                } else {
                    // Stale: from a finished subtree.
                    *e.get_mut() = (r, b);
                    None
                }
            }
            Entry::Vacant(e) => {
                e.insert((r, b));
                None
            }
        };
        if let Some(v) = v {
            self.subst.set(r, Operand::Value(v));
            // A division that may trap would stay for its trap, which
            // the dominating one makes unreachable: it is a copy now.
            let d = &mut f.insts[inst.index()];
            if super::is_division(d.opcode) {
                d.opcode = Opcode::Copy;
                d.kind = InstKind::Unary {
                    arg: Operand::Value(v),
                };
            }
        }
    }
}
