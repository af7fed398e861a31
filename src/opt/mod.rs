//! The `speed` tier: IR-to-IR passes run on a verified module before it is
//! lowered (SPEC section 8, `--opt speed`). At [`OptLevel::None`], the
//! default, nothing here runs and the fast path is untouched.
//!
//! The pipeline ([`SPEED`]), one file per pass, each linear or near-linear
//! in the size of the function:
//! - [`inline`]: small, leaf, loop-free, trap-free `local` functions are
//!   copied into their callers; then [`prune`] drops the `local`
//!   functions nothing reaches any more;
//! - [`fold`]: constant folding and algebraic simplification, branches on
//!   constants, block parameters that always receive the same value;
//! - [`gvn`]: dominator-scoped value numbering (common subexpressions);
//!   before the first `gvn` of a pipeline, two rewrites that create the
//!   equal computations it then merges: [`divrem`] makes a remainder by
//!   a literal share the division of the same operands
//!   (`x - (x / C) * C`), and [`addr`] moves literals out of addresses
//!   into the accesses' offsets (neighbouring accesses share one
//!   address);
//! - [`loads`]: redundant loads and store-to-load forwarding, with one
//!   sound alias rule (same base value and offset, no store or call in
//!   between);
//! - [`licm`]: loop-invariant code motion into loop preheaders, never of
//!   anything that could trap;
//! - [`dce`]: dead instructions and block parameters, unreachable blocks,
//!   jump threading through empty blocks and straight-line block merging,
//!   and the final compaction of the function's tables.
//!
//! Semantics are kept exactly (SPEC sections 5–7): traps happen where and
//! in the order they would have, arithmetic wraps as it did, and no float
//! rewrite changes a result except in the bits of a NaN (which SPEC leaves
//! unspecified; constant folding never produces a NaN anyway). Loads are
//! never introduced where the program had none on a path, since reading
//! memory the program does not own is undefined; loads are removed only
//! when their value is known.
//!
//! Every pass leaves a verified function verified. The passes record
//! replacements in a [`subst::Subst`] and edit block instruction lists;
//! the tables keep orphaned entries until [`dce`] compacts them, and every
//! pipeline ends with it.

pub mod addr;
pub mod dce;
pub mod divrem;
pub mod eval;
pub mod fold;
pub mod gvn;
pub mod inline;
pub mod labels;
pub mod licm;
pub mod loads;
pub mod magic;
pub mod prune;
pub mod subst;
pub mod table;

use crate::analysis::FuncAnalysis;
use crate::ir::{Function, InstData, InstKind, Module, Opcode, Operand, Type};

/// How much work the engine does on a module before lowering it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// The fast path: the IR is lowered as written.
    #[default]
    None,
    /// The optimizing tier: [`SPEED`] runs first.
    Speed,
}

impl OptLevel {
    /// The command-line name: `none` or `speed`.
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<OptLevel> {
        match name {
            "none" => Some(OptLevel::None),
            "speed" => Some(OptLevel::Speed),
            _ => None,
        }
    }
}

/// One pass, by name (`kiln opt --passes fold,dce` runs a chosen list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Inline,
    Fold,
    Gvn,
    Loads,
    Licm,
    Dce,
}

