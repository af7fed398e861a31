//! The reference interpreter against SPEC sections 5–7: every instruction
//! with its edge cases, traps, calls (direct, indirect, across modules, to
//! host functions), deep recursion, memory, every link error, the `.kir`
//! file expectations, and robustness on malformed IR.

#[path = "interp/build.rs"]
mod build;
#[path = "interp/calls.rs"]
mod calls;
#[path = "interp/files.rs"]
mod files;
#[path = "interp/flow.rs"]
mod flow;
#[path = "interp/fuzz.rs"]
mod fuzz;
#[path = "interp/linking.rs"]
mod linking;
#[path = "interp/memory.rs"]
mod memory;
#[path = "interp/ops.rs"]
mod ops;
