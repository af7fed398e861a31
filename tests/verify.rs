//! Integration tests of the verifier on generated text: large functions
//! parse and verify (without a timing assertion; speed is for benchmarks),
//! and an error at the very end of a large function is still found and
//! located.

use kiln::ir::parse::parse_module;
use kiln::ir::verify::verify_module;
use kiln::ir::Loc;
use kiln::Error;
use std::fmt::Write;

/// A function of at least `n` instructions: straight-line arithmetic in
/// blocks of 49 that pass the running value on as a block argument; every
/// 20th block may also branch back to `b0`, so the CFG has loops.
fn big_function(n: usize, tail: &str) -> String {
    let mut s = String::from("func @big(%n: i64) -> i64 {\nentry:\n    jmp b0(%n)\n");
    let blocks = n.div_ceil(49);
    for b in 0..blocks {
        writeln!(s, "b{b}(%v{b}_0: i64):").unwrap();
        for i in 1..48 {
            let op = ["add", "mul", "xor", "sub"][i % 4];
            writeln!(s, "    %v{b}_{i} = {op}.i64 %v{b}_{}, %n", i - 1).unwrap();
        }
        writeln!(s, "    %c{b} = slt.i64 %v{b}_47, {b}").unwrap();
        let next = if b + 1 < blocks {
            format!("b{}(%v{b}_47)", b + 1)
        } else {
            format!("exit(%v{b}_47)")
        };
        // Every 20th block may loop back to the block after the entry.
        if b % 20 == 19 {
            writeln!(s, "    br %c{b}, b0(%v{b}_1), {next}").unwrap();
        } else {
            writeln!(s, "    br %c{b}, {next}, {next}").unwrap();
        }
    }
    writeln!(s, "exit(%r: i64):\n{tail}    ret %r\n}}").unwrap();
    s
}

