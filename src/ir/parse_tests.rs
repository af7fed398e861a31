//! Unit tests of the parser: accepted forms, the IR and source map they
//! build, and every error message with its exact location.

use super::*;
use crate::ir::function::ValueDef;
use crate::ir::{Block, Const, Inst, Opcode, Operand, Value};

fn parse(src: &str) -> Module {
    parse_module("t.kir", src).unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> String {
    match parse_module("t.kir", src) {
        Ok(_) => panic!("parsed: {src:?}"),
        Err(Error::Parse(d)) => format!("{}:{}: {}", d.loc.line, d.loc.col, d.message),
        Err(e) => panic!("not a parse error: {e}"),
    }
}

/// Wraps instruction lines in a function with a few values and blocks.
fn body(insts: &str) -> String {
    format!("func @f(%a: i32, %p: i64) -> i32 {{\nentry:\n{insts}\n}}\n")
}

#[test]
fn parses_the_spec_example() {
    let m = parse(
        "func @sum(%n: i64) -> i64 {\nentry:\n    jmp loop(0, 0)\n\
         loop(%i: i64, %acc: i64):\n    %done = sge.i64 %i, %n\n    br %done, exit(%acc), body\n\
         body:\n    %acc2 = add.i64 %acc, %i\n    %i2 = add.i64 %i, 1\n    jmp loop(%i2, %acc2)\n\
         exit(%r: i64):\n    ret %r\n}\n",
    );
    assert_eq!(m.symbols.len(), 1);
    let f = &m.funcs[0];
    assert_eq!(f.sig, Signature::new(vec![Type::I64], Some(Type::I64)));
    let names: Vec<&str> = f.blocks.iter().map(|b| f.names.get(b.name)).collect();
    assert_eq!(names, ["entry", "loop", "body", "exit"]);
    // The forward use of `exit` and of block `loop`'s values resolve.
    let br = &f.insts[2];
    assert_eq!(br.opcode, Opcode::Br);
    let InstKind::Br {
        cond,
        then_dest,
        else_dest,
    } = &br.kind
    else {
        panic!("not a br")
    };
    assert_eq!(then_dest.block, Block(3));
    assert_eq!(else_dest.block, Block(2));
    let done = cond.as_value().expect("value");
    assert_eq!(f.value_name(done), Some("done"));
    assert_eq!(f.values[done.index()].ty, Type::I32);
    assert_eq!(f.values[done.index()].def, ValueDef::Inst(Inst(1)));
    let InstKind::Jmp { dest } = f.insts[0].kind else {
        panic!("not a jmp")
    };
    assert_eq!(dest.block, Block(1));
    assert_eq!(f.args(dest.args), [Operand::Const(Const::int(0)); 2]);
    // The last jmp refers to values defined earlier in the same block.
    let InstKind::Jmp { dest } = &f.insts[5].kind else {
        panic!("not a jmp")
    };
    let arg_names: Vec<_> = f
        .args(dest.args)
        .iter()
        .map(|a| f.value_name(a.as_value().unwrap()))
        .collect();
    assert_eq!(arg_names, [Some("i2"), Some("acc2")]);
}

#[test]
fn fills_the_source_map() {
    let m = parse(
        "\n\n  func @f(%a: i32, %p: i64) -> i32 {\nentry:\n  %x = add.i32 %a, 7\n  store.i32 %x, %p, 4\n\
         %s = alloca 16, 4\n  br %x, l(%a), l(%x)\nl(%y: i32):\n  switch.i32 %y, l, 1: entry, 2: l\n\
         %q = addr @f\n  ret %q\n }\n",
    );
    let f = &m.funcs[0];
    let sm = &f.srcmap;
    assert_eq!(m.symbol_locs, [Loc::new(3, 8)]);
    assert_eq!(sm.func, Loc::new(3, 8));
    assert_eq!(sm.end, Loc::new(13, 2));
    assert_eq!(sm.param_types(), [Loc::new(3, 15), Loc::new(3, 24)]);
    assert_eq!(sm.blocks(), [Loc::new(4, 1), Loc::new(9, 1)]);
    // Values: %a %p %x %s %y %q, in creation order.
    assert_eq!(
        sm.values(),
        [
            Loc::new(3, 11),
            Loc::new(3, 20),
            Loc::new(5, 3),
            Loc::new(7, 1),
            Loc::new(9, 3),
            Loc::new(11, 1)
        ]
    );
    assert_eq!(sm.values().len(), f.values.len());
    assert_eq!(sm.num_insts(), f.insts.len());
    let ops =
        |i: u32, n: usize| -> Vec<Loc> { (0..n).map(|k| f.operand_loc(Inst(i), k)).collect() };
    let labels =
        |i: u32, n: usize| -> Vec<Loc> { (0..n).map(|k| f.label_loc(Inst(i), k)).collect() };
    assert_eq!(sm.inst(Inst(0)), Loc::new(5, 8));
    assert_eq!(sm.value(f.insts[0].result.unwrap()), Loc::new(5, 3));
    assert_eq!(ops(0, 2), [Loc::new(5, 16), Loc::new(5, 20)]);
    assert_eq!(ops(1, 2), [Loc::new(6, 13), Loc::new(6, 17)]);
    assert_eq!(f.extra_loc(Inst(1)), Loc::new(6, 21));
    assert_eq!(
        (f.extra_loc(Inst(2)), f.extra2_loc(Inst(2))),
        (Loc::new(7, 13), Loc::new(7, 17))
    );
    assert_eq!(
        ops(3, 3),
        [Loc::new(8, 6), Loc::new(8, 12), Loc::new(8, 19)]
    );
    assert_eq!(labels(3, 2), [Loc::new(8, 10), Loc::new(8, 17)]);
    assert_eq!(ops(4, 1), [Loc::new(10, 14)]);
    assert_eq!(
        labels(4, 3),
        [Loc::new(10, 18), Loc::new(10, 24), Loc::new(10, 34)]
    );
    assert_eq!(
        [f.key_loc(Inst(4), 0), f.key_loc(Inst(4), 1)],
        [Loc::new(10, 21), Loc::new(10, 31)]
    );
    assert_eq!(f.extra_loc(Inst(5)), Loc::new(11, 11));
    // Missing tokens fall back to the mnemonic: an omitted offset, an
    // operand index past the end.
    assert_eq!(f.extra_loc(Inst(0)), Loc::new(5, 8));
    assert_eq!(f.operand_loc(Inst(0), 7), Loc::new(5, 8));
}

#[test]
fn items_of_every_kind() {
    let m = parse(
        "; a comment\nextern func @putchar(i32) -> i32 ; trailing\nextern func @v()\nextern data @table\n\
         data @counter = { i64 0 }\nconst @msg = { i8 \"hello\\n\\0\" }\n\
         local data @scratch = {\n  zero 4096,\n  @msg+3, @table-8, @msg,\n}\n\
         local const @k = { i8 -128 255, i16 1 2 3, i32 0x7fffffff, f32 1.5 -inf 16777217, f64 1e-9 0x10 }\n\
         local func @h() {\nentry:\n ret\n}\n",
    );
    let kinds: Vec<(&str, Linkage)> = m
        .symbols
        .iter()
        .map(|s| (s.name.as_str(), s.linkage))
        .collect();
    assert_eq!(
        kinds,
        [
            ("putchar", Linkage::Import),
            ("v", Linkage::Import),
            ("table", Linkage::Import),
            ("counter", Linkage::Export),
            ("msg", Linkage::Export),
            ("scratch", Linkage::Local),
            ("k", Linkage::Local),
            ("h", Linkage::Local)
        ]
    );
    assert_eq!(
        m.symbols[0].signature(),
        Some(&Signature::new(vec![Type::I32], Some(Type::I32)))
    );
    assert_eq!(m.symbols[1].signature(), Some(&Signature::default()));
    assert!(!m.datas[0].readonly && m.datas[1].readonly);
    assert_eq!(m.datas[1].values, [DataValue::Bytes(b"hello\n\0".to_vec())]);
    assert_eq!(
        m.datas[2].values,
        [
            DataValue::Zero(4096),
            DataValue::SymAddr {
                sym: SymId(4),
                addend: 3
            },
            DataValue::SymAddr {
                sym: SymId(2),
                addend: -8
            },
            DataValue::SymAddr {
                sym: SymId(4),
                addend: 0
            }
        ]
    );
    assert_eq!(
        m.datas[2].locs,
        [
            Loc::new(8, 3),
            Loc::new(9, 3),
            Loc::new(9, 11),
            Loc::new(9, 21)
        ]
    );
    assert_eq!(
        m.datas[3].values,
        [
            DataValue::Int {
                bytes: 1,
                values: vec![-128, 255]
            },
            DataValue::Int {
                bytes: 2,
                values: vec![1, 2, 3]
            },
            DataValue::Int {
                bytes: 4,
                values: vec![0x7fff_ffff]
            },
            // 16777217 rounds to 16777216 in f32 directly (no double rounding).
            DataValue::F32(vec![
                1.5f32.to_bits(),
                f32::NEG_INFINITY.to_bits(),
                16777216f32.to_bits()
            ]),
            DataValue::F64(vec![1e-9f64.to_bits(), 16f64.to_bits()]),
        ]
    );
}

#[test]
fn literals_are_kept_as_written() {
    let m = parse(&body(
        " %b = add.i32 -0x10, 0xffffffffffffffffffff\n %c = add.i32 -39614081257132168796771975168, 39614081257132168796771975167\n\
          %d = fadd.f64 -0.0, 1e-9\n %e = fadd.f32 -inf, nan\n ret %b",
    ));
    let f = &m.funcs[0];
    let ops: Vec<Operand> = (0..4).flat_map(|i| f.operands(Inst(i))).collect();
    let c = |c| Operand::Const(c);
    let int = Const::int;
    assert_eq!(
        ops,
        [
            c(int(-16)),
            c(int(0xffff_ffff_ffff_ffff_ffff)),
            c(int(-(1 << 95))),
            c(int((1 << 95) - 1)),
            c(Const::float(-0.0)),
            c(Const::float(1e-9)),
            c(Const::float(f64::NEG_INFINITY)),
            c(Const::float(f64::NAN)),
        ]
    );
}

#[test]
fn calls_and_results() {
    let m = parse(
        "extern func @g(i32) -> i32\nfunc @f(%fp: i64) {\nentry:\n call.i32 @g(1)\n %r = call.i32 @g(%r)\n\
         call @g(2)\n %s = call.f64 %fp(%r, %fp)\n %z = alloca 0\n ret\n}\n",
    );
    let f = &m.funcs[0];
    // The discarded result still exists, unnamed.
    let r0 = f.insts[0].result.expect("result");
    assert_eq!(f.values[r0.index()].name, None);
    let InstKind::Call { callee, args } = f.insts[0].kind else {
        panic!("not a call")
    };
    assert_eq!(callee, Callee::Direct(SymId(0)));
    assert_eq!(f.args(args), [Operand::Const(Const::int(1))]);
    assert_eq!(f.insts[2].result, None);
    assert_eq!(f.srcmap.values().len(), f.values.len());
    let InstKind::Call { callee, args } = &f.insts[3].kind else {
        panic!()
    };
    assert_eq!(*callee, Callee::Indirect(Operand::Value(Value(0))));
    assert_eq!(args.len(), 2);
    assert_eq!(f.operand_loc(Inst(3), 2), Loc::new(7, 24));
    assert_eq!(f.insts[4].kind, InstKind::Alloca { size: 0, align: 8 });
}

#[test]
fn crlf_names_and_labels() {
    let m = parse("func @a.b$_1(%0: i32) -> i32 {\r\n$L.1:\r\n  ret %0\r\n}\r\n");
    assert_eq!(m.funcs[0].name, "a.b$_1");
    assert_eq!(m.funcs[0].block_name(Block(0)), "$L.1");
    // A label may be spelled like an opcode or a float word.
    parse("func @f() {\nret:\n jmp inf\ninf:\n jmp ret\n}\n");
}

#[test]
fn first_line_and_implicit_symbols() {
    let e = parse_module_at("<stdin>", "\nfunc @f() {\nentry:\n  ad\n}", 10).unwrap_err();
    assert_eq!(e.to_string(), "<stdin>:13:3: error: unknown opcode 'ad'");
    let hook = |name: &str| {
        (name == "g").then(|| SymbolKind::Func {
            sig: Signature::new(vec![], Some(Type::I32)),
            body: None,
        })
    };
    let opts = ParseOptions {
        first_line: 1,
        implicit_symbol: Some(&hook),
    };
    let src = "func @f() -> i32 {\nentry:\n %x = call.i32 @g()\n ret %x\n}";
    let m = parse_module_with("t", src, &opts).expect("parses");
    assert_eq!(m.symbols[1].name, "g");
    assert_eq!(m.symbols[1].linkage, Linkage::Import);
    assert_eq!(m.symbol_locs[1], Loc::new(3, 16));
    let e = parse_module_with("t", &src.replace("@g", "@h"), &opts).unwrap_err();
    assert_eq!(e.to_string(), "t:3:16: error: undeclared symbol @h");
}

#[test]
fn error_messages_and_locations() {
    let cases: &[(&str, &str)] = &[
        (
            "foo",
            "1:1: expected an item (func, data, const, local or extern), found 'foo'",
        ),
        (
            "\n  %x",
            "2:3: expected an item (func, data, const, local or extern), found '%x'",
        ),
        (
            "local x",
            "1:7: expected 'func', 'data' or 'const' after 'local', found 'x'",
        ),
        (
            "extern const @x",
            "1:8: expected 'func' or 'data' after 'extern', found 'const'",
        ),
        (
            "extern data x",
            "1:13: expected a symbol name '@name', found 'x'",
        ),
        (
            "extern data @x\ndata @x = { }",
            "2:6: symbol @x is defined twice",
        ),
        (
            "extern data @x y",
            "1:16: expected end of line after item, found 'y'",
        ),
        (
            "extern func @f i32",
            "1:16: expected '(' after the function name, found 'i32'",
        ),
        (
            "extern func @f(i8)",
            "1:16: expected a type (i32, i64, f32 or f64), found 'i8'",
        ),
        (
            "extern func @f(i32 i32)",
            "1:20: expected ',' or ')' after parameter type, found 'i32'",
        ),
        (
            "extern func @f() -> ",
            "1:21: expected a type (i32, i64, f32 or f64), found end of input",
        ),
        (
            "func @f(a: i32) {",
            "1:9: expected a parameter '%name: type', found 'a'",
        ),
        (
            "func @f(%a i32) {",
            "1:12: expected ':' after the parameter name, found 'i32'",
        ),
        (
            "func @f(%a: i32 %b) {",
            "1:17: expected ',' or ')' after parameter, found '%b'",
        ),
        (
            "func @f(%a: i32, %a: i32) {",
            "1:18: value %a is defined twice",
        ),
        (
            "func @f()\n{",
            "1:10: expected '{' to start the body of @f, found end of line",
        ),
        (
            "func @f() { entry:",
            "1:13: expected end of line after '{', found 'entry'",
        ),
        (
            "func @f() {\nentry:\n ret\n",
            "4:1: expected '}' to close function @f, found end of input",
        ),
        (
            "func @f() {\nentry:\n ret\n} x",
            "4:3: expected end of line after item, found 'x'",
        ),
        (
            "func @f() {\nentry:\n %x add.i32 1, 2\n}",
            "3:5: expected '=' after '%x', found 'add.i32'",
        ),
        (
            "func @f() {\nentry:\n %x = 5\n}",
            "3:7: expected an opcode after '=', found '5'",
        ),
        (
            "func @f() {\nentry:\n , \n}",
            "3:2: expected an instruction or a block label, found ','",
        ),
        (
            "func @f() {\nL:\n ret\nL:\n ret\n}",
            "4:1: block 'L' is defined twice",
        ),
        (
            "func @f() {\nL(x: i32):\n}",
            "2:3: expected a block parameter '%name: type', found 'x'",
        ),
        (
            "func @f() {\nL(%x: i32 %y):\n}",
            "2:11: expected ',' or ')' after block parameter, found '%y'",
        ),
        (
            "func @f() {\nL(%x: i32)\n}",
            "2:11: expected ':' after the block label, found end of line",
        ),
        (
            "func @f() {\nL: ret\n}",
            "2:4: expected end of line after block label, found 'ret'",
        ),
        (
            "func @f() {\nL(%x: i32, %x: i64):\n}",
            "2:12: value %x is defined twice",
        ),
        (
            "func @f() {\n ret\n}",
            "2:2: expected a block label before the first instruction",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(err(src), *want, "source: {src:?}");
    }
}

#[test]
fn instruction_error_messages() {
    let cases: &[(&str, &str)] = &[
        (" %x = ad.i32 1, 2", "3:7: unknown opcode 'ad'"),
        (
            " %x = add 1, 2",
            "3:7: type suffix required: add.i32 or add.i64",
        ),
        (
            " %x = fadd 1, 2",
            "3:7: type suffix required: fadd.f32 or fadd.f64",
        ),
        (" %x = sext %a", "3:7: type suffix required: sext.i64"),
        (" %x = copy %a", "3:7: type suffix required: copy.T"),
        (" store8.i32 1, %p", "3:2: 'store8' takes no type suffix"),
        (
            " %x = add.f32 1, 2",
            "3:11: invalid type suffix 'f32' for 'add': expected i32 or i64",
        ),
        (
            " %x = add.i32.x 1, 2",
            "3:11: invalid type suffix 'i32.x' for 'add': expected i32 or i64",
        ),
        (" %x = store.i32 1, %p", "3:2: 'store.i32' has no result"),
        (
            " %x = call @f(1, 2)",
            "3:2: 'call' without a type suffix has no result (write call.T)",
        ),
        (
            " add.i32 1, 2",
            "3:2: 'add.i32' produces a value: write '%NAME = add.i32 ...'",
        ),
        (" %a = add.i32 1, 2", "3:2: value %a is defined twice"),
        (
            " %x = add.i32 1 2",
            "3:17: expected ',' after operand, found '2'",
        ),
        (
            " %x = add.i32 1, foo",
            "3:18: expected an operand (a %value or a literal), found 'foo'",
        ),
        (
            " %x = add.i32 1, 2 %y",
            "3:20: expected end of line after instruction, found '%y'",
        ),
        (
            " ret %a ret",
            "3:9: expected end of line after instruction, found 'ret'",
        ),
        (
            " %x = add.i32 1, 99999999999999999999999999999999999999999",
            "3:18: integer literal '99999999999999999999999999999999999999999' is out of range",
        ),
        (
            " %x = add.i32 1, -170141183460469231731687303715884105729",
            "3:18: integer literal '-170141183460469231731687303715884105729' is out of range",
        ),
        (
            " %x = add.i32 1, 39614081257132168796771975168",
            "3:18: integer literal '39614081257132168796771975168' is out of range",
        ),
        (
            " switch.i32 %a, entry, -0x800000000000000000000001: entry",
            "3:24: integer literal '-0x800000000000000000000001' is out of range",
        ),
        (
            " %x = load.i32 %p, %a",
            "3:20: expected an offset literal, found '%a'",
        ),
        (
            " %x = load.i32 %p, 9223372036854775808",
            "3:20: offset does not fit in 64 bits",
        ),
        (
            " store.i32 1, %p, -9223372036854775809",
            "3:19: offset does not fit in 64 bits",
        ),
        (
            " %x = alloca %a",
            "3:14: expected a size literal, found '%a'",
        ),
        (
            " %x = alloca -1",
            "3:14: alloca size must be a non-negative 64-bit integer",
        ),
        (
            " %x = alloca 8, -16",
            "3:17: alloca alignment must be a non-negative integer",
        ),
        (" %x = addr f", "3:12: expected a symbol '@name', found 'f'"),
        (" %x = addr @nope", "3:12: undeclared symbol @nope"),
        (
            " %x = call.i32 5()",
            "3:16: expected '@function' or '%pointer' after 'call', found '5'",
        ),
        (
            " %x = call.i32 @f 1",
            "3:19: expected '(' after the callee, found '1'",
        ),
        (
            " %x = call.i32 @f(1 2)",
            "3:21: expected ',' or ')' in argument list, found '2'",
        ),
        (" jmp , x", "3:6: expected a block label, found ','"),
        (" jmp L3", "3:6: unknown block 'L3'"),
        (
            " br %a, entry entry",
            "3:15: expected ',' after the first branch target, found 'entry'",
        ),
        (
            " br %a entry, entry",
            "3:8: expected ',' after operand, found 'entry'",
        ),
        (
            " switch.i32 %a, entry(1)",
            "3:22: switch targets take no arguments",
        ),
        (
            " switch.i32 %a, entry, x: entry",
            "3:24: expected a case 'KEY: label', found 'x'",
        ),
        (
            " switch.i32 %a, entry, 1 entry",
            "3:26: expected ':' after the case key, found 'entry'",
        ),
        (
            " switch.i32 %a, entry, 1.5: entry",
            "3:24: expected a case 'KEY: label', found '1.5'",
        ),
        (
            " %x = add.i32 %y, 1\n %x = add.i32 1, 1",
            "4:2: value %x is defined twice",
        ),
        (" %x = add.i32 %y, %z", "3:15: undefined value %y"),
        (
            " br %a, L9, entry\n %x = add.i32 %y, 1",
            "3:9: unknown block 'L9'",
        ),
        (
            " %x = add.i32 %y, 1\n br %a, L9, entry",
            "3:15: undefined value %y",
        ),
        (
            " %x = copy.i32 \"s\"",
            "3:16: expected an operand (a %value or a literal), found '\"s\"'",
        ),
        (" %x = copy.i32 1 ; ok\n #", "4:2: unexpected character '#'"),
    ];
    for (insts, want) in cases {
        assert_eq!(err(&body(insts)), *want, "insts: {insts:?}");
    }
}

#[test]
fn data_error_messages() {
    let cases: &[(&str, &str)] = &[
        ("data @d { }", "1:9: expected '=' after @d, found '{'"),
        ("data @d = i64 1", "1:11: expected '{' to start the data, found 'i64'"),
        ("data @d = { i64 1 i32 2 }", "1:19: expected ',' or '}' after data value, found 'i32'"),
        ("data @d = { i64 }", "1:17: expected a value after 'i64', found '}'"),
        ("data @d = { f32 }", "1:17: expected a value after 'f32', found '}'"),
        ("data @d = { i64 1.5 }", "1:17: expected an integer literal after 'i64', found '1.5'"),
        ("data @d = { i32 \"ab\" }", "1:17: a string must follow 'i8', not 'i32'"),
        ("data @d = { i8 \"ab\" 1 }", "1:21: expected ',' or '}' after data value, found '1'"),
        ("data @d = { u8 1 }", "1:13: expected a data value (i8, i16, i32, i64, f32, f64, zero or @symbol), found 'u8'"),
        ("data @d = { zero -1 }", "1:18: zero count must be a non-negative 64-bit integer"),
        ("data @d = { zero x }", "1:18: expected a byte count, found 'x'"),
        ("data @d = { @d+-1 }", "1:16: expected an addend, found '-1'"),
        ("data @d = { @d+x }", "1:16: expected an addend, found 'x'"),
        ("data @d = { @d+9223372036854775808 }", "1:16: addend does not fit in 64 bits"),
        ("data @d = { @e }", "1:13: undeclared symbol @e"),
        ("data @d = { i64 1,\n", "2:1: expected a data value (i8, i16, i32, i64, f32, f64, zero or @symbol), found end of input"),
        ("data @d = { i8 \"a\\q\" }", "1:18: invalid escape '\\q' in string"),
    ];
    for (src, want) in cases {
        assert_eq!(err(src), *want, "source: {src:?}");
    }
}

#[test]
fn first_error_wins() {
    // A syntax error in a later item wins over nothing; an undefined value is
    // reported before a later item's syntax error.
    assert_eq!(
        err("func @f() {\ne:\n ret %x\n}\nfoo"),
        "3:6: undefined value %x"
    );
    // Among unresolved names of one function, the earliest in the text.
    assert_eq!(
        err("func @f() {\ne:\n jmp a\nb:\n %x = copy.i32 %q\n}"),
        "3:6: unknown block 'a'"
    );
}

#[test]
fn never_panics_on_garbage() {
    // A tiny xorshift PRNG drives random token soup and random mutations.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let pieces = [
        "func",
        "@f",
        "(",
        ")",
        "{",
        "}",
        "\n",
        "%x",
        ":",
        "i32",
        "=",
        "add.i32",
        ",",
        "1",
        "-",
        "->",
        "jmp",
        "L",
        "br",
        "switch.i32",
        "\"s\\x4",
        "data",
        "@d",
        "zero",
        "+",
        "0x",
        "1e",
        "\0",
        "é",
        "call.i64",
        "ret",
        "entry",
        "local",
        "extern",
        "nan",
        ";",
        " ",
    ];
    let base = "func @sum(%n: i64) -> i64 {\nentry:\n jmp loop(0, 0)\nloop(%i: i64, %acc: i64):\n\
                %done = sge.i64 %i, %n\n br %done, exit(%acc), body\nbody:\n %acc2 = add.i64 %acc, %i\n\
                %i2 = add.i64 %i, 1\n jmp loop(%i2, %acc2)\nexit(%r: i64):\n ret %r\n}\n";
    for _ in 0..3000 {
        let mut text = String::new();
        if next() % 2 == 0 {
            for _ in 0..(next() % 40) {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                if next() % 3 == 0 {
                    text.push(' ');
                }
            }
        } else {
            let mut chars: Vec<char> = base.chars().collect();
            for _ in 0..(1 + next() % 4) {
                let at = (next() % chars.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        chars.remove(at);
                    }
                    1 => chars.insert(
                        at,
                        pieces[(next() % 10) as usize].chars().next().unwrap_or('x'),
                    ),
                    _ => {
                        let other = (next() % chars.len() as u64) as usize;
                        chars.swap(at, other)
                    }
                }
            }
            text = chars.into_iter().collect();
        }
        let _ = parse_module("fuzz", &text);
    }
}

