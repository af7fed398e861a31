//! Value substitution: "every use of `v` may read `op` instead", recorded
//! by the passes and applied to operands as they are visited.
//!
//! Invariants:
//! - a substitution never removes a definition: when `v` is replaced, the
//!   instruction defining `v` stays until [`super::dce`] finds it unused;
//! - positions that cannot hold a literal (the source of `sitof`, `uitof`,
//!   `ftosi`, `ftoui`, every operand of an indirect call) take only value
//!   replacements: there a value whose chain ends in a literal keeps the
//!   last value of its chain, whose definition still exists;
//! - chains never cycle: [`Subst::set`] refuses a replacement that leads
//!   back to the value itself, and resolution compresses paths, so a
//!   lookup is amortized O(1).

use crate::ir::{Callee, Function, Inst, InstData, InstKind, Opcode, Operand, Value};

/// A substitution map over one function's values.
#[derive(Clone, Debug, Default)]
pub struct Subst {
    /// `to[v]` is `v`'s replacement, `Operand::Value(v)` when none.
    to: Vec<Operand>,
    changed: bool,
    /// How many replacements were recorded.
    sets: u32,
}

impl Subst {
    /// The identity map over `n` values.
    pub fn new(n: usize) -> Subst {
        Subst {
            to: (0..n).map(|i| Operand::Value(Value::new(i))).collect(),
            changed: false,
            sets: 0,
        }
    }

    /// Makes this the identity map over `n` values, reusing the storage.
    pub fn reset(&mut self, n: usize) {
        self.to.clear();
        self.changed = false;
        self.sets = 0;
        self.grow(n);
    }

    /// Extends the map to `n` values (values created after `new`).
    pub fn grow(&mut self, n: usize) {
        while self.to.len() < n {
            self.to.push(Operand::Value(Value::new(self.to.len())));
        }
    }

    /// Whether any replacement was recorded.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Records that uses of `v` may read `op`. Ignored when `op` resolves
    /// to `v` itself.
    pub fn set(&mut self, v: Value, op: Operand) {
        let op = self.resolve(op);
        if op == Operand::Value(v) || v.index() >= self.to.len() {
            return;
        }
        self.to[v.index()] = op;
        self.changed = true;
        self.sets = self.sets.wrapping_add(1);
    }

    /// How many replacements have been recorded (to tell whether any was
    /// between two points).
    pub fn sets(&self) -> u32 {
        self.sets
    }

    /// The final replacement of `op` (a literal stays itself).
    #[inline]
    pub fn resolve(&mut self, op: Operand) -> Operand {
        let Operand::Value(mut v) = op else {
            return op;
        };
        // Most values are not replaced.
        match self.to.get(v.index()) {
            Some(&next) if next != op => {}
            _ => return op,
        }
        // Find the end of the chain, then point every link at it.
        let mut end = op;
        while let Some(&next) = self.to.get(v.index()) {
            if next == Operand::Value(v) {
                break;
            }
            end = next;
            match next {
                Operand::Value(n) => v = n,
                Operand::Const(_) => break,
            }
        }
        let Operand::Value(mut v) = op else {
            return end;
        };
        while let Some(&next) = self.to.get(v.index()) {
            if next == end || next == Operand::Value(v) {
                break;
            }
            self.to[v.index()] = end;
            match next {
                Operand::Value(n) => v = n,
                Operand::Const(_) => break,
            }
        }
        end
    }

    /// The last value on `v`'s chain (for positions without literals).
    pub fn resolve_value(&mut self, v: Value) -> Value {
        let mut cur = v;
        while let Some(&Operand::Value(n)) = self.to.get(cur.index()) {
            if n == cur {
                break;
            }
            cur = n;
        }
        cur
    }

    /// Rewrites the operands of `d` through the map. Returns whether any
    /// operand changed.
    pub fn apply(&mut self, f: &mut Function, inst: Inst) -> bool {
        if !self.changed {
            return false;
        }
        // The common forms directly, without the generic operand walk.
        let d = &mut f.insts[inst.index()];
        let conversion = matches!(
            d.opcode,
            Opcode::Sitof | Opcode::Uitof | Opcode::Ftosi | Opcode::Ftoui
        );
        match &mut d.kind {
            InstKind::Unary { arg } if !conversion => {
                let new = self.resolve(*arg);
                let any = new != *arg;
                *arg = new;
                return any;
            }
            InstKind::Binary { args } => {
                let (a, b) = (self.resolve(args[0]), self.resolve(args[1]));
                let any = a != args[0] || b != args[1];
                *args = [a, b];
                return any;
            }
            _ => {}
        }
        let no_literals = literal_free(&f.insts[inst.index()]);
        let mut any = false;
        f.for_each_operand_mut(inst, |op| {
            let Operand::Value(v) = *op else { return };
            let new = if no_literals {
                Operand::Value(self.resolve_value(v))
            } else {
                self.resolve(*op)
            };
            if new != *op {
                *op = new;
                any = true;
            }
        });
        any
    }
}

/// Whether none of `d`'s operands may be a literal (SPEC section 4: the
/// source of the open-typed conversions, the operands of indirect calls).
pub fn literal_free(d: &InstData) -> bool {
    match d.opcode {
        Opcode::Sitof | Opcode::Uitof | Opcode::Ftosi | Opcode::Ftoui => true,
        Opcode::Call => matches!(
            d.kind,
            InstKind::Call {
                callee: Callee::Indirect(_),
                ..
            }
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Const;

    fn v(i: usize) -> Operand {
        Operand::Value(Value::new(i))
    }

    #[test]
    fn chains_resolve_to_their_end_and_refuse_cycles() {
        let mut s = Subst::new(5);
        assert!(!s.changed());
        s.set(Value::new(1), v(2));
        s.set(Value::new(2), v(3));
        assert_eq!(s.resolve(v(1)), v(3));
        // 3 -> 1 would close a cycle: refused.
        s.set(Value::new(3), v(1));
        assert_eq!(s.resolve(v(3)), v(3));
        s.set(Value::new(3), Operand::Const(Const::int(7)));
        assert_eq!(s.resolve(v(1)), Operand::Const(Const::int(7)));
        // Positions without literals keep a value of the chain (each
        // still has its definition).
        let kept = s.resolve_value(Value::new(1));
        assert!([1, 2, 3].contains(&kept.index()), "{kept}");
        assert_eq!(s.resolve(v(0)), v(0));
    }
}
