//! The opcode table: one row per instruction of SPEC sections 5 and 6.
//!
//! The parser, printer, verifier and interpreter all read this table instead
//! of keeping their own lists, so adding an instruction starts here. Each row
//! gives the mnemonic, the operand layout ([`Format`]), which type suffixes
//! are allowed ([`Suffix`]), the type each value operand must have
//! ([`OperandTy`]) and the result type ([`ResultTy`]).

use super::types::Type;

/// The operand layout of an instruction; it selects the
/// [`InstKind`](super::InstKind) variant that holds its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `op.T a`
    Unary,
    /// `op.T a, b`
    Binary,
    /// `select.T c, a, b`
    Select,
    /// `load.T p [, off]`
    Load,
    /// `store.T v, p [, off]`
    Store,
    /// `alloca N [, A]`
    Alloca,
    /// `addr @sym`
    Addr,
    /// `call[.T] @f(args)` or `call[.T] %fp(args)`
    Call,
    /// `ret [v]`
    Ret,
    /// `jmp L(args)`
    Jmp,
    /// `br c, L1(args), L2(args)`
    Br,
    /// `switch.T v, Ldefault, K: L, ...`
    Switch,
    /// `trap`
    Trap,
}

/// Which type suffixes an opcode accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suffix {
    /// `i32` or `i64`.
    Int,
    /// `f32` or `f64`.
    Float,
    /// Any of the four types.
    Any,
    /// Exactly this type (`sext.i64`, `trunc.i32`, ...).
    Only(Type),
    /// No suffix (`store8`, `alloca`, `addr`, `jmp`, ...).
    None,
    /// An optional suffix naming the result type (`call`).
    Optional,
}

impl Suffix {
    /// Whether `ty` is an accepted suffix.
    pub fn allows(self, ty: Type) -> bool {
        match self {
            Suffix::Int => ty.is_int(),
            Suffix::Float => ty.is_float(),
            Suffix::Any | Suffix::Optional => true,
            Suffix::Only(t) => t == ty,
            Suffix::None => false,
        }
    }

    /// Human-readable list of the accepted suffixes, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Suffix::Int => "i32 or i64",
            Suffix::Float => "f32 or f64",
            Suffix::Any | Suffix::Optional => "i32, i64, f32 or f64",
            Suffix::Only(Type::I32) => "i32",
            Suffix::Only(Type::I64) => "i64",
            Suffix::Only(Type::F32) => "f32",
            Suffix::Only(Type::F64) => "f64",
            Suffix::None => "no type suffix",
        }
    }
}

/// The type a value operand must have, given the suffix `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandTy {
    /// The suffix type `T`.
    Suffix,
    /// Exactly this type.
    Fixed(Type),
    /// `i32` or `i64`, left open by the instruction; no literal allowed
    /// (`sitof`, `uitof`).
    OpenInt,
    /// `f32` or `f64`, left open; no literal allowed (`ftosi`, `ftoui`).
    OpenFloat,
    /// The other type of the suffix's width (`bitcast`).
    BitcastPeer,
    /// Any integer type; a literal is taken as `i64` (the value of
    /// `store8/16/32`).
    AnyIntLiteralI64,
}

impl OperandTy {
    /// The single type this operand must have, when the rule fixes one.
    pub fn fixed(self, suffix: Option<Type>) -> Option<Type> {
        match self {
            OperandTy::Suffix => suffix,
            OperandTy::Fixed(t) => Some(t),
            OperandTy::BitcastPeer => suffix.map(Type::bitcast_peer),
            OperandTy::OpenInt | OperandTy::OpenFloat | OperandTy::AnyIntLiteralI64 => None,
        }
    }

    /// Whether a value of type `ty` is acceptable.
    pub fn accepts(self, ty: Type, suffix: Option<Type>) -> bool {
        match self {
            OperandTy::OpenInt | OperandTy::AnyIntLiteralI64 => ty.is_int(),
            OperandTy::OpenFloat => ty.is_float(),
            _ => self.fixed(suffix) == Some(ty),
        }
    }

    /// The type a literal in this position takes, or `None` when a literal
    /// is not allowed here.
    pub fn literal_type(self, suffix: Option<Type>) -> Option<Type> {
        match self {
            OperandTy::AnyIntLiteralI64 => Some(Type::I64),
            OperandTy::OpenInt | OperandTy::OpenFloat => None,
            _ => self.fixed(suffix),
        }
    }
}

