//! The x86-64 backend (System V).
//!
//! Pipeline per function: [`analysis`] (block order, compare/branch fusion,
//! address folding) → [`lower`] (machine instructions over vregs with
//! operand constraints) → `regalloc::allocate` → [`emit`] (dynasm into a
//! `VecAssembler`, never an executable buffer). [`regs`] is the register
//! file as data, [`abi`] the calling convention. [`baseline`] is a second,
//! allocator-free code generator (every value in a frame slot) kept as a
//! reference for differential tests. Relocation formulas live in `reloc.rs`
//! (wired from `src/reloc.rs`).

pub mod abi;
pub mod analysis;
pub mod baseline;
pub mod emit;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymId};
use crate::isa::{Backend, MachineEnv};

/// The x86-64 System V backend.
pub struct X86_64 {
    /// Use the register allocator (`true`, the normal path) or the
    /// slot-per-value [`baseline`] generator.
    pub regalloc: bool,
    /// Also run the allocator's symbolic checker on every function in
    /// release builds (`regalloc::allocate` runs it in debug builds).
    pub check: bool,
}

/// The normal backend.
pub static X86_64_BACKEND: X86_64 = X86_64 {
    regalloc: true,
    check: false,
};

/// The normal backend with the allocation checker on in every build
/// (target name `x86_64-checked`, used by fuzzing).
pub static X86_64_CHECKED: X86_64 = X86_64 {
    regalloc: true,
    check: true,
};

/// The allocator-free reference backend.
pub static X86_64_BASELINE: X86_64 = X86_64 {
    regalloc: false,
    check: false,
};

/// Compiles function `id` through lowering, register allocation (checked
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

impl Backend for X86_64 {
    fn name(&self) -> &'static str {
        "x86_64"
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
