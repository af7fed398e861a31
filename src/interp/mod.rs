//! Reference interpreter: runs linked modules with exactly the semantics of
//! SPEC sections 5–7. It is the oracle every compiled result is compared
//! against.
//!
//! - [`Interpreter::new`] links the modules ([`crate::link`]), allocates
//!   their data items in real, 16-byte aligned memory (writing `@sym` entries
//!   with real addresses), gives every function (IR and host) a unique
//!   non-null address inside a small table, and pre-decodes every function
//!   once (`decode`).
//! - [`Interpreter::call`] runs the dispatch loop (`exec`) on an explicit
//!   frame stack: an IR call never recurses in Rust, and a call-depth limit
//!   turns unbounded recursion into [`Error::Runtime`].
//! - Loads and stores act on raw addresses, so pointers from `alloca`, data
//!   items and the C library's `malloc` all work. SPEC makes access to
//!   memory the program does not own undefined behaviour *of the program*;
//!   the interpreter, like compiled code, does not check it.
//! - `alloca` takes space from one real stack buffer, allocated once: each
//!   `alloca` instruction is a fixed slot of its function's frame (as in
//!   compiled code), pushed on entry and popped on return.
//!
//! Where SPEC leaves behaviour undefined, the oracle stops with
//! `Error::Runtime` whenever it can tell cheaply, so a fuzzer notices a bad
//! test program instead of comparing garbage:
//! - an indirect call to an address that is no function, or to a function
//!   of another signature than the call site's;
//! - recursion deeper than the call-depth limit
//!   ([`DEFAULT_CALL_DEPTH_LIMIT`], [`Interpreter::set_call_depth_limit`])
//!   or than the value-slot budget, and frames that overflow the alloca
//!   stack ([`DEFAULT_STACK_BYTES`], [`Interpreter::set_stack_size`]);
//! - optionally, running longer than a fuel budget of control transfers
//!   ([`Interpreter::set_fuel`]).
//!
//! Data items keep their contents from one [`Interpreter::call`] to the
//! next, as globals do in a process. The modules are expected to be
//! verified; malformed IR is rejected with an error when it would otherwise
//! make the interpreter misbehave (never a panic), but its results are
//! meaningless.

mod decode;
mod exec;
mod memory;

use crate::error::{Error, Result};
use crate::host::HostFunctions;
use crate::ir::{DataValue, Linkage, Module, SymbolKind};
use crate::link::{link_with, HostSymbol, Linked, Outside, Target};
use crate::value::Val;
use decode::{Body, FnEntry, ModuleSyms, Program};
use memory::RawBuf;
use std::collections::HashMap;
use std::marker::PhantomData;

/// "No slot / no index" in decoded instructions.
const NONE: u32 = u32::MAX;

/// Default call-depth limit: frames on the interpreter's own stack.
pub const DEFAULT_CALL_DEPTH_LIMIT: usize = 1_000_000;

/// Default size of the stack `alloca` draws from.
pub const DEFAULT_STACK_BYTES: u64 = 8 << 20;

/// Most value slots all frames together may hold (a memory budget: 16 Mi
/// slots are 128 MiB).
const VALUE_SLOT_BUDGET: usize = 16 << 20;

/// Bytes per function in the address table.
const FN_ADDR_STRIDE: u64 = 8;

/// Most functions (IR and host) one interpreter holds: the size of the
/// reserved (never touched) function-address range.
const MAX_FUNCS: u64 = 1 << 20;

/// An exported symbol of a module added earlier.
struct Export {
    /// The defining module's name, for messages.
    module: String,
    what: Exported,
}

enum Exported {
    /// Index into `Program::funcs`.
    Func(u32),
    /// The data item's address.
    Data(u64),
}

