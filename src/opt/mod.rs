//! The `speed` tier: IR-to-IR passes run on a verified module before it is
//! lowered (SPEC section 8, `--opt speed`). At [`OptLevel::None`], the
//! default, nothing here runs and the fast path is untouched.
//!
//! The pipeline ([`SPEED`]), one file per pass, each linear or near-linear
//! in the size of the function:
//! - [`inline`]: small, leaf, loop-free, trap-free `local` functions are
//!   copied into their callers;
//! - [`fold`]: constant folding and algebraic simplification, branches on
//!   constants, block parameters that always receive the same value;
//! - [`gvn`]: dominator-scoped value numbering (common subexpressions);
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

pub mod dce;
pub mod eval;
pub mod fold;
pub mod gvn;
pub mod inline;
pub mod licm;
pub mod loads;
pub mod magic;
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

/// Runs `passes` in order over a verified module. A list that does not
/// end with [`Pass::Dce`] gets one, so the tables are compact afterwards.
///
/// [`Pass::Gvn`] skips a function that nothing changed since its last
/// `gvn` (when `loads` replaced no load and `licm` hoisted nothing, a
/// second run would find nothing new: value numbering is idempotent).
pub fn run_passes(module: &mut Module, passes: &[Pass]) {
    // Per function: changed since its last gvn.
    let mut dirty = vec![true; module.funcs.len()];
    // Per function: its analyses (CFG, dominators, loops) while they
    // describe it. `gvn`, `loads` and `licm` leave the CFG alone (`gvn`
    // says when a branch it simplified became a jump; `licm` recomputes
    // them after adding preheaders), so one computation serves them all
    // and `dce` too when it merges no blocks.
    let mut cache: Vec<Option<FuncAnalysis>> = vec![None; module.funcs.len()];
    for &pass in passes {
        match pass {
            Pass::Inline => {
                inline::run(module);
                dirty = vec![true; module.funcs.len()];
                cache = vec![None; module.funcs.len()];
            }
            _ => {
                for ((f, d), a) in module
                    .funcs
                    .iter_mut()
                    .zip(dirty.iter_mut())
                    .zip(cache.iter_mut())
                {
                    match pass {
                        Pass::Gvn if !*d => {}
                        Pass::Gvn => {
                            if !f.blocks.is_empty() {
                                let an = a.take().unwrap_or_else(|| FuncAnalysis::new(f));
                                if gvn::run_with(f, &an) {
                                    *a = Some(an);
                                }
                            }
                            *d = false;
                        }
                        Pass::Loads => *d |= loads::run_with(f, a),
                        Pass::Licm => *d |= licm::run_with(f, a),
                        Pass::Dce => {
                            dce::run_with(f, a.take());
                            *d = true;
                        }
                        _ => {
                            run_function_pass(f, pass);
                            *a = None;
                            *d = true;
                        }
                    }
                }
            }
        }
    }
    if passes.last() != Some(&Pass::Dce) {
        for f in &mut module.funcs {
            dce::run(f);
        }
    }
}

fn run_function_pass(f: &mut Function, pass: Pass) {
    match pass {
        Pass::Inline => {}
        Pass::Fold => fold::run(f),
        Pass::Gvn => gvn::run(f),
        Pass::Loads => {
            loads::run(f);
        }
        Pass::Licm => {
            licm::run(f);
        }
        Pass::Dce => dce::run(f),
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
