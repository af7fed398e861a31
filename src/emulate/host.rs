//! Host calls from emulated code: the built-in C-library set over emulated
//! memory, custom value-only host functions, and the trap handler.
//!
//! [`on_stub`] runs from the code hook over the stub page, before the `ret`
//! in the slot executes. It either writes the result to x0/d0 and lets the
//! `ret` return to the caller, or records a [`Stop`] and points x30 at the
//! stop slot so the `ret` ends the run.
//!
//! Invariants: nothing here trusts the program's arguments. Every emulated
//! memory access is checked by the emulator and a failure becomes an
//! `Err` naming the function and address; lengths are processed in bounded
//! chunks, so a huge `memset` costs time (bounded by the caller's limits
//! only between host calls) but never host memory.

use super::heap::BadFree;
use super::{arg_locations, d_reg, layout, x_reg, ArgLoc, Stop, Uc};
use crate::error::{Error, Result, TrapCode};
use crate::host::HostFunction;
use crate::ir::{Signature, Type};
use crate::value::Val;
use unicorn_engine::unicorn_const::Prot;
use unicorn_engine::RegisterARM64;

/// Bytes moved per step by `memcpy`, `memset` and `memcmp`.
const CHUNK: usize = 64 * 1024;

/// The C-library functions every machine has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Builtin {
    Putchar,
    Getchar,
    Malloc,
    Calloc,
    Free,
    Memcpy,
    Memset,
    Memcmp,
    Abort,
    Exit,
}

/// What a host slot runs.
#[derive(Clone)]
pub(super) enum HostEntry {
    Builtin(Builtin),
    Custom(HostFunction),
}

impl HostEntry {
    pub(super) fn signature(&self) -> Signature {
        match self {
            HostEntry::Builtin(b) => b.signature(),
            HostEntry::Custom(f) => f.sig.clone(),
        }
    }
}

impl Builtin {
    pub(super) const ALL: [Builtin; 10] = [
        Builtin::Putchar,
        Builtin::Getchar,
        Builtin::Malloc,
        Builtin::Calloc,
        Builtin::Free,
        Builtin::Memcpy,
        Builtin::Memset,
        Builtin::Memcmp,
        Builtin::Abort,
        Builtin::Exit,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Builtin::Putchar => "putchar",
            Builtin::Getchar => "getchar",
            Builtin::Malloc => "malloc",
            Builtin::Calloc => "calloc",
            Builtin::Free => "free",
            Builtin::Memcpy => "memcpy",
            Builtin::Memset => "memset",
            Builtin::Memcmp => "memcmp",
            Builtin::Abort => "abort",
            Builtin::Exit => "exit",
        }
    }

    /// The IR signatures, the same as the interpreter's host set.
    pub(super) fn signature(self) -> Signature {
        use Type::{I32, I64};
        let (params, ret): (&[Type], _) = match self {
            Builtin::Putchar => (&[I32], Some(I32)),
            Builtin::Getchar => (&[], Some(I32)),
            Builtin::Malloc => (&[I64], Some(I64)),
            Builtin::Calloc => (&[I64, I64], Some(I64)),
            Builtin::Free => (&[I64], None),
            Builtin::Memcpy => (&[I64, I64, I64], Some(I64)),
            Builtin::Memset => (&[I64, I32, I64], Some(I64)),
            Builtin::Memcmp => (&[I64, I64, I64], Some(I32)),
            Builtin::Abort => (&[], None),
            Builtin::Exit => (&[I32], None),
        };
        Signature::new(params.to_vec(), ret)
    }
}

/// What a serviced host call does next.
enum Next {
    Return(Option<Val>),
    Stop(Stop),
}

/// Services a call that reached stub `address` (the code hook).
pub(super) fn on_stub(uc: &mut Uc<'_>, address: u64) {
    let next = match service(uc, address) {
        Ok(next) => next,
        Err(e) => Next::Stop(Stop::Error(e)),
    };
    let written = match next {
        Next::Return(None) => Ok(()),
        Next::Return(Some(v @ (Val::I32(_) | Val::I64(_)))) => uc.reg_write(x_reg(0), v.to_bits()),
        Next::Return(Some(v)) => uc.reg_write(d_reg(0), v.to_bits()),
        Next::Stop(stop) => {
            uc.get_data_mut().stop = Some(stop);
            uc.reg_write(RegisterARM64::X30 as i32, layout::RETURN_STOP)
        }
    };
    if written.is_err() {
        // A register write on a valid id does not fail; if it ever did,
        // stopping the emulator is the only safe move left. The caller
        // then sees a stop at the wrong PC and reports it.
        let _ = uc.emu_stop();
    }
}

