//! IR → x86-64 machine instructions over virtual registers, in the form the
//! register allocator reads ([`crate::regalloc::RaFunction`]).
//!
//! Each IR value becomes one [`VReg`] of its class; literals become
//! immediates where x86 takes them (sign-extended imm32 ALU operands, shift
//! counts, compares) and [`Op::Imm`] definitions (`xor` for zero) elsewhere.
//! Operand constraints carry the x86 rules: two-address forms reuse their
//! first input, `div` and shifts use fixed registers, calls pass arguments
//! in their ABI registers and clobber every caller-saved register.
//!
//! Shape guarantees (the allocator's input rules): blocks are numbered in
//! emission order, entry first (reverse postorder, loops contiguous); edges
//! into blocks with parameters or several predecessors from blocks with
//! several successors get their own edge block (no critical edges; laid out
//! by the shared driver in [`crate::lower::mfunc`]), so only
//! `jmp` carries block arguments; the entry defines the function's
//! parameters through one [`Op::Args`] instruction with fixed defs.
//! Compare + branch fuse and `add.i64 x, C` folds into addresses as decided
//! in [`super::analysis`].

use super::abi::{arg_locations, result_location, ArgLoc};
use super::analysis::{plan, Plan};
use super::regs::{call_clobbers, float, int, RAX, RCX, RDX};
use crate::error::Result;
use crate::ir::{
    Block, Callee, Function, Inst, InstKind, Linkage, Module, Opcode, Operand as IrOperand, Type,
    Value,
};
use crate::lower::analysis::imm32;
use crate::lower::analysis::is_compare;
use crate::lower::mfunc::{
    class_of, drive, lower_err as err, value_vregs, IsaLower, Layout, MachInst,
};
use crate::regalloc::{
    MBlock, Operand, OperandConstraint, OperandKind, OperandPos, PRegSet, RegClass, VReg,
};
use smallvec::SmallVec;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallTarget {
    /// A function symbol: local, another module's export or a host
    /// function alike. A direct call with a call relocation
    /// (`call rel32`, `X86CallPcRel32`); the registry routes it
    /// through a stub when the target is out of range.
    Direct(String),
    /// The address in the last use operand.
    Indirect,
}

/// A machine operation; its registers are in its operands (in the order
/// documented per variant), everything else is here.
#[derive(Clone, Debug, PartialEq)]
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
    /// `[d]`: address of a symbol.
    Addr { name: String, far: bool },
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
    /// `cases` map key bits to successor indices. With `dense_min`, a jump
    /// table and `v` already holds `value - min`, zero-extended.
    Switch {
        wide: bool,
        cases: Vec<(u64, usize)>,
        dense_min: Option<u64>,
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

fn early_temp(v: VReg) -> Operand {
    Operand::reg_temp(v)
}

struct Lowerer<'a> {
    module: &'a Module,
    func: &'a Function,
    plan: Plan,
    out: MFunc,
    vreg_of: Vec<VReg>,
    /// IR block → its machine block.
    mblock: Vec<Option<MBlock>>,
    /// Machine block → the IR block it lays out (`None` for edge blocks).
    ir_block: Vec<Option<Block>>,
    cur: SmallVec<[Operand; 8]>,
}

impl<'a> Lowerer<'a> {
    fn new_vreg(&mut self, class: RegClass) -> VReg {
        let v = VReg::new(self.out.num_vregs, class);
        self.out.num_vregs += 1;
        v
    }

    fn v(&self, v: Value) -> VReg {
        self.vreg_of[v.index()]
    }

    /// Emits an instruction with the operands collected in `self.cur`.
    fn push(&mut self, op: Op, clobbers: PRegSet) {
        let start = self.out.operands.len() as u32;
        self.out.operands.extend(self.cur.drain(..));
        let end = self.out.operands.len() as u32;
        self.out.ops.push(op);
        self.out.op_ranges.push((start, end));
        self.out.clobbers.push(clobbers);
    }

