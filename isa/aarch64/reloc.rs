//! AArch64 relocations: how each `Arm64*` [`RelocKind`] is computed, checked
//! and patched into a little-endian instruction word. Wired in from
//! `src/reloc.rs`, which owns the shared kinds and the dispatch; compiled on
//! every host because patching is pure bit manipulation.
//!
//! Invariants: the instruction at the place must be of the class the kind
//! patches (B/BL, ADRP, ADD immediate, LDR/STR unsigned immediate of the
//! matching size), only the immediate field changes, and nothing is written
//! unless every check passed.

use crate::reloc::{check_range, s_plus_a, RelocError, RelocKind, RelocProblem};

/// B/BL: bits 30..26 are 0b00101 (bit 31 is the link bit).
const BRANCH_MASK: u32 = 0x7c00_0000;
const BRANCH_BITS: u32 = 0x1400_0000;
const IMM26_MASK: u32 = 0x03ff_ffff;
/// ADRP: bit 31 set (ADR has it clear), bits 28..24 are 0b10000.
const ADRP_MASK: u32 = 0x9f00_0000;
const ADRP_BITS: u32 = 0x9000_0000;
const ADRP_IMM_MASK: u32 = (0x3 << 29) | (0x7_ffff << 5);
/// ADD (immediate) without flags and without the `lsl #12` shift, 32 or 64 bit.
const ADD_IMM_MASK: u32 = 0x7fc0_0000;
const ADD_IMM_BITS: u32 = 0x1100_0000;
/// LDR/STR (unsigned immediate), integer or SIMD&FP: bits 29..27 = 0b111,
/// bits 25..24 = 0b01.
const LDST_MASK: u32 = 0x3b00_0000;
const LDST_BITS: u32 = 0x3900_0000;
const IMM12_MASK: u32 = 0xfff << 10;

/// ±128 MiB, in bytes, for B/BL.
const CALL26_MIN: i128 = -(1 << 27);
const CALL26_MAX: i128 = (1 << 27) - 4;
/// 21 signed bits of pages for ADRP.
const PAGE21_MIN: i128 = -(1 << 20);
const PAGE21_MAX: i128 = (1 << 20) - 1;

/// The immediate `kind` encodes for target `s`, addend `a` at place `p`,
/// checked for range and alignment, in the low bits of the result.
pub(crate) fn value(kind: RelocKind, p: u64, s: u64, a: i64) -> Result<u32, RelocError> {
    if !p.is_multiple_of(4) {
        // Instructions are 4-byte aligned; a misaligned place is a bad offset.
        return Err(RelocError::new(
            kind,
            RelocProblem::Misaligned {
                value: p.into(),
                align: 4,
            },
        ));
    }
    match kind {
        RelocKind::Arm64Call26 => {
            let distance = i128::from(s) + i128::from(a) - i128::from(p);
            if distance % 4 != 0 {
                return Err(RelocError::new(
                    kind,
                    RelocProblem::Misaligned {
                        value: distance,
                        align: 4,
                    },
                ));
            }
            let d = check_range(kind, distance, CALL26_MIN, CALL26_MAX)?;
            // In range, so (d >> 2) fits 26 signed bits; the mask keeps its
            // two's-complement encoding.
            Ok(((d >> 2) as u32) & IMM26_MASK)
        }
        RelocKind::Arm64AdrpPage21 => {
            let target = s_plus_a(kind, s, a)?;
            let pages = i128::from(target >> 12) - i128::from(p >> 12);
            let pages = check_range(kind, pages, PAGE21_MIN, PAGE21_MAX)?;
            Ok((pages as u32) & 0x1f_ffff)
        }
        RelocKind::Arm64AddLo12 => Ok((s_plus_a(kind, s, a)? & 0xfff) as u32),
        RelocKind::Arm64LdstLo12 { scale } => {
            if scale > 4 {
                return Err(RelocError::new(kind, RelocProblem::BadScale(scale)));
            }
            let lo = s_plus_a(kind, s, a)? & 0xfff;
            let align = 1u32 << scale;
            if !lo.is_multiple_of(u64::from(align)) {
                return Err(RelocError::new(
                    kind,
                    RelocProblem::Misaligned {
                        value: lo.into(),
                        align,
                    },
                ));
            }
            Ok((lo >> scale) as u32)
        }
        RelocKind::Abs64 | RelocKind::X86PcRel32 | RelocKind::X86CallPcRel32 => {
            // Not AArch64 instruction kinds; src/reloc.rs never sends them here.
            Err(RelocError::new(
                kind,
                RelocProblem::WrongInstruction {
                    found: 0,
                    expected: "an AArch64 relocation kind",
                },
            ))
        }
    }
}

