//! Placing one compiled function into the [`CompiledModule`] under
//! construction, the same for every backend: its code 16-byte aligned in
//! text, its symbol, its relocations (imports recorded), and its jump tables
//! as `Abs64` entries in rodata.
//!
//! Invariant: every section offset recorded fits `u32` (an error otherwise),
//! and jump-table entries are relocations against the function's own symbol,
//! so they stay correct wherever the text is loaded.
//!
//! In a large module, relocations that target the module's own definitions
//! are also recorded as such (`LocalTargets` in `crate::compiled`): the
//! loader then needs no name lookup for them.

use crate::compiled::{CompiledModule, CompiledSymbol, LocalTargets};
use crate::debug::lines::LineTable;
use crate::debug::FunctionLines;
use crate::error::{Error, Result};
use crate::ir::{Linkage, Module, SymbolData};
use crate::isa::TRAP_HANDLER;
use crate::reloc::{Reloc, RelocKind, SectionKind};

/// Code at least this long is handed over to an empty text section
/// instead of copied (the emitters do not keep buffers this large).
const SWAP_BYTES: usize = 1 << 16;

/// Appends one function's finished `code` to `out` (taking its buffer when
/// it is the module's first function and large): 16-byte aligned
/// (padding with `pad` bytes), its symbol, its relocations (offsets
/// relative to the function, as `(offset, kind, target, addend)`), and its
/// jump tables as 8-byte `Abs64` entries (function-relative label offsets)
/// in rodata, each table its own local symbol. Targets that are imports
/// or the trap handler are recorded as imports. `lines` is the function's
/// line table ([`crate::debug::lines`]), offsets relative to the function.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn place_function(
    module: &Module,
    sym: &SymbolData,
    code: &mut Vec<u8>,
    pad: u8,
    relocs: impl Iterator<Item = (usize, RelocKind, String, i64)>,
    tables: Vec<(String, Vec<usize>)>,
    lines: LineTable,
    out: &mut CompiledModule,
) -> Result<()> {
    let base = out.text.len().div_ceil(16) * 16;
    let code_len = code.len();
    if out.text.is_empty() && code_len >= SWAP_BYTES {
        // A large first function: its buffer becomes the text, no copy
        // (`code` is left with the empty one).
        std::mem::swap(&mut out.text, code);
    } else {
        // Copied, so that the emitter keeps its warm buffer for the next
        // function (a buffer handed over would regrow from empty, a
        // reallocation at every doubling).
        out.text.reserve(base - out.text.len() + code_len);
        out.text.resize(base, pad);
        out.text.extend_from_slice(code);
    }
    let sect_off =
        |o: usize| u32::try_from(o).map_err(|_| Error::Runtime("section over 4 GiB".into()));
    let own = out.symbols.len();
    if let (Some(h), Some(i)) = (
        LocalTargets::of(&mut out.local, out.one_function, module),
        index_in(module, sym),
    ) {
        h.define(i, own, module.symbols.len());
    }
    out.lines.push(FunctionLines {
        symbol: own,
        offset: base as u64,
        size: code_len as u64,
        table: lines,
    });
    out.symbols.push(CompiledSymbol {
        name: sym.name.clone(),
        section: SectionKind::Text,
        offset: base as u64,
        size: code_len as u64,
        exported: sym.linkage == Linkage::Export,
        is_func: true,
    });
    out.relocs.reserve(relocs.size_hint().0);
    for (offset, kind, target, addend) in relocs {
        let local = if target == TRAP_HANDLER {
            out.add_import(&target);
            None
        } else if target == sym.name {
            // A call to itself: no lookup.
            Some(own)
        } else {
            match module.symbol(&target) {
                Some(s) if module.symbols[s.index()].linkage == Linkage::Import => {
                    out.add_import(&target);
                    None
                }
                Some(s) => out.local.as_ref().and_then(|h| h.defined(s.index())),
                _ => None,
            }
        };
        if let (Some(h), Some(k)) = (out.local.as_deref_mut(), local) {
            h.set_target(out.relocs.len(), k);
        }
        out.relocs.push(Reloc {
            section: SectionKind::Text,
            offset: sect_off(base + offset)?,
            kind,
            target,
            addend,
        });
    }
    for (name, offs) in tables {
        let at = out.rodata.len().div_ceil(8) * 8;
        out.rodata.resize(at + 8 * offs.len(), 0);
        for (i, o) in offs.iter().enumerate() {
            if let Some(h) = out.local.as_deref_mut() {
                h.set_target(out.relocs.len(), own);
            }
            out.relocs.push(Reloc {
                section: SectionKind::Rodata,
                offset: sect_off(at + 8 * i)?,
                kind: RelocKind::Abs64,
                target: sym.name.clone(),
                addend: *o as i64,
            });
        }
        out.symbols.push(CompiledSymbol {
            name,
            section: SectionKind::Rodata,
            offset: at as u64,
            size: 8 * offs.len() as u64,
            exported: false,
            is_func: false,
        });
    }
    Ok(())
}

/// The index of `sym` in `module.symbols`, if it is one of them (found from
/// its address: no name lookup).
fn index_in(module: &Module, sym: &SymbolData) -> Option<usize> {
    let base = module.symbols.as_ptr() as usize;
    let i = (sym as *const SymbolData as usize).wrapping_sub(base)
        / std::mem::size_of::<SymbolData>().max(1);
    module
        .symbols
        .get(i)
        .filter(|s| std::ptr::eq(*s, sym))
        .map(|_| i)
}
