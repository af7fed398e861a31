//! Function bodies: signature, block labels and parameters, and every
//! instruction token by token (types, literals, structure, SSA dominance,
//! calls). Errors come back as `(Loc, message)` and are wrapped with the
//! built-IR context by the caller; the first one in source order wins.
//!
//! Cost: every check is O(1) per operand, name and target, on arrays kept
//! in a [`Scratch`] reused across the functions of a module: definition
//! sites, the CFG and dominator tree, and per-function stamps ("seen in this
//! function") for instructions, labels and value names. The CFG analyses
//! are lazy ([`Dominance`]): a function whose uses all follow their
//! definition in the same block builds none, and one whose other uses are
//! of entry-block values only needs reachability (a walk over the
//! terminators), not a dominator tree. Names are interned
//! ([`Names`](crate::ir::Names)), so a duplicate name is a repeated
//! [`Name`](crate::ir::Name), and name syntax was decided when the name was
//! interned. Locations and messages are computed only for the error
//! returned.

use super::{make_error, Ctx, MAX_ALLOCA};
use crate::analysis::{Cfg, DomTree};
use crate::error::{Error, Result};
use crate::ir::entities::{Block, Inst, SymId, Value};
use crate::ir::function::{
    BlockCall, BlockData, Callee, Const, Function, InstData, InstKind, Operand, ValueDef,
};
use crate::ir::hash::FxHashMap;
use crate::ir::module::Module;
use crate::ir::opcode::{Format, Opcode, OperandTy, Suffix};
use crate::ir::srcmap::Loc;
use crate::ir::types::{Signature, Type};
use std::cell::RefCell;

mod fast;

/// Where a value is defined, for dominance checks: a block and a position
/// (0 for block parameters, else the instruction's index in the block + 1).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Site {
    block: u32,
    pos: u32,
}

impl Site {
    const UNDEFINED: Site = Site {
        block: u32::MAX,
        pos: 0,
    };
    const FUNC_PARAM: Site = Site {
        block: u32::MAX - 1,
        pos: 0,
    };

    fn at(block: usize, pos: u32) -> Site {
        Site {
            block: block as u32,
            pos,
        }
    }
}

/// What an operand position requires.
#[derive(Clone, Copy)]
enum Want {
    /// Exactly this type; a literal takes it.
    Exact(Type),
    /// An integer value; a literal is taken as `i64` (`store8/16/32`).
    IntLiteralI64,
    /// `i32` or `i64`, no literal (source of `sitof`, `uitof`).
    OpenInt,
    /// `f32` or `f64`, no literal (source of `ftosi`, `ftoui`).
    OpenFloat,
    /// Any type, no literal (arguments of an indirect call).
    AnyValue,
}

/// Buffers of the function checks, reused across functions.
#[derive(Default)]
pub(super) struct Scratch {
    def: Vec<Site>,
    /// Reachability and dominators of the function being checked, computed
    /// on the first use that needs them (`&self` methods ask).
    dom: RefCell<Dominance>,
    /// Per instruction / label name / value name: the stamp of the last
    /// function that used it.
    inst_seen: Vec<u32>,
    label_seen: Vec<u32>,
    value_seen: Vec<u32>,
    stamp: u32,
    keys: FxHashMap<u64, Const>,
    /// Per value: its definition as the accepting pass records it (see
    /// `fast.rs`).
    fast_def: Vec<u32>,
    /// The accepting pass's uses met before their definition.
    deferred: Vec<(u32, u32, u8)>,
    /// The accepting pass's immediate dominators.
    quick: fast::dom::QuickDom,
    /// The accepting pass's interval per block field (see `fast.rs`).
    fields: Vec<[u32; 2]>,
    /// The accepting pass's switch keys below a bound: per key, the stamp
    /// of the last `switch` that listed it (`key_stamp` is the current).
    key_seen: Vec<u32>,
    key_stamp: u32,
    /// Per function / data definition of the module: the symbol owning it
    /// (the module checks).
    pub(super) func_owner: Vec<Option<SymId>>,
    pub(super) data_owner: Vec<Option<SymId>>,
    /// The symbol names met (the module checks).
    pub(super) sym_names: super::NameSet,
}

/// Most entries of a [`Scratch`] kept for the next module (see
/// [`Scratch::is_small`]; the per-block fields: this many blocks, up to
/// 64 MiB): enough for functions of several hundred thousand
/// instructions, whose fresh buffers would otherwise be mapped and
/// page-faulted in anew for every module (as the compiler's, the buffers
/// stay with the thread; past this they are given back).
const CACHE_MAX: usize = 1 << 20;

