//! Building modules from Rust without going through text.
//!
//! [`ModuleBuilder`] declares symbols (functions, data, imports) and hands
//! out a [`FunctionBuilder`] for each defined function. The function
//! builder has one typed helper per row of the opcode table
//! ([`super::opcode`]); operands are anything `Into<Operand>`: a
//! [`Value`], a [`Const`] (see [`iconst`] and [`fconst`]) or a plain Rust
//! number. The builder does not check types or SSA rules itself — that is
//! the verifier's job, and [`ModuleBuilder::finish`] runs it — but it does
//! reject what would make the module structurally inconsistent (duplicate
//! names, a defined symbol without a body), so a built module is always one
//! the verifier can judge.
//!
//! A function body is attached to the module when its builder is dropped
//! (or [`FunctionBuilder::finish`]ed), so a body can never be lost. A
//! function builder borrows the module builder, so declare the symbols a
//! body refers to (callees, data) before building it; [`ModuleBuilder::declare_func`]
//! lets functions refer to each other before either has a body.
//!
//! ```
//! use kiln::ir::builder::{iconst, ModuleBuilder};
//! use kiln::ir::{Signature, Type};
//!
//! # fn main() -> kiln::Result<()> {
//! // func @sum(%n: i64) -> i64: adds 0 + 1 + ... + (n-1) in a loop.
//! let mut mb = ModuleBuilder::new("sum");
//! let mut f = mb.func("sum", Signature::new(vec![Type::I64], Some(Type::I64)))?;
//! let n = f.param(0);
//! let lp = f.create_block();
//! let i = f.append_block_param(lp, Type::I64);
//! let acc = f.append_block_param(lp, Type::I64);
//! let body = f.create_block();
//! let exit = f.create_block();
//! let r = f.append_block_param(exit, Type::I64);
//! f.jmp(lp, &[iconst(0).into(), iconst(0).into()]);
//!
//! f.switch_to_block(lp);
//! let done = f.sge(Type::I64, i, n);
//! f.br(done, exit, &[acc.into()], body, &[]);
//!
//! f.switch_to_block(body);
//! let acc2 = f.add(Type::I64, acc, i);
//! let i2 = f.add(Type::I64, i, 1);
//! f.jmp(lp, &[i2.into(), acc2.into()]);
//!
//! f.switch_to_block(exit);
//! f.ret(r);
//! f.finish();
//!
//! let module = mb.finish()?; // verifies
//! assert_eq!(module.funcs[0].blocks.len(), 4);
//! # Ok(())
//! # }
//! ```

use super::entities::{Block, SymId, Value};
use super::function::{
    BlockCall, Callee, CaseList, Const, Function, InstKind, OpList, Operand, SwitchCase,
};
use super::module::{DataDef, DataValue, Linkage, Module, SymbolData, SymbolKind};
use super::opcode::Opcode;
use super::srcmap::Loc;
use super::types::{Signature, Type};
use super::verify::verify_module;
use crate::error::{Diagnostic, Error, Result};

/// An integer literal operand.
pub fn iconst(v: i64) -> Const {
    Const::int(v as i128)
}

/// A float literal operand.
pub fn fconst(v: f64) -> Const {
    Const::float(v)
}

macro_rules! operand_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Operand {
            fn from(v: $t) -> Operand {
                Operand::Const(Const::int(v as i128))
            }
        }
    )*};
}
operand_from_int!(i32, i64, u32, u64);

impl From<f64> for Operand {
    fn from(v: f64) -> Operand {
        Operand::Const(Const::float(v))
    }
}

impl From<f32> for Operand {
    fn from(v: f32) -> Operand {
        Operand::Const(Const::float(v as f64))
    }
}

/// Builds one [`Module`].
#[derive(Debug)]
pub struct ModuleBuilder {
    module: Module,
}

impl ModuleBuilder {
    /// A builder for an empty module; `name` is used in diagnostics.
    pub fn new(name: impl Into<String>) -> Self {
        ModuleBuilder {
            module: Module::new(name),
        }
    }

    fn error(&self, msg: String) -> Error {
        Error::Verify(Diagnostic::new(self.module.name.clone(), Loc::NONE, msg))
    }

