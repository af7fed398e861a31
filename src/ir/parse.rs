//! Parser for the `.kir` text form (SPEC sections 1–6).
//!
//! A hand-written predictive parser with a single token of lookahead over
//! the lexer (`lexer.rs`). Nothing recurses: every construct is a loop, so deep
//! or long input cannot overflow the stack, and time is linear in the
//! input. This file reads module items and data; `parse/func.rs` reads function
//! bodies.
//!
//! What it guarantees:
//! - The first error in source order is returned as [`Error::Parse`] pointing
//!   at the offending token. Names used before their definition (values,
//!   block labels, symbols) are resolved after the function (values, labels)
//!   or the module (symbols) has been read; an unresolved name is reported
//!   at its first use, so a later syntax error in the same function wins
//!   over it.
//! - Literals are stored as written ([`crate::ir::Const::Int`] in 96 bits,
//!   [`crate::ir::Const::Float`] as the nearest `f64`); their ranges against types are
//!   the verifier's business, except that an integer literal needing more
//!   than 96 bits (far beyond any type) is a parse error. `f32` data is read
//!   directly as `f32`.
//! - The [`SrcMap`](super::SrcMap) of each function, `Module::symbol_locs`
//!   and [`DataDef::locs`] are filled completely.
//!
//! How it stays fast (see `kiln check` in the benchmark report): tokens are
//! `Copy` slices of the text; names are interned once per occurrence in
//! the function's [`Names`](super::Names) table, which also resolves them
//! (a dense array from name to value or block, no second map); error
//! messages are only formatted on the error path; each function is built in
//! scratch vectors reused across functions and copied out at its exact
//! size.
//!
//! Extensions beyond the SPEC: newlines are allowed anywhere inside a data
//! item's braces, a trailing comma before its `}`, and `-nan`.

mod func;
mod split;

use super::entities::{DataId, FuncId, Inst, SymId};
use super::function::{Callee, InstKind};
use super::hash::hash_name;
use super::lexer::{shorten, Lexer, TokKind, Token};
use super::module::{DataDef, DataValue, Linkage, Module, SymbolData, SymbolKind};
use super::srcmap::Loc;
use super::types::{Signature, Type};
use crate::error::{Diagnostic, Error};
use func::FuncScratch;
pub use split::{parse_module_split, SPLIT_MIN};

/// The parser's error: the diagnostic, boxed so that results stay small
/// on the hot path (a `Result<Token>` is returned for every token).
struct Stop(Box<Error>);

/// The parser's result type.
type Result<T> = std::result::Result<T, Stop>;

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
pub fn parse_module(file: &str, text: &str) -> crate::Result<Module> {
    parse_module_with(file, text, &ParseOptions::default())
}

/// Like [`parse_module`], numbering lines from `first_line`.
pub fn parse_module_at(file: &str, text: &str, first_line: u32) -> crate::Result<Module> {
    let opts = ParseOptions {
        first_line,
        ..ParseOptions::default()
    };
    parse_module_with(file, text, &opts)
}

/// Parses one module with explicit [`ParseOptions`].
pub fn parse_module_with(file: &str, text: &str, opts: &ParseOptions<'_>) -> crate::Result<Module> {
    let mut p =
        Parser::start(file, text, opts.first_line, opts.implicit_symbol, 0).map_err(|e| {
            let (loc, msg) = *e;
            Error::Parse(Diagnostic::new(file, loc, msg))
        })?;
    let result = p.module_items().and_then(|()| p.resolve_symbols());
    p.fs.cache();
    match result {
        Ok(()) => Ok(p.module),
        Err(Stop(e)) => Err(*e),
    }
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

/// A symbol name about to be declared, found free by
/// [`Parser::new_symbol_name`]: its [`hash_name`] is kept for the
/// declaration, so the name is hashed and looked up once.
#[derive(Clone, Copy)]
struct NewSym<'a> {
    name: &'a str,
    loc: Loc,
    hash: u64,
}

struct Parser<'a, 'r> {
    file: &'a str,
    lex: Lexer<'a>,
    /// The lookahead token.
    tok: Token<'a>,
    module: Module,
    sym_refs: Vec<SymRef<'a>>,
    implicit: Option<SymbolHook<'r>>,
    /// The function being parsed, in buffers reused across functions.
    fs: FuncScratch,
    /// Bytes of the module's text after `lex`'s, parsed apart (see
    /// [`parse_module_split`]): the table of functions is reserved for
    /// their functions too, so that appending them does not grow it.
    after: usize,
}

