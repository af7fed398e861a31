//! Fuzz target `compile`: see `kiln::fuzzing::check_compile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = kiln::fuzzing::check_compile(data) {
        panic!("{finding}");
    }
});
