//! Module registry behaviour through the engine: lazy compilation,
//! constant per-finalize work, remapping with a test executor, removal and
//! memory reuse, link errors with locations.

use kiln::executor::{Executor, TargetSection};
use kiln::ir::{Loc, Signature};
use kiln::memory::SectionKind;
use kiln::registry::ModuleState;
use kiln::reloc::RelocKind;
use kiln::{Engine, Error, Val};
use std::sync::{Arc, Mutex};

fn link_diag(r: Result<impl std::fmt::Debug, Error>) -> kiln::Diagnostic {
    match r {
        Err(Error::Link(d)) => d,
        other => panic!("expected a link error, got {other:?}"),
    }
}

#[test]
fn unreferenced_modules_are_never_compiled() {
    let e = Engine::default();
    let main = e
        .add_module_text(
            "main.kir",
            "extern func @f(i64) -> i64\nfunc @main() -> i64 {\nentry:\n    %r = call.i64 @f(20)\n    ret %r\n}\n",
        )
        .unwrap();
    let f = e
        .add_module_text(
            "f.kir",
            "func @f(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n",
        )
        .unwrap();
    let g = e
        .add_module_text("g.kir", "func @g() -> i64 {\nentry:\n    ret 3\n}\n")
        .unwrap();
    assert_eq!(
        e.stats().unwrap().modules_compiled,
        0,
        "add_module compiles nothing"
    );
    e.finalize().unwrap();
    assert_eq!(
        e.stats().unwrap().modules_compiled,
        0,
        "nothing loaded: nothing to do"
    );

    assert_eq!(e.call("main", &[]).unwrap(), Some(Val::I64(21)));
    let s = e.stats().unwrap();
    assert_eq!(s.modules_compiled, 2);
    assert_eq!(e.module_state(main).unwrap(), Some(ModuleState::Finalized));
    assert_eq!(e.module_state(f).unwrap(), Some(ModuleState::Finalized));
    assert_eq!(e.module_state(g).unwrap(), Some(ModuleState::Added));

    // Looking `g` up compiles exactly it.
    assert_eq!(e.call("g", &[]).unwrap(), Some(Val::I64(3)));
    assert_eq!(e.stats().unwrap().modules_compiled, 3);
    assert_eq!(e.stats().unwrap().last_compiled, 1);
}

#[test]
fn per_finalize_work_does_not_grow_with_the_number_of_modules() {
    let e = Engine::default();
    let n = 1000;
    let mut touched = Vec::with_capacity(n);
    for k in 0..n {
        let text = if k == 0 {
            "func @f0() -> i64 {\nentry:\n    ret 0\n}\n".to_string()
        } else {
            format!(
                "extern func @f{p}() -> i64\nfunc @f{k}() -> i64 {{\nentry:\n    %x = call.i64 @f{p}()\n    %y = add.i64 %x, 1\n    ret %y\n}}\n",
                p = k - 1
            )
        };
        let id = e.add_module_text(&format!("m{k}.kir"), &text).unwrap();
        e.finalize_module(id).unwrap();
        let s = e.stats().unwrap();
        assert_eq!(s.last_compiled, 1, "module {k}");
        touched.push(s.last_touched);
    }
    assert!(
        touched.iter().all(|&t| t == touched[0]),
        "touched per finalize: {touched:?}"
    );
    assert_eq!(touched[0], 2, "the new module, walked then finalized");
    assert_eq!(e.stats().unwrap().finalized, n);
    assert_eq!(
        e.call(&format!("f{}", n - 1), &[]).unwrap(),
        Some(Val::I64(n as i64 - 1))
    );
}

#[test]
fn repeated_add_finalize_cycles() {
    let e = Engine::default();
    for round in 0..20i64 {
        let id = e
            .add_module_text(
                &format!("r{round}.kir"),
                &format!("func @r{round}(%x: i64) -> i64 {{\nentry:\n    %y = mul.i64 %x, {round}\n    ret %y\n}}\n"),
            )
            .unwrap();
        e.finalize_module(id).unwrap();
        e.finalize().unwrap();
        for back in 0..=round {
            assert_eq!(
                e.call(&format!("r{back}"), &[Val::I64(3)]).unwrap(),
                Some(Val::I64(3 * back))
            );
        }
    }
}