#[test]
fn huge_inputs_are_linear() {
    let line = format!("; {}\n", "x".repeat(1 << 20));
    let mut src = line.clone();
    src.push_str(&format!("data @d = {{ i8 {} }}\n", "1 ".repeat(100_000)));
    let m = parse(&src);
    assert_eq!(m.datas[0].layout().1, 100_000);
}

/// The fast path for `%r = op a, b` lines (and float literals, loads,
/// calls, `addr`, `alloca`, stores) builds exactly what the general path builds: a trailing
/// comment sends each line to the general path without changing the IR or
/// any column.
#[test]
fn fast_path_lines_parse_as_the_general_path_does() {
    let lines = [
        "%x = add.i32 %a, 1",
        "%y = sub.i32 %x, -7",
        "%z\t=\tmul.i32\t%y ,%x",
        "%0 = xor.i32 %z, 123456789012345678",
        "%m0 = sdiv.i64 %w, -9223372036854775808",
        "%m1 = udiv.i64 %w, 18446744073709551615",
        "%s = select.i32 %0, %x, 5",
        "%n = neg.i32 %fwd",
        "%fwd = add.i32 %s, %n",
        "%self = add.i32 %self, 0",
        "%w = sext.i64 %x",
        "%f = sitof.f64 %w",
        "%g = fadd.f64 %f, %f",
        "%q = load.i64 %p",
        "%q2 = load.i64 %p, 8",
        "%q3 = load.i32 %q2 ,-16",
        "%cl = call.i32 @f(%a, %q3)",
        "%c0 = call.i64 @f( )",
        "%c1 = call.f64 @f(%h, 2.5, -1, %c1)",
        "%ad = addr @f",
        "%h2 = fmul.f64 %g, -0.25",
        "%h3 = select.f64 %c, 1.0, %h2",
        "%c = eq.i32 %a, 0",
        "%big = add.i64 %w, 0x10",
        "%h = fmul.f64 %g, 1.5",
        "%sl = alloca 16",
        "%sl2 = alloca 24 , 16",
        "store.i64 %w, %sl",
        "store.f64 -2.5, %sl2, 8",
        "store32 %x, %sl ,12",
        "store8 7, %fwd2",
        "%fwd2 = add.i64 %sl, 1",
    ];
    let plain = format!(
        "func @f(%a: i32, %p: i64) -> i32 {{\nentry:\n    {}\n    ret %x\n}}\n",
        lines.join("\n    ")
    );
    let commented = plain.replace('\n', " ; general path\n");
    let crlf = plain.replace('\n', "\r\n");
    let fast_lines = || func::FAST_LINES.with(|n| n.get());
    let before = fast_lines();
    let fast = parse(&plain);
    // Every line but the hex literal, and the `ret`.
    assert_eq!(fast_lines() - before, lines.len());
    for (other, fast_count) in [(&commented, 0), (&crlf, lines.len())] {
        let before = fast_lines();
        let slow = parse(other);
        assert_eq!(fast_lines() - before, fast_count, "{other:?}");
        assert_eq!(fast.funcs[0], slow.funcs[0]);
        assert_eq!(fast.funcs[0].srcmap, slow.funcs[0].srcmap);
    }
    // Lines the fast path declines still get the general path's errors.
    assert_eq!(
        err(&body("    %x = add.i32 %a, 5x")),
        "3:22: invalid number literal '5x'"
    );
    assert_eq!(
        err(&body("    %x = add.i32 %a, %b %c")),
        "3:25: expected end of line after instruction, found '%c'"
    );
    assert_eq!(
        err(&body("    %a = add.i32 %a, 1")),
        "3:5: value %a is defined twice"
    );
    assert_eq!(
        err(&body("    %x = add %a, 1")),
        "3:10: type suffix required: add.i32 or add.i64"
    );
    assert_eq!(
        err(&body("    %x = add.i32 %a,")),
        "3:21: expected an operand (a %value or a literal), found end of line"
    );
    assert_eq!(
        err(&body("    %x = add.i32 %a, %1x")),
        "3:22: invalid value name '%1x'"
    );
    // And the lines of its rarer forms.
    for (line, want) in [
        (
            "    %x = load.i64 %p, 99999999999999999999",
            "3:23: offset does not fit in 64 bits",
        ),
        (
            "    %x = load.i64 %p, 1.5",
            "3:23: expected an offset literal, found '1.5'",
        ),
        (
            "    %x = load.i64 %p, %p",
            "3:23: expected an offset literal, found '%p'",
        ),
        (
            "    %x = load.i64",
            "3:18: expected an operand (a %value or a literal), found end of line",
        ),
        (
            "    %x = call.i32 @nope(%a)",
            "3:19: undeclared symbol @nope",
        ),
        (
            "    %x = call.i32 @f(%a,)",
            "3:25: expected an operand (a %value or a literal), found ')'",
        ),
        (
            "    %x = call.i32 @f(%a",
            "3:24: expected ',' or ')' in argument list, found end of line",
        ),
        (
            "    %x = call.i32 @f %a",
            "3:22: expected '(' after the callee, found '%a'",
        ),
        (
            "    %x = call.i32 @1f(%a)",
            "3:19: invalid symbol name '@1f'",
        ),
        ("    %a = call.i32 @f(%a)", "3:5: value %a is defined twice"),
        (
            "    %x = addr @f, 1",
            "3:17: expected end of line after instruction, found ','",
        ),
        ("    %x = addr @", "3:15: expected a symbol name after '@'"),
        (
            "    %x = fmul.f64 %a, 1.5x",
            "3:23: invalid number literal '1.5x'",
        ),
        (
            "    %x = fmul.f64 %a, 1.",
            "3:23: invalid number literal '1.'",
        ),
        (
            "    %x = fmul.f64 %a, -.5",
            "3:23: unexpected character '-'",
        ),
        (
            "    store.i64 %a, %p, 99999999999999999999",
            "3:23: offset does not fit in 64 bits",
        ),
        (
            "    store.i64 %a",
            "3:17: expected ',' after operand, found end of line",
        ),
        ("    store %a, %p", "3:5: type suffix required: store.T"),
        (
            "    store8 %a, %p,",
            "3:19: expected an offset literal, found end of line",
        ),
        (
            "    store.i32 %a, %p %p",
            "3:22: expected end of line after instruction, found '%p'",
        ),
        (
            "    store16.i32 %a, %p",
            "3:5: 'store16' takes no type suffix",
        ),
        (
            "    %x = alloca -8",
            "3:17: alloca size must be a non-negative 64-bit integer",
        ),
        (
            "    %x = alloca 99999999999999999999",
            "3:17: alloca size must be a non-negative 64-bit integer",
        ),
        (
            "    %x = alloca 8, -1",
            "3:20: alloca alignment must be a non-negative integer",
        ),
        (
            "    %x = alloca 8.5",
            "3:17: expected a size literal, found '8.5'",
        ),
    ] {
        assert_eq!(err(&body(line)), want, "{line}");
    }
}

