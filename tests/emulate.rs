//! The emulated AArch64 executor: calling conventions, host calls through
//! stubs, the emulated heap, traps, limits and faults. The code under test
//! is assembled here with dynasm (or as raw instruction words) and run
//! under Unicorn.
#![cfg(feature = "emulate")]

use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};
use kiln::emulate::{layout, EmulatedAarch64, EmulatorConfig, Outcome, TRAP_SYMBOL};
use kiln::host::HostFunction;
use kiln::ir::{Signature, Type};
use kiln::memory::SectionKind;
use kiln::{Error, TrapCode, Val};
use std::sync::{Arc, Mutex};

type Asm = VecAssembler<Aarch64Relocation>;

fn asm() -> Asm {
    VecAssembler::new(0)
}

/// `movz`/`movk` x`rd` with the 64-bit `value`, as raw words.
fn mov_imm64(a: &mut Asm, rd: u32, value: u64) {
    a.push_u32(0xd280_0000 | ((value & 0xffff) as u32) << 5 | rd);
    for hw in 1..4u32 {
        let part = ((value >> (16 * hw)) & 0xffff) as u32;
        if part != 0 {
            a.push_u32(0xf280_0000 | hw << 21 | part << 5 | rd);
        }
    }
}

/// Calls the absolute address `target` through x16 (`movz/movk; blr x16`),
/// as a veneer to a host function would.
fn call_abs(a: &mut Asm, target: u64) {
    mov_imm64(a, 16, target);
    dynasm!(a ; .arch aarch64 ; blr x16);
}

fn machine() -> EmulatedAarch64 {
    EmulatedAarch64::new(EmulatorConfig {
        instruction_limit: Some(1_000_000),
        time_limit: None,
        ..EmulatorConfig::default()
    })
    .expect("emulator")
}

/// Loads `code` into a fresh text mapping and returns its address.
fn load(m: &mut EmulatedAarch64, a: Asm) -> u64 {
    let code = a.finalize().expect("assembled");
    let addr = m.map_new(code.len() as u64, SectionKind::Text).unwrap();
    m.write(addr, &code).unwrap();
    addr
}

fn returned(r: kiln::Result<Outcome>) -> Val {
    match r {
        Ok(Outcome::Returned(Some(v))) => v,
        other => panic!("expected a returned value, got {other:?}"),
    }
}

fn runtime_error(r: kiln::Result<Outcome>) -> String {
    match r {
        Err(Error::Runtime(m)) => m,
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn adds_two_ints() {
    let mut m = machine();
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; add w0, w0, w1 ; ret);
    let f = load(&mut m, a);
    let add = |m: &mut EmulatedAarch64, x, y| {
        returned(m.call(f, &[Val::I32(x), Val::I32(y)], Some(Type::I32)))
    };
    assert_eq!(add(&mut m, 2, 40), Val::I32(42));
    assert_eq!(add(&mut m, -5, 3), Val::I32(-2));
    assert_eq!(add(&mut m, i32::MAX, 1), Val::I32(i32::MIN));

    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; sub x0, x0, x1 ; ret);
    let g = load(&mut m, a);
    let r = m.call(g, &[Val::I64(1 << 40), Val::I64(-3)], Some(Type::I64));
    assert_eq!(returned(r), Val::I64((1 << 40) + 3));
}

#[test]
fn multiplies_floats() {
    let mut m = machine();
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; fmul d0, d0, d1 ; ret);
    let f = load(&mut m, a);
    let r = m.call(f, &[Val::F64(1.5), Val::F64(-4.25)], Some(Type::F64));
    assert_eq!(returned(r), Val::F64(-6.375));

    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; fmul s0, s0, s1 ; ret);
    let g = load(&mut m, a);
    let r = m.call(g, &[Val::F32(3.0), Val::F32(0.5)], Some(Type::F32));
    assert_eq!(returned(r), Val::F32(1.5));

    // Integer and float arguments are numbered independently: the f64 is
    // in d0 although it comes second.
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; scvtf d1, x0 ; fadd d0, d0, d1 ; ret);
    let h = load(&mut m, a);
    let r = m.call(h, &[Val::I64(10), Val::F64(0.25)], Some(Type::F64));
    assert_eq!(returned(r), Val::F64(10.25));
}

