#![no_main]
// The XTCP segment parser: never panics; a successful parse re-emits the same bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rescue_xtcp::segment::fuzz_parse(data));
