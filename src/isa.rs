//! Target backends and the target-as-data the register allocator reads.
//!
//! A [`Backend`] compiles one verified function into the text section of a
//! [`CompiledModule`] under construction, appending its symbol, relocations
//! and imports. Backends live in `isa/<arch>/` (same file names per ISA) and
//! are wired in here behind their cargo features. Nothing here executes code:
//! backends only produce bytes and relocations.

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{FuncId, Module};

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

    /// Compiles function `func` of `module` (verified) into `out`: appends
    /// its code to `out.text` (aligned to `out.text_align`), its symbol,
    /// relocations, imports and any read-only tables it needs.
    fn compile_function(
        &self,
        module: &Module,
        func: FuncId,
        out: &mut CompiledModule,
    ) -> Result<()>;
}

/// The backend for a `--target` name, if kiln was built with it.
pub fn backend(target: &str) -> Option<&'static dyn Backend> {
    match target {
        #[cfg(feature = "x86_64")]
        "x86_64" => Some(&x86_64::X86_64),
        #[cfg(feature = "aarch64")]
        "aarch64" => Some(&aarch64::Aarch64),
        _ => None,
    }
}

/// The backend for the host, if kiln was built with it.
pub fn host_backend() -> Option<&'static dyn Backend> {
    backend(std::env::consts::ARCH)
}
