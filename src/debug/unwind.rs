//! Unwind information: `.eh_frame` call-frame information (CFI) for
//! compiled code, and its registration with the system unwinder
//! (`__register_frame` of libgcc), so that C++ exceptions, `backtrace(3)`,
//! Rust's `std::backtrace` and debuggers walk through JIT frames into the
//! code that called them.
//!
//! Every kiln function keeps a frame-pointer frame (the seam the backends
//! guarantee), so one CIE per ISA and a short FDE per function describe
//! it. The FDE is derived from the code itself, checking the prologue and
//! epilogue patterns the backends emit:
//! - x86-64: `push rbp` (CFA = rsp+16, rbp at CFA-16), `mov rbp, rsp`
//!   (CFA = rbp+16), then each `push` of a callee-saved register (saved
//!   at CFA-24, CFA-32, ...). Each `pop rbp; ret` gets CFA = rsp+8 for the
//!   `ret`, then the body's rule again.
//! - AArch64: `stp x29, x30, [sp, #-16]!` (CFA = sp+16, x29 at CFA-16,
//!   x30 at CFA-8), `mov x29, sp` (CFA = x29+16). Each
//!   `ldp x29, x30, [sp], #16; ret` gets CFA = sp+0 for the `ret`.
//!   (Callee-saved registers stored below the frame record are not
//!   described: walking frames needs only the CFA and the return address.)
//!
//! A function whose code does not start with its ISA's frame setup gets an
//! FDE with the CIE's entry rule only. Pointers are absolute (`absptr`), so
//! the table can live anywhere relative to the code.

use std::fmt;

/// The ISA whose CFI to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindIsa {
    X86_64,
    Aarch64,
}

impl UnwindIsa {
    /// The host's ISA, if it has one here.
    pub fn host() -> Option<UnwindIsa> {
        match std::env::consts::ARCH {
            "x86_64" => Some(UnwindIsa::X86_64),
            "aarch64" => Some(UnwindIsa::Aarch64),
            _ => None,
        }
    }

    /// The ISA of a `--target` name.
    pub fn of_target(target: &str) -> Option<UnwindIsa> {
        match target.trim_end_matches("-checked") {
            "x86_64" => Some(UnwindIsa::X86_64),
            "aarch64" => Some(UnwindIsa::Aarch64),
            _ => None,
        }
    }
}

const DW_CFA_ADVANCE_LOC: u8 = 0x40;
const DW_CFA_OFFSET: u8 = 0x80;
const DW_CFA_RESTORE: u8 = 0xc0;
const DW_CFA_ADVANCE_LOC1: u8 = 0x02;
const DW_CFA_ADVANCE_LOC2: u8 = 0x03;
const DW_CFA_ADVANCE_LOC4: u8 = 0x04;
const DW_CFA_REMEMBER_STATE: u8 = 0x0a;
const DW_CFA_RESTORE_STATE: u8 = 0x0b;
const DW_CFA_DEF_CFA: u8 = 0x0c;
const DW_CFA_DEF_CFA_REGISTER: u8 = 0x0d;
const DW_CFA_DEF_CFA_OFFSET: u8 = 0x0e;
const DW_CFA_NOP: u8 = 0x00;

/// DWARF register numbers.
const X86_RBP: u8 = 6;
const X86_RSP: u8 = 7;
const X86_RA: u8 = 16;
const A64_FP: u8 = 29;
const A64_LR: u8 = 30;
const A64_SP: u8 = 31;

/// `stp x29, x30, [sp, #-16]!`
const A64_STP_FRAME: u32 = 0xa9bf_7bfd;
/// `mov x29, sp`
const A64_MOV_FP_SP: u32 = 0x9100_03fd;
/// `ldp x29, x30, [sp], #16`
const A64_LDP_FRAME: u32 = 0xa8c1_7bfd;
/// `ret`
const A64_RET: u32 = 0xd65f_03c0;

