//! AArch64 backend tests (lowering, register allocation, emission), with
//! and without the allocation checker. These hosts are x86-64, so the code cannot run natively: the
//! tests decode the machine code (yaxpeax-arm) and check its shape, its
//! relocations, that every instruction of every type compiles, and that the
//! allocation checker accepts every allocation. With the `emulate` feature,
//! `emulated` below also runs the compiled functions under Unicorn and
//! compares every result (value or trap) with `kiln::interp::Interpreter`
//! over edge-case inputs.
#![cfg(feature = "aarch64")]

use kiln::compiled::CompiledModule;
use kiln::emit::compile_module;
use kiln::ir::parse::parse_module;
use kiln::isa;
use kiln::isa::aarch64::AARCH64_CHECKED;
use kiln::isa::Backend;
use kiln::reloc::{RelocKind, SectionKind};
use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::InstDecoder;

/// Compiles with the normal backend (`isa::backend("aarch64")`).
fn compile(src: &str) -> CompiledModule {
    let m = parse_module("test.kir", src).expect("parse");
    compile_module(&m, isa::backend("aarch64").expect("backend")).expect("compile")
}

/// The backend, plain and with the allocation checker on, by name.
fn backends() -> [(&'static str, &'static dyn Backend); 2] {
    [
        ("regalloc", isa::backend("aarch64").expect("backend")),
        ("checked", &AARCH64_CHECKED),
    ]
}

fn any_like(l: &[String], prefix: &str, suffix: &str) -> bool {
    l.iter()
        .any(|s| s.starts_with(prefix) && s.ends_with(suffix))
}

/// The instructions of function `name` as text, one per word; inline
/// 8-byte literals (an `Abs64` relocation in text) appear as `.quad`.
fn listing(cm: &CompiledModule, name: &str) -> Vec<String> {
    let sym = cm.symbol(name).expect("symbol");
    assert_eq!(sym.section, SectionKind::Text);
    assert_eq!(sym.offset % 16, 0, "functions are 16-byte aligned");
    assert_eq!(sym.size % 4, 0);
    let start = sym.offset as usize;
    let bytes = &cm.text[start..start + sym.size as usize];
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let ip = (start + at) as u32;
        let literal = cm.relocs.iter().any(|r| {
            r.section == SectionKind::Text && r.offset == ip && r.kind == RelocKind::Abs64
        });
        if literal {
            assert_eq!(ip % 8, 0, "literal at {ip:#x} is 8-byte aligned");
            out.push(".quad".to_string());
            at += 8;
            continue;
        }
        let mut reader = U8Reader::new(&bytes[at..at + 4]);
        match InstDecoder::default().decode(&mut reader) {
            Ok(inst) => out.push(inst.to_string()),
            Err(e) => panic!("{name}+{at:#x}: undecodable word ({e:?})"),
        }
        at += 4;
    }
    out
}

fn count(l: &[String], prefix: &str) -> usize {
    l.iter().filter(|s| s.starts_with(prefix)).count()
}

fn has(l: &[String], text: &str) -> bool {
    l.iter().any(|s| s == text)
}

fn position(l: &[String], text: &str) -> usize {
    l.iter()
        .position(|s| s == text)
        .unwrap_or_else(|| panic!("no `{text}` in\n{}", l.join("\n")))
}

// ---------------------------------------------------------------------------
// A generated module covering every instruction for every type; shared by
// the compile-only test and the emulated differential test.

const INT_BIN: [&str; 13] = [
    "add", "sub", "mul", "sdiv", "udiv", "srem", "urem", "and", "or", "xor", "shl", "shr", "sar",
];
const INT_CMP: [&str; 10] = [
    "eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
];
const FLOAT_BIN: [&str; 4] = ["fadd", "fsub", "fmul", "fdiv"];
const FLOAT_CMP: [&str; 6] = ["feq", "fne", "flt", "fle", "fgt", "fge"];

/// Literal second operands for the integer immediate forms.
const INT_LITERALS: [i64; 9] = [0, 1, -1, 4095, 4096, -4096, 65535, -65536, 0x1234_5678];

/// One generated function: its name, parameter types, result type (the
/// types are read by the emulated tests).
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "emulate"), allow(dead_code))]
struct Gen {
    name: String,
    params: Vec<&'static str>,
    ret: &'static str,
}

fn int_types() -> [&'static str; 2] {
    ["i32", "i64"]
}

fn float_types() -> [&'static str; 2] {
    ["f32", "f64"]
}

