//! Printer for the `.kir` text form: the canonical text that
//! [`super::parse::parse_module`] reads back to an equal [`Module`].
//!
//! Canonical form: items in symbol order, each function surrounded by blank
//! lines, instructions indented by four spaces, integers in decimal, an
//! `alloca` alignment of 8 and a load/store offset of 0 omitted, data on one
//! line. Printing is idempotent: `print(parse(print(m))) == print(m)`.
//!
//! Names: value and block names are kept when they are valid and unique;
//! others (built IR) get fresh names (`v12`, `b3`, with a `_N` suffix when
//! needed) that cannot collide with any kept name. An unnamed `call.T`
//! result that nothing uses is printed without `%d =`, as the parser makes
//! it. Floats print as Rust's `{:?}` does (shortest text that reads back to
//! the same bits), except `inf`, `-inf`, `nan` and `-nan`: NaN payloads are
//! not kept, every NaN prints as `nan` or `-nan` (by its sign) and reads
//! back as the canonical quiet NaN. Strings are re-escaped.
//!
//! The printer never panics on malformed built IR: dangling ids print as
//! `%?v7`, `?block3`, `@?sym4` (which then do not parse).

use super::entities::{Block, Inst, SymId, Value};
use super::function::{BlockCall, Callee, Const, Function, InstKind, Operand};
use super::module::{DataDef, DataValue, Linkage, Module, SymbolKind};
use super::names::name_syntax;
use std::collections::HashSet;
use std::fmt::{self, Write};

/// Prints a module in the text form that [`super::parse::parse_module`] reads.
pub fn print_module(module: &Module) -> String {
    let mut out = String::new();
    let mut prev_was_func = false;
    for (i, sym) in module.symbols.iter().enumerate() {
        let body_func = match &sym.kind {
            SymbolKind::Func { body: Some(f), .. } => module.funcs.get(f.index()),
            _ => None,
        };
        if i > 0 && (prev_was_func || body_func.is_some()) {
            out.push('\n');
        }
        prev_was_func = body_func.is_some();
        match (&sym.kind, body_func) {
            (SymbolKind::Func { .. }, Some(f)) => write_function(&mut out, module, f, sym.linkage),
            (SymbolKind::Func { sig, .. }, None) => {
                let _ = writeln!(out, "extern func @{}{}", sym.name, sig);
            }
            (SymbolKind::Data { body }, _) => {
                match body.and_then(|d| module.datas.get(d.index())) {
                    Some(def) => write_data(&mut out, module, &sym.name, sym.linkage, def),
                    None => {
                        let _ = writeln!(out, "extern data @{}", sym.name);
                    }
                }
            }
        }
    }
    out
}

/// Prints one function of `module` (symbol names come from `module`; the
/// `local` keyword is printed when the function's symbol is local).
pub fn print_function(module: &Module, func: &Function) -> String {
    let linkage = module
        .symbol(&func.name)
        .map_or(Linkage::Export, |s| module.sym(s).linkage);
    let mut out = String::new();
    write_function(&mut out, module, func, linkage);
    out
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_module(self))
    }
}

/// Whether `name` may follow `%` (values allow plain digits) or be a label.
fn valid_name(name: &str, allow_digits: bool) -> bool {
    let (label, value) = name_syntax(name);
    if allow_digits {
        value
    } else {
        label
    }
}

