//! Lazy modules (compile on first call through stubs) and hot
//! redefinition, through the engine: what is compiled when, concurrent
//! first calls, errors from lazy compiles, redefinition while the old body
//! runs, removal.

use kiln::registry::ModuleState;
use kiln::{Compile, Engine, Error, Val};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

const LIB: &str = "\
data @base = { i64 100 }
local func @twice(%x: i64) -> i64 {
entry:
    %y = add.i64 %x, %x
    ret %y
}
func @f(%x: i64) -> i64 {
entry:
    %t = call.i64 @twice(%x)
    %p = addr @base
    %b = load.i64 %p
    %r = add.i64 %t, %b
    ret %r
}
func @g(%x: i64) -> i64 {
entry:
    %r = call.i64 @f(%x)
    %s = add.i64 %r, 1
    ret %s
}
func @unused(%x: i64) -> i64 {
entry:
    ret %x
}
";

fn compiled(e: &Engine) -> u64 {
    e.stats().unwrap().modules_compiled
}

#[test]
fn nothing_is_compiled_until_a_stub_is_called_then_only_what_runs() {
    let e = Engine::default();
    let id = e.add_module_text_lazy("lib.kir", LIB).unwrap();
    assert_eq!(compiled(&e), 0);
    assert_eq!(e.module_state(id).unwrap(), Some(ModuleState::Added));
    // Looking a function up compiles nothing: its address is its stub.
    let (addr, _) = e.function_address("g").unwrap();
    assert_ne!(addr, 0);
    assert_eq!(compiled(&e), 0);
    assert_eq!(e.call("g", &[Val::I64(5)]).unwrap(), Some(Val::I64(111)));
    // g, f, twice and the data module; not @unused.
    assert_eq!(compiled(&e), 4);
    assert_eq!(e.call("g", &[Val::I64(1)]).unwrap(), Some(Val::I64(103)));
    assert_eq!(e.call("f", &[Val::I64(1)]).unwrap(), Some(Val::I64(102)));
    assert_eq!(compiled(&e), 4, "later calls compile nothing");
    assert_eq!(e.function_address("g").unwrap().0, addr, "the stub stays");
    assert_eq!(e.module_state(id).unwrap(), Some(ModuleState::Added));
    e.finalize_module(id).unwrap();
    assert_eq!(compiled(&e), 5);
    assert_eq!(e.module_state(id).unwrap(), Some(ModuleState::Finalized));
    assert_eq!(e.call("unused", &[Val::I64(9)]).unwrap(), Some(Val::I64(9)));
    assert!(matches!(
        e.call("twice", &[Val::I64(1)]),
        Err(Error::Argument(_))
    ));
}

#[test]
fn typed_pointers_to_lazy_functions_compile_on_their_first_call() {
    let e = Engine::default();
    e.add_module_text_lazy("lib.kir", LIB).unwrap();
    // SAFETY: the module is never removed; no redefinition runs.
    let g: extern "C" fn(i64) -> i64 = unsafe { e.get_function("g").unwrap() };
    assert_eq!(compiled(&e), 0);
    assert_eq!(g(10), 121);
    assert_eq!(compiled(&e), 4);
    assert_eq!(g(0), 101);
}

#[test]
fn eager_modules_call_lazy_functions_through_their_stubs() {
    let e = Engine::default();
    let lib = e.add_module_text_lazy("lib.kir", LIB).unwrap();
    let user = e
        .add_module_text(
            "user.kir",
            "extern func @g(i64) -> i64\nextern data @base\n\
             func @user(%x: i64) -> i64 {\nentry:\n    %r = call.i64 @g(%x)\n    \
             %p = addr @base\n    %b = load.i64 %p\n    %s = add.i64 %r, %b\n    ret %s\n}\n",
        )
        .unwrap();
    assert_eq!(e.call("user", &[Val::I64(1)]).unwrap(), Some(Val::I64(203)));
    // user, then (through the stub, on the call) g, f, twice; the data
    // module was needed by user itself.
    assert_eq!(compiled(&e), 5);
    match e.remove_module(lib) {
        Err(Error::Argument(m)) => assert!(m.contains("references it"), "{m}"),
        other => panic!("{other:?}"),
    }
    e.remove_module(user).unwrap();
    e.remove_module(lib).unwrap();
    assert!(e.call("g", &[Val::I64(1)]).is_err());
    assert_eq!(e.stats().unwrap().finalized, 0);
}

