//! Drives a backend over a whole module: data items first (by
//! [`CompiledModule::add_data_items`]), then every defined function in
//! symbol order, producing the [`CompiledModule`] the runtime loads.

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{Module, SymbolKind};
use crate::isa::Backend;

/// Most text reserved before the first function is compiled.
const TEXT_RESERVE_CAP: usize = 1 << 15;
/// Text bytes reserved per IR instruction of the module.
const TEXT_PER_INST: usize = 16;
/// Text bytes reserved per function (frame code, alignment padding).
const TEXT_PER_FUNC: usize = 64;

/// Compiles every function and lays out every data item of `module`
/// (which must be verified).
pub fn compile_module(module: &Module, backend: &dyn Backend) -> Result<CompiledModule> {
    let mut out = CompiledModule::new();
    // One symbol and line table per function, one symbol per data item
    // (jump tables add more): no regrowth in the common case.
    out.symbols.reserve(module.funcs.len() + module.datas.len());
    out.lines.reserve(module.funcs.len());
    // Text for a small module in one allocation (it would otherwise grow
    // from empty, a reallocation at every doubling): room for 16 bytes per
    // IR instruction and 64 of frame code and padding per function, capped
    // (a large module's first function is handed over whole, see `place`).
    // Code takes about 9 to 14 bytes per instruction (the benchmark
    // programs, the generated functions): a tighter guess, as 8 bytes
    // was, made most small modules copy their text into a second
    // allocation when the last function did not fit.
    let insts: usize = module.funcs.iter().map(|f| f.insts.len()).sum();
    out.text.reserve(
        (insts * TEXT_PER_INST + module.funcs.len() * TEXT_PER_FUNC).min(TEXT_RESERVE_CAP),
    );
    out.add_data_items(module)?;
    for (sym, data) in module.symbol_ids() {
        if let SymbolKind::Func { body: Some(_), .. } = data.kind {
            backend.compile_function(module, sym, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small module's text is reserved once, at its full size: the
    /// buffer never grew (a reallocation would have changed its capacity
    /// from the reservation). The function (the benchmarks' `poly`) needs
    /// more than the 8 bytes per instruction and 48 per function once
    /// reserved.
    #[test]
    fn small_module_text_is_reserved_once() {
        let mut text = String::from(
            "func @main(%n: i64) -> i64 {\nentry:\n    %nf = sitof.f64 %n\n    jmp loop(0, 0.0)\n\
             loop(%i: i64, %acc: f64):\n    %c = slt.i64 %i, %n\n    br %c, body, done\nbody:\n\
             \x20   %if = sitof.f64 %i\n    %v0 = fdiv.f64 %if, %nf\n",
        );
        for (k, op) in ["fmul", "fadd", "fsub", "fdiv"]
            .iter()
            .cycle()
            .take(15)
            .enumerate()
        {
            text += &format!("    %v{} = {op}.f64 %v{k}, 1.{k}\n", k + 1);
        }
        text += "    %i2 = add.i64 %i, 1\n    jmp loop(%i2, %v15)\n\
                 done:\n    %r = ftosi.i64 %acc\n    ret %r\n}\n";
        let m = crate::ir::parse::parse_module("poly.kir", &text).unwrap();
        let Some(backend) = crate::isa::backend("x86_64") else {
            return;
        };
        let insts: usize = m.funcs.iter().map(|f| f.insts.len()).sum();
        let cm = compile_module(&m, backend).unwrap();
        let (len, reserved) = (cm.text.len(), insts * TEXT_PER_INST + TEXT_PER_FUNC);
        assert!(len > insts * 8 + 48, "{len} bytes for {insts} instructions");
        assert!(len <= reserved, "{len} bytes, {reserved} reserved");
        assert_eq!(cm.text.capacity(), reserved);
    }
}
