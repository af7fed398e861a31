//! The x86-64 backend (System V).
//!
//! Pipeline per function (driven by [`crate::lower`]): the shared decisions
//! and driver, with [`lower`] supplying the x86-64 instructions over vregs
//! with operand constraints → `regalloc::allocate_with` → [`emit`] (dynasm
//! into a reused `VecAssembler`, never an executable buffer). [`asm`] is
//! the assembler layer (condition codes, frame helpers, constants), [`regs`]
//! the register file as data, [`abi`] the calling convention. Relocation
//! formulas live in `reloc.rs` (wired from `src/reloc.rs`).

pub mod abi;
pub mod asm;
pub mod divconst;
pub mod emit;
pub mod fast;
pub mod fast_check;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

use crate::lower::{CompileCtx, Target};
use std::cell::RefCell;
use std::sync::OnceLock;

pub use lower::X86;

/// The x86-64 System V backend.
pub type X86_64 = Target<X86>;

/// The normal backend.
pub static X86_64_BACKEND: X86_64 = Target::new("x86_64", false);

/// The normal backend with the allocation checker on in every build
/// (target name `x86_64-checked`, used by fuzzing and tests).
pub static X86_64_CHECKED: X86_64 = Target::new("x86_64", true);

thread_local! {
    /// Boxed on first use: inline it would add kilobytes of thread-local
    /// storage that every thread of the process clears when it starts
    /// (page faults), compiling or not.
    static CTX: RefCell<Option<Box<CompileCtx<X86>>>> = const { RefCell::new(None) };
}

impl crate::lower::Codegen for X86 {
    type Emit = emit::EmitBuf;
    type Fast = fast::Fast;

    fn compile_fast(
        fast: &mut fast::Fast,
        dec: &mut crate::lower::analysis::Decisions,
        module: &crate::ir::Module,
        sym: &crate::ir::SymbolData,
        func: &crate::ir::Function,
        check: bool,
        out: &mut crate::compiled::CompiledModule,
    ) -> Option<crate::error::Result<()>> {
        fast::compile(fast, module, sym, func, dec, check, out)
    }

    fn machine_env() -> &'static crate::regalloc::MachineEnv {
        static ENV: OnceLock<crate::regalloc::MachineEnv> = OnceLock::new();
        ENV.get_or_init(regs::machine_env)
    }

    fn emit(
        scratch: &mut emit::EmitBuf,
        module: &crate::ir::Module,
        sym: &crate::ir::SymbolData,
        mf: &crate::lower::mfunc::MFunc<lower::Op>,
        ra: crate::regalloc::stream::Stream<'_, crate::lower::mfunc::MFunc<lower::Op>>,
        out: &mut crate::compiled::CompiledModule,
    ) -> crate::error::Result<()> {
        emit::emit_function(scratch, module, sym, mf, ra, out)
    }

    fn with_ctx<R>(f: impl FnOnce(&mut CompileCtx<X86>) -> R) -> R {
        CTX.with(|c| match c.try_borrow_mut() {
            Ok(mut ctx) => f(ctx.get_or_insert_with(Box::default)),
            Err(_) => f(&mut CompileCtx::default()),
        })
    }
}
