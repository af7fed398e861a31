//! Seeing inside JIT code: line tables, IR-level trap backtraces, and the
//! registrations that let debuggers and profilers name kiln functions.
//!
//! - [`lines`]: per function, which machine-code offsets belong to which IR
//!   instruction (and so `.kir` line and column). Built on every compile;
//!   [`CompiledModule::lines`] carries them.
//! - [`DebugRegistry`] (one per engine): the code map from target addresses
//!   back to functions, filled when a module is finalized and emptied when
//!   it is removed. [`DebugRegistry::symbolize`] turns the code addresses an
//!   executor captured at a trap ([`crate::Trap::pcs`]) into the IR-level
//!   backtrace ([`backtrace`] captures them).
//! - For code that runs in this process ([`DebugRegistry::set_native`]),
//!   what [`DebugOptions`] asks for when a module is finalized: CFI
//!   registered with the system unwinder ([`unwind`], on by default), the
//!   perf map and jitdump file ([`perf`]), and an object registered with
//!   the GDB JIT interface ([`gdb`], [`elf`]). Registrations are undone
//!   when the module is removed or the engine dropped.
//!
//! Invariants: the code map holds exactly the functions of Finalized
//! modules, keyed by their target start address; address ranges never
//! overlap (the memory manager never hands out the same bytes twice while
//! a module is finalized).

pub mod backtrace;
pub mod elf;
pub mod gdb;
pub mod lines;
pub mod perf;
pub mod unwind;

use crate::compiled::CompiledModule;
use crate::error::{TrapFrame, MAX_BACKTRACE};
use crate::memory::FinalizedSection;
use crate::registry::ModuleId;
use lines::LineTable;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// What an engine tells debuggers and profilers about the code it
/// finalizes (only for code running in this process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugOptions {
    /// Register each module's CFI with the system unwinder ([`unwind`]),
    /// so that exceptions, `backtrace(3)` and debuggers walk through
    /// compiled frames. On by default.
    pub unwind: bool,
    /// Append each function to `/tmp/perf-PID.map` ([`perf`]).
    pub perf_map: bool,
    /// Write `jit-PID.dump` into this directory ([`perf`]).
    pub jitdump: Option<PathBuf>,
    /// Register each module with the GDB JIT interface ([`gdb`]).
    pub gdb: bool,
}

impl Default for DebugOptions {
    /// Unwind information only.
    fn default() -> Self {
        DebugOptions {
            unwind: true,
            perf_map: false,
            jitdump: None,
            gdb: false,
        }
    }
}

/// What was registered for one finalized module; dropping it undoes the
/// registrations.
#[derive(Default)]
struct ModuleRecord {
    /// The start addresses of its functions in the code map.
    starts: SmallVec<[u64; 2]>,
    frames: Option<unwind::FrameRegistration>,
    gdb: Option<gdb::GdbRegistration>,
}

/// The line table of one function of a [`CompiledModule`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionLines {
    /// Index of the function's symbol in [`CompiledModule::symbols`].
    pub symbol: usize,
    pub table: LineTable,
}

/// What the debug tools keep about one compiled function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// The IR name, without `@`.
    pub name: String,
    /// Offset of its first byte in the module's text section.
    pub offset: u64,
    /// Size of its code in bytes.
    pub size: u64,
    pub lines: LineTable,
}

/// The debug information of one compiled module, kept from compilation
/// until the module is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleDebug {
    /// The module's file name (what backtraces print).
    pub file: Arc<str>,
    pub funcs: Vec<FunctionInfo>,
}

impl ModuleDebug {
    /// Moves the line tables out of `cm` (a module compiled from file
    /// `file`), pairing each with its function's symbol.
    pub fn take(file: &str, cm: &mut CompiledModule) -> ModuleDebug {
        let funcs = std::mem::take(&mut cm.lines)
            .into_iter()
            .filter_map(|fl| {
                let s = cm.symbols.get(fl.symbol)?;
                Some(FunctionInfo {
                    name: s.name.clone(),
                    offset: s.offset,
                    size: s.size,
                    lines: fl.table,
                })
            })
            .collect();
        ModuleDebug {
            file: file.into(),
            funcs,
        }
    }
}

/// One function in the code map (its start is the key), kept small: a
/// finalized module may live for the whole process.
struct Mapped {
    end: u64,
    file: Arc<str>,
    /// The name (`name_len` bytes), then the encoded line table.
    data: Box<[u8]>,
    name_len: u32,
}

