//! The accepting pass against the precise checks: what it accepts (the
//! valid IR of the repository, layouts with uses before definitions) and
//! what it must leave to them (each with the verifier's message).

use super::*;
use crate::ir::function::OpList;
use crate::ir::parse::parse_module;
use crate::ir::verify::verify_module;

/// Whether the pass accepts every function of `text` (which must parse),
/// with one scratch for the whole module, as the verifier uses it.
fn fast(text: &str) -> bool {
    let m = parse_module("t.kir", text).unwrap();
    let mut s = Scratch::default();
    m.funcs.iter().all(|f| accepts(&m, f, &mut s))
}

/// The verifier's message for `text`.
fn error(text: &str) -> String {
    let m = parse_module("t.kir", text).unwrap();
    verify_module(&m).unwrap_err().to_string()
}

/// Every `.kir` file under `dir` (recursively).
fn kir_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            kir_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "kir") {
            out.push(p);
        }
    }
}

#[test]
fn accepts_every_valid_module_of_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["tests/ir", "examples", "benches/programs"] {
        kir_files(&root.join(dir), &mut files);
    }
    let mut valid = 0;
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(m) = parse_module("t.kir", &text) else {
            continue;
        };
        if verify_module(&m).is_err() {
            continue;
        }
        valid += 1;
        let mut s = Scratch::default();
        for f in &m.funcs {
            assert!(accepts(&m, f, &mut s), "{}: @{}", path.display(), f.name);
        }
    }
    assert!(valid > 50, "only {valid} valid modules found");
}

#[test]
fn rejects_every_invalid_function_of_the_repository() {
    // The debug cross-check in `check` proves nothing when the pass is
    // compiled out of a release test run; this asks the pass directly.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    kir_files(&root.join("tests"), &mut files);
    let mut invalid = 0;
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(m) = parse_module("t.kir", &text) else {
            continue;
        };
        let mut s = Scratch::default();
        for f in &m.funcs {
            let mut precise = Scratch::default();
            if super::super::FuncVerifier::new(&m, f, &mut precise)
                .run()
                .is_err()
            {
                invalid += 1;
                assert!(!accepts(&m, f, &mut s), "{}: @{}", path.display(), f.name);
            }
        }
    }
    assert!(invalid > 30, "only {invalid} invalid functions found");
}

/// A block laid out before the block that defines what it uses (and
/// dominates it): the use waits for the definition.
const LATE_DEF: &str = "
func @f(%a: i64) -> i64 {
entry:
    jmp def
use:
    %y = add.i64 %x, %a
    ret %y
def:
    %x = add.i64 %a, 1
    jmp use
}
";

#[test]
fn accepts_uses_laid_out_before_a_dominating_definition() {
    assert!(fast(LATE_DEF));
    let m = parse_module("t.kir", LATE_DEF).unwrap();
    verify_module(&m).unwrap();
}

#[test]
fn late_definition_that_does_not_dominate_is_left_to_the_verifier() {
    // `use` is also reached from the entry, around `def`.
    let text = LATE_DEF.replace("jmp def", "%c = slt.i64 %a, 0\n    br %c, def, use");
    assert!(!fast(&text));
    assert_eq!(
        error(&text),
        "t.kir:7:18: error: use of %x is not dominated by its definition"
    );
}

#[test]
fn late_definition_of_the_wrong_type_is_left_to_the_verifier() {
    let text = LATE_DEF.replace("%x = add.i64 %a, 1", "%x = eq.i64 %a, 1");
    assert!(!fast(&text));
    assert_eq!(
        error(&text),
        "t.kir:6:18: error: %x has type i32, expected i64"
    );
}

