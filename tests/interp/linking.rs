//! Multi-module linking and every link error.

use super::build::*;

/// Module `b.kir` exporting `func @inc(%x: i64) -> i64` and data `@val`.
pub fn lib_module() -> Module {
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

/// `data @c = { i64 0 }` and `func @bump() -> i64` adding 1 to it.
fn counter_module() -> Module {
    let mut mb = Mb::new("a.kir");
    let c = mb.data(
        "c",
        Linkage::Export,
        vec![DataValue::Int {
            bytes: 8,
            values: vec![0],
        }],
    );
    let mut fb = Fb::new("bump", &[], Some(I64));
    let p = fb.addr(c);
    let x = fb.load(Opcode::Load, I64, p, 0);
    let x1 = fb.bin(Opcode::Add, I64, x, int(1));
    fb.store(Opcode::Store, Some(I64), x1, p, 0);
    fb.ret(Some(x1));
    mb.func(Linkage::Export, fb);
    mb.m
}

/// `func @twice() -> i64` calling an extern `@bump` twice and reading `@c`.
fn twice_module(bump_sig: Signature) -> Module {
    let mut mb = Mb::new("b.kir");
    let bump = mb.extern_func("bump", bump_sig);
    let c = mb.declare("c", Linkage::Import, SymbolKind::Data { body: None });
    let mut fb = Fb::new("twice", &[], Some(I64));
    fb.call(Some(I64), Callee::Direct(bump), vec![]);
    let f = fb.addr(bump);
    fb.call(Some(I64), Callee::Indirect(f), vec![]);
    let p = fb.addr(c);
    let v = fb.load(Opcode::Load, I64, p, 0);
    fb.ret(Some(v));
    mb.func(Linkage::Export, fb);
    mb.m
}

#[test]
fn modules_added_later_see_earlier_exports_and_data_persists() {
    let first = [counter_module()];
    let mut it = Interpreter::new(&first, &HostFunctions::new()).unwrap();
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(1)));
    it.add_modules(&[twice_module(sig(&[], Some(I64)))])
        .unwrap();
    assert_eq!(it.call("twice", &[]).unwrap(), Some(Vi64(3)));
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(4)));
    let addr = it.data_address("c").unwrap();
    // SAFETY: @c is an 8-byte data item the interpreter keeps alive.
    assert_eq!(unsafe { std::ptr::read(addr as usize as *const i64) }, 4);
}

#[test]
fn a_failed_addition_changes_nothing() {
    let first = [counter_module()];
    let mut it = Interpreter::new(&first, &HostFunctions::new()).unwrap();
    // Exporting a name an earlier module exports.
    let d = match it.add_modules(&[counter_module()]) {
        Err(Error::Link(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(d.message, "@c is already exported by module a.kir");
    // An extern disagreeing with the earlier definition.
    let d = match it.add_modules(&[twice_module(sig(&[I64], Some(I64)))]) {
        Err(Error::Link(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        d.message,
        "extern @bump has signature (i64) -> i64 but module a.kir defines () -> i64"
    );
    // A module that links but cannot be decoded (a block without a
    // terminator) is not added either.
    let mut bad = twice_module(sig(&[], Some(I64)));
    bad.funcs[0].blocks[0].insts.pop();
    assert!(matches!(it.add_modules(&[bad]), Err(Error::Verify(_))));
    assert_eq!(
        it.call("twice", &[]),
        Err(Error::Argument("no exported function @twice".into()))
    );
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(1)));
    it.add_modules(&[twice_module(sig(&[], Some(I64)))])
        .unwrap();
    assert_eq!(it.call("twice", &[]).unwrap(), Some(Vi64(3)));
}