impl<'a, 'r> Parser<'a, 'r> {
    /// A parser of `text` (whose first line is `first_line`) into a new
    /// module, its first token read; the lexer's error if that fails.
    fn start(
        file: &'a str,
        text: &'a str,
        first_line: u32,
        implicit: Option<SymbolHook<'r>>,
        after: usize,
    ) -> std::result::Result<Self, Box<(Loc, String)>> {
        let mut lex = Lexer::new(text, first_line);
        let tok = lex.next_token()?;
        Ok(Parser {
            file,
            lex,
            tok,
            module: Module::new(file),
            sym_refs: Vec::new(),
            implicit,
            fs: FuncScratch::take_cached(),
            after,
        })
    }
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
/// `i128`. Decimal literals of up to 18 digits take a `u64` fast path.
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
    let mag: u128 = if radix == 10 && digits.len() <= 18 {
        let mut m = 0u64;
        for b in digits.bytes() {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            m = m * 10 + d as u64;
        }
        m as u128
    } else {
        let mut m: u128 = 0;
        for c in digits.chars() {
            let d = c.to_digit(radix)?;
            m = m.checked_mul(radix as u128)?.checked_add(d as u128)?;
        }
        m
    };
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
    #[cold]
    fn err<T>(&self, loc: Loc, msg: impl Into<String>) -> Result<T> {
        Err(Stop(Box::new(Error::Parse(Diagnostic::new(
            self.file, loc, msg,
        )))))
    }

    /// `expected {what}, found X` at the lookahead token.
    #[cold]
    fn expected<T>(&self, what: &str) -> Result<T> {
        self.err(
            self.tok.loc,
            format!("expected {what}, found {}", describe(&self.tok)),
        )
    }

