//! Any bytes given to the GGUF metadata reader give metadata or an error: no
//! panic, no allocation beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgeway_models::GgufInfo::parse_bytes(data);
});
