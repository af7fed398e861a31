//! x86-64 backend tests: compile `.kir` modules, check the machine code's
//! shape by decoding it (iced-x86), and run it natively through a small
//! loader (mmap, copy, relocate, protect) against results computed in Rust
//! with the SPEC's semantics. Traps run in a forked child whose trap handler
//! exits with `100 + code`.
#![cfg(all(target_arch = "x86_64", target_os = "linux", feature = "x86_64"))]

use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind, Register,
};
use kiln::compiled::CompiledModule;
use kiln::emit::compile_module;
use kiln::ir::parse::parse_module;
use kiln::isa;
use kiln::reloc::{RelocKind, SectionKind};
use std::collections::HashMap;

fn compile(src: &str) -> CompiledModule {
    let m = parse_module("test.kir", src).expect("parse");
    compile_module(&m, isa::backend("x86_64").expect("backend")).expect("compile")
}

/// A module copied into its own mapping, relocated and protected.
struct Loaded {
    base: *mut u8,
    len: usize,
    syms: HashMap<String, usize>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `load`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

extern "C" fn trap_handler(code: u32) -> ! {
    // SAFETY: _exit is async-signal-safe and ends the (forked) process.
    unsafe { libc::_exit(100 + code as i32) }
}

fn page_up(n: usize) -> usize {
    n.div_ceil(4096).max(1) * 4096
}

fn load(cm: &CompiledModule, host: &[(&str, usize)]) -> Loaded {
    let (t, r, d) = (page_up(cm.text.len()), page_up(cm.rodata.len()), page_up(cm.data.len()));
    let len = t + r + d;
    // SAFETY: a fresh anonymous private mapping; checked for failure.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    let base = base as *mut u8;
    let sect = |s: SectionKind| match s {
        SectionKind::Text => 0,
        SectionKind::Rodata => t,
        SectionKind::Data => t + r,
    };
    // SAFETY: each section fits its page-rounded part of the mapping.
    unsafe {
        std::ptr::copy_nonoverlapping(cm.text.as_ptr(), base, cm.text.len());
        std::ptr::copy_nonoverlapping(cm.rodata.as_ptr(), base.add(t), cm.rodata.len());
        std::ptr::copy_nonoverlapping(cm.data.as_ptr(), base.add(t + r), cm.data.len());
    }
    let mut syms: HashMap<String, usize> = HashMap::new();
    for s in &cm.symbols {
        syms.insert(s.name.clone(), base as usize + sect(s.section) + s.offset as usize);
    }
    let mut ext: HashMap<String, usize> = host.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    ext.insert(isa::TRAP_HANDLER.to_string(), trap_handler as *const () as usize);
    for imp in &cm.imports {
        assert!(ext.contains_key(imp), "unresolved import {imp}");
    }
    for rel in &cm.relocs {
        let s = syms.get(&rel.target).or(ext.get(&rel.target)).copied().expect("target");
        let p = base as usize + sect(rel.section) + rel.offset as usize;
        let v = (s as i64).wrapping_add(rel.addend);
        // SAFETY: relocation places lie inside their section (checked by
        // the compiled-module invariants; the mapping is writable).
        unsafe {
            match rel.kind {
                RelocKind::Abs64 => (p as *mut u64).write_unaligned(v as u64),
                RelocKind::X86PcRel32 => {
                    let d = i32::try_from(v - p as i64).expect("rel32 in range");
                    (p as *mut i32).write_unaligned(d)
                }
                #[allow(unreachable_patterns)]
                k => panic!("unexpected relocation {k:?}"),
            }
        }
    }
    // SAFETY: protecting page-aligned parts of our own mapping.
    unsafe {
        assert_eq!(libc::mprotect(base.cast(), t, libc::PROT_READ | libc::PROT_EXEC), 0);
        assert_eq!(libc::mprotect(base.add(t).cast(), r, libc::PROT_READ), 0);
    }
    Loaded { base, len, syms }
}

impl Loaded {
    fn addr(&self, name: &str) -> usize {
        *self.syms.get(name).unwrap_or_else(|| panic!("no symbol {name}"))
    }
}

macro_rules! func {
    ($l:expr, $name:expr, fn($($a:ty),*) -> $r:ty) => {{
        // SAFETY: the IR function has exactly this System V signature.
        unsafe { std::mem::transmute::<usize, extern "C" fn($($a),*) -> $r>($l.addr($name)) }
    }};
}

/// Runs `f` in a forked child; returns its exit status (the trap handler
/// exits with 100 + code, a normal return with 0).
fn status_of(f: impl FnOnce()) -> i32 {
    // SAFETY: the child only runs `f` (JIT code without locks) and _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            f();
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert!(libc::WIFEXITED(st), "child crashed: {st:#x}");
        libc::WEXITSTATUS(st)
    }
}

