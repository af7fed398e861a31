//! Direct calls and their stubs (veneers): every call to a function symbol is
//! `call rel32` / `bl` with a call relocation; in range it is patched
//! directly, out of range it lands in a stub at the end of the caller's text
//! that jumps to the target's absolute address; a data reference out of range
//! is a link error naming module, symbol, kind and distance.
//!
//! Sections are placed where the test wants them with a sparse test
//! executor (`map_section_address`), so both ISAs are checked on any host;
//! on x86-64 Linux a far host function is also really called.

use kiln::executor::{Executor, TargetSection};
use kiln::ir::Signature;
use kiln::memory::SectionKind;
use kiln::{Engine, Error, Val};
use std::sync::{Arc, Mutex};

const TRAP_AT: u64 = 0x7777_0000;

/// Records written sections at any address; runs nothing.
#[derive(Default)]
struct SparseExecutor {
    written: Mutex<Vec<(u64, Vec<u8>)>>,
    /// Host symbols it resolves: name and address.
    host: Vec<(&'static str, u64)>,
}

impl SparseExecutor {
    fn with_host(host: &[(&'static str, u64)]) -> Self {
        SparseExecutor {
            written: Mutex::new(Vec::new()),
            host: host.to_vec(),
        }
    }

    /// `len` bytes at `addr`, from the one written section holding them.
    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let w = self.written.lock().unwrap();
        for (at, bytes) in w.iter() {
            if addr >= *at && addr + len as u64 <= at + bytes.len() as u64 {
                let o = (addr - at) as usize;
                return bytes[o..o + len].to_vec();
            }
        }
        panic!("{addr:#x} was not written");
    }

    fn u32_at(&self, addr: u64) -> u32 {
        u32::from_le_bytes(self.read(addr, 4).try_into().unwrap())
    }

    fn u64_at(&self, addr: u64) -> u64 {
        u64::from_le_bytes(self.read(addr, 8).try_into().unwrap())
    }
}

impl Executor for SparseExecutor {
    fn name(&self) -> &str {
        "sparse-test"
    }
    fn allocate_section(&self, _: SectionKind, _: u64, _: u64) -> kiln::Result<Option<u64>> {
        Ok(None)
    }
    fn release_section(&self, _: TargetSection) -> kiln::Result<()> {
        Ok(())
    }
    fn write_section(&self, s: TargetSection, bytes: &[u8]) -> kiln::Result<()> {
        self.written
            .lock()
            .unwrap()
            .push((s.address, bytes.to_vec()));
        Ok(())
    }
    fn finalize_sections(&self, _: &[TargetSection]) -> kiln::Result<()> {
        Ok(())
    }
    unsafe fn call(&self, _: u64, _: &Signature, _: &[Val]) -> kiln::Result<Option<Val>> {
        Err(Error::Runtime(
            "the sparse test executor runs nothing".into(),
        ))
    }
    fn host_symbol(&self, name: &str) -> Option<u64> {
        if name == kiln::isa::TRAP_HANDLER {
            return Some(TRAP_AT);
        }
        self.host.iter().find(|h| h.0 == name).map(|h| h.1)
    }
    fn host_signature(&self, _: &str) -> Option<Signature> {
        None
    }
}

/// Module a defines @f; module b calls it and the host function @far_host.
const A: &str = "func @f(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n";
const B: &str = "extern func @f(i64) -> i64\nextern func @far_host(i64) -> i64\n\
func @h(%a: i64) -> i64 {\nentry:\n    %x = call.i64 @f(%a)\n    %y = call.i64 @far_host(%x)\n    %z = call.i64 @f(%y)\n    ret %z\n}\n";

fn compile(target: &str, file: &str, text: &str) -> kiln::compiled::CompiledModule {
    let backend = kiln::isa::backend(target).unwrap();
    kiln::emit::compile_module(&kiln::ir::parse::parse_module(file, text).unwrap(), backend)
        .unwrap()
}

/// Loads a and b with a's text at `a_text`, b's at `b_text` and finalizes;
/// returns the executor, the engine and b's compiled form.
fn place_ab(
    target: &str,
    a_text: u64,
    b_text: u64,
    far_host: u64,
) -> (Arc<SparseExecutor>, Engine, kiln::compiled::CompiledModule) {
    let ex = Arc::new(SparseExecutor::with_host(&[("far_host", far_host)]));
    let e = Engine::with_executor(target, ex.clone()).unwrap();
    let a = e.add_module_text("a.kir", A).unwrap();
    let b = e.add_module_text("b.kir", B).unwrap();
    e.load_module(b).unwrap();
    e.map_section_address(a, SectionKind::Text, a_text).unwrap();
    e.map_section_address(b, SectionKind::Text, b_text).unwrap();
    e.finalize().unwrap();
    (ex, e, compile(target, "b.kir", B))
}

/// Where each call of b's text lands, with its target symbol, in order.
fn x86_call_landings(
    ex: &SparseExecutor,
    cb: &kiln::compiled::CompiledModule,
    b_text: u64,
) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for r in cb.relocs.iter().filter(|r| r.kind.is_call()) {
        assert_eq!(r.kind, kiln::reloc::RelocKind::X86CallPcRel32, "{r:?}");
        let field = b_text + u64::from(r.offset);
        assert_eq!(ex.read(field - 1, 1), [0xe8], "a call rel32");
        let rel = ex.u32_at(field) as i32;
        out.push((
            r.target.clone(),
            (field + 4).wrapping_add_signed(rel.into()),
        ));
    }
    out
}

#[test]
fn x86_calls_in_range_are_patched_directly() {
    let (a_text, b_text, host) = (0x1000_0000, 0x1010_0000, 0x5000_0000);
    let (ex, e, cb) = place_ab("x86_64", a_text, b_text, host);
    let f = e.symbol_address("f").unwrap();
    assert_eq!(f, a_text);
    let landings = x86_call_landings(&ex, &cb, b_text);
    assert_eq!(
        landings,
        vec![
            ("f".to_string(), f),
            ("far_host".to_string(), host),
            ("f".to_string(), f)
        ]
    );
    assert_eq!(e.stats().unwrap().calls_through_stubs, 0);
}

#[test]
fn x86_far_calls_go_through_stubs_holding_the_final_target() {
    // b is 3 GiB above a, the host function 64 GiB away: neither reaches.
    let (a_text, b_text, host) = (0x1000_0000, 0x1000_0000 + (3 << 30), 0x10_0000_0000);
    let (ex, e, cb) = place_ab("x86_64", a_text, b_text, host);
    let f = e.symbol_address("f").unwrap();
    let landings = x86_call_landings(&ex, &cb, b_text);
    // One slot per distinct target, after b's code, in first-use order.
    let stubs = b_text + (cb.text.len() as u64).next_multiple_of(16);
    assert_eq!(
        landings,
        vec![
            ("f".to_string(), stubs),
            ("far_host".to_string(), stubs + 16),
            ("f".to_string(), stubs)
        ]
    );
    for (slot, target) in [(stubs, f), (stubs + 16, host)] {
        // jmp qword [rip+0]; .quad target; int3 padding.
        assert_eq!(ex.read(slot, 6), [0xff, 0x25, 0, 0, 0, 0]);
        assert_eq!(ex.u64_at(slot + 6), target);
    }
    assert_eq!(e.stats().unwrap().calls_through_stubs, 3);
}

#[test]
fn x86_data_reference_out_of_range_is_an_error_naming_everything() {
    let src = "const @k = { i64 42 }\n\
func @get() -> i64 {\nentry:\n    %p = addr @k\n    %v = load.i64 %p\n    ret %v\n}\n";
    let ex = Arc::new(SparseExecutor::default());
    let e = Engine::with_executor("x86_64", ex).unwrap();
    let m = e.add_module_text("k.kir", src).unwrap();
    e.load_module(m).unwrap();
    let (text, rodata) = (0x1000_0000u64, 0x1000_0000u64 + (5 << 30));
    e.map_section_address(m, SectionKind::Text, text).unwrap();
    e.map_section_address(m, SectionKind::Rodata, rodata)
        .unwrap();
    let cm = compile("x86_64", "k.kir", src);
    let r = cm
        .relocs
        .iter()
        .find(|r| r.target == "k")
        .expect("a fixup for @k");
    assert_eq!(r.kind, kiln::reloc::RelocKind::X86PcRel32);
    let place = text + u64::from(r.offset);
    let target = rodata + cm.symbol("k").unwrap().offset;
    let distance = target as i64 + r.addend - place as i64;
    let Err(Error::Link(d)) = e.finalize() else {
        panic!("expected a link error");
    };
    assert_eq!(d.file, "k.kir");
    assert_eq!(
        d.message,
        format!(
            "cannot relocate text+{:#x} to @k (target {target:#x}, place {place:#x}): \
             X86PcRel32 relocation out of range: value {distance} ({distance:#x}) is outside \
             -2147483648..=2147483647",
            r.offset
        )
    );
}

/// Where each `bl` of b's text lands.
fn bl_landings(
    ex: &SparseExecutor,
    cb: &kiln::compiled::CompiledModule,
    b_text: u64,
) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for r in cb.relocs.iter().filter(|r| r.kind.is_call()) {
        assert_eq!(r.kind, kiln::reloc::RelocKind::Arm64Call26, "{r:?}");
        let at = b_text + u64::from(r.offset);
        let insn = ex.u32_at(at);
        assert_eq!(insn & 0xfc00_0000, 0x9400_0000, "a bl: {insn:#010x}");
        // imm26, sign-extended, in words.
        let words = (((insn & 0x03ff_ffff) << 6) as i32) >> 6;
        out.push((
            r.target.clone(),
            at.wrapping_add_signed(i64::from(words) * 4),
        ));
    }
    out
}

