//! Build script: how the `kiln` binary is linked on Linux.
//!
//! - Position-dependent. A position-independent executable has its own
//!   data relocated at every start: about 4,100 pointers in
//!   `.data.rel.ro` (vtables, tables of strings), which the dynamic
//!   loader writes, so every page of that section is copied on first
//!   write. In this machine's virtual machines a fresh page costs about
//!   2.5 µs: linked at a fixed address, `kiln check` of an empty file
//!   starts with 16 fewer page faults and about 60 µs sooner (a tenth of
//!   a short command).
//! - With libgcc's unwinder linked in (`libgcc_eh.a`) rather than
//!   `libgcc_s.so.1`, the shared library Rust's standard library asks
//!   for: loading it (a file to open and map, its relocations, about ten
//!   page faults) made every command start about 55 µs later. The C
//!   compiler's `libgcc_eh.a` is copied as `libgcc_s.a` into a directory
//!   the linker searches first, so that `-lgcc_s` finds it. Compiled
//!   code's frames are still registered with the shared unwinder, which
//!   `backtrace(3)` loads (see `kiln::debug::unwind`).
//!
//! Only the binary is linked so; the library, its tests and the
//! benchmarks are unchanged. The shared libraries and the stack, heap and
//! JIT memory still get random addresses.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bin=kiln=-no-pie");
    }
    if os == "linux" && env == "gnu" {
        if let Some(dir) = static_unwinder_dir() {
            println!("cargo:rustc-link-arg-bin=kiln=-L{}", dir.display());
        }
    }
}

/// A directory holding the C compiler's `libgcc_eh.a` as `libgcc_s.a`, or
/// `None` if the compiler has no such library (the binary then links the
/// shared one, as before).
fn static_unwinder_dir() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Without the library the compiler prints the bare name back.
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return None;
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static-unwinder");
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::copy(&path, dir.join("libgcc_s.a")).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    Some(dir)
}