/// The type of an instruction's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultTy {
    /// No result.
    None,
    /// The suffix type.
    Suffix,
    /// `i32` (comparisons).
    I32,
    /// `i64` (`alloca`, `addr`).
    I64,
    /// The suffix type if a suffix is given, else no result (`call`).
    OptionalSuffix,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub name: &'static str,
    pub format: Format,
    pub suffix: Suffix,
    /// Types of the fixed value operands, in textual order. Empty for
    /// formats whose operands are typed elsewhere (calls, terminators'
    /// block arguments); `ret`, `br` and `switch` list their first operand.
    pub operands: &'static [OperandTy],
    pub result: ResultTy,
}

impl OpInfo {
    /// Whether this instruction ends a block.
    pub fn is_terminator(&self) -> bool {
        matches!(
            self.format,
            Format::Ret | Format::Jmp | Format::Br | Format::Switch | Format::Trap
        )
    }

    /// The result type for a given suffix, if the instruction has a result.
    pub fn result_type(&self, suffix: Option<Type>) -> Option<Type> {
        match self.result {
            ResultTy::None => None,
            ResultTy::Suffix | ResultTy::OptionalSuffix => suffix,
            ResultTy::I32 => Some(Type::I32),
            ResultTy::I64 => Some(Type::I64),
        }
    }
}

use OperandTy as O;

const T1: &[OperandTy] = &[O::Suffix];
const T2: &[OperandTy] = &[O::Suffix, O::Suffix];
const SEL: &[OperandTy] = &[O::Fixed(Type::I32), O::Suffix, O::Suffix];
const PTR: &[OperandTy] = &[O::Fixed(Type::I64)];
const STORE: &[OperandTy] = &[O::Suffix, O::Fixed(Type::I64)];
const STORE_N: &[OperandTy] = &[O::AnyIntLiteralI64, O::Fixed(Type::I64)];
const FROM_I32: &[OperandTy] = &[O::Fixed(Type::I32)];
const FROM_I64: &[OperandTy] = &[O::Fixed(Type::I64)];
const FROM_F32: &[OperandTy] = &[O::Fixed(Type::F32)];
const FROM_F64: &[OperandTy] = &[O::Fixed(Type::F64)];
const FROM_INT: &[OperandTy] = &[O::OpenInt];
const FROM_FLOAT: &[OperandTy] = &[O::OpenFloat];
const BITCAST: &[OperandTy] = &[O::BitcastPeer];
const COND: &[OperandTy] = &[O::Fixed(Type::I32)];
const NONE: &[OperandTy] = &[];

macro_rules! opcodes {
    ($($variant:ident = $name:literal, $format:ident, $suffix:expr, $ops:expr, $result:ident;)*) => {
        /// An instruction's operation. `Opcode::info` gives its table row.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $($variant,)*
        }

        /// The table, indexed by `Opcode as usize`.
        pub static OPCODES: &[OpInfo] = OPCODE_TABLE;

        /// [`OPCODES`] as a `const`, for tables derived at compile time
        /// (the verifier's rules).
        pub const OPCODE_TABLE: &[OpInfo] = &[
            $(OpInfo {
                name: $name,
                format: Format::$format,
                suffix: $suffix,
                operands: $ops,
                result: ResultTy::$result,
            },)*
        ];

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant,)*];
        }

        /// The mnemonics, in table order (a `const` for [`LOOKUP`]).
        const NAMES: &[&str] = &[$($name,)*];
    };
}

/// Slots of the mnemonic hash table (a power of two, over twice the
/// number of opcodes).
const LOOKUP_SLOTS: usize = 256;

/// Longest mnemonic: each fits in one word (checked when [`LOOKUP`] is
/// built), so a lookup compares two integers, not two strings.
const MNEMONIC_MAX: usize = 8;

