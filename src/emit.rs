//! Drives a backend over a whole module: data items first (by
//! [`CompiledModule::add_data_items`]), then every defined function in
//! symbol order, producing the [`CompiledModule`] the runtime loads.

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymbolKind};
use crate::isa::Backend;

/// Compiles every function and lays out every data item of `module`
/// (which must be verified).
pub fn compile_module(module: &Module, backend: &dyn Backend) -> Result<CompiledModule> {
    let mut out = CompiledModule::new();
    // One symbol and line table per function, one symbol per data item
    // (jump tables add more): no regrowth in the common case.
    out.symbols.reserve(module.funcs.len() + module.datas.len());
    out.lines.reserve(module.funcs.len());
    out.add_data_items(module)?;
    for (sym, data) in module.symbol_ids() {
        if let SymbolKind::Func { body: Some(_), .. } = data.kind {
            backend.compile_function(module, sym, &mut out)?;
        }
    }
    Ok(out)
}
