//! Reference interpreter. STUB: being written.
