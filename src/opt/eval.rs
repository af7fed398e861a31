//! Compile-time evaluation of instructions on literal operands, with
//! exactly the interpreter's semantics (SPEC section 5): wrapping integer
//! arithmetic, shift counts modulo the width, IEEE round-to-nearest float
//! arithmetic, saturating float-to-integer conversion.
//!
//! Values are bits, zero-extended to 64 (as [`Const::bits`] gives them).
//! Evaluation refuses (returns `None`) whatever it must not fold: an
//! operation that traps (division by zero, `sdiv` of MIN by -1) stays in
//! the program so that it traps at run time, and a float result that is a
//! NaN stays computed at run time (its bits are the target's; a literal
//! NaN would be the printer's canonical one).

use crate::ir::{Const, Opcode, Operand, Type};

/// The literal for `bits` of type `ty`; `None` for a NaN.
pub fn literal(ty: Type, bits: u64) -> Option<Operand> {
    let c = match ty {
        Type::I32 => Const::int(bits as u32 as i32 as i128),
        Type::I64 => Const::int(bits as i64 as i128),
        Type::F32 => {
            let x = f32::from_bits(bits as u32);
            if x.is_nan() {
                return None;
            }
            Const::float(x as f64)
        }
        Type::F64 => {
            if f64::from_bits(bits).is_nan() {
                return None;
            }
            Const::Float(bits)
        }
    };
    Some(Operand::Const(c))
}

/// The integer literal `x` of type `ty` (wrapped to its width).
pub fn int(ty: Type, x: u64) -> Operand {
    Operand::Const(match ty {
        Type::I32 => Const::int(x as u32 as i32 as i128),
        _ => Const::int(x as i64 as i128),
    })
}

/// The bits of `op` as a value of type `ty`, when it is a literal.
pub fn bits(op: Operand, ty: Type) -> Option<u64> {
    match op {
        Operand::Const(c) => Some(c.bits(ty)),
        Operand::Value(_) => None,
    }
}

/// Keeps the low bits of `x` that type `ty` holds.
pub fn wrap(ty: Type, x: u64) -> u64 {
    match ty {
        Type::I32 | Type::F32 => x & 0xffff_ffff,
        _ => x,
    }
}

/// Sign-extends the `ty`-wide bits `x` to `i64`.
pub fn signed(ty: Type, x: u64) -> i64 {
    match ty {
        Type::I32 | Type::F32 => x as u32 as i32 as i64,
        _ => x as i64,
    }
}

