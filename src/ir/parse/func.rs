//! Function bodies: the signature, block labels with their parameters, and
//! instructions.
//!
//! Names resolve through the function's interned [`Names`]: a name's index
//! selects its value (or block) in a dense array, `NONE` until defined. A
//! use before the definition gets a placeholder id counted down from
//! `u32::MAX` and the instruction is remembered; after the closing `}` only
//! those instructions are patched.
//!
//! The commonest instruction lines take a fast path ([`fast`]).

mod fast;
#[cfg(test)]
pub(super) use fast::{FAST_HEADERS, FAST_LINES};

use super::super::entities::{Block, FuncId, Inst, Value};
use super::super::function::{
    BlockCall, BlockData, BlockList, Callee, CaseList, Const, Function, InstData, InstKind,
    InstList, Int96, OpList, Operand, SwitchCase, ValueData, ValueDef, ValueList,
};
use super::super::names::{numbered, Name, Names};
use super::super::opcode::{Format, Opcode, ResultTy, Suffix};
use super::super::srcmap::{Loc, SrcMapBuilder};
use super::super::types::{Signature, Type};
use super::{is_float_word, parse_f64, parse_int, shorten, Parser, Result, SymRef, SymSite};
use crate::ir::lexer::{skip_spaces, TokKind, Token};
use crate::ir::module::{Linkage, SymbolKind};

/// Values, blocks and symbols used before their definition get placeholder
/// ids counted down from `u32::MAX`; real ids stay below this bound.
const PLACEHOLDER_MIN: u32 = 1 << 31;

const NONE: u32 = u32::MAX;

/// Instructions of a function after which its tables are reserved ahead
/// (see [`Parser::reserve_ahead`]) rather than doubled.
const RESERVE_FROM: usize = 128;

/// The function being parsed: its tables, in vectors kept across functions
/// (cleared, not freed), and the name resolution state.
#[derive(Default)]
pub(super) struct FuncScratch {
    params: Vec<Value>,
    blocks: Vec<BlockData>,
    insts: Vec<InstData>,
    values: Vec<ValueData>,
    arg_pool: Vec<Operand>,
    case_pool: Vec<SwitchCase>,
    names: Names,
    srcmap: SrcMapBuilder,
    /// Per name: the value it defines, or `NONE`.
    value_of: Vec<u32>,
    /// Per name: the block it labels, or `NONE`.
    block_of: Vec<u32>,
    /// Name and location of each use of a value not yet defined; the use
    /// holds `Value(u32::MAX - index)`.
    fwd_values: Vec<(Name, Loc)>,
    /// The same for block labels.
    fwd_blocks: Vec<(Name, Loc)>,
    /// Instructions holding value / block placeholders.
    fwd_value_insts: Vec<Inst>,
    fwd_block_insts: Vec<Inst>,
    /// Whether the instruction being parsed holds a placeholder.
    inst_fwd_value: bool,
    inst_fwd_block: bool,
    /// The block instructions go to, and its first instruction.
    cur: Option<(Block, usize)>,
    /// Byte offset of the function in the text (see
    /// [`Parser::reserve_ahead`]).
    start: usize,
    /// A small cache in front of `names` for short names (see
    /// [`ShortNames`]).
    short: ShortNames,
    /// Where the first word of the last line that [`Parser::fast_lines`]
    /// could not read starts (after a `%`): the fast paths are not tried
    /// again on its token (`usize::MAX`, or an offset of an earlier text,
    /// when none).
    declined: usize,
    /// The mnemonics the fast path has read (never cleared: see
    /// [`fast::Mnemonics`]).
    mnemonics: fast::Mnemonics,
}

/// Slots of [`ShortNames`] (a power of two) and how many it fills before
/// it stops caching: enough for the test corpus's larger hand-written
/// functions (up to ~150 names), which used to spill to [`Names`] past
/// 48 names (four in ten of the corpus's names were found by hashing).
const SHORT_SLOTS: usize = 1024;
const SHORT_MAX: usize = 768;
// Slot indices are kept as `u16` (`ShortNames::used`), and a full cache
// still has empty slots (lookups end at one).
const _: () = assert!(SHORT_SLOTS <= 1 << 16 && SHORT_MAX < SHORT_SLOTS);

/// An open-addressing table from a short name's bytes, packed into one
/// word, to its [`Name`]: the names of a small function (`%a`, `%x1`,
/// `entry`) found with one multiply and one comparison of integers instead
/// of a hash of the text and a comparison with the interned copy. It holds
/// at most [`SHORT_MAX`] names; past that (a large function) it is
/// bypassed and every name goes to [`Names`], which holds them all anyway.
struct ShortNames {
    /// `(key, name index + 1)`; key 0 is an empty slot. [`SHORT_SLOTS`]
    /// of them once [`ShortNames::clear`] has run, none before.
    slots: Box<[(u64, u32)]>,
    len: usize,
    /// [`SHORT_MAX`] once the slots are there, 0 before: the cache is in
    /// use while `len < limit` (one comparison).
    limit: usize,
    /// The slots filled, in order (the first `len`): clearing empties
    /// those rather than all [`SHORT_SLOTS`], as most functions fill a few.
    /// [`SHORT_MAX`] of them once [`ShortNames::clear`] has run.
    used: Box<[u16]>,
}

impl Default for ShortNames {
    /// An empty cache without its slots (allocated by the first
    /// [`ShortNames::clear`]): a module without functions (or a thread's
    /// first, see [`FuncScratch::take_cached`]) never needs them.
    fn default() -> Self {
        ShortNames {
            slots: Box::new([]),
            len: 0,
            limit: 0,
            used: Box::new([]),
        }
    }
}

impl ShortNames {
    /// The key of `text` when it has 1 to 7 bytes: its bytes, little-endian,
    /// with the length in the top byte (so no key is 0).
    #[inline]
    fn key(text: &str) -> Option<u64> {
        let b = text.as_bytes();
        if b.is_empty() || b.len() > 7 {
            return None;
        }
        let mut w = (b.len() as u64) << 56;
        for (i, &c) in b.iter().enumerate() {
            w |= (c as u64) << (8 * i);
        }
        Some(w)
    }

