//! Functions: blocks with parameters, instructions, SSA values.
//!
//! Tables are plain vectors indexed by the entity newtypes. Block order in
//! `blocks` is the layout order of the text; `blocks[0]` is the entry. Each
//! block lists its instructions in order; the last one is its terminator
//! once the function is verified.

use super::entities::{Block, Inst, SymId, Value};
use super::opcode::Opcode;
use super::srcmap::SrcMap;
use super::types::{Signature, Type};
use smallvec::SmallVec;

/// A literal as written. Its type comes from its position (SPEC section 1);
/// the verifier checks that it fits, and [`Const::bits`] converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Const {
    /// An integer literal, exactly as written (`-5`, `0xff`).
    Int(i128),
    /// A float literal, as the bits of the nearest `f64`.
    Float(u64),
}

impl Const {
    /// A float literal.
    pub fn float(value: f64) -> Const {
        Const::Float(value.to_bits())
    }

    /// Whether this literal is a valid value of type `ty`: integers must fit
    /// as signed or unsigned; floats only in float positions; an integer
    /// literal in a float position is taken as that number.
    pub fn fits(self, ty: Type) -> bool {
        match (self, ty) {
            (Const::Int(v), Type::I32) => (-(1i128 << 31)..(1i128 << 32)).contains(&v),
            (Const::Int(v), Type::I64) => (-(1i128 << 63)..(1i128 << 64)).contains(&v),
            (Const::Int(_), _) => true,
            (Const::Float(_), t) => t.is_float(),
        }
    }

    /// The literal's bits as a value of type `ty`, zero-extended to 64 bits:
    /// integers wrap to the width, `f32` is in the low 32 bits. Only
    /// meaningful when [`Const::fits`] holds.
    pub fn bits(self, ty: Type) -> u64 {
        match (self, ty) {
            (Const::Int(v), Type::I32) => (v as u64) & 0xffff_ffff,
            (Const::Int(v), Type::I64) => v as u64,
            (Const::Int(v), Type::F32) => (v as f32).to_bits() as u64,
            (Const::Int(v), Type::F64) => (v as f64).to_bits(),
            (Const::Float(b), Type::F32) => (f64::from_bits(b) as f32).to_bits() as u64,
            (Const::Float(b), Type::F64) => b,
            (Const::Float(b), _) => f64::from_bits(b) as i64 as u64,
        }
    }
}

/// An instruction operand: an SSA value or a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Value(Value),
    Const(Const),
}

impl Operand {
    pub fn as_value(self) -> Option<Value> {
        match self {
            Operand::Value(v) => Some(v),
            Operand::Const(_) => None,
        }
    }
}

impl From<Value> for Operand {
    fn from(v: Value) -> Operand {
        Operand::Value(v)
    }
}

impl From<Const> for Operand {
    fn from(c: Const) -> Operand {
        Operand::Const(c)
    }
}

/// A branch target with the arguments passed to its block parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCall {
    pub block: Block,
    pub args: Vec<Operand>,
}

/// The target of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// A function symbol of the module.
    Direct(SymId),
    /// An `i64` code address.
    Indirect(Operand),
}

/// One `switch` case: a key (as written; wrapped to the switch type by
/// [`Const::bits`]) and its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchCase {
    pub key: Const,
    pub block: Block,
}

/// The operands of an instruction, by [`Format`](super::Format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstKind {
    Unary {
        arg: Operand,
    },
    Binary {
        args: [Operand; 2],
    },
    /// `[cond, if_true, if_false]`
    Select {
        args: [Operand; 3],
    },
    Load {
        ptr: Operand,
        offset: i64,
    },
    /// `args` is `[value, ptr]`.
    Store {
        args: [Operand; 2],
        offset: i64,
    },
    Alloca {
        size: u64,
        align: u64,
    },
    Addr {
        sym: SymId,
    },
    Call {
        callee: Callee,
        args: Vec<Operand>,
    },
    Ret {
        value: Option<Operand>,
    },
    Jmp {
        dest: BlockCall,
    },
    Br {
        cond: Operand,
        then_dest: BlockCall,
        else_dest: BlockCall,
    },
    Switch {
        value: Operand,
        default: Block,
        cases: Vec<SwitchCase>,
    },
    Trap,
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstData {
    pub opcode: Opcode,
    /// The `.T` suffix, if written.
    pub ty: Option<Type>,
    pub result: Option<Value>,
    pub kind: InstKind,
}

