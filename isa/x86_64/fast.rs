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
//!    block parameter its argument's. Since a value never moves, block
//!    edges need only the block-argument parallel move and nothing is
//!    fixed up afterwards.
//! 3. **emission** ([`Fast::emit`]): each IR instruction straight from its
//!    operands' homes (register, `[rbp + off]` or immediate) into the
//!    dynasm assembler, with `rax`, `rcx`, `rdx` and `r11` kept out of the
//!    pool as scratch (division, shift counts, memory-to-memory moves,
//!    cycle breaking in parallel moves).
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
//! `trunc`, division and remainder (with their traps), loads and stores,
//! `addr`, direct and indirect calls with up to six integer arguments,
//! `jmp`/`br` with block arguments, `ret`, `trap`. Anything else (floats,
//! `switch`, `alloca`, stack arguments) makes the whole function go
//! through the multi-pass pipeline. AArch64 always uses that pipeline.

// dynasm expands register arguments with `.into()`, which clippy flags.
#![allow(clippy::useless_conversion)]

use super::asm::{int_cc, invert, jcc, mov_imm, Asm, Cc};
use super::regs::{R11, RAX};
use crate::compiled::CompiledModule;
use crate::debug::lines::LineRecorder;
use crate::error::{Error, Result, TrapCode};
use crate::ir::{
    Block, Callee, Function, Inst, InstKind, Linkage, Loc, Module, Opcode, Operand, SymbolData,
    Type, Value, ValueDef,
};
use crate::isa::TRAP_HANDLER;
use crate::lower::analysis::Decisions;
use crate::reloc::RelocKind;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi};

const NONE: u32 = u32::MAX;
/// Homes below this are integer registers (hardware number); from it on,
/// stack slot `home - SLOT0`.
pub const SLOT0: u32 = 32;

/// Caller-saved integer registers in the pool: `rsi`, `rdi`, `r8`–`r10`.
pub const POOL_CALLER: u16 = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);
/// Callee-saved integer registers in the pool: `rbx`, `r12`–`r15`.
pub const POOL_CALLEE: u16 = (1 << 3) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15);
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
    /// Per value: order position of its defining block.
    def_pos: Vec<u32>,
    /// Per value: range.
    start: Vec<u32>,
    end: Vec<u32>,
    /// Per value: home (`NONE`: none).
    pub home: Vec<u32>,
    /// Numbers of the call instructions, ascending.
    calls: Vec<u32>,
    /// Per instruction number: first value whose range ends there; per
    /// value: the next one.
    exp_head: Vec<u32>,
    exp_next: Vec<u32>,
    free_slots: Vec<u32>,
    /// Stack slots used.
    pub num_slots: u32,
    /// Callee-saved registers used (bit per hardware number).
    pub callee_used: u16,
    /// Per instruction: a compare fused into its branch.
    fused: Vec<bool>,
    // Emission.
    ops: Option<Asm>,
    labels: Vec<DynamicLabel>,
    relocs: Vec<(usize, RelocKind, String, i64)>,
    trap_sites: Vec<(DynamicLabel, TrapCode, Loc)>,
    saved: Vec<u8>,
    code: Vec<u8>,
    moves: Vec<(u32, Src)>,
    pm: ParMove,
}

/// An operand's location at emission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A register.
    R(u8),
    /// A stack slot (`home - SLOT0`).
    S(u32),
    /// Constant bits.
    I(u64),
}

fn unsupported() -> Option<()> {
    None
}

fn is_int(t: Option<Type>) -> bool {
    matches!(t, Some(Type::I32) | Some(Type::I64))
}

