//! Interruption (SPEC section 7): stopping a running call from another
//! thread with the trap `interrupted`.
//!
//! **Compiled code** polls a one-byte flag. Nothing is polled unless the
//! engine was built with interrupts on ([`crate::Engine::with_interrupts`]):
//! then every module added to it goes through [`instrument`], an IR-to-IR
//! pass run before compilation, so every backend (x86-64, AArch64, the
//! baseline generators, the emulator) gets the same checks without a
//! line of backend code. The pass puts a check at the entry of every
//! function and at the head of every cycle of the CFG (the target of each
//! retreating edge of a reverse postorder, which covers irreducible
//! cycles too):
//!
//! ```text
//! header(params):                 header(params):
//!     body...            ==>          %p = addr @__kiln_interrupt
//!                                     %f = load8u.i32 %p
//!                                     br %f, poll_trap, header_body
//!                                 header_body:
//!                                     body...
//!                                 poll_trap:
//!                                     call @__kiln_trap(4)   ; TrapCode::Interrupted
//!                                     trap
//! ```
//!
//! `@__kiln_interrupt` ([`INTERRUPT_FLAG`]) is resolved by the executor like
//! any host symbol: each executor owns one flag (in this process, in the
//! executor child, or in emulated memory) and sets it in
//! [`crate::executor::Executor::interrupt`]. `@__kiln_trap` is the
//! engine's trap handler ([`crate::isa::TRAP_HANDLER`]), called with the
//! trap code as the backends do, so an interrupted [`crate::Engine::call`]
//! returns the trap `interrupted` by the usual trap path.
//!
//! **The interpreter** polls its flag every [`POLL_INTERVAL`] control
//! transfers (jumps, branches, switches, calls), folded into its fuel
//! counter, so a run without interrupts pays nothing extra.
//!
//! **Pending requests.** An interrupt request stays set until a call
//! observes it: every call running then (or the next one to start, if none
//! runs) stops with `interrupted`; the request is cleared when the last
//! running call of the engine that observed it has returned.
//!
//! [`Deadline`] turns a handle into a timeout (`kiln run --timeout`).

use crate::error::{Error, Result, TrapCode};
use crate::ir::{
    Block, BlockCall, Callee, Const, Function, InstKind, Linkage, Module, Opcode, Operand,
    Signature, SymId, SymbolData, SymbolKind, Type,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The host symbol compiled code reads the interrupt flag from: one byte,
/// nonzero when an interrupt is pending.
pub const INTERRUPT_FLAG: &str = "__kiln_interrupt";

/// Control transfers between two polls of the interpreter's flag.
pub const POLL_INTERVAL: u64 = 1 << 12;

/// Something that can be asked to interrupt the call(s) it runs; cheap to
/// clone, `Send + Sync`, usable from any thread (a timer, a signal
/// handler's helper thread, a UI).
#[derive(Clone)]
pub struct InterruptHandle {
    request: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for InterruptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterruptHandle")
    }
}

impl InterruptHandle {
    /// A handle that runs `request` to interrupt.
    pub fn new(request: impl Fn() + Send + Sync + 'static) -> Self {
        InterruptHandle {
            request: Arc::new(request),
        }
    }

    /// Asks the running call to stop with the trap `interrupted` (SPEC
    /// section 7). Returns at once; the call stops at its next check.
    pub fn interrupt(&self) {
        (self.request)()
    }
}

/// An interrupt flag in this process, with the bookkeeping of the
/// pending-request rule (module docs): a count of running calls.
///
/// The flag byte has a stable address for its whole life (it is boxed),
/// which compiled code reads through [`INTERRUPT_FLAG`].
#[derive(Debug, Default)]
pub struct InterruptFlag {
    flag: Box<AtomicBool>,
    running: AtomicUsize,
}

impl InterruptFlag {
    pub fn new() -> Self {
        Self::default()
    }

    /// The address of the flag byte (what [`INTERRUPT_FLAG`] resolves to).
    pub fn address(&self) -> u64 {
        &*self.flag as *const AtomicBool as u64
    }

