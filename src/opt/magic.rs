//! Division by a literal through multiply-high ("magic numbers",
//! Granlund & Montgomery 1994; Hacker's Delight chapter 10): the numbers
//! the back ends use to lower `udiv`/`urem`/`sdiv`/`srem` by a literal
//! divisor to a multiplication, shifts and adds, with no zero check and no
//! hardware divide.
//!
//! [`plan`] decides, for one instruction, which sequence applies:
//! - [`Plan::Unsigned`]: `q = mulhu(x, mul) >> shift`, or, when the
//!   multiplier needs one bit more than the width (`add`),
//!   `t = mulhu(x, mul); q = (((x - t) >> 1) + t) >> (shift - 1)`;
//! - [`Plan::Signed`]: `t = mulhs(x, mul)`, plus `x` when the divisor is
//!   positive and `mul` negative (minus `x` in the opposite case), then
//!   `q = (t >> shift) + (t < 0)` with an arithmetic shift;
//! - [`Plan::UnsignedPow2`] / [`Plan::SignedPow2`]: shifts (signed: the
//!   dividend is biased by `2^k - 1` when negative, so the quotient rounds
//!   toward zero; negated for a negative divisor).
//!
//! Remainders are `x - q * d` (for a signed power of two, `x - (q << k)`
//! before the negation). Divisors 0, 1 and -1 get no plan: 0 traps,
//! `sdiv` by -1 can overflow (MIN / -1 traps), and the others are what
//! [`super::fold`] removes; nor do unsigned divisors above `2^(w-1)`
//! (quotient 0 or 1) that are not powers of two. The back end's ordinary
//! division handles them.

use crate::ir::{Opcode, Type};

/// How to divide by one literal divisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `d = 2^k`, unsigned: a logical shift (`urem`: a mask).
    UnsignedPow2 { k: u32 },
    /// `|d| = 2^k`, signed, `k >= 1`; `negative` when `d < 0`.
    SignedPow2 { k: u32, negative: bool },
    /// Unsigned multiply-high by `mul`, then `shift` (see the module docs
    /// for `add`).
    Unsigned { mul: u64, shift: u32, add: bool },
    /// Signed multiply-high by `mul` (a `w`-bit signed number, stored
    /// sign-extended), the correction by `x` (`+x` when `d > 0` and
    /// `mul < 0`, `-x` when `d < 0` and `mul > 0`), then `shift`.
    Signed {
        mul: i64,
        shift: u32,
        divisor_negative: bool,
    },
}

impl Plan {
    /// The correction of a signed plan: +1 (add the dividend), -1
    /// (subtract it) or 0.
    pub fn correction(self) -> i32 {
        match self {
            Plan::Signed {
                mul,
                divisor_negative,
                ..
            } => match (divisor_negative, mul < 0) {
                (false, true) => 1,
                (true, false) if mul > 0 => -1,
                _ => 0,
            },
            _ => 0,
        }
    }
}

/// The plan for `op.ty x, d` where `d` has bits `divisor` (zero-extended
/// type bits); `None` when the ordinary division is used (see the module
/// docs).
pub fn plan(op: Opcode, ty: Type, divisor: u64) -> Option<Plan> {
    let w = ty.bits();
    if !ty.is_int() {
        return None;
    }
    match op {
        Opcode::Udiv | Opcode::Urem => {
            let d = divisor & mask(w);
            if d <= 1 {
                return None;
            }
            if d.is_power_of_two() {
                return Some(Plan::UnsignedPow2 {
                    k: d.trailing_zeros(),
                });
            }
            // Above 2^(w-1) the quotient is 0 or 1 and the multiplier
            // would need 2w bits of precision: the divide instruction.
            if d > mask(w) >> 1 {
                return None;
            }
            let (mul, shift, add) = unsigned(d, w);
            Some(Plan::Unsigned { mul, shift, add })
        }
        Opcode::Sdiv | Opcode::Srem => {
            let d = sign_extend(divisor, w);
            if d == 0 || d == 1 || d == -1 {
                return None;
            }
            let ad = d.unsigned_abs();
            if ad.is_power_of_two() {
                return Some(Plan::SignedPow2 {
                    k: ad.trailing_zeros(),
                    negative: d < 0,
                });
            }
            let (mul, shift) = signed(d, w);
            Some(Plan::Signed {
                mul,
                shift,
                divisor_negative: d < 0,
            })
        }
        _ => None,
    }
}

