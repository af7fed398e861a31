//! The single-pass baseline code generator for x86-64 (opt level `none`).
//!
//! The multi-pass pipeline (lower → machine function over vregs → liveness
//! → linear scan → move resolution → emit) spends about 4,300 host
//! instructions per IR instruction; tuning it bought ~1%. This generator
//! follows TPDE's shape instead: it works on the IR itself, in three
//! sweeps over flat per-value / per-instruction arrays, with no machine
//! function, no vregs and no interval structures:
//!
//! 1. **analysis** ([`Fast::analyze`]): numbers the instructions in the
//!    block order of [`Decisions`] (reverse postorder, every loop
//!    contiguous) and computes, per value, its range `[start, end]` in
//!    that numbering: from its definition to its last use, a use inside a
//!    loop that does not contain the definition extended to the loop's
//!    last instruction (the value must survive the back edge); a block
//!    parameter's range also covers every jump into its block (the jump
//!    writes it). A fused compare's operands are used at its branch. The
//!    same sweep decides whether the function is supported at all; if not,
//!    the caller compiles it through the multi-pass pipeline.
//! 2. **allocation** ([`Fast::allocate`]): Poletto–Sarkar with one range
//!    per value: in instruction order, each value gets one *home* (a
//!    register or an 8-byte stack slot) for its whole range when the range
//!    starts, from the registers whose previous holders have ended (a
//!    bucket list per end position frees them). A range that crosses a
//!    call gets a callee-saved register or a slot; a result prefers its
//!    dying first operand's register (two-address forms need no copy), a
//!    block parameter its argument's. A block ending in a `jmp` borrows
//!    the registers of target parameters the jump does not read, from
//!    their last use in the block on, for values that end in the block,
//!    the argument passed for each first (`%i2 = add %i, 1; jmp
//!    loop(%i2)` is one `add` in `%i`'s register; see `Lend`). Since a
//!    value never moves, block edges need only the block-argument
//!    parallel move and nothing is fixed up afterwards.
//! 3. **emission** (`emit`): each IR instruction straight from its
//!    operands' homes (register, `[rbp + off]` or immediate) into the
//!    byte encoder (`enc`; dynasm's assembler cost several times more per
//!    instruction), with `rax` and `r11` kept out of the pool as scratch
//!    (division, large immediates, memory-to-memory moves, cycle breaking
//!    in parallel moves, of xmm homes too); `rcx` and `rdx` are in the
//!    pool except for values whose range contains a division or a shift
//!    by a register; `xmm14` and `xmm15` are the float scratch registers.
//!
//! The frame is the one of `emit.rs` (`push rbp; mov rbp, rsp`, pushes of
//! the callee-saved registers used, `sub rsp`, slot `n` at
//! `rbp - 8*saved - 8*(n+1)`), so the unwinder's CFI (read from the
//! prologue), trap stubs, line tables and relocations work unchanged.
//!
//! Checked: in debug builds and on the `x86_64-checked` target, the
//! allocation is verified by [`super::fast_check`] (independently of the
//! ranges computed here) before any code is emitted.
//!
//! Supported so far: `i32`/`i64` values, the integer ALU (immediates
//! folded), shifts, compares (fused into `br`), `select`, `sext`, `zext`,
//! `trunc`, division and remainder (with their traps; by a literal through
//! multiply-high), loads and stores,
//! `addr`, `alloca`, direct and indirect calls (System V: integer and
//! float arguments in their registers, the rest in the outgoing stack
//! area; parameters likewise), `jmp`/`br` with block arguments, `switch`
//! (a compare chain or a jump table), `ret`, `trap`; `f32`/`f64` values
//! (homes `xmm0`–`xmm13` or slots) with every float instruction
//! (`fast/float.rs`). AArch64 always uses the multi-pass pipeline.

use crate::compiled::CompiledModule;
use crate::error::Result;
use crate::ir::{
    Block, Callee, Function, InstKind, Module, Opcode, Operand, SymbolData, Type, Value,
};
use crate::lower::analysis::Decisions;

const NONE: u32 = u32::MAX;
/// Homes below 16 are integer registers (hardware number), from 16 to 31
/// xmm registers (`home - XMM0`); from this one on, stack slot
/// `home - SLOT0`. Register masks have one bit per register home.
pub const SLOT0: u32 = 32;
/// The home of `xmm0`.
pub const XMM0: u32 = 16;
/// The home of an `add.i64` folded into the address of the load or store
/// right after it (its only use): no register, nothing emitted
/// (`fast/mem.rs`).
pub const FOLDED: u32 = u32::MAX - 1;

/// Caller-saved integer registers in the pool: `rsi`, `rdi`, `r8`–`r10`,
/// and `rcx`, `rdx` (see [`FIXED`]).
pub const POOL_CALLER: u32 = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | FIXED;
/// `rcx` and `rdx`: never the home of a value whose range contains a
/// division or a shift by a register, which use them.
pub const FIXED: u32 = (1 << 1) | (1 << 2);
/// Callee-saved integer registers in the pool: `rbx`, `r12`–`r15`.
pub const POOL_CALLEE: u32 = (1 << 3) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15);
/// The xmm registers in the pool: `xmm0`–`xmm13` (all caller-saved in
/// System V: a float value whose range crosses a call lives in a slot);
/// `xmm14` and `xmm15` are scratch.
pub const POOL_XMM: u32 = 0x3fff << XMM0;
/// System V integer argument registers.
const ARGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
/// The register an indirect callee is moved to with the arguments
/// (caller-saved, not an argument register: free at a call).
const CALLEE_REG: u8 = 10;

