//! Dead code elimination, block merging and compaction: the last pass of
//! every pipeline.
//!
//! 1. **Merging**: a block ending in `jmp C(args)`, where `C` has no other
//!    incoming edge, absorbs `C` (its parameters become the arguments:
//!    values are substituted; a literal argument becomes a `copy` of it,
//!    so that positions which cannot hold a literal keep a value).
//! 2. **Liveness** (mark and sweep over SSA, so dead cycles die too): an
//!    instruction is live when it has an effect or may trap (stores,
//!    calls, terminators, divisions by a possibly-zero divisor) or when a
//!    live instruction uses its result; a block parameter is live when
//!    something live uses it, and only then are the arguments passed to it
//!    live. Unreachable blocks are dropped whole.
//! 3. **Compaction**: blocks, instructions and values are renumbered into
//!    fresh tables holding only what is left, blocks in the order the
//!    back ends lay them out (reverse postorder, loops contiguous); dead
//!    parameters disappear together with their arguments on every edge.
//!    Source locations move with their instructions and values.
//!
//! Each step is linear in the size of the function.

use super::fold::apply_everywhere;
use super::subst::Subst;
use super::Ctx;
use crate::analysis::FuncAnalysis;
use crate::ir::{
    Block, BlockCall, Function, Inst, InstData, InstKind, OpList, Opcode, Operand, SrcMapBuilder,
    SwitchCase, Value, ValueData, ValueDef,
};
use smallvec::SmallVec;

const NONE: u32 = u32::MAX;

/// Buffers of the pass, reused from function to function ([`Ctx`]).
#[derive(Default)]
pub struct Scratch {
    subst: Subst,
    gone: Vec<bool>,
    live: Live,
    work: Vec<Value>,
    vmap: Vec<u32>,
    bmap: Vec<u32>,
    src: SrcMapBuilder,
}

/// Runs the pass over `f`.
pub fn run(f: &mut Function) {
    run_with(f, &mut Ctx::default());
}

/// [`run`] with the analyses in `cx` (they serve when they describe `f`
/// and no blocks get merged); they are invalid afterwards.
pub fn run_with(f: &mut Function, cx: &mut Ctx) {
    let s = &mut cx.dce;
    if merge_blocks(f, cx.an.get(f), s) {
        cx.an.invalidate();
    }
    // One set of analyses for marking and for the layout of the
    // compacted function (merging was the last change to the CFG).
    let a = cx.an.get(f);
    mark(f, a, s);
    compact(f, a, s);
    cx.an.invalidate();
}

/// Merges each block ending in `jmp C` with `C` when that is `C`'s only
/// incoming edge; whether it merged any. `a` describes `f`.
fn merge_blocks(f: &mut Function, a: &FuncAnalysis, s: &mut Scratch) -> bool {
    s.gone.clear();
    s.gone.resize(f.blocks.len(), false);
    let mut merged = false;
    for &b in a.rpo.order() {
        if s.gone[b.index()] {
            continue;
        }
        while let Some(&t) = f.blocks[b.index()].insts.last() {
            let InstKind::Jmp { dest } = &f.insts[t.index()].kind else {
                break;
            };
            let c = dest.block;
            // A block whose only predecessor (as the function was) ends
            // in a jump has that jump as its only incoming edge: the jump
            // now ending `b` was that predecessor's.
            if c == b || c == f.entry() || s.gone[c.index()] || a.cfg.preds(c).len() != 1 {
                break;
            }
            if !merged {
                s.subst.reset(f.values.len());
                merged = true;
            }
            let args: SmallVec<[Operand; 8]> = f.args(dest.args).into();
            let params = std::mem::take(&mut f.blocks[c.index()].params);
            let mut moved: Vec<Inst> = Vec::new();
            for (&p, &arg) in params.iter().zip(&args) {
                if let Operand::Const(_) = arg {
                    // Defined by a copy from now on.
                    let ty = f.values[p.index()].ty;
                    let i = Inst::new(f.insts.len());
                    f.insts.push(InstData {
                        opcode: Opcode::Copy,
                        ty: Some(ty),
                        result: Some(p),
                        kind: InstKind::Unary { arg },
                    });
                    f.values[p.index()].def = ValueDef::Inst(i);
                    moved.push(i);
                }
                s.subst.set(p, arg);
            }
            let body = std::mem::take(&mut f.blocks[c.index()].insts);
            let insts = &mut f.blocks[b.index()].insts;
            insts.pop();
            insts.extend(moved);
            insts.extend(body);
            s.gone[c.index()] = true;
        }
    }
    if merged {
        s.subst.grow(f.values.len());
        apply_everywhere(f, &mut s.subst);
    }
    merged
}

