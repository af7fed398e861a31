//! Lexer for the `.kir` text form (SPEC section 1), used by [`super::parse`].
//!
//! It produces one token at a time, so the parser sees the first error in
//! source order whether it is lexical or syntactic. Tokens are `Copy` (a
//! string literal's decoded bytes stay in the lexer, see
//! [`Lexer::string_bytes`]); nothing is allocated except to decode string
//! literals. It runs in time linear in the input and accepts any `&str`
//! (NULs, non-ASCII, very long lines) without panicking: every slice it
//! takes starts and ends at an ASCII byte, hence at a char boundary.
//!
//! Columns count characters (not bytes), 1-based. Rather than counting
//! per byte, the lexer keeps the byte offset where the line starts and the
//! number of UTF-8 continuation bytes seen on the line so far; only
//! comments and strings can hold non-ASCII text before a token, and they
//! add their continuation bytes as they are skipped. Newlines are tokens
//! because each instruction, label and item must start a line.

use super::srcmap::Loc;

/// What a token is. Numbers keep their text: the parser decides how to
/// read them, since a literal's type comes from its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A bare name: keyword, opcode (with its `.T` suffix), type or label.
    Ident,
    /// `@name`; the token text is the name without `@`.
    Global,
    /// `%name`; the token text is the name without `%`.
    Local,
    /// An integer literal: decimal or `0x` hex, optional leading `-`.
    Int,
    /// A float literal with `.` or an exponent, or `-inf` / `-nan`. (Plain
    /// `inf` and `nan` are [`TokKind::Ident`]s, as they may be labels.)
    Float,
    /// A string literal; its decoded bytes are [`Lexer::string_bytes`]
    /// until the next string.
    Str,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Equals,
    Arrow,
    Plus,
    Newline,
    Eof,
}

/// One token: its kind, its text (see [`TokKind`]) and where it starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token<'a> {
    pub kind: TokKind,
    pub text: &'a str,
    pub loc: Loc,
}

/// A lexical error: where and what (boxed, so that a token result stays
/// small on the hot path).
pub(crate) type LexError = Box<(Loc, String)>;

#[cold]
fn lex_err(loc: Loc, msg: impl Into<String>) -> LexError {
    Box::new((loc, msg.into()))
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    /// Byte offset of the current line's first byte.
    line_start: usize,
    /// UTF-8 continuation bytes between `line_start` and `pos`.
    cont: usize,
    /// The decoded bytes of the last string literal.
    string: Vec<u8>,
}

/// Byte classes for the hot loops.
const NAME_START: u8 = 1;
const NAME_CHAR: u8 = 2;
const DIGIT: u8 = 4;
const HEX: u8 = 8;
const SPACE: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphabetic() || c == b'_' || c == b'.' || c == b'$' {
            k |= NAME_START | NAME_CHAR;
        }
        if c.is_ascii_digit() {
            k |= NAME_CHAR | DIGIT;
        }
        if c.is_ascii_hexdigit() {
            k |= HEX;
        }
        if c == b' ' || c == b'\t' || c == b'\r' {
            k |= SPACE;
        }
        t[b] = k;
        b += 1;
    }
    t
};

#[inline]
pub(crate) fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & NAME_START != 0
}

#[inline]
pub(crate) fn is_name_char(b: u8) -> bool {
    CLASS[b as usize] & NAME_CHAR != 0
}

/// The position of the first byte at or after `p` that is not a space,
/// tab or carriage return. Most calls find a token at `p` or after one
/// space (between tokens): those two cases are settled by comparing a
/// byte or two with `' '` (every byte above it is not a space). Longer
/// runs of spaces (indentation) are skipped eight bytes at a time.
#[inline]
pub(crate) fn skip_spaces(bytes: &[u8], mut p: usize) -> usize {
    match bytes.get(p) {
        None => return p,
        Some(&c) if c > b' ' => return p,
        Some(b' ') if bytes.get(p + 1).is_none_or(|&c| c > b' ') => return p + 1,
        _ => {}
    }
    while let Some(word) = bytes.get(p..p + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let not_space = u64::from_le_bytes(w) ^ 0x2020_2020_2020_2020;
        if not_space != 0 {
            p += not_space.trailing_zeros() as usize / 8;
            if CLASS[bytes[p] as usize] & SPACE == 0 {
                return p;
            }
        } else {
            p += 8;
            continue;
        }
        p += 1;
    }
    while p < bytes.len() && CLASS[bytes[p] as usize] & SPACE != 0 {
        p += 1;
    }
    p
}

