//! Blob records: the header in front of every blob, and where a record
//! lies.
//!
//! A record is a 24-byte [`BlobHeader`] followed by the blob's body (bytes
//! already filtered by the pipeline; this layer does not interpret them).
//! A [`Location`] names a record by segment, header offset and body length.
//!
//! Invariants:
//! - a header is self-checking (magic and crc32c), so a scan can tell a
//!   record from a torn tail or foreign bytes;
//! - a decoded header never records a body longer than [`MAX_BLOB_LEN`],
//!   so a reader sizing its buffer from a header stays bounded.

use crate::{BlobFault, SegmentId};
use std::fmt;

/// The magic that opens every blob header: the bytes `"LXBL"`, read as a
/// little-endian `u32` (`0x4C42_584C`).
pub const BLOB_MAGIC: u32 = u32::from_le_bytes(*b"LXBL");

/// Bytes of a blob header.
pub const HEADER_LEN: usize = 24;

/// The largest body a record may have (64 MiB).
pub const MAX_BLOB_LEN: u32 = 64 << 20;

/// What a blob holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum BlobKind {
    /// A node; the header id is the node id.
    Node = 1,
    /// A node table chunk; the header id is the chunk index.
    TableChunk = 2,
    /// The node table directory; the header id is 0.
    TableDirectory = 3,
    /// The forest catalog; the header id is 0.
    Catalog = 4,
    /// The key check blob (detects a wrong encryption key); the id is 0.
    KeyCheck = 5,
}

impl BlobKind {
    /// The kind's byte on disk.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind a byte names, if any.
    pub fn from_u8(b: u8) -> Option<BlobKind> {
        Some(match b {
            1 => BlobKind::Node,
            2 => BlobKind::TableChunk,
            3 => BlobKind::TableDirectory,
            4 => BlobKind::Catalog,
            5 => BlobKind::KeyCheck,
            _ => return None,
        })
    }
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobKind::Node => "node",
            BlobKind::TableChunk => "table chunk",
            BlobKind::TableDirectory => "table directory",
            BlobKind::Catalog => "catalog",
            BlobKind::KeyCheck => "key check",
        })
    }
}

/// The header in front of every blob body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlobHeader {
    /// What the body holds.
    pub kind: BlobKind,
    /// Node id, chunk index, or 0.
    pub id: u64,
    /// Body length in bytes.
    pub len: u32,
}

impl BlobHeader {
    /// The header's 24 bytes: magic, kind, 3 zero bytes, id, length, and a
    /// crc32c of the 20 bytes before it.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&BLOB_MAGIC.to_le_bytes());
        h[4] = self.kind.as_u8();
        h[8..16].copy_from_slice(&self.id.to_le_bytes());
        h[16..20].copy_from_slice(&self.len.to_le_bytes());
        let crc = crc32c::crc32c(&h[..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes the header at the start of `bytes` (bytes past the first 24
    /// are ignored).
    ///
    /// # Errors
    /// The first [`BlobFault`] found, checked in this order: length, magic,
    /// checksum, kind, reserved bytes, body length limit.
    pub fn decode(bytes: &[u8]) -> Result<BlobHeader, BlobFault> {
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(BlobFault::ShortHeader(bytes.len()))?;
        let magic = u32_at(h, 0);
        if magic != BLOB_MAGIC {
            return Err(BlobFault::Magic(magic));
        }
        let stored = u32_at(h, 20);
        let computed = crc32c::crc32c(&h[..20]);
        if stored != computed {
            return Err(BlobFault::Checksum { stored, computed });
        }
        let kind = BlobKind::from_u8(h[4]).ok_or(BlobFault::UnknownKind(h[4]))?;
        if h[5..8] != [0, 0, 0] {
            return Err(BlobFault::Reserved);
        }
        let len = u32_at(h, 16);
        if len > MAX_BLOB_LEN {
            return Err(BlobFault::TooLarge {
                len: len.into(),
                max: MAX_BLOB_LEN.into(),
            });
        }
        Ok(BlobHeader {
            kind,
            id: u64_at(h, 8),
            len,
        })
    }

    /// Bytes the whole record (header and body) takes in its segment.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Where a blob record lies.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Location {
    /// The segment holding it.
    pub segment: SegmentId,
    /// Offset of the record's header in the segment.
    pub offset: u64,
    /// Length of the body (the header not included).
    pub len: u32,
}

/// Bytes of an encoded [`Location`].
pub(crate) const LOCATION_LEN: usize = 16;

impl Location {
    /// Bytes the whole record (header and body) takes in its segment.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// The 16-byte form used in the superblock and the table directory:
    /// segment u32, offset u64, len u32, all little-endian.
    pub(crate) fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut b = [0u8; LOCATION_LEN];
        b[0..4].copy_from_slice(&self.segment.0.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Reads the form written by [`Location::encode`]; `None` if segment is
    /// 0 (never used) or the length is beyond [`MAX_BLOB_LEN`].
    pub(crate) fn decode(b: &[u8; LOCATION_LEN]) -> Option<Location> {
        let loc = Location {
            segment: SegmentId(u32_at(b, 0)),
            offset: u64_at(b, 4),
            len: u32_at(b, 12),
        };
        (loc.segment.0 != 0 && loc.len <= MAX_BLOB_LEN).then_some(loc)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} offset {} ({} bytes)",
            self.segment, self.offset, self.len
        )
    }
}

/// The little-endian `u32` at `at`; the caller guarantees the bounds.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// The little-endian `u64` at `at`; the caller guarantees the bounds.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [BlobKind; 5] = [
        BlobKind::Node,
        BlobKind::TableChunk,
        BlobKind::TableDirectory,
        BlobKind::Catalog,
        BlobKind::KeyCheck,
    ];

