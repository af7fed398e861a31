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
//!   `integer overflow`).
//! - **host function**: a function of the embedding program that IR calls
//!   through an `extern func` declaration.

pub mod analysis;
pub mod compiled;
pub mod emit;
#[cfg(feature = "emulate")]
pub mod emulate;
pub mod error;
pub mod host;
pub mod interp;
pub mod ir;
pub mod isa;
pub mod link;
pub mod memory;
pub mod regalloc;
pub mod reloc;
pub mod value;

pub use error::{Diagnostic, Error, Result, TrapCode};
pub use value::Val;