/// One function to describe: its address and code.
#[derive(Clone, Copy)]
pub struct UnwindFunc<'a> {
    pub address: u64,
    pub code: &'a [u8],
}

/// The two containers CFI comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `.eh_frame`, as the unwinder registers it: augmentation `zR`, FDEs
    /// point back to their CIE, zero terminator.
    EhFrame,
    /// `.debug_frame`, as debuggers read it from an object: no
    /// augmentation, FDEs name their CIE by section offset.
    DebugFrame,
}

/// The `.eh_frame` bytes for `funcs`: one CIE, an FDE per function, and
/// the zero terminator `__register_frame` expects.
pub fn eh_frame(isa: UnwindIsa, funcs: &[UnwindFunc<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(eh_frame_capacity(funcs.len()));
    cfi(isa, funcs, Format::EhFrame, &mut out);
    out
}

/// [`eh_frame`], appended to `out` (the table starts at `out.len()`).
pub fn eh_frame_into(isa: UnwindIsa, funcs: &[UnwindFunc<'_>], out: &mut Vec<u8>) {
    cfi(isa, funcs, Format::EhFrame, out)
}

/// Room enough for the `.eh_frame` of `funcs` functions in the common
/// case (about 40 bytes per function; more only for unusual prologues).
pub fn eh_frame_capacity(funcs: usize) -> usize {
    32 + 48 * funcs
}

/// The same rules as a `.debug_frame` section (for debugger objects).
pub fn debug_frame(isa: UnwindIsa, funcs: &[UnwindFunc<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(eh_frame_capacity(funcs.len()));
    cfi(isa, funcs, Format::DebugFrame, &mut out);
    out
}

/// Appends the CIE and FDEs of `funcs` to `out` (the CIE at `out.len()`).
fn cfi(isa: UnwindIsa, funcs: &[UnwindFunc<'_>], format: Format, out: &mut Vec<u8>) {
    let start = out.len();
    cie(isa, format, out);
    for f in funcs {
        let at = out.len();
        let cie_pointer = match format {
            // From this field back to the CIE.
            Format::EhFrame => (at + 4 - start) as u32,
            // The CIE's offset in the section.
            Format::DebugFrame => 0,
        };
        fde(isa, f, format, cie_pointer, out);
    }
    if format == Format::EhFrame {
        out.extend_from_slice(&0u32.to_le_bytes());
    }
}

/// Appends the FDE of `f`, naming its CIE by `cie_pointer`.
fn fde(isa: UnwindIsa, f: &UnwindFunc<'_>, format: Format, cie_pointer: u32, out: &mut Vec<u8>) {
    let at = begin_entry(out);
    out.extend_from_slice(&cie_pointer.to_le_bytes());
    out.extend_from_slice(&f.address.to_le_bytes());
    out.extend_from_slice(&(f.code.len() as u64).to_le_bytes());
    if format == Format::EhFrame {
        out.push(0); // no augmentation data
    }
    let mut rules = Rules::new(out, isa);
    match isa {
        UnwindIsa::X86_64 => x86_64_rules(&mut rules, f.code),
        UnwindIsa::Aarch64 => aarch64_rules(&mut rules, f.code),
    }
    end_entry(out, at);
}

/// Appends an `.eh_frame` table of FDEs only (and the zero terminator) for
/// `funcs`, whose CIE is [`shared_cie`]`(isa)`: the table is ready once
/// [`point_at_cie`] has filled in the CIE pointers at its final address.
/// Modules share the one CIE instead of each carrying its own (24 bytes
/// each; an engine may hold many thousands of one-function modules).
pub fn fdes_into<'a>(
    isa: UnwindIsa,
    funcs: impl IntoIterator<Item = UnwindFunc<'a>>,
    out: &mut Vec<u8>,
) {
    let funcs = funcs.into_iter();
    // An FDE is 32 bytes for a usual frame (40 with callee-saved
    // registers): room for all of them at once, not a reallocation at
    // every doubling of a fresh buffer.
    let n = funcs.size_hint();
    out.reserve(n.1.unwrap_or(n.0) * 40 + 4);
    for f in funcs {
        // Filled in by `point_at_cie`; never registered as 0 (a CIE).
        fde(isa, &f, Format::EhFrame, 0, out);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// A CIE in static memory, 8-aligned as the unwinder reads entries.
#[repr(C, align(8))]
struct StaticCie([u8; 32]);

static CIES: [std::sync::OnceLock<StaticCie>; 2] =
    [std::sync::OnceLock::new(), std::sync::OnceLock::new()];

/// The process-wide `.eh_frame` CIE of `isa`, at a fixed address for the
/// life of the process (the tables of [`fdes_into`] point at it).
pub fn shared_cie(isa: UnwindIsa) -> &'static [u8] {
    let i = match isa {
        UnwindIsa::X86_64 => 0,
        UnwindIsa::Aarch64 => 1,
    };
    let mut bytes = Vec::new();
    let c = CIES[i].get_or_init(|| {
        cie(isa, Format::EhFrame, &mut bytes);
        let mut fixed = [0; 32];
        fixed[..bytes.len()].copy_from_slice(&bytes);
        StaticCie(fixed)
    });
    let len = u32::from_le_bytes([c.0[0], c.0[1], c.0[2], c.0[3]]) as usize + 4;
    &c.0[..len]
}

/// Points every FDE of `table` (FDEs and the zero terminator, as
/// [`fdes_into`] wrote them, at the address they will be registered
/// from) at the CIE at `cie`. An FDE names its CIE by the distance back
/// from its own CIE pointer field (4 bytes, unsigned), so the CIE must lie
/// below the table, within 2 GiB; returns false, changing nothing, where
/// it does not (a table from another heap arena, say).
pub fn point_at_cie(table: &mut [u8], cie: *const u8) -> bool {
    let base = table.as_ptr() as u64;
    let cie = cie as u64;
    // Checked first, so that nothing changes when one does not reach: at
    // once when the whole table is in reach (every field lies in it),
    // else field by field.
    let reach = |at: u64| base.wrapping_add(at).checked_sub(cie);
    let all = matches!(
        (reach(4), reach(table.len() as u64)),
        (Some(lo), Some(hi)) if lo >= 1 && hi <= 0x7fff_ffff
    );
    if !all && cie_fields(table, base, cie).any(|(_, d)| d.is_none()) {
        return false;
    }
    // Then patched in a second walk, as it goes (a large module's list of
    // patches would be a fresh buffer the size of its table's fields):
    // the walk reads only the entries' lengths, never a patched field.
    let mut at = 0;
    while let Some((field, d)) = next_cie_field(table, &mut at, base, cie) {
        if let Some(d) = d {
            table[field..field + 4].copy_from_slice(&(d as u32).to_le_bytes());
        }
    }
    true
}

/// Each entry of `table` (at address `base`): the offset of its CIE
/// pointer field and the field's distance back to `cie`, if it reaches.
fn cie_fields(
    table: &[u8],
    base: u64,
    cie: u64,
) -> impl Iterator<Item = (usize, Option<u64>)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || next_cie_field(table, &mut at, base, cie))
}

/// The entry of `table` at offset `at` (see [`cie_fields`]); moves `at`
/// past it. `None` at the terminator or the end.
fn next_cie_field(
    table: &[u8],
    at: &mut usize,
    base: u64,
    cie: u64,
) -> Option<(usize, Option<u64>)> {
    let len = table.get(*at..*at + 4)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len == 0 {
        return None;
    }
    let field = *at + 4;
    *at = field + len;
    let d = base.wrapping_add(field as u64).checked_sub(cie);
    Some((field, d.filter(|d| (1..=0x7fff_ffff).contains(d))))
}

/// Starts an entry (CIE or FDE): a length to be patched; its offset.
fn begin_entry(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Ends the entry started at `at`: pads it with `DW_CFA_nop` to 8 bytes
/// and patches its length.
fn end_entry(out: &mut Vec<u8>, at: usize) {
    let padded = (out.len() - at).next_multiple_of(8);
    out.resize(at + padded, DW_CFA_NOP);
    out[at..at + 4].copy_from_slice(&((padded - 4) as u32).to_le_bytes());
}

fn cie(isa: UnwindIsa, format: Format, out: &mut Vec<u8>) {
    let at = begin_entry(out);
    let (id, augmentation): (u32, &[u8]) = match format {
        Format::EhFrame => (0, b"zR\0"),
        Format::DebugFrame => (u32::MAX, b"\0"),
    };
    out.extend_from_slice(&id.to_le_bytes());
    out.push(1); // version
    out.extend_from_slice(augmentation);
    let (code_align, ra, sp, entry_cfa) = match isa {
        UnwindIsa::X86_64 => (1, X86_RA, X86_RSP, 8),
        UnwindIsa::Aarch64 => (4, A64_LR, A64_SP, 0),
    };
    super::lines::write_uleb(out, code_align);
    super::lines::write_sleb(out, -8); // data alignment factor
    out.push(ra);
    if format == Format::EhFrame {
        out.push(1); // augmentation data: one byte,
        out.push(0x00); // FDE pointers are DW_EH_PE_absptr.
    }
    out.push(DW_CFA_DEF_CFA);
    out.push(sp);
    super::lines::write_uleb(out, entry_cfa);
    if isa == UnwindIsa::X86_64 {
        // The return address is at CFA-8.
        out.push(DW_CFA_OFFSET | ra);
        out.push(1);
    }
    end_entry(out, at);
}

/// CFA rules as they change along a function, written in offset order
/// into the FDE being built.
struct Rules<'a> {
    bytes: &'a mut Vec<u8>,
    /// The offset the rules are at.
    at: u64,
    /// log2 of the code alignment factor (offsets advance in its units).
    align_shift: u32,
}

impl<'a> Rules<'a> {
    fn new(bytes: &'a mut Vec<u8>, isa: UnwindIsa) -> Rules<'a> {
        let align_shift = match isa {
            UnwindIsa::X86_64 => 0,
            UnwindIsa::Aarch64 => 2,
        };
        Rules {
            bytes,
            at: 0,
            align_shift,
        }
    }

    /// Moves to code offset `to` (a multiple of the code alignment).
    #[inline]
    fn advance(&mut self, to: u64) {
        let delta = (to - self.at) >> self.align_shift;
        self.at = to;
        match delta {
            0 => {}
            1..=0x3f => self.bytes.push(DW_CFA_ADVANCE_LOC | delta as u8),
            0x40..=0xff => self.bytes.extend([DW_CFA_ADVANCE_LOC1, delta as u8]),
            0x100..=0xffff => {
                self.bytes.push(DW_CFA_ADVANCE_LOC2);
                self.bytes.extend((delta as u16).to_le_bytes());
            }
            _ => {
                self.bytes.push(DW_CFA_ADVANCE_LOC4);
                self.bytes.extend((delta as u32).to_le_bytes());
            }
        }
    }

    fn op(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn def_cfa(&mut self, reg: u8, offset: u64) {
        self.bytes.extend([DW_CFA_DEF_CFA, reg]);
        super::lines::write_uleb(self.bytes, offset);
    }
}

/// The callee-saved registers x86-64 code pushes after `mov rbp, rsp`,
/// as DWARF numbers, by the `push` encoding's register number.
fn x86_pushed_dwarf(reg: u8) -> Option<u8> {
    // Hardware number → DWARF number: rbx 3, r12-r15 12-15.
    match reg {
        3 => Some(3),
        12..=15 => Some(reg),
        _ => None,
    }
}

fn x86_64_rules(r: &mut Rules<'_>, code: &[u8]) {
    if !code.starts_with(&[0x55, 0x48, 0x89, 0xe5]) {
        return;
    }
    r.advance(1);
    r.op(&[DW_CFA_DEF_CFA_OFFSET, 16, DW_CFA_OFFSET | X86_RBP, 2]);
    r.advance(4);
    r.op(&[DW_CFA_DEF_CFA_REGISTER, X86_RBP]);
    // The pushes of callee-saved registers.
    let mut at = 4;
    let mut slot = 3u8;
    loop {
        let (reg, len) = match code.get(at..) {
            Some([0x41, b, ..]) if (0x50..0x58).contains(b) => (8 + (b - 0x50), 2),
            Some([b, ..]) if (0x50..0x58).contains(b) => (b - 0x50, 1),
            _ => break,
        };
        let Some(dwarf) = x86_pushed_dwarf(reg) else {
            break;
        };
        at += len;
        r.advance(at as u64);
        r.op(&[DW_CFA_OFFSET | dwarf, slot]);
        slot += 1;
    }
    // Each `pop rbp; ret` (the pair cannot overlap itself, so every
    // occurrence after the prologue counts): the `ret` runs with
    // CFA = rsp+8.
    let mut from = at;
    while let Some(pop) = find_pop_ret(code, from) {
        from = pop + 1;
        let k = pop + 1;
        r.advance(k as u64);
        r.op(&[DW_CFA_REMEMBER_STATE]);
        r.def_cfa(X86_RSP, 8);
        r.op(&[DW_CFA_RESTORE | X86_RBP]);
        if k + 1 < code.len() {
            r.advance(k as u64 + 1);
            r.op(&[DW_CFA_RESTORE_STATE]);
        }
    }
}

/// `pop rbp`, `ret`: the x86-64 epilogue's last two bytes.
const X86_POP_RET: [u8; 2] = [0x5d, 0xc3];

/// The offset of the first `pop rbp; ret` byte pair of `code` at or after
/// `from` (wherever it is). Linear in the bytes it passes: with SSE2
/// (which every x86-64 host has), 64 bytes per step (about 0.45 host
/// instructions per code byte), then 16 to find the pair in the last
/// step, and the window of the last 17 bytes for the rest; a byte at a
/// time for shorter code (and on other hosts).
#[inline(never)]
fn find_pop_ret(code: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY (of every block below): the intrinsics need SSE2, which
        // every x86-64 target has (it is in the baseline of every
        // `target_arch = "x86_64"` build).
        let (pop, ret) = unsafe {
            (
                _mm_set1_epi8(X86_POP_RET[0] as i8),
                _mm_set1_epi8(X86_POP_RET[1] as i8),
            )
        };
        // Byte `j` all ones: a pair starts at `at + j`, for `j` below 16.
        let pairs16 = |at: usize| {
            debug_assert!(at + 17 <= code.len());
            // SAFETY: callers pass `at` with `at + 17 <= code.len()`, so
            // both unaligned 16-byte loads (at `at` and `at + 1`) read
            // bytes of `code`; `loadu` needs no alignment.
            unsafe {
                let p = code.as_ptr().add(at);
                let a = _mm_loadu_si128(p.cast::<__m128i>());
                let b = _mm_loadu_si128(p.add(1).cast::<__m128i>());
                _mm_and_si128(_mm_cmpeq_epi8(a, pop), _mm_cmpeq_epi8(b, ret))
            }
        };
        // SAFETY: SSE2, as above.
        let mask = |v: __m128i| unsafe { _mm_movemask_epi8(v) } as u32;
        // SAFETY: SSE2, as above.
        let or = |a: __m128i, b: __m128i| unsafe { _mm_or_si128(a, b) };
        while i + 65 <= code.len() {
            let lo = or(pairs16(i), pairs16(i + 16));
            let hi = or(pairs16(i + 32), pairs16(i + 48));
            if mask(or(lo, hi)) != 0 {
                break;
            }
            i += 64;
        }
        while i + 17 <= code.len() {
            let m = mask(pairs16(i));
            if m != 0 {
                return Some(i + m.trailing_zeros() as usize);
            }
            i += 16;
        }
        // The last pairs (starting below `i + 16`, so at most at the last
        // window's start plus 15): the window that ends the code, less
        // the starts before `i`.
        if let Some(last) = code.len().checked_sub(17) {
            if i < code.len() {
                return match mask(pairs16(last)) >> (i - last) {
                    0 => None,
                    m => Some(i + m.trailing_zeros() as usize),
                };
            }
        }
    }
    while let Some(pair) = code.get(i..i + 2) {
        if pair == X86_POP_RET {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn word(code: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(code.get(at..at + 4)?.try_into().ok()?))
}

fn aarch64_rules(r: &mut Rules<'_>, code: &[u8]) {
    if word(code, 0) != Some(A64_STP_FRAME) || word(code, 4) != Some(A64_MOV_FP_SP) {
        return;
    }
    r.advance(4);
    r.op(&[
        DW_CFA_DEF_CFA_OFFSET,
        16,
        DW_CFA_OFFSET | A64_FP,
        2,
        DW_CFA_OFFSET | A64_LR,
        1,
    ]);
    r.advance(8);
    r.op(&[DW_CFA_DEF_CFA_REGISTER, A64_FP]);
    // Each `ldp x29, x30, [sp], #16; ret`: the `ret` runs with CFA = sp.
    let mut i = 8;
    while i + 8 <= code.len() {
        if word(code, i) == Some(A64_LDP_FRAME) && word(code, i + 4) == Some(A64_RET) {
            r.advance(i as u64 + 4);
            r.op(&[DW_CFA_REMEMBER_STATE]);
            r.def_cfa(A64_SP, 0);
            r.op(&[DW_CFA_RESTORE | A64_FP, DW_CFA_RESTORE | A64_LR]);
            if i + 8 < code.len() {
                r.advance(i as u64 + 8);
                r.op(&[DW_CFA_RESTORE_STATE]);
            }
            i += 8;
        } else {
            i += 4;
        }
    }
}

/// A `.eh_frame` table registered with the process's unwinder; dropping
/// it deregisters the table (before its bytes are freed).
pub struct FrameRegistration {
    /// Kept at a fixed address while registered.
    bytes: Box<[u8]>,
    registered: bool,
}

impl fmt::Debug for FrameRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameRegistration({} bytes)", self.bytes.len())
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// libgcc: registers every CIE/FDE of a zero-terminated `.eh_frame`.
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
    /// libgcc: registers, as one object kept in `ob`, every `.eh_frame`
    /// table of a null-terminated array of pointers to tables.
    fn __register_frame_info_table(begin: *const usize, ob: *mut u8);
    /// libgcc: undoes `__register_frame_info_*`; returns its object.
    fn __deregister_frame_info(begin: *const u8) -> *mut u8;
}

/// The registration entry points of the unwinder that the rest of the
/// process uses: `backtrace(3)` (which loads `libgcc_s.so.1` itself), C++
/// exceptions (libstdc++ links it) and Rust code linked with it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
struct Unwinder {
    register_frame: unsafe extern "C" fn(*const u8),
    deregister_frame: unsafe extern "C" fn(*const u8),
    register_frame_info_table: unsafe extern "C" fn(*const usize, *mut u8),
    deregister_frame_info: unsafe extern "C" fn(*const u8) -> *mut u8,
}

/// The process's unwinder, found once: the shared `libgcc_s.so.1`,
/// loaded if the program has not loaded it yet, else (a static program,
/// or no such library) the one linked into this program.
///
/// A program may link libgcc's unwinder statically and still run with
/// the shared one loaded later: the `kiln` binary does (see `build.rs`:
/// it starts faster without `libgcc_s.so.1`), and `backtrace(3)` then
/// loads the shared library and walks with it. Registering with the
/// statically linked copy would leave compiled frames unknown to that
/// walk; where the program links the shared library, both are the same.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn unwinder() -> &'static Unwinder {
    static UNWINDER: std::sync::OnceLock<Unwinder> = std::sync::OnceLock::new();
    UNWINDER.get_or_init(|| {
        shared_unwinder().unwrap_or(Unwinder {
            register_frame: __register_frame,
            deregister_frame: __deregister_frame,
            register_frame_info_table: __register_frame_info_table,
            deregister_frame_info: __deregister_frame_info,
        })
    })
}

/// The entry points of the shared `libgcc_s.so.1` (loaded now if it is
/// not yet; never unloaded), or `None` (a statically linked program: a
/// second C library would come with it).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn shared_unwinder() -> Option<Unwinder> {
    if cfg!(target_feature = "crt-static") {
        return None;
    }
    // SAFETY: dlopen and dlsym get NUL-terminated literals. Loading
    // libgcc_s runs no code of ours; the handle is never closed, so the
    // addresses stay valid for the life of the process. Each symbol, when
    // found, is libgcc's function of the signature declared above.
    unsafe {
        let h = libc::dlopen(
            c"libgcc_s.so.1".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NODELETE,
        );
        if h.is_null() {
            return None;
        }
        let sym = |name: &std::ffi::CStr| {
            let p = libc::dlsym(h, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        Some(Unwinder {
            register_frame: std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(*const u8)>(
                sym(c"__register_frame")?,
            ),
            deregister_frame: std::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*const u8),
            >(sym(c"__deregister_frame")?),
            register_frame_info_table: std::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*const usize, *mut u8),
            >(sym(c"__register_frame_info_table")?),
            deregister_frame_info: std::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*const u8) -> *mut u8,
            >(sym(c"__deregister_frame_info")?),
        })
    }
}

/// Room for libgcc's `struct object` (48 bytes on 64-bit hosts; twice
/// that, to spare any other layout).
pub(crate) const OBJECT_WORDS: usize = 16;

/// Registers the tables of `tables` (pointers to zero-terminated
/// `.eh_frame` tables, then 0) with the system unwinder as one object kept
/// in `object`; returns whether it was registered (not where the unwinder
/// has no registration entry point).
///
/// # Safety
/// Every table is well formed and describes code of this process; the
/// array, the tables (and the CIEs they point at) and `object` stay at
/// their addresses, unchanged, until [`deregister_tables`] is called with
/// the same array.
pub(crate) unsafe fn register_tables(
    tables: *const usize,
    object: &mut [u64; OBJECT_WORDS],
) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as the caller promises; `object` has room for libgcc's
        // object, which it fills in.
        unsafe { (unwinder().register_frame_info_table)(tables, object.as_mut_ptr().cast()) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (tables, object);
        false
    }
}