impl InstData {
    /// The value operands in textual order: for calls the indirect callee
    /// first, then the arguments; for terminators the condition / switch
    /// value / returned value, then each target's block arguments.
    pub fn operands(&self) -> SmallVec<[Operand; 4]> {
        let mut out = SmallVec::new();
        match &self.kind {
            InstKind::Unary { arg } => out.push(*arg),
            InstKind::Binary { args } => out.extend_from_slice(args),
            InstKind::Select { args } => out.extend_from_slice(args),
            InstKind::Load { ptr, .. } => out.push(*ptr),
            InstKind::Store { args, .. } => out.extend_from_slice(args),
            InstKind::Alloca { .. } | InstKind::Addr { .. } | InstKind::Trap => {}
            InstKind::Call { callee, args } => {
                if let Callee::Indirect(op) = callee {
                    out.push(*op);
                }
                out.extend_from_slice(args);
            }
            InstKind::Ret { value } => out.extend(*value),
            InstKind::Jmp { dest } => out.extend_from_slice(&dest.args),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                out.push(*cond);
                out.extend_from_slice(&then_dest.args);
                out.extend_from_slice(&else_dest.args);
            }
            InstKind::Switch { value, .. } => out.push(*value),
        }
        out
    }

    /// Calls `f` on every value operand, in the order of [`Self::operands`].
    pub fn for_each_operand_mut(&mut self, mut f: impl FnMut(&mut Operand)) {
        match &mut self.kind {
            InstKind::Unary { arg } => f(arg),
            InstKind::Binary { args } => args.iter_mut().for_each(f),
            InstKind::Select { args } => args.iter_mut().for_each(f),
            InstKind::Load { ptr, .. } => f(ptr),
            InstKind::Store { args, .. } => args.iter_mut().for_each(f),
            InstKind::Alloca { .. } | InstKind::Addr { .. } | InstKind::Trap => {}
            InstKind::Call { callee, args } => {
                if let Callee::Indirect(op) = callee {
                    f(op);
                }
                args.iter_mut().for_each(f);
            }
            InstKind::Ret { value } => value.iter_mut().for_each(f),
            InstKind::Jmp { dest } => dest.args.iter_mut().for_each(f),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                f(cond);
                then_dest.args.iter_mut().for_each(&mut f);
                else_dest.args.iter_mut().for_each(f);
            }
            InstKind::Switch { value, .. } => f(value),
        }
    }

    /// The successor blocks of a terminator, in textual order (duplicates
    /// kept); empty for other instructions.
    pub fn successors(&self) -> SmallVec<[Block; 2]> {
        match &self.kind {
            InstKind::Jmp { dest } => smallvec::smallvec![dest.block],
            InstKind::Br {
                then_dest,
                else_dest,
                ..
            } => smallvec::smallvec![then_dest.block, else_dest.block],
            InstKind::Switch { default, cases, .. } => {
                let mut out = SmallVec::with_capacity(cases.len() + 1);
                out.push(*default);
                out.extend(cases.iter().map(|c| c.block));
                out
            }
            _ => SmallVec::new(),
        }
    }

    /// The branch targets that carry arguments (`jmp` and `br`).
    pub fn block_calls(&self) -> SmallVec<[&BlockCall; 2]> {
        match &self.kind {
            InstKind::Jmp { dest } => smallvec::smallvec![dest],
            InstKind::Br {
                then_dest,
                else_dest,
                ..
            } => smallvec::smallvec![then_dest, else_dest],
            _ => SmallVec::new(),
        }
    }
}

/// Where a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The `n`-th parameter of the function.
    FuncParam(u32),
    /// The `n`-th parameter of a block.
    BlockParam(Block, u32),
    /// The result of an instruction.
    Inst(Inst),
}

