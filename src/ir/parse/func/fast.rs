//! The fast path for the most common line of a function body:
//! `%name = OP[.T] A[, B[, C]]` of a unary, binary or select opcode whose
//! operands are value names or decimal integer literals, and (see
//! [`Parser::fast_special_at`]) such lines with float literals,
//! `%name = load.T A[, OFFSET]` (a decimal offset),
//! `%name = call.T @f(ARGS)` and `%name = addr @s`; also for
//! terminators (with block arguments: [`Parser::fast_block_line_at`]),
//! labels (with parameters: the same) and for the commonest function
//! header, `(%a: T, ...) [-> T] {` at the end of its line.
//!
//! The line is read byte by byte with a local cursor, without making
//! tokens; only when all of it has the expected shape (ending at a newline
//! or the end of the text) is anything recorded. Any other line, and any
//! line with a mistake in it, is left to the general path
//! ([`Parser::instruction`]), which reads it again from its first token:
//! so the general path alone decides every error message, and the fast
//! path must build exactly what the general path would (the parser tests
//! and filetests check the result and the source map of both).

use super::{Parser, Result, NONE};

mod special;
use crate::ir::entities::Block;
use crate::ir::function::{BlockCall, Const, InstKind, Int96, OpList, Operand, ValueDef};
use crate::ir::lexer::{is_name_char, is_name_start, skip_spaces, TokKind, Token};
use crate::ir::names::Name;
use crate::ir::opcode::{Format, Opcode};
use crate::ir::parse::parse_int;
use crate::ir::types::{ParamTypes, Signature, Type};

/// An operand as written: a value name (without `%`) or an integer.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Value(&'a str),
    Int(Int96),
    /// A value name found in the short-name cache (see
    /// [`super::ShortNames::find_at`]).
    Name(Name),
}

#[cfg(test)]
thread_local! {
    /// Lines read by the fast path on this thread (for tests).
    pub(crate) static FAST_LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Function headers read by the fast path on this thread (for tests).
    pub(crate) static FAST_HEADERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Most arguments of a call read here (the general path reads more).
const MAX_CALL_ARGS: usize = 8;

/// Longest decimal literal read here (the general path reads longer ones).
const MAX_DIGITS: usize = 20;

/// The operand at byte `p` of `src` as the lexer would read it, when it is
/// a value name or a short decimal integer, and the byte after it.
#[inline]
fn raw_operand(src: &str, mut p: usize) -> Option<(Raw<'_>, usize)> {
    let b = src.as_bytes();
    let start = p;
    let raw = match b.get(p) {
        Some(b'%') => {
            p += 1;
            while p < b.len() && is_name_char(b[p]) {
                p += 1;
            }
            let text = &src[start + 1..p];
            // A value name starts like a label or is all digits.
            match text.as_bytes().first() {
                Some(&c) if is_name_start(c) => {}
                Some(_) if text.bytes().all(|c| c.is_ascii_digit()) => {}
                _ => return None,
            }
            Raw::Value(text)
        }
        Some(&c) if c.is_ascii_digit() || c == b'-' => {
            p += usize::from(c == b'-');
            let digits = p;
            while p < b.len() && b[p].is_ascii_digit() {
                p += 1;
            }
            // Hex, floats, long literals and malformed numbers take the
            // general path.
            let n = p - digits;
            if n == 0 || n > MAX_DIGITS || b.get(p).is_some_and(|&c| is_name_char(c)) {
                return None;
            }
            Raw::Int(parse_int(&src[start..p]).and_then(Int96::new)?)
        }
        _ => return None,
    };
    Some((raw, p))
}

/// The shape of the rest of a line after its mnemonic, for the lines of
/// [`special`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `count` operands separated by commas (some float literals).
    Plain,
    /// A load: one operand, then an optional `, OFFSET` literal.
    Load,
    /// A direct call, `@f(ARGS)`.
    Call,
    /// A symbol's address, `@s`.
    Addr,
    /// A stack slot, `SIZE[, ALIGN]` (decimal literals).
    Alloca,
}

