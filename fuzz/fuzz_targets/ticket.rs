#![no_main]
//! Fuzzes the applet-ticket parser: arbitrary bytes as an unsigned body (a body that
//! decodes must re-encode to the same bytes) and as a signed ticket.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rescue_crypto::ticket::fuzz_ticket(data);
});