/// One SSA value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueData {
    pub ty: Type,
    pub def: ValueDef,
    /// The name it was written with, without `%` (none for built values).
    pub name: Option<Box<str>>,
}

/// One basic block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockData {
    /// The label (without parameters).
    pub name: Box<str>,
    pub params: Vec<Value>,
    pub insts: Vec<Inst>,
}

/// A function body.
#[derive(Clone, Debug, Default)]
pub struct Function {
    /// Without the `@`.
    pub name: String,
    pub sig: Signature,
    /// The values naming the function's parameters, in order.
    pub params: Vec<Value>,
    /// In layout order; `blocks[0]` is the entry.
    pub blocks: Vec<BlockData>,
    pub insts: Vec<InstData>,
    pub values: Vec<ValueData>,
    /// Source locations; not part of the function's identity (ignored by
    /// `==`).
    pub srcmap: SrcMap,
}

impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.sig == other.sig
            && self.params == other.params
            && self.blocks == other.blocks
            && self.insts == other.insts
            && self.values == other.values
    }
}

impl Function {
    /// An empty function; parameters are added with
    /// [`Function::add_param`].
    pub fn new(name: impl Into<String>, sig: Signature) -> Self {
        let mut f = Function {
            name: name.into(),
            ..Default::default()
        };
        for (i, &ty) in sig.params.iter().enumerate() {
            let v = f.new_value(ty, ValueDef::FuncParam(i as u32), None);
            f.params.push(v);
        }
        f.sig = sig;
        f
    }

    pub fn entry(&self) -> Block {
        Block(0)
    }

    /// Creates a value (the caller records it where it is defined).
    pub fn new_value(&mut self, ty: Type, def: ValueDef, name: Option<Box<str>>) -> Value {
        let v = Value::new(self.values.len());
        self.values.push(ValueData { ty, def, name });
        v
    }

    /// Appends an empty block to the layout.
    pub fn new_block(&mut self, name: impl Into<Box<str>>) -> Block {
        let b = Block::new(self.blocks.len());
        self.blocks.push(BlockData {
            name: name.into(),
            params: Vec::new(),
            insts: Vec::new(),
        });
        b
    }

    /// Adds a parameter of type `ty` to `block`.
    pub fn add_block_param(&mut self, block: Block, ty: Type, name: Option<Box<str>>) -> Value {
        let n = self.blocks[block.index()].params.len() as u32;
        let v = self.new_value(ty, ValueDef::BlockParam(block, n), name);
        self.blocks[block.index()].params.push(v);
        v
    }

    /// Appends an instruction to `block`, creating its result value when
    /// the opcode has one for this suffix.
    pub fn push_inst(
        &mut self,
        block: Block,
        opcode: Opcode,
        ty: Option<Type>,
        kind: InstKind,
        result_name: Option<Box<str>>,
    ) -> Inst {
        let inst = Inst::new(self.insts.len());
        let result = opcode
            .info()
            .result_type(ty)
            .map(|rt| self.new_value(rt, ValueDef::Inst(inst), result_name));
        self.insts.push(InstData {
            opcode,
            ty,
            result,
            kind,
        });
        self.blocks[block.index()].insts.push(inst);
        inst
    }

    pub fn inst(&self, inst: Inst) -> &InstData {
        &self.insts[inst.index()]
    }

    pub fn value_type(&self, v: Value) -> Type {
        self.values[v.index()].ty
    }

    /// The type of an operand; a literal takes `expected`.
    pub fn operand_type(&self, op: Operand, expected: Type) -> Type {
        match op {
            Operand::Value(v) => self.value_type(v),
            Operand::Const(_) => expected,
        }
    }

    /// The last instruction of `block`, if it is a terminator.
    pub fn terminator(&self, block: Block) -> Option<Inst> {
        let last = *self.blocks[block.index()].insts.last()?;
        self.inst(last).opcode.is_terminator().then_some(last)
    }

    /// Blocks in layout order.
    pub fn block_ids(&self) -> impl Iterator<Item = Block> + '_ {
        (0..self.blocks.len()).map(Block::new)
    }

    /// Number of instructions.
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }
}
