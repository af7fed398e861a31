//! Inlining of small local functions, and direct calls for indirect calls
//! through a known address.
//!
//! - An indirect call whose callee is `addr @f` of a function of this
//!   module, with exactly `@f`'s signature, becomes `call @f`.
//! - A direct call of an inlinable function is replaced by a copy of its
//!   body: the calling block is split at the call, the copy's `ret v`
//!   becomes `jmp` to the continuation with `v` as its parameter (the
//!   call's own result value, so no use changes).
//!
//! Inlinable: a `local` function (an exported one may be redefined, in
//! the REPL, and every call must then reach the new body) of at most
//! [`MAX_INSTS`] instructions that calls nothing, has no loop, no
//! `alloca`, and nothing that can trap (no `trap`, no division by a
//! possibly-zero divisor). Such a call is invisible to the program: no
//! trap or interruption can stop inside it, so no backtrace would have
//! shown its frame. Literal arguments become `copy` instructions (the
//! callee may use its parameter where a literal cannot go);
//! [`super::fold`] propagates them.
//!
//! Linear: each call site is copied at most once (copies contain no
//! calls), and a caller stops growing at [`growth_budget`].

use super::labels::Labels;
use crate::ir::{
    Block, BlockCall, Callee, Function, Inst, InstData, InstKind, Linkage, Module, OpList, Opcode,
    Operand, Signature, SrcMap, SrcMapBuilder, SwitchCase, SymbolKind, Value, ValueDef,
};
use smallvec::SmallVec;

/// Largest body (instructions, terminators included) that is inlined.
pub const MAX_INSTS: usize = 24;

/// How many instructions a caller may reach by inlining, given its size.
pub fn growth_budget(size: usize) -> usize {
    size * 4 + 256
}

