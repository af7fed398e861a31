//! Dropping the `local` functions nothing can reach any more, after
//! [`super::inline`].
//!
//! A `local` function is visible only inside its module (SPEC section 3),
//! so it runs only when something of its own module calls it or takes its
//! address. Once inlining has replaced its calls (and turned calls through
//! a known `addr` into direct ones, leaving that `addr` unused), such a
//! function often has no reference left, yet every later pass and the back
//! end would still spend their time on it (the `calls` benchmark: about a
//! tenth of its compile).
//!
//! Reachability, from the roots: every function that is not `local` and
//! every data item. A function reaches the symbols it calls directly and
//! those of its `addr` instructions whose value something uses; a data
//! item the symbols of its `@sym` entries. Only the instructions in the
//! function's blocks count (the tables may hold orphans until
//! [`super::dce`] compacts them). The local functions not reached are
//! dropped, together with the unused `addr` instructions that named them,
//! and the module's symbols are renumbered (kept ones in their order).
//!
//! Linear in the size of the module; [`run`] is called only when inlining
//! changed something, and returns at once when the module has no `local`
//! function.

use crate::ir::{
    Callee, DataValue, FuncId, Function, InstKind, Linkage, Module, Operand, SymId, SymbolKind,
};

const NONE: u32 = u32::MAX;

/// Drops the unreachable `local` functions of `module`; whether it dropped
/// any.
pub fn run(module: &mut Module) -> bool {
    let n = module.symbols.len();
    let mut live = vec![true; n];
    let mut work: Vec<u32> = Vec::new();
    let mut any_local = false;
    for (i, s) in module.symbols.iter().enumerate() {
        match s.kind {
            SymbolKind::Func { body: Some(_), .. } if s.linkage == Linkage::Local => {
                live[i] = false;
                any_local = true;
            }
            SymbolKind::Func { body: Some(_), .. } | SymbolKind::Data { body: Some(_) } => {
                work.push(i as u32)
            }
            _ => {}
        }
    }
    if !any_local {
        return false;
    }
    let mut used: Vec<bool> = Vec::new();
    let mut refs: Vec<SymId> = Vec::new();
    while let Some(s) = work.pop() {
        refs.clear();
        match module.symbols[s as usize].kind {
            SymbolKind::Func { body: Some(b), .. } => {
                references(&module.funcs[b.index()], &mut used, &mut refs)
            }
            SymbolKind::Data { body: Some(d) } => {
                for v in &module.datas[d.index()].values {
                    if let DataValue::SymAddr { sym, .. } = v {
                        refs.push(*sym);
                    }
                }
            }
            _ => {}
        }
        for r in &refs {
            if let Some(l) = live.get_mut(r.index()) {
                if !*l {
                    *l = true;
                    work.push(r.0);
                }
            }
        }
    }
    if live.iter().all(|&l| l) {
        return false;
    }
    rebuild(module, &live);
    true
}

/// The symbols `f` references (calls of a symbol, used `addr`s), pushed
/// onto `refs`; `used` is scratch.
fn references(f: &Function, used: &mut Vec<bool>, refs: &mut Vec<SymId>) {
    mark_used(f, used);
    for bd in &f.blocks {
        for &i in &bd.insts {
            let d = &f.insts[i.index()];
            match d.kind {
                InstKind::Call {
                    callee: Callee::Direct(sym),
                    ..
                } => refs.push(sym),
                InstKind::Addr { sym } if d.result.is_some_and(|r| used[r.index()]) => {
                    refs.push(sym)
                }
                _ => {}
            }
        }
    }
}

/// Sets `used[v]` for every value an instruction in a block of `f` uses.
fn mark_used(f: &Function, used: &mut Vec<bool>) {
    used.clear();
    used.resize(f.values.len(), false);
    for bd in &f.blocks {
        for &i in &bd.insts {
            f.for_each_operand(i, |op| {
                if let Operand::Value(v) = op {
                    used[v.index()] = true;
                }
            });
        }
    }
}

/// Rebuilds `module` with the symbols of `live` only (every dropped one
/// a `local` function no live instruction names, except unused `addr`s,
/// which go too).
fn rebuild(module: &mut Module, live: &[bool]) {
    // New ids of the symbols and function bodies kept.
    let mut sym_map = vec![NONE; live.len()];
    let mut func_keep = vec![true; module.funcs.len()];
    let mut next = 0u32;
    for (i, s) in module.symbols.iter().enumerate() {
        if live[i] {
            sym_map[i] = next;
            next += 1;
        } else if let SymbolKind::Func { body: Some(b), .. } = s.kind {
            func_keep[b.index()] = false;
        }
    }
    let mut func_map = vec![NONE; module.funcs.len()];
    let mut k = 0u32;
    for (i, &keep) in func_keep.iter().enumerate() {
        if keep {
            func_map[i] = k;
            k += 1;
        }
    }
    let mut out = Module::new(std::mem::take(&mut module.name));
    out.optimized = module.optimized;
    let locs: Vec<_> = (0..live.len())
        .map(|i| module.symbol_loc(SymId::new(i)))
        .collect();
    for (i, mut s) in std::mem::take(&mut module.symbols).into_iter().enumerate() {
        if !live[i] {
            continue;
        }
        if let SymbolKind::Func { body: Some(b), .. } = &mut s.kind {
            *b = FuncId(func_map[b.index()]);
        }
        // Names were unique and stay so.
        let _ = out.declare(s, locs[i]);
    }
    let funcs = std::mem::take(&mut module.funcs);
    out.funcs = funcs
        .into_iter()
        .zip(&func_keep)
        .filter_map(|(f, &keep)| keep.then_some(f))
        .collect();
    out.datas = std::mem::take(&mut module.datas);
    let mut used = Vec::new();
    for f in &mut out.funcs {
        renumber(f, &sym_map, &mut used);
    }
    for d in &mut out.datas {
        for v in &mut d.values {
            if let DataValue::SymAddr { sym, .. } = v {
                *sym = SymId(sym_map[sym.index()]);
            }
        }
    }
    *module = out;
}

/// Renames the symbols `f` names by `sym_map`, removing from its blocks
/// the (unused) `addr` instructions of dropped symbols. An orphaned
/// instruction (in no block) naming a dropped symbol is pointed at symbol
/// 0 instead: nothing reads it, and [`super::dce`] removes it.
fn renumber(f: &mut Function, sym_map: &[u32], used: &mut Vec<bool>) {
    let dropped = |sym: SymId| sym_map[sym.index()] == NONE;
    let names_dropped = f.insts.iter().any(|d| match d.kind {
        InstKind::Addr { sym }
        | InstKind::Call {
            callee: Callee::Direct(sym),
            ..
        } => dropped(sym),
        _ => false,
    });
    if names_dropped {
        mark_used(f, used);
        let insts = &f.insts;
        for bd in &mut f.blocks {
            bd.insts.retain(|i| {
                let d = &insts[i.index()];
                !matches!(d.kind, InstKind::Addr { sym } if dropped(sym)
                    && d.result.is_none_or(|r| !used[r.index()]))
            });
        }
    }
    for d in &mut f.insts {
        match &mut d.kind {
            InstKind::Addr { sym }
            | InstKind::Call {
                callee: Callee::Direct(sym),
                ..
            } => {
                let m = sym_map[sym.index()];
                *sym = SymId(if m == NONE { 0 } else { m });
            }
            _ => {}
        }
    }
}
