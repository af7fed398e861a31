//! The process executor: compiled code runs in a child process, so that a
//! wild store or call kills the child, never the embedding process (as
//! `lli -remote-mcjit` did for MCJIT).
//!
//! The child is the `kiln` binary itself, started as
//! `kiln __executor --fd N` (a hidden subcommand, [`child_main`]); the two
//! talk over a socket with the small versioned binary protocol of
//! [`protocol`]. The parent compiles and relocates everything for the
//! child's addresses through the registry's Loaded state: the child
//! chooses each section's address ([`Executor::allocate_section`]), the
//! registry relocates for it, and the executor sends the bytes
//! ([`Executor::write_section`]) and has them protected
//! ([`Executor::finalize_sections`]). Host symbols (`putchar`, `malloc`,
//! the trap handler, the interrupt flag) are looked up in the child. The
//! child inherits the standard streams, and flushes its C stdio after every
//! call, so the program's output reaches the same stdout in order.
//!
//! **When the child dies** (a signal, or the program calling `exit`), the
//! request in flight returns [`Error::ExecutorDied`] with how it ended.
//! The next request starts a new child: it reserves its code region at the
//! same address, host functions resolve to the same addresses (see
//! [`child`]), and every live section is sent again (data sections with
//! their initial contents), so the engine's finalized modules work in the
//! new child unchanged. Host *data* symbols are checked to be at the same
//! address; if one moved, the restart fails with an error.
//!
//! **Finding `kiln`.** [`ProcessExecutor::spawn`] runs the program
//! [`find_kiln`] names: `$KILN_EXECUTOR` if set; else the current
//! executable if it is called `kiln`; else a `kiln` next to the current
//! executable or in its parent directory (cargo's `target/debug` seen from
//! `target/debug/deps`); else `kiln` on `$PATH`.
//! [`ProcessExecutor::spawn_with`] takes an explicit path.
//!
//! Calls are serialized: one request at a time per executor (the socket is
//! one conversation); [`Executor::interrupt`] does not wait for a running
//! call.

pub mod child;
pub mod protocol;

use super::{Executor, TargetSection};
use crate::error::{ChildExit, Error, Result, TrapCode};
use crate::ir::Signature;
use crate::memory::SectionKind;
use crate::value::Val;
pub use child::child_main;
use protocol::{read_frame, write_frame, Reply, Request, Span, VERSION};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The hidden subcommand that makes `kiln` an executor child.
pub const CHILD_COMMAND: &str = "__executor";

/// How to start the child.
#[derive(Clone, Debug, Default)]
pub struct ProcessConfig {
    /// The `kiln` binary to start; `None`: [`find_kiln`].
    pub program: Option<PathBuf>,
    /// Signatures of host functions, for link-checking `extern func`
    /// declarations against them (the child's `dlsym` knows none).
    pub host_signatures: HashMap<String, Signature>,
}

/// Finds the `kiln` binary to start as a child (order in the module docs).
pub fn find_kiln() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_EXECUTOR") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok();
    if let Some(exe) = &exe {
        if exe.file_name().is_some_and(|n| n == "kiln") {
            return Ok(exe.clone());
        }
        let dirs = [exe.parent(), exe.parent().and_then(Path::parent)];
        for dir in dirs.into_iter().flatten() {
            let p = dir.join("kiln");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("kiln");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Runtime(
        "cannot find the kiln binary to start as the executor process \
         (set KILN_EXECUTOR or use ProcessExecutor::spawn_with)"
            .into(),
    ))
}

/// One section the executor placed, kept so a new child can get it again.
struct Placed {
    kind: SectionKind,
    len: u64,
    bytes: Option<Vec<u8>>,
    finalized: bool,
}

/// A running child.
struct Live {
    child: std::process::Child,
    /// Replies are read here (under the `Conn` lock).
    reader: UnixStream,
}

/// The conversation and what a restart replays.
struct Conn {
    live: Option<Live>,
    /// The child's code region (fixed by the first child).
    region: u64,
    sections: BTreeMap<u64, Placed>,
    /// Every name looked up successfully, in order, with its address.
    lookups: Vec<(String, u64)>,
    symbols: HashMap<String, Option<u64>>,
}

