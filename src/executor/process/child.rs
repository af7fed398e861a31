//! The executor child: `kiln __executor --fd N [--region ADDRESS]`.
//!
//! It maps what the parent sends, protects it and calls it; it never
//! parses or compiles anything. All its memory for compiled code is one
//! reserved region (`REGION_SIZE`, `PROT_NONE` until used), so that every
//! section is within reach of every other (PC-relative references between
//! a module's sections, direct calls between modules). A restarted child is
//! given the previous child's region address and maps its region there, so
//! the parent can send it the same bytes again.
//!
//! The region starts with a runtime area that keeps host addresses stable
//! across restarts as well:
//!
//! ```text
//! region + 0        RW   the interrupt flag (one byte), then one 8-byte
//!                        slot per host function, in lookup order
//! region + 32 KiB   R+X  one 8-byte jump per slot: `jmp [rip + slot]`
//! region + 64 KiB        sections, page by page
//! ```
//!
//! A host *function* resolves to its jump (the parent relocates calls to
//! it); the slot holds the function's address in this process. A restarted
//! child, asked for the same names in the same order, fills the same slots,
//! so code compiled for the first child works unchanged. Host *data*
//! resolves to its real address (found executable or not in
//! `/proc/self/maps`).
//!
//! Two threads: a reader turns frames into requests, handles
//! [`Request::Interrupt`] at once (it sets the flag while a call runs) and
//! queues the rest; the main thread serves the queue in order and writes
//! the replies. C stdio is flushed after every call, before the reply, so
//! that the program's output precedes whatever the parent prints next. If
//! the program crashes, this process dies of the signal and the parent
//! sees it; if it calls `exit`, this process exits with that status.

use super::protocol::{read_frame, write_frame, Reply, Request, Span, VERSION};
use crate::error::{Error, Result, TrapCode};
use crate::executor::{signals, Executor, InProcessExecutor};
use crate::interrupt::INTERRUPT_FLAG;
use crate::ir::{ParamTypes, Signature};
use crate::memory::SectionKind;
use crate::value::Val;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

/// Bytes reserved for compiled code and the runtime area.
pub const REGION_SIZE: u64 = 1 << 30;

/// Bytes of the runtime area at the start of the region.
const RUNTIME_SIZE: u64 = 64 << 10;

/// Where the host slots start in the runtime area's data half.
const SLOTS_AT: u64 = 64;

/// Bytes of one jump of the runtime area's code half.
const JUMP_SIZE: u64 = 8;

/// Host functions a child can resolve (slots in the data half).
const MAX_HOST_FUNCTIONS: u64 = (RUNTIME_SIZE / 2 - SLOTS_AT) / 8;

/// The exit status of a restarted child that could not reserve its region
/// at the address it was given: something of its own (a library, placed
/// at random by the system) is already there. The parent starts another
/// child, which gets another random layout.
pub const REGION_TAKEN: i32 = 75;

/// Runs the child; returns its exit status (0 when the parent hangs up,
/// [`REGION_TAKEN`], or 1 after another error).
pub fn child_main(args: &[OsString]) -> i32 {
    let mut status = 1;
    match serve(args, &mut status) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kiln executor: {e}");
            status
        }
    }
}

fn arg_error(msg: &str) -> Error {
    Error::Argument(format!("bad executor arguments: {msg}"))
}

/// Parses `--fd N [--region ADDRESS]`.
fn parse_args(args: &[OsString]) -> Result<(i32, Option<u64>)> {
    let mut fd = None;
    let mut region = None;
    let mut it = args.iter().map(|a| a.to_str().unwrap_or(""));
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| arg_error(a))?;
        match a {
            "--fd" => fd = Some(v.parse::<i32>().map_err(|_| arg_error(v))?),
            "--region" => {
                let hex = v.strip_prefix("0x").ok_or_else(|| arg_error(v))?;
                region = Some(u64::from_str_radix(hex, 16).map_err(|_| arg_error(v))?);
            }
            _ => return Err(arg_error(a)),
        }
    }
    Ok((fd.ok_or_else(|| arg_error("--fd missing"))?, region))
}

