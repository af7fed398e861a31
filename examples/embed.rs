//! Embedding kiln: build IR (builder API and text), register a host function, finalize, call
//! through the typed and the generic path, remove a module.
//!
//! Run with `cargo run --example embed`.

use kiln::ir::builder::{fconst, ModuleBuilder};
use kiln::ir::{Signature, Type};
use kiln::{Engine, Val};

/// A host function compiled code calls through `extern func @host_scale`.
extern "C" fn host_scale(x: f64, factor: i64) -> f64 {
    x * factor as f64
}

fn main() -> kiln::Result<()> {
    let engine = Engine::default();

    // 1. The host function, with its signature (an `extern func` must match).
    engine.register_host_symbol(
        "host_scale",
        host_scale as *const () as usize,
        Some(Signature::new(vec![Type::F64, Type::I64], Some(Type::F64))),
    )?;

    // 2. Two modules: `lib` built with the builder API, `app` from text.
    let mut mb = ModuleBuilder::new("lib.kir");
    let mut f = mb.func("poly", Signature::new(vec![Type::F64], Some(Type::F64)))?;
    let x = f.param(0);
    let x2 = f.fmul(Type::F64, x, x);
    let y = f.fadd(Type::F64, x2, fconst(1.0));
    f.ret(y);
    f.finish();
    let lib = mb.finish()?; // verifies
    let lib = engine.add_module(lib)?;
    let app = engine.add_module_text(
        "app.kir",
        "extern func @poly(f64) -> f64\n\
         extern func @host_scale(f64, i64) -> f64\n\
         func @run(%x: f64, %k: i64) -> f64 {\n\
         entry:\n\
             %p = call.f64 @poly(%x)\n\
             %r = call.f64 @host_scale(%p, %k)\n\
             ret %r\n\
         }\n",
    )?;

    // 3. Finalize `app` (and `lib`, which it references).
    engine.finalize_module(app)?;
    let stats = engine.stats()?;
    println!(
        "compiled {} modules, {} finalized",
        stats.modules_compiled, stats.finalized
    );

    // 4. The typed path (signature checked against the IR) ...
    // SAFETY: `app` stays finalized while `run` is used below.
    let run: extern "C" fn(f64, i64) -> f64 = unsafe { engine.get_function("run")? };
    println!("run(3.0, 2) = {}", run(3.0, 2));
    // ... and the generic path, for any signature.
    let r = engine.call("run", &[Val::F64(0.5), Val::I64(4)])?;
    println!(
        "call(run, 0.5, 4) = {}",
        r.map_or("-".to_string(), |v| v.to_string())
    );

    // 5. Removal: `lib` is referenced by `app`, so it must go second.
    if let Err(e) = engine.remove_module(lib) {
        println!("as expected: {e}");
    }
    engine.remove_module(app)?;
    engine.remove_module(lib)?;
    println!("removed both; memory is reused by later modules");
    Ok(())
}