    /// Sets the flag.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether an interrupt is pending.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Clears a pending request.
    pub fn clear(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }

    /// Runs `call` as one running call: when it returns `interrupted` and
    /// no other call is running any more, the request is cleared.
    pub fn run<T>(&self, call: impl FnOnce() -> Result<T>) -> Result<T> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let r = call();
        let last = self.running.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && r.as_ref().err().and_then(Error::trap_code) == Some(TrapCode::Interrupted) {
            self.clear();
        }
        r
    }
}

/// Interrupts through `handle` once `after` has passed, unless dropped
/// first. One helper thread per deadline; dropping the deadline ends it
/// at once.
pub struct Deadline {
    cancel: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deadline {
    /// Arms a deadline `after` from now.
    pub fn arm(handle: InterruptHandle, after: Duration) -> Result<Deadline> {
        let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kiln-timeout".into())
            .spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    cancelled.recv_timeout(after)
                {
                    handle.interrupt();
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the timeout thread: {e}")))?;
        Ok(Deadline {
            cancel: Some(cancel),
            thread: Some(thread),
        })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses a `--timeout` value: a non-negative decimal number of seconds
/// (`0.5`, `2`, `1e-3`), at most a year.
pub fn parse_timeout(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && (0.0..=365.0 * 86400.0).contains(&secs))
        .then(|| Duration::from_secs_f64(secs))
}

/// The symbols the checks use, declared in (a copy of) the module.
struct Hooks {
    flag: SymId,
    trap: SymId,
}

/// Declares `name` as an import of `kind`, or reuses a declaration of the
/// same kind; anything else under the name is an error.
fn import(module: &mut Module, name: &str, kind: SymbolKind) -> Result<SymId> {
    let data = SymbolData {
        name: name.to_string(),
        linkage: Linkage::Import,
        kind: kind.clone(),
    };
    match module.declare(data, crate::ir::Loc::NONE) {
        Ok(id) => Ok(id),
        Err(old) => {
            let s = module.sym(old);
            if s.linkage == Linkage::Import && s.kind == kind {
                Ok(old)
            } else {
                Err(Error::Argument(format!(
                    "module `{}` defines @{name}, a name kiln reserves for interrupt checks",
                    module.name
                )))
            }
        }
    }
}

/// A copy of `module` with an interrupt check at every function entry and
/// cycle head (module docs). The result verifies when `module` does.
pub fn instrument(module: &Module) -> Result<Module> {
    let mut out = module.clone();
    if !out
        .symbols
        .iter()
        .any(|s| s.is_func() && s.linkage != Linkage::Import)
        || out.funcs.is_empty()
    {
        return Ok(out);
    }
    let hooks = Hooks {
        flag: import(&mut out, INTERRUPT_FLAG, SymbolKind::Data { body: None })?,
        trap: import(
            &mut out,
            crate::isa::TRAP_HANDLER,
            SymbolKind::Func {
                sig: Signature::new(vec![Type::I32], None),
                body: None,
            },
        )?,
    };
    for f in &mut out.funcs {
        instrument_function(f, &hooks);
    }
    Ok(out)
}

/// The blocks that get a check: the entry and the target of every
/// retreating edge of the reverse postorder (every cycle has one).
pub fn check_points(f: &Function) -> Vec<Block> {
    use crate::analysis::{Cfg, Rpo};
    let cfg = Cfg::new(f);
    let rpo = Rpo::new(&cfg);
    let mut marked = vec![false; f.blocks.len()];
    if let Some(m) = marked.first_mut() {
        *m = true;
    }
    for &a in rpo.order() {
        let Some(ia) = rpo.index_of(a) else { continue };
        for &b in cfg.succs(a) {
            if rpo.index_of(b).is_some_and(|ib| ib <= ia) {
                marked[b.index()] = true;
            }
        }
    }
    (0..f.blocks.len())
        .filter(|&i| marked[i])
        .map(Block::new)
        .collect()
}

fn instrument_function(f: &mut Function, hooks: &Hooks) {
    let points = check_points(f);
    if points.is_empty() {
        return;
    }
    // Source locations stay aligned with instructions only if the map
    // covers every instruction (the checks then point at their block's
    // first instruction); block labels and value definitions get locations
    // when their tables are complete too.
    let map = &f.srcmap;
    let keep_locs = !map.is_empty() && map.num_insts() == f.insts.len();
    let aligned = (
        map.blocks().len() == f.blocks.len(),
        map.values().len() == f.values.len(),
    );
    let mut locs = keep_locs.then(|| f.srcmap.to_builder());
    let func_loc = f.srcmap.func;
    // Labels must stay unique, even when a module is instrumented twice.
    let mut taken: std::collections::HashSet<String> = f
        .blocks
        .iter()
        .map(|b| f.names.get(b.name).to_string())
        .collect();
    let mut fresh = |base: String| -> String {
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(name.as_str()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        name
    };
    // Records the locations of what was added since the counts given.
    let record = |f: &Function,
                  locs: &mut Option<crate::ir::SrcMapBuilder>,
                  (insts, blocks, values): (usize, usize, usize),
                  at: crate::ir::Loc| {
        if let Some(b) = locs {
            (insts..f.insts.len()).for_each(|_| b.start_inst(at));
            if aligned.0 {
                (blocks..f.blocks.len()).for_each(|_| b.push_block(at));
            }
            if aligned.1 {
                (values..f.values.len()).for_each(|_| b.push_value(at));
            }
        }
    };
    let counts = |f: &Function| (f.insts.len(), f.blocks.len(), f.values.len());
    let before = counts(f);
    let trap_block = f.new_block(&fresh("__kiln_interrupted".into()));
    let code = f.make_args(&[Operand::Const(Const::from(i64::from(
        TrapCode::Interrupted.code(),
    )))]);
    f.push_inst(
        trap_block,
        Opcode::Call,
        None,
        InstKind::Call {
            callee: Callee::Direct(hooks.trap),
            args: code,
        },
        None,
    );
    f.push_inst(trap_block, Opcode::Trap, None, InstKind::Trap, None);
    record(f, &mut locs, before, func_loc);
    let no_args = f.make_args(&[]);
    for h in points {
        let before = counts(f);
        let label = format!("{}__kiln_body", f.block_name(h));
        let body = f.new_block(&fresh(label));
        let insts = std::mem::take(&mut f.blocks[h.index()].insts);
        let at = insts
            .first()
            .map_or(func_loc, |&i| f.srcmap.inst(i))
            .or(func_loc);
        f.blocks[body.index()].insts = insts;
        let addr = f.push_inst(
            h,
            Opcode::Addr,
            None,
            InstKind::Addr { sym: hooks.flag },
            None,
        );
        let p = f.inst(addr).result.map(Operand::Value);
        let load = f.push_inst(
            h,
            Opcode::Load8u,
            Some(Type::I32),
            InstKind::Load {
                ptr: p.unwrap_or(Operand::Const(Const::from(0))),
                offset: 0,
            },
            None,
        );
        let flag = f.inst(load).result.map(Operand::Value);
        f.push_inst(
            h,
            Opcode::Br,
            None,
            InstKind::Br {
                cond: flag.unwrap_or(Operand::Const(Const::from(0))),
                then_dest: BlockCall {
                    block: trap_block,
                    args: no_args,
                },
                else_dest: BlockCall {
                    block: body,
                    args: no_args,
                },
            },
            None,
        );
        record(f, &mut locs, before, at);
    }
    if let Some(b) = locs {
        f.srcmap = b.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap_code<T>(r: Result<T>) -> Option<TrapCode> {
        r.err().and_then(|e| e.trap_code())
    }
    use crate::ir::parse::parse_module;
    use crate::ir::verify::verify_module;

    fn module(text: &str) -> Module {
        let m = parse_module("t.kir", text).unwrap();
        verify_module(&m).unwrap();
        m
    }

    const LOOP: &str = "func @f(%n: i64) -> i64 {\nentry:\n    jmp head(0)\nhead(%i: i64):\n    %c = slt.i64 %i, %n\n    br %c, body, done\nbody:\n    %j = add.i64 %i, 1\n    jmp head(%j)\ndone:\n    ret %i\n}\n";

    #[test]
    fn checks_go_at_the_entry_and_each_loop_head() {
        let m = module(LOOP);
        let points = check_points(&m.funcs[0]);
        let names: Vec<&str> = points.iter().map(|&b| m.funcs[0].block_name(b)).collect();
        assert_eq!(names, ["entry", "head"]);
        // A self-loop and an irreducible pair are cycles too.
        let irreducible = module(
            "func @g(%c: i32) {\nentry:\n    br %c, a, b\na:\n    jmp b\nb:\n    jmp a\n}\n",
        );
        assert_eq!(check_points(&irreducible.funcs[0]).len(), 2);
    }

    #[test]
    fn instrumented_modules_verify_and_print() {
        let m = module(LOOP);
        let out = instrument(&m).unwrap();
        verify_module(&out).unwrap();
        let text = crate::ir::print::print_module(&out);
        assert!(text.contains("extern data @__kiln_interrupt"), "{text}");
        assert!(text.contains("call @__kiln_trap(4)"), "{text}");
        assert_eq!(text.matches("load8u.i32").count(), 2, "{text}");
        // Instrumenting twice reuses the declarations.
        verify_module(&instrument(&out).unwrap()).unwrap();
        // A module defining a reserved name is refused.
        let clash = module("data @__kiln_interrupt = { i8 0 }\nfunc @f() {\nentry:\n    ret\n}\n");
        assert!(instrument(&clash).is_err());
    }

    #[test]
    fn the_interpreter_runs_instrumented_code_identically() {
        use crate::host::HostFunctions;
        use crate::interp::Interpreter;
        use crate::value::Val;
        let m = instrument(&module(LOOP)).unwrap();
        let flag = InterruptFlag::new();
        let mut host = HostFunctions::new();
        host.register(
            crate::isa::TRAP_HANDLER,
            Signature::new(vec![Type::I32], None),
            |_| Err(Error::trap(TrapCode::Interrupted)),
        );
        let modules = [m];
        // The interpreter has no `__kiln_interrupt` host data, so link the
        // flag in through a data item of a second module.
        let flag_module = module(&format!("data @{INTERRUPT_FLAG} = {{ i8 0 }}\n"));
        let all = [flag_module, modules[0].clone()];
        let mut it = Interpreter::new(&all, &host).unwrap();
        assert_eq!(it.call("f", &[Val::I64(10)]).unwrap(), Some(Val::I64(10)));
        let addr = it.data_address(INTERRUPT_FLAG).unwrap();
        // SAFETY: `addr` is the interpreter's own one-byte data item.
        unsafe { *(addr as *mut u8) = 1 };
        assert_eq!(
            trap_code(it.call("f", &[Val::I64(10)])),
            Some(TrapCode::Interrupted)
        );
        let _ = flag;
    }

    #[test]
    fn timeouts_parse_as_seconds() {
        assert_eq!(parse_timeout("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("0"), Some(Duration::ZERO));
        for bad in ["", "-1", "x", "inf", "NaN", "1e12"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_request_is_cleared_by_the_last_call_that_observed_it() {
        let flag = InterruptFlag::new();
        flag.request();
        let r: Result<()> = flag.run(|| Err(Error::trap(TrapCode::Interrupted)));
        assert!(r.is_err());
        assert!(!flag.is_set());
        flag.request();
        let _ = flag.run(|| Ok(()));
        assert!(
            flag.is_set(),
            "a call that did not observe it leaves it pending"
        );
    }

    #[test]
    fn a_deadline_interrupts_once_unless_dropped() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let handle = InterruptHandle::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        drop(Deadline::arm(handle.clone(), Duration::from_secs(60)).unwrap());
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let d = Deadline::arm(handle, Duration::from_millis(1)).unwrap();
        // Wait for the timeout thread however loaded the machine is (a
        // fixed sleep raced with the scheduler); a deadline that never
        // fires fails after 30 s.
        let start = std::time::Instant::now();
        while hits.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(d);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