/// Names of a large function resolve as in a small one (past the parser's
/// cache of short names, and with its tables reserved ahead): every use
/// finds its definition, short and long names alike, and a late duplicate
/// is still an error.
#[test]
fn names_of_large_functions_resolve() {
    let n = 5000;
    let mut src =
        String::from("func @f(%a: i64) -> i64 {\nentry:\n    %long_name_0 = add.i64 %a, 1\n");
    for i in 1..n {
        // Short names, a long one every tenth, a forward use every 97th.
        let prev = if i % 10 == 1 {
            format!("long_name_{}", i - 1)
        } else {
            format!("x{}", i - 1)
        };
        let name = if i % 10 == 0 {
            format!("long_name_{i}")
        } else {
            format!("x{i}")
        };
        let other = if i % 97 == 0 { "%later" } else { "%a" };
        src.push_str(&format!("    %{name} = add.i64 %{prev}, {other}\n"));
    }
    src.push_str(&format!(
        "    %later = add.i64 %x{}, 2\n    ret %later\n}}\n",
        n - 1
    ));
    let m = parse(&src);
    let f = &m.funcs[0];
    let insts = &f.blocks[0].insts;
    assert_eq!(insts.len(), n + 2);
    let later = f.insts[insts[n].index()].result.unwrap();
    assert_eq!(f.value_name(later), Some("later"));
    for k in 1..n {
        let (prev, this) = (&f.insts[insts[k - 1].index()], &f.insts[insts[k].index()]);
        let InstKind::Binary { args } = this.kind else {
            panic!("instruction {k}: {:?}", this.kind)
        };
        assert_eq!(
            args[0],
            Operand::Value(prev.result.unwrap()),
            "instruction {k}"
        );
        let want_other = if k % 97 == 0 { later } else { f.params[0] };
        assert_eq!(args[1], Operand::Value(want_other), "instruction {k}");
        let want_name = if k % 10 == 0 {
            format!("long_name_{k}")
        } else {
            format!("x{k}")
        };
        assert_eq!(f.value_name(this.result.unwrap()), Some(want_name.as_str()));
    }
    let dup = src.replace(
        "    %later = add",
        "    %x4321 = add.i64 %a, 3\n    %later = add",
    );
    assert_eq!(
        err(&dup),
        format!("{}:5: value %x4321 is defined twice", n + 3)
    );
}

