//! The AArch64 backend (AAPCS64), the same seams as the x86-64 one.
//!
//! Pipeline per function: [`analysis`] (block order, compare/branch
//! fusion, address folding) → [`lower`] (machine instructions over vregs
//! with operand constraints) → `regalloc::allocate` → [`emit`] (dynasm into
//! a `VecAssembler`, never an executable buffer). [`regs`] is the register
//! file as data, [`abi`] the calling convention, [`asm`] the encoding
//! helpers both generators share (constants, loads/stores at any offset,
//! relocated words). [`baseline`] is a second, allocator-free generator
//! (every value in a frame slot) kept as a reference for differential
//! tests. Relocation formulas live in `reloc.rs` (wired from
//! `src/reloc.rs`, owned by the runtime).
//!
//! Nothing here executes code: on x86-64 hosts the output runs only under
//! an emulator.

pub mod abi;
pub mod analysis;
pub mod asm;
pub mod baseline;
pub mod divconst;
pub mod emit;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymbolData};
use crate::reloc::RelocKind;

/// The AArch64 AAPCS64 backend.
pub type Aarch64 = crate::lower::Target<lower::Op>;

/// The normal backend, `isa::backend("aarch64")`.
pub static AARCH64_BACKEND: Aarch64 = crate::lower::Target {
    name: "aarch64",
    regalloc: true,
    check: false,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The allocator-free reference backend.
pub static AARCH64_BASELINE: Aarch64 = crate::lower::Target {
    name: "aarch64",
    regalloc: false,
    check: false,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The normal backend with the allocation checker on in every build.
pub static AARCH64_CHECKED: Aarch64 = crate::lower::Target {
    name: "aarch64",
    regalloc: true,
    check: true,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The register-allocated pipeline's per-ISA stages.
static PIPELINE: crate::lower::Pipeline<lower::Op> = crate::lower::Pipeline {
    lower: lower::lower,
    machine_env: regs::machine_env,
    emit: emit::emit_function,
};

/// Appends one function's finished `code` to `out`, padding with `udf #0`
/// words (zero bytes); see [`crate::lower::place::place_function`].
pub(crate) fn place_function(
    module: &Module,
    sym: &SymbolData,
    code: &[u8],
    relocs: impl Iterator<Item = (usize, RelocKind, String, i64)>,
    tables: Vec<(String, Vec<usize>)>,
    lines: crate::debug::lines::LineTable,
    out: &mut CompiledModule,
) -> Result<()> {
    crate::lower::place::place_function(module, sym, code, 0, relocs, tables, lines, out)
}
