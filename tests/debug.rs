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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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

/// Records of modules from the same file share its name (kept once by the
/// engine after two modules in a row came from it), others keep their
/// own: either way every function maps back to its file, also after the
/// modules around it were removed.
#[test]
fn code_map_keeps_every_modules_file() {
    let _serial = serial();
    let e = Engine::default();
    let files = [
        "a.kir", "a.kir", "a.kir", "b.kir", "", "a.kir", "c.kir", "b.kir", "b.kir",
    ];
    let mut ids = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = format!("func @g{i}(%a: i64) -> i64 {{\nentry:\n    ret %a\n}}\n");
        ids.push(e.add_module_text(file, &text).unwrap());
    }
    let check = |e: &Engine, live: &[usize]| {
        for &i in live {
            let (addr, _) = e.function_address(&format!("g{i}")).unwrap();
            let at = e.code_location(addr).unwrap().expect("mapped");
            assert_eq!((at.function, at.file.as_str()), (format!("g{i}"), files[i]));
            assert_eq!(at.loc, Loc::new(1, 6));
        }
    };
    check(&e, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for i in [1, 3, 8] {
        e.remove_module(ids[i]).unwrap();
    }
    check(&e, &[0, 2, 4, 5, 6, 7]);
}

// ---- unwind information -------------------------------------------------

use kiln::debug::unwind::{self, UnwindFunc, UnwindIsa};

/// The CFA rule at `offset` in the first FDE of `.eh_frame` (or
/// `.debug_frame`) bytes, read back with gimli: (register, offset).
fn cfa_at(bytes: &[u8], eh: bool, address: u64) -> (u16, i64) {
    use gimli::{BaseAddresses, CfaRule, LittleEndian, UnwindContext, UnwindSection};
    let bases = BaseAddresses::default();
    let mut ctx = UnwindContext::new();
    let row = if eh {
        let mut s = gimli::EhFrame::new(bytes, LittleEndian);
        s.set_address_size(8);
        s.unwind_info_for_address(&bases, &mut ctx, address, gimli::EhFrame::cie_from_offset)
            .unwrap_or_else(|e| panic!("no row at {address:#x}: {e}"))
            .clone()
    } else {
        let mut s = gimli::DebugFrame::new(bytes, LittleEndian);
        s.set_address_size(8);
        s.unwind_info_for_address(
            &bases,
            &mut ctx,
            address,
            gimli::DebugFrame::cie_from_offset,
        )
        .unwrap_or_else(|e| panic!("no row at {address:#x}: {e}"))
        .clone()
    };
    match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => (register.0, *offset),
        other => panic!("{other:?}"),
    }
}

const CALLS: &str = "\
func @inner(%a: i64) -> i64 {
entry:
    %b = mul.i64 %a, %a
    ret %b
}

func @outer(%a: i64) -> i64 {
entry:
    %b = call.i64 @inner(%a)
    %c = call.i64 @inner(%b)
    %d = add.i64 %b, %c
    ret %d
}
";