/// acc = acc * 3 + next over the arguments in order: any misplaced or
/// swapped argument changes the result.
fn horner(args: &[i64]) -> i64 {
    args.iter()
        .skip(1)
        .fold(args[0], |acc, &x| acc.wrapping_mul(3).wrapping_add(x))
}

#[test]
fn ten_int_args_pass_two_on_the_stack() {
    let mut m = machine();
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; mov x11, #3
        ; madd x0, x0, x11, x1
        ; madd x0, x0, x11, x2
        ; madd x0, x0, x11, x3
        ; madd x0, x0, x11, x4
        ; madd x0, x0, x11, x5
        ; madd x0, x0, x11, x6
        ; madd x0, x0, x11, x7
        ; ldr x9, [sp]
        ; madd x0, x0, x11, x9
        ; ldr x9, [sp, #8]
        ; madd x0, x0, x11, x9
        // SP must be 16-byte aligned at entry.
        ; mov x10, sp
        ; and x10, x10, #15
        ; add x0, x0, x10
        ; ret
    );
    let f = load(&mut m, a);
    let args: Vec<i64> = vec![5, -7, 11, 13, 1 << 33, -17, 19, 23, 29, -(1 << 40)];
    let vals: Vec<Val> = args.iter().map(|&v| Val::I64(v)).collect();
    assert_eq!(
        returned(m.call(f, &vals, Some(Type::I64))),
        Val::I64(horner(&args))
    );
}

#[test]
fn floats_past_eight_go_on_the_stack_in_order() {
    let mut m = machine();
    // Returns d0 + 2*[sp] + 4*[sp+8] with f32 slots: (s-registers).
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; ldr s16, [sp]
        ; ldr s17, [sp, #8]
        ; fadd s16, s16, s16
        ; fadd s17, s17, s17
        ; fadd s17, s17, s17
        ; fadd s0, s0, s7
        ; fadd s0, s0, s16
        ; fadd s0, s0, s17
        ; ret
    );
    let f = load(&mut m, a);
    let mut args: Vec<Val> = (0..8).map(|i| Val::F32(i as f32 * 100.0)).collect();
    args.push(Val::F32(1.0));
    args.push(Val::F32(10.0));
    // d0 = 0, d7 = 700, stack: 1 then 10.
    let r = m.call(f, &args, Some(Type::F32));
    assert_eq!(returned(r), Val::F32(700.0 + 2.0 + 40.0));
}

#[test]
fn host_function_through_a_stub_sees_its_arguments() {
    let mut m = machine();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let sig = Signature::new(vec![Type::I64, Type::F64, Type::I32], Some(Type::I64));
    let stub = m
        .define_host(
            "record",
            HostFunction {
                sig,
                func: Arc::new(move |args: &[Val]| {
                    log.lock().unwrap().extend_from_slice(args);
                    match args {
                        [Val::I64(a), Val::F64(b), Val::I32(c)] => {
                            Ok(Some(Val::I64(a + *b as i64 + i64::from(*c))))
                        }
                        _ => Ok(None),
                    }
                }),
            },
        )
        .unwrap();
    assert_eq!(m.host_address("record"), Some(stub));

    // f(x) = record(x, 2.5, 7) + 1000, keeping x30 across the call.
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; stp x29, x30, [sp, #-16]!
        ; mov x29, sp
        ; fmov d0, #2.5
        ; mov w1, #7
    );
    call_abs(&mut a, stub);
    dynasm!(a
        ; .arch aarch64
        ; add x0, x0, #1000
        ; ldp x29, x30, [sp], #16
        ; ret
    );
    let f = load(&mut m, a);
    assert_eq!(
        returned(m.call(f, &[Val::I64(40)], Some(Type::I64))),
        Val::I64(40 + 2 + 7 + 1000)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [Val::I64(40), Val::F64(2.5), Val::I32(7)]
    );
}