/// The fast path for function headers builds exactly what the general
/// path builds (parameters, their source locations, the signature); the
/// headers it declines (a comment, a body on the same line, too many
/// parameters, mistakes) get the general path's IR and errors.
#[test]
fn fast_path_headers_parse_as_the_general_path_does() {
    let plain = "func @a() {\nentry:\n    ret\n}\n\
                 func @b(%x: i32) -> i32 {\nentry:\n    ret %x\n}\n\
                 func @c( %p:f64 ,\t%q :  i64 )->f64{\nentry:\n    ret %p\n}\n\
                 local func @d(%0: i64, %1: i64, %2: i64, %3: i64, %4: i64, %5: i64, \
                 %6: i64, %v7: f32) -> f32 {\nentry:\n    ret %v7\n}\n\
                 func @e(%0: i64, %1: i64, %2: i64, %3: i64, %4: i64, %5: i64, %6: i64, \
                 %7: i64, %8: i64) -> i64 {\nentry:\n    ret %8\n}\n\
                 func @g() -> i32 {\n\n; first block\nentry:\n    ret 0\n}\n";
    let headers = || func::FAST_HEADERS.with(|n| n.get());
    let before = headers();
    let fast = parse(plain);
    // All but @e (nine parameters).
    assert_eq!(headers() - before, 5);
    let commented = plain.replace("{\n", "{ ; general path\n");
    let before = headers();
    let slow = parse(&commented);
    assert_eq!(headers() - before, 0);
    assert_eq!(fast.symbols, slow.symbols);
    for (f, s) in fast.funcs.iter().zip(&slow.funcs) {
        assert_eq!(f, s);
        assert_eq!(f.srcmap, s.srcmap);
    }
    assert_eq!(fast.funcs[2].srcmap.value(fast.funcs[2].params[1]).col, 19);
    // Headers the fast path declines, or reads up to a mistake in a
    // definition, get the general path's errors.
    for (src, want) in [
        (
            "func @f(%a: i32, %a: i64) {\n}\n",
            "1:18: value %a is defined twice",
        ),
        ("func @f(%1x: i32) {\n}\n", "1:9: invalid value name '%1x'"),
        (
            "func @f(%a: i16) {\n}\n",
            "1:13: expected a type (i32, i64, f32 or f64), found 'i16'",
        ),
        (
            "func @f(%a: i32) -> {\n}\n",
            "1:21: expected a type (i32, i64, f32 or f64), found '{'",
        ),
        (
            "func @f(%a: i32) i32 {\n}\n",
            "1:18: expected '{' to start the body of @f, found 'i32'",
        ),
        (
            "func @f(%a: i32 {\n}\n",
            "1:17: expected ',' or ')' after parameter, found '{'",
        ),
        (
            "func @f(%a: i32) { ret\n}\n",
            "1:20: expected end of line after '{', found 'ret'",
        ),
        (
            "func @f() {\n}\nfunc @f() {\n}\n",
            "3:6: symbol @f is defined twice",
        ),
    ] {
        assert_eq!(err(src), want, "{src:?}");
    }
    // An empty body on the header's line is the general path's.
    let before = headers();
    assert_eq!(parse("func @f(%a: i32) {}\n").funcs[0].params.len(), 1);
    assert_eq!(headers() - before, 0);
}

