//! The AArch64 emulator ([`crate::emulate::EmulatedAarch64`]) as an
//! [`Executor`] (feature `emulate`).

use super::{Executor, TargetSection};
use crate::error::{Error, Result};
use crate::ir::Signature;
use crate::memory::SectionKind;
use crate::value::Val;

/// The AArch64 emulator ([`crate::emulate::EmulatedAarch64`]) as an
/// executor: sections are placed in its module arena, written through it,
/// and called in it. The emulator is not `Send` (Unicorn keeps `Rc`s), so
/// it lives on its own thread, created there and never moved; every method
/// sends it a job and waits for the answer. A program that calls `exit`
/// or `abort` in the emulator ends this process the same way, as natively
/// run code would.
pub struct EmulatorExecutor {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<EmuJob>>,
    /// Held for the whole of a call: a call paused for a lazy compile
    /// keeps its registers and stack in the machine until it resumes.
    calls: std::sync::Mutex<()>,
    /// The emulator's interrupt flag, set from any thread.
    flag: std::sync::Arc<crate::emulate::FlagPage>,
}

type EmuJob = Box<dyn FnOnce(&mut crate::emulate::EmulatedAarch64) + Send>;

impl EmulatorExecutor {
    /// Starts an emulator with `config` on its own thread.
    pub fn new(config: crate::emulate::EmulatorConfig) -> Result<Self> {
        use std::sync::mpsc;
        let (jobs, rx) = mpsc::channel::<EmuJob>();
        type Ready = Result<std::sync::Arc<crate::emulate::FlagPage>>;
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
        std::thread::Builder::new()
            .name("kiln-emulator".into())
            .spawn(move || {
                let mut emu = match crate::emulate::EmulatedAarch64::new(config) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(emu.interrupt_flag()));
                // Ends when the executor (the only sender) is dropped.
                for job in rx {
                    job(&mut emu);
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the emulator thread: {e}")))?;
        let flag = ready_rx
            .recv()
            .map_err(|_| Error::Runtime("the emulator thread died".into()))??;
        Ok(EmulatorExecutor {
            jobs: std::sync::Mutex::new(jobs),
            calls: std::sync::Mutex::new(()),
            flag,
        })
    }

    /// Runs `f` on the emulator's thread and returns its result.
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::emulate::EmulatedAarch64) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let dead = || Error::Runtime("the emulator thread died".into());
        self.jobs
            .lock()
            .map_err(|_| dead())?
            .send(Box::new(move |emu| {
                let _ = tx.send(f(emu));
            }))
            .map_err(|_| dead())?;
        rx.recv().map_err(|_| dead())
    }

    /// Reads `len` bytes of emulated memory at `addr` (for tests and tools).
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.run(move |emu| {
            let mut buf = vec![0; len];
            emu.read(addr, &mut buf).map(|()| buf)
        })?
    }
}

impl Executor for EmulatorExecutor {
    fn name(&self) -> &str {
        "aarch64-emulator"
    }

    fn allocate_section(&self, kind: SectionKind, len: u64, align: u64) -> Result<Option<u64>> {
        self.run(move |emu| {
            if align > emu.page_size() {
                return Err(Error::Argument(format!(
                    "emulator: section alignment {align} exceeds the page size"
                )));
            }
            emu.map_new(len, kind).map(Some)
        })?
    }

    fn write_section(&self, section: TargetSection, bytes: &[u8]) -> Result<()> {
        let bytes = bytes.to_vec();
        self.run(move |emu| emu.write(section.address, &bytes))?
    }

    fn finalize_sections(&self, _sections: &[TargetSection]) -> Result<()> {
        // `map_new` maps each section with its final protection; the
        // loader's writes go around it.
        Ok(())
    }

    fn release_section(&self, section: TargetSection) -> Result<()> {
        self.run(move |emu| emu.unmap(section.address, section.len))?
    }

    unsafe fn call(&self, address: u64, sig: &Signature, args: &[Val]) -> Result<Option<Val>> {
        let no_resolver = |_: u32| -> Result<u64> {
            Err(Error::Runtime(
                "a lazy function was called without a resolver".into(),
            ))
        };
        // SAFETY: forwarded contract.
        unsafe { self.call_resolving(address, sig, args, &no_resolver) }
    }

    fn lazy_resolver(&self) -> Option<u64> {
        Some(crate::emulate::layout::LAZY_RESOLVER)
    }

    unsafe fn call_resolving(
        &self,
        address: u64,
        sig: &Signature,
        args: &[Val],
        resolve: &dyn Fn(u32) -> Result<u64>,
    ) -> Result<Option<Val>> {
        use crate::emulate::Outcome;
        let _one_call = self
            .calls
            .lock()
            .map_err(|_| Error::Runtime("the emulator's call lock is poisoned".into()))?;
        let (args, ret) = (args.to_vec(), sig.ret);
        let observed = |r: Result<crate::emulate::Outcome>| {
            if r.as_ref().err().and_then(Error::trap_code)
                == Some(crate::error::TrapCode::Interrupted)
            {
                // Calls run one at a time: this one observed the request.
                self.flag.set(false);
            }
            r
        };
        let mut outcome = observed(self.run(move |emu| emu.call(address, &args, ret))?)?;
        loop {
            match outcome {
                Outcome::Lazy { key, resume } => {
                    // Compiling writes sections through this executor's
                    // jobs, which run while the call is paused.
                    let target = resolve(key)?;
                    outcome = observed(self.run(move |emu| emu.resume(resume, target, ret))?)?;
                }
                Outcome::Returned(v) => return Ok(v),
                Outcome::Exit(code) => {
                    // SAFETY: fflush(NULL) is always valid.
                    unsafe { libc::fflush(std::ptr::null_mut()) };
                    std::process::exit(code)
                }
                Outcome::Abort => std::process::abort(),
            }
        }
    }

    fn host_symbol(&self, name: &str) -> Option<u64> {
        let name = name.to_string();
        self.run(move |emu| emu.host_address(&name)).ok()?
    }

    fn host_signature(&self, name: &str) -> Option<Signature> {
        let name = name.to_string();
        self.run(move |emu| emu.host_signature(&name)).ok()?
    }

    fn interrupt(&self) {
        self.flag.set(true);
    }
}
