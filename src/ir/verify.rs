//! The verifier: every rule of SPEC sections 1–6, with located errors.
//!
//! [`verify_module`] walks the module in source order (symbols in order,
//! each function body where its symbol is, within a function the signature,
//! then each block's label, parameters and instructions token by token) and
//! returns the first broken rule as [`Error::Verify`], located at the
//! offending token through the function's [`SrcMap`](super::SrcMap), the module's
//! `symbol_locs` and `DataDef::locs`. Built IR has no locations; its
//! messages then start with where the problem is:
//! `in @f, block NAME, instruction N: ...` (`N` counts the block's
//! instructions from 0), `in @f, block NAME: ...`, `in @f: ...` or
//! `in data @d, entry N: ...`.
//!
//! Choices where the SPEC is silent:
//! - A use in a block unreachable from the entry must be defined earlier in
//!   that same block or be a function parameter: dominance is only
//!   computed for reachable blocks.
//! - Every instruction with a result in the opcode table must name it,
//!   except `call`, whose result may be dropped (`call.i32 @putchar(65)`).
//! - A direct call's suffix is exactly the callee's return type: required
//!   when it returns a value, absent when it returns nothing.
//! - Load and store offsets may be any `i64`.
//! - `alloca` sizes are limited to [`MAX_ALLOCA`] bytes and data objects to
//!   [`MAX_DATA`] bytes; the alignment of `alloca` is a power of two up to
//!   16.
//! - Names (symbols, labels, values) must match the SPEC's name syntax, so
//!   that built IR prints as text that parses again.
//!
//! Each function body first goes through an accepting pass
//! (`verify/func/fast.rs`) that only answers "valid" or "look closer"; the
//! precise checks below run only when it does not accept, so they alone
//! word every error. Every check is linear in the size of the function
//! (switch keys and symbol names go through an Fx hash map); dominance
//! queries are O(1) through [`DomTree`](crate::analysis::DomTree) (the
//! accepting pass numbers a dominator tree of its own, computed within a
//! budget), and the buffers of the checks are reused from one function to
//! the next (see `verify/func.rs`). The CFG takes each block's
//! successors from its last instruction, so after a misplaced terminator a
//! dominance error in an earlier-laid-out block can be reported first.

mod func;

use super::entities::{FuncId, SymId};
use super::function::Function;
use super::hash::hash_str;
use super::module::{DataDef, DataValue, Linkage, Module, SymbolData, SymbolKind};
use super::names::name_syntax;
use super::srcmap::Loc;
use crate::error::{Diagnostic, Error, Result};
use func::Scratch;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// The largest `alloca` size in bytes.
pub const MAX_ALLOCA: u64 = 1 << 31;
/// The largest data object in bytes.
pub const MAX_DATA: u64 = 1 << 31;

/// Up to this many symbols, their names are compared pairwise for
/// uniqueness (cheaper than a hash of each name).
const FEW_SYMBOLS: usize = 16;

/// Past this many symbols, their names' distinctness is first settled by
/// sorting their hashes ([`distinct_by_sort`]): a [`NameSet`] that large
/// no longer fits the cache, and each insert would wait for memory.
const MANY_SYMBOLS: usize = 1 << 13;

/// Whether the names of `syms` are certainly distinct, found without a
/// hash table: their 64-bit hashes are sorted by their top 33 bits (a
/// radix sort, three linear passes of 11 bits over the keys, each
/// streaming through memory), and keys whose top bits agree are compared
/// whole. `false` means "maybe not" (two names with one hash): the
/// [`NameSet`] then decides, and words any error, as for fewer symbols.
fn distinct_by_sort(syms: &[SymbolData]) -> bool {
    distinct_keys(syms.iter().map(|s| hash_str(&s.name)).collect())
}

