//! The dispatch loop: executes decoded instructions on an explicit frame
//! stack.
//!
//! Invariants:
//! - the running function's slots are `regs[base..top]`; a callee's frame
//!   starts at the caller's `top`, so frames never overlap;
//! - an IR call pushes a [`Frame`] (the caller's state) instead of recursing
//!   in Rust, so the Rust stack depth is constant whatever the IR does;
//!   the number of frames and the total of slots are bounded, and exceeding
//!   either bound is `Error::Runtime`;
//! - the alloca stack pointer `sp` (an offset into the stack buffer) is
//!   saved with each frame and restored on return.

use super::decode::{Body, IrFunc, Program, K};
use super::{NONE, VALUE_SLOT_BUDGET};
use crate::error::{Error, Result, TrapCode};
use crate::value::Val;
use smallvec::SmallVec;

/// What a run reads: the decoded program and the addresses of the
/// function-address table and the alloca stack.
pub(super) struct Env<'a> {
    pub prog: &'a Program,
    pub fn_table: u64,
    pub stack: u64,
    pub stack_len: u64,
}

/// A suspended caller.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Where the caller resumes.
    pc: u32,
    base: u32,
    top: u32,
    /// The caller's slot receiving the result, or `NONE`.
    dst: u32,
    /// The caller's alloca stack pointer and frame address.
    sp: u64,
    fp: u64,
}

/// Reusable run state: the value slots and the frame stack.
pub(super) struct State {
    regs: Vec<u64>,
    frames: Vec<Frame>,
    pub depth_limit: usize,
    /// Control transfers (branches, jumps, switches, calls) a run may make;
    /// `None` is unlimited.
    pub fuel: Option<u64>,
}

