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
use crate::link::{link_with_host, Target};
use crate::value::Val;
use decode::{Body, FnEntry, ModuleSyms, Program};
use memory::RawBuf;
use std::collections::HashMap;

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

/// Runs verified modules, linked together, with exact SPEC semantics.
pub struct Interpreter<'m> {
    modules: &'m [Module],
    prog: Program,
    /// Exported functions by name: index into `prog.funcs`.
    exports: HashMap<String, u32>,
    /// Data items and the function-address table; kept alive (never moved)
    /// because the program holds their addresses.
    _data: Vec<RawBuf>,
    fn_table: RawBuf,
    stack: RawBuf,
    state: exec::State,
}

impl<'m> Interpreter<'m> {
    /// Links `modules` (externs resolve to other modules' exports, then to
    /// `host`) and allocates their data. Link errors are `Error::Link`.
    pub fn new(modules: &'m [Module], host: &HostFunctions) -> Result<Self> {
        let linked = link_with_host(modules, host)?;

        // Global function indices: IR functions module by module, then every
        // host function some module imports.
        let mut prog = Program::default();
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
        let mut host_index: HashMap<String, u32> = HashMap::new();
        for row in &linked.targets {
            for t in row {
                if let Target::Host(name) = t {
                    if host_index.contains_key(name) {
                        continue;
                    }
                    let h = host
                        .get(name)
                        .ok_or_else(|| Error::Runtime(format!("host function @{name} vanished")))?;
                    host_index.insert(name.clone(), prog.funcs.len() as u32);
                    prog.funcs.push(FnEntry {
                        name: name.clone(),
                        sig: h.sig.clone(),
                        body: Body::Host(h.func.clone()),
                    });
                }
            }
        }
        if prog.funcs.len() >= NONE as usize / FN_ADDR_STRIDE as usize {
            return Err(Error::Runtime("too many functions".into()));
        }
        let fn_table = RawBuf::zeroed(
            prog.funcs.len() as u64 * FN_ADDR_STRIDE,
            16,
            "the function-address table",
        )?;
        let fn_addr = |i: u32| fn_table.addr() + i as u64 * FN_ADDR_STRIDE;

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
                        let i = host_index.get(name).copied().unwrap_or(NONE);
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
            for (fi, f) in m.funcs.iter().enumerate() {
                let decoded = decode::decode_function(&mut prog, m, &syms[mi], f)?;
                prog.funcs[fn_base[mi] as usize + fi].body = Body::Ir(decoded);
            }
        }

        let mut exports = HashMap::new();
        for (name, &(mi, sym)) in &linked.exports {
            if let Some(&i) = syms[mi].func.get(sym.index()) {
                if i != NONE {
                    exports.insert(name.clone(), i);
                }
            }
        }

        Ok(Interpreter {
            modules,
            prog,
            exports,
            _data: data,
            fn_table,
            stack: RawBuf::zeroed(DEFAULT_STACK_BYTES, 16, "the alloca stack")?,
            state: exec::State::new(DEFAULT_CALL_DEPTH_LIMIT),
        })
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
        let &i = self.exports.get(name)?;
        Some(self.fn_table.addr() + i as u64 * FN_ADDR_STRIDE)
    }

    /// Calls the exported function `name`. Traps are `Err(Error::Trap)`;
    /// a missing function or wrong arguments are `Err(Error::Argument)`.
    pub fn call(&mut self, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let fi = match self.exports.get(name) {
            Some(&i) => i,
            None => return Err(Error::Argument(self.missing_entry(name))),
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

    fn missing_entry(&self, name: &str) -> String {
        for m in self.modules {
            if let Some(sym) = m.symbol(name) {
                let s = m.sym(sym);
                match (&s.kind, s.linkage) {
                    (SymbolKind::Data { .. }, Linkage::Export | Linkage::Local) => {
                        return format!("@{name} is data, not a function")
                    }
                    (SymbolKind::Func { .. }, Linkage::Local) => {
                        return format!("function @{name} is local, not exported")
                    }
                    _ => {}
                }
            }
        }
        format!("no exported function @{name}")
    }
}
