//! The accepting pass: one walk over a function body that answers only
//! "every rule holds" or "look closer", with no locations, messages or
//! source order. [`accepts`] returning `true` means the precise checks of
//! [`FuncVerifier`](super::FuncVerifier) would find nothing wrong; `false`
//! says nothing (they run and decide, and word the first error exactly as
//! without this pass). So this pass may reject more than the verifier —
//! it does so for layouts it does not expect (instructions not listed in
//! increasing order, a duplicate listing of anything) — but never less.
//!
//! What makes it cheap:
//! - One table row per (opcode, suffix) ([`Rule`], derived from the opcode
//!   table at compile time) answers the suffix, the result type, the
//!   operand types and whether the instruction ends a block, instead of
//!   nested matches per instruction.
//! - Definitions are recorded as the walk meets them, one `u32` per value
//!   (`(block + 2) << 3 | type`, field 1 for function parameters), and
//!   each field has an interval of block numbers that see its definitions
//!   (`Plain::fields`, found at the entry xor the wanted type: another
//!   type lands on an empty slot), so the common operand — a value of the
//!   wanted type that is a function parameter, defined earlier in the
//!   same block or in a block that dominates this one — is two loads and
//!   one compare. Until
//!   the first use from another block a block's interval holds only
//!   itself; that use computes the dominator tree ([`QuickDom`]: usually
//!   one pass over the blocks' terminators), numbered so that each block's
//!   interval becomes its subtree's. A use of an entry block's value in a
//!   block reached by an edge from an earlier reached block needs no tree:
//!   that block is reachable, so the entry dominates it. A use not met yet (defined later in
//!   the layout, later in the same block, or never) is checked after the
//!   walk, when every definition is known.
//! - Instruction listings are checked for duplicates by requiring
//!   increasing instruction numbers (as the parser and the builder lay them
//!   out), which needs no per-instruction table.

use super::{Dominance, Scratch, MAX_ALLOCA};
use crate::ir::entities::{Block, Inst, Value};
use crate::ir::function::{
    BlockCall, BlockData, Callee, Function, InstData, InstKind, Int96, Operand, ValueData, ValueDef,
};
use crate::ir::hash::FxHashMap;
use crate::ir::module::Module;
use crate::ir::names::Name;
use crate::ir::opcode::{Format, Opcode, OperandTy, ResultTy, Suffix, OPCODE_TABLE};
use crate::ir::types::Type;
use crate::ir::Const;
use dom::QuickDom;

/// A value not defined yet (the cleared state of `Scratch::fast_def`).
const UNSET: u32 = 0;
/// The block field of a function parameter's entry.
const PARAM_FIELD: u32 = 1;
/// The mark of a valid value name not met yet in a big function's walk
/// (see [`Walk::name`]): a constant rather than the walk's stamp (one
/// register less in [`Plain::run`]), which no stamp equals
/// ([`Scratch::begin`]) and which only this function's names hold
/// (`value_seen` is cut at their number).
const NAME_MARK: u32 = u32::MAX;

/// The interval of `Plain::fields` that holds no number.
const NO_INTERVAL: [u32; 2] = [dom::NONE, 0];

/// The slot of `Plain::fields` that holds the interval of a field.
#[inline(always)]
fn slot_of(field: u32) -> usize {
    (field << SHIFT) as usize
}
/// Where the block field starts in an entry: bits 0-1 are the type, bit 2
/// is always clear.
const SHIFT: u32 = 3;
/// Slots of `Scratch::fields` per block (the cache bound counts blocks).
pub(super) const SLOTS_PER_BLOCK: usize = 1 << SHIFT;

// Operand wants beyond the four exact types (`Type as u8`). Each has bit 2
// set, so that `field << SHIFT | want` is no entry of a definition.
/// An integer value, no literal (`sitof`, `uitof`).
const INT: u8 = 4;
/// A float value, no literal (`ftosi`, `ftoui`).
const FLOAT: u8 = 5;
/// An integer value or a literal that fits `i64` (`store8/16/32`).
const INT_LIT64: u8 = 6;
/// Any value, no literal (arguments of an indirect call).
const ANY: u8 = 7;
/// No rule this pass knows: reject (the verifier decides).
const REJECT: u8 = 12;
const _: () = assert!(INT & FLOAT & INT_LIT64 & ANY & REJECT & 4 != 0);
// Every want is below 16 (`Walk::operand`'s slot stays in `fields`).
const _: () = assert!(INT < 16 && FLOAT < 16 && INT_LIT64 < 16 && ANY < 16 && REJECT < 16);

/// Suffix slots per opcode in the rule table: each [`Type`] at its code,
/// none at 4 (the others unused: a power of two, and the slot is the byte
/// of the `Option<Type>`).
const SUFFIXES: usize = 8;

/// What one (opcode, suffix) pair requires (eight bytes: one load).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Rule {
    /// [`BODY`] or [`TERM`] where the suffix is allowed (always for
    /// `call`, checked against the callee) and the instruction may stand
    /// in a block's body or only at its end; else 0.
    place: u8,
    /// The opcode's format where the suffix is allowed, else
    /// [`Format::Trap`].
    format: Format,
    /// The result's type, `None` for no result (`call`: unused).
    result: Option<Type>,
    /// The wants of the fixed operands (the opcode table's `operands`).
    ops: [u8; 3],
}

/// [`Rule::place`] of an instruction allowed in a block's body.
const BODY: u8 = 1;
/// [`Rule::place`] of a terminator with an allowed suffix.
const TERM: u8 = 2;

/// The number of opcodes.
const NUM_OPCODES: usize = OPCODE_TABLE.len();

/// The rule table, indexed by opcode and suffix slot, derived from the
/// opcode table at compile time.
static RULES: [[Rule; SUFFIXES]; NUM_OPCODES] = rules();

