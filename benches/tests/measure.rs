//! The measurement code does the work it claims: the registries compile
//! and link every module, the compile-speed inputs compile in both
//! compilers, and cross-module calls agree between kiln and Cranelift.
//!
//! Run: `cargo test -p kiln-bench --release`.

use kiln::Val;
use kiln_bench::measure::{
    clif_compile, compile_corpus, kiln_compile, parse, registry_sweep, sweep_module_text, Registry,
    ScanAllRegistry,
};
use kiln_bench::to_cranelift::{default_trap, ClifOpts, ClifProgram};

fn sweep_modules(n: usize) -> Vec<kiln::ir::Module> {
    (0..n)
        .map(|i| parse(&format!("m{i}"), &sweep_module_text(i)).expect("sweep module parses"))
        .collect()
}

/// f_i(x) = 3x + i, then f_{i-1} of that while x >= 1.
fn sweep_reference(i: usize, x: i64) -> i64 {
    let b = x.wrapping_mul(3).wrapping_add(i as i64);
    if x < 1 || i == 0 {
        b
    } else {
        sweep_reference(i - 1, b)
    }
}

#[test]
fn sweep_modules_link_across_modules_in_kiln_and_cranelift() {
    let modules = sweep_modules(20);
    let engine = kiln::Engine::new(std::env::consts::ARCH).expect("engine");
    for m in modules.clone() {
        let id = engine.add_module(m).expect("adds");
        engine.finalize_module(id).expect("finalizes");
    }
    let prog = ClifProgram::compile(
        &modules,
        ClifOpts::new("speed", "backtracking"),
        default_trap,
        &[],
    )
    .expect("Cranelift compiles");
    for x in [-3i64, 0, 1, 7] {
        let want = Some(Val::I64(sweep_reference(19, x)));
        assert_eq!(engine.call("f19", &[Val::I64(x)]).expect("kiln call"), want);
        // SAFETY: the sweep functions are defined for every input.
        assert_eq!(
            unsafe { prog.call("f19", &[Val::I64(x)]) }.expect("clif call"),
            want
        );
    }
}

#[test]
fn scan_all_registry_finalizes_every_module_and_rejects_bad_ones() {
    let mut reg = ScanAllRegistry::default();
    for m in sweep_modules(30) {
        reg.add(m).expect("adds");
        reg.finalize().expect("finalizes");
        assert!(reg.all_finalized());
    }
    assert_eq!(reg.len(), 30);
    // A module that does not verify is refused, as by the engine.
    let mut bad = kiln::ir::Module::new("bad");
    let sig = kiln::ir::Signature::new(vec![], Some(kiln::ir::Type::I64));
    let sym = bad
        .declare(
            kiln::ir::SymbolData {
                name: "g".into(),
                linkage: kiln::ir::Linkage::Export,
                kind: kiln::ir::SymbolKind::Func {
                    sig: sig.clone(),
                    body: None,
                },
            },
            kiln::ir::Loc::NONE,
        )
        .expect("declares");
    bad.define_func(sym, kiln::ir::Function::new("g", sig));
    assert!(reg.add(bad).is_err());
}

#[test]
fn sweeps_time_every_module() {
    for w in [Registry::Kiln, Registry::Clif, Registry::ScanAll] {
        let s = registry_sweep(w, 12).expect("sweep runs");
        assert_eq!(s.per_module.len(), 12, "{w:?}");
        assert!(s.cost_at(12) > std::time::Duration::ZERO, "{w:?}");
    }
}

#[test]
fn compile_inputs_compile_in_both_compilers() {
    let corpus = compile_corpus();
    assert!(
        corpus.len() >= 10,
        "only {} corpus files usable",
        corpus.len()
    );
    let gen = parse("gen", &kiln_bench::generated_function(1000)).expect("generated parses");
    kiln_compile(std::slice::from_ref(&gen)).expect("kiln compiles");
    for o in ClifOpts::ALL {
        clif_compile(std::slice::from_ref(&gen), o).expect("Cranelift compiles");
    }
}
