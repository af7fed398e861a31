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

/// The name of the engine's trap handler, imported by compiled code that can
/// trap. It is called as `extern "C" fn(code: u32) -> !` with the
/// [`crate::TrapCode::code`] in the first integer argument register.
pub const TRAP_HANDLER: &str = "__kiln_trap";

/// A register class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegClass {
    Int = 0,
    Float = 1,
}

/// A physical register: a class and the hardware encoding within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PReg {
    pub class: RegClass,
    pub hw: u8,
}

impl PReg {
    pub const fn new(class: RegClass, hw: u8) -> Self {
        PReg { class, hw }
    }
}

/// A target's register file as data, indexed by [`RegClass`]:
/// allocatable registers in order of preference, the registers a call
/// clobbers, and one scratch register per class that is never allocated
/// (the move resolver's, for memory-to-memory moves and cycles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineEnv {
    pub preferred: [Vec<PReg>; 2],
    pub non_preferred: [Vec<PReg>; 2],
    pub scratch: [PReg; 2],
    pub caller_saved: [Vec<PReg>; 2],
}

/// One code generator.
pub trait Backend {
    /// The `--target` name (`x86_64`).
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
        _ => None,
    }
}

/// The backend for the host, if kiln was built with it.
pub fn host_backend() -> Option<&'static dyn Backend> {
    backend(std::env::consts::ARCH)
}
