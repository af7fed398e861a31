//! Liveness and live intervals. STUB: being written.
use super::*;
pub struct Intervals;
pub fn validate<F: RaFunction>(_f: &F, _env: &MachineEnv) -> Result<(), RegAllocError> {
    Ok(())
}
pub fn build<F: RaFunction>(_f: &F, _env: &MachineEnv) -> Result<Intervals, RegAllocError> {
    Err(RegAllocError::InvalidInput {
        inst: None,
        message: "not yet implemented".into(),
    })
}
