//! SSE forms of the fast generator's encoder: scalar `f32`/`f64`
//! arithmetic, moves between xmm registers, memory and general
//! registers, compares and conversions (registers are hardware numbers,
//! xmm0–xmm15 as 0–15).

use super::{mem_bytes, modrm_rr, rex_first, Code, Ins, Mem, Word};

/// Mandatory prefixes: scalar double, scalar single, packed double /
/// operand size (`movq`, `ucomisd`), none (`movaps`, `ucomiss`).
pub const SD: u8 = 0xf2;
pub const SS: u8 = 0xf3;
pub const PD: u8 = 0x66;
pub const PS: u8 = 0;

/// Second opcode bytes (after `0f`).
pub const MOVS_LOAD: u8 = 0x10;
pub const MOVS_STORE: u8 = 0x11;
pub const MOVAPS: u8 = 0x28;
pub const CVTSI2: u8 = 0x2a;
pub const CVTT2SI: u8 = 0x2c;
pub const UCOMI: u8 = 0x2e;
pub const SQRT: u8 = 0x51;
pub const XORPS: u8 = 0x57;
pub const FADD: u8 = 0x58;
pub const FMUL: u8 = 0x59;
pub const CVTF: u8 = 0x5a;
pub const FSUB: u8 = 0x5c;
pub const FDIV: u8 = 0x5e;
/// `movd/movq xmm, r/m` (with [`PD`]).
pub const MOVD_TO_X: u8 = 0x6e;
/// `movd/movq r/m, xmm` (with [`PD`]; the xmm register is `reg`).
pub const MOVD_FROM_X: u8 = 0x7e;

/// The scalar prefix of a float width (`true`: f64).
#[inline]
pub fn scalar(wide: bool) -> u8 {
    if wide {
        SD
    } else {
        SS
    }
}

impl Code {
    /// `[pfx] [rex] 0f op reg, rm` (register form): at most 5 bytes,
    /// computed as one word (the prefix placed by a shift that is 0 when
    /// there is none) and appended with one store.
    #[inline(always)]
    pub fn sse_rr(&mut self, pfx: u8, w: bool, op: u8, reg: u8, rm: u8) {
        let i = 0x0f | ((op as u64) << 8) | (modrm_rr(reg, rm) << 16);
        let (v, n) = rex_first(w, reg, rm, i, 3);
        let has = (pfx != 0) as u32;
        self.put8(((v << (8 * has)) | pfx as u64, n + has));
    }

    /// `[pfx] [rex] 0f op reg, [base + disp]` (at most 11 bytes, as one
    /// [`Word`]).
    #[inline(always)]
    pub fn sse_rm(&mut self, pfx: u8, w: bool, op: u8, reg: u8, base: u8, disp: i32) {
        let (m, nm) = mem_bytes(reg, base, disp);
        let i = Word::of(0x0f | ((op as u64) << 8), 2).then(m, nm);
        self.put_word(i.rex(w, reg, base).prefix(pfx));
    }

    /// `[pfx] [rex] 0f op reg, m` (as [`Code::sse_rm`] with base `rbp`,
    /// the operand encoded once: see [`Code::slot`]).
    #[inline(always)]
    pub fn sse_rm_at(&mut self, pfx: u8, w: bool, op: u8, reg: u8, m: Mem) {
        let (m, nm) = m.with_reg(reg);
        let i = Word::of(0x0f | ((op as u64) << 8), 2).then(m, nm);
        self.put_word(i.rex(w, reg, 5).prefix(pfx));
    }

    /// `movaps d, s`.
    #[inline]
    pub fn movaps(&mut self, d: u8, s: u8) {
        self.sse_rr(PS, false, MOVAPS, d, s);
    }

    /// `xorps x, x` (zero).
    #[inline]
    pub fn xzero(&mut self, x: u8) {
        self.sse_rr(PS, false, XORPS, x, x);
    }

    /// `movq x, r` (64 bits; `w == false`: `movd`, 32).
    #[inline]
    pub fn movq_to_x(&mut self, w: bool, x: u8, r: u8) {
        self.sse_rr(PD, w, MOVD_TO_X, x, r);
    }

    /// `movq r, x` (64 bits; `w == false`: `movd`, 32).
    #[inline]
    pub fn movq_from_x(&mut self, w: bool, r: u8, x: u8) {
        self.sse_rr(PD, w, MOVD_FROM_X, x, r);
    }

    /// `setcc r8` alone (the rest of `r` unchanged).
    #[inline]
    pub fn setcc8(&mut self, cc: u8, r: u8) {
        let mut i = Ins::new();
        i.rex(false, 0, r, true);
        i.bytes(&[0x0f, 0x90 | cc, 0xc0 | (r & 7)]);
        self.put(&i);
    }

    /// `btc r, bit`.
    #[inline]
    pub fn btc(&mut self, w: bool, r: u8, bit: u8) {
        let mut i = Ins::new();
        i.rex(w, 0, r, false);
        i.bytes(&[0x0f, 0xba, 0xf8 | (r & 7), bit]);
        self.put(&i);
    }