/// Per-function state of the fast generator, buffers reused between
/// functions.
#[derive(Default)]
pub struct Fast {
    /// Per order position: number of its first and last instruction.
    first: Vec<u32>,
    last: Vec<u32>,
    /// Per order position: innermost loop header position containing it.
    loop_hdr: Vec<u32>,
    /// Per header position: its parent loop's header position.
    loop_parent: Vec<u32>,
    /// Per value: its range and what allocating it needs, in one array
    /// (one cache line holds four values: the sweeps touch the values an
    /// instruction uses, mostly recent ones, and each needs several
    /// fields).
    vals: Vec<Val>,
    /// Per value: home (`NONE`: none).
    pub home: Vec<u32>,
    /// Per instruction number: what allocation needs of it (see [`Rec`]),
    /// so that allocation never reads the 64-byte `InstData` nor the
    /// value types again (at 100k instructions each such sweep streamed
    /// megabytes from memory).
    recs: Vec<Rec>,
    /// Numbers of the call instructions, ascending.
    calls: Vec<u32>,
    /// Numbers of the instructions that use `rcx`/`rdx` (divisions, shifts
    /// by a register), ascending.
    fixed: Vec<u32>,
    /// Per instruction number: first value whose range ends there (the
    /// next one: [`Val::exp_next`]).
    exp_head: Vec<u32>,
    /// Free stack slots with the range end of their last value, in the
    /// order they were freed (so with ascending ends: values are freed at
    /// their ends, in instruction order), from `free_head` on (a queue
    /// taken from both ends; the entries before `free_head` are taken).
    free_slots: Vec<(u32, u32)>,
    free_head: usize,
    /// Stack slots used.
    pub num_slots: u32,
    /// `(size, align)` of each `alloca`, in emission order, and the `rbp`
    /// offset of each once the frame is laid out.
    allocas: Vec<(u64, u64)>,
    alloca_at: Vec<i64>,
    /// Bytes of outgoing stack arguments (a multiple of 16).
    outgoing: u64,
    /// Callee-saved registers used (bit per hardware number).
    pub callee_used: u32,
    /// Per function parameter: where the caller passes it.
    params: Vec<crate::lower::abi::ArgLoc>,
    params_tmp: Vec<crate::lower::abi::ArgLoc>,
    /// Per call instruction in order: its arguments' locations, from
    /// `call_locs_at[k]` on.
    pub call_locs: Vec<crate::lower::abi::ArgLoc>,
    pub call_locs_at: Vec<u32>,
    /// Per register (hardware number; xmm `16 + n`): the value last given
    /// it (see [`Fast::steal`]).
    reg_owner: [u32; 32],
    /// Per register: the range end of the value last given it, so that
    /// [`Fast::steal`] scans one small array instead of loading each
    /// owner's home and end.
    reg_end: [u32; 32],
    /// Compares tested by their own block's `br` (see [`Cand`]).
    cands: Vec<Cand>,
    /// The current block's compares: `(instruction, result, number)`.
    cmps: Vec<(u32, u32, u32)>,
    /// Registers lent by dead block parameters (see [`Lend`]), in block
    /// order.
    lends: Vec<Lend>,
    /// The current block's lends not yet active: `(from, parameter,
    /// register)`.
    pending: Vec<(u32, u32, u32)>,
    /// The current block's jump arguments and the registers of the
    /// parameters they are passed to (their preferred homes).
    arg_hints: Vec<(u32, u32)>,
    /// Registers lent now (free for a value whose range ends in the
    /// current block), and every register lent in the current block
    /// (never a spill victim there: its borrowers would lose it).
    lent: u32,
    lent_all: u32,
    /// The current block's last instruction (borrowers end by then).
    lend_end: u32,
    // Emission.
    code: enc::Code,
    relocs: Vec<(usize, crate::reloc::RelocKind, String, i64)>,
    saved: Vec<u8>,
    moves: Vec<(u32, Src)>,
    pm: emit::ParMove,
}

/// Per value: what the analysis computes and the allocation reads.
#[derive(Clone, Copy)]
struct Val {
    /// The range `[start, end]` (`NONE`: not yet seen).
    start: u32,
    end: u32,
    /// Order position of the defining block.
    def_pos: u32,
    /// The next value whose range ends at the same instruction (a list
    /// from [`Fast::exp_head`]).
    exp_next: u32,
}

impl Val {
    const NEW: Val = Val {
        start: NONE,
        end: NONE,
        def_pos: 0,
        exp_next: NONE,
    };
}

/// Per instruction: its result to give a home and its preferred home's
/// source, from the analysis.
#[derive(Clone, Copy)]
struct Rec {
    /// The result (`NONE`: none, or a compare fused into its branch).
    r: u32,
    /// The first operand of a unary or binary instruction if it is a
    /// value ([`A_NONE`]: none; the result prefers its home), with the
    /// flags [`R_FLOAT`] and [`R_FOLDS`].
    a: u32,
}

/// [`Rec::a`]: the value bits, and their value for "none" (functions with
/// more values fall back to the pipeline).
const A_NONE: u32 = (1 << 30) - 1;
/// [`Rec::a`]: the result is an `f32`/`f64`.
const R_FLOAT: u32 = 1 << 31;
/// [`Rec::a`]: the result folds into the next instruction's address if
/// that is its only use ([`mem::folds`]).
const R_FOLDS: u32 = 1 << 30;

/// A block parameter `p` dead in block `k` from instruction `from` on: the
/// block ends with a `jmp` to `p`'s block that does not read `p`, and
/// `from` is `p`'s last use in the block (or the block's first
/// instruction). Until that jump writes `p`, `p`'s register can hold
/// values defined from `from` on whose ranges end in the block (the
/// "borrowers"), and the jump argument `x` passed for `p` there
/// (`NONE`: a literal) prefers it: `%i2 = add %i, 1; jmp loop(%i2)`
/// is one `add` into `%i`'s register, with no copy at the jump.
#[derive(Clone, Copy)]
struct Lend {
    k: u32,
    from: u32,
    p: u32,
    x: u32,
}

/// A compare tested by the `br` ending its own block: fused into it if
/// that is its only use (known after the sweep: [`Decisions::fuse`]).
#[derive(Clone, Copy)]
struct Cand {
    /// The instruction, its result, its number, its branch's number, and
    /// its block's innermost loop header position (see [`Fast::ext`]).
    inst: u32,
    r: u32,
    n: u32,
    term: u32,
    h: u32,
}

/// An operand's location at emission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A register.
    R(u8),
    /// An xmm register.
    X(u8),
    /// A stack slot (`home - SLOT0`).
    S(u32),
    /// Constant bits.
    I(u64),
}

fn unsupported() -> Option<()> {
    None
}

/// Per-(opcode, suffix) facts of the sweep ([`FACTS`]): one load per
/// instruction instead of a `match` on the opcode (a jump the predictors
/// miss on straight-line code, where opcodes are random).
/// Supported here with this suffix (the operand types are the
/// verifier's; a `call` also needs [`call_supported`]).
const F_OK: u8 = 1;
/// A `call` (supported with any suffix if [`call_supported`]).
const F_CALL: u8 = 1 << 1;
/// The result is an `f32`/`f64` (a float instruction, not a compare).
const F_FLOAT: u8 = 1 << 2;
/// An integer or float comparison.
const F_CMP: u8 = 1 << 3;
/// Uses `rcx`/`rdx` (division and remainder).
const F_FIXED: u8 = 1 << 4;
/// Uses `rcx` when its second operand is a value (shifts).
const F_SHIFT: u8 = 1 << 5;
/// Bit positions of [`F_FIXED`] and [`F_SHIFT`].
const F_FIXED_BIT: u8 = 4;
const F_SHIFT_BIT: u8 = 5;

/// Suffix slots per opcode in [`FACTS`]: each [`Type`] at its code, none
/// at 4 (the byte of the `Option<Type>`).
const SLOTS: usize = 8;

/// The table slot of a suffix.
#[inline(always)]
fn slot(ty: Option<Type>) -> usize {
    match ty {
        Some(t) => t as usize,
        None => 4,
    }
}

