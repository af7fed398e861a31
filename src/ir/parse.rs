//! Parser for the `.kir` text form (SPEC sections 1–6).
//!
//! A hand-written predictive parser with a single token of
//! lookahead over [`super::lexer`]. Nothing recurses: every construct is a
//! loop, so deep or long input cannot overflow the stack, and time is linear
//! in the input (names are looked up in hash maps).
//!
//! What it guarantees:
//! - The first error in source order is returned as [`Error::Parse`] pointing
//!   at the offending token. Names used before their definition (values,
//!   block labels, symbols) are resolved after the function (values, labels)
//!   or the module (symbols) has been read; an unresolved name is reported
//!   at its first use, so a later syntax error in the same function wins
//!   over it.
//! - Literals are stored as written ([`Const::Int`] as `i128`,
//!   [`Const::Float`] as the nearest `f64`); their ranges against types are
//!   the verifier's business. `f32` data is read directly as `f32`.
//! - The [`SrcMap`](super::SrcMap) of each function, `Module::symbol_locs`
//!   and [`DataDef::locs`] are filled completely.
//!
//! Extensions beyond the SPEC: newlines are allowed anywhere inside a data
//! item's braces, a trailing comma before its `}`, and `-nan`.

use super::entities::{Block, DataId, FuncId, Inst, SymId, Value};
use super::function::{
    BlockCall, Callee, Const, Function, InstKind, Operand, SwitchCase, ValueDef,
};
use super::lexer::{shorten, Lexer, TokKind, Token};
use super::module::{DataDef, DataValue, Linkage, Module, SymbolData, SymbolKind};
use super::opcode::{Format, Opcode, ResultTy, Suffix};
use super::srcmap::{InstLocs, Loc};
use super::types::{Signature, Type};
use crate::error::{Diagnostic, Error, Result};
use std::collections::HashMap;

/// Values, blocks and symbols used before their definition get placeholder
/// ids counted down from `u32::MAX`; real ids stay below this bound.
const PLACEHOLDER_MIN: u32 = 1 << 31;

/// A hook that declares a symbol the module uses but does not declare
/// (see [`ParseOptions::implicit_symbol`]).
pub type SymbolHook<'r> = &'r dyn Fn(&str) -> Option<SymbolKind>;

/// Options for [`parse_module_with`].
#[derive(Clone, Copy)]
pub struct ParseOptions<'r> {
    /// The number of the text's first line (for a REPL that parses one item
    /// at a time and counts lines across its whole input).
    pub first_line: u32,
    /// Called with the name of a symbol that is used but not declared in
    /// the module; returning a kind declares it as an import (`extern`)
    /// instead of failing with "undeclared symbol". The REPL uses this to
    /// make earlier items visible.
    pub implicit_symbol: Option<SymbolHook<'r>>,
}

impl Default for ParseOptions<'_> {
    fn default() -> Self {
        ParseOptions {
            first_line: 1,
            implicit_symbol: None,
        }
    }
}

/// Parses one module from `text`; `file` names it in diagnostics.
pub fn parse_module(file: &str, text: &str) -> Result<Module> {
    parse_module_with(file, text, &ParseOptions::default())
}

/// Like [`parse_module`], numbering lines from `first_line`.
pub fn parse_module_at(file: &str, text: &str, first_line: u32) -> Result<Module> {
    let opts = ParseOptions {
        first_line,
        ..ParseOptions::default()
    };
    parse_module_with(file, text, &opts)
}

/// Parses one module with explicit [`ParseOptions`].
pub fn parse_module_with(file: &str, text: &str, opts: &ParseOptions<'_>) -> Result<Module> {
    let mut lex = Lexer::new(text, opts.first_line);
    let tok = lex
        .next_token()
        .map_err(|(loc, msg)| Error::Parse(Diagnostic::new(file, loc, msg)))?;
    let mut p = Parser {
        file,
        lex,
        tok,
        module: Module::new(file),
        opcodes: Opcode::ALL.iter().map(|&op| (op.name(), op)).collect(),
        sym_refs: Vec::new(),
        implicit: opts.implicit_symbol,
    };
    p.module_items()?;
    p.resolve_symbols()?;
    Ok(p.module)
}

/// Where a symbol reference has to be patched once all symbols are known.
enum SymSite {
    Inst(FuncId, Inst),
    Data(DataId, usize),
}

struct SymRef<'a> {
    site: SymSite,
    name: &'a str,
    loc: Loc,
}

struct Parser<'a, 'r> {
    file: &'a str,
    lex: Lexer<'a>,
    /// The lookahead token.
    tok: Token<'a>,
    module: Module,
    opcodes: HashMap<&'static str, Opcode>,
    sym_refs: Vec<SymRef<'a>>,
    implicit: Option<SymbolHook<'r>>,
}

