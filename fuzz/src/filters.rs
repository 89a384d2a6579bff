//! The `filters` target: arbitrary bytes through every filter's decode,
//! and encode → decode round trips of arbitrary input. The command filter
//! is left out: it spawns processes.
//!
//! Input layout: mode byte ([`Mode`], modulo 8), node id (8 bytes LE),
//! zstd level byte (`1 + b % 22`, used when encoding), then the payload.
//! Short inputs are padded with zeros.
//!
//! Promises checked:
//! - decoding returns an error or the payload, never panics, and never
//!   returns more than the pipeline's decoded-size limit;
//! - zstd accepts only a standard zstd frame (magic `28 B5 2F FD`) that
//!   declares its content size, and its output has that size;
//! - a checksum blob that verifies is canonical (re-encodes to itself);
//! - a blob that decodes under node id `n` fails under `n ^ 1` whenever
//!   the pipeline has a checksum or encryption;
//! - a decoded output of `len` bytes decodes again under a context bound of
//!   `len` and is refused under `len - 1`;
//! - the payload, read as a descriptor, parses or is refused without
//!   panicking, and whatever parses describes itself back (canonical);
//! - `decode(encode(x)) == x` for every pipeline and input, and a flipped
//!   bit in a checksummed blob is always detected.

use larix_filters::{parse_descriptor, Context, FilterSpec, Pipeline, KEY_LEN};
use std::sync::OnceLock;

use crate::take_u64;

/// The fixed key of the encryption filter under fuzzing.
pub const KEY: [u8; KEY_LEN] = [0x42; KEY_LEN];

/// Magic number opening a standard (non-skippable, non-legacy) zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// What the `filters` target does with the payload, by mode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decode through `zstd` alone.
    Zstd = 0,
    /// Decode through `checksum` alone.
    Checksum = 1,
    /// Decode through `encrypt` alone (fixed key).
    Encrypt = 2,
    /// Decode through `zstd, checksum`.
    ZstdChecksum = 3,
    /// Decode through `zstd, encrypt, checksum`.
    Full = 4,
    /// Append a valid checksum, then decode through `zstd, checksum`: the
    /// fuzzer reaches zstd behind a verified checksum.
    SealedZstdChecksum = 5,
    /// Encrypt and checksum the payload, then decode through `zstd,
    /// encrypt, checksum`: the fuzzer reaches zstd behind the AEAD.
    SealedFull = 6,
    /// Encode the payload through every pipeline and decode it back.
    RoundTrip = 7,
}

impl Mode {
    /// Every mode, indexed by its byte.
    pub const ALL: [Mode; 8] = [
        Mode::Zstd,
        Mode::Checksum,
        Mode::Encrypt,
        Mode::ZstdChecksum,
        Mode::Full,
        Mode::SealedZstdChecksum,
        Mode::SealedFull,
        Mode::RoundTrip,
    ];
}

/// Builds a fuzz input from its parts (used by the seeds).
pub fn input(mode: Mode, node_id: u64, level_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![mode as u8];
    v.extend_from_slice(&node_id.to_le_bytes());
    v.push(level_byte);
    v.extend_from_slice(payload);
    v
}

/// The pipelines under test; `zstd` at level 3 where the level is fixed.
struct Pipelines {
    zstd: Pipeline,
    checksum: Pipeline,
    encrypt: Pipeline,
    zstd_checksum: Pipeline,
    encrypt_checksum: Pipeline,
    full: Pipeline,
}

fn pipelines() -> &'static Pipelines {
    static P: OnceLock<Pipelines> = OnceLock::new();
    P.get_or_init(|| {
        let p = |specs: &[FilterSpec]| Pipeline::new(specs).expect("a valid pipeline");
        Pipelines {
            zstd: p(&[FilterSpec::zstd(3)]),
            checksum: p(&[FilterSpec::checksum()]),
            encrypt: p(&[FilterSpec::encrypt(KEY)]),
            zstd_checksum: p(&[FilterSpec::zstd(3), FilterSpec::checksum()]),
            encrypt_checksum: p(&[FilterSpec::encrypt(KEY), FilterSpec::checksum()]),
            full: p(&[
                FilterSpec::zstd(3),
                FilterSpec::encrypt(KEY),
                FilterSpec::checksum(),
            ]),
        }
    })
}

