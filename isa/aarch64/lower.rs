//! IR → AArch64 machine instructions over virtual registers, in the form
//! the register allocator reads ([`crate::regalloc::RaFunction`]).
//!
//! Each IR value becomes one vreg of its class; literals become
//! immediates where AArch64 takes them (12-bit add/sub/compare immediates,
//! possibly negated; shift counts; a zero stored through `xzr`) and
//! [`Op::Imm`]/[`Op::FImm`] definitions elsewhere. AArch64 is three-address,
//! so most operands are plain `Reg` uses and defs; the fixed constraints are
//! the ABI's (arguments, results, call clobbers). `x16`/`x17` and `v31` are
//! never allocated: the emitter uses them inside one instruction.
//!
//! These are the AArch64 hooks of the shared driver
//! ([`crate::lower::drive`]), which lays out blocks and lowers arguments,
//! jumps, terminators and calls. Compare + branch fuse and `add.i64 x, C`
//! folds into addresses as decided in [`crate::lower::analysis`].

use super::asm::{imm12, logical_imm};
use super::regs::call_clobbers;
use crate::error::Result;
use crate::ir::{Inst, InstKind, Linkage, Opcode, Operand as IrOperand, Type};
use crate::lower::analysis::is_compare;
use crate::lower::drive::{lower_err as err, Cx, Isa, SwitchTable};
use crate::lower::mfunc::MachInst;
use crate::regalloc::{Operand, PRegSet, VReg};

/// Three-address integer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Mul,
}

/// How a branch or `cset` reads a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpKind {
    /// Integer compare of the IR opcode (`Eq` … `Uge`).
    Int(Opcode),
    /// Float compare of the IR opcode (`Feq` … `Fge`).
    Float(Opcode),
    /// `c != 0` on an `i32`.
    Test,
}

/// A 12-bit immediate second operand: `value`, negated when `neg` (an
/// `add` of `-k` becomes `sub #k`, a compare with `-k` becomes `cmn #k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm12 {
    pub value: u32,
    pub neg: bool,
}

/// The 12-bit immediate form of literal `op` of type `ty`, if it has one.
pub fn imm12_operand(op: IrOperand, ty: Type) -> Option<Imm12> {
    let IrOperand::Const(c) = op else {
        return None;
    };
    let bits = c.bits(ty);
    let neg = if ty.bytes() == 8 {
        bits.wrapping_neg()
    } else {
        (bits as u32).wrapping_neg() as u64
    };
    match (imm12(bits), imm12(neg)) {
        (Some(value), _) => Some(Imm12 { value, neg: false }),
        (None, Some(value)) => Some(Imm12 { value, neg: true }),
        _ => None,
    }
}

/// What a call calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallTarget {
    /// The function symbol `MFunc::syms[k]`: local, another module's
    /// export or a host function alike. A direct call with a call
    /// relocation (`bl`, `Arm64Call26`); the registry routes it through a
    /// stub when the target is out of range.
    Direct(u32),
    /// The address in the last use operand.
    Indirect,
}