/// The rule table (see [`RULES`]).
const fn rules() -> [[Rule; SUFFIXES]; NUM_OPCODES] {
    const NO: Rule = Rule {
        place: 0,
        format: Format::Trap,
        result: None,
        ops: [REJECT; 3],
    };
    let mut rules = [[NO; SUFFIXES]; NUM_OPCODES];
    let mut k = 0;
    while k < NUM_OPCODES {
        let info = &OPCODE_TABLE[k];
        let call = k == Opcode::Call as usize;
        let mut slot = 0;
        while slot < SUFFIXES {
            let ty = if slot < Type::ALL.len() {
                Some(Type::ALL[slot])
            } else {
                None
            };
            let ok = call
                || match (info.suffix, ty) {
                    (Suffix::None, None) | (Suffix::Optional, _) => true,
                    (Suffix::None, Some(_)) | (_, None) => false,
                    (Suffix::Int, Some(t)) => matches!(t, Type::I32 | Type::I64),
                    (Suffix::Float, Some(t)) => matches!(t, Type::F32 | Type::F64),
                    (Suffix::Any, Some(_)) => true,
                    (Suffix::Only(o), Some(t)) => o as u8 == t as u8,
                };
            let mut ops = [REJECT; 3];
            let mut i = 0;
            while i < info.operands.len() && i < 3 {
                let fixed = match (info.operands[i], ty) {
                    (OperandTy::Suffix, Some(t)) => Some(t),
                    (OperandTy::Fixed(t), _) => Some(t),
                    (OperandTy::BitcastPeer, Some(t)) => Some(match t {
                        Type::I32 => Type::F32,
                        Type::I64 => Type::F64,
                        Type::F32 => Type::I32,
                        Type::F64 => Type::I64,
                    }),
                    _ => None,
                };
                ops[i] = match (info.operands[i], fixed) {
                    (OperandTy::OpenInt, _) => INT,
                    (OperandTy::OpenFloat, _) => FLOAT,
                    (OperandTy::AnyIntLiteralI64, _) => INT_LIT64,
                    (_, Some(t)) => t as u8,
                    (_, None) => REJECT,
                };
                i += 1;
            }
            let term = matches!(
                info.format,
                Format::Ret | Format::Jmp | Format::Br | Format::Switch | Format::Trap
            );
            rules[k][slot] = Rule {
                place: match (ok, term) {
                    (false, _) => 0,
                    (true, false) => BODY,
                    (true, true) => TERM,
                },
                // Where the suffix is not allowed, a terminator's format,
                // which `Walk::inst` rejects.
                format: if ok { info.format } else { Format::Trap },
                result: match info.result {
                    ResultTy::None => None,
                    ResultTy::Suffix | ResultTy::OptionalSuffix => ty,
                    ResultTy::I32 => Some(Type::I32),
                    ResultTy::I64 => Some(Type::I64),
                },
                ops,
            };
            slot += 1;
        }
        k += 1;
    }
    rules
}

/// Whether `body` lists the numbers `first`, `first + 1`, ... (one pass
/// without branches: the compiler vectorizes it).
#[inline]
fn consecutive(body: &[Inst], first: u32) -> bool {
    body.iter()
        .enumerate()
        .fold(0, |acc, (k, i)| acc | (i.0 ^ first.wrapping_add(k as u32)))
        == 0
}

/// The table slot of a suffix.
#[inline(always)]
fn slot(ty: Option<Type>) -> usize {
    match ty {
        Some(t) => t as usize,
        None => 4,
    }
}

/// [`Const::fits`], here so that it is inlined: integers fit as signed or
/// unsigned, floats only float types, integers every float type.
#[inline(always)]
fn fits(c: Const, ty: Type) -> bool {
    match (c, ty) {
        (Const::Int(v), Type::I32) => (-(1i128 << 31)..(1i128 << 32)).contains(&v.get()),
        (Const::Int(v), Type::I64) => (-(1i128 << 63)..(1i128 << 64)).contains(&v.get()),
        (Const::Int(_), Type::F32 | Type::F64) => true,
        (Const::Float(_), t) => matches!(t, Type::F32 | Type::F64),
    }
}

/// The literals a want accepts ([`fits`] as one range check): an integer
/// `v` when `v - lo` (wrapping, as `u128`) is below `span`, a float
/// literal when `float`.
#[derive(Clone, Copy)]
struct Lits {
    lo: i128,
    span: u128,
    float: bool,
}

/// [`Lits`] per want (`want & 15`: every want is below 16).
static LITS: [Lits; 16] = lits();

/// The table of [`LITS`]: integers fit as signed or unsigned, every
/// integer fits a float type (see [`fits`]); the other wants take no
/// literal.
const fn lits() -> [Lits; 16] {
    const NONE: Lits = Lits {
        lo: 0,
        span: 0,
        float: false,
    };
    let int32 = Lits {
        lo: -(1 << 31),
        span: (1 << 32) + (1 << 31),
        float: false,
    };
    let int64 = Lits {
        lo: -(1 << 63),
        span: (1 << 64) + (1 << 63),
        float: false,
    };
    let float = Lits {
        lo: Int96::MIN,
        span: 1 << 96,
        float: true,
    };
    let mut t = [NONE; 16];
    t[Type::I32 as usize] = int32;
    t[Type::I64 as usize] = int64;
    t[Type::F32 as usize] = float;
    t[Type::F64 as usize] = float;
    t[INT_LIT64 as usize] = int64;
    t
}

/// Whether literal `c` meets `want`: [`fits`] for the exact types, an
/// integer that fits `i64` for [`INT_LIT64`], none for the other wants;
/// from [`LITS`] (one range check, no branch on the want).
#[inline(always)]
fn lit_fits(c: Const, want: u8) -> bool {
    let lits = &LITS[(want & 15) as usize];
    match c {
        Const::Int(v) => (v.get().wrapping_sub(lits.lo) as u128) < lits.span,
        Const::Float(_) => lits.float,
    }
}

/// Whether a value of type code `ty` meets `want`.
#[inline]
fn type_ok(ty: u32, want: u8) -> bool {
    const I32: u32 = Type::I32 as u32;
    const I64: u32 = Type::I64 as u32;
    match want {
        INT | INT_LIT64 => ty == I32 || ty == I64,
        FLOAT => ty != I32 && ty != I64,
        ANY => true,
        t => ty == t as u32,
    }
}

/// Whether the precise checks would accept function `f` of `m` (see the
/// module docs): `false` when in doubt.
pub(super) fn accepts(m: &Module, f: &Function, s: &mut Scratch) -> bool {
    if f.insts.len() >= BIG_MIN {
        accepts_big(m, f, s)
    } else {
        walk::<false>(m, f, s)
    }
}

/// [`accepts`] for a big function (see [`BIG_MIN`]): a copy of the walk
/// of its own, out of line.
#[inline(never)]
fn accepts_big(m: &Module, f: &Function, s: &mut Scratch) -> bool {
    walk::<true>(m, f, s)
}

