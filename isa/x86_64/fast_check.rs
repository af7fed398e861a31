//! A symbolic checker for the fast generator's allocation ([`super::fast`]),
//! run in debug builds and on the `x86_64-checked` target before any code
//! is emitted.
//!
//! It does not trust the allocator's ranges: it simulates, in the block
//! order, which value each home (register or slot) holds, from the IR and
//! the homes alone:
//! - a definition (instruction result, function parameter) claims its
//!   home; a jump claims the homes of its targets' parameters (after its
//!   arguments are read); a block whose parameters no earlier jump claimed
//!   claims them at its start, otherwise they must still be there;
//! - a call clobbers every caller-saved register, every xmm register
//!   included (after its arguments), a
//!   division or a shift by a register clobbers `rcx` and `rdx` (and none
//!   of its operands may be there);
//! - every operand read must find its value in its home (a fused compare's
//!   operands are read at its branch);
//! - at a back edge, every value used inside the loop but defined before
//!   its header must still be in its home (it is read again on the next
//!   iteration).
//!
//! In the block order every loop is contiguous, so these checks together
//! say that no two values whose lifetimes overlap share a home. Homes must
//! be pool registers of the value's class (never a scratch register) or
//! allocated slots, and every callee-saved register used must be in the
//! saved set.

use super::fast::{Fast, FIXED, POOL_CALLEE, POOL_CALLER, POOL_XMM, SLOT0};
use crate::ir::{Function, InstKind, Opcode, Operand, Value, ValueDef};
use crate::lower::analysis::Decisions;

const NONE: u32 = u32::MAX;
const CLOBBERED: u32 = u32::MAX - 1;

struct Sim<'a> {
    func: &'a Function,
    f: &'a Fast,
    owner: Vec<u32>,
}

impl Sim<'_> {
    fn home(&self, v: Value) -> Result<usize, String> {
        let h = *self
            .f
            .home
            .get(v.index())
            .ok_or_else(|| format!("no home for {v}"))?;
        // A float lives in an xmm register or a slot, an integer in an
        // integer register or a slot.
        let pool = if self.func.values[v.index()].ty.is_float() {
            POOL_XMM
        } else {
            POOL_CALLER | POOL_CALLEE
        };
        let ok = if h < SLOT0 {
            pool & (1 << h) != 0
                && (POOL_CALLEE & (1 << h) == 0 || self.f.callee_used & (1 << h) != 0)
        } else {
            h != NONE && h - SLOT0 < self.f.num_slots
        };
        if ok {
            Ok(h as usize)
        } else {
            Err(format!("{v} has a bad home {h}"))
        }
    }

    fn claim(&mut self, v: Value) -> Result<(), String> {
        let h = self.home(v)?;
        self.owner[h] = v.0;
        Ok(())
    }

    fn read(&self, v: Value, at: &str) -> Result<(), String> {
        let h = self.home(v)?;
        if self.owner[h] == v.0 {
            Ok(())
        } else {
            Err(format!(
                "{v} ({}) is not in its home {h} at {at}",
                self.func.value_name(v).unwrap_or("?")
            ))
        }
    }
}