    #[test]
    fn header_layout_is_as_documented() {
        let h = BlobHeader {
            kind: BlobKind::Catalog,
            id: 0x0102_0304_0506_0708,
            len: 0x0A0B_0C0D,
        }
        .encode();
        assert_eq!(&h[0..4], b"LXBL");
        assert_eq!(BLOB_MAGIC, 0x4C42_584C);
        assert_eq!(h[4], 4);
        assert_eq!(&h[5..8], &[0, 0, 0]);
        assert_eq!(&h[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&h[16..20], &[0x0D, 0x0C, 0x0B, 0x0A]);
        assert_eq!(u32_at(&h, 20), crc32c::crc32c(&h[..20]));
    }

    #[test]
    fn header_round_trips_for_every_kind() {
        for kind in KINDS {
            assert_eq!(BlobKind::from_u8(kind.as_u8()), Some(kind));
            let h = BlobHeader {
                kind,
                id: 77,
                len: MAX_BLOB_LEN,
            };
            assert_eq!(BlobHeader::decode(&h.encode()), Ok(h));
        }
        assert_eq!(BlobKind::from_u8(0), None);
        assert_eq!(BlobKind::from_u8(6), None);
    }

    #[test]
    fn every_flipped_header_bit_is_detected() {
        let good = BlobHeader {
            kind: BlobKind::Node,
            id: 42,
            len: 100,
        }
        .encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut h = good;
            h[bit / 8] ^= 1 << (bit % 8);
            assert!(BlobHeader::decode(&h).is_err(), "bit {bit} went unnoticed");
        }
    }

    #[test]
    fn header_faults_are_specific() {
        let h = |kind: u8, reserved: u8, len: u32| {
            let mut b = BlobHeader {
                kind: BlobKind::Node,
                id: 1,
                len,
            }
            .encode();
            b[4] = kind;
            b[5] = reserved;
            let crc = crc32c::crc32c(&b[..20]);
            b[20..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        assert_eq!(
            BlobHeader::decode(&[0; 10]),
            Err(BlobFault::ShortHeader(10))
        );
        assert_eq!(BlobHeader::decode(&[0; 24]), Err(BlobFault::Magic(0)));
        assert_eq!(
            BlobHeader::decode(&h(9, 0, 1)),
            Err(BlobFault::UnknownKind(9))
        );
        assert_eq!(BlobHeader::decode(&h(1, 1, 1)), Err(BlobFault::Reserved));
        assert!(matches!(
            BlobHeader::decode(&h(1, 0, MAX_BLOB_LEN + 1)),
            Err(BlobFault::TooLarge { .. })
        ));
    }

    #[test]
    fn location_round_trips_and_refuses_segment_zero() {
        let loc = Location {
            segment: SegmentId(3),
            offset: u64::MAX - 5,
            len: 12,
        };
        assert_eq!(Location::decode(&loc.encode()), Some(loc));
        let zero = Location {
            segment: SegmentId(0),
            ..loc
        };
        assert_eq!(Location::decode(&zero.encode()), None);
        assert_eq!(
            loc.to_string(),
            format!("segment 000003 offset {} (12 bytes)", u64::MAX - 5)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = BlobHeader::decode(&bytes) {
                prop_assert!(h.len <= MAX_BLOB_LEN);
                prop_assert_eq!(&h.encode()[..], &bytes[..HEADER_LEN]);
            }
        }
    }
}