#[test]
fn aarch64_calls_in_range_are_patched_directly() {
    // 100 MiB apart: within bl's ±128 MiB.
    let (a_text, b_text, host) = (0x1000_0000, 0x1000_0000 + (100 << 20), 0x0fff_0000);
    let (ex, e, cb) = place_ab("aarch64", a_text, b_text, host);
    let f = e.symbol_address("f").unwrap();
    assert_eq!(
        bl_landings(&ex, &cb, b_text),
        vec![
            ("f".to_string(), f),
            ("far_host".to_string(), host),
            ("f".to_string(), f)
        ]
    );
    assert_eq!(e.stats().unwrap().calls_through_stubs, 0);
}

#[test]
fn aarch64_far_calls_go_through_veneers_holding_the_final_target() {
    // b is 200 MiB above a; the host function 1 TiB away.
    let (a_text, b_text, host) = (0x1000_0000, 0x1000_0000 + (200 << 20), 1 << 40);
    let (ex, e, cb) = place_ab("aarch64", a_text, b_text, host);
    let f = e.symbol_address("f").unwrap();
    let stubs = b_text + (cb.text.len() as u64).next_multiple_of(16);
    assert_eq!(
        bl_landings(&ex, &cb, b_text),
        vec![
            ("f".to_string(), stubs),
            ("far_host".to_string(), stubs + 16),
            ("f".to_string(), stubs)
        ]
    );
    for (slot, target) in [(stubs, f), (stubs + 16, host)] {
        assert_eq!(ex.u32_at(slot), 0x5800_0050, "ldr x16, #8");
        assert_eq!(ex.u32_at(slot + 4), 0xd61f_0200, "br x16");
        assert_eq!(ex.u64_at(slot + 8), target);
    }
    assert_eq!(e.stats().unwrap().calls_through_stubs, 3);
}

