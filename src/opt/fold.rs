//! Constant folding and algebraic simplification, one sweep in reverse
//! postorder (definitions before uses, except along back edges).
//!
//! What it does, per instruction after its operands are substituted:
//! - folds an instruction whose operands are literals ([`super::eval`]);
//!   operations that would trap, and NaN results, are left to run time;
//! - simplifies with identities that hold for every input: `x + 0`,
//!   `x * 1`, `x - x`, `x & x`, `x ^ x`, shifts by 0 (counts are taken
//!   modulo the width first), compares of a value with itself (integers
//!   only: a NaN is not equal to itself), `select` of equal arms,
//!   double `neg`/`not`/`fneg`, `trunc` of an extension, `copy`;
//! - canonicalizes: a literal goes to the right of a commutative operation
//!   or compare (the compare's predicate swapped), `x - C` becomes
//!   `x + (-C)`, so that chains of literal additions reassociate
//!   (`(x + 1) + 2` is `x + 3`);
//! - strength-reduces: multiplication, unsigned division and remainder by
//!   a power of two become shifts and masks; a float division by a power
//!   of two becomes the exact multiplication by its reciprocal; `eq c, 0`
//!   of an integer compare `c` is the inverse compare, `ne c, 0` is `c`;
//! - folds `add.i64 p, C` into the offset of the loads and stores that use
//!   it as their address, so that accesses through one base share it;
//! - turns `br` on a literal, or with two equal targets, and `switch` on a
//!   literal, into `jmp` (the blocks no longer reached are left to
//!   [`super::dce`]);
//! - replaces a block parameter that receives the same value on every
//!   edge (ignoring edges that pass the parameter itself) by that value.
//!
//! Nothing is deleted here: replaced values keep their definitions until
//! [`super::dce`] finds them unused.

use super::eval;
use super::subst::Subst;
use crate::ir::{
    Block, BlockCall, Function, Inst, InstData, InstKind, OpList, Opcode, Operand, Type, ValueDef,
};

/// How many successive rewrites one instruction may go through (each makes
/// it simpler; the bound keeps the pass linear whatever happens).
const MAX_REWRITES: usize = 4;

/// Runs the pass over `f`.
pub fn run(f: &mut Function) {
    run_with(f, &mut super::Ctx::default());
}

/// [`run`] with the analyses and buffers of `cx`; the analyses stay valid
/// unless a branch became a jump.
pub fn run_with(f: &mut Function, cx: &mut super::Ctx) {
    if f.blocks.is_empty() {
        return;
    }
    let subst = &mut cx.subst;
    subst.reset(f.values.len());
    let incoming = &mut cx.incoming;
    incoming.compute(f);
    let rpo = &cx.an.get(f).rpo;
    let mut cfg_changed = false;
    for &b in rpo.order() {
        simplify_params(f, subst, incoming, b);
        let n = f.blocks[b.index()].insts.len();
        for k in 0..n {
            let inst = f.blocks[b.index()].insts[k];
            if k + 1 == n && f.insts[inst.index()].opcode.is_terminator() {
                let before = successors(f, inst);
                simplify_inst(f, subst, inst);
                cfg_changed |= successors(f, inst) != before;
            } else {
                simplify_inst(f, subst, inst);
            }
        }
    }
    // Parameters fed along back edges are known only now.
    let sets = subst.sets();
    for &b in rpo.order() {
        simplify_params(f, subst, incoming, b);
    }
    // Every other replacement was recorded when its value's definition
    // was visited, before any use (reverse postorder visits a definition
    // before the blocks it dominates), and applied to each use as it was
    // visited; only these may have uses visited already.
    if subst.sets() != sets {
        apply_everywhere(f, subst);
    }
    if cfg_changed {
        cx.an.invalidate();
    }
}

/// The successors of terminator `t`, in order.
pub fn successors(f: &Function, t: Inst) -> smallvec::SmallVec<[Block; 4]> {
    let mut out = smallvec::SmallVec::new();
    f.for_each_successor(t, |s| out.push(s));
    out
}

/// Substitutes, then simplifies one instruction as far as it goes.
pub fn simplify_inst(f: &mut Function, subst: &mut Subst, inst: Inst) {
    subst.apply(f, inst);
    simplify_applied(f, subst, inst);
}

