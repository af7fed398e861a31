//! The x86-64 backend (System V): [`regs`] the register file, [`abi`] the
//! calling convention, [`lower`] the per-function plan, [`emit`] the machine
//! code through dynasm into a `VecAssembler` (never an executable buffer).
//! Relocation formulas live in `reloc.rs` (wired from `src/reloc.rs`).

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
use crate::ir::{FuncId, Module};
use crate::isa::{Backend, MachineEnv};

/// The x86-64 System V backend.
pub struct X86_64;

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
        func: FuncId,
        out: &mut CompiledModule,
    ) -> Result<()> {
        baseline::compile_function(module, func, out)
    }
}