#[test]
fn aarch64_veneer_words_decode_as_ldr_literal_and_br() {
    use yaxpeax_arch::{Decoder, U8Reader};
    use yaxpeax_arm::armv8::a64::InstDecoder;
    let (a_text, b_text) = (0x1000_0000, 0x1000_0000 + (200 << 20));
    let (ex, _e, cb) = place_ab("aarch64", a_text, b_text, 0x0fff_0000);
    let stub = b_text + (cb.text.len() as u64).next_multiple_of(16);
    let bytes = ex.read(stub, 8);
    let d = InstDecoder::default();
    let mut reader = U8Reader::new(&bytes);
    let ldr = d.decode(&mut reader).unwrap().to_string();
    let br = d.decode(&mut reader).unwrap().to_string();
    assert!(ldr.starts_with("ldr x16"), "{ldr}");
    assert!(ldr.contains("0x8"), "{ldr}");
    assert_eq!(br, "br x16");
}

#[test]
fn aarch64_data_reference_out_of_range_is_an_error_naming_everything() {
    let src = "const @k = { i64 42 }\n\
func @get() -> i64 {\nentry:\n    %p = addr @k\n    %v = load.i64 %p\n    ret %v\n}\n";
    let ex = Arc::new(SparseExecutor::default());
    let e = Engine::with_executor("aarch64", ex).unwrap();
    let m = e.add_module_text("k.kir", src).unwrap();
    e.load_module(m).unwrap();
    // 8 GiB: beyond adrp's ±4 GiB.
    let (text, rodata) = (0x1000_0000u64, 0x1000_0000u64 + (8 << 30));
    e.map_section_address(m, SectionKind::Text, text).unwrap();
    e.map_section_address(m, SectionKind::Rodata, rodata)
        .unwrap();
    let cm = compile("aarch64", "k.kir", src);
    let r = cm
        .relocs
        .iter()
        .find(|r| r.target == "k" && r.kind == kiln::reloc::RelocKind::Arm64AdrpPage21)
        .expect("an adrp for @k");
    let place = text + u64::from(r.offset);
    let target = rodata + cm.symbol("k").unwrap().offset;
    let pages = (target >> 12) as i64 - (place >> 12) as i64;
    let Err(Error::Link(d)) = e.finalize() else {
        panic!("expected a link error");
    };
    assert_eq!(d.file, "k.kir");
    assert_eq!(
        d.message,
        format!(
            "cannot relocate text+{:#x} to @k (target {target:#x}, place {place:#x}): \
             Arm64AdrpPage21 relocation out of range: value {pages} ({pages:#x}) is outside \
             -1048576..=1048575",
            r.offset
        )
    );
}