/// The walk of [`accepts`], for a big function or not (`BIG`).
#[inline(always)]
fn walk<const BIG: bool>(m: &Module, f: &Function, s: &mut Scratch) -> bool {
    let stamp = s.begin(f, false);
    if BIG {
        // The valid value names, not met yet (see `Walk::name`); `begin`
        // sized `value_seen` for every name. The precise checks' stamps
        // are later ones: they see none of these as met.
        f.names.mark_value_names(&mut s.value_seen, NAME_MARK);
    }
    s.fast_def.clear();
    s.fast_def.resize(f.values.len(), UNSET);
    s.deferred.clear();
    // Entries of the blocks are written as the walk enters them (and all
    // at once when `QuickDom` numbers the tree); only those of blocks
    // entered are read.
    // Slots up to the last field's xor any want (below 16): below
    // `(f.blocks.len() + 3) << SHIFT` (see `Plain::fields`).
    let slots = (f.blocks.len() + 4) << SHIFT;
    if s.fields.len() < slots {
        s.fields.resize(slots, NO_INTERVAL);
    }
    s.fields[slot_of(UNSET)] = NO_INTERVAL;
    s.fields[slot_of(PARAM_FIELD)] = [0, dom::NONE];
    let dom = s.dom.get_mut();
    let mut w = Walk {
        m,
        f,
        p: Plain {
            values: &f.values,
            def: &mut s.fast_def,
            fields: &mut s.fields,
            // In a big function only this function's names: a slot
            // beyond may hold an earlier function's marks (see
            // `Walk::name`; `begin` sized it for every name).
            value_seen: if BIG {
                &mut s.value_seen[..f.names.len()]
            } else {
                &mut s.value_seen
            },
            stamp,
            cur_enc: 0,
            cur_pre: 0,
        },
        deferred: &mut s.deferred,
        label_seen: &mut s.label_seen,
        dom,
        graph: Graph::None,
        quick: &mut s.quick,
        keys: &mut s.keys,
        key_seen: &mut s.key_seen,
        key_stamp: &mut s.key_stamp,
        cur: 0,
        chain: BIG,
    };
    w.run::<BIG>()
}

/// Functions of at least this many instructions are walked by
/// [`accepts_big`]: a pass over the names first, then one load, store
/// and compare per value name (see [`Walk::name`]), and bodies walked as
/// runs of the table where they are. Smaller ones take the plain walk,
/// whose code stays as small (and its registers as well used) as before.
const BIG_MIN: usize = 64;

/// What the dominance queries of one walk have computed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Graph {
    /// Nothing yet.
    None,
    /// The CFG and the dominator tree's intervals ([`QuickDom`]).
    Quick,
    /// The CFG and the dominator tree (`QuickDom` went over its budget).
    Tree,
}

/// The state of one walk.
struct Walk<'a> {
    m: &'a Module,
    f: &'a Function,
    /// The tables of plain instructions, and the values and names
    /// defined (see [`Plain`]).
    p: Plain<'a>,
    /// Uses met before their definition: (value, using block, want).
    deferred: &'a mut Vec<(u32, u32, u8)>,
    label_seen: &'a mut [u32],
    dom: &'a mut Dominance,
    /// What of the CFG has been computed for dominance queries.
    graph: Graph,
    quick: &'a mut QuickDom,
    /// Switch keys not below the bound of `key_seen`.
    keys: &'a mut FxHashMap<u64, Const>,
    /// Per small switch key: the stamp of the last `switch` listing it.
    key_seen: &'a mut Vec<u32>,
    key_stamp: &'a mut u32,
    /// The block being walked.
    cur: u32,
    /// Whether the blocks walked so far form a chain (a big function
    /// only, while no graph is computed): each one's terminator is a
    /// `jmp` or `br` whose targets are at most the next block, and one of
    /// them the next block. Then every block walked is reachable and
    /// dominates every later block that is reachable (a path from the
    /// entry leaves the blocks before `a` only into `a`), so a block's
    /// interval holds all later numbers (see [`Walk::end_chain`]) and
    /// no dominator tree is computed for uses from earlier blocks.
    chain: bool,
}