/// A machine operation; its registers are in its operands (in the order
/// documented per variant), everything else is here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// Defines the register parameters (fixed defs, in parameter order).
    Args,
    /// `[d]`: load incoming stack argument at `x29 + off`.
    StackArg { off: i64 },
    /// `[d]`: integer constant (`wide`: 64-bit).
    Imm { bits: u64, wide: bool },
    /// `[d]`: float constant (`wide`: f64).
    FImm { bits: u64, wide: bool },
    /// `[a, d=a]`: a copy; the allocator makes `d` share `a`'s register, so
    /// nothing is emitted.
    Copy,
    /// `[a, b?, d]`: `d = a op (b | imm)`; `imm` only for `Add`/`Sub`.
    Alu {
        op: AluOp,
        wide: bool,
        imm: Option<Imm12>,
    },
    /// `[a, d]`: `d = a op bits` for `And`/`Or`/`Xor` with an encodable
    /// bitmask immediate.
    Logic { op: AluOp, wide: bool, bits: u64 },
    /// `[a, b?, d]`: shift by `imm` (already reduced modulo the width) or
    /// by `b` (`lslv`/`lsrv`/`asrv` reduce it).
    Shift {
        op: Opcode,
        wide: bool,
        imm: Option<u8>,
    },
    /// `[a, d]`: `neg` / `mvn` (`op` is `Neg` or `Not`).
    Un { op: Opcode, wide: bool },
    /// `[x, d]`: division by a literal through multiply-high
    /// ([`super::divconst`]).
    DivConst {
        op: Opcode,
        wide: bool,
        plan: crate::opt::magic::Plan,
        divisor: u64,
    },
    /// `[a, b, d]`: checked division; the remainder forms use `x16` for
    /// the quotient.
    Div {
        op: Opcode,
        wide: bool,
        check_zero: bool,
        check_overflow: bool,
    },
    /// `[a, b?, d]`: compare and `cset`.
    Cmp {
        kind: CmpKind,
        wide: bool,
        imm: Option<Imm12>,
    },
    /// `[a, b, d]`: float arithmetic (`Fadd` … `Fdiv`).
    FBin { op: Opcode, wide: bool },
    /// `[a, d]`: `Fneg`, `Fabs`, `Fsqrt`.
    FUn { op: Opcode, wide: bool },
    /// `[c, a, b, d]`: `d = c ? a : b` (`csel` / `fcsel`).
    Select { float: bool, wide: bool },
    /// `[a, d]`: conversions and moves between classes; `from` is the
    /// source type, `to` the result type.
    Conv { op: Opcode, from: Type, to: Type },
    /// `[base, d]`: load (IR opcode gives width and extension).
    Load { op: Opcode, ty: Type, disp: i64 },
    /// `[v?, base]`: store `bytes` bytes of `v`, or of zero (`xzr`) when
    /// `zero`.
    Store {
        bytes: u8,
        float: bool,
        zero: bool,
        disp: i64,
    },
    /// `[d]`: address of alloca number `idx`.
    Alloca { idx: usize },
    /// `[d]`: address of the symbol `MFunc::syms[sym]` (`far`: an import,
    /// anywhere in the address space).
    Addr { sym: u32, far: bool },
    /// `[v]`: store outgoing stack argument at `sp + off`.
    OutArg { off: u32, float: bool },
    /// `[fixed arg uses..., callee?, result def?]`.
    Call { target: CallTarget },
    /// `[v?]` in `x0`/`v0`.
    Ret,
    /// Jump; block arguments via `branch_blockparams`.
    Jmp,
    /// `[a, b?]`: conditional branch on a comparison; successors
    /// `[then, else]`.
    Br {
        kind: CmpKind,
        wide: bool,
        imm: Option<Imm12>,
    },
    /// `[v]`: successors are the targets deduplicated, the default first;
    /// `MFunc::switch_cases[cases.0..cases.1]` map key bits to successor
    /// numbers. With `dense_min`, a jump table indexed by `v - min`
    /// (computed in `x17`) up to key `max`.
    Switch {
        wide: bool,
        cases: (u32, u32),
        dense_min: Option<u64>,
        max: u64,
    },
    /// Jump to the trap stub.
    Trap,
}

/// A lowered function.
pub type MFunc = crate::lower::mfunc::MFunc<Op>;

impl MachInst for Op {
    fn is_ret(&self) -> bool {
        matches!(self, Op::Ret | Op::Trap)
    }
    fn is_branch(&self) -> bool {
        matches!(self, Op::Jmp | Op::Br { .. } | Op::Switch { .. })
    }
}

/// The AArch64 half of lowering (see [`crate::lower::drive::Isa`]).
pub struct A64;

impl Isa for A64 {
    type Inst = Op;
    const INT_ARGS: &'static [u8] = &super::regs::INT_ARGS;
    const FLOAT_ARGS: u8 = super::regs::FLOAT_ARGS;
    const INT_RESULT: u8 = 0;

