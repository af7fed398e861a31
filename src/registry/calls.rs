//! The engine's cache of callable functions by name, read by
//! `Engine::call` without the registry lock.
//!
//! Why: the registry lock is also held while a compiled module is placed,
//! relocated and registered with the debuggers (for a 100,000-instruction
//! function that is a few milliseconds: fresh pages of code memory are
//! faulted in while the bytes are copied). Issue 10 asks that calls of
//! finalized functions are not delayed by an unrelated compile, so a call
//! finds its function here, behind a read lock nobody holds for long.
//!
//! Rules that keep it sound:
//! - Only lookups that found a callable function (finalized, or a lazy
//!   function's stub) are cached, and they are inserted while the
//!   registry lock is held, so an entry never outlives a removal that
//!   happened before it was inserted.
//! - Every path that removes a symbol or checks whether a module can be
//!   removed clears the whole cache first ([`CallCache::clear`]). An entry
//!   holds its module's pin (the `Arc` whose count says "a call is
//!   running in it"), so the pin check after the clear sees only real
//!   calls; a call that took an entry before the clear holds the pin and
//!   the removal is refused, exactly as when it had gone through the
//!   registry.
//! - Addresses of finalized code never change while the module lives, and
//!   a lazy function's address is its stub, which redefinition keeps.

use crate::ir::hash::FxHashMap;
use crate::ir::Signature;
use std::sync::{Arc, RwLock};

/// A function found by name: address, signature and its module's pin.
pub type Callable = (u64, Signature, Arc<()>);

/// Callable functions by name (see the module docs).
#[derive(Default)]
pub struct CallCache {
    map: RwLock<FxHashMap<Box<str>, Callable>>,
}

impl CallCache {
    /// The cached function `name`, if any (its pin cloned under the read
    /// lock, so a removal that clears the cache afterwards sees it).
    pub fn get(&self, name: &str) -> Option<Callable> {
        let map = self.map.read().ok()?;
        map.get(name).cloned()
    }

    /// Caches `name`; call it only while holding the registry lock, with
    /// what the registry just found callable.
    pub fn insert(&self, name: &str, found: &Callable) {
        if let Ok(mut map) = self.map.write() {
            if !map.contains_key(name) {
                map.insert(name.into(), found.clone());
            }
        }
    }

    /// Forgets every entry (before any symbol is removed or any removal
    /// checks its module's pin).
    pub fn clear(&self) {
        match self.map.write() {
            Ok(mut map) if !map.is_empty() => map.clear(),
            Ok(_) => {}
            // A panic while holding the write lock: start afresh rather
            // than trust what it left.
            Err(poisoned) => {
                let mut map = poisoned.into_inner();
                map.clear();
                self.map.clear_poison();
            }
        }
    }

    /// How many functions are cached (tests).
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
