//! A byte reader that turns fuzzer input into choices (an `Unstructured` of
//! our own, so the library needs no `arbitrary` dependency).
//!
//! Invariant: every read succeeds. Once the input is used up each read
//! returns zero, which every generator treats as "the smallest, simplest
//! choice", so a short input yields a short, valid program and generation
//! always ends.

/// Reads choices from a byte slice, front to back.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0 once the input is used up.
    pub fn u8(&mut self) -> u8 {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    /// A little-endian `u32` from the next four bytes.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A little-endian `u64` from the next eight bytes.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A number in `0..n` (0 when `n` is 0 or 1), reading one byte, or two
    /// when `n` exceeds 256.
    pub fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let raw = if n > 256 {
            u32::from(self.u8()) | (u32::from(self.u8()) << 8)
        } else {
            u32::from(self.u8())
        };
        raw % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability about `num / den`; false once the input is
    /// used up.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        if self.is_empty() {
            return false;
        }
        self.below(den) < num
    }

    /// One element of `items`, or `None` when it is empty.
    pub fn pick<'s, T>(&mut self, items: &'s [T]) -> Option<&'s T> {
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        if n == 0 {
            return None;
        }
        items.get(self.below(n) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_then_zeros() {
        let mut b = Bytes::new(&[1, 2, 3, 4, 5]);
        assert_eq!(b.u8(), 1);
        assert_eq!(b.u32(), u32::from_le_bytes([2, 3, 4, 5]));
        assert!(b.is_empty());
        assert_eq!(b.u64(), 0);
        assert!(!b.chance(1, 2));
    }

    #[test]
    fn below_stays_in_range() {
        let data: Vec<u8> = (0..=255).collect();
        let mut b = Bytes::new(&data);
        for n in [1, 2, 3, 7, 255, 256, 300, 70_000] {
            for _ in 0..20 {
                let v = b.below(n);
                assert!(v < n.max(1), "{v} not below {n}");
            }
        }
        assert_eq!(b.range(5, 5), 5);
    }
}
