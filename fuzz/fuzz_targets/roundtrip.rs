//! Fuzz target `roundtrip`: see `kiln::fuzzing::check_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = kiln::fuzzing::check_roundtrip(data) {
        panic!("{finding}");
    }
});
