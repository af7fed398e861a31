//! Every arithmetic, compare, select and conversion instruction with its
//! edge cases (SPEC section 5).

use super::build::*;

#[test]
fn integer_arithmetic_wraps() {
    use Opcode::*;
    assert_eq!(ok(Add, I32, &[Vi32(i32::MAX), Vi32(1)]), Vi32(i32::MIN));
    assert_eq!(ok(Add, I64, &[Vi64(i64::MAX), Vi64(1)]), Vi64(i64::MIN));
    assert_eq!(ok(Sub, I32, &[Vi32(i32::MIN), Vi32(1)]), Vi32(i32::MAX));
    assert_eq!(ok(Sub, I64, &[Vi64(3), Vi64(5)]), Vi64(-2));
    assert_eq!(ok(Mul, I32, &[Vi32(0x10000), Vi32(0x10000)]), Vi32(0));
    assert_eq!(ok(Mul, I32, &[Vi32(-7), Vi32(6)]), Vi32(-42));
    assert_eq!(ok(Mul, I64, &[Vi64(1 << 62), Vi64(4)]), Vi64(0));
    assert_eq!(ok(Neg, I32, &[Vi32(i32::MIN)]), Vi32(i32::MIN));
    assert_eq!(ok(Neg, I64, &[Vi64(5)]), Vi64(-5));
    assert_eq!(ok(Not, I32, &[Vi32(0)]), Vi32(-1));
    assert_eq!(ok(Not, I64, &[Vi64(0x0f)]), Vi64(!0x0f));
    assert_eq!(ok(And, I32, &[Vi32(0b1100), Vi32(0b1010)]), Vi32(0b1000));
    assert_eq!(ok(Or, I64, &[Vi64(0b1100), Vi64(0b1010)]), Vi64(0b1110));
    assert_eq!(ok(Xor, I32, &[Vi32(-1), Vi32(0x0f0f)]), Vi32(!0x0f0f));
    assert_eq!(ok(Copy, I64, &[Vi64(-9)]), Vi64(-9));
    assert_eq!(
        ok(Copy, F32, &[Vf32(-0.0)]).to_bits(),
        (-0.0f32).to_bits() as u64
    );
}

#[test]
fn division_and_remainder() {
    use Opcode::*;
    assert_eq!(ok(Sdiv, I32, &[Vi32(-7), Vi32(2)]), Vi32(-3));
    assert_eq!(ok(Sdiv, I64, &[Vi64(7), Vi64(-2)]), Vi64(-3));
    assert_eq!(ok(Udiv, I32, &[Vi32(-1), Vi32(2)]), Vi32(0x7fff_ffff));
    assert_eq!(
        ok(Udiv, I64, &[Vi64(-1), Vi64(16)]),
        Vi64(0x0fff_ffff_ffff_ffff)
    );
    // srem has the sign of the dividend.
    assert_eq!(ok(Srem, I32, &[Vi32(-7), Vi32(2)]), Vi32(-1));
    assert_eq!(ok(Srem, I32, &[Vi32(7), Vi32(-2)]), Vi32(1));
    assert_eq!(ok(Srem, I64, &[Vi64(-7), Vi64(-2)]), Vi64(-1));
    assert_eq!(ok(Urem, I32, &[Vi32(-1), Vi32(10)]), Vi32(5)); // 4294967295 % 10
    assert_eq!(ok(Urem, I64, &[Vi64(-1), Vi64(10)]), Vi64(5)); // 18446744073709551615 % 10
                                                               // MIN / -1 traps, MIN % -1 is 0.
    assert_eq!(
        trap(Sdiv, I32, &[Vi32(i32::MIN), Vi32(-1)]),
        TrapCode::IntegerOverflow
    );
    assert_eq!(
        trap(Sdiv, I64, &[Vi64(i64::MIN), Vi64(-1)]),
        TrapCode::IntegerOverflow
    );
    assert_eq!(ok(Srem, I32, &[Vi32(i32::MIN), Vi32(-1)]), Vi32(0));
    assert_eq!(ok(Srem, I64, &[Vi64(i64::MIN), Vi64(-1)]), Vi64(0));
    assert_eq!(ok(Udiv, I32, &[Vi32(i32::MIN), Vi32(-1)]), Vi32(0));
    for op in [Sdiv, Udiv, Srem, Urem] {
        assert_eq!(trap(op, I32, &[Vi32(5), Vi32(0)]), TrapCode::DivisionByZero);
        assert_eq!(trap(op, I64, &[Vi64(5), Vi64(0)]), TrapCode::DivisionByZero);
    }
    // Division by zero is checked before overflow.
    assert_eq!(
        trap(Sdiv, I32, &[Vi32(i32::MIN), Vi32(0)]),
        TrapCode::DivisionByZero
    );
}

