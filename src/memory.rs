//! The section memory manager: where loaded modules' text, rodata and data
//! live, and the W^X discipline over them.
//!
//! Address space is reserved in *reservations* small enough that a direct
//! call between any two places inside one always reaches: ≤ 2 GiB for
//! x86-64 `rel32`, ≤ 128 MiB for AArch64 `BL`. Pages are handed out from a
//! reservation to one section kind at a time, and sections are carved from
//! those pages at their alignment by a sub-page allocator
//! (`memory/free_list.rs`: best fit, neighbours coalesced, logarithmic
//! time).
//!
//! # Two ways to keep W^X
//!
//! **Dual view** (the default, [`CodeMapping::DualView`]). A reservation is
//! backed by a memfd mapped twice. The *executable view* is the reservation
//! itself, the only addresses code runs at and the only ones handed out:
//! its text pages are mapped read+execute and its rodata pages read-only,
//! from the file, and they stay so from the moment a page is given to a
//! kind until it is empty again. They are never writable. The *writable
//! view* maps the same file read-write at another address; the manager
//! copies bytes in through it ([`LoadBatch::bytes_mut`]), so text and
//! rodata of any number of batches share pages and finalizing changes no
//! protection at all (on AArch64 it flushes the instruction cache). Data
//! pages are private anonymous memory mapped read-write in the executable
//! view (code writes them where it runs; a `fork` child gets its own copy).
//!
//! Why the writable view is safe: no mapping is ever both writable and
//! executable (the process's `/proc/self/maps` shows none; the tests check
//! it), so the CPU never executes from a page it can write through the same
//! address, and compiled code cannot find the writable alias: its address
//! lives only inside this manager and is reachable only through
//! `LoadBatch::bytes_mut`, which borrows an open batch mutably and covers
//! that batch's own sections, which nothing runs yet. Freed bytes are
//! zeroed through it. Only the thread holding the manager (`&mut`, i.e. the
//! engine's registry) writes, and only between `allocate` and `finalize`.
//! A child made by `fork` inherits no writable view (`MADV_DONTFORK`) and
//! the manager refuses to work there (it would write into its parent's
//! code otherwise; `memory/os.rs`, `fork_generation`). What the two views do not
//! protect against is memory corruption in the host itself that happens to
//! hit the writable view; that is the trade every dual-mapping JIT makes
//! for not changing protections per module.
//!
//! **Page-granular protection** ([`CodeMapping::Protect`], and the fallback
//! when a memfd cannot be made or mapped executable, per reservation). One
//! private mapping; text and rodata pages are opened RW for one batch, and
//! [`MemoryManager::finalize`] turns them R+X or R with `mprotect`. Text
//! and rodata pages that are still writable belong to exactly one open
//! batch, and only that batch's sections are placed on them: finalizing a
//! batch seals only its own pages and never takes writability from another
//! batch. Space left over on a sealed page is not reused until every
//! section on it is freed. Data pages are shared by every batch.
//!
//! Life of an allocation, in the types:
//! - [`MemoryManager::begin_batch`] opens a [`LoadBatch`];
//!   [`MemoryManager::allocate`] places a section in it and returns a
//!   [`SectionRef`]; [`LoadBatch::bytes_mut`] fills and relocates it.
//! - [`MemoryManager::finalize`] consumes the batch and returns a
//!   [`FinalizedBatch`] of [`FinalizedSection`]s: text R+X, rodata R, data
//!   RW; the instruction cache is flushed where the ISA needs it. There is
//!   no way back to writable: W^X by value.
//! - [`MemoryManager::free`] consumes a [`FinalizedSection`] and returns its
//!   bytes for reuse (zeroed, at sub-page granularity where the pages are
//!   shared); [`MemoryManager::discard`] drops an unfinalized batch.
//!
//! Invariants:
//! - No page is ever writable and executable in one mapping.
//! - Free bytes on a page read as zero.
//! - A page whose last section is freed gives its memory back to the system
//!   at once. A Protect-mode text or rodata page goes back to the
//!   reservation's page pool (inaccessible); a page shared by every batch
//!   stays its kind's, ready for the next section of that kind without any
//!   system call, until the reservation runs out of fresh pages: then every
//!   such empty page goes back to the pool. Pooled pages may be given to any
//!   kind, since no code remains on them.
//! - Every handle ([`LoadBatch`], [`FinalizedSection`]) holds the mapping
//!   alive, so no handle ever points at unmapped memory, even if the manager
//!   is dropped first. A handle dropped without `finalize`/`free`/`discard`
//!   only leaks its bytes until the manager and all handles are gone.
//! - Running out of address space or of the configured limits is an `Err`.
//!
//! A dropped manager's prepared dual-view reservation, cleaned (every byte
//! zero, the prepared layout), goes to a small process-wide pool, and the
//! next manager of the same size [prepared](MemoryManager::prepare) takes
//! it: a fresh engine then costs no system call and its first module no
//! page fault. Conditions and the safety argument: `memory/pool.rs`
//! ([`release_pooled`] empties the pool).

mod free_list;
mod os;
mod packed;
mod pool;
mod trim;
pub use packed::PackedSection;
pub use pool::{pooled_reservations, release_pooled, POOL_KEEP, POOL_MAX, ZERO_LIMIT};

use crate::error::{Error, Result};
use free_list::{align_up, FreeList};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which section of a module: its code, its read-only data or its
/// read-write data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    /// Machine code: R+X once finalized.
    Text,
    /// Read-only data (constants, jump tables): R once finalized.
    Rodata,
    /// Read-write data: RW throughout.
    Data,
}

