//! ISA-independent parts of lowering, shared by every backend in `isa/`.
//!
//! A backend is the small per-ISA remainder: its register table, its ABI
//! register counts, its instruction type and encoder. What every target does
//! the same way lives here, so the backends cannot drift apart:
//! - [`analysis`]: the per-function decisions (structure checks, use counts,
//!   compare fusion, address folding) that both code generators of each ISA
//!   read;
//! - [`abi`]: assigning call arguments to integer / float registers and
//!   8-byte stack slots, parameterized by each ISA's register counts.
//!
//! Invariant: nothing here knows an instruction encoding or a register name;
//! a backend passes in whatever differs (block order, register counts).

pub mod analysis;
