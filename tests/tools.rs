//! The profiler and debugger integrations, tried with the real tools
//! through the `kiln` binary: the perf map, the jitdump file, `perf`
//! itself, and `gdb` (issue 12). A test whose tool is not installed (or
//! may not run here, as `perf` without permission to record) prints why
//! and passes; CI installs both (`.ci/deps.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-tools-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// Whether `tool --version` runs.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `@inner` (called by `@outer`, called by `@main`) calls the C library's
/// `abort`: lines 5, 11 and 17.
const ABORTS: &str = "\
extern func @abort()

func @inner(%x: i64) -> i64 {
entry:
    call @abort()
    ret %x
}

func @outer(%x: i64) -> i64 {
entry:
    %r = call.i64 @inner(%x)
    ret %r
}

func @main() -> i64 {
entry:
    %r = call.i64 @outer(1)
    ret %r
}
";

/// A hot loop in `@spin` (called by `@main`), long enough to be sampled.
const SPINS: &str = "\
func @spin(%n: i64) -> i64 {
entry:
    jmp head(0, 0)
head(%i: i64, %acc: i64):
    %done = eq.i64 %i, %n
    br %done, out, body
body:
    %x = mul.i64 %i, 7
    %y = srem.i64 %x, 13
    %acc2 = add.i64 %acc, %y
    %i2 = add.i64 %i, 1
    jmp head(%i2, %acc2)
out:
    ret %acc
}

func @main(%n: i64) -> i64 {
entry:
    %r = call.i64 @spin(%n)
    ret %r
}
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

/// Runs `kiln` and returns its output and pid.
fn run_kiln(cmd: &mut Command) -> (Output, u32) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts");
    let pid = child.id();
    (child.wait_with_output().expect("kiln runs"), pid)
}

#[test]
fn perf_map_lists_every_compiled_function() {
    let dir = scratch("perfmap");
    let file = write(&dir, "spin.kir", SPINS);
    let (out, pid) = run_kiln(
        kiln()
            .arg("run")
            .arg("--perf-map")
            .arg(&file)
            .args(["--", "10"]),
    );
    assert!(out.status.success(), "{out:?}");
    let map = PathBuf::from(format!("/tmp/perf-{pid}.map"));
    let text = std::fs::read_to_string(&map).expect("kiln --perf-map writes /tmp/perf-PID.map");
    let _ = std::fs::remove_file(&map);
    let mut names = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let start = u64::from_str_radix(parts.next().unwrap(), 16).expect("hex start");
        let size = u64::from_str_radix(parts.next().unwrap(), 16).expect("hex size");
        assert!(start != 0 && size != 0, "{line}");
        names.push(parts.next().expect("name").to_string());
    }
    names.sort();
    assert_eq!(names, ["main", "spin"]);
    // Without the option no map is written.
    let (out, pid) = run_kiln(kiln().arg("run").arg(&file).args(["--", "10"]));
    assert!(out.status.success());
    assert!(!Path::new(&format!("/tmp/perf-{pid}.map")).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One jitdump record: its id, the function name (code loads), the code
/// address, the code size (code loads) and the `(address, line)` entries
/// (debug info).
type Record = (u32, String, u64, u64, Vec<(u64, u32)>);

/// Reads a jitdump file: the header's ELF machine, and its records.
fn read_jitdump(bytes: &[u8]) -> (u32, Vec<Record>) {
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(0), 0x4A69_5444, "magic");
    assert_eq!(u32_at(4), 1, "version");
    let mut at = u32_at(8) as usize;
    let mut records = Vec::new();
    while at < bytes.len() {
        let (id, size) = (u32_at(at), u32_at(at + 4) as usize);
        let body = at + 16;
        match id {
            0 => {
                let code_size = u64_at(body + 24);
                let name_at = body + 40;
                let end = bytes[name_at..].iter().position(|&c| c == 0).unwrap();
                let name = String::from_utf8(bytes[name_at..name_at + end].to_vec()).unwrap();
                assert_eq!(size, 16 + 40 + end + 1 + code_size as usize);
                records.push((id, name, u64_at(body + 16), code_size, Vec::new()));
            }
            2 => {
                let n = u64_at(body + 8) as usize;
                let mut p = body + 16;
                let mut lines = Vec::new();
                for _ in 0..n {
                    lines.push((u64_at(p), u32_at(p + 8)));
                    p += 16;
                    p += bytes[p..].iter().position(|&c| c == 0).unwrap() + 1;
                }
                records.push((id, String::new(), u64_at(body), 0, lines));
            }
            _ => records.push((id, String::new(), 0, 0, Vec::new())),
        }
        at += size;
    }
    (u32_at(12), records)
}