impl Walk<'_> {
    fn run<const BIG: bool>(&mut self) -> bool {
        let f = self.f;
        if f.params.len() != f.sig.params.len() || f.blocks.is_empty() {
            return false;
        }
        for (i, (&p, &t)) in f.params.iter().zip(&f.sig.params).enumerate() {
            if !self.define::<BIG>(p, ValueDef::FuncParam(i as u32), t, PARAM_FIELD << SHIFT) {
                return false;
            }
        }
        let mut next_inst = 0u32;
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Block::new(bi);
            if !f.names.is_valid_label(bd.name) {
                return false;
            }
            match self.label_seen.get_mut(bd.name.index()) {
                Some(seen) if *seen != self.p.stamp => *seen = self.p.stamp,
                _ => return false,
            }
            if bi == 0 && !bd.params.is_empty() {
                return false;
            }
            self.cur = b.0;
            self.p.cur_enc = (b.0 + 2) << SHIFT;
            self.p.cur_pre = match self.graph {
                Graph::Quick => self.quick.pre(b.0),
                _ => {
                    // In a chain, this block and all later ones (the
                    // numbers are the blocks while no tree is computed).
                    let size = if BIG && self.chain {
                        dom::NONE - b.0
                    } else {
                        1
                    };
                    self.p.fields[slot_of(b.0 + 2)] = [b.0, size];
                    b.0
                }
            };
            for (i, &p) in bd.params.iter().enumerate() {
                let Some(t) = f.values.get(p.index()).map(|d| d.ty) else {
                    return false;
                };
                if !self.define::<BIG>(p, ValueDef::BlockParam(b, i as u32), t, self.p.cur_enc) {
                    return false;
                }
            }
            let Some((&term, body)) = bd.insts.split_last() else {
                return false;
            };
            // Increasing numbers below the terminator's, which is in the
            // table: one bounds check per block.
            if term.0 < next_inst || term.index() >= f.insts.len() {
                return false;
            }
            // In a big function, a body that is a run of consecutive
            // numbers from `next_inst` on (as the parser and the builder
            // lay them out; checked in one pass) is walked over that part
            // of the table: no number read from the listing nor compared
            // per instruction.
            let first = body.first().map_or(term.0, |i| i.0);
            let end = first as u64 + body.len() as u64;
            if BIG && first >= next_inst && end <= term.0 as u64 && consecutive(body, first) {
                // In the table: `end` is at most `term`, which is in it.
                let run = &f.insts[first as usize..end as usize];
                // The plain binary instructions in a call-free loop
                // ([`Plain::run`], stopped by the terminator when the
                // run reaches it), each other one here.
                let upto = if end == term.0 as u64 {
                    &f.insts[first as usize..=term.index()]
                } else {
                    run
                };
                let mut k = 0;
                while k < run.len() {
                    k += self.p.run(&upto[k..], first + k as u32);
                    let Some(d) = run.get(k) else { break };
                    if !self.inst::<BIG>(Inst(first + k as u32), d) {
                        return false;
                    }
                    k += 1;
                }
            } else {
                for &inst in body {
                    if inst.0 < next_inst || inst.0 >= term.0 {
                        return false;
                    }
                    // SAFETY: `inst` is below `term`, which is below
                    // `f.insts.len()` (checked above).
                    let d = unsafe { f.insts.get_unchecked(inst.index()) };
                    if !self.inst::<BIG>(inst, d) {
                        return false;
                    }
                    next_inst = inst.0 + 1;
                }
            }
            // In a big function once the tree is known (no reach marks to
            // write), a `br` or `jmp` whose operands pass the interval
            // test is accepted by `Plain::jump`, else checked here.
            // SAFETY: `term` is in the table (checked above).
            let d = unsafe { f.insts.get_unchecked(term.index()) };
            let lean = BIG && (self.graph != Graph::None || self.chain) && self.p.jump(f, d);
            if !lean && !self.terminator(term) {
                return false;
            }
            // (After the last block, nothing is left to claim.)
            if BIG && self.chain && !chain_step(d, b.0) && bi + 1 < f.blocks.len() {
                self.end_chain();
            }
            next_inst = term.0 + 1;
        }
        self.deferred.is_empty() || self.deferred_uses()
    }

    /// Ends the chain (see `chain`) after the terminator of the block
    /// being walked: each block walked keeps an interval of the blocks
    /// from it to this one (all reachable; a later one need not be).
    #[cold]
    #[inline(never)]
    fn end_chain(&mut self) {
        self.chain = false;
        if self.graph == Graph::None {
            for a in 0..=self.cur {
                self.p.fields[slot_of(a + 2)] = [a, self.cur + 1 - a];
            }
        }
    }

    /// Records the definition of `v` (as `def`, of type `ty`, in the block
    /// field `enc`): it must match `v`'s value data.
    ///
    /// That makes it `v`'s only listing: the value data names one site,
    /// and the walk meets each site once (each block once, its parameters
    /// by position, each instruction once by the increasing order). Its
    /// name is checked here too ([`Walk::name`]).
    #[inline(always)]
    fn define<const BIG: bool>(&mut self, v: Value, def: ValueDef, ty: Type, enc: u32) -> bool {
        let i = v.index();
        // One bound for both tables, the one `Walk::operand` checks too.
        if i >= self.p.def.len() {
            return false;
        }
        // SAFETY: `self.p.def` is as long as `f.values` (`accepts` resized
        // it), and `i` is below that.
        let (d, slot) = unsafe {
            (
                self.p.values.get_unchecked(i),
                self.p.def.get_unchecked_mut(i),
            )
        };
        // Field by field (the derived `==` is a call where `def` is not
        // a constant).
        let same = match (d.def, def) {
            (ValueDef::Inst(a), ValueDef::Inst(b)) => a == b,
            (ValueDef::BlockParam(a, i), ValueDef::BlockParam(b, j)) => a == b && i == j,
            (ValueDef::FuncParam(i), ValueDef::FuncParam(j)) => i == j,
            _ => false,
        };
        *slot = enc | ty as u32;
        same && d.ty == ty && self.name::<BIG>(d.name)
    }

    /// The name of a value being defined, if it has one: valid, and not
    /// the name of a value defined before in this function (the
    /// verifier's checks of the names of the values listed).
    ///
    /// In a big function (`BIG`, see [`accepts`]) `value_seen` holds
    /// [`NAME_MARK`] at exactly the valid names not met yet (it ends with
    /// the table: a name beyond is invalid), and 0 once met: one load,
    /// store and compare per name.
    #[inline(always)]
    fn name<const BIG: bool>(&mut self, name: Option<Name>) -> bool {
        let Some(n) = name else { return true };
        if BIG {
            return match self.p.value_seen.get_mut(n.index()) {
                Some(seen) => std::mem::replace(seen, 0) == NAME_MARK,
                None => false,
            };
        }
        if !self.f.names.is_valid_value_name(n) {
            return false;
        }
        // SAFETY: a valid name is in the table, so its index is below
        // `f.names.len()`, and `Scratch::begin` sized `value_seen` to at
        // least that.
        let seen = unsafe { self.p.value_seen.get_unchecked_mut(n.index()) };
        std::mem::replace(seen, self.p.stamp) != self.p.stamp
    }

    /// The last instruction of a block, which must be a terminator (out
    /// of line, and only the terminators' formats: the body loop stays
    /// small).
    #[inline(never)]
    fn terminator(&mut self, inst: Inst) -> bool {
        let f = self.f;
        let Some(d) = f.insts.get(inst.index()) else {
            return false;
        };
        let rule = RULES[d.opcode as usize][slot(d.ty)];
        if rule.place != TERM || d.result.is_some() || rule.result.is_some() {
            return false;
        }
        match (&d.kind, rule.format) {
            (
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                },
                Format::Br,
            ) => {
                self.operand(*cond, Type::I32 as u8)
                    && self.block_call(then_dest)
                    && self.block_call(else_dest)
            }
            (InstKind::Jmp { dest }, Format::Jmp) => self.block_call(dest),
            (InstKind::Ret { value }, Format::Ret) => match (value, f.sig.ret) {
                (None, None) => true,
                (Some(v), Some(t)) => self.operand(*v, t as u8),
                _ => false,
            },
            (
                InstKind::Switch {
                    value,
                    default,
                    cases,
                },
                Format::Switch,
            ) => self.switch(d.ty, *value, *default, *cases),
            (InstKind::Trap, Format::Trap) => true,
            _ => false,
        }
    }

    /// One instruction `inst` of a block's body (not its last), `d`.
    #[inline(always)]
    fn inst<const BIG: bool>(&mut self, inst: Inst, d: &InstData) -> bool {
        let f = self.f;
        let rule = RULES[d.opcode as usize][slot(d.ty)];
        // By the rule's format (one jump: a rule whose suffix is not
        // allowed has a terminator's format, which is rejected here, so
        // `rule.place` need not be read), then whether the operands are
        // laid out as it says (one compare).
        let ok = match rule.format {
            Format::Binary => match &d.kind {
                InstKind::Binary { args } => {
                    self.operand(args[0], rule.ops[0]) && self.operand(args[1], rule.ops[1])
                }
                _ => false,
            },
            Format::Unary => match &d.kind {
                InstKind::Unary { arg } => self.operand(*arg, rule.ops[0]),
                _ => false,
            },
            Format::Load => match &d.kind {
                InstKind::Load { ptr, .. } => self.operand(*ptr, rule.ops[0]),
                _ => false,
            },
            Format::Store => match &d.kind {
                InstKind::Store { args, .. } => {
                    self.operand(args[0], rule.ops[0]) && self.operand(args[1], rule.ops[1])
                }
                _ => false,
            },
            Format::Select => match &d.kind {
                InstKind::Select { args } => {
                    self.operand(args[0], rule.ops[0])
                        && self.operand(args[1], rule.ops[1])
                        && self.operand(args[2], rule.ops[2])
                }
                _ => false,
            },
            Format::Call => {
                return match &d.kind {
                    InstKind::Call { callee, args } => {
                        if BIG {
                            self.big_call(inst, d.ty, d.result, callee, f.args(*args))
                        } else {
                            self.call::<false>(inst, d.ty, d.result, callee, f.args(*args))
                        }
                    }
                    _ => false,
                };
            }
            Format::Alloca => match &d.kind {
                InstKind::Alloca { size, align } => {
                    *size <= MAX_ALLOCA && align.is_power_of_two() && *align <= 16
                }
                _ => false,
            },
            Format::Addr => match &d.kind {
                InstKind::Addr { sym } => sym.index() < self.m.symbols.len(),
                _ => false,
            },
            // Terminators, and any suffix not allowed (see `rules`).
            Format::Br | Format::Jmp | Format::Ret | Format::Switch | Format::Trap => false,
        };
        ok && match (d.result, rule.result) {
            (None, None) => true,
            (Some(r), Some(ty)) => self.define::<BIG>(r, ValueDef::Inst(inst), ty, self.p.cur_enc),
            _ => false,
        }
    }

    /// [`Walk::call`] in a big function: out of line, so that the big
    /// walk's loop stays small.
    #[inline(never)]
    fn big_call(
        &mut self,
        inst: Inst,
        ty: Option<Type>,
        result: Option<Value>,
        callee: &Callee,
        args: &[Operand],
    ) -> bool {
        self.call::<true>(inst, ty, result, callee, args)
    }

    /// A `call` (its operands and its result): the suffix is the callee's
    /// return type, arguments of a direct call match its parameters, those
    /// of an indirect call are values. Inlined into the walk of small
    /// functions (left to the compiler, it would be called out of line).
    #[inline(always)]
    fn call<const BIG: bool>(
        &mut self,
        inst: Inst,
        ty: Option<Type>,
        result: Option<Value>,
        callee: &Callee,
        args: &[Operand],
    ) -> bool {
        let ok = match callee {
            Callee::Direct(sym) => {
                let Some(sig) = self.m.symbols.get(sym.index()).and_then(|s| s.signature()) else {
                    return false;
                };
                let params: &[Type] = &sig.params;
                if ty != sig.ret || args.len() != params.len() {
                    return false;
                }
                // A plain loop: `all` over the zip was an out-of-line fold
                // reloading the walk's state per argument.
                for (&a, &t) in args.iter().zip(params) {
                    if !self.operand(a, t as u8) {
                        return false;
                    }
                }
                true
            }
            Callee::Indirect(fp) => {
                matches!(fp, Operand::Value(_))
                    && self.operand(*fp, Type::I64 as u8)
                    && args.iter().all(|&a| self.operand(a, ANY))
            }
        };
        ok && match (result, ty) {
            (None, _) => true,
            (Some(r), Some(t)) => self.define::<BIG>(r, ValueDef::Inst(inst), t, self.p.cur_enc),
            (Some(_), None) => false,
        }
    }

    /// A `jmp`/`br` target: an existing block other than the entry, given
    /// one argument of its type per parameter.
    /// A target of a reached block is reached (see `cur_reached`).
    #[inline]
    fn block_call(&mut self, dest: &BlockCall) -> bool {
        let f = self.f;
        let Some(bd) = f.blocks.get(dest.block.index()) else {
            return false;
        };
        // Only while no dominator tree answers (then the marks would go
        // unread; a block left unmarked only means "not known").
        if self.graph == Graph::None && self.cur_reached() {
            // SAFETY: `dest.block` is below the number of blocks (it has
            // data), and `dom.reach` is at least that long (`Scratch::begin`).
            unsafe { *self.dom.reach.get_unchecked_mut(dest.block.index()) = self.p.stamp };
        }
        if dest.args.is_empty() {
            return bd.params.is_empty() && dest.block != f.entry();
        }
        self.block_args(dest, bd)
    }

    /// [`Walk::block_call`] with arguments.
    #[inline(never)]
    fn block_args(&mut self, dest: &BlockCall, bd: &BlockData) -> bool {
        let f = self.f;
        let args = f.args(dest.args);
        if dest.block == f.entry() || args.len() != bd.params.len() {
            return false;
        }
        for (&a, &p) in args.iter().zip(&bd.params) {
            let Some(t) = f.values.get(p.index()).map(|d| d.ty) else {
                return false;
            };
            if !self.operand(a, t as u8) {
                return false;
            }
        }
        true
    }

    /// A `switch`: its value, and targets without parameters under
    /// distinct keys that fit the type.
    fn switch(
        &mut self,
        ty: Option<Type>,
        value: Operand,
        default: Block,
        cases: crate::ir::function::CaseList,
    ) -> bool {
        let f = self.f;
        let Some(ty) = ty else { return false };
        let target = |b: Block| {
            b != f.entry()
                && f.blocks
                    .get(b.index())
                    .is_some_and(|bd| bd.params.is_empty())
        };
        if !self.operand(value, ty as u8) || !target(default) {
            return false;
        }
        let cases = f.cases(cases);
        // Keys below a bound linear in the number of cases (most: dense
        // tables from 0) are stamped in an array, the others go through
        // the hash map, cleared only if one does.
        let bound = 2 * cases.len() + 64;
        if self.key_seen.len() < bound {
            *self.key_seen = vec![0; bound];
        }
        if *self.key_stamp == u32::MAX {
            self.key_seen.iter_mut().for_each(|s| *s = 0);
            *self.key_stamp = 0;
        }
        *self.key_stamp += 1;
        let stamp = *self.key_stamp;
        let (seen, keys) = (&mut self.key_seen[..bound], &mut *self.keys);
        let mut cleared = false;
        cases.iter().all(|case| {
            let bits = case.key.bits(ty);
            let new = match usize::try_from(bits).ok().and_then(|k| seen.get_mut(k)) {
                Some(s) => std::mem::replace(s, stamp) != stamp,
                None => {
                    if !cleared {
                        keys.clear();
                        cleared = true;
                    }
                    keys.insert(bits, case.key).is_none()
                }
            };
            fits(case.key, ty) && new && target(case.block)
        })
    }

    /// An operand position wanting `want` (a type code or one of the
    /// wants above).
    #[inline(always)]
    fn operand(&mut self, op: Operand, want: u8) -> bool {
        match op {
            Operand::Value(v) => {
                let Some(&e) = self.p.def.get(v.index()) else {
                    return false;
                };
                // The common case: of the exact type wanted, and a
                // function parameter, defined earlier in this block or
                // (once the tree is numbered) in a block that dominates
                // this one: the interval of the entry's field holds this
                // block's number. The entry xor the want is the field's
                // slot when the type is the want, else a slot that holds
                // none (see `fields`).
                // SAFETY: entries are `UNSET` or written by `define`,
                // whose fields are `PARAM_FIELD` or a block + 2, all at
                // most `f.blocks.len() + 1`; a want is below 16 (see
                // `REJECT`), so the xor changes the field by at most 1 and
                // the slot is below `(f.blocks.len() + 3) << SHIFT <=
                // fields.len()` (see `accepts`).
                let [first, size] =
                    unsafe { *self.p.fields.get_unchecked((e ^ want as u32) as usize) };
                if self.p.cur_pre.wrapping_sub(first) < size {
                    return true;
                }
                self.value(v, e, want)
            }
            Operand::Const(c) => lit_fits(c, want),
        }
    }

    /// Whether the block being walked is reached from the entry by edges
    /// from blocks laid out before it (`dom.reach[block] == stamp`, set by
    /// the terminators of reached blocks, [`Walk::block_call`]): then it
    /// is reachable, so the entry dominates it.
    #[inline]
    fn cur_reached(&self) -> bool {
        // SAFETY: `Scratch::begin` sized `dom.reach` to at least the number of
        // blocks, and `cur` is one.
        self.cur == 0 || unsafe { *self.dom.reach.get_unchecked(self.cur as usize) } == self.p.stamp
    }

    /// The other value operands: defined in another block (which must
    /// dominate this one), or not met yet (checked at the end).
    #[inline(never)]
    fn value(&mut self, v: Value, e: u32, want: u8) -> bool {
        if want == REJECT {
            return false;
        }
        if e == UNSET {
            self.deferred.push((v.0, self.cur, want));
            return true;
        }
        if !type_ok(e & 3, want) {
            return false;
        }
        let field = e >> SHIFT;
        field == PARAM_FIELD
            || field == self.cur + 2
            || (field == 2 && self.cur_reached())
            || self.dominates(field - 2, self.cur)
    }

    /// The uses met before their value's definition: now that every
    /// definition is known, each must be in another block that dominates
    /// the use's.
    fn deferred_uses(&mut self) -> bool {
        let deferred = std::mem::take(self.deferred);
        let ok = deferred.iter().all(|&(v, ub, want)| {
            let e = self.p.def[v as usize];
            let field = e >> SHIFT;
            e != UNSET
                && type_ok(e & 3, want)
                && field != ub + 2
                && (field == PARAM_FIELD || self.dominates(field - 2, ub))
        });
        *self.deferred = deferred;
        ok
    }

    /// Whether block `a` dominates block `b` (`a != b`), from the
    /// dominator tree, computed on first use: by [`QuickDom`] in one pass
    /// over the layout, else by its iteration over the CFG, else (past its
    /// budget) as a [`DomTree`](crate::analysis::DomTree).
    fn dominates(&mut self, a: u32, b: u32) -> bool {
        let d = &mut *self.dom;
        if self.graph == Graph::None {
            self.graph = if self.quick.compute_layout(self.f) {
                Graph::Quick
            } else {
                d.cfg.compute(self.f);
                // Out of budget in the layout pass: the iteration would
                // climb the same long chains and give up too.
                if !self.quick.deep() && self.quick.compute(&d.cfg) {
                    Graph::Quick
                } else {
                    d.dom.compute(&d.cfg);
                    Graph::Tree
                }
            };
            if self.graph == Graph::Quick {
                self.quick.intervals_into(self.p.fields);
                self.p.cur_pre = self.quick.pre(self.cur);
            } else if self.chain {
                self.chain = false;
                self.p.unchain(self.cur);
            }
        }
        if self.graph == Graph::Quick {
            self.quick.dominates(a, b)
        } else {
            dom::tree_dominates(&d.dom, a, b)
        }
    }
}

