//! The reference interpreter against SPEC sections 5–7: every instruction
//! with its edge cases, traps, calls (direct, indirect, across modules, to
//! host functions), deep recursion, memory, and every link error.
//!
//! Modules are built with a small helper here (no parser needed), so each
//! test states exactly the IR it runs.

use kiln::error::{Error, TrapCode};
use kiln::host::HostFunctions;
use kiln::interp::Interpreter;
use kiln::ir::{
    Block, BlockCall, Callee, Const, DataDef, DataValue, Format, Function, InstKind, Linkage, Loc,
    Module, Opcode, Operand, Signature, SwitchCase, SymId, SymbolData, SymbolKind, Type, Value,
};
use kiln::Val;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use Type::{F32, F64, I32, I64};

// ---------------------------------------------------------------- builders

fn int(v: i128) -> Operand {
    Operand::Const(Const::Int(v))
}

fn flt(v: f64) -> Operand {
    Operand::Const(Const::float(v))
}

fn v(x: Value) -> Operand {
    Operand::Value(x)
}

fn sig(params: &[Type], ret: Option<Type>) -> Signature {
    Signature::new(params.to_vec(), ret)
}

/// Builds one function, block by block.
struct Fb {
    f: Function,
    cur: Block,
}

impl Fb {
    fn new(name: &str, params: &[Type], ret: Option<Type>) -> Fb {
        let mut f = Function::new(name, sig(params, ret));
        let cur = f.new_block("entry");
        Fb { f, cur }
    }

    fn param(&self, i: usize) -> Operand {
        v(self.f.params[i])
    }

    /// A new block with parameters of `types`.
    fn block(&mut self, name: &str, types: &[Type]) -> (Block, Vec<Operand>) {
        let b = self.f.new_block(name);
        let ps = types
            .iter()
            .map(|&t| v(self.f.add_block_param(b, t, None)))
            .collect();
        (b, ps)
    }

    fn at(&mut self, b: Block) {
        self.cur = b;
    }

    fn ins(&mut self, op: Opcode, ty: Option<Type>, kind: InstKind) -> Operand {
        let inst = self.f.push_inst(self.cur, op, ty, kind, None);
        match self.f.inst(inst).result {
            Some(r) => v(r),
            None => int(0),
        }
    }

    fn un(&mut self, op: Opcode, ty: Type, a: Operand) -> Operand {
        self.ins(op, Some(ty), InstKind::Unary { arg: a })
    }

    fn bin(&mut self, op: Opcode, ty: Type, a: Operand, b: Operand) -> Operand {
        self.ins(op, Some(ty), InstKind::Binary { args: [a, b] })
    }

    fn load(&mut self, op: Opcode, ty: Type, p: Operand, offset: i64) -> Operand {
        self.ins(op, Some(ty), InstKind::Load { ptr: p, offset })
    }

    fn store(&mut self, op: Opcode, ty: Option<Type>, val: Operand, p: Operand, offset: i64) {
        self.ins(
            op,
            ty,
            InstKind::Store {
                args: [val, p],
                offset,
            },
        );
    }

    fn alloca(&mut self, size: u64, align: u64) -> Operand {
        self.ins(Opcode::Alloca, None, InstKind::Alloca { size, align })
    }

    fn addr(&mut self, sym: SymId) -> Operand {
        self.ins(Opcode::Addr, None, InstKind::Addr { sym })
    }

    fn call(&mut self, ret: Option<Type>, callee: Callee, args: Vec<Operand>) -> Operand {
        self.ins(Opcode::Call, ret, InstKind::Call { callee, args })
    }

    fn ret(&mut self, val: Option<Operand>) {
        self.ins(Opcode::Ret, None, InstKind::Ret { value: val });
    }

    fn jmp(&mut self, b: Block, args: Vec<Operand>) {
        let dest = BlockCall { block: b, args };
        self.ins(Opcode::Jmp, None, InstKind::Jmp { dest });
    }

    fn br(&mut self, c: Operand, t: (Block, Vec<Operand>), e: (Block, Vec<Operand>)) {
        self.ins(
            Opcode::Br,
            None,
            InstKind::Br {
                cond: c,
                then_dest: BlockCall {
                    block: t.0,
                    args: t.1,
                },
                else_dest: BlockCall {
                    block: e.0,
                    args: e.1,
                },
            },
        );
    }
}

/// Builds one module.
struct Mb {
    m: Module,
    line: u32,
}

impl Mb {
    fn new(name: &str) -> Mb {
        Mb {
            m: Module::new(name),
            line: 0,
        }
    }

    /// Declares a symbol; its `@name` token is at line `n`, column 6 where
    /// `n` counts declarations from 1.
    fn declare(&mut self, name: &str, linkage: Linkage, kind: SymbolKind) -> SymId {
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
    fn func_sym(&mut self, name: &str, linkage: Linkage, s: Signature) -> SymId {
        self.declare(name, linkage, SymbolKind::Func { sig: s, body: None })
    }

    fn define(&mut self, sym: SymId, fb: Fb) {
        self.m.define_func(sym, fb.f);
    }

    fn func(&mut self, linkage: Linkage, fb: Fb) -> SymId {
        let sym = self.func_sym(&fb.f.name.clone(), linkage, fb.f.sig.clone());
        self.define(sym, fb);
        sym
    }

    fn extern_func(&mut self, name: &str, s: Signature) -> SymId {
        self.func_sym(name, Linkage::Import, s)
    }

    fn data(&mut self, name: &str, linkage: Linkage, values: Vec<DataValue>) -> SymId {
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

fn run_with(
    modules: &[Module],
    host: &HostFunctions,
    entry: &str,
    args: &[Val],
) -> Result<Option<Val>, Error> {
    let mut it = Interpreter::new(modules, host)?;
    it.call(entry, args)
}

fn run1(fb: Fb, args: &[Val]) -> Result<Option<Val>, Error> {
    let mut mb = Mb::new("t.kir");
    let name = fb.f.name.clone();
    mb.func(Linkage::Export, fb);
    run_with(&[mb.m], &HostFunctions::new(), &name, args)
}

/// Runs `%r = op.ty` over parameters of the arguments' types.
fn eval(op: Opcode, ty: Type, args: &[Val]) -> Result<Option<Val>, Error> {
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

fn ok(op: Opcode, ty: Type, args: &[Val]) -> Val {
    match eval(op, ty, args) {
        Ok(Some(v)) => v,
        other => panic!("{} {ty} {args:?}: {other:?}", op.name()),
    }
}

fn trap(op: Opcode, ty: Type, args: &[Val]) -> TrapCode {
    match eval(op, ty, args) {
        Err(Error::Trap(t)) => t,
        other => panic!(
            "{} {ty} {args:?}: expected a trap, got {other:?}",
            op.name()
        ),
    }
}

fn link_err(modules: &[Module], host: &HostFunctions) -> kiln::Diagnostic {
    match Interpreter::new(modules, host) {
        Err(Error::Link(d)) => d,
        Err(e) => panic!("expected a link error, got {e:?}"),
        Ok(_) => panic!("expected a link error, linked fine"),
    }
}

use Val::{F32 as Vf32, F64 as Vf64, I32 as Vi32, I64 as Vi64};

// ---------------------------------------------------------- integer ops

#[test]
fn integer_arithmetic_wraps() {
    use Opcode::*;
    assert_eq!(ok(Add, I32, &[Vi32(i32::MAX), Vi32(1)]), Vi32(i32::MIN));
    assert_eq!(ok(Add, I64, &[Vi64(i64::MAX), Vi64(1)]), Vi64(i64::MIN));
    assert_eq!(ok(Sub, I32, &[Vi32(i32::MIN), Vi32(1)]), Vi32(i32::MAX));
    assert_eq!(ok(Sub, I64, &[Vi64(3), Vi64(5)]), Vi64(-2));
    assert_eq!(ok(Mul, I32, &[Vi32(0x10000), Vi32(0x10000)]), Vi32(0));
    assert_eq!(ok(Mul, I32, &[Vi32(-7), Vi32(6)]), Vi32(-42));
    assert_eq!(ok(Mul, I64, &[Vi64(1 << 62), Vi64(4)]), Vi64(0));
    assert_eq!(ok(Neg, I32, &[Vi32(i32::MIN)]), Vi32(i32::MIN));
    assert_eq!(ok(Neg, I64, &[Vi64(5)]), Vi64(-5));
    assert_eq!(ok(Not, I32, &[Vi32(0)]), Vi32(-1));
    assert_eq!(ok(Not, I64, &[Vi64(0x0f)]), Vi64(!0x0f));
    assert_eq!(ok(And, I32, &[Vi32(0b1100), Vi32(0b1010)]), Vi32(0b1000));
    assert_eq!(ok(Or, I64, &[Vi64(0b1100), Vi64(0b1010)]), Vi64(0b1110));
    assert_eq!(ok(Xor, I32, &[Vi32(-1), Vi32(0x0f0f)]), Vi32(!0x0f0f));
    assert_eq!(ok(Copy, I64, &[Vi64(-9)]), Vi64(-9));
    assert_eq!(
        ok(Copy, F32, &[Vf32(-0.0)]).to_bits(),
        (-0.0f32).to_bits() as u64
    );
}

#[test]
fn division_and_remainder() {
    use Opcode::*;
    assert_eq!(ok(Sdiv, I32, &[Vi32(-7), Vi32(2)]), Vi32(-3));
    assert_eq!(ok(Sdiv, I64, &[Vi64(7), Vi64(-2)]), Vi64(-3));
    assert_eq!(ok(Udiv, I32, &[Vi32(-1), Vi32(2)]), Vi32(0x7fff_ffff));
    assert_eq!(
        ok(Udiv, I64, &[Vi64(-1), Vi64(16)]),
        Vi64(0x0fff_ffff_ffff_ffff)
    );
    // srem has the sign of the dividend.
    assert_eq!(ok(Srem, I32, &[Vi32(-7), Vi32(2)]), Vi32(-1));
    assert_eq!(ok(Srem, I32, &[Vi32(7), Vi32(-2)]), Vi32(1));
    assert_eq!(ok(Srem, I64, &[Vi64(-7), Vi64(-2)]), Vi64(-1));
    assert_eq!(ok(Urem, I32, &[Vi32(-1), Vi32(10)]), Vi32(5)); // 4294967295 % 10
    assert_eq!(ok(Urem, I64, &[Vi64(-1), Vi64(10)]), Vi64(5)); // 18446744073709551615 % 10
                                                               // MIN / -1 traps, MIN % -1 is 0.
    assert_eq!(
        trap(Sdiv, I32, &[Vi32(i32::MIN), Vi32(-1)]),
        TrapCode::IntegerOverflow
    );
    assert_eq!(
        trap(Sdiv, I64, &[Vi64(i64::MIN), Vi64(-1)]),
        TrapCode::IntegerOverflow
    );
    assert_eq!(ok(Srem, I32, &[Vi32(i32::MIN), Vi32(-1)]), Vi32(0));
    assert_eq!(ok(Srem, I64, &[Vi64(i64::MIN), Vi64(-1)]), Vi64(0));
    assert_eq!(ok(Udiv, I32, &[Vi32(i32::MIN), Vi32(-1)]), Vi32(0));
    for op in [Sdiv, Udiv, Srem, Urem] {
        assert_eq!(trap(op, I32, &[Vi32(5), Vi32(0)]), TrapCode::DivisionByZero);
        assert_eq!(trap(op, I64, &[Vi64(5), Vi64(0)]), TrapCode::DivisionByZero);
    }
    // Division by zero is checked before overflow.
    assert_eq!(
        trap(Sdiv, I32, &[Vi32(i32::MIN), Vi32(0)]),
        TrapCode::DivisionByZero
    );
}

#[test]
fn shifts_take_the_count_modulo_the_width() {
    use Opcode::*;
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(31)]), Vi32(i32::MIN));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(32)]), Vi32(1));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(33)]), Vi32(2));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(-1)]), Vi32(i32::MIN));
    assert_eq!(ok(Shl, I64, &[Vi64(1), Vi64(64)]), Vi64(1));
    assert_eq!(ok(Shl, I64, &[Vi64(1), Vi64(63)]), Vi64(i64::MIN));
    assert_eq!(ok(Shl, I64, &[Vi64(3), Vi64(0x1_0000_0041)]), Vi64(6));
    assert_eq!(ok(Shr, I32, &[Vi32(-1), Vi32(28)]), Vi32(0xf));
    assert_eq!(ok(Shr, I32, &[Vi32(-1), Vi32(60)]), Vi32(0xf));
    assert_eq!(ok(Shr, I64, &[Vi64(-1), Vi64(60)]), Vi64(0xf));
    assert_eq!(ok(Sar, I32, &[Vi32(-16), Vi32(2)]), Vi32(-4));
    assert_eq!(ok(Sar, I32, &[Vi32(-16), Vi32(34)]), Vi32(-4));
    assert_eq!(ok(Sar, I64, &[Vi64(i64::MIN), Vi64(63)]), Vi64(-1));
    assert_eq!(ok(Sar, I64, &[Vi64(i64::MIN), Vi64(127)]), Vi64(-1));
}

