//! Run-time values: what the interpreter computes, what host functions
//! receive and return, and what embedders pass to and get from calls.

use crate::ir::Type;
use std::fmt;

/// A value of one of the IR's four types.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Val {
    pub fn ty(self) -> Type {
        match self {
            Val::I32(_) => Type::I32,
            Val::I64(_) => Type::I64,
            Val::F32(_) => Type::F32,
            Val::F64(_) => Type::F64,
        }
    }

    /// The value's bits, zero-extended to 64 (`f32` in the low half).
    pub fn to_bits(self) -> u64 {
        match self {
            Val::I32(v) => v as u32 as u64,
            Val::I64(v) => v as u64,
            Val::F32(v) => v.to_bits() as u64,
            Val::F64(v) => v.to_bits(),
        }
    }

    /// The value of type `ty` with these bits (upper bits ignored for 32-bit
    /// types).
    pub fn from_bits(ty: Type, bits: u64) -> Val {
        match ty {
            Type::I32 => Val::I32(bits as u32 as i32),
            Type::I64 => Val::I64(bits as i64),
            Type::F32 => Val::F32(f32::from_bits(bits as u32)),
            Type::F64 => Val::F64(f64::from_bits(bits)),
        }
    }

    /// Parses a command-line argument as a value of type `ty`: integers in
    /// decimal or `0x` hex with an optional `-` (fitting as signed or
    /// unsigned), floats as Rust parses them plus `inf`, `-inf`, `nan`.
    pub fn parse(ty: Type, text: &str) -> Option<Val> {
        match ty {
            Type::I32 | Type::I64 => {
                let (neg, digits) = match text.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, text),
                };
                let magnitude = match digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
                    Some(hex) if !hex.is_empty() && !hex.starts_with('+') => {
                        u128::from_str_radix(hex, 16).ok()?
                    }
                    _ if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                        digits.parse::<u128>().ok()?
                    }
                    _ => return None,
                };
                let v = if neg {
                    -(i128::try_from(magnitude).ok()?)
                } else {
                    i128::try_from(magnitude).ok()?
                };
                let bits = ty.bits();
                if v < -(1i128 << (bits - 1)) || v >= (1i128 << bits) {
                    return None;
                }
                Some(Val::from_bits(ty, v as u64))
            }
            Type::F32 | Type::F64 => {
                let v: f64 = match text {
                    "inf" | "+inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    "nan" => f64::NAN,
                    _ => text.parse().ok()?,
                };
                Some(if ty == Type::F32 {
                    Val::F32(match text {
                        "inf" | "+inf" | "-inf" | "nan" => v as f32,
                        _ => text.parse().ok()?,
                    })
                } else {
                    Val::F64(v)
                })
            }
        }
    }
}

impl fmt::Display for Val {
    /// As `kiln run` prints results: integers as signed decimal, floats as
    /// Rust's `{:?}` (`1.0`, `NaN`, `-inf`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::I32(v) => write!(f, "{v}"),
            Val::I64(v) => write!(f, "{v}"),
            Val::F32(v) => write!(f, "{v:?}"),
            Val::F64(v) => write!(f, "{v:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments_by_type() {
        assert_eq!(Val::parse(Type::I32, "-5"), Some(Val::I32(-5)));
        assert_eq!(Val::parse(Type::I32, "0xffffffff"), Some(Val::I32(-1)));
        assert_eq!(Val::parse(Type::I32, "4294967296"), None);
        assert_eq!(Val::parse(Type::I64, "-0x10"), Some(Val::I64(-16)));
        assert_eq!(Val::parse(Type::I64, "12a"), None);
        assert_eq!(Val::parse(Type::I64, ""), None);
        assert_eq!(Val::parse(Type::F64, "1.5"), Some(Val::F64(1.5)));
        assert_eq!(
            Val::parse(Type::F32, "-inf"),
            Some(Val::F32(f32::NEG_INFINITY))
        );
        assert!(matches!(Val::parse(Type::F64, "nan"), Some(Val::F64(x)) if x.is_nan()));
    }

    #[test]
    fn prints_like_the_spec() {
        assert_eq!(Val::F64(1.0).to_string(), "1.0");
        assert_eq!(Val::F64(f64::NAN).to_string(), "NaN");
        assert_eq!(Val::F32(f32::NEG_INFINITY).to_string(), "-inf");
        assert_eq!(Val::I32(-7).to_string(), "-7");
    }
}
