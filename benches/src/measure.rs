//! The three kiln-vs-Cranelift comparisons, shared by the `report` binary
//! and the criterion benches:
//! - compile speed ([`kiln_compile`], [`clif_compile`]): kiln IR (parsed,
//!   in memory) to finalized machine code;
//! - code speed ([`CompiledMain`]): run time of each program's `@main`;
//! - registry scaling ([`registry_sweep`]): adding and finalizing module
//!   after module, in kiln's engine, Cranelift's `JITModule` and a
//!   scan-all-modules registry ([`ScanAllRegistry`]).
//!
//! Timed regions contain only the work compared; engine creation and
//! teardown, parsing and cloning inputs happen outside them.

use crate::to_cranelift::{default_trap, new_jit, ClifOpts, ClifProgram, Translator};
use kiln::compiled::CompiledModule;
use kiln::ir::{parse::parse_module, verify::verify_module, Module, SymbolKind};
use kiln::opt::OptLevel;
use kiln::Engine;
use std::time::{Duration, Instant};

/// How long to measure: samples are taken until both minimums are met (or
/// `max_iters` is reached); the fastest sample is the result (on a shared machine the minimum is the least disturbed by other jobs).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub min_time: Duration,
    pub min_iters: usize,
    pub max_iters: usize,
}

impl Budget {
    pub const QUICK: Budget = Budget {
        min_time: Duration::from_millis(30),
        min_iters: 1,
        max_iters: 5,
    };
    pub const FULL: Budget = Budget {
        min_time: Duration::from_millis(400),
        min_iters: 5,
        max_iters: 200,
    };

    /// One of `rounds` batches that together take this budget's samples
    /// (each at least one sample).
    pub fn split(self, rounds: u32) -> Budget {
        let rounds = rounds.max(1);
        Budget {
            min_time: self.min_time / rounds,
            min_iters: self.min_iters.div_ceil(rounds as usize).max(1),
            max_iters: self.max_iters.div_ceil(rounds as usize).max(1),
        }
    }
}

/// The fastest of samples of `sample`, which returns the duration of its
/// own timed region (so it may prepare untimed).
pub fn fastest_of(
    budget: Budget,
    mut sample: impl FnMut() -> Result<Duration, String>,
) -> Result<Duration, String> {
    let mut samples = Vec::new();
    let mut total = Duration::ZERO;
    while samples.len() < budget.max_iters
        && (samples.len() < budget.min_iters || total < budget.min_time)
    {
        let d = sample()?;
        total += d;
        samples.push(d);
    }
    samples
        .into_iter()
        .min()
        .ok_or_else(|| "no sample taken".to_string())
}

/// A kiln error as the report prints it.
pub fn kiln_err(e: kiln::Error) -> String {
    e.to_string()
}

/// Parses and verifies `text`.
pub fn parse(name: &str, text: &str) -> Result<Module, String> {
    let m = parse_module(name, text).map_err(kiln_err)?;
    verify_module(&m).map_err(kiln_err)?;
    Ok(m)
}

/// kiln: `Engine::add_module` (which verifies) and `finalize_module` for
/// every module, on a fresh engine. Returns the timed duration.
pub fn kiln_compile(modules: &[Module]) -> Result<Duration, String> {
    kiln_compile_at(modules, OptLevel::None)
}

/// [`kiln_compile`] at optimization level `level` (the `speed` tier's
/// passes run inside `add_module`, so they are timed).
pub fn kiln_compile_at(modules: &[Module], level: OptLevel) -> Result<Duration, String> {
    let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
    engine.set_opt_level(level);
    let inputs = modules.to_vec();
    let t = Instant::now();
    let mut ids = Vec::with_capacity(inputs.len());
    for m in inputs {
        ids.push(engine.add_module(m).map_err(kiln_err)?);
    }
    for id in ids {
        engine.finalize_module(id).map_err(kiln_err)?;
    }
    let d = t.elapsed();
    drop(engine);
    Ok(d)
}

