//! Command-line behaviour that file tests cannot express: arguments and
//! file contents that are not UTF-8, help output, closed output pipes.

use std::ffi::OsStr;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kiln(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run kiln")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn help_goes_to_stdout_with_status_0() {
    let out = kiln(&[os("--help")]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("usage: kiln run FILE..."), "{text}");
    assert!(out.stderr.is_empty());
    let out = kiln(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: kiln run"));
}

#[test]
fn non_utf8_source_is_a_located_input_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("latin1.kir");
    std::fs::write(&path, b"; caf\xe9\nfunc @main() {\n").unwrap();
    let p = path.to_string_lossy().into_owned();
    let check = kiln(&[os("check"), os(&p)]);
    let run = kiln(&[os("run"), os("--engine=interp"), os(&p)]);
    for out in [check, run] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("{p}:1:6: error: invalid UTF-8 in source text\n")
        );
    }
}

#[test]
fn non_utf8_file_names_and_options_do_not_panic() {
    let bad = OsStr::from_bytes(b"no-such-\xff.kir");
    let out = kiln(&[os("check"), bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kiln: error: cannot read no-such-\u{fffd}.kir: No such file or directory\n"
    );
    let out = kiln(&[os("run"), os("a.kir"), os("--entry"), bad]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = kiln(&[os("run"), OsStr::from_bytes(b"--\xff")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn non_utf8_argument_is_a_bad_value() {
    let out = kiln(&[
        os("run"),
        os("--engine"),
        os("interp"),
        os("examples/fib.kir"),
        os("--"),
        OsStr::from_bytes(b"1\xff"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kiln: error: bad value '1\u{fffd}' for argument 1 of @main: expected i64\n"
    );
}

/// A pipe whose reading end is already closed, as stdout: every write
/// fails with EPIPE, both the program's (C stdio) and kiln's result line.
fn closed_pipe() -> Stdio {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created by pipe(2) and are owned
    // by nothing else; the read end is closed once, here.
    unsafe {
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn closed_stdout_is_not_a_crash() {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", "--engine", "interp", "examples/hello.kir"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("run kiln");
    assert_eq!(out.status.signal(), None, "{out:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
#[cfg(not(feature = "emulate"))]
fn a_foreign_target_is_a_usage_error_without_the_emulator() {
    let foreign = if cfg!(target_arch = "x86_64") {
        "aarch64"
    } else {
        "x86_64"
    };
    let out = kiln(&[
        os("run"),
        os("--engine=interp"),
        os("--target"),
        os(foreign),
        os("examples/fib.kir"),
        os("--"),
        os("3"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("kiln: usage error: cannot run {foreign} code")),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// At opt level `none` a division by a constant still goes through
/// multiply-high (the single-pass x86-64 generator has the pipeline's
/// sequences), while a division by a variable is a `div`.
#[test]
#[cfg(all(target_arch = "x86_64", feature = "disasm"))]
fn division_by_a_constant_is_a_multiplication_at_opt_none() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-divconst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("div.kir");
    std::fs::write(
        &file,
        "func @by_ten(%x: i64) -> i64 {\nentry:\n    %q = udiv.i64 %x, 10\n    ret %q\n}\n\
         func @by_var(%x: i64, %y: i64) -> i64 {\nentry:\n    %q = udiv.i64 %x, %y\n    ret %q\n}\n",
    )
    .expect("write input");
    let out = kiln(&[os("asm"), file.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let (by_ten, by_var) = text.split_once("by_var").expect("both functions listed");
    assert!(
        by_ten.contains("mul ") && !by_ten.contains("div "),
        "{text}"
    );
    assert!(by_var.contains("div "), "{text}");
}

/// A module of `n` small functions (about 170 bytes each), named after `tag`.
fn many_functions(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "func @{tag}{i}(%a: i64, %b: i64) -> i64 {{\nentry:\n    %c = add.i64 %a, %b\n    \
                 %d = mul.i64 %c, 3\n    %e = slt.i64 %d, %a\n    br %e, yes, no\nyes:\n    \
                 ret %d\nno:\n    ret %c\n}}\n"
            )
        })
        .collect()
}

/// Files `0.kir`, `1.kir`, ... in the test directory `name`, file `k` with
/// `sizes[k]` functions of [`many_functions`]; file `bad.0` also defines a
/// function using an undefined value, file `bad.1` one whose `ret` lacks
/// its value. The directory and the paths, in order.
fn faulty_check_files(
    name: &str,
    sizes: &[usize],
    bad: (usize, usize),
) -> (std::path::PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let mut text = many_functions(&format!("f{k}_"), n);
        if k == bad.0 {
            text.push_str("func @bad() {\nentry:\n    ret %nope\n}\n");
        } else if k == bad.1 {
            text.push_str("func @bad() -> i32 {\nentry:\n    ret\n}\n");
        }
        let p = dir.join(format!("{k}.kir"));
        std::fs::write(&p, text).unwrap();
        paths.push(p.to_string_lossy().into_owned());
    }
    (dir, paths)
}

#[test]
fn check_of_many_files_reports_the_first_failing_file_in_order() {
    // Enough text for `check` to use several threads where there are
    // processors. The files are taken largest first, so the large faulty
    // file (9) is checked first and the small faulty one (5) last; 5 still
    // comes first on the command line and is the one reported, exactly as
    // when it is checked alone.
    let sizes: Vec<usize> = (0..12)
        .map(|k| match k {
            5 => 10,
            9 => 400,
            _ => 60,
        })
        .collect();
    let (dir, paths) = faulty_check_files("check_many", &sizes, (5, 9));
    let args = |ks: &[usize]| -> Vec<&OsStr> {
        let mut v = vec![os("check")];
        v.extend(ks.iter().map(|&k| os(&paths[k])));
        v
    };
    let alone5 = kiln(&args(&[5]));
    let alone9 = kiln(&args(&[9]));
    for out in [&alone5, &alone9] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    assert!(String::from_utf8_lossy(&alone5.stderr).starts_with(&format!("{}:", paths[5])));
    assert_ne!(alone5.stderr, alone9.stderr);
    let all: Vec<usize> = (0..12).collect();
    for _ in 0..5 {
        let out = kiln(&args(&all));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(out.stderr, alone5.stderr);
        assert!(out.stdout.is_empty());
    }
    // Without file 5, file 9's error; without both, success and silence.
    let out = kiln(&args(&[0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]));
    assert_eq!((out.status.code(), &out.stderr), (Some(1), &alone9.stderr));
    let out = kiln(&args(&[0, 1, 2, 3, 4, 6, 7, 8, 10, 11, 0]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
    // A missing file before a faulty one: the missing file is reported.
    let missing = dir.join("missing.kir").to_string_lossy().into_owned();
    let mut v = args(&[0, 1]);
    v.push(os(&missing));
    v.extend(args(&[5, 9])[1..].iter().copied());
    let out = kiln(&v);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("kiln: error: cannot read {missing}: No such file or directory\n")
    );
    // The same after enough text for threads (a worker may already have
    // started by then): the missing file makes the run sequential, so the
    // failing file before it is reported, and the missing one after files
    // that pass.
    let mut v = args(&[0, 1, 2, 3, 4, 6, 7, 8, 9]);
    v.push(os(&missing));
    let out = kiln(&v);
    assert_eq!((out.status.code(), &out.stderr), (Some(1), &alone9.stderr));
    let mut v = args(&[0, 1, 2, 3, 4, 6, 7, 8, 10, 11]);
    v.push(os(&missing));
    let out = kiln(&v);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("kiln: error: cannot read {missing}: No such file or directory\n")
    );
}

/// Twenty files of about 11 KB: enough for `check` to start its first
/// worker before it has looked at every file (a sample of them promises
/// text for huge pages). The outcome is still the sequential one: the
/// first failing file in command-line order, and a file that is not a
/// regular one (`/dev/null`) or is missing makes the run sequential (the
/// early worker is then told there is nothing for it).
#[test]
fn check_of_many_files_with_an_early_worker_reports_what_one_thread_would() {
    let (dir, paths) = faulty_check_files("check_early", &[60; 20], (7, 16));
    let run = |ks: &[usize], extra: Option<&str>| {
        let mut v = vec![os("check")];
        v.extend(ks.iter().map(|&k| os(&paths[k])));
        v.extend(extra.map(os));
        kiln(&v)
    };
    let good: Vec<usize> = (0..20).filter(|&k| k != 7 && k != 16).collect();
    let out = run(&good, None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
    let alone7 = run(&[7], None);
    let alone16 = run(&[16], None);
    assert_eq!(alone7.status.code(), Some(1));
    assert_ne!(alone7.stderr, alone16.stderr);
    let all: Vec<usize> = (0..20).collect();
    for _ in 0..5 {
        let out = run(&all, None);
        assert_eq!((out.status.code(), &out.stderr), (Some(1), &alone7.stderr));
    }
    let mut no7 = good.clone();
    no7.push(16);
    let out = run(&no7, None);
    assert_eq!((out.status.code(), &out.stderr), (Some(1), &alone16.stderr));
    // Sequential runs: a device (empty text, no functions) passes; a
    // missing file after the good ones is the one reported.
    let out = run(&good, Some("/dev/null"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let missing = dir.join("missing.kir").to_string_lossy().into_owned();
    let out = run(&good, Some(&missing));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("kiln: error: cannot read {missing}: No such file or directory\n")
    );
}

#[test]
fn check_of_one_large_file_reports_what_one_thread_would() {
    // Large enough for `check` to parse the file on two threads, cut at a
    // function near its middle (where there are processors): every
    // outcome, an error in either half or across them included, is that of
    // the library's one-thread parse and verification, located exactly.
    use kiln::ir::{parse::parse_module, verify::verify_module};
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_split");
    std::fs::create_dir_all(&dir).unwrap();
    let head = many_functions("a", 500);
    let (b, c) = (many_functions("b", 300), many_functions("c", 200));
    let call = |callee: &str| {
        format!("func @x() -> i64 {{\nentry:\n    %r = call.i64 @{callee}(1, 2)\n    ret %r\n}}\n")
    };
    let cases = [
        ("ok", String::new()),
        // A syntax error in the second half.
        ("syntax", "func @x() {\nentry:\n    ret,\n}\n".into()),
        // A call to a function of the first half, and to none.
        ("across", call("a7")),
        ("undeclared", call("nowhere")),
        // A symbol of the first half defined again; a verifier error.
        ("twice", call("a7").replace("@x", "@a9")),
        ("verify", "func @x() -> i32 {\nentry:\n    ret\n}\n".into()),
        // Verifier errors in both halves: the first one is reported.
        (
            "verify_both",
            "func @x() -> i32 {\nentry:\n    ret\n}\n".into(),
        ),
    ];
    for (name, inject) in cases {
        let text = if name == "verify_both" {
            format!("{}{head}{b}{inject}{c}", inject.replace("@x", "@y"))
        } else {
            format!("{head}{b}{inject}{c}")
        };
        let path = dir.join(format!("{name}.kir"));
        std::fs::write(&path, &text).unwrap();
        let p = path.to_string_lossy().into_owned();
        let want = parse_module(&p, &text).and_then(|m| verify_module(&m));
        assert_eq!(want.is_ok(), matches!(name, "ok" | "across"), "{name}");
        let out = kiln(&[os("check"), os(&p)]);
        match want {
            Ok(()) => {
                assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
                assert!(out.stderr.is_empty(), "{name}: {out:?}");
            }
            Err(e) => {
                let e = e.to_string();
                // Located in the second half (after the first half's lines).
                let line: usize = e[p.len() + 1..].split(':').next().unwrap().parse().unwrap();
                let second_half = line > head.lines().count() + b.lines().count();
                assert_eq!(second_half, name != "verify_both", "{e}");
                assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stderr),
                    format!("{e}\n"),
                    "{name}"
                );
            }
        }
        assert!(out.stdout.is_empty(), "{name}: {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `backtrace(3)`, called from compiled code under `kiln run`, walks
/// through the compiled frames into kiln: the binary links libgcc's
/// unwinder statically (build.rs), but compiled code's frames are
/// registered with the shared `libgcc_s.so.1` that `backtrace(3)` loads
/// and walks with. (Registered with the static copy only, the walk stops
/// at the first compiled frame: 1 address.)
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn backtrace_from_compiled_code_walks_through_its_frames() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-backtrace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bt.kir");
    std::fs::write(
        &file,
        "extern func @backtrace(i64, i32) -> i32\n\
         func @main() -> i64 {\nentry:\n    %n = call.i64 @inner()\n    %m = add.i64 %n, 0\n    ret %m\n}\n\
         func @inner() -> i64 {\nentry:\n    %buf = alloca 512, 8\n    \
         %n = call.i32 @backtrace(%buf, 64)\n    %w = sext.i64 %n\n    ret %w\n}\n",
    )
    .expect("write input");
    let out = kiln(&[os("run"), file.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let frames: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count");
    // inner, main, the call trampoline, then kiln's own frames.
    assert!(frames >= 6, "backtrace(3) saw {frames} frames");
}

/// `kiln check` may leave the files it read open until it exits, but never
/// so many that it runs out of descriptors: 100 files check fine with a
/// limit of 64 open descriptors, with little text (one thread) and with
/// enough for the early worker; so do 20 files of about 7 KB (the early
/// worker again, and few enough that the files opened while it starts are
/// most of them) with a limit of 16.
#[test]
#[cfg(target_os = "linux")]
fn check_of_many_files_stays_within_the_descriptor_limit() {
    for (files, functions, limit) in [(100, 3, 64), (100, 8, 64), (20, 40, 16)] {
        check_files_under_a_descriptor_limit(files, functions, limit);
    }
}

/// [`check_of_many_files_stays_within_the_descriptor_limit`] with `files`
/// files of `functions` functions each, under a limit of `limit` open
/// descriptors.
#[cfg(target_os = "linux")]
fn check_files_under_a_descriptor_limit(files: usize, functions: usize, limit: u64) {
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!(
        "kiln-cli-fdlimit-{}-{files}-{functions}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files: Vec<std::path::PathBuf> = (0..files)
        .map(|k| {
            let p = dir.join(format!("{k}.kir"));
            std::fs::write(&p, many_functions(&format!("f{k}_"), functions)).expect("write input");
            p
        })
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.arg("check").args(&files).stdin(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; it only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().expect("run kiln");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}
