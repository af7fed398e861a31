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
pub mod divconst;
pub mod emit;
pub mod lower;
pub mod regs;

#[cfg(feature = "disasm")]
pub mod disasm;

/// The x86-64 System V backend.
pub type X86_64 = crate::lower::Target<lower::Op>;

/// The normal backend.
pub static X86_64_BACKEND: X86_64 = crate::lower::Target {
    name: "x86_64",
    regalloc: true,
    check: false,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The normal backend with the allocation checker on in every build
/// (target name `x86_64-checked`, used by fuzzing).
pub static X86_64_CHECKED: X86_64 = crate::lower::Target {
    name: "x86_64",
    regalloc: true,
    check: true,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The allocator-free reference backend.
pub static X86_64_BASELINE: X86_64 = crate::lower::Target {
    name: "x86_64",
    regalloc: false,
    check: false,
    pipeline: &PIPELINE,
    baseline: baseline::compile_function,
};

/// The register-allocated pipeline's per-ISA stages.
static PIPELINE: crate::lower::Pipeline<lower::Op> = crate::lower::Pipeline {
    lower: lower::lower,
    machine_env: regs::machine_env,
    emit: emit::emit_function,
};
