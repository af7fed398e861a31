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