    /// `op.ty a, divisor` through multiply-high ([`super::divconst`]).
    fn div_const(
        &mut self,
        inst: Inst,
        op: Opcode,
        ty: Type,
        a: IrOperand,
        divisor: u64,
    ) -> Result<()> {
        let Some(plan) = crate::opt::magic::plan(op, ty, divisor) else {
            return Err(err(self.func, "division by a literal without a plan"));
        };
        let r = self.result(inst)?;
        let ra = self.reg(a, ty);
        self.cur.push(Operand::reg_use_late(ra));
        self.cur
            .push(Operand::fixed_def(r, int(super::divconst::result_reg(op))));
        let mut clob = PRegSet::empty();
        clob.add(int(RAX));
        clob.add(int(RDX));
        let wide = ty == Type::I64;
        self.push(
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

    fn push0(&mut self, op: Op) {
        self.push(op, PRegSet::empty());
    }

    /// A vreg holding `op` (of type `ty`): the value's own, or a fresh one
    /// defined by an immediate.
    fn reg(&mut self, op: IrOperand, ty: Type) -> VReg {
        match op {
            IrOperand::Value(v) => self.v(v),
            IrOperand::Const(c) => {
                let bits = c.bits(ty);
                let d = self.new_vreg(class_of(ty));
                self.cur.push(Operand::reg_def(d));
                if ty.is_float() {
                    self.push0(Op::FImm {
                        bits,
                        wide: ty == Type::F64,
                    });
                } else {
                    self.push0(Op::Imm { bits });
                }
                d
            }
        }
    }

    fn result(&self, inst: Inst) -> Result<VReg> {
        self.func.insts[inst.index()]
            .result
            .map(|r| self.v(r))
            .ok_or_else(|| err(self.func, "missing result"))
    }

    fn lower_inst(&mut self, inst: Inst) -> Result<()> {
        let func = self.func;
        let d = &func.insts[inst.index()];
        let ty = d.ty.unwrap_or(Type::I64);
        let wide = ty.bytes() == 8;
        use Opcode as O;
        match (&d.kind, d.opcode) {
            (InstKind::Binary { args: [a, b] }, op) if is_compare(op) => {
                let r = self.result(inst)?;
                let kind = if ty.is_float() {
                    CmpKind::Float(op)
                } else {
                    CmpKind::Int(op)
                };
                let imm = if ty.is_int() { imm32(*b, ty) } else { None };
                let ra = self.reg(*a, ty);
                let rb = if imm.is_none() {
                    Some(self.reg(*b, ty))
                } else {
                    None
                };
                self.cur.push(Operand::reg_use(ra));
                if let Some(rb) = rb {
                    self.cur.push(Operand::reg_use(rb));
                }
                self.cur.push(Operand::reg_def(r));
                self.push0(Op::Cmp { kind, wide, imm });
            }
            (
                InstKind::Binary { args: [a, b] },
                O::Add | O::Sub | O::And | O::Or | O::Xor | O::Mul,
            ) => {
                let r = self.result(inst)?;
                let op = match d.opcode {
                    O::Add => AluOp::Add,
                    O::Sub => AluOp::Sub,
                    O::And => AluOp::And,
                    O::Or => AluOp::Or,
                    O::Xor => AluOp::Xor,
                    _ => AluOp::Mul,
                };
                let imm = imm32(*b, ty);
                let ra = self.reg(*a, ty);
                if let (AluOp::Mul, Some(i)) = (op, imm) {
                    self.cur.push(Operand::reg_use(ra));
                    self.cur.push(Operand::reg_def(r));
                    self.push0(Op::Mul3 { wide, imm: i });
                    return Ok(());
                }
                let rb = if imm.is_none() {
                    Some(self.reg(*b, ty))
                } else {
                    None
                };
                self.cur.push(Operand::reg_use(ra));
                if let Some(rb) = rb {
                    self.cur.push(Operand::reg_use(rb));
                }
                self.cur.push(Operand::reuse_def(r, 0));
                self.push0(Op::Alu { op, wide, imm });
            }
            (
                InstKind::Binary {
                    args: [a, IrOperand::Const(c)],
                },
                O::Sdiv | O::Srem | O::Udiv | O::Urem,
            ) if crate::opt::magic::plan(d.opcode, ty, c.bits(ty)).is_some() => {
                self.div_const(inst, d.opcode, ty, *a, c.bits(ty))?;
            }
            (InstKind::Binary { args: [a, b] }, O::Sdiv | O::Srem | O::Udiv | O::Urem) => {
                let r = self.result(inst)?;
                let check_zero = !matches!(b, IrOperand::Const(c) if c.bits(ty) != 0);
                let ra = self.reg(*a, ty);
                let rb = self.reg(*b, ty);
                let rem = matches!(d.opcode, O::Srem | O::Urem);
                // The divisor must survive `cqo`/`xor edx, edx` and the
                // writes of rax/rdx: not in rdx, not in rax (unless it is
                // the dividend itself).
                self.cur.push(Operand::fixed_use(ra, int(RAX)));
                if rem {
                    // Live until the Late def in rdx: kept out of rdx.
                    self.cur.push(Operand::reg_use_late(rb));
                    self.cur.push(Operand::fixed_def(r, int(RDX)));
                } else {
                    let t = self.new_vreg(RegClass::Int);
                    self.cur.push(Operand::reg_use(rb));
                    self.cur.push(Operand::new(
                        t,
                        OperandKind::Def,
                        OperandPos::Early,
                        OperandConstraint::FixedReg(int(RDX)),
                    ));
                    self.cur.push(Operand::fixed_def(r, int(RAX)));
                }
                let mut clob = PRegSet::empty();
                clob.add(int(RAX));
                clob.add(int(RDX));
                self.push(
                    Op::Div {
                        op: d.opcode,
                        wide,
                        check_zero,
                    },
                    clob,
                );
            }
            (InstKind::Binary { args: [a, b] }, O::Shl | O::Shr | O::Sar) => {
                let r = self.result(inst)?;
                let imm = match b {
                    IrOperand::Const(c) => Some((c.bits(ty) & (ty.bits() as u64 - 1)) as u8),
                    IrOperand::Value(_) => None,
                };
                let ra = self.reg(*a, ty);
                self.cur.push(Operand::reg_use(ra));
                if let (None, IrOperand::Value(bv)) = (imm, b) {
                    let rb = self.v(*bv);
                    self.cur.push(Operand::fixed_use(rb, int(RCX)));
                }
                self.cur.push(Operand::reuse_def(r, 0));
                self.push0(Op::Shift {
                    op: d.opcode,
                    wide,
                    imm,
                });
            }
            (InstKind::Binary { args: [a, b] }, op) => {
                // Fadd, Fsub, Fmul, Fdiv.
                let r = self.result(inst)?;
                let ra = self.reg(*a, ty);
                let rb = self.reg(*b, ty);
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reg_use(rb));
                self.cur.push(Operand::reuse_def(r, 0));
                self.push0(Op::FBin { op, wide });
            }
            (InstKind::Unary { arg }, op) => self.lower_unary(inst, op, *arg, ty)?,
            (InstKind::Select { args: [c, a, b] }, _) => {
                let r = self.result(inst)?;
                let rc = self.reg(*c, Type::I32);
                let ra = self.reg(*a, ty);
                let rb = self.reg(*b, ty);
                self.cur.push(Operand::reg_use(rc));
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reg_use(rb));
                self.cur.push(Operand::reuse_def(r, 2));
                self.push0(Op::Select {
                    float: ty.is_float(),
                });
            }
            (InstKind::Load { ptr, offset }, op) => {
                let r = self.result(inst)?;
                let (base, disp) = self.address(*ptr, *offset);
                self.cur.push(Operand::reg_use(base));
                self.cur.push(Operand::reg_def(r));
                self.push0(Op::Load { op, ty, disp });
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
                let imm = if vty.is_int() {
                    match v {
                        IrOperand::Const(c) => {
                            let bits = c.bits(vty);
                            let narrow = match bytes {
                                1 => bits as u8 as i8 as i64,
                                2 => bits as u16 as i16 as i64,
                                4 => bits as u32 as i32 as i64,
                                _ => bits as i64,
                            };
                            i32::try_from(narrow).ok()
                        }
                        IrOperand::Value(_) => None,
                    }
                } else {
                    None
                };
                let rv = if imm.is_none() {
                    Some(self.reg(*v, vty))
                } else {
                    None
                };
                let (base, disp) = self.address(*p, *offset);
                if let Some(rv) = rv {
                    self.cur.push(Operand::reg_use(rv));
                }
                self.cur.push(Operand::reg_use(base));
                self.push0(Op::Store {
                    bytes,
                    float: vty.is_float(),
                    imm,
                    disp,
                });
            }
            (InstKind::Alloca { size, align }, _) => {
                let r = self.result(inst)?;
                let idx = self.out.allocas.len();
                self.out.allocas.push((*size, (*align).clamp(1, 16)));
                self.cur.push(Operand::reg_def(r));
                self.push0(Op::Alloca { idx });
            }
            (InstKind::Addr { sym }, _) => {
                let r = self.result(inst)?;
                let s = &self.module.symbols[sym.index()];
                self.cur.push(Operand::reg_def(r));
                self.push0(Op::Addr {
                    name: s.name.clone(),
                    far: s.linkage == Linkage::Import,
                });
            }
            (InstKind::Call { callee, args }, _) => {
                self.lower_call(inst, *callee, func.args(*args))?
            }
            _ => return Err(err(func, d.opcode.name())),
        }
        Ok(())
    }