/// The length of the line starting at `bytes[0]` (up to its newline or the
/// end), and the UTF-8 continuation bytes in it: a comment's bytes are
/// scanned sixteen at a time on x86-64 (SSE2, part of its baseline; about
/// half of the corpus's bytes are comments), eight at a time elsewhere and
/// for the rest.
#[inline]
fn line_len_and_continuations(bytes: &[u8]) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_set1_epi8,
        };
        let mut i = 0;
        let mut cont = 0;
        while i + 16 <= bytes.len() {
            // SAFETY: SSE2 is always there on x86-64; the unaligned load
            // reads `bytes[i..i + 16]`, inside the slice (checked above).
            let (nl, high, conts) = unsafe {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                let nl = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)));
                let top2 = _mm_and_si128(v, _mm_set1_epi8(0xC0u8 as i8));
                let conts = _mm_movemask_epi8(_mm_cmpeq_epi8(top2, _mm_set1_epi8(0x80u8 as i8)));
                (nl as u32, _mm_movemask_epi8(v) as u32, conts as u32)
            };
            // Bit k of each mask is byte k's; `high`: bytes >= 0x80 (most
            // comments are ASCII: no count to make).
            if nl != 0 {
                let k = nl.trailing_zeros() as usize;
                if high != 0 {
                    cont += (conts & ((1u32 << k) - 1)).count_ones() as usize;
                }
                return (i + k, cont);
            }
            if high != 0 {
                cont += conts.count_ones() as usize;
            }
            i += 16;
        }
        let (len, more) = line_len_and_continuations_by_words(&bytes[i..]);
        (i + len, cont + more)
    }
    #[cfg(not(target_arch = "x86_64"))]
    line_len_and_continuations_by_words(bytes)
}

/// The length of the line at the start of `bytes` (to its newline or the
/// end), for a comment line whose columns nobody reads (a comment line
/// after the first of a run: see [`Lexer::comment`]): only the newline is
/// looked for, sixteen bytes at a time on x86-64.
#[inline]
fn line_len(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut i = 0;
        while i + 16 <= bytes.len() {
            // SAFETY: SSE2 is always there on x86-64; the unaligned load
            // reads `bytes[i..i + 16]`, inside the slice (checked above).
            let nl = unsafe {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u32
            };
            if nl != 0 {
                return i + nl.trailing_zeros() as usize;
            }
            i += 16;
        }
        i + line_len_and_continuations_by_words(&bytes[i..]).0
    }
    #[cfg(not(target_arch = "x86_64"))]
    line_len_and_continuations_by_words(bytes).0
}

/// [`line_len_and_continuations`] eight bytes at a time.
#[inline]
fn line_len_and_continuations_by_words(bytes: &[u8]) -> (usize, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    let mut cont = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        // Bit 7 of each byte that is `10xxxxxx`.
        let conts = w & !(w << 1) & HIGH;
        // Bit 7 of the first newline byte is exact (the borrow of the
        // subtraction only reaches bytes above it).
        let x = w ^ (ONES * u64::from(b'\n'));
        let nl = x.wrapping_sub(ONES) & !x & HIGH;
        if nl != 0 {
            let k = nl.trailing_zeros() as usize / 8;
            let below = (1u64 << (8 * k)).wrapping_sub(1);
            if conts & below != 0 {
                cont += (conts & below).count_ones() as usize;
            }
            return (i + k, cont);
        }
        // Most comments are ASCII: no count to make.
        if conts != 0 {
            cont += conts.count_ones() as usize;
        }
        i += 8;
    }
    while i < bytes.len() && bytes[i] != b'\n' {
        cont += usize::from(bytes[i] & 0xC0 == 0x80);
        i += 1;
    }
    (i, cont)
}

