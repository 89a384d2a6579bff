//! Arbitrary bytes through every filter; see `larix_fuzz::filters`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    larix_fuzz::filters::run(data);
});