/// The fast path for `ret`, `jmp` and `br` lines builds exactly what the
/// general path builds (forward and backward labels, literal and value
/// operands); lines it declines (block arguments, a label named like the
/// mnemonic, mistakes) get the general path's IR and errors.
#[test]
fn fast_path_terminators_parse_as_the_general_path_does() {
    let plain = "func @f(%a: i32, %b: i64) -> i32 {\nentry:\n    br %a, yes, no\n\
                 yes:\n    jmp  next\nno:\n    br 1,next ,  back\nback:\n    jmp back2\n\
                 back2:\n    br %a, back, out(%a)\nnext:\n    ret 7\n\
                 out(%o: i32):\n    ret %o\n}\n\
                 func @g() {\nret:\n    ret\n}\n";
    let commented = plain.replace('\n', " ; general path\n");
    let fast_lines = || func::FAST_LINES.with(|n| n.get());
    let before = fast_lines();
    let fast = parse(plain);
    // All terminators (the `br` with a block argument too).
    assert_eq!(fast_lines() - before, 8);
    let before = fast_lines();
    let slow = parse(&commented);
    assert_eq!(fast_lines() - before, 0);
    for (f, s) in fast.funcs.iter().zip(&slow.funcs) {
        assert_eq!(f, s);
        assert_eq!(f.srcmap, s.srcmap);
    }
    // A forward label never defined, found by each path.
    assert_eq!(
        err(&body("    br %a, yes, nowhere\nyes:\n    ret %a")),
        "3:17: unknown block 'nowhere'"
    );
    assert_eq!(
        err(&body("    br %a, yes, nowhere ; c\nyes:\n    ret %a")),
        "3:17: unknown block 'nowhere'"
    );
    assert_eq!(
        err(&body("    ret %a %a")),
        "3:12: expected end of line after instruction, found '%a'"
    );
    assert_eq!(
        err(&body("    jmp\nx:\n    ret %a")),
        "3:8: expected a block label, found end of line"
    );
    assert_eq!(
        err(&body("    br %a yes, no")),
        "3:11: expected ',' after operand, found 'yes'"
    );
    assert_eq!(
        err(&body("    ret %")),
        "3:9: expected a value name after '%'"
    );
}