/// Cranelift: translate every module into a fresh `JITModule` (declare,
/// build CLIF, compile in `define_function`) and `finalize_definitions`.
/// Cranelift's own IR verifier is off (as in production embedders); kiln's
/// timing includes its input verifier.
pub fn clif_compile(modules: &[Module], opts: ClifOpts) -> Result<Duration, String> {
    let mut jit = new_jit(opts, default_trap, &[])?;
    let mut tr = Translator::new();
    let t = Instant::now();
    for m in modules {
        tr.translate_module(&mut jit, m)?;
    }
    jit.finalize_definitions().map_err(|e| e.to_string())?;
    let d = t.elapsed();
    // SAFETY: nothing compiled here is called or referenced any more.
    unsafe { jit.free_memory() };
    Ok(d)
}

/// Whether every `extern` of `m` is found in the process (Cranelift's JIT
/// panics on an unresolvable symbol, so such inputs are left out).
pub fn imports_resolvable(m: &Module) -> bool {
    m.symbols
        .iter()
        .filter(|s| s.linkage == kiln::ir::Linkage::Import)
        .all(|s| {
            let Ok(c) = std::ffi::CString::new(s.name.as_str()) else {
                return false;
            };
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name
            // only looks the symbol up.
            !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) }.is_null()
        })
}

/// The test corpus as compile-speed inputs: each file that both compilers
/// accept on its own (no references to other files' exports).
pub fn compile_corpus() -> Vec<Module> {
    crate::corpus()
        .into_iter()
        .filter_map(|(p, t)| parse(&p.display().to_string(), &t).ok())
        .filter(imports_resolvable)
        .filter(|m| kiln_compile(std::slice::from_ref(m)).is_ok())
        .filter(|m| {
            let m = m.clone();
            std::panic::catch_unwind(move || {
                clif_compile(&[m], ClifOpts::new("none", "single_pass")).is_ok()
            })
            .unwrap_or(false)
        })
        .collect()
}

/// `@main(i64) -> i64` of one program compiled by one engine, kept alive
/// for timing. (Cranelift's program is boxed: it is far larger than an
/// `Engine` handle.)
pub enum CompiledMain {
    Kiln(Engine, extern "C" fn(i64) -> i64),
    Clif(Box<ClifProgram>, extern "C" fn(i64) -> i64),
}

impl CompiledMain {
    pub fn kiln(m: &Module) -> Result<CompiledMain, String> {
        CompiledMain::kiln_at(m, OptLevel::None)
    }

    /// kiln's code at optimization level `level`.
    pub fn kiln_at(m: &Module, level: OptLevel) -> Result<CompiledMain, String> {
        let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
        engine.set_opt_level(level);
        engine.add_module(m.clone()).map_err(kiln_err)?;
        // SAFETY: the pointer is used only while `engine` lives (both are
        // kept in the returned value) and the module is never removed.
        let f = unsafe { engine.get_function::<extern "C" fn(i64) -> i64>("main") }
            .map_err(kiln_err)?;
        Ok(CompiledMain::Kiln(engine, f))
    }

    pub fn clif(m: &Module, opts: ClifOpts) -> Result<CompiledMain, String> {
        let prog = ClifProgram::compile(std::slice::from_ref(m), opts, default_trap, &[])?;
        let f = prog.function("main").ok_or("no @main")?;
        // SAFETY: `main` is a finalized Cranelift function translated from
        // `@main(i64) -> i64` (checked below), alive as long as `prog`.
        let sig_ok = prog.signature("main").is_some_and(|s| {
            s.params[..] == [kiln::ir::Type::I64] && s.ret == Some(kiln::ir::Type::I64)
        });
        if !sig_ok {
            return Err("@main is not (i64) -> i64".into());
        }
        let f: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(f) };
        Ok(CompiledMain::Clif(Box::new(prog), f))
    }

    pub fn call(&self, n: i64) -> i64 {
        match self {
            CompiledMain::Kiln(_, f) | CompiledMain::Clif(_, f) => f(n),
        }
    }
}

/// Per-module costs of adding and finalizing modules one after another.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Duration of each module's add + finalize, in order.
    pub per_module: Vec<Duration>,
}

