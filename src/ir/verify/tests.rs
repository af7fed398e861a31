//! Verifier unit tests on IR built directly with the data structures: one
//! test (or more) per rule, asserting the exact message and location.

use super::*;
use crate::ir::srcmap::SrcMapBuilder;
use crate::ir::{
    Block, BlockCall, BlockData, Callee, CaseList, Const, Inst, InstKind, OpList, Opcode, Operand,
    Signature, SwitchCase, SymbolData, Type, Value, ValueDef,
};

const I32: Type = Type::I32;
const I64: Type = Type::I64;
const F32: Type = Type::F32;
const F64: Type = Type::F64;

fn val(v: Value) -> Operand {
    Operand::Value(v)
}

fn lit(x: i128) -> Operand {
    Operand::Const(Const::int(x))
}

fn flit(x: f64) -> Operand {
    Operand::Const(Const::float(x))
}

fn func(name: &str, params: &[Type], ret: Option<Type>) -> Function {
    Function::new(name, Signature::new(params.to_vec(), ret))
}

/// Gives value `v` the name `n`.
fn name(f: &mut Function, v: Value, n: &str) -> Value {
    let n = f.names.intern(n);
    f.values[v.index()].name = Some(n);
    v
}

/// Appends an instruction; returns its result (or a dummy when none).
fn ins(f: &mut Function, b: Block, op: Opcode, ty: Option<Type>, kind: InstKind) -> Value {
    let i = f.push_inst(b, op, ty, kind, None);
    f.insts[i.index()].result.unwrap_or(Value(u32::MAX))
}

fn un(f: &mut Function, b: Block, op: Opcode, ty: Type, a: Operand) -> Value {
    ins(f, b, op, Some(ty), InstKind::Unary { arg: a })
}

fn bin(f: &mut Function, b: Block, op: Opcode, ty: Type, a: Operand, c: Operand) -> Value {
    ins(f, b, op, Some(ty), InstKind::Binary { args: [a, c] })
}

fn ret(f: &mut Function, b: Block, v: Option<Operand>) {
    ins(f, b, Opcode::Ret, None, InstKind::Ret { value: v });
}

fn jmp(f: &mut Function, b: Block, to: Block, args: Vec<Operand>) {
    let dest = BlockCall {
        block: to,
        args: f.make_args(&args),
    };
    ins(f, b, Opcode::Jmp, None, InstKind::Jmp { dest });
}

fn br(f: &mut Function, b: Block, c: Operand, t: Block, e: Block) {
    let kind = InstKind::Br {
        cond: c,
        then_dest: BlockCall {
            block: t,
            args: OpList::EMPTY,
        },
        else_dest: BlockCall {
            block: e,
            args: OpList::EMPTY,
        },
    };
    ins(f, b, Opcode::Br, None, kind);
}

/// A module defining each function (exported) after the given extra
/// symbols.
fn module_of(funcs: Vec<Function>) -> Module {
    let mut m = Module::new("t.kir");
    for f in funcs {
        let sym = SymbolData {
            name: f.name.clone(),
            linkage: Linkage::Export,
            kind: SymbolKind::Func {
                sig: f.sig.clone(),
                body: None,
            },
        };
        let id = m.declare(sym, Loc::NONE).unwrap();
        m.define_func(id, f);
    }
    m
}

fn declare(m: &mut Module, name: &str, linkage: Linkage, kind: SymbolKind) -> SymId {
    let data = SymbolData {
        name: name.into(),
        linkage,
        kind,
    };
    m.declare(data, Loc::NONE).unwrap()
}

fn extern_func(m: &mut Module, name: &str, params: &[Type], ret: Option<Type>) -> SymId {
    let sig = Signature::new(params.to_vec(), ret);
    declare(
        m,
        name,
        Linkage::Import,
        SymbolKind::Func { sig, body: None },
    )
}

fn error_of(m: &Module) -> Diagnostic {
    match verify_module(m) {
        Err(Error::Verify(d)) => d,
        other => panic!("expected a verify error, got {other:?}"),
    }
}

fn msg(m: &Module) -> String {
    error_of(m).message
}

/// A one-block function `@f(params) -> ret` built by `body`, verified.
fn one_block(
    params: &[Type],
    ret_ty: Option<Type>,
    body: impl FnOnce(&mut Function, Block, &[Value]),
) -> Module {
    let mut f = func("f", params, ret_ty);
    let entry = f.new_block("entry");
    let ps = f.params.clone();
    body(&mut f, entry, &ps);
    module_of(vec![f])
}

fn e0(m: &str) -> String {
    format!("in @f, block entry, instruction 0: {m}")
}

// ---- valid programs ------------------------------------------------------

/// SPEC section 4's `@sum`.
fn sum() -> Function {
    let mut f = func("sum", &[I64], Some(I64));
    let p0 = f.params[0];
    let n = name(&mut f, p0, "n");
    let entry = f.new_block("entry");
    let lp = f.new_block("loop");
    let body = f.new_block("body");
    let exit = f.new_block("exit");
    let i = {
        let n = f.names.intern("i");
        f.add_block_param(lp, I64, Some(n))
    };
    let acc = {
        let n = f.names.intern("acc");
        f.add_block_param(lp, I64, Some(n))
    };
    let r = {
        let n = f.names.intern("r");
        f.add_block_param(exit, I64, Some(n))
    };
    jmp(&mut f, entry, lp, vec![lit(0), lit(0)]);
    let done = bin(&mut f, lp, Opcode::Sge, I64, val(i), val(n));
    let kind = InstKind::Br {
        cond: val(done),
        then_dest: BlockCall {
            block: exit,
            args: f.make_args(&[val(acc)]),
        },
        else_dest: BlockCall {
            block: body,
            args: OpList::EMPTY,
        },
    };
    ins(&mut f, lp, Opcode::Br, None, kind);
    let acc2 = bin(&mut f, body, Opcode::Add, I64, val(acc), val(i));
    let i2 = bin(&mut f, body, Opcode::Add, I64, val(i), lit(1));
    jmp(&mut f, body, lp, vec![val(i2), val(acc2)]);
    ret(&mut f, exit, Some(val(r)));
    f
}