/// On x86-64 Linux: a host function mapped ≥ 4 GiB away from kiln's code
/// is really called through a stub.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn x86_a_far_host_function_is_called_through_a_stub() {
    let e = Engine::default();
    // Where kiln's code lives: a first module's text.
    let probe = e
        .add_module_text(
            "probe.kir",
            "func @probe() -> i64 {\nentry:\n    ret 0\n}\n",
        )
        .unwrap();
    e.finalize_module(probe).unwrap();
    let near = e
        .section_address(probe, SectionKind::Text)
        .unwrap()
        .unwrap();
    // lea rax, [rdi + rdi*2 + 1]; ret
    let code = [0x48u8, 0x8d, 0x44, 0x7f, 0x01, 0xc3];
    let page = map_far_page(near, &code).expect("a page ≥ 4 GiB from kiln's code");
    let sig = kiln::ir::parse::parse_module("s.kir", "extern func @s(i64) -> i64\n")
        .unwrap()
        .symbols[0]
        .signature()
        .cloned();
    e.register_host_symbol("far_triple", page as usize, sig)
        .unwrap();
    let m = e
        .add_module_text(
            "m.kir",
            "extern func @far_triple(i64) -> i64\n\
func @main(%x: i64) -> i64 {\nentry:\n    %y = call.i64 @far_triple(%x)\n    %z = add.i64 %y, 100\n    ret %z\n}\n",
        )
        .unwrap();
    let before = e.stats().unwrap().calls_through_stubs;
    assert_eq!(e.call("main", &[Val::I64(5)]).unwrap(), Some(Val::I64(116)));
    assert_eq!(e.stats().unwrap().calls_through_stubs, before + 1);
    let text = e.section_address(m, SectionKind::Text).unwrap().unwrap();
    assert!(text.abs_diff(page) >= 1 << 32, "{text:#x} {page:#x}");
}

/// Maps `code` on an executable page at least 4 GiB (and at most ~64 GiB)
/// from `near`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn map_far_page(near: u64, code: &[u8]) -> Option<u64> {
    for gib in [8u64, 16, 32, 64] {
        for hint in [near.checked_add(gib << 30), near.checked_sub(gib << 30)]
            .into_iter()
            .flatten()
        {
            let hint = hint & !0xfff;
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping;
            // the page is fresh and ours.
            let p = unsafe {
                libc::mmap(
                    hint as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                continue;
            }
            let at = p as u64;
            if at.abs_diff(near) < 1 << 32 {
                // SAFETY: unmapping the page just mapped.
                unsafe { libc::munmap(p, 4096) };
                continue;
            }
            // SAFETY: the page is 4096 writable bytes; code is shorter.
            unsafe {
                std::ptr::copy_nonoverlapping(code.as_ptr(), p.cast::<u8>(), code.len());
                if libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                    return None;
                }
            }
            // Leaked on purpose: kiln code may call it until the process ends.
            return Some(at);
        }
    }
    None
}