    /// The key of the name `b[start..start + len]` (see [`Self::key`]),
    /// read as one word when `b` has eight bytes from `start` (the name's
    /// and the ones after it, masked off), else byte by byte.
    #[inline]
    fn key_at(b: &[u8], start: usize, len: usize) -> Option<u64> {
        if len == 0 || len > 7 {
            return None;
        }
        let Some(word) = b.get(start..start.checked_add(8)?) else {
            let text = std::str::from_utf8(b.get(start..start + len)?).ok()?;
            return Self::key(text);
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        Some(u64::from_le_bytes(w) & ((1u64 << (8 * len)) - 1) | (len as u64) << 56)
    }

    /// What [`name_syntax`](crate::ir::names::name_syntax) says of the
    /// name of `key`, a name of name characters (as the lexer reads them):
    /// one that starts with a digit is a value name when all of it is
    /// digits and never a label; any other is both. The digits are found
    /// all at once, as in [`numbered`].
    #[inline]
    fn key_syntax(key: u64) -> (bool, bool) {
        const LOW: u64 = 0x0101_0101_0101_0101;
        let len = (key >> 56) as usize;
        let mask = (1u64 << (8 * len)) - 1;
        // Name characters are ASCII: below 0x80 after the xor, so the add
        // carries out of no byte; a byte's top bit set marks a non-digit.
        let x = (key & mask) ^ (0x30 * LOW);
        let non_digit = (x + 0x76 * LOW) & (0x80 * LOW) & mask;
        if non_digit & 0x80 == 0 {
            (false, non_digit == 0)
        } else {
            (true, true)
        }
    }

    #[inline]
    fn slot(key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHORT_SLOTS.trailing_zeros())) as usize
    }

    /// Whether the cache is in use: it has its slots and is not full.
    #[inline]
    fn active(&self) -> bool {
        debug_assert!(self.limit == 0 || self.slots.len() == SHORT_SLOTS);
        self.len < self.limit
    }

    /// The cached name of `key`, or the slot where it would go (`None` when
    /// the table is full).
    #[inline]
    fn find(&self, key: u64) -> std::result::Result<u32, Option<usize>> {
        if !self.active() {
            return Err(None);
        }
        let mut i = Self::slot(key);
        loop {
            let (k, id1) = self.slots[i];
            if k == key {
                return Ok(id1 - 1);
            }
            if k == 0 {
                return Err(Some(i));
            }
            i = (i + 1) % SHORT_SLOTS;
        }
    }

    /// The cached name written at byte `p` of `b` (after its `%`), and the
    /// byte after it, when the name has 1 to 7 bytes and ends at a byte
    /// below `.` other than `$` (a space, `,`, a newline...), read as one
    /// word. Exact: the bytes before that end are a cached name's only if
    /// they are that name (cached names are all name characters), and the
    /// end byte is no name character, so the lexer ends the name there too.
    #[inline]
    fn find_at(&self, b: &[u8], p: usize) -> Option<(Name, usize)> {
        const LOW: u64 = 0x0101_0101_0101_0101;
        if !self.active() {
            return None;
        }
        let word = b.get(p..p.checked_add(8)?)?;
        let w = u64::from_le_bytes(word.try_into().ok()?);
        // The lowest byte below 0x2e (exact for the first one: the borrow
        // only reaches the bytes above it; bytes from 0x80 are not marked).
        let low = w.wrapping_sub(0x2e * LOW) & !w & (0x80 * LOW);
        if low == 0 {
            return None;
        }
        let len = low.trailing_zeros() as usize / 8;
        if len == 0 || b[p + len] == b'$' {
            return None;
        }
        let key = w & ((1u64 << (8 * len)) - 1) | (len as u64) << 56;
        match self.find(key) {
            Ok(id) => Some((Name::from_index(id as usize), p + len)),
            Err(_) => None,
        }
    }

    fn clear(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![(0, 0); SHORT_SLOTS].into_boxed_slice();
            self.used = vec![0; SHORT_MAX].into_boxed_slice();
            self.limit = SHORT_MAX;
        } else {
            for &i in &self.used[..self.len] {
                self.slots[i as usize] = (0, 0);
            }
        }
        self.len = 0;
    }
}

thread_local! {
    /// The buffers of the last module parsed on this thread (when small):
    /// a module of one small function would otherwise spend as much time
    /// growing fresh vectors as parsing.
    /// `None` until the first module is done, and while one is parsed.
    static CACHED: std::cell::RefCell<Option<FuncScratch>> = const { std::cell::RefCell::new(None) };
}

/// Most names (and so entries of `value_of`) of a scratch kept for the
/// next module: a large function's buffers are freed.
const CACHE_MAX_NAMES: usize = 4096;