    fn declare(&mut self, name: &str, linkage: Linkage, kind: SymbolKind) -> Result<SymId> {
        if !valid_name(name) {
            return Err(self.error(format!("invalid symbol name '@{name}'")));
        }
        let data = SymbolData {
            name: name.to_string(),
            linkage,
            kind,
        };
        self.module
            .declare(data, Loc::NONE)
            .map_err(|_| self.error(format!("symbol '@{name}' is already declared")))
    }

    /// Declares a function without defining it yet (for example to call it
    /// before its body is built). `Linkage::Import` declares an
    /// `extern func`; the others must later be given a body with
    /// [`Self::define_func`].
    pub fn declare_func(&mut self, name: &str, linkage: Linkage, sig: Signature) -> Result<SymId> {
        self.declare(name, linkage, SymbolKind::Func { sig, body: None })
    }

    /// `extern func @name(sig)`.
    pub fn extern_func(&mut self, name: &str, sig: Signature) -> Result<SymId> {
        self.declare_func(name, Linkage::Import, sig)
    }

    /// `extern data @name`.
    pub fn extern_data(&mut self, name: &str) -> Result<SymId> {
        self.declare(name, Linkage::Import, SymbolKind::Data { body: None })
    }

    /// Declares and starts defining an exported function.
    pub fn func(&mut self, name: &str, sig: Signature) -> Result<FunctionBuilder<'_>> {
        let sym = self.declare_func(name, Linkage::Export, sig)?;
        self.define_func(sym)
    }

    /// Declares and starts defining a `local func`.
    pub fn local_func(&mut self, name: &str, sig: Signature) -> Result<FunctionBuilder<'_>> {
        let sym = self.declare_func(name, Linkage::Local, sig)?;
        self.define_func(sym)
    }

    /// Starts the body of a function declared with [`Self::declare_func`].
    pub fn define_func(&mut self, sym: SymId) -> Result<FunctionBuilder<'_>> {
        let Some(data) = self.module.symbols.get(sym.index()) else {
            return Err(self.error(format!("no symbol {sym}")));
        };
        let sig = match (&data.kind, data.linkage) {
            (_, Linkage::Import) => {
                return Err(self.error(format!("'@{}' is extern; it has no body", data.name)))
            }
            (SymbolKind::Func { body: Some(_), .. }, _) => {
                return Err(self.error(format!("'@{}' is already defined", data.name)))
            }
            (SymbolKind::Func { sig, body: None }, _) => sig.clone(),
            (SymbolKind::Data { .. }, _) => {
                return Err(self.error(format!("'@{}' is data, not a function", data.name)))
            }
        };
        let mut func = Function::new(data.name.clone(), sig);
        let entry = func.new_block("entry");
        Ok(FunctionBuilder {
            module: &mut self.module,
            sym,
            func,
            current: entry,
            attached: false,
        })
    }

    fn data_item(
        &mut self,
        name: &str,
        linkage: Linkage,
        readonly: bool,
        values: Vec<DataValue>,
    ) -> Result<SymId> {
        let sym = self.declare(name, linkage, SymbolKind::Data { body: None })?;
        let locs = vec![Loc::NONE; values.len()];
        self.module.define_data(
            sym,
            DataDef {
                readonly,
                values,
                locs,
            },
        );
        Ok(sym)
    }

    /// `data @name = { values }` (exported, read-write).
    pub fn data(&mut self, name: &str, values: Vec<DataValue>) -> Result<SymId> {
        self.data_item(name, Linkage::Export, false, values)
    }

    /// `local data @name = { values }`.
    pub fn local_data(&mut self, name: &str, values: Vec<DataValue>) -> Result<SymId> {
        self.data_item(name, Linkage::Local, false, values)
    }

    /// `const @name = { values }` (exported, read-only).
    pub fn const_data(&mut self, name: &str, values: Vec<DataValue>) -> Result<SymId> {
        self.data_item(name, Linkage::Export, true, values)
    }

    /// `local const @name = { values }`.
    pub fn local_const_data(&mut self, name: &str, values: Vec<DataValue>) -> Result<SymId> {
        self.data_item(name, Linkage::Local, true, values)
    }

    /// Looks a declared symbol up by name.
    pub fn symbol(&self, name: &str) -> Option<SymId> {
        self.module.symbol(name)
    }

    /// The module so far, for inspection.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Checks that every defined function has a body and returns the module
    /// without verifying it (for testing the verifier on bad IR).
    pub fn finish_unverified(self) -> Result<Module> {
        for s in &self.module.symbols {
            if let (SymbolKind::Func { body: None, .. }, Linkage::Export | Linkage::Local) =
                (&s.kind, s.linkage)
            {
                return Err(self.error(format!(
                    "function '@{}' was declared but never defined",
                    s.name
                )));
            }
        }
        Ok(self.module)
    }

    /// Finishes the module and verifies it.
    pub fn finish(self) -> Result<Module> {
        let module = self.finish_unverified()?;
        verify_module(&module)?;
        Ok(module)
    }
}