/// Whether instruction `d` can be compiled here (types checked by the
/// caller for results and operands).
fn supported_inst(module: &Module, func: &Function, d: &crate::ir::InstData) -> bool {
    use Opcode::*;
    match d.opcode {
        Copy | Add | Sub | Mul | And | Or | Xor | Shl | Shr | Sar | Neg | Not | Eq | Ne | Slt
        | Sle | Sgt | Sge | Ult | Ule | Ugt | Uge | Select | Sext | Zext | Trunc | Sdiv | Udiv
        | Srem | Urem | Load | Load8s | Load8u | Load16s | Load16u | Load32s | Load32u => {
            is_int(d.ty)
        }
        Store => is_int(d.ty),
        Store8 | Store16 | Store32 | Addr | Ret | Jmp | Br | Trap => true,
        Call => {
            let InstKind::Call { callee, args } = &d.kind else {
                return false;
            };
            let args = func.args(*args);
            if args.len() > ARGS.len() || !(d.ty.is_none() || is_int(d.ty)) {
                return false;
            }
            match callee {
                Callee::Direct(s) => {
                    match module.symbols.get(s.index()).and_then(|s| s.signature()) {
                        Some(sig) => {
                            sig.params.len() == args.len()
                                && sig.params.iter().all(|t| t.is_int())
                                && (sig.ret.is_none() || is_int(sig.ret))
                        }
                        None => false,
                    }
                }
                Callee::Indirect(_) => args.iter().all(|a| matches!(a, Operand::Const(_)) || true),
            }
        }
        _ => false,
    }
}

impl Fast {
    /// The range ends of a use at instruction `u` in order position `k` of
    /// a value defined in position `db`: `u`, or the last instruction of
    /// the outermost loop containing `k` but not `db`.
    #[inline]
    fn ext(&self, dec: &Decisions, u: u32, k: usize, db: u32) -> u32 {
        let mut h = self.loop_hdr[k];
        let mut e = u;
        while h != NONE && h > db {
            e = self.last[dec.loop_end[h as usize] as usize - 1];
            h = self.loop_parent[h as usize];
        }
        e
    }

    #[inline]
    fn use_at(&mut self, dec: &Decisions, v: Value, u: u32, k: usize) {
        let vi = v.index();
        let e = self.ext(dec, u, k, self.def_pos[vi]);
        if e > self.end[vi] || self.end[vi] == NONE {
            self.end[vi] = e;
        }
    }

    /// Pass 1: numbering and ranges; `None` when the function uses
    /// something this generator does not support.
    pub fn analyze(&mut self, module: &Module, func: &Function, dec: &Decisions) -> Option<()> {
        let np = dec.order.len();
        let nv = func.values.len();
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
        for v in [&mut self.start, &mut self.end, &mut self.home] {
            v.clear();
            v.resize(nv, NONE);
        }
        self.def_pos.clear();
        self.def_pos.resize(nv, 0);
        self.fused.clear();
        self.fused.extend_from_slice(&dec.fused);
        self.calls.clear();
        // Function parameters: defined before the first instruction.
        if func.params.len() > ARGS.len() {
            return unsupported();
        }
        for &p in &func.params {
            if !func.values[p.index()].ty.is_int() {
                return unsupported();
            }
            self.start[p.index()] = 0;
            self.end[p.index()] = 0;
        }
        for (k, &b) in dec.order.iter().enumerate() {
            let bd = &func.blocks[b.index()];
            let first = self.first[k];
            for &p in &bd.params {
                let pi = p.index();
                if !func.values[pi].ty.is_int() {
                    return unsupported();
                }
                self.def_pos[pi] = k as u32;
                if self.start[pi] == NONE {
                    if k == 0 {
                        return unsupported();
                    }
                    self.start[pi] = first;
                }
                if self.end[pi] == NONE || self.end[pi] < first {
                    self.end[pi] = first;
                }
            }
            let term = self.last[k];
            for (j, &i) in bd.insts.iter().enumerate() {
                let n = first + j as u32;
                let d = &func.insts[i.index()];
                if !supported_inst(module, func, d) {
                    return unsupported();
                }
                let u = if self.fused[i.index()] { term } else { n };
                let mut ok = true;
                let mut uses: smallvec::SmallVec<[Value; 8]> = smallvec::SmallVec::new();
                func.for_each_operand(i, |op| match op {
                    Operand::Value(v) => {
                        ok &= func.values[v.index()].ty.is_int();
                        uses.push(v);
                    }
                    Operand::Const(c) => ok &= c.as_int().is_some(),
                });
                if !ok {
                    return unsupported();
                }
                for v in uses {
                    self.use_at(dec, v, u, k);
                }
                if let Some(r) = d.result {
                    let ri = r.index();
                    self.def_pos[ri] = k as u32;
                    self.start[ri] = n;
                    if self.end[ri] == NONE {
                        self.end[ri] = n;
                    }
                }
                match &d.kind {
                    InstKind::Call { .. } => self.calls.push(n),
                    InstKind::Jmp { dest } => self.edge(func, dec, dest.block, n)?,
                    InstKind::Br {
                        then_dest,
                        else_dest,
                        ..
                    } => {
                        self.edge(func, dec, then_dest.block, n)?;
                        self.edge(func, dec, else_dest.block, n)?;
                    }
                    _ => {}
                }
            }
        }
        self.exp_head.clear();
        self.exp_head.resize(total + 1, NONE);
        self.exp_next.clear();
        self.exp_next.resize(nv, NONE);
        Some(())
    }

