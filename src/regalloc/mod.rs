//! Register allocation. STUB: being written.