/// The CFI of every function, read back: entry rule, after the frame
/// setup, in the body, and at each return — for both ISAs and both
/// containers.
#[test]
fn cfi_reads_back_for_both_isas() {
    let _serial = serial();
    let module = parse_module("calls.kir", CALLS).unwrap();
    let mut cases: Vec<(UnwindIsa, &dyn kiln::isa::Backend)> = Vec::new();
    #[cfg(feature = "x86_64")]
    cases.push((UnwindIsa::X86_64, &kiln::isa::x86_64::X86_64_BACKEND));
    #[cfg(feature = "aarch64")]
    cases.push((UnwindIsa::Aarch64, &kiln::isa::aarch64::AARCH64_BACKEND));
    for (isa, backend) in cases {
        let cm = kiln::emit::compile_module(&module, backend).unwrap();
        let base = 0x7000_0000u64;
        let funcs: Vec<UnwindFunc<'_>> = cm
            .symbols
            .iter()
            .filter(|s| s.is_func)
            .map(|s| UnwindFunc {
                address: base + s.offset,
                code: &cm.text[s.offset as usize..(s.offset + s.size) as usize],
            })
            .collect();
        for (bytes, eh) in [
            (unwind::eh_frame(isa, &funcs), true),
            (unwind::debug_frame(isa, &funcs), false),
        ] {
            for f in &funcs {
                let a = f.address;
                match isa {
                    UnwindIsa::X86_64 => {
                        // rsp = 7, rbp = 6.
                        assert_eq!(cfa_at(&bytes, eh, a), (7, 8));
                        assert_eq!(cfa_at(&bytes, eh, a + 1), (7, 16));
                        assert_eq!(cfa_at(&bytes, eh, a + 4), (6, 16));
                        let ret = f.code.windows(2).rposition(|w| w == [0x5d, 0xc3]).unwrap();
                        assert_eq!(cfa_at(&bytes, eh, a + ret as u64), (6, 16));
                        assert_eq!(cfa_at(&bytes, eh, a + ret as u64 + 1), (7, 8));
                    }
                    UnwindIsa::Aarch64 => {
                        // sp = 31, x29 = 29.
                        assert_eq!(cfa_at(&bytes, eh, a), (31, 0));
                        assert_eq!(cfa_at(&bytes, eh, a + 4), (31, 16));
                        assert_eq!(cfa_at(&bytes, eh, a + 8), (29, 16));
                        let words: Vec<u32> = f
                            .code
                            .chunks(4)
                            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
                            .collect();
                        let ret = words.iter().rposition(|&w| w == 0xd65f_03c0).unwrap();
                        assert_eq!(cfa_at(&bytes, eh, a + 4 * ret as u64 - 4), (29, 16));
                        assert_eq!(cfa_at(&bytes, eh, a + 4 * ret as u64), (31, 0));
                    }
                }
            }
        }
    }
}

/// What the host function saw when called from compiled code.
static SEEN: std::sync::Mutex<Option<(Vec<u64>, String)>> = std::sync::Mutex::new(None);

/// Captures the call stack with `backtrace(3)` (raw return addresses)
/// and `std::backtrace` (symbolized).
extern "C" fn capture(x: i64) -> i64 {
    let mut ips = [std::ptr::null_mut(); 64];
    // SAFETY: the buffer holds 64 entries.
    let n = unsafe { libc::backtrace(ips.as_mut_ptr(), 64) };
    let ips = ips[..n.max(0) as usize].iter().map(|&p| p as u64).collect();
    let text = std::backtrace::Backtrace::force_capture().to_string();
    *SEEN.lock().unwrap() = Some((ips, text));
    x + 1
}

fn capture_engine(unwind: bool) -> Engine {
    let e = Engine::default();
    e.set_debug_options(kiln::debug::DebugOptions {
        unwind,
        ..Default::default()
    })
    .unwrap();
    let sig = Signature::new(vec![Type::I64], Some(Type::I64));
    e.register_host_symbol("capture", capture as *const () as usize, Some(sig))
        .unwrap();
    e.add_module_text(
        "cap.kir",
        "extern func @capture(i64) -> i64\n\
         func @inner(%x: i64) -> i64 {\n\
         entry:\n\
         \x20   %r = call.i64 @capture(%x)\n\
         \x20   ret %r\n\
         }\n\
         func @outer(%x: i64) -> i64 {\n\
         entry:\n\
         \x20   %r = call.i64 @inner(%x)\n\
         \x20   %s = add.i64 %r, 1\n\
         \x20   ret %s\n\
         }\n",
    )
    .unwrap();
    e
}

/// Runs @outer and returns what `capture` saw.
fn run_capture(e: &Engine) -> (Vec<u64>, String) {
    assert_eq!(e.call("outer", &[Val::I64(1)]).unwrap(), Some(Val::I64(3)));
    SEEN.lock().unwrap().take().expect("captured")
}