#[test]
fn integer_compares() {
    use Opcode::*;
    let cmp = |op, ty, a: i64, b: i64| {
        let args = if ty == I32 {
            [Vi32(a as i32), Vi32(b as i32)]
        } else {
            [Vi64(a), Vi64(b)]
        };
        match ok(op, ty, &args) {
            Vi32(r) => r,
            other => panic!("compare gave {other:?}"),
        }
    };
    for ty in [I32, I64] {
        assert_eq!(cmp(Eq, ty, 3, 3), 1);
        assert_eq!(cmp(Eq, ty, 3, 4), 0);
        assert_eq!(cmp(Ne, ty, 3, 4), 1);
        assert_eq!(cmp(Slt, ty, -1, 1), 1);
        assert_eq!(cmp(Ult, ty, -1, 1), 0);
        assert_eq!(cmp(Sle, ty, 2, 2), 1);
        assert_eq!(cmp(Ule, ty, 3, 2), 0);
        assert_eq!(cmp(Sgt, ty, -1, 1), 0);
        assert_eq!(cmp(Ugt, ty, -1, 1), 1);
        assert_eq!(cmp(Sge, ty, -5, -5), 1);
        assert_eq!(cmp(Uge, ty, 0, -1), 0);
    }
    // i32 compares look at 32 bits only.
    assert_eq!(cmp(Slt, I32, 0x7fff_ffff, 0x8000_0000), 0);
    assert_eq!(cmp(Ult, I32, 0x7fff_ffff, 0x8000_0000), 1);
}

// ------------------------------------------------------------ float ops

