//! Source locations, kept beside the IR so that every error can point at
//! the offending token.
//!
//! The IR itself holds no locations: a [`SrcMap`] per function records where
//! each instruction, operand, block label and value definition came from.
//! Modules made with the builder have empty maps, and lookups then return
//! [`Loc::NONE`].

use super::entities::{Block, Inst, Value};
use smallvec::SmallVec;
use std::fmt;

/// A 1-based line and column in a source file. `Loc::NONE` (0:0) means
/// "no source" (built IR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub const NONE: Loc = Loc { line: 0, col: 0 };

    pub fn new(line: u32, col: u32) -> Self {
        Loc { line, col }
    }

    pub fn is_none(self) -> bool {
        self.line == 0
    }

    /// `self`, or `other` when `self` is `NONE`.
    pub fn or(self, other: Loc) -> Loc {
        if self.is_none() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Locations of one instruction's tokens.
///
/// `operands` follows the order of
/// [`InstData::operands`](super::InstData::operands) (value operands,
/// including block arguments, in textual order). `labels` holds the block
/// labels of a terminator in textual order (for `switch`: the default, then
/// each case). `keys` holds the switch case keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstLocs {
    /// The mnemonic token.
    pub inst: Loc,
    /// The result name (`%d`), if any.
    pub result: Loc,
    pub operands: SmallVec<[Loc; 3]>,
    pub labels: SmallVec<[Loc; 2]>,
    pub keys: Vec<Loc>,
    /// The `@sym` token of `addr` and direct `call`, or the offset / size
    /// literal of loads, stores and `alloca`.
    pub extra: Loc,
    /// The alignment literal of `alloca`.
    pub extra2: Loc,
}

/// Locations for one function. Every vector may be shorter than the
/// function's tables (empty for built IR); lookups fall back to `NONE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SrcMap {
    /// The function's `@name` token.
    pub func: Loc,
    /// The closing `}` of the body.
    pub end: Loc,
    pub insts: Vec<InstLocs>,
    /// The label token of each block.
    pub blocks: Vec<Loc>,
    /// The defining `%name` token of each value.
    pub values: Vec<Loc>,
    /// The type token of each function parameter.
    pub param_types: Vec<Loc>,
}

impl SrcMap {
    pub fn inst(&self, inst: Inst) -> Loc {
        self.insts.get(inst.index()).map_or(Loc::NONE, |l| l.inst)
    }

    /// Location of the `i`-th operand of `inst`, or of the instruction.
    pub fn operand(&self, inst: Inst, i: usize) -> Loc {
        match self.insts.get(inst.index()) {
            Some(l) => l.operands.get(i).copied().unwrap_or(Loc::NONE).or(l.inst),
            None => Loc::NONE,
        }
    }

    /// Location of the `i`-th block label of a terminator, or of the
    /// instruction.
    pub fn label(&self, inst: Inst, i: usize) -> Loc {
        match self.insts.get(inst.index()) {
            Some(l) => l.labels.get(i).copied().unwrap_or(Loc::NONE).or(l.inst),
            None => Loc::NONE,
        }
    }

    /// Location of the `i`-th switch key, or of the instruction.
    pub fn key(&self, inst: Inst, i: usize) -> Loc {
        match self.insts.get(inst.index()) {
            Some(l) => l.keys.get(i).copied().unwrap_or(Loc::NONE).or(l.inst),
            None => Loc::NONE,
        }
    }

    pub fn block(&self, block: Block) -> Loc {
        self.blocks.get(block.index()).copied().unwrap_or(Loc::NONE)
    }

    pub fn value(&self, value: Value) -> Loc {
        self.values.get(value.index()).copied().unwrap_or(Loc::NONE)
    }
}