/// Simplifies one instruction whose operands are already substituted.
pub fn simplify_applied(f: &mut Function, subst: &mut Subst, inst: Inst) {
    for _ in 0..MAX_REWRITES {
        match simplify(f, subst, &f.insts[inst.index()]) {
            Action::Keep => return,
            Action::Replace(op) => {
                if let Some(r) = f.insts[inst.index()].result {
                    subst.set(r, op);
                }
                return;
            }
            Action::Rewrite(new) => {
                let d = &mut f.insts[inst.index()];
                d.opcode = new.opcode;
                d.ty = new.ty;
                d.kind = new.kind;
            }
        }
    }
}

/// Applies `subst` to every instruction of every block.
pub fn apply_everywhere(f: &mut Function, subst: &mut Subst) {
    if !subst.changed() {
        return;
    }
    for b in 0..f.blocks.len() {
        for k in 0..f.blocks[b].insts.len() {
            let i = f.blocks[b].insts[k];
            if i.index() < f.insts.len() {
                subst.apply(f, i);
            }
        }
    }
}

/// For each block, the edges into it: (terminator, index among the
/// terminator's block calls). `switch` edges carry no arguments and are
/// recorded with index `usize::MAX`.
pub fn incoming_edges(f: &Function) -> Incoming {
    let mut inc = Incoming::default();
    inc.compute(f);
    inc
}

/// The edges into each block ([`incoming_edges`]), in compressed rows:
/// `inc[b]` lists them in layout order of their terminators. Refilled in
/// place by [`Incoming::compute`].
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    start: Vec<u32>,
    edges: Vec<(Inst, usize)>,
}

impl Incoming {
    /// Makes these the incoming edges of `f`'s blocks (targets outside
    /// the block table are ignored).
    pub fn compute(&mut self, f: &Function) {
        let n = f.blocks.len();
        self.start.clear();
        self.start.resize(n + 2, 0);
        // Counts in `start[b + 2]`, then prefix sums make `start[b + 1]`
        // the fill cursor of row `b`, which ends as the row's end.
        Self::each(f, |b, _, _| {
            if b.index() < n {
                self.start[b.index() + 2] += 1;
            }
        });
        for b in 0..n {
            self.start[b + 2] += self.start[b + 1];
        }
        self.edges.clear();
        self.edges
            .resize(self.start[n + 1] as usize, (Inst::new(0), 0));
        let (start, edges) = (&mut self.start, &mut self.edges);
        Self::each(f, |b, t, k| {
            if b.index() < n {
                let at = &mut start[b.index() + 1];
                edges[*at as usize] = (t, k);
                *at += 1;
            }
        });
        self.start.pop();
    }

    /// Calls `g(target, terminator, call index)` for every edge of `f`.
    fn each(f: &Function, mut g: impl FnMut(Block, Inst, usize)) {
        for bd in &f.blocks {
            let Some(&t) = bd.insts.last() else { continue };
            let d = &f.insts[t.index()];
            match &d.kind {
                InstKind::Switch { default, cases, .. } => {
                    g(*default, t, usize::MAX);
                    for c in f.cases(*cases) {
                        g(c.block, t, usize::MAX);
                    }
                }
                InstKind::Jmp { dest } => g(dest.block, t, 0),
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => {
                    g(then_dest.block, t, 0);
                    g(else_dest.block, t, 1);
                }
                _ => {}
            }
        }
    }
}

impl std::ops::Index<usize> for Incoming {
    type Output = [(Inst, usize)];

    /// The edges into block number `b`.
    fn index(&self, b: usize) -> &[(Inst, usize)] {
        &self.edges[self.start[b] as usize..self.start[b + 1] as usize]
    }
}

