//! A lean x86-64 byte encoder for the fast generator: the few forms it
//! emits, each assembled on the stack and appended to a `Vec<u8>` with one
//! capacity check (dynasm's assembler costs several times more per
//! instruction, which dominated this generator's profile), with its own
//! labels (rel32 fixups resolved at the end).
//!
//! Registers are hardware numbers (0–15). Memory operands are
//! `[base + disp]` with any base (`rsp`/`r12` get their SIB byte,
//! `rbp`/`r13` always a displacement).

pub mod sse;

const NONE: u32 = u32::MAX;

/// A label: an index into [`Code`]'s label table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(pub u32);

/// ALU opcodes (`op r, r/m` form; the `/digit` of the immediate form is
/// `op >> 3`).
pub const ADD: u8 = 0x03;
pub const OR: u8 = 0x0b;
pub const AND: u8 = 0x23;
pub const SUB: u8 = 0x2b;
pub const XOR: u8 = 0x33;
pub const CMP: u8 = 0x3b;

/// Condition codes (the low nibble of `jcc` / `setcc`).
pub const CC_O: u8 = 0x0;
pub const CC_B: u8 = 0x2;
pub const CC_AE: u8 = 0x3;
pub const CC_E: u8 = 0x4;
pub const CC_NE: u8 = 0x5;
pub const CC_BE: u8 = 0x6;
pub const CC_A: u8 = 0x7;
pub const CC_L: u8 = 0xc;
pub const CC_GE: u8 = 0xd;
pub const CC_LE: u8 = 0xe;
pub const CC_G: u8 = 0xf;

/// The most bytes one step of the emitter writes (the bytes of its
/// forms, each counted as the full width it stores): an IR instruction
/// other than a call, one move of a parallel move, one argument of a
/// call, one case of a switch, one stub. Every write checks it in debug
/// builds (from the step's [`Code::room`] or [`Code::step`]).
pub const STEP: usize = 128;

/// The IR instructions of a block the emitter writes per [`Code::room`]
/// (a block's go in runs of this many).
pub const RUN: usize = 32;

/// The free bytes [`Code::room`] makes sure of: a run of [`RUN`] steps,
/// twice over.
pub const ROOM: usize = 2 * RUN * STEP;

/// The machine code of one function being emitted.
///
/// The forms write without a capacity check: the emitter calls
/// [`Code::room`] before each run of at most [`RUN`] steps of at most
/// [`STEP`] bytes (a block's instructions in runs; each move of a
/// parallel move, each argument of a call, each case of a switch, each
/// stub alone; again after a call, whose moves use it up), which leaves
/// [`ROOM`] bytes free, more than the run writes.
#[derive(Default)]
pub struct Code {
    pub buf: Vec<u8>,
    /// The offset the writes of the step since the last [`Code::room`]
    /// or [`Code::step`] must stay within (debug builds).
    #[cfg(debug_assertions)]
    limit: usize,
    /// Per label: its offset (`NONE` until bound).
    labels: Vec<u32>,
    /// `(offset of a rel32 field, label)`.
    fixups: Vec<(u32, u32)>,
    /// Per stack slot of the function: its `[rbp + disp]` operand (see
    /// [`Code::set_slots`]).
    slots: Vec<Mem>,
}

/// An `[rbp + disp]` memory operand encoded once: its ModRM byte (reg
/// field 0) and displacement in the low bytes, their number less 2
/// (0 or 3) in the top two bits. The forms of [`Code`] that take one OR in
/// the register and place it, instead of choosing the displacement size
/// per operand. (A count of at most 2 + 3 lets LLVM bound the forms'
/// lengths, so that [`Code::append`]'s clamp folds away.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem(u64);

impl Mem {
    /// `[rbp + disp]`.
    pub fn rbp(disp: i32) -> Mem {
        let (m, n) = mem_bytes(0, 5, disp);
        debug_assert!(n == 2 || n == 5, "[rbp + disp] of {n} bytes");
        Mem(m | (((n - 2) as u64) << 62))
    }

    /// The bytes with `reg` in the ModRM reg field, and their number
    /// (2 or 5).
    #[inline(always)]
    fn with_reg(self, reg: u8) -> (u64, u32) {
        let bytes = self.0 & 0x3fff_ffff_ffff_ffff;
        (bytes | ((reg & 7) << 3) as u64, 2 + (self.0 >> 62) as u32)
    }
}

/// The bytes of one machine instruction (at most 16 here), assembled on
/// the stack and appended to [`Code::buf`] in one step by [`Code::put`]:
/// one capacity check and one length update per instruction instead of
/// one per byte (which was most of the encoder's cost).
#[derive(Clone, Copy)]
pub(super) struct Ins {
    b: [u8; 16],
    n: usize,
}

impl Ins {
    #[inline(always)]
    fn new() -> Self {
        Ins { b: [0; 16], n: 0 }
    }

