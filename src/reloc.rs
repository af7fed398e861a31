//! TEMPORARY stand-in on branch `x86` for the relocation table the `memory`
//! branch writes; replaced wholesale by that branch's file on merge.

/// The sections of a compiled module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Text,
    Rodata,
    Data,
}

/// How a relocation's value is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocKind {
    /// S + A, 64-bit little-endian.
    Abs64,
    /// S + A - P, signed 32-bit little-endian.
    X86PcRel32,
}

/// One fixup of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloc<T> {
    pub section: SectionKind,
    pub offset: u32,
    pub kind: RelocKind,
    pub target: T,
    pub addend: i64,
}
