//! Fuzz target: hostile chunk lists and chunk offers against the receiving
//! side of delta transfer. The properties live in `src/chunk_list.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cloudservice_fuzz::chunk_list::check_chunk_list(data);
});
