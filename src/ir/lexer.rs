//! Lexer for the `.kir` text form (SPEC section 1), used by [`super::parse`].
//!
//! It produces one token at a time, so the parser sees the first error in
//! source order whether it is lexical or syntactic. It never allocates
//! except to decode a string literal, runs in time linear in the input, and
//! accepts any `&str` (NULs, non-ASCII, very long lines) without panicking:
//! every slice it takes starts and ends at an ASCII byte, hence at a char
//! boundary.
//!
//! Columns count characters (not bytes), 1-based. Newlines are tokens
//! because each instruction, label and item must start a line.

use super::srcmap::Loc;

/// What a token is. Numbers keep their text: the parser decides how to
/// read them, since a literal's type comes from its position.
#[derive(Clone, Debug, PartialEq)]
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
    /// A string literal with its escapes decoded.
    Str(Vec<u8>),
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
#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    pub kind: TokKind,
    pub text: &'a str,
    pub loc: Loc,
}

/// A lexical error: where and what.
pub(crate) type LexError = (Loc, String);

pub(crate) struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    col: u32,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'$')
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$')
}

impl<'a> Lexer<'a> {
    /// A lexer over `src` whose first line is numbered `first_line`.
    pub fn new(src: &'a str, first_line: u32) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            line: first_line.max(1),
            col: 1,
        }
    }

    fn loc(&self) -> Loc {
        Loc::new(self.line, self.col)
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(self.pos + i).copied()
    }

    /// Advances over ASCII bytes that are not newlines.
    fn skip_ascii(&mut self, n: usize) {
        self.pos += n;
        self.col = self.col.saturating_add(n as u32);
    }

    /// Advances over one byte of any kind, keeping the column in chars.
    fn bump(&mut self) {
        let b = self.bytes[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            self.col = self.col.saturating_add(1);
        }
    }

    fn skip_name_chars(&mut self) {
        while self.peek_at(0).is_some_and(is_name_char) {
            self.skip_ascii(1);
        }
    }

    fn token(&self, kind: TokKind, start: usize, loc: Loc) -> Token<'a> {
        Token {
            kind,
            text: &self.src[start..self.pos],
            loc,
        }
    }

    /// The next token; [`TokKind::Eof`] forever at the end.
    pub fn next_token(&mut self) -> Result<Token<'a>, LexError> {
        loop {
            while matches!(self.peek_at(0), Some(b' ' | b'\t' | b'\r')) {
                self.skip_ascii(1);
            }
            let start = self.pos;
            let loc = self.loc();
            let Some(b) = self.peek_at(0) else {
                return Ok(self.token(TokKind::Eof, start, loc));
            };
            let single = |kind| (kind, 1usize);
            let (kind, len) = match b {
                b';' => {
                    while self.peek_at(0).is_some_and(|b| b != b'\n') {
                        self.bump();
                    }
                    continue;
                }
                b'\n' => {
                    self.bump();
                    return Ok(Token {
                        kind: TokKind::Newline,
                        text: &self.src[start..self.pos],
                        loc,
                    });
                }
                b'(' => single(TokKind::LParen),
                b')' => single(TokKind::RParen),
                b'{' => single(TokKind::LBrace),
                b'}' => single(TokKind::RBrace),
                b',' => single(TokKind::Comma),
                b':' => single(TokKind::Colon),
                b'=' => single(TokKind::Equals),
                b'+' => single(TokKind::Plus),
                b'-' if self.peek_at(1) == Some(b'>') => (TokKind::Arrow, 2),
                b'-' | b'0'..=b'9' => return self.number(),
                b'"' => return self.string(),
                b'@' | b'%' => return self.sigil_name(b),
                _ if is_name_start(b) => {
                    self.skip_name_chars();
                    return Ok(self.token(TokKind::Ident, start, loc));
                }
                _ => {
                    let c = self.src[self.pos..].chars().next().unwrap_or('?');
                    return Err((loc, format!("unexpected character '{}'", c.escape_debug())));
                }
            };
            self.skip_ascii(len);
            return Ok(self.token(kind, start, loc));
        }
    }

    fn sigil_name(&mut self, sigil: u8) -> Result<Token<'a>, LexError> {
        let loc = self.loc();
        self.skip_ascii(1);
        let start = self.pos;
        self.skip_name_chars();
        let name = &self.src[start..self.pos];
        let first = name.as_bytes().first().copied();
        if sigil == b'@' {
            match first {
                None => Err((loc, "expected a symbol name after '@'".into())),
                Some(c) if !is_name_start(c) => {
                    Err((loc, format!("invalid symbol name '@{name}'")))
                }
                Some(_) => Ok(self.token(TokKind::Global, start, loc)),
            }
        } else {
            match first {
                None => Err((loc, "expected a value name after '%'".into())),
                Some(c) if c.is_ascii_digit() && !name.bytes().all(|c| c.is_ascii_digit()) => {
                    Err((loc, format!("invalid value name '%{name}'")))
                }
                Some(_) => Ok(self.token(TokKind::Local, start, loc)),
            }
        }
    }

    fn digits(&mut self, hex: bool) -> usize {
        let mut n = 0;
        while self.peek_at(0).is_some_and(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        }) {
            self.skip_ascii(1);
            n += 1;
        }
        n
    }

    fn number(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        let loc = self.loc();
        if self.peek_at(0) == Some(b'-') {
            self.skip_ascii(1);
            for word in ["inf", "nan"] {
                let end = self.pos + 3;
                if self.bytes.get(self.pos..end) == Some(word.as_bytes())
                    && !self.bytes.get(end).copied().is_some_and(is_name_char)
                {
                    self.skip_ascii(3);
                    return Ok(self.token(TokKind::Float, start, loc));
                }
            }
            if !self.peek_at(0).is_some_and(|b| b.is_ascii_digit()) {
                return Err((loc, "unexpected character '-'".into()));
            }
        }
        let mut kind = TokKind::Int;
        let mut ok = true;
        if self.peek_at(0) == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.skip_ascii(2);
            ok = self.digits(true) > 0;
        } else {
            self.digits(false);
            if self.peek_at(0) == Some(b'.') {
                self.skip_ascii(1);
                kind = TokKind::Float;
                ok &= self.digits(false) > 0;
            }
            if matches!(self.peek_at(0), Some(b'e' | b'E')) {
                self.skip_ascii(1);
                kind = TokKind::Float;
                if matches!(self.peek_at(0), Some(b'+' | b'-')) {
                    self.skip_ascii(1);
                }
                ok &= self.digits(false) > 0;
            }
        }
        if !ok || self.peek_at(0).is_some_and(is_name_char) {
            self.skip_name_chars();
            let text = &self.src[start..self.pos];
            return Err((loc, format!("invalid number literal '{}'", shorten(text))));
        }
        Ok(self.token(kind, start, loc))
    }

    fn string(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        let loc = self.loc();
        self.skip_ascii(1);
        let mut out = Vec::new();
        loop {
            let esc_loc = self.loc();
            match self.peek_at(0) {
                None | Some(b'\n') => return Err((loc, "unterminated string".into())),
                Some(b'"') => {
                    self.skip_ascii(1);
                    return Ok(self.token(TokKind::Str(out), start, loc));
                }
                Some(b'\\') => {
                    self.skip_ascii(1);
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
                                    self.skip_ascii(2);
                                    (h * 16 + l) as u8
                                }
                                _ => {
                                    return Err((
                                        esc_loc,
                                        "'\\x' escape needs two hex digits".into(),
                                    ))
                                }
                            }
                        }
                        None | Some(b'\n') => return Err((loc, "unterminated string".into())),
                        Some(_) => {
                            let c = self.src[self.pos..].chars().next().unwrap_or('?');
                            return Err((
                                esc_loc,
                                format!("invalid escape '\\{}' in string", c.escape_debug()),
                            ));
                        }
                    };
                    self.skip_ascii(1);
                    out.push(decoded);
                }
                Some(b) => {
                    out.push(b);
                    self.bump();
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
            out.push((t.kind, t.text.to_string()));
        }
    }

    fn lex_err(src: &str) -> (Loc, String) {
        let mut lx = Lexer::new(src, 1);
        loop {
            match lx.next_token() {
                Ok(t) if t.kind == TokKind::Eof => panic!("no error in {src:?}"),
                Ok(_) => {}
                Err(e) => return e,
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
        let toks = kinds(r#""a\n\t\r\\\"\0\x41é""#);
        assert_eq!(toks[0].0, TokKind::Str(b"a\n\t\r\\\"\0A\xc3\xa9".to_vec()));
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
    fn long_literal_is_shortened() {
        let src = format!("{}z", "9".repeat(100_000));
        let (_, msg) = lex_err(&src);
        assert!(msg.len() < 120, "{msg}");
    }
}
