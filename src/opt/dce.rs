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

use super::fold::{apply_everywhere, incoming_edges};
use super::subst::Subst;
use crate::analysis::{Cfg, FuncAnalysis, Rpo};
use crate::ir::{
    Block, BlockCall, BlockData, Function, Inst, InstData, InstKind, Opcode, Operand,
    SrcMapBuilder, SwitchCase, Value, ValueDef,
};
use smallvec::SmallVec;

const NONE: u32 = u32::MAX;

/// Runs the pass over `f`.
pub fn run(f: &mut Function) {
    run_with(f, None);
}

/// [`run`] with the analyses of `f` as it is, when known (they serve
/// unless blocks get merged).
pub fn run_with(f: &mut Function, analysis: Option<FuncAnalysis>) {
    let merged = merge_blocks(f);
    // One set of analyses for marking and for the layout of the
    // compacted function (merging was the last change to the CFG).
    let analysis = match analysis {
        Some(a) if !merged => a,
        _ => FuncAnalysis::new(f),
    };
    let live = mark(f, &analysis.rpo);
    compact(f, &live, &analysis);
}

/// Merges each block ending in `jmp C` with `C` when that is `C`'s only
/// incoming edge; whether it merged any.
fn merge_blocks(f: &mut Function) -> bool {
    let incoming = incoming_edges(f);
    let rpo = Rpo::new(&Cfg::new(f));
    let mut subst = Subst::new(f.values.len());
    let mut gone = vec![false; f.blocks.len()];
    let mut merged = false;
    for &b in rpo.order() {
        if gone[b.index()] {
            continue;
        }
        while let Some(&t) = f.blocks[b.index()].insts.last() {
            let InstKind::Jmp { dest } = &f.insts[t.index()].kind else {
                break;
            };
            let c = dest.block;
            if c == b || c == f.entry() || gone[c.index()] || incoming[c.index()].len() != 1 {
                break;
            }
            let args = f.args(dest.args).to_vec();
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
                subst.set(p, arg);
            }
            let body = std::mem::take(&mut f.blocks[c.index()].insts);
            moved.extend(body);
            let insts = &mut f.blocks[b.index()].insts;
            insts.pop();
            insts.extend(moved);
            gone[c.index()] = true;
            merged = true;
        }
    }
    subst.grow(f.values.len());
    apply_everywhere(f, &mut subst);
    merged
}

/// What survives: per block, per instruction and per value.
struct Live {
    block: Vec<bool>,
    inst: Vec<bool>,
    value: Vec<bool>,
}

/// Marks the live instructions and values of the reachable blocks.
fn mark(f: &Function, rpo: &Rpo) -> Live {
    let mut live = Live {
        block: vec![false; f.blocks.len()],
        inst: vec![false; f.insts.len()],
        value: vec![false; f.values.len()],
    };
    for &b in rpo.order() {
        live.block[b.index()] = true;
    }
    // Edges count only from reachable blocks (`inst_block` below).
    let incoming = incoming_edges(f);
    let mut inst_block = vec![NONE; f.insts.len()];
    for &b in rpo.order() {
        for &i in &f.blocks[b.index()].insts {
            inst_block[i.index()] = b.0;
        }
    }
    let mut work: Vec<Value> = Vec::new();
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
    for &b in rpo.order() {
        for &i in &f.blocks[b.index()].insts {
            let d = &f.insts[i.index()];
            if super::removable_if_unused(d) {
                continue;
            }
            live.inst[i.index()] = true;
            for op in root_operands(f, i) {
                push(op, &mut work, &mut live.value);
            }
        }
    }
    while let Some(v) = work.pop() {
        match f.values[v.index()].def {
            ValueDef::FuncParam(_) => {}
            ValueDef::Inst(i) => {
                if !live.inst[i.index()] {
                    live.inst[i.index()] = true;
                    for op in f.operands(i) {
                        push(op, &mut work, &mut live.value);
                    }
                }
            }
            ValueDef::BlockParam(b, k) => {
                for &(t, idx) in &incoming[b.index()] {
                    if idx == usize::MAX || inst_block[t.index()] == NONE {
                        continue;
                    }
                    let calls = f.insts[t.index()].block_calls();
                    if let Some(bc) = calls.get(idx).filter(|bc| bc.block == b) {
                        if let Some(&arg) = f.args(bc.args).get(k as usize) {
                            push(arg, &mut work, &mut live.value);
                        }
                    }
                }
            }
        }
    }
    live
}

/// The operands of a root that are live because it is: everything but
/// the block arguments of a terminator (those follow their parameters).
fn root_operands(f: &Function, i: Inst) -> SmallVec<[Operand; 4]> {
    match &f.insts[i.index()].kind {
        InstKind::Jmp { .. } => SmallVec::new(),
        InstKind::Br { cond, .. } => smallvec::smallvec![*cond],
        _ => f.operands(i),
    }
}

