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
pub mod emit;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymId, SymbolData};
use crate::isa::{Backend, MachineEnv};
use crate::reloc::RelocKind;

/// The AArch64 AAPCS64 backend.
pub struct Aarch64 {
    /// Use the register allocator (`true`, the normal path) or the
    /// slot-per-value [`baseline`] generator.
    pub regalloc: bool,
    /// Also run the allocator's symbolic checker on every function in
    /// release builds (`regalloc::allocate` runs it in debug builds).
    pub check: bool,
}

/// The normal backend, `isa::backend("aarch64")`.
pub static AARCH64_BACKEND: Aarch64 = Aarch64 {
    regalloc: true,
    check: false,
};

/// The allocator-free reference backend.
pub static AARCH64_BASELINE: Aarch64 = Aarch64 {
    regalloc: false,
    check: false,
};

/// The normal backend with the allocation checker on in every build.
pub static AARCH64_CHECKED: Aarch64 = Aarch64 {
    regalloc: true,
    check: true,
};

/// Compiles function `sym` through lowering, register allocation (checked
/// when `check`) and emission.
pub fn compile_allocated(
    module: &Module,
    sym: SymId,
    check: bool,
    out: &mut CompiledModule,
) -> Result<()> {
    crate::lower::compile_allocated(&PIPELINE, module, sym, check, out)
}

/// The register-allocated pipeline's per-ISA stages.
static PIPELINE: crate::lower::Pipeline<lower::Op> = crate::lower::Pipeline {
    lower: lower::lower,
    machine_env: regs::machine_env,
    emit: emit::emit_function,
};

impl Backend for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn machine_env(&self) -> MachineEnv {
        regs::machine_env()
    }

    fn compile_function(
        &self,
        module: &Module,
        sym: SymId,
        out: &mut CompiledModule,
    ) -> Result<()> {
        if self.regalloc {
            compile_allocated(module, sym, self.check, out)
        } else {
            baseline::compile_function(module, sym, out)
        }
    }
}

/// Appends one function's finished `code` to `out`, padding with `udf #0`
/// words (zero bytes); see [`crate::lower::place::place_function`].
pub(crate) fn place_function(
    module: &Module,
    sym: &SymbolData,
    code: &[u8],
    relocs: impl Iterator<Item = (usize, RelocKind, String, i64)>,
    tables: Vec<(String, Vec<usize>)>,
    out: &mut CompiledModule,
) -> Result<()> {
    crate::lower::place::place_function(module, sym, code, 0, relocs, tables, out)
}