/// Whether `name` matches `[A-Za-z_.$][A-Za-z0-9_.$]*` (SPEC section 1).
fn valid_name(name: &str) -> bool {
    super::names::name_syntax(name).0
}

/// Builds the body of one function. Starts positioned at the entry block.
pub struct FunctionBuilder<'m> {
    module: &'m mut Module,
    sym: SymId,
    func: Function,
    current: Block,
    attached: bool,
}

macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, ty: Type, a: impl Into<Operand>) -> Value {
            self.unary(Opcode::$op, ty, a.into())
        }
    )*};
}

macro_rules! fixed_unary_ops {
    ($($(#[$doc:meta])* $name:ident => $op:ident, $ty:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, a: impl Into<Operand>) -> Value {
            self.unary(Opcode::$op, Type::$ty, a.into())
        }
    )*};
}

macro_rules! binary_ops {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), ".T a, b`")]
        pub fn $name(&mut self, ty: Type, a: impl Into<Operand>, b: impl Into<Operand>) -> Value {
            self.binary(Opcode::$op, ty, a.into(), b.into())
        }
    )*};
}

macro_rules! load_ops {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), ".T p, off`")]
        pub fn $name(&mut self, ty: Type, ptr: impl Into<Operand>, offset: i64) -> Value {
            self.load_op(Opcode::$op, ty, ptr.into(), offset)
        }
    )*};
}

macro_rules! narrow_store_ops {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), " v, p, off`: stores the low bits of `v`")]
        pub fn $name(&mut self, v: impl Into<Operand>, ptr: impl Into<Operand>, offset: i64) {
            self.push(Opcode::$op, None, InstKind::Store { args: [v.into(), ptr.into()], offset });
        }
    )*};
}

