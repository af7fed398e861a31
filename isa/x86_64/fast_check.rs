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
//!   iteration);
//! - a `br` (which writes its targets' parameters on one edge each) finds
//!   every parameter an earlier jump claimed still in its home: only a
//!   `jmp`'s claim may replace another value there (a value borrowing a
//!   dead parameter's register until the jump writes it).
//!
//! In the block order every loop is contiguous, so these checks together
//! say that no two values whose lifetimes overlap share a home. Homes must
//! be pool registers of the value's class (never a scratch register) or
//! allocated slots, and every callee-saved register used must be in the
//! saved set.

use super::fast::{Fast, DEAD, FIXED, FOLDED, POOL_CALLEE, POOL_CALLER, POOL_XMM, SLOT0};
use crate::ir::{Function, InstKind, Opcode, Operand, Value, ValueDef};
use crate::lower::analysis::Decisions;

const NONE: u32 = u32::MAX;
const CLOBBERED: u32 = u32::MAX - 1;

struct Sim<'a> {
    func: &'a Function,
    f: &'a Fast,
    owner: Vec<u32>,
}

/// Whether an instruction of opcode `op` has no effect but its result
/// (no trap, no memory access, no call): the ones whose unused results
/// the generator may leave uncompiled (its own list: `fast::F_PURE`).
pub(super) fn pure(op: Opcode) -> bool {
    use Opcode::*;
    matches!(
        op,
        Add | Sub
            | Mul
            | And
            | Or
            | Xor
            | Shl
            | Shr
            | Sar
            | Neg
            | Not
            | Eq
            | Ne
            | Slt
            | Sle
            | Sgt
            | Sge
            | Ult
            | Ule
            | Ugt
            | Uge
            | Sext
            | Zext
            | Trunc
            | Fadd
            | Fsub
            | Fmul
            | Fdiv
            | Fneg
            | Fabs
            | Fsqrt
            | Feq
            | Fne
            | Flt
            | Fle
            | Fgt
            | Fge
            | Copy
            | Select
            | Fext
            | Ftrunc
            | Sitof
            | Uitof
            | Ftosi
            | Ftoui
            | Bitcast
            | Addr
    )
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
        // An `add` folded into the next instruction's address: its result
        // and that instruction.
        let mut fold: Option<(Value, crate::ir::Inst)> = None;
        for (j, &i) in bd.insts.iter().enumerate() {
            let d = &func.insts[i.index()];
            if dec.fused[i.index()] {
                continue;
            }
            // Not compiled: only an instruction with no effect but its
            // result may have the home `DEAD` (a read of that result then
            // finds a bad home in `Sim::home`).
            if let Some(r) = d.result {
                if f.home[r.index()] == DEAD {
                    if !pure(d.opcode) {
                        return Err(format!("{r} is dead but its {:?} has effects", d.opcode));
                    }
                    continue;
                }
            }
            let at = format!("instruction {}", i.index());
            let mut err = None;
            let fold_here = fold.take().filter(|&(_, at_i)| at_i == i);
            func.for_each_operand(i, |op| {
                if let Operand::Value(v) = op {
                    // A folded `add`'s operands are read where its result
                    // is (only as this access's pointer).
                    if f.home[v.index()] == FOLDED {
                        let read = fold_here.filter(|&(r, _)| r == v).and_then(|_| {
                            match func.values[v.index()].def {
                                ValueDef::Inst(ai) => Some(ai),
                                _ => None,
                            }
                        });
                        match read {
                            Some(ai) => {
                                for o in func.operands(ai) {
                                    if let Operand::Value(x) = o {
                                        if let Err(e) = sim.read(x, &at) {
                                            err.get_or_insert(e);
                                        }
                                    }
                                }
                            }
                            None => {
                                err.get_or_insert(format!("folded {v} read at {at}"));
                            }
                        }
                        return;
                    }
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
                if f.home[r.index()] == FOLDED {
                    // Only an `add.i64` of a value, and only into the
                    // pointer (not the stored value) of the next access.
                    // (The next compiled one: dead instructions have no
                    // number, see `fast/dead.rs`.)
                    let next = bd.insts[j + 1..].iter().copied().find(|&n| {
                        func.insts[n.index()]
                            .result
                            .is_none_or(|r| f.home[r.index()] != DEAD)
                    });
                    let p = Operand::Value(r);
                    let ok = matches!(
                        (d.opcode, d.ty, &d.kind),
                        (
                            Opcode::Add,
                            Some(crate::ir::Type::I64),
                            InstKind::Binary {
                                args: [Operand::Value(_), _]
                            }
                        )
                    ) && next.is_some_and(|n| match &func.insts[n.index()].kind {
                        InstKind::Load { ptr, .. } => *ptr == p,
                        InstKind::Store { args, .. } => args[1] == p && args[0] != p,
                        _ => false,
                    });
                    if !ok {
                        return Err(format!("{r} is folded at {at}, not into an address"));
                    }
                    fold = next.map(|n| (r, n));
                } else {
                    sim.claim(r)?;
                }
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
                        // (A dead instruction reads nothing: not compiled.)
                        if func.insts[li.index()]
                            .result
                            .is_some_and(|r| f.home[r.index()] == DEAD)
                        {
                            continue;
                        }
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
            // A `br` writes its targets' parameters on one edge each, but
            // the simulation claims them on both: a parameter already
            // claimed must still be in its home (else its home holds some
            // other value that the other edge may need, which this claim
            // would hide). Only a `jmp`, whose claim is exact, may find
            // its home holding another value (a borrower, see `Lend` in
            // the allocator).
            let multi = matches!(d.kind, InstKind::Br { .. });
            for dest in d.block_calls() {
                for &p in &func.blocks[dest.block.index()].params {
                    if multi && claimed[p.index()] {
                        sim.read(p, &at)?;
                    }
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
        let mut f = Fast::default();
        f.analyze(m, func, &mut dec).expect("supported");
        f.allocate(func, &dec);
        (dec, f)
    }

    /// Compares made in blocks no path reaches: fused all the same.
    const UNREACHABLE: &str = "
func @u(%a: i64, %b: i64) -> i64 {
entry:
    %c = slt.i64 %a, %b
    br %c, yes, no
yes:
    %d = eq.i64 %a, 0
    br %d, no, yes2
yes2:
    ret %a
no:
    ret %b
dead:
    %x = ne.i64 %a, %b
    %y = sgt.i64 %a, %b
    br %x, yes, dead2(%y)
dead2(%z: i32):
    %w = eq.i32 %z, 0
    br %w, no, dead
}
";

    /// The decisions the fast path makes in its own sweep
    /// (`Decisions::compute_order`, `Fast::analyze`) are those of
    /// `Decisions::compute` (order, loop ends, use counts, fused compares)
    /// on every `.kir` file of the repository, with the buffers reused from
    /// function to function as in a compile.
    #[test]
    fn makes_the_shared_decisions() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = vec![
            UNREACHABLE.to_string(),
            LOOP.to_string(),
            FLOATS.to_string(),
        ];
        let mut dirs = vec![root.join("tests/ir"), root.join("examples")];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).expect("reads").flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "kir") {
                    texts.push(std::fs::read_to_string(&p).expect("reads"));
                }
            }
        }
        let (mut got, mut f) = (Decisions::default(), Fast::default());
        let (mut compared, mut fused, mut dead_fused) = (0, 0, 0);
        for text in &texts {
            let Ok(m) = parse_module("t", text) else {
                continue;
            };
            if crate::ir::verify::verify_module(&m).is_err() {
                continue;
            }
            for func in m.funcs.iter().filter(|f| !f.blocks.is_empty()) {
                let mut want = Decisions::default();
                want.compute(&m, func).expect("decides");
                if f.analyze(&m, func, &mut got).is_none() {
                    continue;
                }
                let name = &func.name;
                assert_eq!(got.order, want.order, "@{name}");
                assert_eq!(got.loop_end, want.loop_end, "@{name}");
                // The fast path counts the uses of compiled instructions
                // only (not those of its `DEAD` ones, see `fast/dead.rs`),
                // so a compare may fuse that `compute` keeps.
                let mut want_uses = want.uses.clone();
                for (ix, d) in func.insts.iter().enumerate() {
                    if d.result.is_some_and(|r| f.home[r.index()] == DEAD) {
                        for op in func.operands(crate::ir::Inst::new(ix)) {
                            if let Operand::Value(v) = op {
                                want_uses[v.index()] -= 1;
                            }
                        }
                    }
                }
                assert_eq!(got.uses, want_uses, "@{name}");
                if f.all_live {
                    assert_eq!(got.fused, want.fused, "@{name}");
                } else {
                    for (i, &w) in want.fused.iter().enumerate() {
                        assert!(!w || got.fused[i], "@{name}: inst{i} not fused");
                    }
                }
                compared += 1;
                fused += got.fused.iter().filter(|&&x| x).count();
                if func.name == "u" {
                    dead_fused = got.fused.iter().filter(|&&x| x).count();
                }
            }
        }
        assert!(
            compared > 100 && fused > 30,
            "{compared} functions, {fused} fused"
        );
        assert_eq!(
            dead_fused, 4,
            "@u: two compares in live blocks, two in dead ones"
        );
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

    const LENDS: &str = "
func @f(%n: i64, %k: i64) -> i64 {
entry:
    jmp loop(0, 0)
loop(%i: i64, %acc: i64):
    %c = slt.i64 %i, %n
    br %c, body, exit
body:
    %t = mul.i64 %i, %k
    %s = add.i64 %acc, %t
    %s2 = add.i64 %s, %i
    %i2 = add.i64 %i, 1
    jmp loop(%i2, %s2)
exit:
    ret %acc
}
";

    /// Unused pure results, one used only by another (dead too), and an
    /// unused division (it may trap: compiled).
    const DEAD_CODE: &str = "
func @d(%a: i64, %b: i64) -> i64 {
entry:
    %x = mul.i64 %a, %b
    %y = add.i64 %x, 1
    %q = sdiv.i64 %a, %b
    %c = slt.i64 %a, %b
    %z = xor.i64 %a, %b
    ret %z
}
";

    #[test]
    fn unused_pure_instructions_are_not_compiled() {
        use crate::isa::x86_64::fast::DEAD;
        let m = parse_module("t", DEAD_CODE).expect("parses");
        let func = &m.funcs[0];
        let (dec, mut f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let h = |f: &Fast, name| f.home[value(func, name)];
        assert_eq!(h(&f, "y"), DEAD);
        assert_eq!(h(&f, "x"), DEAD, "used only by a dead instruction");
        assert_eq!(h(&f, "c"), DEAD);
        assert!(h(&f, "q") < SLOT0 + f.num_slots, "a division may trap");
        assert!(h(&f, "z") < SLOT0 + f.num_slots);
        // Emission visits the division, the `xor` and the `ret` only.
        assert!(!f.all_live);
        let insts = &func.blocks[0].insts;
        assert_eq!(
            f.live[f.live_at[0] as usize..f.live_at[1] as usize],
            [insts[2], insts[4], insts[5]]
        );
        // A dead value read by compiled code, or a dead division: rejected.
        let z = value(func, "z");
        let hz = f.home[z];
        f.home[z] = DEAD;
        assert!(check(func, &dec, &f).is_err());
        f.home[z] = hz;
        let q = value(func, "q");
        f.home[q] = DEAD;
        let e = check(func, &dec, &f).expect_err("a division has effects");
        assert!(e.contains("effects"), "{e}");
        // Without unused results nothing is dropped.
        let m = parse_module("t", LOOP).expect("parses");
        let (_, f) = allocated(&m);
        assert!(f.all_live);
    }

    /// Twenty values each used once right away and once more by a dead
    /// chain at the end: their ranges end at their compiled use, so
    /// registers suffice (with ranges reaching the dead uses, twenty
    /// values would be live at once and some would go to the stack).
    #[test]
    fn dead_uses_do_not_extend_ranges() {
        let n = 20;
        let mut text = String::from("func @p(%a: i64) -> i64 {\nentry:\n    %s0 = add.i64 %a, 1\n");
        for k in 1..=n {
            text += &format!("    %v{k} = mul.i64 %a, {}\n", k + 1);
            text += &format!("    %s{k} = add.i64 %s{}, %v{k}\n", k - 1);
        }
        text += "    %d1 = add.i64 %v1, %v2\n";
        for k in 3..=n {
            text += &format!("    %d{} = add.i64 %d{}, %v{k}\n", k - 1, k - 2);
        }
        text += &format!("    ret %s{n}\n}}\n");
        let m = parse_module("t", &text).expect("parses");
        let func = &m.funcs[0];
        let (dec, f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        assert_eq!(f.home[value(func, "d19")], DEAD);
        assert_eq!(f.home[value(func, "d1")], DEAD);
        assert_eq!(f.num_slots, 0, "no value needs the stack");
        for k in 1..=n {
            assert!(f.home[value(func, &format!("v{k}"))] < SLOT0);
        }
    }

    #[test]
    fn jump_arguments_take_their_dead_parameters_registers() {
        let m = parse_module("t", LENDS).expect("parses");
        let func = &m.funcs[0];
        let (dec, f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let h = |name| f.home[value(func, name)];
        // %acc is read after the loop (its range covers the body), but it
        // is dead in `body` after its last use there: %s and %s2 borrow
        // its register; %i2 is computed in %i's. No copy at the jump.
        assert!(h("acc") < SLOT0 && h("i") < SLOT0);
        assert_eq!(h("s"), h("acc"));
        assert_eq!(h("s2"), h("acc"));
        assert_eq!(h("i2"), h("i"));
        // %t is defined while %i and %acc are still read: not theirs.
        assert_ne!(h("t"), h("i"));
        assert_ne!(h("t"), h("acc"));
    }

    const BR_EDGE: &str = "
func @f(%n: i64) -> i64 {
entry:
    jmp loop(0)
loop(%i: i64):
    %i2 = add.i64 %i, 1
    %c = slt.i64 %i2, %n
    br %c, loop(%i2), exit
exit:
    ret %i
}
";

    #[test]
    fn rejects_a_borrower_at_a_branch() {
        let m = parse_module("t", BR_EDGE).expect("parses");
        let func = &m.funcs[0];
        let (dec, mut f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let (i, i2) = (value(func, "i"), value(func, "i2"));
        assert_ne!(f.home[i2], f.home[i]);
        // %i2 in %i's register: right on the back edge (which writes %i
        // from it), wrong on the exit edge, which reads the old %i.
        f.home[i2] = f.home[i];
        assert!(check(func, &dec, &f).is_err());
    }

    const FOLD: &str = "
func @f(%p: i64, %i: i64) -> i64 {
entry:
    %a = add.i64 %p, %i
    %x = load8u.i64 %a
    %b = add.i64 %p, %i
    %y = load8u.i64 %b
    %z = add.i64 %b, %y
    %c = add.i64 %p, 8
    store.i64 %z, %c, 16
    %s = add.i64 %x, %z
    ret %s
}
";

    #[test]
    fn folds_single_use_adds_into_the_next_address() {
        use crate::isa::x86_64::fast::FOLDED;
        let m = parse_module("t", FOLD).expect("parses");
        let func = &m.funcs[0];
        let (dec, mut f) = allocated(&m);
        check(func, &dec, &f).expect("the allocation is right");
        let (a, b, c, z, s) = (
            value(func, "a"),
            value(func, "b"),
            value(func, "c"),
            value(func, "z"),
            value(func, "s"),
        );
        // %a and %c are only the next access's pointer; %b is read again.
        assert_eq!(f.home[a], FOLDED);
        assert_eq!(f.home[c], FOLDED);
        assert!(f.home[b] < SLOT0);
        let keep = f.home.clone();
        // A folded value read elsewhere, or not an address.
        f.home[b] = FOLDED;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        f.home[s] = FOLDED;
        assert!(check(func, &dec, &f).is_err());
        f.home = keep.clone();
        // An operand of a folded add overwritten before the access reads it:
        // %z in %p's home (%p is read at the store through %c).
        f.home[z] = f.home[value(func, "p")];
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
