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
//!
//! Compact, because an engine may hold many thousands of one-function
//! modules (a REPL session): a module's record is one allocation (its
//! FDEs, then its packed functions) in a *bucket* of the modules whose
//! text starts in the same 4 KiB of addresses. The FDEs point at one
//! process-wide CIE ([`unwind::shared_cie`]), and a bucket's tables are
//! registered with the system unwinder as one object (re-registered when
//! a module comes or goes), so libgcc keeps one object per bucket rather
//! than per module. Buckets cover disjoint address ranges (a module
//! belongs to the bucket of its start address, and modules never
//! overlap), which libgcc's lookup requires of its objects. A record's
//! bytes never move while it lives: an unwinder on another thread may be
//! reading its FDE at any time (only the bucket's array of pointers is
//! rebuilt, while deregistered).

pub mod backtrace;
pub mod elf;
pub mod gdb;
pub mod lines;
pub mod perf;
pub mod unwind;

use crate::compiled::CompiledModule;
use crate::error::{TrapFrame, MAX_BACKTRACE};
use crate::memory::FinalizedSection;
use lines::LineTable;
use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::ptr::NonNull;
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

/// What the debug registry keeps of one finalized module with code (16
/// bytes in its bucket and one buffer).
struct ModuleRecord {
    /// The `.eh_frame` table (if `frames`), then the module's file name
    /// and its functions (see [`ModuleRecord::pack`]).
    data: RecordBytes,
    /// Length of the text in bytes.
    len: u32,
    /// Target address of the module's text less its bucket's first
    /// address.
    offset: u16,
}

/// A record's bytes in one allocation behind one pointer (a `Box<[u8]>`
/// takes two; a REPL session keeps tens of thousands of records): the
/// `.eh_frame` table, if any (its entries' length words say where it
/// ends), then the ULEB128 length of the rest, then the rest. The
/// allocation is 8-aligned, as the unwinder reads the table's entries;
/// the pointer's low bit says whether the table is there, the next one
/// whether the allocation is a `Box<[u8]>` (a large record's build
/// buffer, taken over: [`RecordBytes::take`]) rather than one of
/// [`RecordBytes::layout`].
struct RecordBytes(NonNull<u8>);

/// The bit of [`RecordBytes`]' pointer that says it starts with a table.
const HAS_TABLE: usize = 1;
/// The bit of [`RecordBytes`]' pointer that says its allocation is a
/// `Box<[u8]>`'s.
const BOXED: usize = 2;
/// Bytes left for the ULEB128 length of a record's rest in its build
/// buffer (zero-padded: `0x80` continuation bytes), so that a large one
/// can be taken over as it is ([`RecordBytes::take`]); rests of up to
/// 2^35 bytes.
const LEN_ROOM: usize = 5;
/// Records of at least this many bytes keep their build buffer instead of
/// being copied to an exact one (a copy of a large record costs a page
/// fault per 4 KiB beside the copying; the build buffer's unused end is
/// given back by shrinking it, and at this size a hole left in the heap
/// does not matter).
const TAKE_BYTES: usize = 1 << 14;

// SAFETY: `RecordBytes` owns its allocation (like a `Box<[u8]>`): nothing
// else points into it but the unwinder's registration, which only reads.
unsafe impl Send for RecordBytes {}
// SAFETY: as for `Send`; `&RecordBytes` only reads.
unsafe impl Sync for RecordBytes {}