/// The access size (log2 bytes) of an LDR/STR unsigned-immediate word.
fn ldst_scale(insn: u32) -> u8 {
    let size = (insn >> 30) as u8;
    let simd = insn & (1 << 26) != 0;
    let opc_hi = insn & (1 << 23) != 0;
    if simd && size == 0 && opc_hi {
        4 // 128-bit Q register access
    } else {
        size
    }
}

/// Checks that `insn` is what `kind` patches.
fn check_instruction(kind: RelocKind, insn: u32) -> Result<(), RelocError> {
    let wrong = |expected| {
        Err(RelocError::new(
            kind,
            RelocProblem::WrongInstruction {
                found: insn,
                expected,
            },
        ))
    };
    match kind {
        RelocKind::Arm64LdstLo12 { scale } if scale > 4 => {
            Err(RelocError::new(kind, RelocProblem::BadScale(scale)))
        }
        RelocKind::Arm64Call26 if insn & BRANCH_MASK != BRANCH_BITS => wrong("B or BL"),
        RelocKind::Arm64AdrpPage21 if insn & ADRP_MASK != ADRP_BITS => wrong("ADRP"),
        RelocKind::Arm64AddLo12 if insn & ADD_IMM_MASK != ADD_IMM_BITS => {
            wrong("ADD (immediate, unshifted)")
        }
        RelocKind::Arm64LdstLo12 { .. } if insn & LDST_MASK != LDST_BITS => {
            wrong("LDR/STR (unsigned immediate)")
        }
        RelocKind::Arm64LdstLo12 { scale } if ldst_scale(insn) != scale => {
            wrong("LDR/STR of the relocation's access size")
        }
        _ => Ok(()),
    }
}

/// Patches the 4-byte instruction `field` at address `p`.
pub(crate) fn apply(
    kind: RelocKind,
    field: &mut [u8],
    p: u64,
    s: u64,
    a: i64,
) -> Result<(), RelocError> {
    let insn = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
    check_instruction(kind, insn)?;
    let imm = value(kind, p, s, a)?;
    let patched = match kind {
        RelocKind::Arm64Call26 => (insn & !IMM26_MASK) | imm,
        RelocKind::Arm64AdrpPage21 => {
            let immlo = imm & 0x3;
            let immhi = imm >> 2;
            (insn & !ADRP_IMM_MASK) | (immlo << 29) | (immhi << 5)
        }
        _ => (insn & !IMM12_MASK) | (imm << 10),
    };
    field.copy_from_slice(&patched.to_le_bytes());
    Ok(())
}

/// `ldr x16, #8` (the literal two words on).
pub(crate) const VENEER_LDR_X16: u32 = 0x5800_0050;
/// `br x16`.
pub(crate) const VENEER_BR_X16: u32 = 0xd61f_0200;

/// A veneer: `ldr x16, #8; br x16; .quad s` (16 bytes). x16 (IP0) is the
/// AAPCS64 intra-procedure-call scratch register, free to clobber between a
/// `bl` and its callee's entry.
pub(crate) fn write_stub(slot: &mut [u8], s: u64) {
    let mut stub = [0u8; 16];
    stub[..4].copy_from_slice(&VENEER_LDR_X16.to_le_bytes());
    stub[4..8].copy_from_slice(&VENEER_BR_X16.to_le_bytes());
    stub[8..].copy_from_slice(&s.to_le_bytes());
    slot.copy_from_slice(&stub);
}

#[cfg(test)]
mod tests {
    use crate::reloc::{apply, RelocKind, RelocProblem};