    /// Consumes the lookahead token and returns it.
    #[inline]
    fn advance(&mut self) -> Result<Token<'a>> {
        let next = match self.lex.next_token() {
            Ok(t) => t,
            Err(e) => {
                let (loc, msg) = *e;
                return self.err(loc, msg);
            }
        };
        Ok(std::mem::replace(&mut self.tok, next))
    }

    #[inline]
    fn at(&self, kind: TokKind) -> bool {
        self.tok.kind == kind
    }

    /// Consumes a token of `kind` or fails with `expected {what}, found X`.
    #[inline]
    fn expect(&mut self, kind: TokKind, what: &str) -> Result<Token<'a>> {
        if self.tok.kind == kind {
            self.advance()
        } else {
            self.expected(what)
        }
    }

    /// [`Parser::expect`] with a message built only on failure.
    #[inline]
    fn expect_with(&mut self, kind: TokKind, what: impl FnOnce() -> String) -> Result<Token<'a>> {
        if self.tok.kind == kind {
            self.advance()
        } else {
            self.expected(&what())
        }
    }

    fn skip_newlines(&mut self) -> Result<()> {
        while self.at(TokKind::Newline) {
            self.advance()?;
        }
        Ok(())
    }

    #[inline]
    fn end_of_line(&mut self, after: &str) -> Result<()> {
        match self.tok.kind {
            TokKind::Newline => self.advance().map(drop),
            TokKind::Eof => Ok(()),
            _ => self.expected(&format!("end of line after {after}")),
        }
    }

    #[inline]
    fn ty(&mut self) -> Result<(Type, Loc)> {
        let t = self.tok;
        match (t.kind == TokKind::Ident)
            .then(|| Type::from_name(t.text))
            .flatten()
        {
            Some(ty) => {
                self.advance()?;
                Ok((ty, t.loc))
            }
            None => self.expected("a type (i32, i64, f32 or f64)"),
        }
    }

    /// An integer literal token, read as `i128`.
    fn int_literal(&mut self, what: &str) -> Result<(i128, Loc)> {
        if self.tok.kind != TokKind::Int {
            return self.expected(what);
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
    fn new_symbol_name(&mut self, what: &str) -> Result<NewSym<'a>> {
        let t = self.expect(TokKind::Global, what)?;
        let hash = hash_name(t.text);
        if self.module.symbol_hashed(t.text, hash).is_some() {
            return self.err(t.loc, format!("symbol @{} is defined twice", t.text));
        }
        Ok(NewSym {
            name: t.text,
            loc: t.loc,
            hash,
        })
    }

    /// Declares `sym`, a name found free (and not declared since).
    fn declare(&mut self, sym: NewSym<'_>, linkage: Linkage, kind: SymbolKind) -> SymId {
        let data = SymbolData {
            name: sym.name.to_string(),
            linkage,
            kind,
        };
        self.module.declare_new(data, sym.loc, sym.hash)
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
            return self.expected(WHAT);
        }
        let kw = self.tok;
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
                let t = self.tok;
                match (t.kind == TokKind::Ident).then_some(t.text) {
                    Some("func") => {
                        self.advance()?;
                        self.func(Linkage::Local)
                    }
                    Some("data" | "const") => {
                        self.advance()?;
                        self.data(Linkage::Local, t.text == "const")
                    }
                    _ => self.expected("'func', 'data' or 'const' after 'local'"),
                }
            }
            "extern" => {
                self.advance()?;
                let t = self.tok;
                match (t.kind == TokKind::Ident).then_some(t.text) {
                    Some("func") => {
                        self.advance()?;
                        self.extern_func()
                    }
                    Some("data") => {
                        self.advance()?;
                        let sym = self.new_symbol_name("a symbol name '@name'")?;
                        self.declare(sym, Linkage::Import, SymbolKind::Data { body: None });
                        Ok(())
                    }
                    _ => self.expected("'func' or 'data' after 'extern'"),
                }
            }
            _ => self.expected(WHAT),
        }
    }

    fn return_type(&mut self) -> Result<Option<Type>> {
        if self.at(TokKind::Arrow) {
            self.advance()?;
            Ok(Some(self.ty()?.0))
        } else {
            Ok(None)
        }
    }

    fn extern_func(&mut self) -> Result<()> {
        let name = self.new_symbol_name("a function name '@name'")?;
        self.expect(TokKind::LParen, "'(' after the function name")?;
        let mut params = Vec::new();
        if !self.at(TokKind::RParen) {
            loop {
                params.push(self.ty()?.0);
                match self.tok.kind {
                    TokKind::Comma => {
                        self.advance()?;
                    }
                    TokKind::RParen => break,
                    _ => return self.expected("',' or ')' after parameter type"),
                }
            }
        }
        self.advance()?;
        let ret = self.return_type()?;
        let sig = Signature::new(params, ret);
        self.declare(name, Linkage::Import, SymbolKind::Func { sig, body: None });
        Ok(())
    }

    // ---- data ----

    fn data(&mut self, linkage: Linkage, readonly: bool) -> Result<()> {
        let new = self.new_symbol_name("a data name '@name'")?;
        let name = new.name;
        let sym = self.declare(new, linkage, SymbolKind::Data { body: None });
        self.expect_with(TokKind::Equals, || format!("'=' after @{}", shorten(name)))?;
        self.expect(TokKind::LBrace, "'{' to start the data")?;
        self.skip_newlines()?;
        let data_id = DataId::new(self.module.datas.len());
        let mut def = DataDef {
            readonly,
            ..DataDef::default()
        };
        while !self.at(TokKind::RBrace) {
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
                _ => return self.expected("',' or '}' after data value"),
            }
        }
        self.advance()?;
        self.module.define_data(sym, def);
        Ok(())
    }

    fn data_value(&mut self, data_id: DataId, index: usize) -> Result<DataValue> {
        const WHAT: &str = "a data value (i8, i16, i32, i64, f32, f64, zero or @symbol)";
        let t = self.tok;
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
                if self.tok.kind == TokKind::Str {
                    if kw != "i8" {
                        return self.err(
                            self.tok.loc,
                            format!("a string must follow 'i8', not '{kw}'"),
                        );
                    }
                    let bytes = self.lex.string_bytes().to_vec();
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
                    let t = self.tok;
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
        match resolve_symbols(&mut self.module, refs, self.implicit) {
            Ok(()) => Ok(()),
            Err(r) => self.err(r.loc, format!("undeclared symbol @{}", shorten(r.name))),
        }
    }
}

/// Patches the symbol references `refs` of `module`, in order; the first
/// name that is not declared (and not supplied by `implicit`, which
/// declares it as an import) is returned.
fn resolve_symbols<'a>(
    module: &mut Module,
    refs: Vec<SymRef<'a>>,
    implicit: Option<SymbolHook<'_>>,
) -> std::result::Result<(), SymRef<'a>> {
    for r in refs {
        let hash = hash_name(r.name);
        let id = match module.symbol_hashed(r.name, hash) {
            Some(id) => id,
            None => match implicit.and_then(|f| f(r.name)) {
                Some(kind) => {
                    let data = SymbolData {
                        name: r.name.to_string(),
                        linkage: Linkage::Import,
                        kind,
                    };
                    module.declare_new(data, r.loc, hash)
                }
                None => return Err(r),
            },
        };
        match r.site {
            SymSite::Inst(f, i) => match &mut module.funcs[f.index()].insts[i.index()].kind {
                InstKind::Addr { sym } => *sym = id,
                InstKind::Call {
                    callee: Callee::Direct(sym),
                    ..
                } => *sym = id,
                _ => {}
            },
            SymSite::Data(d, i) => {
                if let Some(DataValue::SymAddr { sym, .. }) =
                    module.datas[d.index()].values.get_mut(i)
                {
                    *sym = id;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
