//! Builder API. STUB: being written.
