//! The System V AMD64 calling convention, as kiln uses it.
//!
//! Integer parameters go in `rdi rsi rdx rcx r8 r9`, float parameters in
//! `xmm0`–`xmm7`, each class counted separately; the rest go on the stack in
//! order, 8 bytes each, the first at the lowest address (`[rsp]` at the call,
//! `[rbp + 16]` in the callee after `push rbp; mov rbp, rsp`). Results come
//! back in `rax` / `xmm0`. `rsp` is 16-byte aligned at every call
//! instruction. The caller reserves the outgoing stack-argument area once,
//! at the bottom of its frame, sized for its largest call.

use super::regs::{FLOAT_ARGS, INT_ARGS, RAX};
use crate::ir::Type;
use crate::lower::abi::assign_args;

pub use crate::lower::abi::ArgLoc;

/// The locations of `params`, and the bytes of stack they need (a multiple
/// of 16 so the caller keeps `rsp` aligned). Stack offsets are from `rsp`
/// at the call.
pub fn arg_locations(params: &[Type]) -> (Vec<ArgLoc>, u32) {
    assign_args(params, &INT_ARGS, FLOAT_ARGS)
}

/// The register a result of type `ty` is returned in.
pub fn result_location(ty: Type) -> ArgLoc {
    if ty.is_int() {
        ArgLoc::Int(RAX)
    } else {
        ArgLoc::Float(0)
    }
}

/// Offset from `rbp` of the `n`-th incoming stack argument byte offset:
/// above the saved `rbp` and the return address.
pub fn incoming_stack_offset(stack_offset: u32) -> i32 {
    16 + stack_offset as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_counted_separately_and_overflow_to_the_stack() {
        let params = [
            Type::I64,
            Type::F64,
            Type::I32,
            Type::I64,
            Type::I64,
            Type::I64,
            Type::I64,
            Type::I64,
            Type::F32,
        ];
        let (locs, stack) = arg_locations(&params);
        assert_eq!(locs[0], ArgLoc::Int(INT_ARGS[0]));
        assert_eq!(locs[1], ArgLoc::Float(0));
        assert_eq!(locs[6], ArgLoc::Int(INT_ARGS[5]));
        assert_eq!(locs[7], ArgLoc::Stack(0));
        assert_eq!(locs[8], ArgLoc::Float(1));
        assert_eq!(stack, 16);
    }
}
