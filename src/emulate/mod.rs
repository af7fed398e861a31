//! The emulated AArch64 executor: runs AArch64 machine code on any host
//! inside the Unicorn emulator (feature `emulate`).
//!
//! The emulated machine has its own address space, separate from the host
//! process. The loader copies relocated sections into it with
//! [`EmulatedAarch64::write`] (relocations are applied to a local copy with
//! P set to the emulated address, see [`crate::reloc::Reloc::apply_to`]) and
//! calls functions with [`EmulatedAarch64::call`]. The API is deliberately
//! narrow — map / write / read memory, resolve a host symbol to an address,
//! call — so the runtime's executor abstraction can wrap it.
//!
//! ## Address space ([`layout`])
//!
//! ```text
//! 0x0fff_0000  host stub page (R+X): slot 0 = return stop, slot 1 = trap
//!              handler, slots 2.. = host functions, the last slot = the
//!              lazy resolver; each slot is one `ret`
//! 0x1000_0000  module arena (127 MiB): `map_new` places sections here, so
//!              a `BL` anywhere in it reaches every host stub directly
//! 0x2000_0000  heap of the emulated `malloc`
//! 0x8000_0000  top of the stack (it grows down; below it nothing is mapped,
//!              so a stack overflow is an unmapped write, not corruption)
//! ```
//!
//! ## Host calls
//!
//! Every host function (and the trap handler) has a 4-byte slot on the stub
//! page holding a `ret`. A code hook over that page runs *before* the `ret`:
//! it reads the arguments from the registers and the stack (AAPCS64), runs
//! the host implementation in Rust, writes x0/d0, and lets the `ret` go back
//! to x30. To end a run (`exit`, `abort`, a trap, a host error) the hook
//! instead points x30 at the stop slot, where emulation ends; nothing of
//! the program runs after that. Nothing depends on writing PC from inside a
//! hook.
//!
//! ## Lazy compiling
//!
//! A call to the lazy-resolver slot ([`layout::LAZY_RESOLVER`], what the
//! chunks of [`crate::lazy`] call with the function's key in x1) ends the
//! run the same way, with [`Outcome::Lazy`]: the key and the return
//! address in the wrapper. Everything else stays as it was (registers,
//! stack), so once the caller has compiled the function it continues
//! with [`EmulatedAarch64::resume`] from that address, the body's address
//! in x0. No other call may run on the machine in between.
//!
//! Invariants:
//! - Nothing here panics or aborts the process on anything the emulated
//!   program does: bad memory accesses, invalid instructions, runaway loops
//!   (the configured instruction-count and time limits) and bad host-call
//!   arguments all end [`EmulatedAarch64::call`] with an `Err`, and the
//!   machine stays usable for the next call.
//! - Host functions operate on *emulated* memory: `malloc` returns emulated
//!   addresses from the emulated heap, `memcpy` & co. read and write through
//!   the emulator. Only `putchar`/`getchar` reach the real C library, so
//!   output interleaves with the host's own C stdio exactly as native code's.

mod heap;
mod host;

use crate::error::{Error, Result, TrapCode};
use crate::host::HostFunction;
use crate::ir::{Signature, Type};
use crate::memory::SectionKind;
use crate::value::Val;
use host::{Builtin, HostEntry};
use std::time::Duration;
use unicorn_engine::unicorn_const::{uc_error, Arch, HookType, MemType, Mode, Prot};
use unicorn_engine::{Arm64CpuModel, RegisterARM64, Unicorn};

pub use heap::ALIGN as MALLOC_ALIGN;

