//! [`PackedSection`]: a finalized section in 12 bytes, for registries that
//! keep one per small module (a REPL session keeps tens of thousands).
//!
//! A [`FinalizedSection`] is 40 bytes and holds a reference count on its
//! reservation's mapping; a packed one is its address, reservation and
//! kind in one word plus its length, and gets the mapping back from the
//! manager that made it ([`MemoryManager::unpack`]). Only a section that
//! runs where it was placed (no remote executor moved it) is packed, and
//! only while its address and reservation fit the word.

use super::{FinalizedSection, MemoryManager, SectionKind};
use std::num::NonZeroU64;
use std::sync::Arc;

/// Bits of the word below the address: the reservation (14 bits) and the
/// kind (2 bits).
const LOW_BITS: u32 = 16;
const KIND_BITS: u32 = 2;

/// A finalized section without its mapping handle (see the module docs).
/// Only the manager that made it can give it back ([`MemoryManager::unpack`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedSection {
    /// `address << 16 | reservation << 2 | kind`; never 0 (an address is
    /// never 0).
    word: NonZeroU64,
    len: u32,
}

fn kind_bits(kind: SectionKind) -> u64 {
    match kind {
        SectionKind::Text => 0,
        SectionKind::Rodata => 1,
        SectionKind::Data => 2,
    }
}

impl FinalizedSection {
    /// The section packed, if it runs where it was placed and its address
    /// and reservation fit; else the section itself.
    pub fn pack(self) -> Result<PackedSection, FinalizedSection> {
        let addr = self.addr as u64;
        let fits = self.target == addr
            && addr != 0
            && addr >> (64 - LOW_BITS) == 0
            && self.res < 1 << (LOW_BITS - KIND_BITS)
            && self.span == self.len.max(1);
        if !fits {
            return Err(self);
        }
        let word = addr << LOW_BITS | u64::from(self.res) << KIND_BITS | kind_bits(self.kind);
        match NonZeroU64::new(word) {
            Some(word) => Ok(PackedSection {
                word,
                len: self.len,
            }),
            None => Err(self),
        }
    }
}

impl PackedSection {
    /// The section's address (where it runs: packed sections run where
    /// they were placed).
    pub fn address(self) -> u64 {
        self.word.get() >> LOW_BITS
    }

    /// Bytes requested for the section.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// Whether the section holds no bytes.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    pub fn kind(self) -> SectionKind {
        match self.word.get() & ((1 << KIND_BITS) - 1) {
            0 => SectionKind::Text,
            1 => SectionKind::Rodata,
            _ => SectionKind::Data,
        }
    }

    fn reservation(self) -> u32 {
        ((self.word.get() & ((1 << LOW_BITS) - 1)) >> KIND_BITS) as u32
    }

    /// The word and the length, to store them apart (see
    /// [`Self::from_parts`]).
    pub(crate) fn parts(self) -> (NonZeroU64, u32) {
        (self.word, self.len)
    }

    /// A section from [`Self::parts`].
    pub(crate) fn from_parts(word: NonZeroU64, len: u32) -> PackedSection {
        PackedSection { word, len }
    }
}

impl MemoryManager {
    /// The finalized section `packed` was made from (by this manager's
    /// [`FinalizedSection::pack`]); `None` if this manager has no such
    /// reservation.
    pub fn unpack(&self, packed: PackedSection) -> Option<FinalizedSection> {
        let res = packed.reservation();
        let r = self.reservations.get(res as usize)?;
        let addr = usize::try_from(packed.address()).ok()?;
        if !r.contains(addr) {
            return None;
        }
        Some(FinalizedSection {
            addr,
            target: packed.address(),
            map: Arc::clone(&r.map),
            len: packed.len,
            span: packed.len.max(1),
            res,
            kind: packed.kind(),
        })
    }
}
