//! Host symbols: addresses of the embedding program that compiled code may
//! reach through `extern` declarations.
//!
//! Lookup order (SPEC section 8, after other modules' exports, which the
//! registry checks first): names the embedder registered with
//! [`HostSymbols::register`], then the process's own dynamic symbols
//! (`dlsym(RTLD_DEFAULT, name)`: the C library and anything the program
//! exports). A registered symbol may carry a signature, which a linking
//! `extern func` must match; a symbol found by `dlsym` carries none and is
//! trusted, as a C linker would.

use crate::ir::Signature;
use std::collections::HashMap;
use std::ffi::CString;

/// One host symbol: its address and, when the embedder gave one, the
/// signature a function there has (`None`: data, or unchecked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSymbol {
    pub address: u64,
    pub signature: Option<Signature>,
}

/// The embedder-registered host symbols, looked up in O(1).
#[derive(Clone, Debug, Default)]
pub struct HostSymbols {
    map: HashMap<String, HostSymbol>,
}

impl HostSymbols {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) `name` at `address`.
    pub fn register(&mut self, name: &str, address: u64, signature: Option<Signature>) {
        self.map
            .insert(name.to_string(), HostSymbol { address, signature });
    }

    /// Removes a registration; true if there was one.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    /// The registered symbol `name`, if any (no `dlsym` fallback).
    pub fn get(&self, name: &str) -> Option<&HostSymbol> {
        self.map.get(name)
    }
}

/// The address of `name` among the process's dynamic symbols, or `None`
/// (also for names containing NUL, which no C symbol has).
pub fn dlsym_default(name: &str) -> Option<u64> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // dlsym with RTLD_DEFAULT only reads it and the loaded objects' tables.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
    if p.is_null() {
        None
    } else {
        Some(p as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Type;

    #[test]
    fn dlsym_finds_the_c_library() {
        let a = dlsym_default("malloc").expect("malloc is in every process");
        assert_eq!(a, libc::malloc as *const () as u64);
        assert_eq!(dlsym_default("kiln_no_such_symbol_xyz"), None);
        assert_eq!(dlsym_default("bad\0name"), None);
    }

    #[test]
    fn registered_symbols_replace_and_unregister() {
        let mut h = HostSymbols::new();
        let sig = Signature::new(vec![Type::I64], Some(Type::I64));
        h.register("f", 0x1000, Some(sig.clone()));
        h.register("f", 0x2000, None);
        assert_eq!(h.get("f").map(|s| s.address), Some(0x2000));
        assert!(h.unregister("f"));
        assert!(h.get("f").is_none());
        assert!(!h.unregister("f"));
    }
}