/// Code runs in a `kiln` child process. See the [module docs](self).
pub struct ProcessExecutor {
    config: ProcessConfig,
    program: PathBuf,
    conn: Mutex<Conn>,
    /// Requests are written here; shared with [`Executor::interrupt`].
    writer: Arc<Mutex<Option<UnixStream>>>,
    /// An interrupt was requested and no call has observed it yet.
    pending: AtomicBool,
}

/// Children [`ProcessExecutor::start`] tries before it gives up on a
/// restart (each fails with probability about 1/1000 independently).
const START_ATTEMPTS: u32 = 8;

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("executor process: {what}: {e}"))
}

impl ProcessExecutor {
    /// Starts a child from the `kiln` binary [`find_kiln`] finds.
    pub fn spawn() -> Result<Arc<ProcessExecutor>> {
        Self::spawn_with(ProcessConfig::default())
    }

    /// Starts a child as `config` says.
    pub fn spawn_with(config: ProcessConfig) -> Result<Arc<ProcessExecutor>> {
        let program = match &config.program {
            Some(p) => p.clone(),
            None => find_kiln()?,
        };
        let ex = ProcessExecutor {
            config,
            program,
            conn: Mutex::new(Conn {
                live: None,
                region: 0,
                sections: BTreeMap::new(),
                lookups: Vec::new(),
                symbols: HashMap::new(),
            }),
            writer: Arc::new(Mutex::new(None)),
            pending: AtomicBool::new(false),
        };
        {
            let mut conn = ex.lock()?;
            ex.start(&mut conn)?;
        }
        Ok(Arc::new(ex))
    }

