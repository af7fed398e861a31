//! Source locations, kept beside the IR so that every error can point at
//! the offending token.
//!
//! The IR itself holds no locations: a [`SrcMap`] per function records where
//! each instruction, its tokens, each block label and each value definition
//! came from. Modules made with the builder have empty maps, and lookups
//! then return [`Loc::NONE`].
//!
//! Compact form: an instruction and all its tokens are on one line (the
//! grammar ends an instruction at the newline), so an instruction stores its
//! line once and then one column per token, in a flat array. Which token is
//! the `i`-th operand, label or key follows from the instruction's form and
//! operand counts; [`Function::operand_loc`] and its siblings do that
//! arithmetic.

use super::entities::{Block, Inst, Value};
use super::function::{Callee, Function, InstKind};
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

/// Locations for one function. Every table may be shorter than the
/// function's (empty for built IR); lookups fall back to `NONE`.
///
/// The tokens recorded after an instruction's mnemonic, in textual order
/// (`[...]` when written):
///
/// | form | tokens |
/// |---|---|
/// | unary, binary, select | the operands |
/// | `load` | `p [off]` |
/// | `store` | `v p [off]` |
/// | `alloca` | `N [A]` |
/// | `addr` | `@sym` |
/// | `call` | `@f` or `%fp`, then the arguments |
/// | `ret` | `[v]` |
/// | `jmp` | `L`, its arguments |
/// | `br` | `c`, `L1`, its arguments, `L2`, its arguments |
/// | `switch` | `v Ldefault`, then `K L` per case |
///
/// A map is built with a [`SrcMapBuilder`] and stored in three vectors (a
/// parsed function's map costs three allocations): `insts` holds each
/// instruction's mnemonic location (its line and column, what code
/// generators ask for, in one array they read in a stream); `words` holds,
/// per instruction, the index of its first token column, then every token
/// column; `locs` holds the function parameters' type tokens, the block
/// labels and the value definitions, in that order. Per instruction that
/// is 12 bytes and 4 per token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SrcMap {
    /// The function's `@name` token.
    pub func: Loc,
    /// The closing `}` of the body.
    pub end: Loc,
    /// The mnemonic's location per instruction.
    insts: Vec<Loc>,
    /// The index of the first token column per instruction, then the
    /// token columns (the mnemonic's is in `insts`).
    words: Vec<u32>,
    locs: Vec<Loc>,
    num_params: u32,
    num_blocks: u32,
}

impl SrcMap {
    /// Number of instructions with locations.
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }

    /// The mnemonic's location and the token columns of `inst`.
    fn inst_cols(&self, inst: Inst) -> Option<(Loc, &[u32])> {
        let i = inst.index();
        let mnemonic = *self.insts.get(i)?;
        let start = *self.words.get(i)? as usize;
        let end = match self.words.get(i + 1) {
            Some(&e) if i + 1 < self.num_insts() => e as usize,
            _ => self.words.len(),
        };
        Some((mnemonic, self.words.get(start..end)?))
    }

    /// The mnemonic of `inst` (code generators ask once per instruction).
    #[inline]
    pub fn inst(&self, inst: Inst) -> Loc {
        self.insts.get(inst.index()).copied().unwrap_or(Loc::NONE)
    }

    /// The mnemonic of every instruction with a location, by instruction
    /// number (what [`SrcMap::inst`] reads: for a loop over many).
    #[inline]
    pub fn mnemonics(&self) -> &[Loc] {
        &self.insts
    }

    /// The `k`-th token after the mnemonic of `inst` (see the table above),
    /// or the mnemonic when there is no such token.
    pub fn token(&self, inst: Inst, k: usize) -> Loc {
        match self.inst_cols(inst) {
            Some((mnemonic, cols)) => match cols.get(k) {
                Some(&c) => Loc::new(mnemonic.line, c),
                None => mnemonic,
            },
            None => Loc::NONE,
        }
    }

    /// The type tokens of the function parameters.
    pub fn param_types(&self) -> &[Loc] {
        &self.locs[..self.num_params as usize]
    }

    /// The label tokens of the blocks.
    pub fn blocks(&self) -> &[Loc] {
        let p = self.num_params as usize;
        &self.locs[p..p + self.num_blocks as usize]
    }

    /// The defining token of each value.
    pub fn values(&self) -> &[Loc] {
        &self.locs[(self.num_params + self.num_blocks) as usize..]
    }

    pub fn block(&self, block: Block) -> Loc {
        self.blocks()
            .get(block.index())
            .copied()
            .unwrap_or(Loc::NONE)
    }

    pub fn value(&self, value: Value) -> Loc {
        self.values()
            .get(value.index())
            .copied()
            .unwrap_or(Loc::NONE)
    }

    /// Whether the map holds no location at all (built IR).
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty() && self.locs.is_empty()
    }

    /// A builder holding this map, to append to and build again (a pass
    /// that adds instructions, values or blocks); linear in the map.
    pub fn to_builder(&self) -> SrcMapBuilder {
        let ni = self.num_insts();
        let base = ni as u32;
        SrcMapBuilder {
            func: self.func,
            end: self.end,
            insts: self.insts.clone(),
            starts: self.words[..ni].iter().map(|&s| s - base).collect(),
            cols: self.words[ni..].to_vec(),
            param_types: self.param_types().to_vec(),
            blocks: self.blocks().to_vec(),
            values: self.values().to_vec(),
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.insts.capacity() * 8 + self.words.capacity() * 4 + self.locs.capacity() * 8
    }
}

