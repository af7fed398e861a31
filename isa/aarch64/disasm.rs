//! Disassembly of AArch64 compiled code (`kiln asm --target aarch64`),
//! through yaxpeax-arm.
//!
//! Each function symbol of the module is decoded from its own bytes, four
//! at a time, so padding between functions is never shown; relocations are
//! listed beside the instruction whose bytes they patch. The inline 8-byte
//! literals the backend places in code (addresses of imports, patched by an
//! `Abs64` relocation) are shown as `.quad` rather than decoded as
//! instructions; a word that does not decode is shown as `.word`.

use crate::compiled::CompiledModule;
use crate::reloc::{RelocKind, SectionKind};
use std::fmt::Write;
use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction};

/// Decodes one instruction word, if it is a valid AArch64 instruction.
pub fn decode_word(word: u32) -> Option<Instruction> {
    let bytes = word.to_le_bytes();
    let mut reader = U8Reader::new(&bytes);
    InstDecoder::default().decode(&mut reader).ok()
}

/// One line per instruction of every function of `module`: a `name:`
/// line, then each instruction with its text-section offset.
pub fn disassemble(module: &CompiledModule) -> String {
    let mut out = String::new();
    for sym in module.symbols.iter().filter(|s| s.is_func) {
        let start = sym.offset as usize;
        let end = start
            .saturating_add(sym.size as usize)
            .min(module.text.len());
        let Some(bytes) = module.text.get(start..end) else {
            continue;
        };
        let _ = writeln!(out, "{}:", sym.name);
        let mut at = 0usize;
        while at + 4 <= bytes.len() {
            let ip = (start + at) as u64;
            let relocs: Vec<_> = module
                .relocs
                .iter()
                .filter(|r| r.section == SectionKind::Text && r.offset as u64 == ip)
                .collect();
            let literal = relocs.iter().any(|r| r.kind == RelocKind::Abs64);
            let width = if literal && at + 8 <= bytes.len() {
                let v = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
                let _ = write!(out, "  {ip:6x}:  .quad {v:#x}");
                8
            } else {
                let w =
                    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
                match decode_word(w) {
                    Some(inst) => {
                        let _ = write!(out, "  {ip:6x}:  {inst}");
                    }
                    None => {
                        let _ = write!(out, "  {ip:6x}:  .word {w:#010x}");
                    }
                }
                4
            };
            for r in relocs {
                let _ = write!(out, "    ; {} {}{:+}", r.kind, r.target, r.addend);
            }
            out.push('\n');
            at += width;
        }
    }
    out
}