#[test]
fn lookup_finalizes_on_demand_transitively() {
    let e = Engine::default();
    e.add_module_text("c.kir", "func @c() -> i32 {\nentry:\n    ret 5\n}\n")
        .unwrap();
    e.add_module_text(
        "b.kir",
        "extern func @c() -> i32\nfunc @b() -> i32 {\nentry:\n    %x = call.i32 @c()\n    %y = mul.i32 %x, 2\n    ret %y\n}\n",
    )
    .unwrap();
    e.add_module_text(
        "a.kir",
        "extern func @b() -> i32\nfunc @a() -> i32 {\nentry:\n    %x = call.i32 @b()\n    %y = add.i32 %x, 1\n    ret %y\n}\n",
    )
    .unwrap();
    let f: extern "C" fn() -> i32 = unsafe { e.get_function("a").unwrap() };
    assert_eq!(f(), 11);
    let s = e.stats().unwrap();
    assert_eq!(
        (s.modules_compiled, s.last_compiled, s.last_touched),
        (3, 3, 6)
    );
}

// ---- link errors -----------------------------------------------------------

#[test]
fn signature_mismatch_is_located_at_the_extern() {
    let e = Engine::default();
    e.add_module_text(
        "a.kir",
        "func @f(%x: i64) -> i64 {\nentry:\n    ret %x\n}\n",
    )
    .unwrap();
    let b = e
        .add_module_text(
            "b.kir",
            "; user\nextern func @f(i32) -> i64\nfunc @g() -> i64 {\nentry:\n    %r = call.i64 @f(1)\n    ret %r\n}\n",
        )
        .unwrap();
    let d = link_diag(e.finalize_module(b));
    assert_eq!(d.file, "b.kir");
    assert_eq!(d.loc, Loc::new(2, 13));
    assert!(
        d.message.contains("(i32) -> i64") && d.message.contains("(i64) -> i64"),
        "{d}"
    );
    assert!(d.to_string().starts_with("b.kir:2:13: error: "), "{d}");
    // Nothing was compiled or left half-loaded.
    assert_eq!(e.stats().unwrap().modules_compiled, 0);
    assert_eq!(e.module_state(b).unwrap(), Some(ModuleState::Added));
}

#[test]
fn a_name_exported_twice_is_a_link_error() {
    let e = Engine::default();
    e.add_module_text("a.kir", "func @f() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    let d = link_diag(e.add_module_text(
        "c.kir",
        "data @x = { i64 0 }\n\nfunc @f() -> i64 {\nentry:\n    ret 2\n}\n",
    ));
    assert_eq!((d.file.as_str(), d.loc), ("c.kir", Loc::new(3, 6)));
    assert!(d.message.contains("a.kir"), "{d}");
    // The first definition still works, and `@x` was not half-registered.
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(1)));
    assert!(e.symbol_address("x").is_err());
}

#[test]
fn unresolved_symbols_are_located() {
    let e = Engine::default();
    let m = e
        .add_module_text(
            "u.kir",
            "func @g() -> i64 {\nentry:\n    %r = call.i64 @kiln_nowhere_xyz()\n    ret %r\n}\nextern func @kiln_nowhere_xyz() -> i64\n",
        )
        .unwrap();
    let d = link_diag(e.finalize_module(m));
    assert_eq!((d.file.as_str(), d.loc), ("u.kir", Loc::new(6, 13)));
    assert!(
        d.message.contains("unresolved symbol @kiln_nowhere_xyz"),
        "{d}"
    );
    let d = link_diag(e.call("g", &[]));
    assert_eq!(d.loc, Loc::new(6, 13));
}

#[test]
fn extern_kind_mismatch_is_a_link_error() {
    let e = Engine::default();
    e.add_module_text("a.kir", "data @t = { i64 1 }\n").unwrap();
    let b = e
        .add_module_text(
            "b.kir",
            "extern func @t() -> i64\nfunc @g() -> i64 {\nentry:\n    %r = call.i64 @t()\n    ret %r\n}\n",
        )
        .unwrap();
    let d = link_diag(e.finalize_module(b));
    assert_eq!(d.loc, Loc::new(1, 13));
}