/// Serves the parent; on an error, `status` is the exit status to end with.
fn serve(args: &[OsString], status: &mut i32) -> Result<()> {
    let (fd, want) = parse_args(args)?;
    if fd < 3 {
        return Err(arg_error("--fd must not be a standard stream"));
    }
    // SAFETY: the parent passed this descriptor (inherited, not
    // close-on-exec) for this process to own; nothing else here uses it.
    let socket = std::os::unix::net::UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let writer = socket
        .try_clone()
        .map_err(|e| Error::Runtime(format!("cannot clone the socket: {e}")))?;
    let region = Region::reserve(want).inspect_err(|_| {
        if want.is_some() {
            *status = REGION_TAKEN;
        }
    })?;
    let mut child = Child::new(region)?;
    write_frame(
        &mut super::NoSigPipe(&writer),
        &Reply::Hello {
            version: VERSION,
            region: child.region.base,
        }
        .encode(),
    )
    .map_err(|e| Error::Runtime(format!("cannot greet the parent: {e}")))?;

    let (queue, requests) = std::sync::mpsc::channel::<Request>();
    let flag = child.region.base;
    let mut reader = socket;
    std::thread::Builder::new()
        .name("kiln-executor-reader".into())
        .spawn(move || {
            // SAFETY: `flag` is the first byte of the runtime area, RW for
            // the life of the process (the region is never unmapped).
            let flag = unsafe { &*(flag as *const AtomicU8) };
            while let Ok(Some(body)) = read_frame(&mut reader) {
                let Ok(req) = Request::decode(&body) else {
                    break;
                };
                match req {
                    Request::Interrupt => {
                        flag.store(1, Ordering::SeqCst);
                        continue;
                    }
                    Request::Call { interrupted, .. } => {
                        flag.store(u8::from(interrupted), Ordering::SeqCst)
                    }
                    _ => {}
                }
                if queue.send(req).is_err() {
                    break;
                }
            }
            // The parent hung up (or broke the protocol): nothing more will
            // be asked, and a call still running (a loop) would keep this
            // process alive for nobody. C stdio was flushed after the last
            // call; `exit` flushes it again.
            std::process::exit(0)
        })
        .map_err(|e| Error::Runtime(format!("cannot start the reader: {e}")))?;
    for req in requests {
        let reply = child.handle(req).unwrap_or_else(|e| match e {
            Error::Trap(t) => Reply::Trap(t.code.code(), t.pcs),
            e => Reply::Error(e.to_string()),
        });
        if write_frame(&mut super::NoSigPipe(&writer), &reply.encode()).is_err() {
            break;
        }
    }
    Ok(())
}

/// The region: reserved address space, its runtime area, and a page
/// allocator over the rest.
struct Region {
    base: u64,
    page: u64,
    /// Free page runs: start → length.
    free: BTreeMap<u64, u64>,
    /// Allocated sections by start.
    used: BTreeMap<u64, Used>,
}

/// One allocated section.
#[derive(Clone, Copy, Debug)]
struct Used {
    /// Whole pages.
    len: u64,
    kind: SectionKind,
    finalized: bool,
}

impl Region {
    /// Reserves the region, at `want` if given (a restarted child).
    fn reserve(want: Option<u64>) -> Result<Region> {
        let page = page_size();
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        if want.is_some() {
            flags |= libc::MAP_FIXED_NOREPLACE;
        }
        let hint = want.unwrap_or(0) as usize as *mut libc::c_void;
        // SAFETY: a new private anonymous mapping; MAP_FIXED_NOREPLACE
        // fails rather than replacing anything already mapped at `hint`.
        let p = unsafe { libc::mmap(hint, REGION_SIZE as usize, libc::PROT_NONE, flags, -1, 0) };
        if p == libc::MAP_FAILED || want.is_some_and(|w| w != p as u64) {
            return Err(Error::Runtime(format!(
                "cannot reserve the executor region{}",
                want.map_or(String::new(), |w| format!(" at {w:#x}"))
            )));
        }
        let base = p as u64;
        let mut free = BTreeMap::new();
        free.insert(base + RUNTIME_SIZE, REGION_SIZE - RUNTIME_SIZE);
        Ok(Region {
            base,
            page,
            free,
            used: BTreeMap::new(),
        })
    }

    fn protect(&self, addr: u64, len: u64, prot: libc::c_int) -> Result<()> {
        // SAFETY: `addr..addr+len` is page-aligned and inside the region,
        // which this process reserved and nothing else uses.
        let r = unsafe { libc::mprotect(addr as usize as *mut libc::c_void, len as usize, prot) };
        if r != 0 {
            return Err(Error::Runtime(format!(
                "mprotect of {len:#x} bytes at {addr:#x} failed"
            )));
        }
        Ok(())
    }

