//! CFG analyses. STUB: being written.
