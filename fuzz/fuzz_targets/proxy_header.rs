//! Fuzz target: the PROXY protocol header parser over bytes gathered in
//! pieces (PROTOCOL.md §17). The properties live in `src/proxy_header.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cloudservice_fuzz::proxy_header::check_proxy_header(data);
});