/// What survives: per block, per instruction and per value.
#[derive(Default)]
struct Live {
    block: Vec<bool>,
    inst: Vec<bool>,
    value: Vec<bool>,
}

/// Marks the live instructions and values of the reachable blocks (in
/// `s.live`). `a` describes `f`.
fn mark(f: &Function, a: &FuncAnalysis, s: &mut Scratch) {
    let live = &mut s.live;
    for (v, n) in [
        (&mut live.block, f.blocks.len()),
        (&mut live.inst, f.insts.len()),
        (&mut live.value, f.values.len()),
    ] {
        v.clear();
        v.resize(n, false);
    }
    for &b in a.rpo.order() {
        live.block[b.index()] = true;
    }
    let work = &mut s.work;
    work.clear();
    let push = |op: Operand, work: &mut Vec<Value>, value: &mut Vec<bool>| {
        if let Operand::Value(v) = op {
            if let Some(l) = value.get_mut(v.index()) {
                if !*l {
                    *l = true;
                    work.push(v);
                }
            }
        }
    };
    // Roots.
    for &b in a.rpo.order() {
        for &i in &f.blocks[b.index()].insts {
            let d = &f.insts[i.index()];
            if super::removable_if_unused(d) {
                continue;
            }
            live.inst[i.index()] = true;
            match &d.kind {
                // Block arguments follow their parameters.
                InstKind::Jmp { .. } => {}
                InstKind::Br { cond, .. } => push(*cond, work, &mut live.value),
                _ => f.for_each_operand(i, |op| push(op, work, &mut live.value)),
            }
        }
    }
    while let Some(v) = work.pop() {
        match f.values[v.index()].def {
            ValueDef::FuncParam(_) => {}
            ValueDef::Inst(i) => {
                if !live.inst[i.index()] {
                    live.inst[i.index()] = true;
                    f.for_each_operand(i, |op| push(op, work, &mut live.value));
                }
            }
            ValueDef::BlockParam(b, k) => {
                // Every edge into `b` from a reachable block passes an
                // argument for the parameter (`switch` edges pass none).
                for &p in a.cfg.preds(b) {
                    if !a.rpo.is_reachable(p) {
                        continue;
                    }
                    let Some(t) = f.terminator(p) else { continue };
                    for bc in f.insts[t.index()].block_calls() {
                        if bc.block == b {
                            if let Some(&arg) = f.args(bc.args).get(k as usize) {
                                push(arg, work, &mut live.value);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Renumbers `f` densely with only the live parts (`s.live`), blocks in
/// layout order. `a` is the analysis of `f` as it is.
///
/// Instructions, values and operand lists go to new tables of their exact
/// size; blocks keep their own vectors, filtered in place.
fn compact(f: &mut Function, a: &FuncAnalysis, s: &mut Scratch) {
    let live = &s.live;
    // The layout the back ends use: reverse postorder, each loop's blocks
    // together (`LoopInfo::block_order`), so the printed IR reads in the
    // order the code will be laid out.
    let mut order = a.loops.block_order(&a.rpo);
    order.retain(|b| {
        live.block[b.index()] && (b.index() == 0 || !f.blocks[b.index()].insts.is_empty())
    });
    if is_compact(f, &order, live) {
        return;
    }
    let bmap = &mut s.bmap;
    bmap.clear();
    bmap.resize(f.blocks.len(), NONE);
    for (k, b) in order.iter().enumerate() {
        bmap[b.index()] = k as u32;
    }
    let vmap = &mut s.vmap;
    vmap.clear();
    vmap.resize(f.values.len(), NONE);
    let src = &mut s.src;
    src.clear();
    src.func = f.srcmap.func;
    src.end = f.srcmap.end;
    for &l in f.srcmap.param_types() {
        src.push_param_type(l);
    }
    let keep_locs = !f.srcmap.is_empty();

    // Values: function parameters, live block parameters, then results,
    // in the new order.
    let old_values = std::mem::take(&mut f.values);
    let n_live_values = live.value.iter().filter(|&&l| l).count();
    let mut values: Vec<ValueData> = Vec::with_capacity(n_live_values + f.params.len());
    let mut add_value = |values: &mut Vec<ValueData>, v: Value, def: ValueDef| {
        let d = &old_values[v.index()];
        vmap[v.index()] = values.len() as u32;
        values.push(ValueData {
            ty: d.ty,
            def,
            name: d.name,
        });
        if keep_locs {
            src.push_value(f.srcmap.value(v));
        }
    };
    for (i, &p) in f.params.iter().enumerate() {
        add_value(&mut values, p, ValueDef::FuncParam(i as u32));
    }
    for (nb, &ob) in order.iter().enumerate() {
        let mut k = 0;
        for &p in &f.blocks[ob.index()].params {
            if live.value[p.index()] {
                add_value(&mut values, p, ValueDef::BlockParam(Block::new(nb), k));
                k += 1;
            }
        }
    }
    let mut n_insts = 0u32;
    for &ob in &order {
        for &i in &f.blocks[ob.index()].insts {
            if live.inst[i.index()] {
                if let Some(r) = f.insts[i.index()].result {
                    add_value(&mut values, r, ValueDef::Inst(Inst(n_insts)));
                }
                n_insts += 1;
            }
        }
    }
    for p in &mut f.params {
        *p = Value(vmap[p.index()]);
    }

    // Instructions, with their operand lists moved to new pools (the
    // arguments of dead parameters dropped) and their targets renamed.
    let mut insts: Vec<InstData> = Vec::with_capacity(n_insts as usize);
    let mut pool = Pools {
        args: Vec::with_capacity(f.arg_pool.len()),
        cases: Vec::with_capacity(f.case_pool.len()),
    };
    for &ob in &order {
        let n = f.blocks[ob.index()].insts.len();
        let mut w = 0;
        for k in 0..n {
            let i = f.blocks[ob.index()].insts[k];
            if !live.inst[i.index()] {
                continue;
            }
            let mut d = f.insts[i.index()];
            let same_shape = retarget(f, &mut pool, &mut d, bmap, &live.value);
            d.result = d.result.map(|r| Value(vmap[r.index()]));
            if keep_locs {
                src.push_inst_from(&f.srcmap, i, same_shape);
            }
            f.blocks[ob.index()].insts[w] = Inst::new(insts.len());
            w += 1;
            insts.push(d);
        }
        f.blocks[ob.index()].insts.truncate(w);
    }
    // Block parameters, now that no terminator needs the old ones.
    for &ob in &order {
        let params = &mut f.blocks[ob.index()].params;
        params.retain(|p| live.value[p.index()]);
        for p in params.iter_mut() {
            *p = Value(vmap[p.index()]);
        }
    }
    if keep_locs {
        for &b in &order {
            src.push_block(f.srcmap.block(b));
        }
    }
    let identity =
        order.len() == f.blocks.len() && order.iter().enumerate().all(|(k, b)| b.index() == k);
    if !identity {
        let mut old_blocks = std::mem::take(&mut f.blocks);
        f.blocks = order
            .iter()
            .map(|&b| {
                let bd = &mut old_blocks[b.index()];
                crate::ir::BlockData {
                    name: bd.name,
                    params: std::mem::take(&mut bd.params),
                    insts: std::mem::take(&mut bd.insts),
                }
            })
            .collect();
    }
    f.values = values;
    f.insts = insts;
    f.arg_pool = pool.args;
    f.case_pool = pool.cases;
    let rename = |op: &mut Operand| {
        if let Operand::Value(v) = *op {
            *op = Operand::Value(Value(vmap[v.index()]));
        }
    };
    for i in 0..f.insts.len() {
        f.for_each_operand_mut(Inst::new(i), rename);
    }
    f.srcmap = src.build();
}

/// Whether [`compact`] would rebuild `f` as it is: the blocks already in
/// `order`, every instruction in a block and live, numbered in layout
/// order, every value live where compaction keeps it (each block
/// parameter; each result, whose instruction is live) and numbered as
/// compaction numbers them (function parameters, block parameters in
/// block order, then results in layout order). A function that no pass
/// changed (or that `dce` compacted before) passes this check, and
/// skipping its rebuild saves most of the pass. The operand pools may
/// still hold lists no instruction refers to; they are never read.
fn is_compact(f: &Function, order: &[Block], live: &Live) -> bool {
    if order.len() != f.blocks.len() || order.iter().enumerate().any(|(k, b)| b.index() != k) {
        return false;
    }
    let mut next_value = 0usize;
    for &p in &f.params {
        if p.index() != next_value {
            return false;
        }
        next_value += 1;
    }
    for bd in &f.blocks {
        for &p in &bd.params {
            if p.index() != next_value || !live.value[p.index()] {
                return false;
            }
            next_value += 1;
        }
    }
    let mut next_inst = 0usize;
    for bd in &f.blocks {
        for &i in &bd.insts {
            if i.index() != next_inst || !live.inst[i.index()] {
                return false;
            }
            next_inst += 1;
            if let Some(r) = f.insts[i.index()].result {
                if r.index() != next_value {
                    return false;
                }
                next_value += 1;
            }
        }
    }
    next_inst == f.insts.len() && next_value == f.values.len()
}

/// The new operand and case pools being filled by [`compact`].
struct Pools {
    args: Vec<Operand>,
    cases: Vec<SwitchCase>,
}

/// Moves the operand and case lists of `d` (an instruction of `f`) into
/// `pool`, renaming the target blocks of a terminator and dropping the
/// arguments of dead parameters; whether `d` keeps all its operands.
fn retarget(
    f: &Function,
    pool: &mut Pools,
    d: &mut InstData,
    bmap: &[u32],
    live_value: &[bool],
) -> bool {
    let copy = |pool: &mut Pools, list: OpList| {
        let start = pool.args.len();
        pool.args.extend_from_slice(f.args(list));
        OpList::new(start, list.len())
    };
    let mut same = true;
    let mut fix = |pool: &mut Pools, bc: &mut BlockCall| {
        let params = &f.blocks[bc.block.index()].params;
        let start = pool.args.len();
        for (k, &a) in f.args(bc.args).iter().enumerate() {
            if params.get(k).is_none_or(|p| live_value[p.index()]) {
                pool.args.push(a);
            } else {
                same = false;
            }
        }
        bc.args = OpList::new(start, pool.args.len() - start);
        bc.block = Block(bmap[bc.block.index()]);
    };
    match &mut d.kind {
        InstKind::Call { args, .. } => *args = copy(pool, *args),
        InstKind::Jmp { dest } => fix(pool, dest),
        InstKind::Br {
            then_dest,
            else_dest,
            ..
        } => {
            fix(pool, then_dest);
            fix(pool, else_dest);
        }
        InstKind::Switch { default, cases, .. } => {
            *default = Block(bmap[default.index()]);
            let start = pool.cases.len();
            pool.cases
                .extend(f.cases(*cases).iter().map(|c| SwitchCase {
                    key: c.key,
                    block: Block(bmap[c.block.index()]),
                }));
            *cases = crate::ir::CaseList::new(start, pool.cases.len() - start);
        }
        _ => {}
    }
    same
}
