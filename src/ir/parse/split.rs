//! One module's text parsed on two threads ([`parse_module_split`]).
//!
//! The text is cut into parts at function boundaries: starts of a line
//! `func @` or `local func @` right after a line `}` (see
//! [`part_bounds`]). Each part is parsed as a module of its own
//! (numbering its lines from where it starts), without resolving symbol
//! references; each part's items are then appended to those of the parts
//! before it (ids renumbered) and all the references resolved, in source
//! order, as one parse does. The two threads take the parts in order,
//! each the next one left, and append them as soon as the parts before
//! are appended.
//!
//! Why the result is the one parse's: a cut at the start of a line is
//! never inside a comment, and one inside a string, or inside an item,
//! leaves the part before it unfinished (an error). When the parts before
//! a cut parse as whole items, the one parse is at the start of an item at
//! the cut, so the part after it reads the same tokens as the same items.
//! Names are a function's own; the module-level checks that span the
//! parts (a symbol defined in two, a reference to a symbol of another
//! part) are made when they are joined. Whenever anything fails (a part,
//! a join, a reference, the thread), the whole text is parsed again on
//! this thread, so errors (which one, and where) are always those of
//! [`parse_module`].

use super::{parse_module, resolve_symbols, Parser, SymRef, SymSite};
use crate::ir::entities::{DataId, FuncId};
use crate::ir::module::Module;
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Mutex;

/// Bytes of text from which a second thread pays for itself: starting
/// one costs about as much as parsing 15 KiB.
pub const SPLIT_MIN: usize = 64 << 10;

/// Parses `text` as [`parse_module`] does (the same module, or the same
/// error), on two threads when the text is at least [`SPLIT_MIN`] bytes
/// and can be cut at a function boundary (see the module docs), else on
/// this thread alone.
pub fn parse_module_split(file: &str, text: &str) -> crate::Result<Module> {
    if text.len() < SPLIT_MIN || split_point(text.as_bytes()).is_none() {
        return parse_module(file, text);
    }
    parse_parts(file, text, &part_bounds(text.as_bytes()))
}

/// [`parse_module_split`] with the text cut at byte `at`, the start of a
/// line (any line: a cut that is not at an item boundary only costs the
/// parse on two threads, see the module docs).
#[cfg(test)]
fn parse_cut(file: &str, text: &str, at: usize) -> crate::Result<Module> {
    parse_parts(file, text, &[0, at, text.len()])
}

/// Bytes below which a part is not cut in two (see [`part_bounds`]).
const PART_MIN: usize = 16 << 10;

/// Where the parts of `b` start, and its length last (see
/// [`parse_parts`]), for a text with a function boundary past its first
/// quarter (one found by [`split_point`]): at least two parts.
///
/// The two threads take the parts in order, each the next one not taken
/// yet, so that a thread slowed down (this machine's processors at times
/// run at half speed for a second or more, or one is shared with another
/// process) takes fewer of them and neither waits long for the other at
/// the end: each part is a quarter of the text left before it (pairs of
/// parts halve it), down to [`PART_MIN`] bytes, the last one the rest.
/// Each cut is the first function boundary at or after its place; the
/// search never looks at a byte twice.
fn part_bounds(b: &[u8]) -> Vec<usize> {
    let len = b.len();
    let mut bounds = vec![0];
    let mut at = 0;
    while len - at >= 2 * PART_MIN {
        let want = at + ((len - at) / 4).max(PART_MIN);
        let Some(cut) = boundary_in(b, want, len) else {
            break;
        };
        bounds.push(cut);
        at = cut;
    }
    bounds.push(len);
    bounds
}

/// The parts of a text parsed on two threads (see [`parse_parts`]).
struct Parts<'a> {
    file: &'a str,
    text: &'a str,
    bounds: &'a [usize],
    /// The next part to take.
    next: AtomicUsize,
    /// Each part's first line, once known (0 before): the thread that takes
    /// a part counts its lines and sets the next part's.
    lines: Vec<AtomicU64>,
    /// Whether a part or a join failed (the parts left are not parsed).
    failed: AtomicBool,
    joined: Mutex<Joined<'a>>,
}

/// The parts parsed and joined so far.
struct Joined<'a> {
    /// Parts parsed, not yet joined, by index.
    ready: Vec<Option<Part<'a>>>,
    /// The first parts joined (`count` of them), if any.
    head: Option<Part<'a>>,
    count: usize,
    /// Whether a thread is joining parts (outside the lock).
    joining: bool,
}