impl Scratch {
    /// Whether these buffers are small enough to keep for the next module
    /// verified on this thread.
    pub(super) fn is_small(&self) -> bool {
        self.def.capacity() <= CACHE_MAX
            && self.fast_def.capacity() <= CACHE_MAX
            && self.deferred.capacity() <= CACHE_MAX
            && self.quick.len() <= CACHE_MAX
            // Several slots per block: the bound counts blocks, as the
            // others count entries (a function of 200,000 blocks, such as
            // 100,000 nested loops, keeps its 12.8 MB here instead of
            // allocating and filling them anew for every module).
            && self.fields.capacity() <= CACHE_MAX * fast::SLOTS_PER_BLOCK
            && self.key_seen.len() <= CACHE_MAX
            && self.inst_seen.len() <= CACHE_MAX
            && self.label_seen.len() <= CACHE_MAX
            && self.value_seen.len() <= CACHE_MAX
            && self.dom.borrow().cfg.num_blocks() <= CACHE_MAX
            && self.dom.borrow().reach.len() <= CACHE_MAX
            && self.keys.capacity() <= CACHE_MAX
            && self.func_owner.capacity() <= CACHE_MAX
            && self.data_owner.capacity() <= CACHE_MAX
            && self.sym_names.capacity() <= CACHE_MAX
    }

    /// A fresh stamp for one function, with the stamp arrays sized for it
    /// (the instructions' only if `insts`: the accepting pass has none).
    fn begin(&mut self, f: &Function, insts: bool) -> u32 {
        // (No stamp is `u32::MAX`: the accepting pass marks names with it.)
        if self.stamp == u32::MAX - 1 {
            self.stamp = 0;
            self.inst_seen.iter_mut().for_each(|s| *s = 0);
            self.label_seen.iter_mut().for_each(|s| *s = 0);
            self.value_seen.iter_mut().for_each(|s| *s = 0);
            self.dom.get_mut().reach.iter_mut().for_each(|s| *s = 0);
        }
        self.stamp += 1;
        // A fresh zeroed vector rather than `resize`: no stamp in it is
        // this function's, and the allocator hands out zeroed pages
        // without writing them.
        let grow = |v: &mut Vec<u32>, n: usize| {
            if v.len() < n {
                *v = vec![0; n];
            }
        };
        if insts {
            grow(&mut self.inst_seen, f.insts.len());
        }
        grow(&mut self.label_seen, f.names.len());
        // The accepting pass stamps reached blocks here (the precise
        // checks' `compute_reach` under stamps of their own).
        grow(&mut self.dom.get_mut().reach, f.blocks.len());
        grow(&mut self.value_seen, f.names.len());
        self.stamp
    }
}

/// The dominance facts of one function, each computed when first needed.
#[derive(Default)]
struct Dominance {
    /// Per block: the stamp of the last function that found it reachable
    /// from the entry.
    reach: Vec<u32>,
    /// The stamp for which `reach` is complete (0: not computed).
    reach_stamp: u32,
    /// Whether `cfg` and `dom` are the current function's.
    dom_ready: bool,
    stack: Vec<Block>,
    cfg: Cfg,
    dom: DomTree,
}

impl Dominance {
    /// Marks the blocks reachable from the entry of `f` with `stamp`: a
    /// walk over block terminators (targets outside the block table are
    /// ignored, as in [`Cfg`]).
    fn compute_reach(&mut self, f: &Function, stamp: u32) {
        let n = f.blocks.len();
        if self.reach.len() < n {
            self.reach.resize(n, 0);
        }
        self.reach_stamp = stamp;
        self.stack.clear();
        if n == 0 {
            return;
        }
        self.reach[0] = stamp;
        self.stack.push(Block(0));
        while let Some(b) = self.stack.pop() {
            let Some(&last) = f.blocks[b.index()].insts.last() else {
                continue;
            };
            if !f
                .insts
                .get(last.index())
                .is_some_and(|d| d.opcode.is_terminator())
            {
                continue;
            }
            let (reach, stack) = (&mut self.reach, &mut self.stack);
            f.for_each_successor(last, |s| {
                if let Some(r) = reach.get_mut(s.index()) {
                    if s.index() < n && *r != stamp {
                        *r = stamp;
                        stack.push(s);
                    }
                }
            });
        }
    }
}

/// A use site: block and position (instruction index in the block + 1).
type At = (Block, u32);

/// Checks the body `f` of `m`: the accepting pass first (`fast.rs`), the
/// precise checks only when it does not accept, so that the error and its
/// location are theirs. Debug builds run the precise checks after an
/// accepting pass too and panic if they find an error the pass missed.
pub(super) fn check(m: &Module, f: &Function, s: &mut Scratch) -> Result<()> {
    if fast::accepts(m, f, s) {
        if cfg!(debug_assertions) {
            if let Err(e) = FuncVerifier::new(m, f, s).run() {
                panic!(
                    "the accepting pass accepted @{}, which has an error: {e}",
                    f.name
                );
            }
        }
        return Ok(());
    }
    FuncVerifier::new(m, f, s).run()
}

