//! Pass 2 of the fast generator ([`Fast::allocate`]): one sweep in
//! instruction order gives every value a home (see the parent module's
//! docs), with the register choice and the releases made by masks (see
//! [`Exp`]) rather than by branches on data the predictor cannot learn.

use super::{
    Exp, Fast, Rec, Val, A_NONE, FIXED, FOLDED, NONE, POOL_CALLEE, POOL_CALLER, POOL_XMM, R_FLOAT,
    R_FOLDS, SLOT0, XMM0,
};
use crate::ir::{Function, InstKind, Operand};
use crate::lower::analysis::Decisions;

/// [`Fast::assign`]: the registers a value may have, by `float | fixed << 1
/// | crosses << 2` (see [`Fast::assign`]'s arguments). Every xmm register is
/// caller-saved: a float range crossing a call finds no register.
const ALLOWED: [u32; 8] = [
    !POOL_XMM,
    POOL_XMM,
    !POOL_XMM & !FIXED,
    POOL_XMM,
    POOL_CALLEE,
    0,
    POOL_CALLEE & !FIXED,
    0,
];

/// The registers a value may have ([`ALLOWED`]): `float` an `f32`/`f64`,
/// `fixed` its range contains an instruction using `rcx`/`rdx`, `crosses`
/// a call.
#[inline(always)]
fn allowed(float: bool, fixed: bool, crosses: bool) -> u32 {
    ALLOWED[float as usize | (fixed as usize) << 1 | (crosses as usize) << 2]
}

/// Proof that the CPU has SSE4.1 (only [`Sse41::detect`] makes one):
/// [`latest_end`] then takes each maximum in one instruction (`pmaxsd`)
/// instead of four, in [`Fast::block_sse41`].
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Sse41(());

impl Sse41 {
    /// `Some` if the CPU has SSE4.1 (`std` caches the answer).
    #[inline]
    fn detect() -> Option<Sse41> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sse4.1") {
            return Some(Sse41(()));
        }
        None
    }
}

