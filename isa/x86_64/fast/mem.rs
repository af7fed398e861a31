//! Memory operands of the fast generator's loads and stores (see
//! [`super`]), with an address computation folded in: an `add.i64 a, b`
//! whose only use is the pointer of the load or store right after it has
//! the home [`FOLDED`] (the allocator decides, [`super::Fast::allocate`])
//! and emits nothing; the access reads `[a + b + offset]` (or
//! `[a + (b + offset)]` for a literal `b`) instead. `mov byte [rsi + rbx],
//! 1` instead of `mov r12, rsi; add r12, rbx; mov byte [r12], 1`.
//!
//! The forms with an index register are encoded here (`[pfx] [rex] op
//! modrm sib disp`); the ones without go through `enc` unchanged.

use super::emit::Em;
use super::enc::ADD;
use super::{Src, FOLDED};
use crate::ir::{InstKind, Opcode, Operand, Type, ValueDef};
use crate::isa::x86_64::regs::{R11, RAX};

/// No index register in a [`Mem`].
pub const NOIDX: u8 = 0xff;

/// A memory operand `[base + index + disp]` (`index` [`NOIDX`]: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    pub base: u8,
    pub index: u8,
    pub disp: i32,
}

/// The bytes of `[pfx] [rex] opc modrm sib disp` for `reg` and `m` (which
/// has an index; never `rsp`, which no value lives in); `byte`: `reg` is
/// a byte register (4–7 need a REX prefix to mean `spl`–`dil`). Returns
/// the buffer and its length.
pub fn sib_bytes(pfx: u8, w: bool, byte: bool, opc: &[u8], reg: u8, m: Mem) -> ([u8; 16], usize) {
    debug_assert!(m.index != NOIDX && m.index != 4);
    let mut b = [0u8; 16];
    let mut n = 0;
    let mut put = |x: u8| {
        b[n] = x;
        n += 1;
    };
    if pfx != 0 {
        put(pfx);
    }
    let rex = 0x40
        | ((w as u8) << 3)
        | (((reg >> 3) & 1) << 2)
        | (((m.index >> 3) & 1) << 1)
        | ((m.base >> 3) & 1);
    if rex != 0x40 || (byte && (4..8).contains(&reg)) {
        put(rex);
    }
    for &o in opc {
        put(o);
    }
    let r = (reg & 7) << 3;
    let sib = ((m.index & 7) << 3) | (m.base & 7);
    // `rbp`/`r13` as a base has no form without a displacement.
    if m.disp == 0 && m.base & 7 != 5 {
        put(r | 4);
        put(sib);
    } else if let Ok(d) = i8::try_from(m.disp) {
        put(0x44 | r);
        put(sib);
        put(d as u8);
    } else {
        put(0x84 | r);
        put(sib);
        for x in m.disp.to_le_bytes() {
            put(x);
        }
    }
    (b, n)
}

/// Whether `d` (defining `r` at instruction `j` of a block whose
/// instructions are `insts`) folds into the next instruction's address:
/// `add.i64 a, b` (`a` a value, `b` a value or a literal whose sum with
/// the access's offset fits 32 bits), followed by a load or store whose
/// pointer (and not stored value) is `r`. The caller checks that `r` is
/// used there only (its range ends there).
pub fn folds(
    func: &crate::ir::Function,
    d: &crate::ir::InstData,
    r: crate::ir::Value,
    insts: &[crate::ir::Inst],
    j: usize,
) -> bool {
    let (Opcode::Add, Some(Type::I64), InstKind::Binary { args }) = (d.opcode, d.ty, &d.kind)
    else {
        return false;
    };
    let Operand::Value(_) = args[0] else {
        return false;
    };
    let Some(next) = insts.get(j + 1) else {
        return false;
    };
    let p = Operand::Value(r);
    // (Not yet checked: an instruction index the sweep has not reached.)
    let offset = match func.insts.get(next.index()).map(|d| &d.kind) {
        Some(InstKind::Load { ptr, offset }) if *ptr == p => *offset,
        Some(InstKind::Store { args, offset }) if args[1] == p && args[0] != p => *offset,
        _ => return false,
    };
    let disp = match args[1] {
        Operand::Value(_) => offset,
        Operand::Const(_) => match crate::lower::analysis::imm32(args[1], Type::I64) {
            Some(k) => k as i64 + offset,
            None => return false,
        },
    };
    i32::try_from(disp).is_ok()
}

