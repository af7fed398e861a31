//! Call-argument assignment shared by every backend's calling convention.
//!
//! Both System V AMD64 and AAPCS64 (as kiln uses them) count integer and
//! float parameters separately, give each class registers in order, and put
//! the rest on the stack in order, one 8-byte slot each, the first at the
//! lowest address; the outgoing area is rounded to 16 bytes so the caller
//! keeps the stack pointer aligned. A backend supplies only its register
//! table (see each `isa/<arch>/abi.rs`).
//!
//! Invariant: stack offsets and the area size saturate instead of wrapping,
//! so absurd parameter counts become a "frame too large" error downstream.

use crate::ir::Type;

/// Where one argument lives at a call boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgLoc {
    /// An integer register (hardware encoding).
    Int(u8),
    /// A float register (`xmm`/`v` number).
    Float(u8),
    /// The stack, at this byte offset from the stack pointer at the call.
    Stack(u32),
}

/// The locations of `params` given the integer argument registers
/// `int_args` (in order) and `float_args` float argument registers
/// numbered from 0, and the bytes of stack they need (a multiple of 16).
pub fn assign_args(params: &[Type], int_args: &[u8], float_args: u8) -> (Vec<ArgLoc>, u32) {
    let mut locs = Vec::with_capacity(params.len());
    let stack = assign_args_into(params, int_args, float_args, &mut locs);
    (locs, stack)
}

/// [`assign_args`] into a reused `locs` (cleared first).
pub fn assign_args_into(
    params: &[Type],
    int_args: &[u8],
    float_args: u8,
    locs: &mut Vec<ArgLoc>,
) -> u32 {
    locs.clear();
    let (mut ints, mut floats, mut stack) = (0usize, 0u8, 0u32);
    for ty in params {
        let loc = if ty.is_int() && ints < int_args.len() {
            ints += 1;
            ArgLoc::Int(int_args[ints - 1])
        } else if ty.is_float() && floats < float_args {
            floats += 1;
            ArgLoc::Float(floats - 1)
        } else {
            stack = stack.saturating_add(8);
            ArgLoc::Stack(stack - 8)
        };
        locs.push(loc);
    }
    stack.div_ceil(16).saturating_mul(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_table_is_followed_and_the_stack_area_is_rounded() {
        // A made-up table: two integer registers 9 and 4, one float register.
        let params = [Type::I32, Type::F64, Type::I64, Type::F32, Type::I64];
        let (locs, stack) = assign_args(&params, &[9, 4], 1);
        assert_eq!(
            locs,
            [
                ArgLoc::Int(9),
                ArgLoc::Float(0),
                ArgLoc::Int(4),
                ArgLoc::Stack(0),
                ArgLoc::Stack(8),
            ]
        );
        assert_eq!(stack, 16);
        let (_, stack) = assign_args(&[Type::I64; 3], &[0, 1], 0);
        assert_eq!(stack, 16, "one stack slot still rounds to 16");
        assert_eq!(assign_args(&[Type::F64; 2], &[], 2).1, 0);
    }
}
