//! Hand-written parsing of the `kiln` command line into a [`Command`].
//!
//! Every usage error (status 2) is found here, before any file is read, so
//! the commands themselves only ever report input errors and traps.
//! Options may appear anywhere among the files; `--` ends the options (for
//! `run` what follows are the entry's arguments, for `check` more files).
//! `--flag VALUE` and `--flag=VALUE` are both accepted; a repeated option
//! keeps its last value.

use kiln::opt::{OptLevel, Pass};
use std::ffi::{OsStr, OsString};

/// Which engine `run` executes the module with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Jit,
    Interp,
}

/// An instruction set kiln compiles for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    X86_64,
    Aarch64,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "aarch64",
        }
    }

    fn from_name(name: &str) -> Option<Target> {
        match name {
            "x86_64" => Some(Target::X86_64),
            "aarch64" => Some(Target::Aarch64),
            _ => None,
        }
    }

    /// The ISA of the machine kiln runs on, if kiln can target it.
    pub fn host() -> Option<Target> {
        if cfg!(target_arch = "x86_64") {
            Some(Target::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Target::Aarch64)
        } else {
            None
        }
    }
}

/// Options of `kiln run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub files: Vec<OsString>,
    /// Without a leading `@`.
    pub entry: String,
    pub engine: Engine,
    /// `None` means the host's.
    pub target: Option<Target>,
    /// The entry's arguments, as given after `--`.
    pub args: Vec<OsString>,
    /// `--opt none|speed`.
    pub opt: OptLevel,
    /// `--lazy`: compile each function on its first call.
    pub lazy: bool,
    /// `--perf-map`: write `/tmp/perf-PID.map` for compiled code.
    pub perf_map: bool,
    /// `--gdb`: register compiled code with the GDB JIT interface.
    pub gdb: bool,
}

/// Options of `kiln repl`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplOptions {
    /// `--lazy`: compile each function on its first call.
    pub lazy: bool,
}

/// One parsed invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Check {
        files: Vec<OsString>,
    },
    Run(RunOptions),
    Asm {
        files: Vec<OsString>,
        target: Option<Target>,
        opt: OptLevel,
    },
    /// `kiln opt FILE... [--passes P,...]`: the modules after the `speed`
    /// tier's passes (or the listed ones), as IR text.
    Opt {
        files: Vec<OsString>,
        passes: Option<Vec<Pass>>,
    },
    Repl(ReplOptions),
}

/// A usage error: printed with the usage text, exit status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The usage text printed by `--help` and after a usage error.
pub const USAGE: &str = "\
usage: kiln run FILE... [--entry NAME] [--engine jit|interp] [--target x86_64|aarch64]
                [--opt none|speed] [--lazy] [--perf-map] [--gdb] [-- ARG...]
       kiln check FILE...
       kiln opt FILE... [--passes PASS,...]
       kiln asm FILE... [--target x86_64|aarch64] [--opt none|speed]
       kiln repl [--lazy]
       kiln --help | --version";

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(usage("no command given"));
    };
    let sub = sub.to_str().unwrap_or("");
    match sub {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "check" => parse_check(rest),
        "run" => parse_run(rest),
        "asm" => parse_asm(rest),
        "opt" => parse_opt(rest),
        "repl" => parse_repl(rest),
        _ => Err(usage(format!(
            "unknown command '{}'",
            args[0].to_string_lossy()
        ))),
    }
}

/// Walks `args`, handing options to `on_option` and collecting files;
/// returns the files and whatever follows `--`.
fn split_options(
    args: &[OsString],
    mut on_option: impl FnMut(
        &str,
        &mut dyn FnMut() -> Result<String, UsageError>,
    ) -> Result<(), UsageError>,
) -> Result<(Vec<OsString>, Vec<OsString>), UsageError> {
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            return Ok((files, args[i..].to_vec()));
        }
        let Some(text) = option_text(arg) else {
            files.push(arg.clone());
            continue;
        };
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (text.to_string(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let Some(v) = args.get(i) else {
                return Err(usage(format!("option {name} needs a value")));
            };
            i += 1;
            v.to_str()
                .map(str::to_string)
                .ok_or_else(|| usage(format!("the value of {name} is not valid UTF-8")))
        };
        on_option(&name, &mut value)?;
    }
    Ok((files, Vec::new()))
}

