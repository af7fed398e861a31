//! One module's text parsed on two threads ([`parse_module_split`]).
//!
//! The text is cut at a function boundary past its middle: the start of
//! a line `func @` or `local func @` right after a line `}`. Each part is
//! parsed as a module of its own (the second numbering its lines from
//! where it starts), without resolving symbol references; the second
//! part's items are then appended to the first's (ids renumbered) and all
//! the references resolved, in source order, as one parse does.
//!
//! Why the result is the one parse's: a cut at the start of a line is
//! never inside a comment, and one inside a string, or inside an item,
//! leaves the first part unfinished (an error). When the first part parses
//! as whole items, the one parse is at the start of an item at the cut, so
//! the second part reads the same tokens as the same items. Names are a
//! function's own; the module-level checks that span the parts (a symbol
//! defined in both, a reference to a symbol of the other part) are made
//! when they are joined. Whenever anything fails (a part, the join, a
//! reference, the thread), the whole text is parsed again on this thread,
//! so errors (which one, and where) are always those of [`parse_module`].

use super::{parse_module, resolve_symbols, Parser, SymRef, SymSite};
use crate::ir::entities::{DataId, FuncId};
use crate::ir::module::Module;

/// Bytes of text from which a second thread pays for itself: starting
/// one costs about as much as parsing 15 KiB.
pub const SPLIT_MIN: usize = 64 << 10;

/// Parses `text` as [`parse_module`] does (the same module, or the same
/// error), on two threads when the text is at least [`SPLIT_MIN`] bytes
/// and can be cut at a function boundary (see the module docs), else on
/// this thread alone.
pub fn parse_module_split(file: &str, text: &str) -> crate::Result<Module> {
    let Some(at) = (text.len() >= SPLIT_MIN)
        .then(|| split_point(text.as_bytes()))
        .flatten()
    else {
        return parse_module(file, text);
    };
    parse_cut(file, text, at)
}

/// [`parse_module_split`] with the text cut at byte `at`, the start of a
/// line (any line: a cut that is not at an item boundary only costs the
/// parse on two threads, see the module docs).
fn parse_cut(file: &str, text: &str, at: usize) -> crate::Result<Module> {
    let (head, tail) = text.split_at(at);
    std::thread::scope(|s| {
        let second = std::thread::Builder::new().spawn_scoped(s, || {
            // Counted here, beside the first part's parse.
            let line = 1 + count_newlines(head.as_bytes());
            parse_part(file, tail, u32::try_from(line).ok()?, 0)
        });
        let Ok(second) = second else {
            return parse_module(file, text);
        };
        let joined = parse_part(file, head, 1, tail.len()).and_then(|first| {
            let second = second.join().ok().flatten()?;
            join(first, second)
        });
        // On failure the second thread may still be running: the scope
        // waits for it after this parse.
        joined.map_or_else(|| parse_module(file, text), Ok)
    })
}

/// The bytes of a text of `len` bytes where a cut may fall (see
/// [`split_point`]): from a little before the middle, so that the first
/// part, whose thread also joins the parts and, in `kiln check`, verifies
/// the module-level rules, is as long to finish as the second (on 20,000
/// small functions, cut at the middle, this thread ran 136.6 M instructions
/// and the other 129.0 M), to the start of the last quarter (a cut further
/// on would leave the second thread little to do).
fn cut_range(len: usize) -> (usize, usize) {
    (len / 2 - len / 70, len - len / 4)
}

/// Where to cut `b`: the first line `func @` or `local func @` right after
/// a line `}` in [`cut_range`].
///
/// It looks only at the `}` bytes (found a word at a time, see
/// [`find_byte`]): a text of one large function has a single `}` at its
/// end, and this scan of a quarter of it is all the split costs there.
fn split_point(b: &[u8]) -> Option<usize> {
    let (from, to) = cut_range(b.len());
    // The `}` ends a line whose newline is at `from` or later (and before
    // `to`), so it is at `from - 1` or later; its line starts with it
    // (the byte before is a newline).
    let mut i = from.max(2) - 1;
    while i + 1 < to {
        let close = i + find_byte(&b[i..to - 1], b'}')?;
        if b[close - 1] == b'\n' && b[close + 1] == b'\n' {
            let rest = &b[close + 2..];
            if rest.starts_with(b"func @") || rest.starts_with(b"local func @") {
                return Some(close + 2);
            }
        }
        i = close + 1;
    }
    None
}

/// The index of the first byte `x` in `b`, eight bytes at a time: a word
/// holds `x` when the word XOR `x` repeated has a zero byte (the classic
/// test `(w - 0x01..01) & !w & 0x80..80`, exact for "some byte is zero").
fn find_byte(b: &[u8], x: u8) -> Option<usize> {
    const LO: u64 = u64::from_le_bytes([1; 8]);
    const HI: u64 = u64::from_le_bytes([0x80; 8]);
    let rep = LO * u64::from(x);
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes) ^ rep;
        if w.wrapping_sub(LO) & !w & HI != 0 {
            break;
        }
        at += 8;
    }
    b[at..].iter().position(|&c| c == x).map(|k| at + k)
}

