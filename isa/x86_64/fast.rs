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
//!    the caller compiles it through the multi-pass pipeline. Then a
//!    backward walk drops the pure instructions whose results no compiled
//!    instruction uses (`fast/dead.rs`): no home, no code.
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
use crate::ir::{Block, Callee, Function, InstKind, Module, Operand, SymbolData, Type, Value};
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
/// The home of the result of an instruction that has no effect but its
/// result (no trap, memory access or call) when no compiled instruction
/// uses that result: the instruction is not compiled (no home, no code;
/// see `fast/dead.rs`).
pub const DEAD: u32 = u32::MAX - 2;

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
    /// Per order position: innermost loop header position containing it
    /// (0: none; the entry heads no loop here, see [`Fast::analyze`]), so
    /// that "a loop that does not contain the definition" is one compare
    /// (see [`Fast::extend`]).
    loop_hdr: Vec<u32>,
    /// Per header position: its parent loop's header position (0: none).
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
    /// by a register), ascending, then [`NONE`]; the entries after it are
    /// stale (never read: a [`Rec::f`] is at most their count).
    fixed: Vec<u32>,
    /// The instructions compiled, in order: every instruction but the
    /// [`DEAD`] ones (`fast/dead.rs`); block position `k`'s are from
    /// `live_at[k]` to `live_at[k + 1]`, numbered from `first[k]` on (the
    /// entries before `live_at[0]` are unused).
    pub live: Vec<crate::ir::Inst>,
    pub live_at: Vec<u32>,
    /// Beside [`Fast::live`], entry for entry: what the sweep needs of
    /// each compiled instruction (see [`Op`]), written by
    /// [`Fast::mark_live`] as it reads the instruction.
    ops: Vec<Op>,
    /// No instruction is dead: [`Fast::live`] holds each block's own
    /// instructions (emission visits those).
    pub all_live: bool,
    /// Per instruction number: what is released there (see [`Exp`]).
    exp: Vec<Exp>,
    /// Free stack slots with the range end of their last value, in the
    /// order they were freed (so with ascending ends: values are freed at
    /// their ends, in instruction order), from `free_head` on (a queue
    /// taken from both ends; the entries before `free_head` are taken).
    free_slots: Vec<(u32, u32)>,
    free_head: usize,
    /// Stack slots used.
    pub num_slots: u32,
    /// Results so far that found no free register (a steal or a slot):
    /// how often values in slots end, for [`Fast::allocate`]'s choice of
    /// its loop.
    spills: u32,
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
    /// Per register: the assignment number of the value last given it (its
    /// place in a release list if it is spilled: see [`Exp`]).
    reg_seq: [u32; 32],
    /// Assignments so far.
    seq: u32,
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
    /// Order position of the defining block. Allocation reuses it, for a
    /// value in a release list ([`Exp::head`]), as the number of its
    /// [`Fast::assign`] (the lists are in descending such order).
    def_pos: u32,
    /// The next value in the same release list (from [`Exp::head`]).
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

/// Per compiled instruction (in [`Fast::live`]'s order): what
/// [`Fast::mark_live`] read of its `InstData`, in the form the sweep
/// wants, so that the sweep's common path (binary and unary
/// instructions) never reads the 64-byte `InstData` again.
#[derive(Clone, Copy)]
struct Op {
    /// A binary instruction's operands, a unary one's in `a[0]`: a
    /// value's index, [`LIT`] for a literal (see [`Fast::use_index`]).
    /// Unused otherwise.
    a: [u32; 2],
    /// The result's index (the function's value count, the sink's: none;
    /// [`Fast::mark_live`] rejects a result that is not a value of the
    /// function).
    r: u32,
    /// The instruction's [`FACTS`].
    facts: u16,
}

impl Op {
    /// What a new entry holds until written (never read): zeros, so
    /// that growing the list is one `memset`.
    const NEW: Op = Op {
        a: [0; 2],
        r: 0,
        facts: 0,
    };
}

/// [`Op::a`]: a literal operand.
const LIT: u32 = u32::MAX;