    /// The program started as the child.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The child's process id (`None` between a death and the restart).
    pub fn child_id(&self) -> Option<u32> {
        self.conn.lock().ok()?.live.as_ref().map(|l| l.child.id())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Conn>> {
        self.conn
            .lock()
            .map_err(|_| Error::Runtime("executor process state poisoned".into()))
    }

    /// Starts a child (at the known region, after a death) and replays
    /// what the previous one had. A restarted child finds the region's
    /// address taken by one of its own libraries about once in a thousand
    /// starts (its layout is random, see [`child::REGION_TAKEN`]): another
    /// child is started then, up to [`START_ATTEMPTS`] in all.
    fn start(&self, conn: &mut Conn) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.start_once(conn) {
                Err(Error::ExecutorDied(ChildExit::Status(child::REGION_TAKEN)))
                    if conn.region != 0 && attempt < START_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(Error::ExecutorDied(ChildExit::Status(child::REGION_TAKEN))) => {
                    return Err(Error::Runtime(format!(
                        "executor process: {attempt} new children could not map the code \
                         region at {:#x}",
                        conn.region
                    )))
                }
                r => return r,
            }
        }
    }

    fn start_once(&self, conn: &mut Conn) -> Result<()> {
        let (ours, theirs) = UnixStream::pair().map_err(io_err("socketpair"))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
        let mut cmd = std::process::Command::new(&self.program);
        cmd.arg(CHILD_COMMAND).arg("--fd").arg(fd.to_string());
        if conn.region != 0 {
            cmd.arg("--region").arg(format!("{:#x}", conn.region));
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // calls fcntl, which is async-signal-safe: it lets the child's end
        // of the socket survive the exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            Error::Runtime(format!(
                "cannot start the executor process {}: {e}",
                self.program.display()
            ))
        })?;
        drop(theirs);
        let writer = ours.try_clone().map_err(io_err("socket"))?;
        conn.live = Some(Live {
            child,
            reader: ours,
        });
        *self
            .writer
            .lock()
            .map_err(|_| Error::Runtime("executor writer poisoned".into()))? = Some(writer);
        match self.receive(conn)? {
            Reply::Hello { version, region } if version == VERSION => {
                if conn.region != 0 && region != conn.region {
                    return Err(self.fail(conn, "the new child's region moved"));
                }
                conn.region = region;
            }
            Reply::Hello { version, .. } => {
                return Err(self.fail(
                    conn,
                    &format!("protocol version {version}, expected {VERSION}"),
                ))
            }
            other => return Err(self.fail(conn, &format!("unexpected greeting {other:?}"))),
        }
        self.replay(conn)
    }

    /// Sends a new child every lookup and section of the previous one.
    fn replay(&self, conn: &mut Conn) -> Result<()> {
        let lookups = conn.lookups.clone();
        for (name, address) in lookups {
            match self.exchange(conn, Request::Lookup(name.clone()))? {
                Reply::Address(a) if a == address => {}
                _ => {
                    return Err(
                        self.fail(conn, &format!("host symbol @{name} moved in the new child"))
                    )
                }
            }
        }
        let mut todo = Vec::new();
        let mut finalized = Vec::new();
        for (&address, p) in &conn.sections {
            let span = Span {
                kind: p.kind,
                address,
                len: p.len,
            };
            todo.push(Request::AllocateAt(span));
            if let Some(bytes) = &p.bytes {
                todo.push(Request::Write {
                    address,
                    bytes: bytes.clone(),
                });
            }
            if p.finalized {
                finalized.push(span);
            }
        }
        todo.push(Request::Finalize(finalized));
        for req in todo {
            self.expect_ok(conn, req)?;
        }
        Ok(())
    }

    /// Kills the child after a protocol failure and makes the error.
    fn fail(&self, conn: &mut Conn, what: &str) -> Error {
        if let Some(mut live) = conn.live.take() {
            let _ = live.child.kill();
            let _ = live.child.wait();
        }
        Error::Runtime(format!("executor process: {what}"))
    }

    /// The error after the socket broke: reaps the child and says how it
    /// ended.
    fn died(&self, conn: &mut Conn) -> Error {
        if let Ok(mut w) = self.writer.lock() {
            *w = None;
        }
        let Some(mut live) = conn.live.take() else {
            return Error::ExecutorDied(ChildExit::Unknown);
        };
        let how = match live.child.wait() {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.signal(), status.code()) {
                    (Some(sig), _) => ChildExit::Signal(sig),
                    (None, Some(code)) => ChildExit::Status(code),
                    _ => ChildExit::Unknown,
                }
            }
            Err(_) => ChildExit::Unknown,
        };
        Error::ExecutorDied(how)
    }

    fn receive(&self, conn: &mut Conn) -> Result<Reply> {
        let frame = match conn.live.as_mut() {
            Some(live) => read_frame(&mut live.reader),
            None => return Err(Error::ExecutorDied(ChildExit::Unknown)),
        };
        match frame {
            Ok(Some(body)) => match Reply::decode(&body) {
                Ok(r) => Ok(r),
                Err(e) => {
                    let _ = self.fail(conn, "malformed reply");
                    Err(e)
                }
            },
            Ok(None) | Err(_) => Err(self.died(conn)),
        }
    }

    /// Writes the frame `make` builds, under the writer lock.
    fn send(&self, conn: &mut Conn, make: impl FnOnce() -> Vec<u8>) -> Result<()> {
        let sent = match self.writer.lock() {
            Ok(mut w) => match w.as_mut() {
                Some(s) => write_frame(&mut NoSigPipe(s), &make()).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.died(conn))
        }
    }

    /// One request and its reply; starts a new child first if the last
    /// one died.
    fn exchange(&self, conn: &mut Conn, req: Request) -> Result<Reply> {
        self.exchange_with(conn, move || req.encode())
    }

    fn exchange_with(&self, conn: &mut Conn, make: impl FnOnce() -> Vec<u8>) -> Result<Reply> {
        if conn.live.is_none() {
            self.start(conn)?;
        }
        self.send(conn, make)?;
        match self.receive(conn)? {
            Reply::Error(m) => Err(Error::Runtime(format!("executor process: {m}"))),
            r => Ok(r),
        }
    }

    fn expect_ok(&self, conn: &mut Conn, req: Request) -> Result<()> {
        match self.exchange(conn, req)? {
            Reply::Ok => Ok(()),
            other => Err(self.fail(conn, &format!("unexpected reply {other:?}"))),
        }
    }
}

impl Drop for ProcessExecutor {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            *w = None;
        }
        if let Ok(conn) = self.conn.get_mut() {
            if let Some(mut live) = conn.live.take() {
                drop(live.reader);
                let _ = live.child.kill();
                let _ = live.child.wait();
            }
        }
    }
}

/// Writes to a socket without `SIGPIPE` when the other end is gone (an
/// embedder may not ignore the signal): `send` with `MSG_NOSIGNAL`.
pub(crate) struct NoSigPipe<'a>(pub &'a UnixStream);

impl std::io::Write for NoSigPipe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.0);
        // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is the
        // socket's open descriptor.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn span(s: TargetSection) -> Span {
    Span {
        kind: s.kind,
        address: s.address,
        len: s.len,
    }
}

