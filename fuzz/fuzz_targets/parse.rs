//! Fuzz target `parse`: see `kiln::fuzzing::check_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = kiln::fuzzing::check_parse(data) {
        panic!("{finding}");
    }
});
