//! Debug information (issue 12): line tables from every code generator,
//! IR-level trap backtraces through the engine, the code map's life with
//! its module, and the profiler / debugger registrations.

use kiln::ir::builder::ModuleBuilder;
use kiln::ir::parse::parse_module;
use kiln::ir::{Loc, Signature, Type};
use kiln::{Engine, Error, TrapCode, TrapFrame, Val};
use std::sync::OnceLock;

const LINES: &str = "\
func @f(%a: i64, %b: i64) -> i64 {
entry:
    %x = add.i64 %a, %b
    %y = mul.i64 %x, %a
    %z = sdiv.i64 %y, %b
    ret %z
}
";

/// Every backend's line table starts with the function's own line (the
/// prologue), then covers each instruction in order, and ends with the
/// trap site of the `sdiv` (line 5), placed after the body.
#[test]
fn every_generator_records_a_line_table() {
    let module = parse_module("lines.kir", LINES).unwrap();
    let mut backends: Vec<(&str, &dyn kiln::isa::Backend)> = Vec::new();
    #[cfg(feature = "x86_64")]
    backends.extend([
        (
            "x86_64",
            &kiln::isa::x86_64::X86_64_BACKEND as &dyn kiln::isa::Backend,
        ),
        ("x86_64 checked", &kiln::isa::x86_64::X86_64_CHECKED),
    ]);
    #[cfg(feature = "aarch64")]
    backends.extend([
        (
            "aarch64",
            &kiln::isa::aarch64::AARCH64_BACKEND as &dyn kiln::isa::Backend,
        ),
        ("aarch64 checked", &kiln::isa::aarch64::AARCH64_CHECKED),
    ]);
    assert!(!backends.is_empty());
    for (name, backend) in backends {
        let cm = kiln::emit::compile_module(&module, backend).unwrap();
        assert_eq!(cm.lines.len(), 1, "{name}");
        let fl = &cm.lines[0];
        let size = cm.symbols[fl.symbol].size as u32;
        let entries: Vec<(u32, Loc)> = fl.table.iter().collect();
        let lines: Vec<u32> = entries.iter().map(|e| e.1.line).collect();
        // Lines 3 and 4 may merge into one instruction on some backends,
        // but the division, the return and the trap site never do.
        assert_eq!(lines[0], 1, "{name}: {entries:?}");
        assert_eq!(entries[0].0, 0, "{name}");
        assert!(lines.ends_with(&[5, 6, 5]), "{name}: {lines:?}");
        assert!(
            lines.contains(&3) || lines.contains(&4),
            "{name}: {lines:?}"
        );
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "{name}");
        assert!(entries.iter().all(|e| e.0 < size), "{name}");
        // Columns point at the mnemonic.
        assert!(
            entries
                .iter()
                .skip(1)
                .all(|e| e.1.col == 10 || e.1.col == 5),
            "{name}"
        );
    }
}

/// A trap's backtrace from the engine names every frame, across modules.
#[test]
fn engine_backtrace_crosses_modules() {
    let e = Engine::default();
    e.add_module_text(
        "lib.kir",
        "func @div(%a: i64, %b: i64) -> i64 {\nentry:\n    %q = sdiv.i64 %a, %b\n    ret %q\n}\n",
    )
    .unwrap();
    e.add_module_text(
        "main.kir",
        "extern func @div(i64, i64) -> i64\n\
         func @main(%a: i64, %b: i64) -> i64 {\n\
         entry:\n\
         \x20   %r = call.i64 @div(%a, %b)\n\
         \x20   ret %r\n\
         }\n",
    )
    .unwrap();
    let Err(Error::Trap(t)) = e.call("main", &[Val::I64(1), Val::I64(0)]) else {
        panic!("expected a trap");
    };
    assert_eq!(t.code, TrapCode::DivisionByZero);
    let frame = |f: &str, file: &str, l: u32, c: u32| TrapFrame {
        function: f.into(),
        file: file.into(),
        loc: Loc::new(l, c),
    };
    assert_eq!(
        t.backtrace,
        vec![
            frame("div", "lib.kir", 3, 10),
            frame("main", "main.kir", 4, 10)
        ]
    );
    // The captured addresses: the trap site, then each return address
    // (the last one into the trampoline that made the call).
    assert!(t.pcs.len() >= 2, "{:?}", t.pcs);
    assert_eq!(
        t.to_string(),
        "trap: division by zero\n  at @div (lib.kir:3:10)\n  at @main (main.kir:4:10)"
    );
    // The engine goes on working.
    assert_eq!(
        e.call("main", &[Val::I64(9), Val::I64(3)]).unwrap(),
        Some(Val::I64(3))
    );
}

