//! `kiln repl` (SPEC section 8): items read one at a time, each function or
//! data item its own module, finalized on its own.
//!
//! - A function item runs from its first line to the line where its braces
//!   close; every other item (data, const, extern, `?` query) is one line.
//!   Blank and comment-only lines between items are skipped. Line numbers
//!   count across the whole input.
//! - Symbols exported by earlier items are visible to later ones without
//!   `extern`: the parser's implicit-symbol hook declares them as imports
//!   from the session's table of earlier definitions. An `extern` item only
//!   adds its declaration to that table, for the items after it (the
//!   symbol resolves to the host when a later item is finalized).
//! - `? @f(args)` calls `f` with arguments parsed by its parameter types
//!   and prints the result like `kiln run`.
//! - An error is reported as `<stdin>:LINE:COL: error: ...` and the session
//!   goes on; a trap in a query prints `trap: REASON` and ends the session
//!   with status 3; end of input ends it with status 0.
//!
//! - A function item becomes a lazy module ([`Engine::add_module_lazy`]):
//!   calls reach it through its stub, so a later item defining the same
//!   name with the same signature replaces it for every caller
//!   ([`Engine::redefine`]); another signature, or redefining a data item,
//!   is an error and the old definition stays. Without `--lazy` each
//!   function is compiled when entered (errors are reported then); with
//!   it, on its first call (link errors are still reported at entry).
//!
//! Cost per entry does not depend on how many came before: the table is a
//! hash map and finalizing a new item touches only that item's module.

use crate::engine::{Compile, Engine};
use crate::error::{Diagnostic, Error, Result};
use crate::ir::parse::{parse_module_with, ParseOptions};
use crate::ir::{Linkage, Loc, Module, SymbolKind};
use crate::registry::{ExportKind, FxHashMap, ModuleId};
use crate::value::Val;
use std::io::{BufRead, Write};

/// The file name used in diagnostics.
pub const FILE: &str = "<stdin>";

/// A REPL session over one engine.
pub struct Repl {
    engine: Engine,
    /// `--lazy`: functions are compiled on their first call rather than
    /// when entered.
    lazy: bool,
    /// The lazy module holding every function item (each its own
    /// function-module), made with the first one.
    session: Option<ModuleId>,
    /// Names earlier items declared (`extern`) or defined `local`; the
    /// exported definitions are the engine's.
    names: FxHashMap<Box<str>, Name>,
}

/// What an earlier item made of a name the engine does not export.
struct Name {
    /// As later items see it (an import of this kind).
    kind: SymbolKind,
    def: Def,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Def {
    /// Declared by an `extern` item only.
    Extern,
    LocalFunc,
    LocalData,
}

/// What a query or item did.
pub enum Outcome {
    /// Nothing to print.
    Quiet,
    /// A query's result line.
    Value(Option<Val>),
}

fn located(loc: Loc, message: String) -> Error {
    Error::Parse(Diagnostic::new(FILE, loc, message))
}

/// The text of a line without its comment.
fn code_of(line: &str) -> &str {
    line.split(';').next().unwrap_or("")
}

/// What a later item sees of an exported symbol: an import of its kind.
fn import_of(kind: ExportKind) -> SymbolKind {
    match kind {
        ExportKind::Func(sig) => SymbolKind::Func { sig, body: None },
        ExportKind::Data => SymbolKind::Data { body: None },
    }
}

impl Repl {
    /// A session whose function items are compiled when entered.
    pub fn new(engine: Engine) -> Self {
        Repl::with_lazy(engine, false)
    }

