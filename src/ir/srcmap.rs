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
/// A map is built with a [`SrcMapBuilder`] and stored in one vector of
/// [`Loc`]s (a parsed function's map is one allocation, freed once), in
/// three parts: each instruction's mnemonic location (its line and column,
/// what code generators ask for, in one array they read in a stream); the
/// function parameters' type tokens, the block labels and the value
/// definitions, in that order; then 32-bit words packed two to a `Loc`
/// (`line` the even word, `col` the odd one): per instruction the index
/// of its first token column among the words, then every token column.
/// Per instruction that is 12 bytes and 4 per token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SrcMap {
    /// The function's `@name` token.
    pub func: Loc,
    /// The closing `}` of the body.
    pub end: Loc,
    /// The mnemonics, the other locations, the packed words (see above).
    data: Vec<Loc>,
    num_insts: u32,
    num_params: u32,
    num_blocks: u32,
    /// Where the words start in `data` (after the values).
    words_at: u32,
    /// The number of words.
    num_words: u32,
}

impl SrcMap {
    /// Number of instructions with locations.
    pub fn num_insts(&self) -> usize {
        self.num_insts as usize
    }

    /// Word `j` (see the type's docs).
    fn word(&self, j: usize) -> Option<u32> {
        if j >= self.num_words as usize {
            return None;
        }
        let pair = self.data.get(self.words_at as usize + j / 2)?;
        Some(if j.is_multiple_of(2) {
            pair.line
        } else {
            pair.col
        })
    }

    /// The mnemonic's location of `inst` and the range of its token
    /// columns among the words.
    fn inst_cols(&self, inst: Inst) -> Option<(Loc, std::ops::Range<usize>)> {
        let i = inst.index();
        let mnemonic = *self.mnemonics().get(i)?;
        let start = self.word(i)? as usize;
        let end = match self.word(i + 1) {
            Some(e) if i + 1 < self.num_insts() => e as usize,
            _ => self.num_words as usize,
        };
        Some((mnemonic, start..end.max(start)))
    }

    /// The mnemonic of `inst` (code generators ask once per instruction).
    #[inline]
    pub fn inst(&self, inst: Inst) -> Loc {
        self.mnemonics()
            .get(inst.index())
            .copied()
            .unwrap_or(Loc::NONE)
    }

    /// The mnemonic of every instruction with a location, by instruction
    /// number (what [`SrcMap::inst`] reads: for a loop over many).
    #[inline]
    pub fn mnemonics(&self) -> &[Loc] {
        self.data.get(..self.num_insts as usize).unwrap_or(&[])
    }

    /// The `k`-th token after the mnemonic of `inst` (see the table above),
    /// or the mnemonic when there is no such token.
    pub fn token(&self, inst: Inst, k: usize) -> Loc {
        match self.inst_cols(inst) {
            Some((mnemonic, cols)) => match cols.start.checked_add(k) {
                Some(j) if j < cols.end => self
                    .word(j)
                    .map_or(mnemonic, |c| Loc::new(mnemonic.line, c)),
                _ => mnemonic,
            },
            None => Loc::NONE,
        }
    }

    /// The parameters' types, the labels and the values.
    fn locs(&self) -> &[Loc] {
        self.data
            .get(self.num_insts as usize..self.words_at as usize)
            .unwrap_or(&[])
    }

    /// The type tokens of the function parameters.
    pub fn param_types(&self) -> &[Loc] {
        &self.locs()[..self.num_params as usize]
    }

    /// The label tokens of the blocks.
    pub fn blocks(&self) -> &[Loc] {
        let p = self.num_params as usize;
        &self.locs()[p..p + self.num_blocks as usize]
    }

    /// The defining token of each value.
    pub fn values(&self) -> &[Loc] {
        &self.locs()[(self.num_params + self.num_blocks) as usize..]
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
        self.data.is_empty()
    }