/// The putchar program; run in a child process so its real stdout can be
/// checked.
fn putchar_program(m: &mut EmulatedAarch64) -> u64 {
    let putchar = m.host_address("putchar").unwrap();
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; stp x29, x30, [sp, #-32]!
        ; mov x29, sp
        ; str x19, [sp, #16]
        ; mov w19, #0
    );
    for c in b"<emu:hi>\n" {
        let c = u32::from(*c);
        dynasm!(a ; .arch aarch64 ; mov w0, #c);
        call_abs(&mut a, putchar);
        // putchar returns the character written.
        dynasm!(a ; .arch aarch64 ; add w19, w19, w0);
    }
    dynasm!(a
        ; .arch aarch64
        ; mov w0, w19
        ; ldr x19, [sp, #16]
        ; ldp x29, x30, [sp], #32
        ; ret
    );
    load(m, a)
}

#[test]
fn putchar_writes_to_the_real_stdout() {
    if std::env::var_os("KILN_EMU_PUTCHAR_CHILD").is_some() {
        let mut m = machine();
        let f = putchar_program(&mut m);
        let sum: i32 = b"<emu:hi>\n".iter().map(|&c| i32::from(c)).sum();
        assert_eq!(returned(m.call(f, &[], Some(Type::I32))), Val::I32(sum));
        // getchar reads the real stdin: the parent sends "Z", then EOF.
        let getchar = m.host_address("getchar").unwrap();
        let putchar = m.host_address("putchar").unwrap();
        let c = returned(m.call(getchar, &[], Some(Type::I32)));
        assert_eq!(c, Val::I32(i32::from(b'Z')));
        m.call(putchar, &[c], Some(Type::I32)).unwrap();
        assert_eq!(
            returned(m.call(getchar, &[], Some(Type::I32))),
            Val::I32(-1)
        );
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "putchar_writes_to_the_real_stdout",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("KILN_EMU_PUTCHAR_CHILD", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"Z").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(stdout.contains("<emu:hi>\nZ"), "stdout was: {stdout}");
}

#[test]
fn malloc_store_load_roundtrip_in_emulated_code() {
    let mut m = machine();
    let (malloc, free) = (
        m.host_address("malloc").unwrap(),
        m.host_address("free").unwrap(),
    );
    // f(v): p = malloc(24); p[1] = v; r = p[1]; free(p); return r.
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; stp x29, x30, [sp, #-32]!
        ; mov x29, sp
        ; stp x19, x20, [sp, #16]
        ; mov x19, x0
        ; mov x0, #24
    );
    call_abs(&mut a, malloc);
    dynasm!(a
        ; .arch aarch64
        ; str x19, [x0, #8]
        ; ldr x20, [x0, #8]
        ; mov x19, x0
    );
    call_abs(&mut a, free);
    dynasm!(a
        ; .arch aarch64
        ; mov x0, x20
        ; ldp x19, x20, [sp, #16]
        ; ldp x29, x30, [sp], #32
        ; ret
    );
    let f = load(&mut m, a);
    let v = 0x1234_5678_9abc_def0u64 as i64;
    assert_eq!(
        returned(m.call(f, &[Val::I64(v)], Some(Type::I64))),
        Val::I64(v)
    );
    assert_eq!(m.heap_in_use(), 0, "free returned the block");
}

#[test]
fn host_memory_functions_act_on_emulated_memory() {
    let mut m = machine();
    let host = |m: &EmulatedAarch64, name| m.host_address(name).unwrap();
    let (malloc, calloc, memset, memcpy, memcmp, free) = (
        host(&m, "malloc"),
        host(&m, "calloc"),
        host(&m, "memset"),
        host(&m, "memcpy"),
        host(&m, "memcmp"),
        host(&m, "free"),
    );
    let ptr = |v: Val| match v {
        Val::I64(p) => p as u64,
        other => panic!("{other:?}"),
    };
    let p = ptr(returned(m.call(malloc, &[Val::I64(100)], Some(Type::I64))));
    assert!(p >= layout::HEAP_BASE && p % 16 == 0);
    let q = ptr(returned(m.call(
        calloc,
        &[Val::I64(10), Val::I64(10)],
        Some(Type::I64),
    )));
    assert!(q >= p + 100, "distinct blocks");

    let r = m.call(
        memset,
        &[Val::I64(p as i64), Val::I32(0x1ab), Val::I64(100)],
        Some(Type::I64),
    );
    assert_eq!(returned(r), Val::I64(p as i64));
    let mut buf = [0u8; 100];
    m.read(p, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xab), "memset stores the low byte");
    m.read(q, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "calloc zeroes");

    m.write(q + 10, b"kiln").unwrap();
    let r = m.call(
        memcpy,
        &[Val::I64(p as i64 + 1), Val::I64(q as i64 + 10), Val::I64(4)],
        Some(Type::I64),
    );
    assert_eq!(returned(r), Val::I64(p as i64 + 1));
    let mut five = [0u8; 6];
    m.read(p, &mut five).unwrap();
    assert_eq!(&five, b"\xabkiln\xab");

    let cmp = |m: &mut EmulatedAarch64, a: u64, b: u64, n: i64| match returned(m.call(
        memcmp,
        &[Val::I64(a as i64), Val::I64(b as i64), Val::I64(n)],
        Some(Type::I32),
    )) {
        Val::I32(v) => v.signum(),
        other => panic!("{other:?}"),
    };
    assert_eq!(cmp(&mut m, p + 1, q + 10, 4), 0);
    assert_eq!(cmp(&mut m, p, q + 10, 4), 1, "0xab > 'k'");
    assert_eq!(cmp(&mut m, q, p, 4), -1);
    assert_eq!(cmp(&mut m, q, p, 0), 0);

    // free(p) twice: the second is reported, not a crash.
    assert_eq!(
        m.call(free, &[Val::I64(p as i64)], None),
        Ok(Outcome::Returned(None))
    );
    let msg = runtime_error(m.call(free, &[Val::I64(p as i64)], None));
    assert!(msg.contains("free("), "{msg}");

    // memcpy onto unmapped memory names the function and the address.
    let msg = runtime_error(m.call(
        memcpy,
        &[Val::I64(0x4000), Val::I64(q as i64), Val::I64(8)],
        Some(Type::I64),
    ));
    assert!(msg.contains("memcpy") && msg.contains("0x4000"), "{msg}");
    // ... and onto read-only memory too, although the loader may write it.
    let ro = m.map_new(16, SectionKind::Rodata).unwrap();
    let msg = runtime_error(m.call(
        memset,
        &[Val::I64(ro as i64), Val::I32(0), Val::I64(8)],
        Some(Type::I64),
    ));
    assert!(msg.contains("read-only"), "{msg}");
    // An exhausted heap makes malloc return null, as in C.
    let r = m.call(malloc, &[Val::I64(1 << 40)], Some(Type::I64));
    assert_eq!(returned(r), Val::I64(0));
}

#[test]
fn exit_and_abort_end_the_run() {
    let mut m = machine();
    let exit = m.host_address("exit").unwrap();
    let abort = m.host_address("abort").unwrap();
    // main: exit(7); then code that must never run (it would return 99).
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; stp x29, x30, [sp, #-16]! ; mov w0, #7);
    call_abs(&mut a, exit);
    dynasm!(a ; .arch aarch64 ; mov w0, #99 ; ldp x29, x30, [sp], #16 ; ret);
    let f = load(&mut m, a);
    assert_eq!(m.call(f, &[], Some(Type::I32)), Ok(Outcome::Exit(7)));
    assert_eq!(m.call(exit, &[Val::I32(-1)], None), Ok(Outcome::Exit(-1)));
    assert_eq!(m.call(abort, &[], None), Ok(Outcome::Abort));
}

#[test]
fn trap_handler_ends_the_run_with_the_trap() {
    let mut m = machine();
    let trap = m.host_address(TRAP_SYMBOL).unwrap();
    assert_eq!(trap, layout::TRAP_HANDLER);
    // f(x): if x == 0 trap(division by zero) else return 100 / x.
    let code = TrapCode::DivisionByZero.code();
    let mut a = asm();
    dynasm!(a
        ; .arch aarch64
        ; cbz w0, >zero
        ; mov w1, #100
        ; sdiv w0, w1, w0
        ; ret
        ; zero:
        ; mov w0, #code
    );
    call_abs(&mut a, trap);
    dynasm!(a ; .arch aarch64 ; brk #0);
    let f = load(&mut m, a);
    assert_eq!(
        returned(m.call(f, &[Val::I32(7)], Some(Type::I32))),
        Val::I32(14)
    );
    assert_eq!(
        m.call(f, &[Val::I32(0)], Some(Type::I32))
            .map_err(|e| e.trap_code()),
        Err(Some(TrapCode::DivisionByZero))
    );
    // An unknown code is an error, not a trap.
    let msg = runtime_error(m.call(trap, &[Val::I32(77)], None));
    assert!(msg.contains("77"), "{msg}");
    // The machine is still usable afterwards.
    assert_eq!(
        returned(m.call(f, &[Val::I32(-50)], Some(Type::I32))),
        Val::I32(-2)
    );
}

#[test]
fn infinite_loop_is_stopped_by_the_instruction_limit() {
    let mut m = machine();
    let mut a = asm();
    a.push_u32(0x1400_0000); // b .
    let f = load(&mut m, a);
    let msg = runtime_error(m.call(f, &[], None));
    assert!(
        msg.contains("emulation limit") && msg.contains(&format!("{f:#x}")),
        "{msg}"
    );

    // A time limit alone stops it too.
    m.set_limits(None, Some(std::time::Duration::from_millis(20)));
    let msg = runtime_error(m.call(f, &[], None));
    assert!(msg.contains("emulation limit"), "{msg}");
}

#[test]
fn finishing_within_the_limit_is_not_an_error() {
    let mut m = machine();
    // Counts x0 down to zero: about 2 * x0 instructions.
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; top: ; subs x0, x0, #1 ; b.ne <top ; mov x0, #5 ; ret);
    let f = load(&mut m, a);
    m.set_limits(Some(10_000), None);
    assert_eq!(
        returned(m.call(f, &[Val::I64(1000)], Some(Type::I64))),
        Val::I64(5)
    );
    let msg = runtime_error(m.call(f, &[Val::I64(100_000)], Some(Type::I64)));
    assert!(msg.contains("10000 instructions"), "{msg}");
}

#[test]
fn bad_accesses_and_instructions_are_errors_naming_pc_and_address() {
    let mut m = machine();
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; ldr x0, [x0] ; ret);
    let load_fn = load(&mut m, a);
    let msg = runtime_error(m.call(load_fn, &[Val::I64(0x5000_0000)], Some(Type::I64)));
    assert!(msg.contains("0x50000000"), "{msg}");
    assert!(
        msg.contains("read") && msg.contains(&format!("pc {load_fn:#x}")),
        "{msg}"
    );

    // A store to rodata.
    let ro = m.map_new(64, SectionKind::Rodata).unwrap();
    m.write(ro, &42u64.to_le_bytes()).unwrap();
    assert_eq!(
        returned(m.call(load_fn, &[Val::I64(ro as i64)], Some(Type::I64))),
        Val::I64(42)
    );
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; str x1, [x0] ; ret);
    let store_fn = load(&mut m, a);
    let msg = runtime_error(m.call(store_fn, &[Val::I64(ro as i64), Val::I64(1)], None));
    assert!(
        msg.contains("write") && msg.contains(&format!("{ro:#x}")),
        "{msg}"
    );

    // Jumping to data: not executable.
    let data = m.map_new(64, SectionKind::Data).unwrap();
    let msg = runtime_error(m.call(data, &[], None));
    assert!(
        msg.contains("fetch") && msg.contains(&format!("{data:#x}")),
        "{msg}"
    );
    // Jumping nowhere.
    let msg = runtime_error(m.call(0x7000, &[], None));
    assert!(msg.contains("0x7000"), "{msg}");

    // An undefined instruction.
    let mut a = asm();
    a.push_u32(0xd503_201f); // nop
    a.push_u32(0x0000_0000); // udf #0
    let udf = load(&mut m, a);
    let msg = runtime_error(m.call(udf, &[], None));
    assert!(msg.contains(&format!("pc {:#x}", udf + 4)), "{msg}");

    // Stack overflow from unbounded recursion hits the unmapped guard.
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; top: ; stp x29, x30, [sp, #-16]! ; bl <top);
    let rec = load(&mut m, a);
    m.set_limits(Some(10_000_000), None);
    let msg = runtime_error(m.call(rec, &[], None));
    assert!(msg.contains("write"), "{msg}");

    // After all that, calls still work.
    assert_eq!(
        returned(m.call(load_fn, &[Val::I64(ro as i64)], Some(Type::I64))),
        Val::I64(42)
    );
}

#[test]
fn rewritten_code_is_not_run_stale() {
    let mut m = machine();
    let mut a = asm();
    dynasm!(a ; .arch aarch64 ; mov w0, #1 ; ret);
    let f = load(&mut m, a);
    assert_eq!(returned(m.call(f, &[], Some(Type::I32))), Val::I32(1));
    let mut b = asm();
    dynasm!(b ; .arch aarch64 ; mov w0, #2 ; ret);
    m.write(f, &b.finalize().unwrap()).unwrap();
    assert_eq!(returned(m.call(f, &[], Some(Type::I32))), Val::I32(2));
}

#[test]
fn mapping_rules() {
    let mut m = machine();
    let page = m.page_size();
    assert!(matches!(
        m.map(0x5000_0001, 16, SectionKind::Data),
        Err(Error::Argument(_))
    ));
    m.map(0x5000_0000, 1, SectionKind::Data).unwrap();
    // Overlap with the page just mapped.
    assert!(matches!(
        m.map(0x5000_0000, page, SectionKind::Text),
        Err(Error::Argument(_))
    ));
    // The machine's own stack cannot be unmapped.
    assert!(m.unmap(layout::STACK_TOP - page, page).is_err());
    m.write(0x5000_0000 + page - 2, b"ok").unwrap();
    assert!(
        m.write(0x5000_0000 + page - 1, b"ok").is_err(),
        "runs past the mapping"
    );
    let mut two = [0u8; 2];
    m.read(0x5000_0000 + page - 2, &mut two).unwrap();
    assert_eq!(&two, b"ok");
    m.unmap(0x5000_0000, page).unwrap();
    assert!(m.read(0x5000_0000, &mut two).is_err());
    // Host symbols: the built-in set, the trap handler, nothing else.
    for name in [
        "putchar", "getchar", "malloc", "calloc", "free", "memcpy", "memset", "memcmp", "abort",
        "exit",
    ] {
        let a = m.host_address(name).unwrap();
        assert!((layout::FIRST_HOST..layout::HOST_STUBS + layout::HOST_STUBS_SIZE).contains(&a));
        assert!(m.host_signature(name).is_some());
    }
    assert_eq!(m.host_address("printf"), None);
    // A stub slot no host function is bound to is an error, not a crash.
    let unbound = layout::FIRST_HOST + 4 * 1000;
    let msg = runtime_error(m.call(unbound, &[], None));
    assert!(msg.contains(&format!("{unbound:#x}")), "{msg}");
    // The heap is the machine's own too.
    assert!(m.unmap(layout::HEAP_BASE, page).is_err());
    assert_eq!(
        m.host_signature("memset"),
        Some(Signature::new(
            vec![Type::I64, Type::I32, Type::I64],
            Some(Type::I64)
        ))
    );
}