/// Undoes [`register_tables`].
///
/// # Safety
/// `tables` was registered by [`register_tables`] (which returned `true`)
/// and not deregistered since.
pub(crate) unsafe fn deregister_tables(tables: *const usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as the caller promises. The object returned is the caller's
    // storage, not libgcc's.
    unsafe {
        (unwinder().deregister_frame_info)(tables.cast());
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = tables;
}

/// Registers the zero-terminated `.eh_frame` table that starts at
/// `begin` with the system unwinder; returns whether it was registered
/// (not where the unwinder has no registration entry point).
///
/// # Safety
/// `begin` points at a well-formed, zero-terminated `.eh_frame` whose FDEs
/// describe code of this process; its bytes stay at this address,
/// unchanged, until [`deregister_table`] is called with the same pointer.
pub(crate) unsafe fn register_table(begin: *const u8) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as the caller promises.
        unsafe { (unwinder().register_frame)(begin) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = begin;
        false
    }
}

/// Undoes [`register_table`].
///
/// # Safety
/// `begin` was registered by [`register_table`] (which returned `true`)
/// and not deregistered since.
pub(crate) unsafe fn deregister_table(begin: *const u8) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as the caller promises.
    unsafe {
        (unwinder().deregister_frame)(begin)
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = begin;
}

