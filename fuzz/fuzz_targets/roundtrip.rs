//! Fuzz target: messages built from the fuzz bytes survive encode → decode.
//! The properties live in `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cloudservice_fuzz::check_roundtrip(data);
});