/// Fixed addresses of the emulated address space (see the module docs).
pub mod layout {
    /// The host stub page: one 4-byte slot per host function.
    pub const HOST_STUBS: u64 = 0x0fff_0000;
    /// Bytes of the stub page (room for 16,382 host functions).
    pub const HOST_STUBS_SIZE: u64 = 0x1_0000;
    /// Where emulation stops: x30 on entry to a called function.
    pub const RETURN_STOP: u64 = HOST_STUBS;
    /// The trap handler: called with the [`crate::TrapCode::code`] in w0.
    pub const TRAP_HANDLER: u64 = HOST_STUBS + 4;
    /// The first host-function slot.
    pub const FIRST_HOST: u64 = HOST_STUBS + 8;
    /// The lazy resolver (the last slot): see "Lazy compiling" in the
    /// module docs.
    pub const LAZY_RESOLVER: u64 = HOST_STUBS + HOST_STUBS_SIZE - 4;
    /// Start of the module arena where [`super::EmulatedAarch64::map_new`]
    /// places sections.
    pub const ARENA_BASE: u64 = 0x1000_0000;
    /// Bytes of the module arena: everything in it is within `BL` range
    /// (±128 MiB) of every other place in it and of the stub page.
    pub const ARENA_SIZE: u64 = 0x07f0_0000;
    /// Start of the emulated heap.
    pub const HEAP_BASE: u64 = 0x2000_0000;
    /// One past the highest stack byte; the stack lies below it.
    pub const STACK_TOP: u64 = 0x8000_0000;
    /// The largest heap plus stack that fits between them.
    pub const HEAP_AND_STACK_MAX: u64 = STACK_TOP - HEAP_BASE;
}

/// The name under which compiled code imports the trap handler (the same
/// string as the backends' `isa::TRAP_HANDLER`); [`EmulatedAarch64::host_address`]
/// resolves it to [`layout::TRAP_HANDLER`].
pub const TRAP_SYMBOL: &str = "__kiln_trap";

/// The AArch64 encoding of `ret` (x30).
const RET: u32 = 0xd65f_03c0;
/// `udf #0`: the stop slot is never executed (emulation ends on reaching
/// it), and if it somehow were, it is an invalid instruction, not a loop.
const UDF: u32 = 0;

/// Sizes and limits of an [`EmulatedAarch64`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// At most this many instructions per [`EmulatedAarch64::call`];
    /// `None` for no count limit. Counting makes emulation slower.
    pub instruction_limit: Option<u64>,
    /// At most this much wall-clock time per call; `None` for no limit.
    pub time_limit: Option<Duration>,
    /// Bytes of stack (rounded up to 64 KiB).
    pub stack_size: u64,
    /// Bytes of heap for the emulated `malloc` (rounded up to 64 KiB).
    pub heap_size: u64,
}

impl Default for EmulatorConfig {
    /// No instruction count limit, 60 s of time, 8 MiB of stack, 64 MiB of
    /// heap.
    fn default() -> Self {
        EmulatorConfig {
            instruction_limit: None,
            time_limit: Some(Duration::from_secs(60)),
            stack_size: 8 << 20,
            heap_size: 64 << 20,
        }
    }
}

/// How a call ended, other than by an error or trap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The function returned; the value is read as the requested type.
    Returned(Option<Val>),
    /// The program called `exit(code)`. The caller decides what that means
    /// (the command line flushes stdio and exits with `code`).
    Exit(i32),
    /// The program called `abort()`.
    Abort,
    /// The code called the lazy resolver for the function of `key`; resume
    /// at `resume` ([`EmulatedAarch64::resume`]).
    Lazy { key: u32, resume: u64 },
}

/// Why a run stopped early, recorded by a hook.
#[derive(Debug)]
enum Stop {
    Exit(i32),
    Abort,
    /// A trap, with the return addresses of the frame chain.
    Trap(TrapCode, Vec<u64>),
    Error(Error),
    Lazy {
        key: u32,
        resume: u64,
    },
}

/// A failed memory access, recorded by the invalid-memory hook so the error
/// can name it.
#[derive(Clone, Copy, Debug)]
struct Fault {
    access: MemType,
    address: u64,
    size: usize,
}

/// What the hooks share with the machine: Unicorn's per-instance data.
struct State {
    /// Host functions by slot, slot `k` at `FIRST_HOST + 4k`.
    hosts: Vec<(String, HostEntry)>,
    heap: heap::Heap,
    stop: Option<Stop>,
    fault: Option<Fault>,
}

type Uc<'a> = Unicorn<'a, State>;

/// An emulated AArch64 machine (Linux AAPCS64 conventions) with its memory,
/// stack, heap and host functions.
pub struct EmulatedAarch64 {
    uc: Uc<'static>,
    config: EmulatorConfig,
    page_size: u64,
    /// Executable ranges, so writes over code drop stale translations.
    code: Vec<(u64, u64)>,
    /// Next free address of the module arena.
    arena_next: u64,
}

