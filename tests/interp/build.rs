//! Builders for the interpreter tests: modules made from Rust, one
//! instruction at a time, so each test states exactly the IR it runs.

pub use kiln::error::{Error, TrapCode};
pub use kiln::host::HostFunctions;
pub use kiln::interp::Interpreter;
pub use kiln::ir::{
    Block, BlockCall, Callee, Const, DataDef, DataValue, Format, Function, InstKind, Linkage, Loc,
    Module, Opcode, Operand, Signature, SwitchCase, SymId, SymbolData, SymbolKind, Type, Value,
};
pub use kiln::Val;
pub use std::sync::atomic::{AtomicI64, Ordering};
pub use std::sync::Arc;
pub use Type::{F32, F64, I32, I64};
pub use Val::{F32 as Vf32, F64 as Vf64, I32 as Vi32, I64 as Vi64};

pub fn int(v: i128) -> Operand {
    Operand::Const(Const::int(v))
}

pub fn flt(v: f64) -> Operand {
    Operand::Const(Const::float(v))
}

pub fn v(x: Value) -> Operand {
    Operand::Value(x)
}

pub fn sig(params: &[Type], ret: Option<Type>) -> Signature {
    Signature::new(params.to_vec(), ret)
}

/// Builds one function, block by block.
pub struct Fb {
    pub f: Function,
    pub cur: Block,
}

impl Fb {
    pub fn new(name: &str, params: &[Type], ret: Option<Type>) -> Fb {
        let mut f = Function::new(name, sig(params, ret));
        let cur = f.new_block("entry");
        Fb { f, cur }
    }

    pub fn param(&self, i: usize) -> Operand {
        v(self.f.params[i])
    }

    /// A new block with parameters of `types`.
    pub fn block(&mut self, name: &str, types: &[Type]) -> (Block, Vec<Operand>) {
        let b = self.f.new_block(name);
        let ps = types
            .iter()
            .map(|&t| v(self.f.add_block_param(b, t, None)))
            .collect();
        (b, ps)
    }

    pub fn at(&mut self, b: Block) {
        self.cur = b;
    }

    pub fn ins(&mut self, op: Opcode, ty: Option<Type>, kind: InstKind) -> Operand {
        let inst = self.f.push_inst(self.cur, op, ty, kind, None);
        match self.f.inst(inst).result {
            Some(r) => v(r),
            None => int(0),
        }
    }

    pub fn un(&mut self, op: Opcode, ty: Type, a: Operand) -> Operand {
        self.ins(op, Some(ty), InstKind::Unary { arg: a })
    }

    pub fn bin(&mut self, op: Opcode, ty: Type, a: Operand, b: Operand) -> Operand {
        self.ins(op, Some(ty), InstKind::Binary { args: [a, b] })
    }

    pub fn load(&mut self, op: Opcode, ty: Type, p: Operand, offset: i64) -> Operand {
        self.ins(op, Some(ty), InstKind::Load { ptr: p, offset })
    }

    pub fn store(&mut self, op: Opcode, ty: Option<Type>, val: Operand, p: Operand, offset: i64) {
        self.ins(
            op,
            ty,
            InstKind::Store {
                args: [val, p],
                offset,
            },
        );
    }

    pub fn alloca(&mut self, size: u64, align: u64) -> Operand {
        self.ins(Opcode::Alloca, None, InstKind::Alloca { size, align })
    }

    pub fn addr(&mut self, sym: SymId) -> Operand {
        self.ins(Opcode::Addr, None, InstKind::Addr { sym })
    }

    pub fn call(&mut self, ret: Option<Type>, callee: Callee, args: Vec<Operand>) -> Operand {
        let args = self.f.make_args(&args);
        self.ins(Opcode::Call, ret, InstKind::Call { callee, args })
    }

    pub fn ret(&mut self, val: Option<Operand>) {
        self.ins(Opcode::Ret, None, InstKind::Ret { value: val });
    }

    pub fn jmp(&mut self, b: Block, args: Vec<Operand>) {
        let dest = BlockCall {
            block: b,
            args: self.f.make_args(&args),
        };
        self.ins(Opcode::Jmp, None, InstKind::Jmp { dest });
    }

