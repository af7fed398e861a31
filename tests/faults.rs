//! Faults through the library (issue 11): a stack overflow in one thread
//! is a trap for that call only, other threads' calls stay correct and the
//! thread stays usable; interruption from another thread, in process and
//! in an executor child; the process executor's death, restart and replay.

use kiln::executor::process::{ProcessConfig, ProcessExecutor};
use kiln::ir::{Signature, Type};
use kiln::{ChildExit, Engine, Error, TrapCode, Val};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIB: &str = "\
func @down(%n: i64) -> i64 {
entry:
    %m = add.i64 %n, 1
    %r = call.i64 @down(%m)
    %s = add.i64 %r, 1
    ret %s
}
func @fib(%n: i64) -> i64 {
entry:
    %small = slt.i64 %n, 2
    br %small, base, rec
base:
    ret %n
rec:
    %a = sub.i64 %n, 1
    %b = sub.i64 %n, 2
    %x = call.i64 @fib(%a)
    %y = call.i64 @fib(%b)
    %z = add.i64 %x, %y
    ret %z
}
func @spin(%n: i64) -> i64 {
entry:
    jmp l(0)
l(%i: i64):
    %j = add.i64 %i, 1
    %c = slt.i64 %j, %n
    br %c, l(%j), done
done:
    ret %j
}
func @big() -> i64 {
entry:
    %p = alloca 300000000
    store.i64 5, %p
    %v = load.i64 %p
    ret %v
}
";

fn process_executor() -> Arc<ProcessExecutor> {
    ProcessExecutor::spawn_with(ProcessConfig {
        program: Some(env!("CARGO_BIN_EXE_kiln").into()),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn one_threads_stack_overflow_leaves_other_threads_calls_correct() {
    let engine = Arc::new(Engine::default());
    engine.add_module_text("lib.kir", LIB).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut calls = 0;
                while !stop.load(Ordering::SeqCst) || calls < 50 {
                    assert_eq!(
                        engine.call("fib", &[Val::I64(15)]).unwrap(),
                        Some(Val::I64(610))
                    );
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let overflowing = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                assert_eq!(
                    trap_code(engine.call("down", &[Val::I64(0)])),
                    Some(TrapCode::StackOverflow)
                );
                assert_eq!(
                    trap_code(engine.call("big", &[])),
                    Some(TrapCode::StackOverflow)
                );
                // The thread and its stack stay usable.
                assert_eq!(
                    engine.call("fib", &[Val::I64(10)]).unwrap(),
                    Some(Val::I64(55))
                );
            }
        })
    };
    overflowing.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        assert!(w.join().unwrap() >= 50);
    }
    // The main thread, which made no call yet, too.
    assert_eq!(
        trap_code(engine.call("down", &[Val::I64(0)])),
        Some(TrapCode::StackOverflow)
    );
    assert_eq!(
        engine.call("fib", &[Val::I64(20)]).unwrap(),
        Some(Val::I64(6765))
    );
}

/// Runs `spin` forever on `engine`, interrupts it from another thread
/// after a while, and checks that the engine goes on afterwards.
fn interrupts_a_spinning_call(engine: &Engine) {
    let handle = engine.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        handle.interrupt();
    });
    let start = Instant::now();
    assert_eq!(
        trap_code(engine.call("spin", &[Val::I64(i64::MAX)])),
        Some(TrapCode::Interrupted)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // The request was consumed by the call it stopped.
    assert_eq!(
        engine.call("spin", &[Val::I64(1000)]).unwrap(),
        Some(Val::I64(1000))
    );
    // A request made while nothing runs stops the next call.
    engine.interrupt();
    assert_eq!(
        trap_code(engine.call("spin", &[Val::I64(i64::MAX)])),
        Some(TrapCode::Interrupted)
    );
    assert_eq!(
        engine.call("fib", &[Val::I64(12)]).unwrap(),
        Some(Val::I64(144))
    );
}

#[test]
fn an_interruptible_engine_stops_a_call_from_another_thread() {
    let engine = Engine::default().with_interrupts();
    engine.add_module_text("lib.kir", LIB).unwrap();
    interrupts_a_spinning_call(&engine);
}

#[test]
fn without_interrupts_compiled_code_has_no_checks() {
    // Nothing in the code reads the flag: a request changes nothing.
    let engine = Engine::default();
    engine.add_module_text("lib.kir", LIB).unwrap();
    engine.interrupt();
    assert_eq!(
        engine.call("spin", &[Val::I64(100_000)]).unwrap(),
        Some(Val::I64(100_000))
    );
    let engine = Engine::default().with_interrupts();
    engine.add_module_text("lib.kir", LIB).unwrap();
    engine.interrupt();
    assert_eq!(
        trap_code(engine.call("spin", &[Val::I64(100_000)])),
        Some(TrapCode::Interrupted)
    );
}

