//! The fast generator's emission sweep (see [`super`]): the frame, the
//! blocks in order, block-argument and call-argument parallel moves,
//! branches, trap stubs, and placing the finished function.

use super::enc::sse::{MOVS_STORE, SD};
use super::enc::{Code, Label, CC_E, CC_NE, CMP, RUN};
use super::inst::{Opd, LIT};
use super::{Fast, Src, CALLEE_REG, NONE, SLOT0, XMM0};
use crate::compiled::CompiledModule;
use crate::debug::lines::LineRecorder;
use crate::error::{Error, Result, TrapCode};
use crate::ir::{Block, BlockCall, Callee, Function, Inst, InstKind, Linkage, Loc, Module};
use crate::ir::{Operand, SymbolData, Type, ValueDef};
use crate::isa::x86_64::regs::{R11, RAX};
use crate::isa::TRAP_HANDLER;
use crate::lower::abi::ArgLoc;
use crate::lower::analysis::Decisions;
use crate::reloc::RelocKind;

/// The parallel-move sequencer's tables, indexed by home, stamped per
/// move set (never cleared).
#[derive(Default)]
pub struct ParMove {
    readers: Vec<u32>,
    writer: Vec<u32>,
    stamp: Vec<u32>,
    gen: u32,
    done: Vec<bool>,
    ready: Vec<u32>,
    /// The moves of the set that change something.
    live: Vec<(u32, Src)>,
}

/// The most moves [`Em::par_move_small`] takes (more go to
/// [`Em::par_move_general`]).
const SMALL_PAR_MOVE: usize = 8;

/// A compile error of the fast generator.
pub fn bad(func: &Function, what: &str) -> Error {
    Error::Runtime(format!("@{}: fast code generator: {what}", func.name))
}

/// One function's emission state.
pub struct Em<'a> {
    pub module: &'a Module,
    pub func: &'a Function,
    pub dec: &'a Decisions,
    pub f: &'a mut Fast,
    /// The function's symbol.
    pub sym: &'a SymbolData,
    pub c: Code,
    pub lines: LineRecorder<'static>,
    /// Number of callee-saved registers pushed.
    pub nsaved: i32,
    /// Per trap site: its label, reason and location.
    pub traps: Vec<(Label, TrapCode, Loc)>,
    /// Out-of-line edges of conditional branches whose taken side falls
    /// through: each one's label, its block-argument moves, target block
    /// and the branch's location (emitted after the last block, so that a
    /// loop's body falls through and each iteration takes one branch).
    pub edge_stubs: Vec<EdgeStub>,
    /// The block-argument moves of every [`EdgeStub`], one after another
    /// (one buffer per function instead of one per stub).
    pub stub_moves: Vec<(u32, Src)>,
    /// The next `alloca` to emit.
    pub next_alloca: usize,
    /// The next call to emit (its number among the calls).
    pub next_call: usize,
    /// Jump tables: each one's symbol and entries (label numbers).
    pub tables: Vec<(String, Vec<u32>)>,
}

/// An edge emitted out of line by [`Em::br`]: where the branch jumps,
/// the edge's block-argument moves (a range of [`Em::stub_moves`]), its
/// target and the branch's location.
pub struct EdgeStub {
    label: Label,
    moves: std::ops::Range<usize>,
    target: Block,
    loc: Loc,
}

/// The operand that reads home `h` (a register, an xmm register or a stack
/// slot; see [`SLOT0`] and [`XMM0`]).
#[inline]
pub fn src_of_home(h: u32) -> Src {
    if h < XMM0 {
        Src::R(h as u8)
    } else if h < SLOT0 {
        Src::X((h - XMM0) as u8)
    } else {
        Src::S(h - SLOT0)
    }
}

/// The `rbp` offset of slot `s` below `nsaved` pushed registers.
#[inline]
pub fn slot_off(nsaved: i32, s: u32) -> i32 {
    -8 * nsaved - 8 * (s as i32 + 1)
}

