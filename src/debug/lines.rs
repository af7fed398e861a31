//! Line tables: which machine-code offsets of a function belong to which
//! IR instruction, and so to which `.kir` line and column.
//!
//! Three steps, each cheap enough to run on every compile:
//! - lowering records, per IR instruction, the index of its first machine
//!   instruction and the instruction's source location ([`SourceMarks`],
//!   one push per IR instruction);
//! - the emitter turns those into code offsets with a [`LineRecorder`]
//!   (one call per machine instruction, a compare unless a mark starts
//!   there; generators without machine instructions call
//!   [`LineRecorder::at`] per IR instruction);
//! - the result is a [`LineTable`]: delta-encoded bytes, about three per
//!   IR instruction; or, for a function of at least [`RAW_MIN`]
//!   instructions compiled by the fast generator, the entries as emitted
//!   (12 bytes each, gathered in a few instructions each where encoding
//!   takes several times that), which lookups, debuggers and profilers
//!   read as the encoded table of the same entries (a registry record
//!   keeps either form as it is: [`LineTable::write_stored`]).
//!
//! Invariants: entries are in increasing offset order; an entry covers the
//! code from its offset to the next entry's (or the function's end); the
//! first entry is at offset 0 and carries the function's own location (the
//! prologue); two entries never have the same offset, and consecutive
//! entries never have the same location (a table kept as emitted may hold
//! such entries: it reads as if the last of each offset's were kept, less
//! those with the location of the one before).

use crate::ir::{Inst, Loc, SrcMap};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// The offsets buffer of the last [`LineRecorder::without_marks`]
    /// recorder that this thread finished (if it has room for at most
    /// [`KEEP_NOTED`] entries), for the next one: a small function's
    /// compile then allocates none.
    static NOTED: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// The most entries of an offsets buffer kept for the next function
/// (4 MiB): larger ones are freed. As the compiler's and the verifier's
/// buffers, it stays with the thread up to functions of several hundred
/// thousand instructions, which would otherwise allocate and fault in
/// their 4 bytes per instruction anew for every compile.
const KEEP_NOTED: usize = 1 << 20;

/// Whether compiles record line tables (see [`set_recording`]).
static RECORDING: AtomicBool = AtomicBool::new(true);

/// Turns line-table recording on or off for every compile in the process
/// (on by default). It exists to measure what line tables cost (the
/// benchmark report's debug-information table); without them, backtraces
/// and debuggers know functions but not lines.
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// Whether compiles record line tables.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Where lowering marks the start of each IR instruction's machine code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMarks {
    /// The function's `@name` token: the location of the prologue.
    pub func: Loc,
    /// `(index of the first machine instruction, location)` per lowered IR
    /// instruction, in increasing index order.
    pub marks: Vec<(u32, Loc)>,
    /// Whether to record marks ([`recording`] when made).
    enabled: bool,
}

impl SourceMarks {
    /// Marks for a function whose `@name` token is at `func`.
    pub fn new(func: Loc) -> SourceMarks {
        SourceMarks {
            func,
            marks: Vec::new(),
            enabled: recording(),
        }
    }

    /// Empties the marks (keeping the buffer) for a new function whose
    /// `@name` token is at `func`, re-reading [`recording`]. Lowering that
    /// reuses one `SourceMarks` across functions calls this per function.
    pub fn reset(&mut self, func: Loc) {
        self.func = func;
        self.marks.clear();
        self.enabled = recording();
    }

    /// The IR instruction at `loc` starts at machine instruction `minst`.
    #[inline]
    pub fn mark(&mut self, minst: usize, loc: Loc) {
        if self.enabled {
            self.marks.push((minst as u32, loc));
        }
    }
}

/// Functions with at least this many IR instructions keep their line
/// table as emitted ([`RawEntry`] per compiled instruction, 12 bytes)
/// instead of delta-encoded (about 3 bytes per entry): gathering the
/// entries costs a few instructions each, encoding them (merging equal
/// neighbours, variable-length fields) several times that, and only the
/// encoded form's memory matters for small functions (an engine may hold
/// many thousands of them). Lookups read either form directly; debugger
/// and profiler registrations see the same entries ([`LineTable::iter`]).
pub const RAW_MIN: usize = 256;

/// One entry of a table kept as emitted (see [`RAW_MIN`]): the code from
/// `offset` on belongs to line `line`, column `col`. Entries are in
/// increasing offset order, several may share an offset (the last one
/// counts) and neighbours may share a location.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub offset: u32,
    pub line: u32,
    pub col: u32,
}

/// The size of a [`RawEntry`] in bytes (three `u32`, no padding).
const RAW_BYTES: usize = std::mem::size_of::<RawEntry>();

/// A [`LineTable`]'s first byte: its entries are delta-encoded.
const ENCODED: u8 = 0;
/// A [`LineTable`]'s first byte: its entries are [`RawEntry`]s.
const RAW: u8 = 1;

impl RawEntry {
    #[inline(always)]
    fn new(offset: u32, loc: Loc) -> RawEntry {
        RawEntry {
            offset,
            line: loc.line,
            col: loc.col,
        }
    }

    /// The entry's bytes (native byte order).
    #[inline(always)]
    fn bytes(self) -> [u8; RAW_BYTES] {
        // SAFETY: `RawEntry` is `repr(C)` of three `u32`: 12 bytes, no
        // padding, every byte initialized.
        unsafe { std::mem::transmute::<RawEntry, [u8; RAW_BYTES]>(self) }
    }
}

/// A function's line table: `(code offset, location)` entries, delta
/// encoded (see the module docs), or for a large function as emitted
/// ([`RAW_MIN`]). Either form reads as the same entries and lookups.
#[derive(Clone, Debug, Default)]
pub struct LineTable {
    /// Empty (no entries), or the form ([`ENCODED`] or [`RAW`]) then the
    /// entries: per entry ULEB128 offset delta, SLEB128 line delta,
    /// ULEB128 column; or [`RawEntry`]s' bytes.
    bytes: Vec<u8>,
}

