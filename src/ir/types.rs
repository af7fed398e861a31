//! Value types of the IR (SPEC section 2) and function signatures.
//!
//! Pointers are `i64`; comparison results and branch conditions are `i32`.

use smallvec::SmallVec;
use std::fmt;

/// One of the four value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    I32,
    I64,
    F32,
    F64,
}

impl Type {
    /// All types, in a fixed order.
    pub const ALL: [Type; 4] = [Type::I32, Type::I64, Type::F32, Type::F64];

    /// Size in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            Type::I32 | Type::F32 => 4,
            Type::I64 | Type::F64 => 8,
        }
    }

    /// Size in bits.
    pub fn bits(self) -> u32 {
        self.bytes() * 8
    }

    pub fn is_int(self) -> bool {
        matches!(self, Type::I32 | Type::I64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Type::F32 | Type::F64)
    }

    /// The text form: `i32`, `i64`, `f32`, `f64`.
    pub fn name(self) -> &'static str {
        match self {
            Type::I32 => "i32",
            Type::I64 => "i64",
            Type::F32 => "f32",
            Type::F64 => "f64",
        }
    }

    /// Parses a type name.
    pub fn from_name(s: &str) -> Option<Type> {
        match s {
            "i32" => Some(Type::I32),
            "i64" => Some(Type::I64),
            "f32" => Some(Type::F32),
            "f64" => Some(Type::F64),
            _ => None,
        }
    }

    /// The type of the same width in the other class (for `bitcast`).
    pub fn bitcast_peer(self) -> Type {
        match self {
            Type::I32 => Type::F32,
            Type::I64 => Type::F64,
            Type::F32 => Type::I32,
            Type::F64 => Type::I64,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The parameter types of a [`Signature`]: inline up to 16 (no heap
/// allocation for almost every signature; as big as a `Vec`). Derefs to
/// `[Type]`; made from a `Vec<Type>` or a slice with `.into()`.
pub type ParamTypes = SmallVec<[Type; 16]>;

/// A function's parameter and return types.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Signature {
    pub params: ParamTypes,
    pub ret: Option<Type>,
}

impl Signature {
    /// A signature with these parameter types (a `Vec<Type>`, a slice or a
    /// [`ParamTypes`]) and return type.
    pub fn new(params: impl Into<ParamTypes>, ret: Option<Type>) -> Self {
        Signature {
            params: params.into(),
            ret,
        }
    }
}

impl fmt::Display for Signature {
    /// Prints `(i32, i64) -> f64`, or `(i32)` when nothing is returned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, t) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t}")?;
        }
        f.write_str(")")?;
        if let Some(r) = self.ret {
            write!(f, " -> {r}")?;
        }
        Ok(())
    }
}