/// [`PLAIN`]'s formats: binary, store, unary, load (0: none of these, or
/// a suffix not allowed).
const P_BINARY: u8 = 1;
const P_STORE: u8 = 2;
const P_UNARY: u8 = 3;
const P_LOAD: u8 = 4;
/// [`PLAIN`]'s result type of an instruction without a result (no value
/// has this type code).
const P_NO_RESULT: u8 = 0xff;

/// The rule of a plain instruction ([`Plain::run`]), one row of
/// [`PLAIN`] (eight bytes: one row per index step).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct PlainRow {
    /// The wants of a binary instruction's operands: [`REJECT`] unless
    /// the format is binary and the suffix allowed (so a binary
    /// instruction is checked without reading the format).
    bin: [u8; 2],
    /// The result type (`P_NO_RESULT` for none).
    ty: u8,
    /// One of `P_BINARY`, `P_STORE`, `P_UNARY`, `P_LOAD`; 0 for another
    /// format or a suffix not allowed.
    format: u8,
    /// The wants of the operands of the other formats.
    ops: [u8; 2],
}

/// Per (opcode, suffix slot): the rule of a plain instruction
/// ([`PlainRow`]), or a row of format 0 (and binary wants [`REJECT`])
/// where the format is another or the suffix is not allowed.
/// Indexed by [`plain_key`]: the opcode and the suffix slot side by side,
/// as they are in [`InstData`].
static PLAIN: [PlainRow; 256 * SUFFIXES] = plain_rules();