#[test]
fn float_arithmetic_is_ieee() {
    use Opcode::*;
    assert_eq!(
        ok(Fadd, F64, &[Vf64(0.1), Vf64(0.2)]),
        Vf64(0.30000000000000004)
    );
    // f32 arithmetic rounds to f32: 2^24 + 1 is not representable.
    assert_eq!(
        ok(Fadd, F32, &[Vf32(16777216.0), Vf32(1.0)]),
        Vf32(16777216.0)
    );
    assert_eq!(ok(Fsub, F64, &[Vf64(1.0), Vf64(0.75)]), Vf64(0.25));
    assert_eq!(ok(Fmul, F32, &[Vf32(1.5), Vf32(-2.0)]), Vf32(-3.0));
    assert_eq!(ok(Fdiv, F64, &[Vf64(1.0), Vf64(0.0)]), Vf64(f64::INFINITY));
    assert_eq!(
        ok(Fdiv, F64, &[Vf64(-1.0), Vf64(0.0)]),
        Vf64(f64::NEG_INFINITY)
    );
    assert!(matches!(ok(Fdiv, F32, &[Vf32(0.0), Vf32(0.0)]), Vf32(x) if x.is_nan()));
    assert_eq!(ok(Fdiv, F32, &[Vf32(1.0), Vf32(3.0)]), Vf32(1.0f32 / 3.0));
    assert_eq!(ok(Fsqrt, F64, &[Vf64(2.0)]), Vf64(std::f64::consts::SQRT_2));
    assert_eq!(ok(Fsqrt, F32, &[Vf32(16.0)]), Vf32(4.0));
    assert!(matches!(ok(Fsqrt, F64, &[Vf64(-1.0)]), Vf64(x) if x.is_nan()));
    // -0.0: fneg flips the sign bit, fabs clears it, even of NaN.
    assert_eq!(ok(Fneg, F64, &[Vf64(0.0)]).to_bits(), (-0.0f64).to_bits());
    assert_eq!(ok(Fneg, F32, &[Vf32(-0.0)]).to_bits(), 0);
    assert_eq!(ok(Fabs, F64, &[Vf64(-0.0)]).to_bits(), 0);
    assert_eq!(ok(Fabs, F32, &[Vf32(-2.5)]), Vf32(2.5));
    let neg_nan = f64::from_bits(f64::NAN.to_bits() | 1 << 63);
    assert_eq!(
        ok(Fabs, F64, &[Vf64(neg_nan)]).to_bits(),
        f64::NAN.to_bits()
    );
    assert_eq!(
        ok(Fneg, F64, &[Vf64(f64::NAN)]).to_bits(),
        neg_nan.to_bits()
    );
    assert_eq!(
        ok(Fadd, F64, &[Vf64(-0.0), Vf64(-0.0)]).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(ok(Fadd, F64, &[Vf64(-0.0), Vf64(0.0)]).to_bits(), 0);
}

#[test]
fn float_compares_and_nan() {
    use Opcode::*;
    let nan = f64::NAN;
    let c64 = |op, a: f64, b: f64| ok(op, F64, &[Vf64(a), Vf64(b)]);
    let c32 = |op, a: f32, b: f32| ok(op, F32, &[Vf32(a), Vf32(b)]);
    for op in [Feq, Flt, Fle, Fgt, Fge] {
        assert_eq!(c64(op, nan, 1.0), Vi32(0), "{}", op.name());
        assert_eq!(c64(op, 1.0, nan), Vi32(0), "{}", op.name());
        assert_eq!(c32(op, f32::NAN, f32::NAN), Vi32(0), "{}", op.name());
    }
    assert_eq!(c64(Fne, nan, nan), Vi32(1));
    assert_eq!(c32(Fne, f32::NAN, 0.0), Vi32(1));
    assert_eq!(c64(Fne, 1.0, 1.0), Vi32(0));
    assert_eq!(c64(Feq, 0.0, -0.0), Vi32(1));
    assert_eq!(c64(Flt, -0.0, 0.0), Vi32(0));
    assert_eq!(c64(Fle, -0.0, 0.0), Vi32(1));
    assert_eq!(c64(Flt, f64::NEG_INFINITY, -1e308), Vi32(1));
    assert_eq!(c32(Fgt, 2.0, 1.0), Vi32(1));
    assert_eq!(c32(Fge, 1.0, 2.0), Vi32(0));
}

#[test]
fn select_picks_on_nonzero() {
    use Opcode::Select;
    assert_eq!(ok(Select, I64, &[Vi32(1), Vi64(10), Vi64(20)]), Vi64(10));
    assert_eq!(ok(Select, I64, &[Vi32(0), Vi64(10), Vi64(20)]), Vi64(20));
    assert_eq!(
        ok(Select, F32, &[Vi32(-1), Vf32(1.5), Vf32(2.5)]),
        Vf32(1.5)
    );
    assert_eq!(
        ok(Select, I32, &[Vi32(i32::MIN), Vi32(3), Vi32(4)]),
        Vi32(3)
    );
}

// ---------------------------------------------------------- conversions

#[test]
fn integer_width_conversions() {
    use Opcode::*;
    assert_eq!(ok(Sext, I64, &[Vi32(-2)]), Vi64(-2));
    assert_eq!(ok(Zext, I64, &[Vi32(-2)]), Vi64(0xffff_fffe));
    assert_eq!(ok(Trunc, I32, &[Vi64(0x1_2345_6789)]), Vi32(0x2345_6789));
    assert_eq!(ok(Trunc, I32, &[Vi64(0xffff_ffff)]), Vi32(-1));
}

#[test]
fn int_to_float_conversions() {
    use Opcode::*;
    assert_eq!(ok(Sitof, F64, &[Vi32(-3)]), Vf64(-3.0));
    assert_eq!(ok(Sitof, F32, &[Vi64(-3)]), Vf32(-3.0));
    assert_eq!(
        ok(Sitof, F64, &[Vi64(i64::MIN)]),
        Vf64(-9223372036854775808.0)
    );
    // uitof reads the source as unsigned of its own width.
    assert_eq!(ok(Uitof, F64, &[Vi32(-1)]), Vf64(4294967295.0));
    assert_eq!(ok(Uitof, F32, &[Vi32(-1)]), Vf32(4294967296.0));
    assert_eq!(ok(Uitof, F64, &[Vi64(-1)]), Vf64(18446744073709551615.0));
    assert_eq!(ok(Uitof, F32, &[Vi64(1)]), Vf32(1.0));
    // Round to nearest, ties to even: 2^24 + 1 is a tie between 2^24 and
    // 2^24 + 2.
    assert_eq!(ok(Sitof, F32, &[Vi32(16777217)]), Vf32(16777216.0));
    assert_eq!(ok(Sitof, F32, &[Vi32(16777219)]), Vf32(16777220.0));
    assert_eq!(
        ok(Sitof, F64, &[Vi64((1 << 53) + 1)]),
        Vf64(9007199254740992.0)
    );
}

#[test]
fn float_to_int_conversions_saturate() {
    use Opcode::*;
    let inf = f64::INFINITY;
    assert_eq!(ok(Ftosi, I32, &[Vf64(-2.9)]), Vi32(-2));
    assert_eq!(ok(Ftosi, I32, &[Vf64(2.9)]), Vi32(2));
    assert_eq!(ok(Ftosi, I32, &[Vf64(1e10)]), Vi32(i32::MAX));
    assert_eq!(ok(Ftosi, I32, &[Vf64(-1e10)]), Vi32(i32::MIN));
    assert_eq!(ok(Ftosi, I32, &[Vf64(inf)]), Vi32(i32::MAX));
    assert_eq!(ok(Ftosi, I64, &[Vf64(-inf)]), Vi64(i64::MIN));
    assert_eq!(ok(Ftosi, I64, &[Vf64(f64::NAN)]), Vi64(0));
    assert_eq!(ok(Ftosi, I32, &[Vf32(f32::NAN)]), Vi32(0));
    assert_eq!(ok(Ftosi, I64, &[Vf32(1e30)]), Vi64(i64::MAX));
    assert_eq!(ok(Ftosi, I64, &[Vf32(-0.5)]), Vi64(0));
    assert_eq!(ok(Ftoui, I32, &[Vf64(-1.0)]), Vi32(0));
    assert_eq!(ok(Ftoui, I32, &[Vf64(4294967295.0)]), Vi32(-1));
    assert_eq!(ok(Ftoui, I32, &[Vf64(1e20)]), Vi32(-1));
    assert_eq!(ok(Ftoui, I32, &[Vf32(3e9)]), Vi32(3_000_000_000u32 as i32));
    assert_eq!(ok(Ftoui, I64, &[Vf64(inf)]), Vi64(-1));
    assert_eq!(ok(Ftoui, I64, &[Vf64(-inf)]), Vi64(0));
    assert_eq!(ok(Ftoui, I64, &[Vf64(f64::NAN)]), Vi64(0));
    // Above i64::MAX but below u64::MAX: exact, as Rust's `as` gives it.
    assert_eq!(
        ok(Ftoui, I64, &[Vf32(1.8e19)]),
        Vi64(1.8e19f32 as u64 as i64)
    );
    assert!(1.8e19f32 as u64 > i64::MAX as u64);
}

#[test]
fn float_width_conversions_and_bitcast() {
    use Opcode::*;
    assert_eq!(ok(Fext, F64, &[Vf32(0.1)]), Vf64(0.10000000149011612));
    assert_eq!(ok(Ftrunc, F32, &[Vf64(0.1)]), Vf32(0.1));
    assert_eq!(ok(Ftrunc, F32, &[Vf64(1e300)]), Vf32(f32::INFINITY));
    assert_eq!(
        ok(Ftrunc, F32, &[Vf64(-1e-300)]).to_bits(),
        (-0.0f32).to_bits() as u64
    );
    assert_eq!(ok(Bitcast, I64, &[Vf64(1.0)]), Vi64(0x3ff0_0000_0000_0000));
    assert_eq!(ok(Bitcast, F64, &[Vi64(0x4000_0000_0000_0000)]), Vf64(2.0));
    assert_eq!(ok(Bitcast, I32, &[Vf32(-0.0)]), Vi32(i32::MIN));
    assert_eq!(ok(Bitcast, F32, &[Vi32(0x3f80_0000)]), Vf32(1.0));
}

#[test]
fn literal_operands_take_their_position_type() {
    // add.i32 %a, 0xffffffff is %a - 1; shl.i64 %a, 65 shifts by 1.
    let mut fb = Fb::new("f", &[I32], Some(I64));
    let p = fb.param(0);
    let a = fb.bin(Opcode::Add, I32, p, int(0xffff_ffff));
    let w = fb.un(Opcode::Sext, I64, a);
    let s = fb.bin(Opcode::Shl, I64, w, int(65));
    fb.ret(Some(s));
    assert_eq!(run1(fb, &[Vi32(10)]).unwrap(), Some(Vi64(18)));

    let mut fb = Fb::new("g", &[], Some(F32));
    let x = fb.bin(Opcode::Fadd, F32, flt(0.1), int(2));
    fb.ret(Some(x));
    assert_eq!(run1(fb, &[]).unwrap(), Some(Vf32(0.1f32 + 2.0)));
}

// ------------------------------------------------------- control flow

/// `func @sum(%n: i64) -> i64`: 0 + 1 + ... + (n-1) with a loop whose
/// block arguments swap positions every round.
fn sum_loop() -> Fb {
    let mut fb = Fb::new("sum", &[I64], Some(I64));
    let n = fb.param(0);
    let (lp, lps) = fb.block("loop", &[I64, I64, I64]);
    let (body, _) = fb.block("body", &[]);
    let (exit, eps) = fb.block("exit", &[I64]);
    fb.jmp(lp, vec![int(0), int(0), int(0)]);
    fb.at(lp);
    let (i, acc, other) = (lps[0], lps[1], lps[2]);
    let done = fb.bin(Opcode::Sge, I64, i, n);
    fb.br(done, (exit, vec![acc]), (body, vec![]));
    fb.at(body);
    let acc2 = fb.bin(Opcode::Add, I64, acc, i);
    let i2 = fb.bin(Opcode::Add, I64, i, int(1));
    // `other` trails `acc` by one round: passing (acc, other) swapped
    // would be wrong if block arguments were copied one by one.
    let _ = other;
    fb.jmp(lp, vec![i2, acc2, acc]);
    fb.at(exit);
    fb.ret(Some(eps[0]));
    fb
}

#[test]
fn loops_with_block_arguments() {
    assert_eq!(run1(sum_loop(), &[Vi64(101)]).unwrap(), Some(Vi64(5050)));
    assert_eq!(run1(sum_loop(), &[Vi64(-3)]).unwrap(), Some(Vi64(0)));
}

#[test]
fn block_arguments_are_passed_in_parallel() {
    // loop(%a, %b, %n): jmp loop(%b, %a, %n - 1) swaps a and b each round.
    let mut fb = Fb::new("swap", &[I64, I64, I64], Some(I64));
    let (lp, ps) = fb.block("loop", &[I64, I64, I64]);
    let (body, _) = fb.block("body", &[]);
    let (exit, _) = fb.block("exit", &[]);
    let args = vec![fb.param(0), fb.param(1), fb.param(2)];
    fb.jmp(lp, args);
    fb.at(lp);
    let z = fb.bin(Opcode::Eq, I64, ps[2], int(0));
    fb.br(z, (exit, vec![]), (body, vec![]));
    fb.at(body);
    let n1 = fb.bin(Opcode::Sub, I64, ps[2], int(1));
    fb.jmp(lp, vec![ps[1], ps[0], n1]);
    fb.at(exit);
    let r = fb.bin(Opcode::Sub, I64, ps[0], ps[1]);
    fb.ret(Some(r));
    let run = |n| {
        let f = Fb {
            f: fb.f.clone(),
            cur: Block(0),
        };
        run1(f, &[Vi64(10), Vi64(3), Vi64(n)]).unwrap()
    };
    assert_eq!(run(0), Some(Vi64(7)));
    assert_eq!(run(1), Some(Vi64(-7)));
    assert_eq!(run(4), Some(Vi64(7)));
}

fn switch_fn(ty: Type, keys: &[i128]) -> Fb {
    let mut fb = Fb::new("sw", &[ty], Some(I32));
    let mut blocks = Vec::new();
    let (dflt, _) = fb.block("dflt", &[]);
    for i in 0..keys.len() {
        blocks.push(fb.block(&format!("case{i}"), &[]).0);
    }
    let cases = keys
        .iter()
        .zip(&blocks)
        .map(|(&k, &b)| SwitchCase {
            key: Const::Int(k),
            block: b,
        })
        .collect();
    let p = fb.param(0);
    fb.ins(
        Opcode::Switch,
        Some(ty),
        InstKind::Switch {
            value: p,
            default: dflt,
            cases,
        },
    );
    fb.at(dflt);
    fb.ret(Some(int(-1)));
    for (i, &b) in blocks.iter().enumerate() {
        fb.at(b);
        fb.ret(Some(int(i as i128 * 10)));
    }
    fb
}

#[test]
fn switch_jumps_to_the_matching_key() {
    let keys = [0, 5, -1, 0x7fff_ffff, 1000];
    let run = |x: i32| run1(switch_fn(I32, &keys), &[Vi32(x)]).unwrap().unwrap();
    assert_eq!(run(0), Vi32(0));
    assert_eq!(run(5), Vi32(10));
    assert_eq!(run(-1), Vi32(20));
    assert_eq!(run(i32::MAX), Vi32(30));
    assert_eq!(run(1000), Vi32(40));
    assert_eq!(run(6), Vi32(-1));
    assert_eq!(run(i32::MIN), Vi32(-1));
    // Keys are wrapped to the switch type: 0xffffffff is -1 for i32.
    let fb = switch_fn(I32, &[0xffff_ffff]);
    assert_eq!(run1(fb, &[Vi32(-1)]).unwrap(), Some(Vi32(0)));
    let fb = switch_fn(I64, &[0xffff_ffff, -1]);
    assert_eq!(run1(fb, &[Vi64(-1)]).unwrap(), Some(Vi32(10)));
    let fb = switch_fn(I64, &[0xffff_ffff, -1]);
    assert_eq!(run1(fb, &[Vi64(0xffff_ffff)]).unwrap(), Some(Vi32(0)));
}

#[test]
fn trap_instruction_traps_unreachable() {
    let mut fb = Fb::new("t", &[I32], Some(I32));
    let (then, _) = fb.block("then", &[]);
    let (els, _) = fb.block("else", &[]);
    let p = fb.param(0);
    fb.br(p, (then, vec![]), (els, vec![]));
    fb.at(then);
    fb.ins(Opcode::Trap, None, InstKind::Trap);
    fb.at(els);
    fb.ret(Some(int(7)));
    let f = fb.f.clone();
    assert_eq!(run1(fb, &[Vi32(0)]).unwrap(), Some(Vi32(7)));
    let fb = Fb { f, cur: Block(0) };
    assert_eq!(
        run1(fb, &[Vi32(2)]),
        Err(Error::Trap(TrapCode::Unreachable))
    );
}

// ---------------------------------------------------------------- memory

#[test]
fn alloca_loads_and_stores_every_width() {
    use Opcode::*;
    // Store 0x8899aabbccddeeff at p+1 (unaligned) over zeroes, then read
    // it back in pieces with every load form.
    let cases: &[(Opcode, Type, i64, i64)] = &[
        (Load, I64, 1, 0x8899aabbccddeeffu64 as i64),
        (Load8s, I64, 1, -1),
        (Load8u, I64, 1, 0xff),
        (Load16s, I64, 1, 0xeeffu16 as i16 as i64),
        (Load16u, I64, 1, 0xeeff),
        (Load32s, I64, 5, 0x8899aabbu32 as i32 as i64),
        (Load32u, I64, 5, 0x8899aabb),
        (Load8s, I32, 8, 0x88u8 as i8 as i64),
        (Load8u, I32, 8, 0x88),
        (Load16s, I32, 7, 0x8899u16 as i16 as i64),
        (Load16u, I32, 7, 0x8899),
        (Load, I32, 5, 0x8899aabbu32 as i32 as i64),
    ];
    for &(op, ty, off, want) in cases {
        let mut fb = Fb::new("m", &[I64], Some(ty));
        let x = fb.param(0);
        let p = fb.alloca(32, 16);
        fb.store(Store, Some(I64), int(0), p, 0);
        fb.store(Store, Some(I64), int(0), p, 8);
        fb.store(Store, Some(I64), x, p, 1);
        let r = fb.load(op, ty, p, off);
        fb.ret(Some(r));
        let got = run1(fb, &[Vi64(0x8899aabbccddeeffu64 as i64)])
            .unwrap()
            .unwrap();
        let want = if ty == I32 {
            Vi32(want as i32)
        } else {
            Vi64(want)
        };
        assert_eq!(got, want, "{}.{ty} at {off}", op.name());
    }
}

#[test]
fn narrow_stores_write_low_bits_only() {
    use Opcode::*;
    let mut fb = Fb::new("m", &[I32], Some(I64));
    let p = fb.alloca(8, 8);
    fb.store(Store, Some(I64), int(-1), p, 0);
    fb.store(Store8, None, int(0x1234), p, 0); // literal taken as i64
    let x = fb.param(0);
    fb.store(Store16, None, x, p, 2);
    fb.store(Store32, None, int(0), p, 4);
    let r = fb.load(Load, I64, p, 0);
    fb.ret(Some(r));
    assert_eq!(
        run1(fb, &[Vi32(0x7abcd)]).unwrap(),
        Some(Vi64(0x0000_0000_abcd_ff34))
    );
}

#[test]
fn float_loads_and_stores() {
    use Opcode::*;
    let mut fb = Fb::new("m", &[F32, F64], Some(F64));
    let p = fb.alloca(16, 8);
    let (a, b) = (fb.param(0), fb.param(1));
    fb.store(Store, Some(F32), a, p, 0);
    fb.store(Store, Some(F64), b, p, 4);
    let a2 = fb.load(Load, F32, p, 0);
    let b2 = fb.load(Load, F64, p, 4);
    let a3 = fb.un(Fext, F64, a2);
    let s = fb.bin(Fadd, F64, a3, b2);
    fb.ret(Some(s));
    assert_eq!(
        run1(fb, &[Vf32(1.5), Vf64(0.25)]).unwrap(),
        Some(Vf64(1.75))
    );
}

#[test]
fn data_items_are_laid_out_and_linked_for_real() {
    use Opcode::*;
    // data @t = { i8 1, i64 7 11, @counter+8, i16 -2, f32 1.5 }
    // data @counter = { i64 0 5 }
    // func @f() -> i64: load @t's fields and follow the pointer to @counter.
    let mut mb = Mb::new("d.kir");
    let counter = mb.data(
        "counter",
        Linkage::Local,
        vec![DataValue::Int {
            bytes: 8,
            values: vec![0, 5],
        }],
    );
    let t = mb.data(
        "t",
        Linkage::Export,
        vec![
            DataValue::Int {
                bytes: 1,
                values: vec![1],
            },
            DataValue::Int {
                bytes: 8,
                values: vec![7, 11],
            },
            DataValue::SymAddr {
                sym: counter,
                addend: 8,
            },
            DataValue::Int {
                bytes: 2,
                values: vec![-2],
            },
            DataValue::F32(vec![1.5f32.to_bits()]),
        ],
    );
    let mut fb = Fb::new("f", &[], Some(I64));
    let pt = fb.addr(t);
    // Layout: i8 at 0, i64s at 8 and 16, pointer at 24, i16 at 32, f32 at 36.
    let b0 = fb.load(Load8s, I64, pt, 0);
    let x = fb.load(Load, I64, pt, 8);
    let y = fb.load(Load, I64, pt, 16);
    let ptr = fb.load(Load, I64, pt, 24);
    let five = fb.load(Load, I64, ptr, 0);
    let m2 = fb.load(Load16s, I64, pt, 32);
    let fl = fb.load(Load, F32, pt, 36);
    let fli = fb.un(Ftosi, I64, fl);
    // Alignment of the object itself: addr & 15 must be 0.
    let al = fb.bin(And, I64, pt, int(15));
    // 1*1 + 7*10 + 11*100 + 5*1000 + (-2)*10000 + 1*100000 + al*1000000
    let mut acc = b0;
    for (val, k) in [
        (x, 10),
        (y, 100),
        (five, 1000),
        (m2, 10000),
        (fli, 100000),
        (al, 1000000),
    ] {
        let t = fb.bin(Mul, I64, val, int(k));
        acc = fb.bin(Add, I64, acc, t);
    }
    // Write through the pointer and read the change back via @counter.
    fb.store(Store, Some(I64), int(9), ptr, -8);
    let pc = fb.addr(counter);
    let nine = fb.load(Load, I64, pc, 0);
    let t9 = fb.bin(Mul, I64, nine, int(10_000_000));
    let acc = fb.bin(Add, I64, acc, t9);
    fb.ret(Some(acc));
    mb.func(Linkage::Export, fb);
    let got = run_with(&[mb.m], &HostFunctions::new(), "f", &[]).unwrap();
    assert_eq!(
        got,
        Some(Vi64(1 + 70 + 1100 + 5000 - 20000 + 100000 + 90_000_000))
    );
}

#[test]
fn data_persists_between_calls() {
    use Opcode::*;
    let mut mb = Mb::new("c.kir");
    let c = mb.data("c", Linkage::Local, vec![DataValue::Zero(8)]);
    let mut fb = Fb::new("bump", &[], Some(I64));
    let p = fb.addr(c);
    let x = fb.load(Load, I64, p, 0);
    let x1 = fb.bin(Add, I64, x, int(1));
    fb.store(Store, Some(I64), x1, p, 0);
    fb.ret(Some(x1));
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(1)));
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(2)));
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(3)));
}

