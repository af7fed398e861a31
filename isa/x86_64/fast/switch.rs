//! `switch` in the fast generator (see [`super`]), with the semantics of
//! the pipeline's lowering (`lower::drive` decides, `emit.rs` emits): a
//! jump table in rodata when there are at least 4 cases whose keys span
//! less than 4 per case (and less than 65,536), else a chain of compares.
//! No `switch` target takes arguments (SPEC), so no edge has moves.
//!
//! The table is indexed by `value - min` computed in `r11` (for `i32` by
//! 32-bit arithmetic, which zero-extends), bounds-checked unsigned against
//! `max - min` (above: the default), and read through `rax`: `lea rax,
//! [rip + table]; jmp [rax + r11*8]`. Its entries are function-relative
//! label offsets placed as `Abs64` relocations against the function's own
//! symbol (`place_function`), one local symbol `NAME#jtK` per table.

use super::emit::{bad, Em};
use super::enc::{Label, CC_A, CC_E, CMP, SUB};
use super::Src;
use crate::error::Result;
use crate::ir::{Block, Inst, InstKind, Type};
use crate::isa::x86_64::regs::{R11, RAX};
use crate::reloc::RelocKind;

/// The keys of a switch fit a jump table (as `lower::drive`).
pub fn dense(n: usize, lo: u64, hi: u64) -> bool {
    let n = n as u64;
    n >= 4 && hi - lo < 4 * n && hi - lo < 65536
}

impl Em<'_> {
    /// `cmp r, k` for key bits `k` (through `rax` when `k` is no
    /// sign-extended imm32 of a 64-bit compare).
    fn cmp_key(&mut self, wide: bool, r: u8, k: u64) {
        self.c.alu_rk(wide, CMP, r, k, RAX);
    }

    /// Emits the `switch` instruction `i`; `next` is the block laid out
    /// after the current one.
    pub(super) fn switch(&mut self, i: Inst, next: Option<Block>) -> Result<()> {
        let func = self.func;
        let d = &func.insts[i.index()];
        let InstKind::Switch {
            value,
            default,
            cases,
        } = d.kind
        else {
            return Err(bad(func, "switch"));
        };
        let ty = d.ty.unwrap_or(Type::I64);
        let wide = ty == Type::I64;
        let cases = func.cases(cases);
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        let mut all_default = true;
        for c in cases {
            let k = c.key.bits(ty);
            lo = lo.min(k);
            hi = hi.max(k);
            all_default &= c.block == default;
        }
        let s = self.src(value, ty);
        if let Src::I(b) = s {
            // A constant value: one target.
            let b = if wide { b } else { b & 0xffff_ffff };
            let t = cases
                .iter()
                .find(|c| c.key.bits(ty) == b)
                .map_or(default, |c| c.block);
            self.jump(t, next);
            return Ok(());
        }
        if all_default {
            self.jump(default, next);
            return Ok(());
        }
        let dl = Label(default.index() as u32);
        if dense(cases.len(), lo, hi) {
            let range = hi - lo;
            let idx = match s {
                Src::R(r) if wide && lo == 0 => r,
                _ => {
                    match s {
                        Src::R(r) if wide => self.c.mov_rr(R11, r),
                        Src::R(r) => self.c.mov_rr32(R11, r),
                        Src::S(k) => {
                            let o = self.slot_off(k);
                            self.c.load(wide, R11, 5, o);
                        }
                        // An integer is never in an xmm register.
                        Src::I(_) | Src::X(_) => {}
                    }
                    if lo != 0 {
                        self.c.alu_rk(wide, SUB, R11, lo, RAX);
                    }
                    R11
                }
            };
            self.c.alu_ri(true, CMP, idx, range as i32);
            self.c.jcc(CC_A, dl);
            let name = format!("{}#jt{}", self.sym.name, self.tables.len());
            // lea rax, [rip + table]
            self.c.raw(&[0x48, 0x8d, 0x05, 0, 0, 0, 0]);
            self.reloc_here(4, RelocKind::X86PcRel32, &name, -4);
            // jmp [rax + idx*8]
            if idx >= 8 {
                self.c.raw(&[0x42]);
            }
            self.c.raw(&[0xff, 0x24, 0xc0 | ((idx & 7) << 3)]);
            let mut entries = vec![default.index() as u32; range as usize + 1];
            for c in cases {
                entries[(c.key.bits(ty) - lo) as usize] = c.block.index() as u32;
            }
            self.tables.push((name, entries));
        } else {
            let r = self.in_reg(s, R11);
            for c in cases {
                if c.block == default {
                    continue;
                }
                self.c.room();
                self.cmp_key(wide, r, c.key.bits(ty));
                self.c.jcc(CC_E, Label(c.block.index() as u32));
            }
            self.jump(default, next);
        }
        Ok(())
    }
}