    /// The base vreg and displacement of `ptr + offset`.
    fn address(&mut self, ptr: IrOperand, offset: i64) -> (VReg, i32) {
        if let IrOperand::Value(p) = ptr {
            if let Some((x, c)) = self.plan.addr_fold[p.index()] {
                if let Ok(disp) = i32::try_from(c + offset) {
                    return (self.v(x), disp);
                }
            }
        }
        match i32::try_from(offset) {
            Ok(disp) => (self.reg(ptr, Type::I64), disp),
            Err(_) => {
                // Out-of-range offset: add it first.
                let base = self.reg(ptr, Type::I64);
                let k = self.reg(
                    IrOperand::Const(crate::ir::Const::int(offset as i128)),
                    Type::I64,
                );
                let sum = self.new_vreg(RegClass::Int);
                self.cur.push(Operand::reg_use(base));
                self.cur.push(Operand::reg_use(k));
                self.cur.push(Operand::reuse_def(sum, 0));
                self.push0(Op::Alu {
                    op: AluOp::Add,
                    wide: true,
                    imm: None,
                });
                (sum, 0)
            }
        }
    }

    fn lower_unary(&mut self, inst: Inst, op: Opcode, a: IrOperand, ty: Type) -> Result<()> {
        use Opcode as O;
        let r = self.result(inst)?;
        // A literal operand takes the type the opcode fixes for it (`fext`
        // reads an `f32`, `sext` an `i32`, `bitcast.i64` an `f64`), not
        // the result type.
        let literal_ty = op
            .info()
            .operands
            .first()
            .and_then(|o| o.literal_type(Some(ty)))
            .unwrap_or(ty);
        let from = self.func.operand_type(a, literal_ty);
        let wide = ty.bytes() == 8;
        let ra = self.reg(a, from);
        match op {
            O::Copy => {
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reuse_def(r, 0));
                self.push0(Op::Copy);
            }
            O::Neg | O::Not => {
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reuse_def(r, 0));
                let u = if op == O::Neg { UnOp::Neg } else { UnOp::Not };
                self.push0(Op::Un { op: u, wide });
            }
            O::Fsqrt => {
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reg_def(r));
                self.push0(Op::Fsqrt { wide });
            }
            _ => {
                // Conversions, bitcasts, fneg/fabs (through integer bits):
                // [a, d, temps].
                self.cur.push(Operand::reg_use(ra));
                self.cur.push(Operand::reg_def(r));
                let (int_temps, float_temps) = match op {
                    O::Uitof if from == Type::I64 => (2, 0),
                    O::Ftoui if ty == Type::I32 => (1, 0),
                    O::Ftoui => (1, 1),
                    O::Fneg | O::Fabs => (1, 0),
                    _ => (0, 0),
                };
                for _ in 0..int_temps {
                    let t = self.new_vreg(RegClass::Int);
                    self.cur.push(early_temp(t));
                }
                for _ in 0..float_temps {
                    let t = self.new_vreg(RegClass::Float);
                    self.cur.push(early_temp(t));
                }
                self.push0(Op::Conv { op, from, to: ty });
            }
        }
        Ok(())
    }

    fn lower_call(&mut self, inst: Inst, callee: Callee, args: &[IrOperand]) -> Result<()> {
        let func = self.func;
        let (tys, ret): (Vec<Type>, Option<Type>) = match callee {
            Callee::Direct(s) => {
                let sig = self.module.symbols[s.index()]
                    .signature()
                    .ok_or_else(|| err(func, "call of data"))?;
                (sig.params.clone(), sig.ret)
            }
            Callee::Indirect(_) => (
                args.iter()
                    .map(|a| func.operand_type(*a, Type::I64))
                    .collect(),
                func.insts[inst.index()].ty,
            ),
        };
        if tys.len() != args.len() {
            return Err(err(func, "call arity"));
        }
        let (locs, stack) = arg_locations(&tys);
        self.out.outgoing = self.out.outgoing.max(stack);
        let mut regs = Vec::with_capacity(args.len());
        for (i, loc) in locs.iter().enumerate() {
            let r = self.reg(args[i], tys[i]);
            if let ArgLoc::Stack(off) = *loc {
                self.cur.push(Operand::reg_use(r));
                self.push0(Op::OutArg {
                    off: off as i32,
                    float: tys[i].is_float(),
                });
            } else {
                regs.push((r, *loc));
            }
        }
        let target = match callee {
            Callee::Direct(s) => CallTarget::Direct(self.module.symbols[s.index()].name.clone()),
            Callee::Indirect(_) => CallTarget::Indirect,
        };
        let callee_reg = match callee {
            Callee::Indirect(op) => Some(self.reg(op, Type::I64)),
            Callee::Direct(_) => None,
        };
        // A vreg passed in two argument registers needs a copy for one of
        // them (one vreg, one fixed register per instruction).
        let mut fixed: SmallVec<[Operand; 8]> = SmallVec::new();
        for (r, loc) in regs {
            let r = if fixed.iter().any(|o| o.vreg == r) || callee_reg == Some(r) {
                let c = self.new_vreg(r.class());
                self.cur.push(Operand::reg_use(r));
                self.cur.push(Operand::reuse_def(c, 0));
                self.push0(Op::Copy);
                c
            } else {
                r
            };
            let preg = match loc {
                ArgLoc::Int(n) => int(n),
                ArgLoc::Float(n) => float(n),
                ArgLoc::Stack(_) => continue,
            };
            fixed.push(Operand::fixed_use(r, preg));
        }
        self.cur.extend(fixed);
        if let Some(c) = callee_reg {
            self.cur.push(Operand::reg_use(c));
        }
        if let (Some(rv), Some(rt)) = (func.insts[inst.index()].result, ret) {
            let preg = match result_location(rt) {
                ArgLoc::Float(n) => float(n),
                _ => int(RAX),
            };
            let v = self.v(rv);
            self.cur.push(Operand::fixed_def(v, preg));
        }
        self.push(Op::Call { target }, call_clobbers());
        Ok(())
    }
}

