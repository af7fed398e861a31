//! AArch64 code for [`crate::lazy`]: one chunk of the indirection table —
//! the lazy-entry wrapper shared by the chunk, then one 48-byte slot per
//! retargetable function (AAPCS64).
//!
//! Slot `i` (its first byte is the function's address for every caller):
//!
//! ```text
//! +0   ldr x16, +16         ; the cell's address (literal below)
//! +4   ldr x16, [x16]       ; what the cell holds
//! +8   br x16
//! +12  nop
//! +16  .quad CELL_i         ; Abs64 to the cell
//! +24  movz w16, #KEY_lo    ; the lazy entry (the cell's first value)
//! +28  movk w16, #KEY_hi, lsl #16
//! +32  b WRAPPER
//! +36  nop x3
//! ```
//!
//! The wrapper keeps the caller's arguments (x0–x8, d0–d7; stack
//! arguments are above the caller's SP and untouched), calls
//! `resolver(ctx, key)` — which compiles the function, patches its cell
//! and returns its body's address — restores them and branches there. It
//! pushes a frame record (x29, x30), so the frame chain stays whole. x16
//! and x17 are the intra-procedure-call scratch registers.

use super::ChunkCode;
use crate::error::{Error, Result};
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

/// Bytes per slot.
pub const SLOT_SIZE: usize = 48;
/// Offset of a slot's lazy entry.
pub const LAZY_OFFSET: usize = 24;

const LDR_X16_LITERAL_16: u32 = 0x5800_0090;
const LDR_X16_X16: u32 = 0xf940_0210;
const BR_X16: u32 = 0xd61f_0200;
const NOP: u32 = 0xd503_201f;
const MOVZ_W16: u32 = 0x5280_0010;
const MOVK_W16_LSL16: u32 = 0x72a0_0010;
const B: u32 = 0x1400_0000;

/// The code of a chunk of `slots` slots whose keys start at `first_key`;
/// `ctx` is passed to the resolver as its first argument.
pub fn chunk(slots: usize, first_key: u32, ctx: u64) -> Result<ChunkCode> {
    let mut ops = VecAssembler::<Aarch64Relocation>::new(0);
    dynasm!(ops
        ; .arch aarch64
        ; stp x29, x30, [sp, #-176]!
        ; mov x29, sp
        ; stp x0, x1, [sp, #16]
        ; stp x2, x3, [sp, #32]
        ; stp x4, x5, [sp, #48]
        ; stp x6, x7, [sp, #64]
        ; stp d0, d1, [sp, #80]
        ; stp d2, d3, [sp, #96]
        ; stp d4, d5, [sp, #112]
        ; stp d6, d7, [sp, #128]
        ; str x8, [sp, #144]
        ; ldr x0, >ctx
        ; mov x1, x16
        ; ldr x17, >resolver
        ; blr x17
        ; mov x16, x0
        ; ldp x0, x1, [sp, #16]
        ; ldp x2, x3, [sp, #32]
        ; ldp x4, x5, [sp, #48]
        ; ldp x6, x7, [sp, #64]
        ; ldp d0, d1, [sp, #80]
        ; ldp d2, d3, [sp, #96]
        ; ldp d4, d5, [sp, #112]
        ; ldp d6, d7, [sp, #128]
        ; ldr x8, [sp, #144]
        ; ldp x29, x30, [sp], #176
        ; br x16
        ; .align 8
        ; ctx:
        ; .u64 ctx
        ; resolver:
        ; .u64 0
    );
    let mut text = ops
        .finalize()
        .map_err(|e| Error::Runtime(format!("lazy wrapper: {e}")))?;
    let resolver_reloc = text.len() - 8;
    let slots_offset = text.len().next_multiple_of(16);
    text.resize(slots_offset, 0);
    let mut cell_relocs = Vec::with_capacity(slots);
    let word = |text: &mut Vec<u8>, w: u32| text.extend_from_slice(&w.to_le_bytes());
    for i in 0..slots {
        let at = text.len();
        let key = first_key
            .checked_add(i as u32)
            .ok_or_else(|| Error::Runtime("indirection table full".into()))?;
        // `b` at at + 32 back to the wrapper at 0: imm26 words.
        let back = -((at + 32) as i64) / 4;
        if back < -(1 << 25) {
            return Err(Error::Runtime("lazy chunk too large".into()));
        }
        word(&mut text, LDR_X16_LITERAL_16);
        word(&mut text, LDR_X16_X16);
        word(&mut text, BR_X16);
        word(&mut text, NOP);
        cell_relocs.push(text.len());
        text.extend_from_slice(&[0; 8]);
        word(&mut text, MOVZ_W16 | ((key & 0xffff) << 5));
        word(&mut text, MOVK_W16_LSL16 | ((key >> 16) << 5));
        word(&mut text, B | ((back as u32) & 0x03ff_ffff));
        for _ in 0..3 {
            word(&mut text, NOP);
        }
        debug_assert_eq!(text.len(), at + SLOT_SIZE);
    }
    Ok(ChunkCode {
        text,
        slots_offset,
        cell_relocs,
        resolver_reloc,
    })
}