/// A tiny xorshift generator for randomized inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Mostly edge values, sometimes random bits.
    fn int(&mut self) -> u64 {
        const EDGES: [u64; 10] = [0, 1, 2, u64::MAX, 0x8000_0000_0000_0000, 0x7fff_ffff_ffff_ffff, 0x8000_0000, 0x7fff_ffff, 0xffff_ffff, 63];
        let r = self.next();
        if r % 3 == 0 {
            EDGES[(r >> 8) as usize % EDGES.len()]
        } else {
            self.next() >> (r % 64)
        }
    }
}

fn decode(cm: &CompiledModule, name: &str) -> Vec<Instruction> {
    let s = cm.symbols.iter().find(|s| s.name == name).expect("symbol");
    let bytes = &cm.text[s.offset as usize..(s.offset + s.size) as usize];
    Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE).into_iter().collect()
}

fn is_imm(i: &Instruction, op: u32) -> bool {
    op < i.op_count()
        && matches!(
            i.op_kind(op),
            OpKind::Immediate8 | OpKind::Immediate8to32 | OpKind::Immediate8to64 | OpKind::Immediate32 | OpKind::Immediate32to64
        )
}

fn listing(insts: &[Instruction]) -> String {
    let mut f = IntelFormatter::new();
    let mut out = String::new();
    for i in insts {
        f.format(i, &mut out);
        out.push('\n');
    }
    out
}

const SUM: &str = "
func @sum(%n: i64) -> i64 {
entry:
    jmp loop(0, 0)
loop(%i: i64, %acc: i64):
    %done = sge.i64 %i, %n
    br %done, exit(%acc), body
body:
    %acc2 = add.i64 %acc, %i
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %acc2)
exit(%r: i64):
    ret %r
}
";

#[test]
fn loop_with_block_params_runs() {
    let cm = compile(SUM);
    let l = load(&cm, &[]);
    let sum = func!(l, "sum", fn(i64) -> i64);
    for n in [0i64, 1, 2, 10, 1000, -5] {
        assert_eq!(sum(n), (0..n.max(0)).sum::<i64>(), "sum({n})");
    }
}

#[test]
fn compare_fuses_into_branch_and_immediates_fold() {
    let cm = compile(SUM);
    let insts = decode(&cm, "sum");
    let text = listing(&insts);
    // The compare feeding the br is never materialized.
    assert!(!insts.iter().any(|i| i.mnemonic() == Mnemonic::Setge), "{text}");
    assert!(insts.iter().any(|i| i.mnemonic() == Mnemonic::Jge), "{text}");
    // `add %i, 1` uses an immediate, and the zero literals are xor-zeroed.
    assert!(insts.iter().any(|i| i.mnemonic() == Mnemonic::Add && is_imm(i, 1) && i.immediate(1) == 1), "{text}");
    assert!(insts.iter().any(|i| i.mnemonic() == Mnemonic::Xor && i.op0_register() == i.op1_register()), "{text}");
    // No callee-saved register besides the frame pointer is touched.
    for i in &insts {
        for op in 0..i.op_count() {
            let r = i.op_register(op).full_register();
            assert!(![Register::RBX, Register::R12, Register::R13, Register::R14, Register::R15].contains(&r), "{text}");
        }
    }
}