#[test]
fn use_before_definition_in_one_block_is_left_to_the_verifier() {
    let text = "
func @f(%a: i64) -> i64 {
entry:
    %y = add.i64 %x, 1
    %x = add.i64 %a, 1
    ret %y
}
";
    assert!(!fast(text));
    assert_eq!(
        error(text),
        "t.kir:4:18: error: use of %x is not dominated by its definition"
    );
    let own = "
func @f(%a: i64) -> i64 {
entry:
    %x = add.i64 %x, 1
    ret %x
}
";
    assert!(!fast(own));
    assert_eq!(
        error(own),
        "t.kir:4:18: error: use of %x is not dominated by its definition"
    );
}

#[test]
fn open_operand_from_a_block_that_does_not_dominate() {
    // An `i32` defined in the block after the entry, used by `sitof` (a
    // want that is no type) in the entry: the definition's entry must not
    // pass for the use's block.
    let text = "
func @f(%a: i32) -> f64 {
entry:
    jmp next
next:
    %x = add.i32 %a, 1
    %y = sitof.f64 %x
    ret %y
}
";
    assert!(fast(text));
    let bad = "
func @f(%a: i32) -> f64 {
entry:
    %y = sitof.f64 %x
    jmp next
next:
    %x = add.i32 %a, 1
    ret %y
}
";
    assert!(!fast(bad));
    assert_eq!(
        error(bad),
        "t.kir:4:20: error: use of %x is not dominated by its definition"
    );
}

#[test]
fn uses_across_blocks_need_dominance_and_reachability() {
    // Values of the entry (reachability only) and of a dominating block
    // (the dominator tree), several uses per pair of blocks.
    let ok = "
func @f(%a: i64) -> i64 {
entry:
    %e = add.i64 %a, 1
    jmp head
head:
    %h = add.i64 %e, %e
    %c = slt.i64 %h, 0
    br %c, left, right
left:
    %l = add.i64 %h, %e
    %l2 = add.i64 %h, %l
    jmp join(%l2)
right:
    %r = add.i64 %h, %h
    jmp join(%r)
join(%j: i64):
    %s = add.i64 %j, %h
    ret %s
}
";
    assert!(fast(ok));
    // `join` is not dominated by `left`.
    let bad = ok.replace("%s = add.i64 %j, %h", "%s = add.i64 %j, %l");
    assert!(!fast(&bad));
    assert_eq!(
        error(&bad),
        "t.kir:18:22: error: use of %l is not dominated by its definition"
    );
    // An unreachable block may use only its own earlier values and the
    // function's parameters.
    let unreachable = ok.replace(
        "ret %s\n}",
        "ret %s\ndead:\n    %d = add.i64 %e, %a\n    ret %d\n}",
    );
    assert!(!fast(&unreachable));
    assert_eq!(
        error(&unreachable),
        "t.kir:21:18: error: use of %e is not dominated by its definition"
    );
}

#[test]
fn entry_values_need_a_reachable_use() {
    // A block reached only through an unreachable one is unreachable too,
    // whichever way the edges run in the layout.
    let forward = "
func @f(%a: i64) -> i64 {
entry:
    %e = add.i64 %a, 1
    ret %e
dead:
    jmp dead2
dead2:
    %d = add.i64 %e, %a
    ret %d
}
";
    assert!(!fast(forward));
    assert_eq!(
        error(forward),
        "t.kir:9:18: error: use of %e is not dominated by its definition"
    );
    let backward = forward
        .replace("jmp dead2", "ret %a")
        .replace("ret %d", "jmp dead");
    assert!(!fast(&backward));
    // Reached only by an edge back from a later block: reachable.
    let back_edge = "
func @f(%a: i64) -> i64 {
entry:
    %e = add.i64 %a, 1
    jmp later
early:
    %d = add.i64 %e, %a
    ret %d
later:
    jmp early
}
";
    assert!(fast(back_edge));
    verify_module(&parse_module("t.kir", back_edge).unwrap()).unwrap();
    // Marks of an earlier function (same scratch, same block numbers)
    // do not carry over.
    let two = "
func @g(%a: i64) -> i64 {
entry:
    jmp b1
b1:
    ret %a
}
func @f(%a: i64) -> i64 {
entry:
    %e = add.i64 %a, 1
    ret %e
b1:
    ret %e
}
";
    assert!(!fast(two));
    assert_eq!(
        error(two),
        "t.kir:13:9: error: use of %e is not dominated by its definition"
    );
}

