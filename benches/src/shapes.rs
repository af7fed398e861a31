//! Generators for the "compile scaling" table: one `.kir` module per shape
//! and size N, each exporting `@main(i64) -> i64` so the same text can be run
//! by the interpreter and by compiled code.
//!
//! The shapes are the ones that used to make the back end super-linear
//! (issue 9): a large function ([`crate::generated_function`]), N block
//! arguments on one edge (a parallel move with one long cycle), N nested
//! loops (every loop's values live through all inner loops), an N-way
//! `switch` inside a loop (N blocks joining at one latch), and N small
//! functions calling each other in one module (per-function fixed costs).
//! Every loop runs a small, fixed number of times, so running a shape is
//! linear in N too.

use std::fmt::Write;

/// One shape of the scaling table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// [`crate::generated_function`] (a loop around straight-line blocks).
    Generated,
    /// N block arguments on one loop back edge, rotated by one.
    BlockArgs,
    /// N nested loops.
    NestedLoops,
    /// An N-way `switch` in a loop.
    Switch,
    /// N small functions in one module.
    SmallFunctions,
}

impl Shape {
    /// Every shape, in table order.
    pub const ALL: [Shape; 5] = [
        Shape::Generated,
        Shape::BlockArgs,
        Shape::NestedLoops,
        Shape::Switch,
        Shape::SmallFunctions,
    ];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Generated => "generated function",
            Shape::BlockArgs => "N block arguments on one edge",
            Shape::NestedLoops => "N nested loops",
            Shape::Switch => "N-way switch in a loop",
            Shape::SmallFunctions => "N small functions",
        }
    }

    /// The module text of this shape at size `n`.
    pub fn text(self, n: usize) -> String {
        self.variant(n, 0)
    }

    /// How many different modules of one size [`Shape::variant`] makes.
    ///
    /// The generated function is random: compiling the same one over and
    /// over lets the processor's branch predictors learn that one compile,
    /// which at N = 1,000 (about a million host instructions) they largely
    /// do and at 100,000 cannot, so timing many compiles of one module
    /// flatters the small sizes. Its variants are other draws of the same
    /// size. The other shapes are regular by construction (every block
    /// alike), and have one variant.
    pub fn variants(self) -> usize {
        match self {
            Shape::Generated => usize::MAX,
            _ => 1,
        }
    }

    /// Module text of variant `k` of this shape at size `n` (`k` is taken
    /// modulo [`Shape::variants`]; variant 0 is [`Shape::text`]).
    pub fn variant(self, n: usize, k: usize) -> String {
        match self {
            Shape::Generated => generated_main(n, k),
            Shape::BlockArgs => block_args(n),
            Shape::NestedLoops => nested_loops(n),
            Shape::Switch => switch_in_loop(n),
            Shape::SmallFunctions => small_functions(n),
        }
    }
}

/// [`crate::generated_variant`] `k` with a `@main` calling it.
fn generated_main(n: usize, k: usize) -> String {
    let mut s = crate::generated_variant(n, k as u64);
    s.push_str(
        "\nfunc @main(%a: i64) -> i64 {\nentry:\n    %r = call.i64 @f(%a, 7)\n    ret %r\n}\n",
    );
    s
}

/// `n` values passed around a loop's back edge rotated by one position (one
/// cycle of length `n` in the parallel move), then summed.
pub fn block_args(n: usize) -> String {
    let n = n.max(2);
    let mut s = String::new();
    s.push_str("func @main(%a: i64) -> i64 {\nentry:\n");
    for i in 0..n {
        let _ = writeln!(s, "    %v{i} = add.i64 %a, {i}");
    }
    s.push_str("    jmp head(0");
    for i in 0..n {
        let _ = write!(s, ", %v{i}");
    }
    s.push_str(")\nhead(%k: i64");
    for i in 0..n {
        let _ = write!(s, ", %p{i}: i64");
    }
    s.push_str("):\n    %k2 = add.i64 %k, 1\n    %more = slt.i64 %k2, 3\n    br %more, head(%k2");
    for i in 0..n {
        let _ = write!(s, ", %p{}", (i + 1) % n);
    }
    s.push_str("), exit\nexit:\n");
    // A weighted sum, so that the rotation shows in the result.
    let _ = writeln!(s, "    %s0 = mul.i64 %p0, 1");
    for i in 1..n {
        let _ = writeln!(s, "    %m{i} = mul.i64 %p{i}, {}", i + 1);
        let _ = writeln!(s, "    %s{i} = add.i64 %s{}, %m{i}", i - 1);
    }
    let _ = writeln!(s, "    ret %s{}\n}}", n - 1);
    s
}

