//! # kiln
//!
//! A small, fast, embeddable native-code JIT compiler: a typed SSA IR with
//! block parameters goes in, callable machine code comes out.
//!
//! ## Pipeline
//!
//! ```text
//! text ──parse──▶ IR ──verify──▶ lower (per ISA) ──▶ machine insts over virtual regs
//!       ──liveness/intervals──▶ linear scan ──▶ emit (dynasm) ──▶ CompiledModule
//!       ──load──▶ section memory manager ──relocate──▶ finalize (W^X, icache) ──▶ callable
//! ```
//!
//! The reference interpreter ([`interp`]) runs verified IR directly and is
//! the oracle every compiled result is compared against.
//!
//! ## Glossary
//!
//! - **module**: one `.kir` file (or one built module): functions and data.
//! - **symbol**: a module-level `@name`; exported, `local`, or `extern`.
//! - **block parameters**: SSA values a block receives from each jump to it,
//!   in place of phi nodes.
//! - **literal / const**: an operand written as a number; its type comes from
//!   its position.
//! - **trap**: a defined stop (`unreachable`, `division by zero`,
//!   `integer overflow`, `stack overflow`, `interrupted`).
//! - **executor**: where compiled code runs: this process (on a JIT stack
//!   with a guard), a child process ([`executor::ProcessExecutor`]), or an
//!   emulator.
//! - **host function**: a function of the embedding program that IR calls
//!   through an `extern func` declaration.
//!
//! ## Embedding
//!
//! An [`Engine`] owns modules and runs them. Adding a module compiles
//! nothing; a module is compiled, loaded and finalized when something it
//! defines is looked up or referenced by a module being finalized
//! ([`registry`] keeps Added / Loaded / Finalized modules in separate
//! containers, so the cost of the N-th module does not grow with N).
//!
//! ```
//! use kiln::{Engine, Error, TrapCode, Val};
//!
//! extern "C" fn triple(x: i64) -> i64 {
//!     3 * x
//! }
//!
//! # fn main() -> kiln::Result<()> {
//! let engine = Engine::default();
//! let sig = kiln::ir::Signature::new(vec![kiln::ir::Type::I64], Some(kiln::ir::Type::I64));
//! engine.register_host_symbol("triple", triple as *const () as usize, Some(sig))?;
//! engine.add_module_text("lib.kir", "func @sq(%x: i64) -> i64 {\nentry:\n    %y = mul.i64 %x, %x\n    ret %y\n}\n")?;
//! let main = engine.add_module_text(
//!     "main.kir",
//!     "extern func @sq(i64) -> i64\n\
//!      extern func @triple(i64) -> i64\n\
//!      func @f(%x: i64, %d: i64) -> i64 {\n\
//!      entry:\n\
//!          %s = call.i64 @sq(%x)\n\
//!          %t = call.i64 @triple(%s)\n\
//!          %q = sdiv.i64 %t, %d\n\
//!          ret %q\n\
//!      }\n",
//! )?;
//!
//! // The generic path: any signature, traps come back as errors.
//! assert_eq!(engine.call("f", &[Val::I64(4), Val::I64(2)])?, Some(Val::I64(24)));
//! let trap = engine.call("f", &[Val::I64(4), Val::I64(0)]).unwrap_err();
//! assert_eq!(trap.trap_code(), Some(TrapCode::DivisionByZero));
//!
//! // The typed path: the signature is checked against the IR.
//! // SAFETY: the module is not removed while `f` is used.
//! let f: extern "C" fn(i64, i64) -> i64 = unsafe { engine.get_function("f")? };
//! assert_eq!(f(5, 1), 75);
//!
//! engine.remove_module(main)?;
//! # Ok(())
//! # }
//! ```

pub mod analysis;
pub mod compiled;
pub mod debug;
pub mod emit;
#[cfg(feature = "emulate")]
pub mod emulate;
pub mod engine;
pub mod error;
pub mod executor;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod interp;
pub mod interrupt;
pub mod ir;
pub mod isa;
pub mod lazy;
pub mod link;
#[cfg(any(feature = "x86_64", feature = "aarch64"))]
pub mod lower;
pub mod memory;
pub mod opt;
pub mod regalloc;
pub mod registry;
pub mod reloc;
pub mod repl;
pub mod symbols;
pub mod trampoline;
pub mod value;
mod wide;

pub use engine::{Compile, Engine};
pub use error::{ChildExit, Diagnostic, Error, Result, Trap, TrapCode, TrapFrame};
pub use interrupt::InterruptHandle;
pub use value::Val;
