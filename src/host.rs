//! Host functions: Rust closures that IR calls through `extern func`
//! declarations when it runs in the interpreter. STUB: being written.

use crate::error::Result;
use crate::ir::Signature;
use crate::value::Val;
use std::collections::HashMap;
use std::sync::Arc;

/// The body of a host function: takes the arguments (already checked
/// against the signature) and returns the result, if the signature has one.
pub type HostFn = Arc<dyn Fn(&[Val]) -> Result<Option<Val>> + Send + Sync>;

/// One registered host function.
#[derive(Clone)]
pub struct HostFunction {
    pub sig: Signature,
    pub func: HostFn,
}

/// The registry embedders fill; looked up by symbol name.
#[derive(Clone, Default)]
pub struct HostFunctions {
    map: HashMap<String, HostFunction>,
}

impl HostFunctions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        sig: Signature,
        func: impl Fn(&[Val]) -> Result<Option<Val>> + Send + Sync + 'static,
    ) {
        self.map.insert(
            name.into(),
            HostFunction {
                sig,
                func: Arc::new(func),
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&HostFunction> {
        self.map.get(name)
    }

    /// The set the `kiln` command line registers: `putchar getchar malloc
    /// calloc free memcpy memset memcmp abort exit`, each calling the C
    /// library so that output interleaves exactly as compiled code's does.
    pub fn c_library() -> Self {
        todo!("host set")
    }
}