impl PartialEq for LineTable {
    /// The same entries (whatever the forms).
    fn eq(&self, other: &LineTable) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for LineTable {}

impl LineTable {
    /// The bytes [`LineTable::write_stored`] appends, less its length
    /// prefix (at most 5 bytes more).
    pub fn stored_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the table is kept as emitted (see [`RAW_MIN`]).
    pub fn is_raw(&self) -> bool {
        self.bytes.first() == Some(&RAW)
    }

    /// The entries, in offset order (a table kept as emitted merged as an
    /// encoded one is: the last of the entries at one offset, none with
    /// the location of the entry before it).
    pub fn iter(&self) -> LineIter<'_> {
        self.stored().iter()
    }

    /// The location of the code at `offset` (that of the last entry at or
    /// before it); `Loc::NONE` for an empty table.
    pub fn lookup(&self, offset: u32) -> Loc {
        self.stored().lookup(offset)
    }

    /// The table's bytes as a registry record keeps them.
    fn stored(&self) -> StoredTable<'_> {
        StoredTable::of(&self.bytes)
    }

    /// Appends the table for [`StoredTable::read`]: its ULEB128 length,
    /// then its bytes (raw entries in native byte order: records stay in
    /// the process).
    #[inline]
    pub fn write_stored(&self, out: &mut Vec<u8>) {
        write_uleb(out, self.bytes.len() as u64);
        out.extend_from_slice(&self.bytes);
    }

    /// A table from entries in increasing offset order (tests and tools;
    /// emitters use a [`LineRecorder`]).
    pub fn from_entries(entries: impl IntoIterator<Item = (u32, Loc)>) -> LineTable {
        let mut b = Builder::encoded(0);
        for (o, loc) in entries {
            b.add(o, loc);
        }
        b.finish()
    }

    /// A table kept as emitted, from entries in increasing offset order
    /// (tests: it reads as [`LineTable::from_entries`] of them). At least
    /// one entry.
    pub fn from_raw_entries(entries: impl IntoIterator<Item = (u32, Loc)>) -> LineTable {
        let mut bytes = vec![RAW];
        for (o, l) in entries {
            bytes.extend_from_slice(&RawEntry::new(o, l).bytes());
        }
        LineTable { bytes }
    }
}

/// A line table's bytes as stored ([`LineTable::write_stored`]): encoded,
/// or [`RawEntry`]s in native byte order (not necessarily aligned).
#[derive(Clone, Copy, Debug)]
pub struct StoredTable<'a> {
    bytes: &'a [u8],
    raw: bool,
}

impl<'a> StoredTable<'a> {
    /// The table of a [`LineTable`]'s bytes.
    fn of(bytes: &'a [u8]) -> StoredTable<'a> {
        match bytes.split_first() {
            Some((&form, bytes)) => StoredTable {
                bytes,
                raw: form == RAW,
            },
            None => StoredTable { bytes, raw: false },
        }
    }

    /// Reads a table [`LineTable::write_stored`] wrote from the front of
    /// `at`.
    pub fn read(at: &mut &'a [u8]) -> Option<StoredTable<'a>> {
        let n = usize::try_from(read_uleb(at)?).ok()?;
        let (bytes, rest) = (at.get(..n)?, at.get(n..)?);
        *at = rest;
        let t = StoredTable::of(bytes);
        (!t.raw || t.bytes.len().is_multiple_of(RAW_BYTES)).then_some(t)
    }

    /// The `k`-th raw entry (`k` below the number of entries).
    #[inline]
    fn raw_at(&self, k: usize) -> (u32, Loc) {
        let e = &self.bytes[RAW_BYTES * k..RAW_BYTES * (k + 1)];
        let word = |i: usize| u32::from_ne_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        (word(0), Loc::new(word(4), word(8)))
    }

    /// The location of the code at `offset` (that of the last entry at or
    /// before it); `Loc::NONE` for an empty table.
    pub fn lookup(&self, offset: u32) -> Loc {
        if !self.raw {
            return lookup_encoded(self.bytes, offset);
        }
        // The entries are in offset order: the number at or before
        // `offset`, by bisection.
        let (mut lo, mut hi) = (0, self.bytes.len() / RAW_BYTES);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.raw_at(mid).0 <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            Loc::NONE
        } else {
            self.raw_at(lo - 1).1
        }
    }

    /// The entries, in offset order (see [`LineTable::iter`]).
    pub fn iter(&self) -> LineIter<'a> {
        LineIter {
            bytes: self.bytes,
            offset: 0,
            line: 0,
            raw: self.raw,
            last: None,
        }
    }
}

/// The location of the code at `offset` in a table's encoded bytes (an
/// encoded [`StoredTable`]'s).
pub fn lookup_encoded(bytes: &[u8], offset: u32) -> Loc {
    let mut found = Loc::NONE;
    for (o, loc) in LineIter::new(bytes) {
        if o > offset {
            break;
        }
        found = loc;
    }
    found
}

/// Decodes a [`LineTable`] (either form).
pub struct LineIter<'a> {
    bytes: &'a [u8],
    offset: u32,
    line: u32,
    /// `bytes` are [`RawEntry`]s (see [`StoredTable`]).
    raw: bool,
    /// The last raw entry's location returned.
    last: Option<Loc>,
}

impl<'a> LineIter<'a> {
    /// The entries of a table's encoded bytes.
    pub fn new(bytes: &'a [u8]) -> LineIter<'a> {
        LineIter {
            bytes,
            offset: 0,
            line: 0,
            raw: false,
            last: None,
        }
    }

    /// The next raw entry that an encoded table would have: the last at
    /// its offset, unless its location is the last one returned.
    fn next_raw(&mut self) -> Option<(u32, Loc)> {
        loop {
            let t = StoredTable {
                bytes: self.bytes,
                raw: true,
            };
            if self.bytes.len() < RAW_BYTES {
                return None;
            }
            let (o, loc) = t.raw_at(0);
            self.bytes = &self.bytes[RAW_BYTES..];
            if self.bytes.len() >= RAW_BYTES && t.raw_at(1).0 == o {
                // Replaced by the next entry (its instruction emitted no
                // code).
                continue;
            }
            if self.last == Some(loc) {
                continue;
            }
            self.last = Some(loc);
            return Some((o, loc));
        }
    }
}

impl Iterator for LineIter<'_> {
    type Item = (u32, Loc);

