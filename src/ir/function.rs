//! Functions: blocks with parameters, instructions, SSA values.
//!
//! Tables are plain vectors indexed by the entity newtypes. Block order in
//! `blocks` is the layout order of the text; `blocks[0]` is the entry. Each
//! block lists its instructions in order; the last one is its terminator
//! once the function is verified.
//!
//! Compactness (a parsed instruction costs about 60 bytes of IR, see
//! `tests/ir_size.rs`): an [`Operand`] is 16 bytes; the variable-length
//! operand lists of calls and branches ([`OpList`]) and the cases of a
//! `switch` ([`CaseList`]) are ranges of two per-function pools,
//! `arg_pool` and `case_pool`, not a `Vec` per instruction; value and block
//! names are interned in the function's [`Names`] table.

use super::entities::{Block, Inst, SymId, Value};
use super::names::{Name, Names};
use super::opcode::Opcode;
use super::srcmap::SrcMap;
use super::types::{Signature, Type};
use smallvec::SmallVec;
use std::fmt;

/// An integer literal as written, in 96 bits: enough for every value of
/// every type written signed or unsigned (`-2^63 ..= 2^64-1`) and for the
/// out-of-range literals the verifier reports. Longer literals are a parse
/// error.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Int96 {
    lo: u32,
    mid: u32,
    hi: i32,
}

impl Int96 {
    /// The smallest and largest values.
    pub const MIN: i128 = -(1 << 95);
    pub const MAX: i128 = (1 << 95) - 1;
    /// Zero.
    pub const ZERO: Int96 = Int96 {
        lo: 0,
        mid: 0,
        hi: 0,
    };

    /// `v`, if it fits in 96 bits.
    #[inline]
    pub const fn new(v: i128) -> Option<Int96> {
        if v < Self::MIN || v > Self::MAX {
            return None;
        }
        Some(Int96 {
            lo: v as u32,
            mid: (v >> 32) as u32,
            hi: (v >> 64) as i32,
        })
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> i128 {
        ((self.hi as i128) << 64) | ((self.mid as i128) << 32) | self.lo as i128
    }
}

impl fmt::Debug for Int96 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A literal as written. Its type comes from its position (SPEC section 1);
/// the verifier checks that it fits, and [`Const::bits`] converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Const {
    /// An integer literal, exactly as written (`-5`, `0xff`).
    Int(Int96),
    /// A float literal, as the bits of the nearest `f64`.
    Float(u64),
}

impl Const {
    /// An integer literal.
    ///
    /// # Panics
    /// If `v` does not fit in 96 bits (no value of any type needs more).
    pub const fn int(v: i128) -> Const {
        match Int96::new(v) {
            Some(i) => Const::Int(i),
            None => panic!("integer literal does not fit in 96 bits"),
        }
    }

    /// A float literal.
    pub fn float(value: f64) -> Const {
        Const::Float(value.to_bits())
    }

    /// The integer, for an integer literal.
    #[inline]
    pub fn as_int(self) -> Option<i128> {
        match self {
            Const::Int(v) => Some(v.get()),
            Const::Float(_) => None,
        }
    }

    /// Whether this literal is a valid value of type `ty`: integers must fit
    /// as signed or unsigned; floats only in float positions; an integer
    /// literal in a float position is taken as that number.
    pub fn fits(self, ty: Type) -> bool {
        match (self, ty) {
            (Const::Int(v), Type::I32) => (-(1i128 << 31)..(1i128 << 32)).contains(&v.get()),
            (Const::Int(v), Type::I64) => (-(1i128 << 63)..(1i128 << 64)).contains(&v.get()),
            (Const::Int(_), _) => true,
            (Const::Float(_), t) => t.is_float(),
        }
    }

