//! The builder API: every opcode has a helper that makes the instruction
//! the text form would, symbols are declared consistently, and built modules
//! verify and run like parsed ones.

use kiln::host::HostFunctions;
use kiln::interp::Interpreter;
use kiln::ir::builder::{fconst, iconst, ModuleBuilder};
use kiln::ir::{
    Callee, DataValue, InstKind, Linkage, Opcode, Operand, Signature, SymbolKind, Type,
};
use kiln::{Error, Val};
use std::collections::HashSet;

fn sig(params: &[Type], ret: Option<Type>) -> Signature {
    Signature::new(params.to_vec(), ret)
}

#[test]
fn every_opcode_has_a_helper() {
    use Type::*;
    let mut mb = ModuleBuilder::new("all");
    let ext = mb.extern_func("ext", sig(&[I64], Some(F64))).unwrap();
    let void = mb.extern_func("void", sig(&[], None)).unwrap();
    let d = mb.data("d", vec![DataValue::Zero(8)]).unwrap();
    let mut f = mb.func("f", sig(&[I64, F64, I32], Some(I64))).unwrap();
    let (a, x, c) = (f.param(0), f.param(1), f.param(2));
    let b1 = f.create_block();
    let b2 = f.create_block();
    let b3 = f.create_block();
    let b4 = f.create_block();
    let p = f.append_block_param(b1, I64);

    let mut results = vec![
        f.copy(I64, a),
        f.neg(I64, a),
        f.not(I64, a),
        f.fneg(F64, x),
        f.fabs(F64, x),
        f.fsqrt(F64, x),
        f.sitof(F64, a),
        f.uitof(F32, c),
        f.ftosi(I64, x),
        f.ftoui(I32, x),
        f.bitcast(I64, x),
        f.sext(c),
        f.zext(c),
        f.trunc(a),
        f.ftrunc(x),
    ];
    let small = f.ftrunc(x);
    results.push(f.fext(small));
    results.extend([
        f.add(I64, a, 1),
        f.sub(I64, a, iconst(-2)),
        f.mul(I64, a, a),
        f.sdiv(I64, a, 3),
        f.udiv(I64, a, 3),
        f.srem(I64, a, 3),
        f.urem(I64, a, 3),
        f.and(I64, a, 0xff),
        f.or(I64, a, 1),
        f.xor(I64, a, a),
        f.shl(I64, a, 1),
        f.shr(I64, a, 1),
        f.sar(I64, a, 1),
        f.fadd(F64, x, 1.5),
        f.fsub(F64, x, fconst(0.5)),
        f.fmul(F64, x, x),
        f.fdiv(F64, x, 2.0),
        f.eq(I64, a, 0),
        f.ne(I64, a, 0),
        f.slt(I64, a, 0),
        f.sle(I64, a, 0),
        f.sgt(I64, a, 0),
        f.sge(I64, a, 0),
        f.ult(I64, a, 0),
        f.ule(I64, a, 0),
        f.ugt(I64, a, 0),
        f.uge(I64, a, 0),
        f.feq(F64, x, x),
        f.fne(F64, x, x),
        f.flt(F64, x, x),
        f.fle(F64, x, x),
        f.fgt(F64, x, x),
        f.fge(F64, x, x),
        f.select(I64, c, a, 7),
    ]);
    let mem = f.alloca(16, 8);
    let da = f.addr(d);
    results.extend([
        f.load(I64, mem, 0),
        f.load8s(I32, mem, 1),
        f.load8u(I64, mem, 2),
        f.load16s(I32, mem, 3),
        f.load16u(I64, mem, 4),
        f.load32s(mem, 5),
        f.load32u(da, 0),
    ]);
    f.store(I64, a, mem, 8);
    f.store8(c, mem, 0);
    f.store16(iconst(7), mem, 0);
    f.store32(a, da, 4);
    let r = f.call(ext, &[a.into()]).expect("ext returns f64");
    assert!(f.call(void, &[]).is_none());
    let fp = f.addr(ext);
    let r2 = f
        .call_indirect(Some(F64), fp, &[a.into()])
        .expect("typed result");
    assert!(f.call_indirect(None, fp, &[]).is_none());
    f.switch(I32, c, b1, &[(0, b2), (-1, b3)]);
    f.switch_to_block(b1);
    f.br(c, b2, &[], b4, &[]);
    f.switch_to_block(b2);
    f.jmp(b1, &[Operand::from(a)]);
    f.switch_to_block(b3);
    f.trap();
    f.switch_to_block(b4);
    f.ret(p);

    // Result types follow the opcode table.
    let func = f.function();
    assert_eq!(func.value_type(r), F64);
    assert_eq!(func.value_type(r2), F64);
    for v in &results {
        let ty = func.value_type(*v);
        let def_inst = match func.values[v.index()].def {
            kiln::ir::ValueDef::Inst(i) => func.inst(i),
            other => panic!("{v} is not an instruction result: {other:?}"),
        };
        let want = def_inst.opcode.info().result_type(def_inst.ty);
        assert_eq!(Some(ty), want, "{:?}", def_inst.opcode);
    }
    assert_eq!(func.value_type(results[17 + 16]), I32); // eq.i64
    assert_eq!(func.value_type(results[11]), I64); // sext
    let used: HashSet<Opcode> = func.insts.iter().map(|i| i.opcode).collect();
    let missing: Vec<_> = Opcode::ALL.iter().filter(|o| !used.contains(o)).collect();
    assert!(missing.is_empty(), "no helper exercised for {missing:?}");
    drop(f);

    let m = mb.finish_unverified().unwrap();
    let body = &m.funcs[0];
    assert_eq!(body.blocks.len(), 5);
    assert_eq!(body.blocks[1].params[..], [p]);
    // The direct call names the extern symbol; literals keep their value.
    assert!(body.insts.iter().any(|i| matches!(
        &i.kind,
        InstKind::Call { callee: Callee::Direct(s), .. } if *s == ext
    )));
    assert!(body.insts.iter().any(|i| i.opcode == Opcode::Sub
        && matches!(i.kind, InstKind::Binary { args: [_, Operand::Const(k)] } if k == iconst(-2))));
}