#[test]
fn recursion_and_function_pointers_go_through_stubs() {
    let e = Engine::default();
    e.add_module_text_lazy(
        "rec.kir",
        "func @fib(%n: i64) -> i64 {\nentry:\n    %small = slt.i64 %n, 2\n    br %small, done, more\n\
         done:\n    ret %n\nmore:\n    %a = sub.i64 %n, 1\n    %b = sub.i64 %n, 2\n    \
         %x = call.i64 @fib(%a)\n    %y = call.i64 @fib(%b)\n    %s = add.i64 %x, %y\n    ret %s\n}\n\
         data @table = { @fib }\n\
         func @via_table(%n: i64) -> i64 {\nentry:\n    %t = addr @table\n    %fp = load.i64 %t\n    \
         %r = call.i64 %fp(%n)\n    ret %r\n}\n",
    )
    .unwrap();
    assert_eq!(
        e.call("via_table", &[Val::I64(20)]).unwrap(),
        Some(Val::I64(6765))
    );
    assert_eq!(e.call("fib", &[Val::I64(10)]).unwrap(), Some(Val::I64(55)));
    assert_eq!(compiled(&e), 3);
}

#[test]
fn concurrent_first_calls_compile_once_and_all_get_the_result() {
    let e = Arc::new(Engine::default());
    // Big enough that the first caller is still compiling when the others
    // arrive.
    let mut body = String::from("func @slow(%x: i64) -> i64 {\nentry:\n    %v0 = add.i64 %x, 1\n");
    for i in 1..4000 {
        body.push_str(&format!("    %v{i} = add.i64 %v{}, 1\n", i - 1));
    }
    body.push_str("    ret %v3999\n}\n");
    e.add_module_text_lazy("slow.kir", &body).unwrap();
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (e, barrier) = (e.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                e.call("slow", &[Val::I64(i as i64)])
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap().unwrap(), Some(Val::I64(i as i64 + 4000)));
    }
    assert_eq!(compiled(&e), 1);
}

#[test]
fn lazy_link_errors_come_back_from_the_call_and_the_engine_goes_on() {
    let e = Engine::default();
    let id = e
        .add_module_text_lazy(
            "m.kir",
            "extern func @missing(i64) -> i64\n\
             func @ok(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n\
             func @bad(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @missing(%x)\n    ret %y\n}\n\
             func @calls_bad(%x: i64) -> i64 {\nentry:\n    %a = call.i64 @ok(%x)\n    \
             %y = call.i64 @bad(%a)\n    ret %y\n}\n",
        )
        .unwrap();
    for f in ["bad", "calls_bad"] {
        match e.call(f, &[Val::I64(1)]) {
            Err(Error::Link(d)) => {
                assert_eq!(d.message, "unresolved symbol @missing");
                assert_eq!((d.loc.line, d.loc.col), (1, 13));
            }
            other => panic!("{f}: {other:?}"),
        }
    }
    assert_eq!(e.call("ok", &[Val::I64(1)]).unwrap(), Some(Val::I64(2)));
    match e.check_links(id) {
        Err(Error::Link(d)) => assert_eq!(d.message, "unresolved symbol @missing"),
        other => panic!("{other:?}"),
    }
    // Once the symbol exists, the same stub compiles and runs.
    e.add_module_text(
        "missing.kir",
        "func @missing(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, 10\n    ret %y\n}\n",
    )
    .unwrap();
    e.check_links(id).unwrap();
    assert_eq!(
        e.call("calls_bad", &[Val::I64(1)]).unwrap(),
        Some(Val::I64(20))
    );
}

