//! Host functions: Rust closures that IR calls through `extern func`
//! declarations when it runs in the interpreter.
//!
//! A [`HostFunctions`] set maps symbol names to a signature and a closure.
//! The linker ([`crate::link`]) checks every `extern func` against the
//! registered signature, and the interpreter converts arguments to [`Val`]s
//! of exactly those types before calling, so a closure may rely on them.
//! [`HostFunctions::c_library`] is the set the command line uses: thin
//! wrappers over the real C library, so that output goes through C stdio
//! exactly as compiled code's does.

use crate::error::{Error, Result};
use crate::ir::{Signature, Type};
use crate::value::Val;
use std::collections::HashMap;
use std::sync::Arc;

/// The body of a host function: takes the arguments (already checked
/// against the signature) and returns the result, if the signature has one.
pub type HostFn = Arc<dyn Fn(&[Val]) -> Result<Option<Val>> + Send + Sync>;

/// One registered host function.
#[derive(Clone)]
pub struct HostFunction {
    pub sig: Signature,
    pub func: HostFn,
}

/// The registry embedders fill; looked up by symbol name.
#[derive(Clone, Default)]
pub struct HostFunctions {
    map: HashMap<String, HostFunction>,
}

impl HostFunctions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        sig: Signature,
        func: impl Fn(&[Val]) -> Result<Option<Val>> + Send + Sync + 'static,
    ) {
        self.map.insert(
            name.into(),
            HostFunction {
                sig,
                func: Arc::new(func),
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&HostFunction> {
        self.map.get(name)
    }

    /// Whether no function is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The registered names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The set the `kiln` command line registers: `putchar getchar malloc
    /// calloc free memcpy memset memcmp abort exit`, each calling the C
    /// library so that output interleaves exactly as compiled code's does.
    ///
    /// Signatures, in IR types: `putchar (i32) -> i32`, `getchar () -> i32`,
    /// `malloc (i64) -> i64`, `calloc (i64, i64) -> i64`, `free (i64)`,
    /// `memcpy (i64, i64, i64) -> i64`, `memset (i64, i32, i64) -> i64`,
    /// `memcmp (i64, i64, i64) -> i32`, `abort ()`, `exit (i32)`.
    ///
    /// `exit` calls the C library's `exit`: it flushes C stdio, runs the
    /// process's `atexit` handlers and ends the whole process with that
    /// status; it never returns to the interpreter. `abort` likewise ends the
    /// process with `SIGABRT`.
    ///
    /// The memory functions act on raw addresses the program passes; as in
    /// C, passing memory the program does not own is undefined behaviour of
    /// the program (SPEC section 5).
    pub fn c_library() -> Self {
        use Type::{I32, I64};
        let mut h = HostFunctions::new();
        h.register("putchar", sig(&[I32], Some(I32)), |a| {
            let c = int(a, 0)? as libc::c_int;
            // SAFETY: putchar takes any int and touches only C stdio state.
            let r = unsafe { libc::putchar(c) };
            Ok(Some(Val::I32(r)))
        });
        h.register("getchar", sig(&[], Some(I32)), |_| {
            // SAFETY: getchar touches only C stdio state.
            let r = unsafe { libc::getchar() };
            Ok(Some(Val::I32(r)))
        });
        h.register("malloc", sig(&[I64], Some(I64)), |a| {
            let n = int(a, 0)? as u64 as libc::size_t;
            // SAFETY: malloc accepts any size and returns null on failure.
            let p = unsafe { libc::malloc(n) };
            Ok(Some(Val::I64(p as i64)))
        });
        h.register("calloc", sig(&[I64, I64], Some(I64)), |a| {
            let (n, size) = (int(a, 0)? as u64 as usize, int(a, 1)? as u64 as usize);
            // SAFETY: calloc accepts any sizes, checks their product for
            // overflow and returns null on failure.
            let p = unsafe { libc::calloc(n, size) };
            Ok(Some(Val::I64(p as i64)))
        });
        h.register("free", sig(&[I64], None), |a| {
            let p = int(a, 0)? as usize as *mut libc::c_void;
            // SAFETY: the program passes a pointer it got from malloc (or
            // null); anything else is undefined behaviour of the program, as
            // in C (SPEC section 5).
            unsafe { libc::free(p) };
            Ok(None)
        });
        h.register("memcpy", sig(&[I64, I64, I64], Some(I64)), |a| {
            let (d, s, n) = (int(a, 0)?, int(a, 1)?, int(a, 2)? as u64 as usize);
            // SAFETY: the program owns both ranges, which do not overlap;
            // otherwise the behaviour is undefined, as in C (SPEC section 5).
            let r = unsafe {
                libc::memcpy(
                    d as usize as *mut libc::c_void,
                    s as usize as *const libc::c_void,
                    n,
                )
            };
            Ok(Some(Val::I64(r as i64)))
        });
        h.register("memset", sig(&[I64, I32, I64], Some(I64)), |a| {
            let (d, c, n) = (int(a, 0)?, int(a, 1)?, int(a, 2)? as u64 as usize);
            // SAFETY: the program owns the range; otherwise the behaviour is
            // undefined, as in C (SPEC section 5).
            let r = unsafe { libc::memset(d as usize as *mut libc::c_void, c as libc::c_int, n) };
            Ok(Some(Val::I64(r as i64)))
        });
        h.register("memcmp", sig(&[I64, I64, I64], Some(I32)), |a| {
            let (x, y, n) = (int(a, 0)?, int(a, 1)?, int(a, 2)? as u64 as usize);
            // SAFETY: the program owns both ranges; otherwise the behaviour
            // is undefined, as in C (SPEC section 5).
            let r = unsafe {
                libc::memcmp(
                    x as usize as *const libc::c_void,
                    y as usize as *const libc::c_void,
                    n,
                )
            };
            Ok(Some(Val::I32(r)))
        });
        h.register("abort", sig(&[], None), |_| {
            // SAFETY: abort ends the process; no Rust state is observed
            // afterwards.
            unsafe { libc::abort() }
        });
        h.register("exit", sig(&[I32], None), |a| {
            let code = int(a, 0)? as libc::c_int;
            // SAFETY: exit flushes C stdio and ends the process; no Rust
            // state is observed afterwards.
            unsafe { libc::exit(code) }
        });
        h
    }
}

fn sig(params: &[Type], ret: Option<Type>) -> Signature {
    Signature::new(params.to_vec(), ret)
}

/// Argument `i` as an integer; the interpreter checks arguments against the
/// signature, so a mismatch means a closure was called directly with wrong
/// arguments.
fn int(args: &[Val], i: usize) -> Result<i64> {
    match args.get(i) {
        Some(Val::I32(v)) => Ok(*v as i64),
        Some(Val::I64(v)) => Ok(*v),
        other => Err(Error::Argument(format!(
            "host function argument {i} must be an integer, got {other:?}"
        ))),
    }
}