/// The index of an instruction's row in [`PLAIN`].
#[inline(always)]
fn plain_key(d: &InstData) -> usize {
    if KEY_BY_U16 {
        // SAFETY: `KEY_BY_U16` says the suffix's byte is followed by the
        // opcode's, both initialized bytes of `*d`: the two read as one
        // `u16` (little-endian) are `slot | opcode << 8`.
        let pair = unsafe {
            std::ptr::read_unaligned(
                (d as *const InstData)
                    .cast::<u8>()
                    .add(std::mem::offset_of!(InstData, ty))
                    .cast::<u16>(),
            )
        };
        // `opcode | slot << 8`: below `256 * SUFFIXES` (a valid suffix
        // byte is a slot, at most 4).
        pair.rotate_left(8) as usize
    } else {
        (d.opcode as usize | slot(d.ty) << 8) & (256 * SUFFIXES - 1)
    }
}

/// Whether [`plain_key`] reads the suffix and the opcode as one `u16`:
/// where they are adjacent bytes in [`InstData`] (suffix first, on a
/// little-endian target), the suffix's byte is its slot and the opcode's
/// its number (checked here at compile time; else two reads).
const KEY_BY_U16: bool = {
    let ty = std::mem::offset_of!(InstData, ty);
    let op = std::mem::offset_of!(InstData, opcode);
    let mut ok = cfg!(target_endian = "little")
        && op == ty + 1
        && std::mem::size_of::<Option<Type>>() == 1
        && std::mem::size_of::<Opcode>() == 1;
    if ok {
        // SAFETY: both are one byte (checked above).
        ok = unsafe { std::mem::transmute::<Option<Type>, u8>(None) } == 4;
        let mut k = 0;
        while k < Type::ALL.len() {
            let t = Type::ALL[k];
            // SAFETY: one byte (checked above).
            ok = ok && unsafe { std::mem::transmute::<Option<Type>, u8>(Some(t)) } == t as u8;
            k += 1;
        }
        let mut k = 0;
        while k < Opcode::ALL.len() {
            let o = Opcode::ALL[k];
            // SAFETY: one byte (checked above).
            ok = ok && unsafe { std::mem::transmute::<Opcode, u8>(o) } as usize == o as usize;
            k += 1;
        }
    }
    ok
};

