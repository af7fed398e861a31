//! Target backends and the target-as-data the register allocator reads.
//!
//! A [`Backend`] compiles one verified function into the text section of a
//! [`CompiledModule`] under construction, appending its symbol, relocations
//! and imports. Backends live in `isa/<arch>/` (same file names per ISA) and
//! are wired in here behind their cargo features. What every backend does the
//! same way (per-function analysis, the machine-function container and
//! lowering driver, argument assignment) lives in [`crate::lower`]; a backend
//! supplies its register table, block order, instruction type and encoder. Nothing here executes code:
//! backends only produce bytes and relocations.

use crate::compiled::CompiledModule;
use crate::error::Error;
use crate::error::Result;
use crate::ir::{Function, Module, SymId, SymbolData, SymbolKind};

#[cfg(feature = "x86_64")]
#[path = "../isa/x86_64/mod.rs"]
pub mod x86_64;

#[cfg(feature = "aarch64")]
#[path = "../isa/aarch64/mod.rs"]
pub mod aarch64;

/// The name of the engine's trap handler, imported by compiled code that can
/// trap. It is called as `extern "C" fn(code: u32) -> !` with the
/// [`crate::TrapCode::code`] in the first integer argument register.
pub const TRAP_HANDLER: &str = "__kiln_trap";

pub use crate::regalloc::{MachineEnv, PReg, RegClass};

/// One code generator.
pub trait Backend {
    /// The `--target` name (`x86_64`, `aarch64`).
    fn name(&self) -> &'static str;

    /// The register file, for the allocator.
    fn machine_env(&self) -> MachineEnv;

    /// Compiles the function defined as `sym` in `module` (verified) into
    /// `out`: appends its code to `out.text` (aligned to 16), its symbol,
    /// relocations, imports and any read-only tables it needs.
    fn compile_function(&self, module: &Module, sym: SymId, out: &mut CompiledModule)
        -> Result<()>;
}

/// The backend for a `--target` name, if kiln was built with it.
pub fn backend(target: &str) -> Option<&'static dyn Backend> {
    match target {
        #[cfg(feature = "x86_64")]
        "x86_64" => Some(&x86_64::X86_64_BACKEND),
        #[cfg(feature = "aarch64")]
        "aarch64" => Some(&aarch64::AARCH64_BACKEND),
        // The normal backends with the register-allocation checker on in
        // every build (fuzzing).
        #[cfg(feature = "x86_64")]
        "x86_64-checked" => Some(&x86_64::X86_64_CHECKED),
        #[cfg(feature = "aarch64")]
        "aarch64-checked" => Some(&aarch64::AARCH64_CHECKED),
        _ => None,
    }
}

/// The backend for the host, if kiln was built with it.
pub fn host_backend() -> Option<&'static dyn Backend> {
    backend(std::env::consts::ARCH)
}

/// The symbol and body of the function defined as `sym`.
pub fn defined_function(module: &Module, sym: SymId) -> Result<(&SymbolData, &Function)> {
    let data = module
        .symbols
        .get(sym.index())
        .ok_or_else(|| Error::Runtime(format!("no symbol {sym}")))?;
    match data.kind {
        SymbolKind::Func { body: Some(id), .. } => module
            .funcs
            .get(id.index())
            .map(|f| (data, f))
            .ok_or_else(|| Error::Runtime(format!("@{}: no body", data.name))),
        _ => Err(Error::Runtime(format!(
            "@{} is not a defined function",
            data.name
        ))),
    }
}
