//! ISA-independent parts of code generation, shared by every backend in
//! `isa/`.
//!
//! A backend is the small per-ISA remainder: its register table, its ABI
//! register counts, its instruction type, the lowering of ordinary
//! instructions and its encoder. What every target does the same way lives
//! here, so the backends cannot drift apart:
//! - [`analysis`]: the per-function decisions (structure checks, block
//!   order with loops, compare fusion, address folding);
//! - [`mfunc`]: the machine-function container `MFunc<I>` over the ISA's
//!   instruction type (the register allocator's [`crate::regalloc::RaFunction`]
//!   view), in flat arrays;
//! - [`drive`]: the lowering driver: layout, arguments, jumps with block
//!   arguments, the terminator skeleton (`switch` included) and calls,
//!   calling the backend's [`drive::Isa`] hooks for everything ISA-specific;
//! - [`place`]: appending a finished function (code, symbol, relocations,
//!   jump tables) to the compiled module;
//! - [`abi`]: assigning call arguments to integer / float registers and
//!   8-byte stack slots, parameterized by each ISA's register counts;
//! - `compile_function`: decide → lower → allocate (→ whole + check) →
//!   emit, the emitter resolving the allocation block by block, in a
//!   per-thread [`CompileCtx`] whose buffers are reused from function to
//!   function (and module to module), so compiling allocates almost nothing
//!   once warm.
//!
//! ## The pipeline's cost
//! Every pass is one or two sweeps over flat arrays: no per-instruction
//! heap allocation, no hashing, no sorting. The register file
//! ([`crate::regalloc::MachineEnv`]) is built once per target.
//!
//! ## The `speed` tier's back end
//! An optimized module (`--opt speed`, [`crate::opt`]) is compiled by the
//! same rule as any other: the single-pass generator where the backend has
//! one (x86-64), the pipeline here otherwise (AArch64, and a function the
//! generator declines). Optimized modules used to take the pipeline always,
//! on the idea that its splitting allocator pays where the passes leave
//! tight loops. Measured (the report's code table, `--quick
//! --only code`, twice each, kiln-speed ÷ Cranelift speed), the generator
//! as the speed tier's back end gave the same code: geomean 0.80/0.81
//! against 0.81/0.81 with the pipeline, max 1.29/1.30 against 1.28/1.29
//! (digits); per program within ±0.05 except sieve 0.92 against 0.83, lcs
//! 1.07 against 1.01 (slower) and poly 0.98 against 1.05 (faster). No
//! program lost enough for a per-function rule (loops, register pressure)
//! to pay for itself, while the generator costs a fraction of the pipeline
//! (callgrind, fresh engine, per module at `speed`: nbody 1,080k → 765k
//! host instructions, fib 98.5k → 75.0k, calls 261k → 211k, poly 188k →
//! 137k). `KILN_NO_FAST=1` still sends everything through the pipeline.
//!
//! Invariant: nothing here knows an instruction encoding or a register name;
//! a backend passes in whatever differs.

pub mod abi;
pub mod analysis;
pub mod drive;
pub mod mfunc;
pub mod place;

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymId, SymbolData};
use crate::regalloc::stream::Stream;
use crate::regalloc::{MachineEnv, Output};
use std::marker::PhantomData;

/// A backend's code generation beyond lowering: its register file and its
/// encoder.
pub trait Codegen: drive::Isa {
    /// The emitter's buffers, reused between functions.
    type Emit: Default;
    /// The single-pass generator's buffers (opt level `none`).
    type Fast: Default;
    /// Compiles `func` (symbol `sym`) with the single-pass generator,
    /// which makes the decisions in `dec` itself (see
    /// [`analysis::Decisions::compute_order`]), or returns `None` (nothing
    /// emitted; `dec` must be computed again) when it uses something that
    /// generator does not support (or the ISA has none); `check` runs its
    /// allocation checker.
    fn compile_fast(
        fast: &mut Self::Fast,
        dec: &mut analysis::Decisions,
        module: &Module,
        sym: &SymbolData,
        func: &crate::ir::Function,
        check: bool,
        out: &mut CompiledModule,
    ) -> Option<Result<()>>;
    /// The register file (built once).
    fn machine_env() -> &'static MachineEnv;
    /// Machine instructions + allocation (taken block by block, in
    /// order) → bytes appended to `out`.
    fn emit(
        scratch: &mut Self::Emit,
        module: &Module,
        sym: &SymbolData,
        mf: &mfunc::MFunc<Self::Inst>,
        ra: Stream<'_, mfunc::MFunc<Self::Inst>>,
        out: &mut CompiledModule,
    ) -> Result<()>;
    /// Runs `f` with this thread's compile context (a fresh one if it is
    /// in use: compiling never re-enters, but a caught panic may have left
    /// it borrowed).
    fn with_ctx<R>(f: impl FnOnce(&mut CompileCtx<Self>) -> R) -> R;
}

/// Machine instructions above which a function's buffers are given back
/// as soon as they are dead instead of kept for the next function: reuse
/// saves little on a function this large, and its copies would otherwise
/// all be alive at the emitter's peak (and stay alive after it).
const KEEP_LIMIT: usize = 1 << 14;