    const BL: u32 = 0x9400_0000;
    const B: u32 = 0x1400_0000;
    const ADRP_X1: u32 = 0x9000_0001;
    const ADD_X1_X1: u32 = 0x9100_0021;
    const LDR_X0_X1: u32 = 0xf940_0020; // ldr x0, [x1]
    const LDR_W0_X1: u32 = 0xb940_0020; // ldr w0, [x1]
    const LDRB_W0_X1: u32 = 0x3940_0020; // ldrb w0, [x1]
    const LDR_Q0_X1: u32 = 0x3dc0_0020; // ldr q0, [x1]
    const NOP: u32 = 0xd503_201f;

    #[test]
    fn veneer_loads_its_literal_into_x16_and_branches() {
        let mut slot = [0xffu8; 16];
        super::write_stub(&mut slot, 0x0123_4567_89ab_cdef);
        let w = |i: usize| u32::from_le_bytes(slot[i..i + 4].try_into().unwrap());
        // LDR (literal), 64-bit: opc 01, imm19 = 2 words, Rt = 16.
        assert_eq!(w(0) & 0xff00_0000, 0x5800_0000);
        assert_eq!((w(0) >> 5) & 0x7_ffff, 2);
        assert_eq!(w(0) & 0x1f, 16);
        // BR: Rn = 16.
        assert_eq!(w(4) & 0xffff_fc1f, 0xd61f_0000);
        assert_eq!((w(4) >> 5) & 0x1f, 16);
        assert_eq!(&slot[8..], &0x0123_4567_89ab_cdefu64.to_le_bytes());
    }

    fn patch(kind: RelocKind, insn: u32, p: u64, s: u64, a: i64) -> Result<u32, RelocProblem> {
        let mut f = insn.to_le_bytes();
        match apply(kind, &mut f, p, s, a) {
            Ok(()) => Ok(u32::from_le_bytes(f)),
            Err(e) => {
                assert_eq!(e.kind, kind);
                assert_eq!(u32::from_le_bytes(f), insn, "failed fixup wrote bytes");
                Err(e.problem)
            }
        }
    }

    /// Re-extracts the branch target from a patched B/BL.
    fn branch_target(insn: u32, p: u64) -> u64 {
        let imm26 = insn & 0x03ff_ffff;
        let offset = (((imm26 << 6) as i32) >> 6) as i64 * 4;
        p.wrapping_add(offset as u64)
    }

    /// Re-computes the page an ADRP at `p` loads.
    fn adrp_page(insn: u32, p: u64) -> u64 {
        let immlo = (insn >> 29) & 3;
        let immhi = (insn >> 5) & 0x7_ffff;
        let imm21 = (immhi << 2) | immlo;
        let pages = ((imm21 << 11) as i32 >> 11) as i64;
        (p & !0xfff).wrapping_add((pages << 12) as u64)
    }

    fn imm12(insn: u32) -> u32 {
        (insn >> 10) & 0xfff
    }

    #[test]
    fn call26_in_range_decodes_back() {
        let p = 0x4000_0000u64;
        for (s, a) in [(p + 8, 0), (p - 0x1234 * 4, 0), (p + 0x10_0000, -4), (p, 0)] {
            for insn in [BL, B] {
                let out = patch(RelocKind::Arm64Call26, insn, p, s, a).unwrap();
                assert_eq!(out & 0xfc00_0000, insn, "opcode preserved");
                assert_eq!(branch_target(out, p), (s as i64 + a) as u64);
            }
        }
    }

    #[test]
    fn call26_boundaries() {
        let p = 0x1_0000_0000u64;
        let max = (1u64 << 27) - 4;
        let min = 1u64 << 27;
        let out = patch(RelocKind::Arm64Call26, BL, p, p + max, 0).unwrap();
        assert_eq!(branch_target(out, p), p + max);
        let out = patch(RelocKind::Arm64Call26, BL, p, p - min, 0).unwrap();
        assert_eq!(branch_target(out, p), p - min);
        assert_eq!(
            patch(RelocKind::Arm64Call26, BL, p, p + max + 4, 0),
            Err(RelocProblem::OutOfRange {
                value: (1 << 27),
                min: -(1 << 27),
                max: (1 << 27) - 4
            })
        );
        assert!(matches!(
            patch(RelocKind::Arm64Call26, BL, p, p - min - 4, 0),
            Err(RelocProblem::OutOfRange { .. })
        ));
    }

