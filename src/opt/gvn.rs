//! Global value numbering over the dominator tree (common subexpression
//! elimination).
//!
//! A preorder walk of the dominator tree keeps a scoped table from
//! "operation on operands" to the value that computed it; an instruction
//! whose operation is already in the table (computed in a dominating
//! block, or earlier in this one) is replaced by that value. Each
//! instruction is first simplified by [`super::fold`], so constants and
//! identities found along the way feed the numbering.
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
use crate::analysis::{Cfg, DomTree};
use crate::ir::{Block, Const, Function, Inst, InstData, InstKind, Opcode, Operand, Type, Value};

/// An operation on operands: what makes two instructions compute the same
/// value.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    opcode: Opcode,
    ty: Option<Type>,
    args: [Operand; 3],
    /// The symbol of `addr`.
    sym: u32,
}

const UNUSED: Operand = Operand::Const(Const::Int(0));

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
    let dom = DomTree::new(&Cfg::new(f));
    let mut subst = Subst::new(f.values.len());
    let mut table: ScopedTable<Key, Value> = ScopedTable::new();
    let incoming = fold::incoming_edges(f);
    // Iterative preorder walk: (block, next child, table mark on entry).
    let mut stack: Vec<(Block, usize, usize)> = Vec::new();
    let entry = f.entry();
    let mark = table.mark();
    visit(f, &mut subst, &mut table, &incoming, entry);
    stack.push((entry, 0, mark));
    while let Some(top) = stack.last_mut() {
        let (b, i, mark) = *top;
        if let Some(&c) = dom.children(b).get(i) {
            top.1 += 1;
            let m = table.mark();
            visit(f, &mut subst, &mut table, &incoming, c);
            stack.push((c, 0, m));
        } else {
            table.pop_to(mark);
            stack.pop();
        }
    }
    fold::apply_everywhere(f, &mut subst);
}

/// Simplifies the parameters of `b` (as [`fold`] does, with what is known
/// so far) and simplifies and numbers its instructions.
fn visit(
    f: &mut Function,
    subst: &mut Subst,
    table: &mut ScopedTable<Key, Value>,
    incoming: &[Vec<(Inst, usize)>],
    b: Block,
) {
    fold::simplify_params(f, subst, incoming, b);
    for k in 0..f.blocks[b.index()].insts.len() {
        let inst = f.blocks[b.index()].insts[k];
        fold::simplify_inst(f, subst, inst);
        let d = &f.insts[inst.index()];
        let Some(r) = d.result else { continue };
        if subst.resolve(Operand::Value(r)) != Operand::Value(r) {
            continue;
        }
        if !(super::is_pure(d) || super::is_division(d.opcode)) {
            continue;
        }
        let Some(key) = Key::of(d) else { continue };
        match table.get(&key) {
            Some(&v) => {
                subst.set(r, Operand::Value(v));
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
            None => table.insert(key, r),
        }
    }
}
