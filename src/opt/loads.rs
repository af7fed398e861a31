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
//! One refinement keeps more: a store through base `p` at bytes
//! `[o, o+n)` cannot change bytes of `p` outside that range, so the latest
//! known accesses through `p` that it does not overlap (up to
//! `CARRY_WINDOW` of them) carry over into the version it starts.
//!
//! No load is ever added or moved: only removed when its value is known.
//! Linear in the size of the function, plus the depth of loop nesting for
//! each block that writes.

use super::subst::Subst;
use super::table::ScopedTable;
use super::Ctx;
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

/// How many of the latest known accesses a store looks at to carry the
/// ones it cannot overlap into the new version (a bound that keeps the
/// pass linear).
const CARRY_WINDOW: usize = 16;

/// Runs the pass over `f`; whether it replaced any load.
pub fn run(f: &mut Function) -> bool {
    run_with(f, &mut Ctx::default())
}

/// Buffers of the pass, reused from function to function ([`Ctx`]).
#[derive(Default)]
pub struct Scratch {
    table: ScopedTable<Key, Operand>,
    recent: Vec<(Key, Operand)>,
    loop_writes: Vec<bool>,
    entry_version: Vec<u32>,
    exit_version: Vec<u32>,
    after: Vec<u32>,
    stack: Vec<(Block, usize, (usize, usize))>,
}

/// [`run`] with the analyses and buffers of `cx` (the analyses are
/// computed if needed and stay valid: the pass leaves the CFG as it is).
pub fn run_with(f: &mut Function, cx: &mut Ctx) -> bool {
    if f.blocks.is_empty() {
        return false;
    }
    // Nothing to replace without a load: spare the analyses.
    let has_load = f.blocks.iter().any(|bd| {
        bd.insts
            .iter()
            .any(|i| matches!(f.insts[i.index()].kind, InstKind::Load { .. }))
    });
    if !has_load {
        return false;
    }
    let a = cx.an.get(f);
    let s = &mut cx.loads;
    versions(f, a, s);
    let subst = &mut cx.subst;
    subst.reset(f.values.len());
    s.table.clear();
    s.table.reserve(f.insts.len());
    s.recent.clear();
    let mut w = Walk {
        subst,
        table: &mut s.table,
        recent: &mut s.recent,
        entry_version: &s.entry_version,
        after: &s.after,
    };
    let stack = &mut s.stack;
    stack.clear();
    let entry = f.entry();
    let m = w.marks();
    w.visit(f, entry);
    stack.push((entry, 0, m));
    while let Some(top) = stack.last_mut() {
        let (b, i, (mark, recent)) = *top;
        if let Some(&c) = a.dom.children(b).get(i) {
            top.1 += 1;
            let m = w.marks();
            w.visit(f, c);
            stack.push((c, 0, m));
        } else {
            w.table.pop_to(mark);
            w.recent.truncate(recent);
            stack.pop();
        }
    }
    // Each replacement was recorded at its load, which dominates its
    // uses: the walk rewrote every use as it visited it (as in `gvn`).
    subst.changed()
}

/// The memory version at each block's entry, and after each writing
/// instruction (`NONE` for the others), into `s.entry_version` and
/// `s.after`.
fn versions(f: &Function, a: &FuncAnalysis, s: &mut Scratch) {
    let nb = f.blocks.len();
    // Loops that contain a write (in any block, inner loops included).
    let loop_writes = &mut s.loop_writes;
    loop_writes.clear();
    loop_writes.resize(a.loops.loops().len(), false);
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
    for (v, n) in [
        (&mut s.entry_version, nb),
        (&mut s.exit_version, nb),
        (&mut s.after, f.insts.len()),
    ] {
        v.clear();
        v.resize(n, NONE);
    }
    let (entry_version, exit_version, after) =
        (&mut s.entry_version, &mut s.exit_version, &mut s.after);
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
}

/// The state of the dominator-tree walk.
struct Walk<'a> {
    subst: &'a mut Subst,
    /// Known memory contents: access (with its version) -> value.
    table: &'a mut ScopedTable<Key, Operand>,
    /// The table's entries in insertion order (scoped like the table), so
    /// that a store can find the latest ones.
    recent: &'a mut Vec<(Key, Operand)>,
    entry_version: &'a [u32],
    after: &'a [u32],
}

/// The bytes `[offset, offset + n)` an access of `opcode.ty` covers.
fn bytes(offset: i64, opcode: Opcode, ty: Option<Type>) -> (i128, i128) {
    let n = opcode.access_bytes(ty).unwrap_or(8) as i128;
    (offset as i128, offset as i128 + n)
}

impl Walk<'_> {
    fn marks(&self) -> (usize, usize) {
        (self.table.mark(), self.recent.len())
    }

    fn insert(&mut self, key: Key, value: Operand) {
        self.recent.push((key.clone(), value));
        self.table.insert(key, value);
    }

    fn visit(&mut self, f: &mut Function, b: Block) {
        let mut version = self.entry_version[b.index()];
        for k in 0..f.blocks[b.index()].insts.len() {
            let inst = f.blocks[b.index()].insts[k];
            self.subst.apply(f, inst);
            let d = &f.insts[inst.index()];
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
                    match self.table.get(&key) {
                        Some(&v) => self.subst.set(r, v),
                        None => self.insert(key, Operand::Value(r)),
                    }
                }
                InstKind::Store { args, offset } => {
                    let (value, base, offset) = (args[0], args[1], *offset);
                    let old = version;
                    version = self.after[inst.index()];
                    self.carry(old, version, base, bytes(offset, d.opcode, d.ty));
                    if d.opcode == Opcode::Store {
                        let key = Key {
                            version,
                            base,
                            offset,
                            opcode: Opcode::Load,
                            ty: d.ty,
                        };
                        self.insert(key, value);
                    }
                }
                InstKind::Call { .. } => version = self.after[inst.index()],
                _ => {}
            }
        }
    }

    /// After a store of `stored` bytes through `base` ends version `old`:
    /// the latest accesses of `old` through the same base that the store
    /// cannot overlap still hold their values in version `new`.
    fn carry(&mut self, old: u32, new: u32, base: Operand, stored: (i128, i128)) {
        let from = self.recent.len().saturating_sub(CARRY_WINDOW);
        let kept: Vec<(Key, Operand)> = self.recent[from..]
            .iter()
            .filter(|(k, _)| {
                let (lo, hi) = bytes(k.offset, k.opcode, k.ty);
                k.version == old && k.base == base && (hi <= stored.0 || stored.1 <= lo)
            })
            .cloned()
            .collect();
        for (mut k, v) in kept {
            k.version = new;
            self.insert(k, v);
        }
    }
}