/// The text of an argument that looks like an option (`-x`, `--xyz`), or
/// `None` for a file name. A lone `-` is a file name.
fn option_text(arg: &OsStr) -> Option<String> {
    let bytes = arg.as_encoded_bytes();
    if bytes.len() > 1 && bytes[0] == b'-' {
        Some(arg.to_string_lossy().into_owned())
    } else {
        None
    }
}

fn unknown_option(name: &str) -> UsageError {
    usage(format!("unknown option '{name}'"))
}

fn parse_target(value: &str) -> Result<Target, UsageError> {
    Target::from_name(value).ok_or_else(|| {
        usage(format!(
            "unknown target '{value}' (expected x86_64 or aarch64)"
        ))
    })
}

fn need_files(files: &[OsString], cmd: &str) -> Result<(), UsageError> {
    if files.is_empty() {
        Err(usage(format!("{cmd}: no input FILE given")))
    } else {
        Ok(())
    }
}

fn parse_check(args: &[OsString]) -> Result<Command, UsageError> {
    let (mut files, after) = split_options(args, |name, _| Err(unknown_option(name)))?;
    files.extend(after);
    need_files(&files, "check")?;
    Ok(Command::Check { files })
}

fn parse_opt_level(value: &str) -> Result<OptLevel, UsageError> {
    OptLevel::from_name(value).ok_or_else(|| {
        usage(format!(
            "unknown optimization level '{value}' (expected none or speed)"
        ))
    })
}