/// Checks the homes in `f` for `func` laid out in `dec`'s block order.
pub fn check(func: &Function, dec: &Decisions, f: &Fast) -> Result<(), String> {
    let nhomes = SLOT0 as usize + f.num_slots as usize;
    let mut sim = Sim {
        func,
        f,
        owner: vec![NONE; nhomes],
    };
    // Per value: position of its defining block (function parameters: 0,
    // before everything).
    let mut def_pos = vec![0u32; func.values.len()];
    for (k, &b) in dec.order.iter().enumerate() {
        let bd = &func.blocks[b.index()];
        for &p in &bd.params {
            def_pos[p.index()] = k as u32;
        }
        for &i in &bd.insts {
            if let Some(r) = func.insts[i.index()].result {
                def_pos[r.index()] = k as u32;
            }
        }
    }
    let mut claimed = vec![false; func.values.len()];
    // The back-edge checks scan each loop once per back edge: quadratic in
    // the nesting depth. Past this many instructions scanned (deep nests)
    // they are skipped; every other check stays on.
    let mut budget: usize = 64 * func.insts.len() + 4096;
    for &p in &func.params {
        sim.claim(p)?;
    }
    for (k, &b) in dec.order.iter().enumerate() {
        let bd = &func.blocks[b.index()];
        for &p in &bd.params {
            if claimed[p.index()] {
                sim.read(p, "its block's start")?;
            } else {
                sim.claim(p)?;
            }
        }
        for &i in &bd.insts {
            let d = &func.insts[i.index()];
            if dec.fused[i.index()] {
                continue;
            }
            let at = format!("instruction {}", i.index());
            let mut err = None;
            func.for_each_operand(i, |op| {
                if let Operand::Value(v) = op {
                    if err.is_none() {
                        // A fused compare's operands are read here.
                        if let ValueDef::Inst(ci) = func.values[v.index()].def {
                            if dec.fused[ci.index()] {
                                func.for_each_operand(ci, |o| {
                                    if let Operand::Value(x) = o {
                                        if let Err(e) = sim.read(x, &at) {
                                            err.get_or_insert(e);
                                        }
                                    }
                                });
                                return;
                            }
                        }
                        if let Err(e) = sim.read(v, &at) {
                            err = Some(e);
                        }
                    }
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            // Divisions and shifts by a register use rcx and rdx: no
            // operand may live there, and they hold nothing afterwards.
            let fixed = match d.kind {
                InstKind::Binary { args } => {
                    matches!(
                        d.opcode,
                        Opcode::Sdiv | Opcode::Udiv | Opcode::Srem | Opcode::Urem
                    ) || (matches!(d.opcode, Opcode::Shl | Opcode::Shr | Opcode::Sar)
                        && matches!(args[1], Operand::Value(_)))
                }
                _ => false,
            };
            if fixed {
                for op in func.operands(i) {
                    if let Operand::Value(v) = op {
                        let h = sim.home(v)?;
                        if h < SLOT0 as usize && (FIXED >> h) & 1 != 0 {
                            return Err(format!("{v} is in rcx/rdx at {at}"));
                        }
                    }
                }
                sim.owner[1] = CLOBBERED;
                sim.owner[2] = CLOBBERED;
            }
            if let InstKind::Call { .. } = d.kind {
                for r in 0..SLOT0 as usize {
                    if (POOL_CALLER | POOL_XMM) & (1 << r) != 0 {
                        sim.owner[r] = CLOBBERED;
                    }
                }
            }
            if let Some(r) = d.result {
                sim.claim(r)?;
            }
            // Back edges (any successor, `switch` targets included): the
            // loop's live-in values must survive. Only this edge's
            // parameter writes happen on it (another target's are on that
            // target's path alone).
            let mut targets = func.successors(i);
            targets.sort_unstable_by_key(|b| b.index());
            targets.dedup();
            for target in targets {
                let Some(h) = dec.position(target) else {
                    return Err(format!("jump to unplaced block {target}"));
                };
                if h > k {
                    continue;
                }
                let size: usize = dec.order[h..=k]
                    .iter()
                    .map(|b| func.blocks[b.index()].insts.len())
                    .sum();
                if size > budget {
                    continue;
                }
                budget -= size;
                let params = &func.blocks[target.index()].params;
                let mut saved = Vec::with_capacity(params.len());
                for &p in params {
                    let hp = sim.home(p)?;
                    saved.push((hp, sim.owner[hp]));
                    sim.claim(p)?;
                }
                for &lb in &dec.order[h..=k] {
                    for &li in &func.blocks[lb.index()].insts {
                        let mut err = None;
                        func.for_each_operand(li, |op| {
                            if let Operand::Value(v) = op {
                                let outside = def_pos[v.index()] < h as u32
                                    || matches!(func.values[v.index()].def, ValueDef::FuncParam(_));
                                if outside && err.is_none() {
                                    if let Err(e) = sim.read(v, "a back edge") {
                                        err = Some(e);
                                    }
                                }
                            }
                        });
                        if let Some(e) = err {
                            return Err(e);
                        }
                    }
                }
                for &(hp, o) in saved.iter().rev() {
                    sim.owner[hp] = o;
                }
            }
            for dest in d.block_calls() {
                for &p in &func.blocks[dest.block.index()].params {
                    sim.claim(p)?;
                    claimed[p.index()] = true;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_module;

    const LOOP: &str = "
func @sum(%n: i64, %k: i64) -> i64 {
entry:
    jmp loop(0, 0)
loop(%i: i64, %acc: i64):
    %done = sge.i64 %i, %n
    br %done, exit(%acc), body
body:
    %t = mul.i64 %i, %k
    %acc2 = add.i64 %acc, %t
    %q = sdiv.i64 %acc2, %k
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %q)
exit(%r: i64):
    ret %r
}
";

    /// The decisions and the fast path's allocation of `m`'s first
    /// function.
    fn allocated(m: &crate::ir::Module) -> (Decisions, Fast) {
        let func = &m.funcs[0];
        let mut dec = Decisions::default();
        dec.compute(m, func).expect("decides");
        let mut f = Fast::default();
        f.analyze(m, func, &dec).expect("supported");
        f.allocate(func, &dec);
        (dec, f)
    }

    fn value(func: &Function, name: &str) -> usize {
        (0..func.values.len())
            .find(|&v| func.value_name(Value(v as u32)) == Some(name))
            .expect("value exists")
    }

    #[test]
    fn accepts_the_allocation_and_rejects_corrupted_ones() {
        let m = parse_module("t", LOOP).expect("parses");
        let func = &m.funcs[0];
        let (dec, mut f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let (i, acc, n, t, k) = (
            value(func, "i"),
            value(func, "acc"),
            value(func, "n"),
            value(func, "t"),
            value(func, "k"),
        );
        let keep = f.home.clone();
        // Two values live at once in one home.
        f.home[acc] = f.home[i];
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // A value defined in the loop in the home of one read on every
        // iteration (the back edge would find %n overwritten).
        f.home[t] = f.home[n];
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // A scratch register, and a slot that was never allocated.
        f.home[i] = 0;
        assert!(check(func, &dec, &f).is_err());
        f.home[i] = SLOT0 + f.num_slots;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // rdx across the division.
        f.home[k] = 2;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep;
        check(func, &dec, &f).expect("restored");
    }

    const FLOATS: &str = "
func @f(%n: i64, %x: f64) -> f64 {
entry:
    jmp loop(0, 0.0)
loop(%i: i64, %acc: f64):
    %done = sge.i64 %i, %n
    br %done, exit(%acc), body
body:
    %t = fmul.f64 %acc, %x
    %u = call.f64 @g(%t)
    %acc2 = fadd.f64 %u, %x
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %acc2)
exit(%r: f64):
    ret %r
}

local func @g(%a: f64) -> f64 {
entry:
    ret %a
}
";

    #[test]
    fn checks_float_homes() {
        use crate::isa::x86_64::fast::XMM0;
        let m = parse_module("t", FLOATS).expect("parses");
        let func = &m.funcs[0];
        let (dec, mut f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let (x, t, acc2, i) = (
            value(func, "x"),
            value(func, "t"),
            value(func, "acc2"),
            value(func, "i"),
        );
        // Live across the call: a slot, never an xmm register.
        assert!(f.home[x] >= SLOT0);
        assert!((XMM0..SLOT0).contains(&f.home[t]));
        let keep = f.home.clone();
        // An xmm register across a call (every one is caller-saved).
        f.home[x] = XMM0 + 5;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // A float in an integer register, an integer in an xmm register,
        // a float in a scratch xmm register.
        f.home[t] = 6;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        f.home[i] = XMM0 + 3;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        f.home[t] = XMM0 + 15;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // A value defined in the loop in the home of one read on every
        // iteration.
        f.home[acc2] = f.home[x];
        assert!(check(func, &dec, &f).is_err());
        f.home = keep;
        check(func, &dec, &f).expect("restored");
    }

    /// Five phases of 16 values each (more than the 12 integer registers),
    /// summed in reverse so that each phase's first values end last and
    /// are the spill victims; a phase's victims die with it.
    fn phases(n: usize) -> String {
        let mut t = String::from("func @f(%x: i64) -> i64 {\nentry:\n");
        let mut acc = "%x".to_string();
        for p in 0..n {
            for i in 0..16 {
                t += &format!("    %a{p}_{i} = add.i64 {acc}, {i}\n");
            }
            t += &format!("    %s{p}_15 = mul.i64 %a{p}_15, 3\n");
            for i in (0..15).rev() {
                t += &format!("    %s{p}_{i} = add.i64 %s{p}_{}, %a{p}_{i}\n", i + 1);
            }
            acc = format!("%s{p}_0");
        }
        t + &format!("    ret {acc}\n}}\n")
    }

    #[test]
    fn spill_victims_reuse_free_slots() {
        let m = parse_module("t", &phases(5)).expect("parses");
        let (dec, f) = allocated(&m);
        check(&m.funcs[0], &dec, &f).expect("the allocation is right");
        // Each phase spills 4 values; a new slot per victim would make 20.
        assert!(f.num_slots <= 6, "{} slots", f.num_slots);
    }
}
