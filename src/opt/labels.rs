//! Labels for the blocks a pass adds ([`super::inline`]'s copies,
//! [`super::licm`]'s preheaders): distinct from every block label of the
//! function, found without copying the labels into a set of `String`s.
//!
//! The labels of a function's blocks are indexed by their text (a
//! [`StrIndex`] over block ids, the text read from the function's names).
//! A new label is interned in the function's name table; a table the
//! parser left unindexed (it files a small function's names only on
//! demand) is first searched by a scan, within a budget proportional to its
//! size, so adding a few blocks does not index every name of the function,
//! and adding many costs no more than indexing once.

use crate::ir::hash::{hash_name, StrIndex};
use crate::ir::{Block, Function, Name};

/// The block labels of one function (see the module docs).
pub struct Labels {
    /// Block ids by label.
    index: StrIndex,
    /// Names the scans may still read before new labels are interned
    /// through the name table's index instead.
    scan_budget: usize,
}

impl Labels {
    /// The labels of `f`'s blocks.
    pub fn of(f: &Function) -> Labels {
        let mut index = StrIndex::new();
        for (k, b) in f.blocks.iter().enumerate() {
            index.insert(k as u32, hash_name(f.names.get(b.name)));
        }
        Labels {
            index,
            scan_budget: 4 * f.names.len() + 256,
        }
    }

    /// Whether some block of `f` is labelled `s`.
    pub fn taken(&self, f: &Function, s: &str) -> bool {
        self.index
            .find(s, hash_name(s), |id| {
                f.names.get(f.blocks[id as usize].name)
            })
            .is_some()
    }

    /// Appends an empty block labelled `label`, which [`Labels::taken`]
    /// says is free.
    pub fn new_block(&mut self, f: &mut Function, label: &str) -> Block {
        let name = self.intern(f, label);
        let b = f.new_block_named(name);
        self.index.insert(b.index() as u32, hash_name(label));
        b
    }

    /// `f.names.intern(s)`: while the budget lasts, a scan finds `s` or it
    /// is appended as new, without indexing the table.
    fn intern(&mut self, f: &mut Function, s: &str) -> Name {
        let n = f.names.len();
        if n > self.scan_budget {
            return f.names.intern(s);
        }
        self.scan_budget -= n;
        match f.names.lookup(s) {
            Some(name) => name,
            None => f.names.push_new(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_module;

    #[test]
    fn new_labels_are_distinct_and_interned_once() {
        let m = parse_module(
            "t",
            "func @f(%x: i64) -> i64 {\nentry:\n    jmp b(%x)\nb(%y: i64):\n    ret %y\n}\n",
        )
        .unwrap();
        let mut f = m.funcs[0].clone();
        let mut labels = Labels::of(&f);
        assert!(labels.taken(&f, "entry") && labels.taken(&f, "b"));
        assert!(!labels.taken(&f, "c"));
        // A label with the text of a value name reuses that name.
        let y = f.names.lookup("y").unwrap();
        let b1 = labels.new_block(&mut f, "y");
        assert_eq!(f.blocks[b1.index()].name, y);
        assert!(labels.taken(&f, "y"));
        let b2 = labels.new_block(&mut f, "c");
        assert_eq!(f.block_name(b2), "c");
        assert!(labels.taken(&f, "c"));
        // The name table still finds every name afterwards.
        assert_eq!(f.names.intern("c"), f.blocks[b2.index()].name);
        assert_eq!(f.names.intern("y"), y);
    }

    #[test]
    fn past_the_budget_labels_go_through_the_index() {
        let m = parse_module("t", "func @f() {\nentry:\n    ret\n}\n").unwrap();
        let mut f = m.funcs[0].clone();
        let mut labels = Labels::of(&f);
        let mut made = Vec::new();
        for k in 0..400 {
            let s = format!("l{k}");
            assert!(!labels.taken(&f, &s));
            made.push(labels.new_block(&mut f, &s));
        }
        for (k, b) in made.into_iter().enumerate() {
            assert_eq!(f.block_name(b), format!("l{k}"));
            assert_eq!(
                f.names.lookup(&format!("l{k}")),
                Some(f.blocks[b.index()].name)
            );
        }
    }
}
