//! The fast path's rarer lines (see the parent module): `%name = OP[.T]
//! ...` lines with float literal operands, `load`, `call`, `addr` and
//! `alloca` lines; `store` lines; `jmp` and `br` lines with block
//! arguments and the labels with parameters they go to. They are read apart, only after the commonest
//! lines' paths ([`Parser::fast_instruction_at`], and
//! [`Parser::fast_label_at`] and [`Parser::fast_terminator_at`]) have
//! declined them, and with their own helpers, so that those paths stay
//! as lean as they were.

use super::{
    at_line_end, name_end, raw_label, raw_operand, raw_type, Form, Raw, MAX_CALL_ARGS, MAX_DIGITS,
    MAX_PARAMS,
};
use crate::ir::entities::{Block, Inst, SymId};
use crate::ir::function::{
    BlockCall, Callee, Const, InstKind, Int96, OpList, Operand, ValueDef, ValueList,
};
use crate::ir::lexer::{is_name_char, is_name_start, skip_spaces, TokKind, Token};
use crate::ir::opcode::{Format, Opcode};
use crate::ir::parse::func::NONE;
use crate::ir::parse::parse_f64;
use crate::ir::parse::{Parser, Result};
use crate::ir::types::Type;

#[cfg(test)]
use super::FAST_LINES;

/// An operand of a line read by [`Parser::fast_special_at`]: as
/// [`raw_operand`] reads one, or a float literal.
#[derive(Clone, Copy)]
pub(super) enum Arg<'a> {
    Raw(Raw<'a>),
    Float(f64),
}

/// The float literal `D.D` (a decimal point, no exponent) at byte `p` of
/// `src` as the general path reads it, and the byte after it; `None` for
/// other text.
fn raw_float(src: &str, p: usize) -> Option<(Arg<'_>, usize)> {
    let b = src.as_bytes();
    let start = p;
    let mut p = p + usize::from(b.get(p) == Some(&b'-'));
    let digits = p;
    while p < b.len() && b[p].is_ascii_digit() {
        p += 1;
    }
    if p == digits || p - digits > MAX_DIGITS || b.get(p) != Some(&b'.') {
        return None;
    }
    p += 1;
    let fraction = p;
    while p < b.len() && b[p].is_ascii_digit() {
        p += 1;
    }
    if p == fraction || b.get(p).is_some_and(|&c| is_name_char(c)) {
        return None;
    }
    Some((Arg::Float(parse_f64(&src[start..p])?), p))
}

/// The decimal literal at byte `p` of `src` as [`raw_operand`] reads one,
/// when it fits in a `u64`: its value, `p` and the byte after it.
fn u64_literal(src: &str, p: usize) -> Option<(u64, usize, usize)> {
    let Some((Raw::Int(v), end)) = raw_operand(src, p) else {
        return None;
    };
    Some((u64::try_from(v.get()).ok()?, p, end))
}