    fn next(&mut self) -> Option<(u32, Loc)> {
        if self.raw {
            return self.next_raw();
        }
        if self.bytes.is_empty() {
            return None;
        }
        let d = read_uleb(&mut self.bytes)?;
        let dl = read_sleb(&mut self.bytes)?;
        let col = read_uleb(&mut self.bytes)?;
        self.offset = self.offset.wrapping_add(d as u32);
        self.line = (self.line as i64).wrapping_add(dl) as u32;
        Some((self.offset, Loc::new(self.line, col as u32)))
    }
}

/// Reads a ULEB128 value from the front of `bytes`.
pub(crate) fn read_uleb(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
}

fn read_sleb(bytes: &mut &[u8]) -> Option<i64> {
    let mut v = 0i64;
    let mut shift = 0;
    loop {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        if shift < 64 {
            v |= ((b & 0x7f) as i64) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            if shift < 64 && b & 0x40 != 0 {
                v |= -1i64 << shift;
            }
            return Some(v);
        }
    }
}

/// Appends `v` as ULEB128.
pub fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Appends `v` as SLEB128.
pub fn write_sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Writes `v` (below 2^35) as ULEB128 into `buf` at `at`; the end.
#[inline]
fn put_uleb(buf: &mut [u8; 16], mut at: usize, mut v: u64) -> usize {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 || at == buf.len() - 1 {
            buf[at] = b;
            return at + 1;
        }
        buf[at] = b | 0x80;
        at += 1;
    }
}

/// Writes `v` (within ±2^34) as SLEB128 into `buf` at `at`; the end.
#[inline]
fn put_sleb(buf: &mut [u8; 16], mut at: usize, mut v: i64) -> usize {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done || at == buf.len() - 1 {
            buf[at] = b;
            return at + 1;
        }
        buf[at] = b | 0x80;
        at += 1;
    }
}

/// An entry with a field of more than one byte: its bytes (one entry is
/// at most 5 + 5 + 5 bytes, its fields being 32-bit) and their number.
/// Out of line and returning by value, so that [`Builder::extend`]'s loop
/// state stays in registers across the call.
#[cold]
#[inline(never)]
fn long_entry(d: u32, dl: i64, col: u32) -> ([u8; 16], usize) {
    let mut entry = [0u8; 16];
    let mut n = put_uleb(&mut entry, 0, d as u64);
    n = put_sleb(&mut entry, n, dl);
    n = put_uleb(&mut entry, n, col as u64);
    (entry, n)
}

/// Encodes entries, merging as the invariants require: a later entry at
/// the same offset replaces the pending one (its instruction emitted no
/// code), and an entry with the pending location adds nothing. (Its
/// bytes are a [`LineTable`]'s: they start with the form.)
struct Builder {
    bytes: Vec<u8>,
    pending: Option<(u32, Loc)>,
    /// The last entry written.
    offset: u32,
    line: u32,
    last: Option<Loc>,
}

impl Builder {
    #[inline]
    fn add(&mut self, offset: u32, loc: Loc) {
        match self.pending {
            Some((o, _)) if o == offset => self.pending = Some((o, loc)),
            Some((_, l)) if l == loc => {}
            Some(p) => {
                self.flush(p);
                self.pending = Some((offset, loc));
            }
            None => self.pending = Some((offset, loc)),
        }
    }

