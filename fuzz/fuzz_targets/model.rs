//! Random operations on a forest over a failing backend, checked against a
//! `BTreeMap` model; see `larix_fuzz::model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    larix_fuzz::model::run(data);
});