/// The checks of one function body, with what they share.
pub(super) struct FuncVerifier<'a, 's> {
    m: &'a Module,
    f: &'a Function,
    s: &'s mut Scratch,
    stamp: u32,
}

/// A broken rule: where and what (boxed, so that the per-operand results
/// stay one word).
type Failure = Box<(Loc, String)>;
type Res = std::result::Result<(), Failure>;

#[cold]
fn bad(loc: Loc, message: String) -> Failure {
    Box::new((loc, message))
}

impl<'a, 's> FuncVerifier<'a, 's> {
    pub(super) fn new(m: &'a Module, f: &'a Function, s: &'s mut Scratch) -> Self {
        let stamp = s.begin(f, true);
        // First listing of each value wins; any later listing of the same
        // value is reported where it appears.
        s.def.clear();
        s.def.resize(f.values.len(), Site::UNDEFINED);
        let def = &mut s.def;
        let mut set = |v: Value, site: Site| {
            if let Some(d) = def.get_mut(v.index()) {
                if *d == Site::UNDEFINED {
                    *d = site;
                }
            }
        };
        for &p in &f.params {
            set(p, Site::FUNC_PARAM);
        }
        for (bi, b) in f.blocks.iter().enumerate() {
            for &p in &b.params {
                set(p, Site::at(bi, 0));
            }
            for (pos, &i) in b.insts.iter().enumerate() {
                if let Some(r) = f.insts.get(i.index()).and_then(|d| d.result) {
                    set(r, Site::at(bi, pos as u32 + 1));
                }
            }
        }
        let dom = s.dom.get_mut();
        dom.dom_ready = false;
        dom.reach_stamp = 0;
        FuncVerifier { m, f, s, stamp }
    }

    fn error(&self, loc: Loc, ctx: &Ctx, message: String) -> Error {
        make_error(&self.m.name, loc, ctx, message)
    }

    /// `%name` of a value (`%vN` when unnamed or missing).
    fn vname(&self, v: Value) -> String {
        match self.f.value_name(v) {
            Some(n) => format!("%{n}"),
            None => format!("%{v}"),
        }
    }

    pub(super) fn run(mut self) -> Result<()> {
        let f = self.f;
        let fname = f.name.as_str();
        let fctx = Ctx::Func(fname);
        let floc = f.srcmap.func;
        if f.params.len() != f.sig.params.len() {
            return Err(self.error(
                floc,
                &fctx,
                format!(
                    "{} parameter values for {} parameter types",
                    f.params.len(),
                    f.sig.params.len()
                ),
            ));
        }
        for (i, &p) in f.params.iter().enumerate() {
            let want = ValueDef::FuncParam(i as u32);
            match f.values.get(p.index()) {
                Some(d)
                    if d.def == want
                        && d.ty == f.sig.params[i]
                        && self.s.def[p.index()] == Site::FUNC_PARAM => {}
                _ => {
                    return Err(self.error(
                        f.srcmap.value(p).or(floc),
                        &fctx,
                        format!("{} is not a valid parameter {i}", self.vname(p)),
                    ))
                }
            }
            self.check_value_name(p)
                .map_err(|e| self.error(e.0, &fctx, e.1))?;
        }
        if f.blocks.is_empty() {
            return Err(self.error(
                f.srcmap.end.or(floc),
                &fctx,
                format!("function '@{fname}' has no blocks"),
            ));
        }
        for (bi, bd) in f.blocks.iter().enumerate() {
            self.check_block(Block::new(bi), bd)?;
        }
        Ok(())
    }

