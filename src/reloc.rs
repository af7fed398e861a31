//! The relocation table: the fixups a compiled module still needs once the
//! addresses of its sections and of the symbols it references are known.
//!
//! Each module carries one [`RelocTable`]: a list of [`Reloc`]s, each naming
//! a place (a [`SectionKind`] of the module and a byte offset in it), a
//! [`RelocKind`] (how the value is computed and encoded), a target symbol
//! (`T`, resolved by the registry) and an addend.
//!
//! Formulas use the usual ELF letters:
//! - **S**: the address of the target symbol,
//! - **A**: the addend,
//! - **P**: the address of the place being patched.
//!
//! Invariants:
//! - [`apply`] never writes a value that does not fit its field: an
//!   out-of-range distance, a misaligned target or a place that does not hold
//!   the instruction the kind expects is a [`RelocError`] naming the kind, the
//!   value and the limit (the caller adds module and symbol names), and the
//!   place is left untouched.
//! - P is an argument, not the address of the bytes: relocations may be applied
//!   to a local copy whose final address is elsewhere (a remote or emulated
//!   executor).
//! - Both architectures' relocations are compiled on every host: AArch64
//!   fixups are bit patterns in a byte buffer, testable on x86-64.

use crate::error::Error;
pub use crate::memory::SectionKind;
use std::fmt;

#[path = "../isa/aarch64/reloc.rs"]
mod aarch64_reloc;
#[path = "../isa/x86_64/reloc.rs"]
mod x86_64_reloc;

/// How a relocation's value is computed and where its bits go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocKind {
    /// S + A as a little-endian 64-bit word (x86-64 and AArch64 alike),
    /// modulo 2^64: a full 64-bit value, never out of range (as the
    /// interpreter computes `@sym+addend` in data).
    Abs64,
    /// x86-64: S + A − P as a signed 32-bit little-endian word: `call rel32`,
    /// `jmp rel32` and RIP-relative operands. P is the address of the 4-byte
    /// field and the CPU adds the address of the *next* instruction, so A is
    /// usually −4 (minus the bytes of any immediate after the field).
    X86PcRel32,
    /// x86-64 `call rel32`: the same formula and field as
    /// [`RelocKind::X86PcRel32`], but the place is a call, so the registry may
    /// redirect it through a stub (`jmp [rip+0]; .quad S`) when S is beyond
    /// ±2 GiB. A must only account for the place (−4): the stub jumps to S.
    X86CallPcRel32,
    /// AArch64 `B`/`BL`: (S + A − P) >> 2 into imm26 (bits 0..26). The distance
    /// must be a multiple of 4 and within −2^27 ..= 2^27 − 4 (±128 MiB).
    /// A call: the registry may redirect it through a veneer
    /// (`ldr x16, #8; br x16; .quad S`) when S is out of range.
    Arm64Call26,
    /// AArch64 `ADRP`: (Page(S + A) − Page(P)) >> 12 into immlo (bits 29..31)
    /// and immhi (bits 5..24), where Page(x) = x & !0xfff. The page distance
    /// must fit 21 signed bits (±4 GiB).
    Arm64AdrpPage21,
    /// AArch64 `ADD` (immediate, unshifted): (S + A) & 0xfff into imm12
    /// (bits 10..22). Pairs with [`RelocKind::Arm64AdrpPage21`].
    Arm64AddLo12,
    /// AArch64 `LDR`/`STR` (unsigned immediate) accessing `1 << scale` bytes:
    /// ((S + A) & 0xfff) >> scale into imm12 (bits 10..22). (S + A) & 0xfff
    /// must be a multiple of `1 << scale`; `scale` (0..=4) must match the
    /// access size encoded in the instruction.
    Arm64LdstLo12 { scale: u8 },
}

impl RelocKind {
    /// How many bytes of the place the relocation reads and writes.
    pub fn width(self) -> usize {
        match self {
            RelocKind::Abs64 => 8,
            RelocKind::X86PcRel32
            | RelocKind::X86CallPcRel32
            | RelocKind::Arm64Call26
            | RelocKind::Arm64AdrpPage21
            | RelocKind::Arm64AddLo12
            | RelocKind::Arm64LdstLo12 { .. } => 4,
        }
    }

