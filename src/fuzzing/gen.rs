//! A structure-aware generator of *valid*, *terminating*, *defined* IR
//! modules from fuzzer bytes, for differential testing of the interpreter
//! against compiled code.
//!
//! Invariants of every generated module (each by construction, not by
//! filtering):
//! - it parses and verifies: values are used only in the scope where they
//!   dominate (structured regions: if/else diamonds, switches and counted
//!   loops whose values are dropped from scope when the region closes);
//! - it terminates: every loop counts an `i64` counter down from a literal
//!   1..=4, and functions only call functions with a larger index (no
//!   recursion);
//! - its behaviour is defined (SPEC section 5): memory accesses stay inside
//!   an `alloca` (zero-filled right after it is made) or a data item, stores
//!   never hit `const` data, indirect calls go to a function of the call
//!   site's signature; and no NaN's unspecified bits are ever observed,
//!   because a float is replaced by the `nan` literal's fixed bits (`fne`
//!   + `select`) before it is bitcast or stored;
//! - it may trap: some divisions take raw divisors (zero, `MIN / -1`) and
//!   some branches end in `trap`.
//!
//! `@main` returns an `i64` checksum of every value still in scope at its
//! end and of the writable data, so a wrong value anywhere shows.
//! Every opcode of the table is reachable: unary, binary and select ones
//! through [`Fx::inst`], memory, `alloca`, `addr`, calls and every
//! terminator through their own generators.

use super::bytes::Bytes;
use crate::ir::{Format, Opcode, OperandTy, Suffix, Type};
use crate::value::Val;
use std::fmt::Write;

/// A generated program: the module text and the arguments for `@main`.
#[derive(Clone, Debug)]
pub struct Program {
    pub text: String,
    pub args: Vec<Val>,
}

const MAX_FUNCS: u32 = 4;
const MAX_PARAMS: u32 = 11;
const MAX_DEPTH: u32 = 3;
const MAX_LOOP_DEPTH: u32 = 2;
const MAIN_BUDGET: u32 = 56;
const HELPER_BUDGET: u32 = 20;

#[derive(Clone, Debug)]
struct Sig {
    params: Vec<Type>,
    ret: Option<Type>,
}

#[derive(Clone, Copy, Debug)]
enum Ptr {
    /// `size` bytes of memory starting at the pointer.
    Mem { size: u32, writable: bool },
    /// The address of function `@f{0}` (a larger index than the caller).
    Func(usize),
}

#[derive(Clone, Debug)]
struct DataItem {
    size: u32,
    writable: bool,
}

/// An entry of the `@ptab` pointer table: what the loaded pointer is.
#[derive(Clone, Copy, Debug)]
struct TabEntry {
    offset: u32,
    ptr: Ptr,
}

const INT_EDGES: &[i64] = &[
    0,
    1,
    -1,
    2,
    31,
    32,
    63,
    64,
    i32::MIN as i64,
    i32::MAX as i64,
    0x8000_0000,
    0xffff_ffff,
    i64::MIN,
    i64::MAX,
    0x7f,
    0x80,
    0xff,
    0xffff,
];

const F64_LITS: &[&str] = &[
    "0.0",
    "-0.0",
    "1.0",
    "-1.0",
    "0.5",
    "1.5",
    "-2.25",
    "3.0e-5",
    "1e10",
    "-1e10",
    "inf",
    "-inf",
    "nan",
    "9.223372036854775807e18",
    "-9.223372036854775808e18",
    "1.8446744073709552e19",
    "4294967296.0",
    "2147483648.0",
    "-2147483649.0",
    "123456.789",
    "1e-310",
    "1e300",
];

const F32_LITS: &[&str] = &[
    "0.0",
    "-0.0",
    "1.0",
    "-1.0",
    "0.5",
    "1.5",
    "-2.25",
    "3.0e-5",
    "1e10",
    "-1e10",
    "inf",
    "-inf",
    "nan",
    "2147483648.0",
    "-2147483904.0",
    "4294967296.0",
    "16777217.0",
    "123456.79",
    "1e-40",
    "3.4028235e38",
];

fn int_lit(b: &mut Bytes, ty: Type) -> i64 {
    let v = match b.below(8) {
        0..=2 => i64::from(b.below(25)) - 8,
        3 | 4 => b.pick(INT_EDGES).copied().unwrap_or(0),
        5 | 6 => i64::from(b.u32() as i32),
        _ => b.u64() as i64,
    };
    if ty == Type::I32 {
        i64::from(v as i32)
    } else {
        v
    }
}