/// Per instruction number: what is released when allocation reaches it.
///
/// A value that owns a register is freed by its bit in `free` (no list
/// walk, no branch per value: the number of values ending at an
/// instruction is what the sweep mispredicted most); a value in a slot or
/// in a borrowed register (see [`Lend`]) is in the list from `head`, in
/// descending order of assignment, the order in which the freed slots go
/// to the free-slot queue (which decides the slot numbers).
#[derive(Clone, Copy)]
struct Exp {
    /// Registers whose owners' ranges end here.
    free: u32,
    /// The first value of the list (`NONE`: none; next: [`Val::exp_next`]).
    head: u32,
}

impl Exp {
    const NEW: Exp = Exp {
        free: 0,
        head: NONE,
    };
}

/// Per instruction: its result to give a home and its preferred home's
/// source, from the analysis.
#[derive(Clone, Copy)]
struct Rec {
    /// The result (`NONE`: none, or a compare fused into its branch).
    r: u32,
    /// The first operand of a unary or binary instruction if it is a
    /// value (the result prefers its home); none: an index past the
    /// function's values ([`A_NONE`], or their count for a literal: the
    /// sink of [`Fast::use_op`]). With the flags [`R_FLOAT`] and
    /// [`R_FOLDS`].
    a: u32,
    /// The index in [`Fast::calls`] of the first call after this
    /// instruction (the calls up to it counted), and in [`Fast::fixed`]
    /// of the first use of `rcx`/`rdx` at or after it (the ones before
    /// it counted); past the list's end: none. So allocation knows
    /// whether a range from here crosses one with two loads, without
    /// cursors kept in step with the instructions. (Allocation turns them
    /// into the result's allowed registers and end in some blocks: see
    /// `Fast::block`.)
    c: u32,
    f: u32,
}

impl Rec {
    const NEW: Rec = Rec {
        r: NONE,
        a: A_NONE,
        c: 0,
        f: 0,
    };
}

/// [`Rec::a`]: the value bits, and their value for "none" (functions with
/// more values fall back to the pipeline).
const A_NONE: u32 = (1 << 29) - 1;
/// [`Rec::a`]: the instruction is [`F_PURE`] (see [`DEAD`]).
const R_PURE: u32 = 1 << 29;
/// [`Rec::a`]: the result is an `f32`/`f64`.
const R_FLOAT: u32 = 1 << 31;
/// [`F_PURE`] and [`F_FLOAT`] shifted by this are [`R_PURE`] and
/// [`R_FLOAT`] (checked at compile time).
const R_SHIFT: u32 = R_PURE.trailing_zeros() - F_PURE.trailing_zeros();
const _: () =
    assert!((F_PURE as u32) << R_SHIFT == R_PURE && (F_FLOAT as u32) << R_SHIFT == R_FLOAT);
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

