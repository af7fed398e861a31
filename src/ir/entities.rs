//! Entity references: small `u32` newtypes that index the tables of a
//! [`Function`](super::Function) or [`Module`](super::Module).
//!
//! An entity is only meaningful together with the table it indexes; the
//! newtypes keep a block index from being used as a value index.

use std::fmt;

macro_rules! entity {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl $name {
            /// The entity with this table index.
            #[inline]
            pub fn new(index: usize) -> Self {
                debug_assert!(index <= u32::MAX as usize);
                $name(index as u32)
            }

            /// This entity's table index.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(
    /// An SSA value of a function: a function parameter, a block parameter or
    /// an instruction result.
    Value,
    "v"
);
entity!(
    /// A basic block of a function. `Block(0)` is the entry.
    Block,
    "block"
);
entity!(
    /// An instruction of a function.
    Inst,
    "inst"
);
entity!(
    /// A module-level symbol (function or data, defined or imported).
    SymId,
    "sym"
);
entity!(
    /// A function body defined in a module.
    FuncId,
    "func"
);
entity!(
    /// A data or const item defined in a module.
    DataId,
    "data"
);