fn float_lit(b: &mut Bytes, ty: Type) -> String {
    if b.below(4) == 0 {
        // Random bits: finite values print in a form that reads back
        // exactly; non-finite ones come from the tables instead.
        if ty == Type::F32 {
            let x = f32::from_bits(b.u32());
            if x.is_finite() {
                return format!("{x:?}");
            }
        } else {
            let x = f64::from_bits(b.u64());
            if x.is_finite() {
                return format!("{x:?}");
            }
        }
    }
    let table = if ty == Type::F32 { F32_LITS } else { F64_LITS };
    b.pick(table).copied().unwrap_or("0.0").to_string()
}

fn lit(b: &mut Bytes, ty: Type) -> String {
    if ty.is_int() {
        int_lit(b, ty).to_string()
    } else {
        float_lit(b, ty)
    }
}

fn any_type(b: &mut Bytes) -> Type {
    Type::ALL[b.below(4) as usize]
}

fn int_type(b: &mut Bytes) -> Type {
    if b.below(2) == 0 {
        Type::I64
    } else {
        Type::I32
    }
}

fn float_type(b: &mut Bytes) -> Type {
    if b.below(2) == 0 {
        Type::F64
    } else {
        Type::F32
    }
}

/// A run-time argument of type `ty` for `@main`.
fn arg(b: &mut Bytes, ty: Type) -> Val {
    match ty {
        Type::I32 => Val::I32(int_lit(b, Type::I32) as i32),
        Type::I64 => Val::I64(int_lit(b, Type::I64)),
        Type::F32 => Val::F32(if b.below(2) == 0 {
            f32::from_bits(b.u32())
        } else {
            b.below(200) as f32 / 8.0 - 10.0
        }),
        Type::F64 => Val::F64(if b.below(2) == 0 {
            f64::from_bits(b.u64())
        } else {
            f64::from(b.below(200)) / 8.0 - 10.0
        }),
    }
}

/// Generates a program from `data`. Always succeeds.
pub fn generate(data: &[u8]) -> Program {
    let mut b = Bytes::new(data);
    let b = &mut b;
    let nfuncs = 1 + b.below(MAX_FUNCS) as usize;
    let mut sigs = Vec::with_capacity(nfuncs);
    let mut args = Vec::new();
    let main_params = b.below(6);
    let mut params = Vec::new();
    for _ in 0..main_params {
        let t = any_type(b);
        params.push(t);
        args.push(arg(b, t));
    }
    sigs.push(Sig {
        params,
        ret: Some(Type::I64),
    });
    for _ in 1..nfuncs {
        let n = b.below(MAX_PARAMS + 1);
        let params = (0..n).map(|_| any_type(b)).collect();
        let ret = if b.below(5) == 0 {
            None
        } else {
            Some(any_type(b))
        };
        sigs.push(Sig { params, ret });
    }

    let mut text = String::new();
    let ndata = 1 + b.below(3) as usize;
    let mut datas = Vec::with_capacity(ndata);
    for i in 0..ndata {
        datas.push(gen_data(b, i, &mut text));
    }

    // The pointer table: every helper's address, then one pointer into
    // each data item.
    let mut tab = Vec::new();
    let mut items = Vec::new();
    for k in 1..nfuncs {
        items.push(format!("@f{k}"));
        tab.push(TabEntry {
            offset: 8 * tab.len() as u32,
            ptr: Ptr::Func(k),
        });
    }
    for (i, d) in datas.iter().enumerate() {
        let off = b.below(d.size);
        items.push(if off == 0 {
            format!("@d{i}")
        } else {
            format!("@d{i}+{off}")
        });
        tab.push(TabEntry {
            offset: 8 * tab.len() as u32,
            ptr: Ptr::Mem {
                size: d.size - off,
                writable: d.writable,
            },
        });
    }
    let _ = writeln!(text, "const @ptab = {{ {} }}", items.join(", "));

    for idx in 0..nfuncs {
        let mut fx = Fx {
            b: &mut *b,
            idx,
            sigs: &sigs,
            datas: &datas,
            tab: &tab,
            vals: Vec::new(),
            ptrs: Vec::new(),
            next_value: 0,
            next_block: 1,
            out: String::new(),
            budget: if idx == 0 { MAIN_BUDGET } else { HELPER_BUDGET },
            depth: 0,
            loop_depth: 0,
        };
        fx.function();
        text.push_str(&fx.out);
    }
    Program { text, args }
}