/// A mnemonic of the fast path as [`Parser::read_mnemonic`] read it: its
/// opcode, type suffix and number of operands; `key` is its text packed
/// as [`Mnemonics`] keys it (0: an empty slot; the first 8 bytes of a
/// longer mnemonic).
#[derive(Clone, Copy)]
pub(super) struct FastOp {
    key: u64,
    opcode: Opcode,
    ty: Option<Type>,
    /// 0 for the forms other than [`Form::Plain`]: the commonest lines'
    /// path then declines their lines at once (no operand, no line end).
    count: u8,
    form: Form,
}

/// Slots of [`Mnemonics`] for mnemonics of up to 7 bytes (a power of two).
const MNEMONIC_SLOTS: usize = 256;

/// Slots of [`Mnemonics`] for mnemonics of 8 to 15 bytes (a power of two).
const LONG_MNEMONIC_SLOTS: usize = 256;

/// The mnemonics the fast path has read, by text: a function's lines use a
/// few (`add.i64`, `zext.i64`), each found again by an 8-byte load and one
/// comparison (two of each from 8 bytes on) instead of reading it byte by
/// byte, looking the opcode up and checking its suffix. What a mnemonic
/// reads as depends on its text alone, so the table is never cleared
/// (kept with the parser's scratch).
#[derive(Default)]
pub(super) struct Mnemonics {
    /// Direct-mapped slots ([`MNEMONIC_SLOTS`] of them once one is filled)
    /// for mnemonics of up to 7 bytes.
    slots: Vec<FastOp>,
    /// Direct-mapped slots ([`LONG_MNEMONIC_SLOTS`] of them once one is
    /// filled) for mnemonics of 8 to 15 bytes (`zext.i64`, `sitof.f64`):
    /// the key's second word (the bytes after the first 8) and the
    /// mnemonic.
    long: Vec<(u64, FastOp)>,
}

/// The 8 bytes of `b` from byte `p` as a little-endian word, if there are 8.
#[inline]
fn word_at(b: &[u8], p: usize) -> Option<u64> {
    let word = b.get(p..p.checked_add(8)?)?;
    Some(u64::from_le_bytes(word.try_into().ok()?))
}

/// Bit 7 of the lowest byte of `w` below 0x21 (exact for the first one:
/// the borrow only reaches the bytes above it; bytes from 0x80 are not
/// marked), among other bits above it; 0 when there is none.
#[inline]
fn low_bytes(w: u64) -> u64 {
    const LOW: u64 = 0x0101_0101_0101_0101;
    w.wrapping_sub(0x21 * LOW) & !w & (0x80 * LOW)
}

/// Where a mnemonic's key, or a mix of a long one's two words, goes in a
/// table of `2^bits` slots.
#[inline]
fn slot_of(key: u64, bits: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

/// A mnemonic's key as [`Mnemonics`] files it: one word for up to 7 bytes,
/// two for 8 to 15.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// The bytes (at least one), zero above them.
    Short(u64),
    /// The first 8 bytes, and the rest (zero above them).
    Long(u64, u64),
}

impl Mnemonics {
    /// The mnemonic starting at byte `p` of `b`, at most 15 bytes followed
    /// by a space, tab, carriage return, newline or other control byte, as
    /// its [`Key`]; `None` for others.
    #[inline]
    fn key(b: &[u8], p: usize) -> Option<(Key, usize)> {
        let w = word_at(b, p)?;
        let low = low_bytes(w);
        if low == 0 {
            return Self::long_key(b, p, w).map(|(w2, end)| (Key::Long(w, w2), end));
        }
        let len = low.trailing_zeros() as usize / 8;
        if len == 0 {
            return None;
        }
        Some((Key::Short(w & ((1u64 << (8 * len)) - 1)), p + len))
    }

    /// The second word of the key of a mnemonic of 8 to 15 bytes at byte
    /// `p` of `b` whose first 8 bytes, `w`, have no byte below 0x21, and
    /// the byte after it.
    #[inline]
    fn long_key(b: &[u8], p: usize, w: u64) -> Option<(u64, usize)> {
        debug_assert_eq!(low_bytes(w), 0);
        let w2 = word_at(b, p + 8)?;
        let low = low_bytes(w2);
        if low == 0 {
            return None;
        }
        let len = low.trailing_zeros() as usize / 8;
        Some((w2 & ((1u64 << (8 * len)) - 1), p + 8 + len))
    }