/// Replaces each parameter of `b` that receives one and the same operand
/// on every edge (other than itself) by that operand. Edges recorded in
/// `incoming` that a folded branch no longer has are skipped.
pub fn simplify_params(f: &Function, subst: &mut Subst, incoming: &Incoming, b: Block) {
    let params = &f.blocks[b.index()].params;
    if params.is_empty() || b == f.entry() {
        return;
    }
    'params: for (pi, &p) in params.iter().enumerate() {
        if subst.resolve(Operand::Value(p)) != Operand::Value(p) {
            continue;
        }
        let mut same: Option<Operand> = None;
        for &(t, k) in &incoming[b.index()] {
            let calls = f.insts[t.index()].block_calls();
            let Some(bc) = calls.get(k).filter(|bc| bc.block == b) else {
                continue;
            };
            let Some(&arg) = f.args(bc.args).get(pi) else {
                continue 'params;
            };
            let arg = subst.resolve(arg);
            if arg == Operand::Value(p) {
                continue;
            }
            match same {
                None => same = Some(arg),
                Some(s) if s == arg => {}
                Some(_) => continue 'params,
            }
        }
        if let Some(x) = same {
            subst.set(p, x);
        }
    }
}

/// What to do with an instruction.
pub enum Action {
    /// Nothing to simplify.
    Keep,
    /// Every use of the result may read this operand instead.
    Replace(Operand),
    /// The instruction becomes this one (its result kept).
    Rewrite(Shape),
}

/// An instruction without its result.
pub struct Shape {
    pub opcode: Opcode,
    pub ty: Option<Type>,
    pub kind: InstKind,
}

fn bin(opcode: Opcode, ty: Type, a: Operand, b: Operand) -> Action {
    Action::Rewrite(Shape {
        opcode,
        ty: Some(ty),
        kind: InstKind::Binary { args: [a, b] },
    })
}

fn un(opcode: Opcode, ty: Type, a: Operand) -> Action {
    Action::Rewrite(Shape {
        opcode,
        ty: Some(ty),
        kind: InstKind::Unary { arg: a },
    })
}

fn jmp(dest: BlockCall) -> Action {
    Action::Rewrite(Shape {
        opcode: Opcode::Jmp,
        ty: None,
        kind: InstKind::Jmp { dest },
    })
}

/// The instruction defining `op`, when it is an instruction result.
pub fn def_of(f: &Function, op: Operand) -> Option<&InstData> {
    let Operand::Value(v) = op else { return None };
    match f.values.get(v.index())?.def {
        ValueDef::Inst(i) => f.insts.get(i.index()),
        _ => None,
    }
}

/// The type of operand `op` of an instruction whose literal operands have
/// type `lit_ty`.
fn op_type(f: &Function, op: Operand, lit_ty: Type) -> Type {
    f.operand_type(op, lit_ty)
}

/// `op` as a literal of type `ty`, looking through replacements (for
/// positions that hold only values).
fn known(subst: &mut Subst, op: Operand, ty: Type) -> Option<u64> {
    eval::bits(subst.resolve(op), ty)
}

/// Whether `x` is a power of two; its exponent.
fn log2(x: u64) -> Option<u32> {
    (x != 0 && x & (x - 1) == 0).then(|| x.trailing_zeros())
}

fn is_commutative(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Add | Mul | And | Or | Xor | Eq | Ne | Fadd | Fmul | Feq | Fne
    )
}

/// The compare with operands swapped: `a < b` is `b > a`.
fn swapped(op: Opcode) -> Opcode {
    use Opcode::*;
    match op {
        Slt => Sgt,
        Sle => Sge,
        Sgt => Slt,
        Sge => Sle,
        Ult => Ugt,
        Ule => Uge,
        Ugt => Ult,
        Uge => Ule,
        Flt => Fgt,
        Fle => Fge,
        Fgt => Flt,
        Fge => Fle,
        other => other,
    }
}

/// The integer compare that is true exactly when `op` is false.
fn inverse(op: Opcode) -> Option<Opcode> {
    use Opcode::*;
    Some(match op {
        Eq => Ne,
        Ne => Eq,
        Slt => Sge,
        Sle => Sgt,
        Sgt => Sle,
        Sge => Slt,
        Ult => Uge,
        Ule => Ugt,
        Ugt => Ule,
        Uge => Ult,
        _ => return None,
    })
}

fn is_int_compare(op: Opcode) -> bool {
    inverse(op).is_some()
}

/// Whether `op` is an integer or float compare (its result is 0 or 1).
pub fn is_compare(op: Opcode) -> bool {
    is_int_compare(op)
        || matches!(
            op,
            Opcode::Feq | Opcode::Fne | Opcode::Flt | Opcode::Fle | Opcode::Fgt | Opcode::Fge
        )
}