/// Runs verified modules, linked together, with exact SPEC semantics.
///
/// Modules may be added in several batches ([`Interpreter::add_modules`]),
/// as a REPL does: later modules see earlier exports through `extern`
/// declarations, and data keeps its contents.
pub struct Interpreter<'m> {
    prog: Program,
    host: HostFunctions,
    exports: HashMap<String, Export>,
    /// Defined names that cannot be an entry, with the reason.
    non_entries: HashMap<String, String>,
    /// Host functions some module imports: index into `prog.funcs`.
    host_index: HashMap<String, u32>,
    /// Data items; kept alive and never moved because the program holds
    /// their addresses.
    data: Vec<RawBuf>,
    /// Reserved address range giving functions their addresses.
    fn_table: RawBuf,
    stack: RawBuf,
    state: exec::State,
    _modules: PhantomData<&'m [Module]>,
}

impl<'m> Interpreter<'m> {
    /// Links `modules` (externs resolve to other modules' exports, then to
    /// `host`) and allocates their data. Link errors are `Error::Link`.
    pub fn new(modules: &'m [Module], host: &HostFunctions) -> Result<Self> {
        let mut it = Interpreter {
            prog: Program::default(),
            host: host.clone(),
            exports: HashMap::new(),
            non_entries: HashMap::new(),
            host_index: HashMap::new(),
            data: Vec::new(),
            fn_table: RawBuf::zeroed(MAX_FUNCS * FN_ADDR_STRIDE, 16, "the function-address range")?,
            stack: RawBuf::zeroed(DEFAULT_STACK_BYTES, 16, "the alloca stack")?,
            state: exec::State::new(DEFAULT_CALL_DEPTH_LIMIT),
            _modules: PhantomData,
        };
        it.add_modules(modules)?;
        Ok(it)
    }

    /// Links `modules` against each other, the modules added before (whose
    /// exported names they may not export again) and the host functions,
    /// then allocates their data and decodes their functions. On error
    /// nothing is added.
    pub fn add_modules(&mut self, modules: &[Module]) -> Result<()> {
        let linked = link_with(modules, |name| match self.exports.get(name) {
            Some(Export {
                module,
                what: Exported::Func(i),
            }) => Some(Outside::Func {
                sig: self.prog.funcs[*i as usize].sig.clone(),
                module: module.clone(),
            }),
            Some(Export {
                module,
                what: Exported::Data(_),
            }) => Some(Outside::Data {
                module: module.clone(),
            }),
            None => self
                .host
                .get(name)
                .map(|h| Outside::Host(HostSymbol::Func(h.sig.clone()))),
        })?;
        let mark = self.prog.mark();
        let result = self.add_linked(modules, &linked);
        if result.is_err() {
            self.prog.truncate(&mark);
        }
        result
    }

