//! The allocation handed to an emitter one block at a time.
//!
//! [`super::moves::resolve`] builds a whole function's [`Output`]: an
//! allocation per operand and the move edits, about 30 bytes per machine
//! instruction, all alive while the emitter runs. An emitter that visits
//! the blocks in order needs only the current block's: a [`Stream`]
//! resolves each block when the emitter reaches it ([`Stream::load`]),
//! with the same per-instruction code ([`super::moves::Resolve::inst`]),
//! into buffers the size of one block, reused.
//!
//! What the emitter needs before the first block is known up front: the
//! callee-saved registers (from the scan) and the spill-slot count, which
//! the sequencer's cycle slots can raise. Only a jump's block-argument
//! moves can form a cycle through memory (every other parallel set writes
//! registers only, or reads registers only), so [`Ctx::stream`]
//! sequentializes every jump's moves once up front; that also tells which
//! jumps move nothing ([`Stream::jump_moves`], for jump threading). A
//! slot created later anyway is an error, not wrong code.
//!
//! When the whole [`Output`] was built as well (checked builds, debug
//! builds: the [`super::checker`] validates it), every block loaded is
//! compared with it, so the code emitted is the code checked.

use super::moves::{Resolve, Slots};
use super::*;

/// The buffers of one block's allocation, reused between functions.
#[derive(Default)]
pub struct Window {
    allocs: Vec<Allocation>,
    /// Per instruction of the block + 1: its first allocation.
    alloc_start: Vec<u32>,
    edits: Vec<(ProgPoint, Edit)>,
    /// Per instruction of the block: where its Before and its After edits
    /// start in `edits`; one more entry for the end.
    edit_start: Vec<u32>,
    /// Per block: whether its jump moves block arguments.
    jump_moves: Vec<bool>,
}

/// A function's allocation, block by block (see the module docs).
pub struct Stream<'a, F> {
    r: Resolve<'a, F>,
    win: &'a mut Window,
    /// The first instruction of the loaded block.
    first: usize,
    /// Spill slots the frame holds (the scan's and the cycle slots).
    slots: Slots,
    /// The checked whole allocation to compare each block with.
    check: Option<&'a Output>,
}

impl Ctx {
    /// The allocation of `f` (after [`super::prepare_static`]) as a [`Stream`]; each
    /// block is compared with `check` when given.
    pub fn stream<'a, F: RaFunction>(
        &'a mut self,
        f: &'a F,
        env: &'a MachineEnv,
        check: Option<&'a Output>,
    ) -> Result<Stream<'a, F>, RegAllocError> {
        self.seq.reset();
        let mut r = Resolve {
            f,
            env,
            lv: &self.liveness,
            scan: &self.scan,
            seq: &mut self.seq,
            buf: &mut self.buf,
            slots: Slots::of(&self.scan),
        };
        let win = &mut self.win;
        win.jump_moves.clear();
        for b in 0..f.num_blocks() {
            let blk = MBlock::new(b);
            let insts = f.block_insts(blk);
            let mut moves = false;
            if !insts.is_empty() {
                r.buf.before.clear();
                r.jump_moves(blk, insts.last());
                moves = !r.buf.before.is_empty();
                if moves {
                    win.edits.clear();
                    r.sequence_before(insts.last(), &mut win.edits)?;
                }
            }
            win.jump_moves.push(moves);
        }
        let slots = r.slots;
        Ok(Stream {
            r,
            win,
            first: 0,
            slots,
            check,
        })
    }
}

impl<F: RaFunction> Stream<'_, F> {
    /// Spill slots used (the frame's spill area is `8 *` this many bytes).
    pub fn num_spillslots(&self) -> usize {
        self.slots.num as usize
    }

    /// The callee-saved registers assigned anywhere.
    pub fn callee_saved_used(&self) -> PRegSet {
        self.r.scan.callee_used
    }

    /// Whether block `b`'s jump moves block arguments (a block that is a
    /// lone jump without moves can be skipped by branches to it).
    pub fn jump_moves(&self, b: usize) -> bool {
        self.win.jump_moves[b]
    }

    /// Resolves block `b`: its instructions' allocations and edits are
    /// then available through [`Stream::inst_allocs`] and
    /// [`Stream::edits`].
    pub fn load(&mut self, b: usize) -> Result<(), RegAllocError> {
        let blk = MBlock::new(b);
        let insts = self.r.f.block_insts(blk);
        let win = &mut *self.win;
        win.allocs.clear();
        win.alloc_start.clear();
        win.edits.clear();
        win.edit_start.clear();
        self.first = insts.first.index();
        for i in insts.iter() {
            win.alloc_start.push(win.allocs.len() as u32);
            win.edit_start.push(win.edits.len() as u32);
            let after = self.r.inst(blk, i, &mut win.allocs, &mut win.edits)?;
            win.edit_start.push(after as u32);
        }
        win.alloc_start.push(win.allocs.len() as u32);
        win.edit_start.push(win.edits.len() as u32);
        if self.r.slots.num != self.slots.num {
            return Err(internal(insts.first, "a cycle slot outside a jump"));
        }
        if let Some(full) = self.check {
            for i in insts.iter() {
                let same = self.inst_allocs(i.index()) == full.inst_allocs(i)
                    && self.edits(i.index(), InstPosition::Before)
                        == full.edits_at(ProgPoint::before(i))
                    && self.edits(i.index(), InstPosition::After)
                        == full.edits_at(ProgPoint::after(i));
                if !same {
                    return Err(internal(
                        i,
                        "the streamed allocation is not the checked one",
                    ));
                }
            }
            if full.num_spillslots != self.num_spillslots() {
                return Err(internal(insts.first, "spill slot count differs"));
            }
        }
        Ok(())
    }

    /// The allocations of instruction `i`'s operands (`i` in the loaded
    /// block), in operand order.
    #[inline]
    pub fn inst_allocs(&self, i: usize) -> &[Allocation] {
        let Some(k) = i.checked_sub(self.first) else {
            return &[];
        };
        match (self.win.alloc_start.get(k), self.win.alloc_start.get(k + 1)) {
            (Some(&s), Some(&e)) => &self.win.allocs[s as usize..e as usize],
            _ => &[],
        }
    }

    /// The edits at `pos` of instruction `i` (in the loaded block), in
    /// execution order.
    #[inline]
    pub fn edits(&self, i: usize, pos: InstPosition) -> &[(ProgPoint, Edit)] {
        let Some(k) = i.checked_sub(self.first) else {
            return &[];
        };
        let k = 2 * k + pos as usize;
        match (self.win.edit_start.get(k), self.win.edit_start.get(k + 1)) {
            (Some(&s), Some(&e)) => &self.win.edits[s as usize..e as usize],
            _ => &[],
        }
    }
}

fn internal(i: MInst, message: &str) -> RegAllocError {
    RegAllocError::InvalidInput {
        inst: Some(i),
        message: format!("internal: {message}"),
    }
}
