#![no_main]
//! Fuzzes the applet-ticket parser: arbitrary bytes as an unsigned body (a body that
//! decodes must re-encode to the same bytes) and as a signed ticket.
//! Smoke run: `cd fuzz && cargo +nightly fuzz run ticket -- -max_total_time=60`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rescue_crypto::ticket::fuzz_ticket(data);
});