#[test]
fn redefinition_reaches_earlier_callers_and_keeps_the_old_body_on_error() {
    let e = Engine::default();
    e.add_module_text_lazy(
        "a.kir",
        "func @h(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n\
         func @caller(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @h(%x)\n    ret %y\n}\n",
    )
    .unwrap();
    assert_eq!(e.call("caller", &[Val::I64(1)]).unwrap(), Some(Val::I64(2)));
    let parse = |t: &str| kiln::ir::parse::parse_module("b.kir", t).unwrap();
    let new_h = "func @h(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, 100\n    ret %y\n}\n";
    e.redefine(parse(new_h), Compile::Now).unwrap();
    assert_eq!(
        e.call("caller", &[Val::I64(3)]).unwrap(),
        Some(Val::I64(300))
    );
    assert_eq!(e.call("h", &[Val::I64(3)]).unwrap(), Some(Val::I64(300)));
    // Lazily: compiled on the next call.
    let before = compiled(&e);
    e.redefine(
        parse("func @h(%x: i64) -> i64 {\nentry:\n    %y = sub.i64 %x, 1\n    ret %y\n}\n"),
        Compile::OnFirstCall,
    )
    .unwrap();
    assert_eq!(compiled(&e), before);
    assert_eq!(e.call("caller", &[Val::I64(3)]).unwrap(), Some(Val::I64(2)));
    assert_eq!(compiled(&e), before + 1);
    // Errors leave the definition in place.
    for (text, want) in [
        (
            "func @h(%x: i32) -> i32 {\nentry:\n    ret %x\n}\n",
            "@h has signature (i64) -> i64",
        ),
        (
            "extern func @nope() -> i64\nfunc @h(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @nope()\n    ret %y\n}\n",
            "unresolved symbol @nope",
        ),
    ] {
        match e.redefine(parse(text), Compile::Now) {
            Err(Error::Link(d)) => assert!(d.message.starts_with(want), "{}", d.message),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.call("caller", &[Val::I64(3)]).unwrap(), Some(Val::I64(2)));
    }
    // Eagerly added functions cannot be redefined.
    e.add_module_text("eager.kir", "func @k() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    match e.redefine(
        parse("func @k() -> i64 {\nentry:\n    ret 2\n}\n"),
        Compile::Now,
    ) {
        Err(Error::Link(d)) => assert!(d.message.contains("not added lazily"), "{}", d.message),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.retired().unwrap(), (0, 0), "old bodies were released");
}

/// The old body of `@work` waits (spinning on memory the test owns) until
/// released, the new one returns at once.
const WORK_OLD: &str = "\
func @work(%p: i64) -> i64 {
entry:
    store.i64 1, %p, 8
    jmp spin
spin:
    %go = load.i64 %p
    %wait = eq.i64 %go, 0
    br %wait, spin, done
done:
    ret 1
}
";
const WORK_NEW: &str = "func @work(%p: i64) -> i64 {\nentry:\n    ret 2\n}\n";

#[test]
fn redefinition_while_the_old_body_runs_on_another_thread() {
    let e = Arc::new(Engine::default());
    e.add_module_text_lazy("work.kir", WORK_OLD).unwrap();
    // [go, started]
    let flags = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let runner = {
        let (e, flags) = (e.clone(), flags.clone());
        thread::spawn(move || {
            let p = flags.as_ptr() as i64;
            e.call("work", &[Val::I64(p)])
        })
    };
    while flags[1].load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    let parse = |t: &str| kiln::ir::parse::parse_module("new.kir", t).unwrap();
    e.redefine(parse(WORK_NEW), Compile::Now).unwrap();
    let done = [AtomicI64::new(1), AtomicI64::new(0)];
    let p = done.as_ptr() as i64;
    assert_eq!(e.call("work", &[Val::I64(p)]).unwrap(), Some(Val::I64(2)));
    assert_eq!(
        e.retired().unwrap().0,
        1,
        "the old body is kept while a call runs in it"
    );
    flags[0].store(1, Ordering::SeqCst);
    assert_eq!(
        runner.join().unwrap().unwrap(),
        Some(Val::I64(1)),
        "it finished in the old body"
    );
    assert_eq!(e.retired().unwrap(), (0, 0), "then it was released");
    assert_eq!(e.call("work", &[Val::I64(p)]).unwrap(), Some(Val::I64(2)));
}

