//! Linux perf support: the JIT map `/tmp/perf-PID.map` and the jitdump
//! file `jit-PID.dump`.
//!
//! - **Perf map**: one text line `START SIZE NAME` per compiled function
//!   (hex `START` and `SIZE`, `NAME` the IR name without `@`), which
//!   `perf report` reads to name samples in JIT code.
//! - **Jitdump** (perf's `tools/perf/Documentation/jitdump-specification.txt`):
//!   a binary file with a header, then per function a `JIT_CODE_DEBUG_INFO`
//!   record (the line table: address, `.kir` line, file; closed by an
//!   entry at the function's end) followed by a
//!   `JIT_CODE_LOAD` record (name, address and the code bytes). The file is
//!   mapped executable once so that `perf record` sees it in the process's
//!   memory map; `perf inject --jit` then turns each function into a small
//!   ELF file with symbols and a line table, and `perf report` attributes
//!   samples to `.kir` lines. Timestamps are `CLOCK_MONOTONIC`: record with
//!   `perf record -k mono`.
//!
//! Both files belong to the process (perf finds them by PID), so every
//! engine of the process writes to the same one, through a process-wide
//! writer opened on first use. Removed code is not erased from either file
//! (perf has no record for it); a later function at the same address
//! supersedes it in `perf report`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// One function to announce.
pub struct CodeLoad<'a> {
    pub name: &'a str,
    pub address: u64,
    /// The code bytes as they are at `address`.
    pub code: &'a [u8],
    /// `(address, line)` per line-table entry, in address order.
    pub lines: &'a [(u64, u32)],
    /// The source file the lines refer to.
    pub file: &'a str,
}

/// The process's perf map, opened (truncated) on first use.
static PERF_MAP: Mutex<Option<File>> = Mutex::new(None);

/// The path of this process's perf map.
pub fn perf_map_path() -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// Appends one line per function to the process's perf map.
pub fn perf_map_add(funcs: &[CodeLoad<'_>]) -> Result<()> {
    let mut text = String::new();
    for f in funcs {
        text.push_str(&format!("{:x} {:x} {}\n", f.address, f.code.len(), f.name));
    }
    let mut map = PERF_MAP
        .lock()
        .map_err(|_| Error::Runtime("perf map writer poisoned".into()))?;
    if map.is_none() {
        let path = perf_map_path();
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        *map = Some(file);
    }
    if let Some(file) = map.as_mut() {
        // One write per module, so lines of concurrent engines never mix.
        file.write_all(text.as_bytes())
            .map_err(|e| io_err(&perf_map_path(), e))?;
    }
    Ok(())
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Runtime(format!("cannot write {}: {e}", path.display()))
}

/// `JiTD` in the file's byte order.
const JITDUMP_MAGIC: u32 = 0x4A69_5444;
const JITDUMP_VERSION: u32 = 1;
const JIT_CODE_LOAD: u32 = 0;
const JIT_CODE_DEBUG_INFO: u32 = 2;

/// The ELF machine of the host (`e_machine`), for the jitdump header.
pub fn host_elf_machine() -> u32 {
    match std::env::consts::ARCH {
        "x86_64" => super::elf::EM_X86_64 as u32,
        "aarch64" => super::elf::EM_AARCH64 as u32,
        _ => 0,
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (what `perf record -k mono` uses).
fn timestamp() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn thread_id() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// An open jitdump file.
struct JitDump {
    file: File,
    path: PathBuf,
    /// The executable mapping perf looks for (never unmapped while the
    /// file is open).
    _marker: *mut libc::c_void,
    next_index: u64,
}

// SAFETY: the marker mapping is never accessed, only kept; the file is
// behind the mutex.
unsafe impl Send for JitDump {}

static JITDUMP: Mutex<Option<JitDump>> = Mutex::new(None);

/// The jitdump file of this process in `dir`.
pub fn jitdump_path(dir: &Path) -> PathBuf {
    dir.join(format!("jit-{}.dump", std::process::id()))
}

fn open_jitdump(dir: &Path) -> Result<JitDump> {
    use std::os::fd::AsRawFd;
    let path = jitdump_path(dir);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    let mut h = Vec::with_capacity(40);
    for w in [
        JITDUMP_MAGIC,
        JITDUMP_VERSION,
        40,
        host_elf_machine(),
        0,
        std::process::id(),
    ] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    h.extend_from_slice(&timestamp().to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    file.write_all(&h).map_err(|e| io_err(&path, e))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    // SAFETY: a fresh private read+exec mapping of our own file; it is
    // never read or written through.
    let marker = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if marker == libc::MAP_FAILED {
        return Err(Error::Runtime(format!(
            "cannot map {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(JitDump {
        file,
        path,
        _marker: marker,
        next_index: 0,
    })
}

/// Appends a debug-info and a code-load record per function to the
/// process's jitdump file in `dir` (created on first use; later calls
/// with another `dir` keep writing the first one).
pub fn jitdump_add(dir: &Path, funcs: &[CodeLoad<'_>]) -> Result<()> {
    let mut guard = JITDUMP
        .lock()
        .map_err(|_| Error::Runtime("jitdump writer poisoned".into()))?;
    if guard.is_none() {
        *guard = Some(open_jitdump(dir)?);
    }
    let Some(dump) = guard.as_mut() else {
        return Ok(());
    };
    let (pid, tid) = (std::process::id(), thread_id());
    let mut out = Vec::new();
    for f in funcs {
        let ts = timestamp();
        // JIT_CODE_DEBUG_INFO: code_addr, nr_entry, entries. perf's ELF
        // writer (`perf inject --jit`) ends the DWARF line sequence at the
        // last entry's address, so that entry would cover nothing: a
        // closing entry at the function's end (same line) keeps the last
        // real entry's range up to the end.
        let end = f
            .lines
            .last()
            .map(|&(_, line)| (f.address.wrapping_add(f.code.len() as u64), line));
        let mut body = Vec::new();
        body.extend_from_slice(&f.address.to_le_bytes());
        let entries = f.lines.iter().copied().chain(end);
        body.extend_from_slice(&(entries.clone().count() as u64).to_le_bytes());
        for (addr, line) in entries {
            body.extend_from_slice(&addr.to_le_bytes());
            body.extend_from_slice(&line.to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
            body.extend_from_slice(f.file.as_bytes());
            body.push(0);
        }
        record(&mut out, JIT_CODE_DEBUG_INFO, ts, &body);
        // JIT_CODE_LOAD: pid, tid, vma, code_addr, code_size, code_index,
        // name, code.
        let mut body = Vec::with_capacity(48 + f.name.len() + f.code.len());
        body.extend_from_slice(&pid.to_le_bytes());
        body.extend_from_slice(&tid.to_le_bytes());
        body.extend_from_slice(&f.address.to_le_bytes());
        body.extend_from_slice(&f.address.to_le_bytes());
        body.extend_from_slice(&(f.code.len() as u64).to_le_bytes());
        body.extend_from_slice(&dump.next_index.to_le_bytes());
        body.extend_from_slice(f.name.as_bytes());
        body.push(0);
        body.extend_from_slice(f.code);
        record(&mut out, JIT_CODE_LOAD, ts, &body);
        dump.next_index += 1;
    }
    dump.file.write_all(&out).map_err(|e| io_err(&dump.path, e))
}

/// Appends one record: id, total size, timestamp, body.
fn record(out: &mut Vec<u8>, id: u32, ts: u64, body: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(16 + body.len() as u32).to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(body);
}