// ---- removal ---------------------------------------------------------------

#[test]
fn removal_is_refused_while_referenced() {
    let e = Engine::default();
    let a = e
        .add_module_text("a.kir", "func @f() -> i64 {\nentry:\n    ret 9\n}\n")
        .unwrap();
    let b = e
        .add_module_text(
            "b.kir",
            "extern func @f() -> i64\nfunc @g() -> i64 {\nentry:\n    %r = call.i64 @f()\n    ret %r\n}\n",
        )
        .unwrap();
    assert_eq!(e.call("g", &[]).unwrap(), Some(Val::I64(9)));
    match e.remove_module(a) {
        Err(Error::Argument(m)) => assert!(m.contains("b.kir") && m.contains("a.kir"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(9)));
    e.remove_module(b).unwrap();
    e.remove_module(a).unwrap();
    assert_eq!(e.module_state(a).unwrap(), None);
    assert!(matches!(e.call("f", &[]), Err(Error::Argument(_))));
    // The names are free again.
    e.add_module_text("a2.kir", "func @f() -> i64 {\nentry:\n    ret 10\n}\n")
        .unwrap();
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(10)));
}

#[test]
fn removed_memory_is_reused() {
    let e = Engine::default();
    // Warm up so that the reservation exists.
    let id = e
        .add_module_text("w.kir", "func @w() -> i64 {\nentry:\n    ret 0\n}\n")
        .unwrap();
    e.finalize_module(id).unwrap();
    let before = e.memory_stats().unwrap().pages_in_use;
    let mut seen = std::collections::HashSet::new();
    for k in 0..200i64 {
        let id = e
            .add_module_text(
                "r.kir",
                &format!("func @r() -> i64 {{\nentry:\n    ret {k}\n}}\nconst @c = {{ i64 {k} }}\ndata @d = {{ i64 {k} }}\n"),
            )
            .unwrap();
        assert_eq!(e.call("r", &[]).unwrap(), Some(Val::I64(k)));
        seen.insert(e.section_address(id, SectionKind::Text).unwrap().unwrap());
        assert!(e.memory_stats().unwrap().pages_in_use > before);
        e.remove_module(id).unwrap();
        assert_eq!(e.memory_stats().unwrap().pages_in_use, before, "round {k}");
    }
    assert!(
        seen.len() < 10,
        "text addresses are reused: {} distinct",
        seen.len()
    );
}

#[test]
fn loaded_modules_cannot_be_removed_but_added_ones_can() {
    let e = Engine::default();
    let a = e
        .add_module_text("a.kir", "func @f() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    e.remove_module(a).unwrap();
    assert!(e.call("f", &[]).is_err());
    let b = e
        .add_module_text("b.kir", "func @f() -> i64 {\nentry:\n    ret 2\n}\n")
        .unwrap();
    e.load_module(b).unwrap();
    assert_eq!(e.module_state(b).unwrap(), Some(ModuleState::Loaded));
    assert!(e.remove_module(b).is_err());
    e.finalize().unwrap();
    assert_eq!(e.module_state(b).unwrap(), Some(ModuleState::Finalized));
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(2)));
}

// ---- remapping -------------------------------------------------------------

/// An executor whose memory is a buffer standing for another process at
/// `base..base+len`; it cannot run code.
struct TestExecutor {
    base: u64,
    mem: Mutex<Vec<u8>>,
    finalized: Mutex<Vec<TargetSection>>,
    /// When set, the executor picks target addresses itself (bump
    /// allocation from this offset) and records what is released.
    auto: Option<Mutex<u64>>,
    released: Mutex<Vec<TargetSection>>,
}

impl TestExecutor {
    fn new(base: u64, auto: bool) -> Self {
        TestExecutor {
            base,
            mem: Mutex::new(vec![0; 1 << 20]),
            finalized: Mutex::new(Vec::new()),
            auto: auto.then(|| Mutex::new(0x1000)),
            released: Mutex::new(Vec::new()),
        }
    }
}

const REMOTE_TRAP: u64 = 0x7777_0000;
const REMOTE_HOST: u64 = 0x6666_0000;