/// `(source, functions)`: every instruction in value and literal forms.
fn every_instruction_module() -> (String, Vec<Gen>) {
    let mut src = String::new();
    let mut gens = Vec::new();
    let mut add = |src: &mut String, name: String, params: Vec<&'static str>, ret, body: String| {
        let ps: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, t)| format!("%p{i}: {t}"))
            .collect();
        src.push_str(&format!(
            "func @{name}({}) -> {ret} {{\nentry:\n{body}}}\n",
            ps.join(", ")
        ));
        gens.push(Gen { name, params, ret });
    };
    for t in int_types() {
        for op in INT_BIN {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t, t],
                t,
                format!("    %r = {op}.{t} %p0, %p1\n    ret %r\n"),
            );
            for (k, lit) in INT_LITERALS.iter().enumerate() {
                let lit = if t == "i32" { *lit as i32 as i64 } else { *lit };
                add(
                    &mut src,
                    format!("{op}_{t}_k{k}"),
                    vec![t],
                    t,
                    format!("    %r = {op}.{t} %p0, {lit}\n    ret %r\n"),
                );
            }
        }
        for op in INT_CMP {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t, t],
                "i32",
                format!("    %r = {op}.{t} %p0, %p1\n    ret %r\n"),
            );
            for (k, lit) in INT_LITERALS.iter().enumerate() {
                let lit = if t == "i32" { *lit as i32 as i64 } else { *lit };
                add(
                    &mut src,
                    format!("{op}_{t}_k{k}"),
                    vec![t],
                    "i32",
                    format!("    %r = {op}.{t} %p0, {lit}\n    ret %r\n"),
                );
            }
            // Fused into a branch, against zero (cbz/cbnz for eq/ne).
            add(
                &mut src,
                format!("{op}_{t}_br0"),
                vec![t],
                "i32",
                format!(
                    "    %c = {op}.{t} %p0, 0\n    br %c, yes, no\nyes:\n    ret 10\nno:\n    ret 20\n"
                ),
            );
            // Fused into a branch.
            add(
                &mut src,
                format!("{op}_{t}_br"),
                vec![t, t],
                "i32",
                format!(
                    "    %c = {op}.{t} %p0, %p1\n    br %c, yes, no\nyes:\n    ret 10\nno:\n    ret 20\n"
                ),
            );
        }
        for op in ["neg", "not", "copy"] {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t],
                t,
                format!("    %r = {op}.{t} %p0\n    ret %r\n"),
            );
        }
        add(
            &mut src,
            format!("select_{t}"),
            vec!["i32", t, t],
            t,
            format!("    %r = select.{t} %p0, %p1, %p2\n    ret %r\n"),
        );
        for f in float_types() {
            for op in ["sitof", "uitof"] {
                add(
                    &mut src,
                    format!("{op}_{t}_{f}"),
                    vec![t],
                    f,
                    format!("    %r = {op}.{f} %p0\n    ret %r\n"),
                );
            }
            for op in ["ftosi", "ftoui"] {
                add(
                    &mut src,
                    format!("{op}_{f}_{t}"),
                    vec![f],
                    t,
                    format!("    %r = {op}.{t} %p0\n    ret %r\n"),
                );
            }
        }
    }
    for t in float_types() {
        for op in FLOAT_BIN {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t, t],
                t,
                format!("    %r = {op}.{t} %p0, %p1\n    ret %r\n"),
            );
            for (k, lit) in ["1.5", "0.1", "-0.0", "0.0", "-31.0", "1e300"]
                .iter()
                .enumerate()
            {
                add(
                    &mut src,
                    format!("{op}_{t}_k{k}"),
                    vec![t],
                    t,
                    format!("    %r = {op}.{t} %p0, {lit}\n    ret %r\n"),
                );
            }
        }
        for op in FLOAT_CMP {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t, t],
                "i32",
                format!("    %r = {op}.{t} %p0, %p1\n    ret %r\n"),
            );
            add(
                &mut src,
                format!("{op}_{t}_br"),
                vec![t, t],
                "i32",
                format!(
                    "    %c = {op}.{t} %p0, %p1\n    br %c, yes, no\nyes:\n    ret 10\nno:\n    ret 20\n"
                ),
            );
        }
        for op in ["fneg", "fabs", "fsqrt", "copy"] {
            add(
                &mut src,
                format!("{op}_{t}"),
                vec![t],
                t,
                format!("    %r = {op}.{t} %p0\n    ret %r\n"),
            );
        }
        add(
            &mut src,
            format!("select_{t}"),
            vec!["i32", t, t],
            t,
            format!("    %r = select.{t} %p0, %p1, %p2\n    ret %r\n"),
        );
    }
    let convs = [
        ("sext", "i32", "i64"),
        ("zext", "i32", "i64"),
        ("trunc", "i64", "i32"),
        ("fext", "f32", "f64"),
        ("ftrunc", "f64", "f32"),
        ("bitcast", "i64", "f64"),
        ("bitcast", "f64", "i64"),
        ("bitcast", "i32", "f32"),
        ("bitcast", "f32", "i32"),
    ];
    for (op, from, to) in convs {
        add(
            &mut src,
            format!("{op}_{from}_{to}"),
            vec![from],
            to,
            format!("    %r = {op}.{to} %p0\n    ret %r\n"),
        );
    }
    // Memory: store then load back through an alloca, at several offsets
    // (scaled, unscaled and register-offset encodings).
    let accesses = [
        ("store", "load", "i64"),
        ("store", "load", "i32"),
        ("store", "load", "f64"),
        ("store", "load", "f32"),
        ("store8", "load8s", "i64"),
        ("store8", "load8u", "i32"),
        ("store16", "load16s", "i32"),
        ("store16", "load16u", "i64"),
        ("store32", "load32s", "i64"),
        ("store32", "load32u", "i64"),
    ];
    for (i, (st, ld, t)) in accesses.iter().enumerate() {
        for off in [0i64, 1, 8, 255, 256, 4088, 32760, 40000] {
            let sty = if *st == "store" {
                format!("store.{t}")
            } else {
                st.to_string()
            };
            add(
                &mut src,
                format!("mem{i}_{off}"),
                vec![t],
                t,
                format!(
                    "    %m = alloca 40016, 16\n    %q = add.i64 %m, 8\n    {sty} %p0, %q, {off}\n    %r = {ld}.{t} %q, {off}\n    ret %r\n"
                ),
            );
        }
    }
    (src, gens)
}

#[test]
fn every_instruction_compiles_for_every_type_and_decodes() {
    let (src, gens) = every_instruction_module();
    assert!(gens.len() > 500, "{} functions", gens.len());
    let m = parse_module("test.kir", &src).expect("parse");
    for (name, backend) in backends() {
        let cm = compile_module(&m, backend).expect(name);
        check_listings(&cm, &gens);
    }
}

#[test]
fn the_allocation_checker_accepts_every_function() {
    // AARCH64_CHECKED runs the symbolic checker on every function, in
    // every build; an allocation that loses a value is an error.
    let (src, gens) = every_instruction_module();
    let m = parse_module("test.kir", &src).expect("parse");
    let cm = compile_module(&m, &AARCH64_CHECKED).expect("checked compile");
    check_listings(&cm, &gens);
    // And directly, through the allocator's own interface.
    let env = AARCH64_CHECKED.machine_env();
    let mut ctx = kiln::lower::CompileCtx::<kiln::isa::aarch64::A64>::default();
    for (sym, data) in m.symbol_ids() {
        if !matches!(data.kind, kiln::ir::SymbolKind::Func { body: Some(_), .. }) {
            continue;
        }
        let mf = ctx.lower(&m, sym).expect("lower");
        let out = kiln::regalloc::allocate(mf, &env).expect("allocate");
        kiln::regalloc::checker::check(mf, &env, &out)
            .unwrap_or_else(|e| panic!("@{}: {e}", data.name));
    }
}

fn check_listings(cm: &CompiledModule, gens: &[Gen]) {
    for g in gens {
        let l = listing(cm, &g.name);
        assert_eq!(l[0], "stp x29, x30, [sp, #-0x10]!", "{}", g.name);
        assert_eq!(l[1], "mov x29, sp", "{}", g.name);
        // Never the platform register.
        let x18 = |s: &String| {
            s.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|t| t == "x18" || t == "w18")
        };
        assert!(!l.iter().any(x18), "{} uses x18", g.name);
    }
}

// ---------------------------------------------------------------------------
// Code shapes.

#[test]
fn frame_record_and_epilogue() {
    let src = "func @f(%a: i64) -> i64 {\nentry:\n    ret %a\n}\n";
    let l = listing(&compile(src), "f");
    assert_eq!(
        l,
        [
            "stp x29, x30, [sp, #-0x10]!",
            "mov x29, sp",
            "mov sp, x29",
            "ldp x29, x30, [sp], #0x10",
            "ret",
        ]
    );
}

#[test]
fn immediates_use_the_12_bit_forms_when_they_fit() {
    for (_, backend) in backends() {
        immediates(backend);
    }
}

fn immediates(backend: &dyn Backend) {
    let compile = |src: &str| {
        compile_module(&parse_module("t.kir", src).expect("parse"), backend).expect("compile")
    };
    let cm = compile(
        "func @a(%x: i64) -> i64 {\nentry:\n    %r = add.i64 %x, 4095\n    ret %r\n}\n\
         func @b(%x: i64) -> i64 {\nentry:\n    %r = sub.i64 %x, -5\n    ret %r\n}\n\
         func @c(%x: i32) -> i32 {\nentry:\n    %r = add.i32 %x, -4095\n    ret %r\n}\n\
         func @d(%x: i64) -> i64 {\nentry:\n    %r = add.i64 %x, 4096\n    ret %r\n}\n\
         func @e(%x: i64) -> i32 {\nentry:\n    %r = slt.i64 %x, -7\n    ret %r\n}\n\
         func @g(%x: i32) -> i32 {\nentry:\n    %r = shl.i32 %x, 33\n    ret %r\n}\n",
    );
    assert!(has(&listing(&cm, "a"), "add x0, x0, #0xfff"));
    assert!(has(&listing(&cm, "b"), "add x0, x0, #0x5"));
    assert!(has(&listing(&cm, "c"), "sub w0, w0, #0xfff"));
    let d = listing(&cm, "d");
    assert!(any_like(&d, "mov x", ", #0x1000"), "{d:?}");
    assert!(any_like(&d, "add x0, x0, x", ""), "{d:?}");
    let e = listing(&cm, "e");
    assert!(has(&e, "cmn x0, #0x7"), "{e:?}");
    assert!(has(&e, "cset w0, lt"));
    // The count is reduced modulo 32.
    assert!(has(&listing(&cm, "g"), "lsl w0, w0, #0x1"));
}