#[test]
fn symbols_are_declared_consistently() {
    let mut mb = ModuleBuilder::new("m");
    let s = mb
        .extern_func("putchar", sig(&[Type::I32], Some(Type::I32)))
        .unwrap();
    assert!(mb.extern_data("putchar").is_err(), "duplicate name");
    assert!(mb.define_func(s).is_err(), "an extern has no body");
    assert!(mb.data("bad name", vec![]).is_err());
    assert!(mb.data("9lives", vec![]).is_err());
    let d = mb
        .const_data("msg", vec![DataValue::Bytes(b"hi\0".to_vec())])
        .unwrap();
    assert!(mb.define_func(d).is_err(), "data is not a function");
    let g = mb
        .declare_func("g", Linkage::Local, sig(&[], None))
        .unwrap();
    assert_eq!(mb.symbol("g"), Some(g));
    {
        let mut f = mb.define_func(g).unwrap();
        f.ret_void();
    }
    assert!(mb.define_func(g).is_err(), "already defined");
    let m = mb.finish_unverified().unwrap();
    assert!(matches!(
        m.sym(g).kind,
        SymbolKind::Func { body: Some(_), .. }
    ));
    assert!(m.datas[0].readonly);
    assert_eq!(m.sym(d).linkage, Linkage::Export);
}

#[test]
fn a_declared_function_needs_a_body() {
    let mut mb = ModuleBuilder::new("m");
    mb.declare_func("f", Linkage::Export, sig(&[], None))
        .unwrap();
    let e = mb.finish_unverified().unwrap_err();
    assert!(e.to_string().contains("@f"), "{e}");
}

