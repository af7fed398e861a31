//! Print/parse round trips: for every `.kir` file under `tests/ir` and
//! `examples` that parses, printing and parsing back gives an equal module,
//! and printing is idempotent. Also a generated 20,000-instruction function.

use kiln::ir::parse::parse_module;
use kiln::ir::print::print_module;
use std::path::{Path, PathBuf};

fn kir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            kir_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "kir") {
            out.push(p);
        }
    }
}

/// Asserts `print → parse` gives an equal module and printing is
/// idempotent; returns the printed text.
fn check_roundtrip(name: &str, text: &str) -> Option<String> {
    let m = parse_module(name, text).ok()?;
    let printed = print_module(&m);
    let m2 = match parse_module(name, &printed) {
        Ok(m2) => m2,
        Err(e) => panic!("{name}: printed text does not parse: {e}\n{printed}"),
    };
    assert!(m == m2, "{name}: reparsed module differs\n{printed}");
    assert_eq!(
        print_module(&m2),
        printed,
        "{name}: printing is not idempotent"
    );
    Some(printed)
}

#[test]
fn files_roundtrip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    kir_files(&root.join("tests/ir"), &mut files);
    kir_files(&root.join("examples"), &mut files);
    let mut parsed = 0;
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        if check_roundtrip(&name, &text).is_some() {
            parsed += 1;
        }
    }
    // tests/ir/parse/ok_every_form.kir at least must parse.
    assert!(parsed >= 1, "no .kir file parsed (of {})", files.len());
}

/// A function of `n` instructions: a loop whose body is a long chain of
/// arithmetic, with uses before definitions in the layout (the exit block
/// comes first) and a switch.
fn big_function(n: usize) -> String {
    let mut s = String::from(
        "extern func @ext(i64) -> i64\nfunc @big(%n: i64) -> i64 {\nentry:\n    jmp head(0, 1)\n\
         exit(%r: i64):\n    ret %r\nhead(%i: i64, %x0: i64):\n    %c = slt.i64 %i, %n\n    br %c, body, exit(%x0)\n\
         body:\n",
    );
    let mut k = 0;
    while k + 8 < n {
        let op = ["add", "mul", "xor", "sub"][k % 4];
        s.push_str(&format!(
            "    %x{} = {op}.i64 %x{}, {}\n",
            k + 1,
            k,
            k as i64 - 7
        ));
        k += 1;
    }
    s.push_str(&format!(
        "    %t = trunc.i32 %x{k}\n    switch.i32 %t, next, 0: next, -1: next\nnext:\n\
         %e = call.i64 @ext(%x{k})\n    call.i64 @ext(15)\n    %i2 = add.i64 %i, 1\n    jmp head(%i2, %e)\n}}\n"
    ));
    s
}

#[test]
fn big_function_roundtrips() {
    let text = big_function(20_000);
    let m = parse_module("big.kir", &text).expect("parses");
    let f = &m.funcs[0];
    assert!(f.num_insts() >= 20_000, "{}", f.num_insts());
    assert_eq!(f.blocks.len(), 5);
    assert_eq!(f.srcmap.num_insts(), f.num_insts());
    let printed = check_roundtrip("big.kir", &text).expect("parses");
    assert!(printed.contains("    %x19991 = xor.i64 %x19990, 19983\n"));
}
