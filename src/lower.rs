//! ISA-independent parts of lowering, shared by every backend in `isa/`.
//!
//! A backend is the small per-ISA remainder: its register table, its ABI
//! register counts, its instruction type and encoder. What every target does
//! the same way lives here, so the backends cannot drift apart:
//! - [`analysis`]: the per-function decisions (structure checks, use counts,
//!   compare fusion, address folding) that both code generators of each ISA
//!   read;
//! - [`mfunc`]: the machine-function container `MFunc<I>` over the ISA's
//!   instruction type (the register allocator's [`crate::regalloc::RaFunction`]
//!   view) and the lowering driver: block layout with edge blocks for
//!   critical / block-argument edges, calling the backend's
//!   [`mfunc::IsaLower`] hooks for everything ISA-specific;
//! - [`place`]: appending a finished function (code, symbol, relocations,
//!   jump tables) to the compiled module;
//! - [`abi`]: assigning call arguments to integer / float registers and
//!   8-byte stack slots, parameterized by each ISA's register counts.
//!
//! Invariant: nothing here knows an instruction encoding or a register name;
//! a backend passes in whatever differs (block order, register counts).

pub mod abi;
pub mod analysis;
pub mod mfunc;
pub mod place;
