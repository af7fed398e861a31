//! The `kiln` command line. STUB: being written.
fn main() {}