    fn add_linked(&mut self, modules: &[Module], linked: &Linked) -> Result<()> {
        // Global function indices: IR functions module by module, then every
        // host function imported for the first time.
        let prog = &mut self.prog;
        let mut fn_base = Vec::with_capacity(modules.len());
        for m in modules {
            fn_base.push(prog.funcs.len() as u32);
            for f in &m.funcs {
                prog.funcs.push(FnEntry {
                    name: f.name.clone(),
                    sig: f.sig.clone(),
                    body: Body::Pending,
                });
            }
        }
        let mut new_hosts: HashMap<String, u32> = HashMap::new();
        for t in linked.targets.iter().flatten() {
            if let Target::Host(name) = t {
                if self.host_index.contains_key(name) || new_hosts.contains_key(name) {
                    continue;
                }
                let h = self
                    .host
                    .get(name)
                    .ok_or_else(|| Error::Runtime(format!("host function @{name} vanished")))?;
                new_hosts.insert(name.clone(), prog.funcs.len() as u32);
                prog.funcs.push(FnEntry {
                    name: name.clone(),
                    sig: h.sig.clone(),
                    body: Body::Host(h.func.clone()),
                });
            }
        }
        if prog.funcs.len() as u64 >= MAX_FUNCS {
            return Err(Error::Runtime(format!(
                "more than {MAX_FUNCS} functions in one interpreter"
            )));
        }
        let table = self.fn_table.addr();
        let fn_addr = |i: u32| table + i as u64 * FN_ADDR_STRIDE;

        // Data items, allocated for real.
        let mut data = Vec::new();
        let mut data_index: Vec<Vec<usize>> = Vec::with_capacity(modules.len());
        for m in modules {
            let mut row = Vec::with_capacity(m.datas.len());
            for (di, def) in m.datas.iter().enumerate() {
                // `layout` divides by each entry's alignment: reject widths
                // the text form cannot produce before calling it.
                let bad_width = def.values.iter().any(
                    |v| matches!(v, DataValue::Int { bytes, .. } if ![1, 2, 4, 8].contains(bytes)),
                );
                if bad_width {
                    return Err(Error::Runtime(format!(
                        "data item {di} of {} has an integer entry of bad width",
                        m.name
                    )));
                }
                let (_, size) = def.layout();
                let what = format!("data item {di} of {}", m.name);
                row.push(data.len());
                data.push(RawBuf::zeroed(size, crate::ir::DATA_ALIGN, &what)?);
            }
            data_index.push(row);
        }

        // Per-module symbol tables for the decoder and data initialization.
        let mut syms = Vec::with_capacity(modules.len());
        for (mi, m) in modules.iter().enumerate() {
            let mut s = ModuleSyms {
                addr: Vec::with_capacity(m.symbols.len()),
                func: Vec::with_capacity(m.symbols.len()),
            };
            for (sym, _) in m.symbol_ids() {
                let (addr, func) = match linked.target(mi, sym) {
                    Some(Target::Func { module, func }) => {
                        let i = fn_base[*module] + func.0;
                        (fn_addr(i), i)
                    }
                    Some(Target::Host(name)) => {
                        let i = new_hosts
                            .get(name)
                            .or_else(|| self.host_index.get(name))
                            .copied()
                            .unwrap_or(NONE);
                        (fn_addr(i), i)
                    }
                    Some(Target::Data { module, data: d }) => {
                        let buf = data_index
                            .get(*module)
                            .and_then(|r| r.get(d.index()))
                            .and_then(|&i| data.get(i))
                            .ok_or_else(|| Error::Runtime(format!("data item {d} missing")))?;
                        (buf.addr(), NONE)
                    }
                    Some(Target::Prior(name)) => match self.exports.get(name).map(|e| &e.what) {
                        Some(Exported::Func(i)) => (fn_addr(*i), *i),
                        Some(Exported::Data(a)) => (*a, NONE),
                        None => return Err(Error::Runtime(format!("@{name} vanished"))),
                    },
                    None => return Err(Error::Runtime("symbol left unlinked".into())),
                };
                s.addr.push(addr);
                s.func.push(func);
            }
            syms.push(s);
        }

        for (mi, m) in modules.iter().enumerate() {
            for (di, def) in m.datas.iter().enumerate() {
                let s = &syms[mi];
                let buf = &mut data[data_index[mi][di]];
                memory::init_data(buf, def, |sym| s.addr.get(sym.index()).copied())?;
            }
        }

        for (mi, m) in modules.iter().enumerate() {
            let file = prog.files.len() as u32;
            prog.files.push(m.name.clone());
            for (fi, f) in m.funcs.iter().enumerate() {
                let func = fn_base[mi] + fi as u32;
                prog.code_funcs.push((prog.code.len() as u32, func, file));
                let decoded = decode::decode_function(prog, m, &syms[mi], f)?;
                prog.funcs[fn_base[mi] as usize + fi].body = Body::Ir(decoded);
            }
        }

        // Nothing can fail from here on: commit the names.
        for m in modules {
            for s in &m.symbols {
                let why = match (&s.kind, s.linkage) {
                    (SymbolKind::Data { .. }, Linkage::Export | Linkage::Local) => {
                        format!("@{} is data, not a function", s.name)
                    }
                    (SymbolKind::Func { .. }, Linkage::Local) => {
                        format!("function @{} is local, not exported", s.name)
                    }
                    _ => continue,
                };
                self.non_entries.entry(s.name.clone()).or_insert(why);
            }
        }
        for (name, &(mi, sym)) in &linked.exports {
            let what = match (
                syms[mi].func.get(sym.index()),
                syms[mi].addr.get(sym.index()),
            ) {
                (Some(&i), _) if i != NONE => Exported::Func(i),
                (_, Some(&a)) => Exported::Data(a),
                _ => continue,
            };
            let module = modules[mi].name.clone();
            self.exports.insert(name.clone(), Export { module, what });
        }
        self.host_index.extend(new_hosts);
        self.data.append(&mut data);
        Ok(())
    }