#[test]
fn jitdump_records_code_and_line_tables() {
    let dir = scratch("jitdump");
    let file = write(&dir, "aborts.kir", &ABORTS.replace("call @abort()\n", ""));
    let (out, pid) = run_kiln(kiln().arg("run").arg(&file).env("KILN_JITDUMP", &dir));
    assert!(out.status.success(), "{out:?}");
    let dump = std::fs::read(dir.join(format!("jit-{pid}.dump"))).expect("jitdump written");
    let (machine, records) = read_jitdump(&dump);
    assert_eq!(
        machine,
        if cfg!(target_arch = "x86_64") {
            62
        } else {
            183
        }
    );
    // Per function: its line table, then its code.
    let loads: Vec<&str> = records
        .iter()
        .filter(|r| r.0 == 0)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(loads, ["inner", "outer", "main"]);
    for pair in records.chunks(2) {
        assert_eq!((pair[0].0, pair[1].0), (2, 0));
        let (code_addr, code_size) = (pair[1].2, pair[1].3);
        assert!(code_size > 0);
        assert_eq!(pair[0].2, code_addr);
        // The table starts at the code and is closed by an entry at its
        // end with the last line (perf's ELF writer ends the sequence
        // there; without it the last line would cover nothing).
        let (entries, close) = pair[0].4.split_at(pair[0].4.len() - 1);
        assert_eq!(entries[0].0, code_addr);
        assert_eq!(close[0], (code_addr + code_size, entries.last().unwrap().1));
        assert!(entries.iter().all(|e| e.0 < code_addr + code_size));
        let lines: Vec<u32> = entries.iter().map(|l| l.1).collect();
        // The function's own line first, then its instructions'.
        let want: &[u32] = match pair[1].1.as_str() {
            "inner" => &[3, 5],
            "outer" => &[8, 10, 11],
            _ => &[14, 16, 17],
        };
        assert_eq!(lines, want, "{}", pair[1].1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gdb_backtrace_shows_kir_functions_and_lines() {
    if !have("gdb") {
        eprintln!("skipped: gdb is not installed (.ci/deps.sh installs it)");
        return;
    }
    let dir = scratch("gdb");
    let file = write(&dir, "aborts.kir", ABORTS);
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "run", "-ex", "bt", "--args"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", "--gdb"])
        .arg(&file)
        .output()
        .expect("gdb runs");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("ptrace") && !text.contains("#0") {
        eprintln!("skipped: gdb cannot trace processes here:\n{text}");
        return;
    }
    let path = file.canonicalize().unwrap();
    let path = path.display();
    for (f, line) in [("inner", 5), ("outer", 11), ("main", 17)] {
        let want = format!("{f} () at {path}:{line}");
        assert!(
            text.contains(&want),
            "no `{want}` in gdb's backtrace:\n{text}"
        );
    }
    // The walk goes on through the call trampoline into kiln's Rust code.
    for want in ["kiln_call_trampoline ()", "kiln::engine::Engine::call"] {
        assert!(
            text.contains(want),
            "no `{want}` in gdb's backtrace:\n{text}"
        );
    }
    // Without --gdb the frames have no names.
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "run", "-ex", "bt", "--args"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg("run")
        .arg(&file)
        .output()
        .expect("gdb runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("inner () at"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes the `/tmp/perf-PID.map` of every kiln process that wrote a
/// `jit-PID.dump` into `dir` (perf started them: their pids are known only
/// from those names).
fn remove_perf_maps(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(pid) = name
            .strip_prefix("jit-")
            .and_then(|n| n.strip_suffix(".dump"))
        {
            let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
        }
    }
}

/// `perf record`, then `perf report` (names from the perf map) and
/// `perf inject --jit` (names and `.kir` lines from the jitdump).
#[test]
fn perf_report_names_kiln_functions_and_lines() {
    if !have("perf") {
        eprintln!("skipped: perf is not installed (.ci/deps.sh installs it)");
        return;
    }
    let dir = scratch("perf");
    let file = write(&dir, "spin.kir", SPINS);
    let data = dir.join("perf.data");
    let out = Command::new("perf")
        .args(["record", "-q", "-k", "mono", "-F", "2000", "-o"])
        .arg(&data)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", "--perf-map"])
        .arg(&file)
        .args(["--", "30000000"])
        .env("KILN_JITDUMP", &dir)
        .output()
        .expect("perf runs");
    if !out.status.success() || !data.exists() {
        eprintln!(
            "skipped: perf cannot record here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let report = |input: &Path, sort: &str| {
        let out = Command::new("perf")
            .args(["report", "--stdio", "--sort", sort, "-i"])
            .arg(input)
            .output()
            .expect("perf report runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = report(&data, "sym");
    assert!(
        text.contains("spin"),
        "perf report does not name @spin:\n{text}"
    );
    let jitted = dir.join("perf.jit.data");
    let out = Command::new("perf")
        .args(["inject", "--jit", "-i"])
        .arg(&data)
        .arg("-o")
        .arg(&jitted)
        .output()
        .expect("perf inject runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = report(&jitted, "sym,srcline");
    remove_perf_maps(&dir);
    assert!(
        text.contains("spin.kir:"),
        "no .kir lines after perf inject:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