/// A Unicorn failure during setup, as a run-time error.
fn setup(what: &str) -> impl Fn(uc_error) -> Error + '_ {
    move |e| Error::Runtime(format!("emulator: {what}: {e:?}"))
}

fn round_up(n: u64, to: u64) -> Option<u64> {
    n.checked_next_multiple_of(to)
}

impl EmulatedAarch64 {
    /// A new machine with the C-library host functions (`putchar getchar
    /// malloc calloc free memcpy memset memcmp abort exit`) and the trap
    /// handler defined, and its stack and heap mapped.
    pub fn new(config: EmulatorConfig) -> Result<Self> {
        const GRANULE: u64 = 0x1_0000;
        let bad = || Error::Argument("emulator: stack plus heap size too large".into());
        let stack_size = round_up(config.stack_size.max(GRANULE), GRANULE).ok_or_else(bad)?;
        let heap_size = round_up(config.heap_size.max(GRANULE), GRANULE).ok_or_else(bad)?;
        if stack_size.checked_add(heap_size).ok_or_else(bad)? > layout::HEAP_AND_STACK_MAX {
            return Err(bad());
        }
        let state = State {
            hosts: Builtin::ALL
                .iter()
                .map(|&b| (b.name().to_string(), HostEntry::Builtin(b)))
                .collect(),
            heap: heap::Heap::new(layout::HEAP_BASE, heap_size),
            stop: None,
            fault: None,
        };
        let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, state)
            .map_err(setup("cannot create an AArch64 instance"))?;
        // The most capable CPU model, so any instruction a backend may
        // choose (LSE atomics, FP16 ...) is accepted.
        uc.ctl_set_cpu_model(Arm64CpuModel::MAX as i32)
            .map_err(setup("cpu model"))?;
        let page_size = u64::from(uc.ctl_get_page_size().map_err(setup("page size"))?);

        let mut stubs = Vec::with_capacity(layout::HOST_STUBS_SIZE as usize);
        stubs.extend_from_slice(&UDF.to_le_bytes());
        while (stubs.len() as u64) < layout::HOST_STUBS_SIZE {
            stubs.extend_from_slice(&RET.to_le_bytes());
        }
        uc.mem_map(
            layout::HOST_STUBS,
            layout::HOST_STUBS_SIZE,
            Prot::READ | Prot::EXEC,
        )
        .map_err(setup("mapping the host stub page"))?;
        uc.mem_write(layout::HOST_STUBS, &stubs)
            .map_err(setup("writing the host stub page"))?;
        uc.mem_map(layout::HEAP_BASE, heap_size, Prot::READ | Prot::WRITE)
            .map_err(setup("mapping the heap"))?;
        uc.mem_map(
            layout::STACK_TOP - stack_size,
            stack_size,
            Prot::READ | Prot::WRITE,
        )
        .map_err(setup("mapping the stack"))?;

        uc.add_code_hook(
            layout::TRAP_HANDLER,
            layout::HOST_STUBS + layout::HOST_STUBS_SIZE - 1,
            |uc, address, _| host::on_stub(uc, address),
        )
        .map_err(setup("host stub hook"))?;
        uc.add_mem_hook(
            HookType::MEM_READ_UNMAPPED
                | HookType::MEM_WRITE_UNMAPPED
                | HookType::MEM_FETCH_UNMAPPED
                | HookType::MEM_READ_PROT
                | HookType::MEM_WRITE_PROT
                | HookType::MEM_FETCH_PROT,
            1,
            0,
            |uc, access, address, size, _| {
                uc.get_data_mut().fault = Some(Fault {
                    access,
                    address,
                    size,
                });
                false
            },
        )
        .map_err(setup("memory fault hook"))?;