    fn call_clobbers() -> PRegSet {
        call_clobbers()
    }
    fn incoming_stack_offset(off: u32) -> i64 {
        super::abi::incoming_stack_offset(off)
    }
    fn args_op() -> Op {
        Op::Args
    }
    fn stack_arg_op(off: i64) -> Op {
        Op::StackArg { off }
    }
    fn const_op(bits: u64, ty: Type) -> Op {
        if ty.is_float() {
            Op::FImm {
                bits,
                wide: ty == Type::F64,
            }
        } else {
            Op::Imm {
                bits,
                wide: ty.bytes() == 8,
            }
        }
    }
    fn copy_op() -> Op {
        Op::Copy
    }
    fn out_arg_op(off: u32, float: bool) -> Op {
        Op::OutArg { off, float }
    }
    fn call_op(target: Option<u32>) -> Op {
        Op::Call {
            target: target.map_or(CallTarget::Indirect, CallTarget::Direct),
        }
    }
    fn jmp_op() -> Op {
        Op::Jmp
    }
    fn ret_op() -> Op {
        Op::Ret
    }
    fn trap_op() -> Op {
        Op::Trap
    }

    fn lower_inst(cx: &mut Cx<'_, A64>, inst: Inst) -> Result<()> {
        lower_inst(cx, inst)
    }

    fn lower_br(cx: &mut Cx<'_, A64>, cond: IrOperand) -> Result<Op> {
        let func = cx.func;
        let fused = match cond {
            IrOperand::Value(c) => match func.values[c.index()].def {
                crate::ir::ValueDef::Inst(i) if cx.dec.fused[i.index()] => Some(i),
                _ => None,
            },
            IrOperand::Const(_) => None,
        };
        let Some(ci) = fused else {
            let r = cx.reg(cond, Type::I32);
            cx.cur.push(Operand::reg_use(r));
            return Ok(Op::Br {
                kind: CmpKind::Test,
                wide: false,
                imm: None,
            });
        };
        let cd = &func.insts[ci.index()];
        let ty = cd.ty.unwrap_or(Type::I64);
        let InstKind::Binary { args: [a, b] } = cd.kind else {
            return Err(err(func, "compare operands"));
        };
        let imm = if ty.is_int() {
            imm12_operand(b, ty)
        } else {
            None
        };
        binary_uses(cx, a, b, ty, imm.is_some());
        let kind = if ty.is_float() {
            CmpKind::Float(cd.opcode)
        } else {
            CmpKind::Int(cd.opcode)
        };
        Ok(Op::Br {
            kind,
            wide: ty.bytes() == 8,
            imm,
        })
    }

    fn lower_switch(cx: &mut Cx<'_, A64>, value: IrOperand, t: SwitchTable) -> Result<Op> {
        let r = cx.reg(value, t.ty);
        cx.cur.push(Operand::reg_use(r));
        Ok(Op::Switch {
            wide: t.ty.bytes() == 8,
            cases: t.cases,
            dense_min: t.dense_min,
            max: t.max,
        })
    }
}

