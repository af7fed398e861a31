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

/// Where one argument lives at a call boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgLoc {
    /// An integer register (hardware encoding).
    Int(u8),
    /// An xmm register.
    Float(u8),
    /// The stack, at this byte offset from `rsp` at the call.
    Stack(u32),
}

/// The locations of `params`, and the bytes of stack they need (a multiple
/// of 16 so the caller keeps `rsp` aligned).
pub fn arg_locations(params: &[Type]) -> (Vec<ArgLoc>, u32) {
    let mut locs = Vec::with_capacity(params.len());
    let (mut ints, mut floats, mut stack) = (0usize, 0u8, 0u32);
    for ty in params {
        let loc = if ty.is_int() && ints < INT_ARGS.len() {
            ints += 1;
            ArgLoc::Int(INT_ARGS[ints - 1])
        } else if ty.is_float() && floats < FLOAT_ARGS {
            floats += 1;
            ArgLoc::Float(floats - 1)
        } else {
            stack += 8;
            ArgLoc::Stack(stack - 8)
        };
        locs.push(loc);
    }
    (locs, stack.div_ceil(16) * 16)
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