/// Where [`Fast::sweep`] is, for [`Fast::other_inst`]: the block's order
/// position, its innermost loop header position (see [`Fast::ext`]) and
/// its last instruction's number.
#[derive(Clone, Copy)]
struct At {
    k: u32,
    h: u32,
    term: u32,
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

/// At a load or store (instruction `j` of the block whose instructions
/// are `insts` and records `recs`): if the instruction before it is an
/// `add` that folds into its address ([`mem::folds`]), flags that
/// instruction's record with [`R_FOLDS`]. Tested here rather than at each
/// `add`, so that only memory accesses branch on it.
#[inline]
fn fold_into(func: &Function, insts: &[crate::ir::Inst], j: usize, recs: &mut [Rec]) {
    let Some(p) = j.checked_sub(1) else {
        return;
    };
    let Some(pd) = insts.get(p).and_then(|prev| func.insts.get(prev.index())) else {
        return;
    };
    if let (Some(r), Some(rec)) = (pd.result, recs.get_mut(p)) {
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
    #[inline(never)]
    fn ext(&self, dec: &Decisions, u: u32, mut h: u32, db: u32) -> u32 {
        let mut e = u;
        // (0: no loop; below every definition's position.)
        while h > db {
            e = self.last[dec.loop_end[h as usize] as usize - 1];
            h = self.loop_parent[h as usize];
        }
        e
    }

    /// A use of `op` at instruction `u` (`h`: the innermost loop header
    /// containing it, see [`Fast::ext`]): a value's range end moves to
    /// cover it (its use was counted by [`Fast::mark_live`]). Its index in `vals`: the value's, the
    /// sink's for a literal. `None`: not a value of the function.
    ///
    /// A literal is taken as a use of the sink, the extra last entry of
    /// `vals` that nothing reads (see [`Fast::analyze`]): the
    /// same work as for a value instead of a branch on the operand's kind,
    /// which is random in straight-line code.
    #[inline(always)]
    fn use_op(
        &self,
        vals: &mut [Val],
        dec: &Decisions,
        op: Operand,
        u: u32,
        h: u32,
    ) -> Option<u32> {
        let len = vals.len();
        // (Invariant: hoisted out of the sweep's loops, or folded away.)
        if len == 0 {
            return None;
        }
        let sink = len - 1;
        // A value's index must be below the sink's, a literal's is it:
        // chosen without a branch (`select_unpredictable`: else the
        // compiler branches on the kind, to skip the literal's check).
        let (is_value, index) = match op {
            Operand::Value(v) => (true, v.index()),
            Operand::Const(_) => (false, 0),
        };
        let vi = std::hint::select_unpredictable(is_value, index, sink);
        let end = std::hint::select_unpredictable(is_value, sink, len);
        if vi >= end {
            return None;
        }
        // SAFETY: `vi < end <= len == vals.len()` (checked just above). Unchecked because the compiler does not derive
        // `vi < len` from `vi < end` (a second compare and branch per
        // operand).
        let v = unsafe { vals.get_unchecked_mut(vi) };
        let db = v.def_pos;
        // Most uses are in their definition's loop (or in none: `h` is 0).
        if h > db {
            self.extend_over_loops(v, dec, u, h);
        } else {
            // The sweep's uses come in ascending order, so the end so far
            // is before `u` (or unset): an end past `u` can only be the
            // last instruction of a loop containing an earlier use but not
            // the definition, and that loop contains `u` too, so `h > db`.
            // A plain store, no compare. (In a module the verifier rejects,
            // a use before the definition breaks this: its allocation is
            // then wrong, not unsafe; it may fail to compile, never panic.)
            v.end = u;
        }
        // (`vi < len <= A_NONE`: see `Fast::analyze`.)
        Some(vi as u32)
    }

    /// [`Fast::use_op`] of an operand given as in [`Op::a`]: a value's
    /// index, [`LIT`] for a literal (a use of the sink).
    #[inline(always)]
    fn use_index(
        &self,
        vals: &mut [Val],
        dec: &Decisions,
        raw: u32,
        u: u32,
        h: u32,
    ) -> Option<u32> {
        let len = vals.len();
        // (Invariant: hoisted out of the sweep's loops, or folded away.)
        if len == 0 {
            return None;
        }
        let sink = len as u32 - 1;
        // Not a value of the function (below the sink) nor `LIT`, which
        // wraps to 0: unsupported.
        if raw.wrapping_add(1) > sink {
            return None;
        }
        let vi = raw.min(sink);
        // SAFETY: `vi <= sink < len == vals.len()`.
        let v = unsafe { vals.get_unchecked_mut(vi as usize) };
        let db = v.def_pos;
        // (As in `Fast::use_op`.)
        if h > db {
            self.extend_over_loops(v, dec, u, h);
        } else {
            v.end = u;
        }
        Some(vi)
    }

    /// [`Fast::use_op`]'s use at `u` of a value defined outside the
    /// innermost loop `h` containing `u`: out of line (rare).
    #[inline(never)]
    fn extend_over_loops(&self, v: &mut Val, dec: &Decisions, u: u32, h: u32) {
        self.extend_val(v, dec, u, h);
    }

    /// A use of value `vi` at instruction `u` (`h` as in
    /// [`Fast::use_op`]): its range end moves to cover it.
    #[inline(always)]
    fn extend(&self, vals: &mut [Val], dec: &Decisions, vi: usize, u: u32, h: u32) {
        self.extend_val(&mut vals[vi], dec, u, h);
    }

    /// [`Fast::extend`] of the value `v`.
    #[inline(always)]
    fn extend_val(&self, v: &mut Val, dec: &Decisions, u: u32, h: u32) {
        let db = v.def_pos;
        // Most uses are in their definition's loop (or in none: `h` is 0).
        let e = if h > db { self.ext(dec, u, h, db) } else { u };
        let end = &mut v.end;
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
        self.loop_parent.resize(np, 0);
        // (So 0 can stand for "no loop" in `loop_hdr`; a jump to the entry
        // is unsupported anyway, see `Fast::edge`.)
        if dec.loop_end.first().is_some_and(|&e| e != 0) {
            return unsupported();
        }
        self.vals.clear();
        // One more: the sink of literal operands (see `Fast::use_op`), of
        // no block (no use extends it over a loop).
        self.vals.resize(nv + 1, Val::NEW);
        self.vals[nv].def_pos = NONE;
        self.home.clear();
        // (With allocation's stand-in past the values, see `Fast::block`.)
        self.home.resize(nv + 1, NONE);
        // Which instructions are compiled (the others' results get the
        // home `DEAD`): only those are numbered. Their uses are counted
        // there too, with a stand-in past the values for literals
        // (`compute_order` reserved room for it).
        let mut uses = std::mem::take(&mut dec.uses);
        uses.push(1);
        self.mark_live(func, dec, &mut uses)?;
        let mut n = 0u32;
        let mut stack: smallvec::SmallVec<[u32; 8]> = smallvec::SmallVec::new();
        for (k, w) in self.live_at.windows(2).enumerate() {
            let len = w[1] - w[0];
            // (A block ends in its terminator, never dead: see
            // `compute_order`.)
            if len == 0 {
                return unsupported();
            }
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
                self.loop_parent[k] = stack.last().copied().unwrap_or(0);
                stack.push(k as u32);
            }
            self.loop_hdr.push(stack.last().copied().unwrap_or(0));
        }
        let total = n as usize;
        if total >= A_NONE as usize {
            // (Keeps the ends below 2^31 for `latest_end`.)
            return unsupported();
        }
        // One record per instruction, each written by the sweep (so only
        // growth is filled, and the vector never shrinks: a small function
        // between two big ones would make the next big one fill it all
        // again; the passes cut it to the function's instructions).
        if self.recs.len() < total {
            self.recs.resize(total, Rec::NEW);
        }
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
        // At least one entry per instruction and one more; those that use
        // `rcx`/`rdx` at the start, then `NONE` (the sweep writes each
        // without a branch; what the entries hold before does not matter,
        // so only growth is zeroed; the list is never cut back, as a
        // module's next function, or the next module's, would zero it
        // again).
        let mut fixed = std::mem::take(&mut self.fixed);
        if fixed.len() <= total {
            fixed.resize(total + 1, 0);
        }
        let live = std::mem::take(&mut self.live);
        let ops = std::mem::take(&mut self.ops);
        let sw = self.sweep(
            module,
            func,
            dec,
            (&live, &ops),
            &mut vals,
            &mut recs,
            &mut fixed,
        );
        self.live = live;
        self.ops = ops;
        match sw {
            Some(n) => fixed[n] = NONE,
            None => fixed.clear(),
        }
        self.fixed = fixed;
        let mut swept = sw.map(|_| ());
        uses.truncate(nv);
        // (`vals` keeps the sink: allocation's stand-in for an empty
        // release list, see `Fast::block`; nothing puts it in one.)
        dec.uses = uses;
        self.recs = recs;
        if swept.is_some() {
            swept = self.fuse(module, func, dec, &mut vals);
        }
        self.vals = vals;
        swept?;
        self.exp.clear();
        self.exp.resize(total + 1, Exp::NEW);
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
            let rec = &mut self.recs[c.n as usize];
            (rec.r, rec.a) = (NONE, A_NONE);
            for a in args {
                if let Operand::Value(v) = a {
                    self.extend(vals, dec, v.index(), c.term, c.h);
                }
            }
        }
        Some(())
    }