impl Em<'_> {
    /// The memory operand `[ptr + offset]`: a folded `add` (see the module
    /// documentation) as base + index when both are in registers (else
    /// computed in `r11`), any other pointer in its register or `r11`.
    /// Uses `r11` only (a store's value may be in `rax`).
    pub(super) fn mem(&mut self, ptr: Operand, offset: i64) -> Mem {
        if let Operand::Value(p) = ptr {
            if self.f.home[p.index()] == FOLDED {
                let func = self.func;
                let ValueDef::Inst(ai) = func.values[p.index()].def else {
                    unreachable!("a folded value is an add's result");
                };
                let InstKind::Binary { args } = func.insts[ai.index()].kind else {
                    unreachable!("a folded value is an add's result");
                };
                let a = self.src(args[0], Type::I64);
                // Checked by `folds`: the displacement fits.
                return match self.src(args[1], Type::I64) {
                    Src::I(k) => Mem {
                        base: self.in_reg(a, R11),
                        index: NOIDX,
                        disp: (k as i64 + offset) as i32,
                    },
                    Src::R(y) if matches!(a, Src::R(_)) => Mem {
                        base: self.in_reg(a, R11),
                        index: y,
                        disp: offset as i32,
                    },
                    b => {
                        self.load(R11, a);
                        self.alu_src(ADD, true, R11, b);
                        Mem {
                            base: R11,
                            index: NOIDX,
                            disp: offset as i32,
                        }
                    }
                };
            }
        }
        let s = self.src(ptr, Type::I64);
        let (base, disp) = self.address(s, offset);
        Mem {
            base,
            index: NOIDX,
            disp,
        }
    }

    /// `[pfx] [rex] opc reg, m` for an `m` with an index register.
    #[inline]
    fn sib(&mut self, pfx: u8, w: bool, byte: bool, opc: &[u8], reg: u8, m: Mem) {
        let (b, n) = sib_bytes(pfx, w, byte, opc, reg, m);
        self.c.raw(&b[..n]);
    }

    /// A base register and displacement for `[ptr + offset]`.
    pub(super) fn address(&mut self, ptr: Src, offset: i64) -> (u8, i32) {
        let base = self.in_reg(ptr, R11);
        match i32::try_from(offset) {
            Ok(o) => (base, o),
            Err(_) => {
                self.c.mov_imm(R11, offset as u64);
                self.c.rr(true, ADD, R11, base);
                (R11, 0)
            }
        }
    }

    /// An integer load `op` of type `ty` from `[ptr + offset]` into `dst`.
    pub(super) fn load_mem(&mut self, op: Opcode, ty: Type, dst: Src, ptr: Operand, offset: i64) {
        let m = self.mem(ptr, offset);
        let (d, spill) = Self::dreg(dst, R11);
        let w = ty == Type::I64;
        let (w, opc): (bool, &[u8]) = match op {
            Opcode::Load => (w, &[0x8b]),
            Opcode::Load8s => (w, &[0x0f, 0xbe]),
            Opcode::Load8u => (false, &[0x0f, 0xb6]),
            Opcode::Load16s => (w, &[0x0f, 0xbf]),
            Opcode::Load16u => (false, &[0x0f, 0xb7]),
            Opcode::Load32s => (true, &[0x63]),
            _ => (false, &[0x8b]),
        };
        if m.index != NOIDX {
            self.sib(0, w, false, opc, d, m);
        } else if let [0x0f, o] = opc {
            self.c.rm0f(w, *o, d, m.base, m.disp);
        } else {
            self.c.rm(w, opc[0], d, m.base, m.disp);
        }
        if spill {
            self.mov(dst, Src::R(d));
        }
    }

    /// A store of the low `bytes` bytes of `v` to `[ptr + offset]`.
    pub(super) fn store_mem(&mut self, bytes: u32, v: Src, ptr: Operand, offset: i64) {
        // The value first (it may need rax; the address may need r11).
        let v = match v {
            Src::I(b) if bytes < 8 || i32::try_from(b as i64).is_ok() => Src::I(b),
            s => Src::R(self.in_reg(s, RAX)),
        };
        let m = self.mem(ptr, offset);
        if m.index == NOIDX {
            match v {
                Src::I(b) => self.c.store_imm(bytes, b as i64 as i32, m.base, m.disp),
                Src::R(r) => self.c.store(bytes, r, m.base, m.disp),
                Src::S(_) | Src::X(_) => {}
            }
            return;
        }
        let pfx = if bytes == 2 { 0x66 } else { 0 };
        let w = bytes == 8;
        match v {
            Src::I(b) => {
                let k = b as i64 as i32;
                match bytes {
                    1 => {
                        self.sib(0, false, false, &[0xc6], 0, m);
                        self.c.raw(&[k as u8]);
                    }
                    2 => {
                        self.sib(pfx, false, false, &[0xc7], 0, m);
                        self.c.raw(&(k as i16).to_le_bytes());
                    }
                    _ => {
                        self.sib(0, w, false, &[0xc7], 0, m);
                        self.c.raw(&k.to_le_bytes());
                    }
                }
            }
            Src::R(r) if bytes == 1 => self.sib(0, false, true, &[0x88], r, m),
            Src::R(r) => self.sib(pfx, w, false, &[0x89], r, m),
            Src::S(_) | Src::X(_) => {}
        }
    }

    /// `movs{s,d}` between xmm `x` and `m` (`op`: load or store; `pfx`:
    /// the scalar prefix).
    pub(super) fn xmem(&mut self, pfx: u8, op: u8, x: u8, m: Mem) {
        if m.index == NOIDX {
            self.c.sse_rm(pfx, false, op, x, m.base, m.disp);
        } else {
            self.sib(pfx, false, false, &[0x0f, op], x, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[base + index + disp]`.
    fn at(base: u8, index: u8, disp: i32) -> Mem {
        Mem { base, index, disp }
    }

    /// The bytes of `opc reg, m` (see [`sib_bytes`]).
    fn enc(pfx: u8, w: bool, byte: bool, opc: &[u8], reg: u8, m: Mem) -> Vec<u8> {
        let (b, n) = sib_bytes(pfx, w, byte, opc, reg, m);
        b[..n].to_vec()
    }

    #[test]
    fn encodes_indexed_forms() {
        // mov byte [rsi + rbx], 1 (the immediate follows)
        let b = enc(0, false, false, &[0xc6], 0, at(6, 3, 0));
        assert_eq!(b, [0xc6, 0x04, 0x1e]);
        // mov rax, [r13 + rcx] (r13 needs a displacement)
        let b = enc(0, true, false, &[0x8b], 0, at(13, 1, 0));
        assert_eq!(b, [0x49, 0x8b, 0x44, 0x0d, 0x00]);
        // mov [rdi + r12 + 0x100], sil (REX for sil)
        let b = enc(0, false, true, &[0x88], 6, at(7, 12, 0x100));
        assert_eq!(b, [0x42, 0x88, 0xb4, 0x27, 0x00, 0x01, 0x00, 0x00]);
        // movzx r9d, word [rbx + r8 - 8]
        let b = enc(0, false, false, &[0x0f, 0xb7], 9, at(3, 8, -8));
        assert_eq!(b, [0x46, 0x0f, 0xb7, 0x4c, 0x03, 0xf8]);
        // mov [rcx + rdx], r10w
        let b = enc(0x66, false, false, &[0x89], 10, at(1, 2, 0));
        assert_eq!(b, [0x66, 0x44, 0x89, 0x14, 0x11]);
        // movsd xmm9, [r12 + r15 + 8]
        let b = enc(0xf2, false, false, &[0x0f, 0x10], 9, at(12, 15, 8));
        assert_eq!(b, [0xf2, 0x47, 0x0f, 0x10, 0x4c, 0x3c, 0x08]);
    }
}