/// Rebuilds `f` with only the live parts, renumbered densely.
/// `analysis` is that of `f` as it is.
fn compact(f: &mut Function, live: &Live, analysis: &FuncAnalysis) {
    let mut old = std::mem::take(f);
    let n_live_insts = live.inst.iter().filter(|&&l| l).count();
    let mut new = Function {
        name: old.name.clone(),
        sig: old.sig.clone(),
        names: std::mem::take(&mut old.names),
        insts: Vec::with_capacity(n_live_insts),
        values: Vec::with_capacity(live.value.iter().filter(|&&l| l).count()),
        arg_pool: Vec::with_capacity(old.arg_pool.len()),
        ..Default::default()
    };
    let mut vmap = vec![NONE; old.values.len()];
    let mut bmap = vec![NONE; old.blocks.len()];
    let mut src = SrcMapBuilder::default();
    src.func = old.srcmap.func;
    src.end = old.srcmap.end;
    for &l in old.srcmap.param_types() {
        src.push_param_type(l);
    }
    let keep_locs = !old.srcmap.is_empty();
    let mut add_value = |new: &mut Function, src: &mut SrcMapBuilder, v: Value, def: ValueDef| {
        let d = &old.values[v.index()];
        let nv = new.new_value(d.ty, def, d.name);
        vmap[v.index()] = nv.0;
        if keep_locs {
            src.push_value(old.srcmap.value(v));
        }
        nv
    };
    for (i, &p) in old.params.iter().enumerate() {
        let nv = add_value(&mut new, &mut src, p, ValueDef::FuncParam(i as u32));
        new.params.push(nv);
    }
    // The layout the back ends use: reverse postorder, each loop's blocks
    // together (`LoopInfo::block_order`), so the printed IR reads in the
    // order the code will be laid out.
    let order: Vec<Block> = analysis
        .loops
        .block_order(&analysis.rpo)
        .into_iter()
        .filter(|b| {
            live.block[b.index()] && (b.index() == 0 || !old.blocks[b.index()].insts.is_empty())
        })
        .collect();
    new.blocks.reserve_exact(order.len());
    for &b in &order {
        let bd = &old.blocks[b.index()];
        bmap[b.index()] = new.blocks.len() as u32;
        let n_insts = bd.insts.iter().filter(|i| live.inst[i.index()]).count();
        new.blocks.push(BlockData {
            name: bd.name,
            params: Vec::new(),
            insts: Vec::with_capacity(n_insts),
        });
        if keep_locs {
            src.push_block(old.srcmap.block(b));
        }
    }
    // Parameters and results first, so every operand can be renamed.
    for &ob in &order {
        let bd = &old.blocks[ob.index()];
        let nb = Block(bmap[ob.index()]);
        for &p in &bd.params {
            if live.value[p.index()] {
                let k = new.blocks[nb.index()].params.len() as u32;
                let nv = add_value(&mut new, &mut src, p, ValueDef::BlockParam(nb, k));
                new.blocks[nb.index()].params.push(nv);
            }
        }
    }
    let mut imap = vec![NONE; old.insts.len()];
    let mut n_insts = 0u32;
    for &ob in &order {
        for &i in &old.blocks[ob.index()].insts {
            if live.inst[i.index()] {
                imap[i.index()] = n_insts;
                n_insts += 1;
                if let Some(r) = old.insts[i.index()].result {
                    add_value(&mut new, &mut src, r, ValueDef::Inst(Inst(imap[i.index()])));
                }
            }
        }
    }
    let rename = |op: Operand| match op {
        Operand::Value(v) => Operand::Value(Value(vmap[v.index()])),
        c => c,
    };
    let live_params = |b: Block| -> SmallVec<[bool; 8]> {
        old.blocks[b.index()]
            .params
            .iter()
            .map(|p| live.value[p.index()])
            .collect()
    };
    for &ob in &order {
        for &i in &old.blocks[ob.index()].insts {
            if !live.inst[i.index()] {
                continue;
            }
            let mut d = old.insts[i.index()];
            let before = old.operands(i).len();
            retarget(&old, &mut new, &mut d, &bmap, &live_params);
            d.result = d.result.map(|r| Value(vmap[r.index()]));
            let ni = Inst::new(new.insts.len());
            new.insts.push(d);
            new.for_each_operand_mut(ni, |op| *op = rename(*op));
            if keep_locs {
                let same_shape = new.operands(ni).len() == before;
                src.push_inst_from(&old.srcmap, i, same_shape);
            }
            new.blocks[bmap[ob.index()] as usize].insts.push(ni);
        }
    }
    new.srcmap = src.build();
    *f = new;
}

/// Moves the operand and case lists of `d` (an instruction of `old`) into
/// `new`'s pools, renaming the target blocks of a terminator and dropping
/// the arguments of dead parameters.
fn retarget(
    old: &Function,
    new: &mut Function,
    d: &mut InstData,
    bmap: &[u32],
    live_params: &impl Fn(Block) -> SmallVec<[bool; 8]>,
) {
    let fix = |new: &mut Function, bc: &mut BlockCall| {
        let keep = live_params(bc.block);
        let args: SmallVec<[Operand; 8]> = old
            .args(bc.args)
            .iter()
            .enumerate()
            .filter(|&(k, _)| keep.get(k).copied().unwrap_or(true))
            .map(|(_, &a)| a)
            .collect();
        bc.args = new.make_args(&args);
        bc.block = Block(bmap[bc.block.index()]);
    };
    match &mut d.kind {
        InstKind::Call { args, .. } => *args = new.make_args(old.args(*args)),
        InstKind::Jmp { dest } => fix(new, dest),
        InstKind::Br {
            then_dest,
            else_dest,
            ..
        } => {
            fix(new, then_dest);
            fix(new, else_dest);
        }
        InstKind::Switch { default, cases, .. } => {
            *default = Block(bmap[default.index()]);
            let moved: Vec<SwitchCase> = old
                .cases(*cases)
                .iter()
                .map(|c| SwitchCase {
                    key: c.key,
                    block: Block(bmap[c.block.index()]),
                })
                .collect();
            *cases = new.make_cases(&moved);
        }
        _ => {}
    }
}
