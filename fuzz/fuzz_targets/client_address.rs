#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_proxy::fuzzing::client_address(data));