/// Parses `text` cut at `bounds` (increasing, from 0 to the length, each
/// the start of a line) on this thread and a second one, then joins the
/// parts (see the module docs); the outcome is [`parse_module`]'s. Each
/// thread takes the next part left (see [`part_bounds`]) and, when the
/// parts before one it parsed are joined, joins it to them, so that the
/// joins are done while the other thread still parses.
fn parse_parts(file: &str, text: &str, bounds: &[usize]) -> crate::Result<Module> {
    let n = bounds.len() - 1;
    let parts = Parts {
        file,
        text,
        bounds,
        next: AtomicUsize::new(0),
        lines: (0..=n).map(|i| AtomicU64::new(u64::from(i == 0))).collect(),
        failed: AtomicBool::new(false),
        joined: Mutex::new(Joined {
            ready: (0..n).map(|_| None).collect(),
            head: None,
            count: 0,
            joining: false,
        }),
    };
    std::thread::scope(|s| {
        // A thread that cannot start leaves every part to this one.
        let _ = std::thread::Builder::new().spawn_scoped(s, || parts.take());
        parts.take();
    });
    let joined = parts.joined.into_inner().ok();
    let whole = joined
        .filter(|j| j.count == n && !parts.failed.load(Relaxed))
        .and_then(|j| j.head)
        .and_then(|mut head| {
            resolve_symbols(&mut head.module, head.sym_refs, None).ok()?;
            Some(head.module)
        });
    whole.map_or_else(|| parse_module(file, text), Ok)
}

impl<'a> Parts<'a> {
    /// Takes parts until none is left (or one failed), parsing and joining
    /// them.
    fn take(&self) {
        let n = self.bounds.len() - 1;
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= n || self.failed.load(Relaxed) {
                return;
            }
            let (from, to) = (self.bounds[i], self.bounds[i + 1]);
            let part = &self.text[from..to];
            // Set by the thread that took part `i - 1` right after taking
            // it (a count of its newlines, a few µs).
            let mut first = self.lines[i].load(Acquire);
            while first == 0 {
                std::hint::spin_loop();
                std::thread::yield_now();
                first = self.lines[i].load(Acquire);
            }
            self.lines[i + 1].store(first + count_newlines(part.as_bytes()) as u64, Release);
            // The first part's tables are made for the whole text (the
            // others are appended to them).
            let after = if i == 0 { self.text.len() - to } else { 0 };
            let parsed = u32::try_from(first)
                .ok()
                .and_then(|line| parse_part(self.file, part, line, after));
            match parsed {
                Some(p) => self.join_ready(i, p),
                None => self.failed.store(true, Relaxed),
            }
        }
    }

    /// Files part `i` and joins every part that can be joined now, unless
    /// another thread is doing that (it then joins this one too).
    fn join_ready(&self, i: usize, part: Part<'a>) {
        let lock = || self.joined.lock().unwrap_or_else(|e| e.into_inner());
        let mut j = lock();
        j.ready[i] = Some(part);
        if j.joining {
            return;
        }
        j.joining = true;
        loop {
            let k = j.count;
            let Some(next) = j.ready.get_mut(k).and_then(Option::take) else {
                j.joining = false;
                return;
            };
            let head = j.head.take();
            drop(j);
            let head = match head {
                None => Some(next),
                Some(head) => join(head, next),
            };
            j = lock();
            if head.is_none() {
                self.failed.store(true, Relaxed);
                j.joining = false;
                return;
            }
            j.head = head;
            j.count = k + 1;
        }
    }
}

/// The bytes of a text of `len` bytes where [`split_point`] looks for a
/// function boundary, which decides whether the text is parsed in parts:
/// from a little before the middle to the start of the last quarter (a
/// text of one large function has a single `}` at its end, and this scan
/// is all the split costs there).
fn cut_range(len: usize) -> (usize, usize) {
    (len / 2 - len / 70, len - len / 4)
}

/// A function boundary of `b` in [`cut_range`] (see [`boundary_in`]), if
/// any: the text is then parsed in parts.
fn split_point(b: &[u8]) -> Option<usize> {
    let (from, to) = cut_range(b.len());
    boundary_in(b, from, to)
}