#[test]
fn bitmask_immediates_are_used_for_logical_operations() {
    let cm = compile(
        "func @a(%x: i64) -> i64 {\nentry:\n    %r = and.i64 %x, 0xff\n    ret %r\n}\n\
         func @b(%x: i32) -> i32 {\nentry:\n    %r = or.i32 %x, 0x0f0f0f0f\n    ret %r\n}\n\
         func @c(%x: i64) -> i64 {\nentry:\n    %r = xor.i64 %x, -65536\n    ret %r\n}\n\
         func @d(%x: i64) -> i64 {\nentry:\n    %r = and.i64 %x, 0x1234\n    ret %r\n}\n",
    );
    assert!(
        has(&listing(&cm, "a"), "and x0, x0, #0xff"),
        "{:?}",
        listing(&cm, "a")
    );
    assert!(
        has(&listing(&cm, "b"), "orr w0, w0, #0xf0f0f0f"),
        "{:?}",
        listing(&cm, "b")
    );
    assert!(
        has(&listing(&cm, "c"), "eor x0, x0, #0xffffffffffff0000"),
        "{:?}",
        listing(&cm, "c")
    );
    // Not a bitmask: through a register.
    let d = listing(&cm, "d");
    assert!(
        any_like(&d, "mov x", ", #0x1234") && any_like(&d, "and x0, x0, x", ""),
        "{d:?}"
    );
}

#[test]
fn constants_are_built_with_movz_movk_and_movn() {
    let cm = compile(
        "func @a() -> i64 {\nentry:\n    ret 0x123456789abcdef0\n}\n\
         func @b() -> i64 {\nentry:\n    ret -2\n}\n\
         func @c() -> i64 {\nentry:\n    ret 0x10000\n}\n\
         func @d() -> i32 {\nentry:\n    ret -65536\n}\n\
         func @e() -> f64 {\nentry:\n    ret 1.0\n}\n",
    );
    let a = listing(&cm, "a");
    assert!(has(&a, "mov x0, #0xdef0"), "{a:?}");
    assert!(has(&a, "movk x0, #0x9abc, lsl #16"));
    assert!(has(&a, "movk x0, #0x5678, lsl #32"));
    assert!(has(&a, "movk x0, #0x1234, lsl #48"));
    let b = listing(&cm, "b");
    assert_eq!(count(&b, "mov x0"), 1, "one movn: {b:?}");
    assert!(b
        .iter()
        .any(|s| s.starts_with("mov x0, #0xfffffffffffffffe") || s.starts_with("movn x0, #0x1")));
    let c = listing(&cm, "c");
    assert!(
        c.iter()
            .any(|s| s == "mov x0, #0x10000" || s == "movz x0, #0x1, lsl #16"),
        "{c:?}"
    );
    let d = listing(&cm, "d");
    assert!(
        d.iter()
            .any(|s| s == "mov w0, #0xffff0000" || s == "movn w0, #0xffff"),
        "{d:?}"
    );
    let e = listing(&cm, "e");
    assert!(has(&e, "fmov d0, #1.0"), "an 8-bit float immediate: {e:?}");
    let cm = compile(
        "func @z() -> f32 {\nentry:\n    ret 0.0\n}\n\
         func @p() -> f64 {\nentry:\n    ret 0.1\n}\n",
    );
    let z = listing(&cm, "z");
    assert!(has(&z, "fmov s0, wzr"), "{z:?}");
    let p = listing(&cm, "p");
    assert!(has(&p, "fmov d0, x17") && count(&p, "mov") >= 4, "{p:?}");
}

#[test]
fn compares_fuse_into_conditional_branches() {
    let cm = compile(
        "func @f(%a: i64, %b: i64) -> i64 {\nentry:\n    %c = ult.i64 %a, %b\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 2\n}\n\
         func @g(%a: i32) -> i64 {\nentry:\n    br %a, yes, no\nyes:\n    ret 1\nno:\n    ret 2\n}\n\
         func @z(%a: i64) -> i64 {\nentry:\n    %c = eq.i64 %a, 0\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 2\n}\n\
         func @h(%a: f64, %b: f64) -> i64 {\nentry:\n    %c = fle.f64 %a, %b\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 2\n}\n",
    );
    // The `then` block comes next, so each branch goes to `no` on the
    // compare's inverse (exact: b.hs for ult, b.hi for fle).
    let f = listing(&cm, "f");
    let cmp = position(&f, "cmp x0, x1");
    assert!(f[cmp + 1].starts_with("b.hs "), "{f:?}");
    assert_eq!(count(&f, "cset"), 0, "the compare is not materialized");
    let g = listing(&cm, "g");
    assert_eq!(count(&g, "cbz w0"), 1, "{g:?}");
    let z = listing(&cm, "z");
    assert_eq!(count(&z, "cbz x0,") + count(&z, "cbnz x0,"), 1, "{z:?}");
    assert_eq!(count(&z, "cmp"), 0, "{z:?}");
    let h = listing(&cm, "h");
    let fcmp = position(&h, "fcmp d0, d1");
    // ls is false on unordered (C=1, Z=0), so its inverse hi is true then.
    assert!(h[fcmp + 1].starts_with("b.hi "), "{h:?}");
}

#[test]
fn float_compares_use_conditions_false_on_unordered() {
    let src: String = FLOAT_CMP
        .iter()
        .map(|op| {
            format!("func @{op}(%a: f32, %b: f32) -> i32 {{\nentry:\n    %r = {op}.f32 %a, %b\n    ret %r\n}}\n")
        })
        .collect();
    let cm = compile(&src);
    for (op, cond) in [
        ("feq", "eq"),
        ("fne", "ne"),
        ("flt", "mi"),
        ("fle", "ls"),
        ("fgt", "gt"),
        ("fge", "ge"),
    ] {
        let l = listing(&cm, op);
        let at = position(&l, "fcmp s0, s1");
        assert_eq!(l[at + 1], format!("cset w0, {cond}"), "{op}");
    }
}

const DIVISIONS: &str =
    "func @sd(%a: i64, %b: i64) -> i64 {\nentry:\n    %r = sdiv.i64 %a, %b\n    ret %r\n}\n\
         func @sr(%a: i32, %b: i32) -> i32 {\nentry:\n    %r = srem.i32 %a, %b\n    ret %r\n}\n\
         func @ud(%a: i64) -> i64 {\nentry:\n    %r = udiv.i64 %a, 7\n    ret %r\n}\n\
         func @sk(%a: i64) -> i64 {\nentry:\n    %r = sdiv.i64 %a, -1\n    ret %r\n}\n";