    /// [`Builder::add`] of `(offs[inst], locs[inst])` for each `inst` of
    /// `insts` (`Loc::NONE` for an `inst` past the end of `locs`): the
    /// same bytes, in one loop whose state is a few scalars (the fast
    /// generator's line table, one entry per IR instruction).
    ///
    /// The loop computes `add`'s result in a simpler form: the table is
    /// the entries with only the last of each run at one offset kept (the
    /// others' instructions emitted no code), less each one whose location
    /// is that of the entry written before it. So the loop looks at each
    /// entry with the next one's offset: it is written if that differs
    /// and its location is not the last written one; the last entry is
    /// left pending. Locations are compared as one `u64` key each; each
    /// entry is one 4-byte store into room reserved for all of them (the
    /// room is reserved again after a long entry, never per short one).
    ///
    /// `LOCATED`: every instruction of `insts` has a location (its index
    /// is below `locs.len()`), so that the loop looks each up without a
    /// bounds check.
    ///
    /// # Safety
    ///
    /// `offs` points to an offset (initialized) at the index of each
    /// instruction of `insts`; with `LOCATED`, each index is below
    /// `locs.len()`.
    #[inline]
    unsafe fn extend<const LOCATED: bool>(
        &mut self,
        offs: *const u32,
        insts: &[Inst],
        locs: &[Loc],
    ) {
        debug_assert!(!LOCATED || insts.iter().all(|i| i.index() < locs.len()));
        let loc_of = |i: Inst| locs.get(i.index()).copied().unwrap_or(Loc::NONE);
        // SAFETY: (the contract) for an instruction of `insts`.
        let off_of = |i: Inst| unsafe { *offs.add(i.index()) };
        let mut entries = insts.iter();
        // `add` until an entry is written (the first one or two): then
        // there is a pending entry and a last written one.
        let (po, pl, last) = loop {
            if let (Some((po, pl)), Some(last)) = (self.pending, self.last) {
                break (po, pl, last);
            }
            let Some(&i) = entries.next() else {
                return;
            };
            self.add(off_of(i), loc_of(i));
        };
        let Some(&first) = entries.as_slice().first() else {
            return;
        };
        if off_of(first) != po {
            // The pending entry is the last at its offset.
            self.flush((po, pl));
        }
        // The column in the high half, the line in the low one.
        let key = |l: Loc| (l.col as u64) << 32 | l.line as u64;
        // The last written entry's key (its line is `self.line`).
        let mut lk = key(self.last.unwrap_or(last));
        let mut offset = self.offset;
        let out = &mut self.bytes;
        let rest = entries.as_slice();
        // The last entry is left pending (looked up before the loop, so
        // that nothing but the loop's own state is live in it).
        let pending = rest.last().map(|&i| (off_of(i), loc_of(i)));
        // Each entry but the last is looked at with the next one's offset
        // (whether it is the last at its own): `p` walks the entries, up
        // to `end`, the last one (`rest` has at least `first`).
        let mut p = rest.as_ptr();
        let end = &rest[rest.len() - 1] as *const Inst;
        // The loop's state is a few scalars and pointers (kept in
        // registers): the entry pointer, the output pointer, the last
        // written offset and key, the locations.
        let (lp, ln) = (locs.as_ptr(), locs.len());
        loop {
            // Room for every entry left in its short form (and the fourth
            // byte of its store), and for one long entry.
            // SAFETY: `p` and `end` point into `rest`, `p <= end`.
            let left = unsafe { end.offset_from(p) as usize };
            out.reserve(3 * left + 16);
            // SAFETY: `len` is within the allocation.
            let mut dst = unsafe { out.as_mut_ptr().add(out.len()) };
            // An entry with a long field ends the loop; it is written
            // after it (out of the loop, so that its call does not take
            // the loop's registers).
            let mut long = None;
            while p < end {
                // SAFETY: `p < end`, the last entry of `rest`: `p` and the
                // entry after it are both in `rest`.
                let (i, o, next) = unsafe { ((*p).index() as u32, off_of(*p), off_of(*p.add(1))) };
                // SAFETY: `p < end`, so one past it is at most `end`.
                p = unsafe { p.add(1) };
                if o == next {
                    // Its instruction emitted no code.
                    continue;
                }
                let k = if LOCATED || (i as usize) < ln {
                    // SAFETY: `i` is in bounds of `locs` (checked, or with
                    // `LOCATED` by the contract).
                    key(unsafe { *lp.add(i as usize) })
                } else {
                    0
                };
                if k == lk {
                    continue;
                }
                let d = o - offset;
                let dl = k as u32 as i64 - lk as u32 as i64;
                let col = (k >> 32) as u32;
                offset = o;
                lk = k;
                if (d as u64 | col as u64 | (dl + 64) as u64) >= 0x80 {
                    long = Some((d, dl, col));
                    break;
                }
                let v = d | ((dl as u32 & 0x7f) << 8) | (col << 16);
                // SAFETY: on entering this loop, the capacity is at least
                // `len + 3 * r + 16` for the `r` entries left; each short
                // entry uses one of them and 3 bytes, so this 4-byte write
                // ends below `len + 3 * r + 4` (inside the allocation, in
                // its spare capacity, writable through the pointer: `u8`
                // has no invalid values or drop).
                unsafe {
                    dst.cast::<[u8; 4]>().write_unaligned(v.to_le_bytes());
                    dst = dst.add(3);
                }
            }
            // SAFETY: the bytes up to `dst` were written above (each
            // entry's write covers the bytes it adds), within the capacity;
            // `dst` is at or after the buffer's start.
            unsafe {
                let at = dst.offset_from(out.as_ptr()) as usize;
                out.set_len(at);
            }
            let Some((d, dl, col)) = long else {
                break;
            };
            // (At most `3 * (r - 1)` bytes were used since the reserve:
            // the 16 of a long entry fit without growing.)
            let (e, n) = long_entry(d, dl, col);
            out.extend_from_slice(&e[..n]);
        }
        self.offset = offset;
        self.line = lk as u32;
        self.last = Some(Loc::new(lk as u32, (lk >> 32) as u32));
        if pending.is_some() {
            self.pending = pending;
        }
    }

    /// Appends a three-byte entry (as the low three bytes of one 4-byte
    /// store).
    #[inline(always)]
    fn put3(&mut self, a: u8, b: u8, c: u8) {
        crate::wide::push_prefix(&mut self.bytes, [a, b, c, 0], 3);
    }

    #[inline]
    fn flush(&mut self, (offset, loc): (u32, Loc)) {
        if self.last == Some(loc) {
            // A replaced entry can leave two equal neighbours.
            return;
        }
        let (d, dl, col) = (
            offset - self.offset,
            loc.line as i64 - self.line as i64,
            loc.col,
        );
        self.offset = offset;
        self.line = loc.line;
        self.last = Some(loc);
        if d < 0x80 && (-64..64).contains(&dl) && col < 0x80 {
            // The common entry: three one-byte fields.
            self.put3(d as u8, (dl & 0x7f) as u8, col as u8);
            return;
        }
        self.write_long(d, dl, col);
    }

    /// An entry with a field of more than one byte (out of line).
    #[cold]
    #[inline(never)]
    fn write_long(&mut self, d: u32, dl: i64, col: u32) {
        let (entry, n) = long_entry(d, dl, col);
        self.bytes.extend_from_slice(&entry[..n]);
    }

    /// An empty builder of an encoded table, with room for `room` bytes
    /// of entries.
    #[inline]
    fn encoded(room: usize) -> Builder {
        let mut bytes = Vec::with_capacity(room + 1);
        bytes.push(ENCODED);
        Builder::of(bytes)
    }

    /// A builder of the table whose form and entries so far are `bytes`.
    #[inline]
    fn of(bytes: Vec<u8>) -> Builder {
        Builder {
            bytes,
            pending: None,
            offset: 0,
            line: 0,
            last: None,
        }
    }

    /// A builder whose bytes are a table kept as emitted (room for about
    /// `insts` entries), its first entry `(0, func)`: only
    /// [`LineRecorder`] appends to it, as [`RawEntry`]s.
    #[inline(never)]
    fn raw(func: Loc, insts: usize) -> Builder {
        let mut bytes = Vec::with_capacity(1 + RAW_BYTES * (insts + 16));
        bytes.push(RAW);
        bytes.extend_from_slice(&RawEntry::new(0, func).bytes());
        Builder::of(bytes)
    }

    fn finish(mut self) -> LineTable {
        if let Some(p) = self.pending.take() {
            self.flush(p);
        }
        LineTable { bytes: self.bytes }
    }
}

