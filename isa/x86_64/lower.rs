//! IR → x86-64 machine instructions over virtual registers, in the form the
//! register allocator reads ([`crate::regalloc::RaFunction`]): the
//! x86-64 hooks of the shared driver ([`crate::lower::drive`]), which
//! lays out blocks and lowers arguments, jumps, terminators and calls.
//!
//! Each IR value becomes one vreg of its class; literals become immediates
//! where x86 takes them (sign-extended imm32 ALU operands, shift counts,
//! compares) and [`Op::Imm`] definitions (`xor` for zero) elsewhere.
//! Operand constraints carry the x86 rules: two-address forms reuse their
//! first input, `div` and shifts use fixed registers, calls pass arguments
//! in their ABI registers and clobber every caller-saved register.
//! Compare + branch fuse and `add.i64 x, C` folds into addresses as decided
//! in [`crate::lower::analysis`].

use super::regs::{call_clobbers, int, RAX, RCX, RDX};
use crate::error::Result;
use crate::ir::{Inst, InstKind, Linkage, Opcode, Operand as IrOperand, Type};
use crate::lower::analysis::{imm32, is_compare};
use crate::lower::drive::{lower_err as err, Cx, Isa, SwitchTable};
use crate::lower::mfunc::MachInst;
use crate::regalloc::{Operand, OperandConstraint, OperandKind, OperandPos, PRegSet, RegClass};

/// Two-address ALU operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Mul,
}

/// One-input, in-place integer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    /// Flip bit n (float negation on raw bits).
    Btc(u8),
    /// Clear bit n (float absolute value on raw bits).
    Btr(u8),
}

/// How a branch or `setcc` reads a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpKind {
    /// Integer compare of the IR opcode (`Eq` … `Uge`).
    Int(Opcode),
    /// Float compare of the IR opcode (`Feq` … `Fge`).
    Float(Opcode),
    /// `c != 0` on an `i32`.
    Test,
}

/// What a call calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallTarget {
    /// The function symbol `MFunc::syms[k]`: local, another module's
    /// export or a host function alike. A direct call with a call
    /// relocation (`call rel32`, `X86CallPcRel32`); the registry routes it
    /// through a stub when the target is out of range.
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
    /// `[d]`: load incoming stack argument at `rbp + off`.
    StackArg { off: i32 },
    /// `[d]`: integer constant.
    Imm { bits: u64 },
    /// `[d]`: float constant (`wide`: f64).
    FImm { bits: u64, wide: bool },
    /// `[a, d=a]`: a copy; the allocator makes `d` share `a`'s register, so
    /// nothing is emitted.
    Copy,
    /// `[a, b?, d=a]`: `d = a op (b | imm)`.
    Alu {
        op: AluOp,
        wide: bool,
        imm: Option<i32>,
    },
    /// `[a, d]`: `imul d, a, imm`.
    Mul3 { wide: bool, imm: i32 },
    /// `[a, rcx?, d=a]`: shift by `imm` or by `cl`.
    Shift {
        op: Opcode,
        wide: bool,
        imm: Option<u8>,
    },
    /// `[a, d=a]`.
    Un { op: UnOp, wide: bool },
    /// `[x (late), d=rdx|rax]`: division by a literal through
    /// multiply-high ([`super::divconst`]); clobbers `rax`, `rdx`.
    DivConst {
        op: Opcode,
        wide: bool,
        plan: crate::opt::magic::Plan,
        divisor: u64,
    },
    /// `[a=rax, b, t=rdx (early), d=rax|rdx]`: checked division.
    Div {
        op: Opcode,
        wide: bool,
        check_zero: bool,
    },
    /// `[a, b?, d]`: compare and `setcc`.
    Cmp {
        kind: CmpKind,
        wide: bool,
        imm: Option<i32>,
    },
    /// `[a, b, d=a]`: float arithmetic (`Fadd` … `Fdiv`).
    FBin { op: Opcode, wide: bool },
    /// `[a, d]`.
    Fsqrt { wide: bool },
    /// `[c, a, b, d=b]`: `d = c ? a : b`.
    Select { float: bool },
    /// `[a, d, temps...]`: conversions and moves between classes; `from`
    /// is the source type, `to` the result type.
    Conv { op: Opcode, from: Type, to: Type },
    /// `[base, d]`: load (IR opcode gives width and extension).
    Load { op: Opcode, ty: Type, disp: i32 },
    /// `[v?, base]`: store `bytes` bytes of `v` (or of `imm`).
    Store {
        bytes: u8,
        float: bool,
        imm: Option<i32>,
        disp: i32,
    },
    /// `[d]`: address of alloca number `idx`.
    Alloca { idx: usize },
    /// `[d]`: address of the symbol `MFunc::syms[sym]` (`far`: an import,
    /// anywhere in the address space).
    Addr { sym: u32, far: bool },
    /// `[v]`: store outgoing stack argument at `rsp + off`.
    OutArg { off: i32, float: bool },
    /// `[fixed arg uses..., callee?, result def?]`.
    Call { target: CallTarget },
    /// `[v?]` in `rax`/`xmm0`.
    Ret,
    /// Jump; block arguments via `branch_blockparams`.
    Jmp,
    /// `[a, b?]`: conditional branch on a comparison; successors
    /// `[then, else]`.
    Br {
        kind: CmpKind,
        wide: bool,
        imm: Option<i32>,
    },
    /// `[v]`: successors are the targets deduplicated, the default first;
    /// `MFunc::switch_cases[cases.0..cases.1]` map key bits to successor
    /// numbers. With `dense_min`, a jump table up to key `max`, and `v`
    /// already holds `value - min`, zero-extended.
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