    fn round(&self, len: u64) -> Result<u64> {
        len.max(1)
            .checked_next_multiple_of(self.page)
            .filter(|&l| l < REGION_SIZE)
            .ok_or_else(|| Error::Runtime(format!("section of {len:#x} bytes is too large")))
    }

    /// First fit; sections start on a page.
    fn allocate(&mut self, kind: SectionKind, len: u64, align: u64) -> Result<u64> {
        if align > self.page {
            return Err(Error::Argument(format!(
                "section alignment {align} exceeds the page size"
            )));
        }
        let len = self.round(len)?;
        let (&start, _) = self
            .free
            .iter()
            .find(|(_, &l)| l >= len)
            .ok_or_else(|| Error::Runtime("the executor region is full".into()))?;
        self.take(start, len, kind)?;
        Ok(start)
    }

    /// Marks `start..start+len` (inside one free run) used, RW.
    fn take(&mut self, start: u64, len: u64, kind: SectionKind) -> Result<()> {
        let (&run, &run_len) = self
            .free
            .range(..=start)
            .next_back()
            .filter(|(&s, &l)| start + len <= s + l)
            .ok_or_else(|| Error::Argument(format!("{start:#x} is not free in the region")))?;
        self.free.remove(&run);
        if start > run {
            self.free.insert(run, start - run);
        }
        if start + len < run + run_len {
            self.free.insert(start + len, run + run_len - start - len);
        }
        self.protect(start, len, libc::PROT_READ | libc::PROT_WRITE)?;
        self.used.insert(
            start,
            Used {
                len,
                kind,
                finalized: false,
            },
        );
        Ok(())
    }

    /// The used section at exactly `start`.
    fn section(&self, start: u64) -> Result<Used> {
        self.used
            .get(&start)
            .copied()
            .ok_or_else(|| Error::Argument(format!("no section at {start:#x}")))
    }