const _: () = assert!(NUM_OPCODES <= 256);

/// The table of [`PLAIN`], from [`RULES`].
const fn plain_rules() -> [PlainRow; 256 * SUFFIXES] {
    const NO: PlainRow = PlainRow {
        bin: [REJECT; 2],
        ty: 0,
        format: 0,
        ops: [REJECT; 2],
    };
    let mut t = [NO; 256 * SUFFIXES];
    let mut k = 0;
    while k < NUM_OPCODES {
        let mut slot = 0;
        while slot < SUFFIXES {
            let r = RULES[k][slot];
            let format = match r.format {
                Format::Binary => P_BINARY,
                Format::Store => P_STORE,
                Format::Unary => P_UNARY,
                Format::Load => P_LOAD,
                _ => 0,
            };
            if format != 0 && r.place == BODY {
                let ty = match r.result {
                    Some(ty) => ty as u8,
                    None => P_NO_RESULT,
                };
                let ops = [r.ops[0], r.ops[1]];
                t[k | slot << 8] = PlainRow {
                    bin: if format == P_BINARY { ops } else { [REJECT; 2] },
                    ty,
                    format,
                    ops,
                };
            }
            slot += 1;
        }
        k += 1;
    }
    t
}

/// The tables a plain instruction touches, part of a [`Walk`] (so that
/// [`Plain::run`] and [`Plain::jump`] take them with no copy): a loop
/// that calls nothing and writes only through these, so that they stay
/// in registers.
struct Plain<'h> {
    /// `f.values`, one load nearer.
    values: &'h [ValueData],
    /// Per value (as many as `f.values`): `UNSET`, or `field << SHIFT |
    /// type` where the field is `PARAM_FIELD` or the defining block + 2.
    def: &'h mut [u32],
    /// Per block field (of a definition's entry, `UNSET`, `PARAM_FIELD` or
    /// a block + 2), at `field << SHIFT` ([`slot_of`]): `[first, size]`,
    /// the numbers whose use sees its definitions (`cur_pre - first <
    /// size`). `UNSET` holds none and `PARAM_FIELD` every number but
    /// `NONE`; a block's entry is its dominator subtree's interval once
    /// [`QuickDom`] has numbered the tree, else `[block, 1]` from when the
    /// walk enters it (only itself). The other slots are never written:
    /// they hold none, so that a use looks up its entry xor its want and
    /// finds the interval only when the type bits are the want. At least
    /// `(f.blocks.len() + 4) << SHIFT` long.
    fields: &'h mut [[u32; 2]],
    /// Per name: this walk's stamp where not met yet (see
    /// [`Walk::name`]).
    value_seen: &'h mut [u32],
    stamp: u32,
    /// The field of the block being walked (`(cur + 2) << SHIFT`).
    cur_enc: u32,
    /// The block's number in the dominator tree's preorder once
    /// [`QuickDom`] is computed (`NONE` when unreachable: no interval
    /// holds it), else the block itself (see `fields`).
    cur_pre: u32,
}

