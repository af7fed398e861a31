//! Capturing the chain of return addresses at a trap, by walking the
//! frame-pointer chain that every compiled function keeps (`rbp` on
//! x86-64, the `x29`/`x30` frame record on AArch64: `[fp]` holds the
//! caller's frame pointer and `[fp + 8]` the return address into it).
//!
//! The walk only reads addresses strictly between the trap handler's own
//! stack pointer and the frame of the call that catches the trap, which is
//! live stack of the current thread, so a broken chain (a host function
//! built without frame pointers between two compiled frames) ends the
//! walk early instead of reading wild memory.

use crate::error::MAX_BACKTRACE;

/// The trap site's return address `ret`, then the return address of each
/// frame on the chain starting at frame pointer `fp`, innermost first.
/// Frames are followed while their frame pointer is 8-byte aligned,
/// increases, and lies in `(low, high)` (`low`: an address in the trap
/// handler's frame; `high`: the stack pointer of the catching call's frame,
/// above every compiled frame of this call). At most [`MAX_BACKTRACE`]
/// addresses.
///
/// # Safety
/// Every address in `[low, high + 8)` must be readable stack memory of the
/// current thread.
pub unsafe fn walk_frame_chain(ret: u64, mut fp: u64, low: u64, high: u64) -> Vec<u64> {
    let mut pcs = Vec::with_capacity(16);
    pcs.push(ret);
    let mut prev = low;
    while pcs.len() < MAX_BACKTRACE && fp > prev && fp < high && fp.is_multiple_of(8) {
        // SAFETY: `low < fp < high` and the caller guarantees
        // `[low, high + 8)` is readable; `fp + 8 < high + 8`.
        let (next, ra) = unsafe {
            (
                std::ptr::read(fp as *const u64),
                std::ptr::read((fp + 8) as *const u64),
            )
        };
        pcs.push(ra);
        prev = fp;
        fp = next;
    }
    pcs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_chain_and_stops_at_its_bounds() {
        // A fake stack: three frame records, the last pointing past `high`.
        let mut stack = vec![0u64; 16];
        let p = stack.as_mut_ptr();
        let base = p as u64;
        let at = |i: usize| base + 8 * i as u64;
        // SAFETY: every index is inside `stack`, which outlives `p`.
        let set = |i: usize, v: u64| unsafe { p.add(i).write(v) };
        set(2, at(6)); // frame at 2 -> 6
        set(3, 0x1111);
        set(6, at(10)); // frame at 6 -> 10
        set(7, 0x2222);
        set(10, at(15)); // frame at 10 -> beyond high
        set(11, 0x3333);
        let high = at(12);
        // SAFETY: every address read is inside `stack`.
        let pcs = unsafe { walk_frame_chain(0x99, at(2), base, high) };
        assert_eq!(pcs, vec![0x99, 0x1111, 0x2222, 0x3333]);
        // A chain going down (or misaligned) ends at once.
        set(6, at(1));
        // SAFETY: as above.
        let pcs = unsafe { walk_frame_chain(0x99, at(2), base, high) };
        assert_eq!(pcs, vec![0x99, 0x1111, 0x2222]);
        // SAFETY: as above.
        let pcs = unsafe { walk_frame_chain(0x99, at(2) + 4, base, high) };
        assert_eq!(pcs, vec![0x99]);
        drop(stack);
    }
}