    #[inline]
    fn slot(key: u64) -> usize {
        slot_of(key, MNEMONIC_SLOTS.trailing_zeros())
    }

    #[inline]
    fn long_slot(w: u64, w2: u64) -> usize {
        slot_of(w ^ w2.rotate_left(32), LONG_MNEMONIC_SLOTS.trailing_zeros())
    }

    /// The mnemonic at byte `p` of `b` if it is in the table, and the byte
    /// after it. A hit is exact: only mnemonics of name characters whose
    /// key ends where the lexer ends them are filed ([`Mnemonics::insert`]),
    /// so the same key is the same text, ending at a byte that is not a
    /// name character.
    #[inline]
    fn find(&self, b: &[u8], p: usize) -> Option<(FastOp, usize)> {
        let w = word_at(b, p)?;
        let low = low_bytes(w);
        if low == 0 {
            return self.find_long(b, p, w);
        }
        let len = low.trailing_zeros() as usize / 8;
        if len == 0 {
            return None;
        }
        let key = w & ((1u64 << (8 * len)) - 1);
        let op = *self.slots.get(Self::slot(key))?;
        (op.key == key).then_some((op, p + len))
    }

    /// [`Mnemonics::find`] for a mnemonic of 8 bytes or more, whose first
    /// 8 bytes `w` have no byte below 0x21.
    #[inline(never)]
    fn find_long(&self, b: &[u8], p: usize, w: u64) -> Option<(FastOp, usize)> {
        let (w2, end) = Self::long_key(b, p, w)?;
        let &(tail, op) = self.long.get(Self::long_slot(w, w2))?;
        (op.key == w && tail == w2).then_some((op, end))
    }

    /// Files `op`, read from the mnemonic `b[start..end]` (a run of name
    /// characters), when its key covers exactly those bytes.
    fn insert(&mut self, b: &[u8], start: usize, end: usize, mut op: FastOp) {
        let Some((key, key_end)) = Self::key(b, start) else {
            return;
        };
        if key_end != end {
            return;
        }
        let empty = FastOp {
            key: 0,
            opcode: op.opcode,
            ty: None,
            count: 0,
            form: Form::Plain,
        };
        match key {
            Key::Short(key) => {
                if self.slots.is_empty() {
                    self.slots = vec![empty; MNEMONIC_SLOTS];
                }
                op.key = key;
                self.slots[Self::slot(key)] = op;
            }
            Key::Long(w, w2) => {
                if self.long.is_empty() {
                    self.long = vec![(0, empty); LONG_MNEMONIC_SLOTS];
                }
                op.key = w;
                self.long[Self::long_slot(w, w2)] = (w2, op);
            }
        }
    }
}

/// The block label at byte `p` of `src` (a name the lexer reads as one
/// identifier), and the byte after it.
#[inline]
fn raw_label(src: &str, mut p: usize) -> Option<(&str, usize)> {
    let b = src.as_bytes();
    let start = p;
    if !b.get(p).is_some_and(|&c| is_name_start(c)) {
        return None;
    }
    while p < b.len() && is_name_char(b[p]) {
        p += 1;
    }
    Some((&src[start..p], p))
}

/// The end of the run of name characters of `b` from byte `p`.
#[inline]
fn name_end(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && is_name_char(b[p]) {
        p += 1;
    }
    p
}

/// Whether byte `p` of `b` ends a line (a newline or the end of the text).
#[inline]
fn at_line_end(b: &[u8], p: usize) -> bool {
    matches!(b.get(p), None | Some(b'\n'))
}

