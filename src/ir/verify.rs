//! The verifier. STUB: being written.

use super::Module;
use crate::error::Result;

/// Checks every rule of the SPEC; returns the first error in source order.
pub fn verify_module(module: &Module) -> Result<()> {
    let _ = module;
    todo!("verifier")
}