fn lower_inst(cx: &mut Cx<'_, A64>, inst: Inst) -> Result<()> {
    let func = cx.func;
    let d = &func.insts[inst.index()];
    let ty = d.ty.unwrap_or(Type::I64);
    let wide = ty.bytes() == 8;
    use Opcode as O;
    match (&d.kind, d.opcode) {
        (InstKind::Binary { args: [a, b] }, op) if is_compare(op) => {
            let r = cx.result(inst)?;
            let kind = if ty.is_float() {
                CmpKind::Float(op)
            } else {
                CmpKind::Int(op)
            };
            let imm = if ty.is_int() {
                imm12_operand(*b, ty)
            } else {
                None
            };
            binary_uses(cx, *a, *b, ty, imm.is_some());
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Cmp { kind, wide, imm });
        }
        (InstKind::Binary { args: [a, b] }, O::Add | O::Sub | O::And | O::Or | O::Xor | O::Mul) => {
            let r = cx.result(inst)?;
            let op = match d.opcode {
                O::Add => AluOp::Add,
                O::Sub => AluOp::Sub,
                O::And => AluOp::And,
                O::Or => AluOp::Or,
                O::Xor => AluOp::Xor,
                _ => AluOp::Mul,
            };
            if let (AluOp::And | AluOp::Or | AluOp::Xor, IrOperand::Const(c)) = (op, b) {
                let bits = c.bits(ty);
                if logical_imm(bits, wide) {
                    let ra = cx.reg(*a, ty);
                    cx.cur.push(Operand::reg_use(ra));
                    cx.cur.push(Operand::reg_def(r));
                    cx.push0(Op::Logic { op, wide, bits });
                    return Ok(());
                }
            }
            let imm = match op {
                AluOp::Add | AluOp::Sub => imm12_operand(*b, ty),
                _ => None,
            };
            binary_uses(cx, *a, *b, ty, imm.is_some());
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Alu { op, wide, imm });
        }
        (
            InstKind::Binary {
                args: [a, IrOperand::Const(c)],
            },
            O::Sdiv | O::Srem | O::Udiv | O::Urem,
        ) if crate::opt::magic::plan(d.opcode, ty, c.bits(ty)).is_some() => {
            let divisor = c.bits(ty);
            let Some(plan) = crate::opt::magic::plan(d.opcode, ty, divisor) else {
                return Err(err(func, "division by a literal without a plan"));
            };
            let r = cx.result(inst)?;
            let ra = cx.reg(*a, ty);
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::DivConst {
                op: d.opcode,
                wide,
                plan,
                divisor,
            });
        }
        (InstKind::Binary { args: [a, b] }, O::Sdiv | O::Srem | O::Udiv | O::Urem) => {
            let r = cx.result(inst)?;
            let bconst = match b {
                IrOperand::Const(c) => Some(c.bits(ty)),
                IrOperand::Value(_) => None,
            };
            let minus_one = if wide { u64::MAX } else { u32::MAX as u64 };
            binary_uses(cx, *a, *b, ty, false);
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Div {
                op: d.opcode,
                wide,
                check_zero: bconst.is_none_or(|v| v == 0),
                check_overflow: d.opcode == O::Sdiv && bconst.is_none_or(|v| v == minus_one),
            });
        }
        (InstKind::Binary { args: [a, b] }, O::Shl | O::Shr | O::Sar) => {
            let r = cx.result(inst)?;
            let imm = match b {
                IrOperand::Const(c) => Some((c.bits(ty) & (ty.bits() as u64 - 1)) as u8),
                IrOperand::Value(_) => None,
            };
            binary_uses(cx, *a, *b, ty, imm.is_some());
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Shift {
                op: d.opcode,
                wide,
                imm,
            });
        }
        (InstKind::Binary { args: [a, b] }, op) => {
            // Fadd, Fsub, Fmul, Fdiv.
            let r = cx.result(inst)?;
            binary_uses(cx, *a, *b, ty, false);
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::FBin { op, wide });
        }
        (InstKind::Unary { arg }, op) => lower_unary(cx, inst, op, *arg, ty)?,
        (InstKind::Select { args: [c, a, b] }, _) => {
            let r = cx.result(inst)?;
            let rc = cx.reg(*c, Type::I32);
            let ra = cx.reg(*a, ty);
            let rb = cx.reg(*b, ty);
            // Three distinct use operands: copy a repeated vreg.
            let ra = if ra == rc { cx.copy_of(ra) } else { ra };
            let rb = if rb == rc || rb == ra {
                cx.copy_of(rb)
            } else {
                rb
            };
            cx.cur.push(Operand::reg_use(rc));
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_use(rb));
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Select {
                float: ty.is_float(),
                wide,
            });
        }
        (InstKind::Load { ptr, offset }, op) => {
            let r = cx.result(inst)?;
            let (base, disp) = address(cx, *ptr, *offset);
            cx.cur.push(Operand::reg_use(base));
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Load { op, ty, disp });
        }
        (
            InstKind::Store {
                args: [v, p],
                offset,
            },
            op,
        ) => {
            let vty = match op {
                O::Store => ty,
                _ => func.operand_type(*v, Type::I64),
            };
            let bytes = op.access_bytes(Some(ty)).unwrap_or(8) as u8;
            // A zero literal (of any type: +0.0 has zero bits) is stored
            // from xzr.
            let zero = matches!(v, IrOperand::Const(c) if c.bits(vty) == 0);
            let rv = if zero { None } else { Some(cx.reg(*v, vty)) };
            let (base, disp) = address(cx, *p, *offset);
            // `store p, p`: one use operand serves as both.
            match rv {
                Some(rv) if rv != base => cx.cur.push(Operand::reg_use(rv)),
                _ => {}
            }
            cx.cur.push(Operand::reg_use(base));
            cx.push0(Op::Store {
                bytes,
                float: vty.is_float() && !zero,
                zero,
                disp,
            });
        }
        (InstKind::Alloca { size, align }, _) => {
            let r = cx.result(inst)?;
            let idx = cx.out.allocas.len();
            cx.out.allocas.push((*size, (*align).clamp(1, 16)));
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Alloca { idx });
        }
        (InstKind::Addr { sym }, _) => {
            let r = cx.result(inst)?;
            let far = cx.module.symbols[sym.index()].linkage == Linkage::Import;
            let k = cx.sym(*sym);
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Addr { sym: k, far });
        }
        (InstKind::Call { callee, args }, _) => cx.lower_call(inst, *callee, func.args(*args))?,
        _ => return Err(err(func, d.opcode.name())),
    }
    Ok(())
}