fn binop_module(ty: &str) -> String {
    let mut s = String::new();
    for op in ["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "sdiv", "udiv", "srem", "urem"] {
        s += &format!("func @{op}(%a: {ty}, %b: {ty}) -> {ty} {{\nentry:\n    %r = {op}.{ty} %a, %b\n    ret %r\n}}\n");
        s += &format!("func @{op}_k(%a: {ty}) -> {ty} {{\nentry:\n    %r = {op}.{ty} %a, 7\n    ret %r\n}}\n");
    }
    for op in ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"] {
        s += &format!("func @{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %r = {op}.{ty} %a, %b\n    ret %r\n}}\n");
        s += &format!("func @br_{op}(%a: {ty}, %b: {ty}) -> i32 {{\nentry:\n    %c = {op}.{ty} %a, %b\n    br %c, yes, no\nyes:\n    ret 1\nno:\n    ret 0\n}}\n");
    }
    s
}

fn int_ref64(op: &str, a: u64, b: u64) -> Option<u64> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b as u32),
        "shr" => a.wrapping_shr(b as u32),
        "sar" => sa.wrapping_shr(b as u32) as u64,
        "sdiv" if b == 0 || (sa == i64::MIN && sb == -1) => return None,
        "sdiv" => (sa / sb) as u64,
        "udiv" if b == 0 => return None,
        "udiv" => a / b,
        "srem" if b == 0 => return None,
        "srem" => sa.wrapping_rem(sb) as u64,
        "urem" if b == 0 => return None,
        "urem" => a % b,
        "eq" => (a == b) as u64,
        "ne" => (a != b) as u64,
        "slt" => (sa < sb) as u64,
        "sle" => (sa <= sb) as u64,
        "sgt" => (sa > sb) as u64,
        "sge" => (sa >= sb) as u64,
        "ult" => (a < b) as u64,
        "ule" => (a <= b) as u64,
        "ugt" => (a > b) as u64,
        "uge" => (a >= b) as u64,
        _ => unreachable!(),
    })
}

fn int_ref32(op: &str, a: u32, b: u32) -> Option<u32> {
    let (sa, sb) = (a as i32, b as i32);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b),
        "shr" => a.wrapping_shr(b),
        "sar" => sa.wrapping_shr(b) as u32,
        "sdiv" if b == 0 || (sa == i32::MIN && sb == -1) => return None,
        "sdiv" => (sa / sb) as u32,
        "udiv" if b == 0 => return None,
        "udiv" => a / b,
        "srem" if b == 0 => return None,
        "srem" => sa.wrapping_rem(sb) as u32,
        "urem" if b == 0 => return None,
        "urem" => a % b,
        "eq" => (a == b) as u32,
        "ne" => (a != b) as u32,
        "slt" => (sa < sb) as u32,
        "sle" => (sa <= sb) as u32,
        "sgt" => (sa > sb) as u32,
        "sge" => (sa >= sb) as u32,
        "ult" => (a < b) as u32,
        "ule" => (a <= b) as u32,
        "ugt" => (a > b) as u32,
        "uge" => (a >= b) as u32,
        _ => unreachable!(),
    })
}