#[test]
fn division_checks_are_explicit() {
    // The allocated code reads the arguments where they arrive.
    let cm = compile(DIVISIONS);
    let sd = listing(&cm, "sd");
    let z = sd
        .iter()
        .position(|s| s.starts_with("cbz x1,"))
        .expect("zero check");
    assert_eq!(sd[z + 1], "cmn x1, #0x1", "{sd:?}");
    assert!(sd[z + 2].starts_with("b.ne"));
    assert_eq!(sd[z + 3], "cmp x0, #0x1");
    assert!(sd[z + 4].starts_with("b.vs"));
    assert_eq!(sd[z + 5], "sdiv x0, x0, x1");
    let sr = listing(&cm, "sr");
    assert!(
        has(&sr, "sdiv w16, w0, w1") && has(&sr, "msub w0, w16, w1, w0"),
        "{sr:?}"
    );
    assert_eq!(count(&sr, "cmn"), 0);
    assert_eq!(count(&listing(&cm, "ud"), "cbz"), 0);
    assert_eq!(count(&listing(&cm, "sk"), "b.vs"), 1);

    let sd = listing(&cm, "sd");
    // A `bl` per trap site into one shared stub per reason: mov w0,
    // code; load the handler; br (the site's return address stays in x30).
    assert!(
        has(&sd, "mov w0, #0x1") && has(&sd, "mov w0, #0x2"),
        "{sd:?}"
    );
    assert_eq!(count(&sd, "br x16"), 2);
    assert_eq!(count(&sd, "bl "), 2, "{sd:?}");
    let sr = listing(&cm, "sr");
    assert_eq!(count(&sr, "cbz w1,"), 1);
    let ud = listing(&cm, "ud");
    assert_eq!(
        count(&ud, "cbz"),
        0,
        "a nonzero literal divisor needs no check"
    );
    assert_eq!(count(&ud, "br x16"), 0, "no trap stub");
    let sk = listing(&cm, "sk");
    assert_eq!(count(&sk, "cbz"), 0);
    assert_eq!(count(&sk, "b.vs"), 1, "MIN / -1 still traps");
}

#[test]
fn relocations_have_the_right_kinds() {
    let cm = compile(
        "extern func @host(i64) -> i64\n\
         data @d = { i64 1, @d }\n\
         local func @g(%x: i64) -> i64 {\nentry:\n    ret %x\n}\n\
         func @f(%x: i64) -> i64 {\nentry:\n    %a = call.i64 @g(%x)\n    %b = call.i64 @host(%a)\n    %p = addr @d\n    %h = addr @host\n    %s = add.i64 %p, %h\n    %t = add.i64 %s, %b\n    ret %t\n}\n",
    );
    let f = cm.symbol("f").expect("f");
    let in_f = |kind: RelocKind, target: &str| {
        cm.relocs
            .iter()
            .filter(|r| {
                r.section == SectionKind::Text
                    && r.kind == kind
                    && r.target == target
                    && (r.offset as u64) >= f.offset
                    && (r.offset as u64) < f.offset + f.size
            })
            .map(|r| r.offset as usize)
            .collect::<Vec<_>>()
    };
    let word = |at: usize| u32::from_le_bytes(cm.text[at..at + 4].try_into().unwrap());
    let bl = in_f(RelocKind::Arm64Call26, "g");
    assert_eq!(bl.len(), 1);
    assert_eq!(word(bl[0]) & 0xfc00_0000, 0x9400_0000, "bl");
    // The import is called directly too (the registry adds a veneer if it
    // is out of range); only its address is an absolute literal.
    let host_bl = in_f(RelocKind::Arm64Call26, "host");
    assert_eq!(host_bl.len(), 1);
    assert_eq!(word(host_bl[0]) & 0xfc00_0000, 0x9400_0000, "bl");
    assert_eq!(in_f(RelocKind::Abs64, "host").len(), 1, "addr");
    let page = in_f(RelocKind::Arm64AdrpPage21, "d");
    let lo = in_f(RelocKind::Arm64AddLo12, "d");
    assert_eq!((page.len(), lo.len()), (1, 1));
    assert_eq!(lo[0], page[0] + 4);
    assert_eq!(word(page[0]) & 0x9f00_0000, 0x9000_0000, "adrp");
    assert_eq!(word(lo[0]) & 0xff80_0000, 0x9100_0000, "add imm");
    assert_eq!(cm.imports, ["host"]);
    // The data item's own entry.
    assert!(cm
        .relocs
        .iter()
        .any(|r| r.section == SectionKind::Data && r.kind == RelocKind::Abs64 && r.target == "d"));
    // Every relocation patches what its kind expects: apply them all.
    let mut text = cm.text.clone();
    for r in cm.relocs.iter().filter(|r| r.section == SectionKind::Text) {
        r.apply_to(&mut text, 0x1000_0000, 0x1000_8000)
            .expect("relocation applies");
    }
}

#[test]
fn switch_tables_and_compare_chains() {
    let cm = compile(
        "func @dense(%x: i32) -> i32 {\nentry:\n    switch.i32 %x, d, 10: a, 11: b, 12: a, 13: b, 15: a\na:\n    ret 1\nb:\n    ret 2\nd:\n    ret 3\n}\n\
         func @sparse(%x: i64) -> i32 {\nentry:\n    switch.i64 %x, d, 1: a, 1000000: b, -5: a\na:\n    ret 1\nb:\n    ret 2\nd:\n    ret 3\n}\n",
    );
    let d = listing(&cm, "dense");
    assert!(has(&d, "ldr x16, [x16, x17, lsl #3]"), "{d:?}");
    assert!(has(&d, "sub w17, w0, #0xa"), "index = x - min: {d:?}");
    assert!(has(&d, "br x16"));
    let jt = cm.symbol("dense#jt0").expect("table");
    assert_eq!(jt.section, SectionKind::Rodata);
    assert_eq!(jt.size, 8 * 6, "keys 10..=15");
    let dense = cm.symbol("dense").expect("dense");
    let entries: Vec<i64> = cm
        .relocs
        .iter()
        .filter(|r| r.section == SectionKind::Rodata && (r.offset as u64) >= jt.offset)
        .filter(|r| (r.offset as u64) < jt.offset + jt.size)
        .map(|r| {
            assert_eq!((r.kind, r.target.as_str()), (RelocKind::Abs64, "dense"));
            r.addend
        })
        .collect();
    assert_eq!(entries.len(), 6);
    // 10, 12, 15 go to one block; 11, 13 to another; 14 to the default.
    assert_eq!(entries[0], entries[2]);
    assert_eq!(entries[0], entries[5]);
    assert_eq!(entries[1], entries[3]);
    assert_ne!(entries[0], entries[1]);
    assert_ne!(entries[4], entries[0]);
    assert!(entries.iter().all(|&e| e > 0 && (e as u64) < dense.size));
    let s = listing(&cm, "sparse");
    assert_eq!(count(&s, "b.eq"), 3, "{s:?}");
    assert!(has(&s, "cmn x0, #0x5"));
    assert!(!s.iter().any(|l| l.starts_with("br ")));
}

#[test]
fn large_frames_probe_pages_and_far_slots_use_register_offsets() {
    let mut body = String::from("    %m = alloca 100000, 16\n    store.i64 %x, %m, 99992\n");
    let mut last = "x".to_string();
    for i in 0..5000 {
        body.push_str(&format!("    %v{i} = add.i64 %{last}, 1\n"));
        last = format!("v{i}");
    }
    let src = format!("func @f(%x: i64) -> i64 {{\nentry:\n{body}    ret %{last}\n}}\n");
    let l = listing(&compile(&src), "f");
    assert!(has(&l, "sub sp, sp, #0x1, lsl #12"), "page-by-page probe");
    assert!(has(&l, "str xzr, [sp]"));
    // 5,000 values live at once spill: slots beyond 32 KiB need x16.
    let mut body = String::new();
    for i in 0..5000 {
        body.push_str(&format!("    %v{i} = add.i64 %x, {i}\n"));
    }
    let mut last = "v0".to_string();
    for i in 1..5000 {
        body.push_str(&format!("    %s{i} = add.i64 %{last}, %v{i}\n"));
        last = format!("s{i}");
    }
    let src = format!("func @f(%x: i64) -> i64 {{\nentry:\n{body}    ret %{last}\n}}\n");
    let l = listing(&compile(&src), "f");
    assert!(
        l.iter()
            .any(|s| s.starts_with("ldr x") && s.contains(", [sp, x16")),
        "slots beyond 32 KiB are addressed through x16"
    );
}

