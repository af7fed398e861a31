//! Disassembly of x86-64 compiled code (`kiln asm`), through iced-x86.
//!
//! Each function symbol of the module is decoded from its own bytes, so
//! padding between functions is never shown; relocations are listed beside
//! the instruction whose bytes they patch.

use crate::compiled::CompiledModule;
use crate::reloc::SectionKind;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use std::fmt::Write;

/// Intel-syntax listing of every function of `module`: a `name:` line, then
/// one line per instruction with its text-section offset.
pub fn disassemble(module: &CompiledModule) -> String {
    let mut out = String::new();
    let mut formatter = IntelFormatter::new();
    let mut text = String::new();
    for sym in module.symbols.iter().filter(|s| s.is_func) {
        let start = sym.offset as usize;
        let end = start
            .saturating_add(sym.size as usize)
            .min(module.text.len());
        let Some(bytes) = module.text.get(start..end) else {
            continue;
        };
        let _ = writeln!(out, "{}:", sym.name);
        let mut decoder = Decoder::with_ip(64, bytes, start as u64, DecoderOptions::NONE);
        let mut inst = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut inst);
            text.clear();
            formatter.format(&inst, &mut text);
            let ip = inst.ip();
            let _ = write!(out, "  {ip:6x}:  {text}");
            for r in module.relocs.iter().filter(|r| {
                r.section == SectionKind::Text
                    && (ip..ip + inst.len() as u64).contains(&(r.offset as u64))
            }) {
                let _ = write!(out, "    ; {:?} {}{:+}", r.kind, r.target, r.addend);
            }
            out.push('\n');
        }
    }
    out
}