/// Writes one data item `@d{idx}` and returns its shape. Item 0 is always
/// writable; every item ends in 8 zero bytes so it is at least 8 long.
fn gen_data(b: &mut Bytes, idx: usize, text: &mut String) -> DataItem {
    let writable = idx == 0 || b.below(2) == 0;
    let mut parts = Vec::new();
    let mut size: u32 = 0;
    for _ in 0..b.below(4) {
        let kind = b.below(7);
        let (name, width) = match kind {
            0 => ("i8", 1),
            1 => ("i16", 2),
            2 => ("i32", 4),
            3 => ("i64", 8),
            4 => ("f32", 4),
            5 => ("f64", 8),
            _ => {
                let n = 1 + b.below(24);
                parts.push(format!("zero {n}"));
                size += n;
                continue;
            }
        };
        size = size.next_multiple_of(width);
        let count = 1 + b.below(3);
        let mut part = name.to_string();
        for _ in 0..count {
            part.push(' ');
            match kind {
                0 => part.push_str(&(i64::from(b.u8() as i8)).to_string()),
                1 => part.push_str(&(i64::from(b.u32() as i16)).to_string()),
                2 => part.push_str(&int_lit(b, Type::I32).to_string()),
                3 => part.push_str(&int_lit(b, Type::I64).to_string()),
                4 => part.push_str(&float_lit(b, Type::F32)),
                _ => part.push_str(&float_lit(b, Type::F64)),
            }
            size += width;
        }
        parts.push(part);
    }
    parts.push("zero 8".into());
    size += 8;
    let kw = if writable { "data" } else { "const" };
    let local = if b.below(2) == 0 { "local " } else { "" };
    let _ = writeln!(text, "{local}{kw} @d{idx} = {{ {} }}", parts.join(", "));
    DataItem { size, writable }
}

/// Generation state of one function.
struct Fx<'b, 'd, 'g> {
    b: &'b mut Bytes<'d>,
    idx: usize,
    sigs: &'g [Sig],
    datas: &'g [DataItem],
    tab: &'g [TabEntry],
    /// Values in scope, with their types. Defined at the entry before any
    /// region opens, one value of each type is always in scope.
    vals: Vec<(String, Type)>,
    /// Pointer values in scope (`i64`, kept out of `vals`).
    ptrs: Vec<(String, Ptr)>,
    next_value: u32,
    next_block: u32,
    out: String,
    /// Statements left to generate in this function.
    budget: u32,
    depth: u32,
    loop_depth: u32,
}