fn parse_passes(value: &str) -> Result<Vec<Pass>, UsageError> {
    value
        .split(',')
        .map(|p| {
            Pass::from_name(p.trim()).ok_or_else(|| {
                let all: Vec<&str> = Pass::ALL.iter().map(|p| p.name()).collect();
                usage(format!(
                    "unknown pass '{p}' (expected some of {})",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

fn parse_opt(args: &[OsString]) -> Result<Command, UsageError> {
    let mut passes = None;
    let (mut files, after) = split_options(args, |name, value| match name {
        "--passes" => {
            passes = Some(parse_passes(&value()?)?);
            Ok(())
        }
        _ => Err(unknown_option(name)),
    })?;
    files.extend(after);
    need_files(&files, "opt")?;
    Ok(Command::Opt { files, passes })
}

fn parse_asm(args: &[OsString]) -> Result<Command, UsageError> {
    let mut target = None;
    let mut opt = OptLevel::None;
    let (files, after) = split_options(args, |name, value| match name {
        "--target" => {
            target = Some(parse_target(&value()?)?);
            Ok(())
        }
        "--opt" => {
            opt = parse_opt_level(&value()?)?;
            Ok(())
        }
        _ => Err(unknown_option(name)),
    })?;
    if let Some(a) = after.first() {
        return Err(usage(format!(
            "asm: unexpected argument '{}' after --",
            a.to_string_lossy()
        )));
    }
    need_files(&files, "asm")?;
    Ok(Command::Asm { files, target, opt })
}

fn parse_run(args: &[OsString]) -> Result<Command, UsageError> {
    let mut entry = String::from("main");
    let mut engine = Engine::Jit;
    let mut target = None;
    let mut opt = OptLevel::None;
    let mut lazy = false;
    let (mut perf_map, mut gdb) = (false, false);
    let (files, after) = split_options(args, |name, value| {
        match name {
            "--perf-map" => perf_map = true,
            "--gdb" => gdb = true,
            "--opt" => opt = parse_opt_level(&value()?)?,
            "--entry" => {
                let v = value()?;
                let v = v.strip_prefix('@').unwrap_or(&v).to_string();
                if v.is_empty() {
                    return Err(usage("--entry needs a function name"));
                }
                entry = v;
            }
            "--engine" => {
                engine = match value()?.as_str() {
                    "jit" => Engine::Jit,
                    "interp" => Engine::Interp,
                    other => {
                        return Err(usage(format!(
                            "unknown engine '{other}' (expected jit or interp)"
                        )))
                    }
                }
            }
            "--target" => target = Some(parse_target(&value()?)?),
            "--lazy" => lazy = true,
            _ => return Err(unknown_option(name)),
        }
        Ok(())
    })?;
    need_files(&files, "run")?;
    Ok(Command::Run(RunOptions {
        files,
        entry,
        engine,
        target,
        args: after,
        opt,
        lazy,
        perf_map,
        gdb,
    }))
}

fn parse_repl(args: &[OsString]) -> Result<Command, UsageError> {
    let mut opts = ReplOptions::default();
    let (files, after) = split_options(args, |name, _| {
        match name {
            "--lazy" => opts.lazy = true,
            _ => return Err(unknown_option(name)),
        }
        Ok(())
    })?;
    if let Some(a) = files.first().or(after.first()) {
        return Err(usage(format!(
            "unexpected argument '{}' to repl",
            a.to_string_lossy()
        )));
    }
    Ok(Command::Repl(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn run(args: &[&str]) -> RunOptions {
        match p(args) {
            Ok(Command::Run(r)) => r,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn run_defaults_and_options_anywhere() {
        let r = run(&["run", "a.kir"]);
        assert_eq!(r.entry, "main");
        assert_eq!(r.engine, Engine::Jit);
        assert_eq!(r.target, None);
        assert!(r.args.is_empty());

        let r = run(&[
            "run",
            "--engine",
            "interp",
            "a.kir",
            "--entry=@f",
            "b.kir",
            "--",
            "-5",
            "--x",
        ]);
        assert_eq!(
            r.files,
            vec![OsString::from("a.kir"), OsString::from("b.kir")]
        );
        assert_eq!(r.entry, "f");
        assert_eq!(r.engine, Engine::Interp);
        assert_eq!(r.args, vec![OsString::from("-5"), OsString::from("--x")]);

        let r = run(&["run", "-", "--target", "aarch64", "--engine=jit"]);
        assert_eq!(r.files, vec![OsString::from("-")]);
        assert_eq!(r.target, Some(Target::Aarch64));
        assert_eq!(r.engine, Engine::Jit);
        assert!(!r.lazy);
        assert!(run(&["run", "a.kir", "--lazy"]).lazy);
        assert_eq!(
            p(&["repl", "--lazy"]),
            Ok(Command::Repl(ReplOptions { lazy: true }))
        );
        assert_eq!(p(&["repl"]), Ok(Command::Repl(ReplOptions { lazy: false })));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["run"],
            &["run", "--", "1"],
            &["run", "a.kir", "--entry"],
            &["run", "a.kir", "--entry="],
            &["run", "a.kir", "--engine", "fast"],
            &["run", "a.kir", "--target", "mips"],
            &["run", "a.kir", "-x"],
            &["check"],
            &["check", "a.kir", "--entry", "f"],
            &["asm", "a.kir", "--", "x"],
            &["run", "a.kir", "--opt", "fast"],
            &["asm", "a.kir", "--opt"],
            &["opt"],
            &["opt", "a.kir", "--passes", "fold,nope"],
            &["opt", "a.kir", "--opt", "speed"],
            &["repl", "x"],
            &["repl", "--lazy", "x"],
            &["repl", "--eager"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be a usage error");
        }
    }

    #[test]
    fn opt_levels_and_passes() {
        assert_eq!(run(&["run", "a.kir"]).opt, OptLevel::None);
        assert_eq!(run(&["run", "a.kir", "--opt=speed"]).opt, OptLevel::Speed);
        assert_eq!(
            p(&["asm", "a.kir", "--opt", "speed"]),
            Ok(Command::Asm {
                files: vec![OsString::from("a.kir")],
                target: None,
                opt: OptLevel::Speed
            })
        );
        assert_eq!(
            p(&["opt", "a.kir", "--passes", "fold, dce"]),
            Ok(Command::Opt {
                files: vec![OsString::from("a.kir")],
                passes: Some(vec![Pass::Fold, Pass::Dce])
            })
        );
    }

    #[test]
    fn check_takes_files_after_double_dash() {
        assert_eq!(
            p(&["check", "a", "--", "-b"]),
            Ok(Command::Check {
                files: vec![OsString::from("a"), OsString::from("-b")]
            })
        );
    }
}
