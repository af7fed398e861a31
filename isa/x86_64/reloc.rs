//! x86-64 relocations: how each x86-64 [`RelocKind`] is computed, checked and
//! written (little-endian). Wired in from `src/reloc.rs`, which owns the
//! shared kinds ([`RelocKind::Abs64`]) and the dispatch.
//!
//! Invariant: the field is written only after every check has passed.

use crate::reloc::{check_range, RelocError, RelocKind};

/// The value `kind` stores for target `s`, addend `a` at place `p`, checked.
pub(crate) fn value(kind: RelocKind, p: u64, s: u64, a: i64) -> Result<i32, RelocError> {
    debug_assert!(matches!(
        kind,
        RelocKind::X86PcRel32 | RelocKind::X86CallPcRel32
    ));
    // Computed in i128 so that no intermediate wraps: the check sees the
    // true distance.
    let distance = i128::from(s) + i128::from(a) - i128::from(p);
    let v = check_range(kind, distance, i32::MIN.into(), i32::MAX.into())?;
    // In range by the check just above.
    Ok(v as i32)
}

/// Patches the 4-byte `field` at address `p`.
pub(crate) fn apply(
    kind: RelocKind,
    field: &mut [u8],
    p: u64,
    s: u64,
    a: i64,
) -> Result<(), RelocError> {
    let v = value(kind, p, s, a)?;
    field.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// `jmp qword [rip+0]` (ff 25 00000000), then the 8-byte target, then two
/// `int3` of padding: 16 bytes, the whole [`crate::reloc::STUB_SIZE`] slot.
pub(crate) fn write_stub(slot: &mut [u8], s: u64) {
    let mut stub = [0xccu8; 16];
    stub[..6].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    stub[6..14].copy_from_slice(&s.to_le_bytes());
    slot.copy_from_slice(&stub);
}

#[cfg(test)]
mod tests {
    use crate::reloc::{apply, RelocKind, RelocProblem};

    fn read(field: &[u8]) -> i32 {
        i32::from_le_bytes([field[0], field[1], field[2], field[3]])
    }

    #[test]
    fn call_rel32_targets_next_instruction_relative() {
        // `call rel32` at 0x1000: e8 then the field at 0x1001; next insn 0x1005.
        let mut code = [0xe8, 0, 0, 0, 0];
        apply(RelocKind::X86PcRel32, &mut code[1..], 0x1001, 0x2000, -4).unwrap();
        assert_eq!(code[0], 0xe8, "opcode untouched");
        let rel = read(&code[1..]);
        assert_eq!(0x1005 + i64::from(rel), 0x2000);
        // Backwards.
        apply(RelocKind::X86PcRel32, &mut code[1..], 0x1001, 0x10, -4).unwrap();
        assert_eq!(0x1005 + i64::from(read(&code[1..])), 0x10);
    }

    #[test]
    fn stub_jumps_through_the_quad_after_it() {
        let mut slot = [0u8; 16];
        super::write_stub(&mut slot, 0x1122_3344_5566_7788);
        assert_eq!(&slot[..6], &[0xff, 0x25, 0, 0, 0, 0]);
        assert_eq!(&slot[6..14], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&slot[14..], &[0xcc, 0xcc]);
        // A call kind computes like X86PcRel32.
        let mut f = [0u8; 4];
        apply(RelocKind::X86CallPcRel32, &mut f, 0x1001, 0x2000, -4).unwrap();
        assert_eq!(0x1005 + i64::from(read(&f)), 0x2000);
        assert!(apply(RelocKind::X86CallPcRel32, &mut f, 0, 1 << 40, -4).is_err());
    }

    #[test]
    fn boundaries_are_exact() {
        let p = 0x8000_0000_0000u64;
        let mut f = [0u8; 4];
        let max = i64::from(i32::MAX);
        let min = i64::from(i32::MIN);
        apply(RelocKind::X86PcRel32, &mut f, p, p + max as u64, 0).unwrap();
        assert_eq!(read(&f), i32::MAX);
        apply(RelocKind::X86PcRel32, &mut f, p, p - (-min) as u64, 0).unwrap();
        assert_eq!(read(&f), i32::MIN);
        let before = f;
        let e = apply(RelocKind::X86PcRel32, &mut f, p, p + max as u64 + 1, 0).unwrap_err();
        assert_eq!(
            e.problem,
            RelocProblem::OutOfRange {
                value: i128::from(max) + 1,
                min: min.into(),
                max: max.into()
            }
        );
        let e = apply(RelocKind::X86PcRel32, &mut f, p, p - (-min) as u64 - 1, 0).unwrap_err();
        assert!(matches!(e.problem, RelocProblem::OutOfRange { .. }));
        assert_eq!(f, before, "failed fixups leave the place alone");
        // Addend takes part in the range: S in range but S+A not.
        assert!(apply(RelocKind::X86PcRel32, &mut f, p, p + max as u64, 1).is_err());
    }

    #[test]
    fn extreme_addresses_do_not_wrap() {
        let mut f = [0u8; 4];
        // A naive u64 wrapping subtraction would make this look like -1.
        assert!(apply(RelocKind::X86PcRel32, &mut f, 0, u64::MAX, 0).is_err());
        assert!(apply(RelocKind::X86PcRel32, &mut f, u64::MAX, 0, 0).is_err());
        apply(RelocKind::X86PcRel32, &mut f, u64::MAX, u64::MAX - 4, 0).unwrap();
        assert_eq!(read(&f), -4);
    }
}