/// `n` loops nested in each other, each running once (its back edge is
/// there, not taken: running it stays linear); loop `i` defines `%x{i}` in
/// its header and uses it in its latch, after all inner loops.
pub fn nested_loops(n: usize) -> String {
    let n = n.max(1);
    let mut s = String::new();
    s.push_str("func @main(%a: i64) -> i64 {\nentry:\n    jmp h0(0, %a)\n");
    for i in 0..n {
        let prev = if i == 0 {
            "%a".to_string()
        } else {
            format!("%x{}", i - 1)
        };
        let _ = writeln!(s, "h{i}(%c{i}: i64, %acc{i}: i64):");
        let _ = writeln!(s, "    %x{i} = add.i64 %c{i}, {prev}");
        if i + 1 < n {
            let _ = writeln!(s, "    jmp h{}(0, %acc{i})", i + 1);
        } else {
            let _ = writeln!(s, "    jmp t{i}(%acc{i})");
        }
    }
    for i in (0..n).rev() {
        let _ = writeln!(s, "t{i}(%r{i}: i64):");
        let _ = writeln!(s, "    %y{i} = xor.i64 %r{i}, %x{i}");
        let _ = writeln!(s, "    %d{i} = add.i64 %c{i}, 1");
        let _ = writeln!(s, "    %k{i} = slt.i64 %d{i}, 1");
        let after = if i == 0 {
            "exit(%y0)".to_string()
        } else {
            format!("t{}(%y{i})", i - 1)
        };
        let _ = writeln!(s, "    br %k{i}, h{i}(%d{i}, %y{i}), {after}");
    }
    s.push_str("exit(%res: i64):\n    ret %res\n}\n");
    s
}

/// A loop of 3 iterations around an `n`-way `switch` whose cases each add
/// their own constant and jump to a shared latch.
pub fn switch_in_loop(n: usize) -> String {
    let n = n.max(1);
    let mut s = String::new();
    s.push_str("func @main(%a: i64) -> i64 {\nentry:\n    jmp head(0, %a)\n");
    s.push_str("head(%k: i64, %acc: i64):\n    %h = mul.i64 %acc, 7\n    %sel = and.i64 %h, ");
    let _ = writeln!(s, "{}", n.next_power_of_two() - 1);
    s.push_str("    switch.i64 %sel, dflt");
    for i in 0..n {
        let _ = write!(s, ", {i}: c{i}");
    }
    s.push('\n');
    for i in 0..n {
        let _ = writeln!(
            s,
            "c{i}:\n    %v{i} = add.i64 %acc, {}\n    jmp latch(%v{i})",
            i * 3 + 1
        );
    }
    s.push_str("dflt:\n    %vd = sub.i64 %acc, 1\n    jmp latch(%vd)\n");
    s.push_str(
        "latch(%nv: i64):\n    %k2 = add.i64 %k, 1\n    %more = slt.i64 %k2, 3\n    br %more, head(%k2, %nv), exit\nexit:\n    ret %nv\n}\n",
    );
    s
}

/// `n` functions, each adding its number and calling the previous one;
/// `@main` calls the last.
pub fn small_functions(n: usize) -> String {
    let n = n.max(1);
    let mut s = String::new();
    s.push_str("func @f0(%x: i64) -> i64 {\nentry:\n    %y = add.i64 %x, 1\n    ret %y\n}\n");
    for i in 1..n {
        let _ = writeln!(
            s,
            "local func @f{i}(%x: i64) -> i64 {{\nentry:\n    %y = xor.i64 %x, {i}\n    %z = call.i64 @f{}(%y)\n    ret %z\n}}",
            i - 1
        );
    }
    // Called through a chain of depth n would need a deep stack: @main calls
    // only a function near the start of the chain.
    let _ = writeln!(
        s,
        "func @main(%a: i64) -> i64 {{\nentry:\n    %r = call.i64 @f{}(%a)\n    ret %r\n}}",
        (n - 1).min(50)
    );
    s
}