#[test]
fn the_process_executor_runs_traps_and_interrupts_like_in_process() {
    let host = std::env::consts::ARCH;
    let engine = Engine::with_executor(host, process_executor())
        .unwrap()
        .with_interrupts();
    engine.add_module_text("lib.kir", LIB).unwrap();
    assert_eq!(
        engine.call("fib", &[Val::I64(20)]).unwrap(),
        Some(Val::I64(6765))
    );
    assert_eq!(
        trap_code(engine.call("down", &[Val::I64(0)])),
        Some(TrapCode::StackOverflow)
    );
    assert_eq!(
        trap_code(engine.call("big", &[])),
        Some(TrapCode::StackOverflow)
    );
    interrupts_a_spinning_call(&engine);
}

const CRASHY: &str = "\
extern func @malloc(i64) -> i64
data @counter = { i64 40 }
func @bump() -> i64 {
entry:
    %p = addr @counter
    %v = load.i64 %p
    %w = add.i64 %v, 1
    store.i64 %w, %p
    ret %w
}
func @heap(%x: i64) -> i64 {
entry:
    %p = call.i64 @malloc(16)
    store.i64 %x, %p, 8
    %v = load.i64 %p, 8
    ret %v
}
func @wild() -> i64 {
entry:
    store.i64 1, 16
    ret 0
}
func @div(%a: i64, %b: i64) -> i64 {
entry:
    %q = sdiv.i64 %a, %b
    ret %q
}
";

#[test]
fn a_dead_executor_child_is_an_error_and_a_new_one_takes_over() {
    let ex = process_executor();
    let first = ex.child_id();
    let engine = Engine::with_executor(std::env::consts::ARCH, ex.clone()).unwrap();
    engine.add_module_text("crashy.kir", CRASHY).unwrap();
    assert_eq!(engine.call("bump", &[]).unwrap(), Some(Val::I64(41)));
    assert_eq!(engine.call("bump", &[]).unwrap(), Some(Val::I64(42)));
    assert_eq!(
        engine.call("heap", &[Val::I64(-9)]).unwrap(),
        Some(Val::I64(-9))
    );
    assert_eq!(
        trap_code(engine.call("div", &[Val::I64(1), Val::I64(0)])),
        Some(TrapCode::DivisionByZero)
    );
    assert_eq!(
        engine.call("wild", &[]),
        Err(Error::ExecutorDied(ChildExit::Signal(libc::SIGSEGV)))
    );
    assert_eq!(ex.child_id(), None);
    // The next call starts a new child with the same code; data starts
    // over from its initial contents, host functions resolve again.
    assert_eq!(engine.call("bump", &[]).unwrap(), Some(Val::I64(41)));
    assert_ne!(ex.child_id(), first);
    assert_eq!(
        engine.call("heap", &[Val::I64(3)]).unwrap(),
        Some(Val::I64(3))
    );
    assert_eq!(
        engine.call("div", &[Val::I64(9), Val::I64(3)]).unwrap(),
        Some(Val::I64(3))
    );
    // Modules added after a restart work too, and can call earlier ones.
    engine
        .add_module_text(
            "more.kir",
            "extern func @bump() -> i64\nfunc @twice() -> i64 {\nentry:\n    %a = call.i64 @bump()\n    %b = call.i64 @bump()\n    ret %b\n}\n",
        )
        .unwrap();
    assert_eq!(engine.call("twice", &[]).unwrap(), Some(Val::I64(43)));
}

#[test]
fn the_process_executor_checks_host_signatures_it_is_given() {
    let mut config = ProcessConfig {
        program: Some(env!("CARGO_BIN_EXE_kiln").into()),
        ..Default::default()
    };
    config.host_signatures.insert(
        "malloc".into(),
        Signature::new(vec![Type::I64], Some(Type::I64)),
    );
    let ex = ProcessExecutor::spawn_with(config).unwrap();
    let engine = Engine::with_executor(std::env::consts::ARCH, ex).unwrap();
    engine
        .add_module_text(
            "bad.kir",
            "extern func @malloc(i32) -> i64\nfunc @f() -> i64 {\nentry:\n    %p = call.i64 @malloc(8)\n    ret %p\n}\n",
        )
        .unwrap();
    match engine.call("f", &[]) {
        Err(Error::Link(d)) => assert!(d.message.contains("host function"), "{d}"),
        other => panic!("expected a link error, got {other:?}"),
    }
    // A program that is not kiln is refused with an error, not a hang.
    let bad = ProcessExecutor::spawn_with(ProcessConfig {
        program: Some("/bin/true".into()),
        ..Default::default()
    });
    assert!(bad.is_err());
}