    /// A builder holding this map, to append to and build again (a pass
    /// that adds instructions, values or blocks); linear in the map.
    pub fn to_builder(&self) -> SrcMapBuilder {
        let ni = self.num_insts();
        let nw = self.num_words as usize;
        let words = (0..nw).filter_map(|j| self.word(j));
        let base = ni as u32;
        SrcMapBuilder {
            func: self.func,
            end: self.end,
            insts: self.mnemonics().to_vec(),
            starts: words.clone().take(ni).map(|s| s - base).collect(),
            cols: words.skip(ni).collect(),
            param_types: self.param_types().to_vec(),
            blocks: self.blocks().to_vec(),
            values: self.values().to_vec(),
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<Loc>()
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
                    self.cols.extend(cols.filter_map(|j| from.word(j)));
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
        let nl = self.param_types.len() + self.blocks.len() + self.values.len();
        let nw = ni + self.cols.len();
        let mut data = Vec::with_capacity(ni + nl + nw.div_ceil(2));
        data.extend_from_slice(&self.insts);
        data.extend_from_slice(&self.param_types);
        data.extend_from_slice(&self.blocks);
        data.extend_from_slice(&self.values);
        // The words, two to a `Loc` (the last one's odd half 0 when their
        // number is odd).
        let b = ni as u32;
        // Each `extend` from its own `chunks_exact`, not `by_ref()` then
        // `remainder()`: the `fold` of a `&mut` iterator is not `#[inline]`,
        // and LLVM inlined it or not depending on unrelated code elsewhere
        // in the crate (+80 Ir per function when not).
        let starts = self.starts.chunks_exact(2);
        data.extend(starts.map(|s| Loc::new(s[0] + b, s[1] + b)));
        let mut cols = self.cols.as_slice();
        if let [s] = self.starts.chunks_exact(2).remainder() {
            let (&c, rest) = cols.split_first().unwrap_or((&0, &[]));
            data.push(Loc::new(s + b, c));
            cols = rest;
        }
        data.extend(cols.chunks_exact(2).map(|c| Loc::new(c[0], c[1])));
        if let [c] = cols.chunks_exact(2).remainder() {
            data.push(Loc::new(*c, 0));
        }
        SrcMap {
            func: self.func,
            end: self.end,
            data,
            num_insts: ni as u32,
            num_params: self.param_types.len() as u32,
            num_blocks: self.blocks.len() as u32,
            words_at: (ni + nl) as u32,
            num_words: nw as u32,
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

    /// A map with `ni` instructions of `per` tokens each (odd and even
    /// numbers of instructions and words) and two of each other location.
    fn map_of(ni: u32, per: u32) -> (SrcMapBuilder, SrcMap) {
        let mut b = SrcMapBuilder {
            func: Loc::new(1, 6),
            end: Loc::new(ni + 3, 1),
            ..SrcMapBuilder::default()
        };
        b.push_param_type(Loc::new(1, 10));
        b.push_param_type(Loc::new(1, 20));
        b.push_block(Loc::new(2, 1));
        b.push_block(Loc::new(3, 1));
        b.push_value(Loc::new(1, 8));
        b.push_value(Loc::new(1, 18));
        for i in 0..ni {
            b.start_inst(Loc::new(i + 2, 5));
            for k in 0..per + i % 2 {
                b.push_token(Loc::new(i + 2, 10 + 4 * k));
            }
        }
        let m = b.build();
        (b, m)
    }

    #[test]
    fn every_location_reads_back_from_the_packed_map() {
        for ni in 0..6 {
            for per in 0..3 {
                let (b, m) = map_of(ni, per);
                assert_eq!(m.num_insts(), ni as usize);
                assert_eq!(m.param_types(), [Loc::new(1, 10), Loc::new(1, 20)]);
                assert_eq!(m.blocks(), [Loc::new(2, 1), Loc::new(3, 1)]);
                assert_eq!(m.values(), [Loc::new(1, 8), Loc::new(1, 18)]);
                for i in 0..ni {
                    let inst = Inst(i);
                    assert_eq!(m.inst(inst), Loc::new(i + 2, 5));
                    for k in 0..per + i % 2 {
                        assert_eq!(m.token(inst, k as usize), Loc::new(i + 2, 10 + 4 * k));
                    }
                    // Past its tokens: the mnemonic.
                    assert_eq!(m.token(inst, (per + i % 2) as usize), m.inst(inst));
                }
                assert_eq!(m.inst(Inst(ni)), Loc::NONE);
                assert_eq!(m.token(Inst(ni), 0), Loc::NONE);
                // Rebuilding and copying instruction by instruction give
                // the same map.
                assert_eq!(m.to_builder().build(), m);
                let mut c = SrcMapBuilder::default();
                (c.func, c.end) = (b.func, b.end);
                c.param_types = b.param_types.clone();
                c.blocks = b.blocks.clone();
                c.values = b.values.clone();
                for i in 0..ni {
                    c.push_inst_from(&m, Inst(i), true);
                }
                assert_eq!(c.build(), m);
                // One allocation of 8 bytes per mnemonic and location and
                // 4 per word.
                let words = (ni + per * ni + ni / 2) as usize;
                assert_eq!(
                    m.heap_bytes(),
                    8 * (ni as usize + 6) + 4 * words.next_multiple_of(2)
                );
            }
        }
    }
}