    /// The literal's bits as a value of type `ty`, zero-extended to 64 bits:
    /// integers wrap to the width, `f32` is in the low 32 bits. Only
    /// meaningful when [`Const::fits`] holds.
    #[inline]
    pub fn bits(self, ty: Type) -> u64 {
        match (self, ty) {
            (Const::Int(v), Type::I32) => (v.get() as u64) & 0xffff_ffff,
            (Const::Int(v), Type::I64) => v.get() as u64,
            (Const::Int(v), Type::F32) => (v.get() as f32).to_bits() as u64,
            (Const::Int(v), Type::F64) => (v.get() as f64).to_bits(),
            (Const::Float(b), Type::F32) => (f64::from_bits(b) as f32).to_bits() as u64,
            (Const::Float(b), Type::F64) => b,
            (Const::Float(b), _) => f64::from_bits(b) as i64 as u64,
        }
    }
}

impl From<i64> for Const {
    fn from(v: i64) -> Const {
        Const::int(v as i128)
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

/// A list of operands: a range of the function's `arg_pool`, read with
/// [`Function::args`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpList {
    start: u32,
    len: u32,
}

impl OpList {
    /// The empty list.
    pub const EMPTY: OpList = OpList { start: 0, len: 0 };

    pub(crate) fn new(start: usize, len: usize) -> OpList {
        OpList {
            start: start as u32,
            len: len as u32,
        }
    }

    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The pool indices of the list.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }

    /// Keeps the first `len` operands (no effect if the list is shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len as u32);
    }
}

/// The cases of a `switch`: a range of the function's `case_pool`, read
/// with [`Function::cases`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CaseList {
    start: u32,
    len: u32,
}

impl CaseList {
    pub(crate) fn new(start: usize, len: usize) -> CaseList {
        CaseList {
            start: start as u32,
            len: len as u32,
        }
    }

    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The pool indices of the list.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// A branch target with the arguments passed to its block parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCall {
    pub block: Block,
    pub args: OpList,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        args: OpList,
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
        cases: CaseList,
    },
    Trap,
}

/// One instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstData {
    pub opcode: Opcode,
    /// The `.T` suffix, if written.
    pub ty: Option<Type>,
    pub result: Option<Value>,
    pub kind: InstKind,
}

impl InstData {
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueData {
    pub ty: Type,
    pub def: ValueDef,
    /// The name it was written with, without `%` (none for built values),
    /// in the function's [`Names`].
    pub name: Option<Name>,
}

/// A list of values (a block's or a function's parameters): inline up to
/// 4, as big as a `Vec`. Derefs to `[Value]`; made from a `Vec<Value>` or
/// a slice with `.into()`.
pub type ValueList = SmallVec<[Value; 4]>;

/// The instructions of a block: inline up to 4 (most blocks of real code
/// are that short: no allocation of their own), as big as a `Vec`. Derefs
/// to `[Inst]`; made from a `Vec<Inst>` or a slice with `.into()`.
pub type InstList = SmallVec<[Inst; 4]>;

/// The heap bytes of a list held inline up to a size (none while inline).
fn spilled_bytes<A: smallvec::Array>(v: &SmallVec<A>) -> usize {
    if v.spilled() {
        v.capacity() * std::mem::size_of::<A::Item>()
    } else {
        0
    }
}

/// The blocks of a function: the first inline (a one-block function, the
/// usual small helper, owns no allocation for its block table).
pub type BlockList = SmallVec<[BlockData; 1]>;

/// One basic block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockData {
    /// The label (without parameters), in the function's [`Names`].
    pub name: Name,
    pub params: ValueList,
    pub insts: InstList,
}

/// A function body.
#[derive(Clone, Debug, Default)]
pub struct Function {
    /// Without the `@`.
    pub name: String,
    pub sig: Signature,
    /// The values naming the function's parameters, in order.
    pub params: ValueList,
    /// In layout order; `blocks[0]` is the entry.
    pub blocks: BlockList,
    pub insts: Vec<InstData>,
    pub values: Vec<ValueData>,
    /// The operands of every [`OpList`] (call arguments, block arguments).
    pub arg_pool: Vec<Operand>,
    /// The cases of every [`CaseList`].
    pub case_pool: Vec<SwitchCase>,
    /// Value and block names.
    pub names: Names,
    /// Source locations; not part of the function's identity (ignored by
    /// `==`).
    pub srcmap: SrcMap,
}

