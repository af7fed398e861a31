//! Move resolution. STUB: being written.
use super::intervals::Intervals;
use super::linear_scan::Assignment;
use super::*;
pub fn resolve<F: RaFunction>(
    _f: &F,
    _env: &MachineEnv,
    _ivs: &Intervals,
    _a: &Assignment,
) -> Result<Output, RegAllocError> {
    Ok(Output::default())
}