/// Every buffer compiling one function needs, kept between functions
/// (those of a function larger than `KEEP_LIMIT` are freed instead).
///
/// This is DESIGN.md's "cleared-per-compile context" in its `Vec::clear`
/// form rather than a bumpalo arena, on purpose: each buffer is typed and
/// sized by the function, and most are read by several passes, so they
/// are cleared and refilled in place and a function no larger than the
/// last one needs no new allocation for them. An arena reset between functions would
/// instead hand every buffer out anew each compile, and a buffer grown by
/// doubling inside an arena leaves its earlier copies behind until the
/// reset (about twice the memory on the 100k-instruction function, whose
/// peak RSS the report checks). So bumpalo is not a dependency.
pub struct CompileCtx<X: Codegen> {
    dec: analysis::Decisions,
    layout: drive::LayoutBuf,
    mf: mfunc::MFunc<X::Inst>,
    ra: crate::regalloc::Ctx,
    out: Output,
    emit: X::Emit,
    fast: X::Fast,
}

impl<X: Codegen> Default for CompileCtx<X> {
    fn default() -> Self {
        CompileCtx {
            dec: Default::default(),
            layout: Default::default(),
            mf: Default::default(),
            ra: Default::default(),
            out: Default::default(),
            emit: Default::default(),
            fast: Default::default(),
        }
    }
}

impl<X: Codegen> CompileCtx<X> {
    /// Lowers function `sym` of `module` into this context's machine
    /// function (for tests and tools that look at it).
    pub fn lower(&mut self, module: &Module, sym: SymId) -> Result<&mfunc::MFunc<X::Inst>> {
        let (_, func) = crate::isa::defined_function(module, sym)?;
        self.dec.compute(module, func)?;
        drive::lower::<X>(module, func, &self.dec, &mut self.layout, &mut self.mf)?;
        Ok(&self.mf)
    }

    /// Compiles function `sym` into `out`: through the single-pass
    /// generator when the backend supports the function (at either opt
    /// level: see "The `speed` tier's back end" in the module docs), else
    /// through lowering, register allocation (with the symbolic checker
    /// when `check`) and emission.
    pub fn compile(
        &mut self,
        module: &Module,
        sym: SymId,
        check: bool,
        out: &mut CompiledModule,
    ) -> Result<()> {
        let (data, func) = crate::isa::defined_function(module, sym)?;
        if !fast_path_disabled() {
            // Its own sweep makes the decisions (one stream over the
            // instructions instead of two); `dec` is computed again if it
            // declines the function.
            if let Some(r) = X::compile_fast(
                &mut self.fast,
                &mut self.dec,
                module,
                data,
                func,
                check,
                out,
            ) {
                return r;
            }
        }
        self.dec.compute(module, func)?;
        drive::lower::<X>(module, func, &self.dec, &mut self.layout, &mut self.mf)?;
        let big = self.mf.ops.len() > KEEP_LIMIT;
        if big {
            // Dead from here on; a large function's copy is megabytes.
            self.dec = Default::default();
            self.layout = Default::default();
        }
        let env = X::machine_env();
        crate::regalloc::prepare_static(&mut self.ra, &self.mf, env)?;
        if big {
            crate::regalloc::shed(&mut self.ra);
        }
        // The whole allocation is built only to be checked (a checked
        // target; debug builds, where the emitter's blocks are compared
        // with it too); the emitter takes it block by block.
        let whole = check || cfg!(debug_assertions);
        if whole {
            crate::regalloc::resolve(&mut self.ra, &self.mf, env, &mut self.out)?;
            let run = check
                || (crate::regalloc::checker::affordable(&self.mf, &self.out)
                    && std::env::var_os("KILN_NO_CHECK").is_none());
            if run {
                crate::regalloc::checker::check(&self.mf, env, &self.out)
                    .map_err(crate::regalloc::RegAllocError::Checker)?;
            }
        }
        let stream = self.ra.stream(&self.mf, env, whole.then_some(&self.out))?;
        let r = X::emit(&mut self.emit, module, data, &self.mf, stream, out);
        if big {
            // Not kept for the next function: a thread that compiled one
            // huge function would hold its machine code image forever.
            self.ra = Default::default();
            self.mf = Default::default();
            self.out = Default::default();
        }
        r
    }
}

/// Whether `KILN_NO_FAST` is set (read once per process: looking the
/// environment up takes its lock and scans it, too much per function).
fn fast_path_disabled() -> bool {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DISABLED.get_or_init(|| std::env::var_os("KILN_NO_FAST").is_some())
}

/// A backend described as data: its `--target` name and whether the
/// allocation checker runs in every build. Each ISA defines its statics of
/// this type.
pub struct Target<X> {
    /// The `--target` name.
    pub name: &'static str,
    /// Also run the allocator's symbolic checker on every function in
    /// release builds (`regalloc::allocate_with` runs it in debug builds).
    pub check: bool,
    isa: PhantomData<fn() -> X>,
}

impl<X> Target<X> {
    /// The backend `name`, checked or not.
    pub const fn new(name: &'static str, check: bool) -> Target<X> {
        Target {
            name,
            check,
            isa: PhantomData,
        }
    }
}

impl<X: Codegen> crate::isa::Backend for Target<X> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn machine_env(&self) -> MachineEnv {
        X::machine_env().clone()
    }

    fn compile_function(
        &self,
        module: &Module,
        sym: SymId,
        out: &mut CompiledModule,
    ) -> Result<()> {
        X::with_ctx(|ctx| ctx.compile(module, sym, self.check, out))
    }
}