/// A backtrace taken in a host function called from compiled code walks
/// through the compiled frames (and the call trampoline) into the Rust
/// code that made the call; without the registered CFI it stops at the
/// first compiled frame.
#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn host_backtrace_walks_through_jit_frames() {
    let _serial = serial();
    let e = capture_engine(true);
    let (ips, text) = run_capture(&e);
    let names: Vec<String> = ips
        .iter()
        .filter_map(|&ip| e.code_location(ip - 1).unwrap())
        .map(|f| format!("{}:{}", f.function, f.loc.line))
        .collect();
    assert_eq!(names, ["inner:4", "outer:9"], "{ips:x?}");
    assert!(
        text.contains("host_backtrace_walks_through_jit_frames"),
        "the backtrace does not reach the test function:\n{text}"
    );
    assert!(text.contains("kiln::engine::Engine::call"), "{text}");

    // Without unwind information the walk ends in compiled code.
    let e = capture_engine(false);
    let (ips, text) = run_capture(&e);
    let names: Vec<_> = ips
        .iter()
        .filter_map(|&ip| e.code_location(ip - 1).unwrap())
        .collect();
    assert!(names.len() <= 1, "{names:?}");
    assert!(
        !text.contains("host_backtrace_walks_through_jit_frames"),
        "{text}"
    );
}

/// Small modules share their 4 KiB bucket's registration with the system
/// unwinder: after neighbours on both sides came and went (each change
/// re-registers the bucket), a walk from a host function still goes
/// through the frames of two of them into the Rust caller, and the code
/// map names live modules only.
#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn host_backtrace_walks_through_many_small_modules() {
    let _serial = serial();
    let e = Engine::default();
    let sig = Signature::new(vec![Type::I64], Some(Type::I64));
    e.register_host_symbol("capture", capture as *const () as usize, Some(sig))
        .unwrap();
    let mut fillers = Vec::new();
    let fill = |e: &Engine, fillers: &mut Vec<(kiln::registry::ModuleId, u64)>, n: usize| {
        for _ in 0..n {
            let i = fillers.len();
            let text = format!("func @fill{i}() -> i64 {{\nentry:\n    ret {i}\n}}\n");
            let id = e.add_module_text(&format!("fill{i}.kir"), &text).unwrap();
            e.finalize_module(id).unwrap();
            let (addr, _) = e.function_address(&format!("fill{i}")).unwrap();
            fillers.push((id, addr));
        }
    };
    fill(&e, &mut fillers, 40);
    let inner = e
        .add_module_text(
            "inner.kir",
            "extern func @capture(i64) -> i64\n\
             func @inner(%x: i64) -> i64 {\n\
             entry:\n\
             \x20   %r = call.i64 @capture(%x)\n\
             \x20   ret %r\n\
             }\n",
        )
        .unwrap();
    e.finalize_module(inner).unwrap();
    fill(&e, &mut fillers, 40);
    let outer = e
        .add_module_text(
            "outer.kir",
            "extern func @inner(i64) -> i64\n\
             func @outer(%x: i64) -> i64 {\n\
             entry:\n\
             \x20   %r = call.i64 @inner(%x)\n\
             \x20   %s = add.i64 %r, 1\n\
             \x20   ret %s\n\
             }\n",
        )
        .unwrap();
    e.finalize_module(outer).unwrap();
    fill(&e, &mut fillers, 40);
    for (k, &(id, addr)) in fillers.iter().enumerate() {
        if k % 2 == 0 {
            e.remove_module(id).unwrap();
            assert_eq!(e.code_location(addr).unwrap(), None);
        }
    }
    fill(&e, &mut fillers, 20);
    for (k, &(_, addr)) in fillers.iter().enumerate() {
        if k % 2 == 1 || k >= 120 {
            let f = e.code_location(addr).unwrap().expect("mapped");
            assert_eq!(f.function, format!("fill{k}"));
        }
    }
    let (ips, text) = run_capture(&e);
    let names: Vec<String> = ips
        .iter()
        .filter_map(|&ip| e.code_location(ip - 1).unwrap())
        .map(|f| format!("{}:{}", f.function, f.loc.line))
        .collect();
    assert_eq!(names, ["inner:4", "outer:4"], "{ips:x?}");
    assert!(
        text.contains("host_backtrace_walks_through_many_small_modules"),
        "the backtrace does not reach the test function:\n{text}"
    );
}

/// Every test here runs alone: some register host functions or count
/// process-wide registrations (the GDB JIT list, the unwinder's), and
/// every engine adds to those (its call trampoline is registered), so a
/// test making an engine meanwhile would change the counts.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`SERIAL`]'s guard (also after another test failed holding it: that
/// test's failure is reported, not a poisoned lock in every later one).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the GDB JIT object -------------------------------------------------