fn f32v(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

fn f64v(x: u64) -> f64 {
    f64::from_bits(x)
}

fn f32b(x: f32) -> u64 {
    x.to_bits() as u64
}

fn i32v(x: u64) -> i32 {
    x as u32 as i32
}

/// An `i32` result, zero-extended into its slot.
fn i32b(x: i32) -> u64 {
    x as u32 as u64
}

/// Sets up the frame of `f` at `base`: makes room for its slots, copies its
/// literals in and pushes its alloca area. Returns the area's address.
fn enter(regs: &mut Vec<u64>, env: &Env, f: &IrFunc, base: usize, sp: &mut u64) -> Result<u64> {
    let need = base + f.nslots as usize;
    if need > VALUE_SLOT_BUDGET {
        return Err(Error::Runtime(format!(
            "interpreter value stack of {VALUE_SLOT_BUDGET} slots exhausted"
        )));
    }
    if regs.len() < need {
        let grown = need.max(regs.len() * 2).min(VALUE_SLOT_BUDGET);
        regs.resize(grown, 0);
    }
    let consts = &env.prog.consts[f.consts_start as usize..][..f.nconsts as usize];
    regs[base + f.consts_at as usize..][..consts.len()].copy_from_slice(consts);
    if f.frame_size == 0 {
        return Ok(env.stack + *sp);
    }
    let exhausted = || Error::Runtime(format!("alloca stack of {} bytes exhausted", env.stack_len));
    let at = (env.stack + *sp)
        .checked_next_multiple_of(f.frame_align)
        .ok_or_else(exhausted)?;
    let end = (at - env.stack)
        .checked_add(f.frame_size)
        .filter(|&e| e <= env.stack_len)
        .ok_or_else(exhausted)?;
    *sp = end;
    Ok(at)
}

impl State {
    pub fn new(depth_limit: usize) -> State {
        State {
            regs: Vec::new(),
            frames: Vec::new(),
            depth_limit,
            fuel: None,
        }
    }

    /// Runs function `fi` with `args` (bits, already checked against its
    /// signature) to completion.
    pub fn run(&mut self, env: &Env, fi: u32, args: &[u64]) -> Result<Option<u64>> {
        self.frames.clear();
        let result = self.exec(env, fi, args);
        self.frames.clear();
        // A deep recursion may have grown these a lot; keep a long-lived
        // interpreter from holding on to that memory.
        const KEEP_SLOTS: usize = 1 << 20;
        if self.regs.len() > KEEP_SLOTS {
            self.regs.truncate(KEEP_SLOTS);
            self.regs.shrink_to_fit();
            self.frames.shrink_to(KEEP_SLOTS / 16);
        }
        result
    }

    fn exec(&mut self, env: &Env, fi: u32, args: &[u64]) -> Result<Option<u64>> {
        let prog = env.prog;
        let code = &prog.code[..];
        let regs = &mut self.regs;
        let frames = &mut self.frames;
        let depth_limit = self.depth_limit;
        // Counting down from u64::MAX never reaches zero in practice, so an
        // unlimited run pays the same single decrement per transfer.
        let fuel_limit = self.fuel;
        let mut fuel = fuel_limit.map_or(u64::MAX, |n| n.saturating_add(1));

        let f = match prog.funcs.get(fi as usize).map(|e| &e.body) {
            Some(Body::Ir(f)) => f,
            _ => return Err(Error::Argument("entry is not an IR function".into())),
        };
        let mut base = 0usize;
        let mut sp = 0u64;
        let mut fp = enter(regs, env, f, base, &mut sp)?;
        for (&p, &a) in f.params.iter().zip(args) {
            regs[base + p as usize] = a;
        }
        let mut top = base + f.nslots as usize;
        let mut pc = f.entry_pc as usize;

        macro_rules! r {
            ($x:expr) => {
                regs[base + $x as usize]
            };
        }
        // Spends one unit of fuel: every loop and every recursion passes
        // through a branch or call, so a limited run always ends.
        macro_rules! burn {
            () => {
                fuel -= 1;
                if fuel == 0 {
                    return Err(Error::Runtime(format!(
                        "fuel of {} control transfers exhausted",
                        fuel_limit.unwrap_or(u64::MAX)
                    )));
                }
            };
        }
        // The trapping instruction is the one just fetched; each frame
        // resumes after its call.
        macro_rules! trap {
            ($c:expr) => {
                return Err(prog.trap($c, pc - 1, frames.iter().rev().map(|f| f.pc as usize)))
            };
        }
        // The effective address of a load (`p + off` slots).
        macro_rules! ea {
            ($p:expr, $off:expr) => {
                r!($p).wrapping_add(r!($off)) as usize
            };
        }
        macro_rules! load {
            ($t:ty, $i:expr) => {{
                let p = ea!($i.a, $i.b) as *const $t;
                // SAFETY: SPEC section 5 makes loading from memory the
                // program does not own undefined behaviour of the program;
                // for memory it owns (data, alloca, malloc) the address is
                // valid for this read. Unaligned access is allowed, hence
                // `read_unaligned`.
                unsafe { std::ptr::read_unaligned(p) }
            }};
        }
        macro_rules! store {
            ($t:ty, $i:expr) => {{
                let p = ea!($i.b, $i.c) as *mut $t;
                let v = r!($i.a) as $t;
                // SAFETY: as for loads: storing to memory the program does
                // not own (const data included) is undefined behaviour of
                // the program (SPEC section 5).
                unsafe { std::ptr::write_unaligned(p, v) }
            }};
        }

        loop {
            let i = code[pc];
            pc += 1;
            match i.k {
                K::Copy => r!(i.d) = r!(i.a),
                K::Add32 => r!(i.d) = (r!(i.a) as u32).wrapping_add(r!(i.b) as u32) as u64,
                K::Add64 => r!(i.d) = r!(i.a).wrapping_add(r!(i.b)),
                K::Sub32 => r!(i.d) = (r!(i.a) as u32).wrapping_sub(r!(i.b) as u32) as u64,
                K::Sub64 => r!(i.d) = r!(i.a).wrapping_sub(r!(i.b)),
                K::Mul32 => r!(i.d) = (r!(i.a) as u32).wrapping_mul(r!(i.b) as u32) as u64,
                K::Mul64 => r!(i.d) = r!(i.a).wrapping_mul(r!(i.b)),
                K::Sdiv32 => {
                    let (x, y) = (i32v(r!(i.a)), i32v(r!(i.b)));
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    if x == i32::MIN && y == -1 {
                        trap!(TrapCode::IntegerOverflow);
                    }
                    r!(i.d) = i32b(x / y);
                }
                K::Sdiv64 => {
                    let (x, y) = (r!(i.a) as i64, r!(i.b) as i64);
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    if x == i64::MIN && y == -1 {
                        trap!(TrapCode::IntegerOverflow);
                    }
                    r!(i.d) = (x / y) as u64;
                }
                K::Udiv32 => {
                    let (x, y) = (r!(i.a) as u32, r!(i.b) as u32);
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    r!(i.d) = (x / y) as u64;
                }
                K::Udiv64 => {
                    let (x, y) = (r!(i.a), r!(i.b));
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    r!(i.d) = x / y;
                }
                K::Srem32 => {
                    let (x, y) = (i32v(r!(i.a)), i32v(r!(i.b)));
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    // MIN % -1 is 0 (SPEC), which wrapping_rem gives.
                    r!(i.d) = i32b(x.wrapping_rem(y));
                }
                K::Srem64 => {
                    let (x, y) = (r!(i.a) as i64, r!(i.b) as i64);
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    r!(i.d) = x.wrapping_rem(y) as u64;
                }
                K::Urem32 => {
                    let (x, y) = (r!(i.a) as u32, r!(i.b) as u32);
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    r!(i.d) = (x % y) as u64;
                }
                K::Urem64 => {
                    let (x, y) = (r!(i.a), r!(i.b));
                    if y == 0 {
                        trap!(TrapCode::DivisionByZero);
                    }
                    r!(i.d) = x % y;
                }
                K::And => r!(i.d) = r!(i.a) & r!(i.b),
                K::Or => r!(i.d) = r!(i.a) | r!(i.b),
                K::Xor => r!(i.d) = r!(i.a) ^ r!(i.b),
                // wrapping_shl/shr take the count modulo the width.
                K::Shl32 => r!(i.d) = (r!(i.a) as u32).wrapping_shl(r!(i.b) as u32) as u64,
                K::Shl64 => r!(i.d) = r!(i.a).wrapping_shl(r!(i.b) as u32),
                K::Shr32 => r!(i.d) = (r!(i.a) as u32).wrapping_shr(r!(i.b) as u32) as u64,
                K::Shr64 => r!(i.d) = r!(i.a).wrapping_shr(r!(i.b) as u32),
                K::Sar32 => r!(i.d) = i32b(i32v(r!(i.a)).wrapping_shr(r!(i.b) as u32)),
                K::Sar64 => r!(i.d) = (r!(i.a) as i64).wrapping_shr(r!(i.b) as u32) as u64,
                K::Neg32 => r!(i.d) = (r!(i.a) as u32).wrapping_neg() as u64,
                K::Neg64 => r!(i.d) = r!(i.a).wrapping_neg(),
                K::Not32 => r!(i.d) = !(r!(i.a) as u32) as u64,
                K::Not64 => r!(i.d) = !r!(i.a),
                K::Fadd32 => r!(i.d) = f32b(f32v(r!(i.a)) + f32v(r!(i.b))),
                K::Fadd64 => r!(i.d) = (f64v(r!(i.a)) + f64v(r!(i.b))).to_bits(),
                K::Fsub32 => r!(i.d) = f32b(f32v(r!(i.a)) - f32v(r!(i.b))),
                K::Fsub64 => r!(i.d) = (f64v(r!(i.a)) - f64v(r!(i.b))).to_bits(),
                K::Fmul32 => r!(i.d) = f32b(f32v(r!(i.a)) * f32v(r!(i.b))),
                K::Fmul64 => r!(i.d) = (f64v(r!(i.a)) * f64v(r!(i.b))).to_bits(),
                K::Fdiv32 => r!(i.d) = f32b(f32v(r!(i.a)) / f32v(r!(i.b))),
                K::Fdiv64 => r!(i.d) = (f64v(r!(i.a)) / f64v(r!(i.b))).to_bits(),
                K::Fneg32 => r!(i.d) = r!(i.a) ^ 0x8000_0000,
                K::Fneg64 => r!(i.d) = r!(i.a) ^ (1 << 63),
                K::Fabs32 => r!(i.d) = r!(i.a) & 0x7fff_ffff,
                K::Fabs64 => r!(i.d) = r!(i.a) & !(1 << 63),
                K::Fsqrt32 => r!(i.d) = f32b(f32v(r!(i.a)).sqrt()),
                K::Fsqrt64 => r!(i.d) = f64v(r!(i.a)).sqrt().to_bits(),
                K::Eq => r!(i.d) = (r!(i.a) == r!(i.b)) as u64,
                K::Ne => r!(i.d) = (r!(i.a) != r!(i.b)) as u64,
                K::Slt32 => r!(i.d) = (i32v(r!(i.a)) < i32v(r!(i.b))) as u64,
                K::Slt64 => r!(i.d) = ((r!(i.a) as i64) < (r!(i.b) as i64)) as u64,
                K::Sle32 => r!(i.d) = (i32v(r!(i.a)) <= i32v(r!(i.b))) as u64,
                K::Sle64 => r!(i.d) = ((r!(i.a) as i64) <= (r!(i.b) as i64)) as u64,
                K::Sgt32 => r!(i.d) = (i32v(r!(i.a)) > i32v(r!(i.b))) as u64,
                K::Sgt64 => r!(i.d) = ((r!(i.a) as i64) > (r!(i.b) as i64)) as u64,
                K::Sge32 => r!(i.d) = (i32v(r!(i.a)) >= i32v(r!(i.b))) as u64,
                K::Sge64 => r!(i.d) = ((r!(i.a) as i64) >= (r!(i.b) as i64)) as u64,
                K::Ult => r!(i.d) = (r!(i.a) < r!(i.b)) as u64,
                K::Ule => r!(i.d) = (r!(i.a) <= r!(i.b)) as u64,
                K::Ugt => r!(i.d) = (r!(i.a) > r!(i.b)) as u64,
                K::Uge => r!(i.d) = (r!(i.a) >= r!(i.b)) as u64,
                // Rust's float comparisons are IEEE: false on NaN, except
                // `!=`, which is then true.
                K::Feq32 => r!(i.d) = (f32v(r!(i.a)) == f32v(r!(i.b))) as u64,
                K::Feq64 => r!(i.d) = (f64v(r!(i.a)) == f64v(r!(i.b))) as u64,
                K::Fne32 => r!(i.d) = (f32v(r!(i.a)) != f32v(r!(i.b))) as u64,
                K::Fne64 => r!(i.d) = (f64v(r!(i.a)) != f64v(r!(i.b))) as u64,
                K::Flt32 => r!(i.d) = (f32v(r!(i.a)) < f32v(r!(i.b))) as u64,
                K::Flt64 => r!(i.d) = (f64v(r!(i.a)) < f64v(r!(i.b))) as u64,
                K::Fle32 => r!(i.d) = (f32v(r!(i.a)) <= f32v(r!(i.b))) as u64,
                K::Fle64 => r!(i.d) = (f64v(r!(i.a)) <= f64v(r!(i.b))) as u64,
                K::Fgt32 => r!(i.d) = (f32v(r!(i.a)) > f32v(r!(i.b))) as u64,
                K::Fgt64 => r!(i.d) = (f64v(r!(i.a)) > f64v(r!(i.b))) as u64,
                K::Fge32 => r!(i.d) = (f32v(r!(i.a)) >= f32v(r!(i.b))) as u64,
                K::Fge64 => r!(i.d) = (f64v(r!(i.a)) >= f64v(r!(i.b))) as u64,
                K::Select => {
                    r!(i.d) = if r!(i.a) as u32 != 0 {
                        r!(i.b)
                    } else {
                        r!(i.c)
                    }
                }
                K::Sext => r!(i.d) = i32v(r!(i.a)) as i64 as u64,
                K::Zext | K::Trunc => r!(i.d) = r!(i.a) & 0xffff_ffff,
                K::Fext => r!(i.d) = (f32v(r!(i.a)) as f64).to_bits(),
                K::Ftrunc => r!(i.d) = f32b(f64v(r!(i.a)) as f32),
                // Rust's `as` rounds to nearest (int to float) and
                // saturates with NaN giving 0 (float to int): SPEC's rules.
                K::SitofI32F32 => r!(i.d) = f32b(i32v(r!(i.a)) as f32),
                K::SitofI32F64 => r!(i.d) = (i32v(r!(i.a)) as f64).to_bits(),
                K::SitofI64F32 => r!(i.d) = f32b(r!(i.a) as i64 as f32),
                K::SitofI64F64 => r!(i.d) = (r!(i.a) as i64 as f64).to_bits(),
                K::UitofI32F32 => r!(i.d) = f32b(r!(i.a) as u32 as f32),
                K::UitofI32F64 => r!(i.d) = (r!(i.a) as u32 as f64).to_bits(),
                K::UitofI64F32 => r!(i.d) = f32b(r!(i.a) as f32),
                K::UitofI64F64 => r!(i.d) = (r!(i.a) as f64).to_bits(),
                K::FtosiF32I32 => r!(i.d) = i32b(f32v(r!(i.a)) as i32),
                K::FtosiF32I64 => r!(i.d) = f32v(r!(i.a)) as i64 as u64,
                K::FtosiF64I32 => r!(i.d) = i32b(f64v(r!(i.a)) as i32),
                K::FtosiF64I64 => r!(i.d) = f64v(r!(i.a)) as i64 as u64,
                K::FtouiF32I32 => r!(i.d) = f32v(r!(i.a)) as u32 as u64,
                K::FtouiF32I64 => r!(i.d) = f32v(r!(i.a)) as u64,
                K::FtouiF64I32 => r!(i.d) = f64v(r!(i.a)) as u32 as u64,
                K::FtouiF64I64 => r!(i.d) = f64v(r!(i.a)) as u64,
                K::Load8s32 => r!(i.d) = i32b(load!(i8, i) as i32),
                K::Load8s64 => r!(i.d) = load!(i8, i) as i64 as u64,
                K::Load8u => r!(i.d) = load!(u8, i) as u64,
                K::Load16s32 => r!(i.d) = i32b(load!(i16, i) as i32),
                K::Load16s64 => r!(i.d) = load!(i16, i) as i64 as u64,
                K::Load16u => r!(i.d) = load!(u16, i) as u64,
                K::Load32 => r!(i.d) = load!(u32, i) as u64,
                K::Load32s => r!(i.d) = load!(i32, i) as i64 as u64,
                K::Load64 => r!(i.d) = load!(u64, i),
                K::Store8 => store!(u8, i),
                K::Store16 => store!(u16, i),
                K::Store32 => store!(u32, i),
                K::Store64 => store!(u64, i),
                K::Alloca => r!(i.d) = fp + i.a as u64,
                K::Call | K::CallInd => {
                    burn!();
                    let site = &prog.calls[i.b as usize];
                    let callee = if i.k == K::Call {
                        i.a as usize
                    } else {
                        let addr = r!(i.a);
                        let off = addr.wrapping_sub(env.fn_table);
                        let idx = (off / super::FN_ADDR_STRIDE) as usize;
                        if !off.is_multiple_of(super::FN_ADDR_STRIDE) || idx >= prog.funcs.len() {
                            return Err(Error::Runtime(format!(
                                "indirect call to {addr:#x}, which is not a function"
                            )));
                        }
                        let e = &prog.funcs[idx];
                        if e.sig != site.sig {
                            return Err(Error::Runtime(format!(
                                "indirect call with signature {} to @{}, which has signature {}",
                                site.sig, e.name, e.sig
                            )));
                        }
                        idx
                    };
                    let args = &prog.call_args[site.start as usize..][..site.len as usize];
                    let entry = &prog.funcs[callee];
                    match &entry.body {
                        Body::Ir(g) => {
                            if frames.len() + 2 > depth_limit {
                                return Err(Error::Runtime(format!(
                                    "call depth limit of {depth_limit} exceeded"
                                )));
                            }
                            frames.push(Frame {
                                pc: pc as u32,
                                base: base as u32,
                                top: top as u32,
                                dst: i.d,
                                sp,
                                fp,
                            });
                            let new_base = top;
                            fp = enter(regs, env, g, new_base, &mut sp)?;
                            for (&p, &a) in g.params.iter().zip(args) {
                                regs[new_base + p as usize] = regs[base + a as usize];
                            }
                            base = new_base;
                            top = base + g.nslots as usize;
                            pc = g.entry_pc as usize;
                        }
                        Body::Host(h) => {
                            let vals: SmallVec<[Val; 8]> = args
                                .iter()
                                .zip(&entry.sig.params)
                                .map(|(&a, &t)| Val::from_bits(t, r!(a)))
                                .collect();
                            match (h(&vals)?, entry.sig.ret) {
                                (Some(v), Some(t)) if v.ty() == t => {
                                    if i.d != NONE {
                                        r!(i.d) = v.to_bits();
                                    }
                                }
                                (None, None) => {}
                                (got, _) => {
                                    return Err(Error::Runtime(format!(
                                        "host function @{} returned {got:?}, which does not match its signature {}",
                                        entry.name, entry.sig
                                    )))
                                }
                            }
                        }
                        Body::Pending => {
                            return Err(Error::Runtime(format!(
                                "function @{} is not decoded",
                                entry.name
                            )))
                        }
                    }
                }
                K::Ret => {
                    let v = if i.a == NONE { None } else { Some(r!(i.a)) };
                    match frames.pop() {
                        None => return Ok(v),
                        Some(fr) => {
                            pc = fr.pc as usize;
                            base = fr.base as usize;
                            top = fr.top as usize;
                            sp = fr.sp;
                            fp = fr.fp;
                            if let (Some(v), true) = (v, fr.dst != NONE) {
                                r!(fr.dst) = v;
                            }
                        }
                    }
                }
                K::JmpPc => {
                    burn!();
                    pc = i.a as usize;
                }
                K::Jmp => {
                    burn!();
                    pc = take_edge(regs, base, prog, i.a);
                }
                K::BrPc => {
                    burn!();
                    pc = if r!(i.a) as u32 != 0 { i.b } else { i.c } as usize;
                }
                K::Br => {
                    burn!();
                    let e = if r!(i.a) as u32 != 0 { i.b } else { i.c };
                    pc = take_edge(regs, base, prog, e);
                }
                K::Switch => {
                    burn!();
                    let t = &prog.switches[i.b as usize];
                    let v = r!(i.a);
                    pc = match t.keys.binary_search(&v) {
                        Ok(k) => t.pcs[k],
                        Err(_) => t.default,
                    } as usize;
                }
                K::Trap => trap!(TrapCode::Unreachable),
            }
        }
    }
}

/// Passes edge `e`'s block arguments and returns its target pc.
fn take_edge(regs: &mut [u64], base: usize, prog: &Program, e: u32) -> usize {
    let e = prog.edges[e as usize];
    let moves = &prog.moves[e.start as usize..][..e.len as usize];
    if e.parallel {
        let vals: SmallVec<[u64; 8]> = moves
            .iter()
            .map(|&(s, _)| regs[base + s as usize])
            .collect();
        for (&(_, d), v) in moves.iter().zip(vals) {
            regs[base + d as usize] = v;
        }
    } else {
        for &(s, d) in moves {
            regs[base + d as usize] = regs[base + s as usize];
        }
    }
    e.pc as usize
}
