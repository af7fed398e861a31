//! Linear scan. STUB: being written.
use super::intervals::Intervals;
use super::*;
pub struct Assignment;
pub fn run<F: RaFunction>(
    _f: &F,
    _env: &MachineEnv,
    _ivs: &mut Intervals,
) -> Result<Assignment, RegAllocError> {
    Ok(Assignment)
}