#[test]
fn c_library_memory_functions_work_on_real_addresses() {
    use Opcode::*;
    // malloc 16, memset it to 0x41, store an i32 at +4, memcpy to an
    // alloca buffer, memcmp equal, free, return the loaded i64.
    let mut mb = Mb::new("c.kir");
    let malloc = mb.extern_func("malloc", sig(&[I64], Some(I64)));
    let memset = mb.extern_func("memset", sig(&[I64, I32, I64], Some(I64)));
    let memcpy = mb.extern_func("memcpy", sig(&[I64, I64, I64], Some(I64)));
    let memcmp = mb.extern_func("memcmp", sig(&[I64, I64, I64], Some(I32)));
    let free = mb.extern_func("free", sig(&[I64], None));
    let mut fb = Fb::new("f", &[], Some(I64));
    let h = fb.call(Some(I64), Callee::Direct(malloc), vec![int(16)]);
    fb.call(
        Some(I64),
        Callee::Direct(memset),
        vec![h, int(0x41), int(16)],
    );
    fb.store(Store, Some(I32), int(-2), h, 4);
    let buf = fb.alloca(16, 8);
    fb.call(Some(I64), Callee::Direct(memcpy), vec![buf, h, int(16)]);
    let same = fb.call(Some(I32), Callee::Direct(memcmp), vec![buf, h, int(16)]);
    fb.store(Store8, None, int(0x42), buf, 15);
    let diff = fb.call(Some(I32), Callee::Direct(memcmp), vec![buf, h, int(16)]);
    fb.call(None, Callee::Direct(free), vec![h]);
    let x = fb.load(Load, I64, buf, 0);
    let ok1 = fb.bin(Eq, I32, same, int(0));
    let ok2 = fb.bin(Sgt, I32, diff, int(0));
    let both = fb.bin(And, I32, ok1, ok2);
    let r = fb.ins(
        Select,
        Some(I64),
        InstKind::Select {
            args: [both, x, int(-1)],
        },
    );
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let got = run_with(&[mb.m], &HostFunctions::c_library(), "f", &[]).unwrap();
    assert_eq!(got, Some(Vi64(0xffff_fffe_4141_4141u64 as i64)));
}