/// Collects a [`SrcMap`] while a function is read, in vectors that a
/// parser reuses from one function to the next.
#[derive(Clone, Debug, Default)]
pub struct SrcMapBuilder {
    /// The function's `@name` token.
    pub func: Loc,
    /// The closing `}` of the body.
    pub end: Loc,
    /// The mnemonic's location per instruction.
    insts: Vec<Loc>,
    /// The index in `cols` of each instruction's first token column.
    starts: Vec<u32>,
    /// The token columns.
    cols: Vec<u32>,
    param_types: Vec<Loc>,
    blocks: Vec<Loc>,
    values: Vec<Loc>,
}

impl SrcMapBuilder {
    /// Starts the next instruction's locations at its mnemonic `loc`
    /// (instructions are recorded in `Inst` order).
    #[inline]
    pub fn start_inst(&mut self, loc: Loc) {
        self.insts.push(loc);
        self.starts.push(self.cols.len() as u32);
    }

    /// Records the next token of the current instruction (its line is the
    /// instruction's).
    #[inline]
    pub fn push_token(&mut self, loc: Loc) {
        self.cols.push(loc.col);
    }

    /// Records instruction `inst` of `from` as the next instruction: its
    /// mnemonic and, when `tokens`, its token columns (a pass that changes
    /// an instruction's operands passes `false`: every operand then points
    /// at the mnemonic). An instruction `from` has no location for gets
    /// none.
    pub fn push_inst_from(&mut self, from: &SrcMap, inst: Inst, tokens: bool) {
        match from.inst_cols(inst) {
            Some((mnemonic, cols)) => {
                self.start_inst(mnemonic);
                if tokens {
                    self.cols.extend_from_slice(cols);
                }
            }
            None => self.start_inst(Loc::NONE),
        }
    }

    /// Number of instructions recorded.
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }

    /// Records the type token of the next function parameter.
    pub fn push_param_type(&mut self, loc: Loc) {
        self.param_types.push(loc);
    }

    /// Records the label token of the next block.
    pub fn push_block(&mut self, loc: Loc) {
        self.blocks.push(loc);
    }

    /// Records the defining token of the next value.
    #[inline]
    pub fn push_value(&mut self, loc: Loc) {
        self.values.push(loc);
    }

    /// Makes room for `more / n` times as many instructions, token
    /// columns, blocks and values again as recorded so far (see
    /// [`crate::ir::names::Names::reserve_ratio`]).
    pub(crate) fn reserve_ratio(&mut self, more: usize, n: usize) {
        let n = n.max(1);
        let grow = |len: usize| len.saturating_mul(more) / n + 1;
        self.insts.reserve(grow(self.insts.len()));
        self.starts.reserve(grow(self.starts.len()));
        self.cols.reserve(grow(self.cols.len()));
        self.blocks.reserve(grow(self.blocks.len()));
        self.values.reserve(grow(self.values.len()));
    }

    /// Removes everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.func = Loc::NONE;
        self.end = Loc::NONE;
        self.insts.clear();
        self.starts.clear();
        self.cols.clear();
        self.param_types.clear();
        self.blocks.clear();
        self.values.clear();
    }

    /// The map collected so far, at its exact size; the builder keeps its
    /// buffers (and its contents).
    pub fn build(&self) -> SrcMap {
        let ni = self.insts.len();
        let mut words = Vec::with_capacity(ni + self.cols.len());
        words.extend(self.starts.iter().map(|&s| s + ni as u32));
        words.extend_from_slice(&self.cols);
        let mut locs =
            Vec::with_capacity(self.param_types.len() + self.blocks.len() + self.values.len());
        locs.extend_from_slice(&self.param_types);
        locs.extend_from_slice(&self.blocks);
        locs.extend_from_slice(&self.values);
        SrcMap {
            func: self.func,
            end: self.end,
            insts: self.insts.clone(),
            words,
            locs,
            num_params: self.param_types.len() as u32,
            num_blocks: self.blocks.len() as u32,
        }
    }
}

