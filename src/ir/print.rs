//! Printer for the `.kir` text form. STUB: being written.

use super::Module;

/// Prints a module in the text form that [`super::parse::parse_module`] reads.
pub fn print_module(module: &Module) -> String {
    let _ = module;
    todo!("printer")
}