    fn check_block(&mut self, b: Block, bd: &'a BlockData) -> Result<()> {
        let f = self.f;
        let fname = f.name.as_str();
        let bname = f.names.get(bd.name);
        let bctx = Ctx::Block(fname, bname);
        let label_loc = || f.srcmap.block(b);
        if !f.names.is_valid_label(bd.name) {
            let msg = format!("invalid block label '{bname}'");
            return Err(self.error(label_loc(), &bctx, msg));
        }
        let seen = &mut self.s.label_seen[bd.name.index()];
        if std::mem::replace(seen, self.stamp) == self.stamp {
            let msg = format!("duplicate block label '{bname}'");
            return Err(self.error(label_loc(), &bctx, msg));
        }
        if b == f.entry() {
            if let Some(&p) = bd.params.first() {
                let loc = f.srcmap.value(p).or(label_loc());
                let msg = format!("entry block '{bname}' cannot have parameters");
                return Err(self.error(loc, &bctx, msg));
            }
        }
        for (i, &p) in bd.params.iter().enumerate() {
            let ok = f.values.get(p.index()).is_some_and(|d| {
                d.def == ValueDef::BlockParam(b, i as u32)
                    && self.s.def[p.index()] == Site::at(b.index(), 0)
            });
            if !ok {
                let loc = f.srcmap.value(p).or(label_loc());
                let msg = format!(
                    "{} is not a valid parameter {i} of block '{bname}'",
                    self.vname(p)
                );
                return Err(self.error(loc, &bctx, msg));
            }
            if let Err(e) = self.check_value_name(p) {
                return Err(self.error(e.0, &bctx, e.1));
            }
        }
        let Some(&last) = bd.insts.last() else {
            let msg = format!("block '{bname}' is empty");
            return Err(self.error(label_loc(), &bctx, msg));
        };
        let mut prev_is_terminator = false;
        for (pos, &inst) in bd.insts.iter().enumerate() {
            let ictx = || Ctx::Inst(fname, bname, pos);
            // `inst_seen` may be longer than this function's table.
            let seen = match self.s.inst_seen.get_mut(inst.index()) {
                Some(seen) if inst.index() < f.insts.len() => Some(seen),
                _ => None,
            };
            let Some(seen) = seen else {
                let msg = format!("missing instruction {inst}");
                return Err(self.error(label_loc(), &ictx(), msg));
            };
            if std::mem::replace(seen, self.stamp) == self.stamp {
                let msg = format!("{inst} appears more than once");
                return Err(self.error(f.srcmap.inst(inst), &ictx(), msg));
            }
            if prev_is_terminator {
                let msg = format!("block '{bname}' continues after its terminator");
                return Err(self.error(f.srcmap.inst(inst), &ictx(), msg));
            }
            let plain = f
                .insts
                .get(inst.index())
                .is_some_and(|d| self.plain_inst(b, pos, inst, d));
            if !plain {
                self.check_inst(b, pos, inst)
                    .map_err(|e| self.error(e.0, &ictx(), e.1))?;
            }
            prev_is_terminator = f.insts[inst.index()].opcode.is_terminator();
        }
        if !prev_is_terminator {
            let ictx = Ctx::Inst(fname, bname, bd.insts.len() - 1);
            let msg = format!("block '{bname}' does not end with a terminator");
            return Err(self.error(f.srcmap.inst(last), &ictx, msg));
        }
        Ok(())
    }

    fn check_value_name(&mut self, v: Value) -> Res {
        let f = self.f;
        let Some(name) = f.values.get(v.index()).and_then(|d| d.name) else {
            return Ok(());
        };
        if !f.names.is_valid_value_name(name) {
            let text = f.names.get(name);
            return Err(bad(
                f.srcmap.value(v),
                format!("invalid value name '%{text}'"),
            ));
        }
        let seen = &mut self.s.value_seen[name.index()];
        if std::mem::replace(seen, self.stamp) == self.stamp {
            let text = f.names.get(name);
            return Err(bad(
                f.srcmap.value(v),
                format!("duplicate value name '%{text}'"),
            ));
        }
        Ok(())
    }

    /// The common instructions (unary, binary, `select`, loads and stores
    /// whose operands are all [plain](Self::plainly_ok)) checked in one
    /// go: `true` when [`Self::check_inst`] would find nothing wrong (the
    /// result's name is then marked seen, as it would). `false` says
    /// nothing and changes nothing: `check_inst` decides.
    #[inline(always)]
    fn plain_inst(&mut self, b: Block, pos: usize, inst: Inst, d: &InstData) -> bool {
        let f = self.f;
        let ops: &[Operand] = match &d.kind {
            InstKind::Unary { arg } => std::slice::from_ref(arg),
            InstKind::Binary { args } => args,
            InstKind::Select { args } => args,
            InstKind::Load { ptr, .. } => std::slice::from_ref(ptr),
            InstKind::Store { args, .. } => args,
            _ => return false,
        };
        let info = d.opcode.info();
        if d.opcode == Opcode::Call || !format_matches(info.format, &d.kind) {
            return false;
        }
        let suffix_ok = match (info.suffix, d.ty) {
            (Suffix::None, None) | (Suffix::Optional, _) => true,
            (Suffix::None, Some(_)) => false,
            (s, Some(t)) => s.allows(t),
            (_, None) => false,
        };
        if !suffix_ok {
            return false;
        }
        let here = Site::at(b.index(), pos as u32 + 1);
        let mut name_seen = None;
        match (d.result, info.result_type(d.ty)) {
            (None, None) => {}
            (Some(r), Some(t)) => {
                let Some(v) = f.values.get(r.index()) else {
                    return false;
                };
                if self.s.def.get(r.index()) != Some(&here) || v.def != ValueDef::Inst(inst) {
                    return false;
                }
                if v.ty != t {
                    return false;
                }
                if let Some(name) = v.name {
                    if !f.names.is_valid_value_name(name)
                        || self.s.value_seen[name.index()] == self.stamp
                    {
                        return false;
                    }
                    name_seen = Some(name.index());
                }
            }
            _ => return false,
        }
        let at = (b, pos as u32 + 1);
        for (&op, &rule) in ops.iter().zip(info.operands) {
            let want = match rule {
                OperandTy::OpenInt => Want::OpenInt,
                OperandTy::OpenFloat => Want::OpenFloat,
                OperandTy::AnyIntLiteralI64 => Want::IntLiteralI64,
                other => match other.fixed(d.ty) {
                    Some(t) => Want::Exact(t),
                    // `fixed_operands` stops here too.
                    None => break,
                },
            };
            if !self.plainly_ok(at, op, want) {
                return false;
            }
        }
        if let Some(n) = name_seen {
            self.s.value_seen[n] = self.stamp;
        }
        true
    }