/// A minimal ELF64 reader: the machine, and each section's name, type,
/// address and bytes.
struct Elf<'a> {
    machine: u16,
    kind: u16,
    sections: Vec<(String, u32, u64, &'a [u8], u64)>,
}

fn read_elf(b: &[u8]) -> Elf<'_> {
    assert_eq!(&b[..6], &[0x7f, b'E', b'L', b'F', 2, 1]);
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shnum, shstrndx) = (u64_at(0x28) as usize, u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + 64 * i;
    let raw: Vec<(u32, u32, u64, usize, u64)> = (0..shnum as usize)
        .map(|i| {
            let h = header(i);
            (
                u32_at(h),
                u32_at(h + 4),
                u64_at(h + 16),
                u64_at(h + 24) as usize,
                u64_at(h + 32),
            )
        })
        .collect();
    let (_, _, _, stroff, strsize) = raw[shstrndx as usize];
    let names = &b[stroff..stroff + strsize as usize];
    let name = |o: u32| {
        let s = &names[o as usize..];
        String::from_utf8(s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()).unwrap()
    };
    let sections = raw
        .iter()
        .map(|&(n, kind, addr, off, size)| {
            let bytes: &[u8] = if kind == 8 {
                &[]
            } else {
                &b[off..off + size as usize]
            };
            (name(n), kind, addr, bytes, size)
        })
        .collect();
    Elf {
        machine: u16_at(0x12),
        kind: u16_at(0x10),
        sections,
    }
}

impl<'a> Elf<'a> {
    fn section(&self, name: &str) -> &(String, u32, u64, &'a [u8], u64) {
        self.sections
            .iter()
            .find(|s| s.0 == name)
            .unwrap_or_else(|| panic!("no section {name}"))
    }
}

