//! ISA-independent parts of lowering, shared by every backend in `isa/`.
//!
//! A backend is the small per-ISA remainder: its register table, its ABI
//! register counts, its instruction type and encoder. What every target does
//! the same way lives here, so the backends cannot drift apart:
//! - [`analysis`]: the per-function decisions (structure checks, use counts,
//!   compare fusion, address folding) that both code generators of each ISA
//!   read;
//! - [`mfunc`]: the machine-function container `MFunc<I>` over the ISA's
//!   instruction type (the register allocator's [`crate::regalloc::RaFunction`]
//!   view) and the lowering driver: block layout with edge blocks for
//!   critical / block-argument edges, calling the backend's
//!   [`mfunc::IsaLower`] hooks for everything ISA-specific;
//! - [`place`]: appending a finished function (code, symbol, relocations,
//!   jump tables) to the compiled module;
//! - [`abi`]: assigning call arguments to integer / float registers and
//!   8-byte stack slots, parameterized by each ISA's register counts;
//! - [`compile_allocated`]: lower → allocate (→ check) → emit, over a
//!   backend's [`Pipeline`] of three functions.
//!
//! Invariant: nothing here knows an instruction encoding or a register name;
//! a backend passes in whatever differs (block order, register counts).

pub mod abi;
pub mod analysis;
pub mod mfunc;
pub mod place;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Function, Module, SymId, SymbolData};
use crate::regalloc::{MachineEnv, Output};

/// One ISA's register-allocated pipeline, as plain functions: what
/// [`compile_allocated`] needs to know about a target.
pub struct Pipeline<I> {
    /// IR → machine instructions over vregs.
    pub lower: fn(&Module, &Function) -> Result<mfunc::MFunc<I>>,
    /// The register file.
    pub machine_env: fn() -> MachineEnv,
    /// Machine instructions + allocation → bytes appended to the module.
    pub emit:
        fn(&Module, &SymbolData, &mfunc::MFunc<I>, &Output, &mut CompiledModule) -> Result<()>,
}

/// Compiles function `sym` through `pipeline`'s lowering, register
/// allocation (with the symbolic checker when `check`) and emission.
pub fn compile_allocated<I: mfunc::MachInst>(
    pipeline: &Pipeline<I>,
    module: &Module,
    sym: SymId,
    check: bool,
    out: &mut CompiledModule,
) -> Result<()> {
    let (data, func) = crate::isa::defined_function(module, sym)?;
    let mf = (pipeline.lower)(module, func)?;
    let env = (pipeline.machine_env)();
    let ra = crate::regalloc::allocate(&mf, &env)?;
    if check {
        crate::regalloc::checker::check(&mf, &env, &ra)
            .map_err(crate::regalloc::RegAllocError::Checker)?;
    }
    (pipeline.emit)(module, data, &mf, &ra, out)
}

/// A backend described as data: its `--target` name, which generator runs,
/// and its per-ISA stages. Each ISA defines its statics of this type.
pub struct Target<I: 'static> {
    /// The `--target` name.
    pub name: &'static str,
    /// Use the register allocator (`true`, the normal path) or the
    /// slot-per-value `baseline` generator.
    pub regalloc: bool,
    /// Also run the allocator's symbolic checker on every function in
    /// release builds (`regalloc::allocate` runs it in debug builds).
    pub check: bool,
    /// The register-allocated pipeline.
    pub pipeline: &'static Pipeline<I>,
    /// The allocator-free generator.
    pub baseline: fn(&Module, SymId, &mut CompiledModule) -> Result<()>,
}

impl<I: mfunc::MachInst> crate::isa::Backend for Target<I> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn machine_env(&self) -> MachineEnv {
        (self.pipeline.machine_env)()
    }

    fn compile_function(
        &self,
        module: &Module,
        sym: SymId,
        out: &mut CompiledModule,
    ) -> Result<()> {
        if self.regalloc {
            compile_allocated(self.pipeline, module, sym, self.check, out)
        } else {
            (self.baseline)(module, sym, out)
        }
    }
}
