//! The commands themselves: `check` and `run`; `asm` and `repl` are
//! reserved and report that they are not built yet.
//!
//! Input files are read as bytes and decoded here, so that an unreadable
//! file and non-UTF-8 text are ordinary input errors. The module name of
//! each file is its path exactly as given on the command line, which is
//! what diagnostics print.

use super::args::{Engine, RunOptions, Target};
use super::{print_line, Failure};
use kiln::error::{Diagnostic, Error};
use kiln::host::HostFunctions;
use kiln::interp::Interpreter;
use kiln::ir::Signature;
use kiln::ir::{parse::parse_module, verify::verify_module, Linkage, Loc, Module, SymbolKind};
use kiln::Val;
use std::ffi::OsString;

/// An error of the library, as the one line it prints.
fn input(e: Error) -> Failure {
    match e {
        Error::Trap(t) => Failure::Trap(t.reason().to_string()),
        Error::Parse(_) | Error::Verify(_) | Error::Link(_) => Failure::Input(e.to_string()),
        Error::Argument(m) | Error::Runtime(m) => Failure::Input(format!("kiln: error: {m}")),
    }
}

fn input_msg(msg: impl std::fmt::Display) -> Failure {
    Failure::Input(format!("kiln: error: {msg}"))
}

/// `std::io::Error` prints "... (os error 2)"; the number adds nothing for
/// a user.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Decodes `bytes` as UTF-8; an invalid sequence is a parse error at its
/// line and column (columns count characters, 1-based).
pub fn decode(file: &str, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let prefix = std::str::from_utf8(valid).unwrap_or("");
        let line = prefix.matches('\n').count() + 1;
        let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error::Parse(Diagnostic::new(
            file,
            Loc::new(clamp(line), clamp(col)),
            "invalid UTF-8 in source text",
        ))
    })
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads, parses and verifies each file, in order; the first error wins.
fn load(files: &[OsString]) -> Result<Vec<Module>, Failure> {
    let mut modules = Vec::with_capacity(files.len());
    for path in files {
        let name = path.to_string_lossy().into_owned();
        let bytes = std::fs::read(path)
            .map_err(|e| input_msg(format!("cannot read {name}: {}", io_reason(&e))))?;
        let text = decode(&name, bytes).map_err(input)?;
        let module = parse_module(&name, &text).map_err(input)?;
        verify_module(&module).map_err(input)?;
        modules.push(module);
    }
    Ok(modules)
}

/// `kiln check FILE...`
pub fn check(files: &[OsString]) -> Result<(), Failure> {
    load(files).map(drop)
}

/// Refuses a target kiln cannot run here. A foreign ISA needs the
/// emulator, which is not part of this build.
fn check_target(target: Option<Target>) -> Result<(), Failure> {
    let host = Target::host();
    match target {
        None if host.is_none() => Err(Failure::Unavailable(
            "kiln has no backend for this machine's ISA; use --engine interp".into(),
        )),
        Some(t) if Some(t) != host => Err(Failure::Unavailable(format!(
            "cannot run {} code on this {} host: kiln was built without an emulator",
            t.name(),
            host.map_or("unknown", Target::name)
        ))),
        _ => Ok(()),
    }
}

/// Finds the exported function `entry` and returns its signature.
fn entry_signature(modules: &[Module], entry: &str) -> Result<Signature, Failure> {
    let mut found_other = None;
    for m in modules {
        let Some(id) = m.symbol(entry) else { continue };
        let sym = m.sym(id);
        match (&sym.kind, sym.linkage) {
            (SymbolKind::Func { sig, body: Some(_) }, Linkage::Export) => return Ok(sig.clone()),
            (_, Linkage::Import) => {}
            (SymbolKind::Func { .. }, _) => {
                found_other = Some(format!("entry function @{entry} is not exported"))
            }
            (SymbolKind::Data { .. }, _) => {
                found_other = Some(format!("entry @{entry} is data, not a function"))
            }
        }
    }
    Err(input_msg(
        found_other.unwrap_or_else(|| format!("no function @{entry} to run")),
    ))
}

/// Parses the command-line arguments by the entry's parameter types.
fn parse_args(entry: &str, sig: &Signature, args: &[OsString]) -> Result<Vec<Val>, Failure> {
    if args.len() != sig.params.len() {
        return Err(input_msg(format!(
            "@{entry} takes {} argument{} but {} {} given",
            sig.params.len(),
            if sig.params.len() == 1 { "" } else { "s" },
            args.len(),
            if args.len() == 1 { "was" } else { "were" }
        )));
    }
    sig.params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (&ty, text))| {
            let text_str = text.to_str();
            text_str.and_then(|t| Val::parse(ty, t)).ok_or_else(|| {
                input_msg(format!(
                    "bad value '{}' for argument {} of @{entry}: expected {ty}",
                    text.to_string_lossy(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Flushes everything the program wrote through the C library, so that
/// it comes before kiln's own result or trap line.
fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes all open C output streams; it takes no
    // pointer it would dereference.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// `kiln run ...`
pub fn run(opts: &RunOptions) -> Result<(), Failure> {
    // The interpreter runs anywhere; only an explicit foreign --target is
    // refused for it.
    if opts.target.is_some() || opts.engine == Engine::Jit {
        check_target(opts.target)?;
    }
    if opts.engine == Engine::Jit {
        return Err(Failure::Unavailable(
            "the JIT engine is not built yet; use --engine interp".into(),
        ));
    }
    let modules = load(&opts.files)?;
    let host = HostFunctions::c_library();
    let mut interp = Interpreter::new(&modules, &host).map_err(input)?;
    let sig = entry_signature(&modules, &opts.entry)?;
    let args = parse_args(&opts.entry, &sig, &opts.args)?;
    let result = interp.call(&opts.entry, &args);
    flush_c_stdio();
    if let Some(v) = result.map_err(input)? {
        print_line(&v.to_string());
    }
    Ok(())
}

/// `kiln asm ...`: needs the compiler backends.
pub fn asm(files: &[OsString], target: Option<Target>) -> Result<(), Failure> {
    let _ = files;
    check_target(target)?;
    Err(Failure::Unavailable("'kiln asm' is not built yet".into()))
}

/// `kiln repl`: needs the JIT engine.
pub fn repl() -> Result<(), Failure> {
    Err(Failure::Unavailable("'kiln repl' is not built yet".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_located() {
        let e = decode("f.kir", b"ab\nc\xc3\xa9d\xffx".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.kir:2:4: error: invalid UTF-8 in source text"
        );
        let e = decode("f.kir", b"\x80".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.kir:1:1: error: invalid UTF-8 in source text"
        );
        assert_eq!(decode("f.kir", b"ok\n".to_vec()), Ok("ok\n".to_string()));
    }

    #[test]
    fn argument_count_and_values_are_checked() {
        let sig = Signature::new(vec![kiln::ir::Type::I32, kiln::ir::Type::F64], None);
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let ok = parse_args("f", &sig, &a(&["-3", "2.5"]));
        assert!(matches!(ok.as_deref(), Ok([Val::I32(-3), Val::F64(x)]) if *x == 2.5));
        match parse_args("f", &sig, &a(&["1"])) {
            Err(Failure::Input(m)) => {
                assert_eq!(m, "kiln: error: @f takes 2 arguments but 1 was given")
            }
            other => panic!("{other:?}"),
        }
        match parse_args("f", &sig, &a(&["1", "x"])) {
            Err(Failure::Input(m)) => assert_eq!(
                m,
                "kiln: error: bad value 'x' for argument 2 of @f: expected f64"
            ),
            other => panic!("{other:?}"),
        }
    }
}