#[test]
fn instructions_out_of_order_are_left_to_the_verifier() {
    // Built IR whose block lists its instructions in another order than
    // they were created: valid, but not a layout the pass takes.
    let mut m = parse_module(
        "t.kir",
        "func @f(%a: i64) -> i64 {\nentry:\n    %x = add.i64 %a, 1\n    %y = add.i64 %a, 2\n    %z = add.i64 %x, %y\n    ret %z\n}\n",
    )
    .unwrap();
    m.funcs[0].blocks[0].insts.swap(0, 1);
    let mut s = Scratch::default();
    assert!(!accepts(&m, &m.funcs[0], &mut s));
    verify_module(&m).unwrap();
}

#[test]
fn literal_fits_as_the_ir_says() {
    let ints = [
        0,
        -1,
        i32::MIN as i128,
        i32::MIN as i128 - 1,
        u32::MAX as i128,
        u32::MAX as i128 + 1,
        i64::MIN as i128,
        i64::MIN as i128 - 1,
        u64::MAX as i128,
        u64::MAX as i128 + 1,
        crate::ir::function::Int96::MAX,
        crate::ir::function::Int96::MIN,
    ];
    let consts = ints.iter().map(|&v| Const::int(v)).chain([
        Const::float(1.5),
        Const::float(-0.0),
        Const::float(f64::NAN),
    ]);
    for c in consts {
        for t in Type::ALL {
            assert_eq!(fits(c, t), c.fits(t), "{c:?} as {t}");
        }
        // The table behind `Walk::operand`'s literals, for every want.
        for want in 0..16u8 {
            let expected = match want {
                0..=3 => c.fits(Type::ALL[want as usize]),
                INT_LIT64 => matches!(c, Const::Int(_)) && c.fits(Type::I64),
                _ => false,
            };
            assert_eq!(lit_fits(c, want), expected, "{c:?} for want {want}");
        }
    }
}

/// A xorshift generator from `seed`: each call gives a number below its
/// argument (the random graphs and functions below).
fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// `QuickDom` answers as the dominator tree on random graphs (irreducible
/// ones included), and gives up (`false`) rather than iterate past its
/// budget.
#[test]
fn quick_dominators_agree_with_the_tree() {
    use crate::analysis::{Cfg, DomTree};
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut quick = dom::QuickDom::default();
    for round in 0..300 {
        let n = 1 + next(40) as usize;
        let m = next(3 * n as u64 + 1) as usize;
        let edges: Vec<(Block, Block)> = (0..m)
            .map(|_| {
                (
                    Block::new(next(n as u64) as usize),
                    Block::new(next(n as u64) as usize),
                )
            })
            .collect();
        let cfg = Cfg::from_edges(n, &edges);
        let tree = DomTree::new(&cfg);
        assert!(quick.compute(&cfg), "round {round}: over budget");
        for b in 0..n as u32 {
            for a in 0..n as u32 {
                assert_eq!(
                    quick.dominates(a, b),
                    tree.dominates(Block(a), Block(b)),
                    "round {round}: {a} dom {b}, edges {edges:?}"
                );
            }
        }
    }
    // Past its budget it gives up: a chain of 2,000 blocks takes 2,000
    // steps per round, more than 1,024.
    let edges: Vec<(Block, Block)> = (1..2000)
        .map(|i| (Block::new(i - 1), Block::new(i)))
        .collect();
    let cfg = Cfg::from_edges(2000, &edges);
    assert!(!quick.compute_within(&cfg, 0));
    assert!(quick.compute_within(&cfg, 32));
    assert!(quick.dominates(1, 1999) && !quick.dominates(1999, 1));
}