static REENTRANT: OnceLock<Engine> = OnceLock::new();

/// A host function calling back into the engine: the inner call's trap
/// carries the inner frames only; the outer call goes on.
extern "C" fn host_reenter(x: i64) -> i64 {
    let e = REENTRANT.get().expect("engine set before the call");
    match e.call("inner", &[Val::I64(x)]) {
        Ok(Some(Val::I64(v))) => v,
        Err(Error::Trap(t)) => {
            let names: Vec<&str> = t.backtrace.iter().map(|f| f.function.as_str()).collect();
            assert_eq!(names, ["inner"], "{t}");
            -1
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn backtrace_of_a_reentrant_call_and_after_a_host_call() {
    let e = REENTRANT.get_or_init(Engine::default);
    let sig = Signature::new(vec![Type::I64], Some(Type::I64));
    e.register_host_symbol("reenter", host_reenter as *const () as usize, Some(sig))
        .unwrap();
    e.add_module_text(
        "re.kir",
        "extern func @reenter(i64) -> i64\n\
         func @inner(%x: i64) -> i64 {\n\
         entry:\n\
         \x20   %q = udiv.i64 100, %x\n\
         \x20   ret %q\n\
         }\n\
         func @outer(%x: i64, %d: i64) -> i64 {\n\
         entry:\n\
         \x20   %r = call.i64 @reenter(%x)\n\
         \x20   %q = sdiv.i64 %r, %d\n\
         \x20   ret %q\n\
         }\n",
    )
    .unwrap();
    assert_eq!(
        e.call("outer", &[Val::I64(0), Val::I64(1)]).unwrap(),
        Some(Val::I64(-1))
    );
    let Err(Error::Trap(t)) = e.call("outer", &[Val::I64(5), Val::I64(0)]) else {
        panic!("expected a trap");
    };
    assert_eq!(
        t.to_string(),
        "trap: division by zero\n  at @outer (re.kir:10:10)"
    );
}

/// Built IR has no source locations: frames print the function and the
/// module name only.
#[test]
fn built_ir_frames_have_no_location() {
    let mut mb = ModuleBuilder::new("<built>");
    let mut f = mb
        .func("boom", Signature::new(vec![], Some(Type::I32)))
        .unwrap();
    f.trap();
    f.finish();
    let e = Engine::default();
    e.add_module(mb.finish().unwrap()).unwrap();
    let err = e.call("boom", &[]).unwrap_err();
    assert_eq!(err.to_string(), "trap: unreachable\n  at @boom (<built>)");
}

/// The code map follows the module: an address inside a function maps to
/// it while the module is finalized, and to nothing once it is removed.
#[test]
fn code_map_follows_module_life() {
    let e = Engine::default();
    let id = e
        .add_module_text(
            "m.kir",
            "func @g(%a: i64) -> i64 {\nentry:\n    %b = add.i64 %a, 1\n    ret %b\n}\n",
        )
        .unwrap();
    let (addr, _) = e.function_address("g").unwrap();
    let at = e.code_location(addr).unwrap().expect("mapped");
    assert_eq!((at.function.as_str(), at.file.as_str()), ("g", "m.kir"));
    assert_eq!(at.loc, Loc::new(1, 6), "the prologue belongs to @g's name");
    assert_eq!(e.code_location(addr.wrapping_sub(1)).unwrap(), None);
    e.remove_module(id).unwrap();
    assert_eq!(e.code_location(addr).unwrap(), None);
}
