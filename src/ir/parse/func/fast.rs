//! The fast path for the most common line of a function body:
//! `%name = OP[.T] A[, B[, C]]` of a unary, binary or select opcode whose
//! operands are value names or decimal integer literals.
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
use crate::ir::function::{Const, InstKind, Int96, Operand};
use crate::ir::lexer::{is_name_char, is_name_start, skip_spaces, TokKind, Token};
use crate::ir::opcode::{Format, Opcode};
use crate::ir::parse::parse_int;

/// An operand as written: a value name (without `%`) or an integer.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Value(&'a str),
    Int(Int96),
}

#[cfg(test)]
thread_local! {
    /// Lines read by the fast path on this thread (for tests).
    pub(crate) static FAST_LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Longest decimal literal read here (the general path reads longer ones).
const MAX_DIGITS: usize = 18;

impl<'a> Parser<'a, '_> {
    /// Reads the instruction line whose first token, `%name`, is the
    /// lookahead, when the line has the fast path's shape; returns whether
    /// it did. When it returns `false`, nothing has changed.
    pub(in crate::ir::parse) fn fast_instruction(&mut self) -> Result<bool> {
        let result = self.tok;
        let src = self.lex.src();
        let b = src.as_bytes();
        // ` = `, then the mnemonic.
        let mut p = skip_spaces(b, self.lex.pos());
        if b.get(p) != Some(&b'=') {
            return Ok(false);
        }
        p = skip_spaces(b, p + 1);
        let mn_start = p;
        if !b.get(p).is_some_and(|&c| is_name_start(c)) {
            return Ok(false);
        }
        while p < b.len() && is_name_char(b[p]) {
            p += 1;
        }
        let mn = &src[mn_start..p];
        let (name, suffix) = match mn.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (mn, None),
        };
        let Some(opcode) = Opcode::from_name(name) else {
            return Ok(false);
        };
        let info = opcode.info();
        let count = match info.format {
            Format::Unary => 1,
            Format::Binary => 2,
            Format::Select => 3,
            _ => return Ok(false),
        };
        let mn_loc = self.lex.loc_at(mn_start);
        let mn_tok = Token {
            kind: TokKind::Ident,
            text: mn,
            loc: mn_loc,
        };
        let Ok(ty) = self.suffix(mn_tok, name, suffix, info.suffix) else {
            return Ok(false);
        };
        if self.fs.cur.is_none() || info.result_type(ty).is_none() {
            return Ok(false);
        }
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
                        _ => return Ok(false),
                    }
                    Raw::Value(text)
                }
                Some(&c) if c.is_ascii_digit() || c == b'-' => {
                    p += usize::from(c == b'-');
                    let digits = p;
                    while p < b.len() && b[p].is_ascii_digit() {
                        p += 1;
                    }
                    // Hex, floats, long literals and malformed numbers
                    // take the general path.
                    let n = p - digits;
                    if n == 0 || n > MAX_DIGITS || b.get(p).is_some_and(|&c| is_name_char(c)) {
                        return Ok(false);
                    }
                    match parse_int(&src[start..p]).and_then(Int96::new) {
                        Some(v) => Raw::Int(v),
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
            *slot = (raw, start);
        }
        p = skip_spaces(b, p);
        if !matches!(b.get(p), None | Some(b'\n')) {
            return Ok(false);
        }
        // The result must be new (the general path reports a duplicate).
        let result_name = self.fs.name(result.text);
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
            *arg = match raw {
                Raw::Value(text) => Operand::Value(self.use_value(Token {
                    kind: TokKind::Local,
                    text,
                    loc,
                })?),
                Raw::Int(v) => Operand::Const(Const::Int(v)),
            };
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
        // The newline (or the end) becomes the lookahead, and is consumed
        // as the general path's `end_of_line` would.
        self.lex.skip_to(p);
        self.advance()?;
        self.end_of_line("instruction")?;
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }
}
