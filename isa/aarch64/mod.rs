//! The AArch64 backend (AAPCS64), the same seams as the x86-64 one.
//!
//! Pipeline per function (driven by [`crate::lower`]): the shared decisions
//! and driver, with [`lower`] supplying the AArch64 instructions over vregs
//! with operand constraints → `regalloc::allocate_with` → [`emit`] (dynasm
//! into a `VecAssembler`, never an executable buffer). [`regs`] is the
//! register file as data, [`abi`] the calling convention, [`asm`] the
//! assembler layer (conditions, constants, loads/stores at any offset,
//! relocated words, the frame record). Relocation formulas live in
//! `reloc.rs` (wired from `src/reloc.rs`, owned by the runtime).
//!
//! Nothing here executes code: on x86-64 hosts the output runs only under
//! an emulator.

pub mod abi;
pub mod asm;
pub mod divconst;
pub mod emit;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymbolData};
use crate::lower::{CompileCtx, Target};
use crate::reloc::RelocKind;
use std::cell::RefCell;
use std::sync::OnceLock;

pub use lower::A64;

/// The AArch64 AAPCS64 backend.
pub type Aarch64 = Target<A64>;

/// The normal backend, `isa::backend("aarch64")`.
pub static AARCH64_BACKEND: Aarch64 = Target::new("aarch64", false);

/// The normal backend with the allocation checker on in every build.
pub static AARCH64_CHECKED: Aarch64 = Target::new("aarch64", true);

thread_local! {
    /// Boxed on first use: inline it would add kilobytes of thread-local
    /// storage that every thread of the process clears when it starts
    /// (page faults), compiling or not.
    static CTX: RefCell<Option<Box<CompileCtx<A64>>>> = const { RefCell::new(None) };
}

impl crate::lower::Codegen for A64 {
    type Emit = ();
    // AArch64 has no single-pass generator yet: every level uses the
    // register-allocating pipeline.
    type Fast = ();

    fn compile_fast(
        _fast: &mut (),
        _dec: &mut crate::lower::analysis::Decisions,
        _module: &Module,
        _sym: &SymbolData,
        _func: &crate::ir::Function,
        _check: bool,
        _out: &mut CompiledModule,
    ) -> Option<Result<()>> {
        None
    }

    fn machine_env() -> &'static crate::regalloc::MachineEnv {
        static ENV: OnceLock<crate::regalloc::MachineEnv> = OnceLock::new();
        ENV.get_or_init(regs::machine_env)
    }

    fn emit(
        _scratch: &mut (),
        module: &Module,
        sym: &SymbolData,
        mf: &crate::lower::mfunc::MFunc<lower::Op>,
        ra: crate::regalloc::stream::Stream<'_, crate::lower::mfunc::MFunc<lower::Op>>,
        out: &mut CompiledModule,
    ) -> Result<()> {
        emit::emit_function(module, sym, mf, ra, out)
    }

    fn with_ctx<R>(f: impl FnOnce(&mut CompileCtx<A64>) -> R) -> R {
        CTX.with(|c| match c.try_borrow_mut() {
            Ok(mut ctx) => f(ctx.get_or_insert_with(Box::default)),
            Err(_) => f(&mut CompileCtx::default()),
        })
    }
}

/// Appends one function's finished `code` to `out`, padding with `udf #0`
/// words (zero bytes); see [`crate::lower::place::place_function`].
pub(crate) fn place_function(
    module: &Module,
    sym: &SymbolData,
    code: &mut Vec<u8>,
    relocs: impl Iterator<Item = (usize, RelocKind, String, i64)>,
    tables: Vec<(String, Vec<usize>)>,
    lines: crate::debug::lines::LineTable,
    out: &mut CompiledModule,
) -> Result<()> {
    crate::lower::place::place_function(module, sym, code, 0, relocs, tables, lines, out)
}