impl FunctionBuilder<'_> {
    /// The function's symbol (for recursive calls).
    pub fn sym(&self) -> SymId {
        self.sym
    }

    /// The value of the `i`-th function parameter.
    ///
    /// # Panics
    /// If the signature has no parameter `i` (a programming error of the
    /// embedder, not an input error).
    pub fn param(&self, i: usize) -> Value {
        self.func.params[i]
    }

    /// The entry block (created with the builder).
    pub fn entry_block(&self) -> Block {
        self.func.entry()
    }

    /// Appends a new block, named `bN`, to the layout.
    pub fn create_block(&mut self) -> Block {
        let name = format!("b{}", self.func.blocks.len());
        self.func.new_block(&name)
    }

    /// Adds a parameter of type `ty` to `block`.
    pub fn append_block_param(&mut self, block: Block, ty: Type) -> Value {
        self.func.add_block_param(block, ty, None)
    }

    /// Makes later instructions go to the end of `block`.
    pub fn switch_to_block(&mut self, block: Block) {
        self.current = block;
    }

    /// The block instructions currently go to.
    pub fn current_block(&self) -> Block {
        self.current
    }

    /// The type of a value built so far.
    pub fn value_type(&self, v: Value) -> Type {
        self.func.value_type(v)
    }

    /// The function built so far.
    pub fn function(&self) -> &Function {
        &self.func
    }

    /// An operand list for an [`InstKind`] given to [`Self::push`]
    /// (call arguments, block arguments).
    pub fn make_args(&mut self, ops: &[Operand]) -> OpList {
        self.func.make_args(ops)
    }

    /// A case list for a `switch` given to [`Self::push`].
    pub fn make_cases(&mut self, cases: &[SwitchCase]) -> CaseList {
        self.func.make_cases(cases)
    }

    /// Appends any instruction; returns its result, if it has one. The
    /// typed helpers below are preferred.
    pub fn push(&mut self, opcode: Opcode, ty: Option<Type>, kind: InstKind) -> Option<Value> {
        let inst = self.func.push_inst(self.current, opcode, ty, kind, None);
        self.func.inst(inst).result
    }

    /// Appends an instruction the opcode table gives a result for this
    /// suffix. `Value(u32::MAX)` can only come back if the table and the
    /// helpers disagree, and the verifier would then reject the use.
    fn push_value(&mut self, opcode: Opcode, ty: Option<Type>, kind: InstKind) -> Value {
        self.push(opcode, ty, kind).unwrap_or(Value(u32::MAX))
    }

    fn unary(&mut self, op: Opcode, ty: Type, arg: Operand) -> Value {
        self.push_value(op, Some(ty), InstKind::Unary { arg })
    }

    fn binary(&mut self, op: Opcode, ty: Type, a: Operand, b: Operand) -> Value {
        self.push_value(op, Some(ty), InstKind::Binary { args: [a, b] })
    }

    fn load_op(&mut self, op: Opcode, ty: Type, ptr: Operand, offset: i64) -> Value {
        self.push_value(op, Some(ty), InstKind::Load { ptr, offset })
    }

    unary_ops! {
        /// `copy.T a`
        copy => Copy;
        /// `neg.T a`
        neg => Neg;
        /// `not.T a`
        not => Not;
        /// `fneg.T a`
        fneg => Fneg;
        /// `fabs.T a`
        fabs => Fabs;
        /// `fsqrt.T a`
        fsqrt => Fsqrt;
        /// `sitof.T a` (`a` an integer value, not a literal)
        sitof => Sitof;
        /// `uitof.T a` (`a` an integer value, not a literal)
        uitof => Uitof;
        /// `ftosi.T a` (`a` a float value, not a literal)
        ftosi => Ftosi;
        /// `ftoui.T a` (`a` a float value, not a literal)
        ftoui => Ftoui;
        /// `bitcast.T a`: the same bits as type `T`
        bitcast => Bitcast;
    }

    fixed_unary_ops! {
        /// `sext.i64 a`
        sext => Sext, I64;
        /// `zext.i64 a`
        zext => Zext, I64;
        /// `trunc.i32 a`
        trunc => Trunc, I32;
        /// `fext.f64 a`
        fext => Fext, F64;
        /// `ftrunc.f32 a`
        ftrunc => Ftrunc, F32;
    }

    binary_ops! {
        add => Add, sub => Sub, mul => Mul,
        sdiv => Sdiv, udiv => Udiv, srem => Srem, urem => Urem,
        and => And, or => Or, xor => Xor,
        shl => Shl, shr => Shr, sar => Sar,
        fadd => Fadd, fsub => Fsub, fmul => Fmul, fdiv => Fdiv,
        eq => Eq, ne => Ne, slt => Slt, sle => Sle, sgt => Sgt, sge => Sge,
        ult => Ult, ule => Ule, ugt => Ugt, uge => Uge,
        feq => Feq, fne => Fne, flt => Flt, fle => Fle, fgt => Fgt, fge => Fge,
    }

    /// `select.T c, a, b`
    pub fn select(
        &mut self,
        ty: Type,
        cond: impl Into<Operand>,
        a: impl Into<Operand>,
        b: impl Into<Operand>,
    ) -> Value {
        let args = [cond.into(), a.into(), b.into()];
        self.push_value(Opcode::Select, Some(ty), InstKind::Select { args })
    }

    load_ops! {
        load => Load, load8s => Load8s, load8u => Load8u,
        load16s => Load16s, load16u => Load16u,
    }

    /// `load32s.i64 p, off`
    pub fn load32s(&mut self, ptr: impl Into<Operand>, offset: i64) -> Value {
        self.load_op(Opcode::Load32s, Type::I64, ptr.into(), offset)
    }

    /// `load32u.i64 p, off`
    pub fn load32u(&mut self, ptr: impl Into<Operand>, offset: i64) -> Value {
        self.load_op(Opcode::Load32u, Type::I64, ptr.into(), offset)
    }

    /// `store.T v, p, off`
    pub fn store(&mut self, ty: Type, v: impl Into<Operand>, ptr: impl Into<Operand>, offset: i64) {
        let args = [v.into(), ptr.into()];
        self.push(Opcode::Store, Some(ty), InstKind::Store { args, offset });
    }

    narrow_store_ops! { store8 => Store8, store16 => Store16, store32 => Store32 }

    /// `alloca size, align`
    pub fn alloca(&mut self, size: u64, align: u64) -> Value {
        self.push_value(Opcode::Alloca, None, InstKind::Alloca { size, align })
    }

    /// `addr @sym`
    pub fn addr(&mut self, sym: SymId) -> Value {
        self.push_value(Opcode::Addr, None, InstKind::Addr { sym })
    }

    /// `call[.T] @sym(args)`; the suffix is the callee's declared return
    /// type. Returns the result, if the callee returns one.
    pub fn call(&mut self, sym: SymId, args: &[Operand]) -> Option<Value> {
        let ret = self
            .module
            .symbols
            .get(sym.index())
            .and_then(|s| s.signature())
            .and_then(|sig| sig.ret);
        let kind = InstKind::Call {
            callee: Callee::Direct(sym),
            args: self.func.make_args(args),
        };
        self.push(Opcode::Call, ret, kind)
    }

    /// `call[.T] %fp(args)`: an indirect call through an `i64` address; the
    /// signature is the arguments' types and `ret`.
    pub fn call_indirect(
        &mut self,
        ret: Option<Type>,
        callee: impl Into<Operand>,
        args: &[Operand],
    ) -> Option<Value> {
        let kind = InstKind::Call {
            callee: Callee::Indirect(callee.into()),
            args: self.func.make_args(args),
        };
        self.push(Opcode::Call, ret, kind)
    }

    /// `ret v`
    pub fn ret(&mut self, v: impl Into<Operand>) {
        self.push(
            Opcode::Ret,
            None,
            InstKind::Ret {
                value: Some(v.into()),
            },
        );
    }

    /// `ret` (no value)
    pub fn ret_void(&mut self) {
        self.push(Opcode::Ret, None, InstKind::Ret { value: None });
    }

    /// `jmp L(args)`
    pub fn jmp(&mut self, block: Block, args: &[Operand]) {
        let dest = BlockCall {
            block,
            args: self.func.make_args(args),
        };
        self.push(Opcode::Jmp, None, InstKind::Jmp { dest });
    }

    /// `br c, L1(args1), L2(args2)`
    pub fn br(
        &mut self,
        cond: impl Into<Operand>,
        then_block: Block,
        then_args: &[Operand],
        else_block: Block,
        else_args: &[Operand],
    ) {
        let kind = InstKind::Br {
            cond: cond.into(),
            then_dest: BlockCall {
                block: then_block,
                args: self.func.make_args(then_args),
            },
            else_dest: BlockCall {
                block: else_block,
                args: self.func.make_args(else_args),
            },
        };
        self.push(Opcode::Br, None, kind);
    }

    /// `switch.T v, Ldefault, K1: L1, ...`
    pub fn switch(
        &mut self,
        ty: Type,
        v: impl Into<Operand>,
        default: Block,
        cases: &[(i64, Block)],
    ) {
        let start = self.func.case_pool.len();
        self.func
            .case_pool
            .extend(cases.iter().map(|&(k, block)| SwitchCase {
                key: Const::int(k as i128),
                block,
            }));
        let cases = self.func.cases_since(start);
        let kind = InstKind::Switch {
            value: v.into(),
            default,
            cases,
        };
        self.push(Opcode::Switch, Some(ty), kind);
    }

    /// `trap`
    pub fn trap(&mut self) {
        self.push(Opcode::Trap, None, InstKind::Trap);
    }

    /// Attaches the body to the module (dropping the builder does the
    /// same).
    pub fn finish(self) {}

    fn attach(&mut self) {
        if !self.attached {
            self.attached = true;
            let func = std::mem::take(&mut self.func);
            self.module.define_func(self.sym, func);
        }
    }
}

impl Drop for FunctionBuilder<'_> {
    fn drop(&mut self) {
        self.attach();
    }
}