        Ok(EmulatedAarch64 {
            uc,
            config: EmulatorConfig {
                stack_size,
                heap_size,
                ..config
            },
            page_size,
            code: vec![(layout::HOST_STUBS, layout::HOST_STUBS_SIZE)],
            arena_next: layout::ARENA_BASE,
        })
    }

    /// The configuration in force (sizes as rounded).
    pub fn config(&self) -> EmulatorConfig {
        self.config
    }

    /// Changes the instruction-count and time limits for later calls (the
    /// stack and heap sizes are fixed at creation).
    pub fn set_limits(&mut self, instruction_limit: Option<u64>, time_limit: Option<Duration>) {
        self.config.instruction_limit = instruction_limit;
        self.config.time_limit = time_limit;
    }

    /// The granule of [`EmulatedAarch64::map`]: addresses must be multiples
    /// of it.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Maps `len` bytes (rounded up to whole pages) at `addr` (page-aligned)
    /// with the protection of `kind`: text R+X, rodata R, data RW. The
    /// bytes start zeroed. Overlapping an existing mapping is an error.
    pub fn map(&mut self, addr: u64, len: u64, kind: SectionKind) -> Result<()> {
        let len = self.check_range(addr, len)?;
        let prot = match kind {
            SectionKind::Text => Prot::READ | Prot::EXEC,
            SectionKind::Rodata => Prot::READ,
            SectionKind::Data => Prot::READ | Prot::WRITE,
        };
        self.uc.mem_map(addr, len, prot).map_err(|e| {
            Error::Argument(format!(
                "emulator: cannot map {len:#x} bytes at {addr:#x} for {}: {}",
                kind.name(),
                if e == uc_error::MAP {
                    "overlaps an existing mapping"
                } else {
                    "rejected by the emulator"
                }
            ))
        })?;
        if kind == SectionKind::Text {
            self.code.push((addr, len));
        }
        Ok(())
    }

    /// Maps `len` bytes for `kind` at the next free page-aligned address of
    /// the module arena and returns it. Arena space is not reused after
    /// [`EmulatedAarch64::unmap`]; running out is an error.
    pub fn map_new(&mut self, len: u64, kind: SectionKind) -> Result<u64> {
        let addr = self.arena_next;
        let rounded = round_up(len.max(1), self.page_size)
            .filter(|&l| l <= layout::ARENA_BASE + layout::ARENA_SIZE - addr)
            .ok_or_else(|| {
                Error::Runtime(format!(
                    "emulator: module arena full ({len:#x} bytes requested)"
                ))
            })?;
        self.map(addr, rounded, kind)?;
        self.arena_next = addr + rounded;
        Ok(addr)
    }

    /// Unmaps `len` bytes (rounded up to whole pages) at `addr`, which must
    /// have been mapped by [`EmulatedAarch64::map`] or `map_new`.
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<()> {
        let len = self.check_range(addr, len)?;
        let end = addr + len;
        let own = [
            (layout::HOST_STUBS, layout::HOST_STUBS_SIZE),
            (layout::HEAP_BASE, self.config.heap_size),
            (
                layout::STACK_TOP - self.config.stack_size,
                self.config.stack_size,
            ),
        ];
        if own.iter().any(|&(a, l)| addr < a + l && end > a) {
            return Err(Error::Argument(format!(
                "emulator: {addr:#x}..{end:#x} overlaps the machine's own memory"
            )));
        }
        self.uc
            .mem_unmap(addr, len)
            .map_err(|_| Error::Argument(format!("emulator: {addr:#x}..{end:#x} is not mapped")))?;
        self.code.retain(|&(a, l)| a + l <= addr || a >= end);
        Ok(())
    }

    /// Copies `bytes` into emulated memory at `addr`, whatever the page
    /// protection (the loader fills code and rodata this way). Stale
    /// translations of overwritten code are dropped.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<()> {
        let end = addr
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| Error::Argument(format!("emulator: write at {addr:#x} wraps")))?;
        self.uc.mem_write(addr, bytes).map_err(|_| {
            Error::Argument(format!(
                "emulator: cannot write {:#x} bytes at {addr:#x}: not mapped",
                bytes.len()
            ))
        })?;
        if self.code.iter().any(|&(a, l)| addr < a + l && end > a) {
            self.uc
                .ctl_remove_cache(addr, end)
                .map_err(setup("dropping stale code"))?;
        }
        Ok(())
    }

    /// Reads emulated memory at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.uc.mem_read(addr, buf).map_err(|_| {
            Error::Argument(format!(
                "emulator: cannot read {:#x} bytes at {addr:#x}: not mapped",
                buf.len()
            ))
        })
    }

    /// The stub address of host symbol `name` (a built-in C-library
    /// function, one added with [`EmulatedAarch64::define_host`], or
    /// [`TRAP_SYMBOL`]), or `None` if there is no such host symbol.
    pub fn host_address(&self, name: &str) -> Option<u64> {
        if name == TRAP_SYMBOL {
            return Some(layout::TRAP_HANDLER);
        }
        let k = self
            .uc
            .get_data()
            .hosts
            .iter()
            .position(|(n, _)| n == name)?;
        Some(layout::FIRST_HOST + 4 * k as u64)
    }

    /// The IR signature of host function `name`, for checking `extern`
    /// declarations against it. The trap handler has none (it is not IR).
    pub fn host_signature(&self, name: &str) -> Option<Signature> {
        let (_, entry) = self.uc.get_data().hosts.iter().find(|(n, _)| n == name)?;
        Some(entry.signature())
    }

    /// Adds (or replaces) host function `name`, implemented in Rust on
    /// values only (it cannot see emulated memory), and returns its stub
    /// address. Replacing keeps the address.
    pub fn define_host(&mut self, name: &str, func: HostFunction) -> Result<u64> {
        if name == TRAP_SYMBOL {
            return Err(Error::Argument(format!(
                "emulator: {TRAP_SYMBOL} is reserved for the trap handler"
            )));
        }
        let hosts = &mut self.uc.get_data_mut().hosts;
        let k = match hosts.iter().position(|(n, _)| n == name) {
            Some(k) => {
                hosts[k].1 = HostEntry::Custom(func);
                k
            }
            None => {
                // Every slot but the lazy resolver's (the last).
                let slots =
                    (layout::HOST_STUBS_SIZE - (layout::FIRST_HOST - layout::HOST_STUBS)) / 4 - 1;
                if hosts.len() as u64 >= slots {
                    return Err(Error::Runtime("emulator: too many host functions".into()));
                }
                hosts.push((name.to_string(), HostEntry::Custom(func)));
                hosts.len() - 1
            }
        };
        Ok(layout::FIRST_HOST + 4 * k as u64)
    }

    /// Bytes currently allocated by the emulated `malloc`/`calloc`.
    pub fn heap_in_use(&self) -> u64 {
        self.uc.get_data().heap.live_bytes()
    }

    /// Calls the function at `addr` with `args` under AAPCS64 and reads the
    /// result as `ret`.
    ///
    /// Integer arguments go in x0–x7 (`i32` zero-extended), floating-point
    /// ones in d0–d7 (`f32` in s0–s7), the rest in 8-byte stack slots in
    /// order at SP, which is 16-byte aligned; x30 is the stop address. A
    /// trap is `Err(Error::Trap)`; a fault, an invalid instruction, an
    /// exhausted limit or a failing host function is `Err(Error::Runtime)`
    /// naming the PC (and the address, for memory faults).
    pub fn call(&mut self, addr: u64, args: &[Val], ret: Option<Type>) -> Result<Outcome> {
        let locs = arg_locations(args.iter().map(|a| a.ty()));
        let stack_bytes = round_up(locs.stack_bytes, 16).unwrap_or(u64::MAX);
        if stack_bytes > self.config.stack_size / 2 {
            return Err(Error::Argument(format!(
                "emulator: {} arguments do not fit the stack",
                args.len()
            )));
        }
        let sp = layout::STACK_TOP - stack_bytes;
        let mut stack = vec![0u8; stack_bytes as usize];
        for (val, loc) in args.iter().zip(&locs.locs) {
            match *loc {
                ArgLoc::X(n) => self.set_reg(x_reg(n), val.to_bits())?,
                ArgLoc::D(n) => self.set_reg(d_reg(n), val.to_bits())?,
                ArgLoc::Stack(off) => {
                    let off = off as usize;
                    stack[off..off + 8].copy_from_slice(&val.to_bits().to_le_bytes());
                }
            }
        }
        self.write(sp, &stack)?;
        self.set_reg(RegisterARM64::SP as i32, sp)?;
        self.set_reg(RegisterARM64::X29 as i32, 0)?;
        self.set_reg(RegisterARM64::X30 as i32, layout::RETURN_STOP)?;
        self.run_from(addr, ret)
    }

    /// Continues a call that ended with [`Outcome::Lazy`]: at `resume`,
    /// with `x0` in x0 and every other register and the stack as they
    /// were. Ends like [`EmulatedAarch64::call`].
    pub fn resume(&mut self, resume: u64, x0: u64, ret: Option<Type>) -> Result<Outcome> {
        self.set_reg(x_reg(0), x0)?;
        self.run_from(resume, ret)
    }

    /// Runs from `addr` until the stop address and reads the result.
    fn run_from(&mut self, addr: u64, ret: Option<Type>) -> Result<Outcome> {
        let state = self.uc.get_data_mut();
        state.stop = None;
        state.fault = None;
        let timeout = self.config.time_limit.map_or(0, |t| {
            u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
        });
        let count = self
            .config
            .instruction_limit
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).max(1));
        let run = self.uc.emu_start(addr, layout::RETURN_STOP, timeout, count);
        let pc = self.uc.pc_read().unwrap_or(0);
        let state = self.uc.get_data_mut();
        let (stop, fault) = (state.stop.take(), state.fault.take());
        match stop {
            Some(Stop::Exit(code)) => return Ok(Outcome::Exit(code)),
            Some(Stop::Abort) => return Ok(Outcome::Abort),
            Some(Stop::Trap(code, pcs)) => {
                return Err(Error::Trap(crate::error::Trap {
                    code,
                    backtrace: Vec::new(),
                    pcs,
                }))
            }
            Some(Stop::Error(e)) => return Err(e),
            Some(Stop::Lazy { key, resume }) => return Ok(Outcome::Lazy { key, resume }),
            None => {}
        }
        if let Err(e) = run {
            return Err(describe_failure(e, pc, fault));
        }
        if pc != layout::RETURN_STOP {
            return Err(Error::Runtime(format!(
                "emulation limit reached ({}) at pc {pc:#x}",
                self.limits_text()
            )));
        }
        let value = match ret {
            None => None,
            Some(ty @ (Type::I32 | Type::I64)) => Some(Val::from_bits(ty, self.get_reg(x_reg(0))?)),
            Some(ty @ (Type::F32 | Type::F64)) => Some(Val::from_bits(ty, self.get_reg(d_reg(0))?)),
        };
        Ok(Outcome::Returned(value))
    }

    fn limits_text(&self) -> String {
        match (self.config.instruction_limit, self.config.time_limit) {
            (Some(n), Some(t)) => format!("{n} instructions or {} ms", t.as_millis()),
            (Some(n), None) => format!("{n} instructions"),
            (None, Some(t)) => format!("{} ms", t.as_millis()),
            (None, None) => "stopped".into(),
        }
    }

    /// Checks that `addr` is page-aligned and returns `len` rounded up to
    /// whole pages (at least one).
    fn check_range(&self, addr: u64, len: u64) -> Result<u64> {
        let len = round_up(len.max(1), self.page_size)
            .filter(|&l| addr.checked_add(l).is_some())
            .ok_or_else(|| Error::Argument(format!("emulator: range at {addr:#x} wraps")))?;
        if !addr.is_multiple_of(self.page_size) {
            return Err(Error::Argument(format!(
                "emulator: {addr:#x} is not aligned to the {:#x}-byte page",
                self.page_size
            )));
        }
        Ok(len)
    }

    fn set_reg(&mut self, reg: i32, value: u64) -> Result<()> {
        self.uc
            .reg_write(reg, value)
            .map_err(setup("writing a register"))
    }

    fn get_reg(&self, reg: i32) -> Result<u64> {
        self.uc.reg_read(reg).map_err(setup("reading a register"))
    }
}