impl Mapped {
    fn name(&self) -> &str {
        std::str::from_utf8(&self.data[..self.name_len as usize]).unwrap_or("?")
    }

    fn lines(&self) -> &[u8] {
        &self.data[self.name_len as usize..]
    }
}

/// The debug state of one engine: the code map of its finalized modules
/// and what [`DebugOptions`] registered for them.
#[derive(Default)]
pub struct DebugRegistry {
    /// Start address → function.
    map: BTreeMap<u64, Mapped>,
    /// Per finalized module: its functions and registrations.
    modules: HashMap<ModuleId, ModuleRecord>,
    options: DebugOptions,
    /// Code runs in this process at its target address.
    native: bool,
    /// The first error a registration met after its options were
    /// accepted (a full disk, say); finalizing goes on without it.
    deferred_error: Option<String>,
}

impl DebugRegistry {
    /// An empty registry.
    pub fn new() -> DebugRegistry {
        DebugRegistry::default()
    }

    /// Says whether finalized code runs in this process at its target
    /// address (the in-process executor); only then do the options apply.
    pub fn set_native(&mut self, native: bool) {
        self.native = native;
    }

    /// Whether finalized code runs in this process ([`Self::set_native`]).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// Uses `options` for modules finalized from now on. Files are opened
    /// (or created) here, so that a path that cannot be written is an
    /// error now rather than a silent loss later.
    pub fn set_options(&mut self, options: DebugOptions) -> crate::error::Result<()> {
        if self.native {
            if options.perf_map {
                perf::perf_map_add(&[])?;
            }
            if let Some(dir) = &options.jitdump {
                perf::jitdump_add(dir, &[])?;
            }
        }
        self.options = options;
        Ok(())
    }

    /// The options in use.
    pub fn options(&self) -> &DebugOptions {
        &self.options
    }

    /// The first error a profiler or debugger registration met since the
    /// options were set, if any.
    pub fn deferred_error(&self) -> Option<&str> {
        self.deferred_error.as_deref()
    }

    /// Module `id` was finalized with its code in `text`.
    pub fn module_finalized(&mut self, id: ModuleId, debug: ModuleDebug, text: &FinalizedSection) {
        let text_address = text.target_address();
        let mut record = ModuleRecord::default();
        if self.native {
            if let Some(code) = text.bytes() {
                if let Err(e) = self.announce(&debug, text_address, code) {
                    self.deferred_error.get_or_insert(e.to_string());
                }
                self.register(&debug, text_address, code, &mut record);
            }
        }
        let mut starts = SmallVec::with_capacity(debug.funcs.len());
        for f in debug.funcs {
            let start = text_address.wrapping_add(f.offset);
            starts.push(start);
            let mut data = Vec::with_capacity(f.name.len() + f.lines.encoded_len());
            data.extend_from_slice(f.name.as_bytes());
            data.extend_from_slice(f.lines.as_bytes());
            self.map.insert(
                start,
                Mapped {
                    end: start.wrapping_add(f.size),
                    file: debug.file.clone(),
                    name_len: f.name.len() as u32,
                    data: data.into_boxed_slice(),
                },
            );
        }
        record.starts = starts;
        self.modules.insert(id, record);
    }

    /// Registers the CFI and the GDB object of a module whose text
    /// (`code`) is at `base`, as the options ask.
    fn register(&self, debug: &ModuleDebug, base: u64, code: &[u8], record: &mut ModuleRecord) {
        let Some(isa) = unwind::UnwindIsa::host() else {
            return;
        };
        if !self.options.unwind && !self.options.gdb {
            return;
        }
        let funcs: Vec<unwind::UnwindFunc<'_>> = debug
            .funcs
            .iter()
            .filter_map(|f| {
                Some(unwind::UnwindFunc {
                    address: base.wrapping_add(f.offset),
                    code: code.get(f.offset as usize..(f.offset + f.size) as usize)?,
                })
            })
            .collect();
        if self.options.unwind && !funcs.is_empty() {
            record.frames = Some(unwind::FrameRegistration::register(unwind::eh_frame(
                isa, &funcs,
            )));
        }
        if self.options.gdb {
            let file = source_path(&debug.file);
            let comp_dir = std::env::current_dir()
                .ok()
                .and_then(|d| d.to_str().map(str::to_string))
                .unwrap_or_default();
            let objects: Vec<elf::ObjectFunc<'_>> = debug
                .funcs
                .iter()
                .zip(&funcs)
                .map(|(f, u)| elf::ObjectFunc {
                    name: &f.name,
                    address: u.address,
                    code: u.code,
                    lines: &f.lines,
                    line: f.lines.iter().next().map_or(0, |(_, l)| l.line),
                })
                .collect();
            let object = elf::object(&elf::ObjectInfo {
                isa,
                file: &file,
                comp_dir: &comp_dir,
                text_address: base,
                text_size: code.len() as u64,
                funcs: &objects,
            });
            record.gdb = Some(gdb::GdbRegistration::register(object));
        }
    }

