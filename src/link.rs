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
//! Linking may be incremental ([`link_with`]): modules linked earlier are
//! seen through a lookup of [`Outside`] definitions, which come after the
//! batch's own exports and which a new export may not redefine.
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
    /// The export of this name of a module linked earlier ([`link_with`]).
    Prior(String),
}

/// A definition outside the modules being linked that an `extern` may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outside {
    /// A function exported by the earlier module named `module`.
    Func { sig: Signature, module: String },
    /// A data item exported by the earlier module named `module`.
    Data { module: String },
    /// A host symbol.
    Host(HostSymbol),
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
    link_with(modules, |name| host(name).map(Outside::Host))
}

/// Links `modules` against each other and against `outside` definitions
/// (earlier modules' exports, then host symbols; called with a symbol name).
/// Exporting a name that `outside` resolves to an earlier module's export is
/// a link error, as between two modules of the batch.
pub fn link_with(modules: &[Module], outside: impl Fn(&str) -> Option<Outside>) -> Result<Linked> {
    let mut exports: HashMap<String, (usize, SymId)> = HashMap::new();
    for (mi, module) in modules.iter().enumerate() {
        for (sym, data) in module.symbol_ids() {
            if data.linkage != Linkage::Export || !is_defined(&data.kind) {
                continue;
            }
            let earlier = match exports.get(&data.name) {
                Some(&(first, _)) => Some(modules[first].name.clone()),
                None => match outside(&data.name) {
                    Some(Outside::Func { module, .. } | Outside::Data { module }) => Some(module),
                    _ => None,
                },
            };
            if let Some(first) = earlier {
                return Err(link_error(
                    module,
                    sym,
                    format!("@{} is already exported by module {first}", data.name),
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
                _ => resolve_import(modules, &exports, module, sym, &outside)?,
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
    outside: &impl Fn(&str) -> Option<Outside>,
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
    let mismatch = |dsig: &Signature, definer: &str| {
        let SymbolKind::Func { sig, .. } = &data.kind else {
            return None;
        };
        (sig != dsig).then(|| {
            link_error(
                module,
                sym,
                format!("extern @{name} has signature {sig} but {definer} {dsig}"),
            )
        })
    };
    match (&data.kind, outside(name)) {
        (SymbolKind::Func { .. }, Some(Outside::Func { sig, module: m })) => {
            match mismatch(&sig, &format!("module {m} defines")) {
                Some(e) => Err(e),
                None => Ok(Target::Prior(name.clone())),
            }
        }
        (SymbolKind::Data { .. }, Some(Outside::Data { .. })) => Ok(Target::Prior(name.clone())),
        (SymbolKind::Func { .. }, Some(Outside::Data { module: m })) => Err(link_error(
            module,
            sym,
            format!("extern func @{name} names data defined by module {m}"),
        )),
        (SymbolKind::Data { .. }, Some(Outside::Func { module: m, .. })) => Err(link_error(
            module,
            sym,
            format!("extern data @{name} names a function defined by module {m}"),
        )),
        (SymbolKind::Func { .. }, Some(Outside::Host(HostSymbol::Func(hsig)))) => {
            match mismatch(&hsig, "the host function has") {
                Some(e) => Err(e),
                None => Ok(Target::Host(name.clone())),
            }
        }
        (SymbolKind::Func { .. }, Some(Outside::Host(HostSymbol::Unchecked))) => {
            Ok(Target::Host(name.clone()))
        }
        (SymbolKind::Data { .. }, Some(Outside::Host(_))) => Err(link_error(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{parse::parse_module, Type};

    fn module(name: &str, text: &str) -> Module {
        parse_module(name, text).expect("test module parses")
    }

    #[test]
    fn targets_name_definitions_in_other_modules_and_the_host() {
        let a = module(
            "a.kir",
            "extern func @f(i64) -> i64\nextern func @puts(i64) -> i32\nextern data @d\n\
             local func @g() {\nentry:\n    ret\n}\n",
        );
        let b = module(
            "b.kir",
            "func @f(%x: i64) -> i64 {\nentry:\n    ret %x\n}\ndata @d = { i8 1 }\n",
        );
        let modules = [a, b];
        let linked = link(&modules, |name| {
            (name == "puts").then_some(HostSymbol::Unchecked)
        })
        .expect("links");
        let f = modules[1].funcs.iter().position(|f| f.name == "f").unwrap();
        assert_eq!(
            linked.target(0, SymId(0)),
            Some(&Target::Func {
                module: 1,
                func: FuncId::new(f)
            })
        );
        assert_eq!(
            linked.target(0, SymId(1)),
            Some(&Target::Host("puts".into()))
        );
        assert!(matches!(
            linked.target(0, SymId(2)),
            Some(Target::Data { module: 1, .. })
        ));
        assert!(matches!(
            linked.target(0, SymId(3)),
            Some(Target::Func { module: 0, .. })
        ));
        assert_eq!(linked.export("f"), Some((1, SymId(0))));
        assert_eq!(linked.export("g"), None);
    }

    #[test]
    fn earlier_definitions_come_after_the_batch_and_cannot_be_redefined() {
        let a = module("a.kir", "extern func @f(i32)\nextern data @d\n");
        let outside = |name: &str| match name {
            "f" => Some(Outside::Func {
                sig: Signature::new(vec![Type::I32], None),
                module: "old.kir".into(),
            }),
            "d" => Some(Outside::Data {
                module: "old.kir".into(),
            }),
            _ => None,
        };
        let linked = link_with(std::slice::from_ref(&a), outside).expect("links");
        assert_eq!(linked.target(0, SymId(0)), Some(&Target::Prior("f".into())));
        assert_eq!(linked.target(0, SymId(1)), Some(&Target::Prior("d".into())));
        let b = module("b.kir", "func @f(%x: i32) {\nentry:\n    ret\n}\n");
        match link_with(&[b], outside) {
            Err(Error::Link(d)) => {
                assert_eq!(d.message, "@f is already exported by module old.kir");
                assert_eq!((d.loc.line, d.loc.col), (1, 6));
            }
            other => panic!("{other:?}"),
        }
    }
}