impl FuncScratch {
    /// This thread's cached buffers (empty if none).
    /// Moved out, not swapped with a default one: a file costs one move of
    /// the scratch each way, and nothing is built or dropped.
    pub(super) fn take_cached() -> FuncScratch {
        CACHED
            .try_with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.take()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Keeps these buffers for the next module parsed on this thread, unless
    /// they are large.
    pub(super) fn cache(self) {
        if self.value_of.capacity() > CACHE_MAX_NAMES
            || self.insts.capacity() > CACHE_MAX_NAMES
            || self.values.capacity() > CACHE_MAX_NAMES
            || self.arg_pool.capacity() > CACHE_MAX_NAMES
        {
            return;
        }
        let _ = CACHED.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                *c = Some(self);
            }
        });
    }

    fn clear(&mut self) {
        self.params.clear();
        self.blocks.clear();
        self.insts.clear();
        self.values.clear();
        self.arg_pool.clear();
        self.case_pool.clear();
        self.names.clear();
        self.srcmap.clear();
        self.value_of.clear();
        self.block_of.clear();
        self.fwd_values.clear();
        self.fwd_blocks.clear();
        self.fwd_value_insts.clear();
        self.fwd_block_insts.clear();
        self.cur = None;
        self.declined = usize::MAX;
        self.short.clear();
    }

    /// Interns a name, growing the resolution arrays with it.
    #[inline]
    fn name(&mut self, text: &str) -> Name {
        // A full cache (a large function) is passed by without even
        // computing the key.
        let key = self.short.active().then(|| ShortNames::key(text)).flatten();
        self.name_keyed(text, key)
    }

    /// [`Self::name`] for `text` with its [`ShortNames`] key, if it has one
    /// and the cache is in use. Inlined into both callers: a call more per
    /// name cost more than the word-sized key saves.
    #[inline(always)]
    fn name_keyed(&mut self, text: &str, key: Option<u64>) -> Name {
        if let Some(key) = key {
            match self.short.find(key) {
                Ok(id) => return Name::from_index(id as usize),
                Err(Some(i)) => {
                    // Every short name of this function so far is in the
                    // cache (it was never full): this one is new.
                    let n = self
                        .names
                        .push_new_short(text, key, ShortNames::key_syntax(key));
                    self.value_of.push(NONE);
                    self.block_of.push(NONE);
                    self.short.slots[i] = (key, n.index() as u32 + 1);
                    // `i < SHORT_SLOTS <= 2^16`; `len < SHORT_MAX` while active.
                    self.short.used[self.short.len] = i as u16;
                    self.short.len += 1;
                    return n;
                }
                Err(None) => {}
            }
        }
        self.intern_new(text)
    }

    /// [`Self::name`] for the name `text`, which is `src[start..]`: its key
    /// is read as one word, and a large function's numbered names (see
    /// [`numbered`]) are found without reading their text again.
    #[inline]
    fn name_in(&mut self, src: &str, start: usize, text: &str) -> Name {
        debug_assert_eq!(src.get(start..start + text.len()), Some(text));
        if !self.short.active() {
            if let Some(num) = numbered(src.as_bytes(), start, start + text.len()) {
                let n = self.names.intern_numbered(text, num);
                if n.index() >= self.value_of.len() {
                    self.value_of.push(NONE);
                    self.block_of.push(NONE);
                }
                return n;
            }
            return self.intern_new(text);
        }
        self.name_keyed(text, ShortNames::key_at(src.as_bytes(), start, text.len()))
    }

    /// [`Self::name`] for the name `text`, which is `src[start..]`: its key
    /// is read as one word. For definitions and labels, whose names are
    /// mostly new: a large function interns them as [`Self::name`] does
    /// (finding a new name's group through [`numbered`] costs more than
    /// it saves; uses go through [`Self::name_in`]).
    #[inline]
    fn name_at(&mut self, src: &str, start: usize, text: &str) -> Name {
        debug_assert_eq!(src.get(start..start + text.len()), Some(text));
        if !self.short.active() {
            return self.intern_new(text);
        }
        self.name_keyed(text, ShortNames::key_at(src.as_bytes(), start, text.len()))
    }

    /// [`Self::name`] without the cache.
    fn intern_new(&mut self, text: &str) -> Name {
        let n = self.names.intern(text);
        if n.index() >= self.value_of.len() {
            self.value_of.push(NONE);
            self.block_of.push(NONE);
        }
        n
    }

    fn args_since(&self, start: usize) -> OpList {
        OpList::new(start, self.arg_pool.len() - start)
    }

    fn cases_since(&self, start: usize) -> CaseList {
        CaseList::new(start, self.case_pool.len() - start)
    }

    fn new_value(&mut self, ty: Type, def: ValueDef, name: Option<Name>) -> Value {
        let v = Value::new(self.values.len());
        self.values.push(ValueData { ty, def, name });
        v
    }

    /// Ends the current block: its instructions are the ones since its
    /// label.
    fn close_block(&mut self) {
        if let Some((b, first)) = self.cur.take() {
            self.blocks[b.index()].insts = inst_range(first, self.insts.len());
        }
    }

    /// The finished function, at its exact size (see [`take_exact`]).
    fn take_function(&mut self, name: &str, sig: Signature) -> Function {
        self.close_block();
        Function {
            name: name.to_string(),
            sig,
            params: ValueList::from_slice(&self.params),
            blocks: take_blocks(&mut self.blocks),
            insts: take_exact(&mut self.insts),
            values: take_exact(&mut self.values),
            arg_pool: take_exact(&mut self.arg_pool),
            case_pool: take_exact(&mut self.case_pool),
            names: self.names.take_compact(),
            srcmap: self.srcmap.build(),
        }
    }
}

/// The instructions `first..end` as a block's list: built in place when
/// they fit inline (most blocks), rather than through a generic `collect`.
fn inst_range(first: usize, end: usize) -> InstList {
    let n = end.saturating_sub(first);
    if n > 4 {
        return InstList::from_vec((first..end).map(Inst::new).collect());
    }
    // All four slots are filled, without a loop; those past `n` are not
    // part of the list (and may wrap: they are never read).
    let f = first as u32;
    let buf = [
        Inst(f),
        Inst(f.wrapping_add(1)),
        Inst(f.wrapping_add(2)),
        Inst(f.wrapping_add(3)),
    ];
    InstList::from_buf_and_len(buf, n)
}

/// The blocks of the scratch, moved out (the scratch keeps its buffer):
/// a single block goes inline, more are moved into one exact-size vector
/// that the list takes over.
fn take_blocks(blocks: &mut Vec<BlockData>) -> BlockList {
    if blocks.len() <= 1 {
        let mut list = BlockList::new();
        if let Some(b) = blocks.pop() {
            list.push(b);
        }
        list
    } else {
        let mut v = Vec::with_capacity(blocks.len());
        v.append(blocks);
        BlockList::from_vec(v)
    }
}

/// `v`'s contents at their exact size: a small vector is copied (the
/// scratch keeps its capacity for the next function), a large one moved
/// out and shrunk in place (no copy of a big function's tables).
fn take_exact<T: Clone>(v: &mut Vec<T>) -> Vec<T> {
    if v.len() >= 4096 {
        let mut out = std::mem::take(v);
        out.shrink_to_fit();
        out
    } else {
        v.clone()
    }
}