fn mask(w: u32) -> u64 {
    if w == 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

fn sign_extend(x: u64, w: u32) -> i64 {
    if w == 64 {
        x as i64
    } else {
        ((x << (64 - w)) as i64) >> (64 - w)
    }
}

/// Unsigned magic for `2 <= d < 2^(w-1)`, `d` not a power of two: the
/// smallest `p >= w` for which `m = ceil(2^p / d)` is exact for every
/// `w`-bit dividend (error `m*d - 2^p <= 2^(p-w)`); when that `m` does not
/// fit `w` bits, the `add` form with `p = w + ceil(log2 d)`.
///
/// `q = floor(2^p / d)` and `r = 2^p mod d` start from one 64-bit
/// division at `p = w` and follow `p` by doubling (no 128-bit division:
/// those were most of the cost of a plan). `d` is not a power of two, so
/// `r != 0`: `m = q + 1` and the error is `d - r`.
fn unsigned(d: u64, w: u32) -> (u64, u32, bool) {
    let l = 64 - (d - 1).leading_zeros(); // ceil(log2 d)
                                          // 2^w / d: for w = 64, from (2^64 - 1) / d (the remainder cannot
                                          // reach d: d does not divide 2^64).
    let (mut q, mut r) = if w == 64 {
        ((u64::MAX / d) as u128, u64::MAX % d + 1)
    } else {
        (((1u64 << w) / d) as u128, (1u64 << w) % d)
    };
    let limit = 1u128 << w;
    let mut p = w;
    while p < w + l {
        if d - r <= 1u64 << (p - w) {
            if q + 1 < limit {
                return (q as u64 + 1, p - w, false);
            }
            break;
        }
        // r < d < 2^63: 2r fits.
        let c = (2 * r >= d) as u64;
        q = 2 * q + c as u128;
        r = 2 * r - c * d;
        p += 1;
    }
    // The add form: m = ceil(2^(w+l) / d) - 2^w, continuing to p = w + l.
    while p < w + l {
        let c = (2 * r >= d) as u64;
        q = 2 * q + c as u128;
        r = 2 * r - c * d;
        p += 1;
    }
    ((q + 1 - limit) as u64, l, true)
}

/// Signed magic for `|d| >= 2` not a power of two (Hacker's Delight,
/// figure 10-1, generalized to width `w`): the multiplier as a signed
/// `w`-bit number and the shift.
fn signed(d: i64, w: u32) -> (i64, u32) {
    // Every division here is of at most 2^63 by a 64-bit number (no
    // 128-bit division); the quotients double in the loop, in u128.
    let two = 1u64 << (w - 1);
    let ad = d.unsigned_abs();
    let t = two + (d < 0) as u64;
    let anc = t - 1 - t % ad;
    let mut p = w - 1;
    let (mut q1, mut r1) = ((two / anc) as u128, two % anc);
    let (mut q2, mut r2) = ((two / ad) as u128, two % ad);
    loop {
        p += 1;
        q1 *= 2;
        r1 *= 2;
        if r1 >= anc {
            q1 += 1;
            r1 -= anc;
        }
        q2 *= 2;
        r2 *= 2;
        if r2 >= ad {
            q2 += 1;
            r2 -= ad;
        }
        let delta = (ad - r2) as u128;
        if !(q1 < delta || (q1 == delta && r1 == 0)) {
            break;
        }
    }
    let m = sign_extend(((q2 + 1) as u64) & mask(w), w);
    (if d < 0 { m.wrapping_neg() } else { m }, p - w)
}

/// Evaluates a plan the way the generated code does, in `w`-bit
/// arithmetic: the reference the back ends' sequences follow, and what the
/// tests check against real division.
pub fn quotient(plan: Plan, ty: Type, x: u64) -> u64 {
    let w = ty.bits();
    let x = x & mask(w);
    let q = match plan {
        Plan::UnsignedPow2 { k } => x >> k,
        Plan::SignedPow2 { k, negative } => {
            let sx = sign_extend(x, w);
            let bias = if sx < 0 { (1i64 << k) - 1 } else { 0 };
            let q = sx.wrapping_add(bias) >> k;
            (if negative { q.wrapping_neg() } else { q }) as u64
        }
        Plan::Unsigned { mul, shift, add } => {
            let t = ((x as u128 * mul as u128) >> w) as u64;
            if add {
                (((x - t) >> 1) + t) >> (shift - 1)
            } else {
                t >> shift
            }
        }
        Plan::Signed { mul, shift, .. } => {
            let sx = sign_extend(x, w) as i128;
            let mut t = ((sx * mul as i128) >> w) as i64;
            match plan.correction() {
                1 => t = t.wrapping_add(sx as i64),
                -1 => t = t.wrapping_sub(sx as i64),
                _ => {}
            }
            let t = sign_extend(t as u64 & mask(w), w);
            let q = t >> shift;
            q.wrapping_add(((q as u64 & mask(w)) >> (w - 1)) as i64) as u64
        }
    };
    q & mask(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// Dividends worth trying: edges of the range and random ones.
    fn dividends(w: u32, seed: &mut u64) -> Vec<u64> {
        let m = mask(w);
        let mut v = vec![0, 1, 2, 3, m, m - 1, m >> 1, (m >> 1) + 1, (m >> 1) - 1];
        for _ in 0..300 {
            let r = xorshift(seed);
            v.push(r & m);
            v.push((r >> (xorshift(seed) % 64)) & m);
        }
        v
    }

    fn check(op: Opcode, ty: Type, d: u64, seed: &mut u64) {
        let w = ty.bits();
        let Some(p) = plan(op, ty, d) else { return };
        for x in dividends(w, seed) {
            let want = match (op, w) {
                (Opcode::Udiv, _) => (x & mask(w)) / (d & mask(w)),
                (_, _) => {
                    let (sx, sd) = (sign_extend(x, w), sign_extend(d, w));
                    if sx == sign_extend(1u64 << (w - 1), w) && sd == -1 {
                        continue;
                    }
                    (sx / sd) as u64 & mask(w)
                }
            };
            assert_eq!(quotient(p, ty, x), want, "{op:?} {ty} {x} / {d} ({p:?})");
        }
    }

    #[test]
    fn plans_divide_exactly() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for ty in [Type::I32, Type::I64] {
            let w = ty.bits();
            let mut divisors: Vec<u64> = (2..300).collect();
            divisors.extend([7, 10, 641, 1000, 1_000_000_007, 0x7fff_ffff, 0x8000_0001]);
            divisors.push(mask(w));
            divisors.push(mask(w) - 1);
            divisors.push(mask(w) >> 1);
            for _ in 0..200 {
                divisors.push(xorshift(&mut seed) & mask(w));
                divisors.push((xorshift(&mut seed) >> (xorshift(&mut seed) % 60)) & mask(w));
            }
            for &d in &divisors {
                check(Opcode::Udiv, ty, d, &mut seed);
                check(Opcode::Sdiv, ty, d, &mut seed);
                check(Opcode::Sdiv, ty, d.wrapping_neg() & mask(w), &mut seed);
            }
        }
    }

    /// The definitions, in 128-bit arithmetic (what `unsigned` and
    /// `signed` computed before they avoided 128-bit division).
    fn unsigned_ref(d: u64, w: u32) -> (u64, u32, bool) {
        let d128 = d as u128;
        let l = 64 - (d - 1).leading_zeros();
        for p in w..w + l {
            let two_p = 1u128 << p;
            let m = two_p.div_ceil(d128);
            if m * d128 - two_p <= 1u128 << (p - w) {
                if m < 1u128 << w {
                    return (m as u64, p - w, false);
                }
                break;
            }
        }
        let m = (1u128 << (w + l)).div_ceil(d128);
        ((m - (1u128 << w)) as u64, l, true)
    }

    fn signed_ref(d: i64, w: u32) -> (i64, u32) {
        let two = 1u128 << (w - 1);
        let ad = d.unsigned_abs() as u128;
        let t = two + (d < 0) as u128;
        let anc = t - 1 - t % ad;
        let mut p = w - 1;
        let (mut q1, mut r1) = (two / anc, two % anc);
        let (mut q2, mut r2) = (two / ad, two % ad);
        loop {
            p += 1;
            (q1, r1) = (2 * q1 + (2 * r1 >= anc) as u128, (2 * r1) % anc);
            (q2, r2) = (2 * q2 + (2 * r2 >= ad) as u128, (2 * r2) % ad);
            let delta = ad - r2;
            if !(q1 < delta || (q1 == delta && r1 == 0)) {
                break;
            }
        }
        let m = sign_extend(((q2 + 1) as u64) & mask(w), w);
        (if d < 0 { m.wrapping_neg() } else { m }, p - w)
    }

    #[test]
    fn plans_match_the_128_bit_definitions() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for w in [8, 16, 32, 64] {
            let mut ds: Vec<u64> = (3..2000).collect();
            ds.extend([mask(w) >> 1, (mask(w) >> 1) - 1, (mask(w) >> 2) + 1]);
            for _ in 0..3000 {
                ds.push((xorshift(&mut seed) >> (xorshift(&mut seed) % 64)) & (mask(w) >> 1));
            }
            for d in ds {
                if d < 3 || d > mask(w) >> 1 || d.is_power_of_two() {
                    continue;
                }
                assert_eq!(unsigned(d, w), unsigned_ref(d, w), "udiv {d} w={w}");
                for sd in [d as i64, -(d as i64)] {
                    assert_eq!(signed(sd, w), signed_ref(sd, w), "sdiv {sd} w={w}");
                }
            }
        }
    }

    #[test]
    fn which_divisors_get_a_plan() {
        assert_eq!(plan(Opcode::Udiv, Type::I64, 0), None);
        assert_eq!(plan(Opcode::Udiv, Type::I64, 1), None);
        assert_eq!(plan(Opcode::Sdiv, Type::I32, 0xffff_ffff), None, "-1");
        assert_eq!(
            plan(Opcode::Urem, Type::I32, 8),
            Some(Plan::UnsignedPow2 { k: 3 })
        );
        assert_eq!(
            plan(Opcode::Srem, Type::I64, (-8i64) as u64),
            Some(Plan::SignedPow2 {
                k: 3,
                negative: true
            })
        );
        // The classic: x / 7 in 32 bits needs the `add` form.
        assert!(matches!(
            plan(Opcode::Udiv, Type::I32, 7),
            Some(Plan::Unsigned { add: true, .. })
        ));
        assert_eq!(
            plan(Opcode::Udiv, Type::I32, 10),
            Some(Plan::Unsigned {
                mul: 0xcccc_cccd,
                shift: 3,
                add: false
            })
        );
    }
}
