//! The commands themselves: `check`, `run`, `opt`, `asm` and `repl`.
//!
//! Input files are read as bytes and decoded here, so that an unreadable
//! file and non-UTF-8 text are ordinary input errors. The module name of
//! each file is its path exactly as given on the command line, which is
//! what diagnostics print.

use super::args::{Engine, Executor, ReplOptions, RunOptions, Target};
use super::{print_line, Failure};
use kiln::error::{Diagnostic, Error};
use kiln::host::HostFunctions;
use kiln::interp::Interpreter;
use kiln::ir::parse::{parse_module, parse_module_split};
use kiln::ir::verify::{verify_module, verify_module_split};
use kiln::ir::Signature;
use kiln::ir::{Linkage, Loc, Module, SymbolKind};
use kiln::opt::{OptLevel, Pass};
use kiln::Val;
use std::ffi::OsString;
use std::os::fd::RawFd;

/// How [`load_file`] opens a file.
pub(super) enum Opening<'a> {
    /// By its path.
    Path,
    /// As this name relative to this directory descriptor, without the
    /// kernel walking the path's directories again (the name in
    /// diagnostics is still the path).
    At(RawFd, &'a std::ffi::OsStr),
    /// Already open; counted against the files that may be left open
    /// ([`may_keep_open`]) when it was opened.
    Open(std::fs::File),
}

/// An error of the library, as the one line it prints.
fn input(e: Error) -> Failure {
    match e {
        Error::Trap(t) => Failure::Trap(t.to_string()),
        Error::Parse(_) | Error::Verify(_) | Error::Link(_) => Failure::Input(e.to_string()),
        Error::Argument(m) | Error::Runtime(m) => Failure::Input(format!("kiln: error: {m}")),
        Error::ExecutorDied(how) => Failure::Died(how),
    }
}

/// The most bytes of source kiln reads from one file (SPEC section 8).
pub const MAX_SOURCE: u64 = 256 << 20;

/// Reads `path`, refusing more than [`MAX_SOURCE`] bytes (reading stops
/// there, so `/dev/zero` ends quickly): an input error located at the first
/// byte past the limit.
///
/// The text goes to `bytes` (cleared first): a command reading many files
/// reuses one buffer, so each file's text does not take fresh pages again.
///
/// `size`: the file's length when the caller knows it (from a `stat`),
/// else it is asked for. A read that stops short at that length is taken
/// as the end of the file, so a file is one `read`, not two. Returns the
/// file, still open (the caller closes it or not, see [`load_file`]).
/// `opening`: how to open it (see [`Opening`]).
fn read_source_into(
    path: &std::ffi::OsStr,
    opening: Opening<'_>,
    name: &str,
    bytes: &mut Vec<u8>,
    size: Option<u64>,
) -> Result<std::fs::File, Failure> {
    let cannot = |e: std::io::Error| {
        input_msg(format!(
            "cannot read {}: {}",
            kiln::error::escape_control(name),
            io_reason(&e)
        ))
    };
    let file = match opening {
        Opening::At(dir, rel) => open_at(dir, rel),
        Opening::Path => std::fs::File::open(path),
        Opening::Open(file) => Ok(file),
    }
    .map_err(cannot)?;
    // Sized from the file's length when it has one (one read, no regrowth).
    let size = match size {
        Some(n) => n,
        None => file.metadata().map_or(0, |m| m.len()),
    }
    .min(MAX_SOURCE) as usize;
    bytes.clear();
    bytes.reserve(size + 1);
    read_up_to(&file, bytes, size).map_err(cannot)?;
    if bytes.len() as u64 > MAX_SOURCE {
        let limit = MAX_SOURCE as usize;
        let line_start = bytes[..limit]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = bytes[..limit].iter().filter(|&&b| b == b'\n').count() + 1;
        // Columns count characters: every byte that does not continue a
        // UTF-8 sequence.
        let col = bytes[line_start..limit]
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count()
            + 1;
        return Err(input(Error::Parse(Diagnostic::new(
            name,
            Loc::new(clamp(line), clamp(col)),
            "source text longer than 256 MiB",
        ))));
    }
    Ok(file)
}

