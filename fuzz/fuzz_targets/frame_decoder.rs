#![no_main]
//! The gateway frame decoder on arbitrary bytes, fed in chunks of the size given by the
//! first input byte: no panic, bounded reservations, the same frames as a one-shot decode.
//! Smoke run: `cd fuzz && cargo +nightly fuzz run frame_decoder -- -max_total_time=60`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&chunk, rest)) = data.split_first() {
        rescue_proto::codec::fuzz_decode_stream(rest, usize::from(chunk));
    }
});
