//! x86-64 code for [`crate::lazy`]: one chunk of the indirection table —
//! the lazy-entry wrapper shared by the chunk, then one 32-byte slot per
//! retargetable function (System V).
//!
//! Slot `i` (its first byte is the function's address for every caller):
//!
//! ```text
//! +0   mov r11, CELL_i      ; 49 BB imm64 (Abs64 to the cell)
//! +10  jmp qword [r11]      ; 41 FF 23: to whatever the cell holds
//! +13  int3 x3
//! +16  mov r11d, KEY_i      ; 41 BB imm32: the lazy entry (the cell's
//! +22  jmp WRAPPER          ; E9 rel32      first value)
//! +27  int3 x5
//! ```
//!
//! The wrapper keeps the caller's arguments (rdi rsi rdx rcx r8 r9,
//! xmm0–xmm7; stack arguments are above the return address and untouched),
//! calls `resolver(ctx, key)` — which compiles the function, patches its
//! cell and returns its body's address — restores the arguments and jumps
//! there, so the first call continues into the function as if called
//! directly. It keeps the frame-pointer chain (`push rbp; mov rbp, rsp`).
//! r11 is the scratch register System V leaves to calls.

use super::ChunkCode;
use crate::error::{Error, Result};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, VecAssembler};

/// Bytes per slot.
pub const SLOT_SIZE: usize = 32;
/// Offset of a slot's lazy entry.
pub const LAZY_OFFSET: usize = 16;

/// The code of a chunk of `slots` slots whose keys start at `first_key`;
/// `ctx` is passed to the resolver as its first argument.
pub fn chunk(slots: usize, first_key: u32, ctx: u64) -> Result<ChunkCode> {
    let mut ops = VecAssembler::<X64Relocation>::new(0);
    let ctx = ctx as i64;
    dynasm!(ops
        ; .arch x64
        ; push rbp
        ; mov rbp, rsp
        ; push rdi ; push rsi ; push rdx ; push rcx ; push r8 ; push r9
        // Six pushes after rbp: the stack is 16-byte aligned again.
        ; sub rsp, 128
        ; movdqu [rsp], xmm0
        ; movdqu [rsp + 16], xmm1
        ; movdqu [rsp + 32], xmm2
        ; movdqu [rsp + 48], xmm3
        ; movdqu [rsp + 64], xmm4
        ; movdqu [rsp + 80], xmm5
        ; movdqu [rsp + 96], xmm6
        ; movdqu [rsp + 112], xmm7
        ; mov rdi, QWORD ctx
        ; mov esi, r11d
        ; mov rax, QWORD 0
    );
    let resolver_reloc = ops.offset().0 - 8;
    dynasm!(ops
        ; .arch x64
        ; call rax
        ; mov r11, rax
        ; movdqu xmm0, [rsp]
        ; movdqu xmm1, [rsp + 16]
        ; movdqu xmm2, [rsp + 32]
        ; movdqu xmm3, [rsp + 48]
        ; movdqu xmm4, [rsp + 64]
        ; movdqu xmm5, [rsp + 80]
        ; movdqu xmm6, [rsp + 96]
        ; movdqu xmm7, [rsp + 112]
        ; add rsp, 128
        ; pop r9 ; pop r8 ; pop rcx ; pop rdx ; pop rsi ; pop rdi
        ; pop rbp
        ; jmp r11
    );
    let mut text = ops
        .finalize()
        .map_err(|e| Error::Runtime(format!("lazy wrapper: {e}")))?;
    let slots_offset = text.len().next_multiple_of(16);
    text.resize(slots_offset, 0xcc);
    let mut cell_relocs = Vec::with_capacity(slots);
    for i in 0..slots {
        let at = text.len();
        let key = first_key
            .checked_add(i as u32)
            .ok_or_else(|| Error::Runtime("indirection table full".into()))?;
        // jmp rel32 ends at at + 27; the wrapper starts at 0.
        let rel = i32::try_from(-((at + 27) as i64))
            .map_err(|_| Error::Runtime("lazy chunk too large".into()))?;
        text.extend_from_slice(&[0x49, 0xbb]);
        cell_relocs.push(text.len());
        text.extend_from_slice(&[0; 8]);
        text.extend_from_slice(&[0x41, 0xff, 0x23, 0xcc, 0xcc, 0xcc]);
        text.extend_from_slice(&[0x41, 0xbb]);
        text.extend_from_slice(&key.to_le_bytes());
        text.push(0xe9);
        text.extend_from_slice(&rel.to_le_bytes());
        text.extend_from_slice(&[0xcc; 5]);
        debug_assert_eq!(text.len(), at + SLOT_SIZE);
    }
    Ok(ChunkCode {
        text,
        slots_offset,
        cell_relocs,
        resolver_reloc,
    })
}
