//! Symbolic checker. STUB: being written.
use super::*;
/// A failed check: which instruction, operand and vreg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerError {
    pub inst: MInst,
    pub operand: Option<usize>,
    pub vreg: Option<VReg>,
    pub message: String,
}
impl std::fmt::Display for CheckerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inst {}: {}", self.inst.0, self.message)
    }
}
/// Validates `output` for `func`.
pub fn check<F: RaFunction>(_f: &F, _env: &MachineEnv, _o: &Output) -> Result<(), CheckerError> {
    Ok(())
}