fn service(uc: &mut Uc<'_>, address: u64) -> Result<Next> {
    if address == layout::LAZY_RESOLVER {
        // resolver(ctx, key), called from a lazy chunk's wrapper.
        let key = uc.reg_read(x_reg(1)).map_err(reg_error)? as u32;
        let resume = uc.reg_read(RegisterARM64::X30 as i32).map_err(reg_error)?;
        return Ok(Next::Stop(Stop::Lazy { key, resume }));
    }
    if address == layout::TRAP_HANDLER {
        let code = uc.reg_read(x_reg(0)).map_err(reg_error)? as u32;
        return Ok(Next::Stop(match TrapCode::from_code(code) {
            Some(t) => Stop::Trap(t, frame_chain(uc)?),
            None => Stop::Error(Error::Runtime(format!(
                "trap handler called with unknown code {code}"
            ))),
        }));
    }
    let k = address
        .checked_sub(layout::FIRST_HOST)
        .filter(|off| off % 4 == 0)
        .map(|off| (off / 4) as usize);
    let Some((name, entry)) = k.and_then(|k| uc.get_data().hosts.get(k)).cloned() else {
        return Err(Error::Runtime(format!(
            "call to host stub {address:#x}, which no host function is bound to"
        )));
    };
    let sig = entry.signature();
    let args = read_args(uc, &sig)?;
    match entry {
        HostEntry::Builtin(b) => builtin(uc, b, &args),
        HostEntry::Custom(f) => {
            let r = (f.func)(&args)?;
            match (r, sig.ret) {
                (None, None) => Ok(Next::Return(None)),
                (Some(v), Some(ty)) if v.ty() == ty => Ok(Next::Return(Some(v))),
                (r, _) => Err(Error::Runtime(format!(
                    "host function {name} returned {r:?}, not what its signature {sig} says"
                ))),
            }
        }
    }
}

/// The arguments of a call with signature `sig`, as AAPCS64 placed them.
fn read_args(uc: &Uc<'_>, sig: &Signature) -> Result<Vec<Val>> {
    let locs = arg_locations(sig.params.iter().copied());
    let sp = uc.reg_read(RegisterARM64::SP as i32).map_err(reg_error)?;
    sig.params
        .iter()
        .zip(&locs.locs)
        .map(|(&ty, loc)| {
            let bits = match *loc {
                ArgLoc::X(n) => uc.reg_read(x_reg(n)).map_err(reg_error)?,
                ArgLoc::D(n) => uc.reg_read(d_reg(n)).map_err(reg_error)?,
                ArgLoc::Stack(off) => {
                    let mut b = [0u8; 8];
                    let at = sp.wrapping_add(off);
                    uc.mem_read(at, &mut b).map_err(|_| {
                        Error::Runtime(format!(
                            "host call: stack argument at {at:#x} is not readable"
                        ))
                    })?;
                    u64::from_le_bytes(b)
                }
            };
            Ok(Val::from_bits(ty, bits))
        })
        .collect()
}

/// The trap site's return address (`x30`, set by the site's `bl`) and the
/// return address of each frame record on the `x29` chain, innermost first
/// (see [`crate::debug::backtrace`]). The chain ends at the null frame
/// pointer [`super::EmulatedAarch64::call`] starts with, at a frame pointer
/// that does not increase, or at memory that cannot be read.
fn frame_chain(uc: &Uc<'_>) -> Result<Vec<u64>> {
    let mut pcs = vec![uc.reg_read(RegisterARM64::X30 as i32).map_err(reg_error)?];
    let mut fp = uc.reg_read(RegisterARM64::X29 as i32).map_err(reg_error)?;
    let mut prev = 0;
    while pcs.len() < crate::error::MAX_BACKTRACE && fp > prev && fp.is_multiple_of(8) {
        let mut rec = [0u8; 16];
        if uc.mem_read(fp, &mut rec).is_err() {
            break;
        }
        let [next, ra] =
            [0, 8].map(|i| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap_or_default()));
        pcs.push(ra);
        prev = fp;
        fp = next;
    }
    Ok(pcs)
}

fn reg_error(e: unicorn_engine::unicorn_const::uc_error) -> Error {
    Error::Runtime(format!("emulator: register access failed: {e:?}"))
}

/// An integer argument as an unsigned 64-bit value (addresses, sizes).
fn uarg(args: &[Val], i: usize) -> u64 {
    args.get(i).map_or(0, |v| v.to_bits())
}