impl Plain<'_> {
    /// How many instructions from the start of `insts` (numbered from
    /// `first` on, in the block being walked) are plain: a binary, store,
    /// unary or load instruction with an allowed suffix, operands that
    /// pass the interval test of [`Walk::operand`] (no dominator tree to
    /// compute, no use to defer) or literals that fit, and a result (if
    /// its rule has one) that [`Walk::define`] accepts, recorded as it
    /// does. The first other instruction stops the loop with nothing
    /// written for it: the walk checks it the usual way. The last of
    /// `insts` is never taken (it stops the loop without a bound check on
    /// each instruction: the caller passes the block's terminator there
    /// when it is next).
    #[inline(never)]
    fn run(&mut self, insts: &[InstData], first: u32) -> usize {
        match insts.last() {
            Some(d) if !is_plain_kind(&d.kind) => {}
            _ => return 0,
        }
        let mut p = insts.as_ptr();
        let mut inst = first;
        loop {
            // SAFETY: the last of `insts` is of no plain kind (checked
            // above), so the loop stops at it at the latest: `p` points
            // into `insts`.
            let d = unsafe { &*p };
            if !self.inst(inst, d) {
                return inst.wrapping_sub(first) as usize;
            }
            inst = inst.wrapping_add(1);
            // SAFETY: `d` is not the last of `insts` (see above).
            p = unsafe { p.add(1) };
        }
    }

    /// Whether `d` (instruction `inst`) is a plain instruction, its
    /// result recorded if so (see [`Plain::run`]).
    #[inline(always)]
    fn inst(&mut self, inst: u32, d: &InstData) -> bool {
        // SAFETY: `plain_key` is below `256 * SUFFIXES`.
        let row = unsafe { PLAIN.get_unchecked(plain_key(d)) };
        let (format, [w0, w1], ty) = (row.format, row.ops, row.ty);
        // Binary first (the most common), the others after one compare.
        let ok = if format == P_BINARY {
            match &d.kind {
                InstKind::Binary { args } => self.operand(args[0], w0) && self.operand(args[1], w1),
                _ => false,
            }
        } else {
            match &d.kind {
                InstKind::Store { args, .. } => {
                    format == P_STORE && self.operand(args[0], w0) && self.operand(args[1], w1)
                }
                InstKind::Unary { arg } => format == P_UNARY && self.operand(*arg, w0),
                InstKind::Load { ptr, .. } => format == P_LOAD && self.operand(*ptr, w0),
                _ => false,
            }
        };
        if !ok {
            return false;
        }
        let Some(r) = d.result else {
            return ty == P_NO_RESULT;
        };
        let i = r.index();
        if i >= self.def.len() {
            return false;
        }
        // SAFETY: `def` is as long as `values` (`accepts` resized it),
        // and `i` is below that.
        let vd = unsafe { self.values.get_unchecked(i) };
        // (No value has type `P_NO_RESULT`.)
        if !matches!(vd.def, ValueDef::Inst(a) if a.0 == inst) || vd.ty as u8 != ty {
            return false;
        }
        // The name as [`Walk::name`] checks it in a big function.
        if let Some(n) = vd.name {
            match self.value_seen.get_mut(n.index()) {
                Some(seen) if *seen == NAME_MARK => *seen = 0,
                _ => return false,
            }
        }
        // SAFETY: as above.
        unsafe { *self.def.get_unchecked_mut(i) = self.cur_enc | ty as u32 };
        true
    }

    /// A `br`, `jmp`, `ret` or `trap` that [`Walk::terminator`] accepts,
    /// when each of its
    /// operands passes the interval test ([`Plain::operand`]) and no
    /// reach mark is to be written (the walk's graph is computed): `true`
    /// only then; `false` says nothing (the walk checks it).
    #[inline(never)]
    fn jump(&self, f: &Function, d: &InstData) -> bool {
        let rule = RULES[d.opcode as usize][slot(d.ty)];
        if rule.place != TERM || d.result.is_some() || rule.result.is_some() {
            return false;
        }
        match (&d.kind, rule.format) {
            (
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                },
                Format::Br,
            ) => {
                self.operand(*cond, Type::I32 as u8)
                    && self.target(f, then_dest)
                    && self.target(f, else_dest)
            }
            (InstKind::Jmp { dest }, Format::Jmp) => self.target(f, dest),
            (InstKind::Ret { value }, Format::Ret) => match (value, f.sig.ret) {
                (None, None) => true,
                (Some(v), Some(t)) => self.operand(*v, t as u8),
                _ => false,
            },
            (InstKind::Trap, Format::Trap) => true,
            _ => false,
        }
    }

    /// A target of [`Plain::jump`]: a block other than the entry, given
    /// one argument of its type per parameter, each passing the interval
    /// test (as [`Walk::block_call`] checks it).
    #[inline(always)]
    fn target(&self, f: &Function, dest: &BlockCall) -> bool {
        let Some(bd) = f.blocks.get(dest.block.index()) else {
            return false;
        };
        let args = f.args(dest.args);
        if dest.block == f.entry() || args.len() != bd.params.len() {
            return false;
        }
        for (&a, &p) in args.iter().zip(&bd.params) {
            let Some(vd) = self.values.get(p.index()) else {
                return false;
            };
            if !self.operand(a, vd.ty as u8) {
                return false;
            }
        }
        true
    }

    /// Ends a chain (see `Walk::chain`) when the dominator tree is
    /// computed ([`Graph::Tree`]: with [`Graph::Quick`] the tree's
    /// intervals replace the chain's, and the chain is no longer read):
    /// the chain's intervals claim later blocks, which the tree answers
    /// now, so each block walked (up to `cur`) holds only itself.
    #[cold]
    #[inline(never)]
    fn unchain(&mut self, cur: u32) {
        for a in 0..=cur {
            self.fields[slot_of(a + 2)] = [a, 1];
        }
    }

    /// [`Walk::operand`] without its other cases: a value in the
    /// interval of its entry, or a literal that fits.
    #[inline(always)]
    fn operand(&self, op: Operand, want: u8) -> bool {
        match op {
            Operand::Value(v) => {
                let Some(&e) = self.def.get(v.index()) else {
                    return false;
                };
                // SAFETY: as in `Walk::operand` (the same entries, the
                // same wants).
                let [first, size] =
                    unsafe { *self.fields.get_unchecked((e ^ want as u32) as usize) };
                self.cur_pre.wrapping_sub(first) < size
            }
            Operand::Const(c) => lit_fits(c, want),
        }
    }
}

/// Whether the chain (see `Walk::chain`) goes on after terminator `d` of
/// block `b`: a `jmp` to the next block, or a `br` whose targets are at
/// most the next block and one of them it.
#[inline(always)]
fn chain_step(d: &InstData, b: u32) -> bool {
    let next = b.wrapping_add(1);
    match &d.kind {
        InstKind::Jmp { dest } => dest.block.0 == next,
        InstKind::Br {
            then_dest,
            else_dest,
            ..
        } => then_dest.block.0.max(else_dest.block.0) == next,
        _ => false,
    }
}

/// Whether an instruction of this kind may be plain ([`Plain::run`]).
#[inline(always)]
fn is_plain_kind(kind: &InstKind) -> bool {
    matches!(
        kind,
        InstKind::Binary { .. }
            | InstKind::Store { .. }
            | InstKind::Unary { .. }
            | InstKind::Load { .. }
    )
}

pub(super) mod dom;
#[cfg(test)]
mod tests;