    #[inline(always)]
    fn b(&mut self, x: u8) {
        // `& 15`: no bounds check; [`Code::put`] asserts (in debug
        // builds) that no form wrote more than 16 bytes.
        self.b[self.n & 15] = x;
        self.n += 1;
    }

    #[inline(always)]
    fn bytes(&mut self, x: &[u8]) {
        for &y in x {
            self.b(y);
        }
    }

    #[inline(always)]
    fn imm32(&mut self, k: i32) {
        self.bytes(&k.to_le_bytes());
    }

    /// A REX prefix if needed (`byte`: a byte register operand 4–7 needs
    /// one to mean `spl`–`dil`).
    #[inline(always)]
    fn rex(&mut self, w: bool, r: u8, b: u8, byte: bool) {
        let v = 0x40 | ((w as u8) << 3) | (((r >> 3) & 1) << 2) | ((b >> 3) & 1);
        if v != 0x40 || (byte && ((4..8).contains(&r) || (4..8).contains(&b))) {
            self.b(v);
        }
    }

    /// ModRM (+SIB, displacement) for `reg` and `[base + disp]`.
    #[inline(always)]
    fn mem(&mut self, reg: u8, base: u8, disp: i32) {
        let r = (reg & 7) << 3;
        let bl = base & 7;
        let sib = bl == 4;
        if disp == 0 && bl != 5 {
            self.b(r | bl);
            if sib {
                self.b(0x24);
            }
        } else if let Ok(d) = i8::try_from(disp) {
            self.b(0x40 | r | bl);
            if sib {
                self.b(0x24);
            }
            self.b(d as u8);
        } else {
            self.b(0x80 | r | bl);
            if sib {
                self.b(0x24);
            }
            self.imm32(disp);
        }
    }

    /// `[rex] op reg, rm` (register form) with the opcode bytes `op`
    /// (the byte-wise reference of the word forms' tests).
    #[cfg(test)]
    fn rr(&mut self, w: bool, op: &[u8], reg: u8, rm: u8) {
        self.rex(w, reg, rm, false);
        self.bytes(op);
        self.b(0xc0 | ((reg & 7) << 3) | (rm & 7));
    }

    /// `[rex] op reg, [base + disp]` with the opcode bytes `op`.
    #[inline(always)]
    fn rm(&mut self, w: bool, op: &[u8], reg: u8, base: u8, disp: i32) {
        self.rex(w, reg, base, false);
        self.bytes(op);
        self.mem(reg, base, disp);
    }
}

/// One machine instruction of at most 16 bytes as a little-endian
/// `u128` and its length: the common forms are computed in registers
/// (fields at fixed shifts, the optional REX prefix last) and appended by
/// [`Code::put_word`] with one store, where [`Ins`] writes byte by byte
/// at a moving index.
#[derive(Clone, Copy)]
pub(super) struct Word {
    v: u128,
    n: u32,
}

impl Word {
    /// The `n` low bytes of `x`.
    #[inline(always)]
    const fn of(x: u64, n: u32) -> Word {
        Word { v: x as u128, n }
    }

    /// `self` followed by the `n` low bytes of `x` (at most 16 in all).
    #[inline(always)]
    fn then(self, x: u64, n: u32) -> Word {
        Word {
            v: self.v | ((x as u128) << (8 * self.n)),
            n: self.n + n,
        }
    }

    /// `self` after a REX prefix with W = `w` and the high bits of `r`
    /// (ModRM.reg) and `b` (ModRM.rm or the base), if one is needed (as
    /// [`Ins::rex`] for non-byte operands).
    #[inline(always)]
    fn rex(self, w: bool, r: u8, b: u8) -> Word {
        let rex = 0x40 | ((w as u8) << 3) | ((r >> 1) & 4) | ((b >> 3) & 1);
        if rex == 0x40 {
            self
        } else {
            Word {
                v: (self.v << 8) | rex as u128,
                n: self.n + 1,
            }
        }
    }
}

impl Word {
    /// `self` after the mandatory prefix byte `pfx`, if it is not 0 (no
    /// branch: a shift by 0 or 8).
    #[inline(always)]
    fn prefix(self, pfx: u8) -> Word {
        let has = (pfx != 0) as u32;
        Word {
            v: (self.v << (8 * has)) | pfx as u128,
            n: self.n + has,
        }
    }
}

/// A register-form ModRM byte.
#[inline(always)]
fn modrm_rr(reg: u8, rm: u8) -> u64 {
    (0xc0 | ((reg & 7) << 3) | (rm & 7)) as u64
}

/// `rest` (its `n` low bytes, at most 7) after a REX prefix with W = `w`
/// and the high bits of `r` (ModRM.reg) and `b` (ModRM.rm or the base),
/// if one is needed (as [`Word::rex`]): the bytes as a `u64` and their
/// number. The prefix is placed first and dropped by a shift when it is
/// not needed, so that no wide value moves (the forms of at most 8 bytes
/// use this; [`Word`] the longer ones).
#[inline(always)]
fn rex_first(w: bool, r: u8, b: u8, rest: u64, n: u32) -> (u64, u32) {
    let rex = 0x40 | ((w as u64) << 3) | ((r as u64 >> 1) & 4) | ((b as u64 >> 3) & 1);
    let none = (rex == 0x40) as u32;
    ((rex | (rest << 8)) >> (8 * none), n + 1 - none)
}