/// Builds one function's [`LineTable`] while its code is emitted.
pub struct LineRecorder<'a> {
    marks: &'a [(u32, Loc)],
    next: usize,
    current: Loc,
    table: Builder,
    /// [`recording`] when made: `at` does nothing when off.
    enabled: bool,
    /// Room for a code offset per IR instruction number (see
    /// [`LineRecorder::offsets_room`]; its length stays 0: only the
    /// entries written are read).
    offsets: Vec<u32>,
    /// The instruction numbers the last [`LineRecorder::offsets_room`]
    /// made room for (every noted one is below it).
    room: usize,
    /// Whether the table is kept as emitted (see [`RAW_MIN`]): entries go
    /// to `table.bytes` as [`RawEntry`]s, not through `table`.
    keep_raw: bool,
}

impl<'a> LineRecorder<'a> {
    /// A recorder for a function lowered with `marks`; the code from
    /// offset 0 (the prologue) belongs to the function's own location.
    pub fn new(marks: &'a SourceMarks) -> LineRecorder<'a> {
        // About three bytes per entry: one allocation, no regrowth.
        let mut table = Builder::encoded(3 * marks.marks.len() + 4);
        table.add(0, marks.func);
        LineRecorder {
            marks: &marks.marks,
            next: 0,
            current: marks.func,
            table,
            enabled: recording(),
            offsets: Vec::new(),
            room: 0,
            keep_raw: false,
        }
    }

    /// A recorder for a generator that walks IR instructions itself
    /// (calling [`LineRecorder::at`]); `func` is the function's location,
    /// `insts` about how many entries to expect (the table's bytes are
    /// reserved once for them instead of growing from empty; with at
    /// least [`RAW_MIN`], the table is kept as emitted).
    pub fn without_marks(func: Loc, insts: usize) -> LineRecorder<'static> {
        let enabled = recording();
        let keep_raw = enabled && insts >= RAW_MIN;
        let table = if keep_raw {
            Builder::raw(func, insts)
        } else {
            let mut table = Builder::encoded(if enabled { 3 * insts + 16 } else { 0 });
            table.add(0, func);
            table
        };
        let noted = NOTED.with(Cell::take);
        LineRecorder {
            marks: &[],
            next: 0,
            current: func,
            table,
            enabled,
            offsets: noted,
            room: 0,
            keep_raw,
        }
    }

    /// Machine instruction `minst` starts at code offset `offset`: if an IR
    /// instruction starts with it, the code from here on is that
    /// instruction's. Call it for every machine instruction, in order.
    #[inline]
    pub fn minst(&mut self, minst: usize, offset: usize) {
        while let Some(&(m, loc)) = self.marks.get(self.next) {
            if m as usize > minst {
                break;
            }
            self.next += 1;
            self.at(offset, loc);
        }
    }

    /// The code from `offset` on belongs to the instruction at `loc`.
    #[inline]
    pub fn at(&mut self, offset: usize, loc: Loc) {
        if self.enabled {
            self.current = loc;
            if self.keep_raw {
                self.at_raw(offset, loc);
            } else {
                self.table.add(offset as u32, loc);
            }
        }
    }

    /// [`LineRecorder::at`] of a table kept as emitted (out of line: only
    /// stubs after the body call it).
    #[inline(never)]
    fn at_raw(&mut self, offset: usize, loc: Loc) {
        let e = RawEntry::new(offset as u32, loc).bytes();
        self.table.bytes.extend_from_slice(&e);
    }

    /// Room for the code offsets of the IR instructions numbered below
    /// `n`, for [`LineRecorder::at_inst`].
    pub fn offsets_room(&mut self, n: usize) {
        self.offsets.reserve(n);
        self.room = n;
    }

    /// The code from `offset` on belongs to IR instruction `inst`: as
    /// [`LineRecorder::at`] with the location of `inst`'s mnemonic, but
    /// only noted (one store, no capacity check or length update); the
    /// lookups and the encoding happen in one tight loop in
    /// [`LineRecorder::resolve_offsets`], which must run before the next
    /// [`LineRecorder::at`] or [`LineRecorder::finish`].
    /// [`LineRecorder::current`] does not see these entries until then.
    /// (Noted even when recording is off, so that the store is all it
    /// costs: `resolve_offsets` drops them then.)
    ///
    /// # Safety
    ///
    /// The last [`LineRecorder::offsets_room`]`(n)` had `inst.index() < n`.
    #[inline(always)]
    pub unsafe fn at_inst(&mut self, offset: usize, inst: Inst) {
        debug_assert!(inst.index() < self.offsets.capacity());
        // SAFETY: (the contract) the room has an entry at `inst.index()`,
        // in the allocation's spare capacity (`u32` has no invalid values
        // or drop); it is read only after this write.
        unsafe {
            self.offsets
                .as_mut_ptr()
                .add(inst.index())
                .write(offset as u32)
        };
    }

    /// Encodes the entries noted by [`LineRecorder::at_inst`] for `insts`
    /// (in code order; the code of each runs to the next one's offset),
    /// with the locations of their instructions in `map`.
    ///
    /// # Safety
    ///
    /// Each instruction of `insts` was noted by [`LineRecorder::at_inst`]
    /// since the last [`LineRecorder::offsets_room`].
    pub unsafe fn resolve_offsets(&mut self, insts: &[Inst], map: &SrcMap) {
        if self.keep_raw {
            // SAFETY: (the contract).
            return unsafe { self.resolve_raw(insts, map) };
        }
        if !self.enabled {
            return;
        }
        let Some(&last) = insts.last() else {
            return;
        };
        let (offs, locs) = (self.offsets.as_ptr(), map.mnemonics());
        // (Every instruction numbered below the room has a location when
        // the map has that many: the usual case, whose loop then checks
        // no index.)
        // SAFETY: (the contract) an offset was written at the index of
        // each instruction of `insts`, within the room; each index is
        // below `self.room` (`at_inst`'s contract), so below `locs.len()`
        // when that is at least `self.room`.
        unsafe {
            if locs.len() >= self.room {
                self.table.extend::<true>(offs, insts, locs)
            } else {
                self.table.extend::<false>(offs, insts, locs)
            }
        };
        self.current = map.inst(last);
    }

