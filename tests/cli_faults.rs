//! Faults through the command line (issue 11, SPEC sections 5, 7 and 8):
//! running out of stack is `trap: stack overflow` (status 3) in every
//! engine; `--timeout` ends an infinite loop with `trap: interrupted`
//! (status 3) in every engine and executor; a wild store under
//! `--executor process` kills the child, not kiln (status 4); inputs that
//! never end are input errors, found quickly; odd file names keep errors
//! on one line.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run kiln")
}

/// Writes `text` to a file of the test's temporary directory.
fn file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `kiln run OPTIONS... FILE`, timed.
fn run(options: &[&str], path: &std::path::Path) -> (Output, Duration) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("run")];
    args.extend(options.iter().map(OsStr::new));
    args.push(path.as_os_str());
    let start = Instant::now();
    let out = kiln(&args);
    (out, start.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `trap:` line of a trap's stderr, after checking that the rest is
/// its backtrace (`  at @NAME (FILE:LINE:COL)` lines; SPEC section 8).
fn trap_line(out: &Output) -> String {
    let err = stderr(out);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or("").to_string();
    for l in lines {
        assert!(l.starts_with("  at @") && l.ends_with(')'), "{err}");
    }
    first
}

/// Every way to run code on this host: the interpreter, native code in
/// process (compiled up front and lazily) and in a child process, and
/// emulated AArch64 (up front and lazily) when built in.
const ENGINES: &[&[&str]] = &[
    &["--engine", "interp"],
    &["--engine", "jit"],
    &["--engine", "jit", "--lazy"],
    &["--engine", "jit", "--executor", "process"],
    #[cfg(feature = "emulate")]
    &["--engine", "jit", "--target", "aarch64"],
    #[cfg(feature = "emulate")]
    &["--engine", "jit", "--target", "aarch64", "--lazy"],
];

const RECURSION: &str = "\
func @down(%n: i64) -> i64 {
entry:
    %m = add.i64 %n, 1
    %r = call.i64 @down(%m)
    %s = add.i64 %r, 1
    ret %s
}
func @main() -> i64 {
entry:
    %r = call.i64 @down(0)
    ret %r
}
";

#[test]
fn deep_recursion_is_a_stack_overflow_trap_in_every_engine() {
    let path = file("recursion.kir", RECURSION);
    for engine in ENGINES {
        let (out, _) = run(engine, &path);
        assert_eq!(out.status.code(), Some(3), "{engine:?}: {out:?}");
        assert_eq!(trap_line(&out), "trap: stack overflow", "{engine:?}");
        // The backtrace names the recursing function (at most 1000 frames).
        let err = stderr(&out);
        assert!(err.contains("  at @down ("), "{engine:?}: {err}");
        assert!(err.lines().count() <= 1001, "{engine:?}");
        assert!(out.stdout.is_empty(), "{engine:?}");
    }
}

#[test]
fn allocas_larger_than_the_stack_overflow_in_every_engine() {
    // 9 MB is more than the 8 MiB stack of every engine; 300 MB is far
    // more, and must land in the guard (probed), not beyond it.
    for size in [9_000_000u64, 300_000_000] {
        let path = file(
            &format!("alloca{size}.kir"),
            &format!(
                "func @main() -> i64 {{\nentry:\n    %p = alloca {size}\n    store.i64 1, %p\n    ret 0\n}}\n"
            ),
        );
        for engine in ENGINES {
            let (out, _) = run(engine, &path);
            assert_eq!(out.status.code(), Some(3), "{size} {engine:?}: {out:?}");
            assert_eq!(trap_line(&out), "trap: stack overflow", "{engine:?}");
        }
    }
    // A frame that fits runs in every engine.
    let path = file(
        "alloca_fits.kir",
        "func @main() -> i64 {\nentry:\n    %p = alloca 4000000\n    store.i64 7, %p\n    %v = load.i64 %p\n    ret %v\n}\n",
    );
    for engine in ENGINES {
        let (out, _) = run(engine, &path);
        assert_eq!(out.status.code(), Some(0), "{engine:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n");
    }
}