/// Under the emulator: b's calls to a's @f, 512 MiB away, really run
/// through the veneer (the sections are placed by the sparse executor, then
/// copied into an emulated machine at the same addresses).
#[cfg(feature = "emulate")]
#[test]
fn aarch64_far_calls_run_through_veneers_under_the_emulator() {
    use kiln::emulate::{EmulatedAarch64, EmulatorConfig, Outcome};
    let c = "extern func @f(i64) -> i64\n\
func @twice(%a: i64) -> i64 {\nentry:\n    %x = call.i64 @f(%a)\n    %y = call.i64 @f(%x)\n    %z = mul.i64 %y, 10\n    ret %z\n}\n";
    let ex = Arc::new(SparseExecutor::default());
    let e = Engine::with_executor("aarch64", ex.clone()).unwrap();
    let a = e.add_module_text("a.kir", A).unwrap();
    let m = e.add_module_text("c.kir", c).unwrap();
    e.load_module(m).unwrap();
    let (a_text, c_text) = (0x1_0000_0000u64, 0x1_2000_0000u64);
    e.map_section_address(a, SectionKind::Text, a_text).unwrap();
    e.map_section_address(m, SectionKind::Text, c_text).unwrap();
    e.finalize().unwrap();
    assert_eq!(e.stats().unwrap().calls_through_stubs, 2);
    let twice = e.symbol_address("twice").unwrap();

    let mut emu = EmulatedAarch64::new(EmulatorConfig {
        instruction_limit: Some(100_000),
        time_limit: None,
        ..EmulatorConfig::default()
    })
    .unwrap();
    for (at, bytes) in ex.written.lock().unwrap().iter() {
        emu.map(*at, bytes.len() as u64, SectionKind::Text).unwrap();
        emu.write(*at, bytes).unwrap();
    }
    match emu.call(twice, &[Val::I64(5)], Some(kiln::ir::Type::I64)) {
        Ok(Outcome::Returned(Some(v))) => assert_eq!(v, Val::I64(70)),
        other => panic!("expected a returned value, got {other:?}"),
    }
}

/// In process, with reservations of 64 KiB: once a reservation is full the
/// next module lands in a new one, and calls into the first still run,
/// through stubs exactly when out of rel32 range. (Where the kernel puts
/// the new reservations is its choice: usually near, so usually direct;
/// the far path in process is `x86_a_far_host_function_is_called_through_a_stub`.)
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn x86_calls_into_a_full_reservation_still_run() {
    use kiln::executor::InProcessExecutor;
    use kiln::memory::MemoryConfig;
    use kiln::registry::Registry;
    let ex = Arc::new(InProcessExecutor::new(None).unwrap());
    let config = MemoryConfig {
        reservation_size: 1 << 16,
        max_reservations: 64,
        ..Default::default()
    };
    let mut reg = Registry::new("x86_64", ex.clone(), config).unwrap();
    let parse = |file: &str, text: &str| kiln::ir::parse::parse_module(file, text).unwrap();
    let a = reg.add(parse("a.kir", A)).unwrap();
    reg.finalize_from(&[a]).unwrap();
    let f = reg.symbol_address("f").unwrap();
    let mut far = 0;
    for i in 0..6i64 {
        let src = format!(
            "extern func @f(i64) -> i64\nconst @pad{i} = {{ zero 40000 }}\n\
func @g{i}(%x: i64) -> i64 {{\nentry:\n    %y = call.i64 @f(%x)\n    %z = add.i64 %y, {i}\n    ret %z\n}}\n"
        );
        let b = reg.add(parse(&format!("b{i}.kir"), &src)).unwrap();
        reg.finalize_from(&[b]).unwrap();
        let text = reg.section_address(b, SectionKind::Text).unwrap();
        let distance = text.abs_diff(f);
        assert!(
            !((1 << 31) - (1 << 20)..(1 << 31) + (1 << 20)).contains(&distance),
            "too close to the rel32 limit to tell: {distance:#x}"
        );
        if distance > 1 << 31 {
            far += 1;
        }
        let (addr, sig, _pin) = reg.function(&format!("g{i}")).unwrap();
        // SAFETY: a finalized function of `sig`, its module pinned.
        let r = unsafe { ex.call(addr, &sig, &[Val::I64(10)]) }.unwrap();
        assert_eq!(r, Some(Val::I64(11 + i)), "b{i} at {text:#x}, f at {f:#x}");
    }
    assert!(reg.memory().stats().reservations >= 2);
    assert_eq!(reg.stats().calls_through_stubs, far);
}
