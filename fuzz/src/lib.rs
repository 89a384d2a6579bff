//! The checks behind Larix's cargo-fuzz targets, kept in a library so that
//! the fuzz targets stay one line each and the committed seeds and
//! regression inputs replay under plain `cargo test` (no nightly, no
//! sanitizer).
//!
//! - [`decode`]: arbitrary bytes as each on-disk format (node, node table
//!   chunk, superblock slot and file, table directory, blob header and
//!   segment, catalog).
//! - [`filters`]: arbitrary bytes through each filter's decode, and
//!   encode → decode round trips of arbitrary input.
//! - [`model`]: random operations on a few trees of a forest over a
//!   failing, crashing backend, checked against `BTreeMap` models of the
//!   live and the committed state by the harness `tests/crash.rs` shares
//!   (`tests/support/crash_model.rs`, included by path).
//! - [`seeds`]: valid encodings of every format and a few operation
//!   sequences, written to `seeds/` by the `make-seeds` binary.
//!
//! Invariant of every check: a decoder given any bytes returns an error or
//! a value, never panics; a value re-encodes to the same bytes (every
//! format is canonical). The model never panics either: every operation
//! agrees with the model or fails only under an injected fault. A broken
//! promise is a panic, which libFuzzer reports as a crash.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod filters;
pub mod model;
pub mod seeds;

/// Takes up to 8 bytes from the front of `data` as a little-endian `u64`,
/// padding a short input with zeros.
pub(crate) fn take_u64(data: &mut &[u8]) -> u64 {
    let n = data.len().min(8);
    let mut raw = [0u8; 8];
    raw[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    u64::from_le_bytes(raw)
}
