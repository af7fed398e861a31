//! The one error type of the library.
//!
//! Input errors (parse, verify, link) carry a [`Diagnostic`] naming the file
//! and the offending token, and print as `FILE:LINE:COL: error: MESSAGE`
//! (SPEC section 8). Traps carry a [`Trap`]: the [`TrapCode`] and the
//! IR-level backtrace (innermost first). Nothing in the library exits or
//! panics on bad input: it returns one of these.

use crate::ir::Loc;
use std::fmt;

/// A located message about an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (module) name.
    pub file: String,
    /// The offending token; [`Loc::NONE`] for built IR.
    pub loc: Loc,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            loc,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.is_none() {
            write!(f, "{}: error: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.loc.line, self.loc.col, self.message
            )
        }
    }
}

/// Why execution stopped (SPEC section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapCode {
    /// `trap` was executed.
    Unreachable,
    /// A division or remainder by zero.
    DivisionByZero,
    /// `sdiv` of the minimum value by -1.
    IntegerOverflow,
}

impl TrapCode {
    /// The reason as printed after `trap: `.
    pub fn reason(self) -> &'static str {
        match self {
            TrapCode::Unreachable => "unreachable",
            TrapCode::DivisionByZero => "division by zero",
            TrapCode::IntegerOverflow => "integer overflow",
        }
    }

    /// A small number for passing a trap code through machine code.
    pub fn code(self) -> u32 {
        match self {
            TrapCode::Unreachable => 0,
            TrapCode::DivisionByZero => 1,
            TrapCode::IntegerOverflow => 2,
        }
    }

    pub fn from_code(code: u32) -> Option<TrapCode> {
        match code {
            0 => Some(TrapCode::Unreachable),
            1 => Some(TrapCode::DivisionByZero),
            2 => Some(TrapCode::IntegerOverflow),
            _ => None,
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// One frame of an IR-level backtrace: the function, and the location of
/// the instruction that trapped (innermost frame) or of the call still
/// running (every other frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrapFrame {
    /// The IR name, without `@`.
    pub function: String,
    /// The module's file name (`<builder>` for built IR).
    pub file: String,
    /// The instruction's mnemonic token; [`Loc::NONE`] for built IR.
    pub loc: Loc,
}

impl fmt::Display for TrapFrame {
    /// `@NAME (FILE:LINE:COL)`, or `@NAME (FILE)` without a location.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.is_none() {
            write!(f, "@{} ({})", self.function, self.file)
        } else {
            write!(f, "@{} ({}:{})", self.function, self.file, self.loc)
        }
    }
}

/// The most frames a trap's backtrace keeps (the innermost ones), so that a
/// trap deep in a recursion does not print a million lines.
pub const MAX_BACKTRACE: usize = 1000;

/// A trap: why execution stopped and where (SPEC sections 7 and 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    pub code: TrapCode,
    /// The IR-level backtrace, innermost first: the trapping instruction,
    /// then each call still running, at most [`MAX_BACKTRACE`] frames.
    /// Frames of code without line tables (host functions) are left out.
    pub backtrace: Vec<TrapFrame>,
    /// Code addresses captured by the executor, innermost first (the trap
    /// site, then return addresses), in the executor's address space; the
    /// engine turns them into [`Trap::backtrace`] with the line tables of
    /// [`crate::debug`]. Left as captured for inspection.
    pub pcs: Vec<u64>,
}

impl Trap {
    /// A trap without a backtrace.
    pub fn new(code: TrapCode) -> Trap {
        Trap {
            code,
            backtrace: Vec::new(),
            pcs: Vec::new(),
        }
    }
}

impl From<TrapCode> for Trap {
    fn from(code: TrapCode) -> Trap {
        Trap::new(code)
    }
}

impl fmt::Display for Trap {
    /// `trap: REASON`, then the backtrace lines (SPEC section 8), without
    /// a final newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trap: {}", self.code)?;
        for fr in &self.backtrace {
            write!(f, "\n  at {fr}")?;
        }
        Ok(())
    }
}

/// Every error the library returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Malformed text.
    Parse(Diagnostic),
    /// A rule of the IR is broken.
    Verify(Diagnostic),
    /// Symbols do not resolve or do not agree across modules.
    Link(Diagnostic),
    /// Execution stopped with a trap.
    Trap(Trap),
    /// A bad request that is not located in a file: a missing entry
    /// function, an argument of the wrong type or form.
    Argument(String),
    /// Execution could not go on (for example the interpreter's call depth
    /// limit), or a resource ran out.
    Runtime(String),
}

impl Error {
    /// The diagnostic of an input error.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            Error::Parse(d) | Error::Verify(d) | Error::Link(d) => Some(d),
            _ => None,
        }
    }

    /// A trap with `code` and no backtrace.
    pub fn trap(code: TrapCode) -> Error {
        Error::Trap(Trap::new(code))
    }

    /// The trap code, when this is a trap.
    pub fn trap_code(&self) -> Option<TrapCode> {
        match self {
            Error::Trap(t) => Some(t.code),
            _ => None,
        }
    }

    /// Whether this is an error in the input (exit status 1 in the CLI).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Trap(_))
    }
}

impl fmt::Display for Error {
    /// Input errors print as `FILE:LINE:COL: error: MESSAGE`, traps as
    /// `trap: REASON`, other errors as their message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(d) | Error::Verify(d) | Error::Link(d) => d.fmt(f),
            Error::Trap(t) => t.fmt(f),
            Error::Argument(m) | Error::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
