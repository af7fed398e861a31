//! The allocator behind the emulated `malloc`/`calloc`/`free`: hands out
//! blocks of one emulated address range, keeping all bookkeeping on the host
//! side (nothing is written into emulated memory, so a program that
//! overruns a block cannot corrupt the allocator).
//!
//! Invariants:
//! - Every block (live or free) starts at a multiple of [`ALIGN`] and has a
//!   length that is a non-zero multiple of [`ALIGN`]; together the live and
//!   free blocks tile `[base, base + size)` without overlap.
//! - Free blocks are coalesced: no two free blocks touch.
//! - Allocation is first fit by address; a zero-byte request still gets a
//!   block of its own, so every successful `malloc` returns a distinct
//!   pointer.

use std::collections::BTreeMap;

/// Alignment and granule of every block: what `malloc` guarantees on
/// AArch64 Linux (`alignof(max_align_t)`).
pub const ALIGN: u64 = 16;

/// A first-fit allocator over one emulated address range.
#[derive(Debug, Clone)]
pub struct Heap {
    /// Free blocks: start → length.
    free: BTreeMap<u64, u64>,
    /// Live blocks: start → length.
    live: BTreeMap<u64, u64>,
}

/// `free` of something that is not the start of a live block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFree(pub u64);

impl Heap {
    /// An allocator over `[base, base + size)`; `base` is rounded up and the
    /// end down to [`ALIGN`]. Address 0 is never handed out: it is null.
    pub fn new(base: u64, size: u64) -> Heap {
        let start = base.max(1).div_ceil(ALIGN).saturating_mul(ALIGN);
        let end = base.saturating_add(size) / ALIGN * ALIGN;
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        Heap {
            free,
            live: BTreeMap::new(),
        }
    }

    /// A block of at least `n` bytes, or `None` when no free block is large
    /// enough (C's `malloc` then returns null).
    pub fn alloc(&mut self, n: u64) -> Option<u64> {
        let len = n.max(1).checked_next_multiple_of(ALIGN)?;
        let (&start, &have) = self.free.iter().find(|(_, &have)| have >= len)?;
        self.free.remove(&start);
        if have > len {
            self.free.insert(start + len, have - len);
        }
        self.live.insert(start, len);
        Some(start)
    }

    /// Returns the block starting at `addr` to the free pool; `free(NULL)` is
    /// a no-op as in C.
    pub fn free(&mut self, addr: u64) -> Result<(), BadFree> {
        if addr == 0 {
            return Ok(());
        }
        let len = self.live.remove(&addr).ok_or(BadFree(addr))?;
        let (mut start, mut end) = (addr, addr + len);
        if let Some((&prev, &plen)) = self.free.range(..start).next_back() {
            if prev + plen == start {
                self.free.remove(&prev);
                start = prev;
            }
        }
        if let Some(nlen) = self.free.remove(&end) {
            end += nlen;
        }
        self.free.insert(start, end - start);
        Ok(())
    }

    /// The usable length of the live block starting at `addr`.
    #[cfg(test)]
    pub fn block_len(&self, addr: u64) -> Option<u64> {
        self.live.get(&addr).copied()
    }

    /// Bytes in live blocks (rounded to the granule).
    pub fn live_bytes(&self) -> u64 {
        self.live.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let mut h = Heap::new(0x1008, 0x100);
        let a = h.alloc(0).unwrap();
        let b = h.alloc(20).unwrap();
        assert_eq!(a, 0x1010);
        assert_eq!(b, 0x1020);
        assert_eq!(h.block_len(b), Some(32));
        h.free(a).unwrap();
        // First fit: the freed 16 bytes at the front serve a small request.
        assert_eq!(h.alloc(16), Some(a));
        assert_eq!(h.free(a + 1), Err(BadFree(a + 1)));
        assert_eq!(h.free(0), Ok(()));
    }

    #[test]
    fn exhaustion_and_coalescing() {
        let mut h = Heap::new(0x100, 64);
        let a = h.alloc(16).unwrap();
        let b = h.alloc(16).unwrap();
        let c = h.alloc(32).unwrap();
        assert_eq!(h.alloc(1), None);
        assert_eq!(h.alloc(u64::MAX), None);
        h.free(a).unwrap();
        h.free(c).unwrap();
        // a and c are not adjacent: 48 bytes free but no 48-byte block.
        assert_eq!(h.alloc(48), None);
        h.free(b).unwrap();
        assert_eq!(h.live_bytes(), 0);
        assert_eq!(h.alloc(64), Some(0x100));
        assert_eq!(h.free(b), Err(BadFree(b)));
    }

    #[test]
    fn null_is_never_a_block() {
        let mut h = Heap::new(0, 32);
        assert_eq!(h.alloc(1), Some(ALIGN));
        assert_eq!(h.alloc(1), None);
    }
}