impl<'a> Lexer<'a> {
    /// A lexer over `src` whose first line is numbered `first_line`.
    pub fn new(src: &'a str, first_line: u32) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            line: first_line.max(1),
            line_start: 0,
            cont: 0,
            string: Vec::new(),
        }
    }

    /// The text being read.
    #[inline]
    pub fn src(&self) -> &'a str {
        self.src
    }

    /// The byte offset of the next byte to read.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Continues reading at byte `pos`, which must be on the current line
    /// with only ASCII bytes since the current position (so that columns
    /// stay right); a parser's fast path that read those bytes itself
    /// moves the lexer past them this way.
    #[inline]
    pub fn skip_to(&mut self, pos: usize) {
        debug_assert!(pos >= self.pos && self.bytes[self.pos..pos].is_ascii());
        debug_assert!(!self.bytes[self.pos..pos].contains(&b'\n'));
        self.pos = pos;
    }

    /// Continues reading after the newline at byte `pos` (on the current
    /// line, with only ASCII bytes since the current position, as for
    /// [`Lexer::skip_to`]): a parser's fast path that read a whole line
    /// moves to the next one without making the newline token.
    #[inline]
    pub fn skip_newline_at(&mut self, pos: usize) {
        debug_assert_eq!(self.bytes.get(pos), Some(&b'\n'));
        self.skip_to(pos);
        self.pos = pos + 1;
        self.line = self.line.saturating_add(1);
        self.line_start = pos + 1;
        self.cont = 0;
    }

    /// The decoded bytes of the last [`TokKind::Str`] token.
    pub fn string_bytes(&self) -> &[u8] {
        &self.string
    }

    /// The location of byte `pos` of the current line.
    #[inline]
    pub fn loc_at(&self, pos: usize) -> Loc {
        let col = (pos - self.line_start - self.cont + 1).min(u32::MAX as usize);
        Loc::new(self.line, col as u32)
    }

    #[inline]
    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(self.pos + i).copied()
    }

    #[inline]
    fn skip_name_chars(&mut self) {
        let b = self.bytes;
        let mut p = self.pos;
        while p < b.len() && is_name_char(b[p]) {
            p += 1;
        }
        self.pos = p;
    }

    #[inline]
    fn token(&self, kind: TokKind, start: usize, loc: Loc) -> Token<'a> {
        Token {
            kind,
            text: &self.src[start..self.pos],
            loc,
        }
    }

    /// The next token; [`TokKind::Eof`] forever at the end.
    ///
    /// The common tokens (names, `%values`, punctuation, newlines) are
    /// read here in one pass over a byte-class table; numbers, strings,
    /// `@symbols`, comments and errors take the slower paths.
    #[inline(always)]
    pub fn next_token(&mut self) -> Result<Token<'a>, LexError> {
        let bytes = self.bytes;
        let p = skip_spaces(bytes, self.pos);
        self.pos = p;
        let loc = self.loc_at(p);
        let Some(&b) = bytes.get(p) else {
            return Ok(self.token(TokKind::Eof, p, loc));
        };
        let kind = match b {
            b'%' => {
                let start = p + 1;
                let mut q = start;
                while q < bytes.len() && CLASS[bytes[q] as usize] & NAME_CHAR != 0 {
                    q += 1;
                }
                if q > start && is_name_start(bytes[start]) {
                    self.pos = q;
                    return Ok(self.token(TokKind::Local, start, loc));
                }
                return self.sigil_name(b, loc);
            }
            _ if is_name_start(b) => {
                let mut q = p + 1;
                while q < bytes.len() && CLASS[bytes[q] as usize] & NAME_CHAR != 0 {
                    q += 1;
                }
                self.pos = q;
                return Ok(self.token(TokKind::Ident, p, loc));
            }
            b'\n' => {
                self.pos = p + 1;
                let t = self.token(TokKind::Newline, p, loc);
                self.line = self.line.saturating_add(1);
                self.line_start = p + 1;
                self.cont = 0;
                return Ok(t);
            }
            b',' => TokKind::Comma,
            b'=' => TokKind::Equals,
            b'(' => TokKind::LParen,
            b')' => TokKind::RParen,
            b':' => TokKind::Colon,
            b'{' => TokKind::LBrace,
            b'}' => TokKind::RBrace,
            b'+' => TokKind::Plus,
            b'-' if bytes.get(p + 1) == Some(&b'>') => {
                self.pos = p + 2;
                return Ok(self.token(TokKind::Arrow, p, loc));
            }
            b'0'..=b'9' | b'-' => return self.number(loc),
            b'@' => return self.sigil_name(b, loc),
            b';' => return self.comment(p),
            b'"' => return self.string(loc),
            _ => return Err(self.unexpected(p, loc)),
        };
        self.pos = p + 1;
        Ok(self.token(kind, p, loc))
    }

    #[cold]
    fn unexpected(&self, p: usize, loc: Loc) -> LexError {
        let c = self.src[p..].chars().next().unwrap_or('?');
        lex_err(loc, format!("unexpected character '{}'", c.escape_debug()))
    }

    /// Skips the comment at `p` to the end of its line; the token after it:
    /// the newline ending it, which also stands for the comment lines and
    /// blank lines right after it (skipped here, a few instructions each:
    /// about half of the corpus's lines are comments). The parser reads
    /// any run of newlines as one wherever it reads a newline, so it sees
    /// the same text; the next token's location counts the lines skipped.
    #[inline(never)]
    fn comment(&mut self, p: usize) -> Result<Token<'a>, LexError> {
        let bytes = self.bytes;
        let (len, cont) = line_len_and_continuations(&bytes[p..]);
        self.cont += cont;
        let nl = p + len;
        if nl == bytes.len() {
            self.pos = nl;
            return self.next_token();
        }
        let loc = self.loc_at(nl);
        let newline = Token {
            kind: TokKind::Newline,
            text: &self.src[nl..nl + 1],
            loc,
        };
        // `start`: the first byte of a line not yet known to be blank or a
        // comment; `lines`: the newlines before it from `nl` on.
        let mut start = nl + 1;
        let mut lines: u32 = 1;
        loop {
            let q = skip_spaces(bytes, start);
            let end = match bytes.get(q) {
                Some(b'\n') => q,
                Some(b';') => q + line_len(&bytes[q..]),
                _ => break,
            };
            // A comment that ends the text is left to the next call.
            if end == bytes.len() {
                break;
            }
            start = end + 1;
            lines += 1;
        }
        self.pos = start;
        self.line = self.line.saturating_add(lines);
        self.line_start = start;
        self.cont = 0;
        Ok(newline)
    }

    #[inline(never)]
    fn sigil_name(&mut self, sigil: u8, loc: Loc) -> Result<Token<'a>, LexError> {
        self.pos += 1;
        let start = self.pos;
        self.skip_name_chars();
        let name = &self.src[start..self.pos];
        let first = name.as_bytes().first().copied();
        if sigil == b'@' {
            match first {
                None => Err(lex_err(loc, "expected a symbol name after '@'")),
                Some(c) if !is_name_start(c) => {
                    Err(lex_err(loc, format!("invalid symbol name '@{name}'")))
                }
                Some(_) => Ok(self.token(TokKind::Global, start, loc)),
            }
        } else {
            match first {
                None => Err(lex_err(loc, "expected a value name after '%'")),
                Some(c) if c.is_ascii_digit() && !name.bytes().all(|c| c.is_ascii_digit()) => {
                    Err(lex_err(loc, format!("invalid value name '%{name}'")))
                }
                Some(_) => Ok(self.token(TokKind::Local, start, loc)),
            }
        }
    }

    /// Skips digits of the class `class`; returns how many.
    #[inline]
    fn digits(&mut self, class: u8) -> usize {
        let b = self.bytes;
        let from = self.pos;
        let mut p = from;
        while p < b.len() && CLASS[b[p] as usize] & class != 0 {
            p += 1;
        }
        self.pos = p;
        p - from
    }

    #[inline(never)]
    fn number(&mut self, loc: Loc) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        if self.peek_at(0) == Some(b'-') {
            self.pos += 1;
            for word in ["inf", "nan"] {
                let end = self.pos + 3;
                if self.bytes.get(self.pos..end) == Some(word.as_bytes())
                    && !self.bytes.get(end).copied().is_some_and(is_name_char)
                {
                    self.pos = end;
                    return Ok(self.token(TokKind::Float, start, loc));
                }
            }
            if !self.peek_at(0).is_some_and(|b| b.is_ascii_digit()) {
                return Err(lex_err(loc, "unexpected character '-'"));
            }
        }
        let mut kind = TokKind::Int;
        let mut ok = true;
        if self.peek_at(0) == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.pos += 2;
            ok = self.digits(HEX) > 0;
        } else {
            self.digits(DIGIT);
            if self.peek_at(0) == Some(b'.') {
                self.pos += 1;
                kind = TokKind::Float;
                ok &= self.digits(DIGIT) > 0;
            }
            if matches!(self.peek_at(0), Some(b'e' | b'E')) {
                self.pos += 1;
                kind = TokKind::Float;
                if matches!(self.peek_at(0), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                ok &= self.digits(DIGIT) > 0;
            }
        }
        if !ok || self.peek_at(0).is_some_and(is_name_char) {
            self.skip_name_chars();
            let text = &self.src[start..self.pos];
            return Err(lex_err(
                loc,
                format!("invalid number literal '{}'", shorten(text)),
            ));
        }
        Ok(self.token(kind, start, loc))
    }

    #[inline(never)]
    fn string(&mut self, loc: Loc) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        self.pos += 1;
        self.string.clear();
        loop {
            let esc_loc = self.loc_at(self.pos);
            match self.peek_at(0) {
                None | Some(b'\n') => return Err(lex_err(loc, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(self.token(TokKind::Str, start, loc));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let decoded = match self.peek_at(0) {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'\\') => b'\\',
                        Some(b'"') => b'"',
                        Some(b'0') => 0,
                        Some(b'x') => {
                            let hex = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(16));
                            match (hex(self.peek_at(1)), hex(self.peek_at(2))) {
                                (Some(h), Some(l)) => {
                                    self.pos += 2;
                                    (h * 16 + l) as u8
                                }
                                _ => {
                                    return Err(lex_err(
                                        esc_loc,
                                        "'\\x' escape needs two hex digits",
                                    ))
                                }
                            }
                        }
                        None | Some(b'\n') => return Err(lex_err(loc, "unterminated string")),
                        Some(_) => {
                            let c = self.src[self.pos..].chars().next().unwrap_or('?');
                            return Err(lex_err(
                                esc_loc,
                                format!("invalid escape '\\{}' in string", c.escape_debug()),
                            ));
                        }
                    };
                    self.pos += 1;
                    self.string.push(decoded);
                }
                Some(b) => {
                    self.string.push(b);
                    if b & 0xC0 == 0x80 {
                        self.cont += 1;
                    }
                    self.pos += 1;
                }
            }
        }
    }
}