/// The Unicorn id of xN (0 ≤ N ≤ 28 are consecutive; x29 and x30 are not).
fn x_reg(n: u8) -> i32 {
    match n {
        29 => RegisterARM64::X29 as i32,
        30 => RegisterARM64::X30 as i32,
        _ => RegisterARM64::X0 as i32 + i32::from(n),
    }
}

/// The Unicorn id of dN (consecutive from d0). Writing dN with an `f32`'s
/// bits in the low half sets sN.
fn d_reg(n: u8) -> i32 {
    RegisterARM64::D0 as i32 + i32::from(n)
}

/// Where AAPCS64 passes one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgLoc {
    /// Integer register xN.
    X(u8),
    /// Floating-point register dN (sN for `f32`).
    D(u8),
    /// Byte offset from SP at the call; 8-byte slots.
    Stack(u64),
}

struct ArgLocations {
    locs: Vec<ArgLoc>,
    stack_bytes: u64,
}

/// AAPCS64 (Linux) placement of scalar arguments: the next free x or d
/// register of the argument's class, else the next 8-byte stack slot.
fn arg_locations(types: impl Iterator<Item = Type>) -> ArgLocations {
    let (mut ngrn, mut nsrn, mut nsaa) = (0u8, 0u8, 0u64);
    let locs = types
        .map(|ty| {
            let (next, float) = match ty {
                Type::I32 | Type::I64 => (&mut ngrn, false),
                Type::F32 | Type::F64 => (&mut nsrn, true),
            };
            if *next < 8 {
                let n = *next;
                *next += 1;
                if float {
                    ArgLoc::D(n)
                } else {
                    ArgLoc::X(n)
                }
            } else {
                let off = nsaa;
                nsaa += 8;
                ArgLoc::Stack(off)
            }
        })
        .collect();
    ArgLocations {
        locs,
        stack_bytes: nsaa,
    }
}