impl Em<'_> {
    #[inline]
    pub fn slot_off(&self, s: u32) -> i32 {
        slot_off(self.nsaved, s)
    }

    #[inline]
    pub fn home_src(&self, h: u32) -> Src {
        src_of_home(h)
    }

    #[inline]
    pub fn src(&self, op: Operand, ty: Type) -> Src {
        match op {
            Operand::Value(v) => self.home_src(self.f.home[v.index()]),
            Operand::Const(c) => Src::I(c.bits(ty)),
        }
    }

    #[inline]
    pub fn val(&self, v: crate::ir::Value) -> Src {
        self.home_src(self.f.home[v.index()])
    }

    /// A label for a trap stub of `code`, attributed to instruction `i`
    /// (the one being emitted: traps arise only in block bodies).
    pub fn trap_label(&mut self, code: TrapCode, i: Inst) -> Label {
        let l = self.c.label();
        let loc = self.func.srcmap.inst(i);
        self.traps.push((l, code, loc));
        l
    }

    pub fn reloc_here(&mut self, back: usize, kind: RelocKind, target: &str, addend: i64) {
        let offset = self.c.off() - back;
        self.f
            .relocs
            .push((offset, kind, target.to_string(), addend));
    }

    /// `r = s` (64 bits).
    #[inline(always)]
    pub fn load(&mut self, r: u8, s: Src) {
        match s {
            Src::R(x) => {
                if x != r {
                    self.c.mov_rr(r, x);
                }
            }
            // The bits of a float (parallel moves through `rax`).
            Src::X(x) => self.c.movq_from_x(true, r, x),
            Src::S(k) => {
                let m = self.c.slot(k);
                self.c.rm_at(true, 0x8b, r, m);
            }
            Src::I(b) => self.c.mov_imm(r, b),
        }
    }

    /// `d = s` for a home `d` (a register or a slot).
    #[inline(always)]
    pub fn mov(&mut self, d: Src, s: Src) {
        match d {
            Src::R(r) => self.load(r, s),
            Src::X(x) => self.xload(x, s),
            Src::S(k) => {
                let o = self.slot_off(k);
                match s {
                    Src::R(x) => {
                        let m = self.c.slot(k);
                        self.c.rm_at(true, 0x89, x, m)
                    }
                    Src::X(x) => self.xstore_slot(x, o),
                    Src::S(j) if j == k => {}
                    Src::I(b) if i32::try_from(b as i64).is_ok() => {
                        self.c.store_imm(8, b as i64 as i32, 5, o)
                    }
                    _ => {
                        self.load(R11, s);
                        self.c.store(8, R11, 5, o);
                    }
                }
            }
            Src::I(_) => {}
        }
    }

    /// `d = s` for a home `d` (as [`Em::mov`] of [`src_of_home`]`(d)`),
    /// on plain operands.
    #[inline(always)]
    pub(super) fn mov_opd(&mut self, d: u32, s: Opd) {
        if d < XMM0 {
            self.load_opd(d as u8, s);
        } else if d < SLOT0 {
            self.xload((d - XMM0) as u8, s.src());
        } else {
            let o = self.slot_off(d - SLOT0);
            if s.h < XMM0 {
                let m = self.c.slot(d - SLOT0);
                self.c.rm_at(true, 0x89, s.h as u8, m);
            } else if s.h == d {
            } else if s.h == LIT && i32::try_from(s.k as i64).is_ok() {
                self.c.store_imm(8, s.k as i64 as i32, 5, o);
            } else if s.h < SLOT0 {
                self.xstore_slot((s.h - XMM0) as u8, o);
            } else {
                self.load_opd(R11, s);
                self.c.store(8, R11, 5, o);
            }
        }
    }

    /// A register holding `s`: its own, or `scratch` loaded with it.
    #[inline]
    pub fn in_reg(&mut self, s: Src, scratch: u8) -> u8 {
        match s {
            Src::R(r) => r,
            _ => {
                self.load(scratch, s);
                scratch
            }
        }
    }

    /// The parallel move `self.f.moves` (destination home, source).
    pub fn par_move(&mut self) {
        // (Often none: a jump or call without arguments to move.)
        if self.f.moves.is_empty() {
            return;
        }
        let mut moves = std::mem::take(&mut self.f.moves);
        self.par_move_of(&moves);
        moves.clear();
        self.f.moves = moves;
    }

    /// The parallel move `moves` (destination home, source); moves whose
    /// source is their destination are left out.
    fn par_move_of(&mut self, moves: &[(u32, Src)]) {
        // (Room for one or two moves or a swap; the longer sets take it
        // per move.)
        self.c.room();
        // One or two moves (most edges and calls) without the loop below:
        // the same choice of form.
        match *moves {
            [] => return,
            [(d, s)] => {
                let s = Opd::of_src(s);
                if s.h != d {
                    self.mov_opd(d, s);
                }
                return;
            }
            [(d0, s0), (d1, s1)] if d0 != d1 => {
                let (s0, s1) = (Opd::of_src(s0), Opd::of_src(s1));
                match (s0.h != d0, s1.h != d1) {
                    (true, true) => self.par_move2((d0, s0), (d1, s1)),
                    (true, false) => self.mov_opd(d0, s0),
                    (false, true) => self.mov_opd(d1, s1),
                    (false, false) => {}
                }
                return;
            }
            _ => {}
        }
        let mut first = [(0, Opd { h: LIT, k: 0 }); 2];
        let mut n = 0;
        for &(d, s) in moves {
            let s = Opd::of_src(s);
            // (A literal is never a home.)
            if s.h != d {
                if n < 2 {
                    first[n] = (d, s);
                }
                n += 1;
            }
        }
        match n {
            0 => {}
            1 => self.mov_opd(first[0].0, first[0].1),
            2 if first[0].0 != first[1].0 => self.par_move2(first[0], first[1]),
            _ => {
                let mut live = std::mem::take(&mut self.f.pm.live);
                live.clear();
                live.extend(moves.iter().filter(|&&(d, s)| self.home_src(d) != s));
                if live.len() <= SMALL_PAR_MOVE {
                    self.par_move_small(&live);
                } else {
                    self.par_move_general(&live);
                }
                self.f.pm.live = live;
            }
        }
    }

    /// A parallel move of two moves to different homes (a branch edge's
    /// usual one), in the order [`Em::par_move_general`] would emit them
    /// (so the same bytes): the one whose destination the other reads
    /// last, a swap through `rax`, otherwise the second move first.
    fn par_move2(&mut self, (d0, s0): (u32, Opd), (d1, s1): (u32, Opd)) {
        // Whether `s` reads home `d` (a literal reads none).
        let reads = |s: Opd, d: u32| s.h == d;
        match (reads(s1, d0), reads(s0, d1)) {
            (true, true) => {
                self.load_opd(RAX, Opd { h: d0, k: 0 });
                self.mov_opd(d0, s0);
                self.mov_opd(
                    d1,
                    Opd {
                        h: RAX as u32,
                        k: 0,
                    },
                );
            }
            (false, true) => {
                self.mov_opd(d0, s0);
                self.mov_opd(d1, s1);
            }
            (_, false) => {
                self.mov_opd(d1, s1);
                self.mov_opd(d0, s0);
            }
        }
    }

    /// A parallel move of at most [`SMALL_PAR_MOVE`] moves, in the order
    /// [`Em::par_move_general`] emits (so the same bytes), with per-move
    /// tables on the stack instead of the stamped per-home ones: who reads
    /// each move's destination and which move writes each move's source,
    /// found by comparing every pair (a branch edge's three or four
    /// block arguments, a call's arguments).
    fn par_move_small(&mut self, moves: &[(u32, Src)]) {
        const N: usize = SMALL_PAR_MOVE;
        let n = moves.len();
        debug_assert!(n <= N);
        // Per move: its source's location (`NONE`: a literal), how many
        // moves read its destination, the move that writes its source.
        let mut src = [NONE; N];
        for (m, &(_, s)) in moves.iter().enumerate() {
            src[m] = match s {
                Src::R(r) => r as u32,
                Src::X(x) => XMM0 + x as u32,
                Src::S(k) => SLOT0 + k,
                Src::I(_) => NONE,
            };
        }
        let mut readers = [0u32; N];
        let mut writer = [NONE; N];
        for (m, &(d, _)) in moves.iter().enumerate() {
            for j in 0..n {
                readers[m] += (src[j] == d) as u32;
                if moves[j].0 == src[m] {
                    writer[m] = j as u32;
                }
            }
        }
        let mut done = [false; N];
        // Each move is pushed at most once: when no move reads its
        // destination at the start, or when its last reader is emitted.
        let mut ready = [0u32; N];
        let mut nready = 0;
        for (m, &r) in readers[..n].iter().enumerate() {
            if r == 0 {
                ready[nready] = m as u32;
                nready += 1;
            }
        }
        let mut left = n;
        let mut scan = 0;
        loop {
            while nready > 0 {
                nready -= 1;
                let m = ready[nready] as usize;
                let (d, s) = moves[m];
                self.c.room();
                self.mov(self.home_src(d), s);
                done[m] = true;
                left -= 1;
                let w = writer[m];
                if w != NONE {
                    let w = w as usize;
                    readers[w] -= 1;
                    if readers[w] == 0 && !done[w] {
                        ready[nready] = w as u32;
                        nready += 1;
                    }
                }
            }
            if left == 0 {
                break;
            }
            // Only cycles remain: as in `par_move_general`.
            while done[scan] {
                scan += 1;
            }
            let d0 = moves[scan].0;
            self.c.room();
            self.load(RAX, self.home_src(d0));
            let mut m = scan;
            loop {
                let (d, s) = moves[m];
                done[m] = true;
                left -= 1;
                self.c.room();
                if src[m] == d0 {
                    self.mov(self.home_src(d), Src::R(RAX));
                    break;
                }
                self.mov(self.home_src(d), s);
                m = writer[m] as usize;
            }
        }
    }

    /// Any parallel move, in time linear in its size: moves whose
    /// destination no pending move reads go first; the cycles left are
    /// each broken by saving one location in `rax`.
    fn par_move_general(&mut self, moves: &[(u32, Src)]) {
        let loc = |s: Src| match s {
            Src::R(r) => Some(r as usize),
            Src::X(x) => Some((XMM0 + x as u32) as usize),
            Src::S(k) => Some((SLOT0 + k) as usize),
            Src::I(_) => None,
        };
        let mut pm = std::mem::take(&mut self.f.pm);
        pm.gen = pm.gen.wrapping_add(1);
        if pm.gen == 0 {
            pm.stamp.iter_mut().for_each(|s| *s = 0);
            pm.gen = 1;
        }
        let need = SLOT0 as usize + self.f.num_slots as usize + 1;
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
        let mut scan = 0;
        loop {
            while let Some(m) = pm.ready.pop() {
                let (d, s) = moves[m as usize];
                self.c.room();
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
            // Only cycles remain (each location in one is read once).
            while pm.done[scan] {
                scan += 1;
            }
            let m0 = scan;
            let d0 = moves[m0].0;
            self.c.room();
            self.load(RAX, self.home_src(d0));
            let mut m = m0;
            loop {
                let (d, s) = moves[m];
                pm.done[m] = true;
                left -= 1;
                self.c.room();
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

    /// Lays out the frame below the pushed registers: the slots, each
    /// `alloca` (aligned), padding to 16, the outgoing stack arguments.
    /// Returns the bytes to subtract from `rsp` after the pushes.
    fn frame(&mut self) -> Result<u64> {
        let too_large = || bad(self.func, "frame too large");
        let max = crate::isa::x86_64::emit::MAX_FRAME;
        let mut below = 8 * (self.nsaved as u64 + self.f.num_slots as u64);
        self.f.alloca_at.clear();
        for k in 0..self.f.allocas.len() {
            let (size, align) = self.f.allocas[k];
            below = below
                .checked_add(size)
                .and_then(|b| b.checked_add(align - 1))
                .filter(|&b| b <= max)
                .ok_or_else(too_large)?;
            below = below / align * align;
            self.f.alloca_at.push(-(below as i64));
        }
        let total = below.div_ceil(16) * 16 + self.f.outgoing;
        if total > max {
            return Err(too_large());
        }
        Ok(total - 8 * self.nsaved as u64)
    }

    /// `dst = rbp + at` for the next `alloca`.
    pub fn alloca(&mut self, dst: Src) {
        let at = self.f.alloca_at[self.next_alloca];
        self.next_alloca += 1;
        let r = match dst {
            Src::R(r) => r,
            _ => R11,
        };
        match i32::try_from(at) {
            Ok(o) => self.c.rm(true, 0x8d, r, 5, o),
            Err(_) => {
                self.c.mov_imm(r, at as u64);
                self.c.rr(true, 0x03, r, 5);
            }
        }
        if r == R11 {
            self.mov(dst, Src::R(R11));
        }
    }

    fn prologue(&mut self) -> Result<()> {
        // push rbp; mov rbp, rsp (the bytes `debug::unwind` recognizes).
        self.c.raw(&[0x55, 0x48, 0x89, 0xe5]);
        for k in 0..self.f.saved.len() {
            let r = self.f.saved[k];
            self.c.push(r);
        }
        let sub = self.frame()?;
        self.c.sub_rsp_probed(sub);
        Ok(())
    }

    pub fn epilogue(&mut self) {
        let k = -8 * self.nsaved;
        if k == 0 {
            // mov rsp, rbp
            self.c.raw(&[0x48, 0x89, 0xec]);
        } else {
            // lea rsp, [rbp + k]
            self.c.rm(true, 0x8d, 4, 5, k);
        }
        for j in (0..self.f.saved.len()).rev() {
            let r = self.f.saved[j];
            self.c.pop(r);
        }
        self.c.pop(5);
        self.c.raw(&[0xc3]);
    }

    /// The prologue, every block, then the out-of-line stubs. Kept out of
    /// line (one call per function) so that profiles show emission apart.
    #[inline(never)]
    fn body(&mut self) -> Result<()> {
        let func = self.func;
        self.c.room();
        self.prologue()?;
        // Incoming arguments into their homes: registers first (a
        // parallel move), then the stack arguments.
        for (j, &p) in func.params.iter().enumerate() {
            let h = self.f.home[p.index()];
            match self.f.params[j] {
                ArgLoc::Int(r) => self.f.moves.push((h, Src::R(r))),
                ArgLoc::Float(x) => self.f.moves.push((h, Src::X(x))),
                ArgLoc::Stack(_) => {}
            }
        }
        self.par_move();
        for (j, &p) in func.params.iter().enumerate() {
            let ArgLoc::Stack(off) = self.f.params[j] else {
                continue;
            };
            let off = 16 + off as i32;
            self.c.room();
            match self.home_src(self.f.home[p.index()]) {
                Src::R(r) => self.c.load(true, r, 5, off),
                Src::X(x) => self.xload_mem(x, 5, off),
                h => {
                    self.c.load(true, R11, 5, off);
                    self.mov(h, Src::R(R11));
                }
            }
        }
        let dec = self.dec;
        let live = std::mem::take(&mut self.f.live);
        let live_at = std::mem::take(&mut self.f.live_at);
        // An offset per instruction number (see `Em::inst`).
        self.lines.offsets_room(func.insts.len());
        for k in 0..dec.order.len() {
            let b = dec.order[k];
            self.c.bind(Label(b.index() as u32));
            let next = dec.order.get(k + 1).copied();
            // (A compare fused into its block's `br` emits nothing: its
            // arm of `Em::inst` returns at once. Its line entry is then at
            // the offset of the next one, which replaces it.)
            // One `room` per run of instructions (see `Code`).
            // (Not the dead instructions: see `Fast::drop_dead`.)
            let insts = if self.f.all_live {
                &func.blocks[b.index()].insts[..]
            } else {
                &live[live_at[k] as usize..live_at[k + 1] as usize]
            };
            for run in insts.chunks(RUN) {
                self.c.room();
                for &i in run {
                    self.c.step();
                    self.inst(i, next)?;
                }
            }
        }
        // The compiled instructions in code order (see `Fast::live`: the
        // list is filled also when none is dead).
        let all = live.get(live_at[0] as usize..live_at[dec.order.len()] as usize);
        // SAFETY: `Em::inst` noted each compiled instruction (each of
        // `all`) since the `offsets_room` above.
        unsafe { self.lines.resolve_offsets(all.unwrap_or(&[]), &func.srcmap) };
        self.f.live = live;
        self.f.live_at = live_at;
        self.edge_stubs();
        self.trap_stubs();
        Ok(())
    }

    /// The out-of-line edges [`Em::br`] deferred: each one's moves, then
    /// a jump to its target.
    fn edge_stubs(&mut self) {
        let moves = std::mem::take(&mut self.stub_moves);
        for stub in std::mem::take(&mut self.edge_stubs) {
            self.c.room();
            let off = self.c.off();
            self.lines.at(off, stub.loc);
            self.c.bind(stub.label);
            self.par_move_of(&moves[stub.moves]);
            self.jump(stub.target, None);
        }
    }

    /// Each site: `call` its reason's shared stub (attributed to the
    /// trapping instruction); each stub: `mov edi, code; movabs rax,
    /// handler; jmp rax` (as `emit.rs`).
    fn trap_stubs(&mut self) {
        let mut shared: Vec<(TrapCode, Label)> = Vec::new();
        for (site, code, loc) in std::mem::take(&mut self.traps) {
            let s = match shared.iter().find(|s| s.0 == code) {
                Some(&(_, s)) => s,
                None => {
                    let s = self.c.label();
                    shared.push((code, s));
                    s
                }
            };
            self.c.room();
            let off = self.c.off();
            self.lines.at(off, loc);
            self.c.bind(site);
            self.c.call_label(s);
        }
        for (code, s) in shared {
            self.c.room();
            self.c.bind(s);
            self.c.mov_imm(7, code.code() as u64);
            self.c.movabs(RAX, 0);
            self.reloc_here(8, RelocKind::Abs64, TRAP_HANDLER, 0);
            self.c.raw(&[0xff, 0xe0]);
        }
    }

    /// The block-argument moves of an edge to `dest`, into `self.f.moves`.
    #[inline(never)]
    fn edge_moves(&mut self, dest: &BlockCall) {
        self.push_edge_moves(dest);
    }

    /// A `br`'s block-argument moves into `self.f.moves` (emptied first):
    /// the then edge's, then the else edge's; returns the number of the
    /// then edge's. (One call per branch.)
    #[inline(never)]
    fn br_edge_moves(&mut self, then_dest: &BlockCall, else_dest: &BlockCall) -> usize {
        self.f.moves.clear();
        self.push_edge_moves(then_dest);
        let nthen = self.f.moves.len();
        self.push_edge_moves(else_dest);
        nthen
    }

    /// [`Em::edge_moves`]' body.
    #[inline(always)]
    fn push_edge_moves(&mut self, dest: &BlockCall) {
        let func = self.func;
        let params: &[crate::ir::Value] = &func.blocks[dest.block.index()].params;
        let args = func.args(dest.args);
        let f = &mut *self.f;
        // At most one move per argument: one growth check per edge.
        f.moves.reserve(args.len());
        // (A verified edge passes one argument per parameter.)
        for (&a, &p) in args.iter().zip(params) {
            let h = f.home[p.index()];
            match a {
                // (Homes compared as numbers: `src_of_home` is one to one.)
                Operand::Value(v) => {
                    let s = f.home[v.index()];
                    if s != h {
                        f.moves.push((h, src_of_home(s)));
                    }
                }
                // A literal is never a home.
                Operand::Const(c) => f.moves.push((h, Src::I(c.bits(func.values[p.index()].ty)))),
            }
        }
    }

    pub fn jump(&mut self, b: Block, next: Option<Block>) {
        if next != Some(b) {
            self.c.jmp(Label(b.index() as u32));
        }
    }

    /// `jmp` with its block arguments.
    pub fn jmp_edge(&mut self, dest: &BlockCall, next: Option<Block>) {
        self.edge_moves(dest);
        self.par_move();
        self.jump(dest.block, next);
    }

    pub fn call(&mut self, i: Inst) -> Result<()> {
        let func = self.func;
        let d = &func.insts[i.index()];
        let InstKind::Call { callee, args } = &d.kind else {
            return Err(bad(func, "call"));
        };
        let at = self.f.call_locs_at[self.next_call] as usize;
        self.next_call += 1;
        let args = func.args(*args);
        // The type a literal argument takes (looked up for literals only:
        // a value's operand is its home).
        let module = self.module;
        let ty_of = |k: usize, a: Operand| match callee {
            Callee::Direct(s) => module.symbols[s.index()]
                .signature()
                .map_or(Type::I64, |sig| sig.params[k]),
            Callee::Indirect(_) => func.operand_type(a, Type::I64),
        };
        let arg = |e: &Self, k: usize, a: Operand| match a {
            Operand::Value(v) => e.val(v),
            Operand::Const(_) => e.src(a, ty_of(k, a)),
        };
        // Stack arguments first: the register moves may overwrite
        // their sources.
        for (k, &a) in args.iter().enumerate() {
            let ArgLoc::Stack(off) = self.f.call_locs[at + k] else {
                continue;
            };
            let off = off as i32;
            self.c.room();
            match arg(self, k, a) {
                Src::I(b) if i32::try_from(b as i64).is_ok() => {
                    self.c.store_imm(8, b as i64 as i32, 4, off)
                }
                Src::X(x) => self.c.sse_rm(SD, false, MOVS_STORE, x, 4, off),
                s => {
                    let r = self.in_reg(s, R11);
                    self.c.store(8, r, 4, off);
                }
            }
        }
        for (k, &a) in args.iter().enumerate() {
            let d = match self.f.call_locs[at + k] {
                ArgLoc::Int(r) => r as u32,
                ArgLoc::Float(x) => XMM0 + x as u32,
                ArgLoc::Stack(_) => continue,
            };
            let s = arg(self, k, a);
            self.f.moves.push((d, s));
        }
        if let Callee::Indirect(c) = callee {
            let s = self.src(*c, Type::I64);
            self.f.moves.push((CALLEE_REG as u32, s));
        }
        self.par_move();
        match callee {
            Callee::Direct(s) => {
                let name = self.module.symbols[s.index()].name.as_str();
                self.c.raw(&[0xe8, 0, 0, 0, 0]);
                self.reloc_here(4, RelocKind::X86CallPcRel32, name, -4);
            }
            // call r10
            Callee::Indirect(_) => self.c.raw(&[0x41, 0xff, 0xd2]),
        }
        if let Some(r) = d.result {
            let h = self.f.home[r.index()];
            let s = if func.values[r.index()].ty.is_float() {
                Src::X(0)
            } else {
                Src::R(RAX)
            };
            self.mov(self.home_src(h), s);
        }
        // The room the rest of its run needs (the moves used it up).
        self.c.room();
        Ok(())
    }

    pub fn addr(&mut self, d: Src, sym: crate::ir::SymId) {
        let data = &self.module.symbols[sym.index()];
        let r = match d {
            Src::R(r) => r,
            _ => R11,
        };
        if data.linkage == Linkage::Import {
            // A host symbol may be anywhere in the address space.
            self.c.movabs(r, 0);
            self.reloc_here(8, RelocKind::Abs64, &data.name, 0);
        } else {
            let rex = 0x48 | ((r >> 3) << 2);
            let modrm = 0x05 | ((r & 7) << 3);
            self.c.raw(&[rex, 0x8d, modrm, 0, 0, 0, 0]);
            self.reloc_here(4, RelocKind::X86PcRel32, &data.name, -4);
        }
        if r == R11 {
            self.mov(d, Src::R(R11));
        }
    }

    /// `test` of an `i32` condition; the condition code that means true.
    fn test_cond(&mut self, c: Src) -> u8 {
        match c {
            Src::R(r) => self.c.rr(false, 0x85, r, r),
            Src::S(k) => {
                let o = self.slot_off(k);
                // cmp dword [rbp + o], 0
                self.c.rm(false, 0x83, 7, 5, o);
                self.c.raw(&[0]);
            }
            Src::I(_) | Src::X(_) => {}
        }
        CC_NE
    }

    pub fn br(&mut self, i: Inst, next: Option<Block>) -> Result<()> {
        let func = self.func;
        let InstKind::Br {
            cond,
            then_dest,
            else_dest,
        } = &func.insts[i.index()].kind
        else {
            return Err(bad(func, "br"));
        };
        let fused = match cond {
            Operand::Value(c) => match func.values[c.index()].def {
                ValueDef::Inst(ci) if self.dec.fused[ci.index()] => Some(ci),
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
                // A constant condition: one side only.
                let taken = if c.bits(Type::I32) != 0 {
                    then_dest
                } else {
                    else_dest
                };
                self.jmp_edge(taken, next);
                return Ok(());
            }
            (None, &Operand::Value(c)) => {
                let s = self.val(c);
                self.test_cond(s)
            }
        };
        // Both edges' moves in `self.f.moves` (no allocation per branch):
        // the then edge's first.
        let nthen = self.br_edge_moves(then_dest, else_dest);
        let mut moves = std::mem::take(&mut self.f.moves);
        let (then_moves, else_moves) = moves.split_at(nthen);
        let (tl, el) = (
            Label(then_dest.block.index() as u32),
            Label(else_dest.block.index() as u32),
        );
        let inv = cc ^ 1;
        if then_moves.is_empty() && else_moves.is_empty() {
            if next == Some(then_dest.block) {
                self.jcc_any(inv, el);
            } else {
                self.jcc_any(cc, tl);
                self.jump(else_dest.block, next);
            }
        } else if then_moves.is_empty() && next == Some(then_dest.block) {
            // The taken side falls through; the other edge's moves go
            // out of line (see `edge_stubs`).
            let stub = self.c.label();
            self.jcc_any(inv, stub);
            let loc = func.srcmap.inst(i);
            let at = self.stub_moves.len();
            self.stub_moves.extend_from_slice(else_moves);
            self.edge_stubs.push(EdgeStub {
                label: stub,
                moves: at..self.stub_moves.len(),
                target: else_dest.block,
                loc,
            });
        } else if then_moves.is_empty() {
            self.jcc_any(cc, tl);
            self.par_move_of(else_moves);
            self.jump(else_dest.block, next);
        } else if else_moves.is_empty() {
            self.jcc_any(inv, el);
            self.par_move_of(then_moves);
            self.jump(then_dest.block, next);
        } else {
            // The then moves inline, the else side past them.
            let skip = self.c.label();
            self.jcc_any(inv, skip);
            self.par_move_of(then_moves);
            self.jump(then_dest.block, None);
            self.c.bind(skip);
            self.par_move_of(else_moves);
            self.jump(else_dest.block, next);
        }
        moves.clear();
        self.f.moves = moves;
        Ok(())
    }

    /// Sets the flags for integer compare `op` of `a` and `b` (type `ty`);
    /// returns the condition code.
    pub fn compare(
        &mut self,
        op: crate::ir::Opcode,
        ty: Type,
        a: Operand,
        b: Operand,
    ) -> Result<u8> {
        if ty.is_float() {
            return Ok(self.fcompare(op, ty, a, b));
        }
        let w = ty == Type::I64;
        let cc = super::inst::cc_of(op).ok_or_else(|| bad(self.func, "compare"))?;
        let (sa, sb) = (self.opd(a, ty), self.opd(b, ty));
        let ra = if sa.h < XMM0 {
            sa.h as u8
        } else {
            self.load_opd(R11, sa);
            R11
        };
        self.alu_opd(CMP, w, ra, sb);
        Ok(cc)
    }
}

/// Emits the allocated function into `out`.
pub fn emit(
    f: &mut Fast,
    module: &Module,
    sym: &SymbolData,
    func: &Function,
    dec: &Decisions,
    out: &mut CompiledModule,
) -> Result<()> {
    let mut c = std::mem::take(&mut f.code);
    c.reset();
    // About 14 bytes of code per IR instruction: one allocation instead
    // of a doubling series of copies for a large function.
    c.buf.reserve(16 * func.insts.len() + 64);
    for _ in 0..func.blocks.len() {
        c.label();
    }
    f.relocs.clear();
    f.saved.clear();
    for r in [3u8, 12, 13, 14, 15] {
        if f.callee_used & (1 << r) != 0 {
            f.saved.push(r);
        }
    }
    let nsaved = f.saved.len() as i32;
    c.set_slots(f.num_slots, |k| slot_off(nsaved, k));
    let mut e = Em {
        module,
        func,
        dec,
        f,
        c,
        lines: LineRecorder::without_marks(func.srcmap.func, func.insts.len()),
        nsaved,
        traps: Vec::new(),
        edge_stubs: Vec::new(),
        stub_moves: Vec::new(),
        next_alloca: 0,
        next_call: 0,
        sym,
        tables: Vec::new(),
    };
    let r = e.body();
    let Em {
        mut c,
        lines,
        f,
        tables,
        ..
    } = e;
    let r = r.and_then(|()| {
        if !c.resolve() {
            return Err(bad(func, "unbound label"));
        }
        let mut resolved = Vec::with_capacity(tables.len());
        for (name, entries) in tables {
            let offs = entries.iter().map(|&l| c.label_offset(Label(l)));
            let offs: Option<Vec<usize>> = offs.collect();
            resolved.push((name, offs.ok_or_else(|| bad(func, "unbound label"))?));
        }
        let big = c.buf.len() >= 1 << 16;
        let mut code = std::mem::take(&mut c.buf);
        let r = crate::lower::place::place_function(
            module,
            sym,
            &mut code,
            0xcc,
            f.relocs.drain(..),
            resolved,
            lines.finish(),
            out,
        );
        // A large function's buffer is not kept for the next one.
        if !big {
            c.buf = code;
        }
        r
    });
    f.code = c;
    r
}

/// Symbol of the unused-import lint guard.
#[allow(dead_code)]
const _: u8 = CC_E;

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `run` emits with an emitter for `@f` (no code of its
    /// own) and `slots` stack slots below one saved register.
    fn emitted(slots: u32, run: impl FnOnce(&mut Em)) -> Vec<u8> {
        let m =
            crate::ir::parse::parse_module("t.kir", "func @f() {\nentry:\n    ret\n}\n").unwrap();
        let func = &m.funcs[0];
        let mut dec = Decisions::default();
        dec.compute(&m, func).unwrap();
        let mut f = Fast {
            num_slots: slots,
            ..Fast::default()
        };
        let mut c = Code::default();
        c.room();
        c.set_slots(slots, |k| slot_off(1, k));
        let mut e = Em {
            module: &m,
            func,
            dec: &dec,
            f: &mut f,
            sym: &m.symbols[0],
            c,
            lines: LineRecorder::without_marks(Loc::NONE, 0),
            nsaved: 1,
            traps: Vec::new(),
            edge_stubs: Vec::new(),
            stub_moves: Vec::new(),
            next_alloca: 0,
            next_call: 0,
            tables: Vec::new(),
        };
        run(&mut e);
        e.c.buf
    }

    #[test]
    fn two_moves_emit_as_the_general_sequencer() {
        // Homes: integer registers, xmm registers, slots; sources also
        // literals. Every pair of moves to different homes, cycles and
        // chains included.
        let homes = [0, 3, 7, 12, XMM0, XMM0 + 5, SLOT0, SLOT0 + 1];
        let mut srcs: Vec<Src> = homes.iter().map(|&h| home(h)).collect();
        srcs.extend([Src::I(0), Src::I(1 << 40)]);
        let mut pairs = 0;
        let mut swaps = 0;
        for &d0 in &homes {
            for &d1 in &homes {
                if d0 == d1 {
                    continue;
                }
                for &s0 in &srcs {
                    for &s1 in &srcs {
                        let moves = [(d0, s0), (d1, s1)];
                        let general = emitted(2, |e| {
                            e.f.moves.extend(moves);
                            let mut moves = std::mem::take(&mut e.f.moves);
                            moves.retain(|&(d, s)| e.home_src(d) != s);
                            match moves.len() {
                                0 => {}
                                1 => e.mov(e.home_src(moves[0].0), moves[0].1),
                                _ => e.par_move_general(&moves),
                            }
                        });
                        let fast = emitted(2, |e| {
                            e.f.moves.extend(moves);
                            e.par_move();
                        });
                        assert_eq!(fast, general, "{moves:?}");
                        pairs += 1;
                        swaps += (s0 == home(d1) && s1 == home(d0)) as usize;
                    }
                }
            }
        }
        assert!(pairs > 4000 && swaps > 50, "{pairs} {swaps}");
    }

    #[test]
    fn small_moves_emit_as_the_general_sequencer() {
        // Random parallel moves of 3 to 8 moves over register, xmm and
        // slot homes (distinct destinations; sources homes or literals,
        // none its own destination): chains, cycles, fans.
        let homes = [0, 1, 3, 7, 12, XMM0, XMM0 + 5, SLOT0, SLOT0 + 1, SLOT0 + 2];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |k: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % k as u64) as usize
        };
        let mut dependent = 0;
        for _ in 0..3000 {
            let n = 3 + next(6);
            let mut dsts: Vec<u32> = homes.to_vec();
            let mut moves = Vec::new();
            for _ in 0..n {
                let d = dsts.remove(next(dsts.len()));
                let s = loop {
                    let s = match next(8) {
                        0 => Src::I(next(3) as u64 * (1 << 40)),
                        _ => home(homes[next(homes.len())]),
                    };
                    if s != home(d) {
                        break s;
                    }
                };
                moves.push((d, s));
            }
            let general = emitted(3, |e| e.par_move_general(&moves));
            let small = emitted(3, |e| e.par_move_small(&moves));
            assert_eq!(small, general, "{moves:?}");
            // Sets where a move reads another's destination (orders and
            // cycles matter).
            dependent += moves
                .iter()
                .any(|&(d, _)| moves.iter().any(|&(_, s)| s == home(d)))
                as usize;
        }
        assert!(dependent > 1000, "{dependent}");
    }

    use super::src_of_home as home;
}