/// `text`, cut to a readable length for an error message.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokKind, String)> {
        let mut lx = Lexer::new(src, 1);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().expect("lexes");
            if t.kind == TokKind::Eof {
                return out;
            }
            let text = match t.kind {
                TokKind::Str => String::from_utf8_lossy(lx.string_bytes()).into_owned(),
                _ => t.text.to_string(),
            };
            out.push((t.kind, text));
        }
    }

    fn lex_err(src: &str) -> (Loc, String) {
        let mut lx = Lexer::new(src, 1);
        loop {
            match lx.next_token() {
                Ok(t) if t.kind == TokKind::Eof => panic!("no error in {src:?}"),
                Ok(_) => {}
                Err(e) => return *e,
            }
        }
    }

    #[test]
    fn tokens_and_texts() {
        use TokKind::*;
        let toks = kinds("%a = add.i32 %0, -0x10 ; comment\n@f(1.5e-3) -> -inf");
        let expect = [
            (Local, "a"),
            (Equals, "="),
            (Ident, "add.i32"),
            (Local, "0"),
            (Comma, ","),
            (Int, "-0x10"),
            (Newline, "\n"),
            (Global, "f"),
            (LParen, "("),
            (Float, "1.5e-3"),
            (RParen, ")"),
            (Arrow, "->"),
            (Float, "-inf"),
        ];
        assert_eq!(toks.len(), expect.len());
        for ((k, t), (ek, et)) in toks.iter().zip(expect) {
            assert_eq!((k, t.as_str()), (&ek, et));
        }
    }

    #[test]
    fn strings_decode_escapes() {
        let mut lx = Lexer::new(r#""a\n\t\r\\\"\0\x41é""#, 1);
        assert_eq!(lx.next_token().unwrap().kind, TokKind::Str);
        assert_eq!(lx.string_bytes(), b"a\n\t\r\\\"\0A\xc3\xa9");
    }

    #[test]
    fn columns_count_chars() {
        let mut lx = Lexer::new("\"éé\" x", 7);
        lx.next_token().unwrap();
        let t = lx.next_token().unwrap();
        assert_eq!(t.loc, Loc::new(7, 6));
    }

    #[test]
    fn lexical_errors() {
        assert_eq!(
            lex_err("  #"),
            (Loc::new(1, 3), "unexpected character '#'".into())
        );
        assert_eq!(
            lex_err("a\0"),
            (Loc::new(1, 2), "unexpected character '\\0'".into())
        );
        assert_eq!(
            lex_err("x 12ab"),
            (Loc::new(1, 3), "invalid number literal '12ab'".into())
        );
        assert_eq!(
            lex_err("1."),
            (Loc::new(1, 1), "invalid number literal '1.'".into())
        );
        assert_eq!(
            lex_err("0x"),
            (Loc::new(1, 1), "invalid number literal '0x'".into())
        );
        assert_eq!(
            lex_err("1e+"),
            (Loc::new(1, 1), "invalid number literal '1e+'".into())
        );
        assert_eq!(
            lex_err("- 1"),
            (Loc::new(1, 1), "unexpected character '-'".into())
        );
        assert_eq!(
            lex_err("\n %"),
            (Loc::new(2, 2), "expected a value name after '%'".into())
        );
        assert_eq!(
            lex_err("@"),
            (Loc::new(1, 1), "expected a symbol name after '@'".into())
        );
        assert_eq!(
            lex_err("@1x"),
            (Loc::new(1, 1), "invalid symbol name '@1x'".into())
        );
        assert_eq!(
            lex_err("%1x"),
            (Loc::new(1, 1), "invalid value name '%1x'".into())
        );
        assert_eq!(
            lex_err(" \"ab\ncd\""),
            (Loc::new(1, 2), "unterminated string".into())
        );
        assert_eq!(
            lex_err("\"ab"),
            (Loc::new(1, 1), "unterminated string".into())
        );
        assert_eq!(
            lex_err("\"a\\q\""),
            (Loc::new(1, 3), "invalid escape '\\q' in string".into())
        );
        assert_eq!(
            lex_err("\"a\\x4\""),
            (Loc::new(1, 3), "'\\x' escape needs two hex digits".into())
        );
    }

    #[test]
    fn spaces_tabs_and_returns_are_skipped_in_any_run() {
        for n in 0..20 {
            for ws in [" ", "\t", "\r", " \t"] {
                let src = format!("{}x{}y", ws.repeat(n), ws.repeat(n));
                let b = src.as_bytes();
                let x = skip_spaces(b, 0);
                assert_eq!(b[x], b'x', "{src:?}");
                assert_eq!(b[skip_spaces(b, x + 1)], b'y', "{src:?}");
                assert_eq!(skip_spaces(b, src.len()), src.len());
            }
        }
        // Bytes at or below ' ' that are not spaces end the run as well,
        // right at the start or after one space (the quick cases) or more.
        for stop in ["\n", "\0", "\x0b", "\x1f"] {
            for lead in ["", " ", "  ", " \t", "         "] {
                let src = format!("{lead}{stop}x");
                assert_eq!(skip_spaces(src.as_bytes(), 0), lead.len(), "{src:?}");
            }
        }
        assert_eq!(skip_spaces(b"a ", 1), 2);
        assert_eq!(skip_spaces(b"a \xc3\xa9", 1), 2);
    }

    /// Every token but newlines, with its location, and the number of
    /// newline tokens before each.
    fn tokens_and_newlines(src: &str) -> Vec<(TokKind, String, Loc, usize)> {
        let mut lx = Lexer::new(src, 1);
        let mut out = Vec::new();
        let mut newlines = 0;
        loop {
            let t = lx.next_token().expect("lexes");
            match t.kind {
                TokKind::Newline => newlines += 1,
                TokKind::Eof => {
                    out.push((t.kind, String::new(), t.loc, newlines));
                    return out;
                }
                _ => {
                    out.push((t.kind, t.text.to_string(), t.loc, newlines));
                    newlines = 0;
                }
            }
        }
    }

    #[test]
    fn lines_after_a_comment_are_skipped_with_its_newline() {
        let src = "a ; one é\n; two\n\n   \n\t; three €\nb\n; last";
        let mut lx = Lexer::new(src, 1);
        let t = lx.next_token().unwrap();
        assert_eq!((t.kind, t.loc), (TokKind::Ident, Loc::new(1, 1)));
        // The comment's newline (column 10: nine characters before it)
        // stands for the four lines after it.
        let t = lx.next_token().unwrap();
        assert_eq!(
            (t.kind, t.text, t.loc),
            (TokKind::Newline, "\n", Loc::new(1, 10))
        );
        let t = lx.next_token().unwrap();
        assert_eq!(
            (t.kind, t.text, t.loc),
            (TokKind::Ident, "b", Loc::new(6, 1))
        );
        assert_eq!(lx.next_token().unwrap().kind, TokKind::Newline);
        // A comment that ends the text: the end, on its line.
        let t = lx.next_token().unwrap();
        assert_eq!((t.kind, t.loc), (TokKind::Eof, Loc::new(7, 7)));
        // Every mix of comment, blank and token lines: the same tokens at
        // the same places as with the comments blanked out (which takes
        // no comment path), and a newline wherever there was one.
        let lines = ["; c", "  ; é", "", "  ", "x y", "\t%v", "; €\t;"];
        let mut seed = 12345u32;
        for n in 1..400 {
            let mut text = String::new();
            for k in 0..(n % 9 + 1) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                text.push_str(lines[(seed >> 16) as usize % lines.len()]);
                if k < n % 9 || n % 2 == 0 {
                    text.push('\n');
                }
            }
            let blanked: String = text
                .split('\n')
                .map(|l| match l.find(';') {
                    Some(i) => format!("{}{}", &l[..i], " ".repeat(l[i..].chars().count())),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let got = tokens_and_newlines(&text);
            let want = tokens_and_newlines(&blanked);
            assert_eq!(got.len(), want.len(), "{text:?}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.0, &g.1, g.2), (w.0, &w.1, w.2), "{text:?}");
                assert_eq!(g.3 > 0, w.3 > 0, "{text:?}");
            }
        }
    }

    #[test]
    fn comment_scan_finds_the_newline_and_counts_continuations() {
        // Every split of a line with multi-byte characters around the
        // eight-byte words, against the byte-at-a-time count.
        let line = "; é€ x 𝄞 ab\u{7f}\u{80}";
        for pre in 0..10 {
            for post in ["", "\n", "\né z", "\n\n"] {
                let text = format!("{}{line}{post}", "a".repeat(pre));
                let b = &text.as_bytes()[pre..];
                let len = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
                let cont = b[..len].iter().filter(|&&c| c & 0xC0 == 0x80).count();
                assert_eq!(line_len_and_continuations(b), (len, cont), "{text:?}");
            }
        }
        // Every length up to four 16-byte blocks, with the newline (if
        // any) and multi-byte characters at every position in a block.
        for len in 0..70usize {
            for shift in 0..4 {
                for nl_at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                    let text = if shift % 2 == 0 {
                        "é€𝄞x"
                    } else {
                        "; ab x"
                    };
                    let mut b: Vec<u8> = text.bytes().cycle().skip(shift).take(len).collect();
                    if let Some(k) = nl_at.filter(|&k| k < len) {
                        b[k] = b'\n';
                    }
                    let l = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
                    let cont = b[..l].iter().filter(|&&c| c & 0xC0 == 0x80).count();
                    assert_eq!(line_len_and_continuations(&b), (l, cont), "{b:?}");
                    assert_eq!(line_len_and_continuations_by_words(&b), (l, cont), "{b:?}");
                    assert_eq!(line_len(&b), l, "{b:?}");
                }
            }
        }
        // Columns after a comment with non-ASCII text on the next line.
        let mut lx = Lexer::new("; ééé\n  x", 1);
        assert_eq!(lx.next_token().unwrap().kind, TokKind::Newline);
        assert_eq!(lx.next_token().unwrap().loc, Loc::new(2, 3));
    }

    #[test]
    fn long_literal_is_shortened() {
        let src = format!("{}z", "9".repeat(100_000));
        let (_, msg) = lex_err(&src);
        assert!(msg.len() < 120, "{msg}");
    }
}