#[test]
fn valid_sum_loop() {
    assert_eq!(verify_module(&module_of(vec![sum()])), Ok(()));
}

#[test]
fn valid_module_with_data_calls_and_switch() {
    let mut m = Module::new("t.kir");
    let put = extern_func(&mut m, "putchar", &[I32], Some(I32));
    let d = declare(
        &mut m,
        "tab",
        Linkage::Local,
        SymbolKind::Data { body: None },
    );
    let data = DataDef {
        readonly: true,
        values: vec![
            DataValue::Int {
                bytes: 1,
                values: vec![-128, 255],
            },
            DataValue::Int {
                bytes: 8,
                values: vec![-(1 << 63), (1 << 64) - 1],
            },
            DataValue::SymAddr {
                sym: put,
                addend: 4,
            },
            DataValue::Zero(16),
        ],
        locs: vec![],
    };
    m.define_data(d, data);
    let mut f = func("main", &[I32], Some(I32));
    let x = f.params[0];
    let entry = f.new_block("entry");
    let a = f.new_block("a");
    let dflt = f.new_block("dflt");
    let p = ins(&mut f, entry, Opcode::Addr, None, InstKind::Addr { sym: d });
    ins(
        &mut f,
        entry,
        Opcode::Store8,
        None,
        InstKind::Store {
            args: [lit(-1), val(p)],
            offset: -3,
        },
    );
    ins(
        &mut f,
        entry,
        Opcode::Store32,
        None,
        InstKind::Store {
            args: [val(x), val(p)],
            offset: 1 << 40,
        },
    );
    let q = ins(
        &mut f,
        entry,
        Opcode::Alloca,
        None,
        InstKind::Alloca {
            size: 16,
            align: 16,
        },
    );
    let fp = ins(
        &mut f,
        entry,
        Opcode::Addr,
        None,
        InstKind::Addr { sym: put },
    );
    let fl = un(&mut f, entry, Opcode::Sitof, F64, val(x));
    let kind = InstKind::Call {
        callee: Callee::Indirect(val(fp)),
        args: f.make_args(&[val(fl), val(q)]),
    };
    ins(&mut f, entry, Opcode::Call, None, kind);
    let kind = InstKind::Call {
        callee: Callee::Direct(put),
        args: f.make_args(&[lit(0xffff_ffff)]),
    };
    ins(&mut f, entry, Opcode::Call, Some(I32), kind);
    let cases = vec![
        SwitchCase {
            key: Const::int(-1),
            block: a,
        },
        SwitchCase {
            key: Const::int(7),
            block: dflt,
        },
    ];
    let kind = InstKind::Switch {
        value: val(x),
        default: dflt,
        cases: f.make_cases(&cases),
    };
    ins(&mut f, entry, Opcode::Switch, Some(I32), kind);
    ret(&mut f, a, Some(lit(1)));
    let z = un(&mut f, dflt, Opcode::Copy, F32, lit(3));
    let zi = un(&mut f, dflt, Opcode::Ftosi, I32, val(z));
    ret(&mut f, dflt, Some(val(zi)));
    let id = declare(
        &mut m,
        "main",
        Linkage::Export,
        SymbolKind::Func {
            sig: f.sig.clone(),
            body: None,
        },
    );
    m.define_func(id, f);
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn unreachable_block_may_use_params_and_its_own_values() {
    let m = one_block(&[I32], Some(I32), |f, entry, ps| {
        ret(f, entry, Some(val(ps[0])));
        let dead = f.new_block("dead");
        let x = bin(f, dead, Opcode::Add, I32, val(ps[0]), lit(1));
        ret(f, dead, Some(val(x)));
    });
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn twenty_thousand_instructions() {
    let mut f = func("big", &[I64], Some(I64));
    let p0 = f.params[0];
    let mut acc = p0;
    let mut b = f.new_block("entry");
    for k in 0..20_000 {
        if k % 100 == 99 {
            let next = f.new_block(&format!("b{k}"));
            let p = f.add_block_param(next, I64, None);
            jmp(&mut f, b, next, vec![val(acc)]);
            b = next;
            acc = p;
        } else {
            acc = bin(&mut f, b, Opcode::Add, I64, val(acc), val(p0));
        }
    }
    ret(&mut f, b, Some(val(acc)));
    assert!(f.num_insts() > 20_000);
    assert_eq!(verify_module(&module_of(vec![f])), Ok(()));
}

// ---- types ---------------------------------------------------------------

#[test]
fn suffix_not_allowed_for_opcode() {
    let m = one_block(&[], None, |f, b, _| {
        bin(f, b, Opcode::Add, F32, lit(1), lit(2));
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("'add' cannot take type suffix f32 (expected i32 or i64)")
    );
    let m = one_block(&[I64], None, |f, b, ps| {
        ins(
            f,
            b,
            Opcode::Load32s,
            Some(I32),
            InstKind::Load {
                ptr: val(ps[0]),
                offset: 0,
            },
        );
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("'load32s' cannot take type suffix i32 (expected i64)")
    );
    let m = one_block(&[I64], None, |f, b, ps| {
        un(f, b, Opcode::Sext, I32, val(ps[0]));
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("'sext' cannot take type suffix i32 (expected i64)")
    );
}

#[test]
fn missing_and_forbidden_suffix() {
    let m = one_block(&[], None, |f, b, _| {
        ins(
            f,
            b,
            Opcode::Add,
            None,
            InstKind::Binary {
                args: [lit(1), lit(2)],
            },
        );
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'add' needs a type suffix (i32 or i64)"));
    let m = one_block(&[I64], None, |f, b, ps| {
        ins(
            f,
            b,
            Opcode::Store8,
            Some(I64),
            InstKind::Store {
                args: [lit(1), val(ps[0])],
                offset: 0,
            },
        );
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'store8' takes no type suffix"));
    let m = one_block(&[], None, |f, b, _| {
        ins(f, b, Opcode::Ret, Some(I32), InstKind::Ret { value: None });
    });
    assert_eq!(msg(&m), e0("'ret' takes no type suffix"));
}

#[test]
fn operand_types() {
    let m = one_block(&[I64], None, |f, b, ps| {
        let a = name(f, ps[0], "a");
        bin(f, b, Opcode::Add, I32, lit(1), val(a));
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("%a has type i64, expected i32"));
    let m = one_block(&[I64], None, |f, b, ps| {
        let c = name(f, ps[0], "c");
        let t = f.new_block("t");
        br(f, b, val(c), t, t);
        ret(f, t, None);
    });
    assert_eq!(
        msg(&m),
        e0("branch condition %c has type i64, expected i32")
    );
    let m = one_block(&[I64], None, |f, b, ps| {
        let c = name(f, ps[0], "c");
        ins(
            f,
            b,
            Opcode::Select,
            Some(F64),
            InstKind::Select {
                args: [val(c), lit(1), lit(2)],
            },
        );
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("select condition %c has type i64, expected i32")
    );
    let m = one_block(&[I32], None, |f, b, ps| {
        let c = name(f, ps[0], "c");
        ins(
            f,
            b,
            Opcode::Select,
            Some(F64),
            InstKind::Select {
                args: [val(c), lit(1), val(c)],
            },
        );
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("%c has type i32, expected f64"));
}

#[test]
fn conversion_source_types() {
    let cases: &[(Opcode, Type, Type, &str)] = &[
        (Opcode::Bitcast, F64, F64, "expected i64"),
        (Opcode::Bitcast, I32, I32, "expected f32"),
        (Opcode::Sext, I64, I64, "expected i32"),
        (Opcode::Zext, I64, F32, "expected i32"),
        (Opcode::Trunc, I32, I32, "expected i64"),
        (Opcode::Fext, F64, F64, "expected f32"),
        (Opcode::Ftrunc, F32, F32, "expected f64"),
        (Opcode::Sitof, F64, F32, "expected i32 or i64"),
        (Opcode::Uitof, F32, F64, "expected i32 or i64"),
        (Opcode::Ftosi, I32, I64, "expected f32 or f64"),
        (Opcode::Ftoui, I64, I32, "expected f32 or f64"),
    ];
    for &(op, ty, src, want) in cases {
        let m = one_block(&[src], None, |f, b, ps| {
            let x = name(f, ps[0], "x");
            un(f, b, op, ty, val(x));
            ret(f, b, None);
        });
        assert_eq!(msg(&m), e0(&format!("%x has type {src}, {want}")), "{op:?}");
    }
    // And the accepted forms.
    let m = one_block(&[I32, I64, F32, F64], None, |f, b, ps| {
        un(f, b, Opcode::Sitof, F32, val(ps[1]));
        un(f, b, Opcode::Uitof, F64, val(ps[0]));
        un(f, b, Opcode::Ftosi, I64, val(ps[2]));
        un(f, b, Opcode::Ftoui, I32, val(ps[3]));
        un(f, b, Opcode::Bitcast, F64, val(ps[1]));
        un(f, b, Opcode::Bitcast, I32, val(ps[2]));
        ret(f, b, None);
    });
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn ret_matches_return_type() {
    let m = one_block(&[I32], Some(I64), |f, b, ps| {
        let x = name(f, ps[0], "x");
        ret(f, b, Some(val(x)));
    });
    assert_eq!(msg(&m), e0("%x has type i32, expected i64"));
    let m = one_block(&[], Some(I64), |f, b, _| ret(f, b, None));
    assert_eq!(msg(&m), e0("'@f' returns i64, so 'ret' needs a value"));
    let m = one_block(&[], None, |f, b, _| ret(f, b, Some(lit(0))));
    assert_eq!(
        msg(&m),
        e0("'@f' returns nothing, so 'ret' cannot have a value")
    );
    let m = one_block(&[], Some(F32), |f, b, _| ret(f, b, Some(lit(-7))));
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn result_rules() {
    // A built instruction whose result has the wrong type.
    let m = one_block(&[], None, |f, b, _| {
        let r = bin(f, b, Opcode::Eq, I64, lit(1), lit(2));
        f.values[r.index()].ty = I64;
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("result %v0 has type i64, expected i32"));
    let m = one_block(&[], None, |f, b, _| {
        bin(f, b, Opcode::Add, I32, lit(1), lit(2));
        f.insts[0].result = None;
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'add' needs a result"));
    let m = one_block(&[], None, |f, b, _| {
        let v = f.new_value(I32, ValueDef::Inst(Inst(0)), None);
        ret(f, b, None);
        f.insts[0].result = Some(v);
    });
    assert_eq!(msg(&m), e0("'ret' has no result"));
}

// ---- literals ------------------------------------------------------------

#[test]
fn integer_literals_must_fit() {
    for (ty, good, bad) in [
        (I32, [-(1 << 31), (1 << 32) - 1], [-(1 << 31) - 1, 1 << 32]),
        (I64, [-(1 << 63), (1 << 64) - 1], [-(1 << 63) - 1, 1 << 64]),
    ] {
        let m = one_block(&[], None, |f, b, _| {
            bin(f, b, Opcode::Add, ty, lit(good[0]), lit(good[1]));
            ret(f, b, None);
        });
        assert_eq!(verify_module(&m), Ok(()));
        for x in bad {
            let m = one_block(&[], None, |f, b, _| {
                bin(f, b, Opcode::Add, ty, lit(0), lit(x));
                ret(f, b, None);
            });
            assert_eq!(msg(&m), e0(&format!("literal {x} does not fit {ty}")));
        }
    }
}

#[test]
fn float_literal_in_integer_position() {
    let m = one_block(&[], None, |f, b, _| {
        bin(f, b, Opcode::Mul, I32, lit(2), flit(1.5));
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("float literal 1.5 where i32 is expected"));
    let m = one_block(&[], None, |f, b, _| {
        bin(f, b, Opcode::Fmul, F32, lit(2), flit(1.5));
        ret(f, b, None);
    });
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn literals_not_allowed_where_the_type_is_open() {
    for op in [Opcode::Sitof, Opcode::Uitof] {
        let m = one_block(&[], None, |f, b, _| {
            un(f, b, op, F64, lit(1));
            ret(f, b, None);
        });
        let want = format!(
            "the operand of '{}' must be a value, not a literal",
            op.name()
        );
        assert_eq!(msg(&m), e0(&want));
    }
    for op in [Opcode::Ftosi, Opcode::Ftoui] {
        let m = one_block(&[], None, |f, b, _| {
            un(f, b, op, I32, flit(1.0));
            ret(f, b, None);
        });
        let want = format!(
            "the operand of '{}' must be a value, not a literal",
            op.name()
        );
        assert_eq!(msg(&m), e0(&want));
    }
    let m = one_block(&[I64], None, |f, b, ps| {
        let kind = InstKind::Call {
            callee: Callee::Indirect(val(ps[0])),
            args: f.make_args(&[lit(1)]),
        };
        ins(f, b, Opcode::Call, None, kind);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("arguments of an indirect call must be values, not literals")
    );
    let m = one_block(&[], None, |f, b, _| {
        let kind = InstKind::Call {
            callee: Callee::Indirect(lit(4096)),
            args: OpList::EMPTY,
        };
        ins(f, b, Opcode::Call, None, kind);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("the callee of an indirect call must be a value, not a literal")
    );
}

#[test]
fn narrow_store_value_literal_is_i64() {
    let store = |x: i128| {
        one_block(&[I64], None, move |f, b, ps| {
            let args = [lit(x), val(ps[0])];
            ins(
                f,
                b,
                Opcode::Store16,
                None,
                InstKind::Store { args, offset: 0 },
            );
            ret(f, b, None);
        })
    };
    assert_eq!(verify_module(&store((1 << 64) - 1)), Ok(()));
    assert_eq!(
        msg(&store(1 << 64)),
        e0("literal 18446744073709551616 does not fit i64")
    );
    // A float value is not an integer.
    let m = one_block(&[I64, F64], None, |f, b, ps| {
        let v = name(f, ps[1], "v");
        ins(
            f,
            b,
            Opcode::Store8,
            None,
            InstKind::Store {
                args: [val(v), val(ps[0])],
                offset: 0,
            },
        );
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("%v has type f64, expected i32 or i64"));
}

fn data_module(values: Vec<DataValue>, locs: Vec<Loc>) -> Module {
    let mut m = Module::new("t.kir");
    let d = declare(
        &mut m,
        "d",
        Linkage::Export,
        SymbolKind::Data { body: None },
    );
    m.define_data(
        d,
        DataDef {
            readonly: false,
            values,
            locs,
        },
    );
    m
}

#[test]
fn data_integers_fit_their_width() {
    let int = |bytes: u8, values: Vec<i128>| DataValue::Int { bytes, values };
    let ok = data_module(
        vec![
            int(2, vec![-32768, 65535]),
            int(4, vec![-(1 << 31), (1 << 32) - 1]),
        ],
        vec![],
    );
    assert_eq!(verify_module(&ok), Ok(()));
    let m = data_module(vec![int(8, vec![1]), int(1, vec![1, 256, 3])], vec![]);
    assert_eq!(msg(&m), "in data @d, entry 1: value 256 does not fit i8");
    let m = data_module(vec![int(2, vec![-32769])], vec![Loc::new(4, 12)]);
    let d = error_of(&m);
    assert_eq!(
        (d.loc, d.message.as_str()),
        (Loc::new(4, 12), "value -32769 does not fit i16")
    );
    let m = data_module(vec![int(3, vec![0])], vec![]);
    assert_eq!(
        msg(&m),
        "in data @d, entry 0: invalid integer width of 3 bytes"
    );
}

#[test]
fn data_symbol_entries_name_existing_symbols() {
    let m = data_module(
        vec![DataValue::SymAddr {
            sym: SymId(9),
            addend: 0,
        }],
        vec![],
    );
    assert_eq!(
        msg(&m),
        "in data @d, entry 0: address of missing symbol sym9"
    );
    let m = data_module(
        vec![DataValue::SymAddr {
            sym: SymId(0),
            addend: -8,
        }],
        vec![],
    );
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn data_size_limit() {
    let m = data_module(vec![DataValue::Zero(MAX_DATA), DataValue::Zero(1)], vec![]);
    assert_eq!(
        msg(&m),
        "data '@d' is too large (2147483649 bytes; the limit is 2147483648)"
    );
    let m = data_module(vec![DataValue::Zero(MAX_DATA)], vec![]);
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn alloca_size_and_alignment() {
    let alloca = |size: u64, align: u64| {
        one_block(&[], None, move |f, b, _| {
            ins(f, b, Opcode::Alloca, None, InstKind::Alloca { size, align });
            ret(f, b, None);
        })
    };
    for a in [1, 2, 4, 8, 16] {
        assert_eq!(verify_module(&alloca(0, a)), Ok(()));
    }
    assert_eq!(verify_module(&alloca(MAX_ALLOCA, 8)), Ok(()));
    for a in [0, 3, 32] {
        let want = format!("alloca alignment {a} is not a power of two up to 16");
        assert_eq!(msg(&alloca(8, a)), e0(&want));
    }
    assert_eq!(
        msg(&alloca(MAX_ALLOCA + 1, 8)),
        e0("alloca size 2147483649 exceeds the limit of 2147483648 bytes")
    );
}

// ---- structure -----------------------------------------------------------

#[test]
fn blocks_need_one_terminator_at_the_end() {
    let mut f = func("f", &[], None);
    f.new_block("entry");
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @f, block entry: block 'entry' is empty"
    );
    let m = one_block(&[], None, |f, b, _| {
        bin(f, b, Opcode::Add, I32, lit(1), lit(2));
    });
    assert_eq!(msg(&m), e0("block 'entry' does not end with a terminator"));
    let m = one_block(&[], None, |f, b, _| {
        ret(f, b, None);
        ins(f, b, Opcode::Trap, None, InstKind::Trap);
    });
    assert_eq!(
        msg(&m),
        "in @f, block entry, instruction 1: block 'entry' continues after its terminator"
    );
    let f = func("f", &[], None);
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @f: function '@f' has no blocks"
    );
}

#[test]
fn entry_block_has_no_params_and_no_preds() {
    let m = one_block(&[], None, |f, b, _| {
        f.add_block_param(b, I32, None);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        "in @f, block entry: entry block 'entry' cannot have parameters"
    );
    let m = one_block(&[], None, |f, b, _| {
        let l = f.new_block("l");
        jmp(f, b, l, vec![]);
        jmp(f, l, b, vec![]);
    });
    assert_eq!(
        msg(&m),
        "in @f, block l, instruction 0: entry block 'entry' cannot be a branch target"
    );
}

#[test]
fn block_argument_counts_and_types() {
    let mk = |args: Vec<Operand>| {
        one_block(&[I64], None, move |f, b, _| {
            let l = f.new_block("l");
            f.add_block_param(l, I32, None);
            f.add_block_param(l, F64, None);
            jmp(f, b, l, args);
            ret(f, l, None);
        })
    };
    assert_eq!(verify_module(&mk(vec![lit(-1), lit(2)])), Ok(()));
    assert_eq!(
        msg(&mk(vec![lit(1)])),
        e0("block 'l' takes 2 arguments, but 1 given")
    );
    assert_eq!(
        msg(&mk(vec![lit(1), lit(2), lit(3)])),
        e0("block 'l' takes 2 arguments, but 3 given")
    );
    assert_eq!(
        msg(&mk(vec![flit(0.5), lit(2)])),
        e0("float literal 0.5 where i32 is expected")
    );
    assert_eq!(
        msg(&mk(vec![val(Value(0)), lit(2)])),
        e0("%v0 has type i64, expected i32")
    );
    // `br` arguments: operand locations follow the condition.
    let mut f = func("f", &[I32], None);
    let b = f.new_block("entry");
    let l = f.new_block("l");
    let p = f.add_block_param(l, I32, None);
    let kind = InstKind::Br {
        cond: val(f.params[0]),
        then_dest: BlockCall {
            block: l,
            args: f.make_args(&[val(f.params[0])]),
        },
        else_dest: BlockCall {
            block: l,
            args: f.make_args(&[flit(2.0)]),
        },
    };
    let br_inst = f.push_inst(b, Opcode::Br, None, kind, None);
    ret(&mut f, l, None);
    let _ = p;
    // `br %c, l(%c), l(2.0)`: the tokens after the mnemonic in order.
    assert_eq!(br_inst.index(), 0);
    let mut sm = SrcMapBuilder::default();
    sm.start_inst(Loc::new(2, 5));
    for col in [8, 12, 14, 18, 22] {
        sm.push_token(Loc::new(2, col));
    }
    f.srcmap = sm.build();
    let d = error_of(&module_of(vec![f]));
    assert_eq!(d.loc, Loc::new(2, 22));
    assert_eq!(d.message, "float literal 2.0 where i32 is expected");
}

#[test]
fn switch_rules() {
    let mk = |ty: Type, keys: Vec<i128>, param: bool| {
        one_block(&[ty], None, move |f, b, ps| {
            let t = f.new_block("t");
            let d = f.new_block("d");
            if param {
                f.add_block_param(t, I32, None);
            }
            let cases: Vec<SwitchCase> = keys
                .iter()
                .map(|&k| SwitchCase {
                    key: Const::int(k),
                    block: t,
                })
                .collect();
            let kind = InstKind::Switch {
                value: val(ps[0]),
                default: d,
                cases: f.make_cases(&cases),
            };
            ins(f, b, Opcode::Switch, Some(ty), kind);
            ret(f, t, None);
            ret(f, d, None);
        })
    };
    assert_eq!(verify_module(&mk(I32, vec![1, 2, -1], false)), Ok(()));
    assert_eq!(
        msg(&mk(I32, vec![1, 2, 1], false)),
        e0("duplicate switch key 1")
    );
    assert_eq!(
        msg(&mk(I32, vec![-1, 0xffff_ffff], false)),
        e0("switch key 4294967295 duplicates key -1 (equal as i32)")
    );
    assert_eq!(
        verify_module(&mk(I64, vec![-1, 0xffff_ffff], false)),
        Ok(())
    );
    assert_eq!(
        msg(&mk(I32, vec![1 << 32], false)),
        e0("literal 4294967296 does not fit i32")
    );
    assert_eq!(
        msg(&mk(I32, vec![5], true)),
        e0("switch target 't' cannot have parameters")
    );
    assert_eq!(
        msg(&mk(F32, vec![5], false)),
        e0("'switch' cannot take type suffix f32 (expected i32 or i64)")
    );
    // A default target with parameters.
    let m = one_block(&[I32], None, |f, b, ps| {
        let d = f.new_block("d");
        f.add_block_param(d, I32, None);
        let kind = InstKind::Switch {
            value: val(ps[0]),
            default: d,
            cases: CaseList::default(),
        };
        ins(f, b, Opcode::Switch, Some(I32), kind);
        ret(f, d, None);
    });
    assert_eq!(msg(&m), e0("switch target 'd' cannot have parameters"));
    // The switched value has the suffix type.
    let m = one_block(&[I64], None, |f, b, ps| {
        let d = f.new_block("d");
        let kind = InstKind::Switch {
            value: val(ps[0]),
            default: d,
            cases: CaseList::default(),
        };
        ins(f, b, Opcode::Switch, Some(I32), kind);
        ret(f, d, None);
    });
    assert_eq!(msg(&m), e0("%v0 has type i64, expected i32"));
}

#[test]
fn branch_to_missing_block() {
    let m = one_block(&[], None, |f, b, _| jmp(f, b, Block(7), vec![]));
    assert_eq!(msg(&m), e0("branch to missing block7"));
}

// ---- SSA -----------------------------------------------------------------

#[test]
fn use_must_be_dominated() {
    // Diamond: a value from one arm used at the join.
    let m = one_block(&[I32], Some(I32), |f, entry, ps| {
        let t = f.new_block("t");
        let e = f.new_block("e");
        let j = f.new_block("j");
        br(f, entry, val(ps[0]), t, e);
        let x = bin(f, t, Opcode::Add, I32, val(ps[0]), lit(1));
        name(f, x, "x");
        jmp(f, t, j, vec![]);
        jmp(f, e, j, vec![]);
        ret(f, j, Some(val(x)));
    });
    assert_eq!(
        msg(&m),
        "in @f, block j, instruction 0: use of %x is not dominated by its definition"
    );
    // Same block, used before its definition (and by itself).
    let m = one_block(&[], Some(I32), |f, b, _| {
        let y = Value(1);
        let x = bin(f, b, Opcode::Add, I32, val(y), lit(1));
        let y2 = bin(f, b, Opcode::Add, I32, val(x), lit(1));
        assert_eq!(y, y2);
        ret(f, b, Some(val(y)));
    });
    assert_eq!(msg(&m), e0("use of %v1 is not dominated by its definition"));
    let m = one_block(&[], Some(I32), |f, b, _| {
        let x = bin(f, b, Opcode::Add, I32, val(Value(0)), lit(1));
        ret(f, b, Some(val(x)));
    });
    assert_eq!(msg(&m), e0("use of %v0 is not dominated by its definition"));
    // A loop-carried value must come through a block parameter.
    let m = one_block(&[], None, |f, entry, _| {
        let h = f.new_block("h");
        jmp(f, entry, h, vec![]);
        let later = Value(1);
        let a = bin(f, h, Opcode::Add, I32, val(later), lit(1));
        let b2 = bin(f, h, Opcode::Add, I32, val(a), lit(1));
        assert_eq!(b2, later);
        jmp(f, h, h, vec![]);
    });
    assert_eq!(
        msg(&m),
        "in @f, block h, instruction 0: use of %v1 is not dominated by its definition"
    );
    // Dominance through a loop header is fine.
    assert_eq!(verify_module(&module_of(vec![sum()])), Ok(()));
}

#[test]
fn unreachable_block_uses() {
    let m = one_block(&[], Some(I32), |f, entry, _| {
        let x = bin(f, entry, Opcode::Add, I32, lit(1), lit(2));
        ret(f, entry, Some(val(x)));
        let dead = f.new_block("dead");
        ret(f, dead, Some(val(x)));
    });
    assert_eq!(
        msg(&m),
        "in @f, block dead, instruction 0: use of %v0 is not dominated by its definition"
    );
    // Values flowing between unreachable blocks are rejected too.
    let m = one_block(&[], Some(I32), |f, entry, _| {
        ret(f, entry, Some(lit(0)));
        let d1 = f.new_block("d1");
        let d2 = f.new_block("d2");
        let x = bin(f, d1, Opcode::Add, I32, lit(1), lit(2));
        jmp(f, d1, d2, vec![]);
        ret(f, d2, Some(val(x)));
    });
    assert_eq!(
        msg(&m),
        "in @f, block d2, instruction 0: use of %v0 is not dominated by its definition"
    );
}

#[test]
fn values_defined_once() {
    // Two instructions claiming one result value.
    let m = one_block(&[], None, |f, b, _| {
        let x = bin(f, b, Opcode::Add, I32, lit(1), lit(2));
        bin(f, b, Opcode::Add, I32, lit(1), lit(2));
        f.insts[1].result = Some(x);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        "in @f, block entry, instruction 1: %v0 is defined more than once"
    );
    // A block parameter reusing a function parameter.
    let m = one_block(&[I32], None, |f, b, ps| {
        let l = f.new_block("l");
        f.blocks[l.index()].params.push(ps[0]);
        jmp(f, b, l, vec![lit(0)]);
        ret(f, l, None);
    });
    assert_eq!(
        msg(&m),
        "in @f, block l: %v0 is not a valid parameter 0 of block 'l'"
    );
    // A use of a value that nothing defines.
    let m = one_block(&[], Some(I32), |f, b, _| ret(f, b, Some(val(Value(42)))));
    assert_eq!(msg(&m), e0("use of undefined value %v42"));
    // An instruction listed twice.
    let m = one_block(&[], None, |f, b, _| {
        ret(f, b, None);
        f.blocks[0].insts.push(Inst(0));
    });
    assert_eq!(
        msg(&m),
        "in @f, block entry, instruction 1: inst0 appears more than once"
    );
}

// ---- symbols and calls ---------------------------------------------------

fn call_module(build: impl FnOnce(&mut Function, Block, SymId, SymId)) -> Module {
    let mut m = Module::new("t.kir");
    let g = extern_func(&mut m, "g", &[I32, F64], Some(I64));
    let d = declare(
        &mut m,
        "d",
        Linkage::Import,
        SymbolKind::Data { body: None },
    );
    let mut f = func("f", &[I32, I64], None);
    let b = f.new_block("entry");
    build(&mut f, b, g, d);
    let id = declare(
        &mut m,
        "f",
        Linkage::Export,
        SymbolKind::Func {
            sig: f.sig.clone(),
            body: None,
        },
    );
    m.define_func(id, f);
    m
}

fn call(f: &mut Function, b: Block, ty: Option<Type>, callee: Callee, args: Vec<Operand>) {
    let args = f.make_args(&args);
    ins(f, b, Opcode::Call, ty, InstKind::Call { callee, args });
}

#[test]
fn direct_calls() {
    let ok = call_module(|f, b, g, _| {
        let x = f.params[0];
        call(f, b, Some(I64), Callee::Direct(g), vec![val(x), lit(2)]);
        call(f, b, Some(I64), Callee::Direct(g), vec![lit(1), flit(2.5)]);
        ret(f, b, None);
    });
    assert_eq!(verify_module(&ok), Ok(()));
    let m = call_module(|f, b, _, d| {
        call(f, b, None, Callee::Direct(d), vec![]);
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'@d' is not a function"));
    let m = call_module(|f, b, g, _| {
        call(f, b, Some(I64), Callee::Direct(g), vec![lit(1)]);
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'@g' takes 2 arguments, but 1 given"));
    let m = call_module(|f, b, g, _| {
        let y = f.params[1];
        let y = name(f, y, "y");
        call(f, b, Some(I64), Callee::Direct(g), vec![val(y), lit(1)]);
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("%y has type i64, expected i32"));
    let m = call_module(|f, b, g, _| {
        call(f, b, Some(I32), Callee::Direct(g), vec![lit(1), lit(1)]);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("call of '@g' has type suffix i32, but '@g' returns i64")
    );
    let m = call_module(|f, b, g, _| {
        call(f, b, None, Callee::Direct(g), vec![lit(1), lit(1)]);
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("call of '@g' needs type suffix i64 (its return type)")
    );
    let m = call_module(|f, b, _, _| {
        call(
            f,
            b,
            Some(I32),
            Callee::Direct(SymId(2)),
            vec![lit(1), lit(1)],
        );
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        e0("call of '@f' takes no type suffix ('@f' returns nothing)")
    );
    let m = call_module(|f, b, _, _| {
        call(f, b, None, Callee::Direct(SymId(9)), vec![]);
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("call of missing symbol sym9"));
}

#[test]
fn indirect_calls_and_addr() {
    let ok = call_module(|f, b, g, d| {
        let (x, y) = (f.params[0], f.params[1]);
        let p = ins(f, b, Opcode::Addr, None, InstKind::Addr { sym: g });
        ins(f, b, Opcode::Addr, None, InstKind::Addr { sym: d });
        ins(f, b, Opcode::Addr, None, InstKind::Addr { sym: SymId(2) });
        call(
            f,
            b,
            Some(F32),
            Callee::Indirect(val(p)),
            vec![val(x), val(y)],
        );
        call(f, b, None, Callee::Indirect(val(y)), vec![]);
        ret(f, b, None);
    });
    assert_eq!(verify_module(&ok), Ok(()));
    let m = call_module(|f, b, _, _| {
        let x = f.params[0];
        let x = name(f, x, "x");
        call(f, b, None, Callee::Indirect(val(x)), vec![]);
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("%x has type i32, expected i64"));
    let m = call_module(|f, b, _, _| {
        ins(f, b, Opcode::Addr, None, InstKind::Addr { sym: SymId(5) });
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("address of missing symbol sym5"));
}

#[test]
fn function_bodies_match_their_symbols() {
    let mut m = Module::new("t.kir");
    let mut f = func("f", &[I32], None);
    let b = f.new_block("entry");
    ret(&mut f, b, None);
    let sig = Signature::new(vec![I64], None);
    let id = declare(
        &mut m,
        "f",
        Linkage::Export,
        SymbolKind::Func { sig, body: None },
    );
    m.define_func(id, f);
    assert_eq!(
        msg(&m),
        "body of '@f' has signature (i32), but the symbol is declared (i64)"
    );
    let mut m = Module::new("t.kir");
    declare(
        &mut m,
        "f",
        Linkage::Local,
        SymbolKind::Func {
            sig: Signature::default(),
            body: None,
        },
    );
    assert_eq!(msg(&m), "function '@f' has no definition");
}

#[test]
fn names_are_unique() {
    let mut m = module_of(vec![sum()]);
    m.symbols.push(m.symbols[0].clone());
    m.symbol_locs.push(Loc::new(9, 6));
    let d = error_of(&m);
    assert_eq!(
        (d.loc, d.message.as_str()),
        (Loc::new(9, 6), "duplicate symbol '@sum'")
    );

    let mut f = sum();
    f.blocks[2].name = f.names.intern("loop");
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @sum, block loop: duplicate block label 'loop'"
    );
    let mut f = sum();
    let acc2 = f.insts[3].result.unwrap();
    {
        let n = f.names.intern("n");
        f.values[acc2.index()].name = Some(n);
    }
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @sum, block body, instruction 0: duplicate value name '%n'"
    );
    // Past a few symbols, through the table of names: the first repeat
    // in source order is the one reported.
    let text: String = (0..40)
        .map(|i| format!("func @f{i}() {{\nentry:\n    ret\n}}\n"))
        .collect();
    let mut m = crate::ir::parse::parse_module("t.kir", &text).unwrap();
    assert_eq!(verify_module(&m), Ok(()));
    for (i, at) in [(31, 12), (7, 11)] {
        let mut sym = m.symbols[i].clone();
        if let SymbolKind::Func { body, .. } = &mut sym.kind {
            *body = None;
        }
        sym.linkage = Linkage::Import;
        m.symbols.push(sym);
        m.symbol_locs.push(Loc::new(at, 1));
    }
    let d = error_of(&m);
    assert_eq!(
        (d.loc, d.message.as_str()),
        (Loc::new(12, 1), "duplicate symbol '@f31'")
    );
    // Past many symbols, sorted hashes first; a repeat is still worded
    // by the table, at the first one.
    let text: String = (0..=MANY_SYMBOLS)
        .map(|i| format!("func @f{i}() {{\nentry:\n    ret\n}}\n"))
        .collect();
    let mut m = crate::ir::parse::parse_module("t.kir", &text).unwrap();
    assert_eq!(verify_module(&m), Ok(()));
    m.symbols[MANY_SYMBOLS].name = "f5".into();
    m.funcs[MANY_SYMBOLS].name = "f5".into();
    let d = error_of(&m);
    let line = 4 * MANY_SYMBOLS as u32 + 1;
    assert_eq!(
        (d.loc, d.message.as_str()),
        (Loc::new(line, 6), "duplicate symbol '@f5'")
    );
    // Equal keys found within a run of equal top bits, in any order.
    let k = |top: u64, low: u64| top << 31 | low;
    assert!(distinct_keys(vec![k(3, 1), k(3, 2), k(1, 1), k(3, 4)]));
    assert!(!distinct_keys(vec![k(3, 1), k(3, 2), k(1, 1), k(3, 1)]));
    assert!(!distinct_keys(vec![k(9, 7), k(2, 0), k(9, 7)]));
    let mut f = sum();
    f.blocks[1].name = f.names.intern("a b");
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @sum, block a b: invalid block label 'a b'"
    );
    let mut f = sum();
    {
        let n = f.names.intern("17");
        f.values[0].name = Some(n);
    }
    assert_eq!(verify_module(&module_of(vec![f])), Ok(()));
}

// ---- locations and order -------------------------------------------------

#[test]
fn errors_are_located_at_the_offending_token() {
    let mut m = one_block(&[I64], None, |f, b, ps| {
        let kind = InstKind::Binary {
            args: [val(ps[0]), lit(1)],
        };
        let r = f.names.intern("r");
        f.push_inst(b, Opcode::Add, Some(I32), kind, Some(r));
        ret(f, b, None);
    });
    let f = &mut m.funcs[0];
    let mut sm = SrcMapBuilder::default();
    sm.start_inst(Loc::new(3, 10));
    sm.push_token(Loc::new(3, 18));
    sm.push_token(Loc::new(3, 22));
    sm.start_inst(Loc::NONE);
    f.srcmap = sm.build();
    let d = error_of(&m);
    assert_eq!(d.file, "t.kir");
    assert_eq!(d.loc, Loc::new(3, 18));
    assert_eq!(d.message, "%v0 has type i64, expected i32");
    assert_eq!(
        Error::Verify(d).to_string(),
        "t.kir:3:18: error: %v0 has type i64, expected i32"
    );
}

#[test]
fn first_error_in_source_order_wins() {
    // Block `a` (laid out first) has a type error; block `b` a literal
    // error: `a`'s is reported.
    let m = one_block(&[I64], None, |f, entry, ps| {
        let a = f.new_block("a");
        let b = f.new_block("b");
        br(f, entry, lit(1), a, b);
        bin(f, a, Opcode::Add, I32, val(ps[0]), lit(1 << 40));
        ret(f, a, None);
        bin(f, b, Opcode::Add, I32, lit(1 << 40), lit(0));
        ret(f, b, None);
    });
    assert_eq!(
        msg(&m),
        "in @f, block a, instruction 0: %v0 has type i64, expected i32"
    );
    // Within an instruction, operands are checked left to right.
    let m = one_block(&[I64], None, |f, b, ps| {
        bin(f, b, Opcode::Add, I32, lit(1 << 40), val(ps[0]));
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("literal 1099511627776 does not fit i32"));
    // Symbols in order: the first function's error comes first.
    let mut bad1 = func("a", &[], None);
    let b1 = bad1.new_block("entry");
    ret(&mut bad1, b1, Some(lit(1)));
    let mut bad2 = func("b", &[], None);
    bad2.new_block("entry");
    assert_eq!(
        msg(&module_of(vec![bad1, bad2])),
        "in @a, block entry, instruction 0: '@a' returns nothing, so 'ret' cannot have a value"
    );
}

#[test]
fn malformed_built_ir_does_not_panic() {
    // Operands of the wrong form for the opcode.
    let m = one_block(&[], None, |f, b, _| {
        ins(
            f,
            b,
            Opcode::Add,
            Some(I32),
            InstKind::Unary { arg: lit(1) },
        );
        ret(f, b, None);
    });
    assert_eq!(msg(&m), e0("'add' has operands of the wrong form"));
    // A block listing a missing instruction.
    let m = one_block(&[], None, |f, b, _| {
        ret(f, b, None);
        f.blocks[0].insts.insert(0, Inst(99));
    });
    assert_eq!(msg(&m), e0("missing instruction inst99"));
    let m = one_block(&[], None, |f, b, _| {
        ret(f, b, None);
        f.blocks[0].insts.push(Inst(99));
    });
    assert_eq!(
        msg(&m),
        "in @f, block entry, instruction 1: missing instruction inst99"
    );
    // A function whose parameter list disagrees with its signature.
    let mut f = func("f", &[I32], None);
    f.params.clear();
    f.blocks.push(BlockData {
        name: f.names.intern("entry"),
        params: Default::default(),
        insts: Default::default(),
    });
    assert_eq!(
        msg(&module_of(vec![f])),
        "in @f: 0 parameter values for 1 parameter types"
    );
}

#[test]
fn bodies_and_symbols_pair_up() {
    // An extern symbol with a body.
    let mut m = module_of(vec![sum()]);
    m.symbols[0].linkage = Linkage::Import;
    assert_eq!(msg(&m), "extern function '@sum' cannot have a definition");
    // A body no symbol points at.
    let mut m = module_of(vec![sum()]);
    m.funcs.push(sum());
    assert_eq!(msg(&m), "function body '@sum' is not attached to a symbol");
    // `verify_function` checks one body against its symbol.
    let mut bad = func("bad", &[], None);
    let b = bad.new_block("entry");
    ret(&mut bad, b, Some(lit(1)));
    let m = module_of(vec![sum(), bad]);
    assert_eq!(verify_function(&m, FuncId(0)), Ok(()));
    match verify_function(&m, FuncId(1)) {
        Err(Error::Verify(d)) => assert_eq!(
            d.message,
            "in @bad, block entry, instruction 0: '@bad' returns nothing, so 'ret' cannot have a value"
        ),
        other => panic!("{other:?}"),
    }
    assert!(verify_function(&m, FuncId(2)).is_err());
}

/// The verifier's buffers are kept per thread between modules: a module
/// gets the same verdict whatever this thread verified before.
#[test]
fn modules_verify_alike_after_other_modules() {
    let parse = |src: &str| crate::ir::parse::parse_module("t.kir", src).unwrap();
    let good = parse("func @f(%a: i32) -> i32 {\nentry:\n    %x = add.i32 %a, 1\n    ret %x\n}\n");
    let bad = parse(
        "func @f(%a: i32) -> i32 {\nentry:\n    br %a, l, r\nl:\n    %x = add.i32 %a, 1\n    \
         jmp r\nr:\n    ret %x\n}\n",
    );
    let bad_msg = verify_module(&bad).unwrap_err().to_string();
    assert!(bad_msg.contains("%x"), "{bad_msg}");
    for _ in 0..3 {
        verify_module(&good).unwrap();
        assert_eq!(verify_module(&bad).unwrap_err().to_string(), bad_msg);
        verify_module(&good).unwrap();
    }
}