/// The x86-64 half of lowering (see [`crate::lower::drive::Isa`]).
pub struct X86;

impl Isa for X86 {
    type Inst = Op;
    const INT_ARGS: &'static [u8] = &super::regs::INT_ARGS;
    const FLOAT_ARGS: u8 = super::regs::FLOAT_ARGS;
    const INT_RESULT: u8 = RAX;

    fn call_clobbers() -> PRegSet {
        call_clobbers()
    }
    fn incoming_stack_offset(off: u32) -> i64 {
        super::abi::incoming_stack_offset(off) as i64
    }
    fn args_op() -> Op {
        Op::Args
    }
    fn stack_arg_op(off: i64) -> Op {
        Op::StackArg { off: off as i32 }
    }
    fn const_op(bits: u64, ty: Type) -> Op {
        if ty.is_float() {
            Op::FImm {
                bits,
                wide: ty == Type::F64,
            }
        } else {
            Op::Imm { bits }
        }
    }
    fn copy_op() -> Op {
        Op::Copy
    }
    fn out_arg_op(off: u32, float: bool) -> Op {
        Op::OutArg {
            off: off as i32,
            float,
        }
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

    fn lower_inst(cx: &mut Cx<'_, X86>, inst: Inst) -> Result<()> {
        lower_inst(cx, inst)
    }

    fn lower_br(cx: &mut Cx<'_, X86>, cond: IrOperand) -> Result<Op> {
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
        let imm = if ty.is_int() { imm32(b, ty) } else { None };
        compare_uses(cx, a, b, ty, imm.is_some());
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

    fn lower_switch(cx: &mut Cx<'_, X86>, value: IrOperand, t: SwitchTable) -> Result<Op> {
        let ty = t.ty;
        let wide = ty.bytes() == 8;
        let r = cx.reg(value, ty);
        // A jump table indexes with `v - min`, computed (and, for i32,
        // zero-extended by the 32-bit `sub`) before the branch, which may
        // not define registers.
        let index = match t.dense_min {
            Some(0) if wide => r,
            Some(min) => {
                let imm = if wide {
                    i32::try_from(min as i64).ok()
                } else {
                    Some(min as u32 as i32)
                };
                let k = if imm.is_none() {
                    Some(cx.reg(IrOperand::Const(crate::ir::Const::int(min as i128)), ty))
                } else {
                    None
                };
                let t = cx.new_vreg(RegClass::Int);
                cx.cur.push(Operand::reg_use(r));
                if let Some(k) = k {
                    cx.cur.push(Operand::reg_use(k));
                }
                cx.cur.push(Operand::reuse_def(t, 0));
                cx.push0(Op::Alu {
                    op: AluOp::Sub,
                    wide,
                    imm,
                });
                t
            }
            None => r,
        };
        cx.cur.push(Operand::reg_use(index));
        Ok(Op::Switch {
            wide,
            cases: t.cases,
            dense_min: t.dense_min,
            max: t.max,
        })
    }
}

/// Pushes the uses of a compare of `a` with `b` (an immediate when
/// `b_imm`).
fn compare_uses(cx: &mut Cx<'_, X86>, a: IrOperand, b: IrOperand, ty: Type, b_imm: bool) {
    let ra = cx.reg(a, ty);
    let rb = if b_imm { None } else { Some(cx.reg(b, ty)) };
    cx.cur.push(Operand::reg_use(ra));
    if let Some(rb) = rb {
        cx.cur.push(Operand::reg_use(rb));
    }
}

fn lower_inst(cx: &mut Cx<'_, X86>, inst: Inst) -> Result<()> {
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
            let imm = if ty.is_int() { imm32(*b, ty) } else { None };
            compare_uses(cx, *a, *b, ty, imm.is_some());
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
            let imm = imm32(*b, ty);
            let ra = cx.reg(*a, ty);
            if let (AluOp::Mul, Some(i)) = (op, imm) {
                cx.cur.push(Operand::reg_use(ra));
                cx.cur.push(Operand::reg_def(r));
                cx.push0(Op::Mul3 { wide, imm: i });
                return Ok(());
            }
            let rb = if imm.is_none() {
                Some(cx.reg(*b, ty))
            } else {
                None
            };
            cx.cur.push(Operand::reg_use(ra));
            if let Some(rb) = rb {
                cx.cur.push(Operand::reg_use(rb));
            }
            cx.cur.push(Operand::reuse_def(r, 0));
            cx.push0(Op::Alu { op, wide, imm });
        }
        (
            InstKind::Binary {
                args: [a, IrOperand::Const(c)],
            },
            O::Sdiv | O::Srem | O::Udiv | O::Urem,
        ) if crate::opt::magic::plan(d.opcode, ty, c.bits(ty)).is_some() => {
            div_const(cx, inst, d.opcode, ty, *a, c.bits(ty))?;
        }
        (InstKind::Binary { args: [a, b] }, O::Sdiv | O::Srem | O::Udiv | O::Urem) => {
            let r = cx.result(inst)?;
            let check_zero = !matches!(b, IrOperand::Const(c) if c.bits(ty) != 0);
            let ra = cx.reg(*a, ty);
            let rb = cx.reg(*b, ty);
            let rem = matches!(d.opcode, O::Srem | O::Urem);
            // The divisor must survive `cqo`/`xor edx, edx` and the
            // writes of rax/rdx: not in rdx, not in rax (unless it is
            // the dividend itself).
            cx.cur.push(Operand::fixed_use(ra, int(RAX)));
            if rem {
                // Live until the Late def in rdx: kept out of rdx.
                cx.cur.push(Operand::reg_use_late(rb));
                cx.cur.push(Operand::fixed_def(r, int(RDX)));
            } else {
                let t = cx.new_vreg(RegClass::Int);
                cx.cur.push(Operand::reg_use(rb));
                cx.cur.push(Operand::new(
                    t,
                    OperandKind::Def,
                    OperandPos::Early,
                    OperandConstraint::FixedReg(int(RDX)),
                ));
                cx.cur.push(Operand::fixed_def(r, int(RAX)));
            }
            let clob = PRegSet::empty().with(int(RAX)).with(int(RDX));
            cx.push(
                Op::Div {
                    op: d.opcode,
                    wide,
                    check_zero,
                },
                clob,
            );
        }
        (InstKind::Binary { args: [a, b] }, O::Shl | O::Shr | O::Sar) => {
            let r = cx.result(inst)?;
            let imm = match b {
                IrOperand::Const(c) => Some((c.bits(ty) & (ty.bits() as u64 - 1)) as u8),
                IrOperand::Value(_) => None,
            };
            let ra = cx.reg(*a, ty);
            cx.cur.push(Operand::reg_use(ra));
            if let (None, IrOperand::Value(bv)) = (imm, b) {
                let rb = cx.v(*bv);
                cx.cur.push(Operand::fixed_use(rb, int(RCX)));
            }
            cx.cur.push(Operand::reuse_def(r, 0));
            cx.push0(Op::Shift {
                op: d.opcode,
                wide,
                imm,
            });
        }
        (InstKind::Binary { args: [a, b] }, op) => {
            // Fadd, Fsub, Fmul, Fdiv.
            let r = cx.result(inst)?;
            let ra = cx.reg(*a, ty);
            let rb = cx.reg(*b, ty);
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_use(rb));
            cx.cur.push(Operand::reuse_def(r, 0));
            cx.push0(Op::FBin { op, wide });
        }
        (InstKind::Unary { arg }, op) => lower_unary(cx, inst, op, *arg, ty)?,
        (InstKind::Select { args: [c, a, b] }, _) => {
            let r = cx.result(inst)?;
            let rc = cx.reg(*c, Type::I32);
            let ra = cx.reg(*a, ty);
            let rb = cx.reg(*b, ty);
            cx.cur.push(Operand::reg_use(rc));
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_use(rb));
            cx.cur.push(Operand::reuse_def(r, 2));
            cx.push0(Op::Select {
                float: ty.is_float(),
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
            let imm = match v {
                IrOperand::Const(c) if vty.is_int() => {
                    let bits = c.bits(vty);
                    let narrow = match bytes {
                        1 => bits as u8 as i8 as i64,
                        2 => bits as u16 as i16 as i64,
                        4 => bits as u32 as i32 as i64,
                        _ => bits as i64,
                    };
                    i32::try_from(narrow).ok()
                }
                _ => None,
            };
            let rv = if imm.is_none() {
                Some(cx.reg(*v, vty))
            } else {
                None
            };
            let (base, disp) = address(cx, *p, *offset);
            if let Some(rv) = rv {
                cx.cur.push(Operand::reg_use(rv));
            }
            cx.cur.push(Operand::reg_use(base));
            cx.push0(Op::Store {
                bytes,
                float: vty.is_float(),
                imm,
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

/// The base vreg and displacement of `ptr + offset`.
/// `op.ty a, divisor` through multiply-high ([`super::divconst`]).
fn div_const(
    cx: &mut Cx<'_, X86>,
    inst: Inst,
    op: Opcode,
    ty: Type,
    a: IrOperand,
    divisor: u64,
) -> Result<()> {
    let Some(plan) = crate::opt::magic::plan(op, ty, divisor) else {
        return Err(err(cx.func, "division by a literal without a plan"));
    };
    let r = cx.result(inst)?;
    let ra = cx.reg(a, ty);
    cx.cur.push(Operand::reg_use_late(ra));
    cx.cur
        .push(Operand::fixed_def(r, int(super::divconst::result_reg(op))));
    let mut clob = PRegSet::empty();
    clob.add(int(RAX));
    clob.add(int(RDX));
    let wide = ty == Type::I64;
    cx.push(
        Op::DivConst {
            op,
            wide,
            plan,
            divisor,
        },
        clob,
    );
    Ok(())
}

fn address(cx: &mut Cx<'_, X86>, ptr: IrOperand, offset: i64) -> (crate::regalloc::VReg, i32) {
    if let IrOperand::Value(p) = ptr {
        if let Some((x, c)) = cx.dec.addr_fold(p) {
            if let Ok(disp) = i32::try_from(c + offset) {
                return (cx.v(x), disp);
            }
        }
    }
    match i32::try_from(offset) {
        Ok(disp) => (cx.reg(ptr, Type::I64), disp),
        Err(_) => {
            // Out-of-range offset: add it first.
            let base = cx.reg(ptr, Type::I64);
            let k = cx.reg(
                IrOperand::Const(crate::ir::Const::int(offset as i128)),
                Type::I64,
            );
            let sum = cx.new_vreg(RegClass::Int);
            cx.cur.push(Operand::reg_use(base));
            cx.cur.push(Operand::reg_use(k));
            cx.cur.push(Operand::reuse_def(sum, 0));
            cx.push0(Op::Alu {
                op: AluOp::Add,
                wide: true,
                imm: None,
            });
            (sum, 0)
        }
    }
}

fn lower_unary(cx: &mut Cx<'_, X86>, inst: Inst, op: Opcode, a: IrOperand, ty: Type) -> Result<()> {
    use Opcode as O;
    let r = cx.result(inst)?;
    // A literal operand takes the type the opcode fixes for it (`fext`
    // reads an `f32`, `sext` an `i32`, `bitcast.i64` an `f64`), not
    // the result type.
    let literal_ty = op
        .info()
        .operands
        .first()
        .and_then(|o| o.literal_type(Some(ty)))
        .unwrap_or(ty);
    let from = cx.func.operand_type(a, literal_ty);
    let wide = ty.bytes() == 8;
    let ra = cx.reg(a, from);
    match op {
        O::Copy => {
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reuse_def(r, 0));
            cx.push0(Op::Copy);
        }
        O::Neg | O::Not => {
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reuse_def(r, 0));
            let u = if op == O::Neg { UnOp::Neg } else { UnOp::Not };
            cx.push0(Op::Un { op: u, wide });
        }
        O::Fsqrt => {
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_def(r));
            cx.push0(Op::Fsqrt { wide });
        }
        _ => {
            // Conversions, bitcasts, fneg/fabs (through integer bits):
            // [a, d, temps].
            cx.cur.push(Operand::reg_use(ra));
            cx.cur.push(Operand::reg_def(r));
            let (int_temps, float_temps) = match op {
                O::Uitof if from == Type::I64 => (2, 0),
                O::Ftoui if ty == Type::I32 => (1, 0),
                O::Ftoui => (1, 1),
                O::Fneg | O::Fabs => (1, 0),
                _ => (0, 0),
            };
            for _ in 0..int_temps {
                let t = cx.new_vreg(RegClass::Int);
                cx.cur.push(Operand::reg_temp(t));
            }
            for _ in 0..float_temps {
                let t = cx.new_vreg(RegClass::Float);
                cx.cur.push(Operand::reg_temp(t));
            }
            cx.push0(Op::Conv { op, from, to: ty });
        }
    }
    Ok(())
}