/// Lowers `func` (verified) to machine instructions over vregs.
pub fn lower(module: &Module, func: &Function) -> Result<MFunc> {
    let plan = plan(module, func)?;
    let layout = Layout::new(func, &plan.order)?;
    let mut l = Lowerer {
        module,
        func,
        out: MFunc::default(),
        vreg_of: value_vregs(func),
        mblock: layout.mblock.clone(),
        ir_block: layout.ir_block.clone(),
        cur: SmallVec::new(),
        plan,
    };
    l.out.num_vregs = func.values.len();
    drive(func, &layout, &mut l)?;
    Ok(l.out)
}

impl IsaLower for Lowerer<'_> {
    type Inst = Op;
    fn out(&mut self) -> &mut MFunc {
        &mut self.out
    }
    fn vreg(&self, v: Value) -> VReg {
        self.v(v)
    }
    fn omitted(&self, inst: Inst) -> bool {
        self.plan.fused[inst.index()] || self.plan.skip[inst.index()]
    }
    fn lower_args(&mut self) -> Result<()> {
        Lowerer::lower_args(self)
    }
    fn lower_inst(&mut self, inst: Inst) -> Result<()> {
        Lowerer::lower_inst(self, inst)
    }
    fn lower_terminator(&mut self, mi: usize, t: Inst, succs: Vec<MBlock>) -> Result<()> {
        Lowerer::lower_terminator(self, mi, t, succs)
    }
    fn jump(&mut self, mi: usize, target: MBlock, args: &[IrOperand]) -> Result<()> {
        Lowerer::jump(self, mi, target, args)
    }
}