    /// One instruction, token by token.
    fn check_inst(&mut self, b: Block, pos: usize, inst: Inst) -> Res {
        let f = self.f;
        let d = &f.insts[inst.index()];
        let info = d.opcode.info();
        let name = info.name;
        let iloc = || f.srcmap.inst(inst);
        if !format_matches(info.format, &d.kind) {
            return Err(bad(
                iloc(),
                format!("'{name}' has operands of the wrong form"),
            ));
        }
        // The result, `%d = `.
        let result_ty = info.result_type(d.ty);
        let rloc = |r: Value| f.srcmap.value(r).or(iloc());
        match d.result {
            Some(r) => {
                let this = Site::at(b.index(), pos as u32 + 1);
                if self.s.def.get(r.index()) != Some(&this)
                    || f.values[r.index()].def != ValueDef::Inst(inst)
                {
                    return Err(bad(
                        rloc(r),
                        format!("{} is defined more than once", self.vname(r)),
                    ));
                }
                self.check_value_name(r)?;
                if result_ty.is_none() && d.opcode != Opcode::Call {
                    return Err(bad(rloc(r), format!("'{name}' has no result")));
                }
            }
            None => {
                if result_ty.is_some() && d.opcode != Opcode::Call {
                    return Err(bad(iloc(), format!("'{name}' needs a result")));
                }
            }
        }
        // The mnemonic and its suffix.
        if d.opcode == Opcode::Call {
            self.check_call_suffix(d, inst)?;
            if let (Some(r), None) = (d.result, d.ty) {
                return Err(bad(
                    rloc(r),
                    "call without a type suffix has no result".into(),
                ));
            }
        } else {
            match (info.suffix, d.ty) {
                (Suffix::None, Some(_)) => {
                    return Err(bad(iloc(), format!("'{name}' takes no type suffix")));
                }
                (Suffix::None, None) | (Suffix::Optional, _) => {}
                (s, None) => {
                    return Err(bad(
                        iloc(),
                        format!("'{name}' needs a type suffix ({})", s.describe()),
                    ));
                }
                (s, Some(t)) if !s.allows(t) => {
                    return Err(bad(
                        iloc(),
                        format!(
                            "'{name}' cannot take type suffix {t} (expected {})",
                            s.describe()
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let (Some(r), Some(t)) = (d.result, result_ty) {
            let have = f.values[r.index()].ty;
            if have != t {
                return Err(bad(
                    rloc(r),
                    format!("result {} has type {have}, expected {t}", self.vname(r)),
                ));
            }
        }
        let at = (b, pos as u32 + 1);
        // Operands, in textual order.
        match &d.kind {
            InstKind::Unary { arg } => self.fixed_operands(inst, at, d, &[*arg]),
            InstKind::Binary { args } => self.fixed_operands(inst, at, d, args),
            InstKind::Select { args } => self.fixed_operands(inst, at, d, args),
            InstKind::Load { ptr, .. } => self.fixed_operands(inst, at, d, &[*ptr]),
            InstKind::Store { args, .. } => self.fixed_operands(inst, at, d, args),
            InstKind::Alloca { size, align } => {
                if *size > MAX_ALLOCA {
                    return Err(bad(
                        f.extra_loc(inst),
                        format!("alloca size {size} exceeds the limit of {MAX_ALLOCA} bytes"),
                    ));
                }
                if !align.is_power_of_two() || *align > 16 {
                    return Err(bad(
                        f.extra2_loc(inst),
                        format!("alloca alignment {align} is not a power of two up to 16"),
                    ));
                }
                Ok(())
            }
            InstKind::Addr { sym } => {
                if sym.index() >= self.m.symbols.len() {
                    return Err(bad(
                        f.extra_loc(inst),
                        format!("address of missing symbol {sym}"),
                    ));
                }
                Ok(())
            }
            InstKind::Call { callee, args } => self.check_call(inst, at, callee, f.args(*args)),
            InstKind::Ret { value } => self.check_ret(inst, at, *value),
            InstKind::Jmp { dest } => self.check_block_call(inst, at, dest, 0, 0),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                let want = Want::Exact(Type::I32);
                self.operand_as(inst, at, 0, *cond, want, "br", "branch condition ")?;
                self.check_block_call(inst, at, then_dest, 0, 1)?;
                self.check_block_call(inst, at, else_dest, 1, 1 + then_dest.args.len())
            }
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                let Some(ty) = d.ty else { return Ok(()) };
                self.operand(inst, at, 0, *value, Want::Exact(ty), "")?;
                self.switch_target(inst, *default, 0)?;
                let cases = f.cases(*cases);
                self.s.keys.clear();
                for (i, case) in cases.iter().enumerate() {
                    if let Some(msg) = literal_error(case.key, ty) {
                        return Err(bad(f.key_loc(inst, i), msg));
                    }
                    if let Some(old) = self.s.keys.insert(case.key.bits(ty), case.key) {
                        let key = const_text(case.key);
                        let msg = if old == case.key {
                            format!("duplicate switch key {key}")
                        } else {
                            let old = const_text(old);
                            format!("switch key {key} duplicates key {old} (equal as {ty})")
                        };
                        return Err(bad(f.key_loc(inst, i), msg));
                    }
                    self.switch_target(inst, case.block, i + 1)?;
                }
                Ok(())
            }
            InstKind::Trap => Ok(()),
        }
    }

    /// The operands typed by the opcode table's `operands` column.
    #[inline]
    fn fixed_operands(&self, inst: Inst, at: At, d: &InstData, ops: &[Operand]) -> Res {
        let info = d.opcode.info();
        for (i, (&op, &rule)) in ops.iter().zip(info.operands).enumerate() {
            let want = match rule {
                OperandTy::OpenInt => Want::OpenInt,
                OperandTy::OpenFloat => Want::OpenFloat,
                OperandTy::AnyIntLiteralI64 => Want::IntLiteralI64,
                other => match other.fixed(d.ty) {
                    Some(t) => Want::Exact(t),
                    None => return Ok(()),
                },
            };
            if self.plainly_ok(at, op, want) {
                continue;
            }
            let role = if d.opcode == Opcode::Select && i == 0 {
                "select condition "
            } else {
                ""
            };
            self.operand_as(inst, at, i, op, want, info.name, role)?;
        }
        Ok(())
    }

    /// One value operand (`index` in [`Function::operands`] order) used at
    /// `at`: defined, dominating, of the wanted type; or a literal allowed
    /// here that fits.
    #[inline]
    fn operand(
        &self,
        inst: Inst,
        at: At,
        index: usize,
        op: Operand,
        want: Want,
        opname: &str,
    ) -> Res {
        self.operand_as(inst, at, index, op, want, opname, "")
    }

    /// The common operands, checked without a call: a value of exactly the
    /// wanted type that is a function parameter or defined earlier in the
    /// using block (or in a block dominating it: the dominance facts are
    /// computed on first use, as for any check), or a literal that fits the
    /// wanted type. `false` says
    /// nothing: [`Self::operand_as`] decides (and words the error).
    #[inline(always)]
    fn plainly_ok(&self, (ub, upos): At, op: Operand, want: Want) -> bool {
        let Want::Exact(t) = want else {
            return false;
        };
        match op {
            Operand::Value(v) => match self.s.def.get(v.index()) {
                Some(&site) => {
                    let before = (site.block == ub.0 && site.pos < upos)
                        || site == Site::FUNC_PARAM
                        || (site != Site::UNDEFINED
                            && site.block != ub.0
                            && self.block_dominates(Block(site.block), ub));
                    before && self.f.values[v.index()].ty == t
                }
                None => false,
            },
            Operand::Const(c) => c.fits(t),
        }
    }

    /// [`Self::operand`], naming the operand's `role` in a type mismatch.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn operand_as(
        &self,
        inst: Inst,
        at: At,
        index: usize,
        op: Operand,
        want: Want,
        opname: &str,
        role: &str,
    ) -> Res {
        let loc = || self.f.operand_loc(inst, index);
        match op {
            Operand::Const(c) => {
                let ty = match want {
                    Want::Exact(t) => t,
                    Want::IntLiteralI64 => Type::I64,
                    Want::OpenInt | Want::OpenFloat => {
                        return Err(bad(
                            loc(),
                            format!("the operand of '{opname}' must be a value, not a literal"),
                        ))
                    }
                    Want::AnyValue => {
                        return Err(bad(
                            loc(),
                            "arguments of an indirect call must be values, not literals".into(),
                        ))
                    }
                };
                match literal_error(c, ty) {
                    Some(msg) => Err(bad(loc(), msg)),
                    None => Ok(()),
                }
            }
            Operand::Value(v) => {
                if !self.dominates_use(v, at) {
                    return Err(bad(loc(), self.dominance_message(v)));
                }
                let ty = self.f.values[v.index()].ty;
                let ok = match want {
                    Want::Exact(t) => ty == t,
                    Want::IntLiteralI64 | Want::OpenInt => ty.is_int(),
                    Want::OpenFloat => ty.is_float(),
                    Want::AnyValue => true,
                };
                if ok {
                    return Ok(());
                }
                let expected = match want {
                    Want::Exact(t) => t.name(),
                    Want::IntLiteralI64 | Want::OpenInt => "i32 or i64",
                    Want::OpenFloat => "f32 or f64",
                    Want::AnyValue => "",
                };
                Err(bad(
                    loc(),
                    format!("{role}{} has type {ty}, expected {expected}", self.vname(v)),
                ))
            }
        }
    }

    /// Whether the definition of `v` dominates a use at `(block,
    /// position)`. In an unreachable block only earlier definitions of
    /// that block and function parameters count.
    #[inline]
    fn dominates_use(&self, v: Value, (ub, upos): At) -> bool {
        let site = self
            .s
            .def
            .get(v.index())
            .copied()
            .unwrap_or(Site::UNDEFINED);
        if site == Site::FUNC_PARAM {
            true
        } else if site == Site::UNDEFINED {
            false
        } else if site.block == ub.0 {
            site.pos < upos
        } else {
            self.block_dominates(Block(site.block), ub)
        }
    }

    /// Whether block `a` dominates block `b` (`false` if either is
    /// unreachable): the entry dominates every reachable block, so its
    /// values only need reachability; other blocks need the dominator
    /// tree. Both are computed on first use.
    fn block_dominates(&self, a: Block, b: Block) -> bool {
        let mut d = self.s.dom.borrow_mut();
        if a == self.f.entry() && !d.dom_ready {
            if d.reach_stamp != self.stamp {
                d.compute_reach(self.f, self.stamp);
            }
            return d.reach.get(b.index()) == Some(&self.stamp);
        }
        if !d.dom_ready {
            let d = &mut *d;
            d.cfg.compute(self.f);
            d.dom.compute(&d.cfg);
            d.dom_ready = true;
        }
        d.dom.dominates(a, b)
    }

    #[cold]
    fn dominance_message(&self, v: Value) -> String {
        let site = self
            .s
            .def
            .get(v.index())
            .copied()
            .unwrap_or(Site::UNDEFINED);
        if site == Site::UNDEFINED {
            format!("use of undefined value {}", self.vname(v))
        } else {
            format!(
                "use of {} is not dominated by its definition",
                self.vname(v)
            )
        }
    }

    fn check_call_suffix(&self, d: &InstData, inst: Inst) -> Res {
        let InstKind::Call {
            callee: Callee::Direct(sym),
            ..
        } = &d.kind
        else {
            return Ok(());
        };
        let Some(s) = self.m.symbols.get(sym.index()) else {
            return Ok(()); // reported at the callee token
        };
        let Some(sig) = s.signature() else {
            return Ok(()); // reported at the callee token
        };
        let callee = &s.name;
        let iloc = || self.f.srcmap.inst(inst);
        match (d.ty, sig.ret) {
            (None, Some(r)) => Err(bad(
                iloc(),
                format!("call of '@{callee}' needs type suffix {r} (its return type)"),
            )),
            (Some(_), None) => Err(bad(
                iloc(),
                format!("call of '@{callee}' takes no type suffix ('@{callee}' returns nothing)"),
            )),
            (Some(t), Some(r)) if t != r => Err(bad(
                iloc(),
                format!("call of '@{callee}' has type suffix {t}, but '@{callee}' returns {r}"),
            )),
            _ => Ok(()),
        }
    }

    fn check_call(&self, inst: Inst, at: At, callee: &Callee, args: &[Operand]) -> Res {
        match callee {
            Callee::Direct(sym) => {
                let loc = || self.f.extra_loc(inst);
                let Some(s) = self.m.symbols.get(sym.index()) else {
                    return Err(bad(loc(), format!("call of missing symbol {sym}")));
                };
                let Some(sig) = s.signature() else {
                    return Err(bad(loc(), format!("'@{}' is not a function", s.name)));
                };
                if args.len() != sig.params.len() {
                    return Err(bad(
                        loc(),
                        arg_count_message(&format!("'@{}'", s.name), sig, args.len()),
                    ));
                }
                for (i, (&a, &t)) in args.iter().zip(&sig.params).enumerate() {
                    self.operand(inst, at, i, a, Want::Exact(t), "call")?;
                }
                Ok(())
            }
            Callee::Indirect(fp) => {
                if let Operand::Const(_) = fp {
                    return Err(bad(
                        self.f.operand_loc(inst, 0),
                        "the callee of an indirect call must be a value, not a literal".into(),
                    ));
                }
                self.operand(inst, at, 0, *fp, Want::Exact(Type::I64), "call")?;
                for (i, &a) in args.iter().enumerate() {
                    self.operand(inst, at, i + 1, a, Want::AnyValue, "call")?;
                }
                Ok(())
            }
        }
    }

    fn check_ret(&self, inst: Inst, at: At, value: Option<Operand>) -> Res {
        let f = self.f;
        match (value, f.sig.ret) {
            (None, None) => Ok(()),
            (None, Some(t)) => Err(bad(
                f.srcmap.inst(inst),
                format!("'@{}' returns {t}, so 'ret' needs a value", f.name),
            )),
            (Some(_), None) => Err(bad(
                f.operand_loc(inst, 0),
                format!(
                    "'@{}' returns nothing, so 'ret' cannot have a value",
                    f.name
                ),
            )),
            (Some(v), Some(t)) => self.operand(inst, at, 0, v, Want::Exact(t), "ret"),
        }
    }

    /// A target block: must exist and not be the entry.
    #[inline]
    fn target(
        &self,
        inst: Inst,
        block: Block,
        label: usize,
    ) -> std::result::Result<&'a BlockData, Failure> {
        let f = self.f;
        let Some(bd) = f.blocks.get(block.index()) else {
            return Err(bad(
                f.label_loc(inst, label),
                format!("branch to missing {block}"),
            ));
        };
        if block == f.entry() {
            return Err(bad(
                f.label_loc(inst, label),
                format!(
                    "entry block '{}' cannot be a branch target",
                    f.names.get(bd.name)
                ),
            ));
        }
        Ok(bd)
    }

    /// A `jmp`/`br` target (label `label`, arguments starting at operand
    /// `first_arg`).
    fn check_block_call(
        &self,
        inst: Inst,
        at: At,
        dest: &BlockCall,
        label: usize,
        first_arg: usize,
    ) -> Res {
        let f = self.f;
        let bd = self.target(inst, dest.block, label)?;
        let args = f.args(dest.args);
        if args.len() != bd.params.len() {
            let n = bd.params.len();
            return Err(bad(
                f.label_loc(inst, label),
                format!(
                    "block '{}' takes {n} argument{}, but {} given",
                    f.names.get(bd.name),
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        for (i, (&a, &p)) in args.iter().zip(&bd.params).enumerate() {
            let t = f.values.get(p.index()).map_or(Type::I64, |d| d.ty);
            self.operand(inst, at, first_arg + i, a, Want::Exact(t), "jmp")?;
        }
        Ok(())
    }

    fn switch_target(&self, inst: Inst, block: Block, label: usize) -> Res {
        let bd = self.target(inst, block, label)?;
        if !bd.params.is_empty() {
            return Err(bad(
                self.f.label_loc(inst, label),
                format!(
                    "switch target '{}' cannot have parameters",
                    self.f.names.get(bd.name)
                ),
            ));
        }
        Ok(())
    }
}

fn arg_count_message(callee: &str, sig: &Signature, given: usize) -> String {
    let n = sig.params.len();
    format!(
        "{callee} takes {n} argument{}, but {given} given",
        if n == 1 { "" } else { "s" }
    )
}

/// Whether the operand layout `kind` is the one `format` calls for.
fn format_matches(format: Format, kind: &InstKind) -> bool {
    matches!(
        (format, kind),
        (Format::Unary, InstKind::Unary { .. })
            | (Format::Binary, InstKind::Binary { .. })
            | (Format::Select, InstKind::Select { .. })
            | (Format::Load, InstKind::Load { .. })
            | (Format::Store, InstKind::Store { .. })
            | (Format::Alloca, InstKind::Alloca { .. })
            | (Format::Addr, InstKind::Addr { .. })
            | (Format::Call, InstKind::Call { .. })
            | (Format::Ret, InstKind::Ret { .. })
            | (Format::Jmp, InstKind::Jmp { .. })
            | (Format::Br, InstKind::Br { .. })
            | (Format::Switch, InstKind::Switch { .. })
            | (Format::Trap, InstKind::Trap)
    )
}

/// A literal as it reads in a message.
fn const_text(c: Const) -> String {
    match c {
        Const::Int(v) => v.get().to_string(),
        Const::Float(b) => format!("{:?}", f64::from_bits(b)),
    }
}

/// Why literal `c` cannot be a value of type `ty`, if it cannot.
#[inline]
fn literal_error(c: Const, ty: Type) -> Option<String> {
    if c.fits(ty) {
        return None;
    }
    Some(match c {
        Const::Float(_) => format!("float literal {} where {ty} is expected", const_text(c)),
        Const::Int(_) => format!("literal {} does not fit {ty}", const_text(c)),
    })
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// The per-block fields of a function with as many blocks as the
    /// bound allows are kept for the next module (they used to count as
    /// entries: 200,000 blocks, 1.6M slots, were given back and refilled
    /// for every module); past the bound they are given back.
    #[test]
    fn per_block_fields_are_bounded_by_blocks() {
        let mut s = Scratch::default();
        s.fields.reserve_exact(200_000 * fast::SLOTS_PER_BLOCK);
        assert!(s.is_small());
        s.fields = Vec::with_capacity(CACHE_MAX * fast::SLOTS_PER_BLOCK + 1);
        assert!(!s.is_small());
    }
}