#[test]
fn alloca_slots_are_per_call_and_aligned() {
    use Opcode::*;
    // Recursive: each frame stores its n in its own alloca slot, recurses,
    // then reads the slot back: n + f(n-1), so frames must not share slots.
    let mut mb = Mb::new("a.kir");
    let fsym = mb.func_sym("f", Linkage::Export, sig(&[I64], Some(I64)));
    let mut fb = Fb::new("f", &[I64], Some(I64));
    let (rec, _) = fb.block("rec", &[]);
    let (base, _) = fb.block("base", &[]);
    let n = fb.param(0);
    let _pad = fb.alloca(3, 1);
    let p = fb.alloca(8, 16);
    fb.store(Store, Some(I64), n, p, 0);
    let z = fb.bin(Eq, I64, n, int(0));
    fb.br(z, (base, vec![]), (rec, vec![]));
    fb.at(rec);
    let n1 = fb.bin(Sub, I64, n, int(1));
    let r = fb.call(Some(I64), Callee::Direct(fsym), vec![n1]);
    let back = fb.load(Load, I64, p, 0);
    let s = fb.bin(Add, I64, back, r);
    let al = fb.bin(And, I64, p, int(15));
    let s2 = fb.bin(Add, I64, s, al);
    fb.ret(Some(s2));
    fb.at(base);
    fb.ret(Some(int(0)));
    mb.define(fsym, fb);
    let got = run_with(&[mb.m], &HostFunctions::new(), "f", &[Vi64(100)]).unwrap();
    assert_eq!(got, Some(Vi64(5050)));
}

// ----------------------------------------------------------------- calls

/// `func @down(%n: i64) -> i64`: 0 when n == 0, else 1 + down(n - 1).
fn countdown(mb: &mut Mb) -> SymId {
    let sym = mb.func_sym("down", Linkage::Export, sig(&[I64], Some(I64)));
    let mut fb = Fb::new("down", &[I64], Some(I64));
    let (rec, _) = fb.block("rec", &[]);
    let (done, _) = fb.block("done", &[]);
    let n = fb.param(0);
    let z = fb.bin(Opcode::Eq, I64, n, int(0));
    fb.br(z, (done, vec![]), (rec, vec![]));
    fb.at(rec);
    let n1 = fb.bin(Opcode::Sub, I64, n, int(1));
    let r = fb.call(Some(I64), Callee::Direct(sym), vec![n1]);
    let r1 = fb.bin(Opcode::Add, I64, r, int(1));
    fb.ret(Some(r1));
    fb.at(done);
    fb.ret(Some(int(0)));
    mb.define(sym, fb);
    sym
}