    #[test]
    fn call26_misaligned() {
        let p = 0x1000u64;
        assert_eq!(
            patch(RelocKind::Arm64Call26, BL, p, p + 6, 0),
            Err(RelocProblem::Misaligned { value: 6, align: 4 })
        );
        assert!(matches!(
            patch(RelocKind::Arm64Call26, BL, p + 2, p + 8, 0),
            Err(RelocProblem::Misaligned { .. })
        ));
    }

    #[test]
    fn call26_rejects_other_instructions() {
        assert!(matches!(
            patch(RelocKind::Arm64Call26, NOP, 0, 8, 0),
            Err(RelocProblem::WrongInstruction { found: NOP, .. })
        ));
    }

    #[test]
    fn adrp_in_range_decodes_back() {
        let p = 0x7f12_3456_7000u64 + 0x44;
        for target in [
            p,
            p + 0x1000,
            p - 0x1000,
            p + 0xdead_b000,
            p - 0x8765_4321,
            p + 0x123,
        ] {
            let out = patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, target, 0).unwrap();
            assert_eq!(
                out & !(0x6000_0000 | 0x00ff_ffe0),
                ADRP_X1,
                "other bits kept"
            );
            assert_eq!(adrp_page(out, p), target & !0xfff);
        }
        // The addend counts before taking the page.
        let out = patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, p & !0xfff, 0x1000).unwrap();
        assert_eq!(adrp_page(out, p), (p & !0xfff) + 0x1000);
    }

    #[test]
    fn adrp_boundaries() {
        let p = 0x10_0000_0000u64 + 0x10; // page 0x10_0000_0000
        let page = p & !0xfff;
        let max = page + ((1u64 << 20) - 1) * 0x1000;
        let min = page - (1u64 << 20) * 0x1000;
        let out = patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, max + 0xfff, 0).unwrap();
        assert_eq!(adrp_page(out, p), max);
        let out = patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, min, 0).unwrap();
        assert_eq!(adrp_page(out, p), min);
        assert_eq!(
            patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, max + 0x1000, 0),
            Err(RelocProblem::OutOfRange {
                value: 1 << 20,
                min: -(1 << 20),
                max: (1 << 20) - 1
            })
        );
        assert!(matches!(
            patch(RelocKind::Arm64AdrpPage21, ADRP_X1, p, min - 1, 0),
            Err(RelocProblem::OutOfRange { .. })
        ));
        // ADR (bit 31 clear) is not ADRP.
        assert!(matches!(
            patch(RelocKind::Arm64AdrpPage21, 0x1000_0001, p, p, 0),
            Err(RelocProblem::WrongInstruction { .. })
        ));
    }

    #[test]
    fn add_lo12() {
        let out = patch(RelocKind::Arm64AddLo12, ADD_X1_X1, 0, 0x1234_5abc, 1).unwrap();
        assert_eq!(imm12(out), 0xabd);
        assert_eq!(out & !(0xfff << 10), ADD_X1_X1);
        let out = patch(RelocKind::Arm64AddLo12, ADD_X1_X1, 0, 0x1000, -1).unwrap();
        assert_eq!(imm12(out), 0xfff);
        // `add x1, x1, #imm, lsl #12` and ADDS are different instructions.
        assert!(patch(RelocKind::Arm64AddLo12, ADD_X1_X1 | (1 << 22), 0, 0x10, 0).is_err());
        assert!(patch(RelocKind::Arm64AddLo12, ADD_X1_X1 | (1 << 29), 0, 0x10, 0).is_err());
        // S + A below zero is no address.
        assert!(matches!(
            patch(RelocKind::Arm64AddLo12, ADD_X1_X1, 0, 0, -1),
            Err(RelocProblem::OutOfRange { .. })
        ));
    }

    #[test]
    fn ldst_lo12_scales() {
        let cases = [
            (LDRB_W0_X1, 0u8),
            (LDR_W0_X1, 2),
            (LDR_X0_X1, 3),
            (LDR_Q0_X1, 4),
        ];
        for (insn, scale) in cases {
            let kind = RelocKind::Arm64LdstLo12 { scale };
            let target = 0x5555_5ff0u64;
            let out = patch(kind, insn, 0, target, 0).unwrap();
            assert_eq!(imm12(out) << scale, 0xff0, "scale {scale}");
            assert_eq!(out & !(0xfff << 10), insn);
            // The largest offset of the page for this access size.
            let last = 0x1000 - (1u64 << scale);
            let out = patch(kind, insn, 0, 0x7000 + last, 0).unwrap();
            assert_eq!(u64::from(imm12(out)) << scale, last);
            if scale > 0 {
                assert_eq!(
                    patch(kind, insn, 0, target + 1, 0),
                    Err(RelocProblem::Misaligned {
                        value: 0xff1,
                        align: 1 << scale
                    })
                );
            }
        }
    }

    #[test]
    fn ldst_lo12_checks_instruction_and_scale() {
        let k3 = RelocKind::Arm64LdstLo12 { scale: 3 };
        assert!(matches!(
            patch(k3, LDR_W0_X1, 0, 0x10, 0),
            Err(RelocProblem::WrongInstruction { .. })
        ));
        assert!(matches!(
            patch(k3, NOP, 0, 0x10, 0),
            Err(RelocProblem::WrongInstruction { .. })
        ));
        let k5 = RelocKind::Arm64LdstLo12 { scale: 5 };
        assert_eq!(
            patch(k5, LDR_X0_X1, 0, 0x20, 0),
            Err(RelocProblem::BadScale(5))
        );
        assert!(!crate::reloc::reaches(k5, 0, 0x20, 0));
        assert!(crate::reloc::reaches(k3, 0, 0x20, 0));
        assert!(!crate::reloc::reaches(k3, 0, 0x21, 0));
    }

    /// Words as printed by `llvm-mc -triple=aarch64 -show-encoding`, an
    /// assembler independent of this code.
    #[test]
    fn matches_an_independent_assembler() {
        let p = 0x1000_0000u64;
        assert_eq!(
            patch(RelocKind::Arm64AdrpPage21, ADRP_X1, 0, 0x1234_5000, 0),
            Ok(0xb009_1a21) // adrp x1, 0x12345000 (at 0)
        );
        assert_eq!(
            patch(RelocKind::Arm64Call26, BL, p, p - 0x800_0000, 0),
            Ok(0x9600_0000) // bl #-134217728
        );
        assert_eq!(
            patch(RelocKind::Arm64Call26, BL, p, p + 0x7ff_fffc, 0),
            Ok(0x95ff_ffff) // bl #134217724
        );
        assert_eq!(
            patch(
                RelocKind::Arm64LdstLo12 { scale: 4 },
                LDR_Q0_X1,
                0,
                0x7ff0,
                0
            ),
            Ok(0x3dc3_fc20) // ldr q0, [x1, #4080]
        );
        assert_eq!(
            patch(
                RelocKind::Arm64LdstLo12 { scale: 3 },
                LDR_X0_X1,
                0,
                0x7ff8,
                0
            ),
            Ok(0xf947_fc20) // ldr x0, [x1, #4088]
        );
        assert_eq!(
            patch(RelocKind::Arm64AddLo12, ADD_X1_X1, 0, 0x3abd, 0),
            Ok(0x912a_f421) // add x1, x1, #2749
        );
    }

    #[test]
    fn remote_place_address_is_what_counts() {
        // The bytes sit in a local buffer; P is an address elsewhere.
        let mut buf = [0u8; 8];
        buf[4..].copy_from_slice(&BL.to_le_bytes());
        let remote_p = 0xffff_0000_1000u64;
        apply(
            RelocKind::Arm64Call26,
            &mut buf[4..],
            remote_p,
            remote_p + 0x400,
            0,
        )
        .unwrap();
        let insn = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        assert_eq!(branch_target(insn, remote_p), remote_p + 0x400);
        assert_eq!(&buf[..4], &[0; 4]);
    }
}
