//! x86-64 System V code for [`crate::trampoline`]: the per-signature call
//! trampoline, the unwind stub and the trap stub, assembled with dynasm
//! into plain byte vectors (installed by the caller in W^X memory).
//!
//! Frame layout shared by the trampoline and the unwind stub (the unwind
//! stub relies on it): `push rbp; mov rbp, rsp; push rbx, r12, r13, r14,
//! r15; sub rsp, 8` — the stack pointer saved in `*frame` is the one after
//! `sub rsp, 8` (16-byte aligned).

use crate::error::{Error, Result};
use crate::ir::Signature;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

/// System V integer argument registers, by hardware number:
/// rdi, rsi, rdx, rcx, r8, r9.
const INT_ARGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
const FLOAT_ARGS: u8 = 8;

fn epilogue(ops: &mut Asm) {
    dynasm!(ops
        ; .arch x64
        ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbx ; pop rbp ; ret
    );
}

/// `fn(target, args, ret, frame) -> u32` for `sig`.
// dynasm's dynamic-register syntax expands to a `u8 -> u8` conversion.
#[allow(clippy::useless_conversion)]
pub fn trampoline(sig: &Signature) -> Result<Vec<u8>> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; push rbp ; mov rbp, rsp
        ; push rbx ; push r12 ; push r13 ; push r14 ; push r15
        ; sub rsp, 8
        ; mov [rcx], rsp
        ; mov r12, rdi ; mov r13, rsi ; mov r14, rdx
    );
    let too_many = || Error::Argument(format!("signature {sig} has too many parameters"));
    // Classify: registers first, the rest on the stack in order.
    let (mut ints, mut floats) = (0usize, 0u8);
    let mut regs: Vec<(usize, bool, u8)> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for (i, ty) in sig.params.iter().enumerate() {
        if ty.is_int() && ints < INT_ARGS.len() {
            regs.push((i, true, INT_ARGS[ints]));
            ints += 1;
        } else if ty.is_float() && floats < FLOAT_ARGS {
            regs.push((i, false, floats));
            floats += 1;
        } else {
            stack.push(i);
        }
    }
    let stack_bytes = i32::try_from(stack.len().div_ceil(2) * 16).map_err(|_| too_many())?;
    if stack_bytes > 0 {
        dynasm!(ops ; .arch x64 ; sub rsp, stack_bytes);
    }
    let slot = |i: usize| i32::try_from(i * 8).map_err(|_| too_many());
    for (k, &i) in stack.iter().enumerate() {
        let (src, dst) = (slot(i)?, slot(k)?);
        dynasm!(ops ; .arch x64 ; mov rax, [r13 + src] ; mov [rsp + dst], rax);
    }
    for &(i, int, reg) in &regs {
        let src = slot(i)?;
        if int {
            dynasm!(ops ; .arch x64 ; mov Rq(reg), [r13 + src]);
        } else {
            dynasm!(ops ; .arch x64 ; movsd Rx(reg), QWORD [r13 + src]);
        }
    }
    dynasm!(ops ; .arch x64 ; call r12);
    match sig.ret {
        Some(t) if t.is_int() => dynasm!(ops ; .arch x64 ; mov [r14], rax),
        Some(_) => dynasm!(ops ; .arch x64 ; movsd QWORD [r14], xmm0),
        None => {}
    }
    dynasm!(ops
        ; .arch x64
        ; xor eax, eax
        ; lea rsp, [rbp - 40]
    );
    epilogue(&mut ops);
    ops.finalize()
        .map_err(|e| Error::Runtime(format!("trampoline for {sig}: {e}")))
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