/// Of the registers in `lanes` (bit `r`: `ends[r]`), the lowest one whose
/// end is the latest, if that end is after `e`. Ends are instruction
/// numbers (below 2^30: [`Fast::analyze`] rejects longer functions).
/// `sse41`: the maxima with SSE4.1 (inlined as one instruction only into
/// a function compiled for it).
#[inline(always)]
fn latest_end(lanes: u32, ends: &[u32; 16], e: u32, sse41: Option<Sse41>) -> Option<u32> {
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
        // SAFETY: SSE2 is always there on x86-64, SSE4.1 (`pmaxsd`) is
        // used only with an `Sse41`, made only if the CPU has it; each
        // unaligned load reads four of `ends`' sixteen `u32`s
        // (`ends[4k..4k + 4]`).
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
                if sse41.is_some() {
                    // (SSE4.1: an `Sse41` exists, see `Sse41::detect`.)
                    std::arch::x86_64::_mm_max_epi32(a, b)
                } else {
                    let gt = _mm_cmpgt_epi32(a, b);
                    _mm_or_si128(_mm_and_si128(gt, a), _mm_andnot_si128(gt, b))
                }
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
    {
        let _ = sse41;
        latest_end_scalar(lanes, ends, e)
    }
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

impl Fast {
    /// Gives `v` (range end `e`) a home at its range start (instruction
    /// `now`): one of the registers `allowed` (see [`allowed`]) or a
    /// slot; `hint` a preferred register. `float`: the value is an
    /// `f32`/`f64` (an xmm register or a slot). Its release is recorded
    /// at its range end (see [`Exp`]), or, if that is `now` and `before` is
    /// false (the sweep has passed `now`'s releases), done here: a result
    /// nothing uses gets the register it would get and leaves it free.
    ///
    /// The choice is made with masks and selects, without a branch on the
    /// free registers: which class has one is data the predictor cannot
    /// learn.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn assign<const LEND: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        v: usize,
        all_free: &mut u32,
        float: bool,
        allowed: u32,
        e: u32,
        hint: u32,
        now: u32,
        before: bool,
        sse41: Option<Sse41>,
    ) {
        // All ones unless `v` is released right away. (`e` < `now` happens:
        // the x86_64 corpus has a result with range [1, 0]; it is released
        // here, as the caller did before; with `before` a value keeps its
        // home for good, as it always did: a release recorded at a passed
        // position is never read.)
        let live = 0u32.wrapping_sub((before || e > now) as u32);
        let seq = self.seq;
        self.seq += 1;
        let f = *all_free & allowed;
        // Lent registers (see `Lend`) for a value that ends in the block.
        // (`LEND` false: nothing is lent in this block.)
        let lend = if LEND {
            self.lent & allowed & 0u32.wrapping_sub((e <= self.lend_end) as u32)
        } else {
            0
        };
        // (Tested on `f` and `lend` alone, not on the choice below: the
        // branch does not wait for the hint's load.)
        let h = if f | lend == 0 {
            self.spills += 1;
            if let Some(r) = self.steal::<LEND>(vals, home, exp, v, e, float, allowed, now, sse41) {
                exp[e as usize].free |= 1 << r;
                self.reg_seq[r as usize & 31] = seq;
                r
            } else {
                let s = self.pop_free_slot().unwrap_or_else(|| {
                    self.num_slots += 1;
                    self.num_slots - 1
                });
                if live == 0 {
                    self.free_slots.push((s, e));
                } else {
                    vals[v].def_pos = seq;
                    vals[v].exp_next = exp[e as usize].head;
                    exp[e as usize].head = v as u32;
                }
                SLOT0 + s
            }
        } else {
            self.pick::<LEND>(vals, exp, v, all_free, f, lend, hint, e, live, seq)
        };
        home[v] = h;
    }

    /// [`Fast::assign`] when `v` gets a free (`f`) or lent (`lend`)
    /// register, at least one of them (not 0): a hinted register first
    /// (lent or free); else a free caller-saved one that is not
    /// `rcx`/`rdx`, a free caller-saved one, a free one; a lent one last
    /// (it keeps free registers for values that outlive the block).
    /// Returns it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn pick<const LEND: bool>(
        &mut self,
        vals: &mut [Val],
        exp: &mut [Exp],
        v: usize,
        all_free: &mut u32,
        f: u32,
        lend: u32,
        hint: u32,
        e: u32,
        live: u32,
        seq: u32,
    ) -> u32 {
        // `hb`: 0 for a slot or no hint.
        let hb = (1u64 << hint.min(32)) as u32;
        let h1 = hb & (f | lend);
        let fc = f & (POOL_CALLER | POOL_XMM);
        let fcn = fc & !FIXED;
        let mut m = lend;
        m = if f != 0 { f } else { m };
        m = if fc != 0 { fc } else { m };
        m = if fcn != 0 { fcn } else { m };
        m = if h1 != 0 { h1 } else { m };
        let pick = m.trailing_zeros();
        if LEND && lend & (1 << pick) != 0 {
            // Borrowed: the lender keeps owning it (`release` gives it
            // back to the lent set).
            debug_assert_eq!(*all_free & (1 << pick), 0);
            self.lent &= !(1 << pick & live);
            vals[v].def_pos = seq;
            vals[v].exp_next = exp[e as usize].head;
            exp[e as usize].head = v as u32;
            pick
        } else {
            *all_free &= !(1 << pick & live);
            // (`pick` < 32: `m` is not 0.)
            self.reg_owner[pick as usize & 31] = v as u32;
            self.reg_end[pick as usize & 31] = e;
            self.reg_seq[pick as usize & 31] = seq;
            exp[e as usize].free |= 1 << pick;
            pick
        }
    }

    /// No register for `v` (range end `e`): if the live value in one it
    /// could have ends later than `v` (the furthest such, as Poletto and
    /// Sarkar's linear scan spills), that value moves to a new stack slot
    /// for its whole range (nothing is emitted yet) and `v` takes its
    /// register. Without
    /// this the short temporaries of an inner loop went to slots while
    /// loop-invariant values kept the registers (lcs ran 1.34x slower).
    /// The victim's slot is a free one only if nothing used it during the
    /// victim's range so far, else a new one. `allowed`: the registers
    /// `v` may have (from [`ALLOWED`]; its registers outside the pool are
    /// never given to a value, so their `reg_end` stays 0 and they never
    /// win).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn steal<const LEND: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        v: usize,
        e: u32,
        float: bool,
        allowed: u32,
        now: u32,
        sse41: Option<Sse41>,
    ) -> Option<u32> {
        if e <= now {
            return None;
        }
        // A register lent in this block may hold a borrower.
        let allowed = if LEND {
            allowed & !self.lent_all
        } else {
            allowed
        };
        // `reg_end[r]` is the end of `r`'s current owner if it still
        // holds it, else (freed, or never given) at most `now` < `e`: it
        // never wins. The victim: the allowed register with the latest
        // end after `e`, the lowest such.
        let base = if float { XMM0 } else { 0 };
        let ends: &[u32; 16] = self.reg_end[base as usize..base as usize + 16]
            .try_into()
            .unwrap();
        let best = match latest_end((allowed >> base) & 0xffff, ends, e, sse41) {
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
        // `o` leaves the free mask of its end for that end's list, at the
        // place of its assignment number.
        let eo = vals[o].end as usize;
        exp[eo].free &= !(1 << best);
        let so = self.reg_seq[best as usize];
        vals[o].def_pos = so;
        let mut at = exp[eo].head;
        if at == NONE || vals[at as usize].def_pos < so {
            vals[o].exp_next = at;
            exp[eo].head = o as u32;
        } else {
            loop {
                let next = vals[at as usize].exp_next;
                if next == NONE || vals[next as usize].def_pos < so {
                    break;
                }
                at = next;
            }
            vals[o].exp_next = vals[at as usize].exp_next;
            vals[at as usize].exp_next = o as u32;
        }
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

    /// Appends `s` to the free slots if `keep`, without a branch on it
    /// (`s` is written past the end either way).
    #[inline(always)]
    fn push_slot_if(&mut self, s: (u32, u32), keep: bool) {
        if self.free_slots.len() == self.free_slots.capacity() {
            self.free_slots.reserve(1);
        }
        let len = self.free_slots.len();
        // SAFETY: `len < capacity` (reserved above), so the write stays in
        // the allocation; the length grows only over the element just
        // written (`(u32, u32)` has no drop).
        unsafe {
            self.free_slots.as_mut_ptr().add(len).write(s);
            self.free_slots.set_len(len + keep as usize);
        }
    }

    /// [`Fast::release`] of a borrower (see `Lend`), out of the way of
    /// [`Fast::block`]'s loop.
    #[cold]
    #[inline(never)]
    fn release_cold(&mut self, vals: &[Val], home: &[u32], v: usize, mut free: u32) -> u32 {
        self.release(vals, home, v, &mut free);
        free
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

    /// The number of the call at index `c` of `calls` (`NONE`: none,
    /// past the end), see [`Rec::c`].
    #[inline(always)]
    fn call_at(&self, c: u32) -> u32 {
        self.calls.get(c as usize).copied().unwrap_or(NONE)
    }

    /// The number of the `rcx`/`rdx` use at index `f` of `fixed`
    /// (`NONE`: none, past the end), see [`Rec::f`].
    #[inline(always)]
    fn fixed_at(&self, f: u32) -> u32 {
        self.fixed.get(f as usize).copied().unwrap_or(NONE)
    }

    /// Pass 2: a home for every value.
    pub fn allocate(&mut self, func: &Function, dec: &Decisions) {
        // The arrays the sweep reads and writes most, as arguments
        // (`noalias` to the compiler: a store through one does not force
        // reloading the others' pointers from `self`).
        let mut vals = std::mem::take(&mut self.vals);
        let mut home = std::mem::take(&mut self.home);
        let mut exp = std::mem::take(&mut self.exp);
        let mut recs = std::mem::take(&mut self.recs);
        self.alloc_sweep(func, dec, &mut vals, &mut home, &mut exp, &mut recs);
        self.vals = vals;
        self.home = home;
        self.exp = exp;
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
        exp: &mut [Exp],
        recs: &mut [Rec],
    ) {
        // Lets the compiler drop `home`'s bounds checks after `vals`' ones.
        let home = &mut home[..vals.len()];
        self.free_slots.clear();
        self.free_head = 0;
        self.num_slots = 0;
        self.spills = 0;
        self.reg_owner = [NONE; 32];
        self.reg_end = [0; 32];
        // (`reg_seq` is not reset: only a steal's victim's entry is read,
        // and a victim was given its register in this function, as
        // `reg_end` is reset.)
        self.seq = 0;
        self.lent = 0;
        self.lent_all = 0;
        self.lend_end = 0;
        let mut free: u32 = POOL_CALLER | POOL_CALLEE | POOL_XMM;
        let mut lc = 0usize;
        // The previous block's terminator's `Rec::c` (read before its
        // block rewrites it).
        let mut prev_c = 0;
        let sse41 = Sse41::detect();
        // (A range from before the first instruction: a call or fixed use
        // at 0 is in it.)
        let (nc, nf) = (self.call_at(0), self.fixed_at(0));
        for (j, &p) in func.params.iter().enumerate() {
            let pi = p.index();
            let cr = nc < vals[pi].end;
            let fx = nf <= vals[pi].end;
            let hint = match self.params[j] {
                crate::lower::abi::ArgLoc::Int(r) => r as u32,
                crate::lower::abi::ArgLoc::Float(x) => XMM0 + x as u32,
                crate::lower::abi::ArgLoc::Stack(_) => NONE,
            };
            let fl = func.values[pi].ty.is_float();
            self.assign::<true>(
                vals,
                home,
                exp,
                pi,
                &mut free,
                fl,
                allowed(fl, fx, cr),
                vals[pi].end,
                hint,
                0,
                true,
                None,
            );
        }
        for (k, &b) in dec.order.iter().enumerate() {
            let bd = &func.blocks[b.index()];
            let first = self.first[k];
            // The first call at or after `first` (the calls before it are
            // counted at `first - 1`) and the first fixed use.
            let nc = self.call_at(prev_c);
            let nf = recs
                .get(first as usize)
                .map_or(NONE, |r| self.fixed_at(r.f));
            for &p in &bd.params {
                let pi = p.index();
                if home[pi] == NONE {
                    let cr = nc < vals[pi].end;
                    let fx = nf <= vals[pi].end;
                    let fl = func.values[pi].ty.is_float();
                    self.assign::<true>(
                        vals,
                        home,
                        exp,
                        pi,
                        &mut free,
                        fl,
                        allowed(fl, fx, cr),
                        vals[pi].end,
                        NONE,
                        first,
                        true,
                        None,
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
            // The terminator (last) can be a jump: the first call after
            // it, the first fixed use from it on (before `block` rewrites
            // its record).
            let t = recs.get(last as usize).copied();
            let (nc, nf) = t.map_or((NONE, NONE), |r| (self.call_at(r.c), self.fixed_at(r.f)));
            prev_c = t.map_or(0, |r| r.c);
            // Most blocks lend nothing (no `lent`, no `pending`): their
            // instructions take a loop without the lending checks.
            // Blocks of a function where more than a quarter of the
            // instructions so far found no register take the release
            // lists without a branch per instruction (values in slots end
            // about as often, at places the predictor cannot tell; that
            // costs ~14 host instructions per IR instruction, a
            // misprediction ~20 cycles: it pays from about there on; the
            // generated 10k function is at a third, the 1k one at a
            // sixth). Lending blocks are rare.
            free = if !self.pending.is_empty() {
                self.run_block::<true, false>(vals, home, exp, recs, first, last, free, sse41)
            } else if self.spills * 4 > first {
                self.run_block::<false, true>(vals, home, exp, recs, first, last, free, sse41)
            } else {
                self.run_block::<false, false>(vals, home, exp, recs, first, last, free, sse41)
            };
            let n = last;
            let d = &func.insts[bd.insts[bd.insts.len() - 1].index()];
            match &d.kind {
                InstKind::Jmp { dest } => {
                    free = self.edge_params(vals, home, exp, func, dest, free, nc, nf, n)
                }
                InstKind::Br {
                    then_dest,
                    else_dest,
                    ..
                } => {
                    free = self.edge_params(vals, home, exp, func, then_dest, free, nc, nf, n);
                    free = self.edge_params(vals, home, exp, func, else_dest, free, nc, nf, n);
                }
                _ => {}
            }
        }
        // The callee-saved registers given to a value: those with an
        // owner (owners are reset per function, never when released;
        // a steal or a borrow reuses a register that has one). Once here
        // rather than at each assignment.
        self.callee_used = 0;
        for r in 0..16 {
            if self.reg_owner[r] != NONE {
                self.callee_used |= 1 << r & POOL_CALLEE;
            }
        }
    }

    /// The instructions `first..=last` of a block: releases, then a home
    /// for each result. `LEND`: the block lends registers (see `Lend`).
    /// `SPILLS`: values in stack slots end often in this function, at
    /// instructions the predictor cannot tell: the first of each release
    /// list is taken without a branch.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn block<const LEND: bool, const SPILLS: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        recs: &mut [Rec],
        first: u32,
        last: u32,
        free: u32,
    ) -> u32 {
        self.block_body::<LEND, SPILLS>(vals, home, exp, recs, first, last, free, None)
    }

    /// [`Fast::block`] compiled for SSE4.1 (see [`Sse41`]).
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "sse4.1")]
    fn block_sse41<const LEND: bool, const SPILLS: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        recs: &mut [Rec],
        first: u32,
        last: u32,
        free: u32,
        sse41: Sse41,
    ) -> u32 {
        self.block_body::<LEND, SPILLS>(vals, home, exp, recs, first, last, free, Some(sse41))
    }

    /// [`Fast::block`] on the CPU's best variant (`sse41`: see
    /// [`Sse41::detect`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn run_block<const LEND: bool, const SPILLS: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        recs: &mut [Rec],
        first: u32,
        last: u32,
        free: u32,
        sse41: Option<Sse41>,
    ) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = sse41 {
            // SAFETY: an `Sse41` exists only if the CPU has SSE4.1.
            return unsafe {
                self.block_sse41::<LEND, SPILLS>(vals, home, exp, recs, first, last, free, t)
            };
        }
        let _ = sse41;
        self.block::<LEND, SPILLS>(vals, home, exp, recs, first, last, free)
    }

    /// [`Fast::block`]'s loop.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn block_body<const LEND: bool, const SPILLS: bool>(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        recs: &mut [Rec],
        first: u32,
        last: u32,
        mut free: u32,
        sse41: Option<Sse41>,
    ) -> u32 {
        // One bounds check each here instead of one per instruction.
        let home = &mut home[..vals.len()];
        let recs = &mut recs[..last as usize + 1];
        let _ = &exp[last as usize];
        // The stand-in for an empty release list: the entry past the
        // function's values ([`Fast::analyze`] keeps its sink there, a
        // value in no list, with no home: also what a hint from a literal
        // operand reads).
        let none = vals.len().checked_sub(1).expect("the stand-in value");
        // `SPILLS`: first, in a loop without branches, each record's `c`
        // becomes the registers its result may have and `f` its end
        // (read nowhere else: [`Fast::alloc_sweep`] takes the
        // terminator's before), so that the loop below tests for a free
        // register after one load, not after a chain of four (record,
        // end, next call and fixed use, mask): that test is what the
        // sweep mispredicts most where a quarter of the results find no
        // register, and each misprediction then costs less. (Elsewhere
        // the test is predicted well: the loop costs more than it saves.)
        if SPILLS {
            for rec in &mut recs[first as usize..] {
                (rec.c, rec.f) = self.ready(vals, rec, none);
            }
        }
        for n in first..last + 1 {
            // Free what ends here (nothing is added at `n` any more:
            // it is read once).
            // SAFETY: `n <= last < exp.len()` (checked above). Unchecked
            // because the compiler keeps a compare and a branch per
            // instruction otherwise.
            let x = unsafe { *exp.get_unchecked(n as usize) };
            free |= x.free;
            // The list's first value without a branch on whether there is
            // one (a third of the instructions release a slot, in no order
            // the predictor learns): the stand-in past the values when it
            // is empty (`NONE` is above it), whose slot is written but not
            // counted. (A listed value ends at `n`.)
            // (`SPILLS` false: slots are released rarely enough that the
            // branch costs less.)
            let mut v = x.head;
            if SPILLS {
                let head = (x.head as usize).min(none);
                // SAFETY: `head <= none < vals.len() == home.len()`
                // (`home` was cut above).
                let h = unsafe { *home.get_unchecked(head) };
                v = unsafe { vals.get_unchecked(head).exp_next };
                if h >= SLOT0 {
                    self.push_slot_if((h.wrapping_sub(SLOT0), n), head != none);
                } else {
                    free = self.release_cold(vals, home, head, free);
                }
            }
            while v != NONE {
                let next = vals[v as usize].exp_next;
                self.release(vals, home, v as usize, &mut free);
                v = next;
            }
            if LEND && !self.pending.is_empty() {
                self.activate_lends(home, n);
            }
            // SAFETY: `n <= last < recs.len()` (`recs` was cut to
            // `last + 1` entries above).
            let rec = unsafe { *recs.get_unchecked(n as usize) };
            if rec.r != NONE {
                let ri = rec.r as usize;
                // (`SPILLS`: rewritten above.)
                let (al, e) = if SPILLS {
                    (rec.c, rec.f)
                } else {
                    self.ready(vals, &rec, none)
                };
                if rec.a & R_FOLDS != 0 && e == n + 1 {
                    // Used only as the next access's pointer.
                    home[ri] = FOLDED;
                } else {
                    // (`A_NONE`, or the value count for a literal, is past
                    // the values: `get` gives `None`.)
                    let a = rec.a & A_NONE;
                    let mut hint = home.get(a as usize).copied().unwrap_or(NONE);
                    // A jump argument: its parameter's register if lent
                    // (nothing is lent in most blocks, most of the time:
                    // no scan then).
                    if LEND && self.lent != 0 {
                        if let Some(&(_, h)) = self.arg_hints.iter().find(|a| a.0 == ri as u32) {
                            if self.lent & (1 << h) != 0 {
                                hint = h;
                            }
                        }
                    }
                    let fl = rec.a & R_FLOAT != 0;
                    self.assign::<LEND>(
                        vals, home, exp, ri, &mut free, fl, al, e, hint, n, false, sse41,
                    );
                }
            }
        }
        free
    }

    /// The registers the result of an instruction (record `rec`) may have
    /// and its end; `none`: the stand-in value (see [`Fast::block`]),
    /// whose end is taken if there is no result.
    #[inline(always)]
    fn ready(&self, vals: &[Val], rec: &Rec, none: usize) -> (u32, u32) {
        let e = vals[(rec.r as usize).min(none)].end;
        // The first call after the instruction (one there is not crossed)
        // and the first fixed use from it on.
        let cr = self.call_at(rec.c) < e;
        let fx = self.fixed_at(rec.f) <= e;
        (allowed(rec.a & R_FLOAT != 0, fx, cr), e)
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
    /// writes first (hint: the argument's home); `nc`: the first call
    /// after `n`, `nf` the first `rcx`/`rdx` use from `n` on (`NONE`:
    /// none). Takes and returns the free registers (by value: the sweep
    /// can keep them in a register).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn edge_params(
        &mut self,
        vals: &mut [Val],
        home: &mut [u32],
        exp: &mut [Exp],
        func: &Function,
        dest: &crate::ir::BlockCall,
        mut free: u32,
        nc: u32,
        nf: u32,
        n: u32,
    ) -> u32 {
        let params = &func.blocks[dest.block.index()].params;
        let args = func.args(dest.args);
        for (pk, &p) in params.iter().enumerate() {
            let pi = p.index();
            if home[pi] == NONE {
                let hint = match args.get(pk) {
                    Some(Operand::Value(a)) => home[a.index()],
                    _ => NONE,
                };
                let cr = nc < vals[pi].end;
                let fx = nf <= vals[pi].end;
                let fl = func.values[pi].ty.is_float();
                self.assign::<true>(
                    vals,
                    home,
                    exp,
                    pi,
                    &mut free,
                    fl,
                    allowed(fl, fx, cr),
                    vals[pi].end,
                    hint,
                    n,
                    false,
                    None,
                );
            }
        }
        free
    }
}

#[cfg(test)]
mod tests {
    use super::{latest_end_scalar, Sse41};

    /// Both variants of `latest_end` (SSE2 and, if the CPU has it,
    /// SSE4.1) against the expected answers and the scalar scan.
    #[test]
    fn latest_end_picks_the_lowest_register_with_the_latest_end() {
        for sse41 in [None, Sse41::detect()] {
            let latest_end =
                |l: u32, ends: &[u32; 16], e: u32| super::latest_end(l, ends, e, sse41);
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
}