/// Whether `keys` are distinct (see [`distinct_by_sort`]).
fn distinct_keys(mut keys: Vec<u64>) -> bool {
    const BITS: u32 = 11;
    const PASSES: u32 = 3;
    const BUCKETS: usize = 1 << BITS;
    let digit = |k: u64, pass: u32| ((k >> (64 - BITS * (PASSES - pass))) as usize) & (BUCKETS - 1);
    let mut counts = vec![[0u32; BUCKETS]; PASSES as usize];
    for &k in &keys {
        for (pass, c) in (0..PASSES).zip(counts.iter_mut()) {
            c[digit(k, pass)] += 1;
        }
    }
    let mut out = vec![0u64; keys.len()];
    for (pass, c) in (0..PASSES).zip(counts.iter_mut()) {
        // Counts to starting positions.
        let mut at = 0u32;
        for n in c.iter_mut() {
            let here = *n;
            *n = at;
            at += here;
        }
        for &k in &keys {
            let d = digit(k, pass);
            out[c[d] as usize] = k;
            c[d] += 1;
        }
        std::mem::swap(&mut keys, &mut out);
    }
    // Sorted by the top 33 bits: equal keys are within one run of equal
    // top bits (runs are short: a few keys share 33 bits by chance).
    let top = |k: u64| k >> (64 - BITS * PASSES);
    let mut start = 0;
    for i in 1..=keys.len() {
        if i == keys.len() || top(keys[i]) != top(keys[start]) {
            let run = &keys[start..i];
            if (1..run.len()).any(|j| run[..j].contains(&run[j])) {
                return false;
            }
            start = i;
        }
    }
    true
}

/// Checks every rule of the SPEC; returns the first error in source order.
pub fn verify_module(module: &Module) -> Result<()> {
    with_scratch(|scratch| {
        ModuleVerifier {
            m: module,
            scratch,
            bodies_to: usize::MAX,
        }
        .run()
    })
}

/// Checks one function body of `module` (its symbol's signature included).
pub fn verify_function(module: &Module, func: FuncId) -> Result<()> {
    with_scratch(|scratch| {
        let mut v = ModuleVerifier {
            m: module,
            scratch,
            bodies_to: usize::MAX,
        };
        let Some(f) = module.funcs.get(func.index()) else {
            return Err(v.error(
                Loc::NONE,
                &Ctx::None,
                format!("missing function body #{}", func.0),
            ));
        };
        match module.func_symbol(func) {
            Some(sym) => v.check_function(sym, f),
            None => func::check(module, f, v.scratch),
        }
    })
}

/// The symbol names met so far in a module's check (reused across
/// modules): open addressing, linear probing, at most half full; per slot
/// the high half of the name's [`hash_str`] and the symbol's id + 1 (0:
/// empty), so that names are compared only when those agree.
#[derive(Default)]
pub(super) struct NameSet {
    slots: Vec<(u32, u32)>,
}

impl NameSet {
    /// Empties the set and sizes it for `n` names.
    fn reset(&mut self, n: usize) {
        let size = (2 * n).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(size, (0, 0));
    }