/// Runs the pass over every function of `module`; whether it inlined a
/// call or made one direct.
pub fn run(module: &mut Module) -> bool {
    let any_indirect = module.funcs.iter().any(|f| {
        f.insts.iter().any(|d| {
            matches!(
                d.kind,
                InstKind::Call {
                    callee: Callee::Indirect(_),
                    ..
                }
            )
        })
    });
    let mut candidates = take_candidates(module, any_indirect);
    if candidates.iter().all(Option::is_none) && !any_indirect {
        return false;
    }
    let signatures: Vec<Option<Signature>> = if any_indirect {
        module
            .symbols
            .iter()
            .map(|s| match &s.kind {
                SymbolKind::Func { sig, body: Some(_) } => Some(sig.clone()),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut changed = false;
    for f in &mut module.funcs {
        if any_indirect {
            changed |= direct_calls(f, &signatures);
        }
        changed |= inline_calls(f, &candidates);
    }
    // Put the candidates back (nothing above changes them: they call
    // nothing).
    for (s, g) in module.symbols.iter().zip(&mut candidates) {
        if let (SymbolKind::Func { body: Some(b), .. }, Some(g)) = (&s.kind, g.take()) {
            module.funcs[b.index()] = g;
        }
    }
    changed
}

/// The body of each inlinable function that some call may reach (a
/// direct call, or an `addr` of it when the module has indirect calls),
/// by symbol, taken out of `module` (its place holds an empty function
/// until [`run`] puts it back).
fn take_candidates(module: &mut Module, any_indirect: bool) -> Vec<Option<Function>> {
    let mut wanted = vec![false; module.symbols.len()];
    let mut any = false;
    for f in &module.funcs {
        for d in &f.insts {
            let sym = match d.kind {
                InstKind::Call {
                    callee: Callee::Direct(sym),
                    ..
                } => sym,
                InstKind::Addr { sym } if any_indirect => sym,
                _ => continue,
            };
            if let Some(w) = wanted.get_mut(sym.index()) {
                *w = true;
                any = true;
            }
        }
    }
    if !any {
        return Vec::new();
    }
    let mut out: Vec<Option<Function>> = Vec::with_capacity(module.symbols.len());
    for (s, &w) in module.symbols.iter().zip(&wanted) {
        let body = match &s.kind {
            SymbolKind::Func { body: Some(b), .. } if w && s.linkage == Linkage::Local => {
                module.funcs.get_mut(b.index()).filter(|f| inlinable(f))
            }
            _ => None,
        };
        out.push(body.map(std::mem::take));
    }
    out
}

/// Whether `f` may be inlined (see the module docs).
pub fn inlinable(f: &Function) -> bool {
    let size: usize = f.blocks.iter().map(|b| b.insts.len()).sum();
    if size > MAX_INSTS || f.blocks.is_empty() {
        return false;
    }
    for bd in &f.blocks {
        for &i in &bd.insts {
            let d = &f.insts[i.index()];
            let bad = match d.opcode {
                Opcode::Call | Opcode::Alloca | Opcode::Trap => true,
                op if super::is_division(op) => super::division_may_trap(d),
                _ => false,
            };
            if bad {
                return false;
            }
        }
    }
    acyclic_and_reachable(f)
}

/// Whether every block of `f` is reachable from the entry and no cycle
/// runs through them (every edge then goes forward in reverse postorder):
/// a depth-first search that meets no block still on its stack. For the
/// small functions [`inlinable`] looks at, on the stack only.
fn acyclic_and_reachable(f: &Function) -> bool {
    const UNSEEN: u8 = 0;
    const ON_STACK: u8 = 1;
    const DONE: u8 = 2;
    let n = f.blocks.len();
    let mut state: SmallVec<[u8; 32]> = SmallVec::from_elem(UNSEEN, n);
    // (block, successors of it visited so far)
    let mut stack: SmallVec<[(Block, usize); 32]> = SmallVec::new();
    let mut seen = 1;
    state[0] = ON_STACK;
    stack.push((Block::new(0), 0));
    while let Some(top) = stack.last_mut() {
        let (b, k) = *top;
        let mut next = None;
        if let Some(t) = f.terminator(b) {
            let mut i = 0;
            f.for_each_successor(t, |s| {
                if i == k {
                    next = Some(s);
                }
                i += 1;
            });
        }
        match next {
            Some(s) => {
                top.1 += 1;
                match state[s.index()] {
                    ON_STACK => return false,
                    UNSEEN => {
                        state[s.index()] = ON_STACK;
                        seen += 1;
                        stack.push((s, 0));
                    }
                    _ => {}
                }
            }
            None => {
                state[b.index()] = DONE;
                stack.pop();
            }
        }
    }
    seen == n
}

/// `call %p(args)` with `%p = addr @g` of a defined function whose
/// signature is the call's becomes `call @g(args)`; whether any did.
fn direct_calls(f: &mut Function, signatures: &[Option<Signature>]) -> bool {
    let mut changed = false;
    for bi in 0..f.blocks.len() {
        for k in 0..f.blocks[bi].insts.len() {
            let i = f.blocks[bi].insts[k];
            let d = &f.insts[i.index()];
            let InstKind::Call {
                callee: Callee::Indirect(Operand::Value(p)),
                args,
            } = &d.kind
            else {
                continue;
            };
            let ValueDef::Inst(pi) = f.values[p.index()].def else {
                continue;
            };
            let InstKind::Addr { sym } = f.insts[pi.index()].kind else {
                continue;
            };
            let Some(Some(sig)) = signatures.get(sym.index()) else {
                continue;
            };
            let site_params: Option<Vec<_>> = f
                .args(*args)
                .iter()
                .map(|a| a.as_value().map(|v| f.values[v.index()].ty))
                .collect();
            if site_params.as_deref() != Some(&sig.params[..]) || d.ty != sig.ret {
                continue;
            }
            let args = *args;
            // The source map needs no change: token 0 of a call is its
            // callee, `%p` or `@g` alike, and the arguments follow.
            f.insts[i.index()].kind = InstKind::Call {
                callee: Callee::Direct(sym),
                args,
            };
            changed = true;
        }
    }
    changed
}

/// Inlines every call of a candidate in `f`, within the growth budget;
/// whether it inlined any.
fn inline_calls(f: &mut Function, candidates: &[Option<Function>]) -> bool {
    let calls_candidate = f.insts.iter().any(|d| match d.kind {
        InstKind::Call {
            callee: Callee::Direct(sym),
            ..
        } => candidates.get(sym.index()).is_some_and(Option::is_some),
        _ => false,
    });
    if !calls_candidate {
        return false;
    }
    let mut changed = false;
    let budget = growth_budget(f.insts.len());
    let mut labels: Option<Labels> = None;
    // Instructions are only appended: the original map keeps locating the
    // original instructions (call sites), the builder collects the new.
    let orig = std::mem::take(&mut f.srcmap);
    let mut locs = Locs {
        orig: &orig,
        out: (!orig.is_empty()).then(|| orig.to_builder()),
    };
    let mut bi = 0;
    while bi < f.blocks.len() {
        let mut k = 0;
        while k < f.blocks[bi].insts.len() {
            let i = f.blocks[bi].insts[k];
            let callee = match &f.insts[i.index()].kind {
                InstKind::Call {
                    callee: Callee::Direct(sym),
                    ..
                } => candidates.get(sym.index()).and_then(Option::as_ref),
                _ => None,
            };
            match callee {
                Some(g) if f.insts.len() + g.insts.len() + 4 <= budget => {
                    let labels = labels.get_or_insert_with(|| Labels::of(f));
                    inline_one(f, Block::new(bi), k, g, labels, &mut locs);
                    changed = true;
                    // The rest of this block moved to a new block, visited
                    // later.
                    break;
                }
                _ => k += 1,
            }
        }
        bi += 1;
    }
    f.srcmap = match locs.out {
        Some(b) => b.build(),
        None => orig,
    };
    changed
}

/// Where the locations of appended instructions come from and go to.
struct Locs<'a> {
    /// The caller's map before the pass.
    orig: &'a SrcMap,
    /// The caller's map being extended; `None` for built IR.
    out: Option<SrcMapBuilder>,
}

/// Where an appended instruction's locations come from: an instruction
/// of a map, with its tokens or only its mnemonic.
type LocSource<'m> = Option<(&'m SrcMap, Inst, bool)>;

/// A new block of `f` labelled `base`, or `base.N` with the smallest `N`
/// that no block has.
fn new_unique_block(f: &mut Function, labels: &mut Labels, base: String) -> Block {
    let name = if labels.taken(f, &base) {
        (1usize..)
            .map(|n| format!("{base}.{n}"))
            .find(|s| !labels.taken(f, s))
            .unwrap_or(base)
    } else {
        base
    };
    labels.new_block(f, &name)
}

/// Replaces the call at `f.blocks[b].insts[k]` by a copy of `g`.
fn inline_one(
    f: &mut Function,
    b: Block,
    k: usize,
    g: &Function,
    labels: &mut Labels,
    locs: &mut Locs<'_>,
) {
    let call = f.blocks[b.index()].insts[k];
    let call_data = f.insts[call.index()];
    let InstKind::Call { args, .. } = call_data.kind else {
        return;
    };
    let args = f.args(args).to_vec();
    // New instructions at the call site point at the call's mnemonic.
    let call_loc: LocSource<'_> = Some((locs.orig, call, false));
    let caller_label = f.block_name(b).to_string();
    let cont = new_unique_block(f, labels, format!("{caller_label}.{}.ret", g.name));
    let tail = f.blocks[b.index()].insts.drain(k + 1..).collect();
    f.blocks[b.index()].insts.pop();
    f.blocks[cont.index()].insts = tail;
    if let Some(r) = call_data.result {
        f.values[r.index()].def = ValueDef::BlockParam(cont, 0);
        f.blocks[cont.index()].params.push(r);
    }
    // Callee values -> caller values.
    let mut vmap: Vec<Value> = vec![Value(u32::MAX); g.values.len()];
    for (&p, &arg) in g.params.iter().zip(&args) {
        vmap[p.index()] = match arg {
            Operand::Value(v) => v,
            Operand::Const(_) => {
                let ty = g.values[p.index()].ty;
                let copy = push(
                    f,
                    b,
                    InstData {
                        opcode: Opcode::Copy,
                        ty: Some(ty),
                        result: None,
                        kind: InstKind::Unary { arg },
                    },
                    call_loc,
                    locs,
                );
                new_result(f, copy, ty)
            }
        };
    }
    let bmap: SmallVec<[Block; 8]> = g
        .blocks
        .iter()
        .map(|bd| {
            let label = format!("{}.{}", g.name, g.names.get(bd.name));
            new_unique_block(f, labels, label)
        })
        .collect();
    for (gb, bd) in g.blocks.iter().enumerate() {
        for &p in &bd.params {
            let ty = g.values[p.index()].ty;
            vmap[p.index()] = f.add_block_param(bmap[gb], ty, None);
        }
    }
    f.push_inst(
        b,
        Opcode::Jmp,
        None,
        InstKind::Jmp {
            dest: BlockCall {
                block: bmap[0],
                args: OpList::EMPTY,
            },
        },
        None,
    );
    set_loc(f, call_loc, locs);
    // Results first (a use may come before its definition in layout
    // order): the copies are appended in this same order.
    let first = f.insts.len();
    let mut n = 0;
    for bd in &g.blocks {
        for &gi in &bd.insts {
            if let Some(r) = g.insts[gi.index()].result {
                let ty = g.values[r.index()].ty;
                vmap[r.index()] = f.new_value(ty, ValueDef::Inst(Inst::new(first + n)), None);
            }
            n += 1;
        }
    }
    for (gb, bd) in g.blocks.iter().enumerate() {
        for &gi in &bd.insts {
            let mut d = g.insts[gi.index()];
            let mut loc: LocSource<'_> = Some((&g.srcmap, gi, true));
            retarget(g, f, &mut d.kind, &bmap);
            if let InstKind::Ret { value } = d.kind {
                let args: Vec<Operand> = value.into_iter().collect();
                d = InstData {
                    opcode: Opcode::Jmp,
                    ty: None,
                    result: None,
                    kind: InstKind::Jmp {
                        dest: BlockCall {
                            block: cont,
                            args: f.make_args(&args),
                        },
                    },
                };
                // A `jmp` reads its tokens differently from the `ret`.
                loc = Some((&g.srcmap, gi, false));
            }
            d.result = d.result.map(|r| vmap[r.index()]);
            let ni = push(f, bmap[gb], d, loc, locs);
            f.for_each_operand_mut(ni, |op| {
                if let Operand::Value(v) = *op {
                    *op = Operand::Value(vmap[v.index()]);
                }
            });
        }
    }
}

/// Appends `d` to block `b` with source locations from `loc`.
fn push(f: &mut Function, b: Block, d: InstData, loc: LocSource<'_>, locs: &mut Locs<'_>) -> Inst {
    let i = Inst::new(f.insts.len());
    f.insts.push(d);
    f.blocks[b.index()].insts.push(i);
    set_loc(f, loc, locs);
    i
}

/// Records the locations of the instruction just appended, when the
/// function keeps locations for every instruction.
fn set_loc(f: &Function, loc: LocSource<'_>, locs: &mut Locs<'_>) {
    let Some(out) = &mut locs.out else { return };
    if out.num_insts() + 1 == f.insts.len() {
        match loc {
            Some((map, i, tokens)) => out.push_inst_from(map, i, tokens),
            None => out.start_inst(crate::ir::Loc::NONE),
        }
    }
}

/// Gives instruction `i` a fresh result value of type `ty`.
fn new_result(f: &mut Function, i: Inst, ty: crate::ir::Type) -> Value {
    let v = f.new_value(ty, ValueDef::Inst(i), None);
    f.insts[i.index()].result = Some(v);
    v
}

/// Moves the operand and case lists of a copied instruction of `g` into
/// `f`'s pools and renames the target blocks of a copied terminator.
fn retarget(g: &Function, f: &mut Function, kind: &mut InstKind, bmap: &[Block]) {
    let fix = |f: &mut Function, d: &mut BlockCall| {
        if let Some(&nb) = bmap.get(d.block.index()) {
            d.block = nb;
        }
        d.args = f.make_args(g.args(d.args));
    };
    match kind {
        InstKind::Call { args, .. } => *args = f.make_args(g.args(*args)),
        InstKind::Jmp { dest } => fix(f, dest),
        InstKind::Br {
            then_dest,
            else_dest,
            ..
        } => {
            fix(f, then_dest);
            fix(f, else_dest);
        }
        InstKind::Switch { default, cases, .. } => {
            *default = bmap[default.index()];
            let moved: Vec<SwitchCase> = g
                .cases(*cases)
                .iter()
                .map(|c| SwitchCase {
                    key: c.key,
                    block: bmap[c.block.index()],
                })
                .collect();
            *cases = f.make_cases(&moved);
        }
        _ => {}
    }
}
