//! Fuzz target: the frame decoder, whole-buffer against chunked feeding, plus
//! re-encoding and memory bounds. The properties live in `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cloudservice_fuzz::check_frame_parser(data);
});