    fn release(&mut self, start: u64) -> Result<()> {
        let Used { len, kind, .. } = self.section(start)?;
        self.protect(start, len, libc::PROT_NONE)?;
        // SAFETY: the pages are this process's, now inaccessible; dropping
        // their contents gives the memory back.
        unsafe {
            libc::madvise(
                start as usize as *mut libc::c_void,
                len as usize,
                libc::MADV_DONTNEED,
            )
        };
        if kind == SectionKind::Text {
            signals::unregister_code(start, len);
        }
        self.used.remove(&start);
        let (mut s, mut l) = (start, len);
        if let Some((&ps, &pl)) = self.free.range(..s).next_back() {
            if ps + pl == s {
                self.free.remove(&ps);
                s = ps;
                l += pl;
            }
        }
        if let Some(&nl) = self.free.get(&(s + l)) {
            self.free.remove(&(s + l));
            l += nl;
        }
        self.free.insert(s, l);
        Ok(())
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Whether `addr` lies in an executable mapping of this process.
fn executable(addr: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return true;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if (a..b).contains(&addr) {
            return perms.as_bytes().get(2) == Some(&b'x');
        }
    }
    false
}

/// The child's state.
struct Child {
    region: Region,
    exec: InProcessExecutor,
    /// Host function name → slot.
    slots: HashMap<String, u64>,
}

impl Child {
    fn new(region: Region) -> Result<Child> {
        let half = RUNTIME_SIZE / 2;
        region.protect(region.base, half, libc::PROT_READ | libc::PROT_WRITE)?;
        let code = jumps(region.base, half)?;
        let at = region.base + half;
        region.protect(at, half, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: `at..at+half` was just made writable and holds nothing
        // yet; `code` is exactly `half` bytes.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), at as usize as *mut u8, code.len()) };
        region.protect(at, half, libc::PROT_READ | libc::PROT_EXEC)?;
        Ok(Child {
            region,
            exec: InProcessExecutor::new(None)?,
            slots: HashMap::new(),
        })
    }

    /// The jump for host function `name` at `target`, given a slot on
    /// first use.
    fn jump_for(&mut self, name: &str, target: u64) -> Result<u64> {
        let n = self.slots.len() as u64;
        let slot = *self.slots.entry(name.to_string()).or_insert(n);
        if slot >= MAX_HOST_FUNCTIONS {
            self.slots.remove(name);
            return Err(Error::Runtime("too many host functions".into()));
        }
        let base = self.region.base;
        // SAFETY: the slot lies in the runtime area's data half, RW for the
        // life of the process; only this thread writes slots.
        unsafe { *((base + SLOTS_AT + 8 * slot) as usize as *mut u64) = target };
        Ok(base + RUNTIME_SIZE / 2 + JUMP_SIZE * slot)
    }

    fn lookup(&mut self, name: &str) -> Result<Reply> {
        if name == INTERRUPT_FLAG {
            return Ok(Reply::Address(self.region.base));
        }
        let target = match self.exec.host_symbol(name) {
            Some(t) => t,
            None => return Ok(Reply::NotFound),
        };
        if name == crate::isa::TRAP_HANDLER || executable(target) {
            Ok(Reply::Address(self.jump_for(name, target)?))
        } else {
            Ok(Reply::Address(target))
        }
    }

    /// The section holding all of `address..address+len`.
    fn inside(&self, address: u64, len: u64) -> Result<Used> {
        self.region
            .used
            .range(..=address)
            .next_back()
            .filter(|(&s, u)| address.checked_add(len).is_some_and(|e| e <= s + u.len))
            .map(|(_, u)| *u)
            .ok_or_else(|| {
                Error::Argument(format!(
                    "{len:#x} bytes at {address:#x} are outside every section"
                ))
            })
    }

    /// Checks that `address..address+len` may be written: inside a
    /// section that is not finalized, or is data.
    fn writable(&self, address: u64, len: u64) -> Result<()> {
        let u = self.inside(address, len)?;
        if u.finalized && u.kind != SectionKind::Data {
            return Err(Error::Argument(format!(
                "{address:#x} is in finalized {}",
                u.kind.name()
            )));
        }
        Ok(())
    }

    fn finalize(&mut self, spans: &[Span]) -> Result<()> {
        for s in spans {
            let Used { len, kind, .. } = self.region.section(s.address)?;
            if let Some(u) = self.region.used.get_mut(&s.address) {
                u.finalized = true;
            }
            let prot = match kind {
                SectionKind::Text => libc::PROT_READ | libc::PROT_EXEC,
                SectionKind::Rodata => libc::PROT_READ,
                SectionKind::Data => libc::PROT_READ | libc::PROT_WRITE,
            };
            self.region.protect(s.address, len, prot)?;
            if kind == SectionKind::Text {
                signals::register_code(s.address, len);
            }
        }
        Ok(())
    }

    fn handle(&mut self, req: Request) -> Result<Reply> {
        match req {
            Request::Allocate { kind, len, align } => {
                Ok(Reply::Address(self.region.allocate(kind, len, align)?))
            }
            Request::AllocateAt(s) => {
                if s.address % self.region.page != 0 {
                    return Err(Error::Argument(format!(
                        "{:#x} is not page-aligned",
                        s.address
                    )));
                }
                let len = self.region.round(s.len)?;
                self.region.take(s.address, len, s.kind)?;
                Ok(Reply::Ok)
            }
            Request::Write { address, bytes } => {
                self.writable(address, bytes.len() as u64)?;
                // SAFETY: the range lies inside a section of this process's
                // region that is mapped RW (not yet finalized, or data).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        address as usize as *mut u8,
                        bytes.len(),
                    )
                };
                Ok(Reply::Ok)
            }
            Request::Finalize(spans) => {
                self.finalize(&spans)?;
                Ok(Reply::Ok)
            }
            Request::Release(s) => {
                self.region.release(s.address)?;
                Ok(Reply::Ok)
            }
            Request::Call {
                address, ret, args, ..
            } => {
                self.inside(address, 1)?;
                let sig = Signature::new(args.iter().map(|a| a.0).collect::<ParamTypes>(), ret);
                let vals: Vec<Val> = args.iter().map(|&(t, b)| Val::from_bits(t, b)).collect();
                // SAFETY: the parent sends the entry of a function it
                // compiled for signature `sig` and finalized here, whose
                // module stays finalized during the call (the parent pins
                // it). A wrong address is the program's undefined
                // behaviour, which at worst kills this process.
                let r = unsafe { self.exec.call(address, &sig, &vals) };
                // SAFETY: fflush(NULL) flushes every C stdio stream.
                unsafe { libc::fflush(std::ptr::null_mut()) };
                match r {
                    Ok(v) => Ok(Reply::Returned(v.map(Val::to_bits))),
                    Err(Error::Trap(t)) => Ok(Reply::Trap(t.code.code(), t.pcs)),
                    Err(e) => Err(e),
                }
            }
            Request::Lookup(name) => self.lookup(&name),
            Request::Interrupt => Ok(Reply::Ok),
        }
    }
}