/// Appends `file`'s bytes to `bytes` until its end or past [`MAX_SOURCE`]
/// bytes (`MAX_SOURCE + 1` at most). A read that returns fewer bytes
/// than asked for when `bytes` holds exactly `expected` is the end (as
/// for a regular file of that length); any other read goes on until one
/// returns nothing.
fn read_up_to(file: &std::fs::File, bytes: &mut Vec<u8>, expected: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let limit = MAX_SOURCE as usize + 1;
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.len().max(8 << 10));
        }
        let want = (bytes.capacity() - bytes.len()).min(limit - bytes.len());
        // SAFETY: `want` bytes of spare capacity start at the end of
        // `bytes`; `read` writes at most `want` bytes there, and only the
        // `n` it reports written are then counted in the length.
        let n = unsafe {
            libc::read(
                file.as_raw_fd(),
                bytes.as_mut_ptr().add(bytes.len()).cast(),
                want,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: the kernel wrote `n <= want` bytes after the old length.
        unsafe { bytes.set_len(bytes.len() + n) };
        if n == 0 || bytes.len() >= limit || (n < want && bytes.len() == expected) {
            return Ok(());
        }
    }
}

/// Opens `name` for reading relative to the directory descriptor `dir`
/// (`openat`), as `File::open` opens a path: read-only, close-on-exec.
pub(super) fn open_at(dir: RawFd, name: &std::ffi::OsStr) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: `c` is NUL-terminated and valid for the call; `openat`
    // only reads it.
    let fd = with_c_name(name.as_bytes(), |c| unsafe {
        libc::openat(dir, c, libc::O_RDONLY | libc::O_CLOEXEC)
    })
    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by no one else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Calls `f` with `name` as a NUL-terminated C string, copied on the
/// stack when short (no allocation, as the standard library does for
/// paths); `None` if `name` holds a NUL byte.
pub(super) fn with_c_name<R>(name: &[u8], f: impl FnOnce(*const libc::c_char) -> R) -> Option<R> {
    if name.contains(&0) {
        return None;
    }
    let mut buf = [0u8; 256];
    if name.len() < buf.len() {
        buf[..name.len()].copy_from_slice(name);
        return Some(f(buf.as_ptr().cast()));
    }
    let c = std::ffi::CString::new(name).ok()?;
    Some(f(c.as_ptr()))
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
fn decode_str<'b>(file: &str, bytes: &'b [u8]) -> Result<&'b str, Error> {
    // Most sources are all ASCII, which is checked several bytes at a
    // time at about a third of the cost of validating UTF-8.
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
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
    let mut bytes = Vec::new();
    files
        .iter()
        .map(|path| load_file(path, Opening::Path, None, &mut bytes, false, false))
        .collect()
}