impl Lowerer<'_> {
    fn lower_args(&mut self) -> Result<()> {
        let func = self.func;
        let (locs, _) = arg_locations(&func.sig.params);
        if locs.len() != func.params.len() {
            return Err(err(func, "parameter count"));
        }
        for (i, loc) in locs.iter().enumerate() {
            let v = self.v(func.params[i]);
            match *loc {
                ArgLoc::Int(n) => self.cur.push(Operand::fixed_def(v, int(n))),
                ArgLoc::Float(n) => self.cur.push(Operand::fixed_def(v, float(n))),
                ArgLoc::Stack(_) => {}
            }
        }
        self.push0(Op::Args);
        for (i, loc) in locs.iter().enumerate() {
            if let ArgLoc::Stack(off) = *loc {
                let v = self.v(func.params[i]);
                self.cur.push(Operand::reg_def(v));
                self.push0(Op::StackArg {
                    off: super::abi::incoming_stack_offset(off),
                });
            }
        }
        Ok(())
    }

    /// A `jmp` to `target` passing `args`, ending machine block `mi`.
    fn jump(&mut self, mi: usize, target: MBlock, args: &[IrOperand]) -> Result<()> {
        let params = &self.out.blocks[target.index()].params;
        let tys: Vec<Type> = params
            .iter()
            .map(|p| match p.class() {
                RegClass::Int => Type::I64,
                RegClass::Float => Type::F64,
            })
            .collect();
        if tys.len() != args.len() {
            return Err(err(self.func, "block argument count"));
        }
        // Literal arguments: exact type from the IR parameter.
        let mut regs = Vec::with_capacity(args.len());
        for (i, &a) in args.iter().enumerate() {
            let ty = match a {
                IrOperand::Value(v) => self.func.value_type(v),
                IrOperand::Const(_) => self.param_type(target, i).unwrap_or(tys[i]),
            };
            regs.push(self.reg(a, ty));
        }
        self.out.blocks[mi].succs = vec![target];
        self.out.blocks[mi].succ_args = vec![regs];
        self.push0(Op::Jmp);
        Ok(())
    }

    /// The IR type of parameter `i` of the IR block laid out as `target`.
    fn param_type(&self, target: MBlock, i: usize) -> Option<Type> {
        let b = (*self.ir_block.get(target.index())?)?;
        let p = *self.func.blocks[b.index()].params.get(i)?;
        Some(self.func.value_type(p))
    }

    fn lower_terminator(&mut self, mi: usize, t: Inst, succs: Vec<MBlock>) -> Result<()> {
        let func = self.func;
        let d = &func.insts[t.index()];
        match &d.kind {
            InstKind::Ret { value } => {
                if let Some(v) = value {
                    let rt = func.sig.ret.ok_or_else(|| err(func, "ret type"))?;
                    let r = self.reg(*v, rt);
                    let preg = match result_location(rt) {
                        ArgLoc::Float(n) => float(n),
                        _ => int(RAX),
                    };
                    self.cur.push(Operand::fixed_use(r, preg));
                }
                self.push0(Op::Ret);
            }
            InstKind::Trap => self.push0(Op::Trap),
            InstKind::Jmp { dest } => {
                let tb = self.mblock[dest.block.index()].ok_or_else(|| err(func, "jmp target"))?;
                let args = func.args(dest.args);
                self.jump(mi, tb, args)?;
            }
            InstKind::Br { cond, .. } => {
                let fused = match cond {
                    IrOperand::Value(c) => match func.values[c.index()].def {
                        crate::ir::ValueDef::Inst(i) if self.plan.fused[i.index()] => Some(i),
                        _ => None,
                    },
                    IrOperand::Const(_) => None,
                };
                let (kind, wide, imm) = match fused {
                    Some(ci) => {
                        let cd = &func.insts[ci.index()];
                        let ty = cd.ty.unwrap_or(Type::I64);
                        let InstKind::Binary { args: [a, b] } = cd.kind else {
                            return Err(err(func, "compare operands"));
                        };
                        let imm = if ty.is_int() { imm32(b, ty) } else { None };
                        let ra = self.reg(a, ty);
                        let rb = if imm.is_none() {
                            Some(self.reg(b, ty))
                        } else {
                            None
                        };
                        self.cur.push(Operand::reg_use(ra));
                        if let Some(rb) = rb {
                            self.cur.push(Operand::reg_use(rb));
                        }
                        let kind = if ty.is_float() {
                            CmpKind::Float(cd.opcode)
                        } else {
                            CmpKind::Int(cd.opcode)
                        };
                        (kind, ty.bytes() == 8, imm)
                    }
                    None => {
                        let r = self.reg(*cond, Type::I32);
                        self.cur.push(Operand::reg_use(r));
                        (CmpKind::Test, false, None)
                    }
                };
                self.out.blocks[mi].succ_args = vec![Vec::new(); succs.len()];
                self.out.blocks[mi].succs = succs;
                self.push0(Op::Br { kind, wide, imm });
            }
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                let cases = func.cases(*cases);
                if succs.len() == 1 {
                    // Every case goes to the default: a plain jump (a
                    // single-successor branch may not read registers).
                    return self.jump(mi, succs[0], &[]);
                }
                let ty = d.ty.unwrap_or(Type::I64);
                let wide = ty.bytes() == 8;
                let r = self.reg(*value, ty);
                let mut keys: Vec<u64> = cases.iter().map(|c| c.key.bits(ty)).collect();
                keys.sort_unstable();
                let n = keys.len() as u64;
                let dense_min = match (keys.first(), keys.last()) {
                    (Some(&lo), Some(&hi)) if n >= 4 && hi - lo < 4 * n && hi - lo < 65536 => {
                        Some(lo)
                    }
                    _ => None,
                };
                // A jump table indexes with `v - min`, computed (and, for
                // i32, zero-extended by the 32-bit `sub`) before the branch,
                // which may not define registers.
                let index = match dense_min {
                    Some(0) if wide => r,
                    Some(min) => {
                        let imm = if wide {
                            i32::try_from(min as i64).ok()
                        } else {
                            Some(min as u32 as i32)
                        };
                        let k = if imm.is_none() {
                            Some(self.reg(IrOperand::Const(crate::ir::Const::int(min as i128)), ty))
                        } else {
                            None
                        };
                        let t = self.new_vreg(RegClass::Int);
                        self.cur.push(Operand::reg_use(r));
                        if let Some(k) = k {
                            self.cur.push(Operand::reg_use(k));
                        }
                        self.cur.push(Operand::reuse_def(t, 0));
                        self.push0(Op::Alu {
                            op: AluOp::Sub,
                            wide,
                            imm,
                        });
                        t
                    }
                    None => r,
                };
                self.cur.push(Operand::reg_use(index));
                // Successor index of each target, in the dedup order used
                // by the layout: default first.
                let mut targets = vec![*default];
                for c in cases {
                    if !targets.contains(&c.block) {
                        targets.push(c.block);
                    }
                }
                let keyed = cases
                    .iter()
                    .map(|c| {
                        let idx = targets.iter().position(|&b| b == c.block).unwrap_or(0);
                        (c.key.bits(ty), idx)
                    })
                    .collect();
                self.out.blocks[mi].succ_args = vec![Vec::new(); succs.len()];
                self.out.blocks[mi].succs = succs;
                self.push0(Op::Switch {
                    wide,
                    cases: keyed,
                    dense_min,
                });
            }
            _ => return Err(err(func, "terminator")),
        }
        Ok(())
    }
}