/// The error for a failed `emu_start`, naming the PC and, for memory
/// faults, the access.
fn describe_failure(e: uc_error, pc: u64, fault: Option<Fault>) -> Error {
    let what = match e {
        uc_error::READ_UNMAPPED
        | uc_error::WRITE_UNMAPPED
        | uc_error::FETCH_UNMAPPED
        | uc_error::READ_PROT
        | uc_error::WRITE_PROT
        | uc_error::FETCH_PROT => {
            let (kind, why) = match fault.map(|f| f.access) {
                Some(MemType::READ_UNMAPPED) => ("read", "unmapped"),
                Some(MemType::WRITE_UNMAPPED) => ("write", "unmapped"),
                Some(MemType::FETCH_UNMAPPED) => ("instruction fetch", "unmapped"),
                Some(MemType::READ_PROT) => ("read", "protected"),
                Some(MemType::WRITE_PROT) => ("write", "read-only"),
                Some(MemType::FETCH_PROT) => ("instruction fetch", "non-executable"),
                _ => ("access", "invalid"),
            };
            match fault {
                Some(f) => format!(
                    "emulated {kind} of {} bytes at {:#x} ({why} memory)",
                    f.size, f.address
                ),
                None => format!("emulated {kind} of {why} memory"),
            }
        }
        uc_error::READ_UNALIGNED | uc_error::WRITE_UNALIGNED | uc_error::FETCH_UNALIGNED => {
            "unaligned emulated access".to_string()
        }
        uc_error::INSN_INVALID => "invalid instruction".to_string(),
        uc_error::EXCEPTION => "unhandled CPU exception (brk, svc, hlt or udf)".to_string(),
        other => format!("emulation failed ({other:?})"),
    };
    Error::Runtime(format!("{what} at pc {pc:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aapcs64_argument_placement() {
        use Type::*;
        let tys = [
            I64, F64, I32, F32, I64, I64, I64, I64, I64, I64, F64, I32, F32,
        ];
        let l = arg_locations(tys.into_iter());
        assert_eq!(
            l.locs,
            [
                ArgLoc::X(0),
                ArgLoc::D(0),
                ArgLoc::X(1),
                ArgLoc::D(1),
                ArgLoc::X(2),
                ArgLoc::X(3),
                ArgLoc::X(4),
                ArgLoc::X(5),
                ArgLoc::X(6),
                ArgLoc::X(7),
                ArgLoc::D(2),
                ArgLoc::Stack(0),
                ArgLoc::D(3),
            ]
        );
        assert_eq!(l.stack_bytes, 8);
        let many = arg_locations(std::iter::repeat_n(F32, 11));
        assert_eq!(
            many.locs[8..],
            [ArgLoc::Stack(0), ArgLoc::Stack(8), ArgLoc::Stack(16)]
        );
        assert_eq!(many.stack_bytes, 24);
    }

    #[test]
    fn register_ids() {
        assert_eq!(x_reg(0), RegisterARM64::X0 as i32);
        assert_eq!(x_reg(28), RegisterARM64::X28 as i32);
        assert_eq!(x_reg(30), RegisterARM64::X30 as i32);
        assert_eq!(d_reg(7), RegisterARM64::D7 as i32);
    }
}
