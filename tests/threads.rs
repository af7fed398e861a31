//! Engines shared by threads: compiling happens outside the engine's lock
//! (calls of finalized code and lookups go on while another thread
//! compiles, and two threads compile at once), a module wanted by several
//! threads at once is compiled once, and module ids belong to their
//! engine.

use kiln::registry::ModuleState;
use kiln::{Engine, Error, Val};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// A function `@name` of about `n` instructions (a chain of adds), slow
/// enough to compile that other threads can watch it being compiled.
fn big_function(name: &str, n: usize) -> String {
    let mut s = format!("func @{name}(%x: i64) -> i64 {{\nentry:\n    %v0 = add.i64 %x, 1\n");
    for i in 1..n {
        s.push_str(&format!("    %v{i} = add.i64 %v{}, 1\n", i - 1));
    }
    s.push_str(&format!("    ret %v{}\n}}\n", n - 1));
    s
}

const SMALL: &str =
    "func @small(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, 3\n    ret %y\n}\n";

#[test]
fn calls_and_lookups_go_on_while_another_thread_compiles() {
    let e = Arc::new(Engine::default());
    e.add_module_text("small.kir", SMALL).unwrap();
    assert_eq!(e.call("small", &[Val::I64(2)]).unwrap(), Some(Val::I64(6)));
    let big = e
        .add_module_text("big.kir", &big_function("big", 100_000))
        .unwrap();
    let compiler = {
        let e = e.clone();
        thread::spawn(move || e.finalize_module(big))
    };
    // The Compiling state is visible only while the compiling thread does
    // not hold the lock; a call made then must not wait for the compile.
    let mut calls_while_compiling = 0;
    loop {
        match e.module_state(big).unwrap() {
            Some(ModuleState::Compiling) => {
                assert_eq!(e.call("small", &[Val::I64(5)]).unwrap(), Some(Val::I64(15)));
                let (addr, _) = e.function_address("small").unwrap();
                assert_ne!(addr, 0);
                if e.module_state(big).unwrap() == Some(ModuleState::Compiling) {
                    calls_while_compiling += 1;
                }
            }
            Some(ModuleState::Finalized) => break,
            _ => thread::yield_now(),
        }
    }
    compiler.join().unwrap().unwrap();
    assert!(
        calls_while_compiling > 0,
        "no call completed while the big module was being compiled"
    );
    assert_eq!(
        e.call("big", &[Val::I64(1)]).unwrap(),
        Some(Val::I64(100_001))
    );
}

/// One attempt: two threads finalize two big modules; whether the watcher
/// saw both being compiled at once.
fn compile_two_at_once() -> bool {
    let e = Arc::new(Engine::default());
    let a = e
        .add_module_text("a.kir", &big_function("a", 60_000))
        .unwrap();
    let b = e
        .add_module_text("b.kir", &big_function("b", 60_000))
        .unwrap();
    let both_seen = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (e, both_seen) = (e.clone(), both_seen.clone());
        thread::spawn(move || loop {
            let sa = e.module_state(a).unwrap();
            let sb = e.module_state(b).unwrap();
            if sa == Some(ModuleState::Compiling) && sb == Some(ModuleState::Compiling) {
                both_seen.store(true, Ordering::SeqCst);
            }
            if sa == Some(ModuleState::Finalized) && sb == Some(ModuleState::Finalized) {
                return;
            }
            thread::yield_now();
        })
    };
    let ta = {
        let e = e.clone();
        thread::spawn(move || e.finalize_module(a))
    };
    let tb = {
        let e = e.clone();
        thread::spawn(move || e.finalize_module(b))
    };
    ta.join().unwrap().unwrap();
    tb.join().unwrap().unwrap();
    watcher.join().unwrap();
    assert_eq!(e.call("a", &[Val::I64(0)]).unwrap(), Some(Val::I64(60_000)));
    assert_eq!(e.call("b", &[Val::I64(0)]).unwrap(), Some(Val::I64(60_000)));
    both_seen.load(Ordering::SeqCst)
}

#[test]
fn two_threads_compile_different_modules_at_once() {
    // With the lock held while compiling, the second module would stay
    // Added until the first is done, so no attempt could see both
    // Compiling. A loaded machine may run one thread's whole compile before
    // the other starts: a few attempts, one overlap is enough.
    assert!(
        (0..8).any(|_| compile_two_at_once()),
        "the two modules were never being compiled at the same time"
    );
}

#[test]
fn a_module_wanted_by_many_threads_is_compiled_once() {
    let e = Arc::new(Engine::default());
    e.add_module_text("big.kir", &big_function("big", 3_000))
        .unwrap();
    e.add_module_text(
        "user.kir",
        "extern func @big(i64) -> i64\nfunc @user(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @big(%x)\n    ret %y\n}\n",
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            thread::spawn(move || {
                let f = if i % 2 == 0 { "big" } else { "user" };
                e.call(f, &[Val::I64(i)])
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap().unwrap(), Some(Val::I64(i as i64 + 3_000)));
    }
    assert_eq!(e.stats().unwrap().modules_compiled, 2);
}

#[test]
fn a_failed_compile_on_one_thread_is_an_error_there_and_others_go_on() {
    let e = Arc::new(Engine::default());
    e.add_module_text(
        "broken.kir",
        "extern func @missing() -> i64\nfunc @broken() -> i64 {\nentry:\n    %x = call.i64 @missing()\n    ret %x\n}\n",
    )
    .unwrap();
    e.add_module_text("small.kir", SMALL).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            thread::spawn(move || {
                if i % 2 == 0 {
                    e.call("broken", &[])
                } else {
                    e.call("small", &[Val::I64(i)])
                }
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let r = t.join().unwrap();
        if i % 2 == 0 {
            assert!(matches!(r, Err(Error::Link(_))), "{r:?}");
        } else {
            assert_eq!(r.unwrap(), Some(Val::I64(3 * i as i64)));
        }
    }
}

#[test]
fn module_ids_belong_to_their_engine() {
    let a = Engine::default();
    let b = Engine::default();
    let ida = a.add_module_text("a.kir", SMALL).unwrap();
    let idb = b
        .add_module_text("b.kir", "func @other() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    for r in [
        b.remove_module(ida),
        b.finalize_module(ida),
        b.load_module(ida),
        b.module_state(ida).map(drop),
        b.section_address(ida, kiln::memory::SectionKind::Text)
            .map(drop),
    ] {
        match r {
            Err(Error::Argument(m)) => assert!(m.contains("another engine"), "{m}"),
            other => panic!("a foreign id was accepted: {other:?}"),
        }
    }
    // Neither engine lost anything.
    assert_eq!(b.module_state(idb).unwrap(), Some(ModuleState::Added));
    assert_eq!(b.call("other", &[]).unwrap(), Some(Val::I64(1)));
    assert_eq!(a.call("small", &[Val::I64(1)]).unwrap(), Some(Val::I64(3)));
    // A removed id stays dead even when its slot is reused.
    a.remove_module(ida).unwrap();
    let again = a.add_module_text("again.kir", SMALL).unwrap();
    assert_ne!(again, ida);
    assert_eq!(a.module_state(ida).unwrap(), None);
    assert!(a.remove_module(ida).is_err());
    assert_eq!(a.module_state(again).unwrap(), Some(ModuleState::Added));
}