/// The object handed to GDB, read back for both ISAs: machine, `.text` at
/// the code's address, function symbols, subprograms, the line table
/// (address → `.kir` line) and the CFI.
#[test]
fn gdb_object_reads_back_for_both_isas() {
    let _serial = serial();
    use gimli::LittleEndian;
    use kiln::debug::elf::{object, ObjectFunc, ObjectInfo};
    let module = parse_module("calls.kir", CALLS).unwrap();
    let mut cases: Vec<(UnwindIsa, &dyn kiln::isa::Backend, u16)> = Vec::new();
    #[cfg(feature = "x86_64")]
    cases.push((UnwindIsa::X86_64, &kiln::isa::x86_64::X86_64_BACKEND, 62));
    #[cfg(feature = "aarch64")]
    cases.push((
        UnwindIsa::Aarch64,
        &kiln::isa::aarch64::AARCH64_BACKEND,
        183,
    ));
    for (isa, backend, machine) in cases {
        let cm = kiln::emit::compile_module(&module, backend).unwrap();
        let base = 0x5555_0000_0000u64;
        let funcs: Vec<ObjectFunc<'_>> = cm
            .lines
            .iter()
            .map(|fl| {
                let s = &cm.symbols[fl.symbol];
                ObjectFunc {
                    name: &s.name,
                    address: base + s.offset,
                    code: &cm.text[s.offset as usize..(s.offset + s.size) as usize],
                    lines: &fl.table,
                    line: fl.table.iter().next().unwrap().1.line,
                }
            })
            .collect();
        let bytes = object(&ObjectInfo {
            isa,
            file: "/src/calls.kir",
            comp_dir: "/src",
            text_address: base,
            text_size: cm.text.len() as u64,
            funcs: &funcs,
        });
        let elf = read_elf(&bytes);
        assert_eq!((elf.machine, elf.kind), (machine, 1));
        let text = elf.section(".text");
        assert_eq!((text.1, text.2, text.4), (8, base, cm.text.len() as u64));

        // Symbols: the file, then @inner and @outer with their addresses.
        let symtab = elf.section(".symtab").3;
        let strtab = elf.section(".strtab").3;
        let syms: Vec<(String, u8, u64)> = symtab
            .chunks(24)
            .skip(1)
            .map(|s| {
                let n = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
                let end = strtab[n..].iter().position(|&c| c == 0).unwrap();
                let name = String::from_utf8(strtab[n..n + end].to_vec()).unwrap();
                (name, s[4], u64::from_le_bytes(s[8..16].try_into().unwrap()))
            })
            .collect();
        assert_eq!(syms[0], ("/src/calls.kir".into(), 4, 0));
        for f in &funcs {
            assert!(
                syms.contains(&(f.name.to_string(), 0x12, f.address - base)),
                "{syms:?}"
            );
        }

        // The compile unit and its subprograms.
        let info = gimli::DebugInfo::new(elf.section(".debug_info").3, LittleEndian);
        let abbrev = gimli::DebugAbbrev::new(elf.section(".debug_abbrev").3, LittleEndian);
        let unit = info.units().next().unwrap().unwrap();
        let abbrevs = unit.abbreviations(&abbrev).unwrap();
        let mut entries = unit.entries(&abbrevs);
        let mut subprograms = Vec::new();
        while let Some(e) = entries.next_dfs().unwrap() {
            if e.tag() == gimli::DW_TAG_subprogram {
                let name = match e.attr_value(gimli::DW_AT_name) {
                    Some(gimli::AttributeValue::String(s)) => s.to_string_lossy().into_owned(),
                    other => panic!("{other:?}"),
                };
                let low = match e.attr_value(gimli::DW_AT_low_pc) {
                    Some(gimli::AttributeValue::Addr(a)) => a,
                    other => panic!("{other:?}"),
                };
                subprograms.push((name, low));
            }
        }
        let want: Vec<(String, u64)> = funcs.iter().map(|f| (f.name.into(), f.address)).collect();
        assert_eq!(subprograms, want);

        // The line table: each function's rows give the lines of its
        // instructions; the call in @outer is on line 9.
        let line = gimli::DebugLine::new(elf.section(".debug_line").3, LittleEndian);
        let program = line
            .program(gimli::DebugLineOffset(0), 8, None, None)
            .unwrap();
        let mut rows = program.rows();
        let mut seen: Vec<(u64, u64)> = Vec::new();
        while let Some((_, row)) = rows.next_row().unwrap() {
            if !row.end_sequence() {
                seen.push((row.address(), row.line().map_or(0, |l| l.get())));
            }
        }
        let outer = funcs.iter().find(|f| f.name == "outer").unwrap();
        for (o, loc) in outer.lines.iter() {
            assert!(
                seen.contains(&(outer.address + o as u64, loc.line as u64)),
                "{seen:?}"
            );
        }
        assert!(seen.iter().any(|&(_, l)| l == 9));

        // The CFI: in @outer's body the CFA is the frame pointer + 16.
        let fp = if isa == UnwindIsa::X86_64 { 6 } else { 29 };
        let body = outer.address + 8;
        assert_eq!(cfa_at(elf.section(".debug_frame").3, false, body), (fp, 16));
    }
}

/// Registering with the GDB JIT interface: the descriptor's list grows by
/// one object per finalized module and shrinks when it is removed.
#[test]
fn gdb_registration_follows_module_life() {
    let _serial = serial();
    let at_start = kiln::debug::gdb::registered_count();
    let e = Engine::default();
    // The engine's call trampoline is always registered.
    assert_eq!(kiln::debug::gdb::registered_count(), at_start + 1);
    let before = at_start + 1;
    e.set_debug_options(kiln::debug::DebugOptions {
        gdb: true,
        ..Default::default()
    })
    .unwrap();
    let id = e
        .add_module_text("g.kir", "func @g() -> i64 {\nentry:\n    ret 7\n}\n")
        .unwrap();
    assert_eq!(e.call("g", &[]).unwrap(), Some(Val::I64(7)));
    assert_eq!(kiln::debug::gdb::registered_count(), before + 1);
    e.remove_module(id).unwrap();
    assert_eq!(kiln::debug::gdb::registered_count(), before);
    e.add_module_text("h.kir", "func @h() -> i64 {\nentry:\n    ret 8\n}\n")
        .unwrap();
    assert_eq!(e.call("h", &[]).unwrap(), Some(Val::I64(8)));
    assert_eq!(kiln::debug::gdb::registered_count(), before + 1);
    drop(e);
    assert_eq!(kiln::debug::gdb::registered_count(), at_start);
}