/// Assigns a printable, unique name to each entry: `given[i]` when valid
/// and not taken by an earlier entry, else a fresh `{prefix}{i}[_N]`.
/// `None` entries in `want` are left unnamed.
fn assign_names(
    given: &[Option<&str>],
    want: &[bool],
    prefix: &str,
    allow_digits: bool,
) -> Vec<Option<String>> {
    let mut taken: HashSet<String> = HashSet::with_capacity(given.len());
    let mut out: Vec<Option<String>> = vec![None; given.len()];
    for (i, g) in given.iter().enumerate() {
        if let Some(g) = g.filter(|g| valid_name(g, allow_digits)) {
            if taken.insert(g.to_string()) {
                out[i] = Some(g.to_string());
            }
        }
    }
    for i in 0..given.len() {
        if out[i].is_some() || !want[i] {
            continue;
        }
        let mut name = format!("{prefix}{i}");
        let mut n = 1;
        while taken.contains(&name) {
            name = format!("{prefix}{i}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        out[i] = Some(name);
    }
    out
}

struct Names {
    values: Vec<Option<String>>,
    blocks: Vec<Option<String>>,
}

impl Names {
    fn of(f: &Function) -> Names {
        // Every value gets a name except an unnamed call result nothing
        // uses: the parser creates exactly those for `call.T` without `%d =`.
        let mut used = vec![false; f.values.len()];
        for i in 0..f.insts.len() {
            f.for_each_operand(Inst::new(i), |op| {
                if let Some(u) = op.as_value().and_then(|v| used.get_mut(v.index())) {
                    *u = true;
                }
            });
        }
        let given: Vec<Option<&str>> = (0..f.values.len())
            .map(|v| f.value_name(Value::new(v)))
            .collect();
        let want: Vec<bool> = f
            .values
            .iter()
            .zip(&used)
            .map(|(v, &u)| {
                u || v.name.is_some()
                    || !matches!(v.def, super::function::ValueDef::Inst(i)
                        if f.insts.get(i.index()).is_some_and(|d| d.opcode == super::Opcode::Call))
            })
            .collect();
        let bgiven: Vec<Option<&str>> =
            f.blocks.iter().map(|b| Some(f.names.get(b.name))).collect();
        Names {
            values: assign_names(&given, &want, "v", true),
            blocks: assign_names(&bgiven, &vec![true; bgiven.len()], "b", false),
        }
    }

    fn value(&self, v: Value) -> String {
        match self.values.get(v.index()) {
            Some(Some(n)) => format!("%{n}"),
            _ => format!("%?v{}", v.0),
        }
    }

    fn block(&self, b: Block) -> String {
        match self.blocks.get(b.index()) {
            Some(Some(n)) => n.clone(),
            _ => format!("?block{}", b.0),
        }
    }
}

/// An `f64` as text that reads back to the same bits (NaN payloads aside).
pub fn format_f64(x: f64) -> String {
    if x.is_nan() {
        if x.is_sign_negative() { "-nan" } else { "nan" }.to_string()
    } else if x.is_infinite() {
        if x < 0.0 { "-inf" } else { "inf" }.to_string()
    } else {
        format!("{x:?}")
    }
}

/// An `f32` as text that reads back (as `f32`) to the same bits.
pub fn format_f32(x: f32) -> String {
    if x.is_nan() {
        if x.is_sign_negative() { "-nan" } else { "nan" }.to_string()
    } else if x.is_infinite() {
        if x < 0.0 { "-inf" } else { "inf" }.to_string()
    } else {
        format!("{x:?}")
    }
}

fn const_text(c: Const) -> String {
    match c {
        Const::Int(v) => v.get().to_string(),
        Const::Float(bits) => format_f64(f64::from_bits(bits)),
    }
}

fn sym_name(module: &Module, s: SymId) -> String {
    match module.symbols.get(s.index()) {
        Some(sym) => format!("@{}", sym.name),
        None => format!("@?sym{}", s.0),
    }
}

fn write_function(out: &mut String, module: &Module, f: &Function, linkage: Linkage) {
    let names = Names::of(f);
    let op = |o: Operand| match o {
        Operand::Value(v) => names.value(v),
        Operand::Const(c) => const_text(c),
    };
    let list = |ops: &[Operand]| ops.iter().map(|&o| op(o)).collect::<Vec<_>>().join(", ");
    let block_call = |bc: &BlockCall| {
        if bc.args.is_empty() {
            names.block(bc.block)
        } else {
            format!("{}({})", names.block(bc.block), list(f.args(bc.args)))
        }
    };
    if linkage == Linkage::Local {
        out.push_str("local ");
    }
    let _ = write!(out, "func @{}(", f.name);
    for (i, &ty) in f.sig.params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let p = f
            .params
            .get(i)
            .map_or_else(|| format!("%?p{i}"), |&v| names.value(v));
        let _ = write!(out, "{p}: {ty}");
    }
    out.push(')');
    if let Some(r) = f.sig.ret {
        let _ = write!(out, " -> {r}");
    }
    out.push_str(" {\n");
    for (bi, b) in f.blocks.iter().enumerate() {
        out.push_str(&names.block(Block::new(bi)));
        if !b.params.is_empty() {
            let ps: Vec<String> = b
                .params
                .iter()
                .map(|&v| {
                    let ty = f.values.get(v.index()).map_or("?", |d| d.ty.name());
                    format!("{}: {ty}", names.value(v))
                })
                .collect();
            let _ = write!(out, "({})", ps.join(", "));
        }
        out.push_str(":\n");
        for &i in &b.insts {
            let Some(inst) = f.insts.get(i.index()) else {
                let _ = writeln!(out, "    ?{i}");
                continue;
            };
            out.push_str("    ");
            if let Some(r) = inst.result {
                if matches!(names.values.get(r.index()), Some(Some(_)) | None) {
                    let _ = write!(out, "{} = ", names.value(r));
                }
            }
            out.push_str(inst.opcode.name());
            if let Some(t) = inst.ty {
                let _ = write!(out, ".{t}");
            }
            let rest = match &inst.kind {
                InstKind::Unary { arg } => op(*arg),
                InstKind::Binary { args } => list(args),
                InstKind::Select { args } => list(args),
                InstKind::Load { ptr, offset } => match offset {
                    0 => op(*ptr),
                    o => format!("{}, {o}", op(*ptr)),
                },
                InstKind::Store { args, offset } => match offset {
                    0 => list(args),
                    o => format!("{}, {o}", list(args)),
                },
                InstKind::Alloca { size, align } => match align {
                    8 => size.to_string(),
                    a => format!("{size}, {a}"),
                },
                InstKind::Addr { sym } => sym_name(module, *sym),
                InstKind::Call { callee, args } => {
                    let c = match callee {
                        Callee::Direct(s) => sym_name(module, *s),
                        Callee::Indirect(o) => op(*o),
                    };
                    format!("{c}({})", list(f.args(*args)))
                }
                InstKind::Ret { value } => value.map(op).unwrap_or_default(),
                InstKind::Jmp { dest } => block_call(dest),
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                } => format!(
                    "{}, {}, {}",
                    op(*cond),
                    block_call(then_dest),
                    block_call(else_dest)
                ),
                InstKind::Switch {
                    value,
                    default,
                    cases,
                } => {
                    let mut s = format!("{}, {}", op(*value), names.block(*default));
                    for c in f.cases(*cases) {
                        let _ = write!(s, ", {}: {}", const_text(c.key), names.block(c.block));
                    }
                    s
                }
                InstKind::Trap => String::new(),
            };
            if !rest.is_empty() {
                out.push(' ');
                out.push_str(&rest);
            }
            out.push('\n');
        }
    }
    out.push_str("}\n");
}