/// The fast path for `jmp` and `br` lines with block arguments, and for
/// labels with parameters, builds exactly what the general path builds
/// (arguments of every operand kind, forward and backward targets, empty
/// argument lists, spaces anywhere the lexer allows them); near misses
/// get the general path's errors at their places.
#[test]
fn fast_path_block_arguments_parse_as_the_general_path_does() {
    let plain = "func @f(%a: i32, %b: i64) -> i32 {\nentry:\n    jmp head(0, %a, %b)\n\
                 head(%n: i32, %x: i32, %y: i64):\n    br %n, body(%x, 2.5, -7), out(%fwd)\n\
                 body( %u: i32 ,%f: f64, %k: i64 ) :\n    %fwd = add.i32 %u, 1\n\
                 \x20   br 1, head (%fwd, %u, %k), out( %u )\nout(%r: i32):\n\
                 \x20   jmp last()\nlast():\n    br %r, end(), end\nend:\n    ret %r\n}\n";
    let commented = plain.replace('\n', " ; general path\n");
    let fast_lines = || func::FAST_LINES.with(|n| n.get());
    let before = fast_lines();
    let fast = parse(plain);
    // The five branch lines, the add and the `ret`.
    assert_eq!(fast_lines() - before, 7);
    let before = fast_lines();
    let slow = parse(&commented);
    assert_eq!(fast_lines() - before, 0);
    assert_eq!(fast.funcs[0], slow.funcs[0]);
    assert_eq!(fast.funcs[0].srcmap, slow.funcs[0].srcmap);
    let f = &fast.funcs[0];
    assert_eq!(f.blocks[1].params.len(), 3);
    assert_eq!(f.blocks[2].params.len(), 3);
    assert!(f.blocks[4].params.is_empty());
    for (line, want) in [
        (
            "    jmp next(%a,)",
            "3:17: expected an operand (a %value or a literal), found ')'",
        ),
        (
            "    jmp next(%a",
            "3:16: expected ',' or ')' in argument list, found end of line",
        ),
        (
            "    jmp next(%a) x",
            "3:18: expected end of line after instruction, found 'x'",
        ),
        (
            "    br %a, next(1) next",
            "3:20: expected ',' after the first branch target, found 'next'",
        ),
        (
            "    br %a, next(1), nowhere(2)",
            "3:21: unknown block 'nowhere'",
        ),
        ("    jmp next(%zz)", "3:14: undefined value %zz"),
        ("    jmp next(1x)", "3:14: invalid number literal '1x'"),
        (
            "    jmp next(%a)\nnext(%a: i32):",
            "4:6: value %a is defined twice",
        ),
        (
            "    jmp next(%a)\nnext(%x i32):",
            "4:9: expected ':' after the parameter name, found 'i32'",
        ),
        (
            "    jmp next(%a)\nnext(%x: i99):",
            "4:10: expected a type (i32, i64, f32 or f64), found 'i99'",
        ),
        (
            "    jmp next(%a)\nnext(%x: i32)",
            "4:14: expected ':' after the block label, found end of line",
        ),
        (
            "    jmp next(%a)\nnext(%x: i32): %y",
            "4:16: expected end of line after block label, found '%y'",
        ),
        (
            "    jmp entry(%a)\nentry(%x: i32):",
            "4:1: block 'entry' is defined twice",
        ),
    ] {
        let src = format!("{line}\nnext(%x: i32):\n    ret %x");
        let src = if line.contains("\nnext") {
            format!("{line}\n    ret %x")
        } else {
            src
        };
        assert_eq!(err(&body(&src)), want, "{line}");
    }
}

