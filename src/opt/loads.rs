//! Redundant load elimination and store-to-load forwarding.
//!
//! The alias rule is the simplest sound one: two accesses are the same
//! when they have the same base value, offset, width and type; any store
//! or call may write anything. A load is replaced by the value of an equal
//! load, or of a `store.T` of its address and type, when that access
//! dominates it and no store or call can run in between.
//!
//! "No store or call in between" is tracked with memory versions. A new
//! version starts at each store and call, and at the entry of a block
//! whose incoming edges may carry different versions; a block whose
//! forward predecessors all end with one version inherits it (so do loop
//! headers whose loop writes nothing: the back edges bring the same
//! version). Every path into a block with version `v` then passes no
//! write after `v` began, so an access with version `v` in a dominating
//! block (keyed with its version in a scoped table, walked over the
//! dominator tree as in [`super::gvn`]) has the same value.
//!
//! No load is ever added or moved: only removed when its value is known.
//! Linear in the size of the function, plus the depth of loop nesting for
//! each block that writes.

use super::subst::Subst;
use super::table::ScopedTable;
use crate::analysis::FuncAnalysis;
use crate::ir::{Block, Function, InstKind, Opcode, Operand, Type};

/// One memory access: what a load reads, with the version of memory.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    version: u32,
    base: Operand,
    offset: i64,
    opcode: Opcode,
    ty: Option<Type>,
}

const NONE: u32 = u32::MAX;

fn writes_memory(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Store | Opcode::Store8 | Opcode::Store16 | Opcode::Store32 | Opcode::Call
    )
}

/// Runs the pass over `f`.
pub fn run(f: &mut Function) {
    if f.blocks.is_empty() {
        return;
    }
    let a = FuncAnalysis::new(f);
    let (entry_version, after) = versions(f, &a);
    let mut subst = Subst::new(f.values.len());
    let mut table: ScopedTable<Key, Operand> = ScopedTable::new();
    let mut stack: Vec<(Block, usize, usize)> = Vec::new();
    let entry = f.entry();
    let m = table.mark();
    visit(f, &mut subst, &mut table, entry, &entry_version, &after);
    stack.push((entry, 0, m));
    while let Some(top) = stack.last_mut() {
        let (b, i, mark) = *top;
        if let Some(&c) = a.dom.children(b).get(i) {
            top.1 += 1;
            let m = table.mark();
            visit(f, &mut subst, &mut table, c, &entry_version, &after);
            stack.push((c, 0, m));
        } else {
            table.pop_to(mark);
            stack.pop();
        }
    }
    super::fold::apply_everywhere(f, &mut subst);
}

/// The memory version at each block's entry, and after each writing
/// instruction (`NONE` for the others).
fn versions(f: &Function, a: &FuncAnalysis) -> (Vec<u32>, Vec<u32>) {
    let nb = f.blocks.len();
    // Loops that contain a write (in any block, inner loops included).
    let mut loop_writes = vec![false; a.loops.loops().len()];
    for (b, bd) in f.blocks.iter().enumerate() {
        let writes = bd
            .insts
            .iter()
            .any(|i| writes_memory(f.insts[i.index()].opcode));
        if !writes {
            continue;
        }
        let mut l = a.loops.innermost_loop(Block::new(b));
        while let Some(x) = l {
            if loop_writes[x.0 as usize] {
                break;
            }
            loop_writes[x.0 as usize] = true;
            l = a.loops.get(x).parent;
        }
    }
    let mut entry_version = vec![NONE; nb];
    let mut exit_version = vec![NONE; nb];
    let mut after = vec![NONE; f.insts.len()];
    let mut next = 0u32;
    let mut fresh = || {
        next += 1;
        next - 1
    };
    for &b in a.rpo.order() {
        let here = a.rpo.index_of(b).unwrap_or(0);
        let header_loop = a
            .loops
            .innermost_loop(b)
            .filter(|&l| a.loops.get(l).header == b && !loop_writes[l.0 as usize]);
        let mut inherited: Option<u32> = None;
        let mut agree = b != f.entry();
        for &p in a.cfg.preds(b) {
            let Some(pi) = a.rpo.index_of(p) else {
                continue;
            };
            if pi >= here {
                // A back edge: fine only into a header of a loop without
                // writes, from inside that loop.
                let inside = header_loop.is_some_and(|l| {
                    a.loops
                        .innermost_loop(p)
                        .is_some_and(|pl| a.loops.contains(l, pl))
                });
                if !inside {
                    agree = false;
                }
                continue;
            }
            match inherited {
                None => inherited = Some(exit_version[p.index()]),
                Some(v) if v == exit_version[p.index()] => {}
                Some(_) => agree = false,
            }
        }
        let mut v = match inherited {
            Some(v) if agree => v,
            _ => fresh(),
        };
        entry_version[b.index()] = v;
        for &i in &f.blocks[b.index()].insts {
            if writes_memory(f.insts[i.index()].opcode) {
                v = fresh();
                after[i.index()] = v;
            }
        }
        exit_version[b.index()] = v;
    }
    (entry_version, after)
}

fn visit(
    f: &mut Function,
    subst: &mut Subst,
    table: &mut ScopedTable<Key, Operand>,
    b: Block,
    entry_version: &[u32],
    after: &[u32],
) {
    let mut version = entry_version[b.index()];
    for k in 0..f.blocks[b.index()].insts.len() {
        let inst = f.blocks[b.index()].insts[k];
        let d = &mut f.insts[inst.index()];
        subst.apply(d);
        match &d.kind {
            InstKind::Load { ptr, offset } => {
                let Some(r) = d.result else { continue };
                let key = Key {
                    version,
                    base: *ptr,
                    offset: *offset,
                    opcode: d.opcode,
                    ty: d.ty,
                };
                match table.get(&key) {
                    Some(&v) => subst.set(r, v),
                    None => table.insert(key, Operand::Value(r)),
                }
            }
            InstKind::Store { args, offset } => {
                version = after[inst.index()];
                if d.opcode == Opcode::Store {
                    let key = Key {
                        version,
                        base: args[1],
                        offset: *offset,
                        opcode: Opcode::Load,
                        ty: d.ty,
                    };
                    table.insert(key, args[0]);
                }
            }
            InstKind::Call { .. } => version = after[inst.index()],
            _ => {}
        }
    }
}
