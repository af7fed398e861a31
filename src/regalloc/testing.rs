//! Test helpers. STUB: being written.