impl SectionKind {
    /// `text`, `rodata` or `data`.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Text => "text",
            SectionKind::Rodata => "rodata",
            SectionKind::Data => "data",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The protection of the kind's pages in the executable view once
    /// finalized.
    fn final_prot(self) -> libc::c_int {
        match self {
            SectionKind::Text => libc::PROT_READ | libc::PROT_EXEC,
            SectionKind::Rodata => libc::PROT_READ,
            SectionKind::Data => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// How a [`MemoryManager`] keeps code pages from being writable and
/// executable at once; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CodeMapping {
    /// A memfd mapped twice (executable view, writable view): small modules
    /// share pages and finalizing needs no protection change. Where a memfd
    /// cannot be made or mapped executable, a reservation falls back to
    /// [`CodeMapping::Protect`].
    #[default]
    DualView,
    /// One private mapping whose text and rodata pages are made writable
    /// for one batch and sealed with `mprotect` when it is finalized.
    Protect,
}

/// Sizes and limits of a [`MemoryManager`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Bytes of address space per reservation (rounded up to whole pages);
    /// at most [`MemoryConfig::MAX_RESERVATION`].
    pub reservation_size: usize,
    /// How many reservations may be taken in all; one more is an error.
    pub max_reservations: usize,
    /// How code pages are kept W^X.
    pub mapping: CodeMapping,
}

impl MemoryConfig {
    /// The largest reservation in which every direct call reaches: x86-64
    /// `rel32` spans ±2 GiB, AArch64 `BL` ±128 MiB (128 MiB also elsewhere).
    #[cfg(target_arch = "x86_64")]
    pub const MAX_RESERVATION: usize = 1 << 31;
    /// The largest reservation in which every direct call reaches: AArch64
    /// `BL` spans ±128 MiB (128 MiB also on other hosts).
    #[cfg(not(target_arch = "x86_64"))]
    pub const MAX_RESERVATION: usize = 1 << 27;

    /// The default reservation size: 1 GiB on x86-64.
    #[cfg(target_arch = "x86_64")]
    pub const DEFAULT_RESERVATION: usize = 1 << 30;
    /// The default reservation size: 128 MiB on hosts other than x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    pub const DEFAULT_RESERVATION: usize = 1 << 27;
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            reservation_size: Self::DEFAULT_RESERVATION,
            max_reservations: 64,
            mapping: CodeMapping::default(),
        }
    }
}

/// Which reservation an address lies in. Direct calls reach only within one;
/// calls between reservations need a veneer or an indirect call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(u32);

impl ReservationId {
    /// The reservation's position in the manager (0 for the first taken).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Whether an x86-64 `rel32` field can encode `to - from`.
pub fn within_rel32(from: usize, to: usize) -> bool {
    let d = to as i128 - from as i128;
    (i128::from(i32::MIN)..=i128::from(i32::MAX)).contains(&d)
}

/// Whether an AArch64 `B`/`BL` at `from` can reach `to` (±128 MiB, both
/// 4-byte aligned).
pub fn within_branch26(from: usize, to: usize) -> bool {
    let d = to as i128 - from as i128;
    d % 4 == 0 && (-(1i128 << 27)..=(1i128 << 27) - 4).contains(&d)
}

/// A section placed in a [`LoadBatch`]; valid only with that batch and the
/// [`FinalizedBatch`] it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SectionRef {
    batch: u64,
    index: u32,
}

/// Distinguishes managers, so a batch or section is never handed to a
/// manager that did not make it.
static NEXT_MANAGER_ID: AtomicU64 = AtomicU64::new(1);

