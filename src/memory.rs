//! The section memory manager: where loaded modules' text, rodata and data
//! live, and the W^X discipline over them.
//!
//! Address space is reserved in *reservations* (one `mmap(PROT_NONE,
//! MAP_NORESERVE)` each) small enough that a direct call between any two
//! places inside one always reaches: ≤ 2 GiB for x86-64 `rel32`, ≤ 128 MiB
//! for AArch64 `BL`. Pages are handed out from a reservation to one section
//! kind at a time, and sections are carved from those pages at their
//! alignment, so many small modules share pages without mixing protections.
//!
//! Life of an allocation, in the types:
//! - [`MemoryManager::begin_batch`] opens a [`LoadBatch`];
//!   [`MemoryManager::allocate`] places a section in it and returns a
//!   [`SectionRef`]; [`LoadBatch::bytes_mut`] fills and relocates it (the
//!   memory is RW, never executable).
//! - [`MemoryManager::finalize`] consumes the batch and returns a
//!   [`FinalizedBatch`] of [`FinalizedSection`]s: text pages become R+X,
//!   rodata pages R, data pages stay RW; the instruction cache is flushed
//!   where the ISA needs it. There is no way back to writable: W^X by value.
//! - [`MemoryManager::free`] consumes a [`FinalizedSection`] and returns its
//!   bytes for reuse; [`MemoryManager::discard`] drops an unfinalized batch.
//!
//! Invariants:
//! - No page is ever writable and executable at once. Page states go
//!   `NONE → RW (open) → R+X or R (sealed) → NONE (free) → ...`; data pages
//!   stay RW.
//! - Text and rodata pages that are still writable belong to exactly one open
//!   batch, and only that batch's sections are placed on them: finalizing a
//!   batch seals only its own pages and never takes writability from another
//!   batch. Space left over on a sealed page is not reused until every
//!   section on the page is freed; the page then returns to the reservation's
//!   page pool (PROT_NONE, memory released) and may be opened RW again, for
//!   any kind, since no finalized code remains on it.
//! - Data pages are shared by every batch; their free bytes are kept in a
//!   per-reservation free list with neighbours coalesced.
//! - Every handle ([`LoadBatch`], [`FinalizedSection`]) holds the mapping
//!   alive, so no handle ever points at unmapped memory, even if the manager
//!   is dropped first. A handle dropped without `finalize`/`free`/`discard`
//!   only leaks its bytes until the manager and all handles are gone.
//! - Running out of address space or of the configured limits is an `Err`.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
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
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Text => "text",
            SectionKind::Rodata => "rodata",
            SectionKind::Data => "data",
        }
    }
}

/// Sizes and limits of a [`MemoryManager`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Bytes of address space per reservation (rounded up to whole pages);
    /// at most [`MemoryConfig::MAX_RESERVATION`].
    pub reservation_size: usize,
    /// How many reservations may be taken in all; one more is an error.
    pub max_reservations: usize,
}

impl MemoryConfig {
    /// The largest reservation in which every direct call reaches: x86-64
    /// `rel32` spans ±2 GiB, AArch64 `BL` ±128 MiB (128 MiB also elsewhere).
    #[cfg(target_arch = "x86_64")]
    pub const MAX_RESERVATION: usize = 1 << 31;
    #[cfg(not(target_arch = "x86_64"))]
    pub const MAX_RESERVATION: usize = 1 << 27;

    /// The default reservation size: 1 GiB on x86-64, 128 MiB elsewhere.
    #[cfg(target_arch = "x86_64")]
    pub const DEFAULT_RESERVATION: usize = 1 << 30;
    #[cfg(not(target_arch = "x86_64"))]
    pub const DEFAULT_RESERVATION: usize = 1 << 27;
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            reservation_size: Self::DEFAULT_RESERVATION,
            max_reservations: 64,
        }
    }
}

/// Which reservation an address lies in. Direct calls reach only within one;
/// calls between reservations need a veneer or an indirect call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(u32);

