#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_proxy::balancer::fuzzing::sticky_cookie(data));