fn builtin(uc: &mut Uc<'_>, b: Builtin, args: &[Val]) -> Result<Next> {
    let ret = |v: Val| Ok(Next::Return(Some(v)));
    match b {
        Builtin::Putchar => {
            let c = uarg(args, 0) as u32 as i32;
            // SAFETY: putchar takes any int and touches only C stdio state.
            ret(Val::I32(unsafe { libc::putchar(c) }))
        }
        Builtin::Getchar => {
            // SAFETY: getchar touches only C stdio state.
            ret(Val::I32(unsafe { libc::getchar() }))
        }
        Builtin::Malloc => {
            let p = uc.get_data_mut().heap.alloc(uarg(args, 0)).unwrap_or(0);
            ret(Val::I64(p as i64))
        }
        Builtin::Calloc => {
            let p = uarg(args, 0)
                .checked_mul(uarg(args, 1))
                .and_then(|n| Some((uc.get_data_mut().heap.alloc(n)?, n)));
            match p {
                Some((p, n)) => {
                    // Freed blocks hold old bytes: calloc must clear them.
                    fill(uc, "calloc", p, 0, n)?;
                    ret(Val::I64(p as i64))
                }
                None => ret(Val::I64(0)),
            }
        }
        Builtin::Free => {
            let p = uarg(args, 0);
            uc.get_data_mut().heap.free(p).map_err(|BadFree(p)| {
                Error::Runtime(format!(
                    "free({p:#x}): not a pointer returned by malloc or calloc, or freed twice"
                ))
            })?;
            Ok(Next::Return(None))
        }
        Builtin::Memcpy => {
            let (dst, src, n) = (uarg(args, 0), uarg(args, 1), uarg(args, 2));
            let mut buf = vec![0u8; CHUNK];
            let mut done = 0u64;
            while done < n {
                let step = (n - done).min(CHUNK as u64) as usize;
                let chunk = &mut buf[..step];
                read_mem(uc, "memcpy", src.wrapping_add(done), chunk)?;
                write_mem(uc, "memcpy", dst.wrapping_add(done), chunk)?;
                done += step as u64;
            }
            ret(Val::I64(dst as i64))
        }
        Builtin::Memset => {
            let (dst, byte, n) = (uarg(args, 0), uarg(args, 1) as u8, uarg(args, 2));
            fill(uc, "memset", dst, byte, n)?;
            ret(Val::I64(dst as i64))
        }
        Builtin::Memcmp => {
            let (a, b, n) = (uarg(args, 0), uarg(args, 1), uarg(args, 2));
            let (mut x, mut y) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
            let mut done = 0u64;
            while done < n {
                let step = (n - done).min(CHUNK as u64) as usize;
                read_mem(uc, "memcmp", a.wrapping_add(done), &mut x[..step])?;
                read_mem(uc, "memcmp", b.wrapping_add(done), &mut y[..step])?;
                // SAFETY: both buffers hold at least `step` bytes. The C
                // library's own memcmp decides the value returned, so it is
                // exactly what native code would get.
                let r = unsafe { libc::memcmp(x.as_ptr().cast(), y.as_ptr().cast(), step) };
                if r != 0 {
                    return ret(Val::I32(r));
                }
                done += step as u64;
            }
            ret(Val::I32(0))
        }
        Builtin::Abort => Ok(Next::Stop(Stop::Abort)),
        Builtin::Exit => Ok(Next::Stop(Stop::Exit(uarg(args, 0) as u32 as i32))),
    }
}

fn fill(uc: &mut Uc<'_>, func: &str, dst: u64, byte: u8, n: u64) -> Result<()> {
    let buf = vec![byte; (n.min(CHUNK as u64)) as usize];
    let mut done = 0u64;
    while done < n {
        let step = (n - done).min(CHUNK as u64) as usize;
        write_mem(uc, func, dst.wrapping_add(done), &buf[..step])?;
        done += step as u64;
    }
    Ok(())
}

fn read_mem(uc: &Uc<'_>, func: &str, addr: u64, buf: &mut [u8]) -> Result<()> {
    uc.mem_read(addr, buf).map_err(|_| {
        Error::Runtime(format!(
            "{func}: cannot read {:#x} bytes at {addr:#x} (unmapped memory)",
            buf.len()
        ))
    })
}

/// Writes as the program would: Unicorn's own `mem_write` ignores page
/// protection (it is how the loader fills code), so the range is first
/// checked to be mapped writable, as a native store would require.
fn write_mem(uc: &mut Uc<'_>, func: &str, addr: u64, bytes: &[u8]) -> Result<()> {
    let fail = |why: &str| {
        Error::Runtime(format!(
            "{func}: cannot write {:#x} bytes at {addr:#x} ({why} memory)",
            bytes.len()
        ))
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let last = addr
        .checked_add(bytes.len() as u64 - 1)
        .ok_or_else(|| fail("unmapped"))?;
    let regions = uc.mem_regions().map_err(|_| fail("unknown"))?;
    // Walk the (sorted, inclusive-ended) regions covering addr..=last.
    let mut at = addr;
    loop {
        let r = regions
            .iter()
            .find(|r| r.begin <= at && at <= r.end)
            .ok_or_else(|| fail("unmapped"))?;
        if r.perms & Prot::WRITE.0 == 0 {
            return Err(fail("read-only"));
        }
        if r.end >= last {
            break;
        }
        at = r.end + 1;
    }
    uc.mem_write(addr, bytes).map_err(|_| fail("unmapped"))
}
