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
use std::collections::BTreeMap;
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

/// What the debug registry keeps of one finalized module with code, and
/// what it registered for it; dropping it undoes the registrations. Kept
/// small (40 bytes and one buffer): an engine may hold many thousands of
/// one-function modules (a REPL session).
struct ModuleRecord {
    /// Target address of the module's text (its key in the code map).
    start: u64,
    /// Length of the text in bytes.
    len: u32,
    /// Bytes at the start of `data` that are a `.eh_frame` table registered
    /// with the system unwinder while this record lives (0: none).
    frames: u32,
    /// The registered `.eh_frame` (`frames` bytes), then the module's file
    /// name and its functions (see [`ModuleRecord::pack`]).
    data: Box<[u8]>,
    /// Held to stay registered with the GDB JIT interface.
    _gdb: Option<Box<gdb::GdbRegistration>>,
}

/// One function of a [`ModuleRecord`], as read back.
struct RecordFunc<'a> {
    name: &'a str,
    /// Offset in the module's text.
    offset: u64,
    size: u64,
    /// The encoded line table ([`lines::lookup_encoded`]).
    lines: &'a [u8],
}

impl ModuleRecord {
    /// Appends `debug`'s file name and functions to `out` (after the
    /// `.eh_frame`, if any): ULEB128 length and bytes of the file name,
    /// then per function ULEB128 offset, size, name length, the name, line
    /// table length, the table.
    fn pack(debug: &ModuleDebug, out: &mut Vec<u8>) {
        let file = debug.file.as_bytes();
        out.reserve_exact(Self::packed_len(debug));
        lines::write_uleb(out, file.len() as u64);
        out.extend_from_slice(file);
        for f in &debug.funcs {
            lines::write_uleb(out, f.offset);
            lines::write_uleb(out, f.size);
            lines::write_uleb(out, f.name.len() as u64);
            out.extend_from_slice(f.name.as_bytes());
            let table = f.lines.as_bytes();
            lines::write_uleb(out, table.len() as u64);
            out.extend_from_slice(table);
        }
    }

    /// At least the bytes [`ModuleRecord::pack`] appends.
    fn packed_len(debug: &ModuleDebug) -> usize {
        let funcs: usize = debug
            .funcs
            .iter()
            .map(|f| 16 + f.name.len() + f.lines.encoded_len())
            .sum();
        5 + debug.file.len() + funcs
    }

    /// The file name and the functions (see [`ModuleRecord::pack`]).
    fn unpack(&self) -> (&str, impl Iterator<Item = RecordFunc<'_>>) {
        let mut at = self.data.get(self.frames as usize..).unwrap_or(&[]);
        let file = read_bytes(&mut at).unwrap_or(&[]);
        let funcs = std::iter::from_fn(move || {
            if at.is_empty() {
                return None;
            }
            let offset = lines::read_uleb(&mut at)?;
            let size = lines::read_uleb(&mut at)?;
            let name = read_bytes(&mut at)?;
            let lines = read_bytes(&mut at)?;
            Some(RecordFunc {
                name: std::str::from_utf8(name).unwrap_or("?"),
                offset,
                size,
                lines,
            })
        });
        (std::str::from_utf8(file).unwrap_or("?"), funcs)
    }
}

/// A ULEB128 length and that many bytes, from the front of `at`.
fn read_bytes<'a>(at: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(lines::read_uleb(at)?).ok()?;
    let (bytes, rest) = (at.get(..n)?, at.get(n..)?);
    *at = rest;
    Some(bytes)
}

impl Drop for ModuleRecord {
    fn drop(&mut self) {
        if self.frames > 0 {
            // SAFETY: `module_finalized` registered the table at the start
            // of `data` (and set `frames`) only when `register_table`
            // returned true; `data` has not moved or changed since.
            unsafe { unwind::deregister_table(self.data.as_ptr()) };
        }
    }
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
        ModuleDebug::take_shared(file.into(), cm)
    }

    /// [`ModuleDebug::take`] with the file name already shared.
    pub fn take_shared(file: Arc<str>, cm: &mut CompiledModule) -> ModuleDebug {
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
        ModuleDebug { file, funcs }
    }
}

