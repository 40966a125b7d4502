#![no_main]
//! One gateway frame parsed as a signalling message: no panic, and every accepted input
//! re-encodes to the same bytes.
//! Smoke run: `cd fuzz && cargo +nightly fuzz run signal -- -max_total_time=60`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rescue_proto::wire::signal::fuzz_decode_frame(data);
});