impl Sweep {
    /// Mean cost of the modules numbered (n/2, n] (1-based): the cost of
    /// adding a module when about `n` are registered.
    pub fn cost_at(&self, n: usize) -> Duration {
        let lo = n / 2;
        let hi = n.min(self.per_module.len());
        if hi <= lo {
            return Duration::ZERO;
        }
        self.per_module[lo..hi].iter().sum::<Duration>() / (hi - lo) as u32
    }
}

/// The element-wise fastest of several sweeps of one registry (each
/// module's least disturbed timing).
pub fn best_sweep(which: Registry, n: usize, runs: usize) -> Result<Sweep, String> {
    let mut best = registry_sweep(which, n)?;
    for _ in 1..runs {
        let s = registry_sweep(which, n)?;
        for (b, d) in best.per_module.iter_mut().zip(s.per_module) {
            *b = (*b).min(d);
        }
    }
    Ok(best)
}

/// Module `i` of the registry sweep: one exported function calling the
/// previous module's through an `extern`, so every finalize links.
pub fn sweep_module_text(i: usize) -> String {
    let mut s = String::new();
    if i > 0 {
        s.push_str(&format!("extern func @f{}(i64) -> i64\n", i - 1));
    }
    s.push_str(&format!(
        "func @f{i}(%x: i64) -> i64 {{\nentry:\n    %a = mul.i64 %x, 3\n    %b = add.i64 %a, {i}\n    %z = slt.i64 %x, 1\n    br %z, done(%b), more\nmore:\n"
    ));
    if i > 0 {
        s.push_str(&format!(
            "    %c = call.i64 @f{}(%b)\n    jmp done(%c)\n",
            i - 1
        ));
    } else {
        s.push_str("    jmp done(%b)\n");
    }
    s.push_str("done(%r: i64):\n    ret %r\n}\n");
    s
}

/// Which registry a sweep measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    Kiln,
    Clif,
    ScanAll,
}

/// Adds and finalizes `n` sweep modules one at a time in `which`.
pub fn registry_sweep(which: Registry, n: usize) -> Result<Sweep, String> {
    let modules: Vec<Module> = (0..n)
        .map(|i| parse(&format!("m{i}"), &sweep_module_text(i)))
        .collect::<Result<_, _>>()?;
    let mut per_module = Vec::with_capacity(n);
    match which {
        Registry::Kiln => {
            let engine = Engine::new(std::env::consts::ARCH).map_err(kiln_err)?;
            for m in modules {
                let t = Instant::now();
                let id = engine.add_module(m).map_err(kiln_err)?;
                engine.finalize_module(id).map_err(kiln_err)?;
                per_module.push(t.elapsed());
            }
        }
        Registry::Clif => {
            let mut jit = new_jit(ClifOpts::new("none", "single_pass"), default_trap, &[])?;
            let mut tr = Translator::new();
            for m in &modules {
                let t = Instant::now();
                tr.translate_module(&mut jit, m)?;
                jit.finalize_definitions().map_err(|e| e.to_string())?;
                per_module.push(t.elapsed());
            }
            // SAFETY: nothing compiled here is called.
            unsafe { jit.free_memory() };
        }
        Registry::ScanAll => {
            let mut reg = ScanAllRegistry::default();
            for m in modules {
                let t = Instant::now();
                reg.add(m)?;
                reg.finalize()?;
                per_module.push(t.elapsed());
            }
        }
    }
    Ok(Sweep { per_module })
}

/// The state of a module in [`ScanAllRegistry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    Added,
    Finalized,
}

struct ScanModule {
    ir: Module,
    state: ScanState,
    compiled: Option<CompiledModule>,
    /// The module's sections as laid out at `base` (text, rodata, data).
    image: [Vec<u8>; 3],
    bases: [u64; 3],
}

/// A registry in the style of LLVM's old MCJIT: a flat list of modules with
/// a state flag, and every `finalize` scans all of them for work, then
/// resolves each relocation by scanning every module's symbols. It does
/// the same verify and compile work as kiln's engine (kiln's backend) and lays the
/// sections out and relocates them in ordinary memory (it does not map
/// executable pages, which makes it cheaper per module than the engine).
#[derive(Default)]
pub struct ScanAllRegistry {
    modules: Vec<ScanModule>,
    next_base: u64,
}