impl<'a> Parser<'a, '_> {
    /// A function's parameters and return type, from the lookahead `(`
    /// (the general path; see [`Self::fast_header`]).
    fn func_header(&mut self) -> Result<Signature> {
        self.expect(TokKind::LParen, "'(' after the function name")?;
        let mut params = Vec::new();
        if !self.at(TokKind::RParen) {
            loop {
                let p = self.expect(TokKind::Local, "a parameter '%name: type'")?;
                self.expect(TokKind::Colon, "':' after the parameter name")?;
                let (ty, ty_loc) = self.ty()?;
                let n = params.len() as u32;
                let v = self.define_value(p.text, p.loc, ty, ValueDef::FuncParam(n))?;
                self.fs.params.push(v);
                self.fs.srcmap.push_param_type(ty_loc);
                params.push(ty);
                match self.tok.kind {
                    TokKind::Comma => {
                        self.advance()?;
                    }
                    TokKind::RParen => break,
                    _ => return self.expected("',' or ')' after parameter"),
                }
            }
        }
        self.advance()?;
        let ret = self.return_type()?;
        Ok(Signature::new(params, ret))
    }

    #[inline(never)]
    pub(super) fn func(&mut self, linkage: Linkage) -> Result<()> {
        let new = self.new_symbol_name("a function name '@name'")?;
        let (name, name_loc) = (new.name, new.loc);
        self.fs.clear();
        self.fs.start = self.lex.pos();
        self.fs.srcmap.func = name_loc;
        let (sig, newline) = match self.fast_header()? {
            Some((sig, newline)) => (sig, Some(newline)),
            None => (self.func_header()?, None),
        };
        let sym = self.declare(
            new,
            linkage,
            SymbolKind::Func {
                sig: sig.clone(),
                body: None,
            },
        );
        match newline {
            Some(p) => self.header_line_end(p)?,
            None => {
                self.expect_with(TokKind::LBrace, || {
                    format!("'{{' to start the body of @{name}")
                })?;
                if !self.at(TokKind::RBrace) {
                    self.end_of_line("'{'")?;
                }
            }
        }
        loop {
            match self.tok.kind {
                TokKind::Newline => {
                    self.advance()?;
                }
                TokKind::RBrace => {
                    self.fs.srcmap.end = self.advance()?.loc;
                    break;
                }
                TokKind::Eof => {
                    return self.err(
                        self.tok.loc,
                        format!("expected '}}' to close function @{name}, found end of input"),
                    )
                }
                TokKind::Local => {
                    if self.fast_instruction()? {
                        continue;
                    }
                    let r = self.advance()?;
                    self.expect_with(TokKind::Equals, || {
                        format!("'=' after '%{}'", shorten(r.text))
                    })?;
                    if self.tok.kind != TokKind::Ident {
                        return self.expected("an opcode after '='");
                    }
                    let mn = self.advance()?;
                    self.instruction(Some(r), mn)?;
                }
                TokKind::Ident => {
                    if self.fast_label()? || self.fast_terminator()? || self.fast_block_line()? {
                        continue;
                    }
                    let t = self.advance()?;
                    if matches!(self.tok.kind, TokKind::Colon | TokKind::LParen) {
                        self.label(t)?;
                    } else {
                        self.instruction(None, t)?;
                    }
                }
                _ => return self.expected("an instruction or a block label"),
            }
        }
        self.resolve_locals()?;
        let f = self.fs.take_function(name, sig);
        self.reserve_items();
        self.module.define_func(sym, f);
        Ok(())
    }

    /// Before a function joins a full table of functions: makes room for
    /// as many functions as the text holds at the rate seen so far (so a
    /// file of many functions grows the table once or twice, not a dozen
    /// times, each copying every function), and as many symbols.
    fn reserve_items(&mut self) {
        let m = &self.module;
        if m.funcs.len() < m.funcs.capacity() {
            return;
        }
        let (done, total) = (self.lex.pos().max(1), self.lex.src().len() + self.after);
        let seen = m.funcs.len() + 1;
        // The shortest function (`func @f(){` and `}`) has 12 bytes.
        let most = total / 12 + 1;
        let expected = (seen.saturating_mul(total) / done).min(most);
        // An eighth more than the rate says (the first functions are no
        // sure guide), reserved exactly (grown by doubling, the table of a
        // large file ended twice the size needed, and the old one stays
        // behind in `kiln check`'s arena), but at least a quarter more
        // than it holds (wrong guesses still grow it geometrically).
        let len = m.funcs.len();
        let want = (expected + expected / 8).min(most);
        self.module
            .reserve(want.saturating_sub(len).max(len / 4).max(1));
    }

    /// Before a large function's instruction table grows: makes room in
    /// every table of the function for as much more as the rest of the
    /// text would hold at the rate seen so far in this function (its tables
    /// grow in proportion). Grown one doubling at a time, each table of a
    /// 20,000-instruction function was copied a dozen times, and in `kiln
    /// check`'s arena every old copy stays behind: three quarters of the
    /// memory it touched (and the kernel clears every page first).
    #[cold]
    #[inline(never)]
    fn reserve_ahead(&mut self) {
        let n = self.fs.insts.len().max(1);
        let (pos, total) = (self.lex.pos(), self.lex.src().len());
        let done = pos.saturating_sub(self.fs.start).max(1);
        let left = total.saturating_sub(pos);
        // The shortest instruction line (`ret` and a newline) has 4 bytes.
        let more = (n.saturating_mul(left) / done).min(left / 4);
        if more == 0 {
            return;
        }
        let fs = &mut self.fs;
        let grow = |len: usize| len.saturating_mul(more) / n + 1;
        fs.insts.reserve(grow(fs.insts.len()));
        fs.values.reserve(grow(fs.values.len()));
        fs.blocks.reserve(grow(fs.blocks.len()));
        fs.arg_pool.reserve(grow(fs.arg_pool.len()));
        fs.value_of.reserve(grow(fs.value_of.len()));
        fs.block_of.reserve(grow(fs.block_of.len()));
        fs.names.reserve_ratio(more, n);
        fs.srcmap.reserve_ratio(more, n);
    }

    /// Records a use of symbol `t` by `inst` of the function being parsed,
    /// resolved when the module is complete.
    fn symbol_use(&mut self, inst: Inst, t: Token<'a>) {
        self.sym_refs.push(SymRef {
            site: SymSite::Inst(FuncId::new(self.module.funcs.len()), inst),
            name: t.text,
            loc: t.loc,
        });
    }

    /// Defines a named value, recording its location; fails on a
    /// duplicate name.
    fn define_value(&mut self, text: &'a str, loc: Loc, ty: Type, def: ValueDef) -> Result<Value> {
        let name = self.fs.name(text);
        self.define_named(name, text, loc, ty, def)
    }

    /// [`Self::define_value`] for `text` interned as `name`.
    #[inline]
    pub(super) fn define_named(
        &mut self,
        name: Name,
        text: &'a str,
        loc: Loc,
        ty: Type,
        def: ValueDef,
    ) -> Result<Value> {
        if self.fs.value_of[name.index()] != NONE {
            return self.err(loc, format!("value %{} is defined twice", shorten(text)));
        }
        if self.fs.values.len() >= PLACEHOLDER_MIN as usize {
            return self.err(loc, "too many values in one function");
        }
        let v = self.fs.new_value(ty, def, Some(name));
        self.fs.value_of[name.index()] = v.0;
        self.fs.srcmap.push_value(loc);
        Ok(v)
    }

    /// Starts the block labelled `t`: fails if the label is taken.
    #[inline]
    fn start_block(&mut self, t: Token<'a>) -> Result<Block> {
        let name = self.fs.name(t.text);
        self.start_named_block(name, t)
    }

    /// [`Self::start_block`] for the label `t` interned as `name`.
    #[inline]
    fn start_named_block(&mut self, name: Name, t: Token<'a>) -> Result<Block> {
        if self.fs.block_of[name.index()] != NONE {
            return self.err(
                t.loc,
                format!("block '{}' is defined twice", shorten(t.text)),
            );
        }
        if self.fs.blocks.len() >= PLACEHOLDER_MIN as usize {
            return self.err(t.loc, "too many blocks in one function");
        }
        self.fs.close_block();
        let block = Block::new(self.fs.blocks.len());
        self.fs.blocks.push(BlockData {
            name,
            params: ValueList::new(),
            insts: InstList::new(),
        });
        self.fs.block_of[name.index()] = block.0;
        self.fs.srcmap.push_block(t.loc);
        Ok(block)
    }

    /// Reads the label line `NAME:` (and a newline, the common form) whose
    /// name is the lookahead, with no token for the `:`; returns whether it
    /// did. When it returns `false`, nothing has changed.
    #[inline]
    fn fast_label(&mut self) -> Result<bool> {
        let end = self.lex.pos();
        let start = end - self.tok.text.len();
        if start == self.fs.declined || !self.fast_label_at(start, end)? {
            return Ok(false);
        }
        self.after_fast_line()?;
        Ok(true)
    }

    /// [`Self::fast_label`] for the label that is the word `start..end` of
    /// the text (read or not as the lookahead): on success the lexer is at
    /// the start of the next line, no token made.
    #[inline]
    pub(super) fn fast_label_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        if b.get(end) != Some(&b':') {
            return Ok(false);
        }
        let newline = skip_spaces(b, end + 1);
        if b.get(newline) != Some(&b'\n') {
            return Ok(false);
        }
        let t = Token {
            kind: TokKind::Ident,
            text: &src[start..end],
            loc: self.lex.loc_at(start),
        };
        let name = self.fs.name_at(src, start, t.text);
        let block = self.start_named_block(name, t)?;
        self.fs.cur = Some((block, self.fs.insts.len()));
        self.lex.skip_newline_at(newline);
        Ok(true)
    }

    fn label(&mut self, t: Token<'a>) -> Result<()> {
        let block = self.start_block(t)?;
        if self.at(TokKind::LParen) {
            self.advance()?;
            if !self.at(TokKind::RParen) {
                let mut params = ValueList::new();
                loop {
                    let p = self.expect(TokKind::Local, "a block parameter '%name: type'")?;
                    self.expect(TokKind::Colon, "':' after the parameter name")?;
                    let (ty, _) = self.ty()?;
                    let n = params.len() as u32;
                    let v = self.define_value(p.text, p.loc, ty, ValueDef::BlockParam(block, n))?;
                    params.push(v);
                    match self.tok.kind {
                        TokKind::Comma => {
                            self.advance()?;
                        }
                        TokKind::RParen => break,
                        _ => return self.expected("',' or ')' after block parameter"),
                    }
                }
                self.fs.blocks[block.index()].params = params;
            }
            self.advance()?;
        }
        self.fs.cur = Some((block, self.fs.insts.len()));
        if self.at(TokKind::Colon) {
            // `:` then the end of the line (the common case): on to the
            // next line's first token without making the newline token.
            let b = self.lex.src().as_bytes();
            let p = skip_spaces(b, self.lex.pos());
            if b.get(p) == Some(&b'\n') {
                self.lex.skip_newline_at(p);
                self.advance()?;
                return Ok(());
            }
        }
        self.expect(TokKind::Colon, "':' after the block label")?;
        self.end_of_line("block label")
    }

    // ---- instructions ----

    /// An operand: `%value` or a literal; its token goes to the source map.
    #[inline]
    fn operand(&mut self) -> Result<Operand> {
        let t = self.tok;
        let op = match t.kind {
            TokKind::Local => Operand::Value(self.use_value(t)?),
            TokKind::Int => match parse_int(t.text).and_then(Int96::new) {
                Some(v) => Operand::Const(Const::Int(v)),
                None => {
                    return self.err(
                        t.loc,
                        format!("integer literal '{}' is out of range", shorten(t.text)),
                    )
                }
            },
            TokKind::Float | TokKind::Ident if t.kind == TokKind::Float || is_float_word(&t) => {
                match parse_f64(t.text) {
                    Some(x) => Operand::Const(Const::float(x)),
                    None => {
                        return self.err(
                            t.loc,
                            format!("invalid float literal '{}'", shorten(t.text)),
                        )
                    }
                }
            }
            _ => return self.expected("an operand (a %value or a literal)"),
        };
        self.fs.srcmap.push_token(t.loc);
        self.advance()?;
        Ok(op)
    }

    /// The value a `%name` use refers to (a placeholder if not yet seen).
    #[inline]
    pub(super) fn use_value(&mut self, t: Token<'a>) -> Result<Value> {
        let name = self.fs.name(t.text);
        self.use_name(name, t.loc)
    }

    /// [`Self::use_value`] of a value name already interned (written at
    /// `loc`).
    #[inline]
    pub(super) fn use_name(&mut self, name: Name, loc: Loc) -> Result<Value> {
        let v = self.fs.value_of[name.index()];
        if v != NONE {
            return Ok(Value(v));
        }
        let n = self.fs.fwd_values.len() as u32;
        if n >= u32::MAX - PLACEHOLDER_MIN {
            return self.err(loc, "too many forward references");
        }
        self.fs.fwd_values.push((name, loc));
        self.fs.inst_fwd_value = true;
        Ok(Value(u32::MAX - n))
    }

    fn comma_after_operand(&mut self) -> Result<()> {
        self.expect(TokKind::Comma, "',' after operand").map(drop)
    }

    /// A block label used as a branch target (placeholder if not yet seen).
    #[inline]
    fn target(&mut self) -> Result<Block> {
        let t = self.expect(TokKind::Ident, "a block label")?;
        self.target_named(t)
    }

    /// The block labelled `t` (read), used as a branch target; its token
    /// goes to the source map.
    #[inline]
    pub(super) fn target_named(&mut self, t: Token<'a>) -> Result<Block> {
        let name = self.fs.name(t.text);
        self.target_of(name, t.loc)
    }

    /// [`Self::target_named`] for the label at `loc` interned as `name`.
    #[inline]
    pub(super) fn target_of(&mut self, name: Name, loc: Loc) -> Result<Block> {
        self.fs.srcmap.push_token(loc);
        let b = self.fs.block_of[name.index()];
        if b != NONE {
            return Ok(Block(b));
        }
        let n = self.fs.fwd_blocks.len() as u32;
        if n >= u32::MAX - PLACEHOLDER_MIN {
            return self.err(loc, "too many forward references");
        }
        self.fs.fwd_blocks.push((name, loc));
        self.fs.inst_fwd_block = true;
        Ok(Block(u32::MAX - n))
    }

    /// `(a, b, ...)` after a callee or a block label, into the operand
    /// pool; the `(` is current.
    fn args(&mut self) -> Result<OpList> {
        self.advance()?;
        let start = self.fs.arg_pool.len();
        if self.at(TokKind::RParen) {
            self.advance()?;
            return Ok(OpList::EMPTY);
        }
        loop {
            let op = self.operand()?;
            self.fs.arg_pool.push(op);
            match self.tok.kind {
                TokKind::Comma => {
                    self.advance()?;
                }
                TokKind::RParen => {
                    self.advance()?;
                    return Ok(self.fs.args_since(start));
                }
                _ => return self.expected("',' or ')' in argument list"),
            }
        }
    }

    fn block_call(&mut self) -> Result<BlockCall> {
        let block = self.target()?;
        let args = if self.at(TokKind::LParen) {
            self.args()?
        } else {
            OpList::EMPTY
        };
        Ok(BlockCall { block, args })
    }

    /// A switch target: a label without arguments.
    fn switch_target(&mut self) -> Result<Block> {
        let b = self.target()?;
        if self.at(TokKind::LParen) {
            return self.err(self.tok.loc, "switch targets take no arguments");
        }
        Ok(b)
    }

    /// `[, N]`: an optional literal after the operands, with its location.
    fn optional_literal(&mut self, what: &str) -> Result<Option<(i128, Loc)>> {
        if !self.at(TokKind::Comma) {
            return Ok(None);
        }
        self.advance()?;
        let (v, loc) = self.int_literal(what)?;
        self.fs.srcmap.push_token(loc);
        Ok(Some((v, loc)))
    }

    fn offset(&mut self) -> Result<i64> {
        match self.optional_literal("an offset literal")? {
            None => Ok(0),
            Some((v, loc)) => match i64::try_from(v) {
                Ok(v) => Ok(v),
                Err(_) => self.err(loc, "offset does not fit in 64 bits"),
            },
        }
    }

    /// The `.T` suffix of mnemonic `mn` for opcode `name`, checked against
    /// the opcode's rule.
    pub(super) fn suffix(
        &self,
        mn: Token<'a>,
        name: &str,
        suffix: Option<&str>,
        rule: Suffix,
    ) -> Result<Option<Type>> {
        match (suffix, rule) {
            (None, Suffix::None | Suffix::Optional) => Ok(None),
            (None, s) => {
                let forms = match s {
                    Suffix::Only(t) => format!("{name}.{t}"),
                    Suffix::Int => format!("{name}.i32 or {name}.i64"),
                    Suffix::Float => format!("{name}.f32 or {name}.f64"),
                    _ => format!("{name}.T"),
                };
                self.err(mn.loc, format!("type suffix required: {forms}"))
            }
            (Some(_), Suffix::None) => self.err(mn.loc, format!("'{name}' takes no type suffix")),
            (Some(s), rule) => match Type::from_name(s).filter(|&t| rule.allows(t)) {
                Some(t) => Ok(Some(t)),
                None => {
                    let sloc = Loc::new(
                        mn.loc.line,
                        mn.loc.col.saturating_add(name.len() as u32 + 1),
                    );
                    self.err(
                        sloc,
                        format!(
                            "invalid type suffix '{}' for '{name}': expected {}",
                            shorten(s),
                            rule.describe()
                        ),
                    )
                }
            },
        }
    }

    fn instruction(&mut self, result: Option<Token<'a>>, mn: Token<'a>) -> Result<()> {
        let (name, suffix) = match mn.text.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (mn.text, None),
        };
        let Some(op) = Opcode::from_name(name) else {
            return self.err(mn.loc, format!("unknown opcode '{}'", shorten(name)));
        };
        let info = op.info();
        let ty = self.suffix(mn, name, suffix, info.suffix)?;
        if self.fs.cur.is_none() {
            return self.err(
                mn.loc,
                "expected a block label before the first instruction",
            );
        }
        let has_result = info.result_type(ty).is_some();
        let result_name = match result {
            Some(r) if !has_result => {
                let msg = if info.result == ResultTy::OptionalSuffix {
                    format!("'{name}' without a type suffix has no result (write {name}.T)")
                } else {
                    format!("'{}' has no result", shorten(mn.text))
                };
                return self.err(r.loc, msg);
            }
            None if has_result && op != Opcode::Call => {
                let m = shorten(mn.text);
                return self.err(
                    mn.loc,
                    format!("'{m}' produces a value: write '%NAME = {m} ...'"),
                );
            }
            Some(r) => {
                let n = self.fs.name(r.text);
                if self.fs.value_of[n.index()] != NONE {
                    return self.err(
                        r.loc,
                        format!("value %{} is defined twice", shorten(r.text)),
                    );
                }
                Some(n)
            }
            None => None,
        };
        let inst = Inst::new(self.fs.insts.len());
        self.fs.srcmap.start_inst(mn.loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let kind = self.inst_kind(info.format, name, inst)?;
        let result_loc = result.map_or(mn.loc, |r| r.loc);
        self.push_instruction(op, ty, result_name, result_loc, kind, mn.loc)?;
        self.end_of_line("instruction")
    }

    /// Appends an instruction whose operands and tokens were read (the
    /// source map holds its mnemonic and operand tokens), with its result
    /// value when the opcode has one.
    #[inline]
    pub(super) fn push_instruction(
        &mut self,
        opcode: Opcode,
        ty: Option<Type>,
        result_name: Option<Name>,
        result_loc: Loc,
        kind: InstKind,
        mn_loc: Loc,
    ) -> Result<()> {
        let inst = Inst::new(self.fs.insts.len());
        if inst.index() == self.fs.insts.capacity() && inst.index() >= RESERVE_FROM {
            self.reserve_ahead();
        }
        if self.fs.values.len() >= PLACEHOLDER_MIN as usize {
            return self.err(mn_loc, "too many values in one function");
        }
        let result_value = opcode
            .info()
            .result_type(ty)
            .map(|rt| self.fs.new_value(rt, ValueDef::Inst(inst), result_name));
        self.fs.insts.push(InstData {
            opcode,
            ty,
            result: result_value,
            kind,
        });
        if let Some(v) = result_value {
            self.fs.srcmap.push_value(result_loc);
            if let Some(n) = result_name {
                self.fs.value_of[n.index()] = v.0;
            }
        }
        if self.fs.inst_fwd_value {
            self.fs.fwd_value_insts.push(inst);
        }
        if self.fs.inst_fwd_block {
            self.fs.fwd_block_insts.push(inst);
        }
        Ok(())
    }

    /// The operands of an instruction of form `format` (mnemonic `name`).
    #[inline]
    fn inst_kind(&mut self, format: Format, name: &str, inst: Inst) -> Result<InstKind> {
        Ok(match format {
            Format::Unary => InstKind::Unary {
                arg: self.operand()?,
            },
            Format::Binary => {
                let a = self.operand()?;
                self.comma_after_operand()?;
                let b = self.operand()?;
                InstKind::Binary { args: [a, b] }
            }
            Format::Select => {
                let c = self.operand()?;
                self.comma_after_operand()?;
                let a = self.operand()?;
                self.comma_after_operand()?;
                let b = self.operand()?;
                InstKind::Select { args: [c, a, b] }
            }
            Format::Store => {
                let v = self.operand()?;
                self.comma_after_operand()?;
                let p = self.operand()?;
                let offset = self.offset()?;
                InstKind::Store {
                    args: [v, p],
                    offset,
                }
            }
            Format::Load => {
                let ptr = self.operand()?;
                let offset = self.offset()?;
                InstKind::Load { ptr, offset }
            }
            Format::Alloca => {
                let (size, sloc) = self.int_literal("a size literal")?;
                self.fs.srcmap.push_token(sloc);
                let align = self.optional_literal("an alignment literal")?;
                let Ok(size) = u64::try_from(size) else {
                    return self.err(sloc, "alloca size must be a non-negative 64-bit integer");
                };
                let align = match align {
                    None => 8,
                    Some((a, aloc)) => match u64::try_from(a) {
                        Ok(a) => a,
                        Err(_) => {
                            return self
                                .err(aloc, "alloca alignment must be a non-negative integer")
                        }
                    },
                };
                InstKind::Alloca { size, align }
            }
            Format::Addr => {
                let t = self.expect(TokKind::Global, "a symbol '@name'")?;
                self.fs.srcmap.push_token(t.loc);
                self.symbol_use(inst, t);
                InstKind::Addr {
                    sym: super::SymId(u32::MAX),
                }
            }
            Format::Call => {
                let callee = match self.tok.kind {
                    TokKind::Global => {
                        let t = self.advance()?;
                        self.fs.srcmap.push_token(t.loc);
                        self.symbol_use(inst, t);
                        Callee::Direct(super::SymId(u32::MAX))
                    }
                    TokKind::Local => Callee::Indirect(self.operand()?),
                    _ => {
                        return self.expected(&format!("'@function' or '%pointer' after '{name}'"))
                    }
                };
                if !self.at(TokKind::LParen) {
                    return self.expected("'(' after the callee");
                }
                let args = self.args()?;
                InstKind::Call { callee, args }
            }
            Format::Ret => {
                let value = if matches!(self.tok.kind, TokKind::Newline | TokKind::Eof) {
                    None
                } else {
                    Some(self.operand()?)
                };
                InstKind::Ret { value }
            }
            Format::Jmp => InstKind::Jmp {
                dest: self.block_call()?,
            },
            Format::Br => {
                let cond = self.operand()?;
                self.comma_after_operand()?;
                let then_dest = self.block_call()?;
                self.expect(TokKind::Comma, "',' after the first branch target")?;
                let else_dest = self.block_call()?;
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                }
            }
            Format::Switch => {
                let value = self.operand()?;
                self.comma_after_operand()?;
                let default = self.switch_target()?;
                let start = self.fs.case_pool.len();
                while self.at(TokKind::Comma) {
                    self.advance()?;
                    let t = self.tok;
                    let (key, kloc) = self.int_literal("a case 'KEY: label'")?;
                    let Some(key) = Int96::new(key) else {
                        return self.err(
                            kloc,
                            format!("integer literal '{}' is out of range", shorten(t.text)),
                        );
                    };
                    self.fs.srcmap.push_token(kloc);
                    self.expect(TokKind::Colon, "':' after the case key")?;
                    let block = self.switch_target()?;
                    self.fs.case_pool.push(SwitchCase {
                        key: Const::Int(key),
                        block,
                    });
                }
                InstKind::Switch {
                    value,
                    default,
                    cases: self.fs.cases_since(start),
                }
            }
            Format::Trap => InstKind::Trap,
        })
    }

    /// Replaces the placeholders of values and labels used before their
    /// definition; reports the first unresolved name in source order.
    fn resolve_locals(&mut self) -> Result<()> {
        let fs = &mut self.fs;
        if fs.fwd_values.is_empty() && fs.fwd_blocks.is_empty() {
            return Ok(());
        }
        // Each list is in source order: its first unresolved entry is its
        // earliest; the earlier of the two wins.
        let first_value = fs
            .fwd_values
            .iter()
            .find(|(n, _)| fs.value_of[n.index()] == NONE);
        let first_block = fs
            .fwd_blocks
            .iter()
            .find(|(n, _)| fs.block_of[n.index()] == NONE);
        let value_err = first_value.map(|&(n, loc)| {
            (
                loc,
                format!("undefined value %{}", shorten(fs.names.get(n))),
            )
        });
        let block_err = first_block
            .map(|&(n, loc)| (loc, format!("unknown block '{}'", shorten(fs.names.get(n)))));
        let first = match (value_err, block_err) {
            (Some(v), Some(b)) => Some(if b.0 < v.0 { b } else { v }),
            (v, b) => v.or(b),
        };
        if let Some((loc, msg)) = first {
            return self.err(loc, msg);
        }
        let FuncScratch {
            insts,
            arg_pool,
            case_pool,
            value_of,
            block_of,
            fwd_values,
            fwd_blocks,
            fwd_value_insts,
            fwd_block_insts,
            ..
        } = fs;
        let fix_value = |op: &mut Operand| {
            if let Operand::Value(v) = op {
                if v.0 >= PLACEHOLDER_MIN {
                    let (name, _) = fwd_values[(u32::MAX - v.0) as usize];
                    *v = Value(value_of[name.index()]);
                }
            }
        };
        let fix_list = |pool: &mut [Operand], l: OpList| {
            if let Some(ops) = pool.get_mut(l.range()) {
                ops.iter_mut().for_each(fix_value);
            }
        };
        for &i in fwd_value_insts.iter() {
            match &mut insts[i.index()].kind {
                InstKind::Unary { arg } => fix_value(arg),
                InstKind::Binary { args } | InstKind::Store { args, .. } => {
                    args.iter_mut().for_each(fix_value)
                }
                InstKind::Select { args } => args.iter_mut().for_each(fix_value),
                InstKind::Load { ptr, .. } => fix_value(ptr),
                InstKind::Call { callee, args } => {
                    if let Callee::Indirect(op) = callee {
                        fix_value(op);
                    }
                    fix_list(arg_pool, *args);
                }
                InstKind::Ret { value } => value.iter_mut().for_each(fix_value),
                InstKind::Jmp { dest } => fix_list(arg_pool, dest.args),
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                } => {
                    fix_value(cond);
                    fix_list(arg_pool, then_dest.args);
                    fix_list(arg_pool, else_dest.args);
                }
                InstKind::Switch { value, .. } => fix_value(value),
                InstKind::Alloca { .. } | InstKind::Addr { .. } | InstKind::Trap => {}
            }
        }
        let fix = |b: &mut Block| {
            if b.0 >= PLACEHOLDER_MIN {
                let (name, _) = fwd_blocks[(u32::MAX - b.0) as usize];
                *b = Block(block_of[name.index()]);
            }
        };
        for &i in fwd_block_insts.iter() {
            match &mut insts[i.index()].kind {
                InstKind::Jmp { dest } => fix(&mut dest.block),
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => {
                    fix(&mut then_dest.block);
                    fix(&mut else_dest.block);
                }
                InstKind::Switch { default, cases, .. } => {
                    fix(default);
                    if let Some(cs) = case_pool.get_mut(cases.range()) {
                        cs.iter_mut().for_each(|c| fix(&mut c.block));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ShortNames;
    use crate::ir::names::name_syntax;

    /// The word-sized key and syntax flags agree with the byte loop and
    /// with `name_syntax` for names of name characters of every length the
    /// cache takes, wherever the name sits in its text (a word to read
    /// after it, or too near the end for one).
    #[test]
    fn short_keys_read_as_words_match_the_byte_loop() {
        let names = [
            "a", "x1", "0", "007", "42", "1a", "9.", "_", "$t", "a.b$c", "entry", "yes", "no",
            "v1234", "1234567", "12345a7", "abcdefg", "x", "_9", "Z0.$",
        ];
        for name in names {
            for pad in ["", "\n", " = add.i64 %a, %b\n", ":"] {
                let src = format!("%{name}{pad}");
                let key = ShortNames::key(name).unwrap();
                assert_eq!(
                    ShortNames::key_at(src.as_bytes(), 1, name.len()),
                    Some(key),
                    "{src:?}"
                );
                assert_eq!(ShortNames::key_syntax(key), name_syntax(name), "{name:?}");
            }
        }
        // Too long or empty: no key either way.
        for name in ["abcdefgh", ""] {
            let src = format!("%{name} + more text");
            assert_eq!(ShortNames::key(name), None);
            assert_eq!(ShortNames::key_at(src.as_bytes(), 1, name.len()), None);
        }
    }
}