impl Executor for TestExecutor {
    fn name(&self) -> &str {
        "test"
    }
    fn allocate_section(&self, _: SectionKind, len: u64, align: u64) -> kiln::Result<Option<u64>> {
        let Some(next) = &self.auto else {
            return Ok(None);
        };
        let mut next = next.lock().unwrap();
        let at = next.div_ceil(align) * align;
        *next = at + len;
        Ok(Some(self.base + at))
    }
    fn release_section(&self, s: TargetSection) -> kiln::Result<()> {
        self.released.lock().unwrap().push(s);
        Ok(())
    }
    fn write_section(&self, s: TargetSection, bytes: &[u8]) -> kiln::Result<()> {
        let mut mem = self.mem.lock().unwrap();
        let at = s
            .address
            .checked_sub(self.base)
            .ok_or_else(|| Error::Runtime("below".into()))? as usize;
        let dst = mem
            .get_mut(at..at + bytes.len())
            .ok_or_else(|| Error::Runtime(format!("{:#x} outside the test memory", s.address)))?;
        dst.copy_from_slice(bytes);
        Ok(())
    }
    fn finalize_sections(&self, sections: &[TargetSection]) -> kiln::Result<()> {
        self.finalized.lock().unwrap().extend_from_slice(sections);
        Ok(())
    }
    unsafe fn call(&self, _: u64, _: &Signature, _: &[Val]) -> kiln::Result<Option<Val>> {
        Err(Error::Runtime("the test executor runs nothing".into()))
    }
    fn host_symbol(&self, name: &str) -> Option<u64> {
        match name {
            kiln::isa::TRAP_HANDLER => Some(REMOTE_TRAP),
            "remote_host_fn" => Some(REMOTE_HOST),
            _ => None,
        }
    }
}

const A_TEXT: &str = "func @f() -> i64 {\nentry:\n    ret 7\n}\n\
func @g() -> i64 {\nentry:\n    %p = addr @d\n    %v = load.i64 %p\n    %x = call.i64 @f()\n    %s = add.i64 %v, %x\n    ret %s\n}\n\
data @d = { i64 5, @f, @g+3 }\n";

const B_TEXT: &str = "extern func @f() -> i64\nextern func @remote_host_fn(i64) -> i64\n\
func @h(%a: i64) -> i64 {\nentry:\n    %x = call.i64 @f()\n    %y = call.i64 @remote_host_fn(%x)\n    %z = sdiv.i64 %y, %a\n    ret %z\n}\n";

fn read_u64(mem: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(mem[at as usize..at as usize + 8].try_into().unwrap())
}