/// The code half of the runtime area: `size / JUMP_SIZE` jumps, jump `k`
/// at `data + size + 8k` reading its target from `data + SLOTS_AT + 8k`.
fn jumps(data: u64, size: u64) -> Result<Vec<u8>> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::Runtime(
            "the process executor runs x86-64 code only".into(),
        ));
    }
    let mut code = Vec::with_capacity(size as usize);
    for k in 0..size / JUMP_SIZE {
        let jump = data + size + JUMP_SIZE * k;
        let slot = data + SLOTS_AT + 8 * k.min(MAX_HOST_FUNCTIONS - 1);
        // jmp qword [rip + disp32]: disp from the end of the 6-byte jump.
        let disp = (slot as i64 - (jump as i64 + 6)) as i32;
        code.extend_from_slice(&[0xff, 0x25]);
        code.extend_from_slice(&disp.to_le_bytes());
        code.extend_from_slice(&[0xcc, 0xcc]);
    }
    Ok(code)
}

/// The trap a reply carries: its code and the code addresses the child
/// captured (the engine turns them into the IR-level backtrace).
pub fn trap_of(code: u32, pcs: Vec<u64>) -> Error {
    Error::Trap(crate::error::Trap {
        code: TrapCode::from_code(code).unwrap_or(TrapCode::Unreachable),
        backtrace: Vec::new(),
        pcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(parse_args(&a(&["--fd", "7"])).unwrap(), (7, None));
        assert_eq!(
            parse_args(&a(&["--fd", "7", "--region", "0x7f0000000000"])).unwrap(),
            (7, Some(0x7f00_0000_0000))
        );
        for bad in [
            &["--fd"][..],
            &["--fd", "x"],
            &[],
            &["--region", "12", "--fd", "3"],
        ] {
            assert!(parse_args(&a(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_region_allocates_reuses_and_restores_at_a_fixed_place() {
        let mut r = Region::reserve(None).unwrap();
        let a = r.allocate(SectionKind::Text, 10, 16).unwrap();
        let b = r.allocate(SectionKind::Data, 5000, 16).unwrap();
        assert_eq!(a, r.base + RUNTIME_SIZE);
        assert_eq!(b, a + r.page);
        r.release(a).unwrap();
        assert_eq!(r.allocate(SectionKind::Rodata, 1, 8).unwrap(), a, "reused");
        r.release(b).unwrap();
        r.release(a).unwrap();
        assert_eq!(r.free.len(), 1, "runs coalesce");
        assert!(r.allocate(SectionKind::Text, 1, 1 << 20).is_err());
        // Taking a precise place, as a restarted child does.
        let at = r.base + RUNTIME_SIZE + 5 * r.page;
        r.take(at, r.page, SectionKind::Data).unwrap();
        assert!(r.take(at, r.page, SectionKind::Data).is_err());
        let base = r.base;
        // SAFETY: the region was reserved by `reserve` and is not used
        // after this.
        unsafe { libc::munmap(base as usize as *mut libc::c_void, REGION_SIZE as usize) };
        let again = Region::reserve(Some(base)).unwrap();
        assert_eq!(again.base, base);
        // SAFETY: as above.
        unsafe { libc::munmap(base as usize as *mut libc::c_void, REGION_SIZE as usize) };
    }

    #[test]
    fn jumps_read_their_slots() {
        let code = jumps(0x1000, 64).unwrap();
        assert_eq!(code.len(), 64);
        // Jump 1 at 0x1048 reads slot 1 at 0x1048: disp = 0x1048 - 0x104e.
        assert_eq!(&code[8..10], &[0xff, 0x25]);
        assert_eq!(
            i32::from_le_bytes([code[10], code[11], code[12], code[13]]),
            (0x1000 + SLOTS_AT as i32 + 8) - (0x1000 + 64 + 8 + 6)
        );
    }
}
