#![no_main]
//! Session frames on arbitrary bytes: the strict decoder (valid frames must re-encode to
//! the same bytes), the stream splitter, and a reliable core fed the resulting frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rescue_proto::session::fuzz_session(data);
});