/// One reservation's mappings; unmapped when the manager and every handle
/// into it are gone.
#[derive(Debug)]
struct Mapping {
    /// The executable view (or the only mapping, without a file).
    base: usize,
    len: usize,
    /// The memfd and its writable view, for a dual-view reservation.
    file: Option<os::CodeFile>,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` was returned by our own mmap and nothing
        // refers into it any more: every handle holds an `Arc<Mapping>`, and
        // this is the last one. The file's view goes with `file`.
        unsafe { os::unmap(self.base, self.len) };
    }
}

/// What a page of a reservation is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageUse {
    /// In the page pool, in a chunk never used, or a gap left by
    /// alignment: inaccessible.
    Free,
    /// Protect mode: RW text or rodata owned by the open batch `batch`.
    Open { kind: SectionKind, batch: u64 },
    /// Protect mode: finalized text (R+X) or rodata (R).
    Sealed(SectionKind),
    /// Shared by every batch, with its final protection: data in both
    /// modes, text and rodata in a dual-view reservation.
    Shared(SectionKind),
    /// A protection or mapping change failed; never used again.
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct PageInfo {
    usage: PageUse,
    /// Sections (open or finalized) with at least one byte on the page.
    live: u32,
    /// Whether the page may hold memory: a section was placed on it since
    /// its memory was last given back (a pooled reservation's zeroed pages
    /// keep theirs; `memory/pool.rs` counts them).
    resident: bool,
}

/// Pages given to a kind at once in a dual-view reservation when its free
/// space runs out (a multiple of it for a bigger section): one `mmap` per
/// chunk instead of per page, and pages of the chunk not yet written cost
/// no memory.
const SHARED_CHUNK_PAGES: usize = 16;

/// Bytes of data pages a [prepared](MemoryManager::prepare) manager maps
/// at once (private memory reserved without commitment: untouched pages
/// cost nothing).
const PREPARED_DATA: usize = 8 << 20;

/// One reserved range and the state of its pages.
#[derive(Debug)]
struct Reservation {
    map: Arc<Mapping>,
    /// Offset of the first page never handed out.
    bump: usize,
    /// Free page runs below `bump` (inaccessible), absolute addresses.
    pool: FreeList,
    /// Free bytes on the pages shared by every batch, by kind (only
    /// [`SectionKind::Data`] is used in Protect mode).
    shared: [FreeList; 3],
    /// One entry per page below `bump`.
    pages: Vec<PageInfo>,
    /// Pages of the writable view written since the last trim, those
    /// written before it, and those mapped when the reservation came from
    /// the pool (`memory/trim.rs`; dual view only).
    dirty: trim::Span,
    stale: trim::Span,
    inherited: trim::Span,
}

impl Reservation {
    fn contains(&self, addr: usize) -> bool {
        addr >= self.map.base && addr - self.map.base < self.map.len
    }

    fn dual(&self) -> bool {
        self.map.file.is_some()
    }

    /// Whether sections of `kind` go on pages shared by every batch.
    fn shares(&self, kind: SectionKind) -> bool {
        kind == SectionKind::Data || self.dual()
    }

    /// Added to the address of a section of `kind`, gives the address its
    /// bytes are written at: the writable view for text and rodata of a
    /// dual-view reservation, the section itself otherwise (data pages are
    /// RW where they run; Protect mode opens pages RW).
    fn write_delta(&self, kind: SectionKind) -> usize {
        match &self.map.file {
            Some(f) if kind != SectionKind::Data => f.write_base().wrapping_sub(self.map.base),
            _ => 0,
        }
    }
}

/// A section placed in a batch.
#[derive(Debug)]
struct Placed {
    kind: SectionKind,
    addr: usize,
    /// Bytes requested.
    len: usize,
    /// Bytes held (at least one, so every section owns its address).
    span: usize,
    res: u32,
    /// Added to `addr`, the address to write the bytes at.
    write_delta: usize,
    /// The address the section will have where it runs; `addr` unless a
    /// remote executor moved it.
    target: u64,
    map: Arc<Mapping>,
}

/// Writable space left on an open batch's own text or rodata pages
/// (Protect mode).
#[derive(Debug)]
struct OpenSpace {
    res: u32,
    kind: SectionKind,
    free: FreeList,
}

/// Sections being filled and relocated; their bytes are writable only
/// through this batch, and nothing runs them yet.
/// Consumed by [`MemoryManager::finalize`] or [`MemoryManager::discard`].
#[must_use = "a dropped batch leaks its memory; finalize or discard it"]
#[derive(Debug)]
pub struct LoadBatch {
    manager: u64,
    id: u64,
    /// The reservation tried first, so a batch's sections stay within reach
    /// of each other.
    home: Option<u32>,
    /// Usually a module's text and one or two more: no allocation then.
    sections: SmallVec<[Placed; 3]>,
    open: Vec<OpenSpace>,
}

impl LoadBatch {
    fn placed(&self, r: SectionRef) -> Option<&Placed> {
        if r.batch != self.id {
            return None;
        }
        self.sections.get(r.index as usize)
    }

    /// Number of sections placed so far.
    pub fn len(&self) -> usize {
        self.sections.len()
    }

    /// Whether no section was placed yet.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// The section's address in this process (where it runs in process).
    pub fn address(&self, r: SectionRef) -> Option<usize> {
        self.placed(r).map(|p| p.addr)
    }

    /// The address the section will have where it runs (P for relocations).
    pub fn target_address(&self, r: SectionRef) -> Option<u64> {
        self.placed(r).map(|p| p.target)
    }

    /// Records that the section will run at `target` (a remote or emulated
    /// executor). The bytes stay where they are.
    pub fn set_target_address(&mut self, r: SectionRef, target: u64) -> Result<()> {
        if r.batch != self.id {
            return Err(Error::Argument("section of another batch".into()));
        }
        let p = self
            .sections
            .get_mut(r.index as usize)
            .ok_or_else(|| Error::Argument("no such section in batch".into()))?;
        p.target = target;
        Ok(())
    }

    /// The section's kind.
    pub fn kind(&self, r: SectionRef) -> Option<SectionKind> {
        self.placed(r).map(|p| p.kind)
    }

    /// The reservation holding the section.
    pub fn reservation(&self, r: SectionRef) -> Option<ReservationId> {
        self.placed(r).map(|p| ReservationId(p.res))
    }

    /// The section's bytes, read at [`Self::address`] (readable in every
    /// mode: RW while open in Protect mode; R+X, R or RW in a dual view).
    pub fn bytes(&self, r: SectionRef) -> Option<&[u8]> {
        let p = self.placed(r)?;
        // SAFETY: `addr..addr+len` lies in a mapping kept alive by `p.map`,
        // on pages that are readable until this batch is consumed (see the
        // page states). Sections never overlap, and this batch's bytes are
        // written only through `bytes_mut(&mut self)`, so no writer
        // aliases this read.
        Some(unsafe { std::slice::from_raw_parts(p.addr as *const u8, p.len) })
    }

    /// The section's bytes, to fill and relocate: in a dual view these are
    /// the writable view's, elsewhere the section's own (opened RW).
    pub fn bytes_mut(&mut self, r: SectionRef) -> Option<&mut [u8]> {
        let p = self.placed(r)?;
        let at = p.addr.wrapping_add(p.write_delta);
        // SAFETY: `at..at+len` is writable (the writable view of a
        // dual-view reservation, or this batch's own RW pages) and mapped
        // while `p.map` lives. `&mut self` makes this the only reference
        // into the batch's sections, and no other batch's or finalized
        // section overlaps the range in either view.
        Some(unsafe { std::slice::from_raw_parts_mut(at as *mut u8, p.len) })
    }
}

/// A finalized section: text R+X, rodata R, data RW. Give it back with
/// [`MemoryManager::free`].
#[derive(Debug)]
pub struct FinalizedSection {
    addr: usize,
    target: u64,
    /// Keeps the mapping alive while the handle exists; also tells whose
    /// it is (the manager's reservation `res` holds the same mapping).
    map: Arc<Mapping>,
    /// Lengths fit: a section lies inside one reservation (at most
    /// [`MemoryConfig::MAX_RESERVATION`] bytes).
    len: u32,
    span: u32,
    res: u32,
    kind: SectionKind,
}

impl FinalizedSection {
    /// The section's kind.
    pub fn kind(&self) -> SectionKind {
        self.kind
    }

    /// The section's address in this process.
    pub fn address(&self) -> usize {
        self.addr
    }

    /// The address it runs at (differs from [`Self::address`] only for
    /// remote executors).
    pub fn target_address(&self) -> u64 {
        self.target
    }

    /// Bytes requested for the section.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the section holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The section's first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.addr as *const u8
    }

    /// The reservation holding the section.
    pub fn reservation(&self) -> ReservationId {
        ReservationId(self.res)
    }

    /// The bytes of a text or rodata section, immutable from now on; `None`
    /// for data, which running code may write at any time. In a dual-view
    /// reservation they are read through the writable view (the same file
    /// bytes), so that reading code does not map its executable pages:
    /// those become resident only when the code runs.
    pub fn bytes(&self) -> Option<&[u8]> {
        if self.kind == SectionKind::Data {
            return None;
        }
        let at = match &self.map.file {
            Some(file) => file
                .write_base()
                .wrapping_add(self.addr.wrapping_sub(self.map.base)),
            None => self.addr,
        };
        // SAFETY: the range is mapped (held by `self.map`, in both views)
        // and readable (R+X or R where it runs; RW in the writable view);
        // nothing writes it again until `free` consumes this handle (other
        // batches write only their own bytes of a shared page, through the
        // writable view).
        Some(unsafe { std::slice::from_raw_parts(at as *const u8, self.len as usize) })
    }
}

/// The sections of a finalized batch, looked up by the [`SectionRef`]s
/// `allocate` returned.
#[derive(Debug)]
pub struct FinalizedBatch {
    id: u64,
    sections: SmallVec<[Option<FinalizedSection>; 3]>,
}

impl FinalizedBatch {
    /// The section `r` names, unless taken.
    pub fn get(&self, r: SectionRef) -> Option<&FinalizedSection> {
        if r.batch != self.id {
            return None;
        }
        self.sections.get(r.index as usize)?.as_ref()
    }

    /// Moves a section out (to the module that owns it).
    pub fn take(&mut self, r: SectionRef) -> Option<FinalizedSection> {
        if r.batch != self.id {
            return None;
        }
        self.sections.get_mut(r.index as usize)?.take()
    }

    /// The sections not yet taken, in allocation order.
    pub fn into_sections(self) -> impl Iterator<Item = FinalizedSection> {
        self.sections.into_iter().flatten()
    }
}

/// Address-space and memory use, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    /// Reservations taken.
    pub reservations: usize,
    /// Of those, the ones with two views (the rest use `mprotect`).
    pub dual_view_reservations: usize,
    /// Pages holding at least one byte of a section, or lost.
    pub pages_in_use: usize,
    /// Bytes held by sections (their lengths, at least one each).
    pub bytes_in_use: usize,
    /// Free bytes on data pages, ready for data sections of any batch.
    pub data_free_bytes: usize,
    /// Free bytes on text and rodata pages shared by every batch.
    pub code_free_bytes: usize,
}

/// Owns the reservations and hands out section memory; see the module docs.
#[derive(Debug)]
pub struct MemoryManager {
    id: u64,
    config: MemoryConfig,
    page: usize,
    reservations: Vec<Reservation>,
    next_batch: u64,
    bytes_in_use: usize,
    /// [`os::fork_generation`] when the manager was made.
    fork_generation: u64,
    /// Bytes written through writable views since they were last trimmed.
    written: usize,
}

impl MemoryManager {
    /// A manager with the given limits. Reserves nothing until the first
    /// allocation.
    pub fn new(config: MemoryConfig) -> Result<Self> {
        let page = os::page_size();
        let size = align_up(config.reservation_size, page).unwrap_or(usize::MAX);
        if size == 0 || size > MemoryConfig::MAX_RESERVATION {
            return Err(Error::Argument(format!(
                "reservation size {} is not in 1..={} bytes (direct calls must reach \
                 across a reservation)",
                config.reservation_size,
                MemoryConfig::MAX_RESERVATION
            )));
        }
        if config.max_reservations == 0 || config.max_reservations > u32::MAX as usize {
            return Err(Error::Argument(format!(
                "max_reservations {} is not in 1..={}",
                config.max_reservations,
                u32::MAX
            )));
        }
        Ok(MemoryManager {
            id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
            config: MemoryConfig {
                reservation_size: size,
                ..config
            },
            page,
            reservations: Vec::new(),
            next_batch: 1,
            bytes_in_use: 0,
            fork_generation: os::fork_generation(),
            written: 0,
        })
    }

    /// The limits in force (the reservation size rounded to pages).
    pub fn config(&self) -> MemoryConfig {
        self.config
    }

    /// Maps reservations taken from now on with `mapping` (those taken
    /// already keep theirs, unless nothing was ever placed in them: then
    /// they are given up, so that a manager [prepared](Self::prepare) at
    /// creation still switches before its first section). The perf map
    /// needs [`CodeMapping::Protect`]: perf looks JIT symbols up only for
    /// anonymous executable memory.
    pub fn set_mapping(&mut self, mapping: CodeMapping) {
        if mapping != self.config.mapping && self.unused() {
            for res in std::mem::take(&mut self.reservations) {
                self.retire(res);
            }
        }
        self.config.mapping = mapping;
    }

    /// Whether no section was ever placed (pages given to a kind by
    /// [`Self::prepare`] hold none).
    fn unused(&self) -> bool {
        self.bytes_in_use == 0 && self.next_batch == 1
    }

    /// Takes the first reservation now and, with two views, gives every
    /// kind its first chunk of pages (data pages also in Protect mode), so
    /// that loading and finalizing the first modules needs no system call:
    /// an engine calls this when it is created. Pages that nothing writes
    /// cost no memory. With two views, a reservation a dropped manager of
    /// the same size left in the pool is taken instead of a new one: no
    /// system call at all, and its pages are already there (zeroed). See
    /// `memory/pool.rs`. Idempotent; on an error the manager stays usable
    /// (the first allocation tries again).
    pub fn prepare(&mut self) -> Result<()> {
        if !self.reservations.is_empty() {
            return Ok(());
        }
        // A reservation a dropped manager left in the pool has these very
        // chunks (and maybe more) mapped, every byte free and zero.
        if self.take_pooled() {
            return Ok(());
        }
        let r = self.reserve()?;
        for (kind, bytes) in self.prepared_chunks() {
            if self.reservations[r as usize].shares(kind) {
                self.open_shared_chunk(r, kind, bytes)?;
            }
        }
        Ok(())
    }

    /// The chunks [`Self::prepare`] gives each kind, in the order it takes
    /// them from a fresh reservation. Data gets a big first chunk (an
    /// eighth of the reservation, at most `PREPARED_DATA`):
    /// zero-initialized arrays of the first modules fit without a mapping.
    fn prepared_chunks(&self) -> [(SectionKind, usize); 3] {
        let chunk = SHARED_CHUNK_PAGES * self.page;
        let data = ((self.config.reservation_size / 8) & !(self.page - 1))
            .clamp(chunk, PREPARED_DATA.max(chunk));
        [
            (SectionKind::Text, chunk),
            (SectionKind::Rodata, chunk),
            (SectionKind::Data, data),
        ]
    }

    /// Gives a fresh chunk of pages of reservation `r` to `kind` (which
    /// it [shares](Reservation::shares)): mapped with the kind's final
    /// protection, all of it free space of the kind.
    fn open_shared_chunk(&mut self, r: u32, kind: SectionKind, bytes: usize) -> Result<()> {
        let page = self.page;
        let res = &mut self.reservations[r as usize];
        let Some(start) = Self::take_pages(res, page, bytes, page) else {
            return Ok(());
        };
        if let Err(e) = Self::open_pages(res, kind, start, bytes) {
            Self::lose_or_pool(res, page, start, bytes);
            return Err(Error::Runtime(format!(
                "out of JIT memory: cannot map {bytes} bytes of {}: {e}",
                kind.name()
            )));
        }
        let first = (start - res.map.base) / page;
        for p in &mut res.pages[first..first + bytes / page] {
            p.usage = PageUse::Shared(kind);
            p.live = 0;
        }
        res.shared[kind.index()].insert(start, start + bytes);
        Ok(())
    }

    /// After [`Self::open_pages`] failed on `start..start+bytes`: with two
    /// views a failed `MAP_FIXED` may have unmapped the run, so it is never
    /// touched again; a failed `mprotect` leaves it inaccessible as it was,
    /// back in the pool.
    fn lose_or_pool(res: &mut Reservation, page: usize, start: usize, bytes: usize) {
        if res.dual() {
            let first = (start - res.map.base) / page;
            for p in &mut res.pages[first..first + bytes / page] {
                p.usage = PageUse::Lost;
            }
        } else {
            res.pool.insert(start, start + bytes);
        }
    }

    /// The system page size.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The reservation holding `addr`, if any.
    pub fn reservation_of(&self, addr: usize) -> Option<ReservationId> {
        self.reservations
            .iter()
            .position(|r| r.contains(addr))
            .map(|i| ReservationId(i as u32))
    }

    /// Base address and length of a reservation.
    pub fn reservation_range(&self, id: ReservationId) -> Option<(usize, usize)> {
        let r = self.reservations.get(id.index())?;
        Some((r.map.base, r.map.len))
    }

    /// What the manager holds now.
    pub fn stats(&self) -> MemoryStats {
        let kind_free = |k: SectionKind| -> usize {
            self.reservations
                .iter()
                .map(|r| r.shared[k.index()].total())
                .sum()
        };
        MemoryStats {
            reservations: self.reservations.len(),
            dual_view_reservations: self.reservations.iter().filter(|r| r.dual()).count(),
            pages_in_use: self
                .reservations
                .iter()
                .flat_map(|r| r.pages.iter())
                .filter(|p| p.live > 0 || p.usage == PageUse::Lost)
                .count(),
            bytes_in_use: self.bytes_in_use,
            data_free_bytes: kind_free(SectionKind::Data),
            code_free_bytes: kind_free(SectionKind::Text) + kind_free(SectionKind::Rodata),
        }
    }

    /// Opens a batch of sections to place, fill, relocate and finalize
    /// together.
    pub fn begin_batch(&mut self) -> LoadBatch {
        let id = self.next_batch;
        self.next_batch += 1;
        LoadBatch {
            manager: self.id,
            id,
            home: None,
            sections: SmallVec::new(),
            open: Vec::new(),
        }
    }

    /// Refuses handles of another manager, and any change in a `fork`
    /// child of the process that made a dual-view manager (its writes
    /// would land in the parent's code).
    fn check_owner(&self, manager: u64) -> Result<()> {
        if manager != self.id {
            return Err(Error::Argument(
                "memory handle belongs to another memory manager".into(),
            ));
        }
        if self.fork_generation != os::fork_generation()
            && self.reservations.iter().any(|r| r.dual())
        {
            return Err(Error::Runtime(
                "this JIT memory manager was made before fork(); a child process cannot \
                 load or free code through it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Places a `size`-byte section of `kind` aligned to `align` (a power of
    /// two) in `batch`. Its bytes are writable through the batch until it
    /// is finalized.
    pub fn allocate(
        &mut self,
        batch: &mut LoadBatch,
        kind: SectionKind,
        size: usize,
        align: usize,
    ) -> Result<SectionRef> {
        self.check_owner(batch.manager)?;
        if !align.is_power_of_two() {
            return Err(Error::Argument(format!(
                "section alignment {align} is not a power of two"
            )));
        }
        let span = size.max(1);
        let limit = self.config.reservation_size;
        if span > limit || align > limit {
            return Err(Error::Runtime(format!(
                "out of JIT memory: a {} section of {size} bytes aligned to {align} does \
                 not fit a reservation of {limit} bytes",
                kind.name()
            )));
        }
        let index = u32::try_from(batch.sections.len())
            .map_err(|_| Error::Runtime("too many sections in one batch".into()))?;

        let mut placed = None;
        if let Some(home) = batch.home {
            placed = self
                .place_in(home, batch, kind, span, align)?
                .map(|a| (home, a));
        }
        if placed.is_none() {
            for r in (0..self.reservations.len() as u32).rev() {
                if Some(r) == batch.home {
                    continue;
                }
                if let Some(addr) = self.place_in(r, batch, kind, span, align)? {
                    placed = Some((r, addr));
                    break;
                }
            }
        }
        let (res, addr) = match placed {
            Some(p) => p,
            None => {
                let r = self.reserve()?;
                match self.place_in(r, batch, kind, span, align)? {
                    Some(addr) => (r, addr),
                    None => {
                        return Err(Error::Runtime(format!(
                            "out of JIT memory: cannot place {size} bytes in a new reservation"
                        )))
                    }
                }
            }
        };
        batch.home.get_or_insert(res);
        let reservation = &self.reservations[res as usize];
        batch.sections.push(Placed {
            kind,
            addr,
            len: size,
            span,
            res,
            write_delta: reservation.write_delta(kind),
            target: addr as u64,
            map: Arc::clone(&reservation.map),
        });
        self.bytes_in_use += span;
        Ok(SectionRef {
            batch: batch.id,
            index,
        })
    }

    /// Takes a new reservation; its index.
    fn reserve(&mut self) -> Result<u32> {
        let len = self.config.reservation_size;
        if self.reservations.len() >= self.config.max_reservations {
            return Err(Error::Runtime(format!(
                "out of JIT memory: all {} reservations of {len} bytes are in use",
                self.reservations.len()
            )));
        }
        let base = os::reserve(len).map_err(|e| {
            Error::Runtime(format!(
                "out of JIT memory: cannot reserve {len} bytes of address space: {e}"
            ))
        })?;
        let file = match self.config.mapping {
            CodeMapping::DualView => Self::dual_view(len),
            CodeMapping::Protect => None,
        };
        self.reservations.push(Reservation {
            map: Arc::new(Mapping { base, len, file }),
            bump: 0,
            pool: FreeList::default(),
            shared: Default::default(),
            pages: Vec::new(),
            dirty: Default::default(),
            stale: Default::default(),
            inherited: Default::default(),
        });
        Ok((self.reservations.len() - 1) as u32)
    }

    /// A memfd and its writable view for a reservation of `len` bytes, if
    /// the system lets us map a memfd executable; `None` means Protect
    /// mode.
    fn dual_view(len: usize) -> Option<os::CodeFile> {
        let file = os::CodeFile::create(len).ok()?;
        file.can_execute().then_some(file)
    }

    /// Places `span` bytes in reservation `r`: on free space of the pages
    /// the kind shares across batches, or of the batch's own open pages,
    /// else on fresh pages. `None` if the reservation is full.
    fn place_in(
        &mut self,
        r: u32,
        batch: &mut LoadBatch,
        kind: SectionKind,
        span: usize,
        align: usize,
    ) -> Result<Option<usize>> {
        let page = self.page;
        let res = &mut self.reservations[r as usize];
        let shared = res.shares(kind);
        let reused = if shared {
            res.shared[kind.index()].take(span, align)
        } else {
            batch
                .open
                .iter_mut()
                .find(|o| o.res == r && o.kind == kind)
                .and_then(|o| o.free.take(span, align))
        };
        if let Some(addr) = reused {
            Self::mark_live(res, page, addr, span);
            return Ok(Some(addr));
        }

        // Never overflows: span <= reservation size, which is page-aligned.
        let need = span.div_ceil(page) * page;
        // A whole number of chunks: the space left after a big section
        // serves the next ones (a reservation from the pool then fits a
        // section a little bigger than its last manager's).
        let chunk = if res.dual() {
            need.next_multiple_of(SHARED_CHUNK_PAGES * page)
        } else {
            need
        };
        let align = align.max(page);
        let fresh = |res: &mut Reservation| {
            Self::take_pages(res, page, chunk, align)
                .map(|s| (s, chunk))
                .or_else(|| Self::take_pages(res, page, need, align).map(|s| (s, need)))
        };
        let mut got = fresh(res);
        // Out of fresh pages: take back the empty pages kinds keep.
        if got.is_none() && Self::reclaim(res, page) {
            got = fresh(res);
        }
        let Some((start, bytes)) = got else {
            return Ok(None);
        };
        if let Err(e) = Self::open_pages(res, kind, start, bytes) {
            Self::lose_or_pool(res, page, start, bytes);
            return Err(Error::Runtime(format!(
                "out of JIT memory: cannot map {bytes} bytes of {}: {e}",
                kind.name()
            )));
        }
        let usage = if shared {
            PageUse::Shared(kind)
        } else {
            PageUse::Open {
                kind,
                batch: batch.id,
            }
        };
        let first = (start - res.map.base) / page;
        for p in &mut res.pages[first..first + bytes / page] {
            p.usage = usage;
            p.live = 0;
        }
        let (tail, end) = (start + span, start + bytes);
        if tail < end {
            if shared {
                res.shared[kind.index()].insert(tail, end);
            } else {
                match batch.open.iter_mut().find(|o| o.res == r && o.kind == kind) {
                    Some(o) => {
                        o.free.insert(tail, end);
                    }
                    None => {
                        let mut free = FreeList::default();
                        free.insert(tail, end);
                        batch.open.push(OpenSpace { res: r, kind, free });
                    }
                }
            }
        }
        Self::mark_live(res, page, start, span);
        Ok(Some(start))
    }

    /// Gives the free page run `start..start+bytes` to `kind`: in a dual
    /// view, the file's pages mapped with the kind's final protection (data:
    /// private RW memory); in Protect mode, RW until finalized (data: for
    /// good).
    fn open_pages(
        res: &Reservation,
        kind: SectionKind,
        start: usize,
        bytes: usize,
    ) -> std::io::Result<()> {
        match &res.map.file {
            Some(file) if kind != SectionKind::Data => {
                file.map_exec(start, start - res.map.base, bytes, kind.final_prot())
            }
            Some(_) => os::map_private(start, bytes, kind.final_prot()),
            None => os::protect(start, bytes, libc::PROT_READ | libc::PROT_WRITE),
        }
    }

    /// `bytes` (whole pages) of free pages at a multiple of `align`, from
    /// the pool or never-used pages; marked `Free` until the caller sets
    /// their use.
    fn take_pages(res: &mut Reservation, page: usize, bytes: usize, align: usize) -> Option<usize> {
        if let Some(start) = res.pool.take(bytes, align) {
            return Some(start);
        }
        let base = res.map.base;
        let next = base + res.bump;
        let start = align_up(next, align)?;
        let end = start.checked_add(bytes)?;
        if end > base + res.map.len {
            return None;
        }
        // Pages skipped for alignment stay free for later.
        res.pool.insert(next, start);
        res.bump = end - base;
        res.pages.resize(
            res.bump / page,
            PageInfo {
                usage: PageUse::Free,
                live: 0,
                resident: false,
            },
        );
        Some(start)
    }

    fn page_range(res: &Reservation, page: usize, addr: usize, span: usize) -> (usize, usize) {
        let first = (addr - res.map.base) / page;
        let last = (addr + span - 1 - res.map.base) / page;
        (first, last + 1)
    }

    fn mark_live(res: &mut Reservation, page: usize, addr: usize, span: usize) {
        let (a, b) = Self::page_range(res, page, addr, span);
        for p in &mut res.pages[a..b] {
            p.live += 1;
            p.resident = true;
        }
    }

    /// Finalizes the batch: in a dual view only the instruction cache is
    /// flushed (pages already have their final protection); in Protect
    /// mode text pages become R+X (cache flushed) and rodata pages R, and
    /// the batch's unused open space is given up until its pages are
    /// entirely free again.
    ///
    /// If a protection change fails the batch's memory is leaked (its pages
    /// are never reused) and the error returned; no page is left W+X.
    pub fn finalize(&mut self, batch: LoadBatch) -> Result<FinalizedBatch> {
        self.check_owner(batch.manager)?;
        for s in &batch.sections {
            if s.kind == SectionKind::Text && self.reservations[s.res as usize].dual() {
                os::flush_icache(s.addr, s.span);
            }
            if s.kind != SectionKind::Data {
                self.note_written(s.res, s.addr, s.span);
            }
        }
        self.seal(&batch)?;
        self.maybe_trim_views();
        let sections = batch
            .sections
            .into_iter()
            .map(|s| {
                Some(FinalizedSection {
                    kind: s.kind,
                    addr: s.addr,
                    // A section lies inside one reservation (≤ 2 GiB).
                    len: s.len as u32,
                    span: s.span as u32,
                    res: s.res,
                    target: s.target,
                    map: s.map,
                })
            })
            .collect();
        Ok(FinalizedBatch {
            id: batch.id,
            sections,
        })
    }

    /// Protect mode: turns the batch's own text and rodata pages R+X and R
    /// (nothing to do for sections on shared pages).
    fn seal(&mut self, batch: &LoadBatch) -> Result<()> {
        let page = self.page;
        if batch.open.is_empty()
            && batch
                .sections
                .iter()
                .all(|s| self.reservations[s.res as usize].shares(s.kind))
        {
            return Ok(());
        }
        let mut runs: Vec<(u32, usize, usize, SectionKind)> = batch
            .sections
            .iter()
            .filter(|s| !self.reservations[s.res as usize].shares(s.kind))
            .map(|s| {
                let lo = s.addr & !(page - 1);
                let hi = (s.addr + s.span).div_ceil(page) * page;
                (s.res, lo, hi, s.kind)
            })
            .collect();
        runs.sort_unstable();
        let mut merged: Vec<(u32, usize, usize, SectionKind)> = Vec::with_capacity(runs.len());
        for run in runs {
            match merged.last_mut() {
                Some(last) if last.0 == run.0 && last.3 == run.3 && run.1 <= last.2 => {
                    last.2 = last.2.max(run.2);
                }
                _ => merged.push(run),
            }
        }

        for (i, &(r, lo, hi, kind)) in merged.iter().enumerate() {
            let result = os::protect(lo, hi - lo, kind.final_prot());
            let res = &mut self.reservations[r as usize];
            let first = (lo - res.map.base) / page;
            let pages = first..first + (hi - lo) / page;
            if let Err(e) = result {
                for &(r2, lo2, hi2, _) in &merged[i..] {
                    let res = &mut self.reservations[r2 as usize];
                    let f = (lo2 - res.map.base) / page;
                    for p in &mut res.pages[f..f + (hi2 - lo2) / page] {
                        p.usage = PageUse::Lost;
                    }
                }
                return Err(Error::Runtime(format!(
                    "cannot protect {} bytes of {}: {e}",
                    hi - lo,
                    kind.name()
                )));
            }
            for p in &mut res.pages[pages] {
                debug_assert_eq!(
                    p.usage,
                    PageUse::Open {
                        kind,
                        batch: batch.id
                    }
                );
                p.usage = PageUse::Sealed(kind);
            }
            if kind == SectionKind::Text {
                os::flush_icache(lo, hi - lo);
            }
        }
        Ok(())
    }

    /// Returns a finalized section's memory for reuse. Pages left with no
    /// section are made inaccessible, their memory released, and pooled.
    pub fn free(&mut self, section: FinalizedSection) -> Result<()> {
        // Ours when our reservation `res` is its mapping.
        let ours = self
            .reservations
            .get(section.res as usize)
            .is_some_and(|r| Arc::ptr_eq(&r.map, &section.map));
        self.check_owner(if ours { self.id } else { 0 })?;
        self.release(
            section.res,
            section.kind,
            section.addr,
            section.span as usize,
        );
        Ok(())
    }

    /// Drops an unfinalized batch and returns all its memory.
    pub fn discard(&mut self, batch: LoadBatch) -> Result<()> {
        self.check_owner(batch.manager)?;
        for s in &batch.sections {
            self.release(s.res, s.kind, s.addr, s.span);
        }
        Ok(())
    }

    /// Gives back `span` bytes at `addr`. On pages shared by every batch
    /// the bytes join their kind's free list at once, and pages left
    /// without any section give their memory back to the system but stay
    /// the kind's (no mapping change now, none when they are used again):
    /// [`Self::reclaim`] returns them to the pool only when the reservation
    /// runs out of fresh pages. Protect mode's own text and rodata pages go
    /// back to the pool when emptied.
    fn release(&mut self, r: u32, kind: SectionKind, addr: usize, span: usize) {
        let page = self.page;
        self.bytes_in_use -= span;
        let res = &mut self.reservations[r as usize];
        let (a, b) = Self::page_range(res, page, addr, span);
        let mut emptied = false;
        for p in &mut res.pages[a..b] {
            p.live = p.live.saturating_sub(1);
            emptied |= p.live == 0 && p.usage != PageUse::Lost;
        }
        if res.shares(kind) {
            // Free bytes read as zero. The section's own whole pages are
            // given back to the system below (they read as zero then), so
            // only the bytes on its first and last partial page are
            // cleared here: freeing a big section (zero-initialized data
            // never touched, say) does not touch its pages.
            let delta = res.write_delta(kind);
            let end = addr + span;
            let inner = (addr.next_multiple_of(page), end & !(page - 1));
            let inner = if inner.0 < inner.1 { inner } else { (end, end) };
            let clear = |from: usize, to: usize| {
                // SAFETY: `from..to` lies in `addr..addr+span`, this
                // (consumed) section's, so no other section or reference
                // covers it; adding `delta` gives its writable address,
                // mapped while `res.map` lives.
                unsafe { std::ptr::write_bytes(from.wrapping_add(delta) as *mut u8, 0, to - from) };
            };
            clear(addr, inner.0.min(end));
            clear(inner.1.max(addr), end);
            if res.dual() && kind != SectionKind::Data {
                res.note_dirty(addr, addr + span, page);
                self.written += span;
            }
            let (s, e) = res.shared[kind.index()].insert(addr, addr + span);
            // Whole pages of the free range hold no section; of those, the
            // ones this section was on may hold memory. They include the
            // section's own whole pages.
            let lo = (s - res.map.base).div_ceil(page).max(a);
            let hi = ((e - res.map.base) / page).min(b);
            let mut cleared = false;
            if emptied && lo < hi {
                let (start, len) = (res.map.base + lo * page, (hi - lo) * page);
                cleared = match &res.map.file {
                    Some(file) if kind != SectionKind::Data => {
                        file.punch(start - res.map.base, len)
                    }
                    _ => os::forget(start, len),
                };
                if cleared {
                    for p in &mut res.pages[lo..hi] {
                        p.resident = false;
                    }
                }
            }
            if !cleared {
                clear(inner.0, inner.1);
            }
            return;
        }
        let mut run: Option<(usize, usize)> = None;
        for i in a..b {
            let p = &res.pages[i];
            if p.live == 0 && p.usage != PageUse::Lost {
                run = Some(run.map_or((i, i + 1), |(lo, _)| (lo, i + 1)));
            } else if let Some((lo, hi)) = run.take() {
                Self::release_pages(res, page, lo, hi);
            }
        }
        if let Some((lo, hi)) = run {
            Self::release_pages(res, page, lo, hi);
        }
    }

    /// Returns every whole free page that a kind keeps (see
    /// [`Self::release`]) to the pool, so that any kind can take it;
    /// whether any was found.
    fn reclaim(res: &mut Reservation, page: usize) -> bool {
        let base = res.map.base;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for list in &res.shared {
            for (s, e) in list.iter() {
                let (lo, hi) = ((s - base).div_ceil(page), (e - base) / page);
                if lo < hi {
                    runs.push((lo, hi));
                }
            }
        }
        for &(lo, hi) in &runs {
            Self::release_pages(res, page, lo, hi);
        }
        !runs.is_empty()
    }

    /// Returns the emptied pages `lo..hi` (indices) of `res` to its pool:
    /// inaccessible, their memory given back.
    fn release_pages(res: &mut Reservation, page: usize, lo: usize, hi: usize) {
        let start = res.map.base + lo * page;
        let end = res.map.base + hi * page;
        for k in [SectionKind::Text, SectionKind::Rodata, SectionKind::Data] {
            if res.pages[lo..hi]
                .iter()
                .any(|p| p.usage == PageUse::Shared(k))
            {
                res.shared[k.index()].remove(start, end);
            }
        }
        // Pooled pages read as zero when handed out again (to any kind):
        // if their memory cannot be given back, they are not pooled.
        let result = match &res.map.file {
            Some(file) => os::map_private(start, end - start, libc::PROT_NONE)
                .map(|()| file.punch(start - res.map.base, end - start)),
            None => os::protect(start, end - start, libc::PROT_NONE)
                .map(|()| os::forget(start, end - start)),
        };
        let usage = match result {
            Ok(true) => {
                res.pool.insert(start, end);
                PageUse::Free
            }
            // Keeps whatever mapping or contents it had; never handed out
            // again.
            Ok(false) | Err(_) => PageUse::Lost,
        };
        for p in &mut res.pages[lo..hi] {
            p.usage = usage;
            p.resident &= usage != PageUse::Free;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_helpers() {
        assert!(within_rel32(0x1000, 0x1000 + i32::MAX as usize));
        assert!(!within_rel32(0x1000, 0x1000 + i32::MAX as usize + 1));
        assert!(within_rel32(0x1_0000_0000, 0x1_0000_0000 - (1 << 31)));
        assert!(!within_rel32(0x1_0000_0000, 0x1_0000_0000 - (1 << 31) - 1));
        assert!(within_branch26(0x1000_0000, 0x1000_0000 + (1 << 27) - 4));
        assert!(!within_branch26(0x1000_0000, 0x1000_0000 + (1 << 27)));
        assert!(within_branch26(0x1000_0000, 0x1000_0000 - (1 << 27)));
        assert!(!within_branch26(0x1000_0000, 0x1000_0002));
    }

    #[test]
    fn manager_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MemoryManager>();
        assert_send_sync::<LoadBatch>();
        assert_send_sync::<FinalizedSection>();
    }
}
