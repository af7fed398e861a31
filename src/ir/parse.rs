//! Parser for the `.kir` text form (SPEC sections 1–6). STUB: being written.

use super::Module;
use crate::error::Result;

/// Parses one module from `text`; `file` names it in diagnostics.
pub fn parse_module(file: &str, text: &str) -> Result<Module> {
    let _ = (file, text);
    todo!("parser")
}
