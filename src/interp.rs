//! Reference interpreter. STUB: being written.

use crate::error::Result;
use crate::host::HostFunctions;
use crate::ir::Module;
use crate::value::Val;

/// Runs verified modules, linked together, with exact SPEC semantics.
pub struct Interpreter<'m> {
    _modules: &'m [Module],
}

impl<'m> Interpreter<'m> {
    /// Links `modules` (externs resolve to other modules' exports, then to
    /// `host`) and allocates their data. Link errors are `Error::Link`.
    pub fn new(modules: &'m [Module], host: &HostFunctions) -> Result<Self> {
        let _ = host;
        todo!("interp")
    }

    /// Calls the exported function `name`. Traps are `Err(Error::Trap)`;
    /// a missing function or wrong arguments are `Err(Error::Argument)`.
    pub fn call(&mut self, name: &str, args: &[Val]) -> Result<Option<Val>> {
        let _ = (name, args);
        todo!("interp")
    }
}