    /// `btr r, bit`.
    #[inline]
    pub fn btr(&mut self, w: bool, r: u8, bit: u8) {
        let mut i = Ins::new();
        i.rex(w, 0, r, false);
        i.bytes(&[0x0f, 0xba, 0xf0 | (r & 7), bit]);
        self.put(&i);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::enc;
    use super::*;

    #[test]
    fn word_forms_encode_as_bytewise_reference() {
        // Every prefix, width and register pair of the register form, and
        // every base with displacements of each size (rsp/r12: SIB;
        // rbp/r13: always a displacement) of the memory forms, against
        // the byte-by-byte assembly (`Ins`).
        let mut n = 0;
        for pfx in [PS, PD, SD, SS] {
            for w in [false, true] {
                for reg in 0..16 {
                    for rm in 0..16 {
                        let mut i = Ins::new();
                        if pfx != 0 {
                            i.b(pfx);
                        }
                        i.rr(w, &[0x0f, FADD], reg, rm);
                        let got = enc(|c| c.sse_rr(pfx, w, FADD, reg, rm));
                        assert_eq!(got, &i.b[..i.n], "{pfx:x} {w} {reg} {rm}");
                        n += 1;
                    }
                    for base in 0..16 {
                        for disp in [0, 8, -8, 127, -128, 128, -129, 1 << 20, i32::MIN] {
                            let mut i = Ins::new();
                            if pfx != 0 {
                                i.b(pfx);
                            }
                            i.rm(w, &[0x0f, MOVS_LOAD], reg, base, disp);
                            let want = &i.b[..i.n];
                            let got = enc(|c| c.sse_rm(pfx, w, MOVS_LOAD, reg, base, disp));
                            assert_eq!(got, want, "{pfx:x} {w} {reg} {base} {disp}");
                            if base == 5 {
                                let m = Mem::rbp(disp);
                                let at = enc(|c| c.sse_rm_at(pfx, w, MOVS_LOAD, reg, m));
                                assert_eq!(at, want, "{pfx:x} {w} {reg} rbp {disp}");
                            }
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 4 * 2 * 16 * (16 + 16 * 9));
    }

    #[test]
    fn encodes_sse_forms() {
        // addsd xmm1, xmm2
        assert_eq!(
            enc(|c| c.sse_rr(SD, false, FADD, 1, 2)),
            [0xf2, 0x0f, 0x58, 0xca]
        );
        // mulss xmm9, xmm3
        assert_eq!(
            enc(|c| c.sse_rr(SS, false, FMUL, 9, 3)),
            [0xf3, 0x44, 0x0f, 0x59, 0xcb]
        );
        // movsd xmm14, [rbp - 16]
        assert_eq!(
            enc(|c| c.sse_rm(SD, false, MOVS_LOAD, 14, 5, -16)),
            [0xf2, 0x44, 0x0f, 0x10, 0x75, 0xf0]
        );
        // movss [r12 + 4], xmm0
        assert_eq!(
            enc(|c| c.sse_rm(SS, false, MOVS_STORE, 0, 12, 4)),
            [0xf3, 0x41, 0x0f, 0x11, 0x44, 0x24, 0x04]
        );
        // movaps xmm8, xmm15
        assert_eq!(enc(|c| c.movaps(8, 15)), [0x45, 0x0f, 0x28, 0xc7]);
        // ucomisd xmm0, xmm1; ucomiss xmm2, xmm3
        assert_eq!(
            enc(|c| c.sse_rr(PD, false, UCOMI, 0, 1)),
            [0x66, 0x0f, 0x2e, 0xc1]
        );
        assert_eq!(
            enc(|c| c.sse_rr(PS, false, UCOMI, 2, 3)),
            [0x0f, 0x2e, 0xd3]
        );
        // movq xmm0, r11; movq rax, xmm15; movd esi, xmm2
        assert_eq!(
            enc(|c| c.movq_to_x(true, 0, 11)),
            [0x66, 0x49, 0x0f, 0x6e, 0xc3]
        );
        assert_eq!(
            enc(|c| c.movq_from_x(true, 0, 15)),
            [0x66, 0x4c, 0x0f, 0x7e, 0xf8]
        );
        assert_eq!(
            enc(|c| c.movq_from_x(false, 6, 2)),
            [0x66, 0x0f, 0x7e, 0xd6]
        );
        // cvtsi2sd xmm1, rdi; cvttss2si r8d, xmm4
        assert_eq!(
            enc(|c| c.sse_rr(SD, true, CVTSI2, 1, 7)),
            [0xf2, 0x48, 0x0f, 0x2a, 0xcf]
        );
        assert_eq!(
            enc(|c| c.sse_rr(SS, false, CVTT2SI, 8, 4)),
            [0xf3, 0x44, 0x0f, 0x2c, 0xc4]
        );
        // xorps xmm3, xmm3
        assert_eq!(enc(|c| c.xzero(3)), [0x0f, 0x57, 0xdb]);
        // btc rax, 63; btr r11d, 31
        assert_eq!(enc(|c| c.btc(true, 0, 63)), [0x48, 0x0f, 0xba, 0xf8, 63]);
        assert_eq!(enc(|c| c.btr(false, 11, 31)), [0x41, 0x0f, 0xba, 0xf3, 31]);
        // sete dil (needs REX)
        assert_eq!(enc(|c| c.setcc8(0x4, 7)), [0x40, 0x0f, 0x94, 0xc7]);
    }
}