impl ReservationId {
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

/// One reservation's mapping; unmapped when the manager and every handle
/// into it are gone.
#[derive(Debug)]
struct Mapping {
    base: usize,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` was returned by our own mmap and nothing
        // refers into it any more: every handle holds an `Arc<Mapping>`, and
        // this is the last one.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}

/// What a page of a reservation is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageUse {
    /// In the page pool, or a gap left by alignment: PROT_NONE.
    Free,
    /// RW text or rodata owned by the open batch `batch`.
    Open { kind: SectionKind, batch: u64 },
    /// Finalized text (R+X) or rodata (R).
    Sealed(SectionKind),
    /// Data: RW, shared by every batch.
    Data,
    /// A protection change failed; never used again.
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct PageInfo {
    usage: PageUse,
    /// Sections (open or finalized) with at least one byte on the page.
    live: u32,
}

/// Disjoint free byte ranges `start → end`, neighbours coalesced.
#[derive(Clone, Debug, Default)]
struct FreeList {
    ranges: BTreeMap<usize, usize>,
}

fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

impl FreeList {
    /// Adds `start..end`, which must not overlap what is there.
    fn insert(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        if let Some((&ps, &pe)) = self.ranges.range(..=start).next_back() {
            debug_assert!(pe <= start, "overlapping free ranges");
            if pe == start {
                s = ps;
                self.ranges.remove(&ps);
            }
        }
        if let Some(ne) = self.ranges.remove(&end) {
            e = ne;
        }
        self.ranges.insert(s, e);
    }

    /// Removes and returns the lowest `size` bytes starting at a multiple of
    /// `align` (a power of two). First fit: the lists stay short because
    /// sealed pages drop out of them.
    fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        let (s, e, at) = self.ranges.iter().find_map(|(&s, &e)| {
            let at = align_up(s, align)?;
            (at.checked_add(size)? <= e).then_some((s, e, at))
        })?;
        self.ranges.remove(&s);
        if s < at {
            self.ranges.insert(s, at);
        }
        if at + size < e {
            self.ranges.insert(at + size, e);
        }
        Some(at)
    }

    /// Removes whatever lies in `start..end`.
    fn remove(&mut self, start: usize, end: usize) {
        let overlapping: Vec<(usize, usize)> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|&(_, &e)| e > start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.ranges.remove(&s);
            if s < start {
                self.ranges.insert(s, start);
            }
            if e > end {
                self.ranges.insert(end, e);
            }
        }
    }

    fn total(&self) -> usize {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }
}

/// One reserved range and the state of its pages.
#[derive(Debug)]
struct Reservation {
    map: Arc<Mapping>,
    /// Offset of the first page never handed out.
    bump: usize,
    /// Free page runs below `bump` (PROT_NONE), absolute addresses.
    pool: FreeList,
    /// Free bytes on this reservation's data pages.
    data_free: FreeList,
    /// One entry per page below `bump`.
    pages: Vec<PageInfo>,
}

impl Reservation {
    fn contains(&self, addr: usize) -> bool {
        addr >= self.map.base && addr - self.map.base < self.map.len
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
    /// The address the section will have where it runs; `addr` unless a
    /// remote executor moved it.
    target: u64,
    map: Arc<Mapping>,
}

/// Writable space left on an open batch's text or rodata pages.
#[derive(Debug)]
struct OpenSpace {
    res: u32,
    kind: SectionKind,
    free: FreeList,
}

/// Sections being filled and relocated: writable, not executable.
/// Consumed by [`MemoryManager::finalize`] or [`MemoryManager::discard`].
#[must_use = "a dropped batch leaks its memory; finalize or discard it"]
#[derive(Debug)]
pub struct LoadBatch {
    manager: u64,
    id: u64,
    /// The reservation tried first, so a batch's sections stay within reach
    /// of each other.
    home: Option<u32>,
    sections: Vec<Placed>,
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

    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// The section's address in this process.
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

    pub fn kind(&self, r: SectionRef) -> Option<SectionKind> {
        self.placed(r).map(|p| p.kind)
    }

    pub fn reservation(&self, r: SectionRef) -> Option<ReservationId> {
        self.placed(r).map(|p| ReservationId(p.res))
    }

    /// The section's bytes.
    pub fn bytes(&self, r: SectionRef) -> Option<&[u8]> {
        let p = self.placed(r)?;
        // SAFETY: `addr..addr+len` lies in a mapping kept alive by `p.map`,
        // on pages that are RW until this batch is consumed (text/rodata
        // pages are owned by this batch and only its `finalize` seals them;
        // data pages are never sealed). Sections never overlap, and writes
        // go through `bytes_mut(&mut self)`, so no writer aliases this read.
        Some(unsafe { std::slice::from_raw_parts(p.addr as *const u8, p.len) })
    }

    /// The section's bytes, to fill and relocate.
    pub fn bytes_mut(&mut self, r: SectionRef) -> Option<&mut [u8]> {
        let p = self.placed(r)?;
        // SAFETY: as in `bytes`; `&mut self` makes this the only reference
        // into the batch's sections, and no other batch or finalized
        // section overlaps this range.
        Some(unsafe { std::slice::from_raw_parts_mut(p.addr as *mut u8, p.len) })
    }
}

/// A finalized section: text R+X, rodata R, data RW. Give it back with
/// [`MemoryManager::free`].
#[derive(Debug)]
pub struct FinalizedSection {
    manager: u64,
    kind: SectionKind,
    addr: usize,
    len: usize,
    span: usize,
    res: u32,
    target: u64,
    /// Held only to keep the mapping alive while the handle exists.
    _map: Arc<Mapping>,
}

impl FinalizedSection {
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

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.addr as *const u8
    }

    pub fn reservation(&self) -> ReservationId {
        ReservationId(self.res)
    }

    /// The bytes of a text or rodata section, immutable from now on; `None`
    /// for data, which running code may write at any time.
    pub fn bytes(&self) -> Option<&[u8]> {
        if self.kind == SectionKind::Data {
            return None;
        }
        // SAFETY: the range is mapped (held by `self._map`) and readable
        // (R+X or R); its pages are sealed and nothing writes them again
        // until `free` consumes this handle (or, after a failed protection
        // change, ever).
        Some(unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) })
    }
}

/// The sections of a finalized batch, looked up by the [`SectionRef`]s
/// `allocate` returned.
#[derive(Debug)]
pub struct FinalizedBatch {
    id: u64,
    sections: Vec<Option<FinalizedSection>>,
}

impl FinalizedBatch {
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

/// Address-space use, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    pub reservations: usize,
    /// Pages holding at least one section, or lost.
    pub pages_in_use: usize,
    /// Bytes in the data free lists.
    pub data_free_bytes: usize,
}

/// Owns the reservations and hands out section memory; see the module docs.
#[derive(Debug)]
pub struct MemoryManager {
    id: u64,
    config: MemoryConfig,
    page: usize,
    reservations: Vec<Reservation>,
    next_batch: u64,
}

fn os_page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(n) {
        Ok(n) if n.is_power_of_two() && n >= 4096 => n,
        _ => 4096,
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_NORESERVE: libc::c_int = 0;

/// Changes the protection of whole pages we own.
///
/// Callers pass only page runs of their own reservation whose state allows
/// the change (see the module invariants) and to which no Rust reference is
/// live across a change that removes write access.
fn protect(start: usize, len: usize, prot: libc::c_int) -> std::io::Result<()> {
    // SAFETY: the range is page-aligned and inside one of our reservations
    // (a caller obligation above); mprotect touches no other memory, and a
    // failure leaves the old protections, which the caller records.
    let rc = unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes freshly written code at `start..start+len` visible to instruction
/// fetch. x86-64 keeps instruction and data caches coherent: nothing to do.
#[cfg(not(target_arch = "aarch64"))]
fn flush_icache(_start: usize, _len: usize) {}

/// Makes freshly written code at `start..start+len` visible to instruction
/// fetch: clean the data cache to the point of unification, invalidate the
/// instruction cache, then synchronise. Other threads run the code only after
/// taking the lock that published it, which orders them after this.
#[cfg(target_arch = "aarch64")]
fn flush_icache(start: usize, len: usize) {
    #[cfg(target_vendor = "apple")]
    {
        extern "C" {
            fn sys_icache_invalidate(start: *mut libc::c_void, len: usize);
        }
        // SAFETY: the range is mapped and readable (just sealed R+X).
        unsafe { sys_icache_invalidate(start as *mut libc::c_void, len) };
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        use std::arch::asm;
        let ctr: u64;
        // SAFETY: CTR_EL0 is readable from EL0 on Linux (the kernel traps
        // and emulates it where it is not) and reading it has no effect.
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
        let dline = 4usize << ((ctr >> 16) & 0xf);
        let iline = 4usize << (ctr & 0xf);
        let end = start + len;
        let mut a = start & !(dline - 1);
        while a < end {
            // SAFETY: cache maintenance on a mapped, readable address
            // changes no architectural memory contents.
            unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack)) };
            a += dline;
        }
        // SAFETY: barriers only order memory operations.
        unsafe { asm!("dsb ish", options(nostack)) };
        let mut a = start & !(iline - 1);
        while a < end {
            // SAFETY: as for `dc cvau` above.
            unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack)) };
            a += iline;
        }
        // SAFETY: barriers only order memory and instruction fetch.
        unsafe { asm!("dsb ish", "isb", options(nostack)) };
    }
}

impl MemoryManager {
    /// A manager with the given limits. Reserves nothing until the first
    /// allocation.
    pub fn new(config: MemoryConfig) -> Result<Self> {
        let page = os_page_size();
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
        })
    }

    pub fn config(&self) -> MemoryConfig {
        self.config
    }

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

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            reservations: self.reservations.len(),
            pages_in_use: self
                .reservations
                .iter()
                .flat_map(|r| r.pages.iter())
                .filter(|p| p.usage != PageUse::Free)
                .count(),
            data_free_bytes: self.reservations.iter().map(|r| r.data_free.total()).sum(),
        }
    }

    /// Opens a batch of sections to place, fill, relocate and finalize
    /// together. Text and rodata of one batch share pages; of different
    /// batches, never.
    pub fn begin_batch(&mut self) -> LoadBatch {
        let id = self.next_batch;
        self.next_batch += 1;
        LoadBatch {
            manager: self.id,
            id,
            home: None,
            sections: Vec::new(),
            open: Vec::new(),
        }
    }

    fn check_owner(&self, manager: u64) -> Result<()> {
        if manager == self.id {
            Ok(())
        } else {
            Err(Error::Argument(
                "memory handle belongs to another memory manager".into(),
            ))
        }
    }

    /// Places a `size`-byte section of `kind` aligned to `align` (a power of
    /// two) in `batch`. Its bytes are RW until the batch is finalized.
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

        let mut order: Vec<u32> = Vec::with_capacity(self.reservations.len() + 1);
        order.extend(batch.home);
        order.extend(
            (0..self.reservations.len() as u32)
                .rev()
                .filter(|&r| Some(r) != batch.home),
        );
        let mut placed = None;
        for r in order {
            if let Some(addr) = self.place_in(r, batch, kind, span, align)? {
                placed = Some((r, addr));
                break;
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
        batch.sections.push(Placed {
            kind,
            addr,
            len: size,
            span,
            res,
            target: addr as u64,
            map: Arc::clone(&self.reservations[res as usize].map),
        });
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
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing; it replaces nothing and nothing refers to it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Runtime(format!(
                "out of JIT memory: cannot reserve {len} bytes of address space: {}",
                std::io::Error::last_os_error()
            )));
        }
        self.reservations.push(Reservation {
            map: Arc::new(Mapping {
                base: p as usize,
                len,
            }),
            bump: 0,
            pool: FreeList::default(),
            data_free: FreeList::default(),
            pages: Vec::new(),
        });
        Ok((self.reservations.len() - 1) as u32)
    }

    /// Places `span` bytes in reservation `r`: on the batch's open pages
    /// (text, rodata) or the shared data pages if they have room, else on
    /// fresh pages. `None` if the reservation is full.
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
        let reused = match kind {
            SectionKind::Data => res.data_free.take(span, align),
            _ => batch
                .open
                .iter_mut()
                .find(|o| o.res == r && o.kind == kind)
                .and_then(|o| o.free.take(span, align)),
        };
        if let Some(addr) = reused {
            Self::mark_live(res, page, addr, span);
            return Ok(Some(addr));
        }

        // Never overflows: span <= reservation size, which is page-aligned.
        let bytes = span.div_ceil(page) * page;
        let Some(start) = Self::take_pages(res, page, bytes, align.max(page)) else {
            return Ok(None);
        };
        if let Err(e) = protect(start, bytes, libc::PROT_READ | libc::PROT_WRITE) {
            // Still PROT_NONE (or partly RW, which is harmless for free
            // pages that get opened RW anyway).
            res.pool.insert(start, start + bytes);
            return Err(Error::Runtime(format!(
                "out of JIT memory: cannot make {bytes} bytes writable: {e}"
            )));
        }
        let usage = match kind {
            SectionKind::Data => PageUse::Data,
            _ => PageUse::Open {
                kind,
                batch: batch.id,
            },
        };
        let first = (start - res.map.base) / page;
        for p in &mut res.pages[first..first + bytes / page] {
            *p = PageInfo { usage, live: 0 };
        }
        let (tail, end) = (start + span, start + bytes);
        if tail < end {
            match kind {
                SectionKind::Data => res.data_free.insert(tail, end),
                _ => match batch.open.iter_mut().find(|o| o.res == r && o.kind == kind) {
                    Some(o) => o.free.insert(tail, end),
                    None => {
                        let mut free = FreeList::default();
                        free.insert(tail, end);
                        batch.open.push(OpenSpace { res: r, kind, free });
                    }
                },
            }
        }
        Self::mark_live(res, page, start, span);
        Ok(Some(start))
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
        }
    }

    /// Seals the batch: text pages R+X (instruction cache flushed), rodata
    /// pages R, data as it was. The batch's unused open space is given up
    /// until its pages are entirely free again.
    ///
    /// If a protection change fails the batch's memory is leaked (its pages
    /// are never reused) and the error returned; no page is left W+X.
    pub fn finalize(&mut self, batch: LoadBatch) -> Result<FinalizedBatch> {
        self.check_owner(batch.manager)?;
        let page = self.page;
        let mut runs: Vec<(u32, usize, usize, SectionKind)> = batch
            .sections
            .iter()
            .filter(|s| s.kind != SectionKind::Data)
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
            let prot = match kind {
                SectionKind::Text => libc::PROT_READ | libc::PROT_EXEC,
                _ => libc::PROT_READ,
            };
            let result = protect(lo, hi - lo, prot);
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
                flush_icache(lo, hi - lo);
            }
        }

        let sections = batch
            .sections
            .into_iter()
            .map(|s| {
                Some(FinalizedSection {
                    manager: self.id,
                    kind: s.kind,
                    addr: s.addr,
                    len: s.len,
                    span: s.span,
                    res: s.res,
                    target: s.target,
                    _map: s.map,
                })
            })
            .collect();
        Ok(FinalizedBatch {
            id: batch.id,
            sections,
        })
    }

    /// Returns a finalized section's memory for reuse. Pages left with no
    /// section are made inaccessible, their memory released, and pooled.
    pub fn free(&mut self, section: FinalizedSection) -> Result<()> {
        self.check_owner(section.manager)?;
        self.release(section.res, section.kind, section.addr, section.span);
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

    fn release(&mut self, r: u32, kind: SectionKind, addr: usize, span: usize) {
        let page = self.page;
        let res = &mut self.reservations[r as usize];
        if kind == SectionKind::Data {
            res.data_free.insert(addr, addr + span);
        }
        let (a, b) = Self::page_range(res, page, addr, span);
        let mut run: Option<(usize, usize)> = None;
        for i in a..b {
            let p = &mut res.pages[i];
            p.live = p.live.saturating_sub(1);
            if p.live == 0 && p.usage != PageUse::Lost {
                run = Some(run.map_or((i, i + 1), |(lo, _)| (lo, i + 1)));
            } else if let Some((lo, hi)) = run.take() {
                Self::release_pages(res, page, kind, lo, hi);
            }
        }
        if let Some((lo, hi)) = run {
            Self::release_pages(res, page, kind, lo, hi);
        }
    }

    /// Returns the emptied pages `lo..hi` (indices) of `res` to its pool.
    fn release_pages(res: &mut Reservation, page: usize, kind: SectionKind, lo: usize, hi: usize) {
        let start = res.map.base + lo * page;
        let end = res.map.base + hi * page;
        if kind == SectionKind::Data {
            res.data_free.remove(start, end);
        }
        match protect(start, end - start, libc::PROT_NONE) {
            Ok(()) => {
                // SAFETY: the pages are ours, inaccessible and hold no
                // section; dropping their contents is what we want.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
                for p in &mut res.pages[lo..hi] {
                    p.usage = PageUse::Free;
                }
                res.pool.insert(start, end);
            }
            Err(_) => {
                // Keeps whatever protection it had; never handed out again.
                for p in &mut res.pages[lo..hi] {
                    p.usage = PageUse::Lost;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_list_coalesces_and_splits() {
        let mut f = FreeList::default();
        f.insert(100, 200);
        f.insert(300, 400);
        f.insert(200, 300);
        assert_eq!(f.ranges.len(), 1);
        assert_eq!(f.total(), 300);
        assert_eq!(f.take(10, 64), Some(128));
        assert_eq!(f.ranges.get(&100), Some(&128));
        assert_eq!(f.ranges.get(&138), Some(&400));
        f.insert(128, 138);
        assert_eq!(f.ranges.len(), 1);
        f.remove(150, 250);
        assert_eq!(f.ranges.get(&100), Some(&150));
        assert_eq!(f.ranges.get(&250), Some(&400));
        assert_eq!(f.take(200, 1), None);
        assert_eq!(f.take(150, 1), Some(250));
        assert_eq!(f.total(), 50);
    }

    #[test]
    fn free_list_remove_spanning_several() {
        let mut f = FreeList::default();
        for s in [0, 20, 40, 60] {
            f.insert(s, s + 10);
        }
        f.remove(5, 65);
        let v: Vec<_> = f.ranges.iter().map(|(&s, &e)| (s, e)).collect();
        assert_eq!(v, vec![(0, 5), (65, 70)]);
    }

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