/// The state of the function being parsed.
struct FuncState<'a> {
    f: Function,
    values: HashMap<&'a str, Value>,
    blocks: HashMap<&'a str, Block>,
    /// Name and location of each use of a value not yet defined; the use
    /// holds `Value(u32::MAX - index)`.
    fwd_values: Vec<(&'a str, Loc)>,
    /// The same for block labels.
    fwd_blocks: Vec<(&'a str, Loc)>,
    cur: Option<Block>,
}

/// How a token reads in an error message.
fn describe(t: &Token<'_>) -> String {
    match t.kind {
        TokKind::Newline => "end of line".into(),
        TokKind::Eof => "end of input".into(),
        TokKind::Global => format!("'@{}'", shorten(t.text)),
        TokKind::Local => format!("'%{}'", shorten(t.text)),
        _ => format!("'{}'", shorten(t.text)),
    }
}

/// Reads an integer literal token's text; `None` when it does not fit in
/// `i128`.
fn parse_int(text: &str) -> Option<i128> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (radix, digits) = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        Some(d) => (16, d),
        None => (10, rest),
    };
    if digits.is_empty() {
        return None;
    }
    let mut mag: u128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)?;
        mag = mag.checked_mul(radix as u128)?.checked_add(d as u128)?;
    }
    if neg {
        (mag <= 1u128 << 127).then(|| 0u128.wrapping_sub(mag) as i128)
    } else {
        i128::try_from(mag).ok()
    }
}

fn is_hex(text: &str) -> bool {
    let t = text.strip_prefix('-').unwrap_or(text);
    t.starts_with("0x") || t.starts_with("0X")
}

/// Reads a float in `f64` from an `Int`, `Float` or `inf`/`nan` token text.
fn parse_f64(text: &str) -> Option<f64> {
    match text {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        "-nan" => Some(-f64::NAN),
        _ if is_hex(text) => parse_int(text).map(|v| v as f64),
        _ => text.parse::<f64>().ok(),
    }
}

/// Reads a float directly in `f32`, so that rounding is done once.
fn parse_f32(text: &str) -> Option<f32> {
    match text {
        "inf" => Some(f32::INFINITY),
        "-inf" => Some(f32::NEG_INFINITY),
        "nan" => Some(f32::NAN),
        "-nan" => Some(-f32::NAN),
        _ if is_hex(text) => parse_int(text).map(|v| v as f32),
        _ => text.parse::<f32>().ok(),
    }
}

fn is_float_word(t: &Token<'_>) -> bool {
    t.kind == TokKind::Ident && matches!(t.text, "inf" | "nan")
}