/// Which token of an instruction: see the table of [`SrcMap`].
const NO_TOKEN: usize = usize::MAX;

impl Function {
    fn then_args(&self, inst: Inst) -> usize {
        match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Br { then_dest, .. }) => then_dest.args.len(),
            _ => 0,
        }
    }

    fn token_loc(&self, inst: Inst, k: usize) -> Loc {
        if k == NO_TOKEN {
            self.srcmap.inst(inst)
        } else {
            self.srcmap.token(inst, k)
        }
    }

    /// The location of the `i`-th value operand of `inst` (in
    /// [`Function::operands`] order), or of the instruction.
    pub fn operand_loc(&self, inst: Inst, i: usize) -> Loc {
        let k = match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Call {
                callee: Callee::Direct(_),
                ..
            }) => i + 1,
            Some(InstKind::Jmp { .. }) => i + 1,
            Some(InstKind::Br { .. }) => match i {
                0 => 0,
                _ if i - 1 < self.then_args(inst) => i + 1,
                _ => i + 2,
            },
            Some(InstKind::Switch { .. }) if i > 0 => NO_TOKEN,
            Some(_) => i,
            None => NO_TOKEN,
        };
        self.token_loc(inst, k)
    }

    /// The location of the `i`-th block label of a terminator (for
    /// `switch`: the default, then each case), or of the instruction.
    pub fn label_loc(&self, inst: Inst, i: usize) -> Loc {
        let k = match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Jmp { .. }) if i == 0 => 0,
            Some(InstKind::Br { .. }) if i == 0 => 1,
            Some(InstKind::Br { .. }) if i == 1 => 2 + self.then_args(inst),
            Some(InstKind::Switch { .. }) if i == 0 => 1,
            Some(InstKind::Switch { .. }) => 1 + 2 * i,
            _ => NO_TOKEN,
        };
        self.token_loc(inst, k)
    }

    /// The location of the `i`-th case key of a `switch`, or of the
    /// instruction.
    pub fn key_loc(&self, inst: Inst, i: usize) -> Loc {
        let k = match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Switch { .. }) => 2 + 2 * i,
            _ => NO_TOKEN,
        };
        self.token_loc(inst, k)
    }

    /// The `@sym` token of `addr` and direct `call`, the offset literal of
    /// loads and stores, the size literal of `alloca`; or the instruction.
    pub fn extra_loc(&self, inst: Inst) -> Loc {
        let k = match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Load { .. }) => 1,
            Some(InstKind::Store { .. }) => 2,
            Some(InstKind::Alloca { .. } | InstKind::Addr { .. }) => 0,
            Some(InstKind::Call {
                callee: Callee::Direct(_),
                ..
            }) => 0,
            _ => NO_TOKEN,
        };
        self.token_loc(inst, k)
    }

    /// The alignment literal of `alloca`, or the instruction.
    pub fn extra2_loc(&self, inst: Inst) -> Loc {
        let k = match self.insts.get(inst.index()).map(|d| &d.kind) {
            Some(InstKind::Alloca { .. }) => 1,
            _ => NO_TOKEN,
        };
        self.token_loc(inst, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inst_is_the_mnemonic_of_each_instruction() {
        // Instructions with tokens, without, and one past the last.
        let mut b = SrcMapBuilder::default();
        b.start_inst(Loc::new(3, 5));
        b.push_token(Loc::new(3, 9));
        b.push_token(Loc::new(3, 13));
        b.start_inst(Loc::new(4, 5));
        b.start_inst(Loc::new(7, 2));
        b.push_token(Loc::new(7, 8));
        let m = b.build();
        let want = [Loc::new(3, 5), Loc::new(4, 5), Loc::new(7, 2)];
        for (i, &w) in want.iter().enumerate() {
            assert_eq!(m.inst(Inst(i as u32)), w);
            assert_eq!(m.token(Inst(i as u32), usize::MAX - 1), w);
        }
        assert_eq!(m.token(Inst(0), 1), Loc::new(3, 13));
        assert_eq!(m.inst(Inst(3)), Loc::NONE);
        assert_eq!(SrcMap::default().inst(Inst(0)), Loc::NONE);
    }
}
