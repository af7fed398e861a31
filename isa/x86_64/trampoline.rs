//! x86-64 System V code for [`crate::trampoline`]: the call trampoline
//! (one for every signature), the unwind stub and the trap stub, assembled
//! with dynasm into plain byte vectors (installed by the caller in W^X
//! memory).
//!
//! Frame layout shared by the trampoline and the unwind stub (the unwind
//! stub relies on it): `push rbp; mov rbp, rsp; push rbx, r12, r13, r14,
//! r15; sub rsp, 8` — the stack pointer saved in `*frame` is the one after
//! `sub rsp, 8` (16-byte aligned).

use crate::error::{Error, Result};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

fn epilogue(ops: &mut Asm) {
    dynasm!(ops
        ; .arch x64
        ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp ; ret
    );
}

/// `fn(target, args: *const CallArgs, ret: *mut [u64; 2], frame) -> u32`,
/// for every signature: loads all six integer argument registers and all
/// eight `xmm` argument registers from `args` (registers a signature does
/// not use carry harmless zeros), copies `args.stack_len` 8-byte stack
/// arguments below the return address in order, calls `target`, and
/// stores `rax` to `ret[0]` and `xmm0` to `ret[1]`. The caller classifies
/// the arguments ([`crate::trampoline::CallArgs`]), so one trampoline
/// serves every signature.
pub fn trampoline() -> Result<Vec<u8>> {
    use crate::trampoline::CallArgs;
    let mut ops = Asm::new(0);
    let stack_len = std::mem::offset_of!(CallArgs, stack_len) as i32;
    let stack = std::mem::offset_of!(CallArgs, stack) as i32;
    let floats = std::mem::offset_of!(CallArgs, floats) as i32;
    let ints = std::mem::offset_of!(CallArgs, ints) as i32;
    dynasm!(ops
        ; .arch x64
        ; push rbp ; mov rbp, rsp
        ; push rbx ; push r12 ; push r13 ; push r14 ; push r15
        ; sub rsp, 8
        ; mov [rcx], rsp
        ; mov r12, rdi ; mov r13, rsi ; mov r14, rdx
        // Stack arguments: round the count up to even so that rsp stays
        // 16-byte aligned at the call, then copy them in order.
        ; mov rcx, [r13 + stack_len]
        ; test rcx, rcx
        ; jz >args
        ; lea rax, [rcx + 1]
        ; and rax, -2
        ; shl rax, 3
        ; sub rsp, rax
        ; mov rsi, [r13 + stack]
        ; xor eax, eax
        ; copy:
        ; mov rdx, [rsi + rax * 8]
        ; mov [rsp + rax * 8], rdx
        ; inc rax
        ; cmp rax, rcx
        ; jb <copy
        ; args:
        ; mov rdi, [r13 + ints]
        ; mov rsi, [r13 + ints + 8]
        ; mov rdx, [r13 + ints + 16]
        ; mov rcx, [r13 + ints + 24]
        ; mov r8, [r13 + ints + 32]
        ; mov r9, [r13 + ints + 40]
        ; movsd xmm0, QWORD [r13 + floats]
        ; movsd xmm1, QWORD [r13 + floats + 8]
        ; movsd xmm2, QWORD [r13 + floats + 16]
        ; movsd xmm3, QWORD [r13 + floats + 24]
        ; movsd xmm4, QWORD [r13 + floats + 32]
        ; movsd xmm5, QWORD [r13 + floats + 40]
        ; movsd xmm6, QWORD [r13 + floats + 48]
        ; movsd xmm7, QWORD [r13 + floats + 56]
        ; call r12
        ; mov [r14], rax
        ; movsd QWORD [r14 + 8], xmm0
        ; xor eax, eax
        ; lea rsp, [rbp - 40]
    );
    epilogue(&mut ops);
    ops.finalize()
        .map_err(|e| Error::Runtime(format!("call trampoline: {e}")))
}

/// `fn(saved_sp, code) -> !`: returns `1 + code` from the trampoline whose
/// frame `saved_sp` is.
pub fn unwind_stub() -> Option<Vec<u8>> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; mov rsp, rdi
        ; lea eax, [rsi + 1]
        ; add rsp, 8
    );
    epilogue(&mut ops);
    ops.finalize().ok()
}

/// The [`crate::isa::TRAP_HANDLER`] stub: passes `state` as the second
/// argument, the trap site's return address and frame pointer as the third
/// and fourth, and jumps to `entry` (the trap code is already in `edi`).
pub fn trap_stub(state: u64, entry: u64) -> Option<Vec<u8>> {
    let mut ops = Asm::new(0);
    let (state, entry) = (state as i64, entry as i64);
    dynasm!(ops
        ; .arch x64
        ; mov rdx, [rsp]
        ; mov rcx, rbp
        ; mov rsi, QWORD state
        ; mov rax, QWORD entry
        ; jmp rax
    );
    ops.finalize().ok()
}
