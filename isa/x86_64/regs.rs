//! The x86-64 register file as the allocator and emitter see it.
//!
//! Registers are numbered by their hardware encoding (`rax` = 0 … `r15` =
//! 15; `xmm0` = 0 … `xmm15` = 15), which is what dynasm's `Rq(n)` / `Rx(n)`
//! take. Invariants: `rsp` and `rbp` (frame pointer) are never allocated;
//! `r11` and `xmm15` are reserved as scratch registers, used only by the move
//! resolver between instructions and by the emitter inside the expansion of
//! one machine instruction, so they never hold a value across instructions.

use crate::regalloc::{MachineEnv, PReg, PRegSet, RegClass};

pub const RAX: u8 = 0;
pub const RCX: u8 = 1;
pub const RDX: u8 = 2;
pub const RBX: u8 = 3;
pub const RSP: u8 = 4;
pub const RBP: u8 = 5;
pub const RSI: u8 = 6;
pub const RDI: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const R10: u8 = 10;
pub const R11: u8 = 11;
pub const R12: u8 = 12;
pub const R13: u8 = 13;
pub const R14: u8 = 14;
pub const R15: u8 = 15;

/// Integer scratch register (never allocated).
pub const SCRATCH_INT: u8 = R11;
/// Float scratch register (never allocated).
pub const SCRATCH_FLOAT: u8 = 15;

/// System V integer argument registers, in order.
pub const INT_ARGS: [u8; 6] = [RDI, RSI, RDX, RCX, R8, R9];
/// Number of System V float argument registers (`xmm0`–`xmm7`).
pub const FLOAT_ARGS: u8 = 8;

/// Callee-saved integer registers the allocator may use (System V).
pub const CALLEE_SAVED_INT: [u8; 5] = [RBX, R12, R13, R14, R15];

/// Caller-saved integer registers the allocator may use, preferred first.
pub const CALLER_SAVED_INT: [u8; 8] = [RAX, RCX, RDX, RSI, RDI, R8, R9, R10];

/// Integer register names, by encoding.
pub const INT_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

pub fn int(n: u8) -> PReg {
    PReg::new(n, RegClass::Int)
}

pub fn float(n: u8) -> PReg {
    PReg::new(n, RegClass::Float)
}

/// Whether integer register `n` must be preserved across calls (System V).
pub fn is_callee_saved_int(n: u8) -> bool {
    CALLEE_SAVED_INT.contains(&n)
}

/// Every register a call may destroy (System V): the caller-saved integer
/// registers including the scratch `r11`, and every xmm register.
pub fn call_clobbers() -> PRegSet {
    let mut set = PRegSet::empty();
    for r in CALLER_SAVED_INT {
        set.add(int(r));
    }
    set.add(int(R11));
    for x in 0..16 {
        set.add(float(x));
    }
    set
}

/// The register file as data for the allocator: caller-saved registers are
/// preferred (no save/restore cost), callee-saved ones follow.
pub fn machine_env() -> MachineEnv {
    MachineEnv {
        preferred_regs: [
            CALLER_SAVED_INT.iter().map(|&r| int(r)).collect(),
            // Every xmm register is caller-saved in System V; xmm15 is scratch.
            (0..15).map(float).collect(),
        ],
        non_preferred_regs: [
            CALLEE_SAVED_INT.iter().map(|&r| int(r)).collect(),
            Vec::new(),
        ],
        scratch: [int(SCRATCH_INT), float(SCRATCH_FLOAT)],
    }
}