    /// The slots kept (for the scratch's size limit).
    pub(super) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Adds `name`, the name of symbol `id` of `syms`; `false` if an
    /// earlier symbol has it.
    fn insert(&mut self, syms: &[SymbolData], id: SymId, name: &str) -> bool {
        let h = hash_str(name);
        let tag = (h >> 32) as u32;
        // `reset` made the length a power of two.
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (t, v) = self.slots[i];
            if v == 0 {
                self.slots[i] = (tag, id.0 + 1);
                return true;
            }
            if t == tag && syms.get(v as usize - 1).is_some_and(|s| s.name == name) {
                return false;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Empties `owners` and sizes it for `n` definitions, none owned yet.
fn reset_owners(owners: &mut Vec<Option<SymId>>, n: usize) {
    owners.clear();
    owners.resize(n, None);
}

/// Where an error is, for messages about built IR (no locations).
enum Ctx<'a> {
    None,
    Func(&'a str),
    Block(&'a str, &'a str),
    Inst(&'a str, &'a str, usize),
    Data(&'a str, usize),
}

fn make_error(file: &str, loc: Loc, ctx: &Ctx, message: String) -> Error {
    let message = if loc.is_none() {
        match ctx {
            Ctx::None => message,
            Ctx::Func(f) => format!("in @{f}: {message}"),
            Ctx::Block(f, b) => format!("in @{f}, block {b}: {message}"),
            Ctx::Inst(f, b, n) => format!("in @{f}, block {b}, instruction {n}: {message}"),
            Ctx::Data(d, n) => format!("in data @{d}, entry {n}: {message}"),
        }
    } else {
        message
    };
    Error::Verify(Diagnostic::new(file, loc, message))
}

struct ModuleVerifier<'m, 's> {
    m: &'m Module,
    scratch: &'s mut Scratch,
    /// The bodies of function symbols from this index on are checked
    /// elsewhere (see [`verify_module_split`]).
    bodies_to: usize,
}

thread_local! {
    /// The buffers of the verifications on this thread, used in place
    /// (verifying a module of one small function would otherwise spend
    /// most of its time growing fresh vectors, and a large one faulting
    /// fresh pages in); given back only after a huge function grew them.
    static CACHED: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in
/// use: verification does not re-enter, but a caught panic may have left
/// them borrowed), freeing them afterwards if a huge function grew them.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut f = Some(f);
    let cached = CACHED.try_with(|c| {
        let mut s = c.try_borrow_mut().ok()?;
        let r = (f.take()?)(&mut s);
        if !s.is_small() {
            *s = Scratch::default();
        }
        Some(r)
    });
    match (cached, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Scratch::default()),
        (_, None) => unreachable!("the scratch closure ran but returned nothing"),
    }
}

impl<'m> ModuleVerifier<'m, '_> {
    fn error(&self, loc: Loc, ctx: &Ctx, message: String) -> Error {
        make_error(&self.m.name, loc, ctx, message)
    }

    fn run(&mut self) -> Result<()> {
        let m = self.m;
        // Names are distinct when no two of a few symbols' names are
        // equal; more go through a table of the names seen (the module's
        // own index is not trusted: `symbols` is public, and a lookup in it
        // costs more, its hash being the parser's).
        let syms = &m.symbols;
        let distinct = if syms.len() <= FEW_SYMBOLS {
            (1..syms.len()).all(|i| syms[..i].iter().all(|s| s.name != syms[i].name))
        } else {
            syms.len() > MANY_SYMBOLS && distinct_by_sort(syms)
        };
        let mut names = std::mem::take(&mut self.scratch.sym_names);
        if !distinct {
            names.reset(syms.len());
        }
        let mut func_owner = std::mem::take(&mut self.scratch.func_owner);
        let mut data_owner = std::mem::take(&mut self.scratch.data_owner);
        reset_owners(&mut func_owner, m.funcs.len());
        reset_owners(&mut data_owner, m.datas.len());
        for (id, sym) in m.symbol_ids() {
            let loc = m.symbol_loc(id);
            let name = sym.name.as_str();
            if !name_syntax(name).0 {
                return Err(self.error(loc, &Ctx::None, format!("invalid symbol name '@{name}'")));
            }
            if !distinct && !names.insert(syms, id, name) {
                return Err(self.error(loc, &Ctx::None, format!("duplicate symbol '@{name}'")));
            }
            let (body, owners, what) = match &sym.kind {
                SymbolKind::Func { body, .. } => {
                    (body.map(|b| b.index()), &mut func_owner, "function")
                }
                SymbolKind::Data { body } => (body.map(|b| b.index()), &mut data_owner, "data"),
            };
            match (sym.linkage, body) {
                (Linkage::Import, Some(_)) => {
                    return Err(self.error(
                        loc,
                        &Ctx::None,
                        format!("extern {what} '@{name}' cannot have a definition"),
                    ))
                }
                (Linkage::Import, None) => continue,
                (_, None) => {
                    return Err(self.error(
                        loc,
                        &Ctx::None,
                        format!("{what} '@{name}' has no definition"),
                    ))
                }
                (_, Some(body)) => {
                    let Some(owner) = owners.get_mut(body) else {
                        return Err(self.error(
                            loc,
                            &Ctx::None,
                            format!("{what} '@{name}' refers to missing definition #{body}"),
                        ));
                    };
                    if let Some(other) = owner.replace(id) {
                        let other = &m.sym(other).name;
                        return Err(self.error(
                            loc,
                            &Ctx::None,
                            format!("'@{name}' and '@{other}' share one {what} definition"),
                        ));
                    }
                }
            }
            match &sym.kind {
                SymbolKind::Func { body: Some(b), .. } if id.index() < self.bodies_to => {
                    self.check_function(id, &m.funcs[b.index()])?
                }
                SymbolKind::Data { body: Some(b) } => self.check_data(id, &m.datas[b.index()])?,
                _ => {}
            }
        }
        if let Some(i) = func_owner.iter().position(Option::is_none) {
            let f = &m.funcs[i];
            return Err(self.error(
                f.srcmap.func,
                &Ctx::None,
                format!("function body '@{}' is not attached to a symbol", f.name),
            ));
        }
        if let Some(i) = data_owner.iter().position(Option::is_none) {
            return Err(self.error(
                Loc::NONE,
                &Ctx::None,
                format!("data definition #{i} is not attached to a symbol"),
            ));
        }
        self.scratch.func_owner = func_owner;
        self.scratch.data_owner = data_owner;
        self.scratch.sym_names = names;
        Ok(())
    }

    /// The body `f` of function symbol `sym`.
    fn check_function(&mut self, sym: SymId, f: &Function) -> Result<()> {
        let s = self.m.sym(sym);
        let loc = self.m.symbol_loc(sym).or(f.srcmap.func);
        if f.name != s.name {
            return Err(self.error(
                loc,
                &Ctx::None,
                format!(
                    "function body '@{}' is attached to symbol '@{}'",
                    f.name, s.name
                ),
            ));
        }
        if let Some(sig) = s.signature() {
            // Element by element: the derived `!=` calls `memcmp` for the
            // few bytes of the parameter types.
            let same = sig.ret == f.sig.ret
                && sig.params.len() == f.sig.params.len()
                && sig
                    .params
                    .iter()
                    .zip(f.sig.params.iter())
                    .all(|(a, b)| a == b);
            if !same {
                return Err(self.error(
                    loc,
                    &Ctx::None,
                    format!(
                        "body of '@{}' has signature {}, but the symbol is declared {}",
                        s.name, f.sig, sig
                    ),
                ));
            }
        }
        func::check(self.m, f, self.scratch)
    }

    fn check_data(&self, sym: SymId, d: &DataDef) -> Result<()> {
        let name = self.m.sym(sym).name.as_str();
        for (i, value) in d.values.iter().enumerate() {
            let loc = d.locs.get(i).copied().unwrap_or(Loc::NONE);
            let err = |msg: String| Err(self.error(loc, &Ctx::Data(name, i), msg));
            match value {
                DataValue::Int { bytes, values } => {
                    let ty = match bytes {
                        1 => "i8",
                        2 => "i16",
                        4 => "i32",
                        8 => "i64",
                        _ => return err(format!("invalid integer width of {bytes} bytes")),
                    };
                    let bits = 8 * *bytes as u32;
                    let (lo, hi) = (-(1i128 << (bits - 1)), (1i128 << bits) - 1);
                    if let Some(v) = values.iter().find(|v| !(lo..=hi).contains(*v)) {
                        return err(format!("value {v} does not fit {ty}"));
                    }
                }
                DataValue::SymAddr { sym, .. } => {
                    if sym.index() >= self.m.symbols.len() {
                        return err(format!("address of missing symbol {sym}"));
                    }
                }
                DataValue::F32(_)
                | DataValue::F64(_)
                | DataValue::Bytes(_)
                | DataValue::Zero(_) => {}
            }
        }
        let (_, size) = d.layout();
        if size > MAX_DATA {
            return Err(self.error(
                self.m.symbol_loc(sym),
                &Ctx::None,
                format!("data '@{name}' is too large ({size} bytes; the limit is {MAX_DATA})"),
            ));
        }
        Ok(())
    }
}

/// Lines of text from which [`verify_module_split`] checks on two threads:
/// starting one costs about as much as checking a few hundred lines.
const SPLIT_MIN_LINES: u32 = 4096;

/// Symbols below which a run of them is not cut in two (see
/// [`body_runs`]).
const RUN_MIN: usize = 64;

/// [`verify_module`] (the same result, and the same first error) with the
/// function bodies of a large parsed module (by lines of text) checked on
/// two threads: this one checks the module-level rules, then both take
/// runs of symbols in turn and check their bodies (see `body_runs`). On
/// any error either way (or a panic on the other thread) the whole module
/// is checked again by [`verify_module`], which words the first error in
/// source order.
pub fn verify_module_split(module: &Module) -> Result<()> {
    let m = module;
    let last = match m.symbol_locs.last() {
        Some(l) if m.symbol_locs.len() == m.symbols.len() => l.line,
        _ => 0,
    };
    if last < SPLIT_MIN_LINES {
        return verify_module(m);
    }
    let runs = body_runs(m.symbols.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Takes runs until none is left (or a body failed).
    let bodies = || {
        with_scratch(|scratch| {
            let mut v = ModuleVerifier {
                m,
                scratch,
                bodies_to: usize::MAX,
            };
            loop {
                let r = next.fetch_add(1, Relaxed);
                if r + 1 >= runs.len() || failed.load(Relaxed) {
                    return;
                }
                let ok = (runs[r]..runs[r + 1]).all(|i| match &m.symbols[i].kind {
                    SymbolKind::Func { body: Some(b), .. } => m
                        .funcs
                        .get(b.index())
                        .is_some_and(|f| v.check_function(SymId::new(i), f).is_ok()),
                    _ => true,
                });
                if !ok {
                    failed.store(true, Relaxed);
                    return;
                }
            }
        })
    };
    std::thread::scope(|s| {
        // A thread that cannot start leaves every run to this one.
        let second = std::thread::Builder::new().spawn_scoped(s, bodies);
        let rules = with_scratch(|scratch| {
            ModuleVerifier {
                m,
                scratch,
                bodies_to: 0,
            }
            .run()
            .is_ok()
        });
        if !rules {
            failed.store(true, Relaxed);
        }
        bodies();
        // A panic on the other thread leaves its run unchecked: taken as a
        // failure, the check below then meets what caused it, if no
        // earlier error stops it.
        if second.is_ok_and(|h| h.join().is_err()) {
            failed.store(true, Relaxed);
        }
    });
    if failed.load(Relaxed) {
        verify_module(m)
    } else {
        Ok(())
    }
}

/// Where the runs of `symbols` symbols whose bodies [`verify_module_split`]
/// checks start, and `symbols` last: each run a quarter of the symbols
/// left before it, down to [`RUN_MIN`], so that a thread slowed down (this
/// machine's processors at times run at half speed for a second or more)
/// takes fewer runs and neither waits long for the other at the end.
fn body_runs(symbols: usize) -> Vec<usize> {
    let mut runs = vec![0];
    let mut at = 0;
    while symbols - at >= 2 * RUN_MIN {
        at += ((symbols - at) / 4).max(RUN_MIN);
        runs.push(at);
    }
    runs.push(symbols);
    runs
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod split_tests {
    use super::*;
    use crate::ir::parse::parse_module;

    #[test]
    fn runs_cover_every_symbol_and_shrink() {
        for n in [0, 1, 5, 127, 128, 129, 1000, 20_000] {
            let r = body_runs(n);
            assert_eq!((r[0], r[r.len() - 1]), (0, n), "{r:?}");
            assert!(r.windows(2).all(|w| w[0] < w[1] || n == 0), "{r:?}");
        }
        let r = body_runs(20_000);
        assert!(r.len() > 10 && r[1] == 5_000 && r[r.len() - 1] - r[r.len() - 2] < 2 * RUN_MIN);
    }

    #[test]
    fn a_large_module_checked_on_two_threads_gives_the_one_check() {
        let mut text = String::new();
        for k in 0..1500 {
            text.push_str(&format!(
                "func @f{k}(%a: i64) -> i64 {{\nentry:\n    %b = add.i64 %a, {k}\n    ret %b\n}}\n"
            ));
        }
        let m = parse_module("t.kir", &text).unwrap();
        assert!(m.symbol_locs.last().unwrap().line >= SPLIT_MIN_LINES);
        assert!(verify_module_split(&m).is_ok());
        // A broken rule in one function (the first, one in each thread's
        // likely runs, the last), or in two: the first one's error.
        for ks in [&[0][..], &[700], &[1499], &[900, 80]] {
            let mut bad = text.clone();
            for k in ks {
                bad = bad.replace(
                    &format!("%b = add.i64 %a, {k}\n"),
                    &format!("%b = add.i32 %a, {k}\n"),
                );
            }
            let m = parse_module("t.kir", &bad).unwrap();
            let want = verify_module(&m).unwrap_err().to_string();
            assert!(
                want.contains(&format!(":{}:", 5 * ks.iter().min().unwrap() + 3)),
                "{want}"
            );
            assert_eq!(verify_module_split(&m).unwrap_err().to_string(), want);
        }
    }
}