impl<'a> Parser<'a, '_> {
    /// [`Self::fast_instruction_at`] for the lines it leaves to the general
    /// path that [`Self::fast_special_at`] reads (a float operand, `load`,
    /// `call` and `addr`), apart so that the commonest lines' path stays as
    /// it is.
    #[cold]
    #[inline(never)]
    pub(super) fn fast_other_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        let mut p = skip_spaces(b, end);
        if b.get(p) != Some(&b'=') {
            return Ok(false);
        }
        let mn_start = skip_spaces(b, p + 1);
        if !b.get(mn_start).is_some_and(|&c| is_name_start(c)) {
            return Ok(false);
        }
        // The mnemonic as the commonest lines' path read it (and filed it).
        let op = match self.fs.mnemonics.find(b, mn_start) {
            Some((op, end)) => {
                p = end;
                op
            }
            None => {
                p = name_end(b, mn_start);
                match self.read_mnemonic(mn_start, p) {
                    Some(op) => op,
                    None => return Ok(false),
                }
            }
        };
        if self.fs.cur.is_none() {
            return Ok(false);
        }
        let (opcode, ty, form) = (op.opcode, op.ty, op.form);
        let count = usize::from(op.count);
        self.fast_special_at(start, end, mn_start, p, (opcode, ty, count), form)
    }

    /// The operand at byte `p` of the text as [`raw_operand`] reads one,
    /// or a float literal ([`raw_float`]), and the byte after it. Names
    /// are interned by [`Self::use_arg`] the general path's way (not
    /// through the short-name cache): the helpers of the commonest lines'
    /// path keep their single callers, and so their inlining.
    #[inline(never)]
    pub(super) fn fast_operand(&self, src: &'a str, p: usize) -> Option<(Arg<'a>, usize)> {
        match raw_operand(src, p) {
            Some((raw, end)) => Some((Arg::Raw(raw), end)),
            None => raw_float(src, p),
        }
    }

    /// The operand `arg` written at byte `at`, used: its token recorded.
    #[inline(never)]
    pub(super) fn use_arg(&mut self, arg: Arg<'_>, at: usize) -> Result<Operand> {
        let loc = self.lex.loc_at(at);
        let op = match arg {
            Arg::Raw(Raw::Value(text)) => {
                let name = self.fs.name(text);
                Operand::Value(self.use_name(name, loc)?)
            }
            Arg::Raw(Raw::Name(name)) => Operand::Value(self.use_name(name, loc)?),
            Arg::Raw(Raw::Int(v)) => Operand::Const(Const::Int(v)),
            Arg::Float(x) => Operand::Const(Const::float(x)),
        };
        self.fs.srcmap.push_token(loc);
        Ok(op)
    }

    /// The rest of a line `%name = load.T A[, OFFSET]`,
    /// `%name = call.T @f(ARGS)`, `%name = addr @s` or
    /// `%name = alloca SIZE[, ALIGN]` (the mnemonic's
    /// `form`), or of a [`Form::Plain`] line with a float operand, for
    /// [`Self::fast_instruction_at`], from byte `p` (after the mnemonic,
    /// read as `opcode` with type `ty` and `count` operands; the result's
    /// name is `start..end`), operands as [`Self::fast_operand`] reads
    /// them, a decimal offset: on success the lexer is moved past the
    /// line; when it returns `false`, nothing has changed but the result's
    /// name interned (as the general path would first).
    #[inline(never)]
    fn fast_special_at(
        &mut self,
        start: usize,
        end: usize,
        mn_start: usize,
        p: usize,
        (opcode, ty, count): (Opcode, Option<Type>, usize),
        form: Form,
    ) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        let mut p = skip_spaces(b, p);
        // The operands (a load's pointer, a call's arguments), the symbol.
        let mut ops = [(Arg::Float(0.0), 0usize); MAX_CALL_ARGS];
        let mut n = 0;
        let mut sym = (0, 0);
        let mut offset = None;
        // An alloca's size and alignment: value, first byte, byte after.
        let mut size = (0, 0, 0);
        let mut align = None;
        if form == Form::Plain {
            while n < count {
                if n > 0 {
                    if b.get(p) != Some(&b',') {
                        return Ok(false);
                    }
                    p = skip_spaces(b, p + 1);
                }
                let Some((arg, end)) = self.fast_operand(src, p) else {
                    return Ok(false);
                };
                ops[n] = (arg, p);
                n += 1;
                p = skip_spaces(b, end);
            }
        } else if form == Form::Load {
            let (raw, end) = match self.fast_operand(src, p) {
                Some(r) => r,
                None => return Ok(false),
            };
            ops[0] = (raw, p);
            n = 1;
            p = skip_spaces(b, end);
            // The offset: a decimal literal that fits in 64 bits.
            if b.get(p) == Some(&b',') {
                let at = skip_spaces(b, p + 1);
                let Some((Raw::Int(v), end)) = raw_operand(src, at) else {
                    return Ok(false);
                };
                let Ok(v) = i64::try_from(v.get()) else {
                    return Ok(false);
                };
                offset = Some((v, at));
                p = end;
            }
        } else if form == Form::Alloca {
            // `SIZE[, ALIGN]`: decimal literals that fit in 64 bits
            // unsigned.
            let Some(s) = u64_literal(src, p) else {
                return Ok(false);
            };
            size = s;
            p = skip_spaces(b, s.2);
            if b.get(p) == Some(&b',') {
                let Some(a) = u64_literal(src, skip_spaces(b, p + 1)) else {
                    return Ok(false);
                };
                align = Some(a);
                p = a.2;
            }
        } else {
            // `@s` as the lexer reads a symbol name.
            if b.get(p) != Some(&b'@') {
                return Ok(false);
            }
            let e = name_end(b, p + 1);
            if e == p + 1 || !is_name_start(b[p + 1]) {
                return Ok(false);
            }
            sym = (p, e);
            p = skip_spaces(b, e);
            if form == Form::Call {
                // `(ARGS)`.
                if b.get(p) != Some(&b'(') {
                    return Ok(false);
                }
                p = skip_spaces(b, p + 1);
                if b.get(p) == Some(&b')') {
                    p += 1;
                } else {
                    loop {
                        if n == MAX_CALL_ARGS {
                            return Ok(false);
                        }
                        let (raw, end) = match self.fast_operand(src, p) {
                            Some(r) => r,
                            None => return Ok(false),
                        };
                        ops[n] = (raw, p);
                        n += 1;
                        p = skip_spaces(b, end);
                        match b.get(p) {
                            Some(b',') => p = skip_spaces(b, p + 1),
                            Some(b')') => {
                                p += 1;
                                break;
                            }
                            _ => return Ok(false),
                        }
                    }
                }
            }
        }
        p = skip_spaces(b, p);
        if !at_line_end(b, p) {
            return Ok(false);
        }
        // The result must be new (the general path reports a duplicate).
        let result_name = self.fs.name_at(src, start, &src[start..end]);
        if self.fs.value_of[result_name.index()] != NONE {
            return Ok(false);
        }
        // Record the instruction as the general path does.
        let inst = Inst::new(self.fs.insts.len());
        let mn_loc = self.lex.loc_at(mn_start);
        self.fs.srcmap.start_inst(mn_loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let kind = if form == Form::Plain {
            let mut args = [Operand::Const(Const::Int(Int96::ZERO)); 3];
            for (arg, &(raw, at)) in args.iter_mut().zip(&ops[..n]) {
                *arg = self.use_arg(raw, at)?;
            }
            match count {
                1 => InstKind::Unary { arg: args[0] },
                2 => InstKind::Binary {
                    args: [args[0], args[1]],
                },
                _ => InstKind::Select { args },
            }
        } else if form == Form::Load {
            let ptr = self.use_arg(ops[0].0, ops[0].1)?;
            let offset = match offset {
                Some((v, at)) => {
                    self.fs.srcmap.push_token(self.lex.loc_at(at));
                    v
                }
                None => 0,
            };
            InstKind::Load { ptr, offset }
        } else if form == Form::Alloca {
            self.fs.srcmap.push_token(self.lex.loc_at(size.1));
            let align = match align {
                Some((a, at, _)) => {
                    self.fs.srcmap.push_token(self.lex.loc_at(at));
                    a
                }
                None => 8,
            };
            InstKind::Alloca {
                size: size.0,
                align,
            }
        } else {
            let sym_loc = self.lex.loc_at(sym.0);
            self.fs.srcmap.push_token(sym_loc);
            let t = Token {
                kind: TokKind::Global,
                text: &src[sym.0 + 1..sym.1],
                loc: sym_loc,
            };
            self.symbol_use(inst, t);
            if form == Form::Addr {
                InstKind::Addr {
                    sym: SymId(u32::MAX),
                }
            } else {
                let first = self.fs.arg_pool.len();
                for &(raw, at) in &ops[..n] {
                    let op = self.use_arg(raw, at)?;
                    self.fs.arg_pool.push(op);
                }
                InstKind::Call {
                    callee: Callee::Direct(SymId(u32::MAX)),
                    args: self.fs.args_since(first),
                }
            }
        };
        let result_loc = self.lex.loc_at(start - 1);
        self.push_instruction(opcode, ty, Some(result_name), result_loc, kind, mn_loc)?;
        self.line_done(p);
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }
}