#[test]
fn shifts_take_the_count_modulo_the_width() {
    use Opcode::*;
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(31)]), Vi32(i32::MIN));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(32)]), Vi32(1));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(33)]), Vi32(2));
    assert_eq!(ok(Shl, I32, &[Vi32(1), Vi32(-1)]), Vi32(i32::MIN));
    assert_eq!(ok(Shl, I64, &[Vi64(1), Vi64(64)]), Vi64(1));
    assert_eq!(ok(Shl, I64, &[Vi64(1), Vi64(63)]), Vi64(i64::MIN));
    assert_eq!(ok(Shl, I64, &[Vi64(3), Vi64(0x1_0000_0041)]), Vi64(6));
    assert_eq!(ok(Shr, I32, &[Vi32(-1), Vi32(28)]), Vi32(0xf));
    assert_eq!(ok(Shr, I32, &[Vi32(-1), Vi32(60)]), Vi32(0xf));
    assert_eq!(ok(Shr, I64, &[Vi64(-1), Vi64(60)]), Vi64(0xf));
    assert_eq!(ok(Sar, I32, &[Vi32(-16), Vi32(2)]), Vi32(-4));
    assert_eq!(ok(Sar, I32, &[Vi32(-16), Vi32(34)]), Vi32(-4));
    assert_eq!(ok(Sar, I64, &[Vi64(i64::MIN), Vi64(63)]), Vi64(-1));
    assert_eq!(ok(Sar, I64, &[Vi64(i64::MIN), Vi64(127)]), Vi64(-1));
}

#[test]
fn integer_compares() {
    use Opcode::*;
    let cmp = |op, ty, a: i64, b: i64| {
        let args = if ty == I32 {
            [Vi32(a as i32), Vi32(b as i32)]
        } else {
            [Vi64(a), Vi64(b)]
        };
        match ok(op, ty, &args) {
            Vi32(r) => r,
            other => panic!("compare gave {other:?}"),
        }
    };
    for ty in [I32, I64] {
        assert_eq!(cmp(Eq, ty, 3, 3), 1);
        assert_eq!(cmp(Eq, ty, 3, 4), 0);
        assert_eq!(cmp(Ne, ty, 3, 4), 1);
        assert_eq!(cmp(Slt, ty, -1, 1), 1);
        assert_eq!(cmp(Ult, ty, -1, 1), 0);
        assert_eq!(cmp(Sle, ty, 2, 2), 1);
        assert_eq!(cmp(Ule, ty, 3, 2), 0);
        assert_eq!(cmp(Sgt, ty, -1, 1), 0);
        assert_eq!(cmp(Ugt, ty, -1, 1), 1);
        assert_eq!(cmp(Sge, ty, -5, -5), 1);
        assert_eq!(cmp(Uge, ty, 0, -1), 0);
    }
    // i32 compares look at 32 bits only.
    assert_eq!(cmp(Slt, I32, 0x7fff_ffff, 0x8000_0000), 0);
    assert_eq!(cmp(Ult, I32, 0x7fff_ffff, 0x8000_0000), 1);
}

// ------------------------------------------------------------ float ops