impl RecordBytes {
    /// The table `eh` (a zero-terminated `.eh_frame` table of entries, or
    /// empty) and `rest`.
    fn new(eh: &[u8], rest: &[u8]) -> RecordBytes {
        let (mut buf, mut k, mut n) = ([0u8; 10], 0, rest.len());
        loop {
            buf[k] = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                k += 1;
                break;
            }
            buf[k] |= 0x80;
            k += 1;
        }
        let layout = Self::layout(eh.len() + k + rest.len());
        // SAFETY: the layout's size is at least 1 (the length byte).
        let Some(p) = NonNull::new(unsafe { std::alloc::alloc(layout) }) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `p` is valid for writes of all three parts, which do not
        // overlap a new allocation.
        unsafe {
            let p = p.as_ptr();
            std::ptr::copy_nonoverlapping(eh.as_ptr(), p, eh.len());
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(eh.len()), k);
            std::ptr::copy_nonoverlapping(rest.as_ptr(), p.add(eh.len() + k), rest.len());
        }
        let tag = if eh.is_empty() { 0 } else { HAS_TABLE };
        RecordBytes(p.map_addr(|a| a | tag))
    }

    /// The record built in `buf`: the table (`frames` bytes, possibly
    /// none), [`LEN_ROOM`] bytes for the rest's length, then the rest.
    /// The buffer itself becomes the record (shrunk to its length) unless
    /// its allocation is not 8-aligned or the rest is too long for the
    /// room; then it is copied.
    fn take(mut buf: Vec<u8>, frames: usize) -> RecordBytes {
        let n = buf.len() - frames - LEN_ROOM;
        if n >> (7 * LEN_ROOM) != 0 {
            return RecordBytes::new(&buf[..frames], &buf[frames + LEN_ROOM..]);
        }
        for (i, b) in buf[frames..frames + LEN_ROOM].iter_mut().enumerate() {
            let more = if i + 1 < LEN_ROOM { 0x80 } else { 0 };
            *b = ((n >> (7 * i)) & 0x7f) as u8 | more;
        }
        let len = buf.len();
        let p = Box::into_raw(buf.into_boxed_slice()).cast::<u8>();
        if p.addr() % 8 != 0 {
            // SAFETY: `p` is the boxed slice of `len` bytes just leaked.
            let b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) };
            return RecordBytes::new(&b[..frames], &b[frames + LEN_ROOM..]);
        }
        let tag = BOXED | if frames == 0 { 0 } else { HAS_TABLE };
        // A boxed slice's pointer is never null (`len` is at least
        // `LEN_ROOM`, so it is a real allocation).
        let p = NonNull::new(p).expect("a boxed slice's pointer is not null");
        RecordBytes(p.map_addr(|a| a | tag))
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, 8).expect("a debug record is smaller than the address space")
    }

    fn base(&self) -> *mut u8 {
        self.0.as_ptr().map_addr(|a| a & !(HAS_TABLE | BOXED))
    }

    /// Bytes of the `.eh_frame` table (with its terminator), and where
    /// the rest starts and its length.
    fn split(&self) -> (usize, usize, usize) {
        let p = self.base();
        let mut at = 0;
        if self.0.as_ptr().addr() & HAS_TABLE != 0 {
            loop {
                // SAFETY: `new` wrote a table of entries here, each a
                // 4-byte length and that many bytes, ended by a 0 length,
                // all inside the allocation; entries are 4-aligned.
                let len = unsafe { p.add(at).cast::<u32>().read() } as usize;
                at += 4;
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
        let (mut n, mut shift, mut k) = (0usize, 0, 0);
        loop {
            // SAFETY: `new` wrote a complete ULEB128 number after the
            // table, inside the allocation.
            let b = unsafe { p.add(at + k).read() };
            k += 1;
            n |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        (at, at + k, n)
    }

    /// The `.eh_frame` table (empty if there is none).
    fn table(&self) -> &[u8] {
        let (eh, _, _) = self.split();
        // SAFETY: `new` initialized these bytes; they live as long as
        // `self`, and `&self` keeps them from being written.
        unsafe { std::slice::from_raw_parts(self.base(), eh) }
    }

    /// [`RecordBytes::table`], to patch before it is registered.
    fn table_mut(&mut self) -> &mut [u8] {
        let (eh, _, _) = self.split();
        // SAFETY: as for `table`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.base(), eh) }
    }

    /// The bytes after the table.
    fn rest(&self) -> &[u8] {
        let (_, at, n) = self.split();
        // SAFETY: as for `table`.
        unsafe { std::slice::from_raw_parts(self.base().add(at), n) }
    }
}

impl Drop for RecordBytes {
    fn drop(&mut self) {
        let (_, at, n) = self.split();
        if self.0.as_ptr().addr() & BOXED != 0 {
            // SAFETY: `take` leaked a boxed slice of this length (what
            // `split` reads back from its bytes) here; freed only here.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base(), at + n)) });
            return;
        }
        // SAFETY: `new` allocated this block with this layout (its size
        // is what `split` reads back from the bytes `new` wrote), and it
        // is freed only here.
        unsafe { std::alloc::dealloc(self.base(), Self::layout(at + n)) }
    }
}

/// From this many functions on, a module's `.eh_frame` table carries its
/// own CIE instead of pointing at the shared one (24 bytes beside 32 or
/// more per function; such a record is large enough for the allocator to
/// map it apart, out of the shared CIE's 2 GiB reach, and the table would
/// otherwise be built twice).
const OWN_CIE_FUNCS: usize = 64;

/// The modules whose text starts in one 4 KiB of target addresses.
struct Bucket {
    /// In start order.
    records: Vec<ModuleRecord>,
    /// The address of the `.eh_frame` table of each record that has one
    /// (in record order), then 0: the array libgcc reads while the bucket
    /// is registered. Empty when no record has a table. Kept up to date
    /// as records come and go (never while registered).
    tables: Vec<usize>,
    /// libgcc's object for the registration (boxed: it must not move while
    /// registered, and buckets move inside the map).
    object: Box<[u64; unwind::OBJECT_WORDS]>,
    registered: bool,
}

/// The scratch buffer a new [`DebugRegistry`] has: a record of a few
/// functions (FDEs of about 40 bytes each, names and line tables).
const FIRST_RECORD_BYTES: usize = 512;

/// At most this many file names are shared ([`DebugRegistry::files`]).
const MAX_FILES: usize = 64;

/// Buckets are keyed by the text start address shifted by this.
const BUCKET_BITS: u32 = 12;

/// Grows `v` by a quarter when full, not doubled: most buckets stay.
fn reserve_quarter<T>(v: &mut Vec<T>) {
    let len = v.len();
    if len == v.capacity() {
        v.reserve_exact((len / 4).max(4));
    }
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            records: Vec::new(),
            tables: Vec::new(),
            object: Box::new([0; unwind::OBJECT_WORDS]),
            registered: false,
        }
    }

    /// Takes the bucket's tables from the system unwinder (before its
    /// records change).
    fn deregister(&mut self) {
        if std::mem::take(&mut self.registered) {
            // SAFETY: `register` registered this array (at this address:
            // `tables` has not changed since) and nothing deregistered it.
            unsafe { unwind::deregister_tables(self.tables.as_ptr()) };
        }
    }

    /// Registers the tables of the current records (after
    /// [`Bucket::deregister`]).
    fn register(&mut self) {
        if self.tables.len() < 2 {
            return;
        }
        // SAFETY: each pointer is a record's zero-terminated `.eh_frame`
        // table of code in this process (`module_finalized` built it and
        // pointed its FDEs at a CIE that lives as long as the process, or
        // at its own); records' bytes never move or change while they
        // live, and every change to `records` or `tables` deregisters
        // first. `object` is boxed and kept until then too.
        self.registered =
            unsafe { unwind::register_tables(self.tables.as_ptr(), &mut self.object) };
    }

    /// Where the table pointer of record `i` goes in `tables`: after those
    /// of the records before it that have one.
    fn table_index(&self, i: usize) -> usize {
        if self.tables.len() == self.records.len() + 1 {
            // Every record has a table (the usual case).
            return i;
        }
        self.records[..i].iter().filter(|r| r.frames()).count()
    }

    /// Puts `record` at index `i` (replacing the record there when
    /// `replace`); the bucket must be deregistered.
    fn put(&mut self, i: usize, record: ModuleRecord, replace: bool) {
        debug_assert!(!self.registered);
        if replace {
            self.take(i);
        }
        if record.frames() {
            let t = self.table_index(i);
            if self.tables.is_empty() {
                self.tables.push(0);
            }
            reserve_quarter(&mut self.tables);
            self.tables.insert(t, record.data.table().as_ptr() as usize);
        }
        reserve_quarter(&mut self.records);
        self.records.insert(i, record);
    }

    /// Removes record `i`; the bucket must be deregistered.
    fn take(&mut self, i: usize) {
        debug_assert!(!self.registered);
        if self.records[i].frames() {
            let t = self.table_index(i);
            self.tables.remove(t);
            if self.tables.len() == 1 {
                self.tables = Vec::new();
            }
        }
        self.records.remove(i);
    }

    /// The record starting `offset` bytes into the bucket, or where it
    /// would go.
    fn find(&self, offset: u16) -> std::result::Result<usize, usize> {
        self.records.binary_search_by_key(&offset, |r| r.offset)
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// One function of a [`ModuleRecord`], as read back.
struct RecordFunc<'a> {
    name: &'a str,
    /// Offset in the module's text.
    offset: u64,
    size: u64,
    /// The line table.
    lines: lines::StoredTable<'a>,
}

impl ModuleRecord {
    /// Appends `debug`'s file name and functions to `out` (after the
    /// `.eh_frame`, if any): the file as a ULEB128 tag, `2 * i + 1` for
    /// the registry's shared file name `i` (`interned`), else `2 * length`
    /// and the name's bytes; then per function ULEB128 offset, size, name
    /// length, the name, then the line table
    /// ([`lines::LineTable::write_stored`]).
    fn pack(debug: &ModuleDebug, names: Names<'_>, interned: Option<usize>, out: &mut Vec<u8>) {
        let file = debug.file.as_bytes();
        out.reserve_exact(Self::packed_len(debug, names));
        match interned {
            Some(i) => lines::write_uleb(out, 2 * i as u64 + 1),
            None => {
                lines::write_uleb(out, 2 * file.len() as u64);
                out.extend_from_slice(file);
            }
        }
        for f in &debug.funcs {
            lines::write_uleb(out, f.offset);
            lines::write_uleb(out, f.size);
            let name = names(f.symbol);
            lines::write_uleb(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            f.table.write_stored(out);
        }
    }

    /// At least the bytes [`ModuleRecord::pack`] appends.
    fn packed_len(debug: &ModuleDebug, names: Names<'_>) -> usize {
        let funcs: usize = debug
            .funcs
            .iter()
            .map(|f| 16 + names(f.symbol).len() + f.table.stored_len())
            .sum();
        5 + debug.file.len() + funcs
    }

    /// Whether the record starts with a zero-terminated `.eh_frame`
    /// table, registered with the system unwinder through its bucket
    /// while the record lives.
    fn frames(&self) -> bool {
        self.data.0.as_ptr().addr() & HAS_TABLE != 0
    }

    /// The file name (interned in `files`, or in the record) and the
    /// functions (see [`ModuleRecord::pack`]).
    fn unpack<'a>(
        &'a self,
        files: &'a [Arc<str>],
    ) -> (&'a str, impl Iterator<Item = RecordFunc<'a>>) {
        let mut at = self.data.rest();
        let tag = lines::read_uleb(&mut at).unwrap_or(0);
        let file = match usize::try_from(tag / 2) {
            Ok(i) if tag % 2 == 1 => files.get(i).map_or(&b"?"[..], |f| f.as_bytes()),
            Ok(n) => {
                let (name, rest) = at.split_at(n.min(at.len()));
                at = rest;
                name
            }
            Err(_) => &[],
        };
        let funcs = std::iter::from_fn(move || {
            if at.is_empty() {
                return None;
            }
            let offset = lines::read_uleb(&mut at)?;
            let size = lines::read_uleb(&mut at)?;
            let name = read_bytes(&mut at)?;
            let lines = lines::StoredTable::read(&mut at)?;
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

/// One function of a [`CompiledModule`]: where its code is and its line
/// table; what the debug tools keep of it until it is finalized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionLines {
    /// Index of the function's symbol in [`CompiledModule::symbols`] (its
    /// name is looked up when the module is finalized: see
    /// [`DebugRegistry::module_finalized`]; not copied per function).
    pub symbol: usize,
    /// Offset of its first byte in the module's text section.
    pub offset: u64,
    /// Size of its code in bytes.
    pub size: u64,
    pub table: LineTable,
}

/// A module's function names by [`FunctionLines::symbol`] (the loader's
/// name list, which holds them anyway).
pub type Names<'a> = &'a dyn Fn(usize) -> &'a str;

/// The debug information of one compiled module, kept from compilation
/// until the module is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleDebug {
    /// The module's file name (what backtraces print).
    pub file: Arc<str>,
    pub funcs: Vec<FunctionLines>,
}

impl ModuleDebug {
    /// Moves the functions' line tables out of `cm` (a module compiled
    /// from file `file`).
    pub fn take(file: &str, cm: &mut CompiledModule) -> ModuleDebug {
        ModuleDebug::take_shared(file.into(), cm)
    }

    /// [`ModuleDebug::take`] with the file name already shared.
    pub fn take_shared(file: Arc<str>, cm: &mut CompiledModule) -> ModuleDebug {
        let funcs = std::mem::take(&mut cm.lines);
        ModuleDebug { file, funcs }
    }
}

/// The debug state of one engine: the code map of its finalized modules
/// and what [`DebugOptions`] registered for them.
#[derive(Default)]
pub struct DebugRegistry {
    /// The records, by text start address >> [`BUCKET_BITS`].
    buckets: BTreeMap<u64, Bucket>,
    /// GDB JIT registrations, by text start address (only when asked).
    gdb: HashMap<u64, gdb::GdbRegistration>,
    /// Where a record is built before it is copied out.
    scratch: Vec<u8>,
    /// File names records share instead of each holding its own (a REPL
    /// session's thousands of `<stdin>` items): a name is added when two
    /// modules in a row come from it, up to [`MAX_FILES`], and stays.
    files: Vec<Arc<str>>,
    /// The file of the last module finalized with its name in its record.
    last_file: Option<Arc<str>>,
    options: DebugOptions,
    /// Code runs in this process at its target address.
    native: bool,
    /// The first error a registration met after its options were
    /// accepted (a full disk, say); finalizing goes on without it.
    deferred_error: Option<String>,
    /// Tables built a second time, with a CIE of their own, because the
    /// CIE their FDEs named was out of reach (see [`OWN_CIE_FUNCS`]).
    rebuilt_tables: usize,
}

impl Drop for DebugRegistry {
    /// Undoes the registrations highest addresses first: the system
    /// unwinder keeps its objects in lists that start with the newest (or
    /// the highest addresses), so each deregistration finds its object
    /// early.
    fn drop(&mut self) {
        while let Some((_, bucket)) = self.buckets.pop_last() {
            drop(bucket);
        }
    }
}

impl DebugRegistry {
    /// An empty registry, its scratch buffer sized for a first small
    /// module's record (512 bytes: a fresh engine's first module then
    /// allocates no buffer to build it in).
    pub fn new() -> DebugRegistry {
        let mut d = DebugRegistry::default();
        d.scratch.reserve_exact(FIRST_RECORD_BYTES);
        d
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

    /// A module was finalized with its code in `text`; `names` gives the
    /// name of each function by its [`FunctionLines::symbol`].
    pub fn module_finalized(
        &mut self,
        debug: ModuleDebug,
        names: Names<'_>,
        text: &FinalizedSection,
    ) {
        let start = text.target_address();
        // Built in the scratch buffer, then copied into one allocation of
        // its exact size (shrinking a larger one in place would leave a
        // hole in the heap beside every record); a large one keeps the
        // buffer ([`TAKE_BYTES`]).
        let mut data = std::mem::take(&mut self.scratch);
        data.clear();
        // Room for the FDEs (about 40 bytes each) and the packed record at
        // once: a fresh engine's buffer grows once, not once per part.
        data.reserve(
            debug.funcs.len() * 48 + 4 + LEN_ROOM + ModuleRecord::packed_len(&debug, names),
        );
        let mut gdb = None;
        let isa = unwind::UnwindIsa::host();
        // A large table starts with a CIE of its own (a copy of the shared
        // one): its allocation is likely mapped out of the shared CIE's
        // reach, and the copy is no cost beside its FDEs.
        let mut own_cie = match isa {
            Some(isa) if self.native && debug.funcs.len() >= OWN_CIE_FUNCS => {
                data.extend_from_slice(unwind::shared_cie(isa));
                data.len()
            }
            _ => 0,
        };
        if self.native {
            if let Some(code) = text.bytes() {
                if let Err(e) = self.announce(&debug, names, start, code) {
                    self.deferred_error.get_or_insert(e.to_string());
                }
                gdb = self.register(&debug, names, start, code, &mut data);
            }
        }
        if data.len() == own_cie {
            // No FDEs were written: no table, no CIE.
            data.clear();
            own_cie = 0;
        }
        let frames = data.len();
        data.resize(frames + LEN_ROOM, 0);
        let interned = self.intern(&debug.file);
        ModuleRecord::pack(&debug, names, interned, &mut data);
        let mut bytes = if data.len() >= TAKE_BYTES {
            RecordBytes::take(std::mem::take(&mut data), frames)
        } else {
            RecordBytes::new(&data[..frames], &data[frames + LEN_ROOM..])
        };
        if frames > 0 {
            // The FDEs name the table's own CIE, or else the shared one;
            // where that is out of their reach, the table is rebuilt with
            // a CIE of its own.
            let linked = isa.is_some_and(|isa| {
                let table = bytes.table_mut();
                let (cie, fdes) = table.split_at_mut(own_cie);
                let cie = if own_cie > 0 {
                    cie.as_ptr()
                } else {
                    unwind::shared_cie(isa).as_ptr()
                };
                unwind::point_at_cie(fdes, cie)
            });
            if !linked {
                self.rebuilt_tables += 1;
                let rest = bytes.rest();
                let rebuilt = match (isa, text.bytes()) {
                    (Some(isa), Some(code)) => {
                        let funcs: Vec<_> = unwind_funcs(&debug, start, code).collect();
                        let own = unwind::eh_frame(isa, &funcs);
                        RecordBytes::new(&own, rest)
                    }
                    _ => RecordBytes::new(&[], rest),
                };
                bytes = rebuilt;
            }
        }
        self.scratch = data;
        let record = ModuleRecord {
            data: bytes,
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
            offset: (start & ((1 << BUCKET_BITS) - 1)) as u16,
        };
        if let Some(g) = gdb {
            self.gdb.insert(start, g);
        }
        let bucket = self
            .buckets
            .entry(start >> BUCKET_BITS)
            .or_insert_with(Bucket::new);
        bucket.deregister();
        match bucket.find(record.offset) {
            Ok(i) => bucket.put(i, record, true),
            Err(i) => bucket.put(i, record, false),
        }
        bucket.register();
    }

    /// The index of `file` among the shared file names, when it is one or
    /// becomes one (the second module in a row from it); see
    /// [`DebugRegistry::files`].
    fn intern(&mut self, file: &Arc<str>) -> Option<usize> {
        if let Some(i) = self.files.iter().position(|f| **f == **file) {
            return Some(i);
        }
        if self.files.len() < MAX_FILES && self.last_file.as_deref() == Some(&**file) {
            self.last_file = None;
            self.files.push(file.clone());
            return Some(self.files.len() - 1);
        }
        self.last_file = Some(file.clone());
        None
    }

    /// Writes the FDEs of a module whose text (`code`) is at `base` to
    /// `eh_frame` (pointing at the shared CIE once placed, see
    /// [`unwind::fdes_into`]), as the options ask, and registers its GDB
    /// object; returns the registration and how many functions got FDEs.
    fn register(
        &self,
        debug: &ModuleDebug,
        names: Names<'_>,
        base: u64,
        code: &[u8],
        eh_frame: &mut Vec<u8>,
    ) -> Option<gdb::GdbRegistration> {
        let isa = unwind::UnwindIsa::host()?;
        if !self.options.unwind && !self.options.gdb {
            return None;
        }
        if !self.options.gdb {
            // The usual case: the FDEs straight from the functions, no
            // list of them built first.
            if !debug.funcs.is_empty() {
                unwind::fdes_into(isa, unwind_funcs(debug, base, code), eh_frame);
            }
            return None;
        }
        let funcs: Vec<_> = unwind_funcs(debug, base, code).collect();
        if self.options.unwind && !funcs.is_empty() {
            unwind::fdes_into(isa, funcs.iter().copied(), eh_frame);
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
                name: names(f.symbol),
                address: u.address,
                code: u.code,
                lines: &f.table,
                line: f.table.iter().next().map_or(0, |(_, l)| l.line),
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
    fn announce(
        &self,
        debug: &ModuleDebug,
        names: Names<'_>,
        base: u64,
        code: &[u8],
    ) -> crate::error::Result<()> {
        if !self.options.perf_map && self.options.jitdump.is_none() {
            return Ok(());
        }
        let lines: Vec<Vec<(u64, u32)>> = debug
            .funcs
            .iter()
            .map(|f| {
                let start = base.wrapping_add(f.offset);
                f.table
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
                    name: names(f.symbol),
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

    /// The module whose text started at target address `start` was
    /// removed: its functions leave the map and its registrations are
    /// undone.
    pub fn module_removed(&mut self, start: u64) {
        self.gdb.remove(&start);
        let key = start >> BUCKET_BITS;
        let Some(bucket) = self.buckets.get_mut(&key) else {
            return;
        };
        if let Ok(i) = bucket.find((start & ((1 << BUCKET_BITS) - 1)) as u16) {
            // Out of the unwinder's sight before its bytes are freed.
            bucket.deregister();
            bucket.take(i);
            if bucket.records.is_empty() {
                self.buckets.remove(&key);
            } else {
                bucket.register();
            }
        }
    }

    /// The record of the module whose text contains `pc`, and its start.
    fn record_at(&self, pc: u64) -> Option<(&ModuleRecord, u64)> {
        // The last record starting at or before `pc`: in `pc`'s bucket, or
        // else the last of the bucket before it.
        for (&key, bucket) in self.buckets.range(..=pc >> BUCKET_BITS).rev() {
            let base = key << BUCKET_BITS;
            let i = bucket
                .records
                .partition_point(|r| base + u64::from(r.offset) <= pc);
            if i > 0 {
                let r = &bucket.records[i - 1];
                let start = base + u64::from(r.offset);
                return (pc - start < u64::from(r.len)).then_some((r, start));
            }
        }
        None
    }

    /// The frame of the instruction containing `pc`.
    pub fn frame(&self, pc: u64) -> Option<TrapFrame> {
        let (record, start) = self.record_at(pc)?;
        let at = pc - start;
        let (file, mut funcs) = record.unpack(&self.files);
        let f = funcs.find(|f| f.offset <= at && at - f.offset < f.size)?;
        let offset = u32::try_from(at - f.offset).ok()?;
        Some(TrapFrame {
            function: f.name.to_string(),
            file: file.to_string(),
            loc: f.lines.lookup(offset),
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

/// The functions of a module whose text (`code`) is at `base`, as the
/// unwind tables describe them.
fn unwind_funcs<'a>(
    debug: &'a ModuleDebug,
    base: u64,
    code: &'a [u8],
) -> impl Iterator<Item = unwind::UnwindFunc<'a>> + 'a {
    debug.funcs.iter().filter_map(move |f| {
        Some(unwind::UnwindFunc {
            address: base.wrapping_add(f.offset),
            code: code.get(f.offset as usize..(f.offset + f.size) as usize)?,
        })
    })
}

/// The absolute path of source file `file` when it exists (profilers and
/// debuggers run elsewhere), else `file` as it is.
fn source_path(file: &str) -> String {
    std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| file.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u16, frames: bool) -> ModuleRecord {
        // An `.eh_frame` of one 8-byte entry and the terminator, then
        // a file name of length 0 (or just the name).
        let eh: &[u8] = if frames {
            &[4, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0]
        } else {
            &[]
        };
        ModuleRecord {
            data: RecordBytes::new(eh, &[0]),
            len: 16,
            offset,
        }
    }

    /// A large function's line table is kept as emitted
    /// ([`lines::RAW_MIN`]): the code map reads it back from the module's
    /// record as the encoded table of the same entries, at every byte of
    /// the function, and a trap in it names its line and column. (Fails
    /// if the fast generator encoded the table, or if the record's raw
    /// table read back other locations.)
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn large_functions_map_back_to_their_lines() {
        let n = 2 * lines::RAW_MIN;
        let mut text =
            String::from("func @big(%a: i64, %b: i64) -> i64 {\nentry:\n    %v0 = add.i64 %a, 1\n");
        for i in 1..n {
            // Lines of both lengths (one- and two-byte line deltas do not
            // matter here, but columns of two widths do).
            let op = if i % 3 == 0 { "add" } else { "mul" };
            text += &format!("    %v{i} = {op}.i64 %v{}, %a\n", i - 1);
        }
        text += &format!("    %q = sdiv.i64 %v{}, %b\n    ret %q\n}}\n", n - 1);
        let module = crate::ir::parse::parse_module("big.kir", &text).unwrap();
        let cm = crate::emit::compile_module(&module, &crate::isa::x86_64::X86_64_BACKEND).unwrap();
        let table = &cm.lines[0].table;
        assert!(table.is_raw());
        let encoded = LineTable::from_entries(table.iter());
        assert!(!encoded.is_raw());
        assert!(encoded.stored_len() * 3 < table.stored_len());
        let e = crate::Engine::default();
        e.add_module_text("big.kir", &text).unwrap();
        let (addr, _) = e.function_address("big").unwrap();
        let size = cm.symbols[cm.lines[0].symbol].size;
        let mut lines_seen = std::collections::BTreeSet::new();
        for o in 0..size {
            let at = e.code_location(addr + o).unwrap().expect("mapped");
            assert_eq!(at.loc, encoded.lookup(o as u32), "at {o}");
            assert_eq!(at.loc, table.lookup(o as u32), "at {o}");
            lines_seen.insert(at.loc.line);
        }
        // The prologue's line, each instruction's, the trap site's.
        assert!(lines_seen.len() >= n, "{}", lines_seen.len());
        let err = e
            .call("big", &[crate::Val::I64(1), crate::Val::I64(0)])
            .unwrap_err();
        let sdiv = n as u32 + 3;
        assert_eq!(
            err.to_string(),
            format!("trap: division by zero\n  at @big (big.kir:{sdiv}:10)")
        );
    }

    /// A new registry builds a first small module's record in the buffer
    /// it was made with.
    #[test]
    fn a_new_registry_has_room_for_a_first_record() {
        assert!(DebugRegistry::new().scratch.capacity() >= FIRST_RECORD_BYTES);
    }

    /// Record bytes read back as written, with and without a table and
    /// at any length (a ULEB128 length of one byte or more), 8-aligned,
    /// and the table can be patched in place before it is shared.
    #[test]
    fn record_bytes_keep_their_bytes() {
        let table = [8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0];
        for len in [0, 1, 127, 128, 20000] {
            let rest: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            for eh in [&table[..], &[]] {
                // Copied, and taken over from a build buffer (spare
                // capacity and all).
                let mut buf = Vec::with_capacity(eh.len() + LEN_ROOM + rest.len() + 100);
                buf.extend_from_slice(eh);
                buf.extend_from_slice(&[0; LEN_ROOM]);
                buf.extend_from_slice(&rest);
                for mut r in [
                    RecordBytes::new(eh, &rest),
                    RecordBytes::take(buf.clone(), eh.len()),
                ] {
                    assert_eq!((r.table(), r.rest()), (eh, &rest[..]));
                    assert_eq!(r.table().as_ptr() as usize % 8, 0);
                    if !eh.is_empty() {
                        r.table_mut()[4] = 0xee;
                        assert_eq!(r.table()[4], 0xee);
                        assert_eq!(r.rest(), &rest[..]);
                    }
                }
            }
        }
    }

    /// What `tables` must be: the tables of the records that have one, in
    /// record order, then 0 (nothing when none has one).
    fn expected(b: &Bucket) -> Vec<usize> {
        let mut t: Vec<usize> = b
            .records
            .iter()
            .filter(|r| r.frames())
            .map(|r| r.data.table().as_ptr() as usize)
            .collect();
        if !t.is_empty() {
            t.push(0);
        }
        t
    }

    /// Records are small, and a bucket's table array follows its records
    /// through inserts, replacements and removals, with and without
    /// `.eh_frame` tables, in any order.
    #[test]
    fn bucket_tables_follow_their_records() {
        assert!(std::mem::size_of::<ModuleRecord>() <= 16);
        let mut b = Bucket::new();
        let steps: [(u16, Option<bool>); 12] = [
            (64, Some(true)),
            (0, Some(true)),
            (32, Some(false)),
            (128, Some(true)),
            (96, Some(false)),
            (32, Some(true)),
            (64, None),
            (0, Some(false)),
            (128, None),
            (0, None),
            (96, None),
            (32, None),
        ];
        for (offset, put) in steps {
            match (b.find(offset), put) {
                (Ok(i), Some(f)) => b.put(i, record(offset, f), true),
                (Err(i), Some(f)) => b.put(i, record(offset, f), false),
                (Ok(i), None) => b.take(i),
                (Err(_), None) => panic!("no record at {offset}"),
            }
            assert_eq!(b.tables, expected(&b), "after {offset} {put:?}");
            let offsets: Vec<u16> = b.records.iter().map(|r| r.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
            for r in &b.records {
                assert_eq!(r.data.table().len(), if r.frames() { 12 } else { 0 });
            }
        }
        assert!(b.records.is_empty() && b.tables.is_empty());
    }

    /// The `.eh_frame` table of the module holding `pc`: whether it starts
    /// with a CIE, and whether every FDE after it names that CIE.
    fn own_cie(debug: &DebugRegistry, pc: u64) -> (bool, bool) {
        let (record, _) = debug.record_at(pc).expect("a record");
        let table = record.data.table();
        let word = |at: usize| u32::from_le_bytes(table[at..at + 4].try_into().unwrap());
        let starts_with_cie = word(4) == 0;
        let mut at = word(0) as usize + 4;
        let mut named = starts_with_cie;
        while word(at) != 0 {
            // An FDE's CIE pointer is the distance back from its field.
            named &= word(at + 4) as usize == at + 4;
            at += word(at) as usize + 4;
        }
        (starts_with_cie, named)
    }

    /// A module of many functions gets a table with a CIE of its own that
    /// all its FDEs name, built once. Fails with tables that always point
    /// at the shared CIE first: either the table starts with an FDE (the
    /// shared CIE in reach) or it was rebuilt (out of reach).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn large_tables_carry_their_own_cie() {
        use crate::executor::InProcessExecutor;
        use crate::registry::Registry;
        let ex = Arc::new(InProcessExecutor::new(None).unwrap());
        let mut reg = Registry::new("x86_64", ex, Default::default()).unwrap();
        reg.debug_mut().set_native(true);
        let mut text = String::new();
        for i in 0..OWN_CIE_FUNCS {
            text += &format!("func @big{i}(%x: i64) -> i64 {{\nentry:\n    ret %x\n}}\n");
        }
        let big = crate::ir::parse::parse_module("big.kir", &text).unwrap();
        let ids = [reg.add_shared(Arc::new(big)).unwrap()];
        reg.finalize_from(&ids).unwrap();
        let last = format!("big{}", OWN_CIE_FUNCS - 1);
        for name in ["big0", last.as_str()] {
            let (pc, _, _) = reg.function(name).unwrap();
            assert_eq!(own_cie(reg.debug(), pc), (true, true), "@{name}");
        }
        // Built once (a table pointing at the shared CIE first would be
        // rebuilt where its allocation is out of that CIE's reach).
        assert_eq!(reg.debug().rebuilt_tables, 0);
    }
}