/// Pushes the uses of a two-input instruction: `a` in a register, and `b`
/// too unless it is encoded as an immediate (`b_is_imm`). Literals get
/// their own defining instruction first. A value used twice (`x op x`) is
/// one use operand.
fn binary_uses(cx: &mut Cx<'_, A64>, a: IrOperand, b: IrOperand, ty: Type, b_is_imm: bool) {
    let ra = cx.reg(a, ty);
    let rb = if b_is_imm { None } else { Some(cx.reg(b, ty)) };
    cx.cur.push(Operand::reg_use(ra));
    match rb {
        Some(rb) if rb != ra => cx.cur.push(Operand::reg_use(rb)),
        _ => {}
    }
}

/// The base vreg and displacement of `ptr + offset` (any displacement: the
/// emitter picks the encoding).
fn address(cx: &mut Cx<'_, A64>, ptr: IrOperand, offset: i64) -> (VReg, i64) {
    if let IrOperand::Value(p) = ptr {
        if let Some((x, c)) = cx.dec.addr_fold(p) {
            return (cx.v(x), c.wrapping_add(offset));
        }
    }
    (cx.reg(ptr, Type::I64), offset)
}

fn lower_unary(cx: &mut Cx<'_, A64>, inst: Inst, op: Opcode, a: IrOperand, ty: Type) -> Result<()> {
    use Opcode as O;
    let r = cx.result(inst)?;
    // A literal operand takes the type the opcode fixes for it (`fext`
    // reads an `f32`, `sext` an `i32`, `bitcast.i64` an `f64`), not the
    // result type.
    let literal_ty = op
        .info()
        .operands
        .first()
        .and_then(|o| o.literal_type(Some(ty)))
        .unwrap_or(ty);
    let from = cx.func.operand_type(a, literal_ty);
    let wide = ty.bytes() == 8;
    let ra = cx.reg(a, from);
    cx.cur.push(Operand::reg_use(ra));
    match op {
        O::Copy => {
            cx.cur.push(Operand::reuse_def(r, 0));
            cx.push0(Op::Copy);
        }
        O::Neg | O::Not => {
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Un { op, wide });
        }
        O::Fneg | O::Fabs | O::Fsqrt => {
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::FUn { op, wide });
        }
        _ => {
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Conv { op, from, to: ty });
        }
    }
    Ok(())
}