/// The parser's buffers are kept per thread between modules: a module
/// parses to the same IR, and gets the same errors, whatever this thread
/// parsed before (here: modules with the same and with other names, a
/// failed parse, a large function whose buffers are not kept).
#[test]
fn modules_parse_alike_after_other_modules() {
    let a = body("    %x = add.i32 %a, 1\n    %y = mul.i32 %x, %x\n    ret %y");
    let b = "func @g(%y: i64) -> i64 {\nstart:\n    jmp next(%y)\nnext(%x: i64):\n    \
             %t1 = sub.i64 %x, 2\n    ret %t1\n}\n";
    let dup = body("    %x = add.i32 %a, 1\n    %x = add.i32 %a, 2\n    ret %x");
    let big = format!(
        "func @h(%a: i32) -> i32 {{\nentry:\n{}    ret %a\n}}\n",
        (0..5000)
            .map(|i| format!("    %t{i} = add.i32 %a, {i}\n"))
            .collect::<String>()
    );
    let fresh = std::thread::spawn({
        let (a, b) = (a.clone(), b.to_string());
        move || (parse(&a), parse(&b))
    })
    .join()
    .unwrap();
    for before in [&a, &dup, &big, &a, &b.to_string()] {
        let _ = parse_module("t.kir", before);
        assert_eq!(parse(&a), fresh.0);
        assert_eq!(parse(b), fresh.1);
        assert_eq!(err(&dup), "4:5: value %x is defined twice");
    }
}

/// The IR of a parsed function costs a bounded number of heap bytes per
/// instruction (the benchmark report prints the figure): the tables, the
/// operand pool and the names, without per-instruction allocations.
#[test]
fn ir_bytes_per_instruction_are_bounded() {
    let n = 2000;
    let src = format!(
        "func @h(%a: i64) -> i64 {{\nentry:\n    %t0 = add.i64 %a, 1\n{}    ret %t{}\n}}\n",
        (1..n)
            .map(|i| format!("    %t{i} = mul.i64 %t{}, %a\n", i - 1))
            .collect::<String>(),
        n - 1
    );
    let m = parse(&src);
    let f = &m.funcs[0];
    let per_inst = f.ir_heap_bytes() as f64 / f.num_insts() as f64;
    let inst = std::mem::size_of::<crate::ir::InstData>() as f64;
    assert!(per_inst >= inst, "{per_inst} bytes per instruction");
    assert!(per_inst < inst + 80.0, "{per_inst} bytes per instruction");
    assert!((f.srcmap.heap_bytes() as f64 / f.num_insts() as f64) < 40.0);
}

/// The parser's cache of short names is emptied between functions, after
/// a small function and after one that filled it: each function's names
/// resolve to its own values, and a name only an earlier function defined
/// is undefined in a later one.
#[test]
fn short_names_do_not_leak_between_functions() {
    // @f0 fills the cache (sixty names), @f1 uses a few, @f2 and @f3 use
    // one defined only before them.
    let mut src = String::from("func @f0(%a: i64) -> i64 {\nentry:\n    %n0 = add.i64 %a, 1\n");
    for i in 1..60 {
        src.push_str(&format!("    %n{i} = add.i64 %n{}, %a\n", i - 1));
    }
    src.push_str("    ret %n59\n}\n");
    src.push_str("func @f1(%b: i64) -> i64 {\nentry:\n    %c = add.i64 %b, 2\n    ret %c\n}\n");
    let m = parse(&src);
    let f1 = &m.funcs[1];
    assert_eq!(f1.blocks.len(), 1);
    let insts = &f1.blocks[0].insts;
    assert_eq!(insts.len(), 2);
    let c = f1.insts[insts[0].index()].result.unwrap();
    assert_eq!(f1.value_name(c), Some("c"));
    let InstKind::Binary { args } = f1.insts[insts[0].index()].kind else {
        panic!("{:?}", f1.insts[insts[0].index()].kind)
    };
    assert_eq!(args[0], Operand::Value(f1.params[0]));
    let late = |body: &str| format!("{src}func @f2(%d: i64) -> i64 {{\nentry:\n{body}\n}}\n");
    assert_eq!(
        err(&late("    %e = add.i64 %d, %c\n    ret %e")),
        "72:22: undefined value %c"
    );
    assert_eq!(
        err(&late("    %e = add.i64 %d, %n3\n    ret %e")),
        "72:22: undefined value %n3"
    );
}

