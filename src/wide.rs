//! Appending a short byte string to a `Vec<u8>` with one capacity check
//! and one wide store: the machine-code encoder of the fast generator
//! (one store per machine instruction) and the line-table encoder (one
//! per entry) both append a few bytes at a time, where `push` per byte or
//! `extend_from_slice` cost several times more than the bytes are worth.

/// Appends the first `n` bytes of `bytes` to `v` (`n` above `N` counts as
/// `N`): all `N` bytes are stored past the end in one write, and the
/// length then moves by `n`, so the bytes beyond stay spare capacity.
#[inline(always)]
pub(crate) fn push_prefix<const N: usize>(v: &mut Vec<u8>, bytes: [u8; N], n: usize) {
    debug_assert!(n <= N, "a prefix of {n} bytes of {N}");
    let n = n.min(N);
    v.reserve(N);
    let len = v.len();
    // SAFETY: `reserve(N)` leaves room for at least `N` bytes past `len`,
    // so the `N`-byte write stays inside the allocation (in its spare
    // capacity, which may be written through the pointer: `Vec`'s spare
    // capacity is allocated, and `u8` has no invalid values or drop); it
    // initializes the `n <= N` bytes that `set_len` then makes part of the
    // vector.
    unsafe {
        v.as_mut_ptr()
            .add(len)
            .cast::<[u8; N]>()
            .write_unaligned(bytes);
        v.set_len(len + n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_prefixes_across_growth() {
        // From empty through many regrowths, with every prefix length of
        // two widths: the bytes
        // are the concatenation, the spare bytes never show.
        let mut v = Vec::new();
        let mut want = Vec::new();
        for k in 0..2000usize {
            let b8 = (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes();
            let n = k % 9;
            push_prefix(&mut v, b8, n);
            want.extend_from_slice(&b8[..n]);
            let b3 = [k as u8, 0xff, (k >> 8) as u8];
            push_prefix(&mut v, b3, k % 4);
            want.extend_from_slice(&b3[..k % 4]);
            assert_eq!(v.len(), want.len());
        }
        assert_eq!(v, want);
    }
}