impl ScanAllRegistry {
    /// Verifies `ir` (as kiln's engine does on add) and appends it.
    pub fn add(&mut self, ir: Module) -> Result<(), String> {
        verify_module(&ir).map_err(kiln_err)?;
        self.modules.push(ScanModule {
            ir,
            state: ScanState::Added,
            compiled: None,
            image: [Vec::new(), Vec::new(), Vec::new()],
            bases: [0; 3],
        });
        Ok(())
    }

    /// Compiles, lays out and links every module not yet finalized.
    pub fn finalize(&mut self) -> Result<(), String> {
        let backend = kiln::isa::backend(std::env::consts::ARCH).ok_or("no kiln backend")?;
        if self.next_base == 0 {
            self.next_base = 0x1000_0000;
        }
        let mut fresh = Vec::new();
        for (i, m) in self.modules.iter_mut().enumerate() {
            if m.state != ScanState::Added {
                continue;
            }
            let c = kiln::emit::compile_module(&m.ir, backend).map_err(kiln_err)?;
            m.image = [c.text.clone(), c.rodata.clone(), c.data.clone()];
            for (k, sec) in m.image.iter().enumerate() {
                m.bases[k] = self.next_base;
                self.next_base += (sec.len() as u64).div_ceil(64) * 64 + 64;
            }
            m.compiled = Some(c);
            fresh.push(i);
        }
        for i in fresh {
            let relocs = self.modules[i]
                .compiled
                .as_ref()
                .map(|c| c.relocs.clone())
                .unwrap_or_default();
            for r in relocs {
                let s = self.resolve(i, &r.target).unwrap_or(0);
                let k = match r.section {
                    kiln::reloc::SectionKind::Text => 0,
                    kiln::reloc::SectionKind::Rodata => 1,
                    kiln::reloc::SectionKind::Data => 2,
                };
                let m = &mut self.modules[i];
                // An out-of-range fake address is not an error worth
                // stopping for: the work of resolving was done.
                let _ = r.apply_to(&mut m.image[k], m.bases[k], s);
            }
            self.modules[i].state = ScanState::Finalized;
        }
        Ok(())
    }

    /// The address of `name` as seen from module `from`: its own symbols,
    /// then every module's exports, by linear scan.
    fn resolve(&self, from: usize, name: &str) -> Option<u64> {
        let find = |m: &ScanModule, exported_only: bool| {
            let c = m.compiled.as_ref()?;
            let s = c
                .symbols
                .iter()
                .find(|s| s.name == name && (!exported_only || s.exported))?;
            let k = match s.section {
                kiln::reloc::SectionKind::Text => 0,
                kiln::reloc::SectionKind::Rodata => 1,
                kiln::reloc::SectionKind::Data => 2,
            };
            Some(m.bases[k] + s.offset)
        };
        find(&self.modules[from], false).or_else(|| {
            self.modules
                .iter()
                .filter(|m| m.state == ScanState::Finalized || m.compiled.is_some())
                .find_map(|m| find(m, true))
        })
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Whether every module is finalized.
    pub fn all_finalized(&self) -> bool {
        self.modules.iter().all(|m| m.state == ScanState::Finalized)
    }
}

/// Number of function bodies in `m` (for reporting).
pub fn function_count(m: &Module) -> usize {
    m.symbols
        .iter()
        .filter(|s| matches!(s.kind, SymbolKind::Func { body: Some(_), .. }))
        .count()
}

#[cfg(test)]
mod tests {
    use super::Budget;
    use std::time::Duration;

    #[test]
    fn a_split_budget_takes_the_whole_budgets_samples_in_its_rounds() {
        let b = Budget::FULL.split(5);
        assert_eq!(b.min_time, Budget::FULL.min_time / 5);
        assert_eq!((b.min_iters, b.max_iters), (1, 40));
        // Never a batch without a sample, whatever the rounds.
        let tiny = Budget {
            min_time: Duration::from_millis(1),
            min_iters: 1,
            max_iters: 3,
        }
        .split(7);
        assert_eq!((tiny.min_iters, tiny.max_iters), (1, 1));
        assert_eq!(Budget::QUICK.split(0).max_iters, Budget::QUICK.max_iters);
    }
}
