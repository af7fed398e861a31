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
//! target for data symbols). The interpreter reads this table; the JIT's
//! module registry links one module at a time against its symbol table
//! with the same rule, [`check_import`], so both print the same
//! diagnostics.

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

/// What the name an `extern` declares is defined as, wherever that is: an
/// export of another module (named for messages), or a host symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Definition<'a> {
    /// A function of this signature exported by the module named `module`.
    Func { sig: &'a Signature, module: &'a str },
    /// A data item exported by the module named `module`.
    Data { module: &'a str },
    /// A host function of this signature.
    HostFunc(&'a Signature),
    /// A host function whose signature the host cannot tell; any `extern
    /// func` is taken at its word.
    HostUnchecked,
    /// A host symbol the host knows nothing about (found by address only):
    /// any `extern`, function or data, is taken at its word.
    HostAny,
}

/// The one linking rule (SPEC sections 3 and 8), shared by the interpreter
/// ([`link_with`]) and the JIT's registry: checks `extern` symbol `sym` of
/// `module` against `def`, the definition its name resolves to (`None`:
/// nothing of that name). The kinds must agree and an `extern func`'s
/// signature must equal the definition's, when known; otherwise the error
/// is a link error located at the `extern`.
pub fn check_import(module: &Module, sym: SymId, def: Option<Definition<'_>>) -> Result<()> {
    let data = module.sym(sym);
    let name = &data.name;
    let fail = |message: String| Err(link_error(module, sym, message));
    match (&data.kind, def) {
        (_, None) => fail(format!("unresolved symbol @{name}")),
        (
            SymbolKind::Func { sig, .. },
            Some(Definition::Func {
                sig: dsig,
                module: m,
            }),
        ) => {
            if sig != dsig {
                return fail(format!(
                    "extern @{name} has signature {sig} but module {m} defines {dsig}"
                ));
            }
            Ok(())
        }
        (SymbolKind::Func { sig, .. }, Some(Definition::HostFunc(hsig))) => {
            if sig != hsig {
                return fail(format!(
                    "extern @{name} has signature {sig} but the host function has {hsig}"
                ));
            }
            Ok(())
        }
        (_, Some(Definition::HostAny))
        | (SymbolKind::Func { .. }, Some(Definition::HostUnchecked)) => Ok(()),
        (SymbolKind::Func { .. }, Some(Definition::Data { module: m })) => fail(format!(
            "extern func @{name} names data defined by module {m}"
        )),
        (SymbolKind::Data { .. }, Some(Definition::Data { .. })) => Ok(()),
        (SymbolKind::Data { .. }, Some(Definition::Func { module: m, .. })) => fail(format!(
            "extern data @{name} names a function defined by module {m}"
        )),
        (SymbolKind::Data { .. }, Some(Definition::HostFunc(_) | Definition::HostUnchecked)) => {
            fail(format!("extern data @{name} names a host function"))
        }
    }
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
    let name = &module.sym(sym).name;
    if let Some(&(dm, dsym)) = exports.get(name) {
        let def_module = &modules[dm];
        let (def, target) = match &def_module.sym(dsym).kind {
            SymbolKind::Func { sig, body } => (
                Definition::Func {
                    sig,
                    module: &def_module.name,
                },
                body.map(|func| Target::Func { module: dm, func }),
            ),
            SymbolKind::Data { body } => (
                Definition::Data {
                    module: &def_module.name,
                },
                body.map(|data| Target::Data { module: dm, data }),
            ),
        };
        check_import(module, sym, Some(def))?;
        // Exports are defined by construction.
        return target.ok_or_else(|| link_error(module, sym, format!("unresolved symbol @{name}")));
    }
    let found = outside(name);
    let def = match &found {
        None => None,
        Some(Outside::Func { sig, module }) => Some(Definition::Func { sig, module }),
        Some(Outside::Data { module }) => Some(Definition::Data { module }),
        Some(Outside::Host(HostSymbol::Func(sig))) => Some(Definition::HostFunc(sig)),
        Some(Outside::Host(HostSymbol::Unchecked)) => Some(Definition::HostUnchecked),
    };
    check_import(module, sym, def)?;
    Ok(match found {
        Some(Outside::Host(_)) => Target::Host(name.clone()),
        _ => Target::Prior(name.clone()),
    })
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