#[test]
fn many_arguments_use_the_stack_and_keep_it_aligned() {
    let ps: Vec<String> = (0..10).map(|i| format!("%a{i}: i64")).collect();
    let args: Vec<String> = (0..10).map(|i| format!("%a{i}")).collect();
    let src = format!(
        "local func @g({}) -> i64 {{\nentry:\n    ret %a9\n}}\n\
         func @f({}) -> i64 {{\nentry:\n    %r = call.i64 @g({})\n    ret %r\n}}\n",
        ps.join(", "),
        ps.join(", "),
        args.join(", ")
    );
    for (_, backend) in backends() {
        let m = parse_module("t.kir", &src).expect("parse");
        let cm = compile_module(&m, backend).expect("compile");
        let g = listing(&cm, "g");
        // The 9th and 10th arguments come from above the frame record.
        assert!(any_like(&g, "ldr x", ", [x29, #0x10]"), "{g:?}");
        assert!(any_like(&g, "ldr x", ", [x29, #0x18]"), "{g:?}");
        let f = listing(&cm, "f");
        assert!(any_like(&f, "str x", ", [sp]"), "{f:?}");
        assert!(any_like(&f, "str x", ", [sp, #0x8]"), "{f:?}");
        let sub = f
            .iter()
            .find(|s| s.starts_with("sub sp, sp, #"))
            .expect("frame");
        let size = u64::from_str_radix(sub.trim_start_matches("sub sp, sp, #0x"), 16).unwrap();
        assert_eq!(size % 16, 0);
    }
}

#[test]
fn a_20000_instruction_function_compiles() {
    let mut body = String::new();
    let mut last = "x".to_string();
    for i in 0..20_000 {
        let op = ["add", "mul", "xor", "sub"][i % 4];
        body.push_str(&format!("    %v{i} = {op}.i64 %{last}, {}\n", i % 4093 + 1));
        last = format!("v{i}");
    }
    let src = format!("func @big(%x: i64) -> i64 {{\nentry:\n{body}    ret %{last}\n}}\n");
    let cm = compile(&src);
    let sym = cm.symbol("big").expect("big");
    assert!(sym.size >= 20_000 * 4);
}

/// A function with over 1 MiB of code between its entry and its last
/// block: the fused compare's branch to that block and the division
/// check's branch to its trap stub are beyond the ±1 MiB of `b.cond`/`cbz`,
/// so they must go through `b`. The big block is never run by the tests.
fn huge_function() -> String {
    let mut body = String::new();
    let mut last = "q".to_string();
    for i in 0..60_000 {
        body.push_str(&format!("    %v{i} = add.i64 %{last}, 0x123456789abcdef\n"));
        last = format!("v{i}");
    }
    format!(
        "func @huge(%n: i64, %d: i64) -> i64 {{\nentry:\n    %q = sdiv.i64 %n, %d\n    %big = eq.i64 %n, 5\n\
         br %big, big, exit\nbig:\n{body}    ret %{last}\nexit:\n    ret %q\n}}\n"
    )
}

#[test]
fn branches_beyond_one_mebibyte_go_far() {
    let src = huge_function();
    let m = parse_module("t.kir", &src).expect("parse");
    for (name, backend) in backends() {
        let cm = compile_module(&m, backend).expect(name);
        let sym = cm.symbol("huge").expect("huge");
        assert!(sym.size > 1 << 20, "{name}: {} bytes", sym.size);
        let l = listing(&cm, "huge");
        // The zero check became `cbnz` over a `b` to the stub.
        let z = l
            .iter()
            .position(|s| s.starts_with("cbnz x"))
            .unwrap_or_else(|| panic!("{name}: no far zero check"));
        assert!(l[z + 1].starts_with("b $+0x"), "{name}: {}", l[z + 1]);
        // The compare's branch to `exit`: the inverse skips a far `b`.
        let c = l
            .iter()
            .position(|s| s.starts_with("b.eq $+0x8"))
            .unwrap_or_else(|| panic!("{name}: no far conditional branch"));
        assert!(l[c + 1].starts_with("b $+0x"), "{name}: {}", l[c + 1]);
    }
}

#[test]
fn every_example_and_instruction_file_compiles_with_checked_allocation() {
    let mut files = Vec::new();
    for dir in ["examples", "tests/ir/inst"] {
        for entry in std::fs::read_dir(dir).expect(dir) {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "kir") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let src = std::fs::read_to_string(&path).expect("read");
        let m = parse_module(&path.display().to_string(), &src).expect("parse");
        for backend in [&AARCH64_CHECKED as &dyn Backend] {
            let cm =
                compile_module(&m, backend).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for s in cm.symbols.iter().filter(|s| s.is_func) {
                listing(&cm, &s.name);
            }
        }
    }
}

#[test]
fn oversized_frames_are_errors_not_panics() {
    let src = "func @f() -> i64 {\nentry:\n    %p = alloca 0x10000000000, 16\n    ret %p\n}\n";
    let m = parse_module("t.kir", src).expect("parse");
    for (name, backend) in backends() {
        let e = compile_module(&m, backend).expect_err(name);
        assert!(e.to_string().contains("frame too large"), "{name}: {e}");
    }
}

#[test]
fn unknown_target_is_none_and_names_match() {
    let b = isa::backend("aarch64").expect("aarch64");
    assert_eq!(b.name(), "aarch64");
    assert!(isa::backend("riscv64").is_none());
}

// ---------------------------------------------------------------------------
// Execution under the emulator, compared with the interpreter.

#[cfg(feature = "emulate")]
mod emulated {
    use super::*;
    use kiln::emulate::{EmulatedAarch64, EmulatorConfig, Outcome};
    use kiln::host::HostFunctions;
    use kiln::interp::Interpreter;
    use kiln::ir::{Module, Type};
    use kiln::{Error, Val};
    use std::collections::HashMap;