    /// [`LineRecorder::resolve_offsets`] of a table kept as emitted: the
    /// entries appended as [`RawEntry`]s, a few instructions each.
    ///
    /// # Safety
    ///
    /// As [`LineRecorder::resolve_offsets`].
    #[inline(never)]
    unsafe fn resolve_raw(&mut self, insts: &[Inst], map: &SrcMap) {
        let Some(&last) = insts.last() else {
            return;
        };
        let (offs, locs) = (self.offsets.as_ptr(), map.mnemonics());
        // SAFETY: (the contract) an offset was written at the index of
        // each instruction of `insts`, each below `self.room`.
        unsafe { gather(&mut self.table.bytes, offs, insts, locs, self.room) };
        self.current = map.inst(last);
    }

    /// The location of the instruction being emitted (for code placed out
    /// of line later, such as trap stubs).
    pub fn current(&self) -> Loc {
        self.current
    }

    /// The finished table.
    pub fn finish(self) -> LineTable {
        let cap = self.offsets.capacity();
        if cap > 0 && cap <= KEEP_NOTED {
            NOTED.with(|n| n.set(self.offsets));
        }
        self.table.finish()
    }
}

/// Appends to `raw` the [`RawEntry`] `(offs[i], locs[i])` of each
/// instruction `i` of `insts` (`Loc::NONE` for one past the end of
/// `locs`): a table kept as emitted, a few instructions per entry.
///
/// # Safety
///
/// `offs` points to an offset (initialized) at the index of each
/// instruction of `insts`; each index is below `room`.
#[inline(always)]
unsafe fn gather(raw: &mut Vec<u8>, offs: *const u32, insts: &[Inst], locs: &[Loc], room: usize) {
    raw.reserve(RAW_BYTES * insts.len());
    let dst = raw.as_mut_ptr_range().end.cast::<RawEntry>();
    if locs.len() >= room {
        for (k, &i) in insts.iter().enumerate() {
            // SAFETY: (the contract) `offs` has an offset at `i`'s index,
            // which is below `room`, so below `locs.len()`; `k` is below
            // `insts.len()`, the spare capacity reserved above.
            unsafe {
                let l = *locs.get_unchecked(i.index());
                dst.add(k)
                    .write_unaligned(RawEntry::new(*offs.add(i.index()), l));
            }
        }
    } else {
        for (k, &i) in insts.iter().enumerate() {
            let l = locs.get(i.index()).copied().unwrap_or(Loc::NONE);
            // SAFETY: (the contract) `offs` has an offset at `i`'s index;
            // `k` is below `insts.len()`, the spare capacity reserved
            // above.
            unsafe {
                dst.add(k)
                    .write_unaligned(RawEntry::new(*offs.add(i.index()), l))
            };
        }
    }
    // SAFETY: the entries up to `len + insts.len()` are written above,
    // within the capacity.
    unsafe { raw.set_len(raw.len() + RAW_BYTES * insts.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A big function's offsets buffer is kept for the next one (up to
    /// [`KEEP_NOTED`] entries).
    #[test]
    fn a_big_noted_buffer_is_kept() {
        let mut r = LineRecorder::without_marks(Loc::default(), 100_000);
        r.offsets_room(100_000);
        let _ = r.finish();
        let kept = NOTED.with(Cell::take);
        assert!(kept.capacity() >= 100_000, "{}", kept.capacity());
        let mut r = LineRecorder::without_marks(Loc::default(), KEEP_NOTED + 1);
        r.offsets_room(KEEP_NOTED + 1);
        let _ = r.finish();
        assert_eq!(NOTED.with(Cell::take).capacity(), 0);
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0u64, 1, 63, 64, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            write_uleb(&mut b, v);
            assert_eq!(read_uleb(&mut b.as_slice()), Some(v));
        }
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            1000,
            -1000,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            write_sleb(&mut b, v);
            assert_eq!(read_sleb(&mut b.as_slice()), Some(v), "{v}");
        }
    }

    #[test]
    fn recorder_maps_machine_instructions_to_marks() {
        let l = |line, col| Loc::new(line, col);
        let mut marks = SourceMarks::new(l(1, 6));
        // IR instruction at 3:5 lowers to minsts 0..2, 4:5 to nothing (so
        // shares index 2 with 5:5), 5:5 to 2..3, 6:5 to 3.. .
        marks.mark(0, l(3, 5));
        marks.mark(2, l(4, 5));
        marks.mark(2, l(5, 5));
        marks.mark(3, l(6, 5));
        let mut r = LineRecorder::new(&marks);
        // Prologue: 4 bytes; minsts of 3, 2, 5, 1 bytes.
        let mut off = 4;
        for (i, size) in [3, 2, 5, 1].into_iter().enumerate() {
            r.minst(i, off);
            off += size;
        }
        assert_eq!(r.current(), l(6, 5));
        let t = r.finish();
        let got: Vec<_> = t.iter().collect();
        assert_eq!(
            got,
            vec![(0, l(1, 6)), (4, l(3, 5)), (9, l(5, 5)), (14, l(6, 5))]
        );
        assert_eq!(t.lookup(0), l(1, 6));
        assert_eq!(t.lookup(8), l(3, 5));
        assert_eq!(t.lookup(9), l(5, 5));
        assert_eq!(t.lookup(1000), l(6, 5));
        // About three bytes per entry.
        assert!(t.stored_len() <= 3 * got.len() + 1, "{}", t.stored_len());
    }

    #[test]
    fn noted_instructions_encode_as_their_locations() {
        // Instruction 0 at 3:5, 1 at 4:5, 2 and 3 at 7:2 (with tokens), 4
        // has no location.
        let mut b = crate::ir::SrcMapBuilder::default();
        b.start_inst(Loc::new(3, 5));
        b.push_token(Loc::new(3, 9));
        b.start_inst(Loc::new(4, 5));
        b.start_inst(Loc::new(7, 2));
        b.push_token(Loc::new(7, 8));
        b.start_inst(Loc::new(7, 2));
        let map = b.build();
        let func = Loc::new(1, 6);
        // Out of order, one emitting no code (1 at the offset of 0), then
        // an entry placed with `at` (a stub) after them.
        let entries = [(4, 2), (9, 1), (9, 0), (12, 4), (15, 3)];
        let mut noted = LineRecorder::without_marks(func, 5);
        let mut direct = LineRecorder::without_marks(func, 5);
        noted.offsets_room(5);
        for (off, i) in entries {
            // SAFETY: `i < 5`, the room's.
            unsafe { noted.at_inst(off, Inst::new(i)) };
            direct.at(off, map.inst(Inst::new(i)));
        }
        let insts: Vec<Inst> = entries.iter().map(|&(_, i)| Inst::new(i)).collect();
        // SAFETY: each was noted above.
        unsafe { noted.resolve_offsets(&insts, &map) };
        assert_eq!(noted.current(), direct.current());
        assert_eq!(noted.current(), Loc::new(7, 2));
        noted.at(20, Loc::new(4, 5));
        direct.at(20, Loc::new(4, 5));
        let (noted, direct) = (noted.finish(), direct.finish());
        assert_eq!(noted, direct);
        let got: Vec<_> = noted.iter().collect();
        assert_eq!(
            got,
            vec![
                (0, func),
                (4, Loc::new(7, 2)),
                (9, Loc::new(3, 5)),
                (12, Loc::NONE),
                (15, Loc::new(7, 2)),
                (20, Loc::new(4, 5))
            ]
        );
    }

    /// A xorshift64 generator from `seed`: each call returns a number
    /// below its argument (the tests' random entries, reproducible).
    fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    #[test]
    fn extend_writes_what_add_writes() {
        // Offsets that repeat and jump (long deltas), locations that
        // repeat, go back, and have wide columns.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut entries = Vec::new();
        let mut off = 10u32;
        for k in 0..2000 {
            off += [0, 0, 3, 7, 200][next(5) as usize];
            // Then few locations: replaced entries often equal the last.
            let lines = if k < 1000 { 300 } else { 3 };
            let loc = Loc::new(next(lines) as u32, [1, 5, 9, 400][next(4) as usize]);
            entries.push((off, loc));
        }
        let l = |line, col| Loc::new(line, col);
        // Builders before the loop: empty; one pending entry; one written
        // entry and a pending one that replaced another at its offset and
        // equals the written one (so the loop's first write is dropped).
        let starts: [&[(u32, Loc)]; 3] = [
            &[],
            &[(0, l(1, 1))],
            &[(0, l(1, 1)), (4, l(2, 1)), (4, l(1, 1))],
        ];
        let noted: Vec<(u32, u32)> = (0..entries.len() as u32)
            .map(|k| (entries[k as usize].0, k))
            .collect();
        // The last entries' instructions have no location (past the end
        // of the map's).
        let locs: Vec<Loc> = entries[..entries.len() - 50]
            .iter()
            .map(|&(_, l)| l)
            .collect();
        for start in starts {
            for split in [0, 1, 777, 1990] {
                let mut a = Builder::encoded(0);
                let mut b = Builder::encoded(0);
                for &(o, l) in start {
                    a.add(o, l);
                    b.add(o, l);
                }
                for (k, &(o, l)) in entries.iter().enumerate() {
                    a.add(o, if k < locs.len() { l } else { Loc::NONE });
                }
                // In two calls (the state carries over).
                let (offs, insts) = split_noted(&noted);
                // SAFETY: `offs` has an offset at each instruction's index.
                unsafe {
                    b.extend::<false>(offs.as_ptr(), &insts[..split], &locs);
                    b.extend::<false>(offs.as_ptr(), &insts[split..], &locs);
                }
                let (a, b) = (a.finish(), b.finish());
                assert!(a.stored_len() > 1000);
                assert_eq!(a, b, "{start:?} {split}");
            }
        }
    }

    /// The offsets, by instruction number, and the instructions of
    /// `(offset, instruction number)` entries whose numbers are their
    /// indices.
    fn split_noted(noted: &[(u32, u32)]) -> (Vec<u32>, Vec<Inst>) {
        noted
            .iter()
            .enumerate()
            .map(|(k, &(o, i))| {
                assert_eq!(i as usize, k);
                (o, Inst::new(k))
            })
            .unzip()
    }

    /// The table [`LineRecorder::without_marks`] and
    /// [`LineRecorder::resolve_offsets`] build from `noted` entries (the
    /// function's own location `func` at offset 0 first), the `k`-th as
    /// an instruction numbered `k` with its entry's location.
    fn noted_table(func: Loc, noted: &[(u32, u32)], locs: &[Loc]) -> LineTable {
        let mut b = Builder::encoded(0);
        b.add(0, func);
        let locs: Vec<Loc> = noted
            .iter()
            .map(|&(_, i)| locs.get(i as usize).copied().unwrap_or(Loc::NONE))
            .collect();
        let renumbered: Vec<(u32, u32)> = (0..noted.len() as u32)
            .map(|k| (noted[k as usize].0, k))
            .collect();
        let (offs, insts) = split_noted(&renumbered);
        // SAFETY: `offs` has an offset at each instruction's index, below
        // `locs.len()` (one location per entry).
        unsafe { b.extend::<true>(offs.as_ptr(), &insts, &locs) };
        b.finish()
    }

    #[test]
    fn entries_without_code_change_nothing() {
        // The fast emitter notes a compare fused into its branch (no code
        // of its own) at the offset of the entry after it: such entries,
        // anywhere and with any location, leave the table as it was.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // Few distinct locations, so that neighbours often share one.
        let locs: Vec<Loc> = (0..64)
            .map(|_| Loc::new(next(4) as u32 + 1, [1, 5][next(2) as usize]))
            .collect();
        let mut added = 0;
        for _ in 0..3000 {
            let func = Loc::new(next(4) as u32 + 1, 1);
            let (mut plain, mut with) = (Vec::new(), Vec::new());
            // After the prologue's first bytes.
            let mut off = 1 + next(3) as u32;
            for _ in 0..1 + next(12) {
                off += [0, 0, 2, 3, 200][next(5) as usize];
                if next(3) == 0 {
                    with.push((off, next(locs.len() as u64 + 1) as u32));
                    added += 1;
                }
                let i = next(locs.len() as u64) as u32;
                plain.push((off, i));
                with.push((off, i));
            }
            let want = noted_table(func, &plain, &locs);
            assert_eq!(noted_table(func, &with, &locs), want, "{plain:?} {with:?}");
        }
        assert!(added > 3000, "{added}");
    }

    /// Random entries as [`extend_writes_what_add_writes`] makes them:
    /// offsets that repeat and jump, locations that repeat, go back, and
    /// have wide columns.
    fn random_entries(seed: u64, n: usize) -> Vec<(u32, Loc)> {
        let mut next = xorshift(seed);
        let mut off = 0u32;
        (0..n)
            .map(|k| {
                if k > 0 {
                    off += [0, 0, 3, 7, 200][next(5) as usize];
                }
                let lines = if k < n / 2 { 300 } else { 3 };
                let col = [1, 5, 9, 400][next(4) as usize];
                (off, Loc::new(next(lines) as u32, col))
            })
            .collect()
    }

    /// A table kept as emitted has the entries, lookups and (through a
    /// record's bytes) stored form of the encoded table of the same
    /// entries.
    #[test]
    fn raw_tables_read_as_encoded_ones() {
        for (seed, n) in [(1u64, 1), (2, 2), (3, 40), (0x2545_f491_4f6c_dd1d, 3000)] {
            let entries = random_entries(seed, n);
            let raw = LineTable::from_raw_entries(entries.iter().copied());
            let enc = LineTable::from_entries(entries.iter().copied());
            assert!(raw.is_raw() && !enc.is_raw());
            assert_eq!(
                raw.iter().collect::<Vec<_>>(),
                enc.iter().collect::<Vec<_>>()
            );
            assert_eq!(raw, enc);
            let mut stored = vec![0xee];
            raw.write_stored(&mut stored);
            enc.write_stored(&mut stored);
            stored.push(0xee);
            let mut at = &stored[1..];
            let s_raw = StoredTable::read(&mut at).unwrap();
            let s_enc = StoredTable::read(&mut at).unwrap();
            assert_eq!(at, &[0xee]);
            let end = entries.last().unwrap().0 + 3;
            for o in 0..end {
                let want = enc.lookup(o);
                assert_eq!(raw.lookup(o), want, "{seed} at {o}");
                assert_eq!(s_raw.lookup(o), want, "{seed} at {o}");
                assert_eq!(s_enc.lookup(o), want, "{seed} at {o}");
            }
            assert!(s_raw.iter().eq(enc.iter()));
        }
        // A truncated raw table is not read.
        let raw = LineTable::from_raw_entries([(0, Loc::new(1, 1)), (4, Loc::new(2, 1))]);
        let mut stored = Vec::new();
        write_uleb(&mut stored, raw.stored_len() as u64 - 1);
        stored.extend_from_slice(&raw.bytes[..raw.bytes.len() - 1]);
        assert!(StoredTable::read(&mut &stored[..]).is_none());
        assert_eq!(LineTable::default().lookup(0), Loc::NONE);
        assert_eq!(LineTable::default().iter().count(), 0);
    }

    /// A recorder for a function of at least [`RAW_MIN`] instructions
    /// keeps the table as emitted: the same table as one encoding the
    /// same entries (noted, then placed with `at`); below it, it
    /// encodes.
    #[test]
    fn large_functions_keep_their_table_as_emitted() {
        let n = RAW_MIN + 10;
        let entries = random_entries(7, n);
        let func = Loc::new(1, 6);
        // Instruction `k` at the `k`-th location; emitted in a shuffled
        // order of numbers (as blocks are placed), the last few without
        // a location in the map.
        let mut b = crate::ir::SrcMapBuilder::default();
        for &(_, l) in &entries[..n - 3] {
            b.start_inst(l);
        }
        let map = b.build();
        let mut next = xorshift(11);
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, next(k as u64 + 1) as usize);
        }
        let mut noted = LineRecorder::without_marks(func, n);
        let mut direct = LineRecorder::without_marks(func, 0);
        assert!(noted.keep_raw && !direct.keep_raw);
        noted.offsets_room(n);
        let mut insts = Vec::new();
        for (&(off, _), &i) in entries.iter().zip(&order) {
            let off = off as usize + 1;
            // SAFETY: `i < n`, the room's.
            unsafe { noted.at_inst(off, Inst::new(i)) };
            direct.at(off, map.inst(Inst::new(i)));
            insts.push(Inst::new(i));
        }
        // SAFETY: each was noted above.
        unsafe { noted.resolve_offsets(&insts, &map) };
        assert_eq!(noted.current(), direct.current());
        let end = entries[n - 1].0 as usize + 10;
        noted.at(end, Loc::new(9, 9));
        direct.at(end, Loc::new(9, 9));
        let (noted, direct) = (noted.finish(), direct.finish());
        assert!(noted.is_raw() && !direct.is_raw());
        assert_eq!(noted, direct);
        for o in 0..end as u32 + 2 {
            assert_eq!(noted.lookup(o), direct.lookup(o), "at {o}");
        }
    }

    #[test]
    fn equal_neighbours_and_backward_lines_encode() {
        let l = |line, col| Loc::new(line, col);
        let t = LineTable::from_entries([
            (0, l(10, 1)),
            (5, l(10, 1)),
            (8, l(2, 300)),
            (8, l(3, 4)),
            (200, l(3, 4)),
            (70000, Loc::NONE),
        ]);
        let got: Vec<_> = t.iter().collect();
        assert_eq!(got, vec![(0, l(10, 1)), (8, l(3, 4)), (70000, Loc::NONE)]);
        assert_eq!(LineTable::default().lookup(3), Loc::NONE);
    }
}