    /// Sets the call-depth limit (frames); deeper calls end in
    /// `Error::Runtime`.
    pub fn set_call_depth_limit(&mut self, frames: usize) {
        self.state.depth_limit = frames.max(1);
    }

    /// Limits each [`Interpreter::call`] to `transfers` control transfers
    /// (jumps, branches, switches and calls; `None`: unlimited). Running out
    /// is `Error::Runtime`. Fuzzers use this to bound programs that loop
    /// forever.
    pub fn set_fuel(&mut self, transfers: Option<u64>) {
        self.state.fuel = transfers.map(|n| n.max(1));
    }

    /// Replaces the stack `alloca` draws from with one of `bytes` bytes.
    pub fn set_stack_size(&mut self, bytes: u64) -> Result<()> {
        self.stack = RawBuf::zeroed(bytes, 16, "the alloca stack")?;
        Ok(())
    }

    /// The address `addr @name` yields for the exported function `name`.
    pub fn function_address(&self, name: &str) -> Option<u64> {
        match self.exports.get(name)?.what {
            Exported::Func(i) => Some(self.fn_table.addr() + i as u64 * FN_ADDR_STRIDE),
            Exported::Data(_) => None,
        }
    }

    /// The address of the exported data item `name`.
    pub fn data_address(&self, name: &str) -> Option<u64> {
        match self.exports.get(name)?.what {
            Exported::Data(a) => Some(a),
            Exported::Func(_) => None,
        }
    }

    /// Calls the exported function `name`. Traps are `Err(Error::Trap)`;
    /// a missing function or wrong arguments are `Err(Error::Argument)`.
    pub fn call(&mut self, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let fi = match self.exports.get(name).map(|e| &e.what) {
            Some(Exported::Func(i)) => *i,
            Some(Exported::Data(_)) => {
                return Err(Error::Argument(format!("@{name} is data, not a function")))
            }
            None => {
                return Err(Error::Argument(match self.non_entries.get(name) {
                    Some(why) => why.clone(),
                    None => format!("no exported function @{name}"),
                }))
            }
        };
        let entry = &self.prog.funcs[fi as usize];
        let sig = &entry.sig;
        if args.len() != sig.params.len() {
            return Err(Error::Argument(format!(
                "@{name} takes {} argument{} {sig} but {} {} given",
                sig.params.len(),
                if sig.params.len() == 1 { "" } else { "s" },
                args.len(),
                if args.len() == 1 { "was" } else { "were" },
            )));
        }
        for (i, (a, &t)) in args.iter().zip(&sig.params).enumerate() {
            if a.ty() != t {
                return Err(Error::Argument(format!(
                    "argument {} of @{name} must be {t}, not {} {a}",
                    i + 1,
                    a.ty()
                )));
            }
        }
        let ret = sig.ret;
        let bits: Vec<u64> = args.iter().map(|a| a.to_bits()).collect();
        let env = exec::Env {
            prog: &self.prog,
            fn_table: self.fn_table.addr(),
            stack: self.stack.addr(),
            stack_len: self.stack.len(),
        };
        let result = self.state.run(&env, fi, &bits)?;
        Ok(match (ret, result) {
            (Some(t), Some(b)) => Some(Val::from_bits(t, b)),
            _ => None,
        })
    }
}