/// A mnemonic's bytes packed little-endian into one word, zero-padded
/// (at most [`MNEMONIC_MAX`] bytes), usable in `const` context.
#[inline]
const fn pack_mnemonic(name: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < name.len() {
        w |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// The [`LOOKUP`] slot where the search for a packed mnemonic starts.
#[inline]
const fn mnemonic_slot(word: u64) -> usize {
    (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - LOOKUP_SLOTS.trailing_zeros())) as usize
}

/// Open-addressing table from [`mnemonic_slot`] to a mnemonic packed by
/// [`pack_mnemonic`], its length and `opcode index + 1` (0 = empty),
/// built at compile time.
static LOOKUP: [(u64, u8, u8); LOOKUP_SLOTS] = {
    let mut t = [(0u64, 0u8, 0u8); LOOKUP_SLOTS];
    let mut op = 0;
    while op < NAMES.len() {
        let name = NAMES[op].as_bytes();
        assert!(!name.is_empty() && name.len() <= MNEMONIC_MAX);
        let word = pack_mnemonic(name);
        let mut i = mnemonic_slot(word);
        while t[i].2 != 0 {
            i = (i + 1) & (LOOKUP_SLOTS - 1);
        }
        t[i] = (word, name.len() as u8, op as u8 + 1);
        op += 1;
    }
    t
};

opcodes! {
    Copy = "copy", Unary, Suffix::Any, T1, Suffix;
    Add = "add", Binary, Suffix::Int, T2, Suffix;
    Sub = "sub", Binary, Suffix::Int, T2, Suffix;
    Mul = "mul", Binary, Suffix::Int, T2, Suffix;
    Sdiv = "sdiv", Binary, Suffix::Int, T2, Suffix;
    Udiv = "udiv", Binary, Suffix::Int, T2, Suffix;
    Srem = "srem", Binary, Suffix::Int, T2, Suffix;
    Urem = "urem", Binary, Suffix::Int, T2, Suffix;
    And = "and", Binary, Suffix::Int, T2, Suffix;
    Or = "or", Binary, Suffix::Int, T2, Suffix;
    Xor = "xor", Binary, Suffix::Int, T2, Suffix;
    Shl = "shl", Binary, Suffix::Int, T2, Suffix;
    Shr = "shr", Binary, Suffix::Int, T2, Suffix;
    Sar = "sar", Binary, Suffix::Int, T2, Suffix;
    Neg = "neg", Unary, Suffix::Int, T1, Suffix;
    Not = "not", Unary, Suffix::Int, T1, Suffix;
    Fadd = "fadd", Binary, Suffix::Float, T2, Suffix;
    Fsub = "fsub", Binary, Suffix::Float, T2, Suffix;
    Fmul = "fmul", Binary, Suffix::Float, T2, Suffix;
    Fdiv = "fdiv", Binary, Suffix::Float, T2, Suffix;
    Fneg = "fneg", Unary, Suffix::Float, T1, Suffix;
    Fabs = "fabs", Unary, Suffix::Float, T1, Suffix;
    Fsqrt = "fsqrt", Unary, Suffix::Float, T1, Suffix;
    Eq = "eq", Binary, Suffix::Int, T2, I32;
    Ne = "ne", Binary, Suffix::Int, T2, I32;
    Slt = "slt", Binary, Suffix::Int, T2, I32;
    Sle = "sle", Binary, Suffix::Int, T2, I32;
    Sgt = "sgt", Binary, Suffix::Int, T2, I32;
    Sge = "sge", Binary, Suffix::Int, T2, I32;
    Ult = "ult", Binary, Suffix::Int, T2, I32;
    Ule = "ule", Binary, Suffix::Int, T2, I32;
    Ugt = "ugt", Binary, Suffix::Int, T2, I32;
    Uge = "uge", Binary, Suffix::Int, T2, I32;
    Feq = "feq", Binary, Suffix::Float, T2, I32;
    Fne = "fne", Binary, Suffix::Float, T2, I32;
    Flt = "flt", Binary, Suffix::Float, T2, I32;
    Fle = "fle", Binary, Suffix::Float, T2, I32;
    Fgt = "fgt", Binary, Suffix::Float, T2, I32;
    Fge = "fge", Binary, Suffix::Float, T2, I32;
    Select = "select", Select, Suffix::Any, SEL, Suffix;
    Sext = "sext", Unary, Suffix::Only(Type::I64), FROM_I32, Suffix;
    Zext = "zext", Unary, Suffix::Only(Type::I64), FROM_I32, Suffix;
    Trunc = "trunc", Unary, Suffix::Only(Type::I32), FROM_I64, Suffix;
    Fext = "fext", Unary, Suffix::Only(Type::F64), FROM_F32, Suffix;
    Ftrunc = "ftrunc", Unary, Suffix::Only(Type::F32), FROM_F64, Suffix;
    Sitof = "sitof", Unary, Suffix::Float, FROM_INT, Suffix;
    Uitof = "uitof", Unary, Suffix::Float, FROM_INT, Suffix;
    Ftosi = "ftosi", Unary, Suffix::Int, FROM_FLOAT, Suffix;
    Ftoui = "ftoui", Unary, Suffix::Int, FROM_FLOAT, Suffix;
    Bitcast = "bitcast", Unary, Suffix::Any, BITCAST, Suffix;
    Load = "load", Load, Suffix::Any, PTR, Suffix;
    Load8s = "load8s", Load, Suffix::Int, PTR, Suffix;
    Load8u = "load8u", Load, Suffix::Int, PTR, Suffix;
    Load16s = "load16s", Load, Suffix::Int, PTR, Suffix;
    Load16u = "load16u", Load, Suffix::Int, PTR, Suffix;
    Load32s = "load32s", Load, Suffix::Only(Type::I64), PTR, Suffix;
    Load32u = "load32u", Load, Suffix::Only(Type::I64), PTR, Suffix;
    Store = "store", Store, Suffix::Any, STORE, None;
    Store8 = "store8", Store, Suffix::None, STORE_N, None;
    Store16 = "store16", Store, Suffix::None, STORE_N, None;
    Store32 = "store32", Store, Suffix::None, STORE_N, None;
    Alloca = "alloca", Alloca, Suffix::None, NONE, I64;
    Addr = "addr", Addr, Suffix::None, NONE, I64;
    Call = "call", Call, Suffix::Optional, NONE, OptionalSuffix;
    Ret = "ret", Ret, Suffix::None, NONE, None;
    Jmp = "jmp", Jmp, Suffix::None, NONE, None;
    Br = "br", Br, Suffix::None, COND, None;
    Switch = "switch", Switch, Suffix::Int, T1, None;
    Trap = "trap", Trap, Suffix::None, NONE, None;
}

impl Opcode {
    /// This opcode's table row.
    #[inline]
    pub fn info(self) -> &'static OpInfo {
        &OPCODES[self as usize]
    }

    /// The mnemonic.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Looks a mnemonic up (without its `.T` suffix), through a hash table
    /// built at compile time: the name packed into a word is hashed and
    /// compared with one multiply and integer compares.
    #[inline]
    pub fn from_name(name: &str) -> Option<Opcode> {
        let b = name.as_bytes();
        if b.len() > MNEMONIC_MAX {
            return None;
        }
        let word = pack_mnemonic(b);
        let mut i = mnemonic_slot(word);
        loop {
            match LOOKUP[i] {
                (_, _, 0) => return None,
                (w, len, k) if w == word && len as usize == b.len() => {
                    return Some(Opcode::ALL[k as usize - 1]);
                }
                _ => i = (i + 1) & (LOOKUP_SLOTS - 1),
            }
        }
    }

    pub fn is_terminator(self) -> bool {
        self.info().is_terminator()
    }

    /// Bytes accessed by a load or store opcode, `None` for others. For
    /// `load`/`store` the width is the suffix type's.
    pub fn access_bytes(self, suffix: Option<Type>) -> Option<u32> {
        match self {
            Opcode::Load | Opcode::Store => suffix.map(Type::bytes),
            Opcode::Load8s | Opcode::Load8u | Opcode::Store8 => Some(1),
            Opcode::Load16s | Opcode::Load16u | Opcode::Store16 => Some(2),
            Opcode::Load32s | Opcode::Load32u | Opcode::Store32 => Some(4),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_opcode() {
        assert_eq!(OPCODES.len(), Opcode::ALL.len());
        for (i, op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
            assert_eq!(Opcode::from_name(op.name()), Some(*op));
        }
    }

    #[test]
    fn only_whole_mnemonics_are_found() {
        for op in Opcode::ALL {
            let name = op.name();
            // Zero bytes pack like the padding: the length tells them apart.
            for other in [
                format!("{name}\0"),
                format!("{name}x"),
                format!("\0{name}"),
                name[..name.len() - 1].to_string(),
                name.to_uppercase(),
                format!("{name}{name}"),
            ] {
                let found = Opcode::from_name(&other);
                assert!(
                    found.is_none() || found.is_some_and(|o| o.name() == other),
                    "{other:?} found {found:?}"
                );
            }
        }
        for s in ["", "\0", "\0\0\0", "addaddadd", "éé", "load32u\0\0"] {
            assert_eq!(Opcode::from_name(s), None, "{s:?}");
        }
    }

    #[test]
    fn mnemonics_are_unique() {
        let mut names: Vec<_> = OPCODES.iter().map(|o| o.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPCODES.len());
    }
}
