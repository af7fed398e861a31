//! Linking: resolving every module's symbols to the definition they name.
//!
//! Each module sees the exported symbols of the other modules of one engine,
//! and host symbols, only through `extern` declarations (SPEC section 3).
//! [`link`] resolves, for every symbol of every module, the definition it
//! stands for:
//!
//! - a symbol the module defines (exported or `local`) is its own body;
//! - an `extern` resolves first to the exported definition of the same name
//!   in another module (it must be of the same kind, and an `extern func`'s
//!   signature must equal the definition's), then to a host function (whose
//!   signature must match too, when the host knows it);
//! - anything else is an `unresolved symbol` link error.
//!
//! One name exported by two modules is a link error at the second
//! definition. `local` symbols never enter the export table.
//!
//! Invariant of a successful [`Linked`]: `targets[m][s]` exists for every
//! module `m` and every symbol `s` of it, and names a definition of the
//! symbol's kind (a `Func` or `Host` target for function symbols, a `Data`
//! target for data symbols). The interpreter and the JIT's module registry
//! both read this table.

use crate::error::{Diagnostic, Error, Result};
use crate::host::HostFunctions;
use crate::ir::{DataId, FuncId, Linkage, Module, Signature, SymId, SymbolKind};
use std::collections::HashMap;

/// What one symbol resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The function body `func` of module number `module`.
    Func { module: usize, func: FuncId },
    /// The data item `data` of module number `module`.
    Data { module: usize, data: DataId },
    /// The host symbol of this name (a function).
    Host(String),
}

/// What the host knows about a symbol it provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSymbol {
    /// A function of this signature; an `extern` must declare exactly it.
    Func(Signature),
    /// A function whose signature the host cannot tell (for example a
    /// symbol found with `dlsym`); any `extern func` declaration is taken
    /// at its word.
    Unchecked,
}

/// The result of linking: a target for every symbol of every module.
#[derive(Clone, Debug, Default)]
pub struct Linked {
    /// `targets[module][sym]`.
    pub targets: Vec<Vec<Target>>,
    /// Exported symbols by name: the defining module and symbol.
    pub exports: HashMap<String, (usize, SymId)>,
}

impl Linked {
    /// What symbol `sym` of module `module` resolves to.
    pub fn target(&self, module: usize, sym: SymId) -> Option<&Target> {
        self.targets.get(module)?.get(sym.index())
    }

    /// The exported symbol `name`: its module and symbol id.
    pub fn export(&self, name: &str) -> Option<(usize, SymId)> {
        self.exports.get(name).copied()
    }
}

/// Links `modules`, resolving host symbols through `host` (called with a
/// symbol name; `None` when the host does not provide it).
pub fn link(modules: &[Module], host: impl Fn(&str) -> Option<HostSymbol>) -> Result<Linked> {
    let mut exports: HashMap<String, (usize, SymId)> = HashMap::new();
    for (mi, module) in modules.iter().enumerate() {
        for (sym, data) in module.symbol_ids() {
            if data.linkage != Linkage::Export || !is_defined(&data.kind) {
                continue;
            }
            if let Some(&(first, _)) = exports.get(&data.name) {
                return Err(link_error(
                    module,
                    sym,
                    format!(
                        "@{} is already exported by module {}",
                        data.name, modules[first].name
                    ),
                ));
            }
            exports.insert(data.name.clone(), (mi, sym));
        }
    }

    let mut targets = Vec::with_capacity(modules.len());
    for (mi, module) in modules.iter().enumerate() {
        let mut row = Vec::with_capacity(module.symbols.len());
        for (sym, data) in module.symbol_ids() {
            let target = match (&data.kind, data.linkage) {
                (SymbolKind::Func { body: Some(f), .. }, Linkage::Export | Linkage::Local) => {
                    Target::Func {
                        module: mi,
                        func: *f,
                    }
                }
                (SymbolKind::Data { body: Some(d) }, Linkage::Export | Linkage::Local) => {
                    Target::Data {
                        module: mi,
                        data: *d,
                    }
                }
                _ => resolve_import(modules, &exports, module, sym, &host)?,
            };
            row.push(target);
        }
        targets.push(row);
    }
    Ok(Linked { targets, exports })
}

/// Links `modules` against the host functions an interpreter embedder
/// registered.
pub fn link_with_host(modules: &[Module], host: &HostFunctions) -> Result<Linked> {
    link(modules, |name| {
        host.get(name).map(|h| HostSymbol::Func(h.sig.clone()))
    })
}

fn is_defined(kind: &SymbolKind) -> bool {
    match kind {
        SymbolKind::Func { body, .. } => body.is_some(),
        SymbolKind::Data { body } => body.is_some(),
    }
}

fn link_error(module: &Module, sym: SymId, message: String) -> Error {
    Error::Link(Diagnostic::new(
        module.name.clone(),
        module.symbol_loc(sym),
        message,
    ))
}

/// Resolves the import `sym` of `module`: another module's export first,
/// then the host.
fn resolve_import(
    modules: &[Module],
    exports: &HashMap<String, (usize, SymId)>,
    module: &Module,
    sym: SymId,
    host: &impl Fn(&str) -> Option<HostSymbol>,
) -> Result<Target> {
    let data = module.sym(sym);
    let name = &data.name;
    if let Some(&(dm, dsym)) = exports.get(name) {
        let def_module = &modules[dm];
        let def = def_module.sym(dsym);
        return match (&data.kind, &def.kind) {
            (SymbolKind::Func { sig, .. }, SymbolKind::Func { sig: dsig, body }) => {
                if sig != dsig {
                    return Err(link_error(
                        module,
                        sym,
                        format!(
                            "extern @{name} has signature {sig} but module {} defines {dsig}",
                            def_module.name
                        ),
                    ));
                }
                match body {
                    Some(func) => Ok(Target::Func {
                        module: dm,
                        func: *func,
                    }),
                    None => Err(link_error(
                        module,
                        sym,
                        format!("unresolved symbol @{name}"),
                    )),
                }
            }
            (SymbolKind::Data { .. }, SymbolKind::Data { body: Some(d) }) => Ok(Target::Data {
                module: dm,
                data: *d,
            }),
            (SymbolKind::Func { .. }, _) => Err(link_error(
                module,
                sym,
                format!(
                    "extern func @{name} names data defined by module {}",
                    def_module.name
                ),
            )),
            (SymbolKind::Data { .. }, _) => Err(link_error(
                module,
                sym,
                format!(
                    "extern data @{name} names a function defined by module {}",
                    def_module.name
                ),
            )),
        };
    }
    match (&data.kind, host(name)) {
        (SymbolKind::Func { sig, .. }, Some(HostSymbol::Func(hsig))) => {
            if *sig != hsig {
                return Err(link_error(
                    module,
                    sym,
                    format!("extern @{name} has signature {sig} but the host function has {hsig}"),
                ));
            }
            Ok(Target::Host(name.clone()))
        }
        (SymbolKind::Func { .. }, Some(HostSymbol::Unchecked)) => Ok(Target::Host(name.clone())),
        (SymbolKind::Data { .. }, Some(_)) => Err(link_error(
            module,
            sym,
            format!("extern data @{name} names a host function"),
        )),
        (_, None) => Err(link_error(
            module,
            sym,
            format!("unresolved symbol @{name}"),
        )),
    }
}