impl Fx<'_, '_, '_> {
    fn line(&mut self, s: &str) {
        self.out.push_str("    ");
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn fresh(&mut self) -> String {
        self.next_value += 1;
        format!("%v{}", self.next_value)
    }

    fn block(&mut self) -> String {
        self.next_block += 1;
        format!("b{}", self.next_block)
    }

    /// Emits `%new = rhs` of type `ty`, puts it in scope and returns it.
    fn def(&mut self, ty: Type, rhs: &str) -> String {
        let v = self.fresh();
        let _ = writeln!(self.out, "    {v} = {rhs}");
        self.vals.push((v.clone(), ty));
        v
    }

    /// Emits `%new = rhs` whose result is an address: it goes into
    /// `ptrs` only, never into `vals`, because addresses differ between
    /// the interpreter and compiled code and must not reach the checksum.
    fn def_ptr(&mut self, rhs: &str, ptr: Ptr) -> String {
        let v = self.fresh();
        let _ = writeln!(self.out, "    {v} = {rhs}");
        self.ptrs.push((v.clone(), ptr));
        v
    }

    fn mark(&self) -> (usize, usize) {
        (self.vals.len(), self.ptrs.len())
    }

    fn restore(&mut self, m: (usize, usize)) {
        self.vals.truncate(m.0);
        self.ptrs.truncate(m.1);
    }

    /// A value of type `ty` in scope (one always exists).
    fn value(&mut self, ty: Type) -> String {
        let cands: Vec<usize> = (0..self.vals.len())
            .filter(|&i| self.vals[i].1 == ty)
            .collect();
        // Prefer recent values (more interesting data flow), but reach old
        // ones too so they stay live for long.
        let n = cands.len() as u32;
        let i = if self.b.below(2) == 0 {
            n.saturating_sub(1 + self.b.below(4.min(n)))
        } else {
            self.b.below(n)
        };
        match cands.get(i as usize) {
            Some(&k) => self.vals[k].0.clone(),
            None => lit(self.b, ty),
        }
    }

    /// A value or (sometimes) a literal of type `ty`.
    fn operand(&mut self, ty: Type) -> String {
        if self.b.below(4) == 0 {
            lit(self.b, ty)
        } else {
            self.value(ty)
        }
    }

    /// `v` with any NaN replaced by the `nan` literal's fixed bits.
    fn guard(&mut self, v: &str, ty: Type) -> String {
        let n = self.def(Type::I32, &format!("fne.{ty} {v}, {v}"));
        self.def(ty, &format!("select.{ty} {n}, nan, {v}"))
    }

    /// A value of type `ty` whose bits are fully defined.
    fn defined_value(&mut self, ty: Type) -> String {
        let v = self.value(ty);
        if ty.is_float() {
            self.guard(&v, ty)
        } else {
            v
        }
    }

    fn function(&mut self) {
        let sig = self.sigs[self.idx].clone();
        let mut params = Vec::new();
        for &t in &sig.params {
            let v = self.fresh();
            params.push(format!("{v}: {t}"));
            self.vals.push((v, t));
        }
        let ret = sig.ret.map(|t| format!(" -> {t}")).unwrap_or_default();
        let head = if self.idx == 0 {
            "func @main".to_string()
        } else if self.b.below(2) == 0 {
            format!("local func @f{}", self.idx)
        } else {
            format!("func @f{}", self.idx)
        };
        let _ = writeln!(self.out, "{head}({}){ret} {{", params.join(", "));
        self.out.push_str("b0:\n");
        // One value of each type first, so `value` always finds one.
        for t in Type::ALL {
            let l = lit(self.b, t);
            self.def(t, &format!("copy.{t} {l}"));
        }
        self.alloca();
        let budget = self.budget;
        self.stmts(budget);
        self.epilogue(sig.ret);
        self.out.push_str("}\n");
    }

    fn stmts(&mut self, max: u32) {
        for _ in 0..max {
            if self.budget == 0 || self.b.is_empty() {
                break;
            }
            self.budget -= 1;
            self.stmt();
        }
    }

    fn stmt(&mut self) {
        let nested = self.depth < MAX_DEPTH;
        match self.b.below(20) {
            0..=7 => self.inst(),
            8 | 9 => self.mem(),
            10 => self.call(),
            11 if nested => self.if_else(),
            12 if nested && self.loop_depth < MAX_LOOP_DEPTH => self.counted_loop(),
            13 if nested => self.switch(),
            14 => self.alloca(),
            15 => self.addr(),
            16 => self.division(true),
            _ => self.inst(),
        }
    }

    /// The checksum of everything in scope, then `ret`.
    fn epilogue(&mut self, ret: Option<Type>) {
        let vals: Vec<(String, Type)> = self.vals.clone();
        let mut sum = self.def(Type::I64, "copy.i64 0");
        if self.idx == 0 {
            for (i, d) in self.datas.iter().enumerate() {
                let ptr = Ptr::Mem {
                    size: d.size,
                    writable: d.writable,
                };
                let p = self.def_ptr(&format!("addr @d{i}"), ptr);
                for off in (0..d.size.saturating_sub(7)).step_by(8) {
                    let w = self.def(Type::I64, &format!("load.i64 {p}, {off}"));
                    sum = self.fold(&sum, &w);
                }
            }
        }
        for (v, t) in vals {
            let w = match t {
                Type::I64 => v,
                Type::I32 => self.def(Type::I64, &format!("sext.i64 {v}")),
                Type::F32 => {
                    let g = self.guard(&v, t);
                    let bits = self.def(Type::I32, &format!("bitcast.i32 {g}"));
                    self.def(Type::I64, &format!("zext.i64 {bits}"))
                }
                Type::F64 => {
                    let g = self.guard(&v, t);
                    self.def(Type::I64, &format!("bitcast.i64 {g}"))
                }
            };
            sum = self.fold(&sum, &w);
        }
        self.ret_with(ret, &sum);
    }

    fn fold(&mut self, sum: &str, w: &str) -> String {
        let m = self.def(Type::I64, &format!("mul.i64 {sum}, 31"));
        self.def(Type::I64, &format!("xor.i64 {m}, {w}"))
    }

    /// `ret` of a value derived from the `i64` `sum`.
    fn ret_with(&mut self, ret: Option<Type>, sum: &str) {
        let r = match ret {
            None => {
                self.line("ret");
                return;
            }
            Some(Type::I64) => sum.to_string(),
            Some(Type::I32) => self.def(Type::I32, &format!("trunc.i32 {sum}")),
            Some(t) => self.def(t, &format!("sitof.{t} {sum}")),
        };
        self.line(&format!("ret {r}"));
    }

    /// A unary, binary or select instruction, any opcode of the table.
    fn inst(&mut self) {
        let ops: Vec<Opcode> = Opcode::ALL
            .iter()
            .copied()
            .filter(|o| {
                matches!(
                    o.info().format,
                    Format::Unary | Format::Binary | Format::Select
                )
            })
            .collect();
        let Some(&op) = self.b.pick(&ops) else {
            return;
        };
        let info = op.info();
        let ty = match info.suffix {
            Suffix::Int => int_type(self.b),
            Suffix::Float => float_type(self.b),
            Suffix::Any | Suffix::Optional => any_type(self.b),
            Suffix::Only(t) => t,
            Suffix::None => return,
        };
        if matches!(
            op,
            Opcode::Sdiv | Opcode::Udiv | Opcode::Srem | Opcode::Urem
        ) {
            return self.division_op(op, ty, false);
        }
        let mut args = Vec::new();
        for oty in info.operands {
            let a = match *oty {
                OperandTy::OpenInt => {
                    let t = int_type(self.b);
                    self.value(t)
                }
                OperandTy::OpenFloat => {
                    let t = float_type(self.b);
                    self.value(t)
                }
                OperandTy::BitcastPeer if ty.is_int() => {
                    // Float bits become visible: pin NaNs down first.
                    self.defined_value(ty.bitcast_peer())
                }
                other => match other.fixed(Some(ty)) {
                    Some(t) => self.operand(t),
                    None => return,
                },
            };
            args.push(a);
        }
        let Some(rt) = info.result_type(Some(ty)) else {
            return;
        };
        self.def(rt, &format!("{}.{ty} {}", info.name, args.join(", ")));
    }

    /// A division or remainder of a random kind.
    fn division(&mut self, raw: bool) {
        let ops = [Opcode::Sdiv, Opcode::Udiv, Opcode::Srem, Opcode::Urem];
        let op = ops[self.b.below(4) as usize];
        let ty = int_type(self.b);
        self.division_op(op, ty, raw);
    }

    /// `op.ty a, d`. The divisor is made safe (1..=256) unless `raw` or
    /// the bytes say otherwise, in which case zero or `MIN / -1` may trap.
    fn division_op(&mut self, op: Opcode, ty: Type, raw: bool) {
        let d = if raw || self.b.below(8) == 0 {
            if self.b.below(3) == 0 {
                // Literal divisors take the backends' constant paths.
                self.b
                    .pick(&["0", "-1", "1", "7", "-3"])
                    .copied()
                    .unwrap_or("0")
                    .to_string()
            } else {
                self.operand(ty)
            }
        } else {
            let x = self.value(ty);
            let m = self.def(ty, &format!("and.{ty} {x}, 255"));
            self.def(ty, &format!("add.{ty} {m}, 1"))
        };
        // `MIN / -1` overflows `sdiv` (a trap) and gives 0 for `srem`.
        let a = if d == "-1" && self.b.below(2) == 0 {
            let min = if ty == Type::I32 {
                i64::from(i32::MIN)
            } else {
                i64::MIN
            };
            min.to_string()
        } else {
            self.operand(ty)
        };
        self.def(ty, &format!("{}.{ty} {a}, {d}", op.name()));
    }

    /// A pointer of memory kind in scope (the entry's `alloca` always is).
    fn mem_ptr(&mut self, need_writable: bool) -> Option<(String, u32, bool)> {
        let cands: Vec<(String, u32, bool)> = self
            .ptrs
            .iter()
            .filter_map(|(v, p)| match *p {
                Ptr::Mem { size, writable } if writable || !need_writable => {
                    Some((v.clone(), size, writable))
                }
                _ => None,
            })
            .collect();
        self.b.pick(&cands).cloned()
    }

    /// A pointer and a literal offset for an access of `width` bytes: the
    /// offset is folded into the address or written as the operand.
    fn address(&mut self, p: &str, size: u32, writable: bool, width: u32) -> (String, String) {
        let off = self.b.below(size - width + 1);
        match self.b.below(3) {
            0 => (p.to_string(), String::new()),
            1 => (p.to_string(), format!(", {off}")),
            _ => {
                let q = self.def_ptr(
                    &format!("add.i64 {p}, {off}"),
                    Ptr::Mem {
                        size: size - off,
                        writable,
                    },
                );
                (q, String::new())
            }
        }
    }

    /// A load or a store, in bounds by construction.
    fn mem(&mut self) {
        let store = self.b.below(2) == 0;
        if store {
            let Some((p, size, writable)) = self.mem_ptr(true) else {
                return;
            };
            let ops = [
                Opcode::Store,
                Opcode::Store,
                Opcode::Store8,
                Opcode::Store16,
                Opcode::Store32,
            ];
            let op = ops[self.b.below(5) as usize];
            if op == Opcode::Store {
                let ty = any_type(self.b);
                if size < ty.bytes() {
                    return;
                }
                let v = if ty.is_float() {
                    self.defined_value(ty)
                } else {
                    self.operand(ty)
                };
                let (a, off) = self.address(&p, size, writable, ty.bytes());
                self.line(&format!("store.{ty} {v}, {a}{off}"));
            } else {
                let w = op.access_bytes(None).unwrap_or(1);
                if size < w {
                    return;
                }
                let v = if self.b.below(3) == 0 {
                    lit(self.b, Type::I64)
                } else {
                    let t = int_type(self.b);
                    self.value(t)
                };
                let (a, off) = self.address(&p, size, writable, w);
                self.line(&format!("{} {v}, {a}{off}", op.name()));
            }
        } else {
            let Some((p, size, writable)) = self.mem_ptr(false) else {
                return;
            };
            let ops = [
                Opcode::Load,
                Opcode::Load,
                Opcode::Load8s,
                Opcode::Load8u,
                Opcode::Load16s,
                Opcode::Load16u,
                Opcode::Load32s,
                Opcode::Load32u,
            ];
            let op = ops[self.b.below(8) as usize];
            let ty = match op.info().suffix {
                Suffix::Only(t) => t,
                Suffix::Int => int_type(self.b),
                _ => any_type(self.b),
            };
            let w = op.access_bytes(Some(ty)).unwrap_or(8);
            if size < w {
                return;
            }
            let (a, off) = self.address(&p, size, writable, w);
            self.def(ty, &format!("{}.{ty} {a}{off}", op.name()));
        }
    }

    /// `alloca` of 8..=128 bytes, zero-filled at once so reads are defined.
    fn alloca(&mut self) {
        let size = 8 * self.b.range(1, 16);
        let align = match self.b.below(6) {
            0 => String::new(),
            k => format!(", {}", 1u32 << (k - 1)),
        };
        let p = self.def_ptr(
            &format!("alloca {size}{align}"),
            Ptr::Mem {
                size,
                writable: true,
            },
        );
        for off in (0..size).step_by(8) {
            self.line(&format!("store.i64 0, {p}, {off}"));
        }
    }

    /// `addr` of a data item or a later function, or a pointer loaded from
    /// the `@ptab` table.
    fn addr(&mut self) {
        match self.b.below(3) {
            0 => {
                let i = self.b.below(self.datas.len() as u32) as usize;
                let d = &self.datas[i];
                let ptr = Ptr::Mem {
                    size: d.size,
                    writable: d.writable,
                };
                self.def_ptr(&format!("addr @d{i}"), ptr);
            }
            1 => {
                let later = self.sigs.len() - self.idx - 1;
                if later == 0 {
                    return;
                }
                let k = self.idx + 1 + self.b.below(later as u32) as usize;
                self.def_ptr(&format!("addr @f{k}"), Ptr::Func(k));
            }
            _ => {
                let idx = self.idx;
                let usable: Vec<TabEntry> = self
                    .tab
                    .iter()
                    .copied()
                    .filter(|e| !matches!(e.ptr, Ptr::Func(k) if k <= idx))
                    .collect();
                let Some(&e) = self.b.pick(&usable) else {
                    return;
                };
                // Not in `ptrs`: its words are addresses, not data.
                let t = self.fresh();
                self.line(&format!("{t} = addr @ptab"));
                self.def_ptr(&format!("load.i64 {t}, {}", e.offset), e.ptr);
            }
        }
    }

    /// A direct call, or an indirect one through a function pointer in
    /// scope; only to functions with a larger index.
    fn call(&mut self) {
        let later = self.sigs.len() - self.idx - 1;
        if later == 0 {
            return self.inst();
        }
        let fptrs: Vec<(String, usize)> = self
            .ptrs
            .iter()
            .filter_map(|(v, p)| match *p {
                Ptr::Func(k) => Some((v.clone(), k)),
                Ptr::Mem { .. } => None,
            })
            .collect();
        let indirect = if fptrs.is_empty() || self.b.below(2) == 0 {
            None
        } else {
            self.b.pick(&fptrs).cloned()
        };
        let is_indirect = indirect.is_some();
        let (callee, k) = match indirect {
            Some((v, k)) => (v, k),
            None => {
                let k = self.idx + 1 + self.b.below(later as u32) as usize;
                (format!("@f{k}"), k)
            }
        };
        let sig = self.sigs[k].clone();
        let args: Vec<String> = sig
            .params
            .iter()
            .map(|&t| {
                if is_indirect {
                    self.value(t)
                } else {
                    self.operand(t)
                }
            })
            .collect();
        match sig.ret {
            Some(t) => {
                self.def(t, &format!("call.{t} {callee}({})", args.join(", ")));
            }
            None => self.line(&format!("call {callee}({})", args.join(", "))),
        }
    }

    /// An `i32` condition: a value in scope or a fresh comparison.
    fn cond(&mut self) -> String {
        if self.b.below(3) == 0 {
            return self.value(Type::I32);
        }
        let int_cmp = [
            "eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
        ];
        let float_cmp = ["feq", "fne", "flt", "fle", "fgt", "fge"];
        let (name, ty) = if self.b.below(3) == 0 {
            let t = float_type(self.b);
            (*self.b.pick(&float_cmp).unwrap_or(&"feq"), t)
        } else {
            let t = int_type(self.b);
            (*self.b.pick(&int_cmp).unwrap_or(&"eq"), t)
        };
        let a = self.value(ty);
        let c = self.operand(ty);
        self.def(Type::I32, &format!("{name}.{ty} {a}, {c}"))
    }

    /// Ends an arm of a region: jump to `join` with a value of `ty`, or
    /// (when `may_leave`) sometimes `trap` or return early.
    fn arm_end(&mut self, join: &str, ty: Type, may_leave: bool) {
        if may_leave {
            match self.b.below(12) {
                0 => return self.line("trap"),
                1 => {
                    let ret = self.sigs[self.idx].ret;
                    let s = self.value(Type::I64);
                    return self.ret_with(ret, &s);
                }
                _ => {}
            }
        }
        let v = self.operand(ty);
        self.line(&format!("jmp {join}({v})"));
    }

    /// `br c, then, else`; both arms join in a block with one parameter.
    fn if_else(&mut self) {
        let c = self.cond();
        let ty = any_type(self.b);
        let (t, e, j) = (self.block(), self.block(), self.block());
        self.line(&format!("br {c}, {t}, {e}"));
        self.depth += 1;
        for (label, may_leave) in [(&t, true), (&e, false)] {
            let m = self.mark();
            let _ = writeln!(self.out, "{label}:");
            let n = self.b.below(6);
            self.stmts(n);
            self.arm_end(&j, ty, may_leave);
            self.restore(m);
        }
        self.depth -= 1;
        let p = self.fresh();
        let _ = writeln!(self.out, "{j}({p}: {ty}):");
        self.vals.push((p, ty));
    }

    /// A loop running 1..=4 times, carrying up to three values around the
    /// back edge and out of the exit.
    fn counted_loop(&mut self) {
        let trips = self.b.range(1, 4);
        let carried: Vec<Type> = (0..self.b.below(4)).map(|_| any_type(self.b)).collect();
        let (h, x) = (self.block(), self.block());
        let inits: Vec<String> = carried.iter().map(|&t| self.operand(t)).collect();
        let mut jargs = vec![trips.to_string()];
        jargs.extend(inits);
        self.line(&format!("jmp {h}({})", jargs.join(", ")));
        let m = self.mark();
        let i = self.fresh();
        let mut params = vec![format!("{i}: i64")];
        self.vals.push((i.clone(), Type::I64));
        for &t in &carried {
            let p = self.fresh();
            params.push(format!("{p}: {t}"));
            self.vals.push((p, t));
        }
        let _ = writeln!(self.out, "{h}({}):", params.join(", "));
        self.depth += 1;
        self.loop_depth += 1;
        let n = self.b.range(1, 8);
        self.stmts(n);
        let i2 = self.def(Type::I64, &format!("sub.i64 {i}, 1"));
        let c = self.def(Type::I32, &format!("sgt.i64 {i2}, 0"));
        let mut back = vec![i2];
        let mut out = Vec::new();
        for &t in &carried {
            back.push(self.operand(t));
            out.push(self.operand(t));
        }
        self.line(&format!(
            "br {c}, {h}({}), {x}({})",
            back.join(", "),
            out.join(", ")
        ));
        self.loop_depth -= 1;
        self.depth -= 1;
        self.restore(m);
        let mut xparams = Vec::new();
        for &t in &carried {
            let p = self.fresh();
            xparams.push(format!("{p}: {t}"));
            self.vals.push((p, t));
        }
        if xparams.is_empty() {
            let _ = writeln!(self.out, "{x}:");
        } else {
            let _ = writeln!(self.out, "{x}({}):", xparams.join(", "));
        }
    }

    /// `switch` over 1..=4 distinct keys; every target joins with a value.
    fn switch(&mut self) {
        let ty = int_type(self.b);
        let x = self.value(ty);
        let v = if self.b.below(2) == 0 {
            self.def(ty, &format!("and.{ty} {x}, 7"))
        } else {
            x
        };
        let mut keys: Vec<i64> = Vec::new();
        for _ in 0..self.b.range(1, 4) {
            let k = if self.b.below(3) == 0 {
                int_lit(self.b, ty)
            } else {
                i64::from(self.b.below(10)) - 1
            };
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let rt = any_type(self.b);
        let d = self.block();
        let j = self.block();
        let cases: Vec<(i64, String)> = keys.iter().map(|&k| (k, self.block())).collect();
        let arms: Vec<String> = cases.iter().map(|(k, l)| format!("{k}: {l}")).collect();
        let mut line = format!("switch.{ty} {v}, {d}");
        for a in &arms {
            line.push_str(", ");
            line.push_str(a);
        }
        self.line(&line);
        self.depth += 1;
        let mut labels: Vec<String> = cases.into_iter().map(|(_, l)| l).collect();
        labels.push(d);
        for (n, label) in labels.iter().enumerate() {
            let m = self.mark();
            let _ = writeln!(self.out, "{label}:");
            let k = self.b.below(4);
            self.stmts(k);
            // The default always joins, so the join block is reachable.
            self.arm_end(&j, rt, n + 1 < labels.len());
            self.restore(m);
        }
        self.depth -= 1;
        let p = self.fresh();
        let _ = writeln!(self.out, "{j}({p}: {rt}):");
        self.vals.push((p, rt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_module;
    use crate::ir::verify::verify_module;

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn generated_programs_verify() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0usize, 1, 7, 64, 300, 1000, 4000] {
            for _ in 0..8 {
                let data: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
                let p = generate(&data);
                let m =
                    parse_module("gen.kir", &p.text).unwrap_or_else(|e| panic!("{e}\n{}", p.text));
                verify_module(&m).unwrap_or_else(|e| panic!("{e}\n{}", p.text));
            }
        }
    }

    #[test]
    fn every_opcode_and_suffix_is_generated() {
        use crate::ir::InstKind;
        use std::collections::HashSet;
        let mut seen: HashSet<(Opcode, Option<Type>)> = HashSet::new();
        let (mut indirect, mut stack_args) = (false, false);
        let mut s = 0x1234_5678_9abc_def1u64;
        for _ in 0..400 {
            let data: Vec<u8> = (0..2000).map(|_| xorshift(&mut s) as u8).collect();
            let m = parse_module("gen.kir", &generate(&data).text).expect("parse");
            for f in &m.funcs {
                stack_args |= f.params.len() > 8;
                for i in &f.insts {
                    seen.insert((i.opcode, i.ty));
                    if let InstKind::Call { callee, .. } = &i.kind {
                        indirect |= matches!(callee, crate::ir::Callee::Indirect(_));
                    }
                }
            }
        }
        assert!(indirect, "no indirect call generated");
        assert!(stack_args, "no function with stack arguments generated");
        for &op in Opcode::ALL {
            let info = op.info();
            let suffixes: Vec<Option<Type>> = match info.suffix {
                Suffix::None => vec![None],
                Suffix::Optional => vec![None, Some(Type::I32), Some(Type::F64)],
                _ => Type::ALL
                    .iter()
                    .copied()
                    .filter(|&t| info.suffix.allows(t))
                    .map(Some)
                    .collect(),
            };
            for t in suffixes {
                assert!(
                    seen.contains(&(op, t)),
                    "{}{:?} never generated",
                    op.name(),
                    t
                );
            }
        }
    }
}