    /// The kind's name as written in these docs and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            RelocKind::Abs64 => "Abs64",
            RelocKind::X86PcRel32 => "X86PcRel32",
            RelocKind::X86CallPcRel32 => "X86CallPcRel32",
            RelocKind::Arm64Call26 => "Arm64Call26",
            RelocKind::Arm64AdrpPage21 => "Arm64AdrpPage21",
            RelocKind::Arm64AddLo12 => "Arm64AddLo12",
            RelocKind::Arm64LdstLo12 { .. } => "Arm64LdstLo12",
        }
    }

    /// Whether the place is a call the registry may send through a stub
    /// (veneer) when the target is out of range. Data references never are:
    /// redirecting them would change the address they compute.
    pub fn is_call(self) -> bool {
        matches!(self, RelocKind::X86CallPcRel32 | RelocKind::Arm64Call26)
    }
}

/// Bytes of one stub (veneer) slot: x86-64 `jmp qword [rip+0]; .quad S`
/// (14 bytes, padded) and AArch64 `ldr x16, #8; br x16; .quad S` alike.
pub const STUB_SIZE: usize = 16;

/// Writes into `slot` (at least [`STUB_SIZE`] bytes, 8-byte aligned in the
/// final address space for AArch64) a stub that jumps to the absolute
/// address `s`, for calls relocated with `kind`. `None` if `kind` is not a
/// call kind or the slot is too short; nothing is written then.
pub fn write_stub(kind: RelocKind, slot: &mut [u8], s: u64) -> Option<()> {
    let slot = slot.get_mut(..STUB_SIZE)?;
    match kind {
        RelocKind::X86CallPcRel32 => x86_64_reloc::write_stub(slot, s),
        RelocKind::Arm64Call26 => aarch64_reloc::write_stub(slot, s),
        _ => return None,
    }
    Some(())
}

impl fmt::Display for RelocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocKind::Arm64LdstLo12 { scale } => write!(f, "Arm64LdstLo12(scale {scale})"),
            other => f.write_str(other.name()),
        }
    }
}

/// One fixup of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloc<T> {
    /// The module section holding the place.
    pub section: SectionKind,
    /// Byte offset of the place within that section.
    pub offset: u32,
    pub kind: RelocKind,
    /// The symbol whose address is S; the registry resolves it.
    pub target: T,
    /// A.
    pub addend: i64,
}

impl<T> Reloc<T> {
    /// Applies this relocation to `section`, the bytes of the section it
    /// names, which will run at `section_address`, with the target resolved
    /// to `s`. P is `section_address + offset`; an offset past the end of
    /// the section is an error.
    pub fn apply_to(
        &self,
        section: &mut [u8],
        section_address: u64,
        s: u64,
    ) -> Result<(), RelocError> {
        let place = usize::try_from(self.offset)
            .ok()
            .and_then(|o| section.get_mut(o..))
            .ok_or(RelocError::new(
                self.kind,
                RelocProblem::PlaceTooShort {
                    needed: self.kind.width(),
                    available: 0,
                },
            ))?;
        // P must itself be an address.
        let p = s_plus_a(self.kind, section_address, self.offset.into())?;
        apply(self.kind, place, p, s, self.addend)
    }
}

/// The relocations of one module, in emission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocTable<T> {
    relocs: Vec<Reloc<T>>,
}

impl<T> Default for RelocTable<T> {
    fn default() -> Self {
        RelocTable { relocs: Vec::new() }
    }
}

impl<T> RelocTable<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, reloc: Reloc<T>) {
        self.relocs.push(reloc);
    }

    pub fn len(&self) -> usize {
        self.relocs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relocs.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Reloc<T>> {
        self.relocs.iter()
    }

    pub fn as_slice(&self) -> &[Reloc<T>] {
        &self.relocs
    }

    pub fn clear(&mut self) {
        self.relocs.clear();
    }
}

impl<'a, T> IntoIterator for &'a RelocTable<T> {
    type Item = &'a Reloc<T>;
    type IntoIter = std::slice::Iter<'a, Reloc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.relocs.iter()
    }
}

impl<T> FromIterator<Reloc<T>> for RelocTable<T> {
    fn from_iter<I: IntoIterator<Item = Reloc<T>>>(iter: I) -> Self {
        RelocTable {
            relocs: iter.into_iter().collect(),
        }
    }
}