/// The facts of opcode `op` with the suffix of slot `s` (see [`F_OK`]).
const fn facts(op: Opcode, s: usize) -> u8 {
    use Opcode::*;
    let int = s == Type::I32 as usize || s == Type::I64 as usize;
    let float = s == Type::F32 as usize || s == Type::F64 as usize;
    let some = s < 4;
    let ok = match op {
        Add | Sub | Mul | And | Or | Xor | Shl | Shr | Sar | Neg | Not | Eq | Ne | Slt | Sle
        | Sgt | Sge | Ult | Ule | Ugt | Uge | Sext | Zext | Trunc | Sdiv | Udiv | Srem | Urem
        | Load8s | Load8u | Load16s | Load16u | Load32s | Load32u | Switch => int,
        Fadd | Fsub | Fmul | Fdiv | Fneg | Fabs | Fsqrt | Feq | Fne | Flt | Fle | Fgt | Fge => {
            float
        }
        Copy | Select | Load | Store | Fext | Ftrunc | Sitof | Uitof | Ftosi | Ftoui | Bitcast => {
            some
        }
        Store8 | Store16 | Store32 | Addr | Alloca | Ret | Jmp | Br | Trap => true,
        Call => false,
    };
    let cmp = matches!(
        op,
        Eq | Ne | Slt | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Feq | Fne | Flt | Fle | Fgt | Fge
    );
    let mut f = 0;
    if ok {
        f |= F_OK;
    }
    if matches!(op, Call) {
        f |= F_CALL;
    }
    if float && !cmp {
        f |= F_FLOAT;
    }
    if cmp {
        f |= F_CMP;
    }
    if matches!(op, Sdiv | Udiv | Srem | Urem) {
        f |= F_FIXED;
    }
    if matches!(op, Shl | Shr | Sar) {
        f |= F_SHIFT;
    }
    f
}

/// Per opcode and suffix slot: [`facts`].
static FACTS: [[u8; SLOTS]; Opcode::ALL.len()] = {
    let mut t = [[0; SLOTS]; Opcode::ALL.len()];
    let mut k = 0;
    while k < Opcode::ALL.len() {
        let mut s = 0;
        while s < SLOTS {
            t[k][s] = facts(Opcode::ALL[k], s);
            s += 1;
        }
        k += 1;
    }
    t
};

/// Whether a `call` instruction `d` can be compiled here: an indirect
/// one, or a direct one to a symbol with a signature taking as many
/// arguments as given.
#[inline(never)]
fn call_supported(module: &Module, func: &Function, d: &crate::ir::InstData) -> bool {
    let InstKind::Call { callee, args } = &d.kind else {
        return false;
    };
    let args = func.args(*args);
    match callee {
        Callee::Direct(s) => match module.symbols.get(s.index()).and_then(|s| s.signature()) {
            Some(sig) => sig.params.len() == args.len(),
            None => false,
        },
        Callee::Indirect(_) => true,
    }
}

/// Of the registers in `lanes` (bit `r`: `ends[r]`), the lowest one whose
/// end is the latest, if that end is after `e`. Ends are instruction
/// numbers (below 2^30: [`Fast::analyze`] rejects longer functions).
#[inline]
fn latest_end(lanes: u32, ends: &[u32; 16], e: u32) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        // Sixteen lanes in four SSE2 vectors (part of the x86-64
        // baseline): mask, signed max (the ends are below 2^31), compare
        // back; no data-dependent branch per register (the scalar loop
        // spent ~140 host instructions per spill in it).
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_andnot_si128, _mm_castsi128_ps, _mm_cmpeq_epi32,
            _mm_cmpgt_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_movemask_ps, _mm_or_si128,
            _mm_set1_epi32, _mm_set_epi32, _mm_shuffle_epi32,
        };
        // SAFETY: SSE2 is always there on x86-64; each unaligned load
        // reads four of `ends`' sixteen `u32`s (`ends[4k..4k + 4]`).
        unsafe {
            let lb = _mm_set1_epi32(lanes as i32);
            let p = ends.as_ptr().cast::<__m128i>();
            let lane = |k: usize| {
                let b = 1i32 << (4 * k);
                let bits = _mm_set_epi32(b << 3, b << 2, b << 1, b);
                let m = _mm_cmpeq_epi32(_mm_and_si128(lb, bits), bits);
                _mm_and_si128(_mm_loadu_si128(p.add(k)), m)
            };
            let max = |a: __m128i, b: __m128i| {
                let gt = _mm_cmpgt_epi32(a, b);
                _mm_or_si128(_mm_and_si128(gt, a), _mm_andnot_si128(gt, b))
            };
            let v = [lane(0), lane(1), lane(2), lane(3)];
            let m = max(max(v[0], v[1]), max(v[2], v[3]));
            let m = max(m, _mm_shuffle_epi32::<0x4e>(m));
            let m = max(m, _mm_shuffle_epi32::<0xb1>(m));
            if _mm_cvtsi128_si32(m) as u32 <= e {
                debug_assert_eq!(latest_end_scalar(lanes, ends, e), None);
                return None;
            }
            let mut at = 0u32;
            for (k, &x) in v.iter().enumerate() {
                let eq = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, m)));
                at |= (eq as u32) << (4 * k);
            }
            // The max is above `e` >= 0 here: a masked-out lane (0) is
            // never equal to it.
            let best = at.trailing_zeros();
            debug_assert_eq!(Some(best), latest_end_scalar(lanes, ends, e));
            Some(best)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    latest_end_scalar(lanes, ends, e)
}

/// [`latest_end`] one register at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn latest_end_scalar(lanes: u32, ends: &[u32; 16], e: u32) -> Option<u32> {
    let (mut best, mut best_end) = (None, e);
    let mut m = lanes;
    while m != 0 {
        let r = m.trailing_zeros();
        m &= m - 1;
        if ends[r as usize] > best_end {
            best = Some(r);
            best_end = ends[r as usize];
        }
    }
    best
}

/// At a load or store (instruction `j` of the block whose instructions
/// are `insts`): if the instruction before it is an `add` that folds into
/// its address ([`mem::folds`]), flags that instruction's record (the
/// last one pushed) with [`R_FOLDS`]. Tested here rather than at each
/// `add`, so that only memory accesses branch on it.
#[inline]
fn fold_into(func: &Function, insts: &[crate::ir::Inst], j: usize, recs: &mut [Rec]) {
    let Some(prev) = j.checked_sub(1).and_then(|p| insts.get(p)) else {
        return;
    };
    let Some(pd) = func.insts.get(prev.index()) else {
        return;
    };
    if let (Some(r), Some(rec)) = (pd.result, recs.last_mut()) {
        if rec.r == r.0 && mem::folds(func, pd, r, insts, j - 1) {
            rec.a |= R_FOLDS;
        }
    }
}

impl Fast {
    /// The range end of a use at instruction `u` of a value defined in
    /// order position `db`, `h` the innermost loop header containing the
    /// use: `u`, or the last instruction of the outermost loop containing
    /// the use but not `db`.
    #[inline]
    fn ext(&self, dec: &Decisions, u: u32, mut h: u32, db: u32) -> u32 {
        let mut e = u;
        while h != NONE && h > db {
            e = self.last[dec.loop_end[h as usize] as usize - 1];
            h = self.loop_parent[h as usize];
        }
        e
    }