/// The simplification of `d` (operands already substituted).
pub fn simplify(f: &Function, subst: &mut Subst, d: &InstData) -> Action {
    match &d.kind {
        InstKind::Binary { args } => match d.ty {
            Some(ty) => binary(f, d.opcode, ty, args[0], args[1]),
            None => Action::Keep,
        },
        InstKind::Unary { arg } => match d.ty {
            Some(ty) => unary(f, subst, d.opcode, ty, *arg),
            None => Action::Keep,
        },
        InstKind::Select { args } => select(f, d.ty, args),
        InstKind::Load { ptr, offset } => match fold_address(f, *ptr, *offset) {
            Some((p, off)) => Action::Rewrite(Shape {
                opcode: d.opcode,
                ty: d.ty,
                kind: InstKind::Load {
                    ptr: p,
                    offset: off,
                },
            }),
            None => Action::Keep,
        },
        InstKind::Store { args, offset } => match fold_address(f, args[1], *offset) {
            Some((p, off)) => Action::Rewrite(Shape {
                opcode: d.opcode,
                ty: d.ty,
                kind: InstKind::Store {
                    args: [args[0], p],
                    offset: off,
                },
            }),
            None => Action::Keep,
        },
        InstKind::Br {
            cond,
            then_dest,
            else_dest,
        } => {
            if let Some(c) = eval::bits(*cond, Type::I32) {
                let dest = if c != 0 { then_dest } else { else_dest };
                return jmp(*dest);
            }
            if then_dest.block == else_dest.block
                && f.args(then_dest.args) == f.args(else_dest.args)
            {
                return jmp(*then_dest);
            }
            Action::Keep
        }
        InstKind::Switch {
            value,
            default,
            cases,
        } => {
            let (Some(ty), Some(v)) = (d.ty, eval::bits(*value, d.ty.unwrap_or(Type::I64))) else {
                return Action::Keep;
            };
            let target = f
                .cases(*cases)
                .iter()
                .find(|c| c.key.bits(ty) == v)
                .map_or(*default, |c| c.block);
            jmp(BlockCall {
                block: target,
                args: OpList::EMPTY,
            })
        }
        _ => Action::Keep,
    }
}

/// `load/store [add.i64 p, C], off` → `[p], off + C` when the sum fits 32
/// bits (what the backends fold into an addressing mode).
fn fold_address(f: &Function, ptr: Operand, offset: i64) -> Option<(Operand, i64)> {
    let inner = def_of(f, ptr)?;
    if inner.opcode != Opcode::Add || inner.ty != Some(Type::I64) {
        return None;
    }
    let InstKind::Binary { args } = inner.kind else {
        return None;
    };
    let c = eval::bits(args[1], Type::I64)? as i64;
    let sum = offset.checked_add(c)?;
    if i32::try_from(sum).is_err() || args[0].as_value().is_none() {
        return None;
    }
    Some((args[0], sum))
}

fn select(f: &Function, ty: Option<Type>, args: &[Operand; 3]) -> Action {
    let [c, a, b] = *args;
    if let Some(c) = eval::bits(c, Type::I32) {
        return Action::Replace(if c != 0 { a } else { b });
    }
    if a == b {
        return Action::Replace(a);
    }
    // select c, 1, 0 of a compare c (0 or 1) is c.
    if ty == Some(Type::I32)
        && eval::bits(a, Type::I32) == Some(1)
        && eval::bits(b, Type::I32) == Some(0)
        && def_of(f, c).is_some_and(|d| is_compare(d.opcode))
    {
        return Action::Replace(c);
    }
    Action::Keep
}

fn unary(f: &Function, subst: &mut Subst, op: Opcode, ty: Type, a: Operand) -> Action {
    use Opcode::*;
    let lit_ty = op
        .info()
        .operands
        .first()
        .and_then(|o| o.literal_type(Some(ty)))
        .unwrap_or(ty);
    let from = op_type(f, a, lit_ty);
    if let Some(x) = known(subst, a, from) {
        return match eval::unary(op, ty, from, x).and_then(|r| eval::literal(ty, r)) {
            Some(lit) => Action::Replace(lit),
            None => Action::Keep,
        };
    }
    if op == Copy {
        return Action::Replace(a);
    }
    let inner = def_of(f, a);
    let inner_arg = match inner.map(|d| &d.kind) {
        Some(InstKind::Unary { arg }) => Some(*arg),
        _ => None,
    };
    let inner_op = inner.map(|d| d.opcode);
    match (op, inner_op, inner_arg) {
        (Neg, Some(Neg), Some(x)) | (Not, Some(Not), Some(x)) | (Fneg, Some(Fneg), Some(x)) => {
            Action::Replace(x)
        }
        (Trunc, Some(Sext | Zext), Some(x)) => Action::Replace(x),
        (Fabs, Some(Fabs | Fneg), Some(x)) => un(Fabs, ty, x),
        _ => Action::Keep,
    }
}

