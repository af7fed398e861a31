//! The AArch64 register file as the allocator and emitter see it (AAPCS64).
//!
//! Registers are numbered by their hardware encoding (`x0` = 0 … `x30` = 30;
//! `v0` = 0 … `v31` = 31), which is what dynasm's `X(n)` / `D(n)` take.
//! Number 31 is `sp` or `xzr` depending on the instruction.
//!
//! Invariants:
//! - `x16`/`x17` (IP0/IP1) are never allocated: the emitter uses them as
//!   scratch inside the expansion of one machine instruction (large
//!   offsets, constants, call targets, veneers), and the allocator's move
//!   resolver uses `x17` between instructions. `v31` plays the same role
//!   for floats. None of them holds a value across instructions.
//! - `x18` is the platform register and is never touched.
//! - `x29` (frame pointer) and `x30` (link register) form the frame record
//!   and are never allocated; `sp` is 16-byte aligned at all times.
//! - Callee-saved: `x19`–`x28`, and the low 64 bits of `v8`–`v15`.

use crate::regalloc::{MachineEnv, PReg, PRegSet, RegClass};

/// Intra-procedure-call scratch register 0.
pub const X16: u8 = 16;
/// Intra-procedure-call scratch register 1.
pub const X17: u8 = 17;
/// The platform register: left alone.
pub const X18: u8 = 18;
/// Frame pointer.
pub const FP: u8 = 29;
/// Link register.
pub const LR: u8 = 30;
/// `sp` (in base-register and add/sub-immediate positions) or `xzr`.
pub const SP: u8 = 31;

/// Integer scratch register (never allocated).
pub const SCRATCH_INT: u8 = X17;
/// Float scratch register (never allocated).
pub const SCRATCH_FLOAT: u8 = 31;

/// AAPCS64 integer argument / result registers `x0`–`x7`, in order.
pub const INT_ARGS: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// Number of float argument registers (`v0`–`v7`).
pub const FLOAT_ARGS: u8 = 8;

/// Callee-saved integer registers the allocator may use.
pub const CALLEE_SAVED_INT: [u8; 10] = [19, 20, 21, 22, 23, 24, 25, 26, 27, 28];
/// Callee-saved float registers (low 64 bits only are preserved).
pub const CALLEE_SAVED_FLOAT: [u8; 8] = [8, 9, 10, 11, 12, 13, 14, 15];

/// Caller-saved integer registers the allocator may use, preferred first:
/// the temporaries `x9`–`x15`, then `x8` (the indirect-result register,
/// unused by kiln's signatures) and the argument registers.
pub const CALLER_SAVED_INT: [u8; 16] = [9, 10, 11, 12, 13, 14, 15, 8, 0, 1, 2, 3, 4, 5, 6, 7];

pub fn int(n: u8) -> PReg {
    PReg::new(n, RegClass::Int)
}

pub fn float(n: u8) -> PReg {
    PReg::new(n, RegClass::Float)
}

/// Whether integer register `n` must be preserved across calls.
pub fn is_callee_saved_int(n: u8) -> bool {
    CALLEE_SAVED_INT.contains(&n)
}

/// Whether float register `n` must be preserved across calls. Only the low
/// 64 bits are, which is all kiln keeps in a float register.
pub fn is_callee_saved_float(n: u8) -> bool {
    CALLEE_SAVED_FLOAT.contains(&n)
}

/// The float registers a call may destroy, allocator-usable ones only:
/// `v0`–`v7` and `v16`–`v30` (`v31` is scratch, listed separately).
fn caller_saved_float() -> impl Iterator<Item = u8> {
    (0..8).chain(16..31)
}

/// Every register a call may destroy (AAPCS64): the caller-saved integer
/// registers, both IP scratch registers, `x30`, and every float register
/// but `v8`–`v15`.
pub fn call_clobbers() -> PRegSet {
    let mut set = PRegSet::empty();
    for r in CALLER_SAVED_INT {
        set.add(int(r));
    }
    set.add(int(X16));
    set.add(int(X17));
    set.add(int(LR));
    for v in caller_saved_float() {
        set.add(float(v));
    }
    set.add(float(SCRATCH_FLOAT));
    set
}

/// The register file as data for the allocator: caller-saved registers are
/// preferred (no save/restore cost), callee-saved ones follow. `x16`–`x18`,
/// `x29`, `x30`, `sp` and `v31` are never offered.
pub fn machine_env() -> MachineEnv {
    MachineEnv {
        preferred_regs: [
            CALLER_SAVED_INT.iter().map(|&r| int(r)).collect(),
            caller_saved_float().map(float).collect(),
        ],
        non_preferred_regs: [
            CALLEE_SAVED_INT.iter().map(|&r| int(r)).collect(),
            CALLEE_SAVED_FLOAT.iter().map(|&r| float(r)).collect(),
        ],
        scratch: [int(SCRATCH_INT), float(SCRATCH_FLOAT)],
    }
}

/// Integer register name (`x0`…`x30`, `sp`), for listings and errors.
pub fn int_name(n: u8) -> String {
    match n {
        FP => "fp".into(),
        LR => "lr".into(),
        SP => "sp".into(),
        _ => format!("x{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_registers_are_never_allocatable() {
        let env = machine_env();
        let ints: Vec<PReg> = env.allocatable(RegClass::Int).collect();
        for r in [X16, X17, X18, FP, LR, SP] {
            assert!(!ints.contains(&int(r)), "x{r} allocatable");
        }
        assert_eq!(ints.len(), 26);
        let floats: Vec<PReg> = env.allocatable(RegClass::Float).collect();
        assert!(!floats.contains(&float(SCRATCH_FLOAT)));
        assert_eq!(floats.len(), 31);
    }

    #[test]
    fn clobbers_are_exactly_the_caller_saved_set() {
        let c = call_clobbers();
        for r in 0..31u8 {
            let saved = is_callee_saved_int(r) || r == X18 || r == FP;
            assert_eq!(c.contains(int(r)), !saved, "x{r}");
        }
        for v in 0..32u8 {
            assert_eq!(c.contains(float(v)), !is_callee_saved_float(v), "v{v}");
        }
    }
}