/// The debug state of one engine: the code map of its finalized modules
/// and what [`DebugOptions`] registered for them.
#[derive(Default)]
pub struct DebugRegistry {
    /// Text start address → registry slot of the module (its record).
    map: BTreeMap<u64, u32>,
    /// Per registry slot: the record of the finalized module there, if it
    /// has code.
    records: Vec<Option<ModuleRecord>>,
    options: DebugOptions,
    /// Code runs in this process at its target address.
    native: bool,
    /// The first error a registration met after its options were
    /// accepted (a full disk, say); finalizing goes on without it.
    deferred_error: Option<String>,
}

impl Drop for DebugRegistry {
    /// Undoes the registrations newest first: the system unwinder keeps
    /// its tables in lists that start with the newest (or the highest
    /// addresses), so each deregistration finds its table at once instead
    /// of walking past all the others (quadratic in the module count).
    fn drop(&mut self) {
        while let Some(record) = self.records.pop() {
            drop(record);
        }
    }
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
        let start = text.target_address();
        let mut data = Vec::with_capacity(
            unwind::eh_frame_capacity(debug.funcs.len()) + ModuleRecord::packed_len(&debug),
        );
        let mut gdb = None;
        if self.native {
            if let Some(code) = text.bytes() {
                if let Err(e) = self.announce(&debug, start, code) {
                    self.deferred_error.get_or_insert(e.to_string());
                }
                gdb = self.register(&debug, start, code, &mut data);
            }
        }
        let eh_frame = data.len();
        ModuleRecord::pack(&debug, &mut data);
        let data = data.into_boxed_slice();
        // SAFETY: the first `eh_frame` bytes of `data` are the
        // zero-terminated `.eh_frame` of this module's code (from
        // `register`); the boxed slice keeps them at this address,
        // unchanged, until the record's `drop` deregisters them.
        let registered = eh_frame > 0 && unsafe { unwind::register_table(data.as_ptr()) };
        let record = ModuleRecord {
            start,
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
            frames: if registered { eh_frame as u32 } else { 0 },
            data,
            _gdb: gdb.map(Box::new),
        };
        let slot = id.slot() as usize;
        if self.records.len() <= slot {
            self.records.resize_with(slot + 1, || None);
        }
        if let Some(old) = self.records[slot].replace(record) {
            if self.map.get(&old.start) == Some(&(slot as u32)) {
                self.map.remove(&old.start);
            }
        }
        self.map.insert(start, slot as u32);
    }

    /// Writes the `.eh_frame` of a module whose text (`code`) is at `base`
    /// to `eh_frame` (for the caller to register, as the options ask) and
    /// registers its GDB object.
    fn register(
        &self,
        debug: &ModuleDebug,
        base: u64,
        code: &[u8],
        eh_frame: &mut Vec<u8>,
    ) -> Option<gdb::GdbRegistration> {
        let isa = unwind::UnwindIsa::host()?;
        if !self.options.unwind && !self.options.gdb {
            return None;
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
            unwind::eh_frame_into(isa, &funcs, eh_frame);
        }
        if !self.options.gdb {
            return None;
        }
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
        Some(gdb::GdbRegistration::register(object))
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
        if let Some(record) = self
            .records
            .get_mut(id.slot() as usize)
            .and_then(Option::take)
        {
            if self.map.get(&record.start) == Some(&id.slot()) {
                self.map.remove(&record.start);
            }
        }
    }

    /// The frame of the instruction containing `pc`.
    pub fn frame(&self, pc: u64) -> Option<TrapFrame> {
        let (&start, &slot) = self.map.range(..=pc).next_back()?;
        let record = self.records.get(slot as usize)?.as_ref()?;
        let at = pc - start;
        if at >= u64::from(record.len) {
            return None;
        }
        let (file, mut funcs) = record.unpack();
        let f = funcs.find(|f| f.offset <= at && at - f.offset < f.size)?;
        let offset = u32::try_from(at - f.offset).ok()?;
        Some(TrapFrame {
            function: f.name.to_string(),
            file: file.to_string(),
            loc: lines::lookup_encoded(f.lines, offset),
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