fn fib_module() -> kiln::Result<kiln::ir::Module> {
    use Type::I64;
    let mut mb = ModuleBuilder::new("fib");
    let mut f = mb.func("fib", sig(&[I64], Some(I64)))?;
    let me = f.sym();
    let n = f.param(0);
    let small = f.create_block();
    let big = f.create_block();
    let c = f.slt(I64, n, 2);
    f.br(c, small, &[], big, &[]);
    f.switch_to_block(small);
    f.ret(n);
    f.switch_to_block(big);
    let n1 = f.sub(I64, n, 1);
    let n2 = f.sub(I64, n, 2);
    let a = f.call(me, &[n1.into()]).unwrap_or(n1);
    let b = f.call(me, &[n2.into()]).unwrap_or(n2);
    let s = f.add(I64, a, b);
    f.ret(s);
    f.finish();
    mb.finish()
}

#[test]
fn built_module_verifies_and_runs() {
    let m = [fib_module().unwrap()];
    let mut interp = Interpreter::new(&m, &HostFunctions::new()).unwrap();
    assert_eq!(
        interp.call("fib", &[Val::I64(10)]).unwrap(),
        Some(Val::I64(55))
    );
}

#[test]
fn finish_reports_verifier_errors() {
    let mut mb = ModuleBuilder::new("bad");
    let mut f = mb.func("f", sig(&[Type::I64], Some(Type::I32))).unwrap();
    let n = f.param(0);
    f.ret(n); // an i64 where the signature says i32
    f.finish();
    let e = mb.finish().unwrap_err();
    assert!(matches!(e, Error::Verify(_)), "{e:?}");
}

#[test]
fn built_module_prints_and_parses_back() {
    let m = fib_module().unwrap();
    let text = kiln::ir::print::print_module(&m);
    let back =
        kiln::ir::parse::parse_module("fib.kir", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    kiln::ir::verify::verify_module(&back).unwrap();
    assert_eq!(kiln::ir::print::print_module(&back), text);
    let mods = [back];
    let mut interp = Interpreter::new(&mods, &HostFunctions::new()).unwrap();
    assert_eq!(
        interp.call("fib", &[Val::I64(15)]).unwrap(),
        Some(Val::I64(610))
    );
}

/// Data items, `addr`, narrow loads, a loop with block parameters and an
/// extern call into a host function that records what it is given.
#[test]
fn built_hello_calls_the_host() {
    use std::sync::{Arc, Mutex};
    use Type::{I32, I64};
    let mut mb = ModuleBuilder::new("hello");
    let putc = mb.extern_func("putc", sig(&[I32], None)).unwrap();
    let msg = mb
        .local_const_data("msg", vec![DataValue::Bytes(b"hey\0".to_vec())])
        .unwrap();
    let mut f = mb.func("main", sig(&[], Some(I64))).unwrap();
    let lp = f.create_block();
    let at = f.append_block_param(lp, I64);
    let body = f.create_block();
    let done = f.create_block();
    let p = f.addr(msg);
    f.jmp(lp, &[p.into()]);
    f.switch_to_block(lp);
    let c = f.load8u(I32, at, 0);
    f.br(c, body, &[], done, &[]);
    f.switch_to_block(body);
    f.call(putc, &[c.into()]);
    let next = f.add(I64, at, 1);
    f.jmp(lp, &[next.into()]);
    f.switch_to_block(done);
    let n = f.sub(I64, at, p);
    f.ret(n);
    f.finish();
    let mods = [mb.finish().unwrap()];

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut host = HostFunctions::new();
    let sink = seen.clone();
    host.register("putc", sig(&[I32], None), move |args| {
        sink.lock().unwrap().push(args[0]);
        Ok(None)
    });
    let mut interp = Interpreter::new(&mods, &host).unwrap();
    assert_eq!(interp.call("main", &[]).unwrap(), Some(Val::I64(3)));
    let chars: Vec<Val> = b"hey".iter().map(|&b| Val::I32(b as i32)).collect();
    assert_eq!(*seen.lock().unwrap(), chars);
}