    /// A use of `op` at instruction `u` (`h`: the innermost loop header
    /// containing it, see [`Fast::ext`]): counted in `uses`, and a value's
    /// range end moves to cover it. `None`: not a value of the function.
    ///
    /// A literal is counted as a use of the sink, the extra last entry of
    /// `vals` and `uses` that nothing reads (see [`Fast::analyze`]): the
    /// same work as for a value instead of a branch on the operand's kind,
    /// which is random in straight-line code.
    #[inline(always)]
    fn use_op(
        &self,
        vals: &mut [Val],
        uses: &mut [u32],
        dec: &Decisions,
        op: Operand,
        u: u32,
        h: u32,
    ) -> Option<()> {
        let sink = vals.len() - 1;
        // A value's index must be below the sink's, a literal's is it.
        let (vi, end) = match op {
            Operand::Value(v) => (v.index(), sink),
            Operand::Const(_) => (sink, vals.len()),
        };
        if vi >= end {
            return None;
        }
        // (`uses` is as long as `vals`: see `Fast::sweep`.)
        uses[vi] += 1;
        self.extend(vals, dec, vi, u, h);
        Some(())
    }

    /// A use of value `vi` at instruction `u` (`h` as in
    /// [`Fast::use_op`]): its range end moves to cover it.
    #[inline(always)]
    fn extend(&self, vals: &mut [Val], dec: &Decisions, vi: usize, u: u32, h: u32) {
        let db = vals[vi].def_pos;
        // Most uses are in their definition's loop (or in none).
        let e = if h != NONE && h > db {
            self.ext(dec, u, h, db)
        } else {
            u
        };
        let end = &mut vals[vi].end;
        // `NONE + 1` wraps to 0: an unset end always moves.
        if end.wrapping_add(1) <= e {
            *end = e;
        }
    }

    /// Pass 1: numbering and ranges; `None` when the function uses
    /// something this generator does not support.
    ///
    /// The sweep also makes [`Decisions`]' per-instruction decisions
    /// (structure checks, use counts, compare fusion: see
    /// [`Decisions::compute_order`]), so the instructions are streamed
    /// once for both; on `None`, `dec` must be computed again.
    pub fn analyze(&mut self, module: &Module, func: &Function, dec: &mut Decisions) -> Option<()> {
        let nv = func.values.len();
        if nv >= A_NONE as usize || !dec.compute_order(func) {
            return unsupported();
        }
        let np = dec.order.len();
        // Numbering and loop nesting per position.
        self.first.clear();
        self.last.clear();
        self.loop_hdr.clear();
        self.loop_parent.clear();
        self.loop_parent.resize(np, NONE);
        let mut n = 0u32;
        let mut stack: smallvec::SmallVec<[u32; 8]> = smallvec::SmallVec::new();
        for (k, b) in dec.order.iter().enumerate() {
            let len = func.blocks[b.index()].insts.len() as u32;
            self.first.push(n);
            n += len;
            self.last.push(n - 1);
            while let Some(&h) = stack.last() {
                if dec.loop_end[h as usize] as usize <= k {
                    stack.pop();
                } else {
                    break;
                }
            }
            if dec.loop_end[k] != 0 {
                self.loop_parent[k] = stack.last().copied().unwrap_or(NONE);
                stack.push(k as u32);
            }
            self.loop_hdr.push(stack.last().copied().unwrap_or(NONE));
        }
        let total = n as usize;
        if total >= A_NONE as usize {
            // (Keeps the ends below 2^31 for `latest_end`.)
            return unsupported();
        }
        self.vals.clear();
        // One more: the sink of literal operands (see `Fast::use_op`), of
        // no block (no use extends it over a loop).
        self.vals.resize(nv + 1, Val::NEW);
        self.vals[nv].def_pos = NONE;
        self.home.clear();
        self.home.resize(nv, NONE);
        self.recs.clear();
        self.recs.reserve(total);
        self.calls.clear();
        self.cands.clear();
        self.lends.clear();
        self.allocas.clear();
        self.outgoing = 0;
        self.call_locs.clear();
        self.call_locs_at.clear();
        // Function parameters: defined before the first instruction.
        crate::lower::abi::assign_args_into(&func.sig.params, &ARGS, 8, &mut self.params);
        if self.params.len() != func.params.len() {
            return unsupported();
        }
        for &p in &func.params {
            self.vals[p.index()].start = 0;
            self.vals[p.index()].end = 0;
        }
        // The sweep gets the arrays it writes most as arguments (`noalias`
        // to the compiler: its stores do not force reloading `self`'s
        // fields).
        let mut vals = std::mem::take(&mut self.vals);
        let mut recs = std::mem::take(&mut self.recs);
        let mut uses = std::mem::take(&mut dec.uses);
        // The sink (`compute_order` reserved room for it).
        uses.push(0);
        // One entry per instruction, cut to those that use `rcx`/`rdx`
        // (the sweep writes each without a branch; what the entries hold
        // before does not matter, so only growth is zeroed).
        let mut fixed = std::mem::take(&mut self.fixed);
        fixed.resize(total, 0);
        let sw = self.sweep(
            module, func, dec, &mut vals, &mut recs, &mut uses, &mut fixed,
        );
        fixed.truncate(sw.unwrap_or(0));
        self.fixed = fixed;
        let mut swept = sw.map(|_| ());
        uses.truncate(nv);
        vals.truncate(nv);
        dec.uses = uses;
        self.recs = recs;
        if swept.is_some() {
            swept = self.fuse(module, func, dec, &mut vals);
        }
        self.vals = vals;
        swept?;
        self.exp_head.clear();
        self.exp_head.resize(total + 1, NONE);
        Some(())
    }

    /// After the sweep: the other blocks' checks and counts (see
    /// [`Decisions::other_blocks`]), then compare fusion. A fused
    /// compare's result gets no home, and its operands are read at its
    /// branch (the block's last instruction): their ranges extend there.
    /// The sweep recorded those uses at the compare; in the same block the
    /// extension is exact (see [`Fast::ext`]), and nothing the sweep
    /// decided read those ends in between (lends are decided in blocks
    /// ending in a `jmp`).
    fn fuse(
        &mut self,
        module: &Module,
        func: &Function,
        dec: &mut Decisions,
        vals: &mut [Val],
    ) -> Option<()> {
        dec.other_blocks(module, func).ok()?;
        dec.fuse();
        for j in 0..self.cands.len() {
            let c = self.cands[j];
            let i = c.inst as usize;
            let InstKind::Binary { args } = &func.insts[i].kind else {
                return unsupported();
            };
            if dec.uses[c.r as usize] != 1 {
                continue;
            }
            dec.fused[i] = true;
            self.recs[c.n as usize] = Rec { r: NONE, a: A_NONE };
            for a in args {
                if let Operand::Value(v) = a {
                    self.extend(vals, dec, v.index(), c.term, c.h);
                }
            }
        }
        Some(())
    }