/// Lines read without a lookahead token (`fast_lines`, after a header or
/// a fast line) and the same lines reached through their first token
/// (here: each after a comment line, which the lexer reads) build the same
/// IR and source map, and are counted as fast lines alike; a line the fast
/// paths decline is handed to the token path at its first token, with the
/// general path's errors at their exact places.
#[test]
fn lines_read_without_a_token_parse_as_with_one() {
    let lines = [
        "entry:",
        "    %x = add.i32 %a, 1",
        "    %0 = mul.i32 %x, %x",
        "    %y = call.i32 @f(%x, %0)",
        "    %z = sub.i32 %y, %0",
        "    br %z, yes, no",
        "no:",
        "    jmp yes",
        "yes(%v: i32):",
        "    jmp end",
        "end:",
        "    ret %z",
    ];
    let plain = format!("func @f(%a: i32) -> i32 {{\n{}\n}}\n", lines.join("\n"));
    let commented = format!(
        "func @f(%a: i32) -> i32 {{\n; c\n{}\n}}\n",
        lines.join("\n ; c\n")
    );
    let fast_lines = || func::FAST_LINES.with(|n| n.get());
    let before = fast_lines();
    let a = parse(&plain);
    let n = fast_lines() - before;
    let before = fast_lines();
    let b = parse(&commented);
    assert_eq!(fast_lines() - before, n);
    // All but the label with a parameter (and `entry:`, `no:`, `end:` are
    // labels, not counted).
    assert_eq!(n, 8);
    assert_eq!(a.funcs[0], b.funcs[0]);
    // The lines differ, the columns do not.
    assert_eq!(a.funcs[0].srcmap.num_insts(), b.funcs[0].srcmap.num_insts());
    for i in 0..a.funcs[0].insts.len() {
        let inst = Inst::new(i);
        let (sa, sb) = (&a.funcs[0].srcmap, &b.funcs[0].srcmap);
        assert_eq!(sa.inst(inst).col, sb.inst(inst).col);
        for k in 0..4 {
            assert_eq!(sa.token(inst, k).col, sb.token(inst, k).col);
        }
    }
    // Errors at the first token of a line after fast lines.
    let after = |line: &str| {
        body(&format!(
            "    %x = add.i32 %a, 1\n    jmp next\nnext:\n{line}"
        ))
    };
    assert_eq!(
        err(&after("    %1x = add.i32 %a, 1")),
        "6:5: invalid value name '%1x'"
    );
    assert_eq!(err(&after("    # x")), "6:5: unexpected character '#'");
    assert_eq!(
        err(&after("    @g")),
        "6:5: expected an instruction or a block label, found '@g'"
    );
    assert_eq!(err(&after("entry:")), "6:1: block 'entry' is defined twice");
    assert_eq!(
        err(&after("    %x = add.i32 %a, 2")),
        "6:5: value %x is defined twice"
    );
    assert_eq!(
        err(&after("    ret %a, 1")),
        "6:11: expected end of line after instruction, found ','"
    );
    // The end of the text right after a fast line.
    assert_eq!(
        err("func @f(%a: i32) -> i32 {\nentry:\n    ret %a"),
        "3:11: expected '}' to close function @f, found end of input"
    );
}

/// Mnemonics found again through the fast path's table (after a first
/// line read them), and operand names found from a word of the text in
/// the short-name cache, parse as the general path reads them, whatever
/// follows them (a tab, a newline, `,` without a space, the end of the
/// text; names with `$`, of 7 and 8 bytes; mnemonics of 8 bytes and more,
/// keyed by two words), and near misses still get the general path's
/// errors.
#[test]
fn mnemonics_found_again_parse_as_the_general_path_does() {
    let lines = [
        "%x = add.i32 %a, 1",
        "%y = add.i32\t%x, 2",
        "%z = add.i32%y, 3",
        "%w = neg.i32 %z",
        "%v = neg.i32\t%w",
        "%s = select.i32 %v, %w, %z",
        "%t = select.i32 %s, %w, %z",
        "%u = add.i64 %p, %p",
        "%a$ = add.i32 %t, %t",
        "%$b = add.i32 %a$,%a$",
        "%abcdefg = add.i32 %$b ,%a$",
        "%abcdefgh = add.i32 %abcdefg\t, %abcdefg",
        "%r = add.i32 %abcdefgh, %abcdefg",
        "%q = add.i32 %r, %a",
        "%l = zext.i64 %q",
        "%m = sext.i64\t%q",
        "%n = sitof.f64 %l",
        "%o = sitof.f64%m",
        "%k = bitcast.i64 %n",
        "%j = bitcast.i64 %o",
        "%i = zext.i64 %q",
    ];
    let plain = format!(
        "func @f(%a: i32, %p: i64) -> i32 {{\nentry:\n    {}\n    ret %q\n}}\n",
        lines.join("\n    ")
    );
    let commented = plain.replace('\n', " ; general path\n");
    // Twice: the second parse finds every mnemonic in the table.
    let fast = parse(&plain);
    assert_eq!(parse(&plain).funcs[0], fast.funcs[0]);
    let slow = parse(&commented);
    assert_eq!(fast.funcs[0], slow.funcs[0]);
    assert_eq!(fast.funcs[0].srcmap, slow.funcs[0].srcmap);
    // Near misses of `add.i32`, read after it is in the table.
    let cached = "    %x = add.i32 %a, 1\n";
    assert_eq!(
        err(&body(&format!("{cached}    %y = add.i3 %x, 1"))),
        "4:14: invalid type suffix 'i3' for 'add': expected i32 or i64"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = add.i32x %x, 1"))),
        "4:14: invalid type suffix 'i32x' for 'add': expected i32 or i64"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = add.i32, %x, 1"))),
        "4:17: expected an operand (a %value or a literal), found ','"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = add.i32 %x:, 1"))),
        "4:20: expected ',' after operand, found ':'"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = add.i32 %x-1, 1"))),
        "4:20: expected ',' after operand, found '-1'"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = adD.i32 %x, 1"))),
        "4:10: unknown opcode 'adD'"
    );
    // And of `zext.i64` (a key of two words).
    let cached = "    %x = zext.i64 %a\n";
    assert_eq!(
        err(&body(&format!("{cached}    %y = zext.i6 %a"))),
        "4:15: invalid type suffix 'i6' for 'zext': expected i64"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = zext.i64x %a"))),
        "4:15: invalid type suffix 'i64x' for 'zext': expected i64"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = zext.i64, %a"))),
        "4:18: expected an operand (a %value or a literal), found ','"
    );
    assert_eq!(
        err(&body(&format!("{cached}    %y = zexT.i64 %a"))),
        "4:10: unknown opcode 'zexT'"
    );
    assert_eq!(
        err(&format!(
            "func @f(%a: i32) -> i32 {{\nentry:\n{cached}    %y = add.i32"
        )),
        "4:17: expected an operand (a %value or a literal), found end of input"
    );
}
