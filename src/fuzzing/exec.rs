//! The `compile` check: a generated program runs on the interpreter and on
//! every compiled target this build has, at both optimization levels
//! (`none` and `speed`), and all must agree.
//!
//! The `speed` tier is also checked on its own: the optimized module must
//! verify, and the interpreter running the optimized IR must agree with
//! the interpreter running the original.
//!
//! Targets: native x86-64 (on x86-64 hosts) through an [`Engine`] whose
//! backend runs the register-allocation checker on every function in every
//! build (`regalloc::allocate` does in builds with debug assertions, the
//! `x86_64-checked` backend of [`crate::isa::backend`] in the others).
//! With the `aarch64` and `emulate` features, AArch64 code also runs under
//! the Unicorn emulator (`aarch64-checked` likewise). Each program gets
//! fresh engines, so no state leaks between inputs.
//!
//! The interpreter is the oracle and runs with fuel: generated programs
//! terminate by construction, but a program that runs out of fuel (or hits
//! the interpreter's depth limit) is skipped rather than compared.

use super::gen::{generate, Program};
use super::{Finding, FILE};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::host::HostFunctions;
use crate::interp::Interpreter;
use crate::ir::parse::parse_module;
use crate::ir::print::print_module;
use crate::ir::verify::verify_module;
use crate::ir::Module;
use crate::opt::{optimize_module, OptLevel};
use crate::value::Val;

/// Control transfers the interpreter may make per program.
pub const FUEL: u64 = 200_000;

/// Generates a program from `data` and checks every target against the
/// interpreter.
pub fn check_compile(data: &[u8]) -> std::result::Result<(), Finding> {
    check_program(&generate(data))
}

/// Checks one program (also used for hand-written regression programs).
pub fn check_program(p: &Program) -> std::result::Result<(), Finding> {
    let fail = |what: String| Finding(format!("{what}\nargs: {:?}\n{}", p.args, p.text));
    let module = parse_module(FILE, &p.text)
        .map_err(|e| fail(format!("generated program does not parse: {e}")))?;
    verify_module(&module).map_err(|e| fail(format!("generated program does not verify: {e}")))?;
    let expected = interpret(&module, &p.args);
    match &expected {
        Err(Error::Runtime(_)) => return Ok(()),
        Ok(_) | Err(Error::Trap(_)) => {}
        Err(e) => return Err(fail(format!("interpreter failed: {e}"))),
    }
    let mut optimized = module.clone();
    optimize_module(&mut optimized, OptLevel::Speed);
    verify_module(&optimized).map_err(|e| {
        fail(format!(
            "the optimized program does not verify: {e}\n{}",
            print_module(&optimized)
        ))
    })?;
    let got = interpret(&optimized, &p.args);
    // The optimized program may need more fuel (loop preheaders are
    // jumps of their own): running out is not a finding.
    if !matches!(got, Err(Error::Runtime(_))) && !same(&expected, &got) {
        return Err(fail(format!(
            "the interpreter disagrees with itself on the optimized program: expected \
             {expected:?}, got {got:?}\n{}",
            print_module(&optimized)
        )));
    }
    for level in [OptLevel::None, OptLevel::Speed] {
        for (target, got) in run_compiled(&module, &p.args, level) {
            if !same(&expected, &got) {
                return Err(fail(format!(
                    "{target} --opt {} disagrees with the interpreter: expected {expected:?}, \
                     got {got:?}",
                    level.name()
                )));
            }
        }
    }
    Ok(())
}

fn interpret(module: &Module, args: &[Val]) -> Result<Option<Val>> {
    let modules = [module.clone()];
    let mut it = Interpreter::new(&modules, &HostFunctions::new())?;
    it.set_fuel(Some(FUEL));
    it.call("main", args)
}

/// Runs `@main` on every compiled target of this build.
// Each push depends on the build's features and host.
#[allow(clippy::vec_init_then_push)]
fn run_compiled(
    module: &Module,
    args: &[Val],
    level: OptLevel,
) -> Vec<(&'static str, Result<Option<Val>>)> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
    out.push(("x86_64", run_native(module, args, level)));
    #[cfg(all(feature = "aarch64", feature = "emulate"))]
    out.push(("aarch64 (emulated)", run_emulated(module, args, level)));
    let _ = (module, args, level);
    out
}

#[cfg(all(feature = "x86_64", target_arch = "x86_64"))]
fn run_native(module: &Module, args: &[Val], level: OptLevel) -> Result<Option<Val>> {
    use crate::executor::InProcessExecutor;
    use std::sync::Arc;
    let executor = Arc::new(InProcessExecutor::new(None)?);
    // The checker must run on every function, exactly once: builds with
    // debug assertions (tests, cargo-fuzz's default) run it inside
    // `regalloc::allocate`; others need the checked backend.
    let target = if cfg!(debug_assertions) {
        "x86_64"
    } else {
        "x86_64-checked"
    };
    let engine = Engine::with_executor(target, executor)?;
    engine.set_opt_level(level);
    run_on(&engine, module, args)
}

/// AArch64 code under the Unicorn emulator (feature `emulate`), with a
/// small stack and heap: generated programs need little, and mapping less
/// keeps each run cheap.
#[cfg(all(feature = "aarch64", feature = "emulate"))]
fn run_emulated(module: &Module, args: &[Val], level: OptLevel) -> Result<Option<Val>> {
    use crate::emulate::EmulatorConfig;
    use crate::executor::EmulatorExecutor;
    use std::sync::Arc;
    let config = EmulatorConfig {
        instruction_limit: None,
        time_limit: Some(std::time::Duration::from_secs(20)),
        stack_size: 1 << 20,
        heap_size: 64 << 10,
    };
    let executor = Arc::new(EmulatorExecutor::new(config)?);
    // As for x86-64: the checker runs exactly once per function.
    let target = if cfg!(debug_assertions) {
        "aarch64"
    } else {
        "aarch64-checked"
    };
    let engine = Engine::with_executor(target, executor)?;
    engine.set_opt_level(level);
    run_on(&engine, module, args)
}

fn run_on(engine: &Engine, module: &Module, args: &[Val]) -> Result<Option<Val>> {
    engine.add_module(module.clone())?;
    engine.call("main", args)
}

/// Equal results (floats by bits, any NaN equal to any NaN since SPEC
/// leaves NaN bits unspecified) or equal traps (reason and backtrace).
fn same(a: &Result<Option<Val>>, b: &Result<Option<Val>>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => same_val(*x, *y),
            _ => false,
        },
        // Same reason and same IR-level backtrace (line tables checked).
        (Err(Error::Trap(x)), Err(Error::Trap(y))) => {
            x.code == y.code && x.backtrace == y.backtrace
        }
        _ => false,
    }
}

fn same_val(a: Val, b: Val) -> bool {
    match (a, b) {
        (Val::I32(x), Val::I32(y)) => x == y,
        (Val::I64(x), Val::I64(y)) => x == y,
        (Val::F32(x), Val::F32(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Val::F64(x), Val::F64(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        _ => false,
    }
}