/// Descriptors [`load_file`] may still leave open (see `keep_open`);
/// `usize::MAX` until the first file asks.
static KEEP_OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Takes one from the files [`load_file`] may leave open: up to 256, and
/// at most a quarter of the process's descriptor limit, so that a long
/// command line never runs out of descriptors; whether one was left.
pub(super) fn may_keep_open() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    if KEEP_OPEN.load(Relaxed) == usize::MAX {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` into `limit`.
        let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        let budget = if known {
            usize::try_from(limit.rlim_cur / 4).map_or(256, |n| n.min(256))
        } else {
            0
        };
        // Another thread may have set it first: the same value.
        let _ = KEEP_OPEN.compare_exchange(usize::MAX, budget, Relaxed, Relaxed);
    }
    KEEP_OPEN
        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// Reads, parses and verifies one file (`size`: its length if known),
/// reading into `bytes` (see [`read_source_into`]), opened as `opening`
/// says. `split`: a large text
/// may be parsed on two threads ([`parse_module_split`]; the outcome is
/// the same). `keep_open`: the process exits next and runs no program
/// that could see the descriptor, so the file may be left open (exit
/// closes it for less than a `close` call costs; see [`may_keep_open`]).
pub(super) fn load_file(
    path: &std::ffi::OsStr,
    opening: Opening<'_>,
    size: Option<u64>,
    bytes: &mut Vec<u8>,
    split: bool,
    keep_open: bool,
) -> Result<Module, Failure> {
    let name = path.to_string_lossy().into_owned();
    // A file opened in advance was counted then.
    let counted = matches!(opening, Opening::Open(_));
    let file = read_source_into(path, opening, &name, bytes, size)?;
    if keep_open && (counted || may_keep_open()) {
        std::mem::forget(file);
    } else {
        drop(file);
    }
    let text = decode_str(&name, bytes).map_err(input)?;
    let module = if split {
        parse_module_split(&name, text)
    } else {
        parse_module(&name, text)
    }
    .map_err(input)?;
    if split {
        verify_module_split(&module)
    } else {
        verify_module(&module)
    }
    .map_err(input)?;
    Ok(module)
}

/// Refuses a target kiln cannot run here. A foreign ISA needs the
/// emulator, which is not part of this build.
fn check_target(target: Option<Target>) -> Result<(), Failure> {
    let host = Target::host();
    match target {
        None if host.is_none() => Err(Failure::Unavailable(
            "kiln has no backend for this machine's ISA; use --engine interp".into(),
        )),
        #[cfg(feature = "emulate")]
        Some(Target::Aarch64) => Ok(()),
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
    let mut modules = load(&opts.files)?;
    if opts.engine == Engine::Jit {
        return run_jit(opts, modules);
    }
    if opts.executor == Executor::Process {
        return Err(Failure::Unavailable(
            "--executor process runs compiled code; it does not apply to --engine interp".into(),
        ));
    }
    // The interpreter runs the optimized IR itself: what it prints must
    // not change either.
    for m in &mut modules {
        kiln::opt::optimize_module(m, opts.opt);
    }
    let host = HostFunctions::c_library();
    let mut interp = Interpreter::new(&modules, &host).map_err(input)?;
    let sig = entry_signature(&modules, &opts.entry)?;
    let args = parse_args(&opts.entry, &sig, &opts.args)?;
    let deadline = arm(interp.interrupt_handle(), opts.timeout)?;
    let result = interp.call(&opts.entry, &args);
    drop(deadline);
    flush_c_stdio();
    if let Some(v) = result.map_err(input)? {
        print_line(&v.to_string());
    }
    Ok(())
}

/// `kiln run --engine jit`: every module added to one engine and
/// finalized (so that every link error is reported, as the interpreter
/// does), then the entry called through the generic call path, which
/// returns traps as errors.
fn run_jit(opts: &RunOptions, modules: Vec<Module>) -> Result<(), Failure> {
    let sig = entry_signature(&modules, &opts.entry)?;
    let args = parse_args(&opts.entry, &sig, &opts.args)?;
    let target = opts.target.or_else(Target::host);
    if target != Target::host() {
        if opts.executor == Executor::Process {
            return Err(Failure::Unavailable(
                "--executor process runs code for this host's ISA only".into(),
            ));
        }
        return run_emulated(opts, modules, &args);
    }
    let engine = host_engine(opts.executor, opts.timeout.is_some())?;
    engine.set_opt_level(opts.opt);
    engine
        .set_debug_options(debug_options(opts))
        .map_err(input)?;
    call_entry(&engine, modules, opts, &args)
}

/// An engine for the host ISA whose code runs where `executor` says, with
/// interrupt checks when `interruptible` (a `--timeout`). Extern symbols
/// resolve to the same C-library set, with the same signatures, as the
/// interpreter's.
fn host_engine(executor: Executor, interruptible: bool) -> Result<kiln::Engine, Failure> {
    let host = HostFunctions::c_library();
    let engine = match executor {
        Executor::InProcess => {
            let engine = kiln::Engine::default();
            for name in host.names() {
                if let (Some(f), Some(addr)) = (host.get(name), kiln::symbols::dlsym_default(name))
                {
                    engine
                        .register_host_symbol(name, addr as usize, Some(f.sig.clone()))
                        .map_err(input)?;
                }
            }
            engine
        }
        Executor::Process => {
            // The child resolves the addresses; the signatures are checked
            // here.
            let config = kiln::executor::process::ProcessConfig {
                program: std::env::current_exe().ok(),
                host_signatures: host
                    .names()
                    .filter_map(|n| host.get(n).map(|f| (n.to_string(), f.sig.clone())))
                    .collect(),
            };
            let ex = kiln::executor::ProcessExecutor::spawn_with(config).map_err(input)?;
            kiln::Engine::with_executor(std::env::consts::ARCH, ex).map_err(input)?
        }
    };
    Ok(if interruptible {
        engine.with_interrupts()
    } else {
        engine
    })
}

/// A deadline interrupting through `handle` after `timeout`, if any.
fn arm(
    handle: kiln::InterruptHandle,
    timeout: Option<std::time::Duration>,
) -> Result<Option<kiln::interrupt::Deadline>, Failure> {
    timeout
        .map(|t| kiln::interrupt::Deadline::arm(handle, t))
        .transpose()
        .map_err(input)
}

/// What `run` tells profilers and debuggers: `--perf-map`, `--gdb`, and a
/// jitdump file in the directory `KILN_JITDUMP` names (see the README).
fn debug_options(opts: &RunOptions) -> kiln::debug::DebugOptions {
    kiln::debug::DebugOptions {
        perf_map: opts.perf_map,
        gdb: opts.gdb,
        jitdump: std::env::var_os("KILN_JITDUMP")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from),
        ..Default::default()
    }
}

/// Adds and finalizes every module (so that every link error is reported),
/// calls the entry, flushes C stdio and prints the result line. With
/// `--lazy` the modules are added lazily and only link-checked (the same
/// errors, in the same order), and each function is compiled on its first
/// call.
fn call_entry(
    engine: &kiln::Engine,
    modules: Vec<Module>,
    opts: &RunOptions,
    args: &[Val],
) -> Result<(), Failure> {
    let entry = opts.entry.as_str();
    let mut ids = Vec::with_capacity(modules.len());
    for m in modules {
        let id = if opts.lazy {
            engine.add_module_lazy(m)
        } else {
            engine.add_module(m)
        };
        ids.push(id.map_err(input)?);
    }
    for id in ids {
        if opts.lazy {
            engine.check_links(id).map_err(input)?;
        } else {
            engine.finalize_module(id).map_err(input)?;
        }
    }
    let deadline = arm(engine.interrupt_handle(), opts.timeout)?;
    let result = engine.call(entry, args);
    drop(deadline);
    flush_c_stdio();
    if let Some(v) = result.map_err(input)? {
        print_line(&v.to_string());
    }
    Ok(())
}

/// `kiln run --target aarch64` on another host: the modules are compiled
/// for AArch64 and run in the emulator, whose own host functions (the same
/// C-library set, working on emulated memory) serve `extern` calls.
#[cfg(feature = "emulate")]
fn run_emulated(opts: &RunOptions, modules: Vec<Module>, args: &[Val]) -> Result<(), Failure> {
    let executor = kiln::executor::EmulatorExecutor::new(Default::default()).map_err(input)?;
    let mut engine =
        kiln::Engine::with_executor("aarch64", std::sync::Arc::new(executor)).map_err(input)?;
    if opts.timeout.is_some() {
        engine = engine.with_interrupts();
    }
    engine.set_opt_level(opts.opt);
    call_entry(&engine, modules, opts, args)
}

/// Without the emulator a foreign target was refused by `check_target`.
#[cfg(not(feature = "emulate"))]
fn run_emulated(_: &RunOptions, _: Vec<Module>, _: &[Val]) -> Result<(), Failure> {
    Err(Failure::Unavailable(
        "kiln was built without an emulator (feature emulate)".into(),
    ))
}

/// `kiln opt FILE... [--passes P,...]`: each module after the `speed`
/// tier's passes (or the listed ones, then `dce`), printed as IR text,
/// file by file.
pub fn opt(files: &[OsString], passes: Option<&[Pass]>) -> Result<(), Failure> {
    let mut modules = load(files)?;
    let many = modules.len() > 1;
    for m in &mut modules {
        kiln::opt::run_passes(m, passes.unwrap_or(kiln::opt::SPEED));
        if many {
            print_line(&format!("; {}", m.name));
        }
        let text = kiln::ir::print::print_module(m);
        for line in text.lines() {
            print_line(line);
        }
    }
    Ok(())
}

/// `kiln asm FILE... [--target T] [--opt L]`: compiles each file for the
/// target (the host's by default; any built backend works on any host,
/// since nothing is run) and prints each function's disassembly, file by
/// file.
pub fn asm(files: &[OsString], target: Option<Target>, opt: OptLevel) -> Result<(), Failure> {
    let target = match target.or_else(Target::host) {
        Some(t) => t,
        None => {
            return Err(Failure::Unavailable(
                "kiln has no backend for this machine's ISA; pass --target".into(),
            ))
        }
    };
    let Some(backend) = kiln::isa::backend(target.name()) else {
        return Err(Failure::Unavailable(format!(
            "kiln was built without the {} backend",
            target.name()
        )));
    };
    let mut modules = load(files)?;
    for m in &mut modules {
        kiln::opt::optimize_module(m, opt);
    }
    let mut listings = Vec::with_capacity(modules.len());
    for module in &modules {
        let compiled = kiln::emit::compile_module(module, backend).map_err(input)?;
        listings.push(disassemble(target, &compiled)?);
    }
    for (module, listing) in modules.iter().zip(&listings) {
        if modules.len() > 1 {
            print_line(&format!("; {}", module.name));
        }
        for line in listing.lines() {
            print_line(line);
        }
    }
    Ok(())
}

/// The target's disassembler, when kiln was built with it (feature
/// `disasm`).
fn disassemble(
    target: Target,
    compiled: &kiln::compiled::CompiledModule,
) -> Result<String, Failure> {
    match target {
        #[cfg(all(feature = "disasm", feature = "x86_64"))]
        Target::X86_64 => Ok(kiln::isa::x86_64::disasm::disassemble(compiled)),
        #[cfg(all(feature = "disasm", feature = "aarch64"))]
        Target::Aarch64 => Ok(kiln::isa::aarch64::disasm::disassemble(compiled)),
        // Reachable only in builds without one of the disassemblers.
        #[allow(unreachable_patterns)]
        other => {
            let _ = compiled;
            Err(Failure::Unavailable(format!(
                "kiln was built without a disassembler for {} (feature disasm)",
                other.name()
            )))
        }
    }
}

/// `kiln repl` (see [`kiln::repl`]); it prints its own diagnostics and
/// trap line, and its status is the process's.
pub fn repl(opts: &ReplOptions) -> Result<(), Failure> {
    check_target(None)?;
    let engine = host_engine(opts.executor, opts.timeout.is_some())?;
    let status = kiln::repl::main_with(engine, opts.lazy, opts.timeout);
    if status != 0 {
        std::process::exit(status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_located() {
        let e = decode_str("f.kir", b"ab\nc\xc3\xa9d\xffx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.kir:2:4: error: invalid UTF-8 in source text"
        );
        let e = decode_str("f.kir", b"\x80").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.kir:1:1: error: invalid UTF-8 in source text"
        );
        assert_eq!(decode_str("f.kir", b"ok\n"), Ok("ok\n"));
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
