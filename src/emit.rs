//! Drives a backend over a whole module: data items first (by
//! [`CompiledModule::add_data_items`]), then every defined function in
//! symbol order, producing the [`CompiledModule`] the runtime loads.

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymbolKind};
use crate::isa::Backend;

/// Most text reserved before the first function is compiled.
const TEXT_RESERVE_CAP: usize = 1 << 15;

/// Compiles every function and lays out every data item of `module`
/// (which must be verified).
pub fn compile_module(module: &Module, backend: &dyn Backend) -> Result<CompiledModule> {
    let mut out = CompiledModule::new();
    // One symbol and line table per function, one symbol per data item
    // (jump tables add more): no regrowth in the common case.
    out.symbols.reserve(module.funcs.len() + module.datas.len());
    out.lines.reserve(module.funcs.len());
    // Text for a small module in one allocation (it would otherwise grow
    // from empty, a reallocation at every doubling): about 8 bytes per IR
    // instruction and some frame code per function, capped (a large
    // module's first function is handed over whole, see `place`).
    let insts: usize = module.funcs.iter().map(|f| f.insts.len()).sum();
    out.text
        .reserve((insts * 8 + module.funcs.len() * 48).min(TEXT_RESERVE_CAP));
    out.add_data_items(module)?;
    for (sym, data) in module.symbol_ids() {
        if let SymbolKind::Func { body: Some(_), .. } = data.kind {
            backend.compile_function(module, sym, &mut out)?;
        }
    }
    Ok(out)
}
