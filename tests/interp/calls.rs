//! Direct, indirect and host calls, deep and unbounded recursion, and
//! entry-point errors.

use super::build::*;

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
fn unbounded_recursion_is_a_stack_overflow_trap_not_a_crash() {
    let mut mb = Mb::new("r.kir");
    countdown(&mut mb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_call_depth_limit(10_000);
    match it.call("down", &[Vi64(-1)]) {
        Err(Error::Trap(t)) if t.code == TrapCode::StackOverflow => {}
        other => panic!("expected a stack overflow, got {other:?}"),
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
        Err(Error::Trap(t)) if t.code == TrapCode::StackOverflow => {}
        other => panic!("expected a stack overflow, got {other:?}"),
    }
}

#[test]
fn alloca_stack_exhaustion_is_a_stack_overflow() {
    let mut mb = Mb::new("r.kir");
    let mut fb = Fb::new("big", &[], Some(I64));
    let p = fb.alloca(1 << 40, 16);
    fb.ret(Some(p));
    mb.func(Linkage::Export, fb);
    match run_with(&[mb.m], &HostFunctions::new(), "big", &[]) {
        Err(Error::Trap(t)) if t.code == TrapCode::StackOverflow => {}
        other => panic!("expected a stack overflow, got {other:?}"),
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
    let modules = vec![crate::linking::lib_module()];
    let h = HostFunctions::new();
    std::thread::scope(|s| {
        let mut it = Interpreter::new(&modules, &h).unwrap();
        s.spawn(move || assert_eq!(it.call("inc", &[Vi64(1)]).unwrap(), Some(Vi64(2))))
            .join()
            .unwrap();
    });
}

#[test]
fn an_interrupt_from_another_thread_stops_a_loop_and_is_consumed() {
    let text = "func @spin(%n: i64) -> i64 {\nentry:\n    jmp l(0)\nl(%i: i64):\n    %j = add.i64 %i, 1\n    %c = slt.i64 %j, %n\n    br %c, l(%j), done\ndone:\n    ret %j\n}\n";
    let modules = [kiln::ir::parse::parse_module("spin.kir", text).unwrap()];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    let handle = it.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        handle.interrupt();
    });
    // i64::MAX iterations: only the interrupt ends it.
    assert_eq!(
        trap_code(it.call("spin", &[Vi64(i64::MAX)])),
        Some(TrapCode::Interrupted)
    );
    t.join().unwrap();
    // The request was consumed: the next call runs to its end.
    assert_eq!(it.call("spin", &[Vi64(10)]).unwrap(), Some(Vi64(10)));
    // A request made before a call interrupts that call.
    it.interrupt_handle().interrupt();
    assert_eq!(
        trap_code(it.call("spin", &[Vi64(1 << 20)])),
        Some(TrapCode::Interrupted)
    );
}

/// The trap code of a call's outcome, if it trapped.
fn trap_code<T>(r: kiln::Result<T>) -> Option<TrapCode> {
    r.err().and_then(|e| e.trap_code())
}