    /// A session; with `lazy`, function items are compiled on their first
    /// call (`kiln repl --lazy`).
    pub fn with_lazy(engine: Engine, lazy: bool) -> Self {
        Repl {
            engine,
            lazy,
            session: None,
            names: FxHashMap::default(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What exported `name` is, if an earlier item (or the embedder)
    /// defined it.
    fn exported(&self, name: &str) -> Option<ExportKind> {
        self.engine.symbol(name).ok().flatten().map(|s| s.kind)
    }

    /// Adds one item (function, data, const or extern) whose text starts
    /// at line `first_line`. A function whose name an earlier function
    /// item defined replaces it (same signature; SPEC section 8).
    pub fn item(&mut self, text: &str, first_line: u32) -> Result<()> {
        let hook = |name: &str| match self.exported(name) {
            Some(kind) => Some(import_of(kind)),
            None => self
                .names
                .get(name)
                .filter(|n| n.def == Def::Extern)
                .map(|n| n.kind.clone()),
        };
        let opts = ParseOptions {
            first_line,
            implicit_symbol: Some(&hook),
        };
        let module = parse_module_with(FILE, text, &opts)?;
        let mut declares = Vec::new();
        let mut locals: Vec<(Box<str>, Name)> = Vec::new();
        let mut defines = false;
        let mut functions_only = true;
        for (id, s) in module.symbol_ids() {
            if s.linkage == Linkage::Import {
                declares.push((s.name.as_str().into(), import_kind(&s.kind)));
                continue;
            }
            defines = true;
            let is_func = s.is_func();
            functions_only &= is_func;
            let earlier = match self.exported(&s.name) {
                // The engine checks the signature.
                Some(ExportKind::Func(_)) if is_func && s.linkage == Linkage::Export => None,
                Some(ExportKind::Data) => Some("; data cannot be redefined"),
                Some(ExportKind::Func(_)) => Some(""),
                None => match self.names.get(s.name.as_str()).map(|n| n.def) {
                    None | Some(Def::Extern) => None,
                    Some(Def::LocalData) => Some("; data cannot be redefined"),
                    Some(Def::LocalFunc) => Some(""),
                },
            };
            if let Some(why) = earlier {
                return Err(Error::Link(Diagnostic::new(
                    FILE,
                    module.symbol_loc(id),
                    format!("@{} is already defined by an earlier item{why}", s.name),
                )));
            }
            if s.linkage == Linkage::Local {
                let def = if is_func {
                    Def::LocalFunc
                } else {
                    Def::LocalData
                };
                locals.push((
                    s.name.as_str().into(),
                    Name {
                        kind: import_kind(&s.kind),
                        def,
                    },
                ));
            }
        }
        if !defines {
            // An `extern` item: remember the declaration for later items.
            for (name, kind) in declares {
                self.names.entry(name).or_insert(Name {
                    kind,
                    def: Def::Extern,
                });
            }
            return Ok(());
        }
        if functions_only {
            // Functions are called through their stubs, so that a later
            // item can redefine them.
            let session = match self.session {
                Some(s) => s,
                None => {
                    let s = self.engine.add_module_lazy(Module::new(FILE))?;
                    self.session = Some(s);
                    s
                }
            };
            let when = if self.lazy {
                Compile::OnFirstCall
            } else {
                Compile::Now
            };
            let mut module = module;
            if self.lazy {
                // The IR stays until the function is first called, maybe
                // for the whole session: no spare capacity from parsing
                // (a one-function item's lists hold 4 entries' room).
                module.funcs.shrink_to_fit();
                module.symbols.shrink_to_fit();
                module.symbol_locs.shrink_to_fit();
                module.datas.shrink_to_fit();
            }
            self.engine.extend_lazy(session, module, when)?;
        } else {
            let id = self.engine.add_module(module)?;
            if let Err(e) = self.engine.finalize_module(id) {
                // Forget the item entirely so that it can be entered again.
                let _ = self.engine.remove_module(id);
                return Err(e);
            }
        }
        for (name, n) in locals {
            self.names.insert(name, n);
        }
        Ok(())
    }

    /// Runs a `? @f(args)` line (`line` is its number).
    pub fn query(&mut self, text: &str, line: u32) -> Result<Option<Val>> {
        let col = |i: usize| Loc::new(line, i as u32 + 1);
        let q = text.find('?').unwrap_or(0);
        let rest = &text[q + 1..];
        let at = q + 1 + (rest.len() - rest.trim_start().len());
        if !text[at..].starts_with('@') {
            return Err(located(col(at), "expected @function after ?".into()));
        }
        let name_start = at + 1;
        let name_len = text[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.$".contains(c)))
            .unwrap_or(text.len() - name_start);
        let name = &text[name_start..name_start + name_len];
        if name.is_empty() {
            return Err(located(col(at), "expected a function name after @".into()));
        }
        let after = name_start + name_len;
        let open = after + (text[after..].len() - text[after..].trim_start().len());
        if !text[open..].starts_with('(') {
            return Err(located(
                col(open),
                "expected ( after the function name".into(),
            ));
        }
        let Some(close_rel) = text[open..].find(')') else {
            return Err(located(col(text.len()), "expected )".into()));
        };
        let close = open + close_rel;
        let tail = &text[close + 1..];
        if !code_of(tail).trim().is_empty() {
            let t = close + 1 + (tail.len() - tail.trim_start().len());
            return Err(located(col(t), "unexpected text after the call".into()));
        }
        let sig = match self.exported(name) {
            Some(ExportKind::Func(sig)) => sig,
            _ => return Err(located(col(at), format!("no function @{name}"))),
        };
        // The arguments, with their columns.
        let inner = &text[open + 1..close];
        let mut pieces: Vec<(usize, &str)> = Vec::new();
        if !inner.trim().is_empty() {
            let mut start = 0;
            for part in inner.split(',') {
                let lead = part.len() - part.trim_start().len();
                pieces.push((open + 1 + start + lead, part.trim()));
                start += part.len() + 1;
            }
        }
        if pieces.len() != sig.params.len() {
            return Err(located(
                col(open),
                format!(
                    "@{name} takes {} argument(s), {} given",
                    sig.params.len(),
                    pieces.len()
                ),
            ));
        }
        let mut args = Vec::with_capacity(pieces.len());
        for ((c, p), &ty) in pieces.iter().zip(&sig.params) {
            match Val::parse(ty, p) {
                Some(v) => args.push(v),
                None => return Err(located(col(*c), format!("invalid {ty} argument `{p}`"))),
            }
        }
        self.engine.call(name, &args)
    }

    /// Runs a whole session: reads `input` to its end, writes results to
    /// `out` and diagnostics to `err`. Returns the exit status (0, or 3
    /// after a trap).
    pub fn run(
        &mut self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> i32 {
        let mut lines: Vec<String> = Vec::new();
        let mut buf = Vec::new();
        let mut next_line = 1u32;
        // One item at a time, reading only as far as needed.
        while let Some((first, text)) = self.read_item(input, &mut buf, &mut lines, &mut next_line)
        {
            let is_query = code_of(&text).trim_start().starts_with('?');
            let result = if is_query {
                self.query(&text, first).map(Outcome::Value)
            } else {
                self.item(&text, first).map(|()| Outcome::Quiet)
            };
            // SAFETY: fflush(NULL) flushes every C stdio stream; always
            // valid. What the program wrote comes before our line.
            unsafe { libc::fflush(std::ptr::null_mut()) };
            match result {
                Ok(Outcome::Value(Some(v))) => {
                    let _ = writeln!(out, "{v}");
                    let _ = out.flush();
                }
                Ok(_) => {}
                Err(Error::Trap(t)) => {
                    let _ = out.flush();
                    let _ = writeln!(err, "{t}");
                    return 3;
                }
                Err(e) => {
                    let _ = out.flush();
                    match e.diagnostic() {
                        Some(_) => {
                            let _ = writeln!(err, "{e}");
                        }
                        None => {
                            let _ = writeln!(err, "{FILE}:{first}:1: error: {e}");
                        }
                    }
                }
            }
            lines.clear();
        }
        0
    }

    /// Reads the next item: its first line number and text, or `None` at
    /// end of input.
    fn read_item(
        &self,
        input: &mut dyn BufRead,
        buf: &mut Vec<u8>,
        lines: &mut Vec<String>,
        next_line: &mut u32,
    ) -> Option<(u32, String)> {
        let mut first = 0;
        let mut depth: i64 = 0;
        let mut in_func = false;
        loop {
            buf.clear();
            match input.read_until(b'\n', buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(buf).into_owned();
            let n = *next_line;
            *next_line += 1;
            let code = code_of(&line);
            if lines.is_empty() {
                if code.trim().is_empty() {
                    continue;
                }
                first = n;
                let mut words = code.split_whitespace();
                let w0 = words.next().unwrap_or("");
                in_func = w0 == "func" || (w0 == "local" && words.next() == Some("func"));
            }
            let (mut closes, mut done) = (false, !in_func);
            if in_func {
                for c in code.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            closes = true;
                        }
                        _ => {}
                    }
                }
                done = depth <= 0 && closes;
            }
            lines.push(line);
            if done {
                break;
            }
        }
        if lines.is_empty() {
            return None;
        }
        let mut text = String::new();
        for l in lines.iter() {
            text.push_str(l);
            if !l.ends_with('\n') {
                text.push('\n');
            }
        }
        Some((first, text))
    }
}

/// The kind a later item sees for a symbol: the same, without a body.
fn import_kind(kind: &SymbolKind) -> SymbolKind {
    match kind {
        SymbolKind::Func { sig, .. } => SymbolKind::Func {
            sig: sig.clone(),
            body: None,
        },
        SymbolKind::Data { .. } => SymbolKind::Data { body: None },
    }
}

/// `kiln repl` on the process's standard streams; returns the exit status.
pub fn main(lazy: bool) -> i32 {
    let mut repl = Repl::with_lazy(Engine::default(), lazy);
    // Traps in typed calls cannot happen here (queries use `Engine::call`),
    // but keep the CLI's contract if one does.
    repl.engine().on_trap(|t| {
        // SAFETY: fflush(NULL) is always valid.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        eprintln!("trap: {}", t.reason());
        std::process::exit(3)
    });
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    repl.run(&mut input, &mut out, &mut err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(input: &str) -> (String, String, i32) {
        let mut repl = Repl::new(Engine::default());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = repl.run(&mut input.as_bytes(), &mut out, &mut err);
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            status,
        )
    }

    #[test]
    fn items_see_earlier_items_without_extern() {
        let (out, err, status) = session(
            "; a session\n\
             func @sq(%x: i64) -> i64 {\n\
             entry:\n\
                 %y = mul.i64 %x, %x\n\
                 ret %y\n\
             }\n\
             data @k = { i64 5 }\n\
             \n\
             func @f(%x: i64) -> i64 {\n\
             entry:\n\
                 %s = call.i64 @sq(%x)\n\
                 %p = addr @k\n\
                 %k = load.i64 %p\n\
                 %r = add.i64 %s, %k\n\
                 ret %r\n\
             }\n\
             ? @f(4)\n\
             ? @sq(-3)\n\
             extern func @labs(i64) -> i64\n\
             func @g(%x: i64) -> f64 {\n\
             entry:\n\
                 %a = call.i64 @labs(%x)\n\
                 %f = sitof.f64 %a\n\
                 ret %f\n\
             }\n\
             ? @g(-2)\n",
        );
        assert_eq!(
            (out.as_str(), err.as_str(), status),
            ("21\n9\n2.0\n", "", 0)
        );
    }

    #[test]
    fn errors_are_located_across_the_input_and_the_session_goes_on() {
        let (out, err, status) = session(
            "func @a() -> i64 {\nentry:\n    ret 1\n}\n\
             func @a() -> i32 {\nentry:\n    ret 2\n}\n\
             func @b() -> i32 {\nentry:\n    %x = call.i64 @nope()\n    ret 0\n}\n\
             ? @a(1)\n\
             ? @zz()\n\
             ? @a()\n\
             data @d = { i32 1 }\n\
             ? @d()\n\
             bogus\n\
             ? @a()\n",
        );
        assert_eq!(out, "1\n1\n");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 6, "{err}");
        assert!(lines[0].starts_with("<stdin>:5:6: error: "), "{err}");
        assert!(lines[1].starts_with("<stdin>:11:"), "{err}");
        assert!(lines[1].contains("undeclared symbol @nope"), "{err}");
        assert!(lines[2].starts_with("<stdin>:14:5: error: "), "{err}");
        assert!(
            lines[3].starts_with("<stdin>:15:3: error: no function @zz"),
            "{err}"
        );
        assert!(
            lines[4].starts_with("<stdin>:18:3: error: no function @d"),
            "{err}"
        );
        assert!(lines[5].starts_with("<stdin>:19:1: error: "), "{err}");
        assert_eq!(status, 0);
    }

    #[test]
    fn a_trap_ends_the_session_with_status_3() {
        let (out, err, status) = session(
            "func @d(%x: i32) -> i32 {\nentry:\n    %q = sdiv.i32 10, %x\n    ret %q\n}\n\
             ? @d(5)\n? @d(0)\n? @d(1)\n",
        );
        assert_eq!(
            (out.as_str(), err.as_str(), status),
            ("2\n", "trap: division by zero\n  at @d (<stdin>:3:10)\n", 3)
        );
    }

    #[test]
    fn thousands_of_entries_each_finalize_only_themselves() {
        let mut text = String::new();
        for k in 0..3000 {
            if k == 0 {
                text.push_str("func @f0() -> i64 {\nentry:\n    ret 0\n}\n");
            } else {
                text.push_str(&format!(
                    "func @f{k}() -> i64 {{\nentry:\n    %x = call.i64 @f{p}()\n    %y = add.i64 %x, 1\n    ret %y\n}}\n",
                    p = k - 1
                ));
            }
        }
        text.push_str("? @f2999()\n");
        let mut repl = Repl::new(Engine::default());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(repl.run(&mut text.as_bytes(), &mut out, &mut err), 0);
        assert_eq!(String::from_utf8(out).unwrap(), "2999\n");
        let s = repl.engine().stats().unwrap();
        assert_eq!((s.modules_compiled, s.finalized), (3000, 3000));
        assert_eq!(s.last_touched, 2, "the last item touched only itself");
    }
}