/// Runs one fuzz input. Returns whether the decode it asked for succeeded
/// (always true for [`Mode::RoundTrip`]).
///
/// # Panics
/// When a filter panics or breaks a promise checked here.
pub fn run(data: &[u8]) -> bool {
    let Some((&mode, mut rest)) = data.split_first() else {
        return false;
    };
    let ctx = Context::new(take_u64(&mut rest));
    let level = rest.first().map_or(3, |&b| 1 + i32::from(b % 22));
    let payload = rest.get(1..).unwrap_or_default();
    check_descriptor(payload);
    let p = pipelines();
    match Mode::ALL[usize::from(mode % 8)] {
        Mode::Zstd => decode(&p.zstd, ctx, payload, false)
            .inspect(|out| check_zstd_frame(payload, out))
            .is_some(),
        Mode::Checksum => decode(&p.checksum, ctx, payload, true)
            .inspect(|out| {
                let blob = p.checksum.encode(&ctx, out).expect("checksum encodes");
                assert_eq!(blob, payload, "a verified checksum blob is not canonical");
            })
            .is_some(),
        Mode::Encrypt => decode(&p.encrypt, ctx, payload, true).is_some(),
        Mode::ZstdChecksum => decode(&p.zstd_checksum, ctx, payload, true).is_some(),
        Mode::Full => decode(&p.full, ctx, payload, true).is_some(),
        Mode::SealedZstdChecksum => {
            let blob = p.checksum.encode(&ctx, payload).expect("checksum encodes");
            decode(&p.zstd_checksum, ctx, &blob, true)
                .inspect(|out| check_zstd_frame(payload, out))
                .is_some()
        }
        Mode::SealedFull => {
            let blob = p.encrypt_checksum.encode(&ctx, payload);
            let blob = blob.expect("encrypt, checksum encodes");
            decode(&p.full, ctx, &blob, true)
                .inspect(|out| check_zstd_frame(payload, out))
                .is_some()
        }
        Mode::RoundTrip => {
            round_trips(ctx, level, payload);
            true
        }
    }
}

/// Decodes `blob`, checking the size limit and, when the pipeline is
/// `bound` (has a checksum or encryption), that another node id is refused.
fn decode(pipeline: &Pipeline, ctx: Context, blob: &[u8], bound: bool) -> Option<Vec<u8>> {
    let out = pipeline.decode(&ctx, blob).ok()?;
    assert!(out.len() <= pipeline.max_decoded_len());
    let tight = pipeline.decode(&ctx.with_max_len(out.len()), blob);
    assert_eq!(
        tight.ok().as_ref(),
        Some(&out),
        "a bound at the output's length refused it"
    );
    if let Some(less) = out.len().checked_sub(1) {
        assert!(
            pipeline.decode(&ctx.with_max_len(less), blob).is_err(),
            "a bound below the output's length admitted it"
        );
    }
    if bound {
        let other = Context::new(ctx.node_id ^ 1);
        assert!(
            pipeline.decode(&other, blob).is_err(),
            "a blob of node {} decoded as node {}",
            ctx.node_id,
            other.node_id
        );
    }
    Some(out)
}

/// Parses `payload` as a descriptor: no panic, and whatever parses is
/// canonical (its filters describe the very text back).
fn check_descriptor(payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    if let Ok(recorded) = parse_descriptor(text) {
        let again: Vec<String> = recorded.iter().map(ToString::to_string).collect();
        assert_eq!(
            again.join(","),
            text,
            "a parsed descriptor is not canonical"
        );
    }
}

/// An accepted zstd blob is one standard frame declaring `out.len()`.
fn check_zstd_frame(blob: &[u8], out: &[u8]) {
    assert!(
        blob.starts_with(&ZSTD_MAGIC),
        "zstd accepted a frame with magic {:02x?}",
        &blob[..blob.len().min(4)]
    );
    let declared = zstd::zstd_safe::get_frame_content_size(blob).ok().flatten();
    assert_eq!(declared, Some(out.len() as u64), "declared size");
}

/// Every pipeline gives the payload back, under its node id only, and a
/// checksummed blob with any bit flipped is refused.
fn round_trips(ctx: Context, level: i32, payload: &[u8]) {
    let p = pipelines();
    let p_zstd = Pipeline::new(&[FilterSpec::zstd(level)]).expect("zstd pipeline");
    let p_zstd_checksum = Pipeline::new(&[FilterSpec::zstd(level), FilterSpec::checksum()])
        .expect("zstd, checksum pipeline");
    let empty = Pipeline::new(&[]).expect("empty pipeline");
    let cases: [(&Pipeline, bool); 7] = [
        (&empty, false),
        (&p_zstd, false),
        (&p.checksum, true),
        (&p.encrypt, true),
        (&p_zstd_checksum, true),
        (&p.encrypt_checksum, true),
        (&p.full, true),
    ];
    for (pipeline, bound) in cases {
        let name = pipeline.describe();
        let blob = pipeline.encode(&ctx, payload).expect("encode succeeds");
        let back = pipeline.decode(&ctx, &blob).expect("a fresh blob decodes");
        assert_eq!(back, payload, "round trip through {name:?}");
        if name.starts_with("zstd") && !name.contains("encrypt") {
            let frame_len = if bound { blob.len() - 4 } else { blob.len() };
            check_zstd_frame(&blob[..frame_len], payload);
        }
        if bound {
            let other = Context::new(ctx.node_id ^ 1);
            assert!(
                pipeline.decode(&other, &blob).is_err(),
                "{name}: other node id"
            );
            let bit = (ctx.node_id % (blob.len() as u64 * 8)) as usize;
            let mut flipped = blob.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                pipeline.decode(&ctx, &flipped).is_err(),
                "{name}: bit {bit}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_survives_empty_and_short_inputs() {
        for mode in Mode::ALL {
            for len in 0..12 {
                let mut data = vec![0u8; len];
                if let Some(first) = data.first_mut() {
                    *first = mode as u8;
                }
                run(&data);
            }
        }
    }
}
