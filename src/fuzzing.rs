//! Fuzzing support (cargo feature `fuzzing`): the checks behind the
//! `fuzz/` targets and the corpus replay test, as library code so that
//! `cargo test` replays every committed input without nightly or
//! cargo-fuzz.
//!
//! Each `check_*` function takes the fuzzer's raw bytes and returns
//! `Err(Finding)` when a property fails; the fuzz targets panic on a
//! finding (that is how libFuzzer learns of it), the library never does.
//!
//! - [`check_parse`]: any bytes parse and verify, or fail with a located
//!   `Error::Parse` / `Error::Verify` (non-zero line and column inside the
//!   text).
//! - [`check_roundtrip`]: whatever parses prints to text that parses to an
//!   equal module, and printing that again gives the same text.
//! - [`check_compile`]: [`gen`] turns the bytes into a valid, terminating
//!   program; the interpreter (with fuel) and every compiled target
//!   ([`exec`]) must agree on its result or trap.

pub mod bytes;
pub mod exec;
pub mod gen;

use crate::error::Error;
use crate::ir::parse::parse_module;
use crate::ir::print::print_module;
use crate::ir::verify::verify_module;
use std::fmt;

pub use exec::check_compile;

/// A property that failed: what and on which input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding(pub String);

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file name fuzz inputs are parsed under.
pub const FILE: &str = "fuzz.kir";

/// Input bytes as text: invalid UTF-8 becomes U+FFFD, so the parser sees
/// every input (the CLI reads files the same way or rejects them first).
pub fn text_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Arbitrary bytes parse and verify, or fail with a located input error.
pub fn check_parse(data: &[u8]) -> Result<(), Finding> {
    let text = text_of(data);
    let result = parse_module(FILE, &text).and_then(|m| verify_module(&m));
    match result {
        Ok(()) => Ok(()),
        Err(e) => check_located(&text, &e),
    }
}

/// `e` is a parse or verify error pointing inside `text` (a line and
/// column no further than one past its end).
pub fn check_located(text: &str, e: &Error) -> Result<(), Finding> {
    let d = match e {
        Error::Parse(d) | Error::Verify(d) => d,
        other => return Err(Finding(format!("not an input error: {other:?}"))),
    };
    let (line, col) = (d.loc.line as usize, d.loc.col as usize);
    if line == 0 || col == 0 {
        return Err(Finding(format!("unlocated diagnostic: {e}")));
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let in_text = match lines.get(line - 1) {
        Some(l) => col <= l.chars().count() + 1,
        None => false,
    };
    if !in_text {
        return Err(Finding(format!(
            "diagnostic at {line}:{col} lies outside the {}-line text: {e}",
            lines.len()
        )));
    }
    Ok(())
}

/// If the bytes parse, print → parse gives an equal module and printing
/// is idempotent.
pub fn check_roundtrip(data: &[u8]) -> Result<(), Finding> {
    let text = text_of(data);
    let Ok(m) = parse_module(FILE, &text) else {
        return Ok(());
    };
    let printed = print_module(&m);
    let m2 = parse_module(FILE, &printed)
        .map_err(|e| Finding(format!("printed text does not parse: {e}\n{printed}")))?;
    if m != m2 {
        return Err(Finding(format!("reparsed module differs\n{printed}")));
    }
    let again = print_module(&m2);
    if again != printed {
        return Err(Finding(format!(
            "printing is not idempotent\nfirst:\n{printed}\nsecond:\n{again}"
        )));
    }
    Ok(())
}