#[test]
fn twenty_thousand_instructions_verify() {
    let text = big_function(20_000, "");
    assert!(text.lines().count() > 20_000);
    let m = parse_module("big.kir", &text).expect("parses");
    assert!(m.funcs[0].num_insts() >= 20_000);
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn error_at_the_end_of_a_large_function_is_located() {
    // A use of a value defined later in the last block.
    let tail = "    %early = add.i64 %late, 1\n    %late = add.i64 %r, 1\n";
    let text = big_function(20_000, tail);
    let line = text.lines().position(|l| l.contains("%early")).unwrap() as u32 + 1;
    let m = parse_module("big.kir", &text).expect("parses");
    match verify_module(&m) {
        Err(Error::Verify(d)) => {
            assert_eq!(d.loc, Loc::new(line, 22));
            assert_eq!(d.message, "use of %late is not dominated by its definition");
        }
        other => panic!("expected a verify error, got {other:?}"),
    }
}

#[test]
fn long_block_chain_verifies() {
    // 20,000 blocks, each jumping to the next: the analyses must not
    // recurse.
    let mut s = String::from("func @chain(%x: i32) -> i32 {\nentry:\n    jmp l0\n");
    for b in 0..20_000 {
        writeln!(s, "l{b}:\n    jmp l{}", b + 1).unwrap();
    }
    s.push_str("l20000:\n    ret %x\n}\n");
    let m = parse_module("chain.kir", &s).expect("parses");
    assert_eq!(verify_module(&m), Ok(()));
}

/// A tiny xorshift generator for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Damages one random thing in a function: ids out of range, wrong
/// opcodes for the operand layout, duplicated or missing instructions...
fn mutate(rng: &mut XorShift, f: &mut kiln::ir::Function, nsyms: usize) {
    use kiln::ir::{Block, Callee, Const, Inst, InstKind, Opcode, Operand, SymId, Type, Value};
    let ninsts = f.insts.len();
    let nvalues = f.values.len();
    let nblocks = f.blocks.len();
    let types = [
        None,
        Some(Type::I32),
        Some(Type::I64),
        Some(Type::F32),
        Some(Type::F64),
    ];
    let i = rng.below(ninsts);
    match rng.below(9) {
        0 => f.insts[i].opcode = Opcode::ALL[rng.below(Opcode::ALL.len())],
        1 => f.insts[i].ty = types[rng.below(types.len())],
        2 => {
            let v = rng.below(nvalues + 3);
            let lit = rng.next() as i128 * if rng.below(2) == 0 { 1 } else { 1 << 30 };
            let k = rng.below(4);
            f.for_each_operand_mut(Inst::new(i), |op| {
                *op = match k {
                    0 => Operand::Value(Value::new(v)),
                    1 => Operand::Const(Const::int(lit)),
                    2 => Operand::Const(Const::float(0.5)),
                    _ => *op,
                }
            });
        }
        3 => f.insts[i].result = [None, Some(Value::new(rng.below(nvalues + 2)))][rng.below(2)],
        4 => match &mut f.insts[i].kind {
            InstKind::Jmp { dest } => dest.block = Block::new(rng.below(nblocks + 2)),
            InstKind::Br { else_dest, .. } => {
                let list = else_dest.args;
                let grown = f.extend_args(list, &[Operand::Const(Const::int(1))]);
                if let InstKind::Br { else_dest, .. } = &mut f.insts[i].kind {
                    else_dest.args = grown;
                }
            }
            InstKind::Switch { default, .. } => *default = Block::new(rng.below(nblocks + 2)),
            InstKind::Call { callee, args } => {
                *callee = Callee::Direct(SymId::new(rng.below(nsyms + 2)));
                args.truncate(1);
            }
            InstKind::Addr { sym } => *sym = SymId::new(rng.below(nsyms + 2)),
            InstKind::Alloca { align, .. } => *align = rng.below(40) as u64,
            _ => f.insts[i].kind = InstKind::Trap,
        },
        5 => {
            let b = rng.below(nblocks);
            let insts = &mut f.blocks[b].insts;
            match rng.below(3) {
                0 => insts.push(Inst::new(rng.below(ninsts + 2))),
                1 => {
                    insts.pop();
                }
                _ => insts.reverse(),
            }
        }
        6 => {
            let b = rng.below(nblocks);
            let v = Value::new(rng.below(nvalues + 2));
            f.blocks[b].params.push(v);
        }
        7 => {
            let v = rng.below(nvalues);
            f.values[v].ty = Type::ALL[rng.below(4)];
        }
        _ => {
            let b = rng.below(nblocks);
            f.blocks.swap(0, b);
        }
    }
}

#[test]
fn damaged_built_ir_is_rejected_without_panicking() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/ir/verify/valid_tricky.kir"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let module = parse_module("valid_tricky.kir", &text).expect("parses");
    assert_eq!(verify_module(&module), Ok(()));
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut m = module.clone();
        let nsyms = m.symbols.len();
        for _ in 0..1 + rng.below(3) {
            let fi = rng.below(m.funcs.len());
            mutate(&mut rng, &mut m.funcs[fi], nsyms);
        }
        match verify_module(&m) {
            Ok(()) => {}
            Err(Error::Verify(_)) => rejected += 1,
            Err(other) => panic!("unexpected error kind: {other:?}"),
        }
    }
    // Most damage is detectable; a few mutations are harmless (a type
    // suffix rewritten to the same one, an unused value's type...).
    assert!(rejected > 2000, "only {rejected} of 3000 rejected");
}

/// The expectation blocks of `tests/ir/verify/*.kir` (written for
/// `kiln check`) hold at the library level too: parse, verify, and compare
/// the one error line and the status. This runs without the binary.
#[test]
fn verify_file_tests_hold_at_the_library_level() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(root).join("tests/ir/verify");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kir"))
        .collect();
    files.sort();
    assert!(files.len() >= 50);
    for path in files {
        let rel = format!(
            "tests/ir/verify/{}",
            path.file_name().unwrap().to_str().unwrap()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .split("; ==== check\n")
            .nth(1)
            .expect("expectation block");
        let want_err = expect
            .lines()
            .find_map(|l| l.strip_prefix("; stderr: "))
            .map(str::to_string);
        let want_status = expect
            .lines()
            .find_map(|l| l.strip_prefix("; status: "))
            .expect("status line");
        let got = parse_module(&rel, &text).and_then(|m| verify_module(&m));
        let got_err = got.as_ref().err().map(ToString::to_string);
        assert_eq!(got_err, want_err, "{rel}");
        assert_eq!(if got.is_ok() { "0" } else { "1" }, want_status, "{rel}");
    }
}