#[test]
fn an_infinite_loop_with_a_timeout_is_interrupted_within_two_seconds() {
    let path = file(
        "forever.kir",
        "extern func @putchar(i32) -> i32\nfunc @main() -> i64 {\nentry:\n    %c = call.i32 @putchar(104)\n    %d = call.i32 @putchar(10)\n    jmp spin(0)\nspin(%i: i64):\n    %j = add.i64 %i, 1\n    jmp spin(%j)\n}\n",
    );
    for engine in ENGINES {
        let mut options = engine.to_vec();
        options.extend(["--timeout", "0.5"]);
        let (out, took) = run(&options, &path);
        assert_eq!(out.status.code(), Some(3), "{engine:?}: {out:?}");
        assert_eq!(trap_line(&out), "trap: interrupted", "{engine:?}");
        // What the program wrote before it was stopped comes first.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "h\n", "{engine:?}");
        assert!(
            took < Duration::from_secs(2),
            "{engine:?} took {took:?} to stop"
        );
        assert!(took >= Duration::from_millis(450), "{engine:?}: {took:?}");
    }
    // Without a timeout nothing is checked, and a finite loop finishes
    // with one as it does without.
    let fib = PathBuf::from("examples/fib.kir");
    for engine in ENGINES {
        let mut options = engine.to_vec();
        options.extend(["--timeout", "30"]);
        let mut args: Vec<&OsStr> = vec![OsStr::new("run")];
        args.extend(options.iter().map(OsStr::new));
        args.extend([fib.as_os_str(), OsStr::new("--"), OsStr::new("20")]);
        let out = kiln(&args);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "6765\n", "{engine:?}");
    }
}

#[test]
fn a_wild_store_in_the_executor_process_is_status_4() {
    let path = file(
        "wild.kir",
        "func @main() -> i64 {\nentry:\n    store.i64 1, 16\n    ret 0\n}\n",
    );
    let (out, _) = run(&["--executor", "process"], &path);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        stderr(&out),
        "kiln: error: executor process died: SIGSEGV\n"
    );
    // A program that calls `exit` ends kiln with its status, as in process.
    let path = file(
        "exit.kir",
        "extern func @putchar(i32) -> i32\nextern func @exit(i32)\nfunc @main() -> i64 {\nentry:\n    %c = call.i32 @putchar(33)\n    call @exit(7)\n    ret 0\n}\n",
    );
    for executor in ["in-process", "process"] {
        let (out, _) = run(&["--executor", executor], &path);
        assert_eq!(out.status.code(), Some(7), "{executor}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "!");
        assert!(out.stderr.is_empty(), "{executor}: {out:?}");
    }
}

#[test]
fn the_repl_honours_the_executor_and_the_timeout() {
    let session = "func @spin() -> i64 {\nentry:\n    jmp l\nl:\n    jmp l\n}\nfunc @one() -> i64 {\nentry:\n    ret 1\n}\n? @one()\n? @spin()\n? @one()\n";
    for executor in ["in-process", "process"] {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["repl", "--timeout", "0.3", "--executor", executor])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(session.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "{executor}");
        assert_eq!(out.status.code(), Some(3), "{executor}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{executor}");
        assert_eq!(trap_line(&out), "trap: interrupted", "{executor}");
    }
}

#[test]
fn sources_that_never_end_are_input_errors_found_quickly() {
    let start = Instant::now();
    let out = kiln(&[OsStr::new("check"), OsStr::new("/dev/zero")]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "/dev/zero:1:268435457: error: source text longer than 256 MiB\n"
    );
    // The same for one REPL item.
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("repl")
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "<stdin>:1:1: error: item longer than 256 MiB\n"
    );
}

#[test]
fn control_characters_in_file_names_stay_on_one_line() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let odd = dir.join("two\nlines\t.kir");
    std::fs::write(&odd, "func @main() -> i64 {\nentry:\n    ret x\n}\n").unwrap();
    let out = kiln(&[OsStr::new("check"), odd.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("two\\nlines\\t.kir:3:"), "{err}");
    let missing = OsStr::from_bytes(b"no\nsuch.kir");
    let out = kiln(&[OsStr::new("check"), missing]);
    assert_eq!(
        stderr(&out),
        "kiln: error: cannot read no\\nsuch.kir: No such file or directory\n"
    );
}