/// What is wrong with a fixup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocProblem {
    /// The encoded value (a distance, page distance or address) is outside
    /// `min..=max`.
    OutOfRange { value: i128, min: i128, max: i128 },
    /// `value` is not a multiple of `align`.
    Misaligned { value: i128, align: u32 },
    /// The place has fewer bytes than the kind writes (offset past the end
    /// of its section).
    PlaceTooShort { needed: usize, available: usize },
    /// The 32-bit word at the place is not the instruction the kind patches.
    WrongInstruction { found: u32, expected: &'static str },
    /// An `Arm64LdstLo12` scale above 4.
    BadScale(u8),
}

/// A fixup that cannot be applied. The caller names the module and symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocError {
    pub kind: RelocKind,
    pub problem: RelocProblem,
}

impl RelocError {
    pub(crate) fn new(kind: RelocKind, problem: RelocProblem) -> Self {
        RelocError { kind, problem }
    }
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind;
        match self.problem {
            RelocProblem::OutOfRange { value, min, max } => write!(
                f,
                "{kind} relocation out of range: value {value} ({value:#x}) is outside {min}..={max}"
            ),
            RelocProblem::Misaligned { value, align } => write!(
                f,
                "{kind} relocation misaligned: value {value} ({value:#x}) is not a multiple of {align}"
            ),
            RelocProblem::PlaceTooShort { needed, available } => write!(
                f,
                "{kind} relocation place too short: needs {needed} bytes, {available} available"
            ),
            RelocProblem::WrongInstruction { found, expected } => write!(
                f,
                "{kind} relocation applied to {found:#010x}, which is not {expected}"
            ),
            RelocProblem::BadScale(scale) => {
                write!(f, "{kind} relocation with scale {scale} (at most 4)")
            }
        }
    }
}

impl std::error::Error for RelocError {}

impl From<RelocError> for Error {
    fn from(e: RelocError) -> Self {
        Error::Runtime(e.to_string())
    }
}

/// Patches `place` (the bytes of the place, at least [`RelocKind::width`]
/// long; extra bytes are ignored) whose final address is `p`, with target
/// address `s` and addend `a`. On error the place is unchanged.
pub fn apply(kind: RelocKind, place: &mut [u8], p: u64, s: u64, a: i64) -> Result<(), RelocError> {
    let needed = kind.width();
    let Some(field) = place.get_mut(..needed) else {
        return Err(RelocError::new(
            kind,
            RelocProblem::PlaceTooShort {
                needed,
                available: place.len(),
            },
        ));
    };
    match kind {
        RelocKind::Abs64 => {
            field.copy_from_slice(&s.wrapping_add_signed(a).to_le_bytes());
            Ok(())
        }
        RelocKind::X86PcRel32 | RelocKind::X86CallPcRel32 => {
            x86_64_reloc::apply(kind, field, p, s, a)
        }
        RelocKind::Arm64Call26
        | RelocKind::Arm64AdrpPage21
        | RelocKind::Arm64AddLo12
        | RelocKind::Arm64LdstLo12 { .. } => aarch64_reloc::apply(kind, field, p, s, a),
    }
}

/// Whether a relocation of `kind` at `p` can reach `s + a` (range and
/// alignment only; the instruction bits are not looked at). Lets a caller
/// decide on a veneer before applying.
pub fn reaches(kind: RelocKind, p: u64, s: u64, a: i64) -> bool {
    match kind {
        RelocKind::Abs64 => true,
        RelocKind::X86PcRel32 | RelocKind::X86CallPcRel32 => {
            x86_64_reloc::value(kind, p, s, a).is_ok()
        }
        _ => aarch64_reloc::value(kind, p, s, a).is_ok(),
    }
}

/// S + A as an address; an error if it leaves the 64-bit address space.
pub(crate) fn s_plus_a(kind: RelocKind, s: u64, a: i64) -> Result<u64, RelocError> {
    let value = i128::from(s) + i128::from(a);
    u64::try_from(value).map_err(|_| {
        RelocError::new(
            kind,
            RelocProblem::OutOfRange {
                value,
                min: 0,
                max: i128::from(u64::MAX),
            },
        )
    })
}