#[test]
fn removing_lazy_modules_and_redefinitions() {
    let e = Engine::default();
    let a = e
        .add_module_text_lazy("a.kir", "func @h() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    let parse = |t: &str| kiln::ir::parse::parse_module("b.kir", t).unwrap();
    let b = e
        .redefine(
            parse("func @h() -> i64 {\nentry:\n    ret 2\n}\n"),
            Compile::Now,
        )
        .unwrap();
    assert_eq!(e.call("h", &[]).unwrap(), Some(Val::I64(2)));
    match e.remove_module(b) {
        Err(Error::Argument(m)) => assert!(m.contains("current body of @h"), "{m}"),
        other => panic!("{other:?}"),
    }
    e.remove_module(a).unwrap();
    assert!(e.call("h", &[]).is_err());
    e.remove_module(b).unwrap();
    assert_eq!(e.stats().unwrap().finalized, 0);
    // The name is free again.
    e.add_module_text_lazy("c.kir", "func @h() -> i64 {\nentry:\n    ret 3\n}\n")
        .unwrap();
    assert_eq!(e.call("h", &[]).unwrap(), Some(Val::I64(3)));
}

/// The same under the AArch64 emulator: the chunks' wrapper calls the
/// emulator's resolver slot, the call pauses, the function is compiled
/// and the call resumes in it.
#[cfg(feature = "emulate")]
#[test]
fn aarch64_under_emulation_compiles_lazily_and_redefines() {
    let ex = kiln::executor::EmulatorExecutor::new(Default::default()).unwrap();
    let e = Engine::with_executor("aarch64", Arc::new(ex)).unwrap();
    let id = e.add_module_text_lazy("lib.kir", LIB).unwrap();
    assert_eq!(compiled(&e), 0);
    assert_eq!(e.call("g", &[Val::I64(5)]).unwrap(), Some(Val::I64(111)));
    assert_eq!(compiled(&e), 4);
    assert_eq!(e.call("g", &[Val::I64(1)]).unwrap(), Some(Val::I64(103)));
    // Many arguments, some on the stack, survive the pause.
    e.add_module_text_lazy(
        "many.kir",
        "func @many(%a: i64, %b: f64, %c: i64, %d: i64, %e: i64, %f: i64, %g: i64, %h: i64, %i: i64, %j: i64) -> i64 {\n\
         entry:\n    %x = ftosi.i64 %b\n    %s1 = add.i64 %a, %x\n    %s2 = add.i64 %s1, %j\n    %s3 = mul.i64 %s2, %i\n    ret %s3\n}\n",
    )
    .unwrap();
    let args = [
        Val::I64(1),
        Val::F64(2.0),
        Val::I64(3),
        Val::I64(4),
        Val::I64(5),
        Val::I64(6),
        Val::I64(7),
        Val::I64(8),
        Val::I64(9),
        Val::I64(10),
    ];
    assert_eq!(e.call("many", &args).unwrap(), Some(Val::I64(117)));
    let bad = e
        .add_module_text_lazy(
            "bad.kir",
            "extern func @missing() -> i64\nfunc @bad() -> i64 {\nentry:\n    %x = call.i64 @missing()\n    ret %x\n}\n",
        )
        .unwrap();
    assert!(matches!(e.call("bad", &[]), Err(Error::Link(_))));
    e.remove_module(bad).unwrap();
    let parse = |t: &str| kiln::ir::parse::parse_module("new.kir", t).unwrap();
    e.redefine(
        parse("func @f(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, 1000\n    ret %y\n}\n"),
        Compile::OnFirstCall,
    )
    .unwrap();
    assert_eq!(e.call("g", &[Val::I64(2)]).unwrap(), Some(Val::I64(2001)));
    e.finalize_module(id).unwrap();
    assert_eq!(e.retired().unwrap(), (0, 0));
}