/// The number of `\n` bytes in `b` (in runs the compiler vectorizes).
fn count_newlines(b: &[u8]) -> usize {
    b.chunks(255)
        .map(|c| c.iter().fold(0u8, |n, &x| n + u8::from(x == b'\n')) as usize)
        .sum()
}

/// A part of a module's text parsed as a module of its own, its symbol
/// references not yet resolved.
struct Part<'a> {
    module: Module,
    sym_refs: Vec<SymRef<'a>>,
}

/// Parses `text`, whose first line is `first_line`, as whole items; `None`
/// on any error. `after`: bytes of the module's text after it (see
/// [`Parser::after`]).
fn parse_part<'a>(file: &'a str, text: &'a str, first_line: u32, after: usize) -> Option<Part<'a>> {
    let mut p = Parser::start(file, text, first_line, None, after).ok()?;
    let result = p.module_items();
    p.fs.cache();
    result.ok()?;
    Some(Part {
        module: p.module,
        sym_refs: p.sym_refs,
    })
}

/// `first` with `second`'s items after its own and every reference
/// resolved; `None` when a symbol is defined in both or a reference names
/// no symbol.
fn join<'a>(mut first: Part<'a>, second: Part<'a>) -> Option<Module> {
    let (f0, d0) = (first.module.funcs.len(), first.module.datas.len());
    if !first.module.append(second.module) {
        return None;
    }
    let mut refs = first.sym_refs;
    refs.extend(second.sym_refs.into_iter().map(|mut r| {
        r.site = match r.site {
            SymSite::Inst(f, i) => SymSite::Inst(FuncId::new(f.index() + f0), i),
            SymSite::Data(d, i) => SymSite::Data(DataId::new(d.index() + d0), i),
        };
        r
    }));
    resolve_symbols(&mut first.module, refs, None).ok()?;
    Some(first.module)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module whose items refer to each other across any cut: calls and
    /// addresses forwards and backwards, data pointing at functions,
    /// imports, local items, names reused in different functions.
    const SAMPLE: &str = "; a sample
