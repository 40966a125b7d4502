#![no_main]
// Placeholder: replaced by the owner of this target.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