/// ModRM (+SIB, displacement) for `reg` and `[base + disp]` (as
/// [`Ins::mem`]): the bytes and their number (at most 6).
#[inline(always)]
fn mem_bytes(reg: u8, base: u8, disp: i32) -> (u64, u32) {
    let r = ((reg & 7) << 3) as u64;
    let bl = (base & 7) as u64;
    let (modrm, d, nd) = if disp == 0 && bl != 5 {
        (r | bl, 0, 0)
    } else if disp as i8 as i32 == disp {
        (0x40 | r | bl, disp as u8 as u64, 1)
    } else {
        (0x80 | r | bl, disp as u32 as u64, 4)
    };
    if bl == 4 {
        (modrm | (0x24 << 8) | (d << 16), nd + 2)
    } else {
        (modrm | (d << 8), nd + 1)
    }
}

impl Code {
    /// Empties the buffer and labels, keeping their memory.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.labels.clear();
        self.fixups.clear();
    }

    /// Encodes the operand of each of `num_slots` stack slots, slot `k`
    /// at `[rbp + slot_off(k)]`, for [`Code::slot`].
    pub fn set_slots(&mut self, num_slots: u32, slot_off: impl Fn(u32) -> i32) {
        self.slots.clear();
        self.slots
            .extend((0..num_slots).map(|k| Mem::rbp(slot_off(k))));
    }

    /// The operand of stack slot `k` (see [`Code::set_slots`]). A slot
    /// that does not exist (only a module the verifier rejects gets one:
    /// a value used before its definition has no home yet, see
    /// `Fast::use_op`) gives `[rbp]`: wrong code for an invalid module,
    /// never a panic.
    #[inline(always)]
    pub fn slot(&self, k: u32) -> Mem {
        self.slots.get(k as usize).copied().unwrap_or(Mem::rbp(0))
    }

    /// `op reg, m` with a one-byte opcode (as [`Code::rm`] with base
    /// `rbp`).
    #[inline(always)]
    pub fn rm_at(&mut self, w: bool, op: u8, reg: u8, m: Mem) {
        // At most 1 + 5 bytes after the prefix.
        let (m, nm) = m.with_reg(reg);
        self.put8(rex_first(w, reg, 5, op as u64 | (m << 8), 1 + nm));
    }

    /// `0f op reg, m` (as [`Code::rm0f`] with base `rbp`).
    #[inline(always)]
    pub fn rm0f_at(&mut self, w: bool, op: u8, reg: u8, m: Mem) {
        // At most 2 + 5 bytes after the prefix.
        let (m, nm) = m.with_reg(reg);
        let i = 0x0f | ((op as u64) << 8) | (m << 16);
        self.put8(rex_first(w, reg, 5, i, 2 + nm));
    }

    /// The current offset.
    #[inline]
    pub fn off(&self) -> usize {
        self.buf.len()
    }

    /// A new unbound label.
    #[inline]
    pub fn label(&mut self) -> Label {
        self.labels.push(NONE);
        Label(self.labels.len() as u32 - 1)
    }

    /// Binds `l` here.
    #[inline]
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0 as usize] = self.buf.len() as u32;
    }

    /// The offset `l` is bound at, if it is.
    pub fn label_offset(&self, l: Label) -> Option<usize> {
        let t = self.labels[l.0 as usize];
        (t != NONE).then_some(t as usize)
    }

    /// Patches every jump to its label; `false` if one is unbound.
    pub fn resolve(&mut self) -> bool {
        for &(at, l) in &self.fixups {
            let t = self.labels[l as usize];
            if t == NONE {
                return false;
            }
            let rel = t.wrapping_sub(at + 4) as i32;
            self.buf[at as usize..at as usize + 4].copy_from_slice(&rel.to_le_bytes());
        }
        true
    }

    /// Makes sure of [`ROOM`] free bytes for the forms (which write
    /// without a capacity check): called before each run of steps of the
    /// emitter (see [`Code`]); one check per run instead of one per
    /// machine instruction. Starts a step.
    #[inline(always)]
    pub fn room(&mut self) {
        if self.buf.capacity() - self.buf.len() < ROOM {
            self.grow();
        }
        self.step();
    }

    /// Starts a step of a run (see [`Code`]): in debug builds, the writes
    /// until the next step are checked to stay within [`STEP`] bytes.
    #[inline(always)]
    pub fn step(&mut self) {
        #[cfg(debug_assertions)]
        {
            self.limit = self.buf.len() + STEP;
        }
    }

    /// [`Code::room`]'s growth (rare: the buffer is reserved for the
    /// whole function up front).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.buf.reserve(ROOM);
    }

    /// Appends the `n` first of `bytes` (written whole into the room
    /// [`Code::room`] left).
    #[inline(always)]
    fn append<const N: usize>(&mut self, bytes: [u8; N], n: usize) {
        debug_assert!(n <= N, "a prefix of {n} bytes of {N}");
        let len = self.buf.len();
        #[cfg(debug_assertions)]
        assert!(len + N <= self.limit, "a step of more than {STEP} bytes");
        // SAFETY: the last `room` left `ROOM` bytes free past the length
        // then, and the run of steps since (at most `RUN` of at most
        // `STEP` bytes each, counting each write's full width; see `Code`,
        // and debug builds check each step above) has written fewer than
        // `ROOM - N` bytes before this write, so the `N`-byte write ends inside
        // the allocation, in its spare capacity (writable through the
        // pointer: `u8` has no invalid values or drop); it initializes
        // the `n <= N` bytes that `set_len` makes part of the vector.
        unsafe {
            self.buf
                .as_mut_ptr()
                .add(len)
                .cast::<[u8; N]>()
                .write_unaligned(bytes);
            self.buf.set_len(len + n.min(N));
        }
    }

    /// Appends the instruction `i`.
    #[inline(always)]
    fn put(&mut self, i: &Ins) {
        debug_assert!(i.n <= 16, "an instruction of {} bytes", i.n);
        self.append(i.b, i.n);
    }

    /// Appends the instruction of [`rex_first`]: the `n` low bytes of `v`.
    #[inline(always)]
    fn put8(&mut self, (v, n): (u64, u32)) {
        debug_assert!(n <= 8, "an instruction of {n} bytes");
        self.append(v.to_le_bytes(), n as usize);
    }

    /// Appends the instruction `w`.
    #[inline(always)]
    fn put_word(&mut self, w: Word) {
        debug_assert!(w.n <= 16, "an instruction of {} bytes", w.n);
        self.append(w.v.to_le_bytes(), w.n as usize);
    }

    /// `op reg, rm` (register form) with a one-byte opcode.
    #[inline(always)]
    pub fn rr(&mut self, w: bool, op: u8, reg: u8, rm: u8) {
        self.put8(rex_first(
            w,
            reg,
            rm,
            op as u64 | (modrm_rr(reg, rm) << 8),
            2,
        ));
    }

    /// `op reg, [base + disp]` with a one-byte opcode.
    #[inline(always)]
    pub fn rm(&mut self, w: bool, op: u8, reg: u8, base: u8, disp: i32) {
        // At most 1 + 6 bytes after the prefix.
        let (m, nm) = mem_bytes(reg, base, disp);
        self.put8(rex_first(w, reg, base, op as u64 | (m << 8), 1 + nm));
    }

    /// `0f op reg, rm` (register form).
    #[inline(always)]
    pub fn rr0f(&mut self, w: bool, op: u8, reg: u8, rm: u8) {
        let i = 0x0f | ((op as u64) << 8) | (modrm_rr(reg, rm) << 16);
        self.put8(rex_first(w, reg, rm, i, 3));
    }

    /// `0f op reg, [base + disp]`.
    #[inline]
    pub fn rm0f(&mut self, w: bool, op: u8, reg: u8, base: u8, disp: i32) {
        let (m, nm) = mem_bytes(reg, base, disp);
        let i = Word::of(0x0f | ((op as u64) << 8), 2).then(m, nm);
        self.put_word(i.rex(w, reg, base));
    }

    /// `mov d, s` (64 bits).
    #[inline(always)]
    pub fn mov_rr(&mut self, d: u8, s: u8) {
        self.rr(true, 0x8b, d, s);
    }

    /// `mov d32, s32` (clears the upper half).
    #[inline]
    pub fn mov_rr32(&mut self, d: u8, s: u8) {
        self.rr(false, 0x8b, d, s);
    }

    /// `mov d, [base + disp]` (64 or 32 bits).
    #[inline(always)]
    pub fn load(&mut self, w: bool, d: u8, base: u8, disp: i32) {
        self.rm(w, 0x8b, d, base, disp);
    }

    /// `mov [base + disp], s` of `bytes` bytes.
    #[inline(always)]
    pub fn store(&mut self, bytes: u32, s: u8, base: u8, disp: i32) {
        let mut i = Ins::new();
        match bytes {
            1 => {
                i.rex(false, s, base, true);
                i.b(0x88);
                i.mem(s, base, disp);
            }
            2 => {
                i.b(0x66);
                i.rm(false, &[0x89], s, base, disp);
            }
            _ => return self.rm(bytes != 4, 0x89, s, base, disp),
        }
        self.put(&i);
    }

    /// `mov [base + disp], imm` of `bytes` bytes (8: sign-extended).
    #[inline]
    pub fn store_imm(&mut self, bytes: u32, k: i32, base: u8, disp: i32) {
        let mut i = Ins::new();
        match bytes {
            1 => {
                i.rm(false, &[0xc6], 0, base, disp);
                i.b(k as u8);
            }
            2 => {
                i.b(0x66);
                i.rm(false, &[0xc7], 0, base, disp);
                i.bytes(&(k as i16).to_le_bytes());
            }
            _ => {
                let (m, nm) = mem_bytes(0, base, disp);
                let w = Word::of(0xc7, 1).then(m, nm).then(k as u32 as u64, 4);
                return self.put_word(w.rex(bytes == 8, 0, base));
            }
        }
        self.put(&i);
    }

    /// `r = bits` in the shortest form.
    #[inline]
    pub fn mov_imm(&mut self, r: u8, bits: u64) {
        if bits == 0 {
            self.rr(false, 0x33, r, r);
        } else if bits <= u32::MAX as u64 {
            let i = (0xb8 | (r & 7)) as u64 | (bits << 8);
            self.put8(rex_first(false, 0, r, i, 5));
        } else if let Ok(v) = i32::try_from(bits as i64) {
            let i = 0xc7 | (modrm_rr(0, r) << 8) | ((v as u32 as u64) << 16);
            self.put8(rex_first(true, 0, r, i, 6));
        } else {
            self.movabs(r, bits);
        }
    }

    /// `movabs r, bits` (always 10 bytes; the immediate is the last 8).
    #[inline]
    pub fn movabs(&mut self, r: u8, bits: u64) {
        let i = Word::of((0xb8 | (r & 7)) as u64, 1).then(bits, 8);
        self.put_word(i.rex(true, 0, r));
    }

    /// `op r, k` for an ALU opcode (see the constants).
    #[inline(always)]
    pub fn alu_ri(&mut self, w: bool, op: u8, r: u8, k: i32) {
        let ext = op >> 3;
        let m = modrm_rr(ext, r) << 8;
        let i = if k as i8 as i32 == k {
            (0x83 | m | ((k as u8 as u64) << 16), 3)
        } else {
            (0x81 | m | ((k as u32 as u64) << 16), 6)
        };
        self.put8(rex_first(w, ext, r, i.0, i.1));
    }

    /// `op r, bits` for an ALU opcode, through `scratch` when `bits` has
    /// no imm32 form in a `w`-wide operation (see [`imm32_of`]).
    #[inline]
    pub fn alu_rk(&mut self, w: bool, op: u8, r: u8, bits: u64, scratch: u8) {
        match imm32_of(w, bits) {
            Some(k) => self.alu_ri(w, op, r, k),
            None => {
                self.mov_imm(scratch, bits);
                self.rr(true, op, r, scratch);
            }
        }
    }

    /// `imul d, s, k`.
    #[inline(always)]
    pub fn imul_rri(&mut self, w: bool, d: u8, s: u8, k: i32) {
        let m = modrm_rr(d, s) << 8;
        let i = if k as i8 as i32 == k {
            (0x6b | m | ((k as u8 as u64) << 16), 3)
        } else {
            (0x69 | m | ((k as u32 as u64) << 16), 6)
        };
        self.put8(rex_first(w, d, s, i.0, i.1));
    }

    /// A one-operand group form `op /ext r` (`f7 /3` neg, `/2` not, …).
    #[inline(always)]
    pub fn grp(&mut self, w: bool, op: u8, ext: u8, r: u8) {
        self.rr(w, op, ext, r);
    }

    /// Shift `r` by `n` (`ext`: 4 shl, 5 shr, 7 sar).
    #[inline(always)]
    pub fn shift_imm(&mut self, w: bool, ext: u8, r: u8, n: u8) {
        let i = 0xc1 | (modrm_rr(ext, r) << 8) | ((n as u64) << 16);
        self.put8(rex_first(w, ext, r, i, 3));
    }

    /// Shift `r` by `cl`.
    #[inline(always)]
    pub fn shift_cl(&mut self, w: bool, ext: u8, r: u8) {
        self.grp(w, 0xd3, ext, r);
    }

    /// `setcc r8; movzx r32, r8`.
    #[inline]
    pub fn setcc(&mut self, cc: u8, r: u8) {
        let mut i = Ins::new();
        i.rex(false, 0, r, true);
        i.bytes(&[0x0f, 0x90 | cc, 0xc0 | (r & 7)]);
        i.rex(false, r, r, true);
        i.bytes(&[0x0f, 0xb6, 0xc0 | ((r & 7) << 3) | (r & 7)]);
        self.put(&i);
    }

    /// The rel8 from the end of a 2-byte jump here to `l`, if `l` is bound
    /// and near.
    #[inline]
    fn near(&self, l: Label) -> Option<u8> {
        let t = self.labels[l.0 as usize];
        if t == NONE {
            return None;
        }
        let rel = t as i64 - (self.buf.len() as i64 + 2);
        i8::try_from(rel).ok().map(|r| r as u8)
    }

    /// `jcc l` (rel8 when `l` is bound and near, else rel32).
    #[inline]
    pub fn jcc(&mut self, cc: u8, l: Label) {
        match self.near(l) {
            Some(r8) => self.put8(((0x70 | cc) as u64 | ((r8 as u64) << 8), 2)),
            None => self.rel32(0x0f | (((0x80 | cc) as u64) << 8), 2, l),
        }
    }

    /// `jmp l`.
    #[inline]
    pub fn jmp(&mut self, l: Label) {
        match self.near(l) {
            Some(r8) => self.put8((0xeb | ((r8 as u64) << 8), 2)),
            None => self.rel32(0xe9, 1, l),
        }
    }

    /// `call l`.
    pub fn call_label(&mut self, l: Label) {
        self.rel32(0xe8, 1, l);
    }

    /// `op rel32` to `l` (resolved by [`Code::resolve`]); the opcode is
    /// the `nop` low bytes of `op`.
    #[inline]
    fn rel32(&mut self, op: u64, nop: u32, l: Label) {
        let at = self.buf.len() + nop as usize;
        self.fixups.push((at as u32, l.0));
        self.put8((op, nop + 4));
    }

    /// A short forward jump whose target is patched with
    /// [`Code::patch8`]; returns the displacement's offset.
    #[inline]
    pub fn jcc8(&mut self, cc: u8) -> usize {
        self.put8(((0x70 | cc) as u64, 2));
        self.buf.len() - 1
    }

    /// `jmp` short, patched later.
    #[inline]
    pub fn jmp8(&mut self) -> usize {
        self.put8((0xeb, 2));
        self.buf.len() - 1
    }

    /// Points the short jump whose displacement is at `at` here.
    #[inline]
    pub fn patch8(&mut self, at: usize) {
        self.buf[at] = (self.buf.len() - at - 1) as u8;
    }

    /// `push r`.
    pub fn push(&mut self, r: u8) {
        self.put8(rex_first(false, 0, r, (0x50 | (r & 7)) as u64, 1));
    }

    /// `pop r`.
    pub fn pop(&mut self, r: u8) {
        self.put8(rex_first(false, 0, r, (0x58 | (r & 7)) as u64, 1));
    }

    /// Raw bytes.
    #[inline]
    pub fn raw(&mut self, x: &[u8]) {
        if x.len() <= 16 {
            {
                let mut i = Ins::new();
                i.bytes(x);
                self.put(&i);
            }
        } else {
            self.buf.extend_from_slice(x);
        }
    }

    /// `sub rsp, n`, probing every page when `n` exceeds one (as
    /// `asm::sub_rsp_probed`).
    pub fn sub_rsp_probed(&mut self, n: u64) {
        if n > 4096 {
            let pages = (n / 4096) as i32;
            // mov r11d, pages
            let mut i = Ins::new();
            i.bytes(&[0x41, 0xbb]);
            i.imm32(pages);
            self.put(&i);
            // probe: sub rsp, 4096; mov qword [rsp], 0; dec r11; jnz probe
            self.raw(&[0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00]);
            self.raw(&[0x48, 0xc7, 0x04, 0x24, 0, 0, 0, 0]);
            self.raw(&[0x49, 0xff, 0xcb]);
            self.raw(&[0x75, (-20i8) as u8]);
            let rest = (n % 4096) as i32;
            if rest != 0 {
                self.alu_ri(true, SUB, 4, rest);
            }
        } else if n > 0 {
            self.alu_ri(true, SUB, 4, n as i32);
        }
    }
}