#[test]
fn remapped_sections_are_relocated_for_their_target_addresses() {
    let base = 0x4000_0000u64;
    let ex = Arc::new(TestExecutor::new(base, false));
    let e = Engine::with_executor("x86_64", ex.clone()).unwrap();
    let a = e.add_module_text("a.kir", A_TEXT).unwrap();
    let b = e.add_module_text("b.kir", B_TEXT).unwrap();
    e.load_module(b).unwrap();
    assert_eq!(
        e.module_state(a).unwrap(),
        Some(ModuleState::Loaded),
        "reached through @f"
    );
    let (a_text, a_data, b_text) = (base + 0x1000, base + 0x8_0000, base + 0x4_0000);
    e.map_section_address(a, SectionKind::Text, a_text).unwrap();
    e.map_section_address(a, SectionKind::Data, a_data).unwrap();
    e.map_section_address(b, SectionKind::Text, b_text).unwrap();
    assert!(
        e.map_section_address(b, SectionKind::Data, base).is_err(),
        "b has no data"
    );
    e.finalize().unwrap();
    assert!(
        e.map_section_address(a, SectionKind::Text, base).is_err(),
        "finalized: fixed"
    );
    assert_eq!(
        e.section_address(a, SectionKind::Text).unwrap(),
        Some(a_text)
    );

    // The same modules compiled on their own tell where each fixup is.
    let backend = kiln::isa::backend("x86_64").unwrap();
    let ca = kiln::emit::compile_module(
        &kiln::ir::parse::parse_module("a.kir", A_TEXT).unwrap(),
        backend,
    )
    .unwrap();
    let cb = kiln::emit::compile_module(
        &kiln::ir::parse::parse_module("b.kir", B_TEXT).unwrap(),
        backend,
    )
    .unwrap();
    let f_addr = a_text + ca.symbol("f").unwrap().offset;
    let g_addr = a_text + ca.symbol("g").unwrap().offset;
    let d_addr = a_data + ca.symbol("d").unwrap().offset;
    assert_eq!(e.symbol_address("f").unwrap(), f_addr);
    assert_eq!(e.symbol_address("d").unwrap(), d_addr);

    let mem = ex.mem.lock().unwrap();
    // Text bytes outside fixups are the compiled bytes.
    let at = (a_text - base) as usize;
    let mut checked = 0;
    // Data: i64 5, then @f and @g+3 as absolute target addresses.
    assert_eq!(read_u64(&mem, d_addr - base), 5);
    assert_eq!(read_u64(&mem, d_addr - base + 8), f_addr);
    assert_eq!(read_u64(&mem, d_addr - base + 16), g_addr + 3);
    for r in &ca.relocs {
        let place = match r.section {
            SectionKind::Text => a_text + u64::from(r.offset),
            SectionKind::Data => a_data + u64::from(r.offset),
            SectionKind::Rodata => continue,
        };
        let s = match r.target.as_str() {
            "f" => f_addr,
            "g" => g_addr,
            "d" => d_addr,
            kiln::isa::TRAP_HANDLER => REMOTE_TRAP,
            other => panic!("unexpected target {other}"),
        };
        let p = (place - base) as usize;
        match r.kind {
            RelocKind::Abs64 => assert_eq!(
                read_u64(&mem, place - base),
                s.wrapping_add_signed(r.addend)
            ),
            RelocKind::X86PcRel32 | RelocKind::X86CallPcRel32 => {
                let v = i32::from_le_bytes(mem[p..p + 4].try_into().unwrap());
                assert_eq!(i64::from(v), s as i64 + r.addend - place as i64, "{r:?}");
            }
            k => panic!("unexpected kind {k:?}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 4,
        "text→data, text→text and data→text fixups checked"
    );
    // Module b: its calls to a's @f and to the host are direct calls (in
    // range of b's remapped text, so no stub); the trap handler is reached
    // through an absolute address.
    let mut seen = Vec::new();
    for r in &cb.relocs {
        let place = b_text + u64::from(r.offset);
        let v = match r.kind {
            RelocKind::Abs64 => read_u64(&mem, place - base),
            RelocKind::X86CallPcRel32 => {
                let p = (place - base) as usize;
                let rel = i32::from_le_bytes(mem[p..p + 4].try_into().unwrap());
                (place + 4).wrapping_add_signed(rel.into())
            }
            k => panic!("unexpected kind {k:?}"),
        };
        seen.push((r.target.clone(), v));
    }
    assert!(seen.contains(&("f".to_string(), f_addr)), "{seen:?}");
    assert!(
        seen.contains(&("remote_host_fn".to_string(), REMOTE_HOST)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(kiln::isa::TRAP_HANDLER.to_string(), REMOTE_TRAP)),
        "{seen:?}"
    );
    assert_eq!(e.stats().unwrap().calls_through_stubs, 0);
    // Text bytes away from fixups are the compiled bytes.
    assert_eq!(mem[at..at + 4], ca.text[..4]);
    drop(mem);
    let fin = ex.finalized.lock().unwrap();
    assert!(fin
        .iter()
        .any(|s| s.kind == SectionKind::Text && s.address == a_text));
    assert!(fin
        .iter()
        .any(|s| s.kind == SectionKind::Data && s.address == a_data));
    // The test executor runs nothing: the call's error is its own.
    assert!(matches!(e.call("g", &[]), Err(Error::Runtime(m)) if m.contains("runs nothing")));
}

#[test]
fn in_process_engines_refuse_remapped_sections() {
    let e = Engine::default();
    let a = e
        .add_module_text("a.kir", "func @f() -> i64 {\nentry:\n    ret 1\n}\n")
        .unwrap();
    e.load_module(a).unwrap();
    e.map_section_address(a, SectionKind::Text, 0x1000_0000)
        .unwrap();
    assert!(matches!(e.finalize(), Err(Error::Argument(_))));
    // Back to Added, remapping gone: a lookup loads it afresh and works.
    assert_eq!(e.module_state(a).unwrap(), Some(ModuleState::Added));
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(1)));
}

