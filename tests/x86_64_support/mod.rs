//! Shared helpers of the x86-64 integration tests: compiling `.kir` text
//! with the backend (checked or not), a small loader (mmap, copy, relocate,
//! protect), forked execution for traps, a xorshift generator and iced-x86
//! decoding.
#![allow(dead_code, unused_imports)]

pub use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind, Register,
};
pub use kiln::compiled::CompiledModule;
pub use kiln::emit::compile_module;
pub use kiln::ir::parse::parse_module;
pub use kiln::isa;
pub use kiln::isa::x86_64::{X86_64, X86_64_BACKEND};
pub use kiln::isa::Backend;
pub use kiln::reloc::{RelocKind, SectionKind};
pub use std::collections::HashMap;

/// Compiles with the normal (register-allocating, checked) backend.
pub fn compile(src: &str) -> CompiledModule {
    compile_with(src, &X86_64_BACKEND_CHECKED)
}

pub fn compile_with(src: &str, backend: &dyn Backend) -> CompiledModule {
    let m = parse_module("test.kir", src).expect("parse");
    compile_module(&m, backend).expect("compile")
}

/// The normal backend with the allocation checker on in every build.
pub use kiln::isa::x86_64::X86_64_CHECKED as X86_64_BACKEND_CHECKED;

/// The backend with and without the allocation checker: every execution
/// test runs on each.
pub fn backends() -> [&'static dyn Backend; 2] {
    [&X86_64_BACKEND_CHECKED, &X86_64_BACKEND]
}

/// A module copied into its own mapping, relocated and protected.
pub struct Loaded {
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

pub extern "C" fn trap_handler(code: u32) -> ! {
    // SAFETY: _exit is async-signal-safe and ends the (forked) process.
    unsafe { libc::_exit(100 + code as i32) }
}

pub fn page_up(n: usize) -> usize {
    n.div_ceil(4096).max(1) * 4096
}

pub fn load(cm: &CompiledModule, host: &[(&str, usize)]) -> Loaded {
    let (t, r, d) = (
        page_up(cm.text.len()),
        page_up(cm.rodata.len()),
        page_up(cm.data.len() + cm.bss as usize),
    );
    // One page of call stubs after the text (`jmp [rip+0]; .quad S`), for
    // calls to host functions beyond ±2 GiB, as the registry does.
    let stubs_len = 4096;
    let t_code = t;
    let t = t + stubs_len;
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
        syms.insert(
            s.name.clone(),
            base as usize + sect(s.section) + s.offset as usize,
        );
    }
    let mut ext: HashMap<String, usize> = host.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    ext.insert(
        isa::TRAP_HANDLER.to_string(),
        trap_handler as *const () as usize,
    );
    for imp in &cm.imports {
        assert!(ext.contains_key(imp), "unresolved import {imp}");
    }
    let mut stubs: HashMap<String, usize> = HashMap::new();
    for rel in &cm.relocs {
        let s = syms
            .get(&rel.target)
            .or(ext.get(&rel.target))
            .copied()
            .expect("target");
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
                RelocKind::X86CallPcRel32 => {
                    let d = match i32::try_from(v - p as i64) {
                        Ok(d) => d,
                        Err(_) => {
                            let n = stubs.len();
                            let slot = *stubs.entry(rel.target.clone()).or_insert_with(|| {
                                assert!((n + 1) * 16 <= stubs_len, "stub page full");
                                let slot = base as usize + t_code + n * 16;
                                let mut stub = [0xccu8; 16];
                                stub[..6].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
                                stub[6..14].copy_from_slice(&(s as u64).to_le_bytes());
                                std::ptr::copy_nonoverlapping(stub.as_ptr(), slot as *mut u8, 16);
                                slot
                            });
                            let v = (slot as i64).wrapping_add(rel.addend);
                            i32::try_from(v - p as i64).expect("stub in range")
                        }
                    };
                    (p as *mut i32).write_unaligned(d)
                }
                #[allow(unreachable_patterns)]
                k => panic!("unexpected relocation {k:?}"),
            }
        }
    }
    // SAFETY: protecting page-aligned parts of our own mapping.
    unsafe {
        assert_eq!(
            libc::mprotect(base.cast(), t, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
        assert_eq!(libc::mprotect(base.add(t).cast(), r, libc::PROT_READ), 0);
    }
    Loaded { base, len, syms }
}

impl Loaded {
    pub fn addr(&self, name: &str) -> usize {
        *self
            .syms
            .get(name)
            .unwrap_or_else(|| panic!("no symbol {name}"))
    }
}

#[macro_export]
macro_rules! func {
    ($l:expr, $name:expr, fn($($a:ty),*) -> $r:ty) => {{
        let addr: usize = $l.addr($name);
        // SAFETY: the IR function has exactly this System V signature.
        unsafe { std::mem::transmute::<usize, extern "C" fn($($a),*) -> $r>(addr) }
    }};
}

/// Runs `f` in a forked child; returns its exit status (the trap handler
/// exits with 100 + code, a normal return with 0).
pub fn status_of(f: impl FnOnce()) -> i32 {
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
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Mostly edge values, sometimes random bits.
    pub fn int(&mut self) -> u64 {
        const EDGES: [u64; 10] = [
            0,
            1,
            2,
            u64::MAX,
            0x8000_0000_0000_0000,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000,
            0x7fff_ffff,
            0xffff_ffff,
            63,
        ];
        let r = self.next();
        if r.is_multiple_of(3) {
            EDGES[(r >> 8) as usize % EDGES.len()]
        } else {
            self.next() >> (r % 64)
        }
    }
}

pub fn decode(cm: &CompiledModule, name: &str) -> Vec<Instruction> {
    let s = cm.symbols.iter().find(|s| s.name == name).expect("symbol");
    let bytes = &cm.text[s.offset as usize..(s.offset + s.size) as usize];
    Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

pub fn is_imm(i: &Instruction, op: u32) -> bool {
    op < i.op_count()
        && matches!(
            i.op_kind(op),
            OpKind::Immediate8
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32
                | OpKind::Immediate32to64
        )
}

pub fn listing(insts: &[Instruction]) -> String {
    let mut f = IntelFormatter::new();
    let mut out = String::new();
    for i in insts {
        f.format(i, &mut out);
        out.push('\n');
    }
    out
}