// ---- branch lines with block arguments, labels with parameters ----

/// Most block arguments of a branch line read here, over both targets
/// (the general path reads more).
const MAX_BRANCH_ARGS: usize = 2 * MAX_CALL_ARGS;

/// A branch target read by [`Parser::fast_branch_at`]: its label's bytes,
/// and its arguments, `ops[first..first + len]`.
#[derive(Clone, Copy, Default)]
struct Target {
    label: (usize, usize),
    first: usize,
    len: usize,
}

impl<'a> Parser<'a, '_> {
    /// [`Self::fast_label`] and [`Self::fast_terminator`] for the lines
    /// they leave to the general path that this module reads: the line
    /// whose first word (a name the lexer reads as an identifier, read or
    /// not as the lookahead) is `start..end` of the text. On success the
    /// lexer is at the start of the next line, no token made; when it
    /// returns `false`, nothing has changed.
    #[cold]
    #[inline(never)]
    pub(in crate::ir::parse) fn fast_block_line_at(
        &mut self,
        start: usize,
        end: usize,
    ) -> Result<bool> {
        let src = self.lex.src();
        match &src[start..end] {
            "jmp" => self.fast_branch_at(start, end, Opcode::Jmp),
            "br" => self.fast_branch_at(start, end, Opcode::Br),
            _ if src.as_bytes().get(end) == Some(&b'(') => self.fast_block_params_at(start, end),
            w if w.starts_with("store") => self.fast_store_at(start, end),
            _ => Ok(false),
        }
    }

    /// [`Self::fast_block_line_at`] for the lookahead token, a word of the
    /// current line (not a line the fast paths declined before); returns
    /// whether it read the line, after which the next line's first token
    /// is the lookahead.
    #[cold]
    #[inline(never)]
    pub(in crate::ir::parse) fn fast_block_line(&mut self) -> Result<bool> {
        let end = self.lex.pos();
        let start = end - self.tok.text.len();
        if start == self.fs.declined || !self.fast_block_line_at(start, end)? {
            return Ok(false);
        }
        self.after_fast_line()?;
        Ok(true)
    }

    /// The rest of a `jmp` or `br` line (`opcode`, its mnemonic
    /// `start..end`) whose targets may have arguments, operands as
    /// [`Self::fast_operand`] reads them.
    fn fast_branch_at(&mut self, start: usize, end: usize, opcode: Opcode) -> Result<bool> {
        if self.fs.cur.is_none() {
            return Ok(false);
        }
        let src = self.lex.src();
        let b = src.as_bytes();
        let mut p = skip_spaces(b, end);
        let mut ops = [(Arg::Float(0.0), 0usize); MAX_BRANCH_ARGS];
        let mut n = 0;
        let mut cond = None;
        if opcode == Opcode::Br {
            let Some((arg, e)) = self.fast_operand(src, p) else {
                return Ok(false);
            };
            cond = Some((arg, p));
            p = skip_spaces(b, e);
            if b.get(p) != Some(&b',') {
                return Ok(false);
            }
            p = skip_spaces(b, p + 1);
        }
        let wanted = if opcode == Opcode::Br { 2 } else { 1 };
        let mut targets = [Target::default(); 2];
        for (k, target) in targets.iter_mut().enumerate().take(wanted) {
            if k > 0 {
                if b.get(p) != Some(&b',') {
                    return Ok(false);
                }
                p = skip_spaces(b, p + 1);
            }
            let Some((_, e)) = raw_label(src, p) else {
                return Ok(false);
            };
            target.label = (p, e);
            target.first = n;
            p = skip_spaces(b, e);
            if b.get(p) != Some(&b'(') {
                continue;
            }
            p = skip_spaces(b, p + 1);
            if b.get(p) == Some(&b')') {
                p = skip_spaces(b, p + 1);
                continue;
            }
            loop {
                if n == MAX_BRANCH_ARGS {
                    return Ok(false);
                }
                let Some((arg, e)) = self.fast_operand(src, p) else {
                    return Ok(false);
                };
                ops[n] = (arg, p);
                n += 1;
                p = skip_spaces(b, e);
                match b.get(p) {
                    Some(b',') => p = skip_spaces(b, p + 1),
                    Some(b')') => {
                        p = skip_spaces(b, p + 1);
                        break;
                    }
                    _ => return Ok(false),
                }
            }
            target.len = n - target.first;
        }
        if !at_line_end(b, p) {
            return Ok(false);
        }
        // Record the instruction as the general path does: the condition,
        // then each target's label and arguments, in order.
        let mn_loc = self.lex.loc_at(start);
        self.fs.srcmap.start_inst(mn_loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let cond = match cond {
            Some((arg, at)) => Some(self.use_arg(arg, at)?),
            None => None,
        };
        let mut dests = [BlockCall {
            block: Block(0),
            args: OpList::EMPTY,
        }; 2];
        for (dest, target) in dests.iter_mut().zip(&targets).take(wanted) {
            let (ls, le) = target.label;
            let name = self.fs.name(&src[ls..le]);
            dest.block = self.target_of(name, self.lex.loc_at(ls))?;
            if target.len > 0 {
                let first = self.fs.arg_pool.len();
                for &(arg, at) in &ops[target.first..target.first + target.len] {
                    let op = self.use_arg(arg, at)?;
                    self.fs.arg_pool.push(op);
                }
                dest.args = self.fs.args_since(first);
            }
        }
        let kind = match cond {
            Some(cond) => InstKind::Br {
                cond,
                then_dest: dests[0],
                else_dest: dests[1],
            },
            None => InstKind::Jmp { dest: dests[0] },
        };
        self.push_instruction(opcode, None, None, mn_loc, kind, mn_loc)?;
        self.line_done(p);
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }

    /// The label line `LABEL(%p: T, ...):` and a newline, the label
    /// `start..end` and its `(` at `end`: the block and its parameters
    /// defined as [`Self::label`] defines them.
    fn fast_block_params_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        // Each parameter's `%` and name end, and its type.
        let mut params = [(0usize, 0usize, Type::I64); MAX_PARAMS];
        let mut n = 0;
        let mut p = skip_spaces(b, end + 1);
        if b.get(p) != Some(&b')') {
            loop {
                if n == MAX_PARAMS || b.get(p) != Some(&b'%') {
                    return Ok(false);
                }
                let Some((Raw::Value(_), name_end)) = raw_operand(src, p) else {
                    return Ok(false);
                };
                let at = p;
                p = skip_spaces(b, name_end);
                if b.get(p) != Some(&b':') {
                    return Ok(false);
                }
                let Some((ty, e)) = raw_type(src, skip_spaces(b, p + 1)) else {
                    return Ok(false);
                };
                params[n] = (at, name_end, ty);
                n += 1;
                p = skip_spaces(b, e);
                match b.get(p) {
                    Some(b',') => p = skip_spaces(b, p + 1),
                    Some(b')') => break,
                    _ => return Ok(false),
                }
            }
        }
        p = skip_spaces(b, p + 1);
        if b.get(p) != Some(&b':') {
            return Ok(false);
        }
        let newline = skip_spaces(b, p + 1);
        if b.get(newline) != Some(&b'\n') {
            return Ok(false);
        }
        let t = Token {
            kind: TokKind::Ident,
            text: &src[start..end],
            loc: self.lex.loc_at(start),
        };
        let name = self.fs.name(t.text);
        let block = self.start_named_block(name, t)?;
        if n > 0 {
            let mut list = ValueList::new();
            for (k, &(at, name_end, ty)) in params[..n].iter().enumerate() {
                let text = &src[at + 1..name_end];
                let def = ValueDef::BlockParam(block, k as u32);
                let v = self.define_value(text, self.lex.loc_at(at), ty, def)?;
                list.push(v);
            }
            self.fs.blocks[block.index()].params = list;
        }
        self.fs.cur = Some((block, self.fs.insts.len()));
        self.lex.skip_newline_at(newline);
        Ok(true)
    }

    /// The store line `store[N][.T] V, P[, OFFSET]` whose mnemonic is
    /// `start..end`, operands as [`Self::fast_operand`] reads them, a
    /// decimal offset.
    fn fast_store_at(&mut self, start: usize, end: usize) -> Result<bool> {
        let src = self.lex.src();
        let b = src.as_bytes();
        let mn = &src[start..end];
        let (name, suffix) = match mn.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (mn, None),
        };
        let Some(opcode) = Opcode::from_name(name) else {
            return Ok(false);
        };
        let info = opcode.info();
        if info.format != Format::Store || self.fs.cur.is_none() {
            return Ok(false);
        }
        let mn_loc = self.lex.loc_at(start);
        let mn_tok = Token {
            kind: TokKind::Ident,
            text: mn,
            loc: mn_loc,
        };
        let Ok(ty) = self.suffix(mn_tok, name, suffix, info.suffix) else {
            return Ok(false);
        };
        if info.result_type(ty).is_some() {
            return Ok(false);
        }
        // `V, P[, OFFSET]`.
        let mut p = skip_spaces(b, end);
        let Some((value, e)) = self.fast_operand(src, p) else {
            return Ok(false);
        };
        let value_at = p;
        p = skip_spaces(b, e);
        if b.get(p) != Some(&b',') {
            return Ok(false);
        }
        p = skip_spaces(b, p + 1);
        let Some((ptr, e)) = self.fast_operand(src, p) else {
            return Ok(false);
        };
        let ptr_at = p;
        p = skip_spaces(b, e);
        let mut offset = None;
        if b.get(p) == Some(&b',') {
            let at = skip_spaces(b, p + 1);
            let Some((Raw::Int(v), e)) = raw_operand(src, at) else {
                return Ok(false);
            };
            let Ok(v) = i64::try_from(v.get()) else {
                return Ok(false);
            };
            offset = Some((v, at));
            p = skip_spaces(b, e);
        }
        if !at_line_end(b, p) {
            return Ok(false);
        }
        // Record the instruction as the general path does.
        self.fs.srcmap.start_inst(mn_loc);
        self.fs.inst_fwd_value = false;
        self.fs.inst_fwd_block = false;
        let value = self.use_arg(value, value_at)?;
        let ptr = self.use_arg(ptr, ptr_at)?;
        let offset = match offset {
            Some((v, at)) => {
                self.fs.srcmap.push_token(self.lex.loc_at(at));
                v
            }
            None => 0,
        };
        let kind = InstKind::Store {
            args: [value, ptr],
            offset,
        };
        self.push_instruction(opcode, ty, None, mn_loc, kind, mn_loc)?;
        self.line_done(p);
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        Ok(true)
    }
}
