//! The IR: a small typed SSA form with block parameters (SPEC sections 1–7).
//!
//! - [`types`]: `i32 i64 f32 f64` and signatures;
//! - [`entities`]: `u32` newtypes indexing a function's or module's tables;
//! - [`opcode`]: the one opcode table every pass reads;
//! - [`function`] / [`module`]: the data structures; [`names`]: interned
//!   value and block names; [`hash`]: the fast hasher for names;
//! - [`srcmap`]: token locations kept beside the IR for diagnostics;
//! - [`parse`] / [`print`](mod@print): the `.kir` text form;
//! - [`verify`]: every rule of the SPEC, with located errors;
//! - [`builder`]: building modules from Rust without text.

pub mod builder;
pub mod entities;
pub mod function;
pub mod hash;
mod lexer;
pub mod module;
pub mod names;
pub mod opcode;
pub mod parse;
pub mod print;
pub mod srcmap;
pub mod types;
pub mod verify;

pub use entities::{Block, DataId, FuncId, Inst, SymId, Value};
pub use function::{
    BlockCall, BlockData, BlockList, Callee, CaseList, Const, Function, InstData, InstKind,
    InstList, Int96, OpList, Operand, SwitchCase, ValueData, ValueDef, ValueList,
};
pub use module::{DataDef, DataValue, Linkage, Module, SymbolData, SymbolKind, DATA_ALIGN};
pub use names::{Name, Names};
pub use opcode::{Format, OpInfo, Opcode, OperandTy, ResultTy, Suffix, OPCODES};
pub use srcmap::{Loc, SrcMap, SrcMapBuilder};
pub use types::{ParamTypes, Signature, Type};
