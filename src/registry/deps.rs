//! [`Deps`]: a registry entry's dependency list in one pointer (8 bytes,
//! where a `Box<[u32]>` takes 16): a REPL session keeps tens of thousands
//! of entries, most with no dependency at all.

use std::ptr::NonNull;

/// An immutable list of slots, empty without an allocation; otherwise one
/// heap block holding the length, then the slots.
#[derive(Default)]
pub(crate) struct Deps(Option<NonNull<u32>>);

// SAFETY: `Deps` owns its block (like a `Box<[u32]>`): nothing else points
// into it, and it is never written after it is made.
unsafe impl Send for Deps {}
// SAFETY: as for `Send`; `&Deps` only reads.
unsafe impl Sync for Deps {}

impl Deps {
    /// The list of `slots`.
    pub fn new(slots: &[u32]) -> Deps {
        if slots.is_empty() {
            return Deps(None);
        }
        let len = u32::try_from(slots.len()).expect("fewer than 2^32 dependencies");
        let mut block = Vec::with_capacity(slots.len() + 1);
        block.push(len);
        block.extend_from_slice(slots);
        let block: Box<[u32]> = block.into_boxed_slice();
        // A boxed slice's pointer is never null.
        Deps(NonNull::new(Box::into_raw(block).cast::<u32>()))
    }

    /// The block as the boxed slice it was made from, with its length
    /// word: `(pointer, len + 1)`.
    fn raw(&self) -> Option<(NonNull<u32>, usize)> {
        let p = self.0?;
        // SAFETY: `p` points at the block `new` made, whose first word is
        // the number of slots after it; it lives as long as `self`.
        let len = unsafe { p.as_ptr().read() } as usize;
        Some((p, len + 1))
    }
}

impl std::ops::Deref for Deps {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self.raw() {
            // SAFETY: the block holds `n` initialized words (see `raw`),
            // the first being the length; it is not written while `self`
            // lives.
            Some((p, n)) => unsafe { &std::slice::from_raw_parts(p.as_ptr(), n)[1..] },
            None => &[],
        }
    }
}

impl Drop for Deps {
    fn drop(&mut self) {
        if let Some((p, n)) = self.raw() {
            // SAFETY: `p` and `n` are the pointer and length of the boxed
            // slice `new` leaked with `Box::into_raw`; it is freed once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.as_ptr(), n)) });
        }
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pointer, empty without allocating, and the slots given back.
    #[test]
    fn deps_are_one_pointer_and_keep_their_slots() {
        assert_eq!(std::mem::size_of::<Deps>(), 8);
        assert!(Deps::default().is_empty());
        assert!(Deps::new(&[]).0.is_none());
        for n in [1usize, 2, 7, 100] {
            let slots: Vec<u32> = (0..n as u32).map(|i| i * 3 + 1).collect();
            let d = Deps::new(&slots);
            assert_eq!(&d[..], &slots[..]);
            assert!(d.contains(&1) && !d.contains(&0));
        }
    }
}