    pub fn br(&mut self, c: Operand, t: (Block, Vec<Operand>), e: (Block, Vec<Operand>)) {
        let kind = InstKind::Br {
            cond: c,
            then_dest: BlockCall {
                block: t.0,
                args: self.f.make_args(&t.1),
            },
            else_dest: BlockCall {
                block: e.0,
                args: self.f.make_args(&e.1),
            },
        };
        self.ins(Opcode::Br, None, kind);
    }
}

/// Builds one module.
pub struct Mb {
    pub m: Module,
    pub line: u32,
}

impl Mb {
    pub fn new(name: &str) -> Mb {
        Mb {
            m: Module::new(name),
            line: 0,
        }
    }

    /// Declares a symbol; its `@name` token is at line `n`, column 6 where
    /// `n` counts declarations from 1.
    pub fn declare(&mut self, name: &str, linkage: Linkage, kind: SymbolKind) -> SymId {
        self.line += 1;
        let data = SymbolData {
            name: name.into(),
            linkage,
            kind,
        };
        self.m
            .declare(data, Loc::new(self.line, 6))
            .expect("fresh name")
    }

    /// Declares a function symbol to be defined later with [`Mb::define`].
    pub fn func_sym(&mut self, name: &str, linkage: Linkage, s: Signature) -> SymId {
        self.declare(name, linkage, SymbolKind::Func { sig: s, body: None })
    }

    pub fn define(&mut self, sym: SymId, fb: Fb) {
        self.m.define_func(sym, fb.f);
    }

    pub fn func(&mut self, linkage: Linkage, fb: Fb) -> SymId {
        let sym = self.func_sym(&fb.f.name.clone(), linkage, fb.f.sig.clone());
        self.define(sym, fb);
        sym
    }

    pub fn extern_func(&mut self, name: &str, s: Signature) -> SymId {
        self.func_sym(name, Linkage::Import, s)
    }

    pub fn data(&mut self, name: &str, linkage: Linkage, values: Vec<DataValue>) -> SymId {
        let sym = self.declare(name, linkage, SymbolKind::Data { body: None });
        self.m.define_data(
            sym,
            DataDef {
                readonly: false,
                values,
                locs: Vec::new(),
            },
        );
        sym
    }
}

pub fn run_with(
    modules: &[Module],
    host: &HostFunctions,
    entry: &str,
    args: &[Val],
) -> Result<Option<Val>, Error> {
    let mut it = Interpreter::new(modules, host)?;
    it.call(entry, args)
}

pub fn run1(fb: Fb, args: &[Val]) -> Result<Option<Val>, Error> {
    let mut mb = Mb::new("t.kir");
    let name = fb.f.name.clone();
    mb.func(Linkage::Export, fb);
    run_with(&[mb.m], &HostFunctions::new(), &name, args)
}

/// Runs `%r = op.ty` over parameters of the arguments' types.
pub fn eval(op: Opcode, ty: Type, args: &[Val]) -> Result<Option<Val>, Error> {
    let types: Vec<Type> = args.iter().map(|a| a.ty()).collect();
    let rt = op.info().result_type(Some(ty));
    let mut fb = Fb::new("f", &types, rt);
    let ps: Vec<Operand> = (0..args.len()).map(|i| fb.param(i)).collect();
    let kind = match ps.len() {
        1 => InstKind::Unary { arg: ps[0] },
        2 => InstKind::Binary {
            args: [ps[0], ps[1]],
        },
        _ => InstKind::Select {
            args: [ps[0], ps[1], ps[2]],
        },
    };
    let r = fb.ins(op, Some(ty), kind);
    fb.ret(Some(r));
    run1(fb, args)
}

pub fn ok(op: Opcode, ty: Type, args: &[Val]) -> Val {
    match eval(op, ty, args) {
        Ok(Some(v)) => v,
        other => panic!("{} {ty} {args:?}: {other:?}", op.name()),
    }
}

pub fn trap(op: Opcode, ty: Type, args: &[Val]) -> TrapCode {
    match eval(op, ty, args) {
        Err(Error::Trap(t)) => t.code,
        other => panic!(
            "{} {ty} {args:?}: expected a trap, got {other:?}",
            op.name()
        ),
    }
}

pub fn link_err(modules: &[Module], host: &HostFunctions) -> kiln::Diagnostic {
    match Interpreter::new(modules, host) {
        Err(Error::Link(d)) => d,
        Err(e) => panic!("expected a link error, got {e:?}"),
        Ok(_) => panic!("expected a link error, linked fine"),
    }
}