#[test]
fn relocation_range_errors_name_module_symbol_kind_and_distance() {
    let base = 0x4000_0000u64;
    let ex = Arc::new(TestExecutor::new(base, false));
    let e = Engine::with_executor("x86_64", ex).unwrap();
    let a = e.add_module_text("a.kir", A_TEXT).unwrap();
    e.load_module(a).unwrap();
    e.map_section_address(a, SectionKind::Text, base).unwrap();
    // 4 GiB away: beyond any rel32 from text to data.
    e.map_section_address(a, SectionKind::Data, base + (4 << 30))
        .unwrap();
    let d = link_diag(e.finalize());
    assert_eq!(d.file, "a.kir");
    assert!(d.message.contains("@d"), "{d}");
    assert!(d.message.contains("X86PcRel32"), "{d}");
    assert!(
        d.message.contains("out of range") && d.message.contains("42949"),
        "{d}"
    );
    // Everything went back to Added; nothing was written or finalized.
    assert_eq!(e.module_state(a).unwrap(), Some(ModuleState::Added));
}

#[test]
fn executors_may_choose_target_addresses() {
    let base = 0x5000_0000u64;
    let ex = Arc::new(TestExecutor::new(base, true));
    let e = Engine::with_executor("x86_64", ex.clone()).unwrap();
    let a = e.add_module_text("a.kir", A_TEXT).unwrap();
    e.finalize_module(a).unwrap();
    let text = e.section_address(a, SectionKind::Text).unwrap().unwrap();
    let data = e.section_address(a, SectionKind::Data).unwrap().unwrap();
    assert!((base..base + (1 << 20)).contains(&text) && (base..base + (1 << 20)).contains(&data));
    let backend = kiln::isa::backend("x86_64").unwrap();
    let ca = kiln::emit::compile_module(
        &kiln::ir::parse::parse_module("a.kir", A_TEXT).unwrap(),
        backend,
    )
    .unwrap();
    let d = data + ca.symbol("d").unwrap().offset;
    let f = text + ca.symbol("f").unwrap().offset;
    {
        let mem = ex.mem.lock().unwrap();
        assert_eq!(
            read_u64(&mem, d - base + 8),
            f,
            "data relocated for the executor's text"
        );
        let t = (text - base) as usize;
        assert_eq!(mem[t..t + 4], ca.text[..4]);
    }
    // Removal gives the executor its memory back.
    e.remove_module(a).unwrap();
    let released = ex.released.lock().unwrap();
    assert!(released
        .iter()
        .any(|s| s.kind == SectionKind::Text && s.address == text));
    assert!(released
        .iter()
        .any(|s| s.kind == SectionKind::Data && s.address == data));
}

#[cfg(feature = "emulate")]
#[test]
fn the_emulator_executor_places_and_relocates_sections_in_its_arena() {
    use kiln::emulate::{layout, EmulatorConfig};
    use kiln::executor::EmulatorExecutor;
    let ex = Arc::new(EmulatorExecutor::new(EmulatorConfig::default()).unwrap());
    // x86-64 code cannot run there, but loading and relocating is the same.
    let e = Engine::with_executor("x86_64", ex.clone()).unwrap();
    let a = e.add_module_text("a.kir", A_TEXT).unwrap();
    e.finalize_module(a).unwrap();
    let text = e.section_address(a, SectionKind::Text).unwrap().unwrap();
    let data = e.section_address(a, SectionKind::Data).unwrap().unwrap();
    let arena = layout::ARENA_BASE..layout::ARENA_BASE + layout::ARENA_SIZE;
    assert!(
        arena.contains(&text) && arena.contains(&data),
        "{text:#x} {data:#x}"
    );
    let backend = kiln::isa::backend("x86_64").unwrap();
    let ca = kiln::emit::compile_module(
        &kiln::ir::parse::parse_module("a.kir", A_TEXT).unwrap(),
        backend,
    )
    .unwrap();
    let d = data + ca.symbol("d").unwrap().offset;
    let bytes = ex.read(d, 24).unwrap();
    assert_eq!(read_u64(&bytes, 0), 5);
    assert_eq!(read_u64(&bytes, 8), text + ca.symbol("f").unwrap().offset);
    assert_eq!(
        read_u64(&bytes, 16),
        text + ca.symbol("g").unwrap().offset + 3
    );
    assert_eq!(ex.read(text, 4).unwrap(), ca.text[..4]);
    e.remove_module(a).unwrap();
    assert!(ex.read(text, 4).is_err(), "unmapped on removal");
}

