//! The checksum filter: crc32c over the node id and the payload, appended.
//!
//! Blob layout: `payload || crc32c(node_id as u64 LE || payload) as u32 LE`,
//! and with a non-zero [`Context::tweak`]
//! `payload || crc32c(node_id as u64 LE || tweak as u64 LE || payload) as u32 LE`.
//!
//! Invariants:
//! - Any single-bit change of a blob is detected (crc32c detects all
//!   odd-weight and all burst errors of up to 32 bits).
//! - Seeding with the node id (and the tweak) makes a blob decoded under
//!   another node id (or tweak) fail, which catches a node table entry that
//!   points at the wrong blob.
//! - `decode` allocates only the payload it returns, and refuses one longer
//!   than the call's [`Context::max_len`].

use crate::{descriptor, Context, Filter, FilterError};

/// Length of the trailing checksum.
const CRC_LEN: usize = 4;

/// Appends and verifies a crc32c.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChecksumFilter;

impl ChecksumFilter {
    /// The filter's name in descriptors.
    pub(crate) const NAME: &'static str = "checksum";

    /// The checksum of `payload` as a blob bound to `ctx`.
    fn crc(ctx: &Context, payload: &[u8]) -> u32 {
        let (binding, len) = ctx.binding();
        crc32c::crc32c_append(crc32c::crc32c(&binding[..len]), payload)
    }
}

impl Filter for ChecksumFilter {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params(&self) -> String {
        descriptor::CHECKSUM_PARAMS.to_string()
    }

    fn encode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::with_capacity(input.len() + CRC_LEN);
        out.extend_from_slice(input);
        out.extend_from_slice(&Self::crc(ctx, input).to_le_bytes());
        Ok(out)
    }

    fn max_encoded_len(&self, input_len: usize) -> Option<usize> {
        input_len.checked_add(CRC_LEN)
    }

    fn decode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let Some((payload, stored)) = input.split_last_chunk::<CRC_LEN>() else {
            return Err(FilterError::Truncated {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: input.len(),
                min: CRC_LEN,
            });
        };
        let limit = ctx.bound(usize::MAX);
        if payload.len() > limit {
            return Err(FilterError::TooLarge {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: payload.len() as u64,
                limit,
            });
        }
        let expected = u32::from_le_bytes(*stored);
        let actual = Self::crc(ctx, payload);
        if expected != actual {
            return Err(FilterError::ChecksumMismatch {
                node_id: ctx.node_id,
                expected,
                actual,
            });
        }
        Ok(payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context = Context::new(9);

    #[test]
    fn layout_is_payload_then_le_crc() {
        let blob = ChecksumFilter.encode(&CTX, b"abc").unwrap();
        assert_eq!(&blob[..3], b"abc");
        let mut seeded = 9u64.to_le_bytes().to_vec();
        seeded.extend_from_slice(b"abc");
        assert_eq!(blob[3..], crc32c::crc32c(&seeded).to_le_bytes());
        assert_eq!(ChecksumFilter.decode(&CTX, &blob).unwrap(), b"abc");
    }

    #[test]
    fn mismatch_reports_both_values() {
        let mut blob = ChecksumFilter.encode(&CTX, b"hello").unwrap();
        blob[0] ^= 1;
        match ChecksumFilter.decode(&CTX, &blob).unwrap_err() {
            FilterError::ChecksumMismatch {
                node_id,
                expected,
                actual,
            } => {
                assert_eq!(node_id, 9);
                assert_eq!(expected.to_le_bytes(), blob[5..]);
                assert_ne!(expected, actual);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn other_node_id_is_detected() {
        let blob = ChecksumFilter.encode(&CTX, b"hello").unwrap();
        let err = ChecksumFilter.decode(&Context::new(10), &blob).unwrap_err();
        assert!(
            matches!(err, FilterError::ChecksumMismatch { node_id: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn short_blobs_are_truncated_errors() {
        for len in 0..CRC_LEN {
            let err = ChecksumFilter.decode(&CTX, &vec![0; len]).unwrap_err();
            assert!(
                matches!(err, FilterError::Truncated { len: l, .. } if l == len),
                "{err}"
            );
        }
        let empty = ChecksumFilter.encode(&CTX, b"").unwrap();
        assert_eq!(empty.len(), CRC_LEN);
        assert_eq!(ChecksumFilter.decode(&CTX, &empty).unwrap(), b"");
    }

    /// Issue 12 item 13: the payload is held to the context's bound.
    #[test]
    fn payload_past_the_context_bound_is_too_large() {
        let blob = ChecksumFilter.encode(&CTX, &[7; 100]).unwrap();
        let err = ChecksumFilter
            .decode(&CTX.with_max_len(99), &blob)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FilterError::TooLarge {
                    len: 100,
                    limit: 99,
                    ..
                }
            ),
            "{err}"
        );
        let ok = ChecksumFilter.decode(&CTX.with_max_len(100), &blob);
        assert_eq!(ok.unwrap(), [7; 100]);
        assert_eq!(ChecksumFilter.max_encoded_len(100), Some(blob.len()));
    }

    /// Context tweak (binding, format-compatible): with tweak 0 the blob is
    /// byte for byte the format written before tweaks existed; the crc32c
    /// values were computed by an independent bitwise implementation.
    #[test]
    fn tweak_zero_keeps_the_old_format() {
        let blob = ChecksumFilter.encode(&CTX, b"abc").unwrap();
        assert_eq!(
            blob,
            [b"abc".as_slice(), &0xC7B1_B838u32.to_le_bytes()].concat()
        );
        let tweaked = ChecksumFilter.encode(&CTX.with_tweak(5), b"abc").unwrap();
        assert_eq!(
            tweaked,
            [b"abc".as_slice(), &0x406E_B05Du32.to_le_bytes()].concat()
        );
    }

    /// Context tweak (binding, format-compatible): a blob sealed under
    /// tweak 5 fails under tweak 0 and tweak 6.
    #[test]
    fn other_tweak_is_detected() {
        let blob = ChecksumFilter.encode(&CTX.with_tweak(5), b"hello").unwrap();
        for tweak in [0, 6] {
            let err = ChecksumFilter
                .decode(&CTX.with_tweak(tweak), &blob)
                .unwrap_err();
            assert!(matches!(err, FilterError::ChecksumMismatch { .. }), "{err}");
        }
        let ok = ChecksumFilter.decode(&CTX.with_tweak(5), &blob).unwrap();
        assert_eq!(ok, b"hello");
    }
}