/// The one pass over the layout answers as the dominator tree when it
/// answers at all, on random functions (irreducible ones and unreachable
/// blocks included), and answers for the forward layouts of structured
/// code.
#[test]
fn layout_dominators_agree_with_the_tree() {
    use crate::analysis::{Cfg, DomTree};
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let mut quick = dom::QuickDom::default();
    let (mut answered, mut declined) = (0, 0);
    for round in 0..400 {
        let n = 1 + next(30) as usize;
        // Every block ends in ret, jmp, br or a switch to random blocks,
        // mostly forward ones (block 0 is never a target).
        let mut text = String::from("func @f(%c: i32) {\n");
        for b in 0..n {
            text += &format!("b{b}:\n");
            let target = |next: &mut dyn FnMut(u64) -> u64| {
                let t = if next(4) == 0 || b + 1 >= n {
                    1 + next(n as u64 - 1 + u64::from(n == 1)) as usize
                } else {
                    b + 1 + next((n - b - 1) as u64) as usize
                };
                format!("b{}", t.min(n - 1).max(1))
            };
            match if n == 1 { 0 } else { next(4) } {
                0 => text += "    ret\n",
                1 => text += &format!("    jmp {}\n", target(&mut next)),
                2 => text += &format!("    br %c, {}, {}\n", target(&mut next), target(&mut next)),
                _ => {
                    text += &format!(
                        "    switch.i32 %c, {}, 1: {}, 2: {}\n",
                        target(&mut next),
                        target(&mut next),
                        target(&mut next)
                    )
                }
            }
        }
        text += "}\n";
        let m = parse_module("t.kir", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let f = &m.funcs[0];
        let tree = DomTree::new(&Cfg::new(f));
        if !quick.compute_layout(f) {
            declined += 1;
            continue;
        }
        answered += 1;
        for b in 0..n as u32 {
            for a in 0..n as u32 {
                assert_eq!(
                    quick.dominates(a, b),
                    tree.dominates(Block(a), Block(b)),
                    "round {round}: {a} dom {b}\n{text}"
                );
            }
        }
    }
    assert!(
        answered > 100 && declined > 20,
        "{answered} answered, {declined} declined"
    );
}

/// Deep nests of loops (each latch far below its header, as in the
/// nested-loops scaling shape) are answered by the one pass over the
/// layout, as the dominator tree answers: the back edges are checked on
/// the numbered tree, not by climbing (which took about `n²` steps, past
/// the pass's budget).
#[test]
fn layout_dominators_answer_deep_loop_nests() {
    use crate::analysis::{Cfg, DomTree};
    let n = 300;
    let mut text = String::from("func @f(%a: i64) -> i64 {\nentry:\n    jmp h0(0)\n");
    for k in 0..n {
        text += &format!("h{k}(%c{k}: i64):\n");
        let next = if k + 1 < n {
            format!("h{}(0)", k + 1)
        } else {
            format!("t{k}")
        };
        text += &format!("    jmp {next}\n");
    }
    for k in (0..n).rev() {
        let out = if k == 0 {
            "exit".to_string()
        } else {
            format!("t{}", k - 1)
        };
        text += &format!(
            "t{k}:\n    %d{k} = add.i64 %c{k}, 1\n    %k{k} = slt.i64 %d{k}, 2\n    br %k{k}, h{k}(%d{k}), {out}\n"
        );
    }
    text += "exit:\n    ret %a\n}\n";
    let m = parse_module("t.kir", &text).unwrap_or_else(|e| panic!("{e}"));
    let f = &m.funcs[0];
    let tree = DomTree::new(&Cfg::new(f));
    let mut quick = dom::QuickDom::default();
    assert!(quick.compute_layout(f), "declined");
    let blocks = f.blocks.len() as u32;
    for b in 0..blocks {
        for a in 0..blocks {
            assert_eq!(
                quick.dominates(a, b),
                tree.dominates(Block(a), Block(b)),
                "{a} dom {b}"
            );
        }
    }
    // An edge back to a block whose dominator does not dominate its
    // source (`q -> s`: `s` has `p` as dominator when passed, but `q` is
    // reached without `p`) is still declined.
    let text = "func @f(%c: i32) {\nentry:\n    br %c, p, q\np:\n    jmp s\ns:\n    ret\nq:\n    jmp s\n}\n";
    let m = parse_module("t.kir", text).unwrap();
    assert!(!quick.compute_layout(&m.funcs[0]));
}

/// A function of `n` independent instructions (`%xI = add.i64 %a, I`),
/// walked as a big function when `n` is at least [`BIG_MIN`].
fn independent(n: usize) -> String {
    let mut t = String::from("func @f(%a: i64) -> i64 {\nentry:\n");
    for i in 0..n {
        t += &format!("    %x{i} = add.i64 %a, {i}\n");
    }
    t += &format!("    ret %x{}\n}}\n", n - 1);
    t
}

#[test]
fn big_functions_check_value_names() {
    for n in [8, BIG_MIN + 8] {
        let text = independent(n);
        assert!(fast(&text));
        let m = parse_module("t.kir", &text).unwrap();
        let f = &m.funcs[0];
        let (v, w) = (f.insts[5].result.unwrap(), f.insts[3].result.unwrap());
        // A name met before.
        let mut dup = m.clone();
        dup.funcs[0].values[v.index()].name = f.values[w.index()].name;
        let mut s = Scratch::default();
        assert!(!accepts(&dup, &dup.funcs[0], &mut s), "{n}");
        assert!(
            error_of(&dup).ends_with("duplicate value name '%x3'"),
            "{n}: {}",
            error_of(&dup)
        );
        // A name of invalid syntax.
        let mut bad = m.clone();
        let name = bad.funcs[0].names.intern("1x");
        bad.funcs[0].values[v.index()].name = Some(name);
        assert!(!accepts(&bad, &bad.funcs[0], &mut s), "{n}");
        assert!(
            error_of(&bad).ends_with("invalid value name '%1x'"),
            "{n}: {}",
            error_of(&bad)
        );
        // A name beyond the table.
        let mut out = m.clone();
        out.funcs[0].values[v.index()].name = Some(Name::from_index(f.names.len()));
        assert!(!accepts(&out, &out.funcs[0], &mut s), "{n}");
        // Nor after a function of more names whose walk stopped at once
        // (its names' marks left where this table has none).
        let mut more = parse_module("t.kir", &independent(n + 40)).unwrap();
        more.funcs[0].insts[0].opcode = Opcode::Ret;
        let mut s2 = Scratch::default();
        assert!(!accepts(&more, &more.funcs[0], &mut s2), "{n}");
        assert!(!accepts(&out, &out.funcs[0], &mut s2), "{n}");
        // The first function's marks do not make the next one's names
        // look met, nor unmet.
        let two = format!("{text}{}", text.replace("@f", "@g"));
        assert!(fast(&two), "{n}");
    }
}

#[test]
fn big_bodies_listed_out_of_order_or_with_gaps() {
    let m = parse_module("t.kir", &independent(BIG_MIN + 8)).unwrap();
    // Out of order: valid, not a layout the pass takes.
    let mut swapped = m.clone();
    swapped.funcs[0].blocks[0].insts.swap(5, 6);
    let mut s = Scratch::default();
    assert!(!accepts(&swapped, &swapped.funcs[0], &mut s));
    verify_module(&swapped).unwrap();
    // Increasing with a gap (an instruction listed nowhere, its value
    // unused): not a run of the table, but taken one by one.
    let mut gap = m.clone();
    gap.funcs[0].blocks[0].insts.remove(5);
    assert!(accepts(&gap, &gap.funcs[0], &mut s));
    verify_module(&gap).unwrap();
    // The terminator listed before the last instruction.
    let mut past = m.clone();
    let insts = &mut past.funcs[0].blocks[0].insts;
    let last = insts.len() - 1;
    insts.swap(last - 1, last);
    assert!(!accepts(&past, &past.funcs[0], &mut s));
}

/// The verifier's message for module `m`.
fn error_of(m: &Module) -> String {
    verify_module(m).unwrap_err().to_string()
}

/// A big function of plain instructions of every kind (binary with
/// values and literals, unary, load, store) over three blocks, with uses
/// of the entry's values, of a dominating block's and of block
/// parameters: the walk of big functions takes most of it in
/// [`Plain::run`].
fn plain_mix() -> String {
    let mut t = String::from(
        "func @f(%a: i64, %b: i32, %p: i64, %x: f64) -> i64 {\nentry:\n    %e0 = add.i64 %a, 1\n",
    );
    for i in 1..32 {
        t += &format!("    %e{i} = mul.i64 %e{}, %a\n", i - 1);
    }
    t += "    %c = slt.i32 %b, 7\n    br %c, mid(%e3), out\nmid(%q: i64):\n";
    for i in 0..36 {
        let prev = if i == 0 {
            "q".to_string()
        } else {
            format!("m{}", i - 1)
        };
        t += &match i % 6 {
            0 => format!("    %m{i} = sub.i64 %{prev}, %e{}\n", i % 20),
            1 => format!("    %m{i} = xor.i64 %{prev}, 4294967296\n"),
            2 => format!("    %m{i} = load.i64 %p, {}\n", 8 * i),
            3 => format!("    store.i64 %{prev}, %p, 8\n    %m{i} = or.i64 %{prev}, %q\n"),
            4 => format!("    %f{i} = fneg.f64 %x\n    %m{i} = shl.i64 %{prev}, 3\n"),
            _ => format!("    %m{i} = and.i64 %{prev}, %e{}\n", i % 32),
        };
    }
    t += "    %w = add.i32 %b, 2147483647\n    ret %m35\nout:\n    ret %e31\n}\n";
    t
}

/// Damages copies of the big function of `text` (`damage` edits the
/// function with a random source `next(n)` in `0..n`) `rounds` times:
/// whatever the precise checks reject, the fast pass must reject too.
/// Returns how many copies the precise checks rejected and how many the
/// fast pass accepted.
fn damage_trials(
    text: &str,
    seed: u64,
    rounds: usize,
    mut damage: impl FnMut(&mut Function, &mut dyn FnMut(u64) -> u64),
) -> (u32, u32) {
    let m = parse_module("t.kir", text).unwrap();
    assert!(m.funcs[0].insts.len() >= BIG_MIN);
    assert!(fast(text));
    verify_module(&m).unwrap();
    let mut next = xorshift(seed);
    let (mut rejected, mut accepted) = (0, 0);
    for _ in 0..rounds {
        let mut bad = m.clone();
        damage(&mut bad.funcs[0], &mut next);
        let f = &bad.funcs[0];
        let mut precise = Scratch::default();
        let invalid = super::super::FuncVerifier::new(&bad, f, &mut precise)
            .run()
            .is_err();
        let mut s = Scratch::default();
        let ok = accepts(&bad, f, &mut s);
        assert!(!(invalid && ok), "accepted an invalid function:\n{f:?}");
        rejected += invalid as u32;
        accepted += ok as u32;
    }
    (rejected, accepted)
}

/// Random damage to the plain instructions of a big function: whatever
/// the precise checks reject, the pass rejects too (and it accepts the
/// undamaged function and some damaged ones that stay valid).
#[test]
fn big_plain_instructions_reject_what_the_verifier_rejects() {
    let (rejected, accepted) =
        damage_trials(&plain_mix(), 0x2545_f491_4f6c_dd1d, 3000, |f, next| {
            let (ninsts, nvalues) = (f.insts.len() as u64, f.values.len() as u64);
            for _ in 0..1 + next(2) {
                let i = next(ninsts) as usize;
                let any_value = Value(next(nvalues + 2) as u32);
                let lit = |k: u64| {
                    let v = [0, 1, -1, 1 << 31, 1 << 32, i64::MIN as i128, 1 << 64][k as usize];
                    Operand::Const(Const::int(v))
                };
                let op = match next(3) {
                    0 => Operand::Value(any_value),
                    1 => lit(next(7)),
                    _ => Operand::Const(Const::float(1.5)),
                };
                let d = &mut f.insts[i];
                match next(7) {
                    0 => match &mut d.kind {
                        InstKind::Binary { args } | InstKind::Store { args, .. } => {
                            args[next(2) as usize] = op
                        }
                        InstKind::Unary { arg } | InstKind::Load { ptr: arg, .. } => *arg = op,
                        _ => {}
                    },
                    1 => {
                        d.ty = [None, Some(Type::I32), Some(Type::I64), Some(Type::F64)]
                            [next(4) as usize]
                    }
                    2 => d.opcode = Opcode::ALL[next(Opcode::ALL.len() as u64) as usize],
                    3 => d.result = [None, Some(any_value)][next(2) as usize],
                    4 => {
                        if let Some(r) = d.result {
                            f.values[r.index()].ty = Type::ALL[next(4) as usize];
                        }
                    }
                    5 => {
                        if let Some(r) = d.result {
                            f.values[r.index()].def = ValueDef::Inst(Inst(next(ninsts) as u32));
                        }
                    }
                    _ => {
                        if let Some(r) = d.result {
                            let other = Value(next(nvalues) as u32);
                            f.values[r.index()].name = f.values[other.index()].name;
                        }
                    }
                }
            }
        });
    assert!(rejected > 1000 && accepted > 100, "{rejected} {accepted}");
}

/// A big function whose blocks form a chain (each block's `br` or `jmp`
/// goes to the next one, with arguments of two types), each block using
/// values of the entry, of earlier blocks and its parameters: the walk
/// of big functions takes it with no dominator tree (`Walk::chain`) and
/// its terminators in [`Plain::jump`].
fn chain_mix() -> String {
    let mut t = String::from("func @f(%a: i64, %x: f64) -> i64 {\nentry:\n");
    t += "    %e0 = add.i64 %a, 1\n    %g0 = fadd.f64 %x, 1.0\n    jmp b1(%e0, %g0)\n";
    let n = 8;
    for k in 1..=n {
        t += &format!("b{k}(%p{k}: i64, %q{k}: f64):\n");
        t += &format!("    %s{k} = add.i64 %p{k}, %e0\n");
        for i in 0..8 {
            let earlier = if k > 1 {
                format!("%s{}", 1 + (k + i) % (k - 1))
            } else {
                "%a".to_string()
            };
            t += &format!("    %t{k}_{i} = xor.i64 %s{k}, {earlier}\n");
        }
        t += &format!("    %h{k} = fmul.f64 %q{k}, %g0\n");
        if k == n {
            t += &format!("    ret %t{k}_7\n");
        } else if k % 2 == 0 {
            t += &format!("    jmp b{}(%t{k}_3, %h{k})\n", k + 1);
        } else {
            t += &format!("    %c{k} = slt.i64 %t{k}_7, 0\n");
            t += &format!(
                "    br %c{k}, b{0}(%t{k}_1, %h{k}), b{0}(%s{k}, %q{k})\n",
                k + 1
            );
        }
    }
    t + "}\n"
}

/// Random damage to the terminators and operands of a big function
/// whose blocks form a chain (targets, arguments, kinds, conditions,
/// uses across blocks): whatever the precise checks reject, the pass
/// rejects too (and it accepts the undamaged function and some damaged
/// ones that stay valid, including chains broken by back edges).
#[test]
fn big_chains_reject_what_the_verifier_rejects() {
    let (rejected, accepted) =
        damage_trials(&chain_mix(), 0x9e37_79b9_7f4a_7c15, 4000, |f, next| {
            let (ninsts, nvalues) = (f.insts.len() as u64, f.values.len() as u64);
            let nblocks = f.blocks.len() as u64;
            for _ in 0..1 + next(2) {
                let any_value = Value(next(nvalues + 2) as u32);
                let op = match next(4) {
                    0 | 1 => Operand::Value(any_value),
                    2 => Operand::Const(Const::int([0, -1, 1 << 40][next(3) as usize])),
                    _ => Operand::Const(Const::float(0.5)),
                };
                let b = next(nblocks) as usize;
                let term = *f.blocks[b].insts.last().unwrap();
                let target = Block(next(nblocks + 1) as u32);
                match next(8) {
                    0 => {
                        let i = next(ninsts) as usize;
                        match &mut f.insts[i].kind {
                            InstKind::Binary { args } => args[next(2) as usize] = op,
                            InstKind::Br { cond, .. } => *cond = op,
                            _ => {}
                        }
                    }
                    1 | 2 => match &mut f.insts[term.index()].kind {
                        InstKind::Jmp { dest } => dest.block = target,
                        InstKind::Br {
                            then_dest,
                            else_dest,
                            ..
                        } => {
                            if next(2) == 0 {
                                then_dest.block = target
                            } else {
                                else_dest.block = target
                            }
                        }
                        _ => {}
                    },
                    3 => {
                        let list = match &f.insts[term.index()].kind {
                            InstKind::Jmp { dest } => Some(dest.args),
                            InstKind::Br { else_dest, .. } => Some(else_dest.args),
                            _ => None,
                        };
                        if let Some(list) = list {
                            let args = f.args_mut(list);
                            if !args.is_empty() {
                                let k = next(args.len() as u64) as usize;
                                args[k] = op;
                            }
                        }
                    }
                    4 => {
                        if let InstKind::Jmp { dest }
                        | InstKind::Br {
                            then_dest: dest, ..
                        } = &mut f.insts[term.index()].kind
                        {
                            dest.args.truncate(next(2) as usize);
                        }
                    }
                    5 => {
                        f.insts[term.index()].kind = match next(3) {
                            0 => InstKind::Ret { value: Some(op) },
                            1 => InstKind::Trap,
                            _ => InstKind::Jmp {
                                dest: BlockCall {
                                    block: target,
                                    args: OpList::EMPTY,
                                },
                            },
                        }
                    }
                    6 => {
                        // A use of another block's value somewhere.
                        let i = next(ninsts) as usize;
                        if let InstKind::Binary { args } = &mut f.insts[i].kind {
                            args[1] = Operand::Value(Value(next(nvalues) as u32));
                        }
                    }
                    _ => {
                        let i = next(ninsts) as usize;
                        f.insts[i].opcode = Opcode::ALL[next(Opcode::ALL.len() as u64) as usize];
                    }
                }
            }
        });
    assert!(rejected > 1000 && accepted > 300, "{rejected} {accepted}");
}

/// A chain (see `Walk::chain`) broken by a block that does not go on to
/// the next one: the blocks after it need not be reachable, so the
/// earlier blocks' values are not theirs without the tree.
#[test]
fn big_chain_ends_where_a_block_does_not_reach_the_next() {
    let mut text = String::from("func @f(%a: i64) -> i64 {\nentry:\n");
    for i in 0..70 {
        text += &format!("    %x{i} = add.i64 %a, {i}\n");
    }
    text += "    jmp b1\nb1:\n    %e = add.i64 %x69, 1\n    ret %e\n";
    text += "b2:\n    %d = add.i64 %e, %x3\n    ret %d\n}\n";
    assert!(!fast(&text));
    assert_eq!(
        error(&text),
        "t.kir:78:18: error: use of %e is not dominated by its definition"
    );
    // Reached from the block before it: valid.
    let reached = text.replace("ret %e\n", "br %e, b2, b2\n");
    let reached = reached.replace("%e = add.i64 %x69, 1", "%e = add.i32 1, 1");
    let reached = reached.replace("%d = add.i64 %e, %x3", "%d = add.i64 %x3, %x3");
    assert!(fast(&reached), "{reached}");
    verify_module(&parse_module("t.kir", &reached).unwrap()).unwrap();
}