/// The first function boundary of `b` (the start of a line `func @` or
/// `local func @` right after a line `}`) whose line `}` ends at byte
/// `from` or later and before `to` (`from <= to <= b.len()`).
///
/// It looks only at the `}` bytes (found a word at a time, see
/// [`find_byte`]).
fn boundary_in(b: &[u8], from: usize, to: usize) -> Option<usize> {
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

/// `first` with `second`'s items after its own, their references still
/// to resolve; `None` when a symbol is defined in both.
fn join<'a>(mut first: Part<'a>, second: Part<'a>) -> Option<Part<'a>> {
    let (f0, d0) = (first.module.funcs.len(), first.module.datas.len());
    if !first.module.append(second.module) {
        return None;
    }
    first
        .sym_refs
        .extend(second.sym_refs.into_iter().map(|mut r| {
            r.site = match r.site {
                SymSite::Inst(f, i) => SymSite::Inst(FuncId::new(f.index() + f0), i),
                SymSite::Data(d, i) => SymSite::Data(DataId::new(d.index() + d0), i),
            };
            r
        }));
    Some(first)
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
                agrees_in_parts(&text, 1);
                agrees_in_parts(&text, 3);
            }
        }
    }

    /// The text cut at the start of every `every`th line at once (many
    /// parts, most of them cut inside an item) gives what one parse gives.
    fn agrees_in_parts(text: &str, every: usize) {
        let want = dump(&parse_module("t.kir", text));
        let mut bounds: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .step_by(every)
            .filter(|&b| b < text.len())
            .collect();
        bounds.push(text.len());
        let got = dump(&parse_parts("t.kir", text, &bounds));
        assert_eq!(got, want, "cut at {bounds:?} of {text:?}");
    }

    #[test]
    fn a_text_cut_into_many_parts_gives_the_one_parse() {
        for every in [1, 2, 3, 5] {
            agrees_in_parts(SAMPLE, every);
            agrees_in_parts(SAMPLE.trim_end(), every);
            agrees_in_parts(
                &format!("{SAMPLE}func @twice() {{\nentry:\n    ret\n}}\n"),
                every,
            );
            agrees_in_parts(&SAMPLE.replace("@twice(3)", "@nowhere(3)"), every);
            agrees_in_parts(&SAMPLE.replace("%w: i32", "%w i32"), every);
        }
        // Only at function boundaries: every part parses, and the parts
        // are joined (references across them resolved).
        let mut bounds = vec![0];
        bounds.extend(SAMPLE.match_indices("\nfunc @").map(|(i, _)| i + 1));
        bounds.extend(SAMPLE.match_indices("\nlocal func @").map(|(i, _)| i + 1));
        bounds.sort_unstable();
        bounds.push(SAMPLE.len());
        assert!(bounds.len() > 4, "{bounds:?}");
        let one = parse_module("t.kir", SAMPLE);
        assert!(one.is_ok());
        assert_eq!(dump(&parse_parts("t.kir", SAMPLE, &bounds)), dump(&one));
    }

    #[test]
    fn parts_are_cut_at_functions_and_shrink_towards_the_end() {
        let mut text = String::new();
        let mut k = 0;
        while text.len() < 40 * PART_MIN {
            text.push_str(&format!(
                "func @f{k}(%a: i64) -> i64 {{\nentry:\n    %b = add.i64 %a, {k}\n    ret %b\n}}\n"
            ));
            k += 1;
        }
        let b = part_bounds(text.as_bytes());
        let len = text.len();
        assert_eq!((b[0], b[b.len() - 1]), (0, len));
        assert!(b.len() > 8, "{} parts", b.len() - 1);
        for w in b.windows(2) {
            assert!(w[0] < w[1], "{b:?}");
        }
        for &cut in &b[1..b.len() - 1] {
            assert!(text[..cut].ends_with("}\n") && text[cut..].starts_with("func @"));
        }
        // A quarter first, then smaller parts; the last ones small.
        let size = |i: usize| b[i + 1] - b[i];
        assert!(size(0) >= len / 4 && size(0) < len / 4 + 100, "{b:?}");
        assert!(
            size(2) < size(0) && size(b.len() - 2) < 3 * PART_MIN,
            "{b:?}"
        );
        assert_eq!(
            dump(&parse_module_split("t.kir", &text)),
            dump(&parse_module("t.kir", &text))
        );
        // One large function has no boundary: one part, the whole text.
        let one = format!(
            "func @f() {{\nentry:\n{}    ret\n}}\n",
            "    %x = iconst.i64 1\n".repeat(8000)
        );
        assert_eq!(part_bounds(one.as_bytes()), [0, one.len()]);
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