/// Functions are equal when they read the same: names compare as text and
/// operand lists by content, whatever their places in the pools.
impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        let name = |f: &Function, n: Option<Name>| n.map(|n| f.names.get(n).to_string());
        self.name == other.name
            && self.sig == other.sig
            && self.params == other.params
            && self.blocks.len() == other.blocks.len()
            && self.blocks.iter().zip(&other.blocks).all(|(a, b)| {
                self.names.get(a.name) == other.names.get(b.name)
                    && a.params == b.params
                    && a.insts == b.insts
            })
            && self.values.len() == other.values.len()
            && self.values.iter().zip(&other.values).all(|(a, b)| {
                a.ty == b.ty && a.def == b.def && name(self, a.name) == name(other, b.name)
            })
            && self.insts.len() == other.insts.len()
            && self
                .insts
                .iter()
                .zip(&other.insts)
                .all(|(a, b)| self.inst_eq(a, other, b))
    }
}

impl Function {
    /// Heap bytes held by the IR of this function (tables, pools, names),
    /// without its source map (see [`SrcMap::heap_bytes`]); for memory
    /// accounting.
    pub fn ir_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| spilled_bytes(&b.params) + spilled_bytes(&b.insts))
            .sum();
        self.name.capacity()
            + spilled_bytes(&self.params)
            + spilled_bytes(&self.blocks)
            + blocks
            + self.insts.capacity() * size_of::<InstData>()
            + self.values.capacity() * size_of::<ValueData>()
            + self.arg_pool.capacity() * size_of::<Operand>()
            + self.case_pool.capacity() * size_of::<SwitchCase>()
            + self.names.heap_bytes()
    }

    /// An empty function; the entry block's parameters are added with
    /// [`Function::add_block_param`].
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
    pub fn new_value(&mut self, ty: Type, def: ValueDef, name: Option<Name>) -> Value {
        let v = Value::new(self.values.len());
        self.values.push(ValueData { ty, def, name });
        v
    }

    /// Appends an empty block labelled `name` to the layout.
    pub fn new_block(&mut self, name: &str) -> Block {
        let name = self.names.intern(name);
        self.new_block_named(name)
    }

    /// Appends an empty block with an interned label.
    pub fn new_block_named(&mut self, name: Name) -> Block {
        let b = Block::new(self.blocks.len());
        self.blocks.push(BlockData {
            name,
            params: ValueList::new(),
            insts: InstList::new(),
        });
        b
    }

    /// Adds a parameter of type `ty` to `block`.
    pub fn add_block_param(&mut self, block: Block, ty: Type, name: Option<Name>) -> Value {
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
        result_name: Option<Name>,
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

    #[inline]
    pub fn inst(&self, inst: Inst) -> &InstData {
        &self.insts[inst.index()]
    }

    #[inline]
    pub fn value_type(&self, v: Value) -> Type {
        self.values[v.index()].ty
    }

    /// The name `v` was written with, if any.
    pub fn value_name(&self, v: Value) -> Option<&str> {
        let n = self.values.get(v.index())?.name?;
        Some(self.names.get(n))
    }

    /// The label of `b` (`""` for a block outside the table).
    pub fn block_name(&self, b: Block) -> &str {
        self.blocks
            .get(b.index())
            .map_or("", |d| self.names.get(d.name))
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

    // ---- operand and case lists ----

    /// The operands of `list` (empty when the range is outside the pool,
    /// which only damaged IR can have).
    #[inline]
    pub fn args(&self, list: OpList) -> &[Operand] {
        self.arg_pool.get(list.range()).unwrap_or(&[])
    }

    /// The operands of `list`, to change in place.
    pub fn args_mut(&mut self, list: OpList) -> &mut [Operand] {
        self.arg_pool.get_mut(list.range()).unwrap_or(&mut [])
    }

    /// A new list holding `ops`.
    pub fn make_args(&mut self, ops: &[Operand]) -> OpList {
        let start = self.arg_pool.len();
        self.arg_pool.extend_from_slice(ops);
        OpList {
            start: start as u32,
            len: ops.len() as u32,
        }
    }

    /// A new list from the operands pushed to the pool since `start`
    /// (`arg_pool.len()` read before pushing them).
    pub fn args_since(&self, start: usize) -> OpList {
        OpList {
            start: start as u32,
            len: (self.arg_pool.len() - start) as u32,
        }
    }

    /// `list` with `extra` appended: the same range grown in place when it
    /// ends the pool, else a copy at the end of the pool.
    pub fn extend_args(&mut self, list: OpList, extra: &[Operand]) -> OpList {
        let r = list.range();
        if r.end != self.arg_pool.len() {
            let start = self.arg_pool.len();
            self.arg_pool
                .extend_from_within(r.start.min(start)..r.end.min(start));
            self.arg_pool.extend_from_slice(extra);
            return self.args_since(start);
        }
        self.arg_pool.extend_from_slice(extra);
        OpList {
            start: list.start,
            len: list.len + extra.len() as u32,
        }
    }

    /// The cases of `list`.
    #[inline]
    pub fn cases(&self, list: CaseList) -> &[SwitchCase] {
        self.case_pool.get(list.range()).unwrap_or(&[])
    }

    /// The cases of `list`, to change in place.
    pub fn cases_mut(&mut self, list: CaseList) -> &mut [SwitchCase] {
        self.case_pool.get_mut(list.range()).unwrap_or(&mut [])
    }

    /// A new case list holding `cases`.
    pub fn make_cases(&mut self, cases: &[SwitchCase]) -> CaseList {
        let start = self.case_pool.len();
        self.case_pool.extend_from_slice(cases);
        CaseList {
            start: start as u32,
            len: cases.len() as u32,
        }
    }

    /// A new case list from the cases pushed since `start`.
    pub fn cases_since(&self, start: usize) -> CaseList {
        CaseList {
            start: start as u32,
            len: (self.case_pool.len() - start) as u32,
        }
    }

    // ---- operands and successors of an instruction ----

    /// Calls `f` on every operand of `inst` in textual order: for calls the
    /// indirect callee first, then the arguments; for terminators the
    /// condition / switch value / returned value, then each target's block
    /// arguments.
    #[inline]
    pub fn for_each_operand(&self, inst: Inst, mut f: impl FnMut(Operand)) {
        match &self.insts[inst.index()].kind {
            InstKind::Unary { arg } => f(*arg),
            InstKind::Binary { args } => args.iter().copied().for_each(f),
            InstKind::Select { args } => args.iter().copied().for_each(f),
            InstKind::Load { ptr, .. } => f(*ptr),
            InstKind::Store { args, .. } => args.iter().copied().for_each(f),
            InstKind::Alloca { .. } | InstKind::Addr { .. } | InstKind::Trap => {}
            InstKind::Call { callee, args } => {
                if let Callee::Indirect(op) = callee {
                    f(*op);
                }
                self.args(*args).iter().copied().for_each(f);
            }
            InstKind::Ret { value } => value.iter().copied().for_each(f),
            InstKind::Jmp { dest } => self.args(dest.args).iter().copied().for_each(f),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                f(*cond);
                self.args(then_dest.args).iter().copied().for_each(&mut f);
                self.args(else_dest.args).iter().copied().for_each(f);
            }
            InstKind::Switch { value, .. } => f(*value),
        }
    }

    /// The operands of `inst`, in the order of
    /// [`Function::for_each_operand`].
    pub fn operands(&self, inst: Inst) -> SmallVec<[Operand; 4]> {
        let mut out = SmallVec::new();
        self.for_each_operand(inst, |op| out.push(op));
        out
    }

    /// Calls `f` on every operand of `inst`, in the order of
    /// [`Function::for_each_operand`], to change it in place.
    pub fn for_each_operand_mut(&mut self, inst: Inst, mut f: impl FnMut(&mut Operand)) {
        let Function {
            insts, arg_pool, ..
        } = self;
        let mut list = |l: OpList, f: &mut dyn FnMut(&mut Operand)| {
            if let Some(ops) = arg_pool.get_mut(l.range()) {
                ops.iter_mut().for_each(f);
            }
        };
        match &mut insts[inst.index()].kind {
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
                list(*args, &mut f);
            }
            InstKind::Ret { value } => value.iter_mut().for_each(f),
            InstKind::Jmp { dest } => list(dest.args, &mut f),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                f(cond);
                list(then_dest.args, &mut f);
                list(else_dest.args, &mut f);
            }
            InstKind::Switch { value, .. } => f(value),
        }
    }

    /// Calls `f` on each successor block of a terminator, in textual order
    /// (duplicates kept); never for other instructions.
    #[inline]
    pub fn for_each_successor(&self, inst: Inst, mut f: impl FnMut(Block)) {
        match &self.insts[inst.index()].kind {
            InstKind::Jmp { dest } => f(dest.block),
            InstKind::Br {
                then_dest,
                else_dest,
                ..
            } => {
                f(then_dest.block);
                f(else_dest.block);
            }
            InstKind::Switch { default, cases, .. } => {
                f(*default);
                self.cases(*cases).iter().for_each(|c| f(c.block));
            }
            _ => {}
        }
    }

    /// The successor blocks of a terminator, in textual order (duplicates
    /// kept); empty for other instructions.
    pub fn successors(&self, inst: Inst) -> SmallVec<[Block; 2]> {
        let mut out = SmallVec::new();
        self.for_each_successor(inst, |b| out.push(b));
        out
    }

    /// Whether instruction `a` of `self` reads the same as `b` of `other`.
    fn inst_eq(&self, a: &InstData, other: &Function, b: &InstData) -> bool {
        if (a.opcode, a.ty, a.result) != (b.opcode, b.ty, b.result) {
            return false;
        }
        let call = |x: &BlockCall, y: &BlockCall| {
            x.block == y.block && self.args(x.args) == other.args(y.args)
        };
        match (&a.kind, &b.kind) {
            (
                InstKind::Call { callee, args },
                InstKind::Call {
                    callee: c2,
                    args: a2,
                },
            ) => callee == c2 && self.args(*args) == other.args(*a2),
            (InstKind::Jmp { dest }, InstKind::Jmp { dest: d2 }) => call(dest, d2),
            (
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                },
                InstKind::Br {
                    cond: c2,
                    then_dest: t2,
                    else_dest: e2,
                },
            ) => cond == c2 && call(then_dest, t2) && call(else_dest, e2),
            (
                InstKind::Switch {
                    value,
                    default,
                    cases,
                },
                InstKind::Switch {
                    value: v2,
                    default: d2,
                    cases: c2,
                },
            ) => value == v2 && default == d2 && self.cases(*cases) == other.cases(*c2),
            (x, y) => x == y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short lists live inside their owner (no allocation to make or
    /// free per block or signature), the tables stay as small as with
    /// `Vec`s, and the heap accounting counts only spilled lists.
    #[test]
    fn short_lists_are_inline() {
        assert!(std::mem::size_of::<BlockData>() <= 56);
        assert!(std::mem::size_of::<Signature>() <= 32);
        let sig = Signature::new(vec![Type::I64; 3], Some(Type::I64));
        assert!(!sig.params.spilled());
        let mut f = Function::new("f", sig);
        assert_eq!(f.params.len(), 3);
        assert!(!f.params.spilled());
        let b = f.new_block("entry");
        let x = Operand::Value(f.params[0]);
        let add = |f: &mut Function| {
            let kind = InstKind::Binary { args: [x, x] };
            f.push_inst(b, Opcode::Add, Some(Type::I64), kind, None)
        };
        for _ in 0..4 {
            add(&mut f);
        }
        let inline = f.ir_heap_bytes();
        assert!(!f.blocks[0].insts.spilled());
        assert!(!f.blocks[0].params.spilled());
        assert!(!f.blocks.spilled());
        add(&mut f);
        let list = &f.blocks[0].insts;
        assert!(list.spilled());
        assert_eq!(list.len(), 5);
        // The fifth instruction's table entry and the block's new list.
        assert!(f.ir_heap_bytes() >= inline + list.capacity() * 4);
        // A second block spills the block table.
        f.new_block("next");
        assert!(f.blocks.spilled());
        assert!(f.ir_heap_bytes() >= inline + 2 * std::mem::size_of::<BlockData>());
    }
}