/// A module whose zero-initialized data (`bss`: carried as a size, never
/// copied) sits between two items with contents. `@run` returns the sum of
/// the bytes of `@z` as it found them (0 when zeroed) plus `@a` and `@b`
/// scaled, then fills `@z` with 0xff.
const ZERO_DATA: &str = "data @a = { i64 7 }
local data @z = { zero 20008 }
data @b = { i64 9 }

func @run() -> i64 {
entry:
    %base = addr @z
    jmp loop(0, 0)
loop(%i: i64, %sum: i64):
    %c = slt.i64 %i, 20008
    br %c, body, done(%sum)
body:
    %p = add.i64 %base, %i
    %v = load8u.i64 %p
    %s2 = add.i64 %sum, %v
    store8 255, %p
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %s2)
done(%r: i64):
    %pa = addr @a
    %a = load.i64 %pa
    %pb = addr @b
    %b = load.i64 %pb
    %a2 = mul.i64 %a, 1000000000
    %b2 = mul.i64 %b, 10000000000
    %r2 = add.i64 %r, %a2
    %r3 = add.i64 %r2, %b2
    ret %r3
}
";

/// Zero-initialized data reads as zero in fresh memory and in memory
/// reused after a module that dirtied it was removed (partial pages at
/// both ends, whole pages inside), and the items around it keep their
/// contents.
#[test]
fn zero_initialized_data_reads_as_zero_when_memory_is_reused() {
    let e = Engine::default();
    let clean = 7 * 1_000_000_000 + 9 * 10_000_000_000;
    let expect = Some(Val::I64(clean));
    let mut seen = std::collections::HashSet::new();
    for round in 0..6 {
        let id = e.add_module_text("z.kir", ZERO_DATA).unwrap();
        assert_eq!(e.call("run", &[]).unwrap(), expect, "round {round}");
        // The second call sees the bytes the first wrote.
        let dirty = e.call("run", &[]).unwrap();
        assert_eq!(dirty, Some(Val::I64(clean + 255 * 20008)));
        seen.insert(e.section_address(id, SectionKind::Data).unwrap().unwrap());
        e.remove_module(id).unwrap();
    }
    assert!(seen.len() < 6, "data memory is reused: {seen:?}");
}

/// Exports in another order than the compiled symbols (data declared
/// before the functions is laid out after them; a local function between
/// exported ones) each get their own address: the loader's in-order guess
/// of a module's exports falls back to the name.
#[test]
fn exports_declared_out_of_layout_order_keep_their_addresses() {
    let e = Engine::default();
    e.add_module_text(
        "o.kir",
        "data @d = { i64 40 }\n\
         local func @l() -> i64 {\nentry:\n    ret 1\n}\n\
         func @g() -> i64 {\nentry:\n    %x = call.i64 @l()\n    %y = call.i64 @f()\n    %s = add.i64 %x, %y\n    ret %s\n}\n\
         func @f() -> i64 {\nentry:\n    %p = addr @d\n    %v = load.i64 %p\n    ret %v\n}\n",
    )
    .unwrap();
    assert_eq!(e.call("f", &[]).unwrap(), Some(Val::I64(40)));
    assert_eq!(e.call("g", &[]).unwrap(), Some(Val::I64(41)));
    let (f, _) = e.function_address("f").unwrap();
    let (g, _) = e.function_address("g").unwrap();
    let d = e.symbol_address("d").unwrap();
    assert!(f != g && g != d && d != f);
    // SAFETY: `d` is the address of the module's 8-byte data item.
    assert_eq!(unsafe { *(d as *const i64) }, 40);
}