    /// Loads `cm` into `m`: each section mapped, relocated against its
    /// emulated address, and written. Returns symbol addresses.
    pub fn load(m: &mut EmulatedAarch64, cm: &CompiledModule) -> HashMap<String, u64> {
        let mut base = HashMap::new();
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            let len = cm.section_len(kind).max(16);
            base.insert(kind, m.map_new(len, kind).expect("map"));
        }
        let syms: HashMap<String, u64> = cm
            .symbols
            .iter()
            .map(|s| (s.name.clone(), base[&s.section] + s.offset))
            .collect();
        for kind in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            let mut bytes = cm.section(kind).to_vec();
            // Zero-initialized data after the bytes (`bss`).
            bytes.resize(cm.section_len(kind) as usize, 0);
            for r in cm.relocs.iter().filter(|r| r.section == kind) {
                let s = syms
                    .get(&r.target)
                    .copied()
                    .or_else(|| m.host_address(&r.target))
                    .unwrap_or_else(|| panic!("unresolved {}", r.target));
                r.apply_to(&mut bytes, base[&kind], s).expect("relocate");
            }
            if !bytes.is_empty() {
                m.write(base[&kind], &bytes).expect("write");
            }
        }
        syms
    }

    pub fn machine() -> EmulatedAarch64 {
        EmulatedAarch64::new(EmulatorConfig {
            instruction_limit: Some(10_000_000),
            time_limit: None,
            ..EmulatorConfig::default()
        })
        .expect("emulator")
    }

    fn ty(s: &str) -> Type {
        match s {
            "i32" => Type::I32,
            "i64" => Type::I64,
            "f32" => Type::F32,
            _ => Type::F64,
        }
    }

    const I32_EDGE: [i64; 15] = [
        0,
        1,
        -1,
        2,
        7,
        -7,
        31,
        32,
        33,
        i32::MIN as i64,
        i32::MAX as i64,
        4095,
        4096,
        -4096,
        0x1234_5678,
    ];
    const I64_EDGE: [i64; 17] = [
        0,
        1,
        -1,
        2,
        7,
        -7,
        63,
        64,
        65,
        i64::MIN,
        i64::MAX,
        4095,
        4096,
        -4096,
        0x1234_5678_9abc_def0,
        i32::MIN as i64,
        u32::MAX as i64,
    ];
    /// Float edge values.
    const FLOAT_EDGE: [f64; 16] = [
        0.0,
        -0.0,
        1.5,
        -2.25,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e10,
        -1e10,
        3e9,
        5e18,
        9223372036854775808.0,
        18446744073709551616.0,
        -1.0,
        0.5,
        4294967295.5,
    ];

    fn edge_values(t: &str) -> Vec<Val> {
        match t {
            "i32" => I32_EDGE.iter().map(|&v| Val::I32(v as i32)).collect(),
            "i64" => I64_EDGE.iter().map(|&v| Val::I64(v)).collect(),
            "f32" => FLOAT_EDGE.iter().map(|&v| Val::F32(v as f32)).collect(),
            _ => FLOAT_EDGE.iter().map(|&v| Val::F64(v)).collect(),
        }
    }

    /// A result compared bit for bit, any NaN equal to any NaN.
    fn norm(r: kiln::Result<Option<Val>>) -> String {
        match r {
            Ok(Some(Val::F32(v))) if v.is_nan() => "f32 NaN".into(),
            Ok(Some(Val::F64(v))) if v.is_nan() => "f64 NaN".into(),
            Ok(Some(v)) => format!("{:?} {:#x}", v.ty(), v.to_bits()),
            Ok(None) => "none".into(),
            Err(Error::Trap(t)) => format!("trap {:?}", t.code),
            Err(e) => format!("error {e}"),
        }
    }

    fn emu_call(m: &mut EmulatedAarch64, addr: u64, args: &[Val], ret: Type) -> String {
        norm(match m.call(addr, args, Some(ret)) {
            Ok(Outcome::Returned(v)) => Ok(v),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e),
        })
    }

    /// Every argument combination of `g` over the edge values (pairs for
    /// two parameters; the select condition over 0, 1, -1).
    fn inputs(g: &Gen) -> Vec<Vec<Val>> {
        let mut all: Vec<Vec<Val>> = vec![Vec::new()];
        for (i, p) in g.params.iter().enumerate() {
            let vals = if g.name.starts_with("select") && i == 0 {
                vec![Val::I32(0), Val::I32(1), Val::I32(-1)]
            } else if g.name.starts_with("select") {
                edge_values(p).into_iter().take(4).collect()
            } else {
                edge_values(p)
            };
            all = all
                .into_iter()
                .flat_map(|prefix| {
                    vals.iter().map(move |v| {
                        let mut n = prefix.clone();
                        n.push(*v);
                        n
                    })
                })
                .collect();
        }
        all
    }

    /// Runs every function of `gens` over its edge inputs under the
    /// emulator, compiled by each backend, and under the interpreter.
    fn differential(src: &str, gens: &[Gen]) {
        let module: Module = parse_module("test.kir", src).expect("parse");
        let modules = [module];
        let mut it = Interpreter::new(&modules, &HostFunctions::new()).expect("interp");
        for (bname, backend) in backends() {
            let cm = compile_module(&modules[0], backend).expect("compile");
            let mut m = machine();
            let syms = load(&mut m, &cm);
            let mut checked = 0;
            for g in gens {
                for args in inputs(g) {
                    let want = norm(it.call(&g.name, &args));
                    let got = emu_call(&mut m, syms[&g.name], &args, ty(g.ret));
                    assert_eq!(got, want, "{bname}: @{}({args:?})", g.name);
                    checked += 1;
                }
            }
            assert!(checked > 1000, "{checked} calls");
        }
    }

    #[test]
    fn every_instruction_matches_the_interpreter() {
        let (src, gens) = every_instruction_module();
        differential(&src, &gens);
    }

    /// `(emulated result, interpreter result)` of `name(args)`, checking
    /// that both backends agree.
    fn run(src: &str, name: &str, args: &[Val], ret: Type) -> (String, String) {
        let module: Module = parse_module("test.kir", src).expect("parse");
        let modules = [module];
        let mut it = Interpreter::new(&modules, &HostFunctions::new()).expect("interp");
        let want = norm(it.call(name, args));
        let mut results = Vec::new();
        for (_, backend) in backends() {
            let cm = compile_module(&modules[0], backend).expect("compile");
            let mut m = machine();
            let syms = load(&mut m, &cm);
            results.push(emu_call(&mut m, syms[name], args, ret));
        }
        assert_eq!(
            results[0], results[1],
            "backends disagree on @{name}({args:?})"
        );
        (results.swap_remove(0), want)
    }

    #[test]
    fn loops_calls_stack_arguments_and_switches_match() {
        let ps: Vec<String> = (0..12)
            .map(|i| {
                if i % 3 == 2 {
                    format!("%a{i}: f64")
                } else {
                    format!("%a{i}: i32")
                }
            })
            .collect();
        let src = format!(
            "local func @many({}) -> i64 {{\nentry:\n    %x = sext.i64 %a10\n    %y = ftosi.i64 %a11\n    %z = mul.i64 %x, 1000\n    %w = add.i64 %z, %y\n    ret %w\n}}\n\
             local func @two(%a: i32, %b: i64) -> i64 {{\nentry:\n    %x = zext.i64 %a\n    %y = mul.i64 %x, 3\n    %z = sub.i64 %y, %b\n    ret %z\n}}\n\
             func @sum(%n: i64) -> i64 {{\nentry:\n    jmp loop(0, 0)\nloop(%i: i64, %acc: i64):\n    %done = sge.i64 %i, %n\n    br %done, exit(%acc), body\nbody:\n    %acc2 = add.i64 %acc, %i\n    %i2 = add.i64 %i, 1\n    jmp loop(%i2, %acc2)\nexit(%r: i64):\n    ret %r\n}}\n\
             func @swap(%n: i64) -> i64 {{\nentry:\n    jmp loop(%n, 1, 2)\nloop(%i: i64, %a: i64, %b: i64):\n    %d = eq.i64 %i, 0\n    br %d, out, next\nnext:\n    %i2 = sub.i64 %i, 1\n    jmp loop(%i2, %b, %a)\nout:\n    %r = mul.i64 %a, 10\n    %s = add.i64 %r, %b\n    ret %s\n}}\n\
             func @call(%k: i32) -> i64 {{\nentry:\n    %r = call.i64 @many(1, 2, 3.0, 4, 5, 6.0, 7, 8, 9.0, 10, %k, 12.75)\n    %f = addr @two\n    %w = sext.i64 %k\n    %r2 = call.i64 %f(%k, %w)\n    %s = add.i64 %r, %r2\n    ret %s\n}}\n\
             func @sw(%x: i32) -> i32 {{\nentry:\n    switch.i32 %x, d, 10: a, 11: b, 12: a, 13: b, 15: c\na:\n    ret 1\nb:\n    ret 2\nc:\n    ret 3\nd:\n    ret 4\n}}\n\
             func @sp(%x: i64) -> i32 {{\nentry:\n    switch.i64 %x, d, 1: a, 1000000: b, -5: a\na:\n    ret 1\nb:\n    ret 2\nd:\n    ret 3\n}}\n\
             func @t(%x: i64) -> i64 {{\nentry:\n    %c = eq.i64 %x, 0\n    br %c, bad, ok\nbad:\n    trap\nok:\n    ret %x\n}}\n",
            ps.join(", ")
        );
        let checks: Vec<(&str, Vec<Val>, Type)> = vec![
            ("sum", vec![Val::I64(100)], Type::I64),
            ("sum", vec![Val::I64(0)], Type::I64),
            ("swap", vec![Val::I64(5)], Type::I64),
            ("swap", vec![Val::I64(6)], Type::I64),
            ("call", vec![Val::I32(-3)], Type::I64),
            ("t", vec![Val::I64(0)], Type::I64),
            ("t", vec![Val::I64(9)], Type::I64),
        ];
        for (name, args, ret) in checks {
            let (got, want) = run(&src, name, &args, ret);
            assert_eq!(got, want, "@{name}({args:?})");
        }
        for x in [
            -1i64, 0, 1, 9, 10, 11, 12, 13, 14, 15, 16, 1000000, -5, 4294967306,
        ] {
            let (got, want) = run(&src, "sw", &[Val::I32(x as i32)], Type::I32);
            assert_eq!(got, want, "sw({x})");
            let (got, want) = run(&src, "sp", &[Val::I64(x)], Type::I32);
            assert_eq!(got, want, "sp({x})");
        }
    }

    #[test]
    fn data_addresses_and_host_calls_run() {
        let src = "extern func @malloc(i64) -> i64\n\
             data @counter = { i64 40, i32 2 }\n\
             const @ptr = { @counter+8 }\n\
             func @f() -> i64 {\nentry:\n    %p = addr @ptr\n    %q = load.i64 %p\n    %two = load32s.i64 %q\n    %c = addr @counter\n    %forty = load.i64 %c\n    %m = call.i64 @malloc(64)\n    store.i64 %forty, %m, 56\n    %back = load.i64 %m, 56\n    %r = add.i64 %back, %two\n    ret %r\n}\n";
        let module: Module = parse_module("test.kir", src).expect("parse");
        for (_, backend) in backends() {
            let cm = compile_module(&module, backend).expect("compile");
            let mut m = machine();
            let syms = load(&mut m, &cm);
            assert_eq!(
                emu_call(&mut m, syms["f"], &[], Type::I64),
                norm(Ok(Some(Val::I64(42))))
            );
        }
    }

    /// xorshift64*: a tiny deterministic PRNG for generated programs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'x>(&mut self, v: &'x [String]) -> &'x str {
            &v[self.below(v.len())]
        }
    }

    /// A random function `@r{k}(%a: i64, %b: i64, %c: f64, %d: i32) -> i64`
    /// with many values live at once (register pressure, spills), values
    /// live across calls (callee-saved registers), memory, a diamond with
    /// block parameters, and a result that depends on every value.
    fn random_function(rng: &mut Rng, k: usize) -> String {
        let mut ints: Vec<String> = vec!["%a".into(), "%b".into()];
        let mut i32s: Vec<String> = vec!["%d".into()];
        let mut fs: Vec<String> = vec!["%c".into()];
        let mut body = String::new();
        let mut n = 0;
        let mut fresh = |prefix: &str| {
            n += 1;
            format!("%{prefix}{n}")
        };
        const LITS: [&str; 8] = [
            "1",
            "-1",
            "7",
            "4095",
            "4096",
            "-65536",
            "0xff",
            "0x123456789",
        ];
        for _ in 0..48 {
            match rng.below(10) {
                0..=3 => {
                    let op = ["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar"]
                        [rng.below(9)];
                    let x = rng.pick(&ints).to_string();
                    let y = if rng.below(3) == 0 {
                        LITS[rng.below(LITS.len())].to_string()
                    } else {
                        rng.pick(&ints).to_string()
                    };
                    let d = fresh("i");
                    body.push_str(&format!("    {d} = {op}.i64 {x}, {y}\n"));
                    ints.push(d);
                }
                4 => {
                    let x = rng.pick(&ints).to_string();
                    let y = rng.pick(&ints).to_string();
                    let nz = fresh("nz");
                    let op = ["sdiv", "udiv", "srem", "urem"][rng.below(4)];
                    let d = fresh("q");
                    body.push_str(&format!(
                        "    {nz} = or.i64 {y}, 1\n    {d} = {op}.i64 {x}, {nz}\n"
                    ));
                    ints.push(d);
                }
                5 => {
                    let d = fresh("w");
                    if rng.below(2) == 0 {
                        let x = rng.pick(&ints).to_string();
                        body.push_str(&format!("    {d} = trunc.i32 {x}\n"));
                    } else {
                        let op = ["add", "mul", "xor", "sar", "udiv"][rng.below(5)];
                        let x = rng.pick(&i32s).to_string();
                        let y = if op == "udiv" {
                            "3".to_string()
                        } else {
                            rng.pick(&i32s).to_string()
                        };
                        body.push_str(&format!("    {d} = {op}.i32 {x}, {y}\n"));
                    }
                    i32s.push(d);
                }
                6 => {
                    let x = rng.pick(&ints).to_string();
                    let y = rng.pick(&ints).to_string();
                    let op = ["slt", "ult", "eq", "sge"][rng.below(4)];
                    let c = fresh("c");
                    let d = fresh("s");
                    body.push_str(&format!(
                        "    {c} = {op}.i64 {x}, {y}\n    {d} = select.i64 {c}, {x}, {y}\n"
                    ));
                    i32s.push(c);
                    ints.push(d);
                }
                7 => {
                    let d = fresh("f");
                    if rng.below(3) == 0 {
                        let x = rng.pick(&ints).to_string();
                        body.push_str(&format!("    {d} = sitof.f64 {x}\n"));
                    } else {
                        let op = ["fadd", "fsub", "fmul"][rng.below(3)];
                        let x = rng.pick(&fs).to_string();
                        let y = rng.pick(&fs).to_string();
                        body.push_str(&format!("    {d} = {op}.f64 {x}, {y}\n"));
                    }
                    fs.push(d);
                }
                8 if k % 2 == 1 && rng.below(2) == 0 => {
                    // An earlier generated function: it uses callee-saved
                    // registers itself, so it must restore them for the
                    // values this one keeps there across the call.
                    let (x, y) = (rng.pick(&ints).to_string(), rng.pick(&ints).to_string());
                    let (f, w) = (rng.pick(&fs).to_string(), rng.pick(&i32s).to_string());
                    let d = fresh("r");
                    body.push_str(&format!(
                        "    {d} = call.i64 @r{}({x}, {y}, {f}, {w})\n",
                        k - 1
                    ));
                    ints.push(d);
                }
                8 => {
                    let x = rng.pick(&ints).to_string();
                    let f = rng.pick(&fs).to_string();
                    let d = fresh("r");
                    body.push_str(&format!("    {d} = call.i64 @helper({x}, {f})\n"));
                    ints.push(d);
                }
                _ => {
                    let x = rng.pick(&ints).to_string();
                    let (p, d) = (fresh("p"), fresh("l"));
                    body.push_str(&format!(
                        "    {p} = alloca 16\n    store.i64 {x}, {p}, 8\n    {d} = load32s.i64 {p}, 8\n"
                    ));
                    ints.push(d);
                }
            }
        }
        let (x, y) = (rng.pick(&ints).to_string(), rng.pick(&ints).to_string());
        let f = rng.pick(&fs).to_string();
        let mut tail = format!(
            "    %cc = ult.i64 {x}, {y}\n    br %cc, l1, l2\n\
             l1:\n    %t1 = add.i64 {x}, 1\n    jmp m(%t1, {f})\n\
             l2:\n    %t2 = mul.i64 {y}, 3\n    %g2 = fadd.f64 {f}, 0.5\n    jmp m(%t2, %g2)\n\
             m(%mi: i64, %mf: f64):\n    %acc0 = copy.i64 %mi\n"
        );
        let mut acc = 0;
        let mut fold = |tail: &mut String, v: String| {
            tail.push_str(&format!(
                "    %acc{} = xor.i64 %acc{acc}, {v}\n    %accm{} = mul.i64 %acc{}, 3\n",
                acc + 1,
                acc + 1,
                acc + 1
            ));
            acc += 1;
            tail.push_str(&format!("    %acc{} = add.i64 %accm{acc}, 0\n", acc + 1));
            acc += 1;
        };
        for v in &ints {
            fold(&mut tail, v.clone());
        }
        for (j, v) in i32s.iter().enumerate() {
            tail.push_str(&format!("    %sx{j} = sext.i64 {v}\n"));
            fold(&mut tail, format!("%sx{j}"));
        }
        fs.push("%mf".into());
        for (j, v) in fs.iter().enumerate() {
            tail.push_str(&format!("    %fi{j} = ftosi.i64 {v}\n"));
            fold(&mut tail, format!("%fi{j}"));
        }
        tail.push_str(&format!("    ret %acc{acc}\n"));
        format!(
            "func @r{k}(%a: i64, %b: i64, %c: f64, %d: i32) -> i64 {{\nentry:\n{body}{tail}}}\n"
        )
    }

    #[test]
    fn random_programs_match_the_interpreter() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut src = String::from(
            "local func @helper(%x: i64, %y: f64) -> i64 {\nentry:\n    %t = ftosi.i64 %y\n    %u = mul.i64 %x, 31\n    %v = add.i64 %u, %t\n    ret %v\n}\n",
        );
        let count = 24;
        for k in 0..count {
            src.push_str(&random_function(&mut rng, k));
        }
        let module: Module = parse_module("random.kir", &src).expect("parse");
        let modules = [module];
        let mut it = Interpreter::new(&modules, &HostFunctions::new()).expect("interp");
        let inputs: Vec<[Val; 4]> = (0..4)
            .map(|_| {
                [
                    Val::I64(rng.next() as i64 >> rng.below(60)),
                    Val::I64(rng.next() as i64 >> rng.below(60)),
                    Val::F64((rng.next() as i64 >> 20) as f64 / 1024.0),
                    Val::I32(rng.next() as i32 >> rng.below(30)),
                ]
            })
            .collect();
        // The programs do stress the allocator: values live across calls
        // sit in callee-saved registers (saved by the prologue).
        let cm = compile_module(&modules[0], backends()[0].1).expect("compile");
        let saves = (0..count)
            .filter(|k| {
                let l = listing(&cm, &format!("r{k}"));
                any_like(&l, "str x19, [sp", "]") || any_like(&l, "str d8, [sp", "]")
            })
            .count();
        assert!(
            saves > count / 2,
            "{saves} of {count} save callee-saved registers"
        );
        for (bname, backend) in backends() {
            let cm = compile_module(&modules[0], backend).expect("compile");
            let mut m = machine();
            let syms = load(&mut m, &cm);
            for k in 0..count {
                let name = format!("r{k}");
                for args in &inputs {
                    let want = norm(it.call(&name, args));
                    let got = emu_call(&mut m, syms[&name], args, Type::I64);
                    assert_eq!(got, want, "{bname}: @{name}({args:?})");
                }
            }
        }
    }

    #[test]
    fn stack_arguments_of_every_type_match() {
        // 10 of each class: two of each class go on the stack, in order,
        // both from the emulator's caller and between kiln functions
        // (direct and indirect).
        let tys = ["i64", "f32", "i32", "f64"];
        let params: Vec<String> = (0..20).map(|i| format!("%p{i}: {}", tys[i % 4])).collect();
        let mut body = String::from("    %acc0 = copy.i64 0\n");
        for i in 0..20 {
            let conv = match tys[i % 4] {
                "i64" => format!("    %v{i} = copy.i64 %p{i}\n"),
                "i32" => format!("    %v{i} = sext.i64 %p{i}\n"),
                "f32" => format!("    %w{i} = fext.f64 %p{i}\n    %v{i} = ftosi.i64 %w{i}\n"),
                _ => format!("    %v{i} = ftosi.i64 %p{i}\n"),
            };
            body.push_str(&conv);
            body.push_str(&format!(
                "    %m{i} = mul.i64 %acc{i}, 31\n    %acc{} = add.i64 %m{i}, %v{i}\n",
                i + 1
            ));
        }
        let args: Vec<String> = (0..20).map(|i| format!("%p{i}")).collect();
        let src = format!(
            "func @many({}) -> i64 {{\nentry:\n{body}    ret %acc20\n}}\n\
             func @fwd({}) -> i64 {{\nentry:\n    %r = call.i64 @many({})\n    %f = addr @many\n    %s = call.i64 %f({})\n    %t = xor.i64 %r, %s\n    %u = add.i64 %t, %r\n    ret %u\n}}\n",
            params.join(", "),
            params.join(", "),
            args.join(", "),
            args.join(", ")
        );
        let vals: Vec<Val> = (0..20)
            .map(|i| match tys[i % 4] {
                "i64" => Val::I64(-1000 - i as i64),
                "i32" => Val::I32(-(i as i32) * 7),
                "f32" => Val::F32(i as f32 * 1.5),
                _ => Val::F64(i as f64 * -2.25),
            })
            .collect();
        for name in ["many", "fwd"] {
            let (got, want) = run(&src, name, &vals, Type::I64);
            assert_eq!(got, want, "@{name}");
        }
    }

    #[test]
    fn far_branches_run() {
        let module: Module = parse_module("test.kir", &huge_function()).expect("parse");
        let modules = [module];
        let mut it = Interpreter::new(&modules, &HostFunctions::new()).expect("interp");
        let cases = [[Val::I64(6), Val::I64(3)], [Val::I64(1), Val::I64(0)]];
        let want: Vec<String> = cases.iter().map(|a| norm(it.call("huge", a))).collect();
        assert_eq!(want[1], "trap DivisionByZero");
        for (name, backend) in backends() {
            let cm = compile_module(&modules[0], backend).expect("compile");
            let mut m = machine();
            let syms = load(&mut m, &cm);
            for (args, want) in cases.iter().zip(&want) {
                let got = emu_call(&mut m, syms["huge"], args, Type::I64);
                assert_eq!(&got, want, "{name}: huge({args:?})");
            }
        }
    }

    #[test]
    fn the_20000_instruction_function_runs() {
        let mut body = String::new();
        let mut last = "x".to_string();
        for i in 0..20_000 {
            let op = ["add", "mul", "xor", "sub"][i % 4];
            body.push_str(&format!("    %v{i} = {op}.i64 %{last}, {}\n", i % 4093 + 1));
            last = format!("v{i}");
        }
        let src = format!("func @big(%x: i64) -> i64 {{\nentry:\n{body}    ret %{last}\n}}\n");
        let (got, want) = run(&src, "big", &[Val::I64(12345)], Type::I64);
        assert_eq!(got, want);
    }
}