#[test]
fn lazy_and_redefined_code_is_interruptible_and_survives_an_executor_restart() {
    // In process, lazily: the checks are in every function-module.
    let engine = Engine::default().with_interrupts();
    engine.add_module_text_lazy("lib.kir", LIB).unwrap();
    interrupts_a_spinning_call(&engine);

    // In an executor child: a redefinition patches an indirection cell
    // there, and a new child after a crash gets the patched cell.
    let engine = Engine::with_executor(std::env::consts::ARCH, process_executor())
        .unwrap()
        .with_interrupts();
    engine
        .add_module_text_lazy(
            "a.kir",
            "func @h(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n\
             func @caller(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @h(%x)\n    ret %y\n}\n",
        )
        .unwrap();
    engine.add_module_text("crashy.kir", CRASHY).unwrap();
    assert_eq!(
        engine.call("caller", &[Val::I64(1)]).unwrap(),
        Some(Val::I64(2))
    );
    let new_h = kiln::ir::parse::parse_module(
        "b.kir",
        "func @h(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, 100\n    ret %y\n}\n",
    )
    .unwrap();
    engine.redefine(new_h, kiln::Compile::Now).unwrap();
    assert_eq!(
        engine.call("caller", &[Val::I64(3)]).unwrap(),
        Some(Val::I64(300))
    );
    assert!(matches!(
        engine.call("wild", &[]),
        Err(Error::ExecutorDied(ChildExit::Signal(_)))
    ));
    let after = engine.call("caller", &[Val::I64(4)]);
    assert_eq!(
        after.unwrap_or_else(|e| panic!("the first call after the executor restart: {e}")),
        Some(Val::I64(400))
    );
}

/// An executor program standing in for `kiln`: a restarted child (one
/// given `--region`) exits with [`child::REGION_TAKEN`] while `dir` holds
/// fewer than `failures` files (making one each time), as a child whose
/// libraries happen to lie where the region must go does; otherwise it
/// runs `kiln`.
fn region_taken_program(dir: &std::path::Path, failures: usize) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("marks")).unwrap();
    let script = dir.join("kiln-wrapper");
    let text = format!(
        "#!/bin/sh\n\
         case \"$*\" in *--region*)\n\
           n=$(ls '{marks}' | wc -l)\n\
           if [ \"$n\" -lt {failures} ]; then : > '{marks}/'\"$n\"; exit {status}; fi;;\n\
         esac\n\
         exec '{kiln}' \"$@\"\n",
        marks = dir.join("marks").display(),
        status = kiln::executor::process::child::REGION_TAKEN,
        kiln = env!("CARGO_BIN_EXE_kiln"),
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A restarted child that cannot map the code region where the first one
/// had it (its own libraries are there: about one start in a thousand) is
/// replaced by another; after 8 such children the call
/// fails with an error that says so.
#[test]
fn a_restart_tries_new_children_while_the_region_is_taken() {
    let base = std::env::temp_dir().join(format!("kiln-faults-region-{}", std::process::id()));
    for (failures, works) in [(3, true), (1000, false)] {
        let dir = base.join(failures.to_string());
        let ex = ProcessExecutor::spawn_with(ProcessConfig {
            program: Some(region_taken_program(&dir, failures)),
            ..Default::default()
        })
        .unwrap();
        let engine = Engine::with_executor(std::env::consts::ARCH, ex.clone()).unwrap();
        engine.add_module_text("crashy.kir", CRASHY).unwrap();
        assert_eq!(engine.call("bump", &[]).unwrap(), Some(Val::I64(41)));
        assert_eq!(
            engine.call("wild", &[]),
            Err(Error::ExecutorDied(ChildExit::Signal(libc::SIGSEGV)))
        );
        let after = engine.call("bump", &[]);
        let tried = std::fs::read_dir(dir.join("marks")).unwrap().count();
        if works {
            assert_eq!(after.unwrap(), Some(Val::I64(41)));
            assert_eq!(tried, failures);
        } else {
            match after {
                Err(Error::Runtime(m)) => assert!(
                    m.contains("8 new children could not map the code region"),
                    "{m}"
                ),
                other => panic!("expected an error, got {other:?}"),
            }
            assert_eq!(tried, 8);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The trap code of a call's outcome, if it trapped.
fn trap_code<T>(r: kiln::Result<T>) -> Option<TrapCode> {
    r.err().and_then(|e| e.trap_code())
}

#[test]
fn stack_overflow_traps_carry_a_backtrace_of_the_recursion() {
    let engines = [
        Engine::default(),
        Engine::with_executor(std::env::consts::ARCH, process_executor()).unwrap(),
    ];
    for engine in engines {
        engine.add_module_text("lib.kir", LIB).unwrap();
        match engine.call("down", &[Val::I64(0)]) {
            Err(Error::Trap(t)) => {
                assert_eq!(t.code, TrapCode::StackOverflow);
                assert_eq!(t.backtrace.len(), kiln::error::MAX_BACKTRACE);
                assert!(t.backtrace.iter().all(|f| f.function == "down"));
                // The innermost frame is `@down`'s code (its call, or its
                // entry), on the file's lines of `@down`.
                assert!((1..=7).contains(&t.backtrace[0].loc.line), "{t}");
            }
            other => panic!("expected a stack overflow, got {other:?}"),
        }
    }
}