    /// Pass 1's sweep over the compiled instructions in order (`live`,
    /// with their [`Op`]s, see [`Fast::mark_live`], which counted their
    /// uses): ranges in `vals`, a [`Rec`] per instruction number in `recs` (as long as the
    /// function),
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
        (live, ops): (&[crate::ir::Inst], &[Op]),
        vals: &mut [Val],
        recs: &mut [Rec],
        fixed: &mut [u32],
    ) -> Option<usize> {
        // (So that `Fast::use_op`'s own test folds away.)
        if vals.is_empty() {
            return None;
        }
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
            let at = At {
                k: k as u32,
                h,
                term,
            };
            // Its compiled instructions (see `Fast::mark_live`).
            let range = self.live_at[k] as usize..self.live_at[k + 1] as usize;
            let insts = live.get(range.clone())?;
            let ops = ops.get(range)?;
            // This block's records, and room for its entries in `fixed`
            // (each instruction appends at most one).
            let recs = recs.get_mut(first as usize..first as usize + insts.len())?;
            if nfixed + insts.len() > fixed.len() {
                return None;
            }
            // The terminator after the loop (`compute_order` checked that
            // it is there).
            let (&last_i, body) = insts.split_last()?;
            // (The sink's index: [`Op::r`] of an instruction without a
            // result.)
            let sink = vals.len() as u32 - 1;
            for (j, op) in ops.iter().take(body.len()).enumerate() {
                let n = first + j as u32;
                // (Before this instruction's entry, if any.)
                let f = nfixed as u32;
                let facts = op.facts;
                // The first operand if it is a value (the result prefers
                // its home), for unary and binary instructions.
                let mut a = A_NONE;
                // Operand uses straight from the instruction's `Op` (no
                // `InstData`, per-operand closure or buffer): the common
                // kinds here, the rest out of line (`Fast::other_inst`).
                // (Chosen by the opcode's format in `facts`; a kind that
                // does not match its opcode's format is unsupported:
                // `Fast::mark_live` checked it.)
                if facts & F_BIN != 0 {
                    a = self.use_index(vals, dec, op.a[0], n, h)?;
                    self.use_index(vals, dec, op.a[1], n, h)?;
                    // Divisions, and shifts by a value, use `rcx`/`rdx`:
                    // appended without a branch (the bit for the
                    // second operand's kind: one shift).
                    let by_value = (op.a[1] != LIT) as u16;
                    let fx = facts >> (F_FIXED_BIT + by_value) & 1;
                    // SAFETY: checked at the block's start that
                    // `fixed` has room for one entry per instruction of
                    // the block: `nfixed` grew by at most `j` since, so
                    // `nfixed < fixed.len()`.
                    unsafe { *fixed.get_unchecked_mut(nfixed) = n };
                    nfixed += fx as usize;
                } else if facts & F_UNARY != 0 {
                    a = self.use_index(vals, dec, op.a[0], n, h)?;
                } else {
                    self.other_inst(module, func, dec, vals, recs, insts, j, n, at)?;
                }
                let mut rec = self.def(vals, func, op.r, (insts, j), facts, a, n, k as u32)?;
                // (After this instruction's call, if it is one.)
                (rec.c, rec.f) = (self.calls.len() as u32, f);
                // SAFETY: `j < body.len() < insts.len() == recs.len()`
                // (`recs` is this block's records). Unchecked because the
                // compiler does not see it (a compare, a branch and a
                // spilled length per instruction).
                unsafe { *recs.get_unchecked_mut(j) = rec };
            }
            // The terminator: its kinds here (once per block), any other
            // out of line.
            let j = body.len();
            let n = first + j as u32;
            let d = func.insts.get(last_i.index())?;
            let facts = FACTS[d.opcode as usize][slot(d.ty)];
            if facts & F_OK == 0 && (facts & F_CALL == 0 || !call_supported(module, func, d)) {
                return None;
            }
            if !self.term_uses(func, dec, vals, d, n, at)? {
                self.other_inst(module, func, dec, vals, recs, insts, j, n, at)?;
            }
            let r = d
                .result
                .map_or(Some(sink), |r| (r.0 < sink).then_some(r.0))?;
            let mut rec = self.def(vals, func, r, (insts, j), facts, A_NONE, n, k as u32)?;
            (rec.c, rec.f) = (self.calls.len() as u32, nfixed as u32);
            recs[j] = rec;
        }
        Some(nfixed)
    }

    /// The sweep at instruction `j` of `insts` (`n` in the order, in
    /// block position `k`, `r` its result's index, the sink's for none,
    /// `facts` its [`FACTS`], `a` its first operand as [`Rec::a`] wants
    /// it) after its uses: its result's definition, and its record. (A
    /// fused compare's record is reset by `Fast::fuse`.)
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn def(
        &mut self,
        vals: &mut [Val],
        func: &Function,
        r: u32,
        (insts, j): (&[crate::ir::Inst], usize),
        facts: u16,
        a: u32,
        n: u32,
        k: u32,
    ) -> Option<Rec> {
        let mut rec = Rec::NEW;
        // (Not the sink, the last entry, nor past it.)
        if (r as usize) + 1 < vals.len() {
            let ri = r as usize;
            let v = &mut vals[ri];
            v.def_pos = k;
            v.start = n;
            // Its uses come after it in the order: none seen yet. (Not so
            // in a module the verifier rejects, see `Fast::use_op`.)
            v.end = n;
            rec.r = r;
            if facts & F_CMP != 0 {
                // (The instruction read only here: compares are rare.)
                let i = insts.get(j).map_or(NONE, |i| i.0);
                self.cmps.push((i, r, n));
            }
            // The result's type from the instruction (the verifier's rule:
            // the suffix, `i32` for a compare, `i64` for `alloca`/`addr`,
            // which have none), not from the value table.
            debug_assert_eq!(facts & F_FLOAT != 0, func.values[ri].ty.is_float());
            // (One shift puts both flags in place: see `F_FLOAT`.)
            rec.a = a | ((facts & (F_FLOAT | F_PURE)) as u32) << R_SHIFT;
            // (`R_FOLDS` is set by the load or store after it:
            // `fold_into`.)
        }
        Some(rec)
    }

    /// The uses of a terminator `d` (number `n`), and what its kind adds;
    /// `false`: `d` is of another kind (nothing done).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn term_uses(
        &mut self,
        func: &Function,
        dec: &Decisions,
        vals: &mut [Val],
        d: &crate::ir::InstData,
        n: u32,
        at: At,
    ) -> Option<bool> {
        let At { k, h, term } = at;
        match &d.kind {
            InstKind::Trap => {}
            InstKind::Ret { value } => {
                if let Some(v) = value {
                    self.use_op(vals, dec, *v, n, h)?;
                }
            }
            InstKind::Jmp { dest } => {
                self.note_lends(vals, func, dest, k as usize, n);
                self.jump_uses(vals, func, dec, dest, h, n)?
            }
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                self.use_op(vals, dec, *cond, n, h)?;
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
                self.jump_uses(vals, func, dec, then_dest, h, n)?;
                self.jump_uses(vals, func, dec, else_dest, h, n)?;
            }
            // No switch target takes arguments: only placement
            // is checked.
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                self.use_op(vals, dec, *value, n, h)?;
                self.edge(vals, func, dec, *default, n)?;
                for c in func.cases(*cases) {
                    self.edge(vals, func, dec, c.block, n)?;
                }
            }
            _ => return Some(false),
        }
        Some(true)
    }

    /// [`Fast::sweep`] at an instruction of another kind than the common
    /// unary and binary ones and the terminators (its uses, and what its
    /// kind adds), or of an unsupported opcode: out of line, so that the
    /// common path keeps its values in registers. `recs` are the block's records (those before
    /// instruction `j` written), `insts` its instructions, `n` the
    /// instruction's number.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn other_inst(
        &mut self,
        module: &Module,
        func: &Function,
        dec: &Decisions,
        vals: &mut [Val],
        recs: &mut [Rec],
        insts: &[crate::ir::Inst],
        j: usize,
        n: u32,
        at: At,
    ) -> Option<()> {
        let h = at.h;
        let d = func.insts.get(insts.get(j)?.index())?;
        let facts = FACTS[d.opcode as usize][slot(d.ty)];
        // (A call's callee and arguments are checked by `Fast::call_args`.)
        let call = matches!(d.kind, InstKind::Call { .. });
        if facts & F_OK == 0 && (facts & F_CALL == 0 || !call) {
            return None;
        }
        // (A terminator's kind in the middle of a block.)
        if self.term_uses(func, dec, vals, d, n, at)? {
            return Some(());
        }
        match &d.kind {
            // (Supported ones take the common path, see `Fast::sweep`;
            // terminators are handled above.)
            InstKind::Unary { .. }
            | InstKind::Binary { .. }
            | InstKind::Trap
            | InstKind::Ret { .. }
            | InstKind::Jmp { .. }
            | InstKind::Br { .. }
            | InstKind::Switch { .. } => return None,
            InstKind::Select { args } => {
                for &a in args {
                    self.use_op(vals, dec, a, n, h)?;
                }
            }
            InstKind::Load { ptr, .. } => {
                self.use_op(vals, dec, *ptr, n, h)?;
                fold_into(func, insts, j, recs);
            }
            InstKind::Store { args, .. } => {
                self.use_op(vals, dec, args[0], n, h)?;
                self.use_op(vals, dec, args[1], n, h)?;
                fold_into(func, insts, j, recs);
            }
            InstKind::Addr { sym } => {
                if sym.index() >= module.symbols.len() {
                    return None;
                }
            }
            &InstKind::Alloca { size, align } => self.allocas.push((size, align.max(1))),
            InstKind::Call { callee, args } => {
                if let Callee::Indirect(op) = callee {
                    self.use_op(vals, dec, *op, n, h)?;
                }
                let args = func.args(*args);
                for &a in args {
                    self.use_op(vals, dec, a, n, h)?;
                }
                self.calls.push(n);
                let stack = self.call_args(module, func, *callee, args)?;
                self.outgoing = self.outgoing.max(stack as u64);
            }
        }
        Some(())
    }

    /// Appends the argument locations of a call to `call_locs`; the
    /// bytes of stack arguments. `None`: a direct callee that is not a
    /// function symbol taking as many arguments as given (unsupported).
    fn call_args(
        &mut self,
        module: &Module,
        func: &Function,
        callee: Callee,
        args: &[Operand],
    ) -> Option<u32> {
        let mut locs = std::mem::take(&mut self.params_tmp);
        let stack = match callee {
            Callee::Direct(s) => {
                let sig = module.symbols.get(s.index()).and_then(|s| s.signature());
                let Some(params) = sig.map(|sig| &sig.params[..]) else {
                    self.params_tmp = locs;
                    return None;
                };
                if params.len() != args.len() {
                    self.params_tmp = locs;
                    return None;
                }
                crate::lower::abi::assign_args_into(params, &ARGS, 8, &mut locs)
            }
            // A literal argument is passed as an i64 (as the pipeline does).
            Callee::Indirect(_) => {
                let tys: smallvec::SmallVec<[Type; 8]> = args
                    .iter()
                    .map(|a| func.operand_type(*a, Type::I64))
                    .collect();
                crate::lower::abi::assign_args_into(&tys, &ARGS, 8, &mut locs)
            }
        };
        self.call_locs_at.push(self.call_locs.len() as u32);
        // (One at a time: a few entries, cheaper than a `memcpy` call.)
        for &l in &locs {
            self.call_locs.push(l);
        }
        self.params_tmp = locs;
        Some(stack)
    }

    /// A jump at `n` (in innermost loop `h`) to `dest`: its arguments are
    /// read there and its parameters' ranges cover
    /// `n`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn jump_uses(
        &self,
        vals: &mut [Val],
        func: &Function,
        dec: &Decisions,
        dest: &crate::ir::BlockCall,
        h: u32,
        n: u32,
    ) -> Option<()> {
        for &a in func.args(dest.args) {
            self.use_op(vals, dec, a, n, h)?;
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
}

mod alloc;
mod dead;
mod divk;
mod emit;
mod enc;
mod facts;
mod float;
mod inst;
mod mem;
mod switch;

use emit::bad;
/// The opcode facts table and its bits, used throughout the fast path.
use facts::*;

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
    use super::{facts, FACTS, F_BIN, F_OK, F_PURE, F_UNARY};
    use crate::ir::opcode::Format;
    use crate::ir::Opcode;

    #[test]
    fn format_bits_follow_the_opcode_table() {
        for (k, &op) in Opcode::ALL.iter().enumerate() {
            for (s, &f) in FACTS[k].iter().enumerate() {
                assert_eq!(f, facts(op, s));
                let ok = f & F_OK != 0;
                let format = op.info().format;
                assert_eq!(f & F_BIN != 0, ok && format == Format::Binary, "{op:?} {s}");
                assert_eq!(
                    f & F_UNARY != 0,
                    ok && format == Format::Unary,
                    "{op:?} {s}"
                );
                // Pure with some suffix: what `mark_live` tests.
                let any = (0..super::SLOTS).any(|t| FACTS[k][t] & F_PURE != 0);
                assert_eq!(f & super::F_PURE_ANY != 0, any, "{op:?} {s}");
                // The checker's own list of instructions without effects.
                assert_eq!(
                    f & F_PURE != 0,
                    ok && crate::isa::x86_64::fast_check::pure(op),
                    "{op:?} {s}"
                );
            }
        }
    }

    /// Operands and results that are not values of the function (a
    /// module the verifier rejects, compiled straight through the back
    /// end): the fast path declines the function (`None`), never panics
    /// nor takes them for literals.
    #[test]
    fn values_that_are_not_the_functions_are_unsupported() {
        use crate::ir::{InstKind, Operand, Value};
        let text = "func @f(%a: i64, %b: i64) -> i64 {
entry:
    %x = add.i64 %a, %b
    %y = neg.i64 %x
    %z = shl.i64 %y, 3
    ret %y
}
";
        // Which instruction and what to change: 0 the first operand, 1
        // the second, 2 the result; past the values by `past` (0: the
        // value count itself, the sink's index in the sweep).
        for (inst, what, past) in [
            (0, 0, 0),
            (0, 1, 0),
            (0, 1, 5),
            (1, 0, 0),
            (1, 0, 1),
            (0, 2, 0),
            (1, 2, 3),
            // (`%z` is dead: its result is checked all the same.)
            (2, 2, 0),
            (usize::MAX, 0, 0),
        ] {
            let mut m = crate::ir::parse::parse_module("t.kir", text).expect("parses");
            let func = &mut m.funcs[0];
            let bad = Value(func.values.len() as u32 + past);
            if inst != usize::MAX {
                let i = func.blocks[0].insts[inst].index();
                let d = &mut func.insts[i];
                match (&mut d.kind, what) {
                    (_, 2) => d.result = Some(bad),
                    (InstKind::Binary { args }, w) => args[w] = Operand::Value(bad),
                    (InstKind::Unary { arg }, _) => *arg = Operand::Value(bad),
                    _ => unreachable!(),
                }
            }
            let func = &m.funcs[0];
            let mut dec = crate::lower::analysis::Decisions::default();
            let got = super::Fast::default().analyze(&m, func, &mut dec);
            assert_eq!(got.is_some(), inst == usize::MAX, "{inst} {what} {past}");
        }
    }

    /// A function compiled after others on one thread (a context whose
    /// `fixed` list is longer than its own, with stale entries after its
    /// `NONE`) gets the code it gets in a fresh context.
    #[test]
    fn a_reused_context_compiles_as_a_fresh_one() {
        // `n` instructions `op` by `%b` (for `shl`, uses of `rcx`), each
        // value live across the next ones (a stale `rcx` use would keep
        // them out of `rcx` and `rdx`).
        let chain = |name: &str, op: &str, n: usize| {
            let mut t = format!(
                "func @{name}(%a: i64, %b: i64) -> i64 {{\nentry:\n    %v0 = add.i64 %a, %b\n"
            );
            for k in 1..=n {
                t += &format!("    %v{k} = {op}.i64 %v{}, %b\n", k - 1);
            }
            let mut sum = "%a".to_string();
            for k in 0..=n {
                t += &format!("    %s{k} = add.i64 {sum}, %v{k}\n");
                sum = format!("%s{k}");
            }
            t + &format!("    ret {sum}\n}}\n")
        };
        let text = chain("f", "shl", 300) + &chain("g", "shl", 1);
        let big = crate::ir::parse::parse_module("big", &text).expect("parses");
        let text = chain("h", "xor", 12) + &chain("k", "shl", 3);
        let small = crate::ir::parse::parse_module("small", &text).expect("parses");
        let compile = |m: &crate::ir::Module| {
            let backend = crate::isa::backend("x86_64").expect("x86_64 backend");
            crate::emit::compile_module(m, backend)
                .expect("compiles")
                .text
                .to_vec()
        };
        let fresh = std::thread::scope(|s| s.spawn(|| compile(&small)).join().unwrap());
        let reused = std::thread::scope(|s| {
            s.spawn(|| {
                compile(&big);
                compile(&small)
            })
            .join()
            .unwrap()
        });
        assert_eq!(fresh, reused);
    }
}