impl Executor for ProcessExecutor {
    fn name(&self) -> &str {
        "process"
    }

    fn allocate_section(&self, kind: SectionKind, len: u64, align: u64) -> Result<Option<u64>> {
        let mut conn = self.lock()?;
        match self.exchange(&mut conn, Request::Allocate { kind, len, align })? {
            Reply::Address(a) => {
                conn.sections.insert(
                    a,
                    Placed {
                        kind,
                        len,
                        bytes: None,
                        finalized: false,
                    },
                );
                Ok(Some(a))
            }
            other => Err(self.fail(&mut conn, &format!("unexpected reply {other:?}"))),
        }
    }

    fn write_section(&self, section: TargetSection, bytes: &[u8]) -> Result<()> {
        let mut conn = self.lock()?;
        self.expect_ok(
            &mut conn,
            Request::Write {
                address: section.address,
                bytes: bytes.to_vec(),
            },
        )?;
        // Remember the contents for a restart: a whole section, or a part
        // of one (an indirection cell, [`Executor::write_cell`]).
        if let Some((&start, p)) = conn.sections.range_mut(..=section.address).next_back() {
            let off = (section.address - start) as usize;
            let whole = p.bytes.get_or_insert_with(Vec::new);
            if whole.len() < off + bytes.len() {
                whole.resize(off + bytes.len(), 0);
            }
            whole[off..off + bytes.len()].copy_from_slice(bytes);
        }
        Ok(())
    }

    fn finalize_sections(&self, sections: &[TargetSection]) -> Result<()> {
        let mut conn = self.lock()?;
        let spans = sections.iter().map(|&s| span(s)).collect();
        self.expect_ok(&mut conn, Request::Finalize(spans))?;
        for s in sections {
            if let Some(p) = conn.sections.get_mut(&s.address) {
                p.finalized = true;
            }
        }
        Ok(())
    }

    fn release_section(&self, section: TargetSection) -> Result<()> {
        let mut conn = self.lock()?;
        conn.sections.remove(&section.address);
        self.expect_ok(&mut conn, Request::Release(span(section)))
    }

    unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>> {
        if args.len() > usize::from(u8::MAX) {
            return Err(Error::Argument(format!(
                "the process executor passes at most 255 arguments, not {}",
                args.len()
            )));
        }
        let mut conn = self.lock()?;
        let (ret, args): (_, Vec<_>) = (
            sig.ret,
            args.iter().map(|a| (a.ty(), a.to_bits())).collect(),
        );
        // `pending` is read under the writer lock, so an interrupt either
        // comes before (and is carried by `interrupted`) or after the call.
        let reply = self.exchange_with(&mut conn, || {
            Request::Call {
                address,
                interrupted: self.pending.load(Ordering::SeqCst),
                ret,
                args,
            }
            .encode()
        })?;
        match reply {
            Reply::Returned(bits) => Ok(match (ret, bits) {
                (Some(t), Some(b)) => Some(Val::from_bits(t, b)),
                _ => None,
            }),
            Reply::Trap(code, pcs) => {
                if code == TrapCode::Interrupted.code() {
                    self.pending.store(false, Ordering::SeqCst);
                }
                Err(child::trap_of(code, pcs))
            }
            other => Err(self.fail(&mut conn, &format!("unexpected reply {other:?}"))),
        }
    }

    fn host_symbol(&self, name: &str) -> Option<u64> {
        let mut conn = self.lock().ok()?;
        if let Some(&a) = conn.symbols.get(name) {
            return a;
        }
        let a = match self.exchange(&mut conn, Request::Lookup(name.to_string())) {
            Ok(Reply::Address(a)) => Some(a),
            Ok(Reply::NotFound) => None,
            _ => return None,
        };
        if let Some(a) = a {
            conn.lookups.push((name.to_string(), a));
        }
        conn.symbols.insert(name.to_string(), a);
        a
    }

    fn host_signature(&self, name: &str) -> Option<Signature> {
        self.config.host_signatures.get(name).cloned()
    }

    fn interrupt(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if let Ok(mut w) = self.writer.lock() {
            if let Some(s) = w.as_mut() {
                let _ = write_frame(&mut NoSigPipe(s), &Request::Interrupt.encode());
            }
        }
    }
}