impl<'a> Parser<'a, '_> {
    fn err<T>(&self, loc: Loc, msg: impl Into<String>) -> Result<T> {
        Err(Error::Parse(Diagnostic::new(self.file, loc, msg)))
    }

    /// Consumes the lookahead token and returns it.
    fn advance(&mut self) -> Result<Token<'a>> {
        let next = match self.lex.next_token() {
            Ok(t) => t,
            Err((loc, msg)) => return self.err(loc, msg),
        };
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn at(&self, kind: &TokKind) -> bool {
        &self.tok.kind == kind
    }

    /// Consumes a token of `kind` or fails with `expected {what}, found X`.
    fn expect(&mut self, kind: TokKind, what: &str) -> Result<Token<'a>> {
        if self.tok.kind == kind {
            self.advance()
        } else {
            self.err(
                self.tok.loc,
                format!("expected {what}, found {}", describe(&self.tok)),
            )
        }
    }

    fn skip_newlines(&mut self) -> Result<()> {
        while self.at(&TokKind::Newline) {
            self.advance()?;
        }
        Ok(())
    }

    fn end_of_line(&mut self, after: &str) -> Result<()> {
        match self.tok.kind {
            TokKind::Newline => self.advance().map(drop),
            TokKind::Eof => Ok(()),
            _ => self.err(
                self.tok.loc,
                format!(
                    "expected end of line after {after}, found {}",
                    describe(&self.tok)
                ),
            ),
        }
    }

    fn ty(&mut self) -> Result<(Type, Loc)> {
        let t = &self.tok;
        match (t.kind == TokKind::Ident)
            .then(|| Type::from_name(t.text))
            .flatten()
        {
            Some(ty) => {
                let loc = t.loc;
                self.advance()?;
                Ok((ty, loc))
            }
            None => self.err(
                t.loc,
                format!(
                    "expected a type (i32, i64, f32 or f64), found {}",
                    describe(t)
                ),
            ),
        }
    }

    /// An integer literal token, read as `i128`.
    fn int_literal(&mut self, what: &str) -> Result<(i128, Loc)> {
        if self.tok.kind != TokKind::Int {
            return self.err(
                self.tok.loc,
                format!("expected {what}, found {}", describe(&self.tok)),
            );
        }
        let t = self.advance()?;
        match parse_int(t.text) {
            Some(v) => Ok((v, t.loc)),
            None => self.err(
                t.loc,
                format!("integer literal '{}' is out of range", shorten(t.text)),
            ),
        }
    }

    /// A new symbol's `@name`, failing when the name is taken.
    fn new_symbol_name(&mut self, what: &str) -> Result<(&'a str, Loc)> {
        let t = self.expect(TokKind::Global, what)?;
        if self.module.symbol(t.text).is_some() {
            return self.err(t.loc, format!("symbol @{} is defined twice", t.text));
        }
        Ok((t.text, t.loc))
    }

    fn declare(&mut self, name: &str, linkage: Linkage, kind: SymbolKind, loc: Loc) -> SymId {
        let data = SymbolData {
            name: name.to_string(),
            linkage,
            kind,
        };
        // The name was checked by `new_symbol_name`.
        self.module
            .declare(data, loc)
            .unwrap_or_else(|existing| existing)
    }

    // ---- module level ----

    fn module_items(&mut self) -> Result<()> {
        loop {
            match self.tok.kind {
                TokKind::Newline => {
                    self.advance()?;
                }
                TokKind::Eof => return Ok(()),
                _ => {
                    self.item()?;
                    self.end_of_line("item")?;
                }
            }
        }
    }

    fn item(&mut self) -> Result<()> {
        const WHAT: &str = "an item (func, data, const, local or extern)";
        if self.tok.kind != TokKind::Ident {
            return self.err(
                self.tok.loc,
                format!("expected {WHAT}, found {}", describe(&self.tok)),
            );
        }
        let kw = self.tok.clone();
        match kw.text {
            "func" => {
                self.advance()?;
                self.func(Linkage::Export)
            }
            "data" | "const" => {
                self.advance()?;
                self.data(Linkage::Export, kw.text == "const")
            }
            "local" => {
                self.advance()?;
                let t = self.tok.clone();
                match (t.kind == TokKind::Ident).then_some(t.text) {
                    Some("func") => {
                        self.advance()?;
                        self.func(Linkage::Local)
                    }
                    Some("data" | "const") => {
                        self.advance()?;
                        self.data(Linkage::Local, t.text == "const")
                    }
                    _ => self.err(
                        t.loc,
                        format!(
                            "expected 'func', 'data' or 'const' after 'local', found {}",
                            describe(&t)
                        ),
                    ),
                }
            }
            "extern" => {
                self.advance()?;
                let t = self.tok.clone();
                match (t.kind == TokKind::Ident).then_some(t.text) {
                    Some("func") => {
                        self.advance()?;
                        self.extern_func()
                    }
                    Some("data") => {
                        self.advance()?;
                        let (name, loc) = self.new_symbol_name("a symbol name '@name'")?;
                        self.declare(name, Linkage::Import, SymbolKind::Data { body: None }, loc);
                        Ok(())
                    }
                    _ => self.err(
                        t.loc,
                        format!(
                            "expected 'func' or 'data' after 'extern', found {}",
                            describe(&t)
                        ),
                    ),
                }
            }
            _ => self.err(kw.loc, format!("expected {WHAT}, found {}", describe(&kw))),
        }
    }

    fn return_type(&mut self) -> Result<Option<Type>> {
        if self.at(&TokKind::Arrow) {
            self.advance()?;
            Ok(Some(self.ty()?.0))
        } else {
            Ok(None)
        }
    }

    fn extern_func(&mut self) -> Result<()> {
        let (name, loc) = self.new_symbol_name("a function name '@name'")?;
        self.expect(TokKind::LParen, "'(' after the function name")?;
        let mut params = Vec::new();
        if !self.at(&TokKind::RParen) {
            loop {
                params.push(self.ty()?.0);
                match self.tok.kind {
                    TokKind::Comma => {
                        self.advance()?;
                    }
                    TokKind::RParen => break,
                    _ => {
                        return self.err(
                            self.tok.loc,
                            format!(
                                "expected ',' or ')' after parameter type, found {}",
                                describe(&self.tok)
                            ),
                        )
                    }
                }
            }
        }
        self.advance()?;
        let ret = self.return_type()?;
        let sig = Signature::new(params, ret);
        self.declare(
            name,
            Linkage::Import,
            SymbolKind::Func { sig, body: None },
            loc,
        );
        Ok(())
    }

    fn func(&mut self, linkage: Linkage) -> Result<()> {
        let (name, name_loc) = self.new_symbol_name("a function name '@name'")?;
        let mut fs = FuncState {
            f: Function::new(name, Signature::default()),
            values: HashMap::new(),
            blocks: HashMap::new(),
            fwd_values: Vec::new(),
            fwd_blocks: Vec::new(),
            cur: None,
        };
        fs.f.srcmap.func = name_loc;
        self.expect(TokKind::LParen, "'(' after the function name")?;
        let mut params = Vec::new();
        if !self.at(&TokKind::RParen) {
            loop {
                let p = self.expect(TokKind::Local, "a parameter '%name: type'")?;
                self.expect(TokKind::Colon, "':' after the parameter name")?;
                let (ty, ty_loc) = self.ty()?;
                let n = params.len() as u32;
                let v = self.define_value(&mut fs, p.text, p.loc, |f, name| {
                    f.new_value(ty, ValueDef::FuncParam(n), name)
                })?;
                fs.f.params.push(v);
                fs.f.srcmap.param_types.push(ty_loc);
                params.push(ty);
                match self.tok.kind {
                    TokKind::Comma => {
                        self.advance()?;
                    }
                    TokKind::RParen => break,
                    _ => {
                        return self.err(
                            self.tok.loc,
                            format!(
                                "expected ',' or ')' after parameter, found {}",
                                describe(&self.tok)
                            ),
                        )
                    }
                }
            }
        }
        self.advance()?;
        let ret = self.return_type()?;
        let sig = Signature::new(params, ret);
        fs.f.sig = sig.clone();
        let sym = self.declare(
            name,
            linkage,
            SymbolKind::Func { sig, body: None },
            name_loc,
        );
        self.expect(
            TokKind::LBrace,
            &format!("'{{' to start the body of @{name}"),
        )?;
        if !self.at(&TokKind::RBrace) {
            self.end_of_line("'{'")?;
        }
        let func_id = FuncId::new(self.module.funcs.len());
        let mut pending_syms: Vec<(Inst, &'a str, Loc)> = Vec::new();
        loop {
            match self.tok.kind {
                TokKind::Newline => {
                    self.advance()?;
                }
                TokKind::RBrace => {
                    fs.f.srcmap.end = self.advance()?.loc;
                    break;
                }
                TokKind::Eof => {
                    return self.err(
                        self.tok.loc,
                        format!("expected '}}' to close function @{name}, found end of input"),
                    )
                }
                TokKind::Local => {
                    let r = self.advance()?;
                    self.expect(
                        TokKind::Equals,
                        &format!("'=' after '%{}'", shorten(r.text)),
                    )?;
                    if self.tok.kind != TokKind::Ident {
                        return self.err(
                            self.tok.loc,
                            format!(
                                "expected an opcode after '=', found {}",
                                describe(&self.tok)
                            ),
                        );
                    }
                    let mn = self.advance()?;
                    self.instruction(&mut fs, Some(&r), &mn, &mut pending_syms)?;
                }
                TokKind::Ident => {
                    let t = self.advance()?;
                    if matches!(self.tok.kind, TokKind::Colon | TokKind::LParen) {
                        self.label(&mut fs, &t)?;
                    } else {
                        self.instruction(&mut fs, None, &t, &mut pending_syms)?;
                    }
                }
                _ => {
                    return self.err(
                        self.tok.loc,
                        format!(
                            "expected an instruction or a block label, found {}",
                            describe(&self.tok)
                        ),
                    )
                }
            }
        }
        self.resolve_locals(&mut fs)?;
        for (inst, name, loc) in pending_syms {
            self.sym_refs.push(SymRef {
                site: SymSite::Inst(func_id, inst),
                name,
                loc,
            });
        }
        self.module.define_func(sym, fs.f);
        Ok(())
    }

    /// Defines a named value with `make`, recording its location; fails on
    /// a duplicate name.
    fn define_value(
        &self,
        fs: &mut FuncState<'a>,
        name: &'a str,
        loc: Loc,
        make: impl FnOnce(&mut Function, Option<Box<str>>) -> Value,
    ) -> Result<Value> {
        if fs.values.contains_key(name) {
            return self.err(loc, format!("value %{} is defined twice", shorten(name)));
        }
        if fs.f.values.len() >= PLACEHOLDER_MIN as usize {
            return self.err(loc, "too many values in one function");
        }
        let v = make(&mut fs.f, Some(name.into()));
        fs.values.insert(name, v);
        fs.f.srcmap.values.push(loc);
        Ok(v)
    }

    fn label(&mut self, fs: &mut FuncState<'a>, t: &Token<'a>) -> Result<()> {
        if fs.blocks.contains_key(t.text) {
            return self.err(
                t.loc,
                format!("block '{}' is defined twice", shorten(t.text)),
            );
        }
        if fs.f.blocks.len() >= PLACEHOLDER_MIN as usize {
            return self.err(t.loc, "too many blocks in one function");
        }
        let block = fs.f.new_block(t.text);
        fs.blocks.insert(t.text, block);
        fs.f.srcmap.blocks.push(t.loc);
        if self.at(&TokKind::LParen) {
            self.advance()?;
            if !self.at(&TokKind::RParen) {
                loop {
                    let p = self.expect(TokKind::Local, "a block parameter '%name: type'")?;
                    self.expect(TokKind::Colon, "':' after the parameter name")?;
                    let (ty, _) = self.ty()?;
                    self.define_value(fs, p.text, p.loc, |f, name| {
                        f.add_block_param(block, ty, name)
                    })?;
                    match self.tok.kind {
                        TokKind::Comma => {
                            self.advance()?;
                        }
                        TokKind::RParen => break,
                        _ => {
                            return self.err(
                                self.tok.loc,
                                format!(
                                    "expected ',' or ')' after block parameter, found {}",
                                    describe(&self.tok)
                                ),
                            )
                        }
                    }
                }
            }
            self.advance()?;
        }
        self.expect(TokKind::Colon, "':' after the block label")?;
        self.end_of_line("block label")?;
        fs.cur = Some(block);
        Ok(())
    }

    // ---- instructions ----

    /// An operand: `%value` or a literal.
    fn operand(&mut self, fs: &mut FuncState<'a>) -> Result<(Operand, Loc)> {
        let t = self.tok.clone();
        let op = match t.kind {
            TokKind::Local => match fs.values.get(t.text) {
                Some(&v) => Operand::Value(v),
                None => {
                    let n = fs.fwd_values.len() as u32;
                    if n >= u32::MAX - PLACEHOLDER_MIN {
                        return self.err(t.loc, "too many forward references");
                    }
                    fs.fwd_values.push((t.text, t.loc));
                    Operand::Value(Value(u32::MAX - n))
                }
            },
            TokKind::Int => match parse_int(t.text) {
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
            _ => {
                return self.err(
                    t.loc,
                    format!(
                        "expected an operand (a %value or a literal), found {}",
                        describe(&t)
                    ),
                )
            }
        };
        self.advance()?;
        Ok((op, t.loc))
    }

    fn comma_after_operand(&mut self) -> Result<()> {
        self.expect(TokKind::Comma, "',' after operand").map(drop)
    }

    /// A block label used as a branch target (placeholder if not yet seen).
    fn target(&mut self, fs: &mut FuncState<'a>, locs: &mut InstLocs) -> Result<Block> {
        let t = self.expect(TokKind::Ident, "a block label")?;
        locs.labels.push(t.loc);
        Ok(match fs.blocks.get(t.text) {
            Some(&b) => b,
            None => {
                let n = fs.fwd_blocks.len() as u32;
                if n >= u32::MAX - PLACEHOLDER_MIN {
                    return self.err(t.loc, "too many forward references");
                }
                fs.fwd_blocks.push((t.text, t.loc));
                Block(u32::MAX - n)
            }
        })
    }

    /// `(a, b, ...)` after a callee or a block label; the `(` is current.
    fn args(&mut self, fs: &mut FuncState<'a>, locs: &mut InstLocs) -> Result<Vec<Operand>> {
        self.advance()?;
        let mut out = Vec::new();
        if self.at(&TokKind::RParen) {
            self.advance()?;
            return Ok(out);
        }
        loop {
            let (op, loc) = self.operand(fs)?;
            out.push(op);
            locs.operands.push(loc);
            match self.tok.kind {
                TokKind::Comma => {
                    self.advance()?;
                }
                TokKind::RParen => {
                    self.advance()?;
                    return Ok(out);
                }
                _ => {
                    return self.err(
                        self.tok.loc,
                        format!(
                            "expected ',' or ')' in argument list, found {}",
                            describe(&self.tok)
                        ),
                    )
                }
            }
        }
    }

    fn block_call(&mut self, fs: &mut FuncState<'a>, locs: &mut InstLocs) -> Result<BlockCall> {
        let block = self.target(fs, locs)?;
        let args = if self.at(&TokKind::LParen) {
            self.args(fs, locs)?
        } else {
            Vec::new()
        };
        Ok(BlockCall { block, args })
    }

    /// A switch target: a label without arguments.
    fn switch_target(&mut self, fs: &mut FuncState<'a>, locs: &mut InstLocs) -> Result<Block> {
        let b = self.target(fs, locs)?;
        if self.at(&TokKind::LParen) {
            return self.err(self.tok.loc, "switch targets take no arguments");
        }
        Ok(b)
    }

    /// `[, N]`: an optional literal after the operands.
    fn optional_literal(&mut self, what: &str, locs_extra: &mut Loc) -> Result<Option<i128>> {
        if !self.at(&TokKind::Comma) {
            return Ok(None);
        }
        self.advance()?;
        let (v, loc) = self.int_literal(what)?;
        *locs_extra = loc;
        Ok(Some(v))
    }

    fn offset(&mut self, locs: &mut InstLocs) -> Result<i64> {
        let mut loc = Loc::NONE;
        let off = self.optional_literal("an offset literal", &mut loc)?;
        locs.extra = loc;
        match off.map(i64::try_from) {
            None => Ok(0),
            Some(Ok(v)) => Ok(v),
            Some(Err(_)) => self.err(loc, "offset does not fit in 64 bits"),
        }
    }

    fn instruction(
        &mut self,
        fs: &mut FuncState<'a>,
        result: Option<&Token<'a>>,
        mn: &Token<'a>,
        pending_syms: &mut Vec<(Inst, &'a str, Loc)>,
    ) -> Result<()> {
        let (name, suffix) = match mn.text.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (mn.text, None),
        };
        let Some(&op) = self.opcodes.get(name) else {
            return self.err(mn.loc, format!("unknown opcode '{}'", shorten(name)));
        };
        let info = op.info();
        let ty = match (suffix, info.suffix) {
            (None, Suffix::None | Suffix::Optional) => None,
            (None, s) => {
                let forms = match s {
                    Suffix::Only(t) => format!("{name}.{t}"),
                    Suffix::Int => format!("{name}.i32 or {name}.i64"),
                    Suffix::Float => format!("{name}.f32 or {name}.f64"),
                    _ => format!("{name}.T"),
                };
                return self.err(mn.loc, format!("type suffix required: {forms}"));
            }
            (Some(_), Suffix::None) => {
                return self.err(mn.loc, format!("'{name}' takes no type suffix"));
            }
            (Some(s), rule) => {
                let sloc = Loc::new(
                    mn.loc.line,
                    mn.loc.col.saturating_add(name.len() as u32 + 1),
                );
                match Type::from_name(s).filter(|&t| rule.allows(t)) {
                    Some(t) => Some(t),
                    None => {
                        return self.err(
                            sloc,
                            format!(
                                "invalid type suffix '{}' for '{name}': expected {}",
                                shorten(s),
                                rule.describe()
                            ),
                        )
                    }
                }
            }
        };
        let Some(block) = fs.cur else {
            return self.err(
                mn.loc,
                "expected a block label before the first instruction",
            );
        };
        let has_result = info.result_type(ty).is_some();
        match result {
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
            Some(r) if fs.values.contains_key(r.text) => {
                return self.err(
                    r.loc,
                    format!("value %{} is defined twice", shorten(r.text)),
                );
            }
            _ => {}
        }
        let mut locs = InstLocs {
            inst: mn.loc,
            result: result.map_or(Loc::NONE, |r| r.loc),
            ..InstLocs::default()
        };
        let mut sym_use: Option<(&'a str, Loc)> = None;
        let kind = match info.format {
            Format::Unary => {
                let (arg, l) = self.operand(fs)?;
                locs.operands.push(l);
                InstKind::Unary { arg }
            }
            Format::Binary | Format::Select | Format::Store => {
                let n = if info.format == Format::Select { 3 } else { 2 };
                let mut ops = [Operand::Const(Const::Int(0)); 3];
                for (i, slot) in ops.iter_mut().take(n).enumerate() {
                    if i > 0 {
                        self.comma_after_operand()?;
                    }
                    let (o, l) = self.operand(fs)?;
                    *slot = o;
                    locs.operands.push(l);
                }
                match info.format {
                    Format::Binary => InstKind::Binary {
                        args: [ops[0], ops[1]],
                    },
                    Format::Select => InstKind::Select { args: ops },
                    _ => {
                        let offset = self.offset(&mut locs)?;
                        InstKind::Store {
                            args: [ops[0], ops[1]],
                            offset,
                        }
                    }
                }
            }
            Format::Load => {
                let (ptr, l) = self.operand(fs)?;
                locs.operands.push(l);
                let offset = self.offset(&mut locs)?;
                InstKind::Load { ptr, offset }
            }
            Format::Alloca => {
                let (size, sloc) = self.int_literal("a size literal")?;
                locs.extra = sloc;
                let mut aloc = Loc::NONE;
                let align = self.optional_literal("an alignment literal", &mut aloc)?;
                locs.extra2 = aloc;
                let Ok(size) = u64::try_from(size) else {
                    return self.err(sloc, "alloca size must be a non-negative 64-bit integer");
                };
                let align = match align.map(u64::try_from) {
                    None => 8,
                    Some(Ok(a)) => a,
                    Some(Err(_)) => {
                        return self.err(aloc, "alloca alignment must be a non-negative integer")
                    }
                };
                InstKind::Alloca { size, align }
            }
            Format::Addr => {
                let t = self.expect(TokKind::Global, "a symbol '@name'")?;
                locs.extra = t.loc;
                sym_use = Some((t.text, t.loc));
                InstKind::Addr {
                    sym: SymId(u32::MAX),
                }
            }
            Format::Call => {
                let callee = match self.tok.kind {
                    TokKind::Global => {
                        let t = self.advance()?;
                        locs.extra = t.loc;
                        sym_use = Some((t.text, t.loc));
                        Callee::Direct(SymId(u32::MAX))
                    }
                    TokKind::Local => {
                        let (o, l) = self.operand(fs)?;
                        locs.operands.push(l);
                        Callee::Indirect(o)
                    }
                    _ => {
                        return self.err(
                            self.tok.loc,
                            format!(
                                "expected '@function' or '%pointer' after '{name}', found {}",
                                describe(&self.tok)
                            ),
                        )
                    }
                };
                if !self.at(&TokKind::LParen) {
                    return self.err(
                        self.tok.loc,
                        format!(
                            "expected '(' after the callee, found {}",
                            describe(&self.tok)
                        ),
                    );
                }
                let args = self.args(fs, &mut locs)?;
                InstKind::Call { callee, args }
            }
            Format::Ret => {
                let value = if matches!(self.tok.kind, TokKind::Newline | TokKind::Eof) {
                    None
                } else {
                    let (o, l) = self.operand(fs)?;
                    locs.operands.push(l);
                    Some(o)
                };
                InstKind::Ret { value }
            }
            Format::Jmp => InstKind::Jmp {
                dest: self.block_call(fs, &mut locs)?,
            },
            Format::Br => {
                let (cond, l) = self.operand(fs)?;
                locs.operands.push(l);
                self.comma_after_operand()?;
                let then_dest = self.block_call(fs, &mut locs)?;
                self.expect(TokKind::Comma, "',' after the first branch target")?;
                let else_dest = self.block_call(fs, &mut locs)?;
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                }
            }
            Format::Switch => {
                let (value, l) = self.operand(fs)?;
                locs.operands.push(l);
                self.comma_after_operand()?;
                let default = self.switch_target(fs, &mut locs)?;
                let mut cases = Vec::new();
                while self.at(&TokKind::Comma) {
                    self.advance()?;
                    let (key, kloc) = self.int_literal("a case 'KEY: label'")?;
                    locs.keys.push(kloc);
                    self.expect(TokKind::Colon, "':' after the case key")?;
                    let block = self.switch_target(fs, &mut locs)?;
                    cases.push(SwitchCase {
                        key: Const::Int(key),
                        block,
                    });
                }
                InstKind::Switch {
                    value,
                    default,
                    cases,
                }
            }
            Format::Trap => InstKind::Trap,
        };
        let result_name = result.map(|r| Box::<str>::from(r.text));
        if fs.f.values.len() >= PLACEHOLDER_MIN as usize {
            return self.err(mn.loc, "too many values in one function");
        }
        let inst = fs.f.push_inst(block, op, ty, kind, result_name);
        if let Some(v) = fs.f.insts[inst.index()].result {
            fs.f.srcmap.values.push(locs.result.or(mn.loc));
            if let Some(r) = result {
                fs.values.insert(r.text, v);
            }
        }
        fs.f.srcmap.insts.push(locs);
        if let Some((name, loc)) = sym_use {
            pending_syms.push((inst, name, loc));
        }
        self.end_of_line("instruction")
    }

    /// Replaces the placeholders of values and labels used before their
    /// definition; reports the first unresolved name in source order.
    fn resolve_locals(&self, fs: &mut FuncState<'a>) -> Result<()> {
        let FuncState {
            f,
            values,
            blocks,
            fwd_values,
            fwd_blocks,
            ..
        } = fs;
        if fwd_values.is_empty() && fwd_blocks.is_empty() {
            return Ok(());
        }
        let mut first: Option<(Loc, String)> = None;
        let mut note = |loc: Loc, msg: String| {
            if first.as_ref().is_none_or(|(l, _)| loc < *l) {
                first = Some((loc, msg));
            }
        };
        for inst in f.insts.iter_mut() {
            inst.for_each_operand_mut(|op| {
                if let Operand::Value(v) = op {
                    if v.0 >= PLACEHOLDER_MIN {
                        let (name, loc) = fwd_values[(u32::MAX - v.0) as usize];
                        match values.get(name) {
                            Some(&real) => *v = real,
                            None => note(loc, format!("undefined value %{}", shorten(name))),
                        }
                    }
                }
            });
            let mut fix = |b: &mut Block| {
                if b.0 >= PLACEHOLDER_MIN {
                    let (name, loc) = fwd_blocks[(u32::MAX - b.0) as usize];
                    match blocks.get(name) {
                        Some(&real) => *b = real,
                        None => note(loc, format!("unknown block '{}'", shorten(name))),
                    }
                }
            };
            match &mut inst.kind {
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
                    cases.iter_mut().for_each(|c| fix(&mut c.block));
                }
                _ => {}
            }
        }
        match first {
            Some((loc, msg)) => self.err(loc, msg),
            None => Ok(()),
        }
    }

    // ---- data ----

    fn data(&mut self, linkage: Linkage, readonly: bool) -> Result<()> {
        let (name, loc) = self.new_symbol_name("a data name '@name'")?;
        let sym = self.declare(name, linkage, SymbolKind::Data { body: None }, loc);
        self.expect(TokKind::Equals, &format!("'=' after @{}", shorten(name)))?;
        self.expect(TokKind::LBrace, "'{' to start the data")?;
        self.skip_newlines()?;
        let data_id = DataId::new(self.module.datas.len());
        let mut def = DataDef {
            readonly,
            ..DataDef::default()
        };
        while !self.at(&TokKind::RBrace) {
            let entry_loc = self.tok.loc;
            let value = self.data_value(data_id, def.values.len())?;
            def.values.push(value);
            def.locs.push(entry_loc);
            self.skip_newlines()?;
            match self.tok.kind {
                TokKind::Comma => {
                    self.advance()?;
                    self.skip_newlines()?;
                }
                TokKind::RBrace => {}
                _ => {
                    return self.err(
                        self.tok.loc,
                        format!(
                            "expected ',' or '}}' after data value, found {}",
                            describe(&self.tok)
                        ),
                    )
                }
            }
        }
        self.advance()?;
        self.module.define_data(sym, def);
        Ok(())
    }

    fn data_value(&mut self, data_id: DataId, index: usize) -> Result<DataValue> {
        const WHAT: &str = "a data value (i8, i16, i32, i64, f32, f64, zero or @symbol)";
        let t = self.tok.clone();
        match (&t.kind, t.text) {
            (TokKind::Global, name) => {
                self.advance()?;
                let addend = match self.tok.kind {
                    TokKind::Plus => {
                        self.advance()?;
                        if self.tok.text.starts_with('-') {
                            return self.err(
                                self.tok.loc,
                                format!("expected an addend, found {}", describe(&self.tok)),
                            );
                        }
                        Some(self.int_literal("an addend")?)
                    }
                    TokKind::Int if self.tok.text.starts_with('-') => {
                        Some(self.int_literal("an addend")?)
                    }
                    _ => None,
                };
                let addend = match addend {
                    None => 0,
                    Some((v, aloc)) => match i64::try_from(v) {
                        Ok(v) => v,
                        Err(_) => return self.err(aloc, "addend does not fit in 64 bits"),
                    },
                };
                self.sym_refs.push(SymRef {
                    site: SymSite::Data(data_id, index),
                    name,
                    loc: t.loc,
                });
                Ok(DataValue::SymAddr {
                    sym: SymId(u32::MAX),
                    addend,
                })
            }
            (TokKind::Ident, "zero") => {
                self.advance()?;
                let (n, loc) = self.int_literal("a byte count")?;
                match u64::try_from(n) {
                    Ok(n) => Ok(DataValue::Zero(n)),
                    Err(_) => self.err(loc, "zero count must be a non-negative 64-bit integer"),
                }
            }
            (TokKind::Ident, kw @ ("i8" | "i16" | "i32" | "i64")) => {
                self.advance()?;
                self.skip_newlines()?;
                if let TokKind::Str(bytes) = &self.tok.kind {
                    if kw != "i8" {
                        return self.err(
                            self.tok.loc,
                            format!("a string must follow 'i8', not '{kw}'"),
                        );
                    }
                    let bytes = bytes.clone();
                    self.advance()?;
                    return Ok(DataValue::Bytes(bytes));
                }
                let mut values = Vec::new();
                loop {
                    match self.tok.kind {
                        TokKind::Int => values.push(self.int_literal("an integer")?.0),
                        TokKind::Float => {
                            return self.err(
                                self.tok.loc,
                                format!(
                                    "expected an integer literal after '{kw}', found {}",
                                    describe(&self.tok)
                                ),
                            )
                        }
                        _ if values.is_empty() => {
                            return self.err(
                                self.tok.loc,
                                format!(
                                    "expected a value after '{kw}', found {}",
                                    describe(&self.tok)
                                ),
                            )
                        }
                        _ => break,
                    }
                    self.skip_newlines()?;
                }
                let bytes = match kw {
                    "i8" => 1,
                    "i16" => 2,
                    "i32" => 4,
                    _ => 8,
                };
                Ok(DataValue::Int { bytes, values })
            }
            (TokKind::Ident, kw @ ("f32" | "f64")) => {
                self.advance()?;
                self.skip_newlines()?;
                let mut v32 = Vec::new();
                let mut v64 = Vec::new();
                loop {
                    let t = self.tok.clone();
                    let is_num =
                        matches!(t.kind, TokKind::Int | TokKind::Float) || is_float_word(&t);
                    if !is_num {
                        if v32.is_empty() && v64.is_empty() {
                            return self.err(
                                t.loc,
                                format!("expected a value after '{kw}', found {}", describe(&t)),
                            );
                        }
                        break;
                    }
                    let ok = if kw == "f32" {
                        parse_f32(t.text).map(|x| v32.push(x.to_bits())).is_some()
                    } else {
                        parse_f64(t.text).map(|x| v64.push(x.to_bits())).is_some()
                    };
                    if !ok {
                        return self.err(
                            t.loc,
                            format!("invalid float literal '{}'", shorten(t.text)),
                        );
                    }
                    self.advance()?;
                    self.skip_newlines()?;
                }
                Ok(if kw == "f32" {
                    DataValue::F32(v32)
                } else {
                    DataValue::F64(v64)
                })
            }
            _ => self.err(t.loc, format!("expected {WHAT}, found {}", describe(&t))),
        }
    }

    /// Patches every symbol reference, in source order; the first name
    /// that is not declared (and not supplied by the implicit-symbol hook)
    /// is an error.
    fn resolve_symbols(&mut self) -> Result<()> {
        let refs = std::mem::take(&mut self.sym_refs);
        for r in refs {
            let id = match self.module.symbol(r.name) {
                Some(id) => id,
                None => match self.implicit.and_then(|f| f(r.name)) {
                    Some(kind) => self.declare(r.name, Linkage::Import, kind, r.loc),
                    None => {
                        return self.err(r.loc, format!("undeclared symbol @{}", shorten(r.name)))
                    }
                },
            };
            match r.site {
                SymSite::Inst(f, i) => {
                    match &mut self.module.funcs[f.index()].insts[i.index()].kind {
                        InstKind::Addr { sym } => *sym = id,
                        InstKind::Call {
                            callee: Callee::Direct(sym),
                            ..
                        } => *sym = id,
                        _ => {}
                    }
                }
                SymSite::Data(d, i) => {
                    if let Some(DataValue::SymAddr { sym, .. }) =
                        self.module.datas[d.index()].values.get_mut(i)
                    {
                        *sym = id;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