#[test]
fn float_arithmetic_is_ieee() {
    use Opcode::*;
    assert_eq!(
        ok(Fadd, F64, &[Vf64(0.1), Vf64(0.2)]),
        Vf64(0.30000000000000004)
    );
    // f32 arithmetic rounds to f32: 2^24 + 1 is not representable.
    assert_eq!(
        ok(Fadd, F32, &[Vf32(16777216.0), Vf32(1.0)]),
        Vf32(16777216.0)
    );
    assert_eq!(ok(Fsub, F64, &[Vf64(1.0), Vf64(0.75)]), Vf64(0.25));
    assert_eq!(ok(Fmul, F32, &[Vf32(1.5), Vf32(-2.0)]), Vf32(-3.0));
    assert_eq!(ok(Fdiv, F64, &[Vf64(1.0), Vf64(0.0)]), Vf64(f64::INFINITY));
    assert_eq!(
        ok(Fdiv, F64, &[Vf64(-1.0), Vf64(0.0)]),
        Vf64(f64::NEG_INFINITY)
    );
    assert!(matches!(ok(Fdiv, F32, &[Vf32(0.0), Vf32(0.0)]), Vf32(x) if x.is_nan()));
    assert_eq!(ok(Fdiv, F32, &[Vf32(1.0), Vf32(3.0)]), Vf32(1.0f32 / 3.0));
    assert_eq!(ok(Fsqrt, F64, &[Vf64(2.0)]), Vf64(std::f64::consts::SQRT_2));
    assert_eq!(ok(Fsqrt, F32, &[Vf32(16.0)]), Vf32(4.0));
    assert!(matches!(ok(Fsqrt, F64, &[Vf64(-1.0)]), Vf64(x) if x.is_nan()));
    // -0.0: fneg flips the sign bit, fabs clears it, even of NaN.
    assert_eq!(ok(Fneg, F64, &[Vf64(0.0)]).to_bits(), (-0.0f64).to_bits());
    assert_eq!(ok(Fneg, F32, &[Vf32(-0.0)]).to_bits(), 0);
    assert_eq!(ok(Fabs, F64, &[Vf64(-0.0)]).to_bits(), 0);
    assert_eq!(ok(Fabs, F32, &[Vf32(-2.5)]), Vf32(2.5));
    let neg_nan = f64::from_bits(f64::NAN.to_bits() | 1 << 63);
    assert_eq!(
        ok(Fabs, F64, &[Vf64(neg_nan)]).to_bits(),
        f64::NAN.to_bits()
    );
    assert_eq!(
        ok(Fneg, F64, &[Vf64(f64::NAN)]).to_bits(),
        neg_nan.to_bits()
    );
    assert_eq!(
        ok(Fadd, F64, &[Vf64(-0.0), Vf64(-0.0)]).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(ok(Fadd, F64, &[Vf64(-0.0), Vf64(0.0)]).to_bits(), 0);
}

#[test]
fn float_compares_and_nan() {
    use Opcode::*;
    let nan = f64::NAN;
    let c64 = |op, a: f64, b: f64| ok(op, F64, &[Vf64(a), Vf64(b)]);
    let c32 = |op, a: f32, b: f32| ok(op, F32, &[Vf32(a), Vf32(b)]);
    for op in [Feq, Flt, Fle, Fgt, Fge] {
        assert_eq!(c64(op, nan, 1.0), Vi32(0), "{}", op.name());
        assert_eq!(c64(op, 1.0, nan), Vi32(0), "{}", op.name());
        assert_eq!(c32(op, f32::NAN, f32::NAN), Vi32(0), "{}", op.name());
    }
    assert_eq!(c64(Fne, nan, nan), Vi32(1));
    assert_eq!(c32(Fne, f32::NAN, 0.0), Vi32(1));
    assert_eq!(c64(Fne, 1.0, 1.0), Vi32(0));
    assert_eq!(c64(Feq, 0.0, -0.0), Vi32(1));
    assert_eq!(c64(Flt, -0.0, 0.0), Vi32(0));
    assert_eq!(c64(Fle, -0.0, 0.0), Vi32(1));
    assert_eq!(c64(Flt, f64::NEG_INFINITY, -1e308), Vi32(1));
    assert_eq!(c32(Fgt, 2.0, 1.0), Vi32(1));
    assert_eq!(c32(Fge, 1.0, 2.0), Vi32(0));
}

#[test]
fn select_picks_on_nonzero() {
    use Opcode::Select;
    assert_eq!(ok(Select, I64, &[Vi32(1), Vi64(10), Vi64(20)]), Vi64(10));
    assert_eq!(ok(Select, I64, &[Vi32(0), Vi64(10), Vi64(20)]), Vi64(20));
    assert_eq!(
        ok(Select, F32, &[Vi32(-1), Vf32(1.5), Vf32(2.5)]),
        Vf32(1.5)
    );
    assert_eq!(
        ok(Select, I32, &[Vi32(i32::MIN), Vi32(3), Vi32(4)]),
        Vi32(3)
    );
}

// ---------------------------------------------------------- conversions

#[test]
fn integer_width_conversions() {
    use Opcode::*;
    assert_eq!(ok(Sext, I64, &[Vi32(-2)]), Vi64(-2));
    assert_eq!(ok(Zext, I64, &[Vi32(-2)]), Vi64(0xffff_fffe));
    assert_eq!(ok(Trunc, I32, &[Vi64(0x1_2345_6789)]), Vi32(0x2345_6789));
    assert_eq!(ok(Trunc, I32, &[Vi64(0xffff_ffff)]), Vi32(-1));
}

#[test]
fn int_to_float_conversions() {
    use Opcode::*;
    assert_eq!(ok(Sitof, F64, &[Vi32(-3)]), Vf64(-3.0));
    assert_eq!(ok(Sitof, F32, &[Vi64(-3)]), Vf32(-3.0));
    assert_eq!(
        ok(Sitof, F64, &[Vi64(i64::MIN)]),
        Vf64(-9223372036854775808.0)
    );
    // uitof reads the source as unsigned of its own width.
    assert_eq!(ok(Uitof, F64, &[Vi32(-1)]), Vf64(4294967295.0));
    assert_eq!(ok(Uitof, F32, &[Vi32(-1)]), Vf32(4294967296.0));
    assert_eq!(ok(Uitof, F64, &[Vi64(-1)]), Vf64(18446744073709551615.0));
    assert_eq!(ok(Uitof, F32, &[Vi64(1)]), Vf32(1.0));
    // Round to nearest, ties to even: 2^24 + 1 is a tie between 2^24 and
    // 2^24 + 2.
    assert_eq!(ok(Sitof, F32, &[Vi32(16777217)]), Vf32(16777216.0));
    assert_eq!(ok(Sitof, F32, &[Vi32(16777219)]), Vf32(16777220.0));
    assert_eq!(
        ok(Sitof, F64, &[Vi64((1 << 53) + 1)]),
        Vf64(9007199254740992.0)
    );
}

#[test]
fn float_to_int_conversions_saturate() {
    use Opcode::*;
    let inf = f64::INFINITY;
    assert_eq!(ok(Ftosi, I32, &[Vf64(-2.9)]), Vi32(-2));
    assert_eq!(ok(Ftosi, I32, &[Vf64(2.9)]), Vi32(2));
    assert_eq!(ok(Ftosi, I32, &[Vf64(1e10)]), Vi32(i32::MAX));
    assert_eq!(ok(Ftosi, I32, &[Vf64(-1e10)]), Vi32(i32::MIN));
    assert_eq!(ok(Ftosi, I32, &[Vf64(inf)]), Vi32(i32::MAX));
    assert_eq!(ok(Ftosi, I64, &[Vf64(-inf)]), Vi64(i64::MIN));
    assert_eq!(ok(Ftosi, I64, &[Vf64(f64::NAN)]), Vi64(0));
    assert_eq!(ok(Ftosi, I32, &[Vf32(f32::NAN)]), Vi32(0));
    assert_eq!(ok(Ftosi, I64, &[Vf32(1e30)]), Vi64(i64::MAX));
    assert_eq!(ok(Ftosi, I64, &[Vf32(-0.5)]), Vi64(0));
    assert_eq!(ok(Ftoui, I32, &[Vf64(-1.0)]), Vi32(0));
    assert_eq!(ok(Ftoui, I32, &[Vf64(4294967295.0)]), Vi32(-1));
    assert_eq!(ok(Ftoui, I32, &[Vf64(1e20)]), Vi32(-1));
    assert_eq!(ok(Ftoui, I32, &[Vf32(3e9)]), Vi32(3_000_000_000u32 as i32));
    assert_eq!(ok(Ftoui, I64, &[Vf64(inf)]), Vi64(-1));
    assert_eq!(ok(Ftoui, I64, &[Vf64(-inf)]), Vi64(0));
    assert_eq!(ok(Ftoui, I64, &[Vf64(f64::NAN)]), Vi64(0));
    // Above i64::MAX but below u64::MAX: exact, as Rust's `as` gives it.
    assert_eq!(
        ok(Ftoui, I64, &[Vf32(1.8e19)]),
        Vi64(1.8e19f32 as u64 as i64)
    );
    assert!(1.8e19f32 as u64 > i64::MAX as u64);
}

#[test]
fn float_width_conversions_and_bitcast() {
    use Opcode::*;
    assert_eq!(ok(Fext, F64, &[Vf32(0.1)]), Vf64(0.10000000149011612));
    assert_eq!(ok(Ftrunc, F32, &[Vf64(0.1)]), Vf32(0.1));
    assert_eq!(ok(Ftrunc, F32, &[Vf64(1e300)]), Vf32(f32::INFINITY));
    assert_eq!(
        ok(Ftrunc, F32, &[Vf64(-1e-300)]).to_bits(),
        (-0.0f32).to_bits() as u64
    );
    assert_eq!(ok(Bitcast, I64, &[Vf64(1.0)]), Vi64(0x3ff0_0000_0000_0000));
    assert_eq!(ok(Bitcast, F64, &[Vi64(0x4000_0000_0000_0000)]), Vf64(2.0));
    assert_eq!(ok(Bitcast, I32, &[Vf32(-0.0)]), Vi32(i32::MIN));
    assert_eq!(ok(Bitcast, F32, &[Vi32(0x3f80_0000)]), Vf32(1.0));
}

#[test]
fn literal_operands_take_their_position_type() {
    // add.i32 %a, 0xffffffff is %a - 1; shl.i64 %a, 65 shifts by 1.
    let mut fb = Fb::new("f", &[I32], Some(I64));
    let p = fb.param(0);
    let a = fb.bin(Opcode::Add, I32, p, int(0xffff_ffff));
    let w = fb.un(Opcode::Sext, I64, a);
    let s = fb.bin(Opcode::Shl, I64, w, int(65));
    fb.ret(Some(s));
    assert_eq!(run1(fb, &[Vi32(10)]).unwrap(), Some(Vi64(18)));

    let mut fb = Fb::new("g", &[], Some(F32));
    let x = fb.bin(Opcode::Fadd, F32, flt(0.1), int(2));
    fb.ret(Some(x));
    assert_eq!(run1(fb, &[]).unwrap(), Some(Vf32(0.1f32 + 2.0)));
}