impl FrameRegistration {
    /// Registers `eh_frame` (from [`eh_frame`], for code of the host ISA
    /// running in this process). Where the unwinder has no registration
    /// entry point the table is kept but not registered.
    pub fn register(eh_frame: Vec<u8>) -> FrameRegistration {
        let bytes = eh_frame.into_boxed_slice();
        // SAFETY: `bytes` is a well-formed, zero-terminated `.eh_frame`
        // whose FDEs describe code of this process (the caller's
        // contract); the box stays at this address, unchanged, until
        // `drop` deregisters it.
        let registered = bytes.len() > 4 && unsafe { register_table(bytes.as_ptr()) };
        FrameRegistration { bytes, registered }
    }

    /// The registered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for FrameRegistration {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: `bytes` was registered by `register` at this very
            // address and not deregistered since.
            unsafe { deregister_table(self.bytes.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_ret_scan_matches_a_plain_scan() {
        // Pairs at every position relative to the 16- and 64-byte steps
        // (and across them), overlapping candidates (`5d 5d c3`, `5d c3
        // 5d c3`), lone halves, and bytes one off either half.
        let mut code = Vec::new();
        for i in 0..200u32 {
            // Stretches without pairs between (the 64-byte steps).
            let dense = i < 40 || (150..165).contains(&i);
            code.push(match i % 13 {
                _ if !dense => (i * 37) as u8 | 1,
                0 | 5 | 6 | 9 => 0x5d,
                1 | 7 | 10 => 0xc3,
                3 => 0x5c,
                4 => 0xc4,
                _ => (i * 37) as u8,
            });
        }
        code[31] = 0x5d;
        code[32] = 0xc3;
        code[63] = 0x5d;
        code[64] = 0xc3;
        code[127] = 0x5d;
        code[128] = 0xc3;
        for len in 0..code.len() {
            let c = &code[..len];
            for from in 0..len + 2 {
                let want: Vec<usize> = (from..len.saturating_sub(1))
                    .filter(|&k| c[k] == 0x5d && c[k + 1] == 0xc3)
                    .collect();
                let mut got = Vec::new();
                let mut at = from;
                while let Some(k) = find_pop_ret(c, at) {
                    got.push(k);
                    at = k + 1;
                }
                assert_eq!(got, want, "len {len} from {from}");
            }
        }
    }

    #[test]
    fn every_x86_epilogue_gets_its_rule() {
        // push rbp; mov rbp, rsp; push rbx; ...; pop rbx; pop rbp; ret;
        // an immediate holding 5d c3 mid-word; pop rbp; ret at the end.
        let mut code = vec![0x55, 0x48, 0x89, 0xe5, 0x53, 0x90, 0x90];
        code.extend([0x5b, 0x5d, 0xc3]);
        code.extend([0xb8, 0x5d, 0xc3, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90]);
        code.extend([0x5d, 0xc3]);
        let mut naive = Vec::new();
        let mut i = 5;
        while i + 1 < code.len() {
            if code[i] == 0x5d && code[i + 1] == 0xc3 {
                naive.push(i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        assert_eq!(naive, vec![9, 12, 20]);
        let table = eh_frame(
            UnwindIsa::X86_64,
            &[UnwindFunc {
                address: 0x1000,
                code: &code,
            }],
        );
        // One remember-state per epilogue, one restore-state per epilogue
        // not at the end.
        let fde = &table[table[0] as usize + 4..];
        let count = |op: u8| fde.iter().filter(|&&b| b == op).count();
        assert_eq!(count(DW_CFA_REMEMBER_STATE), 3);
        assert_eq!(count(DW_CFA_RESTORE_STATE), 2);
    }
}