    /// Pass 1's sweep over the instructions in order: ranges in `vals`,
    /// use counts in `uses`, a [`Rec`] per instruction pushed to `recs`,
    /// the numbers of the instructions that use `rcx`/`rdx` at the start
    /// of `fixed` (as long as the function; returns how many), and the
    /// function's calls, lends, allocas and fusion candidates (`cands`).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &mut self,
        module: &Module,
        func: &Function,
        dec: &Decisions,
        vals: &mut [Val],
        recs: &mut Vec<Rec>,
        uses: &mut [u32],
        fixed: &mut [u32],
    ) -> Option<usize> {
        // (So that one bounds check covers both in `Fast::use_op`.)
        let uses = uses.get_mut(..vals.len())?;
        let mut nfixed = 0;
        for (k, &b) in dec.order.iter().enumerate() {
            let bd = &func.blocks[b.index()];
            let first = self.first[k];
            for &p in &bd.params {
                let pi = p.index();
                vals[pi].def_pos = k as u32;
                if vals[pi].start == NONE {
                    if k == 0 {
                        return None;
                    }
                    vals[pi].start = first;
                }
                if vals[pi].end == NONE || vals[pi].end < first {
                    vals[pi].end = first;
                }
            }
            let term = self.last[k];
            let h = self.loop_hdr[k];
            self.cmps.clear();
            for (j, &i) in bd.insts.iter().enumerate() {
                let n = first + j as u32;
                let d = func.insts.get(i.index())?;
                let facts = FACTS[d.opcode as usize][slot(d.ty)];
                if facts & F_OK == 0 && (facts & F_CALL == 0 || !call_supported(module, func, d)) {
                    return None;
                }
                // Operand uses straight from the instruction's kind (no
                // per-operand closure or buffer), then what the kind adds.
                match &d.kind {
                    InstKind::Unary { arg } => self.use_op(vals, uses, dec, *arg, n, h)?,
                    InstKind::Binary { args } => {
                        self.use_op(vals, uses, dec, args[0], n, h)?;
                        self.use_op(vals, uses, dec, args[1], n, h)?;
                        // Divisions, and shifts by a value, use `rcx`/`rdx`:
                        // appended without a branch (`fixed` is as long as
                        // the function, see `Fast::analyze`).
                        let by_reg = matches!(args[1], Operand::Value(_)) as u8;
                        let fx = (facts >> F_FIXED_BIT | (facts >> F_SHIFT_BIT & by_reg)) & 1;
                        fixed[nfixed] = n;
                        nfixed += fx as usize;
                    }
                    InstKind::Select { args } => {
                        for &a in args {
                            self.use_op(vals, uses, dec, a, n, h)?;
                        }
                    }
                    InstKind::Load { ptr, .. } => {
                        self.use_op(vals, uses, dec, *ptr, n, h)?;
                        fold_into(func, &bd.insts, j, recs);
                    }
                    InstKind::Store { args, .. } => {
                        self.use_op(vals, uses, dec, args[0], n, h)?;
                        self.use_op(vals, uses, dec, args[1], n, h)?;
                        fold_into(func, &bd.insts, j, recs);
                    }
                    InstKind::Addr { sym } => {
                        if sym.index() >= module.symbols.len() {
                            return None;
                        }
                    }
                    InstKind::Trap => {}
                    &InstKind::Alloca { size, align } => self.allocas.push((size, align.max(1))),
                    InstKind::Call { callee, args } => {
                        if let Callee::Indirect(op) = callee {
                            self.use_op(vals, uses, dec, *op, n, h)?;
                        }
                        let args = func.args(*args);
                        for &a in args {
                            self.use_op(vals, uses, dec, a, n, h)?;
                        }
                        self.calls.push(n);
                        let stack = self.call_args(module, func, *callee, args);
                        self.outgoing = self.outgoing.max(stack as u64);
                    }
                    InstKind::Ret { value } => {
                        if let Some(v) = value {
                            self.use_op(vals, uses, dec, *v, n, h)?;
                        }
                    }
                    InstKind::Jmp { dest } => {
                        self.note_lends(vals, func, dest, k, n);
                        self.jump_uses(vals, uses, func, dec, dest, h, n)?
                    }
                    InstKind::Br {
                        cond,
                        then_dest,
                        else_dest,
                    } => {
                        self.use_op(vals, uses, dec, *cond, n, h)?;
                        // A compare of this block tested by its last
                        // instruction: fused if this is its only use.
                        if let (true, Operand::Value(c)) = (n == term, cond) {
                            for &(inst, r, at) in &self.cmps {
                                if r == c.0 {
                                    self.cands.push(Cand {
                                        inst,
                                        r,
                                        n: at,
                                        term,
                                        h,
                                    });
                                }
                            }
                        }
                        self.jump_uses(vals, uses, func, dec, then_dest, h, n)?;
                        self.jump_uses(vals, uses, func, dec, else_dest, h, n)?;
                    }
                    // No switch target takes arguments: only placement
                    // is checked.
                    InstKind::Switch {
                        value,
                        default,
                        cases,
                    } => {
                        self.use_op(vals, uses, dec, *value, n, h)?;
                        self.edge(vals, func, dec, *default, n)?;
                        for c in func.cases(*cases) {
                            self.edge(vals, func, dec, c.block, n)?;
                        }
                    }
                }
                // (A fused compare's record is reset by `Fast::fuse`.)
                let mut rec = Rec { r: NONE, a: A_NONE };
                if let Some(r) = d.result {
                    let ri = r.index();
                    // (Not the sink, the last entry.)
                    if ri + 1 >= vals.len() {
                        return None;
                    }
                    vals[ri].def_pos = k as u32;
                    vals[ri].start = n;
                    if vals[ri].end == NONE {
                        vals[ri].end = n;
                    }
                    rec.r = r.0;
                    if let InstKind::Binary {
                        args: [Operand::Value(a), _],
                    }
                    | InstKind::Unary {
                        arg: Operand::Value(a),
                    } = d.kind
                    {
                        rec.a = a.0;
                    }
                    if facts & F_CMP != 0 {
                        self.cmps.push((i.0, r.0, n));
                    }
                    // The result's type from the instruction (the
                    // verifier's rule: the suffix, `i32` for a compare,
                    // `i64` for `alloca`/`addr`, which have none), not
                    // from the value table.
                    let float = facts & F_FLOAT != 0;
                    debug_assert_eq!(float, func.values[ri].ty.is_float());
                    rec.a |= (float as u32) << R_FLOAT.trailing_zeros();
                    // (`R_FOLDS` is set by the load or store after it:
                    // `fold_into`.)
                }
                recs.push(rec);
            }
        }
        Some(nfixed)
    }

    /// Appends the argument locations of a call to `call_locs`; the
    /// bytes of stack arguments.
    fn call_args(
        &mut self,
        module: &Module,
        func: &Function,
        callee: Callee,
        args: &[Operand],
    ) -> u32 {
        let mut tys: smallvec::SmallVec<[Type; 8]> = smallvec::SmallVec::new();
        match callee {
            Callee::Direct(s) => {
                if let Some(sig) = module.symbols[s.index()].signature() {
                    tys.extend_from_slice(&sig.params);
                }
            }
            // A literal argument is passed as an i64 (as the pipeline does).
            Callee::Indirect(_) => {
                tys.extend(args.iter().map(|a| func.operand_type(*a, Type::I64)))
            }
        }
        let mut locs = std::mem::take(&mut self.params_tmp);
        let stack = crate::lower::abi::assign_args_into(&tys, &ARGS, 8, &mut locs);
        self.call_locs_at.push(self.call_locs.len() as u32);
        self.call_locs.extend_from_slice(&locs);
        self.params_tmp = locs;
        stack
    }

    /// A jump at `n` (in innermost loop `h`) to `dest`: its arguments are
    /// read there (counted in `uses`) and its parameters' ranges cover
    /// `n`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn jump_uses(
        &self,
        vals: &mut [Val],
        uses: &mut [u32],
        func: &Function,
        dec: &Decisions,
        dest: &crate::ir::BlockCall,
        h: u32,
        n: u32,
    ) -> Option<()> {
        for &a in func.args(dest.args) {
            self.use_op(vals, uses, dec, a, n, h)?;
        }
        self.edge(vals, func, dec, dest.block, n)
    }

    /// The `jmp` at `n` ending block `k` (before its own uses are
    /// recorded): each target parameter it does not read is dead from its
    /// last use in the block on (ranges so far end before the block or at
    /// a use in it: the block's only successor is the target, so the block
    /// is in no loop that leaves the parameter's definition out), see
    /// [`Lend`].
    fn note_lends(
        &mut self,
        vals: &[Val],
        func: &Function,
        dest: &crate::ir::BlockCall,
        k: usize,
        n: u32,
    ) {
        let args = func.args(dest.args);
        // A bad target is rejected by `edge` right after.
        let Some(target) = func.blocks.get(dest.block.index()) else {
            return;
        };
        let params = &target.params;
        // The argument scan is quadratic: long lists go without.
        if params.len() > 16 {
            return;
        }
        let first = self.first[k];
        for (j, &p) in params.iter().enumerate() {
            let e = vals[p.index()].end;
            if e == NONE || e >= n || args.contains(&Operand::Value(p)) {
                continue;
            }
            let x = match args.get(j) {
                Some(Operand::Value(x)) => x.0,
                _ => NONE,
            };
            self.lends.push(Lend {
                k: k as u32,
                from: e.max(first),
                p: p.0,
                x,
            });
        }
    }

    /// A jump at `n` into `target`: its parameters' ranges cover `n`.
    fn edge(
        &self,
        vals: &mut [Val],
        func: &Function,
        dec: &Decisions,
        target: Block,
        n: u32,
    ) -> Option<()> {
        if target.index() == 0 || dec.position(target).is_none() {
            return unsupported();
        }
        for &p in &func.blocks[target.index()].params {
            let pi = p.index();
            if vals[pi].start == NONE || vals[pi].start > n {
                vals[pi].start = n;
            }
            if vals[pi].end == NONE || vals[pi].end < n {
                vals[pi].end = n;
            }
        }
        Some(())
    }

    /// Gives `v` a home at its range start; `from_call` is the first call
    /// number it must survive if it is at or after its start, `hint` a
    /// preferred register.
    /// `float`: the value is an `f32`/`f64` (an xmm register or a slot).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn assign(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp_head: &mut [u32],
        v: usize,
        all_free: &mut u32,
        float: bool,
        crosses: bool,
        fixed: bool,
        hint: u32,
        now: u32,
        before: bool,
    ) {
        let mut avail = *all_free;
        // Lent registers (see `Lend`) for a value that ends in the block.
        let mut lend = if self.lent != 0 && vals[v].end <= self.lend_end {
            self.lent
        } else {
            0
        };
        if float {
            avail &= POOL_XMM;
            lend &= POOL_XMM;
        } else {
            avail &= !POOL_XMM;
            lend &= !POOL_XMM;
            if fixed {
                avail &= !FIXED;
                lend &= !FIXED;
            }
        }
        let free = &mut avail;
        // Every xmm register is caller-saved: a float range crossing a
        // call finds no register here.
        let caller = POOL_CALLER | POOL_XMM;
        if crosses {
            lend &= POOL_CALLEE;
        }
        let any = *free | lend;
        // A hinted lent register first; else a free one; a lent one
        // last (it keeps free registers for values that outlive the block).
        let pick = if hint < SLOT0
            && any & (1 << hint) != 0
            && (!crosses || POOL_CALLEE & (1 << hint) != 0)
        {
            hint
        } else if crosses {
            let c = *free & POOL_CALLEE;
            if c != 0 {
                c.trailing_zeros()
            } else if lend != 0 {
                lend.trailing_zeros()
            } else {
                NONE
            }
        } else if *free & caller & !FIXED != 0 {
            (*free & caller & !FIXED).trailing_zeros()
        } else if *free & caller != 0 {
            (*free & caller).trailing_zeros()
        } else if *free != 0 {
            free.trailing_zeros()
        } else if lend != 0 {
            lend.trailing_zeros()
        } else {
            NONE
        };
        let h = if pick != NONE && lend & (1 << pick) != 0 {
            // Borrowed: the lender keeps owning it (`release` gives it
            // back to the lent set).
            debug_assert_eq!(*all_free & (1 << pick), 0);
            self.lent &= !(1 << pick);
            pick
        } else if pick != NONE {
            *all_free &= !(1 << pick);
            self.callee_used |= (1 << pick) & POOL_CALLEE;
            self.reg_owner[pick as usize] = v as u32;
            self.reg_end[pick as usize] = vals[v].end;
            pick
        } else if let Some(r) = self.steal(vals, home, v, float, crosses, fixed, now) {
            r
        } else {
            let s = self.pop_free_slot().unwrap_or_else(|| {
                self.num_slots += 1;
                self.num_slots - 1
            });
            SLOT0 + s
        };
        home[v] = h;
        let e = vals[v].end;
        if e > now || (before && e == now) {
            vals[v].exp_next = exp_head[e as usize];
            exp_head[e as usize] = v as u32;
        }
    }

    /// No register for `v`: if the live value in one it could have ends
    /// later than `v` (the furthest such, as Poletto and Sarkar's linear
    /// scan spills), that value moves to a new stack slot for its whole
    /// range (nothing is emitted yet) and `v` takes its register. Without
    /// this the short temporaries of an inner loop went to slots while
    /// loop-invariant values kept the registers (lcs ran 1.34x slower).
    /// The victim's slot is a free one only if nothing used it during the
    /// victim's range so far, else a new one.
    #[allow(clippy::too_many_arguments)]
    fn steal(
        &mut self,
        vals: &[Val],
        home: &mut [u32],
        v: usize,
        float: bool,
        crosses: bool,
        fixed: bool,
        now: u32,
    ) -> Option<u32> {
        let e = vals[v].end;
        if e <= now {
            return None;
        }
        let mut allowed = if float {
            // Every xmm register is caller-saved.
            if crosses {
                0
            } else {
                POOL_XMM
            }
        } else if crosses {
            POOL_CALLEE
        } else {
            POOL_CALLER | POOL_CALLEE
        };
        if fixed {
            allowed &= !FIXED;
        }
        // A register lent in this block may hold a borrower.
        allowed &= !self.lent_all;
        // `reg_end[r]` is the end of `r`'s current owner if it still
        // holds it, else (freed, or never given) at most `now` < `e`: it
        // never wins. The victim: the allowed register with the latest
        // end after `e`, the lowest such.
        let base = if float { XMM0 } else { 0 };
        let ends: &[u32; 16] = self.reg_end[base as usize..base as usize + 16]
            .try_into()
            .unwrap();
        let best = match latest_end((allowed >> base) & 0xffff, ends, e) {
            Some(r) => base + r,
            None => return None,
        };
        let o = self.reg_owner[best as usize] as usize;
        debug_assert_eq!(home[o], best);
        // The victim's slot holds it over its whole range: a free slot
        // whose last value ended before that range starts (the one freed
        // first is the best candidate), else a new one.
        let slot = match self.free_slots.get(self.free_head) {
            Some(&(s, t)) if t < vals[o].start => {
                self.free_head += 1;
                s
            }
            _ => {
                self.num_slots += 1;
                self.num_slots - 1
            }
        };
        home[o] = SLOT0 + slot;
        self.reg_owner[best as usize] = v as u32;
        self.reg_end[best as usize] = e;
        Some(best)
    }

    fn release(&mut self, vals: &[Val], home: &[u32], v: usize, free: &mut u32) {
        let h = home[v];
        if h < SLOT0 {
            if self.reg_owner[h as usize] == v as u32 {
                *free |= 1 << h;
            } else {
                // A borrower: back to the lent set.
                debug_assert_ne!(self.lent_all & (1 << h), 0);
                self.lent |= 1 << h;
            }
        } else {
            self.free_slots.push((h - SLOT0, vals[v].end));
        }
    }

    /// The free slot freed last, if any.
    #[inline]
    fn pop_free_slot(&mut self) -> Option<u32> {
        if self.free_slots.len() > self.free_head {
            let s = self.free_slots.pop().map(|f| f.0);
            if self.free_slots.len() == self.free_head {
                self.free_slots.clear();
                self.free_head = 0;
            }
            s
        } else {
            None
        }
    }

    /// Whether a range from `s` (exclusive; inclusive when `incl`) to
    /// `e` (exclusive) contains a call; `ci` is the first call not before
    /// the current instruction.
    #[inline]
    fn crosses(&self, ci: usize, s: u32, e: u32, incl: bool) -> bool {
        let mut c = ci;
        while c < self.calls.len() && (self.calls[c] < s || (!incl && self.calls[c] == s)) {
            c += 1;
        }
        c < self.calls.len() && self.calls[c] < e
    }

    /// Whether `[s, e]` contains an instruction that uses `rcx`/`rdx`;
    /// `fi` is the first such instruction not before the current one.
    #[inline]
    fn crosses_fixed(&self, fi: usize, s: u32, e: u32) -> bool {
        let mut c = fi;
        while c < self.fixed.len() && self.fixed[c] < s {
            c += 1;
        }
        c < self.fixed.len() && self.fixed[c] <= e
    }

    /// Pass 2: a home for every value.
    pub fn allocate(&mut self, func: &Function, dec: &Decisions) {
        // The arrays the sweep reads and writes most, as arguments
        // (`noalias` to the compiler: a store through one does not force
        // reloading the others' pointers from `self`).
        let mut vals = std::mem::take(&mut self.vals);
        let mut home = std::mem::take(&mut self.home);
        let mut exp_head = std::mem::take(&mut self.exp_head);
        let recs = std::mem::take(&mut self.recs);
        self.alloc_sweep(func, dec, &mut vals, &mut home, &mut exp_head, &recs);
        self.vals = vals;
        self.home = home;
        self.exp_head = exp_head;
        self.recs = recs;
    }

    /// [`Fast::allocate`]'s sweep.
    #[inline(never)]
    fn alloc_sweep(
        &mut self,
        func: &Function,
        dec: &Decisions,
        vals: &mut [Val],
        home: &mut [u32],
        exp_head: &mut [u32],
        recs: &[Rec],
    ) {
        // Lets the compiler drop `home`'s bounds checks after `vals`' ones.
        let home = &mut home[..vals.len()];
        self.free_slots.clear();
        self.free_head = 0;
        self.num_slots = 0;
        self.callee_used = 0;
        self.reg_owner = [NONE; 32];
        self.reg_end = [0; 32];
        self.lent = 0;
        self.lent_all = 0;
        self.lend_end = 0;
        let mut free: u32 = POOL_CALLER | POOL_CALLEE | POOL_XMM;
        let mut ci = 0usize;
        let mut fi = 0usize;
        let mut lc = 0usize;
        for (j, &p) in func.params.iter().enumerate() {
            let pi = p.index();
            let cr = self.crosses(ci, 0, vals[pi].end, true);
            let fx = self.crosses_fixed(fi, 0, vals[pi].end);
            let hint = match self.params[j] {
                crate::lower::abi::ArgLoc::Int(r) => r as u32,
                crate::lower::abi::ArgLoc::Float(x) => XMM0 + x as u32,
                crate::lower::abi::ArgLoc::Stack(_) => NONE,
            };
            let fl = func.values[pi].ty.is_float();
            self.assign(
                vals, home, exp_head, pi, &mut free, fl, cr, fx, hint, 0, true,
            );
        }
        for (k, &b) in dec.order.iter().enumerate() {
            let bd = &func.blocks[b.index()];
            let first = self.first[k];
            while ci < self.calls.len() && self.calls[ci] < first {
                ci += 1;
            }
            while fi < self.fixed.len() && self.fixed[fi] < first {
                fi += 1;
            }
            let mut nc = self.calls.get(ci).copied().unwrap_or(NONE);
            let mut nf = self.fixed.get(fi).copied().unwrap_or(NONE);
            for &p in &bd.params {
                let pi = p.index();
                if home[pi] == NONE {
                    let cr = self.crosses(ci, first, vals[pi].end, true);
                    let fx = self.crosses_fixed(fi, first, vals[pi].end);
                    let fl = func.values[pi].ty.is_float();
                    self.assign(
                        vals, home, exp_head, pi, &mut free, fl, cr, fx, NONE, first, true,
                    );
                }
            }
            // This block's lends (its parameters, above, never borrow:
            // their ranges start before the block).
            self.lent = 0;
            self.lent_all = 0;
            self.pending.clear();
            self.arg_hints.clear();
            while let Some(&l) = self.lends.get(lc) {
                if l.k as usize != k {
                    break;
                }
                lc += 1;
                let h = home[l.p as usize];
                if h < SLOT0 {
                    self.lend_end = self.last[k];
                    self.pending.push((l.from, l.p, h));
                    if l.x != NONE {
                        self.arg_hints.push((l.x, h));
                    }
                }
            }
            let last = self.last[k];
            for n in first..=last {
                // `nc`/`nf`: the first call / fixed-register use not
                // before `n` (`NONE`: none), one compare per instruction.
                if nc < n {
                    while ci < self.calls.len() && self.calls[ci] < n {
                        ci += 1;
                    }
                    nc = self.calls.get(ci).copied().unwrap_or(NONE);
                }
                if nf < n {
                    while fi < self.fixed.len() && self.fixed[fi] < n {
                        fi += 1;
                    }
                    nf = self.fixed.get(fi).copied().unwrap_or(NONE);
                }
                // Free what ends here (nothing is added at `n` any more:
                // the list is read once).
                let mut v = exp_head[n as usize];
                while v != NONE {
                    let next = vals[v as usize].exp_next;
                    self.release(vals, home, v as usize, &mut free);
                    v = next;
                }
                if !self.pending.is_empty() {
                    self.activate_lends(home, n);
                }
                let rec = recs[n as usize];
                if rec.r != NONE {
                    let ri = rec.r as usize;
                    if rec.a & R_FOLDS != 0 && vals[ri].end == n + 1 {
                        // Used only as the next access's pointer.
                        home[ri] = FOLDED;
                    } else {
                        let a = rec.a & A_NONE;
                        let mut hint = if a != A_NONE { home[a as usize] } else { NONE };
                        // A jump argument: its parameter's register if lent
                        // (nothing is lent in most blocks, most of the time:
                        // no scan then).
                        if self.lent != 0 {
                            if let Some(&(_, h)) = self.arg_hints.iter().find(|a| a.0 == ri as u32)
                            {
                                if self.lent & (1 << h) != 0 {
                                    hint = h;
                                }
                            }
                        }
                        let e = vals[ri].end;
                        // (A call at `n` itself is not crossed.)
                        let cr = if nc != n {
                            nc < e
                        } else {
                            self.crosses(ci, n, e, false)
                        };
                        let fx = nf <= e;
                        debug_assert_eq!(fx, self.crosses_fixed(fi, n, e));
                        let fl = rec.a & R_FLOAT != 0;
                        self.assign(
                            vals, home, exp_head, ri, &mut free, fl, cr, fx, hint, n, false,
                        );
                        if vals[ri].end <= n {
                            self.release(vals, home, ri, &mut free);
                        }
                    }
                }
                // Only the terminator (last) can be a jump.
                if n < last {
                    continue;
                }
                let d = &func.insts[bd.insts[bd.insts.len() - 1].index()];
                match &d.kind {
                    InstKind::Jmp { dest } => {
                        self.edge_params(vals, home, exp_head, func, dest, &mut free, ci, fi, n)
                    }
                    InstKind::Br {
                        then_dest,
                        else_dest,
                        ..
                    } => {
                        self.edge_params(
                            vals, home, exp_head, func, then_dest, &mut free, ci, fi, n,
                        );
                        self.edge_params(
                            vals, home, exp_head, func, else_dest, &mut free, ci, fi, n,
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Lends the registers of the current block's parameters whose last
    /// use is at or before `n`, if they still hold them (a spill moves a
    /// parameter to a slot).
    fn activate_lends(&mut self, home: &[u32], n: u32) {
        let mut j = 0;
        while j < self.pending.len() {
            let (from, p, h) = self.pending[j];
            if from <= n {
                if home[p as usize] == h {
                    self.lent |= 1 << h;
                    self.lent_all |= 1 << h;
                }
                self.pending.swap_remove(j);
            } else {
                j += 1;
            }
        }
    }

    /// Homes for the parameters of `dest`'s block that a jump at `n`
    /// writes first (hint: the argument's home).
    #[allow(clippy::too_many_arguments)]
    fn edge_params(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp_head: &mut [u32],
        func: &Function,
        dest: &crate::ir::BlockCall,
        free: &mut u32,
        ci: usize,
        fi: usize,
        n: u32,
    ) {
        let params = &func.blocks[dest.block.index()].params;
        let args = func.args(dest.args);
        for (pk, &p) in params.iter().enumerate() {
            let pi = p.index();
            if home[pi] == NONE {
                let hint = match args.get(pk) {
                    Some(Operand::Value(a)) => home[a.index()],
                    _ => NONE,
                };
                let cr = self.crosses(ci, n, vals[pi].end, false);
                let fx = self.crosses_fixed(fi, n, vals[pi].end);
                let fl = func.values[pi].ty.is_float();
                self.assign(vals, home, exp_head, pi, free, fl, cr, fx, hint, n, false);
                if vals[pi].end <= n {
                    self.release(vals, home, pi, free);
                }
            }
        }
    }
}

mod divk;
mod emit;
mod enc;
mod float;
mod inst;
mod mem;
mod switch;

use emit::bad;

/// Compiles `func` (symbol `sym`) with the fast generator into `out`, or
/// returns `None` (nothing emitted) when it uses something unsupported.
/// `dec` is made here (see [`Decisions::compute_order`]); after `None` it
/// must be computed again ([`Decisions::compute`]).
pub fn compile(
    f: &mut Fast,
    module: &Module,
    sym: &SymbolData,
    func: &Function,
    dec: &mut Decisions,
    check: bool,
    out: &mut CompiledModule,
) -> Option<Result<()>> {
    if f.analyze(module, func, dec).is_none() {
        if std::env::var_os("KILN_FAST_TRACE").is_some() {
            eprintln!("fast: fallback @{}", func.name);
        }
        return None;
    }
    let dec = &*dec;
    f.allocate(func, dec);
    if check || cfg!(debug_assertions) {
        if let Err(e) = super::fast_check::check(func, dec, f) {
            // `KILN_FAST_DUMP=1`: each value's range and home, to debug
            // a rejected allocation.
            if std::env::var_os("KILN_FAST_DUMP").is_some() {
                for v in 0..func.values.len() {
                    eprintln!(
                        "v{v} {:?} [{}, {}] home {}",
                        func.value_name(Value(v as u32)),
                        f.vals[v].start,
                        f.vals[v].end,
                        f.home[v]
                    );
                }
            }
            return Some(Err(bad(func, &e)));
        }
    }
    Some(emit::emit(f, module, sym, func, dec, out))
}

#[cfg(test)]
mod tests {
    use super::{latest_end, latest_end_scalar};

    #[test]
    fn latest_end_picks_the_lowest_register_with_the_latest_end() {
        let mut ends = [0u32; 16];
        ends[3] = 50;
        ends[9] = 70;
        ends[12] = 70;
        // Ties: the lowest register; masked-out lanes never win.
        assert_eq!(latest_end(0xffff, &ends, 10), Some(9));
        assert_eq!(latest_end(0xffff & !(1 << 9), &ends, 10), Some(12));
        assert_eq!(latest_end(1 << 3, &ends, 10), Some(3));
        // Only ends after `e` count.
        assert_eq!(latest_end(1 << 3, &ends, 50), None);
        assert_eq!(latest_end(0xffff, &ends, 70), None);
        assert_eq!(latest_end(0, &ends, 1), None);
        // Large ends (below 2^30) compare as unsigned.
        ends[15] = (1 << 30) - 1;
        assert_eq!(latest_end(0xffff, &ends, 1), Some(15));
        // Against the scalar scan on pseudo-random inputs.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let lanes = next() as u32 & 0xffff;
            for end in ends.iter_mut() {
                *end = (next() % 40) as u32;
            }
            let e = (next() % 40) as u32 + 1;
            assert_eq!(
                latest_end(lanes, &ends, e),
                latest_end_scalar(lanes, &ends, e),
                "{lanes:#x} {ends:?} {e}"
            );
        }
    }
}