    /// A jump at `n` into `target`: its parameters' ranges cover `n`.
    fn edge(&mut self, func: &Function, dec: &Decisions, target: Block, n: u32) -> Option<()> {
        if target.index() == 0 || dec.position(target).is_none() {
            return unsupported();
        }
        for &p in &func.blocks[target.index()].params {
            let pi = p.index();
            if self.start[pi] == NONE || self.start[pi] > n {
                self.start[pi] = n;
            }
            if self.end[pi] == NONE || self.end[pi] < n {
                self.end[pi] = n;
            }
        }
        Some(())
    }

    /// Gives `v` a home at its range start; `from_call` is the first call
    /// number it must survive if it is at or after its start, `hint` a
    /// preferred register.
    fn assign(
        &mut self,
        v: usize,
        free: &mut u16,
        crosses: bool,
        hint: u32,
        now: u32,
        before: bool,
    ) {
        let pick = if crosses {
            let c = *free & POOL_CALLEE;
            if hint < SLOT0 && c & (1 << hint) != 0 {
                hint
            } else if c != 0 {
                c.trailing_zeros()
            } else {
                NONE
            }
        } else if hint < SLOT0 && *free & (1 << hint) != 0 {
            hint
        } else if *free & POOL_CALLER != 0 {
            (*free & POOL_CALLER).trailing_zeros()
        } else if *free != 0 {
            free.trailing_zeros()
        } else {
            NONE
        };
        let home = if pick != NONE {
            *free &= !(1 << pick);
            self.callee_used |= (1 << pick) & POOL_CALLEE;
            pick
        } else {
            let s = self.free_slots.pop().unwrap_or_else(|| {
                self.num_slots += 1;
                self.num_slots - 1
            });
            SLOT0 + s
        };
        self.home[v] = home;
        let e = self.end[v];
        if e > now || (before && e == now) {
            self.exp_next[v] = self.exp_head[e as usize];
            self.exp_head[e as usize] = v as u32;
        }
    }

