#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_proxy::fuzzing::engine_response_head(data));