#[test]
fn deep_recursion_runs_without_a_rust_stack() {
    let mut mb = Mb::new("r.kir");
    countdown(&mut mb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    assert_eq!(
        it.call("down", &[Vi64(200_000)]).unwrap(),
        Some(Vi64(200_000))
    );
    assert_eq!(it.call("down", &[Vi64(3)]).unwrap(), Some(Vi64(3)));
}

#[test]
fn unbounded_recursion_is_an_error_not_a_crash() {
    let mut mb = Mb::new("r.kir");
    countdown(&mut mb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_call_depth_limit(10_000);
    match it.call("down", &[Vi64(-1)]) {
        Err(Error::Runtime(m)) => assert_eq!(m, "call depth limit of 10000 exceeded"),
        other => panic!("expected a depth error, got {other:?}"),
    }
    // The limit counts frames exactly: depth 9,999 calls below the entry fit.
    assert_eq!(it.call("down", &[Vi64(9_999)]).unwrap(), Some(Vi64(9_999)));
    assert!(it.call("down", &[Vi64(10_000)]).is_err());
    // And the interpreter is still usable after the error.
    assert_eq!(it.call("down", &[Vi64(5)]).unwrap(), Some(Vi64(5)));
}

#[test]
fn unbounded_recursion_with_the_default_limit_ends() {
    let mut mb = Mb::new("r.kir");
    countdown(&mut mb);
    match run_with(&[mb.m], &HostFunctions::new(), "down", &[Vi64(-1)]) {
        Err(Error::Runtime(m)) => assert!(m.contains("exceeded") || m.contains("exhausted"), "{m}"),
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn alloca_stack_exhaustion_is_an_error() {
    let mut mb = Mb::new("r.kir");
    let mut fb = Fb::new("big", &[], Some(I64));
    let p = fb.alloca(1 << 40, 16);
    fb.ret(Some(p));
    mb.func(Linkage::Export, fb);
    match run_with(&[mb.m], &HostFunctions::new(), "big", &[]) {
        Err(Error::Runtime(m)) => assert!(m.contains("alloca stack"), "{m}"),
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn indirect_calls_through_addr() {
    use Opcode::*;
    // func @twice(%x: i64) -> i64; local func @apply(%f: i64, %x: i64)
    // calls %f; @main passes addr @twice, addr of a host function and an
    // address stored in a data item.
    let mut mb = Mb::new("i.kir");
    let mut tw = Fb::new("twice", &[I64], Some(I64));
    let x = tw.param(0);
    let y = tw.bin(Add, I64, x, x);
    tw.ret(Some(y));
    let twice = mb.func(Linkage::Local, tw);
    let neg = mb.extern_func("hneg", sig(&[I64], Some(I64)));
    let table = mb.data(
        "table",
        Linkage::Local,
        vec![
            DataValue::SymAddr {
                sym: twice,
                addend: 0,
            },
            DataValue::SymAddr {
                sym: neg,
                addend: 0,
            },
        ],
    );
    let mut fb = Fb::new("main", &[I64], Some(I64));
    let x = fb.param(0);
    let ft = fb.addr(twice);
    let a = fb.call(Some(I64), Callee::Indirect(ft), vec![x]);
    let fh = fb.addr(neg);
    let b = fb.call(Some(I64), Callee::Indirect(fh), vec![a]);
    let t = fb.addr(table);
    let f0 = fb.load(Load, I64, t, 0);
    let c = fb.call(Some(I64), Callee::Indirect(f0), vec![b]);
    let f1 = fb.load(Load, I64, t, 8);
    let d = fb.call(Some(I64), Callee::Indirect(f1), vec![c]);
    // Function addresses are distinct and nonzero.
    let same = fb.bin(Eq, I64, ft, fh);
    let zero = fb.bin(Eq, I64, ft, int(0));
    let bad = fb.bin(Or, I32, same, zero);
    let r = fb.ins(
        Select,
        Some(I64),
        InstKind::Select {
            args: [bad, int(-999), d],
        },
    );
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let mut host = HostFunctions::new();
    host.register("hneg", sig(&[I64], Some(I64)), |a| match a {
        [Vi64(x)] => Ok(Some(Vi64(-x))),
        _ => Err(Error::Argument("bad".into())),
    });
    assert_eq!(
        run_with(&[mb.m], &host, "main", &[Vi64(5)]).unwrap(),
        Some(Vi64(20))
    );
}

#[test]
fn bad_indirect_calls_are_runtime_errors() {
    let mut mb = Mb::new("i.kir");
    let mut tw = Fb::new("id", &[I64], Some(I64));
    let x = tw.param(0);
    tw.ret(Some(x));
    let id = mb.func(Linkage::Local, tw);
    // Calling a non-function address.
    let mut fb = Fb::new("wild", &[I64], Some(I64));
    let p = fb.param(0);
    let r = fb.call(Some(I64), Callee::Indirect(p), vec![p]);
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    // Calling @id with the wrong signature: (i64) -> i32.
    let mut fb = Fb::new("wrongsig", &[], Some(I32));
    let a = fb.addr(id);
    let r = fb.call(Some(I32), Callee::Indirect(a), vec![a]);
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    match it.call("wild", &[Vi64(0x1234)]) {
        Err(Error::Runtime(m)) => assert!(m.contains("0x1234"), "{m}"),
        other => panic!("{other:?}"),
    }
    match it.call("wrongsig", &[]) {
        Err(Error::Runtime(m)) => assert!(m.contains("@id"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_closures_see_their_arguments_and_state() {
    use Opcode::*;
    let total = Arc::new(AtomicI64::new(0));
    let mut host = HostFunctions::new();
    let t2 = total.clone();
    host.register("acc", sig(&[I32, F64], None), move |a| {
        if let [Vi32(x), Vf64(y)] = a {
            t2.fetch_add(*x as i64 * 1000 + *y as i64, Ordering::SeqCst);
            Ok(None)
        } else {
            Err(Error::Argument("bad".into()))
        }
    });
    host.register("fail", sig(&[], Some(I32)), |_| {
        Err(Error::Runtime("host says no".into()))
    });
    let mut mb = Mb::new("h.kir");
    let acc = mb.extern_func("acc", sig(&[I32, F64], None));
    let fail = mb.extern_func("fail", sig(&[], Some(I32)));
    let mut fb = Fb::new("main", &[I32], None);
    let p = fb.param(0);
    fb.call(None, Callee::Direct(acc), vec![p, flt(2.5)]);
    let q = fb.bin(Add, I32, p, int(1));
    fb.call(None, Callee::Direct(acc), vec![q, flt(7.0)]);
    fb.ret(None);
    mb.func(Linkage::Export, fb);
    let mut fb = Fb::new("boom", &[], Some(I32));
    let r = fb.call(Some(I32), Callee::Direct(fail), vec![]);
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &host).unwrap();
    assert_eq!(it.call("main", &[Vi32(4)]).unwrap(), None);
    assert_eq!(total.load(Ordering::SeqCst), 4002 + 5007);
    assert_eq!(
        it.call("boom", &[]),
        Err(Error::Runtime("host says no".into()))
    );
}

// --------------------------------------------------------------- linking

/// Module `b.kir` exporting `func @inc(%x: i64) -> i64` and data `@val`.
fn lib_module() -> Module {
    let mut mb = Mb::new("b.kir");
    let mut fb = Fb::new("inc", &[I64], Some(I64));
    let x = fb.param(0);
    let y = fb.bin(Opcode::Add, I64, x, int(1));
    fb.ret(Some(y));
    mb.func(Linkage::Export, fb);
    mb.data(
        "val",
        Linkage::Export,
        vec![DataValue::Int {
            bytes: 8,
            values: vec![41],
        }],
    );
    let mut fb = Fb::new("hidden", &[], None);
    fb.ret(None);
    mb.func(Linkage::Local, fb);
    mb.m
}

#[test]
fn calls_and_data_across_modules() {
    let mut mb = Mb::new("a.kir");
    let inc = mb.extern_func("inc", sig(&[I64], Some(I64)));
    let val = mb.declare("val", Linkage::Import, SymbolKind::Data { body: None });
    let mut fb = Fb::new("main", &[], Some(I64));
    let p = fb.addr(val);
    let x = fb.load(Opcode::Load, I64, p, 0);
    let y = fb.call(Some(I64), Callee::Direct(inc), vec![x]);
    let fp = fb.addr(inc);
    let z = fb.call(Some(I64), Callee::Indirect(fp), vec![y]);
    fb.ret(Some(z));
    mb.func(Linkage::Export, fb);
    let modules = [mb.m, lib_module()];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    assert_eq!(it.call("main", &[]).unwrap(), Some(Vi64(43)));
    assert_eq!(it.call("inc", &[Vi64(1)]).unwrap(), Some(Vi64(2)));
    // addr of an imported function is the definition's address.
    assert!(it.function_address("inc").is_some());
}

#[test]
fn extern_signature_mismatch_is_a_link_error() {
    let mut mb = Mb::new("a.kir");
    mb.extern_func("inc", sig(&[I32], Some(I64)));
    let d = link_err(&[mb.m, lib_module()], &HostFunctions::new());
    assert_eq!(d.file, "a.kir");
    assert_eq!(d.loc, Loc::new(1, 6));
    assert_eq!(
        d.message,
        "extern @inc has signature (i32) -> i64 but module b.kir defines (i64) -> i64"
    );
}

#[test]
fn unresolved_and_local_symbols_are_link_errors() {
    let mut mb = Mb::new("a.kir");
    mb.extern_func("nothere", sig(&[], None));
    let d = link_err(&[mb.m, lib_module()], &HostFunctions::new());
    assert_eq!((d.file.as_str(), d.loc), ("a.kir", Loc::new(1, 6)));
    assert_eq!(d.message, "unresolved symbol @nothere");
    // A local definition is invisible to other modules.
    let mut mb = Mb::new("a.kir");
    mb.extern_func("ok", sig(&[I64], Some(I64)));
    mb.extern_func("hidden", sig(&[], None));
    let mut host = HostFunctions::new();
    host.register("ok", sig(&[I64], Some(I64)), |a| Ok(Some(a[0])));
    let d = link_err(&[mb.m, lib_module()], &host);
    assert_eq!(d.loc, Loc::new(2, 6));
    assert_eq!(d.message, "unresolved symbol @hidden");
}

#[test]
fn duplicate_exports_are_a_link_error_at_the_second() {
    let mut mb = Mb::new("c.kir");
    let mut fb = Fb::new("x", &[], None);
    fb.ret(None);
    mb.func(Linkage::Local, fb);
    mb.data("inc", Linkage::Export, vec![DataValue::Zero(1)]);
    let d = link_err(&[lib_module(), mb.m], &HostFunctions::new());
    assert_eq!((d.file.as_str(), d.loc), ("c.kir", Loc::new(2, 6)));
    assert_eq!(d.message, "@inc is already exported by module b.kir");
    // Two `local` definitions of one name in different modules are fine.
    let mut mb = Mb::new("c.kir");
    let mut fb = Fb::new("hidden", &[], None);
    fb.ret(None);
    mb.func(Linkage::Local, fb);
    assert!(Interpreter::new(&[lib_module(), mb.m], &HostFunctions::new()).is_ok());
}

#[test]
fn kind_and_host_mismatches_are_link_errors() {
    let mut mb = Mb::new("a.kir");
    mb.declare("inc", Linkage::Import, SymbolKind::Data { body: None });
    let d = link_err(&[mb.m, lib_module()], &HostFunctions::new());
    assert_eq!(
        d.message,
        "extern data @inc names a function defined by module b.kir"
    );
    let mut mb = Mb::new("a.kir");
    mb.extern_func("val", sig(&[], None));
    let d = link_err(&[mb.m, lib_module()], &HostFunctions::new());
    assert_eq!(
        d.message,
        "extern func @val names data defined by module b.kir"
    );
    let mut mb = Mb::new("a.kir");
    mb.extern_func("putchar", sig(&[I64], Some(I32)));
    let d = link_err(&[mb.m], &HostFunctions::c_library());
    assert_eq!(
        d.message,
        "extern @putchar has signature (i64) -> i32 but the host function has (i32) -> i32"
    );
    // Another module's export wins over a host function of the same name.
    let mut mb = Mb::new("a.kir");
    let inc = mb.extern_func("inc", sig(&[I64], Some(I64)));
    let mut fb = Fb::new("main", &[], Some(I64));
    let r = fb.call(Some(I64), Callee::Direct(inc), vec![int(1)]);
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let mut host = HostFunctions::new();
    host.register("inc", sig(&[I64], Some(I64)), |_| Ok(Some(Vi64(-100))));
    let got = run_with(&[mb.m, lib_module()], &host, "main", &[]).unwrap();
    assert_eq!(got, Some(Vi64(2)));
}

#[test]
fn entry_errors_are_argument_errors() {
    let modules = [lib_module()];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    let arg_err = |r: Result<Option<Val>, Error>| match r {
        Err(Error::Argument(m)) => m,
        other => panic!("expected an argument error, got {other:?}"),
    };
    assert_eq!(arg_err(it.call("nope", &[])), "no exported function @nope");
    assert_eq!(
        arg_err(it.call("hidden", &[])),
        "function @hidden is local, not exported"
    );
    assert_eq!(arg_err(it.call("val", &[])), "@val is data, not a function");
    assert_eq!(
        arg_err(it.call("inc", &[])),
        "@inc takes 1 argument (i64) -> i64 but 0 were given"
    );
    assert_eq!(
        arg_err(it.call("inc", &[Vi32(1)])),
        "argument 1 of @inc must be i64, not i32 1"
    );
}

// ------------------------------------------- .kir files, run in process

/// What one `; ==== RUN` block of a `.kir` file expects.
#[derive(Debug, Default)]
struct Expect {
    stdout: Vec<String>,
    stderr: Vec<String>,
    status: Option<i32>,
}

/// The RUN lines of `text` and the expectation block of each.
fn run_lines(text: &str) -> Vec<(String, Expect)> {
    let mut runs: Vec<String> = Vec::new();
    let mut blocks: Vec<(String, Expect)> = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("; RUN: ") {
            runs.push(r.trim().to_string());
        } else if let Some(r) = line.strip_prefix("; ==== ") {
            blocks.push((r.trim().to_string(), Expect::default()));
        } else if let Some((_, e)) = blocks.last_mut() {
            if let Some(s) = line.strip_prefix("; stdout: ") {
                e.stdout.push(s.to_string());
            } else if let Some(s) = line.strip_prefix("; stderr: ") {
                e.stderr.push(s.to_string());
            } else if let Some(s) = line.strip_prefix("; status: ") {
                e.status = s.trim().parse().ok();
            }
        }
    }
    assert_eq!(
        runs,
        blocks.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
        "RUN lines and expectation blocks differ"
    );
    blocks
}

/// Runs one `run` line in process: (stdout result line, stderr line, status).
fn run_in_process(path: &str, line: &str) -> (Option<String>, Option<String>, i32) {
    let line = line.replace("%s", path);
    let (opts, args) = match line.split_once(" -- ") {
        Some((o, a)) => (
            o.to_string(),
            a.split_whitespace().map(String::from).collect(),
        ),
        None => (line.clone(), Vec::new()),
    };
    let mut words = opts.split_whitespace();
    assert_eq!(words.next(), Some("run"), "{line}");
    let mut files = Vec::new();
    let mut entry = "main".to_string();
    while let Some(w) = words.next() {
        match w {
            "--entry" => entry = words.next().expect("entry name").to_string(),
            f if f.ends_with(".kir") => files.push(f.to_string()),
            other => panic!("unknown option {other} in {line}"),
        }
    }
    if !files.iter().any(|f| f == path) {
        files.insert(0, path.to_string());
    }
    let modules: Vec<Module> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("readable test file");
            kiln::ir::parse::parse_module(f, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let err = |e: Error| match e {
        Error::Trap(t) => (None, Some(format!("trap: {t}")), 3),
        Error::Argument(m) | Error::Runtime(m) => (None, Some(format!("kiln: error: {m}")), 1),
        e => (None, Some(e.to_string()), 1),
    };
    let mut it = match Interpreter::new(&modules, &HostFunctions::c_library()) {
        Ok(it) => it,
        Err(e) => return err(e),
    };
    let params = modules
        .iter()
        .find_map(|m| m.symbol(&entry).and_then(|s| m.sym(s).signature().cloned()))
        .map(|s| s.params)
        .unwrap_or_default();
    let vals: Vec<Val> = params
        .iter()
        .zip(&args)
        .map(|(&t, a)| Val::parse(t, a).unwrap_or_else(|| panic!("bad argument {a}")))
        .collect();
    match it.call(&entry, &vals) {
        Ok(v) => (v.map(|v| v.to_string()), None, 0),
        Err(e) => err(e),
    }
}

#[test]
fn kir_file_expectations_hold_in_process() {
    let mut checked = 0;
    for dir in ["tests/ir/inst", "tests/ir/link"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("test folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "kir"))
            .collect();
        paths.sort();
        for p in paths {
            let path = p.to_str().expect("utf-8 path").to_string();
            let text = std::fs::read_to_string(&p).expect("readable");
            for (line, want) in run_lines(&text) {
                // Runs whose program writes output would write into the
                // test's own stdout; the CLI harness checks those.
                let prints =
                    want.stdout.len() > 1 || (want.status != Some(0) && !want.stdout.is_empty());
                if prints && std::env::var_os("KILN_INTERP_ALL").is_none() {
                    continue;
                }
                if prints {
                    println!("{line}");
                }
                let (out, err, status) = run_in_process(&path, &line);
                let ctx = format!("{path}: {line}");
                // The result line is the last of stdout (after the program's
                // own output, which goes straight to the process's stdout).
                let want_out = if status == 0 {
                    want.stdout.last()
                } else {
                    None
                };
                assert_eq!(out.as_deref(), want_out.map(|s| s.as_str()), "{ctx}");
                assert_eq!(
                    err.as_deref(),
                    want.stderr.last().map(|s| s.as_str()),
                    "{ctx}"
                );
                assert_eq!(Some(status), want.status, "{ctx}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} runs checked");
}

// ------------------------------------------- robustness on malformed IR

/// xorshift64*: a tiny deterministic PRNG for randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A random function over arbitrary (often ill-typed, sometimes
/// out-of-range) operands. Loads and stores are left out: wild addresses
/// are undefined behaviour of the program, not something the interpreter
/// can survive.
fn random_function(rng: &mut Rng, name: &str, nsyms: usize) -> Function {
    let types = [I32, I64, F32, F64];
    let nparams = rng.below(4);
    let params: Vec<Type> = (0..nparams).map(|_| rng.pick(&types)).collect();
    let ret = if rng.below(4) == 0 {
        None
    } else {
        Some(rng.pick(&types))
    };
    let mut f = Function::new(name, sig(&params, ret));
    let nblocks = 1 + rng.below(4);
    let blocks: Vec<Block> = (0..nblocks).map(|i| f.new_block(format!("b{i}"))).collect();
    for &b in &blocks[1..] {
        for _ in 0..rng.below(3) {
            f.add_block_param(b, rng.pick(&types), None);
        }
    }
    let ops: Vec<Opcode> = Opcode::ALL
        .iter()
        .copied()
        .filter(|op| op.access_bytes(Some(I64)).is_none())
        .collect();
    for &b in &blocks {
        let n = rng.below(8);
        for k in 0..=n {
            let op = if k == n {
                rng.pick(&[
                    Opcode::Ret,
                    Opcode::Jmp,
                    Opcode::Br,
                    Opcode::Switch,
                    Opcode::Trap,
                ])
            } else {
                rng.pick(&ops)
            };
            let nvals = f.values.len();
            // Out-of-range values and blocks now and then.
            let operand = |rng: &mut Rng| {
                if rng.below(4) == 0 {
                    int(rng.next() as i64 as i128 >> rng.below(64))
                } else if rng.below(50) == 0 || nvals == 0 {
                    Operand::Value(Value::new(nvals + rng.below(2)))
                } else {
                    Operand::Value(Value::new(rng.below(nvals)))
                }
            };
            let some_block = |rng: &mut Rng| {
                let extra = (rng.below(50) == 0) as usize;
                Block::new(rng.below(nblocks + extra))
            };
            let target = |rng: &mut Rng| {
                let block = some_block(rng);
                let n = f.blocks.get(block.index()).map_or(0, |b| b.params.len());
                let n = if rng.below(20) == 0 { rng.below(3) } else { n };
                let args = (0..n).map(|_| operand(rng)).collect();
                BlockCall { block, args }
            };
            // Mostly the opcode's own operand layout, sometimes another.
            let format = if rng.below(10) == 0 {
                rng.pick(Opcode::ALL).info().format
            } else {
                op.info().format
            };
            let kind = match format {
                Format::Unary => InstKind::Unary { arg: operand(rng) },
                Format::Binary | Format::Load | Format::Store => InstKind::Binary {
                    args: [operand(rng), operand(rng)],
                },
                Format::Select => InstKind::Select {
                    args: [operand(rng), operand(rng), operand(rng)],
                },
                Format::Alloca => InstKind::Alloca {
                    size: rng.next() >> rng.below(64),
                    align: 1 << rng.below(6),
                },
                Format::Addr => InstKind::Addr {
                    sym: SymId::new(rng.below(nsyms + 1)),
                },
                Format::Call => InstKind::Call {
                    callee: if rng.below(2) == 0 {
                        Callee::Direct(SymId::new(rng.below(nsyms + 1)))
                    } else {
                        Callee::Indirect(operand(rng))
                    },
                    args: (0..rng.below(4)).map(|_| operand(rng)).collect(),
                },
                Format::Ret => InstKind::Ret {
                    value: (rng.below(2) == 0).then(|| operand(rng)),
                },
                Format::Jmp => InstKind::Jmp { dest: target(rng) },
                Format::Br => InstKind::Br {
                    cond: operand(rng),
                    then_dest: target(rng),
                    else_dest: target(rng),
                },
                Format::Switch => InstKind::Switch {
                    value: operand(rng),
                    default: some_block(rng),
                    cases: (0..rng.below(4))
                        .map(|_| SwitchCase {
                            key: Const::Int(rng.below(8) as i128 - 2),
                            block: some_block(rng),
                        })
                        .collect(),
                },
                Format::Trap => InstKind::Trap,
            };
            let ty = if rng.below(8) == 0 {
                None
            } else {
                Some(rng.pick(&types))
            };
            f.push_inst(b, op, ty, kind, None);
        }
    }
    f
}

#[test]
fn malformed_ir_never_panics_the_interpreter() {
    let seed = std::env::var("KILN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let mut ran = 0;
    let cases: i128 = std::env::var("KILN_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for case in 0..cases {
        let mut mb = Mb::new("fuzz.kir");
        let nfuncs = 1 + rng.below(3);
        let names: Vec<String> = (0..nfuncs).map(|i| format!("f{i}")).collect();
        let funcs: Vec<Function> = names
            .iter()
            .map(|n| random_function(&mut rng, n, nfuncs + 1))
            .collect();
        for f in funcs {
            let sym = mb.func_sym(&f.name.clone(), Linkage::Export, f.sig.clone());
            mb.m.define_func(sym, f);
        }
        mb.data(
            "d",
            Linkage::Local,
            vec![DataValue::Int {
                bytes: 8,
                values: vec![case],
            }],
        );
        let modules = [mb.m];
        let Ok(mut it) = Interpreter::new(&modules, &HostFunctions::new()) else {
            continue;
        };
        it.set_fuel(Some(10_000));
        it.set_call_depth_limit(1_000);
        let entry = &modules[0].funcs[0];
        let args: Vec<Val> = entry
            .sig
            .params
            .iter()
            .map(|&t| Val::from_bits(t, rng.next()))
            .collect();
        let _ = it.call("f0", &args);
        ran += 1;
    }
    // Most random functions are malformed enough to be rejected; some run.
    println!("{ran} random modules ran");
    assert!(ran > 50, "only {ran} random modules were runnable");
}

#[test]
fn fuel_bounds_infinite_loops() {
    let mut fb = Fb::new("spin", &[], None);
    let (lp, _) = fb.block("loop", &[]);
    fb.jmp(lp, vec![]);
    fb.at(lp);
    fb.jmp(lp, vec![]);
    let mut mb = Mb::new("s.kir");
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_fuel(Some(1000));
    assert_eq!(
        it.call("spin", &[]),
        Err(Error::Runtime(
            "fuel of 1000 control transfers exhausted".into()
        ))
    );
    // Exactly `n` transfers are allowed: sum(10) makes 10 + 11 + 1 jumps
    // and branches.
    let modules = [{
        let mut mb = Mb::new("s.kir");
        mb.func(Linkage::Export, sum_loop());
        mb.m
    }];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_fuel(Some(22));
    assert_eq!(it.call("sum", &[Vi64(10)]), Ok(Some(Vi64(45))));
    it.set_fuel(Some(21));
    assert!(it.call("sum", &[Vi64(10)]).is_err());
}

#[test]
fn c_library_has_the_c_signatures() {
    let h = HostFunctions::c_library();
    let want: &[(&str, Signature)] = &[
        ("putchar", sig(&[I32], Some(I32))),
        ("getchar", sig(&[], Some(I32))),
        ("malloc", sig(&[I64], Some(I64))),
        ("calloc", sig(&[I64, I64], Some(I64))),
        ("free", sig(&[I64], None)),
        ("memcpy", sig(&[I64, I64, I64], Some(I64))),
        ("memset", sig(&[I64, I32, I64], Some(I64))),
        ("memcmp", sig(&[I64, I64, I64], Some(I32))),
        ("abort", sig(&[], None)),
        ("exit", sig(&[I32], None)),
    ];
    for (name, s) in want {
        assert_eq!(h.get(name).map(|f| &f.sig), Some(s), "{name}");
    }
    assert_eq!(h.names().count(), want.len());
    // calloc zeroes; the result is a real, writable address.
    let calloc = &h.get("calloc").unwrap().func;
    let free = &h.get("free").unwrap().func;
    let p = match calloc(&[Vi64(4), Vi64(8)]).unwrap() {
        Some(Vi64(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_ne!(p, 0);
    // SAFETY: calloc just returned 32 owned bytes at p.
    let bytes = unsafe { std::slice::from_raw_parts(p as usize as *const u8, 32) };
    assert!(bytes.iter().all(|&b| b == 0));
    assert_eq!(free(&[Vi64(p)]).unwrap(), None);
    // A closure called directly with wrong arguments reports it.
    assert!(matches!(free(&[Vf64(1.0)]), Err(Error::Argument(_))));
}

#[test]
fn interpreters_can_move_between_threads() {
    let modules = vec![lib_module()];
    let h = HostFunctions::new();
    std::thread::scope(|s| {
        let mut it = Interpreter::new(&modules, &h).unwrap();
        s.spawn(move || assert_eq!(it.call("inc", &[Vi64(1)]).unwrap(), Some(Vi64(2))))
            .join()
            .unwrap();
    });
}