fn binary(f: &Function, op: Opcode, ty: Type, a: Operand, b: Operand) -> Action {
    use Opcode::*;
    // The operand type: the suffix, which for compares is the operands'.
    let ka = eval::bits(a, ty);
    let kb = eval::bits(b, ty);
    if let (Some(x), Some(y)) = (ka, kb) {
        let rty = if is_compare(op) { Type::I32 } else { ty };
        return match eval::binary(op, ty, x, y).and_then(|r| eval::literal(rty, r)) {
            Some(lit) => Action::Replace(lit),
            None => Action::Keep,
        };
    }
    // Canonical order: the literal on the right.
    if ka.is_some() && kb.is_none() {
        if is_commutative(op) {
            return bin(op, ty, b, a);
        }
        if is_compare(op) {
            return bin(swapped(op), ty, b, a);
        }
    }
    if ty.is_float() {
        return float_binary(op, ty, a, kb);
    }
    let w = ty.bits() as u64;
    let ones = super::all_ones(ty);
    let zero = eval::int(ty, 0);
    let same = a == b;
    let i32_lit = |x: u64| eval::int(Type::I32, x);
    if same {
        match op {
            Sub | Xor => return Action::Replace(zero),
            And | Or => return Action::Replace(a),
            Eq | Sle | Sge | Ule | Uge => return Action::Replace(i32_lit(1)),
            Ne | Slt | Sgt | Ult | Ugt => return Action::Replace(i32_lit(0)),
            _ => {}
        }
    }
    if ka == Some(0) {
        match op {
            Sub => return un(Neg, ty, b),
            Shl | Shr | Sar | Mul | And => return Action::Replace(zero),
            _ => {}
        }
    }
    let Some(c) = kb else {
        return Action::Keep;
    };
    let sc = eval::signed(ty, c);
    match op {
        Add | Or | Xor if c == 0 => Action::Replace(a),
        Shl | Shr | Sar => {
            if c % w == 0 {
                Action::Replace(a)
            } else if c >= w {
                bin(op, ty, a, eval::int(ty, c % w))
            } else {
                shift_pair(f, op, ty, a, c).unwrap_or(Action::Keep)
            }
        }
        Add => reassociate(f, op, ty, a, c).unwrap_or(Action::Keep),
        Sub => bin(Add, ty, a, eval::int(ty, c.wrapping_neg())),
        Mul => match c {
            0 => Action::Replace(zero),
            1 => Action::Replace(a),
            _ if c == ones => un(Neg, ty, a),
            _ => match log2(c) {
                Some(k) => bin(Shl, ty, a, eval::int(ty, k as u64)),
                None => reassociate(f, op, ty, a, c).unwrap_or(Action::Keep),
            },
        },
        And => match c {
            0 => Action::Replace(zero),
            _ if c == ones => Action::Replace(a),
            _ => reassociate(f, op, ty, a, c).unwrap_or(Action::Keep),
        },
        Or if c == ones => Action::Replace(eval::int(ty, ones)),
        Or | Xor => {
            if op == Xor && c == ones {
                return un(Not, ty, a);
            }
            reassociate(f, op, ty, a, c).unwrap_or(Action::Keep)
        }
        Sdiv if sc == 1 => Action::Replace(a),
        Udiv if c == 1 => Action::Replace(a),
        Udiv => match log2(c) {
            Some(k) => bin(Shr, ty, a, eval::int(ty, k as u64)),
            None => Action::Keep,
        },
        Srem if sc == 1 || sc == -1 => Action::Replace(zero),
        Urem => match log2(c) {
            Some(_) => bin(And, ty, a, eval::int(ty, c - 1)),
            None => Action::Keep,
        },
        Ult if c == 0 => Action::Replace(i32_lit(0)),
        Uge if c == 0 => Action::Replace(i32_lit(1)),
        Eq | Ne if ty == Type::I32 && c <= 1 => compare_of_compare(f, op, a, c),
        _ => Action::Keep,
    }
}