/// A terminator line read by [`scan_terminator`]: its operand and labels
/// with their first bytes, and where the line ends.
struct TermLine<'a> {
    op: Option<(Raw<'a>, usize)>,
    labels: [(&'a str, usize); 2],
    num_labels: usize,
    end: usize,
}

/// The rest of a `ret`, `jmp` or `br` line from byte `p` (after the
/// mnemonic), when it has the fast path's shape.
#[inline]
fn scan_terminator(src: &str, p: usize, opcode: Opcode) -> Option<TermLine<'_>> {
    let b = src.as_bytes();
    let mut p = skip_spaces(b, p);
    let mut line = TermLine {
        op: None,
        labels: [("", 0); 2],
        num_labels: 0,
        end: 0,
    };
    if opcode != Opcode::Jmp && !(opcode == Opcode::Ret && at_line_end(b, p)) {
        let (raw, end) = raw_operand(src, p)?;
        line.op = Some((raw, p));
        p = skip_spaces(b, end);
    }
    let wanted = match opcode {
        Opcode::Ret => 0,
        Opcode::Jmp => 1,
        _ => 2,
    };
    while line.num_labels < wanted {
        if opcode == Opcode::Br {
            if b.get(p) != Some(&b',') {
                return None;
            }
            p = skip_spaces(b, p + 1);
        }
        let (label, end) = raw_label(src, p)?;
        line.labels[line.num_labels] = (label, p);
        line.num_labels += 1;
        p = skip_spaces(b, end);
    }
    if !at_line_end(b, p) {
        return None;
    }
    line.end = p;
    Some(line)
}

/// Most parameters a header read by [`scan_header`] may have (more take
/// the general path).
const MAX_PARAMS: usize = 8;

/// A function header read by [`scan_header`]: each parameter's bytes of
/// its `%`, the end of its name and its type's first byte, and the type;
/// the return type; the newline after the `{`. Offsets are `u32` (the
/// fast path declines longer texts) to keep it small; [`scan_header`]
/// fills one in place.
struct Header {
    params: [(u32, u32, u32, Type); MAX_PARAMS],
    num_params: usize,
    ret: Option<Type>,
    newline: usize,
}

/// The type name at byte `p` of `src` (a whole identifier), and the byte
/// after it.
#[inline]
fn raw_type(src: &str, p: usize) -> Option<(Type, usize)> {
    let (word, end) = raw_label(src, p)?;
    Some((Type::from_name(word)?, end))
}

impl Header {
    const EMPTY: Header = Header {
        params: [(0, 0, 0, Type::I64); MAX_PARAMS],
        num_params: 0,
        ret: None,
        newline: 0,
    };
}

/// The rest of a function header from byte `p` (just after its `(`),
/// when it is `%name: T, ...) [-> T] {` and a newline, each parameter a
/// name the lexer reads as a value name: read into `h` (an
/// [`Header::EMPTY`]; filled in place, not returned, which copied it
/// twice per function).
#[inline]
fn scan_header(src: &str, p: usize, h: &mut Header) -> Option<()> {
    let b = src.as_bytes();
    if b.len() > u32::MAX as usize {
        return None;
    }
    let mut p = skip_spaces(b, p);
    if b.get(p) != Some(&b')') {
        loop {
            if h.num_params == MAX_PARAMS || b.get(p) != Some(&b'%') {
                return None;
            }
            let Some((Raw::Value(_), name_end)) = raw_operand(src, p) else {
                return None;
            };
            let at = p;
            p = skip_spaces(b, name_end);
            if b.get(p) != Some(&b':') {
                return None;
            }
            p = skip_spaces(b, p + 1);
            let (ty, end) = raw_type(src, p)?;
            // Offsets below `b.len()`, checked to fit in `u32` above.
            h.params[h.num_params] = (at as u32, name_end as u32, p as u32, ty);
            h.num_params += 1;
            p = skip_spaces(b, end);
            match b.get(p) {
                Some(b',') => p = skip_spaces(b, p + 1),
                Some(b')') => break,
                _ => return None,
            }
        }
    }
    p = skip_spaces(b, p + 1);
    if b.get(p..p + 2) == Some(b"->") {
        let (ty, end) = raw_type(src, skip_spaces(b, p + 2))?;
        h.ret = Some(ty);
        p = skip_spaces(b, end);
    }
    if b.get(p) != Some(&b'{') {
        return None;
    }
    p = skip_spaces(b, p + 1);
    if b.get(p) != Some(&b'\n') {
        return None;
    }
    h.newline = p;
    Some(())
}

impl<'a> Parser<'a, '_> {
    /// Reads a function header from the lookahead `(` to the end of the
    /// `{` line, when [`scan_header`] accepts it: defines the parameters
    /// as the general path does and returns the signature and the newline
    /// after `{` (the caller declares the function, then moves past it
    /// with [`Self::header_line_end`]). `None`: nothing has changed, the
    /// general path reads the header.
    pub(in crate::ir::parse) fn fast_header(&mut self) -> Result<Option<(Signature, usize)>> {
        if self.tok.kind != TokKind::LParen {
            return Ok(None);
        }
        let mut h = Header::EMPTY;
        if scan_header(self.lex.src(), self.lex.pos(), &mut h).is_none() {
            return Ok(None);
        }
        let src = self.lex.src();
        let mut params = ParamTypes::new();
        for &(at, name_end, ty_at, ty) in &h.params[..h.num_params] {
            let (at, ty_at) = (at as usize, ty_at as usize);
            let n = params.len() as u32;
            let loc = self.lex.loc_at(at);
            // The name after the `%` (ASCII bytes, as `raw_operand` read it).
            let text = &src[at + 1..name_end as usize];
            let name = self.fs.name_at(src, at + 1, text);
            let v = self.define_named(name, text, loc, ty, ValueDef::FuncParam(n))?;
            self.fs.params.push(v);
            self.fs.srcmap.push_param_type(self.lex.loc_at(ty_at));
            params.push(ty);
        }
        Ok(Some((Signature::new(params, h.ret), h.newline)))
    }

    /// Moves past the newline at byte `p` that ends a header read by
    /// [`Self::fast_header`]: the body's first lines are read by
    /// [`Self::fast_lines`], the first other line's first token becomes the
    /// lookahead.
    pub(in crate::ir::parse) fn header_line_end(&mut self, p: usize) -> Result<()> {
        self.lex.skip_newline_at(p);
        #[cfg(test)]
        FAST_HEADERS.with(|n| n.set(n.get() + 1));
        self.after_fast_line()
    }

    /// Moves the lexer past the end of a line read by a fast path, at byte
    /// `p` (a newline or the end of the text): to the start of the next
    /// line, or to the end.
    #[inline]
    fn line_done(&mut self, p: usize) {
        if p < self.lex.src().len() {
            self.lex.skip_newline_at(p);
        } else {
            self.lex.skip_to(p);
        }
    }

    /// After a line read by a fast path in token mode (its end passed with
    /// [`Self::line_done`]): the lines after it that a fast path reads are
    /// read, and the first other line's first token becomes the lookahead,
    /// as after the general path's `end_of_line`.
    #[inline]
    pub(in crate::ir::parse) fn after_fast_line(&mut self) -> Result<()> {
        self.fast_lines()?;
        self.advance()?;
        Ok(())
    }

    /// Reads the lines from the lexer's position (the start of a line, no
    /// lookahead token made for it) as long as a fast path reads them:
    /// instruction lines ([`Self::fast_instruction_at`]), labels
    /// ([`Self::fast_label_at`]) and terminators
    /// ([`Self::fast_terminator_at`]). Their first word is found here from
    /// the bytes, without making a token. Returns at the first line none
    /// of them reads (a blank or comment line, `}`, anything else) with
    /// the lexer at its start: its first token is then made as usual.
    #[inline(never)]
    pub(in crate::ir::parse) fn fast_lines(&mut self) -> Result<()> {
        let b = self.lex.src().as_bytes();
        loop {
            let start = skip_spaces(b, self.lex.pos());
            let Some(&c) = b.get(start) else {
                return Ok(());
            };
            if c == b'%' {
                // A value name as the lexer reads it (one starting with a
                // digit is left to it).
                let s = start + 1;
                let e = name_end(b, s);
                if e == s || !is_name_start(b[s]) {
                    return Ok(());
                }
                if !(self.fast_instruction_at(s, e)? || self.fast_other_at(s, e)?) {
                    self.fs.declined = s;
                    return Ok(());
                }
            } else if is_name_start(c) {
                let e = name_end(b, start + 1);
                if !(self.fast_label_at(start, e)?
                    || self.fast_terminator_at(start, e)?
                    || self.fast_block_line_at(start, e)?)
                {
                    self.fs.declined = start;
                    return Ok(());
                }
            } else {
                return Ok(());
            }
        }
    }

    /// Reads the terminator line whose mnemonic is the lookahead when it is
    /// `ret [OPERAND]`, `jmp LABEL` or `br OPERAND, LABEL, LABEL` with
    /// operands as [`Self::fast_instruction`] reads them and targets
    /// without arguments; returns whether it did. When it returns `false`,
    /// nothing has changed (the general path reads the line).
    pub(in crate::ir::parse) fn fast_terminator(&mut self) -> Result<bool> {
        let end = self.lex.pos();
        let start = end - self.tok.text.len();
        if start == self.fs.declined || !self.fast_terminator_at(start, end)? {
            return Ok(false);
        }
        self.after_fast_line()?;
        Ok(true)
    }

    /// [`Self::fast_terminator`] for the line whose mnemonic is the word
    /// `start..end` of the text (read or not as the lookahead): on success
    /// the lexer is moved past the line ([`Self::line_done`]), no token
    /// made.
    #[inline]
    fn fast_terminator_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let mn = Token {
            kind: TokKind::Ident,
            text: &src[start..end],
            loc: self.lex.loc_at(start),
        };
        let opcode = match mn.text {
            "ret" => Opcode::Ret,
            "br" => Opcode::Br,
            "jmp" => Opcode::Jmp,
            _ => return Ok(false),
        };
        if self.fs.cur.is_none() {
            return Ok(false);
        }
        let Some(line) = scan_terminator(src, end, opcode) else {
            return Ok(false);
        };
        // Record the instruction as the general path does.
        self.fs.srcmap.start_inst(mn.loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let op = match line.op {
            None => None,
            Some((raw, at)) => {
                let loc = self.lex.loc_at(at);
                let op = match raw {
                    Raw::Value(text) => {
                        let name = self.fs.name_in(src, at + 1, text);
                        Operand::Value(self.use_name(name, loc)?)
                    }
                    Raw::Name(name) => Operand::Value(self.use_name(name, loc)?),
                    Raw::Int(v) => Operand::Const(Const::Int(v)),
                };
                self.fs.srcmap.push_token(loc);
                Some(op)
            }
        };
        let mut blocks = [Block(0); 2];
        for (block, &(text, at)) in blocks.iter_mut().zip(&line.labels).take(line.num_labels) {
            let name = self.fs.name_at(src, at, text);
            *block = self.target_of(name, self.lex.loc_at(at))?;
        }
        let call = |block| BlockCall {
            block,
            args: OpList::EMPTY,
        };
        let kind = match (opcode, op) {
            (Opcode::Ret, value) => InstKind::Ret { value },
            (Opcode::Br, Some(cond)) => InstKind::Br {
                cond,
                then_dest: call(blocks[0]),
                else_dest: call(blocks[1]),
            },
            _ => InstKind::Jmp {
                dest: call(blocks[0]),
            },
        };
        self.push_instruction(opcode, None, None, mn.loc, kind, mn.loc)?;
        self.line_done(line.end);
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }

    /// Reads the instruction line whose first token, `%name`, is the
    /// lookahead, when the line has the fast path's shape; returns whether
    /// it did. When it returns `false`, nothing has changed.
    #[inline(never)]
    pub(in crate::ir::parse) fn fast_instruction(&mut self) -> Result<bool> {
        let end = self.lex.pos();
        let start = end - self.tok.text.len();
        if start == self.fs.declined
            || !(self.fast_instruction_at(start, end)? || self.fast_other_at(start, end)?)
        {
            return Ok(false);
        }
        self.after_fast_line()?;
        Ok(true)
    }

    /// The mnemonic `start..end` of the text when the fast path reads its
    /// lines: a unary, binary or select opcode with a valid suffix and a
    /// result.
    fn read_mnemonic(&self, start: usize, end: usize) -> Option<FastOp> {
        let mn = &self.lex.src()[start..end];
        // The mnemonic is short: a byte loop, not `split_once`'s search.
        let (name, suffix) = match mn.bytes().position(|c| c == b'.') {
            // `.` is ASCII: both ends are char boundaries.
            Some(k) => (&mn[..k], Some(&mn[k + 1..])),
            None => (mn, None),
        };
        let opcode = Opcode::from_name(name)?;
        let info = opcode.info();
        let (count, form) = match info.format {
            Format::Unary => (1, Form::Plain),
            Format::Binary => (2, Form::Plain),
            Format::Select => (3, Form::Plain),
            Format::Load => (0, Form::Load),
            Format::Call => (0, Form::Call),
            Format::Addr => (0, Form::Addr),
            Format::Alloca => (0, Form::Alloca),
            _ => return None,
        };
        let mn_tok = Token {
            kind: TokKind::Ident,
            text: mn,
            loc: self.lex.loc_at(start),
        };
        let ty = self.suffix(mn_tok, name, suffix, info.suffix).ok()?;
        info.result_type(ty)?;
        Some(FastOp {
            key: 0,
            opcode,
            ty,
            count,
            form,
        })
    }

    /// [`Self::fast_instruction`] for the line whose result's name (after
    /// its `%`) is `start..end` of the text, a name the lexer reads as a
    /// value name (read or not as the lookahead): on success the lexer is
    /// moved past the line ([`Self::line_done`]), no token made.
    #[inline(never)]
    fn fast_instruction_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        let result = Token {
            kind: TokKind::Local,
            text: &src[start..end],
            loc: self.lex.loc_at(start - 1),
        };
        // ` = `, then the mnemonic.
        let mut p = skip_spaces(b, end);
        if b.get(p) != Some(&b'=') {
            return Ok(false);
        }
        p = skip_spaces(b, p + 1);
        let mn_start = p;
        if !b.get(p).is_some_and(|&c| is_name_start(c)) {
            return Ok(false);
        }
        let (opcode, ty, count) = match self.fs.mnemonics.find(b, p) {
            Some((op, end)) => {
                p = end;
                (op.opcode, op.ty, op.count as usize)
            }
            None => {
                while p < b.len() && is_name_char(b[p]) {
                    p += 1;
                }
                let Some(op) = self.read_mnemonic(mn_start, p) else {
                    return Ok(false);
                };
                self.fs.mnemonics.insert(b, mn_start, p, op);
                (op.opcode, op.ty, op.count as usize)
            }
        };
        // (`count` 0: a line for `fast_other_at`.)
        if self.fs.cur.is_none() || count == 0 {
            return Ok(false);
        }
        let mn_loc = self.lex.loc_at(mn_start);
        // The operands, as the lexer would read them.
        let mut ops = [(Raw::Int(Int96::ZERO), 0usize); 3];
        for (k, slot) in ops.iter_mut().enumerate().take(count) {
            if k > 0 {
                p = skip_spaces(b, p);
                if b.get(p) != Some(&b',') {
                    return Ok(false);
                }
                p += 1;
            }
            p = skip_spaces(b, p);
            let start = p;
            // A name this function has used, found from one word of the
            // text; any other operand read byte by byte.
            let found = match b.get(p) {
                Some(b'%') => self.fs.short.find_at(b, p + 1),
                _ => None,
            };
            let (raw, end) = match found {
                Some((name, end)) => (Raw::Name(name), end),
                None => match raw_operand(src, p) {
                    Some(r) => r,
                    None => return Ok(false),
                },
            };
            p = end;
            *slot = (raw, start);
        }
        p = skip_spaces(b, p);
        if !matches!(b.get(p), None | Some(b'\n')) {
            return Ok(false);
        }
        // The result must be new (the general path reports a duplicate).
        let result_name = self.fs.name_at(src, start, result.text);
        if self.fs.value_of[result_name.index()] != NONE {
            return Ok(false);
        }
        // Record the instruction as the general path does.
        self.fs.srcmap.start_inst(mn_loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let mut args = [Operand::Const(Const::Int(Int96::ZERO)); 3];
        for (arg, &(raw, at)) in args.iter_mut().zip(&ops).take(count) {
            let loc = self.lex.loc_at(at);
            let name = match raw {
                Raw::Value(text) => Some(self.fs.name_in(src, at + 1, text)),
                Raw::Name(name) => Some(name),
                Raw::Int(v) => {
                    *arg = Operand::Const(Const::Int(v));
                    None
                }
            };
            if let Some(name) = name {
                *arg = Operand::Value(self.use_name(name, loc)?);
            }
            self.fs.srcmap.push_token(loc);
        }
        let kind = match count {
            1 => InstKind::Unary { arg: args[0] },
            2 => InstKind::Binary {
                args: [args[0], args[1]],
            },
            _ => InstKind::Select { args },
        };
        self.push_instruction(opcode, ty, Some(result_name), result.loc, kind, mn_loc)?;
        self.line_done(p);
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }
}