    /// Writes the perf map and jitdump records of a module whose text
    /// (`code`) is at `base`.
    fn announce(&self, debug: &ModuleDebug, base: u64, code: &[u8]) -> crate::error::Result<()> {
        if !self.options.perf_map && self.options.jitdump.is_none() {
            return Ok(());
        }
        let lines: Vec<Vec<(u64, u32)>> = debug
            .funcs
            .iter()
            .map(|f| {
                let start = base.wrapping_add(f.offset);
                f.lines
                    .iter()
                    .map(|(o, loc)| (start.wrapping_add(o as u64), loc.line))
                    .collect()
            })
            .collect();
        let file = source_path(&debug.file);
        let loads: Vec<perf::CodeLoad<'_>> = debug
            .funcs
            .iter()
            .zip(&lines)
            .filter_map(|(f, lines)| {
                let bytes = code.get(f.offset as usize..(f.offset + f.size) as usize)?;
                Some(perf::CodeLoad {
                    name: &f.name,
                    address: base.wrapping_add(f.offset),
                    code: bytes,
                    lines,
                    file: &file,
                })
            })
            .collect();
        if self.options.perf_map {
            perf::perf_map_add(&loads)?;
        }
        if let Some(dir) = &self.options.jitdump {
            perf::jitdump_add(dir, &loads)?;
        }
        Ok(())
    }

    /// Module `id` was removed: its functions leave the map and its
    /// registrations are undone.
    pub fn module_removed(&mut self, id: ModuleId) {
        if let Some(record) = self.modules.remove(&id) {
            for start in &record.starts {
                self.map.remove(start);
            }
        }
    }

    /// The function whose code contains target address `pc`, and its
    /// start.
    fn find(&self, pc: u64) -> Option<(u64, &Mapped)> {
        let (&start, m) = self.map.range(..=pc).next_back()?;
        (pc < m.end).then_some((start, m))
    }

    /// The frame of the instruction containing `pc`.
    pub fn frame(&self, pc: u64) -> Option<TrapFrame> {
        let (start, m) = self.find(pc)?;
        let offset = u32::try_from(pc - start).ok()?;
        Some(TrapFrame {
            function: m.name().to_string(),
            file: m.file.to_string(),
            loc: lines::lookup_encoded(m.lines(), offset),
        })
    }

    /// The IR-level backtrace of return addresses `pcs` (innermost first;
    /// the first is the return address of the trap site's call into the
    /// trap handler): each looked up one byte before, inside the call.
    /// Addresses outside compiled code (host functions) are left out.
    pub fn symbolize(&self, pcs: &[u64]) -> Vec<TrapFrame> {
        pcs.iter()
            .take(MAX_BACKTRACE)
            .filter_map(|&pc| self.frame(pc.wrapping_sub(1)))
            .collect()
    }
}

/// Registers the call trampoline of an in-process executor (code of the
/// host ISA at `address`) with the system unwinder and, as
/// `kiln_call_trampoline`, with the GDB JIT interface: walks from compiled
/// code then go on into the Rust code that made the call.
pub fn register_trampoline(
    isa: unwind::UnwindIsa,
    address: u64,
    code: &[u8],
) -> (unwind::FrameRegistration, gdb::GdbRegistration) {
    let f = unwind::UnwindFunc { address, code };
    let frames = unwind::FrameRegistration::register(unwind::eh_frame(isa, &[f]));
    let lines = LineTable::default();
    let object = elf::object(&elf::ObjectInfo {
        isa,
        file: "<kiln>",
        comp_dir: "",
        text_address: address,
        text_size: code.len() as u64,
        funcs: &[elf::ObjectFunc {
            name: "kiln_call_trampoline",
            address,
            code,
            lines: &lines,
            line: 0,
        }],
    });
    (frames, gdb::GdbRegistration::register(object))
}

/// The absolute path of source file `file` when it exists (profilers and
/// debuggers run elsewhere), else `file` as it is.
fn source_path(file: &str) -> String {
    std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| file.to_string())
}
