//! The node table directory: chunk index → location of the chunk's blob.
//!
//! A commit writes the changed table chunks, updates their entries here,
//! writes the directory as one blob and points the superblock at it. The
//! directory of a committed superblock names exactly the chunks that hold
//! at least one entry (a chunk absent from it is all free).
//!
//! Each chunk is recorded with the [`Digest`] of its blob's body, so the
//! chunk read back is the one this directory was written with (an older
//! version of the chunk put in its place fails to verify).
//!
//! Invariants of the encoding: chunk indices strictly increasing, every
//! location in a segment other than 0, and a crc32c over everything before
//! it; the decoder allocates no more than its input's length.

use super::blob::{u32_at, u64_at, LOCATION_LEN};
use crate::{Digest, FormatError, Location, DIGEST_LEN};
use std::collections::BTreeMap;

/// Bytes of one encoded record: chunk index, location and digest.
const RECORD_LEN: usize = 8 + LOCATION_LEN + DIGEST_LEN;

/// Where each node table chunk lies, and the digest of its blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    chunks: BTreeMap<u64, (Location, Digest)>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Directory {
        Directory::default()
    }

    /// The location of chunk `idx`, if it is written.
    #[cfg(any(test, feature = "testing"))]
    pub fn get(&self, idx: u64) -> Option<Location> {
        self.chunks.get(&idx).map(|&(loc, _)| loc)
    }

    /// Records that chunk `idx` lies at `loc` with a body of digest
    /// `digest`, returning its old location.
    pub fn insert(&mut self, idx: u64, loc: Location, digest: Digest) -> Option<Location> {
        self.chunks.insert(idx, (loc, digest)).map(|(l, _)| l)
    }

    /// Forgets chunk `idx` (it has no entries left), returning its old
    /// location.
    pub fn remove(&mut self, idx: u64) -> Option<Location> {
        self.chunks.remove(&idx).map(|(l, _)| l)
    }

    /// The number of chunks recorded.
    #[cfg(any(test, feature = "testing"))]
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether no chunk is recorded.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunks and their locations, by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Location)> + '_ {
        self.chunks.iter().map(|(&i, &(l, _))| (i, l))
    }

    /// The chunks with their locations and digests, by ascending index.
    pub fn iter_pinned(&self) -> impl Iterator<Item = (u64, Location, Digest)> + '_ {
        self.chunks.iter().map(|(&i, &(l, d))| (i, l, d))
    }

    /// The directory's bytes: count u32, then per chunk (ascending) its
    /// index u64, location (segment u32, offset u64, len u32) and digest
    /// (16 bytes), then a crc32c of everything before it; all
    /// little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.chunks.len() * RECORD_LEN);
        // A directory of 2^32 chunks would be 96 GiB, far past the blob
        // limit that refuses to write it; the count cannot wrap in a blob
        // that is ever written.
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for (idx, (loc, digest)) in &self.chunks {
            out.extend_from_slice(&idx.to_le_bytes());
            out.extend_from_slice(&loc.encode());
            out.extend_from_slice(&digest.0);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes bytes written by [`Directory::encode`].
    ///
    /// # Errors
    /// [`FormatError::DirectoryDamaged`] if the length does not match the
    /// count, the checksum does not match, the indices are not strictly
    /// increasing or a location is invalid.
    pub fn decode(bytes: &[u8]) -> Result<Directory, FormatError> {
        let damaged = |reason: String| Err(FormatError::DirectoryDamaged { reason });
        if bytes.len() < 8 {
            return damaged(format!("{} bytes, at least 8 are needed", bytes.len()));
        }
        let body = &bytes[..bytes.len() - 4];
        let stored = u32_at(bytes, bytes.len() - 4);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return damaged(format!(
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        let count = u64::from(u32_at(body, 0));
        if 4 + count * RECORD_LEN as u64 != body.len() as u64 {
            return damaged(format!("{count} chunks do not fit {} bytes", bytes.len()));
        }
        let mut chunks = BTreeMap::new();
        let mut last = None;
        for rec in body[4..].chunks_exact(RECORD_LEN) {
            let idx = u64_at(rec, 0);
            if last.is_some_and(|l| idx <= l) {
                return damaged(format!("chunk {idx} is out of order"));
            }
            last = Some(idx);
            let raw: &[u8; LOCATION_LEN] = rec[8..8 + LOCATION_LEN]
                .try_into()
                .expect("a record holds a location");
            let Some(loc) = Location::decode(raw) else {
                return damaged(format!("chunk {idx} has an invalid location"));
            };
            let mut digest = Digest::default();
            digest.0.copy_from_slice(&rec[8 + LOCATION_LEN..]);
            chunks.insert(idx, (loc, digest));
        }
        Ok(Directory { chunks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::MAX_BLOB_LEN;
    use crate::SegmentId;
    use proptest::prelude::*;

    fn loc(segment: u32, offset: u64, len: u32) -> Location {
        Location {
            segment: SegmentId(segment),
            offset,
            len,
        }
    }

    fn dg(idx: u64, l: Location) -> Digest {
        let mut b = idx.to_le_bytes().to_vec();
        b.extend_from_slice(&l.encode());
        Digest::of(&b)
    }

    fn sample() -> Directory {
        let mut d = Directory::new();
        d.insert(9, loc(2, 16388, 16388), dg(9, loc(2, 16388, 16388)));
        d.insert(0, loc(1, 0, 16388), dg(0, loc(1, 0, 16388)));
        d.insert(
            u64::MAX / 1024,
            loc(u32::MAX, u64::MAX, MAX_BLOB_LEN),
            dg(u64::MAX / 1024, loc(u32::MAX, u64::MAX, MAX_BLOB_LEN)),
        );
        d
    }

    fn reason(r: Result<Directory, FormatError>) -> String {
        match r {
            Err(FormatError::DirectoryDamaged { reason }) => reason,
            other => panic!("expected DirectoryDamaged, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        for d in [Directory::new(), sample()] {
            assert_eq!(Directory::decode(&d.encode()).unwrap(), d);
        }
        assert_eq!(Directory::new().encode().len(), 8);
    }

    #[test]
    fn map_operations() {
        let mut d = sample();
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(9), Some(loc(2, 16388, 16388)));
        assert_eq!(
            d.insert(9, loc(3, 0, 1), dg(9, loc(3, 0, 1))),
            Some(loc(2, 16388, 16388))
        );
        assert_eq!(d.remove(0), Some(loc(1, 0, 16388)));
        assert_eq!(d.remove(0), None);
        let order: Vec<u64> = d.iter().map(|(i, _)| i).collect();
        assert_eq!(order, vec![9, u64::MAX / 1024]);
        assert!(!d.is_empty());
    }

    #[test]
    fn layout_is_as_documented() {
        let mut d = Directory::new();
        d.insert(5, loc(2, 300, 16388), dg(5, loc(2, 300, 16388)));
        let b = d.encode();
        assert_eq!(b.len(), 4 + 40 + 4);
        assert_eq!(u32_at(&b, 0), 1);
        assert_eq!(u64_at(&b, 4), 5);
        assert_eq!(u32_at(&b, 12), 2);
        assert_eq!(u64_at(&b, 16), 300);
        assert_eq!(u32_at(&b, 24), 16388);
        assert_eq!(&b[28..44], &dg(5, loc(2, 300, 16388)).0);
        assert_eq!(u32_at(&b, 44), crc32c::crc32c(&b[..44]));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let good = sample().encode();
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Directory::decode(&b).is_err(), "bit {bit} went unnoticed");
        }
    }

    #[test]
    fn structural_faults_are_caught_under_a_valid_checksum() {
        let seal = |mut body: Vec<u8>| {
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            body
        };
        let record = |idx: u64, l: Location| {
            let mut r = idx.to_le_bytes().to_vec();
            r.extend_from_slice(&l.encode());
            r.extend_from_slice(&[0; DIGEST_LEN]);
            r
        };
        let mut unsorted = 2u32.to_le_bytes().to_vec();
        unsorted.extend(record(4, loc(1, 0, 1)));
        unsorted.extend(record(4, loc(1, 0, 1)));
        assert!(reason(Directory::decode(&seal(unsorted))).contains("out of order"));
        let mut seg0 = 1u32.to_le_bytes().to_vec();
        seg0.extend(record(4, loc(0, 0, 1)));
        assert!(reason(Directory::decode(&seal(seg0))).contains("invalid location"));
        assert!(reason(Directory::decode(&[1, 2, 3])).contains("3 bytes"));
    }

    #[test]
    fn a_hostile_count_allocates_nothing() {
        // u32::MAX records would be 96 GiB: refused by the length check
        // before anything is allocated.
        let mut b = u32::MAX.to_le_bytes().to_vec();
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert!(reason(Directory::decode(&b)).contains("do not fit"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn decode_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(d) = Directory::decode(&bytes) {
                prop_assert!(d.len() <= bytes.len() / RECORD_LEN);
            }
        }

        #[test]
        fn decode_of_sealed_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = body;
            let crc = crc32c::crc32c(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            if let Ok(d) = Directory::decode(&b) {
                prop_assert!(d.len() <= b.len() / RECORD_LEN);
                prop_assert_eq!(d.encode(), b);
            }
        }

        #[test]
        fn random_directories_round_trip(
            entries in proptest::collection::btree_map(any::<u64>(), (1u32.., any::<u64>(), 0..=MAX_BLOB_LEN), 0..50),
        ) {
            let mut d = Directory::new();
            for (idx, (s, o, l)) in entries {
                d.insert(idx, loc(s, o, l), dg(idx, loc(s, o, l)));
            }
            prop_assert_eq!(Directory::decode(&d.encode()).unwrap(), d);
        }
    }
}