/// The imm32 that stands for `bits` in a `w`-wide operation: a 32-bit
/// operation uses the low half, a 64-bit one sign-extends the imm32, so
/// only values that survive that have one.
#[inline]
pub fn imm32_of(w: bool, bits: u64) -> Option<i32> {
    if w {
        i32::try_from(bits as i64).ok()
    } else {
        Some(bits as u32 as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `f` encodes (shared with the SSE forms' tests).
    pub(super) fn enc(f: impl FnOnce(&mut Code)) -> Vec<u8> {
        let mut c = Code::default();
        c.room();
        f(&mut c);
        c.buf
    }

    #[test]
    fn encodes_common_forms() {
        // mov rax, rbx
        assert_eq!(enc(|c| c.mov_rr(0, 3)), [0x48, 0x8b, 0xc3]);
        // add r9, r10
        assert_eq!(enc(|c| c.rr(true, ADD, 9, 10)), [0x4d, 0x03, 0xca]);
        // mov rsi, [rbp - 8]
        assert_eq!(enc(|c| c.load(true, 6, 5, -8)), [0x48, 0x8b, 0x75, 0xf8]);
        // mov eax, [r12]
        assert_eq!(enc(|c| c.load(false, 0, 12, 0)), [0x41, 0x8b, 0x04, 0x24]);
        // mov [r13 + 0x100], r8b
        assert_eq!(
            enc(|c| c.store(1, 8, 13, 0x100)),
            [0x45, 0x88, 0x85, 0x00, 0x01, 0x00, 0x00]
        );
        // mov [rdi], sil needs a REX prefix
        assert_eq!(enc(|c| c.store(1, 6, 7, 0)), [0x40, 0x88, 0x37]);
        // sub rdi, 1000
        assert_eq!(
            enc(|c| c.alu_ri(true, SUB, 7, 1000)),
            [0x48, 0x81, 0xef, 0xe8, 0x03, 0x00, 0x00]
        );
        // cmp esi, -1
        assert_eq!(enc(|c| c.alu_ri(false, CMP, 6, -1)), [0x83, 0xfe, 0xff]);
        // imul r10, r9, 3
        assert_eq!(
            enc(|c| c.imul_rri(true, 10, 9, 3)),
            [0x4d, 0x6b, 0xd1, 0x03]
        );
        // sar rbx, 5
        assert_eq!(
            enc(|c| c.shift_imm(true, 7, 3, 5)),
            [0x48, 0xc1, 0xfb, 0x05]
        );
        // setl sil; movzx esi, sil
        assert_eq!(
            enc(|c| c.setcc(CC_L, 6)),
            [0x40, 0x0f, 0x9c, 0xc6, 0x40, 0x0f, 0xb6, 0xf6]
        );
        // mov r10d, 7
        assert_eq!(enc(|c| c.mov_imm(10, 7)), [0x41, 0xba, 7, 0, 0, 0]);
        // mov rcx, -2
        assert_eq!(
            enc(|c| c.mov_imm(1, (-2i64) as u64)),
            [0x48, 0xc7, 0xc1, 0xfe, 0xff, 0xff, 0xff]
        );
        // push r12; pop rbx
        assert_eq!(enc(|c| c.push(12)), [0x41, 0x54]);
        assert_eq!(enc(|c| c.pop(3)), [0x5b]);
        // mov qword [rbp - 16], -1
        assert_eq!(
            enc(|c| c.store_imm(8, -1, 5, -16)),
            [0x48, 0xc7, 0x45, 0xf0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn room_leaves_room_and_steps_are_bounded() {
        // Each `room` leaves `ROOM` bytes free, whatever was written.
        let mut c = Code::default();
        for k in 0..3 * ROOM {
            c.room();
            assert!(c.buf.capacity() - c.buf.len() >= ROOM, "{k}");
            c.push(3);
        }
        // In a debug build, a step that writes more than `STEP` bytes
        // (counting each write's full width) is caught.
        #[cfg(debug_assertions)]
        {
            let long = std::panic::catch_unwind(|| {
                let mut c = Code::default();
                c.room();
                for _ in 0..STEP / 10 + 2 {
                    c.movabs(0, 1 << 40);
                }
            });
            assert!(long.is_err());
            let mut c = Code::default();
            c.room();
            for _ in 0..STEP / 16 {
                c.movabs(0, 1 << 40);
            }
            assert_eq!(c.buf.len(), 10 * (STEP / 16));
        }
    }

    #[test]
    fn appends_across_buffer_growth() {
        // Each instruction is written 16 bytes wide into the spare
        // capacity and the length moved by its own size: from an empty
        // buffer through many regrowths, the bytes are the concatenation.
        let mut c = Code::default();
        let mut want = Vec::new();
        for k in 0..1000u64 {
            c.room();
            c.movabs(9, k << 40);
            want.extend_from_slice(&[0x49, 0xb9]);
            want.extend_from_slice(&(k << 40).to_le_bytes());
            c.push(3);
            want.push(0x53);
        }
        assert_eq!(c.buf, want);
    }

    /// A register form with an immediate in the byte assembler: opcode
    /// `ops[0]` and an 8-bit immediate when `k` fits, else `ops[1]` and a
    /// 32-bit one.
    fn rr_imm(i: &mut Ins, w: bool, ops: [u8; 2], reg: u8, rm: u8, k: i32) {
        if let Ok(k8) = i8::try_from(k) {
            i.rr(w, &[ops[0]], reg, rm);
            i.b(k8 as u8);
        } else {
            i.rr(w, &[ops[1]], reg, rm);
            i.imm32(k);
        }
    }

    /// The bytes of `f`'s [`Ins`] (the byte-at-a-time assembler).
    fn ins(f: impl FnOnce(&mut Ins)) -> Vec<u8> {
        let mut i = Ins::new();
        f(&mut i);
        i.b[..i.n].to_vec()
    }

    #[test]
    fn words_encode_as_the_byte_assembler() {
        // Every register pair, base and displacement class (none, 8-bit
        // at both ends, 32-bit), both widths: the word forms write what
        // the byte-at-a-time forms wrote.
        let disps = [0, 1, -1, 127, -128, 128, -129, 0x1234_5678, i32::MIN];
        let imms = [0, 1, -1, 127, -128, 128, -129, i32::MAX, i32::MIN];
        let mut n = 0;
        for w in [false, true] {
            for a in 0..16u8 {
                for b in 0..16u8 {
                    let rr = ins(|i| i.rr(w, &[ADD], a, b));
                    assert_eq!(enc(|c| c.rr(w, ADD, a, b)), rr);
                    let rr0f = ins(|i| i.rr(w, &[0x0f, 0xaf], a, b));
                    assert_eq!(enc(|c| c.rr0f(w, 0xaf, a, b)), rr0f);
                    for d in disps {
                        let rm = ins(|i| i.rm(w, &[0x8b], a, b, d));
                        assert_eq!(enc(|c| c.rm(w, 0x8b, a, b, d)), rm, "{w} {a} {b} {d}");
                        let rm0f = ins(|i| i.rm(w, &[0x0f, 0xaf], a, b, d));
                        assert_eq!(enc(|c| c.rm0f(w, 0xaf, a, b, d)), rm0f);
                        let st = ins(|i| i.rm(w, &[0x89], a, b, d));
                        assert_eq!(enc(|c| c.store(if w { 8 } else { 4 }, a, b, d)), st);
                        n += 5;
                    }
                }
                for k in imms {
                    let ext = a & 7;
                    let alu = ins(|i| rr_imm(i, w, [0x83, 0x81], ext, a, k));
                    assert_eq!(enc(|c| c.alu_ri(w, ext << 3, a, k)), alu);
                    for s in [0, 7, 8, 15] {
                        let imul = ins(|i| rr_imm(i, w, [0x6b, 0x69], a, s, k));
                        assert_eq!(enc(|c| c.imul_rri(w, a, s, k)), imul);
                    }
                    for (base, d) in [(5, -8), (4, 0), (12, 300), (13, 0), (3, -200)] {
                        let sti = ins(|i| {
                            i.rm(w, &[0xc7], 0, base, d);
                            i.imm32(k);
                        });
                        let bytes = if w { 8 } else { 4 };
                        assert_eq!(enc(|c| c.store_imm(bytes, k, base, d)), sti);
                    }
                    n += 7;
                }
                let sh = ins(|i| {
                    i.rr(w, &[0xc1], 7, a);
                    i.b(5);
                });
                assert_eq!(enc(|c| c.shift_imm(w, 7, a, 5)), sh);
            }
        }
        for r in 0..16u8 {
            for bits in [1u64, 0xffff_ffff, (-5i64) as u64, 1 << 40] {
                let want = ins(|i| {
                    if bits <= u32::MAX as u64 {
                        i.rex(false, 0, r, false);
                        i.b(0xb8 | (r & 7));
                        i.imm32(bits as u32 as i32);
                    } else if let Ok(v) = i32::try_from(bits as i64) {
                        i.rr(true, &[0xc7], 0, r);
                        i.imm32(v);
                    } else {
                        i.rex(true, 0, r, false);
                        i.b(0xb8 | (r & 7));
                        i.bytes(&bits.to_le_bytes());
                    }
                });
                assert_eq!(enc(|c| c.mov_imm(r, bits)), want, "{r} {bits:x}");
            }
            let push = ins(|i| {
                i.rex(false, 0, r, false);
                i.b(0x50 | (r & 7));
            });
            assert_eq!(enc(|c| c.push(r)), push);
        }
        assert!(n > 5000, "{n}");
    }

    #[test]
    fn slot_operands_encode_as_rbp_forms() {
        // A slot's operand (`Mem`, its byte count packed in its top bits)
        // written by the `_at` forms, for every register, both widths and
        // each displacement class: the bytes of the same form with base
        // `rbp` and the displacement.
        let disps = [-8, -128, -129, -1024, -0x1234_5678, i32::MIN, 0, 127, 128];
        let mut long = 0;
        for d in disps {
            let m = Mem::rbp(d);
            long += (m.with_reg(0).1 == 5) as usize;
            for w in [false, true] {
                for r in 0..16u8 {
                    let rm = enc(|c| c.rm(w, 0x8b, r, 5, d));
                    assert_eq!(enc(|c| c.rm_at(w, 0x8b, r, m)), rm, "{w} {r} {d}");
                    let rm0f = enc(|c| c.rm0f(w, 0xaf, r, 5, d));
                    assert_eq!(enc(|c| c.rm0f_at(w, 0xaf, r, m)), rm0f, "{w} {r} {d}");
                }
            }
        }
        assert_eq!(long, 5);
    }

    #[test]
    fn resolves_labels() {
        let mut c = Code::default();
        c.room();
        let l = c.label();
        c.jmp(l); // forward: rel32
        c.raw(&[0x90]);
        c.bind(l);
        c.jcc(CC_E, l); // backward: rel8
        assert!(c.resolve());
        assert_eq!(c.buf, [0xe9, 1, 0, 0, 0, 0x90, 0x74, 0xfe]);
    }
}