impl Pass {
    /// Every pass, in pipeline order.
    pub const ALL: [Pass; 6] = [
        Pass::Inline,
        Pass::Fold,
        Pass::Gvn,
        Pass::Loads,
        Pass::Licm,
        Pass::Dce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pass::Inline => "inline",
            Pass::Fold => "fold",
            Pass::Gvn => "gvn",
            Pass::Loads => "loads",
            Pass::Licm => "licm",
            Pass::Dce => "dce",
        }
    }

    pub fn from_name(name: &str) -> Option<Pass> {
        Pass::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The `speed` pipeline. `gvn` runs again after `licm`, which brings
/// equal computations from different blocks of a loop together in its
/// preheader; `dce` always runs last (it compacts).
pub const SPEED: &[Pass] = &[
    Pass::Inline,
    Pass::Fold,
    Pass::Gvn,
    Pass::Loads,
    Pass::Licm,
    Pass::Gvn,
    Pass::Dce,
];

/// Optimizes every function of a verified module at `level`.
pub fn optimize_module(module: &mut Module, level: OptLevel) {
    if level == OptLevel::Speed {
        run_passes(module, SPEED);
        module.optimized = true;
    }
}

/// The analyses of the function a pass works on, kept while they describe
/// it, in storage reused from function to function.
#[derive(Default)]
pub struct Analyses {
    a: FuncAnalysis,
    valid: bool,
}

impl Analyses {
    /// The analyses of `f`, computed unless still valid.
    pub fn get(&mut self, f: &Function) -> &FuncAnalysis {
        if !self.valid {
            self.a.recompute(f);
            self.valid = true;
        }
        &self.a
    }

    /// The analyses, when they describe the function as it is.
    pub fn cached(&self) -> Option<&FuncAnalysis> {
        self.valid.then_some(&self.a)
    }

    /// Forgets the analyses (the function's CFG changed).
    pub fn invalidate(&mut self) {
        self.valid = false;
    }
}

/// Everything the passes keep from one function to the next: the
/// analyses and scratch buffers, so that a module of many small functions
/// does not allocate them anew for each.
#[derive(Default)]
pub struct Ctx {
    pub an: Analyses,
    /// The substitution of the pass at work.
    pub subst: subst::Subst,
    pub incoming: fold::Incoming,
    pub gvn: gvn::Scratch,
    pub divrem: divrem::Scratch,
    pub addr: addr::Scratch,
    pub loads: loads::Scratch,
    pub dce: dce::Scratch,
}

/// Runs `passes` in order over a verified module. A list that does not
/// end with [`Pass::Dce`] gets one, so the tables are compact afterwards.
///
/// [`Pass::Inline`] works on the whole module; the other passes run
/// function by function, all of them on one function before the next
/// (they look at one function only), with one [`Ctx`].
///
/// [`Pass::Gvn`] skips a function that nothing changed since its last
/// `gvn` (when `loads` replaced no load and `licm` hoisted nothing, a
/// second run would find nothing new: value numbering is idempotent).
pub fn run_passes(module: &mut Module, passes: &[Pass]) {
    let kept = CTX.try_with(|c| match c.try_borrow_mut() {
        Ok(mut cx) => {
            let cx = cx.get_or_insert_with(Box::default);
            run_passes_in(module, passes, cx);
            let biggest = module.funcs.iter().map(|f| f.insts.len()).max();
            if biggest.unwrap_or(0) > KEEP_INSTS {
                **cx = Ctx::default();
            }
            true
        }
        Err(_) => false,
    });
    if kept != Ok(true) {
        // Re-entered, or the thread is ending: a context of its own.
        run_passes_in(module, passes, &mut Ctx::default());
    }
}

thread_local! {
    /// The context of the last module optimized on this thread, when its
    /// functions were small (as the verifier and the back end keep
    /// theirs): a module of a few small functions would otherwise spend a
    /// good part of its optimization growing fresh vectors.
    /// Boxed on first use, so that threads that never optimize do not
    /// clear its kilobytes of thread-local storage when they start.
    static CTX: std::cell::RefCell<Option<Box<Ctx>>> = const { std::cell::RefCell::new(None) };
}

/// Largest function (instructions) whose [`Ctx`] is kept for the next
/// module.
const KEEP_INSTS: usize = 4096;

/// [`run_passes`] with the context `cx`.
fn run_passes_in(module: &mut Module, passes: &[Pass], cx: &mut Ctx) {
    let mut rest = passes;
    while !rest.is_empty() {
        if rest[0] == Pass::Inline {
            if inline::run(module) {
                prune::run(module);
            }
            rest = &rest[1..];
            continue;
        }
        let n = rest
            .iter()
            .position(|&p| p == Pass::Inline)
            .unwrap_or(rest.len());
        for f in &mut module.funcs {
            run_function_passes(f, &rest[..n], cx);
        }
        rest = &rest[n..];
    }
    if passes.last() != Some(&Pass::Dce) {
        for f in &mut module.funcs {
            cx.an.invalidate();
            dce::run_with(f, cx);
        }
    }
}

/// Runs function passes (no [`Pass::Inline`]) over `f` in order.
fn run_function_passes(f: &mut Function, passes: &[Pass], cx: &mut Ctx) {
    // The analyses describe `f` only once computed for it. `gvn`, `loads`
    // and `licm` leave the CFG alone (`gvn` says when a branch it
    // simplified became a jump; `licm` recomputes them after adding
    // preheaders), so one computation serves them all and `dce` too when
    // it merges no blocks.
    cx.an.invalidate();
    // Changed since its last gvn.
    let mut dirty = true;
    let mut first_gvn = true;
    for &pass in passes {
        match pass {
            Pass::Inline => {}
            Pass::Fold => {
                fold::run_with(f, cx);
                dirty = true;
            }
            Pass::Gvn => {
                if dirty && !f.blocks.is_empty() {
                    let a = cx.an.get(f);
                    if first_gvn {
                        // Neither changes the CFG: `a` stays valid.
                        divrem::run_with(f, a, &mut cx.divrem);
                        addr::run_with(f, &mut cx.addr);
                    }
                    if !gvn::run_with(f, a, &mut cx.gvn, &mut cx.subst) {
                        cx.an.invalidate();
                    }
                }
                dirty = false;
                first_gvn = false;
            }
            Pass::Loads => dirty |= loads::run_with(f, cx),
            Pass::Licm => dirty |= licm::run_with(f, &mut cx.an),
            Pass::Dce => {
                dce::run_with(f, cx);
                dirty = true;
            }
        }
    }
}

/// Whether `d` computes its result from its operands alone: no effect, no
/// memory access, no possible trap. Such an instruction may be merged with
/// an equal one, moved to any point its operands dominate, or deleted.
pub fn is_pure(d: &InstData) -> bool {
    use Opcode::*;
    match d.opcode {
        Copy | Add | Sub | Mul | And | Or | Xor | Shl | Shr | Sar | Neg | Not | Fadd | Fsub
        | Fmul | Fdiv | Fneg | Fabs | Fsqrt | Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt
        | Uge | Feq | Fne | Flt | Fle | Fgt | Fge | Select | Sext | Zext | Trunc | Fext
        | Ftrunc | Sitof | Uitof | Ftosi | Ftoui | Bitcast | Addr => true,
        Sdiv | Udiv | Srem | Urem => !division_may_trap(d),
        _ => false,
    }
}

/// Whether `d` is a division or remainder.
pub fn is_division(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Sdiv | Opcode::Udiv | Opcode::Srem | Opcode::Urem
    )
}

/// Whether a division or remainder may trap: unless its divisor is a
/// literal other than 0 (and, for `sdiv`, other than -1, whose quotient
/// of MIN overflows; `srem` of MIN by -1 is 0 and does not trap).
pub fn division_may_trap(d: &InstData) -> bool {
    let (InstKind::Binary { args }, Some(ty)) = (&d.kind, d.ty) else {
        return true;
    };
    match args[1] {
        Operand::Const(c) => {
            let b = c.bits(ty);
            b == 0 || (d.opcode == Opcode::Sdiv && b == all_ones(ty))
        }
        Operand::Value(_) => true,
    }
}

/// The bits of -1 in integer type `ty`.
pub fn all_ones(ty: Type) -> u64 {
    match ty {
        Type::I32 | Type::F32 => 0xffff_ffff,
        Type::I64 | Type::F64 => u64::MAX,
    }
}

/// Whether `d` may be deleted when its result is unused: pure
/// instructions, loads (a load of memory the program does not own is
/// undefined, not a trap) and `alloca`.
pub fn removable_if_unused(d: &InstData) -> bool {
    is_pure(d) || matches!(d.kind, InstKind::Load { .. }) || d.opcode == Opcode::Alloca
}
