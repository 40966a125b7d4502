#![no_main]
// An established XTCP connection fed arbitrary (optionally id-patched) datagrams:
// never panics, never breaks its invariants.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rescue_xtcp::fuzz_connection(data));
