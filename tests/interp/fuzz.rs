//! Random, often malformed IR: the interpreter must reject or run it,
//! never panic.

use super::build::*;

/// xorshift64*: a tiny deterministic PRNG for randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A random function over arbitrary (often ill-typed, sometimes
/// out-of-range) operands. Loads and stores are left out: wild addresses
/// are undefined behaviour of the program, not something the interpreter
/// can survive.
fn random_function(rng: &mut Rng, name: &str, nsyms: usize) -> Function {
    let types = [I32, I64, F32, F64];
    let nparams = rng.below(4);
    let params: Vec<Type> = (0..nparams).map(|_| rng.pick(&types)).collect();
    let ret = if rng.below(4) == 0 {
        None
    } else {
        Some(rng.pick(&types))
    };
    let mut f = Function::new(name, sig(&params, ret));
    let nblocks = 1 + rng.below(4);
    let blocks: Vec<Block> = (0..nblocks)
        .map(|i| f.new_block(&format!("b{i}")))
        .collect();
    for &b in &blocks[1..] {
        for _ in 0..rng.below(3) {
            f.add_block_param(b, rng.pick(&types), None);
        }
    }
    let ops: Vec<Opcode> = Opcode::ALL
        .iter()
        .copied()
        .filter(|op| op.access_bytes(Some(I64)).is_none())
        .collect();
    for &b in &blocks {
        let n = rng.below(8);
        for k in 0..=n {
            let op = if k == n {
                rng.pick(&[
                    Opcode::Ret,
                    Opcode::Jmp,
                    Opcode::Br,
                    Opcode::Switch,
                    Opcode::Trap,
                ])
            } else {
                rng.pick(&ops)
            };
            let nvals = f.values.len();
            // Out-of-range values and blocks now and then.
            let operand = |rng: &mut Rng| {
                if rng.below(4) == 0 {
                    int(rng.next() as i64 as i128 >> rng.below(64))
                } else if rng.below(50) == 0 || nvals == 0 {
                    Operand::Value(Value::new(nvals + rng.below(2)))
                } else {
                    Operand::Value(Value::new(rng.below(nvals)))
                }
            };
            let some_block = |rng: &mut Rng| {
                let extra = (rng.below(50) == 0) as usize;
                Block::new(rng.below(nblocks + extra))
            };
            let nparams: Vec<usize> = f.blocks.iter().map(|b| b.params.len()).collect();
            let target = |rng: &mut Rng, f: &mut Function| {
                let block = some_block(rng);
                let n = nparams.get(block.index()).copied().unwrap_or(0);
                let n = if rng.below(20) == 0 { rng.below(3) } else { n };
                let args: Vec<Operand> = (0..n).map(|_| operand(rng)).collect();
                BlockCall {
                    block,
                    args: f.make_args(&args),
                }
            };
            // Mostly the opcode's own operand layout, sometimes another.
            let format = if rng.below(10) == 0 {
                rng.pick(Opcode::ALL).info().format
            } else {
                op.info().format
            };
            let kind = match format {
                Format::Unary => InstKind::Unary { arg: operand(rng) },
                Format::Binary | Format::Load | Format::Store => InstKind::Binary {
                    args: [operand(rng), operand(rng)],
                },
                Format::Select => InstKind::Select {
                    args: [operand(rng), operand(rng), operand(rng)],
                },
                Format::Alloca => InstKind::Alloca {
                    size: rng.next() >> rng.below(64),
                    align: 1 << rng.below(6),
                },
                Format::Addr => InstKind::Addr {
                    sym: SymId::new(rng.below(nsyms + 1)),
                },
                Format::Call => InstKind::Call {
                    callee: if rng.below(2) == 0 {
                        Callee::Direct(SymId::new(rng.below(nsyms + 1)))
                    } else {
                        Callee::Indirect(operand(rng))
                    },
                    args: {
                        let args: Vec<Operand> = (0..rng.below(4)).map(|_| operand(rng)).collect();
                        f.make_args(&args)
                    },
                },
                Format::Ret => InstKind::Ret {
                    value: (rng.below(2) == 0).then(|| operand(rng)),
                },
                Format::Jmp => InstKind::Jmp {
                    dest: target(rng, &mut f),
                },
                Format::Br => InstKind::Br {
                    cond: operand(rng),
                    then_dest: target(rng, &mut f),
                    else_dest: target(rng, &mut f),
                },
                Format::Switch => InstKind::Switch {
                    value: operand(rng),
                    default: some_block(rng),
                    cases: {
                        let cases: Vec<SwitchCase> = (0..rng.below(4))
                            .map(|_| SwitchCase {
                                key: Const::int(rng.below(8) as i128 - 2),
                                block: some_block(rng),
                            })
                            .collect();
                        f.make_cases(&cases)
                    },
                },
                Format::Trap => InstKind::Trap,
            };
            let ty = if rng.below(8) == 0 {
                None
            } else {
                Some(rng.pick(&types))
            };
            f.push_inst(b, op, ty, kind, None);
        }
    }
    f
}

#[test]
fn malformed_ir_never_panics_the_interpreter() {
    let seed = std::env::var("KILN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let mut ran = 0;
    let cases: i128 = std::env::var("KILN_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for case in 0..cases {
        let mut mb = Mb::new("fuzz.kir");
        let nfuncs = 1 + rng.below(3);
        let names: Vec<String> = (0..nfuncs).map(|i| format!("f{i}")).collect();
        let funcs: Vec<Function> = names
            .iter()
            .map(|n| random_function(&mut rng, n, nfuncs + 1))
            .collect();
        for f in funcs {
            let sym = mb.func_sym(&f.name.clone(), Linkage::Export, f.sig.clone());
            mb.m.define_func(sym, f);
        }
        mb.data(
            "d",
            Linkage::Local,
            vec![DataValue::Int {
                bytes: 8,
                values: vec![case],
            }],
        );
        let modules = [mb.m];
        let Ok(mut it) = Interpreter::new(&modules, &HostFunctions::new()) else {
            continue;
        };
        it.set_fuel(Some(10_000));
        it.set_call_depth_limit(1_000);
        let entry = &modules[0].funcs[0];
        let args: Vec<Val> = entry
            .sig
            .params
            .iter()
            .map(|&t| Val::from_bits(t, rng.next()))
            .collect();
        let _ = it.call("f0", &args);
        ran += 1;
    }
    // Most random functions are malformed enough to be rejected; some run.
    println!("{ran} random modules ran");
    assert!(ran > 50, "only {ran} random modules were runnable");
}

#[test]
fn fuel_bounds_infinite_loops() {
    let mut fb = Fb::new("spin", &[], None);
    let (lp, _) = fb.block("loop", &[]);
    fb.jmp(lp, vec![]);
    fb.at(lp);
    fb.jmp(lp, vec![]);
    let mut mb = Mb::new("s.kir");
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_fuel(Some(1000));
    assert_eq!(
        it.call("spin", &[]),
        Err(Error::Runtime(
            "fuel of 1000 control transfers exhausted".into()
        ))
    );
    // Exactly `n` transfers are allowed: sum(10) makes 10 + 11 + 1 jumps
    // and branches.
    let modules = [{
        let mut mb = Mb::new("s.kir");
        mb.func(Linkage::Export, crate::flow::sum_loop());
        mb.m
    }];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    it.set_fuel(Some(22));
    assert_eq!(it.call("sum", &[Vi64(10)]), Ok(Some(Vi64(45))));
    it.set_fuel(Some(21));
    assert!(it.call("sum", &[Vi64(10)]).is_err());
}