fn f32v(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

fn f64v(x: u64) -> f64 {
    f64::from_bits(x)
}

fn f32b(x: f32) -> u64 {
    x.to_bits() as u64
}

/// A binary operation (arithmetic or compare; `ty` is the operand type)
/// on literal bits. `None`: it traps, or the result is a NaN.
pub fn binary(op: Opcode, ty: Type, a: u64, b: u64) -> Option<u64> {
    use Opcode::*;
    let w = ty.bits();
    let (sa, sb) = (signed(ty, a), signed(ty, b));
    let r = match op {
        Add => wrap(ty, a.wrapping_add(b)),
        Sub => wrap(ty, a.wrapping_sub(b)),
        Mul => wrap(ty, a.wrapping_mul(b)),
        Sdiv => {
            let min = if w == 32 { i32::MIN as i64 } else { i64::MIN };
            if sb == 0 || (sa == min && sb == -1) {
                return None;
            }
            wrap(ty, (sa / sb) as u64)
        }
        Udiv => {
            if b == 0 {
                return None;
            }
            a / b
        }
        Srem => {
            if sb == 0 {
                return None;
            }
            wrap(ty, sa.wrapping_rem(sb) as u64)
        }
        Urem => {
            if b == 0 {
                return None;
            }
            a % b
        }
        And => a & b,
        Or => a | b,
        Xor => a ^ b,
        Shl => wrap(ty, a << (b % w as u64)),
        Shr => a >> (b % w as u64),
        Sar => wrap(ty, (sa >> (b % w as u64)) as u64),
        Eq => (a == b) as u64,
        Ne => (a != b) as u64,
        Slt => (sa < sb) as u64,
        Sle => (sa <= sb) as u64,
        Sgt => (sa > sb) as u64,
        Sge => (sa >= sb) as u64,
        Ult => (a < b) as u64,
        Ule => (a <= b) as u64,
        Ugt => (a > b) as u64,
        Uge => (a >= b) as u64,
        Fadd | Fsub | Fmul | Fdiv => return float_arith(op, ty, a, b),
        Feq | Fne | Flt | Fle | Fgt | Fge => float_compare(op, ty, a, b) as u64,
        _ => return None,
    };
    Some(r)
}

fn float_arith(op: Opcode, ty: Type, a: u64, b: u64) -> Option<u64> {
    let r = if ty == Type::F32 {
        let (x, y) = (f32v(a), f32v(b));
        let r = match op {
            Opcode::Fadd => x + y,
            Opcode::Fsub => x - y,
            Opcode::Fmul => x * y,
            _ => x / y,
        };
        if r.is_nan() {
            return None;
        }
        f32b(r)
    } else {
        let (x, y) = (f64v(a), f64v(b));
        let r = match op {
            Opcode::Fadd => x + y,
            Opcode::Fsub => x - y,
            Opcode::Fmul => x * y,
            _ => x / y,
        };
        if r.is_nan() {
            return None;
        }
        r.to_bits()
    };
    Some(r)
}

/// IEEE comparisons: false when either is a NaN, except `fne`.
fn float_compare(op: Opcode, ty: Type, a: u64, b: u64) -> bool {
    let (x, y) = if ty == Type::F32 {
        (f32v(a) as f64, f32v(b) as f64)
    } else {
        (f64v(a), f64v(b))
    };
    match op {
        Opcode::Feq => x == y,
        Opcode::Fne => x != y,
        Opcode::Flt => x < y,
        Opcode::Fle => x <= y,
        Opcode::Fgt => x > y,
        _ => x >= y,
    }
}

/// A unary operation or conversion on literal bits: `ty` is the result
/// type, `from` the operand's. `None` when the result is a NaN.
pub fn unary(op: Opcode, ty: Type, from: Type, a: u64) -> Option<u64> {
    use Opcode::*;
    let r = match op {
        Copy => a,
        Neg => wrap(ty, a.wrapping_neg()),
        Not => wrap(ty, !a),
        Fneg | Fabs | Fsqrt => {
            let sign = if ty == Type::F32 {
                1u64 << 31
            } else {
                1u64 << 63
            };
            match op {
                Fneg => a ^ sign,
                Fabs => a & !sign,
                _ if ty == Type::F32 => f32b(f32v(a).sqrt()),
                _ => f64v(a).sqrt().to_bits(),
            }
        }
        Sext => signed(Type::I32, a) as u64,
        Zext | Trunc => a & 0xffff_ffff,
        Fext => (f32v(a) as f64).to_bits(),
        Ftrunc => f32b(f64v(a) as f32),
        Sitof | Uitof => {
            let (s, u) = (signed(from, a), a);
            match (op, ty) {
                (Sitof, Type::F32) => f32b(s as f32),
                (Sitof, _) => (s as f64).to_bits(),
                (_, Type::F32) => f32b(u as f32),
                _ => (u as f64).to_bits(),
            }
        }
        Ftosi | Ftoui => {
            let x = if from == Type::F32 {
                f32v(a) as f64
            } else {
                f64v(a)
            };
            // f32 -> f64 is exact, so converting from the f64 is the same
            // as from the f32; Rust's `as` saturates and maps NaN to 0.
            match (op, ty) {
                (Ftosi, Type::I32) => x as i32 as u32 as u64,
                (Ftosi, _) => x as i64 as u64,
                (_, Type::I32) => x as u32 as u64,
                _ => x as u64,
            }
        }
        Bitcast => a,
        _ => return None,
    };
    let nan = match ty {
        Type::F32 => f32v(r).is_nan(),
        Type::F64 => f64v(r).is_nan(),
        _ => false,
    };
    (!nan).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_arithmetic_wraps_and_traps_are_not_folded() {
        assert_eq!(
            binary(Opcode::Add, Type::I32, 0xffff_ffff, 2),
            Some(1),
            "i32 wraps"
        );
        assert_eq!(binary(Opcode::Sdiv, Type::I32, 7, 0), None);
        assert_eq!(
            binary(Opcode::Sdiv, Type::I32, 0x8000_0000, 0xffff_ffff),
            None
        );
        assert_eq!(
            binary(Opcode::Srem, Type::I32, 0x8000_0000, 0xffff_ffff),
            Some(0)
        );
        assert_eq!(
            binary(Opcode::Srem, Type::I64, (-7i64) as u64, 3),
            Some((-1i64) as u64)
        );
        assert_eq!(
            binary(Opcode::Shl, Type::I32, 1, 33),
            Some(2),
            "count mod 32"
        );
        assert_eq!(
            binary(Opcode::Sar, Type::I32, 0x8000_0000, 31),
            Some(0xffff_ffff)
        );
        assert_eq!(binary(Opcode::Slt, Type::I32, 0xffff_ffff, 0), Some(1));
        assert_eq!(binary(Opcode::Ult, Type::I32, 0xffff_ffff, 0), Some(0));
    }

    #[test]
    fn floats_fold_except_to_nan() {
        let one = 1.0f64.to_bits();
        let zero = 0.0f64.to_bits();
        assert_eq!(binary(Opcode::Fdiv, Type::F64, zero, zero), None);
        assert_eq!(
            binary(Opcode::Fdiv, Type::F64, one, zero),
            Some(f64::INFINITY.to_bits())
        );
        let nan = f64::NAN.to_bits();
        assert_eq!(binary(Opcode::Fne, Type::F64, nan, nan), Some(1));
        assert_eq!(binary(Opcode::Feq, Type::F64, nan, nan), Some(0));
        assert_eq!(
            unary(Opcode::Ftosi, Type::I32, Type::F64, 1e20f64.to_bits()),
            Some(i32::MAX as u32 as u64)
        );
        assert_eq!(unary(Opcode::Ftoui, Type::I32, Type::F64, nan), Some(0));
        assert_eq!(
            unary(Opcode::Fsqrt, Type::F64, Type::F64, (-1.0f64).to_bits()),
            None
        );
        assert_eq!(literal(Type::F32, f32::NAN.to_bits() as u64), None);
        assert_eq!(
            literal(Type::I32, 0xffff_ffff),
            Some(Operand::Const(Const::int(-1)))
        );
    }
}
