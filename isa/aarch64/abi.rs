//! The AAPCS64 calling convention, as kiln uses it.
//!
//! Integer parameters go in `x0`–`x7`, float parameters in `v0`–`v7` (as
//! `s`/`d`), each class counted separately; the rest go on the stack in
//! order, one 8-byte slot each (AAPCS64 rounds every stack argument of 8
//! bytes or less up to 8), the first at the lowest address (`[sp]` at the
//! call, `[x29 + 16]` in the callee after its frame record `stp x29, x30,
//! [sp, #-16]!; mov x29, sp`). Results come back in `x0` / `v0`. `sp` is
//! 16-byte aligned at all times (the hardware checks it on every
//! `sp`-based access). The caller reserves the outgoing stack-argument area
//! once, at the bottom of its frame, sized for its largest call.
//!
//! A 32-bit integer argument's upper 32 bits are unspecified on entry: the
//! callee must only read the `w` register.

use super::regs::{FLOAT_ARGS, INT_ARGS};
use crate::ir::Type;
use crate::lower::abi::assign_args;

pub use crate::lower::abi::ArgLoc;

/// The locations of `params`, and the bytes of stack they need (a multiple
/// of 16 so the caller keeps `sp` aligned). Stack offsets are from `sp`
/// at the call.
pub fn arg_locations(params: &[Type]) -> (Vec<ArgLoc>, u32) {
    assign_args(params, &INT_ARGS, FLOAT_ARGS)
}

/// The register a result of type `ty` is returned in.
pub fn result_location(ty: Type) -> ArgLoc {
    if ty.is_int() {
        ArgLoc::Int(0)
    } else {
        ArgLoc::Float(0)
    }
}

/// Offset from `x29` of an incoming stack argument at `stack_offset`:
/// above the frame record (saved `x29` and `x30`).
pub fn incoming_stack_offset(stack_offset: u32) -> i64 {
    16 + stack_offset as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_counted_separately_and_overflow_to_the_stack() {
        let mut params = vec![Type::I64, Type::F64];
        params.extend([Type::I32; 8]);
        params.push(Type::F32);
        params.push(Type::I64);
        let (locs, stack) = arg_locations(&params);
        assert_eq!(locs[0], ArgLoc::Int(0));
        assert_eq!(locs[1], ArgLoc::Float(0));
        assert_eq!(locs[8], ArgLoc::Int(7));
        assert_eq!(locs[9], ArgLoc::Stack(0));
        assert_eq!(locs[10], ArgLoc::Float(1));
        assert_eq!(locs[11], ArgLoc::Stack(8));
        assert_eq!(stack, 16);
        let (_, stack) = arg_locations(&[Type::F64; 9]);
        assert_eq!(stack, 16, "one stack slot still rounds to 16");
    }
}