extern func @putchar(i32) -> i32
const @msg = { i8 \"hi\\n\\0\" }

func @main() -> i32 {
entry:
    %p = addr @msg
    %r = call.i32 @twice(3)
    %q = addr @table
    ret %r
}
local func @twice(%x: i32) -> i32 {
entry:
    %y = add.i32 %x, %x
    %z = call.i32 @putchar(%y)
    br %z, a, b(%y)
a:
    ret %x
b(%w: i32):
    ret %w
}
data @table = {
    @main, @twice+8,
    i32 1 2
    3,
}

func @last(%x: i64) -> i64 {
entry:
    %c = call.i32 @main()
    switch.i64 %x, d, 0: e, 1: d
e:
    ret %x
d:
    %p = addr @table
    ret %p
}
extern data @ext
func @tail() {
entry:
    %p = addr @ext
    %q = call.i64 @last(%p)
    ret
}
";

    /// Everything a module holds, locations and names included.
    fn dump(r: &crate::Result<Module>) -> String {
        match r {
            Ok(m) => format!(
                "{:?}",
                (&m.name, &m.symbols, &m.symbol_locs, &m.funcs, &m.datas)
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Every start of a line of `text` as a cut gives what one parse
    /// gives; `every`: only each `every`th line (and every function's).
    fn agrees_at_every_cut(text: &str, every: usize) {
        let want = dump(&parse_module("t.kir", text));
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
        for (n, at) in starts.enumerate() {
            let rest = &text[at..];
            if n % every != 0 && !rest.starts_with("func") && !rest.starts_with("local") {
                continue;
            }
            let got = dump(&parse_cut("t.kir", text, at));
            assert_eq!(got, want, "cut at byte {at} of {text:?}");
        }
    }

    #[test]
    fn a_cut_at_any_line_gives_the_one_parse() {
        assert!(parse_module("t.kir", SAMPLE).is_ok());
        agrees_at_every_cut(SAMPLE, 1);
        // Without a final newline, and with a symbol defined in both parts,
        // a reference to no symbol, an error in each part.
        agrees_at_every_cut(SAMPLE.trim_end(), 1);
        agrees_at_every_cut(
            &format!("{SAMPLE}func @twice() {{\nentry:\n    ret\n}}\n"),
            1,
        );
        agrees_at_every_cut(&SAMPLE.replace("@twice(3)", "@nowhere(3)"), 1);
        agrees_at_every_cut(&SAMPLE.replace("%w: i32", "%w i32"), 1);
        agrees_at_every_cut(&SAMPLE.replace("%q = call.i64", "%q = call.i64 @"), 1);
    }

    #[test]
    fn every_damaged_byte_gives_the_one_parses_error() {
        // Each byte replaced by one that closes a construct or ends a
        // line, or removed; the text cut at every fourth line and at each
        // function.
        for i in 0..SAMPLE.len() {
            if !SAMPLE.is_char_boundary(i) || !SAMPLE.is_char_boundary(i + 1) {
                continue;
            }
            for with in ["}", "\n", ""] {
                let text = format!("{}{with}{}", &SAMPLE[..i], &SAMPLE[i + 1..]);
                agrees_at_every_cut(&text, 4);
            }
        }
    }

    #[test]
    fn a_large_text_is_cut_and_parsed_as_one() {
        let mut text = String::from(SAMPLE);
        let mut k = 0;
        while text.len() < 2 * SPLIT_MIN || k < 1500 {
            text.push_str(&format!(
                "func @f{k}(%a: i64) -> i64 {{\nentry:\n    %b = call.i64 @f{}(%a)\n    ret %b\n}}\n",
                (k * 7919) % 1500
            ));
            k += 1;
        }
        let at = split_point(text.as_bytes()).unwrap();
        assert!(at > cut_range(text.len()).0);
        let one = parse_module("t.kir", &text);
        assert!(one.is_ok());
        assert_eq!(dump(&parse_module_split("t.kir", &text)), dump(&one));
        // Lookups by name find the second part's symbols, under their ids.
        let m = parse_module_split("t.kir", &text).unwrap();
        let n = m.symbols.len();
        for name in ["main", "tail", "f0", "f1499", "msg", "ext"] {
            let id = m.symbol(name).unwrap();
            assert_eq!(m.sym(id).name, name);
        }
        assert_eq!(m.symbol(&format!("f{k}")), None);
        assert_eq!(n, one.unwrap().symbols.len());
    }

    /// The byte-at-a-time scan `split_point` had before [`find_byte`].
    fn split_point_by_lines(b: &[u8]) -> Option<usize> {
        let (from, to) = cut_range(b.len());
        let mut i = from.max(2);
        while i < to {
            let nl = i + b[i..to].iter().position(|&c| c == b'\n')?;
            let line = nl + 1;
            if b[nl - 1] == b'}' && b[nl - 2] == b'\n' {
                let rest = &b[line..];
                if rest.starts_with(b"func @") || rest.starts_with(b"local func @") {
                    return Some(line);
                }
            }
            i = line;
        }
        None
    }

    #[test]
    fn the_cut_is_found_where_a_scan_of_every_line_finds_it() {
        // Texts where the `}` lines fall at every offset around the middle
        // and the last quarter's bounds, with `}` bytes that do not end a
        // line (`{}` in a comment, `}` glued to a line), and none at all.
        let item = "func @f(%a: i64) -> i64 {\nentry:\n    ret %a\n}\n";
        for pad in 0..40 {
            for items in 0..6 {
                let mut t = format!("; {}\n", "x".repeat(pad));
                for k in 0..items {
                    t.push_str(if k % 2 == 0 {
                        item
                    } else {
                        "; {} }x\n}\nlocal func @g() {\n}\n"
                    });
                }
                for len in (0..=t.len()).rev().step_by(3) {
                    let b = &t.as_bytes()[..len];
                    assert_eq!(split_point(b), split_point_by_lines(b), "{:?}", &t[..len]);
                }
            }
        }
        let one = format!(
            "func @f() {{\n{}}}\n",
            "    %a = iconst.i64 1\n".repeat(100)
        );
        assert_eq!(split_point(one.as_bytes()), None);
    }

    #[test]
    fn a_byte_is_found_in_any_word_position() {
        for len in 0..40 {
            for at in 0..=len {
                // Bytes one bit away from `}` (0x7d), which a wrong word
                // test could take for it, and `}` with its top bit set.
                let mut b: Vec<u8> = (0..len).map(|k| [0x7c, 0x7f, 0xfd, 0x3d][k % 4]).collect();
                if at < len {
                    b[at] = b'}';
                    if at + 2 < len {
                        b[at + 2] = b'}';
                    }
                }
                let want = (at < len).then_some(at);
                assert_eq!(find_byte(&b, b'}'), want, "{len} {at}");
            }
        }
    }

    #[test]
    fn newlines_are_counted_across_runs() {
        for len in [0, 1, 254, 255, 256, 1000] {
            let text: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { b'\n' } else { b'x' })
                .collect();
            let want = text.iter().filter(|&&c| c == b'\n').count();
            assert_eq!(count_newlines(&text), want, "length {len}");
        }
        assert_eq!(count_newlines(&[b'\n'; 600]), 600);
    }

    #[test]
    fn the_cut_is_at_a_function_after_a_closing_line() {
        let f = "func @f() {\nentry:\n    ret\n}\n";
        let text = f.repeat(8);
        let at = split_point(text.as_bytes()).unwrap();
        assert!(at >= cut_range(text.len()).0 && text[at..].starts_with("func @"));
        assert_eq!(&text[at - 2..at], "}\n");
        // `local func` too; a `}` that is not alone on its line is no cut.
        let local = "local func @g() {\nentry:\n    ret\n}\n".repeat(8);
        assert!(local[split_point(local.as_bytes()).unwrap()..].starts_with("local func @"));
        let glued = "func @f() {\nentry:\n    ret }\n".repeat(8);
        assert_eq!(split_point(glued.as_bytes()), None);
    }
}
