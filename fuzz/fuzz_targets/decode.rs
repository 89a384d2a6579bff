//! Arbitrary bytes as each on-disk format; see `larix_fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    larix_fuzz::decode::run(data);
});