/// `value` if it is in `min..=max`, else an out-of-range error.
pub(crate) fn check_range(
    kind: RelocKind,
    value: i128,
    min: i128,
    max: i128,
) -> Result<i128, RelocError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(RelocError::new(
            kind,
            RelocProblem::OutOfRange { value, min, max },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abs64_writes_s_plus_a() {
        let mut buf = [0xaau8; 10];
        apply(RelocKind::Abs64, &mut buf, 0, 0x1000, -8).unwrap();
        assert_eq!(&buf[..8], &0xff8u64.to_le_bytes());
        assert_eq!(&buf[8..], &[0xaa, 0xaa], "bytes past the field untouched");
        apply(RelocKind::Abs64, &mut buf, 0, u64::MAX - 1, 1).unwrap();
        assert_eq!(&buf[..8], &u64::MAX.to_le_bytes());
    }

    #[test]
    fn abs64_wraps_modulo_2_64() {
        let mut buf = [0u8; 8];
        apply(RelocKind::Abs64, &mut buf, 0, u64::MAX, 1).unwrap();
        assert_eq!(buf, [0; 8]);
        apply(RelocKind::Abs64, &mut buf, 0, 3, -4).unwrap();
        assert_eq!(buf, u64::MAX.to_le_bytes());
        apply(RelocKind::Abs64, &mut buf, 0, 0x1000, -0x8000_0000_0000).unwrap();
        assert_eq!(
            u64::from_le_bytes(buf),
            0x1000u64.wrapping_sub(0x8000_0000_0000)
        );
        assert!(reaches(RelocKind::Abs64, 0, 1, i64::MIN));
    }

    #[test]
    fn short_place_is_an_error() {
        let mut buf = [0u8; 7];
        let e = apply(RelocKind::Abs64, &mut buf, 0, 1, 0).unwrap_err();
        assert_eq!(
            e.problem,
            RelocProblem::PlaceTooShort {
                needed: 8,
                available: 7
            }
        );
        let mut buf = [0u8; 3];
        assert!(apply(RelocKind::Arm64Call26, &mut buf, 0, 0, 0).is_err());
        assert!(apply(RelocKind::X86PcRel32, &mut buf, 0, 0, 0).is_err());
    }

    #[test]
    fn reloc_apply_to_uses_section_address_plus_offset() {
        let r = Reloc {
            section: SectionKind::Text,
            offset: 1,
            kind: RelocKind::X86PcRel32,
            target: "callee",
            addend: -4,
        };
        let mut text = [0xe8, 0, 0, 0, 0, 0xc3];
        r.apply_to(&mut text, 0x1000, 0x1100).unwrap();
        // The call ends at 0x1005; 0x1005 + 0xfb = 0x1100.
        assert_eq!(text, [0xe8, 0xfb, 0, 0, 0, 0xc3]);
        let mut short = [0xe8, 0, 0];
        assert!(matches!(
            r.apply_to(&mut short, 0x1000, 0x1100),
            Err(RelocError {
                problem: RelocProblem::PlaceTooShort { .. },
                ..
            })
        ));
        let far = Reloc { offset: 100, ..r };
        assert!(far.apply_to(&mut text, 0x1000, 0x1100).is_err());
    }

    #[test]
    fn only_call_kinds_get_stubs() {
        for kind in [RelocKind::X86CallPcRel32, RelocKind::Arm64Call26] {
            assert!(kind.is_call());
            let mut slot = [0u8; STUB_SIZE + 1];
            assert_eq!(write_stub(kind, &mut slot, 0x1234_5678_9abc), Some(()));
            assert_eq!(slot[STUB_SIZE], 0, "nothing past the slot");
            let mut short = [0u8; STUB_SIZE - 1];
            assert_eq!(write_stub(kind, &mut short, 1), None);
            assert_eq!(short, [0; STUB_SIZE - 1]);
        }
        for kind in [
            RelocKind::Abs64,
            RelocKind::X86PcRel32,
            RelocKind::Arm64AdrpPage21,
            RelocKind::Arm64AddLo12,
            RelocKind::Arm64LdstLo12 { scale: 3 },
        ] {
            assert!(!kind.is_call(), "{kind}");
            let mut slot = [0u8; STUB_SIZE];
            assert_eq!(write_stub(kind, &mut slot, 1), None);
            assert_eq!(slot, [0; STUB_SIZE]);
        }
    }

    #[test]
    fn error_message_names_kind_value_and_limit() {
        let mut buf = [0u8; 4];
        let e = apply(RelocKind::X86PcRel32, &mut buf, 0, 1 << 31, 0).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("X86PcRel32"), "{msg}");
        assert!(msg.contains("2147483648"), "{msg}");
        assert!(msg.contains("2147483647"), "{msg}");
    }
}