    fn release(&mut self, v: usize, free: &mut u16) {
        let h = self.home[v];
        if h < SLOT0 {
            *free |= 1 << h;
        } else {
            self.free_slots.push(h - SLOT0);
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

    /// Pass 2: a home for every value.
    pub fn allocate(&mut self, func: &Function, dec: &Decisions) {
        self.free_slots.clear();
        self.num_slots = 0;
        self.callee_used = 0;
        let mut free: u16 = POOL_CALLER | POOL_CALLEE;
        let mut ci = 0usize;
        for (j, &p) in func.params.iter().enumerate() {
            let pi = p.index();
            let cr = self.crosses(ci, 0, self.end[pi], true);
            self.assign(pi, &mut free, cr, ARGS[j] as u32, 0, true);
        }
        for (k, &b) in dec.order.iter().enumerate() {
            let bd = &func.blocks[b.index()];
            let first = self.first[k];
            while ci < self.calls.len() && self.calls[ci] < first {
                ci += 1;
            }
            for &p in &bd.params {
                let pi = p.index();
                if self.home[pi] == NONE {
                    let cr = self.crosses(ci, first, self.end[pi], true);
                    self.assign(pi, &mut free, cr, NONE, first, true);
                }
            }
            for (j, &i) in bd.insts.iter().enumerate() {
                let n = first + j as u32;
                while ci < self.calls.len() && self.calls[ci] < n {
                    ci += 1;
                }
                // Free what ends here.
                let mut v = std::mem::replace(&mut self.exp_head[n as usize], NONE);
                while v != NONE {
                    let next = self.exp_next[v as usize];
                    self.release(v as usize, &mut free);
                    v = next;
                }
                let d = &func.insts[i.index()];
                if let Some(r) = d.result {
                    if !self.fused[i.index()] {
                        let ri = r.index();
                        let hint = match &d.kind {
                            InstKind::Binary {
                                args: [Operand::Value(a), _],
                            }
                            | InstKind::Unary {
                                arg: Operand::Value(a),
                            } => self.home[a.index()],
                            _ => NONE,
                        };
                        let cr = self.crosses(ci, n, self.end[ri], false);
                        self.assign(ri, &mut free, cr, hint, n, false);
                        if self.end[ri] <= n {
                            self.release(ri, &mut free);
                        }
                    }
                }
                let dests = match &d.kind {
                    InstKind::Jmp { dest } => [Some(dest), None],
                    InstKind::Br {
                        then_dest,
                        else_dest,
                        ..
                    } => [Some(then_dest), Some(else_dest)],
                    _ => [None, None],
                };
                for dest in dests.into_iter().flatten() {
                    let params = &func.blocks[dest.block.index()].params;
                    let args = func.args(dest.args);
                    for (pk, &p) in params.iter().enumerate() {
                        let pi = p.index();
                        if self.home[pi] == NONE {
                            let hint = match args.get(pk) {
                                Some(Operand::Value(a)) => self.home[a.index()],
                                _ => NONE,
                            };
                            let cr = self.crosses(ci, n, self.end[pi], false);
                            self.assign(pi, &mut free, cr, hint, n, false);
                            if self.end[pi] <= n {
                                self.release(pi, &mut free);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The parallel-move sequencer's tables, indexed by home.
#[derive(Default)]
struct ParMove {
    readers: Vec<u32>,
    writer: Vec<u32>,
    stamp: Vec<u32>,
    gen: u32,
    done: Vec<bool>,
    ready: Vec<u32>,
}

fn bad(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: fast code generator: {what}", func.name))
}

/// One function's emission state.
struct Em<'a> {
    module: &'a Module,
    func: &'a Function,
    dec: &'a Decisions,
    f: &'a mut Fast,
    ops: Asm,
    lines: LineRecorder<'static>,
    /// Number of callee-saved registers pushed.
    nsaved: i32,
}

impl Em<'_> {
    #[inline]
    fn slot_off(&self, s: u32) -> i32 {
        -8 * self.nsaved - 8 * (s as i32 + 1)
    }

    #[inline]
    fn off(&self) -> usize {
        self.ops.offset().0
    }

    #[inline]
    fn home_src(&self, h: u32) -> Src {
        if h < SLOT0 {
            Src::R(h as u8)
        } else {
            Src::S(h - SLOT0)
        }
    }

    #[inline]
    fn src(&self, op: Operand, ty: Type) -> Src {
        match op {
            Operand::Value(v) => self.home_src(self.f.home[v.index()]),
            Operand::Const(c) => Src::I(c.bits(ty)),
        }
    }

    fn val(&self, v: Value) -> Src {
        self.home_src(self.f.home[v.index()])
    }

    fn trap_label(&mut self, code: TrapCode) -> DynamicLabel {
        let l = self.ops.new_dynamic_label();
        self.f.trap_sites.push((l, code, self.lines.current()));
        l
    }

    fn reloc_here(&mut self, back: usize, kind: RelocKind, target: &str, addend: i64) {
        let offset = self.off() - back;
        self.f
            .relocs
            .push((offset, kind, target.to_string(), addend));
    }

    /// `r = s` (64 bits).
    fn load(&mut self, r: u8, s: Src) {
        match s {
            Src::R(x) => {
                if x != r {
                    dynasm!(self.ops ; .arch x64 ; mov Rq(r), Rq(x));
                }
            }
            Src::S(k) => {
                let o = self.slot_off(k);
                dynasm!(self.ops ; .arch x64 ; mov Rq(r), QWORD [rbp + o]);
            }
            Src::I(b) => mov_imm(&mut self.ops, r, b),
        }
    }

    /// `d = s` for a home `d` (a register or a slot).
    fn mov(&mut self, d: Src, s: Src) {
        match d {
            Src::R(r) => self.load(r, s),
            Src::S(k) => {
                let o = self.slot_off(k);
                match s {
                    Src::R(x) => dynasm!(self.ops ; .arch x64 ; mov QWORD [rbp + o], Rq(x)),
                    Src::S(j) if j == k => {}
                    Src::I(b) if i32::try_from(b as i64).is_ok() => {
                        let b = b as i64 as i32;
                        dynasm!(self.ops ; .arch x64 ; mov QWORD [rbp + o], b)
                    }
                    _ => {
                        self.load(R11, s);
                        dynasm!(self.ops ; .arch x64 ; mov QWORD [rbp + o], r11);
                    }
                }
            }
            Src::I(_) => {}
        }
    }

    /// A register holding `s`: its own, or `scratch` loaded with it.
    fn in_reg(&mut self, s: Src, scratch: u8) -> u8 {
        match s {
            Src::R(r) => r,
            _ => {
                self.load(scratch, s);
                scratch
            }
        }
    }

    /// The parallel move `self.f.moves` (destination home, source).
    fn par_move(&mut self) {
        let mut moves = std::mem::take(&mut self.f.moves);
        moves.retain(|&(d, s)| self.home_src(d) != s);
        match moves.len() {
            0 => {}
            1 => {
                let (d, s) = moves[0];
                self.mov(self.home_src(d), s);
            }
            _ => self.par_move_general(&moves),
        }
        moves.clear();
        self.f.moves = moves;
    }

    fn par_move_general(&mut self, moves: &[(u32, Src)]) {
        let loc = |s: Src| match s {
            Src::R(r) => Some(r as usize),
            Src::S(k) => Some((SLOT0 + k) as usize),
            Src::I(_) => None,
        };
        let mut pm = std::mem::take(&mut self.f.pm);
        pm.gen = pm.gen.wrapping_add(1);
        if pm.gen == 0 {
            pm.stamp.iter_mut().for_each(|s| *s = 0);
            pm.gen = 1;
        }
        let need = moves
            .iter()
            .flat_map(|&(d, s)| [Some(d as usize), loc(s)])
            .flatten()
            .max()
            .unwrap_or(0)
            + 1;
        if pm.stamp.len() < need {
            pm.stamp.resize(need, 0);
            pm.readers.resize(need, 0);
            pm.writer.resize(need, NONE);
        }
        let gen = pm.gen;
        let touch = |pm: &mut ParMove, l: usize| {
            if pm.stamp[l] != gen {
                pm.stamp[l] = gen;
                pm.readers[l] = 0;
                pm.writer[l] = NONE;
            }
        };
        for (m, &(d, s)) in moves.iter().enumerate() {
            touch(&mut pm, d as usize);
            pm.writer[d as usize] = m as u32;
            if let Some(l) = loc(s) {
                touch(&mut pm, l);
                pm.readers[l] += 1;
            }
        }
        pm.done.clear();
        pm.done.resize(moves.len(), false);
        pm.ready.clear();
        for (m, &(d, _)) in moves.iter().enumerate() {
            if pm.readers[d as usize] == 0 {
                pm.ready.push(m as u32);
            }
        }
        let mut left = moves.len();
        loop {
            while let Some(m) = pm.ready.pop() {
                let (d, s) = moves[m as usize];
                self.mov(self.home_src(d), s);
                pm.done[m as usize] = true;
                left -= 1;
                if let Some(l) = loc(s) {
                    pm.readers[l] -= 1;
                    if pm.readers[l] == 0 {
                        let w = pm.writer[l];
                        if w != NONE && !pm.done[w as usize] {
                            pm.ready.push(w);
                        }
                    }
                }
            }
            if left == 0 {
                break;
            }
            // Only cycles remain: save one destination in rax, run the
            // cycle, finish with the saved value.
            let m0 = (0..moves.len()).find(|&m| !pm.done[m]).unwrap_or(0);
            let d0 = moves[m0].0;
            self.load(RAX, self.home_src(d0));
            let mut m = m0;
            loop {
                let (d, s) = moves[m];
                pm.done[m] = true;
                left -= 1;
                let l = loc(s).unwrap_or(0);
                if l == d0 as usize {
                    self.mov(self.home_src(d), Src::R(RAX));
                    break;
                }
                self.mov(self.home_src(d), s);
                m = pm.writer[l] as usize;
            }
        }
        self.f.pm = pm;
    }

    fn prologue(&mut self) {
        dynasm!(self.ops ; .arch x64 ; push rbp ; mov rbp, rsp);
        for k in 0..self.f.saved.len() {
            let r = self.f.saved[k];
            dynasm!(self.ops ; .arch x64 ; push Rq(r));
        }
        let total = (8 * (self.nsaved as u32 + self.f.num_slots)).div_ceil(16) * 16;
        let sub = total as i32 - 8 * self.nsaved;
        if sub > 0 {
            super::asm::sub_rsp_probed(&mut self.ops, sub as u64);
        }
    }

    fn epilogue(&mut self) {
        let k = -8 * self.nsaved;
        if k == 0 {
            dynasm!(self.ops ; .arch x64 ; mov rsp, rbp);
        } else {
            dynasm!(self.ops ; .arch x64 ; lea rsp, [rbp + k]);
        }
        for j in (0..self.f.saved.len()).rev() {
            let r = self.f.saved[j];
            dynasm!(self.ops ; .arch x64 ; pop Rq(r));
        }
        dynasm!(self.ops ; .arch x64 ; pop rbp ; ret);
    }
}

/// Compiles `func` (symbol `sym`) with the fast generator into `out`, or
/// returns `None` (nothing emitted) when it uses something unsupported.
pub fn compile(
    f: &mut Fast,
    module: &Module,
    sym: &SymbolData,
    func: &Function,
    dec: &Decisions,
    check: bool,
    out: &mut CompiledModule,
) -> Option<Result<()>> {
    if f.analyze(module, func, dec).is_none() {
        if std::env::var_os("KILN_FAST_TRACE").is_some() {
            eprintln!("fast: fallback @{}", func.name);
        }
        return None;
    }
    f.allocate(func, dec);
    if check || cfg!(debug_assertions) {
        if let Err(e) = super::fast_check::check(func, dec, f) {
            return Some(Err(bad(func, &e)));
        }
    }
    Some(emit(f, module, sym, func, dec, out))
}

fn emit(
    f: &mut Fast,
    module: &Module,
    sym: &SymbolData,
    func: &Function,
    dec: &Decisions,
    out: &mut CompiledModule,
) -> Result<()> {
    let mut ops = f.ops.take().unwrap_or_else(|| Asm::new(0));
    f.labels.clear();
    f.labels
        .extend((0..func.blocks.len()).map(|_| ops.new_dynamic_label()));
    f.relocs.clear();
    f.trap_sites.clear();
    f.saved.clear();
    for r in [3u8, 12, 13, 14, 15] {
        if f.callee_used & (1 << r) != 0 {
            f.saved.push(r);
        }
    }
    let nsaved = f.saved.len() as i32;
    let mut e = Em {
        module,
        func,
        dec,
        f,
        ops,
        lines: LineRecorder::without_marks(func.srcmap.func),
        nsaved,
    };
    let r = e.body();
    let Em {
        mut ops, lines, f, ..
    } = e;
    let r = r.and_then(|()| {
        let asm_err =
            |what: dynasmrt::DynasmError| Error::Runtime(format!("@{}: {what}", sym.name));
        ops.commit().map_err(asm_err)?;
        f.code.clear();
        if ops.offset().0 >= 1 << 16 {
            f.code = ops.take().map_err(asm_err)?;
        } else {
            f.code.extend(ops.drain().map_err(asm_err)?);
        }
        crate::lower::place::place_function(
            module,
            sym,
            &mut f.code,
            0xcc,
            f.relocs.drain(..),
            Vec::new(),
            lines.finish(),
            out,
        )
    });
    f.ops = r.is_ok().then_some(ops);
    r
}

impl Em<'_> {
    fn body(&mut self) -> Result<()> {
        let func = self.func;
        self.prologue();
        // Incoming arguments into their homes.
        for (j, &p) in func.params.iter().enumerate() {
            let h = self.f.home[p.index()];
            self.f.moves.push((h, Src::R(ARGS[j])));
        }
        self.par_move();
        let dec = self.dec;
        for k in 0..dec.order.len() {
            let b = dec.order[k];
            let l = self.f.labels[b.index()];
            dynasm!(self.ops ; .arch x64 ; =>l);
            let next = dec.order.get(k + 1).copied();
            for &i in &func.blocks[b.index()].insts {
                if self.f.fused[i.index()] {
                    continue;
                }
                let off = self.off();
                self.lines.at(off, func.srcmap.inst(i));
                self.inst(i, next)?;
            }
        }
        self.trap_stubs();
        Ok(())
    }

    fn trap_stubs(&mut self) {
        let mut shared: Vec<(TrapCode, DynamicLabel)> = Vec::new();
        for (site, code, loc) in std::mem::take(&mut self.f.trap_sites) {
            let s = match shared.iter().find(|s| s.0 == code) {
                Some(&(_, s)) => s,
                None => {
                    let s = self.ops.new_dynamic_label();
                    shared.push((code, s));
                    s
                }
            };
            let off = self.off();
            self.lines.at(off, loc);
            dynasm!(self.ops ; .arch x64 ; =>site ; call =>s);
        }
        for (code, s) in shared {
            let c = code.code() as i32;
            dynasm!(self.ops ; .arch x64 ; =>s ; mov edi, c ; mov rax, QWORD 0);
            self.reloc_here(8, RelocKind::Abs64, TRAP_HANDLER, 0);
            dynasm!(self.ops ; .arch x64 ; jmp rax);
        }
    }

    /// The block-argument moves of an edge to `dest`, into `self.f.moves`.
    fn edge_moves(&mut self, dest: &crate::ir::BlockCall) {
        let func = self.func;
        let params = &func.blocks[dest.block.index()].params;
        for (k, &a) in func.args(dest.args).iter().enumerate() {
            let p = params[k];
            let ty = func.values[p.index()].ty;
            let s = self.src(a, ty);
            let h = self.f.home[p.index()];
            if self.home_src(h) != s {
                self.f.moves.push((h, s));
            }
        }
    }

    fn jump(&mut self, b: Block, next: Option<Block>) {
        if next != Some(b) {
            let l = self.f.labels[b.index()];
            dynasm!(self.ops ; .arch x64 ; jmp =>l);
        }
    }

    fn call(&mut self, i: Inst) -> Result<()> {
        let func = self.func;
        let d = &func.insts[i.index()];
        let InstKind::Call { callee, args } = &d.kind else {
            return Err(bad(func, "call"));
        };
        for (k, &a) in func.args(*args).iter().enumerate() {
            let s = self.src(a, Type::I64);
            self.f.moves.push((ARGS[k] as u32, s));
        }
        if let Callee::Indirect(c) = callee {
            let s = self.src(*c, Type::I64);
            self.f.moves.push((CALLEE_REG as u32, s));
        }
        self.par_move();
        match callee {
            Callee::Direct(s) => {
                let name = self.module.symbols[s.index()].name.as_str();
                self.ops.extend([0xe8u8, 0, 0, 0, 0].iter());
                self.reloc_here(4, RelocKind::X86CallPcRel32, name, -4);
            }
            Callee::Indirect(_) => {
                dynasm!(self.ops ; .arch x64 ; call r10);
            }
        }
        if let Some(r) = d.result {
            let h = self.f.home[r.index()];
            self.mov(self.home_src(h), Src::R(RAX));
        }
        Ok(())
    }

    fn addr(&mut self, d: Src, sym: crate::ir::SymId) {
        let data = &self.module.symbols[sym.index()];
        let r = match d {
            Src::R(r) => r,
            _ => R11,
        };
        if data.linkage == Linkage::Import {
            dynasm!(self.ops ; .arch x64 ; mov Rq(r), QWORD 0);
            self.reloc_here(8, RelocKind::Abs64, &data.name, 0);
        } else {
            let rex = 0x48 | ((r >> 3) << 2);
            let modrm = 0x05 | ((r & 7) << 3);
            self.ops.extend([rex, 0x8d, modrm, 0, 0, 0, 0].iter());
            self.reloc_here(4, RelocKind::X86PcRel32, &data.name, -4);
        }
        if r == R11 {
            self.mov(d, Src::R(R11));
        }
    }

    /// Sets the flags for compare `op` of `a` and `b` (type `ty`); returns
    /// the condition.
    fn compare(&mut self, op: Opcode, ty: Type, a: Operand, b: Operand) -> Result<Cc> {
        let w = ty == Type::I64;
        let cc = int_cc(op).ok_or_else(|| bad(self.func, "compare"))?;
        let (sa, sb) = (self.src(a, ty), self.src(b, ty));
        let ra = self.in_reg(sa, R11);
        self.alu_src(inst::Alu::Cmp, w, ra, sb);
        Ok(cc)
    }

    fn br(&mut self, i: Inst, next: Option<Block>) -> Result<()> {
        let func = self.func;
        let InstKind::Br {
            cond,
            then_dest,
            else_dest,
        } = &func.insts[i.index()].kind
        else {
            return Err(bad(func, "br"));
        };
        // The condition's flags.
        let fused = match cond {
            Operand::Value(c) => match func.values[c.index()].def {
                ValueDef::Inst(ci) if self.f.fused[ci.index()] => Some(ci),
                _ => None,
            },
            _ => None,
        };
        let cc = match (fused, cond) {
            (Some(ci), _) => {
                let cd = &func.insts[ci.index()];
                let InstKind::Binary { args } = cd.kind else {
                    return Err(bad(func, "fused compare"));
                };
                self.compare(cd.opcode, cd.ty.unwrap_or(Type::I64), args[0], args[1])?
            }
            (None, Operand::Const(c)) => {
                // Constant condition: always one side.
                let taken = if c.bits(Type::I32) != 0 {
                    then_dest
                } else {
                    else_dest
                };
                self.edge_moves(taken);
                self.par_move();
                self.jump(taken.block, next);
                return Ok(());
            }
            (None, &Operand::Value(c)) => {
                match self.val(c) {
                    Src::R(r) => dynasm!(self.ops ; .arch x64 ; test Rd(r), Rd(r)),
                    Src::S(k) => {
                        let o = self.slot_off(k);
                        dynasm!(self.ops ; .arch x64 ; cmp DWORD [rbp + o], 0)
                    }
                    Src::I(_) => {}
                }
                Cc::Ne
            }
        };
        self.edge_moves(then_dest);
        let then_moves = std::mem::take(&mut self.f.moves);
        self.edge_moves(else_dest);
        let else_empty = self.f.moves.is_empty();
        let (tl, el) = (
            self.f.labels[then_dest.block.index()],
            self.f.labels[else_dest.block.index()],
        );
        if then_moves.is_empty() && else_empty {
            if next == Some(then_dest.block) {
                jcc(&mut self.ops, invert(cc), el);
            } else {
                jcc(&mut self.ops, cc, tl);
                self.jump(else_dest.block, next);
            }
        } else if then_moves.is_empty() {
            jcc(&mut self.ops, cc, tl);
            self.par_move();
            self.jump(else_dest.block, next);
        } else {
            // The then moves inline, the else side past them.
            let skip = self.ops.new_dynamic_label();
            jcc(&mut self.ops, invert(cc), skip);
            let else_moves = std::mem::replace(&mut self.f.moves, then_moves);
            self.par_move();
            self.jump(then_dest.block, None);
            dynasm!(self.ops ; .arch x64 ; =>skip);
            let spare = std::mem::replace(&mut self.f.moves, else_moves);
            self.par_move();
            self.jump(else_dest.block, next);
            drop(spare);
            return Ok(());
        }
        drop(then_moves);
        Ok(())
    }
}

mod inst;