fn escape_bytes(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0 => out.push_str("\\0"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

fn write_data(out: &mut String, module: &Module, name: &str, linkage: Linkage, def: &DataDef) {
    if linkage == Linkage::Local {
        out.push_str("local ");
    }
    out.push_str(if def.readonly { "const" } else { "data" });
    let _ = write!(out, " @{name} = {{");
    for (i, v) in def.values.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        match v {
            DataValue::Int { bytes, values } => {
                let _ = write!(out, "i{}", *bytes as u32 * 8);
                for x in values {
                    let _ = write!(out, " {x}");
                }
            }
            DataValue::F32(xs) => {
                out.push_str("f32");
                for &x in xs {
                    let _ = write!(out, " {}", format_f32(f32::from_bits(x)));
                }
            }
            DataValue::F64(xs) => {
                out.push_str("f64");
                for &x in xs {
                    let _ = write!(out, " {}", format_f64(f64::from_bits(x)));
                }
            }
            DataValue::Bytes(b) => {
                out.push_str("i8 ");
                escape_bytes(out, b);
            }
            DataValue::Zero(n) => {
                let _ = write!(out, "zero {n}");
            }
            DataValue::SymAddr { sym, addend } => {
                out.push_str(&sym_name(module, *sym));
                if *addend > 0 {
                    let _ = write!(out, "+{addend}");
                } else if *addend < 0 {
                    let _ = write!(out, "{addend}");
                }
            }
        }
    }
    out.push_str(if def.values.is_empty() { "}\n" } else { " }\n" });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_module;

    fn roundtrip(src: &str) -> String {
        let m = parse_module("t.kir", src).expect("parses");
        let text = print_module(&m);
        let m2 = parse_module("t.kir", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(m, m2, "{text}");
        assert_eq!(print_module(&m2), text);
        text
    }

    #[test]
    fn prints_canonical_form() {
        let src = "extern func @putchar(i32) -> i32\n\
            const @msg = { i8 \"hi\\n\\0\\x7f\\\"\", zero 3, @msg-2, @putchar+0x10 }\n\
            func @f(%a: i64) -> i64 {\nentry:\n  %p = alloca 16, 8\n  %q = alloca 4, 16\n\
            store.i64 %a, %p, 0\n  %x = load.i64 %p, -8\n  call.i32 @putchar(65)\n  jmp l(%x, 1.5)\n\
            l(%y: i64, %z: f64):\n  ret %y\n}\n";
        let text = roundtrip(src);
        let expect = "extern func @putchar(i32) -> i32\n\
            const @msg = { i8 \"hi\\n\\0\\x7f\\\"\", zero 3, @msg-2, @putchar+16 }\n\n\
            func @f(%a: i64) -> i64 {\nentry:\n    %p = alloca 16\n    %q = alloca 4, 16\n\
            \x20   store.i64 %a, %p\n    %x = load.i64 %p, -8\n    call.i32 @putchar(65)\n    jmp l(%x, 1.5)\n\
            l(%y: i64, %z: f64):\n    ret %y\n}\n";
        assert_eq!(text, expect);
    }

    #[test]
    fn floats_reparse_bit_exactly() {
        for x in [
            0.1,
            -0.0,
            1e-300,
            5e-324,
            f64::MAX,
            1e21,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let s = format_f64(x);
            assert_eq!(s.parse::<f64>().map(f64::to_bits), Ok(x.to_bits()), "{s}");
        }
        assert_eq!(format_f64(f64::NAN), "nan");
        assert_eq!(format_f64(-f64::NAN), "-nan");
        assert_eq!(format_f32(f32::from_bits(0x7fc0_0001)), "nan");
        let src = "data @d = { f32 0.1 3.4028235e38 1e-45 -nan, f64 0.1 -0.0 1e300 nan -inf }\n\
            func @g() -> f64 {\ne:\n %a = fadd.f64 1e-9, -0.0\n %b = fadd.f64 %a, inf\n ret %b\n}\n";
        let text = roundtrip(src);
        assert!(
            text.contains("f32 0.1 3.4028235e38 1e-45 -nan, f64 0.1 -0.0 1e300 nan -inf"),
            "{text}"
        );
        assert!(text.contains("fadd.f64 1e-9, -0.0"), "{text}");
    }

    #[test]
    fn unnamed_values_get_fresh_names() {
        let mut m = parse_module(
            "t.kir",
            "func @f(%v1: i32) -> i32 {\nentry:\n %v2 = add.i32 %v1, 1\n %b = add.i32 %v2, 2\n ret %b\n}\n",
        )
        .expect("parses");
        // Drop the names of values 1 and 2 (`%v2` and `%b`): value 1 must
        // not be printed as `%v1`, which the parameter keeps.
        m.funcs[0].values[1].name = None;
        m.funcs[0].values[2].name = None;
        m.funcs[0].blocks[0].name = m.funcs[0].names.intern("");
        let text = print_module(&m);
        assert!(
            text.contains("b0:\n    %v1_1 = add.i32 %v1, 1\n    %v2 = add.i32 %v1_1, 2\n"),
            "{text}"
        );
        let m2 = parse_module("t.kir", &text).expect("reparses");
        assert_eq!(print_module(&m2), text);
    }

    #[test]
    fn discarded_call_results_stay_unnamed() {
        let text = roundtrip(
            "func @f() -> i32 {\nentry:\n call.i32 @f()\n %r = call.i32 @f()\n ret %r\n}\n",
        );
        assert!(
            text.contains("    call.i32 @f()\n    %r = call.i32 @f()\n"),
            "{text}"
        );
    }

    #[test]
    fn every_instruction_form_roundtrips() {
        roundtrip(
            "extern data @x\n\
             local data @y = { }\n\
             local const @z = { i16 -1 0xffff, i32 1 2, f64 1 0x10 }\n\
             local func @all(%a: i32, %b: i64, %f: f32, %d: f64, %fp: i64) {\n\
             entry:\n\
             %c = copy.i32 %a\n %n = neg.i64 %b\n %m = udiv.i64 %b, 3\n %e = ult.i64 %b, -1\n\
             %g = fsqrt.f32 %f\n %h = fle.f64 %d, nan\n %k = select.f32 %e, %f, 2.5\n\
             %l = sext.i64 %a\n %o = trunc.i32 %b\n %p = fext.f64 %f\n %q = ftrunc.f32 %d\n\
             %r = sitof.f64 %b\n %t = ftoui.i32 %d\n %u = bitcast.i64 %d\n\
             %w = load8s.i32 %b, 3\n %w2 = load32u.i64 %b\n store8 300, %b, 1\n store.f64 %d, %b\n\
             %ad = addr @x\n %ay = addr @y\n %cl = call.i64 %fp(%a, %b)\n call %fp()\n\
             call @all(1, 2, 3.0, 4, 5)\n\
             switch.i32 %a, next, 1: next, -2: other\n\
             next:\n br %e, other, done\n\
             other:\n trap\n\
             done:\n ret\n}\n",
        );
    }

    #[test]
    fn display_and_print_function() {
        let src = "local func @h(%x: i64) -> i64 {\nentry:\n ret %x\n}\n";
        let m = parse_module("t.kir", src).expect("parses");
        assert_eq!(format!("{m}"), print_module(&m));
        assert_eq!(
            print_function(&m, &m.funcs[0]),
            "local func @h(%x: i64) -> i64 {\nentry:\n    ret %x\n}\n"
        );
    }

    #[test]
    fn dangling_ids_do_not_panic() {
        let mut m = parse_module(
            "t.kir",
            "data @d = { @d }\nfunc @f() -> i64 {\nentry:\n %a = addr @d\n ret %a\n}\n",
        )
        .expect("parses");
        if let InstKind::Addr { sym } = &mut m.funcs[0].insts[0].kind {
            *sym = SymId(99);
        }
        m.funcs[0].insts[1].kind = InstKind::Ret {
            value: Some(Operand::Value(Value(77))),
        };
        m.datas[0].values[0] = DataValue::SymAddr {
            sym: SymId(5),
            addend: -1,
        };
        let text = print_module(&m);
        assert!(text.contains("{ @?sym5-1 }"), "{text}");
        assert!(
            text.contains("%a = addr @?sym99\n    ret %?v77\n"),
            "{text}"
        );
    }
}