/// `eq c, 0` / `ne c, 1` of an integer compare `c` is its inverse; `ne c, 0`
/// / `eq c, 1` is `c` itself.
fn compare_of_compare(f: &Function, op: Opcode, a: Operand, c: u64) -> Action {
    let Some(inner) = def_of(f, a) else {
        return Action::Keep;
    };
    if !is_compare(inner.opcode) {
        return Action::Keep;
    }
    let keep_as_is = (op == Opcode::Ne) == (c == 0);
    if keep_as_is {
        return Action::Replace(a);
    }
    let (Some(inv), InstKind::Binary { args }, Some(ity)) =
        (inverse(inner.opcode), &inner.kind, inner.ty)
    else {
        return Action::Keep;
    };
    bin(inv, ity, args[0], args[1])
}

/// `(x op c1) op c2` → `x op (c1 op c2)` for `add`, `mul`, `and`, `or`,
/// `xor` (associative and commutative, exact in wrapping arithmetic).
fn reassociate(f: &Function, op: Opcode, ty: Type, a: Operand, c2: u64) -> Option<Action> {
    let inner = def_of(f, a)?;
    if inner.opcode != op || inner.ty != Some(ty) {
        return None;
    }
    let InstKind::Binary { args } = inner.kind else {
        return None;
    };
    let c1 = eval::bits(args[1], ty)?;
    let x = args[0];
    x.as_value()?;
    let c = eval::binary(op, ty, c1, c2)?;
    Some(bin(op, ty, x, eval::int(ty, c)))
}

/// `(x shl c1) shl c2` → `x shl (c1 + c2)` (or 0 when the total reaches
/// the width); the same for `shr`; `sar` saturates at width - 1.
fn shift_pair(f: &Function, op: Opcode, ty: Type, a: Operand, c2: u64) -> Option<Action> {
    let inner = def_of(f, a)?;
    if inner.opcode != op || inner.ty != Some(ty) {
        return None;
    }
    let InstKind::Binary { args } = inner.kind else {
        return None;
    };
    let w = ty.bits() as u64;
    let c1 = eval::bits(args[1], ty)? % w;
    let x = args[0];
    x.as_value()?;
    let total = c1 + c2 % w;
    if total < w {
        return Some(bin(op, ty, x, eval::int(ty, total)));
    }
    Some(match op {
        Opcode::Sar => bin(op, ty, x, eval::int(ty, w - 1)),
        _ => Action::Replace(eval::int(ty, 0)),
    })
}

/// Float rewrites that are exact for every input (a NaN's bits aside):
/// division by a power of two is multiplication by its reciprocal.
fn float_binary(op: Opcode, ty: Type, a: Operand, kb: Option<u64>) -> Action {
    let Some(c) = kb else {
        return Action::Keep;
    };
    if op != Opcode::Fdiv {
        return Action::Keep;
    }
    let recip = if ty == Type::F32 {
        exact_reciprocal_f32(f32::from_bits(c as u32)).map(|r| r.to_bits() as u64)
    } else {
        exact_reciprocal_f64(f64::from_bits(c))
    };
    match recip.and_then(|r| eval::literal(ty, r)) {
        Some(lit) => bin(Opcode::Fmul, ty, a, lit),
        None => Action::Keep,
    }
}

/// `1 / x` when `x` is a power of two whose reciprocal is a normal number
/// (then `y / x == y * (1 / x)` exactly for every `y`).
fn exact_reciprocal_f64(x: f64) -> Option<u64> {
    if !x.is_normal() {
        return None;
    }
    let bits = x.to_bits();
    if bits & ((1u64 << 52) - 1) != 0 {
        return None;
    }
    let r = 1.0 / x;
    r.is_normal().then(|| r.to_bits())
}

fn exact_reciprocal_f32(x: f32) -> Option<f32> {
    if !x.is_normal() || x.to_bits() & ((1u32 << 23) - 1) != 0 {
        return None;
    }
    let r = 1.0 / x;
    r.is_normal().then_some(r)
}
