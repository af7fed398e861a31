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
//!   IR instruction.
//!
//! Invariants: entries are in increasing offset order; an entry covers the
//! code from its offset to the next entry's (or the function's end); the
//! first entry is at offset 0 and carries the function's own location (the
//! prologue); two entries never have the same offset, and consecutive
//! entries never have the same location.

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

/// A function's line table: `(code offset, location)` entries, delta
/// encoded (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineTable {
    /// Per entry: ULEB128 offset delta, SLEB128 line delta, ULEB128 column.
    bytes: Vec<u8>,
}

impl LineTable {
    /// The encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The entries, in offset order.
    pub fn iter(&self) -> LineIter<'_> {
        LineIter::new(&self.bytes)
    }

    /// The location of the code at `offset` (that of the last entry at or
    /// before it); `Loc::NONE` for an empty table.
    pub fn lookup(&self, offset: u32) -> Loc {
        lookup_encoded(&self.bytes, offset)
    }

    /// The encoded bytes (for storing the table compactly; read them with
    /// [`LineIter::new`] or [`lookup_encoded`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A table from entries in increasing offset order (tests and tools;
    /// emitters use a [`LineRecorder`]).
    pub fn from_entries(entries: impl IntoIterator<Item = (u32, Loc)>) -> LineTable {
        let mut b = Builder::default();
        for (o, loc) in entries {
            b.add(o, loc);
        }
        b.finish()
    }
}

/// The location of the code at `offset` in a table's encoded bytes
/// ([`LineTable::as_bytes`]).
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

/// Decodes a [`LineTable`].
pub struct LineIter<'a> {
    bytes: &'a [u8],
    offset: u32,
    line: u32,
}

impl<'a> LineIter<'a> {
    /// The entries of a table's encoded bytes ([`LineTable::as_bytes`]).
    pub fn new(bytes: &'a [u8]) -> LineIter<'a> {
        LineIter {
            bytes,
            offset: 0,
            line: 0,
        }
    }
}

impl Iterator for LineIter<'_> {
    type Item = (u32, Loc);

    fn next(&mut self) -> Option<(u32, Loc)> {
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
/// code), and an entry with the pending location adds nothing.
#[derive(Default)]
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
}

impl<'a> LineRecorder<'a> {
    /// A recorder for a function lowered with `marks`; the code from
    /// offset 0 (the prologue) belongs to the function's own location.
    pub fn new(marks: &'a SourceMarks) -> LineRecorder<'a> {
        // About three bytes per entry: one allocation, no regrowth.
        let mut table = Builder {
            bytes: Vec::with_capacity(3 * marks.marks.len() + 4),
            ..Builder::default()
        };
        table.add(0, marks.func);
        LineRecorder {
            marks: &marks.marks,
            next: 0,
            current: marks.func,
            table,
            enabled: recording(),
            offsets: Vec::new(),
            room: 0,
        }
    }

    /// A recorder for a generator that walks IR instructions itself
    /// (calling [`LineRecorder::at`]); `func` is the function's location,
    /// `insts` about how many entries to expect (the table's bytes are
    /// reserved once for them instead of growing from empty).
    pub fn without_marks(func: Loc, insts: usize) -> LineRecorder<'static> {
        let enabled = recording();
        let mut table = Builder {
            bytes: Vec::with_capacity(if enabled { 3 * insts + 16 } else { 0 }),
            ..Builder::default()
        };
        table.add(0, func);
        let noted = NOTED.with(Cell::take);
        LineRecorder {
            marks: &[],
            next: 0,
            current: func,
            table,
            enabled,
            offsets: noted,
            room: 0,
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
            self.table.add(offset as u32, loc);
        }
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
        assert!(t.encoded_len() <= 3 * got.len(), "{}", t.encoded_len());
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
                let mut a = Builder::default();
                let mut b = Builder::default();
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
                assert!(a.encoded_len() > 1000);
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
        let mut b = Builder::default();
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