const BINOPS: [&str; 13] = ["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "sdiv", "udiv", "srem", "urem"];
const CMPS: [&str; 10] = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"];

#[test]
fn integer_ops_match_spec_semantics_i64() {
    let cm = compile(&binop_module("i64"));
    let l = load(&cm, &[]);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for op in BINOPS {
        let f = func!(l, op, fn(u64, u64) -> u64);
        let fk = func!(l, &format!("{op}_k"), fn(u64) -> u64);
        for _ in 0..300 {
            let (a, b) = (rng.int(), rng.int());
            if let Some(want) = int_ref64(op, a, b) {
                assert_eq!(f(a, b), want, "{op}.i64 {a:#x}, {b:#x}");
            }
            if let Some(want) = int_ref64(op, a, 7) {
                assert_eq!(fk(a), want, "{op}.i64 {a:#x}, 7");
            }
        }
    }
    for op in CMPS {
        let f = func!(l, op, fn(u64, u64) -> u32);
        let fb = func!(l, &format!("br_{op}"), fn(u64, u64) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int(), rng.int());
            let b = if rng.next() % 4 == 0 { a } else { b };
            let want = int_ref64(op, a, b).unwrap() as u32;
            assert_eq!(f(a, b), want, "{op}.i64 {a:#x}, {b:#x}");
            assert_eq!(fb(a, b), want, "br {op}.i64 {a:#x}, {b:#x}");
        }
    }
}

#[test]
fn integer_ops_match_spec_semantics_i32() {
    let cm = compile(&binop_module("i32"));
    let l = load(&cm, &[]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for op in BINOPS {
        let f = func!(l, op, fn(u32, u32) -> u32);
        let fk = func!(l, &format!("{op}_k"), fn(u32) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int() as u32, rng.int() as u32);
            if let Some(want) = int_ref32(op, a, b) {
                assert_eq!(f(a, b), want, "{op}.i32 {a:#x}, {b:#x}");
            }
            if let Some(want) = int_ref32(op, a, 7) {
                assert_eq!(fk(a), want, "{op}.i32 {a:#x}, 7");
            }
        }
    }
    for op in CMPS {
        let f = func!(l, op, fn(u32, u32) -> u32);
        let fb = func!(l, &format!("br_{op}"), fn(u32, u32) -> u32);
        for _ in 0..300 {
            let (a, b) = (rng.int() as u32, rng.int() as u32);
            let b = if rng.next() % 4 == 0 { a } else { b };
            let want = int_ref32(op, a, b).unwrap();
            assert_eq!(f(a, b), want, "{op}.i32 {a:#x}, {b:#x}");
            assert_eq!(fb(a, b), want, "br {op}.i32 {a:#x}, {b:#x}");
        }
    }
}

#[test]
fn division_traps_with_the_right_reason() {
    let cm = compile(&binop_module("i64"));
    let cm32 = compile(&binop_module("i32"));
    let l = load(&cm, &[]);
    let l32 = load(&cm32, &[]);
    let sdiv = func!(l, "sdiv", fn(i64, i64) -> i64);
    let srem = func!(l, "srem", fn(i64, i64) -> i64);
    let udiv = func!(l, "udiv", fn(i64, i64) -> i64);
    let sdiv32 = func!(l32, "sdiv", fn(i32, i32) -> i32);
    let srem32 = func!(l32, "srem", fn(i32, i32) -> i32);
    assert_eq!(srem(i64::MIN, -1), 0);
    assert_eq!(srem32(i32::MIN, -1), 0);
    assert_eq!(sdiv(-7, 2), -3);
    assert_eq!(srem(-7, 2), -1);
    assert_eq!(status_of(|| { sdiv(1, 0); }), 101);
    assert_eq!(status_of(|| { udiv(1, 0); }), 101);
    assert_eq!(status_of(|| { srem(1, 0); }), 101);
    assert_eq!(status_of(|| { sdiv(i64::MIN, -1); }), 102);
    assert_eq!(status_of(|| { sdiv32(i32::MIN, -1); }), 102);
    assert_eq!(status_of(|| { sdiv(i64::MIN, 1); }), 0);
    let cm = compile("func @f() {\nentry:\n    trap\n}\n");
    assert_eq!(cm.imports, vec![isa::TRAP_HANDLER.to_string()]);
    let l = load(&cm, &[]);
    let f = func!(l, "f", fn() -> ());
    assert_eq!(status_of(|| f()), 100);
}
